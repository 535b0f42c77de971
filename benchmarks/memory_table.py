"""Expected memory per job kind for the lab's GENE and PAMAP2 configs, with the measured peak of
one training step (and one evaluation batch) of each job kind.

    python benchmarks/memory_table.py [--quick] [--device cpu|cuda] [--card-gb 10]
                                      [--configs PATH ...] [--csv PATH] [--no-measure]
                                      [--measurements JSON] [--threads N]

Estimates (every column but `measured_*`) follow from each config and these assumptions:

- GENE (`source: geneactiv_mat`): the lab's files cut the recordings into non-overlapping
  windows, about 32,000 windows of 3 channels at 500 samples (16.0 M samples per channel); a
  window of W samples gives 16.0 M / W windows (16,000 at W = 1000).
- PAMAP2 (`source: pamap2`): the whole set of 40-channel 64 x 64 float16 images is about 6.5 GB,
  i.e. about 19,800 windows; with the config's downsample and step that is 1.31 M rows of the 12
  protocol activities at 100 Hz (windows = rows / downsample / step; windows lost where the
  activity changes are ignored). --pamap2-rows changes it.
- Splits: `holdout`/`random` give test_fraction and val_fraction of the windows to test and
  validation (subjects taken as equal in size); `loso` over 9 subjects tests one subject and
  validates round(val_fraction x 8) of the other 8, per fold.
- Inputs: signals float32 (windows x channels x length x 4 bytes), images in the config's
  images.dtype (windows x channels x size^2 x 4 bytes for float32, as the lab configs store them;
  2 for float16). Labels and statistics are negligible.
- Model: parameters x 4 bytes; training holds weights, gradients and SGD momentum (3x).
- Card: --card-gb decimal GB of memory (default 10), of which CONTEXT_BYTES (the CUDA context
  and kernels) are never free to tensors; one job per card. Placement is gafkd's own decision
  (gafkd.train.memory.plan_placement, the training split first) with the reserve the job keeps:
  teachers gafkd.train.memory.reserve_bytes(weights, activation_bytes(model, shape, batch, 512)),
  students the default reserve_bytes(). `device` = resident, `host` = batches stream from
  host memory.
- Device estimate = resident splits + the weights + the measured extra of a training step (or
  of an evaluation batch when larger; gradients and momentum included), or, not measured, the
  job's reserve (activation estimate, slack, gradients and momentum).
- `half of it`: the placement when the job finds only half of the card free (two jobs per card,
  devices.jobs_per_gpu: 2, started together).
- Host estimate of a training job on the card = the runtime (RSS of a process that imported
  torch and built the model, measured; 0.4 GB when not) + the whole fold's inputs as loaded
  (load_fold reads every window) + the host-placed splits + one block of the copy to the device
  (gafkd.train.folds.BLOCK_BYTES).
- Students use cached teacher logits (2 teachers x training windows x classes x 4 bytes); a
  similarity-preserving student with `sp_source: online` also keeps the training images and both
  teachers on the device (not measured here).
- windows and images jobs are not training jobs: their Snakemake `benchmark:` files record the
  real max_rss of every run; the estimate here is their output held in memory (windows) or the
  streaming buffers of build_images (1,024 windows of float32 + images in images.dtype).

Measured (`measured_*`, on --device, default the CPU): each (modality, architecture, input
shape) runs in a fresh process: synthetic inputs of the config's shapes, a few windows only
(two training batches of the config's batch size, one evaluation batch of 512 windows;
--quick: 64), gafkd.train.engine.train for one epoch, then gafkd.train.engine.predict.
measured_step = peak RSS during training (VmHWM, reset just before it) - RSS before it (on the
CPU: gradients, momentum, activations, allocator and convolution buffers; on CUDA: the device
peak minus the data and weights); measured_eval = the same for the evaluation batch;
measured_peak = the training process's peak RSS. CPU numbers vary by about 0.1-0.2 GB from run
to run (allocator and thread buffers).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from gafkd.train.memory import (RESERVE_PER_PARAMETER_BYTE, activation_bytes, human_bytes,  # noqa: E402
                                plan_placement, reserve_bytes)
from gafkd.train.folds import BLOCK_BYTES  # noqa: E402
from harness import print_table, write_csv  # noqa: E402

CONFIGS = ["gene14_w500.yaml", "gene14_w1000.yaml", "gene7_w500.yaml", "pamap2_loso.yaml"]
GENE_SAMPLES = 32_000 * 500             # per channel, cut into non-overlapping windows
GENE_CHANNELS = 3
PAMAP2_ROWS = 1_310_000                 # 12 protocol activities at 100 Hz (~6.5 GB of images)
PAMAP2_SUBJECTS = 9
PAMAP2_CHANNELS = {"lab40": 40, "hand_acc16": 3, "acc16": 9, "imu_acc_gyro": 18}
CONTEXT_BYTES = 500_000_000             # CUDA context + kernels, never free to tensors
EVAL_BATCH = 512
IMAGE_CHUNK = 1024                      # gafkd.images.cache.build_images' chunk_windows
SPLITS = ("train", "val", "test")


def dataset_shape(dataset, pamap2_rows):
    """(windows, channels, length) of a dataset entry of a config."""
    if dataset["source"] == "geneactiv_mat":
        return GENE_SAMPLES // dataset["window"], GENE_CHANNELS, dataset["window"]
    if dataset["source"] == "pamap2":
        channels = dataset.get("channels", "lab40")
        channels = PAMAP2_CHANNELS[channels] if isinstance(channels, str) else len(channels)
        windows = pamap2_rows // dataset.get("downsample", 3) // dataset.get("step", 22)
        return windows, channels, dataset.get("window", 100)
    raise ValueError(f"no known size for source '{dataset['source']}'")


def dataset_classes(dataset):
    """Classes of a dataset entry: its class_map's labels, else PAMAP2's 12 protocol activities."""
    return len(set((dataset.get("class_map") or {}).values())) or 12


def split_windows(split, windows):
    """{'train'/'val'/'test': windows} of one fold."""
    if split["kind"] == "loso":
        test = 1 / PAMAP2_SUBJECTS
        val = max(1, round(split.get("val_fraction", 0.125) * (PAMAP2_SUBJECTS - 1))) / PAMAP2_SUBJECTS
    else:
        test, val = split.get("test_fraction", 0.2), split.get("val_fraction", 0.1)
    n_test, n_val = round(windows * test), round(windows * val)
    return {"train": windows - n_test - n_val, "val": n_val, "test": n_test}


def parameter_count(arch, channels, classes, dims):
    from gafkd.train.models import build_model
    return sum(p.numel() for p in build_model(arch, channels, classes, dims).parameters())


def teacher_reserve(arch, shape, classes, batch):
    """The device memory a teacher job keeps free beside its data (as gafkd.distill.teachers does)."""
    from gafkd.train.models import build_model
    model = build_model(arch, shape[0], classes, len(shape) - 1)
    return reserve_bytes(4 * sum(p.numel() for p in model.parameters()),
                         activation_bytes(model, shape, batch, EVAL_BATCH))


# ---------------------------------------------------------------- measurement (child process)

def current_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE")


def measure(spec):
    """One (modality, arch, shape) in this process: spec['what'] = 'train' (one epoch of two
    batches in gafkd.train.engine.train) or 'eval' (one batch of gafkd.train.engine.predict); the extra
    memory it took over the process before it, and the process's peak."""
    import torch
    from gafkd.train.folds import Split, TrainData
    from gafkd.train.defaults import default_train_settings
    from gafkd.train.engine import predict, train
    from gafkd.train.memory import peak_memory, reset_device_peak, reset_host_peak
    from gafkd.train.models import build_model
    torch.manual_seed(0)
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    shape, batch, classes = tuple(spec["shape"]), spec["batch"], spec["classes"]
    dims = len(shape) - 1
    model = build_model(spec["arch"], shape[0], classes, dims).to(device)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    runtime = current_rss()
    n = 2 * batch if spec["what"] == "train" else spec["eval"]
    x = torch.randn((n,) + shape)
    x = (x.half() if dims == 2 else x).to(device)
    y = (torch.arange(n) % classes).to(device)
    stats = torch.zeros((1, shape[0]) + (1,) * dims, device=device)
    data = TrainData(Split(x, y), Split(x[:0], y[:0]), Split(x[:0], y[:0]), stats, stats + 1,
                     num_classes=classes)
    before = current_rss()
    reset_device_peak(device)
    if not reset_host_peak():
        raise RuntimeError("cannot reset the peak resident size (/proc/self/clear_refs)")
    if spec["what"] == "train":
        with tempfile.TemporaryDirectory() as tmp:
            outputs = {k: Path(tmp) / f"run.{k}" for k in ("model", "metrics", "history")}
            train(model, data, default_train_settings(epochs=1, batch_size=batch), device, outputs,
                  Path(tmp) / "resume.pt", "memory")
        resident = x.nbytes + weights               # weights, data
    else:
        predict(model, data.normalize, x, spec["eval"], device)
        resident = x.nbytes + weights
    peak = peak_memory(device)
    if device.type == "cuda":
        extra = peak["device_peak_bytes"] - resident
    else:
        extra = peak["host_peak_bytes"] - before
    return {"runtime": runtime, "extra": max(extra, 0), "peak": peak["host_peak_bytes"],
            "device_peak": peak["device_peak_bytes"]}


