"""The engine process: one hot thread, one loop, every stage called from it.

Each loop turn: look at the command rings (a header word any desk changes after a push, plus a
full scan every 10 ms), apply the feed updates that are due, publish changed snapshots (at most
``publish_hz``), beat the heartbeat (every millisecond), then idle as the profile says:

- ``spin``: go round again at once (lowest latency, one core at 100 %);
- ``hybrid``: spin for ``spin_us`` after the last activity, then wait;
- ``sleep``: wait whenever nothing is due.

Waiting is ``select`` on the doorbell socket with a timeout that ends at the next feed update
or after ``max_sleep_us`` (≤ 1 ms), whichever is first. A desk rings the bell (one datagram)
after every command it pushes unless the engine spins; ringing only when the header's asleep
flag is up would need a store-load fence that Python cannot issue. The flag is still kept, for
anyone who wants to see whether the engine sleeps, and the timeout bounds any lost wake-up.

All time comes from ``engine.core.clock``.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import signal
from dataclasses import dataclass

from engine.core.clock import Clock, LiveClock
from engine.core.paths import state_dir
from engine.core.profile import Profile
from engine.core.roles import Role
from engine.feeds.sim import SimFeed
from engine.ipc.commands import ROLE_MAY, Ack, AckStatus, Command, Scope, Verb, check_command
from engine.ipc.layout import EngineState, H
from engine.ipc.publisher import EngineSegment
from engine.risk.killswitch import KillSwitches

__all__ = ["Engine", "EventKind", "pin_to_cores"]

log = logging.getLogger("helmdesk.engine")


class EventKind:
    """``kind`` of an event-ring record."""

    LOG = 1
    COMMAND = 2
    KILL = 3
    ALERT = 4
    NAMES = {1: "log", 2: "command", 3: "kill", 4: "alert"}


INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR


def pin_to_cores(cores: tuple[int, ...] | None) -> set[int]:
    """Pin this process (default: to the last allowed CPU); return the CPUs it got."""
    allowed = sorted(os.sched_getaffinity(0))
    want = set(cores) if cores else {allowed[-1]}
    try:
        os.sched_setaffinity(0, want)
    except OSError as e:
        log.warning("could not pin to CPUs %s (%s); running on %s", sorted(want), e, allowed)
    got = os.sched_getaffinity(0)
    log.info("pinned to CPUs %s", sorted(got))
    return got


@dataclass(slots=True)
class _Stats:
    turns: int = 0
    waits: int = 0


class Engine:
    """Build with a profile, then ``run()`` until ``stop()`` or SIGTERM/SIGINT."""

    def __init__(self, profile: Profile, *, clock: Clock | None = None, persist: bool = True) -> None:
        self.profile = profile
        self.clock = clock or LiveClock()
        cfg = profile.engine
        self.instance = cfg.instance
        self.symbols = [i.symbol for i in profile.instruments]
        now_mono = self.clock.mono_ns()
        self.feed = SimFeed(profile.instruments, profile.feed.seed, start_ns=now_mono)
        self.kill = KillSwitches(
            self.symbols, state_dir(cfg.instance) / "killswitches.json" if persist else None
        )
        self.shm = EngineSegment(
            cfg.instance,
            [(i.symbol, i.tick, i.price) for i in profile.instruments],
            event_capacity=cfg.event_capacity,
            idle=cfg.idle,
            epoch_wall_ns=self.clock.wall_ns(),
            epoch_mono_ns=now_mono,
            log=log.warning,
        )
        self._running = True  # stop() before or during run() wins: run() never sets it again
        self._published_kill = -1
        self.stats = _Stats()

    # -- events ------------------------------------------------------------------------------------
    def event(self, kind: int, level: int, text: str, instrument: int = -1) -> None:
        """Tell the desks (the event ring; 40 bytes of text). Callers log the full story."""
        self.shm.events.publish(self.clock.wall_ns(), kind, level, instrument, text.encode()[:40])

    # -- commands ----------------------------------------------------------------------------------
    def handle_command(self, cmd: Command) -> Ack:
        now = self.clock.wall_ns()
        reason = check_command(cmd, len(self.symbols))
        if reason is None:
            granted = self.profile.role_of(cmd.user)
            verb = Verb(cmd.verb)
            if verb not in ROLE_MAY[granted]:
                reason = f"user {cmd.user!r} is {granted.label} here and may not {verb.name}"
        if reason is not None:
            log.warning(
                "command %s %s from %s@%s REJECTED: %s",
                cmd.cmd_id, cmd.verb_name, cmd.user, cmd.workstation, reason,
            )
            self.event(EventKind.COMMAND, WARNING, f"{cmd.verb_name} rejected: {reason}")
            return Ack(cmd.cmd_id, AckStatus.REJECTED, reason, self.kill.global_tripped, ts_ns=now)

        verb = Verb(cmd.verb)
        value = 0
        text = "ok"
        if verb is Verb.PING:
            value = int(self.profile.role_of(cmd.user))
            text = f"pong; you are {Role(value).label}"
        elif verb is Verb.KILL:
            name = self.kill.name(cmd.scope, cmd.scope_id)
            why = cmd.text or "manual kill"
            if self.kill.set(cmd.scope, cmd.scope_id, True, cmd.user, why, now):
                text = f"{name} kill switch TRIPPED by {cmd.user}"
                self.event(EventKind.KILL, ERROR, f"{_short(name)} TRIPPED by {cmd.user}", _instrument(cmd))
                log.error("%s at %s: %s", text, cmd.workstation, why)
            else:
                text = f"{name} kill switch was already tripped"
        elif verb is Verb.REARM:
            name = self.kill.name(cmd.scope, cmd.scope_id)
            if not self.kill.is_tripped(cmd.scope, cmd.scope_id):
                reason = f"{name} kill switch is not tripped"
                return Ack(cmd.cmd_id, AckStatus.REJECTED, reason, self.kill.global_tripped, ts_ns=now)
            self.kill.set(cmd.scope, cmd.scope_id, False, cmd.user, cmd.text, now)
            text = f"{name} kill switch re-armed by {cmd.user}"
            self.event(EventKind.KILL, WARNING, f"{_short(name)} re-armed by {cmd.user}", _instrument(cmd))
            log.warning("%s at %s: %s", text, cmd.workstation, cmd.text)
        self._publish_kill()  # the ack must never be ahead of the snapshot the desk reads
        return Ack(cmd.cmd_id, AckStatus.ACCEPTED, text, self.kill.global_tripped, value, now)

    def _publish_kill(self) -> None:
        if self.kill.version != self._published_kill:
            self.shm.publish_kill(self.kill.rows)
            self._published_kill = self.kill.version

    # -- the loop ----------------------------------------------------------------------------------
    def stop(self, *_args) -> None:
        self._running = False

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        cfg = self.profile.engine
        clock = self.clock
        shm = self.shm
        feed = self.feed
        books = feed.books
        q = shm.q
        bell = shm.bell
        mono = clock.mono_ns
        wall = clock.wall_ns
        spin = cfg.idle == "spin"
        sleep_always = cfg.idle == "sleep"
        spin_ns = cfg.spin_us * 1000
        max_sleep_ns = cfg.max_sleep_us * 1000
        publish_ns = 1_000_000_000 // cfg.publish_hz
        scan_ns = 10_000_000
        hb_ns = 1_000_000
        changed: set[int] = set()

        self._publish_kill()
        now = mono()
        for i, b in enumerate(books):
            shm.publish_book(i, b.ts_event_ns, b.updates, b.bid_px, b.bid_sz, b.ask_px, b.ask_sz,
                             b.last_px, b.last_sz)
        self.event(EventKind.LOG, INFO, f"engine {self.instance} running, pid {os.getpid()}")
        log.info("engine %s running", self.instance)
        if self.kill.global_tripped:
            self.event(EventKind.KILL, ERROR, "global kill switch is TRIPPED (restored)")
            log.error("global kill switch is TRIPPED (restored from the last run)")
        gc.collect()
        gc.freeze()  # start-up objects never need scanning again
        now = mono()
        shm.heartbeat(now, wall())
        shm.set_state(EngineState.RUNNING)

        last_activity = now
        next_publish = now
        next_scan = now + scan_ns
        next_hb = now + hb_ns
        turns = 0
        waits = 0
        feed_events = 0
        publishes = 0
        while self._running:
            now = mono()
            turns += 1
            busy = False
            if q[H.CMD_BELL // 8] != shm.last_bell or now >= next_scan:
                next_scan = now + scan_ns
                if shm.serve_commands(self.handle_command):
                    busy = True
            if now >= feed.next_due_ns:
                feed_events += feed.step(now, changed)
                busy = True
            if changed and now >= next_publish:
                for i in changed:
                    b = books[i]
                    shm.publish_book(i, wall(), b.updates, b.bid_px, b.bid_sz, b.ask_px, b.ask_sz,
                                     b.last_px, b.last_sz)
                publishes += len(changed)
                changed.clear()
                next_publish = now + publish_ns
            if now >= next_hb:
                shm.heartbeat(now, wall())
                q[H.LOOP_TURNS // 8] = turns
                q[H.FEED_EVENTS // 8] = feed_events
                q[H.PUBLISHES // 8] = publishes
                next_hb = now + hb_ns
            if busy:
                last_activity = now
                continue
            if spin or (not sleep_always and now - last_activity < spin_ns):
                continue
            # wait: until the next thing due, at most max_sleep
            deadline = min(feed.next_due_ns, now + max_sleep_ns, next_hb + hb_ns)
            if changed:
                deadline = min(deadline, next_publish)
            timeout = deadline - now
            if timeout <= 0:
                continue
            q[H.ASLEEP // 8] = 1
            if q[H.CMD_BELL // 8] == shm.last_bell:
                r, _, _ = select.select((bell,), (), (), timeout / 1e9)
                if r:
                    shm.drain_bell()
            q[H.ASLEEP // 8] = 0
            waits += 1
        self.stats.turns = turns
        self.stats.waits = waits

    def close(self) -> None:
        """Stop cleanly: state STOPPED, segment unlinked, kill state flushed to disk."""
        try:
            self.shm.set_state(EngineState.STOPPING)
            self.event(EventKind.LOG, INFO, f"engine {self.instance} stopping")
        finally:
            self.shm.close(unlink=True)
            self.kill.close()
        log.info("engine %s stopped; shared memory removed", self.instance)


def _short(switch_name: str) -> str:
    """'instrument AAPL' -> 'AAPL': event records have 40 bytes of text."""
    return switch_name.removeprefix("instrument ")


def _instrument(cmd: Command) -> int:
    return cmd.scope_id if cmd.scope == Scope.INSTRUMENT else -1
