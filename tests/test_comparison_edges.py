"""The comparisons of a report at the edges a KD grid produces (constant gains, tied folds,
duplicated runs, several student architectures), the declared headline, and
the test-set intervals and McNemar's test from the runs' per-window predictions."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_comparisons import grid, row_of
from test_reporting import outputs, write_run

from gafkd.report import comparisons as cmp
from gafkd.report import ranks as rk
from gafkd.errors import ConfigError, InputError
from gafkd.headline import check_headline
from gafkd.train.predictions import write_predictions
from gafkd.report.reporting import write_report_tables
from gafkd.train.run_record import metrics_text, sealed

WINDOWS = 150


def windows_runs(scratch_correct, student_correct, split="holdout", folds=("holdout",)):
    """Student runs whose test accuracies are whole windows out of WINDOWS: {fold: [per seed]}."""
    rows = []
    for fold in folds:
        for name, counts in (("scratch", scratch_correct), ("kd2", student_correct)):
            for seed, count in enumerate(counts[fold], start=1):
                rows.append({"dataset": "gene", "split": split, "fold": fold, "role": "student", "method": name,
                             "teacher_arch": "" if name == "scratch" else "wrn16-1", "arch": "wrn16-1",
                             "alpha": 0.0 if name == "scratch" else 0.3, "seed": seed, "test_n": WINDOWS,
                             "val_accuracy": count / WINDOWS, "test_accuracy": count / WINDOWS})
    return pd.DataFrame(rows)


def test_a_constant_gain_over_four_seeds_is_no_spread_not_p_below_1e_6():
    runs = windows_runs({"holdout": [57, 64, 70, 81]}, {"holdout": [60, 67, 73, 84]})
    row = row_of(cmp.comparison_table(runs, "gene", "holdout")[0])
    assert math.isnan(row["p"]) and "no spread" in row["note"]
    assert math.isnan(row["effect"]) and row["diff"] == pytest.approx(2.0)
    assert row["ci_low"] == row["ci_high"] == pytest.approx(2.0)


def test_tied_loso_folds_give_the_exact_permutation_p():
    # one seed per fold; the student is [1, 1, -1, 2, 2, 3, 3, 4, 5] windows better (of 100 = points)
    gains = [1, 1, -1, 2, 2, 3, 3, 4, 5]
    folds = [f"fold{i}" for i in range(9)]
    runs = windows_runs({f: [60] for f in folds}, {f: [60 + g * 1.5] for f, g in zip(folds, gains)},
                        split="loso", folds=folds)
    row = row_of(cmp.comparison_table(runs, "gene", "loso")[0])
    assert row["pairing"] == "folds (seed means)" and row["p"] == 0.015625


def test_the_design_follows_from_the_runs():
    folds = [f"fold{i}" for i in range(9)]
    runs = cmp.student_runs(grid(folds, (1, 2, 3), effect=3.0, noise=0.8, split="loso"))
    row = cmp.compare(runs, ("kd2", "", "wrn16-1", 0.3), ("scratch", "", "", 0.0))
    assert row["pairing"] == "folds (seed means)" and row["test"].startswith("Wilcoxon")
    paired = runs.pivot_table(index=["fold", "seed"], columns="method", values="test_accuracy") * 100
    diffs = (paired["kd2"] - paired["scratch"]).groupby(level="fold").mean().to_numpy()
    from gafkd.report.statistics import t_interval
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(t_interval(diffs, rho=1 / 9))
    single = cmp.student_runs(grid(["holdout"], (1, 2, 3), effect=3.0, noise=0.8))
    assert cmp.compare(single, ("kd2", "", "wrn16-1", 0.3), ("scratch", "", "", 0.0))["pairing"] == "seeds"
    with pytest.raises(ValueError, match="2 architectures"):
        cmp.compare(pd.concat([single, single.assign(arch="wrn28-1")]), ("kd2", "", "wrn16-1", 0.3),
                    ("scratch", "", "", 0.0))


def test_a_duplicated_run_is_refused_by_name(tmp_path):
    runs = grid(["fold0", "fold1"], (1, 2), effect=3.0, noise=0.5, split="loso")
    twice = pd.concat([runs, runs[(runs["method"] == "kd2") & (runs["fold"] == "fold1") & (runs["seed"] == 2)]])
    with pytest.raises(InputError, match=r"kd2, teachers wrn16-1, α = 0.3, student wrn16-1, fold fold1, seed 2 "
                                         r"appears 2 times"):
        cmp.comparison_table(twice, "gene", "loso")
    with pytest.raises(InputError, match="fold fold1, seed 2 appears 2 times"):
        rk.rank_panels(twice)
    # two metrics.json of the same run (a copied folder): both files named
    first = write_run(tmp_path, 0.6, 1, method="scratch")
    copy = tmp_path / "copy" / "metrics.json"
    copy.parent.mkdir()
    copy.write_text(first.read_text())
    (copy.parent / "history.csv").write_text(first.with_name("history.csv").read_text())
    with pytest.raises(InputError, match=f"seed 1 appears 2 times: {first}, {copy}"):
        write_report_tables([first, copy], outputs(tmp_path), ["wrn16-1"], [0.3], None)


def test_ranks_stay_within_one_student_architecture():
    folds = [f"fold{i}" for i in range(6)]
    small = grid(folds, (1, 2), effect=3.0, noise=0.5, split="loso", methods=("scratch", "kd-sig", "kd2"))
    large = small.assign(arch="wrn28-1", test_accuracy=small["test_accuracy"] + 0.2)
    panels = rk.rank_panels(pd.concat([small, large]))
    assert [(p["student_arch"], p["teacher_arch"]) for p in panels] == [("wrn16-1", "wrn16-1"),
                                                                          ("wrn28-1", "wrn16-1")]
    assert all(len(p["scores"]) == 6 for p in panels)
    # each panel ranks its own students only: the same ranks as the architecture alone
    alone = rk.rank_summary(rk.rank_panels(small)[0])["ranks"]
    assert rk.rank_summary(panels[0])["ranks"].equals(alone)
    assert "student wrn28-1" in rk.rank_blocks(panels)[1][0]


# ------------------------------------------------------------------ the headline

def lab_config(**headline):
    return {"students": {"methods": ["scratch", "kd-gaf", "kd2", "kd2-anneal-sp"], "alphas": [0.3, 0.5],
                         "teacher_archs": ["wrn16-1", "wrn28-3"]},
            "images": {"methods": ["gasf"]}, "report": {"headline": headline}}


def test_the_headline_is_checked_and_completed():
    config = lab_config(method="kd2-anneal-sp", alpha=0.3, teacher_arch="wrn28-3")
    assert check_headline(config) == {"method": "kd2-anneal-sp", "alpha": 0.3, "baseline": "scratch",
                                      "teacher_arch": "wrn28-3", "images": "gasf"}
    for headline, message in [
            ({"method": "kd2-anneal-sp", "alpha": 0.3}, r"teacher_arch: the grid runs 2 teacher architectures"),
            ({"method": "kd2-anneal-sp", "teacher_arch": "wrn16-1"}, "alpha: 'kd2-anneal-sp' runs for each"),
            ({"method": "kd2", "alpha": 0.7, "teacher_arch": "wrn16-1"}, r"alpha: 0.7 is not in students.alphas"),
            ({"method": "kd-sig", "teacher_arch": "wrn16-1"}, "method: 'kd-sig' is not run by this config"),
            ({"method": "kd-gaf", "alpha": 1.0, "teacher_arch": "wrn16-1"},
             "alpha: 'kd-gaf' has no α grid; remove alpha"),
            ({"method": "kd2", "alpha": 0.3, "teacher_arch": "wrn16-3"}, "teacher_arch: 'wrn16-3' is not run")]:
        with pytest.raises(ConfigError, match="report.headline." + message):
            check_headline(lab_config(**headline))


def test_the_headline_is_first_unadjusted_and_the_rest_holm_adjusted(tmp_path):
    folds = [f"fold{i}" for i in range(9)]
    runs = grid(folds, (1, 2), effect=3.0, noise=0.8, split="loso", methods=("scratch", "kd-sig", "kd2"))
    headline = {"method": "kd2", "alpha": 0.3, "baseline": "kd-sig", "teacher_arch": "wrn16-1"}
    table, _ = cmp.comparison_table(runs, "gene", "loso", headline=headline)
    assert list(table["family"]) == ["headline", "exploratory", "exploratory"]
    first = table.iloc[0]
    assert (first["method"], first["baseline_method"], first["kind"]) == ("kd2", "kd-sig", "vs 1 teacher")
    assert first["p_holm"] == first["p"]
    rest = table.iloc[1:]
    from gafkd.report.statistics import holm
    assert list(rest["p_holm"]) == pytest.approx(list(holm(rest["p"].to_numpy())))
    plain, _ = cmp.comparison_table(runs, "gene", "loso")
    assert set(plain["family"]) == {"exploratory"} and len(plain) == 3


def test_the_lab_configs_print_their_headline_first():
    from gafkd.config import check_config_file

    for name, expected in [("gene14_w500", "kd2-anneal-sp"), ("pamap2_loso", "kd2-anneal-sp"),
                           ("gene14_w1000", "kd2-anneal-sp"), ("gene7_w500", "kd2-anneal-sp"),
                           ("pamap2_tda_kd", "kd2")]:
        config = check_config_file(f"configs/{name}.yaml")
        assert config["report"]["headline"]["method"] == expected and config["report"]["alpha"] == 0.05


# ------------------------------------------------------------------ from the per-window predictions

def predicted_run(root, correct, seed, method, alpha=0.0, fold="holdout", labels=None, offset=1000):
    """A run with predictions.npz: window i right where correct[i], sealed as training seals it."""
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    path = write_run(root, float(correct.mean()), seed, method=method, alpha=alpha, fold=fold, n=n)
    labels = np.arange(n) % 3 if labels is None else labels
    logits = np.eye(3, dtype=np.float32)[np.where(correct, labels, (labels + 1) % 3)]
    write_predictions(path.with_name("predictions.npz"), np.arange(n) + offset, labels, logits)
    metrics = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("seal", "history_digest")}
    path.write_text(metrics_text(sealed(metrics, path.with_name("history.csv"), path.with_name("predictions.npz"))))
    return path


def test_one_seed_is_compared_by_mcnemar_on_its_windows_and_windows_give_the_test_set_interval(tmp_path):
    rng = np.random.default_rng(0)
    scratch = rng.random(200) < 0.6
    student = np.where(rng.random(200) < 0.15, ~scratch, scratch) | (rng.random(200) < 0.1)
    paths = [predicted_run(tmp_path, scratch, 1, "scratch"), predicted_run(tmp_path, student, 1, "kd2", 0.3)]
    out = outputs(tmp_path)
    write_report_tables(paths, out, ["wrn16-1"], [0.3], None)
    row = pd.read_csv(out["comparisons"]).iloc[0]
    only_a, only_b = int(np.sum(student & ~scratch)), int(np.sum(~student & scratch))
    assert row["p"] == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert row["test"].startswith("McNemar") and row["p_mcnemar"] == row["p"]
    assert row["mcnemar_counts"] == f"{only_a} vs {only_b} of 200 windows"
    diff = (student.astype(float) - scratch) * 100
    reference = stats.bootstrap((diff,), np.mean, n_resamples=4000, method="percentile", random_state=0)
    assert (row["testset_low"], row["testset_high"]) == pytest.approx(
        (reference.confidence_interval.low, reference.confidence_interval.high), abs=1.0)
    assert row["testset_unit"] == "test windows"
    assert cmp.mcnemar_runs(paths[1], paths[0]) == (row["p"], only_a, only_b)
    markdown = out["tables"].read_text()
    assert "test accuracy, test-set 95 % intervals" in markdown and "bootstrap over the test windows" in markdown


def test_several_seeds_share_the_window_resample(tmp_path):
    rng = np.random.default_rng(1)
    paths, correct = [], {}
    for seed in (1, 2, 3):
        correct[seed] = rng.random(120) < 0.5 + 0.1 * seed
        paths.append(predicted_run(tmp_path, correct[seed], seed, "scratch"))
    from gafkd.report.intervals import interval_table
    from gafkd.report.reporting import table_groups
    from gafkd.report.runs import collect_runs

    frame, unit = interval_table(table_groups(collect_runs(paths), ["wrn16-1"], [0.3]), loso=False)
    mean_over_seeds = np.mean([correct[s] for s in (1, 2, 3)], axis=0) * 100
    reference = stats.bootstrap((mean_over_seeds,), np.mean, n_resamples=4000, method="percentile",
                                random_state=0).confidence_interval
    low, high = (float(v) for v in frame.loc["student from scratch", "wrn16-1"].strip("[]").split(", "))
    assert unit == "windows" and (low, high) == pytest.approx((reference.low, reference.high), abs=1.0)
    # windows that differ between runs of one split are named
    other = predicted_run(tmp_path / "other", correct[1], 4, "scratch", offset=2000)
    with pytest.raises(InputError, match=f"{other}: its test windows are not those of"):
        interval_table(table_groups(collect_runs(paths + [other]), ["wrn16-1"], [0.3]), loso=False)


def test_the_report_prints_the_headline_before_the_tables(tmp_path):
    paths = []
    for seed, acc in zip((1, 2, 3), (0.60, 0.62, 0.66)):
        paths.append(write_run(tmp_path, acc, seed, method="scratch"))
        paths.append(write_run(tmp_path, acc + 0.03 + 0.01 * seed, seed, method="kd2", alpha=0.3))
    out = outputs(tmp_path)
    headline = {"method": "kd2", "alpha": 0.3, "baseline": "scratch", "teacher_arch": "wrn16-1", "images": "gasf"}
    write_report_tables(paths, out, ["wrn16-1"], [0.3], None, headline=headline, alpha=0.01)
    markdown = out["tables"].read_text()
    first = markdown.index("### Headline comparison")
    assert first < markdown.index("### test accuracy") < markdown.index("### Paired comparisons")
    row = pd.read_csv(out["comparisons"]).iloc[0]
    said = markdown[first:].split("\n###", 1)[0]
    assert "tested at report.alpha = 0.01, without adjustment" in said
    assert f"p = {row['p']:.3f} (unadjusted), {'not ' if row['p'] >= 0.01 else ''}significant at α = 0.01" in said
    assert "| 2 teachers (GASF + signal), α = 0.3 vs student from scratch (headline) |" in markdown
