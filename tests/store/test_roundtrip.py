"""Every record kind through a real ring and a real writer process into a real SQLite file."""

from __future__ import annotations

import math
import os

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from engine.core.roles import Role
from engine.execution.orders import OrdStatus
from engine.ipc.commands import AckStatus, Scope, Verb
from engine.ipc.segment import segment_exists
from engine.store import Kind
from engine.store import models as m
from engine.store.records import SLOT, Kind, record_slots, segment_name
from engine.store.writer import apply_fill
from tests.store._util import flushed

FIX_2K = (b"8=FIX.4.4\x019=2000\x0135=D\x01" + bytes(range(256)) * 7 + b"58=" + b"z" * 161
          + b"\x01")


def test_every_record_kind_round_trips(link, db):
    seqs = [
        link.put_order("HD-1", "SIMA", "ESZ6", 1, 10, 5000.25, "day", OrdStatus.NEW, 0, 10, 0.0,
                       "V-77", "", 111, 111),
        link.put_order("HD-2", "SIMA", "AAPL", 2, 5, None, "ioc", OrdStatus.PENDING_NEW, 0, 5,
                       0.0, "", "HD-1", 112, 112),
        link.put_execution("E-1", "SIMA", "HD-1", "ESZ6", 1, 4, 5000.0, 120),
        link.put_command(9, "ana", "ws-3", Role.RISK_MANAGER, Verb.KILL, Scope.INSTRUMENT, 2,
                         1.5, -2.0, "fat finger ✓", AckStatus.ACCEPTED,
                         "instrument AAPL kill switch TRIPPED", 130),
        link.put_kill("AAPL", Scope.INSTRUMENT, 2, True, "ana", "fat finger", 131),
        link.put_limit("ana", "risk_manager", "ws-3", "instrument:ESZ6", "max_order_qty", "100",
                       "250", "client asked", 132),
        link.put_fix_seq("HELM->SIMA", 7, 12),
        link.put_fix_message("HELM->SIMA", 7, FIX_2K),
        link.put_fix_message("HELM->SIMA", 8, b"8=FIX.4.4\x0135=F\x01"),
    ]
    assert seqs == list(range(1, 10))
    flushed(link)
    assert all(link.durable(s) for s in seqs) and link.pending == 0
    assert link.stats()["applied"] == 9 and link.stats()["bad"] == 0

    o1, o2 = db.rows(m.orders, order_by=m.orders.c.cl_ord_id)
    assert o1 == {"cl_ord_id": "HD-1", "venue": "SIMA", "symbol": "ESZ6", "side": 1, "qty": 10,
                  "price": 5000.25, "tif": "day", "status": "New", "cum_qty": 0,
                  "leaves_qty": 10, "avg_px": 0.0, "venue_order_id": "V-77", "parent_id": None,
                  "created_ns": 111, "updated_ns": 111}
    assert o2["price"] is None and o2["parent_id"] == "HD-1" and o2["status"] == "PendingNew"
    assert db.rows(m.executions) == [{"exec_id": "E-1", "venue": "SIMA", "cl_ord_id": "HD-1",
                                      "symbol": "ESZ6", "side": 1, "qty": 4, "price": 5000.0,
                                      "ts_ns": 120, "fee": 0.0}]
    assert db.rows(m.positions) == [{"symbol": "ESZ6", "qty": 4, "avg_px": 5000.0,
                                     "realized": 0.0, "updated_ns": 120}]
    (cmd,) = db.rows(m.commands)
    assert cmd == {"cmd_id": 9, "ts_ns": 130, "user": "ana", "workstation": "ws-3",
                   "role": "RISK_MANAGER", "verb": "KILL", "scope": "INSTRUMENT", "scope_id": 2,
                   "arg0": 1.5, "arg1": -2.0, "text": "fat finger ✓", "status": "ACCEPTED",
                   "reason": "instrument AAPL kill switch TRIPPED"}
    assert db.rows(m.kill_events) == [{"ts_ns": 131, "scope": 1, "scope_id": 2,
                                       "scope_name": "instrument:AAPL", "state": "halted",
                                       "tripped": True, "name": "AAPL", "user": "ana",
                                       "reason": "fat finger"}]
    assert db.rows(m.limit_changes) == [{"ts_ns": 132, "scope": "instrument:ESZ6",
                                         "key": "max_order_qty", "user": "ana",
                                         "role": "risk_manager", "workstation": "ws-3",
                                         "old_value": "100", "new_value": "250",
                                         "reason": "client asked"}]
    # the message moved the sender number on; the target number stayed
    assert db.rows(m.fix_sessions) == [{"session_id": "HELM->SIMA", "next_sender_seq": 9,
                                        "next_target_seq": 12}]
    msgs = db.rows(m.fix_messages, order_by=m.fix_messages.c.seq)
    assert [(r["seq"], bytes(r["raw"])) for r in msgs] == [
        (7, FIX_2K), (8, b"8=FIX.4.4\x0135=F\x01")]
    assert record_slots(Kind.FIX_MSG, len(FIX_2K)) > 2


