"""A seeded simulated feed: per-instrument L2 books that move like a quiet market.

Deterministic: the same seed and the same sequence of ``step`` calls give the same books,
whatever the wall clock did (timing only decides *when* an instrument's next update is due).
Each update either moves the mid by a tick (the book re-centres), or changes the size at one
level, and now and then prints a trade.
"""

from __future__ import annotations

import heapq
import random
from typing import Sequence

from engine.book.l2 import L2Book
from engine.core.profile import InstrumentConfig

__all__ = ["SimFeed"]


class _SimInstrument:
    __slots__ = ("tick", "mid_ticks", "half_spread", "period_ns")

    def __init__(self, tick: float, price: float, update_hz: float) -> None:
        self.tick = tick
        self.mid_ticks = round(price / tick)
        self.half_spread = 1
        self.period_ns = int(1e9 / update_hz) if update_hz > 0 else 0


class SimFeed:
    """Drives ``books`` (one per instrument); ``step(now)`` applies every update due by then."""

    def __init__(
        self, instruments: Sequence[InstrumentConfig], seed: int, depth: int = 10, start_ns: int = 0
    ) -> None:
        self.rng = random.Random(seed)
        self.depth = depth
        self.inst = [_SimInstrument(c.tick, c.price, c.update_hz) for c in instruments]
        self.books = [L2Book(depth) for _ in instruments]
        self.events = 0
        self._due: list[tuple[int, int]] = []
        for i, s in enumerate(self.inst):
            self._fill(i, 0)
            if s.period_ns:
                # random phase so instruments do not all tick together
                heapq.heappush(self._due, (start_ns + int(self.rng.random() * s.period_ns), i))

    @property
    def next_due_ns(self) -> int:
        return self._due[0][0] if self._due else 1 << 62

    def _fill(self, i: int, ts_ns: int) -> None:
        """Rebuild instrument i's book around its mid (after a mid move)."""
        s, b, r = self.inst[i], self.books[i], self.rng
        tick = s.tick
        bid0 = s.mid_ticks - s.half_spread
        ask0 = s.mid_ticks + s.half_spread
        for k in range(self.depth):
            b.bid_px[k] = round((bid0 - k) * tick, 10)
            b.ask_px[k] = round((ask0 + k) * tick, 10)
            if b.bid_sz[k] == 0.0 or r.random() < 0.3:
                b.bid_sz[k] = float(r.randint(1, 20) * 100)
            if b.ask_sz[k] == 0.0 or r.random() < 0.3:
                b.ask_sz[k] = float(r.randint(1, 20) * 100)
        b.ts_event_ns = ts_ns

    def update(self, i: int, ts_ns: int) -> None:
        """Apply one simulated market event to instrument i."""
        r = self.rng
        b = self.books[i]
        u = r.random()
        if u < 0.15:
            s = self.inst[i]
            s.mid_ticks += 1 if r.random() < 0.5 else -1
            if s.mid_ticks < 2 * self.depth + 2:
                s.mid_ticks = 2 * self.depth + 2
            self._fill(i, ts_ns)
        elif u < 0.25:
            buy = r.random() < 0.5
            b.last_px = b.ask_px[0] if buy else b.bid_px[0]
            b.last_sz = float(r.randint(1, 10) * 100)
        else:
            k = min(int(r.expovariate(0.5)), self.depth - 1)
            sz = float(r.randint(1, 20) * 100)
            if u < 0.625:
                b.bid_sz[k] = sz
            else:
                b.ask_sz[k] = sz
        b.updates += 1
        b.ts_event_ns = ts_ns
        self.events += 1

    def step(self, now_ns: int, changed: set[int], max_events: int = 10_000) -> int:
        """Apply every update due by ``now_ns``; add touched instruments to ``changed``."""
        due = self._due
        n = 0
        while due and due[0][0] <= now_ns and n < max_events:
            t, i = due[0]
            self.update(i, now_ns)
            changed.add(i)
            period = self.inst[i].period_ns
            nxt = t + int(period * (0.8 + 0.4 * self.rng.random()))
            if nxt <= now_ns - 10 * period:  # fell far behind (engine was stopped): skip ahead
                nxt = now_ns + period
            heapq.heapreplace(due, (nxt, i))
            n += 1
        return n
