"""Teacher checkpoints as frozen networks, and their logits cached once per teacher.

Teachers are frozen and see un-augmented inputs, so the logits of every window can be computed
once (eval mode) and read by every student run: exact, and far cheaper than a teacher forward
at every student step.
"""

import logging
from dataclasses import dataclass

import h5py
import numpy as np
import torch

from gafkd.atomic import atomic_path
from gafkd.engine import predict
from gafkd.errors import InputError
from gafkd.images import read_images
from gafkd.models import build_model
from gafkd.windows import read_windows

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    model: torch.nn.Module
    mean: torch.Tensor
    std: torch.Tensor
    modality: str
    arch: str
    class_names: list

    def normalize(self, x):
        return (x.float() - self.mean) / self.std

    def to(self, device):
        self.model.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self


def load_teacher(model_pt, device):
    try:
        checkpoint = torch.load(model_pt, map_location="cpu", weights_only=True)
        model = build_model(checkpoint["arch"], checkpoint["in_channels"],
                            len(checkpoint["class_names"]), checkpoint["dims"])
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as exc:
        raise InputError(f"{model_pt}: not a usable teacher checkpoint ({exc})") from None
    model.eval().requires_grad_(False)
    return Teacher(model, checkpoint["mean"], checkpoint["std"], checkpoint["modality"],
                   checkpoint["arch"], checkpoint["class_names"]).to(device)


def teacher_inputs(modality, windows_h5, images_h5=None):
    """Every window's teacher input, in windows.h5 order: signals or the checked image cache."""
    windows = read_windows(windows_h5, load_X=modality == "sig")
    if modality == "sig":
        return windows.X, windows.attrs["fingerprint"]
    return read_images(images_h5, windows.attrs["fingerprint"]), windows.attrs["fingerprint"]


def write_teacher_outputs(model_pt, windows_h5, images_h5, out_h5, device, batch_size=512):
    teacher = load_teacher(model_pt, device)
    inputs, fingerprint = teacher_inputs(teacher.modality, windows_h5, images_h5)
    logits = predict(teacher.model, teacher.normalize, inputs, batch_size, device).numpy()
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("logits", data=logits.astype(np.float32))
        f.attrs.update({"windows_fingerprint": fingerprint, "arch": teacher.arch,
                        "modality": teacher.modality, "model": str(model_pt)})
    log.info("%s teacher %s: logits of %d windows -> %s", teacher.modality, teacher.arch,
             len(logits), out_h5)


def read_teacher_logits(path, fingerprint):
    with h5py.File(path, "r") as f:
        if f.attrs.get("windows_fingerprint") != fingerprint:
            raise InputError(f"{path}: teacher outputs were computed on other windows; rebuild them")
        return f["logits"][()]
