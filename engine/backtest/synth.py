"""A recorded day made up: the profile's simulated venues, written to the tick store.

For trying backtests without a recorded session, for the tests and for ``bench/backtest.py``:
``simulate_day`` runs ``engine.feeds.simvenues.SimVenues`` (seeded: the same arguments give
the same files) from the day's start for ``seconds`` of market time and records every event,
snapshots first, exactly as ``[feed] record = true`` records a live session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.core.events import EventBuffer
from engine.core.profile import Profile
from engine.feeds.tickstore import TickRecorder

__all__ = ["simulate_day"]


def simulate_day(profile: Profile, root: str | Path, day: str, seconds: float, *,
                 venues: Sequence[str] | None = None, start: str = "09:30:00",
                 rate_hz: float | None = None,
                 progress: Callable[[float], None] | None = None) -> int:
    """Record ``seconds`` of the profile's simulated venues (``[feed] venues``, or
    ``venues``) on ``day`` (UTC, from ``start``) into the tick store at ``root``; return how
    many records were written. ``rate_hz``: events per second per instrument and venue
    (default: each instrument's ``update_hz``)."""
    from engine.node import sim_source

    names = list(venues or profile.feed.venues)
    t0 = int(dt.datetime.fromisoformat(f"{day}T{start}+00:00").timestamp()) * 1_000_000_000
    if rate_hz is not None:
        import dataclasses

        profile = dataclasses.replace(profile, instruments=tuple(
            dataclasses.replace(i, update_hz=rate_hz) for i in profile.instruments))
    src = sim_source(profile, names, t0)
    rec = TickRecorder(root, names, profile.instruments, thread=False)
    buf = EventBuffer(1 << 16)
    end = t0 + int(seconds * 1e9)
    step = 50_000_000  # 50 ms of market time a call
    n = src.start(t0, buf)
    rec.record(buf.view())
    buf.clear()
    t = t0
    try:
        while t < end:
            t = min(t + step, end)
            while True:
                n += src.step(t, buf)
                if buf.n:
                    rec.record(buf.view())
                full = buf.full
                buf.clear()
                if not full:
                    break
            if progress is not None:
                progress((t - t0) / (end - t0))
    finally:
        rec.close()
    return n

