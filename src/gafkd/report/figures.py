"""Every figure (matplotlib/seaborn, Agg backend, written atomically): the gallery of an image
cache and the report's figures."""

import io
from itertools import cycle

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from gafkd.atomic import atomic_path  # noqa: E402
from gafkd.report.ranks import blocks_text, rank_panels, rank_summary  # noqa: E402
from gafkd.report.statistics import cliques  # noqa: E402
from gafkd.encodings import encoding_parts  # noqa: E402
from gafkd.h5checked import CheckedH5  # noqa: E402
from gafkd.methods import names  # noqa: E402
from gafkd.report.reporting import split_label  # noqa: E402
from gafkd.report.runs import row_order  # noqa: E402
from gafkd.train.run_record import read_history_bytes, read_metrics  # noqa: E402

ALPHA_GRID = names(lambda m: m.alpha_grid)       # methods drawn against α
NO_TEACHER = names(lambda m: not m.teachers)     # the same in every teacher architecture
# The methods of a fixed α (one line per image encoding): reference lines of the α figure.
FIXED_ALPHA = names(lambda m: not m.alpha_grid)
REFERENCE_STYLES = (("0.3", ":"), ("tab:orange", "--"), ("tab:green", "--"), ("tab:purple", "-."),
                    ("tab:brown", "-."), ("tab:pink", ":"), ("tab:olive", "--"), ("tab:cyan", "-."))


def _save(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def describe_split(runs):
    """The short name of the split of one dataset's runs ('LOSO, 9 folds')."""
    return "; ".join(split_label(kind, runs.loc[runs["split"] == kind, "fold"].nunique())
                     for kind in sorted(runs["split"].unique()))


def metric_seed_means(runs, metric):
    """Each seed's unweighted mean over the folds of its split, so that spreads are over seeds
    as in the tables (a single split has one fold: the runs themselves)."""
    keys = ["dataset", "split", "role", "method", "images", "label", "teachers", "teacher_arch", "alpha", "seed"]
    columns = list(dict.fromkeys([metric, "val_accuracy"]))
    return runs.groupby(keys, dropna=False, as_index=False)[columns].mean()


def alpha_figure(runs, dataset, path, metric="test_accuracy"):
    """Accuracy against α (mean ± std over seeds) per teacher architecture, with reference lines."""
    runs = runs[(runs["dataset"] == dataset) & (runs["role"] == "student")]
    split = describe_split(runs)
    runs = metric_seed_means(runs, metric)
    archs = sorted(a for a in runs["teacher_arch"].unique() if a)
    fig, axes = plt.subplots(1, max(len(archs), 1), figsize=(4.2 * max(len(archs), 1), 3.6),
                             squeeze=False, sharey=True)
    for ax, arch in zip(axes[0], archs):
        curves = runs[runs["method"].isin(ALPHA_GRID) & (runs["teacher_arch"] == arch)]
        for _, part in _by_row(curves):
            stats = part.groupby("alpha")[metric].agg(["mean", "std"]) * 100
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                        label=part["label"].iloc[0])
        lines = runs[runs["method"].isin(FIXED_ALPHA)
                     & ((runs["teacher_arch"] == arch) | runs["method"].isin(NO_TEACHER))]
        for (_, part), (color, style) in zip(_by_row(lines), cycle(REFERENCE_STYLES)):
            ax.axhline(100 * part[metric].mean(), color=color, linestyle=style, label=part["label"].iloc[0])
        ax.set_title(f"teachers {arch}")
        ax.set_xlabel("α (weight of the image teacher)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric.replace('_', ' ')} (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    folds = " of per-seed fold means" if (runs["split"] == "loso").any() else ""
    fig.suptitle(f"{dataset}: students against α\n({split}; mean ± std over seeds{folds})", fontsize=10)
    _save(fig, path)


def _by_row(runs):
    """(row key, runs) of each table row among `runs`, in the tables' row order."""
    groups = runs.groupby(["method", "images"], sort=False)
    return sorted(groups, key=lambda item: row_order(*item[0]))


def teachers_vs_students_figure(runs, dataset, path, metric="test_accuracy"):
    """Teachers and students per teacher architecture; the kd2 family at its best mean-validation α."""
    runs = runs[runs["dataset"] == dataset]
    split = describe_split(runs)
    runs = metric_seed_means(runs, metric)
    runs["group"] = runs["label"]
    kd2 = runs[runs["method"].isin(ALPHA_GRID)]
    if not kd2.empty:
        cell = ["method", "images", "teacher_arch"]
        val = kd2.groupby(cell + ["alpha"])["val_accuracy"].mean().reset_index()
        best = val.loc[val.groupby(cell)["val_accuracy"].idxmax()]
        keep = kd2.merge(best[cell + ["alpha"]], on=cell + ["alpha"])
        runs = pd.concat([runs[~runs["method"].isin(ALPHA_GRID)], keep])
    archs = sorted(a for a in runs["teacher_arch"].unique() if a)
    scratch = runs[runs["method"].isin(NO_TEACHER)]
    runs = pd.concat([runs[~runs["method"].isin(NO_TEACHER)]] + [scratch.assign(teacher_arch=a) for a in archs])
    runs["accuracy (%)"] = 100 * runs[metric]
    order = [part["group"].iloc[0] for _, part in _by_row(runs)]
    fig, ax = plt.subplots(figsize=(4.5 + 1.6 * len(archs), 3.8))
    sns.barplot(data=runs, x="teacher_arch", y="accuracy (%)", hue="group", hue_order=order,
                order=archs, errorbar="sd", capsize=0.1, ax=ax)
    low = max(0, runs["accuracy (%)"].min() - 10)
    ax.set_ylim(low, 101)
    ax.set_xlabel("teacher architecture")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="mean ± sd over seeds",
              title_fontsize=7)
    ax.set_title(f"{dataset} ({split}): teachers and students\n(2-teacher rows at their best validation α)",
                 fontsize=9)
    _save(fig, path)


