"""gafkd.report.statistics at the edges a KD grid produces: accuracies that are multiples of 1/n_test,
tied folds, few seeds. Each value against scipy, exact enumeration done here, or the published
numbers."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats

from gafkd.report import statistics as st


def brute_wilcoxon(diffs, tol):
    """Two-sided p over all 2^n sign flips of the tied average ranks, enumerated."""
    d = np.asarray(diffs, dtype=float)
    d = d[np.abs(d) >= tol]
    ranks = stats.rankdata(np.round(np.abs(d) / tol))        # ties at the resolution
    observed = ranks[d > 0].sum()
    centre = ranks.sum() / 2
    flips = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=len(d))]
    return np.mean(np.abs(np.array(flips) - centre) >= abs(observed - centre) - 1e-9)


def test_constant_gain_over_four_seeds_is_no_spread_not_a_tiny_p():
    # scratch 57/64/70/81 of 150 windows, the student always 3 windows better
    scratch = np.array([57, 64, 70, 81]) / 150
    student = np.array([60, 67, 73, 84]) / 150
    diffs = (student - scratch) * 100
    assert np.ptp(diffs) > 0                                  # float rounding: not exactly equal
    assert stats.ttest_rel(student, scratch).pvalue < 1e-6     # what exact equality used to report
    tol = st.tolerance(150)
    assert tol == pytest.approx(100 / 150 / 2)
    assert st.no_spread(diffs, tol)
    assert math.isnan(st.corrected_ttest(diffs, tol=tol)[1]) and math.isnan(st.cohens_dz(diffs, tol))
    assert st.t_interval(diffs, tol=tol) == (diffs.mean(), diffs.mean())
    assert st.bayes_probabilities(diffs, 1.0, tol=tol) == (0.0, 0.0, 1.0)          # 2 points > rope 1
    # one window of difference is not rounding
    assert not st.no_spread(diffs + np.array([0, 0, 0, 100 / 150]), tol)


def test_wilcoxon_with_tied_folds_is_the_exact_permutation_p():
    diffs = [1, 1, -1, 2, 2, 3, 3, 4, 5]
    assert st.wilcoxon_p(diffs) == 8 / 512 == 0.015625
    assert stats.wilcoxon(diffs, method="exact").pvalue == pytest.approx(0.0117, abs=1e-4)   # ties ignored
    assert st.wilcoxon_p(diffs) == pytest.approx(brute_wilcoxon(diffs, 1e-6))
    # fold differences 1.4e-14 apart are ties, zeros within half a window are dropped
    noisy = np.array(diffs, dtype=float) + np.array([0, 1.4e-14, -1.4e-14, 0, 1.4e-14, 0, 0, 0, 0])
    assert st.wilcoxon_p(np.append(noisy, 1e-15)) == 0.015625
    # no ties: scipy's exact test
    untied = np.array([1.2, -0.4, 2.5, 3.1, 1.8, 0.7, 2.2, -1.1, 0.3])
    assert st.wilcoxon_p(untied) == pytest.approx(stats.wilcoxon(untied, method="exact").pvalue, abs=1e-12)
    rng = np.random.default_rng(3)
    for _ in range(5):
        d = rng.integers(-3, 6, size=8).astype(float)
        if np.any(d != 0):
            assert st.wilcoxon_p(d, tol=0.5) == pytest.approx(brute_wilcoxon(d, 0.5))


def test_friedman_with_identical_rankings_is_finite_and_exact():
    chi2, ff, p, how = st.friedman(np.tile([4.0, 3.0, 2.0, 1.0], (3, 1)))
    assert how == "exact" and math.isnan(ff) and p == pytest.approx(1 / 24 ** 2)
    assert 0.001 <= p and round(p, 4) == 0.0017
    assert st.friedman(np.tile([2.0, 1.0], (2, 1)))[2] == 0.5
    # against every ranking of every block, enumerated (with a tie in the first block)
    scores = np.array([[3.0, 3.0, 1.0], [2.0, 3.0, 1.0], [1.0, 2.0, 3.0]])
    ranks = st.block_ranks(scores)
    observed = np.sum(ranks.sum(axis=0) ** 2)
    stat = [np.sum(np.sum(choice, axis=0) ** 2)
            for choice in itertools.product(*[list(itertools.permutations(r)) for r in ranks])]
    assert st.friedman(scores)[2] == pytest.approx(np.mean(np.array(stat) >= observed - 1e-9))
    # past the exact limit, a permutation p: never 0
    p = st.friedman(np.tile(np.arange(8.0), (12, 1)))[2]
    assert p == 1 / (1 + st.PERMUTATIONS)


def test_mcnemar_exact_is_the_binomial_test_of_the_discordant_windows():
    rng = np.random.default_rng(0)
    a = rng.random(300) < 0.7
    b = np.where(rng.random(300) < 0.1, ~a, a)
    p, only_a, only_b = st.mcnemar_p(a, b)
    assert (only_a, only_b) == (int(np.sum(a & ~b)), int(np.sum(~a & b)))
    assert p == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert st.mcnemar_p(a, a)[0] == 1.0
    # McNemar (1947)-style example: 1 vs 9 discordant pairs, exact p = 2 · P(X <= 1 | 10, 1/2) = 22/1024
    assert st.mcnemar_p([1] * 1 + [0] * 9, [0] * 1 + [1] * 9)[0] == pytest.approx(22 / 1024)
    with pytest.raises(ValueError, match="same windows"):
        st.mcnemar_p(a, b[:10])


def test_dz_interval_is_the_noncentral_t_inversion_and_dual_to_the_t_test():
    rng = np.random.default_rng(2)
    for _ in range(5):
        d = rng.normal(0.6, 1.0, size=6)
        low, high = st.dz_interval(d)
        assert low < st.cohens_dz(d) < high
        # 0 lies inside exactly when the paired t-test's two-sided p exceeds 0.05
        assert (low < 0 < high) == (stats.ttest_1samp(d, 0).pvalue > 0.05)
        t, n = stats.ttest_1samp(d, 0).statistic, len(d)
        assert stats.nct.cdf(t, n - 1, low * math.sqrt(n)) == pytest.approx(0.975)
        assert stats.nct.cdf(t, n - 1, high * math.sqrt(n)) == pytest.approx(0.025)
    # no spread: no effect size, no interval
    assert all(math.isnan(v) for v in st.dz_interval([2.0, 2.0, 2.0 + 1e-15], tol=0.3))


def test_bootstrap_intervals_against_scipy():
    rng = np.random.default_rng(4)
    correct = (rng.random(400) < 0.72).astype(float)
    low, high = st.bootstrap_interval(correct, resamples=4000)
    ref = stats.bootstrap((correct,), np.mean, n_resamples=4000, method="percentile", random_state=1)
    assert (low, high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=0.01)
    wald = 1.96 * math.sqrt(correct.mean() * (1 - correct.mean()) / len(correct))
    assert high - low == pytest.approx(2 * wald, rel=0.1)
    diffs = np.array([1.0, 2.0, -0.5, 3.0, 1.5, 2.5, 0.5, 1.0, 2.0])
    low, high = st.rank_biserial_interval(diffs, resamples=4000)
    ref = stats.bootstrap((diffs,), st.rank_biserial, vectorized=False, n_resamples=4000, method="percentile",
                          random_state=1)
    assert (low, high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=0.1)
    assert -1 <= low <= st.rank_biserial(diffs) <= high <= 1
    assert st.rank_biserial_interval([1.0, 2.0, 3.0]) == (1.0, 1.0)
