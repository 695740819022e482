"""A bounded, read-only log of engine events (newest at the bottom)."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

__all__ = ["EventLog"]


class EventLog(QWidget):
    def __init__(self, max_lines: int = 2000, parent=None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(max_lines)
        f = QFont("monospace")
        f.setStyleHint(QFont.Monospace)
        self.text.setFont(f)
        self.lost_label = QLabel("")
        self.lost_label.setObjectName("lostLabel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.text)
        lay.addWidget(self.lost_label)
        self.lost_label.hide()

    def append(self, lines: list[str]) -> None:
        if lines:
            self.text.appendPlainText("\n".join(lines))

    def set_lost(self, lost: int) -> None:
        if lost:
            self.lost_label.setText(f"{lost} events were lost (this desk read too slowly)")
            self.lost_label.show()

    def lines(self) -> list[str]:
        return self.text.toPlainText().splitlines()
