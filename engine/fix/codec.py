"""FIX 4.4 tag=value codec: an encoder, a sans-IO stream decoder that validates, timestamps.

simplefix is the codec of record: tests hold this module against it on random messages, and
``FixMessage.to_simplefix`` hands a decoded message to anything that wants simplefix's API.
It cannot sit on the hot path (it parses byte by byte in Python, about 12k ExecutionReports/s
here), so encode and decode here are our own, built from the few operations CPython does in C:

Theory of operation (decode)
    Framing comes first and costs little: ``8=FIX.4.4<SOH>9=<n><SOH>`` fixes where the
    message ends (``n`` bytes of body, then ``10=ddd<SOH>``); nothing is scanned for SOH.
    CheckSum is the byte sum modulo 256, which ``zlib.adler32(data, 0)`` gives in its low
    16 bits while the sum stays under 65521 (up to 256 bytes, or 515 bytes of ASCII); longer
    input is summed in 256-byte chunks. A valid frame is split into tags and values by
    turning every SOH into ``=`` and splitting once. The split is trusted only if deleting
    everything but ``=`` and SOH leaves ``=<SOH>`` repeated (exactly one ``=`` per field) and
    no value is empty; anything else (``=`` inside a value, data fields, bad fields) takes a
    field-by-field path that also says what is wrong.

    Venues send few distinct *layouts* (sequences of tags). A layout is checked once — tag
    numbers, MsgType third, required header fields, repeats, data fields — and cached with
    its ``int`` tags and its tag → position map, keyed by the tags joined with ``=`` (which
    no tag token can hold). Each message then only pays for its values: ``get(11)`` is a dict
    lookup and a list index. Repeating-group bounds are cached per layout too, with a
    generated function building the entries' dicts (see ``_group_builder``).

Garbled and invalid input (FIX 4.4 Volume 2)
    A message whose BeginString, BodyLength or CheckSum is wrong, or whose MsgType is not the
    third field, is *garbled*: the session ignores it (no Reject, no sequence number used).
    The decoder reports it as ``FixGarbled`` (for logs and counters) and resynchronises on the
    next ``8=FIX``. Bytes before a message are reported once per run, as one event. A
    well-framed message with a bad field (required header field missing, tag not a number,
    tag without value, tag repeated outside a repeating group, SOH inside a value) is reported
    as ``FixGarbled`` with ``session_reject_reason`` set: the session sends a Reject (35=3)
    and counts the sequence number. CompID, SendingTime accuracy and sequence checks are the
    session's business, not the codec's.

    Nothing waits without bound: a claimed BodyLength making a message larger than
    ``max_message_size`` is garbled at once, and a run of garbage is reported in pieces of at
    most that size. Where a garbled message's end is not known (a bad BodyLength) its bytes
    run to the next ``8=FIX``, so it is reported when that start arrives. Events do not depend
    on how the stream was split into ``feed`` calls.

Exceptions::

    FixError
    ├── FixFieldError (also ValueError)   a field is missing or has a value of the wrong form
    ├── FixEncodeError (also ValueError)  a message we were asked to build is not valid FIX
    ├── FixDecodeError (also ValueError)  ``decode`` was given other than one whole message
    └── TimestampError (also ValueError)  a UTCTimestamp that cannot be read or written

``FixDecoder.next`` never raises on any input bytes.
"""

from __future__ import annotations

import calendar
import enum
import re
import time
import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterable, Sequence, Union

import simplefix

from engine.fix.tags import (
    GROUP_MEMBERS,
    NUM_IN_GROUP_TAGS,
    RAW_DATA_TAGS,
    SessionRejectReason,
    tag_name,
)

__all__ = [
    "BEGIN_STRING",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_SEQ_NUM",
    "SOH",
    "FixDecodeError",
    "FixDecoder",
    "FixEncodeError",
    "FixError",
    "FixFieldError",
    "FixGarbled",
    "FixMessage",
    "GarbleKind",
    "TimestampError",
    "checksum",
    "decode",
    "encode",
    "encode_new_order_single",
    "float_bytes",
    "frame",
    "parse_utc_timestamp",
    "utc_timestamp",
]

SOH = b"\x01"
BEGIN_STRING = b"FIX.4.4"
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
#: The highest sequence number either side may use (MsgSeqNum, NewSeqNo, Begin/EndSeqNo): a
#: signed 32-bit number, as QuickFIX and most FIX engines keep them, and as the store keeps them.
MAX_SEQ_NUM = 2**31 - 1

FieldValue = Union[bytes, str, int, float, Decimal, bool]

_Reason = SessionRejectReason
_NO_DEFAULT = object()


# -- ERRORS ------------------------------------------------------------------------------------
class FixError(Exception):
    """Base of this module's errors."""


class FixFieldError(FixError, ValueError):
    """A field is missing or its value is not of its type; carries the Reject reason."""

    def __init__(self, tag: int, reason: str, session_reject_reason: SessionRejectReason,
                 value: bytes | None = None) -> None:
        super().__init__(reason)
        self.tag = tag
        self.reason = reason
        self.session_reject_reason = session_reject_reason
        self.value = value


class FixEncodeError(FixError, ValueError):
    """A message we were asked to build is not valid FIX (a programming error upstream)."""


class FixDecodeError(FixError, ValueError):
    """``decode`` was given bytes that are not exactly one valid message."""

    def __init__(self, reason: str, event: "FixGarbled | None" = None) -> None:
        super().__init__(reason)
        self.event = event


class TimestampError(FixError, ValueError):
    """A UTCTimestamp that cannot be parsed, or a time that cannot be written as one."""


# -- CHECKSUM ----------------------------------------------------------------------------------
_adler32 = zlib.adler32


def checksum(data: bytes) -> int:
    """Return the FIX CheckSum of ``data``: the sum of its bytes modulo 256."""
    n = len(data)
    # adler32's low half is the byte sum modulo 65521: exact while the sum stays below that
    if n <= 256 or (n <= 515 and data.isascii()):
        return _adler32(data, 0) & 0xFF
    mv = memoryview(data)
    total = 0
    for i in range(0, n, 256):
        total += _adler32(mv[i:i + 256], 0) & 0xFFFF
    return total & 0xFF


# -- TIMESTAMPS --------------------------------------------------------------------------------
_MS = [b".%03d" % i for i in range(1000)]
_ts_cache: tuple[int, bytes] = (-1 << 70, b"")  # (second, b"YYYYMMDD-HH:MM:SS"), swapped whole


