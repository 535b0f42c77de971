"""The paired comparisons as the report prints them: the note above each table, and its cells.

The headline (report.headline) comes first, tested at report.alpha without adjustment; the
other comparisons follow as exploratory, their p Holm-adjusted (gafkd.report.comparisons).
"""

import numpy as np
import pandas as pd

from gafkd.report.comparisons import DECISIVE
from gafkd.headline import headline_label
from gafkd.report.ranks import p_text
from gafkd.report.statistics import SIGNIFICANCE, smallest_wilcoxon_p


def _number(value, decimals, signed=False):
    return "–" if pd.isna(value) else f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _interval(low, high, decimals, signed=True):
    return "" if pd.isna(low) else f" [{_number(low, decimals, signed)}, {_number(high, decimals, signed)}]"


def design_text(n_folds, rope):
    """Which pairs, which test and why, for the note above a comparison table."""
    bayes = (f"P(better), P(equiv.), P(worse): posterior probabilities that the mean difference is above "
             f"+{rope:g}, within ±{rope:g} (the ROPE, `report.rope`) or below -{rope:g} points")
    if n_folds > 1:
        return (f"Pairs: runs of the same fold and seed; each fold's differences are averaged over its seeds "
                f"first (the seeds of a fold share its test subject), then the {n_folds} folds are compared. "
                "Test: Wilcoxon's signed-rank test, exact with ties (every sign flip of the tied ranks), "
                "two-sided, over the fold differences (no normality assumed; differences within half a test "
                "window of 0 dropped, within half a window of each other tied); effect: matched-pairs "
                "rank-biserial r with a bootstrap interval over folds. Interval and Bayesian probabilities: "
                f"the Bayesian correlated t-test with ρ = 1/{n_folds} (the folds' training sets overlap: Nadeau "
                f"and Bengio's correction, as in baycomp); the 95 % interval is its central interval. {bayes}, "
                "under that posterior. Test-set CI: a bootstrap over the test subjects (folds), which the "
                "seeds do not vary.")
    return ("Pairs: runs of the same seed on this one split. Test: paired t-test over seeds, two-sided "
            "(the seeds are the only replication here, independent given the split); 95 % CI: its t "
            "interval; effect: d_z, the mean over the sd of the differences, with its exact interval (noncentral "
            "t). Differences within half a test window of each other are equal: where every pair differs by "
            "the same amount there is no spread and no t-test. The pairs measure the seeds' noise on this test "
            "set; the test-set CI, a bootstrap over its test windows (the same resample for every seed, from "
            "the runs' per-window predictions), measures how much another sample of windows could move the "
            "difference. With one seed, McNemar's exact test on the test windows gives the p. Bayesian "
            f"probabilities: the Bayesian paired t-test (correlated t-test with ρ = 0). {bayes}.")


def holm_text(table, n_folds, alpha=SIGNIFICANCE):
    tested = int(table.loc[table["family"] == "exploratory", "p"].notna().sum())
    text = f"p (Holm): Holm's step-down adjustment over the {tested} exploratory p-values of this table."
    if n_folds > 1 and tested:
        n = int(table.loc[table["p"].notna(), "n_pairs"].max())
        floor = smallest_wilcoxon_p(n) * tested
        if floor > alpha:
            text += (f" With {n} folds the smallest Wilcoxon p is {smallest_wilcoxon_p(n):.4f}, so with {tested} "
                     f"tests no adjusted p can fall below {alpha:g} ({floor:.2f} at best): read the "
                     "intervals and the Bayesian columns.")
    return text


def _cells(row, unit, decimals, archs, several):
    name = row["comparison"] + (" (headline)" if row["family"] == "headline" else "")
    if several and row["teacher_arch"]:
        name += f" (teachers {row['teacher_arch']})"
    if archs:
        name += f" [student {row['student_arch']}]"
    count = f"{row['n_pairs']}" + (f" ({row['dropped']} dropped)" if row["dropped"] else "")
    cells = {"Δ points [95 % CI]": _number(row["diff"], decimals, True)
             + _interval(row["ci_low"], row["ci_high"], decimals),
             "test-set 95 % CI": _interval(row["testset_low"], row["testset_high"], decimals).strip() or "–",
             "test": "McNemar" if row["test"].startswith("McNemar") else "Wilcoxon" if unit == "folds" else "paired t",
             "p": p_text(row["p"]), "p Holm": p_text(row["p_holm"]) if row["family"] == "exploratory" else "–",
             "McNemar p": p_text(row["p_mcnemar"]),
             f"{row['effect_measure']} [95 % CI]": _number(row["effect"], 2, True)
             + _interval(row["effect_low"], row["effect_high"], 2),
             unit: count, "P(better)": _number(row["p_better"], 2),
             "P(equiv.)": _number(row["p_equivalent"], 2), "P(worse)": _number(row["p_worse"], 2),
             "verdict": row["verdict"] or "–", "note": row["note"]}
    return name, cells


