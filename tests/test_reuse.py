"""A scratch student that is a signal teacher's run is trained once: the decision (gafkd.distill.reuse),
the files derived from the teacher's, and the premise that the two runs are the same run."""
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO
from test_workflow import scheduled_jobs

from gafkd.train.run_record import metrics_text, sealed
from gafkd.train.checkpoint import load_checkpoint
from gafkd.errors import InputError
from gafkd.train.models import build_model
from gafkd.distill.reuse import student_from_teacher_run
from gafkd.same_run import differences, same_run, same_run_teacher
from gafkd.distill.students import _load_initial_weights
from gafkd.data.windows import read_windows

TRAINING = {"epochs": 200, "batch_size": 64, "lr": 0.05, "lr_boundaries": "lab", "momentum": 0.9,
            "weight_decay": 0.0001, "precision": "tf32", "deterministic": True,
            "checkpoint_every": 5}
GRID = {"modalities": ["gaf", "sig"], "archs": ["wrn16-1", "wrn28-3"], "seeds": [1, 2, 3]}


def scratch(**changes):
    return {"dataset": "gene", "fold": "holdout", "arch": "wrn16-1", "method": "scratch", "teachers": "none",
            "alpha": 0.0, "seed": 2, "training": TRAINING, "threads": 2, **changes}


def teacher_settings(dataset, fold, modality, arch, seed):
    """As the teacher rule's params (common.smk: teacher_settings)."""
    return {"dataset": dataset, "fold": fold, "modality": modality, "arch": arch, "seed": seed,
            "training": TRAINING, "threads": 2}


def test_a_scratch_student_of_the_teacher_grid_is_the_signal_teacher_run():
    assert same_run_teacher(scratch(), GRID, teacher_settings) == teacher_settings(
        "gene", "holdout", "sig", "wrn16-1", 2)
    assert same_run_teacher(scratch(arch="wrn28-3", seed=3), GRID, teacher_settings)["arch"] == "wrn28-3"


@pytest.mark.parametrize("field, value", [
    ("arch", "wrn28-3"), ("seed", 3), ("dataset", "pamap2"), ("fold", "fold1"), ("threads", 1),
    ("modality", "gaf"),
    ("training", {**TRAINING, "epochs": 199}), ("training", {**TRAINING, "lr": 0.1}),
    ("training", {**TRAINING, "batch_size": 32}), ("training", {**TRAINING, "precision": "bf16"}),
    ("training", {**TRAINING, "lr_boundaries": "fraction"}), ("training", {**TRAINING, "momentum": 0.8}),
    ("training", {**TRAINING, "weight_decay": 0.0005}),
    ("training", {k: v for k, v in TRAINING.items() if k != "precision"}),
    ("training", {**TRAINING, "deterministic": False}),
    ("images", {"method": "gasf", "size": 64}),
])
def test_a_teacher_run_of_other_settings_is_not_the_same_run(field, value):
    teacher = {**teacher_settings("gene", "holdout", "sig", "wrn16-1", 2), field: value}
    assert not same_run(scratch(), teacher)
    assert field in " ".join(differences(scratch(), teacher))
    # nor is it named, whatever the grid: the teacher rule's settings are compared field by field
    assert same_run_teacher(scratch(), GRID, lambda *run: teacher) is None


@pytest.mark.parametrize("changes", [
    {"method": "kd-sig", "teachers": "sig-wrn16-1"}, {"method": "kd2-anneal"}, {"teachers": "sig-wrn16-1"},
    {"alpha": 0.5}, {"kd": {"lambda": 0.7}}, {"images": {"method": "gasf", "size": 64}},
    {"teacher_seed": 2}, {"seed": 2.0}, {"threads": 2.0}, {"training": {**TRAINING, "deterministic": 1}},
])
def test_a_student_of_other_settings_is_never_a_teacher_run(changes):
    assert same_run_teacher(scratch(**changes), GRID, teacher_settings) is None


@pytest.mark.parametrize("grid", [
    {**GRID, "modalities": ["gaf"]},          # no signal teacher is trained
    {**GRID, "archs": ["wrn16-3"]},           # not of the student's architecture
    {**GRID, "seeds": [1, 3]},                # not of the student's seed
])
def test_only_a_teacher_the_grid_trains_anyway_is_named(grid):
    assert same_run_teacher(scratch(), grid, teacher_settings) is None


def test_the_same_settings_under_differing_key_order_or_missing_keys():
    reordered = dict(reversed(list(scratch().items())))
    assert same_run_teacher(reordered, GRID, teacher_settings) is not None
    incomplete = {k: v for k, v in scratch().items() if k != "threads"}
    assert same_run_teacher(incomplete, GRID, teacher_settings) is None
    assert not same_run(incomplete, {k: v for k, v in teacher_settings(
        "gene", "holdout", "sig", "wrn16-1", 2).items() if k != "threads"})


# ---- the workflow: the scratch student of a one-epoch chain on the demo ----

