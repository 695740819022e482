"""The kill switch panel: a big KILL button, the engine's state, pending/ack feedback, re-arm.

The panel shows what it is told: the state comes from the engine's snapshot, "pending" from
the caller while a command waits for its ack. Clicks are signals; nothing here sends anything.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QHeaderView,
)

__all__ = ["KillSwitchPanel"]


class KillSwitchPanel(QWidget):
    kill_clicked = Signal()
    rearm_requested = Signal(str)  # reason
    pending_changed = Signal(bool, str)  # what set_pending showed: pending?, text

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.kill_button = QPushButton("KILL")
        self.kill_button.setObjectName("killButton")
        self.kill_button.setMinimumHeight(56)
        self.kill_button.setToolTip("Trip the global kill switch: every strategy stops")
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
        self.rearm_button.setToolTip("Re-arm the global kill switch (risk manager only)")
        self.rearm_button.clicked.connect(self._ask_rearm)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Instrument", "Switch"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
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
        self.tripped: bool | None = None
        self.pending = False
        self.can_rearm = False
        self.stale = True
        self._refresh()

    # -- inputs ------------------------------------------------------------------------------------
    def set_state(self, tripped: bool, user: str = "", reason: str = "", when: str = "") -> None:
        self.tripped = tripped
        if tripped:
            who = f" by {user}" if user else ""
            at = f" at {when}" if when else ""
            why = f"\n{reason}" if reason else ""
            self.state_label.setText(f"KILLED{who}{at}{why}")
        else:
            self.state_label.setText("ARMED — trading allowed")
        self._refresh()

    def set_instruments(self, rows: list[tuple[str, bool]]) -> None:
        """(symbol, tripped) for each instrument switch."""
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

    def set_pending(self, pending: bool, text: str = "") -> None:
        self.pending = pending
        self.pending_label.setText(text)
        self._refresh()
        self.pending_changed.emit(pending, text)

    def set_can_rearm(self, can: bool) -> None:
        self.can_rearm = can
        self._refresh()

    def set_stale(self, stale: bool) -> None:
        self.stale = stale
        self._refresh()

    # -- internals ---------------------------------------------------------------------------------
    def _ask_rearm(self) -> None:
        reason, ok = QInputDialog.getText(
            self, "Re-arm kill switch", "Why is it safe to trade again? (kept in the audit log)"
        )
        if ok and reason.strip():
            self.rearm_requested.emit(reason.strip())

    def _refresh(self) -> None:
        tripped = bool(self.tripped)
        self.kill_button.setEnabled(not self.pending and not self.stale)
        self.kill_button.setText("KILL — pending…" if self.pending else "KILL")
        self.rearm_button.setEnabled(
            tripped and self.can_rearm and not self.pending and not self.stale
        )
        state = "stale" if self.stale else ("killed" if tripped else "armed")
        if self.state_label.property("state") != state:
            self.state_label.setProperty("state", state)
            self.state_label.style().unpolish(self.state_label)
            self.state_label.style().polish(self.state_label)
