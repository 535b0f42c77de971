"""Markov Transition Fields of windows, one image per channel: pyts' MarkovTransitionField with
its defaults (8 quantile bins per series, each pixel the mean of the field over a block of
pyts' PAA segments), value for value, in a kernel compiled once and cached (pyts compiles its
kernels eagerly at import, uncached: tens of seconds in every images job)."""

import numba
import numpy as np

from gafkd.images.gramian import checked_output, segment_bounds

BINS = 8


def quantile_bins(series, bins=BINS):
    """(n, L) -> (n, L) int64: each sample's quantile bin in its series, as pyts'
    KBinsDiscretizer(strategy='quantile'): edges at the series' percentiles, an edge within 1e-8
    of the next one dropped, a sample's bin the number of edges below it."""
    x = np.asarray(series, dtype=np.float64)
    edges = np.percentile(x, np.linspace(0, 100, bins + 1)[1:-1], axis=1).T
    keep = np.c_[~np.isclose(0, np.diff(edges, axis=1), rtol=0, atol=1e-8), np.ones((len(x), 1), bool)]
    if bins > 2:
        edges = np.where(keep, edges, np.inf)       # a dropped edge is below no sample
    return (edges[:, None, :] < x[:, :, None]).sum(axis=2).astype(np.int64)


def transition_matrices(binned, bins=BINS):
    """(n, L) bins -> (n, bins, bins): each series' transition frequencies from bin a to bin b,
    each row divided by its count (a row without transitions stays 0)."""
    n = len(binned)
    counts = np.zeros((n, bins, bins))
    np.add.at(counts, (np.arange(n)[:, None], binned[:, :-1], binned[:, 1:]), 1)
    totals = counts.sum(axis=2)
    np.place(totals, totals == 0, 1)
    counts /= totals[:, :, None]
    return counts


@numba.njit(parallel=True, cache=True)
def aggregated_field(binned, matrices, bounds):
    """Pixel (j, k) of series i: the mean of matrices[i, bin(r), bin(c)] over samples r of
    segment j and c of segment k, summed row by row as pyts sums it (the same float64 result)."""
    n, size = binned.shape[0], len(bounds) - 1
    images = np.empty((n, size, size))
    for i in numba.prange(n):
        for j in range(size):
            for k in range(size):
                total = 0.0
                count = 0
                for r in range(bounds[j], bounds[j + 1]):
                    row = binned[i, r]
                    for c in range(bounds[k], bounds[k + 1]):
                        total += matrices[i, row, binned[i, c]]
                        count += 1
                images[i, j, k] = total / count
    return images


def markov_transition_field(series, size, out=None):
    """(n, L) series -> (n, size, size) float32 MTF, written into `out` when given."""
    series, out = checked_output(series, size, out)
    binned = quantile_bins(series)
    images = aggregated_field(binned, transition_matrices(binned), segment_bounds(series.shape[1], size))
    out[...] = images
    return out
