"""PAMAP2 Protocol recordings: `subjectNNN.dat`, 54 space-separated columns, NaN for missing.

Defaults are the lab's settings: the 12 protocol activities, 40 channels (heart rate + three
IMUs without orientation), downsampling by 3, windows of 100 samples with step 22.

Two windowing protocols:
- "lab" reproduces the lab's public code (jeunsom/TDA_KD, preprocessing_pamap2_2.py and
  pamap2_load.py): rows outside the class map deleted first, heart rate forward-filled,
  NaN set to 0, min-max scaling with fixed thresholds, downsampling, windows from sample
  `step` kept where the labels at their first and last sample agree.
- "clean": the whole recording downsampled, heart rate forward-filled, windows from sample 0
  kept where the label is constant and no value is NaN.
"""

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gafkd.errors import ConfigError, InputError
from gafkd.windowset import WindowSet, parse_class_map

log = logging.getLogger(__name__)

N_COLUMNS = 54
FILE_PATTERN = re.compile(r"^subject(\d+)\.dat$")
RAW_RATE_HZ = 100.0

ACTIVITIES = {
    1: "lying", 2: "sitting", 3: "standing", 4: "walking", 5: "running", 6: "cycling",
    7: "Nordic walking", 9: "watching TV", 10: "computer work", 11: "car driving",
    12: "ascending stairs", 13: "descending stairs", 16: "vacuum cleaning", 17: "ironing",
    18: "folding laundry", 19: "house cleaning", 20: "playing soccer", 24: "rope jumping",
}
TRANSIENT = 0
PROTOCOL_ACTIVITIES = [1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24]
DEFAULT_CLASS_MAP = {a: ACTIVITIES[a] for a in PROTOCOL_ACTIVITIES}


def _column_names():
    names = ["timestamp", "activity_id", "heart_rate"]
    for imu in ("hand", "chest", "ankle"):
        names.append(f"{imu}_temp")
        for sensor in ("acc16", "acc6", "gyro", "mag"):
            names += [f"{imu}_{sensor}_{axis}" for axis in "xyz"]
        names += [f"{imu}_orientation_{i}" for i in range(4)]
    return names


COLUMNS = _column_names()
assert len(COLUMNS) == N_COLUMNS
_IMU_NO_ORIENTATION = [n for n in COLUMNS[3:] if "orientation" not in n]
CHANNEL_SETS = {
    "lab40": ["heart_rate"] + _IMU_NO_ORIENTATION,
    "hand_acc16": ["hand_acc16_x", "hand_acc16_y", "hand_acc16_z"],
    "acc16": [n for n in COLUMNS if "_acc16_" in n],
    "imu_acc_gyro": [n for n in COLUMNS if "_acc16_" in n or "_gyro_" in n],
}
PROTOCOLS = ("lab", "clean")
DEFAULTS = {"window": 100, "step": 22, "downsample": 3, "channels": "lab40", "protocol": "lab"}

# The lab's fixed scaling thresholds, in lab40 order.
_LAB_MIN = [0., 0., -114.755, -104.301, -73.0384, -61.1938, -61.8086, -61.4193, -27.8044,
            -17.8495, -14.2647, -103.941, -200.043, -163.608, 0., -29.0888, -38.1657, -57.2366,
            -32.9627, -39.7561, -56.0108, -10.1563, -5.06858, -3.99487, -70.0627, -122.48,
            -66.6847, 0., -155.068, -155.617, -156.179, -60.3067, -61.9064, -62.2629, -14.162,
            -13.0401, -14.0196, -172.865, -137.908, -102.232]
_LAB_MAX = [202.0, 35.5, 47.6314, 155.532, 157.76, 45.5484, 62.2598, 61.728, 21.8452,
            13.1222, 14.2184, 137.544, 109.181, 100.543, 38.5625, 26.386, 153.582,
            37.2936, 23.9101, 61.9328, 36.9676, 15.5171, 5.97964, 2.94183, 80.4739,
            39.7391, 95.8415, 35.4375, 157.232, 157.293, 150.99, 61.9509, 62.0461,
            60.9357, 17.4204, 13.5882, 13.9617, 91.4247, 92.867, 146.651]
LAB_THRESHOLDS = dict(zip(CHANNEL_SETS["lab40"], zip(_LAB_MIN, _LAB_MAX)))


