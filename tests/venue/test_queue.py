"""Queue position at the in-process simulated venue: a resting order of ours fills once the
recorded volume ahead of it has traded, or when the market goes through its price; touching
it fills nothing. The real InProcessVenue, a real BookSet fed MD_EVENT records (quotes and
trades) through ``apply_batch``, a clock the test passes in."""

from __future__ import annotations

import pytest

from engine.book.books import BookSet, apply_batch
from engine.core.events import (
    ASK,
    BID,
    BUY,
    CHANGE,
    DELETE,
    NEW,
    SELL,
    STATUS,
    STATUS_HALTED,
    STATUS_OK,
    TRADE,
)
from engine.venue.inprocess import QUEUE_MODELS, InProcessVenue
from engine.venue.matching import MatchingEngine, Side
from tests.book._records import q, records, snapshot
from tests.venue.test_inprocess import (
    AAA,
    BBB,
    LAT,
    MS,
    S,
    T0,
    cancel,
    fills,
    order,
    reports,
    run_until,
)

# the recorded book of AAA (ticks of 0.01): 99.90 (300) / 100.00 (200)
BIDS = [(9990, 300), (9989, 400)]
ASKS = [(10000, 200), (10001, 500)]


# -- helpers --------------------------------------------------------------------------------------
def market(bids=BIDS, asks=ASKS) -> BookSet:
    books = BookSet(n_venues=1, n_instruments=2, depth=5)
    assert apply_batch(books, records(*snapshot(0, bids, asks))) > 0
    return books


def venue(books: BookSet, **kw) -> tuple[InProcessVenue, int]:
    v = InProcessVenue("SIMA", [AAA, BBB], latency_ns=LAT, books=books, **kw)
    v.poll(T0)
    _, now = run_until(v, T0 + 2 * LAT, T0)
    assert v.up
    return v, now


def trade(price: int, size: int, aggressor: int = SELL, instrument: int = 0) -> dict:
    return dict(kind=TRADE, venue=0, side=aggressor, price=price, size=size,
                instrument=instrument)


