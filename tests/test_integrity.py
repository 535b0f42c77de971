"""Every intermediate file a job reads is checked first: a damaged, truncated, empty or foreign
file stops the job with an error naming the file and what is wrong, and leaves no output."""
import errno
import pathlib
import shutil
from dataclasses import dataclass
from typing import Callable

import h5py
import numpy as np
import pytest
import torch

from gafkd.config import training_defaults
from gafkd.data import windows as windows_module
from gafkd.errors import InputError
from gafkd.images.cache import build_images
from gafkd.data.readers.basicmotions import read_basicmotions
from gafkd.distill.students import train_student
from gafkd.distill.teacher_outputs import write_teacher_outputs
from gafkd.distill.teachers import train_teacher
from gafkd.data.windows import build_windows, read_windows

CPU = torch.device("cpu")
REBUILD = "delete it and Snakemake rebuilds it"
DISK_FULL = "the disk is full"
TRAINING = {**training_defaults(), "epochs": 1, "batch_size": 16}
KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "standardize_logits": False}
IMAGES = {"method": "gasf", "size": 16}


def spec(kind="predefined"):
    split = {"kind": kind, "val_fraction": 0.25, "seed": 0}
    if kind == "random":
        split["test_fraction"] = 0.25
    return {"source": "basicmotions", "split": split}


def run_files(root):
    return {k: root / f"{k}.out" for k in ("model", "metrics", "history")}


def teacher(modality, fold="predefined", seed=1, arch="wrn10-1"):
    return {"dataset": "basicmotions", "fold": fold, "modality": modality, "arch": arch, "seed": seed,
            "images": IMAGES, "training": TRAINING}


def student(method, teachers, alpha, arch="wrn10-1", seed=3):
    return {"dataset": "basicmotions", "fold": "predefined", "arch": arch, "method": method,
            "teachers": teachers, "alpha": alpha, "seed": seed, "teacher_seed": 1, "kd": KD,
            "training": TRAINING}


