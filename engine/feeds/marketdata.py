"""The engine's market data: feed handlers → one batch of MD_EVENT → books → desks and disk.

``MarketData`` is owned by the engine's hot thread. Whatever the source, normalized records
land in one preallocated ``EventBuffer``; ``flush()`` (called once per loop turn, or when the
buffer fills) applies the batch to the per-venue and consolidated books (``BookSet``, a numba
kernel), hands it to the tick recorder if the profile records, counts it per venue, and notes
which instruments changed so the engine publishes their consolidated books.

Sources (``[feed] kind`` in the profile):

- ``venues``: the books of the engine's FIX venues (``[[venues]]``), from the market data the
  order sessions subscribe to. ``on_fix`` takes each 35=W/X/Y a session delivers; the
  session's ``FixMdBooks`` (``engine.feeds.fixmd``) keeps the subscriptions and finds gaps
  (RptSeq), and a gap it finds becomes a STATUS_GAP record here, so the venue's book of that
  instrument leaves the consolidated book until the fresh snapshot has rebuilt it.
- ``simvenues``: ``engine.feeds.simvenues.SimVenues``, several simulated venues quoting the
  instruments with cointegrated pairs, stepped on the clock; its batches pass through
  ``FeedIntegrity`` (sequence gaps → STATUS_GAP and a fresh snapshot of that book,
  duplicates and bad records dropped and counted) before the books.
- ``replay``: a recorded day of the tick store, played at its recorded pace (``speed``).

Health per venue (``health``, the shared-memory FEED rows): events and the rate over the
last second, gaps, duplicates, rejects (the handler's and the books'), how many of its books
are stale, and silences (no record for ``silence_ns`` marks the venue stale; ``silence_ns`` may
be one figure or one per venue).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from engine.book.books import ST_EXCLUDED, BookSet, apply_batch
from engine.core.events import (
    F_LAST,
    MD_EVENT,
    STATUS,
    STATUS_GAP,
    STATUS_STALE,
    EventBuffer,
)
from engine.core.profile import InstrumentConfig
from engine.feeds.normalize import FixMdNormalizer
from engine.ipc.layout import FEED_DTYPE, MAX_VENUES

__all__ = ["MarketData"]

log = logging.getLogger("helmdesk.marketdata")

_PROBLEMS = ("garbled", "invalid", "unknown_symbol", "missing_field", "bad_action", "bad_price",
             "off_tick", "bad_size", "bad_level", "bad_seq", "bad_group", "bad_snapshot",
             "buffer_full", "internal_error", "rejects")


class MarketData:
    def __init__(self, venues: Sequence[str], instruments: Sequence[InstrumentConfig], *,
                 silence_ns: int | Sequence[int] = 2_000_000_000, recorder=None,
                 capacity: int = 8192,
                 liveness=None) -> None:
        if not venues:
            raise ValueError("market data needs at least one venue")
        if len(venues) > MAX_VENUES:
            raise ValueError(f"at most {MAX_VENUES} feed venues, was {len(venues)}")
        self.venues = list(venues)
        self.venue_ids = {name: k for k, name in enumerate(venues)}
        self.instruments = list(instruments)
        self.index = {ins.symbol: i for i, ins in enumerate(instruments)}
        self.ticks = [ins.tick for ins in instruments]
        self.books = BookSet(len(venues), len(instruments))
        self.buf = EventBuffer(capacity)
        self.recorder = recorder
        self.silence_ns = (list(silence_ns) if isinstance(silence_ns, (list, tuple))
                           else [silence_ns] * len(venues))
        table = {ins.symbol: (i, ins.tick) for i, ins in enumerate(instruments)}
        self.normalizers = [FixMdNormalizer(k, name, table) for k, name in enumerate(venues)]
        self.changed: set[int] = set()
        n = len(venues)
        self.events = np.zeros(n, dtype=np.int64)
        self.last_recv_ns = np.zeros(n, dtype=np.int64)
        self.gaps = [0] * n
        self.duplicates = [0] * n
        self.silences = [0] * n
        self.silent = [False] * n
        self._window_start = 0
        self._window_events = np.zeros(n, dtype=np.int64)
        self._rate = np.zeros(n, dtype=np.float64)
        self.health = np.zeros(MAX_VENUES, dtype=FEED_DTYPE)
        for k, name in enumerate(venues):
            self.health["venue"][k] = name.encode()[:8]
        self._depth_out = np.zeros((2, 3, self.books.depth), dtype=np.int64)
        self.replay: _Replay | None = None
        self._replay_source: tuple[np.ndarray, float] | None = None
        self.sim = None  # SimVenues
        self.integrity = None  # FeedIntegrity, for the simulated venues
        #: liveness(k) -> when venue k last sent anything (heartbeats too), 0 if unknown:
        #: a quiet book is not a silent venue
        self.liveness = liveness

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernels now, at start-up: a first call in
        the loop would stall it for seconds on a fresh install."""
        empty = np.zeros(0, dtype=MD_EVENT)
        apply_batch(self.books, empty)
        if self.integrity is not None:
            self.integrity.filter(empty, 0)

    # -- sources ----------------------------------------------------------------------------
    def on_fix(self, venue: str, m, recv_ns: int, fixmd=None) -> None:
        """One market data message (35=W/X/Y) from ``venue``'s session. ``fixmd``: that
        session's ``FixMdBooks``, already fed this message: a symbol it now calls stale (a
        gap, a bad entry) becomes a STATUS_GAP record after the message's own."""
        k = self.venue_ids.get(venue)
        if k is None:
            return
        if m is None:  # the session dropped: every book of the venue is stale
            for i in range(len(self.instruments)):
                self._status(k, i, STATUS_STALE, recv_ns)
            return
        buf = self.buf
        if buf.capacity - buf.n < len(m.raw) // 6 + 4:
            self.flush()
        self.normalizers[k].on_message(m, recv_ns, buf)
        if fixmd is not None:
            c = fixmd.counters
            if c["gaps"] != self.gaps[k] or c["duplicates"] != self.duplicates[k]:
                self.gaps[k], self.duplicates[k] = c["gaps"], c["duplicates"]
                for sym in fixmd.books:
                    if fixmd.stale(sym) and sym in self.index:
                        self._status(k, self.index[sym], STATUS_GAP, recv_ns)

    def _status(self, venue: int, instrument: int, code: int, recv_ns: int) -> None:
        buf = self.buf
        if buf.full:
            self.flush()
        r = buf.rec[buf.n]
        r["kind"], r["venue"], r["instrument"], r["action"] = STATUS, venue, instrument, code
        r["flags"], r["recv_ns"], r["seq"], r["price"], r["size"] = F_LAST, recv_ns, 0, 0, 0
        r["side"] = r["level"] = 0
        buf.n += 1

    def use_sim(self, sim, integrity) -> None:
        """Simulated venues (``SimVenues``) through ``integrity`` (``FeedIntegrity``), from
        ``start`` on."""
        self.sim = sim
        self.integrity = integrity

    def use_replay(self, records: np.ndarray, speed: float = 1.0) -> None:
        """Play ``records`` (a merged tick-store day, this engine's venue and instrument ids)
        at their recorded pace times ``speed``, from ``start`` on."""
        self._replay_source = (records, speed)

    def start(self, now_ns: int) -> None:
        """The clock-driven sources begin now: the simulated venues' books from a snapshot of
        each (and a first step, which compiles their kernels outside the loop), a replay's
        clock."""
        if self.sim is not None:
            self._apply(self.integrity.filter(self.sim.snapshot(now_ns), now_ns))
            self._step_sim(now_ns)
        if self._replay_source is not None:
            records, speed = self._replay_source
            self.replay = _Replay(records, now_ns, speed)
            self._replay_source = None

    def _step_sim(self, now_ns: int) -> int:
        sim = self.sim
        if now_ns < sim.next_due_ns:
            return 0
        buf = self.buf
        total = 0
        while True:
            buf.clear()
            n = sim.step(now_ns, buf)
            if not n:
                break
            total += n
            self._apply(self.integrity.filter(buf.view(), now_ns))
            if not buf.full:
                break
        buf.clear()
        gaps = self.integrity.take_gaps()
        if gaps:  # a lost record: that book leaves the consolidated one until its snapshot
            keys = sorted({(v, i) for v, _c, i in gaps})
            self._apply(self.integrity.filter(sim.snapshot(now_ns, keys), now_ns))
        return total

    def step(self, now_ns: int) -> int:
        """Sources that run on the clock (simulated venues, replay): add what is due. Return
        records added."""
        if self.sim is not None:
            return self._step_sim(now_ns)
        rp = self.replay
        if rp is None:
            return 0
        due = rp.due(now_ns)
        if due is None:
            return 0
        self.flush()
        batch = due.copy()
        batch["recv_ns"] = now_ns
        self._apply(batch)
        return len(batch)

    # -- the batch ----------------------------------------------------------------------------
    def flush(self) -> int:
        """Apply what the buffer holds; return how many records."""
        buf = self.buf
        n = buf.n
        if not n:
            return 0
        self._apply(buf.view())
        buf.clear()
        return n

    def _apply(self, recs: np.ndarray) -> None:
        apply_batch(self.books, recs)
        if self.recorder is not None:
            self.recorder.record(recs)
        venues = recs["venue"]
        ours = venues < len(self.venues)  # the books count (and reject) the others
        counts = np.bincount(venues[ours], minlength=len(self.venues))
        self.events += counts
        self._window_events += counts
        np.maximum.at(self.last_recv_ns, venues[ours], recs["recv_ns"][ours])
        self.changed.update(np.unique(recs["instrument"]).tolist())

    # -- health ------------------------------------------------------------------------------
    def update_health(self, now_ns: int) -> np.ndarray:
        """The FEED rows as of now (rates over the last full second; silence checked)."""
        if now_ns - self._window_start >= 1_000_000_000:
            span = (now_ns - self._window_start) / 1e9 if self._window_start else 1.0
            self._rate[:] = self._window_events / span
            self._window_events[:] = 0
            self._window_start = now_ns
        h = self.health
        stale_books = ((self.books.state & ST_EXCLUDED) != 0).sum(axis=1)
        rejects_books = int(self.books.rejects.sum())
        for k in range(len(self.venues)):
            last = int(self.last_recv_ns[k])
            if self.liveness is not None:
                last = max(last, self.liveness(k))
            silent = last == 0 or now_ns - last > self.silence_ns[k]
            if silent and not self.silent[k] and last:
                self.silences[k] += 1
                log.warning("%s: no market data for %.1f s: marked stale", self.venues[k],
                            (now_ns - last) / 1e9)
            self.silent[k] = silent
            c = self.normalizers[k].counters
            if self.integrity is not None:
                ic = self.integrity.health[k]
                c = dict(c, rejects=int(ic["rej_price"] + ic["rej_size"] + ic["rej_instrument"]
                                        + ic["rej_channel"] + ic["rej_field"]))
                self.gaps[k] = int(ic["gaps"])
                self.duplicates[k] = int(ic["duplicates"] + ic["out_of_order"])
            row = h[k]
            row["stale"] = 1 if silent or stale_books[k] else 0
            row["rate_hz"] = self._rate[k]
            row["events"] = self.events[k]
            row["gaps"] = self.gaps[k]
            row["duplicates"] = self.duplicates[k] + c.get("stale_request", 0)
            row["rejects"] = sum(c.get(p, 0) for p in _PROBLEMS) + (rejects_books if k == 0 else 0)
            row["stale_books"] = stale_books[k]
            row["silences"] = self.silences[k]
            row["last_recv_ns"] = last
        return h

    # -- what the desk sees --------------------------------------------------------------------
    def consolidated(self, i: int) -> tuple[list, list, list, list]:
        """Instrument ``i``'s consolidated top levels as prices: (bid_px, bid_sz, ask_px,
        ask_sz) lists, best first, zeros past the last level."""
        d = self.books.consolidated_depth(i, out=self._depth_out)
        tick = self.ticks[i]
        return ((d[0, 0] * tick).tolist(), d[0, 1].astype(float).tolist(),
                (d[1, 0] * tick).tolist(), d[1, 1].astype(float).tolist())

    def last_trade(self, i: int) -> tuple[float, float]:
        """The most recent trade of instrument ``i`` on any venue (price, size)."""
        v = self.books.venue[:, i]
        k = int(np.argmax(v["ts_recv_ns"] * (v["trades"] > 0)))
        if not v["trades"][k]:
            return 0.0, 0.0
        return float(v["last_px"][k] * self.ticks[i]), float(v["last_sz"][k])

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()


class _Replay:
    """A recorded stream played back against the wall clock."""

    def __init__(self, records: np.ndarray, start_ns: int, speed: float) -> None:
        if records.dtype != MD_EVENT:
            raise TypeError(f"replay records must be MD_EVENT, were {records.dtype}")
        self.records = records
        self.start_ns = start_ns
        self.speed = speed
        self.t0 = int(records["recv_ns"][0]) if len(records) else 0
        self.times = records["recv_ns"]
        self.pos = 0

    def due(self, now_ns: int) -> np.ndarray | None:
        if self.pos >= len(self.records):
            return None
        horizon = self.t0 + int((now_ns - self.start_ns) * self.speed)
        end = int(np.searchsorted(self.times, horizon, side="right"))
        if end <= self.pos:
            return None
        out = self.records[self.pos:end]
        self.pos = end
        return out

    @property
    def next_due_ns(self) -> int:
        """Wall-clock time of the next record (0 when done)."""
        if self.pos >= len(self.records):
            return 0
        return self.start_ns + int((int(self.times[self.pos]) - self.t0) / self.speed)
