"""The kill switch panel: a big KILL button, the engine's state, every scope's switch, re-arm.

The panel shows what it is told: the states come from the engine's snapshot (``set_rows``: the
KILL_ROW table, row 0 the global switch, then each instrument, strategy, venue, account and
trader), "pending" from the caller while a command waits for its ack (``set_pending``, for
the big buttons or for one row by its name). Clicks are signals; nothing here sends anything:

- ``kill_clicked()``: the big KILL button;
- ``rearm_requested(reason)``: the big Re-arm… button;
- ``trip_requested(scope, scope_id, state, name)``: a row's Reduce or Halt button, one click
  (tripping is the safe direction: it never asks);
- ``rearm_scope_requested(scope, scope_id, name, reason, confirmation)``: a row's Re-arm…,
  after a dialog that asks why and has the user type the row's name ("strategy:pairs").

``set_role`` disables what the role may not do, with a tooltip that says why: a viewer sends
nothing, a trader trips but never re-arms, a risk manager does both. The engine checks again;
the panel only spares the user a refused round trip.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "ACTIVE",
    "HALTED",
    "REDUCING",
    "ROLES",
    "SCOPE_NAMES",
    "STATE_NAMES",
    "KillSwitchPanel",
    "RearmDialog",
]

# Copies of engine.core.records' codes: widgets import no engine (tests/app/test_risk_widgets.py
# checks that they agree).
ACTIVE, REDUCING, HALTED = 0, 1, 2  #: KillState values
STATE_NAMES = {ACTIVE: "ACTIVE", REDUCING: "REDUCING", HALTED: "HALTED"}
SCOPE_GLOBAL = 0
#: Scope value -> how it is written ("strategy:pairs")
SCOPE_NAMES = ("global", "instrument", "strategy", "venue", "account", "trader")
ROLES = ("viewer", "trader", "risk_manager")

# the buttons next to the state, so a narrow dock still shows them
COLUMNS = ("Switch", "State", "", "Auto", "By", "When", "Cooling-off", "Reason")
NAME, STATE, ACTIONS, AUTO, USER, WHEN, COOL, REASON = range(len(COLUMNS))
_CELLS = (NAME, STATE, AUTO, USER, WHEN, COOL, REASON)  #: the text columns, in a row's cells
_STATE_FG = {ACTIVE: QColor("#8fe3ab"), REDUCING: QColor("#f0c674"), HALTED: QColor("#ff6b6b")}
_UNKNOWN_FG = QColor("#7d838b")


def _text(b: bytes) -> str:
    return b.decode(errors="replace").rstrip("\x00")


def _clock(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9).strftime("%H:%M:%S") if ts_ns else ""


def _duration(ns: int) -> str:
    s = max(1, round(ns / 1e9))
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass(slots=True)
class _Row:
    """One switch as shown, with its row's buttons."""

    scope: int = 0
    scope_id: int = 0
    name: str = ""
    state: int = ACTIVE
    cooling_until: int = 0  #: ns; 0 or past: may be re-armed
    cells: tuple[str, ...] = ()  #: the engine's figures as text
    reduce: QToolButton | None = None
    halt: QToolButton | None = None
    rearm: QToolButton | None = None
    waiting: QLabel | None = None  #: in the buttons' place while a command of the row waits
    buttons: QWidget | None = field(default=None, repr=False)


