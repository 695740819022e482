"""The amber STALE label a chart lays over itself while the engine's data is not current."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

__all__ = ["stale_label"]


def stale_label(parent: QWidget | None = None) -> QLabel:
    """A hidden "STALE" label (object name ``staleBanner``): show it while stale."""
    label = QLabel("STALE", parent)
    label.setObjectName("staleBanner")
    label.setAlignment(Qt.AlignCenter)
    label.setStyleSheet("color: #f0c674; background: rgba(21, 24, 29, 200); font-weight: bold;"
                        " padding: 2px 10px;")
    label.hide()
    return label
