"""The strategy API: what a strategy implements and what it may use.

A strategy reacts to the market and to its orders, and asks for orders by emitting intents
through its context's ``submit`` — the kernel's one door, behind the risk engine. It never
touches sockets, the database or the clock: time comes in as ``now_ns``, books are read from
``ctx.market`` (the market-data stage: ``books`` is the BookSet every part reads)::

    class Quoter(Strategy):
        name = "quoter"
        def on_book(self, ctx, instruments, now_ns):
            for i in instruments:
                ...
                ctx.submit(OrderIntent(symbol="AAPL", side=BUY, qty=100, price=189.5,
                                       venue="SIMA"), now_ns)

Callbacks (all optional): ``on_start(ctx, now_ns)``, ``on_book(ctx, instruments, now_ns)``
(the instruments whose books changed in this kernel step), ``on_order(ctx, update, order)``
(every change to any order: filter on ``order.cl_ord_id``), ``on_timer(ctx, now_ns)`` (when
``next_timer_ns`` comes), ``on_stop(ctx, now_ns)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.core.intents import OrderIntent

__all__ = ["NEVER", "Strategy", "StrategyContext"]

NEVER = 1 << 62


class StrategyContext:
    """What a strategy may use: the door for intents, cancels, the books, notices."""

    __slots__ = ("market", "_submit", "_cancel", "_notify", "_now", "name", "_source")

    def __init__(self, name: str, market: Any, submit: Callable, cancel: Callable,
                 notify: Callable[[int, str, int], None],
                 now: Callable[[], int] = lambda: 0) -> None:
        self.name = name
        self._source = f"strategy:{name}"
        self.market = market
        self._submit = submit
        self._cancel = cancel
        self._notify = notify
        self._now = now

    @property
    def now_ns(self) -> int:
        """The time of the kernel's step being run (not a clock reading)."""
        return self._now()

    def submit(self, intent: OrderIntent, now_ns: int) -> Any:
        """Ask for an order; returns the order (or router parent), or why it was refused. The
        intent is the strategy's ("strategy:NAME"): its limits, books and kill switch."""
        return self._submit(intent, now_ns, self._source)

    def cancel(self, cl_ord_id: str, now_ns: int) -> str | None:
        return self._cancel(cl_ord_id, now_ns)

    def notify(self, level: int, text: str, instrument: int = -1) -> None:
        """A line for the desks' event log."""
        self._notify(level, f"{self.name}: {text}", instrument)


class Strategy:
    """Base class: override the callbacks you need."""

    name = "strategy"
    #: wants ``on_book`` (the kernel works out which books changed only if someone does)
    wants_books = False

    def next_timer_ns(self) -> int:
        return NEVER

    def on_start(self, ctx: StrategyContext, now_ns: int) -> None:
        pass

    def on_book(self, ctx: StrategyContext, instruments, now_ns: int) -> None:
        pass

    def on_order(self, ctx: StrategyContext, update: Any, order: Any) -> None:
        pass

    def on_timer(self, ctx: StrategyContext, now_ns: int) -> None:
        pass

    def on_stop(self, ctx: StrategyContext, now_ns: int) -> None:
        pass
