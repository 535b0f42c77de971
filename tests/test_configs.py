"""Every ready experiment in configs/ dry-runs, as a user types it from the repository root, on
fixture raw data: it schedules exactly its grid, and every result path names its split."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from rawfiles import make_gene_folder, make_pamap2_folder
from test_workflow import snakemake

from gafkd import grid
from gafkd.config import check_config_file

CHECKOUT_PARTS = ("Snakefile", "config.yaml", "configs", "workflow", "src")

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def job_counts(output):
    counts = {}
    block = output.split("Job stats:")[1]
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match is None:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def expected_counts(path, folds):
    """Jobs per rule of config file `path` with `folds` folds, from the grid's own expansion
    (gafkd.grid): each teacher and student run once, each teacher's outputs and similarity cache
    once however many students read them."""
    config = check_config_file(path)   # LOSO folds planned from the download's subjects
    (name,) = config["datasets"]
    fold_names = {name: ["holdout"] if folds == 1 and config["datasets"][name]["split"]["kind"] == "holdout"
                  else [f"fold{i}" for i in range(folds)]}
    students = grid.student_runs(config, fold_names)
    packs = grid.student_packs(config, fold_names)
    teachers = grid.teacher_runs(config, fold_names)
    teacher_packs = grid.teacher_packs(config, fold_names)
    reads = [path for run in students for key, path in grid.student_inputs(config, run).items()]
    counts = {
        "build_windows": 1,
        "build_images": len(config["images"]["methods"]),
        "train_teacher": len(teachers) - sum(len(pack.runs) for pack in teacher_packs),
        **{f"train_teacher_pack{number}": 1 for number in range(len(teacher_packs))},
        "teacher_outputs": len({p for p in reads if p.endswith("/outputs.h5")}),
        "teacher_similarity": len({p for p in reads if p.endswith("/similarity.h5")}),
        "train_student": len(students) - sum(len(pack.runs) for pack in packs),
        **{f"train_student_pack{number}": 1 for number in range(len(packs))},
        "aggregate": 1,
        "figures": len(config["datasets"]),
        "critical_difference": 1,
        "all": 1,
    }
    return {rule: count for rule, count in counts.items() if count}


def test_the_lab_grid_has_the_published_number_of_runs():
    # gene14_w500, one holdout fold: teachers 2 modalities x 4 archs x 3 seeds; students per
    # seed: scratch + 4 teacher archs x (kd-gaf, kd-sig) + 4 x 3 kd2 methods x 5 alphas.
    counts = expected_counts(REPO / "configs/gene14_w500.yaml", 1)
    config = check_config_file(REPO / "configs/gene14_w500.yaml")
    assert len(grid.teacher_runs(config, {"gene14_w500": ["holdout"]})) == 24
    # in 16 jobs: 12 GAF teachers alone, the signal teachers' 3 seeds in one pack per architecture
    teacher_packs = [rule for rule in counts if rule.startswith("train_teacher_pack")]
    assert counts["train_teacher"] == 12 and len(teacher_packs) == 4
    assert len(grid.student_runs(config, {"gene14_w500": ["holdout"]})) == 3 * (1 + 4 * 2 + 4 * 3 * 5) == 207
    # in 14 jobs: the 3 scratch students are the signal teachers' runs; the 84 runs that distil
    # from cached logits (kd-gaf, kd-sig, kd2 of every teacher architecture) fill 6 packs of up
    # to 16, the 60 kd2-anneal runs 4; the kd2-anneal-sp runs pack within their teacher
    # architecture (the pack holds those teachers' similarity caches): 4 packs of 15
    packs = [rule for rule in counts if rule.startswith("train_student_pack")]
    assert counts["train_student"] == 3 and len(packs) == 6 + 4 + 4 == 14
    assert counts["teacher_outputs"] == 24 and counts["teacher_similarity"] == 24


def checkout_copy(root):
    """The workflow's files laid out as a checkout at root (so raw data can sit under it)."""
    root.mkdir()
    for part in CHECKOUT_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, root / part)
    return root


