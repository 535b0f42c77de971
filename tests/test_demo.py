"""The default pipeline (config.yaml, trained for 10 epochs) end to end on the CPU: BasicMotions to
the whole student grid, then partial reruns on copies of the finished run."""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import REPO
from test_workflow import scheduled_jobs, snakemake, snakemake_command

from gafkd import grid
from gafkd import names
from gafkd.config import check_config_file
from gafkd.train.predictions import correct, read_predictions

STUDENTS = "results/basicmotions/predefined/students/wrn16-1"
KD2_RUN = f"{STUDENTS}/kd2/gasf-wrn16-1+sig-wrn16-1/alpha0.5/seed2"
GAF_TEACHER = "results/basicmotions/predefined/teachers/gasf/wrn16-1/seed2"


# The demo config, trained for fewer epochs than its 40: every stage, encoding, seed and pack as
# `make demo` runs them (the numbers of its full run are docs/demo_tables.md's).
EPOCHS = 10


def config_of(workdir):
    """The config file of the demo run in (a copy of) `workdir`."""
    return workdir / "demo.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"]["epochs"] = EPOCHS
    config_of(workdir).write_text(yaml.safe_dump(config))
    run = snakemake(workdir, configfile=config_of(workdir))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return workdir, config


def test_whole_student_grid_is_built(demo):
    workdir, config = demo
    students = config["students"]
    runs = sorted((workdir / "results/basicmotions/predefined/students").rglob("metrics.json"))
    # scratch, kd-gaf of every encoding, kd-sig, the kd2 family × α of every paired encoding
    per_seed = 1 + len(config["images"]["methods"]) + 1 + 3 * len(students["alphas"]) * len(students["paired_images"])
    assert len(runs) == per_seed * len(students["seeds"])
    for path in runs:
        metrics = json.loads(path.read_text())
        assert metrics["epochs"] == config["training"]["epochs"]
        assert metrics["provenance"]["device"] == "cpu"
        predictions = read_predictions(metrics, path)           # every run's, sealed with its metrics
        assert correct(predictions).mean() == metrics["test_at_best_val"]["accuracy"]


def test_signal_teachers_learn_well_above_chance(demo):
    """Twice the 25 % of chance on 4 classes after 10 epochs (after the demo's 40 they reach 90 %:
    tests/test_teachers.py)."""
    workdir, config = demo
    for seed in config["teachers"]["seeds"]:
        path = workdir / f"results/basicmotions/predefined/teachers/sig/wrn16-1/seed{seed}/metrics.json"
        assert json.loads(path.read_text())["test_at_best_val"]["accuracy"] >= 0.5


def test_tables_figures_and_report(demo):
    workdir, config = demo
    report = workdir / "results/reports/demo"
    tables = (report / "tables.md").read_text()
    for encoding in config["images"]["methods"]:
        assert f"| {encoding.upper()} teacher |" in tables and f"| 1 teacher ({encoding.upper()}) |" in tables
    assert "| + SP (GASF + signal), α = 0.5 |" in tables
    assert "!" not in tables.split("\n", 4)[-1].replace("`!` marks", "")   # every group complete
    for name in ("alpha", "teachers_vs_students", "confusion", "learning_curves"):
        assert (report / f"basicmotions_{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "critical_difference.png").read_bytes()[:4] == b"\x89PNG"
    comparisons = (report / "comparisons.csv").read_text()
    assert "+ SP (GASF + signal), α = 0.5 vs student from scratch" in comparisons and "### Paired comparisons" in tables
    assert "### test accuracy, test-set 95 % intervals" in tables and "test-set 95 % CI" in tables
    html = workdir / "report.html"
    run = snakemake(workdir, "--report", str(html), configfile=config_of(workdir))
    assert run.returncode == 0, run.stderr
    text = html.read_text(errors="replace")
    assert "basicmotions_alpha.png" in text and "weight of the image teacher" in text
    assert "critical_difference.png" in text and "comparisons.csv" in text


def test_changed_report_option_retrains_nothing(demo, tmp_path):
    workdir, config = demo
    changed = with_config(tmp_path, config, report={"decimals": 1})
    assert scheduled_jobs(workdir, configfile=changed) == {"aggregate": 1, "figures": 1, "critical_difference": 1}


def with_config(tmp_path, config, **changes):
    """A config file: the demo config with some top-level sections replaced."""
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump({**config, **changes}))
    return path


