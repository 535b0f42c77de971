"""Student training step with cached teacher outputs vs. the same step with online teachers.

    python benchmarks/student_step.py [--quick] [--device cpu|cuda] [--csv PATH]

One step = student forward + two-teacher KD loss + backward + SGD update, on resident tensors.
"cached" reads both teachers' logits from a (N, K) table; "online" runs both teachers
(GAF WRN on 64x64 images, signal WRN on windows) under inference mode at every step, as a
student without the cache must. "online+SP" is the kd2-anneal-sp step (teacher group outputs
are needed for the Gram maps, so the teachers run anyway). Prints medians and the ratio.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gafkd.losses import merged_teacher_map, similarity_preserving, two_teacher_loss  # noqa: E402
from gafkd.models import build_model  # noqa: E402
from harness import median_seconds, print_table, write_csv  # noqa: E402


def make_step(kind, student, teachers, data, optimizer, batch_size, generator):
    n = len(data["y"])

    def step():
        index = torch.randint(0, n, (batch_size,), generator=generator).to(data["y"].device)
        logits, groups = student(data["sig"][index])
        if kind == "cached":
            t_gaf, t_sig = data["gaf_logits"][index], data["sig_logits"][index]
        else:
            with torch.inference_mode():
                t_gaf, g_gaf = teachers["gaf"](data["gaf"][index].float())
                t_sig, g_sig = teachers["sig"](data["sig"][index])
                maps = [merged_teacher_map(a, b, 0.3) for a, b in zip(g_gaf, g_sig)] if kind == "online+SP" else None
            t_gaf, t_sig = t_gaf.clone(), t_sig.clone()
        loss = two_teacher_loss(logits, data["y"][index], t_gaf, t_sig, 0.3, 0.7, 4.0)
        if kind == "online+SP":
            loss = loss + 700 * similarity_preserving(groups, [m.clone() for m in maps])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv", default="benchmarks/results/student_step.csv")
    parser.add_argument("--teacher-arch", default="wrn16-1")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    n, length, size, batch = (64, 100, 16, 16) if args.quick else (1024, 500, 64, 64)
    steps, repeats = (2, 2) if args.quick else (10, 5)
    data = {"sig": torch.randn(n, 3, length, device=device),
            "gaf": torch.rand(n, 3, size, size, device=device).half(),
            "y": torch.randint(0, 14, (n,), device=device),
            "gaf_logits": torch.randn(n, 14, device=device),
            "sig_logits": torch.randn(n, 14, device=device)}
    teachers = {"gaf": build_model(args.teacher_arch, 3, 14, 2).to(device).eval(),
                "sig": build_model(args.teacher_arch, 3, 14, 1).to(device).eval()}
    rows = []
    for kind in ("cached", "online", "online+SP"):
        student = build_model("wrn16-1", 3, 14, 1).to(device).train()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
        step = make_step(kind, student, teachers, data, optimizer, batch, torch.Generator().manual_seed(0))
        seconds = median_seconds(lambda: [step() for _ in range(steps)], repeats, warmup=1,
                                 device=device) / steps
        rows.append({"step": kind, "device": str(device), "teacher_arch": args.teacher_arch,
                     "batch": batch, "window": length, "image": size,
                     "ms_per_step": round(1e3 * seconds, 2), "samples_per_s": round(batch / seconds, 1)})
    base = rows[0]["samples_per_s"]
    for row in rows:
        row["cached_speedup"] = round(base / row["samples_per_s"], 2)
    print_table(rows, {"step": "step", "ms_per_step": "ms/step", "samples_per_s": "samples/s",
                       "cached_speedup": "cached is x faster"})
    write_csv(rows, args.csv)
    return rows


if __name__ == "__main__":
    main()
