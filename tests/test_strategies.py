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


# -- states: a person pauses, resumes, stops; the risk engine halts ----------------------------
from engine.core.intents import OrderIntent  # noqa: E402
from engine.core.records import KillState, Scope  # noqa: E402
from engine.strategy.host import StrategyState  # noqa: E402
from tests.risk._desk import Desk  # noqa: E402


class _Bidder(Strategy):
    """Keeps one bid working in AAA; counts its callbacks."""

    name = "s1"
    wants_books = True

    def __init__(self) -> None:
        self.books = 0
        self.calls: list[str] = []
        self.order = None

    def on_book(self, ctx, instruments, now_ns) -> None:
        self.books += 1
        if self.order is None or isinstance(self.order, str):  # until the venue is up
            self.order = ctx.submit(OrderIntent(symbol="AAA", side=1, qty=5, price=99.0,
                                                venue="SIMA"), now_ns)

    def on_pause(self, ctx, now_ns) -> None:
        self.calls.append("pause")

    def on_resume(self, ctx, now_ns) -> None:
        self.calls.append("resume")

    def on_stop(self, ctx, now_ns) -> None:
        self.calls.append("stop")


def _desk_with_bidder():
    s = _Bidder()
    d = Desk({"duplicate_window_ms": 0}, strategies=[s])
    d.quote("AAA", 100.5)
    d.run(0.01)
    return s, d


def test_a_paused_strategy_hears_no_books_until_resumed():
    s, d = _desk_with_bidder()
    host = d.kernel.strategies
    assert host.state("s1") is StrategyState.RUNNING and s.books > 0
    assert host.user_pause("s1", d.t) is None
    assert host.state("s1") is StrategyState.PAUSED and s.calls == ["pause"]
    assert host.user_pause("s1", d.t) == "strategy s1 is already paused"
    seen = s.books
    d.quote("AAA", 100.6)
    d.run(0.01)
    assert s.books == seen
    assert host.resume("s1", d.t) is None and s.calls == ["pause", "resume"]
    d.quote("AAA", 100.7)
    d.run(0.01)
    assert s.books > seen
    assert host.resume("s1", d.t) == "strategy s1 is not paused"
    assert "no strategy 'zz'" in host.user_pause("zz", d.t)


def test_resume_does_not_lift_a_halted_kill_switch():
    s, d = _desk_with_bidder()
    host = d.kernel.strategies
    row = d.risk.table.row(Scope.STRATEGY, 0)
    d.risk.trip(row, KillState.HALTED, "rita", "stop it", d.t)
    assert host.state("s1") is StrategyState.HALTED
    assert "re-arm it" in host.resume("s1", d.t)
    host.user_pause("s1", d.t)  # paused by a person too: re-arming leaves it paused
    d.risk.trip(row, KillState.ACTIVE, "rita", "fixed", d.t)
    assert host.state("s1") is StrategyState.PAUSED
    host.resume("s1", d.t)
    assert host.state("s1") is StrategyState.RUNNING


def test_stop_cancels_its_working_orders_and_is_final():
    s, d = _desk_with_bidder()
    host = d.kernel.strategies
    d.quote("AAA", 100.6)
    d.run(0.01)
    assert s.order is not None and not isinstance(s.order, str)
    assert d.working()  # its bid rests at SIMA
    assert host.stop_one("s1", d.t) is None
    assert s.calls == ["stop"] and host.state("s1") is StrategyState.STOPPED
    d.run(0.01)
    assert not d.working()
    assert "is stopped" in host.resume("s1", d.t)
    d.kernel.stop(d.t)
    assert s.calls == ["stop"]  # on_stop once
