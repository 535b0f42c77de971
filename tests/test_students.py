import json

import numpy as np
import pytest
import torch
from conftest import basicmotions_fold

from gafkd.config import training_defaults
from gafkd.errors import ConfigError, InputError
from gafkd.images.cache import read_images
from gafkd.distill.losses import merged_teacher_map, similarity_preserving, two_teacher_loss
from gafkd.distill.similarity_cache import build_similarity_cache
from gafkd.distill.students import DistillationLoss, OnlineTeachers, StudentRun, train_student
from gafkd.distill.teacher_outputs import load_teacher, read_teacher_logits, write_teacher_outputs
from gafkd.distill.teachers import train_teacher
from gafkd.data.windows import read_windows

CPU = torch.device("cpu")
TRAINING = {**training_defaults(), "epochs": 2, "batch_size": 8}
KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "beta": 700.0, "sp_merge": "raw",
      "sp_source": "cache", "standardize_logits": False}


def run_files(root):
    root.mkdir(parents=True, exist_ok=True)
    return {k: root / k for k in ("model", "metrics", "history")}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("students")
    files = basicmotions_fold(root, images_size=16)
    for modality in ("gaf", "sig"):
        settings = {"dataset": "basicmotions", "fold": "predefined", "modality": {"gaf": "gasf"}.get(modality, modality),
                    "arch": "wrn10-1", "seed": 1, "training": TRAINING}
        out = run_files(root / f"teacher-{modality}")
        train_teacher(files["windows"], files["images"], settings, out, root / "resume.pt", CPU)
        write_teacher_outputs(out["model"], files["windows"], files["images"],
                              root / f"outputs-{modality}.h5", CPU)
        files[f"{modality}_model"] = out["model"]
        files[f"{modality}_outputs"] = root / f"outputs-{modality}.h5"
        build_similarity_cache(out["model"], files["windows"], files["images"],
                               root / f"similarity-{modality}.h5", CPU)
        files[f"{modality}_similarity"] = root / f"similarity-{modality}.h5"
    return files


def student(demo, out, method, alpha, teachers="gasf-wrn10-1+sig-wrn10-1", init=None, kd=None,
            **training):
    settings = {"dataset": "basicmotions", "fold": "predefined", "arch": "wrn10-1", "method": method,
                "teachers": teachers, "alpha": alpha, "seed": 3, "teacher_seed": 1, "kd": {**KD, **(kd or {})},
                "training": {**TRAINING, **training}}
    return train_student(
        demo["windows"], settings,
        teacher_outputs={m: demo[f"{m}_outputs"] for m in ("gaf", "sig")},
        teacher_models={m: demo[f"{m}_model"] for m in ("gaf", "sig")},
        teacher_similarity={m: demo[f"{m}_similarity"] for m in ("gaf", "sig")},
        images_h5=demo["images"], init_model=init, outputs=run_files(out),
        resume_path=out / "resume.pt", device=CPU)


def test_cached_outputs_give_the_loss_of_an_online_teacher(demo):
    windows = read_windows(demo["windows"])
    train = windows.folds["predefined"].split == 0
    fingerprint = windows.attrs["fingerprint"]
    cached = {m: torch.from_numpy(read_teacher_logits(demo[f"{m}_outputs"], fingerprint)[train])
              for m in ("gaf", "sig")}
    teachers = {m: load_teacher(demo[f"{m}_model"], CPU) for m in ("gaf", "sig")}
    inputs = {"sig": torch.from_numpy(windows.X[train]),
              "gaf": torch.from_numpy(read_images(demo["images"], fingerprint)[train])}
    sp = OnlineTeachers({m: (teachers[m], inputs[m]) for m in ("gaf", "sig")}, CPU)
    loss_fn = DistillationLoss("kd2-anneal-sp", 0.3, KD, cached, sp)
    index = torch.tensor([3, 17, 0, 25, 8, 11, 30, 2])
    student_logits = torch.randn(8, 4)
    student_groups = [torch.randn(8, 5, 7), torch.randn(8, 3, 4), torch.randn(8, 2, 2)]
    targets = torch.from_numpy(windows.y[train])[index]
    with torch.no_grad():
        online = {}
        groups = {}
        for m, teacher in teachers.items():
            online[m], groups[m] = teacher.model(teacher.normalize(inputs[m][index]))
    expected = two_teacher_loss(student_logits, targets, online["gaf"], online["sig"], 0.3, 0.7, 4.0,
                                reduction="mean")
    expected = expected + 700 * similarity_preserving(
        student_groups, [merged_teacher_map(g, s, 0.3, "raw") for g, s in zip(groups["gaf"], groups["sig"])])
    got = loss_fn(student_logits, student_groups, targets, index)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # the config's switches reach the loss: the textbook choices give another number
    textbook = DistillationLoss("kd2-anneal-sp", 0.3, {**KD, "reduction": "batchmean",
                                                       "sp_merge": "normalized"}, cached, sp)
    other = textbook(student_logits, student_groups, targets, index)
    assert abs(other.item() - got.item()) > 1e-3 * abs(got.item())


