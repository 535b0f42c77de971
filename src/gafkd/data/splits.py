"""Train/validation/test assignment of every window, for each fold of a split spec.

Kinds: `predefined` (the source's published test set; validation drawn from its training
windows), `random` (the lab's stratified random window split), `holdout` (subject-disjoint),
`loso` (leave one subject out). Subject splits draw their validation subjects from the training
subjects, in a seeded order, preferring subjects that cover the classes of the training split.
Folds are named after the split (`predefined`, `random`, `holdout`, or `fold0`... for LOSO).

Also the per-channel statistics inputs are standardised with: those of each fold's training
windows (channel_stats) or training images (image_channel_stats).
"""

import math
import re

import numpy as np

from gafkd.errors import ConfigError, InputError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")

# Result folders name the split that produced them: the split kind itself for a single split,
# fold<i> for leave-one-subject-out.
SINGLE_SPLIT_KINDS = ("predefined", "random", "holdout")
FOLD_PATTERN = r"predefined|random|holdout|fold\d+"
SPLIT_DESCRIPTIONS = {
    "predefined": "the source's published train/test split",
    "random": "random window split (windows of one subject in train and test: optimistic)",
    "holdout": "subject-disjoint holdout (test subjects unseen in training)",
    "loso": "leave-one-subject-out",
}


def fold_names(kind, n_subjects=0):
    """Result folder names of a split: [kind] for a single split, fold0... for LOSO."""
    if kind == "loso":
        return [f"fold{i}" for i in range(n_subjects)]
    return [kind]


def split_kind(fold):
    """The split kind a result folder name comes from ('fold3' -> 'loso')."""
    if fold in SINGLE_SPLIT_KINDS:
        return fold
    if re.fullmatch(r"fold\d+", fold):
        return "loso"
    raise ConfigError(f"'{fold}' is not a split folder name ({FOLD_PATTERN})")




def _stratified_pick(y, candidates, fraction, rng):
    """Boolean mask of round(fraction * n_c) random candidates of each class c."""
    picked = np.zeros(len(y), dtype=bool)
    for cls in np.unique(y[candidates]):
        idx = np.flatnonzero(candidates & (y == cls))
        n = int(round(fraction * len(idx)))
        picked[rng.permutation(idx)[:n]] = True
    return picked


def _subject_counts(n_subjects, val_fraction, test_fraction):
    n_test = max(1, int(round(test_fraction * n_subjects)))
    n_val = max(1, int(round(val_fraction * n_subjects)))
    return n_val, n_test


def _assign(n, val_mask, test_mask):
    split = np.full(n, TRAIN, dtype=np.int8)
    split[val_mask] = VAL
    split[test_mask] = TEST
    return split


def pick_validation_subjects(y, subject, candidates, n_val, rng):
    """n_val of the candidate subjects for validation, and the classes they lack.

    Candidates are taken in a seeded random order; each pick must leave every class of the
    candidates in training, and among those, adds the most classes not yet covered by the
    validation subjects (the first in the seeded order on a tie).
    """
    order = [int(s) for s in rng.permutation(candidates)]
    classes = {s: set(np.unique(y[subject == s]).tolist()) for s in order}
    needed = set().union(*classes.values())
    chosen, covered = [], set()
    for _ in range(n_val):
        best, best_gain = None, -1
        for s in order:
            if s in chosen:
                continue
            left = set().union(*(classes[t] for t in order if t not in chosen and t != s))
            gain = len(classes[s] - covered)
            if left == needed and gain > best_gain:
                best, best_gain = s, gain
        if best is None:        # every pick costs training a class; the coverage check says which
            best = next(s for s in order if s not in chosen)
        chosen.append(best)
        covered |= classes[best]
    return chosen, sorted(needed - covered)


def validation_on_test(spec):
    """Whether a split spec picks checkpoints on the test subjects (split.validation: test, the
    lab's PAMAP2 protocol): no validation subjects, the test split doubles as the validation split."""
    return spec.get("validation", "held_out") == "test"


