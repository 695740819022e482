"""The strategy API: what a strategy implements and what it may use.

A strategy reacts to the market and to its orders, and asks for orders by emitting intents
through its context's ``submit`` — the kernel's one door, behind the risk engine. It never
touches sockets, the database or the clock: time comes in as ``now_ns``, books are read from
``ctx.market`` (the market-data stage: ``books`` is the BookSet every part reads)::

    class Quoter(Strategy):
        kind = "quoter"
        wants_books = True

        def on_book(self, ctx, instruments, now_ns):
            for i in instruments:
                ...
                r = ctx.submit(OrderIntent(symbol="AAPL", side=BUY, qty=100, price=189.5,
                                           venue="SIMA"), now_ns)
                if isinstance(r, str):      # refused by the risk engine: r says why
                    ...

Callbacks (all optional):

``on_start(ctx, now_ns)``
    once, before the first market data reaches the strategy.
``on_book(ctx, instruments, now_ns)``
    the instruments (indices into the profile's instruments) whose consolidated books changed
    in this kernel step; only if ``wants_books``.
``on_trade(ctx, instruments, now_ns)``
    the instruments that traded on any venue in this step (``ctx.market.last_trade(i)``);
    only if ``wants_trades``.
``on_order(ctx, update, order)``
    every change to any order of the kernel (filter on ``order.cl_ord_id``): acks, fills
    (``update.last_qty``/``last_px``), cancels, rejects. Called while paused too, so the
    strategy's own state stays right.
``on_timer(ctx, now_ns)``
    when ``next_timer_ns()`` comes.
``on_pause(ctx, now_ns)`` / ``on_resume(ctx, now_ns)``
    a person paused or resumed it (``helmdesk ctl strategy pause NAME``, the desk), or the
    risk engine did (a HALTED kill switch in its scope). While paused, no ``on_book``,
    ``on_trade`` or ``on_timer``; a market maker pulls its quotes in ``on_pause``.
``on_stop(ctx, now_ns)``
    once, when the strategy is stopped or the engine ends: cancel what is working.

What the desk sees: ``state`` (kept by the host), ``figures()`` (up to eight named key
figures) and ``signals(n)`` (its ``n`` most interesting rows — a pairs strategy's pairs with
the largest |z| — as ``(label, a, b, c, d)`` with ``signal_columns`` naming a..d). A backtest's
report adds ``report_tables()`` (CSV tables: a pairs strategy's per-pair P&L).

A strategy is built from its ``[[strategies]]`` entry by ``from_config`` (see
``engine.strategy.registry``): parameters are read with ``config.reader()``, so a bad one is
refused naming the file, the entry and the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.core.intents import OrderIntent

__all__ = ["NEVER", "Strategy", "StrategyContext"]

NEVER = 1 << 62


class StrategyContext:
    """What a strategy may use: the door for intents, cancels, the books, its positions,
    notices."""

    __slots__ = ("market", "_submit", "_cancel", "_notify", "_now", "name", "source", "account",
                 "_position")

    def __init__(self, name: str, market: Any, submit: Callable, cancel: Callable,
                 notify: Callable[[int, str, int], None],
                 now: Callable[[], int] = lambda: 0, *, account: str = "",
                 position: Callable[[str, int], int] | None = None) -> None:
        self.name = name
        self.source = f"strategy:{name}"
        self.account = account
        self.market = market
        self._submit = submit
        self._cancel = cancel
        self._notify = notify
        self._now = now
        self._position = position

    @property
    def now_ns(self) -> int:
        """The time of the kernel's step being run (not a clock reading)."""
        return self._now()

    def submit(self, intent: OrderIntent, now_ns: int) -> Any:
        """Ask for an order; returns the order (or router parent), or why it was refused (a
        str). The intent is the strategy's ("strategy:NAME"): its limits, books and kill
        switch."""
        return self._submit(intent, now_ns, self.source)

    def cancel(self, cl_ord_id: str, now_ns: int) -> str | None:
        """Cancel an order (or a router parent); returns why not, or None."""
        return self._cancel(cl_ord_id, now_ns)

    def position(self, symbol: str) -> int:
        """The strategy's own position in ``symbol`` as the risk engine books it (fills)."""
        return self._position(self.name, symbol) if self._position is not None else 0

    def notify(self, level: int, text: str, instrument: int = -1) -> None:
        """A line for the desks' event log."""
        self._notify(level, f"{self.name}: {text}", instrument)


class Strategy:
    """Base class: override the callbacks you need (module docstring)."""

    #: the ``kind`` a profile names in ``[[strategies]]``
    kind = "strategy"
    #: its name (``[[strategies]] name``): its kill switch, limits and books are strategy:NAME
    name = "strategy"
    #: wants ``on_book`` (the kernel works out which books changed only if someone does)
    wants_books = False
    #: wants ``on_trade``
    wants_trades = False
    #: what ``signals`` rows' four numbers are
    signal_columns: tuple[str, str, str, str] = ("", "", "", "")

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

    @classmethod
    def from_config(cls, config, profile) -> Strategy:  # pragma: no cover - per kind
        """Build from a ``[[strategies]]`` entry (``engine.core.profile.StrategyConfig``)."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from a profile")

    def next_timer_ns(self) -> int:
        return NEVER

    def warm_up(self, market) -> None:
        """Compile (or load from numba's cache) what the strategy's callbacks would compile
        on first use, before the engine takes its start time: seconds on a fresh install.
        ``market``: the engine's market data, as ``ctx.market`` (default: nothing to do)."""

    def on_start(self, ctx: StrategyContext, now_ns: int) -> None:
        pass

    def on_book(self, ctx: StrategyContext, instruments, now_ns: int) -> None:
        pass

    def on_trade(self, ctx: StrategyContext, instruments, now_ns: int) -> None:
        pass

    def on_order(self, ctx: StrategyContext, update: Any, order: Any) -> None:
        pass

    def on_timer(self, ctx: StrategyContext, now_ns: int) -> None:
        pass

    def on_pause(self, ctx: StrategyContext, now_ns: int) -> None:
        pass

    def on_resume(self, ctx: StrategyContext, now_ns: int) -> None:
        pass

    def on_stop(self, ctx: StrategyContext, now_ns: int) -> None:
        pass

    # -- what the desk and the report read ----------------------------------------------------
    def figures(self) -> dict[str, float]:
        """Up to eight key figures for the desk (name -> value)."""
        return {}

    def signals(self, n: int) -> list[tuple[str, float, float, float, float]]:
        """The ``n`` most interesting rows for the desk (``signal_columns``)."""
        return []

    def report_tables(self) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
        """Tables for a backtest's report: file stem -> (columns, rows)."""
        return {}