# Where each file lives in a case's input folder (a layout like results/).
LAYOUT = {
    "windows": "windows.h5",
    "images": "images_gasf16.h5",
    "gaf_model": "teachers/gasf/wrn10-1/seed1/model.pt",
    "sig_model": "teachers/sig/wrn10-1/seed1/model.pt",
    "gaf_outputs": "teachers/gasf/wrn10-1/seed1/outputs.h5",
    "sig_outputs": "teachers/sig/wrn10-1/seed1/outputs.h5",
    "init": "students/wrn10-1/scratch/none/alpha0/seed3/model.pt",
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The intermediates of a tiny run, and foreign ones to put in their place."""
    root = tmp_path_factory.mktemp("made")
    files = {"windows": root / "windows.h5", "images": root / "images.h5"}
    build_windows("basicmotions", spec(), files["windows"], root / "summary.md")
    build_images(files["windows"], files["images"], size=16)
    build_windows("basicmotions", spec("random"), root / "random.h5", root / "random.md")

    def make_teacher(name, windows, settings):
        out = run_files(root / name)
        train_teacher(windows, files["images"], settings, out, root / name / "resume.pt", CPU)
        write_teacher_outputs(out["model"], windows, files["images"], root / name / "outputs.h5", CPU)
        files[f"{name}_model"], files[f"{name}_outputs"] = out["model"], root / name / "outputs.h5"

    make_teacher("gaf", files["windows"], teacher("gasf"))
    make_teacher("sig", files["windows"], teacher("sig"))
    make_teacher("sig_seed2", files["windows"], teacher("sig", seed=2))
    # The same windows split at random: a teacher of the 'random' fold.
    make_teacher("sig_random", root / "random.h5", teacher("sig", fold="random"))
    for name, arch in (("init", "wrn10-1"), ("init_wrn16", "wrn16-1")):
        out = run_files(root / name)
        train_student(files["windows"], student("scratch", "none", 0.0, arch=arch), {}, out,
                      root / name / "resume.pt", CPU)
        files[name] = out["model"]
    # Images of other windows: the same recordings, scaled.
    scaled = read_basicmotions()
    scaled.X = scaled.X * 2
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(windows_module, "read_dataset", lambda _: scaled)
        build_windows("basicmotions", spec(), root / "scaled.h5", root / "scaled.md")
    build_images(root / "scaled.h5", root / "scaled_images.h5", size=16)
    files["other_images"] = root / "scaled_images.h5"
    return files


# Damage -------------------------------------------------------------------------------------

def flip_bytes(path, offset, count=400):
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def overwrite_chunk(dataset):
    """400 bytes inverted inside the first chunk of `dataset`."""
    def damage(path, made):
        with h5py.File(path) as f:
            info = f[dataset].id.get_chunk_info(0)
        flip_bytes(path, info.byte_offset + 16, min(400, info.size - 20))
    return damage


def truncate(path, made):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def empty(path, made):
    path.write_bytes(b"")


def rename_class(path, made):
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Badminton", b"Badmintom", 1))


def overwrite_weights(path, made):
    weights = torch.load(path, weights_only=True)["state_dict"]["conv1.weight"].numpy().tobytes()
    flip_bytes(path, path.read_bytes().index(weights[:64]), 256)


def replace_with(source):
    def damage(path, made):
        shutil.copyfile(made[source], path)
    return damage


def without_checksums(path, made):
    with h5py.File(path) as f:
        logits, attrs = f["logits"][()], {k: v for k, v in f.attrs.items() if k != "attrs_digest"}
    path.unlink()
    with h5py.File(path, "w") as f:
        f["logits"] = logits
        f.attrs.update(attrs)


# Jobs that read the files -------------------------------------------------------------------

def sig_teacher(files, out):
    train_teacher(files["windows"], None, teacher("sig"), run_files(out), out / "resume.pt", CPU)


def gaf_teacher(files, out):
    train_teacher(files["windows"], files["images"], teacher("gasf"), run_files(out), out / "resume.pt", CPU)


def images_job(files, out):
    build_images(files["windows"], out / "images_gasf16.h5", size=16)


def outputs_job(files, out):
    write_teacher_outputs(files["sig_model"], files["windows"], None, out / "outputs.h5", CPU)


def scratch_student(files, out):
    train_student(files["windows"], student("scratch", "none", 0.0), {}, run_files(out),
                  out / "resume.pt", CPU)


def kd_sig_student(files, out):
    train_student(files["windows"], student("kd-sig", "sig-wrn10-1", 0.0),
                  {"sig": files["sig_outputs"]}, run_files(out), out / "resume.pt", CPU)


def annealed_student(files, out):
    train_student(files["windows"], student("kd2-anneal", "gasf-wrn10-1+sig-wrn10-1", 0.5),
                  {m: files[f"{m}_outputs"] for m in ("gaf", "sig")}, run_files(out),
                  out / "resume.pt", CPU, init_model=files["init"])


def windows_job(files, out):
    build_windows("basicmotions", spec(), out / "windows.h5", out / "windows_summary.md")


# Disk full while writing --------------------------------------------------------------------

def torch_save_fails(monkeypatch):
    save = torch.save

    def partial_save(obj, path, *args, **kwargs):
        save(obj, path, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(100)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    monkeypatch.setattr(torch, "save", partial_save)


def h5_write_fails(monkeypatch):
    def no_space(self, key, value):
        raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28, "
                                    "error message = 'No space left on device')")
    monkeypatch.setattr(h5py.Dataset, "__setitem__", no_space)


def text_write_fails(monkeypatch):
    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pathlib.Path, "write_text", no_space)


@dataclass
class Case:
    file: str | None                 # key of the damaged input (None: nothing damaged)
    damage: Callable | None
    job: Callable
    expect: tuple                    # fragments of the message besides the file's name
    patch: Callable | None = None    # breaks writing, for the disk-full cases
    output: str | None = None        # the output named in a disk-full message


CASES = {
    "windows X overwritten":
        Case("windows", overwrite_chunk("X"), sig_teacher, ("damaged", "'X' fails its checksum")),
    "windows y overwritten":
        Case("windows", overwrite_chunk("y"), scratch_student, ("damaged", "'y' fails its checksum")),
    "windows X overwritten, images job":
        Case("windows", overwrite_chunk("X"), images_job, ("damaged", "'X' fails its checksum")),
    "windows split of a fold overwritten":
        Case("windows", overwrite_chunk("folds/predefined/split"), kd_sig_student,
             ("damaged", "'folds/predefined/split' fails its checksum")),
    "windows class names changed":
        Case("windows", rename_class, gaf_teacher, ("damaged", "class_names")),
    "windows truncated": Case("windows", truncate, sig_teacher, ("damaged", "truncated file")),
    "windows empty": Case("windows", empty, kd_sig_student, ("damaged", "empty file")),
    "images overwritten":
        Case("images", overwrite_chunk("images"), gaf_teacher, ("damaged", "'images' fails its checksum")),
    "images truncated": Case("images", truncate, gaf_teacher, ("damaged", "truncated file")),
    "images empty": Case("images", empty, gaf_teacher, ("damaged", "empty file")),
    "images of other windows":
        Case("images", replace_with("other_images"), gaf_teacher, ("built from other windows",)),
    "outputs overwritten":
        Case("sig_outputs", overwrite_chunk("logits"), kd_sig_student,
             ("damaged", "'logits' fails its checksum")),
    "outputs truncated": Case("sig_outputs", truncate, kd_sig_student, ("damaged", "truncated file")),
    "outputs empty": Case("sig_outputs", empty, annealed_student, ("damaged", "empty file")),
    "outputs without checksums":
        Case("sig_outputs", without_checksums, kd_sig_student, ("carries no checksums",)),
    "outputs of the GAF teacher":
        Case("sig_outputs", replace_with("gaf_outputs"), kd_sig_student,
             ("the outputs of dataset basicmotions", "modality gasf, expected sig")),
    "outputs of another fold":
        Case("sig_outputs", replace_with("sig_random_outputs"), kd_sig_student,
             ("fold random, expected predefined",)),
    "outputs of another seed":
        Case("sig_outputs", replace_with("sig_seed2_outputs"), kd_sig_student, ("seed 2, expected 1",)),
    "teacher model truncated":
        Case("sig_model", truncate, outputs_job, ("damaged", "not a readable checkpoint")),
    "teacher model empty": Case("sig_model", empty, outputs_job, ("damaged", "empty file")),
    "teacher model overwritten":
        Case("sig_model", overwrite_weights, outputs_job, ("damaged", "do not match their checksum")),
    "init model of another architecture":
        Case("init", replace_with("init_wrn16"), annealed_student, ("arch wrn16-1, expected wrn10-1",)),
    "init model of a teacher":
        Case("init", replace_with("sig_model"), annealed_student, ("role teacher, expected student",)),
    "disk full saving model.pt":
        Case(None, None, sig_teacher, (DISK_FULL,), torch_save_fails, "model.out"),
    "disk full writing images":
        Case(None, None, images_job, (DISK_FULL,), h5_write_fails, "images_gasf16.h5"),
    "disk full writing the summary":
        Case(None, None, windows_job, (DISK_FULL,), text_write_fails, "windows_summary.md"),
}


def all_files(folder):
    """Every file under folder, hidden temporary files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", list(CASES))
def test_bad_intermediate_stops_the_job(name, made, tmp_path, monkeypatch):
    case = CASES[name]
    inputs, out = tmp_path / "in", tmp_path / "out"
    files = {}
    for key, relative in LAYOUT.items():
        files[key] = inputs / relative
        files[key].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made[key], files[key])
    if case.damage is not None:
        case.damage(files[case.file], made)
    before = all_files(inputs)
    if case.patch is not None:
        case.patch(monkeypatch)
    with pytest.raises(InputError) as error:
        case.job(files, out)
    message = str(error.value)
    named = files[case.file] if case.file else out / case.output
    assert str(named) in message, message
    for fragment in case.expect:
        assert fragment in message, message
    if case.file:
        assert REBUILD in message, message
    assert all_files(out) == [], "a failed job leaves no output"
    assert all_files(inputs) == before, "inputs are only read"


