"""Student runs: a 1-D network on the windows, alone or taught by cached teacher outputs.

Methods:
    scratch         the student alone (cross-entropy)
    kd-gaf, kd-sig  one teacher (α = 1 or 0): an image teacher (any encoding), the signal teacher
    kd2             both teachers, α the weight of the image teacher
    kd2-anneal      kd2 starting from the scratch student of the same seed
    kd2-anneal-sp   kd2-anneal + β · similarity-preserving KD

Similarity-preserving KD needs each batch's Gram matrices of the teachers' group outputs. By
default (students.kd.sp_source: cache) their blocks are gathered from each teacher's similarity
cache (gafkd.distill.similarity_cache), exact and with no teacher forward; `online` runs both teachers
under inference mode at every step instead, the reference the cache is tested against.
"""

import logging
from pathlib import Path

import torch

from gafkd.train.folds import load_fold, to_train_data
from gafkd.train.checkpoint import read_model
from gafkd.train.engine import Run, TrainSettings, train_runs
from gafkd.errors import REBUILD, ConfigError, InputError, reason
from gafkd.names import check_alpha, parse_teachers_tag
from gafkd.runfiles import RunFiles, pack_run_files
from gafkd.images.cache import read_images
from gafkd.distill.losses import merged_gram_map, raw_gram, similarity_preserving, two_teacher_loss
from gafkd.distill.losses.multi_teacher import cross_entropy
from gafkd.train.numerics import numerics_record
from gafkd.train.memory import (fits_on_device, human_bytes, pack_width_that_fits, train_in_narrower_packs,
                                training_reserve)
from gafkd.methods import method as method_named, pack_group
from gafkd.train.models import build_model
from gafkd.train.packed import pack_models
from gafkd.provenance import provenance, run_key
from gafkd.distill.similarity_cache import cache_record, open_similarity_caches
from gafkd.data.splits import TRAIN
from gafkd.train.staging import PinnedStaging, gather_rows
from gafkd.distill.teacher_outputs import load_teacher, read_teacher_logits

log = logging.getLogger(__name__)


class OnlineTeachers:
    """The teachers' raw Gram blocks of a batch, from a forward of both teachers in float32."""

    def __init__(self, teachers, device):
        self.teachers = teachers                  # {'gaf'/'sig': (Teacher, train inputs)}
        self.device = device
        self.staging = {m: PinnedStaging(device, inputs.dtype) for m, (_, inputs) in teachers.items()
                        if inputs.device != device and device.type == "cuda"}

    @property
    def resident(self):
        """Whether the teachers' inputs live on the device (no batch gathered by the CPU)."""
        return all(inputs.device == self.device for _, inputs in self.teachers.values())

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

    @property
    def resident(self):
        """Whether every cache lives on the device (no batch gathered by the CPU)."""
        return all(cache.on_device for cache in self.caches.values())

    def grams(self, index, host_index=None):
        return {modality: cache.grams(index, host_index) for modality, cache in self.caches.items()}


