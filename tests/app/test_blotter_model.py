"""The blotter's sort, filter, colours and CSV export, read back through the proxy."""

from __future__ import annotations

import csv

import pytest
from PySide6.QtCore import QPoint, Qt


def _orders(model) -> None:
    # oldest first: the model shows newest on top
    model.update("c1", "SIMA", "AAPL", "buy", 900, 190.05, "New", 0, 900, 0.0)
    model.update("c2", "SIMB", "MSFT", "sell", 1000, None, "Filled", 1000, 0, 410.2)
    model.update("c3", "SIMA", "AAPL", "buy", 50, 190.0, "Rejected", 0, 0, 0.0, "off grid")
    model.update("c4", "SIMB", "aapl.x", "sell", 12000, 190.1, "Cancelled", 0, 0, 0.0)
    model.update("c5", "SIMA", "MSFT", "buy", 300, 410.0, "PartiallyFilled", 100, 200, 409.95)
    model.update("c6", "SIMA", "IBM", "buy", 7, 150.0, "New", 0, 7, 0.0, "venue down",
                 unknown=True)


@pytest.fixture
def blotter(qtbot):
    from widgets.blotter import BlotterWidget

    w = BlotterWidget()
    qtbot.addWidget(w)
    _orders(w.model)
    return w


def _column(w, c: int) -> list[str]:
    p = w.proxy
    return [p.data(p.index(r, c)) for r in range(p.rowCount())]


def test_proxy_passes_the_model_checks(blotter, qtmodeltester):
    qtmodeltester.check(blotter.proxy)


def test_unsorted_shows_newest_first(blotter):
    assert _column(blotter, 0) == ["c6", "c5", "c4", "c3", "c2", "c1"]


