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
- ``ReplaySource``: a recorded tick-store day, handed out by the records' own receive times
  (the kernel's time is the recorded time). Live (``speed`` given) it is also the engine's
  replay clock: play at ``speed`` times the recorded pace, pause, jump forward (catching up
  through every record); the desk drives it with the REPLAY verb.
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

__all__ = ["NEVER", "FixMdSource", "MarketDataSource", "ReplayRefused", "ReplaySource",
           "SimVenuesSource", "clock_text"]

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
        self.integrity.warm_up()
        self.sim.warm_up()


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
def clock_text(ts_ns: int) -> str:
    """A recorded time as people read it on a desk: ``10:31:02.120`` (UTC)."""
    ms = (int(ts_ns) // 1_000_000) % 86_400_000
    return (f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}"
            f".{ms % 1000:03d}")


def speed_text(speed: float) -> str:
    return f"{speed:g}x"


class ReplayRefused(ValueError):
    """A replay control that cannot be done (the reason is the message)."""


class ReplaySource(MarketDataSource):
    """A recorded stream (MD_EVENT, the engine's venue and instrument ids, in ``recv_ns``
    order), handed out by its own receive times: the kernel's time *is* the recorded time.

    ``speed=None``: a backtest; its node's simulated clock steps the kernel. Else a live
    replay engine (``[feed] kind = "replay"``): the source is also the engine's **replay
    clock** (``begin``, ``clock``, ``wait_ns``), which the live node asks for the kernel's time
    each loop turn instead of the wall clock, and the desk drives it (the REPLAY verb):

    - *playing*: recorded time runs at ``speed`` times the wall clock from where it was;
    - *paused*: recorded time stands still, so nothing is applied and no strategy timer, venue
      latency or feed silence runs on: the whole engine stands at that moment;
    - *catching up* (a forward jump, or ``at`` at start): the kernel is stepped through the
      recorded time up to the target as fast as the loop turns, ``slice_ns`` of recorded time
      a turn at most (0: all at once), skipping stretches where neither a record nor anything
      of the kernel is due. The turns' times depend only on the records, the kernel's own
      due times and the target, so strategies and in-process venues see every record, in the
      same slices, whenever and however fast the jump runs. Then it plays on (or stays
      paused).

    Time never goes back: orders and fills cannot un-happen in a running engine, so a jump
    backwards is refused (``ReplayRefused``); the review launcher restarts the engine from
    the day's start with ``at`` the earlier time instead (docs/operations.md).
    """

    SPEED_MIN = 0.1  #: the slowest a desk may play
    SPEED_MAX = 1000.0  #: the fastest

    def __init__(self, records: np.ndarray, venue_ids: Sequence[int], speed: float | None = None,
                 *, at_ns: int | None = None, paused: bool = False, lead_ns: int = 0) -> None:
        """``at_ns``: a live replay catches up to this time at start (default: the first
        record); ``paused``: and stays there; ``lead_ns``: the kernel starts this long before
        the first record (in-process venues log on meanwhile, as in a backtest)."""
        if records.dtype != MD_EVENT:
            raise TypeError(f"replay records must be MD_EVENT, were {records.dtype}")
        self.records = records
        self.times = records["recv_ns"]
        self.venue_ids = tuple(venue_ids)
        self.t0 = int(self.times[0]) if len(records) else 0
        self.start_ns = self.t0
        self.pos = 0
        self.next_due_ns = self.t0 if len(records) else NEVER
        # the replay clock (live only)
        self.live = speed is not None
        self.speed = float(speed) if speed is not None else 1.0
        self.paused = paused
        self.at_ns = at_ns
        self.lead_ns = lead_ns
        self.slice_ns = 0  #: recorded time a catch-up turn covers at most (the node sets it)
        self.now_ns = self.t0 - lead_ns  #: the kernel's time: the recorded time now
        self.target_ns: int | None = None  #: catching up to this time
        self.ended = False  #: played to the last record: paused there
        self._rec0 = self._wall0 = self._wall = 0  # playing: recorded time _rec0 at wall _wall0

    @property
    def first_ns(self) -> int:
        """The first record's time."""
        return self.t0

    @property
    def last_ns(self) -> int:
        return int(self.times[-1]) if len(self.times) else self.t0

    def step(self, now_ns: int, out: EventBuffer) -> int:
        if now_ns < self.next_due_ns:
            return 0
        pos = self.pos
        end = int(np.searchsorted(self.times, now_ns, side="right"))
        end = min(end, pos + out.capacity - out.n)
        k = end - pos
        if k <= 0:
            return 0
        a = out.n
        out.rec.view(_RAW)[a:a + k] = self.records.view(_RAW)[pos:end]
        out.n = a + k
        self.pos = end
        self.next_due_ns = int(self.times[end]) if end < len(self.records) else NEVER
        return k

    # -- the replay clock (live) ---------------------------------------------------------------
    def begin(self, wall_ns: int) -> int:
        """The kernel's start time (``lead_ns`` before the first record); the replay catches
        up from there to ``at_ns`` (default: the first record)."""
        self._wall = self._wall0 = wall_ns
        self.now_ns = self._rec0 = self.t0 - self.lead_ns
        target = self.t0 if self.at_ns is None else min(max(self.at_ns, self.t0), self.last_ns)
        self.target_ns = target if target > self.now_ns else None
        return self.now_ns

    def clock(self, wall_ns: int, due_ns: int) -> int:
        """The kernel's time for a loop turn at wall time ``wall_ns``; ``due_ns``: when the
        kernel said it next has work (kernel time)."""
        self._wall = wall_ns
        now = self.now_ns
        target = self.target_ns
        if target is not None and now >= target:  # the turn at the target has run: landed
            self.target_ns = target = None  # (a jump's answer waits for that turn's books)
            self._rec0, self._wall0 = now, wall_ns  # play on from here
        if target is not None:
            s = self.slice_ns
            if s:
                t = now + s
                if self.next_due_ns > t and due_ns > t:  # nothing in between: skip it
                    t = min(self.next_due_ns, due_ns)
                elif now < due_ns < t:  # the kernel has work before the slice ends: a turn
                    t = due_ns  # then (a lockstep loop would not go past it either)
                t = min(t, target)
            else:
                t = target
            self.now_ns = t
            return t
        if self.paused:
            return now
        t = self._rec0 + int((wall_ns - self._wall0) * self.speed)
        if t >= self.last_ns:  # the day is over: stand at its last record
            t = self.last_ns
            self.paused = self.ended = True
        if t > now:
            self.now_ns = t
        return self.now_ns

    def wait_ns(self, due_ns: int) -> int:
        """How long (wall ns) the loop may wait before the kernel's ``due_ns`` comes."""
        if self.target_ns is not None:
            return 0
        if self.paused:
            return NEVER
        return int((due_ns - self.now_ns) / self.speed) + 1

    @property
    def catching_up(self) -> bool:
        return self.target_ns is not None

    # -- the desk's controls (REPLAY) ------------------------------------------------------------
    def state_text(self) -> str:
        """What is true now: "paused at 10:31:02.120", "playing at 4x from 10:31:02.120"."""
        at = clock_text(self.now_ns)
        if self.target_ns is not None:
            then = "then paused" if self.paused else f"then playing at {speed_text(self.speed)}"
            return f"jumping from {at} to {clock_text(self.target_ns)}, {then}"
        if self.ended:
            return f"at the day's end, {at}, paused"
        if self.paused:
            return f"paused at {at}"
        return f"playing at {speed_text(self.speed)} from {at}"

    def pause(self) -> str:
        self.paused = True
        return self.state_text()

    def play(self) -> str:
        if self.now_ns >= self.last_ns:
            raise ReplayRefused(f"the day ended at {clock_text(self.last_ns)}: nothing left to "
                                f"play (jump back to an earlier time)")
        self.paused = self.ended = False
        self._rec0, self._wall0 = self.now_ns, self._wall
        return self.state_text()

    def set_speed(self, speed: float) -> str:
        if not self.SPEED_MIN <= speed <= self.SPEED_MAX:
            raise ReplayRefused(f"speed must be {self.SPEED_MIN:g} .. {self.SPEED_MAX:g} times "
                                f"the recorded pace, was {speed:g}")
        self._rec0, self._wall0 = self.now_ns, self._wall
        self.speed = float(speed)
        text = self.state_text()
        return text if not self.paused else f"{text}, speed {speed_text(self.speed)}"

    def jump(self, target_ns: int) -> str:
        """Catch up to ``target_ns`` (forward only: see the class docstring)."""
        first, last = self.first_ns, self.last_ns
        if not first <= target_ns <= last:
            raise ReplayRefused(f"{clock_text(target_ns)} is outside the recorded day "
                                f"({clock_text(first)} .. {clock_text(last)})")
        now = self.now_ns if self.target_ns is None else self.target_ns
        if target_ns < self.now_ns:
            raise ReplayRefused(f"cannot jump back from {clock_text(self.now_ns)} to "
                                f"{clock_text(target_ns)}: orders and fills cannot un-happen; "
                                f"restart the replay at {clock_text(target_ns)}")
        if target_ns > now:
            self.target_ns = target_ns
        elif self.target_ns is not None and target_ns < self.target_ns:
            self.target_ns = max(target_ns, self.now_ns)  # a nearer target: stop there
        self.ended = False
        return self.state_text()

    def landed_text(self) -> str:
        """The answer once a jump is done: "at 10:45:00.000, paused"."""
        if self.paused:
            return f"at {clock_text(self.now_ns)}, paused"
        return f"at {clock_text(self.now_ns)}, playing at {speed_text(self.speed)}"
