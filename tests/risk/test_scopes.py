"""Kill switches of every scope: each cancels exactly the working orders in its scope; REDUCING
lets reducing orders through and stops adding ones; automatic trips; P&L by hand; flattening."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.core.records import KillState, Scope
from engine.risk.portfolio import Portfolio
from engine.strategy.api import Strategy
from tests.risk._desk import Desk

H, R, A = KillState.HALTED, KillState.REDUCING, KillState.ACTIVE


def _book(d: Desk) -> dict[str, object]:
    """One resting order in each of several scopes; name -> order."""
    return {
        "alice_AAA_SIMA": d.order("AAA", "buy", 1, 99.0, venue="SIMA"),
        "alice_BBB_SIMB": d.order("BBB", "buy", 1, 49.0, venue="SIMB"),
        "s1_AAA_SIMB": d.order("AAA", "buy", 1, 98.9, venue="SIMB", source="strategy:s1"),
        "s2_CCC_SIMC": d.order("CCC", "sell", 1, 5010.0, venue="SIMC", source="strategy:s2"),
        "acc2_BBB_SIMA": d.order("BBB", "sell", 1, 51.0, venue="SIMA", account="acc2"),
        "bob_CCC_SIMA": d.order("CCC", "buy", 1, 4990.0, venue="SIMA", source="manual:bob"),
    }


SCOPES = [
    ((Scope.GLOBAL, "global"), set("alice_AAA_SIMA alice_BBB_SIMB s1_AAA_SIMB s2_CCC_SIMC "
                                   "acc2_BBB_SIMA bob_CCC_SIMA".split())),
    ((Scope.INSTRUMENT, "AAA"), {"alice_AAA_SIMA", "s1_AAA_SIMB"}),
    ((Scope.STRATEGY, "s1"), {"s1_AAA_SIMB"}),
    ((Scope.VENUE, "SIMA"), {"alice_AAA_SIMA", "acc2_BBB_SIMA", "bob_CCC_SIMA"}),
    ((Scope.ACCOUNT, "acc2"), {"acc2_BBB_SIMA"}),
    ((Scope.TRADER, "bob"), {"bob_CCC_SIMA"}),
]


def _desk() -> Desk:
    return Desk({"strategy": {"s1": {}, "s2": {}}, "account": {"acc2": {}},
                 "duplicate_window_ms": 0},
                users={"alice": "trader", "bob": "trader", "rita": "risk_manager"})


@pytest.mark.parametrize("scope, expect", SCOPES, ids=[s[0][1] for s in SCOPES])
def test_halted_cancels_exactly_the_orders_in_scope(scope, expect):
    d = _desk()
    orders = _book(d)
    assert all(not isinstance(o, str) for o in orders.values()), orders
    d.run(0.01)
    assert len(d.working()) == 6
    kind, name = scope
    sid = 0 if kind == Scope.GLOBAL else d.risk.table.ids[kind][name]
    row = d.risk.table.row(kind, sid)
    changed, n = d.risk.trip(row, H, "rita", "test", d.t)
    assert changed and n == len(expect)
    d.run(0.01)
    left = {k for k, o in orders.items() if o.cl_ord_id in d.working()}
    assert left == set(orders) - expect
    # and nothing new passes in that scope
    probe = {"global": ("AAA", {}), "AAA": ("AAA", {}), "s1": ("BBB", {"source": "strategy:s1"}),
             "SIMA": ("BBB", {"venue": "SIMA"}), "acc2": ("AAA", {"account": "acc2"}),
             "bob": ("AAA", {"source": "manual:bob"})}[name]
    r = d.order(probe[0], "buy", 1, 49.0 if probe[0] == "BBB" else 99.0, **probe[1])
    assert isinstance(r, str) and "HALTED" in r, r


def test_reducing_lets_a_reducing_order_through_and_stops_an_adding_one():
    d = _desk()
    assert not isinstance(d.order("AAA", "buy", 10, 100.01), str)  # fills: long 10
    d.run(0.01)
    assert d.position("AAA") == 10
    adding = d.order("AAA", "buy", 5, 99.0)  # rests
    reducing_rest = d.order("AAA", "sell", 4, 101.0)  # rests, would reduce
    d.run(0.01)
    row = d.risk.table.row(Scope.INSTRUMENT, 0)
    changed, n = d.risk.trip(row, R, "rita", "only out", d.t)
    assert changed and n == 1  # the adding buy, not the reducing sell
    d.run(0.01)
    assert adding.cl_ord_id not in d.working() and reducing_rest.cl_ord_id in d.working()
    r = d.order("AAA", "buy", 1, 99.0)
    assert isinstance(r, str) and "instrument:AAA is REDUCING" in r and "holds 10 AAA" in r
    # the working sell of 4 counts: 6 more may reduce, 7 would go past flat
    assert not isinstance(d.order("AAA", "sell", 6, 101.0), str)
    r = d.order("AAA", "sell", 1, 101.0)
    assert isinstance(r, str) and "REDUCING" in r
    assert not isinstance(d.order("BBB", "buy", 1, 49.0), str)  # another instrument: ACTIVE


def test_the_strictest_state_over_every_scope_wins():
    d = _desk()
    t = d.risk.table
    d.risk.trip(t.row(Scope.STRATEGY, t.ids[Scope.STRATEGY]["s1"]), R, "rita", "x", d.t)
    d.risk.trip(t.row(Scope.VENUE, t.ids[Scope.VENUE]["SIMB"]), H, "rita", "y", d.t)
    r = d.order("AAA", "buy", 1, 99.0, venue="SIMB", source="strategy:s1")
    assert isinstance(r, str) and "venue:SIMB is HALTED" in r
    r = d.order("AAA", "buy", 1, 99.0, venue="SIMA", source="strategy:s1")
    assert isinstance(r, str) and "strategy:s1 is REDUCING" in r


class _Ticker(Strategy):
    name = "s1"
    wants_books = True

    def __init__(self) -> None:
        self.books = 0

    def on_book(self, ctx, instruments, now_ns) -> None:
        self.books += 1


def test_a_halted_strategy_pauses_and_resumes_when_re_armed():
    s = _Ticker()
    d = Desk({"duplicate_window_ms": 0}, strategies=[s])
    d.quote("AAA", 100.5)
    d.run(0.01)
    seen = s.books
    assert seen > 0
    row = d.risk.table.row(Scope.STRATEGY, 0)
    d.risk.trip(row, H, "rita", "stop it", d.t)
    d.quote("AAA", 100.7)
    d.run(0.01)
    assert s.books == seen and d.kernel.strategies.paused == {"s1"}
    d.risk.trip(row, A, "rita", "fixed", d.t)
    d.quote("AAA", 100.9)
    d.run(0.01)
    assert s.books > seen


def test_stale_market_data_trips_reducing_and_clears_when_fresh():
    d = Desk()
    d.risk.config = replace(d.risk.config, stale_grace_ms=0)
    d.gap("AAA")  # every venue's AAA stream has a gap: its books are stale until snapshots
    d.run(0.2)
    assert d.kernel.market.books.bbo["excluded"][0] == 0b111
    assert d.risk.kill.state(Scope.INSTRUMENT, 0) == R
    row = d.risk.kill.rows[d.risk.table.row(Scope.INSTRUMENT, 0)]
    assert row["auto"] and b"stale" in row["reason"]
    d.quote("AAA", 100.0)  # snapshots: fresh again
    d.run(0.2)
    assert d.risk.kill.state(Scope.INSTRUMENT, 0) == A


def test_a_lost_venue_session_trips_its_venue_reducing_until_it_is_back():
    d = Desk()
    c = d.clients[1]
    d.run(0.2)
    c.drop_connection(d.t) if hasattr(c, "drop_connection") else c.fail("test drop", d.t)
    d.run(0.2)
    assert d.risk.kill.state(Scope.VENUE, 1) == R
    d.run(2.0)  # the session reconnects
    assert c.up
    assert d.risk.kill.state(Scope.VENUE, 1) == A


def test_a_hard_position_breach_halts_the_instrument_with_a_cooling_off():
    d = Desk({"max_position": 10, "cooling_off_s": 30})
    d.order("AAA", "buy", 10, 100.01)
    d.run(0.01)
    assert d.position("AAA") == 10
    # a fill the checks could not foresee (the venue reports more than we knew): a breach
    d.risk.portfolio.fill((0, d.risk.portfolio.account_book(0)), 0, 1, 1, 100.0)
    d.risk._post_trade(0, (0,))
    assert d.risk.kill.state(Scope.INSTRUMENT, 0) == H
    row = d.risk.kill.rows[d.risk.table.row(Scope.INSTRUMENT, 0)]
    assert row["cool_until_ns"] == d.t + 30 * 10**9 and b"max_position 10" in row["reason"]


def test_a_daily_loss_breach_cancels_then_flattens_in_bounded_children():
    d = Desk({"daily_loss_limit": 50.0, "flatten_child_qty": 30, "flatten_interval_ms": 100,
              "max_order_qty": 1000})
    d.order("AAA", "buy", 100, 100.01)
    d.run(0.01)
    assert d.position("AAA") == 100
    resting = d.order("BBB", "buy", 10, 49.0)
    d.quote("AAA", 99.0)
    d.run(0.15)
    assert d.risk.kill.state(Scope.GLOBAL) == R
    assert resting.cl_ord_id not in d.working()
    sizes = []
    for _ in range(20):
        d.run(0.1)
        if d.position("AAA") == 0:
            break
    assert d.position("AAA") == 0
    d.run(0.2)
    parents = d.kernel.execution.router.parents.values()
    sizes = [p.qty for p in parents if p.symbol == "AAA"]
    assert sizes and max(sizes) <= 30 and sum(sizes) >= 100
    assert not d.risk._flatten  # the job ended


def test_a_person_flattens_one_instrument_of_an_account_and_nothing_else():
    d = Desk({"flatten_child_qty": 30, "flatten_interval_ms": 100, "max_order_qty": 1000})
    d.order("AAA", "buy", 70, 100.01)
    d.order("BBB", "buy", 5, 50.01)
    d.run(0.01)
    assert (d.position("AAA"), d.position("BBB")) == (70, 5)
    resting = d.order("AAA", "buy", 10, 99.0)
    other = d.order("BBB", "buy", 10, 49.0)
    d.run(0.01)
    said = d.risk.flatten("main", 0, "alice")
    assert said == "flattening account:main AAA: +70 to close; 1 working orders cancelled"
    with pytest.raises(ValueError, match="account:main is already being flattened"):
        d.risk.flatten("main", 0, "alice")
    with pytest.raises(ValueError, match="no account 'nope' in this engine"):
        d.risk.flatten("nope", 0, "alice")
    for _ in range(20):
        d.run(0.1)
        if d.position("AAA") == 0:
            break
    d.run(0.2)
    assert (d.position("AAA"), d.position("BBB")) == (0, 5)  # BBB untouched
    assert resting.cl_ord_id not in d.working() and other.cl_ord_id in d.working()
    sizes = [p.qty for p in d.kernel.execution.router.parents.values() if p.symbol == "AAA"]
    assert sizes and max(sizes) <= 30 and sum(sizes) >= 70
    assert not d.risk._flatten and d.risk.kill.state(Scope.GLOBAL) == A  # no switch moved
    assert d.risk.flatten("main", 0, "alice").startswith("account:main holds no AAA")


def test_pnl_against_a_hand_computed_fill_sequence_with_fees():
    p = Portfolio(["X"], ["s"], ["main"])
    books = (0, 1, 2)
    p.fill(books, 0, 1, 10, 100.0, fee=1.0)    # long 10 @ 100, fee 1
    p.fill(books, 0, 1, 10, 110.0, fee=1.0)    # long 20 @ 105
    p.fill(books, 0, 2, 5, 120.0, fee=0.5)     # sell 5: +75 realized
    p.fill(books, 0, 2, 25, 90.0, fee=2.5)     # sell 15 (-225) flat, then short 10 @ 90
    p.mark(0, 95.0)                             # short 10 from 90: -50 unrealized
    for b in books:
        assert p.qty[b][0] == -10 and p.avg[b][0] == 90.0
        assert p.realized[b][0] == pytest.approx(75 - 225 - 5.0)
        assert p.unreal[b][0] == pytest.approx(-50.0)
        assert p.pnl(b) == pytest.approx(-205.0)
        assert p.fees[b][0] == pytest.approx(5.0)
        assert p.exposure[b] == pytest.approx(950.0)
    rows = p.rows()
    desk = rows[(rows["book"] == b"desk") & (rows["instrument"] == 0)][0]
    assert desk["qty"] == -10 and desk["unrealized"] == pytest.approx(-50.0)


def test_the_portfolio_follows_fills_in_the_kernel_with_venue_fees():
    d = Desk()
    for c in d.clients:
        c.exchange.fee_rate = 1e-4 if hasattr(c, "exchange") else 0
    d.order("AAA", "buy", 10, 100.01, source="strategy:s9")  # unknown strategy: desk book
    d.run(0.01)
    p = d.risk.portfolio
    assert p.qty[0][0] == 10 and p.avg[0][0] == pytest.approx(100.01)



def test_a_restart_difference_trips_reducing_until_a_risk_manager_settles_it():
    from engine.execution.oms import OrderUpdate
    from engine.execution.orders import Order, OrdStatus

    d = Desk()
    r = d.risk
    restored = Order(cl_ord_id="OLD-1", symbol="AAA", side=1, qty=10, price=99.0, venue="SIMA",
                     tif="day")
    restored.cum_qty = 4
    r.expect_reconcile([restored])
    # the venue answers the status request: 7 filled, not the 4 the database had
    r.on_order(OrderUpdate("OLD-1", "SIMA", "AAA", OrdStatus.PARTIALLY_FILLED, 7, 3, 3, 99.0,
                           "reconciled: 3 filled while in doubt"), restored)
    assert [x.kind for x in r.differences] == ["order"]
    diff = r.differences[0]
    assert (diff.db_qty, diff.venue_qty) == (4, 7) and "OLD-1" in diff.text
    assert r.kill.state(Scope.INSTRUMENT, 0) == R
    with pytest.raises(ValueError, match="its venue fills are applied already"):
        r.settle(diff.id, True, "rita", "x", d.t)
    assert "accepted" in r.settle(diff.id, False, "rita", "checked the venue's blotter", d.t)
    assert r.kill.state(Scope.INSTRUMENT, 0) == A
    with pytest.raises(ValueError, match="already settled"):
        r.settle(diff.id, False, "rita", "again", d.t)
    rows = r.recon_rows()
    assert rows[0]["state"] == 1 and b"accepted by rita" in rows[0]["text"]


def test_a_position_difference_is_corrected_to_the_venues_figure():
    d = Desk()
    r = d.risk
    d.order("AAA", "buy", 10, 100.01)
    d.run(0.01)
    assert r.compare_positions({"AAA": 12}, "SIMA's drop copy") == 1
    diff = r.differences[0]
    assert diff.kind == "position" and (diff.db_qty, diff.venue_qty) == (10, 12)
    assert r.compare_positions({"AAA": 12}, "SIMA's drop copy") == 0  # not listed twice
    assert r.kill.state(Scope.INSTRUMENT, 0) == R
    r.settle(diff.id, True, "rita", "venue is right", d.t)
    assert d.position("AAA") == 12
    assert r.kill.state(Scope.INSTRUMENT, 0) == A


def test_limit_edits_made_since_the_profile_changed_are_restored():
    d = Desk({"max_order_qty": 100})
    r = d.risk
    r.config = replace(r.config, profile_mtime_ns=1000)
    applied = r.restore_limits([
        (500, "instrument:AAA", "max_order_qty", "5", "rita", "before the profile was edited"),
        (1500, "desk", "max_order_qty", "50", "rita", "after"),
        (1600, "instrument:BBB", "max_order_qty", "0.5", "rita", "a bad value"),
    ])
    assert applied == ["max_order_qty for desk = 50 (rita: after)"]
    assert isinstance(d.order("AAA", "buy", 51, 99.0), str)
    assert not isinstance(d.order("AAA", "buy", 50, 99.0), str)
