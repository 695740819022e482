"""The pairs strategy end to end on a real kernel with three in-process venues
(tests/risk/_desk.py): formation, entry and exit through the router, stops, legging (a hedge
refused by risk, a hedge the book cannot fill), refusals, kill switches, determinism."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from engine.core.records import KillState, Scope
from engine.strategy import pairs_kernel as K
from engine.strategy.host import StrategyState
from engine.strategy.pairs import PairsConfig, PairsStrategy
from tests.risk._desk import Desk

BASE = dict(pairs=(("AAA", "BBB"),), formation_s=2.0, sample_ms=100, entry_z=2.0,
            exit_z=0.5, stop_z=6.0, notional=10_000.0, cooldown_s=1.0, max_hold_s=0.0)


class Run:
    """A desk with one pairs strategy; ``notes`` collects what the desks were told."""

    def __init__(self, limits=None, **params):
        self.s = PairsStrategy(PairsConfig(**{**BASE, **params}), "pairs")
        self.d = Desk({"duplicate_window_ms": 0, **(limits or {})}, strategies=[self.s])
        self.notes: list[tuple[int, str]] = []
        self.d.kernel.publisher.notice = (
            lambda kind, level, text, inst, ts: self.notes.append((level, text)))

    def form(self, n=20):
        """BBB on a slow wave, AAA = 2 BBB ± 0.05 in turn: β 2, a spread sd of 0.05."""
        for k in range(n + 1):
            self.x = round(50 + 0.5 * math.sin(k / 3), 2)
            self.d.quote("BBB", self.x)
            self.d.quote("AAA", 2 * self.x + (0.05 if k % 2 else -0.05))
            self.d.run(0.1)
        assert self.s.formations == 1 and len(self.s.pairs) == 1

    def spread(self, off, seconds=0.05, **kw):
        """AAA at 2 BBB + ``off``."""
        self.d.quote("AAA", 2 * self.x + off, **kw)
        self.d.run(seconds)

    def sizes(self, off):
        """(qa, qb) of an entry at AAA = 2 BBB + ``off``: 10,000 of each leg, whole units."""
        return (math.floor(10_000 / (2 * self.x + off) + 0.5), math.floor(10_000 / self.x + 0.5))

    def pos(self, symbol):
        """The strategy's own books, checked against the risk engine's book of it."""
        mine = self.s.position(symbol)
        assert mine == self.d.risk.strategy_position("pairs", symbol)
        return mine

    @property
    def fig(self):
        return self.s.figures()

    def told(self, word):
        return [t for _lvl, t in self.notes if word in t]


@pytest.mark.parametrize("hedge", ["kalman", "ols"])
def test_a_round_trip_short_the_spread_then_back_to_the_mean(hedge):
    r = Run(hedge=hedge, window=20)
    r.form()
    z0 = r.s.sf[0, K.F_Z]
    r.d.quote("BBB", r.x, size=40)  # BBB thin: the router splits the hedge over the venues
    r.spread(0.18)
    label, z, beta, spread, position = r.s.signals(5)[0]
    assert label == "AAA/BBB" and 2 <= z < 6 and abs(z) > abs(z0)
    assert beta == pytest.approx(2.0, abs=0.1) and spread == pytest.approx(0.18, abs=0.05)
    assert r.fig["entries"] == 1 and r.fig["open"] == 1
    qa, qb = r.sizes(0.18)
    assert (r.pos("AAA"), r.pos("BBB")) == (-qa, qb)  # short AAA, long BBB: 10,000 each
    assert position == -qa
    parents = [o for o in r.s._orders.values() if o.leg.symbol == "BBB"]
    assert len(parents) == 1  # one parent, children on several venues, all attributed
    r.spread(0.0)
    assert r.fig["exits"] == 1 and r.fig["open"] == 0
    assert (r.pos("AAA"), r.pos("BBB")) == (0, 0)
    assert r.fig["realized"] > 0
    (row,) = r.s.report_tables()["pairs"][1]
    cols = r.s.report_tables()["pairs"][0]
    got = dict(zip(cols, row))
    assert (got["pair"], got["trades"], got["wins"], got["hit_rate"]) == ("AAA/BBB", 1, 1, 1.0)
    assert got["realized"] == r.fig["realized"] and got["legging"] == 0
    assert r.fig["legging"] == 0 and r.fig["refused"] == 0 and r.s.counts["unattributed"] == 0
    assert r.told("trading 1 pairs after a 2 s formation: AAA/BBB")


def test_a_stop_and_a_time_stop_close_the_position():
    r = Run(stop_z=4.0)
    r.form()
    r.spread(-0.18)  # long the spread: buy AAA, sell BBB
    qa, qb = r.sizes(-0.18)
    assert (r.pos("AAA"), r.pos("BBB")) == (qa, -qb)
    r.spread(-0.4)  # blows out past the stop
    assert r.fig["stops"] == 1 and r.fig["open"] == 0 and r.fig["realized"] < 0
    assert (r.pos("AAA"), r.pos("BBB")) == (0, 0)
    r.spread(-0.18, seconds=0.5)  # inside the 1 s cooldown: no new entry
    assert r.fig["entries"] == 1
    r2 = Run(max_hold_s=0.3)
    r2.form()
    r2.spread(-0.18)
    assert r2.fig["open"] == 1
    for _ in range(3):  # the spread stays put; each tick asks again
        r2.spread(-0.17, seconds=0.1)
        r2.spread(-0.18, seconds=0.1)
    assert r2.fig["stops"] == 1 and r2.s.counts["time_stops"] == 1 and r2.fig["open"] == 0


def test_a_hedge_refused_by_risk_is_retried_then_the_first_leg_unwound():
    r = Run({"instrument": {"BBB": {"max_order_qty": 50}}})
    r.form()
    r.spread(0.18, seconds=0.01)
    qa, qb = r.sizes(0.18)
    assert r.fig["entries"] == 1 and r.fig["refused"] == 1
    assert r.pos("AAA") == -qa and r.pos("BBB") == 0  # legged
    assert r.told("legging on enter")
    r.d.run(0.5)
    assert r.fig["refused"] == 1  # the retry waits (2000 ms / 3): no storm
    r.d.run(2.0)
    assert r.fig["refused"] == 3  # the first try and two retries, all refused
    assert r.fig["legging"] == 1 and r.told("unwinding the excess to 0 AAA, 0 BBB")
    assert (r.pos("AAA"), r.pos("BBB")) == (0, 0)  # the sold AAA bought back
    assert r.fig["open"] == 0 and r.s.pairs[0].job is None
    assert r.s.si[0, K.I_BUSY] == 0 and r.s.si[0, K.I_STATE] == 0
    (row,) = r.s.report_tables()["pairs"][1]
    assert row[2:4] == (1, 0)  # a trade, lost (the spread paid twice)
    refusals = r.told(f"BBB buy {qb} refused")
    assert len(refusals) == 3 and all("over max_order_qty 50" in t for t in refusals)


def test_a_hedge_the_book_cannot_fill_is_retried_then_the_excess_unwound():
    r = Run(slippage_ticks=1)
    r.form()
    r.d.quote("BBB", r.x, size=2)  # two lots a level: the IOC hedge fills in part
    r.spread(0.18, seconds=3.0)
    a, b = r.pos("AAA"), r.pos("BBB")
    assert r.fig["legging"] == 1 and r.told("legging on enter")
    qa, qb = r.sizes(0.18)
    assert 0 < b < qb  # some hedge filled, not all
    assert a == -math.floor(qa * b / qb + 0.5)  # AAA cut to the hedge's fraction
    assert r.told(f"unwinding the excess to {a} AAA, {b} BBB")
    assert r.told(f"AAA/BBB hedged again: holds AAA {a:+d}, BBB {b:+d}")
    assert r.s.pairs[0].job is None and r.s.si[0, K.I_STATE] == -1  # hedged, smaller
    assert r.fig["open"] == 1
    r.d.quote("BBB", r.x, size=1000)
    r.spread(0.0)
    assert (r.pos("AAA"), r.pos("BBB")) == (0, 0) and r.fig["exits"] == 1


def test_a_reducing_switch_lets_exits_through_but_no_entry():
    r = Run()
    r.form()
    r.spread(0.18)
    assert r.fig["open"] == 1
    row = r.d.risk.table.row(Scope.STRATEGY, 0)
    r.d.risk.trip(row, KillState.REDUCING, "rita", "wind down", r.d.t)
    r.spread(0.0)  # the exit reduces: it passes
    assert r.fig["exits"] == 1 and (r.pos("AAA"), r.pos("BBB")) == (0, 0)
    r.d.run(1.0)  # past the cooldown
    r.spread(0.18)  # an entry adds: refused
    assert r.fig["entries"] == 1 and r.fig["refused"] == 1 and r.fig["open"] == 0
    assert "is REDUCING" in r.told("refused")[-1]
    for _ in range(5):  # the signal stays; the pair backs off for its cooldown
        r.spread(0.17, seconds=0.05)
        r.spread(0.18, seconds=0.05)
    assert r.fig["refused"] == 1
    r.d.run(1.0)
    r.spread(0.17)
    assert r.fig["refused"] == 2 and r.s.counts["orders"] == 4  # asked again once, refused


def test_halted_means_no_callbacks_until_rearmed():
    r = Run()
    r.form()
    host = r.d.kernel.strategies
    row = r.d.risk.table.row(Scope.STRATEGY, 0)
    r.d.risk.trip(row, KillState.HALTED, "rita", "stop", r.d.t)
    assert host.state("pairs") is StrategyState.HALTED
    ticks = int(r.s.si[0, K.I_TICKS])
    r.spread(0.18)
    r.spread(0.0)
    assert int(r.s.si[0, K.I_TICKS]) == ticks and r.fig["entries"] == 0
    assert r.s.counts["orders"] == 0
    r.d.risk.trip(row, KillState.ACTIVE, "rita", "fine", r.d.t)
    assert host.state("pairs") is StrategyState.RUNNING
    r.spread(0.18)
    assert int(r.s.si[0, K.I_TICKS]) > ticks and r.fig["entries"] == 1


def test_auto_selection_picks_the_pair_and_writes_its_csv(tmp_path):
    out = tmp_path / "selection.csv"
    r = Run(pairs=None, formation_s=8.0, p_value=0.05, min_corr=0.0,
            selection_out=str(out))
    rng = np.random.default_rng(4)
    x, c = 50.0, 5000.0
    for _k in range(81):
        x = round(x + rng.normal(0, 0.05), 2)
        c = round((c + rng.normal(0, 1.0)) * 4) / 4
        r.d.quote("BBB", x)
        r.d.quote("AAA", round(2 * x + rng.normal(0, 0.03), 2))
        r.d.quote("CCC", c)
        r.d.run(0.1)
    assert r.s.formations == 1
    (sel,) = r.s.selection
    assert {sel.a, sel.b} == {"AAA", "BBB"} and sel.p_value < 0.05 and sel.n == 80
    rows = list(csv.reader(out.open()))
    assert rows[0][:3] == ["a", "b", "beta"] and rows[1][:2] == [sel.a, sel.b]
    cols, table = r.s.report_tables()["selection"]
    assert cols[0:2] == ("a", "b") and table[0][0:2] == (sel.a, sel.b)
    assert r.fig["pairs"] == 1


def _orders(run):
    return [(o.symbol, o.side, o.qty, o.price, o.venue)
            for o in run.d.kernel.execution.oms.orders.values()]


def test_the_same_market_gives_the_same_orders():
    def session():
        r = Run({"instrument": {"BBB": {"max_order_qty": 150}}})
        r.form()
        for off in (0.18, 0.0, -0.2, 0.02, 0.19):
            r.spread(off, seconds=0.7)
        r.d.run(3)
        return r
    a, b = session(), session()
    assert _orders(a) and _orders(a) == _orders(b)
    assert a.s.figures() == b.s.figures() and a.fig["legging"] >= 1


def test_a_day_hedge_still_working_at_the_deadline_is_cancelled_and_the_excess_unwound():
    r = Run(tif="day", leg_timeout_ms=300)
    r.form()
    r.d.quote("BBB", r.x, size=2)  # the hedge fills 12 and rests the rest at its limit
    r.spread(0.18, seconds=0.1)
    qa, qb = r.sizes(0.18)
    (working,) = r.d.working().values()
    assert working.symbol == "BBB" and working.tif == "day"
    assert r.s.pairs[0].job == "enter" and r.fig["legging"] == 0  # not late yet
    r.d.run(1.0)
    assert not r.d.working()  # cancelled at the deadline
    a, b = r.pos("AAA"), r.pos("BBB")
    assert 0 < b < qb and a == -math.floor(qa * b / qb + 0.5)
    assert r.fig["legging"] == 1 and r.s.pairs[0].job is None and r.fig["open"] == 1
