"""The in-process simulated venue: two real FIX sessions through memory, the real exchange, a
real BookSet as the other participants, all on a clock the test passes in (no sleeps)."""

from __future__ import annotations

import pytest

from engine.book.books import BookSet, apply_batch
from engine.core.events import ASK, BID, CHANGE, NEW, STATUS, STATUS_HALTED, STATUS_OK
from engine.core.profile import InstrumentConfig
from engine.fix.session import AppMessage, Disconnect, LoggedOn, LoggedOut
from engine.venue.inprocess import NEVER, InProcessVenue
from tests.book._records import q, records, snapshot

AAA = InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)
BBB = InstrumentConfig(symbol="BBB", tick=0.25, price=50.0)
T0 = 1_795_400_000_000_000_000  # some day, ns
LAT = 150_000  # 150 µs each way
MS = 1_000_000
S = 1_000_000_000

# the recorded book of AAA (ticks of 0.01): 99.90/100.00, three levels of asks
BIDS = [(9990, 300), (9989, 400)]
ASKS = [(10000, 200), (10001, 500), (10002, 1000)]


# -- helpers -------------------------------------------------------------------------------------
def order(cl: str, side: str, qty: int, price: str | None = None, symbol: str = "AAA",
          tif: bytes = b"0") -> list:
    body = [(11, cl.encode()), (55, symbol.encode()), (54, b"1" if side == "buy" else b"2"),
            (38, qty)]
    body += [(40, b"2"), (44, price.encode())] if price is not None else [(40, b"1")]
    return body + [(59, tif)]


def cancel(cl: str, orig: str, symbol: str = "AAA", side: str = "buy") -> list:
    return [(11, cl.encode()), (41, orig.encode()), (55, symbol.encode()),
            (54, b"1" if side == "buy" else b"2")]


def fields(e) -> dict[int, bytes]:
    return dict(e.message.fields)


def reports(events) -> list[dict[int, bytes]]:
    return [fields(e) for e in events if type(e) is AppMessage and e.message.msg_type == b"8"]


def run_until(v: InProcessVenue, until: int, now: int) -> tuple[list, int]:
    """Step the clock to each time the venue is due, up to ``until`` (as a backtest does);
    return the events and the time reached."""
    events: list = []
    while True:
        nxt = v.next_due_ns()
        if nxt > until:
            return events, until
        now = max(now, nxt)
        events += v.poll(now)
        assert v.next_due_ns() > now, "a poll left work due now: the caller would spin"


def logged_on(latency_ns: int = LAT, **kw) -> tuple[InProcessVenue, int]:
    v = InProcessVenue("SIMA", [AAA, BBB], latency_ns=latency_ns, **kw)
    events = list(v.poll(T0))  # the first poll connects (with no latency: all of the logon)
    more, now = run_until(v, T0 + 2 * latency_ns, T0)
    events += more
    assert v.up and any(type(e) is LoggedOn for e in events)
    return v, now


def market(n_instruments: int = 2, bids=BIDS, asks=ASKS) -> BookSet:
    books = BookSet(n_venues=1, n_instruments=n_instruments, depth=5)
    assert apply_batch(books, records(*snapshot(0, bids, asks))) > 0
    return books


def quote(books: BookSet, side: int, action: int, level: int, price: int, size: int) -> None:
    assert apply_batch(books, records(q(0, side, action, level, price, size))) == 1


def fills(ers: list[dict]) -> list[tuple[int, bytes]]:
    return [(int(r[32]), r[31]) for r in ers if r[150] == b"F"]


# -- the session -----------------------------------------------------------------------------------
def test_logon_completes_after_two_latencies_and_next_due_says_when():
    v = InProcessVenue("SIMA", [AAA], latency_ns=LAT)
    assert v.next_due_ns() == 0 and not v.up and v.fileno() == -1  # the first poll connects
    assert v.send(b"D", order("early", "buy", 1, "99.00"), T0) is None  # not logged on
    assert v.poll(T0) == []
    assert v.next_due_ns() == T0 + LAT  # our Logon reaches the venue
    assert not v.poll(T0 + LAT)
    assert v.next_due_ns() == T0 + 2 * LAT  # its Logon reaches us
    assert not v.poll(T0 + 2 * LAT - 1) and not v.up
    events = v.poll(T0 + 2 * LAT)
    assert [type(e) for e in events] == [LoggedOn] and v.up
    assert v.session.last_received_ns == T0 + 2 * LAT
    # nothing in flight: the next thing due is our heartbeat, HeartBtInt after our Logon
    assert v.next_due_ns() == T0 + 30 * S
    assert v.counters["connects"] == 1 and v.counters["logons"] == 1


