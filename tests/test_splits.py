import numpy as np
import pytest

from gafkd.errors import InputError
from gafkd.data.splits import (TEST, TRAIN, VAL, channel_stats, check_class_coverage, make_folds,
                               pick_validation_subjects)

SPEC = {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}


def labelled(n_subjects=10, per_subject=30, n_classes=3):
    subject = np.repeat(np.arange(100, 100 + n_subjects), per_subject)
    y = np.tile(np.arange(per_subject) % n_classes, n_subjects)
    return y, subject


def test_holdout_is_subject_disjoint_and_seeded():
    y, subject = labelled()
    fold = make_folds(y, subject, {**SPEC, "kind": "holdout"})["holdout"]
    parts = [set(subject[fold["split"] == p]) for p in (TRAIN, VAL, TEST)]
    assert [len(p) for p in parts] == [6, 2, 2]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2]) and parts[1].isdisjoint(parts[2])
    assert sorted(parts[2]) == fold["test_subjects"] and sorted(parts[1]) == fold["val_subjects"]
    again = make_folds(y, subject, {**SPEC, "kind": "holdout"})["holdout"]
    assert np.array_equal(again["split"], fold["split"])
    other = make_folds(y, subject, {**SPEC, "kind": "holdout", "seed": 5})["holdout"]
    assert not np.array_equal(other["split"], fold["split"])


def test_loso_one_fold_per_subject_with_validation_from_training_subjects():
    y, subject = labelled(n_subjects=9)
    folds = make_folds(y, subject, {**SPEC, "kind": "loso", "val_fraction": 0.125})
    assert list(folds) == [f"fold{i}" for i in range(9)]
    for i, fold in enumerate(folds.values()):
        assert fold["test_subjects"] == [100 + i]
        assert np.array_equal(fold["split"] == TEST, subject == 100 + i)
        assert len(fold["val_subjects"]) == 1 and fold["val_subjects"][0] != 100 + i
        assert set(subject[fold["split"] == TRAIN]).isdisjoint(fold["val_subjects"])


def test_random_split_is_stratified():
    y, subject = labelled(n_subjects=2, per_subject=150)
    split = make_folds(y, subject, {**SPEC, "kind": "random"})["random"]["split"]
    for cls in range(3):
        counts = np.bincount(split[y == cls], minlength=3)
        assert counts.tolist() == [60, 20, 20]


def test_predefined_test_set_stays():
    y, subject = labelled(n_subjects=1, per_subject=40)
    test = np.arange(40) >= 20
    split = make_folds(y, subject, {**SPEC, "kind": "predefined"}, predefined_test=test)["predefined"]["split"]
    assert np.array_equal(split == TEST, test)
    per_class = np.bincount(y[~test])
    assert (split[~test] == VAL).sum() == sum(round(0.2 * n) for n in per_class)
    assert all(((split == VAL) & (y == c)).any() for c in range(3))


def test_too_few_subjects():
    y, subject = labelled(n_subjects=2)
    with pytest.raises(InputError, match="needs at least 3 subjects, found 2"):
        make_folds(y, subject, {**SPEC, "kind": "loso"})


def test_class_left_empty_by_a_split():
    y, subject = labelled(n_subjects=5)
    y[subject == 100] = 3     # only subject 100 has class 3
    folds = make_folds(y, subject, {**SPEC, "kind": "holdout"})
    with pytest.raises(InputError, match=r"dataset 'd', fold 'holdout': class 'd3' has no windows in the (train|val|test) split"):
        check_class_coverage(folds, y, ["d0", "d1", "d2", "d3"], "holdout", "d")
    loso = make_folds(y, subject, {**SPEC, "kind": "loso"})
    with pytest.raises(InputError, match=r"fold 'fold0': class 'd3' has no windows in the train split"):
        check_class_coverage(loso, y, ["d0", "d1", "d2", "d3"], "loso", "d")


def channel_data():
    rng = np.random.default_rng(0)
    y, subject = labelled()
    X = rng.normal(size=(len(y), 4, 25)).astype(np.float32) * [[1], [2], [3], [0]]
    X[subject == 101, :3] += 100   # a subject far off, so using the wrong windows shows
    X[subject == 102, :3] *= 5     # windows of unequal spread: the two std kinds differ
    return X, make_folds(y, subject, {**SPEC, "kind": "loso"})