VOLATILE = {"config", "provenance", "wall_seconds", "epochs_per_second", "started_at", "finished_at",
            "memory", "seal"}          # the seal covers the others


def stable(metrics):
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


def test_kd2_at_alpha_one_equals_kd_gaf(demo, tmp_path):
    kd2 = student(demo, tmp_path / "kd2", "kd2", 1.0)
    kd_gaf = student(demo, tmp_path / "kdgaf", "kd-gaf", 1.0, teachers="gasf-wrn10-1")
    assert stable(kd2) == stable(kd_gaf)
    kd2_mixed = student(demo, tmp_path / "kd2mixed", "kd2", 0.5)
    assert stable(kd2_mixed)["val_loss"] != stable(kd2)["val_loss"]


def test_annealed_student_starts_from_the_scratch_student(demo, tmp_path):
    student(demo, tmp_path / "scratch", "scratch", 0.0, teachers="none")
    # With a vanishing learning rate the weights stay where they started.
    student(demo, tmp_path / "anneal", "kd2-anneal", 0.5, init=tmp_path / "scratch" / "model", lr=1e-12,
            epochs=1)
    start = torch.load(tmp_path / "scratch" / "model", weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "anneal" / "model", weights_only=True)["state_dict"]
    assert torch.allclose(start["conv1.weight"], after["conv1.weight"], atol=1e-8)
    fresh = student(demo, tmp_path / "kd2", "kd2", 0.5, lr=1e-12, epochs=1)
    fresh_weights = torch.load(tmp_path / "kd2" / "model", weights_only=True)["state_dict"]
    assert not torch.allclose(start["conv1.weight"], fresh_weights["conv1.weight"])
    assert fresh["best_epoch"] == 1


def test_similarity_preserving_student_runs(demo, tmp_path):
    # a scratch student that has learned something (8 epochs, the first at the full lr)
    student(demo, tmp_path / "scratch", "scratch", 0.0, teachers="none", epochs=8,
            lr_boundaries="fraction")
    metrics = student(demo, tmp_path / "sp", "kd2-anneal-sp", 0.3, init=tmp_path / "scratch" / "model",
                      lr=0.01)
    saved = json.loads((tmp_path / "sp" / "metrics").read_text())
    assert saved["config"]["method"] == "kd2-anneal-sp" and saved["config"]["alpha"] == 0.3
    assert metrics["test_at_best_val"]["accuracy"] >= 0.5          # 4 balanced classes: chance 0.25
    # β = 700 · SP is in the loss: the first epoch's training loss is far above a cross-entropy
    first_epoch = (tmp_path / "sp" / "history").read_text().splitlines()[1].split(",")
    assert float(first_epoch[2]) > 5


def test_bad_student_requests(demo, tmp_path):
    with pytest.raises(ConfigError, match="method 'kd-gaf' has α = 1, not 0.5"):
        student(demo, tmp_path / "a", "kd-gaf", 0.5, teachers="gasf-wrn10-1")
    with pytest.raises(InputError, match="missing.pt: no such student checkpoint"):
        student(demo, tmp_path / "b", "kd2-anneal", 0.5, init=tmp_path / "missing.pt")
    assert not (tmp_path / "b" / "metrics").exists()


def test_teacher_outputs_of_other_windows_are_rejected(demo):
    with pytest.raises(InputError, match="computed on other windows"):
        read_teacher_logits(demo["gaf_outputs"], "f" * 32)
    logits = read_teacher_logits(demo["gaf_outputs"], read_windows(demo["windows"]).attrs["fingerprint"])
    assert logits.shape == (80, 4) and np.isfinite(logits).all()


class FixedGrams:
    """Teachers' raw Gram blocks that do not depend on the batch (the loss's arithmetic alone)."""

    def __init__(self, grams):
        self.blocks = grams

    def grams(self, index, host_index=None):
        return self.blocks


