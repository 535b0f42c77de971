"""Teacher checkpoints as frozen networks, and their logits cached once per teacher.

Teachers are frozen and see un-augmented inputs, so the logits of every window can be computed
once (eval mode) and read by every student run: exact, and far cheaper than a teacher forward
at every student step.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from gafkd.atomic import atomic_path
from gafkd.train.checkpoint import check_trained_on, read_model
from gafkd.train.folds import standardize
from gafkd.train.engine import predict
from gafkd.errors import REBUILD, InputError, check_identity, reason
from gafkd.h5checked import CheckedH5, create_h5, seal, write_checked
from gafkd.images.cache import read_images
from gafkd.train.models import build_model
from gafkd.data.windows import read_windows

log = logging.getLogger(__name__)


# What a teacher's model.pt and outputs.h5 record of the run that made them.
IDENTITY = ("dataset", "fold", "modality", "arch", "seed")


@dataclass
class Teacher:
    model: torch.nn.Module
    mean: torch.Tensor
    std: torch.Tensor
    modality: str
    arch: str
    class_names: list
    record: dict = field(default_factory=dict)     # the checkpoint's fields but weights and statistics

    def normalize(self, x):
        return standardize(x, self.mean, self.std)

    def to(self, device):
        self.model.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self


def load_teacher(model_pt, device, expected=None, windows_fingerprint=None):
    """A frozen teacher from its model.pt, checked against its checksum, the identity this job
    expects (`expected`: fields of IDENTITY) and the windows it must have been trained on."""
    checkpoint = read_model(model_pt, "teacher checkpoint", {"role": "teacher", **(expected or {})},
                            windows_fingerprint, "teacher")
    try:
        model = build_model(checkpoint["arch"], checkpoint["in_channels"],
                            len(checkpoint["class_names"]), checkpoint["dims"])
        model.load_state_dict(checkpoint["state_dict"])
    except Exception as exc:
        raise InputError(f"{model_pt}: not a usable teacher checkpoint ({reason(exc)}); {REBUILD}") from None
    model.eval().requires_grad_(False)
    record = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "mean", "std")}
    return Teacher(model, checkpoint["mean"], checkpoint["std"], checkpoint["modality"],
                   checkpoint["arch"], checkpoint["class_names"], record).to(device)


def teacher_inputs(modality, windows_h5, images_h5=None, images=None):
    """Every window's teacher input, in windows.h5 order: signals or the checked image cache
    (`images`: the {'method', 'size'} it must have)."""
    windows = read_windows(windows_h5, load_X=modality == "sig")
    if modality == "sig":
        return windows.X, windows.attrs["fingerprint"]
    return read_images(images_h5, windows.attrs["fingerprint"], images), windows.attrs["fingerprint"]


def write_teacher_outputs(model_pt, windows_h5, images_h5, out_h5, device, batch_size=512, expected=None):
    """The logits of every window by the teacher in `model_pt`; `expected`: the teacher the job
    asks for (fields of IDENTITY), checked before any other file is read."""
    teacher = load_teacher(model_pt, device, expected)
    inputs, fingerprint = teacher_inputs(teacher.modality, windows_h5, images_h5,
                                         teacher.record.get("images"))
    check_trained_on(model_pt, teacher.record, fingerprint, "teacher", windows_h5)
    logits = predict(teacher.model, teacher.normalize, inputs, batch_size, device).numpy()
    with atomic_path(out_h5) as tmp, create_h5(tmp) as f:
        write_checked(f, "logits", logits.astype(np.float32))
        f.attrs.update({"windows_fingerprint": fingerprint, "model": str(model_pt),
                        **{key: teacher.record[key] for key in IDENTITY}})
        seal(f)
    log.info("%s teacher %s: logits of %d windows -> %s", teacher.modality, teacher.arch,
             len(logits), out_h5)


def read_teacher_logits(path, fingerprint, expected=None):
    """A teacher's cached logits, checked: every chunk against its checksum, the windows they were
    computed on (fingerprint) and the teacher this job expects (`expected`: fields of IDENTITY)."""
    with CheckedH5(path, "teacher outputs file") as f:
        if f.attrs.get("windows_fingerprint") != fingerprint:
            raise InputError(f"{path}: teacher outputs were computed on other windows; {REBUILD}")
        if expected:
            check_identity(path, "the outputs", f.attrs, expected)
        return f.array("logits")
