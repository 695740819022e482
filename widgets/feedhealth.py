"""Market data health per venue, in the status bar: rate, gaps, rejects, staleness.

Fed plain data: ``set_feeds([(venue, rate_hz, gaps, duplicates, rejects, stale, stale_books), …])``.
A healthy venue reads ``SIMA 1.2k/s``; problems are spelled out (``SIMB STALE``,
``gaps 3``, ``rejects 12``) and the label turns amber while any venue is stale.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

__all__ = ["FeedHealth", "feed_text"]


def _rate(hz: float) -> str:
    if hz >= 1e6:
        return f"{hz / 1e6:.1f}M/s"
    if hz >= 1e3:
        return f"{hz / 1e3:.1f}k/s"
    return f"{hz:.0f}/s"


def feed_text(venue: str, rate_hz: float, gaps: int, duplicates: int, rejects: int,
              stale: bool, stale_books: int = 0) -> str:
    """One venue's health as the status bar shows it."""
    parts = [venue, "STALE" if stale else _rate(rate_hz)]
    if stale_books:
        parts.append(f"{stale_books} books stale")
    if gaps:
        parts.append(f"gaps {gaps:,}")
    if duplicates:
        parts.append(f"dups {duplicates:,}")
    if rejects:
        parts.append(f"rejects {rejects:,}")
    return " ".join(parts)


class FeedHealth(QLabel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("feedHealth")
        self.stale = False

    def set_feeds(self, feeds: list[tuple]) -> None:
        text = "  ·  ".join(feed_text(*f) for f in feeds)
        if text != self.text():
            self.setText(text)
        stale = any(f[5] or f[6] for f in feeds)
        if stale != self.stale:
            self.stale = stale
            self.setStyleSheet("color: #f0c674;" if stale else "")
