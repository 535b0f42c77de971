"""Image encodings of windows: Gramian Angular Fields (summation/difference), their quantum
variants (gafkd.qgaf), Markov Transition Fields and persistence images (gafkd.persistence), one
image per channel.

The GAF builder computes what pyts' `GramianAngularField` computes (PAA with pyts' segment
bounds, min-max of each series to [-1, 1], cos/sin outer products) in one compiled parallel
pass per series and agrees with it to float32 rounding; MTF calls pyts on whole batches.
"""

import numba
import numpy as np

from gafkd.errors import ConfigError
from gafkd.grid import IMAGE_METHODS as METHODS


def segment_bounds(length, size):
    """pyts' PAA segment bounds: linspace(0, length, size + 1) truncated to integers."""
    return np.linspace(0, length, size + 1).astype(np.int64)


FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
# How an image is made from the per-sample values c, s: GASF c c' - s s', GADF s c' - c s',
# Q-GADF c c' + s s' (Q-GASF is GASF's form of other values).
SUMMATION, DIFFERENCE, COSINE_DIFFERENCE = 0, 1, 2


@numba.njit(inline="always", fastmath=FASTMATH)
def paa_into(x, bounds, paa):
    """PAA of series `x` into `paa` (float64)."""
    for j in range(len(bounds) - 1):
        total = 0.0
        for t in range(bounds[j], bounds[j + 1]):
            total += x[t]
        paa[j] = total / (bounds[j + 1] - bounds[j])


@numba.njit(inline="always", fastmath=FASTMATH)
def minmax_paa_into(x, bounds, paa):
    """PAA of series `x` into `paa`, min-max scaled to [-1, 1]."""
    low = x[0]
    high = x[0]
    for t in range(1, len(x)):
        low = min(low, x[t])
        high = max(high, x[t])
    paa_into(x, bounds, paa)
    paa_low = paa.min()
    span = paa.max() - paa_low
    for j in range(len(paa)):
        # A constant series is -1 everywhere (as scikit-learn's min-max scaler makes it),
        # decided on the raw series: rounding can leave its PAA not quite constant.
        if low == high or span == 0:
            paa[j] = -1.0
        else:
            paa[j] = min(1.0, max(-1.0, (paa[j] - paa_low) / span * 2 - 1))


@numba.njit(inline="always", fastmath=FASTMATH)
def outer_into(cos, sin, form, image):
    """image[i, j] from the per-sample values of one series, in `form` (SUMMATION, ...)."""
    size = len(cos)
    for i in range(size):
        row = image[i]
        if form == DIFFERENCE:
            for j in range(size):
                row[j] = sin[i] * cos[j] - cos[i] * sin[j]
        elif form == COSINE_DIFFERENCE:
            for j in range(size):
                row[j] = cos[i] * cos[j] + sin[i] * sin[j]
        else:
            for j in range(size):
                row[j] = cos[i] * cos[j] - sin[i] * sin[j]


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def _gaf_kernel(series, bounds, form, threads, out):
    n = series.shape[0]
    size = len(bounds) - 1
    per_thread = (n + threads - 1) // threads
    for thread in numba.prange(threads):
        paa = np.empty(size, np.float64)
        cos = np.empty(size, np.float32)
        sin = np.empty(size, np.float32)
        for k in range(thread * per_thread, min(n, (thread + 1) * per_thread)):
            minmax_paa_into(series[k], bounds, paa)
            for j in range(size):
                cos[j] = paa[j]
                sin[j] = np.sqrt(max(0.0, 1 - paa[j] * paa[j]))
            outer_into(cos, sin, form, out[k])


def checked_output(series, size, out):
    """(float32 C-contiguous series, out): `out` allocated when None, else checked."""
    series = np.ascontiguousarray(series, dtype=np.float32)
    n, length = series.shape
    if not 1 <= size <= length:
        raise ConfigError(f"images.size: {size} must be between 1 and the series length {length}")
    if out is None:
        out = np.empty((n, size, size), dtype=np.float32)
    elif out.shape != (n, size, size) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {(n, size, size)}")
    return series, out


def gramian_angular_field(series, size, method="gasf", out=None):
    """(n, L) series -> (n, size, size) float32 GASF or GADF, written into `out` when given.

    One pass per series (PAA in float64, min-max to [-1, 1], cos/sin outer products), parallel
    over series on numba's threads; each image element is written once.
    """
    if method not in ("gasf", "gadf"):
        raise ConfigError(f"unknown GAF method '{method}' (known: gasf, gadf)")
    series, out = checked_output(series, size, out)
    form = DIFFERENCE if method == "gadf" else SUMMATION
    _gaf_kernel(series, segment_bounds(series.shape[1], size), form, numba.get_num_threads(), out)
    return out


def encode(series, size, method, out=None, pi_recipe="lab", qgaf=None, first_row=0):
    """(n, L) -> (n, size, size) float32 image of one encoding (gafkd.grid.IMAGE_METHODS).
    `qgaf`: gafkd.qgaf's settings; `first_row`: the row of series[0] in the cache (its noise key)."""
    if method in ("gasf", "gadf"):
        return gramian_angular_field(series, size, method, out)
    if method in ("qgasf", "qgadf"):
        from gafkd.encodings import qgaf_settings
        from gafkd.qgaf import quantum_gaf
        return quantum_gaf(series, size, method, **qgaf_settings(qgaf), first_row=first_row, out=out)
    if method == "mtf":
        from pyts.image import MarkovTransitionField
        images = MarkovTransitionField(image_size=size).fit_transform(series)
        if out is None:
            return images.astype(np.float32)
        out[...] = images
        return out
    if method == "pi":
        from gafkd.persistence import persistence_images
        return persistence_images(series, size, pi_recipe, out)
    raise ConfigError(f"images.method: unknown encoding '{method}' (known: {', '.join(METHODS)})")


def limit_threads(threads):
    """Run the encoder on at most `threads` threads."""
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
