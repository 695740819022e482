"""The kernel's command stage: one handler per verb, in a table.

A command (``engine.ipc.commands.Command``: from a desk's command ring, or ``helmdesk ctl``)
is checked for shape, then for the sender's role — the role the engine grants the OS user, from
the profile's ``[users]``, never one the client claims — and handed to its verb's handler.
Every command gets exactly one ``Ack``: accepted with what was done, or rejected with the
reason; every one is audited (the journal), whatever the answer. The ack of a KILL or REARM
confirms a new kill switch state only once that state is durable (``PendingAck``: the state
file fsync'd); if it cannot be saved, the ack says so.

Handlers (``_handle_<verb>``) do their work through the kernel's parts: the risk engine's kill
switches, the one ``submit`` door for manual orders, execution's cancels.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from collections.abc import Callable

from engine.core.intents import ROUTER, SIDE_NAMES, OrderIntent
from engine.core.profile import Profile
from engine.core.records import Notice, Scope
from engine.ipc.commands import (
    ROLE_MAY,
    Ack,
    AckStatus,
    Command,
    PendingAck,
    Verb,
    check_command,
    parse_order_text,
)

__all__ = ["CommandHandlers"]

log = logging.getLogger("helmdesk.engine")

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR


class _Refused(Exception):
    """A handler's refusal: the reason goes back in the ack."""


