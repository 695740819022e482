"""Engine logging: a rotating file under the data directory, written by a listener thread.

The hot thread only puts records on a queue (``QueueHandler``); file I/O happens on the
listener thread, where it releases the GIL.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
from pathlib import Path

from engine.core.paths import log_dir

__all__ = ["setup_logging", "DeferredQueueHandler"]

_FMT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class DeferredQueueHandler(logging.handlers.QueueHandler):
    """Queue the record as it is: formatting waits for the listener thread.

    The stock ``QueueHandler.prepare`` formats the message in the caller's thread (tens of µs
    of the hot thread's time for a kill switch line); the listener's handlers format anyway.
    Records never leave the process, so their arguments need no flattening.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def setup_logging(name: str, *, stderr_level: int = logging.WARNING) -> tuple[Path, logging.handlers.QueueListener]:
    """Log to ``<data>/logs/<name>.log`` (rotating) and warnings to stderr; return path, listener."""
    path = log_dir() / f"{name}.log"
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(_FMT))
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(stderr_level)
    err.setFormatter(logging.Formatter("helmdesk %(levelname)s: %(message)s"))
    q: queue.SimpleQueue = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, file_handler, err, respect_handler_level=True)
    root = logging.getLogger("helmdesk")
    root.handlers[:] = [DeferredQueueHandler(q)]
    root.setLevel(logging.INFO)
    root.propagate = False
    listener.start()
    return path, listener
