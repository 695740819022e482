"""The live node: the process ``helmdesk engine`` runs — the kernel plus everything live.

``LiveNode`` builds the kernel (``engine.kernel``) from a profile with the live adapters —
market-data sources by ``[feed] kind``, venue clients by ``[[venues]] kind``, the shared-memory
segment's publisher and command rings, the store's writer process as the journal, the kill
switches' state file — and runs it: each loop turn calls ``kernel.step(wall clock)``, releases
ORDER records whose fills the store has made durable, beats the heartbeat (every millisecond),
then idles as the profile says. A replay engine (``[feed] kind = "replay"``) steps the kernel at
the recorded time its ``ReplaySource`` gives instead (played, paused, caught up to a jump:
``engine.feeds.sources``) and writes that position in the header at every heartbeat; it waits
as the others do, for as long as the recorded time takes to come at its speed.
The idle modes:

- ``spin``: go round again at once (lowest latency, one core at 100 %);
- ``hybrid``: spin for ``spin_us`` after the last activity, then wait;
- ``sleep``: wait whenever nothing is due.

Waiting is ``select`` on the doorbell socket and the venue sessions' sockets, with a timeout
that ends when the kernel next has work due or after ``max_sleep_us`` (≤ 1 ms), whichever is
first. A desk rings the bell (one datagram, on the socket the engine connected to its
doorbell for it when it attached) after every command it pushes unless the engine spins;
ringing only when the header's asleep flag is up would need a store-load fence that Python
cannot issue. The flag is still kept, for anyone who wants to see whether the engine sleeps,
and the timeout bounds any lost wake-up. Before it waits, and on every turn it spins, the
loop looks at each attached desk's command tail.

Desks attach through the segment's attach socket (engine.ipc.attach, on a thread of its
own): the kernel names the desk's OS user, ``_grant`` gives it the role the profile's
``[users]`` lists for it (``"*"``: anyone else) or refuses it, and every command the desk
sends carries that user and role.

Garbage collection (``IdleGc``): after start-up the heap is frozen (``gc.freeze``) and
automatic collection is off; the loop collects in its idle turns instead, on CPython's own
schedule (the youngest generation after 700 allocations, the next after 10 of those, and so
on), so a collection never lands in the middle of a tick's turn. A burst that never leaves
the loop idle is collected anyway once ``IdleGc.BUSY_MAX`` allocations wait.

SIGTERM/SIGINT stop the loop; ``close`` stops the kernel, the store writer and removes the
segment. The node pins itself to the profile's cores (``pin_to_cores``).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import select
import signal
import time
from collections import deque

import numpy as np

from engine.book.books import BBO_CROSSED, BBO_LOCKED
from engine.core.clock import Clock, LiveClock
from engine.core.paths import data_dir, state_dir
from engine.core.profile import Profile, VenueLinkConfig
from engine.core.records import SIGNAL_ROW, STRATEGY_ROW, KillState, Notice
from engine.core.roles import Role
from engine.execution.oms import OrderUpdate
from engine.execution.orders import ClOrdIds, Order, OrdStatus
from engine.execution.venues import FixVenueClient
from engine.fix.store import MemoryStore, MessageStore
from engine.ipc.layout import (
    BOOK_CROSSED,
    BOOK_LOCKED,
    EVENT_TEXT,
    EngineState,
    EventKind,
    H,
)
from engine.ipc.orders import encode_order
from engine.ipc.publisher import EngineSegment
from engine.kernel import CommandSource, Journal, Kernel, Publisher
from engine.risk.killswitch import KillStateFile
from engine.risk.scopes import ScopeTable

__all__ = ["LiveNode", "pin_to_cores"]

log = logging.getLogger("helmdesk.engine")

#: Signal rows each strategy shows the desks (its most interesting: a pairs strategy's top |z|)
SIGNALS_PER_STRATEGY = 16

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR
SIM_VENUE = "SIM"  #: the one venue of [feed] kind = "sim"


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


def _order_payload(u: OrderUpdate, o: Order, text: str) -> bytes:
    """The ORDER event record of ``u``: the order's state as the update has it (the order
    itself may have moved on when a deferred update is published)."""
    return encode_order(
        cl_ord_id=o.cl_ord_id, venue=o.venue, side=o.side, status=u.status.value, tif=o.tif,
        qty=o.qty, cum_qty=u.cum_qty, leaves_qty=u.leaves_qty, last_qty=u.last_qty,
        price=o.price, avg_px=o.avg_px, last_px=u.last_px, text=text, unknown=u.unknown)


def _cut(text: str, n: int) -> bytes:
    """At most ``n`` bytes of UTF-8, never half a character."""
    return text.encode()[:n].decode("utf-8", "ignore").encode()


class IdleGc:
    """The live loop's garbage collection: in idle turns, not in a tick's (module docstring).

    ``start`` turns automatic collection off, ``stop`` back on; ``idle()`` each idle turn
    collects what CPython's thresholds say is due; ``busy()`` each busy turn only when
    ``BUSY_MAX`` allocations wait. A gen-0 collection in the middle of a turn cost ~200 µs
    (in-process harness: 8 of 1500 order turns had one)."""

    BUSY_MAX = 20_000  #: allocations a run of busy turns may leave uncollected

    def __init__(self) -> None:
        self.collections = [0, 0, 0]  #: by generation
        self._was_enabled = True
        self._thresholds = (700, 10, 10)

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        t = gc.get_threshold()
        self._thresholds = (max(1, t[0]), max(1, t[1]), max(1, t[2]))
        gc.disable()

    def stop(self) -> None:
        if self._was_enabled:
            gc.enable()

    def idle(self) -> None:
        c0, c1, c2 = gc.get_count()
        t0, t1, t2 = self._thresholds
        if c0 >= t0:
            gen = 2 if c2 >= t2 and c1 >= t1 else 1 if c1 >= t1 else 0
            gc.collect(gen)
            self.collections[gen] += 1

    def busy(self) -> None:
        if gc.get_count()[0] >= self.BUSY_MAX:
            gc.collect(0)
            self.collections[0] += 1


# -- adapters ------------------------------------------------------------------------------------
class StoreJournal(Journal):
    """The journal on the store's writer process (``engine.store.StoreLink``): orders,
    executions, the audit trail and kill switch changes go on its ring."""

    deferrable = True  # order() reads the order's state from the update

    def __init__(self, store) -> None:
        self.store = store
        #: the store sequence number of the last execution put and not yet taken
        self.fill_seq = 0

    def order(self, u: OrderUpdate, o: Order, ts_ns: int) -> None:
        store = self.store
        if u.last_qty and u.exec_id:
            self.fill_seq = store.put_execution(u.exec_id, o.venue, o.cl_ord_id, o.symbol,
                                                o.side, u.last_qty, u.last_px, ts_ns, u.fee)
        store.put_order(o.cl_ord_id, o.venue, o.symbol, o.side, o.qty, o.price, o.tif, u.status,
                        u.cum_qty, u.leaves_qty, o.avg_px, o.venue_order_id, "", ts_ns, ts_ns)

    def command(self, cmd, ack) -> None:
        self.store.put_command_ack(cmd, ack)

    def kill(self, name: str, scope: int, scope_id: int, tripped: bool, user: str, why: str,
             ts_ns: int, *, state: str = "", scope_name: str = "") -> None:
        self.store.put_kill(name, scope, scope_id, tripped, user, why, ts_ns, state=state,
                            scope_name=scope_name)

    def limit(self, user: str, role: str, workstation: str, scope: str, key: str, old: str,
              new: str, reason: str, ts_ns: int) -> None:
        self.store.put_limit(user, role, workstation, scope, key, old, new, reason, ts_ns)

    def order_tag(self, cl_ord_id: str, source: str, account: str, ts_ns: int) -> None:
        self.store.put_order_tag(cl_ord_id, source, account, ts_ns)


class ShmPublisher(Publisher):
    """The kernel's publications as shared-memory records. An ORDER record that reports a
    fill is held until the store has made the fill durable (and what follows waits behind
    it), so a desk never shows a fill that a crash could lose.

    Holding has a bound: while the store cannot write (``store_failing``: the node sets it
    from ``StoreLink.health``), or once ``HELD_MAX`` records wait, held records are published
    at once, marked: level WARNING and the text "NOT DURABLE" (a trader must see fills even
    when the database is down; the notice that goes with it names the cause)."""

    live = True
    deferrable = True  # order() reads the order's state from the update
    HELD_MAX = 10_000
    NOT_DURABLE = "NOT DURABLE"

    def __init__(self, shm: EngineSegment, symbols: list[str], journal: StoreJournal | None
                 ) -> None:
        self.shm = shm
        self.index = {s: i for i, s in enumerate(symbols)}
        self.journal = journal
        self.held: deque = deque()
        self.publishes = 0
        self.store_failing = False  #: set by the node: the store cannot make records durable
        self.not_durable = 0  #: ORDER records published before their fill was durable
        self._risk_overflow = False
        self._recon_published = 0
        self.tape = None  #: the trade ring's feed (a tap on the books), from ``attach``
        #: CLOCK_MONOTONIC at the start of the loop's turn (the loop sets it): tick to order
        #: is the kernel's lag behind the market data plus the real time the turn took since
        self.turn_mono_ns = 0
        self._tick_to_order = shm.latency["tick_to_order"]

    def attach(self, market) -> None:
        self.tape = self.shm.trade_tape(market.books.n_venues)
        market.books.taps.append(self.tape)

    def order_sent(self, trigger_recv_ns: int, now_ns: int) -> None:
        self._tick_to_order.add(now_ns - trigger_recv_ns + time.monotonic_ns()
                                - self.turn_mono_ns)

    def order(self, u: OrderUpdate, o: Order, ts_ns: int) -> None:
        payload = _order_payload(u, o, u.text)
        level = WARNING if u.unknown or u.status is OrdStatus.REJECTED else INFO
        inst = self.index.get(o.symbol, -1)
        journal = self.journal
        if journal is not None:
            seq, journal.fill_seq = journal.fill_seq, 0
            if self.held or seq:
                marked = _order_payload(u, o, self.NOT_DURABLE) if seq else payload
                self.held.append((seq, ts_ns, level, inst, payload, marked))
                if self.store_failing or len(self.held) > self.HELD_MAX:
                    self.release()
                return
        self.shm.events.publish(ts_ns, EventKind.ORDER, level, inst, payload)

    def release(self) -> None:
        """Publish held ORDER records whose fills are durable now (in order); all of them,
        marked, while the store is failing or too many wait."""
        held = self.held
        store = self.journal.store
        store.poll()
        publish = self.shm.events.publish
        while held and (held[0][0] == 0 or store.durable(held[0][0])):
            _seq, ts, level, inst, payload, _marked = held.popleft()
            publish(ts, EventKind.ORDER, level, inst, payload)
        if held and (self.store_failing or len(held) > self.HELD_MAX):
            for seq, ts, _level, inst, payload, marked in held:
                if seq and not store.durable(seq):
                    self.not_durable += 1
                    publish(ts, EventKind.ORDER, WARNING, inst, marked)
                else:
                    publish(ts, EventKind.ORDER, _level, inst, payload)
            held.clear()

    def flush_held(self) -> None:
        """The last word at shutdown, durable or not."""
        for _seq, ts, level, inst, payload, _marked in self.held:
            self.shm.events.publish(ts, EventKind.ORDER, level, inst, payload)
        self.held.clear()

    def notice(self, kind: Notice, level: int, text: str, instrument: int, ts_ns: int) -> None:
        self.shm.events.publish(ts_ns, int(kind), level, instrument, _cut(text, EVENT_TEXT))

    def books(self, market, instruments, ts_ns: int) -> None:
        tape = self.tape
        if tape is not None and tape.n:  # the trades first: a book's last trade is in the ring
            tape.drain()
        bbo = market.books.bbo
        updates = bbo["updates"]
        bbo_flags = bbo["flags"]
        shm = self.shm
        for i in instruments:
            bid_px, bid_sz, ask_px, ask_sz = market.consolidated(i)
            last_px, last_sz = market.last_trade(i)
            f = int(bbo_flags[i])
            flags = (BOOK_CROSSED if f & BBO_CROSSED else 0) | (BOOK_LOCKED if f & BBO_LOCKED else 0)
            shm.publish_book(i, ts_ns, int(updates[i]), bid_px, bid_sz, ask_px, ask_sz,
                             last_px, last_sz, flags)
        self.publishes += len(instruments)
        shm.stamp_publish()

    def replay(self, first_ns: int, last_ns: int, now_ns: int, speed: float,
               paused: bool) -> None:
        """A replay's position for the desks (UTC ns of the day's first and last records and
        of the replay's time now; speed; paused)."""
        self.shm.set_replay(first_ns, last_ns, now_ns, speed, paused)

    def kill(self, rows) -> None:
        self.shm.publish_kill(rows)

    def health(self, feed_rows, venue_states: list[int], ts_ns: int) -> None:
        self.shm.publish_feed(feed_rows)
        for k, state in enumerate(venue_states):
            self.shm.set_venue_state(k, state)

    def risk(self, risk, ts_ns: int) -> None:
        shm = self.shm
        shm.publish_latency()  # at the risk tables' rate: a histogram is read by people
        lost = shm.publish_risk("positions", risk.portfolio.rows())
        lost += shm.publish_risk("limits", risk.limit_rows())
        var = risk.var_rows()
        if var is not None:
            lost += shm.publish_risk("var", var)
        if len(risk.differences) != self._recon_published or risk.recon_changed:
            risk.recon_changed = False
            self._recon_published = len(risk.differences)
            lost += shm.publish_risk("recon", risk.recon_rows())
        if lost and not self._risk_overflow:
            self._risk_overflow = True
            log.warning("%d risk rows did not fit the segment's tables: the desk sees the "
                        "first ones only", lost)


    def strategies(self, host, ts_ns: int) -> None:
        """STRATEGY_ROW per strategy, SIGNAL_ROW for each one's top rows."""
        rows = np.zeros(len(host), dtype=STRATEGY_ROW)
        signals = []
        for k, (name, kind, state, figures) in enumerate(host.rows()):
            r = rows[k]
            r["index"] = host.scope_ids.get(name, k)
            r["state"] = int(state)
            r["ts_ns"] = ts_ns
            r["name"] = name.encode()[:24]
            r["kind"] = kind.encode()[:16]
            items = list(figures.items())[:8]
            r["n_figures"] = len(items)
            for j, (fname, value) in enumerate(items):
                r["fig_names"][j] = fname.encode()[:16]
                r["fig_values"][j] = float(value)
            s = host.strategies[k]
            for j, col in enumerate(s.signal_columns[:4]):
                r["sig_cols"][j] = col.encode()[:8]
            try:
                sig = s.signals(SIGNALS_PER_STRATEGY)
            except Exception:
                log.exception("strategy %s: signals() failed", name)
                sig = []
            for rank, (label, *values) in enumerate(sig[:SIGNALS_PER_STRATEGY]):
                signals.append((k, rank, label.encode()[:24], tuple(float(v) for v in values[:4])))
        shm = self.shm
        shm.publish_risk("strategies", rows)
        sig_rows = np.zeros(len(signals), dtype=SIGNAL_ROW)
        for j, (k, rank, label, values) in enumerate(signals):
            sig_rows[j] = (k, rank, label, values + (0.0,) * (4 - len(values)))
        shm.publish_risk("signals", sig_rows)


