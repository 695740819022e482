"""Position arithmetic: the one function every keeper of positions uses (the risk engine's
portfolio, the store's writer, the backtest's report)."""

from __future__ import annotations

__all__ = ["apply_fill"]


def apply_fill(pos: tuple[int, float, float], side: int, qty: int,
               px: float, fee: float = 0.0) -> tuple[int, float, float]:
    """(qty, avg_px, realized) after a fill: average cost, realized P&L on what closes, less
    the fill's fee (a rebate is a negative fee)."""
    q, avg, realized = pos
    realized -= fee
    d = qty if side == 1 else -qty
    if q == 0 or (q > 0) == (d > 0):  # opens or adds
        new = q + d
        return new, (avg * abs(q) + px * abs(d)) / abs(new), realized
    closing = min(abs(d), abs(q))
    realized += (px - avg) * closing * (1 if q > 0 else -1)
    new = q + d
    if new == 0:
        return 0, 0.0, realized
    if (new > 0) != (q > 0):  # flipped through zero: the rest opens at this price
        return new, px, realized
    return new, avg, realized
