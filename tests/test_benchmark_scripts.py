"""The training-step and grid-projection benchmarks run on a tiny size and write consistent CSVs."""
import csv
import math
import subprocess
import sys

import pytest
import yaml

from conftest import REPO

from gafkd import grid
from gafkd.config import check_config_file


def run_quick(script, out, *options):
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--quick", "--device", "cpu",
                          "--csv", str(out), *options], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    return run.stdout, list(csv.DictReader(out.open()))


def test_train_step_benchmark_runs(tmp_path):
    stdout, rows = run_quick("train_step.py", tmp_path / "train_step.csv")
    assert [r["method"] for r in rows] == ["naive", "engine"]
    assert all(r["device"] == "cpu" and float(r["samples_per_s"]) > 0 for r in rows)
    assert float(rows[0]["ratio_to_naive"]) == 1.0
    speedup = float(rows[1]["samples_per_s"]) / float(rows[0]["samples_per_s"])
    assert float(rows[1]["ratio_to_naive"]) == pytest.approx(speedup, rel=0.05)
    assert "samples/s" in stdout and "engine/naive" in stdout


def small_lab_config(tmp_path, name):
    """configs/<name>.yaml with two teacher architectures and 16 x 16 images (each network is timed
    on the CPU), written under tmp_path; (its path, the config)."""
    config = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    config["teachers"]["archs"], config["images"]["size"] = ["wrn16-1", "wrn16-3"], 16
    del config["report"]["reference"]             # it quotes every architecture
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config


def test_grid_projection_benchmark_runs(tmp_path):
    path, config = small_lab_config(tmp_path, "gene14_w500")
    stdout, rows = run_quick("grid_projection.py", tmp_path / "grid_projection.csv", "--precision", "bf16",
                             "--by-job", str(tmp_path / "by_job.csv"), "--config", str(path))
    teachers = config["teachers"]
    *parts, total = rows
    assert total["job"] == "total"
    trained = {(r["arch"], r["modality"]) for r in parts if r["job"] == "teacher"}
    assert trained == {(a, m) for a in teachers["archs"] for m in teachers["modalities"]}
    assert {(r["arch"], r["modality"]) for r in parts if r["job"] == "outputs"} == trained
    sp = [r for r in parts if r["job"] == "student" and "kd2-anneal-sp" in r["methods"]]
    assert len(sp) == len(teachers["archs"])
    computed = [r for r in parts if r["job"] != "reused"]
    assert all(float(r["s_per_epoch"]) > 0 and float(r["hours"]) > 0 for r in computed)
    assert all(int(r["epochs"]) == config["training"]["epochs"] for r in computed
               if r["job"] not in ("outputs", "similarity"))
    # one similarity cache per teacher an SP student learns from (both modalities, every seed)
    similarity = [r for r in parts if r["job"] == "similarity"]
    assert {(r["arch"], r["modality"]) for r in similarity} == trained
    assert all(int(r["runs"]) == len(teachers["seeds"]) and int(r["epochs"]) == 1 for r in similarity)
    assert "similarity caches" in stdout and "SP teachers: cache" in stdout
    students = config["students"]
    per_seed = sum(1 if method == "scratch" else len(teachers["archs"]) * (
        1 if method in ("kd-gaf", "kd-sig") else len(students["alphas"])) for method in students["methods"])
    assert sum(int(r["runs"]) for r in parts if r["job"] == "teacher") == (
        len(teachers["archs"]) * len(teachers["modalities"]) * len(teachers["seeds"]))
    # every scratch student (wrn16-1, seeds 1-3) is the signal teacher run of wrn16-1 and its seed:
    # counted once, as the teacher, and listed at zero cost
    (reused,) = [r for r in parts if r["job"] == "reused"]
    assert int(reused["runs"]) == len(students["seeds"]) and float(reused["hours"]) == 0
    assert not any(r["job"] == "student" and "scratch" in r["methods"] for r in parts)
    assert sum(int(r["runs"]) for r in parts if r["job"] == "student") == (per_seed - 1) * len(students["seeds"])
    assert int(total["runs"]) == sum(int(r["runs"]) for r in computed)
    assert "reused at no cost" in stdout
    assert float(total["hours"]) > 0
    assert float(total["hours"]) == pytest.approx(sum(float(r["hours"]) for r in parts), abs=1e-5)
    assert "s/epoch" in stdout and "hours" in stdout and "total" in stdout
    # with and without packing: image teachers cost the same; signal teachers (teachers.pack)
    # and students are trained in the grid's packs
    assert all(r["hours_packed"] == r["hours"] for r in parts
               if r["job"] != "student" and not (r["job"] == "teacher" and r["modality"] == "sig"))
    assert all(float(r["hours_packed"]) > 0 for r in parts
               if r["job"] == "student" or (r["job"] == "teacher" and r["modality"] == "sig"))
    assert float(total["hours_packed"]) == pytest.approx(sum(float(r["hours_packed"]) for r in parts), abs=1e-5)
    assert f"with students.pack {check_config_file(path)['students']['pack']}" in stdout
    assert "precision bf16" in stdout
    # --by-job: hours per kind of job, students as packed, and their total
    by_job = list(csv.DictReader((tmp_path / "by_job.csv").open()))
    assert [(r["config"], r["precision"], r["job"]) for r in by_job] == [
        ("gene14_w500", "bf16", job) for job in ("teachers", "teacher_outputs", "similarity", "students", "total")]
    hours = {r["job"]: float(r["hours"]) for r in by_job}
    kinds = {"teachers": "teacher", "teacher_outputs": "outputs", "similarity": "similarity", "students": "student"}
    for job, kind in kinds.items():
        assert hours[job] == pytest.approx(sum(float(r["hours_packed"]) for r in parts if r["job"] == kind), abs=1e-5)
    assert hours["total"] == pytest.approx(float(total["hours_packed"]), abs=1e-5)