TEACHER = "results/basicmotions/predefined/teachers/sig/wrn16-1/seed1"
SCRATCH = "results/basicmotions/predefined/students/wrn16-1/scratch/none/alpha0/seed1"
SCRATCH_LOG = "results/basicmotions/logs/students/predefined/wrn16-1-scratch-none-alpha0-seed1.log"


def tiny_config(workdir, **students):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"] = {"epochs": 1, "batch_size": 8}
    config["teachers"] = {"modalities": ["sig"], "archs": ["wrn16-1"], "seeds": [1]}
    config["students"] = {"arch": "wrn16-1", "methods": ["scratch"], "seeds": [1], **students}
    config["devices"] = {"threads": 2, "lock_dir": str(workdir / "locks")}
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_snakemake(workdir, configfile, *targets):
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                          "--cores", "2", *targets, "--configfile", str(configfile)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


def job_blocks(output):
    """[{rule, key: value}] of the jobs Snakemake printed."""
    jobs = []
    for line in output.splitlines():
        match = re.fullmatch(r"(?:local)?rule (\w+):", line.strip())
        if match:
            jobs.append({"rule": match.group(1)})
        elif jobs and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            jobs[-1][key] = value
    return jobs


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reuse")
    configfile = tiny_config(workdir)
    output = run_snakemake(workdir, configfile, "students")
    return workdir, configfile, job_blocks(output)


def test_the_scratch_student_is_derived_from_the_teacher_run(chain):
    workdir, _, jobs = chain
    teacher, student = workdir / TEACHER, workdir / SCRATCH
    saved_teacher = load_checkpoint(teacher / "model.pt", "teacher checkpoint")
    saved = load_checkpoint(student / "model.pt", "student checkpoint")
    assert saved["state_dict"].keys() == saved_teacher["state_dict"].keys()
    assert all(torch.equal(saved["state_dict"][k], saved_teacher["state_dict"][k]) for k in saved["state_dict"])
    assert torch.equal(saved["mean"], saved_teacher["mean"]) and torch.equal(saved["std"], saved_teacher["std"])
    assert saved["epoch"] == saved_teacher["epoch"]
    assert {k: saved[k] for k in ("role", "method", "teachers", "alpha", "seed", "arch", "modality", "dims")} == {
        "role": "student", "method": "scratch", "teachers": "none", "alpha": 0.0, "seed": 1, "arch": "wrn16-1",
        "modality": "sig", "dims": 1}
    assert (student / "history.csv").read_bytes() == (teacher / "history.csv").read_bytes()
    assert (student / "predictions.npz").read_bytes() == (teacher / "predictions.npz").read_bytes()
    metrics = json.loads((student / "metrics.json").read_text())
    teacher_metrics = json.loads((teacher / "metrics.json").read_text())
    assert metrics["config"]["method"] == "scratch" and "modality" not in metrics["config"]
    assert metrics["reused_from"]["run"] == TEACHER
    assert metrics["reused_from"]["settings"] == teacher_metrics["config"]
    assert metrics["reused_from"]["model_digest"] == saved_teacher["digest"]
    assert "signal teacher" in metrics["reused_from"]["why"]
    assert {k: v for k, v in metrics.items() if k not in ("config", "reused_from", "seal")} == {
        k: v for k, v in teacher_metrics.items() if k not in ("config", "seal")}     # its own seal
    # the annealed students start from it as from a trained scratch student
    fingerprint = read_windows(workdir / "results/basicmotions/windows.h5", load_X=False).attrs["fingerprint"]
    model = build_model("wrn16-1", 6, 4, dims=1)
    _load_initial_weights(model, student / "model.pt", {"dataset": "basicmotions", "fold": "predefined",
                                                        "arch": "wrn16-1", "method": "kd2-anneal", "seed": 1},
                          fingerprint, "scratch")
    assert torch.equal(model.state_dict()["conv1.weight"], saved_teacher["state_dict"]["conv1.weight"])


def test_the_scratch_job_is_no_training_job(chain):
    workdir, configfile, jobs = chain
    (teacher,) = [j for j in jobs if j["rule"] == "train_teacher"]
    (student,) = [j for j in jobs if j["rule"] == "train_student"]
    assert "gpu=1" in teacher["resources"] and teacher["threads"] == "2"
    assert "gpu=0" in student["resources"] and "threads" not in student     # one thread, no device slot
    assert f"{TEACHER}/model.pt" in student["input"]
    log = (workdir / SCRATCH_LOG).read_text()
    assert "reused without training" in log and "epoch 1/1" not in log and "torch threads" not in log
    assert not (workdir / SCRATCH / "resume.pt").exists()
    assert scheduled_jobs(workdir, "students", configfile=configfile) == {}


