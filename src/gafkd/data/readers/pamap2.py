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
In both, a file whose timestamps go back in time is read as separate stretches of time, and no
window spans a jump.
"""

import logging
import re
from pathlib import Path

import numpy as np

from gafkd.errors import ConfigError, InputError
from gafkd.data import rawfolder
from gafkd.data.readers.pamap2_format import ACTIVITIES, CHANNEL_SETS, COLUMNS, LAB_THRESHOLDS, N_COLUMNS, TRANSIENT
from gafkd.data.readers.pamap2_windows import WINDOWING
from gafkd.data.windowset import WindowSet, count_dropped, parse_class_map

log = logging.getLogger(__name__)

FILE_PATTERN = re.compile(r"^subject(\d+)\.dat$", re.IGNORECASE)   # PAMAP2's Protocol/ files

SUBJECTS = list(range(101, 110))        # Protocol/subject101.dat ... subject109.dat
RAW_RATE_HZ = 100.0

PROTOCOL_ACTIVITIES = [1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24]
DEFAULT_CLASS_MAP = {a: ACTIVITIES[a] for a in PROTOCOL_ACTIVITIES}
# The lab's class indices (TDA_KD pamap2_load.py: 24 -> 0, 12 -> 8, 13 -> 9, 16 -> 10, 17 -> 11, the
# others their own id): which output unit learns which class is part of the recipe.
LAB_ORDER = [24, 1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17]
LAB_CLASS_MAP = {a: ACTIVITIES[a] for a in LAB_ORDER}


def default_class_map(protocol):
    """The class map when the config gives none: the 12 protocol activities, in the lab's order
    under protocol lab (rope jumping = 0, lying = 1, ...), in activity-id order under clean."""
    return LAB_CLASS_MAP if protocol == "lab" else DEFAULT_CLASS_MAP


PROTOCOLS = ("lab", "clean")
DEFAULTS = {"window": 100, "step": 22, "downsample": 3, "channels": "lab40", "protocol": "lab"}

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


def check_activity_ids(classes, where):
    """Raise ConfigError unless every id of the ClassMap is a PAMAP2 activity id."""
    unknown = sorted(set(classes.index_of) - set(ACTIVITIES))
    if unknown:
        raise ConfigError(f"{where}: {unknown} are not PAMAP2 activity ids "
                          f"(known: {sorted(ACTIVITIES)})")


def scan_subject_files(raw, subjects=None):
    """The raw folder's RawListing (gafkd.data.rawfolder) of the subjects to read: every
    subjectNNN.dat of PAMAP2's subjects, or those of `subjects`; the others named as skipped."""
    raw = Path(raw)
    if not raw.is_dir():
        raise InputError(f"PAMAP2 raw folder {raw} does not exist or is not a folder; check "
                         f"`raw:` in the config (the Protocol/ folder of PAMAP2_Dataset), or add "
                         f"`download: {{}}` to the dataset to fetch PAMAP2's public archive")
    listing = rawfolder.scan(raw, ".dat", r"subject(\d+)", "subjectNNN.dat",
                             lambda match: int(match.group(1)), lambda key: f"subject {key}", "PAMAP2")
    files = dict(listing.files)
    if not files:
        hint = ""
        if (raw / "Protocol").is_dir():
            hint = (f"; {raw} holds a Protocol/ folder (PAMAP2's archive root?): set raw: "
                    f"{raw / 'Protocol'}")
        raise InputError(f"no subjectNNN.dat files in {raw}{hint}")
    if subjects is None:
        strays = sorted(set(files) - set(SUBJECTS))
        if strays:
            others = "".join(f", {files[s].name}" for s in strays[1:])
            raise InputError(f"{files[strays[0]]}{others}: subject(s) {strays} are not among "
                             f"PAMAP2's subjects {SUBJECTS[0]}-{SUBJECTS[-1]}; move the file(s) out "
                             f"of {raw}, or name the subjects to read with the dataset's `subjects:`")
        return listing
    missing = sorted(set(subjects) - set(files))
    if missing:
        raise InputError(f"{raw}: no file for subject(s) {missing} listed in the dataset's "
                         f"`subjects:` (expected {', '.join(f'subject{s}.dat' for s in missing)}); "
                         f"add the file(s) or remove {missing} from `subjects:`")
    left_out = sorted(set(files) - set(subjects))
    if left_out:
        log.info("%s: subject(s) %s not read (not in `subjects:`)", raw, left_out)
    return rawfolder.RawListing(
        [(s, files[s]) for s in sorted(set(subjects))],
        listing.skipped + [(files[s].name, "subject not in `subjects:`") for s in left_out])


