"""A finished run's files: model.pt, history.csv, predictions.npz and metrics.json, written all
or none (gafkd.atomic), metrics.json sealed over the others (gafkd.train.run_record)."""

import csv
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gafkd.atomic import atomic_paths
from gafkd.train.checkpoint import save_model
from gafkd.train.packed import host_state
from gafkd.train.predictions import predictions_path, write_predictions
from gafkd.train.run_record import metrics_text, sealed


def write_run(run, progress, test, data, settings, memory, epochs_here, seconds_here, started_at, logits):
    """A run's model.pt, history.csv, predictions.npz (its best checkpoint's test `logits`) and
    metrics.json (all four or none); its resume checkpoint removed. Returns the metrics."""
    metrics = {
        "best_epoch": progress.best["epoch"],
        "val_accuracy": progress.best["val_accuracy"],
        "val_loss": progress.best["val_loss"],
        "test_at_best_val": progress.best["test"],
        "test_at_last_epoch": test,
        "optimistic_best_test_accuracy": {**progress.best_test, "note": (
            "epoch picked on the test set itself, as in the lab's notes; optimistic, not a "
            "held-out estimate")},
        "epochs": settings.epochs,
        "wall_seconds": progress.elapsed + seconds_here,
        "epochs_per_second": epochs_here / seconds_here if epochs_here else None,
        "started_at": started_at,       # this invocation's, when resumed
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "memory": memory,
        **(run.record or {}),
    }
    outputs = run.outputs
    predictions = outputs.get("predictions", predictions_path(outputs["metrics"]))
    paths = (outputs["model"], outputs["history"], predictions, outputs["metrics"])
    with atomic_paths(*paths) as (model_tmp, history_tmp, predictions_tmp, metrics_tmp):      # all or none
        save_model(host_state(progress.best_state), progress.best["epoch"], data.mean.cpu(), data.std.cpu(),
                   run.checkpoint_extra or {}, model_tmp)
        with open(history_tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(progress.history[0]))
            writer.writeheader()
            writer.writerows(progress.history)
        windows = data.test.windows if data.test.windows is not None else np.arange(len(data.test))
        write_predictions(predictions_tmp, windows, data.test.y.cpu().numpy(), logits)
        metrics = sealed(metrics, history_tmp, predictions_tmp)
        metrics_tmp.write_text(metrics_text(metrics))
    Path(run.resume_path).unlink(missing_ok=True)
    return metrics
