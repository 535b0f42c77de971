"""Teacher runs: a WideResNet on the images (modality: their encoding, e.g. `gasf`) or the
signals (`sig`) of one fold. Signal teachers that differ only in seed may train together as the
members of one packed network (gafkd.train.packed, teachers.pack), each writing a solo run's files."""

import logging
from pathlib import Path

import torch

from gafkd.train.folds import load_fold, to_train_data
from gafkd.train.engine import Run, TrainSettings, cross_entropy, train_runs
from gafkd.errors import ConfigError
from gafkd.names import is_image_modality
from gafkd.runfiles import RunFiles, pack_run_files
from gafkd.distill.losses.multi_teacher import cross_entropy as members_cross_entropy
from gafkd.train.numerics import numerics_record
from gafkd.train.memory import pack_width_that_fits, train_in_narrower_packs, training_reserve
from gafkd.archs import parse_arch
from gafkd.train.models import build_model
from gafkd.train.packed import pack_models
from gafkd.provenance import provenance, run_key

log = logging.getLogger(__name__)

# What the runs of one job must share: only the seed (and the place in the pack) differ.
PACK_SHARED = ("dataset", "fold", "modality", "arch", "training", "threads", "images")


TeacherRun = RunFiles          # a teacher run as its job sees it


def train_teacher(windows_h5, images_h5, settings, outputs, resume_path, device, claim=None):
    """One teacher run. `settings`: dataset, fold, modality, arch, seed, images, training (see
    teachers.smk)."""
    inputs = {"windows": windows_h5, **({"images": images_h5} if images_h5 else {})}
    return train_teachers([TeacherRun(settings, inputs, outputs, Path(resume_path))], device, claim)[0]


def train_teacher_pack_from_files(inputs, settings, outputs, device, claim=None):
    """A pack's runs from its rule's files and settings (gafkd.runfiles.pack_run_files)."""
    return train_teachers(pack_run_files(inputs, settings, outputs), device, claim)


def train_teachers(runs, device, claim=None):
    """Teacher runs that differ only in seed, trained together: one run as a solo WideResNet,
    several (signal teachers only) as the members of one PackedWideResNet, each with its seed's
    initial weights and batch order and its own files. Returns their metrics."""
    first = runs[0].settings
    for run in runs[1:]:
        differ = [key for key in PACK_SHARED if run.settings.get(key) != first.get(key)]
        if differ:
            raise ConfigError(f"teacher runs packed into one job must share {', '.join(differ)}: "
                              f"{run.outputs['model']} differs from {runs[0].outputs['model']}")
    parse_arch(first["arch"])
    image = is_image_modality(first["modality"])
    if image and len(runs) > 1:
        raise ConfigError(f"image teachers train alone; {len(runs)} {first['modality']} runs given")
    arrays = load_fold(runs[0].inputs["windows"], first["fold"], first["modality"],
                       runs[0].inputs.get("images") if image else None, first.get("images"), first["dataset"])
    models = []
    for run in runs:
        torch.manual_seed(run.settings["seed"])
        models.append(build_model(first["arch"], arrays.X.shape[1], len(arrays.class_names), arrays.dims))
    model = models[0] if len(runs) == 1 else pack_models(models)
    if len(runs) > 1:
        model.group_outputs = False          # the loss reads logits only
    in_channels, input_shape = arrays.X.shape[1], tuple(arrays.X.shape[1:])
    model.to(device)        # so that the free device memory the splits are placed in excludes it
    training = TrainSettings(**first["training"], seed=first["seed"])
    reserve = training_reserve(model, len(runs), input_shape, training.batch_size, device,
                               training.eval_batch_size)
    width = pack_width_that_fits(model, reserve, input_shape, training.batch_size, device, training.eval_batch_size)
    if width < len(runs):
        del model, models, arrays
        return train_in_narrower_packs(runs, width, reserve, device, lambda pack: train_teachers(pack, device, claim))
    data = to_train_data(arrays, device, reserve=reserve)
    arrays.X = None         # the splits hold their own copies: free the whole set's arrays
    log.info("%s teacher %s on %s/%s, seed %s: %d train, %d val, %d test windows, input %s",
             first["modality"], first["arch"], first["dataset"], first["fold"],
             ", ".join(str(run.settings["seed"]) for run in runs), len(data.train), len(data.val),
             len(data.test), input_shape)
    engine_runs = []
    for run in runs:
        settings = run.settings
        engine_runs.append(Run(
            settings["seed"], run.outputs, Path(run.resume_path), run_key(settings, arrays.fingerprint),
            record={"config": settings, "class_names": arrays.class_names, "split": arrays.split_record,
                    "provenance": provenance(device, claim, numerics=numerics_record())},
            checkpoint_extra={"role": "teacher", "dataset": settings["dataset"], "fold": settings["fold"],
                              "arch": settings["arch"], "modality": settings["modality"],
                              "seed": settings["seed"], "windows_fingerprint": arrays.fingerprint,
                              **({"images": settings["images"]} if image and "images" in settings else {}),
                              "dims": len(input_shape) - 1, "in_channels": in_channels,
                              "class_names": arrays.class_names}))
    loss = cross_entropy if len(runs) == 1 else lambda logits, groups, targets, *index: \
        members_cross_entropy(logits, targets)
    return train_runs(model, data, training, device, engine_runs, loss)
