"""The engine's drop copy: the reconciliation alone (real FIX reports, times passed in), the
execution engine with an in-process simulated venue on a simulated clock, and the engine
against a real venue process over loopback TCP with another counterparty trading."""

from __future__ import annotations

import logging
import re
import select
import socket
import time

import pytest

from engine.core.intents import OrderIntent
from engine.core.profile import InstrumentConfig, VenueLinkConfig
from engine.execution.dropcopy import (
    MISMATCH,
    MISSING_IN_DROP_COPY,
    MISSING_IN_ENGINE,
    POSITION,
    Reconciler,
)
from engine.execution.engine import ExecutionConfig, ExecutionEngine
from engine.execution.orders import ClOrdIds
from engine.execution.venues import FixVenueClient
from engine.fix.codec import decode, encode, utc_timestamp
from engine.fix.store import MemoryStore
from engine.venue.inprocess import InProcessVenue
from tests.execution.test_engine_sor import Maker
from tests.venue.test_inprocess import market, order
from tests.venue.test_server import venue_factory  # noqa: F401 (fixture)

AAA = InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)
BBB = InstrumentConfig(symbol="BBB", tick=0.25, price=50.0)
T0 = 1_795_400_000_000_000_000
MS = 1_000_000
S = 1_000_000_000
ERROR, INFO = logging.ERROR, logging.INFO


