"""Runs of the grid that are the same run under two names.

A `scratch` student (a 1-D network on the windows, cross-entropy only) and the signal teacher
of the same architecture are built, seeded, fed and trained by the same code: with the same
dataset, fold, seed, training settings and torch threads they are one run, identical in every
number. The workflow trains it once, as the teacher, and derives the student's files from the
teacher's (student_from_teacher_run).

The decision (same_run_teacher, torch-free: the workflow imports it) compares the settings that
change a result (the params of the two rules) field by field, and only ever names a teacher that
the configured teacher grid trains anyway.
"""

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# The settings a scratch student and a signal teacher must share, and what each adds to them.
SHARED = ("dataset", "fold", "arch", "seed", "training", "threads")
SCRATCH = {"method": "scratch", "teachers": "none", "alpha": 0.0}
SIGNAL_TEACHER = {"modality": "sig"}
# A signal teacher trained in a pack (teachers.pack) records it: the run is still the one run of
# its seed, computed beside others, and the student derived from it carries the record along.
TEACHER_OPTIONAL = ("pack",)

WHY = ("a scratch student is the signal teacher of its architecture run under another name: the "
       "same windows, fold, 1-D network, seed, initial weights, cross-entropy loss, training "
       "settings and torch threads, so the same weights and numbers")


