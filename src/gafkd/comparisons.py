"""Are the differences real? Paired comparisons of the students, and their ranks over blocks.

Two runs pair when they share dataset, split, fold and seed: the same test windows, the same
initial weights' seed. Each student configuration (method, image teacher's encoding, teacher
architecture, α) is compared with the student from scratch, a multi-teacher one with the better
one-teacher student of its teachers (the better by validation accuracy), and each step of the method table
(+ annealing, + SP) with the method it extends, at the same α. Differences are in points
(percentage points of the metric), configuration minus baseline.

Single splits (predefined, random, holdout) pair over seeds: a paired t-test. Leave-one-subject-
out averages each fold's pairs over their seeds, then compares the folds: Wilcoxon's
signed-rank test, exact. The interval and the Bayesian probabilities of "better", "practically
equivalent" (within ±rope points) and "worse" come from the Bayesian correlated t-test
(Corani & Benavoli 2015, as baycomp computes it), with ρ = 0 for seeds and ρ = 1/k for k folds
whose training sets overlap (Nadeau & Bengio's correction). docs/statistics.md says why.

Ranks: Friedman's test over blocks with Nemenyi's critical difference (Demšar 2006), the data
of the critical-difference diagram.
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

from gafkd.encodings import encoding_order
from gafkd.grid import IMAGE_ROLE
from gafkd.methods import METHODS, method as method_record, row_label

ROPE = 1.0              # points; report.rope
LEVEL = 0.95            # of the intervals
DECISIVE = 0.95         # posterior probability that makes a Bayesian verdict
SIGNIFICANCE = 0.05
ORDER = {m.name: i for i, m in enumerate(METHODS)}
KINDS = ("vs scratch", "vs 1 teacher", "vs previous step")
COLUMNS = ["dataset", "split", "metric", "student_arch", "kind", "comparison", "method", "images", "teacher_arch",
           "alpha", "baseline_method", "baseline_images", "baseline_teacher_arch", "baseline_alpha", "pairing",
           "n_pairs",
           "n_runs", "dropped", "dropped_pairs", "mean", "baseline_mean", "diff", "ci_low", "ci_high",
           "test", "p", "p_holm", "effect", "effect_measure", "rope", "p_better", "p_equivalent",
           "p_worse", "verdict", "note"]


# ---------------------------------------------------------------- statistics on differences

def t_posterior(diffs, rho=0.0):
    """(df, location, scale) of the Student posterior of the mean difference: the Bayesian
    correlated t-test, scale² = (1/n + ρ/(1-ρ)) · var(ddof 1). ρ = 0 is the plain Bayesian
    paired t-test; ρ = n_test/n_total corrects for training sets that overlap."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        raise ValueError(f"a t posterior needs 2 differences or more, got {n}")
    return n - 1, float(d.mean()), math.sqrt(d.var(ddof=1) * (1 / n + rho / (1 - rho)))


def bayes_probabilities(diffs, rope=ROPE, rho=0.0):
    """(P(worse), P(equivalent), P(better)) of the mean difference: below -rope, within ±rope,
    above +rope. Differences without spread make the posterior a point (as baycomp's)."""
    df, loc, scale = t_posterior(diffs, rho)
    if scale == 0:
        return float(loc < -rope), float(abs(loc) <= rope), float(loc > rope)
    worse = float(stats.t.cdf(-rope, df, loc, scale))
    better = float(stats.t.sf(rope, df, loc, scale))
    return worse, 1.0 - worse - better, better


def t_interval(diffs, rho=0.0, level=LEVEL):
    """The central `level` interval of the t posterior (for ρ = 0 the paired t-test's
    confidence interval; for ρ > 0 the corrected resampled t-test's)."""
    df, loc, scale = t_posterior(diffs, rho)
    if scale == 0:
        return loc, loc
    low, high = stats.t.interval(level, df, loc, scale)
    return float(low), float(high)


