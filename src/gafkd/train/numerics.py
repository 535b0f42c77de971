"""A job's numerics: the precision of `training.precision` (fp32, tf32 or bf16) and, unless
`training.deterministic` is false, deterministic kernels only, so that a rerun on the same device
gives the same bits (use_numerics, fixed before the first CUDA call); the settings in force, for
provenance (numerics_record)."""

import contextlib
import logging
import os

import torch
import torch.utils.deterministic

from gafkd.errors import ConfigError, GafkdError

log = logging.getLogger(__name__)

CUBLAS_WORKSPACE_CONFIG = ":4096:8"       # what deterministic cuBLAS needs (CUDA >= 10.2)
PRECISIONS = ("fp32", "tf32", "bf16")
DETERMINISTIC_WORKSPACES = (":4096:8", ":16:8")   # the CUBLAS_WORKSPACE_CONFIG values that make cuBLAS deterministic
NONDETERMINISTIC_OP = " does not have a deterministic implementation"
_numerics = {"precision": None, "deterministic": None}      # what use_numerics set in this process


class NondeterministicOpError(GafkdError):
    """An op has no deterministic kernel on this device, and the run must be deterministic."""


def use_numerics(precision="tf32", deterministic=True):
    """Fix a job's numerics before its first CUDA operation (training.precision,
    training.deterministic). fp32: full float32 everywhere; tf32: TF32 convolutions and matmuls
    (float32 storage, 10-bit mantissa products) on CUDA; bf16: bfloat16 autocast on CUDA with
    float32 weights, losses and Gram maps (gafkd.train.engine), no TF32. cuDNN's autotuner is never on:
    its choice is neither fixed nor recorded. `deterministic` makes every op use a deterministic
    kernel and an op without one stop the run (deterministic_ops names it); cuBLAS reads
    CUBLAS_WORKSPACE_CONFIG when it starts, so a value inherited from the environment that would
    make it nondeterministic is replaced."""
    if precision not in PRECISIONS:
        raise ConfigError(f"training.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if deterministic and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in DETERMINISTIC_WORKSPACES:
        if "CUBLAS_WORKSPACE_CONFIG" in os.environ:
            log.warning("CUBLAS_WORKSPACE_CONFIG=%s makes cuBLAS nondeterministic: using %s "
                        "(training.deterministic)", os.environ["CUBLAS_WORKSPACE_CONFIG"],
                        CUBLAS_WORKSPACE_CONFIG)
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = bool(deterministic)
    torch.use_deterministic_algorithms(bool(deterministic))
    torch.utils.deterministic.fill_uninitialized_memory = False     # a debugging aid, slow on big buffers
    _numerics.update(precision=precision, deterministic=bool(deterministic))


@contextlib.contextmanager
def deterministic_ops():
    """Turn torch's error for an op without a deterministic kernel into one that names the op,
    the device and the setting that allows it."""
    try:
        yield
    except RuntimeError as error:
        text = str(error)
        if NONDETERMINISTIC_OP not in text:
            raise
        op = text.split(NONDETERMINISTIC_OP)[0].split()[-1]
        raise NondeterministicOpError(
            f"{op} has no deterministic kernel on this device, and every run is deterministic "
            f"(training.deterministic: true). Set training.deterministic: false to allow it (reruns "
            f"may then differ in the last digits), or run on another device") from None


def numerics_record():
    """The numerics settings in force, for provenance."""
    return {**_numerics, "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