def _same(a, b):
    """Equal as JSON (1 and 1.0, or 0 and false, are different settings here)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def differences(student, teacher):
    """Why `student` (settings of a student run) and `teacher` (of a teacher run) are not the same
    run: a list of reasons, empty when they are."""
    wrong = []
    if set(student) != set(SHARED) | set(SCRATCH):
        extra = sorted(set(student) - set(SHARED) - set(SCRATCH))
        missing = sorted(set(SHARED) - set(student))
        wrong.append(f"student settings {', '.join(extra + missing)} "
                     f"{'beyond' if extra else 'missing from'} a scratch run's")
    for key, value in SCRATCH.items():
        if not _same(student.get(key), value):
            wrong.append(f"student {key} {student.get(key)!r}, not {value!r}")
    if set(teacher) - set(TEACHER_OPTIONAL) != set(SHARED) | set(SIGNAL_TEACHER):
        extra = sorted((set(teacher) - set(TEACHER_OPTIONAL)) ^ (set(SHARED) | set(SIGNAL_TEACHER)))
        wrong.append(f"teacher settings {', '.join(extra)} differ from a signal teacher's")
    for key, value in SIGNAL_TEACHER.items():
        if not _same(teacher.get(key), value):
            wrong.append(f"teacher {key} {teacher.get(key)!r}, not {value!r}")
    for key in SHARED:
        if key not in student or key not in teacher or not _same(student[key], teacher[key]):
            wrong.append(f"{key}: student {student.get(key)!r}, teacher {teacher.get(key)!r}")
    return wrong


def same_run(student, teacher):
    """Whether the student run of settings `student` is the teacher run of settings `teacher`."""
    return not differences(student, teacher)


def same_run_teacher(student, teachers, teacher_settings):
    """The settings of the teacher run that is the same run as the student of settings `student`,
    or None.

    `teachers`: the config's teacher grid (modalities, archs, seeds): only a teacher it trains
    anyway is named, so reusing never adds a run. `teacher_settings(dataset, fold, modality,
    arch, seed)`: the settings a teacher run of the grid is trained with (the teacher rule's).
    """
    if not same_run(student, {**{k: student.get(k) for k in SHARED}, **SIGNAL_TEACHER}):
        return None
    arch, seed = student["arch"], student["seed"]
    if ("sig" not in teachers["modalities"] or arch not in teachers["archs"]
            or not any(_same(seed, s) for s in teachers["seeds"])):
        return None
    teacher = teacher_settings(student["dataset"], student["fold"], "sig", arch, seed)
    return teacher if same_run(student, teacher) else None


def _teacher_metrics(path):
    from gafkd.errors import damaged
    from gafkd.train.run_record import read_metrics

    metrics = read_metrics(path, "teacher metrics file")
    if not isinstance(metrics.get("config"), dict):
        raise damaged(path, "teacher metrics file", "no config recorded")
    return metrics


def student_from_teacher_run(windows_h5, settings, teacher_files, outputs):
    """Write the model.pt, metrics.json, history.csv and predictions.npz of the scratch student of
    `settings` from the signal teacher run that is the same run (`teacher_files`: its model,
    metrics, history and, where given, predictions).

    The teacher's settings (its metrics.json) must be the same run's and its checkpoint must hold
    the teacher of the same dataset, fold, architecture and seed on these windows; any
    disagreement is an InputError naming the file. model.pt holds the teacher's weights,
    statistics and epoch under the student's identity (as gafkd.distill.students.train_student writes
    it), history.csv and predictions.npz are the teacher's byte for byte, and metrics.json the
    teacher's numbers with the student's config and a `reused_from` record. All are written or
    none.
    """
    from gafkd.atomic import atomic_paths
    from gafkd.train.checkpoint import check_trained_on, read_model, save_model
    from gafkd.errors import REBUILD, InputError
    from gafkd.train.predictions import predictions_path
    from gafkd.train.run_record import metrics_text, read_history_bytes, read_predictions_bytes, sealed
    from gafkd.data.windows import read_windows

    model_pt, metrics_json, history_csv = (Path(teacher_files[k]) for k in ("model", "metrics", "history"))
    metrics = _teacher_metrics(metrics_json)
    wrong = differences(settings, metrics["config"])
    if wrong:
        raise InputError(f"{metrics_json}: the teacher run is not the same run as the scratch student "
                         f"{settings.get('arch')} seed {settings.get('seed')} ({'; '.join(wrong)}); "
                         f"{REBUILD}")
    checkpoint = read_model(model_pt, "teacher checkpoint", {
        "role": "teacher", "dataset": settings["dataset"], "fold": settings["fold"], "modality": "sig",
        "arch": settings["arch"], "seed": settings["seed"], "dims": 1})
    fingerprint = read_windows(windows_h5, load_X=False).attrs["fingerprint"]
    check_trained_on(model_pt, checkpoint, fingerprint, "teacher")
    if checkpoint.get("epoch") != metrics.get("best_epoch"):
        raise InputError(f"{metrics_json}: best epoch {metrics.get('best_epoch')}, but {model_pt} holds "
                         f"epoch {checkpoint.get('epoch')}: not the files of one run; {REBUILD}")
    history = read_history_bytes(history_csv, metrics, metrics_json)
    predictions = read_predictions_bytes(teacher_files.get("predictions", predictions_path(metrics_json)),
                                         metrics, metrics_json)
    metadata = {
        "role": "student", "dataset": settings["dataset"], "fold": settings["fold"],
        "arch": settings["arch"], "method": "scratch", "teachers": settings["teachers"],
        "alpha": float(settings["alpha"]), "seed": settings["seed"], "windows_fingerprint": fingerprint,
        "modality": "sig", "dims": 1, "in_channels": checkpoint["in_channels"],
        "class_names": checkpoint["class_names"],
    }
    record = {"run": str(model_pt.parent), "settings": metrics["config"], "why": WHY,
              "model_digest": checkpoint["digest"]}
    reused = {**metrics, "config": settings, "reused_from": record}
    paths = (outputs["model"], outputs["history"], outputs.get("predictions", predictions_path(outputs["metrics"])),
             outputs["metrics"])
    with atomic_paths(*paths) as (model_tmp, history_tmp, predictions_tmp, metrics_tmp):      # all or none
        save_model(checkpoint["state_dict"], checkpoint["epoch"], checkpoint["mean"], checkpoint["std"],
                   metadata, model_tmp)
        history_tmp.write_bytes(history)
        predictions_tmp.write_bytes(predictions)
        reused = sealed(reused, history_tmp, predictions_tmp)
        metrics_tmp.write_text(metrics_text(reused))
    log.info("scratch student %s, seed %d on %s/%s: the run of the signal teacher %s (epoch %d), "
             "reused without training", settings["arch"], settings["seed"], settings["dataset"],
             settings["fold"], model_pt.parent, checkpoint["epoch"])
    return reused
