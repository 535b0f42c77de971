"""Write outputs under a temporary name and rename them into place only on success."""

import contextlib
import errno
import os
from pathlib import Path

from gafkd.errors import InputError, reason


def _disk_full(exc):
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc)
    # HDF5 reports a failed flush as RuntimeError with the errno in its text; torch.save as
    # "unexpected pos" or "PytorchStreamWriter failed writing".
    return any(sign in text for sign in ("No space left on device", "errno = 28", "unexpected pos",
                                         "PytorchStreamWriter failed writing"))


def _fsync(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_paths(*paths):
    """Yield temporary paths beside `paths`; on success sync them to disk and rename them all into
    place, on failure delete them.

    A reader never sees a half-written file, a failed job leaves nothing behind, and a write that
    fails for want of space raises InputError saying so.
    """
    paths = [Path(p) for p in paths]
    tmps = []
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmps.append(path.with_name(f".{path.name}.tmp-{os.getpid()}"))
    try:
        try:
            yield tmps
            for tmp in tmps:
                _fsync(tmp)
        except Exception as exc:
            if _disk_full(exc):
                targets = ", ".join(map(str, paths))
                raise InputError(f"{targets}: cannot write {'them' if len(paths) > 1 else 'it'}, the disk is "
                                 f"full ({reason(exc)}); free some space and run again") from None
            raise
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
        for directory in {path.parent for path in paths}:
            _fsync(directory, directory=True)
    finally:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_path(path):
    """atomic_paths of one path."""
    with atomic_paths(path) as (tmp,):
        yield tmp
