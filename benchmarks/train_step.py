"""Training step: naive loop vs gafkd's engine.

    python benchmarks/train_step.py [--quick] [--device cpu|cuda] [--csv PATH] [--workers N] [--windows N]

Both train the same student (WRN16-1 1-D on 3x500 windows, 14 classes) for one epoch of N
windows with the two-teacher KD loss (alpha 0.3, lambda 0.7, T 4), batch 64, SGD as the lab's
recipe; the teachers are a GAF WRN16-1 2-D on 3x64x64 images and a signal WRN16-1 1-D.
A synthetic windows.h5 and its GAF image cache (gafkd.images.cache.build_images) are written to a
temporary folder first.

naive   a hand-written loop as commonly written: a per-sample Dataset reading one window and one
        image from the HDF5 files (opened lazily once per worker), DataLoader(shuffle=True,
        num_workers=--workers), per-batch standardisation, both teachers' forward at every
        step under torch.no_grad, float32 throughout.
engine  gafkd.train.engine.train for one epoch over the same files loaded by gafkd.train.folds: resident
        tensors, index-permutation batches, gafkd.distill.students.DistillationLoss over cached
        teacher logits (an (N, K) table computed once by gafkd.train.engine.predict, as
        teacher_outputs does; that one-off pass is shared by every student run and is not
        counted here), bf16 autocast on CUDA, float32 on the CPU.

Each epoch is timed from start to end (the naive one includes starting its loader workers,
the engine one its per-run set-up and the writing of model.pt); one warm-up epoch each, then
the median of repeats. samples/s = training windows processed per second.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gafkd.train.numerics import use_numerics  # noqa: E402
from gafkd.train.folds import load_fold, to_train_data  # noqa: E402
from gafkd.train.defaults import default_train_settings  # noqa: E402
from gafkd.train.engine import predict, train  # noqa: E402
from gafkd.images.cache import build_images  # noqa: E402
from gafkd.distill.losses import two_teacher_loss  # noqa: E402
from gafkd.train.models import build_model  # noqa: E402
from gafkd.data.splits import TRAIN  # noqa: E402
from gafkd.distill.students import DistillationLoss  # noqa: E402
from gafkd.distill.teacher_outputs import Teacher  # noqa: E402
from gafkd.data.windows import fingerprint  # noqa: E402
from harness import median_seconds, print_table, write_csv  # noqa: E402

ARCH, CLASSES, CHANNELS, ALPHA = "wrn16-1", 14, 3, 0.3
KD = {"lambda": 0.7, "temperature": 4.0, "reduction": "mean", "beta": 700, "sp_merge": "raw",
      "standardize_logits": False}


def write_windows(path, X, y):
    """A windows.h5 whose single fold puts every window in training, in gafkd.data.windows' layout."""
    subject = np.zeros(len(y), dtype=np.int64)
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X)
        f.create_dataset("y", data=y)
        f.create_dataset("subject", data=subject)
        fold = f.create_group("folds/predefined")
        fold.create_dataset("split", data=np.full(len(y), TRAIN, dtype=np.int8))
        fold.create_dataset("mean", data=X.mean(axis=(0, 2)))
        fold.create_dataset("std", data=X.std(axis=(0, 2)))
        fold.attrs.update({"val_subjects": "[]", "test_subjects": "[]", "val_missing_classes": "[]"})
        f.attrs.update({
            "class_names": json.dumps([f"class{c}" for c in range(CLASSES)]),
            "channel_names": json.dumps(["x", "y", "z"]),
            "sampling_rate_hz": 100.0,
            "fold_names": json.dumps(["predefined"]),
            "standardize": "pooled_std",
            "fingerprint": fingerprint(X, y, subject),
        })


class WindowsAndImages(Dataset):
    def __init__(self, windows_h5, images_h5):
        self.paths = (windows_h5, images_h5)
        self.files = None
        with h5py.File(windows_h5, "r") as f:
            self.length = len(f["y"])

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if self.files is None:
            self.files = [h5py.File(path, "r") for path in self.paths]
        windows, images = self.files
        x = torch.from_numpy(windows["X"][i])
        image = torch.from_numpy(images["images"][i].astype(np.float32))
        return x, image, int(windows["y"][i])