class Notes:
    """What notify told the desks: ``items``, (level, text, instrument)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str, int]] = []

    def __call__(self, level: int, text: str, instrument: int = -1) -> None:
        self.items.append((level, text, instrument))

    def errors(self) -> list[str]:
        return [t for lvl, t, _ in self.items if lvl >= logging.WARNING and "drop copy" in t
                and "DOWN" not in t]


def copy(exec_id: str, cl: str = "HELM-1", qty=10, px: str = "100.00", side: bytes = b"1",
         account: bytes | None = b"HELM", symbol: bytes = b"AAA", exec_type: bytes = b"F",
         ts: int = T0, **extra):
    """A drop copy of an ExecutionReport as the venue sends it (decoded from real bytes)."""
    body = [(37, b"OID-1"), (11, cl), (17, exec_id), (150, exec_type), (39, b"1"),
            (55, symbol), (54, side), (38, 100), (32, qty), (31, px), (151, 0), (14, qty),
            (6, px), (60, utc_timestamp(ts))]
    body = [(t, extra.pop(f"_{t}", v)) for t, v in body]
    body = [(t, v) for t, v in body if v is not None]
    if account is not None:
        body.append((1, account))
    return decode(encode(b"8", body, sender=b"SIMA", target=b"HELMDC", seq=1,
                         sending_time_ns=ts))


@pytest.fixture
def rec() -> tuple[Reconciler, Notes]:
    notes = Notes()
    return Reconciler("SIMA", "HELM", grace_ms=2000, notify=notes,
                      index={"AAA": 0, "BBB": 1}, is_ours=lambda cl: cl.startswith("HELM-")), notes


# -- the reconciliation alone --------------------------------------------------------------------
def test_agreeing_fills_raise_nothing_whichever_side_comes_first(rec):
    r, notes = rec
    r.on_copy(copy("E1", qty=10), T0)
    r.on_engine_fill("E1", "HELM-1", "AAA", 1, 10, 100.0, T0 + MS)
    r.on_engine_fill("E2", "HELM-2", "AAA", 2, 4, 100.5, T0 + MS)
    r.on_copy(copy("E2", cl="HELM-2", qty=4, px="100.50", side=b"2"), T0 + 5 * MS)
    r.on_copy(copy("E3", exec_type=b"0"), T0 + 5 * MS)  # an ack: not an execution
    assert r.sweep(T0 + 60 * S) == 0
    assert notes.items == [] and r.differences() == [] and r.pending() == 0
    assert r.positions() == r.engine_positions() == {"AAA": 6}
    assert (r.counters["matched"], r.counters["reports"], r.counters["fills"]) == (2, 3, 2)


def test_a_fill_missing_in_the_engine_is_raised_after_the_grace_period(rec):
    r, notes = rec
    r.on_copy(copy("E1", cl="HELM-7", qty=10), T0)
    assert r.next_due_ns() == T0 + 2 * S
    assert r.sweep(T0 + 2 * S - 1) == 0 and notes.items == []  # the engine's may be in flight
    assert r.sweep(T0 + 2 * S) == 1
    assert notes.items == [(ERROR, "SIMA drop copy: execution E1 of order HELM-7 (buy 10 AAA @ "
                                   "100) is in the drop copy, not in the engine after 2 s", 0)]
    assert r.counters["missing_in_engine"] == 1
    assert [(d.kind, d.exec_id, d.cl_ord_id) for d in r.differences()] == [
        (MISSING_IN_ENGINE, "E1", "HELM-7"), (POSITION, "", "")]
    assert str(r.differences()[1]) == ("SIMA drop copy: AAA position +10 in the drop copy, +0 "
                                       "in the engine")
    assert r.sweep(T0 + 10 * S) == 0  # raised once
    # the engine's report comes after all, and agrees: the difference is resolved
    r.on_engine_fill("E1", "HELM-7", "AAA", 1, 10, 100.0, T0 + 11 * S)
    assert notes.items[-1] == (INFO, "SIMA drop copy: execution E1 of order HELM-7: both sides "
                                     "now have it and agree", 0)
    assert r.differences() == [] and r.counters["resolved"] == 1


def test_a_fill_missing_in_the_drop_copy_waits_while_the_copy_is_down(rec):
    r, notes = rec
    r.on_engine_fill("E9", "HELM-3", "BBB", 2, 5, 49.75, T0)
    assert r.sweep(T0 + 3 * S, copy_since=None) == 0  # the copy is down: the venue keeps it
    assert r.sweep(T0 + 3 * S, copy_since=T0 + 2 * S) == 0  # back, its copies may be coming
    assert notes.items == []
    assert r.sweep(T0 + 4 * S, copy_since=T0 + 2 * S) == 1
    assert notes.items == [(ERROR, "SIMA drop copy: execution E9 of order HELM-3 (sell 5 BBB @ "
                                   "49.75) is in the engine, not in the drop copy after 2 s", 1)]
    assert r.counters["missing_in_drop_copy"] == 1
    assert r.differences()[0].kind == MISSING_IN_DROP_COPY
    assert r.positions() == {} and r.engine_positions() == {"BBB": -5}


def test_the_same_exec_id_with_another_qty_is_a_mismatch_at_once(rec):
    r, notes = rec
    r.on_engine_fill("E1", "HELM-1", "AAA", 1, 10, 100.0, T0)
    r.on_copy(copy("E1", qty=7), T0 + MS)
    assert notes.items == [(ERROR, "SIMA drop copy: execution E1 of order HELM-1 differs: qty "
                                   "10 in the engine, 7 in the drop copy", 0)]
    r.on_engine_fill("E2", "HELM-1", "AAA", 1, 3, 100.0, T0)
    r.on_copy(copy("E2", qty=3, px="100.01", side=b"2"), T0 + MS)
    assert notes.items[-1][1] == ("SIMA drop copy: execution E2 of order HELM-1 differs: side "
                                  "buy in the engine, sell in the drop copy; price 100 in the "
                                  "engine, 100.01 in the drop copy")
    assert r.counters["mismatches"] == 2 and r.sweep(T0 + 60 * S) == 0
    kinds = [(d.kind, d.exec_id) for d in r.differences()]
    assert kinds == [(MISMATCH, "E1"), (MISMATCH, "E2"), (POSITION, "")]


def test_other_counterparties_are_counted_not_reconciled(rec):
    r, notes = rec
    r.on_copy(copy("E1", account=b"HELM2", cl="X-1"), T0)
    r.on_copy(copy("E2", account=None, cl="X-2"), T0)  # no Account, not an order of ours
    r.on_copy(copy("E3", account=None, cl="HELM-5", qty=2), T0)  # no Account, but ours
    r.on_copy(copy("E3", account=None, cl="HELM-5", qty=2), T0)  # a duplicate: once
    assert r.counterparties == {"HELM2": 1}
    assert (r.counters["others"], r.counters["ours"], r.counters["duplicates"]) == (2, 1, 1)
    assert r.positions() == {"AAA": 2}
    assert r.sweep(T0 + 3 * S) == 1 and "execution E3 of order HELM-5" in notes.items[0][1]


def test_the_engines_reconciled_fill_absorbs_the_real_executions(rec):
    r, notes = rec
    r.on_copy(copy("E1", qty=4), T0)
    r.on_copy(copy("E2", qty=6), T0 + MS)
    # the engine's session was down; its status request settles the order: one synthetic fill
    r.on_engine_fill("reconciled-HELM-1-10", "HELM-1", "AAA", 1, 10, 100.0, T0 + S)
    assert r.sweep(T0 + 60 * S) == 0 and notes.items == [] and r.differences() == []
    assert r.counters["absorbed"] == 2
    assert r.positions() == r.engine_positions() == {"AAA": 10}


def test_bad_and_early_reports_are_counted_never_raised(rec):
    r, notes = rec
    r.on_copy(copy("E1", _17=None), T0)
    r.on_copy(copy("E2", qty="abc"), T0)
    r.on_copy(copy("E3", side=b"7"), T0)
    r.on_copy(copy("E4", px="-1"), T0)
    r.on_copy(decode(encode(b"j", [(45, 3), (372, b"D"), (380, b"6")], sender=b"SIMA",
                            target=b"HELMDC", seq=2, sending_time_ns=T0)), T0)
    assert r.counters["bad_reports"] == 4 and r.counters["other_messages"] == 1
    r.since(T0)
    r.on_copy(copy("E5", ts=T0 - S), T0)  # kept by the venue from before we started
    assert r.counters["before_start"] == 1
    assert r.positions() == {} and r.sweep(T0 + 60 * S) == 0 and notes.items == []


# -- the execution engine with an in-process venue, on a simulated clock -------------------------
class SimDesk:
    """An execution engine over an in-process venue with a drop copy, stepped as a backtest
    steps its clock (to each time something is due)."""

    def __init__(self, grace_ms: int = 2000) -> None:
        cfg = VenueLinkConfig(name="SIMA", kind="sim", drop_copy_sender="HELMDC",
                              symbols=("AAA", "BBB"), latency_us=150,
                              drop_copy_grace_ms=grace_ms)
        self.venue = InProcessVenue("SIMA", [AAA, BBB], latency_ns=150_000)
        self.notes = Notes()
        self.eng = ExecutionEngine(ExecutionConfig(venues=(cfg,), instruments=(AAA, BBB)),
                                   [self.venue], ClOrdIds("HELM", 1), notify=self.notes)
        self.venue.books = market()  # the other participants: a recorded book of AAA
        self.dc = self.eng.drop_copies["SIMA"]
        self.now = T0
        self.run(T0 + S)
        assert self.venue.up and self.dc.up

    def run(self, until: int) -> None:
        while True:
            nxt = self.eng.next_due_ns()
            if nxt > until:
                self.now = until
                return
            self.now = max(self.now, nxt)
            self.eng.poll(self.now)

    def submit(self, symbol: str, side: int, qty: int, price: float, tif: str = "ioc"):
        intent = OrderIntent(symbol=symbol, side=side, qty=qty, price=price, venue="SIMA",
                             tif=tif)
        o = self.eng.submit(intent, self.now)
        assert not isinstance(o, str), o
        return o


def oms_positions(eng: ExecutionEngine) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in eng.oms.orders.values():
        if o.cum_qty:
            out[o.symbol] = out.get(o.symbol, 0) + (o.cum_qty if o.side == 1 else -o.cum_qty)
    return out


def test_engine_fills_agree_with_the_in_process_drop_copy():
    d = SimDesk()
    buy = d.submit("AAA", 1, 250, 100.01)  # takes 200 @ 100.00 and 50 @ 100.01
    sell = d.submit("AAA", 2, 40, 99.90)
    d.run(d.now + 10 * S)
    assert (buy.cum_qty, sell.cum_qty) == (250, 40)
    assert d.notes.errors() == [] and d.dc.differences() == []
    assert d.dc.positions() == d.dc.engine_positions() == oms_positions(d.eng) == {"AAA": 210}
    snap = d.dc.snapshot()
    assert (snap["matched"], snap["ours"], snap["pending"], snap["up"]) == (3, 3, 0, True)
    assert d.dc.reconciler.counterparties == {"HELM": 3}


def test_an_execution_the_engine_never_saw_is_raised_after_the_grace_period():
    d = SimDesk()
    d.submit("AAA", 1, 20, 100.00)
    # an order of our CompID that the engine did not send (another process, a script)
    d.venue.send(b"D", order("X1", "buy", 7, "100.00", tif=b"3"), d.now)
    sent = d.now
    d.run(sent + 1900 * MS)
    assert d.notes.errors() == []  # within the grace period
    assert d.eng.oms.counters["unmatched"] >= 1  # its reports reached the OMS, unknown
    d.run(sent + 2100 * MS)
    (err,) = d.notes.errors()
    m = re.fullmatch(r"SIMA drop copy: execution (\S+) of order X1 \(buy 7 AAA @ 100\) is in the "
                     r"drop copy, not in the engine after 2 s", err)
    assert m, err
    (missing, pos) = d.dc.differences()
    assert (missing.kind, missing.exec_id, pos.kind) == (MISSING_IN_ENGINE, m.group(1), POSITION)
    assert d.dc.positions() == {"AAA": 27} and oms_positions(d.eng) == {"AAA": 20}
    assert d.dc.snapshot()["missing_in_engine"] == 1


# -- the execution engine against a real venue process over TCP ----------------------------------
def drive(eng: ExecutionEngine, cond, what: str, timeout: float = 15.0) -> None:
    """The engine's loop in miniature: wait on its sockets (≤ 10 ms), poll."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        fds = eng.fds()
        if fds:
            select.select(fds, [], [], 0.01)
        else:
            time.sleep(0.005)
        eng.poll(time.time_ns())