def test_order_upserts_keep_the_first_creation_time_and_the_last_state(link, db):
    link.put_order("HD-1", "SIMA", "ESZ6", 1, 10, 100.0, "day", OrdStatus.PENDING_NEW, 0, 10,
                   0.0, "", "", 5, 5)
    flushed(link)
    link.put_order("HD-1", "SIMA", "ESZ6", 1, 10, 100.0, "day", OrdStatus.NEW, 0, 10, 0.0,
                   "V1", "", 0, 6)
    link.put_order("HD-1", "SIMA", "ESZ6", 1, 10, 100.0, "day", OrdStatus.PARTIALLY_FILLED, 3,
                   7, 99.5, "V1", "", 0, 7)  # same batch as the one before: the last wins
    flushed(link)
    (row,) = db.rows(m.orders)
    assert (row["status"], row["cum_qty"], row["leaves_qty"], row["avg_px"]) == (
        "PartiallyFilled", 3, 7, 99.5)
    assert (row["created_ns"], row["updated_ns"], row["venue_order_id"]) == (5, 7, "V1")


def test_positions_follow_executions_and_a_duplicate_moves_nothing(link, db):
    link.put_execution("E1", "SIMA", "A", "ESZ6", 1, 10, 100.0, 1)
    link.put_execution("E2", "SIMA", "A", "ESZ6", 2, 4, 110.0, 2)
    link.put_execution("E2", "SIMA", "A", "ESZ6", 2, 4, 110.0, 2)  # a venue's resend
    flushed(link)
    link.put_execution("E1", "SIMA", "A", "ESZ6", 1, 10, 100.0, 1)  # again, a later batch
    link.put_execution("E1", "SIMB", "B", "ESZ6", 2, 10, 90.0, 3)  # same ExecID, other venue
    flushed(link)
    assert db.count(m.executions) == 3
    (pos,) = db.rows(m.positions)
    # long 10 @100, sell 4 @110 (+40), sell 10 @90: closes 6 (-60), opens 4 short @90
    assert (pos["qty"], pos["avg_px"], pos["realized"], pos["updated_ns"]) == (-4, 90.0, -20.0, 3)
    assert link.stats()["duplicates"] == 2


def test_fees_land_with_their_executions_and_come_off_the_realized_pnl(link, db):
    link.put_execution("F1", "SIMA", "A", "ESZ6", 1, 10, 100.0, 1, fee=1.5)
    link.put_execution("F2", "SIMA", "A", "ESZ6", 2, 10, 101.0, 2, fee=1.5)
    link.put_execution("F3", "SIMA", "A", "ESZ6", 1, 1, 100.0, 3, fee=-0.25)  # a rebate
    flushed(link)
    fees = {r["exec_id"]: r["fee"] for r in db.rows(m.executions)}
    assert fees == {"F1": 1.5, "F2": 1.5, "F3": -0.25}
    (pos,) = db.rows(m.positions)
    # +10 on the round trip, less 3.00 of fees, plus the 0.25 rebate
    assert (pos["qty"], pos["realized"]) == (1, 7.25)


def test_apply_fill_average_cost():
    p = (0, 0.0, 0.0)
    p = apply_fill(p, 1, 10, 100.0)
    p = apply_fill(p, 1, 10, 110.0)
    assert p == (20, 105.0, 0.0)
    p = apply_fill(p, 2, 5, 115.0)
    assert p == (15, 105.0, 50.0)
    p = apply_fill(p, 2, 15, 100.0)
    assert p == (0, 0.0, -25.0)
    p = apply_fill(p, 5, 3, 50.0)  # sell short opens a short
    assert p == (-3, 50.0, -25.0)
    p = apply_fill(p, 1, 3, 40.0)
    assert p == (0, 0.0, 5.0)


