"""The kernel's risk stage: the guard of the one door into execution, the portfolio, the kill
switches and the automatic trips.

Pre-trade (``check_intent``, and ``check_child`` for each child the smart order router sends):
every order — manual, strategy, scripted, flattening, router child — runs the table of checks
``CHECKS`` in its fixed order and stops at the first that refuses; the refusal says which limit,
the figures and the scope, and reaches the desk's ack or the strategy. A cancel is never
checked. The checks, in order (profile keys from ``engine.core.limits``):

  restricted      the instrument is on the restricted list
  kill switch     the strictest state over the order's scopes (global, instrument, strategy,
                  venue, account, trader): HALTED refuses, REDUCING refuses what does not
                  reduce the position of the order's book (its strategy's, else its account's)
  paused          the order's strategy is paused by the repeated-execution throttle
  runaway         the source asks for orders faster than runaway_orders_per_s: its scope
                  (strategy, trader, else global) is HALTED
  order qty       max_order_qty
  reference       a fresh reference price: the consolidated mid of a two-sided, uncrossed,
                  unlocked book, else a last trade younger than reference_max_age_ms; none:
                  refused (never waved through)
  notional        max_order_notional (qty × limit price, or the reference for a market order)
  price collar    a limit price further than price_collar_bps from the reference
  duplicate       the same order from the same source within duplicate_window_ms
  order rate      max_orders_per_s per venue and per strategy (a 1-second sliding window)
  message rate    max_messages_per_s per venue (orders and cancels sent; cancels still go)
  open orders     max_open_orders per strategy (manual orders: per trader)
  position        max_position (net) and max_gross_position per instrument, working orders
                  included, for the desk and the order's strategy and account books
  exposure        max_exposure: Σ |position| × mark + working notional + this order
  daily loss      daily_loss_limit against realized (net of fees) + unrealized P&L: once
                  breached only reducing orders pass
  self-match      the order would trade against our own resting order on the same venue:
                  refused, or (self_match = "cancel_resting") the resting one is cancelled;
                  "venue" leaves it to the venues' own self-trade prevention

Post-trade, on every fill and at every mark (``step``): the portfolio (``Portfolio``) and the
automatic trips — a hard limit breached (position past max_position, exposure past
max_exposure) trips its scope HALTED; a daily loss breach trips the book's scope REDUCING,
cancels its working orders and flattens it in bounded child orders through the router
(``flatten_child_qty`` every ``flatten_interval_ms``, progress on the desk); stale market data
trips its instrument and a lost venue session its venue (``stale_data`` / ``venue_down``:
REDUCING by default), and these two clear by themselves when the data or the session is back;
runaway orders trip HALTED. Automatic limit trips carry a cooling-off period before a risk
manager may re-arm them.

Trips and re-arms go through ``trip`` (the commands call it too): the switch changes, then the
orders in scope are cancelled at once (HALTED: every working order in scope; REDUCING: those
that would add to their book's position), then strategies in scope pause.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.book.books import BBO_NOT_OK
from engine.core.intents import ROUTER, OrderIntent
from engine.core.limits import LIMIT_KEYS, LimitsConfig
from engine.core.profile import Profile
from engine.core.records import LIMIT_ROW, RECON_ROW, VAR_ROW, KillState, Notice, Scope
from engine.execution.orders import OrdStatus
from engine.risk.killswitch import KillStateFile, KillSwitches
from engine.risk.portfolio import Portfolio
from engine.risk.scopes import ScopeTable

__all__ = ["RiskConfig", "RiskEngine", "CHECKS"]

log = logging.getLogger("helmdesk.risk")

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR
ACTIVE, REDUCING, HALTED = int(KillState.ACTIVE), int(KillState.REDUCING), int(KillState.HALTED)
SECOND = 1_000_000_000
INF = float("inf")
_TRIP_STATE = {"reducing": REDUCING, "halted": HALTED, "none": ACTIVE}


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskConfig:
    """The risk stage's settings: the limits, the instruments and the scopes."""

    limits: LimitsConfig
    symbols: tuple[str, ...]
    ticks: tuple[float, ...]
    strategies: tuple[str, ...] = ()
    venues: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ("main",)
    traders: tuple[str, ...] = ()
    account: str = "main"  #: where orders that name no account are booked
    mark_ms: int = 100  #: how often marks, losses, exposure and conditions are looked at
    stale_grace_ms: int = 3000  #: no stale-data trips this soon after start
    profile_mtime_ns: int = 0

    @classmethod
    def from_profile(cls, profile: Profile, strategies: Sequence[str] = ()) -> RiskConfig:
        t = ScopeTable.from_profile(profile, strategies)
        try:
            mtime = profile.path.stat().st_mtime_ns
        except OSError:
            mtime = 0
        return cls(limits=profile.limits, symbols=tuple(i.symbol for i in profile.instruments),
                   ticks=tuple(i.tick for i in profile.instruments),
                   strategies=tuple(t.names[Scope.STRATEGY]), venues=tuple(t.names[Scope.VENUE]),
                   accounts=tuple(t.names[Scope.ACCOUNT]), traders=tuple(t.names[Scope.TRADER]),
                   account=profile.desk.account, profile_mtime_ns=mtime)


class _Who:
    """Who an order belongs to: its source's strategy or trader, its account, its books."""

    __slots__ = ("source", "strategy", "trader", "account", "books", "book", "rows", "runaway",
                 "runaway_row", "open", "orders", "flatten")

    def __init__(self, source: str, strategy: int, trader: int, account: int, books: tuple,
                 rows: tuple, runaway_row: int) -> None:
        self.source = source
        self.strategy = strategy  # index in the scope table, -1: none
        self.trader = trader
        self.account = account
        self.books = books  # portfolio books a fill counts in (desk, strategy?, account)
        self.book = books[-2] if strategy >= 0 else books[-1]  # whose position REDUCING reads
        self.rows = rows  # kill-switch rows besides the instrument's and the venue's
        self.runaway: deque = deque()  # attempts in the last second
        self.runaway_row = runaway_row
        self.open = 0  # working orders
        self.orders: deque = deque()  # accepted orders in the last second (strategy throttle)
        self.flatten = source.startswith("risk:")


class _InstLimits:
    """An instrument's limits: its own values, else the desk's."""

    __slots__ = ("max_qty", "max_notional", "collar", "max_pos", "max_gross", "label")

    def __init__(self, cfg: LimitsConfig, symbol: str) -> None:
        d, own = cfg.desk, cfg.overrides("instrument", symbol)
        self.max_qty = own.get("max_order_qty", d.max_order_qty)
        self.max_notional = own.get("max_order_notional", d.max_order_notional)
        self.collar = own.get("price_collar_bps", d.price_collar_bps) / 1e4
        self.max_pos = own.get("max_position", d.max_position)
        self.max_gross = own.get("max_gross_position", d.max_gross_position)
        self.label = f"instrument:{symbol}"