class DistillationLoss:
    """(1−λ)·CE + λ·T²·[α·KL_gaf + (1−α)·KL_sig] from cached logits, + β·SP from the teachers'
    Gram blocks (`sp_teachers`: OnlineTeachers or CachedTeachers). The SP term is computed in
    float32 with autocast off: the Gram maps of bf16 group outputs lose the agreement between
    online and cached teachers.

    One run: `alpha` a number, `train_logits` {'gaf'/'sig': (n_train, classes)}, one SP source;
    logits (B, classes) in, one loss out. A pack of K runs (gafkd.train.packed): `alpha` the members'
    α (a list), `train_logits` {m: (K, n_train, classes)}, one SP source per member (members
    with the same source and `batch_orders` entry share its blocks); member-major tensors in
    (logits (K, B, classes), groups [(K, B, ...)], targets and indices (K, B)), K losses out."""

    def __init__(self, method, alpha, kd, train_logits, sp_teachers=None, batch_orders=None):
        self.method, self.alpha, self.kd = method_named(method), alpha, kd
        self.packed = isinstance(alpha, (list, tuple))
        self.train_logits = train_logits
        self.sp_teachers = sp_teachers
        self.batch_orders = batch_orders
        self._on_device = {}                      # the members' α and numbers, per device

    @property
    def resident(self):
        """Whether every step reads device memory only (gafkd.train.graphs): no SP source gathers
        its batch on the CPU."""
        sources = self.sp_teachers if self.packed else [self.sp_teachers]
        return all(source is None or source.resident for source in sources or [])

    def _member_tensors(self, device):
        if device not in self._on_device:
            # 1 − α from the float α, as a solo run computes it (1 − float32(0.9) is not float32(0.1))
            self._on_device[device] = (torch.tensor(self.alpha, dtype=torch.float32, device=device),
                                       torch.tensor([1 - a for a in self.alpha], dtype=torch.float32, device=device),
                                       torch.arange(len(self.alpha), device=device)[:, None])
        return self._on_device[device]

    def teacher_maps(self, index, host_index=None):
        if not self.packed:
            grams = self.sp_teachers.grams(index, host_index)
            alpha, sig_weight = self.alpha, None
        else:
            shared, per_member = {}, []
            for k, source in enumerate(self.sp_teachers):
                key = (id(source), k if self.batch_orders is None else self.batch_orders[k])
                if key not in shared:
                    shared[key] = source.grams(index[k], None if host_index is None else host_index[k])
                per_member.append(shared[key])
            grams = {m: [torch.stack([member[m][g] for member in per_member]) for g in range(3)]
                     for m in ("gaf", "sig")}
            alpha, sig_weight = self._member_tensors(index.device)[:2]
        with torch.no_grad():
            return [merged_gram_map(g, s, alpha, self.kd["sp_merge"], sig_weight)
                    for g, s in zip(grams["gaf"], grams["sig"])]

    def __call__(self, logits, groups, targets, index, host_index=None):
        if not self.method.teachers:
            return cross_entropy(logits, targets)
        alpha, sig_weight = self._member_tensors(logits.device)[:2] if self.packed else (self.alpha, None)
        loss = two_teacher_loss(logits, targets, self._cached("gaf", index), self._cached("sig", index),
                                alpha, self.kd["lambda"], self.kd["temperature"],
                                self.kd["standardize_logits"], self.kd["reduction"],
                                self.kd.get("kl_temperature"), self.kd.get("ce_standardized", False),
                                self.kd.get("kl_t_squared", True), sig_weight)
        if self.sp_teachers is not None:
            with torch.autocast(logits.device.type, enabled=False):
                sp = similarity_preserving([g.float() for g in groups], self.teacher_maps(index, host_index),
                                           batch_dims=2 if self.packed else 1)
            loss = loss + self.kd["beta"] * sp
        return loss

    def _cached(self, modality, index):
        logits = self.train_logits.get(modality)
        if logits is None:
            return None
        if not self.packed:
            return logits[index]
        return logits[self._member_tensors(index.device)[2], index]


StudentRun = RunFiles          # a student run as its job sees it


# What the runs of one job must share, beside their pack group (gafkd.methods.pack_group): every
# other setting is the same for them (config-wide).
PACK_SHARED = ("dataset", "fold", "arch", "training", "threads", "kd", "images")


def train_students(runs, device, claim=None):
    """Student runs of one pack group (gafkd.methods.pack_group: they may differ in seed, α, method
    and teachers), trained together: one run as a solo WideResNet, several as the members of one
    PackedWideResNet (gafkd.train.packed), each with its seed's initial weights (or its annealing
    start) and batch order, its α, its teachers' cached logits and Gram blocks, and its own
    files. Returns their metrics."""
    _check_packable(runs)
    first = runs[0].settings
    specs = [method_named(run.settings["method"]) for run in runs]
    arrays = load_fold(runs[0].inputs["windows"], first["fold"], "sig", dataset=first["dataset"])
    teachers = [_expected_teachers(run, run_spec) for run, run_spec in zip(runs, specs)]
    model = _student_network(runs, specs, arrays)
    shape, batch = arrays.X.shape[1:], first["training"]["batch_size"]
    reserve = training_reserve(model, len(runs), shape, batch, device)
    width = pack_width_that_fits(model, reserve, shape, batch, device)
    if width < len(runs):
        del model, arrays
        return train_in_narrower_packs(runs, width, reserve, device, lambda pack: train_students(pack, device, claim))
    data = to_train_data(arrays, device, reserve=reserve)
    loss, records = _distillation_loss(runs, specs, teachers, arrays, data, device, reserve)
    _log_start(runs, len(data.train))
    engine_runs = [_engine_run(run, arrays, record, device, claim) for run, record in zip(runs, records)]
    training = TrainSettings(**first["training"], seed=first["seed"])
    return train_runs(model, data, training, device, engine_runs, loss)


