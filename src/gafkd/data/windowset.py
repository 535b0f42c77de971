"""The in-memory form of a windowed dataset, as every reader returns it."""

import re
from dataclasses import dataclass, field

import numpy as np

from gafkd.errors import ConfigError


@dataclass
class WindowSet:
    X: np.ndarray                  # (N, C, L) float32
    y: np.ndarray                  # (N,) int64, index into class_names
    subject: np.ndarray            # (N,) int64
    class_names: list
    channel_names: list
    sampling_rate_hz: float
    source: str
    predefined_test: np.ndarray | None = None   # (N,) bool where the source fixes its test set
    dropped: dict = field(default_factory=dict)  # what was left out: see count_dropped
    # input read, but not as it stands: [{"warning" (a WARNINGS key), "file", "where", "count"}]
    warnings: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # raw folder entries not read: [(name, why)]

    def __post_init__(self):
        n = len(self.X)
        if self.X.ndim != 3 or len(self.y) != n or len(self.subject) != n:
            raise ValueError(f"inconsistent window set: X {self.X.shape}, y {self.y.shape}, "
                             f"subject {self.subject.shape}")
        if self.X.shape[1] != len(self.channel_names):
            raise ValueError(f"{self.X.shape[1]} channels but {len(self.channel_names)} channel names")


class ClassMap:
    """Raw class ids -> class indices, names in order of first appearance in the map.

    Several raw ids may share a name (e.g. 14 GENEActiv classes merged into 7).
    """

    def __init__(self, id_to_name):
        self.names = list(dict.fromkeys(id_to_name.values()))
        position = {name: i for i, name in enumerate(self.names)}
        self.index_of = {int(k): position[v] for k, v in id_to_name.items()}

    def __contains__(self, raw_id):
        return int(raw_id) in self.index_of

    def lookup(self, raw_ids):
        return np.array([self.index_of[int(r)] for r in raw_ids], dtype=np.int64)


def parse_class_map(class_map, where):
    """Config `class_map` ({raw id: name}) -> ClassMap; keys must be integers, all written as
    numbers or all as text. `where` names the config key in errors."""
    numbers = [k for k in class_map if isinstance(k, int) and not isinstance(k, bool)]
    texts = [k for k in class_map if isinstance(k, str)]
    if numbers and texts:
        raise ConfigError(f"{where}: keys mix numbers {numbers} and text {texts}; write every "
                          f"id as a number without quotes")
    parsed, spelled = {}, {}
    for key, name in class_map.items():
        if isinstance(key, int) and not isinstance(key, bool):
            raw_id = key
        elif isinstance(key, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", key):
            raw_id = int(key)
        else:
            raise ConfigError(f"{where}: key {key!r} is not an integer class id; write the raw "
                              f"ids as whole numbers, e.g. {{1: walking}}")
        if raw_id in parsed:
            raise ConfigError(f"{where}: keys {spelled[raw_id]!r} and {key!r} are both class id "
                              f"{raw_id}; keep one")
        if name is None or not str(name).strip():
            raise ConfigError(f"{where}: class id {raw_id} has an empty name; give every class a "
                              f"name, e.g. {{{raw_id}: walking}}")
        parsed[raw_id], spelled[raw_id] = str(name), key
    return ClassMap(parsed)


# reason -> (what the summary says, unit counted)
DROP_REASONS = {
    "time_jump": ("jump back in time inside the window", "windows"),
    "label_change": ("label change inside the window", "windows"),
    "not_in_class_map": ("activity not in the class map", "windows"),
    "nan": ("NaN inside the window", "windows"),
    "rows_not_in_class_map": ("rows deleted: activity not in the class map", "rows"),
    "not_mat_file": ("file in the raw folder that is not a .mat window", "files"),
}


# warning -> (what the summary says, unit counted)
WARNINGS = {
    "time_jump": ("timestamps jump back in time (no window spans a jump)", "jumps"),
    "all_nan_column": ("column NaN on every row kept, set to 0 (protocol lab)", "rows"),
}


def count_dropped(reasons, entries):
    """{reason: {"unit", "total", "detail": [{"subject", "class", "count"}]}} for every reason
    that applies, from (reason, subject, class name or raw id, count) entries. Entries of the
    same reason, subject and class add up; subject or class may be None where unknown."""
    dropped = {reason: {"unit": DROP_REASONS[reason][1], "total": 0, "detail": {}}
               for reason in reasons}
    for reason, subject, label, count in entries:
        if not count:
            continue
        key = (None if subject is None else int(subject), None if label is None else str(label))
        dropped[reason]["total"] += int(count)
        detail = dropped[reason]["detail"]
        detail[key] = detail.get(key, 0) + int(count)
    for info in dropped.values():
        info["detail"] = [{"subject": s, "class": c, "count": n}
                          for (s, c), n in info["detail"].items()]
    return dropped
