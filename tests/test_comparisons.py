"""gafkd.report.comparisons: each statistic against scipy or a published example, synthetic grids with
a known truth, and the bad inputs (unpaired runs, comparisons without pairs)."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_reporting import outputs, write_run

from gafkd.report import comparison_text as ct
from gafkd.report import comparisons as cmp
from gafkd.report import ranks as rk
from gafkd.report import statistics as st
from gafkd.report.reporting import write_report_tables

# baycomp's example data (docs/code/accuracies.txt of janezd/baycomp): naive Bayes and J48 on
# 'hepatitis', the first run of 10-fold cross-validation, in %.
NBC = [100.0, 93.75, 75.0, 75.0, 81.25, 86.667, 73.333, 86.667, 73.333, 80.0]
J48 = [87.5, 68.75, 75.0, 68.75, 81.25, 86.667, 86.667, 73.333, 80.0, 86.667]

# Demšar (2006), Table 6: AUC of C4.5, C4.5+m, C4.5+cf, C4.5+m+cf on 14 data sets. The printed
# values are rounded: the paper's ranks put C4.5+cf ahead of C4.5+m+cf on 'voting' (0.975 both).
DEMSAR = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.97501, 0.975], [0.957, 0.978, 0.946, 0.970]])


# ------------------------------------------------------------------ statistics


def test_correlated_ttest_reproduces_baycomp():
    diffs = np.subtract(NBC, J48)
    # baycomp 1.0.3: two_on_single(nbc, j48, rope=1) -> (p_left, p_rope, p_right), left = nbc better;
    # one run of 10 folds: ρ = 1/10
    worse, equivalent, better = st.bayes_probabilities(diffs, rope=1, rho=1 / 10)
    assert (better, equivalent, worse) == pytest.approx(
        (0.6469584619977451, 0.1227312297144163, 0.2303103082878386), abs=1e-12)
    worse, _, better = st.bayes_probabilities(diffs, rope=0, rho=1 / 10)
    assert better == pytest.approx(0.7119373612507098, abs=1e-12)
    # baycomp's test of compute_statistics: x = [4, 2, 6], y = [5, 7, 3], 3 folds
    df, loc, scale = st.t_posterior(np.subtract([5, 7, 3], [4, 2, 6]), rho=1 / 3)
    assert (df, loc, scale ** 2) == (2, 1, pytest.approx((4 ** 2 + 4 ** 2) / 2 * (1 / 3 + 1 / 2)))


def test_paired_t_against_scipy():
    a, b = np.array([71.2, 69.8, 70.4, 72.0, 70.9]), np.array([68.1, 68.0, 69.9, 69.5, 67.2])
    diffs = a - b
    assert st.corrected_ttest(diffs)[1] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    interval = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert st.t_interval(diffs) == pytest.approx((interval.low, interval.high))
    # ρ = 0: the posterior's mass below 0 is the one-sided p of the paired t-test
    worse, _, _ = st.bayes_probabilities(diffs, rope=0)
    assert worse == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)
    assert st.cohens_dz(diffs) == pytest.approx(diffs.mean() / diffs.std(ddof=1))


def test_nadeau_bengio_correction():
    diffs = np.array([1.5, -0.5, 2.0, 0.8, 1.1, 2.4, -0.2, 0.9])
    ratio = 0.25                                       # n_test / n_train
    t, p = st.corrected_ttest(diffs, ratio)
    expected = diffs.mean() / math.sqrt((1 / len(diffs) + ratio) * diffs.var(ddof=1))
    assert t == pytest.approx(expected)
    assert p == pytest.approx(2 * stats.t.sf(expected, len(diffs) - 1))
    assert p > st.corrected_ttest(diffs)[1]           # the correction widens, never narrows
    # the same correction as the correlated t-test's: ρ / (1 - ρ) = n_test / n_train
    worse, _, better = st.bayes_probabilities(diffs, rope=0, rho=ratio / (1 + ratio))
    assert p == pytest.approx(2 * min(worse, better))
    assert math.isnan(st.corrected_ttest([2.0, 2.0, 2.0])[1])


def test_wilcoxon_exact_and_its_floor():
    diffs = np.array([1.2, -0.4, 2.5, 3.1, 0.0, 1.8, 0.7, 2.2, -1.1])
    assert st.wilcoxon_p(diffs) == pytest.approx(stats.wilcoxon(diffs, method="exact").pvalue)
    assert st.smallest_wilcoxon_p(5) == 0.0625 == stats.wilcoxon(np.arange(1, 6.0), method="exact").pvalue
    assert st.smallest_wilcoxon_p(9) == pytest.approx(stats.wilcoxon(np.arange(1, 10.0), method="exact").pvalue)
    nonzero = diffs[diffs != 0]
    r_plus = stats.wilcoxon(nonzero, alternative="greater").statistic
    total = len(nonzero) * (len(nonzero) + 1) / 2
    assert st.rank_biserial(diffs) == pytest.approx((r_plus - (total - r_plus)) / total)
    assert st.rank_biserial([1.0, 2.0, 3.0]) == 1.0


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    adjusted = st.holm(p)
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then made monotone
    assert list(adjusted[:4]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    assert list(st.holm([0.5, 0.9])) == [1.0, 1.0]


def test_friedman_and_nemenyi_reproduce_demsar():
    ranks = st.average_ranks(DEMSAR)
    assert list(ranks) == pytest.approx([3.143, 2.000, 2.893, 1.964], abs=5e-4)
    chi2, ff, p, how = st.friedman(DEMSAR)
    assert (round(chi2, 2), round(ff, 2)) == (9.28, 3.69)
    assert ff > stats.f.ppf(0.95, 3, 39)        # Demšar: F(3, 39) = 2.85 at 0.05
    # 24^13 orderings: a permutation p (ties counted: below the asymptotic F's 0.020), checked by
    # shuffling each block's ranks here, one block at a time
    rng, ranks = np.random.default_rng(1), st.block_ranks(DEMSAR)
    observed = np.sum(ranks.sum(axis=0) ** 2)
    drawn = [np.sum(np.array([rng.permutation(row) for row in ranks]).sum(axis=0) ** 2) for _ in range(4000)]
    expected = np.mean(np.array(drawn) >= observed - 1e-9)
    assert how == f"{st.PERMUTATIONS} permutations"
    assert p == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / 4000))
    # the critical values of Demšar's Table 5(a) (to their 3 decimals, within one in the last), and
    # CD = 1.25 (1.12 at α = 0.10) for 4 methods on 14 data sets
    table = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    assert [st.nemenyi_cd(k, 10)[0] for k in range(2, 11)] == pytest.approx(table, abs=1.1e-3)
    assert round(st.nemenyi_cd(4, 14)[1], 2) == 1.25
    assert round(st.nemenyi_cd(4, 14, alpha=0.10)[1], 2) == 1.12
    # without ties Demšar's χ²_F is scipy's statistic
    untied = np.random.default_rng(0).normal(size=(12, 5))
    assert st.friedman(untied)[0] == pytest.approx(stats.friedmanchisquare(*untied.T).statistic)


def test_cliques():
    assert st.cliques([1.0, 1.5, 3.0, 3.2], cd=1.0) == [(0, 1), (2, 3)]
    assert st.cliques([1.0, 1.9, 2.5], cd=1.0) == [(0, 1), (1, 2)]
    assert st.cliques([1.0, 3.0], cd=1.0) == []


# ------------------------------------------------------------------ synthetic grids


def grid(folds, seeds, effect, noise, split="holdout", missing=(), rng=0, methods=("scratch", "kd2")):
    """Student runs with a known truth: kd2 (α 0.3) = scratch + effect points + noise, per (fold,
    seed); each fold has its own level (a subject effect), each seed a little of its own."""
    rng = np.random.default_rng(rng)
    rows = []
    for fold in folds:
        level = rng.normal(0.70, 0.08)
        for seed in seeds:
            base = level + rng.normal(0, 0.01)
            values = {"scratch": base, "kd-sig": base + rng.normal(0, noise) / 100,
                      "kd2": base + (effect + rng.normal(0, noise)) / 100}
            for name in methods:
                if (name, fold, seed) in missing:
                    continue
                rows.append({"dataset": "gene", "split": split, "fold": fold, "role": "student",
                             "method": name, "teacher_arch": "" if name == "scratch" else "wrn16-1",
                             "arch": "wrn16-1", "alpha": {"scratch": 0.0, "kd-sig": 0.0}.get(name, 0.3),
                             "seed": seed, "val_accuracy": values[name], "test_accuracy": values[name],
                             "test_macro_f1": values[name] - 0.02})
    return pd.DataFrame(rows)


def row_of(table, method="kd2", baseline="scratch"):
    match = table[(table["method"] == method) & (table["baseline_method"] == baseline)]
    assert len(match) == 1
    return match.iloc[0]


def test_three_points_better_over_seeds_is_detected():
    runs = grid(["holdout"], range(1, 6), effect=3.0, noise=0.5)
    table, absent = cmp.comparison_table(runs, "gene", "holdout")
    row = row_of(table)
    assert absent == [] and row["n_pairs"] == 5 and row["pairing"] == "seeds"
    assert row["diff"] == pytest.approx(3.0, abs=0.8)
    assert row["ci_low"] > 0 and row["p"] < 0.01 and row["p_holm"] == row["p"]     # one test
    assert row["test"] == "paired t-test over seeds" and row["effect_measure"] == "d_z"
    assert row["p_better"] > 0.95 and row["verdict"] == "better"


def test_three_points_better_over_loso_folds_is_detected():
    folds = [f"fold{i}" for i in range(9)]
    runs = grid(folds, (1, 2, 3), effect=3.0, noise=0.8, split="loso")
    row = row_of(cmp.comparison_table(runs, "gene", "loso")[0])
    assert row["n_pairs"] == 9 and row["n_runs"] == 27 and row["pairing"] == "folds (seed means)"
    assert row["test"].startswith("Wilcoxon") and row["effect"] == 1.0             # every fold better
    assert row["p"] == pytest.approx(st.smallest_wilcoxon_p(9)) and row["p"] < 0.05
    assert row["verdict"] == "better"
    # the interval is the correlated t-test's, with ρ = 1/9: wider than the plain t interval
    paired = runs.pivot_table(index=["fold", "seed"], columns="method", values="test_accuracy") * 100
    diffs = (paired["kd2"] - paired["scratch"]).groupby(level="fold").mean().to_numpy()
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(st.t_interval(diffs, rho=1 / 9))
    assert row["ci_high"] - row["ci_low"] > np.subtract(*st.t_interval(diffs)[::-1])


def test_equal_method_is_not_detected_and_called_equivalent():
    runs = grid(["holdout"], range(1, 6), effect=0.0, noise=0.3, rng=1)
    row = row_of(cmp.comparison_table(runs, "gene", "holdout")[0])
    assert row["p"] > 0.05 and row["ci_low"] < 0 < row["ci_high"]
    assert row["p_equivalent"] > 0.95 and row["verdict"] == "equivalent"
    # a narrower ROPE than the noise: no longer called equivalent
    row = row_of(cmp.comparison_table(runs, "gene", "holdout", rope=0.05)[0])
    assert row["verdict"] == "undecided" and row["rope"] == 0.05


def test_metric_switches_the_values():
    runs = grid(["holdout"], range(1, 4), effect=3.0, noise=0.5)
    runs.loc[runs["method"] == "kd2", "test_macro_f1"] -= 0.05       # F1 worse by 5 points than accuracy
    accuracy = row_of(cmp.comparison_table(runs, "gene", "holdout")[0])
    f1 = row_of(cmp.comparison_table(runs, "gene", "holdout", metric="test_macro_f1")[0])
    assert f1["diff"] == pytest.approx(accuracy["diff"] - 5) and f1["metric"] == "test_macro_f1"


def test_one_teacher_baseline_and_previous_step():
    runs = grid(["holdout"], (1, 2, 3), effect=1.0, noise=0.5, methods=("scratch", "kd-sig", "kd2"))
    anneal = runs[runs["method"] == "kd2"].assign(method="kd2-anneal")
    table, _ = cmp.comparison_table(pd.concat([runs, anneal]), "gene", "holdout")
    assert list(zip(table["kind"], table["method"], table["baseline_method"])) == [
        ("vs scratch", "kd-sig", "scratch"), ("vs scratch", "kd2", "scratch"),
        ("vs scratch", "kd2-anneal", "scratch"), ("vs 1 teacher", "kd2", "kd-sig"),
        ("vs 1 teacher", "kd2-anneal", "kd-sig"), ("vs previous step", "kd2-anneal", "kd2")]
    same = row_of(table, "kd2-anneal", "kd2")
    assert same["diff"] == 0 and math.isnan(same["p"]) and "no spread" in same["note"]


# ------------------------------------------------------------------ bad input


def test_unpaired_runs_are_dropped_and_named():
    runs = grid(["holdout"], (1, 2, 3, 4), effect=3.0, noise=0.5, missing={("kd2", "holdout", 3)})
    row = row_of(cmp.comparison_table(runs, "gene", "holdout")[0])
    assert (row["n_pairs"], row["dropped"]) == (3, 1)
    assert row["dropped_pairs"] == "seed 3 (no 2 teachers, α = 0.3)"
    folds = [f"fold{i}" for i in range(7)]
    runs = grid(folds, (1, 2), effect=3.0, noise=0.5, split="loso",
                missing={("scratch", "fold2", 1), ("kd2", "fold5", 1), ("kd2", "fold5", 2)})
    row = row_of(cmp.comparison_table(runs, "gene", "loso")[0])
    assert (row["n_pairs"], row["n_runs"], row["dropped"]) == (6, 11, 3)     # fold5 has no pair left
    assert row["dropped_pairs"] == ("fold2 seed 1 (no student from scratch); fold5 seed 1 (no 2 teachers, "
                                    "α = 0.3); fold5 seed 2 (no 2 teachers, α = 0.3)")


def test_comparison_without_pairs_is_a_named_row():
    runs = grid(["holdout"], (1, 2, 3), effect=3.0, noise=0.5,
                missing={("kd2", "holdout", 1), ("kd2", "holdout", 2), ("scratch", "holdout", 3)})
    table, _ = cmp.comparison_table(runs, "gene", "holdout")
    row = row_of(table)
    assert row["n_pairs"] == 0 and row["note"] == "no pairs" and row["dropped"] == 3
    assert math.isnan(row["p"]) and math.isnan(row["diff"]) and row["verdict"] == ""
    blocks = ct.comparison_blocks(table, [], 1, 1.0)
    frame = blocks[0][2]
    assert frame.loc["2 teachers, α = 0.3 vs student from scratch", "note"] == "no pairs"
    assert "seed 1 (no 2 teachers, α = 0.3); seed 2 (no 2 teachers, α = 0.3); seed 3 (no student from " \
           "scratch)" in blocks[1][1]
    one = grid(["holdout"], (1, 2), effect=3.0, noise=0.5, missing={("kd2", "holdout", 1)})
    assert row_of(cmp.comparison_table(one, "gene", "holdout")[0])["note"] == "1 pair: no test"


def test_too_few_folds_print_no_p():
    folds = [f"fold{i}" for i in range(4)]
    row = row_of(cmp.comparison_table(grid(folds, (1, 2), effect=3.0, noise=0.5, split="loso"),
                                      "gene", "loso")[0])
    assert math.isnan(row["p"]) and "0.125 > 0.05" in row["note"]
    assert row["verdict"] in ("better", "undecided") and not math.isnan(row["ci_low"])


def test_missing_baseline_method_leaves_its_comparisons_out():
    runs = grid(["holdout"], (1, 2, 3), effect=3.0, noise=0.5, methods=("kd2",))
    table, absent = cmp.comparison_table(runs, "gene", "holdout")
    assert table.empty and absent == ["student from scratch"]
    assert "No comparisons" in ct.comparison_blocks(table, absent, 1, 1.0)[0][1]


# ------------------------------------------------------------------ ranks and the report


def test_rank_blocks_are_folds_or_seeds():
    folds = [f"fold{i}" for i in range(9)]
    loso = grid(folds, (1, 2, 3), effect=3.0, noise=0.5, split="loso", methods=("scratch", "kd-sig", "kd2"))
    [panel] = rk.rank_panels(loso)
    assert panel["unit"] == "fold" and len(panel["scores"]) == 9
    assert list(panel["scores"].columns) == ["student from scratch", "1 teacher (signal)", "2 teachers, α = 0.3"]
    summary = rk.rank_summary(panel)
    assert summary["ranks"].index[0] == "2 teachers, α = 0.3" and summary["ranks"].iloc[0] == 1.0
    assert summary["n"] == 9 and summary["p"] < 0.05
    single = grid(["predefined"], (1, 2, 3), effect=3.0, noise=0.5, split="predefined")
    [panel] = rk.rank_panels(single)
    assert panel["unit"] == "seed" and len(panel["scores"]) == 3
    assert "the seeds are the only replication" in rk.blocks_text(panel)


def test_report_tables_hold_comparisons_and_ranks(tmp_path):
    paths = []
    for seed, acc in zip((1, 2, 3, 4), (0.60, 0.62, 0.66, 0.63)):
        paths.append(write_run(tmp_path, acc, seed, method="scratch"))
        paths.append(write_run(tmp_path, acc + 0.0, seed, method="kd-gaf", alpha=1.0))
        if seed != 4:                                             # kd2's seed 4 is missing
            paths.append(write_run(tmp_path, acc + 0.03 + 0.002 * seed, seed, method="kd2", alpha=0.3))
    out = outputs(tmp_path)
    write_report_tables(paths, out, ["wrn16-1"], [0.3], {"gene": {"teacher": 4, "student": 4}}, rope=0.5)
    written = pd.read_csv(out["comparisons"])
    assert list(written.columns) == cmp.COLUMNS
    assert set(written["comparison"]) == {"1 teacher (GASF) vs student from scratch",
                                          "2 teachers (GASF + signal), α = 0.3 vs student from scratch",
                                          "2 teachers (GASF + signal), α = 0.3 vs 1 teacher (GASF)"}
    assert set(written["rope"]) == {0.5}
    markdown = out["tables"].read_text()
    assert "### Paired comparisons" in markdown and "paired t-test over seeds" in markdown
    assert "within ±0.5 (the ROPE" in markdown
    dropped = "- 2 teachers (GASF + signal), α = 0.3 vs student from scratch: 1 dropped: seed 4 (no 2 teachers (GASF + signal), α = 0.3)"
    assert dropped in markdown
    assert "## Ranks across datasets (Friedman, Nemenyi)" in markdown
    assert "Paired comparisons" in out["tables_html"].read_text()


def test_critical_difference_figure(tmp_path):
    import gafkd.report.figures as figures

    folds = [f"fold{i}" for i in range(6)]
    runs = grid(folds, (1, 2), effect=3.0, noise=0.5, split="loso", methods=("scratch", "kd-sig", "kd2"))
    runs.to_csv(tmp_path / "runs.csv", index=False)
    figures.write_critical_difference(tmp_path / "runs.csv", tmp_path / "cd.png")
    assert (tmp_path / "cd.png").read_bytes()[:4] == b"\x89PNG"
    # no student runs at all: a figure that says so, not a crash
    teachers = runs.assign(role="teacher", method="teacher-gaf")
    figures.critical_difference_figure(teachers, tmp_path / "none.png")
    assert (tmp_path / "none.png").read_bytes()[:4] == b"\x89PNG"
