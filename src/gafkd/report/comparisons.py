"""Are the differences real? Paired comparisons of the students.

Two runs pair when they share dataset, split, fold and seed: the same test windows, the same
initial weights' seed. Each student configuration (method, image teacher's encoding, teacher
architecture, α) is compared with the student from scratch, a multi-teacher one with the better
one-teacher student of its teachers (the better by validation accuracy), and each step of the method table
(+ annealing, + SP) with the method it extends, at the same α. Differences are in points
(percentage points of the metric), configuration minus baseline. A (configuration, fold, seed)
that appears twice is refused: averaging a rerun with its original would hide it.

The design follows from the runs: one fold pairs over seeds (a paired t-test); several folds
(leave-one-subject-out) average each fold's pairs over their seeds, then compare the folds with
Wilcoxon's signed-rank test, exact with ties. The interval and the Bayesian probabilities of
"better", "practically equivalent" (within ±rope points) and "worse" come from the Bayesian
correlated t-test (Corani & Benavoli 2015), with ρ = 0 for seeds and ρ = 1/k for k folds whose
training sets overlap. Test-set uncertainty (gafkd.report.testset): a bootstrap interval over test
windows (over subjects for LOSO) and McNemar's exact test where a comparison has one seed. The
statistics are gafkd.report.statistics'; docs/statistics.md says why each.
"""

import math

import numpy as np
import pandas as pd

from gafkd.encodings import encoding_order
from gafkd.errors import InputError
from gafkd.names import IMAGE_ROLE
from gafkd.headline import headline_comparison
from gafkd.methods import METHODS, method as method_record, student_label
from gafkd.report.statistics import (SIGNIFICANCE, bayes_probabilities, cohens_dz, corrected_ttest, dz_interval, holm,
                                     mcnemar_p, rank_biserial, rank_biserial_interval, smallest_wilcoxon_p, t_interval,
                                     tolerance, no_spread, wilcoxon_p)
from gafkd.report.testset import TestSet

ROPE = 1.0              # points; report.rope
DECISIVE = 0.95         # posterior probability that makes a Bayesian verdict
ORDER = {m.name: i for i, m in enumerate(METHODS)}
KINDS = ("headline", "vs scratch", "vs 1 teacher", "vs previous step")
RUN_KEYS = ["dataset", "split", "fold", "role", "method", "images", "teacher_arch", "arch", "alpha", "seed"]
COLUMNS = ["dataset", "split", "metric", "student_arch", "kind", "family", "comparison", "method", "images",
           "teacher_arch", "alpha", "baseline_method", "baseline_images", "baseline_teacher_arch", "baseline_alpha",
           "pairing", "n_pairs", "n_runs", "dropped", "dropped_pairs", "mean", "baseline_mean", "diff", "ci_low",
           "ci_high", "testset_low", "testset_high", "testset_unit", "test", "p", "p_holm", "p_mcnemar",
           "mcnemar_counts", "effect", "effect_low", "effect_high", "effect_measure", "rope", "p_better",
           "p_equivalent", "p_worse", "verdict", "note"]


def check_unique(runs, what="runs"):
    """Refuse runs that are the same run twice (a rerun under another pack width, a copied
    folder): InputError naming the run and, where known, its files."""
    keys = [k for k in RUN_KEYS if k in runs]
    twice = runs[runs.duplicated(keys, keep=False)]
    if twice.empty:
        return
    first = twice.iloc[0]
    same = twice[twice[keys].astype(str).eq(first[keys].astype(str)).all(axis=1)]
    files = f": {', '.join(map(str, same['path']))}" if "path" in same else ""
    raise InputError(f"{what}: {label_of_run(first)}, fold {first['fold']}, seed {first['seed']} appears "
                     f"{len(same)} times{files}; keep one run of each (configuration, fold, seed) and "
                     "aggregate again")


def label_of_run(run):
    arch = f", teachers {run['teacher_arch']}" if run.get("teacher_arch") else ""
    alpha = run.get("alpha")
    grid = run["method"] in ORDER and method_record(run["method"]).alpha_grid
    return (f"{run['method']}" + (f" ({run['images']})" if run.get("images") else "") + arch
            + (f", α = {alpha:g}" if grid else "") + (f", student {run['arch']}" if run.get("arch") else ""))


# ---------------------------------------------------------------- configurations and pairs

