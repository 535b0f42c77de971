import json
import math
import statistics

import pandas as pd
import pytest

from gafkd.errors import InputError
from gafkd.data.splits import SPLIT_DESCRIPTIONS
from gafkd.report.reporting import dataset_table, write_report_tables
from gafkd.report.runs import collect_runs, summarize
from gafkd.train.run_record import metrics_text, read_history_bytes, read_metrics, sealed

EXPECTED = {"gene": {"teacher": 3, "student": 3}}
WEIGHTED = ("test_accuracy", "test_macro_f1", "test_accuracy_last", "optimistic_test_accuracy")


def write_run(root, accuracy, seed, method=None, modality=None, arch="wrn16-1", teacher_arch="wrn16-1",
              alpha=0.0, fold="holdout", dataset="gene", n=100, split=None, optimistic=None, encoding="gasf",
              confusion=(), class_names=None):
    if modality:
        config = {"dataset": dataset, "fold": fold, "modality": modality, "arch": arch, "seed": seed}
        path = root / dataset / fold / f"teacher-{modality}-{arch}-{seed}" / "metrics.json"
    else:
        teachers = {"scratch": "none", "kd-gaf": f"{encoding}-{teacher_arch}", "kd-sig": f"sig-{teacher_arch}"}.get(
            method, f"{encoding}-{teacher_arch}+sig-{teacher_arch}")
        config = {"dataset": dataset, "fold": fold, "arch": "wrn16-1", "method": method,
                  "teachers": teachers, "alpha": alpha, "seed": seed}
        path = root / dataset / fold / f"{method}-{teachers}-{alpha}-{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    metrics = {
        "config": config, "val_accuracy": accuracy - 0.01, "best_epoch": 10, "epochs": 20,
        "test_at_best_val": {"accuracy": accuracy, "macro_f1": accuracy - 0.05, "n": n, "confusion": list(confusion)},
        "test_at_last_epoch": {"accuracy": accuracy - 0.02},
        "optimistic_best_test_accuracy": {"accuracy": accuracy + 0.01 if optimistic is None else optimistic,
                                          "epoch": 12},
        "wall_seconds": 5.0, "provenance": {"device": "cpu", "code_version": "0.1.0"}}
    if split is not None:
        metrics["split"] = split
    if class_names is not None:
        metrics["class_names"] = class_names
    seal(path, metrics)
    return path


def seal(path, metrics, history=None):
    """Write a run's history.csv and its sealed metrics.json, as training does."""
    (history if history is not None else pd.DataFrame({"epoch": [1], "train_loss": [1.0]})).to_csv(
        path.with_name("history.csv"), index=False)
    path.write_text(metrics_text(sealed(metrics, path.with_name("history.csv"))))


def outputs(root):
    return {k: root / "report" / n for k, n in
            (("runs", "runs.csv"), ("summary", "summary.csv"), ("comparisons", "comparisons.csv"),
             ("tables", "tables.md"), ("tables_html", "tables.html"))}


def section(markdown, dataset):
    """The text of one dataset's section of tables.md."""
    return markdown.split(f"## {dataset}\n", 1)[1].split("\n## ", 1)[0]


def table_cells(markdown, row):
    """The cells of a markdown table row, by its label."""
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {row} |"))
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


def table_header(markdown, first_column):
    line = next(line for line in markdown.splitlines() if line.startswith("| |") and first_column in line)
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


def cell(values, seeds=None, decimals=2, ddof=1):
    spread = statistics.stdev if ddof == 1 else statistics.pstdev
    std = "–" if len(values) < 2 else f"{100 * spread(values):.{decimals}f}"
    return f"{100 * statistics.mean(values):.{decimals}f} ± {std} ({seeds or len(values)})"


@pytest.fixture
def runs(tmp_path):
    paths = []
    for seed, acc in zip((1, 2, 3), (0.60, 0.62, 0.66)):
        paths.append(write_run(tmp_path, acc, seed, modality="gasf"))
        paths.append(write_run(tmp_path, acc + 0.05, seed, modality="sig"))
        paths.append(write_run(tmp_path, acc + 0.07, seed, method="scratch"))
    for seed, acc in zip((1, 2), (0.70, 0.71)):          # seed 3 is missing
        paths.append(write_run(tmp_path, acc, seed, method="kd2", alpha=0.3))
    paths.append(write_run(tmp_path, 0.69, 1, method="kd2", alpha=0.5))   # a group of one
    return paths


