"""Mean ± std per group (gafkd.report.runs) -> the lab's result tables.

A group with missing runs is marked instead of silently averaged. Each dataset's section of the
tables ends with its paired comparisons, and the last section ranks the students across datasets
(gafkd.report.comparisons).
"""

import logging
import math
from html import escape

import pandas as pd

from gafkd.atomic import atomic_path
from gafkd.data.splits import SPLIT_DESCRIPTIONS
from gafkd.methods import METHODS, TEACHER_ROWS
from gafkd.report.comparison_text import comparison_blocks
from gafkd.report.comparisons import ROPE, comparison_table
from gafkd.report.intervals import interval_block
from gafkd.report.ranks import rank_blocks, rank_panels
from gafkd.report.runs import WEIGHTED, collect_runs, fold_order, row_label, row_order, summarize
from gafkd.report.statistics import SIGNIFICANCE
from gafkd.report.testset import TestSet

log = logging.getLogger(__name__)
MIN_TEST_WINDOWS = 100  # report.min_test_windows

METRIC_LABELS = {
    "test_accuracy": "test accuracy (checkpoint of the best validation accuracy)",
    "test_macro_f1": "test macro F1 (checkpoint of the best validation accuracy)",
    "test_accuracy_last": "test accuracy at the last epoch",
    "val_accuracy": "best validation accuracy",
    "optimistic_test_accuracy": "test accuracy at the epoch picked on the test set (optimistic)",
}
NO_TEACHER = {m.name for m in METHODS if not m.teachers}  # rows that are the same in every column


def format_cell(mean, std, seeds, runs=None, n_expected=None, percent=True, decimals=2):
    """'mean ± std (seeds)', with '; runs of n_expected runs !' for a group with missing runs."""
    scale = 100 if percent else 1
    spread = "–" if pd.isna(std) else f"{scale * std:.{decimals}f}"
    count = f"{seeds}"
    if n_expected is not None and runs < n_expected:
        count += f"; {runs} of {n_expected} runs !"
    return f"{scale * mean:.{decimals}f} ± {spread} ({count})"


def table_rows(frame, alphas):
    """(label, method, images, alpha) of every table row, in the lab's order (one row per image
    encoding of a method, in encoding order), kept if it has runs."""
    images = frame["images"].fillna("")
    present = set(zip(frame["method"], images, frame["alpha"].fillna(-1.0)))
    keys = sorted({(m, i) for m, i, _ in present}, key=lambda key: row_order(*key))
    rows = [(row_label(m, i), m, i, None) for m, i in keys if m in TEACHER_ROWS]
    rows += [(row_label(m.name, i), m.name, i, None) for m in METHODS if not m.alpha_grid
             for name, i in keys if name == m.name]
    for m in METHODS:
        if m.alpha_grid:
            rows += [(f"{row_label(m.name, i)}, α = {a:g}", m.name, i, a)
                     for name, i in keys if name == m.name for a in alphas]
    return [(label, m, i, a) for label, m, i, a in rows
            if any(pm == m and pi == i and (a is None or abs(pa - a) < 1e-9) for pm, pi, pa in present)]


def select(frame, method, images, arch, alpha):
    """The rows of one table cell (the scratch student has no teacher: the same in every column)."""
    match = frame[(frame["method"] == method) & (frame["images"].fillna("") == images)]
    if method not in NO_TEACHER:
        match = match[match["teacher_arch"] == arch]
    if alpha is not None:
        match = match[(match["alpha"] - alpha).abs() < 1e-9]
    return match


def _part(frame, dataset, split):
    part = frame[frame["dataset"] == dataset]
    return part if split is None else part[part["split"] == split]


