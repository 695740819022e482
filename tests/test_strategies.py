"""The strategy stage: a timer set from any callback is honoured."""

from __future__ import annotations

from engine.strategy.api import NEVER, Strategy
from engine.strategy.host import Strategies


class _Timer(Strategy):
    def __init__(self) -> None:
        self.due = NEVER
        self.fired: list[int] = []

    def next_timer_ns(self) -> int:
        return self.due

    def on_order(self, ctx, update, order) -> None:
        self.due = 5_000  # heard of an order: act again at t = 5 µs

    def on_timer(self, ctx, now_ns: int) -> None:
        self.fired.append(now_ns)
        self.due = NEVER


def test_a_timer_set_when_an_order_changes_fires():
    s = _Timer()
    host = Strategies([s], None, submit=None, cancel=None, notify=None)
    host.start(0)
    assert host.next_due_ns == NEVER
    host.on_order(object(), object())
    assert host.next_due_ns == 5_000
    host.step(4_999)
    assert s.fired == []
    host.step(5_000)
    assert s.fired == [5_000] and host.next_due_ns == NEVER
