"""The compiled pieces that the classical and quantum GAF builders (gafkd.images.gaf,
gafkd.images.qgaf) share: pyts' PAA, min-max scaling to [-1, 1], and the outer product of per-sample values."""

import numba
import numpy as np

from gafkd.errors import ConfigError


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


# How each series is scaled after PAA (the index of its name in gafkd.encodings.QGAF_SCALINGS).
MINMAX, STANDARD, UNSCALED = 0, 1, 2


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def gram_kernel(series, bounds, scaling, doubled, form, threads, out):
    """Every series' image into `out`, parallel over series: PAA, `scaling`, then per-sample
    values c, s and their outer product in `form`. doubled False: c = x, s = √(1 - x²) (the
    classical GAF's cos φ, sin φ of φ = arccos x); True: c = cos 2x, s = sin 2x (the quantum GAF)."""
    n = series.shape[0]
    size = len(bounds) - 1
    per_thread = (n + threads - 1) // threads
    for thread in numba.prange(threads):
        values = np.empty(size, np.float64)
        cos = np.empty(size, np.float32)
        sin = np.empty(size, np.float32)
        for k in range(thread * per_thread, min(n, (thread + 1) * per_thread)):
            if scaling == MINMAX:
                minmax_paa_into(series[k], bounds, values)
            else:
                paa_into(series[k], bounds, values)
                if scaling == STANDARD:
                    mean = values.mean()
                    std = np.sqrt(((values - mean) ** 2).mean())
                    for j in range(size):
                        values[j] = (values[j] - mean) / std if std > 0 else 0.0
            if doubled:
                for j in range(size):
                    cos[j] = np.cos(2 * values[j])
                    sin[j] = np.sin(2 * values[j])
            else:
                for j in range(size):
                    cos[j] = values[j]
                    sin[j] = np.sqrt(max(0.0, 1 - values[j] * values[j]))
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
