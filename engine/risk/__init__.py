"""Risk: the kernel's risk stage (the guard of the door into execution) and kill switches."""

from engine.risk.engine import RiskConfig, RiskEngine
from engine.risk.killswitch import KillStateFile, KillSwitches

__all__ = ["KillStateFile", "KillSwitches", "RiskConfig", "RiskEngine"]