def label(config):
    """'2 teachers (GASF + signal), α = 0.3' for (method, images, teacher_arch, alpha)."""
    name, images, _, alpha = config
    return student_label(name, images) + (f", α = {alpha:g}" if method_record(name).alpha_grid else "")


def student_runs(runs):
    """The student rows of `runs`, with '' where they have no teacher architecture or image."""
    students = runs[runs["role"] == "student"]
    images = students["images"].fillna("") if "images" in students else ""      # runs made before encodings
    return students.assign(teacher_arch=students["teacher_arch"].fillna(""), images=images)


def _steps():
    """{method: the method it extends}: the same teachers, one more component (a start from
    another method's weights, the similarity term); the method table's `+` rows."""
    def parts(m):
        return {p for p, on in (("start", m.starts_from), ("similarity", m.similarity)) if on}
    return {m.name: base.name for m in METHODS for base in METHODS
            if m.teachers and m.teachers == base.teachers and m.alpha_grid == base.alpha_grid
            and parts(base) < parts(m) and len(parts(m) - parts(base)) == 1}


STEPS = _steps()


def _configs(students):
    keys = students[["method", "images", "teacher_arch", "alpha"]].drop_duplicates()
    configs = [(m, i or "", a or "", float(al)) for m, i, a, al in keys.itertuples(index=False)]
    return sorted(configs, key=lambda c: (c[2], ORDER[c[0]], encoding_order(c[1]), c[3]))


def _runs_of(students, config):
    name, images, arch, alpha = config
    match = students[(students["method"] == name) & (students["images"] == images)
                     & ((students["alpha"] - alpha).abs() < 1e-9)]
    if method_record(name).teachers:
        match = match[match["teacher_arch"] == arch]
    return match


def one_teacher_baseline(students, arch, images):
    """The one-teacher configuration of teacher architecture `arch` (the image teacher of
    encoding `images`, or the signal teacher) with the higher mean validation accuracy (ties:
    the first in the method table), or None."""
    best = None
    for m in METHODS:
        if len(m.teachers) != 1:
            continue
        config = (m.name, images if IMAGE_ROLE in m.teachers else "", arch, float(m.alpha))
        runs = _runs_of(students, config)
        if not runs.empty and (best is None or runs["val_accuracy"].mean() > best[1]):
            best = (config, runs["val_accuracy"].mean())
    return None if best is None else best[0]


def comparison_plan(students):
    """[(kind, configuration, baseline)] of one dataset, split and student architecture, and
    the baselines that have no runs (their comparisons are left out)."""
    configs = _configs(students)
    present = set(configs)
    plan, absent = [], []

    def add(kind, config, baseline):
        if baseline in present:
            plan.append((kind, config, baseline))
        elif baseline not in absent:
            absent.append(baseline)

    scratch = [(m.name, "", "", float(m.alpha)) for m in METHODS if not m.teachers]
    for config in configs:
        name, images, arch, alpha = config
        record = method_record(name)
        if not record.teachers:
            continue
        for base in scratch:
            add("vs scratch", config, base)
        one_teacher = one_teacher_baseline(students, arch, images) if len(record.teachers) > 1 else None
        if one_teacher is not None:
            add("vs 1 teacher", config, one_teacher)
        if name in STEPS:
            add("vs previous step", config, (STEPS[name], images, arch, alpha))
    plan.sort(key=lambda item: (item[1][2], KINDS.index(item[0]), ORDER[item[1][0]], encoding_order(item[1][1]),
                                item[1][3]))
    return plan, absent


def pairs(students, config, baseline, metric):
    """The paired values in points, indexed by (fold, seed), and what could not pair:
    (DataFrame with columns a and b, ['fold3 seed 2 (no student from scratch)', ...]). The same
    (configuration, fold, seed) twice is an InputError."""
    def values(c):
        runs = _runs_of(students, c)
        check_unique(runs, label(c))
        return runs.set_index(["fold", "seed"])[metric] * 100

    joined = pd.concat({"a": values(config), "b": values(baseline)}, axis=1).sort_index()
    lost = joined[joined.isna().any(axis=1)]
    single = students["fold"].nunique() == 1
    dropped = []
    for (fold, seed), row in lost.iterrows():
        where = f"seed {seed}" if single else f"{fold} seed {seed}"
        dropped.append(f"{where} (no {label(config) if pd.isna(row['a']) else label(baseline)})")
    return joined.dropna(), dropped


