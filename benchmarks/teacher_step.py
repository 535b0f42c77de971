"""GAF teacher steps in each of CUDA's deterministic fast paths: memory layout and precision.

    python benchmarks/teacher_step.py [--device cuda|cpu] [--csv PATH] [--archs A ...] [--quick]

One training step of a GAF teacher (a 2-D WideResNet, --archs, default the lab grid's four) on
GENE shapes: 3 × 64 × 64 images, 14 classes, batch 64, SGD, cross-entropy, with the workflow's
numerics (full float32, deterministic cuDNN; gafkd.train.numerics.use_numerics). Each variant is a
training.precision (fp32 or bf16) × channels-last setting, timed inside gafkd.train.engine.train_runs itself (a
timestamp every few steps after a warm-up; median of the repeats); the workflow itself takes
channels-last with bf16 only (gafkd.train.engine.use_memory_format). Each variant then trains
again from the same weights on the same batches: `deterministic` says whether the two runs'
weights are equal bit for bit. On a CPU only the float32, default-layout variant runs (both
switches act on CUDA only).

CSV columns: arch, bf16, channels_last, device, ms_per_step, images_per_s, speedup_vs_fp32
(against float32 in the default layout, same arch), deterministic.
"""

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from gafkd.train.defaults import default_train_settings  # noqa: E402
from gafkd.train.numerics import use_numerics  # noqa: E402
from gafkd.train.engine import cross_entropy  # noqa: E402
from gafkd.train.models import build_model  # noqa: E402
from harness import StepTiming, print_table, step_seconds, write_csv  # noqa: E402

CHANNELS, SIZE, CLASSES, BATCH = 3, 64, 14, 64
ARCHS = ("wrn16-1", "wrn16-3", "wrn28-1", "wrn28-3")



def variants(device):
    """(bf16, channels_last) settings to time on the device, float32 default layout first."""
    if device.type != "cuda":
        return [(False, False)]
    return [(False, False), (False, True), (True, False), (True, True)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv", default="benchmarks/results/teacher_step.csv")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    use_numerics("fp32")
    size = SIZE
    if device.type == "cuda":
        device = torch.device("cuda", 0 if device.index is None else device.index)
        torch.cuda.set_device(device)
        timing = StepTiming(warmup=5, steps=10, repeats=3)
    else:
        timing = StepTiming(warmup=1, steps=2, repeats=2)
    if args.quick:
        timing, size = StepTiming(warmup=1, steps=1, repeats=2), 16
    generator = torch.Generator().manual_seed(0)
    n = timing.windows(BATCH)
    x = torch.rand(n, CHANNELS, size, size, generator=generator).half().to(device)
    y = torch.randint(0, CLASSES, (n,), generator=generator).to(device)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for arch in args.archs:
            torch.manual_seed(0)
            initial = build_model(arch, CHANNELS, CLASSES, dims=2)
            baseline = None
            for bf16, channels_last in variants(device):
                settings = default_train_settings(epochs=1, batch_size=BATCH, precision="bf16" if bf16 else "fp32",
                                                  channels_last=channels_last)
                trained = []
                for _ in range(2):                  # timed, then again for the determinism check
                    model = copy.deepcopy(initial)
                    seconds = step_seconds(model, x, y, cross_entropy, settings, device, timing,
                                           Path(scratch))
                    trained.append((seconds, {k: v.cpu() for k, v in model.state_dict().items()}))
                seconds = trained[0][0]
                baseline = baseline or seconds
                same = all(torch.equal(trained[0][1][k], trained[1][1][k]) for k in trained[0][1])
                rows.append({"arch": arch, "bf16": bf16, "channels_last": channels_last,
                             "device": str(device), "ms_per_step": round(1000 * seconds, 3),
                             "images_per_s": round(BATCH / seconds, 1),
                             "speedup_vs_fp32": round(baseline / seconds, 2),
                             "deterministic": "yes" if same else "no"})
                print(f"{arch} bf16={bf16} channels_last={channels_last}: {1000 * seconds:.2f} ms per step, "
                      f"deterministic: {rows[-1]['deterministic']}", flush=True)
    print_table(rows, {"arch": "arch", "bf16": "bf16", "channels_last": "channels_last",
                       "ms_per_step": "ms/step", "images_per_s": "images/s",
                       "speedup_vs_fp32": "vs fp32", "deterministic": "deterministic"})
    write_csv(rows, args.csv)


if __name__ == "__main__":
    main()
