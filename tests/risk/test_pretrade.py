"""The pre-trade chain: every check accepts an order at its limit and refuses one just past it,
with a reason that names the limit; cancels are never checked."""

from __future__ import annotations

import pytest

from engine.core.profile import ProfileError, parse_profile
from engine.core.records import KillState, Scope
from engine.risk.engine import CHECKS
from tests.risk._desk import Desk, profile_dict

from pathlib import Path


def _ok(r) -> None:
    assert not isinstance(r, str), r


def _refused(r, *words: str) -> None:
    assert isinstance(r, str), f"accepted: {r}"
    for w in words:
        assert w in r, r


def test_the_chain_runs_in_the_documented_order():
    assert CHECKS[:2] == ("restricted", "kill_switch")
    assert CHECKS[-1] == "self_match"
    d = Desk({"max_order_qty": 100, "restricted": ["BBB"]})
    # both restricted and too large: the first check in the table answers
    _refused(d.order("BBB", "buy", 500, 50.0), "restricted")


def test_max_order_qty_at_and_past_the_limit():
    d = Desk({"max_order_qty": 100, "instrument": {"CCC": {"max_order_qty": 5}}})
    _ok(d.order("AAA", "buy", 100, 99.0))
    _refused(d.order("AAA", "buy", 101, 99.0), "quantity 101", "max_order_qty 100")
    _ok(d.order("CCC", "buy", 5, 4990.0))
    _refused(d.order("CCC", "buy", 6, 4990.0), "max_order_qty 5", "CCC")


def test_max_order_notional_uses_the_limit_price_or_the_reference():
    d = Desk({"max_order_notional": 9900.0})
    _ok(d.order("AAA", "buy", 100, 99.0))  # 9,900 exactly
    _refused(d.order("AAA", "buy", 100, 99.01), "notional 9,901", "max_order_notional 9,900")
    # a market order is valued at the reference (mid 100.00): 100 × 100 > 9,900
    _refused(d.order("AAA", "buy", 100, None), "notional 10,000")


def test_price_collar_against_the_reference():
    d = Desk({"price_collar_bps": 100})  # 1 % of 100.00 = 1.00
    _ok(d.order("AAA", "buy", 1, 99.0))
    _refused(d.order("AAA", "buy", 1, 98.99), "collar of 100 bps", "reference 100")
    _ok(d.order("AAA", "sell", 1, 101.0))
    _refused(d.order("AAA", "sell", 1, 101.01), "outside the collar")


def test_no_fresh_reference_price_is_refused_not_waved_through():
    d = Desk()
    d.quote("AAA", 100.0, venues=("SIMA",), spread_ticks=0)  # SIMA locked: bid == ask
    d.quote("AAA", 100.0, venues=("SIMB", "SIMC"), spread_ticks=0)
    d.run(0.01)
    assert d.risk.reference(0, d.t) is None
    _refused(d.order("AAA", "buy", 1, 99.0), "no fresh reference price for AAA")
    d.quote("AAA", 100.0)
    d.run(0.01)
    _ok(d.order("AAA", "buy", 1, 99.0))


def test_position_limit_counts_working_orders():
    d = Desk({"max_position": 100})
    _ok(d.order("AAA", "buy", 60, 99.0))
    _ok(d.order("AAA", "buy", 40, 99.0))  # 100 with working orders: at the limit
    _refused(d.order("AAA", "buy", 1, 99.0), "would reach +101", "max_position 100")
    # the other side reduces what the buys would make: a sell of 100 is fine
    _ok(d.order("AAA", "sell", 100, 101.0))
    _refused(d.order("AAA", "sell", 1, 101.0), "would reach -101")


def test_gross_position_counts_both_sides():
    d = Desk({"max_gross_position": 100})
    _ok(d.order("AAA", "buy", 50, 99.0))
    _ok(d.order("AAA", "sell", 50, 101.0))
    _refused(d.order("AAA", "sell", 1, 101.0), "gross position", "101", "max_gross_position 100")


def test_strategy_and_account_position_limits_apply_to_their_own_books():
    d = Desk({"strategy": {"s1": {"max_position": 10}}, "account": {"acc2": {"max_position": 20}}})
    _ok(d.order("AAA", "buy", 10, 99.0, source="strategy:s1"))
    _refused(d.order("AAA", "buy", 1, 99.0, source="strategy:s1"), "strategy:s1")
    _ok(d.order("AAA", "buy", 50, 99.0))  # the desk's own limit is far away
    _ok(d.order("AAA", "buy", 20, 99.0, account="acc2"))
    _refused(d.order("AAA", "buy", 1, 99.0, account="acc2"), "account:acc2")