def _format_second(sec: int) -> bytes:
    try:
        t = time.gmtime(sec)
    except (OverflowError, OSError, ValueError) as e:
        raise TimestampError(f"{sec} s since the epoch cannot be a UTCTimestamp: {e}") from None
    if not 1 <= t.tm_year <= 9999:
        raise TimestampError(f"year {t.tm_year} cannot be written as a UTCTimestamp")
    return b"%04d%02d%02d-%02d:%02d:%02d" % t[:6]


def utc_timestamp(ns: int) -> bytes:
    """Format integer ns since the epoch as a UTCTimestamp, ``YYYYMMDD-HH:MM:SS.sss``.

    The seconds part changes once a second, so it is cached; each call formats only the
    milliseconds (truncated, not rounded).
    """
    global _ts_cache
    sec, rem = divmod(ns, 1_000_000_000)
    cached = _ts_cache
    if cached[0] != sec:
        cached = _ts_cache = (sec, _format_second(sec))
    return cached[1] + _MS[rem // 1_000_000]


_day_cache: dict[bytes, int] = {}  # b"YYYYMMDD" -> ns at that day's midnight


def _day_ns(date: bytes, text: object) -> int:
    ns = _day_cache.get(date)
    if ns is None:
        if not date.isdigit():
            raise TimestampError(f"UTCTimestamp {text!r}: the date is not YYYYMMDD")
        y, m, d = int(date[:4]), int(date[4:6]), int(date[6:])
        if not (y >= 1 and 1 <= m <= 12 and 1 <= d <= calendar.monthrange(y, m)[1]):
            raise TimestampError(f"UTCTimestamp {text!r}: there is no date {y:04d}-{m:02d}-{d:02d}")
        ns = calendar.timegm((y, m, d, 0, 0, 0)) * 1_000_000_000
        if len(_day_cache) >= 4096:
            _day_cache.clear()
        _day_cache[date] = ns
    return ns


def parse_utc_timestamp(value: bytes | str) -> int:
    """Read a UTCTimestamp (``YYYYMMDD-HH:MM:SS`` with an optional ``.sss``, ``.ssssss`` or
    ``.sssssssss``) as integer ns since the epoch; raise ``TimestampError`` saying why not.

    Seconds may be 60 (a leap second), which counts as the first instant of the next minute.
    """
    b = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    n = len(b)
    if n < 17 or b[8] != 45 or b[11] != 58 or b[14] != 58 or (n > 17 and b[17] != 46):
        raise TimestampError(f"UTCTimestamp {value!r} is not YYYYMMDD-HH:MM:SS[.sss]")
    hms = b[9:11] + b[12:14] + b[15:17]
    frac = b[18:]
    if not hms.isdigit() or (n > 17 and (len(frac) not in (3, 6, 9) or not frac.isdigit())):
        raise TimestampError(f"UTCTimestamp {value!r} is not YYYYMMDD-HH:MM:SS[.sss]")
    hh, mm, ss = int(hms[:2]), int(hms[2:4]), int(hms[4:])
    if hh > 23 or mm > 59 or ss > 60:
        raise TimestampError(f"UTCTimestamp {value!r}: there is no time "
                             f"{hh:02d}:{mm:02d}:{ss:02d}")
    ns = _day_ns(b[:8], value) + (hh * 3600 + mm * 60 + ss) * 1_000_000_000
    if frac:
        ns += int(frac) * 10 ** (9 - len(frac))
    return ns


# -- MESSAGES ----------------------------------------------------------------------------------
class _Layout:
    """What every message with one sequence of tags shares, worked out once and cached.

    Venues send few distinct layouts (a layout per MsgType and set of optional fields), so
    tag validity, repeat rules, required header fields, ``int`` tags, the tag → position map
    and repeating-group bounds are computed on a layout's first message only.
    """

    __slots__ = ("tags", "int_tags", "index", "problem", "plain", "i34", "i43", "specs",
                 "checks")

    def __init__(self, tags: list[bytes]) -> None:
        self.tags = tags
        ints = [int(t) if _is_tag(t) else -1 for t in tags]
        self.int_tags = ints
        n = len(ints)
        self.index: dict[int, int] = dict(zip(reversed(ints), range(n - 1, -1, -1)))
        self.index.pop(-1, None)
        self.i34 = self.index.get(34, -1)
        self.i43 = self.index.get(43, -1)
        #: (kind or SessionRejectReason, ref_tag, reason) when no message of this layout is valid
        self.problem: tuple[GarbleKind | SessionRejectReason, int | None, str] | None = \
            self._find_problem()
        data = not self.index.keys().isdisjoint(RAW_DATA_TAGS)
        self.plain = self.problem is None and not data  # the split parse can be trusted
        #: (count tag, first tag, count) -> a function building that group's entries
        self.specs: dict[tuple[int, int | None, bytes],
                         Callable[[list[bytes]], list[dict[int, bytes]]]] = {}
        #: the data dictionary's verdicts on this layout: per set of options, by MsgType
        #: (engine.fix.dictionary.validator)
        self.checks: list[dict[bytes, Callable]] | None = None

    def _find_problem(self) -> tuple[GarbleKind | SessionRejectReason, int | None, str] | None:
        tags = self.tags
        if len(tags) < 4 or tags[2] != b"35":
            where = f"field {tags.index(b'35') + 1}" if b"35" in tags else "missing"
            return (GarbleKind.MSG_TYPE, None, f"MsgType (35) is not the third field ({where})")
        for t in tags:
            if not _is_tag(t):
                return (_Reason.INVALID_TAG_NUMBER, None, f"tag {_show(t)} is not a tag number")
        bad = _repeated(tags)
        if bad is not None:
            return (_Reason.TAG_APPEARS_MORE_THAN_ONCE, bad,
                    f"{tag_name(bad)} appears more than once")
        for t in _REQUIRED:
            if t not in self.index:
                return (_Reason.REQUIRED_TAG_MISSING, t, f"{tag_name(t)} is missing")
        return None


_layouts: dict[bytes, _Layout] = {}  # b"8=9=35=…=10" -> its layout


def _layout(key: bytes, tags: list[bytes]) -> _Layout:
    lay = _layouts.get(key)
    if lay is None:
        if len(_layouts) >= 1024:  # a peer sending endless new layouts: start over
            _layouts.clear()
        lay = _layouts[key] = _Layout(tags)
    return lay


class FixMessage:
    """A decoded message: wire bytes, MsgType, MsgSeqNum and its fields in wire order.

    Lookups take the int tag: ``get(11)`` (first occurrence), ``get_int``, ``get_float``,
    ``get_bool``, ``msg[11]``, ``11 in msg``. ``fields`` is the ``(int, bytes)`` list in wire
    order, header and trailer included. ``groups`` reads repeating groups.
    """

    __slots__ = ("raw", "msg_type", "seq", "_vals", "_index", "_lay")

    def __init__(self, raw: bytes, msg_type: bytes, seq: int, vals: list[bytes],
                 lay: _Layout) -> None:
        self.raw = raw  #: the exact wire bytes, 8= to the trailer's SOH
        self.msg_type = msg_type  #: MsgType (35), e.g. b"8"
        self.seq = seq  #: MsgSeqNum (34)
        self._vals = vals
        self._index = lay.index
        self._lay = lay

    # -- lookups --
    def get(self, tag: int, default: bytes | None = None) -> bytes | None:
        """Value of the first occurrence of ``tag``, or ``default``."""
        i = self._index.get(tag)
        return default if i is None else self._vals[i]

    def __getitem__(self, tag: int) -> bytes:
        i = self._index.get(tag)
        if i is None:
            raise self._missing(tag)
        return self._vals[i]

    def __contains__(self, tag: int) -> bool:
        return tag in self._index

    def get_int(self, tag: int, default: object = _NO_DEFAULT) -> int:
        """Value of ``tag`` as an int; FixFieldError if missing (and no default) or not one."""
        i = self._index.get(tag)
        if i is None:
            if default is _NO_DEFAULT:
                raise self._missing(tag)
            return default  # type: ignore[return-value]
        v = self._vals[i]
        try:
            return int(v)
        except ValueError:
            raise FixFieldError(tag, f"{tag_name(tag)} was {_show(v)}, not an integer",
                                _Reason.INCORRECT_DATA_FORMAT_FOR_VALUE, v) from None

    def get_float(self, tag: int, default: object = _NO_DEFAULT) -> float:
        """Value of ``tag`` as a finite float (Price, Qty, …); FixFieldError otherwise."""
        i = self._index.get(tag)
        if i is None:
            if default is _NO_DEFAULT:
                raise self._missing(tag)
            return default  # type: ignore[return-value]
        v = self._vals[i]
        try:
            x = float(v)
        except ValueError:
            x = _NAN
        if x - x != 0.0:  # nan, inf, or not a number at all
            raise FixFieldError(tag, f"{tag_name(tag)} was {_show(v)}, not a finite number",
                                _Reason.INCORRECT_DATA_FORMAT_FOR_VALUE, v)
        return x

    def get_bool(self, tag: int, default: object = _NO_DEFAULT) -> bool:
        """Value of a FIX Boolean (``Y``/``N``); FixFieldError otherwise."""
        v = self.get(tag)
        if v == b"Y":
            return True
        if v == b"N":
            return False
        if v is None:
            if default is _NO_DEFAULT:
                raise self._missing(tag)
            return default  # type: ignore[return-value]
        raise FixFieldError(tag, f"{tag_name(tag)} was {_show(v)}, not Y or N",
                            _Reason.VALUE_IS_INCORRECT, v)

    def _missing(self, tag: int) -> FixFieldError:
        return FixFieldError(tag, f"{tag_name(tag)} is missing from MsgType "
                                  f"{self.msg_type.decode('ascii', 'replace')} seq {self.seq}",
                             _Reason.REQUIRED_TAG_MISSING)

    @property
    def poss_dup(self) -> bool:
        """PossDupFlag (43) is Y: a resend of a message that may have been seen already."""
        i = self._lay.i43
        return i >= 0 and self._vals[i] == b"Y"

    @property
    def fields(self) -> list[tuple[int, bytes]]:
        """Every field in wire order as ``(tag, value)``, header and trailer included.

        (Only in a message that is being rejected can a tag be -1: it was not a number.)
        """
        return list(zip(self._lay.int_tags, self._vals))

    def __len__(self) -> int:
        return len(self._vals)

    # -- repeating groups --
    def groups(self, count_tag: int, first_tag: int | None = None,
               members: Iterable[int] | None = None) -> list[dict[int, bytes]]:
        """Entries of the repeating group opened by NumInGroup ``count_tag``, as dicts.

        An entry starts at each ``first_tag`` (default: the field after the count) and takes
        the fields up to the next one; the last entry ends at the first field that is not a
        member. Members are ``members`` if given, else ``tags.GROUP_MEMBERS[count_tag]``,
        else the tags the earlier entries used (so pass ``members`` for an unknown group with
        optional fields or a single entry). No group → ``[]``. A count that does not match
        the entries, or an entry not starting with ``first_tag``, raises FixFieldError
        (SessionRejectReason 16 or 15) naming the group.
        """
        i = self._index.get(count_tag)
        if i is None:
            return []
        vals = self._vals
        if members is None:
            key = (count_tag, first_tag, vals[i])
            specs = self._lay.specs
            build = specs.get(key)
            if build is None:
                build = _group_builder(_group_spec(self._lay, i, vals[i], count_tag, first_tag,
                                                   None))
                if len(specs) < 64:
                    specs[key] = build
            return build(vals)
        spec = _group_spec(self._lay, i, vals[i], count_tag, first_tag, members)
        return [dict(zip(keys, vals[a:b])) for keys, a, b in spec]

    # -- other forms --
    def to_simplefix(self) -> simplefix.FixMessage:
        """The same fields as a ``simplefix.FixMessage`` (wire order kept)."""
        m = simplefix.FixMessage()
        for t, v in self.fields:
            m.append_pair(t, v)
        return m

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FixMessage) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        text = self.raw.replace(SOH, b"|").decode("ascii", "backslashreplace")
        return f"FixMessage({text})"


