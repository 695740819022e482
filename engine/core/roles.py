"""Who may do what: the roles of DESIGN.md's people table."""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.IntEnum):
    VIEWER = 0  #: watches; sends nothing but PING
    TRADER = 1  #: may trip kill switches, never re-arm them
    RISK_MANAGER = 2  #: may trip and re-arm

    @classmethod
    def parse(cls, text: str) -> "Role":
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown role {text!r} (expected viewer, trader or risk_manager)"
            ) from None

    @property
    def label(self) -> str:
        return self.name.lower()
