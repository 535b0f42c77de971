"""Projected wall time of the lab grid on this device, from steps timed in gafkd's engine.

    python benchmarks/grid_projection.py [--quick] [--device cpu|cuda] [--windows N]
                                         [--config PATH] [--precision fp32|tf32|bf16]
                                         [--csv PATH] [--by-job PATH]

The grid is read from the config (default configs/gene14_w500.yaml, its first dataset, one
fold): every teacher architecture x modality x seed, one teacher-outputs pass per teacher, and
the student runs as the workflow expands them (scratch once per seed; per teacher architecture
kd-gaf, kd-sig and the kd2 family over the alphas), each for training.epochs epochs. A scratch
student that is the same run as a signal teacher of the grid (gafkd.distill.reuse: students.arch in
teachers.archs, its seed in teachers.seeds, students.reuse_teacher_runs on) is not trained: the
workflow derives it from the teacher's run, so it is counted once, as the teacher, and listed
as a `reused` row of zero cost.

Seconds per epoch of a job = training steps per epoch x seconds per step + the validation and
test windows x seconds per predicted window (the engine evaluates both after every epoch). The
windows per split come from --windows (default 32,000, GENE-sized) and the config's split
fractions. A step is timed inside gafkd.train.engine.train itself: its loss function is wrapped to
take a timestamp every few calls after a warm-up, so a timed step is exactly the engine's
(forward, loss, backward, SGD update, bookkeeping) with the config's batch size and numerics
(training.precision, or --precision, and training.deterministic: gafkd.train.numerics.use_numerics; the
CPU computes in float32 whatever the precision); median over the repeats. Students use
gafkd.distill.students.DistillationLoss over cached teacher logits; kd2-anneal-sp students, timed for
each teacher architecture, gather the teachers' Gram blocks from their similarity caches
(students.kd.sp_source: cache, held in memory in the forms the builder picks for the fold's
training windows) or run both teachers at every step (`online`). Evaluation and teacher
outputs are timed with gafkd.train.engine.predict. A similarity cache's build (one per teacher an SP
student learns from) = the teacher forward per window x training windows x the builder's
teacher passes + its Gram products at the measured FLOP rate + its bytes at the measured HDF5
write rate (benchmarks/sp_cache.py measures builds whole).

Packs (students.pack, teachers.pack; gafkd.grid.student_packs, teacher_packs): the
`hours_packed` column trains the students and the signal teachers as the workflow packs them:
a pack's engine step (gafkd.train.packed, every member's batch, its KD or SP terms) and its
evaluation are timed for each pack width of the grid, and a pack costs its epochs once for all
its members (a pack across teacher architectures is charged to each by its share of members);
image teachers cost the same in both columns.
--by-job writes one row per kind of job (config, precision, job, hours: teachers,
teacher_outputs, similarity, students as packed) and their total (job_hours).

Inputs are random tensors with the dataset's per-sample shapes (3 x window signals, 3 x size x
size float16 images). The resident training split holds only the batches that are timed, not
a 32,000-window set: a step's cost does not depend on the size of the tensor it indexes.
Not counted: building windows.h5 and the image cache, loading them at the start of each job,
resume checkpoints every few epochs, the report. Jobs run one at a time on this device.
"""

import argparse
import contextlib
import math
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from gafkd.train.defaults import default_train_settings  # noqa: E402
from gafkd.train.engine import cross_entropy, predict  # noqa: E402
from gafkd import grid  # noqa: E402
from gafkd import names  # noqa: E402
from gafkd.config import check_config_file, series_length  # noqa: E402
from gafkd.train.numerics import PRECISIONS, use_numerics  # noqa: E402
from gafkd.errors import ConfigError  # noqa: E402
from gafkd.distill.losses.multi_teacher import cross_entropy as members_cross_entropy  # noqa: E402
from gafkd.train.models import build_model  # noqa: E402
from gafkd.train.packed import pack_models  # noqa: E402
from gafkd.methods import method  # noqa: E402
from gafkd.data.readers import geneactiv, pamap2  # noqa: E402
from gafkd.distill.cache_layout import cache_bytes, choose_forms, teacher_passes  # noqa: E402
from gafkd.distill.similarity_cache import SimilarityCache  # noqa: E402
from gafkd.distill.students import CachedTeachers, DistillationLoss, OnlineTeachers  # noqa: E402
from gafkd.distill.teacher_outputs import Teacher  # noqa: E402
from harness import median_seconds, print_table, standardization, step_seconds, write_csv  # noqa: E402
from sp_cache import hdf5_write_rate, teacher_outputs_fn  # noqa: E402