def list_subject_files(raw, subjects=None):
    """Sorted (subject, path) of the subject files to read (scan_subject_files)."""
    return scan_subject_files(raw, subjects).files


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


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|NaN|inf|Inf|INF|Infinity)")


def _first_non_numeric(path, data):
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        for token in line.split():
            if not _NUMBER.fullmatch(token):
                return f"{path}, line {number}: non-numeric token {token!r}"
    return f"{path}: could not be parsed as numbers"


def read_subject_file(path):
    """(T, 54) float64 array of one recording, with line-precise errors. NaN marks a missing
    value; any other non-number, and inf, is an error."""
    import pandas as pd     # its C parser; imported here so that config checks stay light

    try:
        data = Path(path).read_bytes()
    except PermissionError:
        raise InputError(f"{path}: cannot be read (permission denied); check the file's "
                         f"permissions: the user running the workflow must be able to read it") from None
    _check_column_counts(path, data)
    try:
        # Only NaN spellings mean missing: pandas would also read "NA", "None", "null" as NaN.
        frame = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64, engine="c",
                            keep_default_na=False, na_values=["NaN", "nan", "-NaN", "-nan"])
    except ValueError:
        raise InputError(_first_non_numeric(path, data)) from None
    table = frame.to_numpy()
    infinite = np.isinf(table)
    if infinite.any():
        row, column = np.argwhere(infinite)[0]
        raise InputError(f"{path}, line {row + 1}: {COLUMNS[column]} (column {column + 1}) is "
                         f"{table[row, column]:g}; PAMAP2 files hold finite numbers or NaN for "
                         f"a missing value: fix or remove the line")
    return table


def _time_breaks(path, timestamp):
    """Rows where the clock goes back (a file that joins recordings): windows never span one.
    A NaN timestamp, or one that repeats the line before, is an error."""
    missing = np.flatnonzero(np.isnan(timestamp))
    if missing.size:
        raise InputError(f"{path}, line {missing[0] + 1}: timestamp (column 1) is NaN; every line "
                         f"needs its time in seconds: fix or remove the line")
    step = np.diff(timestamp)
    repeats = np.flatnonzero(step == 0)
    if repeats.size:
        line = int(repeats[0]) + 2
        raise InputError(f"{path}, line {line}: timestamp {timestamp[line - 1]:g} repeats line "
                         f"{line - 1}'s; PAMAP2 lines are 0.01 s apart, so this is a duplicated "
                         f"line or a clock that stopped: remove the duplicate or fix the timestamps")
    return np.flatnonzero(step < 0) + 1


def _check_activity_ids(path, activity):
    missing = np.flatnonzero(np.isnan(activity))
    if missing.size:
        raise InputError(f"{path}, line {missing[0] + 1}: activity_id (column 2) is NaN; every "
                         f"line needs its activity id (0 for transient activities): fix or "
                         f"remove the line")
    valid_ids = set(ACTIVITIES) | {TRANSIENT}
    unknown = sorted(set(np.unique(activity).tolist()) - valid_ids)
    if unknown:
        row = int(np.flatnonzero(np.isin(activity, unknown))[0])
        raise InputError(f"{path}, line {row + 1}: unknown PAMAP2 activity id {unknown[0]:g}")


