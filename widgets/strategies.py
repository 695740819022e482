"""The strategies the engine runs: state, key figures, signals; pause, resume, stop.

Fed with the engine's STRATEGY_ROW and SIGNAL_ROW records (numpy; this module copies the few
field meanings it needs). The top table has one row per strategy (name, kind, state, its key
figures); the lower one the selected strategy's most interesting rows (a pairs strategy's
pairs with the largest |z|) under the column names the strategy gives. A trader pauses,
resumes or stops the selected strategy: ``action_requested(scope_id, action, name)`` with
action "pause", "resume" or "stop" (a stop is confirmed first). Rows are updated in place;
nothing here sends anything.

Under the signals table a chart (pyqtgraph) shows one signal row through time: its spread
(the column named "spread", else the second) over its z-score (the column "z", else the
first), with dashed lines at plus and minus the strategy's ``entry_z`` and ``exit_z`` key
figures when it publishes them. It charts the top-ranked row and follows whichever row is
on top, until the trader clicks a row: then that row, by label, until another strategy is
selected.

The engine keeps no history, so the panel does: each ``set_rows`` adds a point to every
signal row present (key: strategy, label) at its strategy row's ``ts_ns``, the engine's
clock; a snapshot whose ``ts_ns`` did not move adds nothing, and one that went back (a new
run, a replay rewound) starts that row's history again. A row that was missing from its
strategy's previous points gets a NaN point first, so its line breaks over the gap instead
of drawing a straight line through it. Each row's history is a preallocated ring (4,096
points: 17 minutes at the desk's 4 Hz); at most 64 rows are kept and the one seen least
recently is dropped for a new one (never the charted row, never one of the snapshot being
recorded), so a strategy with hundreds of pairs costs a bounded 64 rings. The chart is
redrawn only when its row got a point, from a scratch copy in time order, with
``clipToView`` and ``autoDownsample``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from widgets.stale import stale_label

__all__ = ["StrategyPanel", "STATE_NAMES"]

#: STRATEGY_ROW state -> what the desk shows
STATE_NAMES = {0: "RUNNING", 1: "PAUSED", 2: "HALTED (risk)", 3: "STOPPED"}
_STATE_COLOURS = {0: QColor("#3fb950"), 1: QColor("#e0a030"), 2: QColor("#f85149"),
                  3: QColor("#7d8590")}
COLUMNS = ("Strategy", "Kind", "State", "Key figures")

#: points a signal row's history holds (4,096 at the desk's 4 Hz: about 17 minutes)
HISTORY_POINTS = 4096
#: signal rows whose history is kept; the least recently seen goes first
HISTORY_KEYS = 64

_BG = "#15181d"
_TEXT = "#d7dae0"
_TOP_COLOUR = "#3fb5ff"
_Z_COLOUR = "#f0c674"
_ENTRY = "#ff9e64"
_EXIT = "#8fe3ab"
_ZERO = "#4a4f57"
_STALE = "#6b6f76"


# -- HISTORY ---------------------------------------------------------------------------------------
class _Ring:
    """One signal row's points: times (s) and its four values, oldest overwritten when full."""

    __slots__ = ("t", "v", "n", "head", "written", "seen", "recorded")

    def __init__(self, cap: int) -> None:
        self.t = np.empty(cap)
        self.v = np.empty((4, cap))  # a column's points are contiguous: cheap to copy out
        self.written = 0  #: points ever written to this ring (the chart redraws when it moves)
        self.reset()

    def reset(self) -> None:
        self.n = 0  #: points held
        self.head = 0  #: where the next one goes
        self.seen = -1  #: the last set_rows call that had this row
        self.recorded = -1  #: the last set_rows call that added a point to it

    def last_t(self) -> float:
        return float(self.t[self.head - 1]) if self.n else -math.inf

    def put(self, t: float, values) -> None:
        i = self.head
        self.t[i] = t
        self.v[:, i] = values
        cap = len(self.t)
        self.head = (i + 1) % cap
        self.n = min(self.n + 1, cap)
        self.written += 1

    def copy_out(self, t_out: np.ndarray, v_out: dict[int, np.ndarray]) -> int:
        """Copy the points in time order into ``t_out`` and ``v_out[column]``; their number."""
        n, cap = self.n, len(self.t)
        start = (self.head - n) % cap
        first = min(n, cap - start)
        rest = n - first
        t_out[:first] = self.t[start:start + first]
        t_out[first:n] = self.t[:rest]
        for c, out in v_out.items():
            out[:first] = self.v[c, start:start + first]
            out[first:n] = self.v[c, :rest]
        return n


