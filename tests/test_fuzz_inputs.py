"""A property-based test of bad inputs: small raw GENE and PAMAP2 folders, randomly corrupted, with
random values of the dataset's config keys, through the config checks and the windows stage.
Each example either succeeds with finite, consistent windows, or fails with gafkd's own error
(ConfigError, InputError) naming the raw file, the raw folder or the config key; never another
exception, and never a success when a corruption that must be refused was applied.

Corruptions (each applied to a random file of the folder):
  GENE    nan, inf, beyond float32, wrong length (49 rows), 3-D array, text (char) values, complex
          values, empty file, truncated file, no `xw`, off-pattern name, duplicate window
          (Window-1 beside Window-0001), broken link, folder named *.mat, stray non-.mat file,
          stray folder, upper-case .MAT, all windows of one class removed, one class only
  PAMAP2  a line with 53 columns, a word among the numbers, an unknown activity id, empty file,
          truncated file, non-UTF-8 bytes, duplicate subject (subject0102.dat), broken link,
          folder named *.dat, stray file, upper-case .DAT, every timestamp zero
  config  window, channels, class_map, split kind and fractions, test subjects, subjects,
          downsample, step, protocol: valid and invalid values

The number of examples is GAFKD_FUZZ_EXAMPLES (default 100, derandomised: every CI run tries the
same ones); `GAFKD_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_inputs.py` searches longer.
"""
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawfiles import gene_name, make_gene_folder, make_pamap2_folder, write_mat_v5
from snakemake.utils import validate

from conftest import REPO
from gafkd.config import check_config, check_split_subjects, fold_names
from gafkd.configfile import schema_errors
from gafkd.errors import GafkdError
from gafkd.data.windows import build_windows

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
EXAMPLES = int(os.environ.get("GAFKD_FUZZ_EXAMPLES", "100"))

# name -> must the windows stage refuse it?
GENE_CORRUPTIONS = {
    "nan": True, "inf": True, "huge": True, "short": True, "three_d": True, "text": True,
    "complex": True, "empty": True, "truncated": True, "no_key": True, "off_pattern": True,
    "duplicate": True, "broken_link": True, "mat_folder": True, "stray_file": False,
    "stray_folder": False, "upper_case": False, "drop_class": False, "one_class": True,
}
PAMAP2_CORRUPTIONS = {
    "short_line": True, "word": True, "unknown_activity": True, "empty": True, "truncated": True,
    "latin1": True, "duplicate": True, "broken_link": True, "dat_folder": True,
    "stray_file": False, "upper_case": False, "zero_time": True,
}


def regular_files(folder, pattern):
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.is_symlink())


def corrupt_gene(folder, name, rng):
    files = regular_files(folder, "*.mat")
    path = files[rng.integers(len(files))]
    signal = np.random.default_rng(0).normal(size=(50, 3))
    if name in ("nan", "inf", "huge"):
        signal[rng.integers(50), rng.integers(3)] = {"nan": np.nan, "inf": np.inf, "huge": 1e300}[name]
        write_mat_v5(path, xw=signal)
    elif name == "short":
        write_mat_v5(path, xw=signal[:49])
    elif name == "three_d":
        write_mat_v5(path, xw=signal[None])
    elif name == "text":
        write_mat_v5(path, xw="not a signal")
    elif name == "complex":
        write_mat_v5(path, xw=signal * 1j)
    elif name == "empty":
        path.write_bytes(b"")
    elif name == "truncated":
        path.write_bytes(path.read_bytes()[: int(rng.integers(1, 100))])
    elif name == "no_key":
        write_mat_v5(path, other=signal)
    elif name == "off_pattern":
        path.rename(folder / f"window{rng.integers(100)}.mat")
    elif name == "duplicate":
        shutil.copy(path, folder / path.name.replace("Window-000", "Window-"))
    elif name == "broken_link":
        (folder / gene_name(109, 1, 1)).symlink_to(folder / "nowhere.mat")
    elif name == "mat_folder":
        (folder / gene_name(109, 1, 2)).mkdir()
    elif name == "stray_file":
        (folder / "notes.txt").write_text("hello")
    elif name == "stray_folder":
        (folder / "old").mkdir(exist_ok=True)
    elif name == "upper_case":
        path.rename(path.with_suffix(".MAT"))
    elif name in ("drop_class", "one_class"):
        keep = {"drop_class": ("CLASS-1_", "CLASS-2_"), "one_class": ("CLASS-1_",)}[name]
        for other in files:
            if not any(k in other.name for k in keep):
                other.unlink()


