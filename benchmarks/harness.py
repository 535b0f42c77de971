"""What every benchmark shares: median timings, printing and saving result rows (lists of dicts)."""

import csv
import statistics
import time
from dataclasses import dataclass
from pathlib import Path


def median_seconds(function, repeats, warmup=0, device=None):
    """Median wall seconds of `function()` over `repeats` calls after `warmup` untimed ones; on a
    CUDA device each timed call starts and ends with a synchronisation."""
    def synchronize():
        if device is not None and device.type == "cuda":
            import torch
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cell(value):
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def print_table(rows, columns):
    """`columns` maps row keys to headers; numbers are right-aligned, text left-aligned."""
    headers = list(columns.values())
    cells = [[_cell(row[key]) for key in columns] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells]) for i, header in enumerate(headers)]
    numeric = [all(isinstance(row[key], (int, float)) for row in rows) for key in columns]

    def line(values):
        aligned = (v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric))
        return "  ".join(aligned).rstrip()

    print(line(headers))
    for values in cells:
        print(line(values))


def write_csv(rows, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class StepTiming:
    """Steps timed by step_seconds: `warmup` untimed, then `repeats` stamps `steps` apart."""
    warmup: int
    steps: int
    repeats: int

    def windows(self, batch):
        """Training windows for one epoch that covers every timed step."""
        return (self.warmup + self.steps * self.repeats + 1) * batch


class StepClock:
    """Wraps the engine's training step (gafkd.train.engine.make_stepper: eager, or a CUDA graph's
    replay) and takes a timestamp every `steps` calls after `warmup` calls: the time between two
    timestamps is that many of the engine's own steps."""

    def __init__(self, device, warmup, steps):
        self.device, self.warmup, self.steps = device, warmup, steps
        self.calls, self.stamps = 0, []

    def wrap(self, step):
        def timed_step(index, host_index):
            if self.calls >= self.warmup and (self.calls - self.warmup) % self.steps == 0:
                if self.device.type == "cuda":
                    import torch
                    torch.cuda.synchronize(self.device)
                self.stamps.append(time.perf_counter())
            self.calls += 1
            return step(index, host_index)
        return timed_step

    def seconds_per_step(self):
        return statistics.median(b - a for a, b in zip(self.stamps, self.stamps[1:])) / self.steps


def standardization(x):
    """A mean of zeros and a std of ones, broadcastable to x."""
    import torch
    shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
    return torch.zeros(shape, device=x.device), torch.ones(shape, device=x.device)


def step_seconds(model, x, y, loss_fn, settings, device, timing, folder, classes=None):
    """Median seconds of one training step of `model` (solo, or a gafkd.train.packed pack: one step
    trains every member) inside gafkd.train.engine.train_runs; `timing`: warmup and steps per stamp."""
    from gafkd.train import engine
    from gafkd.train.folds import Split, TrainData
    from gafkd.train.engine import Run, train_runs
    from gafkd.train.packed import members_of

    clock = StepClock(device, timing.warmup, timing.steps)
    empty = Split(x[:0], y[:0])
    classes = classes or model.fc.out_features
    data = TrainData(Split(x, y), empty, empty, *standardization(x), num_classes=classes)
    runs = [Run(settings.seed + k, {name: folder / f"run{k}.{name}" for name in ("model", "metrics", "history")},
                folder / f"resume{k}.pt", "benchmark") for k in range(members_of(model).members)]
    make_stepper = engine.make_stepper
    engine.make_stepper = lambda job, loss: clock.wrap(make_stepper(job, loss))
    try:
        train_runs(model, data, settings, device, runs, loss_fn=loss_fn)
    finally:
        engine.make_stepper = make_stepper
    return clock.seconds_per_step()
