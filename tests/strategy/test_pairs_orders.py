"""How the pairs strategy knows its fills: router parents and their children by ClOrdID, a
child the router adds later (a re-route), and a parent's total when a report was missed.
Real router parents and order updates, a BookSet set by hand, no kernel."""

from __future__ import annotations

import numpy as np
import pytest

from engine.execution.oms import OrderUpdate
from engine.execution.orders import Order, OrdStatus
from engine.execution.router import ChildOrder, ParentOrder, ParentStatus
from engine.strategy.api import StrategyContext
from engine.strategy.pairs import PairsConfig, PairsStrategy
from tests.strategy._pairs_market import TwoBooks


class Harness:
    def __init__(self):
        self.market = TwoBooks()
        self.now = 1_000_000_000
        self.sent: list[ParentOrder] = []
        self.ctx = StrategyContext("pairs", self.market, self._submit, lambda c, n: None,
                                   lambda lvl, text, i: None, lambda: self.now)
        self.s = PairsStrategy(PairsConfig(pairs=(("AAA", "BBB"),), formation_s=2.0,
                                           notional=10_000.0, stop_z=100.0), "pairs")
        self.s.on_start(self.ctx, self.now)
        for k in range(20):
            x = 50 + 0.5 * np.sin(k / 3)
            self.market.quote(1, x)
            self.market.quote(0, 2 * x + (0.05 if k % 2 else -0.05))
            self.now = self.s.next_timer_ns()
            self.s.on_timer(self.ctx, self.now)
        assert self.s.pairs

    def _submit(self, intent, now, source):
        pid = f"P{len(self.sent) + 1}"
        p = ParentOrder(pid, intent.symbol, intent.side, intent.qty, intent.price, intent.tif,
                        now)
        p.children.append(ChildOrder(f"{pid}-1", "SIMA", intent.qty, intent.price, "ioc", 0,
                                     "test"))
        self.sent.append(p)
        return p

    def diverge(self):
        self.now += 200_000_000
        x = self.market.books.bbo["bid_px"][1] * 0.01 + 0.01
        self.market.quote(0, round(2 * x + 0.3, 2))
        self.s.on_book(self.ctx, np.array([0]), self.now)
        return self.sent

    def report(self, parent, cl, qty=0, px=0.0, fee=0.0, leaves=0, status=OrdStatus.FILLED):
        u = OrderUpdate(cl, "SIMA", parent.symbol, status, qty, leaves, last_qty=qty,
                        last_px=px, fee=fee)
        o = Order(cl, parent.symbol, parent.side, parent.qty, parent.limit_px, "SIMA")
        self.s.on_order(self.ctx, u, o)


def test_fills_of_a_parents_children_are_the_legs_even_a_child_added_later():
    h = Harness()
    a, b = h.diverge()
    assert (a.symbol, a.side, b.symbol, b.side) == ("AAA", 2, "BBB", 1)  # short the spread
    h.report(a, "P1-1", a.qty, 101.0, fee=0.5)
    # the router re-routed part of B: a second child the strategy never saw at submit
    b.children.append(ChildOrder("P2-2", "SIMB", 50, b.limit_px, "ioc", 1, "re-route"))
    h.report(b, "P2-1", b.qty - 50, 50.5, leaves=0)
    h.report(b, "P2-2", 50, 50.52, fee=0.25)
    assert h.s.position("AAA") == -a.qty and h.s.position("BBB") == b.qty
    a.status = b.status = ParentStatus.DONE
    a.cum_qty, b.cum_qty = a.qty, b.qty
    h.s.on_timer(h.ctx, h.now)
    pair = h.s.pairs[0]
    assert pair.job is None and h.s.si[0, 0] == -1  # entered, short
    assert pair.fees == pytest.approx(0.75) and h.s.counts["unattributed"] == 0
    assert h.s.figures()["realized"] == pytest.approx(-0.75)  # fees only, so far


def test_a_parent_total_beyond_the_fills_heard_is_booked_at_its_price():
    h = Harness()
    a, b = h.diverge()
    h.report(a, "P1-1", a.qty, 101.0)
    h.report(b, "P2-1", 100, 50.5)  # a report for the other 98 never reached us
    a.status = b.status = ParentStatus.DONE
    a.cum_qty, a.notional = a.qty, a.qty * 101.0
    b.cum_qty, b.notional = b.qty, 100 * 50.5 + (b.qty - 100) * 50.6
    h.s.on_timer(h.ctx, h.now)
    assert h.s.position("BBB") == b.qty
    assert h.s.counts["unattributed"] == b.qty - 100
    leg = h.s.pairs[0].legs[1]
    assert leg.pos[1] == pytest.approx(b.notional / b.qty)  # its average price
    assert h.s.pairs[0].job is None


def test_other_orders_are_ignored():
    h = Harness()
    a, _b = h.diverge()
    h.report(a, "SOMEONE-ELSES", 10, 99.0)
    assert h.s.position("AAA") == 0 and h.s.counts["unattributed"] == 0
