"""Latency histograms: a pure-numpy bucket count (``LatencyHistogram``) and a panel that draws
several of them (``LatencyPanel``, pyqtgraph bars).

Buckets (the default layout, ``EDGES_US``): 4 a power of two, log-spaced, from 1 µs up to
2^24 µs (16.8 s), with one bucket below 1 µs and one above 16.8 s: 98 buckets, 99 edges,
``[0, 1, 2^0.25, 2^0.5, …, 2^24, inf]``. Bucket ``i`` holds ``edges[i] <= us < edges[i + 1]``;
each is about 19 % wide, so a percentile read from the buckets is within 19 % of the sample's.

``percentile(q)`` (``q`` in percent, 0..100) is the **upper edge** of the bucket that holds the
q-quantile: the smallest bucket whose running count reaches ``ceil(q / 100 * count)`` (at least
1). It never understates: at least ``q`` % of the samples are at or below it. NaN when empty;
inf when that bucket is the one above the top edge.

A histogram other than the default layout (``LatencyHistogram(edges_us)``) works the same: the
panel draws whatever edges it is given (``set_histogram``), as the engine publishes them.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from widgets.stale import stale_label

__all__ = ["EDGES_US", "LatencyHistogram", "LatencyPanel", "format_us"]

SUB_BUCKETS = 4  #: buckets a power of two
OCTAVES = 24  #: powers of two above 1 µs: the top finite edge is 2^24 µs, 16.8 s
#: the default bucket edges in µs: [0, 1, 2^(1/4), …, 2^24, inf]
EDGES_US = np.concatenate(([0.0], 2.0 ** (np.arange(OCTAVES * SUB_BUCKETS + 1) / SUB_BUCKETS),
                           [math.inf]))
EDGES_US.flags.writeable = False


def format_us(us: float) -> str:
    """A latency for a person: "850 ns", "13.5 µs", "1.19 ms", "2.38 s"; ">16.8 s" style for
    inf is the caller's."""
    if not math.isfinite(us):
        return "n/a" if math.isnan(us) else "inf"
    for scale, unit in ((1e6, "s"), (1e3, "ms"), (1.0, "µs")):
        if us >= scale:
            v = us / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"
    return f"{us * 1000:.3g} ns"


def _check_edges(edges: np.ndarray) -> None:
    if edges.ndim != 1 or len(edges) < 2:
        raise ValueError(f"bucket edges were {edges.shape}-shaped: they must be a 1-d array of "
                         "at least 2")
    if not np.all(np.diff(edges) > 0):
        raise ValueError("bucket edges must increase")


