import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from train_job import run, synthetic_data

from gafkd.train.folds import Split, TrainData
from gafkd.errors import InputError
from gafkd.train.metrics import confusion_matrix
from gafkd.train.predictions import correct, read_predictions
from gafkd.train.defaults import default_train_settings
from gafkd.train.engine import TrainingError, cross_entropy, learning_rate, train
from gafkd.train.memory import HOST
from gafkd.train.models import build_model

JOB = Path(__file__).with_name("train_job.py")
VOLATILE = {"wall_seconds", "epochs_per_second", "started_at", "finished_at", "memory", "seal"}   # the seal covers them


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.out", "metrics.out", "model.out",
                                                          "predictions.npz"]
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
    memory = json.loads((tmp_path / "metrics.out").read_text())["memory"]
    assert memory["host_peak_bytes"] > 0 and memory["device_peak_bytes"] is None
    assert memory["placement"] == {"splits": {"train": "device", "val": "device", "test": "device"}}


def test_predictions_are_the_best_checkpoints_test_windows_sealed_with_the_metrics(tmp_path):
    metrics = run(tmp_path, epochs=4, lr=0.2)
    written = json.loads((tmp_path / "metrics.out").read_text())
    predictions = read_predictions(written, tmp_path / "metrics.out", tmp_path / "predictions.npz")
    test = synthetic_data().test
    assert predictions["window"].tolist() == list(range(64))          # a Split without rows: 0..n-1
    assert predictions["label"].tolist() == test.y.tolist()
    assert predictions["logits"].shape == (64, 4) and predictions["logits"].dtype == np.float32
    assert (predictions["predicted"] == predictions["logits"].argmax(1)).all()
    # the checkpoint of the best validation accuracy, not the last epoch's weights
    assert correct(predictions).mean() == metrics["test_at_best_val"]["accuracy"]
    assert confusion_matrix(predictions["label"], predictions["predicted"], 4).tolist() == \
        metrics["test_at_best_val"]["confusion"]
    model = build_model("wrn10-1", 3, 4, dims=1)
    model.load_state_dict(torch.load(tmp_path / "model.out")["state_dict"])
    model.eval()
    with torch.no_grad():
        assert np.allclose(model(test.x)[0].numpy(), predictions["logits"], atol=1e-5)
    # a predictions file changed after it was written is named
    other = tmp_path / "other.npz"
    np.savez(other, **{**predictions, "predicted": np.zeros(64, dtype=np.int64)})
    with pytest.raises(InputError, match="other.npz.*does not match the digest"):
        read_predictions(written, tmp_path / "metrics.out", other)


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
    train(model, synthetic_data(), default_train_settings(epochs=1, batch_size=16), torch.device("cpu"),
          outputs, out / "resume.pt", run_key="other settings")
    assert "belongs to other settings: starting over" in caplog.text


def test_nan_loss_stops_with_clear_error_and_no_outputs(tmp_path):
    data = synthetic_data()
    data.train.x[5, 0, 3] = math.nan
    torch.manual_seed(0)
    model = build_model("wrn10-1", 3, 4, dims=1)
    outputs = {k: tmp_path / f"{k}.out" for k in ("model", "metrics", "history")}
    with pytest.raises(TrainingError, match=r"training loss is nan in epoch 1"):
        train(model, data, default_train_settings(epochs=2, batch_size=16), torch.device("cpu"), outputs,
              tmp_path / "resume.pt", run_key="nan")
    assert list(tmp_path.iterdir()) == []


def on_host(data):
    """The same data with every split marked as living in host memory (batches stream)."""
    return TrainData(*(Split(s.x, s.y, HOST) for s in (data.train, data.val, data.test)),
                     mean=data.mean, std=data.std, num_classes=data.num_classes)


