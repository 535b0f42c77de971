"""Every setting that changes a number reruns the runs it changes, and nothing else does: a
one-epoch teacher -> outputs -> student chain on the demo, then dry runs with changed settings."""
import json
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from test_workflow import scheduled_jobs

from gafkd import grid
from gafkd.config import check_config_file

TEACHER = "results/basicmotions/predefined/teachers/sig/wrn16-1/seed1"
STUDENT = "results/basicmotions/predefined/students/wrn16-1/kd-sig/sig-wrn16-1/alpha0/seed1"
LOGS = "results/basicmotions/logs"
JOB_LOGS = (f"{LOGS}/teachers/predefined/sig-wrn16-1-seed1.log",
            f"{LOGS}/teachers/predefined/sig-wrn16-1-seed1-outputs.log",
            f"{LOGS}/students/predefined/wrn16-1-kd-sig-sig-wrn16-1-alpha0-seed1.log")


def tiny_config(tmp_path, **devices):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"] = {"epochs": 1, "batch_size": 8}
    config["teachers"] = {"modalities": ["sig"], "archs": ["wrn16-1"], "seeds": [1]}
    config["students"] = {"arch": "wrn16-1", "methods": ["kd-sig"], "seeds": [1]}
    config["devices"] = {"threads": 2, "lock_dir": str(tmp_path / "locks"), **devices}
    return config


def training_jobs(workdir, configfile):
    """{rule: jobs} a dry run of `students` would run (the target rule itself left out)."""
    counts = scheduled_jobs(workdir, "students", configfile=configfile)
    counts.pop("students", None)
    return counts


def write_config(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The chain run with --cores 1 and devices.threads 2."""
    workdir = tmp_path_factory.mktemp("identity")
    config = tiny_config(workdir)
    configfile = write_config(workdir / "tiny.yaml", config)
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                          "--cores", "1", "students", "--configfile", str(configfile)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return workdir, config


def test_jobs_use_the_configured_threads_even_on_fewer_cores(finished_run):
    workdir, _ = finished_run
    for run in (TEACHER, STUDENT):
        metrics = json.loads((workdir / run / "metrics.json").read_text())
        assert metrics["provenance"]["torch_threads"] == 2, run
        assert metrics["config"]["threads"] == 2, run
    for log in JOB_LOGS:
        text = (workdir / log).read_text()
        assert "devices.threads is 2 but Snakemake scheduled this job on 1 core(s)" in text, log
        assert "torch threads: 2 (devices.threads)" in text, log


def test_changed_threads_rerun_every_training_job(finished_run, tmp_path):
    workdir, config = finished_run
    changed = write_config(tmp_path / "changed.yaml", {**config, "devices": {**config["devices"], "threads": 1}})
    assert training_jobs(workdir, changed) == {
        "train_teacher": 1, "teacher_outputs": 1, "train_student": 1}


def test_changed_slot_settings_rerun_nothing(finished_run, tmp_path):
    workdir, config = finished_run
    devices = {**config["devices"], "jobs_per_gpu": 3, "lock_dir": str(tmp_path / "other-locks")}
    changed = write_config(tmp_path / "changed.yaml", {**config, "devices": devices})
    assert training_jobs(workdir, changed) == {}
    assert training_jobs(workdir, workdir / "tiny.yaml") == {}


@pytest.mark.parametrize("alpha", ["0.50", ".5", "0.5."])
def test_only_the_canonical_alpha_spelling_is_a_target(alpha, tmp_path):
    run_dir = f"results/basicmotions/predefined/students/wrn16-1/kd2/gasf-wrn16-1+sig-wrn16-1/alpha{alpha}/seed1"
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                          "-n", "--cores", "1", f"{run_dir}/metrics.json",
                          "--configfile", str(REPO / "config.yaml")], capture_output=True, text=True)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert run_dir in output
    if alpha == "0.5.":
        assert f"alpha{alpha} is not a number" in output
    else:
        assert "ask for results/basicmotions/predefined/students/wrn16-1/kd2/gasf-wrn16-1+sig-wrn16-1/alpha0.5/seed1" in output


def test_canonical_alpha_spelling_is_scheduled(tmp_path):
    target = "results/basicmotions/predefined/students/wrn16-1/kd2/gasf-wrn16-1+sig-wrn16-1/alpha0.5/seed1/metrics.json"
    counts = scheduled_jobs(tmp_path, target)
    # its pack, one job: the workflow's pack rules are numbered in gafkd.grid.student_packs' order
    packs = grid.student_packs(check_config_file(REPO / "config.yaml"), {"basicmotions": ["predefined"]})
    run = {"dataset": "basicmotions", "fold": "predefined", "arch": "wrn16-1", "method": "kd2",
           "teachers": "gasf-wrn16-1+sig-wrn16-1", "alpha": "0.5", "seed": "1"}
    (number,) = [i for i, pack in enumerate(packs) if run in pack.runs]
    assert [rule for rule in counts if "student" in rule] == [f"train_student_pack{number}"]