def test_any_flipped_byte_of_windows_is_caught_or_harmless(made, tmp_path):
    """Structures, attributes and data all carry checksums: a flipped byte anywhere either stops
    the read naming the file or lands where nothing is read (padding, free space)."""
    reference = read_windows(made["windows"])
    data = made["windows"].read_bytes()
    path = tmp_path / "windows.h5"
    caught = 0
    for offset in np.linspace(0, len(data) - 1, 60).astype(int):
        damaged = bytearray(data)
        damaged[offset] ^= 0x55
        path.write_bytes(damaged)
        try:
            windows = read_windows(path)
        except InputError as error:
            assert str(path) in str(error) and REBUILD in str(error)
            caught += 1
            continue
        assert np.array_equal(windows.X, reference.X) and np.array_equal(windows.y, reference.y)
        assert windows.attrs == reference.attrs and windows.class_names == reference.class_names
        assert all(np.array_equal(windows.folds[k].split, reference.folds[k].split) for k in windows.folds)
    assert caught > 40


@pytest.mark.parametrize("job", ["outputs", "similarity"])
def test_a_teacher_file_of_another_modality_is_named_before_any_input_is_read(made, tmp_path, job):
    from gafkd.distill.similarity_cache import build_similarity_cache

    expected = {"dataset": "basicmotions", "fold": "predefined", "modality": "sig", "arch": "wrn10-1",
                "seed": "1"}
    write = {"outputs": write_teacher_outputs, "similarity": build_similarity_cache}[job]
    out = tmp_path / "out.h5"
    # the GAF teacher's model.pt where the signal teacher's belongs (a sig job has no image cache)
    with pytest.raises(InputError, match=r"holds a checkpoint of .*not the one this job expects \(modality gasf, expected sig\)"):
        write(made["gaf_model"], made["windows"], None, out, CPU, expected=expected)
    assert not out.exists()
    write(made["sig_model"], made["windows"], None, out, CPU, expected=expected)
    assert out.exists()


def test_the_windows_of_another_dataset_are_named_as_such(tmp_path):
    other = tmp_path / "windows.h5"
    build_windows("other_data", spec(), other, tmp_path / "summary.md")       # copied over this one
    out = run_files(tmp_path / "sig")
    with pytest.raises(InputError, match=r"holds the windows of dataset 'other_data', not of 'basicmotions'; "
                                         r"delete it and Snakemake rebuilds it"):
        train_teacher(other, None, teacher("sig"), out, tmp_path / "sig" / "resume.pt", CPU)
    with pytest.raises(InputError, match=r"holds the windows of dataset 'other_data'"):
        train_student(other, student("scratch", "none", 0.0), {}, run_files(tmp_path / "s"),
                      tmp_path / "s" / "resume.pt", CPU)
    assert not any(path.exists() for path in out.values())
