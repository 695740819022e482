"""The kernel: one engine core that runs live, in paper trading and in backtests.

As NautilusTrader's kernel, it is built the same way whatever runs it — from a profile, the
market-data sources, the venue clients and (optionally) a publisher for the desks, a journal
for the database and a command source — and differs between modes only in those adapters and
in who calls ``step`` with which time:

- the **live node** (``engine.node``) adds the shared-memory segment, the idle modes and the
  doorbell, the heartbeat, signals and pinning, and calls ``step(clock.wall_ns())`` every turn;
- the **backtest node** (``engine.backtest``) adds a simulated clock, tick-store replay and
  in-process simulated venues, and calls ``step`` at the next time anything is due, as fast as
  the CPU allows.

``step(now_ns)`` runs one turn, always in this order, and returns when it next has work due::

    commands     each command from the command source, through its verb's handler
    venues       every venue client polled: order reports to the OMS (market data queued)
    market data  every source's due records, one batch, into the books
    strategies   on_book for the instruments that changed, due timers
    risk         the guard of ``submit``, the one door into execution (strategies, manual
                 orders, scripted intents, each router child)
    execution    simulated venues see the moved market (resting orders may fill)
    publish      changed books (at most ``publish_hz``), kill switches, health: to the desks

Nothing in here reads a clock, waits, touches shared memory, installs signals or starts a
thread: time is the ``now_ns`` the caller passes (UTC nanoseconds on the caller's clock), and
everything outside the process is behind an adapter. Every stage is a named part with its own
config class (``MarketData`` + ``MarketDataConfig``, ``RiskEngine`` + ``RiskConfig``,
``ExecutionEngine`` + ``ExecutionConfig``, ``Strategies``, ``CommandHandlers``), all built here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.commands import CommandHandlers
from engine.core.intents import OrderIntent
from engine.core.profile import Profile
from engine.core.records import KillState, Notice, Scope
from engine.execution.engine import ExecutionConfig, ExecutionEngine
from engine.execution.oms import OrderUpdate
from engine.execution.orders import ClOrdIds, Order
from engine.execution.router import ParentUpdate
from engine.feeds.marketdata import MarketData, MarketDataConfig
from engine.feeds.sources import NEVER, MarketDataSource
from engine.risk.engine import RiskConfig, RiskEngine
from engine.strategy.api import Strategy
from engine.strategy.host import Strategies

__all__ = ["CommandSource", "Journal", "Kernel", "KernelConfig", "Publisher"]

log = logging.getLogger("helmdesk.engine")

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelConfig:
    """The kernel's own settings (the profile's ``[engine]``)."""

    instance: str
    publish_hz: int = 1000
    health_ms: int = 100

    @classmethod
    def from_profile(cls, profile: Profile) -> KernelConfig:
        return cls(instance=profile.engine.instance, publish_hz=profile.engine.publish_hz)


class Publisher:
    """Where the kernel tells the desks what changed. The live node's converts to shared
    memory; this base does nothing (a backtest has no desk)."""

    live = False  #: False: the kernel skips working out what only a desk would read
    #: True: ``order`` reads an order's state from the update only, so the updates an intent
    #: causes may reach it after the turn's messages are sent (ExecutionEngine, "deferred")
    deferrable = False

    def attach(self, market: MarketData) -> None:
        """The kernel's market data, once, before any record is applied (a publisher that
        shows every trade taps its books here: ``BookSet.taps``)."""

    def order(self, update: OrderUpdate, order: Order, ts_ns: int) -> None:
        """An order changed (every update, in order)."""

    def order_sent(self, trigger_recv_ns: int, now_ns: int) -> None:
        """A strategy's order is on its way to the venue (written, or in the router's hands),
        decided on market data received at ``trigger_recv_ns`` (on the kernel's clock;
        ``now_ns`` is the turn's time): the tick-to-order latency's end. Only ``live``
        publishers are told."""

    def notice(self, kind: Notice, level: int, text: str, instrument: int, ts_ns: int) -> None:
        """A line for the desks' event log."""

    def books(self, market: MarketData, instruments, ts_ns: int) -> None:
        """These instruments' consolidated books changed."""

    def kill(self, rows) -> None:
        """The kill switches changed (KILL_ROW rows)."""

    def health(self, feed_rows, venue_states: list[int], ts_ns: int) -> None:
        """Market data health (FEED_HEALTH rows) and the venue sessions' state words."""

    def risk(self, risk, ts_ns: int) -> None:
        """The risk engine's positions, limit utilisation and VaR (every health_ms)."""

    def strategies(self, strategies, ts_ns: int) -> None:
        """Each strategy's state, key figures and signals (``engine.strategy.host.Strategies``;
        every health_ms, and at once when a state changes)."""

    def replay(self, first_ns: int, last_ns: int, now_ns: int, speed: float,
               paused: bool) -> None:
        """A replay's position: UTC ns of the recorded day's first and last records and of the
        replay's time now, its speed, paused or not."""


class Journal:
    """Where the kernel writes what must be kept: the database (live), a report (backtest)."""

    #: as ``Publisher.deferrable``: ``order`` reads the order's state from the update only
    deferrable = False

    def order(self, update: OrderUpdate, order: Order, ts_ns: int) -> None:
        """An order changed; a fill in ``update`` is an execution."""

    def command(self, cmd, ack) -> None:
        """A command and its answer (the audit trail)."""

    def kill(self, name: str, scope: int, scope_id: int, tripped: bool, user: str, why: str,
             ts_ns: int, *, state: str = "", scope_name: str = "") -> None:
        """A kill switch changed (``state``: active, reducing or halted; ``scope_name``:
        "strategy:pairs", ...)."""

    def limit(self, user: str, role: str, workstation: str, scope: str, key: str, old: str,
              new: str, reason: str, ts_ns: int) -> None:
        """A risk limit was edited (the audit trail of limits): ``scope`` "default",
        "instrument:ESZ6", "strategy:pairs"…; ``key`` the limit's key (max_order_qty);
        ``old``/``new`` its values as text ("" for none); ``role`` the editor's role name."""

    def order_tag(self, cl_ord_id: str, source: str, account: str, ts_ns: int) -> None:
        """Whose a new order is (who asked, which account): books rebuilt after a restart."""


class CommandSource:
    """Where commands come from (the live node's command rings)."""

    def serve(self, now_ns: int, handle: Callable) -> int:  # pragma: no cover - protocol
        """Answer every pending command with ``handle(cmd) -> Ack``; return how many."""
        raise NotImplementedError


class Kernel:
    def __init__(self, profile: Profile, *, market_venues: Sequence[str],
                 sources: Sequence[MarketDataSource], venues: Sequence, ids: ClOrdIds,
                 publisher: Publisher | None = None, journal: Journal | None = None,
                 commands: CommandSource | None = None, strategies: Sequence[Strategy] = (),
                 kill_state=None, recorder=None) -> None:
        """``market_venues``: the engine's venue table for market data (ids in MD_EVENT);
        ``sources``: market-data sources writing those ids; ``venues``: the venue clients
        (``engine.execution.venues``), in the profile's ``[[venues]]`` order; ``kill_state``:
        where kill switches persist (None: memory only); ``recorder``: the tick recorder."""
        self.profile = profile
        self.config = KernelConfig.from_profile(profile)
        self.symbols = [i.symbol for i in profile.instruments]
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.publisher = publisher or Publisher()
        self.journal = journal
        self.command_source = commands
        self.now = 0
        self.busy = False  #: the last step did something (the live node's idle logic)
        self._warm = False  # warm_up done
        # tick to order: while the strategies run on a turn's market data, -1 (its receive
        # time not looked up yet) or that time; 0 at any other moment
        self._trigger_recv = 0

        self.market = MarketData(MarketDataConfig.from_profile(profile, market_venues),
                                 profile.instruments, sources, recorder=recorder)
        self.risk = risk = RiskEngine(
            RiskConfig.from_profile(profile, [s.name for s in strategies]), kill_state,
            market=self.market, notify=self.notify)
        self.execution = ExecutionEngine(ExecutionConfig.from_profile(profile), venues, ids,
                                         market=self.market, notify=self.notify,
                                         check=risk.check_child)
        self.strategies = Strategies(
            strategies, self.market, self.submit, self.execution.cancel, self.notify,
            lambda: self.now, accounts=[getattr(s, "account", "") for s in strategies],
            position=risk.strategy_position, cancel_all=risk.cancel_strategy)
        self.strategies.scope_ids = {n: k for k, n in enumerate(risk.table.names[Scope.STRATEGY])}
        risk.execution = self.execution
        risk.submit = self.submit
        risk.on_pause = self.strategies.pause
        defer_journal = getattr(journal, "deferrable", False)
        if journal is not None:
            risk._journal_kill = self._journal_kill
            risk._journal_tag = self._journal_tag_later if defer_journal else journal.order_tag
        self.commands = CommandHandlers(profile, self)

        # every order change, to every subscriber, in this order (the risk engine first: its
        # books are right before anyone reads them). The journal and the publisher only
        # record: they may get an intent's updates after the turn's messages are sent
        self.execution.subscribe(risk.on_order)
        if journal is not None:
            self.execution.subscribe(self._journal_order, deferred=defer_journal)
        self.execution.subscribe(self._publish_order,
                                 deferred=getattr(self.publisher, "deferrable", False))
        if len(self.strategies):
            self.execution.subscribe(self.strategies.on_order)
        self.execution.subscribe_parents(self._on_parent)

        self._publish_ns = 1_000_000_000 // self.config.publish_hz
        self._health_ns = self.config.health_ms * 1_000_000
        self._next_publish = 0
        self._next_health = 0
        self._health_part = 0  # the part of the health round the next _publish does
        self._published_applied = -1
        self._published_kill = -1
        self._book_seen = self.market.new_seen()
        self.publisher.attach(self.market)

    # -- the door ------------------------------------------------------------------------------
    def submit(self, intent: OrderIntent, now_ns: int, source: str | None = None):
        """The one door into execution: the risk engine's checks, then execution. Returns the
        order (or router parent), or why it was refused. ``source``: who asks, if not
        ``intent.source`` (a strategy's context says "strategy:NAME" so)."""
        risk = self.risk
        risk.now = now_ns
        source = source or intent.source
        why = risk.check_intent(intent, now_ns, source)
        if why is not None:
            log.warning("%s %s %s %d @ %s REFUSED: %s", source, intent.symbol,
                        intent.side, intent.qty, intent.price, why)
            return why
        risk.sending(intent, source)
        r = None
        try:
            r = self.execution.submit(intent, now_ns)
        finally:
            risk.sent(r)
        if self._trigger_recv and r is not None and type(r) is not str:
            self._order_sent(now_ns)
        return r

    def _order_sent(self, now_ns: int) -> None:
        """A strategy sent an order while reacting to this turn's market data: the receive
        time of the latest record that moved a consolidated book (looked up once a turn, at
        its first order: a pass over the instruments the other turns never pay for)."""
        if self._trigger_recv < 0:
            self._trigger_recv = int(self.market.books.bbo["ts_recv_ns"].max()) or now_ns
        self.publisher.order_sent(self._trigger_recv, now_ns)

    # -- the turn ------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the market data's and strategies' kernels:
        seconds on a fresh install. Before the caller reads the clock for ``start``: a start time taken before
        would make the first turn see the books silent that long (stale: kill switches trip)."""
        if not self._warm:
            self.market.warm_up()
            self.strategies.warm_up()
            self._warm = True

    def start(self, now_ns: int) -> None:
        """Take the first snapshots, start strategies, publish everything (``warm_up`` first,
        if the caller has not)."""
        self.warm_up()
        self.now = now_ns
        self.execution.poll(now_ns)  # the venue sessions start logging on
        self.market.start(now_ns)
        self.risk.step(now_ns)
        self.strategies.start(now_ns, [s.name for s in self.strategies.strategies
                                       if not getattr(s, "enabled", True)])
        self.execution.flush_deferred()
        self.publish_kill()
        if self.publisher.live:
            self.publisher.books(self.market, range(len(self.symbols)), now_ns)
            self._book_seen = self.market.new_seen()
        self._published_applied = self.market.applied

    def step(self, now_ns: int) -> int:
        """One turn (module docstring); return when the kernel next has work due."""
        self.now = now_ns
        execution = self.execution
        busy = False
        if self.command_source is not None and self.command_source.serve(now_ns, self._handle):
            busy = True
            if execution._later:
                execution.flush_deferred()
        if execution.poll(now_ns):
            busy = True
        market = self.market
        applied = market.step(now_ns)
        if applied:
            busy = True
        strategies = self.strategies
        if strategies.strategies:
            if applied and self.publisher.live:
                self._trigger_recv = -1  # orders now are this market data's
            strategies.step(now_ns)
            self._trigger_recv = 0
            if execution._later:  # the turn's orders are on the wire: now their records
                execution.flush_deferred()
        execution.on_market(now_ns)
        nxt = self.risk.step(now_ns)
        if execution._later:
            execution.flush_deferred()
        if market.next_due_ns < nxt:
            nxt = market.next_due_ns
        t = execution.next_due_ns()
        if t < nxt:
            nxt = t
        if strategies.next_due_ns < nxt:
            nxt = strategies.next_due_ns
        if self.publisher.live:
            nxt = min(nxt, self._publish(now_ns))
        self.busy = busy
        return nxt

    def _handle(self, cmd):
        return self.commands.handle(cmd, self.now)

    def stop(self, now_ns: int) -> None:
        """Strategies stop, venue sessions log out, sources and recorder close."""
        self.now = now_ns
        try:
            self.strategies.stop(now_ns)
            self.execution.flush_deferred()
            self.execution.close(now_ns)
            self.market.close()
        finally:
            self.risk.close()

    # -- publish -------------------------------------------------------------------------------
    def _publish(self, now_ns: int) -> int:
        """Changed books (at most publish_hz), health (every health_ms, one part a turn);
        when next due."""
        market = self.market
        pending = market.applied != self._published_applied
        if pending and now_ns >= self._next_publish:
            self._published_applied = market.applied
            changed = market.changed(self._book_seen)
            if len(changed):
                self.publisher.books(market, changed, now_ns)
            self._next_publish = now_ns + self._publish_ns
            pending = False
        if now_ns >= self._next_health:
            # one part a turn (each is 50-200 us of numpy and shared memory): a tick that
            # arrives meanwhile waits for one part, never for the whole round
            part = self._health_part
            if part == 0:
                self.publisher.health(market.update_health(now_ns),
                                      self.execution.venue_states(), now_ns)
            elif part == 1:
                self.publisher.risk(self.risk, now_ns)
            elif part == 2:
                if len(self.strategies):
                    self.publisher.strategies(self.strategies, now_ns)
            else:
                self.publish_kill()
            if part < 3:
                self._health_part = part + 1
                return now_ns  # the next part is due now
            self._health_part = 0
            self._next_health = now_ns + self._health_ns
        return min(self._next_publish if pending else NEVER, self._next_health)

    def publish_books(self) -> None:
        """The books changed since the last publish, now, whatever the rate: a replay that
        stands still (paused, or landed from a jump) has no later turn to publish them in."""
        market = self.market
        if market.applied != self._published_applied and self.publisher.live:
            self._published_applied = market.applied
            changed = market.changed(self._book_seen)
            if len(changed):
                self.publisher.books(market, changed, self.now)

    def publish_kill(self) -> None:
        kill = self.risk.kill
        if kill.version != self._published_kill:
            self.publisher.kill(kill.rows)
            self._published_kill = kill.version

    def notify(self, level: int, text: str, instrument: int = -1,
               kind: Notice | None = None) -> None:
        """Tell the desks (callers log the full story)."""
        if kind is None:
            kind = Notice.ALERT if level >= WARNING else Notice.LOG
        self.publisher.notice(kind, level, text, instrument, self.now)

    def _journal_kill(self, row: int, state: int, user: str, why: str, ts_ns: int) -> None:
        kill = self.risk.kill
        r = kill.rows[row]
        self.journal.kill(kill.names[row], int(r["scope"]), int(r["scope_id"]), state != 0,
                          user, why, ts_ns, state=KillState(state).label,
                          scope_name=kill.names[row])

    def _journal_tag_later(self, cl_ord_id: str, source: str, account: str, ts_ns: int) -> None:
        self.execution.later(self.journal.order_tag, cl_ord_id, source, account, ts_ns)

    def _journal_order(self, u: OrderUpdate, o: Order) -> None:
        self.journal.order(u, o, self.now)

    def _publish_order(self, u: OrderUpdate, o: Order) -> None:
        self.publisher.order(u, o, self.now)

    def _on_parent(self, u: ParentUpdate) -> None:
        """A router parent changed: one line for the desks, the whole story in the log."""
        state = u.status.value
        text = (f"SOR {u.parent_id} {u.symbol} {state} {u.cum_qty}/{u.qty}"
                + (f" avg {u.avg_px:g}" if u.cum_qty else "") + (f": {u.text}" if u.text else ""))
        level = INFO if state != "PartiallyDone" else WARNING
        self.notify(level, text, self.index.get(u.symbol, -1), Notice.LOG)
        log.log(level, "%s", text)