def _frame(rows, unit, decimals, archs, several):
    frame = pd.DataFrame.from_dict(dict(_cells(r, unit, decimals, archs, several) for _, r in rows.iterrows()),
                                   orient="index")
    if (rows["note"] == "").all():
        frame = frame.drop(columns="note")
    if rows["p_mcnemar"].isna().all():
        frame = frame.drop(columns="McNemar p")
    return frame


def headline_text(row, alpha):
    """One sentence: the headline's difference, intervals, p and decision at α."""
    decided = ("no test" if pd.isna(row["p"]) else
               f"significant at α = {alpha:g}" if row["p"] < alpha else f"not significant at α = {alpha:g}")
    testset = ("" if pd.isna(row["testset_low"]) else
               f"; test-set 95 % CI{_interval(row['testset_low'], row['testset_high'], 2)} "
               f"(bootstrap over {row['testset_unit']})")
    return (f"{row['comparison']}: Δ = {_number(row['diff'], 2, True)} points, 95 % CI"
            f"{_interval(row['ci_low'], row['ci_high'], 2) or ' –'}{testset}; {row['test']}, p = {p_text(row['p'])} "
            f"(unadjusted), {decided}; {row['effect_measure']} = {_number(row['effect'], 2, True)}"
            f"{_interval(row['effect_low'], row['effect_high'], 2)}"
            + (f"; {row['note']}" if row["note"] else "") + ".")


def comparison_blocks(table, absent, n_folds, rope, decimals=2, headline=None, alpha=SIGNIFICANCE):
    """[(heading, note, DataFrame of strings or None)] of one dataset's split (`n_folds` folds),
    for tables.md and tables.html: the headline first, then the exploratory comparisons."""
    blocks = []
    declared = headline_label(headline) if headline else None
    rows = table[table["family"] == "headline"] if len(table) else table
    if declared and rows.empty:
        blocks.append(("Headline comparison", f"The headline declared in report.headline, {declared}, has no "
                                              "runs to compare here.", None))
    elif declared:
        note = (f"Declared before the runs in report.headline ({declared}) and tested at report.alpha = {alpha:g}, "
                "without adjustment: " + " ".join(headline_text(r, alpha) for _, r in rows.iterrows()))
        blocks.append(("Headline comparison", note, None))
    if table.empty:
        return blocks + [("Paired comparisons", "No comparisons: no student has a baseline with runs.", None)]
    several = table["teacher_arch"].replace("", np.nan).dropna().nunique() > 1
    archs = table["student_arch"].nunique() > 1
    unit = "folds" if n_folds > 1 else "seeds"
    metric = table["metric"].iloc[0].replace("_", " ")
    framing = ("Every comparison below is exploratory: no headline is declared (report.headline). "
               if not declared else "Exploratory comparisons (the headline above is one of them, unadjusted). ")
    note = (f"{framing}{metric}: configuration minus baseline, in points. Baselines: the student from scratch; "
            "for multi-teacher students the one-teacher student of the same teacher architecture with the "
            "higher mean validation accuracy; for + annealing and + SP the method each extends, at the same "
            f"α. {design_text(n_folds, rope)} {holm_text(table, n_folds, alpha)} verdict: the outcome whose "
            f"posterior probability is at least {DECISIVE:g}, else undecided. {unit}: the {unit} with both runs.")
    ordered = pd.concat([table[table["family"] == "headline"], table[table["family"] != "headline"]])
    blocks.append(("Paired comparisons", note, _frame(ordered, unit, decimals, archs, several)))
    dropped = table[table["dropped"] > 0]
    if len(dropped):
        blocks.append(("Unpaired runs, dropped",
                       "\n".join(f"- {r['comparison']}: {r['dropped']} dropped: {r['dropped_pairs']}"
                                 for _, r in dropped.iterrows()), None))
    if absent:
        blocks.append((None, f"No runs of {', '.join(absent)}: no comparison with "
                             + ("it." if len(absent) == 1 else "them."), None))
    return blocks
