"""The dark theme: a Qt stylesheet from resources/ and matching pyqtgraph defaults."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from engine.core.paths import resources_dir

__all__ = ["apply_theme"]


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    for role, color in (
        (QPalette.Window, "#1b1e23"), (QPalette.WindowText, "#d7dae0"),
        (QPalette.Base, "#15181d"), (QPalette.AlternateBase, "#1f2329"),
        (QPalette.Text, "#d7dae0"), (QPalette.Button, "#262a31"),
        (QPalette.ButtonText, "#d7dae0"), (QPalette.Highlight, "#2f6fb0"),
        (QPalette.ToolTipBase, "#262a31"), (QPalette.ToolTipText, "#d7dae0"),
    ):
        pal.setColor(role, QColor(color))
    app.setPalette(pal)
    qss = resources_dir() / "styles" / "dark.qss"
    app.setStyleSheet(qss.read_text(encoding="utf-8"))
