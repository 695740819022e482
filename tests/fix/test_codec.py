"""The FIX codec held against simplefix, and the decoder against everything a socket can send."""

from __future__ import annotations

import calendar
import datetime as dt
import random
from decimal import Decimal

import pytest
import simplefix
import simplefix.data
from hypothesis import HealthCheck, example, given, settings, strategies as st

from engine.fix import (
    FixDecodeError,
    FixDecoder,
    FixEncodeError,
    FixFieldError,
    FixGarbled,
    FixMessage,
    GarbleKind,
    SessionRejectReason,
    TimestampError,
    checksum,
    decode,
    encode,
    encode_new_order_single,
    parse_utc_timestamp,
    utc_timestamp,
)
from engine.fix.codec import frame as frame_fields
from engine.fix.tags import GROUP_MEMBERS, HEADER_TAGS, NUM_IN_GROUP_TAGS, RAW_DATA_TAGS

R = SessionRejectReason
T0 = 1_700_000_000_123_456_789  # 2023-11-14 22:13:20.123456789 UTC


def er(seq: int = 7, **kw) -> bytes:
    body = [(37, b"O1"), (11, b"C1"), (17, b"E1"), (150, b"F"), (39, b"1"), (55, b"AAPL"),
            (54, b"1"), (38, 100), (32, 40), (31, b"190.25"), (151, 60), (14, 40), (6, 190.25)]
    return encode(b"8", body, sender=b"SIMA", target=b"HELM", seq=seq, sending_time_ns=T0, **kw)


def events(data: bytes | list[bytes], **kw) -> list[FixMessage | FixGarbled]:
    """Every event a fresh decoder gives for ``data`` (one chunk or a list of chunks)."""
    dec = FixDecoder(**kw)
    out: list[FixMessage | FixGarbled] = []
    for chunk in [data] if isinstance(data, bytes) else data:
        dec.feed(chunk)
        while (ev := dec.next()) is not None:
            out.append(ev)
            assert len(out) < 100_000, "the decoder keeps returning events"
    return out


def summary(evs: list[FixMessage | FixGarbled]) -> list[tuple]:
    """Events as comparable tuples (a message by its bytes, an error by all it says)."""
    out = []
    for e in evs:
        if isinstance(e, FixMessage):
            out.append(("msg", e.raw))
        else:
            assert not e.reason.startswith("decoder error"), e  # a bug, not bad input
            out.append((e.kind, e.reason, e.raw, e.ref_seq, e.ref_tag, e.session_reject_reason))
    return out


def frame(body: bytes, *, begin: bytes = b"FIX.4.4", blen: int | None = None,
          cs: int | None = None) -> bytes:
    """Hand-made message around ``body`` (from 35= to its last SOH), optionally broken."""
    head = b"8=%s\x019=%d\x01" % (begin, len(body) if blen is None else blen)
    msg = head + body
    return msg + b"10=%03d\x01" % (checksum(msg) if cs is None else cs)


HDR = b"35=8\x0149=SIMA\x0156=HELM\x0134=12\x0152=20231114-22:13:20.123\x01"


# -- strategies --------------------------------------------------------------------------------
# tags a random body must not use: the header's, group counts and members, data fields (ours,
# and FIX 5.0's that simplefix's parser treats as data)
_RESERVED = (HEADER_TAGS | NUM_IN_GROUP_TAGS | set(RAW_DATA_TAGS) | set(RAW_DATA_TAGS.values())
             | GROUP_MEMBERS[268] | set(simplefix.data.RAW_LEN_TAGS)
             | set(simplefix.data.RAW_DATA_TAGS) | {10})
body_tags = st.integers(1, 9999).filter(lambda t: t not in _RESERVED)
text = st.binary(min_size=1, max_size=12).filter(lambda b: b"\x01" not in b)
ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
                     max_size=12)
plain_float = st.floats(-1e9, 1e9, allow_nan=False).filter(lambda x: "e" not in repr(x))
values = st.one_of(text, ascii_text, st.integers(-10**12, 10**12), plain_float)
msg_types = st.one_of(st.sampled_from([b"0", b"1", b"2", b"3", b"4", b"5", b"A", b"D", b"F",
                                       b"G", b"H", b"8", b"9", b"V", b"W", b"X", b"j"]),
                      st.binary(min_size=1, max_size=2).filter(
                          lambda b: b"\x01" not in b and b"=" not in b))


