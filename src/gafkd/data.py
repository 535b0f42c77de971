"""A fold of windows.h5 (signals) or of its image cache, as tensors resident on the device."""

from dataclasses import dataclass

import numpy as np
import torch

from gafkd.engine import Split, TrainData
from gafkd.errors import ConfigError, InputError
from gafkd.images import read_images
from gafkd.grid import split_kind
from gafkd.splits import SPLIT_NAMES, TEST, TRAIN, VAL, standardization, window_moments
from gafkd.windows import read_windows

MODALITIES = ("gaf", "sig")


@dataclass
class FoldArrays:
    X: np.ndarray           # (N, C, L) signals or (N, C, S, S) images, in windows.h5 order
    y: np.ndarray
    split: np.ndarray
    mean: np.ndarray        # (C,)
    std: np.ndarray
    class_names: list
    channel_names: list
    fingerprint: str        # of the windows the arrays come from
    split_record: dict      # which split produced the fold, for metrics.json

    @property
    def dims(self):
        return self.X.ndim - 2


def image_channel_stats(images, train, mode):
    """Per-channel mean and std of the training images (gafkd.splits.standardization)."""
    index = np.flatnonzero(train)
    moments = window_moments(images, index)
    return standardization(moments, np.ones(len(index), dtype=bool),
                           images.shape[2] * images.shape[3], mode)


def load_fold(windows_h5, fold, modality, images_h5=None, images=None):
    """The arrays of one fold; `images`: the {'method', 'size'} the image cache must have."""
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality '{modality}' (known: {', '.join(MODALITIES)})")
    windows = read_windows(windows_h5, load_X=modality == "sig")
    if fold not in windows.folds:
        raise InputError(f"{windows_h5}: no fold '{fold}' (folds: {', '.join(windows.folds)})")
    info = windows.folds[fold]
    if modality == "sig":
        X, mean, std = windows.X, info.mean, info.std
    else:
        if images_h5 is None:
            raise ConfigError("modality 'gaf' needs an image cache")
        X = read_images(images_h5, windows.attrs["fingerprint"], images)
        mean, std = image_channel_stats(X, info.split == TRAIN, windows.attrs["standardize"])
    record = {"kind": split_kind(fold), "fold": fold, "test_subjects": info.test_subjects,
              "val_subjects": info.val_subjects, "val_missing_classes": info.val_missing_classes,
              "windows": {name: int((info.split == code).sum())
                          for code, name in enumerate(SPLIT_NAMES)},
              "standardize": windows.attrs["standardize"]}
    return FoldArrays(X, windows.y, info.split, mean, std, windows.class_names,
                      windows.channel_names, windows.attrs["fingerprint"], record)


def to_train_data(arrays, device):
    """Train/val/test tensors on the device (images stay float16 until a batch is standardised)."""
    shape = (1, -1) + (1,) * arrays.dims

    def part(code):
        mask = arrays.split == code
        return Split(torch.from_numpy(np.ascontiguousarray(arrays.X[mask])).to(device),
                     torch.from_numpy(arrays.y[mask]).to(device))

    return TrainData(
        train=part(TRAIN), val=part(VAL), test=part(TEST),
        mean=torch.from_numpy(arrays.mean).reshape(shape).to(device),
        std=torch.from_numpy(arrays.std).reshape(shape).to(device),
        num_classes=len(arrays.class_names),
    )
