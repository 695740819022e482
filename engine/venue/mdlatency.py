"""Market-data latency of an in-process simulated venue: the recorded market as its exchange
had it.

A recorded record carries two times: ``exch_ns``, when the venue's exchange stamped it, and
``recv_ns``, when we received it. A backtest's strategies see each record at its ``recv_ns``
(the kernel's books); the exchange that matches our orders had it earlier, by the market-data
(feed) latency. As hftbacktest models it (an exchange-side processor that takes each feed
event at its exchange timestamp, a local side that sees it at its local timestamp, and orders
that reach the exchange the order latency after they are sent), ``ExchangeTimeBooks`` is one
venue's own ``BookSet`` fed with that venue's records at their *exchange times*: the venue's
matching engine mirrors these books, not the strategies' (``engine.venue.inprocess``, "Market
data latency").

Exchange time of a record (``exchange_times``), by ``[[venues]] md_latency_us``:

- ``N`` (µs, > 0): ``recv_ns - N`` for every record (data that carries no usable ``exch_ns``).
- ``"recorded"``: ``exch_ns`` where the recorded feed latency ``recv_ns - exch_ns`` is between
  0 and ``MAX_MD_LATENCY_NS``; a record without a usable ``exch_ns`` (0, later than its
  receipt, or absurdly early: a status record, a clock step) keeps the last usable latency of
  its venue (0 before the first).
- Either way a record is never earlier than the venue's record before it: a venue's stream is
  one ordered stream, so its records stay in their order (a time stamped earlier than the one
  before it is held to that one's).
- ``0``: no latency; the venue reads the kernel's books and this module is not used.

Steps. ``advance(t)`` applies every record whose exchange time is at or before ``t`` (never
one early) and tells which instruments moved. ``due_ns`` is the end of the ``step_ns`` cell
(``[kN, (k+1)N)``) of the next record: while an order of ours rests the venue asks to be
stepped then, so the exchange's market reaches resting orders at that resolution (a
backtest's ``--resolution-us``, or its ``[engine] slice_us``), as the strategies' market does;
otherwise the books are brought up to date only when an order message arrives.

Deterministic: times, order and steps depend only on the records and the settings.

Cost: one copy of the venue's records per day (plus one int64 time each), sorted once with a
stable argsort; an ``advance`` is a binary search, one compiled ``apply_batch`` over the due
records and one comparison of the venue's per-instrument update counters.
"""

from __future__ import annotations

import numpy as np

from engine.book.books import BookSet, apply_batch
from engine.core.events import MD_EVENT

__all__ = ["MAX_MD_LATENCY_NS", "NEVER", "ExchangeTimeBooks", "exchange_times"]

#: ``due_ns`` when no record is left.
NEVER = 1 << 62
#: A recorded feed latency above this is a clock problem, not a latency (the profile's bound).
MAX_MD_LATENCY_NS = 10_000_000_000


def exchange_times(records: np.ndarray, latency_ns: int | None, last_ns: int = 0,
                   last_latency_ns: int = 0) -> tuple[np.ndarray, int]:
    """The exchange time of each of one venue's ``records`` (module docstring):
    ``latency_ns`` fixed, or None for the recorded ``exch_ns``. ``last_ns`` is the exchange
    time of the venue's record before these, ``last_latency_ns`` its last usable recorded
    latency. Return the times and the last usable latency (for the next batch)."""
    recv = records["recv_ns"].astype(np.int64)
    if latency_ns is not None:
        t = recv - latency_ns
    else:
        lat = recv - records["exch_ns"].astype(np.int64)
        ok = (records["exch_ns"] > 0) & (lat >= 0) & (lat <= MAX_MD_LATENCY_NS)
        # carry the last usable latency forward over the records without one
        idx = np.where(ok, np.arange(len(records)), -1)
        np.maximum.accumulate(idx, out=idx)
        carried = np.where(idx >= 0, lat[np.maximum(idx, 0)], last_latency_ns)
        t = recv - carried
        if len(records):
            last_latency_ns = int(carried[-1])
    if len(t):
        t[0] = max(int(t[0]), last_ns)
        np.maximum.accumulate(t, out=t)
    return t, last_latency_ns


class ExchangeTimeBooks:
    """One simulated venue's view of its recorded market: a ``BookSet`` shaped as the
    kernel's, whose row ``venue_index`` gets that venue's records at their exchange times
    (module docstring)."""

    __slots__ = ("books", "due_ns", "latency_ns", "pos", "records", "step_ns", "times",
                 "venue_index", "_last_latency", "_seen")

    def __init__(self, n_venues: int, n_instruments: int, depth: int, venue_index: int, *,
                 latency_ns: int | None, step_ns: int) -> None:
        """``latency_ns``: fixed, or None for the records' own ``exch_ns``; ``step_ns``: the
        cell resolution of ``due_ns`` (> 0)."""
        if latency_ns is not None and not 0 < latency_ns <= MAX_MD_LATENCY_NS:
            raise ValueError(f"latency_ns must be 1..{MAX_MD_LATENCY_NS} or None (recorded), "
                             f"was {latency_ns}")
        if step_ns <= 0:
            raise ValueError(f"step_ns must be positive, was {step_ns}")
        self.books = BookSet(n_venues, n_instruments, depth)
        self.venue_index = venue_index
        self.latency_ns = latency_ns
        self.step_ns = step_ns
        self.records = np.zeros(0, dtype=MD_EVENT)
        self.times = np.zeros(0, dtype=np.int64)
        self.pos = 0
        self.due_ns = NEVER  #: when the next record's cell ends (NEVER: none left)
        self._last_latency = 0
        self._seen = self.books.updates[venue_index].copy()

    @property
    def next_ns(self) -> int:
        """The exchange time of the next record not yet applied (NEVER: none)."""
        return int(self.times[self.pos]) if self.pos < len(self.times) else NEVER

    def add(self, records: np.ndarray) -> int:
        """More recorded market (MD_EVENT in receive order, the engine's venue ids: a day as
        the replay loads it): keep this venue's records, timed. Return how many."""
        mine = records[records["venue"] == self.venue_index]
        last = int(self.times[-1]) if len(self.times) else 0
        t, self._last_latency = exchange_times(mine, self.latency_ns, last, self._last_latency)
        order = np.argsort(t, kind="stable")  # already sorted: a venue's times never go back
        self.records = np.concatenate([self.records[self.pos:], mine[order]])
        self.times = np.concatenate([self.times[self.pos:], t[order]])
        self.pos = 0
        self._refresh()
        return len(mine)

    def advance(self, now_ns: int) -> np.ndarray:
        """Apply every record of exchange time ``<= now_ns``; the instruments whose book of
        this venue changed since the last call (an int64 array, maybe empty)."""
        pos = self.pos
        times = self.times
        if pos >= len(times) or times[pos] > now_ns:
            return _NONE
        end = int(np.searchsorted(times, now_ns, side="right"))
        apply_batch(self.books, self.records[pos:end])
        self.pos = end
        self._refresh()
        now = self.books.updates[self.venue_index]
        changed = np.flatnonzero(now != self._seen)
        if len(changed):
            self._seen[changed] = now[changed]
        return changed

    def _refresh(self) -> None:
        if self.pos < len(self.times):
            t = int(self.times[self.pos])
            self.due_ns = t - t % self.step_ns + self.step_ns
        else:
            self.due_ns = NEVER


_NONE = np.zeros(0, dtype=np.int64)
