"""The image cache: every window encoded (gafkd.images.encode), one image per channel stacked as image
channels, written as float16 HDF5 in windows.h5 order; read back checked. A stack of encodings
(`gasf+gadf+mtf`) is built in the same pass: each sensor channel's images, one per encoding in
the stack's order, as consecutive channels (3·C channels for three). Its gallery is drawn by
gafkd.report.figures.plot_gallery.
"""

import logging

import numpy as np

from gafkd.atomic import atomic_path
from gafkd.errors import REBUILD, ConfigError, InputError, check_identity, damaged
from gafkd.encodings import QGAF_METHODS, encoding_parts, qgaf_identity, qgaf_settings
from gafkd.h5checked import CheckedH5, create_checked, create_h5, seal
from gafkd.data.windows import fingerprint

log = logging.getLogger(__name__)

IMAGE_CHUNK_BYTES = 4 << 20
DTYPES = ("float16", "float32")


def images_per_chunk(channels, size, chunk_bytes=IMAGE_CHUNK_BYTES, dtype="float16"):
    """Images per HDF5 chunk of the cache: whole images with all their channels, the largest
    power of two of them that fits in `chunk_bytes` (at least one image), so that a block of
    1,024 windows is a whole number of chunks. Jobs read the cache whole: chunks of a few MB keep
    a read from disk to a few hundred large reads, while the checksum and copies of a chunk
    being written stay in the CPU's cache (benchmarks/images_job.py)."""
    fit = int(chunk_bytes // (channels * size * size * np.dtype(dtype).itemsize))
    return 1 << (fit.bit_length() - 1) if fit else 1


def build_images(windows_h5, out_h5, method="gasf", size=64, chunk_windows=1024, threads=None,
                 chunk_images=None, pi_recipe="lab", dtype="float16", qgaf=None):
    """Write (N, C·E, size, size) images (`dtype`) of every window (E encodings in `method`), in
    windows.h5 order, streaming `chunk_windows` windows at a time through reused buffers so
    memory stays bounded for any dataset size. `threads` caps the encoder's threads (default:
    numba's). The windows are checked against their fingerprint on the way, and every image
    must be finite. `chunk_images`: images per HDF5 chunk (default images_per_chunk);
    `pi_recipe`: gafkd.images.persistence's recipe for `pi`; `qgaf`: images.qgaf for `qgasf`, `qgadf`."""
    parts = encoding_parts(method)
    qgaf = qgaf_settings(qgaf)
    if dtype not in DTYPES:
        raise ConfigError(f"images.dtype: '{dtype}' is not one of {', '.join(DTYPES)}")
    if threads:
        from gafkd.images.encode import limit_threads

        limit_threads(threads)
    with CheckedH5(windows_h5, "windows file", require_seal=False) as src:
        n, channels, length = src.shape("X")
        if not 1 <= size <= length:
            raise ConfigError(f"images.size: {size} must be between 1 and the window length {length}")
        planes = channels * len(parts)
        block = max(1, min(n, chunk_windows))
        rows = min(chunk_images or images_per_chunk(planes, size, dtype=dtype), block)
        # Whole chunks per write (a block of windows is a whole number of chunks): the file is
        # written without a chunk cache.
        chunk = block // rows * rows
        encoded = np.empty((len(parts), chunk * channels, size, size), dtype=np.float32)
        stored = np.empty((chunk, planes, size, size), dtype=dtype)
        empty = dict.fromkeys(parts, 0)
        with atomic_path(out_h5) as tmp, create_h5(tmp) as dst:
            images = create_checked(dst, "images", (n, planes, size, size), dtype, rows)

            def encoded_blocks():
                for start in range(0, n, chunk):
                    block = src.array("X", np.s_[start:start + chunk])
                    images[start:start + len(block)] = _encode_block(
                        block, start, parts, encoded, stored, windows_h5, empty,
                        pi_recipe=pi_recipe, qgaf=qgaf)
                    yield block

            # X is read once: each block is encoded and written as the fingerprint consumes it.
            found = fingerprint(encoded_blocks(), src.array("y"), src.array("subject"))
            if found != src.attrs["fingerprint"]:
                raise damaged(windows_h5, "windows file", "X, y and subject do not match its fingerprint")
            _describe(dst, src.attrs, method, size, parts, pi_recipe, qgaf, empty)
            seal(dst)
    if "pi" in parts and empty["pi"]:
        log.warning("%d of %d window channels have no persistence pair that lives longer than the "
                    "recipe keeps (a constant or nearly constant signal): their persistence images "
                    "are all zero", empty["pi"], n * channels)
    log.info("wrote %d x %d %s images of %dx%d to %s", n, planes, method, size, size, out_h5)


def _encode_block(block, start, parts, encoded, stored, windows_h5, empty, **options):
    """Images of one block of windows (count, C, L), the first row `start` of the cache: each encoding of
    `parts` into `encoded` (E, ≥count·C, S, S), then each channel's encodings side by side into
    `stored` (≥count, C·E, S, S), which it returns; `empty` counts the all-zero images per
    encoding. An image that is not finite stops the job, naming the windows."""
    # Imported here: numba's start-up is a cost every training job would pay for read_images.
    from gafkd.images.encode import encode

    count, channels, length = block.shape
    size = encoded.shape[-1]
    for e, part in enumerate(parts):
        out = encoded[e, :count * channels]
        encode(block.reshape(-1, length), size, part, out, first_row=start * channels, **options)
        if not np.isfinite(out).all():
            raise InputError(f"{windows_h5}: {part} images of windows {start}–"
                             f"{start + count - 1} are not finite; check the windows")
        empty[part] += int(np.count_nonzero(~out.reshape(len(out), -1).any(axis=1)))
    # (E, count·C, S, S) -> (count, C, E, S, S): each channel's encodings together
    np.copyto(stored[:count].reshape(count, channels, len(parts), size, size),
              encoded[:, :count * channels].reshape(len(parts), count, channels, size, size)
              .transpose(1, 2, 0, 3, 4), casting="same_kind")
    return stored[:count]


def _describe(dst, windows_attrs, method, size, parts, pi_recipe, qgaf, empty):
    """The cache's attributes: what it encodes, the windows it came from, and the settings of its
    persistence images and Q-GAF images where it has them."""
    dst.attrs.update({
        "method": method,
        "size": size,
        "windows_fingerprint": windows_attrs["fingerprint"],
        "channel_names": windows_attrs["channel_names"],
        "dataset": windows_attrs.get("dataset", ""),
    })
    if "pi" in parts:
        dst.attrs.update({"pi_recipe": pi_recipe, "pi_empty_images": empty["pi"]})
    if set(QGAF_METHODS) & set(parts):
        dst.attrs.update(qgaf_attrs(qgaf))


def qgaf_attrs(qgaf):
    """The cache's record of its Q-GAF settings (HDF5 has no null: shots 0 is the exact value)."""
    return {f"qgaf_{key}": value or 0 for key, value in qgaf_identity(qgaf).items()}


def read_images(path, windows_fingerprint, expected=None):
    """Load an image cache, checked: every chunk against its checksum, the cache against the
    windows it must come from (fingerprint) and `expected` ({'method', 'size'}) when given."""
    with CheckedH5(path, "image cache") as f:
        if f.attrs.get("windows_fingerprint") != windows_fingerprint:
            raise InputError(f"{path}: image cache was built from other windows than the ones "
                             f"given (fingerprint {f.attrs.get('windows_fingerprint')} != "
                             f"{windows_fingerprint}); {REBUILD}")
        if expected:
            wanted = {k: expected[k] for k in ("method", "size") if k in expected}
            if "pi" in encoding_parts(expected.get("method", f.attrs.get("method"))) and "pi" in expected:
                wanted["pi_recipe"] = expected["pi"]["recipe"]
            if "qgaf" in expected:
                wanted.update(qgaf_attrs(expected["qgaf"]))
            found = {**f.attrs, "dtype": str(f.dtype("images"))}
            wanted["dtype"] = expected.get("dtype", "float16")
            check_identity(path, "images", found, wanted)
        return f.array("images")
