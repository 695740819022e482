"""Strategies: the strategy API, the kernel's strategy stage, scripted intents."""

from engine.strategy.api import Strategy, StrategyContext

__all__ = ["Strategy", "StrategyContext"]
