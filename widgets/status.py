"""The connection light in the status bar: green when live, red when STALE, grey when absent."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

__all__ = ["ConnectionStatus"]


class ConnectionStatus(QLabel):
    STATES = ("connected", "stale", "disconnected")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("connectionStatus")
        self.state = ""
        self.set_health("disconnected", "no engine")

    def set_health(self, state: str, text: str) -> None:
        if state not in self.STATES:
            raise ValueError(f"unknown connection state {state!r}")
        label = {"connected": "● LIVE", "stale": "● STALE", "disconnected": "○ NO ENGINE"}[state]
        full = f"{label}   {text}"
        if full != self.text():
            self.setText(full)
        if state != self.state:
            self.state = state
            self.setProperty("state", state)
            self.style().unpolish(self)
            self.style().polish(self)
