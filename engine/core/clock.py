"""Clocks: the only place engine logic reads time from.

``LiveClock`` reads the OS; ``SimClock`` is set by a backtest or a test. Both give integer
nanoseconds: ``mono_ns`` for intervals and deadlines (CLOCK_MONOTONIC is system-wide on Linux,
so heartbeats compare across processes), ``wall_ns`` for timestamps people read.
"""

from __future__ import annotations

import time

__all__ = ["Clock", "LiveClock", "SimClock"]


class Clock:
    """Interface: ``mono_ns()`` and ``wall_ns()``."""

    __slots__ = ()

    def mono_ns(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def wall_ns(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class LiveClock(Clock):
    __slots__ = ("mono_ns", "wall_ns")

    def __init__(self) -> None:
        # bound builtins: a call costs what time.monotonic_ns costs, nothing more
        self.mono_ns = time.monotonic_ns
        self.wall_ns = time.time_ns


class SimClock(Clock):
    """A clock that moves only when told to."""

    __slots__ = ("_mono", "_wall_offset")

    def __init__(self, start_wall_ns: int = 1_700_000_000_000_000_000) -> None:
        self._mono = 0
        self._wall_offset = start_wall_ns

    def mono_ns(self) -> int:
        return self._mono

    def wall_ns(self) -> int:
        return self._wall_offset + self._mono

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError(f"a clock cannot go back ({ns} ns)")
        self._mono += ns

    def set(self, mono_ns: int) -> None:
        if mono_ns < self._mono:
            raise ValueError(f"a clock cannot go back (from {self._mono} to {mono_ns} ns)")
        self._mono = mono_ns
