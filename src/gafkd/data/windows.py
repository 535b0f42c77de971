"""`windows.h5`: every window of a dataset with labels, subjects, folds and training statistics.

Layout:
    X (N, C, L) float32, y (N,) int64, subject (N,) int64
    folds/<fold>/split (N,) int8 (0 train, 1 val, 2 test), folds/<fold>/mean, std (C,) float32
    folds/<fold> attrs: val_subjects, test_subjects, val_missing_classes (JSON)
    attrs: dataset, source, class_names, channel_names, sampling_rate_hz, split (JSON),
           standardize, fold_names, counts (JSON), fingerprint (hash of X, y, subject)
"""

import hashlib
import itertools
import json
import logging
from dataclasses import dataclass

import numpy as np

from gafkd.atomic import atomic_paths
from gafkd.h5checked import CheckedH5, create_h5, seal, write_checked
from gafkd.data.datasets import resolve_dataset
from gafkd.data.download import read_record
from gafkd.errors import InputError, damaged
from gafkd.data.readers import read_dataset
from gafkd.data.splits import SPLIT_NAMES, channel_stats, check_class_coverage, make_folds
from gafkd.data.windowset import DROP_REASONS, WARNINGS

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
    """Hash of X, y and subject; X may also be an iterable of its consecutive blocks of rows."""
    digest = hashlib.blake2b(digest_size=16)
    for array in itertools.chain([X] if isinstance(X, np.ndarray) else X, [y, subject]):
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
    for name, why in ws.skipped:
        log.warning("%s: %s not read (%s)", spec.get("raw") or dataset, name, why)
    try:
        folds = make_folds(ws.y, ws.subject, spec["split"], ws.predefined_test)
    except InputError as error:
        if not ws.skipped:
            raise
        skipped = ", ".join(f"{name} ({why})" for name, why in ws.skipped)
        raise InputError(f"{error}; not read from {spec.get('raw')}: {skipped}") from None
    check_class_coverage(folds, ws.y, ws.class_names, spec["split"]["kind"], dataset,
                         spec["split"].get("validation", "held_out"), ws.subject)
    for fold, info in folds.items():
        info["val_missing_classes"] = [ws.class_names[c] for c in info.get("val_missing_classes", [])]
        if info["val_missing_classes"]:
            log.warning("%s, %s: no choice of validation subjects covers every class; validation "
                        "subject(s) %s lack %s, so this fold picks its checkpoint without them",
                        dataset, fold, info["val_subjects"], ", ".join(info["val_missing_classes"]))
    stats = channel_stats(ws.X, folds, spec["standardize"])
    counts = {"windows": int(len(ws.y)), "dropped": ws.dropped, "warnings": ws.warnings,
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
    with atomic_paths(out_h5, out_summary) as (tmp_h5, tmp_summary):
        with create_h5(tmp_h5) as f:
            write_checked(f, "X", ws.X)
            write_checked(f, "y", ws.y)
            write_checked(f, "subject", ws.subject)
            for fold, info in folds.items():
                group = f.create_group(f"folds/{fold}")
                write_checked(group, "split", info["split"])
                write_checked(group, "mean", stats[fold][0])
                write_checked(group, "std", stats[fold][1])
                group.attrs["val_subjects"] = json.dumps(info.get("val_subjects", []))
                group.attrs["test_subjects"] = json.dumps(info.get("test_subjects", []))
                group.attrs["val_missing_classes"] = json.dumps(info["val_missing_classes"])
            f.attrs.update(attrs)
            seal(f)
        record = read_record(spec["raw"]) if spec["source"] == "pamap2" else None
        tmp_summary.write_text(format_summary(dataset, ws, folds, counts, record))
    log.info("%s: %d windows of %d channels x %d samples, %d fold(s)", dataset, len(ws.y),
             ws.X.shape[1], ws.X.shape[2], len(folds))


def format_summary(dataset, ws, folds, counts, download=None):
    """The summary's markdown; `download`: (sha256, archive name, record path) where the raw
    folder came from a download (gafkd.data.download.read_record)."""
    lines = [
        f"# {dataset}: windows",
        "",
        f"source {ws.source}; {len(ws.y)} windows of {ws.X.shape[1]} channels x {ws.X.shape[2]} "
        f"samples at {ws.sampling_rate_hz:g} Hz; {len(np.unique(ws.subject))} subject(s)",
    ]
    if download is not None:
        sha256, name, path = download
        lines += ["", "## raw data", "",
                  f"downloaded archive `{name}`, sha256 `{sha256}` (recorded in `{path}`; "
                  f"`download.sha256` in the config checks a later download against it)"]
    lines += ["", "## left out", ""]
    if counts["dropped"]:
        lines += ["| reason | subject | class or activity | left out |", "|---|---|---|---:|"]
    else:
        lines.append("no window left out")
    for reason, info in counts["dropped"].items():
        text, unit = DROP_REASONS[reason][0], info["unit"]
        rows = [(row["subject"], row["class"], row["count"]) for row in info["detail"]]
        for subject, label, n in rows + [("**all**", "**all**", info["total"])]:
            subject, label = ("–" if v is None else v for v in (subject, label))
            lines.append(f"| {text} | {subject} | {label} | {n} {unit[:-1] if n == 1 else unit} |")
    if ws.skipped:
        lines += ["", "## raw folder entries not read", "", "| entry | why |", "|---|---|"]
        lines += [f"| {name} | {why} |" for name, why in ws.skipped]
    if ws.warnings:
        lines += ["", "## warnings", "", "| warning | file | where | count |", "|---|---|---|---:|"]
    for row in ws.warnings:
        text, unit = WARNINGS[row["warning"]]
        n = row["count"]
        lines.append(f"| {text} | {row['file']} | {row['where']} | {n} {unit[:-1] if n == 1 else unit} |")
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
    """Load windows.h5 (X only when asked: it is the large part), checked: every chunk read against
    its checksum and the attributes (the fingerprint among them) against their digest. A file
    without checksums has X, y and subject checked against its fingerprint instead."""
    what = "windows file"
    with CheckedH5(path, what, require_seal=False) as f:
        if "X" not in f.file or "fingerprint" not in f.attrs:
            raise InputError(f"{path}: not a gafkd windows file (no X or fingerprint)")
        folds = {}
        for fold in f.json("fold_names"):
            name = f"folds/{fold}"
            folds[fold] = Fold(f.array(f"{name}/split"), f.array(f"{name}/mean"), f.array(f"{name}/std"),
                               f.json("val_subjects", name), f.json("test_subjects", name),
                               f.json("val_missing_classes", name))
        y, subject = f.array("y"), f.array("subject")
        X = f.array("X") if load_X or not f.sealed else None
        if not f.sealed and fingerprint(X, y, subject) != f.attrs["fingerprint"]:
            raise damaged(path, what, "X, y and subject do not match its fingerprint")
        return Windows(
            X=X if load_X else None,
            y=y,
            subject=subject,
            class_names=f.json("class_names"),
            channel_names=f.json("channel_names"),
            sampling_rate_hz=float(f.attrs["sampling_rate_hz"]),
            folds=folds,
            attrs=dict(f.attrs),
        )