class LatencyHistogram:
    """Counts of latencies (µs) in fixed buckets; see the module docstring for the layout."""

    __slots__ = ("_counts", "_edges", "_edge_list", "version")

    def __init__(self, edges_us: np.ndarray | None = None) -> None:
        if edges_us is None:
            edges = EDGES_US
        else:
            edges = np.array(edges_us, dtype=np.float64)
            _check_edges(edges)
            edges.flags.writeable = False
        self._edges = edges
        self._edge_list = edges.tolist()  # bisect on a list: an add costs no array call
        self._counts = np.zeros(len(edges) - 1, dtype=np.int64)
        #: bumped by every change, so a view can tell it has something new to draw
        self.version = 0

    # -- in --------------------------------------------------------------------------------------
    def add(self, us: float) -> None:
        """Count one latency; one below the first edge counts in the first bucket, one above the
        last in the last."""
        i = bisect.bisect_right(self._edge_list, us) - 1
        self._counts[min(max(i, 0), len(self._counts) - 1)] += 1
        self.version += 1

    def add_many(self, us: np.ndarray) -> None:
        """Count every latency of an array (NaNs are left out)."""
        us = np.asarray(us, dtype=np.float64).ravel()
        us = us[~np.isnan(us)]
        if not len(us):
            return
        i = np.searchsorted(self._edges, us, side="right") - 1
        np.clip(i, 0, len(self._counts) - 1, out=i)
        self._counts += np.bincount(i, minlength=len(self._counts))
        self.version += 1

    def merge_counts(self, counts: np.ndarray) -> None:
        """Add another histogram's counts (same buckets)."""
        counts = np.asarray(counts)
        if counts.shape != self._counts.shape:
            raise ValueError(f"merge_counts was given {counts.shape[0] if counts.ndim else 0} "
                             f"counts: these buckets are {len(self._counts)}")
        self._counts += counts.astype(np.int64)
        self.version += 1

    def set_counts(self, counts: np.ndarray) -> None:
        """Replace the counts (a publisher's running totals)."""
        counts = np.asarray(counts)
        if counts.shape != self._counts.shape:
            raise ValueError(f"set_counts was given {counts.shape[0] if counts.ndim else 0} "
                             f"counts: these buckets are {len(self._counts)}")
        if not np.array_equal(counts, self._counts):
            self._counts[:] = counts
            self.version += 1

    def clear(self) -> None:
        self._counts[:] = 0
        self.version += 1

    # -- out -------------------------------------------------------------------------------------
    @property
    def edges_us(self) -> np.ndarray:
        """Bucket edges in µs (read-only), one more than the buckets."""
        return self._edges

    @property
    def counts(self) -> np.ndarray:
        """Count per bucket (a copy)."""
        return self._counts.copy()

    @property
    def count(self) -> int:
        return int(self._counts.sum())

    def percentile(self, q: float) -> float:
        """The upper edge (µs) of the bucket holding the q-quantile (``q`` in percent): at
        least ``q`` % of the samples are at or below it. NaN when empty."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile was asked for q={q}: it must be in 0..100")
        cum = np.cumsum(self._counts)
        total = int(cum[-1])
        if total == 0:
            return math.nan
        rank = max(1, math.ceil(q / 100.0 * total))
        return float(self._edges[int(np.searchsorted(cum, rank, side="left")) + 1])

    def max_bucket(self) -> tuple[float, float] | None:
        """The edges (µs) of the highest bucket with a count; None when empty."""
        nz = np.flatnonzero(self._counts)
        if not len(nz):
            return None
        i = int(nz[-1])
        return float(self._edges[i]), float(self._edges[i + 1])

    def title(self, name: str) -> str:
        """``NAME  n=1,234  p50 13.5 µs  p99 1.19 ms  max bucket 1.19–1.41 ms``."""
        n = self.count
        if not n:
            return f"{name}  n=0"
        top = self.max_bucket()
        assert top is not None
        lo, hi = top
        span = f">{format_us(lo)}" if math.isinf(hi) else f"{format_us(lo)}–{format_us(hi)}"
        return (f"{name}  n={n:,}  p50 {self._edge_text(self.percentile(50))}"
                f"  p99 {self._edge_text(self.percentile(99))}  max bucket {span}")

    def _edge_text(self, us: float) -> str:
        if math.isinf(us):
            return f">{format_us(float(self._edges[-2]))}"
        return format_us(us)


# -- the panel ------------------------------------------------------------------------------------
_BG = "#15181d"
_BAR = "#3fb5ff"
_STALE = "#6b6f76"
_P50 = "#9aa0a8"
_P99 = "#f0c674"
_DECADES = [(10.0 ** k, lab) for k, lab in enumerate(
    ("1µs", "10µs", "100µs", "1ms", "10ms", "100ms", "1s", "10s"))]


def _bar_heights(counts: np.ndarray) -> np.ndarray:
    """Bars on a log scale: a count ``c`` is ``1 + log10(c)`` high (1 is 1, 10 is 2, …), so one
    slow outlier shows beside a million fast samples; 0 is no bar."""
    c = counts.astype(np.float64)
    out = np.zeros_like(c)
    nz = c > 0
    out[nz] = 1.0 + np.log10(c[nz])
    return out


def _x_of(edges: np.ndarray, us: float) -> float:
    """Where a latency falls on the bucket-index axis (bar ``i`` spans ``i - 0.5 .. i + 0.5``),
    log-interpolated inside its bucket."""
    i = int(np.searchsorted(edges, us, side="right")) - 1
    if i < 0:
        return -0.5
    if i >= len(edges) - 1:
        return len(edges) - 1.5
    lo, hi = float(edges[i]), float(edges[i + 1])
    if lo <= 0 or not math.isfinite(hi):
        frac = 0.0 if us <= lo else 1.0
    else:
        frac = math.log(us / lo) / math.log(hi / lo)
    return i - 0.5 + frac


class _Block:
    """One histogram's title and chart."""

    def __init__(self, name: str, hist: LatencyHistogram) -> None:
        self.name = name
        self.hist = hist
        self.drawn = -1  # the histogram version last drawn
        self.title = QLabel(name)
        self.title.setObjectName("latencyTitle")
        self.title.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.title.setStyleSheet("color: #d7dae0; background: #22262c; padding: 3px 6px;")
        self.plot = pg.PlotWidget(background=_BG)
        self.plot.setMinimumHeight(120)
        self.plot.getPlotItem().hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.showGrid(x=False, y=True, alpha=0.15)
        self.plot.setLabel("left", "count")
        # one left axis width for every histogram, so their buckets line up down the panel
        self.plot.getAxis("left").setWidth(52)
        # "1µs" sits half a bar in: let it overhang the axis' left end rather than vanish
        self.plot.getAxis("bottom").setStyle(hideOverlappingLabels=False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.85, brush=_BAR, pen=pg.mkPen(None))
        self.plot.addItem(self.bars)
        self.p50_line = pg.InfiniteLine(angle=90, movable=False,
                                        pen=pg.mkPen(_P50, width=1, style=Qt.DashLine))
        self.p99_line = pg.InfiniteLine(angle=90, movable=False,
                                        pen=pg.mkPen(_P99, width=1, style=Qt.DashLine))
        for line in (self.p50_line, self.p99_line):
            self.plot.addItem(line, ignoreBounds=True)
            line.hide()
        self.x: np.ndarray = np.zeros(0)
        self.heights: np.ndarray = np.zeros(0)
        self._axes_for: np.ndarray | None = None

    def draw(self, stale: bool) -> None:
        h = self.hist
        self.drawn = h.version
        counts = h.counts
        edges = h.edges_us
        self.x = np.arange(len(counts), dtype=np.float64)
        self.heights = _bar_heights(counts)
        self.bars.setOpts(x=self.x, height=self.heights, brush=_STALE if stale else _BAR)
        self.title.setText(h.title(self.name))
        if self._axes_for is not edges:
            self._set_axes(edges)
        top = float(self.heights.max()) if len(self.heights) else 1.0
        self.plot.setYRange(0, max(top, 1.0) * 1.1, padding=0)
        self.plot.getAxis("left").setTicks([[(1.0 + k, _count_label(10 ** k))
                                             for k in range(int(max(top, 1.0)))]])
        for line, q in ((self.p50_line, 50), (self.p99_line, 99)):
            p = h.percentile(q)
            if math.isnan(p):
                line.hide()
            else:
                # the percentile is the holding bucket's upper edge: the bar's right side
                i = int(np.searchsorted(edges, p, side="left")) - 1
                line.setValue(i + 0.5)
                line.show()

    def _set_axes(self, edges: np.ndarray) -> None:
        self._axes_for = edges
        n = len(edges) - 1
        self.plot.setXRange(-0.5, n - 0.5, padding=0.01)
        ticks = []
        for us, lab in _DECADES:
            if edges[0] <= us and (us < edges[-1]):
                x = _x_of(edges, us)
                if -0.5 < x < n - 0.5 or us == edges[0]:
                    ticks.append((x, lab))
        self.plot.getAxis("bottom").setTicks([ticks])


