"""Queue position at the in-process simulated venue: the matching engine's parts it uses
(liquidity kept outside the book, a resting order filled from outside it)."""

from __future__ import annotations

from engine.venue.matching import MatchingEngine, Side


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