def copy_of(workdir, tmp_path):
    """The finished demo run (outputs, logs and Snakemake's metadata, mtimes kept)."""
    return Path(shutil.copytree(workdir, tmp_path / "run", symlinks=True))


def mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_device_slots_rerun_nothing_and_threads_rerun_training(demo, tmp_path):
    workdir, config = demo
    slots = with_config(tmp_path, config, devices={**config["devices"], "jobs_per_gpu": 3})
    assert scheduled_jobs(workdir, configfile=slots) == {}
    threads = with_config(tmp_path, config, devices={**config["devices"], "threads": 2})
    # 3 seeds of 4 image teachers and the signal teacher (its 3 seeds in one pack), SP caches of
    # GASF's and the signal's, the 3 scratch students derived from the signal teachers' runs, and
    # the 4 packs of the rest (kd-gaf of each encoding, kd-sig and kd2 in 16 + 8; kd2-anneal;
    # kd2-anneal-sp)
    assert by_kind(scheduled_jobs(workdir, configfile=threads)) == {
        "train_teacher": 12, "teacher_pack": 1, "teacher_outputs": 15, "teacher_similarity": 6, "train_student": 3,
        "pack": 4, "aggregate": 1, "figures": 1, "critical_difference": 1}


def by_kind(jobs):
    """{rule: jobs} with the pack rules (train_student_pack<n>, one job each) counted as 'pack',
    the signal teachers' (train_teacher_pack<n>) as 'teacher_pack'."""
    kinds = {}
    for rule, count in jobs.items():
        kind = ("pack" if rule.startswith("train_student_pack") else
                "teacher_pack" if rule.startswith("train_teacher_pack") else rule)
        kinds[kind] = kinds.get(kind, 0) + count
    return kinds


@pytest.mark.parametrize("deleted, stage, kind", [
    ("results/basicmotions/images_gasf32.h5", "images", "build_images"),
    (f"{GAF_TEACHER}/model.pt", "teachers", "train_teacher"),
    (f"{GAF_TEACHER}/outputs.h5", "teachers", "teacher_outputs"),
    (f"{KD2_RUN}/metrics.json", "students", "pack"),
])
def test_a_deleted_intermediate_is_rebuilt_from_all_its_stage_and_its_path(demo, tmp_path, deleted, stage, kind):
    """"Delete it and Snakemake rebuilds it" (gafkd.errors.REBUILD) holds from each target."""
    workdir = copy_of(demo[0], tmp_path)
    (workdir / deleted).unlink()
    for target in ([], ["all"], [stage], [deleted]):
        assert by_kind(scheduled_jobs(workdir, *target, configfile=config_of(workdir))).get(kind) == 1, (target, deleted)


def test_deleted_student_output_asked_by_path_reruns_its_pack(demo, tmp_path):
    workdir = copy_of(demo[0], tmp_path)
    target = workdir / KD2_RUN / "metrics.json"
    target.unlink()
    before = mtimes(workdir / "results")
    assert by_kind(scheduled_jobs(workdir, f"{KD2_RUN}/metrics.json", configfile=config_of(workdir))) == {"pack": 1}
    run = snakemake(workdir, f"{KD2_RUN}/metrics.json", configfile=config_of(workdir))
    assert run.returncode == 0, run.stderr[-3000:]
    after = mtimes(workdir / "results")
    changed = {p.relative_to(workdir).as_posix() for p in after if before.get(p) != after[p]}
    assert target.exists()
    config = check_config_file(config_of(workdir))
    pack = grid.pack_of(config, {"dataset": "basicmotions", "fold": "predefined", "arch": "wrn16-1",
                                 "method": "kd2", "teachers": "gasf-wrn16-1+sig-wrn16-1", "alpha": "0.5",
                                 "seed": "2"})
    pack_runs = {names.STUDENT_RUN.format(**run) for run in pack.runs}
    run_files = {f"{run}/{name}" for run in pack_runs
                 for name in ("metrics.json", "model.pt", "history.csv", "predictions.npz")}
    assert len(pack_runs) == 8 and run_files <= changed        # the whole pack: kd2 but seed 1, α 0.1
    assert all(p in run_files or "/logs/" in p or "/benchmarks/" in p for p in changed), changed
    for run in pack_runs:                                      # retrained to the same numbers
        original = json.loads((demo[0] / run / "metrics.json").read_text())
        again = json.loads((workdir / run / "metrics.json").read_text())
        assert again["test_at_best_val"] == original["test_at_best_val"]
        assert again["config"]["pack"] == original["config"]["pack"]


