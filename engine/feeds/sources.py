"""Market data sources: whatever the origin, MD_EVENT records into the engine's one batch.

Every source speaks one small protocol, so the kernel's market-data stage runs the same way
live, in paper trading and in a backtest::

    source.start(now_ns, out)     # once: the first records (snapshots of every book)
    source.step(now_ns, out)      # append what is due by now_ns, as far as ``out`` has room;
                                  # returns how many; called again after a flush while
                                  # ``out`` came back full
    source.next_due_ns            # when ``step`` next has something (NEVER: only pushed input)
    source.fill_health(rows, now_ns)  # its venues' FEED_HEALTH counters, when the stage asks
    source.close()

A source is built knowing its venues' ids in the engine's venue table (``venue_ids``), and
writes records with those ids. The sources:

- ``SimVenuesSource``: ``engine.feeds.simvenues.SimVenues``, several simulated venues quoting
  the instruments (cointegrated pairs, trades, bursts), through ``FeedIntegrity`` (a sequence
  gap becomes a STATUS_GAP and a fresh snapshot of that book; duplicates and bad records are
  dropped and counted). Also the engine's plain ``sim`` feed: one simulated venue.
- ``FixMdSource``: the books the FIX venue sessions subscribe to (35=W/X/Y). Sessions are
  polled by the execution stage; each FIX venue client queues its market data messages, and
  ``step`` normalizes them (``FixMdNormalizer``). The session's ``FixMdSubscriptions`` keeps the
  subscriptions and RptSeq checks: a gap it finds becomes a STATUS_GAP record, a dropped
  session a STATUS_STALE for each instrument, so that venue's book leaves the consolidated book
  until a fresh snapshot has rebuilt it.
- ``ReplaySource``: a recorded tick-store day. Live (``speed`` given) it plays at the recorded
  pace times ``speed`` from ``start`` on, stamping each record with the time it is applied; in
  a backtest (``speed=None``) the records' own receive times are the clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.core.events import (
    F_LAST,
    MD_EVENT,
    STATUS,
    STATUS_GAP,
    STATUS_STALE,
    EventBuffer,
)
from engine.feeds.fixmd import MD_MESSAGE, MD_STALE

__all__ = ["NEVER", "FixMdSource", "MarketDataSource", "ReplaySource", "SimVenuesSource"]

#: "Not before the end of time": a source with nothing scheduled.
NEVER = 1 << 62
#: MD_EVENT as raw bytes: numpy copies a structured array field by field (~70 ns a record),
#: raw records as one block (~6 ns), and replay copies every record of a backtest
_RAW = np.dtype((np.void, MD_EVENT.itemsize))

_PROBLEMS = ("garbled", "invalid", "unknown_symbol", "missing_field", "bad_action", "bad_price",
             "off_tick", "bad_size", "bad_level", "bad_seq", "bad_group", "bad_snapshot",
             "buffer_full", "internal_error", "rejects")


class MarketDataSource:
    """The protocol (module docstring). Subclasses override what they need."""

    venue_ids: tuple[int, ...] = ()
    next_due_ns: int = NEVER
    #: True: the source keeps its venues' FEED_HEALTH rows itself (counts, rate, silence)
    own_health: bool = False

    def start(self, now_ns: int, out: EventBuffer) -> int:
        return 0

    def step(self, now_ns: int, out: EventBuffer) -> int:  # pragma: no cover - protocol
        raise NotImplementedError

    def fill_health(self, rows: np.ndarray, now_ns: int) -> None:
        """Fill this source's own counters into ``rows`` (the engine's FEED_HEALTH table)."""

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) whatever kernels the source runs, now."""

    def close(self) -> None:
        pass


def _status(out: EventBuffer, venue: int, instrument: int, code: int, recv_ns: int) -> None:
    r = out.rec[out.n]
    r["kind"], r["venue"], r["instrument"], r["action"] = STATUS, venue, instrument, code
    r["flags"], r["recv_ns"], r["seq"], r["price"], r["size"] = F_LAST, recv_ns, 0, 0, 0
    r["side"] = r["level"] = r["channel"] = 0
    r["exch_ns"] = r["aux"] = 0
    out.n += 1


