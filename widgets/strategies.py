"""The strategies the engine runs: state, key figures, signals; pause, resume, stop.

Fed with the engine's STRATEGY_ROW and SIGNAL_ROW records (numpy; this module copies the few
field meanings it needs). The top table has one row per strategy (name, kind, state, its key
figures); the lower one the selected strategy's most interesting rows (a pairs strategy's
pairs with the largest |z|) under the column names the strategy gives. A trader pauses,
resumes or stops the selected strategy: ``action_requested(scope_id, action, name)`` with
action "pause", "resume" or "stop" (a stop is confirmed first). Rows are updated in place;
nothing here sends anything.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["StrategyPanel", "STATE_NAMES"]

#: STRATEGY_ROW state -> what the desk shows
STATE_NAMES = {0: "RUNNING", 1: "PAUSED", 2: "HALTED (risk)", 3: "STOPPED"}
_STATE_COLOURS = {0: QColor("#3fb950"), 1: QColor("#e0a030"), 2: QColor("#f85149"),
                  3: QColor("#7d8590")}
COLUMNS = ("Strategy", "Kind", "State", "Key figures")


class StrategyPanel(QWidget):
    action_requested = Signal(int, str, str)  # strategy scope id, action, name

    def __init__(self, parent=None) -> None:
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
        lay.addWidget(self.table, 2)
        lay.addLayout(buttons)
        lay.addWidget(self.signals_label)
        lay.addWidget(self.signals, 3)
        self._rows: list[tuple] = []  # (scope id, name, kind, state, figures)
        self._signals: dict[int, list[tuple]] = {}
        self._cols: dict[int, tuple[str, ...]] = {}
        self._shown_signals: tuple | None = None
        self._may = False
        self._why_not = "only a trader pauses, resumes or stops a strategy"
        self.confirm_stop = True  #: ask before a stop (tests turn it off)
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
        if items != self._rows:
            selected = self.selected()
            if len(items) != self.table.rowCount():
                self.table.setRowCount(len(items))
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

    def signal_texts(self) -> list[tuple[str, ...]]:
        """The signals table as shown (label first)."""
        return [tuple(self.signals.item(k, c).text() for c in range(self.signals.columnCount()))
                for k in range(self.signals.rowCount())]

    # -- drawing ---------------------------------------------------------------------------------
    def _show_signals(self) -> None:
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


def _fmt(v: float) -> str:
    if v != v:
        return "—"
    if v == int(v) and abs(v) < 1e9:
        return f"{int(v):,d}"
    return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.2f}"


def _text(raw: bytes) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")