def test_exposure_limit_includes_working_notional():
    d = Desk({"max_exposure": 10_000.0})
    _ok(d.order("AAA", "buy", 50, 99.0))  # 4,950
    _ok(d.order("BBB", "buy", 101, 50.0))  # 5,050: 10,000 in all
    _refused(d.order("BBB", "buy", 1, 49.99), "exposure", "max_exposure 10,000")


def test_daily_loss_limit_refuses_adding_orders_but_not_reducing_ones():
    d = Desk({"daily_loss_limit": 100.0, "duplicate_window_ms": 0})
    _ok(d.order("AAA", "buy", 100, 100.01))  # fills at 100.01 against the offer
    d.run(0.05)
    assert d.position("AAA") == 100
    p = d.risk.portfolio
    p.mark(0, 99.01)  # -100.00: at the limit (the check reads the marks as they are)
    assert p.pnl(0) == pytest.approx(-100.0)
    _ok(d.order("AAA", "buy", 1, 99.0))
    p.mark(0, 99.0)  # -101: past it
    _refused(d.order("AAA", "buy", 1, 99.0), "daily loss", "P&L -101",
             "daily_loss_limit 100", "only reducing")
    _ok(d.order("AAA", "sell", 10, 99.5))  # reduces: passes


def test_order_rate_per_venue_and_per_strategy():
    d = Desk({"max_orders_per_s": 3, "duplicate_window_ms": 0})
    for _ in range(3):
        _ok(d.order("AAA", "buy", 1, 99.0, venue="SIMA"))
    _refused(d.order("AAA", "buy", 1, 99.0, venue="SIMA"), "order rate", "SIMA",
             "max_orders_per_s 3")
    _ok(d.order("AAA", "buy", 1, 99.0, venue="SIMB"))  # another venue's window
    d.run(1.0)
    _ok(d.order("AAA", "buy", 1, 99.0, venue="SIMA"))  # the window moved on
    e = Desk({"strategy": {"s1": {"max_orders_per_s": 2}}, "duplicate_window_ms": 0})
    for v in ("SIMA", "SIMB"):
        _ok(e.order("AAA", "buy", 1, 99.0, venue=v, source="strategy:s1"))
    _refused(e.order("AAA", "buy", 1, 99.0, venue="SIMC", source="strategy:s1"),
             "strategy:s1", "max_orders_per_s 2")


def test_message_rate_counts_cancels_and_never_blocks_them():
    d = Desk({"max_messages_per_s": 4, "duplicate_window_ms": 0})
    a = d.order("AAA", "buy", 1, 99.0)
    b = d.order("AAA", "buy", 1, 98.99)
    d.run(0.01)
    assert d.kernel.execution.cancel(a.cl_ord_id, d.t) is None
    assert d.kernel.execution.cancel(b.cl_ord_id, d.t) is None  # 4 messages: cancels pass
    _refused(d.order("AAA", "buy", 1, 99.0), "message rate", "max_messages_per_s 4")
    c = d.kernel.execution  # a cancel past the limit still goes
    d.run(0.01)
    assert not d.working()
    del c


def test_max_open_orders_per_strategy():
    d = Desk({"strategy": {"s1": {"max_open_orders": 2}}, "duplicate_window_ms": 0})
    _ok(d.order("AAA", "buy", 1, 99.0, source="strategy:s1"))
    _ok(d.order("AAA", "buy", 1, 98.99, source="strategy:s1"))
    _refused(d.order("AAA", "buy", 1, 98.98, source="strategy:s1"), "open orders",
             "max_open_orders 2")
    _ok(d.order("AAA", "buy", 1, 98.98))  # a trader's orders count apart


def test_duplicate_orders_within_the_window():
    d = Desk({"duplicate_window_ms": 100})
    _ok(d.order("AAA", "buy", 1, 99.0))
    _refused(d.order("AAA", "buy", 1, 99.0), "duplicate order")
    _ok(d.order("AAA", "buy", 2, 99.0))  # not the same order
    d.run(0.1)
    _ok(d.order("AAA", "buy", 1, 99.0))  # the window passed