def dataset_table(summary, dataset, teacher_archs, alphas, metric="test_accuracy", decimals=2,
                  weighted=False, split=None, windows=False, ddof=1):
    """A DataFrame in the lab's layout: rows methods, columns teacher architectures (and, with
    `windows`, a last column of the row's test windows: over the folds of one seed); std with
    `ddof` 1 or 0."""
    part = _part(summary, dataset, split)
    column = f"{metric}_weighted" if weighted else metric
    spread = "_std" if ddof == 1 else "_std0"
    table = {}
    for label, method, images, alpha in table_rows(part, alphas):
        cells, counts = {}, []
        for arch in teacher_archs:
            match = select(part, method, images, arch, alpha)
            if match.empty:
                cells[arch] = ""
                continue
            row = match.iloc[0]
            counts.append(row.get("test_windows", math.nan))
            cells[arch] = format_cell(row[f"{column}_mean"], row[column + spread], int(row["seeds"]),
                                      int(row["runs"]), row.get("n_expected"), decimals=decimals)
        if windows:
            known = {int(c) for c in counts if not pd.isna(c)}
            cells["test windows"] = ", ".join(str(c) for c in sorted(known)) or "–"
        table[label] = cells
    columns = list(teacher_archs) + (["test windows"] if windows else [])
    return pd.DataFrame.from_dict(table, orient="index", columns=columns)


def table_groups(runs, teacher_archs, alphas):
    """{row label: {teacher architecture: the runs of that cell}} of one dataset's split."""
    return {label: {arch: select(runs, method, images, arch, alpha) for arch in teacher_archs}
            for label, method, images, alpha in table_rows(runs, alphas)}


def _fold_tests(runs):
    """(fold, its runs, its test subject or '', its test windows or None) of each fold, in fold
    order; subject and windows where the runs record them."""
    for fold in sorted(runs["fold"].unique(), key=fold_order):
        of_fold = runs[runs["fold"] == fold]
        subjects = [s for s in of_fold["test_subjects"] if s]
        windows = of_fold["test_n"].dropna()
        yield fold, of_fold, subjects[0] if subjects else "", int(windows.max()) if len(windows) else None


def fold_headers(runs):
    """{fold: 'fold3 (test 104, 312 windows)'}, in fold order; the test subjects and windows where
    the runs record them."""
    headers = {}
    for fold, _, subject, windows in _fold_tests(runs):
        said = ([f"test {subject}"] if subject else []) + ([f"{windows} windows"] if windows is not None else [])
        headers[fold] = f"{fold} ({', '.join(said)})" if said else fold
    return headers


def small_test_lines(runs, min_windows=MIN_TEST_WINDOWS):
    """'fold8 (test 109): 40 test windows, fewer than 100 ...; no test window of running, ...' for
    each fold whose test set is small or lacks classes, each also warned of in the log."""
    lines = []
    for fold, of_fold, subject, windows in _fold_tests(runs):
        missing = max(of_fold["test_missing_classes"].fillna(""), key=len, default="")
        said = []
        if windows is not None and windows < min_windows:
            said.append(f"{windows} test windows, fewer than {min_windows} (report.min_test_windows): "
                        "its numbers rest on few windows")
        if missing:
            said.append(f"no test window of {missing}: its numbers leave these classes out")
        if said:
            where = f"{fold} (test {subject})" if subject else fold
            lines.append(f"{where}: {'; '.join(said)}")
            log.warning("%s, %s", runs["dataset"].iloc[0], lines[-1])
    return lines


def fold_table(runs, dataset, arch, alphas, metric="test_accuracy", decimals=2, split=None):
    """Rows methods, columns folds: mean ± std over seeds of one teacher architecture's runs."""
    part = _part(runs, dataset, split)
    headers = fold_headers(part)
    table = {}
    for label, method, images, alpha in table_rows(part, alphas):
        match = select(part, method, images, arch, alpha)
        if match.empty:
            continue
        cells = {}
        for fold, header in headers.items():
            values = match.loc[match["fold"] == fold, metric]
            cells[header] = "" if values.empty else format_cell(values.mean(), values.std(), len(values),
                                                                decimals=decimals)
        table[label] = cells
    return pd.DataFrame.from_dict(table, orient="index", columns=list(headers.values()))


def _alpha_key(alpha):
    return None if alpha is None else round(float(alpha), 9)


