"""Teacher similarity cache: build time and size, measured and projected to a GENE-sized fold,
and why it is stored in float32.

    python benchmarks/sp_cache.py [--quick] [--device cpu|cuda] [--windows N] [--fold-windows N]
                                  [--teacher-arch A ...] [--csv PATH]

For each teacher (GAF WRN on 3 x 64 x 64 images, signal WRN on 3 x 500 windows; random weights in
eval mode: the cost does not depend on the weights), gafkd.distill.similarity_cache.write_groups writes
the cache of --windows training windows (default 2,048 on the CPU) into a temporary HDF5 file,
timed as a whole. Then the parts of the build are timed on their own, to project the build of a
GENE-sized fold (--fold-windows, default 22,400: the training windows of 32,000 at the configs'
val and test fractions): the teacher forward (s per window), the Gram products (FLOP/s of a
block product), and the HDF5 write (bytes/s, from the measured build). Projected seconds =
forward x windows x teacher passes (the builder's own block plan at that size) + 2 N² D_gram /
FLOP/s + bytes / write rate. Projections are labelled as such.

Storage: the largest inner product of each group (float16 overflows above 65,504) and the
relative change of the SP loss (raw merge, α = 0.3, an untrained student's maps) when the cache
is rounded to float16 or bfloat16, against float32.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gafkd.train.numerics import use_numerics  # noqa: E402
from gafkd.h5checked import create_h5  # noqa: E402
from gafkd.distill.losses import merged_gram_map, similarity_preserving  # noqa: E402
from gafkd.train.models import build_model  # noqa: E402
from gafkd.distill.cache_layout import TILE, cache_bytes, choose_forms, teacher_passes  # noqa: E402
from gafkd.distill.similarity_cache import write_groups  # noqa: E402
from harness import median_seconds, print_table, write_csv  # noqa: E402

CHANNELS, CLASSES = 3, 14


def teacher_outputs_fn(model, x):
    @torch.inference_mode()
    def outputs(start, stop):
        _, groups = model(x[start:stop].float())
        return [g.flatten(1).float() for g in groups]
    return outputs


def hdf5_write_rate(path, n):
    """Bytes/s of writing an (n, n) float32 dataset in TILE x TILE checksummed chunks, row blocks
    at a time, as the builder does."""
    data = torch.randn(n, n).numpy()
    started = time.perf_counter()
    with create_h5(path) as f:
        dataset = f.create_dataset("g", shape=(n, n), dtype="float32", chunks=(min(n, TILE),) * 2,
                                   fletcher32=True)
        for start in range(0, n, TILE):
            dataset[start:start + TILE] = data[start:start + TILE]
    return data.nbytes / (time.perf_counter() - started)


def storage_error(outputs, n, device):
    """Max |inner product| per group and the SP loss's relative change with float16/bfloat16."""
    groups = outputs(0, min(n, 64))
    grams = [g @ g.t() for g in groups]
    student = build_model("wrn16-1", CHANNELS, CLASSES, 1).to(device).eval()
    with torch.no_grad():
        _, student_groups = student(torch.randn(len(groups[0]), CHANNELS, 500, device=device))

    def loss(gs):
        return similarity_preserving(student_groups, [merged_gram_map(g, 0.5 * g, 0.3, "raw") for g in gs]).item()

    reference = loss(grams)
    result = {"max_inner_product": max(g.abs().max().item() for g in grams)}
    for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        rounded = [g.to(dtype).float() for g in grams]
        finite = all(torch.isfinite(g).all() for g in rounded)
        result[f"{name}_sp_rel_err"] = abs(loss(rounded) - reference) / abs(reference) if finite else float("inf")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--windows", type=int, help="training windows of the timed build")
    parser.add_argument("--fold-windows", type=int, default=22400, help="training windows projected")
    parser.add_argument("--teacher-arch", nargs="+", default=None)
    parser.add_argument("--csv", default="benchmarks/results/sp_cache.csv")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    use_numerics("fp32")     # full float32, deterministic (gafkd.train.devices)
    torch.manual_seed(0)
    length, size = (100, 16) if args.quick else (500, 64)
    n = args.windows or (64 if args.quick else 2048 if device.type == "cpu" else 22400)
    archs = args.teacher_arch or (["wrn10-1"] if args.quick else ["wrn16-1", "wrn28-3"])
    batch = 16 if args.quick else TILE
    fold_n = args.fold_windows
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            for modality in ("gaf", "sig"):
                shape = (n, CHANNELS, size, size) if modality == "gaf" else (n, CHANNELS, length)
                x = torch.randn(shape, device=device)
                model = build_model(arch, CHANNELS, CLASSES, 2 if modality == "gaf" else 1).to(device).eval()
                outputs = teacher_outputs_fn(model, x)
                path = Path(tmp) / f"{arch}-{modality}.h5"
                started = time.perf_counter()
                with create_h5(path) as f:
                    plan = write_groups(f, outputs, n, device, batch)
                build = time.perf_counter() - started
                with h5py.File(path, "r") as f:
                    f["group0"][:1]                                  # the file reads back
                forward = median_seconds(lambda: outputs(0, batch), 3, warmup=1, device=device) / batch
                a = torch.randn(batch, max(plan["sizes"]), device=device)
                flop_rate = 2 * batch * batch * a.shape[1] / median_seconds(lambda: a @ a.t(), 3, warmup=1,
                                                                           device=device)
                write_rate = hdf5_write_rate(Path(tmp) / "write.h5", n)
                fold_forms = choose_forms(plan["sizes"], fold_n)
                fold_bytes = cache_bytes(fold_forms, plan["sizes"], fold_n)
                passes = teacher_passes(plan["sizes"], fold_forms, fold_n)
                projected = (forward * fold_n * passes
                             + sum(2 * fold_n * fold_n * s for s, f in zip(plan["sizes"], fold_forms) if f == "gram")
                             / flop_rate + fold_bytes / write_rate)
                rows.append({"teacher": f"{modality} {arch}", "device": str(device), "windows": n,
                             "forms": ",".join(plan["forms"]), "feature_sizes": ",".join(map(str, plan["sizes"])),
                             "build_s": round(build, 2), "mb": round(plan["bytes"] / 1e6, 1),
                             "fold_windows": fold_n, "fold_forms": ",".join(fold_forms),
                             "fold_teacher_passes": round(passes, 2),
                             "fold_gb": round(fold_bytes / 1e9, 2), "fold_build_s_projected": round(projected, 1),
                             **{k: (f"{v:.2e}" if isinstance(v, float) else v)
                                for k, v in storage_error(outputs, n, device).items()}})
    print_table(rows, {"teacher": "teacher", "windows": "windows", "forms": "forms", "build_s": "build s",
                       "mb": "MB", "fold_forms": f"forms at {fold_n}", "fold_gb": "GB",
                       "fold_teacher_passes": "passes", "fold_build_s_projected": "build s (projected)"})
    print_table(rows, {"teacher": "teacher", "max_inner_product": "max |G|",
                       "float16_sp_rel_err": "SP rel. err float16", "bfloat16_sp_rel_err": "SP rel. err bfloat16"})
    write_csv(rows, args.csv)
    return rows


if __name__ == "__main__":
    main()
