"""A run's metrics.json, history.csv and predictions.npz, sealed as the HDF5 files are
(gafkd.h5checked).

metrics.json carries the digests of its history.csv and predictions.npz (gafkd.train.predictions) and
a seal: the digest of everything else it holds. Whatever reads a run's numbers (the report, the figures, a reused teacher run) reads them
through read_metrics / read_history, so a file edited or damaged after it was written is named
instead of counted.
"""

import hashlib
import json
from pathlib import Path

from gafkd.errors import InputError, damaged, reason

SEAL = "seal"
HISTORY_DIGEST = "history_digest"
PREDICTIONS_DIGEST = "predictions_digest"


def digest(data):
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _canonical(record):
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def sealed(metrics, history_path, predictions_path=None):
    """`metrics` with the digests of the history file (and the predictions file) just written,
    and its seal."""
    record = {key: value for key, value in metrics.items() if key != SEAL}
    record[HISTORY_DIGEST] = digest(Path(history_path).read_bytes())
    if predictions_path is not None:
        record[PREDICTIONS_DIGEST] = digest(Path(predictions_path).read_bytes())
    record[SEAL] = digest(_canonical(record))
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
    if digest(_canonical(unsealed)) != record[SEAL]:
        raise damaged(path, what, "its contents do not match its seal: edited after it was written")
    return record


def read_history_bytes(path, metrics, metrics_path):
    """A run's history.csv as bytes, checked against the digest its metrics.json holds."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such history file")
    data = path.read_bytes()
    if digest(data) != metrics.get(HISTORY_DIGEST):
        raise damaged(path, "history file", f"it does not match the digest in {metrics_path}: "
                                            f"edited after it was written")
    return data


def read_predictions_bytes(path, metrics, metrics_path):
    """A run's predictions.npz as bytes, checked against the digest its metrics.json holds."""
    path = Path(path)
    if PREDICTIONS_DIGEST not in metrics:
        raise InputError(f"{metrics_path}: the run records no per-window predictions (written before "
                         "predictions.npz existed); run it again to get them")
    if not path.is_file():
        raise InputError(f"{path}: no such predictions file (its run, {metrics_path}, wrote one)")
    data = path.read_bytes()
    if digest(data) != metrics[PREDICTIONS_DIGEST]:
        raise damaged(path, "predictions file", f"it does not match the digest in {metrics_path}: "
                                                "edited or replaced after it was written")
    return data
