"""BookSet: the per-venue books, the consolidated BBO and depth, staleness and bad records,
each case by hand through the compiled kernel (the property tests compare it with the
plain-Python reference on random streams)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.book.books import (
    BBO_CROSSED,
    BBO_LOCKED,
    BBO_NO_ASK,
    BBO_NO_BID,
    DEPTH_PX,
    DEPTH_SZ,
    DEPTH_VENUES,
    N_REJECTS,
    REJECT_ACTION,
    REJECT_INSTRUMENT,
    REJECT_KIND,
    REJECT_LEVEL,
    REJECT_NAMES,
    REJECT_PRICE,
    REJECT_SIDE,
    REJECT_SIZE,
    REJECT_VENUE,
    ST_CLEARED_BID,
    ST_HALTED,
    ST_REBUILDING,
    ST_STALE,
    BookSet,
    apply_batch,
    apply_one,
    apply_reference,
    consolidated_depth_reference,
)
from engine.core.events import (
    ASK,
    BID,
    BUY,
    CHANGE,
    CLEAR,
    DELETE,
    F_LAST,
    MD_EVENT,
    NEW,
    STATUS,
    STATUS_GAP,
    STATUS_HALTED,
    STATUS_OK,
    STATUS_STALE,
    TRADE,
)
from tests.book._records import brute_bbo, q, records, snapshot, stored_bbo


def fresh(n_venues: int = 3, n_instruments: int = 2, depth: int = 4) -> BookSet:
    return BookSet(n_venues, n_instruments, depth, start_stale=False)


def status(venue: int, code: int, instrument: int = 0) -> dict:
    return dict(kind=STATUS, venue=venue, action=code, instrument=instrument)


def levels(books: BookSet, v: int, side: int, i: int = 0) -> list[tuple[int, int]]:
    px, sz = (books.bid_px, books.bid_sz) if side == BID else (books.ask_px, books.ask_sz)
    return list(zip(px[v, i].tolist(), sz[v, i].tolist()))


# -- THE VENUE'S BOOK ------------------------------------------------------------------------------
def test_new_inserts_and_the_last_level_falls_off():
    b = fresh(depth=3)
    apply_batch(b, records(q(0, BID, NEW, 0, 100, 1), q(0, BID, NEW, 1, 99, 2),
                           q(0, BID, NEW, 2, 98, 3)))
    assert levels(b, 0, BID) == [(100, 1), (99, 2), (98, 3)]
    apply_batch(b, records(q(0, BID, NEW, 1, 105, 9)))  # out of price order: positional
    assert levels(b, 0, BID) == [(100, 1), (105, 9), (99, 2)]
    apply_batch(b, records(q(0, BID, NEW, 0, 101, 4)))
    assert levels(b, 0, BID) == [(101, 4), (100, 1), (105, 9)]


def test_change_delete_and_clear():
    b = fresh(depth=3)
    apply_batch(b, records(q(0, ASK, NEW, 0, 100, 1), q(0, ASK, NEW, 1, 101, 2),
                           q(0, ASK, NEW, 2, 102, 3), q(0, ASK, CHANGE, 1, 101, 7)))
    assert levels(b, 0, ASK) == [(100, 1), (101, 7), (102, 3)]
    apply_batch(b, records(q(0, ASK, DELETE, 0)))
    assert levels(b, 0, ASK) == [(101, 7), (102, 3), (0, 0)]
    apply_batch(b, records(q(0, BID, NEW, 0, 99, 1), q(0, ASK, CLEAR, level=200)))
    assert levels(b, 0, ASK) == [(0, 0)] * 3
    assert levels(b, 0, BID)[0] == (99, 1)  # one side only


def test_trade_sets_last_and_changes_no_book():
    b = fresh()
    apply_batch(b, records(q(1, BID, NEW, 0, 100, 5),
                           dict(kind=TRADE, venue=1, side=BUY, price=101, size=3, seq=7)))
    assert (b.last_px[1, 0], b.last_sz[1, 0], b.venue[1, 0]["last_side"]) == (101, 3, BUY)
    assert b.venue[1, 0]["trades"] == 1 and b.venue[1, 0]["seq"] == 7
    assert b.updates[1, 0] == 2 and b.bbo[0]["updates"] == 2
    assert levels(b, 1, BID)[0] == (100, 5)


def test_arrays_have_the_documented_shapes():
    b = BookSet(5, 7, 3)
    for a in (b.bid_px, b.bid_sz, b.ask_px, b.ask_sz):
        assert a.shape == (5, 7, 3) and a.dtype == np.int64
        assert np.shares_memory(a, b.book)
    assert b.venue.shape == (5, 7) and b.last_px.shape == (5, 7)
    assert b.bbo.shape == (7,) and b.bbo["bid_venues"].dtype == np.uint16
    assert b.rejects.shape == (N_REJECTS,)


# -- THE CONSOLIDATED BBO --------------------------------------------------------------------------
def test_bbo_sums_size_and_names_the_venues_at_the_best():
    b = fresh()
    out = [apply_one(b, records(row)) for row in (
        q(0, BID, NEW, 0, 100, 5), q(1, BID, NEW, 0, 100, 7), q(2, BID, NEW, 0, 99, 50),
        q(0, ASK, NEW, 0, 102, 1), q(2, ASK, NEW, 0, 101, 2), q(1, ASK, NEW, 1, 103, 9))]
    assert out == [1, 1, 0, 1, 1, 0]  # 1: the BBO changed
    bb = b.bbo[0]
    assert (bb["bid_px"], bb["bid_sz"], bb["bid_venues"]) == (100, 12, 0b011)
    assert (bb["ask_px"], bb["ask_sz"], bb["ask_venues"]) == (101, 2, 0b100)
    assert bb["flags"] == 0 and b.bbo_ok(0)
    assert bb["changes"] == 4
    assert stored_bbo(b, 1) == brute_bbo(b, 1)  # the other instrument: empty
    assert not b.bbo_ok(1)


def test_crossed_and_locked_are_flagged_and_not_ok():
    b = fresh()
    apply_batch(b, records(q(0, BID, NEW, 0, 100, 5), q(1, ASK, NEW, 0, 101, 5)))
    assert b.bbo_ok(0)
    apply_batch(b, records(q(1, ASK, CHANGE, 0, 100, 5)))
    assert b.bbo[0]["flags"] == BBO_LOCKED and not b.bbo_ok(0)
    apply_batch(b, records(q(1, ASK, CHANGE, 0, 99, 5)))
    assert b.bbo[0]["flags"] == BBO_CROSSED and not b.bbo_ok(0)
    # the prices are still there for a desk to show
    assert (b.bbo[0]["bid_px"], b.bbo[0]["ask_px"]) == (100, 99)
    apply_batch(b, records(q(1, ASK, DELETE, 0)))
    assert b.bbo[0]["flags"] == BBO_NO_ASK and not b.bbo_ok(0)
    apply_batch(b, records(q(0, BID, DELETE, 0)))
    assert b.bbo[0]["flags"] == BBO_NO_BID | BBO_NO_ASK


def test_sixteen_venues_fit_the_mask():
    b = BookSet(16, 1, 2, start_stale=False)
    apply_batch(b, records(q(15, BID, NEW, 0, 100, 1), q(3, BID, NEW, 0, 100, 2)))
    assert b.bbo[0]["bid_venues"] == (1 << 15) | (1 << 3) and b.bbo[0]["bid_sz"] == 3
    with pytest.raises(ValueError, match="n_venues"):
        BookSet(17, 1)


# -- STALENESS -------------------------------------------------------------------------------------
def test_a_gap_excludes_the_venue_until_a_snapshot_completes():
    b = fresh()
    apply_batch(b, records(q(0, BID, NEW, 0, 101, 5), q(1, BID, NEW, 0, 100, 7),
                           q(0, ASK, NEW, 0, 103, 1), q(1, ASK, NEW, 0, 104, 1)))
    assert b.bbo[0]["bid_px"] == 101
    assert apply_one(b, records(status(0, STATUS_GAP))) == 1
    assert b.excluded(0, 0) and b.state[0, 0] == ST_STALE
    assert (b.bbo[0]["bid_px"], b.bbo[0]["ask_px"], b.bbo[0]["excluded"]) == (100, 104, 0b001)
    # its updates still land in its book, but stay out of the BBO
    apply_batch(b, records(q(0, BID, CHANGE, 0, 102, 5), status(0, STATUS_OK)))
    assert levels(b, 0, BID)[0] == (102, 5)
    assert b.bbo[0]["bid_px"] == 100 and b.excluded(0, 0)  # OK does not make it right again
    # the snapshot, one record at a time: excluded until its last record
    snap = records(*snapshot(0, [(101, 1), (100, 2)], [(102, 3)]))
    for k in range(len(snap) - 1):
        apply_one(b, snap, k)
        assert b.excluded(0, 0), k
        assert stored_bbo(b, 0) == brute_bbo(b, 0)
    assert apply_one(b, snap, len(snap) - 1) == 1
    assert not b.excluded(0, 0) and b.state[0, 0] == 0
    assert levels(b, 0, BID) == [(101, 1), (100, 2), (0, 0), (0, 0)]
    assert levels(b, 0, ASK) == [(102, 3), (0, 0), (0, 0), (0, 0)]
    bb = b.bbo[0]
    assert (bb["bid_px"], bb["ask_px"], bb["ask_venues"], bb["excluded"]) == (101, 102, 1, 0)


def test_a_status_inside_a_snapshot_does_not_end_it():
    b = fresh()
    snap = snapshot(0, [(100, 1)], [(101, 1)])
    apply_batch(b, records(status(0, STATUS_GAP), *snap[:2], status(0, STATUS_OK)))
    assert b.state[0, 0] == ST_STALE | ST_REBUILDING | ST_CLEARED_BID
    apply_batch(b, records(*snap[2:]))
    assert b.state[0, 0] == 0


def test_stale_needs_both_sides_cleared():
    b = fresh()
    apply_batch(b, records(status(2, STATUS_STALE)))
    half = snapshot(2, [(100, 1)], [])[:2]  # CLEAR BID + one NEW, no ask side
    half[-1]["flags"] |= F_LAST
    apply_batch(b, records(*half))
    assert b.state[2, 0] & ST_STALE and not b.state[2, 0] & ST_REBUILDING
    apply_batch(b, records(*snapshot(2, [(100, 1)], [(101, 1)])))
    assert b.state[2, 0] == 0 and b.bbo_ok(0)


def test_a_gap_inside_a_snapshot_needs_another_snapshot():
    b = fresh()
    snap = snapshot(1, [(100, 1)], [(101, 1)])
    apply_batch(b, records(*snap[:3], status(1, STATUS_GAP), *snap[3:]))
    assert b.state[1, 0] == ST_STALE  # the ask side was cleared after the gap, the bid side not
    apply_batch(b, records(*snap))
    assert b.state[1, 0] == 0


def test_unflagged_snapshot_ends_at_the_next_record():
    b = fresh()
    apply_batch(b, records(status(0, STATUS_GAP), *snapshot(0, [(100, 1)], [(101, 1)],
                                                            flagged=False)))
    assert b.state[0, 0] == 0 and b.bbo_ok(0)


def test_a_clear_hides_a_half_built_book_from_the_bbo():
    b = fresh()
    apply_batch(b, records(q(0, BID, NEW, 0, 100, 1), q(0, ASK, NEW, 0, 101, 1)))
    snap = records(*snapshot(0, [(99, 4)], [(102, 4)]))
    apply_one(b, snap, 0)  # CLEAR BID: rebuilding
    assert b.state[0, 0] == ST_REBUILDING and b.bbo[0]["flags"] == BBO_NO_BID | BBO_NO_ASK
    apply_batch(b, snap[1:])
    assert b.state[0, 0] == 0 and (b.bbo[0]["bid_px"], b.bbo[0]["ask_px"]) == (99, 102)


def test_halted_until_ok():
    b = fresh()
    apply_batch(b, records(q(0, BID, NEW, 0, 100, 1), q(1, BID, NEW, 0, 99, 1),
                           status(0, STATUS_HALTED)))
    assert b.state[0, 0] == ST_HALTED and b.bbo[0]["bid_px"] == 99
    assert b.venue[0, 0]["status"] == STATUS_HALTED
    apply_batch(b, records(status(0, STATUS_OK)))
    assert b.state[0, 0] == 0 and b.bbo[0]["bid_px"] == 100


def test_books_start_stale_until_their_first_snapshot():
    b = BookSet(2, 1, 4)
    apply_batch(b, records(q(0, BID, NEW, 0, 100, 1), q(0, ASK, NEW, 0, 101, 1)))
    assert b.excluded(0, 0) and b.bbo[0]["excluded"] == 0b11 and not b.bbo_ok(0)
    apply_batch(b, records(*snapshot(0, [(100, 1)], [(101, 1)])))
    assert not b.excluded(0, 0) and b.excluded(1, 0) and b.bbo_ok(0)
    assert b.bbo[0]["excluded"] == 0b10


def test_snapshot_rebuilds_a_book_exactly():
    """A book built by incrementals, then replaced: only the snapshot's levels remain."""
    b = fresh(depth=5)
    rng = np.random.default_rng(5)
    rows = [q(0, int(rng.integers(2)), int(rng.integers(3)), int(rng.integers(5)),
              int(rng.integers(90, 110)), int(rng.integers(1, 9))) for _ in range(200)]
    apply_batch(b, records(*rows))
    apply_batch(b, records(status(0, STATUS_GAP),
                           *snapshot(0, [(100, 1), (99, 2), (98, 3)], [(101, 4)])))
    assert levels(b, 0, BID) == [(100, 1), (99, 2), (98, 3), (0, 0), (0, 0)]
    assert levels(b, 0, ASK) == [(101, 4)] + [(0, 0)] * 4
    assert b.state[0, 0] == 0