def test_a_teacher_run_that_is_not_the_students_is_refused(chain, tmp_path):
    workdir, _, _ = chain
    windows = workdir / "results/basicmotions/windows.h5"
    settings = json.loads((workdir / SCRATCH / "metrics.json").read_text())["config"]
    files = {k: tmp_path / "teacher" / f"{k}{ext}" for k, ext in
             (("model", ".pt"), ("metrics", ".json"), ("history", ".csv"), ("predictions", ".npz"))}
    files["model"].parent.mkdir()
    for key, path in files.items():
        shutil.copy(workdir / TEACHER / path.name, path)
    outputs = {k: tmp_path / "student" / path.name for k, path in files.items()}
    student_from_teacher_run(windows, settings, files, outputs)        # the teacher's own files pass
    shutil.rmtree(tmp_path / "student")

    metrics = json.loads(files["metrics"].read_text())
    other = {**metrics, "config": {**metrics["config"], "threads": 1}}
    files["metrics"].write_text(json.dumps(other))                   # edited: its seal no longer holds
    with pytest.raises(InputError, match=re.escape(str(files["metrics"])) + ".*damaged .*do not match its seal"):
        student_from_teacher_run(windows, settings, files, outputs)
    files["metrics"].write_text(metrics_text(sealed(other, files["history"])))      # another run's, sealed
    with pytest.raises(InputError, match=re.escape(str(files["metrics"])) + ".*threads: student 2, teacher 1"):
        student_from_teacher_run(windows, settings, files, outputs)
    files["metrics"].write_text(metrics_text(sealed(metrics, files["history"])))
    files["history"].write_text(files["history"].read_text().replace("0.", "1.", 1))
    with pytest.raises(InputError, match=re.escape(str(files["history"])) + ".*damaged"):
        student_from_teacher_run(windows, settings, files, outputs)
    shutil.copy(workdir / TEACHER / "history.csv", files["history"])
    shutil.copy(workdir / SCRATCH / "metrics.json", files["predictions"])        # not the run's predictions
    with pytest.raises(InputError, match=re.escape(str(files["predictions"])) + ".*damaged.*digest"):
        student_from_teacher_run(windows, settings, files, outputs)
    shutil.copy(workdir / TEACHER / "predictions.npz", files["predictions"])
    with pytest.raises(InputError, match="seed"):
        student_from_teacher_run(windows, {**settings, "seed": 2}, files, outputs)

    shutil.copy(workdir / SCRATCH / "model.pt", files["model"])       # a student's checkpoint
    with pytest.raises(InputError, match=re.escape(str(files["model"])) + ".*role student, expected teacher"):
        student_from_teacher_run(windows, settings, files, outputs)
    files["model"].write_bytes((workdir / TEACHER / "model.pt").read_bytes()[:-100])
    with pytest.raises(InputError, match=re.escape(str(files["model"])) + ".*damaged"):
        student_from_teacher_run(windows, settings, files, outputs)
    assert not (tmp_path / "student").exists()


def test_trained_again_the_scratch_student_is_the_teacher_run(chain, tmp_path):
    """The premise: with reuse switched off the scratch student trains, and gives the teacher's
    numbers and weights; its model.pt is the reused one, bit for bit."""
    workdir, _, _ = chain
    configfile = tiny_config(tmp_path, reuse_teacher_runs=False)
    assert scheduled_jobs(tmp_path, f"{SCRATCH}/metrics.json", configfile=configfile) == {
        "build_windows": 1, "train_student": 1}                        # no teacher: a training job
    (tmp_path / "results/basicmotions").mkdir(parents=True)
    shutil.copy2(workdir / "results/basicmotions/windows.h5", tmp_path / "results/basicmotions/windows.h5")
    jobs = job_blocks(run_snakemake(tmp_path, configfile, f"{SCRATCH}/metrics.json"))
    (student,) = [j for j in jobs if j["rule"] == "train_student"]
    assert "gpu=1" in student["resources"] and "epoch 1/1" in (tmp_path / SCRATCH_LOG).read_text()
    trained = json.loads((tmp_path / SCRATCH / "metrics.json").read_text())
    teacher = json.loads((workdir / TEACHER / "metrics.json").read_text())
    assert "reused_from" not in trained
    for key in ("best_epoch", "val_accuracy", "val_loss", "test_at_best_val", "test_at_last_epoch",
                "optimistic_best_test_accuracy", "epochs", "class_names", "split"):
        assert trained[key] == teacher[key], key
    assert (tmp_path / SCRATCH / "history.csv").read_bytes() == (workdir / TEACHER / "history.csv").read_bytes()
    retrained = load_checkpoint(tmp_path / SCRATCH / "model.pt", "student checkpoint")
    reused = load_checkpoint(workdir / SCRATCH / "model.pt", "student checkpoint")
    assert retrained["digest"] == reused["digest"]          # weights, statistics and identity alike


def test_a_signal_teacher_trained_in_a_pack_is_still_the_scratch_run_of_its_seed():
    packed = {**teacher_settings("gene", "holdout", "sig", "wrn16-1", 2), "pack": {"width": 3, "member": 1}}
    assert same_run(scratch(), packed)
    assert same_run_teacher(scratch(), GRID, lambda *run: packed) == packed
    # the pack is a teacher's record only: a student claiming one is not a scratch run
    assert not same_run({**scratch(), "pack": {"width": 3, "member": 1}}, packed)
