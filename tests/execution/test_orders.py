"""The order state machine's whole transition table, fills applied once, ClOrdIDs."""

import itertools

import pytest

from engine.execution.orders import (
    PREVIOUS,
    TERMINAL,
    TRANSITIONS,
    ClOrdIds,
    Order,
    OrderEvent,
    OrdStatus,
)


def order(status=OrdStatus.PENDING_NEW, qty=100):
    o = Order(cl_ord_id="c1", symbol="AAPL", side=1, qty=qty, price=190.0, venue="SIMA")
    o.status = status
    return o


@pytest.mark.parametrize("status, event", list(itertools.product(OrdStatus, OrderEvent)))
def test_every_pair_of_the_table(status, event):
    o = order(status)
    o._before_pending = OrdStatus.PARTIALLY_FILLED if status.name.startswith("PENDING_") else None
    want = TRANSITIONS.get((status, event))
    why = o.apply(event)
    if want is None:
        assert why == f"order c1: {event.value} is impossible in state {status.value}"
        assert o.status is status  # refused: unchanged
    else:
        assert why is None
        assert o.status is (OrdStatus.PARTIALLY_FILLED if want == PREVIOUS else want)


def test_terminal_states_accept_nothing():
    for st in TERMINAL:
        assert not [e for e in OrderEvent if (st, e) in TRANSITIONS]


def test_a_refused_cancel_returns_to_where_the_order_was_fills_included():
    o = order(OrdStatus.NEW)
    assert o.apply(OrderEvent.CANCEL_REQUESTED) is None and o.status is OrdStatus.PENDING_CANCEL
    assert o.apply_fill("e1", 30, 190.0) is None  # a fill races the cancel
    assert o.status is OrdStatus.PENDING_CANCEL and o.cum_qty == 30
    assert o.apply(OrderEvent.CANCEL_REJECTED) is None
    assert o.status is OrdStatus.PARTIALLY_FILLED and o.leaves_qty == 70


def test_fills_apply_exactly_once_and_never_overfill():
    o = order(OrdStatus.NEW)
    assert o.apply_fill("e1", 40, 100.0) is None
    assert o.apply_fill("e1", 40, 100.0) == "order c1: execution e1 already applied (duplicate)"
    assert o.cum_qty == 40 and o.status is OrdStatus.PARTIALLY_FILLED
    assert o.apply_fill("e2", 70, 101.0) == "order c1: execution e2 of 70 would fill 110 of 100"
    assert o.apply_fill("e3", 0, 101.0) == "order c1: execution e3 has quantity 0"
    assert o.apply_fill("e2", 60, 101.0) is None
    assert o.status is OrdStatus.FILLED and o.leaves_qty == 0
    assert o.avg_px == pytest.approx(100.6)
    assert o.apply_fill("e4", 1, 101.0).startswith("order c1: execution e4 of 1 would fill")


def test_a_fill_before_the_ack_and_the_late_ack():
    o = order()
    assert o.apply_fill("e1", 10, 5.0) is None and o.status is OrdStatus.PARTIALLY_FILLED
    assert o.apply(OrderEvent.ACK_NEW) == "order c1: ack new is impossible in state PartiallyFilled"


def test_clordids_are_unique_across_restarts_and_refuse_a_clock_going_back():
    first = ClOrdIds("HELM", 1_795_000_000_000)
    a = [first.next() for _ in range(1000)]
    second = ClOrdIds("HELM", 1_795_000_000_001, last_start_wall_ms=first.start_wall_ms)
    b = [second.next() for _ in range(1000)]
    assert len(set(a) | set(b)) == 2000
    assert a[0] == "HELM-mwm0nk74-1" and int("mwm0nk74", 36) == 1_795_000_000_000
    # the counter in base 36, across the digits' carries
    ids = ClOrdIds("HELM", 1)
    for n in range(1, 50_000):
        cl = ids.next()
        assert int(cl.rsplit("-", 1)[1], 36) == n and not cl.rsplit("-", 1)[1].startswith("0")
    with pytest.raises(ValueError, match="clock went back"):
        ClOrdIds("HELM", 1_795_000_000_000, last_start_wall_ms=1_795_000_000_001)


def test_cancel_before_the_ack_then_ack_then_refusal_comes_back_to_new():
    o = order()
    assert o.apply(OrderEvent.CANCEL_REQUESTED) is None
    assert o.apply(OrderEvent.ACK_NEW) is None and o.status is OrdStatus.PENDING_CANCEL
    assert o.apply(OrderEvent.CANCEL_REJECTED) is None and o.status is OrdStatus.NEW
