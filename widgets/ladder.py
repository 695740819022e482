"""A price ladder: asks above, bids below, best prices in the middle.

``LadderModel.set_book`` takes four sequences (bid prices/sizes, ask prices/sizes, best level
first) and emits ``dataChanged`` only for the rows that changed, never a reset per tick.
``LadderView`` paints the model itself: a QTableView over the same model cost about 5 % of a
core at 20 updates a second (delegates, style and stylesheet per cell); painting 20 rows of
three texts directly costs a fraction of that.
"""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

__all__ = ["LadderModel", "LadderView", "LadderWidget"]

BID_SZ, PRICE, ASK_SZ = 0, 1, 2
_HEADERS = ("Bid size", "Price", "Ask size")
_BID = QColor("#3fb5ff")
_ASK = QColor("#ff6b6b")
_STALE = QColor("#6b6f76")
_BID_BG = QColor(63, 181, 255, 28)
_ASK_BG = QColor(255, 107, 107, 28)
_BASE = QColor("#15181d")
_HEADER_BG = QColor("#22262c")
_HEADER_FG = QColor("#9aa0a8")
_RULE = QColor("#2d3238")


# Roles as plain ints: comparing PySide enums costs a microsecond each, and data() is called
# for every role of every repainted cell.
_DISPLAY = Qt.DisplayRole.value
_ALIGN = Qt.TextAlignmentRole.value
_FG = Qt.ForegroundRole.value
_BG = Qt.BackgroundRole.value
_FONT = Qt.FontRole.value


class LadderModel(QAbstractTableModel):
    """20 rows × 3 columns. Texts are formatted once per change, in ``set_book``; ``data``
    only looks them up (it runs for every role of every cell Qt repaints)."""

    def __init__(self, depth: int = 10, parent=None) -> None:
        super().__init__(parent)
        self.depth = depth
        n = 2 * depth
        # rows 0..depth-1: asks, worst first; rows depth..2*depth-1: bids, best first
        self._px = [0.0] * n
        self._sz = [0.0] * n
        self._text = [("", "", "")] * n
        self._decimals = 2
        self.stale = True
        bold = QFont()
        bold.setBold(True)
        right = int((Qt.AlignRight | Qt.AlignVCenter).value)
        centre = int(Qt.AlignCenter.value)
        self._align = (right, centre, right)
        self._font = [bold if r in (depth - 1, depth) else None for r in range(n)]
        live_fg = [QBrush(_ASK if r < depth else _BID) for r in range(n)]
        stale_fg = [QBrush(_STALE)] * n
        self._fg_by_stale = {False: live_fg, True: stale_fg}
        ask_bg, bid_bg = QBrush(_ASK_BG), QBrush(_BID_BG)
        self._live_bg = [(None, None, ask_bg) if r < depth else (bid_bg, None, None) for r in range(n)]
        self._stale_bg = [(None, None, None)] * n
        self._fg = stale_fg
        self._bg = self._stale_bg

    # -- data in -------------------------------------------------------------------------------
    def set_decimals(self, decimals: int) -> None:
        self._decimals = decimals
        self._text = [self._format(r) for r in range(2 * self.depth)]
        self._all_changed()

    def _format(self, r: int) -> tuple[str, str, str]:
        px = self._px[r]
        if px == 0.0:
            return ("", "", "")
        price = f"{px:,.{self._decimals}f}"
        size = f"{self._sz[r]:,.0f}"
        return ("", price, size) if r < self.depth else (size, price, "")

    def set_book(self, bid_px: Sequence[float], bid_sz: Sequence[float],
                 ask_px: Sequence[float], ask_sz: Sequence[float]) -> None:
        d = self.depth
        px = [float(ask_px[d - 1 - k]) for k in range(d)] + [float(bid_px[k]) for k in range(d)]
        sz = [float(ask_sz[d - 1 - k]) for k in range(d)] + [float(bid_sz[k]) for k in range(d)]
        old_px, old_sz = self._px, self._sz
        changed = [r for r in range(2 * d) if px[r] != old_px[r] or sz[r] != old_sz[r]]
        if not changed:
            return
        self._px, self._sz = px, sz
        text = self._text
        for r in changed:
            text[r] = self._format(r)
        self.dataChanged.emit(self.index(changed[0], 0), self.index(changed[-1], 2), [Qt.DisplayRole])

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            self._fg = self._fg_by_stale[stale]
            self._bg = self._stale_bg if stale else self._live_bg
            self._all_changed()

    def clear(self) -> None:
        n = 2 * self.depth
        self._px = [0.0] * n
        self._sz = [0.0] * n
        self._text = [("", "", "")] * n
        self._all_changed()

    def _all_changed(self) -> None:
        self.dataChanged.emit(self.index(0, 0), self.index(2 * self.depth - 1, 2))

    # -- what the user sees (tests read this) -----------------------------------------------------
    def rows(self) -> list[tuple[str, str, str]]:
        return [
            tuple(self.data(self.index(r, c)) or "" for c in range(3))
            for r in range(self.rowCount())
        ]

    def row_view(self, r: int) -> tuple[tuple[str, str, str], QBrush, tuple, QFont | None]:
        """What row ``r`` shows: texts, text brush, cell backgrounds, font (None: normal)."""
        return self._text[r], self._fg[r], self._bg[r], self._font[r]

    @property
    def alignments(self) -> tuple[int, int, int]:
        return self._align

    def best(self) -> tuple[float, float]:
        """(best bid, best ask) as shown."""
        return self._px[self.depth], self._px[self.depth - 1]

    # -- QAbstractTableModel ----------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else 2 * self.depth

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else 3

    def headerData(self, section, orientation, role=_DISPLAY):
        if role == _DISPLAY and orientation == Qt.Horizontal:
            return _HEADERS[section]
        return None

    def data(self, index, role=_DISPLAY):
        if role == _DISPLAY:
            return self._text[index.row()][index.column()]
        if role == _FG:
            return self._fg[index.row()]
        if role == _BG:
            return self._bg[index.row()][index.column()]
        if role == _ALIGN:
            return self._align[index.column()]
        if role == _FONT:
            return self._font[index.row()]
        return None