# -- BAD RECORDS -----------------------------------------------------------------------------------
BAD = [
    (REJECT_KIND, dict(kind=0)),
    (REJECT_KIND, dict(kind=9)),
    (REJECT_VENUE, q(3, BID, NEW, 0, 100, 1)),
    (REJECT_INSTRUMENT, q(0, BID, NEW, 0, 100, 1, instrument=2)),
    (REJECT_SIDE, q(0, 2, NEW, 0, 100, 1)),
    (REJECT_SIDE, dict(kind=TRADE, side=3, price=100, size=1)),
    (REJECT_ACTION, q(0, BID, 4, 0, 100, 1)),
    (REJECT_ACTION, status(0, 4)),
    (REJECT_LEVEL, q(0, BID, NEW, 4, 100, 1)),
    (REJECT_LEVEL, q(0, ASK, DELETE, 255)),
    (REJECT_SIZE, q(0, BID, NEW, 0, 100, -1)),
    (REJECT_SIZE, q(0, BID, CHANGE, 0, 100, 0)),
    (REJECT_SIZE, q(0, BID, DELETE, 0, 0, -5)),
    (REJECT_SIZE, dict(kind=TRADE, price=100, size=0)),
    (REJECT_PRICE, q(0, BID, NEW, 0, 0, 1)),
    (REJECT_PRICE, q(0, ASK, CHANGE, 0, -3, 1)),
    (REJECT_PRICE, dict(kind=TRADE, price=0, size=1)),
]


