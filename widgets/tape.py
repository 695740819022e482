"""Time and sales: the tape of trades, newest on top.

``TimeAndSalesModel.add_trades(ts_ns, price, size, side, venue)`` takes one batch of trades as
arrays, oldest first (the order they arrived in), formats each trade's texts once and inserts
the batch with one ``beginInsertRows``. Past ``max_rows`` the oldest rows go with one
``beginRemoveRows``, before the insert, so the view never holds more than ``max_rows``. Never a
model reset per batch.

Storage is a ring of ``max_rows`` slots made at start: row ``r`` (0 = newest) is slot
``(head - 1 - r) % max_rows``, so a batch costs its own length, not the tape's (a list with
inserts at the front would move every row on every batch).

Side codes are the aggressor's as in FIX Side(54): 1 buy, 2 sell, anything else unknown.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase, QFontMetrics
from PySide6.QtWidgets import QHeaderView, QTableView, QVBoxLayout, QWidget

from widgets._model import ALIGN, DISPLAY, FG, FONT, TableModel

__all__ = ["TimeAndSales", "TimeAndSalesModel"]

COLUMNS = ("Time (UTC)", "Price", "Size", "Side", "Venue")
TIME, PRICE, SIZE, SIDE, VENUE = range(5)

#: aggressor side codes (FIX Side(54)); 0 or anything else: unknown
BUY, SELL = 1, 2
_SIDE_TEXT = {BUY: "BUY", SELL: "SELL"}
_BUY_FG = QColor("#8fe3ab")
_SELL_FG = QColor("#ff6b6b")
_UNKNOWN_FG = QColor("#7d838b")

# Roles as plain ints: data() runs for every role of every repainted cell (see ladder.py).
_NS_PER_DAY = 86_400 * 1_000_000_000


def format_times(ts_ns: np.ndarray) -> list[str]:
    """``HH:MM:SS.mmm`` (UTC) of each time in ns since the epoch."""
    ns = np.asarray(ts_ns, dtype=np.int64) % _NS_PER_DAY  # floors: times before 1970 work too
    ms = ns // 1_000_000
    h, rem = np.divmod(ms, 3_600_000)
    m, rem = np.divmod(rem, 60_000)
    s, milli = np.divmod(rem, 1_000)
    return [f"{a:02d}:{b:02d}:{c:02d}.{d:03d}"
            for a, b, c, d in zip(h.tolist(), m.tolist(), s.tolist(), milli.tolist())]


def _venue_text(v) -> str:
    return v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)


class TimeAndSalesModel(TableModel):
    """The last ``max_rows`` trades; sizes at or above ``block_size`` are shown bold."""

    columns = COLUMNS

    def __init__(self, max_rows: int = 2000, block_size: float = float("inf"),
                 price_decimals: int = 2, size_decimals: int = 0, parent=None) -> None:
        super().__init__(parent)
        if max_rows < 1:
            raise ValueError(f"max_rows was {max_rows}: it must be at least 1")
        self.max_rows = max_rows
        self.block_size = block_size
        self._price_decimals = price_decimals
        self._size_decimals = size_decimals
        self._ts = np.zeros(max_rows, np.int64)
        self._px = np.zeros(max_rows)
        self._sz = np.zeros(max_rows)
        self._side = np.zeros(max_rows, np.int8)
        self._text: list[tuple[str, str, str, str, str]] = [("",) * 5] * max_rows
        self._head = 0  # slot the next trade goes to
        self._n = 0
        right = int((Qt.AlignRight | Qt.AlignVCenter).value)
        left = int((Qt.AlignLeft | Qt.AlignVCenter).value)
        centre = int(Qt.AlignCenter.value)
        self._align = (right, right, right, centre, left)
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        bold_mono = QFont(mono)
        bold_mono.setBold(True)
        bold = QFont()
        bold.setBold(True)
        #: fonts by column, normal and block trade; None: the view's font
        self._fonts = {False: (mono, mono, mono, None, None),
                       True: (bold_mono, bold_mono, bold_mono, bold, bold)}
        self._fg = {BUY: QBrush(_BUY_FG), SELL: QBrush(_SELL_FG)}
        self._fg_unknown = QBrush(_UNKNOWN_FG)

    # -- data in -------------------------------------------------------------------------------
    def add_trades(self, ts_ns: np.ndarray, price: np.ndarray, size: np.ndarray,
                   side: np.ndarray, venue: Sequence[str] | np.ndarray) -> None:
        """Put a batch of trades (oldest first) on top of the tape."""
        ts_ns, price, size, side = (np.asarray(a) for a in (ts_ns, price, size, side))
        n = len(ts_ns)
        if not (len(price) == len(size) == len(side) == len(venue) == n):
            raise ValueError(
                f"add_trades was given arrays of lengths {n}, {len(price)}, {len(size)}, "
                f"{len(side)}, {len(venue)}: they must be equal")
        if n == 0:
            return
        cap = self.max_rows
        if n > cap:  # only the newest cap trades of the batch could be seen
            ts_ns, price, size, side = ts_ns[-cap:], price[-cap:], size[-cap:], side[-cap:]
            venue = venue[-cap:]
            n = cap
        drop = self._n + n - cap
        if drop > 0:
            self.beginRemoveRows(QModelIndex(), self._n - drop, self._n - 1)
            self._n -= drop  # the slots stay; the insert below writes over them
            self.endRemoveRows()
        slots = (self._head + np.arange(n)) % cap
        self._ts[slots] = ts_ns
        self._px[slots] = price
        self._sz[slots] = size
        self._side[slots] = np.where((side == BUY) | (side == SELL), side, 0)
        times = format_times(ts_ns)
        pd, sd = self._price_decimals, self._size_decimals
        text = self._text
        for k, s in enumerate(slots.tolist()):
            text[s] = (times[k], f"{self._px[s]:,.{pd}f}", f"{self._sz[s]:,.{sd}f}",
                       _SIDE_TEXT.get(int(self._side[s]), "?"), _venue_text(venue[k]))
        self.beginInsertRows(QModelIndex(), 0, n - 1)
        self._head = (self._head + n) % cap
        self._n += n
        self.endInsertRows()

    def clear(self) -> None:
        if self._n:
            self.beginRemoveRows(QModelIndex(), 0, self._n - 1)
            self._n = 0
            self.endRemoveRows()

    def set_decimals(self, price_decimals: int, size_decimals: int = 0) -> None:
        """Show prices with as many decimals as the instrument's tick needs."""
        self._price_decimals, self._size_decimals = price_decimals, size_decimals
        for r in range(self._n):
            s = self._slot(r)
            t = self._text[s]
            self._text[s] = (t[0], f"{self._px[s]:,.{price_decimals}f}",
                             f"{self._sz[s]:,.{size_decimals}f}", t[3], t[4])
        self._all_changed()

    def set_block_size(self, block_size: float) -> None:
        """Trades of at least ``block_size`` are shown bold."""
        self.block_size = block_size
        self._all_changed()

    def _all_changed(self) -> None:
        if self._n:
            self.dataChanged.emit(self.index(0, 0), self.index(self._n - 1, len(COLUMNS) - 1))

    # -- what the user sees (tests read this) -----------------------------------------------------
    def _slot(self, r: int) -> int:
        return (self._head - 1 - r) % self.max_rows

    def row(self, r: int) -> tuple[str, str, str, str, str]:
        """Row ``r``'s texts (0: the newest trade)."""
        return self._text[self._slot(r)]

    def is_block(self, r: int) -> bool:
        return bool(self._sz[self._slot(r)] >= self.block_size)

    # -- the model ------------------------------------------------------------------------------
    def row_count(self) -> int:
        return self._n

    def header(self, section: int, role: int):
        return self._align[section] if role == ALIGN else None

    def data(self, index, role=DISPLAY):
        r, c = index.row(), index.column()
        if not 0 <= r < self._n:
            return None
        if role == DISPLAY:
            return self._text[self._slot(r)][c]
        if role == FG:
            return self._fg.get(int(self._side[self._slot(r)]), self._fg_unknown)
        if role == ALIGN:
            return self._align[c]
        if role == FONT:
            return self._fonts[self.is_block(r)][c]
        return None