@dataclass
class Timing:
    warmup: int
    steps: int
    repeats: int
    eval_windows: int

    def train_windows(self, batch):
        return (self.warmup + self.steps * self.repeats + 1) * batch


def predict_seconds(model, x, batch_size, device, bf16, repeats):
    """Median seconds per window of gafkd.train.engine.predict."""
    model.to(device)
    return median_seconds(lambda: predict(model, lambda b: b.float(), x, batch_size, device, bf16),
                          repeats, warmup=1, device=device) / len(x)


def dataset_shape(spec):
    """(channels, classes, window length) of a validated dataset spec."""
    if spec["source"] == "pamap2":
        channels = len(pamap2.resolve_channels(spec["channels"]))
        classes = spec["class_map"] or pamap2.default_class_map(spec["protocol"])
    elif spec["source"] == "geneactiv_mat":
        channels, classes = len(spec["channels"] or geneactiv.DEFAULT_CHANNELS), spec["class_map"]
    else:
        raise SystemExit(f"the projection needs a GENEActiv or PAMAP2 dataset, not {spec['source']}")
    if not classes:
        raise SystemExit("the projection needs the dataset's class_map")
    return channels, len(classes), series_length(spec)


def student_runs(config):
    """{(group, teacher arch or None): runs per seed and fold} and {group: methods}, from the
    workflow's own expansion of the student grid (gafkd.grid.student_cells)."""
    runs, methods = Counter(), {}
    for name, tag, _ in grid.student_cells(config):
        record = method(name)
        group = "sp" if record.similarity else "cached" if record.teachers else "scratch"
        if name not in methods.setdefault(group, []):
            methods[group].append(name)
        runs[group, names.teacher_arch(tag) or None] += 1
    return runs, methods


def packs_by_group(config):
    """{(group, teacher arch or None): {pack width: packs per fold}} of the workflow's own packs
    (gafkd.grid.student_packs), grouped as student_runs groups runs. A pack whose members learn
    from teachers of several architectures (gafkd.methods.pack_group) counts in each by its share
    of members, so that each (group, arch) is charged for the members it has."""
    dataset = next(iter(config["datasets"]))
    found = {}
    for pack in grid.student_packs(config, {dataset: ["fold0"]}):
        for run in pack.runs:
            record = method(run["method"])
            group = "sp" if record.similarity else "cached" if record.teachers else "scratch"
            widths = found.setdefault((group, names.teacher_arch(run["teachers"]) or None), Counter())
            widths[len(pack.runs)] += 1 / len(pack.runs)
    return found


def reused_scratch_seeds(config):
    """Student seeds whose scratch run is a signal teacher's run of the grid, decided as the
    workflow decides it (gafkd.grid.same_run_teacher_dir)."""
    students = config["students"]
    if "scratch" not in students["methods"]:
        return []
    dataset = next(iter(config["datasets"]))
    return [seed for seed in students["seeds"] if grid.same_run_teacher_dir(config, {
        "dataset": dataset, "fold": "fold0", "arch": students["arch"], "method": "scratch",
        "teachers": "none", "alpha": "0", "seed": str(seed)}) is not None]


def default_timing(device, quick=False):
    """The steps and windows timed per point: a smoke run's, a GPU's or a CPU's."""
    if quick:
        return Timing(warmup=1, steps=1, repeats=2, eval_windows=32)
    if device.type == "cuda":
        return Timing(warmup=5, steps=20, repeats=5, eval_windows=2048)
    return Timing(warmup=1, steps=2, repeats=3, eval_windows=128)


