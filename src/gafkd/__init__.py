"""gafkd: cross-modal knowledge distillation on wearable-sensor data."""

__version__ = "0.1.0"