def test_grid_projection_counts_the_workflows_grid_of_any_config(tmp_path):
    """PAMAP2's config (no class_map, 40 channels, LOSO) projects the runs the workflow expands."""
    path, _ = small_lab_config(tmp_path, "pamap2_loso")
    _, rows = run_quick("grid_projection.py", tmp_path / "pamap2.csv", "--config", str(path))
    config = check_config_file(path)
    (dataset,) = config["datasets"]
    runs = grid.student_runs(config, {dataset: ["fold0"]})
    reused = [r for r in runs if grid.same_run_teacher_dir(config, r)]
    assert sum(int(r["runs"]) for r in rows if r["job"] == "student") == len(runs) - len(reused)
    assert sum(int(r["runs"]) for r in rows if r["job"] == "reused") == len(reused) > 0
    assert sum(int(r["runs"]) for r in rows if r["job"] == "teacher") == len(grid.teacher_runs(config, {dataset: ["fold0"]}))


def test_grid_projection_refuses_an_invalid_config_with_the_workflows_message(tmp_path):
    config = yaml.safe_load((REPO / "configs/gene14_w500.yaml").read_text())
    config["students"]["methods"] = ["kd3"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/grid_projection.py"), "--quick", "--config",
                          str(path), "--csv", str(tmp_path / "out.csv")], capture_output=True, text=True)
    assert run.returncode != 0
    assert f"{path}: students.methods.0: 'kd3' is not one of" in run.stderr


def test_gpu_bench_writes_its_three_csvs_on_the_cpu(tmp_path):
    """`make gpu-bench`'s smoke run: packed steps, the grid's hours per job and the trained slice
    against its projection, for every precision; on the CPU only fp32 is measured and the tf32 and
    bf16 rows are its copies, saying so."""
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu_bench.py"), "--quick", "--card", "cpu",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    precisions = ("fp32", "tf32", "bf16")

    def read(name):
        rows = list(csv.DictReader((tmp_path / f"{name}_cpu.csv").open()))
        assert {r["precision"] for r in rows} == set(precisions)
        assert all((r["note"] == "") == (r["precision"] == "fp32") for r in rows)
        assert all("CPU" in r["note"] for r in rows if r["precision"] != "fp32")
        return rows

    packs = read("student_pack")
    assert list(packs[0])[:4] == ["arch", "pack", "precision", "student_steps_per_s"]
    assert sorted((r["precision"], r["arch"], int(r["pack"])) for r in packs) == sorted(
        (p, a, k) for p in precisions for a in ("wrn16-1", "wrn28-3") for k in (1, 2))     # --quick's K
    assert all(float(r["student_steps_per_s"]) == pytest.approx(1000 * int(r["pack"]) / float(r["ms_per_step"]),
                                                                rel=0.01) for r in packs)
    assert {r["fusion"] for r in packs} == {"solo", "members"}
    assert {r["cuda_graphs"] for r in packs} == {"False"}      # a CPU trains eagerly: no graphed points
    grid_rows = read("grid_projection")
    assert list(grid_rows[0])[:4] == ["config", "precision", "job", "hours"]
    for precision in precisions:
        hours = {r["job"]: float(r["hours"]) for r in grid_rows if r["precision"] == precision}
        assert list(hours) == ["teachers", "teacher_outputs", "similarity", "students", "total"]
        assert all(value > 0 for value in hours.values())
        assert hours["total"] == pytest.approx(sum(hours.values()) - hours["total"], abs=1e-5)
    check = read("projection_check")
    assert list(check[0])[:5] == ["slice", "precision", "measured_s", "projected_s", "ratio"]
    assert [r["slice"] for r in check if r["precision"] == "fp32"] == ["teacher", "teacher_outputs", "students",
                                                                       "total"]
    for row in check:
        measured, projected, ratio = (float(row[key]) for key in ("measured_s", "projected_s", "ratio"))
        assert math.isfinite(ratio) and ratio > 0 and measured > 0 and projected > 0
        assert ratio == pytest.approx(measured / projected, rel=0.01)
    assert "within 25%" in run.stdout and "[" in run.stdout and " s] " in run.stdout    # verdict, elapsed seconds