def reference_cells(reference, decimals=2):
    """{(method, images, alpha): {arch: '70.26 ± 0.36 (3)'}} of a report.reference block (the
    config check filled in images)."""
    runs = f" ({reference['runs']})" if reference.get("runs") else ""
    cells = {}
    for entry in reference["values"]:
        key = (entry["method"], entry.get("images", ""), _alpha_key(entry.get("alpha")))
        for arch, value in entry["accuracy"].items():
            mean, std = (value, None) if isinstance(value, (int, float)) else value
            spread = "" if std is None else f" ± {std:.{decimals}f}"
            cells.setdefault(key, {})[arch] = f"{mean:.{decimals}f}{spread}{runs}"
    return cells


def lab_table(summary, dataset, teacher_archs, alphas, decimals=2, split=None, reference=None,
              selected_on="validation"):
    """Per teacher architecture the lab's reported number (`reference`, a report.reference block),
    then gafkd's run of the lab's selection (best epoch on test) and gafkd's own (best on
    validation), with the lab's std (ddof 0)."""
    options = dict(decimals=decimals, split=split, ddof=0)
    lab = dataset_table(summary, dataset, teacher_archs, alphas, "optimistic_test_accuracy", **options)
    ours = dataset_table(summary, dataset, teacher_archs, alphas, "test_accuracy", **options)
    reported = reference_cells(reference, decimals) if reference else None
    keys = [(m, i, _alpha_key(a)) for _, m, i, a in table_rows(_part(summary, dataset, split), alphas)]
    columns = {}
    for arch in teacher_archs:
        if reported is not None:
            columns[f"{arch} lab reported"] = [
                reported.get(key, {}).get(arch, "") for key in keys]
        columns[f"{arch} lab (best epoch on test)"] = list(lab[arch])
        columns[f"{arch} gafkd (best on {selected_on})"] = list(ours[arch])
    return pd.DataFrame(columns, index=lab.index)


def split_label(kind, n_folds):
    """A short name of a split for titles: 'subject-disjoint holdout', 'LOSO, 9 folds'."""
    if kind == "loso":
        return f"LOSO, {n_folds} folds"
    return {"predefined": "published split", "random": "random window split",
            "holdout": "subject-disjoint holdout"}[kind]


def missing_class_lines(runs):
    """'fold3: validation subject(s) 107 lack running, ...' for each fold whose validation split
    lacks classes."""
    lines = []
    for fold in sorted(runs["fold"].unique(), key=fold_order):
        of_fold = runs[(runs["fold"] == fold) & (runs["val_missing_classes"].fillna("") != "")]
        if of_fold.empty:
            continue
        row = of_fold.iloc[0]
        who = f"validation subject(s) {row['val_subjects']} lack" if row["val_subjects"] else \
            "the validation split lacks"
        lines.append(f"{fold}: {who} {row['val_missing_classes']}: its checkpoint is chosen on fewer classes")
    return lines


def markdown_table(frame):
    header = "| | " + " | ".join(frame.columns) + " |"
    lines = [header, "|---|" + "---:|" * len(frame.columns)]
    for label, row in frame.iterrows():
        lines.append(f"| {label} | " + " | ".join(row.values) + " |")
    return "\n".join(lines)


def _seeds_text(part):
    low, high = int(part["seeds"].min()), int(part["seeds"].max())
    if low == high:
        return f"{high} seed" + ("s" if high > 1 else "")
    return f"{low}–{high} seeds"


def selection_text(runs):
    """What the split line says of checkpoint selection when it is not on held-out validation data."""
    if "validation" not in runs or not (runs["validation"] == "test").any():
        return ""
    mixed = "" if (runs["validation"] == "test").all() else " (some runs)"
    return (f"; selection on the test subject (the lab's protocol){mixed}: checkpoints are picked on the "
            "test windows, so every test number here is optimistic")


def selected_on_test(runs):
    return "validation" in runs and bool((runs["validation"] == "test").all())


