"""A fold of windows.h5 (signals) or of its image cache, as tensors on the device, or in host
memory when a split does not fit beside the model (gafkd.train.memory); the Split and TrainData the
training loop (gafkd.train.engine) reads them from."""

import json
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from gafkd.errors import REBUILD, ConfigError, InputError
from gafkd.images.cache import read_images
from gafkd.train.memory import (AUTO, DEVICE, HOST, device_budget_bytes, human_bytes, jobs_on_device,
                                plan_placement, requested_placement, reserve_bytes)
from gafkd.encodings import encoding_parts
from gafkd.names import SIGNAL, is_image_modality
from gafkd.data.splits import SPLIT_NAMES, TEST, TRAIN, VAL, image_channel_stats, split_kind
from gafkd.train.staging import PinnedStaging, gather_rows
from gafkd.data.windows import read_windows

log = logging.getLogger(__name__)

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


# Host memory of one block when a split is copied or its moments computed block by block.
BLOCK_BYTES = 128 * 2**20


def _block_rows(row_bytes):
    return max(1, BLOCK_BYTES // max(1, int(row_bytes)))


def load_fold(windows_h5, fold, modality, images_h5=None, images=None, dataset=None):
    """The arrays of one fold; `modality`: 'sig' (the windows) or an image encoding (its cache,
    `images_h5`); `images`: the {'method', 'size'} the image cache must have; `dataset`: the
    dataset the windows must be of."""
    if is_image_modality(modality):
        encoding_parts(modality, "modality")
    windows = read_windows(windows_h5, load_X=modality == SIGNAL)
    found = windows.attrs.get("dataset")
    if dataset is not None and found != dataset:
        raise InputError(f"{windows_h5}: holds the windows of dataset '{found}', not of '{dataset}'; {REBUILD}")
    if fold not in windows.folds:
        raise InputError(f"{windows_h5}: no fold '{fold}' (folds: {', '.join(windows.folds)})")
    info = windows.folds[fold]
    if modality == SIGNAL:
        X, mean, std = windows.X, info.mean, info.std
    else:
        if images_h5 is None:
            raise ConfigError(f"modality '{modality}' needs an image cache")
        X = read_images(images_h5, windows.attrs["fingerprint"], images)
        mean, std = image_channel_stats(X, info.split == TRAIN, windows.attrs["standardize"],
                                        chunk=_block_rows(8 * np.prod(X.shape[1:])))  # BLOCK_BYTES of float64
    validation = json.loads(windows.attrs.get("split", "{}")).get("validation", "held_out")
    record = {"kind": split_kind(fold), "fold": fold, "validation": validation, "test_subjects": info.test_subjects,
              "val_subjects": info.val_subjects, "val_missing_classes": info.val_missing_classes,
              "windows": {name: int((info.split == code).sum())
                          for code, name in enumerate(SPLIT_NAMES)},
              "standardize": windows.attrs["standardize"]}
    return FoldArrays(X, windows.y, info.split, mean, std, windows.class_names,
                      windows.channel_names, windows.attrs["fingerprint"], record)


SPLIT_CODES = {"train": TRAIN, "val": VAL, "test": TEST}


def standardize(x, mean, std):
    """x in float32, standardised with per-channel `mean` and `std` (broadcastable to x)."""
    return (x.float() - mean) / std


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor                     # on the device, wherever x lives
    placement: str = DEVICE             # where x lives: 'device' or 'host' (gafkd.train.memory)
    staging: PinnedStaging | None = field(default=None, repr=False)    # a host split's, on CUDA
    windows: np.ndarray | None = field(default=None, repr=False)       # its rows in windows.h5

    def __len__(self):
        return len(self.y)

    def rows(self, index, host_index, device):
        """x[index] on the device. A host split gathers its rows with `host_index` (the same
        numbers, on the CPU), through reused pinned buffers when the device is CUDA."""
        if self.placement != HOST:
            return self.x[index]
        if self.staging is None and device.type == "cuda":
            self.staging = PinnedStaging(device, self.x.dtype)
        return gather_rows(self.x, host_index, device, self.staging)


@dataclass
class TrainData:
    train: Split
    val: Split
    test: Split
    mean: torch.Tensor      # broadcastable to a batch, e.g. (1, C, 1) or (1, C, 1, 1)
    std: torch.Tensor
    num_classes: int
    placement: dict | None = None       # choose_placement's record, for metrics.json

    def placement_record(self):
        if self.placement is not None:
            return self.placement
        return {"splits": {name: getattr(self, name).placement for name in ("train", "val", "test")}}

    def normalize(self, x):
        return standardize(x, self.mean, self.std)


def split_bytes(arrays):
    """{'train'/'val'/'test': bytes of the split's inputs} of a fold."""
    row = arrays.X.dtype.itemsize * int(np.prod(arrays.X.shape[1:], dtype=np.int64))
    return {name: int((arrays.split == code).sum()) * row for name, code in SPLIT_CODES.items()}


def choose_placement(arrays, device, placement=None, reserve=None):
    """Where each split's inputs live, and why: {'requested', 'splits': {name: 'device'|'host'},
    'split_bytes', 'device_budget_bytes', 'jobs_per_gpu', 'reserve_bytes'}.

    `placement` (else $GAFKD_DATA_PLACEMENT, else auto): `device` or `host` for every split, or
    `auto`: on a CUDA device a split stays resident when it fits in this job's budget of device
    memory (memory.device_budget_bytes: its share of a card shared by devices.jobs_per_gpu jobs,
    less its CUDA context, at most the free memory) less `reserve` bytes (activations, gradients;
    memory.reserve_bytes() when None) and the splits before it, the training split first; on the
    CPU every split stays resident (host and device are the same memory)."""
    device = torch.device(device)
    requested = requested_placement(placement)
    sizes = split_bytes(arrays)
    reserve = reserve_bytes() if reserve is None else int(reserve)
    cuda = device.type == "cuda"
    budget = device_budget_bytes(device) if cuda else None
    if requested == AUTO and not cuda:
        splits = dict.fromkeys(sizes, DEVICE)
    else:
        splits = plan_placement(sizes, budget or 0, reserve, requested)
    basis = (f"its share of the card with devices.jobs_per_gpu: {jobs_on_device()}"
             if jobs_on_device() > 1 else "the card less its CUDA context")
    left = None if budget is None else budget - reserve          # for the splits, in order
    for name, where in splits.items():
        if where == DEVICE:
            left = None if left is None else left - sizes[name]
        elif requested == AUTO:
            log.info("%s split %s does not fit in the %s left for this job on %s (%s, less %s kept "
                     "for training): batches stream from host memory", name, human_bytes(sizes[name]),
                     human_bytes(max(left, 0)), device, basis, human_bytes(reserve))
        else:
            log.info("%s split %s placed in host memory as requested: batches stream from it",
                     name, human_bytes(sizes[name]))
    return {"requested": requested, "splits": splits, "split_bytes": sizes,
            "device_budget_bytes": budget, "jobs_per_gpu": jobs_on_device() if cuda else None,
            "reserve_bytes": reserve if cuda else None}


def _host_rows(X, mask):
    """The rows of X under `mask` as a host tensor (ordinary memory: batches are staged through
    small pinned buffers, gafkd.train.staging)."""
    return torch.from_numpy(np.compress(mask, X, axis=0))


def _device_rows(X, mask, device):
    """The rows of X under `mask` on the device, copied block by block (host memory: one block
    beside X, not a copy of the split)."""
    index = np.flatnonzero(mask)
    template = torch.from_numpy(X[:0])
    rows = torch.empty((len(index),) + tuple(X.shape[1:]), dtype=template.dtype, device=device)
    step = _block_rows(X.dtype.itemsize * np.prod(X.shape[1:]))
    for start in range(0, len(index), step):
        block = index[start:start + step]
        rows[start:start + len(block)].copy_(torch.from_numpy(X[block]))
    return rows


def to_train_data(arrays, device, placement=None, reserve=None):
    """Train/val/test tensors (images stay float16 until a batch is standardised), each split's
    inputs resident on the device or in host memory as choose_placement decides (`placement`:
    auto|device|host); labels and statistics always live on the device."""
    device = torch.device(device)
    shape = (1, -1) + (1,) * arrays.dims
    plan = choose_placement(arrays, device, placement, reserve)

    def part(name):
        mask = arrays.split == SPLIT_CODES[name]
        where = plan["splits"][name]
        if where == HOST:
            x = _host_rows(arrays.X, mask)
        elif device.type == "cpu":
            x = torch.from_numpy(np.ascontiguousarray(arrays.X[mask]))
        else:
            x = _device_rows(arrays.X, mask, device)
        return Split(x, torch.from_numpy(arrays.y[mask]).to(device), where, windows=np.flatnonzero(mask))

    test = part("test")
    # split.validation: test (the lab's protocol): the checkpoint is picked on the test windows
    val = test if arrays.split_record.get("validation") == "test" else part("val")
    return TrainData(
        train=part("train"), val=val, test=test,
        mean=torch.from_numpy(arrays.mean).reshape(shape).to(device),
        std=torch.from_numpy(arrays.std).reshape(shape).to(device),
        num_classes=len(arrays.class_names),
        placement=plan,
    )