# -- SIMULATED VENUES ------------------------------------------------------------------------
class SimVenuesSource(MarketDataSource):
    """``SimVenues`` through ``FeedIntegrity``; venue k of the simulation is ``venue_ids[k]``
    (the simulation's own ids are 0..n-1, so its venues come first in the engine's table).

    ``opens_when``: the market opens at the first step after the one at which it returns true,
    not at ``start`` — a paper engine's simulated market opens once its in-process venues'
    sessions are logged on, as a backtest's venues are logged on before its first record, so
    that the strategies' first orders meet the same venues in both. The snapshots and the
    first generated time are that step's: a step of its own, so that with ``[engine]
    slice_us`` they fall in a cell of their own, as the backtest takes them."""

    #: how often a market waiting to open asks ``opens_when`` (simulated or wall time)
    OPEN_LOOK_NS = 100_000

    own_health = True

    def __init__(self, sim, integrity, opens_when=None) -> None:
        self.sim = sim
        self.integrity = integrity
        self.venue_ids = tuple(range(sim.n_venues))
        self._snapshots: list[tuple[int, int]] = []  # books waiting for a snapshot (room)
        # SimVenues.next_due_ns may generate blocks to know: ask once per step, not per look
        self.next_due_ns = 0
        #: None: the market opens at ``start``; else it opens (``SimVenues.begin``) at the
        #: first step at which ``opens_when()`` is true, asked every ``OPEN_LOOK_NS`` until
        self.opens_when = opens_when
        self.opened_ns: int | None = None
        self._up_ns: int | None = None  # when opens_when() was first seen true

    def start(self, now_ns: int, out: EventBuffer) -> int:
        return self.step(now_ns, out) if self.opens_when is not None else self._open(now_ns, out)

    def _open(self, now_ns: int, out: EventBuffer) -> int:
        if self.opens_when is not None:
            self.sim.begin(now_ns)
        self.opened_ns = now_ns
        self._snapshots = [(v, i) for v in range(self.sim.n_venues)
                           for i in range(self.sim.n_instruments)]
        return self.step(now_ns, out)

    def step(self, now_ns: int, out: EventBuffer) -> int:
        if self.opened_ns is None:
            if self._up_ns is None and self.opens_when():
                self._up_ns = now_ns
            if self._up_ns is None or now_ns <= self._up_ns:
                self.next_due_ns = now_ns + (1 if self._up_ns is not None else self.OPEN_LOOK_NS)
                return 0
            return self._open(now_ns, out)
        n0 = out.n
        if self._snapshots:
            self._snapshot(now_ns, out)
            if self._snapshots:
                return out.n - n0  # no room yet: the caller flushes and calls again
        sim = self.sim
        if now_ns >= sim.next_due_ns and not out.full:
            a = out.n
            sim.step(now_ns, out)
            if out.n > a:
                kept = self.integrity.filter(out.rec[a:out.n], now_ns)
                out.rec[a:a + len(kept)] = kept
                out.n = a + len(kept)
            gaps = self.integrity.take_gaps()
            if gaps:  # a lost record: that book leaves the consolidated one until its snapshot
                self._snapshots += sorted({(v, i) for v, _c, i in gaps})
                self._snapshot(now_ns, out)
        self.next_due_ns = 0 if self._snapshots else sim.next_due_ns
        return out.n - n0

    def _snapshot(self, now_ns: int, out: EventBuffer) -> None:
        per_book = 2 + 2 * self.sim.depth
        room = (out.capacity - out.n) // per_book
        if room <= 0:
            return
        keys, self._snapshots = self._snapshots[:room], self._snapshots[room:]
        recs = self.integrity.filter(self.sim.snapshot(now_ns, keys), now_ns)
        out.rec[out.n:out.n + len(recs)] = recs
        out.n += len(recs)

    def fill_health(self, rows: np.ndarray, now_ns: int) -> None:
        integ = self.integrity
        integ.silence(now_ns)  # rolls the rate windows too
        h = integ.health
        rows[list(self.venue_ids)] = h
        rows["rejects"][list(self.venue_ids)] = (h["rej_price"] + h["rej_size"]
                                                 + h["rej_instrument"] + h["rej_channel"]
                                                 + h["rej_field"])

    def warm_up(self) -> None:
        self.integrity.filter(np.zeros(0, dtype=MD_EVENT), 0)


