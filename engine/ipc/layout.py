"""The shared-memory layout: the single source of truth for engine and desk.

One segment per engine instance, ``/dev/shm/helmdesk.<instance>``, created by the engine
(mode 0600, owner-only, whoever the desks are), plus one **slot object** per attached desk (an
anonymous memfd the engine makes when that desk attaches). A desk never opens either by name:
it attaches through the engine's attach socket (``engine.ipc.attach``), which hands it the
segment **read-only** and its own slot object read-write (file descriptors over the socket).
Every offset below is a multiple of 64 so counters written by different processes never share
a cache line::

    SEGMENT (the engine writes every byte; desks map it read-only)
    0        HEADER (4096 B)
             line 0  magic u64 · layout version u32 · header size u32 · total size u64 · pid
                     · epoch wall/mono ns · state · idle mode · counts (instruments, depth,
                     desks, ring capacities) · instance name
             line 2  heartbeat: count · monotonic ns · wall ns
             line 3  engine counters (commands accepted/rejected, loop turns, feed events,
                     publishes, ack back-pressure)
             line 4  engine_asleep flag (informational; see engine/node.py on the doorbell)
                     · a replay's position · the frame stamp (book publishes, their
                     CLOCK_MONOTONIC ns)
             line 6-7 rejects: what the engine dropped from the desk slots or refused at
                     attach, one counter per reason (REJECT_REASONS)
             line 8  the tables' sizes (kill rows, risk tables, trade ring capacity)
             line 16 order venues: count · up to 16 × (name, session state)
    INSTRUMENTS   n × INSTRUMENT_DTYPE (static, written before the magic)
    BOOKS         n × seqlock block [seq u64 | pad | BOOK_DTYPE]
    KILL          1 × seqlock block [seq u64 | pad | (n + 1) × KILL_DTYPE]; row 0 is global
    FEED          1 × seqlock block [seq u64 | pad | MAX_VENUES × FEED_DTYPE]: market data
                  health per feed venue (rows 0..n_feed_venues-1 in use)
    EVENTS        event ring control (tail intent, tail: own lines) + capacity × EVENT_DTYPE
    TRADES        trade ring (time and sales), as EVENTS: control + trade_capacity × TRADE_DTYPE
    LATENCY       1 × seqlock block [seq u64 | pad | len(LATENCY_NAMES) × LATENCY_DTYPE]:
                  the engine's latency histograms (counts since start; LATENCY_EDGES_US)
    DESKS         max_desks × DESK_ROW (64 B): who holds each command slot, as the kernel
                  told the engine at attach (pid, uid, granted role, user name, attaches);
                  pid 0: free. Written by the engine's attach thread, pid last.

    SLOT OBJECT (one per attached desk: a fresh memfd each attach, ``slot_size`` bytes)
    0             slot header (64 B): owner pid, claim count, user (the desk writes them; the
                  engine never reads them) · resets (the engine writes it)
    SLOT_HEADER   command ring control + cmd_capacity × COMMAND (128 B)
    slot_ack_off  ack ring control + cmd_capacity × ACK (128 B)

The engine writes everything in the segment, then the magic and layout version last (as
Aeron's ``signalCncReady``): a desk that reads a zero magic is looking at an engine still
starting.

A desk can write only its own slot object (it never receives another's, and each attach gets
a new one, so a desk that went away keeps no way into its successor's slot). The engine
treats what desks write there (the command ring's tail and records, the ack ring's head, the
slot header) as hostile and checks it on every read, and never reads back what it writes
itself for a decision (it keeps its own copy of every index and counter). A process of the
engine's own OS user can open the segment read-write by name: that user is the engine's, and
nothing the engine reads from the segment can make it raise either.

x86-64 only: the rings and seqlocks rely on total store order (stores are not reordered with
other stores, loads not with other loads), which Python's plain memory writes give there.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from engine.core.records import (  # the records every stage shares; the segment embeds them
    FEED_HEALTH,
    KILL_ROW,
    LIMIT_ROW,
    POSITION_ROW,
    VAR_ROW,
    RECON_ROW,
    SIGNAL_ROW,
    STRATEGY_ROW,
    MAX_VENUES,
    VENUE_BOOKS_OK,
    VENUE_DOWN,
    VENUE_UP,
    Notice,
)

__all__ = [
    "MAGIC",
    "LAYOUT_VERSION",
    "CACHE_LINE",
    "HEADER_SIZE",
    "BOOK_DEPTH",
    "MAX_DESKS",
    "MAX_VENUES",
    "VENUE_DOWN",
    "VENUE_UP",
    "VENUE_BOOKS_OK",
    "H",
    "EngineState",
    "INSTRUMENT_DTYPE",
    "BOOK_DTYPE",
    "KILL_DTYPE",
    "FEED_DTYPE",
    "POSITION_DTYPE",
    "LIMIT_DTYPE",
    "VAR_DTYPE",
    "RECON_DTYPE",
    "SIGNAL_DTYPE",
    "STRATEGY_DTYPE",
    "BOOK_CROSSED",
    "BOOK_LOCKED",
    "EVENT_DTYPE",
    "TRADE_DTYPE",
    "TRADE_BUY",
    "TRADE_SELL",
    "LATENCY_NAMES",
    "LATENCY_SUB_BUCKETS",
    "LATENCY_OCTAVES",
    "LATENCY_BUCKETS",
    "LATENCY_EDGES_US",
    "LATENCY_EDGES_NS",
    "LATENCY_DTYPE",
    "latency_edges_us",
    "latency_bucket",
    "EVENT_STRUCT",
    "EVENT_TEXT",
    "EventKind",
    "ORDER_EVENT_STRUCT",
    "ORDER_STATUS_NAMES",
    "TIF_NAMES",
    "ORDER_UNKNOWN",
    "ORDER_MARKET",
    "COMMAND_STRUCT",
    "ACK_STRUCT",
    "SEQLOCK_PREFIX",
    "RING_CONTROL",
    "SLOT_HEADER",
    "DESK_ROW",
    "DESK_PID",
    "DESK_UID",
    "DESK_ROLE",
    "DESK_ATTACHES",
    "DESK_USER",
    "DESK_USER_LEN",
    "SLOT_OWNER_PID",
    "SLOT_CLAIMS",
    "SLOT_USER",
    "SLOT_RESETS",
    "REJECT_REASONS",
    "command_seal",
    "COMMAND_SEAL_OFF",
    "SEAL_STRUCT",
    "Layout",
    "segment_name",
]

MAGIC = int.from_bytes(b"HELMDESK", "little")
LAYOUT_VERSION = 10  # 2: 128-byte event records with order payloads; 3: feed health;
#                    4: book flags (crossed / locked consolidated books); 5: the one
#                    FEED_HEALTH record (176 B a venue, integrity counters included);
#                    6: sealed command records, reject counters, slot resets;
#                    7: kill switches of every scope with states, positions, limits, VaR;
#                    8: desk slots in objects of their own handed over the attach socket,
#                    the DESKS table (who holds each slot), no command bell word, reject
#                    reason "refused" in place of "bad_role";
#                    9: STRATEGIES and SIGNALS blocks; 10: replay position and
#                    frame stamp header words, the TRADES ring (time and sales) and the
#                    LATENCY histograms
CACHE_LINE = 64
HEADER_SIZE = 4096
BOOK_DEPTH = 10
MAX_DESKS = 8
SEQLOCK_PREFIX = CACHE_LINE  # the seq counter has a line to itself
RING_CONTROL = 2 * CACHE_LINE  # [tail intent or head][pad][tail][pad]
SLOT_HEADER = CACHE_LINE


def _align(n: int, a: int = CACHE_LINE) -> int:
    return (n + a - 1) // a * a


class H:
    """Byte offsets of header fields (all 8-byte aligned; u64 unless noted)."""

    MAGIC = 0
    VERSION = 8  # u32
    HEADER_SIZE = 12  # u32
    TOTAL_SIZE = 16
    PID = 24
    EPOCH_WALL_NS = 32
    EPOCH_MONO_NS = 40
    STATE = 48
    IDLE_MODE = 56
    N_INSTRUMENTS = 64
    BOOK_DEPTH = 72
    MAX_DESKS = 80
    EVENT_CAPACITY = 88
    CMD_CAPACITY = 96
    INSTANCE = 104  # 24 bytes, NUL padded
    INSTANCE_LEN = 24
    # line 2: heartbeat
    HB_COUNT = 128
    HB_MONO_NS = 136
    HB_WALL_NS = 144
    # line 3: counters
    CMDS_ACCEPTED = 192
    CMDS_REJECTED = 200
    LOOP_TURNS = 208
    FEED_EVENTS = 216
    PUBLISHES = 224
    ACK_BACKPRESSURE = 232
    # line 4
    ASLEEP = 256
    # a replay engine's position ([feed] kind = "replay"; all 0 in any other engine): the
    # recorded day's first and last record times and the recorded time now (UTC ns), the
    # speed (f64 bits: struct "<d") and 1 while paused
    REPLAY_FIRST_NS = 264
    REPLAY_LAST_NS = 272
    REPLAY_NOW_NS = 280
    REPLAY_SPEED = 288
    REPLAY_PAUSED = 296
    # the frame stamp: PUBLISH_SEQ counts the engine's book publishes; PUBLISH_MONO_NS is
    # CLOCK_MONOTONIC when the latest was written (a desk measures publish -> pixels with it)
    PUBLISH_SEQ = 304
    PUBLISH_MONO_NS = 312
    # line 5: unused (a command bell word desks wrote, before the segment was read-only)
    # lines 6-7: what the engine dropped from desk slots or refused at attach, one u64 per
    # REJECT_REASONS entry
    REJECTS = 384
    # lines 16-20: the engine's order venues (names static, states live)
    # line 8: the risk tables' sizes
    N_KILL_ROWS = 512  # kill switches: global + every instrument, strategy, venue, account, trader
    POSITION_CAP = 520  # position rows the POSITIONS block holds
    LIMIT_CAP = 528
    VAR_CAP = 536
    RECON_CAP = 544
    STRATEGY_CAP = 552
    SIGNAL_CAP = 560
    TRADE_CAPACITY = 568  # records the TRADES ring holds (a power of two)
    N_VENUES = 1024
    VENUES = 1032  # MAX_VENUES × [name 8 B, NUL padded | state u64: VENUE_DOWN / VENUE_UP]


class EngineState:
    STARTING = 0
    RUNNING = 1
    STOPPING = 2
    STOPPED = 3
    NAMES = {0: "starting", 1: "running", 2: "stopping", 3: "stopped"}


IDLE_MODES = ("spin", "hybrid", "sleep")

INSTRUMENT_DTYPE = np.dtype(
    [("symbol", "S16"), ("tick", "<f8"), ("ref_price", "<f8"), ("pad", "V32")]
)
assert INSTRUMENT_DTYPE.itemsize == 64

BOOK_DTYPE = np.dtype(
    [
        ("ts_event_ns", "<i8"),  # engine clock (wall) when the book last changed
        ("updates", "<u8"),  # book updates applied since start
        ("bid_px", "<f8", (BOOK_DEPTH,)),
        ("bid_sz", "<f8", (BOOK_DEPTH,)),
        ("ask_px", "<f8", (BOOK_DEPTH,)),
        ("ask_sz", "<f8", (BOOK_DEPTH,)),
        ("last_px", "<f8"),
        ("last_sz", "<f8"),
        ("flags", "<u4"),  # BOOK_CROSSED / BOOK_LOCKED: a consolidated book not to be trusted
        ("pad", "V28"),
    ]
)
assert BOOK_DTYPE.itemsize % CACHE_LINE == 0
BOOK_CROSSED = 1  #: best bid above best ask (across venues): shown, flagged, never used as is
BOOK_LOCKED = 2  #: best bid equal to best ask

KILL_DTYPE = KILL_ROW  # engine.core.records: the kill switches keep their state in it

FEED_DTYPE = FEED_HEALTH  # engine.core.records: market data keeps its health in it
POSITION_DTYPE = POSITION_ROW  # engine.core.records: the portfolio's rows
LIMIT_DTYPE = LIMIT_ROW
VAR_DTYPE = VAR_ROW
RECON_DTYPE = RECON_ROW
STRATEGY_DTYPE = STRATEGY_ROW
SIGNAL_DTYPE = SIGNAL_ROW

# Event ring record: 128 bytes, two cache lines. ``text`` is UTF-8 for every kind but
# ORDER, whose 104 bytes are an ORDER_EVENT_STRUCT.
EVENT_TEXT = 104
EVENT_STRUCT = struct.Struct(f"<QqHHi{EVENT_TEXT}s")
EVENT_DTYPE = np.dtype(
    [
        ("seq", "<u8"),
        ("ts_ns", "<i8"),
        ("kind", "<u2"),
        ("level", "<u2"),
        ("instrument", "<i4"),
        ("text", f"S{EVENT_TEXT}"),
    ]
)
assert EVENT_STRUCT.size == EVENT_DTYPE.itemsize == 128


# Trade ring record (time and sales), 64 bytes, one cache line: every trade the engine's
# market data applied to its books, oldest first. ``seq`` is the record's ring index (checked
# on read, as the event ring's); ``instrument`` the INSTRUMENTS row, ``venue`` the market-data
# venue (the FEED rows' order); ``price`` in the instrument's currency (``price_ticks`` × tick,
# rounded as the BOOKS' last_px is), ``side`` the aggressor: TRADE_BUY, TRADE_SELL or 0
# (unknown); times are UTC ns: the venue's (exchange) and the engine's receipt.
TRADE_DTYPE = np.dtype(
    [
        ("seq", "<u8"),
        ("ts_exch_ns", "<i8"),
        ("ts_recv_ns", "<i8"),
        ("price", "<f8"),
        ("size", "<f8"),
        ("price_ticks", "<i8"),
        ("instrument", "<i4"),
        ("venue", "<u2"),
        ("side", "u1"),
        ("pad", "u1", (9,)),  # bytes, not void: the engine's compiled writer fills records
    ]
)
assert TRADE_DTYPE.itemsize == CACHE_LINE
TRADE_BUY = 1  #: the buyer was the aggressor (FIX Side 1)
TRADE_SELL = 2  #: the seller was (FIX Side 2)

# Latency histograms: counts since the engine started, log-bucketed, LATENCY_SUB_BUCKETS a
# power of two from 1 µs to 2^LATENCY_OCTAVES µs (16.8 s), one bucket below 1 µs and one
# above the top: edges [0, 1, 2^0.25, 2^0.5, …, 2^24, inf] µs, bucket i holding
# edges[i] <= t < edges[i + 1] (widgets/latency.py's default layout: the desk draws them as
# they are). Each bucket is ~19 % wide; a percentile read from them is within that.
#: what each histogram measures (its row in LATENCY and its ``name``):
#: ``tick_to_order``: the receipt of the market data a strategy decided on -> its
#: NewOrderSingle written to the venue's connection; ``command``: a desk command's ``ts_ns``
#: (the desk's wall clock when it wrote it) -> the engine's ack written
LATENCY_NAMES = ("tick_to_order", "command")
LATENCY_SUB_BUCKETS = 4
LATENCY_OCTAVES = 24
LATENCY_BUCKETS = LATENCY_OCTAVES * LATENCY_SUB_BUCKETS + 2  # 98
LATENCY_EDGES_US = np.concatenate(
    ([0.0], 2.0 ** (np.arange(LATENCY_OCTAVES * LATENCY_SUB_BUCKETS + 1) / LATENCY_SUB_BUCKETS),
     [np.inf]))
LATENCY_EDGES_US.flags.writeable = False
assert len(LATENCY_EDGES_US) == LATENCY_BUCKETS + 1
#: the finite edges above 0 in whole ns (rounded up: t ns is in bucket i when t >= edge, as
#: t / 1000 >= edges_us): ``latency_bucket`` bisects them
LATENCY_EDGES_NS = tuple(int(np.ceil(e * 1000 - 1e-6)) for e in LATENCY_EDGES_US[1:-1])
LATENCY_DTYPE = np.dtype(
    [
        ("name", "S16"),
        ("count", "<u8"),  #: samples (the counts' sum)
        ("sum_ns", "<u8"),  #: their sum (a mean; negative samples count as 0)
        ("max_ns", "<u8"),
        ("counts", "<u8", (LATENCY_BUCKETS,)),
    ]
)


def latency_edges_us() -> np.ndarray:
    """The LATENCY buckets' edges in µs (LATENCY_BUCKETS + 1 of them; the first 0, the last
    inf): bucket i holds edges[i] <= t < edges[i + 1]."""
    return LATENCY_EDGES_US.copy()


def latency_bucket(ns: int, _edges: tuple = LATENCY_EDGES_NS) -> int:
    """The bucket of a latency of ``ns`` nanoseconds (0 for anything under 1 µs, negative
    included)."""
    return bisect_right(_edges, ns)


class EventKind:
    """``kind`` of an event-ring record: the engine's ``Notice`` codes."""

    LOG = int(Notice.LOG)
    COMMAND = int(Notice.COMMAND)
    KILL = int(Notice.KILL)
    ALERT = int(Notice.ALERT)
    ORDER = int(Notice.ORDER)  #: an order changed; ``text`` is an ORDER_EVENT_STRUCT
    NAMES = {1: "log", 2: "command", 3: "kill", 4: "alert", 5: "order"}