def make_folds(y, subject, spec, predefined_test=None):
    """{fold name: {"split": int8 (N,), "val_subjects": [...], "test_subjects": [...],
    "val_missing_classes": [class index, ...]}}. Under split.validation: test no window is VAL:
    every subject but the test subjects trains."""
    kind, seed = spec["kind"], spec["seed"]
    rng = np.random.default_rng(seed)
    n = len(y)
    subjects = np.unique(subject)
    if kind == "predefined":
        if predefined_test is None:
            raise InputError("split kind 'predefined' needs a source with a published test set")
        val = _stratified_pick(y, ~predefined_test, spec["val_fraction"], rng)
        return {"predefined": {"split": _assign(n, val, predefined_test)}}
    if kind == "random":
        test = _stratified_pick(y, np.ones(n, dtype=bool), spec["test_fraction"], rng)
        val_share = spec["val_fraction"] / (1.0 - spec["test_fraction"])
        val = _stratified_pick(y, ~test, val_share, rng)
        return {"random": {"split": _assign(n, val, test)}}
    if len(subjects) < 3:
        raise InputError(f"split kind '{kind}' needs at least 3 subjects, found {len(subjects)}")
    if kind == "holdout":
        return {"holdout": _holdout_fold(y, subject, subjects, spec, rng)}
    if kind == "loso":
        folds = {}
        for i, held_out in enumerate(subjects):
            rest = subjects[subjects != held_out]
            n_val = max(1, int(round(spec["val_fraction"] * len(rest))))
            val_subjects, missing = ([], []) if validation_on_test(spec) else pick_validation_subjects(
                y, subject, rest, n_val, np.random.default_rng([seed, i]))
            folds[f"fold{i}"] = _subject_fold(subject, val_subjects, [held_out], missing)
        return folds
    raise InputError(f"unknown split kind '{kind}'")


def _holdout_fold(y, subject, subjects, spec, rng):
    n_val, n_test = _subject_counts(len(subjects), spec["val_fraction"], spec["test_fraction"])
    n_val = 0 if validation_on_test(spec) else n_val
    if spec.get("test_subjects"):
        test_subjects = np.array(sorted(spec["test_subjects"]))
        absent = sorted(set(test_subjects.tolist()) - set(subjects.tolist()))
        if absent:
            raise InputError(f"holdout split: test subject(s) {absent} have no windows "
                             f"(subjects: {subjects.tolist()})")
        n_test = len(test_subjects)
    else:
        test_subjects = rng.permutation(subjects)[:n_test]
    if n_val + n_test >= len(subjects):
        raise InputError(f"holdout split: {len(subjects)} subjects leave none for training "
                         f"({n_val} validation, {n_test} test)")
    rest = subjects[~np.isin(subjects, test_subjects)]
    val_subjects, missing = pick_validation_subjects(y, subject, rest, n_val, rng) if n_val else ([], [])
    return _subject_fold(subject, val_subjects, test_subjects, missing)


def _subject_fold(subject, val_subjects, test_subjects, val_missing_classes=()):
    return {
        "split": _assign(len(subject), np.isin(subject, val_subjects), np.isin(subject, test_subjects)),
        "val_subjects": sorted(int(s) for s in val_subjects),
        "test_subjects": sorted(int(s) for s in test_subjects),
        "val_missing_classes": [int(c) for c in val_missing_classes],
    }


def check_class_coverage(folds, y, class_names, kind, dataset, validation="held_out", subject=None):
    """Every class must be in every split of a single split (but the validation split where the
    test split is the validation split), and in training for every LOSO fold; a dataset needs two
    classes at least. An empty split's error names the setting to change (`subject`: each
    window's subject, for the hint)."""
    counts = np.bincount(y, minlength=len(class_names))
    absent = [class_names[c] for c in np.flatnonzero(counts == 0)]
    if absent:
        raise InputError(f"dataset '{dataset}': class '{absent[0]}' has no windows at all; "
                         f"leave it out of the class map")
    if len(class_names) < 2:
        raise InputError(f"dataset '{dataset}': all {len(y)} windows are of one class "
                         f"('{class_names[0]}'); a classifier needs two classes at least: check the "
                         f"raw folder and the class map")
    required = (TRAIN,) if kind == "loso" else (TRAIN, TEST) if validation == "test" else (TRAIN, VAL, TEST)
    for fold, info in folds.items():
        for part in required:
            present = np.bincount(y[info["split"] == part], minlength=len(class_names))
            empty = np.flatnonzero(present == 0)
            if empty.size:
                c = int(empty[0])
                raise InputError(f"dataset '{dataset}', fold '{fold}': class '{class_names[c]}' has no "
                                 f"windows in the {SPLIT_NAMES[part]} split; "
                                 f"{_coverage_hint(kind, part, int(counts[c]), subject, y == c)}")


