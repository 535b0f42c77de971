"""Runs -> one table row each -> mean ± std per group -> the lab's result tables.

A group is one row/column cell of a table: dataset, role, modality or method, teacher
architecture, α. Its statistics run over seeds (and over folds for leave-one-subject-out):
mean, standard deviation with ddof = 1, n, and the number of runs the config asked for, so a
group with missing runs is marked instead of silently averaged.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from gafkd.atomic import atomic_path
from gafkd.errors import InputError

GROUP = ["dataset", "role", "method", "teacher_arch", "arch", "alpha"]
METRICS = ["test_accuracy", "test_macro_f1", "test_accuracy_last", "val_accuracy",
           "optimistic_test_accuracy", "best_epoch", "wall_seconds"]
ROW_LABELS = {
    "teacher-gaf": "GAF teacher",
    "teacher-sig": "signal teacher",
    "scratch": "student from scratch",
    "kd-gaf": "1 teacher (GAF)",
    "kd-sig": "1 teacher (signal)",
    "kd2": "2 teachers",
    "kd2-anneal": "+ annealing",
    "kd2-anneal-sp": "+ SP",
}


def run_row(path):
    """One metrics.json (teacher or student) -> a flat dict."""
    try:
        metrics = json.loads(Path(path).read_text())
        config = metrics["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a gafkd metrics file ({exc})") from None
    if "modality" in config:
        role, method, teacher_arch, alpha = "teacher", f"teacher-{config['modality']}", config["arch"], math.nan
    else:
        role, method, alpha = "student", config["method"], float(config["alpha"])
        tag = config["teachers"]
        teacher_arch = "" if tag == "none" else tag.split("+")[0].split("-", 1)[1]
    best = metrics["test_at_best_val"]
    provenance = metrics.get("provenance", {})
    return {
        "dataset": config["dataset"], "fold": config["fold"], "role": role, "method": method,
        "teachers": config.get("teachers", ""), "teacher_arch": teacher_arch, "arch": config["arch"],
        "alpha": alpha, "seed": int(config["seed"]),
        "val_accuracy": metrics["val_accuracy"], "test_accuracy": best["accuracy"],
        "test_macro_f1": best["macro_f1"], "test_accuracy_last": metrics["test_at_last_epoch"]["accuracy"],
        "optimistic_test_accuracy": metrics["optimistic_best_test_accuracy"]["accuracy"],
        "best_epoch": metrics["best_epoch"], "epochs": metrics["epochs"],
        "wall_seconds": metrics["wall_seconds"], "device": provenance.get("device_name", provenance.get("device")),
        "code_version": provenance.get("code_version"), "path": str(path),
    }


def collect_runs(paths):
    rows = [run_row(p) for p in paths]
    if not rows:
        raise InputError("no runs to aggregate")
    runs = pd.DataFrame(rows)
    return runs.sort_values(["dataset", "role", "method", "teacher_arch", "alpha", "fold", "seed"],
                            ignore_index=True)


def summarize(runs, expected=None):
    """Per group: mean, std (ddof 1), n of each metric; `expected` {dataset: {role: runs per group}}."""
    keyed = runs.assign(alpha=runs["alpha"].fillna(-1.0))     # NaN keys would drop teacher rows
    grouped = keyed.groupby(GROUP, sort=True)
    summary = grouped[METRICS].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary["n"] = grouped.size()
    summary["folds"] = grouped["fold"].nunique()
    summary = summary.reset_index()
    summary["alpha"] = summary["alpha"].replace(-1.0, np.nan)
    if expected is not None:
        summary["n_expected"] = [expected[d][r] for d, r in zip(summary["dataset"], summary["role"])]
        summary["complete"] = summary["n"] >= summary["n_expected"]
    return summary


def format_cell(mean, std, n, n_expected=None, percent=True, decimals=2):
    scale = 100 if percent else 1
    spread = "–" if pd.isna(std) else f"{scale * std:.{decimals}f}"
    count = f"{n}" if n_expected is None or n >= n_expected else f"{n} of {n_expected} !"
    return f"{scale * mean:.{decimals}f} ± {spread} ({count})"


def table_rows(summary_of_dataset, alphas):
    """(label, method, alpha) of every table row, in the lab's order, kept if it has runs."""
    present = set(zip(summary_of_dataset["method"], summary_of_dataset["alpha"].fillna(-1.0)))
    rows = [(ROW_LABELS[m], m, None) for m in ("teacher-gaf", "teacher-sig", "scratch", "kd-gaf", "kd-sig")]
    for method in ("kd2", "kd2-anneal", "kd2-anneal-sp"):
        rows += [(f"{ROW_LABELS[method]}, α = {a:g}", method, a) for a in alphas]
    return [(label, m, a) for label, m, a in rows
            if any(pm == m and (a is None or abs(pa - a) < 1e-9) for pm, pa in present)]


def dataset_table(summary, dataset, teacher_archs, alphas, metric="test_accuracy", decimals=2):
    """A DataFrame in the lab's layout: rows methods, columns teacher architectures."""
    part = summary[summary["dataset"] == dataset]
    table = {}
    for label, method, alpha in table_rows(part, alphas):
        cells = {}
        for arch in teacher_archs:
            match = part[part["method"] == method]
            if method != "scratch":
                match = match[match["teacher_arch"] == arch]
            if alpha is not None:
                match = match[(match["alpha"] - alpha).abs() < 1e-9]
            if match.empty:
                cells[arch] = ""
                continue
            row = match.iloc[0]
            cells[arch] = format_cell(row[f"{metric}_mean"], row[f"{metric}_std"], int(row["n"]),
                                      row.get("n_expected"), decimals=decimals)
        table[label] = cells
    return pd.DataFrame.from_dict(table, orient="index", columns=list(teacher_archs))


def markdown_table(frame):
    header = "| | " + " | ".join(frame.columns) + " |"
    lines = [header, "|---|" + "---:|" * len(frame.columns)]
    for label, row in frame.iterrows():
        lines.append(f"| {label} | " + " | ".join(row.values) + " |")
    return "\n".join(lines)


def write_report_tables(metrics_paths, out, teacher_archs, alphas, expected, metric="test_accuracy",
                        decimals=2):
    """runs.csv, summary.csv, tables.md and tables.html (for the Snakemake report)."""
    runs = collect_runs(metrics_paths)
    summary = summarize(runs, expected)
    sections, html = [], []
    for dataset in sorted(runs["dataset"].unique()):
        frame = dataset_table(summary, dataset, teacher_archs, alphas, metric, decimals)
        folds = sorted(runs.loc[runs["dataset"] == dataset, "fold"].unique())
        note = (f"{metric.replace('_', ' ')} in %, mean ± std (n runs) over seeds"
                + (f" and {len(folds)} folds" if len(folds) > 1 else "")
                + "; columns are teacher architectures; `!` marks a group with fewer runs than configured.")
        sections.append(f"## {dataset}\n\n{note}\n\n{markdown_table(frame)}\n")
        html.append(f"<h2>{dataset}</h2><p>{note}</p>" + frame.to_html(escape=True))
    with atomic_path(out["runs"]) as tmp:
        runs.to_csv(tmp, index=False)
    with atomic_path(out["summary"]) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(out["tables"]) as tmp:
        tmp.write_text("# Results\n\n" + "\n".join(sections))
    with atomic_path(out["tables_html"]) as tmp:
        tmp.write_text("<html><body>" + "".join(html) + "</body></html>\n")
    return runs, summary