# LOSO: 3 folds of unequal test sizes; accuracies[seed][fold] of the kd2 student (α 0.3).
LOSO_SIZES = {"fold0": 15, "fold1": 100, "fold2": 300}
LOSO_SUBJECTS = {"fold0": ([101], [102]), "fold1": ([102], [103]), "fold2": ([103], [101])}
LOSO_ACCURACY = {1: {"fold0": 0.40, "fold1": 0.70, "fold2": 0.90},
                 2: {"fold0": 0.60, "fold1": 0.65, "fold2": 0.80},
                 3: {"fold0": 0.20, "fold1": 0.75, "fold2": 0.85}}
LOSO_OPTIMISTIC = {seed: {fold: acc + 0.04 + 0.01 * seed for fold, acc in folds.items()}
                   for seed, folds in LOSO_ACCURACY.items()}


def loso_split(fold):
    test, val = LOSO_SUBJECTS[fold]
    return {"kind": "loso", "fold": fold, "test_subjects": test, "val_subjects": val,
            "val_missing_classes": ["running", "rope jumping"] if fold == "fold1" else [],
            "windows": {"train": 900, "val": 15, "test": LOSO_SIZES[fold]}}


@pytest.fixture
def loso_runs(tmp_path):
    paths = []
    for seed, folds in LOSO_ACCURACY.items():
        for fold, acc in folds.items():
            common = dict(fold=fold, dataset="pamap", n=LOSO_SIZES[fold], split=loso_split(fold))
            paths.append(write_run(tmp_path, acc, seed, method="kd2", alpha=0.3,
                                   optimistic=LOSO_OPTIMISTIC[seed][fold], **common))
            paths.append(write_run(tmp_path, acc - 0.1, seed, modality="gasf", **common))
    return paths


def fold_means(per_seed, weighted):
    """Each seed's mean over folds, by hand: unweighted or weighted by the folds' test windows."""
    if weighted:
        return [sum(a * LOSO_SIZES[f] for f, a in folds.items()) / sum(LOSO_SIZES[f] for f in folds)
                for folds in per_seed.values()]
    return [statistics.mean(folds.values()) for folds in per_seed.values()]


def test_summary_against_pandas(runs):
    table = collect_runs(runs)
    assert len(table) == len(runs)
    assert set(table["split"]) == {"holdout"}
    assert list(table["test_n"]) == [100] * len(runs)
    summary = summarize(table, EXPECTED)
    frame = pd.DataFrame([json.loads(p.read_text()) for p in runs])
    accuracies = frame["test_at_best_val"].map(lambda m: m["accuracy"])
    methods = frame["config"].map(lambda c: c.get("method") or ("teacher-sig" if c["modality"] == "sig"
                                                                 else "teacher-gaf"))
    alphas = frame["config"].map(lambda c: c.get("alpha", -1))
    for (method, alpha), values in accuracies.groupby([methods, alphas]):
        row = summary[(summary["method"] == method) & (summary["alpha"].fillna(-1) == alpha)].iloc[0]
        assert row["test_accuracy_mean"] == pytest.approx(values.mean())
        # a single split: the weighted fold mean is the run itself
        assert row["test_accuracy_weighted_mean"] == pytest.approx(values.mean())
        assert (row["seeds"], row["runs"], row["folds"]) == (len(values), len(values), 1)
        if len(values) > 1:
            assert row["test_accuracy_std"] == pytest.approx(values.std(ddof=1))
            assert row["test_accuracy_weighted_std"] == pytest.approx(values.std(ddof=1))
        else:
            assert math.isnan(row["test_accuracy_std"])
        assert row["complete"] == (len(values) == 3)
    assert "val_accuracy_weighted_mean" not in summary


