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


def test_gaf_benchmark_runs(tmp_path):
    out = tmp_path / "gaf.csv"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/gaf.py"), "--quick", "--csv", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = {r["method"]: r for r in csv.DictReader(out.open())}
    assert list(rows) == ["pyts per window", "pyts batch", "gafkd", "gafkd, new array", "write-bound limit"]
    limit = float(rows["write-bound limit"]["series_per_s"])
    for row in rows.values():
        assert float(row["series_per_s"]) > 0
        assert abs(float(row["fraction_of_write_bound"]) - float(row["series_per_s"]) / limit) < 1e-2
    diff = float(run.stdout.split("max abs diff ")[1].split()[0])
    assert diff < 1e-5
