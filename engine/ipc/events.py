"""Reading event-ring records: text for most kinds, an order's state for ORDER records
(``engine.ipc.orders`` encodes and decodes those)."""

from __future__ import annotations

from engine.ipc.orders import OrderRecord, _str, decode_order

__all__ = ["OrderRecord", "decode_order", "event_text"]


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
