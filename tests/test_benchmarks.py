"""Benchmarks are not timed tests: this only checks that each script runs on a tiny size."""
import csv
import subprocess
import sys

from conftest import REPO


def test_student_step_benchmark_runs(tmp_path):
    out = tmp_path / "student_step.csv"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/student_step.py"), "--quick",
                          "--device", "cpu", "--csv", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["step"] for r in rows] == ["cached", "online", "online+SP"]
    assert all(float(r["samples_per_s"]) > 0 for r in rows)
    assert "cached is x faster" in run.stdout
