"""The blotter: one row per order, newest on top, updated in place.

Fed plain data: ``update(order_id, venue, symbol, side, qty, price, status, cum, leaves,
avg_px, text, unknown)``.

``BlotterWidget`` puts an order ticket (venue, side, quantity, price, time in force) and the
cancel buttons above the table, with each venue's session state. It only asks: the signals
``order_requested``, ``cancel_requested`` and ``cancel_all_requested`` go to whoever sends
commands, and ``set_status`` shows the answer. A new order inserts one row (``beginInsertRows``); a known one
changes only its own row (``dataChanged``), never a reset per report. Orders whose venue
dropped are shown "UNKNOWN" in amber until a report settles them.

Rows are coloured by state: working orders in the default text colour, filled green,
cancelled and expired grey, rejected red, unknown amber (the last two on a faint tint, since
they need a look). The view sits on ``BlotterProxy``, a ``QSortFilterProxyModel``: clicking a
header sorts on ``SORT_ROLE`` (numbers for the numeric columns, so 900 sorts before 1,000; a
third click goes back to newest first) and the filter row keeps orders matching a text
(symbol, order id or venue) and a state group. The source model still updates in place: the
proxy only maps rows. ``export_csv`` writes the rows as shown (filtered, in the shown order).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets._model import ALIGN, BG, DISPLAY, FG, TableModel

__all__ = ["BlotterModel", "BlotterProxy", "BlotterWidget", "BlotterRow", "SORT_ROLE",
           "STATUS_GROUPS"]

COLUMNS = ("Order", "Venue", "Symbol", "Side", "Qty", "Price", "Status", "Filled", "Left",
           "Avg px", "Text")
#: what each column's width is made for (the columns stay resizable by hand)
_WIDTH_SAMPLES = ("HD-desk-1-mxavt11j-0000", "SIMA", "AAPLZ6", "sell", "1,000,000",
                  "18,000.25", "PartiallyFilled", "1,000,000", "1,000,000", "18,000.2500", "")
#: the role the proxy sorts on: raw numbers for numeric columns, display text for the others
SORT_ROLE = Qt.UserRole.value + 1
_NUMERIC = frozenset({4, 5, 7, 8, 9})
_STATUS = 6
_GREY = QBrush(QColor("#7d838b"))
# Working orders (PendingNew, New, PartiallyFilled, Pending*) keep the theme's text colour.
_COLOURS = {
    "Filled": QBrush(QColor("#8fe3ab")),
    "Rejected": QBrush(QColor("#ff6b6b")),
    "Cancelled": _GREY,
    "Expired": _GREY,
    "Replaced": _GREY,
    "UNKNOWN": QBrush(QColor("#f0c674")),
}
# A faint tint, same alpha as the ladder's, on the states a trader must look at.
_BACKGROUNDS = {
    "Rejected": QBrush(QColor(255, 107, 107, 28)),
    "UNKNOWN": QBrush(QColor(240, 198, 116, 28)),
}
#: the filter's state choices: name -> the shown statuses it keeps (None keeps all)
STATUS_GROUPS: dict[str, frozenset[str] | None] = {
    "All": None,
    "Working": frozenset({"PendingNew", "New", "PartiallyFilled", "PendingCancel",
                          "PendingReplace"}),
    "Filled": frozenset({"Filled"}),
    "Cancelled/Rejected": frozenset({"Cancelled", "Rejected", "Expired", "Replaced"}),
    "Unknown": frozenset({"UNKNOWN"}),
}


@dataclass(slots=True)
class BlotterRow:
    order_id: str
    venue: str
    symbol: str
    side: str
    qty: int
    price: float | None
    status: str
    cum: int
    leaves: int
    avg_px: float
    text: str
    unknown: bool

    def cells(self) -> tuple[str, ...]:
        return (
            self.order_id, self.venue, self.symbol, self.side, f"{self.qty:,}",
            "MKT" if self.price is None else f"{self.price:,.4f}".rstrip("0").rstrip("."),
            "UNKNOWN" if self.unknown else self.status, f"{self.cum:,}", f"{self.leaves:,}",
            f"{self.avg_px:,.4f}".rstrip("0").rstrip(".") if self.cum else "", self.text,
        )

    def number(self, column: int) -> float:
        """The value a numeric column sorts on (a market order's price sorts lowest)."""
        if column == 4:
            return float(self.qty)
        if column == 5:
            return float("-inf") if self.price is None else self.price
        if column == 7:
            return float(self.cum)
        if column == 8:
            return float(self.leaves)
        return self.avg_px if self.cum else 0.0

    def export_cells(self) -> tuple[str, ...]:
        """The shown texts without group separators, so a spreadsheet reads numbers."""
        return tuple(c.replace(",", "") if i in _NUMERIC else c
                     for i, c in enumerate(self.cells()))


class BlotterModel(TableModel):
    columns = COLUMNS

    def __init__(self, max_rows: int = 20_000, parent=None) -> None:
        super().__init__(parent)
        self.max_rows = max_rows
        self._rows: list[BlotterRow] = []  # newest first
        self._cells: list[tuple[str, ...]] = []
        self._index: dict[str, BlotterRow] = {}
        # each order's insertion number: rows only enter on top and leave at the bottom, so
        # an order's row is ``_top - _seq[id]`` (no scan of the rows per report)
        self._seq: dict[str, int] = {}
        self._top = -1

    def update(self, order_id: str, venue: str, symbol: str, side: str, qty: int,
               price: float | None, status: str, cum: int, leaves: int, avg_px: float,
               text: str = "", unknown: bool = False) -> None:
        row = self._index.get(order_id)
        if row is None:
            row = BlotterRow(order_id, venue, symbol, side, qty, price, status, cum, leaves,
                             avg_px, text, unknown)
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._rows.insert(0, row)
            self._cells.insert(0, row.cells())
            self._index[order_id] = row
            self._top += 1
            self._seq[order_id] = self._top
            self.endInsertRows()
            if len(self._rows) > self.max_rows:
                last = len(self._rows) - 1
                self.beginRemoveRows(QModelIndex(), last, last)
                gone = self._rows.pop()
                self._cells.pop()
                del self._index[gone.order_id]
                del self._seq[gone.order_id]
                self.endRemoveRows()
            return
        row.status, row.cum, row.leaves, row.avg_px, row.unknown = status, cum, leaves, avg_px, unknown
        if text:
            row.text = text
        r = self._top - self._seq[order_id]
        self._cells[r] = row.cells()
        self.dataChanged.emit(self.index(r, 0), self.index(r, len(COLUMNS) - 1))

    def row_of(self, order_id: str) -> tuple[str, ...] | None:
        """What the user sees for one order (tests read this)."""
        row = self._index.get(order_id)
        return None if row is None else self._cells[self._top - self._seq[order_id]]

    def row_at(self, r: int) -> BlotterRow:
        return self._rows[r]

    def row_count(self) -> int:
        return len(self._rows)

    def data(self, index, role=DISPLAY):
        r, c = index.row(), index.column()
        if role == DISPLAY:
            return self._cells[r][c]
        if role == FG:
            return _COLOURS.get(self._cells[r][_STATUS])
        if role == BG:
            return _BACKGROUNDS.get(self._cells[r][_STATUS])
        if role == ALIGN and c in _NUMERIC:
            return int((Qt.AlignRight | Qt.AlignVCenter).value)
        if role == SORT_ROLE:
            return self._rows[r].number(c) if c in _NUMERIC else self._cells[r][c].casefold()
        return None


class BlotterProxy(QSortFilterProxyModel):
    """Sorts on ``SORT_ROLE`` and keeps the rows matching a text and a state group.

    The text is a case-insensitive substring of the symbol, order id or venue. Unsorted
    (column -1) it shows the source's order: newest first.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self._text = ""
        self._statuses: frozenset[str] | None = None

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_status_group(self, name: str) -> None:
        """One of ``STATUS_GROUPS``' names."""
        self.beginFilterChange()
        self._statuses = STATUS_GROUPS[name]
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        cells = self.sourceModel()._cells[source_row]
        if self._statuses is not None and cells[_STATUS] not in self._statuses:
            return False
        t = self._text
        return not t or any(t in cells[c].casefold() for c in (0, 1, 2))  # order, venue, symbol


def _venue_state(v: tuple) -> str:
    if not v[1]:
        return "DOWN"
    return "up" if len(v) < 3 or v[2] else "up, no book"


class BlotterWidget(QWidget):
    order_requested = Signal(str, str, int, float, str)  # venue, side, qty, price (0: market), tif
    cancel_requested = Signal(str)  # order id
    cancel_all_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = BlotterModel(parent=self)
        self.venue_box = QComboBox()
        self.venue_box.setMinimumWidth(90)
        self.side_box = QComboBox()
        self.side_box.addItems(["buy", "sell"])
        self.qty = QSpinBox()
        self.qty.setRange(1, 2_000_000_000)
        self.qty.setValue(100)
        self.qty.setGroupSeparatorShown(True)
        self.price = QDoubleSpinBox()
        self.price.setRange(0.0, 1e9)
        self.price.setSpecialValueText("MKT")  # 0 is a market order
        self.price.setMinimumWidth(110)
        self.tif_box = QComboBox()
        self.tif_box.addItems(["day", "ioc", "fok"])
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendOrder")
        self.cancel_button = QPushButton("Cancel selected")
        self.cancel_all_button = QPushButton("Cancel all")
        self.cancel_all_button.setObjectName("cancelAll")
        self.venues_label = QLabel("no venues")
        self.venues_label.setObjectName("venuesLabel")
        self.status = QLabel("")
        self.status.setObjectName("blotterStatus")
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("blotterFilter")
        self.filter_edit.setPlaceholderText("filter: symbol, order, venue")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMinimumWidth(210)
        self.status_filter = QComboBox()
        self.status_filter.setObjectName("blotterStatusFilter")
        self.status_filter.addItems(list(STATUS_GROUPS))
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setObjectName("exportCsv")
        ticket = QHBoxLayout()
        for label, w in (("Venue", self.venue_box), ("Side", self.side_box), ("Qty", self.qty),
                         ("Price", self.price), ("TIF", self.tif_box)):
            ticket.addWidget(QLabel(label))
            ticket.addWidget(w)
        ticket.addWidget(self.send_button)
        ticket.addStretch(1)
        ticket.addWidget(self.venues_label)
        ticket.addWidget(self.cancel_button)
        ticket.addWidget(self.cancel_all_button)
        self.send_button.clicked.connect(self._send)
        self.cancel_button.clicked.connect(self._cancel)
        self.cancel_all_button.clicked.connect(self.cancel_all_requested)
        self.proxy = BlotterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.status_filter.currentTextChanged.connect(self.proxy.set_status_group)
        self.export_button.clicked.connect(self._export)
        filters = QHBoxLayout()
        filters.addWidget(self.filter_edit)
        filters.addWidget(self.status_filter)
        filters.addWidget(self.export_button)
        filters.addWidget(self.status, 1)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        header = self.view.horizontalHeader()
        # no sort column until a header is clicked: newest first; a third click returns to it
        header.setSortIndicator(-1, Qt.AscendingOrder)
        header.setSortIndicatorClearable(True)
        self.view.setSortingEnabled(True)
        self.view.verticalHeader().hide()
        # widths from the font once, never measured from the rows: a ResizeToContents header
        # reads every cell of 10,000 rows on each change (seconds a frame)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        header.setSectionResizeMode(QHeaderView.Interactive)
        fm = self.view.fontMetrics()
        for c, sample in enumerate(_WIDTH_SAMPLES):
            header.resizeSection(c, max(fm.horizontalAdvance(sample),
                                        fm.horizontalAdvance(COLUMNS[c])) + 24)
        header.setStretchLastSection(True)
        self.view.setSelectionBehavior(QTableView.SelectRows)
        self.view.setShowGrid(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(ticket)
        lay.addLayout(filters)
        lay.addWidget(self.view)
        self.set_permissions(trade=False, cancel=False)

    # -- inputs ------------------------------------------------------------------------------
    def set_venues(self, venues: list[tuple[str, bool, bool]]) -> None:
        """The venues orders can go to: (name, session up, books good) each."""
        names = [v[0] for v in venues]
        if names != [self.venue_box.itemText(i) for i in range(self.venue_box.count())]:
            current = self.venue_box.currentText()
            self.venue_box.clear()
            self.venue_box.addItems(names)
            if current in names:
                self.venue_box.setCurrentText(current)
        text = "  ".join(f"{v[0]} {_venue_state(v)}" for v in venues) or "no venues"
        if text != self.venues_label.text():
            self.venues_label.setText(text)
            down = any(_venue_state(v) != "up" for v in venues)
            self.venues_label.setStyleSheet("color: #f0c674;" if down else "color: #8fe3ab;")

    def set_instrument(self, symbol: str, tick: float, decimals: int, price: float) -> None:
        """The instrument the ticket trades (the desk's current one)."""
        self.symbol = symbol
        self.price.setDecimals(decimals)
        self.price.setSingleStep(tick)
        self.price.setValue(price)
        self.send_button.setText(f"Send {symbol}")

    def set_permissions(self, *, trade: bool, cancel: bool, why_not_trade: str = "",
                        why_not_cancel: str = "") -> None:
        """What the role may use; a disabled control's tooltip says why (the engine refuses
        it anyway)."""
        for w in (self.venue_box, self.side_box, self.qty, self.price, self.tif_box,
                  self.send_button):
            w.setEnabled(trade)
            w.setToolTip("" if trade else why_not_trade)
        for w in (self.cancel_button, self.cancel_all_button):
            w.setEnabled(cancel)
            w.setToolTip("" if cancel else why_not_cancel)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff6b6b;" if error else "")

    def selected_order_id(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.proxy.data(self.proxy.index(rows[0].row(), 0))

    def export_csv(self, path: str) -> int:
        """Write the rows as shown (filtered and sorted) under a header; return how many.

        Numbers lose their group separators so a spreadsheet reads them as numbers. A failure
        is shown with ``set_status``, naming the path and the reason, and returns -1.
        """
        p = self.proxy
        rows = [p.sourceModel().row_at(p.mapToSource(p.index(r, 0)).row()).export_cells()
                for r in range(p.rowCount())]
        try:
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(COLUMNS)
                w.writerows(rows)
        except OSError as e:
            self.set_status(f"export to {path} failed: {e.strerror or e}", error=True)
            return -1
        self.set_status(f"exported {len(rows)} orders to {path}")
        return len(rows)

    # -- actions -----------------------------------------------------------------------------
    def _send(self) -> None:
        venue = self.venue_box.currentText()
        if not venue:
            self.set_status("no venue to send to", error=True)
            return
        self.order_requested.emit(venue, self.side_box.currentText(), self.qty.value(),
                                  self.price.value(), self.tif_box.currentText())

    def _export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export orders", "orders.csv",
                                              "CSV files (*.csv);;All files (*)")
        if path:
            self.export_csv(path)

    def _cancel(self) -> None:
        cl = self.selected_order_id()
        if cl is None:
            self.set_status("select an order to cancel", error=True)
            return
        self.cancel_requested.emit(cl)
