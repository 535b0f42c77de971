"""Training loop: resident tensors, index-permutation batches, the lab's SGD step schedule,
per-epoch validation, best-validation checkpoint, exact resume, provenance, peak memory.

`data` is a gafkd.data.TrainData. A split lives on the device when it fits
(gafkd.data.choose_placement); a batch is an index into it, standardised on the fly. A split
too large for the device stays in host memory: the batch is gathered there with the CPU copy of
the same index (the batch order is drawn on the CPU, so no step waits for the GPU) into a small
pinned buffer and copied to the device asynchronously. The loss gets both indices. No
per-sample loader, no worker processes.
"""

import csv
import json
import logging
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

from gafkd.atomic import atomic_path, atomic_paths
from gafkd.checkpoint import load_checkpoint, save_checkpoint, save_model
from gafkd.errors import GafkdError
from gafkd.memory import human_bytes, peak_memory, reset_device_peak
from gafkd.metrics import summarize

log = logging.getLogger(__name__)

# The lab's schedule, (step start as a fraction num/den of the epochs, divisor of the base lr):
# 0.05 -> 0.01 from E/18 -> 0.001 from E/3 -> 1e-4 from 2E/3.
LR_STEPS = (((1, 18), 5), ((1, 3), 50), ((2, 3), 500))
LR_BOUNDARIES = ("lab", "fraction")


class TrainingError(GafkdError):
    """Training cannot go on (e.g. the loss is no longer finite)."""


class TrainingInterrupted(GafkdError):
    """Stopped by SIGTERM after saving a resume checkpoint."""


@dataclass
class TrainSettings:
    """The optimisation recipe: the config's `training:` section (the schema holds its defaults,
    gafkd.config.training_defaults) and the run's seed."""
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    lr_boundaries: str
    bf16: bool
    fast_math: bool
    checkpoint_every: int
    seed: int = 0
    eval_batch_size: int = 512


def learning_rate(epoch, epochs, base_lr, boundaries="lab"):
    """The lr of a 0-based epoch. `lab`: a step starts at epoch int(E·num/den), as the lab's
    `epoch < int(epochs/18.0)` tests; `fraction`: at the first epoch ≥ E·num/den."""
    if boundaries not in LR_BOUNDARIES:
        raise ValueError(f"unknown lr_boundaries '{boundaries}' (known: {', '.join(LR_BOUNDARIES)})")
    divisor = 1
    for (num, den), step_divisor in LR_STEPS:
        start = int(epochs * num / den) if boundaries == "lab" else epochs * num / den
        if epoch >= start:
            divisor = step_divisor
    return base_lr / divisor


def cross_entropy(logits, group_outputs, targets, batch_index, host_index=None):
    return F.cross_entropy(logits, targets)


# loss(logits, group outputs, targets, the batch's training-window index on the device, the same
# index on the CPU)
LossFn = Callable[[torch.Tensor, list, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _autocast(device, bf16):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=bf16 and device.type == "cuda")


@torch.inference_mode()
def predict(model, normalize, x, batch_size, device, bf16=False):
    """Logits (float32, on the CPU) of every row of x, in eval mode; x may live on the CPU (each
    slice is copied to the device). The logits come back to the host once, at the end."""
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(x[start:start + batch_size]).to(device)
        with _autocast(device, bf16):
            logits, _ = model(normalize(batch))
        out.append(logits.float())
    return torch.cat(out).cpu()


def evaluate(model, data, split, settings, device):
    if len(split) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "n": 0, "confusion": [], "loss": float("nan")}
    logits = predict(model, data.normalize, split.x, settings.eval_batch_size, device, settings.bf16)
    y = split.y.cpu()
    result = summarize(y.numpy(), logits.argmax(1).numpy(), data.num_classes)
    result["loss"] = float(F.cross_entropy(logits, y))
    return result


@dataclass
class Progress:
    """Everything needed to continue a run exactly where it stopped."""
    epoch: int = 0
    batch: int = 0                      # batches already done in `epoch`
    epoch_generator_state: torch.Tensor | None = None
    loss_sum: float = 0.0
    correct: int = 0
    history: list = field(default_factory=list)
    best: dict | None = None            # epoch, val accuracy/loss, test metrics
    best_state: dict | None = None
    best_test: dict | None = None       # lab-style best epoch picked on the test set
    elapsed: float = 0.0


