import contextlib
import json
import logging
import multiprocessing
import os
import threading
import time
import warnings
from types import SimpleNamespace

import pytest
import torch

from gafkd.train import devices, memory, numerics
from gafkd.train.devices import DEVICE_COUNT_ENV, DeviceError, check_before_jobs, claim_device, job_device
from gafkd.errors import ConfigError
from gafkd.provenance import provenance


def hold_slot(lock_dir, jobs_per_gpu, record, hold_seconds):
    with claim_device(jobs_per_gpu, lock_dir, poll_seconds=0.02) as claim:
        start = time.time()
        time.sleep(hold_seconds)
        end = time.time()
    with open(record, "a") as f:
        f.write(json.dumps({"slot": claim.slot, "start": start, "end": end,
                            "description": claim.description}) + "\n")


def test_concurrent_jobs_never_share_a_slot(tmp_path, monkeypatch):
    monkeypatch.setenv(DEVICE_COUNT_ENV, "2")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    record = tmp_path / "claims.jsonl"
    ctx = multiprocessing.get_context("spawn")
    jobs = [ctx.Process(target=hold_slot, args=(tmp_path / "locks", 2, record, 0.4)) for _ in range(10)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
    assert all(job.exitcode == 0 for job in jobs)
    claims = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(claims) == 10
    assert {c["slot"] for c in claims} <= {0, 1, 2, 3}
    for i, a in enumerate(claims):
        for b in claims[i + 1:]:
            overlap = a["start"] < b["end"] and b["start"] < a["end"]
            assert not (overlap and a["slot"] == b["slot"]), (a, b)
    # 10 jobs on 4 slots: some had to wait, so the slots were really contended
    assert max(c["end"] for c in claims) - min(c["start"] for c in claims) >= 1.2
    assert "slot" in claims[0]["description"] and "device" in claims[0]["description"]


def test_slots_spread_over_devices_first(tmp_path, monkeypatch):
    monkeypatch.setenv(DEVICE_COUNT_ENV, "2")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with claim_device(2, tmp_path) as first, claim_device(2, tmp_path) as second:
        assert (first.slot, second.slot) == (0, 1)
        assert "device 0" in first.description and "device 1" in second.description


def test_no_cuda_runs_on_cpu_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv(DEVICE_COUNT_ENV, "0")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with claim_device(1, tmp_path) as claim:
        assert claim.device.type == "cpu" and claim.slot is None
        assert "running on the CPU" in claim.description


def test_scheduler_assigned_device_is_honoured_and_shared_by_slots(monkeypatch, tmp_path):
    """A SLURM job given one GPU (`--gpus=1`) runs on it, and with devices.jobs_per_gpu > 1 the
    jobs SLURM puts on that GPU take its slots and plan with their share of it."""
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv(DEVICE_COUNT_ENV, "1")
    with claim_device(1, tmp_path) as claim:
        assert claim.slot == 0 and claim.jobs_on_device == 1
        assert claim.description.startswith("SLURM job 42: slot 0 of 1")
        assert "device 0 of CUDA_VISIBLE_DEVICES=3" in claim.description
    with contextlib.ExitStack() as stack:
        claims = [stack.enter_context(claim_device(2, tmp_path)) for _ in range(2)]
        assert [c.slot for c in claims] == [0, 1]
        assert {c.jobs_on_device for c in claims} == {2} and memory.jobs_on_device() == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == ["device-3-slot0.lock", "device-3-slot1.lock"]


def test_slurm_allocation_with_several_gpus_spreads_jobs_over_them(monkeypatch, tmp_path):
    """Snakemake inside `salloc --gpus=4`: SLURM sets CUDA_VISIBLE_DEVICES once for the whole
    allocation, so the jobs take slots over its devices rather than all landing on the first."""
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    monkeypatch.setenv(DEVICE_COUNT_ENV, "4")
    with contextlib.ExitStack() as stack:
        claims = [stack.enter_context(claim_device(1, tmp_path)) for _ in range(4)]
        assert [c.slot for c in claims] == [0, 1, 2, 3]
        assert [f"device {i} of CUDA_VISIBLE_DEVICES=4,5,6,7" in c.description
                for i, c in enumerate(claims)] == [True] * 4
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            f"device-{physical}-slot0.lock" for physical in (4, 5, 6, 7)]


