"""A desk's (or ``helmdesk ctl``'s) side of an engine segment: read snapshots, send commands.

Plain Python, no Qt: ``app/`` wraps it in a QObject; ``helmdesk ctl`` uses it directly.

A client attaches through the engine's attach socket (``engine.ipc.attach``): the engine
learns from the kernel which OS user it is and grants it a role from the profile's
``[users]``, or refuses it (``AttachRefused``, saying why). It hands over the segment
read-only, and, for a client that sends commands, a slot object of its own (command and ack
rings) and a socket connected to its doorbell; the connection stays open for the client's
life, and closing it (or dying) frees the slot. The client checks that the socket's peer runs
as the owner of the segment's name and is the pid in its header: nobody else can pose as the
engine. ``user`` and ``role`` are what the engine granted; whatever a client writes in its
records' user and role fields is ignored.

When nothing listens on the socket but the segment is there and ours (the engine is still
starting, or died and left it), a read-only client (``commands=False``) maps it directly to
say so (``EngineStarting``, ``LayoutMismatch``, or the dead engine's last heartbeat); no slot
is ever had that way.

What a desk reads besides the snapshots: ``poll_events`` (the event ring), ``poll_trades``
(time and sales: TRADE_DTYPE records; ``trades_lost`` for what a slow reader missed),
``read_latency`` (the engine's histograms; ``latency_edges_us`` their bucket edges),
``publish_stamp`` (the latest book publish: count and CLOCK_MONOTONIC ns) and
``replay_state`` (a replay engine's position, None for others).

Anything can scribble over this desk's slot. Nothing
read here raises because of it: a corrupt ring reads as empty (or full), and when the engine
resets this desk's slot (it found its words impossible: ``engine.ipc.deskslots``) the client
notices the slot's reset count move, writes its slot header again and goes on; ``request``
raises ``SlotReset`` for a command the reset may have swallowed.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from typing import NamedTuple
from dataclasses import dataclass, field

import numpy as np

from engine.core.roles import Role
from engine.ipc.commands import Ack, Command, Scope, Verb
from engine.ipc.layout import (
    ACK_STRUCT,
    BOOK_DTYPE,
    CACHE_LINE,
    COMMAND_STRUCT,
    INSTRUMENT_DTYPE,
    KILL_DTYPE,
    FEED_DTYPE,
    LATENCY_DTYPE,
    LATENCY_NAMES,
    latency_edges_us,
    DESK_ATTACHES,
    DESK_PID,
    DESK_ROLE,
    DESK_UID,
    DESK_USER,
    DESK_USER_LEN,
    LAYOUT_VERSION,
    LIMIT_DTYPE,
    POSITION_DTYPE,
    VAR_DTYPE,
    RECON_DTYPE,
    SIGNAL_DTYPE,
    STRATEGY_DTYPE,
    MAX_VENUES,
    REJECT_REASONS,
    VENUE_BOOKS_OK,
    VENUE_UP,
    SLOT_OWNER_PID,
    SLOT_CLAIMS,
    SLOT_RESETS,
    SLOT_USER,
    EngineState,
    H,
    Layout,
    segment_name,
)
from engine.ipc.attach import (
    OK,
    REQUEST,
    REQUEST_MAGIC,
    WANT_SLOT,
    attach_address,
    peer_credentials,
    recv_reply,
)
from engine.ipc.rings import EventRingReader, SealedCommandRing, SpscRing, TradeRingReader
from engine.ipc.segment import AttachRefused, IpcError, NoEngine, Segment
from engine.ipc.seqlock import SeqlockBlock

__all__ = ["EngineClient", "EngineStatus", "CommandTimeout", "SlotReset", "Instrument",
           "DeskInfo", "ReplayState"]

_IDLE_NAMES = {0: "spin", 1: "hybrid", 2: "sleep"}
_SPIN = 0
_U64 = (1 << 64) - 1
_RESETS = SLOT_RESETS // 8
_F64 = struct.Struct("<d")  # H.REPLAY_SPEED holds an f64's bits in a u64 word
_U64_BITS = struct.Struct("<Q")
_DESK_ROW = struct.Struct(f"<QQQQ{DESK_USER_LEN}s")
assert (DESK_PID, DESK_UID, DESK_ROLE, DESK_ATTACHES, DESK_USER) == (0, 8, 16, 24, 32)


class CommandTimeout(IpcError):
    pass


class SlotReset(IpcError):
    """The engine reset this desk's slot (its words were corrupt) while a command was out."""