def test_identifiers_too_long_for_their_field_are_refused_and_take_no_number(link):
    with pytest.raises(ValueError, match="cl_ord_id 'X{33}' \\(33 bytes, at most 32\\)"):
        link.put_order("X" * 33, "SIMA", "ESZ6", 1, 1, 1.0, "day", OrdStatus.NEW, 0, 1, 0.0)
    with pytest.raises(ValueError, match="symbol"):
        link.put_execution("E" * 49, "SIMA", "A", "S" * 17, 1, 1, 1.0, 0)
    with pytest.raises(ValueError, match="session"):
        link.put_fix_seq("S" * 65, 1, 1)
    with pytest.raises(ValueError, match="more than the store takes"):
        link.put_fix_message("S", 1, b"x" * (64 * 1024 + 1))
    assert link.last_seq == 0
    # free text is cut at its width, never through a character
    seq = link.put_command(1, "u", "w", 1, Verb.PING, 0, 0, 0.0, 0.0, "é" * 40, 1, "r" * 200, 1)
    assert seq == 1


UUID = "0b5a1c8e-5f0e-4c1e-9d7b-6a1f2e3d4c5b"


def test_a_venues_identifiers_of_any_length_are_stored_whole(make_link, db):
    """A venue picks its OrderID (37) and ExecID (17): a UUID, or much longer, is kept whole,
    also when the record wraps round the end of the ring."""
    link = make_link(capacity=16)
    ids = [UUID, UUID * 3, "V" * 300, "é" * 1500, "x" * 33]
    for k, vo in enumerate(ids * 3):
        cl = f"HD-{k}"
        link.put_order(cl, "SIMA", "ESZ6", 1, 10, 5000.0, "day", OrdStatus.NEW, 0, 10, 0.0, vo,
                       "", 1, 1)
        link.put_execution(f"{vo}-exec-{k}", "SIMA", cl, "ESZ6", 1, 1, 5000.0, k + 1)
        link.put_order(f"HD-short-{k}", "SIMA", "ESZ6", 1, 10, 5000.0, "day", OrdStatus.NEW, 0,
                       10, 0.0, "V-1", "", 1, 1)
        link.poll()
    flushed(link)
    assert link.stats()["bad"] == 0
    rows = {r["cl_ord_id"]: r["venue_order_id"] for r in db.rows(m.orders)}
    assert [rows[f"HD-{k}"] for k in range(15)] == ids * 3
    assert all(rows[f"HD-short-{k}"] == "V-1" for k in range(15))
    execs = {r["cl_ord_id"]: r["exec_id"] for r in db.rows(m.executions)}
    assert [execs[f"HD-{k}"] for k in range(15)] == [f"{vo}-exec-{k}" for k, vo in enumerate(ids * 3)]
    assert record_slots(Kind.ORDER, len("é".encode()) * 1500) > 10


def test_free_text_is_cut_on_a_character_boundary(link, db):
    link.put_command(1, "ünïcødé-üser-nàme", "w", 1, Verb.PING, 0, 0, math.inf, 0.0, "é" * 40,
                     AckStatus.REJECTED, "r" * 200, 1)
    link.put_command(2, "u", "w", 9, 99, 7, 0, 0.0, 0.0, "", 9, "", 2)  # unknown numbers kept
    flushed(link)
    a, b = db.rows(m.commands, order_by=m.commands.c.cmd_id)
    assert a["text"] == "é" * 24 and a["reason"] == "r" * 96 and a["arg0"] == 0.0
    assert len(a["user"].encode()) <= 16 and a["user"].startswith("ünïcødé")
    assert (b["role"], b["verb"], b["scope"], b["status"]) == ("#9", "#99", "#7", "#9")


