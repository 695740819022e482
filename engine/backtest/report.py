"""A backtest's journal and its output folder.

``ReportJournal`` is the kernel's journal in a backtest (and, with ``--report``, in a paper
session): it keeps every order update and execution, whose each order is, and the positions.
``write`` makes the folder. The files are a function of the run's input only (no wall-clock
time, no paths of the machine in them), so two runs of the same days, profile, seed and
intents give byte-identical files::

    orders.csv       one row per order update: ts_ns, cl_ord_id, venue, symbol, side, status,
                     tif, qty, price (empty: market), cum_qty, leaves_qty, avg_px, last_qty,
                     last_px, exec_id, text
    executions.csv   one row per fill: ts_ns, exec_id, cl_ord_id, venue, symbol, side, qty,
                     price, fee (the venue's Commission; a rebate is negative), source (who
                     sent the order: strategy:NAME, desk, ...)
    positions.csv    per instrument traded: symbol, qty, avg_px, realized (net of fees), fees,
                     mark, unrealized (marked to the consolidated mid at the end, else the last
                     trade)
    summary.json     the range, the records replayed, orders, fills, refused intents, P&L

and, for a backtest (``write(..., equity=...)``)::

    equity.csv       one row per sample: ts_ns, time (UTC), equity (realized + unrealized),
                     realized, unrealized, fees (so far), drawdown (equity - its peak, <= 0),
                     then strategy:NAME per strategy (its book's equity)
    trades.csv       round trips per source and instrument (``engine.backtest.metrics``)
    metrics.csv      metric, label, then desk and strategy:NAME columns (the same figures are
                     in summary.json under "metrics" and "strategy_metrics")
    NAME-STEM.csv    each table a strategy's ``report_tables()`` gives (stem -> columns, rows)
    report.html      all of it on one page (``write_html``), the chart as equity.png when the
                     application drew it (the engine draws nothing: it imports no Qt)

With pyarrow installed, equity and trades are also written as Parquet.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from engine.backtest import metrics as M
from engine.core.intents import SIDE_NAMES
from engine.core.positions import apply_fill
from engine.execution.oms import OrderUpdate
from engine.execution.orders import Order
from engine.kernel import Journal

__all__ = ["FILES", "ReportJournal", "marks", "write_html"]

log = logging.getLogger("helmdesk.backtest")

_ORDER_COLUMNS = ("ts_ns", "cl_ord_id", "venue", "symbol", "side", "status", "tif", "qty",
                  "price", "cum_qty", "leaves_qty", "avg_px", "last_qty", "last_px", "exec_id",
                  "text")
_EXEC_COLUMNS = ("ts_ns", "exec_id", "cl_ord_id", "venue", "symbol", "side", "qty", "price",
                 "fee", "source")
_POS_COLUMNS = ("symbol", "qty", "avg_px", "realized", "fees", "mark", "unrealized")
_EQUITY_COLUMNS = ("ts_ns", "time", "equity", "realized", "unrealized", "fees", "drawdown")
_TRADE_COLUMNS = ("source", "symbol", "side", "status", "entry_ns", "entry_time", "exit_ns",
                  "exit_time", "holding_s", "qty", "entry_px", "exit_px", "fills", "fees", "pnl")

#: what each file of the folder holds (report.html's list of files)
FILES = {
    "summary.json": "the run: range, records, settings, P&L and every metric",
    "metrics.csv": "the metrics, for the desk and each strategy",
    "equity.csv": "the equity curve and drawdown, one row per sample",
    "trades.csv": "round trips per strategy and instrument",
    "orders.csv": "every order update",
    "executions.csv": "every fill, with its fee",
    "positions.csv": "positions at the end, marked to the closing mid",
    "equity.parquet": "equity.csv as Parquet (written when pyarrow is installed)",
}

#: metric -> (label, how it reads: money, ratio (shown in %), pct, num, count, seconds)
LABELS = {
    "total_pnl": ("Total P&L", "money"),
    "realized_pnl": ("Realized P&L (net of fees)", "money"),
    "unrealized_pnl": ("Unrealized P&L", "money"),
    "fees": ("Fees", "money"),
    "sharpe": ("Sharpe (annualised)", "num"),
    "sortino": ("Sortino (annualised)", "num"),
    "max_drawdown": ("Max drawdown", "money"),
    "max_drawdown_pct": ("Max drawdown % of capital", "pct"),
    "turnover": ("Turnover (traded notional)", "money"),
    "turnover_on_capital": ("Turnover / capital", "num"),
    "orders": ("Orders", "count"),
    "orders_filled": ("Orders with a fill", "count"),
    "fill_ratio_qty": ("Fill ratio (filled / ordered qty)", "ratio"),
    "fill_ratio_orders": ("Fill ratio (orders with a fill)", "ratio"),
    "fills": ("Fills", "count"),
    "round_trips": ("Round trips (closed)", "count"),
    "round_trips_open": ("Round trips still open", "count"),
    "hit_rate": ("Hit rate (winning round trips)", "ratio"),
    "avg_holding_s": ("Average holding time", "seconds"),
    "samples": ("Equity samples", "count"),
}

#: rows of a strategy's table shown in report.html (the CSV has them all)
HTML_ROWS = 200


def _num(x: float) -> str:
    """A price or an amount as written: nine decimals at most (float noise of sums like
    100.02 - 99.99 goes), the shortest form that reads back exactly."""
    return repr(round(float(x), 9)) if math.isfinite(x) else ""


def _cell(x) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return _num(x)
    return str(x)


def _iso(ns: int | None) -> str:
    if ns is None:
        return ""
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ns // 1000)
    return t.isoformat(timespec="milliseconds") + "Z"


def _json_value(x):
    if isinstance(x, float):
        return round(x, 9) if math.isfinite(x) else None
    return x


class ReportJournal(Journal):
    """Keeps what a backtest (or a paper session) did, then writes the output folder."""

    def __init__(self) -> None:
        #: orders.csv and executions.csv rows, raw (formatted by ``write``)
        self.orders: list[tuple] = []
        self.executions: list[tuple] = []
        self.fills: list[M.Fill] = []
        self.positions: dict[str, tuple[int, float, float]] = {}
        self.fees: dict[str, float] = {}
        #: cl_ord_id -> [source, qty, cum_qty], in the order first seen
        self.order_book: dict[str, list] = {}
        self._sources: dict[str, str] = {}

    def order_tag(self, cl_ord_id: str, source: str, account: str, ts_ns: int) -> None:
        self._sources[cl_ord_id] = source

    def order(self, u: OrderUpdate, o: Order, ts_ns: int) -> None:
        side = SIDE_NAMES.get(o.side, str(o.side))
        rec = self.order_book.get(o.cl_ord_id)
        if rec is None:
            rec = self.order_book[o.cl_ord_id] = [self._sources.get(o.cl_ord_id, ""), o.qty, 0]
        rec[2] = o.cum_qty
        # raw values: formatted when written (``_order_rows``), off the order path
        self.orders.append((
            ts_ns, o.cl_ord_id, o.venue, o.symbol, side, o.status.value, o.tif, o.qty,
            o.price, o.cum_qty, o.leaves_qty, o.avg_px, u.last_qty, u.last_px, u.exec_id,
            u.text))
        if u.last_qty and u.exec_id:
            fee = float(u.fee)
            self.executions.append((ts_ns, u.exec_id, o.cl_ord_id, o.venue, o.symbol, side,
                                    u.last_qty, u.last_px, fee, rec[0]))
            self.fills.append(M.Fill(ts_ns, rec[0], o.symbol, o.side, u.last_qty, u.last_px, fee))
            pos = self.positions.get(o.symbol, (0, 0.0, 0.0))
            self.positions[o.symbol] = apply_fill(pos, o.side, u.last_qty, u.last_px, fee)
            self.fees[o.symbol] = self.fees.get(o.symbol, 0.0) + fee

    def _order_rows(self) -> list[tuple]:
        return [(*r[:8], "" if r[8] is None else _num(r[8]), r[9], r[10], _num(r[11]), r[12],
                 _num(r[13]), *r[14:]) for r in self.orders]

    def _execution_rows(self) -> list[tuple]:
        return [(*r[:7], _num(r[7]), _num(r[8]), r[9]) for r in self.executions]

    @property
    def order_count(self) -> int:
        return len(self.order_book)

    # -- the folder --
    def write(self, out: Path, marks: dict[str, float], summary: dict, *, equity=None,
              tables: dict[str, tuple[Sequence[str], list]] | None = None,
              capital: float | None = None, sample_ms: int = 1000) -> dict:
        """Write the folder; return the summary as written (with the P&L figures added, and
        with ``equity`` — the node's ``EquitySamples`` — the metrics)."""
        out.mkdir(parents=True, exist_ok=True)
        (out / "equity.png").unlink(missing_ok=True)  # a previous run's: drawn again or not
        _csv(out / "orders.csv", _ORDER_COLUMNS, self._order_rows())
        _csv(out / "executions.csv", _EXEC_COLUMNS, self._execution_rows())
        rows = []
        realized = unrealized = 0.0
        for symbol in sorted(self.positions):
            q, avg, real = self.positions[symbol]
            mark = marks.get(symbol, 0.0)
            unreal = (mark - avg) * q if q and mark else 0.0
            realized += real
            unrealized += unreal
            rows.append((symbol, q, _num(avg), _num(real), _num(self.fees.get(symbol, 0.0)),
                         _num(mark), _num(unreal)))
        _csv(out / "positions.csv", _POS_COLUMNS, rows)
        summary = dict(summary, orders=self.order_count, order_updates=len(self.orders),
                       executions=len(self.executions), realized=round(realized, 8),
                       unrealized=round(unrealized, 8),
                       fees=round(math.fsum(self.fees.values()), 8))
        if equity is not None:
            summary = self._write_backtest(out, marks, summary, equity, tables or {}, capital,
                                           sample_ms, realized, unrealized)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        return summary

    def _write_backtest(self, out: Path, marks: dict[str, float], summary: dict, equity,
                        tables: dict, capital: float | None, sample_ms: int, realized: float,
                        unrealized: float) -> dict:
        names = list(equity.strategies)
        rows = equity.rows
        desk = [r[1] + r[2] for r in rows]
        dd = M.drawdowns(desk)
        _csv(out / "equity.csv", _EQUITY_COLUMNS + tuple(f"strategy:{n}" for n in names),
             [(r[0], _iso(r[0]), _num(e), _num(r[1]), _num(r[2]), _num(r[3]), _num(d))
              + tuple(_num(x) for x in r[4:]) for r, e, d in zip(rows, desk, dd)])
        trips = M.round_trips(self.fills, marks)
        _csv(out / "trades.csv", _TRADE_COLUMNS, [
            (t.source, t.symbol, t.side, "open" if t.exit_ns is None else "closed", t.entry_ns,
             _iso(t.entry_ns), _cell(t.exit_ns), _iso(t.exit_ns), _cell(t.holding_s), t.qty,
             _num(t.entry_px), _num(t.exit_px), t.fills, _num(t.fees), _num(t.pnl))
            for t in trips])
        orders = [(q, c) for _s, q, c in self.order_book.values()]
        desk_m = M.summarize(desk, sample_ms=sample_ms, capital=capital, orders=orders,
                             fills=self.fills, trips=trips, realized=realized,
                             unrealized=unrealized)
        per: dict[str, dict] = {}
        for k, n in enumerate(names):
            src = f"strategy:{n}"
            per[n] = M.summarize(
                [r[4 + k] for r in rows], sample_ms=sample_ms, capital=capital,
                orders=[(q, c) for s, q, c in self.order_book.values() if s == src],
                fills=[f for f in self.fills if f.source == src],
                trips=[t for t in trips if t.source == src])
        _csv(out / "metrics.csv",
             ("metric", "label", "desk") + tuple(f"strategy:{n}" for n in names),
             [(m, LABELS[m][0], _cell(desk_m[m])) + tuple(_cell(per[n][m]) for n in names)
              for m in M.NAMES])
        written = []
        for stem, (cols, trows) in tables.items():
            name = f"{_safe(stem)}.csv"
            _csv(out / name, tuple(cols), [tuple(_cell(x) for x in r) for r in trows])
            written.append(name)
        files = ["summary.json", "metrics.csv", "equity.csv", "trades.csv", "orders.csv",
                 "executions.csv", "positions.csv"] + written
        if _parquet(out, "equity", _EQUITY_COLUMNS + tuple(f"strategy:{n}" for n in names),
                    [(r[0], _iso(r[0]), e, r[1], r[2], r[3], d) + tuple(r[4:])
                     for r, e, d in zip(rows, desk, dd)]):
            files.append("equity.parquet")
        return dict(summary, metrics={k: _json_value(v) for k, v in desk_m.items()},
                    strategy_metrics={n: {k: _json_value(v) for k, v in per[n].items()}
                                      for n in names},
                    tables=written, files=files)


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


def _safe(stem: str) -> str:
    """A file stem from a strategy's name and table stem: no path separators."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).lstrip(".") or "table"


def _csv(path: Path, columns: tuple, rows: list) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)


def _parquet(out: Path, stem: str, columns: Sequence[str], rows: list) -> bool:
    """Also write ``stem.parquet`` when pyarrow is installed (it is not a dependency)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    try:
        table = pa.table({c: [r[k] for r in rows] for k, c in enumerate(columns)})
        pq.write_table(table, out / f"{stem}.parquet")
    except Exception as e:  # the CSV is the record; Parquet is a convenience
        log.warning("%s.parquet not written: %s", stem, e)
        return False
    return True


# -- REPORT.HTML --

_CSS = """
:root { color-scheme: dark; }
body { background: #16181c; color: #d8dbe0; font: 14px/1.45 system-ui, -apple-system,
       "Segoe UI", Roboto, sans-serif; margin: 24px 32px; max-width: 1400px; }
h1 { font-size: 20px; font-weight: 600; margin: 0 0 4px; }
h2 { font-size: 16px; font-weight: 600; margin: 28px 0 8px; color: #e8eaee;
     border-bottom: 1px solid #2c3038; padding-bottom: 4px; }
h3 { font-size: 14px; font-weight: 600; margin: 18px 0 6px; }
a { color: #7fb0ff; text-decoration: none; } a:hover { text-decoration: underline; }
.facts { color: #9aa0aa; margin: 0; }
.facts b { color: #d8dbe0; font-weight: 500; }
.note { color: #e0b060; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 4px 0; }
th, td { padding: 3px 12px 3px 8px; border-bottom: 1px solid #262a31; white-space: nowrap; }
th { text-align: left; color: #9aa0aa; font-weight: 500; background: #1c1f24; }
td.n { text-align: right; }
tr:hover td { background: #1e2228; }
.neg { color: #ff7b72; } .pos { color: #7ee787; }
img { border: 1px solid #2c3038; max-width: 100%; height: auto; }
.scroll { overflow-x: auto; }
ul { padding-left: 20px; } li { margin: 2px 0; } .muted { color: #7d8590; }
"""


def _fmt(value: str, kind: str, signed: bool = False) -> tuple[str, str]:
    """(text, css class) of a metric as read from metrics.csv; ``signed``: coloured by its
    sign (P&L)."""
    if value == "":
        return "–", ""
    try:
        x = float(value)
    except ValueError:
        return value, ""
    cls = "neg" if x < 0 else "pos" if x > 0 else ""
    if kind == "money":
        return f"{x:,.2f}", cls if signed else ""
    if kind == "ratio":
        return f"{100 * x:.1f} %", ""
    if kind == "pct":
        return f"{x:.2f} %", ""
    if kind == "count":
        return f"{int(x):,}", ""
    if kind == "seconds":
        return (f"{x:,.1f} s" if x < 120 else f"{x / 60:,.1f} min"), ""
    return f"{x:,.2f}", ""


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return (rows[0], rows[1:]) if rows else ([], [])


def _table(header: Sequence[str], rows, numeric=None) -> list[str]:
    e = html.escape
    out = ["<div class=scroll><table>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header)
           + "</tr>"]
    for r in rows:
        cells = []
        for k, c in enumerate(r):
            c, cls = c if isinstance(c, tuple) else (c, "")
            is_num = _is_number(c) if numeric is None else numeric[k]
            cls = " ".join(x for x in ("n" if is_num else "", cls) if x)
            cells.append(f'<td class="{cls}">{e(c)}</td>' if cls else f"<td>{e(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_html(out: Path, note: str | None = None) -> Path:
    """Write ``report.html`` from the folder's files: the metrics, the chart (``equity.png``
    if it is there, else ``note`` or why not), each strategy table's first ``HTML_ROWS`` rows
    and a link to every file. Self-contained: inline CSS, no script, links relative."""
    e = html.escape
    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    days = summary.get("days") or []
    span = (days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}") if days else ""
    title = f"Backtest {summary.get('profile', '')} {span}".strip()
    p = ['<!doctype html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
         f"<title>{e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
         f"<h1>{e(title)}</h1>"]
    facts = [("from", summary.get("from")), ("to", summary.get("to")),
             ("days", len(days)), ("records", f"{summary.get('records', 0):,}"),
             ("venues", ", ".join(summary.get("venues", []))),
             ("strategies", ", ".join(summary.get("strategies", [])) or "none"),
             ("seed", summary.get("seed")), ("sample", f"{summary.get('sample_ms')} ms"),
             ("capital", summary.get("capital"))]
    p.append('<p class="facts">' + " &nbsp;·&nbsp; ".join(
        f"{e(k)} <b>{e(str(v))}</b>" for k, v in facts if v not in (None, "")) + "</p>")
    for key, what in (("weekdays_not_recorded", "weekdays with no recording"),
                      ("days_without_records", "days without records of the profile's "
                                               "instruments"),
                      ("intents_refused", "intents refused")):
        if summary.get(key):
            p.append(f'<p class="note">{e(what)}: {e("; ".join(summary[key]))}</p>')

    p.append("<h2>Metrics</h2>")
    if (out / "metrics.csv").exists():
        header, rows = _read_csv(out / "metrics.csv")
        body = []
        for r in rows:
            kind = LABELS.get(r[0], ("", "num"))[1]
            signed = r[0] in ("total_pnl", "realized_pnl", "unrealized_pnl")
            body.append([r[1]] + [_fmt(v, kind, signed) for v in r[2:]])
        p += _table(["metric"] + header[2:], body, numeric=[False] + [True] * (len(header) - 2))
    p.append('<p class="muted">Definitions: docs/backtest.md. Sharpe and Sortino are '
             "annualised from per-sample P&amp;L changes (252 days × 6.5 h).</p>")

    p.append("<h2>Equity and drawdown</h2>")
    if (out / "equity.png").exists():
        p.append('<img src="equity.png" alt="desk equity (top) and drawdown (bottom)">')
    else:
        p.append(f'<p class="note">{e(note or "no chart: equity.png was not drawn")}</p>')

    tables = summary.get("tables", [])
    if tables:
        p.append("<h2>Strategy tables</h2>")
    for name in tables:
        path = out / name
        if not path.exists():
            continue
        header, rows = _read_csv(path)
        shown = (f"first {HTML_ROWS} of {len(rows):,} rows" if len(rows) > HTML_ROWS else
                 "1 row" if len(rows) == 1 else f"{len(rows):,} rows")
        p.append(f'<h3><a href="{e(name)}">{e(name)}</a> <span class="muted">({shown})'
                 "</span></h3>")
        p += _table(header, rows[:HTML_ROWS])

    p.append("<h2>Files</h2>")
    p.append("<ul>")
    for name in summary.get("files", []):
        what = FILES.get(name, "a strategy's table" if name.endswith(".csv") else "")
        p.append(f'<li><a href="{e(name)}">{e(name)}</a> <span class="muted">{e(what)}'
                 "</span></li>")
    if (out / "equity.png").exists():
        p.append('<li><a href="equity.png">equity.png</a> <span class="muted">the chart'
                 "</span></li>")
    p += ["</ul>", "</body>", "</html>", ""]
    path = out / "report.html"
    path.write_text("\n".join(p), encoding="utf-8")
    return path
