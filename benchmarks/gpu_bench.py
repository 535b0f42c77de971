"""The GPU measurements in one prepared command (`make gpu-bench`), in under 8 minutes on one GPU.

    python benchmarks/gpu_bench.py [--card NAME] [--out DIR] [--device cuda|cpu]
                                   [--precisions P ...] [--budget SECONDS] [--quick]

On the offline GPU machine (../shared/device/README.md: its wheels copied to .whl and sent with
the tree; no .venv there, so python3 with PYTHONPATH=src; $OUT, the folder whose files come
back, else benchmarks/results):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH || exit 1; nvidia-smi -L; \
      python3 benchmarks/gpu_bench.py --out ${OUT:-benchmarks/results}

Three stages, each at every precision of --precisions (default tf32, the workflow's default,
then bf16, then fp32), each writing its CSV to --out (default benchmarks/results) as soon as a
row is done, <card> being --card or the GPU's model (h100, h200) or `cpu`:

1. student_pack_<card>.csv: arch, pack, precision, student_steps_per_s, ms_per_step, fusion,
   cuda_graphs, note: one engine step of a pack of K students (benchmarks/student_pack.py's
   engine_step_ms, the device's default fusion) for WRN16-1 and WRN28-3, K = 1, 8, 16, 32, 64;
   on CUDA, WRN16-1 also with training.cuda_graphs; fewer timed steps for WRN28-3 at K >= 32. A point that fails (out of memory) or that the budget skips is a row
   with an empty rate and the reason as its note.
2. grid_projection_<card>.csv: config, precision, job, hours, note: configs/gene14_w500.yaml's
   grid projected by benchmarks/grid_projection.py (project, job_hours) with fewer timed steps:
   teachers, teacher_outputs, similarity, students (in the workflow's packs) and their total.
3. projection_check_<card>.csv: slice, precision, measured_s, projected_s, ratio, detail: a real
   slice of the workflow trained through gafkd.train.engine.train_runs on random data of the
   projection's shapes (GENE: 32,000 windows of 3 x 500, 64 x 64 images): the config's first
   teacher (WRN16-1 on GASF images) for a few epochs, its outputs (gafkd.train.engine.predict), then a
   pack of kd-gaf students as wide as the grid's widest kd pack (15) for as many epochs; each
   part's wall time beside its projection from stage 2's timing model, and whether the total is
   within 25 %.

Time budget (--budget, default 400 s after the imports): stage 1 may run until 40 % of it,
stage 2 until 75 %, stage 3 until 100 %; a point, projection or slice does not start when what
it cost at the previous precision (or what the projection says it will cost) would overrun its
stage's end, and is reported as skipped. The slice's epochs (1 to 3) are chosen from its
projection to fit its share. Progress lines carry the elapsed seconds.

On the CPU (no TF32, and gafkd.train.engine's bf16 autocast is CUDA only) every precision computes the
same float32 arithmetic: only fp32 is measured, and the tf32 and bf16 rows are copies of it whose
note says so. --quick: a CPU smoke run of seconds, as the tests run it: tiny shapes and steps,
K = 1 and 2 only, the grid of the config's first teacher architecture with packs of 2, and one
torch thread.
"""

import argparse
import dataclasses
import math
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

import grid_projection  # noqa: E402
import student_pack  # noqa: E402
from gafkd.config import check_config_file  # noqa: E402
from gafkd.train import graphs  # noqa: E402
from gafkd.train.folds import Split, TrainData  # noqa: E402
from gafkd.train.numerics import use_numerics  # noqa: E402
from gafkd.train.engine import Run, predict, train_runs  # noqa: E402
from gafkd.train.models import build_model  # noqa: E402
from gafkd.train.packed import pack_models, resolve_fusion  # noqa: E402
from gafkd.distill.students import DistillationLoss  # noqa: E402
from harness import StepTiming, standardization, write_csv  # noqa: E402

PRECISIONS = ("tf32", "bf16", "fp32")      # the workflow's default first: the budget may cut the last
ARCHS, PACKS = ("wrn16-1", "wrn28-3"), (1, 8, 16, 32, 64)
GRAPHED_ARCH = "wrn16-1"
QUICK_PACKS = (1, 2)        # a CPU steps the members of a pack one by one: K = 64 takes minutes there
CONFIG = REPO / "configs/gene14_w500.yaml"
SHARES = {"student_pack": 0.40, "grid_projection": 0.75, "projection_check": 1.0}   # stage ends
TOLERANCE = 0.25
CPU_NOTE = "CPU: the fp32 measurement (no TF32 on a CPU; bf16 autocast is CUDA only)"


