"""The engine's side of the segment: create it, publish into it, serve its command rings.

What desks write is checked on every read (``engine.ipc.deskslots``); what the engine writes
(counters, the heartbeat, ring indices, seqlock sequences) it keeps its own copy of and only
stores, so nothing another process scribbles into the segment can make the engine raise.
Desks attach through the engine's attach socket (``engine.ipc.attach``), served by a thread
of its own from the moment the segment is ready: it asks ``grant`` which role each desk's OS
user has, and hands the desk the segment read-only and a command slot of its own.

Besides the snapshots and rings, it keeps what the desk measures the engine by: the frame
stamp (each book publish's CLOCK_MONOTONIC and count), a replay's position words, the trade
ring (``TradeTape``: a tap on the books keeps each batch's trades, the publisher writes them
after the turn's orders are out) and the latency histograms (``LatencyCounts``: tick to order
and command to ack, bumped on the hot thread, published at the risk tables' rate).
"""

from __future__ import annotations

import os
import struct
import time
from bisect import bisect_right
from typing import Callable, Sequence

import numpy as np
from numba import njit

from engine.core.events import MD_EVENT, TRADE
from engine.ipc.commands import Ack, Command, PendingAck
from engine.core.roles import Role
from engine.ipc.attach import AttachServer, Grant
from engine.ipc.deskslots import DeskSlots
from engine.ipc.layout import (
    H,
    INSTRUMENT_DTYPE,
    KILL_DTYPE,
    FEED_DTYPE,
    LIMIT_DTYPE,
    POSITION_DTYPE,
    VAR_DTYPE,
    RECON_DTYPE,
    SIGNAL_DTYPE,
    STRATEGY_DTYPE,
    BOOK_DTYPE,
    LATENCY_DTYPE,
    LATENCY_EDGES_NS,
    LATENCY_NAMES,
    LAYOUT_VERSION,
    TRADE_DTYPE,
    MAGIC,
    MAX_VENUES,
    HEADER_SIZE,
    EngineState,
    Layout,
    segment_name,
)
from engine.ipc.rings import EventRingWriter, TradeRingWriter
from engine.ipc.rundir import bind_doorbell, doorbell_path, unlink_doorbell
from engine.ipc.segment import (
    EngineAlreadyRunning,
    IpcError,
    Segment,
    try_lock,
    unlink_segment,
)
from engine.ipc.seqlock import SeqlockBlock

__all__ = ["EngineSegment", "LatencyCounts", "TradeTape", "doorbell_path"]

IDLE_CODES = {"spin": 0, "hybrid": 1, "sleep": 2}
_F64 = struct.Struct("<d")  # H.REPLAY_SPEED holds an f64's bits in a u64 word
_F64_BITS = struct.Struct("<Q")
_BELL_DRAIN_MAX = 256  # datagrams read per drain: a flood cannot hold the loop


