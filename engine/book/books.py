"""Per-venue L2 books of every instrument and the consolidated book, in numpy arrays.

A ``BookSet`` holds, for ``n_venues`` venues × ``n_instruments`` instruments, one fixed-depth
L2 book per venue and instrument, and per instrument the consolidated best bid and offer (BBO)
across venues. MD_EVENT records (``engine.core.events``) are the only input::

    books = BookSet(n_venues=3, n_instruments=500, depth=10)
    apply_batch(books, records)           # replay, a feed's batch: compiled, tens of M events/s
    if apply_one(books, buf.rec, k) > 0:  # live, one event, < 1 µs; > 0: the BBO changed
        strategy.on_book(instrument)
    apply = books.bind(buf.rec)           # live, cheapest: bound once to a feed's buffer
    if apply(k) > 0:                      # the same as apply_one(books, buf.rec, k)
        strategy.on_book(instrument)
    if books.bbo_ok(i):
        bid, ask = books.bbo["bid_px"][i], books.bbo["ask_px"][i]

Arrays (all updated in place; views share memory with ``book``/``venue``/``bbo``)
----------------------------------------------------------------------------------
``book``      int64 (n_venues, n_instruments, 2, depth, 2): side (BID, ASK), level, (price, size)
``bid_px`` ``bid_sz`` ``ask_px`` ``ask_sz``  int64 (n_venues, n_instruments, depth) views of it.
              Level 0 is the best; price in integer ticks; an empty level is price 0, size 0.
``venue``     VENUE_BOOK (n_venues, n_instruments): per venue book ``last_px``, ``last_sz``,
              ``last_side`` (the last trade), ``trades``, ``updates`` (records applied),
              ``seq``/``ts_exch_ns``/``ts_recv_ns`` of the last record, ``state`` (ST_* bits),
              ``status`` (the last STATUS_* code). ``last_px`` … ``state`` are also attributes.
``bbo``       BBO (n_instruments,): ``bid_px``/``bid_sz``/``ask_px``/``ask_sz`` (size summed over
              the venues at the best), ``bid_venues``/``ask_venues`` (u2 bitmask of the venues
              at the best: bit v = venue index v), ``excluded`` (bitmask of the venues left out,
              see staleness), ``flags`` (BBO_*), ``changes`` (times the BBO changed),
              ``updates`` (records applied to the instrument), ``ts_exch_ns``/``ts_recv_ns`` (of
              the record that last changed the BBO).
``rejects``   int64 (N_REJECTS,): bad records by REJECT_* code.
``taps``      callables, each called with every array ``apply_batch`` has just applied (a
              view of the caller's: copy what is kept). Empty unless a reader needs each record
              and not only its outcome: a simulated venue's queue model reads the trades at the
              prices of its resting orders (``engine.venue.inprocess``), which ``last_px`` would
              lose when a batch holds several. Such a reader registers only while it needs to,
              so the books pay one empty-list test per batch. ``apply_one`` does not call them.

Applying a record
-----------------
QUOTE (side BID/ASK) on the venue's book of the instrument:
  NEW     inserts (price, size) at ``level``, moving that level and the ones below one down (the
          last level falls off: depth is fixed);
  CHANGE  sets price and size at ``level``;
  DELETE  removes ``level``, moving the ones below up (the last level becomes empty);
  CLEAR   empties that side (``level``, price and size are ignored): the start of a snapshot,
          whose NEWs follow.
TRADE sets the venue's last trade (price, size, aggressor side). STATUS changes no book; its
code is kept in ``status`` and changes ``state`` as below.

Levels are positional, as FIX MDPriceLevel is: the kernel does not check that prices are in
order (the feed handler validates the venue's messages; a venue book deeper than ``depth`` can
leave an empty level inside ours after a DELETE pulled up a level we had dropped). The venue's
best is its level 0. The consolidated depth merges every non-empty level by price, so such a
hole does no harm there.

Bad records are never raised: the first failing check, in the order REJECT_KIND, REJECT_VENUE,
REJECT_INSTRUMENT, REJECT_SIDE, REJECT_ACTION, REJECT_LEVEL, REJECT_SIZE, REJECT_PRICE, is
counted in ``rejects`` and the record is skipped (the book is left as it was). NEW/CHANGE and
TRADE need price > 0 and size > 0 (a level is removed with DELETE); no record may have a
negative size; a CLEAR may have any level.

Staleness: which venues the consolidated book leaves out
--------------------------------------------------------
Per venue and instrument, ``state`` holds:

- ST_STALE: set by STATUS_STALE or STATUS_GAP (the feed lost records: the book may not be the
  venue's) and, unless ``start_stale=False``, at the start (a book built from incrementals
  alone misses what came before). Cleared when a snapshot completes that CLEARed both sides
  after the status: at its last record (flag F_LAST), or at the first QUOTE or TRADE record for
  that venue and instrument without F_SNAPSHOT (a feed that does not flag its snapshots; a
  STATUS record never ends a snapshot). STATUS_OK does not clear it: only a snapshot makes the
  book right again.
- ST_REBUILDING: set by every CLEAR, cleared at the end of the snapshot as above. A book being
  rebuilt is half-built between the CLEAR and its last NEW; a reader between two ``apply_one``
  calls must not see that as the venue's quote.
- ST_HALTED: set by STATUS_HALTED, cleared by STATUS_OK (the venue's quotes are not
  executable while it is halted).

A venue with any of these (``ST_EXCLUDED``) still has its book updated, but it is left out of
the instrument's consolidated BBO and depth, and its bit is set in ``bbo["excluded"]``. Feed
handlers therefore send STATUS_GAP on a sequence gap, then a snapshot (CLEAR BID, NEWs,
CLEAR ASK, NEWs, all F_SNAPSHOT, the last one also F_LAST).

Consolidated BBO flags: never silently used
-------------------------------------------
``bbo["flags"]`` has BBO_NO_BID / BBO_NO_ASK (no included venue quotes that side), BBO_CROSSED
(best bid > best ask across venues: a stale or slow venue, or an arbitrage that will not last)
and BBO_LOCKED (best bid == best ask). The prices are still stored, so a desk can show them,
but ``bbo_ok(i)`` is False for any of these flags: a consumer wanting a reference price, a mid
or a spread (strategies, the price collar, the risk check that needs a fresh reference price)
must treat the instrument as having none until ``bbo_ok(i)`` is True again; a router may still
look at each venue's own book. One side alone may be used when its NO_* flag is clear.

Cost
----
``apply_batch`` and ``apply_one`` run the compiled kernels (``engine.book.kernels``); each
event updates the venue's book and, when it could have moved it (a level-0 change, a CLEAR, a
venue state change), rescans the instrument's BBO across venues (n_venues ≤ 16, so a few ns).
The consolidated top-N depth is not kept per event: ``consolidated_depth(i, n)`` merges it on
demand (a desk at screen rate, a router before it slices an order). ``apply_one`` is one
Python → numba call with the caller's MD_EVENT array and an index (no slicing, no field reads
in Python): numba's type dispatch and unboxing of the call's seven arguments are most of its
cost; ``BookSet.bind(buffer)`` looks the compiled entry point up once for a feed's reused
buffer and halves it (``bench/ingest.py`` measures each). ``apply_reference`` is the
plain-Python statement of the same rules, for the tests and for reading; it is ~500× slower.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.book import kernels as _k
from engine.book.kernels import (
    BBO_CROSSED,
    BBO_LOCKED,
    BBO_NO_ASK,
    BBO_NO_BID,
    BBO_NOT_OK,
    N_REJECTS,
    REJECT_ACTION,
    REJECT_INSTRUMENT,
    REJECT_KIND,
    REJECT_LEVEL,
    REJECT_PRICE,
    REJECT_SIDE,
    REJECT_SIZE,
    REJECT_VENUE,
    ST_CLEARED_ASK,
    ST_CLEARED_BID,
    ST_EXCLUDED,
    ST_HALTED,
    ST_REBUILDING,
    ST_STALE,
)
from engine.core.events import (
    ASK,
    BID,
    BUY,
    CHANGE,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    MD_EVENT,
    NEW,
    QUOTE,
    SELL,
    STATUS,
    STATUS_GAP,
    STATUS_HALTED,
    STATUS_OK,
    STATUS_STALE,
    TRADE,
)
from engine.core.records import MAX_VENUES

__all__ = [
    "BBO",
    "VENUE_BOOK",
    "MAX_VENUES",
    "BookSet",
    "apply_batch",
    "apply_one",
    "apply_reference",
    "consolidated_depth_reference",
    "REJECT_NAMES",
    "REJECT_KIND",
    "REJECT_VENUE",
    "REJECT_INSTRUMENT",
    "REJECT_SIDE",
    "REJECT_ACTION",
    "REJECT_LEVEL",
    "REJECT_SIZE",
    "REJECT_PRICE",
    "N_REJECTS",
    "ST_STALE",
    "ST_REBUILDING",
    "ST_HALTED",
    "ST_CLEARED_BID",
    "ST_CLEARED_ASK",
    "ST_EXCLUDED",
    "BBO_NO_BID",
    "BBO_NO_ASK",
    "BBO_CROSSED",
    "BBO_LOCKED",
    "BBO_NOT_OK",
    "DEPTH_PX",
    "DEPTH_SZ",
    "DEPTH_VENUES",
]

#: the venue bitmasks are u2: bit v is venue index v

#: names of the REJECT_* codes, by code
REJECT_NAMES = ("kind", "venue", "instrument", "side", "action", "level", "size", "price")
assert len(REJECT_NAMES) == N_REJECTS

#: rows of ``consolidated_depth``'s result (its shape is (2, 3, n): side, row, level)
DEPTH_PX, DEPTH_SZ, DEPTH_VENUES = 0, 1, 2

#: per venue and instrument: the last trade, counters and the book's state (64 bytes)
VENUE_BOOK = np.dtype(
    [
        ("last_px", "<i8"),
        ("last_sz", "<i8"),
        ("trades", "<i8"),
        ("updates", "<i8"),
        ("seq", "<u8"),
        ("ts_exch_ns", "<i8"),
        ("ts_recv_ns", "<i8"),
        ("last_side", "u1"),
        ("state", "u1"),
        ("status", "u1"),
        ("pad", "u1"),
        ("pad2", "<u4"),
    ]
)
assert VENUE_BOOK.itemsize == 64

#: per instrument: the consolidated best bid and offer across the included venues (72 bytes)
BBO = np.dtype(
    [
        ("bid_px", "<i8"),
        ("bid_sz", "<i8"),
        ("ask_px", "<i8"),
        ("ask_sz", "<i8"),
        ("changes", "<i8"),
        ("updates", "<i8"),
        ("ts_exch_ns", "<i8"),
        ("ts_recv_ns", "<i8"),
        ("bid_venues", "<u2"),
        ("ask_venues", "<u2"),
        ("excluded", "<u2"),
        ("flags", "<u2"),
    ]
)


class BookSet:
    """Per-venue L2 books for every instrument and the consolidated BBO (module docstring)."""

    __slots__ = ("n_venues", "n_instruments", "depth", "start_stale", "book", "bid_px", "bid_sz",
                 "ask_px", "ask_sz", "venue", "last_px", "last_sz", "updates", "state", "bbo",
                 "rejects", "taps", "_flags")

    def __init__(self, n_venues: int, n_instruments: int, depth: int = 10, *,
                 start_stale: bool = True) -> None:
        if not 1 <= n_venues <= MAX_VENUES:
            raise ValueError(f"n_venues must be 1..{MAX_VENUES} (a u2 bitmask), was {n_venues}")
        if not 1 <= n_instruments <= 2**32:
            raise ValueError(f"n_instruments must be 1..2**32, was {n_instruments}")
        if not 1 <= depth <= 255:
            raise ValueError(f"depth must be 1..255 (MD_EVENT.level is u1), was {depth}")
        self.n_venues = n_venues
        self.n_instruments = n_instruments
        self.depth = depth
        self.start_stale = start_stale
        self.book = np.zeros((n_venues, n_instruments, 2, depth, 2), dtype=np.int64)
        self.bid_px = self.book[:, :, BID, :, 0]
        self.bid_sz = self.book[:, :, BID, :, 1]
        self.ask_px = self.book[:, :, ASK, :, 0]
        self.ask_sz = self.book[:, :, ASK, :, 1]
        self.venue = np.zeros((n_venues, n_instruments), dtype=VENUE_BOOK)
        self.last_px = self.venue["last_px"]
        self.last_sz = self.venue["last_sz"]
        self.updates = self.venue["updates"]
        self.state = self.venue["state"]
        self.bbo = np.zeros(n_instruments, dtype=BBO)
        self._flags = self.bbo["flags"]
        self.rejects = np.zeros(N_REJECTS, dtype=np.int64)
        #: called with each batch apply_batch applied (module docstring)
        self.taps: list[Callable[[np.ndarray], None]] = []
        self.reset()

    def reset(self) -> None:
        """Empty every book and counter (in place: views and shared copies stay valid)."""
        self.book[...] = 0
        self.venue[...] = 0
        self.bbo[...] = 0
        self.rejects[...] = 0
        if self.start_stale:
            self.state[...] = ST_STALE
        self.bbo["flags"] = BBO_NO_BID | BBO_NO_ASK
        self.bbo["excluded"] = (1 << self.n_venues) - 1 if self.start_stale else 0

    # -- READING ---------------------------------------------------------------------------------
    def bbo_ok(self, i: int) -> bool:
        """True when instrument ``i``'s consolidated BBO is two-sided, neither crossed nor
        locked: usable as a reference price. False: treat the instrument as having none."""
        return not int(self._flags[i]) & BBO_NOT_OK

    def excluded(self, v: int, i: int) -> bool:
        """True when venue ``v``'s book of instrument ``i`` is left out of the consolidated
        book (stale, being rebuilt or halted)."""
        return bool(int(self.state[v, i]) & ST_EXCLUDED)

    def reject_counts(self) -> dict[str, int]:
        """Bad records so far, by reason name (``REJECT_NAMES``)."""
        return {name: int(n) for name, n in zip(REJECT_NAMES, self.rejects)}

    def bind(self, records: np.ndarray) -> Callable[[int], int]:
        """``apply(k)``: the live path's cheapest call, ``apply_one(self, records, k)`` at about
        half the cost. The kernel's compiled entry point for this array's type is looked up
        here, once, so each call skips numba's type dispatch (the larger part of a call's
        cost: ``bench/ingest.py``). Meant for a feed's preallocated buffer (an EventBuffer's
        ``rec``): the returned function keeps applying records of that same array object,
        which is why checking its type once is enough."""
        records = np.asarray(records)  # a memmap: its plain ndarray view
        if records.dtype != MD_EVENT or records.ndim != 1:
            raise TypeError(f"records must be a 1-d MD_EVENT array, was {records.dtype} "
                            f"{records.shape}")
        book, venue, bbo, rejects = self.book, self.venue, self.bbo, self.rejects
        args = (records, 0, 0, book, venue, bbo, rejects)
        try:  # Dispatcher.compile(types) gives the compiled entry point (loading the cache)
            entry = _apply_range.compile(tuple(_apply_range.typeof_pyval(a) for a in args))
        except Exception:  # a numba without it: the dispatcher itself, checked per call
            entry = _apply_range
        if not callable(entry):
            entry = _apply_range

        def apply(k: int) -> int:
            return entry(records, k, k + 1, book, venue, bbo, rejects)

        return apply

    def consolidated_depth(self, i: int, n: int | None = None,
                           out: np.ndarray | None = None) -> np.ndarray:
        """The top ``n`` (default ``depth``) price levels of instrument ``i`` merged over the
        included venues, sizes summed per price: int64 (2, 3, n) indexed [side, row, level]
        with side BID/ASK and row DEPTH_PX / DEPTH_SZ / DEPTH_VENUES (bitmask), best first,
        zeros past the last level. Computed now (not kept per event); ``out`` is reused when
        given. If the BBO is crossed, so is this: check ``bbo_ok`` first."""
        if not 0 <= i < self.n_instruments:
            raise IndexError(f"instrument {i} is not in 0..{self.n_instruments - 1}")
        n = self.depth if n is None else n
        if out is None:
            out = np.zeros((2, 3, n), dtype=np.int64)
        elif out.shape != (2, 3, n) or out.dtype != np.int64:
            raise ValueError(f"out must be int64 (2, 3, {n}), was {out.dtype} {out.shape}")
        _k.consolidated_depth(self.book, self.venue, i, out)
        return out


# -- APPLYING RECORDS --------------------------------------------------------------------------
_apply_range = _k.apply_range


def apply_batch(books: BookSet, records: np.ndarray) -> int:
    """Apply MD_EVENT ``records`` in order (compiled), then hand them to ``books.taps``; return
    how many were applied (the rest are counted in ``books.rejects``). ``records`` may be a
    memmap or any MD_EVENT array."""
    records = np.asarray(records)  # a memmap as a plain ndarray view: one compiled signature
    if records.dtype != MD_EVENT or records.ndim != 1:
        raise TypeError(f"records must be a 1-d MD_EVENT array, was {records.dtype} "
                        f"{records.shape}")
    rejected = int(books.rejects.sum())
    _apply_range(records, 0, len(records), books.book, books.venue, books.bbo, books.rejects)
    if books.taps:
        for tap in books.taps:
            tap(records)
    return len(records) - (int(books.rejects.sum()) - rejected)


def apply_one(books: BookSet, records: np.ndarray, k: int = 0) -> int:
    """Apply ``records[k]`` (an MD_EVENT array: a feed's ``EventBuffer.rec``, say): the live
    path. Return 1 if the consolidated BBO of its instrument changed, 0 if not, ``-1 - code``
    if it was rejected. No checks in Python: the array must be MD_EVENT (numba refuses others).
    """
    return _apply_range(records, k, k + 1, books.book, books.venue, books.bbo, books.rejects)


# -- THE REFERENCE -----------------------------------------------------------------------------
_FIELDS = MD_EVENT.names


def apply_reference(books: BookSet, records: np.ndarray) -> int:
    """Apply ``records`` as ``apply_batch`` does, in plain Python, recomputing the BBO after
    every applied record: the statement the compiled kernels are tested against. Slow."""
    applied = 0
    for row in np.asarray(records).tolist():
        if _reference_one(books, dict(zip(_FIELDS, row))) >= 0:
            applied += 1
    return applied


def _reference_one(books: BookSet, r: dict) -> int:
    def reject(code: int) -> int:
        books.rejects[code] += 1
        return -1 - code

    kind, v, i = r["kind"], r["venue"], r["instrument"]
    side, action, level = r["side"], r["action"], r["level"]
    price, size, flags = r["price"], r["size"], r["flags"]
    if kind not in (QUOTE, TRADE, STATUS):
        return reject(REJECT_KIND)
    if v >= books.n_venues:
        return reject(REJECT_VENUE)
    if i >= books.n_instruments:
        return reject(REJECT_INSTRUMENT)
    sets_level = kind == QUOTE and action in (NEW, CHANGE)
    if kind == QUOTE:
        if side not in (BID, ASK):
            return reject(REJECT_SIDE)
        if action not in (NEW, CHANGE, DELETE, CLEAR):
            return reject(REJECT_ACTION)
        if action != CLEAR and level >= books.depth:
            return reject(REJECT_LEVEL)
    elif kind == TRADE:
        if side not in (0, BUY, SELL):
            return reject(REJECT_SIDE)
    elif action not in (STATUS_OK, STATUS_STALE, STATUS_HALTED, STATUS_GAP):
        return reject(REJECT_ACTION)
    if size < 0 or (size == 0 and (sets_level or kind == TRADE)):
        return reject(REJECT_SIZE)
    if price <= 0 and (sets_level or kind == TRADE):
        return reject(REJECT_PRICE)

    state = int(books.state[v, i])
    if kind == QUOTE:
        levels = [tuple(x) for x in books.book[v, i, side].tolist()]  # [(price, size)] by level
        if action == NEW:
            levels.insert(level, (price, size))
            levels.pop()
        elif action == CHANGE:
            levels[level] = (price, size)
        elif action == DELETE:
            del levels[level]
            levels.append((0, 0))
        else:
            levels = [(0, 0)] * books.depth
            state |= ST_REBUILDING
            if state & ST_STALE:
                state |= ST_CLEARED_BID if side == BID else ST_CLEARED_ASK
        books.book[v, i, side] = levels
    elif kind == TRADE:
        vb = books.venue[v, i]
        vb["last_px"], vb["last_sz"], vb["last_side"] = price, size, side
        vb["trades"] += 1
    else:
        if action in (STATUS_STALE, STATUS_GAP):
            state = (state | ST_STALE) & ~(ST_CLEARED_BID | ST_CLEARED_ASK)
        elif action == STATUS_HALTED:
            state |= ST_HALTED
        else:
            state &= ~ST_HALTED
        books.venue[v, i]["status"] = action
    snapshot_over = flags & F_LAST or not flags & F_SNAPSHOT
    if kind != STATUS and state & ST_REBUILDING and snapshot_over:
        both = ST_CLEARED_BID | ST_CLEARED_ASK
        if state & both == both:
            state &= ~ST_STALE
        state &= ~ST_REBUILDING
        if not state & ST_STALE:
            state &= ~both
    vb = books.venue[v, i]
    vb["state"] = state
    vb["updates"] += 1
    vb["seq"], vb["ts_exch_ns"], vb["ts_recv_ns"] = r["seq"], r["exch_ns"], r["recv_ns"]
    books.bbo[i]["updates"] += 1
    return 1 if _reference_bbo(books, i, r["exch_ns"], r["recv_ns"]) else 0


def _reference_bbo(books: BookSet, i: int, exch_ns: int, recv_ns: int) -> bool:
    bids, asks, excluded = [], [], 0
    for v in range(books.n_venues):
        if int(books.state[v, i]) & ST_EXCLUDED:
            excluded |= 1 << v
            continue
        for side, out in ((BID, bids), (ASK, asks)):
            px, sz = books.book[v, i, side, 0].tolist()
            if sz > 0:
                out.append((px, sz, v))
    values = {"excluded": excluded, "flags": 0}
    for name, quotes, pick in (("bid", bids, max), ("ask", asks, min)):
        best = pick((q[0] for q in quotes), default=0)
        at_best = [q for q in quotes if q[0] == best]
        values[f"{name}_px"] = best
        values[f"{name}_sz"] = sum(q[1] for q in at_best)
        values[f"{name}_venues"] = sum(1 << q[2] for q in at_best)
    if not bids:
        values["flags"] |= BBO_NO_BID
    if not asks:
        values["flags"] |= BBO_NO_ASK
    if bids and asks and values["bid_px"] > values["ask_px"]:
        values["flags"] |= BBO_CROSSED
    if bids and asks and values["bid_px"] == values["ask_px"]:
        values["flags"] |= BBO_LOCKED
    b = books.bbo[i]
    if all(int(b[name]) == value for name, value in values.items()):
        return False
    for name, value in values.items():
        b[name] = value
    b["changes"] += 1
    b["ts_exch_ns"], b["ts_recv_ns"] = exch_ns, recv_ns
    return True


def consolidated_depth_reference(books: BookSet, i: int, n: int | None = None) -> np.ndarray:
    """``BookSet.consolidated_depth`` in plain Python (for the tests)."""
    n = books.depth if n is None else n
    out = np.zeros((2, 3, n), dtype=np.int64)
    for side in (BID, ASK):
        by_price: dict[int, list[int]] = {}
        for v in range(books.n_venues):
            if int(books.state[v, i]) & ST_EXCLUDED:
                continue
            for px, sz in books.book[v, i, side].tolist():
                if sz > 0:
                    agg = by_price.setdefault(px, [0, 0])
                    agg[0] += sz
                    agg[1] |= 1 << v
        prices = sorted(by_price, reverse=side == BID)[:n]
        for k, px in enumerate(prices):
            out[side, :, k] = (px, *by_price[px])
    return out
