"""Test-set uncertainty, which seeds alone do not show: the test windows (or subjects) are one
sample of the data the numbers are about.

One split: a bootstrap over the test windows (the same resample for every seed, the windows
being the same), from each run's predictions.npz (gafkd.train.predictions); it exists for test
accuracy, the metric the predictions are of. Leave-one-subject-out: a bootstrap over the
subjects (each fold's test subject, its value the mean over its seeds), for any metric. Between
two configurations with one seed, McNemar's exact test on their test windows (pooled over the
folds: each window is tested once).
"""

import math

import numpy as np

from gafkd.errors import InputError
from gafkd.train.predictions import correct, read_predictions
from gafkd.train.run_record import PREDICTIONS_DIGEST, read_metrics
from gafkd.report.statistics import bootstrap_interval, mcnemar_p

WINDOW_METRICS = ("test_accuracy",)     # what the per-window predictions measure
WINDOWS, SUBJECTS = "test windows", "subjects (folds)"


class TestSet:
    """Reads each run's predictions once; the intervals and tests of the report."""

    __test__ = False        # not a pytest class

    def __init__(self):
        self._read = {}

    def correct(self, path):
        """Per test window: (window ids, whether the run at `path` (its metrics.json) got it
        right), or None for a run that records no predictions."""
        path = str(path)
        if path not in self._read:
            metrics = read_metrics(path)
            if PREDICTIONS_DIGEST not in metrics:
                self._read[path] = None
            else:
                arrays = read_predictions(metrics, path)
                self._read[path] = (arrays["window"], correct(arrays))
        return self._read[path]

    def aligned(self, paths):
        """(n runs × windows) correct matrix of runs tested on the same windows, or None when a run
        has no predictions."""
        read = [self.correct(p) for p in paths]
        if any(r is None for r in read):
            return None
        windows = read[0][0]
        for path, (other, _) in zip(paths[1:], read[1:]):
            if not np.array_equal(other, windows):
                raise InputError(f"{path}: its test windows are not those of {paths[0]}, yet both are runs of "
                                 "one split; rebuild the runs of this split")
        return np.stack([r[1] for r in read]).astype(float)

    def group_interval(self, group, metric, loso):
        """(low, high, unit) of the bootstrap interval of a table cell's mean (in points):
        `group` its runs (all seeds and folds)."""
        if loso:
            values = group.groupby("fold")[metric].mean().to_numpy() * 100
            return (*bootstrap_interval(values), SUBJECTS)
        if metric not in WINDOW_METRICS or "path" not in group:
            return math.nan, math.nan, ""
        matrix = self.aligned(list(group["path"]))
        if matrix is None:
            return math.nan, math.nan, ""
        return (*bootstrap_interval(matrix.mean(axis=0) * 100), WINDOWS)

    def difference(self, paired, metric, loso, paths=None):
        """The test-set columns of one comparison: the bootstrap interval of the mean difference
        and, where each fold has one seed, McNemar's test (columns testset_low, testset_high,
        testset_unit, p_mcnemar, mcnemar_counts). `paired`: the pairs' values (columns a and b,
        indexed by fold and seed); `paths`: {'a'/'b': their metrics.json, indexed alike}."""
        row = {"testset_low": math.nan, "testset_high": math.nan, "testset_unit": "", "p_mcnemar": math.nan,
               "mcnemar_counts": ""}
        if loso:
            diffs = (paired["a"] - paired["b"]).groupby(level="fold").mean().to_numpy()
            row["testset_low"], row["testset_high"] = bootstrap_interval(diffs)
            row["testset_unit"] = SUBJECTS
        if metric not in WINDOW_METRICS or paths is None:
            return row
        per_fold = {}
        for fold, seed in paired.index:
            per_fold.setdefault(fold, []).append((paths["a"][(fold, seed)], paths["b"][(fold, seed)]))
        matrices = {fold: (self.aligned([a for a, _ in runs]), self.aligned([b for _, b in runs]))
                    for fold, runs in per_fold.items()}
        if any(a is None or b is None for a, b in matrices.values()):
            return row
        if not loso:
            (a, b), = matrices.values()
            row["testset_low"], row["testset_high"] = bootstrap_interval((a - b).mean(axis=0) * 100)
            row["testset_unit"] = WINDOWS
        if all(len(runs) == 1 for runs in per_fold.values()):
            a = np.concatenate([m[0][0] for m in matrices.values()]).astype(bool)
            b = np.concatenate([m[1][0] for m in matrices.values()]).astype(bool)
            p, only_a, only_b = mcnemar_p(a, b)
            row["p_mcnemar"], row["mcnemar_counts"] = p, f"{only_a} vs {only_b} of {len(a)} windows"
        return row
