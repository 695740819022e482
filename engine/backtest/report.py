"""A backtest's journal and its output folder: every order update, every execution, the
positions at the end of the day, and a summary.

The files are a function of the run's input only (no wall-clock time, no paths of the machine
in them), so two runs of the same day, profile and intents give byte-identical files::

    orders.csv       one row per order update: ts_ns, cl_ord_id, venue, symbol, side, status,
                     tif, qty, price (empty: market), cum_qty, leaves_qty, avg_px, last_qty,
                     last_px, exec_id, text
    executions.csv   one row per fill: ts_ns, exec_id, cl_ord_id, venue, symbol, side, qty,
                     price
    positions.csv    per instrument traded: symbol, qty, avg_px, realized, mark, unrealized
                     (marked to the consolidated mid at the end, else the last trade)
    summary.json     the day, the records replayed, orders, fills, refused intents, P&L
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from engine.core.intents import SIDE_NAMES
from engine.core.positions import apply_fill
from engine.execution.oms import OrderUpdate
from engine.execution.orders import Order
from engine.kernel import Journal

__all__ = ["ReportJournal", "marks"]

_ORDER_COLUMNS = ("ts_ns", "cl_ord_id", "venue", "symbol", "side", "status", "tif", "qty",
                  "price", "cum_qty", "leaves_qty", "avg_px", "last_qty", "last_px", "exec_id",
                  "text")
_EXEC_COLUMNS = ("ts_ns", "exec_id", "cl_ord_id", "venue", "symbol", "side", "qty", "price")
_POS_COLUMNS = ("symbol", "qty", "avg_px", "realized", "mark", "unrealized")


def _num(x: float) -> str:
    """A price or an amount as written: nine decimals at most (float noise of sums like
    100.02 - 99.99 goes), the shortest form that reads back exactly."""
    return repr(round(float(x), 9)) if math.isfinite(x) else ""


class ReportJournal(Journal):
    """Keeps what a backtest (or a paper session) did, then writes the output folder."""

    def __init__(self) -> None:
        self.orders: list[tuple] = []
        self.executions: list[tuple] = []
        self.positions: dict[str, tuple[int, float, float]] = {}
        self._order_ids: set[str] = set()

    def order(self, u: OrderUpdate, o: Order, ts_ns: int) -> None:
        side = SIDE_NAMES.get(o.side, str(o.side))
        self._order_ids.add(o.cl_ord_id)
        self.orders.append((
            ts_ns, o.cl_ord_id, o.venue, o.symbol, side, o.status.value, o.tif, o.qty,
            "" if o.price is None else _num(o.price), o.cum_qty, o.leaves_qty, _num(o.avg_px),
            u.last_qty, _num(u.last_px), u.exec_id, u.text))
        if u.last_qty and u.exec_id:
            self.executions.append((ts_ns, u.exec_id, o.cl_ord_id, o.venue, o.symbol, side,
                                    u.last_qty, _num(u.last_px)))
            pos = self.positions.get(o.symbol, (0, 0.0, 0.0))
            self.positions[o.symbol] = apply_fill(pos, o.side, u.last_qty, u.last_px)

    @property
    def order_count(self) -> int:
        return len(self._order_ids)

    def write(self, out: Path, marks: dict[str, float], summary: dict) -> dict:
        """Write the folder; return the summary as written (with the P&L figures added)."""
        out.mkdir(parents=True, exist_ok=True)
        _csv(out / "orders.csv", _ORDER_COLUMNS, self.orders)
        _csv(out / "executions.csv", _EXEC_COLUMNS, self.executions)
        rows = []
        realized = unrealized = 0.0
        for symbol in sorted(self.positions):
            q, avg, real = self.positions[symbol]
            mark = marks.get(symbol, 0.0)
            unreal = (mark - avg) * q if q and mark else 0.0
            realized += real
            unrealized += unreal
            rows.append((symbol, q, _num(avg), _num(real), _num(mark), _num(unreal)))
        _csv(out / "positions.csv", _POS_COLUMNS, rows)
        summary = dict(summary, orders=self.order_count, order_updates=len(self.orders),
                       executions=len(self.executions), realized=round(realized, 8),
                       unrealized=round(unrealized, 8))
        (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        return summary


def marks(market, instruments) -> dict[str, float]:
    """Each instrument's mark: the consolidated mid when the book is sound, else the last
    trade (0: none)."""
    out = {}
    for i, ins in enumerate(instruments):
        if market.books.bbo_ok(i):
            bbo = market.books.bbo[i]
            out[ins.symbol] = (int(bbo["bid_px"]) + int(bbo["ask_px"])) / 2 * ins.tick
        else:
            out[ins.symbol] = market.last_trade(i)[0]
    return out


def _csv(path: Path, columns: tuple, rows: list) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)