@pytest.mark.parametrize("code, row", BAD, ids=[f"{REJECT_NAMES[c]}-{k}" for k, (c, _) in
                                                 enumerate(BAD)])
def test_bad_records_are_counted_by_reason_and_skipped(code, row):
    b = fresh()
    apply_batch(b, records(q(0, BID, NEW, 0, 100, 1), q(0, ASK, NEW, 0, 101, 1)))
    before = (b.book.copy(), b.venue.copy(), b.bbo.copy())
    assert apply_one(b, records(row)) == -1 - code
    assert b.rejects.tolist() == [int(c == code) for c in range(N_REJECTS)]
    assert b.reject_counts()[REJECT_NAMES[code]] == 1
    for now, then in zip((b.book, b.venue, b.bbo), before):
        assert np.array_equal(now, then)
    r = fresh()
    apply_reference(r, records(q(0, BID, NEW, 0, 100, 1), q(0, ASK, NEW, 0, 101, 1), row))
    assert np.array_equal(r.rejects, b.rejects)


def test_a_batch_counts_what_it_applied():
    b = fresh()
    batch = records(*[row for _, row in BAD], q(0, BID, NEW, 0, 100, 1), status(1, STATUS_OK))
    assert apply_batch(b, batch) == 2
    assert b.rejects.sum() == len(BAD)


