"""Runs of the grid that are the same run under two names.

A `scratch` student (a 1-D network on the windows, cross-entropy only) and the signal teacher
of the same architecture are built, seeded, fed and trained by the same code: with the same
dataset, fold, seed, training settings and torch threads they are one run, identical in every
number. The workflow trains it once, as the teacher, and derives the student's files from the
teacher's (student_from_teacher_run).

The decision (gafkd.same_run.same_run_teacher, torch-free: the grid imports it for the workflow)
compares the settings that change a result (the params of the two rules) field by field, and
only ever names a teacher that the configured teacher grid trains anyway.
"""

import logging
from pathlib import Path

from gafkd.same_run import WHY, differences

log = logging.getLogger(__name__)


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
