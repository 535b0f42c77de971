import json
import logging
import multiprocessing
import time

import pytest
import torch

from gafkd.devices import DEVICE_COUNT_ENV, claim_device, job_device
from gafkd.errors import ConfigError


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


def test_scheduler_assigned_device_is_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with claim_device(1, tmp_path) as claim:
        assert claim.slot is None
        assert "SLURM job 42: CUDA_VISIBLE_DEVICES=3" in claim.description
    assert list(tmp_path.iterdir()) == []    # no slot lock taken


@pytest.mark.parametrize("jobs_per_gpu", [0, -1])
def test_jobs_per_gpu_below_one(jobs_per_gpu, tmp_path):
    with pytest.raises(ConfigError, match="jobs_per_gpu must be at least 1"):
        with claim_device(jobs_per_gpu, tmp_path):
            pass


def test_job_runs_the_configured_threads_and_warns_when_given_fewer(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(DEVICE_COUNT_ENV, "0")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    devices = {"jobs_per_gpu": 1, "lock_dir": str(tmp_path), "threads": 2}
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="gafkd"):
            with job_device(devices, scheduled_threads=1):
                assert torch.get_num_threads() == 2
        assert "devices.threads is 2 but Snakemake scheduled this job on 1 core(s)" in caplog.text
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gafkd"):
            with job_device({**devices, "threads": 1}, scheduled_threads=4):
                assert torch.get_num_threads() == 1
        assert "WARNING" not in caplog.text and "torch threads: 1 (devices.threads)" in caplog.text
    finally:
        torch.set_num_threads(before)
