"""The in-memory form of a windowed dataset, as every reader returns it."""

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
    dropped: dict = field(default_factory=dict)  # reason -> number of windows left out

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
    """Config `class_map` ({raw id: name}) -> ClassMap; keys must be integers."""
    parsed = {}
    for key, name in class_map.items():
        try:
            raw_id = int(key)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: class_map key {key!r} is not an integer class id") from None
        parsed[raw_id] = str(name)
    return ClassMap(parsed)
