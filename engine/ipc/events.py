"""Reading event-ring records: text for most kinds, an order's state for ORDER records."""

from __future__ import annotations

from dataclasses import dataclass

from engine.ipc.layout import (
    ORDER_EVENT_STRUCT,
    ORDER_MARKET,
    ORDER_STATUS_NAMES,
    ORDER_UNKNOWN,
    TIF_NAMES,
    EventKind,
)

__all__ = ["OrderRecord", "decode_order", "event_text"]


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One order's state after a change, as an ORDER record carries it."""

    cl_ord_id: str
    venue: str
    symbol: str
    side: str  # "buy" | "sell"
    status: str  # an OrdStatus name: "New", "PartiallyFilled", ...
    tif: str
    qty: int
    cum_qty: int
    leaves_qty: int
    last_qty: int  # this change's fill (0: no fill)
    price: float | None  # None: a market order
    avg_px: float
    last_px: float
    text: str
    unknown: bool  # the venue's session dropped while it was live: state in doubt
    ts_ns: int = 0


def _str(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def decode_order(rec, symbols: list[str]) -> OrderRecord | None:
    """An ORDER record (an EVENT_DTYPE row or an EVENT_STRUCT tuple) -> OrderRecord.

    None if it is not an ORDER record or its payload cannot be read (a newer engine's
    record, say): readers skip it rather than fail."""
    if isinstance(rec, tuple):
        _seq, ts, kind, _level, inst, payload = rec
    else:
        ts, kind, inst, payload = int(rec["ts_ns"]), int(rec["kind"]), int(rec["instrument"]), bytes(rec["text"])
    if kind != EventKind.ORDER:
        return None
    payload = payload.ljust(ORDER_EVENT_STRUCT.size, b"\0")  # numpy strips trailing NULs
    (cl, venue, side, status, flags, tif, qty, cum, leaves, last_qty, price, avg_px, last_px,
     text) = ORDER_EVENT_STRUCT.unpack(payload)
    if status >= len(ORDER_STATUS_NAMES) or side not in (1, 2):
        return None
    return OrderRecord(
        cl_ord_id=_str(cl), venue=_str(venue),
        symbol=symbols[inst] if 0 <= inst < len(symbols) else f"#{inst}",
        side="buy" if side == 1 else "sell", status=ORDER_STATUS_NAMES[status],
        tif=TIF_NAMES[tif] if tif < len(TIF_NAMES) else "?",
        qty=qty, cum_qty=cum, leaves_qty=leaves, last_qty=last_qty,
        price=None if flags & ORDER_MARKET else price, avg_px=avg_px, last_px=last_px,
        text=_str(text), unknown=bool(flags & ORDER_UNKNOWN), ts_ns=ts,
    )


def event_text(rec, symbols: list[str]) -> str:
    """A one-line description of any record, for logs and terminals."""
    o = decode_order(rec, symbols)
    if o is not None:
        fill = f" filled {o.last_qty} @ {o.last_px:g}" if o.last_qty else ""
        state = "UNKNOWN" if o.unknown else o.status
        at = "MKT" if o.price is None else f"{o.price:g}"
        tail = f" ({o.text})" if o.text else ""
        return (f"{o.cl_ord_id} {o.venue} {o.side} {o.qty} {o.symbol} @ {at}: {state}"
                f"{fill}, {o.cum_qty} done, {o.leaves_qty} left{tail}")
    raw = bytes(rec[5] if isinstance(rec, tuple) else rec["text"])
    return _str(raw)
