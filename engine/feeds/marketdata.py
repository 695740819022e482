"""The kernel's market-data stage: sources → one batch of MD_EVENT → books → recorder, health.

``MarketData`` owns the engine's one venue table (profile order), its one ``BookSet`` (one L2
book per venue and instrument, and the consolidated book: the router, the desk and the
strategies all read it) and one preallocated ``EventBuffer``. Each kernel step calls
``step(now_ns)``: every source (``engine.feeds.sources``) appends what is due into the buffer,
which is applied to the books (a numba kernel) and handed to the tick recorder whenever it is
full and at the end of the step. Nothing is done per record in Python.

Who changed is not tracked per record: each reader keeps the ``bbo["updates"]`` counters it
last saw and asks ``changed(seen)`` (a comparison over the instruments, at the reader's rate).

Health per venue (``health``: FEED_HEALTH rows, the one health record the desk reads): events
and the rate over the last second, gaps, duplicates, rejects (the source's and the books'), how
many of its books are stale, and silences (no record for ``silence_ns``, heartbeats of a FIX
session included, marks the venue stale).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from engine.book.books import ST_EXCLUDED, BookSet, apply_batch
from engine.core.events import MD_EVENT, EventBuffer
from engine.core.profile import InstrumentConfig, Profile
from engine.core.records import FEED_HEALTH, MAX_VENUES
from engine.core.ticks import tick_decimals
from engine.feeds.sources import NEVER, MarketDataSource

__all__ = ["MarketData", "MarketDataConfig"]

log = logging.getLogger("helmdesk.marketdata")

_WINDOW_NS = 1_000_000_000


@njit(cache=True)
def _changed(now, seen, out):
    """``MarketData.changed`` in one pass: the indices where ``now`` differs from ``seen``
    into ``out``, ``seen`` brought up to date; returns how many. Branch-free: which books
    changed in a step is random, and a mispredicted branch per changed book costs more than
    writing every slot (~3 µs for 1,000 instruments against ~6 µs for numpy's compare,
    flatnonzero and fancy assignment, each a pass of its own)."""
    n = 0
    for i in range(now.shape[0]):
        v = now[i]
        d = v != seen[i]
        seen[i] = v
        out[n] = i
        n += d
    return n


def _changed_reference(now, seen, out) -> int:
    """``_changed`` in plain Python, for the tests."""
    n = 0
    for i in range(len(now)):
        if int(now[i]) != int(seen[i]):
            seen[i] = now[i]
            out[n] = i
            n += 1
    return n


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketDataConfig:
    """The market-data stage's settings (the profile's ``[feed]``)."""

    venues: tuple[str, ...]  #: the engine's venue table, in id order
    silence_ns: tuple[int, ...]  #: per venue: silent this long is stale
    capacity: int = 8192  #: records per batch
    depth: int = 10
    #: 0: each step applies every record received by then; N: records go to the books in
    #: whole slices of N ns of receive time ([kN, (k+1)N) at (k+1)N), so what a strategy sees
    #: does not depend on when the loop happened to run (``[engine] slice_us``)
    slice_ns: int = 0

    @classmethod
    def from_profile(cls, profile: Profile, venues: Sequence[str], *,
                     capacity: int = 8192) -> MarketDataConfig:
        """Settings for ``venues`` (a FIX venue is silent only past 1.5 × its heartbeat,
        since its heartbeats count as traffic: a quiet book on a live session is not
        silence)."""
        base = profile.feed.silence_ms * 1_000_000
        hb = {v.name: int(v.heartbeat_s * 1.5e9) for v in profile.venues
              if v.kind == "fix" and v.market_data}
        return cls(venues=tuple(venues), capacity=capacity,
                   silence_ns=tuple(max(base, hb.get(v, 0)) for v in venues),
                   slice_ns=profile.engine.slice_us * 1000)


class MarketData:
    def __init__(self, config: MarketDataConfig, instruments: Sequence[InstrumentConfig],
                 sources: Sequence[MarketDataSource] = (), *, recorder=None) -> None:
        venues = config.venues
        if not venues:
            raise ValueError("market data needs at least one venue")
        if len(venues) > MAX_VENUES:
            raise ValueError(f"at most {MAX_VENUES} feed venues, was {len(venues)}")
        self.config = config
        self.venues = list(venues)
        self.venue_ids = {name: k for k, name in enumerate(venues)}
        self.instruments = list(instruments)
        self.index = {ins.symbol: i for i, ins in enumerate(instruments)}
        self.ticks = [ins.tick for ins in instruments]
        self.decimals = [tick_decimals(ins.tick) for ins in instruments]
        self.books = BookSet(len(venues), len(instruments), config.depth)
        self.buf = EventBuffer(config.capacity)
        self.sources = list(sources)
        self.recorder = recorder
        self.silence_ns = list(config.silence_ns)
        #: liveness(k) -> when venue k last sent anything (0: unknown), for sources that know
        self.liveness: dict[int, object] = {}
        n = len(venues)
        self.health = np.zeros(MAX_VENUES, dtype=FEED_HEALTH)
        self.health["window_start_ns"] = -1
        for k, name in enumerate(venues):
            self.health["venue"][k] = name.encode()[:16]
        self._own = np.zeros(n, dtype=np.bool_)  # rows a source keeps itself
        for s in self.sources:
            if s.own_health:
                self._own[list(s.venue_ids)] = True
            liveness = getattr(s, "liveness", None)
            if liveness is not None:
                for k, v in enumerate(s.venue_ids):
                    self.liveness[v] = (liveness, k)
        self._silent = [False] * n
        self._depth_out = np.zeros((2, 3, self.books.depth), dtype=np.int64)
        self._changed_out = np.zeros(len(instruments), dtype=np.int64)
        self.slice_ns = config.slice_ns
        self.applied = 0  #: records applied to the books so far
        self.next_due_ns = NEVER

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernels now, at start-up: a first call in
        the loop would stall it for seconds on a fresh install."""
        apply_batch(self.books, np.zeros(0, dtype=MD_EVENT))
        self.changed(self.new_seen())
        self.books.consolidated_depth(0, out=self._depth_out)  # reads only
        for s in self.sources:
            s.warm_up()

    # -- the stage ---------------------------------------------------------------------------
    def start(self, now_ns: int) -> int:
        """The sources begin now (snapshots of every book first)."""
        buf = self.buf
        n = 0
        for s in self.sources:
            while True:
                n += s.start(now_ns, buf) if not n or not buf.full else 0
                if not buf.full:
                    break
                self.flush()
        n += self.step(now_ns)
        return n

    def step(self, now_ns: int) -> int:
        """Every source appends what is due by ``now_ns``; the batch goes to the books.
        Return how many records were applied."""
        buf = self.buf
        applied = self.applied
        nxt = NEVER
        sl = self.slice_ns
        until = now_ns - now_ns % sl - 1 if sl else now_ns  # sliced: only whole slices
        for s in self.sources:
            if until >= s.next_due_ns:
                s.step(until, buf)
                while buf.full:
                    self.flush()
                    s.step(until, buf)
            if s.next_due_ns < nxt:
                nxt = s.next_due_ns
        self.next_due_ns = nxt if not sl or nxt >= NEVER else nxt - nxt % sl + sl
        if buf.n:
            self.flush()
        return self.applied - applied

    def flush(self) -> int:
        """Apply what the buffer holds; return how many records."""
        buf = self.buf
        n = buf.n
        if n:
            recs = buf.rec[:n]
            apply_batch(self.books, recs)
            if self.recorder is not None:
                self.recorder.record(recs)
            buf.n = 0
            self.applied += n
        return n

    # -- readers ---------------------------------------------------------------------------------
    def changed(self, seen: np.ndarray) -> np.ndarray:
        """Instruments whose books changed since ``seen`` (a reader's copy of
        ``books.bbo["updates"]``, brought up to date here)."""
        out = self._changed_out
        n = _changed(self.books.bbo["updates"], seen, out)
        return out[:n].copy()

    def new_seen(self) -> np.ndarray:
        """A reader's ``seen`` counters: everything so far counts as seen."""
        return self.books.bbo["updates"].copy()

    def consolidated(self, i: int) -> tuple[list, list, list, list]:
        """Instrument ``i``'s consolidated top levels as prices: (bid_px, bid_sz, ask_px,
        ask_sz) lists, best first, zeros past the last level."""
        d = self.books.consolidated_depth(i, out=self._depth_out)
        tick, places = self.ticks[i], self.decimals[i]
        return ((d[0, 0] * tick).round(places).tolist(), d[0, 1].astype(float).tolist(),
                (d[1, 0] * tick).round(places).tolist(), d[1, 1].astype(float).tolist())

    def venue_book(self, v: int, i: int) -> tuple[list, list, list, list]:
        """Venue ``v``'s book of instrument ``i`` as prices (the same shape)."""
        b = self.books
        tick, places = self.ticks[i], self.decimals[i]
        return ((b.bid_px[v, i] * tick).round(places).tolist(), b.bid_sz[v, i].astype(float).tolist(),
                (b.ask_px[v, i] * tick).round(places).tolist(), b.ask_sz[v, i].astype(float).tolist())

    def last_trade(self, i: int) -> tuple[float, float]:
        """The most recent trade of instrument ``i`` on any venue (price, size)."""
        v = self.books.venue[:, i]
        k = int(np.argmax(v["ts_recv_ns"] * (v["trades"] > 0)))
        if not v["trades"][k]:
            return 0.0, 0.0
        return round(float(v["last_px"][k] * self.ticks[i]), self.decimals[i]), float(v["last_sz"][k])

    # -- health ----------------------------------------------------------------------------------
    def update_health(self, now_ns: int) -> np.ndarray:
        """The FEED_HEALTH rows as of now (rates over the last full second; silence)."""
        h = self.health
        books = self.books
        n = len(self.venues)
        applied = books.updates.sum(axis=1)
        last_recv = books.venue["ts_recv_ns"].max(axis=1)
        h["rejects"][:n] = 0
        for s in self.sources:
            s.fill_health(h, now_ns)
        for k in range(n):
            row = h[k]
            if not self._own[k]:
                row["events"] = int(applied[k])
                row["last_recv_ns"] = max(int(row["last_recv_ns"]), int(last_recv[k]))
                start = int(row["window_start_ns"])
                if start < 0:
                    row["window_start_ns"], row["window_events"] = now_ns, row["events"]
                elif now_ns - start >= _WINDOW_NS:
                    row["rate_hz"] = (int(row["events"]) - int(row["window_events"])) * 1e9 / (
                        now_ns - start)
                    row["window_start_ns"], row["window_events"] = now_ns, row["events"]
                last = int(row["last_recv_ns"])
                live = self.liveness.get(k)
                if live is not None:
                    last = max(last, live[0](live[1]))
                silent = last == 0 or now_ns - last > self.silence_ns[k]
                if silent and not self._silent[k] and last:
                    row["silences"] += 1
                    log.warning("%s: no market data for %.1f s: marked stale", self.venues[k],
                                (now_ns - last) / 1e9)
                self._silent[k] = silent
            else:
                silent = bool(row["stale"])  # the source's own word: silent, or nothing yet
            stale_books = int(((books.state[k] & ST_EXCLUDED) != 0).sum())
            row["stale_books"] = stale_books
            row["stale"] = 1 if silent or stale_books else 0
        h["rejects"][0] += int(books.rejects.sum())  # the books' rejects (of no venue too)
        return h

    def close(self) -> None:
        for s in self.sources:
            s.close()
        if self.recorder is not None:
            self.recorder.close()
