"""A run's metrics.json and history.csv, sealed as the HDF5 files are (gafkd.h5checked).

metrics.json carries the digest of its history.csv and a seal: the digest of everything else it
holds. Whatever reads a run's numbers (the report, the figures, a reused teacher run) reads them
through read_metrics / read_history, so a file edited or damaged after it was written is named
instead of counted.
"""

import hashlib
import json
from pathlib import Path

from gafkd.errors import InputError, damaged, reason

SEAL = "seal"
HISTORY_DIGEST = "history_digest"


def _digest(data):
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _canonical(record):
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def sealed(metrics, history_path):
    """`metrics` with the digest of the history file just written and its seal."""
    record = {key: value for key, value in metrics.items() if key != SEAL}
    record[HISTORY_DIGEST] = _digest(Path(history_path).read_bytes())
    record[SEAL] = _digest(_canonical(record))
    return record


def metrics_text(record):
    return json.dumps(record, indent=2) + "\n"


def read_metrics(path, what="metrics file"):
    """A run's metrics.json, checked against its seal."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(path, what, reason(exc)) from None
    if not isinstance(record, dict) or SEAL not in record:
        raise damaged(path, what, "no seal: not written by gafkd, or edited")
    unsealed = {key: value for key, value in record.items() if key != SEAL}
    if _digest(_canonical(unsealed)) != record[SEAL]:
        raise damaged(path, what, "its contents do not match its seal: edited after it was written")
    return record


def read_history_bytes(path, metrics, metrics_path):
    """A run's history.csv as bytes, checked against the digest its metrics.json holds."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such history file")
    data = path.read_bytes()
    if _digest(data) != metrics.get(HISTORY_DIGEST):
        raise damaged(path, "history file", f"it does not match the digest in {metrics_path}: "
                                            f"edited after it was written")
    return data
