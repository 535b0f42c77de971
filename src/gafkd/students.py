"""Student runs: a 1-D network on the windows, alone or taught by cached teacher outputs.

Methods:
    scratch         the student alone (cross-entropy)
    kd-gaf, kd-sig  one teacher (α = 1 or 0)
    kd2             both teachers, α the weight of the GAF teacher
    kd2-anneal      kd2 starting from the scratch student of the same seed
    kd2-anneal-sp   kd2-anneal + β · similarity-preserving KD

Similarity-preserving KD needs the teachers' group outputs for each batch. They are computed
under inference mode at each step rather than cached: flattened group outputs of one window take
24k values for a 1-D WRN16-1 on 500 samples and 115k for a 2-D WRN16-1 on 64×64 images (345k for
WRN28-3), i.e. 1.4–20 GB per teacher in float16 for a GENE-sized set, which fits neither a GPU
beside the data nor a cheap read per step; the extra forward costs a fraction of a student step
(benchmarks/student_step.py).
"""

import logging

import torch
from torch.nn import functional as F

from gafkd.data import load_fold, to_train_data
from gafkd.engine import TrainSettings, load_checkpoint, train
from gafkd.errors import REBUILD, ConfigError, InputError, check_identity, reason
from gafkd.grid import METHODS, check_alpha, parse_teachers_tag, teacher_modalities
from gafkd.images import read_images
from gafkd.losses import merged_teacher_map, similarity_preserving, two_teacher_loss
from gafkd.models import build_model
from gafkd.splits import TRAIN
from gafkd.teacher_outputs import load_teacher, read_teacher_logits
from gafkd.teachers import provenance, run_key

log = logging.getLogger(__name__)


class DistillationLoss:
    """(1−λ)·CE + λ·T²·[α·KL_gaf + (1−α)·KL_sig] from cached logits, + β·SP from online teachers."""

    def __init__(self, method, alpha, kd, train_logits, sp_teachers=None):
        self.method, self.alpha, self.kd = method, alpha, kd
        self.train_logits = train_logits          # {'gaf'/'sig': (n_train, K) on the device}
        self.sp_teachers = sp_teachers or {}      # {'gaf'/'sig': (Teacher, train inputs on the device)}

    def teacher_maps(self, index):
        with torch.inference_mode():
            groups = {}
            for modality, (teacher, inputs) in self.sp_teachers.items():
                _, groups[modality] = teacher.model(teacher.normalize(inputs[index]))
            maps = [merged_teacher_map(g, s, self.alpha, self.kd["sp_merge"])
                    for g, s in zip(groups["gaf"], groups["sig"])]
        return [m.clone() for m in maps]          # plain tensors, usable in the student's graph

    def __call__(self, logits, groups, targets, index):
        if self.method == "scratch":
            return F.cross_entropy(logits, targets)
        loss = two_teacher_loss(logits, targets, self._cached("gaf", index), self._cached("sig", index),
                                self.alpha, self.kd["lambda"], self.kd["temperature"],
                                self.kd["standardize_logits"], self.kd["reduction"])
        if self.sp_teachers:
            loss = loss + self.kd["beta"] * similarity_preserving(groups, self.teacher_maps(index))
        return loss

    def _cached(self, modality, index):
        logits = self.train_logits.get(modality)
        return None if logits is None else logits[index]