def card_name(device):
    """h100, h200, ... from the CUDA device's name; cpu on the CPU."""
    if device.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(device).lower()
    model = re.findall(r"\b[a-z]+\d+[a-z]*\b", name.replace("nvidia", ""))
    return model[0] if model else re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def failure(error):
    """One line for a point that failed (out of memory, above all): the run goes on with the next."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"


class Clock:
    """Elapsed seconds, the stages' ends within the budget, and progress lines."""

    def __init__(self, budget):
        self.start, self.budget = time.perf_counter(), budget

    def elapsed(self):
        return time.perf_counter() - self.start

    def left(self, stage):
        return SHARES[stage] * self.budget - self.elapsed()

    def say(self, message):
        print(f"[{self.elapsed():6.1f} s] {message}", flush=True)


class Results:
    """A stage's rows, rewritten to its CSV after every row; on the CPU each fp32 row also stands
    for the other precisions, as a copy that says so."""

    def __init__(self, path, precisions, device):
        self.path, self.rows = Path(path), []
        self.copies = [p for p in precisions if p != "fp32"] if device.type == "cpu" else []

    def add(self, row):
        note = row.get("note", "")
        self.rows.append({**row, "note": note})
        if row["precision"] == "fp32":
            self.rows += [{**row, "precision": p, "note": "; ".join(filter(None, (CPU_NOTE, note)))}
                          for p in self.copies]
        write_csv(self.rows, self.path)


def pack_stage(args, device, clock, precisions, folder):
    """Stage 1: packed student steps per precision, arch and K (student_pack.engine_step_ms)."""
    out = Results(args.out / f"student_pack_{args.card}.csv", args.precisions, device)
    shapes = {"length": 32, "batch": 8} if args.quick else {}
    fusion = resolve_fusion(None, device, 1)
    packs = QUICK_PACKS if args.quick else PACKS
    # CUDA graphs (training.cuda_graphs) beside eager steps for the small students, where launches
    # weigh most; a CPU trains eagerly either way
    variants = [(arch, graphed) for arch in ARCHS
                for graphed in ((False, True) if arch == GRAPHED_ARCH and device.type == "cuda" else (False,))]
    cost = {}                       # wall seconds of a point at an earlier precision
    for precision in precisions:
        use_numerics(precision)
        for arch, graphed in variants:
            for k in packs:
                if args.quick:
                    timing = StepTiming(warmup=1, steps=1, repeats=2)
                elif arch == "wrn28-3" and k >= 32:
                    timing = StepTiming(warmup=2, steps=2, repeats=3)
                else:       # a graphed step replays after the warmup steps and one capture
                    timing = StepTiming(warmup=graphs.WARMUP_STEPS + 2, steps=5, repeats=3)
                point = f"pack {arch} K={k} {precision}{' graphed' if graphed else ''}"
                row = {"arch": arch, "pack": k, "precision": precision, "student_steps_per_s": "",
                       "ms_per_step": "", "fusion": fusion if k > 1 else "solo", "cuda_graphs": graphed}
                if cost.get((arch, k, graphed), 0) > clock.left("student_pack"):
                    out.add({**row, "note": "skipped: the stage's time budget is spent"})
                    clock.say(f"{point}: skipped, the stage's budget is spent")
                    continue
                started = time.perf_counter()
                try:
                    ms = student_pack.engine_step_ms(arch, k, device, timing, folder, precision=precision,
                                                     cuda_graphs=graphed, **shapes)
                    row.update(student_steps_per_s=round(1000 * k / ms, 3), ms_per_step=round(ms, 3))
                    said = f"{ms:.2f} ms per step, {1000 * k / ms:.1f} student steps/s"
                except Exception as error:      # out of memory, above all: the next point still runs
                    row["note"] = failure(error)
                    said = f"failed: {row['note']}"
                cost[arch, k, graphed] = time.perf_counter() - started
                out.add(row)
                clock.say(f"{point} ({row['fusion']}): {said} [{cost[arch, k, graphed]:.1f} s]")


