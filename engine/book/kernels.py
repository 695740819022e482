"""The compiled per-event kernels behind ``engine.book.books`` and the codes they write.

Everything here is ``@njit(cache=True)`` code over the arrays a ``BookSet`` owns; read
``books.py`` first: its docstring is the contract, its ``apply_reference`` the plain-Python
statement of the same rules that the tests hold these kernels to.

Theory of operation
-------------------
``apply_range`` is the whole event logic, written out in one loop: validate (the first failing
check counted in ``rejects``), change the venue's book, then rescan the instrument's consolidated
BBO when the event could have moved it (a level-0 change, a CLEAR, or the venue's state
changing; a change deeper in one venue's book cannot move the best across venues, so the scan is
skipped). Replay calls it once over a whole batch; the live path calls it for one record
(``start=k, stop=k+1``) of the caller's buffer: a Python call into numba costs a few hundred
ns of argument unboxing whatever the kernel does, so the live path makes exactly one call per
event, with no slicing and no field reads in Python.

Why one flat loop and no helper functions or per-side views: every array passed to a numba
function or sliced into a view is a refcounted object, and the NRT incref/decref calls that
come with it (atomic operations, a dozen per event) cost more than the update itself: a version
with ``apply_record`` + ``recompute_bbo`` helpers and a per-side view ran at 14 M events/s, this
one at ~40 M on the same stream. Only two kernels (``apply_range``, ``consolidated_depth``)
keep the first run's compile time short; later runs load them from the on-disk cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.core.events import (
    ASK,
    BID,
    BUY,
    CHANGE,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
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

__all__ = [
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
    "apply_range",
    "consolidated_depth",
]

# -- REJECT CODES (index into ``BookSet.rejects``; the first failing check, in this order) ---------
REJECT_KIND = 0  #: kind is not QUOTE, TRADE or STATUS
REJECT_VENUE = 1  #: venue >= n_venues
REJECT_INSTRUMENT = 2  #: instrument >= n_instruments
REJECT_SIDE = 3  #: QUOTE side not BID/ASK; TRADE side not 0/BUY/SELL
REJECT_ACTION = 4  #: QUOTE action not NEW/CHANGE/DELETE/CLEAR; STATUS code not a STATUS_*
REJECT_LEVEL = 5  #: QUOTE NEW/CHANGE/DELETE level >= depth
REJECT_SIZE = 6  #: size < 0 (any kind), or size == 0 on NEW/CHANGE/TRADE
REJECT_PRICE = 7  #: price <= 0 on NEW/CHANGE/TRADE (0 means "empty level")
N_REJECTS = 8

# -- VENUE BOOK STATE BITS (``BookSet.venue["state"]``, per venue and instrument) ------------------
ST_STALE = 1  #: STATUS_STALE/STATUS_GAP seen: the book may not be the venue's; until a snapshot
ST_REBUILDING = 2  #: a CLEAR was applied: a snapshot is under way until its last record
ST_HALTED = 4  #: STATUS_HALTED seen; until STATUS_OK
ST_CLEARED_BID = 8  #: while stale: the bid side was CLEARed since the STALE/GAP status
ST_CLEARED_ASK = 16  #: while stale: the ask side was CLEARed since the STALE/GAP status
#: a venue with any of these bits is left out of the instrument's consolidated BBO and depth
ST_EXCLUDED = ST_STALE | ST_REBUILDING | ST_HALTED
_CLEARED_BOTH = ST_CLEARED_BID | ST_CLEARED_ASK

# -- CONSOLIDATED BBO FLAGS (``BookSet.bbo["flags"]``) ---------------------------------------------
BBO_NO_BID = 1  #: no included venue has a bid
BBO_NO_ASK = 2  #: no included venue has an ask
BBO_CROSSED = 4  #: best bid > best ask across the included venues
BBO_LOCKED = 8  #: best bid == best ask across the included venues
#: any of these: the consolidated quote is not a price to use (``BookSet.bbo_ok`` is False)
BBO_NOT_OK = BBO_NO_BID | BBO_NO_ASK | BBO_CROSSED | BBO_LOCKED

_PX, _SZ = 0, 1  # last axis of BookSet.book


@njit(cache=True)
def apply_range(records, start, stop, book, venue, bbo, rejects):
    """Apply ``records[start:stop]`` in order. Return the last record's outcome: 1 if the
    consolidated BBO of its instrument changed, 0 if not, ``-1 - code`` if it was rejected
    (every reject is counted in ``rejects[code]``). A range outside ``records`` is the
    caller's bug: IndexError (numba would otherwise read past the array)."""
    if start < 0 or stop > records.shape[0]:
        raise IndexError("record range out of bounds")
    n_venues = book.shape[0]
    n_instruments = book.shape[1]
    depth = book.shape[3]
    out = 0
    for k in range(start, stop):
        r = records[k]
        kind = np.int64(r.kind)
        v = np.int64(r.venue)
        i = np.int64(r.instrument)
        # -- CHECKS: the first failing one is counted, the record skipped -------------------------
        if kind != QUOTE and kind != TRADE and kind != STATUS:
            rejects[REJECT_KIND] += 1
            out = -1 - REJECT_KIND
            continue
        if v >= n_venues:
            rejects[REJECT_VENUE] += 1
            out = -1 - REJECT_VENUE
            continue
        if i >= n_instruments:
            rejects[REJECT_INSTRUMENT] += 1
            out = -1 - REJECT_INSTRUMENT
            continue
        side = np.int64(r.side)
        action = np.int64(r.action)
        level = np.int64(r.level)
        price = np.int64(r.price)
        size = np.int64(r.size)
        sets_level = kind == QUOTE and (action == NEW or action == CHANGE)
        if kind == QUOTE:
            if side != BID and side != ASK:
                rejects[REJECT_SIDE] += 1
                out = -1 - REJECT_SIDE
                continue
            if action != NEW and action != CHANGE and action != DELETE and action != CLEAR:
                rejects[REJECT_ACTION] += 1
                out = -1 - REJECT_ACTION
                continue
            if action != CLEAR and level >= depth:
                rejects[REJECT_LEVEL] += 1
                out = -1 - REJECT_LEVEL
                continue
        elif kind == TRADE:
            if side != 0 and side != BUY and side != SELL:
                rejects[REJECT_SIDE] += 1
                out = -1 - REJECT_SIDE
                continue
        elif (action != STATUS_OK and action != STATUS_STALE and action != STATUS_HALTED
              and action != STATUS_GAP):
            rejects[REJECT_ACTION] += 1
            out = -1 - REJECT_ACTION
            continue
        if size < 0 or (size == 0 and (sets_level or kind == TRADE)):
            rejects[REJECT_SIZE] += 1
            out = -1 - REJECT_SIZE
            continue
        if price <= 0 and (sets_level or kind == TRADE):
            rejects[REJECT_PRICE] += 1
            out = -1 - REJECT_PRICE
            continue
        # -- THE VENUE'S BOOK ---------------------------------------------------------------------
        # (indexed in full each time, no per-side view: a view is a refcounted object in numba,
        # and its incref/decref cost more than the whole update)
        vs = venue[v, i]
        state = np.int64(vs.state)
        new_state = state
        touch_top = False
        if kind == QUOTE:
            if action == NEW:
                for j in range(depth - 1, level, -1):
                    book[v, i, side, j, _PX] = book[v, i, side, j - 1, _PX]
                    book[v, i, side, j, _SZ] = book[v, i, side, j - 1, _SZ]
                book[v, i, side, level, _PX] = price
                book[v, i, side, level, _SZ] = size
                touch_top = level == 0
            elif action == CHANGE:
                book[v, i, side, level, _PX] = price
                book[v, i, side, level, _SZ] = size
                touch_top = level == 0
            elif action == DELETE:
                for j in range(level, depth - 1):
                    book[v, i, side, j, _PX] = book[v, i, side, j + 1, _PX]
                    book[v, i, side, j, _SZ] = book[v, i, side, j + 1, _SZ]
                book[v, i, side, depth - 1, _PX] = 0
                book[v, i, side, depth - 1, _SZ] = 0
                touch_top = level == 0
            else:  # CLEAR
                for j in range(depth):
                    book[v, i, side, j, _PX] = 0
                    book[v, i, side, j, _SZ] = 0
                new_state |= ST_REBUILDING
                if new_state & ST_STALE:
                    new_state |= ST_CLEARED_BID if side == BID else ST_CLEARED_ASK
                touch_top = True
        elif kind == TRADE:
            vs.last_px = price
            vs.last_sz = size
            vs.last_side = side
            vs.trades += 1
        else:  # STATUS
            if action == STATUS_STALE or action == STATUS_GAP:
                new_state = (new_state | ST_STALE) & ~_CLEARED_BOTH  # a snapshot after this
            elif action == STATUS_HALTED:
                new_state |= ST_HALTED
            else:
                new_state &= ~ST_HALTED
            vs.status = action
        # the end of a snapshot: its last record (F_LAST), or any record not part of one
        flags = np.int64(r.flags)
        if kind != STATUS and new_state & ST_REBUILDING and (
                flags & F_LAST or not flags & F_SNAPSHOT):
            if new_state & _CLEARED_BOTH == _CLEARED_BOTH:
                new_state &= ~ST_STALE
            new_state &= ~ST_REBUILDING
            if not new_state & ST_STALE:
                new_state &= ~_CLEARED_BOTH
        if new_state != state:
            vs.state = new_state
            touch_top = True
        vs.updates += 1
        vs.seq = r.seq
        vs.ts_exch_ns = r.exch_ns
        vs.ts_recv_ns = r.recv_ns
        b = bbo[i]
        b.updates += 1
        out = 0
        if not touch_top:
            continue
        # -- THE CONSOLIDATED BBO: every included venue's level 0 ---------------------------------
        bid_px = bid_sz = bid_v = 0
        ask_px = ask_sz = ask_v = 0
        excluded = 0
        for u in range(n_venues):
            if venue[u, i].state & ST_EXCLUDED:
                excluded |= 1 << u
                continue
            sz = book[u, i, BID, 0, _SZ]
            if sz > 0:
                px = book[u, i, BID, 0, _PX]
                if bid_v == 0 or px > bid_px:
                    bid_px, bid_sz, bid_v = px, sz, 1 << u
                elif px == bid_px:
                    bid_sz += sz
                    bid_v |= 1 << u
            sz = book[u, i, ASK, 0, _SZ]
            if sz > 0:
                px = book[u, i, ASK, 0, _PX]
                if ask_v == 0 or px < ask_px:
                    ask_px, ask_sz, ask_v = px, sz, 1 << u
                elif px == ask_px:
                    ask_sz += sz
                    ask_v |= 1 << u
        bbo_flags = 0
        if bid_v == 0:
            bbo_flags |= BBO_NO_BID
        if ask_v == 0:
            bbo_flags |= BBO_NO_ASK
        if bid_v != 0 and ask_v != 0:
            if bid_px > ask_px:
                bbo_flags |= BBO_CROSSED
            elif bid_px == ask_px:
                bbo_flags |= BBO_LOCKED
        if (b.bid_px == bid_px and b.bid_sz == bid_sz and b.ask_px == ask_px
                and b.ask_sz == ask_sz and b.bid_venues == bid_v and b.ask_venues == ask_v
                and b.flags == bbo_flags and b.excluded == excluded):
            continue
        b.bid_px = bid_px
        b.bid_sz = bid_sz
        b.ask_px = ask_px
        b.ask_sz = ask_sz
        b.bid_venues = bid_v
        b.ask_venues = ask_v
        b.flags = bbo_flags
        b.excluded = excluded
        b.changes += 1
        b.ts_exch_ns = r.exch_ns
        b.ts_recv_ns = r.recv_ns
        out = 1
    return out


