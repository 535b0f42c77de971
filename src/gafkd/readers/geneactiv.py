"""GENEActiv windows stored one MATLAB file per window.

`<raw>/ID-<subject>_CLASS-<class>_Window-<n>.mat`, the signal under key `xw`, either
MATLAB v5 (scipy) or v7.3 (HDF5), oriented (W, C) or (C, W).
"""

import logging
import re
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from gafkd.errors import InputError
from gafkd.windowset import ClassMap, WindowSet, parse_class_map

log = logging.getLogger(__name__)

FILE_PATTERN = re.compile(r"^ID-(\d+)_CLASS-(\d+)_Window-(\d+)\.mat$")
KEY = "xw"
DEFAULT_CHANNELS = ["x", "y", "z"]


def list_window_files(raw):
    """Sorted (subject, class, window, path) of every .mat file; any off-pattern name is an error."""
    raw = Path(raw)
    if not raw.is_dir():
        raise InputError(f"GENEActiv raw folder {raw} does not exist or is not a folder")
    entries = []
    for path in raw.iterdir():
        if path.suffix.lower() != ".mat":
            continue
        match = FILE_PATTERN.match(path.name)
        if match is None:
            raise InputError(f"{path}: file name does not match ID-<subject>_CLASS-<class>_Window-<n>.mat")
        subject, cls, window = (int(g) for g in match.groups())
        entries.append((subject, cls, window, path))
    if not entries:
        raise InputError(f"no ID-<subject>_CLASS-<class>_Window-<n>.mat files in {raw}")
    entries.sort()
    return entries


def load_mat_array(path, key=KEY):
    """The array under `key` in a MATLAB v5 or v7.3 file, in MATLAB's own orientation."""
    path = Path(path)
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if key not in f:
                raise InputError(f"{path}: no variable '{key}' (found: {sorted(f.keys())})")
            # HDF5 stores MATLAB's column-major arrays with the axes reversed.
            return np.asarray(f[key][()]).T
    try:
        contents = scipy.io.loadmat(path, variable_names=[key])
    except Exception as exc:  # scipy raises several types for unreadable files
        raise InputError(f"{path}: not a readable MATLAB file ({exc})") from None
    if key not in contents:
        raise InputError(f"{path}: no variable '{key}'")
    return np.asarray(contents[key])


def orient(array, window, path):
    """(W, C) or (C, W) -> (C, W), checking the window length."""
    if array.ndim != 2:
        raise InputError(f"{path}: '{KEY}' has shape {array.shape}, expected 2 dimensions")
    rows, cols = array.shape
    if rows == window and cols != window:
        return array.T
    if cols == window and rows != window:
        return array
    raise InputError(f"{path}: '{KEY}' has shape {array.shape}; expected one axis of the "
                     f"configured window length {window}")


def read_geneactiv(raw, window, class_map=None, channels=None, sampling_rate_hz=100.0):
    entries = list_window_files(raw)
    if class_map is None:
        found = sorted({cls for _, cls, _, _ in entries})
        classes = ClassMap({cls: f"class {cls}" for cls in found})
    else:
        classes = parse_class_map(class_map, "geneactiv class_map")
    X = None
    for i, (subject, cls, _, path) in enumerate(entries):
        if cls not in classes:
            raise InputError(f"{path}: class id {cls} is not in the class map "
                             f"(known ids: {sorted(classes.index_of)})")
        signal = orient(load_mat_array(path), window, path)
        if not np.isfinite(signal).all():
            raise InputError(f"{path}: '{KEY}' contains NaN or inf")
        if X is None:
            X = np.empty((len(entries), signal.shape[0], window), dtype=np.float32)
        elif signal.shape[0] != X.shape[1]:
            raise InputError(f"{path}: {signal.shape[0]} channels, but {entries[0][3].name} "
                             f"has {X.shape[1]}")
        X[i] = signal
    channel_names = list(channels) if channels else DEFAULT_CHANNELS[: X.shape[1]]
    if len(channel_names) != X.shape[1]:
        if channels:
            raise InputError(f"{raw}: windows have {X.shape[1]} channels but {len(channel_names)} "
                             f"channel names are configured")
        channel_names = [f"ch{c}" for c in range(X.shape[1])]
    log.info("read %d GENEActiv windows from %s", len(entries), raw)
    return WindowSet(
        X=X,
        y=classes.lookup([cls for _, cls, _, _ in entries]),
        subject=np.array([s for s, _, _, _ in entries], dtype=np.int64),
        class_names=classes.names,
        channel_names=channel_names,
        sampling_rate_hz=float(sampling_rate_hz),
        source="geneactiv_mat",
    )
