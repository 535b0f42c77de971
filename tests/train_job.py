"""A small training run on synthetic signals, as a separate process (for kill/resume tests).

usage: python train_job.py OUT_DIR EPOCHS [SLEEP_PER_BATCH]
"""
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gafkd.train.folds import Split, TrainData  # noqa: E402
from gafkd.train.defaults import default_train_settings  # noqa: E402
from gafkd.train.engine import cross_entropy, train  # noqa: E402
from gafkd.train.models import build_model  # noqa: E402


def synthetic_data(n=192, channels=3, length=48, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    t = torch.linspace(0, 6.28, length)
    x = torch.sin(t[None, None, :] * (1 + y[:, None, None])) + 0.5 * torch.randn(n, channels, length, generator=g)
    parts = [Split(x[i::3].contiguous(), y[i::3].contiguous()) for i in range(3)]
    return TrainData(*parts, mean=torch.zeros(1, channels, 1), std=torch.ones(1, channels, 1),
                     num_classes=classes)


def run(out_dir, epochs, sleep_per_batch=0.0, lr=0.05, checkpoint_every=2):
    out_dir = Path(out_dir)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model("wrn10-1", 3, 4, dims=1)

    def slow_loss(logits, groups, targets, index, host_index):
        time.sleep(sleep_per_batch)
        return cross_entropy(logits, groups, targets, index)

    settings = default_train_settings(epochs=epochs, batch_size=16, lr=lr, seed=7, checkpoint_every=checkpoint_every)
    outputs = {k: out_dir / f"{k}.out" for k in ("model", "metrics", "history")}
    return train(model, synthetic_data(), settings, torch.device("cpu"), outputs,
                 out_dir / "resume.pt", run_key="synthetic", loss_fn=slow_loss)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    run(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
