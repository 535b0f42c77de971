"""How wide the lab configs' packs train on a card: the widest pack the grid plans of each kind
(students, signal teachers per architecture), its measured training reserve as it computes on
CUDA, and the width gafkd.train.memory.pack_width_that_fits lets it train at on a card of
--card-gb with one job on it and with two (devices.jobs_per_gpu: 2).

    python benchmarks/pack_width.py [--card-gb 10] [--configs PATH ...] [--csv PATH]

The reserve is gafkd.train.memory.training_reserve of the pack on a CUDA device: the weights and
the activations measured on a CPU copy that computes as the GPU will (1-D packs as GEMMs), for
the config's batch and a 512-window evaluation batch; student packs keep their group outputs,
as similarity-preserving packs do (the larger reserve). A job's device memory is its share of the
card less the CUDA context (gafkd.train.memory.device_share_bytes) and the pack's weights; the
data then fit beside the reserve or stream from the host (memory_table.py). No GPU is needed.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import print_table, write_csv  # noqa: E402
from memory_table import PAMAP2_ROWS, dataset_classes, dataset_shape  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from gafkd import grid  # noqa: E402
from gafkd.config import check_config_file, fold_names  # noqa: E402
from gafkd.train.memory import device_share_bytes, pack_width_that_fits, training_reserve  # noqa: E402
from gafkd.train.packed import PackedWideResNet  # noqa: E402

CONFIGS = ("gene14_w500", "gene14_w1000", "pamap2_loso")
CUDA = torch.device("cuda", 0)


def widest_packs(config):
    """{(job, arch): the widest pack's width} the grid plans for the config."""
    folds = {dataset: fold_names(spec) for dataset, spec in config["datasets"].items()}
    widest = {}
    for job, packs in (("student pack", grid.student_packs(config, folds)),
                       ("signal teacher pack", grid.teacher_packs(config, folds))):
        for pack in packs:
            arch = pack.runs[0]["arch"]
            widest[job, arch] = max(widest.get((job, arch), 0), len(pack.runs))
    return widest


def rows_of_config(path, card_bytes):
    config = check_config_file(path)
    dataset = next(iter(config["datasets"].values()))
    _, channels, length = dataset_shape(dataset, PAMAP2_ROWS)
    classes = dataset_classes(dataset)
    batch = config["training"]["batch_size"]
    rows = []
    for (job, arch), width in widest_packs(config).items():
        pack = PackedWideResNet(arch, channels, classes, 1, width)
        pack.group_outputs = job == "student pack"
        reserve = training_reserve(pack, width, (channels, length), batch, CUDA)
        weights = sum(p.numel() * p.element_size() for p in pack.parameters())
        row = {"config": Path(path).stem, "job": job, "arch": arch, "planned_width": width,
               "reserve_bytes": reserve}
        for jobs, column in ((1, "width_one_job"), (2, "width_two_jobs")):
            budget = device_share_bytes(card_bytes, jobs) - weights
            row[column] = pack_width_that_fits(pack, reserve, (channels, length), batch, CUDA, budget=budget)
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card-gb", type=float, default=10.0)
    parser.add_argument("--configs", nargs="*", help=f"default: configs/{{{','.join(CONFIGS)}}}.yaml")
    parser.add_argument("--csv", default="benchmarks/results/pack_width.csv")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    paths = args.configs or [REPO / "configs" / f"{name}.yaml" for name in CONFIGS]
    rows = [row for path in paths for row in rows_of_config(path, int(args.card_gb * 1e9))]
    print_table(rows, {"config": "config", "job": "job", "arch": "arch", "planned_width": "planned",
                       "reserve_bytes": "reserve B", "width_one_job": "one job",
                       "width_two_jobs": "two jobs"})
    write_csv(rows, args.csv)


if __name__ == "__main__":
    main()