def test_new_alpha_reruns_the_packs_it_joins_and_the_aggregation(demo, tmp_path):
    workdir, config = demo
    students = {**config["students"], "alphas": [*config["students"]["alphas"], 0.3]}
    changed = with_config(tmp_path, config, students=students)
    # kd2, kd2-anneal and kd2-anneal-sp: each cell's pack gains the new α's runs
    assert by_kind(scheduled_jobs(workdir, configfile=changed)) == {"pack": 3, "aggregate": 1, "figures": 1,
                                                                    "critical_difference": 1}
    run = snakemake(workdir, "-n", configfile=changed)
    assert "alpha0.3/seed3/metrics.json" in run.stdout


def test_changed_epochs_retrain_every_training_job(demo, tmp_path):
    workdir, config = demo
    changed = with_config(tmp_path, config, training={**config["training"], "epochs": 61})
    planned = by_kind(scheduled_jobs(workdir, configfile=changed))
    image_teachers = len(config["images"]["methods"]) * len(config["teachers"]["seeds"])
    assert planned["train_teacher"] == image_teachers and planned["teacher_pack"] == 1
    assert planned["train_student"] == 3 and planned["pack"] == 4
    assert "build_windows" not in planned and "build_images" not in planned


def test_killed_training_job_resumes_from_its_checkpoint(demo, tmp_path):
    workdir = copy_of(demo[0], tmp_path)
    run_dir = workdir / GAF_TEACHER
    for name in ("metrics.json", "model.pt", "history.csv"):
        (run_dir / name).unlink()
    snakemake_process = subprocess.Popen(snakemake_command(workdir, f"{GAF_TEACHER}/metrics.json",
                                                           configfile=config_of(workdir)),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run_dir / "resume.pt").exists() and snakemake_process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    jobs = [p for p in psutil.Process(snakemake_process.pid).children(recursive=True)
            if any("train_teacher.py" in part for part in p.cmdline())]
    assert len(jobs) == 1, "the job ended before its first checkpoint"
    jobs[0].kill()                                        # as the OOM killer or a lost node would
    assert snakemake_process.wait(timeout=60) != 0
    assert (run_dir / "resume.pt").exists() and not (run_dir / "metrics.json").exists()
    run = snakemake(workdir, "--rerun-incomplete", f"{GAF_TEACHER}/metrics.json", configfile=config_of(workdir))
    assert run.returncode == 0, run.stderr[-3000:]
    logs = workdir / "results/basicmotions/logs/teachers/predefined"
    log = (logs / "gasf-wrn16-1-seed2.log").read_text()
    resumed = re.search(r"resuming from \S+ at epoch (\d+)", log)
    assert resumed and int(resumed.group(1)) > 1, log[-2000:]
    # the killed attempt's log survives beside the new one, each after its own header
    history = (logs / "gasf-wrn16-1-seed2.attempts.log").read_text()
    killed = history.split("=== attempt")[-2]
    assert "epoch 1/" in killed and "resuming from" not in killed
    assert history.split("=== attempt")[-1] in log
    assert (run_dir / "history.csv").read_text() == (demo[0] / GAF_TEACHER / "history.csv").read_text()
    assert not (run_dir / "resume.pt").exists()
