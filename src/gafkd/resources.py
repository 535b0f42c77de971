"""What each job of the grid asks its scheduler for: a GPU or not, host memory (mem_mb) and
wall time (runtime, minutes), computed from the config and the data the job reads. The rules
declare these (Snakemake's `resources:`), so a workstation run (`--resources gpu=N`) and SLURM
read the same numbers, and `python -m gafkd.plan` prints them.

Time is counted, not guessed: a network's forward FLOPs per window are counted from its layers'
shapes (gafkd.archs.wrn_cost, without torch: the workflow sizes every job while it parses, and a
cluster job parses the workflow again); a training step costs 3x its forward over a batch
(forward, backward, update), run at a sustained rate per convolution dimensionality with a
floor per step (small 1-D steps are bound by kernel latency, not arithmetic); every epoch also
predicts the validation and test windows. The rates are measured H200 numbers under the
slowest deterministic float32 numerics (a WRN16-1 signal pack: 2.2 TFLOP/s, a solo step 16 ms),
so tf32 and bf16 runs finish early. A job asks for SAFETY = 4 x the count: twice the count on a
card half as fast as the H200 (A100-class, common on clusters); cluster.runtime_factor
multiplies it for slower cards. Never less than a floor.

Memory: the process (a CUDA torch process holds about 3 GB of host memory), plus twice what the
job loads (the whole windows file, an image teacher's image cache, an SP pack's similarity caches
or images; loaded arrays and their host-placed copies), plus a pack's members' teacher logits,
and a quarter more: a job over its memory is killed and loses its work.

The dataset's size is windows.h5's when it exists, else counted from the raw files (GENE: one
file per window; PAMAP2: the rows the files hold, at the config's downsample and step), else the
lab's data set (GENE: 16.0 M samples per channel; PAMAP2: 1.31 M protocol rows).
"""

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from gafkd import grid
from gafkd import names
from gafkd.archs import wrn_cost
from gafkd.distill.cache_layout import cache_bytes, choose_forms, teacher_passes
from gafkd.config import series_length
from gafkd.encodings import encoding_parts
from gafkd.methods import method

GB = 10**9
MB = 10**6
# Time
SAFETY = 4.0
STARTUP_SECONDS = 120                      # python, torch, CUDA context, loading the data
STEP_FLOOR_SECONDS = 0.016                 # one deterministic training step, however small
RATE = {1: 2.2e12, 2: 10e12}               # FLOP/s of training and prediction, by conv dims
MATMUL_RATE = 20e12                        # the similarity caches' Gram products
WRITE_RATE = 0.5e9                         # bytes/s written to a result file
EVAL_BATCH = 512
RUNTIME_FLOOR = {"gpu": 20, "cpu": 10}     # minutes
# Memory
PROCESS_BYTES = {"gpu": 3 * GB, "cpu": 1 * GB}
LOADED_COPIES = 2
MEMORY_HEADROOM = 1.25
MEM_FLOOR_MB = {"gpu": 4000, "cpu": 2000}
IMAGE_BUILD_BYTES = 2 * GB                 # build_images streams in chunks (gafkd.images.cache)
PIXEL_RATE = 20e6                          # GAF/MTF pixels per second (measured: 120 M on 2 cores)
PI_SECONDS = 2e-3                          # one window channel's persistence image
# The lab's data sets, for a plan made before their raw files are on disk.
GENE_SAMPLES_PER_CHANNEL = 16.0e6
PAMAP2_PROTOCOL_ROWS = 1.31e6
PAMAP2_SUBJECTS = 9
BASICMOTIONS = {"train": 40, "test": 40}
ITEM_BYTES = {"float16": 2, "float32": 4}


@dataclass(frozen=True)
class Needs:
    """A job's request: gpu 0 or 1, mem_mb, runtime in minutes, and for a GPU job the GPU model
    the config names (cluster.gpu_model; "" for any)."""
    gpu: int
    mem_mb: int
    runtime: int
    gpu_model: str = ""

    def resources(self):
        model = {"gpu_model": self.gpu_model} if self.gpu_model else {}
        return {"gpu": self.gpu, "mem_mb": self.mem_mb, "runtime": self.runtime, **model}


@dataclass(frozen=True)
class Data:
    """A fold as a job sees it: windows per split, and one window's channels, samples, classes."""
    train: int
    val: int
    test: int
    channels: int
    length: int
    classes: int

    @property
    def windows(self):
        return self.train + self.val + self.test


def _needs(device, seconds, loaded_bytes, config):
    cluster = config.get("cluster", {})
    minutes = math.ceil(SAFETY * cluster.get("runtime_factor", 1.0) * (STARTUP_SECONDS + seconds) / 60)
    memory = MEMORY_HEADROOM * (PROCESS_BYTES[device] + LOADED_COPIES * loaded_bytes)
    return Needs(gpu=int(device == "gpu"), mem_mb=max(MEM_FLOOR_MB[device], math.ceil(memory / MB)),
                 runtime=max(RUNTIME_FLOOR[device], minutes),
                 gpu_model=(cluster.get("gpu_model") or "") if device == "gpu" else "")


