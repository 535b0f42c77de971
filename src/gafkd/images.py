"""Image encodings of windows: Gramian Angular Fields (summation/difference) and Markov
Transition Fields, one image per channel, stacked as image channels.

The GAF builder is a batched float32 version of pyts' `GramianAngularField` (PAA with pyts'
segment bounds, min-max of each series to [-1, 1], cos/sin outer products) and agrees with it
to float32 rounding; MTF calls pyts on whole batches.
"""

import json
import logging

import h5py
import numpy as np

from gafkd.atomic import atomic_path
from gafkd.errors import ConfigError, InputError

log = logging.getLogger(__name__)

METHODS = ("gasf", "gadf", "mtf")


def paa_matrix(length, size):
    """(length, size) matrix whose product with a series is its piecewise aggregate approximation,
    with pyts' segment bounds linspace(0, length, size + 1).astype(int)."""
    bounds = np.linspace(0, length, size + 1).astype(np.int64)
    matrix = np.zeros((length, size), dtype=np.float32)
    for j in range(size):
        matrix[bounds[j]:bounds[j + 1], j] = 1.0 / (bounds[j + 1] - bounds[j])
    return matrix


def scale_to_unit_interval(series, constant=None):
    """Min-max of each row to [-1, 1]; a constant row becomes -1 (as scikit-learn's scaler does).

    `constant` marks rows known to be constant before float32 rounding could make them not so.
    """
    low = series.min(axis=1, keepdims=True)
    span = series.max(axis=1, keepdims=True) - low
    constant = span == 0 if constant is None else (span == 0) | constant[:, None]
    scaled = (series - low) / np.where(constant, 1, span) * 2 - 1
    return np.clip(np.where(constant, -1, scaled), -1, 1)


def gramian_angular_field(series, size, method="gasf", paa=None):
    """(n, L) float series -> (n, size, size) float32 GASF or GADF."""
    series = np.asarray(series, dtype=np.float32)
    if paa is None:
        paa = paa_matrix(series.shape[1], size)
    constant = series.min(axis=1) == series.max(axis=1)
    cos = scale_to_unit_interval(series @ paa if size != series.shape[1] else series, constant)
    sin = np.sqrt(np.clip(1 - cos * cos, 0, 1))
    if method == "gasf":
        return cos[:, :, None] * cos[:, None, :] - sin[:, :, None] * sin[:, None, :]
    if method == "gadf":
        return sin[:, :, None] * cos[:, None, :] - cos[:, :, None] * sin[:, None, :]
    raise ConfigError(f"unknown GAF method '{method}' (known: gasf, gadf)")


def encode(series, size, method, paa=None):
    """(n, L) -> (n, size, size) float32 image of any supported method."""
    if method in ("gasf", "gadf"):
        return gramian_angular_field(series, size, method, paa)
    if method == "mtf":
        from pyts.image import MarkovTransitionField
        return MarkovTransitionField(image_size=size).fit_transform(series).astype(np.float32)
    raise ConfigError(f"images.method: unknown method '{method}' (known: {', '.join(METHODS)})")


def build_images(windows_h5, out_h5, method="gasf", size=64, chunk_windows=1024):
    """Write (N, C, size, size) float16 images of every window, in windows.h5 order, streaming
    `chunk_windows` windows at a time so memory stays bounded for any dataset size."""
    if method not in METHODS:
        raise ConfigError(f"images.method: unknown method '{method}' (known: {', '.join(METHODS)})")
    with h5py.File(windows_h5, "r") as src:
        X = src["X"]
        n, channels, length = X.shape
        if not 1 <= size <= length:
            raise ConfigError(f"images.size: {size} must be between 1 and the window length {length}")
        paa = paa_matrix(length, size)
        with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as dst:
            images = dst.create_dataset("images", shape=(n, channels, size, size), dtype=np.float16,
                                        chunks=(min(n, 256), channels, size, size))
            for start in range(0, n, chunk_windows):
                block = X[start:start + chunk_windows]
                flat = block.reshape(-1, length)
                encoded = encode(flat, size, method, paa).reshape(len(block), channels, size, size)
                images[start:start + len(block)] = encoded.astype(np.float16)
            dst.attrs.update({
                "method": method,
                "size": size,
                "windows_fingerprint": src.attrs["fingerprint"],
                "channel_names": src.attrs["channel_names"],
            })
    log.info("wrote %d x %d %s images of %dx%d to %s", n, channels, method, size, size, out_h5)


def read_images(path, windows_fingerprint):
    """Load an image cache, checking it was built from the windows with this fingerprint."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("windows_fingerprint") != windows_fingerprint:
            raise InputError(f"{path}: image cache was built from other windows than the ones "
                             f"given (fingerprint {f.attrs.get('windows_fingerprint')} != "
                             f"{windows_fingerprint}); rebuild it")
        return f["images"][()]


def plot_gallery(windows_h5, images_h5, out_png, max_channels=3):
    """One example window per class (rows) with up to `max_channels` channel images (columns)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with h5py.File(windows_h5, "r") as wf, h5py.File(images_h5, "r") as imf:
        y = wf["y"][()]
        class_names = json.loads(wf.attrs["class_names"])
        channel_names = json.loads(wf.attrs["channel_names"])
        method = imf.attrs["method"]
        columns = min(max_channels, len(channel_names))
        present = [c for c in range(len(class_names)) if (y == c).any()]
        fig, axes = plt.subplots(len(present), columns, squeeze=False,
                                 figsize=(1.9 * columns + 1.2, 1.9 * len(present)))
        vmin = 0 if method == "mtf" else -1
        for row, cls in enumerate(present):
            example = int(np.flatnonzero(y == cls)[0])
            image = imf["images"][example].astype(np.float32)
            for col in range(columns):
                ax = axes[row, col]
                ax.imshow(image[col], cmap="RdBu_r", vmin=vmin, vmax=1, origin="lower")
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(channel_names[col], fontsize=9)
                if col == 0:
                    ax.set_ylabel(class_names[cls], fontsize=9)
        fig.suptitle(f"{method.upper()} {image.shape[-1]}x{image.shape[-1]}: one window per class")
        fig.tight_layout()
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
