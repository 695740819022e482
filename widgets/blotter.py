"""The blotter: one row per order, newest on top, updated in place.

Fed plain data: ``update(order_id, venue, symbol, side, qty, price, status, cum, leaves,
avg_px, text, unknown)``. A new order inserts one row (``beginInsertRows``); a known one
changes only its own row (``dataChanged``), never a reset per report. Orders whose venue
dropped are shown "UNKNOWN" in amber until a report settles them.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QTableView, QVBoxLayout, QWidget

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


class BlotterWidget(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = BlotterModel(parent=self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setSelectionBehavior(QTableView.SelectRows)
        self.view.setShowGrid(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.view)