def test_caller_bugs_raise():
    b = fresh()
    with pytest.raises(IndexError):
        apply_one(b, records(q(0, BID, NEW, 0, 100, 1)), 1)
    with pytest.raises(TypeError, match="MD_EVENT"):
        apply_batch(b, np.zeros(3, dtype=np.int64))


def test_bind_applies_like_apply_one_and_checks_the_buffer_once():
    b, ref = fresh(), fresh()
    buf = records(*snapshot(0, [(100, 1)], [(101, 2)]), q(1, BID, NEW, 0, 100, 3), dict(kind=0))
    apply = b.bind(buf)
    assert [apply(k) for k in range(len(buf))] == [apply_one(ref, buf, k) for k in range(len(buf))]
    for name in ("book", "venue", "bbo", "rejects"):
        assert np.array_equal(getattr(b, name), getattr(ref, name))
    buf[0] = records(q(2, ASK, NEW, 0, 99, 1))[0]  # the buffer is refilled in place
    assert apply(0) == 1 and b.bbo[0]["flags"] == BBO_CROSSED
    with pytest.raises(IndexError):
        apply(len(buf))
    with pytest.raises(TypeError, match="MD_EVENT"):
        b.bind(np.zeros(4, dtype=np.int64))


def test_replay_from_a_read_only_memmap(tmp_path):
    rows = records(*snapshot(0, [(100, 1)], [(101, 2)]), q(1, BID, NEW, 0, 100, 3))
    path = tmp_path / "md.bin"
    rows.tofile(path)
    mm = np.memmap(path, dtype=MD_EVENT, mode="r")
    b = BookSet(2, 1, 4)
    assert apply_batch(b, mm) == len(rows)
    assert (b.bbo[0]["bid_px"], b.bbo[0]["bid_sz"], b.bbo[0]["ask_px"]) == (100, 1, 101)


