"""The default pipeline end to end on the CPU: BasicMotions to the whole student grid."""
import json

import pytest
import yaml
from conftest import REPO
from test_workflow import snakemake


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    run = snakemake(workdir)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return workdir, yaml.safe_load((REPO / "config.yaml").read_text())


def test_whole_student_grid_is_built(demo):
    workdir, config = demo
    students = config["students"]
    runs = sorted((workdir / "results/basicmotions/holdout/students").rglob("metrics.json"))
    per_seed = 1 + 2 + 3 * len(students["alphas"])     # scratch, kd-gaf, kd-sig, kd2 family × α
    assert len(runs) == per_seed * len(students["seeds"])
    for path in runs:
        metrics = json.loads(path.read_text())
        assert metrics["epochs"] == config["training"]["epochs"]
        assert metrics["provenance"]["device"] == "cpu"


def test_signal_teachers_reach_90_percent_on_basicmotions(demo):
    workdir, config = demo
    for seed in config["teachers"]["seeds"]:
        path = workdir / f"results/basicmotions/holdout/teachers/sig/wrn16-1/seed{seed}/metrics.json"
        assert json.loads(path.read_text())["test_at_best_val"]["accuracy"] >= 0.9
