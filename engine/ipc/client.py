"""A desk's (or ``helmdesk ctl``'s) side of an engine segment: read snapshots, send commands.

Plain Python, no Qt: ``app/`` wraps it in a QObject; ``helmdesk ctl`` uses it directly.
"""

from __future__ import annotations

import getpass
import itertools
import os
import socket
import time
from typing import NamedTuple
from dataclasses import dataclass

import numpy as np

from engine.core.roles import Role
from engine.ipc.commands import Ack, Command, Scope, Verb
from engine.ipc.layout import (
    ACK_STRUCT,
    BOOK_DTYPE,
    COMMAND_STRUCT,
    INSTRUMENT_DTYPE,
    KILL_DTYPE,
    FEED_DTYPE,
    MAX_VENUES,
    VENUE_BOOKS_OK,
    VENUE_UP,
    SLOT_OWNER_PID,
    SLOT_CLAIMS,
    SLOT_USER,
    EngineState,
    H,
    Layout,
    segment_name,
)
from engine.ipc.publisher import doorbell_address
from engine.ipc.rings import EventRingReader, SpscRing
from engine.ipc.segment import IpcError, Segment, try_lock, unlock
from engine.ipc.seqlock import SeqlockBlock

__all__ = ["EngineClient", "EngineStatus", "CommandTimeout", "Instrument"]

_IDLE_NAMES = {0: "spin", 1: "hybrid", 2: "sleep"}
_SPIN = 0


class CommandTimeout(IpcError):
    pass


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
            Instrument(i, r["symbol"].decode(), float(r["tick"]), float(r["ref_price"]))
            for i, r in enumerate(table)
        )
        self.books = [
            SeqlockBlock(seg.buf, lay.book_off(i), BOOK_DTYPE) for i in range(lay.n_instruments)
        ]
        self.kill = SeqlockBlock(seg.buf, lay.kill_off, KILL_DTYPE, lay.kill_rows)
        self.feed = SeqlockBlock(seg.buf, lay.feed_off, FEED_DTYPE, MAX_VENUES)
        self.events = EventRingReader(seg.buf, lay.events_off, lay.event_capacity, from_start=True)
        self.slot: int | None = None
        self._cmd: SpscRing | None = None
        self._ack: SpscRing | None = None
        self._ids = itertools.count(1)
        self._bell: socket.socket | None = None
        self._bell_addr = doorbell_address(instance)
        if commands:
            self._claim_slot()

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
        buf[off + SLOT_OWNER_PID : off + SLOT_OWNER_PID + 8] = os.getpid().to_bytes(8, "little")
        claims = int.from_bytes(buf[off + SLOT_CLAIMS : off + SLOT_CLAIMS + 8], "little") + 1
        buf[off + SLOT_CLAIMS : off + SLOT_CLAIMS + 8] = claims.to_bytes(8, "little")
        user = self.user.encode()[:16].ljust(16, b"\0")
        buf[off + SLOT_USER : off + SLOT_USER + 16] = user
        self._cmd = SpscRing(buf, lay.cmd_ring_off(self.slot), lay.cmd_capacity, COMMAND_STRUCT)
        self._ack = SpscRing(buf, lay.ack_ring_off(self.slot), lay.cmd_capacity, ACK_STRUCT)
        self._ack.skip_all()  # acks left by a previous owner are not ours
        # command ids: unique per process and claim, never 0
        self._id_base = (os.getpid() & 0x3FFFFF) << 40 | (claims & 0xFF) << 32
        self._bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._bell.setblocking(False)

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
            instance=raw.split(b"\0", 1)[0].decode(),
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
        if not self._cmd.try_push(*cmd.fields()):
            raise IpcError(
                f"command ring of engine {self.instance!r} is full "
                f"({self.layout.cmd_capacity} commands waiting): is the engine stuck?"
            )
        q = self.seg.q
        q[H.CMD_BELL // 8] = cmd_id  # any change tells the engine to look
        # Ring the doorbell unless the engine never sleeps. Ringing only when the asleep flag
        # is up would race (x86 may order our flag load before our bell store becomes
        # visible: a wake-up lost until max_sleep_us); a datagram costs a few µs per command.
        if q[H.IDLE_MODE // 8] != _SPIN:
            try:
                self._bell.sendto(b"!", self._bell_addr)
            except OSError:
                pass  # engine gone or its bell full: it looks at least every max_sleep_us anyway
        return cmd_id

    def poll_acks(self) -> list[Ack]:
        acks = []
        ring = self._ack
        if ring is None:
            return acks
        while (f := ring.pop()) is not None:
            acks.append(Ack.from_fields(f))
        return acks

    def poll_ack(self) -> Ack | None:
        f = self._ack.pop() if self._ack is not None else None
        return None if f is None else Ack.from_fields(f)

    def request(self, verb: int, scope: int = Scope.GLOBAL, scope_id: int = 0, *,
                timeout: float = 2.0, text: str = "", arg0: float = 0.0, arg1: float = 0.0) -> Ack:
        """Send a command and wait for its ack (polls; for scripts, not for the desk)."""
        cmd_id = self.send(verb, scope, scope_id, text=text, arg0=arg0, arg1=arg1)
        deadline = time.monotonic() + timeout
        pause = 0.0
        while True:
            ack = self.poll_ack()
            if ack is not None and ack.cmd_id == cmd_id:
                return ack
            if ack is None:
                if time.monotonic() > deadline:
                    raise CommandTimeout(
                        f"no ack for {Verb(verb).name} from engine {self.instance!r} within "
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
            self.seg.buf[off + SLOT_OWNER_PID : off + SLOT_OWNER_PID + 8] = bytes(8)
            try:
                unlock(self.seg.fd, off, 1)
            except OSError:
                pass
        for b in self.books:
            b.release()
        self.kill.release()
        self.books = []
        self.events = None
        self._cmd = self._ack = None
        self.seg.close()
        self.seg = None

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())
