"""model.pt: written by gafkd.train.checkpoint.save_model (through engine.train), read and checked by
the teacher reader (teacher_outputs.load_teacher) and the student reader (an annealed student's
initial weights)."""

import re

import pytest
import torch
from torch.nn import functional as F
from train_job import synthetic_data

from gafkd.train.checkpoint import check_trained_on, checkpoint_digest, load_checkpoint, read_model, save_model
from gafkd.train.defaults import default_train_settings
from gafkd.train.engine import predict, train
from gafkd.errors import InputError
from gafkd.train.models import build_model
from gafkd.distill.students import _load_initial_weights
from gafkd.distill.teacher_outputs import load_teacher

CPU = torch.device("cpu")
METADATA = {"role": "teacher", "dataset": "toy", "fold": "fold0", "arch": "wrn10-1", "seed": 1,
            "alpha": 0.5, "class_names": ["walk", "run"], "windows_fingerprint": "abc123"}
# checkpoint_digest of toy_checkpoint(): model.pt files already written carry digests of this form
PINNED_DIGEST = "740a3c7c2a2971b8ad5feb30fe2be792"


def toy_checkpoint():
    state_dict = {"conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
                  "bn.num_batches_tracked": torch.tensor(4)}
    return (state_dict, 3, torch.tensor([0.5, -1.0]).reshape(1, 2, 1),
            torch.tensor([2.0, 0.25]).reshape(1, 2, 1))


def write_toy(path, **changes):
    save_model(*toy_checkpoint(), {**METADATA, **changes}, path)
    return path


def test_round_trip_gives_back_weights_statistics_and_metadata(tmp_path):
    path = write_toy(tmp_path / "model.pt")
    loaded = read_model(path, "teacher checkpoint", {"role": "teacher", "seed": 1}, "abc123", "teacher")
    state_dict, epoch, mean, std = toy_checkpoint()
    assert list(loaded) == ["state_dict", "epoch", "mean", "std", *METADATA, "digest"]
    assert list(loaded["state_dict"]) == list(state_dict)
    for key, value in state_dict.items():
        assert loaded["state_dict"][key].dtype == value.dtype
        assert torch.equal(loaded["state_dict"][key], value)
    assert loaded["epoch"] == epoch
    assert torch.equal(loaded["mean"], mean) and torch.equal(loaded["std"], std)
    assert {key: loaded[key] for key in METADATA} == METADATA
    assert loaded["digest"] == PINNED_DIGEST


def test_checkpoint_written_in_the_established_format_loads(tmp_path):
    state_dict, epoch, mean, std = toy_checkpoint()
    state = {"state_dict": state_dict, "epoch": epoch, "mean": mean, "std": std, **METADATA}
    assert checkpoint_digest(state) == PINNED_DIGEST
    path = tmp_path / "model.pt"
    torch.save({**state, "digest": PINNED_DIGEST}, path)
    assert read_model(path, "teacher checkpoint", {"role": "teacher"})["epoch"] == epoch


@pytest.mark.parametrize("expected, wrong", [
    ({"role": "teacher", "fold": "fold0", "seed": 2}, "(seed 1, expected 2)"),
    ({"role": "student", "seed": 1}, "(role teacher, expected student)"),
    ({"role": "teacher", "method": "scratch"}, "(no method recorded, expected scratch)"),
])
def test_checkpoint_of_another_run_is_refused_naming_file_and_field(tmp_path, expected, wrong):
    path = write_toy(tmp_path / "model.pt")
    with pytest.raises(InputError) as error:
        read_model(path, "teacher checkpoint", expected)
    message = str(error.value)
    assert message.startswith(f"{path}: holds a checkpoint of ") and wrong in message


def test_checkpoint_trained_on_other_windows_is_refused_naming_file(tmp_path):
    path = write_toy(tmp_path / "model.pt")
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: teacher was trained on other "
                                         f"windows; "):
        read_model(path, "teacher checkpoint", {"role": "teacher"}, "other", "teacher")
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: teacher was trained on other "
                                         f"windows than windows.h5; "):
        check_trained_on(path, load_checkpoint(path, "model"), "other", "teacher", "windows.h5")
    check_trained_on(path, load_checkpoint(path, "model"), "abc123", "teacher", "windows.h5")