def test_idle_sessions_heartbeat_on_their_deadlines_without_test_requests():
    v, now = logged_on(heartbeat_s=5)
    steps = 0
    start = now
    while now < start + 600 * S:  # ten idle minutes, stepping the clock as a backtest does
        now = v.next_due_ns()
        assert not [e for e in v.poll(now) if type(e) is not AppMessage]
        steps += 1
    assert v.up and v.session.last_received_ns > start + 590 * S
    sent_each_way = 600 // 5
    assert sent_each_way - 2 <= v.counters["msgs_to_venue"] - 1 <= sent_each_way + 2
    assert abs(v.counters["msgs_to_engine"] - 1 - sent_each_way) <= 2
    assert v.session.counters["rejects_received"] == 0
    assert steps <= 4 * sent_each_way + 4  # timers and arrivals only: no once-a-second ticking


# -- orders without a market ---------------------------------------------------------------------
def test_limit_order_rests_its_report_arrives_after_two_latencies_and_a_cancel_cancels_it():
    v, now = logged_on()
    t = now + 7 * MS
    assert not v.poll(t)  # nothing due: an idle poll
    seq = v.send(b"D", order("c1", "buy", 100, "99.00"), t)
    assert seq == 2  # after the Logon
    assert v.next_due_ns() == t + LAT
    assert not v.poll(t + LAT)  # the venue has it; its answer is on the way
    assert v.next_due_ns() == t + 2 * LAT
    assert not v.poll(t + 2 * LAT - 1)
    (er,) = reports(v.poll(t + 2 * LAT))
    assert (er[150], er[39], er[11], er[151], er[44]) == (b"0", b"0", b"c1", b"100", b"99.00")
    assert v.exchange.live_orders("HELM") == 1
    t2 = t + 10 * MS
    v.send(b"F", cancel("c2", "c1"), t2)
    events, _ = run_until(v, t2 + 2 * LAT, t2)
    (er,) = reports(events)
    assert (er[150], er[39], er[11], er[41]) == (b"4", b"4", b"c2", b"c1")
    assert v.exchange.live_orders("HELM") == 0


def test_without_a_market_orders_rest_until_another_of_ours_crosses_them():
    v, now = logged_on(latency_ns=0)
    v.send(b"D", order("s1", "sell", 50, "101.00"), now)
    v.send(b"D", order("b1", "buy", 80, "101.00"), now)
    events, now = run_until(v, now + 1, now)
    ers = reports(events)
    assert [(r[11], r[150]) for r in ers] == [(b"s1", b"0"), (b"b1", b"0"), (b"b1", b"F"),
                                             (b"s1", b"F")]
    assert fills(ers) == [(50, b"101.00"), (50, b"101.00")]
    assert ers[-2][39] == b"1" and ers[-1][39] == b"2"