def claim_in_thread(lock_dir, visible, monkeypatch):
    """Start claiming a slot with CUDA_VISIBLE_DEVICES=`visible` in a thread that holds it until
    released; returns (got: Event, release: Event)."""
    got, release = threading.Event(), threading.Event()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)

    def hold():
        with claim_device(1, lock_dir, poll_seconds=0.02):
            got.set()
            release.wait(30)

    threading.Thread(target=hold, daemon=True).start()
    return got, release


def test_locks_are_named_after_the_physical_device(monkeypatch, tmp_path):
    """Two pipelines on one machine, one with CUDA_VISIBLE_DEVICES=0 and one with =1, each see a
    single device at index 0: they must not wait for each other, while two jobs on the same
    physical device still do."""
    monkeypatch.setenv(DEVICE_COUNT_ENV, "1")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    first, release_first = claim_in_thread(tmp_path, "0", monkeypatch)
    assert first.wait(5)
    other_gpu, release_other = claim_in_thread(tmp_path, "1", monkeypatch)
    assert other_gpu.wait(5), "a job on physical GPU 1 waited for the one on GPU 0"
    same_gpu, release_same = claim_in_thread(tmp_path, "0", monkeypatch)
    assert not same_gpu.wait(0.5), "two jobs shared the one slot of physical GPU 0"
    release_first.set()
    assert same_gpu.wait(5)
    release_other.set()
    release_same.set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device-0-slot0.lock", "device-1-slot0.lock"]


@pytest.mark.parametrize("visible, count, installed, missing", [
    ("0,5", 1, None, "5"),          # CUDA keeps device 0 and silently drops 5
    ("5", 0, 1, "5"),               # a one-GPU machine: no device at all
])
def test_visible_devices_naming_a_missing_device_is_a_named_error(monkeypatch, tmp_path, visible,
                                                                   count, installed, missing):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    if count:
        monkeypatch.setenv(DEVICE_COUNT_ENV, str(count))
    else:
        monkeypatch.delenv(DEVICE_COUNT_ENV, raising=False)
        monkeypatch.setattr(devices, "_cuda_device_count", lambda: 0)
    monkeypatch.setattr(devices, "_installed_gpus", lambda: installed)
    with pytest.raises(DeviceError, match=rf"CUDA_VISIBLE_DEVICES={visible} names .* '{missing}' is "
                                          rf"not a device.*nvidia-smi -L"):
        with claim_device(1, tmp_path):
            pass


def test_no_usable_cuda_fails_when_required_and_says_why(monkeypatch, tmp_path):
    monkeypatch.delenv(DEVICE_COUNT_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(DeviceError, match=r"needs a GPU \(devices.require_cuda\).*CPU-only build.*"
                                          r"make install CUDA=cu128.*require_cuda: false"):
        with claim_device(1, tmp_path, require_cuda=True):
            pass
    with claim_device(1, tmp_path) as claim:        # not required: the CPU, with the reason
        assert claim.device.type == "cpu"
        assert claim.description == f"torch {torch.__version__} is a CPU-only build: running on the CPU"


def test_a_driver_too_old_for_the_wheel_is_named(monkeypatch):
    monkeypatch.delenv(DEVICE_COUNT_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")

    def is_available():
        warnings.warn("CUDA initialization: The NVIDIA driver on your system is too old (found "
                      "version 11040). Please update your GPU driver")
        return False

    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    reason = devices.cuda_unavailable_reason()
    assert reason.startswith(f"torch {torch.__version__} (built for CUDA 12.8) finds no usable GPU: ")
    assert "The NVIDIA driver on your system is too old (found version 11040)" in reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.cuda_unavailable_reason() == "CUDA_VISIBLE_DEVICES='' hides every device"


def fake_gpus(monkeypatch, count, total_bytes=10 * 10**9):
    """torch.cuda as on a machine with `count` GPUs of `total_bytes` (no GPU needed)."""
    current = []
    monkeypatch.delenv(DEVICE_COUNT_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(torch.device(device)))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(
        name="Fake GPU", total_memory=total_bytes, uuid=f"fake-uuid-{index}"))
    return current


def test_a_claim_makes_its_device_the_current_one(monkeypatch, tmp_path):
    current = fake_gpus(monkeypatch, 2)
    with claim_device(1, tmp_path) as first, claim_device(1, tmp_path) as second:
        assert (first.device, second.device) == (torch.device("cuda", 0), torch.device("cuda", 1))
        assert current == [torch.device("cuda", 0), torch.device("cuda", 1)]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "device-GPU-fake-uuid-0-slot0.lock", "device-GPU-fake-uuid-1-slot0.lock"]


