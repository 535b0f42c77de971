"""Host and device memory queries, peak memory and the choice of where a split lives."""
import resource
import subprocess
import sys

import pytest

from gafkd.train import memory
from gafkd.errors import ConfigError
from gafkd.train.memory import (DEVICE, HOST, device_budget_bytes, host_available_bytes, human_bytes,
                                peak_memory, plan_placement, requested_placement, reserve_bytes)


def test_host_available_bytes_reads_meminfo():
    available = host_available_bytes()
    assert isinstance(available, int) and available > 0
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    assert available <= total


def test_host_available_bytes_without_meminfo(monkeypatch):
    real_open = open

    def no_meminfo(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_meminfo)
    monkeypatch.setitem(sys.modules, "psutil", None)       # not installed: os.sysconf
    assert host_available_bytes() > 0


def test_device_budget_bytes_on_the_cpu_is_host_memory():
    import torch
    for device in ("cpu", torch.device("cpu")):
        free = device_budget_bytes(device)
        assert isinstance(free, int)
        assert free == pytest.approx(host_available_bytes(), rel=0.1)


def test_human_bytes():
    assert human_bytes(6.5e9) == "6.50 GB"
    assert human_bytes(3_100_000_000) == "3.10 GB"
    assert human_bytes(512_000) == "512.00 kB"
    assert human_bytes(2.5e6) == "2.50 MB"
    assert human_bytes(1.2e12) == "1.20 TB"
    assert human_bytes(12) == "12 B"
    assert human_bytes(None) == "n/a"


def test_peak_memory_on_the_cpu():
    peak = peak_memory("cpu")
    assert set(peak) == {"host_peak_bytes", "device_peak_bytes", "device_reserved_peak_bytes"}
    assert peak["device_peak_bytes"] is None and peak["device_reserved_peak_bytes"] is None
    assert 0 < peak["host_peak_bytes"] <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + 2**23
    block = bytearray(64 * 2**20)                          # the peak follows a 64 MiB allocation
    block[::4096] = b"\1" * len(block[::4096])
    assert peak_memory("cpu")["host_peak_bytes"] >= 64 * 2**20
    del block
    assert memory.reset_host_peak()
    assert peak_memory("cpu")["host_peak_bytes"] < peak["host_peak_bytes"] + 32 * 2**20


def test_host_peak_is_the_process_own(tmp_path):
    """ru_maxrss of a child counts its parent's size at the fork; the reported peak does not."""
    code = ("import resource; from gafkd.train.memory import host_peak_bytes; "
            "print(host_peak_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)")
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(memory.__file__).rsplit("/gafkd/", 1)[0]})
    assert run.returncode == 0, run.stderr
    own, maxrss = map(int, run.stdout.split())
    assert own < 200 * 2**20 and own <= maxrss + 2**23     # maxrss: 400 MiB more on Linux


