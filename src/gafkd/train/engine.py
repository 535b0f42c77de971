"""Training loop: resident tensors, index-permutation batches, the lab's SGD step schedule,
per-epoch validation, best-validation checkpoint, exact resume (gafkd.train.resume), provenance,
peak memory.

`data` is a gafkd.train.folds.TrainData. A split lives on the device when it fits
(gafkd.train.folds.choose_placement); a batch is an index into it, standardised on the fly. A split
too large for the device stays in host memory: the batch is gathered there with the CPU copy of
the same index (the batch order is drawn on the CPU, so no step waits for the GPU) into a small
pinned buffer and copied to the device asynchronously. The loss gets both indices. No
per-sample loader, no worker processes.
"""

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from gafkd.errors import GafkdError
from gafkd.train import graphs
from gafkd.train.memory import human_bytes, peak_memory, reset_device_peak
from gafkd.train.metrics import summarize
from gafkd.train.run_output import write_run
from gafkd.train.packed import members_of
from gafkd.train.resume import Progress, StopFlag, load_resumes, save_resumes

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
    precision: str                      # fp32, tf32 or bf16 (gafkd.train.numerics.use_numerics)
    deterministic: bool
    checkpoint_every: int
    seed: int = 0
    eval_batch_size: int = 512
    channels_last: bool | None = None   # None: with bf16 (see use_memory_format); benchmarks force it
    cuda_graphs: bool = False           # replay the training step from a CUDA graph (gafkd.train.graphs)

    @property
    def bf16(self):
        """bfloat16 autocast on CUDA (training.precision: bf16)."""
        return self.precision == "bf16"


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


def use_memory_format(model, device, settings):
    """Put a 2-D network's weights in channels-last layout on CUDA when it trains in bf16 (its
    activations follow the weights' layout); True when it did. Measured on an H200
    (benchmarks/teacher_step.py, GAF teachers on 3 x 64 x 64 images): in bf16 it is 1.2-1.5x
    faster for three of the lab's four architectures; in float32 it is slower for the wide ones
    (WRN16-3, WRN28-3: 0.83-0.87x), which cost most of the grid. Deterministic either way."""
    channels_last = settings.bf16 if settings.channels_last is None else settings.channels_last
    if not (channels_last and device.type == "cuda" and getattr(model, "dims", 1) == 2):
        return False
    model.to(memory_format=torch.channels_last)
    return True


def _autocast(device, bf16, cache=True):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=bf16 and device.type == "cuda", cache_enabled=cache)


@torch.inference_mode()
def predict(model, normalize, x, batch_size, device, bf16=False):
    """Logits (float32, on the CPU) of every row of x, in eval mode; x may live on the CPU (each
    slice is copied to the device). The logits come back to the host once, at the end. A packed
    model (gafkd.train.packed) gives every member the same rows: logits (members, N, classes)."""
    members = members_of(model)
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        batch = torch.as_tensor(x[start:start + batch_size]).to(device)
        with _autocast(device, bf16):
            logits, _ = model(members.shared(normalize(batch)))
        out.append(members.member_major(logits.float(), [])[0])
    logits = torch.cat(out, dim=1).cpu()
    return logits if members.members > 1 else logits[0]