def test_host_placement_streams_batches_with_identical_results(tmp_path, monkeypatch):
    """A split in host memory is gathered with a CPU copy of the index: on the CPU the run is
    bit-identical to the resident one, and the loss gets the index on the device and on the CPU
    (host-resident caches gather with the latter, so no step waits for the GPU)."""
    gathered, seen = [], []
    index_select = torch.index_select

    def counting_index_select(*args, **kwargs):
        gathered.append(args[2])
        return index_select(*args, **kwargs)

    def loss(logits, groups, targets, index, host_index):
        assert host_index.device.type == "cpu" and torch.equal(host_index, index.cpu())
        seen.append(index.clone())
        return cross_entropy(logits, groups, targets, index)

    def run_with(data, out):
        torch.manual_seed(0)
        model = build_model("wrn10-1", 3, 4, dims=1)
        outputs = {k: out / f"{k}.out" for k in ("model", "metrics", "history")}
        return train(model, data, default_train_settings(epochs=3, batch_size=16, seed=7), torch.device("cpu"),
                     outputs, out / "resume.pt", run_key="placement", loss_fn=loss)

    resident = run_with(synthetic_data(), tmp_path / "resident")
    resident_index = list(seen)
    seen.clear()
    monkeypatch.setattr(torch, "index_select", counting_index_select)
    streamed = run_with(on_host(synthetic_data()), tmp_path / "host")
    monkeypatch.undo()
    assert len(gathered) == 3 * 4                       # every training batch came from the host
    assert all(torch.equal(a, b) for a, b in zip(resident_index, seen)) and len(seen) == len(resident_index)
    assert [torch.equal(i, g) for i, g in zip(seen, gathered)] == [True] * len(seen)
    assert stable(streamed) == stable(resident)
    assert streamed["memory"]["placement"]["splits"] == {"train": "host", "val": "host", "test": "host"}
    for name in ("history.out",):
        assert (tmp_path / "host" / name).read_text() == (tmp_path / "resident" / name).read_text()
    a = torch.load(tmp_path / "resident" / "model.out")["state_dict"]
    b = torch.load(tmp_path / "host" / "model.out")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_host_split_rows_match_resident_rows():
    x = torch.randn(40, 5, 8, 8).half()
    index = torch.randperm(40)[:13]
    host = Split(x, torch.zeros(40, dtype=torch.long), HOST)
    assert torch.equal(host.rows(index, index.clone(), torch.device("cpu")), x[index])
    assert torch.equal(Split(x, host.y).rows(index, None, torch.device("cpu")), x[index])


def test_the_engine_does_not_import_the_config_module():
    """The training loop takes its recipe from its callers; it does not reach up to the config."""
    code = "import sys, gafkd.train.engine; print('gafkd.config' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_only_image_networks_in_bf16_on_cuda_take_the_channels_last_layout():
    from gafkd.train.engine import use_memory_format
    from gafkd.train.packed import members_of

    cuda = torch.device("cuda")         # only the device's kind is read: no GPU needed
    bf16, fp32 = default_train_settings(precision="bf16"), default_train_settings(precision="fp32")
    image, signal_net = build_model("wrn10-1", 3, 4, dims=2), build_model("wrn10-1", 3, 4, dims=1)
    assert not use_memory_format(image, torch.device("cpu"), bf16)
    assert not use_memory_format(image, cuda, fp32)
    assert not use_memory_format(signal_net, cuda, bf16)
    assert image.conv1.weight.is_contiguous()
    x = torch.randn(2, 3, 16, 16)
    before = image.eval()(x)[0]
    assert use_memory_format(image, cuda, default_train_settings(precision="fp32", channels_last=True))
    assert image.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not image.conv1.weight.is_contiguous()
    torch.testing.assert_close(image(x)[0], before)       # the same network in another layout
    # a saved state is the same bytes whichever layout it trained in
    state = members_of(image).member_state(0)
    assert all(t.is_contiguous() for t in state.values())
    assert all(torch.equal(state[n], t) for n, t in image.state_dict().items())
    fresh = build_model("wrn10-1", 3, 4, dims=2)
    assert use_memory_format(fresh, cuda, bf16) and not fresh.conv1.weight.is_contiguous()


def test_the_best_weights_stay_on_the_device_and_are_copied_out_once(tmp_path, monkeypatch):
    """Every better epoch keeps its weights where they trained (no host round trip per epoch);
    the host copies are the resume checkpoints' and model.pt's, once each."""
    import gafkd.train.packed as packed

    copies, real = [], packed._host_copy
    monkeypatch.setattr(packed, "_host_copy", lambda tensor: copies.append(tensor) or real(tensor))
    metrics = run(tmp_path, epochs=5, checkpoint_every=100)     # no resume checkpoint
    state = torch.load(tmp_path / "model.out")["state_dict"]
    assert len(copies) == len(state)                            # model.pt's, once
    assert metrics["best_epoch"] >= 1
    copies.clear()
    run(tmp_path / "resumable", epochs=5, checkpoint_every=2)   # resume checkpoints after epochs 2 and 4
    per_checkpoint = 2 * len(state)                             # the weights, and the best weights
    assert len(copies) == 2 * per_checkpoint + len(state)
