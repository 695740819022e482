"""FIX 4.4 market data (35=W/X/Y) from one venue session into MD_EVENT records, sans-IO.

``FixMdNormalizer`` is the market-data path of a FIX venue: it turns what the venue sends
(see ``engine.venue.exchange`` for the layouts) into the engine's one internal record,
``engine.core.events.MD_EVENT``, written straight into a preallocated ``EventBuffer``::

    norm = FixMdNormalizer(0, "SIMA", {"AAA": (0, 0.01), "BBB": (1, 0.25)})
    n = norm.on_message(m, recv_ns, out)          # one decoded FixMessage (from a FixSession)
    n = norm.feed_bytes(data, recv_ns, out)       # or raw socket bytes (FixDecoder inside)

It owns no socket, no clock and no subscription: ``engine.feeds.fixmd.FixMdSubscriptions`` (or the
caller) asks for the data; ``engine.feeds.integrity.FeedIntegrity`` checks the sequence of what
comes out (gaps, duplicates) and says when to ask for a new snapshot.

What each message becomes
-------------------------
- 35=W MarketDataSnapshotFullRefresh: ``CLEAR`` BID, ``CLEAR`` ASK, then one ``NEW`` per bid
  and offer entry at its level (MDPriceLevel 1023 minus one; without 1023, its place among
  its side's entries), every record flagged ``F_SNAPSHOT``, ``seq`` = the snapshot's RptSeq
  (83: the last entry it covers; 0 without one). A snapshot is all or nothing: one bad entry,
  levels that are not 1..n in wire order, or prices out of order drop the whole message
  (a partial book is worse than none), counted under the entry's reason.
- 35=X MarketDataIncrementalRefresh: one record per entry. MDUpdateAction 279 0/1/2 →
  ``NEW``/``CHANGE``/``DELETE``; MDEntryType 269 0/1 → ``BID``/``ASK`` quotes; 269=2 with
  279=0 → a ``TRADE`` (aggressor unknown: side 0); ``seq`` = the entry's RptSeq (83; 0 when
  absent: unsequenced). A bad entry is dropped alone; the others are written. The last
  record of a message gets ``F_LAST``.
- 35=Y MarketDataRequestReject: nothing written; counted (``rejects``), its text in
  ``last_problem``. Other application messages: ``ignored``.

Prices become integer ticks exactly: the decimal text is read as an integer of the tick's
decimals and divided by the tick with no float on the way, so ``"190.23"`` at tick 0.01 is
19023 and ``"190.235"`` is *off the tick grid* (rejected), never rounded. Sizes must be whole
units (``"100"`` or ``"100.0"``). ``exch_ns`` is the message's SendingTime (52), which every
FIX message has and which is cheap to read (0 when it cannot be read: the entries still
count); MDEntryTime (273) is not read. ``recv_ns`` is the caller's receive time.

Bad input never raises: the entry (or the snapshot, or the message) is dropped, one counter
in ``counters`` goes up by its reason and ``last_problem`` says what and where. Reasons:

=================  ==========================================================================
``garbled``        bytes that are not a FIX message: framing, BodyLength, CheckSum, garbage
``invalid``        a well-framed message with a bad field (the FIX session would Reject it)
``rejects``        35=Y MarketDataRequestReject
``stale_request``  a message of an MDReqID that ``set_requests`` does not list
``unknown_symbol`` Symbol (55) not in the instrument table
``missing_field``  a required field absent: 55, 269, 270 (but on a DELETE), 271, 1023 (quotes),
                   268, 55 of a snapshot
``bad_action``     MDUpdateAction (279) not 0/1/2, or a trade entry that is not 279=0
``bad_price``      MDEntryPx not a positive decimal number (NaN, inf, 0, negative, text)
``off_tick``       MDEntryPx not a whole number of the instrument's ticks
``bad_size``       MDEntrySize not a positive whole number (0 is fine on a DELETE)
``bad_level``      MDPriceLevel not 1..255; snapshot levels not 1..n in order
``bad_seq``        RptSeq (83) not a number
``bad_group``      NoMDEntries (268) does not match the entries, or a broken group (each
                   entry must start with MDUpdateAction 279)
``bad_snapshot``   a snapshot's prices out of order on a side
``buffer_full``    ``on_message`` was given a buffer without room for the message
``internal_error`` a bug of ours met by some input (never expected: the fuzz tests hold it at 0)
=================  ==========================================================================

and what went well: ``messages``, ``snapshots``, ``incrementals``, ``records``, ``ignored``
(other message types, admin messages through ``feed_bytes``, entry types other than 0/1/2).

A dropped incremental entry leaves a hole in the RptSeq sequence, so ``FeedIntegrity`` sees a
gap and the book gets a new snapshot: the same outcome as a lost packet, which is right (the
book missed something the venue said).

Cost
----
``fix_md_incremental_decode_per_s`` (bytes → ``FixDecoder`` → this → records, four entries) is
the figure; the decoder alone is about three quarters of it. Two paths, the same records:

1. ``_x_kernel`` (numba, called through its compiled entry point, which skips numba's type
   dispatch) reads an incremental's wire bytes once and writes its records straight into the
   buffer's memory: symbol by an open-addressing hash, exact ticks, SendingTime by date
   arithmetic. It takes only the plainest input and gives up (-1) on anything else, writing
   nothing that counts: then
2. the Python path decides, entry by entry, and says why it drops what it drops. It reads the
   decoder's values list by position (the positions of each entry's fields are worked out
   once per message *layout*, which the codec caches: a venue sends a handful), looks prices,
   sizes and levels up in caches of their text, and packs the whole message with one
   ``struct.pack_into`` (numpy per-field writes from Python cost 100+ ns each; a pack call
   per record costs more than one per message). It is the reference the kernel is tested
   against (same bytes wherever the kernel does not give up) and the whole path when numba
   is missing.

Snapshots (rare) take the Python path, through ``FixMessage.groups``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

import numpy as np

from engine.core.events import (
    ASK,
    BID,
    CHANGE,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    MD_EVENT,
    NEW,
    QUOTE,
    TRADE,
    EventBuffer,
)
from engine.core.ticks import tick_decimals
from engine.fix.codec import (
    FixDecoder,
    FixFieldError,
    FixGarbled,
    FixMessage,
    TimestampError,
    parse_utc_timestamp,
)
from engine.fix.tags import GROUP_MEMBERS, MsgType, Tag

__all__ = ["REASONS", "FixMdNormalizer"]

#: Why input was dropped: the keys of ``counters`` that count problems (module docstring).
REASONS = ("garbled", "invalid", "rejects", "stale_request", "unknown_symbol", "missing_field",
           "bad_action", "bad_price", "off_tick", "bad_size", "bad_level", "bad_seq",
           "bad_group", "bad_snapshot", "buffer_full", "internal_error")
_GOOD = ("messages", "snapshots", "incrementals", "records", "ignored")

_W = MsgType.MarketDataSnapshotFullRefresh
_X = MsgType.MarketDataIncrementalRefresh
_Y = MsgType.MarketDataRequestReject
_MEMBERS = GROUP_MEMBERS[Tag.NoMDEntries]
_ENTRY_TAGS = (279, 269, 55, 270, 271, 1023, 83)  # what an entry's plan locates

# One record is 8 little-endian words: the first packs kind, venue, side, action, level, flags
# and channel (MD_EVENT's first 8 bytes), the second instrument (+ pad), then seq, exch_ns,
# recv_ns, price, size, aux.


def _words_struct(k: int) -> struct.Struct:
    """Packs ``k`` records from 8·k words."""
    return struct.Struct("<" + "3Q5q" * k)


_STRUCTS = [_words_struct(k) for k in range(64)]


def _w0(kind: int, side: int, action: int) -> int:
    return kind | side << 16 | action << 24


# (MDEntryType 269, MDUpdateAction 279) → the record's kind/side/action bits
_CODES: dict[tuple[bytes, bytes], int] = {}
for _t, _side in ((b"0", BID), (b"1", ASK)):
    for _a, _act in ((b"0", NEW), (b"1", CHANGE), (b"2", DELETE)):
        _CODES[(_t, _a)] = _w0(QUOTE, _side, _act)
_CODES[(b"2", b"0")] = _w0(TRADE, 0, NEW)
_DEL = DELETE << 24  # the delete bit of word 0 (CLEAR has it too; never made here)
_TRADE_BIT = TRADE & ~QUOTE  # the kind bit telling a trade from a quote
_LEVELS = {b"%d" % (i + 1): i for i in range(255)}  # MDPriceLevel → 0-based level
_LEVEL_BITS = {k: v << 32 for k, v in _LEVELS.items()}  # … already in word 0's place
_NONE: list = [None]
_CLEAR_BID = _w0(QUOTE, BID, CLEAR) | F_SNAPSHOT << 40
_CLEAR_ASK = _w0(QUOTE, ASK, CLEAR) | F_SNAPSHOT << 40
_SNAP_NEW = (_w0(QUOTE, BID, NEW) | F_SNAPSHOT << 40, _w0(QUOTE, ASK, NEW) | F_SNAPSHOT << 40)
_LAST = F_LAST << 40
_CACHE_MAX = 4096

_sizes: dict[bytes, int] = {}  # "100" → 100: sizes repeat across instruments, venues
_del_sizes: dict[bytes, int] = {b"0": 0}  # what a delete may say its size is: all read 0
_NO_QUOTE = (None, _sizes)


class _Inst:
    """One instrument of the table: its id, tick and price text → ticks cache."""

    __slots__ = ("iid", "tick", "scale", "tick_units", "prices")

    def __init__(self, iid: int, tick: float) -> None:
        if not (tick > 0.0 and tick < float("inf")):
            raise ValueError(f"tick must be a positive number, was {tick!r}")
        self.iid = iid
        self.tick = tick
        self.scale = tick_decimals(tick)  # the tick is tick_units / 10**scale exactly
        self.tick_units = round(tick * 10 ** self.scale)
        self.prices: dict[bytes, int] = {}


_NO_INST = _Inst(0, 1.0)  # what an unknown symbol finds in the fast path: no prices


class _Plan:
    """Where one incremental layout keeps its fields (positions in the values list; -1: the
    entry has no such field)."""

    __slots__ = ("i268", "i52", "count_b", "i262", "entries", "complete", "problem")

    def __init__(self, i268: int, i52: int, count_b: bytes, i262: int,
                 entries: list[tuple[int, ...]], problem: tuple[str, str] | None) -> None:
        self.i268 = i268
        self.i52 = i52
        self.count_b = count_b
        self.i262 = i262
        self.entries = entries
        #: every entry has every field: positions index the values list directly
        self.complete = all(p >= 0 for e in entries for p in e)
        self.problem = problem


class FixMdNormalizer:
    """One venue session's FIX market data → MD_EVENT records (module docstring)."""

    def __init__(self, venue_id: int, venue_name: str,
                 instruments: Mapping[str | bytes, tuple[int, float]], channel: int = 0, *,
                 max_message_size: int = 64 * 1024) -> None:
        if not 0 <= venue_id <= 255:
            raise ValueError(f"venue_id must be 0..255 (MD_EVENT.venue is u1), was {venue_id}")
        if not 0 <= channel < 1 << 16:
            raise ValueError(f"channel must be 0..65535, was {channel}")
        self.venue_id = venue_id
        self.venue_name = venue_name
        self.channel = channel
        self._vc = vc = venue_id << 8 | channel << 48  # venue and channel bits of word 0
        self._codes = {k: v | vc for k, v in _CODES.items()}
        #: the fast path's quote codes, each with the sizes it may have (a delete's: all 0)
        self._quotes = {k: (v, _del_sizes if v & _DEL else _sizes)
                        for k, v in self._codes.items() if not v & _TRADE_BIT}
        self._insts: dict[bytes, _Inst] = {}
        for sym, (iid, tick) in instruments.items():
            if not 0 <= iid < 1 << 32:
                raise ValueError(f"instrument id of {sym!r} must fit u4, was {iid}")
            key = sym.encode() if isinstance(sym, str) else bytes(sym)
            self._insts[key] = _Inst(iid, float(tick))
        self._counters: dict[str, int] = dict.fromkeys(REASONS + _GOOD, 0)
        self._n_inc = 0  # the hot counts, folded into ``counters`` when it is read
        self._n_rec = 0
        #: the last problem: what was dropped and why (None until one)
        self.last_problem: str | None = None
        self._decoder = FixDecoder(max_message_size=max_message_size)
        self._pending: FixMessage | None = None  # decoded, waiting for room in ``out``
        self._plans: dict[object, _Plan] = {}
        self._requests: frozenset[bytes] | None = None
        self._ts_raw: bytes | None = None  # the last SendingTime and its ns
        self._ts_ns = 0
        self._ts_head = b"?"  # the last "YYYYMMDD-HH:MM:SS." seen and its ns
        self._ts_base = 0
        self._mv_rec: np.ndarray | None = None
        self._mv: memoryview | None = None
        self._i64_rec: np.ndarray | None = None
        self._i64: np.ndarray | None = None
        self._tab, self._symb = _kernel_tables(self._insts)
        self._meta = np.zeros(2, dtype=np.int64)
        self._kernel = _kernel_entry() if channel < 1 << 15 else None

    @property
    def counters(self) -> dict[str, int]:
        """Counts by name: the problems (``REASONS``) and ``messages``, ``snapshots``,
        ``incrementals``, ``records``, ``ignored`` (a copy)."""
        c = dict(self._counters)
        c["incrementals"] += self._n_inc
        c["messages"] += self._n_inc
        c["records"] += self._n_rec
        return c

    # -- CONFIGURATION ---------------------------------------------------------------------------
    def set_requests(self, req_ids: Iterable[bytes | str] | None) -> None:
        """Accept only messages of these MDReqIDs (262) from now on (None: every message).

        After a refresh the venue's RptSeq starts again under the new MDReqID; messages of the
        old one still in flight would look like a sequence problem, so they are dropped here
        (``stale_request``). Messages without 262 are always accepted.
        """
        self._requests = None if req_ids is None else frozenset(
            r.encode() if isinstance(r, str) else bytes(r) for r in req_ids)

    @property
    def pending(self) -> bool:
        """A decoded message waits for room in the buffer: call ``feed_bytes(b"", ...)``."""
        return self._pending is not None

    # -- BYTES IN --------------------------------------------------------------------------------
    def feed_bytes(self, data: bytes, recv_ns: int, out: EventBuffer) -> int:
        """Decode ``data`` (socket bytes, any split) and normalize every whole message into
        ``out``; return the records written.

        Garbled or invalid input is counted (``garbled``/``invalid``) and skipped: decoding
        goes on at the next message. Admin messages (heartbeats, logon, …) are ``ignored``:
        this path has no FIX session (sequence numbers, resends); use ``on_message`` behind a
        ``FixSession`` for that. When ``out`` has no room for the next message, it stays
        decoded (``pending``) and the call returns: hand the batch on, clear it, and call
        ``feed_bytes(b"", recv_ns, out)`` to go on. Never raises on input bytes.
        """
        dec = self._decoder
        if data:
            dec.feed(data)
        n0 = out.n
        nxt = dec.next
        on_message = self.on_message
        while True:
            m = self._pending
            if m is None:
                m = nxt()
                if m is None:
                    break
                if m.__class__ is not FixMessage:
                    self._garbled(m)  # type: ignore[arg-type]
                    continue
            # at most one record per 6 bytes (279=0|), plus a snapshot's two CLEARs
            if out.capacity - out.n < len(m.raw) // 6 + 2 and out.n:
                self._pending = m  # it may fit once the batch is handed on
                break
            self._pending = None
            on_message(m, recv_ns, out)  # admin messages count as ``ignored``
        return out.n - n0

    def _garbled(self, g: FixGarbled) -> None:
        if g.session_reject_reason is None:
            self._counters["garbled"] += 1
        else:
            self._counters["invalid"] += 1
        self.last_problem = f"{self.venue_name}: {g.kind.value}: {g.reason}"

    # -- MESSAGES IN -----------------------------------------------------------------------------
    def on_message(self, m: FixMessage, recv_ns: int, out: EventBuffer) -> int:
        """Normalize one decoded application message into ``out``; return the records written.
        Never raises on bad input (module docstring)."""
        try:
            if m.msg_type != _X:
                return self._on_other(m, recv_ns, out)
            if self._kernel is not None:  # the compiled path (end of the module)
                rec = out.rec
                k = self._kernel(m.raw, self._tab, self._symb,
                                 self._i64 if rec is self._i64_rec else self._view64(rec),
                                 out.n, recv_ns, self._vc, self._meta)
                if k >= 0 and (self._requests is None or self._meta[0] < 0
                               or m.raw[self._meta[0]:self._meta[1]] in self._requests):
                    out.n += k
                    self._n_inc += 1
                    self._n_rec += k
                    return k
            # -- the hot path: an incremental. The codec's values and layout are read by
            # position (module docstring, "Cost"); every test runs through the real codec, so
            # a change of its internals shows at once.
            vals: list = m._vals  # noqa: SLF001
            plan = self._plans.get(m._lay) or self._plan(m._lay)  # noqa: SLF001
            self._n_inc += 1
            if plan.problem is not None:
                return self._problem(plan.problem[0], f"incremental {m.seq}: "
                                                      f"{plan.problem[1]}")
            if self._requests is not None and plan.i262 >= 0 \
                    and vals[plan.i262] not in self._requests:
                return self._problem("stale_request", f"incremental {m.seq} of MDReqID "
                                                      f"{_show(vals[plan.i262])}, not a live "
                                                      f"request")
            if vals[plan.i268] != plan.count_b:
                return self._problem("bad_group", f"incremental {m.seq}: NoMDEntries(268) says "
                                                  f"{_show(vals[plan.i268])} but there are "
                                                  f"{len(plan.entries)} entries")
            n = out.n
            if n + len(plan.entries) > out.capacity:  # all or nothing: F_LAST ends a message
                return self._problem("buffer_full", f"incremental {m.seq}: "
                                                    f"{len(plan.entries)} entries, room for "
                                                    f"{out.capacity - n} records")
            ts = vals[plan.i52]
            exch = self._ts_ns if ts == self._ts_raw else self._sending_ns(ts)
            if not plan.complete:
                vals = vals + _NONE  # position -1 (a field the entry lacks) reads None
            insts = self._insts
            quotes = self._quotes
            levels = _LEVEL_BITS
            words: list[int] = []
            for p279, p269, p55, p270, p271, p1023, p83 in plan.entries:
                # The common case in six lookups; anything else (a trade, a delete without a
                # price, a value not seen before, bad input) goes to _entry, field by field.
                inst = insts.get(vals[p55], _NO_INST)
                code, sizes = quotes.get((vals[p269], vals[p279]), _NO_QUOTE)
                px = inst.prices.get(vals[p270])
                sz = sizes.get(vals[p271])  # a delete's sizes all read 0, the others' are > 0
                level = levels.get(vals[p1023])
                sq = vals[p83]
                if code is None or px is None or sz is None or level is None or sq is None \
                        or not sq.isdigit() or len(sq) > 19:
                    w = self._entry(vals, p279, p269, p55, p270, p271, p1023, p83, exch,
                                    recv_ns, m)
                    if w is not None:
                        words += w
                    continue
                words += (code | level, inst.iid, int(sq), exch, recv_ns, px, sz, 0)
            if not words:
                return 0
            # one pack for the whole message: a struct call per record costs more than
            # building the list (numpy per-field writes cost far more still)
            k = len(words) >> 3
            words[-8] |= _LAST
            mv = self._mv if out.rec is self._mv_rec else self._view(out)
            (_STRUCTS[k] if k < 64 else _words_struct(k)).pack_into(mv, n << 6, *words)
            out.n = n + k
            self._n_rec += k
            return k
        except FixFieldError as e:
            return self._problem("bad_group", f"MsgType {_show(m.msg_type)} {m.seq}: "
                                              f"{e.reason}")
        except Exception as e:  # a bug must not take the feed down: count it, go on
            return self._problem("internal_error", f"{type(e).__name__}: {e} (input "
                                                   f"{type(m).__name__})")

    def _on_other(self, m: FixMessage, recv_ns: int, out: EventBuffer) -> int:
        mt = m.msg_type
        self._counters["messages"] += 1
        if mt == _W:
            return self._on_snapshot(m, recv_ns, out)
        if mt == _Y:
            text = (m.get(Tag.Text) or b"").decode("utf-8", "replace")
            code = (m.get(Tag.MDReqRejReason) or b"?").decode("ascii", "replace")
            return self._problem("rejects", f"MarketDataRequest {_show(m.get(Tag.MDReqID))} "
                                            f"rejected (281={code}): {text}")
        self._counters["ignored"] += 1
        return 0

    def _view64(self, rec: np.ndarray) -> np.ndarray:
        """``rec`` as int64 (n, 8), for the kernel; the Python path's view if it cannot be."""
        self._i64_rec = rec
        if rec.dtype == MD_EVENT and rec.ndim == 1 and rec.flags.c_contiguous:
            self._i64 = rec.view(np.int64).reshape(-1, 8)
        else:  # not our own buffer's array: an empty view makes the kernel give up
            self._i64 = np.zeros((0, 8), dtype=np.int64)
        return self._i64

    def _view(self, out: EventBuffer) -> memoryview:
        """The bytes of ``out``'s records, to pack into (kept while ``out.rec`` stays)."""
        self._mv_rec = out.rec
        self._mv = memoryview(out.rec.view(np.uint8))
        return self._mv

    def _entry(self, vals: list, p279: int, p269: int, p55: int, p270: int, p271: int,
               p1023: int, p83: int, exch: int, recv_ns: int, m: FixMessage
               ) -> tuple[int, ...] | None:
        """One entry the fast path could not take, field by field: its record's 8 words, or
        None (counted, with ``last_problem``). Good prices and sizes are cached on the way."""
        sym = vals[p55]
        inst = self._insts.get(sym)
        if inst is None:
            return self._bad_entry("unknown_symbol" if sym is not None else "missing_field",
                                   m, "Symbol(55)", sym)
        a = vals[p279]
        t = vals[p269]
        code = self._codes.get((t, a))
        if code is None:
            if t is None or a is None:
                return self._bad_entry("missing_field", m, "MDEntryType(269)/"
                                       "MDUpdateAction(279)", t if a is not None else a)
            if t == b"0" or t == b"1" or t == b"2":
                return self._bad_entry("bad_action", m, "MDUpdateAction(279)", a)
            self._counters["ignored"] += 1  # an entry type we do not publish: not an error
            return None
        delete = bool(code & _DEL)
        px_b = vals[p270]
        if px_b is None:
            if not delete:
                return self._bad_entry("missing_field", m, "MDEntryPx(270)", None)
            px = 0  # a delete names its level; the price is optional
        else:
            px = inst.prices.get(px_b) or _ticks(inst, px_b)
            if px <= 0:
                return self._bad_entry("off_tick" if px < 0 else "bad_price", m,
                                       "MDEntryPx(270)", px_b)
        sz_b = vals[p271]
        if sz_b is None:
            return self._bad_entry("missing_field", m, "MDEntrySize(271)", None)
        sz = _size(sz_b)
        if sz < 0 or (sz == 0 and not delete):
            return self._bad_entry("bad_size", m, "MDEntrySize(271)", sz_b)
        if delete:
            sz = 0
        if code & _TRADE_BIT:
            level = 0
        else:
            lv_b = vals[p1023]
            level = _LEVEL_BITS.get(lv_b)  # type: ignore[arg-type]
            if level is None:
                return self._bad_entry("missing_field" if lv_b is None else "bad_level", m,
                                       "MDPriceLevel(1023)", lv_b)
        sq = vals[p83]
        if sq is None:
            seq = 0  # unsequenced
        elif sq.isdigit() and len(sq) < 20:  # < 10**19: fits u8
            seq = int(sq)
        else:
            return self._bad_entry("bad_seq", m, "RptSeq(83)", sq)
        return (code | level, inst.iid, seq, exch, recv_ns, px, sz, 0)

    def _write(self, words: list[int], m: FixMessage, out: EventBuffer) -> int:
        """Pack whole records (8 words each) into ``out`` (all or none); the last gets F_LAST."""
        k = len(words) >> 3
        if not k:
            return 0
        n = out.n
        if n + k > out.capacity:
            return self._problem("buffer_full", f"MsgType {_show(m.msg_type)} {m.seq}: {k} "
                                                f"records, room for {out.capacity - n}")
        words[-8] |= _LAST
        mv = self._mv if out.rec is self._mv_rec else self._view(out)
        _words_struct(k).pack_into(mv, n << 6, *words)
        out.n = n + k
        self._n_rec += k
        return k

    def _plan(self, lay: object) -> _Plan:
        """Locate each entry's fields in one incremental layout (cached per layout)."""
        tags: list[int] = lay.int_tags  # type: ignore[attr-defined]
        plans = self._plans
        if len(plans) >= 256:
            plans.clear()
        i268 = tags.index(268) if 268 in tags else -1
        i262 = tags.index(262) if 262 in tags else -1
        i52 = tags.index(52)  # a header field every message has (the codec checks)
        entries: list[tuple[int, ...]] = []
        problem: tuple[str, str] | None = None
        if i268 < 0:
            problem = ("missing_field", "no NoMDEntries(268)")
        else:
            start, stop = i268 + 1, len(tags) - 1  # CheckSum is never in a group
            first = tags[start] if start < stop else None
            spans: list[list[int]] = []
            k = start
            while k < stop and tags[k] in _MEMBERS:
                if tags[k] == first:
                    spans.append([])
                spans[-1].append(k)
                k += 1
            for span in spans:
                where: dict[int, int] = {}
                for k in span:
                    if tags[k] in where:
                        problem = ("bad_group", f"an entry holds tag {tags[k]} twice")
                    where[tags[k]] = k
                entries.append(tuple(where.get(t, -1) for t in _ENTRY_TAGS))
            if first is not None and first != 279 and problem is None:
                problem = ("bad_group", f"NoMDEntries(268) entries start with tag {first}, "
                                        f"not 279")
        plan = _Plan(i268, i52, b"%d" % len(entries), i262, entries, problem)
        plans[lay] = plan
        return plan

    def _on_snapshot(self, m: FixMessage, recv_ns: int, out: EventBuffer) -> int:
        req = m.get(Tag.MDReqID)
        if req is not None and self._requests is not None and req not in self._requests:
            return self._problem("stale_request", f"snapshot {m.seq} of MDReqID {_show(req)}, "
                                                  f"not a live request")
        sym = m.get(Tag.Symbol)
        inst = self._insts.get(sym) if sym is not None else None  # type: ignore[arg-type]
        if inst is None:
            return self._problem("unknown_symbol" if sym is not None else "missing_field",
                                 f"snapshot {m.seq}: Symbol(55) {_show(sym)}")
        raw_rpt = m.get(Tag.RptSeq)
        seq = 0
        if raw_rpt is not None:
            if not (raw_rpt.isdigit() and len(raw_rpt) < 20):  # < 10**19: fits u8
                return self._problem("bad_seq", f"snapshot {m.seq} {sym.decode('ascii', 'replace')}"
                                                f": RptSeq(83) {_show(raw_rpt)}")
            seq = int(raw_rpt)
        if Tag.NoMDEntries not in m:
            return self._problem("missing_field", f"snapshot {m.seq}: no NoMDEntries(268)")
        sides: tuple[list, list] = ([], [])
        for e in m.groups(Tag.NoMDEntries):
            t = e.get(Tag.MDEntryType)
            if t != b"0" and t != b"1":
                if t is None:
                    return self._snap_problem("missing_field", m, "MDEntryType(269)", None)
                self._counters["ignored"] += 1  # a trade or other type: not part of the book
                continue
            px_b, sz_b = e.get(Tag.MDEntryPx), e.get(Tag.MDEntrySize)
            if px_b is None or sz_b is None:
                return self._snap_problem("missing_field", m, "MDEntryPx(270)/MDEntrySize(271)",
                                          None)
            px = inst.prices.get(px_b) or _ticks(inst, px_b)
            if px <= 0:
                return self._snap_problem("off_tick" if px < 0 else "bad_price", m,
                                          "MDEntryPx(270)", px_b)
            sz = _sizes.get(sz_b) or _size(sz_b)
            if sz <= 0:
                return self._snap_problem("bad_size", m, "MDEntrySize(271)", sz_b)
            side = sides[t == b"1"]
            lv_b = e.get(Tag.MDPriceLevel)
            if lv_b is not None and _LEVELS.get(lv_b) != len(side):
                return self._snap_problem("bad_level", m, f"MDPriceLevel(1023) (entry "
                                                          f"{len(side) + 1} of its side)", lv_b)
            if len(side) >= 255:
                return self._snap_problem("bad_level", m, "MDPriceLevel(1023)", b"256")
            side.append((px, sz))
        for s, levels in enumerate(sides):
            for (a, _), (b, _) in zip(levels, levels[1:]):
                if (a <= b) if s == 0 else (a >= b):
                    return self._snap_problem("bad_snapshot", m, f"{('bid', 'offer')[s]} "
                                              f"prices out of order (ticks {a}, {b})", None)
        exch = self._sending_ns(m.get(52))
        vc = self._vc
        iid = inst.iid
        words = [_CLEAR_BID | vc, iid, seq, exch, recv_ns, 0, 0, 0,
                 _CLEAR_ASK | vc, iid, seq, exch, recv_ns, 0, 0, 0]
        for s, levels in enumerate(sides):
            code = _SNAP_NEW[s] | vc
            for level, (px, sz) in enumerate(levels):
                words += (code | level << 32, iid, seq, exch, recv_ns, px, sz, 0)
        n = self._write(words, m, out)
        if n:
            self._counters["snapshots"] += 1
        return n

    # -- HELPERS ---------------------------------------------------------------------------------
    def _sending_ns(self, ts: bytes | None) -> int:
        """SendingTime (52) as ns, 0 if it cannot be read. The last value is kept whole (a
        burst shares one), its second apart (parsed once a second), and milliseconds, the
        usual precision, are one dict lookup."""
        if ts is None:
            return 0
        if ts == self._ts_raw:
            return self._ts_ns
        if ts.startswith(self._ts_head):  # "YYYYMMDD-HH:MM:SS." of the last one
            ms = _MILLIS.get(ts[18:])
            if ms is not None:
                self._ts_raw = ts
                self._ts_ns = ns = self._ts_base + ms
                return ns
        head = ts[:17]
        try:
            base = parse_utc_timestamp(head)
        except TimestampError:
            return 0
        frac = ts[18:]
        if frac:
            scale = _FRAC_SCALE.get(len(frac))
            if ts[17] != 46 or scale is None or not frac.isdigit():
                return 0
            ns = base + int(frac) * scale
            self._ts_head, self._ts_base = ts[:18], base
        elif len(ts) == 17:
            ns = base
        else:
            return 0
        self._ts_raw, self._ts_ns = ts, ns
        return ns

    def _bad_entry(self, reason: str, m: FixMessage, what: str, raw: bytes | None) -> None:
        self._counters[reason] += 1
        self.last_problem = (f"{self.venue_name}: {reason}: incremental {m.seq}: an entry's "
                             f"{what} was {_show(raw)}: entry dropped")
        return None

    def _snap_problem(self, reason: str, m: FixMessage, what: str, raw: bytes | None) -> int:
        return self._problem(reason, f"snapshot {m.seq} "
                                     f"{(m.get(Tag.Symbol) or b'?').decode('ascii', 'replace')}:"
                                     f" {what} was {_show(raw)}: snapshot dropped")

    def _problem(self, reason: str, why: str) -> int:
        self._counters[reason] += 1
        self.last_problem = f"{self.venue_name}: {reason}: {why}"
        return 0


