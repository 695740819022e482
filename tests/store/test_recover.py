"""Restart: orders, positions, kill switches and FIX sessions come back from the database."""

from __future__ import annotations

from engine.execution.orders import OrderEvent, OrdStatus
from engine.fix.session import FixSession, LoggedOn, SessionConfig
from engine.fix.store import MemoryStore
from engine.ipc.commands import Scope
from engine.store import WriteBehindFixStore, load
from tests.fix.test_session import T0, pump
from tests.store._util import flushed


def test_a_restart_rebuilds_orders_positions_kills_and_fix_numbers(make_link, url):
    link = make_link()
    link.put_order("W1", "SIMA", "ESZ6", 1, 10, 100.0, "day", OrdStatus.NEW, 0, 10, 0.0, "V1",
                   "", 1, 1)
    link.put_execution("X1", "SIMA", "W1", "ESZ6", 1, 3, 99.0, 2)
    link.put_order("W1", "SIMA", "ESZ6", 1, 10, 100.0, "day", OrdStatus.PARTIALLY_FILLED, 3, 7,
                   99.0, "V1", "", 0, 2)
    link.put_order("W2", "SIMB", "AAPL", 2, 5, 190.0, "ioc", OrdStatus.PENDING_CANCEL, 0, 5, 0.0,
                   "V2", "", 3, 3)
    link.put_order("D1", "SIMA", "ESZ6", 2, 2, None, "day", OrdStatus.FILLED, 2, 0, 101.0, "V3",
                   "", 4, 5)
    link.put_execution("X2", "SIMA", "D1", "ESZ6", 2, 2, 101.0, 5)
    link.put_kill("global", Scope.GLOBAL, 0, True, "ana", "test", 6)
    link.put_kill("global", Scope.GLOBAL, 0, False, "ana", "re-armed", 7)
    link.put_kill("AAPL", Scope.INSTRUMENT, 1, True, "bob", "fat finger", 8)
    link.put_fix_seq("HELM->SIMA", 4, 9)
    link.put_fix_message("HELM->SIMA", 4, b"msg4")
    link.put_fix_message("HELM->SIMA", 5, b"msg5")
    assert link.close() == 0

    make_link()  # the next engine's link: nothing left over to write
    r = load(url)
    assert sorted(r.orders) == ["D1", "W1", "W2"] and sorted(r.working) == ["W1", "W2"]
    w1 = r.working["W1"]
    assert (w1.status, w1.cum_qty, w1.avg_px, w1.leaves_qty) == (
        OrdStatus.PARTIALLY_FILLED, 3, 99.0, 7)
    assert w1.has_execution("X1") and w1.tif == "day" and w1.venue_order_id == "V1"
    # the venue replays the fill after the restart: still a duplicate
    assert "duplicate" in w1.apply_fill("X1", 3, 99.0)
    assert w1.apply_fill("X3", 7, 100.0) is None and w1.status is OrdStatus.FILLED
    # a cancel the venue refuses brings a recovered PendingCancel back to New
    w2 = r.working["W2"]
    assert w2.status is OrdStatus.PENDING_CANCEL and w2.tif == "ioc"
    assert w2.apply(OrderEvent.CANCEL_REJECTED) is None and w2.status is OrdStatus.NEW
    assert r.orders["D1"].price is None and r.rows["D1"].created_ns == 4
    assert r.repaired == []
    pos = r.positions["ESZ6"]
    assert (pos.qty, pos.avg_px, pos.realized) == (1, 99.0, 4.0)
    assert r.kills["global"].tripped is False and r.kills["global"].reason == "re-armed"
    assert r.kills["AAPL"].tripped and r.kills["AAPL"].user == "bob"
    s = r.fix_session("HELM->SIMA")
    assert (s.next_sender_seq, s.next_target_seq, s.sent) == (6, 9, {4: b"msg4", 5: b"msg5"})
    assert r.fix_session("NEVER").next_sender_seq == 1


def test_an_order_row_behind_its_executions_takes_the_executions(link, url):
    # the engine died between handing the fill and the order's new state
    link.put_order("O1", "SIMA", "ESZ6", 1, 10, 100.0, "day", OrdStatus.NEW, 0, 10, 0.0, "", "",
                   1, 1)
    link.put_execution("X1", "SIMA", "O1", "ESZ6", 1, 4, 100.0, 2)
    link.put_execution("X2", "SIMA", "O1", "ESZ6", 1, 6, 101.0, 3)
    flushed(link)
    r = load(url)
    o = r.orders["O1"]
    assert (o.status, o.cum_qty, o.avg_px) == (OrdStatus.FILLED, 10, 100.6)
    assert "O1" not in r.working
    assert r.repaired == [("order O1: row says 0 filled at 0 (New), its executions 10 at 100.6: "
                          "executions kept, now Filled")]


