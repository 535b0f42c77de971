"""CUDA graphs of the training step (gafkd.train.graphs), on the CPU: the step's plumbing (static
index and outputs, warmup, a capture per learning rate, the short last batch eager) through a
stand-in graph that, like a CUDA graph, runs nothing at capture and the captured step at each
replay. benchmarks/gpu_check.py compares real graphs with eager runs on a device."""

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import ReplayedStep
from train_job import synthetic_data

from gafkd.train import graphs
from gafkd.train.defaults import default_train_settings
from gafkd.train.engine import learning_rate, train
from gafkd.train.memory import DEVICE, HOST
from gafkd.train.models import build_model
from gafkd.distill.students import CachedTeachers, DistillationLoss

CUDA = torch.device("cuda")
EPOCHS, BATCH = 18, 12          # four learning rates; 64 training windows: 5 full batches and one of 4


def train_synthetic(folder, cuda_graphs, epochs=EPOCHS):
    torch.manual_seed(0)
    model = build_model("wrn10-1", 3, 4, dims=1)
    settings = default_train_settings(epochs=epochs, batch_size=BATCH, seed=7, cuda_graphs=cuda_graphs)
    outputs = {k: folder / k for k in ("model", "metrics", "history")}
    train(model, synthetic_data(), settings, torch.device("cpu"), outputs, folder / "resume.pt", "synthetic")
    return (torch.load(outputs["model"], weights_only=True)["state_dict"], outputs["history"].read_text(),
            json.loads(outputs["metrics"].read_text()))


def test_a_graphed_run_is_the_eager_run_bit_for_bit(tmp_path, stand_in_graphs):
    eager_weights, eager_history, eager_metrics = train_synthetic(tmp_path / "eager", cuda_graphs=False)
    weights, history, metrics = train_synthetic(tmp_path / "graphed", cuda_graphs=True)
    assert all(torch.equal(weights[name], eager_weights[name]) for name in eager_weights)
    assert history == eager_history
    assert "cuda_graphs" not in eager_metrics
    rates = {learning_rate(epoch, EPOCHS, 0.05) for epoch in range(EPOCHS)}
    full_batches = EPOCHS * (64 // BATCH)
    # one capture per learning rate, every full batch after the warmup replayed, the short ones eager
    assert len(stand_in_graphs) == len(rates) == 4
    assert sum(graph.replays for graph in stand_in_graphs) == full_batches - graphs.WARMUP_STEPS
    assert metrics["cuda_graphs"] == {"used": True, "captures": 4,
                                      "replayed_steps": full_batches - graphs.WARMUP_STEPS}


def test_a_step_that_cannot_be_captured_stops_the_job_naming_the_switch(tmp_path, stand_in_graphs, monkeypatch):
    def refuse(self, step):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(ReplayedStep, "capture", refuse)
    with pytest.raises(graphs.GraphCaptureError, match="training.cuda_graphs: false") as error:
        train_synthetic(tmp_path, cuda_graphs=True, epochs=1)
    assert "operation not permitted" in str(error.value)
    assert not (tmp_path / "model").exists()


def test_graphs_asked_for_on_the_cpu_train_eagerly_and_say_why(tmp_path):
    eager_weights, _, _ = train_synthetic(tmp_path / "eager", cuda_graphs=False, epochs=2)
    weights, _, metrics = train_synthetic(tmp_path / "asked", cuda_graphs=True, epochs=2)
    assert all(torch.equal(weights[name], eager_weights[name]) for name in eager_weights)
    assert metrics["cuda_graphs"]["used"] is False
    assert "CUDA graphs need a CUDA device" in metrics["cuda_graphs"]["why_not"]


class FakeCache:
    def __init__(self, on_device):
        self.on_device = on_device


def data_with_train_split(placement):
    return SimpleNamespace(train=SimpleNamespace(placement=placement))


def test_only_steps_that_read_device_memory_alone_are_graphed():
    def loss(*caches, packed=False):
        sources = [CachedTeachers({"gaf": cache, "sig": FakeCache(True)}) for cache in caches]
        return DistillationLoss("kd2-anneal-sp", [0.5] * len(sources) if packed else 0.5, {}, {},
                                sources if packed else sources[0])

    resident = data_with_train_split(DEVICE)
    assert graphs.why_not_graphed(CUDA, resident, loss(FakeCache(True))) is None
    assert graphs.why_not_graphed(CUDA, resident, loss(FakeCache(True), FakeCache(True), packed=True)) is None
    assert graphs.why_not_graphed(CUDA, resident, DistillationLoss("kd2", 0.5, {}, {})) is None
    assert "similarity maps stream from host memory" in graphs.why_not_graphed(CUDA, resident, loss(FakeCache(False)))
    assert "similarity maps" in graphs.why_not_graphed(CUDA, resident, loss(FakeCache(True), FakeCache(False),
                                                                            packed=True))
    assert "training windows stream from host memory" in graphs.why_not_graphed(
        CUDA, data_with_train_split(HOST), loss(FakeCache(True)))
    assert "CUDA device" in graphs.why_not_graphed(torch.device("cpu"), resident, loss(FakeCache(True)))
