"""Who may do what: the roles of DESIGN.md's people table.

A profile's ``[users]`` grants each OS user one role, or a set of two written
``"trader,risk_manager"`` (a one-person desk, the demo): ``TRADER_RISK_MANAGER`` may do what
either may.
"""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.IntEnum):
    VIEWER = 0  #: watches; sends nothing but PING
    TRADER = 1  #: trades and cancels; may trip kill switches, never re-arm them
    RISK_MANAGER = 2  #: trips and re-arms kill switches, sets limits, cancels; does not trade
    TRADER_RISK_MANAGER = 3  #: both (a one-person desk)

    @classmethod
    def parse(cls, text: str) -> "Role":
        """"trader", "risk_manager", "viewer", or "trader,risk_manager" (either order)."""
        parts = sorted({p.strip().lower() for p in text.replace("+", ",").split(",")})
        if parts == ["risk_manager", "trader"]:
            return cls.TRADER_RISK_MANAGER
        if len(parts) == 1 and parts[0] in ("viewer", "trader", "risk_manager"):
            return cls[parts[0].upper()]
        raise ValueError(f"unknown role {text!r} (expected viewer, trader, risk_manager or "
                         f"\"trader,risk_manager\")")

    @property
    def label(self) -> str:
        return "trader+risk_manager" if self is Role.TRADER_RISK_MANAGER else self.name.lower()

    @property
    def trades(self) -> bool:
        return self in (Role.TRADER, Role.TRADER_RISK_MANAGER)

    @property
    def manages_risk(self) -> bool:
        """May re-arm kill switches and change limits."""
        return self in (Role.RISK_MANAGER, Role.TRADER_RISK_MANAGER)
