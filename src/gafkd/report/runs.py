"""Runs -> one row each -> per group and seed, then per group over seeds.

A group is one cell of a table: dataset, split, role, modality or method, the image teacher's
encoding, teacher architecture, α. Each seed's metrics are first averaged over the folds of its
split (leave-one-subject-out has several, a single split one), unweighted and weighted by the
test windows of each fold; the group's statistics then run over seeds: mean, standard deviation
with ddof = 1, the number of seeds, folds and runs, and the number of runs the config asked for
(gafkd.report.reporting makes the tables of them).
"""

import math

import numpy as np
import pandas as pd

from gafkd.data.splits import split_kind
from gafkd.encodings import encoding_label, encoding_order
from gafkd.errors import InputError
from gafkd.names import is_image_modality, tag_encoding, teacher_arch as teachers_arch
from gafkd.methods import METHODS, TEACHER_ROWS, student_label
from gafkd.report.comparisons import check_unique
from gafkd.train.run_record import read_metrics

GROUP = ["dataset", "split", "role", "method", "images", "teacher_arch", "arch", "alpha"]
METRICS = ["test_accuracy", "test_macro_f1", "test_accuracy_last", "val_accuracy",
           "optimistic_test_accuracy", "best_epoch", "wall_seconds"]
# Metrics on the test windows: their fold means can be weighted by each fold's test windows.
WEIGHTED = ["test_accuracy", "test_macro_f1", "test_accuracy_last", "optimistic_test_accuracy"]


def row_label(method, images=""):
    """The table row of a group: 'GASF teacher', 'signal teacher', '1 teacher (PI)', ..."""
    if method == "teacher-gaf":
        return f"{encoding_label(images)} teacher"
    if method == "teacher-sig":
        return "signal teacher"
    return student_label(method, images)


def row_order(method, images=""):
    """Sort key of table rows: teachers, then the method table's order, then encodings."""
    methods = list(TEACHER_ROWS) + [m.name for m in METHODS]
    return methods.index(method), encoding_order(images)


def _joined(values):
    return ", ".join(str(v) for v in values)


def run_row(path):
    """One metrics.json (teacher or student) -> a flat dict."""
    metrics = read_metrics(path)
    try:
        config = metrics["config"]
        split = split_kind(config["fold"])
    except (ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a gafkd metrics file ({exc})") from None
    if "modality" in config:
        role, teacher_arch, alpha = "teacher", config["arch"], math.nan
        image = is_image_modality(config["modality"])
        method, images = ("teacher-gaf", config["modality"]) if image else ("teacher-sig", "")
    else:
        role, method, alpha = "student", config["method"], float(config["alpha"])
        teacher_arch, images = teachers_arch(config["teachers"]), tag_encoding(config["teachers"])
    best = metrics["test_at_best_val"]
    record = metrics.get("split", {})
    names = metrics.get("class_names") or []
    absent = [names[c] for c, row in enumerate(best.get("confusion") or []) if c < len(names) and not sum(row)]
    provenance = metrics.get("provenance", {})
    return {
        "dataset": config["dataset"], "split": split, "fold": config["fold"], "role": role, "method": method,
        "images": images, "label": row_label(method, images), "teachers": config.get("teachers", ""), "teacher_arch": teacher_arch, "arch": config["arch"],
        "alpha": alpha, "seed": int(config["seed"]),
        "val_accuracy": metrics["val_accuracy"], "test_accuracy": best["accuracy"],
        "test_macro_f1": best["macro_f1"], "test_accuracy_last": metrics["test_at_last_epoch"]["accuracy"],
        "optimistic_test_accuracy": metrics["optimistic_best_test_accuracy"]["accuracy"],
        "test_n": best.get("n", math.nan), "test_missing_classes": _joined(absent),
        "best_epoch": metrics["best_epoch"], "epochs": metrics["epochs"],
        "wall_seconds": metrics["wall_seconds"],
        "test_subjects": _joined(record.get("test_subjects", [])),
        "val_subjects": _joined(record.get("val_subjects", [])),
        "val_missing_classes": _joined(record.get("val_missing_classes", [])),
        "validation": record.get("validation", "held_out"),
        "device": provenance.get("device_name", provenance.get("device")),
        "code_version": provenance.get("code_version"), "path": str(path),
    }


def fold_order(fold):
    """Sort key of fold names: fold2 before fold10."""
    return (len(fold), fold)


def collect_runs(paths):
    rows = [run_row(p) for p in paths]
    if not rows:
        raise InputError("no runs to aggregate")
    runs = pd.DataFrame(rows)
    check_unique(runs)
    return runs.sort_values(["dataset", "split", "role", "method", "images", "teacher_arch", "alpha", "fold", "seed"],
                            key=lambda column: column.map(fold_order) if column.name == "fold" else column,
                            ignore_index=True)


def seed_means(runs):
    """Per group and seed: the unweighted fold mean of every metric and, for the test metrics,
    the fold mean weighted by test windows (`{metric}_weighted`)."""
    keys = GROUP + ["seed"]
    plain = runs.groupby(keys, sort=True, dropna=False)[METRICS].mean()
    products = runs[WEIGHTED].mul(runs["test_n"], axis=0).assign(test_n=runs["test_n"])
    sums = products.groupby([runs[k] for k in keys], sort=True, dropna=False).sum(min_count=1)
    weighted = sums[WEIGHTED].div(sums["test_n"], axis=0).add_suffix("_weighted")
    return plain.join(weighted).reset_index()


def summarize(runs, expected=None):
    """Per group: mean and std (ddof 1) over seeds of each seed's fold mean, unweighted
    (`{metric}_mean`, `{metric}_std`) and weighted by test windows (`{metric}_weighted_mean`,
    `{metric}_weighted_std`), and the population std (ddof 0, `{metric}_std0`); seeds, folds, runs
    and test windows; `expected` {dataset: {role: runs per group}} adds n_expected and complete."""
    keyed = runs.assign(alpha=runs["alpha"].fillna(-1.0))     # NaN keys would drop teacher rows
    per_seed = seed_means(keyed)
    grouped = per_seed.groupby(GROUP, sort=True)
    values = [m for metric in METRICS for m in (metric, f"{metric}_weighted") if m in per_seed]
    stats = grouped[values].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats = stats.join(grouped[values].std(ddof=0).add_suffix("_std0"))     # the lab's std
    counts = keyed.groupby(GROUP, sort=True)
    # the test windows of the group's split: summed over the folds of a seed, the largest over seeds
    windows = keyed.groupby(GROUP + ["seed"], sort=True)["test_n"].sum(min_count=1).groupby(GROUP).max()
    summary = pd.DataFrame({"seeds": grouped.size(), "folds": counts["fold"].nunique(), "runs": counts.size(),
                            "test_windows": windows})
    summary = summary.join(stats).reset_index()
    summary["alpha"] = summary["alpha"].replace(-1.0, np.nan)
    if expected is not None:
        summary.insert(len(GROUP) + 3, "n_expected",
                       [expected[d][r] for d, r in zip(summary["dataset"], summary["role"])])
        summary.insert(len(GROUP) + 4, "complete", summary["runs"] >= summary["n_expected"])
    return summary
