"""What a strategy or a person asks execution to do: an order intent, before any check."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUY", "SELL", "SIDE_NAMES", "ROUTER", "OrderIntent"]

BUY, SELL = 1, 2
SIDE_NAMES = {BUY: "buy", SELL: "sell"}
#: The venue of an intent the smart order router splits over the venues.
ROUTER = "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent:
    """One order to place: ``venue`` a venue's name, or ``ROUTER`` for the smart order router;
    ``price`` None for a market order. ``source`` says who asked ("manual:alice",
    "strategy:pairs", "script", "risk:flatten"): the risk engine's checks, its books and the
    audit trail use it; ``account`` the account it is booked to ("": the desk's account)."""

    symbol: str
    side: int
    qty: int
    price: float | None = None
    venue: str = ROUTER
    tif: str = "day"
    source: str = "manual"
    account: str = ""
