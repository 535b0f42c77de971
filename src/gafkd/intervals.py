"""The test-set intervals of the report's tables: for every mean of a dataset's table, a
percentile bootstrap interval over its test windows, or over its test subjects for LOSO
(gafkd.testset)."""

import pandas as pd

from gafkd.reporting import _part, select, table_rows
from gafkd.testset import SUBJECTS, TestSet


def interval_table(runs, dataset, split, teacher_archs, alphas, metric="test_accuracy", decimals=2, testset=None):
    """(DataFrame of '[low, high]' cells in %, rows and columns as the dataset's table, the unit
    resampled: 'subjects', 'windows' or None where no interval exists)."""
    part = _part(runs, dataset, split)
    loso = part["fold"].nunique() > 1
    testset = TestSet() if testset is None else testset
    table, units = {}, set()
    for label, method, images, alpha in table_rows(part, alphas):
        cells = {}
        for arch in teacher_archs:
            group = select(part, method, images, arch, alpha)
            if group.empty:
                cells[arch] = ""
                continue
            low, high, unit = testset.group_interval(group, metric, loso)
            cells[arch] = "–" if pd.isna(low) else f"[{low:.{decimals}f}, {high:.{decimals}f}]"
            units.add(unit)
        table[label] = cells
    known = {u for u in units if u}
    unit = None if not known else "subjects" if SUBJECTS in known else "windows"
    return pd.DataFrame.from_dict(table, orient="index", columns=list(teacher_archs)), unit


def interval_block(runs, dataset, split, teacher_archs, alphas, metric, decimals, testset=None):
    """The table of test-set intervals of one dataset's split (gafkd.testset)."""
    frame, unit = interval_table(runs, dataset, split, teacher_archs, alphas, metric, decimals, testset)
    name = metric.replace("_", " ")
    if unit is None:
        return (f"{name}, test-set 95 % intervals", f"No test-set interval of {name}: it is measured per window "
                "for test accuracy only, and these runs record no per-window predictions of it.", None)
    how = ("a bootstrap over the test subjects (folds; each one's value the mean over its seeds): how much "
           "another sample of subjects could move the unweighted fold mean" if unit == "subjects" else
           "a bootstrap over the test windows, the same resample for every seed (from the runs' per-window "
           "predictions): how much another sample of windows could move the mean over seeds")
    return (f"{name}, test-set 95 % intervals", f"Percentile intervals of each mean above, in %: {how}. The "
            "std over seeds does not show this.", frame)