def grid_stage(args, device, clock, precisions, config, folder):
    """Stage 2: the grid's hours per kind of job at each precision; returns {precision: (rows,
    projection)} for stage 3."""
    out = Results(args.out / f"grid_projection_{args.card}.csv", args.precisions, device)
    timing = None if args.quick else grid_projection.Timing(warmup=3, steps=5, repeats=3, eval_windows=1024)
    projections, cost = {}, 0.0
    for precision in precisions:
        if cost > clock.left("grid_projection"):
            clock.say(f"grid projection {precision}: skipped, the stage's budget is spent")
            continue
        started = time.perf_counter()
        try:
            rows, projection = grid_projection.project(config, device, precision, timing, quick=args.quick,
                                                       folder=folder)
        except Exception as error:
            clock.say(f"grid projection {precision}: failed: {failure(error)}")
            continue
        cost = time.perf_counter() - started
        projections[precision] = rows, projection
        hours = grid_projection.job_hours(rows)
        for job, value in hours.items():
            out.add({"config": CONFIG.stem, "precision": precision, "job": job, "hours": value})
        clock.say(f"grid projection {precision}: {hours['total']:.1f} h in all ("
                  + ", ".join(f"{job} {value:.1f} h" for job, value in hours.items() if job != "total")
                  + f") [{cost:.1f} s]")
    return projections


def slice_stage(args, device, clock, precisions, config, projections, folder):
    """Stage 3: a teacher, its outputs and a pack of students trained for real beside their
    projection (from stage 2's timing model at the same precision)."""
    out = Results(args.out / f"projection_check_{args.card}.csv", args.precisions, device)
    teachers, kd = config["teachers"], config["students"]["kd"]
    arch, modality = teachers["archs"][0], teachers["modalities"][0]
    student = config["students"]["arch"]
    widths = grid_projection.packs_by_group(config).get(("cached", arch), {1: 1})
    members = max(widths)
    todo = [p for p in precisions if p in projections]
    for n, precision in enumerate(todo):
        rows, proj = projections[precision]
        use_numerics(precision)

        def projected(job):
            (row,) = [r for r in rows if (r["job"], r["arch"], r["modality"]) == (job, arch, modality)]
            return row["s_per_epoch"]

        try:
            teacher_epoch, outputs_s = projected("teacher"), projected("outputs")
            pack_epoch = proj.pack_s_per_epoch("cached", members, None)   # timed in stage 2 for the grid's widths
        except Exception as error:
            clock.say(f"slice {precision}: its projection failed: {failure(error)}")
            continue
        share = clock.left("projection_check") / (len(todo) - n)
        epochs = max(1, min(3, math.floor((share / 1.3 - outputs_s) / (teacher_epoch + pack_epoch))))
        expected = {"teacher": epochs * teacher_epoch, "teacher_outputs": outputs_s, "students": epochs * pack_epoch}
        if 1.3 * sum(expected.values()) > clock.left("projection_check"):
            clock.say(f"slice {precision}: skipped, its projection ({sum(expected.values()):.0f} s) "
                      f"exceeds what is left of the budget")
            continue
        clock.say(f"slice {precision}: {arch} {modality} teacher and a pack of {members} kd-{modality} "
                  f"students, {epochs} epoch(s) each on {proj.windows} windows; projected "
                  f"{sum(expected.values()):.1f} s")
        try:
            measured = train_slice(proj, device, arch, modality, student, members, kd, epochs, folder)
        except Exception as error:
            clock.say(f"slice {precision}: failed: {failure(error)}")
            continue
        detail = {"teacher": f"{arch} {modality}, {epochs} epoch(s)", "teacher_outputs": f"{proj.windows} windows",
                  "students": f"pack of {members} {student} kd-{modality}, {epochs} epoch(s)", "total": ""}
        measured["total"], expected["total"] = sum(measured.values()), sum(expected.values())
        for part in detail:
            out.add({"slice": part, "precision": precision, "measured_s": round(measured[part], 6),
                     "projected_s": round(expected[part], 6),
                     "ratio": round(measured[part] / expected[part], 3), "detail": detail[part]})
        ratio = measured["total"] / expected["total"]
        verdict = "within" if abs(ratio - 1) <= TOLERANCE else "NOT within"
        clock.say(f"slice {precision}: measured {measured['total']:.1f} s, projected {expected['total']:.1f} s, "
                  f"ratio {ratio:.2f}: {verdict} {TOLERANCE:.0%} ("
                  + ", ".join(f"{p} {measured[p]:.1f}/{expected[p]:.1f} s" for p in detail if p != "total") + ")")