_NAN = float("nan")


def _group_spec(lay: _Layout, i: int, count: bytes, count_tag: int, first_tag: int | None,
                members: Iterable[int] | None) -> list[tuple[tuple[int, ...], int, int]]:
    """Where each entry of a group lies in a layout: ``[(entry's int tags, start, stop)]``."""
    tags = lay.int_tags
    if not _is_count(count):
        raise FixFieldError(count_tag, f"{tag_name(count_tag)} was {_show(count)}, not a count",
                            _Reason.INCORRECT_DATA_FORMAT_FOR_VALUE, count)
    n = int(count)
    if n == 0:
        return []
    start = i + 1
    stop = len(tags) - 1  # CheckSum is never in a group
    if start >= stop:
        raise _bad_count(count_tag, n, 0)
    first = tags[start] if first_tag is None else first_tag
    if tags[start] != first:
        raise FixFieldError(
            count_tag, f"{tag_name(count_tag)}'s first entry starts with "
                       f"{tag_name(tags[start])}, not {tag_name(first)}",
            _Reason.REPEATING_GROUP_FIELDS_OUT_OF_ORDER)
    bounds = [start]
    j = start
    for k in range(1, n):
        try:
            j = tags.index(first, j + 1, stop)
        except ValueError:
            raise _bad_count(count_tag, n, k) from None
        bounds.append(j)
    if members is not None:
        mset: set[int] | frozenset[int] | None = set(members)
    else:
        mset = GROUP_MEMBERS.get(count_tag)
        if mset is None and n > 1:
            mset = set(tags[start:j])
    k = j + 1
    if mset is None:  # one entry, members unknown: up to the first repeat
        seen = {first}
        while k < stop and tags[k] not in seen:
            seen.add(tags[k])
            k += 1
    else:
        while k < stop and tags[k] in mset and tags[k] != first:
            k += 1
    if k < stop and tags[k] == first:
        raise _bad_count(count_tag, n, n + 1)
    bounds.append(k)
    return [(tuple(tags[a:b]), a, b) for a, b in zip(bounds, bounds[1:])]


