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
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from engine.book.books import BBO_CROSSED, BBO_LOCKED
from engine.core.clock import Clock, LiveClock
from engine.core.paths import data_dir, state_dir
from engine.core.profile import Profile, VenueLinkConfig
from engine.core.roles import Role
from engine.execution.oms import OrderUpdate
from engine.execution.orders import ClOrdIds, Order
from engine.execution.trading import Trading
from engine.feeds.sim import SimFeed
from engine.fix.store import MemoryStore, MessageStore
from engine.ipc.commands import (
    ROLE_MAY,
    ROUTER,
    Ack,
    AckStatus,
    Command,
    Scope,
    Verb,
    check_command,
    parse_order_text,
)
from engine.ipc.layout import (
    BOOK_CROSSED,
    BOOK_LOCKED,
    EVENT_TEXT,
    ORDER_EVENT_STRUCT,
    ORDER_MARKET,
    ORDER_STATUS_NAMES,
    ORDER_UNKNOWN,
    TIF_NAMES,
    EngineState,
    EventKind,
    H,
)
from engine.ipc.publisher import EngineSegment
from engine.risk.killswitch import KillSwitches

__all__ = ["Engine", "EventKind", "pin_to_cores"]

_STATUS_INDEX = {name: i for i, name in enumerate(ORDER_STATUS_NAMES)}
_TIF_INDEX = {name: i for i, name in enumerate(TIF_NAMES)}
_SIDE_NAMES = {1: "buy", 2: "sell"}