def test_table_layout_and_marks(runs):
    summary = summarize(collect_runs(runs), EXPECTED)
    table = dataset_table(summary, "gene", ["wrn16-1", "wrn28-3"], [0.3, 0.5, 0.7])
    assert list(table.index) == ["GASF teacher", "signal teacher", "student from scratch",
                                 "2 teachers (GASF + signal), α = 0.3", "2 teachers (GASF + signal), α = 0.5"]
    assert list(table.columns) == ["wrn16-1", "wrn28-3"]
    assert table.loc["GASF teacher", "wrn16-1"] == cell([0.60, 0.62, 0.66])
    assert table.loc["2 teachers (GASF + signal), α = 0.3", "wrn16-1"] == "70.50 ± 0.71 (2; 2 of 3 runs !)"
    assert table.loc["2 teachers (GASF + signal), α = 0.5", "wrn16-1"] == "69.00 ± – (1; 1 of 3 runs !)"
    assert table.loc["GASF teacher", "wrn28-3"] == ""
    # the scratch student has no teacher: the same cell in every column
    assert table.loc["student from scratch", "wrn28-3"] == table.loc["student from scratch", "wrn16-1"]


def test_one_row_per_teacher_encoding_and_per_teacher_pair(tmp_path):
    paths = []
    for seed in (1, 2):
        for encoding, acc in (("pi", 0.5), ("gasf", 0.6), ("gasf+gadf+mtf", 0.7)):
            paths.append(write_run(tmp_path, acc, seed, modality=encoding))
            paths.append(write_run(tmp_path, acc + 0.1, seed, method="kd-gaf", alpha=1.0, encoding=encoding))
        paths.append(write_run(tmp_path, 0.4, seed, modality="sig"))
        paths.append(write_run(tmp_path, 0.65, seed, method="kd-sig"))
        for encoding, acc in (("pi", 0.8), ("gasf", 0.9)):
            paths.append(write_run(tmp_path, acc, seed, method="kd2", alpha=0.5, encoding=encoding))
    out = outputs(tmp_path)
    runs, summary = write_report_tables(paths, out, ["wrn16-1"], [0.5], None)
    assert set(runs.loc[runs["role"] == "teacher", "images"]) == {"pi", "gasf", "gasf+gadf+mtf", ""}
    table = dataset_table(summary, "gene", ["wrn16-1"], [0.5])
    assert list(table.index) == ["GASF teacher", "GASF+GADF+MTF teacher", "PI teacher", "signal teacher",
                                 "1 teacher (GASF)", "1 teacher (GASF+GADF+MTF)", "1 teacher (PI)",
                                 "1 teacher (signal)", "2 teachers (GASF + signal), α = 0.5",
                                 "2 teachers (PI + signal), α = 0.5"]
    assert table.loc["PI teacher", "wrn16-1"] == cell([0.5, 0.5])
    assert table.loc["2 teachers (PI + signal), α = 0.5", "wrn16-1"] == cell([0.8, 0.8])
    # a pair is compared with the better one-teacher student of its own teachers
    comparisons = pd.read_csv(out["comparisons"], keep_default_na=False)
    one_teacher = comparisons[comparisons["kind"] == "vs 1 teacher"].set_index("comparison")
    assert list(one_teacher.index) == ["2 teachers (GASF + signal), α = 0.5 vs 1 teacher (GASF)",
                                       "2 teachers (PI + signal), α = 0.5 vs 1 teacher (signal)"]
    assert one_teacher["diff"].tolist() == pytest.approx([20.0, 15.0])
    assert list(one_teacher["baseline_images"]) == ["gasf", ""]


def test_written_files(runs, tmp_path):
    out = outputs(tmp_path)
    write_report_tables(runs, out, ["wrn16-1"], [0.3, 0.5], EXPECTED)
    markdown = out["tables"].read_text()
    assert "| 2 teachers (GASF + signal), α = 0.3 | 70.50 ± 0.71 (2; 2 of 3 runs !) |" in markdown
    assert f"Split: {SPLIT_DESCRIPTIONS['holdout']}." in markdown
    assert "over 1–3 seeds" in markdown
    assert "fold mean" not in markdown and "per fold" not in markdown      # one split, one table
    written = pd.read_csv(out["runs"])
    assert written.shape[0] == len(runs)
    assert {"split", "test_n", "test_subjects", "val_missing_classes"} <= set(written.columns)
    summary = pd.read_csv(out["summary"])
    assert {"seeds", "folds", "runs", "n_expected", "complete", "test_accuracy_weighted_mean"} <= set(summary)
    assert "<table" in out["tables_html"].read_text()


