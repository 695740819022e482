"""Other participants: a seeded flow of orders that makes the simulated books move.

Each ``step`` is one event per instrument. The instrument's mid price (in ticks, starting at
the profile's ``price``) takes a random-walk step, then one of:

- a passive limit order a few ticks behind the mid (it rests: depth on both sides);
- a crossing limit order a few ticks through the mid (it trades with what is there, the
  client's resting orders included, and rests what is left: the touch moves);
- a cancel of one of its own live orders.

With ``reference_seed``, the mid does not walk per event: it follows a reference price that is
a function of the wall clock alone (one step of -1/0/+1 tick per 100 ms bucket, drawn from a
hash of the seed, the instrument and the bucket, summed from the start of the UTC day). Venues
given the same reference seed then quote around the same price whatever their rates and start
times, as real venues arbitraged against each other do. Their crossing orders are then IOC
(they trade and leave nothing through the mid), so each venue's touch stays around the shared
mid and the venues' merged book does not cross.

Orders are limit DAY, owned by ``exchange.BACKGROUND``, and produce no messages except the
fills of client orders they trade with. Live background orders are capped per instrument: past
the cap the oldest is cancelled, so a book stays near its mid and memory stays bounded. Only
``random.Random(seed)`` decides, so the same seed and the same requests give the same books.
"""

from __future__ import annotations

import random

from engine.venue.exchange import Exchange
from engine.venue.matching import Side, TimeInForce

__all__ = ["BackgroundFlow"]

_PASSIVE, _CROSSING = 0.55, 0.80  # cumulative odds; the rest are cancels
_MOVE = 0.3  # odds that the mid moves one tick (either way) per event
_BUCKET_NS = 100_000_000  # the reference price moves at most once per 100 ms


def reference_walk(seed: int, instrument: int, first: int, stop: int) -> int:
    """The reference price's move, in ticks, over buckets ``first`` … ``stop - 1``: each bucket
    moves it -1, 0 or +1 (30 % odds of a move), a pure function of (seed, instrument, bucket)."""
    total = 0
    base = (seed * 0x9E3779B1 + instrument * 0x85EBCA77) & 0xFFFFFFFF
    for b in range(first, stop):
        h = ((b * 0xC2B2AE3D) ^ base) & 0xFFFFFFFF
        h = (h * 0x27D4EB2F) & 0xFFFFFFFF
        h ^= h >> 15
        x = h % 1000
        if x < 150:
            total -= 1
        elif x < 300:
            total += 1
    return total


class BackgroundFlow:
    """Orders of simulated other participants on every book of ``exchange``."""

    def __init__(self, exchange: Exchange, *, seed: int, max_live: int = 200,
                 max_qty: int = 10, reference_seed: int | None = None) -> None:
        self.exchange = exchange
        self.reference_seed = reference_seed
        self._ref_bucket = -1  # the reference walk's last bucket (set on the first step)
        self.max_live = max_live
        self.max_qty = max_qty
        self._rng = random.Random(seed)
        self._mid = [b.start_ticks for b in exchange.books]
        # per book: our order ids, oldest first (dict order); filled ones are pruned lazily
        self._ours: list[dict[int, None]] = [{} for _ in exchange.books]

    def mid(self, i: int) -> int:
        return self._mid[i]

    def step(self, now_ns: int) -> None:
        """One event on every book."""
        if self.reference_seed is not None:
            self._follow_reference(now_ns)
        for i in range(len(self._mid)):
            self._step_book(i, now_ns)

    def _follow_reference(self, now_ns: int) -> None:
        bucket = now_ns // _BUCKET_NS
        if self._ref_bucket < 0:  # from the start of the UTC day: every venue agrees
            self._ref_bucket = bucket - bucket % (86_400_000_000_000 // _BUCKET_NS)
        if bucket <= self._ref_bucket:
            return
        seed = self.reference_seed
        for i in range(len(self._mid)):
            self._mid[i] = max(10, self._mid[i] + reference_walk(seed, i, self._ref_bucket + 1,
                                                                 bucket + 1))
        self._ref_bucket = bucket

    def _step_book(self, i: int, now_ns: int) -> None:
        rng = self._rng
        book = self.exchange.books[i]
        mid = self._mid[i]
        if self.reference_seed is None and rng.random() < _MOVE:
            mid = max(10, mid + (1 if rng.random() < 0.5 else -1))
            self._mid[i] = mid
        r = rng.random()
        if r >= _CROSSING:
            self._cancel_one(i, rng.random(), now_ns)
            return
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        qty = rng.randint(1, self.max_qty)
        away = rng.randint(1, 5) if r < _PASSIVE else -rng.randint(1, 3)  # < 0: through the mid
        price = max(1, mid - away if side is Side.BUY else mid + away)
        if away < 0 and self.reference_seed is not None:  # takes liquidity, rests nothing
            self.exchange.submit_background(book, side, qty, price, now_ns, TimeInForce.IOC)
            return
        oid = self.exchange.submit_background(book, side, qty, price, now_ns)
        ours = self._ours[i]
        ours[oid] = None
        if len(ours) > self.max_live:
            self._trim(i, now_ns)

    def _cancel_one(self, i: int, u: float, now_ns: int) -> None:
        """Cancel the live order at fraction ``u`` of ours (oldest first)."""
        ours = self._ours[i]
        engine = self.exchange.books[i].engine
        for oid in [o for o in ours if engine.order(o) is None]:
            del ours[oid]  # filled since
        if ours:
            oid = list(ours)[int(u * len(ours))]
            del ours[oid]
            self.exchange.cancel_background(self.exchange.books[i], oid, now_ns)

    def _trim(self, i: int, now_ns: int) -> None:
        """Drop ids of filled orders, then cancel the oldest live ones down to the cap."""
        ours = self._ours[i]
        book = self.exchange.books[i]
        for oid in [o for o in ours if book.engine.order(o) is None]:
            del ours[oid]
        while len(ours) > self.max_live:
            oid = next(iter(ours))
            del ours[oid]
            self.exchange.cancel_background(book, oid, now_ns)

    def live(self, i: int) -> int:
        """How many of our orders rest on book ``i``."""
        engine = self.exchange.books[i].engine
        return sum(1 for o in self._ours[i] if engine.order(o) is not None)