@st.composite
def bodies(draw, groups: bool = True, data: bool = True) -> list[tuple[int, object]]:
    """Unique body tags in a random order, maybe a data field, maybe an MD group at the end."""
    tags = draw(st.lists(body_tags, max_size=15, unique=True))
    body: list[tuple[int, object]] = [(t, draw(values)) for t in tags]
    if data and draw(st.booleans()):
        blob = draw(st.binary(min_size=1, max_size=20))
        at = draw(st.integers(0, len(body)))
        body[at:at] = [(95, len(blob)), (96, blob)]
    if groups and draw(st.booleans()):
        n = draw(st.integers(1, 4))
        body.append((268, n))
        for _ in range(n):
            body += [(279, draw(st.sampled_from([b"0", b"1", b"2"]))),
                     (269, draw(st.sampled_from([b"0", b"1"]))),
                     (270, draw(plain_float)), (271, draw(st.integers(1, 10**6)))]
    return body


def simplefix_encode(msg_type, body, sender, target, seq, ts_ns, extra=()) -> bytes:
    m = simplefix.FixMessage()
    m.append_pair(8, b"FIX.4.4")
    m.append_pair(35, msg_type)
    m.append_pair(49, sender)
    m.append_pair(56, target)
    m.append_pair(34, seq)
    m.append_pair(52, utc_timestamp(ts_ns))
    for t, v in [*extra, *body]:
        m.append_pair(t, v)
    return m.encode()


def simplefix_pairs(raw: bytes) -> list[tuple[int, bytes]]:
    p = simplefix.FixParser()
    p.append_buffer(raw)
    m = p.get_message()
    assert m is not None and p.get_message() is None
    return [(int(t), v) for t, v in m.pairs]


timestamps = st.integers(0, 253402300799_999_999_999)  # up to 9999-12-31 23:59:59.999…


# -- against simplefix -------------------------------------------------------------------------
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(msg_types, bodies(), text, text, st.integers(1, 2**31 - 1), timestamps,
       st.booleans())
def test_encode_is_byte_for_byte_what_simplefix_makes(mt, body, sender, target, seq, ts, resend):
    extra = [(43, b"Y"), (122, utc_timestamp(ts - 10**9))] if resend and ts >= 10**9 else []
    ours = encode(mt, body, sender=sender, target=target, seq=seq, sending_time_ns=ts,
                  extra_header=extra)
    assert ours == simplefix_encode(mt, body, sender, target, seq, ts, extra)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(msg_types, bodies(), text, text, st.integers(1, 2**31 - 1), timestamps)
def test_decode_of_simplefix_bytes_gives_simplefix_fields(mt, body, sender, target, seq, ts):
    raw = simplefix_encode(mt, body, sender, target, seq, ts)
    m = decode(raw)
    assert m.fields == simplefix_pairs(raw)
    assert m.raw == raw
    assert m.msg_type == mt and m.seq == seq and not m.poss_dup
    assert m.get(49) == sender and m.get(56) == target
    assert parse_utc_timestamp(m.get(52)) == ts // 1_000_000 * 1_000_000
    for t, v in body:
        if t not in GROUP_MEMBERS[268]:
            assert m.get(t) == m.to_simplefix().get(t)
    n = dict(body).get(268)
    if n is not None:
        entries = m.groups(268)
        assert len(entries) == n
        want = [dict((t, simplefix.message.fix_val(v)) for t, v in body[i:i + 4])
                for i in range(len(body) - 4 * n, len(body), 4)]
        assert entries == want


@settings(max_examples=100)
@given(st.lists(st.tuples(msg_types, bodies(groups=False, data=False)), min_size=1, max_size=4),
       st.data())
