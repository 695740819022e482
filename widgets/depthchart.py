"""A depth chart (pyqtgraph): cumulative bid size left of the mid, cumulative ask size right.

``DepthChart.set_depth(bid_px, bid_sz, ask_px, ask_sz)`` takes the levels best first; empty
levels (price or size not above zero: the zeros past a side's last level, or a hole a DELETE
left) are left out. Each side is one step curve, filled down to zero, made once: an update
only sets its data. The size at level ``k`` is the total from the best level through ``k``:
what a market order of that size would take, and so how far it would move the price. The
deepest level ends the curve with a drop at its price: past it the book says nothing.

Cost note (as in pricechart.py): auto-range re-lays both axes on every update, so the ranges
are fixed and move only when the depth leaves them or has become far smaller than them.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from widgets.stale import stale_label

__all__ = ["DepthChart"]

_BID = "#8fe3ab"
_ASK = "#ff6b6b"
_STALE = "#6b6f76"
_MID = "#9aa0a8"
_BG = "#15181d"
_FILL_ALPHA = 60


def _levels(px: np.ndarray, sz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    px = np.asarray(px, dtype=np.float64)
    sz = np.asarray(sz, dtype=np.float64)
    keep = (px > 0) & (sz > 0)
    return px[keep], np.cumsum(sz[keep])


def _brush(colour: str) -> pg.QtGui.QBrush:
    c = pg.mkColor(colour)
    c.setAlpha(_FILL_ALPHA)
    return pg.mkBrush(c)


class DepthChart(pg.PlotWidget):
    """Cumulative depth against price; ``set_stale(True)`` greys it and shows "STALE"."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, background=_BG)
        self.showGrid(x=True, y=True, alpha=0.15)
        self.setLabel("bottom", "price")
        self.setLabel("left", "cumulative size")
        self.getPlotItem().hideButtons()
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.disableAutoRange()
        # stepMode "right": size k holds from price k to price k+1 (away from the mid), which
        # is where it is the size a market order reaching that far would take
        self.bid_curve = self.plot(stepMode="right", fillLevel=0.0)
        self.ask_curve = self.plot(stepMode="right", fillLevel=0.0)
        self.mid_line = pg.InfiniteLine(angle=90, movable=False,
                                        pen=pg.mkPen(_MID, width=1, style=Qt.DashLine))
        self.addItem(self.mid_line, ignoreBounds=True)
        self.mid_line.hide()
        self.stale_label = stale_label(self)
        self.mid: float | None = None
        self.x_range: tuple[float, float] | None = None
        self.y_top: float | None = None
        self.stale = False
        self._paint_state(stale=False)

    # -- data in -------------------------------------------------------------------------------
    def set_depth(self, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray,
                  ask_sz: np.ndarray) -> None:
        """Show both sides' levels, best first; empty levels are left out."""
        bx, by = _levels(bid_px, bid_sz)
        ax, ay = _levels(ask_px, ask_sz)
        self.bid_curve.setData(bx, by)
        self.ask_curve.setData(ax, ay)
        if len(bx) and len(ax):
            self.mid = (bx[0] + ax[0]) / 2
            self.mid_line.setValue(self.mid)
            self.mid_line.show()
        else:
            self.mid = None
            self.mid_line.hide()
        self._fit(bx, by, ax, ay)

    def clear_depth(self) -> None:
        empty = np.zeros(0)
        self.set_depth(empty, empty, empty, empty)

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self._paint_state(stale)
            self.stale = stale

    # -- drawing -------------------------------------------------------------------------------
    def _paint_state(self, stale: bool) -> None:
        for curve, colour in ((self.bid_curve, _BID), (self.ask_curve, _ASK)):
            c = _STALE if stale else colour
            curve.setPen(pg.mkPen(c, width=1))  # cosmetic: a wider pen is stroked, 3x the cost
            curve.setBrush(_brush(c))
        self.stale_label.setVisible(stale)
        self._place_label()

    def _fit(self, bx, by, ax, ay) -> None:
        if self.mid is not None:
            centre = self.mid
        elif len(bx) or len(ax):
            centre = bx[0] if len(bx) else ax[0]
        else:
            return
        reach = max(centre - bx[-1] if len(bx) else 0.0, ax[-1] - centre if len(ax) else 0.0)
        reach = max(reach, abs(centre) * 1e-4, 1e-9) * 1.05
        if self.x_range is not None:
            lo, hi = self.x_range
            inside = lo <= centre - reach and centre + reach <= hi
            if not (inside and (hi - lo) <= 4 * reach):
                self.x_range = None
        if self.x_range is None:
            self.x_range = (centre - reach, centre + reach)
            self.setXRange(*self.x_range, padding=0)
        top = max(by[-1] if len(by) else 0.0, ay[-1] if len(ay) else 0.0)
        if top > 0 and (self.y_top is None or top > self.y_top or self.y_top > 3 * top):
            self.y_top = top * 1.15
            self.setYRange(0.0, self.y_top, padding=0)

    def _place_label(self) -> None:
        self.stale_label.adjustSize()
        self.stale_label.move((self.width() - self.stale_label.width()) // 2, 8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if hasattr(self, "stale_label"):  # GraphicsView may resize before __init__ ends
            self._place_label()