def test_loso_summary_by_hand(loso_runs):
    runs = collect_runs(loso_runs)
    assert set(runs["split"]) == {"loso"}
    assert runs.loc[runs["fold"] == "fold0", "test_subjects"].iloc[0] == "101"
    assert runs.loc[runs["fold"] == "fold1", "val_missing_classes"].iloc[0] == "running, rope jumping"
    summary = summarize(runs, {"pamap": {"teacher": 9, "student": 9}})
    row = summary[summary["method"] == "kd2"].iloc[0]
    assert (row["split"], row["seeds"], row["folds"], row["runs"], row["complete"]) == ("loso", 3, 3, 9, True)
    plain, weighted = fold_means(LOSO_ACCURACY, False), fold_means(LOSO_ACCURACY, True)
    assert abs(statistics.mean(plain) - statistics.mean(weighted)) > 0.05     # the fixture tells them apart
    assert row["test_accuracy_mean"] == pytest.approx(statistics.mean(plain))
    assert row["test_accuracy_std"] == pytest.approx(statistics.stdev(plain))
    assert row["test_accuracy_weighted_mean"] == pytest.approx(statistics.mean(weighted))
    assert row["test_accuracy_weighted_std"] == pytest.approx(statistics.stdev(weighted))
    optimistic = fold_means(LOSO_OPTIMISTIC, True)
    assert row["optimistic_test_accuracy_weighted_mean"] == pytest.approx(statistics.mean(optimistic))
    f1 = fold_means({s: {f: a - 0.05 for f, a in folds.items()} for s, folds in LOSO_ACCURACY.items()}, True)
    assert row["test_macro_f1_weighted_std"] == pytest.approx(statistics.stdev(f1))
    # validation accuracy is not on the test windows: unweighted only
    val = fold_means({s: {f: a - 0.01 for f, a in folds.items()} for s, folds in LOSO_ACCURACY.items()}, False)
    assert row["val_accuracy_mean"] == pytest.approx(statistics.mean(val))
    incomplete = summarize(runs.iloc[1:], {"pamap": {"teacher": 9, "student": 9}})
    assert set(incomplete["runs"]) == {8, 9} and not incomplete["complete"].all()


def test_loso_tables(loso_runs, tmp_path):
    out = outputs(tmp_path)
    write_report_tables(loso_runs, out, ["wrn16-1"], [0.3], {"pamap": {"teacher": 9, "student": 9}})
    markdown = section(out["tables"].read_text(), "pamap")
    assert f"Split: {SPLIT_DESCRIPTIONS['loso']}, 3 folds." in markdown
    unweighted, rest = markdown.split("window-weighted fold mean", 1)
    weighted, rest = rest.split("per fold", 1)
    assert "unweighted fold mean" in unweighted
    assert "mean ± std (ddof 1) over 3 seeds of the per-seed mean over 3 folds (unweighted" in unweighted
    # the last column: the row's test windows, over the folds of a seed
    assert table_cells(unweighted, "2 teachers (GASF + signal), α = 0.3") == [
        cell(fold_means(LOSO_ACCURACY, False)), str(sum(LOSO_SIZES.values()))]
    assert "weighted by each fold's test windows" in weighted
    assert table_cells(weighted, "2 teachers (GASF + signal), α = 0.3")[0] == cell(fold_means(LOSO_ACCURACY, True))
    teacher = {s: {f: a - 0.1 for f, a in folds.items()} for s, folds in LOSO_ACCURACY.items()}
    assert table_cells(weighted, "GASF teacher")[0] == cell(fold_means(teacher, True))
    # per fold: the folds in order with their test subjects and windows, mean ± std over seeds
    assert table_header(rest, "fold0") == ["fold0 (test 101, 15 windows)", "fold1 (test 102, 100 windows)",
                                           "fold2 (test 103, 300 windows)"]
    assert table_cells(rest, "2 teachers (GASF + signal), α = 0.3") == [
        cell([LOSO_ACCURACY[s][fold] for s in LOSO_ACCURACY]) for fold in LOSO_SIZES]
    assert ("fold1: validation subject(s) 103 lack running, rope jumping: its checkpoint is chosen on "
            "fewer classes") in markdown
    assert "fold0:" not in markdown and "fold2:" not in markdown
    assert "window-weighted" in out["tables_html"].read_text()


