"""Student training step: cached teacher logits, online teachers, and the SP step with online
teachers vs. the teachers' similarity caches.

    python benchmarks/student_step.py [--quick] [--device cpu|cuda] [--teacher-arch A ...]
                                      [--csv PATH]

One step = student forward + loss + backward + SGD update, on resident tensors, with the
library's gafkd.distill.students.DistillationLoss:
    cached      kd2 from both teachers' cached logits (every method but SP)
    online      kd2 with both teachers run at every step for their logits (no cache at all)
    SP online   kd2-anneal-sp, teachers run at every step for the Gram maps (sp_source: online)
    SP cache    kd2-anneal-sp, Gram blocks gathered from the similarity caches (sp_source: cache)
For each teacher architecture (default WRN16-1 and WRN28-3: a GAF teacher on 3 x 64 x 64 images
and a signal teacher on 3 x 500 windows), 1,024 training windows. The caches are built in
memory from the same teachers (gafkd.distill.similarity_cache.SimilarityCache.from_outputs), in the
forms the builder picks for a GENE-sized fold (--fold-windows; a step's cost depends on the
form, not on the number of rows). The kinds take turns within each repeat. Prints medians, the
ratio to the cached-logit step and the SP speed-up, and the relative difference of the SP loss
between the two sources.
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gafkd.train.numerics import use_numerics  # noqa: E402
from gafkd.train.models import build_model  # noqa: E402
from gafkd.distill.cache_layout import choose_forms  # noqa: E402
from gafkd.distill.similarity_cache import SimilarityCache  # noqa: E402
from gafkd.distill.students import CachedTeachers, DistillationLoss, OnlineTeachers  # noqa: E402
from gafkd.distill.teacher_outputs import Teacher  # noqa: E402
from harness import median_seconds, print_table, write_csv  # noqa: E402

KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "beta": 700.0, "sp_merge": "raw",
      "standardize_logits": False}
ALPHA, CLASSES, CHANNELS = 0.3, 14, 3


def frozen_teacher(arch, modality, x, device):
    model = build_model(arch, CHANNELS, CLASSES, 1 if modality == "sig" else 2).to(device)
    shape = (1, CHANNELS) + (1,) * (x.dim() - 2)
    return Teacher(model.eval().requires_grad_(False), torch.zeros(shape, device=device),
                   torch.ones(shape, device=device), modality, arch, [])


@torch.inference_mode()
def group_outputs(teacher, x, batch):
    """(N, D) flattened outputs of each group of `teacher` over x."""
    parts = [teacher.model(teacher.normalize(x[i:i + batch]))[1] for i in range(0, len(x), batch)]
    return [torch.cat([p[g].flatten(1).float() for p in parts]) for g in range(3)]


def losses(arch, data, device, batch, fold_windows):
    teachers = {m: frozen_teacher(arch, m, data[m], device) for m in ("gaf", "sig")}

    class OnlineLogits:
        """Both teachers' logits computed at every step (a student without the logit cache)."""

        def __init__(self, modality):
            self.modality = modality

        def __getitem__(self, index):
            teacher = teachers[self.modality]
            with torch.inference_mode():
                logits, _ = teacher.model(teacher.normalize(data[self.modality][index]))
            return logits.clone()

    online = OnlineTeachers({m: (teachers[m], data[m]) for m in ("gaf", "sig")}, device)
    caches = {}
    for m in ("gaf", "sig"):
        outputs = group_outputs(teachers[m], data[m], batch)
        forms = choose_forms([o.shape[1] for o in outputs], fold_windows)
        caches[m] = SimilarityCache.from_outputs(outputs, device, forms)
    cached = CachedTeachers(caches)
    logits = data["logits"]
    return {
        "cached": DistillationLoss("kd2", ALPHA, KD, logits),
        "online": DistillationLoss("kd2", ALPHA, KD, {m: OnlineLogits(m) for m in ("gaf", "sig")}),
        "SP online": DistillationLoss("kd2-anneal-sp", ALPHA, KD, logits, online),
        "SP cache": DistillationLoss("kd2-anneal-sp", ALPHA, KD, logits, cached),
    }, caches


