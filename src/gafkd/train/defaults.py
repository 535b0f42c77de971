"""The training recipe of the config schema's defaults, where no validated config is at hand
(tests, benchmarks); the training loop itself (gafkd.train.engine) never reads the config."""

from gafkd.config import training_defaults
from gafkd.train.engine import TrainSettings


def default_train_settings(**overrides):
    """A gafkd.train.engine.TrainSettings of the schema's defaults with `overrides` (tests, benchmarks)."""
    return TrainSettings(**{**training_defaults(), **overrides})