def test_a_fix_message_wraps_round_the_end_of_the_ring(make_link, db):
    link = make_link(capacity=16)
    msgs = [(s, bytes([65 + s % 26]) * (300 + 97 * s)) for s in range(1, 37)]
    for s, raw in msgs:
        link.put_fix_message("W", s, raw)
        link.poll()
    flushed(link)
    got = db.rows(m.fix_messages, order_by=m.fix_messages.c.seq)
    assert [(r["seq"], bytes(r["raw"])) for r in got] == msgs
    assert max(record_slots(Kind.FIX_MSG, len(r)) for _, r in msgs) * SLOT > 3000


def test_close_flushes_stops_the_writer_and_leaves_nothing(make_link, instance, db):
    link = make_link()
    pid = link.writer_pid
    for i in range(500):
        link.put_kill("global", 0, 0, i % 2 == 0, "u", "r", i + 1)
    assert link.close() == 0  # no explicit flush: close waits for every ack
    assert db.count(m.kill_events) == 500
    assert not segment_exists(segment_name(instance))
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(pid, 0)


def test_kill_states_and_scope_names_are_kept_for_every_scope(link, db):
    """The risk engine's states (active, reducing, halted) and scopes (strategy, venue, …):
    switches of several scopes changing in one nanosecond are all kept, a replay of any is not
    written twice."""
    link.put_kill("global", Scope.GLOBAL, 0, True, "engine", "daily loss", 50)
    link.put_kill("strategy:pairs", 2, 0, True, "engine", "drawdown", 50, state="reducing",
                  scope_name="strategy:pairs")
    link.put_kill("strategy:momo", 2, 1, True, "engine", "drawdown", 50, state="halted",
                  scope_name="strategy:momo")
    link.put_kill("strategy:pairs", 2, 0, True, "bob", "no more adding", 51, state="halted",
                  scope_name="strategy:pairs")
    link.put_kill("strategy:pairs", 2, 0, False, "bob", "calm again", 52, state="active",
                  scope_name="strategy:pairs")
    link.put_kill("strategy:pairs", 2, 0, False, "bob", "calm again", 52, state="active",
                  scope_name="strategy:pairs")  # the same event again: one row
    link.put_kill("u" * 24, 5, 3, True, "ü" * 20, "r", 53)  # longest name, user cut at 32 B
    flushed(link)
    rows = [(r["ts_ns"], r["scope_name"], r["state"], r["tripped"], r["user"])
            for r in db.rows(m.kill_events, order_by=m.kill_events.c.ts_ns)]
    assert sorted(rows[:3]) == [(50, "global", "halted", True, "engine"),
                                (50, "strategy:momo", "halted", True, "engine"),
                                (50, "strategy:pairs", "reducing", True, "engine")]
    assert rows[3:5] == [(51, "strategy:pairs", "halted", True, "bob"),
                         (52, "strategy:pairs", "active", False, "bob")]
    assert rows[5][1] == "#5:" + "u" * 24 or rows[5][1] == "trader:" + "u" * 24
    assert rows[5][4] == "ü" * 16 and rows[5][2] == "halted"
    assert link.stats()["bad"] == 0


def test_kill_states_that_contradict_tripped_are_refused_at_once(link):
    with pytest.raises(ValueError, match="kill state 'stopped' with tripped True"):
        link.put_kill("global", 0, 0, True, "u", "r", 1, state="stopped")
    with pytest.raises(ValueError, match="kill state 'active' with tripped True"):
        link.put_kill("global", 0, 0, True, "u", "r", 1, state="active")
    with pytest.raises(ValueError, match="scope_name 's{49}' \\(49 bytes, at most 48\\)"):
        link.put_kill("global", 0, 0, True, "u", "r", 1, scope_name="s" * 49)
    with pytest.raises(ValueError, match="needs a scope and a key, was scope '', key 'k'"):
        link.put_limit("u", "trader", "w", "", "k", "1", "2", "", 1)
    assert link.last_seq == 0


def test_limit_changes_keep_long_texts_cut_and_no_nul(link, db):
    link.put_limit("ana", "risk_manager", "ws-3", "strategy:pairs", "max_position", "",
                   "x" * 300, "é" * 200, 7)  # a new limit (no old value), long texts
    link.put_limit("ana", "risk_manager", "ws\0-3", "default", "collar_bps", "200", "",
                   "removed", 8)  # NUL in a text: gone (PostgreSQL stores none)
    link.put_limit("ana", "risk_manager", "ws-3", "default", "collar_bps", "200", "",
                   "removed", 8)  # the same change again: one row
    flushed(link)
    a, b = db.rows(m.limit_changes, order_by=m.limit_changes.c.ts_ns)
    assert (a["old_value"], a["new_value"], a["reason"]) == ("", "x" * 256, "é" * 128)
    assert (b["workstation"], b["new_value"], b["key"]) == ("ws-3", "", "collar_bps")
    assert link.stats()["bad"] == 0


