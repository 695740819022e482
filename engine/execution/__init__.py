"""Execution: the order state machine, the order manager, the smart order router, the venue
clients, and the kernel's execution stage (``ExecutionEngine``)."""

from engine.execution.oms import Oms, OrderUpdate
from engine.execution.orders import TRANSITIONS, ClOrdIds, Order, OrderEvent, OrdStatus

__all__ = ["ClOrdIds", "Oms", "Order", "OrderEvent", "OrderUpdate", "OrdStatus", "TRANSITIONS"]