class ShmCommands(CommandSource):
    """The desks' command rings: served when an attached desk's command tail moved (or a desk
    came or went), and in full every 10 ms whatever happened."""

    SCAN_NS = 10_000_000

    def __init__(self, shm: EngineSegment) -> None:
        self.shm = shm
        self.pending = shm.commands_pending
        self.next_scan = 0

    def serve(self, now_ns: int, handle) -> int:
        shm = self.shm
        if shm.acks_waiting:
            shm.flush_acks()  # a kill's ack, once its state is durable
        if now_ns < self.next_scan and not self.pending():
            return 0
        self.next_scan = now_ns + self.SCAN_NS
        return shm.serve_commands(handle)


# -- the node ------------------------------------------------------------------------------------
class LiveNode:
    """Build with a profile, then ``run()`` until ``stop()`` or SIGTERM/SIGINT."""

    def __init__(self, profile: Profile, *, clock: Clock | None = None, persist: bool = True,
                 strategies=(), journal_extra: Journal | None = None) -> None:
        self.profile = profile
        # the venues' passwords, read before anything is built: a missing one (ProfileError,
        # naming the venue and the reference) stops the start with nothing to undo
        self._passwords = {v.name: profile.venue_link_password(v) for v in profile.venues}
        self.clock = clock or LiveClock()
        cfg = profile.engine
        self.instance = cfg.instance
        self.symbols = [i.symbol for i in profile.instruments]
        self._running = True  # stop() before or during run() wins: run() never sets it again
        self.turns = 0
        self.waits = 0
        self.gc = IdleGc()
        self.store = None
        self._fix_stores: list = []  # deferred FIX session stores: flushed after each turn
        self._store_problem: str | None = None
        self._recovered = None
        self._kill_state = KillStateFile(state_dir(cfg.instance) / "killswitches.json") \
            if persist else None
        sources, market_venues, recorder = [], [], None
        #: the replay clock of a [feed] kind = "replay" engine (ReplaySource): the kernel runs
        #: on the recorded time it gives, which the desks pause, play, speed up and jump
        self.replay = None
        try:
            if persist:  # the audit trail is kept whatever the engine trades
                self._open_store()
            scopes = ScopeTable.from_profile(profile, [s.name for s in strategies])
            self.shm = EngineSegment(
                cfg.instance,
                [(i.symbol, i.tick, i.price) for i in profile.instruments],
                event_capacity=cfg.event_capacity,
                idle=cfg.idle,
                epoch_wall_ns=self.clock.wall_ns(),
                epoch_mono_ns=self.clock.mono_ns(),
                log=log.warning,
                venues=[v.name for v in profile.venues],
                kill_rows=scopes.n_rows, scope_sizes=scopes.sizes(),
                grant=self._grant,
            )
        except BaseException:
            self._close_early()
            raise
        try:
            clients = [self._client(v, persist) for v in profile.venues]
            sources, market_venues, recorder = self._sources(clients)
            self.journal = StoreJournal(self.store) if self.store is not None else None
            self.publisher = ShmPublisher(self.shm, self.symbols, self.journal)
            journal = self.journal
            if journal_extra is not None:
                journal = _Both(journal, journal_extra) if journal is not None else journal_extra
            self.kernel = Kernel(
                profile, market_venues=market_venues, sources=sources, venues=clients,
                ids=self._clordids(persist), publisher=self.publisher, journal=journal,
                commands=ShmCommands(self.shm), strategies=strategies,
                kill_state=self._kill_state, recorder=recorder)
            if self.replay is not None and (strategies or clients):  # a jump's catch-up
                self.replay.slice_ns = (cfg.slice_us or 1000) * 1000  # slices, as a backtest
            self._start_var(persist)
        except BaseException:
            for s in sources:
                s.close()
            if recorder is not None:
                recorder.close()
            self.shm.close(unlink=True)
            self._close_early()
            raise
        if self._recovered is not None:
            self._restore()
        self._audit_start_trips()
        if self._kill_state is not None:  # a kill's ack waits for the save: wake the loop then
            self._kill_state.on_saved = self.shm.ring_own_bell

    # -- building ------------------------------------------------------------------------------
    def _start_var(self, live: bool) -> None:
        """VaR in a helper process (``[var]``; ``enabled = false``: none). ``ProfileError`` for
        a bad ``[var]`` table."""
        from engine.risk.var import VarCalculator, VarConfig, VarService

        table = dict(self.profile.var)
        if not table.pop("enabled", True):
            return
        cfg = VarConfig.from_table(table, where=f"{self.profile.path}: [var]")
        p = self.kernel.risk.portfolio
        n_books = 1 + p.n_strategies
        self.kernel.risk.var = (VarService(cfg, p.n, n_books) if live
                                else VarCalculator(cfg, p.n, n_books))

    def _grant(self, uid: int, user: str) -> Role | str:
        """The role the profile's ``[users]`` gives OS user ``user`` (the kernel named it at
        attach: engine.ipc.attach), or why it may not attach. Runs on the attach thread."""
        users = self.profile.users
        role = users.get(user)
        if role is None:
            role = users.get("*")
        if role is None:
            return (f"OS user {user!r} (uid {uid}) is not in [users] of profile "
                    f"{self.profile.path} and it has no \"*\" entry: add the user there "
                    f"(viewer, trader or risk_manager) to attach to engine {self.instance!r}")
        return role

    def _client(self, v: VenueLinkConfig, persist: bool):
        if v.kind == "sim":
            from engine.venue.inprocess import InProcessVenue

            if v.md_latency_us:
                log.warning("venue %s: md_latency_us = %r is a backtest's fill model; paper "
                            "trading matches against the books as the engine receives them",
                            v.name, v.md_latency_us)
            return InProcessVenue(v.name, self.profile.instruments, sender=v.sender,
                                  latency_ns=v.latency_us * 1000, fee_bps=v.fee_bps,
                                  heartbeat_s=v.heartbeat_s, queue_model=v.queue_model)
        store = self._session_store(v) if persist else MemoryStore()
        return FixVenueClient(v, store, password=self._passwords[v.name])

    def _sources(self, clients: list) -> tuple[list, list[str], object]:
        """The market-data sources, the venue table, the recorder. ``[feed] kind`` chooses the
        simulated venues (sim, simvenues) or a recorded day (replay); the books of FIX venues
        with ``market_data`` are always a source too (``venues``: theirs alone)."""
        from engine.feeds.sources import FixMdSource, ReplaySource
        from engine.feeds.tickstore import TickRecorder, TickStoreError, default_root

        feed = self.profile.feed
        root = feed.ticks_dir or default_root()
        instruments = self.profile.instruments
        sources: list = []
        names: list[str] = []
        if feed.kind in ("sim", "simvenues"):
            names = [SIM_VENUE] if feed.kind == "sim" else list(feed.venues)
            # paper trading: the market opens once the in-process venues are logged on, as
            # in a backtest of its recording (whose venues log on before the first record)
            paper = [c for c, v in zip(clients, self.profile.venues) if v.kind == "sim"]
            sources.append(sim_source(self.profile, names, self.clock.wall_ns(),
                                      (lambda: all(c.up for c in paper)) if paper else None))
            log.info("simulated venues %s: %d instruments, pairs %s", ", ".join(names),
                     len(instruments), ", ".join(f"{p.a}/{p.b}" for p in feed.pairs) or "none")
        elif feed.kind == "replay":
            records, names = load_day(root, feed.day, self.symbols)
            if not len(records):
                raise TickStoreError(f"replay {feed.day}: no records of this profile's instruments "
                                 f"({', '.join(self.symbols)}) in {root}")
            at_ns = _time_of_day(feed.day, feed.at) if feed.at else None
            # the kernel starts at the first record (a strategy's and an intents file's time 0)
            self.replay = ReplaySource(records, range(len(names)), speed=feed.speed, at_ns=at_ns,
                                       paused=feed.paused)
            sources.append(self.replay)
            log.info("replaying %s from %s: %d records of %s at %gx%s%s", feed.day, root,
                     len(records), ", ".join(names), feed.speed,
                     f" from {feed.at}" if feed.at else "", ", paused" if feed.paused else "")
        fix = [c for c in clients if getattr(c, "md", None) is not None]
        if fix:  # the profile refuses a name in both (one book per venue)
            sources.append(FixMdSource(fix, range(len(names), len(names) + len(fix)),
                                       instruments))
            names = names + [c.name for c in fix]
        recorder = None
        if feed.record and feed.kind != "replay":
            recorder = TickRecorder(root, names, instruments)
            log.info("recording market data to %s", root)
        return sources, names, recorder

    def _open_store(self) -> None:
        from engine.store import StoreError, StoreLink, load

        url = self.profile.database(str(data_dir()))
        try:
            self.store = StoreLink(self.instance, url)
            self._recovered = load(url)
        except (StoreError, OSError, ValueError) as e:
            if self.store is not None:
                self.store.close()
                self.store = None
            raise StoreError(f"engine {self.instance}: cannot open its store: {e}") from None

    def _close_early(self) -> None:
        if self.store is not None:
            self.store.close()
        if self._kill_state is not None:
            self._kill_state.close()

    def _restore(self) -> None:
        """Orders rebuilt from the store after a restart: shown, in doubt until reconciled."""
        r = self._recovered
        self.kernel.risk.kill.check_audit(
            {k.name: (KillState[k.state.upper()] if k.state else k.tripped, k.ts_ns)
             for k in r.kills.values()})
        working = sorted(r.working.values(), key=lambda o: o.cl_ord_id)
        self.kernel.now = self.clock.wall_ns()
        risk = self.kernel.risk
        risk.restore_limits(r.limit_changes)
        replayed = risk.restore_books(r.executions, r.order_tags)
        risk.expect_reconcile(working)  # the venues' answers are checked against the database
        self.kernel.execution.restore(working)
        pos = ", ".join(f"{s} {p.qty:+d}" for s, p in sorted(r.positions.items()) if p.qty) or "flat"
        log.info("restored from %s: %d working orders (of %d), %d executions into the books, "
                 "positions: %s%s", self.store.safe_url, len(working), len(r.orders), replayed,
                 pos,
                 f"; repaired from executions: {', '.join(r.repaired)}" if r.repaired else "")
        if working:
            self.kernel.notify(WARNING, f"restored {len(working)} working orders: in doubt "
                                        f"until their venues answer")
        self._recovered = None

    def _audit_start_trips(self) -> None:
        """Switches the engine itself tripped at start (failing closed) go in the audit trail
        like any trip."""
        kill = self.kernel.risk.kill
        journal = self.kernel.journal
        if kill.failed_closed is None or journal is None:
            return
        now = self.clock.wall_ns()
        for r, row in enumerate(kill.rows):
            if row["state"] and row["user"] == b"engine":
                self.kernel._journal_kill(r, int(row["state"]), "engine", kill.failed_closed,
                                          now)

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

        store = WriteBehindFixStore(self.store, f"{v.sender}-{v.target}@{v.name}",
                                    self._recovered, deferred=True)
        self._fix_stores.append(store)  # flushed by the loop after each turn
        return store

    # -- the loop ------------------------------------------------------------------------------
    def stop(self, *_args) -> None:
        self._running = False

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.stop)

    def run(self) -> None:
        kernel = self.kernel
        gc.collect()
        gc.freeze()  # start-up objects never need scanning again
        idle_gc = self.gc
        idle_gc.start()
        try:
            self._loop(kernel, idle_gc)
        finally:
            idle_gc.stop()

    def _loop(self, kernel: Kernel, idle_gc: IdleGc) -> None:
        cfg = self.profile.engine
        clock = self.clock
        shm = self.shm
        publisher = self.publisher
        execution = kernel.execution
        q = shm.q
        bell = shm.bell
        commands_pending = shm.commands_pending
        mono = clock.mono_ns
        wall = clock.wall_ns
        spin = cfg.idle == "spin"
        sleep_always = cfg.idle == "sleep"
        spin_ns = cfg.spin_us * 1000
        max_sleep_ns = cfg.max_sleep_us * 1000
        hb_ns = 1_000_000
        store = self.store
        held = publisher.held
        gc_idle = idle_gc.idle
        gc_busy = idle_gc.busy
        fix_stores = self._fix_stores
        replay = self.replay
        kernel.warm_up()  # seconds on a fresh install: before the start time is taken
        # strategies' clocks start now (a replay's: at its start): nothing slow after this
        kernel.start(wall() if replay is None else replay.begin(wall()))
        kernel.notify(INFO, f"engine {self.instance} running, pid {os.getpid()}")
        log.info("engine %s running", self.instance)
        kill = kernel.risk.kill
        if kill.failed_closed is not None:
            what = "global kill TRIPPED" if kill.global_tripped else "kill switches TRIPPED"
            kernel.notify(ERROR, f"{what} at start: {kill.failed_closed}", -1, Notice.KILL)
        elif kill.global_tripped:
            kernel.notify(ERROR, "global kill switch is TRIPPED (restored)", -1, Notice.KILL)
            log.error("global kill switch is TRIPPED (restored from the last run)")
        now = mono()
        shm.heartbeat(now, wall())
        shm.set_state(EngineState.RUNNING)

        last_activity = now
        next_hb = now + hb_ns
        next_store_check = now
        turns = 0
        waits = 0
        # slice_us: each turn at the next time due, never past it, so the kernel sees what a
        # backtest of the recorded session sees (in order, however late the loop runs)
        lockstep = cfg.slice_us > 0
        t = due = wall() if replay is None else kernel.now
        while self._running:
            now = mono()
            publisher.turn_mono_ns = now
            turns += 1
            now_wall = wall()
            if replay is None:
                kt = now_wall
            else:  # kernel time: the recorded time. A catch-up turn publishes no book or health
                kt = replay.clock(now_wall, due)  # (the desks see it land, not run past)
                publisher.live = not replay.catching_up
            if lockstep:
                t = max(t, min(kt, due if due > t else t + 1))
                due = kernel.step(t)
            else:
                due = kernel.step(kt)
            if replay is not None and replay.paused:
                kernel.publish_books()  # time stands still: no later turn would show them
            for fs in fix_stores:  # the turn's FIX records, after its messages are out
                if fs.dirty:
                    fs.flush()
            if held:
                publisher.release()
            if now >= next_hb:
                shm.heartbeat(now, now_wall)
                q[H.LOOP_TURNS // 8] = turns
                q[H.FEED_EVENTS // 8] = kernel.market.applied
                q[H.PUBLISHES // 8] = publisher.publishes
                if replay is not None:
                    publisher.replay(replay.first_ns, replay.last_ns, replay.now_ns,
                                     replay.speed, replay.paused)
                if store is not None:
                    store.poll()  # drains overflow, notices a dead writer
                    if now >= next_store_check:
                        next_store_check = now + 100 * hb_ns
                        self._check_store(now_wall)
                next_hb = now + hb_ns
            if kernel.busy:
                last_activity = now
                gc_busy()
                continue
            gc_idle()
            if spin or (not sleep_always and now - last_activity < spin_ns):
                continue
            # wait: until the next thing due, at most max_sleep, and the next heartbeat
            timeout = min(due - now_wall if replay is None else replay.wait_ns(due),
                          max_sleep_ns, next_hb + hb_ns - now)
            if timeout <= 0:
                continue
            q[H.ASLEEP // 8] = 1
            if not commands_pending():
                r, _, _ = select.select([bell, *execution.fds()], (), (), timeout / 1e9)
                if bell in r:
                    shm.drain_bell()
            q[H.ASLEEP // 8] = 0
            waits += 1
        self.turns = turns
        self.waits = waits

    def _check_store(self, now_wall: int) -> None:
        """Say when the store stops making records durable, and when it writes again."""
        why = self.store.health()
        if why == self._store_problem:
            return
        pub = self.publisher
        if why is not None:
            pending = self.store.pending
            self.kernel.notify(ERROR, f"DATABASE FAILING ({why}); {pending} records wait; "
                                      f"fills shown NOT DURABLE", -1)
            log.error("store %s failing: %s; %d records not durable; fills published unheld",
                      self.store.safe_url, why, pending)
            pub.store_failing = True
            if pub.held:
                pub.release()
        else:
            self.kernel.notify(WARNING, f"database writing again ({self.store.pending} records "
                                        f"still to write; {pub.not_durable} fills were shown "
                                        f"before they were durable)", -1)
            log.warning("store writing again: %d records pending", self.store.pending)
            pub.store_failing = False
        self._store_problem = why

    def counters(self) -> dict:
        """Every drop and rejection the engine counted, by stage and reason (logged at stop)."""
        execution = self.kernel.execution
        out: dict = {"execution": dict(execution.counters), "oms": dict(execution.oms.counters),
                     "sessions": {}, "market_data": {}}
        for c in execution.clients.values():
            session = getattr(c, "session", None)
            if session is not None:
                out["sessions"][c.name] = dict(session.counters)
            md = getattr(c, "md", None)
            if md is not None:
                out["market_data"][c.name] = dict(md.counters)
        rejects = getattr(self.shm, "reject_counts", None)
        if rejects is not None:
            out["desk_slots"] = rejects()
        if self.store is not None:
            out["store"] = self.store.stats()
        out["not_durable_fills_shown"] = self.publisher.not_durable
        out["gc_collections"] = list(self.gc.collections)
        return out

    def close(self) -> None:
        """Stop cleanly: state STOPPED, segment unlinked, kill state flushed to disk."""
        try:
            log.info("counters %s", json.dumps(self.counters(), sort_keys=True))
        except Exception:  # a report must never stop the shutdown
            log.exception("counters could not be gathered")
        try:
            self.shm.set_state(EngineState.STOPPING)
            self.kernel.notify(INFO, f"engine {self.instance} stopping")
            self.kernel.stop(self.clock.wall_ns())
            for fs in self._fix_stores:  # the Logouts' numbers and anything else waiting
                fs.flush()
            if self.store is not None:
                left = self.store.close()
                if left:
                    log.error("store: %d records were not written to %s", left,
                              self.store.safe_url)
            self.publisher.flush_held()
        finally:
            self.shm.close(unlink=True)
        log.info("engine %s stopped; shared memory removed", self.instance)


class _Both(Journal):
    """Two journals: the store and a report, say."""

    def __init__(self, a: Journal, b: Journal) -> None:
        self.a, self.b = a, b
        self.deferrable = getattr(a, "deferrable", False) and getattr(b, "deferrable", False)

    def order(self, u, o, ts_ns) -> None:
        self.a.order(u, o, ts_ns)
        self.b.order(u, o, ts_ns)

    def command(self, cmd, ack) -> None:
        self.a.command(cmd, ack)
        self.b.command(cmd, ack)

    def kill(self, *args, **kw) -> None:
        self.a.kill(*args, **kw)
        self.b.kill(*args, **kw)

    def limit(self, *args) -> None:
        self.a.limit(*args)
        self.b.limit(*args)

    def order_tag(self, *args) -> None:
        self.a.order_tag(*args)
        self.b.order_tag(*args)


# -- sources shared with the backtest --------------------------------------------------------------
def sim_source(profile: Profile, names: list[str], start_ns: int, opens_when=None):
    """The simulated venues of a profile (``[feed]`` sim / simvenues) through FeedIntegrity:
    venues quote each instrument's one efficient price (2 bp per √s), two ticks wide around
    it with their own noise, each 50 µs further away than the one before; the profile's
    pairs are cointegrated (``[feed] pairs``: docs/market.md). ``opens_when``: see
    ``SimVenuesSource``."""
    from engine.feeds.integrity import FeedIntegrity
    from engine.feeds.simvenues import SimPair, SimVenues
    from engine.feeds.sources import SimVenuesSource

    feed = profile.feed
    instruments = profile.instruments
    index = {i.symbol: k for k, i in enumerate(instruments)}
    venues = [(name, 0.0, 50.0 * (k + 1), 20.0, 0.3, 2) for k, name in enumerate(names)]
    pairs = [SimPair(i=index[p.a], j=index[p.b], half_life_s=p.half_life_s,
                     spread_bp=p.spread_bp,
                     beta=p.hedge_ratio(instruments[index[p.a]].price,
                                        instruments[index[p.b]].price))
             for p in feed.pairs]
    sim = SimVenues([(i.symbol, i.tick, i.price) for i in instruments], venues, pairs,
                    seed=feed.seed, rate_hz=[i.update_hz for i in instruments],
                    start_ns=start_ns)
    return SimVenuesSource(sim, FeedIntegrity(len(names), len(instruments),
                                              feed.silence_ms * 1_000_000, venue_names=names),
                           opens_when)


def _time_of_day(day: str, at: str) -> int:
    """``at`` (HH:MM:SS[.fff], UTC) on ``day`` (YYYY-MM-DD) as UTC ns."""
    import datetime as dt

    hms, _, frac = at.partition(".")
    base = dt.datetime.fromisoformat(f"{day}T{hms}+00:00")
    return int(base.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


def load_day(root, day: str, symbols: list[str]) -> tuple[np.ndarray, list[str]]:
    """A recorded tick-store day merged by receive time, mapped onto ``symbols`` (records of
    other instruments dropped, with a warning); and the day's venues."""
    from engine.feeds.tickstore import open_day

    d = open_day(root, day)
    try:
        records = d.merge()
        index = {s: i for i, s in enumerate(symbols)}
        ids = np.full(len(d.instruments), -1, dtype=np.int64)
        for k, ins in enumerate(d.instruments):
            ids[k] = index.get(ins.symbol, -1)
        mapped = ids[records["instrument"]]
        keep = mapped >= 0
        if not keep.all():
            log.warning("replay %s: %d records of instruments this engine does not trade "
                        "dropped", day, int((~keep).sum()))
            records = records[keep]
        records["instrument"] = mapped[keep]
        return records, list(d.venues)
    finally:
        d.close()

