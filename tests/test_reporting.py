import json
import math

import pandas as pd
import pytest

from gafkd.errors import InputError
from gafkd.reporting import collect_runs, dataset_table, summarize, write_report_tables

EXPECTED = {"gene": {"teacher": 3, "student": 3}}


def write_run(root, accuracy, seed, method=None, modality=None, arch="wrn16-1", teacher_arch="wrn16-1",
              alpha=0.0, fold="holdout"):
    if modality:
        config = {"dataset": "gene", "fold": fold, "modality": modality, "arch": arch, "seed": seed}
        path = root / f"teacher-{modality}-{arch}-{seed}" / "metrics.json"
    else:
        teachers = {"scratch": "none", "kd-gaf": f"gaf-{teacher_arch}", "kd-sig": f"sig-{teacher_arch}"}.get(
            method, f"gaf-{teacher_arch}+sig-{teacher_arch}")
        config = {"dataset": "gene", "fold": fold, "arch": "wrn16-1", "method": method,
                  "teachers": teachers, "alpha": alpha, "seed": seed}
        path = root / f"{method}-{teacher_arch}-{alpha}-{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "config": config, "val_accuracy": accuracy - 0.01, "best_epoch": 10, "epochs": 20,
        "test_at_best_val": {"accuracy": accuracy, "macro_f1": accuracy - 0.05, "n": 100, "confusion": []},
        "test_at_last_epoch": {"accuracy": accuracy - 0.02},
        "optimistic_best_test_accuracy": {"accuracy": accuracy + 0.01, "epoch": 12},
        "wall_seconds": 5.0, "provenance": {"device": "cpu", "code_version": "0.1.0"}}))
    return path


@pytest.fixture
def runs(tmp_path):
    paths = []
    for seed, acc in zip((1, 2, 3), (0.60, 0.62, 0.66)):
        paths.append(write_run(tmp_path, acc, seed, modality="gaf"))
        paths.append(write_run(tmp_path, acc + 0.05, seed, modality="sig"))
        paths.append(write_run(tmp_path, acc + 0.07, seed, method="scratch"))
    for seed, acc in zip((1, 2), (0.70, 0.71)):          # seed 3 is missing
        paths.append(write_run(tmp_path, acc, seed, method="kd2", alpha=0.3))
    paths.append(write_run(tmp_path, 0.69, 1, method="kd2", alpha=0.5))   # a group of one
    return paths


def test_summary_against_pandas(runs):
    table = collect_runs(runs)
    assert len(table) == len(runs)
    summary = summarize(table, EXPECTED)
    frame = pd.DataFrame([json.loads(p.read_text()) for p in runs])
    accuracies = frame["test_at_best_val"].map(lambda m: m["accuracy"])
    methods = frame["config"].map(lambda c: c.get("method") or f"teacher-{c['modality']}")
    alphas = frame["config"].map(lambda c: c.get("alpha", -1))
    for (method, alpha), values in accuracies.groupby([methods, alphas]):
        row = summary[(summary["method"] == method) & (summary["alpha"].fillna(-1) == alpha)].iloc[0]
        assert row["test_accuracy_mean"] == pytest.approx(values.mean())
        assert row["n"] == len(values)
        if len(values) > 1:
            assert row["test_accuracy_std"] == pytest.approx(values.std(ddof=1))
        else:
            assert math.isnan(row["test_accuracy_std"])
        assert row["complete"] == (len(values) == 3)


def test_table_layout_and_marks(runs):
    summary = summarize(collect_runs(runs), EXPECTED)
    table = dataset_table(summary, "gene", ["wrn16-1", "wrn28-3"], [0.3, 0.5, 0.7])
    assert list(table.index) == ["GAF teacher", "signal teacher", "student from scratch",
                                 "2 teachers, α = 0.3", "2 teachers, α = 0.5"]
    assert list(table.columns) == ["wrn16-1", "wrn28-3"]
    gaf = pd.Series([0.60, 0.62, 0.66])
    assert table.loc["GAF teacher", "wrn16-1"] == f"{100 * gaf.mean():.2f} ± {100 * gaf.std():.2f} (3)"
    assert table.loc["2 teachers, α = 0.3", "wrn16-1"] == "70.50 ± 0.71 (2 of 3 !)"
    assert table.loc["2 teachers, α = 0.5", "wrn16-1"] == "69.00 ± – (1 of 3 !)"
    assert table.loc["GAF teacher", "wrn28-3"] == ""
    # the scratch student has no teacher: the same cell in every column
    assert table.loc["student from scratch", "wrn28-3"] == table.loc["student from scratch", "wrn16-1"]


def test_written_files(runs, tmp_path):
    out = {k: tmp_path / "report" / n for k, n in
           (("runs", "runs.csv"), ("summary", "summary.csv"), ("tables", "tables.md"), ("tables_html", "tables.html"))}
    write_report_tables(runs, out, ["wrn16-1"], [0.3, 0.5], EXPECTED)
    markdown = out["tables"].read_text()
    assert "| 2 teachers, α = 0.3 | 70.50 ± 0.71 (2 of 3 !) |" in markdown
    assert pd.read_csv(out["runs"]).shape[0] == len(runs)
    assert "<table" in out["tables_html"].read_text()


def test_bad_metrics_file(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="metrics.json: not a gafkd metrics file"):
        collect_runs([bad])
