"""The backtest report: metrics against hand-computed values, the folder a run with a strategy
writes (equity, round trips, the strategy's tables, metrics), the chart and report.html."""

from __future__ import annotations

import csv
import json
import math
import struct
from pathlib import Path

import pytest

from engine.backtest import metrics as M
from engine.backtest.node import BacktestNode
from engine.backtest.report import write_html
from engine.backtest.synth import simulate_day
from engine.core.intents import BUY, SELL, OrderIntent
from engine.core.profile import load_profile
from engine.strategy.api import NEVER, Strategy
from tests.backtest.test_backtest import DAY, PROFILE

DAY2 = "2026-11-24"
YEAR_1S = 252 * 6.5 * 3600  # one-second samples in the trading year


# -- metrics, by hand ------------------------------------------------------------------------


EQUITY = [0.0, 10.0, 5.0, 15.0, 12.0]
# returns 10, -5, 10, -3: mean 3; squared deviations 49 + 64 + 49 + 36 = 198, / 3 = 66
# downside: (25 + 9) / 4 = 8.5; peaks 0, 10, 10, 15, 15: drawdowns 0, 0, -5, 0, -3


def test_returns_and_drawdowns():
    assert M.returns(EQUITY) == [10.0, -5.0, 10.0, -3.0]
    assert M.returns(EQUITY, capital=1000.0) == [0.01, -0.005, 0.01, -0.003]
    assert M.drawdowns(EQUITY) == [0.0, 0.0, -5.0, 0.0, -3.0]
    assert M.drawdowns([-2.0, -1.0, -4.0]) == [-2.0, -1.0, -4.0]  # the peak starts at 0


def test_sharpe_and_sortino_by_hand():
    r = M.returns(EQUITY)
    assert M.sharpe(r, 1.0) == pytest.approx(3 / math.sqrt(66))
    assert M.sortino(r, 1.0) == pytest.approx(3 / math.sqrt(8.5))
    # annualised: one-second samples, 252 days of 6.5 h
    assert M.periods_per_year(1000) == YEAR_1S
    assert M.periods_per_year(250) == 4 * YEAR_1S
    assert M.sharpe(r, M.periods_per_year(1000)) == pytest.approx(
        3 / math.sqrt(66) * math.sqrt(YEAR_1S))
    # a capital scales every return alike: the ratios do not move
    assert M.sharpe(M.returns(EQUITY, 500.0), 1.0) == pytest.approx(3 / math.sqrt(66))
    # undefined: too few returns, no variation, no losing sample
    assert M.sharpe([1.0], 1.0) is None and M.sharpe([2.0, 2.0], 1.0) is None
    assert M.sortino([1.0, 2.0], 1.0) is None


def test_max_drawdown_in_currency_and_percent_of_capital():
    assert M.max_drawdown(EQUITY) == (5.0, None)
    dd, pct = M.max_drawdown(EQUITY, capital=100.0)
    assert dd == 5.0
    assert pct == pytest.approx(100 * max(5 / 110, 3 / 115))
    assert M.max_drawdown([0.0, -4.0, 1.0])[0] == 4.0


def test_fill_ratios():
    assert M.fill_ratios([(100, 100), (200, 0), (100, 30)]) == (130 / 400, 2 / 3)
    assert M.fill_ratios([]) == (None, None)


def _fills():
    s = 1_000_000_000
    return [
        M.Fill(1 * s, "strategy:a", "X", BUY, 100, 10.00, 1.0),
        M.Fill(3 * s, "strategy:a", "X", SELL, 100, 10.50, 1.0),  # closes: +50 - 2 fees
        M.Fill(4 * s, "strategy:a", "X", SELL, 50, 10.40, 0.5),  # a short opens
        M.Fill(6 * s, "strategy:a", "X", BUY, 80, 10.60, 0.8),  # closes 50 (-10), opens 30
        M.Fill(7 * s, "strategy:b", "X", BUY, 10, 10.00, 0.0),  # another source: its own trip
    ]