def _group_builder(spec: list[tuple[tuple[int, ...], int, int]]
                   ) -> Callable[[list[bytes]], list[dict[int, bytes]]]:
    """A function making a layout's group entries from a message's values.

    ``dict(zip(keys, vals[a:b]))`` costs about 320 ns for six fields; a dict display with
    constant keys (``{279: v[3], 269: v[4], …}``) about 140 ns, so for groups of a sensible size
    the display is generated once per layout. The source holds only ints we produced.
    """
    if not spec or len(spec) > 64 or spec[-1][2] - spec[0][1] > 512:
        return lambda vals: [dict(zip(keys, vals[a:b])) for keys, a, b in spec]
    entries = ", ".join(
        "{" + ", ".join(f"{int(t)}: v[{a + j}]" for j, t in enumerate(keys)) + "}"
        for keys, a, _ in spec)
    return eval(f"lambda v: [{entries}]", {"__builtins__": {}})  # noqa: S307 - ints only


def _bad_count(count_tag: int, n: int, seen: int) -> FixFieldError:
    there = f"more than {n}" if seen > n else f"only {seen}"
    return FixFieldError(count_tag, f"{tag_name(count_tag)} says {n} entries but there are {there}",
                         _Reason.INCORRECT_NUMINGROUP_COUNT_FOR_REPEATING_GROUP)


class GarbleKind(enum.StrEnum):
    """What was wrong with input the decoder reports as ``FixGarbled``."""

    GARBAGE = "garbage"  #: bytes that are not a message, before the next 8=FIX
    BEGIN_STRING = "begin_string"  #: BeginString (8) is not FIX.4.4, or is not the first field
    BODY_LENGTH = "body_length"  #: BodyLength (9) missing, not a number, or not the body's size
    OVERSIZE = "oversize"  #: BodyLength makes a message over max_message_size
    CHECKSUM = "checksum"  #: CheckSum (10) is not the byte sum
    MSG_TYPE = "msg_type"  #: MsgType (35) is not the third field
    INVALID = "invalid"  #: well framed, but a field breaks the rules: send a Reject


@dataclass(frozen=True, slots=True)
class FixGarbled:
    """Input the decoder could not turn into a FixMessage.

    ``session_reject_reason`` is None for garbled input (the session ignores it: logs and
    counts it, sends nothing, uses no sequence number). When set (``kind`` INVALID), the
    message was well framed and the session answers with a Reject (35=3) carrying
    RefSeqNum ``ref_seq``, RefTagID ``ref_tag``, RefMsgType ``ref_msg_type`` and this
    reason; ``message`` then holds what could be read of it. ``ref_seq`` is None when
    MsgSeqNum itself is missing or unreadable (FIX says: Logout, not Reject).
    """

    kind: GarbleKind
    reason: str  #: for people: names the tag and what was wrong
    raw: bytes  #: the offending bytes (at most max_message_size of them)
    ref_seq: int | None = None
    ref_tag: int | None = None
    ref_msg_type: bytes | None = None
    session_reject_reason: SessionRejectReason | None = None
    message: FixMessage | None = None

    @property
    def should_reject(self) -> bool:
        """True when FIX says to answer with a Reject (35=3) rather than ignore."""
        return self.session_reject_reason is not None


# -- DECODER -----------------------------------------------------------------------------------
_HEAD = b"8=FIX.4.4\x019="
_START = b"8=FIX"
# a trailer followed by the next message: what a BodyLength running too far looks like
_RUNS_INTO = re.compile(rb"\x0110=[0-9]{3}\x018=FIX").search
_TRAILER = re.compile(rb"\x0110=[0-9]{3}\x01").search
_RAW_DATA_KEY = {b"%d" % t: b"%d" % d for t, d in RAW_DATA_TAGS.items()}  # length -> data
_COUNT_KEYS = frozenset(b"%d" % t for t in NUM_IN_GROUP_TAGS)


