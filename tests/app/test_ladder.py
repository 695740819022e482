"""The trading ladder on its own, fed plain data: what a trader sees on each row, how the grid
moves (only when asked), what a click or a drag asks for, what a role may do, flashing.

``test_render_a_busy_ladder`` saves tests/artifacts/ladder.png for a person to look at.
"""

from __future__ import annotations


import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QHelpEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QToolTip

from tests.app._shots import save_png
from widgets import LadderWidget
from widgets.ladder import (
    ASK,
    BID,
    LTQ,
    PRICE,
    VOLUME,
    WORK_BUY,
    WORK_SELL,
    LadderModel,
    LadderView,
    WorkingOrder,
)

TICK = 0.25


def book(bid=5000.0, ask=5000.5, tick=TICK, bid_sz=None, ask_sz=None):
    """Ten levels a side, one tick apart, best first: bid sizes 10, 20, …; ask sizes 7, 14, …"""
    bid_px = np.array([bid - tick * k for k in range(10)])
    ask_px = np.array([ask + tick * k for k in range(10)])
    bs = np.array(bid_sz if bid_sz is not None else [10.0 * (k + 1) for k in range(10)])
    az = np.array(ask_sz if ask_sz is not None else [7.0 * (k + 1) for k in range(10)])
    return bid_px, bs, ask_px, az


@pytest.fixture
def ladder(qtbot):
    w = LadderWidget()
    qtbot.addWidget(w)
    w.resize(560, 900)
    w.show()
    qtbot.waitExposed(w)
    w.set_symbol("ESZ6", 2, tick=TICK)
    w.set_stale(False)
    w.set_venues(["SIMA", "SIMB"])
    w.set_book(*book())
    return w


def centre(w, price, col):
    rect = w.view.row_rect(price, col)
    assert rect is not None, f"{price} is not in the window"
    return rect.center()


def wheel(view, notches: int) -> None:
    pos = QPointF(view.width() / 2, view.height() / 2)
    ev = QWheelEvent(pos, view.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * notches),
                     Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(view, ev)


# -- the model: rows, texts, changes ---------------------------------------------------------------
def test_model_is_a_sound_qt_model(qtmodeltester):
    m = LadderModel()
    m.set_instrument(2, TICK)
    m.set_book(*book())
    m.set_orders([WorkingOrder("a", "buy", 4999.0, 5)])
    m.add_trades([5000.0], [3])
    qtmodeltester.check(m)


def test_one_row_per_tick_with_each_side_at_its_price(ladder):
    m = ladder.model
    rows = m.visible_rows()
    assert len(rows) >= 25  # as many as the height holds
    prices = [p for p, _ in rows]
    assert all(round((a - b) / TICK) == 1 for a, b in zip(prices, prices[1:]))  # every tick
    assert 5000.0 in prices and 5000.5 in prices
    # the window is centred on the inside: as many rows above the spread as below
    mid = prices.index(5000.25)
    assert abs(mid - (len(prices) - 1) / 2) <= 1
    assert m.row_texts(5000.0) == ("", "10", "5,000.00", "", "", "", "")
    assert m.row_texts(4999.75) == ("", "20", "4,999.75", "", "", "", "")
    assert m.row_texts(5000.25) == ("", "", "5,000.25", "", "", "", "")  # the spread: empty
    assert m.row_texts(5000.5) == ("", "", "5,000.50", "7", "", "", "")
    assert m.row_texts(5001.0) == ("", "", "5,001.00", "21", "", "", "")
    assert m.is_inside(5000.0) and m.is_inside(5000.5) and not m.is_inside(4999.75)
    assert m.best() == (5000.0, 5000.5)
    # the levels form the desk reads (asks worst first, then bids best first)
    assert m.rows()[9] == ("", "5,000.50", "7") and m.rows()[10] == ("10", "5,000.00", "")


def test_a_changed_level_announces_only_its_cell(ladder, qtbot):
    m = ladder.model
    bid_px, bid_sz, ask_px, ask_sz = book()
    bid_sz[2] = 99.0
    painted = []
    m.add_painter(painted.append)  # what the view is told to repaint
    with qtbot.waitSignal(m.dataChanged) as sig:
        m.set_book(bid_px, bid_sz, ask_px, ask_sz)
    r = m.row_of(4999.5)
    assert painted == [{r: [BID]}]
    assert (sig.args[0].row(), sig.args[0].column()) == (r, BID)
    assert (sig.args[1].row(), sig.args[1].column()) == (r, BID)
    assert m.row_texts(4999.5)[BID] == "99"
    with qtbot.assertNotEmitted(m.dataChanged):
        m.set_book(bid_px, bid_sz, ask_px, ask_sz)  # nothing changed, nothing repainted