def naive_epoch(student, teachers, loader, optimizer, stats, device):
    student.train()
    for x, image, y in loader:
        x, image, y = x.to(device), image.to(device), y.to(device)
        x = (x - stats["sig"][0]) / stats["sig"][1]
        image = (image - stats["gaf"][0]) / stats["gaf"][1]
        with torch.no_grad():
            gaf_logits, _ = teachers["gaf"].model(image)
            sig_logits, _ = teachers["sig"].model(x)
        logits, _ = student(x)
        loss = two_teacher_loss(logits, y, gaf_logits, sig_logits, ALPHA, KD["lambda"], KD["temperature"],
                                reduction=KD["reduction"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv", default="benchmarks/results/train_step.csv")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the naive loop")
    parser.add_argument("--windows", type=int, help="windows per epoch (default 2048, quick 128)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    use_numerics("fp32")     # full float32, deterministic (gafkd.train.devices)
    n, length, size, batch, repeats = (128, 100, 16, 16, 2) if args.quick else (2048, 500, 64, 64, 3)
    n = args.windows or n
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        windows_h5, images_h5 = folder / "windows.h5", folder / "images.h5"
        write_windows(windows_h5, rng.standard_normal((n, CHANNELS, length), dtype=np.float32),
                      rng.integers(0, CLASSES, n))
        build_images(windows_h5, images_h5, "gasf", size)
        folds = {"sig": load_fold(windows_h5, "predefined", "sig"),
                 "gaf": load_fold(windows_h5, "predefined", "gasf", images_h5)}
        data = {m: to_train_data(folds[m], device) for m in folds}
        teachers = {m: Teacher(build_model(ARCH, CHANNELS, CLASSES, folds[m].dims).eval().requires_grad_(False),
                               data[m].mean, data[m].std, m, ARCH, folds[m].class_names).to(device)
                    for m in folds}
        cached = {m: predict(t.model, t.normalize, data[m].train.x, 512, device).to(device)
                  for m, t in teachers.items()}
        settings = default_train_settings(epochs=1, batch_size=batch,
                                          precision="bf16" if device.type == "cuda" else "fp32")

        def student():
            torch.manual_seed(0)
            return build_model(ARCH, CHANNELS, CLASSES, 1).to(device)

        naive_student = student()
        optimizer = torch.optim.SGD(naive_student.parameters(), lr=settings.lr, momentum=settings.momentum,
                                    weight_decay=settings.weight_decay)
        loader = DataLoader(WindowsAndImages(windows_h5, images_h5), batch_size=batch, shuffle=True,
                            num_workers=args.workers)
        stats = {m: (data[m].mean, data[m].std) for m in data}
        naive = median_seconds(lambda: naive_epoch(naive_student, teachers, loader, optimizer, stats, device),
                               repeats, warmup=1, device=device)

        engine_student = student()
        loss = DistillationLoss("kd2", ALPHA, KD, cached)
        outputs = {k: folder / f"engine.{k}" for k in ("model", "metrics", "history")}
        engine = median_seconds(
            lambda: train(engine_student, data["sig"], settings, device, outputs, folder / "resume.pt",
                          "benchmark", loss_fn=loss), repeats, warmup=1, device=device)

    rows = [{"method": method, "device": str(device), "windows": n, "batch": batch,
             "workers": args.workers if method == "naive" else 0,
             "precision": "bf16" if method == "engine" and device.type == "cuda" else "float32",
             "epoch_s": round(seconds, 4), "samples_per_s": round(n / seconds, 1),
             "ratio_to_naive": round(naive / seconds, 2)}
            for method, seconds in (("naive", naive), ("engine", engine))]
    print_table(rows, {"method": "method", "device": "device", "precision": "precision",
                       "epoch_s": "epoch s", "samples_per_s": "samples/s", "ratio_to_naive": "engine/naive"})
    write_csv(rows, args.csv)
    return rows


if __name__ == "__main__":
    main()
