import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_job import run, synthetic_data

from gafkd.engine import TrainingError, TrainSettings, learning_rate, train
from gafkd.models import build_model

JOB = Path(__file__).with_name("train_job.py")
VOLATILE = {"wall_seconds", "epochs_per_second", "started_at", "finished_at"}


def stable(metrics):
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


def read_metrics(out_dir):
    return stable(json.loads((Path(out_dir) / "metrics.out").read_text()))


def test_lab_learning_rate_steps():
    """TDA_KD train_ad.py adjust_learning_rate, transcribed."""
    def lab(epoch, epochs):
        if epoch < int(epochs / 18.0):
            return 0.05
        if epoch < int(epochs / 3.0):
            return 0.1 * 0.1
        if epoch < int(epochs * 2 / 3.0):
            return 0.1 * 0.01
        return 0.1 * 0.001
    for epochs in (200, 60, 18, 7):
        for epoch in range(epochs):
            assert learning_rate(epoch, epochs, 0.05, "lab") == pytest.approx(lab(epoch, epochs), rel=1e-12)
    got = [learning_rate(e, 200, 0.05, "lab") for e in (10, 11, 65, 66, 132, 133)]
    assert got == pytest.approx([0.05, 0.01, 0.01, 0.001, 0.001, 0.0001])
    # fraction: each step from the first epoch at or after E/18, E/3, 2E/3 (one epoch later here)
    got = [learning_rate(e, 200, 0.05, "fraction") for e in (11, 12, 66, 67, 133, 134)]
    assert got == pytest.approx([0.05, 0.01, 0.01, 0.001, 0.001, 0.0001])


def test_same_seed_same_metrics_and_files(tmp_path):
    first = run(tmp_path / "a", epochs=3)
    second = run(tmp_path / "b", epochs=3)
    assert stable(first) == stable(second)
    a = torch.load(tmp_path / "a" / "model.out")["state_dict"]
    b = torch.load(tmp_path / "b" / "model.out")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "history.out").read_text() == (tmp_path / "b" / "history.out").read_text()


def test_outputs_and_metrics(tmp_path):
    metrics = run(tmp_path, epochs=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.out", "metrics.out", "model.out"]
    history = (tmp_path / "history.out").read_text().splitlines()
    assert history[0].startswith("epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy")
    assert len(history) == 1 + 4
    assert 1 <= metrics["best_epoch"] <= 4
    test = metrics["test_at_best_val"]
    assert set(test) >= {"accuracy", "macro_f1", "confusion", "n"}
    assert sum(map(sum, test["confusion"])) == test["n"] == 64
    assert "optimistic" in metrics["optimistic_best_test_accuracy"]["note"]
    assert metrics["optimistic_best_test_accuracy"]["accuracy"] >= test["accuracy"]
    assert metrics["epochs_per_second"] > 0


def wait_for(path, process, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_identical_metrics(tmp_path, how):
    epochs = 8
    run(tmp_path / "reference", epochs=epochs)
    out = tmp_path / "killed"
    out.mkdir()
    job = subprocess.Popen([sys.executable, str(JOB), str(out), str(epochs), "0.02"],
                           stderr=subprocess.PIPE, text=True)
    wait_for(out / "resume.pt", job)          # the first periodic checkpoint (epoch 2)
    time.sleep(0.3)                           # kill it somewhere in the middle of epoch 3
    job.send_signal(how)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode != 0
    if how == signal.SIGTERM:
        assert "stopped by SIGTERM" in stderr
    assert not (out / "metrics.out").exists() and (out / "resume.pt").exists()
    resumed = subprocess.run([sys.executable, str(JOB), str(out), str(epochs)],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert read_metrics(out) == read_metrics(tmp_path / "reference")
    assert (out / "history.out").read_text() == (tmp_path / "reference" / "history.out").read_text()
    assert not (out / "resume.pt").exists()


def test_corrupt_resume_checkpoint_starts_over(tmp_path, caplog):
    run(tmp_path / "reference", epochs=3)
    out = tmp_path / "corrupt"
    out.mkdir()
    (out / "resume.pt").write_bytes(b"\x80\x04truncated")
    metrics = run(out, epochs=3)
    assert "unreadable" in caplog.text and "starting over" in caplog.text
    assert stable(metrics) == read_metrics(tmp_path / "reference")


def test_resume_checkpoint_of_other_settings_is_ignored(tmp_path, caplog):
    out = tmp_path / "run"
    job = subprocess.Popen([sys.executable, str(JOB), str(out), "6", "0.02"],
                           stderr=subprocess.PIPE, text=True)
    wait_for(out / "resume.pt", job)
    job.kill()
    job.communicate()
    torch.manual_seed(0)
    model = build_model("wrn10-1", 3, 4, dims=1)
    outputs = {k: out / f"{k}.out" for k in ("model", "metrics", "history")}
    train(model, synthetic_data(), TrainSettings(epochs=1, batch_size=16), torch.device("cpu"),
          outputs, out / "resume.pt", run_key="other settings")
    assert "belongs to other settings: starting over" in caplog.text


def test_nan_loss_stops_with_clear_error_and_no_outputs(tmp_path):
    data = synthetic_data()
    data.train.x[5, 0, 3] = math.nan
    torch.manual_seed(0)
    model = build_model("wrn10-1", 3, 4, dims=1)
    outputs = {k: tmp_path / f"{k}.out" for k in ("model", "metrics", "history")}
    with pytest.raises(TrainingError, match=r"training loss is nan in epoch 1"):
        train(model, data, TrainSettings(epochs=2, batch_size=16), torch.device("cpu"), outputs,
              tmp_path / "resume.pt", run_key="nan")
    assert list(tmp_path.iterdir()) == []