class TimeAndSales(QWidget):
    """A table over a ``TimeAndSalesModel``; column widths fixed from the font, not measured
    from the rows (ResizeToContents would measure every row on every batch).

    At the top the view follows the tape. Scrolled down, it holds the trades in sight: new
    rows come in above, so the scroll position moves down by as many rows.
    """

    def __init__(self, max_rows: int = 2000, block_size: float = float("inf"),
                 price_decimals: int = 2, size_decimals: int = 0, parent=None) -> None:
        super().__init__(parent)
        self.model = TimeAndSalesModel(max_rows, block_size, price_decimals, size_decimals, self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        self.view.setShowGrid(False)
        self.view.setSelectionMode(QTableView.NoSelection)
        self.view.setFocusPolicy(Qt.NoFocus)  # no current-cell frame riding on the top row
        self.view.setWordWrap(False)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        fm = QFontMetrics(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.view.verticalHeader().setDefaultSectionSize(fm.height() + 4)
        for col, sample in ((TIME, "00:00:00.000"), (PRICE, "000,000.0000"),
                            (SIZE, "00,000,000"), (SIDE, "SELL")):
            header.resizeSection(col, fm.horizontalAdvance(sample) + 16)
        self.view.setVerticalScrollMode(QTableView.ScrollPerItem)  # scroll value = rows
        self.model.rowsInserted.connect(self._hold_scroll)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.view)

    def _hold_scroll(self, _parent, first: int, last: int) -> None:
        bar = self.view.verticalScrollBar()
        if bar.value() > 0:
            bar.setMaximum(max(bar.maximum(), bar.value() + last - first + 1))
            bar.setValue(bar.value() + last - first + 1)

    def add_trades(self, ts_ns, price, size, side, venue) -> None:
        self.model.add_trades(ts_ns, price, size, side, venue)

    def clear(self) -> None:
        self.model.clear()

    def set_decimals(self, price_decimals: int, size_decimals: int = 0) -> None:
        self.model.set_decimals(price_decimals, size_decimals)
