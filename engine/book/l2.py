"""A fixed-depth L2 book kept in plain Python lists.

Per-event updates from Python are cheapest on lists (DESIGN.md: a list item update ≈ 45 ns, a
numpy element ≈ 120-950 ns); the book is copied into shared memory at publication time only.
Level 0 is the best price; an empty level has price 0.0 and size 0.0.
"""

from __future__ import annotations

__all__ = ["L2Book"]


class L2Book:
    __slots__ = ("depth", "bid_px", "bid_sz", "ask_px", "ask_sz", "last_px", "last_sz",
                 "updates", "ts_event_ns")

    def __init__(self, depth: int = 10) -> None:
        self.depth = depth
        self.bid_px = [0.0] * depth
        self.bid_sz = [0.0] * depth
        self.ask_px = [0.0] * depth
        self.ask_sz = [0.0] * depth
        self.last_px = 0.0
        self.last_sz = 0.0
        self.updates = 0
        self.ts_event_ns = 0

    def best_bid(self) -> float:
        return self.bid_px[0]

    def best_ask(self) -> float:
        return self.ask_px[0]

    def mid(self) -> float:
        b, a = self.bid_px[0], self.ask_px[0]
        return (b + a) / 2 if b and a else 0.0

    def check(self) -> str | None:
        """Why the book is inconsistent, or None (for tests and debugging, not the hot path)."""
        for side, px in (("bid", self.bid_px), ("ask", self.ask_px)):
            live = [p for p in px if p]
            step = -1 if side == "bid" else 1
            if any((b - a) * step <= 0 for a, b in zip(live, live[1:])):
                return f"{side} prices out of order: {live}"
        if self.bid_px[0] and self.ask_px[0] and self.bid_px[0] >= self.ask_px[0]:
            return f"crossed: bid {self.bid_px[0]} >= ask {self.ask_px[0]}"
        return None
