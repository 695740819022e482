"""The engine link: polls shared memory on a QTimer at screen rate and emits typed signals.

It owns the ``EngineClient`` and its life cycle: attach when an engine appears, report STALE
when the heartbeat stops or the engine says it stopped, and re-attach on its own when a new
engine takes the name. Commands are coroutines that end with the engine's ack.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from widgets.latency import LatencyHistogram
from engine.ipc import (
    Ack,
    AttachRefused,
    EngineClient,
    EngineState,
    IpcError,
    LayoutMismatch,
    SlotReset,
)

__all__ = ["EngineLink", "Health"]


@dataclass(frozen=True, slots=True)
class Health:
    state: str  # connected | stale | disconnected
    text: str
    pid: int = 0
    heartbeat_age_ms: float = 0.0


class EngineLink(QObject):
    attached = Signal(object)  # tuple[Instrument, ...]
    health_changed = Signal(object)  # Health (emitted on every poll while attached)
    book = Signal(int, object)  # instrument index, BOOK_DTYPE record copy
    kill = Signal(object)  # KILL_DTYPE rows copy
    events = Signal(object, int)  # EVENT_DTYPE records, total lost so far
    trades = Signal(object, int)  # TRADE_DTYPE records (every instrument), total lost so far
    role = Signal(object)  # Role the engine grants this desk
    refused = Signal(str)  # attach refused for a reason the user must act on

    def __init__(self, instance: str, *, stale_ms: float = 300, poll_ms: int = 50,
                 workstation: str = "desk", parent=None) -> None:
        super().__init__(parent)
        self.instance = instance
        self.stale_ms = stale_ms
        self.workstation = workstation
        self.client: EngineClient | None = None
        self.instrument = 0  #: the desk's current instrument (its chart, depth, tape)
        self._watched: dict[int, int] = {0: -1}  #: instrument -> book seq last emitted
        self.health = Health("disconnected", f"waiting for engine {instance!r}")
        self._kill_seq = -1
        self._book_out: np.ndarray | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._next_attach = 0.0
        self._refused_msg = ""
        #: this desk's command round trips (send -> the ack read back), µs
        self.round_trips = LatencyHistogram()
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.poll()
        self.timer.start()

    def close(self) -> None:
        self.timer.stop()
        self._detach("desk closed")

    def select_instrument(self, index: int) -> None:
        """The current instrument: its book is read (and emitted at once) as well as the
        watched ones'."""
        self.instrument = index
        self._watched[index] = -1

    def watch(self, indices) -> None:
        """Read the books of ``indices`` (the ladders' instruments) besides the current one;
        each is emitted once now and then whenever the engine publishes a change."""
        keep = set(indices) | {self.instrument}
        self._watched = {i: (-1 if i not in self._watched else self._watched[i]) for i in keep}

    def refresh(self) -> None:
        """Emit every watched book at the next poll, changed or not (a new ladder, a symbol
        change)."""
        for i in self._watched:
            self._watched[i] = -1

    # -- polling -----------------------------------------------------------------------------------
    def poll(self) -> None:
        if self.client is None and not self._try_attach():
            return
        c = self.client
        state = c.engine_state()
        age = c.heartbeat_age_ms()
        if c.replaced():
            self._set_health(Health("stale", "engine gone; waiting for it to come back", c.pid, age))
            self._detach("engine replaced")
            return
        if state != EngineState.RUNNING:
            name = EngineState.NAMES.get(state, "?")
            self._set_health(Health("stale", f"engine pid {c.pid} {name}", c.pid, age))
        elif age > self.stale_ms:
            self._set_health(
                Health("stale", f"engine pid {c.pid} silent: heartbeat {age:,.0f} ms old", c.pid, age)
            )
        else:
            refused = sum(c.rejects().values())  # what desks wrote that the engine dropped
            self._set_health(
                Health("connected", f"engine {self.instance} · pid {c.pid} · heartbeat {age:.0f} ms"
                       + (f" · {refused:,} desk inputs refused" if refused else ""), c.pid, age)
            )
            # a dead engine may have left a seqlock odd: only read snapshots from a live one
            self._read_snapshots(c)
        self._drain(c)

    def _read_snapshots(self, c: EngineClient) -> None:
        books = c.books
        watched = self._watched
        for i, last in watched.items():
            if not 0 <= i < len(books):
                continue
            seq = books[i].read_seq()
            if seq != last:
                rec = c.read_book(i)
                if rec is not None:
                    watched[i] = seq
                    self.book.emit(i, rec[0])
        kseq = c.kill.read_seq()
        if kseq != self._kill_seq:
            rows = c.read_kill()
            if rows is not None:
                self._kill_seq = kseq
                self.kill.emit(rows)

    def _drain(self, c: EngineClient) -> None:
        ev = c.poll_events()
        if len(ev):
            self.events.emit(ev, c.events.lost)
        tr = c.poll_trades()
        if len(tr):
            self.trades.emit(tr, c.trades_lost)
        for ack in c.poll_acks():
            if ack.cmd_id == 0:  # the engine reset this desk's command ring: what waits is lost
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(SlotReset(f"the engine dropped this desk's commands: "
                                                    f"{ack.reason}"))
                self._pending.clear()
                continue
            fut = self._pending.pop(ack.cmd_id, None)
            if fut is not None and not fut.done():
                fut.set_result(ack)

    def _try_attach(self) -> bool:
        now = time.monotonic()
        if now < self._next_attach:
            return False
        self._next_attach = now + 0.25
        try:
            client = EngineClient(self.instance, workstation=self.workstation)
        except (LayoutMismatch, AttachRefused) as e:  # the user must act: say so
            if str(e) != self._refused_msg:
                self._refused_msg = str(e)
                self.refused.emit(str(e))
            self._set_health(Health("disconnected", f"REFUSED: {e}"))
            return False
        except IpcError as e:
            if self.health.state != "stale":
                self._set_health(Health("disconnected", f"waiting for engine {self.instance!r}: {e}"))
            return False
        self.client = client
        self._refused_msg = ""
        self._kill_seq = -1
        self.refresh()
        self.attached.emit(client.instruments)
        self.role.emit(client.role)  # granted in the engine's answer to the attach
        return True

    def _detach(self, why: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(IpcError(f"engine link closed ({why}) before the ack"))
        self._pending.clear()
        if self.client is not None:
            self.client.close()
            self.client = None

    def _set_health(self, h: Health) -> None:
        self.health = h
        self.health_changed.emit(h)

    # -- commands ----------------------------------------------------------------------------------
    def command(self, verb: int, scope: int = 0, scope_id: int = 0, *, text: str = "",
                arg0: float = 0.0, arg1: float = 0.0, timeout: float = 2.0):
        """Send a command NOW (written to the engine's ring before this returns: a click's
        order does not wait for the event loop's next turn); await the result for its ack.
        The await raises IpcError (not attached, or the link closed) or
        asyncio.TimeoutError."""
        if self.client is None:
            return _refused(IpcError(f"not attached to engine {self.instance!r}"))
        t0 = time.perf_counter_ns()
        cmd_id = self.client.send(verb, scope, scope_id, text=text, arg0=arg0, arg1=arg1)
        fut = asyncio.get_event_loop().create_future()
        self._pending[cmd_id] = fut
        return self._ack(cmd_id, fut, t0, timeout)

    async def _ack(self, cmd_id: int, fut: asyncio.Future, t0: int, timeout: float) -> Ack:
        try:
            ack = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(cmd_id, None)
        self.round_trips.add((time.perf_counter_ns() - t0) / 1e3)
        return ack


async def _refused(e: Exception) -> Ack:
    raise e
