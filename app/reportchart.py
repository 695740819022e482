"""equity.png for a backtest's report folder: the equity curve over its drawdown, drawn with
QtGui (``QImage`` + ``QPainter``), no window.

The engine imports no Qt, so ``helmdesk backtest`` (``app.cli``) hands ``render_or_why`` to
``engine.backtest.main.run``, which calls it once the folder is written and before
report.html is: the page shows the picture when it is there, else the reason.

Qt needs a QGuiApplication for fonts. If none exists this module makes one on the offscreen
platform (``-platform offscreen``: nothing is shown, and no display is needed; without it a
process with no display aborts inside Qt instead of raising). A desk that already runs a
QApplication is drawn with as it is.

The x axis is the sample number, not the clock, so the nights between recorded days take no
room; a dashed line marks where each day starts. Time labels are UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

__all__ = ["ChartError", "HEIGHT", "WIDTH", "render", "render_or_why"]

WIDTH, HEIGHT = 1200, 720

_BG = "#16181c"
_PANEL = "#1c1f24"
_GRID = "#2c3038"
_TEXT = "#9aa0aa"
_TITLE = "#d8dbe0"
_EQUITY = "#58a6ff"
_DRAWDOWN = "#f85149"
_STRATEGY = ("#7ee787", "#d2a8ff", "#e3b341", "#79c0ff", "#ffa198", "#a5d6ff")

_app = None  # the QGuiApplication this module made, kept for the process's life


class ChartError(Exception):
    """The chart cannot be drawn: Qt does not start, or equity.csv is unusable."""


def render_or_why(folder: str | Path) -> str | None:
    """Draw ``folder/equity.png``; return None, or why it was not drawn (a warning)."""
    try:
        render(folder)
    except ChartError as e:
        return f"equity.png not drawn: {e}"
    return None


def _gui():
    """The QGuiApplication (ours on the offscreen platform when there is none)."""
    global _app
    try:
        from PySide6.QtGui import QGuiApplication
    except ImportError as e:  # a missing system library (libEGL, libGL, ...) or no PySide6
        raise ChartError(f"Qt is not available ({e})") from None
    app = QGuiApplication.instance()
    if app is None:
        try:
            app = _app = QGuiApplication(["helmdesk-report", "-platform", "offscreen"])
        except Exception as e:  # pragma: no cover - depends on the machine
            raise ChartError(f"Qt cannot start: {e}") from None
    return app


def _read(path: Path) -> tuple[list[int], list[float], list[float], dict[str, list[float]]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise ChartError(f"cannot read {path}: {e.strerror or e}") from None
    if not rows or not {"ts_ns", "equity", "drawdown"} <= set(rows[0]):
        raise ChartError(f"{path}: not an equity file (columns ts_ns, equity, drawdown)")
    col = {h: k for k, h in enumerate(rows[0])}
    ts, eq, dd = [], [], []
    strat = {h: [] for h in rows[0] if h.startswith("strategy:")}
    try:
        for r in rows[1:]:
            ts.append(int(r[col["ts_ns"]]))
            eq.append(float(r[col["equity"]] or "nan"))
            dd.append(float(r[col["drawdown"]] or "nan"))
            for h, v in strat.items():
                v.append(float(r[col[h]] or "nan"))
    except (ValueError, IndexError) as e:
        raise ChartError(f"{path}: line {len(ts) + 2}: {e}") from None
    return ts, eq, dd, strat


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round values from ``lo`` to ``hi``, about ``n`` of them (1, 2, 5 × 10^k apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return out


def _money(v: float, span: float) -> str:
    decimals = 0 if span >= 50 else 1 if span >= 5 else 2 if span >= 0.05 else 4
    return f"{v:,.{decimals}f}"


def _utc(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ns // 1000)


def render(folder: str | Path, *, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """Draw ``equity.png`` in ``folder`` from its ``equity.csv``; return its path. Raises
    ``ChartError`` saying why it cannot."""
    folder = Path(folder)
    ts, eq, dd, strat = _read(folder / "equity.csv")
    _gui()
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen

    img = QImage(width, height, QImage.Format_RGB32)
    img.fill(QColor(_BG))
    p = QPainter(img)
    try:
        p.setRenderHint(QPainter.Antialiasing, True)
        p.setRenderHint(QPainter.TextAntialiasing, True)
        font = QFont()
        font.setPixelSize(12)
        p.setFont(font)
        left, right, top, bottom = 88, 24, 40, 44
        gap = 26
        plot_w = width - left - right
        plot_h = height - top - bottom - gap
        eq_rect = QRectF(left, top, plot_w, plot_h * 0.68)
        dd_rect = QRectF(left, top + plot_h * 0.68 + gap, plot_w, plot_h * 0.32)

        title = QFont(font)
        title.setPixelSize(14)
        title.setWeight(QFont.DemiBold)
        p.setFont(title)
        p.setPen(QColor(_TITLE))
        last = next((v for v in reversed(eq) if v == v), 0.0)
        worst = min((v for v in dd if v == v), default=0.0)
        p.drawText(QRectF(left, 8, plot_w, 24), Qt.AlignLeft | Qt.AlignVCenter,
                   f"Desk equity  {last:+,.2f}     max drawdown {-worst:,.2f}")
        p.setFont(font)

        n = len(ts)
        if n == 0:
            p.setPen(QColor(_TEXT))
            p.drawText(eq_rect, Qt.AlignCenter, "no equity samples")
            return _save(img, folder)

        def x_of(k: int) -> float:
            return left + (plot_w * k / (n - 1) if n > 1 else plot_w / 2)

        # -- the equity panel --
        series = [eq] + list(strat.values())
        vals = [v for s in series for v in s if v == v] + [0.0]
        lo, hi = min(vals), max(vals)
        if hi - lo < 1e-9:
            lo, hi = lo - 1.0, hi + 1.0
        pad = (hi - lo) * 0.06
        lo, hi = lo - pad, hi + pad
        _panel(p, eq_rect, lo, hi, "P&L")
        for k, (name, s) in enumerate(strat.items()):
            _line(p, s, x_of, eq_rect, lo, hi, _STRATEGY[k % len(_STRATEGY)], 1.2)
        _line(p, eq, x_of, eq_rect, lo, hi, _EQUITY, 2.0)
        # legend
        lx = eq_rect.left() + 10
        ly = eq_rect.top() + 8
        for label, color in [("desk", _EQUITY)] + [
                (h.split(":", 1)[1], _STRATEGY[k % len(_STRATEGY)])
                for k, h in enumerate(strat)]:
            p.setPen(QPen(QColor(color), 2.5))
            p.drawLine(QPointF(lx, ly + 7), QPointF(lx + 18, ly + 7))
            p.setPen(QColor(_TITLE))
            p.drawText(QRectF(lx + 24, ly, 200, 14), Qt.AlignLeft | Qt.AlignVCenter, label)
            lx += 34 + p.fontMetrics().horizontalAdvance(label)

        # -- the drawdown panel --
        dlo = min(worst, -1e-9)
        dlo -= (0 - dlo) * 0.08 if worst < 0 else 1.0
        _panel(p, dd_rect, dlo, 0.0, "drawdown")
        area = QPainterPath()
        y0 = dd_rect.top()
        area.moveTo(x_of(0), y0)
        span = 0.0 - dlo
        for k, v in enumerate(dd):
            v = v if v == v else 0.0
            area.lineTo(x_of(k), y0 + (0.0 - v) / span * dd_rect.height())
        area.lineTo(x_of(n - 1), y0)
        area.closeSubpath()
        fill = QColor(_DRAWDOWN)
        fill.setAlpha(110)
        p.fillPath(area, fill)
        p.setPen(QPen(QColor(_DRAWDOWN), 1.2))
        p.drawPath(area)

        # -- time: labels under the drawdown panel, day starts as dashed lines --
        days = [k for k in range(n) if k == 0 or ts[k] // 86_400_000_000_000
                != ts[k - 1] // 86_400_000_000_000]
        multi = len(days) > 1
        dash = QPen(QColor(_TEXT), 1, Qt.DashLine)
        for k in days[1:]:
            p.setPen(dash)
            for r in (eq_rect, dd_rect):
                p.drawLine(QPointF(x_of(k), r.top()), QPointF(x_of(k), r.bottom()))
        p.setPen(QColor(_TEXT))
        want = max(2, min(8, plot_w // 140))
        picks = sorted({round(j * (n - 1) / (want - 1)) for j in range(want)}) if n > 1 else [0]
        # seconds when a day's samples span less than two hours (a short recording)
        starts = days + [n]
        longest = max(ts[b - 1] - ts[a] for a, b in zip(starts, starts[1:]))
        fmt = ("%m-%d " if multi else "") + ("%H:%M:%S" if longest < 7_200_000_000_000 else
                                             "%H:%M")
        for k in picks:
            text = _utc(ts[k]).strftime(fmt)
            x = x_of(k)
            p.drawLine(QPointF(x, dd_rect.bottom()), QPointF(x, dd_rect.bottom() + 4))
            align = (Qt.AlignLeft if k == 0 else Qt.AlignRight if k == n - 1 else
                     Qt.AlignHCenter)
            bx = x if k == 0 else x - 120 if k == n - 1 else x - 60
            p.drawText(QRectF(bx, dd_rect.bottom() + 6, 120, 16), align | Qt.AlignTop, text)
        first, final = _utc(ts[0]), _utc(ts[-1])
        p.drawText(QRectF(left, height - 20, plot_w, 16), Qt.AlignRight | Qt.AlignVCenter,
                   f"UTC, {first:%Y-%m-%d}" + (f" to {final:%Y-%m-%d}" if multi else "")
                   + f", {n:,} samples")
    finally:
        p.end()
    return _save(img, folder)


def _panel(p, rect, lo: float, hi: float, name: str) -> None:
    """Background, horizontal grid with P&L labels, the zero line, the panel's name."""
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QColor, QPen

    p.fillRect(rect, QColor(_PANEL))
    span = hi - lo
    for v in _nice_ticks(lo, hi, 5 if rect.height() > 200 else 3):
        y = rect.bottom() - (v - lo) / span * rect.height()
        p.setPen(QPen(QColor(_GRID), 1))
        p.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
        p.setPen(QColor(_TEXT))
        p.drawText(QRectF(0, y - 8, rect.left() - 8, 16), Qt.AlignRight | Qt.AlignVCenter,
                   _money(v, span))
    if lo < 0 < hi:
        y = rect.bottom() - (0 - lo) / span * rect.height()
        p.setPen(QPen(QColor(_TEXT), 1))
        p.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
    p.setPen(QColor(_TEXT))
    p.drawText(QRectF(rect.right() - 150, rect.top() + 4, 144, 16),
               Qt.AlignRight | Qt.AlignVCenter, name)
    p.setPen(QPen(QColor(_GRID), 1))
    p.drawRect(rect)


def _line(p, values, x_of, rect, lo: float, hi: float, color: str, width: float) -> None:
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor, QPainterPath, QPen

    path = QPainterPath()
    span = hi - lo
    started = False
    for k, v in enumerate(values):
        if v != v:
            started = False
            continue
        pt = QPointF(x_of(k), rect.bottom() - (v - lo) / span * rect.height())
        if started:
            path.lineTo(pt)
        else:
            path.moveTo(pt)
            started = True
    p.setPen(QPen(QColor(color), width))
    p.drawPath(path)


def _save(img, folder: Path) -> Path:
    path = folder / "equity.png"
    if not img.save(str(path), "PNG"):
        raise ChartError(f"cannot write {path}")
    return path
