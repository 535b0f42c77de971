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


def test_tables_figures_and_report(demo):
    workdir, config = demo
    report = workdir / "results/report"
    tables = (report / "tables.md").read_text()
    assert "| GAF teacher |" in tables and "| + SP, α = 0.5 |" in tables
    assert "!" not in tables.split("\n", 4)[-1].replace("`!` marks", "")   # every group complete
    for name in ("alpha", "teachers_vs_students", "confusion", "learning_curves"):
        assert (report / f"basicmotions_{name}.png").read_bytes()[:4] == b"\x89PNG"
    html = workdir / "report.html"
    run = snakemake(workdir, "--report", str(html))
    assert run.returncode == 0, run.stderr
    text = html.read_text(errors="replace")
    assert "basicmotions_alpha.png" in text and "weight of the GAF teacher" in text


def test_changed_report_option_retrains_nothing(demo, tmp_path):
    workdir, config = demo
    changed = {**config, "report": {"decimals": 1}}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(changed))
    run = snakemake(workdir, "-n", configfile=configfile)
    assert run.returncode == 0, run.stderr
    scheduled = {line.split()[1] for line in run.stdout.splitlines() if line.startswith("rule ")}
    assert scheduled == {"aggregate:", "figures:", "all:"} or scheduled == {"aggregate:", "figures:"}, scheduled
