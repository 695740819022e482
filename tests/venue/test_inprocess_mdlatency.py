"""Market-data latency at the in-process simulated venue: its exchange mirrors the recorded
market at each record's exchange time (``engine.venue.mdlatency``), ahead of what the engine
receives. The real InProcessVenue and ExchangeTimeBooks, MD_EVENT records built by hand, a
clock the test passes in."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.events import ASK, BID, DELETE, SELL, STATUS, TRADE
from engine.venue.inprocess import InProcessVenue
from engine.venue.mdlatency import NEVER, ExchangeTimeBooks, exchange_times
from tests.book._records import q, records, snapshot
from tests.venue.test_inprocess import AAA, BBB, LAT, MS, T0, fills, order, reports, run_until

US = 1_000


def timed(rows: list[dict], exch_ns: int, recv_ns: int) -> list[dict]:
    for r in rows:
        r["exch_ns"], r["recv_ns"] = exch_ns, recv_ns
    return rows


# -- exchange times ------------------------------------------------------------------------------
def test_recorded_times_carry_the_last_latency_over_records_without_one_and_never_go_back():
    rec = records(
        q(0, BID, DELETE, exch_ns=1000, recv_ns=1400),  # 400 ns of feed latency
        dict(kind=STATUS, exch_ns=0, recv_ns=1500),  # none stamped: the last latency, 400
        q(0, BID, DELETE, exch_ns=1700, recv_ns=1600),  # stamped after receipt: 400 again
        q(0, BID, DELETE, exch_ns=1000, recv_ns=1650),  # 650: stamped before the one before
    )
    t, last = exchange_times(rec, None)
    assert t.tolist() == [1000, 1100, 1200, 1200] and last == 650
    # the next batch goes on from there: never before 1200, the latency carried
    more = records(dict(kind=STATUS, exch_ns=0, recv_ns=1800))
    t2, _ = exchange_times(more, None, last_ns=1200, last_latency_ns=last)
    assert t2.tolist() == [1200]
    fixed, _ = exchange_times(rec, 300)
    assert fixed.tolist() == [1100, 1200, 1300, 1350]


def test_advance_applies_records_at_their_exchange_time_never_before():
    view = ExchangeTimeBooks(2, 1, 5, 1, latency_ns=None, step_ns=MS)
    rows = timed(snapshot(1, [(9990, 300)], [(10000, 200)]), T0, T0 + 5 * MS)
    rows += timed(snapshot(0, [(1, 1)], [(2, 1)]), T0 - MS, T0)  # another venue's: not kept
    assert view.add(records(*rows)) == 4  # its own venue's only
    assert view.next_ns == T0 and view.due_ns == T0 + MS  # the end of its cell
    assert len(view.advance(T0 - 1)) == 0 and view.books.book[1, 0, BID, 0].tolist() == [0, 0]
    assert view.advance(T0).tolist() == [0]
    assert view.books.book[1, 0, BID, 0].tolist() == [9990, 300]
    assert view.books.book[0, 0, BID, 0].tolist() == [0, 0]
    assert view.due_ns == NEVER and len(view.advance(T0 + 10 * MS)) == 0


def test_a_fixed_latency_is_positive():
    with pytest.raises(ValueError, match="latency_ns"):
        ExchangeTimeBooks(1, 1, 5, 0, latency_ns=0, step_ns=MS)


# -- the venue ---------------------------------------------------------------------------------------
def venue(*rows: dict, latency_ns: int | None = None) -> tuple[InProcessVenue, int]:
    view = ExchangeTimeBooks(1, 2, 5, 0, latency_ns=latency_ns, step_ns=MS)
    view.add(records(*rows))
    v = InProcessVenue("SIMA", [AAA, BBB], latency_ns=LAT)
    v.use_exchange_time(view)
    v.poll(T0)
    _, now = run_until(v, T0 + 2 * LAT, T0)
    assert v.up
    return v, now


BOOK = timed(snapshot(0, [(9990, 300), (9989, 400)], [(10000, 200), (10001, 500)]),
             T0 - 10 * MS, T0 - 5 * MS)


def test_a_marketable_order_takes_what_the_exchange_shows_when_it_arrives():
    # the exchange's 100.00 ask is taken 1 ms after logon; we receive that 5 ms later
    moved = T0 + 2 * LAT + MS
    v, now = venue(*BOOK, q(0, ASK, DELETE, 0, exch_ns=moved, recv_ns=moved + 5 * MS))
    now = moved + 100 * US  # our book still shows 100.00 (200) for another 4.9 ms
    v.send(b"D", order("b1", "buy", 300, "100.01", tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(300, b"100.01")]


def test_an_order_that_arrives_before_the_move_still_meets_the_old_book():
    moved = T0 + 2 * LAT + MS
    v, now = venue(*BOOK, q(0, ASK, DELETE, 0, exch_ns=moved, recv_ns=moved + 5 * MS))
    now = moved - LAT - 1  # it arrives 1 ns before the level goes
    v.send(b"D", order("b1", "buy", 300, "100.01", tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(200, b"100.00"), (100, b"100.01")]


def test_a_resting_order_fills_when_the_exchange_trades_not_when_we_hear_of_it():
    traded = T0 + 20 * MS + 300 * US
    seen = traded + 5 * MS
    v, now = venue(*BOOK, dict(kind=TRADE, venue=0, side=SELL, price=9990, size=400,
                               exch_ns=traded, recv_ns=seen),
                   q(0, BID, DELETE, 0, exch_ns=traded, recv_ns=seen))
    v.send(b"D", order("b1", "buy", 100, "99.90"), now)  # 300 ahead of it
    events, now = run_until(v, now + 2 * LAT, now)
    assert [r[39] for r in reports(events)] == [b"0"]
    # the venue asks to be stepped at the end of the trade's cell (1 ms): it fills then, and
    # the report reaches us a latency later, long before the trade's record does
    assert v.next_due_ns() == traded - traded % MS + MS
    events, now = run_until(v, traded - traded % MS + MS + LAT, now)
    assert fills(reports(events)) == [(100, b"99.90")]
    assert now < seen


def test_the_engines_market_moves_do_not_reach_an_exchange_with_its_own_books():
    v, now = venue(*BOOK)
    v.send(b"D", order("b1", "buy", 100, "99.90"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    before = v.counters["syncs"]
    v.on_market(np.array([0, 1]), now + MS)  # the engine's books moved: nothing at exch time
    assert v.counters["syncs"] == before and v.next_due_ns() > now + MS