def corrupt_pamap2(folder, name, rng):
    files = [p for p in regular_files(folder, "*.dat") if p.stat().st_size > 0]
    path = files[rng.integers(len(files))]
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    line = int(rng.integers(len(lines)))
    if name == "short_line":
        lines[line] = " ".join(lines[line].split()[:-1])
        path.write_text("\n".join(lines) + "\n")
    elif name == "word":
        tokens = lines[line].split()
        tokens[int(rng.integers(3, len(tokens)))] = "oops"
        lines[line] = " ".join(tokens)
        path.write_text("\n".join(lines) + "\n")
    elif name == "unknown_activity":
        tokens = lines[line].split()
        tokens[1] = "8"
        lines[line] = " ".join(tokens)
        path.write_text("\n".join(lines) + "\n")
    elif name == "empty":
        path.write_bytes(b"")
    elif name == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif name == "latin1":
        path.write_bytes(path.read_bytes().replace(b"NaN", "NaN\u00e9".encode("latin-1"), 1))
    elif name == "duplicate":
        shutil.copy(path, folder / path.name.replace("subject1", "subject01"))
    elif name == "broken_link":
        (folder / "subject109.dat").symlink_to(folder / "nowhere.dat")
    elif name == "dat_folder":
        (folder / "subject108.dat").mkdir()
    elif name == "stray_file":
        (folder / "readme.txt").write_text("x")
    elif name == "upper_case":
        path.rename(path.with_suffix(".DAT"))
    elif name == "zero_time":
        path.write_text("\n".join(" ".join(["0.000000", *row.split()[1:]]) for row in lines) + "\n")


CONFIG_VALUES = {
    "window": [50, 49, 0, -1, 50.5, "fifty", None],
    "channels": [None, ["x", "y", "z"], ["x", "x", "y"], [], "lab40", ["hand_acc16_x", "hand_acc16_y"],
                 ["hand_acc16_x", "hand_acc16_x"], ["no_such_column"]],
    "class_map": [None, {1: "a", 2: "b"}, {1: "a", 2: "a"}, {1: "a"}, {"x": "a"}, {1: ""},
                  {1: "lying", 4: "walking", 24: "rope"}, {99: "nothing"}],
    "split": [{"kind": "holdout", "val_fraction": 0.2, "test_fraction": 0.2},
              {"kind": "loso", "val_fraction": 0.3}, {"kind": "random", "val_fraction": 0.5, "test_fraction": 0.5},
              {"kind": "random", "val_fraction": 0.01, "test_fraction": 0.01},
              {"kind": "holdout", "val_fraction": 0.2, "test_fraction": 0.2, "test_subjects": [101, 999]},
              {"kind": "predefined"}, {"kind": "loso", "validation": "test"}, {"kind": "sideways"}],
    "subjects": [None, [101, 102, 103], [101], [101, 150], []],
    "downsample": [3, 1, 0, 2.5],
    "step": [22, 1, 0, 500],
    "protocol": ["lab", "clean", "other"],
}
GENE_KEYS = ("window", "channels", "class_map", "split")
PAMAP2_KEYS = ("channels", "class_map", "split", "subjects", "downsample", "step", "protocol")