def test_pooled_std_of_the_training_windows():
    X, folds = channel_data()
    stats = channel_stats(X, folds, "pooled_std")
    for fold, info in folds.items():
        train = X[info["split"] == TRAIN]
        mean, std = stats[fold]
        np.testing.assert_allclose(mean, train.mean(axis=(0, 2)), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(std[:3], train.std(axis=(0, 2))[:3], rtol=1e-4)
        assert std[3] == 1.0    # a constant channel never divides by zero


def test_mean_window_std_is_the_labs_loader():
    """data_loader_custom.py: mean over (windows, time); std = mean over windows of each
    window's own std (ddof 0), both in float64 from float32 windows laid out (N, 1, L, C)."""
    X, folds = channel_data()
    stats = channel_stats(X, folds, "mean_window_std")
    for fold, info in folds.items():
        x_train = X[info["split"] == TRAIN].transpose(0, 2, 1)[:, None]      # the lab's layout
        lab_mean = np.mean(x_train, axis=(0, 1, 2), dtype="float64")
        lab_std = np.mean(np.std(x_train, axis=(1, 2), dtype="float64"), axis=0)
        mean, std = stats[fold]
        np.testing.assert_allclose(mean, lab_mean.astype(np.float32), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(std[:3], lab_std[:3].astype(np.float32), rtol=1e-6)
        assert std[3] == 1.0
        pooled = X[info["split"] == TRAIN].std(axis=(0, 2))
        assert (std[:3] < pooled[:3] * 0.99).all()    # between-window spread left out


def sparse_subjects():
    """Classes 0-2 in subjects 100-104; 103 has class 0 only, 102 lacks class 2."""
    y, subject = labelled(n_subjects=5)
    y[subject == 103] = 0
    y[(subject == 102) & (y == 2)] = 1
    return y, subject


def test_validation_subjects_cover_the_training_classes():
    y, subject = sparse_subjects()
    chosen = set()
    for seed in range(8):
        folds = make_folds(y, subject, {**SPEC, "kind": "loso", "val_fraction": 0.25, "seed": seed})
        for fold in folds.values():
            # two full subjects are always left besides the test subject: one of them validates
            assert len(fold["val_subjects"]) == 1 and fold["val_subjects"][0] in (100, 101, 104)
            assert fold["val_missing_classes"] == []
            chosen |= set(fold["val_subjects"])
        check_class_coverage(folds, y, ["a", "b", "c"], "loso", "d")
    assert chosen == {100, 101, 104}           # the seeded order still decides among them


def test_validation_that_cannot_cover_every_class_says_which():
    y, subject = sparse_subjects()
    for s in (101, 104):
        y[(subject == s) & (y == 2)] = 0        # now only subject 100 has class 2
    folds = make_folds(y, subject, {**SPEC, "kind": "loso", "val_fraction": 0.25})
    fold = folds["fold1"]                        # 101 tested; 100 must stay in training
    assert fold["test_subjects"] == [101]
    assert fold["val_subjects"] == [102] or fold["val_subjects"] == [104]   # 2 classes; 103 has 1
    assert fold["val_missing_classes"] == [2]


def test_pick_validation_subjects_keeps_every_class_in_training():
    y = np.array([0, 1, 0, 1, 0])
    subject = np.array([1, 1, 2, 2, 3])
    chosen, missing = pick_validation_subjects(y, subject, np.array([1, 2, 3]), 2,
                                               np.random.default_rng(0))
    assert sorted(chosen) in ([1, 3], [2, 3]) and missing == []


def test_holdout_with_named_test_subjects():
    y, subject = labelled()
    fold = make_folds(y, subject, {**SPEC, "kind": "holdout", "test_subjects": [104, 107]})["holdout"]
    assert fold["test_subjects"] == [104, 107]
    assert set(subject[fold["split"] == TEST]) == {104, 107}
    assert len(fold["val_subjects"]) == 2 and not {104, 107} & set(fold["val_subjects"])
    with pytest.raises(InputError, match=r"test subject\(s\) \[999\] have no windows"):
        make_folds(y, subject, {**SPEC, "kind": "holdout", "test_subjects": [104, 999]})


def test_class_with_no_window_at_all():
    y, subject = labelled()
    folds = make_folds(y, subject, {**SPEC, "kind": "holdout"})
    with pytest.raises(InputError, match=r"dataset 'd': class 'never' has no windows at all"):
        check_class_coverage(folds, y, ["d0", "d1", "d2", "never"], "holdout", "d")


def test_loso_validation_lacking_classes_is_logged_and_summarised(tmp_path, caplog):
    from rawfiles import make_gene_folder

    from gafkd.data.windows import build_windows, read_windows
    raw = tmp_path / "raw"
    make_gene_folder(raw, subjects=(101, 102), classes=(1, 2, 3), per_class=2)
    make_gene_folder(raw, subjects=(103, 104), classes=(1,), per_class=3, seed=1)   # walk only
    spec = {"source": "geneactiv_mat", "raw": str(raw), "window": 50,
            "class_map": {1: "walk", 2: "run", 3: "sit"},
            "split": {"kind": "loso", "val_fraction": 0.3, "test_fraction": 0.2, "seed": 0}}
    with caplog.at_level("WARNING"):
        build_windows("g", spec, tmp_path / "windows.h5", tmp_path / "summary.md")
    # fold0 tests 101; 102 must stay in training, so 103 or 104 validates, lacking run and sit
    fold0 = read_windows(tmp_path / "windows.h5", load_X=False).folds["fold0"]
    assert fold0.val_subjects in ([103], [104]) and fold0.val_missing_classes == ["run", "sit"]
    warning = f"g, fold0: no choice of validation subjects covers every class; validation subject(s) {fold0.val_subjects} lack run, sit"
    assert warning in caplog.text
    summary = (tmp_path / "summary.md").read_text()
    assert f"**warning**: no choice of validation subjects covers every class; validation subject(s) {fold0.val_subjects} lack run, sit" in summary
    # fold2 tests 103: 101 or 102 can validate and covers every class, so nothing is said
    assert "g, fold2" not in caplog.text


def test_image_standardisation_is_the_labs_image_loader():
    """data_loader_custom.py get_PAMAP2_data4: images (N, H, W, C) float32; mean over
    (N, H, W) in float64; std = mean over images of each image's own std over (H, W)."""
    from gafkd.data.splits import image_channel_stats
    rng = np.random.default_rng(3)
    images = (rng.normal(size=(12, 3, 8, 8)) * rng.uniform(0.2, 3, size=(12, 3, 1, 1))).astype(np.float16)
    images[:, 2] = 0.25                                   # a constant channel
    train = np.arange(12) % 3 != 0
    x_train = images[train].astype(np.float32).transpose(0, 2, 3, 1)
    lab_mean = np.mean(x_train, axis=(0, 1, 2), dtype="float64")
    lab_std = np.mean(np.std(x_train, axis=(1, 2), dtype="float64"), axis=0)
    mean, std = image_channel_stats(images, train, "mean_window_std")
    np.testing.assert_allclose(mean, lab_mean.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(std[:2], lab_std[:2].astype(np.float32), rtol=1e-6)
    assert std[2] == 1.0                                  # the lab: machine epsilon; same result, 0
    pooled_mean, pooled_std = image_channel_stats(images, train, "pooled_std")
    np.testing.assert_allclose(pooled_std[:2], x_train.std(axis=(0, 1, 2))[:2], rtol=1e-5)


@pytest.mark.parametrize("kind", ["loso", "holdout"])
def test_validation_on_the_test_subjects_trains_on_every_other_subject(kind):
    y, subject = labelled(n_subjects=9)
    spec = {**SPEC, "kind": kind, "val_fraction": 0.125, "validation": "test"}
    folds = make_folds(y, subject, spec)
    held_out = make_folds(y, subject, {**spec, "validation": "held_out"})
    for name, fold in folds.items():
        assert not (fold["split"] == VAL).any() and fold["val_subjects"] == []
        assert np.array_equal(fold["split"] == TEST, held_out[name]["split"] == TEST)   # the same test subjects
        assert set(subject[fold["split"] == TRAIN]) == set(subject) - set(fold["test_subjects"])
    check_class_coverage(folds, y, ["a", "b", "c"], kind, "d", "test")        # no validation split to cover


def test_a_fold_validated_on_its_test_subject_trains_and_standardises_on_the_other_subjects(tmp_path):
    import torch
    from rawfiles import make_gene_folder

    from gafkd.train.folds import load_fold, to_train_data
    from gafkd.data.windows import build_windows

    make_gene_folder(tmp_path / "raw", subjects=(101, 102, 103, 104))
    out = {}
    for validation in ("test", "held_out"):
        spec = {"source": "geneactiv_mat", "raw": str(tmp_path / "raw"), "window": 50,
                "split": {"kind": "loso", "validation": validation, "val_fraction": 0.3, "seed": 0}}
        build_windows("g", spec, tmp_path / f"{validation}.h5", tmp_path / f"{validation}.md")
        arrays = load_fold(tmp_path / f"{validation}.h5", "fold1", "sig")
        out[validation] = (arrays, to_train_data(arrays, torch.device("cpu")))
    arrays, data = out["test"]
    assert arrays.split_record["validation"] == "test" and arrays.split_record["val_subjects"] == []
    assert data.val is data.test and len(data.train) == 3 * len(data.test)      # 3 subjects train
    train = arrays.X[arrays.split == TRAIN]
    assert arrays.mean == pytest.approx(train.mean(axis=(0, 2)), abs=1e-5)       # training statistics
    held_arrays, held = out["held_out"]
    assert held.val is not held.test and len(held.train) == 2 * len(held.test)
    assert not np.allclose(held_arrays.mean, arrays.mean)
