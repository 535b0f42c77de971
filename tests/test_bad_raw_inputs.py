"""Bad raw files and config values, one row each: every one stops the run with an error that
names the file (and line, for PAMAP2) or the config key, leaves the raw files as they were and,
for the windows job, leaves no output behind. Input that is legal but unusual is read with a
warning in the job's log and a line in windows_summary.md."""
import builtins
import errno
import io
import logging
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO, tree_digest
from test_config import snakemake_with
from rawfiles import (RAW, gene_name, make_gene_folder, make_pamap2_folder, pamap2_table,
                      write_mat_v5, write_mat_v73, write_pamap2)
from snakemake.utils import validate

from gafkd.config import check_config, check_split_subjects, fold_names
from gafkd.configfile import schema_errors
from gafkd.errors import ConfigError, GafkdError, InputError
from gafkd.data.windows import build_windows, read_windows

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SPLIT = {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}


def gene(root):
    folder = root / "GENEActiv" / "Window-size-50"
    make_gene_folder(folder, subjects=(101, 102, 103, 104))
    return folder


def gene_spec(folder, **extra):
    return {"source": "geneactiv_mat", "raw": str(folder), "window": 50,
            "split": {"kind": "holdout", **SPLIT}, **extra}


def pamap2(root):
    folder = root / "PAMAP2_Dataset" / "Protocol"
    make_pamap2_folder(folder, extra_subjects=(102, 103))
    return folder


def pamap2_spec(folder, **extra):
    return {"source": "pamap2", "raw": str(folder), "split": {"kind": "loso", **SPLIT}, **extra}


def at(path, line=None):
    """A regex for the start of an error about `path` (and `line`)."""
    return re.escape(f"{path}, line {line}:" if line else f"{path}:")


def edit_token(path, line, column, token):
    lines = path.read_text().splitlines()
    tokens = lines[line - 1].split()
    tokens[column] = token
    lines[line - 1] = " ".join(tokens)
    path.write_text("\n".join(lines) + "\n")


# Windows-job cases: setup(raw root) writes the bad input and returns (dataset spec, regex).

def pamap2_token(token, line, column, message):
    def setup(root):
        path = pamap2(root) / "subject102.dat"
        edit_token(path, line, column, token)
        return pamap2_spec(path.parent), at(path, line) + message
    return setup


