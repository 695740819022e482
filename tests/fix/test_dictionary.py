"""The FIX 4.4 data dictionary (engine/fix/fix44.json) and ``validate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.fix.codec import checksum, decode, encode, utc_timestamp
from engine.fix.dictionary import dictionary, validate

T0 = 1_795_000_000_000_000_000
HEAD = b"49=V\x0156=H\x0134=2\x0152=" + utc_timestamp(T0) + b"\x01"


def msg(msg_type: bytes, body: list, **kw):
    return decode(encode(msg_type, body, sender=b"V", target=b"H", seq=2, sending_time_ns=T0,
                         **kw))


def raw(body: bytes):
    fields = b"35=" + body[:body.index(b"\x01") + 1] + HEAD + body[body.index(b"\x01") + 1:]
    head = b"8=FIX.4.4\x019=%d\x01" % len(fields)
    return decode(head + fields + b"10=%03d\x01" % checksum(head + fields))


ER = [(37, b"O1"), (11, b"C1"), (17, b"E1"), (150, b"F"), (39, b"1"), (55, b"AAPL"), (54, b"1"),
      (38, b"100"), (32, b"10"), (31, b"190.25"), (151, b"90"), (14, b"10"), (6, b"190.25"),
      (60, utc_timestamp(T0))]


def test_the_data_file_holds_the_whole_fix_4_4_dictionary_and_credits_its_source():
    data = json.loads((Path(__file__).parents[2] / "engine/fix/fix44.json").read_text())
    assert "QuickFIX" in data["_about"] and "Oren Miller" in data["_about"]
    d = dictionary()
    assert len(d.fields) >= 900 and len(d.messages) == 93
    side = d.fields[54]
    assert (side.name, side.type) == ("Side", "char") and {b"1", b"2"} <= side.values
    assert (d.fields[52].type, d.fields[38].type, d.fields[34].type) == (
        "UTCTimestamp", "Qty", "SeqNum")
    er = d.messages[b"8"]
    assert er.name == "ExecutionReport" and not er.admin
    assert {37, 17, 150, 39, 54, 151, 14, 6} <= set(er.required)
    assert d.messages[b"A"].admin and set(d.messages[b"A"].required) == {98, 108}
    md = d.messages[b"X"].groups[268]
    assert md.delimiter == 279 and 1023 in md.order and 83 in md.order  # Helmdesk's additions
    for mt in b"0 1 2 3 4 5 A D F G H 8 9 j V W X Y AE".split():
        assert mt in d.messages


def test_valid_messages_pass_and_each_layout_is_compiled_once():
    m = msg(b"8", ER)
    assert validate(m) is None
    assert validate(msg(b"8", ER[:-1] + [(60, utc_timestamp(T0 + 1))])) is None
    assert any(b"8" in d for d in m._lay.checks)  # the verdict is kept on the layout
    neg = msg(b"8", [(t, b"-1.5" if t == 31 else v) for t, v in ER])  # a negative price
    assert validate(neg) is None


@pytest.mark.parametrize("body, want", [
    ([(4000, b"x")], (0, 4000)),
    ([(44, b"1")], (2, 44)),
])
def test_undefined_and_misplaced_tags(body, want):
    assert validate(msg(b"0", body))[:2] == want
    assert validate(msg(b"0", body), allow_unknown=True) is None


@pytest.mark.parametrize("change, want", [
    ((150, b"Z"), (5, 150)),  # not an ExecType
    ((38, b"1.2.3"), (6, 38)),  # Qty
    ((38, b"."), (6, 38)),
    ((60, b"20261399-10:00:00"), (6, 60)),  # no month 13
    ((60, b"2026-10:00"), (6, 60)),
    ((14, b"ten"), (6, 14)),
])
def test_values_are_checked_against_the_field_type_and_enumeration(change, want):
    good = msg(b"8", ER)
    assert validate(good) is None  # the quick check learnt this layout's good shapes first
    bad = msg(b"8", [(t, change[1] if t == change[0] else v) for t, v in ER])
    got = validate(bad)
    assert got[:2] == want and not got[3]
    assert validate(bad, app_values=False) is None  # values left to the application


def test_required_fields_and_conditionally_required_ones():
    no_exec_type = [(t, v) for t, v in ER if t != 150]
    assert validate(msg(b"8", no_exec_type))[:2] == (1, 150)
    assert validate(msg(b"8", no_exec_type), app_required=False) is None
    no_last_px = [(t, v) for t, v in ER if t != 31]
    got = validate(msg(b"8", no_last_px))
    assert got == (5, 31, "Conditionally required field missing: LastPx(31) when "
                          "ExecType(150)=F", True)
    new = [(t, b"0" if t == 150 else v) for t, v in no_last_px if t != 32]
    assert validate(msg(b"8", new)) is None  # not a trade: no LastPx needed


def test_order_repeats_and_groups():
    assert validate(raw(b"1\x01112=x\x0150=D\x01"))[:2] == (14, 50)
    assert validate(raw(b"1\x01112=x\x0150=D\x01"), check_order=False) is None
    req = b"V\x01262=r\x01263=1\x01264=1\x01"
    assert validate(raw(req + b"267=2\x01269=0\x01269=1\x01146=1\x0155=A\x01")) is None
    assert validate(raw(req + b"267=3\x01269=0\x01269=1\x01146=1\x0155=A\x01"))[:2] == (16, 267)
    assert validate(raw(req + b"267=1\x01269=0\x01146=1\x0165=W\x0155=A\x01"))[:2] == (15, 146)
    assert validate(raw(req + b"267=1\x01146=1\x0155=A\x01269=0\x01"))[:2] == (15, 269)
    twice = req + b"267=1\x01269=0\x01146=1\x0155=A\x01265=0\x01265=1\x01"
    assert validate(raw(twice))[:2] == (13, 265)  # after a group: the codec lets it by
    assert validate(raw(req + b"146=1\x0155=A\x01"))[:2] == (1, 267)


def test_an_unknown_msg_type_is_an_invalid_msg_type():
    assert validate(msg(b"ZZ", [(58, b"x")]))[:2] == (11, 35)
