"""The teacher similarity cache gives the SP loss of online teachers; a wrong or oversized cache
is refused before training."""

import h5py
import numpy as np
import pytest
import torch
from conftest import basicmotions_fold

import gafkd.distill.similarity_cache as similarity_cache
from gafkd.config import training_defaults
from gafkd.errors import InputError
from gafkd.images.cache import read_images
from gafkd.distill.losses import raw_gram
from gafkd.distill.cache_layout import choose_forms
from gafkd.distill.similarity_cache import SimilarityCache, build_similarity_cache, open_similarity_caches
from gafkd.distill.students import CachedTeachers, DistillationLoss, OnlineTeachers, train_student
from gafkd.distill.teacher_outputs import load_teacher, read_teacher_logits, write_teacher_outputs
from gafkd.distill.teachers import train_teacher
from gafkd.data.windows import read_windows

CPU = torch.device("cpu")
TRAINING = {**training_defaults(), "epochs": 2, "batch_size": 8}
KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "beta": 700.0, "sp_merge": "raw",
      "sp_source": "cache", "standardize_logits": False}
MODALITIES = ("gaf", "sig")                     # the students' roles of the two teachers
FOLDER = {"gaf": "gasf", "sig": "sig"}          # their modalities: the image teacher's is its encoding


def identity(role, seed=1):
    return {"dataset": "basicmotions", "fold": "predefined", "modality": FOLDER[role], "arch": "wrn10-1",
            "seed": seed}


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    root = tmp_path_factory.mktemp("similarity")
    files = basicmotions_fold(root, images_size=16)
    for modality in MODALITIES:
        out = {k: root / modality / k for k in ("model", "metrics", "history")}
        out["model"].parent.mkdir()
        train_teacher(files["windows"], files["images"], {**identity(modality), "training": TRAINING},
                      out, root / "resume.pt", CPU)
        write_teacher_outputs(out["model"], files["windows"], files["images"], root / f"{modality}-outputs.h5", CPU)
        files[f"{modality}_model"], files[f"{modality}_outputs"] = out["model"], root / f"{modality}-outputs.h5"
        # the N×N form (group outputs of BasicMotions are larger than its 30 training windows) and,
        # forced, the N×D form; both from passes over row blocks of 8 windows
        for form in ("gram", "features"):
            path = root / f"{modality}-{form}.h5"
            build_similarity_cache(out["model"], files["windows"], files["images"], path, CPU,
                                   batch_size=8, block_bytes=1, forms=[form] * 3)
            files[f"{modality}_{form}"] = path
        build_similarity_cache(out["model"], files["windows"], files["images"], root / f"{modality}.h5", CPU)
        files[f"{modality}_similarity"] = root / f"{modality}.h5"
    windows = read_windows(files["windows"])
    files["train"] = windows.folds["predefined"].split == 0
    files["fingerprint"] = windows.attrs["fingerprint"]
    files["inputs"] = {"sig": torch.from_numpy(windows.X[files["train"]]),
                       "gaf": torch.from_numpy(read_images(files["images"], files["fingerprint"])[files["train"]])}
    return files


def cached_teachers(fold, form="similarity"):
    n = int(fold["train"].sum())
    return CachedTeachers(open_similarity_caches({m: fold[f"{m}_{form}"] for m in MODALITIES},
                                                 fold["fingerprint"], {m: identity(m) for m in MODALITIES}, n, CPU,
                                                 reserve=0))


def online_teachers(fold):
    return OnlineTeachers({m: (load_teacher(fold[f"{m}_model"], CPU), fold["inputs"][m]) for m in MODALITIES}, CPU)


def test_forms_are_chosen_by_size():
    assert choose_forms([8000, 8000, 30000], 22000) == ["features", "features", "gram"]
    assert choose_forms([100, 100, 100], 100) == ["features"] * 3


def test_default_build_stores_the_smaller_form(fold):
    with h5py.File(fold["sig_similarity"], "r") as f:
        n = int(fold["train"].sum())
        assert [f[f"group{g}"].attrs["form"] for g in range(3)] == ["gram"] * 3
        assert f["group0"].shape == (n, n) and f["group0"].dtype == np.float32
        assert f.attrs["n_train"] == n