def corrected_ttest(diffs, test_train_ratio=0.0):
    """Nadeau & Bengio's corrected resampled t-test, two-sided: t = mean / sqrt((1/n + n_test/
    n_train) · var), n - 1 degrees of freedom; a ratio of 0 is the paired t-test. (t, p); NaN
    where every difference is the same."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    scale = math.sqrt(d.var(ddof=1) * (1 / n + test_train_ratio)) if n > 1 else 0.0
    if scale == 0:
        return math.nan, math.nan
    t = float(d.mean() / scale)
    return t, float(2 * stats.t.sf(abs(t), n - 1))


def wilcoxon_p(diffs):
    """Two-sided Wilcoxon signed-rank p over the non-zero differences, exact up to 50 of them."""
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return math.nan
    return float(stats.wilcoxon(d, method="exact" if len(d) <= 50 else "asymptotic").pvalue)


def smallest_wilcoxon_p(n):
    """The smallest two-sided p the exact signed-rank test can give on n non-zero differences:
    all of one sign, 2 / 2**n (0.0625 at n = 5)."""
    return 2.0 / 2 ** n if n > 0 else 1.0


def rank_biserial(diffs):
    """Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) over the non-zero
    differences: +1 when every pair favours the first, -1 when none does."""
    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return math.nan
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def cohens_dz(diffs):
    """Standardised mean difference of paired data: mean / sd (ddof 1) of the differences."""
    d = np.asarray(diffs, dtype=float)
    sd = d.std(ddof=1) if len(d) > 1 else 0.0
    return float(d.mean() / sd) if sd > 0 else math.nan


def holm(pvalues):
    """Holm's step-down adjusted p-values; NaN (no test) stays NaN and does not count."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    steps = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted


# ---------------------------------------------------------------- Friedman and Nemenyi

def average_ranks(scores):
    """Each column's mean rank over the rows (blocks), rank 1 the highest score, ties shared."""
    values = np.asarray(scores, dtype=float)
    return np.apply_along_axis(lambda row: stats.rankdata(-row), 1, values).mean(axis=0)


def friedman(scores):
    """Friedman's test on a blocks × methods score matrix as Demšar (2006) writes it:
    (χ²_F, Iman–Davenport F_F, p of F_F with (k-1, (k-1)(N-1)) degrees of freedom)."""
    values = np.asarray(scores, dtype=float)
    n, k = values.shape
    ranks = average_ranks(values)
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(ranks ** 2) - k * (k + 1) ** 2 / 4)
    denominator = n * (k - 1) - chi2
    if denominator <= 0:                       # every block ranks the methods alike
        return float(chi2), math.inf, 0.0
    ff = (n - 1) * chi2 / denominator
    return float(chi2), float(ff), float(stats.f.sf(ff, k - 1, (k - 1) * (n - 1)))


def nemenyi_cd(k, n, alpha=SIGNIFICANCE):
    """(q_α, critical difference) of Nemenyi's test for k methods over n blocks: q_α is the
    studentized range quantile over √2 (Demšar's table: 2.569 for k = 4 at α = 0.05)."""
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))
    return q, q * math.sqrt(k * (k + 1) / (6 * n))


def cliques(ranks, cd):
    """Maximal runs of methods, in rank order, whose average ranks differ by less than cd:
    [(first, last)] index pairs into sorted(ranks), each of two methods or more."""
    ordered = np.sort(np.asarray(ranks, dtype=float))
    found = []
    for i in range(len(ordered)):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] - ordered[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in found):
            found.append((i, j))
    return found


# ---------------------------------------------------------------- configurations and pairs