def test_prices_follow_the_tick_grid_and_decimals(qtbot):
    w = LadderWidget()
    qtbot.addWidget(w)
    w.set_symbol("EURUSD", 4, tick=0.0025)
    w.set_book(*book(1.4975, 1.5025, tick=0.0025))
    assert w.model.row_texts(1.5)[PRICE] == "1.5000"
    assert w.model.row_texts(1.4975)[BID] == "10" and w.model.row_texts(1.5025)[ASK] == "7"
    assert w.model.tick_of(1.4975) == 599 and w.model.price_of(599) == 1.4975
    w.set_symbol("X", 1)  # no tick given: one unit of the last decimal
    w.set_book(*book(99.9, 100.1, tick=0.1))
    assert w.model.row_texts(100.0)[PRICE] == "100.0" and w.model.row_texts(99.9)[BID] == "10"


# -- the grid stays put; the user moves it ---------------------------------------------------------
def test_the_grid_stays_put_when_the_market_moves_until_recentred(ladder, qtbot):
    m = ladder.model
    top = m.visible_rows()[0][0]
    ladder.set_book(*book(5002.0, 5002.25))  # the market moves up eight ticks
    assert m.visible_rows()[0][0] == top
    assert m.row_texts(5002.0)[BID] == "10" and m.row_texts(5002.25)[ASK] == "7"
    ladder.set_book(*book(5100.0, 5100.25))  # far above the window
    assert m.visible_rows()[0][0] == top
    assert m.edge_texts()[0][PRICE] == "▲ market"
    ladder.view.setFocus()
    QTest.keyClick(ladder.view, Qt.Key_Home)
    prices = [p for p, _ in m.visible_rows()]
    assert 5100.0 in prices and 5100.25 in prices and m.edge_texts()[0][PRICE] == ""
    ladder.set_book(*book(5000.0, 5000.5))
    ladder.recentre()
    assert m.row_of(5000.25) == m.rowCount() // 2