def best_student(runs, dataset):
    students = runs[(runs["dataset"] == dataset) & (runs["role"] == "student")]
    return students.sort_values(["val_accuracy", "test_accuracy"], ascending=False).iloc[0]


def confusion_figure(runs, dataset, path):
    """Confusion matrix (test split, at the best-validation checkpoint) of the best student."""
    best = best_student(runs, dataset)
    split = describe_split(runs[runs["dataset"] == dataset])
    metrics = read_metrics(best["path"])
    matrix = np.array(metrics["test_at_best_val"]["confusion"])
    names = metrics["class_names"]
    size = 1.2 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(max(size + 1.5, 5), size))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", xticklabels=names, yticklabels=names,
                cbar=False, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    alpha = "" if pd.isna(best["alpha"]) else f", α {best['alpha']:g}"
    ax.set_title(f"{dataset} ({split})\nbest student by validation accuracy: {best['method']}{alpha}\n"
                 f"{best['teachers']}, seed {best['seed']}, fold {best['fold']}: "
                 f"test {100 * best['test_accuracy']:.1f} %", fontsize=9)
    _save(fig, path)


def learning_curves_figure(runs, dataset, path):
    """Training loss and validation accuracy per epoch, mean over seeds, one line per method."""
    runs = runs[runs["dataset"] == dataset]
    frames = []
    for _, run in runs.iterrows():
        history_csv = run["path"].replace("metrics.json", "history.csv")
        history = pd.read_csv(io.BytesIO(read_history_bytes(history_csv, read_metrics(run["path"]), run["path"])))
        label = run["label"] + ("" if pd.isna(run["alpha"]) or run["method"] not in
                                ALPHA_GRID else f" α {run['alpha']:g}")
        frames.append(history.assign(run=label + (f" {run['teacher_arch']}" if run["teacher_arch"] else "")))
    curves = pd.concat(frames)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column in zip(axes, ("train_loss", "val_accuracy")):
        sns.lineplot(data=curves, x="epoch", y=column, hue="run", errorbar=None, ax=ax, linewidth=1,
                     palette="tab20")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].get_legend().remove()
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{dataset} ({describe_split(runs)}): learning curves (mean over seeds and folds)", fontsize=10)
    _save(fig, path)


def write_figures(runs_csv, dataset, out, metric="test_accuracy"):
    runs = pd.read_csv(runs_csv, keep_default_na=True)
    runs["teacher_arch"] = runs["teacher_arch"].fillna("")
    runs["teachers"] = runs["teachers"].fillna("")
    runs["images"] = runs["images"].fillna("")
    alpha_figure(runs, dataset, out["alpha"], metric)
    teachers_vs_students_figure(runs, dataset, out["teachers_vs_students"], metric)
    confusion_figure(runs, dataset, out["confusion"])
    learning_curves_figure(runs, dataset, out["learning_curves"])