def label(config):
    """'2 teachers (GASF + signal), α = 0.3' for (method, images, teacher_arch, alpha)."""
    name, images, _, alpha = config
    return row_label(name, images) + (f", α = {alpha:g}" if method_record(name).alpha_grid else "")


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
    (DataFrame with columns a and b, ['fold3 seed 2 (no student from scratch)', ...])."""
    def values(c):
        runs = _runs_of(students, c)
        return runs.groupby(["fold", "seed"])[metric].mean() * 100

    joined = pd.concat({"a": values(config), "b": values(baseline)}, axis=1).sort_index()
    lost = joined[joined.isna().any(axis=1)]
    single = students["fold"].nunique() == 1
    dropped = []
    for (fold, seed), row in lost.iterrows():
        where = f"seed {seed}" if single else f"{fold} seed {seed}"
        dropped.append(f"{where} (no {label(config) if pd.isna(row['a']) else label(baseline)})")
    return joined.dropna(), dropped


# ---------------------------------------------------------------- one comparison

def compare(students, config, baseline, metric="test_accuracy", rope=ROPE, n_folds=1):
    """One comparison in one dataset's split (`students`: its student runs; `n_folds`: the
    split's folds): a dict of the comparison table's columns but its own (dataset, kind, Holm)."""
    paired, dropped = pairs(students, config, baseline, metric)
    loso = n_folds > 1
    # the seeds of a fold are replicates on one test subject: averaged before the folds meet
    units = paired.groupby(level="fold").mean() if loso else paired
    diffs = (units["a"] - units["b"]).to_numpy()
    n = len(diffs)
    row = {"comparison": f"{label(config)} vs {label(baseline)}",
           "method": config[0], "images": config[1], "teacher_arch": config[2], "alpha": config[3],
           "baseline_method": baseline[0], "baseline_images": baseline[1], "baseline_teacher_arch": baseline[2],
           "baseline_alpha": baseline[3],
           "pairing": "folds (seed means)" if loso else "seeds", "n_pairs": n, "n_runs": len(paired),
           "dropped": len(dropped), "dropped_pairs": "; ".join(dropped),
           "mean": float(units["a"].mean()) if n else math.nan,
           "baseline_mean": float(units["b"].mean()) if n else math.nan,
           "diff": float(diffs.mean()) if n else math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "test": "Wilcoxon signed-rank, exact, over folds" if loso else "paired t-test over seeds",
           "p": math.nan, "effect": math.nan, "effect_measure": "rank-biserial r" if loso else "d_z",
           "rope": rope, "p_better": math.nan, "p_equivalent": math.nan, "p_worse": math.nan,
           "verdict": "", "note": ""}
    if n < 2:
        row["note"] = "no pairs" if n == 0 else "1 pair: no test"
        return row
    rho = 1 / n_folds if loso else 0.0
    row["ci_low"], row["ci_high"] = t_interval(diffs, rho)
    row["p_worse"], row["p_equivalent"], row["p_better"] = bayes_probabilities(diffs, rope, rho)
    row["verdict"] = verdict(row["p_worse"], row["p_equivalent"], row["p_better"])
    if loso:
        row["effect"] = rank_biserial(diffs)
        differ = int(np.count_nonzero(diffs))
        if differ == 0:
            row["note"] = "no fold differs: no test"
        elif smallest_wilcoxon_p(differ) > SIGNIFICANCE:
            row["note"] = (f"{differ} folds differ: the smallest two-sided p of Wilcoxon's test is "
                           f"{smallest_wilcoxon_p(differ):.3g} > {SIGNIFICANCE:g}, no p")
        else:
            row["p"] = wilcoxon_p(diffs)
    else:
        row["effect"] = cohens_dz(diffs)
        if np.ptp(diffs) == 0:
            row["note"] = "the same difference in every pair: no spread, no test; a point posterior"
        else:
            row["p"] = corrected_ttest(diffs)[1]
    return row


def verdict(worse, equivalent, better, threshold=DECISIVE):
    for name, p in (("better", better), ("equivalent", equivalent), ("worse", worse)):
        if p >= threshold:
            return name
    return "undecided"


def comparison_table(runs, dataset, split, metric="test_accuracy", rope=ROPE):
    """Every comparison of one dataset's split: a DataFrame with COLUMNS, p Holm-adjusted over
    its rows, and the baselines without runs (their comparisons left out)."""
    part = runs[(runs["dataset"] == dataset) & (runs["split"] == split)]
    n_folds = part["fold"].nunique()
    students = student_runs(part)
    rows, absent = [], []
    for arch in sorted(students["arch"].unique()):
        of_arch = students[students["arch"] == arch]
        plan, missing = comparison_plan(of_arch)
        absent += [label(b) for b in missing if label(b) not in absent]
        for kind, config, baseline in plan:
            row = compare(of_arch, config, baseline, metric, rope, n_folds)
            rows.append({**row, "kind": kind, "dataset": dataset, "split": split, "metric": metric,
                         "student_arch": arch})
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["p_holm"] = holm(table["p"].to_numpy()) if len(table) else []
    return table, absent


# ---------------------------------------------------------------- the report's text

def _number(value, decimals, signed=False):
    return "–" if pd.isna(value) else f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _p(value):
    return "–" if pd.isna(value) else "< 0.001" if value < 0.001 else f"{value:.3f}"


def design_text(n_folds, rope):
    """Which pairs, which test and why, for the note above a comparison table."""
    bayes = (f"P(better), P(equiv.), P(worse): posterior probabilities that the mean difference is above "
             f"+{rope:g}, within ±{rope:g} (the ROPE, `report.rope`) or below -{rope:g} points")
    if n_folds > 1:
        return (f"Pairs: runs of the same fold and seed; each fold's differences are averaged over its seeds "
                f"first (the seeds of a fold share its test subject), then the {n_folds} folds are compared. "
                "Test: Wilcoxon's signed-rank test, exact, two-sided, over the fold differences (no normality "
                "assumed; zero differences dropped); effect: matched-pairs rank-biserial r. Interval and "
                f"Bayesian probabilities: the Bayesian correlated t-test with ρ = 1/{n_folds} (the folds' "
                "training sets overlap: Nadeau and Bengio's correction, as in baycomp); the 95 % interval is "
                f"its central interval. {bayes}, under that posterior.")
    return ("Pairs: runs of the same seed on this one split. Test: paired t-test over seeds, two-sided "
            "(the seeds are the only replication here, independent given the split); 95 % CI: its t "
            "interval; effect: d_z, the mean over the sd of the differences. The pairs measure the seeds' "
            "noise on this test set, not the variation over other test subjects. Bayesian probabilities: "
            f"the Bayesian paired t-test (correlated t-test with ρ = 0). {bayes}.")


def holm_text(table, n_folds):
    tested = int(table["p"].notna().sum())
    text = f"p (Holm): Holm's step-down adjustment over the {tested} p-values of this table."
    if n_folds > 1 and tested:
        n = int(table.loc[table["p"].notna(), "n_pairs"].max())
        floor = smallest_wilcoxon_p(n) * tested
        if floor > SIGNIFICANCE:
            text += (f" With {n} folds the smallest Wilcoxon p is {smallest_wilcoxon_p(n):.4f}, so with {tested} "
                     f"tests no adjusted p can fall below {SIGNIFICANCE:g} ({floor:.2f} at best): read the "
                     "intervals and the Bayesian columns.")
    return text


def comparison_blocks(table, absent, n_folds, rope, decimals=2):
    """[(heading, note, DataFrame of strings or None)] of one dataset's split (`n_folds` folds),
    for tables.md and tables.html."""
    if table.empty:
        return [("Paired comparisons", "No comparisons: no student has a baseline with runs.", None)]
    several = table["teacher_arch"].replace("", np.nan).dropna().nunique() > 1
    archs = table["student_arch"].nunique() > 1
    unit = "folds" if n_folds > 1 else "seeds"
    lines = {}
    for _, row in table.iterrows():
        name = row["comparison"]
        if several and row["teacher_arch"]:
            name += f" (teachers {row['teacher_arch']})"
        if archs:
            name += f" [student {row['student_arch']}]"
        interval = ("" if pd.isna(row["ci_low"]) else
                    f" [{_number(row['ci_low'], decimals, True)}, {_number(row['ci_high'], decimals, True)}]")
        count = f"{row['n_pairs']}" + (f" ({row['dropped']} dropped)" if row["dropped"] else "")
        lines[name] = {"Δ points [95 % CI]": _number(row["diff"], decimals, True) + interval,
                       "test": "Wilcoxon" if n_folds > 1 else "paired t", "p": _p(row["p"]),
                       "p Holm": _p(row["p_holm"]),
                       row["effect_measure"]: _number(row["effect"], 2, True),
                       unit: count, "P(better)": _number(row["p_better"], 2),
                       "P(equiv.)": _number(row["p_equivalent"], 2), "P(worse)": _number(row["p_worse"], 2),
                       "verdict": row["verdict"] or "–", "note": row["note"]}
    frame = pd.DataFrame.from_dict(lines, orient="index")
    frame = frame if (table["note"] != "").any() else frame.drop(columns="note")
    metric = table["metric"].iloc[0].replace("_", " ")
    note = (f"{metric}: configuration minus baseline, in points. Baselines: the student from scratch; for "
            "multi-teacher students the one-teacher student of the same teacher architecture with the "
            "higher mean validation accuracy; for + annealing and + SP the method each extends, at the same "
            f"α. {design_text(n_folds, rope)} {holm_text(table, n_folds)} verdict: the outcome whose "
            f"posterior probability is at least {DECISIVE:g}, else undecided. {unit}: the {unit} with both runs.")
    blocks = [("Paired comparisons", note, frame)]
    dropped = table[table["dropped"] > 0]
    if len(dropped):
        blocks.append(("Unpaired runs, dropped",
                       "\n".join(f"- {r['comparison']}: {r['dropped']} dropped: {r['dropped_pairs']}"
                                 for _, r in dropped.iterrows()), None))
    if absent:
        blocks.append((None, f"No runs of {', '.join(absent)}: no comparison with "
                             + ("it." if len(absent) == 1 else "them."), None))
    return blocks


# ---------------------------------------------------------------- ranks over blocks

def rank_panels(runs, metric="test_accuracy"):
    """The critical-difference data per teacher architecture: [{"teacher_arch", "scores" (blocks ×
    entries, in points), "unit" ('fold' or 'seed'), "alphas" {entry: {dataset: α chosen}},
    "dropped" (blocks without every entry), "datasets"}].

    Entries: the student from scratch, the one-teacher students and each α-grid method at the α
    with its best mean validation accuracy on that dataset (ties: the smaller α). Blocks: each
    dataset's folds (mean over seeds) where any split has several folds, otherwise each
    dataset's seeds, the only replication of a single split."""
    students = student_runs(runs)
    by_fold = students.groupby(["dataset", "split"])["fold"].nunique().max() > 1
    unit = "fold" if by_fold else "seed"
    panels = []
    for arch in sorted(a for a in students["teacher_arch"].unique() if a):
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
                entry = row_label(m.name, images)
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
        panels.append({"teacher_arch": arch, "scores": complete, "unit": unit, "alphas": alphas,
                       "dropped": dropped, "datasets": sorted(students["dataset"].unique())})
    return panels


