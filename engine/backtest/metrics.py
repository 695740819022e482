"""A backtest's figures: from its equity curve, its orders and its fills.

Plain functions over plain sequences (no numpy, no engine state), so each is checked against
hand-computed values. Amounts are in the instruments' currency; there is no capital unless
one is given (``capital``), so returns are P&L changes, not percentages.

Definitions (``docs/backtest.md`` has them for users):

equity ``E_k``
    the desk's (or a strategy's) P&L at sample ``k``: realized (net of fees) + unrealized,
    open positions marked to the consolidated mid. Sampled every ``sample_ms`` of market time.
returns ``r_k = E_k - E_{k-1}``
    per-sample P&L changes (divided by ``capital`` when given: the same Sharpe and Sortino,
    as both are ratios). The step over a night between two recorded days is one sample.
Sharpe
    ``mean(r) / stdev(r) * sqrt(N)``, ``stdev`` the sample standard deviation (n - 1),
    ``N = 252 * 6.5 h / sample`` samples a year (252 trading days of 6.5 hours: 23,400
    one-second samples a day). None with fewer than two returns or no variation.
Sortino
    ``mean(r) / DD * sqrt(N)``, the downside deviation ``DD = sqrt(sum(min(r_k, 0)^2) / n)``
    over all ``n`` returns (target 0). None with no losing sample.
drawdown ``D_k = E_k - max(0, E_0, ..., E_k)``
    (<= 0; the peak starts at 0: nothing is held before the first record). Max drawdown is
    ``-min(D_k)`` in currency; in percent ``100 * max(-D_k / (capital + peak_k))``, only with
    a capital.
turnover
    traded notional ``sum(qty * price)`` over fills; divided by ``capital`` when given.
fill ratio
    filled quantity / ordered quantity over orders; and orders with any fill / orders.
round trip
    per source (strategy) and instrument, from a flat position to flat again; a fill that
    goes through zero closes one and opens the next (its fee split by quantity). Its P&L is
    the realized P&L over its fills, net of their fees; a trip still open at the end is
    marked (and counted nowhere below).
hit rate
    round trips with P&L > 0 / closed round trips.
holding time
    the mean of closed round trips' exit - entry time, in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Fill", "RoundTrip", "SAMPLES_PER_YEAR_1S", "drawdowns", "fill_ratios", "hit_rate",
           "max_drawdown", "periods_per_year", "returns", "round_trips", "sharpe", "sortino",
           "summarize"]

#: 252 trading days of 6.5 hours, in seconds: the year Sharpe and Sortino are scaled to
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
SAMPLES_PER_YEAR_1S = TRADING_SECONDS_PER_YEAR


def periods_per_year(sample_ms: float) -> float:
    """How many samples of ``sample_ms`` make the trading year."""
    return TRADING_SECONDS_PER_YEAR * 1000.0 / sample_ms


# -- THE EQUITY CURVE --


def returns(equity: Sequence[float], capital: float | None = None) -> list[float]:
    """Per-sample changes ``E_k - E_{k-1}`` (divided by ``capital`` when given)."""
    r = [b - a for a, b in zip(equity, equity[1:])]
    return [x / capital for x in r] if capital else r


def sharpe(r: Sequence[float], per_year: float) -> float | None:
    n = len(r)
    if n < 2:
        return None
    mean = math.fsum(r) / n
    var = math.fsum((x - mean) ** 2 for x in r) / (n - 1)
    if var <= 0.0:
        return None
    return mean / math.sqrt(var) * math.sqrt(per_year)


def sortino(r: Sequence[float], per_year: float) -> float | None:
    n = len(r)
    if n < 1:
        return None
    down = math.fsum(x * x for x in r if x < 0) / n
    if down <= 0.0:
        return None
    return math.fsum(r) / n / math.sqrt(down) * math.sqrt(per_year)


def drawdowns(equity: Iterable[float]) -> list[float]:
    """``D_k = E_k - max(0, E_0..E_k)`` (<= 0)."""
    peak = 0.0
    out = []
    for e in equity:
        if e > peak:
            peak = e
        out.append(e - peak)
    return out


def max_drawdown(equity: Sequence[float], capital: float | None = None
                 ) -> tuple[float, float | None]:
    """(max drawdown in currency, in percent of capital + the peak; None without capital)."""
    peak = 0.0
    worst = 0.0
    worst_pct = 0.0
    for e in equity:
        if e > peak:
            peak = e
        d = peak - e
        if d > worst:
            worst = d
        if capital and capital + peak > 0:
            worst_pct = max(worst_pct, 100.0 * d / (capital + peak))
    return worst, (worst_pct if capital else None)


# -- ORDERS AND FILLS --


def fill_ratios(orders: Iterable[tuple[int, int]]) -> tuple[float | None, float | None]:
    """(filled qty / ordered qty, orders with a fill / orders) over (qty, cum_qty) pairs."""
    n = filled = qty = cum = 0
    for q, c in orders:
        n += 1
        qty += q
        cum += c
        filled += c > 0
    return (cum / qty if qty else None), (filled / n if n else None)


@dataclass(frozen=True, slots=True)
class Fill:
    ts_ns: int
    source: str  #: who sent the order ("strategy:pairs", "desk", ...)
    symbol: str
    side: int  #: 1 buy, 2 sell
    qty: int
    price: float
    fee: float = 0.0


@dataclass(slots=True)
class RoundTrip:
    source: str
    symbol: str
    side: str  #: "long" or "short"
    entry_ns: int
    exit_ns: int | None  #: None: still open at the end
    qty: int = 0  #: the largest position held
    bought: float = 0.0  #: notional bought, and its quantity
    bought_qty: int = 0
    sold: float = 0.0
    sold_qty: int = 0
    fills: int = 0
    fees: float = 0.0
    pnl: float = 0.0  #: realized net of fees (+ unrealized at the end if open)

    @property
    def entry_px(self) -> float:
        """The average price of the fills that opened or added."""
        n, q = (self.bought, self.bought_qty) if self.side == "long" else (self.sold, self.sold_qty)
        return n / q if q else math.nan

    @property
    def exit_px(self) -> float:
        """The average price of the fills that reduced or closed."""
        n, q = (self.sold, self.sold_qty) if self.side == "long" else (self.bought, self.bought_qty)
        return n / q if q else math.nan

    @property
    def holding_s(self) -> float | None:
        return None if self.exit_ns is None else (self.exit_ns - self.entry_ns) / 1e9


def round_trips(fills: Iterable[Fill], marks: dict[str, float] | None = None) -> list[RoundTrip]:
    """Round trips per (source, symbol), in the order they opened; open ones marked to
    ``marks`` (symbol -> price) when given."""
    out: list[RoundTrip] = []
    state: dict[tuple[str, str], tuple[int, float, RoundTrip | None]] = {}
    for f in fills:
        key = (f.source, f.symbol)
        q, avg, trip = state.get(key, (0, 0.0, None))
        d = f.qty if f.side == 1 else -f.qty
        left, fee = f.qty, f.fee
        if q and (q > 0) != (d > 0):  # reduces, closes, or goes through zero
            closing = min(abs(d), abs(q))
            part = fee * closing / f.qty
            _add(trip, f, closing, part)
            trip.pnl += (f.price - avg) * closing * (1 if q > 0 else -1) - part
            left, fee = f.qty - closing, fee - part
            q += closing if d > 0 else -closing
            if q == 0:
                trip.exit_ns = f.ts_ns
                trip = None
                avg = 0.0
        if left:
            if q == 0:
                trip = RoundTrip(f.source, f.symbol, "long" if d > 0 else "short", f.ts_ns, None)
                out.append(trip)
            _add(trip, f, left, fee)
            trip.pnl -= fee
            new = q + (left if d > 0 else -left)
            avg = (avg * abs(q) + f.price * left) / abs(new)
            q = new
            trip.qty = max(trip.qty, abs(q))
        state[key] = (q, avg, trip)
    if marks:
        for (_, sym), (q, avg, trip) in state.items():
            m = marks.get(sym)
            if trip is not None and q and m:
                trip.pnl += (m - avg) * q
    return out


def _add(trip: RoundTrip, f: Fill, qty: int, fee: float) -> None:
    trip.fills += 1
    trip.fees += fee
    if f.side == 1:
        trip.bought += qty * f.price
        trip.bought_qty += qty
    else:
        trip.sold += qty * f.price
        trip.sold_qty += qty


def hit_rate(trips: Iterable[RoundTrip]) -> float | None:
    closed = [t for t in trips if t.exit_ns is not None]
    return sum(t.pnl > 0 for t in closed) / len(closed) if closed else None


# -- ALL OF THEM --

#: the figures, in the order metrics.csv and the report show them
NAMES = ("total_pnl", "realized_pnl", "unrealized_pnl", "fees", "sharpe", "sortino",
         "max_drawdown", "max_drawdown_pct", "turnover", "turnover_on_capital", "orders",
         "orders_filled", "fill_ratio_qty", "fill_ratio_orders", "fills", "round_trips",
         "round_trips_open", "hit_rate", "avg_holding_s", "samples")


def summarize(equity: Sequence[float], *, sample_ms: float, capital: float | None,
              orders: Sequence[tuple[int, int]], fills: Sequence[Fill],
              trips: Sequence[RoundTrip], realized: float | None = None,
              unrealized: float | None = None) -> dict:
    """Every figure of ``NAMES`` for one book (the desk, or one strategy)."""
    r = returns(equity, capital)
    per_year = periods_per_year(sample_ms)
    dd, dd_pct = max_drawdown(equity, capital)
    notional = math.fsum(f.qty * f.price for f in fills)
    q_ratio, o_ratio = fill_ratios(orders)
    closed = [t for t in trips if t.exit_ns is not None]
    hold = [t.holding_s for t in closed]
    total = (realized + unrealized if realized is not None and unrealized is not None
             else equity[-1] if equity else 0.0)
    return {
        "total_pnl": total,
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "fees": math.fsum(f.fee for f in fills),
        "sharpe": sharpe(r, per_year),
        "sortino": sortino(r, per_year),
        "max_drawdown": dd,
        "max_drawdown_pct": dd_pct,
        "turnover": notional,
        "turnover_on_capital": notional / capital if capital else None,
        "orders": len(orders),
        "orders_filled": sum(1 for _, c in orders if c > 0),
        "fill_ratio_qty": q_ratio,
        "fill_ratio_orders": o_ratio,
        "fills": len(fills),
        "round_trips": len(closed),
        "round_trips_open": len(trips) - len(closed),
        "hit_rate": hit_rate(trips),
        "avg_holding_s": math.fsum(hold) / len(hold) if hold else None,
        "samples": len(equity),
    }
