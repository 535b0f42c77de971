"""The statistics of the paired comparisons and ranks, on plain arrays (docs/statistics.md).

Differences are in points of a metric measured on test windows: two differences closer than the
metric's resolution (`tolerance`: half the smallest step the values can take) are equal, and a
difference within it of 0 is 0. Exact tests count ties: Wilcoxon's p comes from every sign flip
of the tied ranks, Friedman's from every ranking of every block (or a permutation sample when
there are too many), so neither is ever inf or 0.
"""

import itertools
import math

import numpy as np
from scipy import integrate, optimize, stats

LEVEL = 0.95            # of the intervals
SIGNIFICANCE = 0.05
FLOAT_TOLERANCE = 1e-6  # points: the resolution where the number of test windows is unknown
BOOTSTRAP = 2000        # resamples of a bootstrap interval
EXACT_FRIEDMAN = 200_000  # rankings enumerated at most by the exact Friedman test
PERMUTATIONS = 20_000   # rankings drawn by its permutation test beyond that


def tolerance(test_windows=None, replicates=1):
    """Half the smallest step of a mean of `replicates` values that are multiples of 1/n (in
    points, n the test windows): differences below it are rounding, not a window."""
    if test_windows is None or not np.isfinite(test_windows) or test_windows <= 0:
        return FLOAT_TOLERANCE
    return 0.5 * 100.0 / (float(test_windows) * max(1, int(replicates)))


def no_spread(diffs, tol=FLOAT_TOLERANCE):
    """Whether every difference is the same, at resolution `tol`."""
    d = np.asarray(diffs, dtype=float)
    return len(d) == 0 or float(np.ptp(d)) < tol


def tie_groups(values, tol=FLOAT_TOLERANCE):
    """Group ids of `values` where sorted neighbours closer than `tol` share a group."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    groups = np.empty(len(v), dtype=int)
    group = 0
    for i, j in enumerate(order):
        if i and v[j] - v[order[i - 1]] >= tol:
            group += 1
        groups[j] = group
    return groups


def tied_ranks(values, tol=FLOAT_TOLERANCE):
    """Average ranks (1 the smallest) with values closer than `tol` tied."""
    return stats.rankdata(tie_groups(values, tol))


# ---------------------------------------------------------------- t-based

def t_posterior(diffs, rho=0.0):
    """(df, location, scale) of the Student posterior of the mean difference: the Bayesian
    correlated t-test, scale² = (1/n + ρ/(1-ρ)) · var(ddof 1). ρ = 0 is the plain Bayesian
    paired t-test; ρ = n_test/n_total corrects for training sets that overlap."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        raise ValueError(f"a t posterior needs 2 differences or more, got {n}")
    return n - 1, float(d.mean()), math.sqrt(d.var(ddof=1) * (1 / n + rho / (1 - rho)))


def bayes_probabilities(diffs, rope, rho=0.0, tol=0.0):
    """(P(worse), P(equivalent), P(better)) of the mean difference: below -rope, within ±rope,
    above +rope. Differences without spread (at `tol`) make the posterior a point (as baycomp's)."""
    df, loc, scale = t_posterior(diffs, rho)
    if scale == 0 or no_spread(diffs, tol):
        return float(loc < -rope), float(abs(loc) <= rope), float(loc > rope)
    worse = float(stats.t.cdf(-rope, df, loc, scale))
    better = float(stats.t.sf(rope, df, loc, scale))
    return worse, 1.0 - worse - better, better


def t_interval(diffs, rho=0.0, level=LEVEL, tol=0.0):
    """The central `level` interval of the t posterior (for ρ = 0 the paired t-test's
    confidence interval; for ρ > 0 the corrected resampled t-test's)."""
    df, loc, scale = t_posterior(diffs, rho)
    if scale == 0 or no_spread(diffs, tol):
        return loc, loc
    low, high = stats.t.interval(level, df, loc, scale)
    return float(low), float(high)