def test_student_pack_benchmark_runs(tmp_path):
    stdout, rows = run_quick("student_pack.py", tmp_path / "student_pack.csv", "--packs", "2",
                             "--archs", "wrn16-1")
    assert list(rows[0]) == ["pack", "arch", "device", "ms_per_step", "student_steps_per_s", "speedup_vs_solo",
                             "fusion"]
    solo, pack = rows
    assert pack["fusion"] == "members"          # the CPU's way
    assert (int(solo["pack"]), int(pack["pack"])) == (1, 2) and float(solo["speedup_vs_solo"]) == 1.0
    assert float(pack["student_steps_per_s"]) == pytest.approx(2000 / float(pack["ms_per_step"]), rel=0.01)
    assert float(pack["speedup_vs_solo"]) == pytest.approx(
        float(pack["student_steps_per_s"]) / float(solo["student_steps_per_s"]), rel=0.02)
    assert "student steps/s" in stdout


def test_student_pack_benchmark_compares_fusions_in_one_table(tmp_path):
    _, rows = run_quick("student_pack.py", tmp_path / "student_pack.csv", "--packs", "2", "--archs", "wrn10-1",
                        "--fusion", "members", "gemm")
    assert [(r["fusion"], r["pack"]) for r in rows] == [("members", "1"), ("members", "2"), ("gemm", "1"),
                                                        ("gemm", "2")]
    assert float(rows[2]["speedup_vs_solo"]) == 1.0          # each fusion against its own pack of one


def test_teacher_step_benchmark_runs(tmp_path):
    stdout, rows = run_quick("teacher_step.py", tmp_path / "teacher_step.csv", "--archs", "wrn10-1")
    assert list(rows[0]) == ["arch", "bf16", "channels_last", "device", "ms_per_step", "images_per_s",
                             "speedup_vs_fp32", "deterministic"]
    (row,) = rows                     # the CPU has the float32, default-layout variant only
    assert (row["bf16"], row["channels_last"], row["speedup_vs_fp32"]) == ("False", "False", "1.0")
    assert float(row["images_per_s"]) == pytest.approx(64000 / float(row["ms_per_step"]), rel=0.01)
    assert row["deterministic"] == "yes" and "images/s" in stdout


def test_pack_width_benchmark_narrows_what_a_small_card_cannot_hold(tmp_path):
    out = tmp_path / "pack_width.csv"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "pack_width.py"), "--card-gb", "6",
                    "--configs", str(REPO / "configs" / "gene14_w1000.yaml"), "--csv", str(out)],
                   check=True, cwd=REPO, capture_output=True, text=True)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["job"], r["arch"]) for r in rows} >= {("student pack", "wrn16-1"), ("signal teacher pack", "wrn28-3")}
    for row in rows:
        planned, one, two = (int(row[k]) for k in ("planned_width", "width_one_job", "width_two_jobs"))
        assert 1 <= two <= one <= planned and int(row["reserve_bytes"]) >= 2**31
    assert any(int(r["width_two_jobs"]) < int(r["planned_width"]) for r in rows)
