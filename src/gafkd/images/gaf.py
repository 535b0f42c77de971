"""Gramian Angular Fields (summation and difference) of windows, one image per channel.

The builder computes what pyts' `GramianAngularField` computes (PAA with pyts' segment bounds,
min-max of each series to [-1, 1], cos/sin outer products) in one compiled parallel pass per
series and agrees with it to float32 rounding.
"""

import numba

from gafkd.errors import ConfigError
from gafkd.images.gramian import DIFFERENCE, MINMAX, SUMMATION, checked_output, gram_kernel, segment_bounds


def gramian_angular_field(series, size, method="gasf", out=None):
    """(n, L) series -> (n, size, size) float32 GASF or GADF, written into `out` when given.

    One pass per series (PAA in float64, min-max to [-1, 1], cos/sin outer products), parallel
    over series on numba's threads; each image element is written once.
    """
    if method not in ("gasf", "gadf"):
        raise ConfigError(f"unknown GAF method '{method}' (known: gasf, gadf)")
    series, out = checked_output(series, size, out)
    form = DIFFERENCE if method == "gadf" else SUMMATION
    gram_kernel(series, segment_bounds(series.shape[1], size), MINMAX, False, form, numba.get_num_threads(), out)
    return out
