"""The ORDER event record: an order's whole state after a change, both directions, one place.

The engine's publisher encodes one with ``encode_order`` for every order update; desks and
``helmdesk ctl`` decode it with ``decode_order``. The payload is ``layout.ORDER_EVENT_STRUCT``
(104 bytes, the event record's text field)::

    cl_ord_id 32s · venue 8s · side u1 (1 buy, 2 sell) · status u1 (index in
    ORDER_STATUS_NAMES) · flags u1 (ORDER_UNKNOWN, ORDER_MARKET) · tif u1 (index in TIF_NAMES)
    · qty i4 · cum_qty i4 · leaves_qty i4 · last_qty i4 · price f8 · avg_px f8 · last_px f8
    · text 20s

Encoding never raises on what a venue can send:

- identifiers and text longer than their fields are cut at a character boundary (the desk
  shows what fits; the database keeps them whole);
- a status the layout does not know is written as index 0 ("PendingNew") and the record's
  text becomes ``status <name>`` in its place, so the desk sees why;
- a time in force the layout does not know is written as "day";
- quantities outside int32 are clamped to its bounds;
- a price that is not finite (NaN, infinity) is written as 0.0;
- a side other than 1 or 2 is written as 0, which ``decode_order`` refuses: the record is
  skipped by desks rather than shown with a made-up side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.ipc.layout import (
    ORDER_EVENT_STRUCT,
    ORDER_MARKET,
    ORDER_STATUS_NAMES,
    ORDER_UNKNOWN,
    TIF_NAMES,
    EventKind,
)

__all__ = ["OrderRecord", "decode_order", "encode_order"]

_STATUS_INDEX = {name: i for i, name in enumerate(ORDER_STATUS_NAMES)}
_TIF_INDEX = {name: i for i, name in enumerate(TIF_NAMES)}
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
_pack = ORDER_EVENT_STRUCT.pack
_unpack = ORDER_EVENT_STRUCT.unpack
_SIZE = ORDER_EVENT_STRUCT.size


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


def _cut(text: str, n: int) -> bytes:
    """At most ``n`` bytes of UTF-8, never half a character."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= n:
        return raw
    return raw[:n].decode("utf-8", "ignore").encode("utf-8")


def _i32(v: int) -> int:
    return _I32_MIN if v < _I32_MIN else _I32_MAX if v > _I32_MAX else v


def _f(v: float) -> float:
    return v if math.isfinite(v) else 0.0


def encode_order(*, cl_ord_id: str, venue: str, side: int, status: str, tif: str, qty: int,
                 cum_qty: int, leaves_qty: int, last_qty: int, price: float | None,
                 avg_px: float, last_px: float, text: str, unknown: bool) -> bytes:
    """The ORDER payload (module docstring). Never raises on field values."""
    st = _STATUS_INDEX.get(status)
    if st is None:
        st, text = 0, f"status {status}"
    flags = (ORDER_UNKNOWN if unknown else 0) | (ORDER_MARKET if price is None else 0)
    return _pack(_cut(cl_ord_id, 32), _cut(venue, 8), side if side in (1, 2) else 0, st, flags,
                 _TIF_INDEX.get(tif, 0), _i32(qty), _i32(cum_qty), _i32(leaves_qty),
                 _i32(last_qty), 0.0 if price is None else _f(price), _f(avg_px), _f(last_px),
                 _cut(text, 20))


def _str(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def decode_order(rec, symbols: list[str]) -> OrderRecord | None:
    """An ORDER record (an EVENT_DTYPE row or an EVENT_STRUCT tuple) -> OrderRecord.

    None if it is not an ORDER record or its payload cannot be read (a newer engine's
    record, garbage): readers skip it rather than fail."""
    try:
        if isinstance(rec, tuple):
            _seq, ts, kind, _level, inst, payload = rec
        else:
            ts, kind, inst = int(rec["ts_ns"]), int(rec["kind"]), int(rec["instrument"])
            payload = bytes(rec["text"])
        if kind != EventKind.ORDER:
            return None
        payload = bytes(payload).ljust(_SIZE, b"\0")[:_SIZE]  # numpy strips trailing NULs
        (cl, venue, side, status, flags, tif, qty, cum, leaves, last_qty, price, avg_px,
         last_px, text) = _unpack(payload)
    except (TypeError, ValueError, KeyError, IndexError):
        return None
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
