"""How long Snakemake takes to parse the workflow and plan a config: what every snakemake command
pays, and every job a cluster executor submits (each job runs Snakemake again on its own target).

    python benchmarks/workflow_parse.py [--checkout DIR ...] [--repeats N] [--csv PATH]

For each checkout (default: this one; give an older one, e.g. a `git worktree`, to compare), the
median wall time of `snakemake -n -q` on the demo (config.yaml) in an empty folder (the config
checked, the grid expanded, every job's resources counted, the DAG built), and of
`python -m gafkd.plan` on the lab configs gene14_w500 and pamap2_loso (their raw data is not
here, so no dry run: the plan sizes every job as the rules do), beside the time Python takes to
import torch and snakemake alone. CSV columns: checkout, command, median_s, ratio_to_first (the
same command in the first checkout).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from harness import print_table, write_csv  # noqa: E402

LAB_CONFIGS = ("configs/gene14_w500.yaml", "configs/pamap2_loso.yaml")


def commands(checkout):
    """{label: command} timed in an empty folder for a checkout."""
    dry_run = {"snakemake -n config.yaml": [sys.executable, "-m", "snakemake", "-n", "-q", "--snakefile",
                                            str(checkout / "Snakefile"), "--configfile", str(checkout / "config.yaml")]}
    return {**dry_run, **{f"gafkd.plan {Path(config).name}": [
        sys.executable, "-c", f"import sys; sys.path.insert(0, {str(checkout / 'src')!r}); "
        f"from gafkd.plan import main; main(['--configfile', {str(checkout / config)!r}])"] for config in LAB_CONFIGS}}


def median_wall(command, repeats, cwd):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
        times.append(time.perf_counter() - started)
        if run.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, command))} failed:\n{run.stderr[-2000:]}")
    return statistics.median(times)


def revision(checkout):
    run = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return run.stdout.strip() or str(checkout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, action="append", help="default: this checkout")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--csv", default="benchmarks/results/workflow_parse.csv")
    args = parser.parse_args(argv)
    checkouts = args.checkout or [REPO]
    rows, first = [], {}
    with tempfile.TemporaryDirectory() as empty:
        for label, command in (("import torch", [sys.executable, "-c", "import torch"]),
                               ("import snakemake", [sys.executable, "-c", "import snakemake.cli"])):
            seconds = median_wall(command, args.repeats, empty)
            rows.append({"checkout": "-", "command": label, "median_s": round(seconds, 2), "ratio_to_first": ""})
        for checkout in checkouts:
            for label, command in commands(checkout.resolve()).items():
                seconds = median_wall(command, args.repeats, empty)
                first.setdefault(label, seconds)
                rows.append({"checkout": revision(checkout), "command": label, "median_s": round(seconds, 2),
                             "ratio_to_first": round(seconds / first[label], 2)})
                print(f"{revision(checkout)} {label}: {seconds:.2f} s", flush=True)
    print_table(rows, {"checkout": "checkout", "command": "command", "median_s": "median s",
                       "ratio_to_first": "vs first"})
    write_csv(rows, args.csv)


if __name__ == "__main__":
    main()
