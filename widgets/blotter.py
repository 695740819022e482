"""The blotter: one row per order, newest on top, updated in place.

Fed plain data: ``update(order_id, venue, symbol, side, qty, price, status, cum, leaves,
avg_px, text, unknown)``.

``BlotterWidget`` puts an order ticket (venue, side, quantity, price, time in force) and the
cancel buttons above the table, with each venue's session state. It only asks: the signals
``order_requested``, ``cancel_requested`` and ``cancel_all_requested`` go to whoever sends
commands, and ``set_status`` shows the answer. A new order inserts one row (``beginInsertRows``); a known one
changes only its own row (``dataChanged``), never a reset per report. Orders whose venue
dropped are shown "UNKNOWN" in amber until a report settles them.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

__all__ = ["BlotterModel", "BlotterWidget", "BlotterRow"]

COLUMNS = ("Order", "Venue", "Symbol", "Side", "Qty", "Price", "Status", "Filled", "Left",
           "Avg px", "Text")
_DISPLAY = Qt.DisplayRole.value
_FG = Qt.ForegroundRole.value
_ALIGN = Qt.TextAlignmentRole.value
_NUMERIC = frozenset({4, 5, 7, 8, 9})
_COLOURS = {
    "Filled": QBrush(QColor("#8fe3ab")),
    "PartiallyFilled": QBrush(QColor("#3fb5ff")),
    "Rejected": QBrush(QColor("#ff6b6b")),
    "Cancelled": QBrush(QColor("#7d838b")),
    "Expired": QBrush(QColor("#7d838b")),
    "UNKNOWN": QBrush(QColor("#f0c674")),
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


class BlotterModel(QAbstractTableModel):
    def __init__(self, max_rows: int = 5000, parent=None) -> None:
        super().__init__(parent)
        self.max_rows = max_rows
        self._rows: list[BlotterRow] = []  # newest first
        self._cells: list[tuple[str, ...]] = []
        self._index: dict[str, BlotterRow] = {}

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
            self.endInsertRows()
            if len(self._rows) > self.max_rows:
                last = len(self._rows) - 1
                self.beginRemoveRows(QModelIndex(), last, last)
                gone = self._rows.pop()
                self._cells.pop()
                del self._index[gone.order_id]
                self.endRemoveRows()
            return
        row.status, row.cum, row.leaves, row.avg_px, row.unknown = status, cum, leaves, avg_px, unknown
        if text:
            row.text = text
        r = self._rows.index(row)
        self._cells[r] = row.cells()
        self.dataChanged.emit(self.index(r, 0), self.index(r, len(COLUMNS) - 1))

    def row_of(self, order_id: str) -> tuple[str, ...] | None:
        """What the user sees for one order (tests read this)."""
        row = self._index.get(order_id)
        return None if row is None else self._cells[self._rows.index(row)]

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=_DISPLAY):
        if role == _DISPLAY and orientation == Qt.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index, role=_DISPLAY):
        r, c = index.row(), index.column()
        if role == _DISPLAY:
            return self._cells[r][c]
        if role == _FG and c == 6:
            return _COLOURS.get(self._cells[r][6])
        if role == _ALIGN and c in _NUMERIC:
            return int((Qt.AlignRight | Qt.AlignVCenter).value)
        return None


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
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setSelectionBehavior(QTableView.SelectRows)
        self.view.setShowGrid(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(ticket)
        lay.addWidget(self.status)
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

    def set_permissions(self, *, trade: bool, cancel: bool) -> None:
        for w in (self.venue_box, self.side_box, self.qty, self.price, self.tif_box,
                  self.send_button):
            w.setEnabled(trade)
        self.cancel_button.setEnabled(cancel)
        self.cancel_all_button.setEnabled(cancel)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff6b6b;" if error else "")

    def selected_order_id(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.data(self.model.index(rows[0].row(), 0))

    # -- actions -----------------------------------------------------------------------------
    def _send(self) -> None:
        venue = self.venue_box.currentText()
        if not venue:
            self.set_status("no venue to send to", error=True)
            return
        self.order_requested.emit(venue, self.side_box.currentText(), self.qty.value(),
                                  self.price.value(), self.tif_box.currentText())

    def _cancel(self) -> None:
        cl = self.selected_order_id()
        if cl is None:
            self.set_status("select an order to cancel", error=True)
            return
        self.cancel_requested.emit(cl)
