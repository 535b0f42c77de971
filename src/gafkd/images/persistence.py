"""Persistence images (PI) of 1-D windows: the lab's recipe (jeunsom/TDA_KD, PI.ipynb) in one
compiled parallel pass over windows.

What the notebook does to one window channel x (no scaling of the signal first):

1. H0 of the sublevel-set (lower-star) filtration of the path: vertex i is born at x_i, the edge
   i–i+1 appears at max(x_i, x_{i+1}) (ripser on a sparse distance matrix, which computes in
   float32). Here: a union of intervals over the samples in increasing order (elder rule), on
   the window cast to float32, so the pairs are ripser's.
2. Pairs with lifetime <= 1e-3 are dropped, then the infinite pair, then those with lifetime
   <= 0.01 (LIFETIME; the first cut is thereby redundant). Lifetimes are float64 differences of
   the float32 births and deaths, as in the notebook.
3. persim's `PersImage(pixels=[64, 64], spread=0.015, specs={"minBD": -1, "maxBD": 1})`:
   each pair becomes a point (birth b, persistence p = d - b) with the linear weight
   (1 / max p) * p, and a Gaussian of standard deviation `spread` around it is integrated over
   each pixel as a product of normal-CDF differences, Phi((upper - c) / spread) - Phi((lower -
   c) / spread), along each axis. The image is persim's, transposed and flipped: row 0 holds the
   highest persistence, column 0 the lowest birth.
4. Each image is divided by its own maximum (an image without a surviving pair stays zero).

The notebook's output shows persim's deprecation warning for PersImage, so persim >= 0.2.0;
the class's arithmetic is the same in persim 0.1.3 to 0.4.1. `recipe="lab"` reproduces it, bin
edges included (the same np.linspace calls), and keeps its arithmetic (Phi as cephes' ndtr
computes it from erf/erfc, the products in its order): the images agree with the notebook's to
float32 rounding (tests/test_persistence.py).

Defects of PersImage's binning, kept by "lab" and fixed by "clean" (size n, specs minBD = -1,
maxBD = 1):

- The birth bins do not tile the birth axis. Their lower edges are linspace(minBD, maxBD, n),
  a pitch of (maxBD - minBD) / (n - 1) = 2/63, but every bin is maxBD / n = 1/64 wide (the
  width ignores minBD): between two bins lies a gap of 2/63 - 1/64, and half of the birth
  axis is in no pixel. Every point keeps only about half of its kernel, and its brightest pixel
  depends on where it is born: 0.40 of the kernel at a bin's centre, 0.24 in a gap's middle, so
  two points of equal weight can differ by a factor of 1.7 in the image.
- The persistence bins have the same off-by-one: lower edges linspace(0, maxBD, n) (pitch
  1/63) with width 1/64, so thin gaps of 1/4032 remain.
- Both grids take n points of linspace as lower edges where n + 1 edges were meant: the last
  bin starts at maxBD, so the image covers [minBD, maxBD + 1/64] x [0, maxBD + 1/64] and the
  pixel centres are not those of an n x n grid over the specs' ranges.
- A bin above a point gets Phi(upper) - Phi(lower) as the difference of two numbers close to 1:
  beyond about 8 spreads it is rounded to 0 or to a multiple of 1.1e-16, while bins below keep
  their tail down to 1e-308. This only shows in a window whose points all lie off the image
  (births below -1.1, say), where the division by the image's maximum amplifies those tails.

`recipe="clean"` keeps everything else (pairs, cuts, weights, spread, normalisation,
orientation) and bins on n + 1 contiguous edges, linspace(minBD, maxBD, n + 1) for births and
linspace(0, maxBD, n + 1) for persistence, so the pixels tile [-1, 1] x [0, 1] exactly, and it
computes a bin above a point from upper tails, Phi(-lower) - Phi(-upper), without cancellation.

The lab's ranges are in signal units: births in [-1, 1] and persistence in [0, 1] (a point
outside shows only its kernel's tail), so the windows are expected to lie in about [-1, 1].

Speed: each thread takes a share of the windows and, per window, computes the pairs, renders
them and normalises the image, with its own scratch buffers. Bins further than `CUTOFF`
spreads from a point are skipped: each would get less than Phi(-10) = 7.6e-24 of its kernel
(in the lab's arithmetic a bin above it gets exactly 0). A window whose image maximum is not at
least 1e12 times what was skipped (which only happens when every point lies off the image) is
rendered again without skipping.
"""

