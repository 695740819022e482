"""The kernel's risk stage: the guard of the one door into execution.

Every order — a manual one, a strategy's, a scripted intent, each child the smart order router
sends — is checked here first (``check_intent``, ``check_child``); a refusal names its reason,
which reaches the desk and the CLI. A cancel is never checked. Today the checks are the kill
switches (global and per instrument); the risk issue adds the pre-trade chain (order size and
notional, price collar, position and exposure limits, throttles, self-match prevention, ...) as
more rows of the same table, in a fixed order.

Kill switches (``engine.risk.killswitch``) are kept here: tripping is never refused, re-arming
is (the command handler checks the role).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.core.intents import OrderIntent
from engine.core.profile import Profile
from engine.core.records import Scope
from engine.risk.killswitch import KillStateFile, KillSwitches

__all__ = ["RiskConfig", "RiskEngine"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskConfig:
    """The risk stage's settings: the instruments its switches cover."""

    symbols: tuple[str, ...]

    @classmethod
    def from_profile(cls, profile: Profile) -> RiskConfig:
        return cls(symbols=tuple(i.symbol for i in profile.instruments))


class RiskEngine:
    def __init__(self, config: RiskConfig, state: KillStateFile | None = None) -> None:
        """``state``: where the kill switches persist (a live node's file; None: memory)."""
        self.config = config
        self.index = {s: i for i, s in enumerate(config.symbols)}
        self.kill = KillSwitches(list(config.symbols), state)
        #: the pre-trade checks, in order: each returns why the order may not go, or None
        self.checks: list[Callable[[str, int, int, float | None], str | None]] = [
            self._check_kill_switches,
        ]
        self.counters = {"checked": 0, "refused": 0}

    # -- the door --------------------------------------------------------------------------------
    def check_intent(self, intent: OrderIntent) -> str | None:
        """Why ``intent`` may not go to execution, or None."""
        return self._run(intent.symbol, intent.side, intent.qty, intent.price)

    def check_child(self, venue: str, symbol: str, side: int, qty: int,
                    price: float | None) -> str | None:
        """Asked by the router before each child goes out."""
        return self._run(symbol, side, qty, price)

    def _run(self, symbol: str, side: int, qty: int, price: float | None) -> str | None:
        self.counters["checked"] += 1
        for check in self.checks:
            why = check(symbol, side, qty, price)
            if why is not None:
                self.counters["refused"] += 1
                return why
        return None

    # -- PRE-TRADE CHECKS --
    def _check_kill_switches(self, symbol: str, side: int, qty: int,
                             price: float | None) -> str | None:
        kill = self.kill
        if kill.global_tripped:
            return "the global kill switch is tripped"
        i = self.index.get(symbol)
        if i is not None and kill.is_tripped(Scope.INSTRUMENT, i):
            return f"the {symbol} kill switch is tripped"
        return None

    def close(self) -> None:
        self.kill.close()