_FRAC_SCALE = {3: 1_000_000, 6: 1_000, 9: 1}
_MILLIS = {b"%03d" % i: i * 1_000_000 for i in range(1000)}


def _ticks(inst: _Inst, raw: bytes) -> int:
    """``raw`` (decimal text) in whole ticks, exactly; 0 if not a positive number, -1 if not on
    the tick grid. Good conversions are cached on ``inst``."""
    whole, dot, frac = raw.partition(b".")
    if not (whole.isdigit() or (not whole and frac)) or (dot and not frac.isdigit()) \
            or len(whole) > 15:
        return 0  # sign, exponent, NaN, inf, text, empty, huge: not a price
    scale = inst.scale
    if len(frac) > scale:
        if frac[scale:].strip(b"0"):
            return -1  # finer than the tick's decimals
        frac = frac[:scale]
    units = int((whole or b"0") + frac.ljust(scale, b"0"))
    if units <= 0:
        return 0
    ticks, rem = divmod(units, inst.tick_units)
    if rem:
        return -1
    prices = inst.prices
    if len(prices) >= _CACHE_MAX:
        prices.clear()
    prices[raw] = ticks
    return ticks


def _size(raw: bytes) -> int:
    """``raw`` as whole units (``"100"``, ``"100.0"``); -1 if not a non-negative whole number.
    Positive conversions are cached."""
    whole, dot, frac = raw.partition(b".")
    if not whole.isdigit() or (dot and (frac.strip(b"0") or (frac and not frac.isdigit()))) \
            or len(whole) > 18:
        return -1
    n = int(whole)
    if len(_sizes) >= _CACHE_MAX:
        _sizes.clear()
    if len(_del_sizes) >= _CACHE_MAX:
        _del_sizes.clear()
    if n > 0:
        _sizes[raw] = n
    _del_sizes[raw] = 0
    return n


