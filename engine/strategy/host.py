"""The kernel's strategy stage: runs each strategy's callbacks in a fixed order, and keeps each
strategy's state.

States (``StrategyState``): RUNNING; PAUSED by a person (``pause``/``resume``: the desk,
``helmdesk ctl strategy``); HALTED, paused by the risk engine because a kill switch in its
scope (the strategy's own or the global one) is HALTED — it resumes when the switch is
re-armed, unless a person paused it too; STOPPED (``stop``: ``on_stop`` ran, its working orders
were cancelled; final until the engine restarts). A paused or stopped strategy's ``on_book``,
``on_trade`` and ``on_timer`` are not called; ``on_order`` still is while paused (its own
state stays right), never once stopped.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence

import numpy as np

from engine.strategy.api import NEVER, Strategy, StrategyContext

__all__ = ["Strategies", "StrategyState"]

log = logging.getLogger("helmdesk.strategy")


class StrategyState(enum.IntEnum):
    RUNNING = 0
    PAUSED = 1   #: by a person
    HALTED = 2   #: by the risk engine (a HALTED kill switch in its scope)
    STOPPED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Strategies:
    """The strategies of one kernel, each with its context (``submit`` is the kernel's door)."""

    def __init__(self, strategies: Sequence[Strategy], market, submit: Callable,
                 cancel: Callable, notify: Callable[[int, str, int], None],
                 now: Callable[[], int] = lambda: 0, *, accounts: Sequence[str] = (),
                 position: Callable[[str, str], int] | None = None,
                 cancel_all: Callable[[str, int], int] | None = None) -> None:
        self.strategies = list(strategies)
        accounts = list(accounts) + [""] * (len(self.strategies) - len(accounts))
        self.contexts = [StrategyContext(s.name, market, submit, cancel, notify, now,
                                         account=a, position=position)
                         for s, a in zip(self.strategies, accounts)]
        self.index = {s.name: k for k, s in enumerate(self.strategies)}
        #: each strategy's id in the risk engine's strategy scope (the kernel sets it)
        self.scope_ids: dict[str, int] = dict(self.index)
        self.market = market
        self._notify = notify
        self._cancel_all = cancel_all
        self.wants_books = any(s.wants_books for s in self.strategies)
        self.wants_trades = any(s.wants_trades for s in self.strategies)
        self._seen = market.new_seen() if market is not None and self.wants_books else None
        self._trades_seen = self._trade_counts() if self.wants_trades else None
        self._applied = -1
        self.next_due_ns = NEVER
        self.user_paused: set[str] = set()  #: paused by a person
        self.paused: set[str] = set()  #: paused by the risk engine (a HALTED scope)
        self.stopped: set[str] = set()
        self._idle: set[str] = set()  #: not called: paused by anyone, or stopped
        self._awake = list(self.strategies)  #: the others, in order (``_due`` reads them)
        self.version = 0  #: bumps on every state change (the publisher's cue)

    def __len__(self) -> int:
        return len(self.strategies)

    # -- states --------------------------------------------------------------------------------
    def state(self, name: str) -> StrategyState:
        if name in self.stopped:
            return StrategyState.STOPPED
        if name in self.user_paused:
            return StrategyState.PAUSED
        if name in self.paused:
            return StrategyState.HALTED
        return StrategyState.RUNNING

    def pause(self, names: set[str]) -> None:
        """The risk engine: exactly these strategies are paused by a HALTED scope."""
        self._change(lambda: setattr(self, "paused", set(names)))

    def user_pause(self, name: str, now_ns: int) -> str | None:
        """A person pauses ``name``; returns why not, or None."""
        why = self._known(name)
        if why is None and name in self.user_paused:
            why = f"strategy {name} is already paused"
        if why is None:
            self._change(lambda: self.user_paused.add(name), now_ns)
        return why

    def resume(self, name: str, now_ns: int) -> str | None:
        why = self._known(name)
        if why is None and name not in self.user_paused:
            why = (f"strategy {name} is paused by a HALTED kill switch: re-arm it"
                   if name in self.paused else f"strategy {name} is not paused")
        if why is None:
            self._change(lambda: self.user_paused.discard(name), now_ns)
        return why

    def stop_one(self, name: str, now_ns: int) -> str | None:
        """Stop ``name`` for good: ``on_stop``, then its working orders are cancelled."""
        why = self._known(name)
        if why is not None:
            return why
        k = self.index[name]
        self._change(lambda: self.stopped.add(name), now_ns, stopping=k)
        return None

    def _known(self, name: str) -> str | None:
        if name not in self.index:
            return (f"no strategy {name!r} (this engine runs "
                    f"{', '.join(self.index) or 'no strategies'})")
        if name in self.stopped:
            return f"strategy {name} is stopped (a restart starts it again)"
        return None

    def _change(self, apply: Callable[[], None], now_ns: int | None = None,
                stopping: int = -1) -> None:
        before = {s.name: s.name in self._idle for s in self.strategies}
        apply()
        self._set_idle()
        self.version += 1
        if now_ns is None:
            now_ns = self.contexts[0]._now() if self.contexts else 0
        for k, (s, ctx) in enumerate(zip(self.strategies, self.contexts)):
            if k == stopping:
                self._stop(k, now_ns)
                continue
            idle = s.name in self._idle
            if idle == before[s.name] or s.name in self.stopped:
                continue
            try:
                (s.on_pause if idle else s.on_resume)(ctx, now_ns)
            except Exception:
                log.exception("strategy %s: on_%s failed", s.name, "pause" if idle else "resume")
        self._due()

    def _stop(self, k: int, now_ns: int) -> None:
        s, ctx = self.strategies[k], self.contexts[k]
        try:
            s.on_stop(ctx, now_ns)
        except Exception:
            log.exception("strategy %s: on_stop failed", s.name)
        if self._cancel_all is not None:
            self._cancel_all(s.name, now_ns)

    # -- the stage -----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Each strategy's ``warm_up`` (before the start time is taken)."""
        for s, ctx in zip(self.strategies, self.contexts):
            s.warm_up(ctx.market)

    def start(self, now_ns: int, paused: Sequence[str] = ()) -> None:
        """``on_start`` each; ``paused``: strategies that start paused (``enabled = false``)."""
        self.user_paused |= set(paused)
        self._set_idle()
        for s, ctx in zip(self.strategies, self.contexts):
            s.on_start(ctx, now_ns)
        self._due()

    def step(self, now_ns: int) -> None:
        """Books that changed this step, trades, then timers that are due."""
        idle = self._idle
        market = self.market
        if (self._seen is not None or self._trades_seen is not None) \
                and market.applied != self._applied:
            self._applied = market.applied
            if self._seen is not None:
                changed = market.changed(self._seen)
                if len(changed):
                    for s, ctx in zip(self.strategies, self.contexts):
                        if s.wants_books and s.name not in idle:
                            s.on_book(ctx, changed, now_ns)
            if self._trades_seen is not None:
                counts = self._trade_counts()
                traded = np.flatnonzero(counts != self._trades_seen)
                if len(traded):
                    self._trades_seen = counts
                    for s, ctx in zip(self.strategies, self.contexts):
                        if s.wants_trades and s.name not in idle:
                            s.on_trade(ctx, traded, now_ns)
            self._due()  # a callback may set a timer
        if now_ns >= self.next_due_ns:
            for s, ctx in zip(self.strategies, self.contexts):
                if now_ns >= s.next_timer_ns() and s.name not in idle:
                    s.on_timer(ctx, now_ns)
            self._due()

    def on_order(self, update, order) -> None:
        stopped = self.stopped
        for s, ctx in zip(self.strategies, self.contexts):
            if s.name not in stopped:
                s.on_order(ctx, update, order)
        self._due()  # a strategy may set a timer when it hears of its order

    def stop(self, now_ns: int) -> None:
        """The engine ends: ``on_stop`` for every strategy not stopped yet."""
        for s, ctx in zip(self.strategies, self.contexts):
            if s.name not in self.stopped:
                s.on_stop(ctx, now_ns)

    def rows(self) -> list[tuple[str, str, StrategyState, dict[str, float]]]:
        """(name, kind, state, figures) per strategy, for the desks."""
        out = []
        for s in self.strategies:
            try:
                figures = s.figures()
            except Exception:
                log.exception("strategy %s: figures() failed", s.name)
                figures = {}
            out.append((s.name, s.kind, self.state(s.name), figures))
        return out

    def _set_idle(self) -> None:
        idle = self._idle = self.user_paused | self.paused | self.stopped
        self._awake = [s for s in self.strategies if s.name not in idle]

    def _due(self) -> None:
        # after every step with market data and every order update: a plain loop, no
        # generator, no set lookups
        nxt = NEVER
        for s in self._awake:
            t = s.next_timer_ns()
            if t < nxt:
                nxt = t
        self.next_due_ns = nxt

    def _trade_counts(self) -> np.ndarray:
        return self.market.books.venue["trades"].sum(axis=0)