class CommandHandlers:
    """``handle(cmd, now_ns) -> Ack`` for the kernel (module docstring)."""

    def __init__(self, profile: Profile, kernel) -> None:
        self.profile = profile
        self.kernel = kernel
        self.symbols = [i.symbol for i in profile.instruments]
        self._save = 0  # the kill switch save the command being answered made (0: none)
        self.table: dict[Verb, Callable[[Command, int], tuple[str, int]]] = {
            Verb.PING: self._handle_ping,
            Verb.KILL: self._handle_kill,
            Verb.REARM: self._handle_rearm,
            Verb.ORDER: self._handle_order,
            Verb.CANCEL: self._handle_cancel,
            Verb.CANCEL_ALL: self._handle_cancel_all,
        }

    def handle(self, cmd: Command, now_ns: int) -> Ack | PendingAck:
        self._save = 0
        ack = self._answer(cmd, now_ns)
        journal = self.kernel.journal
        if journal is not None:  # the audit trail: who, what, from where, the answer
            journal.command(cmd, ack)
        save = self._save
        if save and ack.accepted and not self.kernel.risk.kill.durable(save):
            return PendingAck(ack, self._when_durable(ack, save))
        return ack

    def _when_durable(self, ack: Ack, save: int):
        """The ack, once kill switch save ``save`` is on disk; with the reason if it fails."""
        kill = self.kernel.risk.kill

        def ready() -> Ack | None:
            if kill.durable(save):
                return ack
            err = kill.persist_error
            if err is None:
                return None
            log.error("kill switch state not saved: %s", err)
            return replace(ack, reason=f"{ack.reason}; STATE NOT SAVED: {err}"[:96])

        return ready

    def _answer(self, cmd: Command, now_ns: int) -> Ack:
        k = self.kernel
        reason = check_command(cmd, len(self.symbols))
        if reason is None:
            granted = self.profile.role_of(cmd.user)
            verb = Verb(cmd.verb)
            if verb not in ROLE_MAY[granted]:
                reason = f"user {cmd.user!r} is {granted.label} here and may not {verb.name}"
        if reason is None:
            try:
                text, value = self.table[Verb(cmd.verb)](cmd, now_ns)
            except _Refused as e:
                reason = str(e)
        if reason is not None:
            log.warning("command %s %s from %s@%s REJECTED: %s",
                        cmd.cmd_id, cmd.verb_name, cmd.user, cmd.workstation, reason)
            k.notify(WARNING, f"{cmd.verb_name} rejected: {reason}", -1, Notice.COMMAND)
            return Ack(cmd.cmd_id, AckStatus.REJECTED, reason, k.risk.kill.global_tripped,
                       ts_ns=now_ns)
        k.publish_kill()  # the ack must never be ahead of the snapshot the desk reads
        return Ack(cmd.cmd_id, AckStatus.ACCEPTED, text, k.risk.kill.global_tripped, value, now_ns)

    # -- HANDLERS ----------------------------------------------------------------------------
    def _handle_ping(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        role = self.profile.role_of(cmd.user)
        return f"pong; you are {role.label}", int(role)

    def _handle_kill(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        k = self.kernel
        kill = k.risk.kill
        name = kill.name(cmd.scope, cmd.scope_id)
        why = cmd.text or "manual kill"
        # The switch flips in memory first; the cancels go out next, before anything wakes
        # another thread (the kill-persist writer, the log listener): a woken thread takes the
        # GIL at the cancels' socket writes and the hot thread waits for it.
        t0 = time.perf_counter_ns()
        tripped = kill.set(cmd.scope, cmd.scope_id, True, cmd.user, why, now_ns, persist=False)
        value = self._cancel_scope(cmd, now_ns)  # tripped or not: nothing may stay working
        took_us = (time.perf_counter_ns() - t0) / 1e3
        if tripped:
            self._save = kill.persist()
            self._audit_kill(cmd, True, why, now_ns)
            text = f"{name} kill switch TRIPPED by {cmd.user}"
            k.notify(ERROR, f"{_short(name)} TRIPPED by {cmd.user}", _instrument(cmd), Notice.KILL)
            log.error("%s at %s: %s", text, cmd.workstation, why)
        else:
            text = f"{name} kill switch was already tripped"
        if k.execution.clients:
            text += f"; {value} cancels sent"
            log.warning("%s: %d cancels written %.0f µs after the command was read", name,
                        value, took_us)
        return text, value

    def _handle_rearm(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        k = self.kernel
        kill = k.risk.kill
        name = kill.name(cmd.scope, cmd.scope_id)
        if not kill.is_tripped(cmd.scope, cmd.scope_id):
            raise _Refused(f"{name} kill switch is not tripped")
        kill.set(cmd.scope, cmd.scope_id, False, cmd.user, cmd.text, now_ns, persist=False)
        self._save = kill.persist()
        self._audit_kill(cmd, False, cmd.text, now_ns)
        k.notify(WARNING, f"{_short(name)} re-armed by {cmd.user}", _instrument(cmd), Notice.KILL)
        log.warning("%s kill switch re-armed by %s at %s: %s", name, cmd.user, cmd.workstation,
                    cmd.text)
        return f"{name} kill switch re-armed by {cmd.user}", 0

    def _handle_order(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        """A manual order: through the kernel's one door, like a strategy's."""
        self._need_venues()
        venue, side, tif = parse_order_text(cmd.text)  # check_command read it already
        symbol = self.symbols[cmd.scope_id]
        price = cmd.arg1 or None
        intent = OrderIntent(symbol=symbol, side=side, qty=int(cmd.arg0), price=price,
                             venue=venue, tif=tif, source=f"manual:{cmd.user}")
        r = self.kernel.submit(intent, now_ns)
        if isinstance(r, str):
            if venue == ROUTER:  # the parent's id means nothing to anyone: nothing went out
                raise _Refused("not routed: " + r.split(" NOT ROUTED: ", 1)[-1])
            raise _Refused(r)
        if venue == ROUTER:
            if not r.children or (r.status.value != "Working" and r.cum_qty == 0):
                raise _Refused(f"parent {r.parent_id} not routed: {r.reason}")
            where = ", ".join(f"{c.qty}@{c.venue}" for c in r.children)
            log.info("SOR %s: %s", r.parent_id, r.explain())
            text = f"parent {r.parent_id} routed: {where}"
        else:
            at = "market" if price is None else f"{price:g}"
            text = (f"order {r.cl_ord_id} sent to {venue}: {SIDE_NAMES[side]} {r.qty} "
                    f"{symbol} @ {at}")
        log.info("%s from %s@%s: %s", cmd.verb_name, cmd.user, cmd.workstation, text)
        return text, 0

    def _handle_cancel(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        self._need_venues()
        cl = cmd.text.strip()
        why = self.kernel.execution.cancel(cl, now_ns)
        if why is not None:
            raise _Refused(why)
        text = f"cancel of {cl} sent"
        log.info("%s from %s@%s: %s", cmd.verb_name, cmd.user, cmd.workstation, text)
        return text, 0

    def _handle_cancel_all(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        self._need_venues()
        n = self._cancel_scope(cmd, now_ns)
        text = f"{n} cancels sent"
        log.info("%s from %s@%s: %s", cmd.verb_name, cmd.user, cmd.workstation, text)
        return text, n

    # -- helpers -----------------------------------------------------------------------------
    def _need_venues(self) -> None:
        if not self.kernel.execution.clients:
            raise _Refused("this engine has no venues ([[venues]] in its profile)")

    def _cancel_scope(self, cmd: Command, now_ns: int) -> int:
        """Cancel every live order in the command's scope (text may name one venue)."""
        execution = self.kernel.execution
        if not execution.clients:
            return 0
        symbol = self.symbols[cmd.scope_id] if cmd.scope == Scope.INSTRUMENT else None
        venue = (cmd.text.strip() or None) if cmd.verb == Verb.CANCEL_ALL else None
        return execution.cancel_all(now_ns, venue, symbol)

    def _audit_kill(self, cmd: Command, tripped: bool, why: str, now_ns: int) -> None:
        journal = self.kernel.journal
        if journal is not None:
            name = "global" if cmd.scope == Scope.GLOBAL else self.symbols[cmd.scope_id]
            journal.kill(name, cmd.scope, cmd.scope_id, tripped, cmd.user, why, now_ns)


def _short(switch_name: str) -> str:
    """'instrument AAPL' -> 'AAPL': event records have little room for text."""
    return switch_name.removeprefix("instrument ")


def _instrument(cmd: Command) -> int:
    return cmd.scope_id if cmd.scope == Scope.INSTRUMENT else -1