# An order's state after a change: cl_ord_id, venue, side (1 buy, 2 sell), status (index in
# ORDER_STATUS_NAMES), flags (ORDER_UNKNOWN, ORDER_MARKET), tif (index in TIF_NAMES), qty,
# cum_qty, leaves_qty, last_qty (this change's fill, 0 if none), price, avg_px, last_px, text.
ORDER_EVENT_STRUCT = struct.Struct("<32s8sBBBBiiiiddd20s")
assert ORDER_EVENT_STRUCT.size == EVENT_TEXT
ORDER_STATUS_NAMES = ("PendingNew", "New", "PartiallyFilled", "Filled", "PendingCancel",
                      "Cancelled", "PendingReplace", "Replaced", "Rejected", "Expired")
TIF_NAMES = ("day", "ioc", "fok")
ORDER_UNKNOWN = 1  #: the venue's session dropped while the order was live: state in doubt
ORDER_MARKET = 2  #: a market order (price is 0)

# Command record, desk -> engine, 128 bytes:
# cmd_id, ts_ns, verb, scope, scope_id, arg0, arg1, user, workstation, role, pad, seal, text.
# ``seal`` (u32 at byte 76) is command_seal(the ring index the record was written for),
# stored by the desk after the rest of the record: a record whose seal does not match its
# index was never finished (a desk that died mid-write) or is left from an earlier lap.
COMMAND_STRUCT = struct.Struct("<QqHHidd16s16sB3sI48s")
assert COMMAND_STRUCT.size == 128
COMMAND_SEAL_OFF = 76
SEAL_STRUCT = struct.Struct("<I")