def corrected_ttest(diffs, test_train_ratio=0.0, tol=0.0):
    """Nadeau & Bengio's corrected resampled t-test, two-sided: t = mean / sqrt((1/n + n_test/
    n_train) · var), n - 1 degrees of freedom; a ratio of 0 is the paired t-test. (t, p); NaN
    where every difference is the same (at resolution `tol`)."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    scale = math.sqrt(d.var(ddof=1) * (1 / n + test_train_ratio)) if n > 1 else 0.0
    if scale == 0 or no_spread(d, tol):
        return math.nan, math.nan
    t = float(d.mean() / scale)
    return t, float(2 * stats.t.sf(abs(t), n - 1))


def _nct_cdf(t, df, ncp):
    """P(T <= t) of the noncentral t; by integration over the χ² where scipy's series gives NaN
    (large t and noncentrality at few degrees of freedom)."""
    value = float(stats.nct.cdf(t, df, ncp))
    if math.isfinite(value):
        return value
    return integrate.quad(lambda v: stats.norm.cdf(t * math.sqrt(v / df) - ncp) * stats.chi2.pdf(v, df),
                          0, np.inf)[0]


def cohens_dz(diffs, tol=0.0):
    """Standardised mean difference of paired data: mean / sd (ddof 1) of the differences."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2 or no_spread(d, tol) or d.std(ddof=1) == 0:
        return math.nan
    return float(d.mean() / d.std(ddof=1))


def dz_interval(diffs, level=LEVEL, tol=0.0):
    """Exact `level` interval of d_z under normal differences: the noncentrality parameters of
    the t distribution that put the observed t at either tail, divided by √n."""
    dz = cohens_dz(diffs, tol)
    if math.isnan(dz):
        return math.nan, math.nan
    n = len(diffs)
    t, df, tail = dz * math.sqrt(n), n - 1, (1 - level) / 2

    def ncp(q):
        span = 10 + 2 * abs(t)
        return optimize.brentq(lambda c: _nct_cdf(t, df, c) - q, t - span, t + span, xtol=1e-12)

    return ncp(1 - tail) / math.sqrt(n), ncp(tail) / math.sqrt(n)


# ---------------------------------------------------------------- signed ranks

def _nonzero(diffs, tol):
    d = np.asarray(diffs, dtype=float)
    return d[np.abs(d) >= tol]


def wilcoxon_p(diffs, tol=FLOAT_TOLERANCE):
    """Two-sided exact p of Wilcoxon's signed-rank test with ties: zero differences (within
    `tol`) dropped, tied |differences| (within `tol`) share their average rank, and the null
    distribution of R+ is that of every sign flip of those ranks."""
    d = _nonzero(diffs, tol)
    if len(d) == 0:
        return math.nan
    ranks2 = np.rint(2 * tied_ranks(np.abs(d), tol)).astype(int)     # average ranks are halves
    mass = np.zeros(ranks2.sum() + 1)
    mass[0] = 1.0
    for r in ranks2:                        # each rank is in R+ or not, with probability 1/2
        shifted = np.zeros_like(mass)
        shifted[r:] = mass[:len(mass) - r]
        mass = 0.5 * (mass + shifted)
    observed = ranks2[d > 0].sum()
    centre = ranks2.sum() / 2
    extreme = np.abs(np.arange(len(mass)) - centre) >= abs(observed - centre)
    return float(min(1.0, mass[extreme].sum()))


def smallest_wilcoxon_p(n):
    """The smallest two-sided p the exact signed-rank test can give on n non-zero differences:
    all of one sign, 2 / 2**n (0.0625 at n = 5)."""
    return 2.0 / 2 ** n if n > 0 else 1.0


def rank_biserial(diffs, tol=FLOAT_TOLERANCE):
    """Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) over the non-zero
    differences: +1 when every pair favours the first, -1 when none does."""
    d = _nonzero(diffs, tol)
    if len(d) == 0:
        return math.nan
    ranks = tied_ranks(np.abs(d), tol)
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


# ---------------------------------------------------------------- resampling

