"""Quantum Gramian Angular Fields (Xu et al., arXiv 2310.07427): per pixel, one qubit prepared in
|0>, rotated by RY(2 x_i) then RY(2 x_j) (Q-GASF) or RY(-2 x_j) (Q-GADF), measured in Z. The
expectation is cos(2(x_i ± x_j)): computed here in closed form, cos 2x_i cos 2x_j ∓ sin 2x_i sin 2x_j,
in the GAF builder's compiled pass (no circuit simulation). The values enter as they are (no
arccos), so the scaling before encoding decides whether the image wraps:

- minmax: PAA to the image size, then each series min-max to [-1, 1] (qts2d's QGAF with
  computation_method="xu"; a constant series is -1 everywhere, as for the classical GAF);
- standard: PAA, then each series to mean 0 and standard deviation 1 (a constant series is 0);
- none: PAA only, the values as they are.

With `shots`, each pixel is what a device reports from that many runs of its circuit: ⟨Z⟩ =
2k/N - 1 with k ~ Binomial(N, P(0) = cos²(x_i ± x_j)), drawn from a generator seeded by the
seed, the encoding and the series' row (window index × channels + channel), so a cache is the
same whatever its blocks.
"""

import numba
import numpy as np

from gafkd.encodings import QGAF_METHODS, QGAF_SCALINGS, qgaf_settings
from gafkd.errors import ConfigError
from gafkd.images.gramian import COSINE_DIFFERENCE, SUMMATION, checked_output, gram_kernel, segment_bounds


def quantum_gaf(series, size, method="qgasf", scaling="minmax", shots=None, seed=0, first_row=0,
                out=None):
    """(n, L) series -> (n, size, size) float32 Q-GASF or Q-GADF, written into `out` when given.

    `shots`: None for the exact expectation, else the mean of that many simulated measurements
    per pixel; `first_row`: the row number of series[0] in the whole cache (the noise's key)."""
    if method not in QGAF_METHODS:
        raise ConfigError(f"unknown Q-GAF method '{method}' (known: {', '.join(QGAF_METHODS)})")
    qgaf_settings({"scaling": scaling, "shots": shots, "seed": seed})
    series, out = checked_output(series, size, out)
    form = COSINE_DIFFERENCE if method == "qgadf" else SUMMATION
    gram_kernel(series, segment_bounds(series.shape[1], size), QGAF_SCALINGS.index(scaling), True, form,
                numba.get_num_threads(), out)
    if shots is not None:
        measure(out, shots, seed, QGAF_METHODS.index(method), first_row)
    return out


def measure(images, shots, seed, field, first_row):
    """Replace each exact ⟨Z⟩ in `images` by its estimate from `shots` measurements, in place."""
    for r, image in enumerate(images):
        rng = np.random.default_rng([seed, field, first_row + r])
        p_zero = np.clip((1 + image.astype(np.float64)) / 2, 0, 1)
        image[...] = 2 * rng.binomial(shots, p_zero) / shots - 1
