"""One encoding's images of a batch of windows: the builder of each encoding
(gafkd.encodings.IMAGE_METHODS) and the threads they run on. The builders of MTF and persistence
images are imported when first used."""

import numba

from gafkd.encodings import IMAGE_METHODS, qgaf_settings
from gafkd.errors import ConfigError
from gafkd.images.gaf import gramian_angular_field
from gafkd.images.qgaf import quantum_gaf


def encode(series, size, method, out=None, pi_recipe="lab", qgaf=None, first_row=0):
    """(n, L) -> (n, size, size) float32 image of one encoding (gafkd.encodings.IMAGE_METHODS).
    `qgaf`: gafkd.images.qgaf's settings; `first_row`: the row of series[0] in the cache (its noise key)."""
    if method in ("gasf", "gadf"):
        return gramian_angular_field(series, size, method, out)
    if method in ("qgasf", "qgadf"):
        return quantum_gaf(series, size, method, **qgaf_settings(qgaf), first_row=first_row, out=out)
    if method == "mtf":
        from gafkd.images.mtf import markov_transition_field
        return markov_transition_field(series, size, out)
    if method == "pi":
        from gafkd.images.persistence import persistence_images
        return persistence_images(series, size, pi_recipe, out)
    raise ConfigError(f"images.method: unknown encoding '{method}' (known: {', '.join(IMAGE_METHODS)})")


def limit_threads(threads):
    """Run the encoders on at most `threads` threads."""
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
