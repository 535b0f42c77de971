"""Packed student steps against solo ones: K students trained as one fused network.

    python benchmarks/student_pack.py [--device cpu|cuda] [--csv PATH] [--packs K ...]
                                      [--archs A ...] [--fusion device|grouped|gemm|members|vmap]
                                      [--quick]

One training step of K members (K ∈ --packs, default 1 2 4 8 16 32 64) of a student
architecture (--archs, default wrn16-1 wrn28-3) on GENE shapes: windows 3 × 500, 14 classes,
batch 64, the two-teacher KD loss over cached teacher logits (gafkd.distill.students.DistillationLoss,
α = 0.1 … 0.9 over the members, λ 0.7, T 4), SGD, full float32 and deterministic kernels
(gafkd.train.numerics.use_numerics("fp32")). K = 1 is a solo WideResNet; K > 1 a
gafkd.train.packed.PackedWideResNet, timed inside gafkd.train.engine.train_runs itself: the loss is wrapped
to take a timestamp every few steps after a warm-up, so a step is the engine's whole step
(gather of every member's batch, forward, loss, backward, update, bookkeeping); median of the
repeats. --fusion: `device` (default) computes the pack as the workflow does on that device
(gafkd.train.packed.resolve_fusion: members one by one on a CPU, every convolution as K batched GEMMs
on a GPU), `grouped`, `gemm` or `members` forces one of the three; `vmap` times an alternative
outside the engine: the solo network's forward vmapped over the members' stacked weights
(torch.func).

CSV columns: pack, arch, device, ms_per_step, student_steps_per_s (K / step time),
speedup_vs_solo (student steps/s against K = 1 of the same arch), fusion.
"""

import argparse
import copy
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from gafkd.train.numerics import use_numerics  # noqa: E402
from gafkd.train.defaults import default_train_settings  # noqa: E402
from gafkd.train.models import build_model  # noqa: E402
from gafkd.train.packed import PackedWideResNet, pack_models, resolve_fusion  # noqa: E402
from gafkd.distill.students import DistillationLoss  # noqa: E402
from harness import StepTiming, print_table, step_seconds, write_csv  # noqa: E402

CHANNELS, LENGTH, CLASSES, BATCH = 3, 500, 14, 64
KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "standardize_logits": False}
PACKS = (1, 2, 4, 8, 16, 32, 64)
ARCHS = ("wrn16-1", "wrn28-3")



def members_alpha(k):
    return [round(0.1 + 0.2 * (m % 5), 1) for m in range(k)]


def engine_step_ms(arch, k, device, timing, folder, fusion=None, precision="fp32", length=LENGTH,
                   batch=BATCH, cuda_graphs=False):
    """Median ms of one engine step of a pack of k (solo for k = 1) at `precision`, with or without
    CUDA graphs, on windows of `length` (the caller fixes the matching numerics:
    gafkd.train.numerics.use_numerics)."""
    n = timing.windows(batch)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, CHANNELS, length, generator=generator).to(device)
    y = torch.randint(0, CLASSES, (n,), generator=generator).to(device)
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(build_model(arch, CHANNELS, CLASSES, dims=1))
    teacher = {m: torch.randn(k, n, CLASSES, generator=generator).to(device) for m in ("gaf", "sig")}
    if k == 1:
        model, loss = models[0], DistillationLoss("kd2", 0.3, KD, {m: t[0] for m, t in teacher.items()})
    else:
        model, loss = pack_models(models, fusion), DistillationLoss("kd2", members_alpha(k), KD, teacher)
        model.group_outputs = False         # kd2 reads logits only (gafkd.distill.students sets the same)
    settings = default_train_settings(epochs=1, batch_size=batch, precision=precision, cuda_graphs=cuda_graphs)
    return 1000 * step_seconds(model, x, y, loss, settings, device, timing, folder, classes=CLASSES)


def vmap_step_ms(arch, k, device, timing):
    """Median ms of one step of k solo networks vmapped over stacked weights (torch.func)."""
    from torch.func import functional_call, stack_module_state, vmap

    models = [build_model(arch, CHANNELS, CLASSES, dims=1).to(device) for _ in range(k)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    optimizer = torch.optim.SGD(list(params.values()), lr=0.05, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(k, BATCH, CHANNELS, LENGTH, device=device)
    y = torch.randint(0, CLASSES, (k, BATCH), device=device)

    def step():
        logits, _ = vmap(lambda p, b, inputs: functional_call(base, (p, b), (inputs,)))(params, buffers, x)
        loss = F.cross_entropy(logits.reshape(-1, CLASSES), y.reshape(-1), reduction="none").view(k, -1).mean(1)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()

    times = []
    for i in range(timing.warmup + timing.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(timing.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= timing.warmup:
            times.append((time.perf_counter() - start) / timing.steps)
    return 1000 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv", default="benchmarks/results/student_pack.csv")
    parser.add_argument("--packs", type=int, nargs="+", default=list(PACKS))
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--fusion", nargs="+", choices=("device", *PackedWideResNet.FUSIONS, "vmap"), default=["device"],
                        help="one or more ways to fuse a pack (device: the engine's choice for the device)")
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke run)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    use_numerics("fp32")     # full float32, deterministic kernels (gafkd.train.devices)
    if device.type == "cuda":
        device = torch.device("cuda", 0 if device.index is None else device.index)
        torch.cuda.set_device(device)
    if args.quick:
        timing = StepTiming(warmup=2, steps=1, repeats=3)
    elif device.type == "cuda":
        timing = StepTiming(warmup=5, steps=10, repeats=3)
    else:
        timing = StepTiming(warmup=2, steps=2, repeats=3)
    packs = sorted(set(args.packs) | {1})
    fusions = [resolve_fusion(None, device, 1) if fusion == "device" else fusion for fusion in args.fusion]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for arch, fusion in itertools.product(args.archs, dict.fromkeys(fusions)):
            solo = None
            for k in packs:
                if fusion == "vmap":
                    ms = vmap_step_ms(arch, k, device, timing)
                else:
                    ms = engine_step_ms(arch, k, device, timing, Path(scratch), fusion)
                rate = 1000 * k / ms
                solo = rate if k == 1 else solo
                rows.append({"pack": k, "arch": arch, "device": str(device), "ms_per_step": round(ms, 3),
                             "student_steps_per_s": round(rate, 3),
                             "speedup_vs_solo": round(rate / solo, 2), "fusion": fusion})
                print(f"{arch} K={k} ({fusion}): {ms:.2f} ms per step, {rate:.1f} student steps/s", flush=True)
    print_table(rows, {"pack": "K", "arch": "arch", "fusion": "fusion", "ms_per_step": "ms/step",
                       "student_steps_per_s": "student steps/s", "speedup_vs_solo": "vs solo"})
    write_csv(rows, args.csv)


if __name__ == "__main__":
    main()