def test_engine_and_another_counterparty_trade_and_the_drop_copy_agrees(
        venue_factory):  # noqa: F811
    venue = venue_factory(extra='drop_copy = ["HELMDC"]').start()
    maker = Maker(venue.port, "SIMA")  # HELM2: rests what the engine takes
    maker.rest("M1", 2, 300, "100.00")
    cfg = VenueLinkConfig(name="SIMA", host="127.0.0.1", port=venue.port, sender="HELM",
                          target="SIMA", heartbeat_s=5, market_data=False,
                          symbols=("AAA", "BBB"), drop_copy_sender="HELMDC",
                          drop_copy_grace_ms=500)
    notes = Notes()
    eng = ExecutionEngine(ExecutionConfig(venues=(cfg,), instruments=(AAA, BBB)),
                          [FixVenueClient(cfg, MemoryStore())],
                          ClOrdIds("HELM", int(time.time() * 1000)), notify=notes)
    dc = eng.drop_copies["SIMA"]
    try:
        drive(eng, lambda: eng.clients["SIMA"].up and dc.up, "both sessions to log on")
        a = eng.submit(OrderIntent(symbol="AAA", side=1, qty=50, price=100.0,
                                   venue="SIMA", tif="ioc"), time.time_ns())
        drive(eng, lambda: a.cum_qty == 50 and dc.snapshot()["matched"] == 1, "the first fill")
        # the drop copy's connection breaks; a fill happens meanwhile; the copy reconnects,
        # resumes its sequence numbers and gets what the venue kept
        seq = dc.session.store.next_target_seq
        dc.link.sock.shutdown(socket.SHUT_RDWR)
        drive(eng, lambda: not dc.up, "the drop copy to drop")
        b = eng.submit(OrderIntent(symbol="AAA", side=1, qty=20, price=100.0,
                                   venue="SIMA", tif="ioc"), time.time_ns())
        drive(eng, lambda: b.cum_qty == 20, "the second fill")
        drive(eng, lambda: dc.up and dc.snapshot()["matched"] == 2, "the copy after reconnect")
        snap = dc.snapshot()
        assert (snap["logons"], snap["reset_logons"]) == (2, 1)  # the second one resumed
        assert dc.session.store.next_target_seq > seq
        # nothing waits for its other side, so nothing can be raised later; the maker's fills
        # were seen as another counterparty's
        assert snap["pending"] == 0 and notes.errors() == [] and dc.differences() == []
        assert dc.reconciler.counterparties == {"HELM": 2, "HELM2": 2}
        assert dc.positions() == oms_positions(eng) == {"AAA": 70}
    finally:
        eng.close(time.time_ns())
        maker.close()


