"""The limit editor: the engine's limits (key, scope, value), changed only by a risk manager.

``set_limits`` takes what the engine says the limits are (LIMIT_ROW records, or
``(scope, key, value)`` tuples); the table always shows those values. Editing a value (double
click, or select and "Change…") changes nothing here: a dialog asks for the reason, then
``limit_change_requested(scope, key, value, reason)`` goes to whoever sends commands and the row
reads "pending". The caller settles it with ``set_result(scope, key, ok, text)``, and the next
``set_limits`` shows the value the engine then has.

``set_role``: only "risk_manager" may edit; for other roles the cells and the button say why not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets._model import ALIGN, DISPLAY, FG, FONT, RIGHT, TIP, TableModel

__all__ = ["LimitChangeDialog", "LimitEditor", "LimitsModel", "format_value"]

COLUMNS = ("Key", "Scope", "Value", "Status")
KEY, SCOPE, VALUE, STATUS = range(4)
ROLES = ("viewer", "trader", "risk_manager")

_EDIT = Qt.EditRole.value
_STATUS_FG = {"pending": QBrush(QColor("#f0c674")), "accepted": QBrush(QColor("#8fe3ab")),
              "rejected": QBrush(QColor("#ff6b6b")), "invalid": QBrush(QColor("#ff6b6b"))}


def format_value(x: float) -> str:
    """A limit as the table shows it: integers grouped, fractions as they are."""
    if not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if x == int(x) else f"{x:,.10g}"


def _parse(text: str) -> float | str:
    """The value typed, or why it is not one."""
    t = text.strip().replace(",", "").replace("_", "")
    try:
        x = float(t)
    except ValueError:
        return f"{text.strip()!r} is not a number"
    if not math.isfinite(x):
        return f"{text.strip()!r} is not a finite number"
    if x < 0:
        return "a limit may not be negative"
    return x


def _text(b) -> str:
    return b.decode(errors="replace").rstrip("\x00") if isinstance(b, bytes) else str(b)


@dataclass(slots=True, eq=False)
class _Limit:
    scope: str
    key: str
    value: float
    status: str = ""  #: "", pending, accepted, rejected, invalid
    text: str = ""  #: the status cell


class LimitsModel(TableModel):
    """Rows by (scope, key), in the order they first came; only the Value column is editable,
    and only while ``editable``. An edit is a request (``edit_requested``), not a change."""

    columns = COLUMNS

    edit_requested = Signal(str, str, float)  # scope, key, new value

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[_Limit] = []
        self._pos: dict[tuple[str, str], int] = {}
        self.editable = False
        self.why_not = "Only a risk_manager may change limits"
        self._mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)

    def set_limits(self, rows: np.ndarray | Iterable[tuple[str, str, float]]) -> None:
        if isinstance(rows, np.ndarray):
            items = [(_text(r["scope"]), _text(r["key"]), float(r["limit"])) for r in rows]
        else:
            items = [(str(s), str(k), float(v)) for s, k, v in rows]
        new = []
        for scope, key, value in items:
            r = self._pos.get((scope, key))
            if r is None:
                new.append(_Limit(scope, key, value))
                continue
            row = self._rows[r]
            if value != row.value:
                row.value = value
                i = self.index(r, VALUE)
                self.dataChanged.emit(i, i, [Qt.DisplayRole, Qt.EditRole])
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for k, row in enumerate(new):
                self._pos[(row.scope, row.key)] = first + k
            self._rows.extend(new)
            self.endInsertRows()

    def set_status(self, scope: str, key: str, status: str, text: str) -> bool:
        """Show a request's state on its row; False if no such row."""
        r = self._pos.get((scope, key))
        if r is None:
            return False
        row = self._rows[r]
        row.status, row.text = status, text
        i = self.index(r, STATUS)
        self.dataChanged.emit(i, i, [Qt.DisplayRole, Qt.ForegroundRole, Qt.ToolTipRole])
        return True

    def set_editable(self, editable: bool, why_not: str = "") -> None:
        self.editable = editable
        self.why_not = why_not
        if self._rows:  # flags and tooltips of every value cell
            self.dataChanged.emit(self.index(0, VALUE), self.index(len(self._rows) - 1, VALUE),
                                  [Qt.ToolTipRole])

    # -- what the user sees (tests read this) -----------------------------------------------------
    def row_of(self, scope: str, key: str) -> tuple[str, ...] | None:
        r = self._pos.get((scope, key))
        if r is None:
            return None
        return tuple(self.data(self.index(r, c)) for c in range(len(COLUMNS)))

    def limit_at(self, r: int) -> tuple[str, str, float]:
        row = self._rows[r]
        return row.scope, row.key, row.value

    # -- the model ------------------------------------------------------------------------------
    def row_count(self) -> int:
        return len(self._rows)

    def header(self, section: int, role: int):
        return RIGHT if role == ALIGN and section == VALUE else None

    def flags(self, index):
        f = super().flags(index)
        if (index.isValid() and index.column() == VALUE and self.editable
                and self._rows[index.row()].status != "pending"):
            f |= Qt.ItemIsEditable
        return f

    def data(self, index, role=DISPLAY):
        row, c = self._rows[index.row()], index.column()
        if role == DISPLAY:
            return (row.key, row.scope, format_value(row.value), row.text)[c]
        if role == _EDIT and c == VALUE:
            return format_value(row.value)
        if c == VALUE:
            if role == ALIGN:
                return RIGHT
            if role == FONT:
                return self._mono
            if role == TIP:
                if not self.editable:
                    return self.why_not
                if row.status == "pending":
                    return "A change is waiting for the engine's answer"
                return "Double-click to change (you will be asked why)"
        if c == STATUS:
            if role == FG:
                return _STATUS_FG.get(row.status)
            if role == TIP and row.text:
                return row.text
        return None

    def setData(self, index, value, role=_EDIT) -> bool:
        if role != _EDIT or index.column() != VALUE or not (self.flags(index) & Qt.ItemIsEditable):
            return False
        row = self._rows[index.row()]
        x = _parse(str(value))
        if isinstance(x, str):
            self.set_status(row.scope, row.key, "invalid", f"not sent: {x}")
            return False
        if x != row.value:
            self.edit_requested.emit(row.scope, row.key, x)
        return False  # the value shown stays the engine's until it says otherwise


