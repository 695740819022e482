"""Where the engine's helper processes run: off the engine's CPUs, and out of the desk's way."""

from __future__ import annotations

import os

__all__ = ["off_engine_cpus"]


def off_engine_cpus(pid: int) -> None:
    """Move helper process ``pid`` (the store's writer, the VaR helper) off the CPUs this
    process, the engine, is pinned to — it inherited them — and make it SCHED_BATCH: its
    wake-ups never preempt what runs on those other CPUs (a desk, ``helmdesk ctl``) on the
    spot; it runs as soon as the CPU has a moment. An engine that is not pinned leaves the
    helper where it is."""
    try:
        rest = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
        if rest:
            os.sched_setaffinity(pid, rest)
    except OSError:  # CPUs outside our cpuset, or the helper already gone: leave it
        pass
    try:
        os.sched_setscheduler(pid, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):  # not Linux, or the helper already gone
        pass