def _coverage_hint(kind, part, n_class, subject, of_class):
    """What to change so that a class of `n_class` windows reaches split `part`."""
    if kind == "loso":
        subjects = sorted(set(subject[of_class].tolist())) if subject is not None else []
        return (f"its windows are all of subject(s) {subjects}, held out in this fold: leave the "
                f"class out of the class map")
    if kind == "holdout":
        subjects = sorted(set(subject[of_class].tolist())) if subject is not None else []
        return (f"only subject(s) {subjects} have it: name one of them in split.test_subjects (or "
                f"another in split.seed), or leave the class out of the class map")
    if part == TRAIN:
        return "lower split.val_fraction and split.test_fraction"
    key = "split.val_fraction" if part == VAL else "split.test_fraction"
    least = math.ceil(100 * 0.5 / n_class) / 100
    return f"the class has {n_class} window(s): raise {key} to {least:g} or more"


STANDARDIZE = ("mean_window_std", "pooled_std")


def window_moments(X, index=None, chunk=4096):
    """Per window and channel: sum, sum of squares and std (ddof 0) over the samples, float64.

    X is (N, C, L) signals or (N, C, H, W) images; only the rows in `index` when given;
    `chunk` windows are converted at a time, so memory stays bounded.
    """
    rows = np.arange(len(X)) if index is None else np.asarray(index)
    n, c = len(rows), X.shape[1]
    axes = tuple(range(2, X.ndim))
    sums, squares, stds = np.empty((n, c)), np.empty((n, c)), np.empty((n, c))
    for start in range(0, n, chunk):
        part = rows[start:start + chunk]
        block = np.asarray(X[part] if index is not None else X[start:start + chunk], dtype=np.float64)
        sums[start:start + chunk] = block.sum(axis=axes)
        squares[start:start + chunk] = np.square(block).sum(axis=axes)
        stds[start:start + chunk] = block.std(axis=axes)
    return sums, squares, stds


def standardization(moments, train, samples_per_window, mode):
    """Per-channel (mean, std) float32 of the training windows `train` (a boolean mask).

    mean_window_std (the lab's loaders): the mean over every training sample, and the mean
    over training windows of each window's own std. pooled_std: the std of every training
    sample. A channel whose std is 0 gets 1, so standardising never divides by zero (the
    lab's loaders divide by zero, or by machine epsilon, there).
    """
    if mode not in STANDARDIZE:
        raise InputError(f"unknown standardization '{mode}' (known: {', '.join(STANDARDIZE)})")
    sums, squares, stds = moments
    count = train.sum() * samples_per_window
    mean = sums[train].sum(axis=0) / count
    if mode == "mean_window_std":
        std = stds[train].mean(axis=0)
    else:
        std = np.sqrt(np.maximum(squares[train].sum(axis=0) / count - mean**2, 0.0))
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def image_channel_stats(images, train, mode, chunk=4096):
    """Per-channel (mean, std) of the training images `train` (a boolean mask; see
    standardization), reading only those images, `chunk` at a time."""
    index = np.flatnonzero(train)
    moments = window_moments(images, index, chunk=chunk)
    return standardization(moments, np.ones(len(index), dtype=bool),
                           images.shape[2] * images.shape[3], mode)


def channel_stats(X, folds, mode="mean_window_std"):
    """{fold: (mean, std)} per channel over each fold's training windows (see standardization)."""
    moments = window_moments(X)
    samples = int(np.prod(X.shape[2:]))
    return {fold: standardization(moments, info["split"] == TRAIN, samples, mode)
            for fold, info in folds.items()}
