"""Image encodings of windows: Gramian Angular Fields (summation/difference) and Markov
Transition Fields, one image per channel, stacked as image channels.

The GAF builder computes what pyts' `GramianAngularField` computes (PAA with pyts' segment
bounds, min-max of each series to [-1, 1], cos/sin outer products) in one compiled parallel
pass per series and agrees with it to float32 rounding; MTF calls pyts on whole batches.
"""

import logging

import numba
import numpy as np

from gafkd.atomic import atomic_path
from gafkd.h5checked import CheckedH5, create_checked, create_h5, seal
from gafkd.errors import REBUILD, ConfigError, InputError, check_identity, damaged
from gafkd.windows import fingerprint

log = logging.getLogger(__name__)

METHODS = ("gasf", "gadf", "mtf")


def segment_bounds(length, size):
    """pyts' PAA segment bounds: linspace(0, length, size + 1) truncated to integers."""
    return np.linspace(0, length, size + 1).astype(np.int64)


@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _gaf_kernel(series, bounds, difference, threads, out):
    n, length = series.shape
    size = len(bounds) - 1
    per_thread = (n + threads - 1) // threads
    for thread in numba.prange(threads):
        paa = np.empty(size, np.float64)
        cos = np.empty(size, np.float32)
        sin = np.empty(size, np.float32)
        for k in range(thread * per_thread, min(n, (thread + 1) * per_thread)):
            x = series[k]
            low = x[0]
            high = x[0]
            for t in range(1, length):
                low = min(low, x[t])
                high = max(high, x[t])
            for j in range(size):
                total = 0.0
                for t in range(bounds[j], bounds[j + 1]):
                    total += x[t]
                paa[j] = total / (bounds[j + 1] - bounds[j])
            paa_low = paa.min()
            span = paa.max() - paa_low
            for j in range(size):
                # A constant series is -1 everywhere (as scikit-learn's min-max scaler makes it),
                # decided on the raw series: rounding can leave its PAA not quite constant.
                if low == high or span == 0:
                    value = -1.0
                else:
                    value = min(1.0, max(-1.0, (paa[j] - paa_low) / span * 2 - 1))
                cos[j] = value
                sin[j] = np.sqrt(max(0.0, 1 - value * value))
            image = out[k]
            for i in range(size):
                row = image[i]
                if difference:
                    for j in range(size):
                        row[j] = sin[i] * cos[j] - cos[i] * sin[j]
                else:
                    for j in range(size):
                        row[j] = cos[i] * cos[j] - sin[i] * sin[j]


def gramian_angular_field(series, size, method="gasf", out=None):
    """(n, L) series -> (n, size, size) float32 GASF or GADF, written into `out` when given.

    One pass per series (PAA in float64, min-max to [-1, 1], cos/sin outer products), parallel
    over series on numba's threads; each image element is written once.
    """
    if method not in ("gasf", "gadf"):
        raise ConfigError(f"unknown GAF method '{method}' (known: gasf, gadf)")
    series = np.ascontiguousarray(series, dtype=np.float32)
    n, length = series.shape
    if not 1 <= size <= length:
        raise ConfigError(f"images.size: {size} must be between 1 and the series length {length}")
    if out is None:
        out = np.empty((n, size, size), dtype=np.float32)
    elif out.shape != (n, size, size) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {(n, size, size)}")
    _gaf_kernel(series, segment_bounds(length, size), method == "gadf", numba.get_num_threads(), out)
    return out


def encode(series, size, method, out=None):
    """(n, L) -> (n, size, size) float32 image of any supported method."""
    if method in ("gasf", "gadf"):
        return gramian_angular_field(series, size, method, out)
    if method == "mtf":
        from pyts.image import MarkovTransitionField
        images = MarkovTransitionField(image_size=size).fit_transform(series)
        if out is None:
            return images.astype(np.float32)
        out[...] = images
        return out
    raise ConfigError(f"images.method: unknown method '{method}' (known: {', '.join(METHODS)})")


def build_images(windows_h5, out_h5, method="gasf", size=64, chunk_windows=1024, threads=None):
    """Write (N, C, size, size) float16 images of every window, in windows.h5 order, streaming
    `chunk_windows` windows at a time through reused buffers so memory stays bounded for any
    dataset size. `threads` caps the encoder's threads (default: numba's). The windows are checked
    against their fingerprint on the way."""
    if method not in METHODS:
        raise ConfigError(f"images.method: unknown method '{method}' (known: {', '.join(METHODS)})")
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    with CheckedH5(windows_h5, "windows file", require_seal=False) as src:
        n, channels, length = src.shape("X")
        if not 1 <= size <= length:
            raise ConfigError(f"images.size: {size} must be between 1 and the window length {length}")
        chunk = max(1, min(n, chunk_windows))
        encoded = np.empty((chunk * channels, size, size), dtype=np.float32)
        stored = np.empty((chunk, channels, size, size), dtype=np.float16)
        # Whole chunks per write: the file is written without a chunk cache.
        rows = 256 if chunk % 256 == 0 else chunk
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


def plot_gallery(windows_h5, images_h5, out_png, max_channels=3):
    """One example window per class (rows) with up to `max_channels` channel images (columns)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with CheckedH5(windows_h5, "windows file", require_seal=False) as wf, \
            CheckedH5(images_h5, "image cache") as imf:
        y = wf.array("y")
        class_names = wf.json("class_names")
        channel_names = wf.json("channel_names")
        method, size = imf.attrs["method"], imf.shape("images")[-1]
        columns = min(max_channels, len(channel_names))
        present = [c for c in range(len(class_names)) if (y == c).any()]
        # Constrained layout keeps the figure title clear of the channel titles at any shape.
        fig, axes = plt.subplots(len(present), columns, squeeze=False, layout="constrained",
                                 figsize=(1.9 * columns + 1.2, 1.9 * len(present) + 0.6))
        vmin = 0 if method == "mtf" else -1
        for row, cls in enumerate(present):
            example = int(np.flatnonzero(y == cls)[0])
            image = imf.array("images", example).astype(np.float32)
            for col in range(columns):
                ax = axes[row, col]
                ax.imshow(image[col], cmap="RdBu_r", vmin=vmin, vmax=1, origin="lower")
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(channel_names[col], fontsize=9)
                if col == 0:
                    ax.set_ylabel(class_names[cls], fontsize=9)
        separator = "\n" if columns == 1 else " "     # one column is too narrow for one line
        fig.suptitle(f"{method.upper()} {size}x{size}:{separator}one window per class", fontsize=11)
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
