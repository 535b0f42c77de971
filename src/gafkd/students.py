"""Student runs: a 1-D network on the windows, alone or taught by cached teacher outputs.

Methods:
    scratch         the student alone (cross-entropy)
    kd-gaf, kd-sig  one teacher (α = 1 or 0)
    kd2             both teachers, α the weight of the GAF teacher
    kd2-anneal      kd2 starting from the scratch student of the same seed
    kd2-anneal-sp   kd2-anneal + β · similarity-preserving KD

Similarity-preserving KD needs each batch's Gram matrices of the teachers' group outputs. By
default (students.kd.sp_source: cache) their blocks are gathered from each teacher's similarity
cache (gafkd.similarity_cache), exact and with no teacher forward; `online` runs both teachers
under inference mode at every step instead, the reference the cache is tested against.
"""

import logging
from pathlib import Path

import torch
from torch.nn import functional as F

from gafkd.data import load_fold, to_train_data
from gafkd.checkpoint import read_model
from gafkd.engine import TrainSettings, train
from gafkd.errors import REBUILD, InputError, reason
from gafkd.grid import check_alpha, parse_teachers_tag
from gafkd.images import read_images
from gafkd.losses import merged_gram_map, raw_gram, similarity_preserving, two_teacher_loss
from gafkd.memory import (DEVICE, device_budget_bytes, human_bytes, plan_placement,
                          requested_placement, reserve_bytes)
from gafkd.methods import method as method_named
from gafkd.models import build_model
from gafkd.provenance import provenance, run_key
from gafkd.similarity_cache import cache_record, open_similarity_caches
from gafkd.splits import TRAIN
from gafkd.staging import PinnedStaging, gather_rows
from gafkd.teacher_outputs import load_teacher, read_teacher_logits

log = logging.getLogger(__name__)


class OnlineTeachers:
    """The teachers' raw Gram blocks of a batch, from a forward of both teachers in float32."""

    def __init__(self, teachers, device):
        self.teachers = teachers                  # {'gaf'/'sig': (Teacher, train inputs)}
        self.device = device
        self.staging = {m: PinnedStaging(device, inputs.dtype) for m, (_, inputs) in teachers.items()
                        if inputs.device != device and device.type == "cuda"}

    def grams(self, index, host_index=None):
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            grams = {}
            for modality, (teacher, inputs) in self.teachers.items():
                if inputs.device == index.device:
                    rows = inputs[index]
                else:                             # training images kept in host memory
                    rows = gather_rows(inputs, index.cpu() if host_index is None else host_index,
                                       self.device, self.staging.get(modality))
                _, groups = teacher.model(teacher.normalize(rows))
                grams[modality] = [raw_gram(g).clone() for g in groups]
        return grams


class CachedTeachers:
    """The teachers' raw Gram blocks of a batch, gathered from their similarity caches."""

    def __init__(self, caches):
        self.caches = caches                      # {'gaf'/'sig': loaded SimilarityCache}

    def grams(self, index, host_index=None):
        return {modality: cache.grams(index, host_index) for modality, cache in self.caches.items()}


class DistillationLoss:
    """(1−λ)·CE + λ·T²·[α·KL_gaf + (1−α)·KL_sig] from cached logits, + β·SP from the teachers'
    Gram blocks (`sp_teachers`: OnlineTeachers or CachedTeachers). The SP term is computed in
    float32 with autocast off: the Gram maps of bf16 group outputs lose the agreement between
    online and cached teachers."""

    def __init__(self, method, alpha, kd, train_logits, sp_teachers=None):
        self.method, self.alpha, self.kd = method_named(method), alpha, kd
        self.train_logits = train_logits          # {'gaf'/'sig': (n_train, K) on the device}
        self.sp_teachers = sp_teachers

    def teacher_maps(self, index, host_index=None):
        grams = self.sp_teachers.grams(index, host_index)
        with torch.no_grad():
            return [merged_gram_map(g, s, self.alpha, self.kd["sp_merge"])
                    for g, s in zip(grams["gaf"], grams["sig"])]

    def __call__(self, logits, groups, targets, index, host_index=None):
        if not self.method.teachers:
            return F.cross_entropy(logits, targets)
        loss = two_teacher_loss(logits, targets, self._cached("gaf", index), self._cached("sig", index),
                                self.alpha, self.kd["lambda"], self.kd["temperature"],
                                self.kd["standardize_logits"], self.kd["reduction"])
        if self.sp_teachers is not None:
            with torch.autocast(logits.device.type, enabled=False):
                sp = similarity_preserving([g.float() for g in groups],
                                           self.teacher_maps(index, host_index))
            loss = loss + self.kd["beta"] * sp
        return loss

    def _cached(self, modality, index):
        logits = self.train_logits.get(modality)
        return None if logits is None else logits[index]


