"""The ORDER event record: what the engine encodes is what a desk decodes, whatever a venue sent."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.ipc.layout import (
    EVENT_DTYPE,
    EVENT_STRUCT,
    ORDER_EVENT_STRUCT,
    ORDER_STATUS_NAMES,
    TIF_NAMES,
    EventKind,
)
from engine.ipc.orders import decode_order, encode_order
from engine.ipc.rings import EventRingWriter

SYMBOLS = ["AAA", "BBB"]
I32 = st.integers(-(2**31), 2**31 - 1)
PRICE = st.floats(allow_nan=False, allow_infinity=False)  # any finite float64, signs included


def _cut(text: str, n: int) -> str:
    return text.encode()[:n].decode("utf-8", "ignore")


def _fields(**kw):
    base = dict(cl_ord_id="E-1", venue="SIMA", side=1, status="New", tif="day", qty=100,
                cum_qty=0, leaves_qty=100, last_qty=0, price=100.25, avg_px=0.0, last_px=0.0,
                text="", unknown=False)
    base.update(kw)
    return base


def _record(payload: bytes, inst: int = 0) -> tuple:
    """As a desk reads it back: the EVENT_STRUCT tuple (seq, ts, kind, level, instrument, text)."""
    return EVENT_STRUCT.unpack(EVENT_STRUCT.pack(7, 123, EventKind.ORDER, 20, inst, payload))


@given(cl=st.text(max_size=40), venue=st.text(min_size=1, max_size=10),
       side=st.sampled_from([1, 2]), status=st.sampled_from(ORDER_STATUS_NAMES),
       tif=st.sampled_from(TIF_NAMES), qty=I32, cum=I32, leaves=I32, last=I32,
       price=st.one_of(st.none(), PRICE), avg=PRICE, last_px=PRICE, text=st.text(max_size=30),
       unknown=st.booleans(), inst=st.sampled_from([0, 1]))
def test_round_trip(cl, venue, side, status, tif, qty, cum, leaves, last, price, avg, last_px,
                    text, unknown, inst):
    payload = encode_order(cl_ord_id=cl, venue=venue, side=side, status=status, tif=tif, qty=qty,
                           cum_qty=cum, leaves_qty=leaves, last_qty=last, price=price,
                           avg_px=avg, last_px=last_px, text=text, unknown=unknown)
    assert len(payload) == ORDER_EVENT_STRUCT.size
    o = decode_order(_record(payload, inst), SYMBOLS)
    assert o is not None
    # fields are NUL-padded: a string's own trailing NULs cannot come back
    assert o.cl_ord_id == _cut(cl, 32).split("\0", 1)[0]
    assert o.venue == _cut(venue, 8).split("\0", 1)[0]
    assert o.text == _cut(text, 20).split("\0", 1)[0]
    assert (o.side, o.status, o.tif, o.unknown) == ("buy" if side == 1 else "sell", status, tif,
                                                     unknown)
    assert (o.qty, o.cum_qty, o.leaves_qty, o.last_qty) == (qty, cum, leaves, last)
    assert o.price == price and o.avg_px == avg and o.last_px == last_px
    assert o.symbol == SYMBOLS[inst] and o.ts_ns == 123


def test_a_venue_uuid_is_cut_to_the_field_without_raising():
    uuid = "3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a3b"  # 36 characters
    o = decode_order(_record(encode_order(**_fields(cl_ord_id=uuid))), SYMBOLS)
    assert o.cl_ord_id == uuid[:32]


def test_a_multibyte_character_at_the_cut_is_dropped_whole():
    text = "x" * 19 + "é"  # é is two bytes: byte 20 would be half of it
    o = decode_order(_record(encode_order(**_fields(text=text))), SYMBOLS)
    assert o.text == "x" * 19


def test_market_orders_and_odd_values_are_written_not_raised():
    o = decode_order(_record(encode_order(**_fields(price=None, qty=2**40, avg_px=math.nan,
                                                   last_px=math.inf, status="Weird"))), SYMBOLS)
    assert o.price is None and o.qty == 2**31 - 1 and o.avg_px == 0.0 and o.last_px == 0.0
    assert o.status == ORDER_STATUS_NAMES[0] and o.text == "status Weird"


def test_unknown_tif_and_quantities_below_int32_fall_back_as_documented():
    o = decode_order(_record(encode_order(**_fields(tif="gtc", cum_qty=-(2**40)))), SYMBOLS)
    assert o.tif == "day" and o.cum_qty == -(2**31)


def test_other_records_and_garbage_decode_to_none():
    assert decode_order(EVENT_STRUCT.unpack(EVENT_STRUCT.pack(1, 2, EventKind.LOG, 20, -1,
                                                              b"hello")), SYMBOLS) is None
    bad = bytearray(encode_order(**_fields()))
    bad[41] = 200  # status index out of range
    assert decode_order(_record(bytes(bad)), SYMBOLS) is None
    rng = np.random.default_rng(3)
    for _ in range(200):  # random payloads never raise
        decode_order(_record(rng.integers(0, 256, 104, dtype=np.uint8).tobytes()), SYMBOLS)


def test_through_the_event_ring_in_shared_memory_layout():
    """Written by the engine's ring writer, read as the desk's numpy view reads it."""
    buf = bytearray(128 + 16 * EVENT_DTYPE.itemsize)
    ring = EventRingWriter(memoryview(buf), 0, 16)
    payload = encode_order(**_fields(cl_ord_id="E-77", text="filled"))
    ring.publish(555, EventKind.ORDER, 20, 1, payload)
    row = ring.records[0]
    assert row["kind"] == EventKind.ORDER
    o = decode_order(row, SYMBOLS)
    assert (o.cl_ord_id, o.symbol, o.text, o.ts_ns, o.price) == ("E-77", "BBB", "filled", 555, 100.25)