def rest(v: InProcessVenue, now: int, cl: str, side: str, qty: int, price: str) -> int:
    """Send a limit order that rests; return the time its New came back."""
    v.send(b"D", order(cl, side, qty, price), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [(r[150], r[39]) for r in reports(events)] == [(b"0", b"0")]
    return now


def market_moves(v: InProcessVenue, books: BookSet, now: int, *rows: dict) -> tuple[list, int]:
    """The recorded market of AAA does ``rows`` (one batch); the venue sees it at ``now + MS``.
    Return the reports that come back and the time."""
    now += MS
    if rows:
        assert apply_batch(books, records(*rows)) == len(rows)
    v.on_market([0], now)
    events, now = run_until(v, now + 2 * LAT, now)
    return reports(events), now


# -- the risk-averse model (the default) ----------------------------------------------------------
def test_a_resting_bid_fills_only_after_the_volume_ahead_of_it_has_traded():
    books = market()
    v, now = venue(books)
    assert v.queue_model == "risk_averse"
    now = rest(v, now, "b1", "buy", 100, "99.90")  # behind the 300 displayed at 99.90
    # sellers take 200 of the 300 ahead (the feed then shows 100 left): nothing for us
    ers, now = market_moves(v, books, now, trade(9990, 200), q(0, BID, CHANGE, 0, 9990, 100))
    assert ers == []
    # 150 more: the 100 still ahead, then 50 of ours, at our price
    ers, now = market_moves(v, books, now, trade(9990, 150), q(0, BID, DELETE, 0))
    assert fills(ers) == [(50, b"99.90")] and ers[0][39] == b"1" and ers[0][151] == b"50"
    # an aggressor the feed does not know, below the best ask: a seller; the rest of ours fills
    ers, now = market_moves(v, books, now, trade(9990, 80, aggressor=0))
    assert fills(ers) == [(50, b"99.90")] and ers[0][39] == b"2"
    assert v.exchange.live_orders("HELM") == 0
    assert books.taps == []  # nothing of ours rests: the books call no tap


def test_quotes_alone_never_fill_and_cancels_behind_us_never_help():
    books = market()
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.90")  # 300 ahead
    # others join behind us (800), then cancel down to 350: still 300 ahead of us
    ers, now = market_moves(v, books, now, q(0, BID, CHANGE, 0, 9990, 800))
    ers2, now = market_moves(v, books, now, q(0, BID, CHANGE, 0, 9990, 350))
    assert ers == ers2 == []
    ers, now = market_moves(v, books, now, trade(9990, 299), q(0, BID, CHANGE, 0, 9990, 51))
    assert ers == []  # 1 still ahead
    ers, now = market_moves(v, books, now, trade(9990, 11), q(0, BID, CHANGE, 0, 9990, 40))
    assert fills(ers) == [(10, b"99.90")]


def test_a_level_that_shrinks_below_the_volume_ahead_clamps_it():
    books = market()
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.90")  # 300 ahead
    ers, now = market_moves(v, books, now, q(0, BID, CHANGE, 0, 9990, 120))  # 180 cancelled
    assert ers == []
    # those cancels must have been ahead of us: 120 ahead now
    ers, now = market_moves(v, books, now, trade(9990, 150), q(0, BID, DELETE, 0))
    assert fills(ers) == [(30, b"99.90")]


def test_a_trade_through_our_price_fills_in_full():
    books = market()
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.90")  # 300 ahead
    now = rest(v, now, "s1", "sell", 70, "100.00")  # 200 ahead
    # a seller goes below our bid: the whole queue at 99.90, us included, was taken
    ers, now = market_moves(v, books, now, trade(9989, 5))
    assert fills(ers) == [(100, b"99.90")] and ers[0][39] == b"2"
    # a buyer above our ask: the same for it
    ers, now = market_moves(v, books, now, trade(10001, 1, aggressor=BUY))
    assert fills(ers) == [(70, b"100.00")]
    assert v.exchange.live_orders("HELM") == 0
    assert v.counters["through_fills"] == 2 and v.counters["queue_fills"] == 0


def test_the_recorded_opposite_best_through_our_price_fills_in_full():
    books = market()
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.95")  # a new best bid: nothing ahead
    # the asks come down through 99.95 with no trade recorded
    ers, now = market_moves(v, books, now, q(0, ASK, NEW, 0, 9994, 30))
    assert fills(ers) == [(100, b"99.95")]  # in full, at our price, whatever the size


def test_the_opposite_side_touching_our_price_does_not_fill_and_stays_ours_to_take():
    books = market()
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.95")  # nothing ahead
    # the best ask comes down to our bid: a touch, no fill
    ers, now = market_moves(v, books, now, q(0, ASK, NEW, 0, 9995, 60))
    assert ers == []
    # a buyer lifts that ask at our price: buyers do not reach our bid
    ers, now = market_moves(v, books, now, trade(9995, 10, aggressor=BUY),
                            q(0, ASK, CHANGE, 0, 9995, 50))
    assert ers == [] and v.exchange.live_orders("HELM") == 1
    # a new buy of ours still takes the 50 displayed at 99.95 first, then 100.00
    v.send(b"D", order("b2", "buy", 80, "100.00", tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(50, b"99.95"), (30, b"100.00")]
    # ... and only once: the 50 is used while b1 rests
    v.send(b"D", order("b3", "buy", 10, "99.95", tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [(r[150], r[39]) for r in reports(events)] == [(b"0", b"0"), (b"4", b"4")]
    # a seller at our price: nothing was ahead, so b1 fills
    ers, now = market_moves(v, books, now, trade(9995, 40, aggressor=SELL))
    assert fills(ers) == [(40, b"99.95")]
    # once b1 is gone the ask at 99.95 is in the book again, whole
    v.send(b"F", cancel("c1", "b1"), now)
    v.send(b"D", order("b4", "buy", 50, "99.95", tif=b"3"), now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert fills(reports(events)) == [(50, b"99.95")]


def test_one_trade_fills_our_orders_at_a_price_once_front_first():
    books = market()
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.90")  # 300 ahead
    now = rest(v, now, "b2", "buy", 100, "99.90")  # 300 recorded ahead, and b1
    # 450: the 300, b1's 100, then 50 of b2's
    ers, now = market_moves(v, books, now, trade(9990, 450))
    assert [(r[11], int(r[32])) for r in ers if r[150] == b"F"] == [(b"b1", 100), (b"b2", 50)]
    ers, now = market_moves(v, books, now, trade(9990, 50))
    assert [(r[11], int(r[32]), r[39]) for r in ers] == [(b"b2", 50, b"2")]


def test_a_replace_keeps_its_place_only_for_a_smaller_quantity_at_the_same_price():
    books = market()
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.89")  # 400 ahead
    ers, now = market_moves(v, books, now, trade(9989, 350), q(0, BID, CHANGE, 1, 9989, 50))
    assert ers == []
    # smaller, same price: still 50 ahead
    replace = [(11, b"b1r"), (41, b"b1"), (55, b"AAA"), (54, b"1"), (38, 60), (40, b"2"),
               (44, b"99.89")]
    v.send(b"G", replace, now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [r[150] for r in reports(events)] == [b"5"]
    ers, now = market_moves(v, books, now, trade(9989, 60))
    assert fills(ers) == [(10, b"99.89")]
    # moved to 99.90: the back of that level, behind its 300
    replace = [(11, b"b1m"), (41, b"b1r"), (55, b"AAA"), (54, b"1"), (38, 60), (40, b"2"),
               (44, b"99.90")]
    v.send(b"G", replace, now)
    events, now = run_until(v, now + 2 * LAT, now)
    assert [r[150] for r in reports(events)] == [b"5"]
    ers, now = market_moves(v, books, now, trade(9990, 300))
    assert ers == []
    ers, now = market_moves(v, books, now, trade(9990, 20))
    assert fills(ers) == [(20, b"99.90")]


def test_halted_books_fill_nothing_by_their_quotes_and_disconnect_forgets_the_queue():
    books = market()
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.95")
    ers, now = market_moves(v, books, now, {"kind": STATUS, "venue": 0,
                                            "action": STATUS_HALTED},
                            q(0, ASK, NEW, 0, 9991, 100))  # through us, but halted
    assert ers == []
    ers, now = market_moves(v, books, now, {"kind": STATUS, "venue": 0, "action": STATUS_OK})
    assert fills(ers) == [(100, b"99.95")]
    now = rest(v, now, "b2", "buy", 100, "99.80")
    assert len(books.taps) == 1
    v.close(now)
    assert v.counters["cancelled_on_disconnect"] == 1 and books.taps == []


def test_trades_of_other_instruments_and_venues_are_not_read():
    books = BookSet(n_venues=2, n_instruments=2, depth=5)
    apply_batch(books, records(*snapshot(0, BIDS, ASKS), *snapshot(1, BIDS, ASKS),
                               *snapshot(0, [(19990, 10)], [(20000, 10)], instrument=1)))
    v, now = venue(books)
    now = rest(v, now, "b1", "buy", 100, "99.90")
    others = [trade(19990, 5, instrument=1), dict(trade(9990, 400), venue=1)]
    ers, now = market_moves(v, books, now, *others)
    assert ers == [] and v.counters["trades_read"] == 0
    ers, now = market_moves(v, books, now, trade(9990, 310))
    assert fills(ers) == [(10, b"99.90")] and v.counters["trades_read"] == 1


# -- the "prob" model -----------------------------------------------------------------------------
def _prob_script(model: str) -> list:
    books = market()
    v, now = venue(books, queue_model=model)
    now = rest(v, now, "b1", "buy", 100, "99.90")  # 300 ahead, 0 behind
    out = []
    for rows in ([q(0, BID, CHANGE, 0, 9990, 500)],  # 200 join behind
                 # 100 leave, no trade: ahead 300, behind 200, f(x) = x³, so the chance it
                 # was behind us is 200³ / (200³ + 300³) = 8/35; ahead goes down by 27/35 of
                 # 100: 300 - 77.14 = 222.86, rounded 223
                 [q(0, BID, CHANGE, 0, 9990, 400)],
                 [trade(9990, 222), q(0, BID, CHANGE, 0, 9990, 178)],  # 1 left ahead
                 [trade(9990, 28), q(0, BID, CHANGE, 0, 9990, 150)]):  # 27 for us
        ers, now = market_moves(v, books, now, *rows)
        out.append(fills(ers))
    return out


def test_the_prob_model_moves_us_forward_by_the_expected_share_of_a_decrease():
    assert _prob_script("prob") == [[], [], [], [(27, b"99.90")]]
    # the risk-averse model: the 100 that left were not ahead of us; 50 still are
    assert _prob_script("risk_averse") == [[], [], [], []]


def test_the_prob_model_takes_trades_out_of_the_decrease():
    books = market()
    v, now = venue(books, queue_model="prob")
    now = rest(v, now, "b1", "buy", 100, "99.90")  # 300 ahead
    ers, now = market_moves(v, books, now, q(0, BID, CHANGE, 0, 9990, 500))  # 200 behind
    # 100 trade and the level shows 100 less: no decrease left to spread, 200 ahead
    ers, now = market_moves(v, books, now, trade(9990, 100), q(0, BID, CHANGE, 0, 9990, 400))
    assert ers == []
    ers, now = market_moves(v, books, now, trade(9990, 205))
    assert fills(ers) == [(5, b"99.90")]


# -- the touch fill, kept -------------------------------------------------------------------------
def test_queue_model_none_keeps_the_touch_fill():
    books = market()
    v, now = venue(books, queue_model="none")
    now = rest(v, now, "b1", "buy", 100, "99.95")
    ers, now = market_moves(v, books, now, q(0, ASK, NEW, 0, 9995, 60))
    assert fills(ers) == [(60, b"99.95")]
    assert books.taps == []  # no queue, no tap


def test_an_unknown_queue_model_is_refused():
    assert QUEUE_MODELS == ("risk_averse", "prob", "none")
    with pytest.raises(ValueError, match="queue_model must be one of"):
        InProcessVenue("SIMA", [AAA], queue_model="fifo")


# -- determinism ----------------------------------------------------------------------------------
def _script(model: str) -> list:
    books = market()
    v, now = venue(books, queue_model=model, fee_bps=0.5)
    out: list = []
    v.send(b"D", order("b1", "buy", 300, "99.90"), now)
    v.send(b"D", order("b2", "buy", 100, "99.89"), now + 1)
    v.send(b"D", order("s1", "sell", 200, "100.01"), now + 2)
    events, now = run_until(v, now + MS, now)
    out += [e.message.raw for e in events if hasattr(e, "message")]
    for k in range(30):
        rows = [trade(9990 - k % 3, 40 + k), q(0, BID, CHANGE, 0, 9990 - k % 3, 500 - 10 * k),
                trade(10001, 7 + k, aggressor=BUY), q(0, ASK, CHANGE, 1, 10001, 600 - 5 * k)]
        if k == 20:
            rows.append(q(0, ASK, NEW, 0, 9989, 5))  # through b1 and b2
        now += MS
        apply_batch(books, records(*rows))
        v.on_market([0], now)
        events, now = run_until(v, now + MS, now)
        out += [e.message.raw for e in events if hasattr(e, "message")]
    events, now = run_until(v, now + 40 * S, now)
    out += [e.message.raw for e in events if hasattr(e, "message")]
    v.close(now)
    return out


@pytest.mark.parametrize("model", QUEUE_MODELS)
def test_the_same_script_gives_byte_identical_messages(model):
    a, b = _script(model), _script(model)
    assert a == b
    assert sum(1 for raw in a if b"\x0135=8\x01" in raw and b"\x01150=F\x01" in raw) >= 3


# -- the matching engine's parts the queue models use ---------------------------------------------
def test_liquidity_outside_the_book_is_taken_first_and_fok_counts_it():
    e = MatchingEngine()
    e.submit(1, "us", Side.BUY, 100, 100)  # our bid at 100
    e.submit(2, "bg", Side.SELL, 70, 102)  # an ask in the book
    e.set_outside(Side.BUY, [[100, 50], [101, 5]])  # asks kept out: they would cross ours
    e.reports.clear()
    e.submit(3, "us", Side.BUY, 200, 102, tif=4)  # FOK: 50 + 5 + 70 < 200, nothing happens
    assert [r[0].name for r in e.reports] == ["NEW", "CANCELLED"]
    assert e.outside(Side.BUY) == [[100, 50], [101, 5]]
    e.reports.clear()
    e.submit(4, "us", Side.BUY, 80, 102, tif=4)
    assert [(r[1], r[0].name, r[6], r[7]) for r in e.reports if r[6]] == [
        (4, "PARTIAL_FILL", 50, 100), (4, "PARTIAL_FILL", 5, 101), (4, "FILL", 25, 102),
        (2, "PARTIAL_FILL", 25, 102)]
    assert e.outside(Side.BUY) == [] and e.check() is None
    # a replace that reaches it takes it too; a sell never sees the asks kept out
    e.set_outside(Side.BUY, [[100, 30]])
    e.submit(5, "us", Side.SELL, 10, 99)  # crosses our own bid at 100, as before
    assert e.outside(Side.BUY) == [[100, 30]]
    e.submit(6, "us", Side.BUY, 40, 98)
    e.reports.clear()
    e.replace(6, 40, 101)
    assert [(r[0].name, r[6], r[7]) for r in e.reports] == [
        ("REPLACED", 0, None), ("PARTIAL_FILL", 30, 100)]
    assert e.order(6)[2:] == (101, 40, 10, 30) and e.check() is None  # the rest rests


def test_execute_fills_a_resting_order_at_its_price_keeping_its_place():
    e = MatchingEngine()
    e.submit(1, "bg", Side.BUY, 100, 100)
    e.submit(2, "us", Side.BUY, 100, 100)
    e.reports.clear()
    assert e.execute(2, 30) == 30 and e.order(2)[4] == 70
    assert e.book_orders(Side.BUY)[1][0] == 2  # still behind order 1
    assert e.execute(2, 500) == 70 and e.order(2) is None
    assert e.execute(2, 1) == 0 and e.execute("nope", 1) == 0
    assert [(r[0].name, r[6], r[7], r[8], r[9]) for r in e.reports] == [
        ("PARTIAL_FILL", 30, 100, 70, 30), ("FILL", 70, 100, 0, 100)]
    assert e.book_depth(1) == ([(100, 100, 1)], []) and e.check() is None