class FixDecoder:
    """Sans-IO stream decoder: ``feed(bytes)``, then ``next()`` until it returns None.

    ``next()`` gives a ``FixMessage``, a ``FixGarbled`` event, or None when it needs more
    bytes. It never raises on input. ``max_message_size`` bounds what it waits for.
    """

    __slots__ = ("max_message_size", "_buf", "_pos", "_scan", "_bad")

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 64:
            raise ValueError(f"max_message_size must be at least 64 bytes, was {max_message_size}")
        self.max_message_size = max_message_size
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._scan = 0  # where the search for the next start resumes
        # a garbled run awaiting its end: (kind, reason, body_at, blen), see _garbled
        self._bad: tuple[GarbleKind, str, int, int] | None = None

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned as an event."""
        return len(self._buf) - self._pos

    @property
    def drained(self) -> bool:
        """Every byte fed has been returned as an event (``next()`` would say None)."""
        return self._pos >= len(self._buf) and self._bad is None

    def feed(self, data: bytes) -> None:
        """Append bytes read from the transport."""
        if not data:
            return
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):  # all consumed: take the bytes as they are, no copy
            self._buf = data if type(data) is bytes else bytes(data)
            self._scan = 0
        else:
            # a partial message waits: grow a bytearray (appends and deleting the front are
            # amortised O(1) in CPython), so even byte-by-byte feeding costs O(bytes)
            if type(buf) is bytes:
                buf = bytearray(memoryview(buf)[pos:])
            else:
                del buf[:pos]
            buf += data
            self._buf = buf
            self._scan = max(0, self._scan - pos)
        self._pos = 0

    def next(self) -> FixMessage | FixGarbled | None:
        """The next message or error event, or None if more bytes are needed."""
        buf = self._buf
        pos = self._pos
        try:
            # the hot path: a whole, well-framed message at the front of the buffer
            if self._bad is None and buf.startswith(_HEAD, pos):
                e9 = buf.find(b"\x01", pos + 12, pos + 22)
                if e9 > 0:
                    blen = buf[pos + 12:e9]
                    if blen.isdigit():
                        end = e9 + int(blen) + 8
                        if end <= len(buf) and end - pos <= self.max_message_size:
                            raw = buf[pos:end]
                            if type(raw) is not bytes:
                                raw = bytes(raw)
                            if raw[-8:-4] == b"\x0110=" and raw[-1] == 1 \
                                    and raw[-4:-1].isdigit() \
                                    and checksum(raw[:-7]) == int(raw[-4:-1]):
                                self._pos = end
                                self._scan = end
                                return _parse(raw)
            return self._next_slow()
        except Exception as e:  # a bug must not take the engine down: report it, skip on
            return self._internal_error(pos, e)

    def _internal_error(self, start: int, e: Exception) -> FixGarbled:
        # a message taken off the buffer goes in the event; else skip one byte and go on
        stop = self._pos if self._pos > start else min(start + 1, len(self._buf))
        return self._emit(GarbleKind.GARBAGE, f"decoder error {type(e).__name__}: {e}",
                          start, max(start, stop))

    # -- the slow path: partial input, garbage, garbled frames --
    def _next_slow(self) -> FixMessage | FixGarbled | None:
        buf = self._buf
        pos = self._pos
        n = len(buf)
        if self._bad is not None:
            return self._resync()
        if pos >= n:
            return None
        if not buf.startswith(_START, pos):
            if n - pos < 5 and _START.startswith(buf[pos:]):
                return None  # maybe the start of a message
            self._bad = (GarbleKind.GARBAGE, "", -1, 0)
            self._scan = pos
            return self._resync()
        return self._frame(buf, pos, n)

    def _frame(self, buf: bytes, pos: int, n: int) -> FixMessage | FixGarbled | None:
        """Check the frame at ``pos`` (which starts with 8=FIX) step by step.

        Each decision is taken only once the bytes it rests on are all there, so the outcome
        (event, raw bytes, reason) does not depend on how the input was split.
        """
        limit = self.max_message_size
        e8 = buf.find(b"\x01", pos, pos + 32)
        if e8 < 0:
            if n - pos < 32:
                return None
            return self._garbled(GarbleKind.BEGIN_STRING, "BeginString (8) runs over 32 bytes")
        begin = buf[pos + 2:e8]
        if begin != BEGIN_STRING:
            return self._garbled(GarbleKind.BEGIN_STRING,
                                 f"BeginString was {_show(begin)}, expected FIX.4.4")
        if n - e8 < 3 and b"\x019=".startswith(buf[e8:]):
            return None
        if buf[e8 + 1:e8 + 3] != b"9=":
            return self._garbled(GarbleKind.BODY_LENGTH, "BodyLength (9) is not the second field")
        e9 = buf.find(b"\x01", e8 + 3, e8 + 14)
        if e9 < 0:
            if n < e8 + 14:
                return None
            return self._garbled(GarbleKind.BODY_LENGTH,
                                 f"BodyLength was {_show(buf[e8 + 3:e8 + 14])}..., not a number")
        blen_b = buf[e8 + 3:e9]
        if not blen_b.isdigit():
            return self._garbled(GarbleKind.BODY_LENGTH,
                                 f"BodyLength was {_show(blen_b)}, not a number")
        blen = int(blen_b)
        end = e9 + 1 + blen + 7
        if end - pos > limit:
            return self._garbled(GarbleKind.OVERSIZE,
                                 f"BodyLength {blen} makes a {end - pos}-byte message, over the "
                                 f"{limit}-byte limit")
        body_at = e9 + 1 - pos
        if end > n:
            # Waiting is right unless the claimed body already holds a trailer and the next
            # message's start: then BodyLength is too large, and we would wait for nothing.
            # (A data field carrying a whole FIX message could look like that; none we use.)
            if _RUNS_INTO(buf, max(self._scan, e9), n) is not None:
                return self._garbled(GarbleKind.BODY_LENGTH, "", body_at, blen)
            self._scan = max(e9, n - 12)
            return None
        raw = bytes(buf[pos:end])
        if not (raw[-8:-4] == b"\x0110=" and raw[-1] == 1 and raw[-4:-1].isdigit()):
            return self._garbled(GarbleKind.BODY_LENGTH, "", body_at, blen)
        declared = int(raw[-4:-1])
        actual = checksum(raw[:-7])
        if declared != actual:
            if _RUNS_INTO(raw, body_at) is not None:  # as the incomplete case would have seen
                return self._garbled(GarbleKind.BODY_LENGTH, "", body_at, blen)
            # the frame is whole, so its end is known; resync inside it only if a start is there
            nxt = buf.find(_START, pos + 1, end)
            return self._emit(GarbleKind.CHECKSUM,
                              f"CheckSum {declared:03d} but the message sums to {actual:03d}",
                              pos, end if nxt < 0 else nxt)
        self._pos = end
        self._scan = end
        return _parse(raw)

    def _garbled(self, kind: GarbleKind, reason: str, body_at: int = -1,
                 blen: int = 0) -> FixGarbled | None:
        """A garbled message whose end is unknown: it runs to the next start.

        A wrong BodyLength's reason is written when that end is known (``body_at``: where the
        body starts, from ``pos``), so it reads the same however the input was split.
        """
        self._bad = (kind, reason, body_at, blen)
        self._scan = self._pos + 1
        return self._resync()

    def _resync(self) -> FixGarbled | None:
        buf = self._buf
        pos = self._pos
        limit = pos + self.max_message_size
        j = buf.find(_START, max(self._scan, pos + 1))
        if j < 0 or j > limit:
            if len(buf) < limit + len(_START):
                self._scan = max(pos + 1, len(buf) - len(_START) + 1)
                return None
            j = limit
        kind, reason, body_at, blen = self._bad  # type: ignore[misc]
        return self._emit(kind, reason, pos, j, body_at, blen)

    def _emit(self, kind: GarbleKind, reason: str, start: int, stop: int, body_at: int = -1,
              blen: int = 0) -> FixGarbled:
        raw = bytes(self._buf[start:stop])
        if kind is GarbleKind.GARBAGE and not reason:
            reason = f"{len(raw)} bytes that are not a FIX message skipped"
        elif body_at >= 0:
            m = _TRAILER(raw, body_at - 1)
            reason = (f"BodyLength {blen} but the body is {m.start() + 1 - body_at} bytes"
                      if m is not None else
                      f"BodyLength {blen} does not end on a CheckSum (10) field")
        self._bad = None
        self._pos = stop
        self._scan = stop
        return FixGarbled(kind, reason, raw)


def _is_tag(t: bytes) -> bool:
    """A tag number as FIX writes them: digits, no leading zero (and, here, at most 9)."""
    return 0 < len(t) < 10 and t.isdigit() and t[0] != 48


def _is_count(v: bytes) -> bool:
    """A length or NumInGroup value we can believe (at most 9 digits)."""
    return 0 < len(v) < 10 and v.isdigit()


def _show(b: bytes | bytearray) -> str:
    """Bytes from the wire for a reason text: quoted, escaped, cut at 40."""
    return repr(bytes(b[:40]))[1:] + ("…" if len(b) > 40 else "") if b else "empty"


# -- FIELD PARSING -----------------------------------------------------------------------------
_SOH_TO_EQ = bytes.maketrans(b"\x01", b"=")
_NOT_SEPARATOR = bytes(c for c in range(256) if c not in (1, 61))  # all but SOH and '='
_ALTERNATION = b"=\x01" * (DEFAULT_MAX_MESSAGE_SIZE // 2)  # one '=' per field, then SOH
_REQUIRED = (49, 56, 34, 52)


def _parse(raw: bytes) -> FixMessage | FixGarbled:
    """Fields of a well-framed message with a good CheckSum → FixMessage or a reject event."""
    toks = raw.translate(_SOH_TO_EQ).split(b"=")
    vals = toks[1::2]
    tags = toks[0:-1:2]
    key = b"=".join(tags)  # no tag token can hold '='
    lay = _layouts.get(key) or _layout(key, tags)
    # trust the split only if every field has exactly one '=' and a value (with one '=' a
    # field, an empty value is an '=' right before an SOH: one search in C, not a walk)
    if lay.plain and _ALTERNATION.startswith(raw.translate(None, _NOT_SEPARATOR)) \
            and b"=\x01" not in raw:
        seq_b = vals[lay.i34]
        if len(seq_b) < 11 and seq_b.isdigit():
            seq = int(seq_b)
            i43 = lay.i43
            if 0 < seq <= MAX_SEQ_NUM and (i43 < 0 or vals[i43] == b"Y" or vals[i43] == b"N"):
                return FixMessage(raw, vals[2], seq, vals, lay)
        return _finish(raw, vals, lay)
    return _parse_slow(raw)


def _parse_slow(raw: bytes) -> FixMessage | FixGarbled:
    """Field by field: values with '=', data fields, and diagnosis of bad fields."""
    tags: list[bytes] = []
    vals: list[bytes] = []
    err: tuple[int | None, SessionRejectReason, str] | None = None
    i = 0
    n = len(raw)
    data_tag: bytes | None = None  # the data field whose length we were just told
    data_len = 0
    while i < n:
        s = raw.find(b"\x01", i)
        eq = raw.find(b"=", i, s)
        if eq < 0:  # a piece with no '=': an SOH inside the previous value
            piece = raw[i:s]
            if err is None:
                prev = int(tags[-1]) if tags and _is_tag(tags[-1]) else None
                err = (prev, _Reason.NON_DATA_VALUE_INCLUDES_FIELD_DELIMITER,
                       f"{tag_name(prev) if prev is not None else 'a field'}'s value holds an "
                       f"SOH (then {_show(piece)})")
            if vals:
                vals[-1] = vals[-1] + b"\x01" + piece
            i = s + 1
            continue
        tag = raw[i:eq]
        if data_tag is not None and tag == data_tag:
            s = eq + 1 + data_len
            if s >= n or raw[s] != 1:
                s = raw.find(b"\x01", eq + 1)
                if err is None:
                    err = (int(tag), _Reason.INCORRECT_DATA_FORMAT_FOR_VALUE,
                           f"{tag_name(int(tag))} is not the {data_len} bytes its length says")
        data_tag = None
        value = raw[eq + 1:s]
        if not _is_tag(tag):
            if err is None:
                err = (None, _Reason.INVALID_TAG_NUMBER, f"tag {_show(tag)} is not a tag number")
        elif not value:
            if err is None:
                err = (int(tag), _Reason.TAG_SPECIFIED_WITHOUT_A_VALUE,
                       f"{tag_name(int(tag))} has no value")
        elif tag in _RAW_DATA_KEY:
            if _is_count(value):
                data_tag = _RAW_DATA_KEY[tag]
                data_len = int(value)
            elif err is None:
                err = (int(tag), _Reason.INCORRECT_DATA_FORMAT_FOR_VALUE,
                       f"{tag_name(int(tag))} was {_show(value)}, not a length")
        tags.append(tag)
        vals.append(value)
        i = s + 1
    lay = _layout(b"=".join(tags), tags)
    p = lay.problem
    if p is not None and p[0] is GarbleKind.MSG_TYPE:
        return FixGarbled(GarbleKind.MSG_TYPE, p[2], raw)
    if err is not None:
        return _reject(raw, vals, lay, err[0], err[1], err[2])
    return _finish(raw, vals, lay)


def _finish(raw: bytes, vals: list[bytes], lay: _Layout) -> FixMessage | FixGarbled:
    """The checks left once the fields are known: the layout's, then this message's."""
    p = lay.problem
    if p is not None:
        if p[0] is GarbleKind.MSG_TYPE:
            return FixGarbled(GarbleKind.MSG_TYPE, p[2], raw)
        return _reject(raw, vals, lay, p[1], p[0], p[2])  # type: ignore[arg-type]
    for i, v in enumerate(vals):
        if not v:
            t = lay.int_tags[i]
            return _reject(raw, vals, lay, t, _Reason.TAG_SPECIFIED_WITHOUT_A_VALUE,
                           f"{tag_name(t)} has no value")
    seq_b = vals[lay.i34]
    if not seq_b.isdigit():
        return _reject(raw, vals, lay, 34, _Reason.INCORRECT_DATA_FORMAT_FOR_VALUE,
                       f"MsgSeqNum(34) was {_show(seq_b)}, not a number")
    if len(seq_b) > 10 or not 0 < int(seq_b) <= MAX_SEQ_NUM:
        return _reject(raw, vals, lay, 34, _Reason.VALUE_IS_INCORRECT,
                       f"MsgSeqNum(34) was {_show(seq_b)}; sequence numbers run from 1 to "
                       f"{MAX_SEQ_NUM}")
    if lay.i43 >= 0 and vals[lay.i43] not in (b"Y", b"N"):
        return _reject(raw, vals, lay, 43, _Reason.VALUE_IS_INCORRECT,
                       f"PossDupFlag(43) was {_show(vals[lay.i43])}, not Y or N")
    return FixMessage(raw, vals[2], int(seq_b), vals, lay)


def _repeated(tags: list[bytes]) -> int | None:
    """The first tag repeated where it may not be, or None.

    Without a dictionary of every message's groups the rule is: tags may repeat only after
    the first NumInGroup field; a tag that appears before it may not appear again anywhere.
    ``FixMessage.groups`` checks the group's own shape when the application reads it.
    """
    k = len(tags)
    for i, t in enumerate(tags):
        if t in _COUNT_KEYS:
            k = i + 1
            break
    head = set(tags[:k])
    if len(head) == k and head.isdisjoint(tags[k:]):
        return None
    seen: set[bytes] = set()
    for i, t in enumerate(tags):
        if t in seen and (i < k or t in head):
            return int(t) if _is_tag(t) else None
        seen.add(t)
    return None  # pragma: no cover - the set test above said there is one


def _reject(raw: bytes, vals: list[bytes], lay: _Layout, ref_tag: int | None,
            why: SessionRejectReason, reason: str) -> FixGarbled:
    i34 = lay.i34
    seq = int(vals[i34]) if i34 >= 0 and len(vals[i34]) < 19 and vals[i34].isdigit() else None
    mt = vals[2] if len(vals) > 2 and lay.tags[2] == b"35" and vals[2] else None
    msg = FixMessage(raw, mt or b"", seq or 0, vals, lay)
    return FixGarbled(GarbleKind.INVALID, reason, raw, ref_seq=seq, ref_tag=ref_tag,
                      ref_msg_type=mt, session_reject_reason=why, message=msg)

def decode(data: bytes) -> FixMessage:
    """Decode exactly one whole message; FixDecodeError (holding the event) if it is not."""
    dec = FixDecoder(max_message_size=max(DEFAULT_MAX_MESSAGE_SIZE, len(data) + 64))
    dec.feed(data)
    ev = dec.next()
    if isinstance(ev, FixMessage):
        if dec.buffered:
            raise FixDecodeError(f"{dec.buffered} bytes follow the message")
        return ev
    if ev is None:
        raise FixDecodeError(f"{len(data)} bytes are not a whole message")
    raise FixDecodeError(ev.reason, ev)


# -- ENCODER -----------------------------------------------------------------------------------
_soh_tag_eq: dict[int, bytes] = {}  # 11 -> b"\x0111="


def _field_prefix(tag: int) -> bytes:
    p = _soh_tag_eq.get(tag)
    if p is None:
        if type(tag) is not int:
            if isinstance(tag, int):
                tag = int(tag)  # an IntEnum member
            else:
                raise FixEncodeError(f"tag {tag!r} is not an int")
        if tag <= 0:
            raise FixEncodeError(f"tag {tag} is not a positive number")
        p = b"\x01%d=" % tag
        if len(_soh_tag_eq) < 65536:
            _soh_tag_eq[tag] = p
    return p


for _t in range(1, 2000):
    _field_prefix(_t)
del _t


def _float_bytes(x: float) -> bytes:
    if x - x != 0.0:
        raise FixEncodeError(f"{x!r} cannot be a FIX float")
    r = repr(x)
    if "e" in r:  # FIX floats have no exponent
        r = format(Decimal(r), "f")
    return r.encode("ascii")


#: a float as a FIX value: shortest repr, never an exponent (FixEncodeError if not finite)
float_bytes = _float_bytes


def _value(v: object) -> bytes:
    t = type(v)
    if t is bytes:
        return v  # type: ignore[return-value]
    if t is str:
        return v.encode("utf-8")  # type: ignore[union-attr]
    if t is int:
        return b"%d" % v  # type: ignore[str-format]
    if t is float:
        return _float_bytes(v)  # type: ignore[arg-type]
    if t is bool:
        return b"Y" if v else b"N"
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise FixEncodeError(f"{v!r} cannot be a FIX float")
        return format(v, "f").encode("ascii")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, int):  # IntEnum and friends
        return b"%d" % v
    if isinstance(v, str):
        return str(v).encode("utf-8")
    raise FixEncodeError(f"{v!r} ({t.__name__}) cannot be a FIX value")


def _frame_body(body: bytes) -> bytes:
    """``body`` runs from 35= to its last field's SOH: add BeginString, BodyLength, CheckSum."""
    msg = b"8=FIX.4.4\x019=%d\x01%s" % (len(body), body)
    return b"%s10=%03d\x01" % (msg, checksum(msg))


