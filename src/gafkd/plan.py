"""The jobs a config expands to, with what each asks its scheduler for (gafkd.resources): what a
user reads before submitting a grid to a shared cluster.

    python -m gafkd.plan --configfile CONFIG [--configfile MORE ...] [--jobs]

prints, per rule, the jobs, whether they take a GPU, their mem_mb and runtime (the range over
the rule's jobs), and their total GPU-hours and CPU-hours as requested; then where the results and
the report land. --jobs lists every job. A config that fails the workflow's checks gets the
checker's message and exit status 1. The jobs are expanded by gafkd.grid, as the rules expand
them; jobs whose outputs exist are listed too (the plan is the whole grid, not what is left).
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from gafkd import grid
from gafkd import names
from gafkd import resources as needs
from gafkd.config import fold_names
from gafkd.errors import GafkdError

RESULTS = "results"
REPORTS = f"{RESULTS}/reports"


@dataclass(frozen=True)
class Job:
    rule: str        # the rule's name; numbered pack rules keep their number
    name: str        # what it makes, shortly
    needs: needs.Needs

    @property
    def family(self):
        """The rule without a pack's number: train_student_pack3 -> train_student_pack."""
        return self.rule.rstrip("0123456789")


def report_name(config, configfiles=()):
    """report.name, else the last config file's name without .yaml."""
    name = config.get("report", {}).get("name")
    if name:
        return name
    return Path(configfiles[-1]).stem if configfiles else "config"


def report_dir(name):
    return f"{REPORTS}/{name}"


def _teacher_name(run):
    return names.TEACHER_RUN.format(**run)


def _student_name(run):
    return names.STUDENT_RUN.format(**run)


def teacher_jobs(config, folds):
    packs = grid.teacher_packs(config, folds)
    packed = {_teacher_name(run) for pack in packs for run in pack.runs}
    jobs = [Job("train_teacher", _teacher_name(run), needs.teacher_needs(config, run))
            for run in grid.teacher_runs(config, folds) if _teacher_name(run) not in packed]
    jobs += [Job(f"train_teacher_pack{i}", pack.label, needs.teacher_needs(config, pack.runs[0], len(pack.runs)))
             for i, pack in enumerate(packs)]
    return jobs


def student_jobs(config, folds):
    packs = grid.student_packs(config, folds)
    packed = {_student_name(run) for pack in packs for run in pack.runs}
    runs = grid.student_runs(config, folds)
    jobs = [Job("train_student", _student_name(run), needs.student_needs(config, [run]))
            for run in runs if _student_name(run) not in packed]
    jobs += [Job(f"train_student_pack{i}", pack.label, needs.student_needs(config, list(pack.runs)))
             for i, pack in enumerate(packs)]
    return jobs


def teacher_file_jobs(config, folds):
    """teacher_outputs and teacher_similarity: once per teacher a trained student reads them of."""
    jobs = []
    for path in grid.teacher_files(config, folds):
        _, dataset, fold, _, modality, arch, seed, filename = path.split("/")
        run = {"dataset": dataset, "fold": fold, "modality": modality, "arch": arch, "seed": seed[4:]}
        if filename == "outputs.h5":
            jobs.append(Job("teacher_outputs", path, needs.outputs_needs(config, run)))
        else:
            jobs.append(Job("teacher_similarity", path, needs.similarity_needs(config, run)))
    return jobs


def data_jobs(config):
    jobs = []
    for dataset in config["datasets"]:
        jobs.append(Job("build_windows", f"{RESULTS}/{dataset}/windows.h5", needs.windows_needs(config, dataset)))
        for encoding in grid.image_encodings(config):
            jobs.append(Job("build_images", grid.images_path(config, dataset, encoding),
                            needs.images_needs(config, dataset, encoding)))
    return jobs


def report_jobs(config, name):
    folder = report_dir(name)
    report = needs.report_needs(config)
    return ([Job("aggregate", f"{folder}/tables.md", report)]
            + [Job("figures", f"{folder}/{dataset}_alpha.png", report) for dataset in config["datasets"]]
            + [Job("critical_difference", f"{folder}/critical_difference.png", report)])


def plan(config, name):
    """Every job of a validated config, in the DAG's order."""
    folds = {dataset: fold_names(spec) for dataset, spec in config["datasets"].items()}
    return (data_jobs(config) + teacher_jobs(config, folds) + teacher_file_jobs(config, folds)
            + student_jobs(config, folds) + report_jobs(config, name))


def _span(values):
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def summary_rows(jobs):
    """(rule, jobs, gpu, mem_mb, runtime, GPU-hours, CPU-hours) per rule family, in plan order."""
    families = {}
    for job in jobs:
        families.setdefault(job.family, []).append(job)
    rows = []
    for family, members in families.items():
        hours = sum(job.needs.runtime for job in members) / 60
        gpus = {job.needs.gpu for job in members}
        rows.append((family, len(members), "yes" if gpus == {1} else "no" if gpus == {0} else "some",
                     _span([job.needs.mem_mb for job in members]),
                     _span([job.needs.runtime for job in members]),
                     sum(job.needs.runtime * job.needs.gpu for job in members) / 60,
                     hours - sum(job.needs.runtime * job.needs.gpu for job in members) / 60))
    return rows


def render(jobs, config, name, list_jobs=False):
    header = ("rule", "jobs", "GPU", "mem_mb", "runtime (min)", "GPU-hours", "CPU-hours")
    rows = [(rule, f"{n}", gpu, mem, runtime, f"{gpu_h:.1f}", f"{cpu_h:.1f}")
            for rule, n, gpu, mem, runtime, gpu_h, cpu_h in summary_rows(jobs)]
    total_gpu = sum(job.needs.runtime * job.needs.gpu for job in jobs) / 60
    total_cpu = sum(job.needs.runtime * (1 - job.needs.gpu) for job in jobs) / 60
    rows.append(("total", f"{len(jobs)}", "", "", "", f"{total_gpu:.1f}", f"{total_cpu:.1f}"))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(-1, lines[1])
    cluster = config.get("cluster", {})
    model = cluster.get("gpu_model")
    lines += [
        "",
        f"Runtimes are what the jobs ask for: {needs.SAFETY:g}x the time counted at H200 rates"
        f" (x cluster.runtime_factor {cluster.get('runtime_factor', 1.0):g}); GPU jobs ask for "
        + (f"gpu: 1 of model {model} (sbatch --gpus={model}:1)." if model else "gpu: 1 (sbatch --gpus=1)."),
        f"Runs land in {RESULTS}/<dataset>/<fold>/; the tables, figures and runs.csv in "
        f"{report_dir(name)}/; the report: snakemake --report {report_dir(name)}/report.html",
    ]
    if list_jobs:
        lines += ["", *(f"{job.rule}\t{job.needs.gpu}\t{job.needs.mem_mb}\t{job.needs.runtime}\t{job.name}"
                        for job in jobs)]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gafkd.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", action="append", required=True, metavar="CONFIG",
                        help="the experiment's config (more than one: later files override, as in Snakemake)")
    parser.add_argument("--jobs", action="store_true", help="list every job: rule, gpu, mem_mb, runtime, output")
    args = parser.parse_args(argv)
    from gafkd.config import check_config_files
    try:
        config = check_config_files(args.configfile)
        name = report_name(config, args.configfile)
        print(render(plan(config, name), config, name, args.jobs))
    except GafkdError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