def test_folds_in_numeric_order(tmp_path):
    paths = [write_run(tmp_path, acc, seed, method="scratch", fold=fold, dataset="pamap",
                       split={"test_subjects": [subject]})
             for fold, subject, acc in (("fold10", 111, 0.5), ("fold2", 103, 0.6)) for seed in (1, 2)]
    assert list(collect_runs(paths)["fold"]) == ["fold2", "fold2", "fold10", "fold10"]
    out = outputs(tmp_path)
    write_report_tables(paths, out, ["wrn16-1"], [], {"pamap": {"teacher": 4, "student": 4}})
    assert table_header(out["tables"].read_text(), "fold2") == ["fold2 (test 103, 100 windows)",
                                                                    "fold10 (test 111, 100 windows)"]


def test_small_and_incomplete_test_sets_are_named(loso_runs, tmp_path, caplog):
    # fold1's test subject did no rope jumping: its row of the confusion matrix is empty
    names = ["lying", "running", "rope jumping"]
    confusion = [[40, 5, 0], [5, 50, 0], [0, 0, 0]]
    paths = [p for p in loso_runs if "fold1" not in p.parts] + [
        write_run(tmp_path / "fold1", acc, seed, method="kd2", alpha=0.3, fold="fold1", dataset="pamap",
                  n=100, split=loso_split("fold1"), confusion=confusion, class_names=names)
        for seed, acc in ((1, 0.7), (2, 0.65), (3, 0.75))]
    out = outputs(tmp_path)
    with caplog.at_level("WARNING", logger="gafkd.report.reporting"):
        write_report_tables(paths, out, ["wrn16-1"], [0.3], {"pamap": {"teacher": 9, "student": 9}},
                            min_test_windows=20)
    notes = section(out["tables"].read_text(), "pamap").split("### Small or incomplete test sets", 1)[1]
    notes = notes.split("###", 1)[0]
    assert "fold0 (test 101): 15 test windows, fewer than 20 (report.min_test_windows)" in notes
    assert "fold1 (test 102): no test window of rope jumping" in notes
    assert "fold2" not in notes                                     # 300 windows, every class
    assert [r.getMessage() for r in caplog.records] == [
        "pamap, fold0 (test 101): 15 test windows, fewer than 20 (report.min_test_windows): its numbers rest "
        "on few windows", "pamap, fold1 (test 102): no test window of rope jumping: its numbers leave these "
        "classes out"]
    # with a threshold under every fold's size, only the missing class is said
    write_report_tables(paths, out, ["wrn16-1"], [0.3], {"pamap": {"teacher": 9, "student": 9}},
                        min_test_windows=10)
    assert "fold0 (test 101): 15" not in out["tables"].read_text()


def test_compare_with_lab(loso_runs, tmp_path):
    out = outputs(tmp_path)
    write_report_tables(loso_runs, out, ["wrn16-1"], [0.3], {"pamap": {"teacher": 9, "student": 9}})
    lab = section(out["tables"].read_text(), "pamap").split("### Compare with the lab", 1)[1]
    header = table_header(lab, "lab")
    assert header == ["wrn16-1 lab (best epoch on test)", "wrn16-1 gafkd (best on validation)"]
    # the lab's std: population (ddof 0), and the note says so
    assert "mean ± std (ddof 0, the population std the lab reports)" in lab
    cells = dict(zip(header, table_cells(lab, "2 teachers (GASF + signal), α = 0.3")))
    assert cells["wrn16-1 lab (best epoch on test)"] == cell(fold_means(LOSO_OPTIMISTIC, False), ddof=0)
    assert cells["wrn16-1 gafkd (best on validation)"] == cell(fold_means(LOSO_ACCURACY, False), ddof=0)
    assert cell(fold_means(LOSO_ACCURACY, False), ddof=0) != cell(fold_means(LOSO_ACCURACY, False))