def train_student(windows_h5, settings, teacher_outputs, outputs, resume_path, device,
                  teacher_models=None, images_h5=None, init_model=None, claim=None,
                  teacher_similarity=None):
    """One student run. `settings`: dataset, fold, arch, method, teachers, alpha, seed, kd,
    training; `teacher_outputs`/`teacher_models`/`teacher_similarity`: {'gaf'/'sig': path} of the
    teachers used (models and images for SP from online teachers, similarity caches otherwise)."""
    method, alpha = settings["method"], float(settings["alpha"])
    spec = method_named(method)
    check_alpha(method, alpha)
    teachers = {modality: teacher_identity(settings, modality, arch)
                for modality, arch in parse_teachers_tag(method, settings["teachers"]).items()}
    arrays = load_fold(windows_h5, settings["fold"], "sig")
    train_mask = arrays.split == TRAIN
    torch.manual_seed(settings["seed"])
    model = build_model(settings["arch"], arrays.X.shape[1], len(arrays.class_names), dims=1)
    if spec.starts_from is not None:
        _load_initial_weights(model, init_model, settings, arrays.fingerprint, spec.starts_from)
    data = to_train_data(arrays, device)
    train_logits = {}
    for modality in spec.teachers:
        logits = read_teacher_logits(teacher_outputs[modality], arrays.fingerprint, teachers[modality])
        if logits.shape != (len(arrays.y), len(arrays.class_names)):
            raise InputError(f"{teacher_outputs[modality]}: logits of shape {logits.shape}, expected "
                             f"({len(arrays.y)}, {len(arrays.class_names)})")
        train_logits[modality] = torch.from_numpy(logits[train_mask]).to(device)
    sp_teachers, record = None, {}
    if spec.similarity:
        sp_teachers, record["sp_teachers"] = _sp_teachers(
            settings, teachers, arrays, data, device, train_mask, teacher_models, images_h5,
            teacher_similarity)
    loss = DistillationLoss(method, alpha, settings.get("kd"), train_logits, sp_teachers)
    log.info("student %s, %s, teachers %s, α %g, seed %d on %s/%s: %d train windows", settings["arch"],
             method, settings["teachers"], alpha, settings["seed"], settings["dataset"],
             settings["fold"], len(data.train))
    training = TrainSettings(**settings["training"], seed=settings["seed"])
    return train(
        model, data, training, device, outputs, resume_path,
        run_key=run_key(settings, arrays.fingerprint), loss_fn=loss,
        record={"config": settings, "class_names": arrays.class_names, "split": arrays.split_record,
                **record, "provenance": provenance(device, claim)},
        checkpoint_extra={"role": "student", "dataset": settings["dataset"], "fold": settings["fold"],
                          "arch": settings["arch"], "method": method, "teachers": settings["teachers"],
                          "alpha": alpha, "seed": settings["seed"], "windows_fingerprint": arrays.fingerprint,
                          "modality": "sig", "dims": 1, "in_channels": arrays.X.shape[1],
                          "class_names": arrays.class_names},
    )


def train_student_from_inputs(inputs, settings, outputs, device, claim=None):
    """One student run from its rule's input files ({name: path} with gafkd.grid.student_inputs'
    names); its resume checkpoint is resume.pt beside model.pt."""
    def by_modality(suffix):
        return {m: inputs[f"{m}_{suffix}"] for m in ("gaf", "sig") if f"{m}_{suffix}" in inputs}

    return train_student(inputs["windows"], settings, teacher_outputs=by_modality("outputs"),
                         outputs=outputs, resume_path=Path(outputs["model"]).with_name("resume.pt"),
                         device=device, teacher_models=by_modality("model"),
                         images_h5=inputs.get("images"), init_model=inputs.get("init"), claim=claim,
                         teacher_similarity=by_modality("similarity"))


def _sp_teachers(settings, teachers, arrays, data, device, train_mask, teacher_models, images_h5,
                 teacher_similarity):
    """The source of the teachers' Gram blocks, and what metrics.json says of it."""
    source = settings["kd"].get("sp_source", "cache")
    if source == "online":
        images = read_images(images_h5, arrays.fingerprint, settings.get("images"))
        frozen = {m: load_teacher(teacher_models[m], device, teachers[m], arrays.fingerprint)
                  for m in ("gaf", "sig")}
        train_images = torch.from_numpy(images[train_mask])
        del images
        on_device = device.type == "cpu" or plan_placement(
            {"images": train_images.nbytes}, device_budget_bytes(device), reserve_bytes(),
            requested_placement())["images"] == DEVICE
        if device.type != "cpu":
            log.info("online SP teachers: training images (%s) %s", human_bytes(train_images.nbytes),
                     f"on {device}" if on_device else "in host memory, gathered there")
        online = OnlineTeachers({"gaf": (frozen["gaf"], train_images.to(device) if on_device else train_images),
                                 "sig": (frozen["sig"], data.train.x)}, device)
        return online, {"source": "online"}
    if not teacher_similarity or set(teacher_similarity) != {"gaf", "sig"}:
        raise InputError(f"method '{settings['method']}' with sp_source cache needs the similarity "
                         f"caches of both teachers; given: {sorted(teacher_similarity or {})}")
    caches = open_similarity_caches(teacher_similarity, arrays.fingerprint, teachers,
                                    int(train_mask.sum()), device)
    return CachedTeachers(caches), {"source": "cache", "caches": cache_record(caches)}


def teacher_identity(settings, modality, arch):
    """What the outputs.h5 and model.pt of the student's teacher of `modality` must record."""
    return {"dataset": settings["dataset"], "fold": settings["fold"], "modality": modality, "arch": arch,
            "seed": settings.get("teacher_seed", settings["seed"])}


def _load_initial_weights(model, init_model, settings, fingerprint, starts_from):
    """The weights of the `starts_from` student of the same dataset, fold, architecture and seed."""
    if init_model is None:
        raise InputError(f"method '{settings['method']}' starts from the {starts_from} student; none given")
    checkpoint = read_model(init_model, "student checkpoint", {
        "role": "student", "dataset": settings["dataset"], "fold": settings["fold"],
        "arch": settings["arch"], "method": starts_from, "seed": settings["seed"]},
        fingerprint, f"the {starts_from} student")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as exc:
        raise InputError(f"{init_model}: cannot start the annealed student from it ({reason(exc)}); "
                         f"{REBUILD}") from None
    log.info("starting from the %s student %s (epoch %s)", starts_from, init_model, checkpoint.get("epoch"))
