"""The Snakemake rules on the demo config and on raw files in the GENEActiv and PAMAP2 formats."""
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml
from conftest import REPO, tree_digest
from rawfiles import gene_name, make_gene_folder, make_pamap2_folder, write_mat_v73


# A training run's files: a run is complete with all four.
RUN_FILES = ("model.pt", "metrics.json", "history.csv", "predictions.npz")


def snakemake_command(workdir, *args, configfile=REPO / "config.yaml"):
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(configfile), "--cores", "2", *args]


def snakemake(workdir, *args, configfile=REPO / "config.yaml"):
    return subprocess.run(snakemake_command(workdir, *args, configfile=configfile),
                          capture_output=True, text=True)


def scheduled_jobs(workdir, *args, configfile=REPO / "config.yaml"):
    """{rule: number of jobs} a dry run would run, target-only rules left out."""
    run = snakemake(workdir, *args, "-n", "--quiet", "rules", configfile=configfile)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    counts = {}
    for line in run.stdout.splitlines():
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if match and match.group(1) not in ("total", "all"):
            counts[match.group(1)] = int(match.group(2))
    return counts


def dry_run_jobs(output):
    """[(rule, {'input': [...], 'output': [...], ...})] of the job blocks a dry run prints."""
    jobs = []
    for line in output.splitlines():
        match = re.fullmatch(r"(?:local)?rule (\w+):", line.strip())
        if match:
            jobs.append((match.group(1), {}))
        elif jobs and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            jobs[-1][1][key] = value.split(", ")
    return jobs


def the_job(jobs, rule, output):
    """The fields of the one job of `rule` that writes `output`."""
    found = [fields for name, fields in jobs if name == rule and output in fields.get("output", [])]
    assert len(found) == 1, (rule, output, found)
    return found[0]