def make_step(loss_fn, student, data, optimizer, batch, generator):
    n = len(data["y"])

    def step():
        index = torch.randint(0, n, (batch,), generator=generator).to(data["y"].device)
        logits, groups = student(data["sig"][index])
        loss = loss_fn(logits, groups, data["y"][index], index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def sp_difference(loss_fns, data, device, batch):
    """Relative difference of the SP loss computed from the caches and from online teachers."""
    student = build_model("wrn16-1", CHANNELS, CLASSES, 1).to(device).eval()
    index = torch.arange(batch, device=device)
    with torch.no_grad():
        logits, groups = student(data["sig"][index])
        values = [loss_fns[k](logits, groups, data["y"][index], index).item() for k in ("SP online", "SP cache")]
    return abs(values[1] - values[0]) / abs(values[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv", default="benchmarks/results/student_step.csv")
    parser.add_argument("--teacher-arch", nargs="+", default=None)
    parser.add_argument("--fold-windows", type=int, default=22400,
                        help="training windows whose cache forms are timed (GENE-sized by default)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    use_numerics("fp32")     # full float32, deterministic (gafkd.train.devices)
    torch.manual_seed(0)
    n, length, size, batch = (64, 100, 16, 16) if args.quick else (1024, 500, 64, 64)
    steps, repeats = (2, 2) if args.quick else (5, 5)
    archs = args.teacher_arch or (["wrn10-1"] if args.quick else ["wrn16-1", "wrn28-3"])
    data = {"sig": torch.randn(n, CHANNELS, length, device=device),
            "gaf": torch.rand(n, CHANNELS, size, size, device=device).half(),
            "y": torch.randint(0, CLASSES, (n,), device=device),
            "logits": {m: torch.randn(n, CLASSES, device=device) for m in ("gaf", "sig")}}
    rows = []
    for arch in archs:
        loss_fns, caches = losses(arch, data, device, batch, args.fold_windows)
        difference = sp_difference(loss_fns, data, device, batch)
        steps_of = {}
        for kind, loss_fn in loss_fns.items():
            student = build_model("wrn16-1", CHANNELS, CLASSES, 1).to(device).train()
            optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
            steps_of[kind] = make_step(loss_fn, student, data, optimizer, batch, torch.Generator().manual_seed(0))
            steps_of[kind]()                                                    # warm-up
        # the kinds take turns within each repeat, so that a busy machine slows them alike
        times = {kind: [] for kind in steps_of}
        for _ in range(repeats):
            for kind, step in steps_of.items():
                times[kind].append(median_seconds(lambda: [step() for _ in range(steps)], 1, device=device) / steps)
        arch_rows = []
        for kind, seconds in times.items():
            seconds = statistics.median(seconds)
            arch_rows.append({"teacher_arch": arch, "step": kind, "device": str(device), "batch": batch,
                              "window": length, "image": size, "ms_per_step": round(1e3 * seconds, 2),
                              "samples_per_s": round(batch / seconds, 1)})
        by_kind = {r["step"]: r["ms_per_step"] for r in arch_rows}
        for row in arch_rows:
            row["x_cached_step"] = round(row["ms_per_step"] / by_kind["cached"], 2)
            row["sp_cache_speedup"] = round(by_kind["SP online"] / by_kind["SP cache"], 2)
            row["sp_loss_rel_diff"] = f"{difference:.1e}"
            row["cache_forms"] = "/".join(f"{m}:" + ",".join(c.forms) for m, c in caches.items())
        rows += arch_rows
    print_table(rows, {"teacher_arch": "teachers", "step": "step", "ms_per_step": "ms/step",
                       "samples_per_s": "samples/s", "x_cached_step": "x cached step"})
    for arch in archs:
        row = next(r for r in rows if r["teacher_arch"] == arch)
        print(f"{arch}: SP step with the cache is {row['sp_cache_speedup']}x faster than with online "
              f"teachers; SP loss relative difference {row['sp_loss_rel_diff']}; cache forms "
              f"{row['cache_forms']} (those of {args.fold_windows} training windows)")
    write_csv(rows, args.csv)
    return rows


if __name__ == "__main__":
    main()
