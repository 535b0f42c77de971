"""Bad inputs by rule: raw folders entry by entry, the data as a whole, config bytes and YAML,
values that name folders, a batch of one window, raw edits that rerun the windows."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, demo_config_with
from rawfiles import gene_name, make_gene_folder, make_pamap2_folder, write_mat_v5
from test_workflow import dry_run_jobs, scheduled_jobs, snakemake
from train_job import synthetic_data

from gafkd.config import check_alphas, check_config_file
from gafkd.configfile import load_yaml
from gafkd.grid import alpha_tag
from gafkd.train.folds import Split, TrainData
from gafkd.train.engine import cross_entropy, train
from gafkd.train.defaults import default_train_settings
from gafkd.errors import ConfigError, InputError
from gafkd.train.models import build_model
from gafkd.data.readers.geneactiv import read_geneactiv
from gafkd.data.readers.pamap2 import list_subject_files
from gafkd.data.windows import build_windows

SPLIT = {"kind": "holdout", "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}


def gene_spec(folder, **extra):
    return {"source": "geneactiv_mat", "raw": str(folder), "window": 50, "split": SPLIT, **extra}


# --- raw folders --------------------------------------------------------------------------

def test_the_extension_matches_in_any_case(tmp_path):
    make_gene_folder(tmp_path / "gene", subjects=(101, 102, 103, 104))
    first = sorted((tmp_path / "gene").iterdir())[0]
    first.rename(first.with_suffix(".MAT"))
    ws = read_geneactiv(tmp_path / "gene", 50)
    assert len(ws.y) == 4 * 3 * 2
    pamap = tmp_path / "pamap"
    make_pamap2_folder(pamap)
    (pamap / "subject104.dat").rename(pamap / "subject104.DAT")
    assert [s for s, _ in list_subject_files(pamap)] == [101, 102, 103, 104]


def test_two_files_of_one_window_are_named(tmp_path):
    folder = tmp_path / "gene"
    make_gene_folder(folder)
    twin = folder / "ID-101_CLASS-1_Window-1.mat"
    twin.write_bytes((folder / gene_name(101, 1, 1)).read_bytes())
    with pytest.raises(InputError) as error:
        read_geneactiv(folder, 50)
    assert gene_name(101, 1, 1) in str(error.value) and twin.name in str(error.value)
    assert "subject 101, class 1, window 1" in str(error.value)


def test_links_are_followed_and_a_broken_one_is_named(tmp_path):
    folder = tmp_path / "gene"
    make_gene_folder(folder)
    target = folder / gene_name(101, 1, 1)
    moved = tmp_path / "elsewhere.mat"
    target.rename(moved)
    target.symlink_to(moved)
    assert len(read_geneactiv(folder, 50).y) == 5 * 3 * 2
    moved.unlink()
    with pytest.raises(InputError, match=f"{target}: a link to {moved}, which does not exist"):
        read_geneactiv(folder, 50)


def test_every_entry_not_read_is_named_in_the_summary_and_log(tmp_path, caplog):
    folder = tmp_path / "gene"
    make_gene_folder(folder, subjects=(101, 102, 103, 104))
    (folder / "notes.txt").write_text("x")
    (folder / "old").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level("WARNING"):
        build_windows("g", gene_spec(folder), out / "w.h5", out / "summary.md")
    summary = (out / "summary.md").read_text()
    assert "| notes.txt | not a .mat file |" in summary and "| old | a folder |" in summary
    assert "notes.txt not read" in caplog.text and "old not read" in caplog.text


def test_pamap2_subjects_left_out_by_the_config_are_named(tmp_path):
    folder = tmp_path / "pamap"
    make_pamap2_folder(folder)
    out = tmp_path / "out"
    out.mkdir()
    spec = {"source": "pamap2", "raw": str(folder), "channels": "acc16", "subjects": [101, 102, 103],
            "class_map": {1: "lying", 4: "walking", 24: "rope jumping"},
            "split": {"kind": "loso", "val_fraction": 0.3, "seed": 0}}
    build_windows("p", spec, out / "w.h5", out / "summary.md")
    assert "| subject104.dat | subject not in `subjects:` |" in (out / "summary.md").read_text()


def test_too_few_subjects_names_the_files_not_read(tmp_path):
    folder = tmp_path / "pamap"
    make_pamap2_folder(folder, extra_subjects=(102, 103))
    (folder / "subject103.dat").rename(folder / "subject103.dat.bak")
    out = tmp_path / "out"
    out.mkdir()
    spec = {"source": "pamap2", "raw": str(folder), "channels": "acc16",
            "class_map": {1: "lying", 4: "walking", 24: "rope jumping"},
            "split": {"kind": "loso", "val_fraction": 0.3, "seed": 0}}
    with pytest.raises(InputError, match=r"found 2.*not read from .*subject103.dat.bak \(not a .dat file\)"):
        build_windows("p", spec, out / "w.h5", out / "summary.md")


# --- the data as a whole ------------------------------------------------------------------

def test_one_class_is_refused(tmp_path):
    make_gene_folder(tmp_path / "gene", classes=(1,))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="all 10 windows are of one class"):
        build_windows("g", gene_spec(tmp_path / "gene"), out / "w.h5", out / "summary.md")
    assert list(out.iterdir()) == []


def test_a_class_emptied_by_the_split_names_the_setting_that_would_work(tmp_path):
    make_gene_folder(tmp_path / "gene", per_class=3)
    out = tmp_path / "out"
    out.mkdir()
    spec = gene_spec(tmp_path / "gene", split={"kind": "random", "val_fraction": 0.02, "test_fraction": 0.2, "seed": 0})
    with pytest.raises(InputError, match=r"raise split.val_fraction to (\d|\.)+ or more"):
        build_windows("g", spec, out / "w.h5", out / "summary.md")


def test_a_channel_named_twice_is_refused_before_any_job(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    make_pamap2_folder(tmp_path / "pamap")
    config["datasets"] = {"p": {"source": "pamap2", "raw": str(tmp_path / "pamap"), "protocol": "clean",
                                "channels": ["hand_acc16_x", "hand_acc16_y", "hand_acc16_x"]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"datasets.p.channels: .*hand_acc16_x.* more than once"):
        check_config_file(path)


# --- config bytes, YAML and numbers -------------------------------------------------------

def test_a_config_not_in_utf8_is_named_with_the_fix(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes((REPO / "config.yaml").read_text().replace("demo", "démo").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.yaml, line \d+: not UTF-8 .* save the file as UTF-8"):
        load_yaml(path)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + (REPO / "config.yaml").read_bytes())
    assert load_yaml(bom) == load_yaml(REPO / "config.yaml")


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    levels = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nteachers: {seeds: *a8}\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="bomb.yaml: its aliases"):
        load_yaml(path)
    assert time.perf_counter() - started < 10
    small = tmp_path / "anchors.yaml"
    small.write_text("base: &b {epochs: 2}\ntraining: *b\n")
    assert load_yaml(small)["training"] == {"epochs": 2}


@pytest.mark.parametrize("section, key, value, said", [
    ("training", "batch_size", 8.0, "training.batch_size: 8.0 is not an integer; write 8"),
    ("images", "size", 16.0, "images.size: 16.0 is not an integer; write 16"),
    ("teachers", "seeds", [1.0], r"teachers.seeds\[0\]: 1.0 is not an integer; write 1"),
])
def test_whole_floats_where_integers_belong_are_refused(tmp_path, section, key, value, said):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.setdefault(section, {})[key] = value
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=said):
        check_config_file(path)


def test_the_checker_has_a_usage_line():
    bare = subprocess.run([sys.executable, "-m", "gafkd.config"], capture_output=True, text=True)
    assert bare.returncode == 2 and "usage: python -m gafkd.config" in bare.stderr
    helped = subprocess.run([sys.executable, "-m", "gafkd.config", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "usage: python -m gafkd.config" in helped.stdout


# --- values that name folders -------------------------------------------------------------

def alphas_config(tmp_path, alphas):
    return demo_config_with(tmp_path / "alphas.yaml", alphas=alphas)


def test_close_alphas_get_their_own_folders_and_equal_ones_are_refused(tmp_path):
    run = snakemake(tmp_path, "-n", configfile=alphas_config(tmp_path, [0.5, 0.5000001, 0.00001]))
    assert run.returncode == 0, run.stderr[-2000:]
    outputs = {p for _, fields in dry_run_jobs(run.stdout) for p in fields.get("output", [])}
    for tag in ("alpha0.5/", "alpha0.5000001/", "alpha0.00001/"):
        assert any(tag in p for p in outputs), tag
    # every folder name reads back to its float, so only equal values share one
    for alpha in (0.5, 0.5000000000000001, 1e-05, 0.1 + 0.2, 1, 0.0):
        assert float(alpha_tag(alpha)) == alpha and "e" not in alpha_tag(alpha)
    with pytest.raises(ConfigError, match=r"students.alphas: 1 and 1.0 are the same α \(both alpha1\)"):
        check_alphas([1, 0.5, 1.0])


# --- a batch of one window ----------------------------------------------------------------

def test_a_last_batch_of_one_window_that_batchnorm_cannot_take_is_left_out(tmp_path, caplog):
    """3x3 images through a WRN end in 1x1 feature maps: a batch of one window gives BatchNorm one
    value per channel. 17 training windows in batches of 8 would end with such a batch."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(30) % 2
    x = torch.randn(30, 2, 3, 3, generator=g) + y[:, None, None, None]
    data = TrainData(Split(x[:17], y[:17]), Split(x[17:23], y[17:23]), Split(x[23:], y[23:]),
                     mean=torch.zeros(1, 2, 1, 1), std=torch.ones(1, 2, 1, 1), num_classes=2)
    settings = default_train_settings(epochs=2, batch_size=8, seed=1)
    outputs = {k: tmp_path / f"{k}.out" for k in ("model", "metrics", "history")}
    with caplog.at_level("WARNING"):
        metrics = train(build_model("wrn10-1", 2, 2, dims=2), data, settings, torch.device("cpu"),
                        outputs, tmp_path / "resume.pt", "one", loss_fn=cross_entropy)
    assert "one window of the 17 is left out of each epoch" in caplog.text
    assert "left out of each epoch" in json.loads((tmp_path / "metrics.out").read_text())["left_out_of_each_epoch"]
    assert metrics["epochs"] == 2
    # 1-D signals of 48 samples give BatchNorm 6 values even for one window: nothing is left out
    signals = synthetic_data(n=3 * 17)
    signal_out = {k: tmp_path / f"s{k}.out" for k in ("model", "metrics", "history")}
    train(build_model("wrn10-1", 3, 4, dims=1), signals, settings, torch.device("cpu"), signal_out,
          tmp_path / "sresume.pt", "two", loss_fn=cross_entropy)
    assert "left_out_of_each_epoch" not in json.loads((tmp_path / "smetrics.out").read_text())


# --- raw edits ----------------------------------------------------------------------------

def test_a_raw_file_rewritten_in_place_reruns_the_windows(tmp_path):
    raw = tmp_path / "raw" / "Window-size-50"
    make_gene_folder(raw)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"] = {"gene": gene_spec(raw, class_map={1: "a", 2: "b", 3: "c"})}
    path = tmp_path / "gene.yaml"
    path.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "results/gene/windows.h5", configfile=path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert scheduled_jobs(tmp_path, "results/gene/windows.h5", configfile=path) == {}
    edited = raw / gene_name(102, 2, 1)
    stat = edited.stat()
    write_mat_v5(edited, xw=np.full((50, 3), 7.0))
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))    # rewritten: a new time, if one tick later
    assert scheduled_jobs(tmp_path, "results/gene/windows.h5", configfile=path) == {"build_windows": 1}
    run = snakemake(tmp_path, "results/gene/windows.h5", configfile=path)
    assert run.returncode == 0
    (raw / gene_name(105, 3, 2)).unlink()                               # a removed file too
    assert scheduled_jobs(tmp_path, "results/gene/windows.h5", configfile=path) == {"build_windows": 1}