# -- the recorded market as the other participants ----------------------------------------------
def test_marketable_buy_takes_the_displayed_asks_best_first_with_fees():
    books = market()
    v, now = logged_on(books=books, fee_bps=1.0)
    v.send(b"D", order("b1", "buy", 900, "100.01"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    ers = reports(events)
    assert fills(ers) == [(200, b"100.00"), (500, b"100.01")]
    last = ers[-1]
    assert (last[39], last[14], last[151]) == (b"1", b"700", b"200")  # the rest rests at 100.01
    assert float(last[6]) == pytest.approx((200 * 100.00 + 500 * 100.01) / 700, abs=1e-6)
    assert float(ers[1][12]) == pytest.approx(200 * 100.00 * 1e-4)  # 1 bp on the first fill
    # our resting 200 at 100.01 has used the asks through 100.01: a sync does not show them
    # to it again (that would fill it twice); a market buy meanwhile finds 100.02
    v.on_market([0], now)
    v.send(b"D", order("m1", "buy", 50, None, tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(50, b"100.02")]
    # once it is gone, no market impact: the displayed asks are all there again
    v.send(b"F", cancel("c1", "b1"), now)
    v.send(b"D", order("m2", "buy", 250, None, tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    ers = reports(events)
    assert [r[150] for r in ers][:1] == [b"4"]
    assert fills(ers) == [(200, b"100.00"), (50, b"100.01")]
    assert float(ers[-1][6]) == pytest.approx((200 * 100.00 + 50 * 100.01) / 250, abs=1e-6)
    assert v.exchange.live_orders("HELM") == 0


def test_market_order_takes_at_most_the_displayed_size_and_the_rest_is_cancelled():
    books = market()
    v, now = logged_on(books=books)
    v.send(b"D", order("m1", "buy", 2000, None), now)
    events, now = run_until(v, now + 2 * LAT, now)
    ers = reports(events)
    assert fills(ers) == [(200, b"100.00"), (500, b"100.01"), (1000, b"100.02")]
    assert (ers[-1][150], ers[-1][39], ers[-1][14]) == (b"4", b"4", b"1700")


def test_touch_fills_a_resting_bid_when_the_recorded_ask_moves_down_to_it_and_not_before():
    # queue_model="none": the touch fill (the queue models: tests/venue/test_queue.py)
    books = market()
    v, now = logged_on(books=books, queue_model="none")
    v.send(b"D", order("b1", "buy", 100, "99.95"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [r[150] for r in reports(events)] == [b"0"]
    # the ask stays above: more size at 100.00, a new level behind it; no fill
    quote(books, ASK, CHANGE, 0, 10000, 900)
    v.on_market([0], now)
    quote(books, ASK, CHANGE, 0, 9999, 900)  # 99.99: closer, still above
    v.on_market([0], now + MS)
    events, now = run_until(v, now + 5 * MS, now)
    assert reports(events) == [] and v.exchange.live_orders("HELM") == 1
    # the ask comes down to 99.95: a touch fill at our price, up to that level's size
    t = now + MS
    quote(books, ASK, CHANGE, 0, 9995, 60)
    v.on_market([1, 0], t)  # BBB moved too: no orders there, nothing to do
    assert v.next_due_ns() == t + LAT
    assert not v.poll(t + LAT - 1)
    ers = reports(v.poll(t + LAT))
    assert fills(ers) == [(60, b"99.95")] and ers[0][39] == b"1"
    # the same 60 displayed does not fill us again; 100 more displayed there fills the rest
    v.on_market([0], t + MS)
    events, now = run_until(v, t + 5 * MS, t)
    assert reports(events) == []
    quote(books, ASK, CHANGE, 0, 9995, 160)
    v.on_market([0], now)
    events, now = run_until(v, now + 2 * LAT, now)
    ers = reports(events)
    assert fills(ers) == [(40, b"99.95")] and ers[0][39] == b"2"
    assert float(ers[0][6]) == pytest.approx(99.95)
    assert v.exchange.live_orders("HELM") == 0


def test_resting_sell_fills_when_the_recorded_bid_rises_to_it():
    books = market()
    v, now = logged_on(books=books)
    v.send(b"D", order("s1", "sell", 100, "99.93"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [r[150] for r in reports(events)] == [b"0"]
    quote(books, BID, CHANGE, 0, 9994, 500)
    v.on_market([0], now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(100, b"99.93")]


def test_a_level_inserted_ahead_costs_one_submit_the_others_keep_their_orders():
    books = market()  # the touch-fill model mirrors at every market move (queue models: lazily)
    v, now = logged_on(books=books, queue_model="none")
    v.send(b"D", order("b1", "buy", 100, "99.80"), now)  # rests: the instrument is working
    _, now = run_until(v, now + 2 * LAT, now)
    v.on_market([0], now)
    x = v.exchange.books[0].engine
    assert x.book_depth(5) == ([(9990, 300, 1), (9989, 400, 1), (9980, 100, 1)],
                               [(10000, 200, 1), (10001, 500, 1), (10002, 1000, 1)])
    submits, cancels = v.counters["mirror_submits"], v.counters["mirror_cancels"]
    quote(books, ASK, NEW, 0, 9999, 100)  # every ask moves down a level, at its price
    v.on_market([0], now + MS)
    assert v.counters["mirror_submits"] - submits == 1
    assert v.counters["mirror_cancels"] == cancels
    assert x.book_depth(5)[1][:4] == [(9999, 100, 1), (10000, 200, 1), (10001, 500, 1),
                                      (10002, 1000, 1)]


def test_an_order_with_none_of_ours_live_mirrors_what_it_reaches_and_nothing_crosses():
    books = market()
    v, now = logged_on(books=books)
    v.send(b"D", order("s1", "sell", 100, None, tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(100, b"99.90")]
    assert v.counters["mirror_submits"] == 1  # the best bid reaches 100: no asks, no depth
    # ended: market moves need no sync of it
    syncs = v.counters["syncs"]
    v.on_market([0], now)
    assert v.counters["syncs"] == syncs
    # the market drops through the bid still mirrored at 99.90: a buy's sync shows the asks
    # and takes that bid away first (it would trade with them)
    assert apply_batch(books, records(*snapshot(0, [(9940, 300), (9939, 400)],
                                                [(9950, 100), (9951, 500)]))) > 0
    v.send(b"D", order("b1", "buy", 300, None, tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(100, b"99.50"), (200, b"99.51")]
    assert v.exchange.counters["background_fills"] == 3  # ours only: no mirror trades
    x = v.exchange.books[0].engine
    assert x.best_bid() is None and x.best_ask() == 9951
    # a resting order's queue model keeps the recorded market off it: a new order of ours
    # then shows only what it reaches, by quantity and by price
    v.send(b"D", order("b2", "buy", 10, "99.00"), now)
    _, now = run_until(v, now + 2 * LAT, now)
    quote(books, ASK, CHANGE, 1, 9951, 600)
    v.on_market([0], now)
    v.send(b"D", order("b3", "buy", 10, "98.00"), now)  # reaches no ask
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [] and x.best_ask() is None  # 99.51 changed: not shown
    v.send(b"D", order("b4", "buy", 700, "99.51", tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(100, b"99.50"), (600, b"99.51")]
    assert v.exchange.live_orders("HELM") == 2


def test_with_a_queue_model_market_moves_leave_the_mirror_until_an_order_needs_it():
    books = market()
    v, now = logged_on(books=books)  # risk_averse
    v.send(b"D", order("b1", "buy", 100, "99.80"), now)  # rests: the instrument is working
    _, now = run_until(v, now + 2 * LAT, now)
    x = v.exchange.books[0].engine
    mirrored = x.book_depth(5)
    submits, cancels = v.counters["mirror_submits"], v.counters["mirror_cancels"]
    for k in range(5):  # the market moves: the queue looks, the mirror is left alone
        quote(books, ASK, CHANGE, 0, 10000, 200 + k)
        v.on_market([0], now + k * MS)
    assert (v.counters["mirror_submits"], v.counters["mirror_cancels"]) == (submits, cancels)
    assert x.book_depth(5) == mirrored
    # the next order message about it syncs what it reaches: the ask at its size now
    v.send(b"D", order("b2", "buy", 300, "100.00", tif=b"3"), now + 5 * MS)
    events, now = run_until(v, now + 5 * MS + 2 * LAT, now + 5 * MS)
    assert fills(reports(events)) == [(204, b"100.00")]


def test_a_halted_book_gives_no_liquidity():
    books = market()
    v, now = logged_on(books=books)
    apply_batch(books, records({"kind": STATUS, "venue": 0, "action": STATUS_HALTED}))
    v.send(b"D", order("b1", "buy", 100, "100.00", tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [(r[150], r[39]) for r in reports(events)] == [(b"0", b"0"), (b"4", b"4")]
    apply_batch(books, records({"kind": STATUS, "venue": 0, "action": STATUS_OK}))
    v.send(b"D", order("b2", "buy", 100, "100.00", tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(100, b"100.00")]


# -- determinism, bad input, the connection -------------------------------------------------------
def _script() -> list:
    books = market()
    v, now = logged_on(books=books, fee_bps=0.5)
    out: list = []

    def take(events) -> None:
        out.extend((type(e).__name__, e.message.raw if type(e) is AppMessage else repr(e))
                   for e in events)

    v.send(b"D", order("b1", "buy", 300, "100.01"), now)
    v.send(b"D", order("b2", "buy", 100, "99.95"), now + 1)
    v.send(b"D", order("x1", "buy", 1, "1.00", symbol="ZZZ"), now + 2)
    events, now = run_until(v, now + MS, now)
    take(events)
    for k in range(20):
        quote(books, ASK, CHANGE, 0, 10000 - k, 50 + k)
        v.on_market([0], now)
        events, now = run_until(v, now + MS, now)
        take(events)
    v.send(b"F", cancel("c1", "b2"), now)
    events, now = run_until(v, now + 40 * S, now)  # heartbeats too
    take(events)
    v.close(now)
    return out


def test_the_same_script_gives_byte_identical_messages():
    a, b = _script(), _script()
    assert a == b
    assert sum(1 for name, _ in a if name == "AppMessage") > 5


def test_bad_input_is_answered_never_raised():
    books = market()
    v, now = logged_on(books=books, venue_index=3)  # a row the BookSet does not have
    v.send(b"D", order("x1", "buy", 10, "1.00", symbol="ZZZ"), now)
    v.send(b"D", order("x2", "buy", 0, "100.00"), now)
    v.send(b"D", order("ok", "buy", 10, "99.00"), now)
    v.send(b"Z", [(11, b"what")], now)
    v.on_market([0, 1, 7], now)
    events, now = run_until(v, now + 2 * LAT, now)
    ers = reports(events)
    assert [(r[11], r[150], r[39]) for r in ers] == [
        (b"x1", b"8", b"8"), (b"x2", b"8", b"8"), (b"ok", b"0", b"0")]
    assert ers[0][103] == b"1" and b"ZZZ" in ers[0][58]
    (rej,) = [fields(e) for e in events if type(e) is AppMessage and e.message.msg_type == b"j"]
    assert rej[372] == b"Z"
    assert v.counters["errors"] >= 1  # the mirror could not be read: counted, order handled
    assert v.up


def test_close_logs_out_and_the_venue_cancels_our_live_orders():
    books = market()
    v, now = logged_on(books=books)
    v.send(b"D", order("b1", "buy", 100, "99.00"), now)
    v.send(b"D", order("i1", "sell", 1, "99.90", tif=b"3"), now)  # the bid at 99.90 mirrored
    run_until(v, now + 2 * LAT, now)
    v.send(b"D", order("b2", "buy", 100, "99.01"), now + 2 * LAT)  # still on the wire
    assert v.exchange.live_orders("HELM") == 1
    v.close(now + 2 * LAT)
    assert not v.up and v.next_due_ns() == NEVER
    assert v.poll(now + 10 * S) == () and v.send(b"D", order("b3", "buy", 1, "99.00"), now) is None
    assert v.exchange.live_orders("HELM") == 0
    assert v.counters["cancelled_on_disconnect"] == 2  # b2 reached the venue, then the close
    assert v.exchange.book_snapshot()["AAA"]["bid"] == 99.90  # the recorded market stays


def test_a_dropped_session_is_cancelled_on_disconnect_and_hears_it_after_reconnecting():
    v, now = logged_on()
    v.send(b"D", order("b1", "buy", 100, "99.00"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [r[150] for r in reports(events)] == [b"0"]
    # a session-level blunder: a second Logon. The venue logs us out and drops the connection
    v.send(b"A", [(98, b"0"), (108, b"30")], now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [type(e) for e in events] == [LoggedOut, Disconnect] and not v.up
    assert b"already logged on" in events[0].text.encode()
    assert v.exchange.live_orders("HELM") == 0 and v.counters["drops"] == 1
    assert v.counters["cancelled_on_disconnect"] == 1
    assert v.send(b"D", order("b2", "buy", 1, "99.00"), now) is None
    assert v.next_due_ns() == now + LAT + S // 2  # the first back-off: 0.5 s
    events, now = run_until(v, now + S, now)
    assert [type(e) for e in events if type(e) is not AppMessage] == [LoggedOn]
    (er,) = reports(events)  # kept while we were away, sent after the Logon
    assert (er[11], er[150], er[39]) == (b"b1", b"4", b"4") and b"disconnected" in er[58]
    assert v.up and v.counters["connects"] == 2 and v.counters["sent_late"] == 1
    v.send(b"D", order("b3", "buy", 100, "99.00"), now)  # and trading goes on
    events, now = run_until(v, now + 2 * LAT, now)
    assert [(r[11], r[150]) for r in reports(events)] == [(b"b3", b"0")]
