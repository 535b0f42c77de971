"""Logging of a pipeline job to its log file, and to a history that keeps every attempt.

Snakemake deletes a job's log before running it again, so the log of an interrupted or failed
attempt (its traceback included) would be lost; `<log>.attempts.log` beside it is not
Snakemake's and keeps every attempt, each after a header line.
"""

import contextlib
import logging
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

HEADER = "=== attempt"


def attempts_path(path):
    path = Path(path)
    return path.with_name(f"{path.stem}.attempts{path.suffix or '.log'}")


def _attempt_header(history):
    previous = 0
    if history.exists():
        previous = sum(line.startswith(HEADER) for line in history.read_text(errors="replace").splitlines())
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"{HEADER} {previous + 1}: started {started} on {platform.node()} (pid {os.getpid()}) ===\n"


@contextlib.contextmanager
def logged(path, level=logging.INFO):
    """Send gafkd's log records to `path` (this attempt) and append them to its attempts history;
    record any exception before it propagates."""
    history = attempts_path(path)
    history.parent.mkdir(parents=True, exist_ok=True)
    header = _attempt_header(history)
    with open(history, "a") as f:
        f.write(header)
    handlers = [logging.FileHandler(path, mode="w"), logging.FileHandler(history, mode="a")]
    handlers[0].stream.write(header)
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        yield logging.getLogger("gafkd")
    except Exception:
        logging.getLogger("gafkd").exception("job failed")
        raise
    finally:
        for handler in handlers:
            handler.flush()
