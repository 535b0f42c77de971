"""Markov Transition Fields of windows, one image per channel, as pyts computes them (on whole
batches)."""

import numpy as np
from pyts.image import MarkovTransitionField


def markov_transition_field(series, size, out=None):
    """(n, L) series -> (n, size, size) float32 MTF, written into `out` when given."""
    images = MarkovTransitionField(image_size=size).fit_transform(series)
    if out is None:
        return images.astype(np.float32)
    out[...] = images
    return out
