"""The two ways of cutting one PAMAP2 recording into windows (gafkd.data.readers.pamap2 reads the
files and checks them): the lab's, which reproduces jeunsom/TDA_KD, and the clean one."""

import numpy as np

from gafkd.data.readers.pamap2_format import ACTIVITIES, COLUMNS, LAB_THRESHOLDS
from gafkd.errors import InputError


def _runs_constant(values, window, starts):
    """True where values[s:s+window] is constant, for each start s."""
    changes = np.concatenate(([0], np.cumsum(values[1:] != values[:-1])))
    return changes[starts + window - 1] == changes[starts]


def _any_in_window(flags, window, starts):
    count = np.concatenate(([0], np.cumsum(flags)))
    return count[starts + window] > count[starts]


def _forward_fill_heart_rate(signals, channel_names, segment):
    # Heart rate comes at ~9 Hz between NaN rows: carry each reading forward, within its segment.
    if "heart_rate" in channel_names:
        hr = channel_names.index("heart_rate")
        readings = signals[:, hr]
        last = np.maximum.accumulate(np.where(np.isnan(readings), 0, np.arange(len(readings))))
        filled = readings[last]                  # rows before the first reading stay NaN
        filled[segment[last] != segment] = np.nan
        signals[:, hr] = filled


def _check_length(path, length, window, downsample, deleted=""):
    if length < window:
        raise InputError(f"{path}: recording has {length} samples after {deleted}downsampling by "
                         f"{downsample}, shorter than the window of {window}")


def _label(raw_id, classes):
    """The class name of a raw activity id, or the id and activity where the map lacks it."""
    raw_id = int(raw_id)
    if raw_id in classes:
        return classes.names[classes.index_of[raw_id]]
    return f"{raw_id} ({ACTIVITIES.get(raw_id, 'transient')})"


def _per_label(reason, raw_ids, classes):
    """[(reason, label, count)] of the raw ids left out for one reason."""
    ids, counts = np.unique(raw_ids, return_counts=True)
    return [(reason, _label(i, classes), int(n)) for i, n in zip(ids, counts)]


def clean_windows(path, table, segment, channel_names, classes, window, step, downsample):
    """Windows (n, C, window), their raw activity ids, [(reason, label, count)] of the windows
    left out, and [] (nothing is zero-filled). Each window counts for one reason, the first of:
    a jump back in time (`segment`: the rows' segment numbers), label change, activity not in the
    class map, NaN."""
    activity = table[:, 1]
    signals = table[:, [COLUMNS.index(c) for c in channel_names]]
    _forward_fill_heart_rate(signals, channel_names, segment)
    signals, activity, segment = signals[::downsample], activity[::downsample], segment[::downsample]
    _check_length(path, len(activity), window, downsample)
    starts = np.arange(0, len(activity) - window + 1, step)
    labels = activity[starts]
    jumps = segment[starts] != segment[starts + window - 1]
    changes = ~jumps & ~_runs_constant(activity, window, starts)
    outside = ~jumps & ~changes & ~np.isin(labels, list(classes.index_of))
    has_nan = (~jumps & ~changes & ~outside
               & _any_in_window(np.isnan(signals).any(axis=1), window, starts))
    keep = ~(jumps | changes | outside | has_nan)
    dropped = (_per_label("time_jump", labels[jumps], classes)
               + _per_label("label_change", labels[changes], classes)
               + _per_label("not_in_class_map", labels[outside], classes)
               + _per_label("nan", labels[has_nan], classes))
    windows = np.lib.stride_tricks.sliding_window_view(signals, window, axis=0)[starts[keep]]
    return windows.astype(np.float32), labels[keep].astype(np.int64), dropped, []


def lab_windows(path, table, segment, channel_names, classes, window, step, downsample):
    """Windows (n, C, window), their raw activity ids, [(reason, label, count)] of the rows
    deleted for an activity outside the class map and of the windows left out because they
    span a jump back in time (`segment`: the rows' segment numbers) or the class labels at their
    first and last sample differ, and [(channel, rows)] of the channels NaN on every row kept,
    which become 0 like any NaN."""
    inside = np.isin(table[:, 1], list(classes.index_of))
    dropped = _per_label("rows_not_in_class_map", table[~inside, 1], classes)
    table, segment = table[inside], segment[inside]
    activity = table[:, 1]
    signals = table[:, [COLUMNS.index(c) for c in channel_names]]
    _forward_fill_heart_rate(signals, channel_names, segment)
    missing = np.isnan(signals)
    zero_filled = [(c, len(signals)) for c, empty in zip(channel_names, missing.all(axis=0)) if empty]
    signals[missing] = 0.0
    low, high = np.array([LAB_THRESHOLDS[c] for c in channel_names]).T
    signals = (signals - low) / (high - low)
    signals[signals > 1] = 0.99
    signals[signals < 0] = 0.0
    signals, activity, segment = signals[::downsample], activity[::downsample], segment[::downsample]
    _check_length(path, len(activity), window, downsample,
                  deleted="deleting the rows outside the class map and ")
    starts = np.arange(step, len(activity) - window, step)
    jumps = segment[starts] != segment[starts + window - 1]
    # the lab compares class labels, so ids mapped to one class count as the same label
    same = classes.lookup(activity[starts]) == classes.lookup(activity[starts + window - 1])
    keep = ~jumps & same
    dropped += (_per_label("time_jump", activity[starts[jumps]], classes)
                + _per_label("label_change", activity[starts[~jumps & ~same]], classes))
    windows = np.lib.stride_tricks.sliding_window_view(signals, window, axis=0)[starts[keep]]
    return windows.astype(np.float32), activity[starts[keep]].astype(np.int64), dropped, zero_filled


WINDOWING = {"lab": (lab_windows, ["label_change", "rows_not_in_class_map"]),
              "clean": (clean_windows, ["label_change", "not_in_class_map", "nan"])}
