"""Helmdesk's icon, drawn rather than shipped: a ship's wheel over a ladder's bid and ask bars.

``app_icon()`` is the windows' icon; ``render_png(path, size)`` writes it for the installer's
desktop entry (``packaging/build.py``), so the picture has one source.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QLinearGradient, QPainter, QPen, QPixmap

__all__ = ["app_icon", "draw_icon", "render_png"]

_SIZES = (16, 24, 32, 48, 64, 128, 256)


def draw_icon(p: QPainter, size: int) -> None:
    """Paint the icon into a ``size`` x ``size`` square at the painter's origin."""
    s = float(size)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    g = QLinearGradient(0, 0, 0, s)
    g.setColorAt(0.0, QColor("#1d3b5c"))
    g.setColorAt(1.0, QColor("#0b1724"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(g)
    p.drawRoundedRect(QRectF(0, 0, s, s), s * 0.18, s * 0.18)
    # the ladder: bid bars (green) on the left, ask bars (red) on the right, behind the wheel
    bar_h = s * 0.07
    for i, (w, colour, left) in enumerate(((0.20, "#2e9d5b", True), (0.30, "#2e9d5b", True),
                                           (0.26, "#c8453c", False), (0.16, "#c8453c", False))):
        y = s * 0.26 + i * s * 0.13
        x = s * 0.5 - w * s if left else s * 0.5
        p.setBrush(QColor(colour))
        p.drawRect(QRectF(x, y, w * s, bar_h))
    # the wheel: a rim, a hub and eight spokes with handles
    c = QPointF(s / 2, s / 2)
    amber = QColor("#f0b429")
    r_rim, r_handle = s * 0.27, s * 0.40
    pen = QPen(amber, max(1.0, s * 0.055))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawEllipse(c, r_rim, r_rim)
    pen.setWidthF(max(1.0, s * 0.04))
    p.setPen(pen)
    for k in range(8):
        a = k * math.pi / 4
        d = QPointF(math.cos(a), math.sin(a))
        p.drawLine(c, c + d * r_handle)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(amber)
    p.drawEllipse(c, s * 0.08, s * 0.08)
    for k in range(8):
        a = k * math.pi / 4
        p.drawEllipse(c + QPointF(math.cos(a), math.sin(a)) * r_handle, s * 0.045, s * 0.045)


def _image(size: int) -> QImage:
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    try:
        draw_icon(p, size)
    finally:
        p.end()
    return img


def app_icon() -> QIcon:
    """The icon at the sizes window managers ask for."""
    icon = QIcon()
    for size in _SIZES:
        icon.addPixmap(QPixmap.fromImage(_image(size)))
    return icon


def render_png(path: str | Path, size: int = 256) -> Path:
    """Write the icon as a ``size`` x ``size`` PNG (needs a QGuiApplication, offscreen will do)."""
    path = Path(path)
    if not _image(size).save(str(path), "PNG"):
        raise OSError(f"could not write the icon to {path}")
    return path
