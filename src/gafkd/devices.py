"""Device slots: each GPU job holds one (device, slot) for its lifetime through an OS file lock.

Snakemake counts `gpu` as a plain resource and never picks a device. With `jobs_per_gpu` slots
per visible device, a job takes the first free slot (slot s runs on device s % n_devices, so
jobs spread over devices before they share one). The lock is released by the OS when the job
ends, however it ends. Under SLURM the scheduler has already set CUDA_VISIBLE_DEVICES for the
job: it uses the first visible device without taking a slot. With no CUDA, the job runs on the
CPU and says so.
"""

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gafkd.errors import ConfigError

log = logging.getLogger(__name__)

DEVICE_COUNT_ENV = "GAFKD_DEVICE_COUNT"   # pretend to have N devices (slot tests without GPUs)


@dataclass
class Claim:
    device: torch.device
    slot: int | None
    description: str


def default_lock_dir():
    return Path(tempfile.gettempdir()) / f"gafkd-gpu-slots-{os.getuid()}"


def visible_device_count():
    override = os.environ.get(DEVICE_COUNT_ENV)
    if override is not None:
        return int(override)
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _torch_device(index):
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        return torch.device("cuda", index)
    return torch.device("cpu")


def _try_lock(path):
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def claim_device(jobs_per_gpu=1, lock_dir=None, poll_seconds=0.5):
    """Yield a Claim on a free device slot, held until the block exits."""
    if int(jobs_per_gpu) < 1:
        raise ConfigError(f"devices.jobs_per_gpu must be at least 1, got {jobs_per_gpu}")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if os.environ.get("SLURM_JOB_ID") and visible:
        device = _torch_device(0)
        yield Claim(device, None, f"SLURM job {os.environ['SLURM_JOB_ID']}: "
                                  f"CUDA_VISIBLE_DEVICES={visible}, running on {_describe(device)}")
        return
    n_devices = visible_device_count()
    if n_devices == 0:
        yield Claim(torch.device("cpu"), None, "no CUDA device: running on the CPU")
        return
    lock_dir = Path(lock_dir or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    n_slots = n_devices * int(jobs_per_gpu)
    waited = 0.0
    while True:
        for slot in range(n_slots):
            handle = _try_lock(lock_dir / f"slot{slot}.lock")
            if handle is None:
                continue
            index = slot % n_devices
            try:
                device = _torch_device(index)
                yield Claim(device, slot, f"slot {slot} of {n_slots}: device {index}"
                                          f"{'' if visible is None else f' of CUDA_VISIBLE_DEVICES={visible}'}"
                                          f", running on {_describe(device)}")
            finally:
                handle.close()
            return
        if waited == 0 or waited % 60 < poll_seconds:
            log.info("all %d device slots busy in %s; waiting", n_slots, lock_dir)
        time.sleep(poll_seconds)
        waited += poll_seconds


def _describe(device):
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "the CPU (CUDA not available)"


@contextlib.contextmanager
def job_device(devices, scheduled_threads=None):
    """A training job's device: claim a slot per the config's `devices` section, log it, and
    run torch on exactly `devices.threads` CPU threads (they change the numbers), even where
    Snakemake gave the job fewer (`scheduled_threads`, lowered to fit `--cores`)."""
    threads = int(devices["threads"])
    if scheduled_threads is not None and int(scheduled_threads) < threads:
        log.warning("devices.threads is %d but Snakemake scheduled this job on %d core(s) "
                    "(--cores or set-threads is lower): running %d torch threads anyway, as the "
                    "results depend on it; give the job %d cores or lower devices.threads "
                    "(which reruns training)", threads, int(scheduled_threads), threads, threads)
    with claim_device(devices["jobs_per_gpu"], devices["lock_dir"]) as claim:
        log.info("device: %s", claim.description)
        torch.set_num_threads(threads)
        log.info("torch threads: %d (devices.threads)", torch.get_num_threads())
        yield claim
