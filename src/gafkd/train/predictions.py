"""A run's per-window test predictions: predictions.npz beside its metrics.json.

At the checkpoint of the best validation accuracy (the one model.pt holds), for every test
window: `window` (its row in windows.h5), `label` (the true class), `predicted` and `logits`
(float32). It is written in the same atomic step as metrics.json, which holds its digest under
its seal, and is read back through read_predictions only: a file edited, swapped or cut short
after it was written is named instead of counted. The report resamples its windows for the
test-set intervals and compares two runs' windows with McNemar's test.
"""

import io
from pathlib import Path

import numpy as np

from gafkd.errors import damaged, reason
from gafkd.train.run_record import read_predictions_bytes

FIELDS = ("window", "label", "predicted", "logits")


def predictions_path(metrics_path):
    return Path(metrics_path).with_name("predictions.npz")


def write_predictions(path, windows, labels, logits):
    """Write the predictions of one run to `path` (an open temporary path of atomic_paths)."""
    logits = np.asarray(logits, dtype=np.float32)
    windows, labels = np.asarray(windows, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if not (len(windows) == len(labels) == len(logits)):
        raise ValueError(f"predictions of {len(windows)} windows, {len(labels)} labels and {len(logits)} logits")
    with open(path, "wb") as f:
        np.savez_compressed(f, window=windows, label=labels, logits=logits,
                            predicted=logits.argmax(axis=1).astype(np.int64) if len(logits) else labels)


def read_predictions(metrics, metrics_path, path=None):
    """The predictions of the run whose (already read) metrics.json is `metrics`: {field: array},
    checked against the digest and the test accuracy that metrics.json holds."""
    path = predictions_path(metrics_path) if path is None else Path(path)
    data = read_predictions_bytes(path, metrics, metrics_path)
    try:
        with np.load(io.BytesIO(data)) as npz:
            arrays = {name: npz[name] for name in FIELDS}
    except Exception as exc:
        raise damaged(path, "predictions file", reason(exc)) from None
    best = metrics.get("test_at_best_val", {})
    n = best.get("n")
    if n is not None and len(arrays["label"]) != n:
        raise damaged(path, "predictions file", f"{len(arrays['label'])} windows, {metrics_path} tested {n}")
    return arrays


def correct(arrays):
    """Per window: whether the run predicted it right."""
    return arrays["predicted"] == arrays["label"]