def test_round_trips_hit_rate_and_holding_time_by_hand():
    trips = M.round_trips(_fills(), marks={"X": 10.70})
    assert [(t.source, t.side, t.exit_ns is not None) for t in trips] == [
        ("strategy:a", "long", True), ("strategy:a", "short", True),
        ("strategy:a", "long", False), ("strategy:b", "long", False)]
    a, b, c, d = trips
    assert a.pnl == pytest.approx(48.0) and a.holding_s == 2.0 and a.qty == 100
    assert (a.entry_px, a.exit_px, a.fills, a.fees) == (10.0, 10.5, 2, 2.0)
    # the short: -10 on 50, its own fee 0.5 and 50/80 of the closing fill's 0.8
    assert b.pnl == pytest.approx(-11.0) and b.fees == pytest.approx(1.0)
    assert b.holding_s == 2.0 and b.entry_px == 10.4 and b.exit_px == 10.6
    # the rest of that fill opens a long of 30: 30/80 of the fee, marked at 10.70
    assert c.pnl == pytest.approx(-0.3 + 0.1 * 30) and c.qty == 30 and c.holding_s is None
    assert d.pnl == pytest.approx(7.0)
    assert M.hit_rate(trips) == 0.5  # 1 of the 2 closed trips won; open ones do not count
    m = M.summarize(EQUITY, sample_ms=1000, capital=1000.0,
                    orders=[(100, 100), (100, 100), (50, 50), (80, 80), (10, 10), (40, 0)],
                    fills=_fills(), trips=trips, realized=30.0, unrealized=3.5)
    assert m["total_pnl"] == 33.5 and m["fees"] == pytest.approx(3.3)
    assert m["round_trips"] == 2 and m["round_trips_open"] == 2 and m["hit_rate"] == 0.5
    assert m["avg_holding_s"] == 2.0 and m["fills"] == 5 and m["samples"] == 5
    assert m["turnover"] == pytest.approx(1000 + 1050 + 520 + 848 + 100)
    assert m["turnover_on_capital"] == pytest.approx(m["turnover"] / 1000)
    assert m["fill_ratio_qty"] == pytest.approx(340 / 380)
    assert m["fill_ratio_orders"] == pytest.approx(5 / 6) and m["orders_filled"] == 5
    assert m["max_drawdown"] == 5.0 and m["max_drawdown_pct"] == pytest.approx(100 * 5 / 1010)
    assert list(m) == list(M.NAMES)


# -- a run with a strategy -------------------------------------------------------------------