def test_a_fix_session_persists_through_the_write_behind_store(make_link, url):
    link = make_link()
    cfg_a = SessionConfig(sender="HELM", target="VENUE", initiator=True)
    cfg_b = SessionConfig(sender="VENUE", target="HELM", initiator=False)
    a = FixSession(cfg_a, WriteBehindFixStore(link, "HELM->VENUE", load(url)))
    b = FixSession(cfg_b, MemoryStore())
    b.connect(T0)
    a.connect(T0)
    pump(a, b, T0)
    for i in range(4):
        a.send(b"D", [(11, f"o{i}".encode())], T0)
    pump(a, b, T0)
    assert (a.store.next_sender_seq, a.store.next_target_seq) == (6, 2)
    assert link.close() == 0

    # the engine restarts: new link, state from the database
    link = make_link()
    a = FixSession(cfg_a, WriteBehindFixStore(link, "HELM->VENUE", load(url)))
    assert (a.store.next_sender_seq, a.store.next_target_seq) == (6, 2)
    assert [s for s, _ in a.store.sent_range(1, 10)] == [2, 3, 4, 5]  # for resends
    assert b"11=o3" in a.store.sent_range(5, 5)[0][1]
    b.connection_lost(T0)
    b.connect(T0)
    a.connect(T0)
    ea, eb = pump(a, b, T0)
    assert ea == [LoggedOn(30, False)] and eb == [LoggedOn(30, False)]
    a.store.reset()
    flushed(link)
    r = load(url)
    assert (r.fix_session("HELM->VENUE").next_sender_seq, r.fix_session("HELM->VENUE").sent) == (
        1, {})


def test_a_deferred_write_behind_store_writes_at_flush_in_order(make_link, url):
    """The live node's stores: answered from memory at once, on the ring at ``flush()``
    (after the turn), messages in order and then the numbers as they are."""
    link = make_link()
    cfg_a = SessionConfig(sender="HELM", target="VENUE", initiator=True)
    cfg_b = SessionConfig(sender="VENUE", target="HELM", initiator=False)
    store = WriteBehindFixStore(link, "HELM->VENUE", load(url), deferred=True)
    a = FixSession(cfg_a, store)
    b = FixSession(cfg_b, MemoryStore())
    b.connect(T0)
    a.connect(T0)
    pump(a, b, T0)
    before = link.last_seq
    for i in range(3):
        a.send(b"D", [(11, f"o{i}".encode())], T0)
    assert link.last_seq == before and store.dirty  # nothing on the ring yet
    assert [s for s, _ in store.sent_range(1, 10)] == [2, 3, 4]  # resends: from memory now
    pump(a, b, T0)
    store.flush()
    assert not store.dirty and link.last_seq == before + 4  # three messages, then the numbers
    store.flush()
    assert link.last_seq == before + 4  # nothing waited
    a.send(b"D", [(11, b"o3")], T0)
    store.reset()  # what waited goes first: the reset forgets it on the ring too
    assert (store.next_sender_seq, store.next_target_seq) == (1, 1)
    a.store.set_next_target_seq(7)
    store.flush()
    assert link.close() == 0
    r = load(url).fix_session("HELM->VENUE")
    assert (r.next_sender_seq, r.next_target_seq, r.sent) == (1, 7, {})


def test_a_deferred_store_flushed_after_each_turn_resumes_like_one_that_is_not(make_link, url):
    link = make_link()
    cfg_a = SessionConfig(sender="HELM", target="VENUE", initiator=True)
    cfg_b = SessionConfig(sender="VENUE", target="HELM", initiator=False)
    store = WriteBehindFixStore(link, "HELM->VENUE", load(url), deferred=True)
    a = FixSession(cfg_a, store)
    b = FixSession(cfg_b, MemoryStore())
    b.connect(T0)
    a.connect(T0)
    pump(a, b, T0)
    for i in range(4):
        a.send(b"D", [(11, f"o{i}".encode())], T0)
        store.flush()
    pump(a, b, T0)
    store.flush()
    assert link.close() == 0
    r = load(url).fix_session("HELM->VENUE")
    assert (r.next_sender_seq, r.next_target_seq) == (6, 2)
    assert sorted(r.sent) == [2, 3, 4, 5] and b"11=o3" in r.sent[5]
