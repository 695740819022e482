"""The desk's P&L through the day, and each strategy's (pyqtgraph), against the daily loss limit.

``append(ts_s, desk, strategies)`` adds one point to every series (the desk calls it once a
second: a day is 86,400 points a series); ``load(ts, desk, strategies)`` sets a history in
bulk. Points live in preallocated float64 arrays that double when full, so an append is a few
stores, never a Python float per point. A strategy first seen mid-day has NaN before it (and in
any append that leaves it out): its line starts, or breaks, there.

``redraw()`` runs on the desk's timer and does nothing unless a point came in since the last
draw. Then every curve gets views of its arrays with ``clipToView`` and ``autoDownsample``
(peak method): pyqtgraph draws only the visible span and at most about two points per pixel
column, so a whole day costs about what a screenful does. The axes auto-range over the whole
day and over the loss-limit line, so the trader sees how far away the limit is; the mouse
zooms into part of the day (x only; the "A" button returns), and then only that part is drawn.
The x axis is the time of day, local, as the desk's clocks are.

Points arrive in time order; one at or before the last point is dropped and counted
(``dropped``): ``clipToView`` needs x to increase.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from widgets.stale import stale_label

__all__ = ["DESK", "PnlChart"]

#: the series name of the desk's own P&L (a strategy may not take it)
DESK = "desk"
_BG = "#15181d"
_DESK_COLOUR = "#e6e9ee"
#: strategy lines in turn; no red (the limit) and nothing near the desk's white
_PALETTE = ("#3fb5ff", "#8fe3ab", "#f0c674", "#c792ea", "#ff9e64", "#7fdbca", "#82aaff",
            "#e7a0c8")
_LIMIT = "#ff6b6b"
_ZERO = "#4a4f57"
_STALE = "#6b6f76"
_DESK_WIDTH = 2  # 1-pixel pens are drawn on a fast path; a wider one is stroked (a day
_STRATEGY_WIDTH = 1  # of points at 2.5 px cost 15-20 ms a frame, at 2 and 1 about 7)


def _money(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 or x == int(x) else f"{x:,.2f}"


class PnlChart(QWidget):
    """The day's P&L lines; ``set_stale(True)`` greys them and shows "STALE"."""

    def __init__(self, capacity: int = 4096, parent=None) -> None:
        super().__init__(parent)
        self._cap = max(16, int(capacity))
        self._t = np.empty(self._cap)
        self._y: dict[str, np.ndarray] = {DESK: np.empty(self._cap)}
        self.n = 0
        self.dropped = 0
        self._dirty = False
        self.stale = False
        self.limit: float | None = None

        self.plot = pg.PlotWidget(background=_BG,
                                  axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setLabel("left", "P&L")
        self.plot.setLabel("bottom", "time of day")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=True, y=False)  # zoom into part of the day; "A" undoes it
        # PlotItem.addItem gives each curve the plot's own settings: set them here
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.legend = self.plot.addLegend(offset=(8, 8), labelTextColor="#d7dae0",
                                          brush=pg.mkBrush(21, 24, 29, 200))
        self.zero_line = pg.InfiniteLine(pos=0.0, angle=0, movable=False,
                                         pen=pg.mkPen(_ZERO, width=1))
        self.plot.addItem(self.zero_line, ignoreBounds=True)
        self.limit_line = pg.InfiniteLine(
            angle=0, movable=False, pen=pg.mkPen(_LIMIT, width=1.5, style=Qt.DashLine),
            label="", labelOpts={"position": 0.02, "color": _LIMIT, "anchors": [(0, 1), (0, 1)],
                                 "fill": pg.mkBrush(21, 24, 29, 200)})
        self.plot.addItem(self.limit_line)  # in the bounds: the range reaches the limit
        self.limit_line.setZValue(20)  # its label over the lines, readable
        self.limit_line.hide()
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._add_curve(DESK)

        self.stale_label = stale_label(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot)

    # -- data in ---------------------------------------------------------------------------------
    def append(self, ts_s: float, desk: float, strategies: dict[str, float]) -> None:
        """One point: the time (s since the epoch), the desk's P&L and each strategy's."""
        if DESK in strategies:
            self._check_name(DESK)
        if self.n and not ts_s > self._t[self.n - 1]:
            self.dropped += 1
            return
        if self.n == self._cap:
            self._grow(2 * self._cap)
        i = self.n
        self._t[i] = ts_s
        self._y[DESK][i] = desk
        for name, ys in self._y.items():
            if name != DESK:
                ys[i] = strategies.get(name, math.nan)
        for name, v in strategies.items():
            if name not in self._y:
                self._new_series(name)[i] = v
        self.n = i + 1
        self._dirty = True

    def load(self, ts: np.ndarray, desk: np.ndarray, strategies: dict[str, np.ndarray]) -> None:
        """Replace the history: times (s since the epoch, increasing), the desk's P&L and each
        strategy's, all of one length."""
        ts = np.asarray(ts, dtype=np.float64)
        n = len(ts)
        arrays = {DESK: np.asarray(desk, dtype=np.float64)}
        for name, ys in strategies.items():
            self._check_name(name)
            arrays[name] = np.asarray(ys, dtype=np.float64)
        for name, ys in arrays.items():
            if len(ys) != n:
                raise ValueError(f"load was given {len(ys)} values for {name!r} and {n} times: "
                                 "each series needs one value a time")
        if n > 1 and not np.all(np.diff(ts) > 0):
            raise ValueError("load was given times that do not increase")
        cap = max(self._cap, 1 << max(4, (n - 1).bit_length()))
        self._cap = cap
        self._t = np.empty(cap)
        self._t[:n] = ts
        names = [*self._curves, *(s for s in arrays if s not in self._curves)]
        self._y = {}
        for name in names:
            ys = np.full(cap, np.nan)
            if name in arrays:
                ys[:n] = arrays[name]
            self._y[name] = ys
            if name not in self._curves:
                self._add_curve(name)
        self.n = n
        self._dirty = True

    def clear(self) -> None:
        """Forget every point (a new day); the strategies' lines stay, empty."""
        self.n = 0
        self.dropped = 0
        self._dirty = True

    def set_daily_loss_limit(self, limit: float | None) -> None:
        """Draw the limit as a red dashed line at ``-limit``; None or NaN: no line."""
        if limit is None or not math.isfinite(limit):
            self.limit = None
            self.limit_line.hide()
            return
        self.limit = abs(float(limit))
        text = f"daily loss limit -{_money(self.limit)}"
        self.limit_line.show()
        self.limit_line.setValue(-self.limit)
        label = self.limit_line.label
        label.format = text  # a fixed text: setFormat would read "{value}" fields
        label.setText(text)

    def set_stale(self, stale: bool) -> None:
        if stale == self.stale:
            return
        self.stale = stale
        for k, (name, curve) in enumerate(self._curves.items()):
            curve.setPen(self._pen(name, k))
        self.stale_label.setVisible(stale)
        self._place_label()

    # -- drawing ---------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Draw what came in since the last draw; nothing if nothing did."""
        if not self._dirty:
            return
        self._dirty = False
        n = self.n
        x = self._t[:n]
        for name, curve in self._curves.items():
            curve.setData(x, self._y[name][:n])

    def _check_name(self, name: str) -> None:
        if name == DESK:
            raise ValueError(f"a strategy was named {DESK!r}: that name is the desk's line")

    def _new_series(self, name: str) -> np.ndarray:
        self._check_name(name)
        ys = np.full(self._cap, np.nan)
        self._y[name] = ys
        self._add_curve(name)
        return ys

    def _grow(self, cap: int) -> None:
        t = np.empty(cap)
        t[:self.n] = self._t[:self.n]
        self._t = t
        for name, ys in self._y.items():
            new = np.full(cap, np.nan)
            new[:self.n] = ys[:self.n]
            self._y[name] = new
        self._cap = cap

    def _pen(self, name: str, k: int):
        if name == DESK:
            return pg.mkPen(_STALE if self.stale else _DESK_COLOUR, width=_DESK_WIDTH)
        colour = _STALE if self.stale else _PALETTE[(k - 1) % len(_PALETTE)]
        return pg.mkPen(colour, width=_STRATEGY_WIDTH)

    def _add_curve(self, name: str) -> None:
        curve = pg.PlotDataItem(pen=self._pen(name, len(self._curves)), name=name,
                                connect="finite")
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        self._curves[name] = curve
        self.plot.addItem(curve)
        if name == DESK:
            curve.setZValue(10)  # the desk's line over the strategies'

    def _place_label(self) -> None:
        self.stale_label.raise_()  # the layout put the plot above it
        self.stale_label.adjustSize()
        self.stale_label.move((self.width() - self.stale_label.width()) // 2, 8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_label()

    # -- what is drawn (tests read this) ---------------------------------------------------------
    def names(self) -> list[str]:
        """The series drawn: the desk first, then the strategies in the order first seen."""
        return list(self._curves)

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) arrays the curve ``name`` was last given (before clipping and
        downsampling to the view)."""
        x, y = self._curves[name].getOriginalDataset()
        if x is None:
            return np.zeros(0), np.zeros(0)
        return x, y

    def curve(self, name: str) -> pg.PlotDataItem:
        return self._curves[name]

    def limit_line_value(self) -> float | None:
        """Where the loss-limit line is drawn; None when there is none."""
        return float(self.limit_line.value()) if self.limit_line.isVisible() else None

    def limit_label(self) -> str:
        return self.limit_line.label.format if self.limit_line.isVisible() else ""