def test_a_command_id_beyond_64_bits_and_nul_in_text_are_handled(link, db):
    bad = link.put_command(2**64 - 1, "u", "w", 1, Verb.PING, 0, 0, 0.0, 0.0, "", 1, "", 1)
    ok = link.put_command(5, "u\0v", "w", 1, Verb.PING, 0, 0, 0.0, 0.0, "a\0b", 1, "", 2)
    flushed(link)
    assert link.durable(bad) and link.durable(ok) and link.stats()["bad"] == 1
    (row,) = db.rows(m.commands)
    assert (row["cmd_id"], row["user"], row["text"]) == (5, "uv", "ab")


def test_upserts_compile_for_postgresql_and_sqlite():
    for dialect, name in ((postgresql.dialect(), "postgresql"), (sqlite.dialect(), "sqlite")):
        sql = str(m.upsert(m.orders, name, keep=("created_ns",)).compile(dialect=dialect))
        assert "ON CONFLICT (cl_ord_id) DO UPDATE SET" in sql
        assert "created_ns = excluded.created_ns" not in sql
        assert "status = excluded.status" in sql
        sql = str(m.insert_ignore(m.commands, name).compile(dialect=dialect))
        assert "ON CONFLICT DO NOTHING" in sql
    with pytest.raises(ValueError, match="dialect 'mysql' is not supported"):
        m.open_db("mysql://u:secret@h/db")


def test_record_kinds_are_stable_numbers():
    # written into shared memory: a renumbering would need a new STORE_VERSION
    assert {k.name: k.value for k in Kind} == {"ORDER": 1, "EXECUTION": 2, "COMMAND": 3,
                                               "KILL": 4, "FIX_SEQ": 5, "FIX_MSG": 6,
                                               "FIX_RESET": 7, "LIMIT": 8, "ORDER_TAG": 9}


def test_order_tags_and_executions_rebuild_every_book(link, db, url):
    from engine.store import load
    from tests.risk._desk import Desk

    link.put_order_tag("A1", "strategy:s1", "", 1)
    link.put_order_tag("A2", "manual:alice", "acc2", 2)
    link.put_order_tag("A1", "manual:bob", "", 3)  # a second tag for one order: the first stands
    link.put_execution("X1", "SIMA", "A1", "AAA", 1, 10, 100.0, 4, fee=1.0)
    link.put_execution("X2", "SIMA", "A2", "AAA", 2, 4, 101.0, 5)
    link.put_execution("X3", "SIMA", "A3", "BBB", 1, 2, 50.0, 6)  # no tag: the desk's own
    flushed(link)
    r = load(url)
    assert r.order_tags == {"A1": ("strategy:s1", ""), "A2": ("manual:alice", "acc2")}
    assert [e[1] for e in r.executions] == ["A1", "A2", "A3"]
    d = Desk({"strategy": {"s1": {}}, "account": {"acc2": {}}})
    assert d.risk.restore_books(r.executions, r.order_tags) == 3
    assert (d.position("AAA"), d.position("AAA", "strategy:s1"),
            d.position("AAA", "account:acc2"), d.position("AAA", "account:main"),
            d.position("BBB", "account:main")) == (6, 10, -4, 10, 2)
    p = d.risk.portfolio
    assert p.realized[p.book_of("strategy:s1")][0] == -1.0  # its fee


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_writer_keeps_off_the_cpus_the_engine_is_pinned_to(make_link):
    before = os.sched_getaffinity(0)
    hot = min(before)
    os.sched_setaffinity(0, {hot})  # as the engine pins its hot thread
    try:
        link = make_link()
    finally:
        os.sched_setaffinity(0, before)
    cpus = os.sched_getaffinity(link.writer_pid)
    assert hot not in cpus and cpus
    assert flushed(link)