class LadderView(QWidget):
    """Paints a ``LadderModel``: a header line, then one line per row; repaints changed rows."""

    ROW_H = 22

    def __init__(self, model: LadderModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.rows = model.rowCount()
        model.dataChanged.connect(self._rows_changed)
        model.modelReset.connect(self.update)
        self.setAttribute(Qt.WA_OpaquePaintEvent)  # every pixel is painted: no erase first
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setMinimumHeight((self.rows + 1) * self.ROW_H + 1)
        self._bold = QFont(self.font())
        self._bold.setBold(True)

    def sizeHint(self) -> QSize:
        return QSize(360, (self.rows + 1) * self.ROW_H + 1)

    def _rows_changed(self, top_left, bottom_right, _roles=()) -> None:
        y0 = (top_left.row() + 1) * self.ROW_H
        y1 = (bottom_right.row() + 2) * self.ROW_H
        self.update(0, y0, self.width(), y1 - y0 + 1)

    def paintEvent(self, event) -> None:
        h = self.ROW_H
        w3 = self.width() / 3
        clip = event.rect()
        p = QPainter(self)
        p.fillRect(clip, _BASE)
        if clip.top() < h:
            p.fillRect(0, 0, self.width(), h, _HEADER_BG)
            p.setPen(_HEADER_FG)
            for c, text in enumerate(_HEADERS):
                p.drawText(QRectF(c * w3, 0, w3, h), int(Qt.AlignCenter.value), text)
        first = max(0, clip.top() // h - 1)
        last = min(self.rows - 1, clip.bottom() // h - 1)
        align = self.model.alignments
        normal = self.font()
        for r in range(first, last + 1):
            y = (r + 1) * h
            texts, fg, bgs, bold = self.model.row_view(r)
            for c in range(3):
                if bgs[c] is not None:
                    p.fillRect(QRectF(c * w3, y, w3, h), bgs[c])
            p.setPen(fg.color())
            p.setFont(self._bold if bold is not None else normal)
            for c in range(3):
                if texts[c]:
                    p.drawText(QRectF(c * w3 + 8, y, w3 - 16, h), align[c], texts[c])
        # the spread: a rule between the best ask and the best bid
        y_mid = (self.rows // 2 + 1) * h
        if clip.top() <= y_mid <= clip.bottom() + 1:
            p.setPen(QPen(_RULE, 1))
            p.drawLine(0, y_mid, self.width(), y_mid)
        p.end()


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
        self.view = LadderView(self.model)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.banner)
        lay.addWidget(self.view)
        lay.addStretch(1)
        self._symbol = ""
        self._warning = ""
        self.set_stale(True, "no engine")

    def set_symbol(self, symbol: str, decimals: int) -> None:
        """Show ``symbol``, prices with ``decimals`` decimals (as many as its tick needs)."""
        self._symbol = symbol
        self.model.set_decimals(decimals)
        self.model.clear()
        self.title.setText(symbol)

    def set_book(self, bid_px, bid_sz, ask_px, ask_sz, last_px: float = 0.0, last_sz: float = 0.0,
                 warning: str = ""):
        """``warning``: what is wrong with this book ("CROSSED", "LOCKED"), shown in amber."""
        self.model.set_book(bid_px, bid_sz, ask_px, ask_sz)
        b, a = float(bid_px[0]), float(ask_px[0])
        d = self.model._decimals
        text = f"{self._symbol}   {b:,.{d}f} / {a:,.{d}f}"
        if b and a:
            text += f"   spread {a - b:,.{d}f}"
        if warning:
            text += f"   {warning}"
        if last_px:
            text += f"   last {last_sz:,.0f} @ {last_px:,.{d}f}"
        if text != self.title.text():
            self.title.setText(text)
        if warning != self._warning:
            self._warning = warning
            self.title.setStyleSheet("color: #f0c674;" if warning else "")

    def set_stale(self, stale: bool, why: str = "") -> None:
        self.model.set_stale(stale)
        self.banner.setVisible(stale)
        self.banner.setText(f"STALE — {why}" if why else "STALE")
