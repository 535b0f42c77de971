"""The CUDA path, checked in one command (`make gpu-check`).

    python benchmarks/gpu_check.py [--device cuda|cpu] [--out DIR] [--epochs N] [--seeds N ...]

1. workflow     the demo (config.yaml) end to end with --resources gpu=4 and devices.jobs_per_gpu: 4;
                each training job's device, slot, peak memory (allocated and reserved) and wall
                time from its metrics.json; no two jobs held one slot at once.
2. determinism  one teacher (GAF) and one student (two teachers + annealing + SP, from the cached
                logits and similarity caches, with the rest of its pack) trained again outside
                the workflow, twice: the same weights and history, bit for bit, as the
                workflow's runs.
3. resume       each run killed (SIGKILL) mid-training after a resume checkpoint and started again:
                bit-identical to the uninterrupted run.
   precisions   each run trained twice at each other training.precision (--precisions): the same
                bits both times.
4. placement    each run with every split (and the student's similarity caches) streamed from
                host memory (GAFKD_DATA_PLACEMENT=host) against resident: the same numbers;
                steps/s of each.
5. pack K       packed against solo student steps (benchmarks/student_pack.py, K = 1, 8, 32, 64).
   graphs       each run trained with training.cuda_graphs (CUDA only): bit-identical to the
                workflow's eager run; steps/s of each.
6. bf16         the teacher with training.precision bf16 against the config's: step time and accuracy.
7. cpu          the same teacher and student pack on the CPU beside the GPU's numbers.

The demo's students train in packs (students.pack), and the student checked is one of a pack,
trained again with its pack. Prints and writes gpu_check.md (one table) row by row, then
gpu_check.csv (its rows and one row per workflow run) and gpu_check_logs.tar.gz (the
workflow's logs and metrics) to --out; exits 1 when a check fails.
Without a GPU it runs the same checks on the CPU with fewer epochs and seeds and GASF images only
(bf16 is CUDA only).
"""

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402
import yaml  # noqa: E402

from gafkd import grid  # noqa: E402
from gafkd import runfiles  # noqa: E402
from gafkd import names  # noqa: E402
from gafkd import methods  # noqa: E402
from gafkd.config import check_config_file, training_defaults  # noqa: E402
from gafkd.train.devices import CUDA_CONTEXT_BYTES  # noqa: E402
from gafkd.train.numerics import PRECISIONS, numerics_record, use_numerics  # noqa: E402
from gafkd.train.memory import human_bytes  # noqa: E402
from gafkd.data.splits import fold_names  # noqa: E402

TEACHER = {"arch": "wrn16-1"}     # of the first image encoding that two-teacher students pair
STUDENT = {"method": "kd2-anneal-sp", "alpha": 0.5}
GPU_SLOTS = 4
KILL_AT_EPOCH = 3                 # killed in epoch 3, after the checkpoint of epoch 2
CHECKPOINT_EVERY = 2
PACK_WIDTHS = (1, 8, 32, 64)       # student steps timed packed against solo on CUDA
COLUMNS = ("check", "device", "result", "value", "detail")


# ---- one training run in a child process (--run SPEC) ------------------------------------------

def run_child(spec):
    """Train the run (a teacher) or runs (a student pack, or one student) `spec` describes, member
    k's files in OUT/m<k>/; SIGKILL itself in epoch `kill_at_epoch` when given."""
    from gafkd.train import engine
    from gafkd.distill.students import train_pack_from_files
    from gafkd.distill.teachers import train_teacher

    first = spec["settings"] if spec["role"] == "teacher" else spec["settings"][0]
    use_numerics(first["training"]["precision"], first["training"]["deterministic"])
    torch.set_num_threads(first["threads"])
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if spec.get("kill_at_epoch"):
        evaluate, calls = engine.evaluate, [0]

        def evaluate_or_die(*args, **kwargs):         # val, then test, once per epoch
            calls[0] += 1
            if calls[0] == 2 * spec["kill_at_epoch"] - 1:
                os.kill(os.getpid(), signal.SIGKILL)
            return evaluate(*args, **kwargs)

        engine.evaluate = evaluate_or_die
    out = Path(spec["out"])
    inputs = {k: str(Path(spec["workdir"]) / v) for k, v in spec["inputs"].items()}
    outputs = {runfiles.member_name(k, key): out / f"m{k}" / name for k in range(len(spec["workflow_runs"]))
               for key, name in runfiles.RUN_FILE_NAMES.items()}
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    if spec["role"] == "teacher":
        train_teacher(inputs["windows"], inputs.get("images"), spec["settings"], runfiles.member_files(outputs, 0),
                      out / "m0" / "resume.pt", device, claim="gpu_check")
    else:
        train_pack_from_files(inputs, spec["settings"], outputs, device, claim="gpu_check")


