"""Accuracy, confusion matrix and macro-F1 against cases worked out by hand and scikit-learn."""
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score

from gafkd.train.metrics import confusion_matrix, macro_f1, summarize


def test_imbalanced_case_by_hand():
    # 8 windows of class 0, 2 of class 1; one of class 1 predicted as 0.
    y_true = [0] * 8 + [1] * 2
    y_pred = [0] * 8 + [0, 1]
    # class 0: tp 8, fp 1, fn 0 -> F1 16/17; class 1: tp 1, fp 0, fn 1 -> F1 2/3
    result = summarize(y_true, y_pred, 2)
    assert result["confusion"] == [[8, 0], [1, 1]]            # rows: true class
    assert result["accuracy"] == 0.9 and result["n"] == 10
    assert result["macro_f1"] == pytest.approx((16 / 17 + 2 / 3) / 2, abs=1e-12)   # micro-F1: 0.9


def test_a_class_never_predicted_counts_zero():
    # class 2 (3 windows) is always predicted as 0; class 1 is always right.
    y_true = [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    # class 0: tp 3, fp 3 -> 6/9; class 1: 1; class 2: 0
    assert summarize(y_true, y_pred, 3)["macro_f1"] == pytest.approx((6 / 9 + 1 + 0) / 3, abs=1e-12)


def test_classes_absent_from_both_are_left_out_and_predicted_only_ones_count():
    # 4 classes; class 3 is nowhere, class 2 is only predicted (once, wrongly).
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]
    # class 0: tp 1, fn 1 -> 2/3; class 1: 1; class 2: tp 0, fp 1 -> 0 (counted, as scikit-learn)
    result = summarize(y_true, y_pred, 4)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3, abs=1e-12)
    assert result["confusion"] == [[1, 0, 1, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize("seed", range(8))
def test_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    classes = 5
    # imbalanced true labels; predictions right 60 % of the time, else any class
    y_true = rng.choice(classes, size=200, p=[0.5, 0.25, 0.15, 0.07, 0.03])
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, classes, 200))
    matrix = confusion_matrix(y_true, y_pred, classes)
    np.testing.assert_array_equal(matrix, sk_confusion_matrix(y_true, y_pred, labels=range(classes)))
    assert macro_f1(matrix) == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    result = summarize(y_true, y_pred, classes)
    assert result["accuracy"] == pytest.approx(np.mean(y_true == y_pred), abs=1e-12)
    assert result["macro_f1"] != pytest.approx(result["accuracy"], abs=1e-3)   # not micro-F1
