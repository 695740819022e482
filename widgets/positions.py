"""Positions: one row per book and instrument, the book's totals in bold, updated in place.

``PositionsModel.update(rows)`` takes the engine's POSITION_ROW array (``instrument`` -1: the
book's total). A row is known by (book kind, book id, instrument): a known one changes only the
cells that changed (``dataChanged`` over them), a new key inserts its row (``beginInsertRows``),
a key the engine no longer sends is removed; never a reset per snapshot.

``PositionsTable`` is the model behind a sorting, filtering proxy and a table: pick a book to
see only its rows; click a header to sort (totals stay at the bottom either way; a third click
goes back to the engine's order). Figures are right-aligned in a fixed-width font; unrealized
and realized P&L read red when negative, green when positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase, QFontMetrics
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets._model import ALIGN, DISPLAY, FG, FONT, LEFT, RIGHT, TIP, TableModel

__all__ = ["COLUMNS", "SORT_ROLE", "PositionsModel", "PositionsTable"]

COLUMNS = ("Book", "Instrument", "Qty", "Avg px", "Mark", "Unrealized", "Realized", "Fees",
           "Working buy", "Working sell")
_HEADER_TIPS = {"Avg px": "Average cost of the open position", "Mark": "The consolidated mid",
                "Realized": "Realized P&L, fees deducted", "Fees": "Fees paid (in realized)",
                "Working buy": "Quantity in working buy orders",
                "Working sell": "Quantity in working sell orders"}
BOOK, INSTRUMENT, QTY, AVG_PX, MARK, UNREALIZED, REALIZED, FEES, WORK_BUY, WORK_SELL = range(10)
_PNL = (UNREALIZED, REALIZED)
#: the raw value of a cell, for sorting (numbers as numbers; NaN sorts lowest)
SORT_ROLE = Qt.UserRole.value
ALL_BOOKS = "All books"

_GAIN = QBrush(QColor("#8fe3ab"))
_LOSS = QBrush(QColor("#ff6b6b"))
_NONE = QBrush(QColor("#7d838b"))
_ROLES = [Qt.DisplayRole, Qt.ForegroundRole, Qt.UserRole]


def _text(b: bytes) -> str:
    return b.decode(errors="replace").rstrip("\x00")


@dataclass(slots=True, eq=False)
class PositionRow:
    """One row as shown; the model keeps the same object for a key across updates."""

    key: tuple[int, int, int]  #: (book kind, book id, instrument; -1: the total)
    book: str
    cells: tuple[str, ...]
    values: tuple  #: per column, for sorting
    fg: tuple  #: per column: a QBrush or None

    @property
    def total(self) -> bool:
        return self.key[2] == -1


class PositionsModel(TableModel):
    columns = COLUMNS

    def __init__(self, instruments: Sequence[str], decimals: Sequence[int] | int = 2,
                 parent=None) -> None:
        """``instruments``: names by instrument index; ``decimals``: how many decimals its
        prices show (one for all, or one per instrument)."""
        super().__init__(parent)
        self.instruments = list(instruments)
        self.decimals = ([decimals] * len(self.instruments) if isinstance(decimals, int)
                         else list(decimals))
        self._rows: list[PositionRow] = []
        self._index: dict[tuple[int, int, int], PositionRow] = {}
        self._pos: dict[tuple[int, int, int], int] = {}  # key -> row number
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        bold_mono = QFont(mono)
        bold_mono.setBold(True)
        bold = QFont()
        bold.setBold(True)
        self._fonts = {False: [None, None] + [mono] * (len(COLUMNS) - 2),
                       True: [bold, bold] + [bold_mono] * (len(COLUMNS) - 2)}

    # -- data in -------------------------------------------------------------------------------
    def update(self, rows: np.ndarray) -> None:
        """Show the engine's POSITION_ROW records."""
        seen = set()
        new: list[PositionRow] = []
        lo = hi = -1  # the rows that changed: one dataChanged for them all (the sort proxy
        left = right = -1  # re-sorts on each one: per row it cost ~13 ms an update)
        for rec in rows:
            key = (int(rec["book_kind"]), int(rec["book_id"]), int(rec["instrument"]))
            if key in seen:  # one row per key: a second would have no place of its own
                continue
            seen.add(key)
            row = self._index.get(key)
            cells, values, fg = self._format(key[2], rec)
            if row is None:
                row = PositionRow(key, cells[BOOK], cells, values, fg)
                self._index[key] = row
                new.append(row)
                continue
            if cells == row.cells and fg == row.fg:
                continue
            changed = [c for c in range(len(COLUMNS))
                       if cells[c] != row.cells[c] or fg[c] is not row.fg[c]]
            row.cells, row.values, row.fg, row.book = cells, values, fg, cells[BOOK]
            r = self._pos[key]
            lo = r if lo < 0 else min(lo, r)
            hi = max(hi, r)
            left = changed[0] if left < 0 else min(left, changed[0])
            right = max(right, changed[-1])
        if lo >= 0:
            self.dataChanged.emit(self.index(lo, left), self.index(hi, right), _ROLES)
        gone = [r for r, row in enumerate(self._rows) if row.key not in seen]
        for r in reversed(gone):
            self.beginRemoveRows(QModelIndex(), r, r)
            del self._index[self._rows.pop(r).key]
            self.endRemoveRows()
        if gone:
            self._pos = {row.key: r for r, row in enumerate(self._rows)}
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            self._pos.update((row.key, first + k) for k, row in enumerate(new))
            self.endInsertRows()

    def _format(self, instrument: int, rec) -> tuple[tuple[str, ...], tuple, tuple]:
        total = instrument == -1
        if total:
            name, d = "Total", 2
        elif 0 <= instrument < len(self.instruments):
            name, d = self.instruments[instrument], self.decimals[instrument]
        else:
            name, d = f"#{instrument}", 2
        qty = int(rec["qty"])
        avg, mark = float(rec["avg_px"]), float(rec["mark"])
        unreal, real, fees = float(rec["unrealized"]), float(rec["realized"]), float(rec["fees"])
        wbuy, wsell = int(rec["working_buy"]), int(rec["working_sell"])

        def px(x: float) -> str:
            return "—" if math.isnan(x) else f"{x:,.{d}f}"

        def money(x: float) -> str:
            return "—" if math.isnan(x) else f"{x:,.2f}"

        book = _text(rec["book"])
        if total:  # a sum of quantities or prices over instruments means nothing
            cells = (book, name, "", "", "", money(unreal), money(real), money(fees), "", "")
        else:
            cells = (book, name, f"{qty:,}", px(avg) if qty else "", px(mark), money(unreal),
                     money(real), money(fees), f"{wbuy:,}", f"{wsell:,}")
        low = -math.inf
        values = (book, name, qty, avg if qty else low, low if math.isnan(mark) else mark,
                  low if math.isnan(unreal) else unreal, real, fees, wbuy, wsell)
        fg = [None] * len(COLUMNS)
        for c, x in ((UNREALIZED, unreal), (REALIZED, real)):
            fg[c] = _NONE if math.isnan(x) else _LOSS if x < 0 else _GAIN if x > 0 else None
        if not total and math.isnan(mark):
            fg[MARK] = _NONE
        return cells, values, tuple(fg)

    # -- what the user sees (tests read this) -----------------------------------------------------
    def row_of(self, book: str, instrument: str) -> tuple[str, ...] | None:
        """The cells shown for one book's instrument ("Total": the book's total row)."""
        for row in self._rows:
            if row.book == book and row.cells[INSTRUMENT] == instrument:
                return row.cells
        return None

    def row_objects(self) -> list[PositionRow]:
        return list(self._rows)

    def books(self) -> list[str]:
        """Book names in the order they first appeared."""
        return list(dict.fromkeys(row.book for row in self._rows))

    def book_at(self, r: int) -> str:
        return self._rows[r].book

    def is_total(self, r: int) -> bool:
        return self._rows[r].total

    # -- the model ------------------------------------------------------------------------------
    def row_count(self) -> int:
        return len(self._rows)

    def header(self, section: int, role: int):
        if role == ALIGN:
            return LEFT if section < QTY else RIGHT
        return _HEADER_TIPS.get(COLUMNS[section]) if role == TIP else None

    def data(self, index, role=DISPLAY):
        row, c = self._rows[index.row()], index.column()
        if role == DISPLAY:
            return row.cells[c]
        if role == FG:
            return row.fg[c]
        if role == ALIGN:
            return LEFT if c < QTY else RIGHT
        if role == FONT:
            return self._fonts[row.total][c]
        if role == SORT_ROLE:
            return row.values[c]
        return None