def test_host_queries_do_not_import_torch():
    code = ("import sys; from gafkd.train import memory; memory.peak_memory('cpu'); "
            "memory.device_budget_bytes('cpu'); memory.human_bytes(1); print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(memory.__file__).rsplit("/gafkd/", 1)[0]})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_plan_keeps_what_fits_on_the_device_training_split_first():
    sizes = {"train": 6_500, "val": 900, "test": 900}
    assert plan_placement(sizes, free_bytes=8_800, reserve=1_000) == {
        "train": DEVICE, "val": DEVICE, "test": HOST}
    assert plan_placement(sizes, free_bytes=4_100, reserve=1_000) == {
        "train": HOST, "val": DEVICE, "test": DEVICE}
    assert plan_placement(sizes, free_bytes=500, reserve=1_000) == {
        "train": HOST, "val": HOST, "test": HOST}
    assert plan_placement(sizes, free_bytes=10**9, reserve=0) == dict.fromkeys(sizes, DEVICE)


def test_plan_can_be_forced():
    sizes = {"train": 10, "val": 0}
    assert plan_placement(sizes, 0, 0, placement=DEVICE) == dict.fromkeys(sizes, DEVICE)
    assert plan_placement(sizes, 10**9, 0, placement=HOST) == dict.fromkeys(sizes, HOST)


def test_requested_placement(monkeypatch):
    monkeypatch.delenv(memory.PLACEMENT_ENV, raising=False)
    assert requested_placement() == "auto"
    assert requested_placement("HOST") == "host"
    monkeypatch.setenv(memory.PLACEMENT_ENV, "device")
    assert requested_placement() == "device"
    assert requested_placement("host") == "host"            # the argument wins
    with pytest.raises(ConfigError, match="unknown data placement 'gpu'"):
        requested_placement("gpu")


def test_reserve_grows_with_the_model():
    assert reserve_bytes(0) == memory.RESERVE_ACTIVATION_BYTES + memory.RESERVE_SLACK_BYTES
    assert reserve_bytes(1000, activations=0) == (memory.RESERVE_PER_PARAMETER_BYTE * 1000
                                                  + memory.RESERVE_SLACK_BYTES)


def test_activation_estimate_scales_with_the_batch_and_leaves_the_model_alone():
    import torch
    from gafkd.train.models import build_model
    torch.manual_seed(0)
    model = build_model("wrn10-1", 3, 4, dims=2).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    one = memory.activation_bytes(model, (3, 16, 16), batch_size=1, eval_batch_size=1)
    many = memory.activation_bytes(model, (3, 16, 16), batch_size=64, eval_batch_size=1)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert model.training
    assert 0 < one < many < 64 * one
    # the forward of a batch saves about what the estimate says (conv, BN, ReLU inputs)
    x = torch.randn(64, 3, 16, 16)
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        build_model("wrn10-1", 3, 4, dims=2)(x)
    assert sum(saved.values()) <= many <= 2 * sum(saved.values())
    # evaluation batches much larger than the training batch set the estimate
    assert memory.activation_bytes(model, (3, 16, 16), 1, eval_batch_size=4096) > many


def fold(n=30, shape=(2, 4, 4), dtype="float16"):
    import numpy as np
    from gafkd.train.folds import FoldArrays
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n,) + shape).astype(dtype)
    split = np.arange(n) % 3                               # TRAIN 0, VAL 1, TEST 2
    return FoldArrays(X, np.arange(n) % 4, split.astype(np.int8), np.zeros(shape[0], np.float32),
                      np.ones(shape[0], np.float32), ["a", "b", "c", "d"], ["u", "v"], "fp", {})


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_splits_placed_on_the_host_hold_the_same_tensors(monkeypatch, how):
    import torch
    from gafkd.train.folds import to_train_data
    arrays = fold()
    monkeypatch.delenv(memory.PLACEMENT_ENV, raising=False)
    resident = to_train_data(arrays, "cpu")
    if how == "environment":
        monkeypatch.setenv(memory.PLACEMENT_ENV, "host")
        host = to_train_data(arrays, "cpu")
    else:
        host = to_train_data(arrays, "cpu", placement="host")
    assert resident.placement["splits"] == dict.fromkeys(("train", "val", "test"), DEVICE)
    assert host.placement["splits"] == dict.fromkeys(("train", "val", "test"), HOST)
    assert host.placement["split_bytes"] == {"train": 10 * 64, "val": 10 * 64, "test": 10 * 64}
    for name in ("train", "val", "test"):
        a, b = getattr(resident, name), getattr(host, name)
        assert (a.placement, b.placement) == (DEVICE, HOST)
        assert b.x.dtype == torch.float16 and b.x.is_contiguous()
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_auto_placement_on_cuda_keeps_what_fits(monkeypatch, caplog):
    """The decision on a CUDA device, with its free memory faked (no GPU needed)."""
    import logging
    from gafkd.train import folds
    arrays = fold(n=300)                                   # 100 windows × 64 bytes per split
    monkeypatch.delenv(memory.PLACEMENT_ENV, raising=False)
    monkeypatch.setattr(folds, "device_budget_bytes", lambda device: 12_500)
    with caplog.at_level(logging.INFO, logger="gafkd.train.folds"):
        plan = folds.choose_placement(arrays, "cuda:0", reserve=1_000)
    assert plan["splits"] == {"train": DEVICE, "val": HOST, "test": HOST}
    assert plan["device_budget_bytes"] == 12_500 and plan["reserve_bytes"] == 1_000
    assert ("val split 6.40 kB does not fit in the 5.10 kB left for this job on cuda:0 (the card "
            "less its CUDA context, less 1.00 kB kept for training): batches stream from host "
            "memory") in caplog.text
    monkeypatch.setattr(folds, "device_budget_bytes", lambda device: 2_000)
    assert folds.choose_placement(arrays, "cuda:0", reserve=1_000)["splits"] == dict.fromkeys(
        ("train", "val", "test"), HOST)
    assert folds.choose_placement(arrays, "cuda:0", "device", 1_000)["splits"] == dict.fromkeys(
        ("train", "val", "test"), DEVICE)


def test_resident_splits_are_copied_block_by_block(monkeypatch):
    import numpy as np
    import torch
    from gafkd.train import folds
    from gafkd.data.splits import image_channel_stats
    arrays = fold(n=100)
    monkeypatch.setattr(folds, "BLOCK_BYTES", 3 * 64 + 5)             # 3 rows per block
    rows = folds._device_rows(arrays.X, arrays.split == 0, torch.device("cpu"))
    assert torch.equal(rows, torch.from_numpy(arrays.X[arrays.split == 0]))
    # statistics in blocks of 3 rows equal those in one block
    blocked = image_channel_stats(arrays.X, arrays.split == 0, "mean_window_std", chunk=3)
    whole = image_channel_stats(arrays.X, arrays.split == 0, "mean_window_std", chunk=len(arrays.X))
    assert all(np.array_equal(a, b) for a, b in zip(blocked, whole))


