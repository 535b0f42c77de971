"""Classification metrics from predictions."""

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes):
    """(num_classes, num_classes) counts, rows true class, columns predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def macro_f1(matrix):
    """Mean F1 over the classes present in the true labels or the predictions."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    present = (predicted + actual) > 0
    denominator = predicted + actual
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def summarize(y_true, y_pred, num_classes):
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    total = matrix.sum()
    return {
        "accuracy": float(np.trace(matrix) / total) if total else float("nan"),
        "macro_f1": macro_f1(matrix),
        "n": int(total),
        "confusion": matrix.tolist(),
    }