def test_the_labs_reported_numbers_stand_beside_gafkds(loso_runs, tmp_path):
    reference = {"pamap": {"source": "the lab's notes, PAMAP2 LOSO", "runs": 3, "ddof": 0, "values": [
        {"method": "teacher-gaf", "images": "gasf", "accuracy": {"wrn16-1": 81.44, "wrn28-1": 81.91}},
        {"method": "kd2", "images": "gasf", "alpha": 0.3, "accuracy": {"wrn16-1": [70.26, 0.36]}},
        {"method": "kd2", "images": "gasf", "alpha": 0.5, "accuracy": {"wrn16-1": [99.0, 0.1]}}]}}
    out = outputs(tmp_path)
    write_report_tables(loso_runs, out, ["wrn16-1", "wrn28-1"], [0.3], {"pamap": {"teacher": 9, "student": 9}},
                        reference=reference)
    lab = section(out["tables"].read_text(), "pamap").split("### Compare with the lab", 1)[1]
    assert lab.lstrip().startswith("lab reported: the lab's notes, PAMAP2 LOSO (std with ddof 0; in brackets its "
                                   "runs); never a test target.")
    header = table_header(lab, "lab")
    assert header[:3] == ["wrn16-1 lab reported", "wrn16-1 lab (best epoch on test)",
                          "wrn16-1 gafkd (best on validation)"]
    kd2 = dict(zip(header, table_cells(lab, "2 teachers (GASF + signal), α = 0.3")))
    assert kd2["wrn16-1 lab reported"] == "70.26 ± 0.36 (3)"      # α 0.5's entry is not this row
    assert kd2["wrn16-1 gafkd (best on validation)"] == cell(fold_means(LOSO_ACCURACY, False), ddof=0)
    assert kd2["wrn28-1 lab reported"] == ""
    teacher = dict(zip(header, table_cells(lab, "GASF teacher")))
    assert teacher["wrn16-1 lab reported"] == "81.44 (3)" and teacher["wrn28-1 lab reported"] == "81.91 (3)"
    # another dataset's section has no reported column
    write_report_tables(loso_runs, out, ["wrn16-1"], [0.3], {"pamap": {"teacher": 9, "student": 9}},
                        reference={"gene": reference["pamap"]})
    assert "lab reported" not in out["tables"].read_text()


def test_sections_name_their_split(runs, tmp_path):
    paths = runs + [write_run(tmp_path, acc, seed, method="scratch", fold="random", dataset="motion")
                    for seed, acc in zip((1, 2, 3), (0.9, 0.92, 0.95))]
    out = outputs(tmp_path)
    write_report_tables(paths, out, ["wrn16-1"], [0.3], {"gene": EXPECTED["gene"],
                                                          "motion": {"teacher": 3, "student": 3}})
    markdown = out["tables"].read_text()
    motion, gene = section(markdown, "motion"), section(markdown, "gene")
    assert f"Split: {SPLIT_DESCRIPTIONS['random']}." in motion and "random window split" in motion
    assert "random window split" not in gene and "subject-disjoint holdout" in gene
    assert table_cells(motion, "student from scratch") == [cell([0.9, 0.92, 0.95]), "100"]


def test_other_metric_and_decimals(loso_runs, tmp_path):
    out = outputs(tmp_path)
    write_report_tables(loso_runs, out, ["wrn16-1"], [0.3], {"pamap": {"teacher": 9, "student": 9}},
                        metric="val_accuracy", decimals=1)
    markdown = section(out["tables"].read_text(), "pamap")
    val = {s: {f: a - 0.01 for f, a in folds.items()} for s, folds in LOSO_ACCURACY.items()}
    assert table_cells(markdown, "2 teachers (GASF + signal), α = 0.3")[0] == cell(fold_means(val, False), decimals=1)
    assert "window-weighted fold mean" not in markdown and "no window-weighted version" in markdown


