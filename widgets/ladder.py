"""A price ladder: asks above, bids below, best prices in the middle.

``LadderModel.set_book`` takes four sequences (bid prices/sizes, ask prices/sizes, best level
first) and emits ``dataChanged`` only for the cells that changed, never a reset per tick.
"""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

__all__ = ["LadderModel", "LadderWidget"]

BID_SZ, PRICE, ASK_SZ = 0, 1, 2
_HEADERS = ("Bid size", "Price", "Ask size")
_BID = QColor("#3fb5ff")
_ASK = QColor("#ff6b6b")
_STALE = QColor("#6b6f76")
_BID_BG = QColor(63, 181, 255, 28)
_ASK_BG = QColor(255, 107, 107, 28)


class LadderModel(QAbstractTableModel):
    def __init__(self, depth: int = 10, parent=None) -> None:
        super().__init__(parent)
        self.depth = depth
        # rows 0..depth-1: asks, worst first; rows depth..2*depth-1: bids, best first
        self._px = [0.0] * (2 * depth)
        self._sz = [0.0] * (2 * depth)
        self._decimals = 2
        self.stale = True

    # -- data in -------------------------------------------------------------------------------
    def set_decimals(self, decimals: int) -> None:
        self._decimals = decimals
        self._all_changed()

    def set_book(self, bid_px: Sequence[float], bid_sz: Sequence[float],
                 ask_px: Sequence[float], ask_sz: Sequence[float]) -> None:
        d = self.depth
        px = [float(ask_px[d - 1 - k]) for k in range(d)] + [float(bid_px[k]) for k in range(d)]
        sz = [float(ask_sz[d - 1 - k]) for k in range(d)] + [float(bid_sz[k]) for k in range(d)]
        changed = [r for r in range(2 * d) if px[r] != self._px[r] or sz[r] != self._sz[r]]
        self._px, self._sz = px, sz
        if changed:
            self.dataChanged.emit(
                self.index(changed[0], 0), self.index(changed[-1], 2), [Qt.DisplayRole]
            )

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            self._all_changed()

    def clear(self) -> None:
        self._px = [0.0] * (2 * self.depth)
        self._sz = [0.0] * (2 * self.depth)
        self._all_changed()

    def _all_changed(self) -> None:
        self.dataChanged.emit(self.index(0, 0), self.index(2 * self.depth - 1, 2))

    # -- what the user sees (tests read this) -----------------------------------------------------
    def rows(self) -> list[tuple[str, str, str]]:
        return [
            tuple(self.data(self.index(r, c)) or "" for c in range(3))
            for r in range(self.rowCount())
        ]

    def best(self) -> tuple[float, float]:
        """(best bid, best ask) as shown."""
        return self._px[self.depth], self._px[self.depth - 1]

    # -- QAbstractTableModel ----------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else 2 * self.depth

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else 3

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return _HEADERS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        r, c = index.row(), index.column()
        is_ask = r < self.depth
        if role == Qt.DisplayRole:
            px = self._px[r]
            if px == 0.0:
                return ""
            if c == PRICE:
                return f"{px:,.{self._decimals}f}"
            if (c == ASK_SZ and is_ask) or (c == BID_SZ and not is_ask):
                return f"{self._sz[r]:,.0f}"
            return ""
        if role == Qt.TextAlignmentRole:
            return int(Qt.AlignCenter if c == PRICE else Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.ForegroundRole:
            if self.stale:
                return QBrush(_STALE)
            return QBrush(_ASK if is_ask else _BID)
        if role == Qt.BackgroundRole and not self.stale:
            if (c == ASK_SZ and is_ask) or (c == BID_SZ and not is_ask):
                return QBrush(_ASK_BG if is_ask else _BID_BG)
        if role == Qt.FontRole and r in (self.depth - 1, self.depth):
            f = QFont()
            f.setBold(True)
            return f
        return None


class LadderWidget(QWidget):
    """Title line (symbol, spread, last trade) over the ladder table, with a STALE banner."""

    def __init__(self, depth: int = 10, parent=None) -> None:
        super().__init__(parent)
        self.model = LadderModel(depth, self)
        self.title = QLabel("—")
        self.title.setObjectName("ladderTitle")
        self.banner = QLabel("STALE")
        self.banner.setObjectName("staleBanner")
        self.banner.setAlignment(Qt.AlignCenter)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.setSelectionMode(QTableView.NoSelection)
        self.view.setFocusPolicy(Qt.NoFocus)
        self.view.setShowGrid(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.banner)
        lay.addWidget(self.view)
        self._symbol = ""
        self.set_stale(True, "no engine")

    def set_symbol(self, symbol: str, tick: float) -> None:
        self._symbol = symbol
        text = f"{tick:.10f}".rstrip("0")
        self.model.set_decimals(len(text.split(".")[1]) if "." in text else 0)
        self.model.clear()
        self.title.setText(symbol)

    def set_book(self, bid_px, bid_sz, ask_px, ask_sz, last_px: float = 0.0, last_sz: float = 0.0):
        self.model.set_book(bid_px, bid_sz, ask_px, ask_sz)
        b, a = float(bid_px[0]), float(ask_px[0])
        d = self.model._decimals
        text = f"{self._symbol}   {b:,.{d}f} / {a:,.{d}f}"
        if b and a:
            text += f"   spread {a - b:,.{d}f}"
        if last_px:
            text += f"   last {last_sz:,.0f} @ {last_px:,.{d}f}"
        self.title.setText(text)

    def set_stale(self, stale: bool, why: str = "") -> None:
        self.model.set_stale(stale)
        self.banner.setVisible(stale)
        self.banner.setText(f"STALE — {why}" if why else "STALE")