# --- the data -------------------------------------------------------------------------------

def _windows_file_count(path):
    """Windows in a windows.h5, or None when it cannot be read (damaged: its job will say so)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return int(f["X"].shape[0])
    except (OSError, KeyError):
        return None


def _pamap2_rows(spec):
    """Rows of the raw PAMAP2 files: each file's size over its mean line length (first 1 MB)."""
    from gafkd.data.readers import pamap2
    rows = 0
    for _, path in pamap2.list_subject_files(spec["raw"], spec.get("subjects")):
        with open(path, "rb") as f:
            head = f.read(MB)
        rows += os.path.getsize(path) / max(1, len(head) / max(1, head.count(b"\n")))
    return rows


def window_count(spec, dataset):
    """(windows, subjects of a LOSO split, else 0) of a dataset: windows.h5's count when it is
    built, else the raw files', else the lab's data set (module docstring)."""
    from gafkd.config import raw_subjects
    if spec["source"] == "basicmotions":
        return sum(BASICMOTIONS.values()), 0
    subjects = len(raw_subjects(spec)) if spec["split"]["kind"] == "loso" else 0
    built = Path(f"results/{dataset}/windows.h5")
    raw = spec.get("raw")
    on_disk = bool(raw) and Path(raw).is_dir()
    counted = _windows_file_count(built) if built.exists() else None
    if counted is not None:
        return counted, subjects
    if spec["source"] == "geneactiv_mat":
        if on_disk:
            return sum(1 for entry in os.scandir(raw) if entry.name.lower().endswith(".mat")), subjects
        return int(GENE_SAMPLES_PER_CHANNEL // spec["window"]), subjects
    rows = _pamap2_rows(spec) if on_disk else PAMAP2_PROTOCOL_ROWS * subjects / PAMAP2_SUBJECTS
    return int(rows / spec["downsample"] / spec["step"]), subjects


def _split_shares(split, subjects):
    """(train, val, test) shares of a fold's windows."""
    kind = split["kind"]
    if kind == "loso":
        test = 1 / max(subjects, 2)
        val = 0 if split.get("validation") == "test" else round(split["val_fraction"] * (subjects - 1)) / subjects
        return 1 - val - test, val, test
    test = split.get("test_fraction", 0)
    val = split["val_fraction"] * (1 - test) if kind == "predefined" else split["val_fraction"]
    return 1 - val - test, val, test


def _channels(spec):
    if spec["source"] == "pamap2":
        from gafkd.data.readers import pamap2
        return len(pamap2.resolve_channels(spec["channels"]))
    if spec["source"] == "basicmotions":
        return 6
    return len(spec["channels"]) if spec.get("channels") else 3


def _classes(spec):
    if spec.get("class_map"):
        return len(spec["class_map"])
    return {"basicmotions": 4, "pamap2": 12, "geneactiv_mat": 14}[spec["source"]]


def fold_data(config, dataset):
    """Data of one fold of `dataset` (every fold of a dataset is alike in size)."""
    spec = config["datasets"][dataset]
    built = Path(f"results/{dataset}/windows.h5")
    return _fold_data(json.dumps(spec, sort_keys=True, default=str), dataset,
                      built.stat().st_mtime_ns if built.exists() else None)


@functools.lru_cache(maxsize=64)
def _fold_data(spec_json, dataset, built_mtime):
    spec = json.loads(spec_json)
    windows, subjects = window_count(spec, dataset)
    if spec["source"] == "basicmotions":
        val = round(BASICMOTIONS["train"] * spec["split"]["val_fraction"])
        train, test = BASICMOTIONS["train"] - val, BASICMOTIONS["test"]
    else:
        train_share, val_share, _ = _split_shares(spec["split"], subjects)
        train, val = round(windows * train_share), round(windows * val_share)
        test = windows - train - val
    return Data(train, val, test, _channels(spec), series_length(spec), _classes(spec))


# --- the networks ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Cost:
    flops: float                # forward FLOPs of one window
    parameters: int
    feature_sizes: tuple        # values of each group output of one window (SP)


@functools.lru_cache(maxsize=64)
def network_cost(arch, channels, shape, classes):
    """Cost of `arch` on windows of `channels` x `shape` (gafkd.archs.wrn_cost, counted without torch)."""
    flops, parameters, feature_sizes = wrn_cost(arch, channels, tuple(shape), classes)
    return Cost(float(flops), parameters, feature_sizes)


def _input_shape(config, data, modality):
    """(channels, shape) of a network's input: the signal, or an encoding's image."""
    if names.is_image_modality(modality):
        size = config["images"]["size"]
        return data.channels * len(encoding_parts(modality)), (size, size)
    return data.channels, (data.length,)


def _image_bytes(config, data, encoding):
    channels, (size, _) = _input_shape(config, data, encoding)
    return data.windows * channels * size * size * ITEM_BYTES[config["images"].get("dtype", "float16")]


def _signal_bytes(data):
    return data.windows * data.channels * data.length * 4


def _step_seconds(flops, dims):
    return max(STEP_FLOOR_SECONDS, flops / RATE[dims])


def predict_seconds(cost, windows, dims, members=1):
    """Seconds to predict `windows` with `members` networks of `cost`, in EVAL_BATCH batches."""
    return math.ceil(windows / EVAL_BATCH) * _step_seconds(cost.flops * EVAL_BATCH * members, dims)


def training_seconds(config, data, cost, dims, members=1):
    """Seconds to train `members` networks of `cost` together for the config's epochs: each
    epoch's steps over the training windows, and predictions of the validation and test windows."""
    batch = config["training"]["batch_size"]
    step = _step_seconds(3 * cost.flops * batch * members, dims)
    epoch = math.ceil(data.train / batch) * step + predict_seconds(cost, data.val + data.test, dims, members)
    return config["training"]["epochs"] * epoch


# --- the jobs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Teacher:
    """A teacher run as its jobs see it: its fold, its network's cost and input dims, and the
    bytes its jobs load (the windows, and an image teacher's image cache)."""
    data: Data
    cost: Cost
    dims: int
    loaded: int


def _teacher(config, run):
    data = fold_data(config, run["dataset"])
    channels, shape = _input_shape(config, data, run["modality"])
    loaded = _signal_bytes(data)
    if names.is_image_modality(run["modality"]):
        loaded += _image_bytes(config, data, run["modality"])
    return Teacher(data, network_cost(run["arch"], channels, shape, data.classes), len(shape), loaded)


def teacher_needs(config, run, members=1):
    """A teacher's training job (`members` signal teachers of one pack)."""
    teacher = _teacher(config, run)
    seconds = training_seconds(config, teacher.data, teacher.cost, teacher.dims, members)
    return _needs("gpu", seconds, teacher.loaded, config)


def outputs_needs(config, run):
    """A teacher's logits of every window (teacher_outputs)."""
    teacher = _teacher(config, run)
    return _needs("gpu", predict_seconds(teacher.cost, teacher.data.windows, teacher.dims), teacher.loaded, config)


def _similarity(teacher):
    """(seconds, cache bytes) of a teacher's similarity cache over its fold's training windows:
    the builder's teacher passes, the Gram products, the write."""
    n, sizes = teacher.data.train, teacher.cost.feature_sizes
    forms = choose_forms(sizes, n)
    stored = cache_bytes(forms, sizes, n)
    seconds = (teacher_passes(sizes, forms, n) * predict_seconds(teacher.cost, n, teacher.dims)
               + sum(2 * n * n * size for size in sizes) / MATMUL_RATE + stored / WRITE_RATE)
    return seconds, stored


def similarity_needs(config, run):
    """A teacher's similarity cache (teacher_similarity): its inputs, the cache it writes."""
    teacher = _teacher(config, run)
    seconds, stored = _similarity(teacher)
    return _needs("gpu", seconds, teacher.loaded + stored, config)


def student_needs(config, runs):
    """Students trained in one job: a solo run or a pack's members (one grid cell's teachers for
    SP). A scratch student derived from a teacher's run copies files: no GPU, the floor."""
    run = runs[0]
    if len(runs) == 1 and grid.same_run_teacher_dir(config, run) is not None:
        return _needs("cpu", 0, 0, config)
    data = fold_data(config, run["dataset"])
    cost = network_cost(run["arch"], data.channels, (data.length,), data.classes)
    seconds = training_seconds(config, data, cost, 1, len(runs))
    loaded = _signal_bytes(data) + len(runs) * 2 * data.windows * data.classes * 4
    if method(run["method"]).similarity:
        for modality, arch in names.parse_teachers_tag(run["method"], run["teachers"]).values():
            teacher = _teacher(config, {**run, "modality": modality, "arch": arch})
            if config["students"]["kd"]["sp_source"] == "online":
                # both teachers' forwards at every step: a third of their training
                seconds += training_seconds(config, data, teacher.cost, teacher.dims, len(runs)) / 3
                loaded += teacher.loaded - _signal_bytes(data)
            else:
                loaded += _similarity(teacher)[1]
    return _needs("gpu", seconds, loaded, config)


def windows_needs(config, dataset):
    """Reading the raw files into windows.h5: the windows, held in memory, twice."""
    data = fold_data(config, dataset)
    return _needs("cpu", 0, 2 * _signal_bytes(data), config)


def images_needs(config, dataset, encoding):
    """An image cache: streamed in chunks; each part's time grows with its pixels (a
    persistence image with its windows' channels: a diagram each)."""
    data = fold_data(config, dataset)
    size = config["images"]["size"]
    seconds = sum(data.windows * data.channels * (PI_SECONDS if part == "pi" else size * size / PIXEL_RATE)
                  for part in encoding_parts(encoding))
    return _needs("cpu", seconds, IMAGE_BUILD_BYTES, config)


def report_needs(config):
    """Tables, figures and the critical-difference diagram."""
    return _needs("cpu", 0, 0, config)