def train_student(windows_h5, settings, teacher_outputs, outputs, resume_path, device,
                  teacher_models=None, images_h5=None, init_model=None, claim=None):
    """One student run. `settings`: dataset, fold, arch, method, teachers, alpha, seed, kd,
    training; `teacher_outputs`/`teacher_models`: {'gaf'/'sig': path} of the teachers used."""
    method, alpha = settings["method"], float(settings["alpha"])
    if method not in METHODS:
        raise ConfigError(f"unknown student method '{method}' (known: {', '.join(METHODS)})")
    check_alpha(method, alpha)
    teachers = {modality: teacher_identity(settings, modality, arch)
                for modality, arch in parse_teachers_tag(method, settings["teachers"]).items()}
    arrays = load_fold(windows_h5, settings["fold"], "sig")
    train_mask = arrays.split == TRAIN
    torch.manual_seed(settings["seed"])
    model = build_model(settings["arch"], arrays.X.shape[1], len(arrays.class_names), dims=1)
    if method in ("kd2-anneal", "kd2-anneal-sp"):
        _load_initial_weights(model, init_model, settings, arrays.fingerprint)
    data = to_train_data(arrays, device)
    train_logits = {}
    for modality in teacher_modalities(method):
        logits = read_teacher_logits(teacher_outputs[modality], arrays.fingerprint, teachers[modality])
        if logits.shape != (len(arrays.y), len(arrays.class_names)):
            raise InputError(f"{teacher_outputs[modality]}: logits of shape {logits.shape}, expected "
                             f"({len(arrays.y)}, {len(arrays.class_names)})")
        train_logits[modality] = torch.from_numpy(logits[train_mask]).to(device)
    sp_teachers = None
    if method == "kd2-anneal-sp":
        images = read_images(images_h5, arrays.fingerprint, settings.get("images"))
        frozen = {m: load_teacher(teacher_models[m], device, teachers[m], arrays.fingerprint)
                  for m in ("gaf", "sig")}
        sp_teachers = {"gaf": (frozen["gaf"], torch.from_numpy(images[train_mask]).to(device)),
                       "sig": (frozen["sig"], data.train.x)}
    loss = DistillationLoss(method, alpha, settings.get("kd"), train_logits, sp_teachers)
    log.info("student %s, %s, teachers %s, α %g, seed %d on %s/%s: %d train windows", settings["arch"],
             method, settings["teachers"], alpha, settings["seed"], settings["dataset"],
             settings["fold"], len(data.train))
    training = TrainSettings(**settings["training"], seed=settings["seed"])
    return train(
        model, data, training, device, outputs, resume_path,
        run_key=run_key(settings, arrays.fingerprint), loss_fn=loss,
        record={"config": settings, "class_names": arrays.class_names, "split": arrays.split_record,
                "provenance": provenance(device, claim)},
        checkpoint_extra={"role": "student", "dataset": settings["dataset"], "fold": settings["fold"],
                          "arch": settings["arch"], "method": method, "teachers": settings["teachers"],
                          "alpha": alpha, "seed": settings["seed"], "windows_fingerprint": arrays.fingerprint,
                          "modality": "sig", "dims": 1, "in_channels": arrays.X.shape[1],
                          "class_names": arrays.class_names},
    )


def teacher_identity(settings, modality, arch):
    """What the outputs.h5 and model.pt of the student's teacher of `modality` must record."""
    return {"dataset": settings["dataset"], "fold": settings["fold"], "modality": modality, "arch": arch,
            "seed": settings.get("teacher_seed", settings["seed"])}


def _load_initial_weights(model, init_model, settings, fingerprint):
    """The weights of the scratch student of the same dataset, fold, architecture and seed."""
    if init_model is None:
        raise InputError(f"method '{settings['method']}' starts from the scratch student; none given")
    checkpoint = load_checkpoint(init_model, "student checkpoint")
    check_identity(init_model, "a checkpoint", checkpoint, {
        "role": "student", "dataset": settings["dataset"], "fold": settings["fold"],
        "arch": settings["arch"], "method": "scratch", "seed": settings["seed"]})
    if checkpoint.get("windows_fingerprint") != fingerprint:
        raise InputError(f"{init_model}: the scratch student was trained on other windows; {REBUILD}")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as exc:
        raise InputError(f"{init_model}: cannot start the annealed student from it ({reason(exc)}); "
                         f"{REBUILD}") from None
    log.info("starting from the scratch student %s (epoch %s)", init_model, checkpoint.get("epoch"))
