"""Teacher similarity cache: the inner products of a frozen teacher's group outputs over the
training windows of its fold, so that similarity-preserving KD runs no teacher forward.

In eval mode a window's group outputs do not depend on the other windows of its batch, so every
entry of a batch's Gram matrix G = A Aᵀ is an inner product of two windows' outputs, computed once
here. Per group the smaller exact form is stored:
    gram      the N×N inner products, when a window's flattened output has more than N values;
              a batch's block is G[idx][:, idx]
    features  the N×D flattened outputs otherwise; a batch's block is A[idx] A[idx]ᵀ
Rows follow the training windows of the fold in windows.h5 order: row i is the student's i-th
training window. Both forms are stored in float32: float16 cannot hold the large inner products
of image teachers (above 65504) and, for outputs, loses more than the 1e-4 relative agreement
with the online loss that the tests hold (benchmarks/sp_cache.py measures it).

The N×N form is computed in row blocks that fit a memory budget: for each block, the block's
outputs are kept and every later window's outputs are computed again, so memory stays bounded
whatever N, at the cost of about (blocks + 1) / 2 teacher passes over the training windows.
"""

import logging
import math
import time

import numpy as np
import torch

from gafkd.atomic import atomic_path
from gafkd.distill.cache_layout import (DEFAULT_BLOCK_BYTES, FORMS, GROUPS, STORED_DTYPE, TILE, cache_bytes,
                                        choose_forms, row_block)
from gafkd.train.checkpoint import check_trained_on
from gafkd.errors import REBUILD, InputError, check_identity
from gafkd.h5checked import CheckedH5, create_h5, seal
from gafkd.train.memory import (device_budget_bytes, fits_on_device, host_available_bytes, human_bytes,
                                requested_placement)
from gafkd.data.splits import TRAIN
from gafkd.train.staging import PinnedStaging, gather_rows
from gafkd.distill.teacher_outputs import IDENTITY, load_teacher, teacher_inputs
from gafkd.data.windows import read_windows

log = logging.getLogger(__name__)

WHAT = "teacher similarity cache"


def build_similarity_cache(model_pt, windows_h5, images_h5, out_h5, device, batch_size=TILE,
                           block_bytes=None, forms=None, expected=None):
    """Write the cache of the teacher in `model_pt` over the training windows of its fold.
    `block_bytes` bounds the outputs kept per row block; `forms` overrides the per-group choice
    (both forms are exact; tests and benchmarks compare them); `expected`: the teacher the job
    asks for (fields of gafkd.distill.teacher_outputs.IDENTITY), checked before any other file is read."""
    teacher = load_teacher(model_pt, device, expected)
    inputs, fingerprint = teacher_inputs(teacher.modality, windows_h5, images_h5,
                                         teacher.record.get("images"))
    check_trained_on(model_pt, teacher.record, fingerprint, "teacher", windows_h5)
    fold = teacher.record["fold"]
    rows = np.flatnonzero(read_windows(windows_h5, load_X=False).folds[fold].split == TRAIN)
    if len(rows) == 0:
        raise InputError(f"{windows_h5}: fold '{fold}' has no training windows")

    @torch.inference_mode()
    def outputs(start, stop):
        x = torch.as_tensor(inputs[rows[start:stop]]).to(device)
        _, groups = teacher.model(teacher.normalize(x))
        return [g.flatten(1).float() for g in groups]

    started = time.perf_counter()
    with atomic_path(out_h5) as tmp, create_h5(tmp) as f:
        plan = write_groups(f, outputs, len(rows), device, batch_size, block_bytes, forms)
        f.attrs.update({"windows_fingerprint": fingerprint, "model": str(model_pt),
                        "model_digest": teacher.record.get("digest", ""), "n_train": len(rows),
                        **{key: teacher.record[key] for key in IDENTITY}})
        seal(f)
    log.info("%s teacher %s on %s: %d training windows, groups %s (feature sizes %s), %s in %d "
             "teacher pass(es), %.1f s -> %s", teacher.modality, teacher.arch, fold, len(rows),
             ", ".join(plan["forms"]), ", ".join(map(str, plan["sizes"])), human_bytes(plan["bytes"]),
             plan["passes"], time.perf_counter() - started, out_h5)