def test_cached_blocks_are_the_teachers_inner_products(fold):
    index = torch.tensor([29, 3, 17, 0, 25, 8, 11, 4])
    online = online_teachers(fold).grams(index)
    for form in ("gram", "features"):
        cached = cached_teachers(fold, form).caches
        for m in MODALITIES:
            teacher = load_teacher(fold[f"{m}_model"], CPU)
            with torch.no_grad():
                _, groups = teacher.model(teacher.normalize(fold["inputs"][m][index]))
            for block, group, reference in zip(cached[m].grams(index), groups, online[m]):
                expected = raw_gram(group)
                assert block.shape == (8, 8)
                torch.testing.assert_close(block, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
                torch.testing.assert_close(reference, expected)


@pytest.mark.parametrize("merge", ["raw", "normalized"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_sp_loss_from_the_cache_equals_the_online_loss(fold, merge, alpha):
    logits = {m: torch.from_numpy(read_teacher_logits(fold[f"{m}_outputs"], fold["fingerprint"])[fold["train"]])
              for m in MODALITIES}
    kd = {**KD, "sp_merge": merge}
    generator = torch.Generator().manual_seed(0)
    index = torch.randperm(int(fold["train"].sum()), generator=generator)[:8]
    student_logits = torch.randn(8, 4, generator=generator)
    student_groups = [torch.randn(8, 16, 100, generator=generator), torch.randn(8, 32, 50, generator=generator),
                      torch.randn(8, 64, 25, generator=generator)]
    targets = torch.randint(0, 4, (8,), generator=generator)
    online = DistillationLoss("kd2-anneal-sp", alpha, kd, logits, online_teachers(fold))
    expected = online(student_logits, student_groups, targets, index).item()
    without_sp = DistillationLoss("kd2", alpha, kd, logits)(student_logits, student_groups, targets, index).item()
    assert abs(expected - without_sp) > 1e-3 * abs(expected)         # the SP term weighs in
    for form in ("similarity", "gram", "features"):
        cached = DistillationLoss("kd2-anneal-sp", alpha, kd, logits, cached_teachers(fold, form))
        assert cached(student_logits, student_groups, targets, index).item() == pytest.approx(expected, rel=1e-4)


def student(fold, out, source):
    settings = {"dataset": "basicmotions", "fold": "predefined", "arch": "wrn10-1", "method": "kd2-anneal-sp",
                "teachers": "gasf-wrn10-1+sig-wrn10-1", "alpha": 0.3, "seed": 3, "teacher_seed": 1,
                "kd": {**KD, "sp_source": source}, "training": TRAINING}
    scratch = fold["root"] / "scratch"
    if not (scratch / "model").exists():
        scratch.mkdir(exist_ok=True)
        train_student(fold["windows"], {**settings, "method": "scratch", "teachers": "none", "alpha": 0.0},
                      {}, {k: scratch / k for k in ("model", "metrics", "history")}, scratch / "resume.pt", CPU)
    out.mkdir()
    return train_student(
        fold["windows"], settings, teacher_outputs={m: fold[f"{m}_outputs"] for m in MODALITIES},
        teacher_models={m: fold[f"{m}_model"] for m in MODALITIES},
        teacher_similarity={m: fold[f"{m}_similarity"] for m in MODALITIES}, images_h5=fold["images"],
        init_model=scratch / "model", outputs={k: out / k for k in ("model", "metrics", "history")},
        resume_path=out / "resume.pt", device=CPU)


def test_a_student_trained_from_the_cache_matches_the_online_one(fold, tmp_path):
    cached = student(fold, tmp_path / "cache", "cache")
    online = student(fold, tmp_path / "online", "online")
    assert cached["sp_teachers"]["source"] == "cache" and online["sp_teachers"] == {"source": "online"}
    assert cached["sp_teachers"]["caches"]["gaf"]["forms"] == ["gram"] * 3
    for key in ("best_epoch", "val_accuracy"):
        assert cached[key] == online[key]
    history = {name: np.loadtxt(tmp_path / name / "history", delimiter=",", skiprows=1) for name in ("cache", "online")}
    np.testing.assert_allclose(history["cache"], history["online"], rtol=1e-4)
    weights = {name: torch.load(tmp_path / name / "model", weights_only=True)["state_dict"] for name in ("cache", "online")}
    for key, value in weights["online"].items():
        if value.is_floating_point():
            torch.testing.assert_close(weights["cache"][key], value, rtol=1e-4, atol=1e-5)


def test_a_cache_of_another_teacher_fold_or_windows_is_refused(fold):
    n = int(fold["train"].sum())
    path = fold["gaf_similarity"]
    SimilarityCache.open(path, fold["fingerprint"], identity("gaf"), n)                       # the right one
    with pytest.raises(InputError, match=f"{path}.*seed 1, expected 2"):
        SimilarityCache.open(path, fold["fingerprint"], identity("gaf", seed=2), n)
    with pytest.raises(InputError, match=f"{path}.*modality gasf, expected sig"):
        SimilarityCache.open(path, fold["fingerprint"], identity("sig"), n)
    with pytest.raises(InputError, match=f"{path}.*fold predefined, expected holdout"):
        SimilarityCache.open(path, fold["fingerprint"], {**identity("gaf"), "fold": "holdout"}, n)
    with pytest.raises(InputError, match=f"{path}: teacher similarity cache was computed on other windows"):
        SimilarityCache.open(path, "0" * 32, identity("gaf"), n)
    with pytest.raises(InputError, match=f"{path}: .* holds {n} training windows, the fold has {n + 1}"):
        SimilarityCache.open(path, fold["fingerprint"], identity("gaf"), n + 1)


def test_a_damaged_cache_is_refused(fold, tmp_path):
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(fold["sig_similarity"].read_bytes())
    with h5py.File(damaged, "r+") as f:
        f.attrs["seed"] = 2                          # an edit the attribute digest does not cover
    with pytest.raises(InputError, match=f"{damaged}: teacher similarity cache is damaged"):
        SimilarityCache.open(damaged, fold["fingerprint"], identity("sig"), int(fold["train"].sum()))


def test_a_cache_larger_than_memory_is_refused_before_training(fold, tmp_path, monkeypatch):
    monkeypatch.setattr(similarity_cache, "host_available_bytes", lambda: 1000)
    out = tmp_path / "run"
    with pytest.raises(InputError) as error:
        student(fold, out, "cache")
    message = str(error.value)
    assert str(fold["gaf_similarity"]) in message and "1.00 kB is available" in message
    n = int(fold["train"].sum())
    total = sum(SimilarityCache.open(fold[f"{m}_similarity"], fold["fingerprint"], identity(m), n).nbytes
                for m in MODALITIES)
    assert f"need {similarity_cache.human_bytes(total)}" in message
    assert not any(out.iterdir())                                           # nothing written


def test_caches_are_placed_with_the_jobs_training_reserve(fold, monkeypatch):
    """On a (faked) card with room for the caches beside a solo run's reserve, a pack's larger
    reserve sends them to host memory."""
    from gafkd.train import memory
    n = int(fold["train"].sum())
    paths = {m: fold[f"{m}_similarity"] for m in MODALITIES}
    total = sum(SimilarityCache.open(paths[m], fold["fingerprint"], identity(m), n).nbytes for m in MODALITIES)
    solo = memory.reserve_bytes()
    card = memory.CUDA_CONTEXT_BYTES + solo + total
    monkeypatch.delenv(memory.PLACEMENT_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (card, card))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    monkeypatch.setattr(SimilarityCache, "load", lambda self, device, resident: resident)
    expected = {m: identity(m) for m in MODALITIES}
    cuda = torch.device("cuda", 0)
    assert open_similarity_caches(paths, fold["fingerprint"], expected, n, cuda, solo) == dict.fromkeys(
        MODALITIES, True)
    assert open_similarity_caches(paths, fold["fingerprint"], expected, n, cuda, solo + 1) == dict.fromkeys(
        MODALITIES, False)
