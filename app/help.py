"""The keyboard shortcuts overlay (F1): a translucent sheet over the desk listing every key."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QPainter
from PySide6.QtWidgets import QWidget

__all__ = ["HelpOverlay"]

_SHEET = QColor(10, 12, 15, 225)
_KEY = QColor("#f0c674")
_TEXT = QColor("#c8ccd2")
_TITLE = QColor("#ffffff")


class HelpOverlay(QWidget):
    """Covers its parent; any key or click closes it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("helpOverlay")
        self.setFocusPolicy(Qt.StrongFocus)
        self.entries: list[tuple[str, str]] = []
        self.hide()

    def show_over(self, parent: QWidget, entries: list[tuple[str, str]]) -> None:
        self.entries = list(entries) + [("Home", "Re-centre the ladder with focus"),
                                         ("Wheel, PgUp, PgDn", "Scroll a ladder's prices"),
                                         ("Esc or any key", "Close this sheet")]
        self.setGeometry(parent.rect())
        self.raise_()
        self.show()
        self.setFocus()

    def lines(self) -> list[str]:
        """What the sheet lists, one "KEYS  what" line each (tests read it)."""
        return [f"{k}  {t}" for k, t in self.entries]

    def keyPressEvent(self, event) -> None:
        self.hide()

    def mousePressEvent(self, event) -> None:
        self.hide()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), _SHEET)
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        mono.setPointSizeF(max(mono.pointSizeF(), 11))
        title = QFont(self.font())
        title.setPointSizeF(self.font().pointSizeF() * 1.6)
        title.setBold(True)
        line_h = 26
        w = min(720, self.width() - 40)
        h = line_h * (len(self.entries) + 2)
        x0 = (self.width() - w) / 2
        y = max(20, (self.height() - h) / 2)
        p.setFont(title)
        p.setPen(_TITLE)
        p.drawText(QRectF(x0, y, w, line_h * 1.5), int(Qt.AlignLeft | Qt.AlignVCenter),
                   "Keyboard shortcuts")
        y += line_h * 2
        p.setFont(mono)
        for keys, text in self.entries:
            p.setPen(_KEY)
            p.drawText(QRectF(x0, y, 220, line_h), int(Qt.AlignRight | Qt.AlignVCenter), keys)
            p.setPen(_TEXT)
            p.drawText(QRectF(x0 + 240, y, w - 240, line_h), int(Qt.AlignLeft | Qt.AlignVCenter),
                       text)
            y += line_h
        p.end()
