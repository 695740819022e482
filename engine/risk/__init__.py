"""Risk: kill switches (pre-trade checks, P&L, VaR and de-risking come with later issues)."""

from engine.risk.killswitch import KillSwitches

__all__ = ["KillSwitches"]
