"""The checkpoint train() keeps is the best-validation epoch, checked against values computed
here from what it wrote: history.csv, model.pt evaluated again by hand, scikit-learn's F1."""
import csv

import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score
from torch.nn import functional as F

from gafkd.train.checkpoint import load_checkpoint
from gafkd.train.folds import Split, TrainData
from gafkd.train.defaults import default_train_settings
from gafkd.train.engine import train
from gafkd.train.models import build_model

CLASSES, CHANNELS, LENGTH, ROWS = 4, 3, 32, 64
# Class c raises channel c (class 3 lowers all three): separable under noise of std 1.
CLASS_MEANS = 0.5 * torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, -1.0, -1.0]])
EPOCHS, BATCH = 6, 16
HONEST_EPOCHS = 3       # after them the loss pulls towards the labels (y + 1) mod 4, 20 times over


def make_split(seed, shift=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(ROWS) % CLASSES
    x = CLASS_MEANS[y][:, :, None] + torch.randn(ROWS, CHANNELS, LENGTH, generator=g)
    return Split(x, (y + shift) % CLASSES)


def fixture_data():
    """Train and validation splits with the true labels; the test split labelled (y + 1) mod 4,
    the labels the last epochs learn, so that an epoch picked on the test split is a late one."""
    return TrainData(make_split(1), make_split(2), make_split(3, shift=1),
                     mean=torch.zeros(1, CHANNELS, 1), std=torch.ones(1, CHANNELS, 1),
                     num_classes=CLASSES)


class TurningLoss:
    """Cross-entropy for HONEST_EPOCHS epochs, then 20 × cross-entropy against (y + 1) mod 4:
    validation accuracy rises, then collapses, so the best epoch is not the last."""

    def __init__(self):
        self.batches = 0

    def __call__(self, logits, groups, targets, index, host_index=None):
        self.batches += 1
        if self.batches > HONEST_EPOCHS * (ROWS // BATCH):
            return 20 * F.cross_entropy(logits, (targets + 1) % CLASSES)
        return F.cross_entropy(logits, targets)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("checkpoint")
    torch.manual_seed(0)
    model = build_model("wrn10-1", CHANNELS, CLASSES, dims=1)
    outputs = {"model": out / "model.pt", "metrics": out / "metrics.json", "history": out / "history.csv"}
    settings = default_train_settings(epochs=EPOCHS, batch_size=BATCH, lr=0.2, seed=7, lr_boundaries="fraction")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                    # tiny tensors: more threads only contend
    try:
        metrics = train(model, fixture_data(), settings, torch.device("cpu"), outputs,
                        out / "resume.pt", run_key="checkpoint choice", loss_fn=TurningLoss())
    finally:
        torch.set_num_threads(threads)
    with open(outputs["history"], newline="") as f:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return {"metrics": metrics, "history": history,
            "last_weights": {k: v.clone() for k, v in model.state_dict().items()},
            "checkpoint": load_checkpoint(outputs["model"], "model")}


def evaluate_by_hand(state_dict, split):
    """Accuracy, mean cross-entropy and predictions of the weights on a split (eval mode)."""
    model = build_model("wrn10-1", CHANNELS, CLASSES, dims=1)
    model.load_state_dict(state_dict)
    model.eval()
    with torch.no_grad():
        logits, _ = model(split.x)              # the data's mean is 0 and std 1
    predicted = logits.argmax(1)
    return {"accuracy": (predicted == split.y).double().mean().item(),
            "loss": F.cross_entropy(logits, split.y).item(), "predicted": predicted.numpy()}


def best_row(history, column):
    """The 1-based epoch of the highest `column` (ties: lowest validation loss, then earliest)."""
    return max(history, key=lambda row: (row[column], -row["val_loss"], -row["epoch"]))


def test_best_epoch_is_the_argmax_of_validation_accuracy(run):
    history, metrics = run["history"], run["metrics"]
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    best = best_row(history, "val_accuracy")
    # the fixture does what it is for: a best epoch before the last, another epoch best on test
    assert best["epoch"] < EPOCHS
    assert max(history, key=lambda row: row["test_accuracy"])["epoch"] != best["epoch"]
    assert best["val_accuracy"] >= 0.6                          # chance: 0.25
    assert metrics["best_epoch"] == best["epoch"] == run["checkpoint"]["epoch"]
    assert metrics["val_accuracy"] == best["val_accuracy"]
    assert metrics["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    lab = max(history, key=lambda row: (row["test_accuracy"], -row["epoch"]))   # earliest of ties
    assert metrics["optimistic_best_test_accuracy"]["epoch"] == lab["epoch"]
    assert metrics["optimistic_best_test_accuracy"]["accuracy"] == lab["test_accuracy"]


def test_saved_model_is_the_best_epoch_not_the_last(run):
    metrics, history, data = run["metrics"], run["history"], fixture_data()
    saved = evaluate_by_hand(run["checkpoint"]["state_dict"], data.val)
    assert saved["accuracy"] == metrics["val_accuracy"]
    assert saved["loss"] == pytest.approx(metrics["val_loss"], rel=1e-5)
    last = evaluate_by_hand(run["last_weights"], data.val)
    assert last["accuracy"] == history[-1]["val_accuracy"]
    assert last["loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-5)
    assert saved["accuracy"] > last["accuracy"]
    changed = [k for k, v in run["checkpoint"]["state_dict"].items()
               if v.is_floating_point() and not torch.equal(v, run["last_weights"][k])]
    assert "conv1.weight" in changed


def test_test_metrics_are_those_of_the_saved_model(run):
    metrics, data = run["metrics"], fixture_data()
    y = data.test.y.numpy()
    for weights, reported in ((run["checkpoint"]["state_dict"], metrics["test_at_best_val"]),
                              (run["last_weights"], metrics["test_at_last_epoch"])):
        by_hand = evaluate_by_hand(weights, data.test)
        assert reported["n"] == ROWS
        assert reported["accuracy"] == by_hand["accuracy"]
        assert reported["loss"] == pytest.approx(by_hand["loss"], rel=1e-5)
        assert reported["confusion"] == confusion_matrix(y, by_hand["predicted"],
                                                         labels=range(CLASSES)).tolist()
        assert reported["macro_f1"] == pytest.approx(f1_score(y, by_hand["predicted"], average="macro"),
                                                     abs=1e-12)
    best = run["history"][metrics["best_epoch"] - 1]
    assert metrics["test_at_best_val"]["accuracy"] == best["test_accuracy"]
    assert metrics["test_at_last_epoch"]["accuracy"] == run["history"][-1]["test_accuracy"]
