"""Engine logging: a rotating file under the data directory, written by a listener thread.

The hot thread only puts records on a queue (``QueueHandler``); file I/O happens on the
listener thread, where it releases the GIL. A peer that sends garbage at line rate must not
turn into a log at line rate: each message template may log ``RateLimit.PER_S`` lines a
second, the rest are counted and summed up in one line when the next second opens (the
counters the engine logs at stop have every one).
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
from pathlib import Path

from engine.core.paths import log_dir

__all__ = ["setup_logging", "DeferredQueueHandler", "RateLimit"]

_FMT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class DeferredQueueHandler(logging.handlers.QueueHandler):
    """Queue the record as it is: formatting waits for the listener thread.

    The stock ``QueueHandler.prepare`` formats the message in the caller's thread (tens of µs
    of the hot thread's time for a kill switch line); the listener's handlers format anyway.
    Records never leave the process, so their arguments need no flattening.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class RateLimit(logging.Filter):
    """At most ``PER_S`` records a second per (logger, message template); what is held back
    is summed up, per template, by the first record of that template in a later second."""

    PER_S = 20

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[str, object], list] = {}  # key -> [second, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        sec = int(record.created)
        st = self._seen.get(key)
        if st is None:
            if len(self._seen) > 4096:  # templates are few; a flood of formatted ones is not
                self._seen.clear()
            self._seen[key] = [sec, 1, 0]
            return True
        if st[0] == sec:
            st[1] += 1
            if st[1] <= self.PER_S:
                return True
            st[2] += 1
            return False
        dropped = st[2]
        st[0], st[1], st[2] = sec, 1, 0
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this held back in the last second]"
        return True


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
    handler = DeferredQueueHandler(q)
    handler.addFilter(RateLimit())
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    listener.start()
    return path, listener