def test_header_click_sorts_qty_as_numbers_and_third_click_restores_newest_first(blotter, qtbot):
    header = blotter.view.horizontalHeader()
    x = header.sectionViewportPosition(4) + header.sectionSize(4) // 2
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=QPoint(x, header.height() // 2))
    assert header.sortIndicatorSection() == 4
    qtys = _column(blotter, 4)
    # as text "1,000" < "12,000" < "300" < "50" < "7" < "900"
    assert qtys in (["7", "50", "300", "900", "1,000", "12,000"],
                    ["12,000", "1,000", "900", "300", "50", "7"])
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=QPoint(x, header.height() // 2))
    assert _column(blotter, 4) == list(reversed(qtys))
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=QPoint(x, header.height() // 2))
    assert header.sortIndicatorSection() == -1
    assert _column(blotter, 0) == ["c6", "c5", "c4", "c3", "c2", "c1"]
    blotter.view.sortByColumn(4, Qt.AscendingOrder)
    assert _column(blotter, 4) == ["7", "50", "300", "900", "1,000", "12,000"]
    blotter.view.sortByColumn(4, Qt.DescendingOrder)
    assert _column(blotter, 4) == ["12,000", "1,000", "900", "300", "50", "7"]


def test_price_sorts_numerically_with_market_lowest(blotter):
    blotter.view.sortByColumn(5, Qt.AscendingOrder)
    assert _column(blotter, 5) == ["MKT", "150", "190", "190.05", "190.1", "410"]


def test_text_filter_matches_symbol_order_and_venue_ignoring_case(blotter, qtbot):
    qtbot.keyClicks(blotter.filter_edit, "AaPl")
    assert _column(blotter, 0) == ["c4", "c3", "c1"]
    assert _column(blotter, 2) == ["aapl.x", "AAPL", "AAPL"]
    blotter.filter_edit.setText("simb")
    assert _column(blotter, 0) == ["c4", "c2"]
    blotter.filter_edit.setText("C5")
    assert _column(blotter, 0) == ["c5"]
    blotter.filter_edit.setText("nothing")
    assert blotter.proxy.rowCount() == 0
    blotter.filter_edit.clear()
    assert blotter.proxy.rowCount() == 6


@pytest.mark.parametrize(("group", "ids"), [
    ("All", ["c6", "c5", "c4", "c3", "c2", "c1"]),
    ("Working", ["c5", "c1"]),
    ("Filled", ["c2"]),
    ("Cancelled/Rejected", ["c4", "c3"]),
    ("Unknown", ["c6"]),
])
def test_status_filter_keeps_its_group(blotter, group, ids):
    blotter.status_filter.setCurrentText(group)
    assert _column(blotter, 0) == ids


def test_text_and_status_filters_combine_and_follow_updates(blotter):
    blotter.filter_edit.setText("aapl")
    blotter.status_filter.setCurrentText("Working")
    assert _column(blotter, 0) == ["c1"]
    # c1 fills: it leaves the Working view; the source row changed in place
    blotter.model.update("c1", "SIMA", "AAPL", "buy", 900, 190.05, "Filled", 900, 0, 190.05)
    assert blotter.proxy.rowCount() == 0 and blotter.model.rowCount() == 6
    blotter.status_filter.setCurrentText("Filled")
    assert _column(blotter, 0) == ["c1"]


def test_rows_are_coloured_by_state(blotter):
    p = blotter.proxy
    fg, bg = {}, {}
    for r in range(p.rowCount()):
        oid = p.data(p.index(r, 0))
        brushes = [p.data(p.index(r, c), Qt.ForegroundRole) for c in range(p.columnCount())]
        assert len({None if b is None else b.color().name() for b in brushes}) == 1  # whole row
        b = p.data(p.index(r, 3), Qt.ForegroundRole)
        fg[oid] = None if b is None else b.color().name()
        b = p.data(p.index(r, 3), Qt.BackgroundRole)
        bg[oid] = None if b is None else b.color().name(b.color().NameFormat.HexArgb)
    assert fg == {"c1": None, "c5": None,  # working: the theme's text colour
                  "c2": "#8fe3ab", "c4": "#7d838b", "c3": "#ff6b6b", "c6": "#f0c674"}
    assert bg == {"c1": None, "c2": None, "c4": None, "c5": None,
                  "c3": "#1cff6b6b", "c6": "#1cf0c674"}


def test_export_writes_the_rows_as_shown(blotter, tmp_path):
    blotter.status_filter.setCurrentText("Working")
    blotter.view.sortByColumn(4, Qt.AscendingOrder)
    path = tmp_path / "orders.csv"
    assert blotter.export_csv(str(path)) == 2
    assert path.read_bytes().decode("utf-8") == (
        "Order,Venue,Symbol,Side,Qty,Price,Status,Filled,Left,Avg px,Text\r\n"
        "c5,SIMA,MSFT,buy,300,410,PartiallyFilled,100,200,409.95,\r\n"
        "c1,SIMA,AAPL,buy,900,190.05,New,0,900,,\r\n"
    )
    assert blotter.status.text() == f"exported 2 orders to {path}"
    blotter.status_filter.setCurrentText("All")
    blotter.view.sortByColumn(-1, Qt.AscendingOrder)
    assert blotter.export_csv(str(path)) == 6
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows] == ["Order", "c6", "c5", "c4", "c3", "c2", "c1"]
    assert rows[3][4] == "12000" and rows[5][5] == "MKT" and rows[1][6] == "UNKNOWN"


def test_export_failure_names_the_path_and_reason(blotter, tmp_path):
    path = tmp_path / "missing" / "orders.csv"
    assert blotter.export_csv(str(path)) == -1
    assert blotter.status.text() == f"export to {path} failed: No such file or directory"
    assert "ff6b6b" in blotter.status.styleSheet()


def test_selection_maps_through_the_proxy(blotter):
    blotter.view.sortByColumn(4, Qt.AscendingOrder)  # c6 (7), c3 (50), c5 (300), ...
    blotter.view.selectRow(1)
    assert blotter.selected_order_id() == "c3"
    blotter.filter_edit.setText("msft")
    blotter.view.clearSelection()
    blotter.view.selectRow(0)
    assert blotter.selected_order_id() == "c5"  # 300 before c2's 1,000


def test_cancel_selected_sends_the_sorted_rows_order_id(blotter, qtbot):
    blotter.set_permissions(trade=False, cancel=True)
    blotter.view.sortByColumn(4, Qt.DescendingOrder)  # c4 (12,000) on top
    blotter.view.selectRow(0)
    with qtbot.waitSignal(blotter.cancel_requested) as sig:
        qtbot.mouseClick(blotter.cancel_button, Qt.LeftButton)
    assert sig.args == ["c4"]


def test_update_while_sorted_changes_the_row_in_place(blotter, qtbot):
    blotter.view.sortByColumn(8, Qt.DescendingOrder)  # by Left: c1 900, c5 200, c6 7, ...
    assert _column(blotter, 0)[:3] == ["c1", "c5", "c6"]
    m = blotter.model
    with qtbot.waitSignal(m.dataChanged) as sig:
        m.update("c5", "SIMA", "MSFT", "buy", 300, 410.0, "PartiallyFilled", 250, 50, 409.99)
    assert sig.args[0].row() == sig.args[1].row() == 1  # c5's source row, not a reset
    assert m.rowCount() == blotter.proxy.rowCount() == 6
    assert m.row_of("c5")[7:10] == ("250", "50", "409.99")
    assert _column(blotter, 0)[:3] == ["c1", "c5", "c6"]
    # with 2 left, c5 moves below c6 (7 left) in the view; the source row stays where it was
    m.update("c5", "SIMA", "MSFT", "buy", 300, 410.0, "PartiallyFilled", 298, 2, 409.99)
    ids, left = _column(blotter, 0), _column(blotter, 8)
    assert ids[:3] == ["c1", "c6", "c5"] and left[:3] == ["900", "7", "2"]
    assert m.rowCount() == 6 and m.data(m.index(1, 0)) == "c5"


def test_a_report_finds_its_row_after_the_oldest_rows_left(qtbot):
    from widgets.blotter import BlotterModel

    m = BlotterModel(max_rows=3)
    for k in range(5):
        m.update(f"o{k}", "SIMA", "AAA", "buy", 10 + k, 100.0, "New", 0, 10 + k, 0.0)
    assert m.rowCount() == 3 and m.row_of("o1") is None  # o0 and o1 left at the bottom
    with qtbot.waitSignal(m.dataChanged) as changed:
        m.update("o3", "SIMA", "AAA", "buy", 13, 100.0, "Filled", 13, 0, 100.0)
    assert changed.args[0].row() == 1 == changed.args[1].row()
    assert m.row_of("o3")[6] == "Filled" and m.row_at(1).order_id == "o3"
    assert [m.row_at(r).status for r in range(3)] == ["New", "Filled", "New"]
