"""The test-set intervals of the report's tables: for every mean of a dataset's table, a
percentile bootstrap interval over its test windows, or over its test subjects for LOSO
(gafkd.report.testset)."""

import pandas as pd

from gafkd.report.testset import SUBJECTS, TestSet


def interval_table(groups, loso, metric="test_accuracy", decimals=2, testset=None):
    """(DataFrame of '[low, high]' cells in %, its rows and columns those of `groups` {row label:
    {column: the cell's runs}}, the unit resampled: 'subjects', 'windows' or None where no
    interval exists)."""
    testset = TestSet() if testset is None else testset
    table, units = {}, set()
    for label, cells in groups.items():
        table[label] = {}
        for column, group in cells.items():
            if group.empty:
                table[label][column] = ""
                continue
            low, high, unit = testset.group_interval(group, metric, loso)
            table[label][column] = "–" if pd.isna(low) else f"[{low:.{decimals}f}, {high:.{decimals}f}]"
            units.add(unit)
    known = {u for u in units if u}
    unit = None if not known else "subjects" if SUBJECTS in known else "windows"
    columns = list(next(iter(groups.values()), {}))
    return pd.DataFrame.from_dict(table, orient="index", columns=columns), unit


def interval_block(groups, loso, metric, decimals, testset=None):
    """The table of test-set intervals of one dataset's split (gafkd.report.testset): `groups` {row label:
    {teacher architecture: the cell's runs}}."""
    frame, unit = interval_table(groups, loso, metric, decimals, testset)
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
