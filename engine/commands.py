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
from collections.abc import Callable
from dataclasses import replace

from engine.core.intents import ROUTER, SIDE_NAMES, OrderIntent
from engine.core.profile import Profile
from engine.core.records import SCOPE_NAMES, KillState, Notice, Scope
from engine.core.roles import Role
from engine.ipc.commands import (
    ROLE_MAY,
    STRATEGY_ACTIONS,
    Ack,
    AckStatus,
    Command,
    REPLAY_ACTIONS,
    PendingAck,
    Verb,
    check_command,
    confirmation_code,
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
        #: the answer waits for this (returns the final Ack, or None while it must wait)
        self._until: Callable[[Ack], Ack | None] | None = None
        self.table: dict[Verb, Callable[[Command, int], tuple[str, int]]] = {
            Verb.PING: self._handle_ping,
            Verb.KILL: self._handle_kill,
            Verb.REARM: self._handle_rearm,
            Verb.ORDER: self._handle_order,
            Verb.CANCEL: self._handle_cancel,
            Verb.CANCEL_ALL: self._handle_cancel_all,
            Verb.LIMIT: self._handle_limit,
            Verb.RECON: self._handle_recon,
            Verb.STRATEGY: self._handle_strategy,
            Verb.ACK_ALERT: self._handle_ack_alert,
            Verb.FLATTEN: self._handle_flatten,
            Verb.REPLAY: self._handle_replay,
        }

    def handle(self, cmd: Command, now_ns: int) -> Ack | PendingAck:
        self._save = 0
        self._until = None
        ack = self._answer(cmd, now_ns)
        journal = self.kernel.journal
        if journal is not None:  # the audit trail: who, what, from where, the answer
            journal.command(cmd, ack)
        until = self._until
        if until is not None and ack.accepted:
            return PendingAck(ack, lambda: until(ack))
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
        reason = check_command(cmd, self.kernel.risk.table.sizes())
        if reason is None:
            granted = Role(cmd.role)  # the engine's grant at attach (engine.ipc.attach)
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
        role = Role(cmd.role)
        return f"pong; you are {role.label}", int(role)

    def _handle_flatten(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        account = cmd.text.strip() or self.profile.desk.account
        try:
            return self.kernel.risk.flatten(account, cmd.scope_id, cmd.user), 0
        except ValueError as e:
            raise _Refused(str(e)) from None

    def _handle_ack_alert(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        """A person saw an alert: nothing changes but the audit trail (``handle`` journals
        every command: who, from where, when, and the alert's words)."""
        seq = int(cmd.arg0)
        log.info("alert %d acknowledged by %s@%s: %s", seq, cmd.user, cmd.workstation, cmd.text)
        return f"alert {seq} acknowledged by {cmd.user}", seq

    def _handle_replay(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        """Pause, play, set the speed (arg1: 0.1 .. 1000) or jump forward (arg1: UTC ns in the
        day) a replay engine's clock (``ReplaySource``). The answer says what is now true; a
        jump's answer waits until the replay has caught up to the time ("at 10:45:00.000,
        paused"). The value is the recorded time now (UTC ns)."""
        from engine.feeds.sources import ReplayRefused

        replay = self._replay_clock()
        if replay is None:
            raise _Refused("this engine plays no replay (only a [feed] kind = \"replay\" engine "
                           "does)")
        action = REPLAY_ACTIONS[int(cmd.arg0)]
        try:
            if action == "pause":
                text = replay.pause()
            elif action == "play":
                text = replay.play()
            elif action == "speed":
                text = replay.set_speed(cmd.arg1)
            else:
                # arg1 is an f64: 256 ns apart at today's times; the µs the desk meant
                text = replay.jump(round(cmd.arg1 / 1e3) * 1000)
                if replay.catching_up:
                    target = replay.target_ns

                    def landed(ack: Ack) -> Ack | None:
                        if replay.catching_up and replay.now_ns <= target:
                            return None  # not there, or the turn at the time not yet run
                        self.kernel.publish_books()  # the desk sees that moment with
                        publish(replay.first_ns, replay.last_ns, replay.now_ns, replay.speed,
                                replay.paused)  # the answer, and the header is not behind
                        return replace(ack, reason=replay.landed_text(), value=replay.now_ns)

                    self._until = landed
        except ReplayRefused as e:
            raise _Refused(str(e)) from None
        publish = self.kernel.publisher.replay
        publish(replay.first_ns, replay.last_ns, replay.now_ns, replay.speed, replay.paused)
        log.info("replay %s by %s at %s: %s", action, cmd.user, cmd.workstation, text)
        return text, replay.now_ns

    def _replay_clock(self):
        """The live replay source that is this engine's clock, or None."""
        for s in self.kernel.market.sources:
            if getattr(s, "live", False) and hasattr(s, "jump"):
                return s
        return None

    def _handle_kill(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        """Trip a scope to REDUCING (arg0 1) or HALTED (arg0 2 or 0). Never refused: a scope
        already as strict or stricter stays as it is, and its orders are cancelled again."""
        risk = self.kernel.risk
        kill = risk.kill
        row = risk.table.row(cmd.scope, cmd.scope_id)
        name = kill.names[row]
        state = int(cmd.arg0) or int(KillState.HALTED)
        why = cmd.text or "manual kill"
        # The switch flips in memory first; the cancels go out next, before anything wakes
        # another thread (the kill-persist writer, the log listener): a woken thread takes the
        # GIL at the cancels' socket writes and the hot thread waits for it.
        t0 = time.perf_counter_ns()
        current = kill.states[row]
        if current >= state:
            value = risk.cancel_scope(row, current, now_ns)  # nothing forbidden stays working
            tripped = False
        else:
            tripped, value = risk.trip(row, state, cmd.user, why, now_ns, persist=False)
        took_us = (time.perf_counter_ns() - t0) / 1e3
        label = KillState(max(current, state)).name
        if tripped:
            self._save = kill.persist()
            text = f"{name} kill switch TRIPPED {label} by {cmd.user}"
            log.error("%s at %s: %s", text, cmd.workstation, why)
        else:
            text = f"{name} kill switch was already {label}"
        if self.kernel.execution.clients:
            text += f"; {value} cancels sent"
            log.warning("%s: %d cancels written %.0f µs after the command was read", name,
                        value, took_us)
        return text, value

    def _handle_rearm(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        """Back to ACTIVE (arg0 0) or from HALTED to REDUCING (arg0 1): a risk manager's,
        with a reason and the scope's name typed as confirmation; not while cooling off."""
        risk = self.kernel.risk
        kill = risk.kill
        row = risk.table.row(cmd.scope, cmd.scope_id)
        name = kill.names[row]
        current = kill.states[row]
        to = int(cmd.arg0)
        if to not in (KillState.ACTIVE, KillState.REDUCING):
            raise _Refused(f"REARM goes to 0=active or 1=reducing, not {cmd.arg0:g}")
        if current == KillState.ACTIVE:
            raise _Refused(f"{name} kill switch is not tripped")
        if to >= current:
            raise _Refused(f"{name} is {KillState(current).name}: re-arming to "
                           f"{KillState(to).name} changes nothing")
        if cmd.arg1 != confirmation_code(name):
            raise _Refused(f"the typed confirmation does not match {name!r}: type the scope's "
                           f"name to re-arm it")
        cool = int(kill.rows["cool_until_ns"][row])
        if now_ns < cool:
            raise _Refused(f"{name} is cooling off after an automatic trip until "
                           f"{_utc(cool)} ({(cool - now_ns) / 1e9:.0f} s more)")
        risk.trip(row, to, cmd.user, cmd.text, now_ns, persist=False)
        self._save = kill.persist()
        log.warning("%s kill switch re-armed to %s by %s at %s: %s", name, KillState(to).name,
                    cmd.user, cmd.workstation, cmd.text)
        return f"{name} kill switch re-armed to {KillState(to).name} by {cmd.user}", 0

    def _handle_limit(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        """Change one limit: scope global (the desk's), instrument, strategy, account or
        venue; text "KEY REASON", arg0 the value. Audited with the old and new value."""
        risk = self.kernel.risk
        key, reason = cmd.text.split(maxsplit=1)
        kind = "desk" if cmd.scope == Scope.GLOBAL else SCOPE_NAMES[Scope(cmd.scope)]
        name = "" if kind == "desk" else risk.table.names[Scope(cmd.scope)][cmd.scope_id]
        where = "desk" if kind == "desk" else f"{kind}:{name}"
        try:
            old, new = risk.set_limit(kind, name, key, cmd.arg0)
        except ValueError as e:
            raise _Refused(str(e)) from None
        journal = self.kernel.journal
        if journal is not None:
            journal.limit(cmd.user, Role(cmd.role).label, cmd.workstation,
                          where, key, "default" if old is None else f"{old:g}", f"{new:g}",
                          reason, now_ns)
        shown = "default" if old is None else f"{old:g}"
        text = f"{key} for {where}: {shown} -> {new:g}"
        log.warning("limit changed by %s at %s: %s (%s)", cmd.user, cmd.workstation, text,
                    reason)
        self.kernel.notify(WARNING, f"limit {text} by {cmd.user}", -1, Notice.COMMAND)
        return text, 0

    def _handle_recon(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        """A risk manager settles a difference a restart found: accept or correct."""
        try:
            text = self.kernel.risk.settle(int(cmd.arg0), bool(cmd.arg1), cmd.user, cmd.text,
                                           now_ns)
        except ValueError as e:
            raise _Refused(str(e)) from None
        self.kernel.notify(WARNING, f"{text} by {cmd.user}: {cmd.text}"[:120], -1,
                           Notice.COMMAND)
        return text, int(cmd.arg0)

    def _handle_strategy(self, cmd: Command, now_ns: int) -> tuple[str, int]:
        """A trader pauses, resumes or stops a strategy (the risk engine's HALTED pause is
        apart: resuming does not lift it)."""
        host = self.kernel.strategies
        name = self.kernel.risk.table.names[Scope.STRATEGY][cmd.scope_id]
        action = STRATEGY_ACTIONS[int(cmd.arg0)]
        act = {"pause": host.user_pause, "resume": host.resume, "stop": host.stop_one}[action]
        why = act(name, now_ns)
        if why is not None:
            raise _Refused(why)
        self.kernel.publisher.strategies(host, now_ns)  # the desk sees it with the ack
        state = host.state(name).label
        text = f"strategy {name} {state}"
        reason = cmd.text.strip()
        log.warning("%s by %s at %s%s", text, cmd.user, cmd.workstation,
                    f": {reason}" if reason else "")
        self.kernel.notify(WARNING, f"{text} by {cmd.user}" + (f": {reason}" if reason else ""),
                           -1, Notice.COMMAND)
        return text, int(host.state(name))

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
        if cmd.scope not in (Scope.GLOBAL, Scope.INSTRUMENT):  # strategy, venue, account, trader
            risk = self.kernel.risk
            return risk.cancel_scope(risk.table.row(cmd.scope, cmd.scope_id), KillState.HALTED,
                                     now_ns)
        symbol = self.symbols[cmd.scope_id] if cmd.scope == Scope.INSTRUMENT else None
        venue = (cmd.text.strip() or None) if cmd.verb == Verb.CANCEL_ALL else None
        return execution.cancel_all(now_ns, venue, symbol)


def _utc(ts_ns: int) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(ts_ns / 1e9))