class LimitChangeDialog(QDialog):
    """Shows the change (scope · key: old → new) and asks why; OK needs a reason."""

    def __init__(self, scope: str, key: str, old: float, new: float, parent=None) -> None:
        super().__init__(parent)
        self.scope, self.key, self.value = scope, key, new
        self.setWindowTitle(f"Change {key} · {scope}")
        self.setObjectName("limitChangeDialog")
        what = QLabel(f"{key} · {scope}:  {format_value(old)}  →  <b>{format_value(new)}</b>")
        self.reason = QLineEdit()
        self.reason.setObjectName("limitReason")
        self.reason.setPlaceholderText("kept in the audit log")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.Ok)
        self.ok_button.setText("Request change")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(what)
        lay.addWidget(QLabel("Why?"))
        lay.addWidget(self.reason)
        lay.addWidget(self.buttons)
        self.reason.textChanged.connect(self._check)
        self.setMinimumWidth(380)
        self._check()

    def _check(self) -> None:
        ok = bool(self.reason.text().strip())
        self.ok_button.setEnabled(ok)
        self.ok_button.setToolTip("" if ok else "Say why the limit should change")


class LimitEditor(QWidget):
    limit_change_requested = Signal(str, str, float, str)  # scope, key, value, reason

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = LimitsModel(self)
        self.view = QTableView()
        self.view.setObjectName("limitsView")
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(24)
        head = self.view.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeToContents)
        head.setSectionResizeMode(STATUS, QHeaderView.Stretch)
        head.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self.view.setSelectionBehavior(QTableView.SelectRows)
        self.view.setSelectionMode(QTableView.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.view.setShowGrid(False)
        self.hint = QLabel("")
        self.hint.setObjectName("limitsHint")
        self.hint.setWordWrap(True)
        self.edit_button = QPushButton("Change…")
        self.edit_button.setObjectName("limitChange")
        self.edit_button.clicked.connect(self.edit_selected)
        top = QHBoxLayout()
        top.addWidget(self.hint, 1)
        top.addWidget(self.edit_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.view)
        self.role: str | None = None
        self.dialog: LimitChangeDialog | None = None
        self.model.edit_requested.connect(self._ask_reason)
        self._apply_role()

    # -- inputs ----------------------------------------------------------------------------------
    def set_limits(self, limits: np.ndarray | Iterable[tuple[str, str, float]]) -> None:
        """The limits the engine has: LIMIT_ROW records (key, scope, limit used) or
        ``(scope, key, value)`` tuples."""
        self.model.set_limits(limits)

    def set_role(self, role: str) -> None:
        """Only "risk_manager" may edit; "viewer" and "trader" see the limits."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (expected viewer, trader or risk_manager)")
        self.role = role
        self._apply_role()

    def set_pending(self, scope: str, key: str, text: str = "") -> None:
        """Show that a change of this limit waits for the engine's answer."""
        self.model.set_status(scope, key, "pending", text or "pending…")

    def set_result(self, scope: str, key: str, ok: bool, text: str = "") -> None:
        """The engine's answer to a change: accepted (``ok``) or rejected, and why."""
        word = "accepted" if ok else "rejected"
        self.model.set_status(scope, key, word, f"{word}: {text}" if text else word)

    # -- actions ---------------------------------------------------------------------------------
    def edit_selected(self) -> None:
        """Start editing the selected row's value (the "Change…" button)."""
        rows = self.view.selectionModel().selectedRows()
        r = rows[0].row() if rows else self.view.currentIndex().row()
        if r < 0:
            self.hint.setText("Select a limit to change")
            return
        index = self.model.index(r, VALUE)
        self.view.setCurrentIndex(index)
        self.view.edit(index)

    def _ask_reason(self, scope: str, key: str, value: float) -> None:
        old = self.model.limit_at(self.model._pos[(scope, key)])[2]
        if self.dialog is not None:
            self.dialog.close()
        dlg = LimitChangeDialog(scope, key, old, value, self)

        def accepted() -> None:
            reason = dlg.reason.text().strip()
            self.model.set_status(scope, key, "pending",
                                  f"pending: {format_value(old)} → {format_value(value)}")
            self.limit_change_requested.emit(scope, key, value, reason)

        def finished(_result: int) -> None:
            if self.dialog is dlg:
                self.dialog = None
            dlg.deleteLater()

        dlg.accepted.connect(accepted)
        dlg.finished.connect(finished)
        self.dialog = dlg
        dlg.open()  # window-modal without a nested event loop

    def _apply_role(self) -> None:
        if self.role == "risk_manager":
            why = ""
            self.hint.setText("Double-click a value to change it; each change needs a reason.")
        else:
            who = f"you are {self.role}" if self.role else "your role is not known yet"
            why = f"Only a risk_manager may change limits ({who})"
            self.hint.setText(f"Read only: {why[0].lower()}{why[1:]}.")
        self.model.set_editable(not why, why)
        self.edit_button.setEnabled(not why)
        self.edit_button.setToolTip(why or "Change the selected limit")
