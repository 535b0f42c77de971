import json
import re
from datetime import datetime

import pytest
import torch
import yaml
from conftest import REPO, narrowing_packs_to
from test_workflow import snakemake

from gafkd.config import training_defaults
from gafkd.data import windows as windows_module
from gafkd.errors import InputError
from gafkd.images.cache import build_images
from gafkd.data.readers.basicmotions import read_basicmotions
from gafkd.distill.teachers import train_teacher
from gafkd.data.windows import build_windows

DEMO_SPLIT = {"kind": "predefined", "val_fraction": 0.25, "seed": 0}


def settings(modality, epochs=2):
    return {"dataset": "basicmotions", "fold": "predefined", "modality": modality, "arch": "wrn16-1",
            "seed": 1, "images": {"method": "gasf", "size": 16},
            "training": {**training_defaults(), "epochs": epochs, "batch_size": 8}}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    build_windows("basicmotions", {"source": "basicmotions", "split": DEMO_SPLIT},
                  root / "windows.h5", root / "summary.md")
    build_images(root / "windows.h5", root / "images.h5", size=16)
    return root


def outputs(root):
    return {k: root / f"{k}" for k in ("model", "metrics", "history")}


def test_gaf_teacher_writes_checkpoint_metrics_and_provenance(demo_files, tmp_path):
    metrics = train_teacher(demo_files / "windows.h5", demo_files / "images.h5", settings("gasf"),
                            outputs(tmp_path), tmp_path / "resume.pt", torch.device("cpu"), "test claim")
    saved = json.loads((tmp_path / "metrics").read_text())
    assert saved["config"] == settings("gasf")
    assert saved["class_names"] == ["Badminton", "Running", "Standing", "Walking"]
    provenance = saved["provenance"]
    assert provenance["code_version"].startswith("0.1.0")
    assert provenance["packages"]["torch"] == torch.__version__
    assert provenance["device"] == "cpu" and provenance["device_claim"] == "test claim"
    assert metrics["test_at_best_val"]["n"] == 40
    checkpoint = torch.load(tmp_path / "model", weights_only=False)
    assert checkpoint["dims"] == 2 and checkpoint["in_channels"] == 6 and checkpoint["arch"] == "wrn16-1"
    assert checkpoint["mean"].shape == (1, 6, 1, 1)


def test_image_cache_of_other_windows_is_rejected(demo_files, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    build_windows("basicmotions", {"source": "basicmotions", "split": {**DEMO_SPLIT, "seed": 1}},
                  other / "windows.h5", other / "summary.md")
    # Same windows in the same order: the fingerprint matches whatever the split.
    train_teacher(other / "windows.h5", demo_files / "images.h5", settings("gasf", epochs=1),
                  outputs(other), other / "resume.pt", torch.device("cpu"))
    # Other windows: the same recordings, scaled.
    ws = read_basicmotions()
    ws.X = ws.X * 2
    monkeypatch.setattr(windows_module, "read_dataset", lambda spec: ws)
    build_windows("basicmotions", {"source": "basicmotions", "split": DEMO_SPLIT},
                  other / "windows.h5", other / "summary.md")
    (other / "metrics").unlink()
    with pytest.raises(InputError, match="image cache was built from other windows"):
        train_teacher(other / "windows.h5", demo_files / "images.h5", settings("gasf", epochs=1),
                      outputs(other), other / "resume.pt", torch.device("cpu"))
    assert not (other / "metrics").exists()


def log_interval(path):
    stamps = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
              for line in path.read_text().splitlines() if re.match(r"\d{4}-", line)]
    return stamps[0], stamps[-1]


