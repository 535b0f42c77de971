"""The job-level benchmarks: the images job runs on a tiny size and writes a consistent CSV; the
per-job overhead is read back right from a finished run's files."""
import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import job_overhead  # noqa: E402

STAGES = ["read windows", "encode", "float16", "write", "fingerprint", "fsync", "other"]


def test_images_job_benchmark_runs(tmp_path):
    out = tmp_path / "images_job.csv"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/images_job.py"), "--quick", "--dir",
                          str(tmp_path), "--csv", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    stages = {r["name"]: r for r in rows if r["table"] == "stage"}
    assert list(stages) == STAGES + ["total", "write + fsync"]
    total = float(stages["total"]["seconds"])
    assert total > 0
    assert sum(float(stages[s]["seconds"]) for s in STAGES) == pytest.approx(total, abs=0.01)
    assert sum(float(stages[s]["share"]) for s in STAGES) == pytest.approx(1, abs=0.01)
    assert all(float(stages[s]["mb_per_s"]) > 0 for s in STAGES if s != "other")
    disk = {r["name"]: r for r in rows if r["table"] == "disk"}
    assert list(disk) == ["disk: os.write, buffered", "disk: os.write + fsync"]
    assert all(float(r["mb_per_s"]) > 0 for r in disk.values())
    layouts = [r for r in rows if r["table"] == "layout"]
    # 300 windows of 3 x 16 x 16 float16: the default ~1 MiB chunk holds them all; 8 per chunk too
    assert [(int(r["chunk_rows"]), r["name"].endswith("(build_images)")) for r in layouts] == [
        (300, True), (8, False)]
    assert [float(r["chunk_mb"]) for r in layouts] == [round(n * 3 * 16 * 16 * 2 / 1e6, 3) for n in (300, 8)]
    assert all(float(r[k]) > 0 for r in layouts for k in ("write_s", "read_warm_s", "read_cold_s"))
    assert all(float(r["output_mb"]) == 0.5 for r in rows)
    assert "write + fsync" in run.stdout and "read warm s" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images_job.csv"]   # temporary files gone


def local_log_time(t):
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]


def finished_job(root, bench, log, seconds, end, log_lines=(), metrics=None):
    """Files a job leaves: benchmark (modified at `end`), log lines [(time, text)], metrics.json."""
    tsv = root / bench
    tsv.parent.mkdir(parents=True, exist_ok=True)
    tsv.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:00\t100\n")
    os.utime(tsv, (end, end))
    path = root / log
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("=== attempt 1: started ... ===\n" + "".join(
        f"{local_log_time(t)} INFO {text if text.startswith('gafkd.') else 'gafkd.x: ' + text}\n"
        for t, text in log_lines))
    if metrics:
        run_dir, started, wall = metrics
        (root / run_dir).mkdir(parents=True, exist_ok=True)
        (root / run_dir / "metrics.json").write_text(json.dumps({
            "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "wall_seconds": wall}))


def test_job_overhead_from_a_finished_run(tmp_path):
    root, t = tmp_path / "results", 1_800_000_000.0
    finished_job(root, "demo/benchmarks/windows.tsv", "demo/logs/windows.log", 3.0, t + 3,
                 [(t + 1.5, "windows")])
    finished_job(root, "demo/benchmarks/teachers/fold0/sig-wrn16-1-seed1.tsv",
                 "demo/logs/teachers/fold0/sig-wrn16-1-seed1.log", 10.0, t + 10,
                 [(t + 2.0, "device"), (t + 6.5, "epoch 1/2 lr 0.05"), (t + 8.0, "epoch 2/2")],
                 ("demo/fold0/teachers/sig/wrn16-1/seed1", t + 4.0, 5.0))
    finished_job(root, "demo/benchmarks/teachers/fold0/sig-wrn16-1-seed1-outputs.tsv",
                 "demo/logs/teachers/fold0/sig-wrn16-1-seed1-outputs.log", 2.0, t + 12,
                 [(t + 11.0, "outputs")])
    student = "wrn16-1-kd2-anneal-sp-gasf-wrn16-1+sig-wrn16-1-alpha0.5-seed1"
    finished_job(root, f"demo/benchmarks/students/fold0/{student}.tsv",
                 f"demo/logs/students/fold0/{student}.log", 8.0, t + 20,
                 [(t + 14.0, "device"), (t + 16.25, "epoch 1/2 lr 0.05")],
                 ("demo/fold0/students/wrn16-1/kd2-anneal-sp/gasf-wrn16-1+sig-wrn16-1/alpha0.5/seed1",
                  t + 15.0, 3.0))
    # a scratch student derived from the teacher's run: its metrics are the teacher's
    finished_job(root, "demo/benchmarks/students/fold0/wrn16-1-scratch-none-alpha0-seed1.tsv",
                 "demo/logs/students/fold0/wrn16-1-scratch-none-alpha0-seed1.log", 1.0, t + 21,
                 [(t + 20.5, "derived")],
                 ("demo/fold0/students/wrn16-1/scratch/none/alpha0/seed1", t + 4.0, 5.0))
    # a pack: no run of its own matches its benchmark file; its log says when it trains
    finished_job(root, "demo/benchmarks/students/fold0/wrn16-1-kd-pack0.tsv",
                 "demo/logs/students/fold0/wrn16-1-kd-pack0.log", 6.0, t + 30,
                 [(t + 25.0, "device"),
                  (t + 26.0, "gafkd.distill.students: student wrn16-1 on demo/fold0: 32 train windows; "
                             "kd-gaf, α 1, seed 1; kd-sig, α 0, seed 1 (a pack of 2)"),
                  (t + 27.0, "epoch 1/2 lr 0.05")])
    out = tmp_path / "overhead.csv"
    rows = {r["rule"]: r for r in job_overhead.main([str(root), "--csv", str(out)])}
    assert set(rows) == {"build_windows", "train_teacher", "teacher_outputs", "train_student",
                         "train_student (derived)", "all training jobs"}
    assert rows["build_windows"]["to_log_s"] == 1.5 and rows["build_windows"]["to_training_s"] == ""
    teacher = rows["train_teacher"]
    assert (teacher["to_log_s"], teacher["to_training_s"], teacher["to_epoch1_s"], teacher["not_training_s"],
            teacher["train_s"], teacher["job_s"]) == (2.0, 4.0, 6.5, 5.0, 5.0, 10.0)
    assert rows["teacher_outputs"]["to_log_s"] == 1.0 and rows["teacher_outputs"]["job_s"] == 2.0
    student = rows["train_student"]           # the solo run (3.0, 4.25) and the pack (2.0, 3.0)
    assert (student["jobs"], student["to_training_s"], student["to_epoch1_s"]) == (2, 2.5, 3.62)    # rounded to 2 places
    derived = rows["train_student (derived)"]
    assert derived["jobs"] == 1 and derived["to_training_s"] == "" and derived["job_s"] == 1.0
    both = rows["all training jobs"]
    assert (both["jobs"], both["to_training_s"], both["not_training_s"]) == (2, 3.5, 5.0)
    assert [r["rule"] for r in csv.DictReader(out.open())] == list(rows)


def test_job_overhead_without_a_run_says_so(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/job_overhead.py"), str(tmp_path),
                          "--csv", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert run.returncode == 2 and "run the workflow first" in run.stderr
