"""Deferred subscribers of order updates: an intent's updates reach them at the next
``flush_deferred`` (after the turn's messages are on the wire), every update still reaches
every subscriber once and in order, and what they read is the update's state, not the
order's later one. An in-process venue on a simulated clock, as a backtest runs it."""

from __future__ import annotations

from engine.core.intents import OrderIntent
from engine.core.profile import InstrumentConfig, VenueLinkConfig
from engine.execution.engine import ExecutionConfig, ExecutionEngine
from engine.execution.orders import ClOrdIds, OrdStatus
from engine.venue.inprocess import InProcessVenue
from tests.venue.test_inprocess import market

AAA = InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)
T0 = 1_795_400_000_000_000_000
S = 1_000_000_000


class Desk:
    """An execution engine over an in-process venue, one subscriber that decides (now) and
    one that only records (deferred), each writing down what it was told."""

    def __init__(self, deferred: bool = True) -> None:
        cfg = VenueLinkConfig(name="SIMA", kind="sim", symbols=("AAA",), latency_us=150)
        self.venue = InProcessVenue("SIMA", [AAA], latency_ns=150_000)
        self.eng = ExecutionEngine(ExecutionConfig(venues=(cfg,), instruments=(AAA,)),
                                   [self.venue], ClOrdIds("HELM", 1))
        self.venue.books = market(1)
        self.now_seen: list[tuple[str, OrdStatus, int]] = []
        self.later_seen: list[tuple[str, OrdStatus, int]] = []
        self.later_tags: list[str] = []
        self.eng.subscribe(lambda u, o: self.now_seen.append((u.cl_ord_id, u.status,
                                                              u.leaves_qty)))
        self.eng.subscribe(self._record, deferred=deferred)
        self.now = T0
        self.run(T0 + S)
        assert self.venue.up

    def _record(self, u, o) -> None:
        self.later_seen.append((u.cl_ord_id, u.status, u.leaves_qty))
        self.later_tags.append(f"order {u.cl_ord_id} {u.status.value}")

    def run(self, until: int) -> None:
        while True:
            nxt = self.eng.next_due_ns()
            if nxt > until:
                self.now = until
                return
            self.now = max(self.now, nxt)
            self.eng.poll(self.now)

    def submit(self, qty: int = 10, price: float = 99.0):
        o = self.eng.submit(OrderIntent(symbol="AAA", side=1, qty=qty, price=price,
                                        venue="SIMA", tif="day"), self.now)
        assert not isinstance(o, str), o
        return o


def test_an_intents_updates_wait_for_the_flush_and_keep_their_own_state():
    d = Desk()
    o = d.submit()
    assert d.eng.cancel(o.cl_ord_id, d.now) is None
    cl = o.cl_ord_id
    pending = [(cl, OrdStatus.PENDING_NEW, 10), (cl, OrdStatus.PENDING_CANCEL, 10)]
    assert d.now_seen == pending  # the deciding subscriber at once
    assert d.later_seen == []  # the recording one not yet: the messages went first
    d.eng.flush_deferred()
    # each update as it was when it happened, though the order is PendingCancel by now
    assert d.later_seen == pending
    d.run(d.now + S)
    assert d.later_seen == d.now_seen
    assert d.now_seen[-1] == (cl, OrdStatus.CANCELLED, 0)


def test_a_venue_report_first_hands_over_what_waits_so_the_order_stays():
    d = Desk()
    o = d.submit()
    d.eng.later(d.later_tags.append, "tag")  # a record that goes with the order (its owner)
    d.run(d.now + S)  # no flush: the venue's ack comes first through poll
    assert d.later_seen == d.now_seen == [(o.cl_ord_id, OrdStatus.PENDING_NEW, 10),
                                          (o.cl_ord_id, OrdStatus.NEW, 10)]
    assert d.later_tags == [f"order {o.cl_ord_id} PendingNew", "tag",
                            f"order {o.cl_ord_id} New"]


def test_without_deferred_subscribers_every_update_goes_out_at_once():
    d = Desk(deferred=False)
    o = d.submit()
    assert d.later_seen == [(o.cl_ord_id, OrdStatus.PENDING_NEW, 10)]
    assert not d.eng._later
