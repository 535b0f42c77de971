"""One teacher run: a WideResNet on the images (modality: their encoding, e.g. `gasf`) or the
signals (`sig`) of one fold."""

import logging

import torch

from gafkd.data import load_fold, to_train_data
from gafkd.engine import TrainSettings, train
from gafkd.grid import is_image_modality
from gafkd.memory import activation_bytes, reserve_bytes
from gafkd.archs import parse_arch
from gafkd.models import build_model
from gafkd.provenance import provenance, run_key

log = logging.getLogger(__name__)


def train_teacher(windows_h5, images_h5, settings, outputs, resume_path, device, claim=None):
    """`settings`: dataset, fold, modality, arch, seed, images, training (see teachers.smk)."""
    parse_arch(settings["arch"])
    image = is_image_modality(settings["modality"])
    arrays = load_fold(windows_h5, settings["fold"], settings["modality"], images_h5 if image else None,
                       settings.get("images"), settings["dataset"])
    torch.manual_seed(settings["seed"])
    model = build_model(settings["arch"], arrays.X.shape[1], len(arrays.class_names), arrays.dims)
    in_channels, input_shape = arrays.X.shape[1], tuple(arrays.X.shape[1:])
    model.to(device)        # so that the free device memory the splits are placed in excludes it
    training = TrainSettings(**settings["training"], seed=settings["seed"])
    reserve = None
    if torch.device(device).type == "cuda":     # on the CPU the splits stay where they are
        reserve = reserve_bytes(sum(p.numel() * p.element_size() for p in model.parameters()),
                                activation_bytes(model, input_shape, training.batch_size,
                                                 training.eval_batch_size))
    data = to_train_data(arrays, device, reserve=reserve)
    arrays.X = None         # the splits hold their own copies: free the whole set's arrays
    log.info("%s teacher %s on %s/%s, seed %d: %d train, %d val, %d test windows, input %s",
             settings["modality"], settings["arch"], settings["dataset"], settings["fold"],
             settings["seed"], len(data.train), len(data.val), len(data.test), input_shape)
    return train(
        model, data, training, device, outputs, resume_path,
        run_key=run_key(settings, arrays.fingerprint),
        record={"config": settings, "class_names": arrays.class_names, "split": arrays.split_record,
                "provenance": provenance(device, claim)},
        checkpoint_extra={"role": "teacher", "dataset": settings["dataset"], "fold": settings["fold"],
                          "arch": settings["arch"], "modality": settings["modality"],
                          "seed": settings["seed"], "windows_fingerprint": arrays.fingerprint,
                          **({"images": settings["images"]} if image and "images" in settings else {}),
                          "dims": len(input_shape) - 1, "in_channels": in_channels,
                          "class_names": arrays.class_names},
    )