def test_a_drop_copy_that_never_logs_on_is_reported_once(venue_factory):  # noqa: F811
    venue = venue_factory().start()  # serves no drop copy: HELMDC is refused
    cfg = VenueLinkConfig(name="SIMA", kind="fix", host="127.0.0.1", port=venue.port,
                          sender="HELM", target="SIMA", market_data=False,
                          symbols=("AAA",), drop_copy_sender="HELMDC")
    notes = Notes()
    eng = ExecutionEngine(ExecutionConfig(venues=(cfg,), instruments=(AAA,)),
                          [FixVenueClient(cfg, MemoryStore())], ClOrdIds("HELM", 1),
                          notify=notes)
    dc = eng.drop_copies["SIMA"]
    try:
        drive(eng, lambda: eng.clients["SIMA"].up and dc.link.connects >= 1, "both connect")
        start = time.time_ns()
        # the desks are told once, NOT_UP_WARN_NS after start: poll on a clock ahead of time
        for k in range(3):
            eng.poll(start + (11 + k) * S)
        told = [(lvl, t) for lvl, t, _ in notes.items if "not logged on" in t]
        assert len(told) == 1 and told[0][0] == logging.WARNING, told
        # the reason is the connection's last: the venue refuses HELMDC and closes
        assert told[0][1].startswith("SIMA drop copy not logged on as HELMDC: "), told
        assert not dc.up and dc.snapshot()["logons"] == 0
    finally:
        eng.close(time.time_ns())