def rank_summary(panel, alpha=SIGNIFICANCE):
    """Average ranks (best first) with Friedman's test and Nemenyi's critical difference, or
    None where the panel has fewer than 2 blocks or 2 entries."""
    scores = panel["scores"]
    n, k = scores.shape
    if n < 2 or k < 2:
        return None
    ranks = pd.Series(average_ranks(scores.to_numpy()), index=scores.columns).sort_values()
    chi2, ff, p = friedman(scores.to_numpy())
    q, cd = nemenyi_cd(k, n, alpha)
    return {"ranks": ranks, "means": scores.mean()[ranks.index], "chi2": chi2, "ff": ff, "p": p,
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
        heading = f"Ranks of the students, teachers {panel['teacher_arch']}"
        if summary is None:
            blocks.append((heading, f"Too few blocks or methods for Friedman's test ({blocks_text(panel)}).", None))
            continue
        frame = pd.DataFrame({"average rank": summary["ranks"].map(lambda r: f"{r:.2f}"),
                              "mean (points)": summary["means"].map(lambda v: f"{v:.{decimals}f}")})
        chosen = "; ".join(f"{entry}: " + ", ".join(f"{d} {a:g}" for d, a in per.items())
                           for entry, per in panel["alphas"].items())
        friedman_text = (f"Friedman: χ²_F = {summary['chi2']:.2f}, Iman–Davenport F_F = {summary['ff']:.2f}, "
                         "p " + ("< 0.001" if summary["p"] < 0.001 else f"= {summary['p']:.3f}"))
        nemenyi_text = (f"Nemenyi's critical difference at {summary['alpha']:g}: CD = {summary['q']:.3f} · "
                        f"√(k(k+1)/6N) = {summary['cd']:.2f} ranks (k = {summary['k']}, N = {summary['n']}); two "
                        "methods whose average ranks differ by less are not told apart")
        note = (f"Average rank over {blocks_text(panel)}; rank 1 is the best. {friedman_text}. {nemenyi_text}. "
                "α-grid methods at their best mean validation α" + (f" ({chosen})" if chosen else "") + ".")
        if panel["dropped"]:
            note += f" Blocks without every method, left out: {', '.join(panel['dropped'])}."
        blocks.append((heading, note, frame))
    return blocks