class _StopFlag:
    """Set by SIGTERM; the loop checks it after every batch."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _save_resume(path, run_key, model, optimizer, generator, progress):
    with atomic_path(path) as tmp:
        save_checkpoint({"run_key": run_key, "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                         "progress": asdict(progress)}, tmp)


def _load_resume(path, run_key, model, optimizer, generator):
    """Progress from a resume checkpoint, or None (and say why) when there is none to use."""
    path = Path(path)
    if not path.exists():
        return None
    initial_weights = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        state = load_checkpoint(path, "resume checkpoint")
        if state.get("run_key") != run_key:
            log.warning("resume checkpoint %s belongs to other settings: starting over", path)
            return None
        progress = Progress(**state["progress"])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
    except Exception as exc:  # a torn or foreign file must never stop a run
        model.load_state_dict(initial_weights)   # starting over means from the initial weights
        log.warning("resume checkpoint %s is unreadable (%s): starting over", path,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    log.info("resuming from %s at epoch %d, batch %d", path, progress.epoch + 1, progress.batch)
    return progress


def train(model, data, settings, device, outputs, resume_path, run_key, loss_fn=cross_entropy,
          record=None, checkpoint_extra=None):
    """Train `model`; write outputs["model"], outputs["metrics"], outputs["history"].

    `record` is merged into metrics.json (config, provenance); `checkpoint_extra` into model.pt.
    metrics.json also records the job's peak memory (host: the process's peak RSS; device: the
    peak of this invocation's CUDA tensors) and where each split lived. Returns the metrics dict.
    """
    reset_device_peak(device)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    progress = _load_resume(resume_path, run_key, model, optimizer, generator) or Progress()
    n = len(data.train)
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat()
    epochs_here = 0
    with _StopFlag() as stop:
        while progress.epoch < settings.epochs:
            epoch = progress.epoch
            lr = learning_rate(epoch, settings.epochs, settings.lr, settings.lr_boundaries)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if progress.batch == 0:
                progress.epoch_generator_state = generator.get_state()
            else:
                generator.set_state(progress.epoch_generator_state)
            host_order = torch.randperm(n, generator=generator)
            order = host_order.to(device)       # the same tensor on the CPU
            loss_sum = torch.tensor(progress.loss_sum, device=device)
            correct = torch.tensor(progress.correct, device=device)
            model.train()
            starts = range(0, n, settings.batch_size)
            for b in range(progress.batch, len(starts)):
                index = order[starts[b]:starts[b] + settings.batch_size]
                host_index = host_order[starts[b]:starts[b] + settings.batch_size]
                inputs = data.train.rows(index, host_index, device)
                targets = data.train.y[index]
                with _autocast(device, settings.bf16):
                    logits, groups = model(data.normalize(inputs))
                    loss = loss_fn(logits, groups, targets, index, host_index)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().float() * len(index)
                correct += (logits.argmax(1) == targets).sum()
                if stop.raised:
                    progress.batch, progress.loss_sum, progress.correct = b + 1, float(loss_sum), int(correct)
                    progress.elapsed += time.perf_counter() - started
                    _save_resume(resume_path, run_key, model, optimizer, generator, progress)
                    raise TrainingInterrupted(f"stopped by SIGTERM in epoch {epoch + 1}, batch {b + 1}; "
                                              f"resume checkpoint saved to {resume_path}")
            train_loss = float(loss_sum) / n
            if not math.isfinite(train_loss):
                raise TrainingError(f"training loss is {train_loss} in epoch {epoch + 1} "
                                    f"(lr {lr:g}); lower the learning rate or check the inputs")
            val = evaluate(model, data, data.val, settings, device)
            test = evaluate(model, data, data.test, settings, device)
            row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                   "train_accuracy": int(correct) / n, "val_loss": val["loss"],
                   "val_accuracy": val["accuracy"], "test_loss": test["loss"],
                   "test_accuracy": test["accuracy"]}
            progress.history.append(row)
            if progress.best is None or (val["accuracy"], -val["loss"]) > (
                    progress.best["val_accuracy"], -progress.best["val_loss"]):
                progress.best = {"epoch": epoch + 1, "val_accuracy": val["accuracy"],
                                 "val_loss": val["loss"], "test": test}
                progress.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if progress.best_test is None or test["accuracy"] > progress.best_test["accuracy"]:
                progress.best_test = {"epoch": epoch + 1, "accuracy": test["accuracy"]}
            log.info("epoch %d/%d lr %.4g loss %.4f train %.4f val %.4f test %.4f", epoch + 1,
                     settings.epochs, lr, train_loss, row["train_accuracy"], val["accuracy"],
                     test["accuracy"])
            progress.epoch, progress.batch, progress.loss_sum, progress.correct = epoch + 1, 0, 0.0, 0
            epochs_here += 1
            if progress.epoch % settings.checkpoint_every == 0 and progress.epoch < settings.epochs:
                elapsed_before = progress.elapsed
                progress.elapsed += time.perf_counter() - started
                _save_resume(resume_path, run_key, model, optimizer, generator, progress)
                progress.elapsed = elapsed_before
    seconds_here = time.perf_counter() - started
    memory = {**peak_memory(device), "placement": data.placement_record()}
    log.info("peak memory: host %s, device %s", human_bytes(memory["host_peak_bytes"]),
             f"{human_bytes(memory['device_peak_bytes'])} allocated, "
             f"{human_bytes(memory['device_reserved_peak_bytes'])} reserved"
             if device.type == "cuda" else "(the host)")
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
        **(record or {}),
    }
    paths = (outputs["model"], outputs["history"], outputs["metrics"])
    with atomic_paths(*paths) as (model_tmp, history_tmp, metrics_tmp):      # all three or none
        save_model(progress.best_state, progress.best["epoch"], data.mean.cpu(), data.std.cpu(),
                   checkpoint_extra or {}, model_tmp)
        with open(history_tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(progress.history[0]))
            writer.writeheader()
            writer.writerows(progress.history)
        metrics_tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    Path(resume_path).unlink(missing_ok=True)
    return metrics