def test_concurrent_teachers_on_distinct_slots_and_demo_accuracy(tmp_path, monkeypatch):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["teachers"] = {"modalities": ["sig"], "archs": ["wrn16-1"], "seeds": [1, 2], "pack": 1}
    config["students"] = {"methods": ["kd-sig"], "seeds": [1, 2]}
    config["devices"] = {"lock_dir": str(tmp_path / "locks"), "threads": 1}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("GAFKD_DEVICE_COUNT", "2")     # two pretend GPUs: slots, CPU compute
    run = snakemake(tmp_path, "teachers", "--resources", "gpu=2", configfile=configfile)
    assert run.returncode == 0, run.stderr
    # the training jobs' logs (the stage also makes the teachers' outputs for the students)
    logs = sorted(p for p in (tmp_path / "results/basicmotions/logs/teachers/predefined").glob("*.log")
                  if re.fullmatch(r"sig-wrn16-1-seed\d\.log", p.name))
    assert len(logs) == 2
    slots = [re.search(r"device: slot (\d) of 2", p.read_text()).group(1) for p in logs]
    assert sorted(slots) == ["0", "1"]
    (a0, a1), (b0, b1) = map(log_interval, logs)
    assert a0 < b1 and b0 < a1, "the two teacher jobs should have run at the same time"
    for seed in (1, 2):
        metrics = json.loads((tmp_path / f"results/basicmotions/predefined/teachers/sig/wrn16-1/seed{seed}/metrics.json").read_text())
        assert metrics["test_at_best_val"]["accuracy"] >= 0.9


@pytest.mark.parametrize("fitting_width", [None, 2])
def test_packed_signal_teachers_are_their_solo_runs(demo_files, tmp_path, monkeypatch, caplog, fitting_width):
    """A pack of signal teachers (teachers.pack) trains each seed as its solo run would: on the
    CPU the same weights and metrics bit for bit, each member in its own files; also when the
    job's device memory holds only a narrower pack (gafkd.train.memory.pack_width_that_fits) and
    the pack trains as packs of 2 and 1."""
    from gafkd.distill import teachers as teachers_module
    from gafkd.distill.teachers import TeacherRun, train_teachers

    widths = []
    if fitting_width:
        monkeypatch.setattr(teachers_module, "pack_width_that_fits", narrowing_packs_to(fitting_width, widths))

    inputs = {"windows": demo_files / "windows.h5"}
    seeds = (1, 7, 3)
    runs = []
    for seed in seeds:
        folder = tmp_path / f"pack-seed{seed}"
        folder.mkdir()
        runs.append(TeacherRun({**settings("sig"), "seed": seed}, inputs, outputs(folder), folder / "resume.pt"))
    packed = train_teachers(runs, torch.device("cpu"))
    if fitting_width:
        assert widths == [3, 2, 1] and "its runs train in packs of 2, one after another" in caplog.text
    for seed, run, metrics in zip(seeds, runs, packed):
        folder = tmp_path / f"solo-seed{seed}"
        folder.mkdir()
        solo = train_teacher(demo_files / "windows.h5", None, {**settings("sig"), "seed": seed},
                             outputs(folder), folder / "resume.pt", torch.device("cpu"))
        assert metrics["test_at_best_val"] == solo["test_at_best_val"]
        assert (run.outputs["history"]).read_text() == (folder / "history").read_text()
        mine, theirs = (torch.load(path, weights_only=False)["state_dict"]
                        for path in (run.outputs["model"], folder / "model"))
        assert all(torch.equal(mine[name], theirs[name]) for name in theirs)
        assert torch.load(run.outputs["model"], weights_only=False)["seed"] == seed


def test_image_teachers_and_differing_runs_do_not_pack(demo_files, tmp_path):
    from gafkd.errors import ConfigError
    from gafkd.distill.teachers import TeacherRun, train_teachers

    def run(name, **changes):
        return TeacherRun({**settings("sig"), **changes}, {"windows": demo_files / "windows.h5"},
                          outputs(tmp_path / name), tmp_path / name / "resume.pt")

    with pytest.raises(ConfigError, match="must share arch"):
        train_teachers([run("a"), run("b", arch="wrn10-1", seed=2)], torch.device("cpu"))
    with pytest.raises(ConfigError, match="image teachers train alone"):
        train_teachers([run("a", modality="gasf"), run("b", modality="gasf", seed=2)], torch.device("cpu"))