# -- CONSOLIDATED DEPTH ----------------------------------------------------------------------------
def test_consolidated_depth_merges_venues_and_leaves_excluded_ones_out():
    b = fresh(depth=3)
    apply_batch(b, records(
        *[q(0, BID, NEW, k, p, s) for k, (p, s) in enumerate([(100, 1), (99, 2), (97, 3)])],
        *[q(1, BID, NEW, k, p, s) for k, (p, s) in enumerate([(100, 10), (98, 20)])],
        *[q(2, BID, NEW, k, p, s) for k, (p, s) in enumerate([(105, 7)])],
        *[q(1, ASK, NEW, k, p, s) for k, (p, s) in enumerate([(101, 5), (102, 6)])],
        status(2, STATUS_GAP)))
    d = b.consolidated_depth(0, 5)
    assert d.shape == (2, 3, 5)
    assert d[BID, DEPTH_PX].tolist() == [100, 99, 98, 97, 0]
    assert d[BID, DEPTH_SZ].tolist() == [11, 2, 20, 3, 0]
    assert d[BID, DEPTH_VENUES].tolist() == [0b011, 0b001, 0b010, 0b001, 0]
    assert d[ASK, DEPTH_PX].tolist() == [101, 102, 0, 0, 0]
    assert np.array_equal(d, consolidated_depth_reference(b, 0, 5))
    again = b.consolidated_depth(0, 2, out=np.full((2, 3, 2), 7, dtype=np.int64))
    assert again[BID, DEPTH_PX].tolist() == [100, 99]
    with pytest.raises(IndexError):
        b.consolidated_depth(2)


def test_reset_empties_in_place():
    b = BookSet(2, 1, 2)
    view = b.bid_px
    apply_batch(b, records(*snapshot(0, [(100, 1)], [(101, 1)]), dict(kind=0)))
    b.reset()
    assert not view.any() and not b.rejects.any() and b.state.tolist() == [[ST_STALE]] * 2
    assert b.bbo[0]["flags"] == BBO_NO_BID | BBO_NO_ASK and b.bbo[0]["excluded"] == 0b11