def command_seal(index: int) -> int:
    """The seal of the command written at ring index ``index``: never 0 (zeroed memory)."""
    return (index & 0x7FFF_FFFF) | 0x8000_0000

# Ack record, engine -> desk, 128 bytes: cmd_id, ts_ns, status, kill_tripped, pad, value, reason
ACK_STRUCT = struct.Struct("<QqBB6sq96s")
assert ACK_STRUCT.size == 128


def segment_name(instance: str) -> str:
    """Name of the POSIX shared-memory object for an engine instance."""
    return f"/helmdesk.{instance}"


@dataclass(frozen=True, slots=True)
class Layout:
    """Offsets of every region, derived from the counts in the header."""

    n_instruments: int
    event_capacity: int = 1 << 14
    cmd_capacity: int = 64
    trade_capacity: int = 1 << 14
    max_desks: int = MAX_DESKS
    book_depth: int = BOOK_DEPTH
    kill_rows: int = 0  #: 0: global + one per instrument
    position_cap: int = 1024
    limit_cap: int = 2048
    var_cap: int = 64
    recon_cap: int = 256
    strategy_cap: int = 64
    signal_cap: int = 256

    def __post_init__(self) -> None:
        if not self.kill_rows:
            object.__setattr__(self, "kill_rows", self.n_instruments + 1)
        for name, hi in (("kill_rows", 1 << 16), ("position_cap", 1 << 20),
                         ("limit_cap", 1 << 16), ("var_cap", 1 << 12),
                         ("recon_cap", 1 << 12), ("strategy_cap", 1 << 10),
                         ("signal_cap", 1 << 14)):
            v = getattr(self, name)
            if not 0 < v <= hi:
                raise ValueError(f"{name} must be 1..{hi}, was {v}")
        for name in ("event_capacity", "cmd_capacity", "trade_capacity"):
            v = getattr(self, name)
            if v <= 0 or v & (v - 1) or v > 1 << 24:
                raise ValueError(f"{name} must be a power of two up to 2^24, was {v}")
        if self.book_depth != BOOK_DEPTH:
            raise ValueError(f"book depth {self.book_depth} is not {BOOK_DEPTH}")
        if not 0 < self.n_instruments <= 4096:
            raise ValueError(f"n_instruments must be 1..4096, was {self.n_instruments}")

    # -- regions ---------------------------------------------------------------------------
    @property
    def instruments_off(self) -> int:
        return HEADER_SIZE

    @property
    def book_block_size(self) -> int:
        return SEQLOCK_PREFIX + _align(BOOK_DTYPE.itemsize)

    @property
    def books_off(self) -> int:
        return _align(self.instruments_off + self.n_instruments * INSTRUMENT_DTYPE.itemsize)

    def book_off(self, i: int) -> int:
        return self.books_off + i * self.book_block_size

    @property
    def kill_off(self) -> int:
        return self.books_off + self.n_instruments * self.book_block_size

    @property
    def feed_off(self) -> int:
        return _align(self.kill_off + SEQLOCK_PREFIX + self.kill_rows * KILL_DTYPE.itemsize)

    @property
    def positions_off(self) -> int:
        return _align(self.feed_off + SEQLOCK_PREFIX + MAX_VENUES * FEED_DTYPE.itemsize)

    @property
    def limits_off(self) -> int:
        return _align(self.positions_off + SEQLOCK_PREFIX
                      + self.position_cap * POSITION_DTYPE.itemsize)

    @property
    def var_off(self) -> int:
        return _align(self.limits_off + SEQLOCK_PREFIX + self.limit_cap * LIMIT_DTYPE.itemsize)

    @property
    def recon_off(self) -> int:
        return _align(self.var_off + SEQLOCK_PREFIX + self.var_cap * VAR_DTYPE.itemsize)

    @property
    def strategies_off(self) -> int:
        return _align(self.recon_off + SEQLOCK_PREFIX + self.recon_cap * RECON_DTYPE.itemsize)

    @property
    def signals_off(self) -> int:
        return _align(self.strategies_off + SEQLOCK_PREFIX
                      + self.strategy_cap * STRATEGY_DTYPE.itemsize)

    @property
    def events_off(self) -> int:
        return _align(self.signals_off + SEQLOCK_PREFIX + self.signal_cap * SIGNAL_DTYPE.itemsize)

    @property
    def trades_off(self) -> int:
        return self.events_off + RING_CONTROL + self.event_capacity * EVENT_DTYPE.itemsize

    @property
    def latency_off(self) -> int:
        return self.trades_off + RING_CONTROL + self.trade_capacity * TRADE_DTYPE.itemsize

    @property
    def desks_off(self) -> int:
        return _align(self.latency_off + SEQLOCK_PREFIX
                      + len(LATENCY_NAMES) * LATENCY_DTYPE.itemsize)

    def desk_row_off(self, k: int) -> int:
        """The DESKS row of command slot ``k`` (DESK_* offsets within it)."""
        return self.desks_off + k * DESK_ROW

    @property
    def total_size(self) -> int:
        return _align(self.desks_off + self.max_desks * DESK_ROW, 4096)

    # -- a slot object (one per attached desk) ----------------------------------------------
    @property
    def cmd_ring_size(self) -> int:
        return RING_CONTROL + self.cmd_capacity * COMMAND_STRUCT.size

    @property
    def ack_ring_size(self) -> int:
        return RING_CONTROL + self.cmd_capacity * ACK_STRUCT.size

    @property
    def slot_cmd_off(self) -> int:
        """The command ring's offset within a slot object."""
        return SLOT_HEADER

    @property
    def slot_ack_off(self) -> int:
        """The ack ring's offset within a slot object."""
        return SLOT_HEADER + self.cmd_ring_size

    @property
    def slot_size(self) -> int:
        """Bytes of a slot object: header, command ring, ack ring (whole pages)."""
        return _align(self.slot_ack_off + self.ack_ring_size, 4096)