def write_groups(f, outputs, n, device, batch_size=TILE, block_bytes=None, forms=None):
    """Write datasets group0..2 of the cache into the open HDF5 file `f`. `outputs(start, stop)`
    gives the (stop − start, D) float32 flattened outputs of each group for those rows, on the
    device. Returns the plan: forms, feature sizes, teacher passes, bytes."""
    sizes = [g.shape[1] for g in outputs(0, 1)]
    forms = list(forms or choose_forms(sizes, n))
    gram_groups = [g for g in range(GROUPS) if forms[g] == "gram"]
    if block_bytes is None:
        block_bytes = min(DEFAULT_BLOCK_BYTES, device_budget_bytes(device) // 4)
    block = row_block([sizes[g] for g in gram_groups], n, block_bytes, batch_size)
    datasets = []
    for g in range(GROUPS):
        width = n if forms[g] == "gram" else sizes[g]
        chunk_rows = min(n, batch_size)
        chunks = (chunk_rows, min(width, TILE)) if forms[g] == "gram" else (chunk_rows, width)
        dataset = f.create_dataset(f"group{g}", shape=(n, width), dtype=STORED_DTYPE, chunks=chunks,
                                   fletcher32=True)
        dataset.attrs.update({"form": forms[g], "feature_size": sizes[g]})
        datasets.append(dataset)
    passes = 0
    for block_start in range(0, n, block):
        first_pass = block_start == 0
        if not first_pass and not gram_groups:
            break
        block_stop = min(n, block_start + block)
        kept = {g: torch.empty((block_stop - block_start, sizes[g]), device=device) for g in gram_groups}
        passes += 1
        for start in range(block_start, n, batch_size):
            stop = min(n, start + batch_size)
            groups = outputs(start, stop)
            if first_pass:
                for g in range(GROUPS):
                    if forms[g] == "features":
                        datasets[g][start:stop] = groups[g].cpu().numpy()
            for g in gram_groups:
                if stop <= block_stop:
                    kept[g][start - block_start:stop - block_start] = groups[g]
                    if stop == block_stop:
                        _write_block(datasets[g], kept[g], kept[g], block_start, block_start)
                else:
                    _write_block(datasets[g], kept[g], groups[g], block_start, start)
        log.info("pass %d: rows %d-%d of %d", passes, block_start + 1, block_stop, n)
    return {"forms": forms, "sizes": sizes, "passes": passes, "bytes": cache_bytes(forms, sizes, n)}


def _write_block(dataset, left, right, row, col):
    """G[row:, col:] = left rightᵀ and its mirror G[col:, row:] (rows of the outputs given)."""
    product = (left @ right.t()).cpu().numpy()
    dataset[row:row + len(left), col:col + len(right)] = product
    if row != col:
        dataset[col:col + len(right), row:row + len(left)] = product.T


class SimilarityCache:
    """One teacher's cache: per group its form and its rows (once loaded)."""

    def __init__(self, forms, shapes, path=None):
        self.forms, self.shapes, self.path = list(forms), [tuple(s) for s in shapes], path
        self.nbytes = sum(math.prod(s) * np.dtype(STORED_DTYPE).itemsize for s in self.shapes)
        self.data, self.device, self.on_device = None, None, False
        self.staging = None               # per group, for a cache in host memory sent to a GPU

    @classmethod
    def open(cls, path, fingerprint, expected, n_train):
        """The cache in `path`, checked against the student's windows, teacher and fold; not
        loaded yet."""
        with CheckedH5(path, WHAT) as f:
            if f.attrs.get("windows_fingerprint") != fingerprint:
                raise InputError(f"{path}: {WHAT} was computed on other windows; {REBUILD}")
            check_identity(path, WHAT, f.attrs, expected)
            if f.attrs.get("n_train") != n_train:
                raise InputError(f"{path}: {WHAT} holds {f.attrs.get('n_train')} training windows, "
                                 f"the fold has {n_train}; {REBUILD}")
            forms, shapes = [], []
            for g in range(GROUPS):
                form = f.attrs_of(f"group{g}").get("form")
                shape = f.shape(f"group{g}")
                if form not in FORMS or shape[0] != n_train or (form == "gram" and shape[1] != n_train):
                    raise InputError(f"{path}: group{g} is not a {WHAT} group of {n_train} windows "
                                     f"(form {form}, shape {shape}); {REBUILD}")
                forms.append(form)
                shapes.append(shape)
        return cls(forms, shapes, path)

    @classmethod
    def from_outputs(cls, group_outputs, device, forms=None):
        """A cache held in memory from the (N, D) flattened outputs of each group, in the forms the
        builder would choose or `forms` (benchmarks time a student step with it)."""
        n = len(group_outputs[0])
        forms = forms or choose_forms([g.shape[1] for g in group_outputs], n)
        data = [(g @ g.t() if form == "gram" else g).to(device, torch.float32)
                for form, g in zip(forms, group_outputs)]
        cache = cls(forms, [d.shape for d in data])
        cache.data, cache.device, cache.on_device = data, device, True
        return cache

    def load(self, device, resident):
        """Read every group into memory: on the device when `resident`, else in host memory, from
        which each batch's block is gathered into a small pinned buffer and sent (gafkd.train.staging)."""
        self.device, self.on_device = device, resident or device.type == "cpu"
        with CheckedH5(self.path, WHAT) as f:
            self.data = []
            for g in range(GROUPS):
                array = torch.from_numpy(f.array(f"group{g}"))
                self.data.append(array.to(device) if self.on_device else array)
        if not self.on_device and device.type == "cuda":
            self.staging = [PinnedStaging(device, torch.float32) for _ in range(GROUPS)]
        return self

    def grams(self, index, host_index=None):
        """The raw B×B Gram block of each group for the training windows `index` (float32). A
        cache in host memory gathers with `host_index` (the same windows, on the CPU)."""
        blocks = []
        with torch.autocast(self.device.type, enabled=False):
            for form, data, staging in zip(self.forms, self.data, self.staging or [None] * GROUPS):
                if self.on_device:
                    rows = data.index_select(0, index)
                    blocks.append(rows.index_select(1, index) if form == "gram" else rows @ rows.t())
                    continue
                idx = index.cpu() if host_index is None else host_index
                if form == "gram":
                    blocks.append(staging.send((len(idx), len(idx)), lambda out: torch.index_select(
                        data.index_select(0, idx), 1, idx, out=out)))
                else:
                    rows = gather_rows(data, idx, self.device, staging)
                    blocks.append(rows @ rows.t())
        return blocks


def open_similarity_caches(paths, fingerprint, expected, n_train, device, reserve):
    """{modality: loaded SimilarityCache}. Refused before anything is loaded when the caches
    together exceed the host's available memory; kept on the GPU when they fit beside the job's
    training `reserve` (gafkd.train.memory.fits_on_device, as a training split; $GAFKD_DATA_PLACEMENT
    forces either), else in host memory (logged)."""
    caches = {m: SimilarityCache.open(path, fingerprint, expected[m], n_train) for m, path in paths.items()}
    total = sum(c.nbytes for c in caches.values())
    available = host_available_bytes()
    if total > available:
        listed = ", ".join(f"{c.path} ({human_bytes(c.nbytes)})" for c in caches.values())
        raise InputError(f"teacher similarity caches {listed} need {human_bytes(total)} of memory; "
                         f"{human_bytes(available)} is available on this machine. Free memory, "
                         f"set students.kd.sp_source: online to run the teachers at every step, or "
                         f"lower students.pack (a pack holds the caches of each of its seeds' teachers)")
    resident = fits_on_device(total, device, reserve, "caches")
    if device.type != "cpu":
        log.info("similarity caches (%s) %s", human_bytes(total),
                 f"on {device}" if resident else
                 f"in host memory ({requested_placement()} placement): each batch's blocks are "
                 f"gathered there")
    return {m: cache.load(device, resident) for m, cache in caches.items()}


def cache_record(caches):
    """What metrics.json says of the caches a student used."""
    return {m: {"path": str(c.path), "forms": c.forms, "bytes": c.nbytes,
                "placement": "device" if c.on_device else "host"} for m, c in caches.items()}

