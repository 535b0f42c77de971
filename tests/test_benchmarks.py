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
    assert [r["step"] for r in rows] == ["cached", "online", "SP online", "SP cache"]
    assert all(float(r["samples_per_s"]) > 0 for r in rows)
    assert all(float(r["x_cached_step"]) == round(float(r["ms_per_step"]) / float(rows[0]["ms_per_step"]), 2)
               for r in rows)
    assert float(rows[0]["sp_loss_rel_diff"]) < 1e-4          # the cache gives the online SP loss
    assert "SP step with the cache is" in run.stdout


def test_gaf_benchmark_runs(tmp_path):
    out = tmp_path / "gaf.csv"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/gaf.py"), "--quick", "--csv", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = {r["method"]: r for r in csv.DictReader(out.open())}
    assert list(rows) == ["pyts per window", "pyts batch", "gafkd", "gafkd, new array", "gafkd GADF",
                          "gafkd Q-GASF", "gafkd Q-GADF", "gafkd MTF", "pyts MTF batch", "write-bound limit"]
    limit = float(rows["write-bound limit"]["series_per_s"])
    for row in rows.values():
        assert float(row["series_per_s"]) > 0
        ratio = float(rows["gafkd"]["series_per_s"]) / float(row["series_per_s"])
        assert abs(float(row["x_gafkd_time"]) - ratio) < 1e-2 * max(1, ratio)
        assert abs(float(row["fraction_of_write_bound"]) - float(row["series_per_s"]) / limit) < 1e-2
    diff = float(run.stdout.split("max abs diff ")[1].split()[0])
    assert diff < 1e-5


def test_sp_cache_benchmark_runs(tmp_path):
    out = tmp_path / "sp_cache.csv"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/sp_cache.py"), "--quick", "--device", "cpu",
                          "--fold-windows", "1000", "--csv", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["teacher"] for r in rows] == ["gaf wrn10-1", "sig wrn10-1"]
    for row in rows:
        sizes = [int(s) for s in row["feature_sizes"].split(",")]
        # the smaller exact form per group, at the timed size and at the projected one
        assert row["forms"].split(",") == ["gram" if s > 64 else "features" for s in sizes]
        assert row["fold_forms"].split(",") == ["gram" if s > 1000 else "features" for s in sizes]
        expected_gb = sum(1000 * (1000 if s > 1000 else s) * 4 for s in sizes) / 1e9
        assert float(row["fold_gb"]) == round(expected_gb, 2)
        assert float(row["build_s"]) > 0 and float(row["fold_build_s_projected"]) > 0


def test_workflow_parse_benchmark_runs(tmp_path):
    out = tmp_path / "workflow_parse.csv"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/workflow_parse.py"), "--repeats", "1",
                          "--csv", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["command"] for r in rows] == ["import torch", "import snakemake", "snakemake -n config.yaml",
                                            "gafkd.plan gene14_w500.yaml", "gafkd.plan pamap2_loso.yaml"]
    assert all(float(r["median_s"]) > 0 for r in rows)
    assert [r["ratio_to_first"] for r in rows[2:]] == ["1.0"] * 3          # one checkout: itself
