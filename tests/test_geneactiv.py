import numpy as np
import pytest
from conftest import tree_digest
from rawfiles import gene_name, make_gene_folder, write_mat_v5, write_mat_v73

from gafkd.errors import InputError
from gafkd.data.readers.geneactiv import read_geneactiv


def test_reads_v5_and_v73_in_both_orientations(gene_folder):
    folder, written = gene_folder
    ws = read_geneactiv(folder, window=50)
    assert ws.X.shape == (len(written), 3, 50) and ws.X.dtype == np.float32
    # Files are read in (subject, class, window) order; every signal comes back as (C, W).
    for i, path in enumerate(sorted(written, key=lambda p: p.name)):
        np.testing.assert_allclose(ws.X[i], written[path], rtol=1e-6)
    assert ws.subject.tolist() == [s for s in (101, 102, 103, 104, 105) for _ in range(6)]
    assert ws.class_names == ["class 1", "class 2", "class 3"]
    assert ws.y.tolist()[:6] == [0, 0, 1, 1, 2, 2]
    assert ws.channel_names == ["x", "y", "z"]


def test_class_map_merges_ids_and_names_classes(gene_folder):
    folder, _ = gene_folder
    ws = read_geneactiv(folder, window=50, class_map={1: "walk", 2: "stairs", 3: "walk"})
    assert ws.class_names == ["walk", "stairs"]
    assert ws.y.tolist()[:6] == [0, 0, 1, 1, 0, 0]


def test_any_channel_count(tmp_path):
    written = make_gene_folder(tmp_path, channels=6, subjects=(1,), classes=(1,))
    ws = read_geneactiv(tmp_path, window=50, channels=[f"c{i}" for i in range(6)])
    assert ws.X.shape == (len(written), 6, 50)
    assert ws.channel_names == ["c0", "c1", "c2", "c3", "c4", "c5"]


def expect_error(folder, match, **kwargs):
    before = tree_digest(folder) if folder.exists() else None
    with pytest.raises(InputError, match=match):
        read_geneactiv(folder, **{"window": 50, **kwargs})
    if before is not None:
        assert tree_digest(folder) == before, "raw files must never be modified"


def test_missing_folder(tmp_path):
    expect_error(tmp_path / "nowhere", "does not exist")


def test_no_matching_files(tmp_path):
    (tmp_path / "notes.txt").write_text("no windows here")
    expect_error(tmp_path, "no ID-<subject>")


def test_file_name_off_pattern(gene_folder):
    folder, _ = gene_folder
    write_mat_v5(folder / "ID-7_Window-0001.mat", xw=np.zeros((50, 3)))
    expect_error(folder, "ID-7_Window-0001.mat: file name does not match")


@pytest.mark.parametrize("writer", [write_mat_v5, write_mat_v73])
def test_mat_without_xw(gene_folder, writer):
    folder, _ = gene_folder
    writer(folder / gene_name(101, 1, 9), signal=np.zeros((50, 3)))
    expect_error(folder, r"ID-101_CLASS-1_Window-0009.mat: no variable 'xw'")


@pytest.mark.parametrize("shape", [(40, 3), (3, 60), (50, 3, 1)])
def test_wrong_shape_or_length(gene_folder, shape):
    folder, _ = gene_folder
    write_mat_v5(folder / gene_name(101, 1, 9), xw=np.zeros(shape))
    expect_error(folder, "ID-101_CLASS-1_Window-0009.mat: 'xw' has shape")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("writer", [write_mat_v5, write_mat_v73])
def test_nan_or_inf(gene_folder, bad, writer):
    folder, _ = gene_folder
    signal = np.zeros((50, 3))
    signal[10, 1] = bad
    writer(folder / gene_name(102, 2, 9), xw=signal)
    expect_error(folder, "ID-102_CLASS-2_Window-0009.mat: 'xw' contains NaN or inf")


def test_class_outside_class_map(gene_folder):
    folder, _ = gene_folder
    expect_error(folder, r"CLASS-3_Window-0001.mat: class id 3 is not in the class map",
                 class_map={1: "a", 2: "b"})


def test_channel_count_differs_between_files(gene_folder):
    folder, _ = gene_folder
    write_mat_v5(folder / gene_name(105, 3, 9), xw=np.zeros((50, 4)))
    expect_error(folder, "ID-105_CLASS-3_Window-0009.mat: 4 channels")


def test_unreadable_mat(gene_folder):
    folder, _ = gene_folder
    (folder / gene_name(101, 1, 9)).write_bytes(b"not a matlab file at all")
    expect_error(folder, "ID-101_CLASS-1_Window-0009.mat: not a readable MATLAB file")


def test_files_that_are_not_mat_are_counted(gene_folder):
    folder, written = gene_folder
    (folder / "ID-101_CLASS-2_Window-0003.csv").write_text("1,2,3\n")
    (folder / "notes.txt").write_text("exported on Monday\n")
    ws = read_geneactiv(folder, window=50)
    assert len(ws.X) == len(written)
    assert ws.dropped == {"not_mat_file": {"unit": "files", "total": 2, "detail": [
        {"subject": 101, "class": "class 2", "count": 1},
        {"subject": None, "class": None, "count": 1}]}}


def test_nothing_left_out(gene_folder):
    folder, _ = gene_folder
    assert read_geneactiv(folder, window=50).dropped == {}