def test_dry_run_of_default_config(tmp_path):
    """The demo's jobs (README: 3 seeds of 4 image teachers and 3 signal teachers in one pack,
    their 15 cached outputs, 45 students in 3 derived runs and 4 packs) and what a few of them
    read and write."""
    run = snakemake(tmp_path, "-n")
    assert run.returncode == 0, run.stderr
    jobs = dry_run_jobs(run.stdout)
    counts = {}
    for rule, _ in jobs:
        counts[rule] = counts.get(rule, 0) + 1
    assert {r: counts.get(r) for r in ("build_windows", "build_images", "train_teacher",
                                        "teacher_outputs", "train_student", "aggregate")} == {
        "build_windows": 1, "build_images": 4, "train_teacher": 12, "teacher_outputs": 15,
        "train_student": 3, "aggregate": 1}
    (teacher_pack,) = [fields for rule, fields in jobs if rule.startswith("train_teacher_pack")]
    assert sorted(teacher_pack["output"]) == sorted(
        f"results/basicmotions/predefined/teachers/sig/wrn16-1/seed{seed}/{name}"
        for seed in (1, 2, 3) for name in RUN_FILES)
    assert teacher_pack["input"] == ["results/basicmotions/windows.h5"] * 3
    packs = [fields for rule, fields in jobs if rule.startswith("train_student_pack")]
    # the 24 runs that distil from cached logits (kd-gaf of each of the 4 encodings and kd-sig:
    # 3 seeds; kd2 of GASF + signal: 3 seeds × 3 α) in packs of up to 16, kd2-anneal and
    # kd2-anneal-sp: 3 × 3 each
    assert sorted(len(pack["output"]) // len(RUN_FILES) for pack in packs) == [8, 9, 9, 16]
    for encoding in ("gasf", "mtf", "gasf+gadf+mtf", "pi"):
        cache = the_job(jobs, "build_images", f"results/basicmotions/images_{encoding}32.h5")
        assert cache["input"] == ["results/basicmotions/windows.h5"]
        teacher = the_job(jobs, "train_teacher", f"results/basicmotions/predefined/teachers/{encoding}/wrn16-1/seed1/model.pt")
        assert set(teacher["input"]) == {f"results/basicmotions/images_{encoding}32.h5", "results/basicmotions/windows.h5"}
        (one,) = [pack for pack in packs if f"kd-gaf/{encoding}-wrn16-1/alpha1/seed1/model.pt" in " ".join(pack["output"])]
        assert f"results/basicmotions/predefined/teachers/{encoding}/wrn16-1/seed1/outputs.h5" in one["input"]
    data = "results/basicmotions"
    windows = the_job(jobs, "build_windows", f"{data}/windows.h5")
    assert "input" not in windows
    assert windows["output"] == [f"{data}/windows.h5", f"{data}/windows_summary.md"]
    images = the_job(jobs, "build_images", f"{data}/images_gasf32.h5")
    assert images["input"] == [f"{data}/windows.h5"]
    assert images["output"] == [f"{data}/images_gasf32.h5", f"{data}/images_gasf32.png"]
    teachers = f"{data}/predefined/teachers"
    gaf = the_job(jobs, "train_teacher", f"{teachers}/gasf/wrn16-1/seed2/model.pt")
    assert set(gaf["input"]) == {f"{data}/images_gasf32.h5", f"{data}/windows.h5"}
    assert gaf["output"] == [f"{teachers}/gasf/wrn16-1/seed2/{name}"
                             for name in RUN_FILES]
    students = f"{data}/predefined/students/wrn16-1"
    (kd2,) = [pack for pack in packs if f"{students}/kd2/gasf-wrn16-1+sig-wrn16-1/alpha0.5/seed1/metrics.json"
              in pack["output"]]
    assert set(kd2["input"]) == {f"{teachers}/{m}/wrn16-1/seed{seed}/outputs.h5" for m in ("gasf", "sig")
                                 for seed in (1, 2, 3)} | {f"{data}/windows.h5"}
    kd2_outputs = {path for pack in packs for path in pack["output"] if "/kd2/" in path}
    assert kd2_outputs == {f"{students}/kd2/gasf-wrn16-1+sig-wrn16-1/alpha{alpha}/seed{seed}/{name}"
                           for alpha in ("0.1", "0.5", "0.9") for seed in (1, 2, 3)
                           for name in RUN_FILES}
    # a pack across grid cells reads what each of its members reads
    (mixed,) = [pack for pack in packs if len(pack["output"]) == 16 * len(RUN_FILES)]
    assert {path.split("/students/wrn16-1/")[1].split("/")[0] for path in mixed["output"]} == {
        "kd-gaf", "kd-sig", "kd2"}
    assert set(mixed["input"]) == {f"{teachers}/{m}/wrn16-1/seed{seed}/outputs.h5"
                                   for m in ("gasf", "mtf", "gasf+gadf+mtf", "pi", "sig")
                                   for seed in (1, 2, 3)} | {f"{data}/windows.h5"}
    report = the_job(jobs, "aggregate", "results/reports/demo/tables.md")
    metrics = [p for p in report["input"] if p.endswith("/metrics.json")]
    assert len(metrics) == 15 + 45
    assert sorted(report["input"]) == sorted(metrics + [p.replace("metrics.json", "predictions.npz") for p in metrics])


def test_dry_run_of_solo_student_jobs(tmp_path):
    """students.pack: 1 — one job per student run, and what it reads."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["students"]["pack"] = 1
    (tmp_path / "solo.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", configfile=tmp_path / "solo.yaml")
    assert run.returncode == 0, run.stderr
    jobs = dry_run_jobs(run.stdout)
    assert sum(rule == "train_student" for rule, _ in jobs) == 45
    assert not any(rule.startswith("train_student_pack") for rule, _ in jobs)
    data = "results/basicmotions"
    teachers = f"{data}/predefined/teachers"
    students = f"{data}/predefined/students/wrn16-1"
    kd2 = the_job(jobs, "train_student", f"{students}/kd2/gasf-wrn16-1+sig-wrn16-1/alpha0.5/seed1/metrics.json")
    assert set(kd2["input"]) == {f"{teachers}/gasf/wrn16-1/seed1/outputs.h5",
                                 f"{teachers}/sig/wrn16-1/seed1/outputs.h5", f"{data}/windows.h5"}
    assert len(kd2["input"]) == 3
    sp = the_job(jobs, "train_student",
                 f"{students}/kd2-anneal-sp/gasf-wrn16-1+sig-wrn16-1/alpha0.9/seed2/model.pt")
    assert set(sp["input"]) == {
        f"{teachers}/gasf/wrn16-1/seed2/outputs.h5", f"{teachers}/gasf/wrn16-1/seed2/similarity.h5",
        f"{teachers}/sig/wrn16-1/seed2/outputs.h5", f"{teachers}/sig/wrn16-1/seed2/similarity.h5",
        f"{students}/scratch/none/alpha0/seed2/model.pt", f"{data}/windows.h5"}
    assert len(sp["input"]) == 6


def test_lint_is_clean():
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                          "-d", str(REPO), "--lint"], capture_output=True, text=True)
    assert run.returncode == 0 and "Congratulations" in run.stdout + run.stderr, run.stdout + run.stderr


def test_demo_windows_and_images(tmp_path):
    # the GASF cache alone: the `images` stage's other encodings (persistence images take most of
    # its time) are built by the demo run (test_demo.py)
    gasf = "results/basicmotions/images_gasf32.h5"
    run = snakemake(tmp_path, "windows", gasf)
    assert run.returncode == 0, run.stderr
    results = tmp_path / "results" / "basicmotions"
    with h5py.File(results / "windows.h5") as f:
        assert f["X"].shape == (80, 6, 100)
        assert (f["folds/predefined/split"][40:] == 2).all()
    with h5py.File(results / "images_gasf32.h5") as f:
        assert f["images"].shape == (80, 6, 32, 32) and f["images"].dtype == np.float16
    for name in ("images_gasf32.png", "windows_summary.md", "logs/windows.log",
                 "benchmarks/windows.tsv", "benchmarks/images_gasf32.tsv"):
        assert (results / name).is_file(), name
    rerun = snakemake(tmp_path, "windows", gasf, "-n")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


@pytest.fixture
def raw_config(tmp_path):
    gene = tmp_path / "raw" / "GENEActiv" / "Window-size-50"
    make_gene_folder(gene)
    pamap = tmp_path / "raw" / "PAMAP2_Dataset" / "Protocol"
    make_pamap2_folder(pamap)
    config = {
        "datasets": {
            "gene7": {"source": "geneactiv_mat", "raw": str(gene), "window": 50,
                      "class_map": {1: "walk", 2: "rest", 3: "walk"},
                      "split": {"kind": "holdout", "val_fraction": 0.2, "test_fraction": 0.2}},
            "pamap2": {"source": "pamap2", "raw": str(pamap), "channels": "acc16",
                       "class_map": {1: "lying", 4: "walking", 24: "rope jumping"},
                       "split": {"kind": "loso", "val_fraction": 0.3}},
        },
        "images": {"methods": ["gasf"], "size": 32},
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, gene, pamap


def test_rules_on_geneactiv_and_pamap2_raw_files(tmp_path, raw_config):
    configfile, gene, pamap = raw_config
    before = tree_digest(tmp_path / "raw")
    run = snakemake(tmp_path, "images", configfile=configfile)
    assert run.returncode == 0, run.stderr
    assert tree_digest(tmp_path / "raw") == before
    with h5py.File(tmp_path / "results/gene7/windows.h5") as f:
        assert f["X"].shape == (30, 3, 50)
        assert set(f["y"][()]) == {0, 1}
    with h5py.File(tmp_path / "results/pamap2/windows.h5") as f:
        assert f["X"].shape[1:] == (9, 100)
        assert sorted(f["folds"]) == ["fold0", "fold1", "fold2", "fold3"]
    with h5py.File(tmp_path / "results/pamap2/images_gasf32.h5") as f:
        assert f["images"].shape[1:] == (9, 32, 32)


def test_bad_raw_file_fails_the_rule_and_leaves_no_output(tmp_path, raw_config):
    configfile, gene, _ = raw_config
    write_mat_v73(gene / gene_name(101, 2, 7), xw=np.zeros((49, 3)))
    run = snakemake(tmp_path, "results/gene7/windows.h5", configfile=configfile)
    assert run.returncode != 0
    log = (tmp_path / "results/gene7/logs/windows.log").read_text()
    assert "ID-101_CLASS-2_Window-0007.mat: 'xw' has shape (49, 3)" in log
    leftovers = [p.name for p in (tmp_path / "results/gene7").iterdir() if p.is_file()]
    assert leftovers == []


def test_missing_raw_folder_is_named(tmp_path, raw_config):
    configfile, gene, _ = raw_config
    config = yaml.safe_load(configfile.read_text())
    config["datasets"]["gene7"]["raw"] = str(tmp_path / "elsewhere")
    configfile.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "results/gene7/windows.h5", "-n", configfile=configfile)
    assert run.returncode != 0
    assert str(tmp_path / "elsewhere") in run.stdout + run.stderr


def test_gpu_jobs_given_no_gpu_by_resources_say_they_run_on_the_cpu(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"] = {"epochs": 1}
    config["teachers"]["seeds"] = config["students"]["seeds"] = [1]
    path = tmp_path / "one_epoch.yaml"
    path.write_text(yaml.safe_dump(config))
    teacher = "results/basicmotions/predefined/teachers/sig/wrn16-1/seed1"
    run = snakemake(tmp_path, f"{teacher}/metrics.json", "--resources", "gpu=0", configfile=path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "gafkd: --resources gpu=0 gives the GPU jobs" in run.stdout + run.stderr       # once, before
    log = (tmp_path / "results/basicmotions/logs/teachers/predefined/sig-wrn16-1-seed1.log").read_text()
    assert "scheduled it with none (--resources gpu=0" in log
    assert "device: --resources gpu=0: running on the CPU" in log