def evaluate(model, data, split, settings, device):
    """Accuracy, macro-F1, confusion and loss of each member of `model` (one for a solo model)."""
    members = members_of(model).members
    if len(split) == 0:
        return [{"accuracy": float("nan"), "macro_f1": float("nan"), "n": 0, "confusion": [],
                 "loss": float("nan")} for _ in range(members)]
    logits = predict(model, data.normalize, split.x, max(1, settings.eval_batch_size // members),
                     device, settings.bf16)
    y = split.y.cpu()
    results = []
    for member_logits in (logits if members > 1 else logits[None]):
        result = summarize(y.numpy(), member_logits.argmax(1).numpy(), data.num_classes)
        result["loss"] = float(F.cross_entropy(member_logits, y))
        results.append(result)
    return results


@dataclass
class Run:
    """What one run of a training job owns: its seed (which also draws its batch order), files,
    identity and records. A solo job trains one run; a packed one (gafkd.train.packed) one per member."""
    seed: int
    outputs: dict               # model, metrics, history
    resume_path: Path
    run_key: str
    record: dict | None = None              # merged into metrics.json
    checkpoint_extra: dict | None = None    # merged into model.pt


def train(model, data, settings, device, outputs, resume_path, run_key, loss_fn=cross_entropy,
          record=None, checkpoint_extra=None):
    """Train `model`; write outputs["model"], outputs["metrics"], outputs["history"].

    `record` is merged into metrics.json (config, provenance); `checkpoint_extra` into model.pt.
    metrics.json also records the job's peak memory (host: the process's peak RSS; device: the
    peak of this invocation's CUDA tensors) and where each split lived. Returns the metrics dict.
    """
    run = Run(settings.seed, outputs, Path(resume_path), run_key, record, checkpoint_extra)
    return train_runs(model, data, settings, device, [run], loss_fn)[0]


def train_runs(model, data, settings, device, runs, loss_fn=cross_entropy):
    """Train a solo `model` for one run, or a packed model (gafkd.train.packed) for one run per member,
    each with its own seed's batch order, best-validation checkpoint, history, resume checkpoint
    and metrics.json, as train() writes them. A packed model's loss_fn takes member-major
    tensors (logits (K, B, classes), groups [(K, B, ...)], targets, index and host index (K, B))
    and returns the K members' losses; a solo model's, today's shapes and one loss. Returns the
    runs' metrics dicts."""
    members = members_of(model)
    if len(runs) != members.members:
        raise ValueError(f"{len(runs)} runs for a model of {members.members} member(s)")
    reset_device_peak(device)
    model.to(device)
    use_memory_format(model, device, settings)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    generators = [torch.Generator().manual_seed(run.seed) for run in runs]
    progress = load_resumes(runs, members, optimizer, generators) or [Progress() for _ in runs]
    job = _Job(model, members, data, settings, device, runs, optimizer, generators, progress,
               trainable_windows(model, members, data, settings, device, runs), time.perf_counter())
    job.step = make_stepper(job, loss_fn)
    started_at = datetime.now(timezone.utc).isoformat()
    epochs_here = 0
    with StopFlag() as stop:
        while progress[0].epoch < settings.epochs:
            epoch = progress[0].epoch
            lr = learning_rate(epoch, settings.epochs, settings.lr, settings.lr_boundaries)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum, correct = _train_epoch(job, epoch, stop)
            tests = _end_epoch(job, epoch, lr, loss_sum, correct)
            epochs_here += 1
            if progress[0].epoch % settings.checkpoint_every == 0 and progress[0].epoch < settings.epochs:
                _save_resumes_now(job)
    seconds_here = time.perf_counter() - job.started
    memory = {**peak_memory(device), "placement": data.placement_record()}
    log.info("peak memory: host %s, device %s", human_bytes(memory["host_peak_bytes"]),
             f"{human_bytes(memory['device_peak_bytes'])} allocated, "
             f"{human_bytes(memory['device_reserved_peak_bytes'])} reserved"
             if device.type == "cuda" else "(the host)")
    logits = best_test_logits(model, members, data, settings, device, progress)
    if settings.cuda_graphs:
        for run in runs:
            run.record = {**(run.record or {}), "cuda_graphs": graphs.record(job.step, device, data, loss_fn)}
    return [write_run(run, state, tests[k], data, settings, memory, epochs_here, seconds_here,
                       started_at, logits[k]) for k, (run, state) in enumerate(zip(runs, progress))]


@dataclass
class _Job:
    """What each step of train_runs works on: the network and its members, the data, the recipe,
    the runs with their optimizer, batch-order generators and progress, the training windows per
    epoch (`n`), when this process started training and its training step."""
    model: torch.nn.Module
    members: object
    data: object
    settings: TrainSettings
    device: torch.device
    runs: list
    optimizer: torch.optim.Optimizer
    generators: list
    progress: list
    n: int
    started: float
    step: Callable | None = None        # make_stepper's


def training_step(job, loss_fn, index, host_index):
    """One optimisation step of every member on its batch `index` (members, B), gathered on the
    device (or by the CPU with `host_index`, the same numbers); returns the members' losses
    (float32) and correct counts. autocast keeps no cast cache, which a CUDA graph cannot hold
    (gafkd.train.graphs); each weight is cast once per step either way."""
    model, members, data, device = job.model, job.members, job.data, job.device
    inputs = data.train.rows(index.reshape(-1), None if host_index is None else host_index.reshape(-1), device)
    targets = data.train.y[index]
    with _autocast(device, job.settings.bf16, cache=False):
        logits, groups = model(members.join(data.normalize(inputs)))
        member_logits, member_groups = members.member_major(logits, groups)
        if members.members == 1:
            losses = loss_fn(logits, groups, targets[0], index[0],
                             None if host_index is None else host_index[0]).reshape(1)
        else:
            losses = loss_fn(member_logits, member_groups, targets, index, host_index)
    job.optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    job.optimizer.step()
    return losses.detach().float(), (member_logits.argmax(-1) == targets).sum(-1)


def make_stepper(job, loss_fn):
    """The job's training step: training_step, replayed from a CUDA graph when training.cuda_graphs
    asks for it and the step can be captured (gafkd.train.graphs; each run's metrics.json says
    which, and why not)."""
    def step(index, host_index):
        return training_step(job, loss_fn, index, host_index)

    if not job.settings.cuda_graphs:
        return step
    return graphs.graphed_if_possible(step, job.optimizer, (job.members.members, job.settings.batch_size),
                                      job.device, job.data, loss_fn)


def _train_epoch(job, epoch, stop):
    """One epoch's steps from the batch it stopped at (a resumed epoch redraws its batch order
    from the saved generator state); returns each member's loss sum and correct count. SIGTERM
    saves the resume checkpoints after the current step and raises TrainingInterrupted."""
    data, settings, device = job.data, job.settings, job.device
    first_batch = job.progress[0].batch
    for generator, state in zip(job.generators, job.progress):
        if first_batch == 0:
            state.epoch_generator_state = generator.get_state()
        else:
            generator.set_state(state.epoch_generator_state)
    host_order = torch.stack([torch.randperm(len(data.train), generator=g) for g in job.generators])
    order = host_order.to(device)       # the same tensor on the CPU
    loss_sum = torch.tensor([state.loss_sum for state in job.progress], device=device)
    correct = torch.tensor([state.correct for state in job.progress], device=device)
    job.model.train()
    starts = range(0, job.n, settings.batch_size)
    for b in range(first_batch, len(starts)):
        index = order[:, starts[b]:starts[b] + settings.batch_size]       # (runs, B)
        host_index = host_order[:, starts[b]:starts[b] + settings.batch_size]
        losses, batch_correct = job.step(index, host_index)
        loss_sum += losses * index.shape[1]
        correct += batch_correct
        if stop.raised:
            for k, state in enumerate(job.progress):
                state.batch, state.loss_sum, state.correct = b + 1, float(loss_sum[k]), int(correct[k])
                state.elapsed += time.perf_counter() - job.started
            save_resumes(job.runs, job.members, job.optimizer, job.generators, job.progress)
            raise TrainingInterrupted(
                f"stopped by SIGTERM in epoch {epoch + 1}, batch {b + 1}; resume checkpoint "
                f"saved to {', '.join(str(run.resume_path) for run in job.runs)}")
    return loss_sum, correct


def _end_epoch(job, epoch, lr, loss_sum, correct):
    """Validate and test every member, append its history row, keep its best-validation weights
    and best test accuracy; returns the members' test results."""
    vals = evaluate(job.model, job.data, job.data.val, job.settings, job.device)
    tests = evaluate(job.model, job.data, job.data.test, job.settings, job.device)
    runs, n = job.runs, job.n
    for k, (run, state, val, test) in enumerate(zip(runs, job.progress, vals, tests)):
        train_loss = float(loss_sum[k]) / n
        if not math.isfinite(train_loss):
            which = f" of {Path(run.outputs['model']).parent}" if len(runs) > 1 else ""
            raise TrainingError(f"training loss{which} is {train_loss} in epoch {epoch + 1} "
                                f"(lr {lr:g}); lower the learning rate or check the inputs")
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
               "train_accuracy": int(correct[k]) / n, "val_loss": val["loss"],
               "val_accuracy": val["accuracy"], "test_loss": test["loss"],
               "test_accuracy": test["accuracy"]}
        state.history.append(row)
        if state.best is None or (val["accuracy"], -val["loss"]) > (
                state.best["val_accuracy"], -state.best["val_loss"]):
            state.best = {"epoch": epoch + 1, "val_accuracy": val["accuracy"],
                          "val_loss": val["loss"], "test": test}
            state.best_state = job.members.member_state(k, host=False)    # copied out once, at the end
        if state.best_test is None or test["accuracy"] > state.best_test["accuracy"]:
            state.best_test = {"epoch": epoch + 1, "accuracy": test["accuracy"]}
        log.info("epoch %d/%d lr %.4g loss %.4f train %.4f val %.4f test %.4f%s", epoch + 1,
                 job.settings.epochs, lr, train_loss, row["train_accuracy"], val["accuracy"],
                 test["accuracy"], f" (seed {run.seed}, member {k})" if len(runs) > 1 else "")
        state.epoch, state.batch, state.loss_sum, state.correct = epoch + 1, 0, 0.0, 0
    return tests