def percentile_interval(samples, level=LEVEL):
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(values, statistic=np.mean, level=LEVEL, resamples=BOOTSTRAP, seed=0):
    """Percentile bootstrap interval of statistic(values) over the rows of `values` (the units:
    test windows, subjects, pairs), resampled with replacement."""
    values = np.asarray(values)
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return percentile_interval([statistic(values[row]) for row in draws], level)


def rank_biserial_interval(diffs, tol=FLOAT_TOLERANCE, level=LEVEL, resamples=BOOTSTRAP, seed=0):
    """Bootstrap interval of the matched-pairs rank-biserial r over the pairs."""
    return bootstrap_interval(np.asarray(diffs, dtype=float), lambda d: rank_biserial(d, tol), level,
                              resamples, seed)


def mcnemar_p(a_correct, b_correct):
    """Exact (binomial) McNemar p, two-sided, of two classifiers on the same test windows: of the
    windows exactly one gets right, are the two kinds equally likely? (p, a only, b only)."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar's test needs the same windows: {a.shape} and {b.shape} predictions")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else min(1.0, 2 * float(stats.binom.cdf(min(only_a, only_b), n, 0.5)))
    return p, only_a, only_b


# ---------------------------------------------------------------- multiple tests

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

def block_ranks(scores, tol=FLOAT_TOLERANCE):
    """Ranks within each row (block), rank 1 the highest score, scores closer than `tol` tied."""
    values = np.asarray(scores, dtype=float)
    return np.array([tied_ranks(-row, tol) for row in values])


def average_ranks(scores, tol=FLOAT_TOLERANCE):
    """Each column's mean rank over the rows (blocks), rank 1 the highest score, ties shared."""
    return block_ranks(scores, tol).mean(axis=0)


def _rank_sum_squares(ranks):
    return np.sum(ranks.sum(axis=0) ** 2)


def _orderings(row):
    """The distinct orderings of a block's ranks: k! over the ties' factorials."""
    _, counts = np.unique(row, return_counts=True)
    return math.factorial(len(row)) // math.prod(math.factorial(c) for c in counts)


def friedman(scores, tol=FLOAT_TOLERANCE, seed=0):
    """Friedman's test on a blocks × methods score matrix: (χ²_F, Iman–Davenport F_F, p, how).

    χ²_F and F_F as Demšar (2006) writes them (F_F NaN where every block ranks alike, its
    denominator 0). p is the permutation p of χ²_F given each block's ties: under the null every
    ordering of a block's ranks is equally likely. Exact (every ordering of the blocks after the
    first, which fixes the labels) where they number at most EXACT_FRIEDMAN, else from
    PERMUTATIONS random orderings, (1 + as extreme) / (1 + drawn): never 0."""
    ranks = block_ranks(scores, tol)
    n, k = ranks.shape
    mean_ranks = ranks.mean(axis=0)
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(mean_ranks ** 2) - k * (k + 1) ** 2 / 4)
    denominator = n * (k - 1) - chi2
    ff = (n - 1) * chi2 / denominator if denominator > 1e-9 else math.nan
    observed = _rank_sum_squares(ranks) - 1e-9
    if math.prod(_orderings(row) for row in ranks[1:]) <= EXACT_FRIEDMAN:
        sums = ranks[0][None, :]
        for row in ranks[1:]:
            block = np.array(sorted(set(itertools.permutations(row))))
            sums = (sums[:, None, :] + block[None, :, :]).reshape(-1, k)
        p, how = float(np.mean((sums ** 2).sum(axis=1) >= observed)), "exact"
    else:
        rng = np.random.default_rng(seed)
        drawn = rng.permuted(np.broadcast_to(ranks, (PERMUTATIONS, n, k)), axis=2)
        extreme = int(np.sum((drawn.sum(axis=1) ** 2).sum(axis=1) >= observed))
        p, how = (1 + extreme) / (1 + PERMUTATIONS), f"{PERMUTATIONS} permutations"
    return float(chi2), float(ff), p, how


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