def pamap2_53_columns(root):
    path = pamap2(root) / "subject103.dat"
    lines = path.read_text().splitlines()
    lines[7] = lines[7].rsplit(" ", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    return pamap2_spec(path.parent), at(path, 8) + " 53 columns, expected 54"


def pamap2_timestamps_all_zero(root):
    path = pamap2(root) / "subject102.dat"
    lines = [line.split(" ", 1) for line in path.read_text().splitlines()]
    path.write_text("".join(f"0 {rest}\n" for _, rest in lines))
    return pamap2_spec(path.parent), at(path, 2) + " timestamp 0 repeats line 1's; .* remove the duplicate"


def pamap2_unknown_activity(root):
    folder = pamap2(root)
    write_pamap2(folder / "subject105.dat", pamap2_table([(1, 330), (8, 30)]))
    return pamap2_spec(folder), at(folder / "subject105.dat", 331) + " unknown PAMAP2 activity id 8"


def pamap2_archive_root(root):
    archive = pamap2(root).parent
    return (pamap2_spec(archive),
            re.escape(f"no subjectNNN.dat files in {archive}; ") + ".*Protocol/ folder.*"
            + re.escape(f"set raw: {archive / 'Protocol'}"))


def pamap2_optional(root):
    archive = pamap2(root).parent
    optional = archive / "Optional"
    optional.mkdir()
    write_pamap2(optional / "subject101.dat", pamap2_table([(0, 60), (9, 600), (10, 600)]))
    return (pamap2_spec(optional),
            at(optional / "subject101.dat") + r" subject 101 has no usable window: none of its "
            r"activities \[0, 9, 10\] is in the class map .*Optional/ recordings.*"
            + re.escape(f"set raw: {archive / 'Protocol'}"))


def pamap2_missing_folder(root):
    pamap2(root)
    folder = root / "PAMAP2_Dataset" / "Protocoll"
    return pamap2_spec(folder), re.escape(f"PAMAP2 raw folder {folder} does not exist")


def gene_signal(writer, signal, message, name=gene_name(102, 2, 9)):
    def setup(root):
        path = gene(root) / name
        writer(path, xw=signal)
        return gene_spec(path.parent), at(path) + message
    return setup


def with_bad(value, shape=(50, 3)):
    signal = np.zeros(shape, dtype=np.result_type(value, float))
    signal[10, 1] = value
    return signal


def write_complex_v73(path, xw):
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("xw", data=np.asarray(xw).T)


def gene_folder_named_mat(root):
    path = gene(root) / gene_name(103, 2, 9)
    path.mkdir()
    return gene_spec(path.parent), at(path) + " is a folder, not a MATLAB file; move it out"


def gene_truncated_v73(root):
    path = gene(root) / gene_name(103, 1, 9)
    write_mat_v73(path, xw=np.zeros((50, 3)))
    path.write_bytes(path.read_bytes()[:1500])
    return gene_spec(path.parent), at(path) + " not a readable MATLAB v7.3 file, truncated"


def gene_xw_group(root):
    path = gene(root) / gene_name(103, 1, 9)
    write_mat_v73(path, other=np.zeros((50, 3)))
    with h5py.File(path, "r+") as f:
        f.create_group("xw").create_dataset("signal", data=np.zeros((3, 50)))
    return gene_spec(path.parent), at(path) + " 'xw' is a MATLAB struct or object"


def gene_empty_file(root):
    path = gene(root) / gene_name(104, 3, 9)
    path.write_bytes(b"")
    return gene_spec(path.parent), at(path) + " file is empty"


def gene_bad_name(root):
    folder = gene(root)
    write_mat_v5(folder / "ID-7_Window-0001.mat", xw=np.zeros((50, 3)))
    return gene_spec(folder), at(folder / "ID-7_Window-0001.mat") + " file name does not match"


def gene_unknown_class(root):
    folder = gene(root)
    return (gene_spec(folder, class_map={1: "a", 2: "b"}),
            at(folder / gene_name(101, 3, 1)) + " class id 3 is not in the class map")


def gene_missing_folder(root):
    folder = root / "GENEActiv" / "Window-size-500"
    gene(root)
    return gene_spec(folder), re.escape(f"GENEActiv raw folder {folder} does not exist")


WINDOWS_CASES = {
    "pamap2 inf token": pamap2_token("inf", 51, 9, r" hand_acc6_z \(column 10\) is inf"),
    "pamap2 -inf token": pamap2_token("-inf", 7, 20, r" chest_temp \(column 21\) is -inf"),
    "pamap2 number beyond float64": pamap2_token("1e999", 12, 5, r" .* is inf"),
    "pamap2 line with 53 columns": pamap2_53_columns,
    "pamap2 non-numeric token": pamap2_token("1.2.3", 100, 5, " non-numeric token '1.2.3'"),
    "pamap2 NA token": pamap2_token("NA", 3, 6, " non-numeric token 'NA'"),
    "pamap2 unknown activity id": pamap2_unknown_activity,
    "pamap2 NaN activity id": pamap2_token("NaN", 40, 1, r" activity_id \(column 2\) is NaN; every "
                                                        r"line needs its activity id"),
    "pamap2 NaN timestamp": pamap2_token("NaN", 30, 0, r" timestamp \(column 1\) is NaN; every line "
                                                      r"needs its time in seconds"),
    "pamap2 timestamps all 0": pamap2_timestamps_all_zero,
    "pamap2 raw at the archive root": pamap2_archive_root,
    "pamap2 raw at Optional/": pamap2_optional,
    "pamap2 missing raw folder": pamap2_missing_folder,
    "gene xw with NaN (v5)": gene_signal(write_mat_v5, with_bad(np.nan),
                                         " 'xw' contains NaN or inf"),
    "gene xw with inf (v7.3)": gene_signal(write_mat_v73, with_bad(np.inf),
                                           " 'xw' contains NaN or inf"),
    "gene xw beyond float32 (v5)": gene_signal(write_mat_v5, with_bad(1e300),
                                               r" 'xw' holds 1e\+300 \(first at 0-based channel 1, "
                                               r"sample 10\), beyond the float32 range"),
    "gene complex xw (v5)": gene_signal(write_mat_v5, with_bad(1j), " 'xw' holds complex numbers"),
    "gene complex xw (v7.3)": gene_signal(write_complex_v73, with_bad(1j),
                                          " 'xw' holds complex numbers"),
    "gene text xw": gene_signal(write_mat_v5, "walking", " 'xw' holds <U7 values, not numbers"),
    "gene truncated v7.3": gene_truncated_v73,
    "gene v7.3 xw is a group": gene_xw_group,
    "gene wrong window length": gene_signal(write_mat_v5, np.zeros((40, 3)), " 'xw' has shape"),
    "gene empty .mat file": gene_empty_file,
    "gene .mat that is a folder": gene_folder_named_mat,
    "gene empty xw": gene_signal(write_mat_v73, np.zeros((0, 0)), r" 'xw' has shape \(0, 0\)"),
    "gene file name does not parse": gene_bad_name,
    "gene class id not in the class map": gene_unknown_class,
    "gene missing raw folder": gene_missing_folder,
}


@pytest.mark.parametrize("setup", WINDOWS_CASES.values(), ids=WINDOWS_CASES.keys())
def test_windows_job_stops_naming_the_file(tmp_path, setup):
    raw = tmp_path / "raw"
    spec, match = setup(raw)
    before = tree_digest(raw)
    out = tmp_path / "results" / "d"
    with pytest.raises(GafkdError, match=match):
        build_windows("d", spec, out / "windows.h5", out / "windows_summary.md")
    assert tree_digest(raw) == before, "raw files must never be modified"
    assert not out.exists() or not any(out.iterdir()), "a failed job leaves no output"


def deny_reading(monkeypatch, path):
    """Make opening `path` fail with EACCES, as it does for anyone but root after chmod 000."""
    def guard(real):
        def opener(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and Path(file) == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return real(file, *args, **kwargs)
        return opener
    for module, name in [(builtins, "open"), (io, "open"), (h5py, "is_hdf5")]:
        monkeypatch.setattr(module, name, guard(getattr(module, name)))


@pytest.mark.parametrize("source", ["geneactiv_mat", "pamap2"])
def test_unreadable_raw_file_stops_naming_it_and_its_permissions(tmp_path, monkeypatch, source):
    raw = tmp_path / "raw"
    if source == "pamap2":
        path = pamap2(raw) / "subject102.dat"
        spec = pamap2_spec(path.parent)
    else:
        path = gene(raw) / gene_name(102, 2, 1)
        spec = gene_spec(path.parent)
    path.chmod(0)
    if os.geteuid() == 0:
        deny_reading(monkeypatch, path)       # root reads any file whatever its mode
    out = tmp_path / "results" / "d"
    try:
        with pytest.raises(InputError, match=at(path) + r" cannot be read \(permission denied\); "
                                                        r"check the file's permissions"):
            build_windows("d", spec, out / "windows.h5", out / "windows_summary.md")
    finally:
        path.chmod(0o644)
    assert not out.exists() or not any(out.iterdir()), "a failed job leaves no output"


# Legal but unusual PAMAP2 input: read, with a warning in the log and a line in the summary.

def build_and_summarise(tmp_path, spec):
    spec["class_map"] = {1: "lying", 4: "walking", 24: "rope jumping"}     # the fixtures' activities
    out = tmp_path / "results" / "d"
    build_windows("d", spec, out / "windows.h5", out / "windows_summary.md")
    return read_windows(out / "windows.h5"), (out / "windows_summary.md").read_text()


def test_pamap2_jump_back_in_time_splits_the_recording(tmp_path, caplog):
    # subject 102 joins two sessions whose clocks both start at 0, the second from line 1057
    # (sample 352 after downsampling by 3), both rope jumping around the join. Column
    # hand_acc16_x holds the time, so a window that spanned the jump would not increase throughout.
    folder = pamap2(tmp_path / "raw")
    table = np.concatenate([pamap2_table([(1, 396), (4, 330), (24, 330)], seed=102),
                            pamap2_table([(24, 330), (1, 396), (4, 330)], seed=202)])
    table[:, RAW["hand_acc16_x"]] = table[:, 0]
    write_pamap2(folder / "subject102.dat", table)
    with caplog.at_level(logging.WARNING):
        windows, summary = build_and_summarise(
            tmp_path, pamap2_spec(folder, channels=["hand_acc16_x"]))
    time = windows.X[windows.subject == 102, 0]
    assert len(time) and (np.diff(time, axis=-1) > 0).all(), "a window spans the jump"
    assert f"{folder / 'subject102.dat'}: timestamps jump back in time at line(s) 1057" in caplog.text
    # lab starts 22, 44, ...: those from 264 to 330 (rope jumping at both ends) span sample 352
    for row in ["| jump back in time inside the window | 102 | rope jumping | 4 windows |",
                "| timestamps jump back in time (no window spans a jump) | subject102.dat | "
                "line(s) 1057 | 1 jump |"]:
        assert row + "\n" in summary


def test_pamap2_all_nan_column_under_lab_protocol_is_counted(tmp_path, caplog):
    folder = pamap2(tmp_path / "raw")
    table = pamap2_table([(1, 396), (4, 330), (24, 330)], seed=103)
    table[:, RAW["chest_gyro_y"]] = np.nan
    write_pamap2(folder / "subject103.dat", table)
    with caplog.at_level(logging.WARNING):
        _, summary = build_and_summarise(tmp_path, pamap2_spec(folder))
    assert (f"{folder / 'subject103.dat'}: chest_gyro_y is NaN on all 1056 rows kept; protocol lab "
            f"sets it to 0") in caplog.text
    assert ("| column NaN on every row kept, set to 0 (protocol lab) | subject103.dat | "
            "chest_gyro_y | 1056 rows |\n") in summary


# Config cases: setup(raw root) returns (config, regex); checked as common.smk does, before the
# workflow is built.

def check_as_the_workflow_does(config):
    problem = schema_errors(config, SCHEMA)
    if problem:
        raise ConfigError(problem)
    validate(config, str(SCHEMA))
    check_config(config)
    for name, spec in config["datasets"].items():
        fold_names(spec)
        check_split_subjects(name, spec)


def with_dataset(spec, **top):
    return {"datasets": {"d": spec}, "images": {"size": 16}, **top}


def config_case(make_spec, match, **top):
    def setup(root):
        return with_dataset(make_spec(root), **top), match
    return setup


def pamap2_loso_at_archive_root(root):
    archive = pamap2(root).parent
    return (with_dataset(pamap2_spec(archive)),
            re.escape(f"no subjectNNN.dat files in {archive}; ") + ".*"
            + re.escape(f"set raw: {archive / 'Protocol'}"))


def gene_missing_test_subject(root):
    folder = gene(root)
    spec = gene_spec(folder)
    spec["split"]["test_subjects"] = [102, 999]
    return (with_dataset(spec),
            re.escape("datasets.d.split.test_subjects: no raw files for subject(s) [999] in "
                      f"{folder} (subjects there: [101, 102, 103, 104])"))


def pamap2_subject_without_file(root):
    folder = pamap2(root)
    return (with_dataset(pamap2_spec(folder, subjects=[101, 102, 103, 110])),
            re.escape(f"{folder}: no file for subject(s) [110] listed in the dataset's `subjects:` "
                      f"(expected subject110.dat); add the file(s) or remove [110] from `subjects:`"))


def pamap2_stray_subject(root):
    folder = pamap2(root)
    (folder / "subject1.dat").write_bytes((folder / "subject102.dat").read_bytes())
    return (with_dataset(pamap2_spec(folder)),
            at(folder / "subject1.dat") + re.escape(" subject(s) [1] are not among PAMAP2's subjects "
                                                    "101-109; move the file(s) out of"))


CONFIG_CASES = {
    "class_map with mixed keys": config_case(
        lambda root: gene_spec(gene(root), class_map={1: "a", "2": "b", 3: "c"}),
        r"^datasets\.d\.class_map: keys mix numbers \[1, 3\] and text \['2'\]"),
    "class_map key not an integer": config_case(
        lambda root: gene_spec(gene(root), class_map={"walk": "a"}),
        r"^datasets\.d\.class_map: key 'walk' is not an integer class id"),
    "pamap2 class_map id not an activity": config_case(
        lambda root: pamap2_spec(pamap2(root), class_map={1: "lying", 8: "none"}),
        r"^datasets\.d\.class_map: \[8\] are not PAMAP2 activity ids"),
    "students.arch wrn15-1": config_case(
        lambda root: gene_spec(gene(root)),
        r"^students\.arch: architecture 'wrn15-1': depth 15 is not 6n\+4",
        students={"arch": "wrn15-1"}),
    "teachers.archs wrn15-1": config_case(
        lambda root: gene_spec(gene(root)), r"^teachers\.archs: architecture 'wrn15-1'",
        teachers={"archs": ["wrn16-1", "wrn15-1"]}),
    "students.teacher_archs wrn15-1": config_case(
        lambda root: gene_spec(gene(root)), r"^students\.teacher_archs: architecture 'wrn15-1'",
        teachers={"archs": ["wrn16-1"]}, students={"teacher_archs": ["wrn15-1"]}),
    "test_subjects names a missing subject": gene_missing_test_subject,
    "pamap2 loso folds from the archive root": pamap2_loso_at_archive_root,
    "pamap2 subjects names a subject without a file": pamap2_subject_without_file,
    "pamap2 file of a subject not in PAMAP2": pamap2_stray_subject,
}


@pytest.mark.parametrize("setup", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_config_stops_naming_the_key(tmp_path, setup):
    raw = tmp_path / "raw"
    config, match = setup(raw)
    before = tree_digest(raw)
    with pytest.raises(GafkdError, match=match):
        check_as_the_workflow_does(config)
    assert tree_digest(raw) == before, "raw files must never be modified"


def test_bad_class_map_stops_snakemake_before_any_job(tmp_path):
    config, match = CONFIG_CASES["class_map with mixed keys"](tmp_path / "raw")
    run = snakemake_with(tmp_path, config)
    assert run.returncode != 0
    assert re.search(match[1:], run.stdout + run.stderr, re.MULTILINE)
    assert not (tmp_path / "results").exists()
