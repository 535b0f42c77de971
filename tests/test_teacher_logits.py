"""A student's loss sees, for each training window of a batch, that window's own cached teacher
logits: teacher outputs that encode each window's number are checked in the loss itself."""
import numpy as np
import pytest
import torch
from conftest import basicmotions_fold
from torch.nn import functional as F

import gafkd.distill.students as students
from gafkd.config import training_defaults
from gafkd.distill.losses import two_teacher_loss
from gafkd.data.windows import read_windows

CPU = torch.device("cpu")
KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "beta": 700.0, "sp_merge": "raw",
      "sp_source": "cache", "standardize_logits": False}


@pytest.fixture(scope="module")
def windows_h5(tmp_path_factory):
    # validation windows drawn from the training recordings: training windows are not the first rows
    return basicmotions_fold(tmp_path_factory.mktemp("teacher-logits"))["windows"]


def encoded_logits(n, classes):
    """Teacher logits that name their window: GAF row w is (w/10, 0, ...), signal row w is
    (0, ..., -w/10); in windows.h5 order, as a teacher's outputs.h5 stores them."""
    gaf = np.zeros((n, classes), dtype=np.float32)
    sig = np.zeros((n, classes), dtype=np.float32)
    gaf[:, 0] = np.arange(n) / 10
    sig[:, -1] = -np.arange(n) / 10
    return {"gaf": gaf, "sig": sig}


def student_loss(windows_h5, tmp_path, monkeypatch, method, alpha, teachers):
    """The training data and the loss function train_student hands to the training loop."""
    windows = read_windows(windows_h5)
    logits = encoded_logits(len(windows.y), len(windows.class_names))
    monkeypatch.setattr(students, "read_teacher_logits",
                        lambda path, fingerprint, expected=None: logits[path])
    seen = {}

    def capture(model, data, settings, device, runs, loss_fn):
        seen.update(data=data, loss=loss_fn)
        return [{}]

    monkeypatch.setattr(students, "train_runs", capture)
    settings = {"dataset": "basicmotions", "fold": "predefined", "arch": "wrn10-1", "method": method,
                "teachers": teachers, "alpha": alpha, "seed": 3, "teacher_seed": 1, "kd": KD,
                "training": {**training_defaults(), "epochs": 1, "batch_size": 8}}
    students.train_student(windows_h5, settings, teacher_outputs={"gaf": "gaf", "sig": "sig"},
                           outputs={k: tmp_path / k for k in ("model", "metrics", "history")},
                           resume_path=tmp_path / "resume.pt", device=CPU)
    # which window of windows.h5 each training row is, found by its contents
    row_of = {windows.X[w].tobytes(): w for w in range(len(windows.y))}
    window = np.array([row_of[x.numpy().tobytes()] for x in seen["data"].train.x])
    training = np.flatnonzero(windows.folds["predefined"].split == 0)
    assert sorted(window) == training.tolist()
    assert not np.array_equal(training, np.arange(len(training)))    # not a prefix
    return seen["data"], seen["loss"], window, logits


def test_student_matching_its_teacher_window_by_window_has_zero_kd_loss(windows_h5, tmp_path,
                                                                         monkeypatch):
    data, loss, window, logits = student_loss(windows_h5, tmp_path, monkeypatch, "kd-gaf", 1.0,
                                              "gasf-wrn10-1")
    index = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    targets = data.train.y[index]
    assert targets.tolist() == read_windows(windows_h5).y[window[index]].tolist()
    matching = torch.from_numpy(logits["gaf"][window[index]])
    # KL 0: only the cross-entropy part (1 − λ)·CE is left
    cross_entropy_part = (1 - KD["lambda"]) * F.cross_entropy(matching, targets).item()
    assert loss(matching, None, targets, index).item() == pytest.approx(cross_entropy_part, rel=1e-6)
    shifted = torch.from_numpy(logits["gaf"][window[index.roll(1)]])
    assert loss(shifted, None, targets, index).item() > (
        (1 - KD["lambda"]) * F.cross_entropy(shifted, targets).item() + 1e-3)


def test_two_teacher_loss_sees_each_windows_logits(windows_h5, tmp_path, monkeypatch):
    data, loss, window, logits = student_loss(windows_h5, tmp_path, monkeypatch, "kd2", 0.3,
                                              "gasf-wrn10-1+sig-wrn10-1")
    generator = torch.Generator().manual_seed(1)
    for batch in torch.randperm(len(data.train), generator=generator).split(8):
        student = torch.randn(len(batch), logits["gaf"].shape[1], generator=generator)
        targets = data.train.y[batch]
        expected = two_teacher_loss(student, targets, torch.from_numpy(logits["gaf"][window[batch]]),
                                    torch.from_numpy(logits["sig"][window[batch]]), 0.3, KD["lambda"],
                                    KD["temperature"], reduction=KD["reduction"])
        assert loss(student, None, targets, batch).item() == pytest.approx(expected.item(), rel=1e-6)
