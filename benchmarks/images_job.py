"""The images job as a whole: windows.h5 -> images_gasf64.h5 at GENE scale, stage by stage,
against the disk's sequential write bandwidth; and the image cache's chunk layouts compared.

    python benchmarks/images_job.py [--quick] [--windows N] [--length L] [--size S]
                                    [--threads T] [--repeats R] [--layouts R1,R2,...]
                                    [--dir DIR] [--csv PATH]

A synthetic windows.h5 of N windows x 3 channels x L samples (default 32,000 x 3 x 500, GENE-14
with 500-sample windows) is written in windows.h5's layout (checked datasets X, y, subject, a
fold, a sealed attribute digest) and `gafkd.images.cache.build_images` runs on it as the images rule
runs it (threads=T, default 4 as the rule asks; the encoder uses at most the machine's cores).
The job is timed whole and split into its stages by wrapping the functions it calls, so the
timed code is the job's own:

    read windows   CheckedH5.array("X"): windows.h5 blocks read and checksum-verified
    encode         gafkd.images.encode.encode (numba, parallel over series)
    float16        np.copyto of the float32 block into the float16 buffer
    write          the HDF5 dataset write (fletcher32 on every chunk), into the page cache
    fingerprint    hashing X, y and subject against windows.h5's fingerprint
    fsync          atomic_path's sync of the finished file to disk
    other          opening, attributes, seal, closing, renaming

The windows file is dropped from the page cache before every run (posix_fadvise), as it would
be long after the windows job. The disk bandwidth is measured in the same run: a file of the
output's size written with os.write in 4 MiB blocks ("buffered": the write calls alone, into
the page cache; "to disk": including fsync). The write stage is compared with the buffered
figure ("x disk": the stage's MB/s over the disk's) and write + fsync with the to-disk one.

Chunk layouts: the job is run once per layout (R images x all channels per chunk, so a chunk of
R x 3 x 64 x 64 float16) in every round, then each finished cache is read whole with
`read_images`, as a teacher job reads it, from the page cache ("warm"), and again after
dropping it from the page cache ("cold"). Medians over the rounds (--repeats). Temporary files
(windows.h5 and one cache per layout) go to --dir (default: a temporary directory).
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
import gafkd.atomic  # noqa: E402
import gafkd.images.encode  # noqa: E402
import gafkd.images.cache  # noqa: E402
from gafkd.h5checked import CheckedH5, create_h5, seal, write_checked  # noqa: E402
from gafkd.images.cache import build_images, images_per_chunk, read_images  # noqa: E402
from gafkd.data.windows import fingerprint  # noqa: E402
from harness import print_table, write_csv  # noqa: E402

STAGES = ("read windows", "encode", "float16", "write", "fingerprint", "fsync", "other")
COLUMNS = ("table", "name", "seconds", "cpu_s", "share", "mb_per_s", "vs_disk", "chunk_rows", "chunk_mb",
           "write_s", "write_cpu_s", "write_fsync_s", "read_warm_s", "read_warm_cpu_s", "read_cold_s",
           "read_mb_per_s")
BLOCK = 4 << 20


def write_windows(path, n, channels, length):
    """A windows.h5 of random signals in the windows writer's layout (gafkd.data.windows)."""
    rng = np.random.default_rng(0)
    X = np.empty((n, channels, length), dtype=np.float32)
    for start in range(0, n, 4096):
        X[start:start + 4096] = rng.standard_normal(X[start:start + 4096].shape, dtype=np.float32)
    y = (np.arange(n) % 14).astype(np.int64)
    subject = (np.arange(n) * 29 // max(1, n)).astype(np.int64)
    split = np.zeros(n, dtype=np.int8)
    split[n * 7 // 10:n * 85 // 100] = 1
    split[n * 85 // 100:] = 2
    with create_h5(path) as f:
        write_checked(f, "X", X)
        write_checked(f, "y", y)
        write_checked(f, "subject", subject)
        group = f.create_group("folds/holdout")
        write_checked(group, "split", split)
        write_checked(group, "mean", X[split == 0].mean(axis=(0, 2)))
        write_checked(group, "std", X[split == 0].std(axis=(0, 2)))
        for key in ("val_subjects", "test_subjects", "val_missing_classes"):
            group.attrs[key] = "[]"
        f.attrs.update({
            "dataset": "synthetic", "source": "synthetic",
            "class_names": json.dumps([f"class {c}" for c in range(14)]),
            "channel_names": json.dumps(["x", "y", "z"][:channels] + [f"c{c}" for c in range(3, channels)]),
            "sampling_rate_hz": 100.0, "split": json.dumps({"kind": "holdout"}), "standardize": "channel",
            "fold_names": json.dumps(["holdout"]), "counts": "{}",
            "fingerprint": fingerprint(X, y, subject),
        })
        seal(f)
    return X.nbytes


def drop_cache(path):
    """Evict a file's (clean) pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def disk_bandwidth(folder, nbytes):
    """(buffered, to disk) bytes/s of writing a new file of `nbytes` sequentially with os.write."""
    block = memoryview(np.random.default_rng(1).integers(0, 256, BLOCK, dtype=np.uint8).tobytes())
    path = Path(folder) / "bandwidth.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        start = time.perf_counter()
        left = nbytes
        while left > 0:
            left -= os.write(fd, block[:min(left, BLOCK)])
        written = time.perf_counter()
        os.fsync(fd)
        done = time.perf_counter()
    finally:
        os.close(fd)
        path.unlink()
    return nbytes / (written - start), nbytes / (done - start)


@contextlib.contextmanager
def clocked(times, stage):
    """Add the wall seconds of the block to times[stage], its CPU seconds to times[stage + ' cpu']."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        times[stage] += time.perf_counter() - wall
        times[f"{stage} cpu"] += time.process_time() - cpu


class TimedDataset:
    """An h5py dataset whose writes are timed."""

    def __init__(self, dataset, times):
        self._dataset, self._times = dataset, times

    def __setitem__(self, key, value):
        with clocked(self._times, "write"):
            self._dataset[key] = value

    def __getattr__(self, name):
        return getattr(self._dataset, name)


@contextlib.contextmanager
def timed_stages(times):
    """Time the images job's stages into `times` while it runs."""
    def timer(stage, function, when=lambda *a, **k: True):
        def wrapped(*args, **kwargs):
            if not when(*args, **kwargs):
                return function(*args, **kwargs)
            with clocked(times, stage):
                return function(*args, **kwargs)
        return wrapped

    real_fingerprint = gafkd.images.cache.fingerprint

    def timed_fingerprint(X, y, subject):
        # The job encodes and writes each block as the fingerprint pulls it: hashing is the
        # fingerprint's time less the time spent producing the blocks.
        producing = defaultdict(float)

        def blocks():
            iterator = iter(X)
            while True:
                with clocked(producing, "blocks"):
                    block = next(iterator, None)
                if block is None:
                    return
                yield block

        with clocked(times, "fingerprint"):
            found = real_fingerprint(blocks(), y, subject)
        times["fingerprint"] -= producing["blocks"]
        times["fingerprint cpu"] -= producing["blocks cpu"]
        return found

    real_create = gafkd.images.cache.create_checked

    def create(*args, **kwargs):
        return TimedDataset(real_create(*args, **kwargs), times)

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(
            CheckedH5, "array", timer("read windows", CheckedH5.array, lambda self, name, *a: name == "X")))
        stack.enter_context(mock.patch.object(gafkd.images.encode, "encode", timer("encode", gafkd.images.encode.encode)))
        stack.enter_context(mock.patch.object(np, "copyto", timer("float16", np.copyto)))
        stack.enter_context(mock.patch.object(gafkd.images.cache, "create_checked", create))
        stack.enter_context(mock.patch.object(gafkd.images.cache, "fingerprint", timed_fingerprint))
        stack.enter_context(mock.patch.object(gafkd.atomic, "_fsync", timer("fsync", gafkd.atomic._fsync)))
        yield


def run_job(windows, out, size, threads, chunk_images=None):
    """One images job: {stage: seconds} with 'total', and the chunk shape it wrote."""
    drop_cache(windows)
    times = defaultdict(float)
    with timed_stages(times), clocked(times, "total"):
        build_images(windows, out, method="gasf", size=size, threads=threads, chunk_images=chunk_images)
    for suffix in ("", " cpu"):
        times[f"other{suffix}"] = times[f"total{suffix}"] - sum(times[s + suffix] for s in STAGES[:-1])
    with CheckedH5(out, "image cache") as f:
        chunks = f.file["images"].chunks
    return dict(times), chunks


def read_whole(out, windows_fingerprint, cold):
    """{'read': wall seconds, 'read cpu': CPU seconds} of reading the cache as a teacher job does."""
    if cold:
        drop_cache(out)
    times = defaultdict(float)
    with clocked(times, "read"):
        images = read_images(out, windows_fingerprint, {"method": "gasf"})
    del images
    return times


def median_of(runs, key):
    return statistics.median(run[key] for run in runs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--windows", type=int, default=32000)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="the images rule's threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layouts", default="42,256,1024",
                        help="images per chunk to compare with build_images' default layout")
    parser.add_argument("--dir", default=None, help="folder for the temporary files")
    parser.add_argument("--csv", default="benchmarks/results/images_job.csv")
    args = parser.parse_args(argv)
    if args.quick:
        args.windows, args.length, args.size, args.repeats, args.layouts = 300, 64, 16, 1, "8,300"
    layouts = [int(r) for r in args.layouts.split(",") if r]

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="images_job-") as folder:
        windows = Path(folder) / "windows.h5"
        windows_bytes = write_windows(windows, args.windows, args.channels, args.length)
        with CheckedH5(windows, "windows file") as f:
            windows_fingerprint = f.attrs["fingerprint"]
        image_bytes = args.windows * args.channels * args.size * args.size * 2
        warm_up = Path(folder) / "warm-up.h5"           # numba's JIT compiled before any timing
        build_images(windows, warm_up, size=args.size, threads=args.threads)
        warm_up.unlink()
        default_rows = min(images_per_chunk(args.channels, args.size), args.windows, 1024)
        layouts = [None] + [r for r in dict.fromkeys(layouts) if r != default_rows]
        # Rounds over every layout, so that a change of load on the machine hits them alike.
        bandwidths, results = [], {layout: ([], [], []) for layout in layouts}
        outputs = {layout: Path(folder) / f"images-{layout or 'default'}.h5" for layout in layouts}
        for _ in range(args.repeats):
            bandwidths.append(disk_bandwidth(folder, image_bytes))
            for layout in layouts:
                times, chunks = run_job(windows, outputs[layout], args.size, args.threads, layout)
                results[layout][0].append({**times, "chunks": chunks})
            # Read once every layout's cache is written and synced, each in turn.
            for layout in layouts:
                results[layout][1].append(read_whole(outputs[layout], windows_fingerprint, cold=False))
            for layout in layouts:
                results[layout][2].append(read_whole(outputs[layout], windows_fingerprint, cold=True))
        output_bytes = outputs[None].stat().st_size
        buffered = statistics.median(b[0] for b in bandwidths)
        to_disk = statistics.median(b[1] for b in bandwidths)

    runs = results[None][0]
    default_chunks = runs[0]["chunks"]
    blank = dict.fromkeys(COLUMNS, "")
    layout_rows = []
    for layout, (jobs, warm, cold) in results.items():
        chunks = jobs[0]["chunks"]
        layout_rows.append({
            **blank, "table": "layout", "name": f"{chunks[0]} images x {chunks[1]} channels"
                                                 + (" (build_images)" if layout is None else ""),
            "seconds": median_of(jobs, "total"), "cpu_s": median_of(jobs, "total cpu"),
            "chunk_rows": chunks[0], "chunk_mb": round(int(np.prod(chunks)) * 2 / 1e6, 3),
            "write_s": median_of(jobs, "write"), "write_cpu_s": median_of(jobs, "write cpu"),
            "write_fsync_s": statistics.median(j["write"] + j["fsync"] for j in jobs),
            "read_warm_s": median_of(warm, "read"), "read_warm_cpu_s": median_of(warm, "read cpu"),
            "read_cold_s": median_of(cold, "read"),
            "read_mb_per_s": round(image_bytes / 1e6 / median_of(warm, "read")),
        })

    total = median_of(runs, "total")
    moved = {"read windows": windows_bytes, "encode": image_bytes * 2, "float16": image_bytes,
             "write": image_bytes, "fingerprint": windows_bytes, "fsync": image_bytes}
    rows = []
    for stage in STAGES + ("total",):
        seconds = median_of(runs, stage)
        rows.append({
            **blank, "table": "stage", "name": stage, "seconds": seconds,
            "cpu_s": median_of(runs, f"{stage} cpu"), "share": seconds / total,
            "mb_per_s": round(moved[stage] / 1e6 / seconds) if stage in moved and seconds > 0 else "",
            "vs_disk": moved[stage] / seconds / buffered if stage == "write" else "",
        })
    write_fsync = statistics.median(run["write"] + run["fsync"] for run in runs)
    rows.append({**blank, "table": "stage", "name": "write + fsync", "seconds": write_fsync,
                 "cpu_s": statistics.median(run["write cpu"] + run["fsync cpu"] for run in runs),
                 "share": write_fsync / total, "mb_per_s": round(image_bytes / 1e6 / write_fsync),
                 "vs_disk": image_bytes / write_fsync / to_disk})
    for name, rate in (("disk: os.write, buffered", buffered), ("disk: os.write + fsync", to_disk)):
        rows.append({**blank, "table": "disk", "name": name, "seconds": image_bytes / rate,
                     "mb_per_s": round(rate / 1e6), "vs_disk": 1.0})
    for row in rows + layout_rows:
        row.update({k: round(v, 3) for k, v in row.items() if isinstance(v, float)})

    print(f"{args.windows} windows x {args.channels} x {args.length} -> {args.size}x{args.size} "
          f"float16 GASF, threads={args.threads}: output {output_bytes / 1e6:.1f} MB "
          f"(images {image_bytes / 1e6:.1f} MB), default chunk {default_chunks}; "
          f"disk {buffered / 1e6:.0f} MB/s buffered, {to_disk / 1e6:.0f} MB/s with fsync; "
          f"medians of {args.repeats}")
    print_table(rows, {"name": "stage", "seconds": "seconds", "cpu_s": "CPU s", "share": "share",
                       "mb_per_s": "MB/s", "vs_disk": "x disk"})
    print()
    print_table(layout_rows, {"name": "chunk", "chunk_mb": "MB/chunk", "seconds": "job s",
                              "write_s": "write s", "write_cpu_s": "write CPU s",
                              "write_fsync_s": "write+fsync s", "read_warm_s": "read warm s",
                              "read_warm_cpu_s": "read warm CPU s", "read_cold_s": "read cold s"})
    rows += layout_rows
    for row in rows:
        row.update(windows=args.windows, length=args.length, size=args.size, threads=args.threads,
                   output_mb=round(output_bytes / 1e6, 1))
    write_csv(rows, args.csv)
    return rows


if __name__ == "__main__":
    main()