def _check_packable(runs):
    """Raise ConfigError unless the runs share PACK_SHARED and their pack group."""
    first = runs[0].settings
    for run in runs[1:]:
        differ = [key for key in PACK_SHARED if run.settings.get(key) != first.get(key)]
        if pack_group(run.settings) != pack_group(first):
            differ.append(f"pack group ({pack_group(run.settings)}, not {pack_group(first)})")
        if differ:
            raise ConfigError(f"student runs packed into one job must share {', '.join(differ)}: "
                              f"{run.outputs['model']} differs from {runs[0].outputs['model']}")


def _expected_teachers(run, run_spec):
    """{role: what its teacher's files must record} of one run, its α checked."""
    settings = run.settings
    check_alpha(run_spec.name, float(settings["alpha"]))
    return {role: teacher_identity(settings, modality, arch) for role, (modality, arch)
            in parse_teachers_tag(run_spec.name, settings["teachers"]).items()}


def _student_network(runs, specs, arrays):
    """Each run's network from its seed (or the student it starts from), packed when several."""
    models = []
    for run, run_spec in zip(runs, specs):
        settings = run.settings
        torch.manual_seed(settings["seed"])
        model = build_model(settings["arch"], arrays.X.shape[1], len(arrays.class_names), dims=1)
        if run_spec.starts_from is not None:
            _load_initial_weights(model, run.inputs.get("init"), settings, arrays.fingerprint,
                                  run_spec.starts_from)
        models.append(model)
    if len(runs) == 1:
        return models[0]
    model = pack_models(models)
    model.group_outputs = specs[0].similarity
    return model


def _teacher_logit_tables(runs, specs, teachers, arrays, device):
    """{'gaf'/'sig': each member's teacher logits of the training windows}, for the teachers the
    pack's methods learn from; each file read once."""
    train_mask = arrays.split == TRAIN
    read = {}

    def member_logits(run, modality, expected):
        path = run.inputs[f"{modality}_outputs"]
        if path not in read:
            logits = read_teacher_logits(path, arrays.fingerprint, expected)
            if logits.shape != (len(arrays.y), len(arrays.class_names)):
                raise InputError(f"{path}: logits of shape {logits.shape}, expected "
                                 f"({len(arrays.y)}, {len(arrays.class_names)})")
            read[path] = torch.from_numpy(logits[train_mask]).to(device)
        return read[path]

    tables = {m: [member_logits(run, m, teachers[k][m]) if m in teachers[k] else None
                  for k, run in enumerate(runs)]
              for m in ("gaf", "sig") if any(m in run_spec.teachers for run_spec in specs)}
    for m, table in tables.items():
        # a member without this teacher weighs its KL term 0 (its α is 1 or 0, as a solo run's):
        # any finite logits do, and its other teacher's stay finite however they are standardised
        other = tables["sig" if m == "gaf" else "gaf"] if len(tables) == 2 else table
        tables[m] = [own if own is not None else other[k] for k, own in enumerate(table)]
    return tables


def _distillation_loss(runs, specs, teachers, arrays, data, device, reserve):
    """The pack's DistillationLoss, and what each run's metrics.json records of its SP teachers."""
    first = runs[0].settings
    tables = _teacher_logit_tables(runs, specs, teachers, arrays, device)
    sources, records = [], [{} for _ in runs]
    if specs[0].similarity:
        train_mask = arrays.split == TRAIN
        opened = {}
        for k, (run, expected) in enumerate(zip(runs, teachers)):
            key = tuple(sorted(run.inputs.items()))
            if key not in opened:
                opened[key] = _sp_teachers(run.settings, expected, arrays, data, device, train_mask,
                                           run.inputs, reserve)
            sources.append(opened[key][0])
            records[k] = {"sp_teachers": opened[key][1]}
    if len(runs) == 1:
        loss = DistillationLoss(specs[0].name, float(first["alpha"]), first.get("kd"),
                                {m: t[0] for m, t in tables.items()}, sources[0] if sources else None)
    else:
        loss = DistillationLoss(specs[0].name, [float(run.settings["alpha"]) for run in runs], first.get("kd"),
                                {m: torch.stack(t) for m, t in tables.items()}, sources or None,
                                batch_orders=[run.settings["seed"] for run in runs])
    return loss, records