class _History:
    """Rings by key, at most ``max_keys`` of them, made once and reused when a key is dropped."""

    def __init__(self, capacity: int, max_keys: int) -> None:
        self.capacity = max(2, int(capacity))
        self.max_keys = max(1, int(max_keys))
        self.rings: OrderedDict[tuple[int, str], _Ring] = OrderedDict()  # least recently seen first
        self._spare: list[_Ring] = []
        self.dropped_keys = 0  #: keys dropped to make room
        self.refused_keys = 0  #: keys not kept: every kept one was in the same snapshot

    def see(self, key: tuple[int, str], call: int, keep) -> _Ring | None:
        """The key's ring, marked seen in ``call``; a new one, room made, if it had none."""
        ring = self.rings.get(key)
        if ring is None:
            if len(self.rings) >= self.max_keys and not self._drop(call, keep):
                self.refused_keys += 1
                return None
            ring = self._spare.pop() if self._spare else _Ring(self.capacity)
            ring.reset()
            self.rings[key] = ring
        else:
            self.rings.move_to_end(key)
        ring.seen = call
        return ring

    def _drop(self, call: int, keep) -> bool:
        for key, ring in self.rings.items():  # least recently seen first
            if ring.seen == call:
                return False  # the rest were seen in this call too
            if key != keep:
                self._spare.append(self.rings.pop(key))
                self.dropped_keys += 1
                return True
        return False


# -- CHART -----------------------------------------------------------------------------------------
def _chart_columns(cols: tuple[str, ...]) -> tuple[int | None, int | None]:
    """(upper plot's column, lower plot's column): spread over z, by name or by place."""
    used = [j for j, c in enumerate(cols) if c]
    z = cols.index("z") if "z" in cols else None
    if "spread" in cols:
        top = cols.index("spread")
    elif 1 in used and 1 != z:
        top = 1
    else:
        top = next((j for j in used if j != z), None)
    bottom = z if z is not None else next((j for j in used if j != top), None)
    if top is None:
        top, bottom = bottom, None
    return top, bottom