def _open_fresh(name: str, size: int, log: Callable[[str], None]) -> Segment:
    """Create the segment, taking over one left by a dead engine, refusing a live one."""
    for _ in range(3):
        try:
            seg = Segment.create(name, size)
        except FileExistsError:
            try:
                old = Segment.attach(name, check=False)
            except IpcError:
                continue  # vanished or half-made meanwhile: try again
            try:
                if not try_lock(old.fd, 0, 8):
                    pid = old.q[H.PID // 8] if old.size >= HEADER_SIZE else 0
                    raise EngineAlreadyRunning(
                        f"an engine for instance {name[len('/helmdesk.'):]!r} is already "
                        f"running (pid {pid}); stop it first or choose another instance"
                    )
                pid = old.q[H.PID // 8] if old.size >= HEADER_SIZE else 0
                log(f"taking over stale shared memory {name} left by pid {pid} (not running)")
                unlink_segment(name)
            finally:
                old.close()
            continue
        try:
            mine = try_lock(seg.fd, 0, 8) and seg.still_current()
        except BaseException:  # a signal in the start: remove what we just made
            if seg.still_current():
                seg.unlink()
            seg.close()
            raise
        if not mine:
            seg.close()
            raise EngineAlreadyRunning(
                f"another engine took instance {name[len('/helmdesk.'):]!r} while this one started"
            )
        return seg
    raise EngineAlreadyRunning(f"could not create {name}: another process keeps re-creating it")


class EngineSegment:
    """Owns ``/dev/shm/helmdesk.<instance>`` for the engine's lifetime."""

    def __init__(
        self,
        instance: str,
        instruments: Sequence[tuple[str, float, float]],
        *,
        event_capacity: int = 1 << 14,
        cmd_capacity: int = 64,
        trade_capacity: int = 1 << 14,
        idle: str = "hybrid",
        pid: int | None = None,
        epoch_wall_ns: int = 0,
        epoch_mono_ns: int = 0,
        log: Callable[[str], None] = lambda _m: None,
        venues: Sequence[str] = (),
        kill_rows: int = 0,
        position_cap: int = 1024,
        scope_sizes: dict[int, int] | None = None,
        grant: Grant | None = None,
    ) -> None:
        """``kill_rows``: the kill-switch table's rows (0: global + one per instrument);
        ``position_cap``: the most position rows published; ``scope_sizes``: scope kind -> how
        many the engine has (commands naming others are refused; default: instruments);
        ``grant(uid, user)``: the role a desk's OS user gets, or why it may not attach
        (default: our own user only, as a viewer)."""
        self.instance = instance
        self._scope_sizes = scope_sizes
        self._grant = grant or _own_user_only
        self.attach = None
        self.layout = lay = Layout(
            n_instruments=len(instruments), event_capacity=event_capacity, cmd_capacity=cmd_capacity,
            kill_rows=kill_rows, position_cap=position_cap, trade_capacity=trade_capacity,
        )
        self._ticks = [float(tick) for _sym, tick, _ref in instruments]
        self.seg = _open_fresh(segment_name(instance), lay.total_size, log)
        self.bell = None
        try:  # a signal may land anywhere in the start: nothing is left behind
            self._build(instruments, idle, pid, epoch_wall_ns, epoch_mono_ns, log, venues)
        except BaseException:
            self._abandon()
            raise

    def _build(self, instruments: Sequence[tuple[str, float, float]], idle: str,
               pid: int | None, epoch_wall_ns: int, epoch_mono_ns: int,
               log: Callable[[str], None], venues: Sequence[str]) -> None:
        lay, seg = self.layout, self.seg

        buf, q = seg.buf, seg.q
        self.q = q

        # header (magic and version last)
        q[H.TOTAL_SIZE // 8] = lay.total_size
        q[H.PID // 8] = pid if pid is not None else os.getpid()
        q[H.EPOCH_WALL_NS // 8] = epoch_wall_ns
        q[H.EPOCH_MONO_NS // 8] = epoch_mono_ns
        q[H.STATE // 8] = EngineState.STARTING
        q[H.IDLE_MODE // 8] = IDLE_CODES[idle]
        q[H.N_INSTRUMENTS // 8] = lay.n_instruments
        q[H.BOOK_DEPTH // 8] = lay.book_depth
        q[H.MAX_DESKS // 8] = lay.max_desks
        q[H.EVENT_CAPACITY // 8] = lay.event_capacity
        q[H.CMD_CAPACITY // 8] = lay.cmd_capacity
        q[H.N_KILL_ROWS // 8] = lay.kill_rows
        q[H.POSITION_CAP // 8] = lay.position_cap
        q[H.LIMIT_CAP // 8] = lay.limit_cap
        q[H.VAR_CAP // 8] = lay.var_cap
        q[H.RECON_CAP // 8] = lay.recon_cap
        q[H.STRATEGY_CAP // 8] = lay.strategy_cap
        q[H.SIGNAL_CAP // 8] = lay.signal_cap
        q[H.TRADE_CAPACITY // 8] = lay.trade_capacity
        name = self.instance.encode()[: H.INSTANCE_LEN]
        buf[H.INSTANCE : H.INSTANCE + len(name)] = name
        if len(venues) > MAX_VENUES:
            raise ValueError(f"at most {MAX_VENUES} venues, was {len(venues)}")
        q[H.N_VENUES // 8] = len(venues)
        for k, v in enumerate(venues):
            raw = v.encode()[:8]
            buf[H.VENUES + 16 * k : H.VENUES + 16 * k + len(raw)] = raw
        buf[H.HEADER_SIZE : H.HEADER_SIZE + 4] = HEADER_SIZE.to_bytes(4, "little")

        table = np.frombuffer(
            buf, dtype=INSTRUMENT_DTYPE, count=lay.n_instruments, offset=lay.instruments_off
        )
        for i, (sym, tick, ref) in enumerate(instruments):
            table[i] = (sym.encode(), tick, ref, b"")
        del table

        self.books = [
            SeqlockBlock(buf, lay.book_off(i), BOOK_DTYPE) for i in range(lay.n_instruments)
        ]
        # the publisher fills a private record, then copies it in under the seqlock in one go,
        # so readers never spin through eight field writes
        self._book_scratch = np.zeros(1, dtype=BOOK_DTYPE)
        self.kill = SeqlockBlock(buf, lay.kill_off, KILL_DTYPE, lay.kill_rows)
        self.feed = SeqlockBlock(buf, lay.feed_off, FEED_DTYPE, MAX_VENUES)
        self.positions = SeqlockBlock(buf, lay.positions_off, POSITION_DTYPE, lay.position_cap)
        self.limits = SeqlockBlock(buf, lay.limits_off, LIMIT_DTYPE, lay.limit_cap)
        self.var = SeqlockBlock(buf, lay.var_off, VAR_DTYPE, lay.var_cap)
        self.recon = SeqlockBlock(buf, lay.recon_off, RECON_DTYPE, lay.recon_cap)
        self.strategies = SeqlockBlock(buf, lay.strategies_off, STRATEGY_DTYPE, lay.strategy_cap)
        self.signals = SeqlockBlock(buf, lay.signals_off, SIGNAL_DTYPE, lay.signal_cap)
        self._risk_scratch = {name: np.zeros(getattr(lay, cap), dtype=dt) for name, cap, dt in (
            ("positions", "position_cap", POSITION_DTYPE), ("limits", "limit_cap", LIMIT_DTYPE),
            ("var", "var_cap", VAR_DTYPE), ("recon", "recon_cap", RECON_DTYPE),
            ("strategies", "strategy_cap", STRATEGY_DTYPE),
            ("signals", "signal_cap", SIGNAL_DTYPE))}
        self._risk_empty = {name: np.zeros((), dtype=a.dtype)
                            for name, a in self._risk_scratch.items()}
        self.events = EventRingWriter(buf, lay.events_off, lay.event_capacity)
        self.trades = TradeRingWriter(buf, lay.trades_off, lay.trade_capacity)
        self.latency_block = SeqlockBlock(buf, lay.latency_off, LATENCY_DTYPE, len(LATENCY_NAMES))
        #: the engine's latency histograms (LATENCY_NAMES), published by ``publish_latency``
        self.latency = {name: LatencyCounts() for name in LATENCY_NAMES}
        self._latency_rows = np.zeros(len(LATENCY_NAMES), dtype=LATENCY_DTYPE)
        for k, name in enumerate(LATENCY_NAMES):
            self._latency_rows[k]["name"] = name.encode()
        self.latency_block.write(self._latency_rows)
        self._cmd_stamps: list[int] = []  # ts_ns of the commands a serve answered
        self.desks = DeskSlots(q, lay, log, self._scope_sizes)
        self._hb_count = 0
        self._publish_seq = 0

        # doorbell: desks send a byte to it after each command (rundir: a private directory;
        # desks get a socket connected to it when they attach)
        self.bell_path = doorbell_path(self.instance)
        self.bell, self._bell_inode = bind_doorbell(self.bell_path)
        self.attach = AttachServer(self.instance, layout=lay, segment_name=seg.name, q=q,
                                   buf=buf, bell_path=self.bell_path, grant=self._grant,
                                   inbox=self.desks.inbox, wake=self.ring_own_bell, log=log)

        buf[H.VERSION : H.VERSION + 4] = LAYOUT_VERSION.to_bytes(4, "little")
        q[H.MAGIC // 8] = MAGIC  # the segment is ready
        self.attach.start()  # desks may come now

    def _abandon(self) -> None:
        """Undo a start that failed half-way: the doorbell and the segment go."""
        if self.attach is not None:
            self.attach.close()
        if self.bell is not None:
            unlink_doorbell(self.bell_path, self._bell_inode)
            self.bell.close()
        desks = getattr(self, "desks", None)
        if desks is not None:
            desks.release()
        self.seg.unlink()
        self.seg.close()  # views still pointing into it are unmapped when collected

    # -- header -------------------------------------------------------------------------------
    def set_state(self, state: int) -> None:
        self.q[H.STATE // 8] = state

    def set_venue_state(self, k: int, state: int) -> None:
        self.q[(H.VENUES + 16 * k + 8) // 8] = state

    def stamp_publish(self) -> None:
        """The frame stamp: CLOCK_MONOTONIC of this book publish, then the publish count (a
        reader that sees the count unchanged across its read of the time has a pair that
        belongs together)."""
        q = self.q
        q[H.PUBLISH_MONO_NS // 8] = time.monotonic_ns()
        self._publish_seq += 1
        q[H.PUBLISH_SEQ // 8] = self._publish_seq

    def set_replay(self, first_ns: int, last_ns: int, now_ns: int, speed: float,
                   paused: bool) -> None:
        """A replay engine's position words (H.REPLAY_*; first_ns != 0 marks a replay)."""
        q = self.q
        q[H.REPLAY_LAST_NS // 8] = max(0, int(last_ns))
        q[H.REPLAY_NOW_NS // 8] = max(0, int(now_ns))
        q[H.REPLAY_SPEED // 8] = _F64_BITS.unpack(_F64.pack(float(speed)))[0]
        q[H.REPLAY_PAUSED // 8] = 1 if paused else 0
        q[H.REPLAY_FIRST_NS // 8] = max(0, int(first_ns))

    def heartbeat(self, mono_ns: int, wall_ns: int) -> None:
        q = self.q
        q[H.HB_MONO_NS // 8] = mono_ns
        q[H.HB_WALL_NS // 8] = wall_ns
        self._hb_count += 1
        q[H.HB_COUNT // 8] = self._hb_count

    def ring_own_bell(self) -> None:
        """Wake the engine's own wait (from another thread: work it must see now is ready,
        a kill's ack once its state is on disk, say). Never raises."""
        try:
            self.bell.sendto(b"\0", self.bell_path)
        except OSError:
            pass  # the engine is closing, or the bell is full: it looks again soon anyway

    def drain_bell(self) -> None:
        recv = self.bell.recv
        try:
            for _ in range(_BELL_DRAIN_MAX):
                recv(64)
        except BlockingIOError:
            pass

    # -- snapshots ------------------------------------------------------------------------------
    def publish_book(
        self,
        i: int,
        ts_ns: int,
        updates: int,
        bid_px: list,
        bid_sz: list,
        ask_px: list,
        ask_sz: list,
        last_px: float,
        last_sz: float,
        flags: int = 0,
    ) -> None:
        rec = self._book_scratch
        r = rec[0]
        r["flags"] = flags
        r["bid_px"] = bid_px
        r["bid_sz"] = bid_sz
        r["ask_px"] = ask_px
        r["ask_sz"] = ask_sz
        r["ts_event_ns"] = ts_ns
        r["updates"] = updates
        r["last_px"] = last_px
        r["last_sz"] = last_sz
        self.books[i].write(rec)

    def publish_kill(self, rows: np.ndarray) -> None:
        self.kill.write(rows)

    def publish_risk(self, name: str, rows: np.ndarray) -> int:
        """Publish the ``positions``, ``limits``, ``var``, ``recon``, ``strategies`` or
        ``signals`` table (the rest of the block
        emptied); return how many rows did not fit."""
        out = self._risk_scratch[name]
        n = min(len(rows), len(out))
        out[:n] = rows[:n]
        out[n:] = self._risk_empty[name]  # (a plain 0 would write b"0" into the text fields)
        getattr(self, name).write(out)
        return len(rows) - n

    def publish_feed(self, rows: np.ndarray) -> None:
        """Feed health, FEED_DTYPE rows (at most MAX_VENUES; the rest stay empty)."""
        self.feed.write(rows)

    def publish_latency(self) -> None:
        """The latency histograms as they stand (counts since start)."""
        rows = self._latency_rows
        for k, name in enumerate(LATENCY_NAMES):
            h = self.latency[name]
            r = rows[k]
            r["counts"] = h.counts
            r["count"] = h.count
            r["sum_ns"] = h.sum_ns & 0xFFFF_FFFF_FFFF_FFFF  # wraps as a u64 counter would
            r["max_ns"] = h.max_ns
        self.latency_block.write(rows)

    def trade_tape(self, n_venues: int) -> "TradeTape":
        """A books tap (``BookSet.taps``) that keeps the trades of each applied batch for the
        trade ring: ``drain()`` writes them (the publisher does, after the turn's orders)."""
        return TradeTape(self.trades, n_venues, self._ticks)

    # -- commands -------------------------------------------------------------------------------
    def serve_commands(self, handle: Callable[[Command], Ack | PendingAck]) -> int:
        """Pop every pending command, answer each with exactly one ack (a ``PendingAck`` is
        sent once it is ready). Returns how many. Never raises, whatever the desks wrote
        (``engine.ipc.deskslots``)."""
        stamps = self._cmd_stamps
        command = self.latency["command"]

        def timed(cmd: Command) -> Ack | PendingAck:
            ack = handle(cmd)
            if type(ack) is PendingAck:  # its latency ends when its ack can be written
                ready = ack._ready
                ts = cmd.ts_ns

                def ready_timed():
                    a = ready()
                    if a is not None:
                        command.add(time.time_ns() - ts)
                    return a

                ack._ready = ready_timed
            else:
                stamps.append(cmd.ts_ns)
            return ack

        n = self.desks.serve(timed)
        if stamps:  # their acks are written now
            now = time.time_ns()
            for ts in stamps:
                command.add(now - ts)
            stamps.clear()
        return n

    def commands_pending(self) -> bool:
        """Has a desk pushed a command (or come, or gone) since the last ``serve_commands``?
        One look at each attached desk's command tail."""
        return self.desks.pending()

    @property
    def acks_waiting(self) -> int:
        """Acks held back behind a ``PendingAck`` (``flush_acks`` sends what is ready)."""
        return self.desks.waiting

    def flush_acks(self) -> int:
        """Send the held acks that may go now; return how many still wait."""
        return self.desks.flush()

    def reject_counts(self) -> dict[str, int]:
        """What the engine dropped from desk slots or refused at attach, by reason
        (layout.REJECT_REASONS)."""
        counts = self.desks.reject_counts()
        counts["refused"] = self.attach.refused
        return counts

    # -- teardown -------------------------------------------------------------------------------
    def close(self, unlink: bool = True) -> None:
        self.set_state(EngineState.STOPPED)
        self.attach.close()  # no desk comes any more; each attached one sees us go
        unlink_doorbell(self.bell_path, self._bell_inode)
        self.bell.close()
        for b in self.books:
            b.release()
        self.kill.release()
        self.feed.release()
        self.latency_block.release()
        for block in (self.positions, self.limits, self.var, self.recon, self.strategies,
                      self.signals):
            block.release()
        self.desks.release()
        self.books = []
        self.events = None
        self.trades = None
        if unlink:
            self.seg.unlink()
        self.q = None
        self.seg.close()


class LatencyCounts:
    """One latency histogram (layout.LATENCY_EDGES_US): plain Python counts, bumped in place
    on the hot thread (a bisect and a list item: ~0.3 µs), copied out at the publish rate."""

    __slots__ = ("counts", "count", "sum_ns", "max_ns")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_EDGES_NS) + 1)
        self.count = 0
        self.sum_ns = 0
        self.max_ns = 0

    MAX_NS = 1 << 44  #: a sample counts as at most ~4.9 hours (a desk's clock may say anything)

    def add(self, ns: int, _bucket=bisect_right, _edges=LATENCY_EDGES_NS) -> None:
        """One sample of ``ns`` nanoseconds (a negative one, a clock stepped back, counts as 0;
        one past MAX_NS as MAX_NS: both land in the end buckets)."""
        if ns < 0:
            ns = 0
        elif ns > 1 << 44:
            ns = 1 << 44
        self.counts[_bucket(_edges, ns)] += 1
        self.count += 1
        self.sum_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns


#: a trade kept for the ring: instrument, venue, side, price (ticks), size, exch ns, recv ns
_TAPE_COLS = 7


@njit(cache=True)
def _take_trades(recs, n_venues, n_instruments, out, n):
    """Append the trades of MD_EVENT ``recs`` that the books applied (the books' own checks:
    venue, instrument, side, price and size) to ``out`` from row ``n``; return the new n.
    The caller leaves room for every record."""
    for k in range(recs.shape[0]):
        r = recs[k]
        if r.kind != TRADE:
            continue
        if r.venue >= n_venues or r.instrument >= n_instruments or r.side > 2 \
                or r.price <= 0 or r.size <= 0:
            continue
        out[n, 0] = r.instrument
        out[n, 1] = r.venue
        out[n, 2] = r.side
        out[n, 3] = r.price
        out[n, 4] = r.size
        out[n, 5] = r.exch_ns
        out[n, 6] = r.recv_ns
        n += 1
    return n


def _take_trades_reference(recs, n_venues: int, n_instruments: int, out, n: int) -> int:
    """``_take_trades`` in plain Python, for the tests."""
    for r in recs:
        if int(r["kind"]) != TRADE:
            continue
        if int(r["venue"]) >= n_venues or int(r["instrument"]) >= n_instruments \
                or int(r["side"]) > 2 or int(r["price"]) <= 0 or int(r["size"]) <= 0:
            continue
        out[n] = (r["instrument"], r["venue"], r["side"], r["price"], r["size"], r["exch_ns"],
                  r["recv_ns"])
        n += 1
    return n


@njit(cache=True)
def _write_trades(kept, first, n, tick, records, mask, seq0):
    """Write ``kept`` rows ``first``..``n - 1`` as TRADE_DTYPE ``records`` of a ring: row j is
    record ``seq0 + j`` at ``records[(seq0 + j) & mask]``. The price is ticks × tick rounded
    to 8 places (``np.round(x, 8)``): the decimal a person reads, as the BOOKS' last_px."""
    for j in range(first, n):
        seq = seq0 + j
        r = records[seq & mask]
        i = kept[j, 0]
        r.seq = seq
        r.ts_exch_ns = kept[j, 5]
        r.ts_recv_ns = kept[j, 6]
        r.price = np.rint(kept[j, 3] * tick[i] * 1e8) / 1e8
        r.size = kept[j, 4]
        r.price_ticks = kept[j, 3]
        r.instrument = i
        r.venue = kept[j, 1]
        r.side = kept[j, 2]


def _write_trades_reference(kept, first: int, n: int, tick, records, mask: int,
                            seq0: int) -> None:
    """``_write_trades`` in plain Python, for the tests."""
    for j in range(first, n):
        i, v, side, px, sz, exch, recv = (int(x) for x in kept[j])
        records[(seq0 + j) & mask] = (seq0 + j, exch, recv, np.round(px * tick[i], 8), sz, px,
                                      i, v, side, 0)


class TradeTape:
    """The trade ring's feed: a ``BookSet`` tap keeps each applied batch's trades (one compiled
    pass, a few ns a record), and ``drain`` writes what it kept into the ring in place (one
    compiled pass). The tap runs inside the books' apply, before the strategies see the books,
    so it does no more than its pass; the ring is written when the publisher drains it, after
    the turn's orders are out. Never raises into the books' caller or the publisher's."""

    __slots__ = ("ring", "n_venues", "n", "kept", "_tick", "_take", "errors")

    def __init__(self, ring: TradeRingWriter, n_venues: int, ticks: Sequence[float],
                 capacity: int = 1 << 15) -> None:
        self.ring = ring
        self.n_venues = n_venues
        self.kept = np.zeros((capacity, _TAPE_COLS), dtype=np.int64)
        self.n = 0  #: trades kept, not yet in the ring
        self._tick = np.asarray(ticks, dtype=np.float64)
        self.errors = 0  #: batches it could not read or write (an engine bug)
        # compile (or load from numba's cache) now, and look the tap's compiled entry point up
        # once: a call skips numba's type dispatch, half its cost (as BookSet.bind)
        args = (np.zeros(0, dtype=MD_EVENT), n_venues, len(self._tick), self.kept, 0)
        self._take = _take_trades
        try:
            self._take = _take_trades.compile(tuple(_take_trades.typeof_pyval(a) for a in args))
        except Exception:
            pass
        if not callable(self._take):
            self._take = _take_trades
        self._take(*args)
        _write_trades(self.kept, 0, 0, self._tick, ring.records, ring.mask, 0)

    def __call__(self, records: np.ndarray) -> None:
        try:
            if self.n + len(records) > len(self.kept):
                self.drain()
                if len(records) > len(self.kept):  # larger than any EventBuffer: grow once
                    self.kept = np.zeros((len(records), _TAPE_COLS), dtype=np.int64)
            take = self._take if records.flags.c_contiguous else _take_trades
            self.n = take(records, self.n_venues, len(self._tick), self.kept, self.n)
        except Exception:
            self.errors += 1

    def drain(self) -> int:
        """Write the kept trades to the ring (oldest first); return how many. More than the
        ring holds: only its capacity's newest are written (readers count the rest lost)."""
        n = self.n
        if not n:
            return 0
        self.n = 0
        ring = self.ring
        seq0 = ring.claim(n)
        try:
            _write_trades(self.kept, max(0, n - ring.capacity), n, self._tick, ring.records,
                          ring.mask, seq0)
        except Exception:  # records not written keep their old seq: readers count them lost
            self.errors += 1
        ring.commit(n)
        return n


def _own_user_only(uid: int, user: str) -> Role | str:
    """The default ``grant``: desks of the engine's own OS user, as viewers; nobody else."""
    if uid == os.geteuid():
        return Role.VIEWER
    return f"OS user {user!r} (uid {uid}) may not attach: this engine grants no other user"