def test_memory_table_benchmark_runs(tmp_path):
    import csv
    from conftest import REPO
    out = tmp_path / "memory_table.csv"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "memory_table.py"), "--quick",
                          "--device", "cpu", "--threads", "1", "--csv", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert {r["config"] for r in rows} == {"gene14_w500"}
    jobs = [(r["job"], r["modality"]) for r in rows]
    assert jobs == [("windows", "sig"), ("images", "gaf"), ("teacher", "gaf"), ("teacher", "sig"),
                    ("teacher outputs", "gaf"), ("teacher outputs", "sig"),
                    ("student (cached logits)", "sig"), ("student SP online (estimate)", "sig")]
    gaf = rows[2]
    # 32,000 windows, 70 / 10 / 20 %, 3 x 64 x 64 images in the config's float32 (images.dtype)
    image = 3 * 64 * 64 * 4
    assert [int(gaf[f"{s}_bytes"]) for s in ("train", "val", "test")] == [22_400 * image, 3_200 * image, 6_400 * image]
    assert int(rows[1]["host_estimate"]) == 1024 * (3 * 500 * 4 + 3 * 64 * 64 * (4 + 4))   # a block, encoded and stored
    assert int(rows[3]["train_bytes"]) == 22_400 * 3 * 500 * 4
    assert gaf["placement"] == "all on device" and gaf["measured_on"] == "cpu"
    assert int(gaf["measured_step"]) > 0 and int(gaf["measured_peak"]) > int(gaf["measured_step"])
    assert int(gaf["device_estimate"]) > int(gaf["train_bytes"]) + int(gaf["val_bytes"])
    assert "on a 10 GB card (est.)" in run.stdout and "step, measured cpu" in run.stdout


def fake_card(monkeypatch, free, total, reserved=0):
    """A CUDA card's memory as torch.cuda reports it (no GPU needed); mutable through the dict."""
    import torch
    card = {"free": free, "total": total, "reserved": reserved}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (card["free"], card["total"]))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: card["reserved"])
    return card


def test_jobs_sharing_a_card_each_plan_with_their_share(monkeypatch):
    """Two jobs started together on a 10 GB card both see 10 GB free; each must plan with 5 GB
    less its process's CUDA context, less what its own allocator already holds."""
    context = memory.CUDA_CONTEXT_BYTES
    card = fake_card(monkeypatch, free=10 * 10**9, total=10 * 10**9)
    assert memory.device_budget_bytes("cuda:0") == 10 * 10**9 - context
    with memory.jobs_sharing_device(2):
        assert memory.device_budget_bytes("cuda:0") == 5 * 10**9 - context
        card["reserved"] = 10**9                    # this job's model and optimizer
        assert memory.device_budget_bytes("cuda:0") == 4 * 10**9 - context
        card["free"] = 3 * 10**9                    # something beyond the jobs' shares fills the card
        assert memory.device_budget_bytes("cuda:0") == 3 * 10**9
    assert memory.jobs_on_device() == 1


def test_a_jobs_share_does_not_depend_on_when_it_reads_the_free_memory(monkeypatch):
    """Three jobs start on a 24 GB card; whatever the others have allocated within their shares
    when a job plans, its budget is total / 3 less the CUDA context."""
    total, context = 24 * 10**9, memory.CUDA_CONTEXT_BYTES
    share = total // 3 - context
    assert memory.device_share_bytes(total, 3) == share
    assert memory.device_share_bytes(total, 1) == total - context
    assert memory.device_share_bytes(10**8, 1) == 0                 # a card smaller than a context
    card = fake_card(monkeypatch, free=total, total=total)
    with memory.jobs_sharing_device(3):
        budgets = []
        # the others: not started, context only, their data placed, both full (context + share)
        for others in (0, 2 * context, 2 * context + 10**9 + 3 * 10**9, 2 * (context + share)):
            card["free"] = total - context - others                 # this job's context is there
            budgets.append(memory.device_budget_bytes("cuda:0"))
        assert budgets == [share] * 4


def test_the_cuda_context_is_counted_once_for_devices_and_memory():
    from gafkd.train import devices
    assert devices.CUDA_CONTEXT_BYTES == memory.CUDA_CONTEXT_BYTES == 2**29


