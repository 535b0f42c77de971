"""Device slots: each GPU job holds one (device, slot) for its lifetime through an OS file lock.

Snakemake counts `gpu` as a plain resource and never picks a device. With `jobs_per_gpu` slots
per visible device, a job takes the first free slot (slot s runs on visible device s % n, so
jobs spread over devices before they share one). Lock files are named after the physical device
(its UUID, else its CUDA_VISIBLE_DEVICES entry), so pipelines that see different devices never
wait for each other. The lock is released by the OS when the job ends, however it ends. Under
SLURM the same: a job given one device (`--gpus=1`) takes one of its `jobs_per_gpu` slots, so
that jobs SLURM puts on one GPU share it as planned; one that sees several (an allocation
running Snakemake locally) takes slots over them. The claimed device
becomes torch's current device, and the job's share of its memory (1 / jobs_per_gpu) is what
gafkd.train.memory plans with. With no usable CUDA, the job runs on the CPU and says why, or fails
when `devices.require_cuda` is set.

Every job also fixes its numerics before its first CUDA call (gafkd.train.numerics): the precision of
`training.precision` (fp32, tf32 or bf16) and, unless `training.deterministic` is false,
deterministic kernels only, so that a rerun on the same device gives the same bits.
"""

import contextlib
import fcntl
import logging
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from gafkd.errors import ConfigError, GafkdError
from gafkd.train.memory import CUDA_CONTEXT_BYTES, human_bytes, jobs_sharing_device, reserve_bytes
from gafkd.train.numerics import deterministic_ops, use_numerics

log = logging.getLogger(__name__)

DEVICE_COUNT_ENV = "GAFKD_DEVICE_COUNT"   # pretend to have N devices (slot tests without GPUs)
CUDA_INSTALL_ADVICE = ("install a CUDA build of torch into the project's environment, e.g. "
                       "`make install CUDA=cu128` (the CUDA version your driver supports; "
                       "README, GPU)")
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")
HIDING_ENTRIES = ("-1", "none", "NoDevFiles")     # CUDA_VISIBLE_DEVICES values that hide every GPU


class DeviceError(GafkdError):
    """The job cannot get the device it needs (no usable CUDA, or a device that does not exist)."""


@dataclass
class Claim:
    device: torch.device
    slot: int | None
    description: str
    jobs_on_device: int = 1         # jobs that may share the device (its memory is split between them)


def default_lock_dir():
    return Path(tempfile.gettempdir()) / f"gafkd-gpu-slots-{os.getuid()}"


def visible_entries():
    """The entries of CUDA_VISIBLE_DEVICES, or None when it is not set."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def _cuda_device_count():
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _installed_gpus():
    """GPUs the NVIDIA driver reports, whatever CUDA_VISIBLE_DEVICES says; None if unknown."""
    try:
        count = torch.cuda._raw_device_count_nvml()
    except Exception:           # no NVML library: no NVIDIA driver here
        return None
    return count if count >= 0 else None


def _hides_every_device(entries):
    return entries is not None and (not entries or entries[0] in HIDING_ENTRIES)


def _missing_entry(entries, count):
    """The first entry of CUDA_VISIBLE_DEVICES that names no device (CUDA drops it and every entry
    after it), where that can be told apart from a machine without a usable GPU; else None."""
    if not entries or _hides_every_device(entries) or count >= len(entries):
        return None
    if count > 0:
        return entries[count]
    installed = _installed_gpus()
    if installed and entries[0].isdigit() and int(entries[0]) >= installed:
        return entries[0]
    return None


def visible_device_count():
    """CUDA devices this process can use ($GAFKD_DEVICE_COUNT pretends); DeviceError when
    CUDA_VISIBLE_DEVICES names a device that does not exist."""
    override = os.environ.get(DEVICE_COUNT_ENV)
    count = int(override) if override is not None else _cuda_device_count()
    entries = visible_entries()
    missing = _missing_entry(entries, count)
    if missing is not None:
        installed = _installed_gpus()
        there = "" if installed is None else f"; this machine has {installed} GPU(s)"
        raise DeviceError(
            f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']} names {len(entries)} "
            f"device(s), but only {count} exist: '{missing}' is not a device{there}. Name existing "
            f"devices (nvidia-smi -L lists them) or unset CUDA_VISIBLE_DEVICES")
    return count


def cuda_unavailable_reason():
    """Why this process cannot use CUDA, in words (None when it can)."""
    override = os.environ.get(DEVICE_COUNT_ENV)
    if override is not None:
        return None if int(override) > 0 else f"{DEVICE_COUNT_ENV}={override}"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    if _hides_every_device(visible_entries()):
        return f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r} hides every device"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available() and torch.cuda.device_count() > 0
    if available:
        return None
    said = " ".join(str(w.message).split(".")[0] for w in caught)
    driver = (f"NVIDIA driver {_driver_version()}" if NVIDIA_DRIVER.exists()
              else "no NVIDIA driver found")
    return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) finds no usable GPU: "
            f"{said or driver}" + (f" ({driver})" if said else ""))


def _driver_version():
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9.]+)", NVIDIA_DRIVER.read_text())
    return match.group(1) if match else "of unknown version"


def physical_device_id(index):
    """A name of visible device `index` that is the same in every process: its UUID, else its
    CUDA_VISIBLE_DEVICES entry, else its index."""
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        if uuid is not None:
            return f"GPU-{uuid}" if not str(uuid).startswith(("GPU-", "MIG-")) else str(uuid)
    entries = visible_entries()
    return entries[index] if entries and index < len(entries) else str(index)


def lock_name(index, slot_on_device):
    physical = re.sub(r"[^A-Za-z0-9_.-]", "_", physical_device_id(index))
    return f"device-{physical}-slot{slot_on_device}.lock"


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
def _use(claim):
    """Make the claim's device torch's current one and its memory share gafkd.train.memory's."""
    if claim.device.type == "cuda":
        torch.cuda.set_device(claim.device)
    with jobs_sharing_device(claim.jobs_on_device):
        yield claim