def truncate(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def empty(path):
    path.write_bytes(b"")


def tamper(path):
    state = torch.load(path, weights_only=True)
    torch.save({**state, "epoch": state["epoch"] + 1}, path)


def strip_digest(path):
    state = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "digest"}, path)


@pytest.mark.parametrize("damage, problem", [
    (truncate, "teacher checkpoint is damaged (not a readable checkpoint: "),
    (empty, "teacher checkpoint is damaged (empty file)"),
    (tamper, "teacher checkpoint is damaged (its contents do not match their checksum)"),
    (strip_digest, "teacher checkpoint carries no checksum"),
    (lambda path: path.unlink(), "no such teacher checkpoint"),
])
def test_damaged_checkpoint_is_refused_naming_file(tmp_path, damage, problem):
    path = write_toy(tmp_path / "model.pt")
    damage(path)
    with pytest.raises(InputError) as error:
        read_model(path, "teacher checkpoint", {"role": "teacher"})
    assert str(error.value).startswith(f"{path}: {problem}")


RUN = {"dataset": "toy", "fold": "fold0", "arch": "wrn10-1", "seed": 1, "windows_fingerprint": "fp",
       "modality": "sig", "dims": 1, "in_channels": 3, "class_names": ["a", "b", "c", "d"]}
ROLES = {"teacher": {"role": "teacher"},
         "student": {"role": "student", "method": "scratch", "teachers": "none", "alpha": 0.0}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{role: (model.pt, metrics, data)} of two short runs of engine.train."""
    runs = {}
    for role, fields in ROLES.items():
        out = tmp_path_factory.mktemp(role)
        data = synthetic_data()
        data.mean = torch.tensor([0.1, -0.2, 0.3]).reshape(1, 3, 1)
        data.std = torch.tensor([1.5, 0.5, 2.0]).reshape(1, 3, 1)
        torch.manual_seed(0)
        model = build_model("wrn10-1", 3, 4, dims=1)
        outputs = {k: out / k for k in ("model", "metrics", "history")}
        metrics = train(model, data, default_train_settings(epochs=3, batch_size=16, seed=7), CPU, outputs,
                        out / "resume.pt", run_key=role, checkpoint_extra={**fields, **RUN})
        runs[role] = (outputs["model"], metrics, data)
    return runs


def test_teacher_reader_reads_what_train_wrote(trained):
    path, metrics, data = trained["teacher"]
    expected = {k: RUN[k] for k in ("dataset", "fold", "modality", "arch", "seed")}
    teacher = load_teacher(path, CPU, expected, windows_fingerprint="fp")
    assert teacher.record["epoch"] == metrics["best_epoch"]
    assert torch.equal(teacher.mean, data.mean) and torch.equal(teacher.std, data.std)
    # the best-validation weights and the training statistics: the test metrics of that epoch
    logits = predict(teacher.model, teacher.normalize, data.test.x, 512, CPU)
    best = metrics["test_at_best_val"]
    assert float(F.cross_entropy(logits, data.test.y)) == best["loss"]
    assert (logits.argmax(1) == data.test.y).float().mean().item() == pytest.approx(best["accuracy"])
    with pytest.raises(InputError, match=re.escape(f"{trained['student'][0]}: holds a checkpoint")):
        load_teacher(trained["student"][0], CPU, expected)
    with pytest.raises(InputError, match="teacher was trained on other windows"):
        load_teacher(path, CPU, expected, windows_fingerprint="other")


def test_student_reader_starts_from_what_train_wrote(trained):
    path, metrics, data = trained["student"]
    settings = {**{k: RUN[k] for k in ("dataset", "fold", "arch", "seed")}, "method": "kd2-anneal"}
    torch.manual_seed(1)
    model = build_model("wrn10-1", 3, 4, dims=1)
    _load_initial_weights(model, path, settings, "fp", "scratch")
    saved = load_checkpoint(path, "model")["state_dict"]
    assert list(model.state_dict()) == list(saved)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(InputError, match=re.escape(f"{path}: the scratch student was trained on other windows")):
        _load_initial_weights(model, path, settings, "other", "scratch")
    with pytest.raises(InputError, match=re.escape("(seed 1, expected 2)")):
        _load_initial_weights(model, path, {**settings, "seed": 2}, "fp", "scratch")
    teacher_path = trained["teacher"][0]
    with pytest.raises(InputError, match=re.escape(f"{teacher_path}: holds a checkpoint")):
        _load_initial_weights(model, teacher_path, settings, "fp", "scratch")