def test_fits_on_device_plans_with_the_reserve_given(monkeypatch):
    monkeypatch.delenv(memory.PLACEMENT_ENV, raising=False)
    fake_card(monkeypatch, free=memory.CUDA_CONTEXT_BYTES + 10_000, total=memory.CUDA_CONTEXT_BYTES + 10_000)
    assert memory.fits_on_device(6_000, "cuda:0", reserve=4_000)
    assert not memory.fits_on_device(6_000, "cuda:0", reserve=4_001)
    assert memory.fits_on_device(10**12, "cpu", reserve=10**12)          # the CPU places nothing
    monkeypatch.setenv(memory.PLACEMENT_ENV, "host")
    assert not memory.fits_on_device(1, "cuda:0", reserve=0)
    monkeypatch.setenv(memory.PLACEMENT_ENV, "device")
    assert memory.fits_on_device(10**12, "cuda:0", reserve=10**12)


def test_a_split_that_fits_the_card_but_not_the_jobs_share_streams(monkeypatch, caplog):
    import logging

    from gafkd.train import folds
    arrays = fold(n=300)                                   # 100 windows × 64 bytes per split
    monkeypatch.delenv(memory.PLACEMENT_ENV, raising=False)
    total = 2 * (memory.CUDA_CONTEXT_BYTES + 10_000)       # a share of 10,000 bytes for 2 jobs
    fake_card(monkeypatch, free=total, total=total)
    assert folds.choose_placement(arrays, "cuda:0", reserve=500)["splits"] == dict.fromkeys(
        ("train", "val", "test"), DEVICE)
    with memory.jobs_sharing_device(2), caplog.at_level(logging.INFO, logger="gafkd.train.folds"):
        plan = folds.choose_placement(arrays, "cuda:0", reserve=500)
    assert plan["splits"] == {"train": DEVICE, "val": HOST, "test": HOST}
    assert plan["device_budget_bytes"] == 10_000 and plan["jobs_per_gpu"] == 2
    assert ("val split 6.40 kB does not fit in the 3.10 kB left for this job on cuda:0 (its share "
            "of the card with devices.jobs_per_gpu: 2, less 500 B kept for training)") in caplog.text


def test_peak_memory_on_cuda_records_what_the_allocator_reserved(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 8 * 2**20)
    peak = peak_memory("cuda:0")
    assert (peak["device_peak_bytes"], peak["device_reserved_peak_bytes"]) == (3 * 2**20, 8 * 2**20)


def test_a_packs_reserve_is_measured_as_it_computes_on_the_device():
    """A 1-D pack computes its convolutions as GEMMs on a GPU (gafkd.train.packed: gemm), which save
    each convolution's unfolded input: its reserve is measured that way, not as the CPU computes."""
    import torch
    from gafkd.train.memory import activation_bytes, training_reserve
    from gafkd.train.models import build_model
    from gafkd.train.packed import pack_models

    torch.manual_seed(0)
    pack = pack_models([build_model("wrn10-1", 3, 4, dims=1) for _ in range(4)])
    gemm = activation_bytes(pack, (12, 200), 4096, 1, "gemm")
    grouped = activation_bytes(pack, (12, 200), 4096, 1, "grouped")
    assert gemm > 1.5 * grouped
    reserve = training_reserve(pack, 4, (3, 200), 4096, torch.device("cuda", 0), eval_batch_size=4)
    weights = sum(p.numel() * 4 for p in pack.parameters())
    assert reserve == memory.reserve_bytes(weights, gemm) > memory.reserve_bytes(weights, grouped) > memory.reserve_bytes()
    assert pack.fusion is None                  # the pack itself is untouched


def test_a_pack_trains_as_wide_as_the_jobs_device_memory_holds(monkeypatch):
    """pack_width_that_fits: the whole pack when its reserve fits the job's device memory, else the
    widest pack whose own measured reserve does (1 at least); on the CPU always the whole pack."""
    import torch
    from gafkd.train.memory import pack_width_that_fits, training_reserve
    from gafkd.train.packed import PackedWideResNet

    cuda = torch.device("cuda", 0)
    shape, batch = (3, 1000), 8192               # activations above the default reserve from width 1

    def reserve_of(width):
        return training_reserve(PackedWideResNet("wrn10-1", 3, 4, 1, width), width, shape, batch, cuda, 4)

    reserves = [reserve_of(width) for width in range(1, 7)]
    assert reserves[0] > memory.reserve_bytes() and all(a < b for a, b in zip(reserves, reserves[1:]))
    pack = PackedWideResNet("wrn10-1", 3, 4, 1, 6)
    for budget, width in [(reserves[5], 6), (reserves[5] - 1, 5), (reserves[3], 4), (reserves[2] + 1, 3),
                          (reserves[0], 1), (reserves[0] - 1, 1)]:
        monkeypatch.setattr(memory, "device_budget_bytes", lambda device, budget=budget: budget)
        assert pack_width_that_fits(pack, reserves[5], shape, batch, cuda, 4) == width, budget
        assert pack_width_that_fits(pack, reserves[5], shape, batch, torch.device("cpu"), 4) == 6
