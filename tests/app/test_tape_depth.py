"""Time and sales and the depth chart on their own, fed plain arrays (no engine)."""

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontInfo

from widgets import DepthChart, TimeAndSales
from widgets.tape import TimeAndSalesModel

T0 = 1_765_000_000_000_000_000  # 2025-12-06 05:46:40 UTC
GREEN, RED, GREY = "#8fe3ab", "#ff6b6b", "#7d838b"


def batch(first: int, n: int, side=None):
    """``n`` trades numbered from ``first``: trade k at T0 + k ms, price 100 + k/100, size k+1."""
    k = np.arange(first, first + n)
    sides = np.array([1, 2, 0])[k % 3] if side is None else np.full(n, side)
    return (T0 + k * 1_000_000, 100.0 + k / 100, (k + 1).astype(float), sides,
            [f"V{i}" for i in k])


def texts(m, col):
    return [m.data(m.index(r, col)) for r in range(m.rowCount())]


# -- the tape's model ---------------------------------------------------------------------------
def test_tape_model_is_a_sound_qt_model(qtmodeltester):
    m = TimeAndSalesModel(max_rows=5)
    m.add_trades(*batch(0, 3))
    m.add_trades(*batch(3, 4))  # wraps the ring
    qtmodeltester.check(m)


def test_tape_rows_newest_on_top_formatted_and_coloured(qapp):
    m = TimeAndSalesModel(block_size=3)
    m.add_trades(*batch(0, 3))
    assert m.rowCount() == 3
    assert [m.row(r) for r in range(3)] == [
        ("05:46:40.002", "100.02", "3", "?", "V2"),
        ("05:46:40.001", "100.01", "2", "SELL", "V1"),
        ("05:46:40.000", "100.00", "1", "BUY", "V0"),
    ]
    assert [m.data(m.index(r, 0), Qt.ForegroundRole).color().name() for r in range(3)] == [
        GREY, RED, GREEN]
    right = int((Qt.AlignRight | Qt.AlignVCenter).value)
    assert [m.data(m.index(0, c), Qt.TextAlignmentRole) for c in (0, 1, 2)] == [right] * 3
    assert QFontInfo(m.data(m.index(1, 1), Qt.FontRole)).fixedPitch()  # the font it resolves to
    # size 3 reaches the block threshold: that row is bold, the others are not
    assert m.data(m.index(0, 2), Qt.FontRole).bold()
    assert not m.data(m.index(1, 2), Qt.FontRole).bold()
    m.set_block_size(2)
    assert m.data(m.index(1, 2), Qt.FontRole).bold()


def test_tape_time_is_utc_to_the_millisecond_and_sizes_get_separators(qapp):
    m = TimeAndSalesModel(price_decimals=4, size_decimals=1)
    ts = np.array([T0 + 23 * 3_600_000_000_000 + 999_999_999])  # 23 h later, 1 ns short of 1 s
    m.add_trades(ts, np.array([1.23456]), np.array([12345.67]), np.array([2]), np.array(["X"]))
    assert m.row(0) == ("04:46:40.999", "1.2346", "12,345.7", "SELL", "X")
    m.set_decimals(2)
    assert m.row(0)[1:3] == ("1.23", "12,346")


def test_tape_one_insert_per_batch_and_the_cap_drops_the_oldest(qtbot):
    m = TimeAndSalesModel(max_rows=5)
    inserts, removes = [], []
    m.rowsInserted.connect(lambda _p, first, last: inserts.append((first, last)))
    m.rowsRemoved.connect(lambda _p, first, last: removes.append((first, last)))
    with qtbot.assertNotEmitted(m.modelReset):
        m.add_trades(*batch(0, 3))
        assert inserts == [(0, 2)] and removes == []
        m.add_trades(*batch(3, 4))  # 7 trades, 5 rows: the two oldest go first, in one signal
        assert inserts == [(0, 2), (0, 3)] and removes == [(1, 2)]
        assert texts(m, 4) == ["V6", "V5", "V4", "V3", "V2"]
        m.add_trades(*batch(7, 12))  # a batch larger than the tape: its newest 5 only
        assert removes[-1] == (0, 4) and inserts[-1] == (0, 4)
        assert texts(m, 4) == ["V18", "V17", "V16", "V15", "V14"]
        m.add_trades(*batch(19, 0))  # an empty batch says nothing
        assert len(inserts) == 3
    m.clear()
    assert m.rowCount() == 0 and removes[-1] == (0, 4)
    m.add_trades(*batch(20, 1))
    assert texts(m, 4) == ["V20"]