# Slot header fields (offsets within a slot object). The desk writes the first three; the
# engine writes SLOT_RESETS (how many times it reset this slot's rings) and never reads any of
# them: who a desk is comes from the kernel (the DESKS table), never from these.
SLOT_OWNER_PID = 0
SLOT_CLAIMS = 8
SLOT_USER = 16  # 16 bytes
SLOT_RESETS = 32

# A DESKS row (offsets within it), written by the engine at attach and detach.
DESK_ROW = CACHE_LINE
DESK_PID = 0  #: the desk's pid (SO_PEERCRED); 0: the slot is free. Written last.
DESK_UID = 8  #: the desk's OS user id (SO_PEERCRED)
DESK_ROLE = 16  #: the role the engine granted (engine.core.roles.Role)
DESK_ATTACHES = 24  #: how many desks have held this slot since the engine started
DESK_USER = 32  #: the OS user name (pwd), NUL padded
DESK_USER_LEN = 32

#: Why the engine dropped something a desk wrote: one header counter each (H.REJECTS + 8 k).
REJECT_REASONS = (
    "cmd_ring",  #: command ring indices impossible (tail behind head or over a lap ahead)
    "ack_ring",  #: ack ring indices impossible (the desk's head ahead of the engine's tail)
    "torn",  #: a command not sealed for its index: half written, or from an earlier lap
    "bad_id",  #: command id 0
    "bad_verb",  #: a verb that does not exist
    "bad_scope",  #: a scope that does not exist, or a scope id out of range
    "bad_number",  #: NaN or infinite arguments, an order quantity out of range
    "bad_text",  #: workstation or text not UTF-8
    "refused",  #: an attach refused: a user the profile does not list, a bad request, no slot
    "slot_error",  #: anything else that went wrong serving the slot (an engine bug)
)
assert len(REJECT_REASONS) <= 16  # lines 6 and 7
