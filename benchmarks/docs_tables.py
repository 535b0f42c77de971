"""The docs' measured tables, rendered from the benchmark CSVs committed under benchmarks/results/.

    python benchmarks/docs_tables.py            # rewrite every marked table in README.md and docs/
    python benchmarks/docs_tables.py --check    # exit 1, naming the documents, where a table differs

A table is marked in the Markdown by a comment that names its CSV, optionally which rows, and
one line per column, `csv_column: header` with an optional format after `|`:

    <!-- table benchmarks/results/gaf.csv
    where table=stage, threads=2
    method: method
    series_per_s: series/s | ,.0f
    train_bytes: train | GB
    -->
    | method | series/s | train |
    |---|---:|---:|
    ...
    <!-- end table -->

A format is a Python format spec applied to the number, or GB / MB (bytes, two decimals /
none). An empty cell is shown as –. Columns whose every shown cell is a number are
right-aligned. Everything between the comment and `<!-- end table -->` is the rendering.
"""

import argparse
import csv
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"<!-- table (?P<spec>.*?)-->\n(?P<body>.*?)<!-- end table -->\n", re.S)
UNITS = {"GB": (1e9, ".2f"), "MB": (1e6, ",.0f")}


class TableSpecError(ValueError):
    pass


def documents(repo=REPO):
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def parse_spec(spec):
    """(csv path, {column: value} row filter, [(column, header, format or None)])."""
    lines = [line.strip() for line in spec.strip().splitlines() if line.strip()]
    if not lines:
        raise TableSpecError("a table comment names no CSV")
    source, where, columns = lines[0], {}, []
    for line in lines[1:]:
        if line.startswith("where "):
            for condition in line[len("where "):].split(","):
                key, _, wanted = condition.partition("=")
                where[key.strip()] = wanted.strip()
            continue
        column, sep, rest = line.partition(":")
        if not sep:
            raise TableSpecError(f"{source}: column line {line!r} is not 'csv_column: header [| format]'")
        header, _, fmt = rest.partition("|")
        columns.append((column.strip(), header.strip(), fmt.strip() or None))
    if not columns:
        raise TableSpecError(f"{source}: the table comment lists no columns")
    return source, where, columns


def cell(value, fmt):
    if value in ("", None):
        return "–"
    if fmt is None:
        return value
    if fmt in UNITS:
        scale, fmt = UNITS[fmt]
        return format(float(value) / scale, fmt)
    return format(float(value), fmt)


def is_number(text):
    return re.fullmatch(r"[−+-]?([\d,]*\.?\d+(e[+-]?\d+)?[×x%]?|inf)", text) is not None


def render(spec, repo=REPO):
    """The Markdown table (header, rule, rows) that a table comment asks for."""
    source, where, columns = parse_spec(spec)
    path = repo / source
    if not path.is_file():
        raise TableSpecError(f"{source}: no such CSV (run the benchmark that writes it)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [name for name in [*where, *(column for column, _, _ in columns)] if rows and name not in rows[0]]
    if missing:
        raise TableSpecError(f"{source}: no column {', '.join(missing)}")
    rows = [row for row in rows if all(row[key] == wanted for key, wanted in where.items())]
    if not rows:
        raise TableSpecError(f"{source}: no row where {where}")
    cells = [[cell(row[column], fmt) for column, _, fmt in columns] for row in rows]
    numeric = [all(is_number(line[i]) or line[i] == "–" for line in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |",
             "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in cells]
    return "\n".join(lines) + "\n"


def rendered(text, repo=REPO):
    """`text` with every marked table rendered anew."""
    return MARKED.sub(lambda m: f"<!-- table {m['spec']}-->\n{render(m['spec'], repo)}<!-- end table -->\n", text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 where a table differs")
    args = parser.parse_args(argv)
    stale = []
    for document in documents():
        text = document.read_text()
        try:
            new = rendered(text)
        except TableSpecError as error:
            print(f"{document.relative_to(REPO)}: {error}")
            return 2
        if new == text:
            continue
        if args.check:
            stale.append(document.relative_to(REPO))
        else:
            document.write_text(new)
            print(f"rewrote the tables of {document.relative_to(REPO)}")
    if stale:
        print("tables differ from their CSVs in: " + ", ".join(map(str, stale))
              + " (python benchmarks/docs_tables.py rewrites them)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