class _BookProxy(QSortFilterProxyModel):
    """Only one book's rows (or all); sorted by the raw values, totals always last."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.book: str | None = None
        self.setSortRole(SORT_ROLE)

    def set_book(self, book: str | None) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+: invalidateFilter is deprecated
            self.beginFilterChange()
            self.book = book
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.book = book
            self.invalidateFilter()

    def filterAcceptsRow(self, r: int, parent: QModelIndex) -> bool:
        return self.book is None or self.sourceModel().book_at(r) == self.book

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:
        m = self.sourceModel()
        lt, rt = m.is_total(left.row()), m.is_total(right.row())
        if lt != rt:  # descending order reverses the comparison: keep totals at the bottom
            return rt if self.sortOrder() == Qt.AscendingOrder else lt
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a == b:  # ties: the engine's order
            return left.row() < right.row()
        return a < b


class PositionsTable(QWidget):
    """A book filter over the sortable positions table."""

    def __init__(self, instruments: Sequence[str], decimals: Sequence[int] | int = 2,
                 parent=None) -> None:
        super().__init__(parent)
        self.model = PositionsModel(instruments, decimals, self)
        self.proxy = _BookProxy(self)
        self.proxy.setSourceModel(self.model)
        self.book_box = QComboBox()
        self.book_box.setObjectName("positionsBook")
        self.book_box.addItem(ALL_BOOKS)
        self.book_box.setMinimumContentsLength(16)
        self.book_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.book_box.currentTextChanged.connect(self._book_picked)
        self.view = QTableView()
        self.view.setObjectName("positionsView")
        self.view.setModel(self.proxy)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(24)
        head = self.view.horizontalHeader()
        # sized from the rows when rows come or go, not on every change (ResizeToContents
        # reads every cell of every row at each update: most of the risk tables' time)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        head.setSectionResizeMode(QHeaderView.Interactive)
        # and, for figures that grow wider, at most every 2 s after a change
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(2000)
        self._fit_timer.timeout.connect(self._fit_columns)
        self.model.rowsInserted.connect(lambda *_: self._fit_columns())
        self.model.modelReset.connect(self._fit_columns)
        self.model.dataChanged.connect(
            lambda *_: self._fit_timer.isActive() or self._fit_timer.start())
        head.setStretchLastSection(False)
        head.setSortIndicatorClearable(True)
        head.setSortIndicator(-1, Qt.AscendingOrder)
        self.view.setSortingEnabled(True)
        # the arrow's room widens every column: shown only while a column sorts
        head.setSortIndicatorShown(False)
        head.sortIndicatorChanged.connect(
            lambda section, _order: head.setSortIndicatorShown(section >= 0))
        self.view.setSelectionBehavior(QTableView.SelectRows)
        self.view.setShowGrid(False)
        self.view.setAlternatingRowColors(False)
        top = QHBoxLayout()
        top.addWidget(QLabel("Book"))
        top.addWidget(self.book_box)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.view)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._fit_columns()  # the style sheet's font is known once shown

    def _fit_columns(self) -> None:
        """Each column as wide as its widest text (bold, as totals are), measured from the
        texts the model holds: Qt's resizeColumnsToContents asks the model for every role of
        every cell (17 ms a call on a desk's positions)."""
        bold = self.model._fonts[True]  # totals: bold names, bold monospaced figures
        head = self.view.horizontalHeader()
        rows = self.model._rows
        names = QFont(self.view.font())  # the face the view draws names in, bold
        names.setBold(True)
        for c, title in enumerate(COLUMNS):
            fm = QFontMetrics(names if c < 2 else bold[c])
            widest = max((fm.horizontalAdvance(r.cells[c]) for r in rows), default=0)
            want = max(widest, head.fontMetrics().horizontalAdvance(title) + 12) + 18
            if head.sectionSize(c) != want:
                head.resizeSection(c, want)

    def update(self, *args, **kw) -> None:
        """``update(rows)``: show POSITION_ROW records. Called without an array (``update()``,
        ``update(QRect)``) it is QWidget's repaint request."""
        if (args and isinstance(args[0], np.ndarray)) or "rows" in kw:
            self.set_rows(*args, **kw)
        else:
            super().update(*args, **kw)

    def set_rows(self, rows: np.ndarray) -> None:
        """The same as ``update(rows)``."""
        self.model.update(rows)
        books = self.model.books()
        have = [self.book_box.itemText(i) for i in range(1, self.book_box.count())]
        for b in books:
            if b not in have:
                self.book_box.addItem(b)

    def set_book_filter(self, book: str | None) -> None:
        """Show only ``book``'s rows ("strategy:pairs"); None: every book."""
        self.book_box.setCurrentText(book or ALL_BOOKS)
        self._book_picked(self.book_box.currentText())

    def _book_picked(self, text: str) -> None:
        book = None if text == ALL_BOOKS else text
        if book != self.proxy.book:
            self.proxy.set_book(book)

    def visible_rows(self) -> list[tuple[str, ...]]:
        """The rows as the view shows them: filtered and sorted (tests read this)."""
        p = self.proxy
        return [tuple(p.data(p.index(r, c)) for c in range(len(COLUMNS)))
                for r in range(p.rowCount())]