def _show(raw: bytes | None) -> str:
    return "<missing>" if raw is None else repr(raw[:40].decode("ascii", "replace"))


# -- THE COMPILED INCREMENTAL PATH -------------------------------------------------------------
# ``_x_kernel`` reads a whole 35=X from its wire bytes and writes its records, or gives up
# (-1) on anything but the plainest input, which then takes the Python path above: that path
# says what was wrong and is the reference the tests hold the kernel to (same records, byte
# for byte, wherever the kernel does not give up). It never counts problems itself.

_H_MASK = 0xFFFFFFF  # symbol hash: 28 bits, so the arithmetic is the same in numba and Python
_SYMREC = 6  # per symbol in ``tab``: hash, length, instrument id, scale, tick units, 10**scale
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _x_kernel(raw, tab, symb, out, n, recv_ns, vc, meta):  # noqa: C901 - one flat loop
    """``raw``: one 35=X as the decoder validated it; ``tab``/``symb``: ``_kernel_tables``;
    ``out``: the buffer as int64 (capacity, 8); records go to ``out[n:]``. Returns how many, or
    -1 (nothing to trust: take the Python path). ``meta[0:2]``: where MDReqID's value is
    (-1, -1 without one)."""
    size = len(raw)
    cap = out.shape[0]
    n_slots = tab[0]
    slots_at = tab[3]
    syms_at = tab[4]
    members_at = tab[5]
    members_end = tab[6]
    meta[0] = -1
    meta[1] = -1
    exch = -1
    count = -1
    k = 0
    in_group = False
    ended = False
    first = True
    # the open entry: each field's value span (-1: not seen)
    a_s = t_s = s_s = s_e = p_s = p_e = z_s = z_e = l_s = l_e = q_s = q_e = -1
    i = 0
    while i < size:
        tag = 0
        while raw[i] != 61:
            tag = tag * 10 + (np.int64(raw[i]) - 48)
            i += 1
        i += 1
        vs = i
        while raw[i] != 1:
            i += 1
        ve = i
        i += 1
        if not in_group:
            if tag == 52:
                # SendingTime: YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]
                w = ve - vs
                if w != 17 and w != 21 and w != 24 and w != 27:
                    return -1
                if raw[vs + 8] != 45 or raw[vs + 11] != 58 or raw[vs + 14] != 58:
                    return -1
                if w > 17 and raw[vs + 17] != 46:
                    return -1
                y = mo = d = hh = mi = ss = frac = 0
                for j in range(vs, ve):
                    off = j - vs
                    if off == 8 or off == 11 or off == 14 or off == 17:
                        continue
                    c = np.int64(raw[j]) - 48
                    if c < 0 or c > 9:
                        return -1
                    if off < 4:
                        y = y * 10 + c
                    elif off < 6:
                        mo = mo * 10 + c
                    elif off < 8:
                        d = d * 10 + c
                    elif off < 11:
                        hh = hh * 10 + c
                    elif off < 14:
                        mi = mi * 10 + c
                    elif off < 17:
                        ss = ss * 10 + c
                    else:
                        frac = frac * 10 + c
                if y < 1 or mo < 1 or mo > 12 or d < 1 or hh > 23 or mi > 59 or ss > 60:
                    return -1
                leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
                if d > _MONTH_DAYS[mo] + (1 if mo == 2 and leap else 0):
                    return -1
                yy = y - 1 if mo <= 2 else y  # days from 1970-01-01 (H. Hinnant's algorithm)
                era = yy // 400
                yoe = yy - era * 400
                doy = (153 * (mo - 3 if mo > 2 else mo + 9) + 2) // 5 + d - 1
                doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
                days = era * 146097 + doe - 719468
                if w == 21:
                    frac *= 1_000_000
                elif w == 24:
                    frac *= 1_000
                exch = (days * 86400 + hh * 3600 + mi * 60 + ss) * 1_000_000_000 + frac
            elif tag == 262:
                meta[0] = vs
                meta[1] = ve
            elif tag == 268:
                w = ve - vs
                if w < 1 or w > 6 or (w > 1 and raw[vs] == 48):
                    return -1
                count = 0
                for j in range(vs, ve):
                    c = np.int64(raw[j]) - 48
                    if c < 0 or c > 9:
                        return -1
                    count = count * 10 + c
                in_group = True
            continue
        # -- in the group: 279 opens an entry; a tag that is no member of the group (the
        # trailer's 10, say) closes the last and ends the group; members we do not read
        # (MDEntryTime, …) are skipped, as on the Python path
        if ended:
            continue
        member = tag < members_end and (tab[members_at + tag // 62] >> (tag % 62)) & 1 == 1
        if first and member and tag != 279:
            return -1  # the group does not start with 279
        if tag == 279 or not member:
            if first:
                first = False
            else:
                # ---- close the open entry: its record, or give up
                if a_s < 0 or t_s < 0 or s_s < 0 or z_s < 0 or exch < 0:
                    return -1
                act = np.int64(raw[a_s]) - 48
                typ = np.int64(raw[t_s]) - 48
                if act < 0 or act > 2 or typ < 0 or typ > 2 or (typ == 2 and act != 0):
                    return -1
                # symbol → instrument: hash, probe, compare the bytes
                h = 0
                for j in range(s_s, s_e):
                    h = (h * 31 + np.int64(raw[j])) & _H_MASK
                slot = h & (n_slots - 1)
                sym = -1
                while True:
                    cand = tab[slots_at + slot] - 1
                    if cand < 0:
                        break
                    rec = syms_at + cand * _SYMREC
                    if tab[rec] == h and tab[rec + 1] == s_e - s_s:
                        same = True
                        for j in range(s_e - s_s):
                            if symb[cand, j] != raw[s_s + j]:
                                same = False
                                break
                        if same:
                            sym = cand
                            break
                    slot = (slot + 1) & (n_slots - 1)
                if sym < 0:
                    return -1
                rec = syms_at + sym * _SYMREC
                # price: exact ticks (as _ticks)
                if p_s < 0:
                    if act != 2:
                        return -1
                    px = 0
                else:
                    scale = tab[rec + 3]
                    units = 0
                    whole = 0
                    nfrac = 0
                    dot = False
                    for j in range(p_s, p_e):
                        c = np.int64(raw[j]) - 48
                        if c == -2 and not dot:  # '.'
                            dot = True
                            continue
                        if c < 0 or c > 9:
                            return -1
                        if not dot:
                            whole += 1
                            if whole > 15:
                                return -1
                            units = units * 10 + c
                        else:
                            nfrac += 1
                            if nfrac <= scale:
                                units = units * 10 + c
                            elif c != 0:
                                return -1
                    if (dot and nfrac == 0) or (whole == 0 and nfrac == 0):
                        return -1
                    for _ in range(nfrac, scale):
                        units *= 10
                    tu = tab[rec + 4]
                    px = units // tu
                    if units <= 0 or px * tu != units:
                        return -1
                # size: plain digits; a delete's reads 0
                if z_e - z_s > 18:
                    return -1
                sz = 0
                for j in range(z_s, z_e):
                    c = np.int64(raw[j]) - 48
                    if c < 0 or c > 9:
                        return -1
                    sz = sz * 10 + c
                if act == 2:
                    sz = 0
                elif sz <= 0:
                    return -1
                # level: 1..255 written plainly (quotes only)
                level = 0
                if typ != 2:
                    if l_s < 0 or l_e - l_s > 3 or raw[l_s] == 48:
                        return -1
                    for j in range(l_s, l_e):
                        c = np.int64(raw[j]) - 48
                        if c < 0 or c > 9:
                            return -1
                        level = level * 10 + c
                    if level > 255:
                        return -1
                    level -= 1
                # RptSeq: up to 18 digits (0 without one)
                seq = 0
                if q_s >= 0:
                    if q_e - q_s > 18:
                        return -1
                    for j in range(q_s, q_e):
                        c = np.int64(raw[j]) - 48
                        if c < 0 or c > 9:
                            return -1
                        seq = seq * 10 + c
                if n + k >= cap:
                    return -1
                r = n + k
                if typ == 2:
                    out[r, 0] = 2 | vc  # TRADE, aggressor unknown, NEW
                else:
                    out[r, 0] = 1 | vc | typ << 16 | act << 24 | level << 32
                out[r, 1] = tab[rec + 2]
                out[r, 2] = seq
                out[r, 3] = exch
                out[r, 4] = recv_ns
                out[r, 5] = px
                out[r, 6] = sz
                out[r, 7] = 0
                k += 1
            if tag != 279:
                ended = True
                continue
            a_s = t_s = s_s = p_s = z_s = l_s = q_s = -1
            if ve - vs != 1:
                return -1
            a_s = vs
        elif tag == 269:
            if t_s >= 0 or ve - vs != 1:
                return -1
            t_s = vs
        elif tag == 55:
            if s_s >= 0:
                return -1
            s_s = vs
            s_e = ve
        elif tag == 270:
            if p_s >= 0:
                return -1
            p_s = vs
            p_e = ve
        elif tag == 271:
            if z_s >= 0:
                return -1
            z_s = vs
            z_e = ve
        elif tag == 1023:
            if l_s >= 0:
                return -1
            l_s = vs
            l_e = ve
        elif tag == 83:
            if q_s >= 0:
                return -1
            q_s = vs
            q_e = ve
    if not in_group or k != count:
        return -1
    if k:
        out[n + k - 1, 0] |= F_LAST << 40
    return k


def _kernel_tables(insts: dict[bytes, _Inst]) -> tuple[np.ndarray, np.ndarray]:
    """The instrument table for ``_x_kernel``: an open-addressing hash of the symbols (int64
    ``tab``) and their bytes (``symb``). ``tab``: [slots, symbols, longest, slots at, symbols
    at, members at, members end], then the slots (symbol index + 1, 0 empty), then
    ``_SYMREC`` words a symbol, then the NoMDEntries members as a bitmap (62 bits a word: no
    sign bit, so Python and numba agree)."""
    syms = list(insts.items())
    n_slots = 8
    while n_slots < 2 * len(syms) + 1:
        n_slots *= 2
    longest = max((len(s) for s, _ in syms), default=1)
    slots_at = 7
    syms_at = slots_at + n_slots
    members_at = syms_at + _SYMREC * len(syms)
    members_end = max(_MEMBERS) + 1
    tab = np.zeros(members_at + members_end // 62 + 1, dtype=np.int64)
    tab[:7] = (n_slots, len(syms), longest, slots_at, syms_at, members_at, members_end)
    for t in _MEMBERS:
        tab[members_at + t // 62] |= 1 << (t % 62)
    symb = np.zeros((max(1, len(syms)), longest), dtype=np.uint8)
    for idx, (sym, inst) in enumerate(syms):
        h = 0
        for c in sym:
            h = (h * 31 + c) & _H_MASK
        slot = h & (n_slots - 1)
        while tab[slots_at + slot]:
            slot = (slot + 1) & (n_slots - 1)
        tab[slots_at + slot] = idx + 1
        tab[syms_at + idx * _SYMREC: syms_at + (idx + 1) * _SYMREC] = (
            h, len(sym), inst.iid, inst.scale, inst.tick_units, 10 ** inst.scale)
        symb[idx, :len(sym)] = np.frombuffer(sym, dtype=np.uint8)
    return tab, symb


try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; without it, Python only
    _x_kernel_nb = None
else:
    _x_kernel_nb = njit(cache=True, nogil=True)(_x_kernel)


_entry_point = None


def _kernel_entry():
    """The compiled kernel's entry point for our argument types (compiled, or loaded from
    numba's cache, on first use): calling it skips numba's type dispatch, about half the cost
    of a call. None without numba."""
    global _entry_point
    if _entry_point is None and _x_kernel_nb is not None:
        args = (b"", np.zeros(1, np.int64), np.zeros((1, 1), np.uint8),
                np.zeros((1, 8), np.int64), 0, 0, 0, np.zeros(2, np.int64))
        try:
            sig = tuple(_x_kernel_nb.typeof_pyval(a) for a in args)
            _entry_point = _x_kernel_nb.compile(sig)
        except Exception:  # pragma: no cover - a numba without it: its dispatcher
            _entry_point = _x_kernel_nb
        if not callable(_entry_point):  # pragma: no cover
            _entry_point = _x_kernel_nb
    return _entry_point