def measured(spec):
    run = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"measuring {spec}: {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the table

def placement_text(plan):
    host = [name for name in SPLITS if plan[name] == "host"]
    if not host:
        return "all on device"
    if len(host) == len(SPLITS):
        return "all stream from host"
    return f"{', '.join(host)} from host"


def rows_of_config(path, args, measurements):
    config = yaml.safe_load(Path(path).read_text())
    name = Path(path).stem
    dataset = next(iter(config["datasets"].values()))
    windows, channels, length = dataset_shape(dataset, args.pamap2_rows)
    classes = dataset_classes(dataset)
    size, batch = config["images"]["size"], config["training"]["batch_size"]
    counts = split_windows(dataset["split"], windows)
    image_bytes = np.dtype(config["images"].get("dtype", "float16")).itemsize
    bytes_per_window = {"sig": channels * length * 4, "gaf": channels * size * size * image_bytes}
    shapes = {"sig": [channels, length], "gaf": [channels, size, size]}
    card = int(args.card_gb * 1e9)
    archs = config["teachers"]["archs"][:1] if args.quick else config["teachers"]["archs"]
    student = config["students"].get("arch", "wrn16-1")
    rows = []

    def base(job, arch, modality, split_bytes):
        return {"config": name, "job": job, "arch": arch, "modality": modality,
                "windows": windows, **{f"{s}_bytes": split_bytes.get(s, 0) for s in SPLITS}}

    def probe(modality, arch):
        spec = {"modality": modality, "arch": arch, "shape": shapes[modality], "batch": batch,
                "classes": classes, "device": args.device, "threads": args.threads,
                "eval": 64 if args.quick else EVAL_BATCH}
        key = json.dumps({k: v for k, v in spec.items() if k != "classes"}, sort_keys=True)
        if args.no_measure:
            return None
        if key not in measurements:
            step, evaluation = (measured({**spec, "what": what}) for what in ("train", "eval"))
            measurements[key] = {"runtime": step["runtime"], "step": step["extra"],
                                 "eval": evaluation["extra"], "peak": step["peak"]}
            if args.measurements:
                Path(args.measurements).write_text(json.dumps(measurements, indent=1) + "\n")
            print(f"measured {modality} {arch} {tuple(shapes[modality])}: step "
                  f"{human_bytes(step['extra'])}, eval batch {human_bytes(evaluation['extra'])}",
                  file=sys.stderr, flush=True)
        return measurements[key]

    def training_row(job, arch, modality, extra_device=0, reserve=None):
        split_bytes = {s: counts[s] * bytes_per_window[modality] for s in SPLITS}
        params = parameter_count(arch, channels, classes, 1 if modality == "sig" else 2)
        model_bytes = 4 * params
        estimated = teacher_reserve(arch, tuple(shapes[modality]), classes, batch)
        reserve = estimated if reserve is None else reserve
        free = card - CONTEXT_BYTES - model_bytes - extra_device
        plan = plan_placement(split_bytes, free, reserve)
        shared = plan_placement(split_bytes, (card - CONTEXT_BYTES) // 2 - model_bytes - extra_device,
                                reserve)
        m = probe(modality, arch)
        working = (max(m["step"], m["eval"]) if m else
                   estimated - (RESERVE_PER_PARAMETER_BYTE - 2) * model_bytes)
        resident = sum(split_bytes[s] for s in SPLITS if plan[s] == "device")
        whole = windows * bytes_per_window[modality]
        copies = sum(split_bytes[s] for s in SPLITS if plan[s] == "host") + BLOCK_BYTES
        row = base(job, arch, modality, split_bytes)
        row.update({
            "params": params, "model_bytes": model_bytes, "placement": placement_text(plan),
            "placement_half_card": placement_text(shared),
            "device_estimate": resident + model_bytes + working + extra_device,
            "host_estimate": (m["runtime"] if m else 400_000_000) + whole + copies,
            "measured_step": m["step"] if m else "", "measured_eval": m["eval"] if m else "",
            "measured_peak": m["peak"] if m else "", "measured_on": args.device if m else ""})
        return row

    rows.append({**base("windows", "", "sig", {}), "params": "", "model_bytes": "",
                 "placement": "", "placement_half_card": "", "device_estimate": 0,
                 "host_estimate": windows * bytes_per_window["sig"],
                 "measured_step": "", "measured_eval": "", "measured_peak": "", "measured_on": ""})
    chunk = min(IMAGE_CHUNK, windows)
    rows.append({**base("images", "", "gaf", {}), "params": "", "model_bytes": "", "placement": "",
                 "placement_half_card": "",
                 "device_estimate": 0,
                 "host_estimate": chunk * (channels * length * 4 + channels * size * size * (4 + image_bytes)),
                 "measured_step": "", "measured_eval": "", "measured_peak": "", "measured_on": ""})
    for modality in ("gaf", "sig"):
        for arch in archs:
            rows.append(training_row("teacher", arch, modality))
    def eval_activations(arch, modality):
        from gafkd.train.models import build_model
        model = build_model(arch, channels, classes, len(shapes[modality]) - 1)
        return activation_bytes(model, tuple(shapes[modality]), 1, EVAL_BATCH)

    for modality in ("gaf", "sig"):
        arch = archs[-1]
        params = parameter_count(arch, channels, classes, 1 if modality == "sig" else 2)
        m = probe(modality, arch)
        whole = windows * bytes_per_window[modality]
        rows.append({**base("teacher outputs", arch, modality, {}), "params": params,
                     "model_bytes": 4 * params, "placement": "inputs on host",
                     "placement_half_card": "inputs on host",
                     "device_estimate": 4 * params + EVAL_BATCH * bytes_per_window[modality]
                                        + (m["eval"] if m else eval_activations(arch, modality)),
                     "host_estimate": (m["runtime"] if m else 400_000_000) + whole,
                     "measured_step": "", "measured_eval": m["eval"] if m else "",
                     "measured_peak": "", "measured_on": args.device if m else ""})
    logits = 2 * counts["train"] * classes * 4
    row = training_row("student", student, "sig", extra_device=logits, reserve=reserve_bytes())
    row["job"] = "student (cached logits)"
    rows.append(row)
    images_train = counts["train"] * bytes_per_window["gaf"]
    sp = dict(row, job="student SP online (estimate)", measured_step="", measured_eval="",
              measured_peak="", measured_on="")
    sp["device_estimate"] = row["device_estimate"] + images_train + 4 * sum(
        parameter_count(archs[-1], channels, classes, d) for d in (1, 2))
    sp["host_estimate"] = row["host_estimate"] + windows * bytes_per_window["gaf"]
    rows.append(sp)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one config, the first teacher architecture, small evaluation batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--card-gb", type=float, default=10.0)
    parser.add_argument("--configs", nargs="*", help=f"default: configs/{{{','.join(CONFIGS)}}}")
    parser.add_argument("--pamap2-rows", type=int, default=PAMAP2_ROWS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-measure", action="store_true", help="estimates only")
    parser.add_argument("--measurements", help="JSON file of measurements: read if it exists "
                        "(those found there are not run again), written at the end")
    parser.add_argument("--csv", default="benchmarks/results/memory_table.csv")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    configs = args.configs or [REPO / "configs" / c for c in (CONFIGS[:1] if args.quick else CONFIGS)]
    measurements, rows = {}, []
    if args.measurements and Path(args.measurements).exists():
        measurements = json.loads(Path(args.measurements).read_text())
    for path in configs:
        rows += rows_of_config(path, args, measurements)
    if args.measurements:
        Path(args.measurements).write_text(json.dumps(measurements, indent=1) + "\n")
    shown = [{**r, "data": " / ".join(human_bytes(r[f"{s}_bytes"]) for s in SPLITS)
              if r["train_bytes"] else "",
              "model": human_bytes(r["model_bytes"]) if r["model_bytes"] != "" else "",
              "device": human_bytes(r["device_estimate"]) if r["device_estimate"] else "",
              "host": human_bytes(r["host_estimate"]),
              "step": human_bytes(r["measured_step"]) if r["measured_step"] != "" else "",
              "eval": human_bytes(r["measured_eval"]) if r["measured_eval"] != "" else ""}
             for r in rows]
    print_table(shown, {"config": "config", "job": "job", "arch": "arch", "modality": "input",
                        "data": "train / val / test (est.)", "model": "model (est.)",
                        "placement": f"on a {args.card_gb:g} GB card (est.)",
                        "placement_half_card": "half of it (est.)",
                        "device": "device (est.)", "host": "host (est.)",
                        "step": f"step, measured {args.device}",
                        "eval": f"eval batch, measured {args.device}"})
    write_csv(rows, args.csv)


if __name__ == "__main__":
    main()
