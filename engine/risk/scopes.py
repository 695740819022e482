"""The engine's scope table: every instrument, strategy, venue, account and trader it knows,
each with a number (``scope_id``) and a name ("strategy:pairs").

Kill switches have one row per scope (row 0 global, then each kind in ``KINDS`` order), the
desk's kill panel and ``helmdesk ctl`` name scopes the same way, and commands carry
``(scope, scope_id)``. The table is fixed when the engine starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.core.profile import Profile
from engine.core.records import SCOPE_NAMES, Scope

__all__ = ["KINDS", "ScopeTable"]

#: The kinds of scope with rows of their own, in row order after the global row.
KINDS = (Scope.INSTRUMENT, Scope.STRATEGY, Scope.VENUE, Scope.ACCOUNT, Scope.TRADER)
_BY_NAME = {v: k for k, v in SCOPE_NAMES.items()}


class ScopeTable:
    def __init__(self, instruments: Sequence[str], strategies: Sequence[str] = (),
                 venues: Sequence[str] = (), accounts: Sequence[str] = (),
                 traders: Sequence[str] = ()) -> None:
        self.names: dict[Scope, list[str]] = {
            Scope.INSTRUMENT: list(instruments), Scope.STRATEGY: _unique(strategies),
            Scope.VENUE: list(venues), Scope.ACCOUNT: _unique(accounts),
            Scope.TRADER: _unique(traders)}
        self.ids: dict[Scope, dict[str, int]] = {
            k: {n: i for i, n in enumerate(v)} for k, v in self.names.items()}
        self.offset: dict[Scope, int] = {Scope.GLOBAL: 0}
        row = 1
        for kind in KINDS:
            self.offset[kind] = row
            row += len(self.names[kind])
        self.n_rows = row

    @classmethod
    def from_profile(cls, profile: Profile, strategies: Sequence[str] = ()) -> ScopeTable:
        """Instruments and venues from the profile; strategies: those running plus those with
        limits; accounts: the desk's and those with limits; traders: the OS users of
        ``[users]`` (not ``*``)."""
        lim = profile.limits.scoped
        return cls([i.symbol for i in profile.instruments],
                   list(strategies) + sorted(lim.get("strategy", {})),
                   [v.name for v in profile.venues],
                   [profile.desk.account] + sorted(lim.get("account", {})),
                   sorted(u for u in profile.users if u != "*"))

    def sizes(self) -> dict[int, int]:
        """Scope kind -> how many this engine has (what commands may name)."""
        return {k: len(v) for k, v in self.names.items()}

    def row(self, scope: int, scope_id: int = 0) -> int:
        """The kill-switch row of a scope (``scope_id`` must be valid: see ``check``)."""
        return 0 if scope == Scope.GLOBAL else self.offset[scope] + scope_id

    def check(self, scope: int, scope_id: int) -> str | None:
        """Why ``(scope, scope_id)`` names nothing here, or None."""
        try:
            kind = Scope(scope)
        except ValueError:
            return (f"bad scope {scope} (expected "
                    + ", ".join(f"{int(k)}={n}" for k, n in SCOPE_NAMES.items()) + ")")
        if kind is Scope.GLOBAL:
            return None if scope_id == 0 else f"bad scope id {scope_id} for global scope " \
                                              f"(must be 0)"
        n = len(self.names[kind])
        if not 0 <= scope_id < n:
            what = SCOPE_NAMES[kind]
            return f"unknown {what} id {scope_id} (engine has {n} {what}s)"
        return None

    def name(self, scope: int, scope_id: int = 0) -> str:
        """"global", "instrument:ESZ6", "strategy:pairs", ..."""
        if scope == Scope.GLOBAL:
            return "global"
        return f"{SCOPE_NAMES[Scope(scope)]}:{self.names[Scope(scope)][scope_id]}"

    def parse(self, text: str) -> tuple[int, int]:
        """"global" or "KIND:NAME" -> (scope, scope_id); ``ValueError`` naming what is wrong."""
        text = text.strip()
        if text == "global":
            return Scope.GLOBAL, 0
        kind_name, sep, name = text.partition(":")
        kind = _BY_NAME.get(kind_name)
        if not sep or kind is None or kind is Scope.GLOBAL:
            raise ValueError(f"scope {text!r} must be 'global' or KIND:NAME with KIND one of "
                             f"{', '.join(SCOPE_NAMES[k] for k in KINDS)}")
        i = self.ids[kind].get(name)
        if i is None:
            known = ", ".join(self.names[kind]) or "none"
            raise ValueError(f"no {kind_name} {name!r} in this engine (it has: {known})")
        return kind, i

    def rows(self) -> list[tuple[int, int, str]]:
        """(scope, scope_id, name) of every row, in row order."""
        out = [(Scope.GLOBAL, 0, "global")]
        for kind in KINDS:
            out += [(kind, i, self.name(kind, i)) for i in range(len(self.names[kind]))]
        return out


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))
