"""The risk panel: the desk's daily P&L against its loss limit, a gauge per limit, and VaR.

Fed plain numpy arrays: ``update(limits, var, pnl, loss_limit)`` with ``limits`` of the
engine's LIMIT_ROW records (key, scope, used, limit, fraction) and ``var`` of VAR_ROW records
(book, 95 %/99 % historical and parametric VaR, the marks they come from, when). Gauges and
table rows are made when the arrays first have that many rows and changed in place after, so a
snapshot a second costs text and a repaint, never new widgets.

Colour bands of a gauge (``band``): below 0.7 used "calm", from 0.7 "amber", from 0.9 "red",
from 1.0 "breached"; a NaN fraction (no figure yet) is "none", grey.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from PySide6.QtCore import QModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase, QPainter
from PySide6.QtWidgets import (
    QFrame,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets._model import ALIGN, DISPLAY, FG, FONT, LEFT, RIGHT, TIP, TableModel

__all__ = ["BAND_COLOURS", "Gauge", "RiskPanel", "VarModel", "band"]

AMBER_AT, RED_AT, BREACHED_AT = 0.7, 0.9, 1.0
#: bar colour of each band
BAND_COLOURS = {
    "none": "#4a4f57",
    "calm": "#3f8a5c",
    "amber": "#f0c674",
    "red": "#ff6b6b",
    "breached": "#d6322a",
}
_TEXT = QColor("#d7dae0")
_DIM = QColor("#9aa0a8")
_ALERT_TEXT = QColor("#ff8a80")
_TRACK = QColor("#262a31")
_TICK = QColor("#5d636b")


def band(fraction: float) -> str:
    """The colour band of a utilisation: none (NaN), calm, amber, red or breached."""
    if math.isnan(fraction):
        return "none"
    if fraction >= BREACHED_AT:
        return "breached"
    if fraction >= RED_AT:
        return "red"
    if fraction >= AMBER_AT:
        return "amber"
    return "calm"


def _num(x: float) -> str:
    """A figure for the desk: thousands grouped; cents only on small fractional values."""
    if not math.isfinite(x):
        return "n/a"
    if x == int(x) or abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.2f}"


def _text(b: bytes) -> str:
    return b.decode(errors="replace").rstrip("\x00")


class Gauge(QWidget):
    """One utilisation: a label line ("max_position · instrument:ESZ6  1,200 / 2,000" on the
    left, the percentage on the right) over a bar filled to the fraction in its band's colour,
    with ticks at the amber and red thresholds."""

    BAR_H = 8

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.fraction = math.nan
        self.band = "none"
        self.text = ""
        self.percent = ""
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        fm = self.fontMetrics()
        self._line_h = fm.height() + 4
        self.setFixedHeight(self._line_h + self.BAR_H + 8)

    def sizeHint(self) -> QSize:
        return QSize(360, self._line_h + self.BAR_H + 8)

    def minimumSizeHint(self) -> QSize:
        return QSize(200, self._line_h + self.BAR_H + 8)

    def set_value(self, fraction: float, text: str) -> bool:
        """Show ``fraction`` used, labelled ``text``; True when anything changed."""
        fraction = float(fraction)
        b = band(fraction)
        if math.isnan(fraction):
            percent = "n/a"
        else:
            percent = f"{fraction * 100:,.0f} %" + ("  BREACHED" if b == "breached" else "")
        if text == self.text and percent == self.percent and b == self.band and (
                fraction == self.fraction or (math.isnan(fraction) and math.isnan(self.fraction))):
            return False
        self.fraction, self.band, self.text, self.percent = fraction, b, text, percent
        self.setToolTip(f"{text}   {percent}")
        self.update()
        return True

    def colour(self) -> QColor:
        """The bar's colour (its band's)."""
        return QColor(BAND_COLOURS[self.band])

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        w = self.width()
        lh = self._line_h
        alert = self.band in ("red", "breached")
        pct_w = self.fontMetrics().horizontalAdvance(self.percent) + 4
        p.setPen(_ALERT_TEXT if alert else _TEXT)
        if alert:
            bold = QFont(self.font())
            bold.setBold(True)
            p.setFont(bold)
            pct_w = p.fontMetrics().horizontalAdvance(self.percent) + 4
        p.drawText(QRectF(w - pct_w - 2, 0, pct_w, lh), int(Qt.AlignRight | Qt.AlignVCenter),
                   self.percent)
        p.setPen(_TEXT if self.band != "none" else _DIM)
        p.setFont(self.font())
        label = p.fontMetrics().elidedText(self.text, Qt.ElideMiddle, int(w - pct_w - 14))
        p.drawText(QRectF(2, 0, w - pct_w - 10, lh), int(Qt.AlignLeft | Qt.AlignVCenter), label)
        y = lh + 2
        track = QRectF(2, y, w - 4, self.BAR_H)
        p.setPen(Qt.NoPen)
        p.setBrush(_TRACK)
        p.drawRoundedRect(track, 3, 3)
        if not math.isnan(self.fraction) and self.fraction > 0:
            fill = QRectF(track)
            fill.setWidth(max(2.0, track.width() * min(self.fraction, 1.0)))
            p.setBrush(self.colour())
            p.drawRoundedRect(fill, 3, 3)
        p.setPen(_TICK)
        for at in (AMBER_AT, RED_AT):
            x = track.left() + track.width() * at
            p.drawLine(int(x), int(y - 1), int(x), int(y + self.BAR_H))
        p.end()


VAR_COLUMNS = ("Book", "95% hist", "99% hist", "95% param", "99% param", "Marks")
_VAR_TIPS = ("", "95 % historical VaR", "99 % historical VaR", "95 % parametric VaR",
             "99 % parametric VaR", "Marks in the window the figures come from")
MARKS = 5
_VAR_FIELDS = ("var95_hist", "var99_hist", "var95_param", "var99_param")
_NA = QBrush(QColor("#7d838b"))


class VarModel(TableModel):
    """VAR_ROW records as a table: one row per book; "n/a" where a figure is NaN (too few
    marks), the marks it would come from beside it."""

    columns = VAR_COLUMNS

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._cells: list[tuple[str, ...]] = []
        self._when: list[str] = []  # the book cell's tooltip
        self._mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)

    def update(self, var: np.ndarray) -> None:
        n, old = len(var), len(self._cells)
        cells = [self._format(var[r]) for r in range(n)]
        self._when = [self._as_of(int(var[r]["ts_ns"])) for r in range(n)]
        if n < old:
            self.beginRemoveRows(QModelIndex(), n, old - 1)
            del self._cells[n:]
            self.endRemoveRows()
        for r in range(min(n, old)):
            if cells[r] != self._cells[r]:
                changed = [c for c in range(len(VAR_COLUMNS)) if cells[r][c] != self._cells[r][c]]
                self._cells[r] = cells[r]
                self.dataChanged.emit(self.index(r, changed[0]), self.index(r, changed[-1]),
                                      [Qt.DisplayRole, Qt.ForegroundRole, Qt.ToolTipRole])
        if n > old:
            self.beginInsertRows(QModelIndex(), old, n - 1)
            self._cells.extend(cells[old:])
            self.endInsertRows()

    @staticmethod
    def _format(rec) -> tuple[str, ...]:
        return (_text(rec["book"]), *(_num(float(rec[f])) for f in _VAR_FIELDS),
                f"{int(rec['n_marks']):,}")

    @staticmethod
    def _as_of(ts_ns: int) -> str:
        if not ts_ns:
            return "never computed"
        return "computed at " + datetime.fromtimestamp(ts_ns / 1e9).strftime("%H:%M:%S")

    def row_texts(self, r: int) -> tuple[str, ...]:
        """What row ``r`` shows (tests read this)."""
        return self._cells[r]

    def row_count(self) -> int:
        return len(self._cells)

    def header(self, section: int, role: int):
        if role == ALIGN:
            return RIGHT if section else LEFT
        return (_VAR_TIPS[section] or None) if role == TIP else None

    def data(self, index, role=DISPLAY):
        r, c = index.row(), index.column()
        if role == DISPLAY:
            return self._cells[r][c]
        if role == ALIGN and c:
            return RIGHT
        if role == FONT and c:
            return self._mono
        if role == TIP and c == 0:
            return self._when[r]
        if self._cells[r][c] == "n/a":
            if role == FG:
                return _NA
            if role == TIP:
                return f"not available: {self._cells[r][MARKS]} marks in the window, too few"
        return None


class RiskPanel(QWidget):
    """The daily P&L gauge, one gauge per limit (scrolling), and the VaR table."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.pnl_gauge = Gauge()
        self.pnl_gauge.setObjectName("pnlGauge")
        self.gauges: list[Gauge] = []
        self._gauge_box = QWidget()
        self._gauge_box.setObjectName("limitGauges")
        self._gauge_lay = QVBoxLayout(self._gauge_box)
        self._gauge_lay.setContentsMargins(2, 2, 2, 2)
        self._gauge_lay.setSpacing(6)
        self.no_limits = QLabel("No limits reported")
        self.no_limits.setObjectName("riskEmpty")
        self._gauge_lay.addWidget(self.no_limits)
        self._gauge_lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(self._gauge_box)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.var_model = VarModel(self)
        self.var_view = QTableView()
        self.var_view.setObjectName("varView")
        self.var_view.setModel(self.var_model)
        self.var_view.verticalHeader().hide()
        head = self.var_view.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeToContents)
        head.setSectionResizeMode(0, QHeaderView.Stretch)
        self.var_view.setShowGrid(False)
        self.var_view.setSelectionMode(QTableView.NoSelection)
        self.var_view.setFocusPolicy(Qt.NoFocus)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.pnl_gauge)
        lay.addWidget(self._title("Limits"))
        lay.addWidget(scroll, 3)
        lay.addWidget(self._title("Value at risk"))
        lay.addWidget(self.var_view, 2)
        self.pnl = math.nan
        self.loss_limit = math.nan
        self.set_pnl(math.nan, math.nan)

    @staticmethod
    def _title(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("riskSection")
        return label

    # -- inputs ----------------------------------------------------------------------------------
    def update(self, *args, **kw) -> None:
        """``update(limits, var, pnl, loss_limit)``: show a snapshot. Called with no arrays
        (``update()``, ``update(QRect)``) it is QWidget's repaint request."""
        if (args and isinstance(args[0], np.ndarray)) or "limits" in kw:
            self.set_data(*args, **kw)
        else:
            super().update(*args, **kw)

    def set_data(self, limits: np.ndarray, var: np.ndarray, pnl: float,
                 loss_limit: float) -> None:
        """The same as ``update(limits, var, pnl, loss_limit)``."""
        self.set_limits(limits)
        self.var_model.update(var)
        self.set_pnl(pnl, loss_limit)

    def set_limits(self, limits: np.ndarray) -> None:
        """LIMIT_ROW records: one gauge each, in the array's order."""
        n = len(limits)
        while len(self.gauges) < n:
            g = Gauge()
            self._gauge_lay.insertWidget(len(self.gauges), g)
            self.gauges.append(g)
        while len(self.gauges) > n:
            g = self.gauges.pop()
            self._gauge_lay.removeWidget(g)
            g.deleteLater()
        for g, rec in zip(self.gauges, limits):
            text = (f"{_text(rec['key'])} · {_text(rec['scope'])}  "
                    f"{_num(float(rec['used']))} / {_num(float(rec['limit']))}")
            g.set_value(float(rec["fraction"]), text)
        self.no_limits.setVisible(n == 0)

    def set_pnl(self, pnl: float, loss_limit: float) -> None:
        """The day's P&L against the loss limit (a positive amount): the gauge fills with the
        loss, in the same bands as a limit's."""
        self.pnl, self.loss_limit = float(pnl), float(loss_limit)
        if not math.isfinite(self.pnl):
            self.pnl_gauge.set_value(math.nan, "Daily P&L  n/a")
            return
        pnl_text = f"{self.pnl:+,.0f}" if abs(self.pnl) >= 1000 else f"{self.pnl:+,.2f}"
        if not (math.isfinite(self.loss_limit) and self.loss_limit > 0):
            self.pnl_gauge.set_value(math.nan, f"Daily P&L  {pnl_text}  ·  no loss limit")
            return
        used = max(0.0, -self.pnl) / self.loss_limit
        self.pnl_gauge.set_value(
            used, f"Daily P&L  {pnl_text}  ·  loss limit {_num(self.loss_limit)}")