import math

import numba
import numpy as np

from gafkd.encodings import PI_MIN_LENGTH as MIN_LENGTH
from gafkd.errors import ConfigError, InputError

RECIPES = ("lab", "clean")
LIFETIME = 0.01
SPREAD = 0.015
BIRTH_RANGE = (-1.0, 1.0)     # PersImage's specs: minBD, maxBD
CUTOFF = 10.0                 # spreads; Phi(-10) = 7.62e-24
_TAIL = 7.7e-24
_RELATIVE = 1e-12
_SQRTH = 0.70710678118654752440


@numba.njit(cache=True)
def _ndtr(a):
    """The standard normal CDF as cephes (scipy.special.ndtr) computes it."""
    x = a * _SQRTH
    z = abs(x)
    if z < _SQRTH:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0 else y


@numba.njit(cache=True)
def _h0_pairs(x, other, low, births, deaths):
    """Finite H0 pairs (death > birth) of the lower-star filtration of the path `x`, written to
    births/deaths; returns their count. Components are intervals of samples: `other` holds, at
    each end of an interval, its other end (-1: sample not in the filtration yet) and `low`
    its minimum."""
    length = len(x)
    other[:] = -1
    count = 0
    for v in np.argsort(x, kind="mergesort"):
        value = x[v]
        start = v
        end = v
        minimum = value
        # A present neighbour is the end of its interval; the edge to it appears now, at x[v].
        if v > 0 and other[v - 1] >= 0:
            start = other[v - 1]
            minimum = low[v - 1]
        if v + 1 < length and other[v + 1] >= 0:
            end = other[v + 1]
            right = low[v + 1]
            if start < v:
                younger = max(minimum, right)
                if value > younger:
                    births[count] = younger
                    deaths[count] = value
                    count += 1
            minimum = min(minimum, right)
        other[v] = v
        other[start] = end
        other[end] = start
        low[start] = minimum
        low[end] = minimum
    return count


@numba.njit(parallel=True, cache=True)
def _diagram_kernel(series, threads, births, deaths, counts):
    n, length = series.shape
    per_thread = (n + threads - 1) // threads
    for thread in numba.prange(threads):
        other = np.empty(length, np.int64)
        low = np.empty(length, np.float32)
        for k in range(thread * per_thread, min(n, (thread + 1) * per_thread)):
            counts[k] = _h0_pairs(series[k], other, low, births[k], deaths[k])


@numba.njit(cache=True)
def _bin_masses(centre, lower, upper, cutoff, upper_tails, mass):
    """Gaussian mass of each bin around `centre` over the bins that reach within `cutoff`
    spreads of it, [first, stop) (the edges increase); returns first, stop."""
    first = np.searchsorted(upper, centre - cutoff * SPREAD)
    stop = np.searchsorted(lower, centre + cutoff * SPREAD, side="right")
    for i in range(first, stop):
        zl = (lower[i] - centre) / SPREAD
        zu = (upper[i] - centre) / SPREAD
        if upper_tails and zl > 0:
            mass[i] = _ndtr(-zl) - _ndtr(-zu)
        else:
            mass[i] = _ndtr(zu) - _ndtr(zl)
    return first, stop


@numba.njit(cache=True)
def _render(births, persistence, count, edges, upper_tails, cutoff, xm, ym, image):
    """PersImage's unnormalised image of `count` points, already in output orientation (row 0:
    the highest persistence bin); returns its maximum."""
    size = len(xm)
    image[:] = 0.0
    top = persistence[0]
    for k in range(1, count):
        top = max(top, persistence[k])
    scale = 1.0 / top
    for k in range(count):
        weight = scale * persistence[k]
        x0, x1 = _bin_masses(births[k], edges[0], edges[1], cutoff, upper_tails, xm)
        y0, y1 = _bin_masses(persistence[k], edges[2], edges[3], cutoff, upper_tails, ym)
        for j in range(y0, y1):
            row = image[size - 1 - j]
            yj = ym[j]
            for i in range(x0, x1):
                row[i] += xm[i] * yj * weight
    return image.max()