class Flipper(Strategy):
    """Market orders at fixed times after its start: buy, sell, sell, buy (a long round trip,
    then a short one); a table of its legs for the report; a seed it is given."""

    kind = "testflip"

    def __init__(self, name: str = "flip") -> None:
        super().__init__(name)
        self.seed = 0
        self.legs: list[tuple] = []
        self.plan: list[tuple[int, int]] = []

    @classmethod
    def from_config(cls, config, profile) -> Flipper:
        return cls(config.name)

    def on_start(self, ctx, now_ns: int) -> None:
        s = 1_000_000_000
        self.plan = [(now_ns + k * s // 2, side) for k, side in
                     ((3, BUY), (5, SELL), (7, SELL), (9, BUY))][::-1]

    def next_timer_ns(self) -> int:
        return self.plan[-1][0] if self.plan else NEVER

    def on_timer(self, ctx, now_ns: int) -> None:
        while self.plan and self.plan[-1][0] <= now_ns:
            _t, side = self.plan.pop()
            r = ctx.submit(OrderIntent(symbol="AAA", side=side, qty=100, venue="SIMA",
                                       tif="ioc"), now_ns)
            self.legs.append((len(self.legs) + 1, "buy" if side == BUY else "sell",
                              r if isinstance(r, str) else "sent"))

    def report_tables(self):
        return {"legs": (("leg", "side", "result"), list(self.legs)),
                "about": (("seed", "ratio"), [(self.seed, 0.5)])}


@pytest.fixture(scope="module")
def two_days(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("bt2")
    prof = d / "bt.toml"
    prof.write_text(PROFILE)
    root = d / "ticks"
    simulate_day(load_profile(prof), root, DAY, 6.0)
    simulate_day(load_profile(prof), root, DAY2, 6.0)
    return prof, root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def flip_run(two_days, tmp_path_factory):
    prof, root = two_days
    out = tmp_path_factory.mktemp("flip") / "out"
    flip = Flipper()
    node = BacktestNode(load_profile(prof), out=out, start=DAY, end=DAY2, ticks_dir=root,
                        strategies=[flip], seed=42, capital=100_000.0, progress=False)
    return node.run(), flip, out


def test_a_strategy_run_writes_equity_trades_tables_and_metrics(flip_run):
    result, flip, out = flip_run
    s = result.summary
    assert flip.seed == 42 and s["seed"] == 42 and s["capital"] == 100_000.0
    assert s["strategies"] == ["flip"] and s["days"] == [DAY, DAY2]
    assert [leg[2] for leg in flip.legs] == ["sent"] * 4
    for name in ("equity.csv", "trades.csv", "metrics.csv", "flip-legs.csv", "flip-about.csv",
                 "report.html"):
        assert (out / name).exists(), name
    assert s["tables"] == ["flip-about.csv", "flip-legs.csv"]
    assert _rows(out / "flip-about.csv") == [{"seed": "42", "ratio": "0.5"}]
    assert [r["side"] for r in _rows(out / "flip-legs.csv")] == ["buy", "sell", "sell", "buy"]

    eq = _rows(out / "equity.csv")
    assert list(eq[0]) == ["ts_ns", "time", "equity", "realized", "unrealized", "fees",
                           "drawdown", "strategy:flip"]
    ts = [int(r["ts_ns"]) for r in eq]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    # one sample a second on both days, none in the night between them
    days = {r["time"][:10] for r in eq}
    assert days == {DAY, DAY2}
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    assert sum(g > 10e9 for g in gaps) == 1 and all(g <= 1_000_000_000 for g in gaps if g < 10e9)
    for r in eq:
        e = float(r["equity"])
        assert e == pytest.approx(float(r["realized"]) + float(r["unrealized"]), abs=1e-6)
        assert float(r["drawdown"]) <= 0
        assert float(r["strategy:flip"]) == pytest.approx(e, abs=1e-6)  # it is the only one
    # the last row is the end of the run, marked as positions.csv is
    assert float(eq[-1]["equity"]) == pytest.approx(s["realized"] + s["unrealized"], abs=1e-6)
    assert float(eq[-1]["realized"]) == pytest.approx(s["realized"], abs=1e-6)

    trips = _rows(out / "trades.csv")
    assert [(t["source"], t["symbol"], t["side"], t["status"], t["qty"]) for t in trips] == [
        ("strategy:flip", "AAA", "long", "closed", "100"),
        ("strategy:flip", "AAA", "short", "closed", "100")]
    assert all(float(t["holding_s"]) == pytest.approx(1.0, abs=0.01) for t in trips)
    fills = _rows(out / "executions.csv")
    assert sum(float(t["pnl"]) for t in trips) == pytest.approx(s["realized"], abs=1e-6)
    assert sum(float(t["fees"]) for t in trips) == pytest.approx(
        sum(float(f["fee"]) for f in fills), abs=1e-9)

    m = s["metrics"]
    assert m["orders"] == 4 and m["fill_ratio_qty"] == 1.0 and m["fill_ratio_orders"] == 1.0
    assert m["round_trips"] == 2 and m["round_trips_open"] == 0
    assert m["hit_rate"] == sum(float(t["pnl"]) > 0 for t in trips) / 2
    assert m["avg_holding_s"] == pytest.approx(1.0, abs=0.01)
    assert m["turnover"] == pytest.approx(sum(int(f["qty"]) * float(f["price"]) for f in fills))
    assert m["turnover_on_capital"] == pytest.approx(m["turnover"] / 100_000)
    assert m["fees"] == pytest.approx(s["fees"]) and m["fees"] > 0
    assert m["samples"] == len(eq)
    equity = [float(r["equity"]) for r in eq]
    assert m["max_drawdown"] == pytest.approx(-min(float(r["drawdown"]) for r in eq))
    want = M.sharpe(M.returns(equity), M.periods_per_year(1000))
    assert (m["sharpe"] is None and want is None) or m["sharpe"] == pytest.approx(want, rel=1e-6)
    assert s["strategy_metrics"]["flip"]["orders"] == 4

    table = _rows(out / "metrics.csv")
    assert [r["metric"] for r in table] == list(M.NAMES)
    assert list(table[0]) == ["metric", "label", "desk", "strategy:flip"]
    by = {r["metric"]: r for r in table}
    assert by["total_pnl"]["label"] == "Total P&L"
    assert float(by["total_pnl"]["desk"]) == pytest.approx(m["total_pnl"])
    assert by["orders"]["strategy:flip"] == "4"


def test_report_html_is_self_contained_and_names_every_file(flip_run):
    _result, _flip, out = flip_run
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert str(out) not in page  # nothing of this machine: links are relative
    for name in ("metrics.csv", "equity.csv", "trades.csv", "orders.csv", "executions.csv",
                 "positions.csv", "summary.json", "flip-legs.csv", "flip-about.csv"):
        assert f'href="{name}"' in page, name
    assert "Total P&amp;L" in page and "Sharpe (annualised)" in page and "strategy:flip" in page
    assert "<img" not in page  # nobody drew equity.png here: the page says so instead
    assert "no chart: equity.png was not drawn" in page


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_chart_is_a_png_of_the_expected_size_and_the_page_shows_it(flip_run, qapp,
                                                                        tmp_path):
    from app.reportchart import HEIGHT, WIDTH, render

    _result, _flip, out = flip_run
    path = render(out)
    assert path == out / "equity.png" and _png_size(path) == (WIDTH, HEIGHT)
    write_html(out)
    page = (out / "report.html").read_text()
    assert '<img src="equity.png"' in page and 'href="equity.png"' in page
    # a small one, and one of a run with no samples: both drawn
    render(out, width=640, height=400)
    assert _png_size(out / "equity.png") == (640, 400)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "equity.csv").write_text("ts_ns,time,equity,realized,unrealized,fees,drawdown\n")
    assert _png_size(render(empty)) == (WIDTH, HEIGHT)


def test_the_chart_says_why_not(tmp_path, qapp):
    from app.reportchart import render_or_why

    why = render_or_why(tmp_path)
    assert why is not None and "equity.csv" in why and not (tmp_path / "equity.png").exists()
    (tmp_path / "equity.csv").write_text("a,b\n1,2\n")
    assert "not an equity file" in render_or_why(tmp_path)


def test_a_table_stem_cannot_leave_the_folder(two_days, tmp_path):
    class Sneaky(Strategy):
        def report_tables(self):
            return {"../../escape": (("a",), [(1,)])}

    prof, root = two_days
    out = tmp_path / "out"
    s = BacktestNode(load_profile(prof), DAY, out=out, ticks_dir=root,
                     strategies=[Sneaky("sneaky")], progress=False).run().summary
    assert s["tables"] == ["sneaky-.._.._escape.csv"]
    assert (out / "sneaky-.._.._escape.csv").exists()
    assert not (tmp_path / "escape.csv").exists()
    assert json.loads((out / "summary.json").read_text())["tables"] == s["tables"]