def test_messages_decode_identically_however_the_stream_is_split(msgs, data):
    stream = b"".join(encode(mt, b, sender=b"S", target=b"T", seq=i + 1, sending_time_ns=T0)
                      for i, (mt, b) in enumerate(msgs))
    whole = summary(events(stream))
    assert [e[0] for e in whole] == ["msg"] * len(msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    assert summary(events(chunks)) == whole


def test_every_split_point_and_byte_by_byte_give_the_same_events():
    stream = (b"junk\x01" + er(1) + frame(HDR, cs=0)[:-4] + b"999\x01" + er(2)
              + frame(HDR, blen=len(HDR) + 9) + er(3) + er(4)
              + frame(HDR.replace(b"34=12", b"34=x")) + frame(HDR, blen=len(HDR) - 4) + er(5)
              + frame(HDR, begin=b"FIX.4.2") + b"8=FI" + er(6))
    whole = summary(events(stream))
    kinds = [e[0] for e in whole]
    assert kinds.count("msg") == 6
    assert {GarbleKind.GARBAGE, GarbleKind.CHECKSUM, GarbleKind.BODY_LENGTH,
            GarbleKind.INVALID, GarbleKind.BEGIN_STRING} <= set(kinds)
    for i in range(len(stream) + 1):
        assert summary(events([stream[:i], stream[i:]])) == whole, i
    assert summary(events([stream[i:i + 1] for i in range(len(stream))])) == whole


# -- encode ------------------------------------------------------------------------------------
def test_new_order_single_fast_path_equals_generic_encode():
    kw = dict(sender=b"HELM", target=b"SIMA", seq=42, sending_time_ns=T0)
    for price, tif, account, qty in ((b"190.25", b"0", b"ACC", 100), (190.25, b"1", None, 5.5),
                                     (None, None, b"A", b"7"), (Decimal("1.10"), b"3", b"X", 1)):
        fields = [(11, b"C1")] + ([(1, account)] if account else []) + [
            (55, b"AAPL"), (54, b"2"), (60, utc_timestamp(T0 + 5)), (38, qty), (40, b"2")]
        fields += ([(44, price)] if price is not None else []) + ([(59, tif)] if tif else [])
        fast = encode_new_order_single(cl_ord_id=b"C1", symbol=b"AAPL", side=b"2", order_qty=qty,
                                       ord_type=b"2", price=price, time_in_force=tif,
                                       account=account, transact_time_ns=T0 + 5, **kw)
        assert fast == encode(b"D", fields, **kw)
        assert decode(fast).msg_type == b"D"
    # str where bytes are usual takes the long way and gives the same bytes
    assert encode_new_order_single(cl_ord_id="C1", symbol="AAPL", side="2", order_qty=1,
                                   ord_type="2", price="1.5", time_in_force="0", account="A",
                                   **kw) == \
        encode_new_order_single(cl_ord_id=b"C1", symbol=b"AAPL", side=b"2", order_qty=1,
                                ord_type=b"2", price=b"1.5", time_in_force=b"0", account=b"A",
                                **kw)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(msg_types, bodies(groups=False, data=False), text, text, st.integers(1, 2**31 - 1),
       timestamps)
def test_frame_of_encoded_fields_is_what_encode_makes(mt, body, sender, target, seq, ts):
    kw = dict(sender=sender, target=target, seq=seq, sending_time_ns=ts)
    whole = encode(mt, body, **kw)
    fields = whole[whole.index(b"\x0152=") + 1:]
    fields = fields[fields.index(b"\x01") + 1:-7]  # after SendingTime, before CheckSum
    assert frame_fields(mt, fields, **kw) == whole


def test_frame_refuses_fields_that_do_not_end_with_soh():
    kw = dict(sender=b"HELM", target=b"SIMA", seq=1, sending_time_ns=T0)
    for bad in (b"11=A", b"\x0111=A\x01"):
        with pytest.raises(FixEncodeError):
            frame_fields(b"D", bad, **kw)


def test_encode_header_and_values():
    m = decode(encode(b"D", [(44, 1e-7), (38, 2e16), (141, True), (142, False),
                             (58, "naïve"), (99, Decimal("0.50"))],
                      sender="HELM", target="SIMA", seq=3, sending_time_ns=T0,
                      extra_header=[(43, b"Y"), (122, utc_timestamp(T0 - 10**9))]))
    assert [t for t, _ in m.fields] == [8, 9, 35, 49, 56, 34, 52, 43, 122, 44, 38, 141, 142, 58,
                                        99, 10]
    assert m.get(52) == b"20231114-22:13:20.123" and m.poss_dup
    assert m.get(44) == b"0.0000001" and m.get(38) == b"20000000000000000"
    assert m.get_bool(141) is True and m.get_bool(142) is False
    assert m.get(58) == "naïve".encode() and m.get(99) == b"0.50"


@pytest.mark.parametrize("body, why", [
    ([(58, b"a\x01b")], "Text(58) holds an SOH"),
    ([(58, b"")], "Text(58) has an empty value"),
    ([(0, b"x")], "tag 0 is not a positive number"),
    ([("11", b"x")], "is not an int"),
    ([(44, float("nan"))], "cannot be a FIX float"),
    ([(44, float("inf"))], "cannot be a FIX float"),
    ([(44, object())], "cannot be a FIX value"),
    ([(95, 3), (96, b"a\x01bc")], "RawData(96) holds an SOH"),
    ([(96, b"a\x01b")], "RawData(96) holds an SOH"),
])
def test_encode_refuses_what_is_not_fix(body, why):
    with pytest.raises(FixEncodeError, match=why.replace("(", r"\(").replace(")", r"\)")):
        encode(b"D", body, sender=b"S", target=b"T", seq=1, sending_time_ns=T0)


def test_encode_refuses_bad_header_values():
    with pytest.raises(FixEncodeError, match="SenderCompID"):
        encode(b"D", [], sender=b"S\x01", target=b"T", seq=1, sending_time_ns=T0)
    with pytest.raises(FixEncodeError, match="MsgType"):
        encode(b"", [], sender=b"S", target=b"T", seq=1, sending_time_ns=T0)


def test_a_data_field_may_hold_soh_and_equals():
    raw = encode(b"A", [(98, 0), (108, 30), (95, 6), (96, b"a=\x01b\x01c")],
                 sender=b"S", target=b"T", seq=1, sending_time_ns=T0)
    m = decode(raw)
    assert m.get(96) == b"a=\x01b\x01c" and m.get_int(108) == 30
    assert m.fields == simplefix_pairs(raw)


# -- timestamps --------------------------------------------------------------------------------
@given(timestamps)
def test_utc_timestamp_round_trips_to_the_millisecond(ns):
    b = utc_timestamp(ns)
    assert b == dt.datetime.fromtimestamp(ns // 10**9, dt.timezone.utc).strftime(
        "%Y%m%d-%H:%M:%S").encode() + b".%03d" % (ns // 10**6 % 1000)
    assert parse_utc_timestamp(b) == ns // 10**6 * 10**6
    assert parse_utc_timestamp(b[:-4]) == ns // 10**9 * 10**9
    assert parse_utc_timestamp(b.decode()) == ns // 10**6 * 10**6


def test_parse_utc_timestamp_precisions_and_leap_second():
    base = calendar.timegm((2024, 2, 29, 23, 59, 59)) * 10**9
    assert parse_utc_timestamp(b"20240229-23:59:59") == base
    assert parse_utc_timestamp(b"20240229-23:59:59.123456") == base + 123_456_000
    assert parse_utc_timestamp(b"20240229-23:59:59.123456789") == base + 123_456_789
    assert parse_utc_timestamp(b"20240229-23:59:60") == base + 10**9


@pytest.mark.parametrize("bad", [b"", b"2024", b"20240230-10:00:00", b"20241301-10:00:00",
                                 b"20240101-24:00:00", b"20240101-10:60:00", b"20240101-10:00:61",
                                 b"20240101 10:00:00", b"20240101-10:00:00.12",
                                 b"20240101-10:00:00.1234", b"2024O101-10:00:00",
                                 b"20240101-1a:00:00", b"20240101-10:00:00Z", "2024010١-10:00:00",
                                 b"00000101-10:00:00"])
def test_parse_utc_timestamp_rejects_bad_ones_saying_why(bad):
    with pytest.raises(TimestampError, match="UTCTimestamp"):
        parse_utc_timestamp(bad)


def test_utc_timestamp_refuses_years_it_cannot_write():
    with pytest.raises(TimestampError):
        utc_timestamp(-62_200_000_000 * 10**9)
    with pytest.raises(TimestampError):
        utc_timestamp(253402300800 * 10**9)


# -- lookups and groups ------------------------------------------------------------------------
def test_typed_lookups():
    m = decode(er(9))
    assert m.get(11) == b"C1" and m[17] == b"E1" and 150 in m and 9999 not in m
    assert m.get(9999) is None and m.get(9999, b"x") == b"x"
    assert m.get_int(151) == 60 and m.get_float(31) == 190.25 and m.get_float(6) == 190.25
    assert m.get_int(9999, None) is None
    with pytest.raises(FixFieldError) as e:
        m.get_float(9999)
    assert e.value.session_reject_reason is R.REQUIRED_TAG_MISSING and e.value.tag == 9999
    with pytest.raises(FixFieldError) as e:
        m.get_int(31)
    assert e.value.session_reject_reason is R.INCORRECT_DATA_FORMAT_FOR_VALUE
    assert str(e.value) == "LastPx(31) was '190.25', not an integer"
    with pytest.raises(FixFieldError):
        m.get_float(55)
    with pytest.raises(FixFieldError):
        m.get_bool(55)
    with pytest.raises(FixFieldError):
        m[9999]


def test_get_float_refuses_nan_and_inf():
    m = decode(encode(b"8", [(31, b"nan"), (32, b"inf"), (44, b"1e3")], sender=b"S",
                      target=b"T", seq=1, sending_time_ns=T0))
    for t in (31, 32):
        with pytest.raises(FixFieldError, match="not a finite number"):
            m.get_float(t)
    assert m.get_float(44) == 1000.0


def md(entries, pre=((262, b"R1"),), post=()) -> FixMessage:
    body = [*pre, (268, len(entries))]
    for e in entries:
        body += e
    return decode(encode(b"X", [*body, *post], sender=b"S", target=b"T", seq=1,
                         sending_time_ns=T0))


def test_groups_with_optional_fields_and_fields_after_the_group():
    m = md([[(279, b"0"), (269, b"0"), (55, b"A"), (270, b"1.5"), (271, b"10")],
            [(279, b"1"), (269, b"1"), (270, b"1.6")],
            [(279, b"2"), (269, b"0"), (55, b"B"), (270, b"1.4"), (271, b"5"), (1023, b"3")]],
           post=[(813, b"3")])  # ApplQueueDepth: not a member
    g = m.groups(268)
    assert g == [{279: b"0", 269: b"0", 55: b"A", 270: b"1.5", 271: b"10"},
                 {279: b"1", 269: b"1", 270: b"1.6"},
                 {279: b"2", 269: b"0", 55: b"B", 270: b"1.4", 271: b"5", 1023: b"3"}]
    assert m.groups(268) == g  # the cached builder gives the same
    assert m.get(270) == b"1.5" and m.get(813) == b"3"  # first occurrence
    assert m.groups(453) == []
    assert m.groups(268, members=[279, 269, 55, 270, 271]) == g[:2] + [
        {279: b"2", 269: b"0", 55: b"B", 270: b"1.4", 271: b"5"}]


def test_groups_of_an_unknown_group_and_a_zero_count():
    m = decode(encode(b"8", [(11, b"C"), (78, 2), (79, b"A1"), (80, 1), (79, b"A2"), (80, 2),
                             (58, b"x")], sender=b"S", target=b"T", seq=1, sending_time_ns=T0))
    assert m.groups(78) == [{79: b"A1", 80: b"1"}, {79: b"A2", 80: b"2"}]
    assert md([]).groups(268) == []


@pytest.mark.parametrize("entries, count, why", [
    ([[(279, b"0"), (269, b"0")]], 2, R.INCORRECT_NUMINGROUP_COUNT_FOR_REPEATING_GROUP),
    ([[(279, b"0"), (269, b"0")]] * 3, 2, R.INCORRECT_NUMINGROUP_COUNT_FOR_REPEATING_GROUP),
    ([[(269, b"0"), (279, b"0")], [(279, b"0"), (269, b"1")]], 2,
     R.REPEATING_GROUP_FIELDS_OUT_OF_ORDER),
    ([], b"x", R.INCORRECT_DATA_FORMAT_FOR_VALUE),
])
def test_groups_that_do_not_add_up_raise_with_the_reject_reason(entries, count, why):
    body = [(268, count)]
    for e in entries:
        body += e
    m = decode(encode(b"X", body, sender=b"S", target=b"T", seq=1, sending_time_ns=T0))
    with pytest.raises(FixFieldError) as e:
        m.groups(268, first_tag=279)
    assert e.value.session_reject_reason is why and e.value.tag == 268


# -- framing: garbled input is reported and skipped --------------------------------------------
def test_checksum_mismatch_is_garbled_and_the_next_message_decodes():
    good = frame(HDR)
    actual = checksum(good[:-7])
    bad = frame(HDR, cs=(actual + 4) % 256)
    evs = events(bad + er(8))
    assert isinstance(evs[0], FixGarbled) and evs[0].kind is GarbleKind.CHECKSUM
    declared = (actual + 4) % 256
    assert evs[0].reason == f"CheckSum {declared:03d} but the message sums to {actual:03d}"
    assert evs[0].raw == bad and not evs[0].should_reject
    assert isinstance(evs[1], FixMessage) and evs[1].seq == 8 and len(evs) == 2


@pytest.mark.parametrize("delta", [-5, -1, 1, 7, 300])
def test_wrong_body_length_is_garbled_and_names_both_lengths(delta):
    bad = frame(HDR, blen=len(HDR) + delta)
    evs = events(bad + er(8) + er(9))
    assert evs[0].kind is GarbleKind.BODY_LENGTH and evs[0].raw == bad
    assert evs[0].reason == f"BodyLength {len(HDR) + delta} but the body is {len(HDR)} bytes"
    assert [e.seq for e in evs[1:]] == [8, 9]


def test_a_body_length_too_large_does_not_wait_once_the_next_message_shows():
    dec = FixDecoder()
    dec.feed(frame(HDR, blen=5000) + er(8) + er(9)[:30])
    ev = dec.next()
    assert isinstance(ev, FixGarbled) and ev.kind is GarbleKind.BODY_LENGTH
    assert dec.next().seq == 8 and dec.next() is None


@pytest.mark.parametrize("bad, kind, why", [
    (frame(HDR, begin=b"FIX.4.2"), GarbleKind.BEGIN_STRING, "BeginString was 'FIX.4.2'"),
    (frame(HDR, begin=b"FIXT.1.1"), GarbleKind.BEGIN_STRING, "expected FIX.4.4"),
    (b"8=FIX.4.4\x019=1x\x01" + HDR, GarbleKind.BODY_LENGTH, "BodyLength was '1x', not a number"),
    (b"8=FIX.4.4\x0135=8\x019=5\x01", GarbleKind.BODY_LENGTH, "not the second field"),
    (b"8=FIX.4.4\x019=123456789012\x01", GarbleKind.BODY_LENGTH, "not a number"),
    (b"8=FIX.4.4\x019=999999\x01" + HDR, GarbleKind.OVERSIZE, "over the 65536-byte limit"),
    (frame(b"49=SIMA\x0135=8\x0156=HELM\x0134=12\x0152=20231114-22:13:20.123\x01"),
     GarbleKind.MSG_TYPE, "MsgType (35) is not the third field"),
    (frame(b"49=SIMA\x0156=HELM\x01"), GarbleKind.MSG_TYPE, "missing"),
])
def test_garbled_frames_are_reported_and_skipped(bad, kind, why):
    evs = events(bad + er(8))
    assert isinstance(evs[0], FixGarbled), evs
    assert evs[0].kind is kind and why in evs[0].reason, evs[0].reason
    assert evs[0].raw == bad and not evs[0].should_reject and evs[0].ref_seq is None
    assert len(evs) == 2 and isinstance(evs[1], FixMessage) and evs[1].seq == 8


def test_an_oversize_body_length_never_waits_or_grows():
    dec = FixDecoder(max_message_size=1024)
    dec.feed(b"8=FIX.4.4\x019=100000000\x0135=8\x01")
    assert dec.next() is None  # garbled, but its end (the next start) is not here yet
    dec.feed(b"x" * 5000)
    ev = dec.next()
    assert isinstance(ev, FixGarbled) and ev.kind is GarbleKind.OVERSIZE
    assert len(ev.raw) == 1024 and "over the 1024-byte limit" in ev.reason
    while (ev := dec.next()) is not None:
        assert ev.kind is GarbleKind.GARBAGE and len(ev.raw) == 1024
    assert dec.buffered < 1024 + 5
    dec.feed(er(3))
    evs = [dec.next(), dec.next(), dec.next()]
    assert evs[0].kind is GarbleKind.GARBAGE and evs[1].seq == 3 and evs[2] is None


def test_garbage_before_a_message_is_reported_once_with_its_bytes():
    junk = bytes(random.Random(1).randrange(256) for _ in range(3000)).replace(b"8=", b"..")
    evs = events([junk[:1000], junk[1000:], er(5)])
    assert len(evs) == 2 and evs[0].kind is GarbleKind.GARBAGE and evs[0].raw == junk
    assert evs[0].reason == "3000 bytes that are not a FIX message skipped"
    assert evs[1].seq == 5


def test_a_partial_start_waits_and_an_empty_feed_is_nothing():
    dec = FixDecoder()
    dec.feed(b"")
    assert dec.next() is None
    msg = er(4)
    for i in range(len(msg) - 1):
        dec.feed(msg[i:i + 1])
        assert dec.next() is None
    dec.feed(msg[-1:])
    assert dec.next().seq == 4 and dec.next() is None and dec.buffered == 0
    dec.feed(bytearray(msg))
    dec.feed(memoryview(msg))
    assert dec.next().raw == msg and dec.next().raw == msg


# -- invalid fields: a Reject, not a garble ----------------------------------------------------
def _reject_case(body: bytes) -> FixGarbled:
    evs = events(frame(body) + er(8))
    assert len(evs) == 2 and evs[1].seq == 8
    ev = evs[0]
    assert isinstance(ev, FixGarbled) and ev.kind is GarbleKind.INVALID and ev.should_reject
    return ev


@pytest.mark.parametrize("body, ref_tag, why, text", [
    (b"35=8\x0156=HELM\x0134=12\x0152=x\x01", 49, R.REQUIRED_TAG_MISSING,
     "SenderCompID(49) is missing"),
    (b"35=8\x0149=S\x0156=H\x0134=12\x01", 52, R.REQUIRED_TAG_MISSING,
     "SendingTime(52) is missing"),
    (HDR + b"abc=1\x01", None, R.INVALID_TAG_NUMBER, "tag 'abc' is not a tag number"),
    (HDR + b"011=1\x01", None, R.INVALID_TAG_NUMBER, "is not a tag number"),
    (HDR + b"=1\x01", None, R.INVALID_TAG_NUMBER, "is not a tag number"),
    (HDR + b"58=\x01", 58, R.TAG_SPECIFIED_WITHOUT_A_VALUE, "Text(58) has no value"),
    (HDR + b"58=a\x01b\x01", 58, R.NON_DATA_VALUE_INCLUDES_FIELD_DELIMITER,
     "Text(58)'s value holds an SOH"),
    (HDR + b"58=a\x01\x01", 58, R.NON_DATA_VALUE_INCLUDES_FIELD_DELIMITER, "holds an SOH"),
    (HDR + b"11=a\x0111=b\x01", 11, R.TAG_APPEARS_MORE_THAN_ONCE,
     "ClOrdID(11) appears more than once"),
    (HDR + b"268=1\x01279=0\x0135=8\x01", 35, R.TAG_APPEARS_MORE_THAN_ONCE,
     "appears more than once"),
    (HDR + b"95=3\x0196=ab\x01cd\x01", 96, R.INCORRECT_DATA_FORMAT_FOR_VALUE, "not the 3 bytes"),
    (HDR + b"95=x\x0196=ab\x01", 95, R.INCORRECT_DATA_FORMAT_FOR_VALUE, "not a length"),
    (HDR + b"43=X\x01", 43, R.VALUE_IS_INCORRECT, "PossDupFlag(43) was 'X', not Y or N"),
])
def test_bad_fields_are_rejected_with_the_spec_reason(body, ref_tag, why, text):
    ev = _reject_case(body)
    assert ev.session_reject_reason is why and ev.ref_tag == ref_tag
    assert text in ev.reason, ev.reason
    assert ev.ref_msg_type == b"8"
    assert ev.ref_seq == 12 and ev.message is not None and ev.message.seq == 12


def test_msg_seq_num_problems_are_rejected():
    ev = _reject_case(HDR.replace(b"34=12", b"34=1x"))
    assert ev.session_reject_reason is R.INCORRECT_DATA_FORMAT_FOR_VALUE and ev.ref_tag == 34
    assert ev.ref_seq is None
    ev = _reject_case(HDR.replace(b"34=12", b"34=0"))
    assert ev.session_reject_reason is R.VALUE_IS_INCORRECT and "run from 1" in ev.reason
    ev = _reject_case(HDR.replace(b"34=12", b"34=" + b"9" * 5000))
    assert ev.session_reject_reason is R.VALUE_IS_INCORRECT and ev.ref_seq is None
    ev = _reject_case(HDR.replace(b"34=12\x01", b""))
    assert ev.session_reject_reason is R.REQUIRED_TAG_MISSING and ev.ref_tag == 34
    assert ev.ref_seq is None


def test_huge_numbers_are_bad_values_not_decoder_errors():
    # int() refuses more than 4300 digits: none of these may reach it
    ev = _reject_case(HDR + b"1" * 5000 + b"=x\x01")
    assert ev.session_reject_reason is R.INVALID_TAG_NUMBER
    ev = _reject_case(HDR + b"95=" + b"1" * 5000 + b"\x0196=ab\x01")
    assert ev.session_reject_reason is R.INCORRECT_DATA_FORMAT_FOR_VALUE and ev.ref_tag == 95
    m = decode(frame(HDR + b"268=" + b"1" * 5000 + b"\x01279=0\x01"))
    with pytest.raises(FixFieldError):
        m.groups(268)
    with pytest.raises(FixFieldError):
        m.get_int(268)
    evs = events(b"8=FIX.4.4\x019=" + b"9" * 5000 + b"\x01" + er(2))
    assert evs[0].kind is GarbleKind.BODY_LENGTH and evs[1].seq == 2


def test_values_with_equals_and_repeats_inside_groups_are_fine():
    m = decode(frame(HDR + b"58=a=b==\x01268=2\x01279=0\x01269=0\x01279=1\x01269=1\x01"))
    assert m.get(58) == b"a=b==" and len(m.groups(268)) == 2
    assert m.fields[-2] == (269, b"1")


def test_poss_dup():
    m = decode(er(3, extra_header=[(43, b"Y"), (122, b"20231114-22:13:19.000")]))
    assert m.poss_dup and m.get(122) == b"20231114-22:13:19.000"
    assert not decode(er(3, extra_header=[(43, b"N")])).poss_dup


def test_decode_wants_exactly_one_valid_message():
    with pytest.raises(FixDecodeError, match="not a whole message"):
        decode(er(1)[:-1])
    with pytest.raises(FixDecodeError, match="follow the message"):
        decode(er(1) + b"x")
    with pytest.raises(FixDecodeError) as e:
        decode(frame(HDR, cs=1 if checksum(frame(HDR)[:-7]) != 1 else 2))
    assert e.value.event.kind is GarbleKind.CHECKSUM


def test_checksum_agrees_with_the_plain_sum_at_every_length():
    rng = random.Random(7)
    for n in [*range(0, 600), 1000, 4096, 65536]:
        data = bytes(rng.randrange(256) for _ in range(n))
        assert checksum(data) == sum(data) % 256
        ascii_data = bytes(b & 0x7F for b in data)
        assert checksum(ascii_data) == sum(ascii_data) % 256
    assert checksum(b"\xff" * 70000) == (255 * 70000) % 256


# -- fuzz: nothing a socket sends raises, and the decoder always finds its feet again ----------
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.integers(256, 4096), st.data())
@example(b"8=FIX.4.4\x019=", 256, None)
@example(b"8=FIX.4.4\x019=99\x01" * 30, 256, None)
def test_random_bytes_never_raise(junk, max_size, data):
    cuts = [] if data is None else sorted(data.draw(st.lists(st.integers(0, len(junk)),
                                                             max_size=5)))
    chunks = [junk[a:b] for a, b in zip([0, *cuts], [*cuts, len(junk)])]
    evs = events(chunks + [er(77)], max_message_size=max_size)
    summary(evs)  # no internal errors
    # whatever came before, the decoder finds the next message (unless the junk is itself
    # the start of a message whose claimed body swallows it; two more messages settle that)
    evs = events(chunks + [er(78), er(79)], max_message_size=max_size)
    assert [e.seq for e in evs[-2:] if isinstance(e, FixMessage)] == [78, 79]
    assert all(len(e.raw) <= max(max_size, 4096) for e in evs)


def _mutate(raw: bytes, how: str, at: int, byte: int) -> bytes:
    at %= len(raw)
    if how == "truncate":
        return raw[:at]
    if how == "flip":
        return raw[:at] + bytes([raw[at] ^ (byte or 1)]) + raw[at + 1:]
    if how == "insert_soh":
        return raw[:at] + b"\x01" + raw[at:]
    if how == "insert":
        return raw[:at] + bytes([byte]) + raw[at:]
    if how == "delete":
        return raw[:at] + raw[at + 1:]
    if how == "checksum":
        if not raw[-4:-1].isdigit():
            return raw
        return raw[:-4] + b"%03d" % ((int(raw[-4:-1]) + byte % 255 + 1) % 256) + b"\x01"
    raise AssertionError(how)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["truncate", "flip", "insert_soh", "insert", "delete",
                                           "checksum"]),
                          st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=3),
       st.integers(0, 3), st.data())
