"""Feed handlers: the simulated feed (more to come: replay, FIX market data)."""

from engine.feeds.sim import SimFeed

__all__ = ["SimFeed"]
