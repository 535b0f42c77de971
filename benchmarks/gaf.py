"""GASF images: pyts once per window, pyts on a whole batch, and gafkd's builder, against the
machine's write-bound limit; gafkd's GADF and quantum GAF builders beside its GASF.

    python benchmarks/gaf.py [--quick] [--series N] [--length L] [--size S] [--csv PATH]

Every method encodes the same N random float32 series of length L into S x S float32 GASF
images. "pyts per window" calls `GramianAngularField.fit_transform` on one series at a time, as
hand-written loops do (timed on the first 1,000 series); "pyts batch" calls it once on all N;
"gafkd" is `gafkd.images.gaf.gramian_angular_field` writing into a reused buffer, as
`build_images` streams its chunks ("gafkd, new array" allocates the output each call); "gafkd
GADF", "gafkd Q-GASF" and "gafkd Q-GADF" (gafkd.images.qgaf, exact, min-max scaling) the same way, and
`x_gafkd_time` is each one's median time over gafkd's GASF time; "pyts MTF batch" and "gafkd
MTF" (gafkd.images.mtf, the same images bit for bit) encode the series as Markov transition
fields. The
write-bound limit is the copy bandwidth (np.copyto between two arrays the size of all the
images, measured in the same run) divided by the bytes of one image: no encoder that writes its
output once can beat it. Medians of repeats; numba's JIT (pyts' and gafkd's) is warmed up first.
"""

import argparse
import sys
from pathlib import Path

import numba
import numpy as np
from pyts.image import GramianAngularField, MarkovTransitionField

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gafkd.images.gaf import gramian_angular_field  # noqa: E402
from gafkd.images.mtf import markov_transition_field  # noqa: E402
from gafkd.images.qgaf import quantum_gaf  # noqa: E402
from harness import median_seconds, print_table, write_csv  # noqa: E402


def copy_bandwidth(nbytes, repeats):
    source = np.ones(nbytes // 4, dtype=np.float32)
    target = np.zeros_like(source)
    seconds = median_seconds(lambda: np.copyto(target, source), repeats)
    return nbytes / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--series", type=int, default=20000)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--csv", default="benchmarks/results/gaf.csv")
    args = parser.parse_args(argv)
    n = 200 if args.quick else args.series
    repeats = 2 if args.quick else 5
    series = np.random.default_rng(0).normal(size=(n, args.length)).astype(np.float32)
    image_bytes = args.size * args.size * 4
    pyts = GramianAngularField(image_size=args.size)
    pyts.fit_transform(series[:10])

    per_window = series[:min(n, 50 if args.quick else 1000)]
    rates = {"pyts per window": len(per_window) / median_seconds(
        lambda: [pyts.fit_transform(row[None]) for row in per_window], max(1, repeats // 2))}
    reference = pyts.fit_transform(series)
    rates["pyts batch"] = n / median_seconds(lambda: pyts.fit_transform(series), max(1, repeats // 2))
    out = np.empty((n, args.size, args.size), dtype=np.float32)
    gramian_angular_field(series, args.size, out=out)
    rates["gafkd"] = n / median_seconds(lambda: gramian_angular_field(series, args.size, out=out), repeats)
    rates["gafkd, new array"] = n / median_seconds(lambda: gramian_angular_field(series, args.size), repeats)
    max_diff = float(np.abs(out - reference).max())
    gadf = np.empty_like(out)
    builders = {"gafkd GADF": lambda: gramian_angular_field(series, args.size, "gadf", out=gadf),
                "gafkd Q-GASF": lambda: quantum_gaf(series, args.size, "qgasf", out=gadf),
                "gafkd Q-GADF": lambda: quantum_gaf(series, args.size, "qgadf", out=gadf),
                "gafkd MTF": lambda: markov_transition_field(series, args.size, out=gadf)}
    for name, build in builders.items():
        build()
        rates[name] = n / median_seconds(build, repeats)
    mtf = MarkovTransitionField(image_size=args.size)
    rates["pyts MTF batch"] = n / median_seconds(lambda: mtf.fit_transform(series), max(1, repeats // 2))

    bandwidth = copy_bandwidth(n * image_bytes, repeats)
    limit = bandwidth / image_bytes
    rows = [{"method": method, "series": n, "length": args.length, "size": args.size,
             "threads": numba.get_num_threads(), "series_per_s": round(rate),
             "x_pyts_batch": round(rate / rates["pyts batch"], 2),
             "x_gafkd_time": round(rates["gafkd"] / rate, 2),
             "fraction_of_write_bound": round(rate / limit, 3)}
            for method, rate in rates.items()]
    rows.append({"method": "write-bound limit", "series": n, "length": args.length, "size": args.size,
                 "threads": 1, "series_per_s": round(limit),
                 "x_pyts_batch": round(limit / rates["pyts batch"], 2),
                 "x_gafkd_time": round(rates["gafkd"] / limit, 2), "fraction_of_write_bound": 1.0})

    print(f"{n} series of length {args.length} -> {args.size}x{args.size} float32 GASF; "
          f"copy bandwidth {bandwidth / 1e9:.2f} GB/s; gafkd vs pyts max abs diff {max_diff:.2e}")
    print_table(rows, {"method": "method", "series_per_s": "series/s", "x_pyts_batch": "x pyts batch",
                       "x_gafkd_time": "time / gafkd GASF", "fraction_of_write_bound": "of write-bound"})
    write_csv(rows, args.csv)
    return rows, max_diff


if __name__ == "__main__":
    main()