log = logging.getLogger("helmdesk.engine")


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
            venues=[v.name for v in profile.venues],
        )
        self._running = True  # stop() before or during run() wins: run() never sets it again
        self._published_kill = -1
        self.stats = _Stats()
        self._index = {sym: i for i, sym in enumerate(self.symbols)}
        self.trading: Trading | None = None
        self.store = None  # engine.store.StoreLink: with venues, orders and fills persist
        self._recovered = None
        # ORDER records held until the store says what they report is durable (fills), and
        # everything after them, so a desk never sees an order's changes out of order
        self._held: deque = deque()
        self.md = None  # engine.feeds.marketdata.MarketData: [feed] kind venues or replay
        if profile.feed.kind != "sim":
            self._open_market_data()
        if profile.venues:
            if persist:
                self._open_store()
            if self.md is not None and profile.feed.kind == "venues":
                self.md.liveness = self._venue_liveness
            self.trading = Trading(
                profile.venues, profile.instruments, self._clordids(persist),
                self._session_store if persist else (lambda _v: MemoryStore()),
                on_order=self.publish_order, on_event=self._trading_event,
                on_parent=self._parent_event, check=self._child_check,
                on_md=self.md.on_fix if self.md is not None and profile.feed.kind == "venues"
                else None,
            )
            if self._recovered is not None:
                self._restore()
        if self.md is not None:
            self.md.warm_up()

    def _venue_liveness(self, k: int) -> int:
        link = self.trading.links[self.md.venues[k]]
        return link.session.last_received_ns if link.conn.up else 0

    def _open_market_data(self) -> None:
        """[feed] kind venues (the [[venues]]' FIX books) or replay (a tick-store day)."""
        from engine.feeds.marketdata import MarketData
        from engine.feeds.tickstore import TickRecorder, default_root, open_day

        feed = self.profile.feed
        root = feed.ticks_dir or default_root()
        instruments = self.profile.instruments
        if feed.kind == "simvenues":
            self._open_sim_venues(root)
            return
        if feed.kind == "venues":
            names = [v.name for v in self.profile.venues]
            recorder = TickRecorder(root, names, instruments) if feed.record else None
            # a quiet book on a live session is not silence: the session's heartbeats count,
            # so a venue is silent only past its heartbeat interval (with grace) at least
            silence = [max(feed.silence_ms * 1_000_000, int(v.heartbeat_s * 1.5e9))
                       for v in self.profile.venues]
            # The sessions' FixMdBooks check the sequence per subscription (a refresh starts a
            # new one, whose RptSeq starts again); MarketData turns what they find into STATUS
            # records. A FeedIntegrity here would see each refresh as a gap of its own.
            self.md = MarketData(names, instruments, silence_ns=silence, recorder=recorder)
            if recorder is not None:
                log.info("recording market data to %s", root)
            return
        day = open_day(root, feed.day)
        try:
            records = day.merge()
            ids = np.full(len(day.instruments), -1, dtype=np.int64)
            for k, ins in enumerate(day.instruments):
                ids[k] = self._index.get(ins.symbol, -1)
            mapped = ids[records["instrument"]]
            keep = mapped >= 0
            if not keep.all():
                log.warning("replay %s: %d records of instruments this engine does not trade "
                            "dropped", feed.day, int((~keep).sum()))
            records = records[keep]
            records["instrument"] = mapped[keep]
            self.md = MarketData(list(day.venues), instruments,
                                 silence_ns=feed.silence_ms * 1_000_000)
            self.md.use_replay(records, feed.speed)
            log.info("replaying %s from %s: %d records of %s at %gx", feed.day, root,
                     len(records), ", ".join(day.venues), feed.speed)
        finally:
            day.close()

    def _open_sim_venues(self, root) -> None:
        from engine.feeds.integrity import FeedIntegrity
        from engine.feeds.marketdata import MarketData
        from engine.feeds.simvenues import SimVenues
        from engine.feeds.tickstore import TickRecorder

        feed = self.profile.feed
        instruments = self.profile.instruments
        names = list(feed.venues)
        recorder = TickRecorder(root, names, instruments) if feed.record else None
        self.md = MarketData(names, instruments, silence_ns=feed.silence_ms * 1_000_000,
                             recorder=recorder)
        # venues quote the same efficient price with their own noise, two ticks wide, each
        # 50 µs further away than the one before
        venues = [(name, 0.0, 50.0 * (k + 1), 20.0, 0.3, 2) for k, name in enumerate(names)]
        pairs = [(self._index[a], self._index[b], 1.0, 30.0, 0.5) for a, b in feed.pairs]
        sim = SimVenues([(i.symbol, i.tick, i.price) for i in instruments], venues, pairs,
                        seed=feed.seed, rate_hz=[max(i.update_hz, 0.001) for i in instruments],
                        start_ns=self.clock.wall_ns())
        self.md.use_sim(sim, FeedIntegrity(len(names), len(instruments),
                                           feed.silence_ms * 1_000_000, venue_names=names))
        log.info("simulated venues %s: %d instruments, pairs %s", ", ".join(names),
                 len(instruments), ", ".join(f"{a}/{b}" for a, b in feed.pairs) or "none")

    def _open_store(self) -> None:
        from engine.store import StoreError, StoreLink, load

        url = self.profile.database(str(data_dir()))
        try:
            self.store = StoreLink(self.instance, url)
            self._recovered = load(url)
        except (StoreError, OSError, ValueError) as e:
            if self.store is not None:
                self.store.close()
            self.shm.close(unlink=True)
            self.kill.close()
            raise StoreError(f"engine {self.instance}: cannot open its store: {e}") from None

    def _restore(self) -> None:
        """Orders rebuilt from the store after a restart: shown, in doubt until reconciled."""
        r = self._recovered
        working = sorted(r.working.values(), key=lambda o: o.cl_ord_id)
        for u in self.trading.oms.restore(working):
            self.publish_order(u, self.trading.oms.orders[u.cl_ord_id])
        pos = ", ".join(f"{s} {p.qty:+d}" for s, p in sorted(r.positions.items()) if p.qty) or "flat"
        log.info("restored from %s: %d working orders (of %d), positions: %s%s",
                 self.store.safe_url, len(working), len(r.orders), pos,
                 f"; repaired from executions: {', '.join(r.repaired)}" if r.repaired else "")
        if working:
            self.event(EventKind.ALERT, WARNING,
                       f"restored {len(working)} working orders: in doubt until their venues answer")
        self._recovered = None
    def _clordids(self, persist: bool) -> ClOrdIds:
        """ClOrdIDs unique across restarts: each start must be later than the last one."""
        start_ms = self.clock.wall_ns() // 1_000_000
        if not persist:
            return ClOrdIds(self.instance[:12], start_ms)
        path = state_dir(self.instance) / "last-start-ms"
        try:
            last = int(path.read_text())
        except (FileNotFoundError, ValueError):
            last = 0
        start_ms = max(start_ms, last + 1)  # the same millisecond as the last start: step on
        ids = ClOrdIds(self.instance[:12], start_ms, last)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(start_ms))
        os.replace(tmp, path)
        return ids

    def _session_store(self, v: VenueLinkConfig) -> MessageStore:
        from engine.store import WriteBehindFixStore

        return WriteBehindFixStore(self.store, f"{v.sender}-{v.target}@{v.name}", self._recovered)

    def _child_check(self, venue: str, symbol: str, side: int, qty: int, price: float) -> str | None:
        """Asked before the router sends each child: the kill switches still hold."""
        if self.kill.global_tripped:
            return "the global kill switch is tripped"
        if self.kill.is_tripped(Scope.INSTRUMENT, self._index[symbol]):
            return f"the {symbol} kill switch is tripped"
        return None

    def _parent_event(self, u) -> None:
        """A router parent changed: one line for the desks, the whole story in the log."""
        state = u.status.value
        text = (f"SOR {u.parent_id} {u.symbol} {state} {u.cum_qty}/{u.qty}"
                + (f" avg {u.avg_px:g}" if u.cum_qty else "") + (f": {u.text}" if u.text else ""))
        level = INFO if state != "PartiallyDone" else WARNING
        self.event(EventKind.LOG, level, text, self._index.get(u.symbol, -1))
        log.log(level, "%s", text)

    def _trading_event(self, level: int, text: str) -> None:
        self.event(EventKind.ALERT if level >= WARNING else EventKind.LOG, level, text)

    def publish_order(self, u: OrderUpdate, o: Order) -> None:
        """One order changed: a row for the store, one ORDER record on the event ring. A fill
        is shown only once the store has it (and what follows waits behind it)."""
        flags = (ORDER_UNKNOWN if u.unknown else 0) | (ORDER_MARKET if o.price is None else 0)
        payload = ORDER_EVENT_STRUCT.pack(
            o.cl_ord_id.encode()[:32], o.venue.encode()[:8], o.side, _STATUS_INDEX[o.status.value],
            flags, _TIF_INDEX.get(o.tif, 0), o.qty, o.cum_qty, o.leaves_qty, u.last_qty,
            o.price or 0.0, o.avg_px, u.last_px, _cut(u.text, 20),
        )
        level = WARNING if u.unknown or o.status.value == "Rejected" else INFO
        ts = self.clock.wall_ns()
        inst = self._index.get(o.symbol, -1)
        store = self.store
        if store is not None:
            seq = 0
            if u.last_qty and u.exec_id:
                seq = store.put_execution(u.exec_id, o.venue, o.cl_ord_id, o.symbol, o.side,
                                          u.last_qty, u.last_px, ts)
            store.put_order_state(o, ts)
            if self._held or seq:
                self._held.append((seq, ts, level, inst, payload))
                return
        self.shm.events.publish(ts, EventKind.ORDER, level, inst, payload)

    def _publish_consolidated(self, changed: set[int], ts: int) -> None:
        """The consolidated book of each changed instrument, as the desks' ladder reads it."""
        md = self.md
        updates = md.books.bbo["updates"]
        bbo_flags = md.books.bbo["flags"]
        for i in changed:
            bid_px, bid_sz, ask_px, ask_sz = md.consolidated(i)
            last_px, last_sz = md.last_trade(i)
            f = int(bbo_flags[i])
            flags = (BOOK_CROSSED if f & BBO_CROSSED else 0) | (BOOK_LOCKED if f & BBO_LOCKED else 0)
            self.shm.publish_book(i, ts, int(updates[i]), bid_px, bid_sz, ask_px, ask_sz,
                                  last_px, last_sz, flags)

    def _release_held(self) -> None:
        """Publish held ORDER records whose fills are durable now (in order)."""
        held = self._held
        store = self.store
        store.poll()
        while held and (held[0][0] == 0 or store.durable(held[0][0])):
            _seq, ts, level, inst, payload = held.popleft()
            self.shm.events.publish(ts, EventKind.ORDER, level, inst, payload)

    # -- events ------------------------------------------------------------------------------------
    def event(self, kind: int, level: int, text: str, instrument: int = -1) -> None:
        """Tell the desks (the event ring; 104 bytes of text). Callers log the full story."""
        self.shm.events.publish(self.clock.wall_ns(), kind, level, instrument, _cut(text, EVENT_TEXT))

    # -- commands ----------------------------------------------------------------------------------
    def handle_command(self, cmd: Command) -> Ack:
        ack = self._handle_command(cmd)
        if self.store is not None:  # the audit trail: who, what, from where, the answer
            self.store.put_command_ack(cmd, ack)
        return ack

    def _handle_command(self, cmd: Command) -> Ack:
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
            # The switch flips in memory first; the cancels go out next, before anything wakes
            # another thread (the kill-persist writer, the log listener): a woken thread takes
            # the GIL at the cancels' socket writes and the hot thread waits for it.
            t0 = time.perf_counter_ns()
            tripped = self.kill.set(cmd.scope, cmd.scope_id, True, cmd.user, why, now, persist=False)
            if self.trading is not None:  # tripped or not: nothing may stay working in scope
                value = self._cancel_scope(cmd)
            took_us = (time.perf_counter_ns() - t0) / 1e3
            if tripped:
                self.kill.persist()
                self._audit_kill(cmd, True, why, now)
                text = f"{name} kill switch TRIPPED by {cmd.user}"
                self.event(EventKind.KILL, ERROR, f"{_short(name)} TRIPPED by {cmd.user}", _instrument(cmd))
                log.error("%s at %s: %s", text, cmd.workstation, why)
            else:
                text = f"{name} kill switch was already tripped"
            if self.trading is not None:
                text += f"; {value} cancels sent"
                log.warning("%s: %d cancels written %.0f µs after the command was read", name,
                            value, took_us)
        elif verb in (Verb.ORDER, Verb.CANCEL, Verb.CANCEL_ALL):
            if self.trading is None:
                reason = "this engine has no venues ([[venues]] in its profile)"
            elif verb is Verb.ORDER:
                reason, text = self._order(cmd)
            elif verb is Verb.CANCEL:
                self.trading.set_now(now)
                reason = self.trading.cancel(cmd.text.strip(), now)
                text = f"cancel of {cmd.text.strip()} sent"
            else:
                value = self._cancel_scope(cmd)
                text = f"{value} cancels sent"
            if reason is not None:
                log.warning("command %s %s from %s@%s REJECTED: %s",
                            cmd.cmd_id, cmd.verb_name, cmd.user, cmd.workstation, reason)
                self.event(EventKind.COMMAND, WARNING, f"{cmd.verb_name} rejected: {reason}")
                return Ack(cmd.cmd_id, AckStatus.REJECTED, reason, self.kill.global_tripped, ts_ns=now)
            log.info("%s from %s@%s: %s", cmd.verb_name, cmd.user, cmd.workstation, text)
        elif verb is Verb.REARM:
            name = self.kill.name(cmd.scope, cmd.scope_id)
            if not self.kill.is_tripped(cmd.scope, cmd.scope_id):
                reason = f"{name} kill switch is not tripped"
                return Ack(cmd.cmd_id, AckStatus.REJECTED, reason, self.kill.global_tripped, ts_ns=now)
            self.kill.set(cmd.scope, cmd.scope_id, False, cmd.user, cmd.text, now)
            self._audit_kill(cmd, False, cmd.text, now)
            text = f"{name} kill switch re-armed by {cmd.user}"
            self.event(EventKind.KILL, WARNING, f"{_short(name)} re-armed by {cmd.user}", _instrument(cmd))
            log.warning("%s at %s: %s", text, cmd.workstation, cmd.text)
        self._publish_kill()  # the ack must never be ahead of the snapshot the desk reads
        return Ack(cmd.cmd_id, AckStatus.ACCEPTED, text, self.kill.global_tripped, value, now)

    def _order(self, cmd: Command) -> tuple[str | None, str]:
        """A manual order: (why not, or None; what was done)."""
        venue, side, tif = parse_order_text(cmd.text)  # check_command read it already
        symbol = self.symbols[cmd.scope_id]
        if self.kill.global_tripped:
            return "the global kill switch is tripped", ""
        if self.kill.is_tripped(Scope.INSTRUMENT, cmd.scope_id):
            return f"the {symbol} kill switch is tripped", ""
        price = cmd.arg1 or None
        now = self.clock.wall_ns()
        self.trading.set_now(now)
        if venue == ROUTER:
            p = self.trading.route(symbol, side, int(cmd.arg0), price, tif, now)
            if isinstance(p, str):  # the parent's id means nothing to anyone: nothing went out
                return "not routed: " + p.split(" NOT ROUTED: ", 1)[-1], ""
            if not p.children or (p.status.value != "Working" and p.cum_qty == 0):
                return f"parent {p.parent_id} not routed: {p.reason}", ""
            where = ", ".join(f"{c.qty}@{c.venue}" for c in p.children)
            log.info("SOR %s: %s", p.parent_id, p.explain())
            return None, f"parent {p.parent_id} routed: {where}"
        o = self.trading.place(venue, symbol, side, int(cmd.arg0), price, tif, now)
        if isinstance(o, str):
            return o, ""
        at = "market" if price is None else f"{price:g}"
        return None, f"order {o.cl_ord_id} sent to {venue}: {_SIDE_NAMES[side]} {o.qty} {symbol} @ {at}"

    def _cancel_scope(self, cmd: Command) -> int:
        """Cancel every live order in the command's scope (text may name one venue)."""
        now = self.clock.wall_ns()
        self.trading.set_now(now)
        symbol = self.symbols[cmd.scope_id] if cmd.scope == Scope.INSTRUMENT else None
        venue = (cmd.text.strip() or None) if cmd.verb == Verb.CANCEL_ALL else None
        return self.trading.cancel_all(now, venue, symbol)

    def _audit_kill(self, cmd: Command, tripped: bool, why: str, now: int) -> None:
        if self.store is not None:
            name = "global" if cmd.scope == Scope.GLOBAL else self.symbols[cmd.scope_id]
            self.store.put_kill(name, cmd.scope, cmd.scope_id, tripped, cmd.user, why, now)

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
        trading = self.trading
        md = self.md
        sim = md is None  # the single-book simulated feed; else books come from md
        waitables: list = [bell]
        next_health = 0

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
        if md is not None:
            md.start(wall())
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
            if sim and now >= feed.next_due_ns:
                feed_events += feed.step(now, changed)
                busy = True
            if trading is not None and trading.poll(wall()):
                busy = True
            if md is not None:
                n = md.step(wall()) + md.flush()
                if n:
                    feed_events += n
                    changed.update(md.changed)
                    md.changed.clear()
                    busy = True
            if self._held:
                self._release_held()
            if changed and now >= next_publish:
                if sim:
                    for i in changed:
                        b = books[i]
                        shm.publish_book(i, wall(), b.updates, b.bid_px, b.bid_sz, b.ask_px,
                                         b.ask_sz, b.last_px, b.last_sz)
                else:
                    self._publish_consolidated(changed, wall())
                publishes += len(changed)
                changed.clear()
                next_publish = now + publish_ns
            if now >= next_hb:
                shm.heartbeat(now, wall())
                q[H.LOOP_TURNS // 8] = turns
                q[H.FEED_EVENTS // 8] = feed_events
                q[H.PUBLISHES // 8] = publishes
                if trading is not None:
                    for k, link in enumerate(trading.links.values()):
                        shm.set_venue_state(k, link.state_word())
                    if self.store is not None:
                        self.store.poll()  # drains overflow, notices a dead writer
                if md is not None and now >= next_health:
                    shm.publish_feed(md.update_health(wall()))
                    next_health = now + 100_000_000
                next_hb = now + hb_ns
            if busy:
                last_activity = now
                continue
            if spin or (not sleep_always and now - last_activity < spin_ns):
                continue
            # wait: until the next thing due, at most max_sleep
            deadline = min(feed.next_due_ns if sim else now + max_sleep_ns, now + max_sleep_ns,
                           next_hb + hb_ns)
            if changed:
                deadline = min(deadline, next_publish)
            timeout = deadline - now
            if timeout <= 0:
                continue
            if trading is not None:
                waitables = [bell, *trading.fds()]
            q[H.ASLEEP // 8] = 1
            if q[H.CMD_BELL // 8] == shm.last_bell:
                r, _, _ = select.select(waitables, (), (), timeout / 1e9)
                if bell in r:
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
            if self.trading is not None:
                self.trading.close(self.clock.wall_ns())
            if self.store is not None:
                left = self.store.close()
                if left:
                    log.error("store: %d records were not written to %s", left,
                              self.store.safe_url)
            if self.md is not None:
                self.md.close()
            for _seq, ts, level, inst, payload in self._held:  # the last word, if undurable
                self.shm.events.publish(ts, EventKind.ORDER, level, inst, payload)
        finally:
            self.shm.close(unlink=True)
            self.kill.close()
        log.info("engine %s stopped; shared memory removed", self.instance)


def _short(switch_name: str) -> str:
    """'instrument AAPL' -> 'AAPL': event records have little room for text."""
    return switch_name.removeprefix("instrument ")


def _cut(text: str, n: int) -> bytes:
    """At most ``n`` bytes of UTF-8, never half a character."""
    return text.encode()[:n].decode("utf-8", "ignore").encode()


def _instrument(cmd: Command) -> int:
    return cmd.scope_id if cmd.scope == Scope.INSTRUMENT else -1
