"""GENEActiv windows stored one MATLAB file per window.

`<raw>/ID-<subject>_CLASS-<class>_Window-<n>.mat`, the signal under key `xw`, either
MATLAB v5 (scipy) or v7.3 (HDF5), oriented (W, C) or (C, W).
"""

import logging
import re
from pathlib import Path

import h5py
import numpy as np

from gafkd.errors import InputError
from gafkd.data import rawfolder
from gafkd.data.windowset import ClassMap, WindowSet, count_dropped, parse_class_map

log = logging.getLogger(__name__)

NAME_FORMAT = "ID-<subject>_CLASS-<class>_Window-<n>.mat"
KEY = "xw"
DEFAULT_CHANNELS = ["x", "y", "z"]
SAMPLING_RATE_HZ = 100.0        # the default; the config's sampling_rate_hz overrides it
FLOAT32_MAX = float(np.finfo(np.float32).max)


def scan_window_files(raw):
    """The raw folder's RawListing (gafkd.data.rawfolder): identities (subject, class, window)."""
    raw = Path(raw)
    if not raw.is_dir():
        raise InputError(f"GENEActiv raw folder {raw} does not exist or is not a folder; "
                         f"check `raw:` in the config")
    listing = rawfolder.scan(raw, ".mat", r"ID-(\d+)_CLASS-(\d+)_Window-(\d+)", NAME_FORMAT,
                             lambda match: tuple(int(g) for g in match.groups()),
                             lambda key: f"subject {key[0]}, class {key[1]}, window {key[2]}", "MATLAB")
    if not listing.files:
        raise InputError(f"no {NAME_FORMAT} files in {raw}")
    return listing


def list_window_files(raw):
    """Sorted (subject, class, window, path) of every .mat file; any off-pattern name is an error."""
    return [(*key, path) for key, path in scan_window_files(raw).files]


def _load_v73(path, key):
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable MATLAB v7.3 file, truncated or damaged "
                         f"({exc}); copy or export it again") from None
    with f:
        if key not in f:
            raise InputError(f"{path}: no variable '{key}' (found: {sorted(f.keys())})")
        item = f[key]
        if not isinstance(item, h5py.Dataset):
            raise InputError(f"{path}: '{key}' is a MATLAB struct or object (HDF5 "
                             f"{type(item).__name__}), not a numeric matrix; save the signal "
                             f"itself as '{key}'")
        matlab_class = item.attrs.get("MATLAB_class", b"")
        if isinstance(matlab_class, bytes):
            matlab_class = matlab_class.decode("ascii", "replace")
        if matlab_class in ("char", "cell"):
            raise InputError(f"{path}: '{key}' is a MATLAB {matlab_class} array, not a numeric "
                             f"matrix; save the signal as '{key}'")
        try:
            array = item[()]
        except OSError as exc:
            raise InputError(f"{path}: '{key}' cannot be read, the file is truncated or damaged "
                             f"({exc}); copy or export it again") from None
    # HDF5 stores MATLAB's column-major arrays with the axes reversed.
    return np.asarray(array).T


def load_mat_array(path, key=KEY):
    """The real numeric array under `key` in a MATLAB v5 or v7.3 file, in MATLAB's own
    orientation."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            empty = not f.read(1)
    except PermissionError:
        raise InputError(f"{path}: cannot be read (permission denied); check the file's "
                         f"permissions: the user running the workflow must be able to read it") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a MATLAB file; move it out of the raw "
                         f"folder") from None
    if empty:
        raise InputError(f"{path}: file is empty; copy or export it again")
    if h5py.is_hdf5(path):
        array = _load_v73(path, key)
    else:
        import scipy.io       # here: every job imports this module, only the windows job reads .mat

        try:
            contents = scipy.io.loadmat(path, variable_names=[key])
        except Exception as exc:  # scipy raises several types for unreadable files
            raise InputError(f"{path}: not a readable MATLAB file ({exc})") from None
        if key not in contents:
            raise InputError(f"{path}: no variable '{key}'")
        array = np.asarray(contents[key])
    if np.iscomplexobj(array):
        raise InputError(f"{path}: '{key}' holds complex numbers; save the real signal")
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: '{key}' holds {array.dtype} values, not numbers; save the "
                         f"signal as a numeric matrix")
    return array


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


def _other_files(raw, classes):
    """The files of the raw folder that are not read (not .mat), as WindowSet.dropped."""
    left_out = []
    for path in sorted(Path(raw).iterdir()):
        if path.is_file() and path.suffix.lower() != ".mat":
            subject = label = None
            match = re.match(r"ID-(\d+)_CLASS-(\d+)", path.name)
            if match:
                subject, cls = (int(g) for g in match.groups())
                label = classes.names[classes.index_of[cls]] if cls in classes else str(cls)
            left_out.append(("not_mat_file", subject, label, 1))
    if left_out:
        log.warning("%s: %d file(s) not ending in .mat left out", raw, len(left_out))
    return count_dropped(["not_mat_file"] if left_out else [], left_out)


def read_geneactiv(raw, window, class_map=None, channels=None, sampling_rate_hz=SAMPLING_RATE_HZ):
    listing = scan_window_files(raw)
    entries = [(*key, path) for key, path in listing.files]
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
            channel, sample = np.argwhere(~np.isfinite(signal))[0]
            raise InputError(f"{path}: '{KEY}' contains NaN or inf (first at 0-based channel "
                             f"{channel}, sample {sample}); repair the file or remove it")
        beyond = np.abs(signal) > FLOAT32_MAX
        if beyond.any():
            channel, sample = np.argwhere(beyond)[0]
            raise InputError(f"{path}: '{KEY}' holds {signal[channel, sample]:g} (first at 0-based "
                             f"channel {channel}, sample {sample}), beyond the float32 range "
                             f"(±{FLOAT32_MAX:.2g}) windows are stored in; repair the file or "
                             f"remove it")
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
        dropped=_other_files(raw, classes),
        skipped=listing.skipped,
    )