class _SignalChart(QWidget):
    """Two plots on one time axis: a signal row's spread over its z-score."""

    def __init__(self, capacity: int, parent=None) -> None:
        super().__init__(parent)
        self.stale = False
        self.title = QLabel("")
        self.title.setObjectName("signalChartTitle")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.Monospace)
        self.title.setFont(mono)
        self.title.setStyleSheet(f"color: {_TEXT}; background: {_BG}; padding: 3px 6px;")
        # what the dashed lines are, beside the title: a label on a line would hide the curve
        self.key_label = QLabel("")
        self.key_label.setObjectName("signalChartLevels")
        self.key_label.setFont(mono)
        self.key_label.setTextFormat(Qt.RichText)
        self.key_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.key_label.setStyleSheet(f"color: {_TEXT}; background: {_BG}; padding: 3px 6px;")
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(_BG)
        self.view.ci.setContentsMargins(2, 2, 6, 2)
        self.view.ci.setSpacing(0)
        self.plots = []
        for row in range(2):
            plot = self.view.addPlot(row=row, col=0,
                                     axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=True, y=False)  # zoom into part of the span; "A" undoes it
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.getAxis("left").setWidth(54)  # both plots' left edges in line
            self.plots.append(plot)
        self.plots[0].setXLink(self.plots[1])
        self.plots[0].getAxis("bottom").setStyle(showValues=False)
        self.plots[0].getAxis("bottom").setHeight(6)
        self.view.ci.layout.setRowStretchFactor(0, 1)
        self.view.ci.layout.setRowStretchFactor(1, 1)
        self.curves = []
        for plot in self.plots:
            curve = pg.PlotDataItem(connect="finite")
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
            plot.addItem(curve)
            self.curves.append(curve)
        self.zero = pg.InfiniteLine(pos=0.0, angle=0, movable=False, pen=pg.mkPen(_ZERO))
        self.plots[1].addItem(self.zero, ignoreBounds=True)
        # +entry, -entry, +exit, -exit; in the bounds: the range reaches the entry level
        self.levels = [pg.InfiniteLine(angle=0, movable=False) for _ in range(4)]
        for line in self.levels:
            line.hide()
            self.plots[1].addItem(line)
        self._restyle()
        self.names: tuple[str, str] = ("", "")
        self.columns: tuple[int | None, int | None] = (None, None)
        self.level_values: list[float] = []
        self._levels: tuple[float, float] | None = None
        self._t = np.empty(capacity)
        self._v = {0: np.empty(capacity), 1: np.empty(capacity)}  # scratch, reused

        self.stale_label = stale_label(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.setSpacing(0)
        top.addWidget(self.title, 1)
        top.addWidget(self.key_label)
        lay.addLayout(top)
        lay.addWidget(self.view, 1)

    def draw(self, ring: _Ring | None, columns: tuple[int | None, int | None],
             names: tuple[str, str], levels: tuple[float, float] | None) -> None:
        """Give the curves the ring's points (time order) for the two columns."""
        self.names = names
        for j, (plot, curve, c) in enumerate(zip(self.plots, self.curves, columns)):
            plot.setLabel("left", names[j] if c is not None else "", color=_TEXT)
            if c is None or ring is None:
                curve.setData(np.zeros(0), np.zeros(0))
                continue
            n = ring.copy_out(self._t, {c: self._v[j]})
            curve.setData(self._t[:n], self._v[j][:n])
        self.columns = columns
        self.zero.setVisible(columns[1] is not None and names[1] == "z")
        values = []
        if levels is not None and columns[1] is not None:
            entry, exit_ = levels
            values = [entry, -entry, exit_, -exit_]
        self.level_values = []
        for k, line in enumerate(self.levels):
            if k < len(values) and math.isfinite(values[k]):
                line.setValue(values[k])
                line.show()
                self.level_values.append(values[k])
            else:
                line.hide()
        self._show_key(levels if self.level_values else None)

    def _show_key(self, levels: tuple[float, float] | None) -> None:
        parts = []
        if levels is not None:
            for name, v, colour in (("entry", levels[0], _ENTRY), ("exit", levels[1], _EXIT)):
                if math.isfinite(v):
                    colour = _STALE if self.stale else colour
                    parts.append(f'<span style="color:{colour}">╌ {name} ±{abs(v):g}</span>')
        self.key_label.setText("&nbsp;&nbsp;".join(parts))
        self._levels = levels

    def set_stale(self, stale: bool) -> None:
        self.stale = stale
        self._restyle()
        self._show_key(self._levels)
        self.stale_label.setVisible(stale)
        self._place_label()

    def _restyle(self) -> None:
        grey = self.stale
        self.curves[0].setPen(pg.mkPen(_STALE if grey else _TOP_COLOUR, width=1))
        self.curves[1].setPen(pg.mkPen(_STALE if grey else _Z_COLOUR, width=1))
        for k, line in enumerate(self.levels):
            colour = _STALE if grey else (_ENTRY if k < 2 else _EXIT)
            line.setPen(pg.mkPen(colour, width=1, style=Qt.DashLine))

    def _place_label(self) -> None:
        self.stale_label.raise_()
        self.stale_label.adjustSize()
        self.stale_label.move((self.width() - self.stale_label.width()) // 2,
                              self.title.height() + 6)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_label()

    def series(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for name, c, curve in zip(self.names, self.columns, self.curves):
            if c is None:
                continue
            x, y = curve.getOriginalDataset()
            out[name] = (np.zeros(0), np.zeros(0)) if x is None else (np.array(x), np.array(y))
        return out


class StrategyPanel(QWidget):
    action_requested = Signal(int, str, str)  # strategy scope id, action, name

    def __init__(self, parent=None, *, history_points: int = HISTORY_POINTS,
                 history_keys: int = HISTORY_KEYS) -> None:
        super().__init__(parent)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.Monospace)
        self.summary = QLabel("this engine runs no strategies")
        self.summary.setObjectName("strategySummary")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setSelectionMode(QTableWidget.SingleSelection)
        h = self.table.horizontalHeader()
        h.setSectionResizeMode(QHeaderView.ResizeToContents)
        h.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection)
        self.signals = QTableWidget(0, 5)
        self.signals.verticalHeader().hide()
        self.signals.setEditTriggers(QTableWidget.NoEditTriggers)
        self.signals.setFont(mono)
        self.signals.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.signals.setSelectionBehavior(QTableWidget.SelectRows)
        self.signals.setSelectionMode(QTableWidget.SingleSelection)
        self.signals.itemSelectionChanged.connect(self._signal_picked)
        self._history = _History(history_points, history_keys)
        self.chart = _SignalChart(self._history.capacity)
        self.chart.setMinimumHeight(120)
        self.chart.hide()
        self.signals_label = QLabel("")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop…")
        self.pause_button.clicked.connect(lambda: self._act("pause"))
        self.resume_button.clicked.connect(lambda: self._act("resume"))
        self.stop_button.clicked.connect(lambda: self._act("stop"))
        buttons = QHBoxLayout()
        for b in (self.pause_button, self.resume_button, self.stop_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.summary)
        lay.addWidget(self.table)
        lay.addLayout(buttons)
        lay.addWidget(self.signals_label)
        split = QSplitter(Qt.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(self.signals)
        split.addWidget(self.chart)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([200, 300])
        self.signals.setMinimumHeight(72)
        lay.addWidget(split, 1)
        self._rows: list[tuple] = []  # (scope id, name, kind, state, figures)
        self._signals: dict[int, list[tuple]] = {}
        self._cols: dict[int, tuple[str, ...]] = {}
        self._shown_signals: tuple | None = None
        self._call = 0  #: set_rows calls so far (the history's "seen" clock)
        self._recorded: dict[int, int] = {}  #: strategy -> the last call that added its points
        self._pinned: tuple[int, str] | None = None  #: the row the trader clicked
        self._chart_key: tuple[int, str] | None = None
        self._drawn: tuple | None = None
        self._syncing = False  #: the panel, not the trader, is moving the signals selection
        self._may = False
        self._why_not = "only a trader pauses, resumes or stops a strategy"
        self.confirm_stop = True  #: ask before a stop (tests turn it off)
        self._fit_table()
        self._selection()

    # -- inputs ----------------------------------------------------------------------------------
    def set_rows(self, rows: np.ndarray, signals: np.ndarray | None = None) -> None:
        """STRATEGY_ROW records (and SIGNAL_ROW records): cells change in place."""
        items = []
        cols = {}
        for k, r in enumerate(rows):
            n = int(r["n_figures"])
            figures = tuple((_text(r["fig_names"][j]), float(r["fig_values"][j]))
                            for j in range(n))
            items.append((int(r["index"]), _text(r["name"]), _text(r["kind"]), int(r["state"]),
                          figures))
            cols[k] = tuple(_text(c) for c in r["sig_cols"])
        self._cols = cols
        if signals is not None:
            by: dict[int, list[tuple]] = {}
            for s in signals:
                by.setdefault(int(s["strategy"]), []).append(
                    (int(s["rank"]), _text(s["label"]), tuple(float(v) for v in s["values"])))
            self._signals = {k: sorted(v) for k, v in by.items()}
            self._record(rows, signals)
        if items != self._rows:
            selected = self.selected()
            if len(items) != self.table.rowCount():
                self.table.setRowCount(len(items))
                self._fit_table()
            for k, (sid, name, kind, state, figures) in enumerate(items):
                text = "   ".join(f"{fn} {_fmt(fv)}" for fn, fv in figures)
                for c, value in enumerate((name, kind, STATE_NAMES.get(state, "?"), text)):
                    item = self.table.item(k, c)
                    if item is None:
                        item = QTableWidgetItem()
                        self.table.setItem(k, c, item)
                    if item.text() != value:
                        item.setText(value)
                    if c == 2:
                        item.setForeground(_STATE_COLOURS.get(state, QColor("#c9d1d9")))
            self._rows = items
            if selected is None and items:
                self.table.selectRow(0)
            running = sum(1 for x in items if x[3] == 0)
            self.summary.setText(f"{len(items)} strateg{'ies' if len(items) != 1 else 'y'}, "
                                 f"{running} running" if items else
                                 "this engine runs no strategies")
            self._selection()
        self._show_signals()

    def set_stale(self, stale: bool) -> None:
        """Grey the chart and show "STALE" over it (the engine's snapshot is not current)."""
        if stale != self.chart.stale:
            self.chart.set_stale(stale)

    def follow_top(self) -> None:
        """Chart the top-ranked signal row again, whichever it is (undoes a click)."""
        self._pinned = None
        self._sync_chart()

    def set_role(self, role: str) -> None:
        """Traders act on strategies; anyone else sees why the buttons are disabled."""
        self._may = role in ("trader", "trader,risk_manager")
        self._selection()

    # -- reading ---------------------------------------------------------------------------------
    def selected(self) -> int | None:
        """The selected strategy's row index, or None."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._rows):
            return None
        return rows[0].row()

    def row_texts(self, name: str) -> tuple[str, ...] | None:
        for k, row in enumerate(self._rows):
            if row[1] == name:
                return tuple(self.table.item(k, c).text() for c in range(len(COLUMNS)))
        return None

    def chart_key(self) -> tuple[int, str] | None:
        """The charted signal row: (its SIGNAL_ROW ``strategy``, its label), or None."""
        return self._chart_key

    def chart_series(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What the chart was last given, by column name: (times in s, values), before
        clipping and downsampling to the view; the upper plot's first."""
        return self.chart.series()

    def chart_levels(self) -> list[float]:
        """Where the z plot's entry and exit lines are drawn (+entry, -entry, +exit, -exit)."""
        return list(self.chart.level_values)

    def chart_title(self) -> str:
        return self.chart.title.text()

    def history(self, key: tuple[int, str]) -> tuple[np.ndarray, np.ndarray] | None:
        """A signal row's kept points, oldest first: times (s, the engine's clock) and the
        four values, shape (n, 4); a NaN row marks where the row was out of the top rows.
        None when it is not kept."""
        ring = self._history.rings.get(key)
        if ring is None:
            return None
        t = np.empty(ring.n)
        cols = {c: np.empty(ring.n) for c in range(4)}
        ring.copy_out(t, cols)
        return t, np.column_stack([cols[c] for c in range(4)])

    def history_keys(self) -> list[tuple[int, str]]:
        """The keys kept, least recently seen first."""
        return list(self._history.rings)

    def signal_texts(self) -> list[tuple[str, ...]]:
        """The signals table as shown (label first)."""
        return [tuple(self.signals.item(k, c).text() for c in range(self.signals.columnCount()))
                for k in range(self.signals.rowCount())]

    # -- history ---------------------------------------------------------------------------------
    def _record(self, rows: np.ndarray, signals: np.ndarray) -> None:
        """A point per signal row whose strategy's clock moved since it last had one."""
        self._call += 1
        call = self._call
        nan = np.full(4, np.nan)
        added = set()
        for s in signals:
            k = int(s["strategy"])
            if not 0 <= k < len(rows):
                continue
            ts_ns = int(rows[k]["ts_ns"])
            if ts_ns <= 0:
                continue  # no clock yet
            ring = self._history.see((k, _text(s["label"])), call, self._chart_key)
            if ring is None:
                continue
            t = ts_ns / 1e9
            last = ring.last_t()
            if t == last:
                continue
            if t < last:  # the clock went back: a new run or a replay rewound
                ring.reset()
                ring.seen = call
            elif ring.n and ring.recorded != self._recorded.get(k):
                ring.put(t, nan)  # it was out of the top rows: break the line
            ring.put(t, s["values"])
            ring.recorded = call
            added.add(k)
        for k in added:
            self._recorded[k] = call

    # -- drawing ---------------------------------------------------------------------------------
    def _show_signals(self) -> None:
        self._syncing = True
        try:
            self._fill_signals()
        finally:
            self._syncing = False
        self._sync_chart()

    def _fill_signals(self) -> None:
        k = self.selected()
        rows = self._signals.get(k, []) if k is not None else []
        cols = self._cols.get(k, ("", "", "", "")) if k is not None else ("", "", "", "")
        used = [j for j, c in enumerate(cols) if c]
        key = (k, tuple(rows), cols)
        if key == self._shown_signals:
            return
        self._shown_signals = key
        self.signals_label.setText(f"{self._rows[k][1]}: its {len(rows)} most active rows"
                                   if k is not None and rows else "")
        headers = ["Label"] + [cols[j] for j in used]
        if self.signals.columnCount() != len(headers):
            self.signals.setColumnCount(len(headers))
        self.signals.setHorizontalHeaderLabels(headers)
        if self.signals.rowCount() != len(rows):
            self.signals.setRowCount(len(rows))
        for r, (_, label, values) in enumerate(rows):
            cells = [label] + [_fmt(values[j]) for j in used]
            for c, value in enumerate(cells):
                item = self.signals.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    if c:
                        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                    self.signals.setItem(r, c, item)
                if item.text() != value:
                    item.setText(value)

    def _fit_table(self) -> None:
        """As tall as its rows (2 to 6 of them): the room below is the signals' and chart's."""
        shown = min(max(self.table.rowCount(), 2), 6)
        rows = shown * max(self.table.verticalHeader().defaultSectionSize(), 1)
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + rows
                                  + 2 * self.table.frameWidth())

    def _signal_picked(self) -> None:
        if self._syncing:
            return
        k = self.selected()
        picked = self.signals.selectionModel().selectedRows()
        rows = self._signals.get(k, []) if k is not None else []
        if picked and picked[0].row() < len(rows):
            self._pinned = (k, rows[picked[0].row()][1])
            self._sync_chart()

    def _sync_chart(self) -> None:
        k = self.selected()
        rows = self._signals.get(k, []) if k is not None else []
        cols = self._cols.get(k, ("", "", "", "")) if k is not None else ("", "", "", "")
        labels = [r[1] for r in rows]
        if self._pinned is not None and (self._pinned[0] != k
                                         or self._pinned not in self._history.rings):
            self._pinned = None
        key = self._pinned or ((k, labels[0]) if labels else None)
        self._chart_key = key
        row = labels.index(key[1]) if key is not None and key[1] in labels else None
        self._syncing = True
        try:
            picked = self.signals.selectionModel().selectedRows()
            if row is None:
                self.signals.clearSelection()
            elif not picked or picked[0].row() != row:
                self.signals.selectRow(row)
        finally:
            self._syncing = False
        self.chart.setVisible(any(cols))
        columns = _chart_columns(cols)
        names = tuple(cols[c] if c is not None else "" for c in columns)
        figures = dict(self._rows[k][4]) if k is not None else {}
        entry, exit_ = figures.get("entry_z", math.nan), figures.get("exit_z", math.nan)
        levels = None if entry != entry and exit_ != exit_ else (entry, exit_)
        ring = self._history.rings.get(key) if key is not None else None
        stamp = (key, id(ring), ring.written if ring is not None else -1, columns, names, levels,
                 row is None)
        if stamp == self._drawn:
            return  # no new point for the charted row: nothing to draw
        self._drawn = stamp
        self.chart.draw(ring, columns, names, levels)
        self.chart.title.setText(_title(key, ring, columns, names, row is None))

    def _selection(self) -> None:
        k = self.selected()
        state = self._rows[k][3] if k is not None else None
        for b, ok, why in (
                (self.pause_button, state in (0, 2), "only a running strategy can be paused"),
                (self.resume_button, state == 1,
                 "a strategy a HALTED kill switch paused resumes when the switch is re-armed"
                 if state == 2 else "only a paused strategy can be resumed"),
                (self.stop_button, state is not None and state != 3,
                 "a stopped strategy starts again only when the engine restarts")):
            b.setEnabled(self._may and ok)
            b.setToolTip(self._why_not if not self._may else "" if ok else
                         ("select a strategy" if state is None else why))
        self._shown_signals = None
        self._show_signals()

    def _act(self, action: str) -> None:
        k = self.selected()
        if k is None:
            return
        sid, name = self._rows[k][0], self._rows[k][1]
        if action == "stop" and self.confirm_stop:
            answer = QMessageBox.question(
                self, f"Stop {name}",
                f"Stop strategy {name}? Its working orders are cancelled and it stays stopped "
                f"until the engine restarts.")
            if answer != QMessageBox.Yes:
                return
        self.action_requested.emit(sid, action, name)


def _title(key, ring: _Ring | None, columns, names, absent: bool) -> str:
    """ "NQZ6/ESZ6  z 2.13  spread 4.25": the row, its z, then its spread, as last seen."""
    if key is None:
        return "no signal rows yet"
    parts = [key[1]]
    if ring is not None and ring.n:
        i = (ring.head - 1) % len(ring.t)
        for c, name in sorted(zip(columns, names), key=lambda cn: cn[1] != "z"):
            if c is not None:
                v = float(ring.v[c, i])
                parts.append(f"{name} {v:.2f}" if name == "z" and v == v else
                             f"{name} {_fmt(v)}")
    if absent:
        parts.append("(out of the top rows)")
    return "  ".join(parts)


def _fmt(v: float) -> str:
    if v != v:
        return "—"
    if v == int(v) and abs(v) < 1e9:
        return f"{int(v):,d}"
    return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.2f}"


def _text(raw: bytes) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")