def test_a_claim_sets_the_jobs_share_of_its_device(monkeypatch, tmp_path):
    monkeypatch.setenv(DEVICE_COUNT_ENV, "1")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert memory.jobs_on_device() == 1
    with claim_device(3, tmp_path) as claim:
        assert claim.jobs_on_device == 3 and memory.jobs_on_device() == 3
    assert memory.jobs_on_device() == 1


@pytest.mark.parametrize("precision, tf32", [("fp32", False), ("tf32", True), ("bf16", False)])
def test_every_precision_is_deterministic_and_only_tf32_uses_tf32(monkeypatch, precision, tf32):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        numerics.use_numerics(precision)
        assert numerics.numerics_record() == {
            "precision": precision, "deterministic": True,
            "deterministic_algorithms": True, "cudnn_deterministic": True, "cudnn_benchmark": False,
            "tf32_matmul": tf32, "tf32_cudnn": tf32, "cublas_workspace_config": ":4096:8"}
        # enforced, not warned: an op without a deterministic kernel raises
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        numerics.use_numerics(precision, deterministic=False)
        record = numerics.numerics_record()
        assert (record["deterministic"], record["deterministic_algorithms"], record["cudnn_deterministic"],
                record["cudnn_benchmark"]) == (False, False, False, False)    # never the autotuner
    finally:
        numerics.use_numerics("fp32")
    record = numerics.numerics_record()
    assert provenance(torch.device("cpu"), numerics=record)["numerics"] == record


@pytest.mark.parametrize("inherited, kept", [(":0:0", False), ("", False), (":16:8", True), (":4096:8", True)])
def test_an_inherited_cublas_workspace_that_breaks_determinism_is_replaced(monkeypatch, inherited, kept):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", inherited)
    numerics.use_numerics("tf32")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == (inherited if kept else ":4096:8")


def test_an_unknown_precision_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"training.precision: 'fp16' is not one of fp32, tf32, bf16"):
        numerics.use_numerics("fp16")


def test_an_op_without_a_deterministic_kernel_stops_the_job_naming_it_and_the_setting(monkeypatch, tmp_path):
    from torch._prims_common import alert_not_deterministic       # torch's own check, as its CUDA ops call it

    monkeypatch.setenv(DEVICE_COUNT_ENV, "0")
    config = {"devices": {"threads": 1, "jobs_per_gpu": 1, "lock_dir": str(tmp_path), "require_cuda": False},
              "training": {"precision": "tf32", "deterministic": True}}
    try:
        with pytest.raises(numerics.NondeterministicOpError,
                           match=r"index_add_cuda_ has no deterministic kernel.*training.deterministic: false"):
            with devices.job_device(config):
                alert_not_deterministic("index_add_cuda_")
        with devices.job_device({**config, "training": {"precision": "tf32", "deterministic": False}}):
            alert_not_deterministic("index_add_cuda_")        # allowed: no error
        with pytest.raises(RuntimeError, match="another error"):         # other errors pass through
            with devices.job_device(config):
                raise RuntimeError("another error")
    finally:
        numerics.use_numerics("fp32")


