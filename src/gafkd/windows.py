"""`windows.h5`: every window of a dataset with labels, subjects, folds and training statistics.

Layout:
    X (N, C, L) float32, y (N,) int64, subject (N,) int64
    folds/<fold>/split (N,) int8 (0 train, 1 val, 2 test), folds/<fold>/mean, std (C,) float32
    folds/<fold> attrs: val_subjects, test_subjects, val_missing_classes (JSON)
    attrs: dataset, source, class_names, channel_names, sampling_rate_hz, split (JSON),
           standardize, fold_names, counts (JSON), fingerprint (hash of X, y, subject)
"""

import hashlib
import json
import logging
from dataclasses import dataclass

import h5py
import numpy as np

from gafkd.atomic import atomic_path
from gafkd.config import resolve_dataset
from gafkd.errors import InputError
from gafkd.readers import read_dataset
from gafkd.splits import SPLIT_NAMES, channel_stats, check_class_coverage, make_folds

log = logging.getLogger(__name__)


@dataclass
class Fold:
    split: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    val_subjects: list
    test_subjects: list
    val_missing_classes: list       # class names the validation subjects lack


@dataclass
class Windows:
    X: np.ndarray | None
    y: np.ndarray
    subject: np.ndarray
    class_names: list
    channel_names: list
    sampling_rate_hz: float
    folds: dict
    attrs: dict


def fingerprint(X, y, subject):
    digest = hashlib.blake2b(digest_size=16)
    for array in (X, y, subject):
        digest.update(np.ascontiguousarray(array).view(np.uint8))
    return digest.hexdigest()


def count_table(y, folds, class_names):
    """{fold: {split: {class: n}}}"""
    table = {}
    for fold, info in folds.items():
        table[fold] = {
            SPLIT_NAMES[part]: {name: int(((info["split"] == part) & (y == c)).sum())
                                for c, name in enumerate(class_names)}
            for part in range(len(SPLIT_NAMES))
        }
    return table


def build_windows(dataset, spec, out_h5, out_summary):
    """Read the raw data of one dataset spec and write windows.h5 and its summary."""
    spec = resolve_dataset(dataset, spec)       # source defaults, for specs from outside a config
    ws = read_dataset(spec)
    folds = make_folds(ws.y, ws.subject, spec["split"], ws.predefined_test)
    check_class_coverage(folds, ws.y, ws.class_names, spec["split"]["kind"], dataset)
    for fold, info in folds.items():
        info["val_missing_classes"] = [ws.class_names[c] for c in info.get("val_missing_classes", [])]
        if info["val_missing_classes"]:
            log.warning("%s, %s: no choice of validation subjects covers every class; validation "
                        "subject(s) %s lack %s, so this fold picks its checkpoint without them",
                        dataset, fold, info["val_subjects"], ", ".join(info["val_missing_classes"]))
    stats = channel_stats(ws.X, folds, spec["standardize"])
    counts = {"windows": int(len(ws.y)), "dropped": ws.dropped,
              "per_fold": count_table(ws.y, folds, ws.class_names)}
    attrs = {
        "dataset": dataset,
        "source": ws.source,
        "class_names": json.dumps(ws.class_names),
        "channel_names": json.dumps(ws.channel_names),
        "sampling_rate_hz": ws.sampling_rate_hz,
        "split": json.dumps(spec["split"]),
        "standardize": spec["standardize"],
        "fold_names": json.dumps(list(folds)),
        "counts": json.dumps(counts),
        "fingerprint": fingerprint(ws.X, ws.y, ws.subject),
    }
    with atomic_path(out_h5) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("X", data=ws.X)
            f.create_dataset("y", data=ws.y)
            f.create_dataset("subject", data=ws.subject)
            for fold, info in folds.items():
                group = f.create_group(f"folds/{fold}")
                group.create_dataset("split", data=info["split"])
                group.create_dataset("mean", data=stats[fold][0])
                group.create_dataset("std", data=stats[fold][1])
                group.attrs["val_subjects"] = json.dumps(info.get("val_subjects", []))
                group.attrs["test_subjects"] = json.dumps(info.get("test_subjects", []))
                group.attrs["val_missing_classes"] = json.dumps(info["val_missing_classes"])
            f.attrs.update(attrs)
    with atomic_path(out_summary) as tmp:
        tmp.write_text(format_summary(dataset, ws, folds, counts))
    log.info("%s: %d windows of %d channels x %d samples, %d fold(s)", dataset, len(ws.y),
             ws.X.shape[1], ws.X.shape[2], len(folds))


def format_summary(dataset, ws, folds, counts):
    lines = [
        f"# {dataset}: windows",
        "",
        f"source {ws.source}; {len(ws.y)} windows of {ws.X.shape[1]} channels x {ws.X.shape[2]} "
        f"samples at {ws.sampling_rate_hz:g} Hz; {len(np.unique(ws.subject))} subject(s)",
    ]
    for reason, n in ws.dropped.items():
        lines.append(f"dropped ({reason}): {n} windows")
    for fold, info in folds.items():
        lines += ["", f"## {fold}"]
        if info.get("test_subjects"):
            lines.append(f"test subjects {info['test_subjects']}, validation subjects "
                         f"{info['val_subjects']}")
        if info["val_missing_classes"]:
            lines.append(f"**warning**: no choice of validation subjects covers every class; "
                         f"validation subject(s) {info['val_subjects']} lack "
                         f"{', '.join(info['val_missing_classes'])}")
        lines += ["", "| class | train | val | test |", "|---|---:|---:|---:|"]
        per_split = counts["per_fold"][fold]
        for name in ws.class_names:
            row = " | ".join(str(per_split[s][name]) for s in SPLIT_NAMES)
            lines.append(f"| {name} | {row} |")
        totals = " | ".join(str(sum(per_split[s].values())) for s in SPLIT_NAMES)
        lines.append(f"| **all** | {totals} |")
    return "\n".join(lines) + "\n"


def read_windows(path, load_X=True):
    """Load windows.h5 (X only when asked: it is the large part)."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable windows file ({exc})") from None
    with f:
        if "X" not in f or "fingerprint" not in f.attrs:
            raise InputError(f"{path}: not a gafkd windows file (no X or fingerprint)")
        folds = {}
        for fold in json.loads(f.attrs["fold_names"]):
            group = f[f"folds/{fold}"]
            folds[fold] = Fold(group["split"][()], group["mean"][()], group["std"][()],
                               json.loads(group.attrs["val_subjects"]),
                               json.loads(group.attrs["test_subjects"]),
                               json.loads(group.attrs["val_missing_classes"]))
        return Windows(
            X=f["X"][()] if load_X else None,
            y=f["y"][()],
            subject=f["subject"][()],
            class_names=json.loads(f.attrs["class_names"]),
            channel_names=json.loads(f.attrs["channel_names"]),
            sampling_rate_hz=float(f.attrs["sampling_rate_hz"]),
            folds=folds,
            attrs=dict(f.attrs),
        )