def test_self_match_refused_or_resting_order_cancelled():
    d = Desk()
    rest = d.order("AAA", "buy", 5, 99.5)
    _ok(rest)
    _refused(d.order("AAA", "sell", 5, 99.5), "self-match", rest.cl_ord_id)
    _ok(d.order("AAA", "sell", 5, 99.51))  # does not reach our bid
    _ok(d.order("AAA", "sell", 5, 99.0, venue="SIMB"))  # another venue: no self-match
    e = Desk({"self_match": "cancel_resting"})
    rest = e.order("AAA", "buy", 5, 99.5)
    _ok(e.order("AAA", "sell", 5, 99.5))
    e.run(0.01)
    assert rest.cl_ord_id not in e.working()


def test_restricted_instruments():
    d = Desk({"instrument": {"CCC": {"restricted": True}}})
    _refused(d.order("CCC", "buy", 1, 4990.0), "CCC is a restricted instrument")
    _ok(d.order("AAA", "buy", 1, 99.0))


def test_repeated_execution_throttle_pauses_the_strategy():
    d = Desk({"strategy": {"s1": {"max_fills": 3, "fill_window_ms": 1000, "fill_pause_ms": 500}},
              "duplicate_window_ms": 0})
    for _ in range(3):
        _ok(d.order("AAA", "buy", 1, 100.01, source="strategy:s1"))
        d.run(0.01)
    _refused(d.order("AAA", "buy", 1, 100.01, source="strategy:s1"), "paused",
             "repeated-execution", "3 fills")
    _ok(d.order("AAA", "buy", 1, 100.01))  # others are not paused
    d.run(0.5)
    _ok(d.order("AAA", "buy", 1, 100.01, source="strategy:s1"))


def test_runaway_order_rate_halts_the_source():
    d = Desk({"strategy": {"s1": {"runaway_orders_per_s": 5, "max_order_qty": 1}},
              "duplicate_window_ms": 0})
    for _ in range(5):
        d.order("AAA", "buy", 2, 99.0, source="strategy:s1")  # refused (qty), still counted
    _refused(d.order("AAA", "buy", 1, 99.0, source="strategy:s1"), "runaway")
    sid = d.risk.table.ids[Scope.STRATEGY]["s1"]
    assert d.risk.kill.state(Scope.STRATEGY, sid) == KillState.HALTED
    _refused(d.order("AAA", "buy", 1, 99.0, source="strategy:s1"), "strategy:s1 is HALTED")
    _ok(d.order("AAA", "buy", 1, 99.0))


def test_router_children_pass_the_venue_checks():
    d = Desk({"venue": {"SIMB": {"max_order_qty": 10}}})
    parent = d.order("AAA", "buy", 50, 100.01, venue="*", tif="ioc")
    d.run(0.05)
    # SIMB refuses children over 10: what went there is at most 10
    kids = [c for c in parent.children if c.venue == "SIMB"]
    assert all(c.qty <= 10 for c in kids)
    assert d.position("AAA") > 0


def test_a_cancel_is_never_checked():
    d = Desk({"max_order_qty": 10})
    o = d.order("AAA", "buy", 10, 99.0)
    d.risk.trip(0, KillState.HALTED, "rita", "test", d.t)
    d.run(0.01)
    assert o.cl_ord_id not in d.working()  # the trip itself cancelled it
    p = d.order("AAA", "buy", 1, 99.0)
    _refused(p, "global is HALTED")


def test_limits_profile_errors_name_the_key():
    for limits, words in (
        ({"max_order_qty": 1.5}, ("[limits].max_order_qty", "whole number")),
        ({"max_order_qty": 0}, ("between 1",)),
        ({"bogus": 1}, ("[limits].bogus", "unknown key")),
        ({"instrument": {"ZZZ": {"max_order_qty": 1}}}, ("instrument.ZZZ", "not one of")),
        ({"venue": {"SIMA": {"max_position": 1}}}, ("venue.SIMA.max_position",
                                                    "not a per-venue limit")),
        ({"self_match": "maybe"}, ("self_match", "reject, cancel_resting")),
    ):
        with pytest.raises(ProfileError) as e:
            parse_profile(profile_dict(limits), Path("p.toml"))
        for w in words:
            assert w in str(e.value), str(e.value)