def resolve_channels(channels):
    """A channel-set name or an explicit list of column names -> list of column names."""
    if isinstance(channels, str):
        if channels not in CHANNEL_SETS:
            raise ConfigError(f"unknown PAMAP2 channel set '{channels}' (known: {sorted(CHANNEL_SETS)})")
        return list(CHANNEL_SETS[channels])
    unknown = [c for c in channels if c not in COLUMNS[2:]]
    if unknown:
        raise ConfigError(f"unknown PAMAP2 channel(s) {unknown}; valid names are {COLUMNS[2:]}")
    return list(channels)


def check_protocol(protocol, channels):
    """Raise ConfigError unless `protocol` is known and can scale every channel."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown PAMAP2 protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    if protocol == "lab":
        missing = [c for c in resolve_channels(channels) if c not in LAB_THRESHOLDS]
        if missing:
            raise ConfigError(f"PAMAP2 channel(s) {missing} cannot be used with protocol 'lab': "
                              f"it scales with the lab's fixed thresholds, known for the lab40 "
                              f"channels only (use protocol: clean for others)")


def list_subject_files(raw, subjects=None):
    raw = Path(raw)
    if not raw.is_dir():
        raise InputError(f"PAMAP2 raw folder {raw} does not exist or is not a folder")
    files = []
    for path in raw.iterdir():
        if path.suffix != ".dat":
            continue
        match = FILE_PATTERN.match(path.name)
        if match is None:
            raise InputError(f"{path}: file name does not match subjectNNN.dat")
        subject = int(match.group(1))
        if subjects is None or subject in subjects:
            files.append((subject, path))
    if not files:
        wanted = "" if subjects is None else f" for subjects {sorted(subjects)}"
        raise InputError(f"no subjectNNN.dat files{wanted} in {raw}")
    return sorted(files)


def _check_column_counts(path, data):
    """Every line must hold exactly 54 whitespace-separated tokens (vectorised over the bytes)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        raise InputError(f"{path}: file is empty")
    blank = (raw == ord(" ")) | (raw == ord("\t")) | (raw == ord("\r")) | (raw == ord("\n"))
    token_start = ~blank & np.concatenate(([True], blank[:-1]))
    newlines = np.flatnonzero(raw == ord("\n"))
    if raw[-1] != ord("\n"):
        newlines = np.append(newlines, raw.size - 1)
    tokens_before = np.concatenate(([0], np.cumsum(token_start)[newlines]))
    per_line = np.diff(tokens_before)
    bad = np.flatnonzero(per_line != N_COLUMNS)
    if bad.size:
        line = int(bad[0])
        raise InputError(f"{path}, line {line + 1}: {per_line[line]} columns, expected {N_COLUMNS}")


def _first_non_numeric(path, data):
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        for token in line.split():
            try:
                float(token)
            except ValueError:
                return f"{path}, line {number}: non-numeric token {token!r}"
    return f"{path}: could not be parsed as numbers"


def read_subject_file(path):
    """(T, 54) float64 array of one recording, with line-precise errors."""
    data = Path(path).read_bytes()
    _check_column_counts(path, data)
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64, engine="c")
    except ValueError:
        raise InputError(_first_non_numeric(path, data)) from None
    return frame.to_numpy()


def _runs_constant(values, window, starts):
    """True where values[s:s+window] is constant, for each start s."""
    changes = np.concatenate(([0], np.cumsum(values[1:] != values[:-1])))
    return changes[starts + window - 1] == changes[starts]


def _any_in_window(flags, window, starts):
    count = np.concatenate(([0], np.cumsum(flags)))
    return count[starts + window] > count[starts]


def _check_activity_ids(path, activity):
    valid_ids = set(ACTIVITIES) | {TRANSIENT}
    unknown = sorted(set(np.unique(activity).tolist()) - valid_ids)
    if unknown:
        row = int(np.flatnonzero(np.isin(activity, unknown))[0])
        raise InputError(f"{path}, line {row + 1}: unknown PAMAP2 activity id {unknown[0]:g}")


def _forward_fill_heart_rate(signals, channel_names):
    # Heart rate comes at ~9 Hz between NaN rows: carry each reading forward.
    if "heart_rate" in channel_names:
        hr = channel_names.index("heart_rate")
        signals[:, hr] = pd.Series(signals[:, hr]).ffill().to_numpy()