def train_in_child(spec, env=None):
    """Run `spec` in a child process; (returncode, seconds)."""
    path = Path(spec["out"]).with_suffix(".spec.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    started = time.perf_counter()
    run = subprocess.run([sys.executable, __file__, "--run", str(path)], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if run.returncode not in (0, -signal.SIGKILL):
        sys.stderr.write(run.stderr[-3000:])
    return run.returncode, time.perf_counter() - started


# ---- comparing runs -------------------------------------------------------------------------------

def weights(run_dir):
    return torch.load(Path(run_dir) / "model.pt", map_location="cpu", weights_only=True)["state_dict"]


def history_rows(run_dir):
    with open(Path(run_dir) / "history.csv") as f:
        return list(csv.DictReader(f))


def member_dirs(out, spec, other=None):
    """(member k's folder under `out`, the same run's folder under `other`, by default the
    workflow's run) of every run of `spec`."""
    return [(Path(out) / f"m{k}", Path(other) / f"m{k}" if other else Path(spec["workdir"]) / run)
            for k, run in enumerate(spec["workflow_runs"])]


def max_weight_difference(pairs):
    """Largest absolute difference between the runs' weights (0.0: bit-identical)."""
    def difference(a, b):
        wa, wb = weights(a), weights(b)
        return max(float((wa[k].double() - wb[k].double()).abs().max()) if wa[k].numel() else 0.0 for k in wa)
    return max(difference(a, b) for a, b in pairs)


def identical(pairs):
    """Whether every pair of runs has bit-identical weights and history."""
    def same(a, b):
        wa, wb = weights(a), weights(b)
        return all(torch.equal(wa[k], wb[k]) for k in wa) and history_rows(a) == history_rows(b)
    return all(same(a, b) for a, b in pairs)


def metrics(run_dir):
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def steps_per_second(run_dir, batch_size):
    """Training steps per second of a run (epochs incl. evaluation; a pack's step trains all)."""
    m = metrics(run_dir)
    steps = -(-m["split"]["windows"]["train"] // batch_size)
    return m["epochs_per_second"] * steps


# ---- the checks -------------------------------------------------------------------------------------

def check_config(args, device, workdir):
    """The demo's config with the check's epochs, seeds, slots and checkpoints (on the CPU, one
    image encoding)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"].update(epochs=args.epochs, checkpoint_every=CHECKPOINT_EVERY)
    config["teachers"]["seeds"] = list(args.seeds)
    config["students"]["seeds"] = list(args.seeds)
    if device.type == "cpu":
        config["students"]["alphas"] = [0.1, STUDENT["alpha"]]      # packs of 2
        config["images"]["methods"], config["students"]["paired_images"] = ["gasf"], ["gasf"]
    config["devices"].update(jobs_per_gpu=GPU_SLOTS, lock_dir=str(workdir / "locks"))
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_workflow(workdir, configfile, device, timeout):
    env = dict(os.environ)
    if device.type == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(configfile), "--cores", str(os.cpu_count()),
               "--resources", f"gpu={GPU_SLOTS}"]
    started = time.perf_counter()
    try:
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        code, log = run.returncode, run.stdout + run.stderr
    except subprocess.TimeoutExpired as expired:
        code, log = "timeout", f"{expired.stdout or ''}{expired.stderr or ''}"
    (workdir / "snakemake.log").write_text(log if isinstance(log, str) else log.decode())
    return code, time.perf_counter() - started


def workflow_jobs(workdir):
    """One row per training job of the workflow, from its metrics.json."""
    rows = []
    for path in sorted((workdir / "results").rglob("metrics.json")):
        m = metrics(path.parent)
        if "reused_from" in m:
            continue
        memory = m["memory"]
        claim = m["provenance"].get("device_claim") or ""
        rows.append({"run": str(path.parent.relative_to(workdir / "results")),
                     "device": m["provenance"]["device"],
                     "slot": claim.split(" (")[0] if claim.startswith("slot") else "none",
                     "device_peak_bytes": memory["device_peak_bytes"],
                     "device_reserved_peak_bytes": memory.get("device_reserved_peak_bytes"),
                     "wall_seconds": round(m["wall_seconds"], 2),
                     "started_at": m["started_at"], "finished_at": m["finished_at"]})
    return rows


def one_per_job(runs):
    """The runs' rows, one per job: a pack's members share their job's slot and start."""
    return list({(r["slot"], r["started_at"]): r for r in runs}.values())


def shared_slots(runs):
    """Pairs of jobs that held the same slot at the same time."""
    clashes = []
    spans = [(j["slot"], datetime.fromisoformat(j["started_at"]), datetime.fromisoformat(j["finished_at"]), j["run"])
             for j in one_per_job(runs) if j["slot"] != "none"]
    for i, (slot, start, end, run) in enumerate(spans):
        for other_slot, other_start, other_end, other_run in spans[i + 1:]:
            if slot == other_slot and start < other_end and other_start < end:
                clashes.append((run, other_run))
    return clashes


def most_at_once(runs):
    jobs = one_per_job(runs)
    events = sorted([(datetime.fromisoformat(j["started_at"]), 1) for j in jobs]
                    + [(datetime.fromisoformat(j["finished_at"]), -1) for j in jobs])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def run_specs(config, workdir, device):
    """The teacher and student runs the checks repeat, as the workflow defines them: a student is
    trained again with its pack (grid.pack_of), as the workflow trains it."""
    dataset = next(iter(config["datasets"]))
    fold = fold_names(config["datasets"][dataset]["split"]["kind"])[0]
    seed = str(config["teachers"]["seeds"][0])
    encoding = grid.paired_encodings(config)[0]
    teacher_run = {"dataset": dataset, "fold": fold, "seed": seed, "modality": encoding, **TEACHER}
    student_run = {"dataset": dataset, "fold": fold, "arch": config["students"]["arch"],
                   "method": STUDENT["method"], "alpha": methods.alpha_tag(STUDENT["alpha"]), "seed": seed,
                   "teachers": names.teachers_tag(STUDENT["method"], TEACHER["arch"], encoding)}
    teacher_inputs = {"windows": f"results/{dataset}/windows.h5",
                      "images": grid.images_path(config, dataset, encoding)}
    pack = grid.pack_of(config, student_run)
    students = list(pack.runs) if pack else [student_run]
    student_inputs = grid.pack_inputs(config, pack) if pack else {
        runfiles.member_name(0, name): path for name, path in grid.student_inputs(config, student_run).items()}
    return {
        "teacher": {"role": "teacher", "workdir": str(workdir), "inputs": teacher_inputs,
                    "settings": grid.teacher_settings(config, teacher_run), "device": str(device),
                    "workflow_runs": [names.TEACHER_RUN.format(**teacher_run)]},
        "student": {"role": "students", "workdir": str(workdir), "inputs": student_inputs,
                    "settings": [grid.student_settings(config, run) for run in students],
                    "device": str(device), "workflow_runs": [names.STUDENT_RUN.format(**run) for run in students]},
    }


def row(check, device, passed, value, detail):
    result = "info" if passed is None else "pass" if passed else "FAIL"
    return {"check": check, "device": str(device), "result": result, "value": value, "detail": detail}


class Rows(list):
    """The table's rows, each printed and written to `out` (gpu_check.md) as it comes: a check cut
    short by a time limit keeps what it measured."""

    def __init__(self, out):
        super().__init__()
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        print(markdown([]), end="", flush=True)

    def append(self, item):
        super().append(item)
        print(markdown([item]).splitlines()[-1], flush=True)
        (self.out / "gpu_check.md").write_text(markdown(self))

    def __iadd__(self, items):
        for item in items:
            self.append(item)
        return self


def run_checks(args, device, workdir):
    rows = Rows(Path(args.out))
    properties = torch.cuda.get_device_properties(device) if device.type == "cuda" else None
    if properties is not None:
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info(device)
        rows.append(row("environment", device, None, properties.name,
                        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
                        f"{torch.backends.cudnn.version()}, {human_bytes(total)}, capability "
                        f"{properties.major}.{properties.minor}; this process's CUDA context "
                        f"{human_bytes(total - free)} (gafkd assumes {human_bytes(CUDA_CONTEXT_BYTES)})"))
    else:
        rows.append(row("environment", device, None, "CPU", f"torch {torch.__version__}, "
                        f"{os.cpu_count()} cores"))
    configfile = check_config(args, device, workdir)
    code, seconds = run_workflow(workdir, configfile, device, args.workflow_timeout)
    rows.append(row("workflow", device, code == 0, f"{seconds:.0f} s",
                    f"demo, {args.epochs} epochs, seeds {list(args.seeds)}, --resources gpu={GPU_SLOTS}, "
                    f"jobs_per_gpu {GPU_SLOTS}: exit {code}"))
    jobs = workflow_jobs(workdir)
    if jobs:
        on_device = sum(j["device"].startswith(device.type) for j in jobs)
        rows.append(row("workflow devices", device, on_device == len(jobs), f"{on_device}/{len(jobs)}",
                        f"training jobs on {device.type}; slots used: "
                        f"{', '.join(sorted({j['slot'] for j in jobs}))}; at most {most_at_once(jobs)} at once"))
        clashes = shared_slots(jobs)
        rows.append(row("workflow slots", device, not clashes, len(clashes),
                        "pairs of jobs holding one slot at once" + (f": {clashes[:2]}" if clashes else "")))
        walls = [j["wall_seconds"] for j in one_per_job(jobs)]
        rows.append(row("workflow job time", device, None, f"{statistics.median(walls):.1f} s",
                        f"median training wall time of {len(walls)} jobs training {len(jobs)} runs "
                        f"(max {max(walls):.1f} s)"))
        if device.type == "cuda":
            allocated = max(j["device_peak_bytes"] or 0 for j in jobs)
            reserved = max(j["device_reserved_peak_bytes"] or 0 for j in jobs)
            fit = properties.total_memory // (reserved + CUDA_CONTEXT_BYTES)
            rows.append(row("workflow memory", device, None, human_bytes(reserved),
                            f"largest peak: {human_bytes(allocated)} allocated, {human_bytes(reserved)} "
                            f"reserved; {fit} such jobs fit on this card beside their CUDA contexts"))
    if code != 0:
        return rows, jobs
    config = check_config_file(configfile)
    specs = run_specs(config, workdir, device)
    runs = workdir / "checks"
    for role, spec in specs.items():
        what = (f"{spec['workflow_runs'][0]}" if len(spec["workflow_runs"]) == 1 else
                f"the pack of {len(spec['workflow_runs'])} runs with {spec['workflow_runs'][0]}")
        for attempt in ("a", "b"):
            train_in_child({**spec, "out": str(runs / f"{role}-{attempt}")})
        same = [identical(member_dirs(runs / f"{role}-{x}", spec)) for x in ("a", "b")]
        rows.append(row(f"determinism {role}", device, all(same),
                        f"{max_weight_difference(member_dirs(runs / f'{role}-a', spec)):.3g}",
                        f"{what} again, twice: weights and history bit-identical to the workflow's "
                        f"run: {same}"))
        killed = {**spec, "out": str(runs / f"{role}-resumed")}
        first, _ = train_in_child({**killed, "kill_at_epoch": KILL_AT_EPOCH})
        resumed_from = all((a / "resume.pt").exists() for a, _ in member_dirs(runs / f"{role}-resumed", spec))
        second, _ = train_in_child(killed)
        pairs = member_dirs(runs / f"{role}-resumed", spec)
        ok = first == -signal.SIGKILL and resumed_from and second == 0 and identical(pairs)
        rows.append(row(f"resume {role}", device, ok,
                        f"{max_weight_difference(pairs):.3g}" if second == 0 else "-",
                        f"SIGKILL in epoch {KILL_AT_EPOCH} (exit {first}, resume.pt {resumed_from}), "
                        f"started again (exit {second}): bit-identical to the uninterrupted run"))
    batch = config["training"]["batch_size"]
    for role, spec in specs.items():
        for placement in ("host", "device"):
            train_in_child({**spec, "out": str(runs / f"{role}-{placement}")},
                           env={"GAFKD_DATA_PLACEMENT": placement})
        rates = {p: steps_per_second(runs / f"{role}-{p}" / "m0", batch) for p in ("device", "host")}
        same = identical(member_dirs(runs / f"{role}-host", spec, runs / f"{role}-device"))
        rows.append(row(f"placement {role}", device, same, f"{rates['host'] / rates['device']:.2f}x",
                        f"every split{' and similarity cache' if role == 'student' else ''} streamed "
                        f"from host memory vs resident: bit-identical; {rates['device']:.0f} vs "
                        f"{rates['host']:.0f} steps/s (epochs incl. evaluation)"))
    rows += precision_rows(args, specs, runs, device, config["training"]["precision"])
    rows += pack_rows(args, device)
    teacher = specs["teacher"]
    if device.type == "cuda":
        rows += graph_rows(specs, runs, device, batch)
        train_in_child({**with_training(teacher, precision="bf16"), "out": str(runs / "teacher-bf16")})
        ms = {k: 1000 / steps_per_second(runs / f"teacher-{k}" / "m0", batch) for k in ("a", "bf16")}
        accuracy = {k: metrics(runs / f"teacher-{k}" / "m0")["test_at_best_val"]["accuracy"] for k in ("a", "bf16")}
        rows.append(row("bf16", device, None, f"{ms['a'] / ms['bf16']:.2f}x",
                        f"teacher step (epochs incl. evaluation): {ms['a']:.2f} ms "
                        f"{teacher['settings']['training']['precision']}, "
                        f"{ms['bf16']:.2f} ms bf16; test accuracy {accuracy['a']:.4f} vs {accuracy['bf16']:.4f}"))
        for role, spec in specs.items():
            seconds = {}
            for where, target in (("cuda", device), ("cpu", "cpu")):
                _, seconds[where] = train_in_child({**spec, "device": str(target), "out": str(runs / f"{role}-{where}")},
                                                   env={"CUDA_VISIBLE_DEVICES": ""} if where == "cpu" else None)
            pairs = member_dirs(runs / f"{role}-cuda", spec, runs / f"{role}-cpu")
            gpu, cpu = metrics(pairs[0][0]), metrics(pairs[0][1])
            rows.append(row(f"cpu {role}", device, None, f"{max_weight_difference(pairs):.3g}",
                            f"{spec['workflow_runs'][0]}: test accuracy {gpu['test_at_best_val']['accuracy']:.4f} "
                            f"(GPU) vs {cpu['test_at_best_val']['accuracy']:.4f} (CPU); last train loss "
                            f"{last_train_loss(pairs[0][0]):.4f} vs {last_train_loss(pairs[0][1]):.4f}; "
                            f"{seconds['cuda']:.1f} s vs {seconds['cpu']:.1f} s for {len(pairs)} run(s); "
                            f"value: max weight difference"))
    return rows, jobs


def with_training(spec, **changes):
    """`spec` with `changes` to the training settings of each of its runs."""
    def changed(settings):
        return {**settings, "training": {**settings["training"], **changes}}
    settings = spec["settings"]
    return {**spec, "settings": changed(settings) if spec["role"] == "teacher" else list(map(changed, settings))}


def precision_rows(args, specs, runs, device, checked):
    """Each run trained twice more at each other training.precision of --precisions: the same bits
    both times (the config's own precision is the determinism check above)."""
    rows = []
    for precision in [p for p in args.precisions if p != checked]:
        for role, spec in specs.items():
            folders = [runs / f"{role}-{precision}-{attempt}" for attempt in ("a", "b")]
            for folder in folders:
                train_in_child({**with_training(spec, precision=precision), "out": str(folder)})
            pairs = member_dirs(folders[0], spec, folders[1])
            rows.append(row(f"determinism {role} {precision}", device, identical(pairs),
                            f"{max_weight_difference(pairs):.3g}",
                            f"trained twice with training.precision {precision}: weights and history "
                            f"bit-identical"))
    return rows


def graph_rows(specs, runs, device, batch):
    """Each run trained with training.cuda_graphs against the workflow's eager run: the same bits;
    steps/s of each (epochs incl. evaluation)."""
    rows = []
    for role, spec in specs.items():
        train_in_child({**with_training(spec, cuda_graphs=True), "out": str(runs / f"{role}-graphed")})
        pairs = member_dirs(runs / f"{role}-graphed", spec)
        used = [metrics(graphed).get("cuda_graphs", {}) for graphed, _ in pairs]
        rates = {k: steps_per_second(runs / f"{role}-{k}" / "m0", batch) for k in ("a", "graphed")}
        ok = identical(pairs) and all(u.get("used") for u in used)
        rows.append(row(f"graphs {role}", device, ok, f"{rates['graphed'] / rates['a']:.2f}x",
                        f"training.cuda_graphs (captures {used[0].get('captures')}, replayed steps "
                        f"{used[0].get('replayed_steps')}, else {used[0].get('why_not')}) vs eager: "
                        f"bit-identical to the workflow's run; {rates['graphed']:.0f} vs {rates['a']:.0f} "
                        f"steps/s (epochs incl. evaluation)"))
    return rows


def pack_rows(args, device):
    """Packed against solo student steps (benchmarks/student_pack.py, WRN16-1 on GENE shapes)."""
    packs = PACK_WIDTHS if device.type == "cuda" else (1, 8)
    out = Path(tempfile.mkdtemp()) / "student_pack.csv"
    command = [sys.executable, str(REPO / "benchmarks" / "student_pack.py"), "--device", str(device),
               "--archs", "wrn16-1", "--csv", str(out), "--packs", *map(str, packs)]
    run = subprocess.run(command + ([] if device.type == "cuda" else ["--quick"]), capture_output=True, text=True)
    if run.returncode != 0:
        return [row("pack steps", device, False, "-", run.stderr.strip().splitlines()[-1])]
    with open(out) as f:
        return [row(f"pack K={r['pack']}", device, None, f"{float(r['speedup_vs_solo']):.2f}x",
                    f"WRN16-1 students on 3x500 windows, batch 64: {r['ms_per_step']} ms per step of "
                    f"{r['pack']}, {r['student_steps_per_s']} student steps/s")
                for r in csv.DictReader(f)]


def last_train_loss(run_dir):
    return float(history_rows(run_dir)[-1]["train_loss"])


def markdown(rows):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "/") for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_outputs(out, rows, jobs, workdir):
    fields = list(COLUMNS) + ["run", "slot", "device_peak_bytes", "device_reserved_peak_bytes", "wall_seconds",
                              "started_at"]
    with open(out / "gpu_check.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        writer.writerows({"check": "workflow job", "device": j["device"], "result": "info",
                          "value": j["wall_seconds"], "detail": "", **j} for j in jobs)
    with tarfile.open(out / "gpu_check_logs.tar.gz", "w:gz") as tar:
        for path in sorted(workdir.rglob("*")):
            if path.is_file() and (path.suffix in (".log", ".json", ".csv", ".tsv", ".md")):
                tar.add(path, arcname=str(path.relative_to(workdir)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help=argparse.SUPPRESS)          # a child: one training run
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="benchmarks/results/gpu_check")
    parser.add_argument("--epochs", type=int, help="default: the demo's epochs on CUDA, 4 on the CPU")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the demo's on CUDA, 1 on the CPU")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS,
                        help="training.precision values whose runs are repeated for determinism "
                             "(default: all three on CUDA, the config's on the CPU, where all compute float32)")
    parser.add_argument("--workflow-timeout", type=int, default=480, help="seconds")
    parser.add_argument("--workdir", help="default: a temporary folder, removed afterwards")
    args = parser.parse_args(argv)
    if args.run:
        return run_child(json.loads(Path(args.run).read_text()))
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", 0 if device.index is None else device.index)
        torch.cuda.set_device(device)
    demo = yaml.safe_load((REPO / "config.yaml").read_text())
    args.epochs = args.epochs or (demo["training"]["epochs"] if device.type == "cuda" else 4)
    args.seeds = args.seeds or (demo["teachers"]["seeds"] if device.type == "cuda" else [1])
    training = {**training_defaults(), **demo["training"]}
    args.precisions = args.precisions or (PRECISIONS if device.type == "cuda" else [training["precision"]])
    use_numerics(training["precision"], training["deterministic"])     # the demo's, as its jobs set them
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gafkd-gpu-check-") as scratch:
        workdir = Path(args.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        rows, jobs = run_checks(args, device, workdir)
        rows.append(row("total", device, None, f"{time.perf_counter() - started:.0f} s",
                        f"numerics {numerics_record()}"))
        write_outputs(Path(args.out), rows, jobs, workdir)
    print(f"written to {args.out}/gpu_check.md, gpu_check.csv, gpu_check_logs.tar.gz")
    return 1 if any(r["result"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
