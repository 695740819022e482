"""Prices on a tick grid."""

from __future__ import annotations

__all__ = ["tick_decimals"]


def tick_decimals(tick: float) -> int:
    """Decimals needed to show every price on a tick grid: 0.25 -> 2, 0.0025 -> 4, 5 -> 0."""
    text = f"{tick:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0