def _draw_critical_difference(ax, summary):
    """Demšar's diagram: average ranks on an axis (1 = best), the better half labelled on the left,
    the other on the right, a bar of length CD, and a thick line joining each maximal group of
    methods whose ranks differ by less than CD."""
    ranks = summary["ranks"]
    k, cd = len(ranks), summary["cd"]
    groups = cliques(ranks.to_numpy(), cd)
    pad = 0.62 * max(k - 1, 1)
    ax.set_xlim(1 - pad, k + pad)
    top = 0.6 + 0.3 * len(groups)
    half = (k + 1) // 2
    ax.set_ylim(top + 0.5 * (max(half, k - half) - 1) + 0.35, -1.0)
    ax.axis("off")
    ax.plot([1, k], [0, 0], color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0, -0.1], color="black", linewidth=1)
        ax.text(tick, -0.18, str(tick), ha="center", va="bottom", fontsize=8)
    ax.plot([1, min(1 + cd, k + pad)], [-0.7, -0.7], color="black", linewidth=1.5)
    ax.text(1 + cd / 2, -0.78, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    for row, (first, last) in enumerate(groups):
        y = 0.35 + 0.3 * row
        ax.plot([ranks.iloc[first] - 0.03, ranks.iloc[last] + 0.03], [y, y], color="black", linewidth=3,
                solid_capstyle="round")
    for i, (name, rank) in enumerate(ranks.items()):
        left = i < half
        y = top + 0.5 * (i if left else k - 1 - i)
        end = 1 - 0.15 if left else k + 0.15
        ax.plot([rank, rank, end], [0, y, y], color="0.35", linewidth=0.8)
        ax.text(end + (-0.05 if left else 0.05), y, f"{name} ({rank:.2f})", ha="right" if left else "left",
                va="center", fontsize=8)


def critical_difference_figure(runs, path, metric="test_accuracy"):
    """The critical-difference diagram of the students, one panel per teacher architecture
    (gafkd.report.ranks.rank_panels: which blocks, which entries)."""
    panels = rank_panels(runs, metric)
    rows = [(panel, rank_summary(panel)) for panel in panels] or [(None, None)]
    heights = [2.2 if s is None else 1.6 + 0.25 * (len(s["ranks"]) + len(cliques(s["ranks"], s["cd"])))
               for _, s in rows]
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (panel, summary) in zip(axes[:, 0], rows):
        if summary is None:
            ax.axis("off")
            why = "no student runs" if panel is None else blocks_text(panel)
            ax.text(0.5, 0.5, f"Too few blocks or methods for Friedman's test\n({why})", ha="center",
                    va="center", fontsize=9, wrap=True)
            continue
        _draw_critical_difference(ax, summary)
        blocks = "folds × datasets" if panel["unit"] == "fold" else "seeds of " + ", ".join(panel["datasets"])
        ax.set_title(f"teachers {panel['teacher_arch']}: {metric.replace('_', ' ')}, average rank over "
                     f"N = {summary['n']} blocks ({blocks})\nFriedman p = {summary['p']:.3g}; Nemenyi at "
                     f"{summary['alpha']:g}: CD = {summary['cd']:.2f} ranks", fontsize=9)
    _save(fig, path)


def write_critical_difference(runs_csv, out_png, metric="test_accuracy"):
    runs = pd.read_csv(runs_csv, keep_default_na=True)
    critical_difference_figure(runs, out_png, metric)


def plot_gallery(windows_h5, images_h5, out_png, max_channels=3):
    """The gallery of an image cache (gafkd.images.cache): one example window per class (rows) with up
    to `max_channels` channel images (columns)."""
    with CheckedH5(windows_h5, "windows file", require_seal=False) as wf, \
            CheckedH5(images_h5, "image cache") as imf:
        y = wf.array("y")
        class_names = wf.json("class_names")
        channel_names = wf.json("channel_names")
        method, (planes, size) = imf.attrs["method"], imf.shape("images")[1::2]
        parts = encoding_parts(method)
        columns = min(max_channels, planes)
        present = [c for c in range(len(class_names)) if (y == c).any()]
        # Constrained layout keeps the figure title clear of the channel titles at any shape.
        fig, axes = plt.subplots(len(present), columns, squeeze=False, layout="constrained",
                                 figsize=(1.9 * columns + 1.2, 1.9 * len(present) + 0.6))
        vmin = 0 if set(parts) <= {"mtf", "pi"} else -1
        for row, cls in enumerate(present):
            example = int(np.flatnonzero(y == cls)[0])
            image = imf.array("images", example).astype(np.float32)
            for col in range(columns):
                ax = axes[row, col]
                ax.imshow(image[col], cmap="RdBu_r", vmin=vmin, vmax=1, origin="lower")
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    name = channel_names[col // len(parts)]
                    ax.set_title(name if len(parts) == 1 else f"{name} {parts[col % len(parts)]}", fontsize=9)
                if col == 0:
                    ax.set_ylabel(class_names[cls], fontsize=9)
        separator = "\n" if columns == 1 else " "     # one column is too narrow for one line
        fig.suptitle(f"{method.upper()} {size}x{size}:{separator}one window per class", fontsize=11)
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
