"""Execution: the order state machine and the order manager (the router comes next)."""

from engine.execution.oms import Oms, OrderUpdate
from engine.execution.orders import TRANSITIONS, ClOrdIds, Order, OrderEvent, OrdStatus

__all__ = ["ClOrdIds", "Oms", "Order", "OrderEvent", "OrderUpdate", "OrdStatus", "TRANSITIONS"]