# -- FIX VENUES ------------------------------------------------------------------------------
class FixMdSource(MarketDataSource):
    """The market data of FIX venue clients (``engine.execution.venues.FixVenueClient`` with
    ``md`` set): ``clients[k]`` feeds venue ``venue_ids[k]``."""

    def __init__(self, clients: Sequence, venue_ids: Sequence[int], instruments) -> None:
        from engine.feeds.normalize import FixMdNormalizer

        self.clients = list(clients)
        self.venue_ids = tuple(venue_ids)
        self.index = {ins.symbol: i for i, ins in enumerate(instruments)}
        table = {ins.symbol: (i, ins.tick) for i, ins in enumerate(instruments)}
        self.normalizers = [FixMdNormalizer(v, c.name, table)
                            for v, c in zip(self.venue_ids, self.clients)]

    @property
    def next_due_ns(self) -> int:
        """Now, while a session has queued something; else only when one does."""
        for c in self.clients:
            if c.md_inbox:
                return 0
        return NEVER

    def step(self, now_ns: int, out: EventBuffer) -> int:
        n0 = out.n
        for k, client in enumerate(self.clients):
            inbox = client.md_inbox
            if inbox:
                self._drain(k, client, inbox, out)
        return out.n - n0

    def _drain(self, k: int, client, inbox: list, out: EventBuffer) -> None:
        v = self.venue_ids[k]
        norm = self.normalizers[k]
        index = self.index
        taken = 0
        for what, payload, recv_ns in inbox:
            if out.capacity - out.n < len(index) + (
                    len(payload.raw) // 6 + 4 if what == MD_MESSAGE else 0):
                break  # no room: the rest waits for the next call, after a flush
            taken += 1
            if what == MD_MESSAGE:
                norm.on_message(payload, recv_ns, out)
            elif what == MD_STALE:  # lost something: out of the consolidated book until
                for sym in payload:  # its snapshot
                    if sym in index:
                        _status(out, v, index[sym], STATUS_GAP, recv_ns)
            else:  # the session dropped: every book of the venue is stale
                for i in range(len(index)):
                    _status(out, v, i, STATUS_STALE, recv_ns)
        del inbox[:taken]

    def fill_health(self, rows: np.ndarray, now_ns: int) -> None:
        for k, client in enumerate(self.clients):
            row = rows[self.venue_ids[k]]
            c = self.normalizers[k].counters
            mc = client.md.counters
            row["gaps"] = mc["gaps"]
            row["duplicates"] = mc["duplicates"] + c.get("stale_request", 0)
            row["rejects"] = sum(c.get(p, 0) for p in _PROBLEMS)

    def liveness(self, k: int) -> int:
        """When venue k's session last heard anything (heartbeats too): a quiet book on a
        live session is not a silent venue."""
        c = self.clients[k]
        return c.session.last_received_ns if c.up else 0


# -- REPLAY ----------------------------------------------------------------------------------
class ReplaySource(MarketDataSource):
    """A recorded stream (MD_EVENT, the engine's venue and instrument ids, in ``recv_ns``
    order). ``speed=None``: a backtest, the records' own times are the clock; else live, at
    the recorded pace times ``speed`` from ``start`` on, each record stamped with the time it
    is applied."""

    def __init__(self, records: np.ndarray, venue_ids: Sequence[int], speed: float | None = None
                 ) -> None:
        if records.dtype != MD_EVENT:
            raise TypeError(f"replay records must be MD_EVENT, were {records.dtype}")
        self.records = records
        self.times = records["recv_ns"]
        self.venue_ids = tuple(venue_ids)
        self.speed = speed
        self.t0 = int(self.times[0]) if len(records) else 0
        self.start_ns = self.t0
        self.pos = 0
        self.next_due_ns = self.t0 if len(records) else NEVER

    def start(self, now_ns: int, out: EventBuffer) -> int:
        if self.speed is not None:
            self.start_ns = now_ns
            self.next_due_ns = now_ns if len(self.records) else NEVER
        return self.step(now_ns, out)

    def step(self, now_ns: int, out: EventBuffer) -> int:
        if now_ns < self.next_due_ns:
            return 0
        pos = self.pos
        speed = self.speed
        horizon = now_ns if speed is None else self.t0 + int((now_ns - self.start_ns) * speed)
        end = int(np.searchsorted(self.times, horizon, side="right"))
        end = min(end, pos + out.capacity - out.n)
        k = end - pos
        if k <= 0:
            return 0
        a = out.n
        out.rec.view(_RAW)[a:a + k] = self.records.view(_RAW)[pos:end]
        if speed is not None:
            out.rec["recv_ns"][a:a + k] = now_ns
        out.n = a + k
        self.pos = end
        if end >= len(self.records):
            self.next_due_ns = NEVER
        elif speed is None:
            self.next_due_ns = int(self.times[end])
        else:
            self.next_due_ns = self.start_ns + int((int(self.times[end]) - self.t0) / speed)
        return k