@dataclass(frozen=True, slots=True)
class Instrument:
    index: int
    symbol: str
    tick: float
    ref_price: float


@dataclass(frozen=True, slots=True)
class ReplayState:
    """A replay engine's position (header words H.REPLAY_*): UTC ns of the recorded day's
    first and last records and of the recorded time now, the speed, paused or playing."""

    first_ns: int
    last_ns: int
    now_ns: int
    speed: float
    paused: bool


class DeskInfo(NamedTuple):
    """A desk holding a command slot, as the kernel told the engine (the DESKS table)."""

    slot: int
    pid: int
    uid: int
    user: str
    role: Role
    attaches: int  #: how many desks have held this slot since the engine started


class VenueStatus(NamedTuple):
    name: str
    up: bool  #: the FIX session is logged on
    books_ok: bool = False  #: its market data is subscribed and every book is good


@dataclass(frozen=True, slots=True)
class EngineStatus:
    instance: str
    pid: int
    state: str
    epoch_wall_ns: int
    heartbeat_age_ms: float
    heartbeat_count: int
    idle: str
    kill_tripped: bool
    kill_reason: str
    kill_user: str
    instruments: tuple[Instrument, ...]
    commands_accepted: int
    commands_rejected: int
    loop_turns: int
    feed_events: int
    publishes: int
    instruments_killed: tuple[str, ...]
    venues: tuple["VenueStatus", ...] = ()  #: per order venue
    #: what the engine dropped from desk slots, by reason (layout.REJECT_REASONS)
    rejects: dict[str, int] = field(default_factory=dict)