@contextlib.contextmanager
def claim_device(jobs_per_gpu=1, lock_dir=None, poll_seconds=0.5, require_cuda=False):
    """Yield a Claim on a free device slot, held until the block exits."""
    if int(jobs_per_gpu) < 1:
        raise ConfigError(f"devices.jobs_per_gpu must be at least 1, got {jobs_per_gpu}")
    jobs_per_gpu = int(jobs_per_gpu)
    n_devices = visible_device_count()
    if n_devices == 0:
        why = cuda_unavailable_reason() or "no CUDA device"
        if require_cuda:
            raise DeviceError(f"this job needs a GPU (devices.require_cuda) and none is usable: "
                              f"{why}. To use the GPU, {CUDA_INSTALL_ADVICE}; to run on the CPU, "
                              f"set devices.require_cuda: false")
        with _use(Claim(torch.device("cpu"), None, f"{why}: running on the CPU")) as claim:
            yield claim
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = "" if visible is None else f" of CUDA_VISIBLE_DEVICES={visible}"
    # Under SLURM too: a job given one GPU shares it with the jobs SLURM puts beside it when the
    # profile runs several per GPU, and the lock names the physical device they share.
    scheduler = f"SLURM job {os.environ['SLURM_JOB_ID']}: " if os.environ.get("SLURM_JOB_ID") else ""
    lock_dir = Path(lock_dir or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    n_slots = n_devices * jobs_per_gpu
    waited = 0.0
    while True:
        for slot in range(n_slots):
            index = slot % n_devices
            name = lock_name(index, slot // n_devices)
            handle = _try_lock(lock_dir / name)
            if handle is None:
                continue
            try:
                device = _torch_device(index)
                claim = Claim(device, slot, f"{scheduler}slot {slot} of {n_slots} ({name}): device "
                                            f"{index}{where}, running on {_describe(device)}", jobs_per_gpu)
                with _use(claim):
                    yield claim
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
    return "the CPU"


@contextlib.contextmanager
def job_device(config, scheduled_threads=None, scheduled_gpus=None):
    """A GPU job's device: fix the numerics (training.precision) before any CUDA call, claim a slot
    per the config's `devices` section, log it, and run torch on exactly `devices.threads` CPU
    threads (they change the numbers), even where Snakemake gave the job fewer
    (`scheduled_threads`, lowered to fit `--cores`). A job that Snakemake scheduled with no GPU
    (`scheduled_gpus` 0: `--resources gpu=0` scales its request down) runs on the CPU, saying so."""
    devices = config["devices"]
    threads = int(devices["threads"])
    if scheduled_threads is not None and int(scheduled_threads) < threads:
        log.warning("devices.threads is %d but Snakemake scheduled this job on %d core(s) "
                    "(--cores or set-threads is lower): running %d torch threads anyway, as the "
                    "results depend on it; give the job %d cores or lower devices.threads "
                    "(which reruns training)", threads, int(scheduled_threads), threads, threads)
    use_numerics(config["training"]["precision"], config["training"]["deterministic"])
    if scheduled_gpus is not None and int(scheduled_gpus) == 0:
        if devices["require_cuda"]:
            raise DeviceError("devices.require_cuda is set but Snakemake gave this GPU job no GPU "
                              "(--resources gpu=0); run with --resources gpu=N (N GPUs)")
        log.warning("this job asks for a GPU, but Snakemake scheduled it with none (--resources "
                    "gpu=0 scales its request down): running on the CPU; run with --resources "
                    "gpu=N to use N GPUs")
        claimed = _use(Claim(torch.device("cpu"), None, "--resources gpu=0: running on the CPU"))
    else:
        claimed = claim_device(devices["jobs_per_gpu"], devices["lock_dir"],
                               require_cuda=devices["require_cuda"])
    with claimed as claim, deterministic_ops():
        log.info("device: %s", claim.description)
        torch.set_num_threads(threads)
        log.info("torch threads: %d (devices.threads); numerics: training.precision %s%s",
                 torch.get_num_threads(), config["training"]["precision"],
                 ", deterministic" if config["training"]["deterministic"] else
                 ", nondeterministic kernels allowed (training.deterministic: false)")
        yield claim


def check_before_jobs(config, gpu_jobs):
    """What a run should know before its `gpu_jobs` GPU jobs start on this machine: a list of
    warnings (they will run on the CPU; devices.jobs_per_gpu gives each job less memory than a
    training job keeps for itself). DeviceError for what would stop every one of them: no usable
    CUDA under devices.require_cuda, a CUDA_VISIBLE_DEVICES entry that names no device."""
    if not gpu_jobs:
        return []
    devices = config["devices"]
    count = visible_device_count()
    if count == 0:
        why = cuda_unavailable_reason() or "no CUDA device"
        if devices["require_cuda"]:
            raise DeviceError(f"devices.require_cuda is set and no GPU is usable: {why}. To use the "
                              f"GPU, {CUDA_INSTALL_ADVICE}; to run on the CPU, set "
                              f"devices.require_cuda: false")
        return [f"{gpu_jobs} GPU job(s) will run on the CPU: {why}. To use a GPU, {CUDA_INSTALL_ADVICE}"]
    jobs = int(devices["jobs_per_gpu"])
    need = CUDA_CONTEXT_BYTES + reserve_bytes()
    found = []
    for index in range(count if torch.cuda.is_available() else 0):
        total = int(torch.cuda.get_device_properties(index).total_memory)
        if total // jobs < need:
            found.append(f"devices.jobs_per_gpu: {jobs} gives each job {human_bytes(total // jobs)} of "
                         f"cuda:{index} ({torch.cuda.get_device_name(index)}, {human_bytes(total)}); "
                         f"a training job needs at least {human_bytes(need)} (CUDA context about "
                         f"{human_bytes(CUDA_CONTEXT_BYTES)}, {human_bytes(reserve_bytes())} kept for "
                         f"activations, gradients and workspaces) before its data: jobs may run out "
                         f"of device memory. At most {max(1, total // need)} fit on this card")
    return found


def report():
    """Lines saying what torch build is installed and which devices GPU jobs will use."""
    lines = [f"torch {torch.__version__}, "
             + (f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build")]
    try:
        count = visible_device_count()
    except DeviceError as error:
        return lines + [f"error: {error}"]
    if count == 0:
        lines.append(f"GPU jobs will run on the CPU: {cuda_unavailable_reason() or 'no CUDA device'}")
        if NVIDIA_DRIVER.exists():
            lines.append(f"warning: this machine has an NVIDIA driver ({_driver_version()}); to use "
                         f"its GPUs, {CUDA_INSTALL_ADVICE}")
        return lines
    for index in range(count if torch.cuda.is_available() else 0):
        properties = torch.cuda.get_device_properties(index)
        lines.append(f"cuda:{index}: {properties.name}, {human_bytes(properties.total_memory)}, "
                     f"{physical_device_id(index)}")
    return lines


def main(argv=None):
    """`python -m gafkd.train.devices`: the installed torch and the devices GPU jobs will use.
    `--before-jobs N --devices JSON`: check_before_jobs for N GPU jobs and the config's `devices`
    section, one warning a line; exit status 2 with the error for what would stop them all. The
    workflow runs this in a process of its own, so that Snakemake never holds a CUDA context."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m gafkd.train.devices", description=main.__doc__)
    parser.add_argument("--before-jobs", type=int, metavar="N")
    parser.add_argument("--devices", type=json.loads, metavar="JSON")
    args = parser.parse_args(argv)
    if args.before_jobs is None:
        print("\n".join(f"gafkd devices: {line}" for line in report()))
        return 0
    try:
        for warning in check_before_jobs({"devices": args.devices}, args.before_jobs):
            print(warning)
    except DeviceError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