def _log_start(runs, n_train):
    first = runs[0].settings
    log.info("student %s on %s/%s: %d train windows; %s", first["arch"], first["dataset"], first["fold"],
             n_train, "; ".join(
                 f"{run.settings['method']}, teachers {run.settings['teachers']}, α "
                 f"{float(run.settings['alpha']):g}, seed {run.settings['seed']}" for run in runs)
             + (f" (a pack of {len(runs)})" if len(runs) > 1 else ""))


def _engine_run(run, arrays, record, device, claim):
    """The engine's Run of one student: its files, resume key, record and checkpoint identity."""
    settings = run.settings
    record = {"config": settings, "class_names": arrays.class_names, "split": arrays.split_record,
              **record, "provenance": provenance(device, claim, numerics=numerics_record())}
    return Run(settings["seed"], run.outputs, Path(run.resume_path), run_key(settings, arrays.fingerprint),
               record, checkpoint_extra={
                   "role": "student", "dataset": settings["dataset"], "fold": settings["fold"],
                   "arch": settings["arch"], "method": settings["method"], "teachers": settings["teachers"],
                   "alpha": float(settings["alpha"]), "seed": settings["seed"],
                   "windows_fingerprint": arrays.fingerprint, "modality": "sig", "dims": 1,
                   "in_channels": arrays.X.shape[1], "class_names": arrays.class_names})


def train_student(windows_h5, settings, teacher_outputs, outputs, resume_path, device,
                  teacher_models=None, images_h5=None, init_model=None, claim=None,
                  teacher_similarity=None):
    """One student run. `settings`: dataset, fold, arch, method, teachers, alpha, seed, kd,
    training; `teacher_outputs`/`teacher_models`/`teacher_similarity`: {'gaf'/'sig': path} of the
    teachers used (models and images for SP from online teachers, similarity caches otherwise)."""
    inputs = {"windows": windows_h5, "images": images_h5, "init": init_model}
    for suffix, paths in (("outputs", teacher_outputs), ("model", teacher_models),
                          ("similarity", teacher_similarity)):
        inputs.update({f"{m}_{suffix}": path for m, path in (paths or {}).items()})
    run = StudentRun(settings, {k: v for k, v in inputs.items() if v is not None}, outputs, Path(resume_path))
    return train_students([run], device, claim)[0]


def train_student_from_inputs(inputs, settings, outputs, device, claim=None):
    """One student run from its rule's input files ({name: path} with gafkd.grid.student_inputs'
    names); its resume checkpoint is resume.pt beside model.pt."""
    return train_students([StudentRun(settings, inputs, outputs, Path(outputs["model"]).with_name("resume.pt"))],
                          device, claim)[0]


def train_pack_from_files(inputs, settings, outputs, device, claim=None):
    """A pack's runs from its rule's files and settings (gafkd.runfiles.pack_run_files)."""
    return train_students(pack_run_files(inputs, settings, outputs), device, claim)


def _sp_teachers(settings, teachers, arrays, data, device, train_mask, inputs, reserve):
    """The source of the teachers' Gram blocks, and what metrics.json says of it; their images or
    caches are placed with the job's training `reserve` (training_reserve)."""
    source = settings["kd"].get("sp_source", "cache")
    models = {m: inputs[f"{m}_model"] for m in ("gaf", "sig") if f"{m}_model" in inputs}
    similarity = {m: inputs[f"{m}_similarity"] for m in ("gaf", "sig") if f"{m}_similarity" in inputs}
    if source == "online":
        images = read_images(inputs["images"], arrays.fingerprint, settings.get("images"))
        frozen = {m: load_teacher(models[m], device, teachers[m], arrays.fingerprint)
                  for m in ("gaf", "sig")}
        train_images = torch.from_numpy(images[train_mask])
        del images
        on_device = fits_on_device(train_images.nbytes, device, reserve, "images")
        if device.type != "cpu":
            log.info("online SP teachers: training images (%s) %s", human_bytes(train_images.nbytes),
                     f"on {device}" if on_device else "in host memory, gathered there")
        online = OnlineTeachers({"gaf": (frozen["gaf"], train_images.to(device) if on_device else train_images),
                                 "sig": (frozen["sig"], data.train.x)}, device)
        return online, {"source": "online"}
    if set(similarity) != {"gaf", "sig"}:
        raise InputError(f"method '{settings['method']}' with sp_source cache needs the similarity "
                         f"caches of both teachers; given: {sorted(similarity)}")
    caches = open_similarity_caches(similarity, arrays.fingerprint, teachers, int(train_mask.sum()), device,
                                    reserve)
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