def project(config, device, precision=None, timing=None, windows=None, quick=False, folder=None):
    """The grid of a checked `config` projected on `device` at `precision` (default the config's
    training.precision): (rows, projection), the rows main writes and a namespace of the timing
    model: the shapes it times, and pack_s_per_epoch(group, members, source) for any pack width,
    which trains in `folder` (default a temporary folder, removed on return)."""
    dataset = next(iter(config["datasets"].values()))
    teachers, students, training = config["teachers"], config["students"], config["training"]
    precision = precision or training["precision"]
    use_numerics(precision, training["deterministic"])     # the workflow's numerics (gafkd.train.devices)
    channels, classes, window = dataset_shape(dataset)
    size, batch = config["images"]["size"], training["batch_size"]
    if quick:
        windows, window, size, batch = windows or 256, 100, 16, 16
    timing = timing or default_timing(device, quick)
    windows = windows or 32000
    split = dataset.get("split", {})
    n_eval = round(windows * split.get("val_fraction", 0)) + round(windows * split.get("test_fraction", 0))
    n_train = windows - n_eval
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = training["epochs"]
    settings = default_train_settings(epochs=1, batch_size=batch, precision=precision,
                                      deterministic=training["deterministic"])
    kd = students["kd"]
    seeds = len(students["seeds"])
    reused = len(reused_scratch_seeds(config))

    torch.manual_seed(0)
    n = timing.train_windows(batch)
    inputs = {"sig": torch.randn(n, channels, window, device=device),
              "gaf": torch.rand(n, channels, size, size, device=device).half()}
    y = torch.randint(0, classes, (n,), device=device)

    def model(arch, modality):
        return build_model(arch, channels, classes, 1 if modality == "sig" else 2)

    def predicted(net, modality, bf16):
        return predict_seconds(net, inputs[modality][:timing.eval_windows], settings.eval_batch_size,
                               device, bf16, timing.repeats)

    rows = []

    def add(job, arch, modality, methods, s_per_epoch, runs, job_epochs, packed_hours=None):
        hours = round(runs * job_epochs * s_per_epoch / 3600, 6)
        rows.append({"job": job, "arch": arch, "modality": modality, "methods": methods,
                     "s_per_epoch": round(s_per_epoch, 6), "runs": runs, "epochs": job_epochs,
                     "hours": hours, "hours_packed": hours if packed_hours is None else round(packed_hours, 6)})

    def teacher_packed_hours(arch, modality, solo_s_per_epoch):
        """Hours of the teachers of `arch` and `modality` as the workflow trains them: signal
        teachers in packs of their seeds (gafkd.grid.teacher_packs), the others alone."""
        widths = Counter(len(pack.runs) for pack in grid.teacher_packs(config, {next(iter(config["datasets"])): ["fold0"]})
                         if modality == names.SIGNAL and pack.runs[0]["arch"] == arch)
        hours, packed = 0.0, 0
        for members, count in widths.items():
            net = pack_models([model(arch, modality) for _ in range(members)])
            net.group_outputs = False                   # as gafkd.distill.teachers sets it
            step = step_seconds(net, inputs[modality], y, lambda logits, groups, targets, *index:
                                members_cross_entropy(logits, targets), settings, device, timing, folder, classes)
            evaluation = predict_seconds(net, inputs[modality][:timing.eval_windows],
                                         max(1, settings.eval_batch_size // members), device, settings.bf16,
                                         timing.repeats)
            hours += count * epochs * (steps_per_epoch * step + n_eval * evaluation) / 3600
            packed += count * members
        return hours + (len(teachers["seeds"]) - packed) * epochs * solo_s_per_epoch / 3600

    with tempfile.TemporaryDirectory() if folder is None else contextlib.nullcontext(folder) as tmp:
        folder = Path(tmp)
        forward = {}
        product = torch.randn(batch, 8192, device=device)
        flop_rate = 2 * batch * batch * 8192 / median_seconds(lambda: product @ product.t(), timing.repeats,
                                                              warmup=1, device=device)
        write_rate = hdf5_write_rate(folder / "write.h5", 256 if quick else 2048)
        for modality in teachers["modalities"]:
            for arch in teachers["archs"]:
                net = model(arch, modality)
                step = step_seconds(net, inputs[modality], y, cross_entropy, settings, device, timing, folder)
                evaluation = predicted(net, modality, settings.bf16)
                outputs = evaluation if device.type == "cpu" or not settings.bf16 else predicted(net, modality, False)
                forward[arch, modality] = outputs
                add("teacher", arch, modality, "-", steps_per_epoch * step + n_eval * evaluation,
                    len(teachers["seeds"]), epochs,
                    teacher_packed_hours(arch, modality, steps_per_epoch * step + n_eval * evaluation))
                add("outputs", arch, modality, "-", windows * outputs, len(teachers["seeds"]), 1)

        runs, methods = student_runs(config)
        if reused == seeds:         # every scratch student is a teacher's run: none to time
            runs.pop(("scratch", None), None)
            methods.pop("scratch", None)
        evaluation = predicted(model(students["arch"], "sig"), "sig", settings.bf16)
        logits = {m: torch.randn(n, classes, device=device) for m in ("gaf", "sig")}
        alpha = students["alphas"][len(students["alphas"]) // 2]

        def student_step(loss, members=1):
            net = model(students["arch"], "sig")
            if members > 1:
                net = pack_models([model(students["arch"], "sig") for _ in range(members)])
                net.group_outputs = loss.sp_teachers is not None        # as gafkd.distill.students sets it
            return step_seconds(net, inputs["sig"], y, loss, settings, device, timing, folder, classes)

        def loss_of(group, members, source=None):
            """The group's loss for one run, or for a pack of `members` (each its own α and seed)."""
            name = {"scratch": "scratch", "cached": "kd2", "sp": "kd2-anneal-sp"}[group]
            if members == 1:
                return DistillationLoss(name, alpha, kd, logits, source)
            return DistillationLoss(name, [alpha] * members, kd,
                                    {m: t.expand(members, *t.shape) for m, t in logits.items()},
                                    None if source is None else [source] * members,
                                    batch_orders=[k % seeds for k in range(members)])

        packs, pack_epoch = packs_by_group(config), {}

        def pack_s_per_epoch(group, members, source):
            """Seconds per epoch of a pack (SP packs per teacher architecture, the others once)."""
            key = (group, members, id(source))
            if key not in pack_epoch:
                net = pack_models([model(students["arch"], "sig") for _ in range(members)])
                pack_eval = predict_seconds(net, inputs["sig"][:timing.eval_windows],
                                            max(1, settings.eval_batch_size // members), device,
                                            settings.bf16, timing.repeats)
                pack_epoch[key] = (steps_per_epoch * student_step(loss_of(group, members, source), members)
                                   + n_eval * pack_eval)
            return pack_epoch[key]

        def packed_hours(group, arch, trained, solo_s_per_epoch, source=None):
            """Hours of the group's runs trained as the workflow packs them (solo where not)."""
            hours, packed = 0.0, 0
            for members, count in sorted(packs.get((group, arch), {}).items()):
                hours += count * epochs * pack_s_per_epoch(group, members, source) / 3600
                packed += count * members
            return hours + (trained - round(packed)) * epochs * solo_s_per_epoch / 3600

        seconds = {group: student_step(loss_of(group, 1)) for group in ("scratch", "cached") if group in methods}
        for (group, arch), count in runs.items():
            if group == "sp":
                frozen = {m: Teacher(model(arch, m).eval().requires_grad_(False), *standardization(inputs[m]),
                                     m, arch, []).to(device) for m in ("gaf", "sig")}
                if kd["sp_source"] == "online":
                    source = OnlineTeachers({m: (frozen[m], inputs[m]) for m in ("gaf", "sig")}, device)
                else:
                    caches = {}
                    for m, teacher in frozen.items():
                        outputs = teacher_outputs_fn(teacher.model, inputs[m])(0, n)
                        sizes = [o.shape[1] for o in outputs]
                        forms = choose_forms(sizes, n_train)
                        caches[m] = SimilarityCache.from_outputs(outputs, device, forms)
                        if (arch, m) not in forward:
                            forward[arch, m] = predicted(teacher.model, m, False)
                        build = (forward[arch, m] * n_train * teacher_passes(sizes, forms, n_train)
                                 + sum(2 * n_train**2 * d for d, f in zip(sizes, forms) if f == "gram")
                                 / flop_rate + cache_bytes(forms, sizes, n_train) / write_rate)
                        add("similarity", arch, m, "-", build, len(teachers["seeds"]), 1)
                    source = CachedTeachers(caches)
                step = student_step(loss_of("sp", 1, source))
            else:
                source, step = None, seconds[group]
            label = "/".join(methods[group]) + ("" if arch is None else f" (teachers {arch})")
            trained = count * (seeds - reused if group == "scratch" else seeds)
            per_epoch = steps_per_epoch * step + n_eval * evaluation
            add("student", students["arch"], "sig", label, per_epoch, trained, epochs,
                packed_hours(group, arch, trained, per_epoch, source))
    if reused:
        add("reused", students["arch"], "sig", "scratch (= signal teacher's run)", 0.0, reused, 0)

    total = round(sum(r["hours"] for r in rows), 6)
    total_packed = round(sum(r["hours_packed"] for r in rows), 6)
    rows.append({"job": "total", "arch": "-", "modality": "-", "methods": "-", "s_per_epoch": "",
                 "runs": sum(r["runs"] for r in rows if r["job"] != "reused"), "epochs": "", "hours": total,
                 "hours_packed": total_packed})
    projection = SimpleNamespace(windows=windows, n_train=n_train, n_eval=n_eval, batch=batch, window=window,
                                 size=size, channels=channels, classes=classes, steps_per_epoch=steps_per_epoch,
                                 settings=settings, timing=timing, reused=reused, pack_s_per_epoch=pack_s_per_epoch)
    return rows, projection


JOBS = {"teachers": "teacher", "teacher_outputs": "outputs", "similarity": "similarity", "students": "student"}


def job_hours(rows):
    """{job: hours} of project's rows per kind of job (students as the workflow packs them, the
    hours_packed column) and "total", their sum."""
    hours = {job: round(sum(r["hours_packed"] for r in rows if r["job"] == kind), 6) for job, kind in JOBS.items()}
    return {**hours, "total": round(sum(hours.values()), 6)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv", default="benchmarks/results/grid_projection.csv")
    parser.add_argument("--by-job", metavar="PATH", help="also write hours per kind of job (job_hours)")
    parser.add_argument("--config", default=str(REPO / "configs/gene14_w500.yaml"))
    parser.add_argument("--precision", choices=PRECISIONS, help="default: the config's training.precision")
    parser.add_argument("--windows", type=int, help="windows of the dataset (default 32000, quick 256)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    try:
        config = check_config_file(args.config)     # every check, and the defaults, of the workflow
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    rows, model = project(config, device, args.precision, windows=args.windows, quick=args.quick)
    students, kd, reused = config["students"], config["students"]["kd"], model.reused
    total, total_packed = rows[-1]["hours"], rows[-1]["hours_packed"]
    print(f"{model.windows} windows ({model.n_train} train, {model.n_eval} val+test), batch {model.batch}: "
          f"{model.steps_per_epoch} steps/epoch; window {model.window}, images {model.size}x{model.size}; "
          f"device {device}, precision {model.settings.precision}")
    print_table(rows, {"job": "job", "arch": "arch", "modality": "modality", "s_per_epoch": "s/epoch",
                       "runs": "runs", "epochs": "epochs", "hours": "hours", "hours_packed": "packed",
                       "methods": "methods"})
    by_job = {job: sum(r["hours"] for r in rows if r["job"] == job)
              for job in ("teacher", "outputs", "similarity", "student")}
    print(f"total {total:.2f} h on {device}, one job at a time (teachers {by_job['teacher']:.2f} h, "
          f"teacher outputs {by_job['outputs']:.2f} h, similarity caches {by_job['similarity']:.2f} h, "
          f"students {by_job['student']:.2f} h; SP teachers: {kd['sp_source']})")
    packed_students = sum(r["hours_packed"] for r in rows if r["job"] == "student")
    packed_teachers = sum(r["hours_packed"] for r in rows if r["job"] == "teacher")
    print(f"with students.pack {students['pack']} and teachers.pack {config['teachers']['pack']}: total "
          f"{total_packed:.2f} h (students {packed_students:.2f} h, teachers {packed_teachers:.2f} h, one "
          f"pack job at a time)")
    if reused:
        print(f"{reused} scratch student run(s) per fold are the signal teacher run(s) of {students['arch']} "
              f"and the same seed: trained once, as the teacher, and reused at no cost "
              f"(students.reuse_teacher_runs)")
    write_csv(rows, args.csv)
    if args.by_job:
        name = Path(args.config).stem
        write_csv([{"config": name, "precision": model.settings.precision, "job": job, "hours": hours}
                   for job, hours in job_hours(rows).items()], args.by_job)
    return rows


if __name__ == "__main__":
    main()
