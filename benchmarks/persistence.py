"""Persistence images of GENE-like windows: the lab's way (ripser and persim's PersImage, window
by window), gafkd.images.persistence (both recipes) and, for scale, the GASF builder.

    python benchmarks/persistence.py [--quick] [--windows N] [--length L] [--size S] [--lab-windows M] [--csv PATH]

The windows imitate one GENEActiv accelerometer axis in g at 100 Hz: a gravity offset in
[-0.5, 0.5], a movement oscillation of amplitude 0.1-0.6 at 0.5-3 Hz and sensor noise of 0.05
(float32, L samples, about 125 persistence pairs per 500-sample window survive the lab's cut).
"lab way" runs the notebook's steps on each of the first M windows (sparse lower-star matrix,
ripser, the lifetime cuts, PersImage.transform, division by the maximum); "gafkd lab" and
"gafkd clean" are `persistence_images` on all N windows writing into a reused buffer; "GASF" is
`gafkd.images.gaf.gramian_angular_field` at the same size. Rates are windows per second (medians of
repeats, numba's JIT warmed up first); the line above the table gives the largest difference
between "gafkd lab" and the lab's way on the M windows.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numba
import numpy as np
from persim import PersImage
from ripser import ripser
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gafkd.images.gaf import gramian_angular_field  # noqa: E402
from gafkd.images.persistence import BIRTH_RANGE, LIFETIME, SPREAD, persistence_images  # noqa: E402
from harness import median_seconds, print_table, write_csv  # noqa: E402


def gene_like_windows(n, length, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 100.0
    movement = rng.uniform(0.1, 0.6, (n, 1)) * np.sin(
        2 * np.pi * rng.uniform(0.5, 3.0, (n, 1)) * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    gravity = rng.uniform(-0.5, 0.5, (n, 1))
    return (gravity + movement + 0.05 * rng.normal(size=(n, length))).astype(np.float32)


def lab_way(x, imager):
    """The notebook's steps for one window channel."""
    n = len(x)
    rows = np.concatenate((np.arange(n - 1), np.arange(n)))
    cols = np.concatenate((np.arange(1, n), np.arange(n)))
    values = np.concatenate((np.maximum(x[:-1], x[1:]), x))
    matrix = sparse.coo_matrix((values, (rows, cols)), shape=(n, n)).tocsr()
    diagram = ripser(matrix, maxdim=0, distance_matrix=True)["dgms"][0]
    diagram = diagram[diagram[:, 1] - diagram[:, 0] > 1e-3]
    diagram = diagram[~np.isinf(diagram[:, 1])]
    diagram = diagram[diagram[:, 1] - diagram[:, 0] > LIFETIME]
    image = imager.transform(diagram)
    return image / np.max(image) if np.max(image) > 0 else image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--lab-windows", type=int, default=300)
    parser.add_argument("--csv", default="benchmarks/results/persistence.csv")
    args = parser.parse_args(argv)
    n = 200 if args.quick else args.windows
    m = min(n, 20 if args.quick else args.lab_windows)
    repeats = 2 if args.quick else 5
    series = gene_like_windows(n, args.length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # PersImage is deprecated
        imager = PersImage(pixels=[args.size, args.size], spread=SPREAD,
                           specs={"minBD": BIRTH_RANGE[0], "maxBD": BIRTH_RANGE[1]}, verbose=False)

    lab_images = []
    rates = {"lab way": m / median_seconds(
        lambda: lab_images.append([lab_way(x, imager) for x in series[:m]]), 1)}
    out = np.empty((n, args.size, args.size), dtype=np.float32)
    for recipe in ("lab", "clean"):
        persistence_images(series, args.size, recipe, out)
        rates[f"gafkd {recipe}"] = n / median_seconds(
            lambda: persistence_images(series, args.size, recipe, out), repeats)
    max_diff = float(np.abs(persistence_images(series[:m], args.size, "lab") - np.array(lab_images[0])).max())
    gaf = np.empty_like(out)
    gramian_angular_field(series, args.size, out=gaf)
    rates["GASF"] = n / median_seconds(lambda: gramian_angular_field(series, args.size, out=gaf), repeats)

    rows = [{"method": method, "windows": m if method == "lab way" else n, "length": args.length,
             "size": args.size, "threads": 1 if method == "lab way" else numba.get_num_threads(),
             "windows_per_s": round(rate, 1), "x_lab_way": round(rate / rates["lab way"], 2),
             "x_gasf": round(rate / rates["GASF"], 4)}
            for method, rate in rates.items()]
    print(f"{n} GENE-like windows of length {args.length} -> {args.size}x{args.size} float32 persistence "
          f"images; gafkd lab vs the lab's way on {m} windows: max abs diff {max_diff:.2e}")
    print_table(rows, {"method": "method", "windows": "windows", "threads": "threads",
                       "windows_per_s": "windows/s", "x_lab_way": "x lab way", "x_gasf": "x GASF"})
    write_csv(rows, args.csv)
    return rows, max_diff


if __name__ == "__main__":
    main()
