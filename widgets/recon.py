"""What a restart found the database and the venues disagree on, for a risk manager to settle.

Fed with the engine's RECON_ROW records (numpy; this module copies the few field meanings it
needs): one row per difference, open ones first. A risk manager accepts one (the engine's
figure stands; an order's venue fills are applied already) or corrects a position to the
venue's figure, each with a reason: ``settle_requested(id, correct, reason)``. Nothing here
sends anything.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["ReconTable"]

STATES = {0: "OPEN", 1: "accepted", 2: "corrected"}
KINDS = {0: "order", 1: "position"}
COLUMNS = ("#", "State", "What", "Key", "Database", "Venue", "Details")
_OPEN = QColor("#e0a030")
_DONE = QColor("#7d8590")


class ReconTable(QWidget):
    settle_requested = Signal(int, bool, str)  # difference id, correct?, reason

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.summary = QLabel("no differences: the database and the venues agree")
        self.summary.setObjectName("reconSummary")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setSelectionMode(QTableWidget.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection)
        self.accept_button = QPushButton("Accept…")
        self.correct_button = QPushButton("Correct to the venue…")
        self.accept_button.clicked.connect(lambda: self._ask(False))
        self.correct_button.clicked.connect(lambda: self._ask(True))
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.correct_button)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.summary)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        self._rows: list[tuple] = []
        self._may = False
        self._why_not = "only a risk manager settles differences"
        self._selection()

    # -- inputs ----------------------------------------------------------------------------------
    def set_rows(self, rows: np.ndarray) -> None:
        """RECON_ROW records: shown open first, then by id; rebuilt only when they change."""
        items = sorted(
            ((int(r["id"]), int(r["state"]), int(r["kind"]), _text(r["key"]), int(r["db_qty"]),
              int(r["venue_qty"]), _text(r["text"])) for r in rows),
            key=lambda x: (x[1] != 0, x[0]))
        if items == self._rows:
            return
        selected = self.selected_id()
        self._rows = items
        self.table.setRowCount(len(items))
        for k, (i, state, kind, key, db, venue, text) in enumerate(items):
            cells = (str(i), STATES.get(state, "?"), KINDS.get(kind, "?"), key, f"{db:+d}",
                     f"{venue:+d}", text)
            for c, value in enumerate(cells):
                item = QTableWidgetItem(value)
                if c in (0, 4, 5):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                item.setForeground(_OPEN if state == 0 else _DONE)
                self.table.setItem(k, c, item)
            if i == selected:
                self.table.selectRow(k)
        n_open = sum(1 for x in items if x[1] == 0)
        self.summary.setText(
            f"{n_open} difference{'s' if n_open != 1 else ''} to settle: the instruments "
            f"concerned are REDUCING until then" if n_open else
            ("no differences: the database and the venues agree" if not items else
             f"all {len(items)} differences settled"))
        self._selection()

    def set_role(self, role: str) -> None:
        """Only a risk manager settles; the buttons say why for anyone else."""
        self._may = role == "risk_manager"
        self._selection()

    # -- reading ---------------------------------------------------------------------------------
    def selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self._rows[rows[0].row()][0] if rows[0].row() < len(self._rows) else None

    def row_texts(self, diff_id: int) -> tuple[str, ...] | None:
        for k, row in enumerate(self._rows):
            if row[0] == diff_id:
                return tuple(self.table.item(k, c).text() for c in range(len(COLUMNS)))
        return None

    # -- actions ---------------------------------------------------------------------------------
    def _selection(self) -> None:
        i = self.selected_id()
        row = next((r for r in self._rows if r[0] == i), None)
        open_ = row is not None and row[1] == 0
        for b, ok in ((self.accept_button, open_),
                      (self.correct_button, open_ and row[2] == 1)):
            b.setEnabled(self._may and ok)
            b.setToolTip(self._why_not if not self._may else
                         "" if ok else "select an open difference (only a position can be "
                                       "corrected: an order's venue fills are applied already)")

    def _ask(self, correct: bool) -> None:
        i = self.selected_id()
        if i is None:
            return
        what = "Book the venue's position" if correct else "Accept the engine's figure"
        reason, ok = QInputDialog.getText(self, f"Difference {i}", f"{what}: why?")
        if ok and reason.strip():
            self.settle_requested.emit(i, correct, reason.strip())


def _text(raw: bytes) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")