# ---------------------------------------------------------------- one comparison

def design(students):
    """'loso' where the runs have several folds (each a test subject), else 'seeds'."""
    return "loso" if students["fold"].nunique() > 1 else "seeds"


def resolution(students, paired, loso):
    """The tolerance below which two differences are equal: half a test window of the largest
    test set, divided by the seeds a LOSO fold's difference averages."""
    windows = students["test_n"].max() if "test_n" in students else None
    seeds = paired.groupby(level="fold").size().max() if loso and len(paired) else 1
    return tolerance(windows, seeds)


def compare(students, config, baseline, metric="test_accuracy", rope=ROPE, testset=None,
            alpha=SIGNIFICANCE):
    """One comparison in one dataset's split and student architecture (`students`: its student
    runs; the design follows from their folds): a dict of the comparison table's columns but its
    own (dataset, kind, family, Holm). `testset`: a gafkd.report.testset.TestSet for the test-set
    interval and McNemar's test (by default one that reads the runs' predictions.npz)."""
    archs = sorted(students["arch"].unique()) if "arch" in students else []
    if len(archs) > 1:
        raise ValueError(f"students of {len(archs)} architectures ({', '.join(archs)}): compare within one, "
                         "e.g. students[students['arch'] == 'wrn16-1']")
    paired, dropped = pairs(students, config, baseline, metric)
    loso = design(students) == "loso"
    tol = resolution(students, paired, loso)
    # the seeds of a fold are replicates on one test subject: averaged before the folds meet
    units = paired.groupby(level="fold").mean() if loso else paired
    diffs = (units["a"] - units["b"]).to_numpy()
    n = len(diffs)
    n_folds = students["fold"].nunique()
    row = _row(config, baseline, loso, paired, dropped, units, diffs, rope)
    if n == 0:
        row["note"] = "no pairs"
        return row
    testset = TestSet() if testset is None else testset
    paths = None if "path" not in students else {
        side: _runs_of(students, c).set_index(["fold", "seed"])["path"] for side, c in (("a", config), ("b", baseline))}
    row.update(testset.difference(paired, metric, loso, paths))
    if n < 2:
        if not loso and not math.isnan(row["p_mcnemar"]):
            row["p"], row["test"] = row["p_mcnemar"], "McNemar, exact, over the test windows of 1 seed"
            row["note"] = "1 pair: McNemar's test on its test windows"
        else:
            row["note"] = "1 pair: no test"
        return row
    _test_differences(row, diffs, loso, n_folds, rope, tol, alpha)
    return row


def _row(config, baseline, loso, paired, dropped, units, diffs, rope):
    """A comparison's row before any test: who is compared, the pairs and the means; every
    interval, test and effect still NaN."""
    n = len(diffs)
    return {"comparison": f"{label(config)} vs {label(baseline)}",
            "method": config[0], "images": config[1], "teacher_arch": config[2], "alpha": config[3],
            "baseline_method": baseline[0], "baseline_images": baseline[1], "baseline_teacher_arch": baseline[2],
            "baseline_alpha": baseline[3],
            "pairing": "folds (seed means)" if loso else "seeds", "n_pairs": n, "n_runs": len(paired),
            "dropped": len(dropped), "dropped_pairs": "; ".join(dropped),
            "mean": float(units["a"].mean()) if n else math.nan,
            "baseline_mean": float(units["b"].mean()) if n else math.nan,
            "diff": float(diffs.mean()) if n else math.nan, "ci_low": math.nan, "ci_high": math.nan,
            "testset_low": math.nan, "testset_high": math.nan, "testset_unit": "",
            "test": "Wilcoxon signed-rank, exact with ties, over folds" if loso else "paired t-test over seeds",
            "p": math.nan, "p_mcnemar": math.nan, "mcnemar_counts": "",
            "effect": math.nan, "effect_low": math.nan, "effect_high": math.nan,
            "effect_measure": "rank-biserial r" if loso else "d_z",
            "rope": rope, "p_better": math.nan, "p_equivalent": math.nan, "p_worse": math.nan,
            "verdict": "", "note": ""}


