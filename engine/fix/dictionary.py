"""The FIX 4.4 data dictionary and the validation of inbound messages against it.

``fix44.json`` beside this module holds the dictionary (generated from QuickFIX's FIX44.xml by
``_gen_dictionary.py``; see its header): every field with its type and enumerated values, the
header, the trailer and every message's fields, required flags and repeating groups. It is
loaded once, on first use, and each message type is compiled once into sets and maps.

``validate(msg)`` answers ``None`` (valid) or ``(reason, ref_tag, text, business)``: the
SessionRejectReason (373) and RefTagID (371) of the Reject (35=3) the session sends, a text
for people, and ``business`` when FIX wants a BusinessMessageReject (35=j) instead (then
``reason`` is a BusinessRejectReason, 380). What it checks, with the reason it gives:

=====  ==============================================================================
0      a tag that FIX 4.4 does not define (user-defined tags, 5000 and up, are allowed)
1      a required field missing (header, body, or an entry of a repeating group)
2      a tag FIX 4.4 defines, but not for this message type
4      a tag without a value (the codec finds these)
5      a value that is not one of the field's enumerated values
6      a value not of the field's type (int, float, char, Boolean, UTCTimestamp, …)
13     a tag repeated outside a repeating group
14     a header field after the body, or a body field after the trailer
15     a repeating group entry not starting with its delimiter, or its fields out of order
16     a NumInGroup count that is not the number of entries
=====  ==============================================================================

Cost. Venues send few *layouts* (sequences of tags; the codec caches each one as a
``_Layout``), so everything that depends only on the tags — which are defined, where header,
body and trailer lie, repeats, required fields, group structure — is worked out once per
layout and message type and kept on the layout. What is left per message is the values: a
generated function checks exactly this layout's typed fields (enumerations, numbers,
timestamps, the groups' counts) in one expression, and only when it says no does a slower
pass find which field is wrong. String fields cost nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from operator import itemgetter
from pathlib import Path
from typing import Callable

from engine.fix.codec import FixMessage

__all__ = ["Dictionary", "FieldDef", "GroupDef", "MessageDef", "Problem", "dictionary",
           "validate", "validator"]

#: (reason, ref_tag, text, business)
Problem = tuple[int, "int | None", str, bool]

_PATH = Path(__file__).with_name("fix44.json")
_USER_DEFINED = 5000  # tags from here on are bilateral: never "undefined"
#: checked by the codec (framing, MsgSeqNum, PossDupFlag) or the session (SendingTime)
_CHECKED_ELSEWHERE = frozenset({8, 9, 10, 34, 35, 43, 52})

_INT_RE = re.compile(rb"-?\d+").fullmatch
_UINT_RE = re.compile(rb"\d+").fullmatch
_FLOAT_RE = re.compile(rb"-?(?:\d+(?:\.\d*)?|\.\d+)").fullmatch
_TS_RE = re.compile(rb"\d{4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-(?:[01]\d|2[0-3]):[0-5]\d:"
                    rb"(?:[0-5]\d|60)(?:\.\d{3}(?:\d{3}){0,2})?").fullmatch
_TIME_RE = re.compile(rb"(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d{3}(?:\d{3}){0,2})?").fullmatch
_DATE_RE = re.compile(rb"\d{4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])").fullmatch
_MONTH_YEAR_RE = re.compile(rb"\d{4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|w[1-5])?").fullmatch
_DAY_RE = re.compile(rb"(?:0?[1-9]|[12]\d|3[01])").fullmatch

_UNSIGNED = frozenset({"Length", "SeqNum", "NumInGroup"})
_FLOATS = frozenset({"float", "Qty", "Price", "PriceOffset", "Amt", "Percentage"})
_PATTERNS: dict[str, Callable] = {
    "int": _INT_RE, "Length": _UINT_RE, "SeqNum": _UINT_RE, "NumInGroup": _UINT_RE,
    "UTCTimestamp": _TS_RE, "UTCTimeOnly": _TIME_RE, "UTCDateOnly": _DATE_RE,
    "LocalMktDate": _DATE_RE, "MonthYear": _MONTH_YEAR_RE, "DayOfMonth": _DAY_RE,
    **{t: _FLOAT_RE for t in _FLOATS},
}


# -- THE DICTIONARY ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FieldDef:
    tag: int
    name: str
    type: str  #: the specification's spelling: int, Qty, UTCTimestamp, String, …
    values: frozenset[bytes] | None  #: the enumerated values, if the field has any

    def check(self, v: bytes) -> tuple[int, str] | None:
        """(reason, why) when ``v`` is not a value of this field, else None."""
        t = self.type
        if t == "Boolean":
            if v not in (b"Y", b"N"):
                return 6, f"{self.label} was {_show(v)}, not Y or N"
            return None
        if t == "char" and len(v) != 1:
            return 6, f"{self.label} was {_show(v)}, not one character"
        pattern = _PATTERNS.get(t)
        if pattern is not None and pattern(v) is None:
            return 6, f"{self.label} was {_show(v)}, not a{'n' if t[0] in 'aeiouAEIOU' else ''} {t}"
        vals = self.values
        if vals is not None:
            parts = v.split(b" ") if t == "MultipleValueString" else (v,)
            for p in parts:
                if p not in vals:
                    return 5, f"{self.label} was {_show(v)}, not one of its values"
        return None

    @property
    def label(self) -> str:
        return f"{self.name}({self.tag})"


@dataclass(slots=True)
class GroupDef:
    """A repeating group: its NumInGroup tag, the delimiter (first field) and members in
    order (nested groups' count tags among them)."""

    count_tag: int
    delimiter: int
    order: dict[int, int]  #: member tag -> its position
    required: tuple[int, ...]
    groups: dict[int, "GroupDef"]  #: nested groups by count tag
    all_tags: frozenset[int] = frozenset()  #: members at any depth


@dataclass(slots=True)
class MessageDef:
    msg_type: bytes
    name: str
    admin: bool
    body: frozenset[int]  #: top-level body tags (group count tags included)
    required: tuple[int, ...]  #: required top-level body tags
    groups: dict[int, GroupDef]  #: top-level groups by count tag
    nested: frozenset[int] = field(default=frozenset())  #: tags that only appear in groups
    #: conditionally required: (tag, required when this tag..., ...has one of these values)
    conditions: tuple[tuple[int, int, frozenset[bytes]], ...] = ()


class Dictionary:
    """FIX 4.4 fields, header, trailer and messages, compiled for lookups."""

    def __init__(self, data: dict) -> None:
        self.about: str = data["_about"]
        self.fields: dict[int, FieldDef] = {}
        for tag, entry in data["fields"].items():
            values = frozenset(v.encode() for v in entry[2]) if len(entry) > 2 else None
            self.fields[int(tag)] = FieldDef(int(tag), entry[0], entry[1], values)
        self._components: dict[str, list] = data["components"]
        self.header = self._section(data["header"])
        self.trailer = self._section(data["trailer"])
        self.messages: dict[bytes, MessageDef] = {}
        conditions = data.get("conditions", {})
        for mt, m in data["messages"].items():
            sec = self._section(m["items"])
            self.messages[mt.encode()] = MessageDef(
                mt.encode(), m["name"], m["cat"] == "admin", sec.body, sec.required, sec.groups,
                frozenset().union(*(g.all_tags for g in sec.groups.values())) - sec.body,
                tuple((t, w, frozenset(x.encode() for x in vals))
                      for t, w, vals in conditions.get(mt, ())))

    def _expand(self, items: list) -> list:
        """Items with components replaced by their own items (recursively)."""
        out = []
        for it in items:
            if isinstance(it[0], str):
                for sub in self._expand(self._components[it[0]]):
                    # a component that is optional makes its required fields optional too
                    out.append([sub[0], sub[1] and it[1], *sub[2:]])
            else:
                out.append(it)
        return out

    def _section(self, items: list) -> MessageDef:
        body: list[int] = []
        required: list[int] = []
        groups: dict[int, GroupDef] = {}
        for it in self._expand(items):
            tag = it[0]
            if tag not in body:
                body.append(tag)
            if it[1]:
                required.append(tag)
            if len(it) == 3:
                groups[tag] = self._group(tag, it[2])
        return MessageDef(b"", "", False, frozenset(body), tuple(required), groups)

    def _group(self, count_tag: int, items: list) -> GroupDef:
        sec = self._section(items)
        members = self._expand(items)
        order: dict[int, int] = {}
        for it in members:
            order.setdefault(it[0], len(order))
        g = GroupDef(count_tag, members[0][0], order,
                     tuple(t for t in sec.required if t != members[0][0]), sec.groups)
        g.all_tags = frozenset(order).union(*(n.all_tags for n in sec.groups.values()))
        return g

    def field_name(self, tag: int) -> str:
        f = self.fields.get(tag)
        return f.label if f is not None else str(tag)

    def msg_name(self, msg_type: bytes) -> str:
        m = self.messages.get(msg_type)
        return f"{m.name}({msg_type.decode()})" if m else _show(msg_type)


@cache
def dictionary() -> Dictionary:
    """The FIX 4.4 dictionary, loaded once."""
    return Dictionary(json.loads(_PATH.read_text()))


# -- VALIDATION --------------------------------------------------------------------------------
class _Verdict:
    """What one layout of one message type gets, worked out once: a problem every message of
    the layout has (``static``), or the per-message check of its values (``values``: None
    when there is nothing to check)."""

    __slots__ = ("static", "values", "typed", "counts", "learned", "conds")

    def __init__(self) -> None:
        self.static: Problem | None = None
        #: None (valid) or ``_diagnose``'s answer, from the values; None: nothing to check
        self.values: Callable[[list[bytes]], Problem | None] | None = None
        self.typed: list[tuple[int, FieldDef]] = []  # (index, field) of checked values
        self.counts: list[tuple[int, int]] = []  # (index of a NumInGroup, entries found)
        self.learned: tuple = ((), (), None)  # see _value_function
        #: (index of the deciding field, its values that require the missing field, both tags)
        self.conds: list[tuple[int, frozenset[bytes], int, int]] = []


def validate(msg: FixMessage, *, allow_unknown: bool = False, check_order: bool = True,
             app_required: bool = True, app_values: bool = True) -> Problem | None:
    """None if ``msg`` is valid FIX 4.4, else ``(reason, ref_tag, text, business)``.

    ``allow_unknown``: tags that FIX 4.4 does not define, or not for this message type, are
    let through (QuickFIX's AllowUnknownMsgFields). ``check_order``: a header field after the
    body or a body field after the trailer is a Reject 14 (ValidateFieldsOutOfOrder).
    ``app_required``: an application message's missing required or conditionally required
    body fields are problems (False: the application answers those in its own terms).
    A conditionally required field missing is a business problem: BusinessRejectReason 5.
    ``app_values``: an application message's values are checked (enumerations, formats);
    False leaves them to the application (its structure and group counts are still checked).
    """
    return validator(allow_unknown=allow_unknown, check_order=check_order,
                     app_required=app_required, app_values=app_values)(msg)


_N_OPTIONS = 16  # four yes/no options


@cache
def validator(*, allow_unknown: bool = False, check_order: bool = True, app_required: bool = True,
              app_values: bool = True) -> Callable[[FixMessage], Problem | None]:
    """``validate`` with these options bound: what a session keeps and calls per message.

    Each layout keeps one dict per combination of options, MsgType -> a function of the
    message's values (made by ``_compile``): the common case is two lookups and one call.
    """
    k = allow_unknown * 8 + check_order * 4 + app_required * 2 + app_values
    opts = (allow_unknown, check_order, app_required, app_values)

    def check(msg: FixMessage) -> Problem | None:
        checks = msg._lay.checks
        if checks is not None:
            fn = checks[k].get(msg.msg_type)
            if fn is not None:
                return fn(msg._vals)
        lay = msg._lay
        if checks is None:
            checks = lay.checks = [{} for _ in range(_N_OPTIONS)]
        by_type = checks[k]
        if len(by_type) >= 16:  # a peer sending one layout under endless MsgTypes
            by_type.clear()
        fn = by_type[msg.msg_type] = _function(_compile(lay.int_tags, msg.msg_type, *opts))
        return fn(msg._vals)

    return check


def _function(v: _Verdict) -> Callable[[list[bytes]], Problem | None]:
    """A layout's verdict as one function of a message's values."""
    if v.static is not None:
        return lambda _vals, p=v.static: p
    f = v.values
    if f is None:
        return lambda _vals: None
    return f


def _diagnose(v: _Verdict, vals: list[bytes]) -> Problem | None:
    """The first wrong value, once the quick check said no (None: a value the quick check
    cannot pass is valid after all, such as a negative number)."""
    d = dictionary()
    for i, when, tag, when_tag in v.conds:
        if vals[i] in when:
            return (5, tag, f"Conditionally required field missing: {d.field_name(tag)} when "
                            f"{d.field_name(when_tag)}={_show(vals[i])}", True)
    for i, n in v.counts:
        if vals[i] != b"%d" % n:
            fd = d.fields[_count_tag_at(v, i)]
            if not vals[i].isdigit():
                return 6, fd.tag, f"{fd.label} was {_show(vals[i])}, not a NumInGroup", False
            return (16, fd.tag, f"Incorrect NumInGroup count for repeating group: {fd.label} "
                                f"says {int(vals[i])} but there are {n} entries", False)
    for i, fd in v.typed:
        bad = fd.check(vals[i])
        if bad is not None:
            return bad[0], fd.tag, bad[1], False
    _learn(v, vals)
    return None


def _count_tag_at(v: _Verdict, i: int) -> int:
    for j, fd in v.typed:
        if j == i:
            return fd.tag
    return 0  # pragma: no cover


def _compile(tags: list[int], msg_type: bytes, allow_unknown: bool, check_order: bool,
             app_required: bool, app_values: bool) -> _Verdict:
    d = dictionary()
    v = _Verdict()
    m = d.messages.get(msg_type)
    if m is None:
        v.static = (11, 35, f"Invalid MsgType {_show(msg_type)}: not a FIX 4.4 message", False)
        return v
    try:
        _walk(d, m, tags, v, allow_unknown, check_order, app_required or m.admin)
    except _Bad as e:
        v.static = (e.reason, e.tag, e.text, False)
        return v
    if not (app_values or m.admin):
        v.typed = [(i, fd) for i, fd in v.typed if fd.type == "NumInGroup"]
    v.values = _value_function(v)
    return v


class _Bad(Exception):
    def __init__(self, reason: int, tag: int | None, text: str) -> None:
        super().__init__(text)
        self.reason, self.tag, self.text = reason, tag, text


def _walk(d: Dictionary, m: MessageDef, tags: list[int], v: _Verdict, allow_unknown: bool,
          check_order: bool, required: bool) -> None:
    """Check a layout's structure; collect its typed fields and group counts."""
    header, trailer = d.header, d.trailer
    section = 0  # 0 header, 1 body, 2 trailer
    seen: set[int] = set()
    n = len(tags)
    i = 0
    mname = d.msg_name(m.msg_type)
    while i < n:
        t = tags[i]
        if t in header.body:
            sec, groups = 0, header.groups
        elif t in m.body:
            sec, groups = 1, m.groups
        elif t in trailer.body:
            sec, groups = 2, trailer.groups
        else:
            if t in m.nested or t in header.groups.get(627, _NO_GROUP).all_tags:
                raise _Bad(15, t, f"Repeating group fields out of order: {d.field_name(t)} is "
                                  f"outside its group in {mname}")
            fd = d.fields.get(t)
            if not allow_unknown and t < _USER_DEFINED:
                if fd is None:
                    raise _Bad(0, t, f"Invalid tag number: {t} is not a FIX 4.4 field")
                raise _Bad(2, t, f"Tag not defined for this message type: {fd.label} in {mname}")
            if fd is not None:
                _typed(v, i, fd)
            i += 1
            continue
        if sec < section:
            if check_order:
                raise _Bad(14, t, f"Tag specified out of required order: {d.field_name(t)} "
                                  f"after the {('header', 'body', 'trailer')[section]}")
        else:
            section = sec
        if t in seen:
            raise _Bad(13, t, f"Tag appears more than once: {d.field_name(t)}")
        seen.add(t)
        _typed(v, i, d.fields[t])
        i += 1
        g = groups.get(t)
        if g is not None:
            i = _group(d, g, tags, i, v)
    for sec_def, where in ((header, "header"), (m, mname), (trailer, "trailer")):
        if sec_def is m and not required:
            continue
        for t in sec_def.required:
            if t not in seen:
                raise _Bad(1, t, f"Required tag missing: {d.field_name(t)} in {where}")
    if required:
        top = {t: i for i, t in enumerate(tags)}
        for tag, when_tag, when in m.conditions:
            if tag not in seen and when_tag in seen:
                v.conds.append((top[when_tag], when, tag, when_tag))


_NO_GROUP = GroupDef(0, 0, {}, (), {})


def _group(d: Dictionary, g: GroupDef, tags: list[int], i: int, v: _Verdict) -> int:
    """Walk a group's entries from ``tags[i]``; return where it ends. The count's own check
    (against the entries found) is per message: its value is data, not layout."""
    count_index = i - 1
    n = len(tags)
    entries = 0
    order = g.order
    while i < n and tags[i] in order:
        t = tags[i]
        if t != g.delimiter:
            raise _Bad(15, g.count_tag, f"Repeating group fields out of order: an entry of "
                                        f"{d.field_name(g.count_tag)} starts with "
                                        f"{d.field_name(t)}, not {d.field_name(g.delimiter)}")
        entries += 1
        last = -1
        present: set[int] = set()
        while i < n and tags[i] in order:
            t = tags[i]
            pos = order[t]
            if t == g.delimiter and last >= 0:
                break  # the next entry
            if pos <= last:
                raise _Bad(15, t, f"Repeating group fields out of order: {d.field_name(t)} in "
                                  f"{d.field_name(g.count_tag)}")
            last = pos
            present.add(t)
            _typed(v, i, d.fields[t])
            i += 1
            nested = g.groups.get(t)
            if nested is not None:
                i = _group(d, nested, tags, i, v)
        for r in g.required:
            if r not in present:
                raise _Bad(1, r, f"Required tag missing: {d.field_name(r)} in an entry of "
                                 f"{d.field_name(g.count_tag)}")
    v.counts.append((count_index, entries))
    return i


def _typed(v: _Verdict, i: int, fd: FieldDef) -> None:
    if fd.tag in _CHECKED_ELSEWHERE or fd.type == "NumInGroup":
        if fd.type == "NumInGroup":
            v.typed.append((i, fd))  # for its name in _diagnose
        return
    if fd.values is not None or fd.type not in _STRINGS:
        v.typed.append((i, fd))


_STRINGS = frozenset({"String", "Currency", "Exchange", "Country", "data"})


_TO_NINES = bytes.maketrans(b"0123456789", b"9999999999")
_TIMES = frozenset({"UTCTimestamp", "UTCTimeOnly", "UTCDateOnly", "LocalMktDate", "MonthYear",
                    "DayOfMonth"})
_MAX_LEARNED = 4096


def _value_function(v: _Verdict) -> Callable[[list[bytes]], bool] | None:
    """One generated expression checking this layout's values; anything it rejects,
    ``_diagnose`` explains (or finds valid after all).

    Enumerations are set lookups. Numbers and times are checked together by their
    *skeleton*: their values joined, every digit turned into a 9. Whether a value is a valid
    int, float or time depends only on which characters are digits, so a skeleton checked once
    (``_learn``) answers for every later message with the same one: a set lookup instead of a
    pattern per field. A date's or time's ranges (no month 13) are not in its skeleton: those
    values' leading parts are remembered the same way. The source holds only ints we produced;
    constants are default arguments.
    """
    terms: list[str] = []
    consts: dict[str, object] = {}
    skel: list[int] = []
    times: list[tuple[int, int]] = []  # (index, prefix length)
    for i, n in v.counts:
        terms.append(f"v[{i}] == {bytes(b'%d' % n)!r}")
    for k, (i, when, _t, _w) in enumerate(v.conds):
        consts[f"w{k}"] = when
        terms.append(f"v[{i}] not in w{k}")
    for i, fd in v.typed:
        t = fd.type
        if t == "NumInGroup":
            continue
        x = f"v[{i}]"
        if fd.values is not None and t != "MultipleValueString":
            name = f"e{len(consts)}"
            consts[name] = fd.values
            terms.append(f"{x} in {name}")
        elif t == "Boolean":
            terms.append(f"({x} == b'Y' or {x} == b'N')")
        elif t == "char":
            terms.append(f"len({x}) == 1")
        elif t in _PATTERNS:
            skel.append(i)
            if t in _TIMES:
                times.append((i, 17 if t == "UTCTimestamp" else 8))
        else:
            name = f"c{len(consts)}"
            consts[name] = _checker(fd)
            terms.append(f"{name}({x})")
    if skel:
        consts["ok_skel"] = set()
        consts["nines"] = _TO_NINES
        if skel == list(range(skel[0], skel[-1] + 1)):  # side by side: a slice is cheaper
            terms.append(f"b'|'.join(v[{skel[0]}:{skel[-1] + 1}]).translate(nines) in ok_skel")
        else:
            consts["pick"] = itemgetter(*skel) if len(skel) > 1 else (lambda v, i=skel[0]: (v[i],))
            terms.append("b'|'.join(pick(v)).translate(nines) in ok_skel")
    for k, (i, n) in enumerate(times):
        name = f"ok_t{k}"
        consts[name] = set()
        terms.append(f"v[{i}][:{n}] in {name}")
    v.learned = (skel, [(i, n, consts[f"ok_t{k}"]) for k, (i, n) in enumerate(times)],
                 consts.get("ok_skel"))
    if not terms:
        return None
    consts["diagnose"] = lambda vals: _diagnose(v, vals)
    args = "".join(f", {k}={k}" for k in consts)
    src = f"lambda v{args}: None if {' and '.join(terms)} else diagnose(v)"
    return eval(src, {"__builtins__": {}}, consts)  # noqa: S307


def _checker(fd: FieldDef) -> Callable[[bytes], bool]:
    return lambda b: fd.check(b) is None


def _learn(v: _Verdict, vals: list[bytes]) -> None:
    """A message of this layout was found valid the slow way: remember its skeleton and its
    dates' leading parts, so the next message like it passes the quick check."""
    skel, times, ok_skel = v.learned
    if ok_skel is not None:
        if len(ok_skel) >= _MAX_LEARNED:
            ok_skel.clear()
        ok_skel.add(b"|".join([vals[i] for i in skel]).translate(_TO_NINES))
    for i, n, ok in times:
        if len(ok) >= _MAX_LEARNED:
            ok.clear()
        ok.add(vals[i][:n])


def _show(b: bytes) -> str:
    return repr(bytes(b[:40]))[2:-1] + ("…" if len(b) > 40 else "") if b else "empty"
