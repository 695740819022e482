"""Execution: the order state machine (OMS and smart order router come next)."""

from engine.execution.orders import TRANSITIONS, ClOrdIds, Order, OrderEvent, OrdStatus

__all__ = ["ClOrdIds", "Order", "OrderEvent", "OrdStatus", "TRANSITIONS"]