def dry_run_outputs(stdout):
    return re.findall(r"^\s+output: (.+)$", stdout, flags=re.MULTILINE)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_dry_run_from_the_repository_root(path, tmp_path):
    root = checkout_copy(tmp_path / "gafkd")
    config = yaml.safe_load(path.read_text())
    (name, spec), = config["datasets"].items()
    raw = root / spec["raw"]
    if spec["source"] == "geneactiv_mat":
        make_gene_folder(raw, window=spec["window"], subjects=(1, 2, 3), classes=tuple(spec["class_map"]),
                         per_class=1)
        folds = ["holdout"]
    else:
        folds = [f"fold{i}" for i in range(len(make_pamap2_folder(raw)))]
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "12", "--resources", "gpu=1",
                          "--configfile", f"configs/{path.name}"], cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert job_counts(run.stdout) == expected_counts(path, len(folds))
    outputs = [p for line in dry_run_outputs(run.stdout) for p in line.split(", ")]
    assert outputs and all(p.startswith(f"results/{name}/") or p.startswith(f"results/reports/{path.stem}/")
                           for p in outputs), "only this config's dataset (the demo is replaced)"
    runs = [p for p in outputs if "/teachers/" in p or "/students/" in p]
    assert runs and {p.split("/")[2] for p in runs if "/logs/" not in p} == set(folds)


def test_configs_carry_the_labs_recipe():
    assert {p.stem for p in CONFIGS} == {"gene14_w500", "gene14_w1000", "gene7_w500", "pamap2_loso",
                                         "pamap2_tda_kd", "qgaf_vs_gaf"}
    for path in CONFIGS:
        config = yaml.safe_load(path.read_text())
        kd = config["students"]["kd"]
        assert config["training"]["epochs"] == 200 and config["training"]["batch_size"] == 64
        if path.stem == "pamap2_tda_kd":       # TDA_KD train_ad.py's loss on persistence images
            assert (kd["lambda"], kd["temperature"], config["students"]["alphas"]) == (0.99, 4, [0.7])
            assert (kd["standardize_logits"], kd["kl_temperature"], kd["ce_standardized"]) == (True, 0.5, True)
            assert config["images"] == {"methods": ["pi"], "size": 64, "pi": {"recipe": "lab"}, "dtype": "float32"}
        else:                                  # TGD main_train.py's loss, the lab notes' λ
            assert kd["temperature"] == 4 and kd["lambda"] == 0.7 and kd["sp_merge"] == "raw"
            assert config["students"]["alphas"] == [0.1, 0.3, 0.5, 0.7, 0.9]
        assert config["teachers"]["archs"] == ["wrn16-1", "wrn16-3", "wrn28-1", "wrn28-3"]
        assert config["students"]["seeds"] == [1, 2, 3] and config["students"]["arch"] == "wrn16-1"
        # the lab trained under PyTorch's default numerics (TF32 convolutions) with its own lr
        # boundaries, KL reduction and SP merge
        assert config["training"]["precision"] == "tf32" and config["training"]["lr_boundaries"] == "lab"
        assert kd["reduction"] == "mean" and config["images"]["dtype"] == "float32"
        (spec,) = config["datasets"].values()
        assert spec["standardize"] == "mean_window_std"
        if spec["source"] == "geneactiv_mat":     # subjects unseen in training by default
            assert spec["split"]["kind"] == "holdout"
        else:
            assert spec["protocol"] == "lab" and spec["split"]["kind"] == "loso"
    assert yaml.safe_load(Path(REPO / "configs/pamap2_loso.yaml").read_text())["students"]["kd"]["beta"] == 200


def test_pamap2_config_from_nothing_plans_its_download_and_nine_folds(tmp_path):
    path = REPO / "configs/pamap2_loso.yaml"
    run = snakemake(tmp_path, "-n", configfile=path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    counts = job_counts(run.stdout)
    assert counts["download_raw"] == 1
    assert {rule: counts.get(rule) for rule in expected_counts(path, 9)} == expected_counts(path, 9)
    assert "output: data/PAMAP2_Dataset/Protocol" in run.stdout


def test_loso_config_without_raw_data_or_download_names_the_folder(tmp_path):
    config = yaml.safe_load((REPO / "configs/pamap2_loso.yaml").read_text())
    del config["datasets"]["pamap2"]["download"]
    path = tmp_path / "pamap2_loso.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", configfile=path)
    assert run.returncode != 0
    assert "Cannot list the folds: PAMAP2 raw folder data/PAMAP2_Dataset/Protocol does not exist" in run.stdout + run.stderr
    assert "add `download: {}` to the dataset" in run.stdout + run.stderr
