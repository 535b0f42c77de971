"""Per-job overhead of a finished run: how long each job takes before its training starts.

    python benchmarks/job_overhead.py [RESULTS] [--csv PATH]

Reads what a run leaves under RESULTS (default results/): every job's benchmark file
(<dataset>/benchmarks/**.tsv, Snakemake's `s`: the job's wall seconds), its log (the same path
under logs/, .log: gafkd.logs' timestamped lines) and, for training jobs, its metrics.json
(`started_at`: when the training loop started; `wall_seconds`: the loop's time). A job's start
is the benchmark file's modification time (written when the job ends) less `s`. Per job:

    to first log line   job start -> its first log line: the interpreter, the job script's
                        imports and its device check, before any data is read
    to training         job start -> metrics started_at (a pack, whose runs have no benchmark
                        file of their own: its log's line that training starts): the above,
                        plus reading the inputs and building the model(s) (the per-job overhead)
    to epoch 1 line     job start -> the log's "epoch 1/" line (the first epoch's end)
    not training        `s` - wall_seconds: every second of the job outside the training loop

Medians per rule (train_teacher, train_student, and the jobs without training by their whole
`s`). A student derived from its teacher's run without training (gafkd.distill.reuse) has no training
of its own and is counted apart. Log times are read in the machine's local time zone, as
gafkd.logs writes them.
"""

import argparse
import json
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import print_table, write_csv  # noqa: E402

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
# What gafkd.distill.teachers and .students log once a job's data and models are ready, just
# before training: "...: 32 train windows; ..." / "...: 24 train, 8 val, 40 test windows, ..."
TRAINING_STARTS = re.compile(r"gafkd\.distill\.(teachers|students): .*: \d+ train[ ,]")
FIGURES = ("to_log_s", "to_training_s", "to_epoch1_s", "not_training_s", "train_s", "job_s")


def rule_of(tsv):
    """The workflow rule that writes a benchmark file, from its path."""
    parts = tsv.parts
    if parts[-2] == "benchmarks":
        return "build_windows" if tsv.name == "windows.tsv" else "build_images"
    if parts[-3] == "students":
        return "train_student"
    for suffix, rule in (("-outputs.tsv", "teacher_outputs"), ("-similarity.tsv", "teacher_similarity")):
        if tsv.name.endswith(suffix):
            return rule
    return "train_teacher"


def metrics_files(dataset_dir):
    """{benchmark file: metrics.json} of the training runs under one dataset's results."""
    found = {}
    bench = dataset_dir / "benchmarks"
    for metrics in dataset_dir.glob("*/teachers/*/*/seed*/metrics.json"):
        fold, _, modality, arch, seed = metrics.relative_to(dataset_dir).parts[:5]
        found[bench / "teachers" / fold / f"{modality}-{arch}-{seed}.tsv"] = metrics
    for metrics in dataset_dir.glob("*/students/*/*/*/alpha*/seed*/metrics.json"):
        fold, _, arch, method, teachers, alpha, seed = metrics.relative_to(dataset_dir).parts[:7]
        found[bench / "students" / fold / f"{arch}-{method}-{teachers}-{alpha}-{seed}.tsv"] = metrics
    return found


def log_times(log):
    """(time of the first log line, of the line a training job logs as its training starts, of
    the 'epoch 1/' line), as Unix times; None where the log has no such line."""
    first = training = epoch1 = None
    if not log.exists():
        return None, None, None
    for line in log.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        first = first if first is not None else when
        if training is None and TRAINING_STARTS.search(line):
            training = when
        if " epoch 1/" in line:
            epoch1 = when
            break
    return first, training, epoch1


def job_record(tsv, metrics):
    """One job's timings (seconds; None where the job has no such moment)."""
    lines = tsv.read_text().splitlines()
    seconds = float(lines[-1].split("\t")[0])        # the last repeat's
    start = tsv.stat().st_mtime - seconds
    log = Path(str(tsv.with_suffix(".log")).replace("/benchmarks/", "/logs/", 1))
    first, training, epoch1 = log_times(log)
    record = {"rule": rule_of(tsv), "job": str(tsv), "job_s": seconds,
              "to_log_s": first - start if first is not None else None,
              "to_epoch1_s": epoch1 - start if epoch1 is not None else None,
              # a pack's runs have no benchmark file of their own: its log says when it trains
              "to_training_s": training - start if training is not None and metrics is None else None,
              "not_training_s": None, "train_s": None}
    if metrics is not None:
        info = json.loads(metrics.read_text())
        began = datetime.fromisoformat(info["started_at"]).timestamp()
        if began >= start - 1:          # trained in this job, not derived from another run
            record.update(to_training_s=began - start, train_s=info["wall_seconds"],
                          not_training_s=seconds - info["wall_seconds"])
        else:
            record["rule"] += " (derived)"
    return record


def jobs(results):
    records = []
    for dataset_dir in sorted(p.parent for p in Path(results).glob("*/benchmarks")):
        metrics = metrics_files(dataset_dir)
        for tsv in sorted((dataset_dir / "benchmarks").rglob("*.tsv")):
            records.append(job_record(tsv, metrics.get(tsv)))
    return records


def summary(records):
    """Per rule (and all training jobs together): job count and the median of every figure."""
    groups = {}
    for record in records:
        groups.setdefault(record["rule"], []).append(record)
    training = [r for r in records if r["train_s"] is not None]
    if training:
        groups["all training jobs"] = training
    rows = []
    for rule, members in groups.items():
        row = {"rule": rule, "jobs": len(members)}
        for key in FIGURES:
            values = [r[key] for r in members if r[key] is not None]
            row[key] = round(statistics.median(values), 2) if values else ""
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results")
    parser.add_argument("--csv", default="benchmarks/results/job_overhead.csv")
    args = parser.parse_args(argv)
    records = jobs(args.results)
    if not records:
        parser.error(f"no benchmark files under {args.results}/*/benchmarks: run the workflow first")
    rows = summary(records)
    print(f"{len(records)} jobs under {args.results}; medians in seconds")
    print_table(rows, {"rule": "rule", "jobs": "jobs", "to_log_s": "to first log line",
                       "to_training_s": "to training", "to_epoch1_s": "to epoch 1 line",
                       "not_training_s": "not training", "train_s": "training", "job_s": "job"})
    write_csv(rows, args.csv)
    return rows


if __name__ == "__main__":
    main()
