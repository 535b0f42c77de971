"""Checkpoints: torch.save of a dict with a digest of its contents, checked when read.

A run's model.pt (save_model) holds, in this order:
    state_dict      the best-validation weights
    epoch           the 1-based epoch they are from
    mean, std       the per-channel input standardisation, broadcastable to a batch
    ...             the run's metadata: role (teacher/student), dataset, fold, arch, seed,
                    modality, dims, in_channels, class_names, windows_fingerprint, and the
                    role's own fields (teacher: images; student: method, teachers, alpha)
    digest          checkpoint_digest of everything above

Readers (read_model) check the digest, that the checkpoint is of the run they expect
(errors.check_identity) and that it was trained on the windows at hand (check_trained_on).
"""

import hashlib
from pathlib import Path

import torch

from gafkd.errors import REBUILD, InputError, check_identity, damaged, reason


def _digest_update(digest, value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous()
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(repr(key).encode())
            _digest_update(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            _digest_update(digest, item)
    else:
        digest.update(repr(value).encode())


def checkpoint_digest(state):
    """Hash of everything in a checkpoint but its digest (torch.load checks no checksum)."""
    digest = hashlib.blake2b(digest_size=16)
    _digest_update(digest, {k: v for k, v in state.items() if k != "digest"})
    return digest.hexdigest()


def save_checkpoint(state, path):
    """torch.save `state` with its digest (path: a temporary path of atomic_path)."""
    torch.save({**state, "digest": checkpoint_digest(state)}, path)


def load_checkpoint(path, what):
    """A checkpoint of save_checkpoint, checked against its digest; InputError naming the file if
    it is missing, damaged or carries no digest."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise damaged(path, what, "empty file" if path.stat().st_size == 0 else
                      f"not a readable checkpoint: {reason(exc)}") from None
    if not isinstance(state, dict) or "digest" not in state:
        raise InputError(f"{path}: {what} carries no checksum (written by an earlier version of "
                         f"gafkd); {REBUILD}")
    if state["digest"] != checkpoint_digest(state):
        raise damaged(path, what, "its contents do not match their checksum")
    return state


def save_model(state_dict, epoch, mean, std, metadata, path):
    """Write a run's model.pt (path: a temporary path of atomic_path)."""
    save_checkpoint({"state_dict": state_dict, "epoch": epoch, "mean": mean, "std": std,
                     **metadata}, path)


def check_trained_on(path, checkpoint, fingerprint, who, windows=None):
    """InputError naming `path` when the checkpoint's run (`who`, e.g. 'teacher') was trained on
    other windows than those of `fingerprint` (`windows`: their file, for the message)."""
    if checkpoint.get("windows_fingerprint") != fingerprint:
        than = f" than {windows}" if windows is not None else ""
        raise InputError(f"{path}: {who} was trained on other windows{than}; {REBUILD}")


def read_model(path, what, expected, fingerprint=None, who=None):
    """A model.pt, checked against its digest, the run it must hold (`expected`: metadata fields
    and their values) and, when `fingerprint` is given, the windows it must have been trained on
    (`who`: the run, for the message)."""
    checkpoint = load_checkpoint(path, what)
    check_identity(path, "a checkpoint", checkpoint, expected)
    if fingerprint is not None:
        check_trained_on(path, checkpoint, fingerprint, who)
    return checkpoint