def _check_length(path, length, window, downsample, deleted=""):
    if length < window:
        raise InputError(f"{path}: recording has {length} samples after {deleted}downsampling by "
                         f"{downsample}, shorter than the window of {window}")


def clean_windows(path, table, channel_names, classes, window, step, downsample):
    """Windows (n, C, window), raw activity ids and the number of NaN windows dropped."""
    activity = table[:, 1]
    signals = table[:, [COLUMNS.index(c) for c in channel_names]]
    _forward_fill_heart_rate(signals, channel_names)
    signals, activity = signals[::downsample], activity[::downsample]
    _check_length(path, len(activity), window, downsample)
    starts = np.arange(0, len(activity) - window + 1, step)
    labels = activity[starts]
    keep = _runs_constant(activity, window, starts) & np.isin(labels, list(classes.index_of))
    has_nan = _any_in_window(np.isnan(signals).any(axis=1), window, starts)
    n_nan = int((keep & has_nan).sum())
    keep &= ~has_nan
    windows = np.lib.stride_tricks.sliding_window_view(signals, window, axis=0)[starts[keep]]
    return windows.astype(np.float32), labels[keep].astype(np.int64), n_nan


def lab_windows(path, table, channel_names, classes, window, step, downsample):
    """Windows (n, C, window), raw activity ids and the number of windows dropped because
    the class labels at their first and last sample differ."""
    table = table[np.isin(table[:, 1], list(classes.index_of))]
    activity = table[:, 1]
    signals = table[:, [COLUMNS.index(c) for c in channel_names]]
    _forward_fill_heart_rate(signals, channel_names)
    signals[np.isnan(signals)] = 0.0
    low, high = np.array([LAB_THRESHOLDS[c] for c in channel_names]).T
    signals = (signals - low) / (high - low)
    signals[signals > 1] = 0.99
    signals[signals < 0] = 0.0
    signals, activity = signals[::downsample], activity[::downsample]
    _check_length(path, len(activity), window, downsample,
                  deleted="deleting the rows outside the class map and ")
    starts = np.arange(step, len(activity) - window, step)
    # the lab compares class labels, so ids mapped to one class count as the same label
    keep = classes.lookup(activity[starts]) == classes.lookup(activity[starts + window - 1])
    windows = np.lib.stride_tricks.sliding_window_view(signals, window, axis=0)[starts[keep]]
    return (windows.astype(np.float32), activity[starts[keep]].astype(np.int64),
            int((~keep).sum()))


_WINDOWING = {"lab": (lab_windows, "label_change", "for a label change"),
              "clean": (clean_windows, "nan", "for NaN")}


def read_pamap2(raw, window=100, step=22, downsample=3, channels="lab40", class_map=None,
                subjects=None, protocol="lab"):
    classes = parse_class_map(class_map if class_map is not None else DEFAULT_CLASS_MAP,
                              "pamap2 class_map")
    unknown = sorted(set(classes.index_of) - set(ACTIVITIES))
    if unknown:
        raise ConfigError(f"pamap2 class_map: {unknown} are not PAMAP2 activity ids "
                          f"(known: {sorted(ACTIVITIES)})")
    channel_names = resolve_channels(channels)
    check_protocol(protocol, channel_names)
    make_windows, dropped_key, reason = _WINDOWING[protocol]
    parts, dropped = [], 0
    for subject, path in list_subject_files(raw, subjects):
        table = read_subject_file(path)
        _check_activity_ids(path, table[:, 1])
        X, raw_labels, n_dropped = make_windows(path, table, channel_names, classes, window,
                                                step, downsample)
        dropped += n_dropped
        if len(X) == 0:
            raise InputError(f"{path}: subject {subject} has no usable window "
                             f"({n_dropped} dropped {reason}); leave it out with `subjects:`")
        log.info("%s: %d windows (%d dropped %s)", path.name, len(X), n_dropped, reason)
        parts.append((subject, X, classes.lookup(raw_labels)))
    return WindowSet(
        X=np.concatenate([p[1] for p in parts]),
        y=np.concatenate([p[2] for p in parts]),
        subject=np.concatenate([np.full(len(p[1]), p[0], dtype=np.int64) for p in parts]),
        class_names=classes.names,
        channel_names=channel_names,
        sampling_rate_hz=RAW_RATE_HZ / downsample,
        source="pamap2",
        dropped={dropped_key: dropped},
    )