@pytest.mark.parametrize("extra, why", [
    ('drop_copy_sender = "HELM"', "[[venues]][0].drop_copy_sender: 'HELM' is the order "
                                  "session's sender too"),
    ('drop_copy_sender = "bad id"', "[[venues]][0].drop_copy_sender: must be a CompID"),
    ('drop_copy_sender = "HELMDC"\ndrop_copy_grace_ms = -1',
     "[[venues]][0].drop_copy_grace_ms: must be between 0 and 3600000, was -1"),
])
def test_profile_drop_copy_sender_is_validated(tmp_path, extra, why):
    import tomllib

    from engine.core.profile import ProfileError, parse_profile

    text = ('[[instruments]]\nsymbol = "AAA"\ntick = 0.01\nprice = 100.0\n'
            '[[venues]]\nname = "SIMA"\nkind = "sim"\n')
    with pytest.raises(ProfileError) as e:
        parse_profile(tomllib.loads(text + extra), tmp_path / "e.toml")
    assert why in str(e.value)
    ok = parse_profile(tomllib.loads(text + 'drop_copy_sender = "HELMDC"'), tmp_path / "e.toml")
    assert (ok.venues[0].drop_copy_sender, ok.venues[0].drop_copy_grace_ms) == ("HELMDC", 2000)
    assert parse_profile(tomllib.loads(text), tmp_path / "e.toml").venues[0].drop_copy_sender == ""