class EngineClient:
    """Attach to the engine of ``instance``; optionally claim a command slot to send commands."""

    def __init__(
        self,
        instance: str,
        *,
        user: str | None = None,
        workstation: str = "",
        role: Role = Role.VIEWER,
        commands: bool = True,
        timeout: float = 5.0,
    ) -> None:
        """``user`` and ``role`` are accepted for old callers and ignored: who this client is
        comes from the kernel, its role from the engine (``self.user``, ``self.role``)."""
        del user, role
        self.instance = instance
        self.workstation = workstation or os.uname().nodename[:16]
        self.user = ""  #: the OS user the engine saw (SO_PEERCRED), once attached
        self.role = Role.VIEWER  #: the role the engine granted
        self.alive = True  #: False: a dead engine's segment, read where it lies
        self.seg = None
        self.slot: int | None = None
        self.slot_seg: Segment | None = None  #: this desk's slot object (commands only)
        self._cmd: SealedCommandRing | None = None
        self._ack: SpscRing | None = None
        self._slot_q: memoryview | None = None  # the slot header as u64 words
        self._conn: socket.socket | None = None  # held open while we hold the slot
        self._bell: socket.socket | None = None
        self._resets_seen = 0
        self.resets = 0  #: how many times the engine reset this desk's slot
        self._ids = itertools.count(1)
        self.books = []
        self.kill = self.feed = self.positions = self.limits = self.var = None
        self.events = None
        self.trades: TradeRingReader | None = None
        self.latency: SeqlockBlock | None = None
        try:
            self._attach(commands, timeout)
            self._map()
        except BaseException:
            self.close()
            raise

    # -- attaching -------------------------------------------------------------------------------
    def _attach(self, commands: bool, timeout: float) -> None:
        """Ask the engine for its segment (and a slot): engine.ipc.attach."""
        name = segment_name(self.instance)
        path = "/dev/shm" + name
        try:
            named = os.stat(path)
        except FileNotFoundError:
            raise NoEngine(f"no engine is running: shared memory {name} does not exist") from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout
        fds: list[int] = []
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(attach_address(self.instance))
            except (ConnectionRefusedError, FileNotFoundError):
                sock.close()
                return self._no_listener(name, named, commands)
            pid, uid, _gid = peer_credentials(sock)
            if uid != named.st_uid:
                raise IpcError(
                    f"the attach socket of engine {self.instance!r} is held by pid {pid} of uid "
                    f"{uid}, but its shared memory {name} belongs to uid {named.st_uid}: not "
                    "the engine; refusing to attach")
            sock.sendall(REQUEST.pack(REQUEST_MAGIC, LAYOUT_VERSION,
                                      WANT_SLOT if commands else 0,
                                      self.workstation.encode()[:16]))
            head, reason, fds = recv_reply(sock, deadline)
            (_m, status, slot, role, _uid, engine_pid, size, slot_size, user, _n) = head
            if status != OK:
                raise AttachRefused(f"engine {self.instance!r} refused this desk: {reason}")
            if engine_pid != pid or len(fds) != (3 if commands else 1) or \
                    (commands and not 0 <= slot < 64):
                raise IpcError(f"engine {self.instance!r} answered an attach request with "
                               f"{len(fds)} descriptors, slot {slot}, pid {engine_pid} "
                               f"(its socket's is {pid}); refusing it")
            main_fd = fds.pop(0)
            if os.fstat(main_fd).st_ino != named.st_ino:
                os.close(main_fd)
                raise IpcError(f"engine {self.instance!r} handed over another object than its "
                               f"shared memory {name}; refusing it")
            self.seg = Segment.from_fd(name, main_fd, size, readonly=True, uid=uid)
            self.seg.check_header()
            if self.seg.q[H.PID // 8] != pid:
                raise IpcError(f"engine segment {name} says pid {self.seg.q[H.PID // 8]}, but "
                               f"pid {pid} handed it over; refusing it")
            self.user = user.split(b"\0", 1)[0].decode(errors="replace")
            self.role = Role(role)
            if commands:
                self.slot = slot
                self.slot_seg = Segment.from_fd(f"{name}#desk{slot}", fds.pop(0), slot_size,
                                                readonly=False, uid=uid)
                self._bell = socket.socket(fileno=fds.pop(0))
                self._bell.setblocking(False)
                self._conn, sock = sock, None  # held open: closing it frees the slot
        finally:
            for fd in fds:
                os.close(fd)
            if sock is not None:
                sock.close()

    def _no_listener(self, name: str, named: os.stat_result, commands: bool) -> None:
        """Nothing listens on the attach socket: say why as well as we can."""
        if named.st_uid != os.geteuid():
            raise NoEngine(f"engine {self.instance!r} is not running or still starting: nothing "
                           f"listens on its attach socket (its shared memory {name} belongs "
                           f"to uid {named.st_uid})")
        seg = Segment.attach(name, readonly=True)  # ours: raises EngineStarting / LayoutMismatch
        pid = seg.q[H.PID // 8]
        if commands:
            seg.close()
            raise NoEngine(f"engine {self.instance!r} (pid {pid}) is not running: nothing "
                           f"listens on its attach socket (its shared memory {name} is left "
                           "behind)")
        self.seg = seg  # a dead engine's last words, for status
        self.alive = False

    def _map(self) -> None:
        """The views of the segment (and of our slot)."""
        seg = self.seg
        q = seg.q
        try:
            self.layout = lay = Layout(
                n_instruments=q[H.N_INSTRUMENTS // 8],
                event_capacity=q[H.EVENT_CAPACITY // 8],
                cmd_capacity=q[H.CMD_CAPACITY // 8],
                max_desks=q[H.MAX_DESKS // 8],
                book_depth=q[H.BOOK_DEPTH // 8],
                kill_rows=q[H.N_KILL_ROWS // 8],
                position_cap=q[H.POSITION_CAP // 8],
                limit_cap=q[H.LIMIT_CAP // 8],
                var_cap=q[H.VAR_CAP // 8],
                recon_cap=q[H.RECON_CAP // 8],
                strategy_cap=q[H.STRATEGY_CAP // 8],
                signal_cap=q[H.SIGNAL_CAP // 8],
                trade_capacity=q[H.TRADE_CAPACITY // 8],
            )
        except ValueError as e:
            raise IpcError(f"engine segment {seg.name} has an impossible layout: {e}") from None
        if lay.total_size != seg.size:
            raise IpcError(f"engine segment {seg.name} size does not match its own header")
        self.pid = q[H.PID // 8]
        self.epoch_wall_ns = q[H.EPOCH_WALL_NS // 8]
        table = np.frombuffer(
            seg.buf, dtype=INSTRUMENT_DTYPE, count=lay.n_instruments, offset=lay.instruments_off
        ).copy()
        self.instruments = tuple(
            Instrument(i, r["symbol"].decode(errors="replace"), float(r["tick"]),
                       float(r["ref_price"]))
            for i, r in enumerate(table)
        )
        self.books = [
            SeqlockBlock(seg.buf, lay.book_off(i), BOOK_DTYPE) for i in range(lay.n_instruments)
        ]
        self.kill = SeqlockBlock(seg.buf, lay.kill_off, KILL_DTYPE, lay.kill_rows)
        self.feed = SeqlockBlock(seg.buf, lay.feed_off, FEED_DTYPE, MAX_VENUES)
        self.positions = SeqlockBlock(seg.buf, lay.positions_off, POSITION_DTYPE, lay.position_cap)
        self.limits = SeqlockBlock(seg.buf, lay.limits_off, LIMIT_DTYPE, lay.limit_cap)
        self.var = SeqlockBlock(seg.buf, lay.var_off, VAR_DTYPE, lay.var_cap)
        self.recon = SeqlockBlock(seg.buf, lay.recon_off, RECON_DTYPE, lay.recon_cap)
        self.strategies = SeqlockBlock(seg.buf, lay.strategies_off, STRATEGY_DTYPE,
                                       lay.strategy_cap)
        self.signals = SeqlockBlock(seg.buf, lay.signals_off, SIGNAL_DTYPE, lay.signal_cap)
        self.events = EventRingReader(seg.buf, lay.events_off, lay.event_capacity, from_start=True)
        self.trades = TradeRingReader(seg.buf, lay.trades_off, lay.trade_capacity,
                                      from_start=True)
        self.latency = SeqlockBlock(seg.buf, lay.latency_off, LATENCY_DTYPE, len(LATENCY_NAMES))
        if self.slot_seg is not None:
            self._map_slot()

    def _map_slot(self) -> None:
        lay, buf = self.layout, self.slot_seg.buf
        if self.slot_seg.size < lay.slot_size:
            raise IpcError(f"engine {self.instance!r} handed over a command slot of "
                           f"{self.slot_seg.size} bytes, its layout says {lay.slot_size}")
        self._slot_q = sq = buf[:CACHE_LINE].cast("Q")
        claims = (sq[SLOT_CLAIMS // 8] + 1) & _U64
        sq[SLOT_CLAIMS // 8] = claims
        self._write_slot_header()
        self._resets_seen = sq[SLOT_RESETS // 8]
        self._cmd = SealedCommandRing(buf, lay.slot_cmd_off, lay.cmd_capacity, COMMAND_STRUCT)
        self._ack = SpscRing(buf, lay.slot_ack_off, lay.cmd_capacity, ACK_STRUCT)
        # command ids: unique per process and slot, never 0
        self._id_base = (os.getpid() & 0x3FFFFF) << 40 | (self.slot & 0xFF) << 32

    def _write_slot_header(self) -> None:
        """Who holds the slot, in its header: for people looking at it; the engine never
        reads it (it knows who we are from the kernel: ``desks()``)."""
        self._slot_q[SLOT_OWNER_PID // 8] = os.getpid()
        user = self.user.encode()[:16].ljust(16, b"\0")
        self.slot_seg.buf[SLOT_USER : SLOT_USER + 16] = user

    def desks(self) -> list[DeskInfo]:
        """The desks holding a command slot now (the engine's DESKS table)."""
        lay, buf = self.layout, self.seg.buf
        out = []
        for k in range(lay.max_desks):
            pid, uid, role, attaches, raw = _DESK_ROW.unpack_from(buf, lay.desk_row_off(k))
            if not pid:
                continue
            try:
                role = Role(role)
            except ValueError:
                continue  # being written
            out.append(DeskInfo(k, pid, uid, raw.split(b"\0", 1)[0].decode(errors="replace"),
                                role, attaches))
        return out

    def _check_reset(self) -> bool:
        """Did the engine reset this slot since we last looked? If so, resync (and say so)."""
        sq = self._slot_q
        if sq is None or sq[SLOT_RESETS // 8] == self._resets_seen:
            return False
        self._resets_seen = sq[SLOT_RESETS // 8]
        self.resets += 1
        self._write_slot_header()  # whatever scribbled the rings may have hit it too
        return True

    # -- header -----------------------------------------------------------------------------------
    def heartbeat_age_ms(self) -> float:
        return (time.monotonic_ns() - self.seg.q[H.HB_MONO_NS // 8]) / 1e6

    def engine_state(self) -> int:
        return self.seg.q[H.STATE // 8]

    def replaced(self) -> bool:
        """True once the name no longer refers to the segment we mapped (engine gone/restarted)."""
        return not self.seg.still_current()

    def publish_stamp(self) -> tuple[int, int]:
        """The frame stamp: (how many book publishes, CLOCK_MONOTONIC ns of the latest).
        CLOCK_MONOTONIC is system-wide, so ``time.monotonic_ns() - mono_ns`` is publish ->
        now. (0, 0) before the first publish."""
        q = self.seg.q
        for _ in range(1000):
            seq = q[H.PUBLISH_SEQ // 8]
            mono = q[H.PUBLISH_MONO_NS // 8]
            if q[H.PUBLISH_SEQ // 8] == seq:
                return seq, mono
        return seq, mono  # an engine publishing non-stop: the pair is at most one frame off

    def replay_state(self) -> ReplayState | None:
        """Where a replay engine is in its recorded day; None for any other engine."""
        q = self.seg.q
        for _ in range(1000):
            first = q[H.REPLAY_FIRST_NS // 8]
            if not first:
                return None
            last, now = q[H.REPLAY_LAST_NS // 8], q[H.REPLAY_NOW_NS // 8]
            speed = _F64.unpack(_U64_BITS.pack(q[H.REPLAY_SPEED // 8]))[0]
            paused = q[H.REPLAY_PAUSED // 8]
            if q[H.REPLAY_NOW_NS // 8] == now and q[H.REPLAY_FIRST_NS // 8] == first:
                break
        return ReplayState(first, last, now, speed, bool(paused))

    def counter(self, offset: int) -> int:
        return self.seg.q[offset // 8]

    def rejects(self) -> dict[str, int]:
        """What the engine dropped from desk slots, by reason (layout.REJECT_REASONS)."""
        q = self.seg.q
        return {name: q[H.REJECTS // 8 + k] for k, name in enumerate(REJECT_REASONS)}

    def status(self) -> EngineStatus:
        q = self.seg.q
        kill = self.read_kill()
        g_tripped, g_reason, g_user = False, "", ""
        killed: list[str] = []
        if kill is not None:
            g_tripped = bool(kill[0]["state"])
            g_reason = kill[0]["reason"].decode(errors="replace")
            g_user = kill[0]["user"].decode(errors="replace")
            n = len(self.instruments)
            killed = [self.instruments[i - 1].symbol for i in range(1, min(n + 1, len(kill)))
                      if kill[i]["state"]]
        raw = bytes(self.seg.buf[H.INSTANCE : H.INSTANCE + H.INSTANCE_LEN])
        return EngineStatus(
            instance=raw.split(b"\0", 1)[0].decode(errors="replace"),
            pid=q[H.PID // 8],
            state=EngineState.NAMES.get(q[H.STATE // 8], "?"),
            epoch_wall_ns=q[H.EPOCH_WALL_NS // 8],
            heartbeat_age_ms=self.heartbeat_age_ms(),
            heartbeat_count=q[H.HB_COUNT // 8],
            idle=_IDLE_NAMES.get(q[H.IDLE_MODE // 8], "?"),
            kill_tripped=g_tripped,
            kill_reason=g_reason,
            kill_user=g_user,
            instruments=self.instruments,
            commands_accepted=q[H.CMDS_ACCEPTED // 8],
            commands_rejected=q[H.CMDS_REJECTED // 8],
            loop_turns=q[H.LOOP_TURNS // 8],
            feed_events=q[H.FEED_EVENTS // 8],
            publishes=q[H.PUBLISHES // 8],
            instruments_killed=tuple(killed),
            venues=self.venues(),
            rejects=self.rejects(),
        )

    def venues(self) -> tuple[VenueStatus, ...]:
        """The engine's order venues: is each session logged on, are its books good?"""
        q, buf = self.seg.q, self.seg.buf
        n = min(q[H.N_VENUES // 8], MAX_VENUES)
        out = []
        for k in range(n):
            off = H.VENUES + 16 * k
            name = bytes(buf[off : off + 8]).split(b"\0", 1)[0].decode(errors="replace")
            word = q[(off + 8) // 8]
            out.append(VenueStatus(name, bool(word & VENUE_UP), bool(word & VENUE_BOOKS_OK)))
        return tuple(out)

    # -- snapshots ----------------------------------------------------------------------------------
    def read_book(self, i: int, out: np.ndarray | None = None) -> np.ndarray | None:
        return self.books[i].read(out)

    def read_kill(self, out: np.ndarray | None = None) -> np.ndarray | None:
        return self.kill.read(out)

    def read_risk(self, name: str) -> np.ndarray | None:
        """The ``positions``, ``limits``, ``var``, ``recon``, ``strategies`` or ``signals``
        table as last published (used rows only; None: a torn read, try again)."""
        rows = getattr(self, name).read()
        if rows is None:
            return None
        key = {"limits": "key", "recon": "key", "strategies": "name",
               "signals": "label"}.get(name, "book")
        return rows[rows[key] != b""]

    def read_feed(self) -> np.ndarray | None:
        """Market data health per feed venue (FEED_DTYPE rows with a venue name), or None
        if the engine was writing it (try again)."""
        rows = self.feed.read()
        return None if rows is None else rows[rows["venue"] != b""]

    def poll_events(self, max_records: int = 4096) -> np.ndarray:
        return self.events.poll(max_records)

    def poll_trades(self, max_n: int = 4096) -> np.ndarray:
        """The trades the engine's books applied since the last poll, oldest first, at most
        ``max_n`` (a copy: TRADE_DTYPE records, fields ``seq``, ``ts_exch_ns``,
        ``ts_recv_ns``, ``price``, ``size``, ``price_ticks``, ``instrument``, ``venue``,
        ``side``). The first poll starts at the oldest trade the ring still holds. Trades
        the engine overwrote before this client read them are counted in ``trades_lost``."""
        return self.trades.poll(max_n)

    @property
    def trades_lost(self) -> int:
        """Trades this client missed because it read too slowly (the ring lapped it)."""
        return self.trades.lost if self.trades is not None else 0

    def read_latency(self) -> dict[str, np.ndarray] | None:
        """The engine's latency histograms: name (layout.LATENCY_NAMES: ``tick_to_order``,
        ``command``) -> counts per bucket since the engine started (u64, LATENCY_BUCKETS of
        them, bucket i between ``latency_edges_us()[i]`` and ``[i + 1]``); None if the
        engine was writing them (try again)."""
        rows = self.latency.read()
        if rows is None:
            return None
        return {r["name"].decode(errors="replace"): r["counts"].copy() for r in rows}

    def read_latency_rows(self) -> np.ndarray | None:
        """The LATENCY rows themselves (LATENCY_DTYPE: name, count, sum_ns, max_ns, counts)."""
        return self.latency.read()

    @staticmethod
    def latency_edges_us() -> np.ndarray:
        """The latency buckets' edges in µs: [0, 1, 2^0.25, …, 2^24, inf] (layout)."""
        return latency_edges_us()

    # -- commands -----------------------------------------------------------------------------------
    def send(
        self,
        verb: int,
        scope: int = Scope.GLOBAL,
        scope_id: int = 0,
        *,
        arg0: float = 0.0,
        arg1: float = 0.0,
        text: str = "",
    ) -> int:
        """Queue a command; return its id. Raises IpcError if the ring is full."""
        if self._cmd is None:
            raise IpcError("this client was attached read-only (commands=False)")
        cmd_id = self._id_base | next(self._ids)
        cmd = Command(
            cmd_id=cmd_id,
            verb=int(verb),
            scope=int(scope),
            scope_id=scope_id,
            arg0=arg0,
            arg1=arg1,
            user=self.user,
            workstation=self.workstation,
            role=int(self.role),
            text=text,
            ts_ns=time.time_ns(),
        )
        ring = self._cmd
        if not ring.try_push(*cmd.fields()):
            if ring.sane():
                raise IpcError(
                    f"command ring of engine {self.instance!r} is full "
                    f"({self.layout.cmd_capacity} commands waiting): is the engine stuck?"
                )
            self._ring_bell()  # let the engine see the corrupt words and reset them
            raise IpcError(
                f"command ring of this desk's slot {self.slot} is corrupt (head {ring.head}, "
                f"tail {ring.tail}); the engine resets it at its next look: send again"
            )
        self._ring_bell()
        return cmd_id

    def _ring_bell(self) -> None:
        # Ring the doorbell unless the engine never sleeps (a spinning engine looks at every
        # attached desk's command tail each turn). Ringing only when the asleep flag is up
        # would race (x86 may order our flag load before our tail store becomes visible: a
        # wake-up lost until max_sleep_us); a datagram costs a few µs per command. The socket
        # is the one the engine connected to its doorbell for us at attach.
        if self.seg.q[H.IDLE_MODE // 8] != _SPIN:
            try:
                self._bell.send(b"!")
            except OSError:
                pass  # its bell is full (the engine is awake, or looks within max_sleep_us),
                #       or the engine is gone (the heartbeat says so)

    def poll_acks(self) -> list[Ack]:
        acks = []
        ring = self._ack
        if ring is None:
            return acks
        self._check_reset()
        while (f := ring.pop()) is not None:
            acks.append(Ack.from_fields(f))
        return acks

    def poll_ack(self) -> Ack | None:
        ring = self._ack
        if ring is None:
            return None
        if self._slot_q[_RESETS] != self._resets_seen:
            self._check_reset()
        f = ring.pop()
        return None if f is None else Ack.from_fields(f)

    def request(self, verb: int, scope: int = Scope.GLOBAL, scope_id: int = 0, *,
                timeout: float = 2.0, text: str = "", arg0: float = 0.0, arg1: float = 0.0) -> Ack:
        """Send a command and wait for its ack (polls; for scripts, not for the desk).

        Raises SlotReset if the engine reset this desk's command ring meanwhile (the command
        was dropped unanswered), or if no ack came and the engine had reset the slot."""
        resets = self.resets
        cmd_id = self.send(verb, scope, scope_id, text=text, arg0=arg0, arg1=arg1)
        deadline = time.monotonic() + timeout
        pause = 0.0
        while True:
            ack = self.poll_ack()
            if ack is not None and ack.cmd_id == cmd_id:
                return ack
            if ack is not None and ack.cmd_id == 0 and not ack.accepted:
                raise SlotReset(f"engine {self.instance!r} reset this desk's slot {self.slot} "
                                f"before answering {_verb_name(verb)}: {ack.reason}")
            if ack is None:
                if time.monotonic() > deadline:
                    if self.resets != resets:
                        raise SlotReset(
                            f"no ack for {_verb_name(verb)} from engine {self.instance!r}: it "
                            f"reset this desk's slot {self.slot} meanwhile (corrupt words)")
                    raise CommandTimeout(
                        f"no ack for {_verb_name(verb)} from engine {self.instance!r} within "
                        f"{timeout:g} s (engine state {EngineState.NAMES.get(self.engine_state())})"
                    )
                time.sleep(pause)
                pause = min(0.001, pause + 0.00005)

    # -- teardown ------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._bell is not None:
            self._bell.close()
            self._bell = None
        if self._slot_q is not None:
            self._slot_q.release()
            self._slot_q = None
        self._cmd = self._ack = None
        if self.slot_seg is not None:
            self.slot_seg.close()
            self.slot_seg = None
        if self._conn is not None:
            self._conn.close()  # the engine frees our slot as soon as it sees this
            self._conn = None
        for b in self.books:
            b.release()
        self.books = []
        for block in (self.kill, self.feed, self.positions, self.limits, self.var, self.latency):
            if block is not None:
                block.release()
        self.kill = self.feed = self.positions = self.limits = self.var = None
        self.latency = None
        self.events = None
        self.trades = None
        if self.seg is not None:
            self.seg.close()
            self.seg = None

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _verb_name(verb: int) -> str:
    try:
        return Verb(verb).name
    except ValueError:
        return f"verb#{verb}"