def test_sp_term_stays_float32_under_bf16_autocast():
    """The engine runs the loss inside autocast when training.bf16 is on: the SP Gram maps of the
    (bf16) student outputs must still be float32, as the cached teachers' are."""
    generator = torch.Generator().manual_seed(0)
    batch, classes = 8, 4
    groups = [torch.randn(batch, 16, 50, generator=generator).bfloat16(),
              torch.randn(batch, 32, 25, generator=generator).bfloat16(),
              torch.randn(batch, 64, 13, generator=generator).bfloat16()]
    teachers = {m: [torch.randn(batch, 40, generator=generator) for _ in range(3)] for m in ("gaf", "sig")}
    teachers = FixedGrams({m: [g @ g.t() for g in grams] for m, grams in teachers.items()})
    logits = {m: torch.randn(batch, classes, generator=generator) for m in ("gaf", "sig")}
    student = torch.randn(batch, classes, generator=generator)
    targets = torch.randint(0, classes, (batch,), generator=generator)
    index = torch.arange(batch)
    with_sp = DistillationLoss("kd2-anneal-sp", 0.3, KD, logits, teachers)
    without_sp = DistillationLoss("kd2", 0.3, KD, logits)

    def sp_term():
        return (with_sp(student, groups, targets, index) - without_sp(student, groups, targets, index)).item()

    reference = sp_term()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert sp_term() == pytest.approx(reference, rel=1e-6)


def test_a_wide_packs_reserve_streams_the_images_that_a_solo_run_keeps(monkeypatch):
    """training_reserve grows with the pack; on a (faked) card with room for the teachers' images
    beside a solo run's reserve, a pack of 16 sends them to host memory."""
    from gafkd.train import memory
    from gafkd.train.models import build_model
    from gafkd.train.packed import pack_models
    cuda = torch.device("cuda", 0)
    torch.manual_seed(0)
    members = [build_model("wrn10-1", 6, 4, dims=1) for _ in range(16)]
    solo = memory.training_reserve(members[0], 1, (6, 100), 64, cuda)
    pack = memory.training_reserve(pack_models(members), 16, (6, 100), 4096, cuda)
    assert solo == memory.reserve_bytes() and pack > solo    # never less than the default
    assert memory.training_reserve(pack_models(members), 16, (6, 100), 4096, CPU) == solo
    images = 10**9
    card = memory.CUDA_CONTEXT_BYTES + solo + images
    monkeypatch.delenv(memory.PLACEMENT_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (card, card))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    assert memory.fits_on_device(images, cuda, solo) and not memory.fits_on_device(images, cuda, pack)


class Placed(Exception):
    """Stops a job once its data are placed, before training."""


@pytest.mark.parametrize("source", ["online", "cache"])
def test_every_placement_of_a_pack_plans_with_its_training_reserve(demo, tmp_path, monkeypatch, source):
    """The splits and the SP teachers' images or caches of a pack's job are placed with the one
    reserve training_reserve gives for the pack."""
    from gafkd.distill import similarity_cache, students
    reserve = 123_457
    seen = {"training_reserve": [], "placements": []}

    def training_reserve(model, members, *args):
        seen["training_reserve"].append(members)
        return reserve

    def spy(function, name):
        def wrapped(*args, **kwargs):
            seen["placements"].append((name, kwargs.get("reserve", args[2] if len(args) > 2 else None)))
            return function(*args, **kwargs)
        return wrapped

    def train_runs(*args, **kwargs):
        raise Placed

    monkeypatch.setattr(students, "training_reserve", training_reserve)
    monkeypatch.setattr(students, "to_train_data", spy(students.to_train_data, "splits"))
    monkeypatch.setattr(students, "fits_on_device", spy(students.fits_on_device, "images"))
    monkeypatch.setattr(similarity_cache, "fits_on_device", spy(similarity_cache.fits_on_device, "caches"))
    monkeypatch.setattr(students, "_load_initial_weights", lambda *args: None)
    monkeypatch.setattr(students, "train_runs", train_runs)
    inputs = {"windows": demo["windows"], "images": demo["images"], "init": tmp_path / "scratch.pt",
              **{f"{m}_{kind}": demo[f"{m}_{kind}"] for m in ("gaf", "sig")
                 for kind in ("outputs", "model", "similarity")}}
    runs = [StudentRun({"dataset": "basicmotions", "fold": "predefined", "arch": "wrn10-1",
                        "method": "kd2-anneal-sp", "teachers": "gasf-wrn10-1+sig-wrn10-1", "alpha": alpha,
                        "seed": seed, "teacher_seed": 1, "kd": {**KD, "sp_source": source},
                        "training": TRAINING}, inputs, run_files(tmp_path / str(seed)), tmp_path / "resume.pt")
            for seed, alpha in ((3, 0.3), (4, 0.7))]
    with pytest.raises(Placed):
        students.train_students(runs, CPU)
    assert seen["training_reserve"] == [2]
    assert seen["placements"] == [("splits", reserve), ({"online": "images", "cache": "caches"}[source], reserve)]
