"""The training stage: a fold's windows or images -> a trained network and its records.

Owns the networks (models, packed), a fold's arrays and where they live (folds, memory, staging),
the devices and numerics (devices, numerics), the training loop and its exact resume (engine,
resume), checkpoints (checkpoint), the metrics and the files a run writes (metrics, run_record,
predictions).

May import: gafkd.train itself, gafkd.data, gafkd.images and the shared top-level modules.
Nothing from distill or report.
"""
