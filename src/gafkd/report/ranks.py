"""Ranks of the students over blocks: Friedman's test with Nemenyi's critical difference
(Demšar 2006), the data of the critical-difference diagram, within one student architecture."""

import math

import pandas as pd

from gafkd.report.comparisons import ORDER, check_unique, student_runs
from gafkd.encodings import encoding_order
from gafkd.methods import method as method_record, student_label
from gafkd.report.statistics import SIGNIFICANCE, average_ranks, friedman, nemenyi_cd


def p_text(p):
    """A p as the report prints it: three decimals, or two significant digits below 0.001."""
    return "–" if pd.isna(p) else f"{p:.3f}" if p >= 0.001 else f"{p:.2g}"


def rank_panels(runs, metric="test_accuracy"):
    """The critical-difference data per student and teacher architecture: [{"student_arch",
    "teacher_arch", "scores" (blocks × entries, in points), "unit" ('fold' or 'seed'), "alphas"
    {entry: {dataset: α chosen}}, "dropped" (blocks without every entry), "datasets"}].

    Entries: the student from scratch, the one-teacher students and each α-grid method at the α
    with its best mean validation accuracy on that dataset (ties: the smaller α), all of one
    student architecture. Blocks: each dataset's folds (mean over seeds) where any split has
    several folds, otherwise each dataset's seeds, the only replication of a single split."""
    students = student_runs(runs)
    check_unique(students)
    by_fold = students.groupby(["dataset", "split"])["fold"].nunique().max() > 1
    unit = "fold" if by_fold else "seed"
    panels = []
    for student_arch in sorted(students["arch"].unique()):
        of_arch = students[students["arch"] == student_arch]
        for arch in sorted(a for a in of_arch["teacher_arch"].unique() if a):
            panel = _panel(of_arch, arch, metric, by_fold)
            panels.append({"student_arch": student_arch, "teacher_arch": arch, "unit": unit,
                           "datasets": sorted(students["dataset"].unique()), **panel})
    return panels


def _panel(students, arch, metric, by_fold):
    unit = "fold" if by_fold else "seed"
    columns, alphas = {}, {}
    for (dataset, split), part in students.groupby(["dataset", "split"]):
        if not (part["teacher_arch"] == arch).any():
            continue
        rows = part[["method", "images"]].drop_duplicates().itertuples(index=False)
        for m, images in sorted(rows, key=lambda r: (ORDER[r[0]], encoding_order(r[1]))):
            m = method_record(m)
            config_runs = part[(part["method"] == m.name) & (part["images"] == images)]
            if m.teachers:
                config_runs = config_runs[config_runs["teacher_arch"] == arch]
            if config_runs.empty:
                continue
            entry = student_label(m.name, images)
            if m.alpha_grid:
                val = config_runs.groupby("alpha")["val_accuracy"].mean()
                best = float(val[val == val.max()].index.min())
                config_runs = config_runs[(config_runs["alpha"] - best).abs() < 1e-9]
                alphas.setdefault(entry, {})[dataset] = best
            values = config_runs.groupby("fold" if by_fold else "seed")[metric].mean() * 100
            for block, value in values.items():
                columns.setdefault(entry, {})[(dataset, split, block)] = value
    scores = pd.DataFrame(columns)
    complete = scores.dropna()
    dropped = [f"{d} {s} {unit} {b}" for d, s, b in scores.index.difference(complete.index)]
    for entry, per_dataset in alphas.items():
        if len(per_dataset) == 1:           # one dataset: the entry names its α
            complete = complete.rename(columns={entry: f"{entry}, α = {next(iter(per_dataset.values())):g}"})
    return {"scores": complete, "alphas": alphas, "dropped": dropped}


def rank_summary(panel, alpha=SIGNIFICANCE):
    """Average ranks (best first) with Friedman's test and Nemenyi's critical difference, or
    None where the panel has fewer than 2 blocks or 2 entries."""
    scores = panel["scores"]
    n, k = scores.shape
    if n < 2 or k < 2:
        return None
    ranks = pd.Series(average_ranks(scores.to_numpy()), index=scores.columns).sort_values()
    chi2, ff, p, how = friedman(scores.to_numpy())
    q, cd = nemenyi_cd(k, n, alpha)
    return {"ranks": ranks, "means": scores.mean()[ranks.index], "chi2": chi2, "ff": ff, "p": p, "how": how,
            "q": q, "cd": cd, "n": n, "k": k, "alpha": alpha}


def blocks_text(panel):
    """What a block of the ranks is, for the table's note and the figure's caption."""
    n = len(panel["scores"])
    if panel["unit"] == "seed":
        return (f"{n} blocks: the seeds of " + ", ".join(panel["datasets"]) + " (a single split each, so the "
                "seeds are the only replication: the ranks say which methods differ over training seeds on "
                "the same test windows, not over data)")
    return f"{n} blocks: the folds × datasets, each the mean over its seeds"


def rank_blocks(panels, decimals=2):
    """[(heading, note, DataFrame or None)] of the ranks section of tables.md."""
    blocks = []
    for panel in panels:
        summary = rank_summary(panel)
        several = len({p["student_arch"] for p in panels}) > 1
        heading = (f"Ranks of the students, teachers {panel['teacher_arch']}"
                   + (f", student {panel['student_arch']}" if several else ""))
        if summary is None:
            blocks.append((heading, f"Too few blocks or methods for Friedman's test ({blocks_text(panel)}).", None))
            continue
        frame = pd.DataFrame({"average rank": summary["ranks"].map(lambda r: f"{r:.2f}"),
                              "mean (points)": summary["means"].map(lambda v: f"{v:.{decimals}f}")})
        chosen = "; ".join(f"{entry}: " + ", ".join(f"{d} {a:g}" for d, a in per.items())
                           for entry, per in panel["alphas"].items())
        ff = ("F_F undefined (every block ranks the methods alike)" if math.isnan(summary["ff"])
              else f"Iman–Davenport F_F = {summary['ff']:.2f}")
        how = "exact permutation p" if summary["how"] == "exact" else f"permutation p, {summary['how']}"
        friedman_text = (f"Friedman: χ²_F = {summary['chi2']:.2f}, {ff}, p = {p_text(summary['p'])} ({how}, ties "
                         "within a block counted)")
        nemenyi_text = (f"Nemenyi's critical difference at {summary['alpha']:g}: CD = {summary['q']:.3f} · "
                        f"√(k(k+1)/6N) = {summary['cd']:.2f} ranks (k = {summary['k']}, N = {summary['n']}); two "
                        "methods whose average ranks differ by less are not told apart")
        note = (f"Average rank over {blocks_text(panel)}; rank 1 is the best. {friedman_text}. {nemenyi_text}. "
                "α-grid methods at their best mean validation α" + (f" ({chosen})" if chosen else "") + ".")
        if panel["dropped"]:
            note += f" Blocks without every method, left out: {', '.join(panel['dropped'])}."
        blocks.append((heading, note, frame))
    return blocks
