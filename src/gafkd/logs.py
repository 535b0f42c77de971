"""Logging of a pipeline job to its log file."""

import contextlib
import logging


@contextlib.contextmanager
def logged(path, level=logging.INFO):
    """Send gafkd's log records to `path`; record any exception before it propagates."""
    handlers = [logging.FileHandler(path, mode="w")]
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
