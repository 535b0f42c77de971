"""What every benchmark shares: median timings, printing and saving result rows (lists of dicts)."""

import csv
import statistics
import time
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