def _test_differences(row, diffs, loso, n_folds, rope, tol, alpha):
    """Fill in `row` from two or more paired differences: the interval, the Bayesian
    probabilities and verdict, the effect and its interval, and the test's p (Wilcoxon's over
    folds, where some fold differs and a p below `alpha` is possible; else the corrected t-test
    over seeds, where the differences spread), or a note that says why there is none."""
    rho = 1 / n_folds if loso else 0.0
    row["ci_low"], row["ci_high"] = t_interval(diffs, rho, tol=tol)
    row["p_worse"], row["p_equivalent"], row["p_better"] = bayes_probabilities(diffs, rope, rho, tol)
    row["verdict"] = verdict(row["p_worse"], row["p_equivalent"], row["p_better"])
    if loso:
        row["effect"] = rank_biserial(diffs, tol)
        row["effect_low"], row["effect_high"] = rank_biserial_interval(diffs, tol)
        differ = int(np.sum(np.abs(diffs) >= tol))
        if differ == 0:
            row["note"] = "no fold differs (within half a test window): no test"
        elif smallest_wilcoxon_p(differ) > alpha:
            row["note"] = (f"{differ} folds differ: the smallest two-sided p of Wilcoxon's test is "
                           f"{smallest_wilcoxon_p(differ):.3g} > {alpha:g}, no p")
        else:
            row["p"] = wilcoxon_p(diffs, tol)
    elif no_spread(diffs, tol):
        row["note"] = ("the same difference in every pair (within half a test window): no spread, no t-test; "
                       "a point posterior")
    else:
        row["effect"] = cohens_dz(diffs, tol)
        row["effect_low"], row["effect_high"] = dz_interval(diffs, tol=tol)
        row["p"] = corrected_ttest(diffs, tol=tol)[1]


def mcnemar_runs(path_a, path_b, testset=None):
    """McNemar's exact test between two runs (their metrics.json) on the same test windows, from
    their predictions.npz: (p, windows only a got right, windows only b got right)."""
    testset = TestSet() if testset is None else testset
    both = testset.aligned([path_a, path_b])
    if both is None:
        raise InputError(f"{path_a}, {path_b}: McNemar's test needs both runs' per-window predictions; one "
                         "records none (run it again)")
    return mcnemar_p(both[0].astype(bool), both[1].astype(bool))


def verdict(worse, equivalent, better, threshold=DECISIVE):
    for name, p in (("better", better), ("equivalent", equivalent), ("worse", worse)):
        if p >= threshold:
            return name
    return "undecided"


def comparison_table(runs, dataset, split, metric="test_accuracy", rope=ROPE, headline=None,
                     alpha=SIGNIFICANCE, testset=None):
    """Every comparison of one dataset's split: a DataFrame with COLUMNS, and the baselines
    without runs (their comparisons left out). `headline` (report.headline, gafkd.headline): the
    comparison reported first, its p unadjusted (family 'headline'); every other comparison is
    exploratory, its p Holm-adjusted over the exploratory rows of the table."""
    part = runs[(runs["dataset"] == dataset) & (runs["split"] == split)]
    students = student_runs(part)
    check_unique(students, f"{dataset} {split}")
    testset = TestSet() if testset is None else testset
    rows, absent = [], []
    for arch in sorted(students["arch"].unique()):
        of_arch = students[students["arch"] == arch]
        plan, missing = comparison_plan(of_arch)
        absent += [label(b) for b in missing if label(b) not in absent]
        chosen = headline_comparison(headline, of_arch, arch)
        if chosen is not None:
            kind = next((k for k, c, b in plan if (c, b) == chosen), "headline")
            plan = [("headline:" + kind, *chosen)] + [item for item in plan if tuple(item[1:]) != chosen]
        for kind, config, baseline in plan:
            row = compare(of_arch, config, baseline, metric, rope, testset, alpha)
            family = "headline" if kind.startswith("headline:") else "exploratory"
            rows.append({**row, "kind": kind.removeprefix("headline:"), "family": family, "dataset": dataset,
                         "split": split, "metric": metric, "student_arch": arch})
    table = pd.DataFrame(rows, columns=COLUMNS)
    if len(table):
        exploratory = table["family"] == "exploratory"
        table.loc[exploratory, "p_holm"] = holm(table.loc[exploratory, "p"].to_numpy())
        table.loc[~exploratory, "p_holm"] = table.loc[~exploratory, "p"]
    return table, absent