def test_tape_refuses_arrays_of_different_lengths(qapp):
    m = TimeAndSalesModel()
    ts, px, sz, side, venue = batch(0, 3)
    with pytest.raises(ValueError, match="lengths 3, 2"):
        m.add_trades(ts, px[:2], sz, side, venue)
    assert m.rowCount() == 0


def test_tape_widget_renders(qtbot):
    w = TimeAndSales(max_rows=100, block_size=10)
    qtbot.addWidget(w)
    w.resize(500, 300)
    w.add_trades(*batch(0, 20))
    w.show()
    assert w.view.model().rowCount() == 20
    assert not w.grab().isNull()


def test_tape_widget_follows_the_top_and_holds_a_scrolled_view(qtbot):
    w = TimeAndSales(max_rows=500)
    qtbot.addWidget(w)
    w.resize(500, 300)
    w.show()
    w.add_trades(*batch(0, 100))
    bar = w.view.verticalScrollBar()
    assert bar.value() == 0
    w.add_trades(*batch(100, 5))
    assert bar.value() == 0 and w.view.indexAt(w.view.rect().topLeft()).row() == 0
    bar.setValue(10)
    top = w.model.row(w.view.rowAt(0))
    w.add_trades(*batch(105, 7))
    assert bar.value() == 17 and w.model.row(w.view.rowAt(0)) == top


# -- the depth chart ----------------------------------------------------------------------------
def depth():
    bid_px = np.array([99.5, 99.0, 98.5, 98.0, 0.0, 0.0])
    bid_sz = np.array([10.0, 20.0, 5.0, 40.0, 0.0, 0.0])
    ask_px = np.array([100.5, 101.0, 101.5, 0.0, 0.0, 0.0])
    ask_sz = np.array([3.0, 4.0, 5.0, 0.0, 0.0, 0.0])
    return bid_px, bid_sz, ask_px, ask_sz


def test_depth_curves_are_cumulative_and_skip_empty_levels(qtbot):
    w = DepthChart()
    qtbot.addWidget(w)
    bid_curve, ask_curve = w.bid_curve, w.ask_curve
    w.set_depth(*depth())
    x, y = w.bid_curve.getData()
    assert x.tolist() == [99.5, 99.0, 98.5, 98.0] and y.tolist() == [10.0, 30.0, 35.0, 75.0]
    x, y = w.ask_curve.getData()
    assert x.tolist() == [100.5, 101.0, 101.5] and y.tolist() == [3.0, 7.0, 12.0]
    assert w.mid == 100.0 and w.mid_line.value() == 100.0 and w.mid_line.isVisible()
    # the next update reuses the same items
    bid_px, bid_sz, ask_px, ask_sz = depth()
    bid_sz[0] = 1.0
    n_items = len(w.getPlotItem().items)
    w.set_depth(bid_px, bid_sz, ask_px, ask_sz)
    assert w.bid_curve is bid_curve and w.ask_curve is ask_curve
    assert len(w.getPlotItem().items) == n_items
    assert w.bid_curve.getData()[1].tolist() == [1.0, 21.0, 26.0, 66.0]
    # an empty side: no mid
    w.set_depth(bid_px, bid_sz, np.zeros(6), np.zeros(6))
    assert w.ask_curve.getData()[1] is None or len(w.ask_curve.getData()[1]) == 0
    assert w.mid is None and not w.mid_line.isVisible()


def test_depth_ranges_hold_the_book(qtbot):
    w = DepthChart()
    qtbot.addWidget(w)
    w.set_depth(*depth())
    lo, hi = w.x_range
    assert lo < 98.0 and hi > 101.5 and w.y_top >= 75.0


def test_depth_stale_greys_and_shows_the_label(qtbot):
    w = DepthChart()
    qtbot.addWidget(w)
    w.resize(600, 350)
    w.show()
    w.set_depth(*depth())
    assert not w.stale_label.isVisible()
    assert w.bid_curve.opts["pen"].color().name() == "#8fe3ab"
    w.set_stale(True)
    assert w.stale and w.stale_label.isVisible() and w.stale_label.text() == "STALE"
    assert w.bid_curve.opts["pen"].color().name() == "#6b6f76"
    assert w.ask_curve.opts["pen"].color().name() == "#6b6f76"
    w.set_stale(False)
    assert not w.stale_label.isVisible()
    assert w.ask_curve.opts["pen"].color().name() == "#ff6b6b"
    assert not w.grab().isNull()