class _Lim:
    """The limits one (strategy, account, venue) adds to an order's instrument's: the strictest
    of what each sets for the order itself (INF: none), their books' own limits, and the
    rates (the strategy's or venue's value, else the desk's). Few combinations: cached."""

    __slots__ = ("max_qty", "max_notional", "collar", "positions", "exposures", "losses",
                 "venue_orders", "venue_messages", "strategy_orders", "open_orders", "fills",
                 "runaway")

    def __init__(self, cfg: LimitsConfig, strategy: str | None, account: str,
                 venue: str | None, who: _Who) -> None:
        d = cfg.desk
        st = cfg.overrides("strategy", strategy) if strategy else {}
        ac = cfg.overrides("account", account)
        ve = cfg.overrides("venue", venue) if venue else {}

        def strictest(key: str) -> float:
            return min([s[key] for s in (st, ac, ve) if key in s], default=INF)

        self.max_qty = strictest("max_order_qty")
        self.max_notional = strictest("max_order_notional")
        self.collar = strictest("price_collar_bps") / 1e4
        books = who.books
        # (book, max net, max gross, scope label): the books with limits of their own
        self.positions = []
        self.exposures = [(0, d.max_exposure, "desk")]
        self.losses = [(0, d.daily_loss_limit, "desk")]
        for ov, book, label in ((st, books[1] if who.strategy >= 0 else None,
                                 f"strategy:{strategy}"),
                                (ac, books[-1], f"account:{account}")):
            if book is None:
                continue
            if "max_position" in ov or "max_gross_position" in ov:
                self.positions.append((book, ov.get("max_position", 1 << 62),
                                       ov.get("max_gross_position", 1 << 62), label))
            if "max_exposure" in ov:
                self.exposures.append((book, ov["max_exposure"], label))
            if "daily_loss_limit" in ov:
                self.losses.append((book, ov["daily_loss_limit"], label))
        self.venue_orders = ve.get("max_orders_per_s", d.max_orders_per_s)
        self.venue_messages = ve.get("max_messages_per_s", d.max_messages_per_s)
        self.strategy_orders = st.get("max_orders_per_s", d.max_orders_per_s)
        self.open_orders = st.get("max_open_orders", d.max_open_orders)
        self.fills = (st.get("max_fills", d.max_fills), st.get("fill_window_ms", d.fill_window_ms),
                      st.get("fill_pause_ms", d.fill_pause_ms))
        self.runaway = st.get("runaway_orders_per_s", d.runaway_orders_per_s)


class _Order:
    """One order being checked: what every check reads."""

    __slots__ = ("i", "symbol", "side", "qty", "price", "venue", "v", "who", "lim", "il",
                 "ref", "notional", "now", "child", "intent", "dupkey")

    def __init__(self) -> None:
        self.dupkey = None


class _Track:
    """A working order the risk engine follows (sent through it)."""

    __slots__ = ("i", "side", "leaves", "price", "venue", "v", "who", "rows", "parent")

    def __init__(self, i, side, price, venue, v, who, rows, parent) -> None:
        self.i, self.side, self.leaves, self.price = i, side, 0, price
        self.venue, self.v, self.who, self.rows, self.parent = venue, v, who, rows, parent


@dataclass(slots=True)
class Difference:
    """The database and a venue disagree (found after a restart)."""

    id: int
    kind: str  # "order": its fills; "position": the net position
    key: str  # the order's ClOrdID, or the instrument's symbol
    instrument: int
    db_qty: int
    venue_qty: int
    ts_ns: int
    state: int = 0  # 0 open, 1 accepted, 2 corrected
    text: str = ""  # what differs
    settled: str = ""  # how, by whom, why


@dataclass(slots=True)
class _Flatten:
    """A de-risking job: bring one book's positions to zero through the router."""

    book: int
    row: int  # the kill-switch row tripped for it
    label: str
    start_qty: dict = field(default_factory=dict)
    next_ns: int = 0
    working: dict = field(default_factory=dict)  # instrument -> parent id
    only: int = -1  # a person's flatten of one instrument (-1: every position of the book)