def test_auto_recentre_brings_a_market_that_left_the_window_back(ladder):
    m = ladder.model
    m.auto_recentre = True
    top = m.top_tick
    ladder.set_book(*book(5002.0, 5002.25))  # still in the window: the grid stays
    assert m.top_tick == top
    m.held = True  # the mouse is over the ladder: the grid never moves under it
    ladder.set_book(*book(5100.0, 5100.25))
    assert m.top_tick == top and m.edge_texts()[0][PRICE] == "▲ market"
    QApplication.sendEvent(ladder.view, QEvent(QEvent.Leave))  # the mouse goes: centred again
    assert not m.held
    assert m.row_of(5100.0) in (m.rowCount() // 2, m.rowCount() // 2 + 1)
    assert m.edge_texts()[0][PRICE] == ""
    ladder.set_book(*book(5200.0, 5200.25))  # gone again, nobody over it: centred at once
    assert m.row_of(5200.0) in (m.rowCount() // 2, m.rowCount() // 2 + 1)


def test_wheel_and_page_keys_scroll_through_prices(ladder, qtbot):
    m, v = ladder.model, ladder.view
    top = m.top_tick
    wheel(v, 1)  # away from the user: higher prices
    assert m.top_tick == top + v.WHEEL_ROWS
    wheel(v, -2)
    assert m.top_tick == top - v.WHEEL_ROWS
    v.setFocus()
    top = m.top_tick
    QTest.keyClick(v, Qt.Key_PageUp)
    assert m.top_tick == top + m.page_rows()
    QTest.keyClick(v, Qt.Key_PageDown)
    QTest.keyClick(v, Qt.Key_PageDown)
    assert m.top_tick == top - m.page_rows()
    QTest.keyClick(v, Qt.Key_Up)
    assert m.top_tick == top - m.page_rows() + 1
    # the texts moved with the window: the best bid is still shown at its price
    ladder.recentre()
    assert m.row_texts(5000.0)[BID] == "10"


def test_the_window_follows_the_height(ladder, qtbot):
    n = ladder.model.rowCount()
    ladder.resize(560, 1300)
    qtbot.waitUntil(lambda: ladder.model.rowCount() > n)
    assert ladder.model.row_texts(5000.0)[BID] == "10"  # the centre price stayed in sight


# -- our orders ------------------------------------------------------------------------------------
def test_our_orders_show_at_their_level_and_outside_the_window_are_pointed_at(ladder):
    m = ladder.model
    ladder.set_orders([
        WorkingOrder("b1", "buy", 4999.5, 5),
        WorkingOrder("b2", "buy", 4999.5, 15),
        WorkingOrder("s1", "sell", 5001.0, 3),
        WorkingOrder("b3", "buy", 4000.0, 2),   # far below the window
        WorkingOrder("s2", "sell", 6000.0, 4),  # far above
        WorkingOrder("s3", "sell", 6001.0, 1),
        WorkingOrder("gone", "sell", 5001.0, 0),  # nothing left: not shown
    ])
    assert m.row_texts(4999.5)[WORK_BUY] == "◆◆ 20"
    assert m.row_texts(4999.5)[WORK_SELL] == ""
    assert m.row_texts(5001.0)[WORK_SELL] == "◆ 3"
    up, down = m.edge_texts()
    assert up[WORK_SELL] == "▲ ◆◆ 5" and up[WORK_BUY] == ""
    assert down[WORK_BUY] == "▼ ◆ 2" and down[WORK_SELL] == ""
    ladder.set_orders([WorkingOrder(f"b{k}", "buy", 4999.5, 1) for k in range(5)])
    assert m.row_texts(4999.5)[WORK_BUY] == "◆×5 5"
    assert m.row_texts(5001.0)[WORK_SELL] == "" and m.edge_texts() == (("",) * 7, ("",) * 7)
    with pytest.raises(ValueError, match="side was 'b'"):
        WorkingOrder("x", "b", 1.0, 1)


# -- clicks ----------------------------------------------------------------------------------------
def test_a_click_on_the_bid_buys_there_with_the_tickets_quantity_and_venue(ladder, qtbot):
    ladder.qty.setValue(7)
    ladder.venue.setCurrentText("SIMB")
    v = ladder.view
    assert v.price_at(centre(ladder, 4999.25, BID).y()) == 4999.25
    assert v.column_at(centre(ladder, 4999.25, BID).x()) == BID and v.price_at(3) is None
    with qtbot.waitSignal(ladder.order_requested) as sig:
        QTest.mouseClick(ladder.view, Qt.LeftButton, pos=centre(ladder, 4999.25, BID))
    assert sig.args == ["buy", 4999.25, 7, "SIMB"]
    # an empty working-buy cell buys too, at a price with no book
    with qtbot.waitSignal(ladder.order_requested) as sig:
        QTest.mouseClick(ladder.view, Qt.LeftButton, pos=centre(ladder, 4997.75, WORK_BUY))
    assert sig.args == ["buy", 4997.75, 7, "SIMB"]


def test_a_click_on_the_ask_sells(ladder, qtbot):
    ladder.venue.setCurrentIndex(0)
    with qtbot.waitSignal(ladder.order_requested) as sig:
        QTest.mouseClick(ladder.view, Qt.LeftButton, pos=centre(ladder, 5001.25, ASK))
    assert sig.args == ["sell", 5001.25, 1, "*"]
    with qtbot.waitSignal(ladder.order_requested) as sig:
        QTest.mouseClick(ladder.view, Qt.LeftButton, pos=centre(ladder, 4999.0, WORK_SELL))
    assert sig.args == ["sell", 4999.0, 1, "*"]  # below the bid: the ladder does not judge


def test_prices_are_exact_tick_multiples_far_from_zero(qtbot):
    w = LadderWidget()
    qtbot.addWidget(w)
    w.resize(560, 900)
    w.show()
    w.set_symbol("BTC", 2, tick=0.01)
    w.set_stale(False)
    w.set_book(*book(97_123.45, 97_123.46, tick=0.01))
    got = []
    w.order_requested.connect(lambda *a: got.append(a[1]))
    for price in (97_123.45, 97_123.30, 97_123.56):
        QTest.mouseClick(w.view, Qt.LeftButton, pos=centre(w, price, BID))
    assert got == [97_123.45, 97_123.30, 97_123.56]


def test_long_numbers_are_shortened_never_cut_and_long_prices_widen_their_column(qtbot):
    m = LadderModel()
    v = LadderView(m)
    qtbot.addWidget(v)
    m.set_instrument(2, 0.01)
    v.instrument_changed()
    v.resize(v.minimumSizeHint().width(), 700)
    v.show()
    m.set_book(*book(123_456.78, 123_456.80, tick=0.01, bid_sz=[12_345_678.0] * 10))
    m.set_orders([WorkingOrder("a", "buy", 123_456.70, 25_000),
                  WorkingOrder("b", "buy", 123_456.70, 25_000)])
    assert m.row_texts(123_456.78)[BID] == "12,345,678"  # the model keeps the exact figure
    assert v.shown_text(123_456.78, BID) == "12.3M"
    assert v.shown_text(123_456.70, WORK_BUY) == "◆◆ 50k"
    assert v.shown_text(123_456.78, PRICE) == "123,456.78"
    assert v.shown_text(123_456.79, ASK) == ""
    fm = QFontMetrics(v.font())
    assert v.row_rect(123_456.78, PRICE).width() >= fm.horizontalAdvance("123,456.78")


def test_clicks_on_price_ltq_and_volume_do_nothing(ladder, qtbot):
    ladder.add_trades([5000.0], [4])
    with qtbot.assertNotEmitted(ladder.order_requested):
        for col in (PRICE, LTQ, VOLUME):
            QTest.mouseClick(ladder.view, Qt.LeftButton, pos=centre(ladder, 5000.0, col))


def test_a_click_on_our_orders_cancels_each_of_them(ladder, qtbot):
    ladder.set_orders([WorkingOrder("b1", "buy", 4999.5, 5), WorkingOrder("b2", "buy", 4999.5, 3),
                       WorkingOrder("s1", "sell", 4999.5, 1)])
    got = []
    ladder.cancel_requested.connect(got.append)
    with qtbot.assertNotEmitted(ladder.order_requested):
        QTest.mouseClick(ladder.view, Qt.LeftButton, pos=centre(ladder, 4999.5, WORK_BUY))
    assert got == ["b1", "b2"]  # the sell at the same price stays


def test_dragging_our_orders_moves_them(ladder, qtbot):
    ladder.set_orders([WorkingOrder("s1", "sell", 5001.0, 5),
                       WorkingOrder("s2", "sell", 5001.0, 2)])
    got = []
    ladder.move_requested.connect(lambda *a: got.append(a))
    v = ladder.view
    start, end = centre(ladder, 5001.0, WORK_SELL), centre(ladder, 5002.25, WORK_SELL)
    QTest.mousePress(v, Qt.LeftButton, pos=start)
    QTest.mouseMove(v, QPoint(start.x(), start.y() - 8))
    QTest.mouseMove(v, end)
    assert v._dragging and v._drag_to == ladder.model.tick_of(5002.25)  # shown while dragging
    with qtbot.assertNotEmitted(ladder.cancel_requested):
        QTest.mouseRelease(v, Qt.LeftButton, pos=end)
    assert got == [("s1", 5002.25), ("s2", 5002.25)]
    # dropped back on its own row, or outside the rows: nothing
    got.clear()
    QTest.mousePress(v, Qt.LeftButton, pos=start)
    QTest.mouseMove(v, QPoint(start.x(), start.y() - 30))
    QTest.mouseMove(v, start)
    QTest.mouseRelease(v, Qt.LeftButton, pos=start)
    QTest.mousePress(v, Qt.LeftButton, pos=start)
    QTest.mouseMove(v, QPoint(start.x(), 5))  # the header
    QTest.mouseRelease(v, Qt.LeftButton, pos=QPoint(start.x(), 5))
    v.setFocus()
    QTest.mousePress(v, Qt.LeftButton, pos=start)
    QTest.mouseMove(v, end)
    QTest.keyClick(v, Qt.Key_Escape)  # changed my mind
    with qtbot.assertNotEmitted(ladder.cancel_requested):
        QTest.mouseRelease(v, Qt.LeftButton, pos=end)
    assert got == []


def test_what_a_role_may_not_do_emits_nothing_and_says_why(ladder, qtbot):
    why = "your role is viewer: only a trader may send orders"
    ladder.set_can_trade(False, why)
    ladder.set_can_cancel(False, "your role is viewer: only a trader may cancel")
    ladder.set_orders([WorkingOrder("b1", "buy", 4999.5, 5)])
    v = ladder.view
    with qtbot.assertNotEmitted(ladder.order_requested), \
            qtbot.assertNotEmitted(ladder.cancel_requested), \
            qtbot.assertNotEmitted(ladder.move_requested):
        QTest.mouseClick(v, Qt.LeftButton, pos=centre(ladder, 5000.0, BID))
        QTest.mouseClick(v, Qt.LeftButton, pos=centre(ladder, 5000.5, ASK))
        QTest.mouseClick(v, Qt.LeftButton, pos=centre(ladder, 4999.5, WORK_BUY))
        a, b = centre(ladder, 4999.5, WORK_BUY), centre(ladder, 4998.0, WORK_BUY)
        QTest.mousePress(v, Qt.LeftButton, pos=a)
        QTest.mouseMove(v, b)
        QTest.mouseRelease(v, Qt.LeftButton, pos=b)
    assert v.tooltip_at(centre(ladder, 5000.0, BID)) == f"cannot send orders: {why}"
    at = centre(ladder, 5000.0, BID)
    QApplication.sendEvent(v, QHelpEvent(QEvent.ToolTip, at, v.mapToGlobal(at)))
    assert QToolTip.text() == f"cannot send orders: {why}"  # what the user is shown
    assert "only a trader may cancel" in v.tooltip_at(centre(ladder, 4999.5, WORK_BUY))
    assert v.tooltip_at(centre(ladder, 5000.0, PRICE)) == ""
    assert why in ladder.qty.toolTip() and ladder.ticket_note.text() == "VIEW ONLY"
    # a trader again: the same click buys, and the ticket no longer warns
    ladder.set_can_trade(True)
    with qtbot.waitSignal(ladder.order_requested):
        QTest.mouseClick(v, Qt.LeftButton, pos=centre(ladder, 5000.0, BID))
    assert v.tooltip_at(centre(ladder, 5000.0, BID)) == "" and ladder.ticket_note.text() == ""


def test_a_stale_ladder_sends_no_orders_but_still_cancels(ladder, qtbot):
    ladder.set_orders([WorkingOrder("b1", "buy", 4999.5, 5)])
    ladder.set_stale(True, "heartbeat 900 ms old")
    with qtbot.assertNotEmitted(ladder.order_requested):
        QTest.mouseClick(ladder.view, Qt.LeftButton, pos=centre(ladder, 5000.0, BID))
    assert "stale: heartbeat 900 ms old" in ladder.view.tooltip_at(centre(ladder, 5000.0, BID))
    with qtbot.waitSignal(ladder.cancel_requested) as sig:
        QTest.mouseClick(ladder.view, Qt.LeftButton, pos=centre(ladder, 4999.5, WORK_BUY))
    assert sig.args == ["b1"]


# -- trades ----------------------------------------------------------------------------------------
def test_ltq_and_volume_per_level(ladder):
    m = ladder.model
    ladder.add_trades(np.array([5000.0, 5000.5, 5000.0]), np.array([3.0, 2.0, 4.0]))
    assert m.row_texts(5000.0)[LTQ] == "4" and m.row_texts(5000.5)[LTQ] == ""
    assert m.row_texts(5000.0)[VOLUME] == "7" and m.row_texts(5000.5)[VOLUME] == "2"
    ladder.add_trades([5000.5], [10])
    assert m.row_texts(5000.0)[LTQ] == "" and m.row_texts(5000.5)[LTQ] == "10"
    assert m.row_texts(5000.5)[VOLUME] == "12" and m.volume_at(5000.0) == 7
    ladder.add_trades([], [])
    ladder.reset_volume()
    assert m.row_texts(5000.0)[VOLUME] == "" and m.row_texts(5000.5)[LTQ] == ""
    with pytest.raises(ValueError, match="2 prices and 1 sizes"):
        ladder.add_trades([1.0, 2.0], [1.0])
    ladder.add_trades([5000.0], [1])
    ladder.set_symbol("ESZ6", 2, tick=TICK)  # a new symbol starts from nothing
    assert ladder.model.visible_rows() == [] and m.volume_at(5000.0) == 0


# -- stale and flashing ----------------------------------------------------------------------------
def count(img, hexcolor: str) -> int:
    want = QColor(hexcolor).rgb()
    return sum(1 for y in range(img.height()) for x in range(img.width())
               if img.pixel(x, y) == want)


def test_stale_greys_everything_and_shows_the_banner(ladder, qtbot):
    live = ladder.view.grab().toImage()
    assert count(live, "#3fb5ff") > 50 and count(live, "#ff6b6b") > 50
    ladder.set_stale(True, "engine gone")
    assert ladder.model.stale and ladder.banner.isVisible()
    assert ladder.banner.text() == "STALE — engine gone"
    stale = ladder.view.grab().toImage()
    assert count(stale, "#3fb5ff") == 0 and count(stale, "#ff6b6b") == 0
    assert count(stale, "#6b6f76") > 100
    m = ladder.model
    assert m.data(m.index(10, 1), Qt.ForegroundRole).color().name() == "#6b6f76"
    bid_px, bid_sz, ask_px, ask_sz = book()
    bid_sz[0] = 55.0
    ladder.set_book(bid_px, bid_sz, ask_px, ask_sz)  # stale: shown, greyed, not flashed
    assert m.row_texts(5000.0)[BID] == "55" and not m.is_flashing(5000.0, BID)
    assert not m.flash_timer_active()


def test_a_changed_size_flashes_then_clears_and_the_timer_stops(ladder, qtbot):
    m = ladder.model
    assert not m.flash_timer_active()  # the first book centres, nothing flashes
    bid_px, bid_sz, ask_px, ask_sz = book()
    bid_sz[1], ask_sz[0] = 25.0, 9.0
    ladder.set_book(bid_px, bid_sz, ask_px, ask_sz)
    assert m.is_flashing(4999.75, BID) and m.is_flashing(5000.5, ASK)
    assert not m.is_flashing(5000.0, BID)  # unchanged
    assert m.data(m.index(m.row_of(4999.75), BID), Qt.BackgroundRole).color().alpha() == 120
    assert m.flash_timer_active()
    qtbot.waitUntil(lambda: not m.is_flashing(4999.75, BID) and not m.is_flashing(5000.5, ASK))
    qtbot.waitUntil(lambda: not m.flash_timer_active())
    assert m.data(m.index(m.row_of(4999.75), BID), Qt.BackgroundRole).color().alpha() == 24


# -- the ticket ------------------------------------------------------------------------------------
def test_the_ticket_defaults_and_venues(ladder, qtbot):
    assert ladder.ticket() == (1, "*")
    assert ladder.qty.minimum() == 1
    assert [ladder.venue.itemText(i) for i in range(ladder.venue.count())] == ["*", "SIMA", "SIMB"]
    ladder.venue.setCurrentText("SIMB")
    ladder.set_venues(["SIMB", "*", "SIMC"])  # "*" stays first, the choice stays
    assert [ladder.venue.itemText(i) for i in range(ladder.venue.count())] == ["*", "SIMB", "SIMC"]
    assert ladder.venue.currentText() == "SIMB"
    ladder.set_venues([])
    assert ladder.ticket() == (1, "*")
    ladder.presets[2].click()
    assert ladder.qty.value() == 10
    ladder.activateWindow()
    ladder.focus_ticket()
    qtbot.waitUntil(lambda: ladder.qty.hasFocus())
    assert ladder.qty.lineEdit().selectedText() == "10"
    QTest.keyClicks(ladder.qty, "25")
    assert ladder.qty.value() == 25


# -- a picture -------------------------------------------------------------------------------------
def test_render_a_busy_ladder(desk_theme, qtbot):
    w = LadderWidget()
    qtbot.addWidget(w)
    w.resize(520, 940)
    w.show()
    qtbot.waitExposed(w)
    w.set_symbol("ESZ6", 2, tick=TICK)
    w.set_stale(False)
    w.set_venues(["SIMA", "SIMB"])
    bid_sz = [12, 48, 95, 130, 88, 240, 310, 77, 1_250, 2_400]
    ask_sz = [9, 61, 120, 75, 199, 260, 44, 980, 1_500, 12_000]
    w.set_book(*book(5000.0, 5000.5, bid_sz=bid_sz, ask_sz=ask_sz), last_px=5000.25,
               last_sz=3, warning="")
    rng = np.random.default_rng(7)
    px = 5000.0 + TICK * rng.integers(-8, 9, 400)
    w.add_trades(px, rng.integers(1, 40, 400).astype(float))
    w.add_trades([5000.25], [3])
    w.set_orders([WorkingOrder("b1", "buy", 4999.5, 10), WorkingOrder("b2", "buy", 4999.5, 5),
                  WorkingOrder("b3", "buy", 4998.0, 25), WorkingOrder("s1", "sell", 5001.25, 8),
                  WorkingOrder("s2", "sell", 5020.0, 3), WorkingOrder("b4", "buy", 4980.0, 2)])
    bid_sz[1], ask_sz[2] = 52, 118
    w.set_book(*book(5000.0, 5000.5, bid_sz=bid_sz, ask_sz=ask_sz), last_px=5000.25, last_sz=3)
    assert w.model.is_flashing(4999.75, BID)
    save_png(w, "ladder.png")
