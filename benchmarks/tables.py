"""Printing and saving the benchmarks' result rows (lists of dicts)."""

import csv
from pathlib import Path


def _cell(value):
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def print_table(rows, columns):
    """`columns` maps row keys to headers; numbers are right-aligned, text left-aligned."""
    cells = [[_cell(row[key]) for key in columns] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells]) for i, header in enumerate(columns.values())]
    numeric = [all(isinstance(row[key], (int, float)) for row in rows) for key in columns]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    print(line(list(columns.values())))
    for values in cells:
        print(line(values))


def write_csv(rows, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
