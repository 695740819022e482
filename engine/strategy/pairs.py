"""Pairs statistical arbitrage: trade the spread of cointegrated pairs back to its mean.

A ``[[strategies]]`` entry of ``kind = "pairs"`` (docs/strategies.md has every parameter)::

    [[strategies]]
    name = "pairs"
    kind = "pairs"
    pairs = "auto"           # or [["ESZ6", "NQZ6"], ["AAPL", "MSFT"]]
    formation_s = 30
    entry_z = 2.0
    notional = 100000

Life of the strategy
--------------------
**Formation** (``formation_s`` of market time): the consolidated mid of each instrument it
may trade is sampled at the *sample instants*, the whole multiples of ``sample_ms`` since the
epoch, from the first at or after the first sound book of one of those instruments the
strategy sees (at ``on_start``, in ``on_book``, or at a sample instant while it waits). The
window depends on the books alone, not on when the strategy started: a paper session and a
backtest of its recording sample the same instants and choose the same pairs. Then
``pairs = "auto"`` chooses pairs (``engine.strategy.selection``: correlation preselection,
Engle–Granger, MacKinnon p-values); given pairs are tested too (their statistics are
reported) but traded whatever they show. No pair chosen: another formation window follows. The formation window initialises each
pair's hedge model (rolling OLS ring, or the Kalman state and its noises), so trading starts
the moment it ends.

**Trading**: each ``on_book`` is one call of the compiled kernel (``pairs_kernel``) over the
pairs of the changed instruments, which returns the pairs that must act. Each action moves the
pair's two *target* positions (entry: A ``±qa``, B ``∓qb`` — B's sign also flips with a
negative β; exit, stop, time stop: both 0), and the leg orders drive each leg's position to
its target: marketable limit orders through the smart order router (``venue = "*"``) priced
``slippage_ticks`` through the touch, IOC by default.

**Legging** (a pair's orders all ended, its legs out of proportion — one filled, the other
refused, expired, partly filled, cancelled): ``legging`` is counted and the desk told; the
missing legs are sent again, at most ``max_leg_retries`` times within ``leg_timeout_ms`` of
the action, each time ``slippage_ticks`` further through the touch (after a refusal the next
try waits ``leg_timeout_ms / (max_leg_retries + 1)``: no storm). Still out of proportion, an
entry *unwinds its excess*: both targets shrink to the least-filled leg's fraction (nothing
filled: flat), with the same bounded retries. An exit or an unwind that cannot finish is
*stuck*: the desk is told (ERROR) and a new round of retries starts every ``leg_timeout_ms``
until the legs are flat or hedged. Working orders of a DAY leg are cancelled at the deadline.
An action whose orders changed nothing (the first leg refused, nothing filled) is simply
dropped; the pair backs off for ``cooldown_s`` (entries and exits alike, so a refused exit
is asked again only after the cooldown, and only if the signal still says so).

**Fills** reach ``on_order`` for every order of the kernel. Ours are known by ClOrdID: the
router parent's children (``ParentOrder.children``, read when an unknown ClOrdID brings a
fill or ends), or the order itself; when an order ends its total (``cum_qty``, ``avg_px``) is
compared with what its fills brought, and a difference booked (``unattributed``: zero unless
a report was missed). Each leg keeps (qty, avg price, realized) with
``engine.core.positions.apply_fill``, fees from each fill's Commission.

Risk: every order goes through ``ctx.submit`` (the risk engine). A refusal is counted, told to
the desk, and obeyed: no immediate resend. A REDUCING switch lets exits and unwinds through
and refuses entries; HALTED pauses the strategy (no ``on_book``/``on_timer``; fills still
arrive) until re-armed, and while paused nothing is sent — leg handling goes on on resume.

Determinism: no clock is read and nothing is random: the same books at the same ``now_ns`` give
the same orders.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.book.books import BBO_NOT_OK
from engine.core.intents import BUY, ROUTER, SELL, OrderIntent
from engine.core.positions import apply_fill
from engine.strategy import pairs_kernel as K
from engine.strategy.api import NEVER, Strategy, StrategyContext
from engine.strategy.selection import (
    SELECTION_COLUMNS,
    PairStats,
    pair_stats,
    select_pairs,
    selection_rows,
    write_selection_csv,
)

__all__ = ["PairsConfig", "PairsStrategy", "MIN_FORMATION_SAMPLES"]

log = logging.getLogger("helmdesk.strategy.pairs")

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR
#: a formation window has at least this many samples (the regressions need them)
MIN_FORMATION_SAMPLES = 20
_ENTER, _EXIT, _UNWIND = "enter", "exit", "unwind"
_ORDER_DONE = frozenset({"Filled", "Cancelled", "Replaced", "Rejected", "Expired"})
_INT64 = np.dtype(np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class PairsConfig:
    """The parameters of a ``kind = "pairs"`` entry (docs/strategies.md)."""

    pairs: tuple[tuple[str, str], ...] | None = None  #: None: "auto" (select)
    formation_s: float = 30.0
    sample_ms: int = 100
    max_pairs: int = 10
    p_value: float = 0.05
    candidates: int = 5
    min_corr: float = 0.5
    disjoint: bool = True
    adf_lag: int | None = None  #: None: "aic"
    entry_z: float = 2.0
    exit_z: float = 0.5
    stop_z: float = 4.0
    max_hold_s: float = 300.0
    cooldown_s: float = 5.0
    notional: float = 100_000.0
    sizing: str = "dollar"
    hedge: str = "kalman"
    delta: float = 1e-4
    obs_var: float | None = None  #: None: "auto"
    window: int = 300
    slippage_ticks: int = 1
    tif: str = "ioc"
    leg_timeout_ms: int = 2000
    max_leg_retries: int = 2
    selection_out: str = ""

    @property
    def formation_samples(self) -> int:
        return int(round(self.formation_s * 1000 / self.sample_ms))

    @classmethod
    def from_config(cls, config, profile) -> PairsConfig:
        """Read and check a ``[[strategies]]`` entry; a bad value is a ``ProfileError``
        naming the file, the entry and the key."""
        r = config.reader()
        symbols = {i.symbol for i in profile.instruments}
        raw = r.get("pairs", (str, list), "auto")
        pairs = None
        if isinstance(raw, str):
            if raw != "auto":
                r.fail("pairs", f'must be "auto" or a list of ["A", "B"] pairs, was {raw!r}')
        else:
            if not raw:
                r.fail("pairs", 'must name at least one pair (or be "auto")')
            seen = set()
            out = []
            for k, p in enumerate(raw):
                if (not isinstance(p, list) or len(p) != 2
                        or not all(isinstance(s, str) for s in p)):
                    r.fail(f"pairs[{k}]", f'must be a pair of symbols ["A", "B"], was {p!r}')
                a, b = p
                for s in (a, b):
                    if s not in symbols:
                        r.fail(f"pairs[{k}]", f"{s!r} is not one of the profile's instruments")
                if a == b:
                    r.fail(f"pairs[{k}]", f"the legs must differ, was {p!r}")
                if frozenset(p) in seen:
                    r.fail(f"pairs[{k}]", f"{a}/{b} is given twice")
                seen.add(frozenset(p))
                out.append((a, b))
            pairs = tuple(out)
        formation_s = r.number("formation_s", 30.0, lo=0.001, hi=86_400.0)
        sample_ms = r.integer("sample_ms", 100, lo=1, hi=60_000)
        if formation_s * 1000 / sample_ms < MIN_FORMATION_SAMPLES - 0.5:
            r.fail("formation_s", f"must hold at least {MIN_FORMATION_SAMPLES} samples of "
                                  f"sample_ms = {sample_ms}, was {formation_s!r} s")
        adf = r.get("adf_lag", (str, int), "aic")
        if isinstance(adf, str) and adf != "aic":
            r.fail("adf_lag", f'must be "aic" or a whole number of lags, was {adf!r}')
        if isinstance(adf, int) and not 0 <= adf <= 100:
            r.fail("adf_lag", f"must be between 0 and 100, was {adf!r}")
        entry_z = r.number("entry_z", 2.0, lo=0.01, hi=100.0)
        exit_z = r.number("exit_z", 0.5, lo=-100.0, hi=100.0)
        stop_z = r.number("stop_z", 4.0, lo=0.01, hi=1000.0)
        if not exit_z < entry_z:
            r.fail("exit_z", f"must be below entry_z = {entry_z!r}, was {exit_z!r}")
        if not stop_z > entry_z:
            r.fail("stop_z", f"must be above entry_z = {entry_z!r}, was {stop_z!r}")
        sizing = r.get("sizing", str, "dollar")
        if sizing not in ("dollar", "hedge"):
            r.fail("sizing", f'must be "dollar" or "hedge", was {sizing!r}')
        hedge = r.get("hedge", str, "kalman")
        if hedge not in ("kalman", "ols"):
            r.fail("hedge", f'must be "kalman" or "ols", was {hedge!r}')
        obs = r.get("obs_var", (str, int, float), "auto")
        if isinstance(obs, str) and obs != "auto":
            r.fail("obs_var", f'must be "auto" or a variance > 0, was {obs!r}')
        if not isinstance(obs, str) and not (obs == obs and 0 < obs < 1e12):
            r.fail("obs_var", f'must be "auto" or a variance > 0, was {obs!r}')
        tif = r.get("tif", str, "ioc")
        if tif not in ("ioc", "day"):
            r.fail("tif", f'must be "ioc" or "day", was {tif!r}')
        out_path = r.get("selection_out", str, "")
        cfg = cls(
            pairs=pairs, formation_s=float(formation_s), sample_ms=sample_ms,
            max_pairs=r.integer("max_pairs", 10, lo=1, hi=10_000),
            p_value=float(r.number("p_value", 0.05, lo=0.0, hi=1.0)),
            candidates=r.integer("candidates", 5, lo=1, hi=1000),
            min_corr=float(r.number("min_corr", 0.5, lo=-1.0, hi=1.0)),
            disjoint=r.get("disjoint", bool, True),
            adf_lag=None if isinstance(adf, str) else adf,
            entry_z=float(entry_z), exit_z=float(exit_z), stop_z=float(stop_z),
            max_hold_s=float(r.number("max_hold_s", 300.0, lo=0.0, hi=86_400.0 * 30)),
            cooldown_s=float(r.number("cooldown_s", 5.0, lo=0.0, hi=86_400.0)),
            notional=float(r.number("notional", 100_000.0, lo=0.01, hi=1e12)),
            sizing=sizing, hedge=hedge,
            delta=float(r.number("delta", 1e-4, lo=0.0, hi=0.5)),
            obs_var=None if isinstance(obs, str) else float(obs),
            window=r.integer("window", 300, lo=10, hi=100_000),
            slippage_ticks=r.integer("slippage_ticks", 1, lo=0, hi=10_000),
            tif=tif,
            leg_timeout_ms=r.integer("leg_timeout_ms", 2000, lo=1, hi=3_600_000),
            max_leg_retries=r.integer("max_leg_retries", 2, lo=0, hi=100),
            selection_out=out_path,
        )
        r.done()
        return cfg


# -- per-pair bookkeeping (plain objects: touched only when orders move) ---------------------------
class _Leg:
    __slots__ = ("symbol", "i", "tick", "decimals", "pos", "target", "start", "order",
                 "order_id")

    def __init__(self, symbol: str, i: int, tick: float, decimals: int) -> None:
        self.symbol, self.i, self.tick, self.decimals = symbol, i, tick, decimals
        self.pos: tuple[int, float, float] = (0, 0.0, 0.0)  #: (qty, avg px, realized)
        self.target = 0
        self.start = 0  #: qty when the current action began
        self.order = None  #: the working order (router parent or order)
        self.order_id = ""

    @property
    def qty(self) -> int:
        return self.pos[0]


class _Pair:
    __slots__ = ("k", "label", "legs", "stats", "job", "side", "attempts", "deadline",
                 "retry_at", "due", "legging", "stuck", "cancelling", "fees", "trades", "wins",
                 "entries", "exits", "stops", "legging_n", "refused", "flat_realized",
                 "had_open", "warned_small")

    def __init__(self, k: int, legs: list[_Leg], stats: PairStats) -> None:
        self.k = k
        self.legs = legs
        self.label = f"{legs[0].symbol}/{legs[1].symbol}"
        self.stats = stats
        self.job: str | None = None
        self.side = 0  #: +1 long the spread, -1 short: what an entry is building
        self.attempts = 0
        self.deadline = NEVER
        self.retry_at = 0
        self.due = NEVER
        self.legging = False
        self.stuck = False
        self.cancelling = False
        self.fees = 0.0
        self.trades = self.wins = self.entries = self.exits = self.stops = 0
        self.legging_n = self.refused = 0
        self.flat_realized = 0.0  #: realized P&L when it was last flat
        self.had_open = False  #: filled since it was last flat: the next flat ends a trade
        self.warned_small = False

    @property
    def realized(self) -> float:
        """Realized P&L of both legs, net of fees."""
        return self.legs[0].pos[2] + self.legs[1].pos[2]

    @property
    def open(self) -> bool:
        return self.legs[0].qty != 0 or self.legs[1].qty != 0


class _OrderRec:
    __slots__ = ("leg", "pair", "qty", "notional")

    def __init__(self, leg: _Leg, pair: _Pair) -> None:
        self.leg, self.pair, self.qty, self.notional = leg, pair, 0, 0.0


class PairsStrategy(Strategy):
    """Statistical arbitrage over cointegrated pairs (module docstring)."""

    kind = "pairs"
    name = "pairs"
    wants_books = True
    signal_columns = ("z", "beta", "spread", "position")

    def __init__(self, config: PairsConfig | None = None, name: str | None = None, *,
                 compiled: bool = True) -> None:
        """``compiled`` False runs the kernel's plain-Python reference (tests, the bench)."""
        super().__init__(name)
        self.config = config or PairsConfig()
        self._kernel = K.pairs_tick if compiled else K.pairs_tick_reference
        self._compiled = compiled
        self._call = None  # the bound kernel, once trading
        self._next = NEVER
        self._waiting = False  # no sound book of ours seen yet: formation has not begun
        self._forming = False
        self._next_sample = NEVER  # the next sample instant (while waiting: the next look)
        self._in_form = np.zeros(0, dtype=np.bool_)
        self._form: np.ndarray | None = None
        self._form_n = 0
        self._form_ids = np.zeros(0, dtype=np.int64)
        self.formations = 0  #: formation windows completed
        self.window_start_ns = 0  #: the first sample instant of the latest formation window
        self.selection: tuple[PairStats, ...] = ()
        self.selection_path: Path | None = None
        self.pairs: list[_Pair] = []
        self._active: dict[int, _Pair] = {}
        self._heard: set[int] = set()  # active pairs an order update reached since on_timer
        self._orders: dict[str, _OrderRec] = {}  # order id (parent id or ClOrdID) -> record
        self._by_cl: dict[str, str] = {}  # ClOrdID (the order's or a child's) -> order id
        self.counts = dict.fromkeys(("entries", "exits", "stops", "time_stops", "legging",
                                     "stuck", "refused", "orders", "too_small", "unattributed",
                                     "aborted"), 0)
        self.sf = np.zeros((0, K.NF))
        self.si = np.zeros((0, K.NI), dtype=np.int64)

    @classmethod
    def from_config(cls, config, profile) -> PairsStrategy:
        return cls(PairsConfig.from_config(config, profile), config.name)

    # -- the callbacks ---------------------------------------------------------------------------
    def next_timer_ns(self) -> int:
        return self._next

    def on_start(self, ctx: StrategyContext, now_ns: int) -> None:
        market = ctx.market
        books = market.books
        bbo = books.bbo
        self._bid, self._ask, self._flags = bbo["bid_px"], bbo["ask_px"], bbo["flags"]
        self._ticks = np.asarray(market.ticks, dtype=np.float64)
        self._decimals = list(market.decimals)
        self._symbols = [ins.symbol for ins in market.instruments]
        cfg = self.config
        if cfg.pairs is None:
            ids = np.arange(len(self._symbols), dtype=np.int64)
        else:
            idx = {s: i for i, s in enumerate(self._symbols)}
            ids = np.array(sorted({idx[s] for p in cfg.pairs for s in p}), dtype=np.int64)
        self._form_ids = ids
        self._in_form = np.zeros(len(self._symbols), dtype=np.bool_)
        self._in_form[ids] = True
        self._sample_ns = cfg.sample_ms * 1_000_000
        self._waiting = True
        self._look(now_ns)
        self._reschedule(now_ns)

    def on_book(self, ctx: StrategyContext, instruments, now_ns: int) -> None:
        call = self._call
        if call is None:
            if self._waiting:
                ids = np.asarray(instruments, dtype=np.int64)
                ids = ids[self._in_form[ids]]
                if len(ids) and ((self._flags[ids] & BBO_NOT_OK) == 0).any():
                    self._waiting = False
                    self._begin_formation(self._grid_at(now_ns))
                    self._reschedule(now_ns)
            return
        if instruments.__class__ is not np.ndarray or instruments.dtype != _INT64:
            instruments = np.asarray(instruments, dtype=np.int64)
        n = call(instruments, now_ns)
        if n:
            out_p, out_a = self._out_pair, self._out_act
            for k in range(n):
                self._act(ctx, int(out_p[k]), int(out_a[k]), now_ns)
            self._reschedule(now_ns)

    def on_timer(self, ctx: StrategyContext, now_ns: int) -> None:
        if self._waiting and now_ns >= self._next_sample:
            self._look(now_ns)
        if self._forming and now_ns >= self._next_sample:
            self._sample(now_ns)
            if self._form_n >= len(self._form):
                self._end_formation(ctx, now_ns)
        # the pairs that heard from their orders, and those due: any other pair's legs are
        # as they were when it was last driven (its due time says when to look again)
        heard = self._heard
        active = self._active
        for k in sorted(active):
            pair = active[k]
            if pair.due <= now_ns or k in heard:
                self._drive(ctx, pair, now_ns)
        heard.clear()
        self._reschedule(now_ns)

    def on_order(self, ctx: StrategyContext, update, order) -> None:
        oid = self._by_cl.get(update.cl_ord_id)
        if oid is None:
            if not self._active or (update.last_qty <= 0 and update.leaves_qty > 0):
                return
            oid = self._find_child(update.cl_ord_id)
            if oid is None:
                return
        rec = self._orders[oid]
        if update.last_qty > 0:
            fee = float(getattr(update, "fee", 0.0) or 0.0)
            self._fill(rec, order.side, int(update.last_qty), float(update.last_px), fee)
        if update.last_qty > 0 or update.leaves_qty <= 0:
            self._heard.add(rec.pair.k)
            now = ctx.now_ns
            if now < self._next:
                self._next = now  # settle in this step's timers, after the router has

    def on_resume(self, ctx: StrategyContext, now_ns: int) -> None:
        if self._waiting:  # books it did not hear of while paused
            self._look(now_ns)
            self._reschedule(now_ns)
        if self._active:
            self._next = now_ns

    def on_stop(self, ctx: StrategyContext, now_ns: int) -> None:
        for pair in self._active.values():
            for leg in pair.legs:
                if leg.order is not None and not _ended(leg.order):
                    ctx.cancel(leg.order_id, now_ns)
        self._next = NEVER

    # -- formation -------------------------------------------------------------------------------
    def warm_up(self, market) -> None:
        """Compile the kernel (or load numba's cache) before the engine starts, not in the
        first tick."""
        if not self._compiled:
            return
        z64 = np.zeros(0, dtype=np.int64)
        bbo = market.books.bbo
        K.pairs_tick(z64, 0, bbo["bid_px"], bbo["ask_px"], bbo["flags"],
                     np.asarray(market.ticks, dtype=np.float64),
                     np.zeros(1, dtype=np.int64), z64, z64, z64, np.zeros(K.PF_N),
                     np.zeros(K.PI_N, dtype=np.int64), np.zeros((0, K.NF)),
                     np.zeros((0, K.NI), dtype=np.int64), np.zeros((0, 1)), np.zeros((0, 1)),
                     z64, z64)

    def _grid_at(self, t_ns: int) -> int:
        """The first sample instant at or after ``t_ns``: sample instants are whole multiples
        of ``sample_ms`` since the epoch, whenever the strategy started."""
        s = self._sample_ns
        return -(-t_ns // s) * s

    def _look(self, now_ns: int) -> None:
        """Waiting for a book: a sound book of one of our instruments begins the formation
        at the first sample instant from now; none, look again at the next one (a driver
        that calls no ``on_book`` is heard too)."""
        ids = self._form_ids
        if len(ids) and ((self._flags[ids] & BBO_NOT_OK) == 0).any():
            self._waiting = False
            self._begin_formation(self._grid_at(now_ns))
        else:
            self._next_sample = self._grid_at(now_ns + 1)

    def _begin_formation(self, first_ns: int) -> None:
        """A formation window whose first sample is at ``first_ns`` (a sample instant)."""
        self._form = np.full((self.config.formation_samples, len(self._form_ids)), np.nan)
        self._form_n = 0
        self._forming = True
        self.window_start_ns = self._next_sample = first_ns
        self._next = min(self._next, first_ns)

    def _sample(self, now_ns: int) -> None:
        ids = self._form_ids
        bid = self._bid[ids]
        ask = self._ask[ids]
        ok = (self._flags[ids] & BBO_NOT_OK) == 0
        mid = (bid + ask) * 0.5 * self._ticks[ids]
        self._form[self._form_n] = np.where(ok, mid, np.nan)
        self._form_n += 1
        self._next_sample = self._grid_at(now_ns + 1)  # late or not: stay on the grid

    def _end_formation(self, ctx: StrategyContext, now_ns: int) -> None:
        cfg = self.config
        self._forming = False
        self._next_sample = NEVER
        self.formations += 1
        prices = _fill_gaps(self._form)
        names = [self._symbols[i] for i in self._form_ids]
        sample_s = cfg.sample_ms / 1000
        if cfg.pairs is None:
            sel = select_pairs(prices, names, sample_s=sample_s, max_pairs=cfg.max_pairs,
                               p_value=cfg.p_value, candidates=cfg.candidates,
                               min_corr=cfg.min_corr, disjoint=cfg.disjoint, lag=cfg.adf_lag)
            chosen = list(sel.chosen)
            if not chosen:
                ctx.notify(WARNING, f"formation {self.formations}: no pair of {len(names)} "
                                    f"instruments passed (p <= {cfg.p_value:g}; "
                                    f"{sel.tested} tested); forming again")
                self._begin_formation(self._grid_at(now_ns + 1))
                return
        else:
            col = {s: k for k, s in enumerate(names)}
            whole = np.isfinite(prices).all(axis=0)
            good = [(a, b) for a, b in cfg.pairs if whole[col[a]] and whole[col[b]]]
            if len(good) < len(cfg.pairs):
                missing = [f"{a}/{b}" for a, b in cfg.pairs if (a, b) not in good]
                ctx.notify(WARNING, f"formation {self.formations}: no sound book for "
                                    f"{', '.join(missing)} in the window; forming again")
                self._begin_formation(self._grid_at(now_ns + 1))
                return
            chosen = pair_stats(prices, names, [(col[a], col[b]) for a, b in good],
                                sample_s=sample_s, lag=cfg.adf_lag)
        self.selection = tuple(chosen)
        self._setup(prices, chosen, now_ns)
        if cfg.selection_out:
            try:
                self.selection_path = write_selection_csv(cfg.selection_out, chosen)
            except OSError as e:
                ctx.notify(ERROR, f"selection not written to {cfg.selection_out}: {e}")
        ctx.notify(INFO, f"trading {len(chosen)} pairs after a {cfg.formation_s:g} s formation: "
                         + ", ".join(f"{s.a}/{s.b} (p {s.p_value:.3g}, beta {s.beta:.4g})"
                                     for s in chosen[:8])
                         + (" …" if len(chosen) > 8 else ""))

    def _setup(self, prices: np.ndarray, chosen: list[PairStats], now_ns: int) -> None:
        """Pair arrays and the hedge models, initialised from the formation window."""
        cfg = self.config
        n = len(chosen)
        ids = self._form_ids
        la = np.array([ids[s.ia] for s in chosen], dtype=np.int64)
        lb = np.array([ids[s.ib] for s in chosen], dtype=np.int64)
        window = cfg.window
        sf = np.zeros((n, K.NF))
        si = np.zeros((n, K.NI), dtype=np.int64)
        xs = np.zeros((n, window if cfg.hedge == "ols" else 1))
        ys = np.zeros_like(xs)
        q = cfg.delta / (1.0 - cfg.delta)
        m = len(prices)
        for p, s in enumerate(chosen):
            y, x = prices[:, s.ia], prices[:, s.ib]
            tick_a = float(self._ticks[la[p]])
            beta, alpha, resid_var = s.beta, s.alpha, s.resid_var
            if not (math.isfinite(beta) and math.isfinite(alpha)):
                # B never moved in the window: no slope to fit. Start from β = 0 (the wide
                # prior below on β lets the filter learn it from the first moves)
                beta, alpha, resid_var = 0.0, float(y.mean()), float(y.var())
            s2 = max(resid_var, tick_a * tick_a / 12.0)  # at least the tick's rounding noise
            r = cfg.obs_var if cfg.obs_var is not None else s2
            sxx = max(s.x_var * m, 1e-12)
            xc = s.x_mean
            sf[p, K.F_XC] = xc
            sf[p, K.F_BETA] = beta
            sf[p, K.F_ALPHA] = alpha + beta * xc  # α at xc = 0: the mean of y
            sf[p, K.F_P00] = s2 / m
            sf[p, K.F_P01] = 0.0
            sf[p, K.F_P11] = s2 / sxx
            sf[p, K.F_R] = r
            sf[p, K.F_QA] = q * r
            sf[p, K.F_QB] = q * r / max(xc * xc, 1e-12)
            if cfg.hedge == "ols":
                w = min(window, m)
                xw, yw = x[m - w:] - xc, y[m - w:]
                xs[p, :w], ys[p, :w] = xw, yw
                xm, ym = xw.mean(), yw.mean()
                sx = ((xw - xm) ** 2).sum()
                b = ((xw - xm) * (yw - ym)).sum() / sx if sx > 0 else beta
                a = ym - b * xm
                sf[p, K.F_ALPHA], sf[p, K.F_BETA] = a, b
                res = yw - a - b * xw
                sf[p, K.F_SIGMA] = math.sqrt((res * res).sum() / (w - 2))
                si[p, K.I_HEAD] = w % window
            si[p, K.I_NOBS] = m
            si[p, K.I_LAST_SAMPLE] = now_ns
        ptr, idx = K.build_index(la, lb, len(self._symbols))
        pf = np.array([cfg.entry_z, cfg.exit_z, cfg.stop_z], dtype=np.float64)
        pi = np.zeros(K.PI_N, dtype=np.int64)
        pi[K.PI_SAMPLE_NS] = self._sample_ns
        pi[K.PI_MAX_HOLD_NS] = int(round(cfg.max_hold_s * 1e9))
        pi[K.PI_HEDGE] = K.H_OLS if cfg.hedge == "ols" else K.H_KALMAN
        pi[K.PI_WARMUP] = MIN_FORMATION_SAMPLES
        self.sf, self.si, self.xs, self.ys = sf, si, xs, ys
        self.leg_a, self.leg_b, self.inst_ptr, self.inst_pairs = la, lb, ptr, idx
        self.pf, self.pi = pf, pi
        self._out_pair = np.zeros(max(n, 1), dtype=np.int64)
        self._out_act = np.zeros(max(n, 1), dtype=np.int64)
        self.pairs = []
        for p, s in enumerate(chosen):
            legs = [_Leg(self._symbols[i], i, float(self._ticks[i]), self._decimals[i])
                    for i in (int(la[p]), int(lb[p]))]
            self.pairs.append(_Pair(p, legs, s))
        self._call = self._bind()

    def _bind(self):
        """The kernel bound to this strategy's arrays: ``call(changed, now_ns) -> n``. The
        compiled entry point for these types is looked up once (as ``BookSet.bind`` does),
        so a tick skips numba's type dispatch."""
        args = (np.zeros(1, dtype=np.int64), 0, self._bid, self._ask, self._flags, self._ticks,
                self.inst_ptr, self.inst_pairs, self.leg_a, self.leg_b, self.pf, self.pi,
                self.sf, self.si, self.xs, self.ys, self._out_pair, self._out_act)
        fn = self._kernel
        if self._compiled:
            try:
                entry = fn.compile(tuple(fn.typeof_pyval(a) for a in args))
            except Exception:  # a numba without it: the dispatcher, checked per call
                entry = fn
            if callable(entry):
                fn = entry
        rest = args[2:]
        bid, ask, flags, ticks, ptr, idx, la, lb, pf, pi, sf, si, xs, ys, op, oa = rest

        def call(changed, now_ns):
            return fn(changed, now_ns, bid, ask, flags, ticks, ptr, idx, la, lb, pf, pi, sf,
                      si, xs, ys, op, oa)

        return call

    # -- actions ---------------------------------------------------------------------------------
    def _act(self, ctx: StrategyContext, p: int, act: int, now_ns: int) -> None:
        pair = self.pairs[p]
        if act == K.ACT_ENTER_LONG or act == K.ACT_ENTER_SHORT:
            self._enter(ctx, pair, 1 if act == K.ACT_ENTER_LONG else -1, now_ns)
            return
        if act == K.ACT_EXIT:
            self.counts["exits"] += 1
            pair.exits += 1
        else:
            self.counts["stops" if act == K.ACT_STOP else "time_stops"] += 1
            pair.stops += 1
        self._start_job(pair, _EXIT, [0, 0], now_ns)
        for leg in pair.legs:
            self._send(ctx, pair, leg, now_ns, 0)
        self._drive(ctx, pair, now_ns)

    def _enter(self, ctx: StrategyContext, pair: _Pair, side: int, now_ns: int) -> None:
        cfg = self.config
        p = pair.k
        ya, xb, beta = self.sf[p, K.F_MID_A], self.sf[p, K.F_MID_B], self.sf[p, K.F_BETA]
        qa = _round_half_up(cfg.notional / ya)
        qb = _round_half_up(cfg.notional / xb if cfg.sizing == "dollar" else abs(beta) * qa)
        if qa < 1 or qb < 1:
            self.counts["too_small"] += 1
            if not pair.warned_small:
                pair.warned_small = True
                ctx.notify(WARNING, f"{pair.label}: notional {cfg.notional:g} buys no whole "
                                    f"unit of a leg ({qa} and {qb}): not traded")
            self._idle(pair, now_ns)
            return
        sb = -side if beta >= 0 else side
        self._start_job(pair, _ENTER, [side * qa, sb * qb], now_ns)
        pair.side = side
        self.si[p, K.I_ENTRY_NS] = now_ns
        if self._send(ctx, pair, pair.legs[0], now_ns, 0) is not None:
            pair.job = None  # the first leg refused: nothing happened
            self._idle(pair, now_ns)
            return
        self.counts["entries"] += 1
        pair.entries += 1
        self._send(ctx, pair, pair.legs[1], now_ns, 0)
        self._drive(ctx, pair, now_ns)

    def _start_job(self, pair: _Pair, job: str, targets: list[int], now_ns: int) -> None:
        pair.job = job
        for leg, t in zip(pair.legs, targets):
            leg.start, leg.target = leg.qty, t
        pair.attempts = 0
        pair.deadline = now_ns + self.config.leg_timeout_ms * 1_000_000
        pair.retry_at = 0
        pair.legging = pair.stuck = pair.cancelling = False
        self._active[pair.k] = pair

    def _idle(self, pair: _Pair, now_ns: int) -> None:
        """No job: the kernel decides again after the cooldown."""
        p = pair.k
        pair.job = None
        pair.due = NEVER
        self.si[p, K.I_BUSY] = 0
        self.si[p, K.I_COOL_UNTIL] = now_ns + int(self.config.cooldown_s * 1e9)
        self._active.pop(p, None)

    def _send(self, ctx: StrategyContext, pair: _Pair, leg: _Leg, now_ns: int,
              walk: int) -> str | None:
        """Send what ``leg`` lacks; None if sent (or nothing to send), else why not."""
        d = leg.target - leg.qty
        if d == 0:
            return None
        i = leg.i
        slip = self.config.slippage_ticks * (1 + walk)
        if d > 0:
            side, touch = BUY, int(self._ask[i])
            px = touch + slip
        else:
            side, touch = SELL, int(self._bid[i])
            px = max(touch - slip, 1)
        if touch <= 0:
            why = f"no {'offer' if d > 0 else 'bid'} in {leg.symbol}"
        else:
            intent = OrderIntent(symbol=leg.symbol, side=side, qty=abs(d),
                                 price=round(px * leg.tick, leg.decimals), venue=ROUTER,
                                 tif=self.config.tif)
            r = ctx.submit(intent, now_ns)
            if not isinstance(r, str):
                self._track(pair, leg, r)
                return None
            why = r
        self.counts["refused"] += 1
        pair.refused += 1
        cfg = self.config  # obey: the next try waits (no resend storm)
        pair.retry_at = now_ns + cfg.leg_timeout_ms * 1_000_000 // (cfg.max_leg_retries + 1)
        ctx.notify(WARNING, f"{pair.label}: {leg.symbol} {'buy' if d > 0 else 'sell'} "
                            f"{abs(d)} refused: {why}", i)
        return why

    def _track(self, pair: _Pair, leg: _Leg, order) -> None:
        oid = getattr(order, "parent_id", None) or order.cl_ord_id
        leg.order, leg.order_id = order, oid
        self._orders[oid] = _OrderRec(leg, pair)
        self._by_cl[oid] = oid
        for c in getattr(order, "children", ()):
            self._by_cl[c.cl_ord_id] = oid
        self.counts["orders"] += 1

    def _find_child(self, cl_ord_id: str) -> str | None:
        """A ClOrdID we have not seen: a child of one of our working parents? (the router
        adds a child to its parent after the child's first report, and adds more when it
        re-routes)."""
        for pair in self._active.values():
            for leg in pair.legs:
                o = leg.order
                for c in getattr(o, "children", ()):
                    if c.cl_ord_id not in self._by_cl:
                        self._by_cl[c.cl_ord_id] = leg.order_id
        return self._by_cl.get(cl_ord_id)

    def _fill(self, rec: _OrderRec, side: int, qty: int, px: float, fee: float) -> None:
        leg = rec.leg
        leg.pos = apply_fill(leg.pos, side, qty, px, fee)
        rec.qty += qty
        rec.notional += qty * px
        rec.pair.fees += fee
        rec.pair.had_open = True

    # -- driving a pair's legs to their targets ----------------------------------------------------
    def _drive(self, ctx: StrategyContext, pair: _Pair, now_ns: int) -> None:
        cfg = self.config
        pair.due = NEVER
        working = False
        for leg in pair.legs:
            o = leg.order
            if o is not None:
                if _ended(o):
                    self._settle(leg)
                else:
                    working = True
        if working:
            if now_ns >= pair.deadline and not pair.cancelling:
                pair.cancelling = True
                for leg in pair.legs:
                    if leg.order is not None:
                        ctx.cancel(leg.order_id, now_ns)
            timeout = cfg.leg_timeout_ms * 1_000_000
            pair.due = now_ns + timeout if pair.cancelling else pair.deadline
            return
        pair.cancelling = False
        legs = pair.legs
        if all(leg.qty == leg.target for leg in legs):
            self._done(ctx, pair, now_ns)
            return
        if not pair.legging:
            if all(leg.qty == leg.start for leg in legs):  # nothing moved: drop the action
                self.counts["aborted"] += 1
                self._idle(pair, now_ns)
                return
            pair.legging = True
            pair.legging_n += 1
            self.counts["legging"] += 1
            ctx.notify(WARNING, f"{pair.label} legging on {pair.job}: {_legs_text(pair)}; "
                                f"re-sending the missing leg")
        if now_ns < pair.retry_at:
            pair.due = pair.retry_at
            return
        if pair.attempts < cfg.max_leg_retries and now_ns < pair.deadline:
            pair.attempts += 1
            self._resend(ctx, pair, now_ns, max(pair.attempts, 0))
            return
        if pair.job == _ENTER:  # unwind the excess to the least-filled leg's fraction
            f = min((leg.qty - leg.start) / (leg.target - leg.start) for leg in legs
                    if leg.target != leg.start)
            f = min(max(f, 0.0), 1.0)
            targets = [leg.start + _round_half_up((leg.target - leg.start) * f) for leg in legs]
            self._start_job(pair, _UNWIND, targets, now_ns)
            pair.legging = True
            ctx.notify(WARNING, f"{pair.label}: not hedged in time; unwinding the excess to "
                                f"{targets[0]} {legs[0].symbol}, {targets[1]} {legs[1].symbol}")
            self._resend(ctx, pair, now_ns, 0)
            return
        # an exit or an unwind that did not finish: another round after leg_timeout_ms
        if not pair.stuck:
            pair.stuck = True
            self.counts["stuck"] += 1
            ctx.notify(ERROR, f"{pair.label} NOT HEDGED: {_legs_text(pair)}; trying again "
                              f"every {cfg.leg_timeout_ms} ms")
        timeout = cfg.leg_timeout_ms * 1_000_000
        pair.attempts = -1  # the round's first send is not a retry
        pair.retry_at = now_ns + timeout
        pair.deadline = pair.retry_at + timeout
        pair.due = pair.retry_at

    def _resend(self, ctx: StrategyContext, pair: _Pair, now_ns: int, walk: int) -> None:
        for leg in pair.legs:
            if leg.qty != leg.target:
                self._send(ctx, pair, leg, now_ns, walk)
        working = any(leg.order is not None for leg in pair.legs)
        pair.due = pair.deadline if working else max(pair.retry_at, now_ns)

    def _settle(self, leg: _Leg) -> None:
        """``leg``'s order ended: book what its total shows and its fills did not bring."""
        o = leg.order
        rec = self._orders[leg.order_id]
        missed = int(o.cum_qty) - rec.qty
        if missed > 0:
            px = (float(o.avg_px) * int(o.cum_qty) - rec.notional) / missed
            self._fill(rec, o.side, missed, px, 0.0)
            self.counts["unattributed"] += missed
        leg.order, leg.order_id = None, ""

    def _done(self, ctx: StrategyContext, pair: _Pair, now_ns: int) -> None:
        p = pair.k
        if pair.legging:
            ctx.notify(INFO if not pair.stuck else WARNING,
                       f"{pair.label} hedged again: holds "
                       + ", ".join(f"{leg.symbol} {leg.qty:+d}" for leg in pair.legs))
        if pair.open:
            self.si[p, K.I_STATE] = pair.side
            self.si[p, K.I_BUSY] = 0
            pair.job = None
            pair.due = NEVER
            self._active.pop(p, None)
            return
        if pair.had_open:  # a round trip (or a legged entry unwound) ends here
            pnl = pair.realized - pair.flat_realized
            pair.trades += 1
            pair.wins += pnl > 0
            pair.flat_realized = pair.realized
            pair.had_open = False
        self.si[p, K.I_STATE] = 0
        self._idle(pair, now_ns)

    def _reschedule(self, now_ns: int) -> None:
        nxt = self._next_sample if self._forming or self._waiting else NEVER
        for pair in self._active.values():
            if pair.due < nxt:
                nxt = pair.due
        self._next = nxt

    # -- what the desk and the report read ---------------------------------------------------------
    def figures(self) -> dict[str, float]:
        c = self.counts
        return {
            "pairs": float(len(self.pairs)),
            "open": float(sum(1 for p in self.pairs if p.open)),
            "entries": float(c["entries"]),
            "exits": float(c["exits"]),
            "stops": float(c["stops"] + c["time_stops"]),
            "legging": float(c["legging"]),
            "refused": float(c["refused"]),
            "realized": round(sum(p.realized for p in self.pairs), 2),
        }

    def signals(self, n: int) -> list[tuple[str, float, float, float, float]]:
        if not self.pairs or n <= 0:
            return []
        z = self.sf[:, K.F_Z]
        order = np.argsort(-np.abs(z), kind="stable")[:n]
        return [(self.pairs[p].label, float(z[p]), float(self.sf[p, K.F_BETA]),
                 float(self.sf[p, K.F_SPREAD]), float(self.pairs[p].legs[0].qty))
                for p in order.tolist()]

    def report_tables(self) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
        cols = ("pair", "beta", "trades", "wins", "hit_rate", "realized", "fees", "entries",
                "stops", "legging", "refused", "position_a", "position_b")
        rows = []
        for pair in self.pairs:
            hit = pair.wins / pair.trades if pair.trades else 0.0
            rows.append((pair.label, round(float(self.sf[pair.k, K.F_BETA]), 6), pair.trades,
                         pair.wins, round(hit, 4), round(pair.realized, 2),
                         round(pair.fees, 2), pair.entries, pair.stops, pair.legging_n,
                         pair.refused, pair.legs[0].qty, pair.legs[1].qty))
        return {"pairs": (cols, rows),
                "selection": (SELECTION_COLUMNS, selection_rows(self.selection))}

    def position(self, symbol: str) -> int:
        """The strategy's position in ``symbol`` by its own books (all pairs)."""
        return sum(leg.qty for p in self.pairs for leg in p.legs if leg.symbol == symbol)


# -- helpers ---------------------------------------------------------------------------------------
def _ended(order) -> bool:
    """A router parent (``parent_id``) is over when not Working; an order when terminal."""
    v = order.status.value
    if hasattr(order, "parent_id"):
        return v != "Working"
    return v in _ORDER_DONE


def _round_half_up(v: float) -> int:
    if v != v or v in (math.inf, -math.inf):
        return 0
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def _legs_text(pair: _Pair) -> str:
    return ", ".join(f"{leg.symbol} {leg.qty - leg.start:+d} of {leg.target - leg.start:+d}"
                     for leg in pair.legs)


def _fill_gaps(form: np.ndarray) -> np.ndarray:
    """Forward-fill each column; leading gaps take the first value when it comes within the
    first tenth of the window (else the column stays incomplete: NaN)."""
    out = form.copy()
    n = len(out)
    for c in range(out.shape[1]):
        col = out[:, c]
        good = np.flatnonzero(np.isfinite(col))
        if not len(good):
            continue
        first = good[0]
        idx = np.maximum.accumulate(np.where(np.isfinite(col), np.arange(n), 0))
        filled = col[idx]
        if first <= n // 10:
            filled[:first] = col[first]
        out[:, c] = filled
    return out