def test_mutated_messages_never_raise_and_the_decoder_resynchronises(muts, which, data):
    msgs = [er(1), frame(HDR), md_raw(), er(2)]
    victim = msgs[which]
    for how, at, byte in muts:
        victim = _mutate(victim, how, at, byte) or b"x"
    stream = victim + er(100) + er(101)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    evs = events(chunks)
    assert summary(evs) == summary(events(stream))  # the same however it was split
    tail = [e.seq for e in evs if isinstance(e, FixMessage)][-2:]
    assert tail == [100, 101], summary(evs)
    for e in evs[:-2]:
        if isinstance(e, FixGarbled) and e.should_reject:
            assert e.session_reject_reason in R and e.message is not None


def md_raw() -> bytes:
    body: list[tuple[int, object]] = [(262, b"R"), (268, 2)]
    for side in (b"0", b"1"):
        body += [(279, b"0"), (269, side), (55, b"AAPL"), (270, b"1.5"), (271, 10)]
    return encode(b"X", body, sender=b"S", target=b"T", seq=5, sending_time_ns=T0)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(
    [er(1), md_raw(), frame(HDR), b"8=FIX.4.4\x01", b"9=", b"\x0110=000\x01", b"8=FIX",
     b"\x01", b"=", b"10=", frame(HDR, cs=3), frame(HDR, blen=2)])), max_size=12))
def test_stitched_fragments_never_raise_and_split_the_same(parts):
    stream = b"".join(parts)
    whole = summary(events(stream, max_message_size=256))
    assert summary(events([bytes([b]) for b in stream], max_message_size=256)) == whole


def test_a_bug_in_the_parser_is_reported_as_an_event_not_raised(monkeypatch):
    import engine.fix.codec as codec

    def broken(raw: bytes):
        raise RuntimeError("boom")

    monkeypatch.setattr(codec, "_parse", broken)
    dec = FixDecoder()
    dec.feed(b"xx" + er(1) + er(2))
    evs = [dec.next() for _ in range(3)]
    assert [e.kind for e in evs] == [GarbleKind.GARBAGE] * 3
    assert evs[0].raw == b"xx" and evs[1].raw == er(1) and evs[2].raw == er(2)
    assert evs[1].reason == "decoder error RuntimeError: boom"
    assert dec.next() is None