class RiskEngine:
    def __init__(self, config: RiskConfig, state: KillStateFile | None = None, *,
                 market=None, notify: Callable | None = None) -> None:
        """``state``: where the kill switches persist (a live node's file; None: memory);
        ``market``: the market-data stage (reference prices, marks, stale books)."""
        self.config = config
        self.limits = config.limits
        self.market = market
        self._notify = notify or (lambda level, text, instrument=-1, kind=None: None)
        self.table = ScopeTable(config.symbols, config.strategies, config.venues,
                                config.accounts, config.traders)
        self.index = {s: i for i, s in enumerate(config.symbols)}
        self.kill = KillSwitches(self.table, state)
        self.portfolio = Portfolio(config.symbols, config.strategies, config.accounts)
        self.execution = None  #: the execution stage (the kernel sets it): cancels
        self.submit: Callable | None = None  #: the kernel's door (the flattener's orders)
        self.on_pause: Callable[[set[str]], None] | None = None  #: strategies to pause
        t = self.table
        self._inst_row = [t.row(Scope.INSTRUMENT, i) for i in range(len(config.symbols))]
        self._venue_id = {v: k for k, v in enumerate(config.venues)}
        self._venue_row = {v: t.row(Scope.VENUE, k) for k, v in enumerate(config.venues)}
        self._venue_orders = {v: deque() for v in config.venues}
        self._venue_messages = {v: deque() for v in config.venues}
        self._who: dict[tuple[str, str], _Who] = {}
        self._lims: dict[tuple, _Lim] = {}
        self._inst_limits = [_InstLimits(config.limits, sym) for sym in config.symbols]
        self._post: list[tuple] = []  # per book: _post_trade's limits (_post_limits)
        self._post_for = None  # the limits self._post was made from
        self._dups: dict[tuple, int] = {}  # order key -> when last accepted
        self._dup_times: deque = deque()  # (when, key) in time order: old keys leave first
        self._orders: dict[str, _Track] = {}  # ClOrdID -> working order followed
        #: instrument -> its working orders followed (ClOrdID -> _Track): self-match looks here
        self._by_inst: list[dict[str, _Track]] = [{} for _ in config.symbols]
        self._parents: dict[str, _Who] = {}  # router parent id -> whose it is
        self._sending: _Who | None = None  # the intent being submitted (tags its orders)
        self._sending_rows: tuple = ()
        self._paused: dict[int, int] = {}  # strategy -> paused until (ns)
        self._fills: dict[int, deque] = {}  # strategy -> recent fill times
        self._conditions: dict[int, str] = {}  # rows tripped by a condition that clears
        self._flatten: dict[int, _Flatten] = {}  # book -> job
        self._next_mark = 0
        self._started_ns: int | None = None
        self._venues_up: set[str] = set()
        self._warned: set[tuple] = set()
        self.checks: list[tuple[str, Callable[[_Order], str | None]]] = []
        #: the VaR calculator (engine.risk.var: a VarService helper process live, a
        #: VarCalculator in a backtest; None: no VaR)
        self.var = None
        self._var_fills = -1
        self._var_result = None
        #: what a restart found the database and the venues disagree on (``Difference``)
        self.differences: list[Difference] = []
        self.recon_changed = False  #: a difference was found or settled since the last publish
        self._in_doubt: dict[str, tuple[int, int]] = {}  # restored ClOrdID -> (i, cum qty)
        self._journal_recon: Callable | None = None  #: the audit of differences and settling
        #: records whose each new order is (the store: books rebuilt after a restart)
        self._journal_tag: Callable | None = None
        self._var_published = None
        self._mids = None
        self._stale = np.zeros(len(config.symbols), dtype=bool)
        self.counters: dict[str, int] = {"checked": 0, "refused": 0}
        self.refusals: dict[str, int] = dict.fromkeys(CHECKS, 0)
        self.now = 0
        self._o_intent, self._o_child = _Order(), _Order()
        self._bbo_views = None
        self._arm()
        self._warm()

    def _arm(self) -> None:
        """The chain of checks the limits switch on, in CHECKS order: a check its limit turns
        off (no restricted list, duplicate_window_ms 0, self_match "venue") is left out of
        it, not called to say nothing. Again whenever a limit changes."""
        lim = self.limits
        off = set()
        if not lim.restricted:
            off.add("restricted")
        if not lim.duplicate_window_ms:
            off.add("duplicate")
        if lim.self_match == "venue":
            off.add("self_match")
        self.checks = [(name, getattr(self, f"_check_{name}")) for name in CHECKS
                       if name not in off]
        self._o_intent.dupkey = self._o_child.dupkey = None  # none while duplicate is off

    def _warm(self) -> None:
        """Resolve every known source's books and limits now, not on its first order."""
        t = self.table
        sources = ([f"strategy:{n}" for n in t.names[Scope.STRATEGY]]
                   + [f"manual:{n}" for n in t.names[Scope.TRADER]] + ["risk:flatten"])
        for src in sources:
            for acct in ["", *t.names[Scope.ACCOUNT]]:
                who = self._who_of(src, acct)
                for venue in (ROUTER, *self.config.venues):
                    self._lim(who, venue)

    # -- the door --------------------------------------------------------------------------------
    def check_intent(self, intent: OrderIntent, now_ns: int | None = None,
                     source: str | None = None) -> str | None:
        """Why ``intent`` may not go to execution, or None. An accepted intent's orders are
        then tagged with who sent it (``sending`` ... ``sent``: the kernel brackets the
        submit)."""
        now = self.now if now_ns is None else now_ns
        i = self.index.get(intent.symbol)
        if i is None:
            return f"unknown instrument {intent.symbol!r}"
        who = self._who_of(source or intent.source, intent.account)
        venue = intent.venue
        o = self._o_intent  # one at a time: a check never submits (re-enters) another intent
        o.i, o.symbol, o.side, o.qty, o.price = i, intent.symbol, intent.side, intent.qty, \
            intent.price
        o.venue, o.who, o.now, o.child, o.intent = venue, who, now, False, True
        if venue == ROUTER:
            o.v = -1
        else:
            o.v = self._venue_id.get(venue, -2)
        o.lim = self._lim(who, venue)
        o.il = self._inst_limits[i]
        return self._run(o)

    def check_child(self, venue: str, symbol: str, side: int, qty: int,
                    price: float | None, parent_id: str = "") -> str | None:
        """Asked by the router before each child goes out: the parent passed the whole chain;
        the child passes what depends on its venue (its kill switch, order size, throttles,
        self-match) again."""
        i = self.index.get(symbol)
        if i is None:
            return f"unknown instrument {symbol!r}"
        who = self._parents.get(parent_id) or self._sending or self._who_of("router", "")
        o = self._o_child
        o.i, o.symbol, o.side, o.qty, o.price = i, symbol, side, qty, price
        o.venue, o.who, o.now, o.child, o.intent = venue, who, self.now, True, False
        o.v = self._venue_id.get(venue, -2)
        o.lim = self._lim(who, venue)
        o.il = self._inst_limits[i]
        return self._run(o)

    def _run(self, o: _Order) -> str | None:
        self.counters["checked"] += 1
        for name, check in self.checks:
            why = check(o)
            if why is not None:
                self.counters["refused"] += 1
                self.refusals[name] += 1
                return why
        if o.v >= 0:
            self._venue_orders[o.venue].append(o.now)
        if not o.child:
            o.who.orders.append(o.now)
            key = o.dupkey
            if key is not None:
                self._dups[key] = o.now
                self._dup_times.append((o.now, key))
        return None

    def sending(self, intent: OrderIntent, source: str | None = None) -> None:
        """The kernel is about to submit ``intent``: orders created now are its."""
        self._sending = self._who_of(source or intent.source, intent.account)

    def sent(self, result) -> None:
        """The submit returned (an order, a router parent, or why not)."""
        who, self._sending = self._sending, None
        pid = getattr(result, "parent_id", None)
        if pid is not None and who is not None:
            self._parents[pid] = who

    # -- who, and which limits -------------------------------------------------------------------
    def _who_of(self, source: str, account: str) -> _Who:
        key = (source, account)
        who = self._who.get(key)
        if who is not None:
            return who
        t = self.table
        kind, _, name = source.partition(":")
        strategy = t.ids[Scope.STRATEGY].get(name, -1) if kind == "strategy" else -1
        trader = t.ids[Scope.TRADER].get(name, -1) if kind == "manual" else -1
        acct = t.ids[Scope.ACCOUNT].get(account or self.config.account)
        if acct is None:
            acct = t.ids[Scope.ACCOUNT][self.config.account]
        p = self.portfolio
        books = (0,) + ((p.strategy_book(strategy),) if strategy >= 0 else ()) \
            + (p.account_book(acct),)
        rows = (0,) + ((t.row(Scope.STRATEGY, strategy),) if strategy >= 0 else ()) \
            + (t.row(Scope.ACCOUNT, acct),) \
            + ((t.row(Scope.TRADER, trader),) if trader >= 0 else ())
        runaway_row = (t.row(Scope.STRATEGY, strategy) if strategy >= 0
                       else t.row(Scope.TRADER, trader) if trader >= 0 else 0)
        who = self._who[key] = _Who(source, strategy, trader, acct, books, rows, runaway_row)
        return who

    def _lim(self, who: _Who, venue: str) -> _Lim:
        key = (who.strategy, who.account, venue)
        lim = self._lims.get(key)
        if lim is None:
            t = self.table
            strategy = t.names[Scope.STRATEGY][who.strategy] if who.strategy >= 0 else None
            lim = self._lims[key] = _Lim(self.limits, strategy,
                                         t.names[Scope.ACCOUNT][who.account],
                                         None if venue == ROUTER else venue, who)
        return lim

    # -- PRE-TRADE CHECKS (in CHECKS order) -----------------------------------------------------
    def _check_restricted(self, o: _Order) -> str | None:
        if o.symbol in self.limits.restricted:
            return f"{o.symbol} is a restricted instrument"
        return None

    def _check_kill_switch(self, o: _Order) -> str | None:
        if not self.kill.n_tripped:
            return None
        states = self.kill.states
        worst, row = states[self._inst_row[o.i]], self._inst_row[o.i]
        for r in o.who.rows:
            if states[r] > worst:
                worst, row = states[r], r
        if o.v >= 0:
            r = self._venue_row[o.venue]
            if states[r] > worst:
                worst, row = states[r], r
        if not worst:
            return None
        name = self.kill.names[row]
        if worst == HALTED:
            return f"{name} is HALTED"
        if not self._reduces(o):
            q = self.portfolio.qty[o.who.book][o.i]
            return (f"{name} is REDUCING: only orders that reduce the position pass "
                    f"({self.portfolio.book_names[o.who.book]} holds {q} {o.symbol})")
        return None

    def _check_paused(self, o: _Order) -> str | None:
        until = self._paused.get(o.who.strategy) if o.who.strategy >= 0 else None
        if until is not None:
            if o.now < until:
                n, window, _pause = o.lim.fills
                return (f"{o.who.source} paused by the repeated-execution throttle ({n} fills "
                        f"in {window} ms) for {(until - o.now) / 1e9:.1f} s more")
            del self._paused[o.who.strategy]
        return None

    def _check_runaway(self, o: _Order) -> str | None:
        if o.child:
            return None
        q = o.who.runaway
        now = o.now
        q.append(now)
        while q[0] <= now - SECOND:
            q.popleft()
        if len(q) > o.lim.runaway:
            r = o.who.runaway_row
            why = (f"runaway orders: {len(q)} from {o.who.source} in 1 s "
                   f"(runaway_orders_per_s {o.lim.runaway})")
            self.trip(r, HALTED, "engine", why, now, auto=True)
            return why
        return None

    def _check_order_qty(self, o: _Order) -> str | None:
        if o.qty > o.il.max_qty or o.qty > o.lim.max_qty:
            lim = min(o.il.max_qty, o.lim.max_qty)
            return f"quantity {o.qty} is over max_order_qty {lim:g} for {o.symbol}"
        return None

    def _check_reference(self, o: _Order) -> str | None:
        ref = self.reference(o.i, o.now)
        if ref is None:
            return f"no fresh reference price for {o.symbol} (no two-sided book, no recent trade)"
        o.ref = ref
        return None

    def _check_notional(self, o: _Order) -> str | None:
        px = o.price if o.price is not None else o.ref
        notional = o.notional = o.qty * px
        if notional > o.il.max_notional or notional > o.lim.max_notional:
            lim = min(o.il.max_notional, o.lim.max_notional)
            return (f"notional {notional:,.0f} is over max_order_notional "
                    f"{lim:,.0f} for {o.symbol}")
        return None

    def _check_price_collar(self, o: _Order) -> str | None:
        px = o.price
        if px is None:
            return None
        ref = o.ref
        collar = o.il.collar if o.il.collar < o.lim.collar else o.lim.collar
        if abs(px - ref) > ref * collar:
            return (f"price {px:g} is outside the collar of {collar * 1e4:g} bps around "
                    f"the reference {ref:g} for {o.symbol}")
        return None

    def _check_duplicate(self, o: _Order) -> str | None:
        window = self.limits.duplicate_window_ms
        if not window or o.child or o.who.flatten:
            o.dupkey = None
            return None
        cut = o.now - window * 1_000_000
        times, dups = self._dup_times, self._dups
        while times and times[0][0] <= cut:  # forget what left the window
            t, key = times.popleft()
            if dups.get(key) == t:
                del dups[key]
        key = o.dupkey = (o.who.source, o.i, o.side, o.qty, o.price, o.venue)
        last = dups.get(key)
        if last is not None:
            return (f"duplicate order: the same {o.symbol} order from {o.who.source} "
                    f"{(o.now - last) / 1e6:.0f} ms ago (duplicate_window_ms {window})")
        return None

    def _check_order_rate(self, o: _Order) -> str | None:
        now = o.now
        if o.v >= 0:
            q = self._venue_orders[o.venue]
            while q and q[0] <= now - SECOND:
                q.popleft()
            if len(q) >= o.lim.venue_orders:
                return (f"order rate: {len(q)} orders to {o.venue} in the last second "
                        f"(max_orders_per_s {o.lim.venue_orders})")
        if o.who.strategy >= 0 and not o.child:
            q = o.who.orders
            while q and q[0] <= now - SECOND:
                q.popleft()
            if len(q) >= o.lim.strategy_orders:
                return (f"order rate: {len(q)} orders from {o.who.source} in the last second "
                        f"(max_orders_per_s {o.lim.strategy_orders})")
        return None

    def _check_message_rate(self, o: _Order) -> str | None:
        if o.v < 0:
            return None
        q = self._venue_messages[o.venue]
        now = o.now
        while q and q[0] <= now - SECOND:
            q.popleft()
        if len(q) >= o.lim.venue_messages:
            return (f"message rate: {len(q)} messages to {o.venue} in the last second "
                    f"(max_messages_per_s {o.lim.venue_messages})")
        return None

    def _check_open_orders(self, o: _Order) -> str | None:
        if o.child:
            return None
        if o.who.open >= o.lim.open_orders:
            return (f"open orders: {o.who.source} has {o.who.open} working "
                    f"(max_open_orders {o.lim.open_orders})")
        return None

    def _check_position(self, o: _Order) -> str | None:
        il = o.il
        why = self._position(o, 0, il.max_pos, il.max_gross, il.label)
        if why is None and o.lim.positions:
            for book, max_net, max_gross, label in o.lim.positions:
                why = self._position(o, book, max_net, max_gross, label)
                if why is not None:
                    break
        return why

    def _position(self, o: _Order, book: int, max_net: int, max_gross: int,
                  label: str) -> str | None:
        """Book ``book``'s position in the order's instrument with working orders and this
        order, against its net and gross limits."""
        p = self.portfolio
        i, qty = o.i, o.qty
        q, wb, ws = p.qty[book][i], p.work_buy[book][i], p.work_sell[book][i]
        net = q + wb + qty if o.side == 1 else q - ws - qty
        if (net > max_net or -net > max_net) and abs(net) > abs(q):
            return (f"position: {o.symbol} would reach {net:+d} with working orders, over "
                    f"max_position {max_net} ({label})")
        gross = (q if q >= 0 else -q) + wb + ws + qty
        if gross > max_gross and not self._reduces(o, book):
            return (f"gross position: {o.symbol} would reach {gross} with working orders, "
                    f"over max_gross_position {max_gross} ({label})")
        return None

    def _check_exposure(self, o: _Order) -> str | None:
        p = self.portfolio
        exposure, working, notional = p.exposure, p.work_notional, o.notional
        for book, limit, label in o.lim.exposures:
            e = exposure[book] + working[book] + notional
            if e > limit and not self._reduces(o, book):
                return (f"exposure: {e:,.0f} with this order, over max_exposure {limit:,.0f} "
                        f"({label})")
        return None

    def _check_daily_loss(self, o: _Order) -> str | None:
        p = self.portfolio
        realized, unreal = p.realized_tot, p.unreal_tot
        for book, limit, label in o.lim.losses:
            pnl = realized[book] + unreal[book]
            if pnl < -limit and not self._reduces(o, book):
                return (f"daily loss: P&L {pnl:,.0f} is past daily_loss_limit {limit:,.0f} "
                        f"({label}): only reducing orders pass")
        return None

    def _check_self_match(self, o: _Order) -> str | None:
        mine = self._by_inst[o.i]
        if not mine or self.limits.self_match == "venue":
            return None
        px = o.price
        hits = []
        for cl, t in mine.items():
            if t.side == o.side or t.leaves <= 0 or t.price is None:
                continue
            if o.v >= 0 and t.venue != o.venue:
                continue
            if px is None or (t.price <= px if o.side == 1 else t.price >= px):
                hits.append((cl, t))
        if not hits:
            return None
        if self.limits.self_match == "cancel_resting" and self.execution is not None:
            for cl, _t in hits:
                self.execution.cancel(cl, o.now)
            log.warning("self-match: cancelled %d resting orders for a new %s order",
                        len(hits), o.symbol)
            return None
        cl, t = hits[0]
        return (f"self-match: would trade against our resting order {cl} "
                f"({'sell' if t.side == 2 else 'buy'} {t.leaves} @ {t.price:g} on {t.venue})")

    def _reduces(self, o: _Order, book: int | None = None) -> bool:
        """Whether ``o`` reduces its book's position, the same side's working orders counted."""
        p = self.portfolio
        b = o.who.book if book is None else book
        q = p.qty[b][o.i]
        if o.side == 1:
            return q < 0 and o.qty + p.work_buy[b][o.i] <= -q
        return q > 0 and o.qty + p.work_sell[b][o.i] <= q

    # -- reference prices ------------------------------------------------------------------------
    def reference(self, i: int, now_ns: int) -> float | None:
        """Instrument ``i``'s fresh reference price: the consolidated mid, else a recent last
        trade; None when there is neither."""
        m = self.market
        if m is None:
            return None
        views = self._bbo_views
        if views is None:
            bbo = m.books.bbo
            views = self._bbo_views = (bbo["flags"], bbo["bid_px"], bbo["ask_px"], m.ticks)
        flags, bid, ask, ticks = views
        if not flags.item(i) & BBO_NOT_OK:
            return (bid.item(i) + ask.item(i)) * 0.5 * ticks[i]
        b = m.books
        v = b.venue[:, i]
        k = int(np.argmax(v["ts_recv_ns"] * (v["trades"] > 0)))
        if v["trades"][k] and now_ns - int(v["ts_recv_ns"][k]) <= \
                self.limits.reference_max_age_ms * 1_000_000:
            return float(v["last_px"][k]) * m.ticks[i]
        return None

    # -- orders as they change -------------------------------------------------------------------
    def on_order(self, u, o) -> None:
        """Every change to every order (the execution stage's subscriber)."""
        cl = u.cl_ord_id
        if self._in_doubt and cl in self._in_doubt and not u.unknown and u.text != "restored":
            self._reconciled(cl, u)
        t = self._orders.get(cl)
        if t is None:
            if u.leaves_qty <= 0 and not u.last_qty:
                return
            t = self._track(u, o)
        status = u.status
        if status is OrdStatus.PENDING_NEW or status is OrdStatus.PENDING_CANCEL:
            q = self._venue_messages.get(u.venue)
            if q is not None:
                q.append(self.now)
        delta = u.leaves_qty - t.leaves
        if delta:
            px = t.price if t.price is not None else (self.portfolio.marks[t.i] or 0.0)
            self.portfolio.working(t.who.books, t.i, t.side, delta, px if px == px else 0.0)
            if t.leaves <= 0 < u.leaves_qty:
                t.who.open += 1
            elif u.leaves_qty <= 0 < t.leaves:
                t.who.open -= 1
            t.leaves = u.leaves_qty
        if u.last_qty:
            self._on_fill(t, u)
        if u.leaves_qty <= 0:
            self._orders.pop(cl, None)
            self._by_inst[t.i].pop(cl, None)

    def _track(self, u, o) -> _Track:
        who = self._sending
        parent = None
        if who is None and self.execution is not None:
            parent = self.execution.router.parent_of(u.cl_ord_id)
            who = self._parents.get(parent) if parent else None
        if who is None:
            who = self._who_of("unknown", "")
        i = self.index.get(u.symbol, 0)
        v = self._venue_id.get(u.venue, -1)
        rows = (self._inst_row[i],) + who.rows + (
            (self._venue_row[u.venue],) if v >= 0 else ())
        t = self._orders[u.cl_ord_id] = _Track(i, o.side, o.price, u.venue, v, who, rows,
                                               parent)
        if self._journal_tag is not None:
            self._journal_tag(u.cl_ord_id, who.source, self.table.names[Scope.ACCOUNT][who.account],
                              self.now)
        self._by_inst[i][u.cl_ord_id] = t
        return t

    def _on_fill(self, t: _Track, u) -> None:
        p = self.portfolio
        p.fill(t.who.books, t.i, t.side, u.last_qty, u.last_px, u.fee)
        s = t.who.strategy
        if s >= 0:
            self._fill_throttle(t, s)
        self._post_trade(t.i, t.who.books)

    def _fill_throttle(self, t: _Track, s: int) -> None:
        n, window_ms, pause_ms = self._lim(t.who, t.venue).fills
        if not n:
            return
        q = self._fills.setdefault(s, deque())
        now = self.now
        q.append(now)
        while q[0] <= now - window_ms * 1_000_000:
            q.popleft()
        if len(q) >= n and s not in self._paused:
            self._paused[s] = now + pause_ms * 1_000_000
            q.clear()
            name = self.table.names[Scope.STRATEGY][s]
            text = (f"strategy:{name} paused {pause_ms / 1000:g} s: {n} fills in "
                    f"{window_ms} ms (repeated-execution throttle)")
            log.warning("%s", text)
            self._notify(WARNING, text, t.i, Notice.ALERT)

    # -- post-trade: breaches and automatic trips -------------------------------------------------
    def _post_trade(self, i: int, books: Sequence[int]) -> None:
        """After a fill or a mark: hard limits breached trip HALTED, losses de-risk."""
        p = self.portfolio
        post = self._post if self._post_for is self.limits else self._post_limits()
        for b in books:
            row, max_pos, max_exp, loss = post[b]
            q = p.qty[b][i]
            if b == 0:
                max_pos = self._inst_limits[i].max_pos
            if max_pos is not None and abs(q) > max_pos:
                r = self._inst_row[i] if b == 0 else row
                self._breach(r, HALTED, f"position {self.config.symbols[i]} {q:+d} over "
                                        f"max_position {max_pos}")
            if max_exp is not None and p.exposure[b] > max_exp:
                self._breach(row, HALTED, f"exposure {p.exposure[b]:,.0f} over max_exposure "
                                          f"{max_exp:,.0f}")
            if loss is not None and p.pnl(b) < -loss and b not in self._flatten:
                self._derisk(b, row, f"daily loss {p.pnl(b):,.0f} past daily_loss_limit "
                                     f"{loss:,.0f}")

    def _post_limits(self) -> list[tuple]:
        """Each book's (kill-switch row, max_position, max_exposure, daily_loss_limit) for
        ``_post_trade``, which runs on every fill and every held instrument's mark: made
        again only when the limits change (``set_limit`` replaces ``self.limits``; the
        desk's max_position is the instrument's, read per call)."""
        cfg = self.limits
        post = []
        for b in range(self.portfolio.n_books):
            ov = self._book_limits(b)
            post.append((self._book_row(b), None if b == 0 else ov.get("max_position"),
                         cfg.desk.max_exposure if b == 0 else ov.get("max_exposure"),
                         cfg.desk.daily_loss_limit if b == 0 else ov.get("daily_loss_limit")))
        self._post, self._post_for = post, cfg
        return post

    def _book_limits(self, b: int) -> dict:
        p = self.portfolio
        kind = p.book_kind[b]
        if b == 0:
            return {}
        name = p.book_names[b].split(":", 1)[1]
        return self.limits.overrides("strategy" if kind == 1 else "account", name)

    def _book_row(self, b: int) -> int:
        p = self.portfolio
        if b == 0:
            return 0
        kind = Scope.STRATEGY if p.book_kind[b] == 1 else Scope.ACCOUNT
        return self.table.row(kind, p.book_id[b])

    def _breach(self, row: int, state: int, why: str) -> None:
        if self.kill.states[row] >= state:
            return
        cool = int(self.limits.cooling_off_s * 1e9)
        self.trip(row, state, "engine", why, self.now, auto=True,
                  cool_until_ns=self.now + cool if cool else 0)

    def _derisk(self, b: int, row: int, why: str) -> None:
        """A daily loss breach: REDUCING, cancel the book's orders, flatten it."""
        label = self.portfolio.book_names[b]
        log.error("%s: %s: cancelling and flattening", label, why)
        if self.kill.states[row] < REDUCING:
            cool = int(self.limits.cooling_off_s * 1e9)
            self.trip(row, REDUCING, "engine", why, self.now, auto=True,
                      cool_until_ns=self.now + cool if cool else 0)
        self._cancel_book(b)
        p = self.portfolio
        job = self._flatten[b] = _Flatten(b, row, label)
        job.start_qty = {i: q for i, q in enumerate(p.qty[b]) if q}
        self._notify(ERROR, f"FLATTEN {label}: {len(job.start_qty)} positions ({why})", -1,
                     Notice.ALERT)

    def flatten(self, account: str, i: int, user: str) -> str:
        """A person's flatten (a desk's key): cancel ``account``'s working orders in
        instrument ``i`` and close its position there in bounded child orders through the
        router, as a daily loss breach does for a whole book; no kill switch changes. Returns
        what was done; raises ValueError with the reason it cannot be done."""
        acct = self.table.ids[Scope.ACCOUNT].get(account)
        if acct is None:
            raise ValueError(f"no account {account!r} in this engine")
        p = self.portfolio
        b = p.account_book(acct)
        symbol = self.config.symbols[i]
        if b in self._flatten:
            raise ValueError(f"{p.book_names[b]} is already being flattened")
        cancels = 0
        for cl, t in list(self._by_inst[i].items()):
            if b in t.who.books and t.leaves > 0 and self.execution is not None \
                    and self.execution.cancel(cl, self.now) is None:
                cancels += 1
        q = int(p.qty[b][i])
        if q:
            job = self._flatten[b] = _Flatten(b, self.table.row(Scope.ACCOUNT, acct),
                                              f"{p.book_names[b]} {symbol}", only=i)
            job.start_qty = {i: q}
        what = (f"flattening {p.book_names[b]} {symbol}: {q:+,} to close" if q else
                f"{p.book_names[b]} holds no {symbol}")
        self._notify(WARNING, f"FLATTEN by {user}: {what}, {cancels} orders cancelled", i,
                     Notice.ALERT)
        return f"{what}; {cancels} working orders cancelled"

    def _cancel_book(self, b: int) -> int:
        n = 0
        for cl, t in list(self._orders.items()):
            if b in t.who.books and t.leaves > 0:
                if self.execution is not None and self.execution.cancel(cl, self.now) is None:
                    n += 1
        return n

    # -- the kill switches -----------------------------------------------------------------------
    def trip(self, row: int, state: int, user: str, reason: str, now_ns: int, *,
             auto: bool = False, cool_until_ns: int = 0, persist: bool = True) -> tuple[bool, int]:
        """Set kill-switch ``row`` to ``state`` and act on it: cancel what the state forbids
        in its scope, pause its strategies. Returns (changed, cancels sent)."""
        kill = self.kill
        old = kill.states[row]
        changed = kill.set_row(row, state, user, reason, now_ns, auto=auto,
                               cool_until_ns=cool_until_ns, persist=persist)
        if not auto:
            self._conditions.pop(row, None)
        n = 0
        if state >= REDUCING:
            n = self.cancel_scope(row, state, now_ns)
        if changed:
            name = kill.names[row]
            level = ERROR if state > old else WARNING
            what = KillState(state).name if state > old else f"re-armed to {KillState(state).name}"
            text = f"{name} {what} by {user}: {reason}"
            log.log(level, "kill switch %s", text)
            self._notify(level, text[:120], self._instrument_of(row), Notice.KILL)
            self._update_pauses()
            if self._journal_kill is not None:
                self._journal_kill(row, state, user, reason, now_ns)
        return changed, n

    _journal_kill: Callable | None = None  #: the kernel's audit of kill-switch changes

    def strategy_position(self, strategy: str, symbol: str) -> int:
        """A strategy's position in ``symbol`` (its own book)."""
        s = self.table.ids[Scope.STRATEGY].get(strategy, -1)
        i = self.index.get(symbol, -1)
        if s < 0 or i < 0:
            return 0
        return self.portfolio.qty[self.portfolio.strategy_book(s)][i]

    def cancel_strategy(self, strategy: str, now_ns: int) -> int:
        """Cancel every working order of a strategy (it was stopped); return the cancels."""
        s = self.table.ids[Scope.STRATEGY].get(strategy, -1)
        return self.cancel_scope(self.table.row(Scope.STRATEGY, s), HALTED, now_ns) \
            if s >= 0 else 0

    def cancel_scope(self, row: int, state: int, now_ns: int) -> int:
        """Cancel the working orders kill-switch ``row`` forbids (HALTED: all in scope,
        REDUCING: those adding to their book's position); return the cancels sent."""
        ex = self.execution
        if ex is None or not ex.clients:
            return 0
        scope, scope_id = self.kill.rows["scope"][row], self.kill.rows["scope_id"][row]
        if state == HALTED and scope in (Scope.GLOBAL, Scope.INSTRUMENT):
            symbol = self.config.symbols[scope_id] if scope == Scope.INSTRUMENT else None
            return ex.cancel_all(now_ns, None, symbol, reason=f"{self.kill.names[row]} HALTED")
        if state == HALTED and scope == Scope.VENUE:  # what rests there; parents re-route
            venue = self.config.venues[scope_id]
            return ex.oms.cancel_all(now_ns, venue, None)
        n = 0
        p = self.portfolio
        seen_parents = set()
        if state == HALTED:
            for pid, who in list(self._parents.items()):
                if row in who.rows and pid in ex.router.parents and pid not in seen_parents:
                    seen_parents.add(pid)
                    if ex.cancel(pid, now_ns) is None:
                        n += 1
        venue_scope = scope == Scope.VENUE
        for cl, t in list(self._orders.items()):
            if row not in t.rows or t.leaves <= 0:
                continue
            if state == REDUCING:
                q = p.qty[t.who.book][t.i]
                if (q < 0 and t.side == 1) or (q > 0 and t.side == 2):
                    continue  # it reduces: it may stay
            if venue_scope:  # only what rests there: a router parent re-routes the rest
                if ex.oms.cancel(cl, now_ns) is None:
                    n += 1
                continue
            if t.parent is not None:
                if t.parent in seen_parents:
                    continue
                seen_parents.add(t.parent)
            if ex.cancel(cl, now_ns) is None:
                n += 1
        return n

    def _instrument_of(self, row: int) -> int:
        return int(self.kill.rows["scope_id"][row]) if \
            self.kill.rows["scope"][row] == Scope.INSTRUMENT else -1

    def _update_pauses(self) -> None:
        """Strategies whose strategy switch or the global one is HALTED pause."""
        if self.on_pause is None:
            return
        states = self.kill.states
        t = self.table
        g = states[0] == HALTED
        self.on_pause({n for k, n in enumerate(t.names[Scope.STRATEGY])
                       if g or states[t.row(Scope.STRATEGY, k)] == HALTED})

    # -- the turn --------------------------------------------------------------------------------
    def step(self, now_ns: int) -> int:
        """Marks, losses, exposure, stale data, venue sessions and de-risking, every
        ``mark_ms``; return when next due."""
        self.now = now_ns
        if now_ns < self._next_mark:
            return self._next_mark
        self._next_mark = now_ns + self.config.mark_ms * 1_000_000
        if self._started_ns is None:
            self._started_ns = now_ns
        m = self.market
        p = self.portfolio
        if m is not None:
            b = m.books
            held = sorted(p.held)
            for i in held:
                if b.bbo_ok(i):
                    bbo = b.bbo
                    p.mark(i, (int(bbo["bid_px"][i]) + int(bbo["ask_px"][i])) * 0.5 * m.ticks[i])
            for i in held:
                self._post_trade(i, sorted(p.holders[i]) or (0,))
            self._stale_data(now_ns)
        self._venue_sessions(now_ns)
        self._flatten_step(now_ns)
        if self.var is not None:
            self._var_step(now_ns)
        return self._next_mark

    def _var_step(self, now_ns: int) -> None:
        """Hand the VaR calculator the marks (and the positions, when fills moved them);
        take its newest figures."""
        var = self.var
        if now_ns >= var.due_ns and self.market is not None:
            b = self.market.books
            bbo = b.bbo
            if self._mids is None:
                self._ticks = np.asarray(self.config.ticks, dtype=np.float64)
                self._mids = np.full(len(self._ticks), np.nan)
            ok = (bbo["flags"] & BBO_NOT_OK) == 0
            mids = (bbo["bid_px"] + bbo["ask_px"]) * 0.5 * self._ticks
            np.copyto(self._mids, mids, where=ok)  # an unusable book keeps its last mid
            p = self.portfolio
            positions = None
            if p.fills != self._var_fills:
                self._var_fills = p.fills
                positions = p.qty_np[:1 + p.n_strategies]
            var.mark(now_ns, self._mids, positions)
        r = var.poll()
        if r is not None:
            self._var_result = r

    def _stale_data(self, now_ns: int) -> None:
        trip = _TRIP_STATE[self.limits.stale_data]
        if not trip or now_ns - self._started_ns < self.config.stale_grace_ms * 1_000_000:
            return
        b = self.market.books
        every = (1 << b.n_venues) - 1
        stale = (b.bbo["excluded"] & every) == every
        for i in np.flatnonzero(stale != self._stale).tolist():  # only what changed
            self._condition(self._inst_row[i], bool(stale[i]), trip,
                            f"market data for {self.config.symbols[i]} is stale", now_ns)
        self._stale = stale

    def _venue_sessions(self, now_ns: int) -> None:
        trip = _TRIP_STATE[self.limits.venue_down]
        ex = self.execution
        if not trip or ex is None:
            return
        ever = getattr(ex, "ever_up", ())  # a session up and down again between two looks
        for name, c in ex.clients.items():
            up = bool(c.up)
            if up or name in ever:
                self._venues_up.add(name)
            row = self._venue_row.get(name)
            if row is None:
                continue
            down = not up and name in self._venues_up
            self._condition(row, down, trip, f"venue {name} session lost", now_ns)

    def _condition(self, row: int, active: bool, state: int, why: str, now_ns: int) -> None:
        """A condition that trips while it holds and clears when it is gone (unless a person
        set the switch since)."""
        if active:
            if self.kill.states[row] < state:
                self.trip(row, state, "engine", why, now_ns, auto=True)
                self._conditions[row] = why
        elif row in self._conditions:
            del self._conditions[row]
            if self.kill.rows["auto"][row]:
                self.trip(row, ACTIVE, "engine", why.replace("is stale", "is fresh again")
                          .replace("session lost", "session back"), now_ns, auto=True)

    def _flatten_step(self, now_ns: int) -> None:
        if not self._flatten or self.submit is None:
            return
        p = self.portfolio
        lim = self.limits
        for b, job in list(self._flatten.items()):
            if now_ns < job.next_ns:
                continue
            job.next_ns = now_ns + lim.flatten_interval_ms * 1_000_000
            left = {i: q for i, q in enumerate(p.qty[b])
                    if q and (job.only < 0 or i == job.only)}
            if not left:
                del self._flatten[b]
                self._notify(WARNING, f"FLATTEN {job.label}: done, flat", -1, Notice.ALERT)
                continue
            for i, q in left.items():
                pid = job.working.get(i)
                if pid is not None and self._parent_live(pid):
                    continue
                qty = min(abs(q), lim.flatten_child_qty)
                source, account = self._flatten_source(b)
                r = self.submit(OrderIntent(symbol=self.config.symbols[i],
                                            side=2 if q > 0 else 1, qty=qty, price=None,
                                            venue=ROUTER, tif="ioc", source=source,
                                            account=account), now_ns)
                if isinstance(r, str):
                    key = (b, i, r)
                    if key not in self._warned:
                        self._warned.add(key)
                        self._notify(WARNING, f"FLATTEN {job.label} {self.config.symbols[i]}: "
                                              f"{r}"[:120], i, Notice.ALERT)
                    continue
                job.working[i] = getattr(r, "parent_id", getattr(r, "cl_ord_id", ""))
                start = job.start_qty.get(i, q)
                self._notify(WARNING, f"FLATTEN {job.label} {self.config.symbols[i]}: "
                                      f"{abs(q)} of {abs(start)} left, {qty} sent", i,
                             Notice.LOG)

    def _parent_live(self, pid: str) -> bool:
        ex = self.execution
        parent = ex.router.parents.get(pid) if ex is not None else None
        if parent is not None:
            return parent.status.value == "Working"
        return pid in self._orders

    def _flatten_source(self, b: int) -> tuple[str, str]:
        p = self.portfolio
        name = p.book_names[b]
        if p.book_kind[b] == 1:
            return name, ""  # "strategy:NAME": the strategy's book
        if p.book_kind[b] == 2:
            return "risk:flatten", name.split(":", 1)[1]
        return "risk:flatten", ""

    # -- restart: what the database and the venues say ---------------------------------------
    def restore_limits(self, changes) -> list[str]:
        """Limit edits from the database (ts_ns, scope, key, value, user, reason), oldest first:
        those made since the profile file last changed stand again (an edited profile wins
        over what was set before it). Returns what was applied, for the log."""
        applied = []
        for ts, scope, key, value, user, reason in changes:
            if ts < self.config.profile_mtime_ns:
                continue
            kind, _, name = scope.partition(":")
            kind = "desk" if scope in ("desk", "default", "global") else kind
            try:
                self.set_limit(kind, name, key, float(value))
            except ValueError as e:
                log.error("limit edit %s %s = %s by %s not restored: %s", scope, key, value,
                          user, e)
                continue
            applied.append(f"{key} for {scope} = {value} ({user}: {reason})")
        if applied:
            log.warning("limits restored from the database: %s", "; ".join(applied))
        return applied

    def restore_books(self, executions, tags: dict[str, tuple[str, str]]) -> int:
        """Every book rebuilt from the database's executions (ts, ClOrdID, symbol, side, qty,
        price, fee; oldest first) through the one position arithmetic, each in the books of
        whoever sent its order (``tags``: ClOrdID -> (source, account); an order without one
        is the desk's and its default account's). Returns the executions replayed."""
        p = self.portfolio
        unknown: dict[str, int] = {}
        n = 0
        for _ts, cl, sym, side, qty, px, fee in executions:
            i = self.index.get(sym)
            if i is None:
                unknown[sym] = unknown.get(sym, 0) + (qty if side == 1 else -qty)
                continue
            source, account = tags.get(cl, ("unknown", ""))
            p.fill(self._who_of(source, account).books, i, side, qty, px, fee)
            n += 1
        for sym, q in unknown.items():
            if q:
                log.error("the database holds %+d %s, an instrument this engine does not "
                          "trade: not in its books", q, sym)
        return n
    def expect_reconcile(self, orders) -> None:
        """Orders restored from the database: as each venue answers for them, a difference in
        their fills is a difference to settle (``differences``)."""
        for o in orders:
            if o.leaves_qty > 0:
                self._in_doubt[o.cl_ord_id] = (self.index.get(o.symbol, 0), o.cum_qty)

    def _reconciled(self, cl: str, u) -> None:
        i, cum = self._in_doubt.pop(cl)
        if u.cum_qty != cum:
            self._difference("order", cl, i, cum, u.cum_qty,
                             f"order {cl} {self.config.symbols[i]}: the database had {cum} "
                             f"filled, the venue {u.cum_qty} (its fills applied)")

    def compare_positions(self, venue_positions: dict[str, int], where: str) -> int:
        """Compare the desk's positions with a venue's account of ours (its drop copy);
        return how many differ (each one a difference to settle)."""
        n = 0
        open_keys = {d.key for d in self.differences if d.kind == "position" and not d.state}
        for i, sym in enumerate(self.config.symbols):
            ours, theirs = self.portfolio.qty[0][i], int(venue_positions.get(sym, 0))
            if ours != theirs and sym not in open_keys:
                n += 1
                self._difference("position", sym, i, ours, theirs,
                                 f"position {sym}: the engine holds {ours:+d}, {where} "
                                 f"{theirs:+d}")
        return n

    def _difference(self, kind: str, key: str, i: int, db: int, venue: int, text: str) -> None:
        d = Difference(len(self.differences) + 1, kind, key, i, db, venue, self.now, text=text)
        self.differences.append(d)
        self.recon_changed = True
        log.error("DIFFERENCE %d: %s", d.id, text)
        self._notify(ERROR, f"DIFF {d.id}: {text}"[:120], i, Notice.ALERT)
        row = self._inst_row[i]
        if self.kill.states[row] < REDUCING:
            self.trip(row, REDUCING, "engine", "restart: database and venue disagree "
                                               "(differences to settle)", self.now, auto=True)
        if self._journal_recon is not None:
            self._journal_recon(d, "found", "engine", text)

    def settle(self, diff_id: int, correct: bool, user: str, reason: str,
               now_ns: int) -> str:
        """A risk manager settles a difference: accept (the engine's figure stands; an order's
        venue fills are already applied) or correct (a position is booked to the venue's
        figure, at the mark). When none is left open for its instrument, the instrument's
        switch the restart tripped is re-armed. ``ValueError`` says why not."""
        d = next((x for x in self.differences if x.id == diff_id), None)
        if d is None:
            raise ValueError(f"no difference {diff_id} (there are {len(self.differences)})")
        if d.state:
            raise ValueError(f"difference {diff_id} is already settled: {d.text}")
        if correct:
            if d.kind != "position":
                raise ValueError(f"difference {diff_id} is an order's: its venue fills are "
                                 f"applied already; accept it")
            self._book_adjustment(d)
        d.state = 2 if correct else 1
        self.recon_changed = True
        how = "corrected to the venue's figure" if correct else "accepted"
        d.settled = f"{how} by {user}: {reason}"
        log.warning("difference %d %s by %s: %s", d.id, how, user, reason)
        if self._journal_recon is not None:
            self._journal_recon(d, "corrected" if correct else "accepted", user, reason)
        row = self._inst_row[d.instrument]
        if (not any(x.instrument == d.instrument and not x.state for x in self.differences)
                and self.kill.rows["auto"][row] and self.kill.states[row] == REDUCING):
            self.trip(row, ACTIVE, user, f"differences settled: {reason}", now_ns)
        return f"difference {d.id} {how}"

    def _book_adjustment(self, d: Difference) -> None:
        """Book the venue's position: a fill for the difference at the mark (no P&L)."""
        p = self.portfolio
        delta = d.venue_qty - p.qty[0][d.instrument]
        if not delta:
            return
        mark = p.marks[d.instrument]
        if mark != mark:
            mark = self.reference(d.instrument, self.now) or p.avg[0][d.instrument] or 0.0
        acct = p.account_book(self.table.ids[Scope.ACCOUNT][self.config.account])
        p.fill((0, acct), d.instrument, 1 if delta > 0 else 2, abs(delta), mark)

    def recon_rows(self) -> np.ndarray:
        """RECON_ROW rows of every difference, open or settled."""
        rows = np.zeros(len(self.differences), dtype=RECON_ROW)
        for k, d in enumerate(self.differences):
            rows[k] = (d.id, d.state, 0 if d.kind == "order" else 1, 0, d.instrument, 0,
                       d.db_qty, d.venue_qty, d.ts_ns, d.key.encode()[:48],
                       (d.settled or d.text).encode()[:88])
        return rows

    # -- limits at run time ----------------------------------------------------------------------
    def set_limit(self, kind: str, name: str, key: str, value) -> tuple[object, object]:
        """Change one limit (``kind`` desk, instrument, strategy, account or venue); return
        (old, new). ``ValueError`` names what is wrong."""
        from engine.core.limits import SCOPED_KEYS, check_value

        value = check_value(key, value)
        if kind == "desk":
            old = getattr(self.limits.desk, key)
        else:
            if key not in SCOPED_KEYS.get(kind, ()):
                raise ValueError(f"{key} is not a per-{kind} limit")
            old = self.limits.overrides(kind, name).get(key)
        self.limits = self.limits.with_value(kind, name, key, value)
        self._arm()
        self._lims.clear()
        self._inst_limits = [_InstLimits(self.limits, sym) for sym in self.config.symbols]
        self._warm()
        return old, value

    # -- what the desk shows ---------------------------------------------------------------------
    def limit_rows(self) -> np.ndarray:
        """LIMIT_ROW rows: how much of each limit is used now."""
        p = self.portfolio
        d = self.limits.desk
        out = [("daily_loss_limit", "desk", max(0.0, -p.pnl(0)), d.daily_loss_limit),
               ("max_exposure", "desk", p.exposure[0] + p.work_notional[0], d.max_exposure)]
        for i, sym in enumerate(self.config.symbols):
            q = p.qty[0][i]
            if q or p.work_buy[0][i] or p.work_sell[0][i]:
                worst = max(abs(q + p.work_buy[0][i]), abs(q - p.work_sell[0][i]))
                out.append(("max_position", f"instrument:{sym}", worst,
                            self._inst_limits[i].max_pos))
        for b in range(1, p.n_books):
            ov = self._book_limits(b)
            for key, used in (("daily_loss_limit", max(0.0, -p.pnl(b))),
                              ("max_exposure", p.exposure[b] + p.work_notional[b])):
                if key in ov:
                    out.append((key, p.book_names[b], used, ov[key]))
        for v, q in self._venue_orders.items():
            lim = self.limits.overrides("venue", v).get("max_orders_per_s", d.max_orders_per_s)
            out.append(("max_orders_per_s", f"venue:{v}", _in_last_second(q, self.now), lim))
        # then every limit as configured (used NaN: not measured here), for the limit editor
        shown = {(k, sc) for k, sc, _u, _l in out}
        nan = float("nan")
        for key in LIMIT_KEYS:
            if (key, "desk") not in shown:
                out.append((key, "desk", nan, getattr(d, key)))
        for kind, names in sorted(self.limits.scoped.items()):
            for name, values in sorted(names.items()):
                for key, value in values.items():
                    if (key, f"{kind}:{name}") not in shown:
                        out.append((key, f"{kind}:{name}", nan, value))
        rows = np.zeros(len(out), dtype=LIMIT_ROW)
        for k, (key, scope, used, limit) in enumerate(out):
            rows[k] = (key.encode()[:24], scope.encode()[:24], used, limit,
                       used / limit if limit else (nan if used != used else 0.0))
        return rows

    def var_rows(self) -> np.ndarray | None:
        """VAR_ROW rows of the newest VaR figures (None: nothing new since the last call)."""
        r = self._var_result
        if r is None or r is self._var_published:
            return None
        self._var_published = r
        names = self.portfolio.book_names[:1 + self.portfolio.n_strategies]
        rows = np.zeros(len(names), dtype=VAR_ROW)
        rows["book"] = [n.encode()[:24] for n in names]
        for key in ("var95_hist", "var99_hist", "var95_param", "var99_param"):
            try:
                rows[key] = getattr(r, key)
            except (AttributeError, ValueError):
                rows[key] = np.nan  # a level not configured, or the helper failed
        rows["n_marks"] = r.n_marks
        rows["ts_ns"] = r.ts_ns
        return rows

    def close(self) -> None:
        try:
            if self.var is not None:
                self.var.close()
        finally:
            self.kill.close()


def _in_last_second(q: deque, now: int) -> int:
    return sum(1 for t in q if t > now - SECOND)


#: The pre-trade checks, in the order they run (module docstring).
CHECKS = ("restricted", "kill_switch", "paused", "runaway", "order_qty", "reference", "notional",
          "price_collar", "duplicate", "order_rate", "message_rate", "open_orders", "position",
          "exposure", "daily_loss", "self_match")