@numba.njit(parallel=True, cache=True)
def _image_kernel(series, edges, upper_tails, threads, out):
    n, length = series.shape
    size = out.shape[1]
    per_thread = (n + threads - 1) // threads
    for thread in numba.prange(threads):
        other = np.empty(length, np.int64)
        low = np.empty(length, np.float32)
        births = np.empty(length // 2 + 1, np.float64)
        deaths = np.empty(length // 2 + 1, np.float64)
        xm = np.empty(size, np.float64)
        ym = np.empty(size, np.float64)
        image = np.empty((size, size), np.float64)
        for k in range(thread * per_thread, min(n, (thread + 1) * per_thread)):
            found = _h0_pairs(series[k], other, low, births, deaths)
            count = 0
            for m in range(found):
                if deaths[m] - births[m] > LIFETIME:
                    births[count] = births[m]
                    deaths[count] = deaths[m] - births[m]   # now the persistence
                    count += 1
            if count == 0:
                out[k] = 0.0
                continue
            top = _render(births, deaths, count, edges, upper_tails, CUTOFF, xm, ym, image)
            if top * _RELATIVE < 2 * count * _TAIL:
                top = _render(births, deaths, count, edges, upper_tails, np.inf, xm, ym, image)
            if top > 0:
                for r in range(size):
                    for c in range(size):
                        out[k, r, c] = image[r, c] / top
            else:
                out[k] = 0.0


def bin_edges(size, recipe="lab"):
    """(birth lower, birth upper, persistence lower, persistence upper) bin edges, (4, size)."""
    low, high = BIRTH_RANGE
    if recipe == "lab":
        # PersImage._transform, with pixels=[size, size] and specs minBD=low, maxBD=high.
        dx = high / size
        births = np.linspace(min(low, 0), high, size)
        persistence = np.linspace(0, high, size)
        return np.stack([births, births + dx, persistence, persistence + dx])
    births = np.linspace(low, high, size + 1)
    persistence = np.linspace(0, high, size + 1)
    return np.stack([births[:-1], births[1:], persistence[:-1], persistence[1:]])


def _windows(series):
    """The windows as C-contiguous float32 (what ripser computes with), checked."""
    series = np.asarray(series)
    if series.ndim != 2:
        raise ValueError(f"series must be 2-D (windows, samples), got shape {series.shape}")
    n, length = series.shape
    if length < MIN_LENGTH:
        raise ConfigError(f"images.method: pi needs windows of at least {MIN_LENGTH} samples, got {length}")
    series = np.ascontiguousarray(series, dtype=np.float32)
    finite = np.isfinite(series).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        kind = "NaN" if np.isnan(series[bad[0]]).any() else "infinite values"
        raise InputError(f"persistence images: {len(bad)} of {n} windows hold NaN or infinite samples "
                         f"(window {bad[0]} holds {kind}); a sublevel-set filtration needs finite samples")
    return series


def h0_diagrams(series, min_lifetime=0.0):
    """Finite H0 pairs of each window's lower-star filtration (float32 samples, as ripser), those
    with death - birth > min_lifetime: (births, deaths, offsets), window k's pairs being
    births[offsets[k]:offsets[k + 1]] (float64 holding float32 values; order unspecified)."""
    series = _windows(series)
    n, length = series.shape
    births = np.zeros((n, length // 2 + 1))
    deaths = np.zeros_like(births)
    counts = np.empty(n, np.int64)
    _diagram_kernel(series, numba.get_num_threads(), births, deaths, counts)
    found = np.arange(births.shape[1]) < counts[:, None]
    keep = found & (deaths - births > min_lifetime)
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    return births[keep], deaths[keep], offsets


def persistence_images(series, size=64, recipe="lab", out=None):
    """(n, L) windows (one channel each) -> (n, size, size) float32 persistence images, each
    divided by its own maximum, written into `out` when given. A window without a pair that
    lives longer than LIFETIME (a constant one, say) gives an all-zero image."""
    if recipe not in RECIPES:
        raise ConfigError(f"images.pi.recipe: unknown recipe '{recipe}' (known: {', '.join(RECIPES)})")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ConfigError(f"images.size: {size!r} must be a positive number of pixels")
    series = _windows(series)
    shape = (len(series), size, size)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    _image_kernel(series, bin_edges(size, recipe), recipe == "clean", numba.get_num_threads(), out)
    return out
