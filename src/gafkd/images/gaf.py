"""Image encodings of windows: Gramian Angular Fields (summation/difference), their quantum
variants (gafkd.images.qgaf), Markov Transition Fields and persistence images (gafkd.images.persistence), one
image per channel.

The GAF builder computes what pyts' `GramianAngularField` computes (PAA with pyts' segment
bounds, min-max of each series to [-1, 1], cos/sin outer products) in one compiled parallel
pass per series and agrees with it to float32 rounding; MTF calls pyts on whole batches.
"""

import numba
import numpy as np

from gafkd.errors import ConfigError
from gafkd.encodings import IMAGE_METHODS as METHODS
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


def encode(series, size, method, out=None, pi_recipe="lab", qgaf=None, first_row=0):
    """(n, L) -> (n, size, size) float32 image of one encoding (gafkd.encodings.IMAGE_METHODS).
    `qgaf`: gafkd.images.qgaf's settings; `first_row`: the row of series[0] in the cache (its noise key)."""
    if method in ("gasf", "gadf"):
        return gramian_angular_field(series, size, method, out)
    if method in ("qgasf", "qgadf"):
        from gafkd.encodings import qgaf_settings
        from gafkd.images.qgaf import quantum_gaf
        return quantum_gaf(series, size, method, **qgaf_settings(qgaf), first_row=first_row, out=out)
    if method == "mtf":
        from pyts.image import MarkovTransitionField
        images = MarkovTransitionField(image_size=size).fit_transform(series)
        if out is None:
            return images.astype(np.float32)
        out[...] = images
        return out
    if method == "pi":
        from gafkd.images.persistence import persistence_images
        return persistence_images(series, size, pi_recipe, out)
    raise ConfigError(f"images.method: unknown encoding '{method}' (known: {', '.join(METHODS)})")


def limit_threads(threads):
    """Run the encoder on at most `threads` threads."""
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
