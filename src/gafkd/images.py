"""The image cache: every window encoded (gafkd.gaf), one image per channel stacked as image
channels, written as float16 HDF5 in windows.h5 order; read back checked. Its gallery is drawn
by gafkd.figures.plot_gallery.
"""

import logging

import numpy as np

from gafkd.atomic import atomic_path
from gafkd.errors import REBUILD, ConfigError, InputError, check_identity, damaged
from gafkd.grid import IMAGE_METHODS as METHODS
from gafkd.h5checked import CheckedH5, create_checked, create_h5, seal
from gafkd.windows import fingerprint

log = logging.getLogger(__name__)

IMAGE_CHUNK_BYTES = 4 << 20


def images_per_chunk(channels, size, chunk_bytes=IMAGE_CHUNK_BYTES):
    """Images per HDF5 chunk of the cache: whole images with all their channels, the largest
    power of two of them that fits in `chunk_bytes` (at least one image), so that a block of
    1,024 windows is a whole number of chunks. Jobs read the cache whole: chunks of a few MB keep
    a read from disk to a few hundred large reads, while the checksum and copies of a chunk
    being written stay in the CPU's cache (benchmarks/images_job.py)."""
    fit = int(chunk_bytes // (channels * size * size * np.dtype(np.float16).itemsize))
    return 1 << (fit.bit_length() - 1) if fit else 1


def build_images(windows_h5, out_h5, method="gasf", size=64, chunk_windows=1024, threads=None,
                 chunk_images=None):
    """Write (N, C, size, size) float16 images of every window, in windows.h5 order, streaming
    `chunk_windows` windows at a time through reused buffers so memory stays bounded for any
    dataset size. `threads` caps the encoder's threads (default: numba's). The windows are checked
    against their fingerprint on the way. `chunk_images`: images per HDF5 chunk (default
    images_per_chunk)."""
    if method not in METHODS:
        raise ConfigError(f"images.method: unknown method '{method}' (known: {', '.join(METHODS)})")
    # Imported here: numba's start-up is a cost every training job would pay for read_images.
    from gafkd.gaf import encode, limit_threads

    if threads:
        limit_threads(threads)
    with CheckedH5(windows_h5, "windows file", require_seal=False) as src:
        n, channels, length = src.shape("X")
        if not 1 <= size <= length:
            raise ConfigError(f"images.size: {size} must be between 1 and the window length {length}")
        block = max(1, min(n, chunk_windows))
        rows = min(chunk_images or images_per_chunk(channels, size), block)
        # Whole chunks per write (a block of windows is a whole number of chunks): the file is
        # written without a chunk cache.
        chunk = block // rows * rows
        encoded = np.empty((chunk * channels, size, size), dtype=np.float32)
        stored = np.empty((chunk, channels, size, size), dtype=np.float16)
        with atomic_path(out_h5) as tmp, create_h5(tmp) as dst:
            images = create_checked(dst, "images", (n, channels, size, size), np.float16, rows)

            def encoded_blocks():
                for start in range(0, n, chunk):
                    block = src.array("X", np.s_[start:start + chunk])
                    count = len(block)
                    encode(block.reshape(-1, length), size, method, encoded[:count * channels])
                    np.copyto(stored[:count],
                              encoded[:count * channels].reshape(count, channels, size, size),
                              casting="same_kind")
                    images[start:start + count] = stored[:count]
                    yield block

            # X is read once: each block is encoded and written as the fingerprint consumes it.
            found = fingerprint(encoded_blocks(), src.array("y"), src.array("subject"))
            if found != src.attrs["fingerprint"]:
                raise damaged(windows_h5, "windows file", "X, y and subject do not match its fingerprint")
            dst.attrs.update({
                "method": method,
                "size": size,
                "windows_fingerprint": src.attrs["fingerprint"],
                "channel_names": src.attrs["channel_names"],
                "dataset": src.attrs.get("dataset", ""),
            })
            seal(dst)
    log.info("wrote %d x %d %s images of %dx%d to %s", n, channels, method, size, size, out_h5)


def read_images(path, windows_fingerprint, expected=None):
    """Load an image cache, checked: every chunk against its checksum, the cache against the
    windows it must come from (fingerprint) and `expected` ({'method', 'size'}) when given."""
    with CheckedH5(path, "image cache") as f:
        if f.attrs.get("windows_fingerprint") != windows_fingerprint:
            raise InputError(f"{path}: image cache was built from other windows than the ones "
                             f"given (fingerprint {f.attrs.get('windows_fingerprint')} != "
                             f"{windows_fingerprint}); {REBUILD}")
        if expected:
            check_identity(path, "images", f.attrs, {k: expected[k] for k in ("method", "size") if k in expected})
        return f.array("images")
