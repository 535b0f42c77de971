"""What produced a result: code version, package versions, device; and a run's identity."""

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

import gafkd

SCHEDULER_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "CUDA_VISIBLE_DEVICES")
PACKAGES = ("torch", "numpy", "scipy", "h5py", "pyts", "numba", "pandas", "snakemake")
REPO = Path(__file__).resolve().parents[2]


def _git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()


def code_version():
    """gafkd version plus the git commit of the checkout whose src/gafkd is running (with
    '-dirty' for uncommitted changes to tracked files); the version alone for an installed copy."""
    try:
        if Path(_git("rev-parse", "--show-toplevel")).resolve() != REPO:
            return gafkd.__version__  # not a checkout's src/gafkd: a repository around it says nothing
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return f"{gafkd.__version__}+{commit}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return gafkd.__version__


def package_versions():
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def device_info(device):
    info = {"device": str(device), "host": platform.node(), "torch_threads": torch.get_num_threads(),
            "scheduler": {name: os.environ[name] for name in SCHEDULER_VARIABLES if name in os.environ}}
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def provenance(device, claim_description=None, *, numerics):
    """What metrics.json records of the code, packages and device that produced a run; `numerics`:
    the numerics settings in force (gafkd.train.numerics.numerics_record)."""
    return {"code_version": code_version(), "packages": package_versions(),
            **device_info(device), "device_claim": claim_description, "numerics": numerics}


def run_key(settings, fingerprint):
    """Identity of a run for resuming: the settings that change the result and the data."""
    text = json.dumps({"settings": settings, "data": fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