def metric_label(metric, runs):
    """METRIC_LABELS[metric]; where the test subject selected the checkpoint (split.validation:
    test, the lab's protocol) it says so instead of calling the selection set validation."""
    label = METRIC_LABELS[metric]
    if selected_on_test(runs):
        label = label.replace("the best validation accuracy", "the best accuracy on the test windows, which "
                              "selected the epoch (split.validation: test): optimistic")
        label = label.replace("best validation accuracy", "best accuracy on the test windows (they selected "
                              "the epoch: split.validation: test)")
    return label


def dataset_blocks(runs, summary, dataset, split, teacher_archs, alphas, metric="test_accuracy", decimals=2,
                   min_test_windows=MIN_TEST_WINDOWS, reference=None, testset=None):
    """The split of one dataset's results, then its tables: (intro, [(heading, note, DataFrame or None)]);
    `reference` is the dataset's report.reference block."""
    part_runs, part = _part(runs, dataset, split), _part(summary, dataset, split)
    folds = part_runs["fold"].nunique()
    name, label = metric.replace("_", " "), metric_label(metric, part_runs)
    counts = ("in brackets the number of seeds; columns are teacher architectures, then the row's test "
              "windows (over all folds of a seed); `!` marks a group with fewer runs than the config asks for "
              "(runs done of runs asked)")

    def table(**options):
        return dataset_table(summary, dataset, teacher_archs, alphas, metric, decimals, split=split,
                             windows=True, **options)

    if split != "loso":
        over = f"mean ± std (ddof 1) over {_seeds_text(part)}"
        intro = f"Split: {SPLIT_DESCRIPTIONS[split]}{selection_text(part_runs)}."
        blocks = [(name, f"{label} in %, {over}; {counts}.", table())]
        blocks.append(interval_block(table_groups(part_runs, teacher_archs, alphas), False, metric, decimals,
                                     testset))
    else:
        over = f"mean ± std (ddof 1) over {_seeds_text(part)} of the per-seed mean over {folds} folds"
        intro = f"Split: {SPLIT_DESCRIPTIONS['loso']}, {folds} folds{selection_text(part_runs)}."
        blocks = [(f"{name}, unweighted fold mean",
                   f"{label} in %, {over} (unweighted: every fold counts the same); {counts}.", table())]
        if metric in WEIGHTED:
            pooled = (f" (for accuracy: the accuracy over the test windows of all {folds} folds together)"
                      if "accuracy" in metric else "")
            blocks.append((f"{name}, window-weighted fold mean",
                           f"{label} in %, {over} weighted by each fold's test windows{pooled}; {counts}.",
                           table(weighted=True)))
            blocks.append(interval_block(table_groups(part_runs, teacher_archs, alphas), True, metric, decimals,
                                         testset))
        else:
            blocks.append((None, f"{label} has no window-weighted version (it is not measured on the test "
                                 "windows).", None))
        # the scratch student alone has no teacher architecture: it still gets its per-fold table
        archs = [a for a in teacher_archs if (part_runs["teacher_arch"] == a).any()] or list(teacher_archs[:1])
        for arch in archs:
            several = len(archs) > 1
            blocks.append((f"{name} per fold" + (f", teachers {arch}" if several else ""),
                           f"{label} in %, mean ± std (ddof 1) over the seeds of each fold, in brackets the "
                           "number of seeds; columns are folds (test subjects in brackets)"
                           + (f"; teachers and students of teacher architecture {arch}" if several else "") + ".",
                           fold_table(runs, dataset, arch, alphas, metric, decimals, split=split)))
    lines = missing_class_lines(part_runs)
    if lines:
        blocks.append(("Validation splits that lack classes", "\n".join(f"- {line}" for line in lines), None))
    lines = small_test_lines(part_runs, min_test_windows)
    if lines:
        blocks.append(("Small or incomplete test sets",
                       "\n".join(f"- {line}" for line in lines), None))
    lab_over = over.replace("(ddof 1)", "(ddof 0, the population std the lab reports)")
    reported = ""
    if reference:
        runs = "; in brackets its runs" if reference.get("runs") else ""
        reported = (f"lab reported: {reference['source']} (std with ddof {reference.get('ddof', 0)}{runs}); "
                    "never a test target. ")
    blocks.append(("Compare with the lab",
                   reported + "lab: test accuracy at the epoch with the best test accuracy, picked on the test "
                   "set itself as the lab's code did (optimistic); gafkd: " + metric_label("test_accuracy", part_runs)
                   + f". Both in %, {lab_over}" + (" (unweighted)" if split == "loso" else "")
                   + "; in brackets the number of seeds; `!` marks incomplete groups as above.",
                   lab_table(summary, dataset, teacher_archs, alphas, decimals, split=split, reference=reference,
                             selected_on="the test subject" if selected_on_test(part_runs) else "validation")))
    return intro, blocks