class RearmDialog(QDialog):
    """Asks why it is safe to re-arm a switch, and for the switch's name typed out: OK stays
    disabled until there is a reason and the name matches exactly."""

    def __init__(self, name: str, state: str, parent=None) -> None:
        super().__init__(parent)
        self.name = name
        self.setWindowTitle(f"Re-arm {name}")
        self.setObjectName("rearmDialog")
        intro = QLabel(f"{name} is {state}. Re-arming lets orders in this scope pass again.")
        intro.setWordWrap(True)
        self.reason = QLineEdit()
        self.reason.setObjectName("rearmReason")
        self.reason.setPlaceholderText("kept in the audit log")
        self.confirm = QLineEdit()
        self.confirm.setObjectName("rearmConfirm")
        self.confirm.setPlaceholderText(name)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.Ok)
        self.ok_button.setText("Re-arm")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(QLabel("Why is it safe to trade again?"))
        lay.addWidget(self.reason)
        lay.addWidget(QLabel(f"Type <b>{name}</b> to confirm:"))
        lay.addWidget(self.confirm)
        lay.addWidget(self.buttons)
        self.reason.textChanged.connect(self._check)
        self.confirm.textChanged.connect(self._check)
        self.setMinimumWidth(420)
        self._check()

    def _check(self) -> None:
        why = ""
        if not self.reason.text().strip():
            why = "say why it is safe to trade again"
        elif self.confirm.text() != self.name:
            why = f"type {self.name} exactly to confirm"
        self.ok_button.setEnabled(not why)
        self.ok_button.setToolTip(why or f"Re-arm {self.name}")


