"""Train/validation/test assignment of every window, for each fold of a split spec.

Kinds: `predefined` (the source's published test set; validation drawn from its training
windows), `random` (the lab's stratified random window split), `holdout` (subject-disjoint),
`loso` (leave one subject out; validation subjects drawn from the training subjects).
"""

import numpy as np

from gafkd.errors import InputError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")


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


def make_folds(y, subject, spec, predefined_test=None):
    """{fold name: {"split": int8 (N,), "val_subjects": [...], "test_subjects": [...]}}."""
    kind, seed = spec["kind"], spec["seed"]
    rng = np.random.default_rng(seed)
    n = len(y)
    subjects = np.unique(subject)
    if kind == "predefined":
        if predefined_test is None:
            raise InputError("split kind 'predefined' needs a source with a published test set")
        val = _stratified_pick(y, ~predefined_test, spec["val_fraction"], rng)
        return {"holdout": {"split": _assign(n, val, predefined_test)}}
    if kind == "random":
        test = _stratified_pick(y, np.ones(n, dtype=bool), spec["test_fraction"], rng)
        val_share = spec["val_fraction"] / (1.0 - spec["test_fraction"])
        val = _stratified_pick(y, ~test, val_share, rng)
        return {"holdout": {"split": _assign(n, val, test)}}
    if len(subjects) < 3:
        raise InputError(f"split kind '{kind}' needs at least 3 subjects, found {len(subjects)}")
    if kind == "holdout":
        n_val, n_test = _subject_counts(len(subjects), spec["val_fraction"], spec["test_fraction"])
        if n_val + n_test >= len(subjects):
            raise InputError(f"holdout split: {len(subjects)} subjects leave none for training "
                             f"({n_val} validation, {n_test} test)")
        order = rng.permutation(subjects)
        test_subjects, val_subjects = order[:n_test], order[n_test:n_test + n_val]
        return {"holdout": _subject_fold(subject, val_subjects, test_subjects)}
    if kind == "loso":
        folds = {}
        for i, held_out in enumerate(subjects):
            rest = subjects[subjects != held_out]
            n_val = max(1, int(round(spec["val_fraction"] * len(rest))))
            val_subjects = np.random.default_rng([seed, i]).permutation(rest)[:n_val]
            folds[f"fold{i}"] = _subject_fold(subject, val_subjects, [held_out])
        return folds
    raise InputError(f"unknown split kind '{kind}'")


def _subject_fold(subject, val_subjects, test_subjects):
    return {
        "split": _assign(len(subject), np.isin(subject, val_subjects), np.isin(subject, test_subjects)),
        "val_subjects": sorted(int(s) for s in val_subjects),
        "test_subjects": sorted(int(s) for s in test_subjects),
    }


def check_class_coverage(folds, y, class_names, kind, dataset):
    """Every class must be in every split of a single split, and in training for every LOSO fold."""
    absent = [class_names[c] for c in np.flatnonzero(np.bincount(y, minlength=len(class_names)) == 0)]
    if absent:
        raise InputError(f"dataset '{dataset}': class '{absent[0]}' has no windows at all; "
                         f"leave it out of the class map")
    required = (TRAIN,) if kind == "loso" else (TRAIN, VAL, TEST)
    for fold, info in folds.items():
        for part in required:
            present = np.bincount(y[info["split"] == part], minlength=len(class_names))
            empty = [class_names[c] for c in np.flatnonzero(present == 0)]
            if empty:
                raise InputError(f"dataset '{dataset}', fold '{fold}': class '{empty[0]}' has no "
                                 f"windows in the {SPLIT_NAMES[part]} split")


def channel_stats(X, folds, chunk=4096):
    """Per-fold per-channel mean and std of the training windows only (float64 accumulation).

    A channel that is constant over the training windows gets std 1, so standardising never
    divides by zero.
    """
    n, c, length = X.shape
    sums = np.empty((n, c))
    squares = np.empty((n, c))
    for start in range(0, n, chunk):
        block = X[start:start + chunk].astype(np.float64)
        sums[start:start + chunk] = block.sum(axis=2)
        squares[start:start + chunk] = np.square(block).sum(axis=2)
    stats = {}
    for fold, info in folds.items():
        train = info["split"] == TRAIN
        count = train.sum() * length
        mean = sums[train].sum(axis=0) / count
        var = np.maximum(squares[train].sum(axis=0) / count - mean**2, 0.0)
        std = np.sqrt(var)
        std[std < 1e-8] = 1.0
        stats[fold] = (mean.astype(np.float32), std.astype(np.float32))
    return stats