def _html_note(note):
    if note.startswith("- "):
        return "<ul>" + "".join(f"<li>{escape(line[2:])}</li>" for line in note.split("\n")) + "</ul>"
    return f"<p>{escape(note)}</p>"


def _append(text, page, blocks):
    for heading, note, frame in blocks:
        if heading:
            text.append(f"### {heading}\n")
            page.append(f"<h3>{escape(heading)}</h3>")
        text.append(f"{note}\n")
        page.append(_html_note(note))
        if frame is not None:
            text.append(f"{markdown_table(frame)}\n")
            page.append(frame.to_html(escape=True))


def write_report_tables(metrics_paths, out, teacher_archs, alphas, expected, metric="test_accuracy",
                        decimals=2, rope=ROPE, min_test_windows=MIN_TEST_WINDOWS, reference=None, headline=None,
                        alpha=SIGNIFICANCE):
    """runs.csv, summary.csv, comparisons.csv, tables.md and tables.html (for the Snakemake report);
    `reference` {dataset: report.reference block}; `headline` report.headline (gafkd.headline),
    tested at `alpha`."""
    runs = collect_runs(metrics_paths)
    testset = TestSet()
    summary = summarize(runs, expected)
    text, page, comparisons = ["# Results\n"], [], []
    for dataset in sorted(runs["dataset"].unique()):
        splits = sorted(runs.loc[runs["dataset"] == dataset, "split"].unique())
        for split in splits:
            title = dataset if len(splits) == 1 else f"{dataset}, {split}"
            intro, blocks = dataset_blocks(runs, summary, dataset, split, teacher_archs, alphas, metric, decimals,
                                           min_test_windows, (reference or {}).get(dataset), testset)
            table, absent = comparison_table(runs, dataset, split, metric, rope, headline, alpha, testset)
            comparisons.append(table)
            n_folds = runs.loc[(runs["dataset"] == dataset) & (runs["split"] == split), "fold"].nunique()
            headline_blocks = comparison_blocks(table, absent, n_folds, rope, decimals, headline, alpha)
            first = [b for b in headline_blocks if b[0] == "Headline comparison"]
            blocks = first + blocks + [b for b in headline_blocks if b[0] != "Headline comparison"]
            text.append(f"## {title}\n\n{intro}\n")
            page.append(f"<h2>{escape(title)}</h2>{_html_note(intro)}")
            _append(text, page, blocks)
    ranks = rank_blocks(rank_panels(runs, metric), decimals)
    if ranks:
        text.append("## Ranks across datasets (Friedman, Nemenyi)\n")
        page.append("<h2>Ranks across datasets (Friedman, Nemenyi)</h2>")
        _append(text, page, ranks)
    with atomic_path(out["runs"]) as tmp:
        runs.to_csv(tmp, index=False)
    with atomic_path(out["summary"]) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(out["comparisons"]) as tmp:
        pd.concat(comparisons, ignore_index=True).to_csv(tmp, index=False)
    with atomic_path(out["tables"]) as tmp:
        tmp.write_text("\n".join(text))
    with atomic_path(out["tables_html"]) as tmp:
        tmp.write_text("<html><body>" + "".join(page) + "</body></html>\n")
    return runs, summary
