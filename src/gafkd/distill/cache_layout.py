"""A teacher similarity cache's layout and build cost, torch-free: the workflow counts every
similarity job's bytes and time with them while it parses (gafkd.resources); the cache itself is
gafkd.distill.similarity_cache."""

import math

import numpy as np

GROUPS = 3
FORMS = ("gram", "features")
STORED_DTYPE = np.float32
TILE = 256                       # chunk edge of the N×N datasets and the batch of the build
DEFAULT_BLOCK_BYTES = 4 << 30    # the outputs kept per row block, at most (and a quarter of free memory)


def choose_forms(feature_sizes, n):
    """Per group: 'gram' when a window's output has more values than there are windows."""
    return ["gram" if size > n else "features" for size in feature_sizes]


def cache_bytes(forms, feature_sizes, n):
    """Bytes of the stored (and loaded) cache."""
    item = np.dtype(STORED_DTYPE).itemsize
    return sum(n * (n if form == "gram" else size) * item for form, size in zip(forms, feature_sizes))


def row_block(gram_sizes, n, budget_bytes, batch):
    """Rows per block: as many as the budget holds for the kept outputs, a multiple of `batch`."""
    per_row = 4 * max(1, sum(gram_sizes))
    rows = max(batch, budget_bytes // per_row // batch * batch)
    return min(rows, math.ceil(n / batch) * batch)


def teacher_passes(feature_sizes, forms, n, block_bytes=DEFAULT_BLOCK_BYTES, batch=TILE):
    """Teacher forward passes of a build, in passes over all n windows (the builder's plan)."""
    gram = [size for size, form in zip(feature_sizes, forms) if form == "gram"]
    if not gram:
        return 1.0
    block = row_block(gram, n, block_bytes, batch)
    return sum(n - start for start in range(0, n, block)) / n
