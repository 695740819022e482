"""A scrolling chart of mid and last-trade prices (pyqtgraph), fed arrays at screen rate."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

__all__ = ["PriceChart"]


class PriceChart(QWidget):
    """Keeps the last ``capacity`` points in fixed arrays (rolled in place, never regrown)."""

    def __init__(self, capacity: int = 600, parent=None) -> None:
        super().__init__(parent)
        self.capacity = capacity
        self.t = np.full(capacity, np.nan)
        self.mid = np.full(capacity, np.nan)
        self.n = 0
        self.plot = pg.PlotWidget(background="#15181d")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setLabel("bottom", "seconds")
        self.plot.getPlotItem().hideButtons()
        self.plot.setMenuEnabled(False)
        self.curve = self.plot.plot(pen=pg.mkPen("#3fb5ff", width=1.5))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot)
        self._t0: float | None = None
        self.stale = False

    def clear(self) -> None:
        self.t[:] = np.nan
        self.mid[:] = np.nan
        self.n = 0
        self._t0 = None
        self.curve.setData([], [])

    def append(self, t_s: float, mid: float) -> None:
        if self._t0 is None:
            self._t0 = t_s
        if self.n < self.capacity:
            i = self.n
            self.n += 1
        else:
            self.t[:-1] = self.t[1:]
            self.mid[:-1] = self.mid[1:]
            i = self.capacity - 1
        self.t[i] = t_s - self._t0
        self.mid[i] = mid

    def redraw(self) -> None:
        if self.n:
            self.curve.setData(self.t[: self.n], self.mid[: self.n])

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            self.curve.setPen(pg.mkPen("#6b6f76" if stale else "#3fb5ff", width=1.5))