def _save_resumes_now(job):
    """Save every run's resume checkpoint, its elapsed time counted up to now."""
    elapsed_before = [state.elapsed for state in job.progress]
    for state in job.progress:
        state.elapsed += time.perf_counter() - job.started
    save_resumes(job.runs, job.members, job.optimizer, job.generators, job.progress)
    for state, elapsed in zip(job.progress, elapsed_before):
        state.elapsed = elapsed


def trainable_windows(model, members, data, settings, device, runs):
    """Training windows per epoch: all, but the last of the shuffled order when it alone would
    make the last batch and a BatchNorm layer would see one value per channel for it (a network
    whose smallest feature map is 1 sample or 1x1 pixel), which cannot be normalised; then it is
    left out of each epoch (a different window each epoch), as a loader's drop_last would, and
    the log and every run's metrics.json say so."""
    n = len(data.train)
    if n % settings.batch_size != 1:
        return n
    fewest = [math.inf]

    def count(module, inputs, output):
        fewest[0] = min(fewest[0], inputs[0].shape[0] * math.prod(inputs[0].shape[2:]))

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    hooks = [layer.register_forward_hook(count) for layer in layers]
    window = data.train.x[:1].to(device=device, dtype=torch.float32)
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(members.join(data.normalize(window.expand(members.members, *window.shape[1:]))))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    if fewest[0] > 1:
        return n
    if n == 1:
        raise GafkdError("the training split holds one window, whose BatchNorm statistics cannot be "
                         "computed at this input size: give the fold more training windows")
    note = (f"the last training batch would hold one window, whose BatchNorm statistics cannot be "
            f"computed (1 value per channel at this input size): one window of the {n} is left out "
            f"of each epoch, a different one each time (training.batch_size {settings.batch_size})")
    log.warning(note)
    for run in runs:
        run.record = {**(run.record or {}), "left_out_of_each_epoch": note}
    return n - 1


def best_test_logits(model, members, data, settings, device, progress):
    """Each run's test logits at its best-validation checkpoint (loaded into its member for the
    pass; the model keeps its last weights)."""
    if len(data.test) == 0:
        return np.zeros((members.members, 0, data.num_classes), dtype=np.float32)
    last = [members.member_state(k, host=False) for k in range(members.members)]
    for k, state in enumerate(progress):
        members.load_member_state(k, state.best_state)
    logits = predict(model, data.normalize, data.test.x, max(1, settings.eval_batch_size // members.members),
                     device, settings.bf16)
    for k, state in enumerate(last):
        members.load_member_state(k, state)
    return logits.numpy() if members.members > 1 else logits.numpy()[None]