@njit(cache=True)
def consolidated_depth(book, venue, i, out):
    """Merge the included venues' levels of instrument ``i`` into ``out`` (2, 3, n): per side
    (BID, ASK) rows price, summed size, venue bitmask; best first, zeros past the last level.
    Return the number of levels filled: ``(n_bid, n_ask)``."""
    n_venues = book.shape[0]
    depth = book.shape[3]
    n = out.shape[2]
    n_bid = n_ask = 0
    for side in range(2):
        for k in range(n):
            out[side, 0, k] = 0
            out[side, 1, k] = 0
            out[side, 2, k] = 0
        prev = 0
        have_prev = False
        for k in range(n):
            best = 0
            found = False
            for v in range(n_venues):
                if venue[v, i].state & ST_EXCLUDED:
                    continue
                for j in range(depth):
                    if book[v, i, side, j, _SZ] <= 0:
                        continue
                    px = book[v, i, side, j, _PX]
                    if have_prev and ((side == BID and px >= prev) or (side == ASK and px <= prev)):
                        continue
                    if not found or (side == BID and px > best) or (side == ASK and px < best):
                        best = px
                        found = True
            if not found:
                break
            size = 0
            mask = 0
            for v in range(n_venues):
                if venue[v, i].state & ST_EXCLUDED:
                    continue
                for j in range(depth):
                    if book[v, i, side, j, _SZ] > 0 and book[v, i, side, j, _PX] == best:
                        size += book[v, i, side, j, _SZ]
                        mask |= 1 << v
            out[side, 0, k] = best
            out[side, 1, k] = size
            out[side, 2, k] = mask
            prev = best
            have_prev = True
            if side == BID:
                n_bid += 1
            else:
                n_ask += 1
    return n_bid, n_ask
