"""The kernel's strategy stage: runs each strategy's callbacks in a fixed order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.strategy.api import NEVER, Strategy, StrategyContext

__all__ = ["Strategies"]


class Strategies:
    """The strategies of one kernel, each with its context (``submit`` is the kernel's door)."""

    def __init__(self, strategies: Sequence[Strategy], market, submit: Callable,
                 cancel: Callable, notify: Callable[[int, str, int], None],
                 now: Callable[[], int] = lambda: 0) -> None:
        self.strategies = list(strategies)
        self.contexts = [StrategyContext(s.name, market, submit, cancel, notify, now)
                         for s in self.strategies]
        self.market = market
        self.wants_books = any(s.wants_books for s in self.strategies)
        self._seen = market.new_seen() if market is not None and self.wants_books else None
        self._applied = -1
        self.next_due_ns = NEVER
        self.paused: set[str] = set()  #: strategies the risk engine paused (a HALTED scope)

    def pause(self, names: set[str]) -> None:
        """Pause exactly these strategies (their callbacks are not called); resume the rest."""
        self.paused = set(names)

    def __len__(self) -> int:
        return len(self.strategies)

    def start(self, now_ns: int) -> None:
        for s, ctx in zip(self.strategies, self.contexts):
            s.on_start(ctx, now_ns)
        self._due()

    def step(self, now_ns: int) -> None:
        """Books that changed this step, then timers that are due."""
        if self._seen is not None and self.market.applied != self._applied:
            self._applied = self.market.applied
            changed = self.market.changed(self._seen)
            if len(changed):
                for s, ctx in zip(self.strategies, self.contexts):
                    if s.wants_books and s.name not in self.paused:
                        s.on_book(ctx, changed, now_ns)
                self._due()  # on_book may set a timer
        if now_ns >= self.next_due_ns:
            for s, ctx in zip(self.strategies, self.contexts):
                if now_ns >= s.next_timer_ns() and s.name not in self.paused:
                    s.on_timer(ctx, now_ns)
            self._due()

    def on_order(self, update, order) -> None:
        for s, ctx in zip(self.strategies, self.contexts):
            s.on_order(ctx, update, order)
        self._due()  # a strategy may set a timer when it hears of its order

    def stop(self, now_ns: int) -> None:
        for s, ctx in zip(self.strategies, self.contexts):
            s.on_stop(ctx, now_ns)

    def _due(self) -> None:
        self.next_due_ns = min((s.next_timer_ns() for s in self.strategies), default=NEVER)