def test_a_job_fixes_its_numerics_before_it_claims_a_device(monkeypatch, tmp_path):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = []
    real_claim = devices.claim_device

    def claim(*args, **kwargs):
        seen.append((os.environ.get("CUBLAS_WORKSPACE_CONFIG"), torch.are_deterministic_algorithms_enabled()))
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(devices, "claim_device", claim)
    monkeypatch.setenv(DEVICE_COUNT_ENV, "0")
    torch.use_deterministic_algorithms(False)
    config = {"devices": {"jobs_per_gpu": 1, "lock_dir": str(tmp_path), "threads": 1,
                          "require_cuda": False}, "training": {"precision": "fp32", "deterministic": True}}
    with job_device(config):
        pass
    assert seen == [(":4096:8", True)]


def test_before_jobs_start_the_run_hears_where_gpu_jobs_will_run(monkeypatch):
    config = {"devices": {"jobs_per_gpu": 1, "require_cuda": False}}
    monkeypatch.setenv(DEVICE_COUNT_ENV, "0")
    assert check_before_jobs(config, 0) == []
    [warning] = check_before_jobs(config, 12)
    assert warning.startswith("12 GPU job(s) will run on the CPU: GAFKD_DEVICE_COUNT=0. To use a "
                              "GPU, install a CUDA build of torch")
    with pytest.raises(DeviceError, match="devices.require_cuda is set and no GPU is usable"):
        check_before_jobs({"devices": {"jobs_per_gpu": 1, "require_cuda": True}}, 1)


def test_more_jobs_per_gpu_than_a_card_holds_is_warned_before_jobs_start(monkeypatch):
    fake_gpus(monkeypatch, 1, total_bytes=10 * 10**9)
    need = devices.CUDA_CONTEXT_BYTES + memory.reserve_bytes()
    assert check_before_jobs({"devices": {"jobs_per_gpu": 3, "require_cuda": True}}, 5) == []
    [warning] = check_before_jobs({"devices": {"jobs_per_gpu": 8, "require_cuda": True}}, 5)
    assert warning.startswith("devices.jobs_per_gpu: 8 gives each job 1.25 GB of cuda:0 (Fake GPU, "
                              "10.00 GB); a training job needs at least ")
    assert f"At most {10 * 10**9 // need} fit on this card" in warning


@pytest.mark.parametrize("jobs_per_gpu", [0, -1])
def test_jobs_per_gpu_below_one(jobs_per_gpu, tmp_path):
    with pytest.raises(ConfigError, match="jobs_per_gpu must be at least 1"):
        with claim_device(jobs_per_gpu, tmp_path):
            pass


def test_job_runs_the_configured_threads_and_warns_when_given_fewer(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(DEVICE_COUNT_ENV, "0")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    config = {"devices": {"jobs_per_gpu": 1, "lock_dir": str(tmp_path), "threads": 2,
                          "require_cuda": False}, "training": {"precision": "fp32", "deterministic": True}}
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="gafkd"):
            with job_device(config, scheduled_threads=1):
                assert torch.get_num_threads() == 2
        assert "devices.threads is 2 but Snakemake scheduled this job on 1 core(s)" in caplog.text
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gafkd"):
            with job_device({**config, "devices": {**config["devices"], "threads": 1}}, scheduled_threads=4):
                assert torch.get_num_threads() == 1
        assert "WARNING" not in caplog.text and "torch threads: 1 (devices.threads)" in caplog.text
    finally:
        torch.set_num_threads(before)


def test_a_job_scheduled_with_no_gpu_runs_on_the_cpu_and_says_so(monkeypatch, tmp_path, caplog):
    fake_gpus(monkeypatch, 1)
    config = {"devices": {"jobs_per_gpu": 1, "lock_dir": str(tmp_path), "threads": 1,
                          "require_cuda": False}, "training": {"precision": "fp32", "deterministic": True}}
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    with caplog.at_level(logging.INFO, logger="gafkd"):
        with job_device(config, scheduled_gpus=0) as claim:
            assert claim.device.type == "cpu"
    assert "scheduled it with none (--resources gpu=0" in caplog.text
    with pytest.raises(DeviceError, match="gave this GPU job no GPU"):
        with job_device({**config, "devices": {**config["devices"], "require_cuda": True}}, scheduled_gpus=0):
            pass
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gafkd"):
        with job_device(config, scheduled_gpus=1) as claim:      # the fake GPU
            assert claim.device.type == "cuda"
    assert "gpu=0" not in caplog.text