def names_what_is_wrong(message, folder, changed):
    """The error names the raw folder or one of its files, or a config key."""
    if str(folder) in message or any(part in message for part in ("datasets.", "split", "class map", "class_map")):
        return True
    return any(key in message for key in changed)


# Removing files comes first, so that a corrupted file is never the one removed afterwards.
FIRST = ("drop_class", "one_class")


@functools.lru_cache(maxsize=None)
def template(source):
    """The pristine raw folder of `source`, written once per session and copied per example."""
    folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{source}-")) / "raw"
    if source == "geneactiv_mat":
        make_gene_folder(folder, subjects=(101, 102, 103, 104), per_class=2)
    else:
        make_pamap2_folder(folder, extra_subjects=(102, 103))
    return folder


@st.composite
def examples(draw):
    source = draw(st.sampled_from(["geneactiv_mat", "pamap2"]))
    corruptions = GENE_CORRUPTIONS if source == "geneactiv_mat" else PAMAP2_CORRUPTIONS
    applied = draw(st.lists(st.sampled_from(sorted(corruptions)), max_size=2, unique=True))
    applied.sort(key=lambda name: name not in FIRST)
    keys = GENE_KEYS if source == "geneactiv_mat" else PAMAP2_KEYS
    changed = draw(st.dictionaries(st.sampled_from(keys), st.integers(0, 7), max_size=2))
    seed = draw(st.integers(0, 2**16))
    return source, applied, {key: CONFIG_VALUES[key][i % len(CONFIG_VALUES[key])] for key, i in changed.items()}, seed


def spec_for(source, folder, changed):
    if source == "geneactiv_mat":
        spec = {"source": source, "raw": str(folder), "window": 50,
                "split": {"kind": "holdout", "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}}
    else:
        spec = {"source": source, "raw": str(folder), "channels": ["hand_acc16_x", "hand_acc16_y"],
                "protocol": "clean", "class_map": {1: "lying", 4: "walking", 24: "rope"},
                "split": {"kind": "loso", "val_fraction": 0.3, "seed": 0}}
    for key, value in changed.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(examples())
def test_bad_inputs_fail_with_gafkds_own_error_or_give_consistent_windows(example):
    source, applied, changed, seed = example
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = Path(shutil.copytree(template(source), tmp / "raw", symlinks=True))
        if source == "geneactiv_mat":
            for name in applied:
                corrupt_gene(folder, name, rng)
            must_refuse = any(GENE_CORRUPTIONS[name] for name in applied)
        else:
            for name in applied:
                corrupt_pamap2(folder, name, rng)
            must_refuse = any(PAMAP2_CORRUPTIONS[name] for name in applied)
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}
        config = {"datasets": {"d": spec_for(source, folder, changed)}, "images": {"methods": ["gasf"], "size": 8}}
        out = tmp / "out"
        out.mkdir()
        try:
            problem = schema_errors(config, SCHEMA)
            if problem:
                assert "datasets.d" in problem, problem
                return
            config = yaml.safe_load(yaml.safe_dump(config))      # as a config file would hold it
            validate(config, str(SCHEMA))
            check_config(config)
            spec = config["datasets"]["d"]
            check_split_subjects("d", spec)
            fold_names(spec)
            build_windows("d", spec, out / "windows.h5", out / "summary.md")
        except GafkdError as error:
            assert names_what_is_wrong(str(error), folder, changed), (applied, changed, str(error))
            assert not (out / "windows.h5").exists() and not (out / "summary.md").exists()
            return
        finally:
            after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}
            assert after == before, "a raw file was modified"
        assert not must_refuse, f"accepted {applied} with {changed}"
        import h5py
        with h5py.File(out / "windows.h5") as f:
            X, y, subject = f["X"][()], f["y"][()], f["subject"][()]
        assert len(X) == len(y) == len(subject) > 0 and np.isfinite(X).all()
        assert len(np.unique(y)) >= 2
