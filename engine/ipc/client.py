"""A desk's (or ``helmdesk ctl``'s) side of an engine segment: read snapshots, send commands.

Plain Python, no Qt: ``app/`` wraps it in a QObject; ``helmdesk ctl`` uses it directly.

Anything attached to the segment can scribble over it, this desk's slot included. Nothing
read here raises because of it: a corrupt ring reads as empty (or full), and when the engine
resets this desk's slot (it found its words impossible: ``engine.ipc.deskslots``) the client
notices the slot's reset count move, writes its slot header again and goes on; ``request``
raises ``SlotReset`` for a command the reset may have swallowed.
"""

from __future__ import annotations

import getpass
import itertools
import os
import socket
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
from engine.ipc.rings import EventRingReader, SealedCommandRing, SpscRing
from engine.ipc.rundir import doorbell_path
from engine.ipc.segment import IpcError, Segment, try_lock, unlock
from engine.ipc.seqlock import SeqlockBlock

__all__ = ["EngineClient", "EngineStatus", "CommandTimeout", "SlotReset", "Instrument"]

_IDLE_NAMES = {0: "spin", 1: "hybrid", 2: "sleep"}
_SPIN = 0
_U64 = (1 << 64) - 1
_RESETS = SLOT_RESETS // 8


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
    ) -> None:
        self.instance = instance
        self.user = user if user is not None else _os_user()
        self.workstation = workstation or os.uname().nodename[:16]
        self.role = role
        self.seg = seg = Segment.attach(segment_name(instance))
        q = seg.q
        try:
            self.layout = lay = Layout(
                n_instruments=q[H.N_INSTRUMENTS // 8],
                event_capacity=q[H.EVENT_CAPACITY // 8],
                cmd_capacity=q[H.CMD_CAPACITY // 8],
                max_desks=q[H.MAX_DESKS // 8],
                book_depth=q[H.BOOK_DEPTH // 8],
            )
        except ValueError as e:
            seg.close()
            raise IpcError(f"engine segment {seg.name} has an impossible layout: {e}") from None
        if lay.total_size != seg.size:
            seg.close()
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
        self.events = EventRingReader(seg.buf, lay.events_off, lay.event_capacity, from_start=True)
        self.slot: int | None = None
        self._cmd: SealedCommandRing | None = None
        self._ack: SpscRing | None = None
        self._slot_q: memoryview | None = None  # the slot header as u64 words
        self._resets_seen = 0
        self.resets = 0  #: how many times the engine reset this desk's slot
        self._ids = itertools.count(1)
        self._bell: socket.socket | None = None
        self._bell_path = ""
        self._bell_connected = False
        if commands:
            try:
                self._claim_slot()
            except BaseException:
                self.close()
                raise

    # -- slots ----------------------------------------------------------------------------------
    def _claim_slot(self) -> None:
        lay, seg = self.layout, self.seg
        for k in range(lay.max_desks):
            if try_lock(seg.fd, lay.slot_off(k), 1):
                self.slot = k
                break
        else:
            raise IpcError(
                f"all {lay.max_desks} command slots of engine {self.instance!r} are in use; "
                "close a desk or ctl first"
            )
        off = lay.slot_off(self.slot)
        buf = seg.buf
        self._slot_q = sq = buf[off : off + CACHE_LINE].cast("Q")
        claims = (sq[SLOT_CLAIMS // 8] + 1) & _U64
        sq[SLOT_CLAIMS // 8] = claims
        self._write_slot_header()
        self._resets_seen = sq[SLOT_RESETS // 8]
        self._cmd = SealedCommandRing(buf, lay.cmd_ring_off(self.slot), lay.cmd_capacity,
                                      COMMAND_STRUCT)
        self._ack = SpscRing(buf, lay.ack_ring_off(self.slot), lay.cmd_capacity, ACK_STRUCT)
        self._ack.skip_all()  # acks left by a previous owner are not ours
        # command ids: unique per process and claim, never 0
        self._id_base = (os.getpid() & 0x3FFFFF) << 40 | (claims & 0xFF) << 32
        self._bell_path = doorbell_path(self.instance)
        self._bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._bell.setblocking(False)
        try:  # connected once: each ring is then a send, no path lookup in the kernel
            self._bell.connect(self._bell_path)
            self._bell_connected = True
        except OSError:
            self._bell_connected = False  # rung by path (sendto) until a connect works

    def _write_slot_header(self) -> None:
        """Who holds the slot (for ``helmdesk status`` and the desks): pid and user."""
        off = self.layout.slot_off(self.slot)
        buf = self.seg.buf
        self._slot_q[SLOT_OWNER_PID // 8] = os.getpid()
        user = self.user.encode()[:16].ljust(16, b"\0")
        buf[off + SLOT_USER : off + SLOT_USER + 16] = user

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
            g_tripped = bool(kill[0]["tripped"])
            g_reason = kill[0]["reason"].decode(errors="replace")
            g_user = kill[0]["user"].decode(errors="replace")
            killed = [self.instruments[i - 1].symbol for i in range(1, len(kill)) if kill[i]["tripped"]]
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

    def read_feed(self) -> np.ndarray | None:
        """Market data health per feed venue (FEED_DTYPE rows with a venue name), or None
        if the engine was writing it (try again)."""
        rows = self.feed.read()
        return None if rows is None else rows[rows["venue"] != b""]

    def poll_events(self, max_records: int = 4096) -> np.ndarray:
        return self.events.poll(max_records)

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
        self.seg.q[H.CMD_BELL // 8] = cmd_id  # any change tells the engine to look
        self._ring_bell()
        return cmd_id

    def _ring_bell(self) -> None:
        # Ring the doorbell unless the engine never sleeps. Ringing only when the asleep flag
        # is up would race (x86 may order our flag load before our bell store becomes
        # visible: a wake-up lost until max_sleep_us); a datagram costs a few µs per command.
        if self.seg.q[H.IDLE_MODE // 8] != _SPIN:
            try:
                if self._bell_connected:
                    self._bell.send(b"!")
                else:
                    self._bell.sendto(b"!", self._bell_path)
            except BlockingIOError:
                pass  # its bell is full: the engine is awake, or looks within max_sleep_us
            except OSError:
                self._bell_connected = False  # the engine's socket went away: by path again

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
        if self.seg is None:
            return
        if self._bell is not None:
            self._bell.close()
        if self.slot is not None:
            off = self.layout.slot_off(self.slot)
            if self._slot_q is not None:
                self._slot_q[SLOT_OWNER_PID // 8] = 0
                self._slot_q.release()
            try:
                unlock(self.seg.fd, off, 1)
            except OSError:
                pass
        self._slot_q = None
        for b in self.books:
            b.release()
        self.kill.release()
        self.feed.release()
        self.books = []
        self.events = None
        self._cmd = self._ack = None
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


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())