def _check_some_activity_in_class_map(path, subject, activity, classes):
    present = sorted(int(a) for a in np.unique(activity))
    if np.isin(present, list(classes.index_of)).any():
        return
    raw = Path(path).parent
    protocol = raw.parent / "Protocol"
    if raw.name == "Optional" or (protocol.is_dir() and raw.name != "Protocol"):
        hint = (f"PAMAP2's Optional/ recordings hold the optional activities only: set raw: "
                f"{protocol} for the protocol activities")
    else:
        hint = "add them to class_map, or leave the subject out with `subjects:`"
    raise InputError(f"{path}: subject {subject} has no usable window: none of its activities "
                     f"{present} is in the class map (ids {sorted(classes.index_of)}); {hint}")


_REASON_TEXT = {"time_jump": "a jump back in time", "label_change": "a label change", "nan": "NaN",
                "not_in_class_map": "an activity not in the class map"}


def _describe(dropped):
    """'4 dropped for a label change, 2 dropped for NaN' for the windows of one subject."""
    totals = {}
    for reason, _, n in dropped:
        if reason in _REASON_TEXT:
            totals[reason] = totals.get(reason, 0) + n
    return ", ".join(f"{n} dropped for {_REASON_TEXT[r]}" for r, n in totals.items())


def read_pamap2(raw, window=100, step=22, downsample=3, channels="lab40", class_map=None,
                subjects=None, protocol="lab"):
    classes = parse_class_map(class_map if class_map is not None else default_class_map(protocol),
                              "pamap2 class_map")
    check_activity_ids(classes, "pamap2 class_map")
    channel_names = resolve_channels(channels)
    check_protocol(protocol, channel_names)
    make_windows, reasons = WINDOWING[protocol]
    parts, dropped, warnings = [], [], []
    listing = scan_subject_files(raw, subjects)
    for subject, path in listing.files:
        table = read_subject_file(path)
        breaks = _time_breaks(path, table[:, 0])
        _check_activity_ids(path, table[:, 1])
        _check_some_activity_in_class_map(path, subject, table[:, 1], classes)
        if breaks.size:
            lines = ", ".join(str(b + 1) for b in breaks[:5]) + (", ..." if breaks.size > 5 else "")
            log.warning("%s: timestamps jump back in time at line(s) %s (%d jump(s)); no window "
                        "spans a jump", path, lines, breaks.size)
            warnings.append({"warning": "time_jump", "file": path.name,
                             "where": f"line(s) {lines}", "count": int(breaks.size)})
        segment = np.cumsum(np.isin(np.arange(len(table)), breaks))
        X, raw_labels, left_out, zero_filled = make_windows(path, table, segment, channel_names,
                                                            classes, window, step, downsample)
        for channel, rows in zero_filled:
            log.warning("%s: %s is NaN on all %d rows kept; protocol lab sets it to 0", path,
                        channel, rows)
            warnings.append({"warning": "all_nan_column", "file": path.name, "where": channel,
                             "count": rows})
        dropped += [(reason, subject, label, n) for reason, label, n in left_out]
        described = _describe(left_out)
        if len(X) == 0:
            raise InputError(f"{path}: subject {subject} has no usable window "
                             f"({described or 'the recording is too short for one window'}); "
                             f"leave it out with `subjects:`")
        log.info("%s: %d windows (%s)", path.name, len(X), described or "none dropped")
        parts.append((subject, X, classes.lookup(raw_labels)))
    return WindowSet(
        X=np.concatenate([p[1] for p in parts]),
        y=np.concatenate([p[2] for p in parts]),
        subject=np.concatenate([np.full(len(p[1]), p[0], dtype=np.int64) for p in parts]),
        class_names=classes.names,
        channel_names=channel_names,
        sampling_rate_hz=RAW_RATE_HZ / downsample,
        source="pamap2",
        dropped=count_dropped((["time_jump"] if any(d[0] == "time_jump" for d in dropped) else [])
                              + reasons, dropped),
        warnings=warnings,
        skipped=listing.skipped,
    )