def _check_fields(out: bytes, nfields: int, head: tuple[bytes, bytes, bytes],
                  pairs: list[tuple[int, FieldValue]]) -> None:
    """Say which field made ``out`` hold other than ``nfields`` SOHs (or an empty header)."""
    for name, v in zip(("MsgType", "SenderCompID", "TargetCompID"), head):
        if not v or b"\x01" in v:
            raise FixEncodeError(f"{name} was {_show(v)}: not a FIX value")
    data_len: dict[int, int] = {}  # data tag -> the length its length field gave
    extra = 0
    for tag, v in pairs:
        b = _value(v)
        k = b.count(b"\x01")
        if k:
            if data_len.get(tag) != len(b):
                raise FixEncodeError(f"value of {tag_name(int(tag))} holds an SOH; only a data "
                                     f"field right after its length field may")
            extra += k
        data_len.clear()
        if int(tag) in RAW_DATA_TAGS and b.isdigit():
            data_len[RAW_DATA_TAGS[int(tag)]] = int(b)
    if out.count(b"\x01") != nfields + extra:  # pragma: no cover - a bug of ours
        raise FixEncodeError("encoded fields do not add up")


def encode(msg_type: bytes, body: Sequence[tuple[int, FieldValue]], *, sender: bytes,
           target: bytes, seq: int, sending_time_ns: int,
           extra_header: Sequence[tuple[int, FieldValue]] = ()) -> bytes:
    """Build a whole FIX 4.4 message.

    Header: BeginString, BodyLength, MsgType, SenderCompID, TargetCompID, MsgSeqNum,
    SendingTime (``utc_timestamp(sending_time_ns)``), then ``extra_header`` (e.g. PossDupFlag
    43 and OrigSendingTime 122 on a resend), then ``body`` in the order given, then CheckSum.
    Values may be bytes, str (UTF-8), int, float (shortest repr, never an exponent), Decimal
    or bool (Y/N). An empty value, a tag that is not a positive int, or an SOH outside a data
    field (one right after its length field, of that length) raises FixEncodeError.
    """
    if type(msg_type) is not bytes or type(sender) is not bytes or type(target) is not bytes:
        msg_type, sender, target = _value(msg_type), _value(sender), _value(target)
    parts = [b"35=%s\x0149=%s\x0156=%s\x0134=%d\x0152=%s" % (
        msg_type, sender, target, seq, utc_timestamp(sending_time_ns))]
    append = parts.append
    nfields = 5
    for fields in (extra_header, body):
        for tag, v in fields:
            p = _soh_tag_eq.get(tag) or _field_prefix(tag)
            if type(v) is not bytes:
                v = _value(v)
            if not v:
                raise FixEncodeError(f"{tag_name(int(tag))} has an empty value")
            append(p)
            append(v)
            nfields += 1
    append(b"\x01")
    out = b"".join(parts)
    if out.count(b"\x01") != nfields or not (msg_type and sender and target):
        _check_fields(out, nfields, (msg_type, sender, target), [*extra_header, *body])
    return _frame_body(out)