def train_slice(proj, device, arch, modality, student, members, kd, epochs, folder):
    """Wall seconds of a teacher's training, its outputs and a student pack's training, each
    through the workflow's engine, on random data of the projection's shapes."""
    torch.manual_seed(0)            # drawn on the device: 32,000 images are 0.4 G numbers
    n_val = proj.n_eval // 3        # validation and test cost the same per window: only their sum counts
    shape = (proj.channels, proj.window) if modality == "sig" else (proj.channels, proj.size, proj.size)
    y = torch.randint(0, proj.classes, (proj.windows,), device=device)
    inputs = {"sig": torch.randn(proj.windows, proj.channels, proj.window, device=device)}
    if modality != "sig":       # images stored as float16, as the projection times them
        inputs[modality] = torch.rand(proj.windows, *shape, device=device).half()

    def data(x):
        parts = (slice(0, proj.n_train), slice(proj.n_train, proj.n_train + n_val), slice(proj.n_train + n_val, None))
        return TrainData(*(Split(x[p], y[p]) for p in parts), *standardization(x), num_classes=proj.classes)

    def runs(name, count):
        return [Run(k, {f: folder / f"{name}{k}.{f}" for f in ("model", "metrics", "history")},
                    folder / f"{name}{k}.resume.pt", f"slice-{name}") for k in range(count)]

    def timed(function):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started, result

    settings = dataclasses.replace(proj.settings, epochs=epochs)     # the timed steps' settings
    torch.manual_seed(0)
    teacher, teacher_data = build_model(arch, proj.channels, proj.classes, len(shape) - 1), data(inputs[modality])
    measured = {"teacher": timed(lambda: train_runs(teacher, teacher_data, settings, device, runs("teacher", 1)))[0]}
    # the teacher-outputs job: every window, float32 (gafkd.distill.teacher_outputs predicts without autocast)
    measured["teacher_outputs"], logits = timed(lambda: predict(teacher, teacher_data.normalize, inputs[modality],
                                                                512, device))
    models = []
    for seed in range(members):
        torch.manual_seed(seed)
        models.append(build_model(student, proj.channels, proj.classes, 1))
    train_logits = logits[:proj.n_train].to(device)
    if members > 1:
        pack = pack_models(models)
        pack.group_outputs = False          # kd-gaf reads logits only (gafkd.distill.students sets the same)
        loss = DistillationLoss(f"kd-{modality}", [1.0] * members, kd,
                                {modality: train_logits.expand(members, *train_logits.shape)})
    else:
        pack, loss = models[0], DistillationLoss(f"kd-{modality}", 1.0, kd, {modality: train_logits})
    measured["students"] = timed(lambda: train_runs(pack, data(inputs["sig"]), settings, device,
                                                    runs("student", members), loss))[0]
    return measured


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--card", help="the file names' card (default: the GPU's model, h100 or h200; cpu)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results", help="the CSVs' folder")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--budget", type=float, default=400.0, help="seconds for the three stages (default 400)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and steps (a CPU smoke run)")
    args = parser.parse_args(argv)
    clock = Clock(args.budget)
    device = torch.device(args.device)
    if args.quick and device.type == "cpu":
        # tiny steps on one thread: on a busy CPU, idle OpenMP threads spin and a step takes 100x
        torch.set_num_threads(1)
    use_numerics(args.precisions[0])        # before the first CUDA operation (cuBLAS's workspace)
    if device.type == "cuda":
        device = torch.device("cuda", 0 if device.index is None else device.index)
        torch.cuda.set_device(device)
    args.card = (args.card or card_name(device)).lower()
    precisions = ["fp32"] if device.type == "cpu" else args.precisions
    if device.type == "cpu":
        clock.say(f"on the CPU: measuring fp32 only; {CPU_NOTE}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
    clock.say(f"{name} as '{args.card}', precisions {', '.join(precisions)}, budget {args.budget:.0f} s"
              f"{', quick' if args.quick else ''}; results to {args.out}")
    config = check_config_file(CONFIG)
    if args.quick:      # a smoke run: the grid of the first teacher architecture, in packs of 2
        config["teachers"]["archs"] = config["teachers"]["archs"][:1]
        config["students"]["pack"] = 2
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        pack_stage(args, device, clock, precisions, folder)
        projections = grid_stage(args, device, clock, precisions, config, folder)
        slice_stage(args, device, clock, precisions, config, projections, folder)
    clock.say(f"done: {args.out}/{{student_pack,grid_projection,projection_check}}_{args.card}.csv")


if __name__ == "__main__":
    main()