def _count_label(c: int) -> str:
    return f"{c // 1_000_000}M" if c >= 1_000_000 else f"{c // 1000}k" if c >= 1000 else str(c)


class LatencyPanel(QWidget):
    """Named latency histograms, one titled bar chart each, in the order first named."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._blocks: dict[str, _Block] = {}
        self.stale = False
        self._box = QWidget()
        self._lay = QVBoxLayout(self._box)
        self._lay.setContentsMargins(2, 2, 2, 2)
        self._lay.setSpacing(2)
        self.empty = QLabel("No latencies yet")
        self.empty.setStyleSheet("color: #9aa0a8;")
        self._lay.addWidget(self.empty)
        self._lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(self._box)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.stale_label = stale_label()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.stale_label)
        lay.addWidget(scroll)

    # -- in --------------------------------------------------------------------------------------
    def histogram(self, name: str) -> LatencyHistogram:
        """The histogram ``name`` (made empty, default buckets, if new): fill it and call
        ``redraw``."""
        block = self._blocks.get(name)
        if block is None:
            block = self._add(name, LatencyHistogram())
        return block.hist

    def set_histogram(self, name: str, edges_us: np.ndarray, counts: np.ndarray) -> None:
        """Show counts as published (running totals, drawn as given) over their edges."""
        edges = np.asarray(edges_us, dtype=np.float64)
        block = self._blocks.get(name)
        if block is None or not np.array_equal(block.hist.edges_us, edges):
            hist = LatencyHistogram(edges)
            if block is None:
                block = self._add(name, hist)
            else:
                block.hist = hist
                block.drawn = -1
        block.hist.set_counts(counts)

    def set_stale(self, stale: bool) -> None:
        if stale == self.stale:
            return
        self.stale = stale
        self.stale_label.setVisible(stale)
        for b in self._blocks.values():
            b.drawn = -1
        self.redraw()

    def redraw(self) -> list[str]:
        """Draw the histograms that changed since they were last drawn; returns their names."""
        drawn = []
        for b in self._blocks.values():
            if b.drawn != b.hist.version:
                b.draw(self.stale)
                drawn.append(b.name)
        return drawn

    def _add(self, name: str, hist: LatencyHistogram) -> _Block:
        block = _Block(name, hist)
        self._blocks[name] = block
        at = self._lay.count() - 1  # before the stretch
        self._lay.insertWidget(at, block.title)
        self._lay.insertWidget(at + 1, block.plot, 1)
        self.empty.hide()
        return block

    # -- what is drawn (tests read this) ---------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._blocks)

    def title(self, name: str) -> str:
        return self._blocks[name].title.text()

    def bars(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The bars drawn: x (bucket index) and height (``1 + log10(count)``, 0 for none)."""
        b = self._blocks[name]
        return b.x, b.heights

    def percentile_lines(self, name: str) -> tuple[float | None, float | None]:
        """Where the p50 and p99 marks are drawn (bucket-index x), None when hidden."""
        b = self._blocks[name]
        return tuple(float(ln.value()) if ln.isVisible() else None
                     for ln in (b.p50_line, b.p99_line))