def frame(msg_type: bytes, fields: bytes, *, sender: bytes, target: bytes, seq: int,
          sending_time_ns: int) -> bytes:
    """A whole FIX 4.4 message around body ``fields`` that are encoded already
    (``tag=value<SOH>`` each, in order): the header as ``encode`` writes it, then CheckSum.

    For senders that build a message type's body from one ``%`` template (the OMS's orders
    and cancels: a few hundred ns, against a few µs field by field); they answer for their
    values (no SOH, none empty). Byte for byte what ``encode`` makes of the same fields.
    """
    if fields and (fields[-1:] != b"\x01" or fields[:1] == b"\x01"):
        raise FixEncodeError(f"body fields {_show(fields)} do not end with SOH")
    # utc_timestamp, _frame_body and checksum, inline: this is every order's and cancel's path
    sec, rem = divmod(sending_time_ns, 1_000_000_000)
    cached = _ts_cache
    if cached[0] != sec:
        utc_timestamp(sending_time_ns)
        cached = _ts_cache
    body = b"35=%s\x0149=%s\x0156=%s\x0134=%d\x0152=%s%s\x01%s" % (
        msg_type, sender, target, seq, cached[1], _MS[rem // 1_000_000], fields)
    msg = b"8=FIX.4.4\x019=%d\x01%s" % (len(body), body)
    n = len(msg)
    if n <= 256 or (n <= 515 and msg.isascii()):
        return b"%s10=%03d\x01" % (msg, _adler32(msg, 0) & 0xFF)
    return b"%s10=%03d\x01" % (msg, checksum(msg))


_NOS = (b"35=D\x0149=%s\x0156=%s\x0134=%d\x0152=%s\x0111=%s\x011=%s\x0155=%s\x0154=%s"
        b"\x0160=%s\x0138=%s\x0140=%s\x0144=%s\x0159=%s\x01")


def encode_new_order_single(*, sender: bytes, target: bytes, seq: int, sending_time_ns: int,
                            cl_ord_id: bytes, symbol: bytes, side: bytes,
                            order_qty: FieldValue, ord_type: bytes,
                            price: FieldValue | None = None,
                            time_in_force: bytes | None = None, account: bytes | None = None,
                            transact_time_ns: int | None = None,
                            extra_header: Sequence[tuple[int, FieldValue]] = ()) -> bytes:
    """A NewOrderSingle (35=D), byte for byte what ``encode`` makes of the same fields.

    Body order: ClOrdID 11, Account 1, Symbol 55, Side 54, TransactTime 60 (default: the
    SendingTime), OrderQty 38, OrdType 40, Price 44, TimeInForce 59; None leaves a field out.
    One ``%`` format builds the whole body when every field is there.
    """
    ts = utc_timestamp(sending_time_ns)
    tt = ts if transact_time_ns is None else utc_timestamp(transact_time_ns)
    if account is not None and price is not None and time_in_force is not None \
            and not extra_header:
        qty = order_qty if type(order_qty) is bytes else _value(order_qty)
        px = price if type(price) is bytes else _value(price)
        try:
            body = _NOS % (sender, target, seq, ts, cl_ord_id, account, symbol, side, tt, qty,
                           ord_type, px, time_in_force)
        except TypeError:  # a str (or other) where bytes were expected: take the long way
            pass
        else:
            if body.count(b"\x01") == 14 and cl_ord_id and account and symbol and side \
                    and qty and ord_type and px and time_in_force:
                return _frame_body(body)
            # an empty or SOH-bearing value: let encode say which
    fields: list[tuple[int, FieldValue]] = [(11, cl_ord_id)]
    if account is not None:
        fields.append((1, account))
    fields += [(55, symbol), (54, side), (60, tt), (38, order_qty), (40, ord_type)]
    if price is not None:
        fields.append((44, price))
    if time_in_force is not None:
        fields.append((59, time_in_force))
    return encode(b"D", fields, sender=sender, target=target, seq=seq,
                  sending_time_ns=sending_time_ns, extra_header=extra_header)