class KillSwitchPanel(QWidget):
    kill_clicked = Signal()
    rearm_requested = Signal(str)  # reason
    pending_changed = Signal(bool, str)  # what set_pending showed: pending?, text
    trip_requested = Signal(int, int, int, str)  # scope, scope_id, state, name
    rearm_scope_requested = Signal(int, int, str, str, str)  # scope, scope_id, name, reason, typed

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.kill_button = QPushButton("KILL")
        self.kill_button.setObjectName("killButton")
        self.kill_button.setMinimumHeight(56)
        self.kill_button.clicked.connect(self.kill_clicked)
        self.state_label = QLabel("—")
        self.state_label.setObjectName("killState")
        self.state_label.setAlignment(Qt.AlignCenter)
        self.state_label.setWordWrap(True)
        self.pending_label = QLabel("")
        self.pending_label.setObjectName("killPending")
        self.pending_label.setAlignment(Qt.AlignCenter)
        self.pending_label.setWordWrap(True)
        self.rearm_button = QPushButton("Re-arm…")
        self.rearm_button.setObjectName("rearmButton")
        self.rearm_button.clicked.connect(self._ask_rearm)
        # the instrument switches as (symbol, tripped): shown once set_instruments is called
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Instrument", "Switch"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.hide()
        # every switch of the engine's KILL_ROW table, with its own buttons
        self.scope_table = QTableWidget(0, len(COLUMNS))
        self.scope_table.setObjectName("killScopes")
        self.scope_table.setHorizontalHeaderLabels(list(COLUMNS))
        self.scope_table.verticalHeader().hide()
        self.scope_table.verticalHeader().setDefaultSectionSize(30)
        head = self.scope_table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeToContents)
        head.setSectionResizeMode(REASON, QHeaderView.Stretch)
        head.setMinimumSectionSize(40)
        head.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self.scope_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.scope_table.setSelectionMode(QTableWidget.NoSelection)
        self.scope_table.setFocusPolicy(Qt.NoFocus)
        self.scope_table.setShowGrid(False)
        self.scope_table.setWordWrap(False)
        self.scope_table.setTextElideMode(Qt.ElideRight)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.kill_button)
        lay.addWidget(self.state_label)
        lay.addWidget(self.pending_label)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.rearm_button)
        lay.addLayout(row)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.scope_table, 2)
        self.tripped: bool | None = None
        self.pending = False
        self.can_rearm = False
        self.stale = True
        self.role: str | None = None  #: None: not known yet (the engine alone decides)
        self.rearm_dialog: RearmDialog | None = None
        self._rows: list[_Row] = []
        self._row_of: dict[str, _Row] = {}
        self._pending_rows: dict[str, str] = {}  # name -> what is awaited
        self._now_ns = 0
        self._headline_state = "killed"  # the label's style while tripped: killed or reducing
        self._bold = QFont(self.font())
        self._bold.setBold(True)
        self._refresh()

    # -- inputs ------------------------------------------------------------------------------------
    def set_state(self, tripped: bool, user: str = "", reason: str = "", when: str = "") -> None:
        """The global switch, as a headline: tripped (any state but ACTIVE) or armed."""
        self._headline("KILLED" if tripped else "", user, reason, when)

    def set_instruments(self, rows: list[tuple[str, bool]]) -> None:
        """(symbol, tripped) for each instrument switch."""
        self.table.show()
        if self.table.rowCount() != len(rows):
            self.table.setRowCount(len(rows))
        for r, (sym, tripped) in enumerate(rows):
            for c, text in enumerate((sym, "KILLED" if tripped else "armed")):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)
                    if c == 1:
                        item.setForeground(Qt.red if tripped else Qt.gray)

    def set_rows(self, rows: np.ndarray, now_ns: int | None = None) -> None:
        """The engine's kill switches: an array of KILL_ROW records. Known rows change in
        place; the table grows or shrinks only when the engine's table does. The global row
        (scope 0) also sets the headline. ``now_ns``: the wall clock, for the cooling-off
        countdown (default: now)."""
        self._now_ns = now_ns if now_ns is not None else time.time_ns()
        n = len(rows)
        if n != len(self._rows):
            self._resize(n)
        for r in range(n):
            self._set_row(r, rows[r])
        self._row_of = {row.name: row for row in self._rows}
        for r, row in enumerate(self._rows):
            if row.scope == SCOPE_GLOBAL:
                g = rows[r]
                word = {ACTIVE: "", REDUCING: "REDUCING", HALTED: "KILLED"}.get(row.state, "KILLED")
                self._headline(word, _text(g["user"]), _text(g["reason"]),
                               _clock(int(g["ts_ns"])), refresh=False)
                break
        self._refresh()

    def set_pending(self, pending: bool, text: str = "", name: str | None = None) -> None:
        """Show that a command waits for its ack (``pending``), or its outcome (``text``).
        ``name`` None: the big buttons' command; else the row of that switch ("strategy:pairs"),
        whose buttons stay disabled until the caller clears it."""
        if name is None:
            self.pending = pending
        elif pending:
            self._pending_rows[name] = text
        else:
            self._pending_rows.pop(name, None)
        self.pending_label.setText(text)
        self._refresh()
        self.pending_changed.emit(pending, text)

    def set_can_rearm(self, can: bool) -> None:
        self.can_rearm = can
        self._refresh()

    def set_role(self, role: str) -> None:
        """"viewer" (may do nothing), "trader" (may trip, never re-arm) or "risk_manager"."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (expected viewer, trader or risk_manager)")
        self.role = role
        self.can_rearm = role == "risk_manager"
        self._refresh()

    def set_stale(self, stale: bool) -> None:
        self.stale = stale
        self._refresh()

    # -- what the user sees (tests read this) ------------------------------------------------------
    def row_texts(self, name: str) -> tuple[str, ...] | None:
        """The texts of one switch's row, as shown: switch, state, auto, by, when,
        cooling-off, reason."""
        row = self._row_of.get(name)
        if row is None:
            return None
        r = self._rows.index(row)
        return tuple(self.scope_table.item(r, c).text() for c in _CELLS)

    def row_pending(self, name: str) -> str:
        """What one switch's row says in its buttons' place while its command waits ("")."""
        row = self._row_of[name]
        return "" if row.waiting.isHidden() else row.waiting.text()

    def row_buttons(self, name: str) -> tuple[QToolButton, QToolButton, QToolButton]:
        """(Reduce, Halt, Re-arm…) of one switch's row."""
        row = self._row_of[name]
        return row.reduce, row.halt, row.rearm

    # -- internals ---------------------------------------------------------------------------------
    def _headline(self, word: str, user: str, reason: str, when: str,
                  refresh: bool = True) -> None:
        self.tripped = bool(word)
        if word:
            who = f" by {user}" if user else ""
            at = f" at {when}" if when else ""
            why = f"\n{reason}" if reason else ""
            text = f"{word}{who}{at}{why}"
        else:
            text = "ARMED — trading allowed"
        if self.state_label.text() != text:
            self.state_label.setText(text)
        self._headline_state = "reducing" if word == "REDUCING" else "killed"
        if refresh:
            self._refresh()

    def _resize(self, n: int) -> None:
        t = self.scope_table
        old = len(self._rows)
        t.setRowCount(n)
        del self._rows[n:]
        for r in range(old, n):
            row = _Row()
            for c in _CELLS:
                t.setItem(r, c, QTableWidgetItem())
            t.item(r, STATE).setFont(self._bold)
            box = QWidget()
            box.setObjectName("killRowButtons")
            h = QHBoxLayout(box)
            h.setContentsMargins(2, 1, 2, 1)
            h.setSpacing(4)
            row.reduce = self._tool("Reduce", "rowReduce", lambda _=False, x=row: self._trip(x, REDUCING))
            row.halt = self._tool("Halt", "rowHalt", lambda _=False, x=row: self._trip(x, HALTED))
            row.rearm = self._tool("Re-arm…", "rowRearm", lambda _=False, x=row: self._ask_rearm_row(x))
            for b in (row.reduce, row.halt, row.rearm):
                h.addWidget(b)
            row.waiting = QLabel("waiting for the engine's ack…")
            row.waiting.setObjectName("rowPending")
            row.waiting.hide()
            h.addWidget(row.waiting)
            row.buttons = box
            t.setCellWidget(r, ACTIONS, box)
            self._rows.append(row)

    def _tool(self, text: str, name: str, slot) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setObjectName(name)
        b.setAutoRaise(False)
        b.clicked.connect(slot)
        return b

    def _set_row(self, r: int, rec) -> None:
        row = self._rows[r]
        row.scope, row.scope_id = int(rec["scope"]), int(rec["scope_id"])
        row.name = _text(rec["name"]) or f"{SCOPE_NAMES[row.scope]}:{row.scope_id}"
        row.state = int(rec["state"])
        row.cooling_until = int(rec["cool_until_ns"])
        left = row.cooling_until - self._now_ns
        cool = f"{_duration(left)} (until {_clock(row.cooling_until)})" if left > 0 else ""
        cells = (row.name, STATE_NAMES.get(row.state, f"? {row.state}"),
                 "auto" if rec["auto"] else "", _text(rec["user"]), _clock(int(rec["ts_ns"])),
                 cool, _text(rec["reason"]))
        if cells == row.cells:
            return
        if not row.cells or cells[STATE] != row.cells[STATE]:
            self.scope_table.item(r, STATE).setForeground(
                QBrush(_STATE_FG.get(row.state, _UNKNOWN_FG)))
        row.cells = cells
        for c, text in zip(_CELLS, cells):
            item = self.scope_table.item(r, c)
            if item.text() != text:
                item.setText(text)
                if c == REASON:
                    item.setToolTip(text)

    def _trip(self, row: _Row, state: int) -> None:
        self.trip_requested.emit(row.scope, row.scope_id, state, row.name)

    def _ask_rearm_row(self, row: _Row) -> None:
        if self.rearm_dialog is not None:
            self.rearm_dialog.close()
        dlg = RearmDialog(row.name, STATE_NAMES.get(row.state, "tripped"), self)
        scope, scope_id, name = row.scope, row.scope_id, row.name

        def accepted() -> None:
            self.rearm_scope_requested.emit(scope, scope_id, name, dlg.reason.text().strip(),
                                            dlg.confirm.text())

        def finished(_result: int) -> None:
            if self.rearm_dialog is dlg:
                self.rearm_dialog = None
            dlg.deleteLater()

        dlg.accepted.connect(accepted)
        dlg.finished.connect(finished)
        self.rearm_dialog = dlg
        dlg.open()  # window-modal, not a nested event loop: the desk's loop keeps running

    def _ask_rearm(self) -> None:
        reason, ok = QInputDialog.getText(
            self, "Re-arm kill switch", "Why is it safe to trade again? (kept in the audit log)"
        )
        if ok and reason.strip():
            self.rearm_requested.emit(reason.strip())

    # -- what may be clicked, and why not ----------------------------------------------------------
    def _why_no_trip(self) -> str:
        if self.stale:
            return "No engine data: the states shown may be old"
        if self.role == "viewer":
            return "A viewer may only watch: tripping needs the trader or risk_manager role"
        return ""

    def _why_no_rearm(self) -> str:
        if self.stale:
            return "No engine data: the states shown may be old"
        if self.role is not None and self.role != "risk_manager":
            return f"A {self.role} may not re-arm: only a risk_manager may"
        if self.role is None and not self.can_rearm:
            return "Only a risk_manager may re-arm"
        return ""

    def _refresh(self) -> None:
        tripped = bool(self.tripped)
        no_trip, no_rearm = self._why_no_trip(), self._why_no_rearm()
        self.kill_button.setEnabled(not self.pending and not self.stale and self.role != "viewer")
        self.kill_button.setText("KILL — pending…" if self.pending else "KILL")
        self.kill_button.setToolTip(
            no_trip if self.role == "viewer"
            else "Trip the global kill switch: every strategy stops")
        self.rearm_button.setEnabled(
            tripped and self.can_rearm and not self.pending and not self.stale
        )
        self.rearm_button.setToolTip(
            no_rearm if self.role is not None and no_rearm
            else "Re-arm the global kill switch (risk manager only)")
        state = "stale" if self.stale else (
            self._headline_state if tripped else "armed")
        if self.state_label.property("state") != state:
            self.state_label.setProperty("state", state)
            self.state_label.style().unpolish(self.state_label)
            self.state_label.style().polish(self.state_label)
        for r, row in enumerate(self._rows):
            self._refresh_row(r, row, no_trip, no_rearm)

    def _refresh_row(self, r: int, row: _Row, no_trip: str, no_rearm: str) -> None:
        pending = self._pending_rows.get(row.name)
        if pending is not None:
            wait = f"Waiting for the engine's ack: {pending}" if pending else \
                "Waiting for the engine's ack"
            no_trip = no_trip or wait
            no_rearm = no_rearm or wait
        if row.waiting.isHidden() == (pending is not None):
            for b in (row.reduce, row.halt, row.rearm):
                b.setVisible(pending is None)
            row.waiting.setVisible(pending is not None)
        if pending is not None:
            row.waiting.setToolTip(wait)
        name = row.name
        reduce_why = no_trip or {
            REDUCING: f"{name} is already REDUCING",
            HALTED: f"{name} is HALTED, which is stricter: re-arm it to loosen",
        }.get(row.state, "")
        halt_why = no_trip or (f"{name} is already HALTED" if row.state == HALTED else "")
        rearm_why = no_rearm
        if not rearm_why:
            if row.state == ACTIVE:
                rearm_why = f"{name} is ACTIVE: nothing to re-arm"
            elif row.cooling_until > self._now_ns:
                rearm_why = (f"Tripped by the engine: cooling off until "
                             f"{_clock(row.cooling_until)}")
        self._set_button(row.reduce, reduce_why,
                         f"Trip {name} to REDUCING: only orders that reduce the position pass")
        self._set_button(row.halt, halt_why,
                         f"Trip {name} to HALTED: nothing new passes, its working orders are "
                         f"cancelled")
        self._set_button(row.rearm, rearm_why,
                         f"Re-arm {name}: asks why, and for its name typed out")

    @staticmethod
    def _set_button(b: QToolButton, why_not: str, what: str) -> None:
        if b.isEnabled() != (not why_not):
            b.setEnabled(not why_not)
        tip = why_not or what
        if b.toolTip() != tip:
            b.setToolTip(tip)