def test_figures_name_their_split(loso_runs, tmp_path, monkeypatch):
    import gafkd.report.figures as figures

    for path in loso_runs:
        metrics = json.loads(path.read_text())
        metrics["class_names"] = ["walking", "running"]
        # each run's own matrix: its seed and its fold number off the diagonal
        fold, seed = int(metrics["config"]["fold"][-1]), metrics["config"]["seed"]
        metrics["test_at_best_val"]["confusion"] = [[5, seed], [fold, 7]]
        seal(path, metrics, pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_accuracy": [0.5, 0.6]}))
    out = outputs(tmp_path)
    write_report_tables(loso_runs, out, ["wrn16-1"], [0.3], {"pamap": {"teacher": 9, "student": 9}})
    titles, drawn, save = [], {}, figures._save

    def save_and_record(fig, path):
        titles.append(" ".join([fig._suptitle.get_text() if fig._suptitle else ""]
                               + [ax.get_title() for ax in fig.axes]))
        ax = fig.axes[0]
        drawn[path.stem] = {"texts": [t.get_text() for t in ax.texts],
                            "errorbars": [(c.lines[0].get_xdata(), c.lines[0].get_ydata(),
                                           c.lines[2][0].get_segments()) for c in ax.containers
                                          if hasattr(c, "has_yerr")]}
        save(fig, path)

    monkeypatch.setattr(figures, "_save", save_and_record)
    names = ("alpha", "teachers_vs_students", "confusion", "learning_curves")
    pngs = {name: tmp_path / "report" / f"pamap_{name}.png" for name in names}
    figures.write_figures(out["runs"], "pamap", pngs)
    assert all(pngs[name].read_bytes()[:4] == b"\x89PNG" for name in names)
    assert len(titles) == 4 and all("pamap" in title and "(LOSO, 3 folds" in title for title in titles)
    # the 2-teacher students at α 0.3: mean ± std over seeds of each seed's fold mean, in %
    [(x, y, segments)] = drawn["pamap_alpha"]["errorbars"]
    plain = fold_means(LOSO_ACCURACY, False)
    assert list(x) == [0.3] and list(y) == pytest.approx([100 * statistics.mean(plain)])
    (_, low), (_, high) = segments[0]
    assert (high - low) / 2 == pytest.approx(100 * statistics.stdev(plain))
    # the confusion matrix of the best student by validation accuracy: seed 1, fold2 (0.90)
    assert drawn["pamap_confusion"]["texts"] == ["5", "1", "2", "7"]


def test_bad_metrics_file(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="metrics.json: metrics file is damaged \\(no seal"):
        collect_runs([bad])
    seal(bad, {"config": {}})
    with pytest.raises(InputError, match="metrics.json: not a gafkd metrics file"):
        collect_runs([bad])


def test_an_edited_metrics_or_history_file_is_named_not_counted(tmp_path):
    path = write_run(tmp_path, 0.6, 1, "scratch")
    assert collect_runs([path])["test_accuracy"].tolist() == [0.6]
    edited = json.loads(path.read_text())
    edited["test_at_best_val"]["accuracy"] = 0.99
    path.write_text(json.dumps(edited, indent=2) + "\n")
    with pytest.raises(InputError, match=r"metrics.json: metrics file is damaged \(its contents do not match its "
                                         r"seal: edited after it was written\); delete it and Snakemake rebuilds it"):
        collect_runs([path])
    path = write_run(tmp_path, 0.6, 2, "scratch")
    history = path.with_name("history.csv")
    history.write_text(history.read_text().replace("1.0", "0.1"))
    with pytest.raises(InputError, match=r"history.csv: history file is damaged \(it does not match the digest"):
        read_history_bytes(history, read_metrics(path), path)


def test_tables_of_runs_validated_on_the_test_subject_say_so(tmp_path):
    paths = []
    for fold in ("fold0", "fold1"):
        for seed in (1, 2):
            record = {"validation": "test", "test_subjects": [101 + int(fold[-1])], "val_subjects": []}
            paths.append(write_run(tmp_path, 0.6, seed, method="scratch", fold=fold, split=record))
    out = outputs(tmp_path)
    write_report_tables(paths, out, ["wrn16-1"], [0.5], None)
    markdown = out["tables"].read_text()
    assert "Split: leave-one-subject-out, 2 folds; selection on the test subject (the lab's protocol)" in markdown
    # no table calls the test subject that selected the epoch "validation"
    assert "checkpoint of the best accuracy on the test windows, which selected the epoch" in markdown
    assert "checkpoint of the best validation accuracy" not in markdown
    assert "wrn16-1 gafkd (best on the test subject)" in markdown and "best on validation" not in markdown
    held_out = write_run(tmp_path / "other", 0.6, 1, method="scratch", split={"test_subjects": [101]})
    write_report_tables([held_out], outputs(tmp_path / "other"), ["wrn16-1"], [0.5], None)
    assert "selection on the test subject" not in (tmp_path / "other" / "report" / "tables.md").read_text()
