"""FeedIntegrity: gaps, duplicates, out-of-order and bad records counted with their reasons,
snapshots mending streams, silent venues, FEED_HEALTH, and the compiled kernel against its
plain-Python form."""

from __future__ import annotations

import random

import numpy as np
import pytest

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
    STATUS,
    STATUS_GAP,
    STATUS_HALTED,
    TRADE,
)
from engine.feeds.integrity import (
    FEED_HEALTH,
    LIVE,
    STALE,
    UNSYNCED,
    FeedIntegrity,
)

S = 1_000_000_000


def recs(*rows: dict) -> np.ndarray:
    """Records from dicts; defaults: a QUOTE NEW BID at level 0, venue 0, instrument 0, price
    100, size 5, recv_ns 1."""
    out = np.zeros(len(rows), dtype=MD_EVENT)
    for r, row in zip(out, rows):
        r["kind"], r["side"], r["action"], r["price"], r["size"], r["recv_ns"] = \
            QUOTE, BID, NEW, 100, 5, 1
        for k, v in row.items():
            r[k] = v
    return out


def snap(seq: int, venue: int = 0, instrument: int = 0, **kw) -> list[dict]:
    base = dict(venue=venue, instrument=instrument, seq=seq, flags=F_SNAPSHOT, **kw)
    return [dict(base, action=CLEAR, side=BID, price=0, size=0),
            dict(base, action=CLEAR, side=ASK, price=0, size=0),
            dict(base, side=BID, price=99),
            dict(base, side=ASK, price=101, flags=F_SNAPSHOT | F_LAST)]


def upd(seq: int, venue: int = 0, instrument: int = 0, **kw) -> dict:
    return dict(venue=venue, instrument=instrument, seq=seq, **kw)


def live(**kw) -> FeedIntegrity:
    fi = FeedIntegrity(2, 4, 2 * S, **kw)
    assert fi.check(recs(*snap(10), *snap(0, venue=1, instrument=3)), 1).all()
    assert fi.stream_state(0, 0) == LIVE and fi.stream_state(1, 3) == LIVE
    return fi


def test_in_sequence_records_pass():
    fi = live()
    keep = fi.check(recs(upd(11), upd(12, action=CHANGE), upd(1, venue=1, instrument=3),
                         upd(13, action=DELETE, size=0)), 2)
    assert keep.tolist() == [True] * 4
    assert fi.counters(0)["events"] == 4 + 3 and fi.counters(0)["snapshots"] == 1
    assert fi.take_gaps() == []


def test_a_gap_makes_the_stream_stale_until_its_snapshot():
    fi = live()
    batch = recs(upd(11), upd(14), upd(15), upd(16, instrument=1), upd(12))
    keep = fi.check(batch, 2)
    # 14 skips 12-13: the stream is STALE, its records dropped; instrument 1 never had a
    # snapshot, so its record is dropped too (require_snapshot)
    assert keep.tolist() == [True, False, False, False, False]
    c = fi.counters(0)
    assert c["gaps"] == 1 and c["stale_dropped"] == 3 and c["stale_streams"] == 1
    assert fi.take_gaps() == [(0, 0, 0)] and fi.take_gaps() == []
    assert fi.stream_state(0, 0) == STALE and fi.is_stale(0, 0)
    # a snapshot (any seq: a new subscription numbers from 0 again) makes it LIVE
    assert fi.check(recs(*snap(3), upd(4)), 3).all()
    assert fi.stream_state(0, 0) == LIVE and fi.counters(0)["stale_streams"] == 0
    assert fi.counters(0)["snapshots"] == 2


def test_filter_puts_a_status_gap_where_the_gap_was():
    fi = live()
    out = fi.filter(recs(upd(11), upd(13, recv_ns=77), upd(12), upd(1, venue=1, instrument=3)),
                    2)
    assert out["kind"].tolist() == [QUOTE, STATUS, QUOTE]
    g = out[1]
    assert (g["action"], g["venue"], g["instrument"], g["seq"], g["aux"], g["recv_ns"]) == \
        (STATUS_GAP, 0, 0, 13, 12, 77)
    assert (g["price"], g["size"], g["flags"]) == (0, 0, 0)
    assert out["venue"].tolist() == [0, 0, 1]
    # without a gap: just the kept records
    assert len(fi.filter(recs(upd(2, venue=1, instrument=3), upd(2, venue=1, instrument=3)),
                         3)) == 1


def test_duplicates_and_out_of_order_are_dropped_and_the_stream_stays_live():
    fi = live()
    keep = fi.check(recs(upd(11), upd(12), upd(12), upd(11), upd(5), upd(13)), 2)
    assert keep.tolist() == [True, True, False, False, False, True]
    c = fi.counters(0)
    assert c["duplicates"] == 1 and c["out_of_order"] == 2 and c["gaps"] == 0
    assert fi.stream_state(0, 0) == LIVE


def test_a_snapshot_record_without_its_clear_is_dropped():
    fi = live()
    keep = fi.check(recs(dict(upd(10), flags=F_SNAPSHOT), dict(upd(9), flags=F_SNAPSHOT)), 2)
    assert keep.tolist() == [True, False]  # 10 belongs to the snapshot at 10; 9 does not
    assert fi.counters(0)["out_of_order"] == 1


def test_unsequenced_and_status_records():
    fi = live()
    keep = fi.check(recs(upd(0), dict(upd(0), kind=STATUS, action=STATUS_HALTED, price=0,
                                      size=0),
                         dict(upd(0, instrument=2)), dict(upd(0, instrument=2), kind=STATUS,
                                                          action=STATUS_HALTED)), 2)
    # seq 0: no sequence check, but an unsynced stream still waits for its snapshot; STATUS
    # records always pass
    assert keep.tolist() == [True, True, False, True]


def test_without_require_snapshot_the_first_record_sets_the_sequence():
    fi = FeedIntegrity(1, 2, S, require_snapshot=False)
    assert fi.stream_state(0, 1) == UNSYNCED
    keep = fi.check(recs(upd(500, instrument=1), upd(501, instrument=1), upd(503, instrument=1)),
                    1)
    assert keep.tolist() == [True, True, False]
    assert fi.take_gaps() == [(0, 0, 1)]


BAD = [
    (dict(price=0), "rej_price"),
    (dict(price=-5), "rej_price"),
    (dict(price=np.iinfo(np.int64).min), "rej_price"),  # a NaN turned into ticks
    (dict(size=0), "rej_size"),
    (dict(size=-1), "rej_size"),
    (dict(action=CHANGE, size=0), "rej_size"),
    (dict(action=DELETE, price=-1, size=0), "rej_price"),
    (dict(action=DELETE, size=-1), "rej_size"),
    (dict(kind=TRADE, side=BUY, size=0), "rej_size"),
    (dict(kind=TRADE, side=BUY, price=0), "rej_price"),
    (dict(kind=TRADE, side=7), "rej_field"),
    (dict(instrument=4), "rej_instrument"),
    (dict(channel=1), "rej_channel"),
    (dict(kind=9), "rej_field"),
    (dict(kind=0), "rej_field"),
    (dict(side=2), "rej_field"),
    (dict(action=4), "rej_field"),
    (dict(kind=STATUS, action=9), "rej_field"),
]


@pytest.mark.parametrize("change, reason", BAD)
@pytest.mark.parametrize("compiled", [True, False])
def test_bad_records_are_rejected_by_reason(change, reason, compiled):
    fi = FeedIntegrity(2, 4, 2 * S, compiled=compiled)
    fi.check(recs(*snap(10)), 1)
    keep = fi.check(recs(upd(11), dict(upd(12), **change), upd(12)), 2)
    assert keep.tolist() == [True, False, True]  # a rejected record takes no seq
    c = fi.counters(0)
    assert c[reason] == 1
    others = [k for k in c if k.startswith("rej_") and k != reason]
    assert all(c[k] == 0 for k in others)
    assert c["gaps"] == 0


def test_deletes_and_clears_may_have_zero_price_and_size():
    fi = live()
    keep = fi.check(recs(upd(11, action=DELETE, price=0, size=0),
                         upd(12, action=DELETE, price=100, size=0),
                         dict(upd(13), action=CLEAR, price=0, size=0)), 2)
    assert keep.all()


def test_records_of_no_venue_are_counted_apart():
    fi = live()
    keep = fi.check(recs(upd(11, venue=2), upd(11, venue=255), upd(11)), 2)
    assert keep.tolist() == [False, False, True]
    assert fi.unknown_venue == 2


# -- silence and rate --------------------------------------------------------------------------
def test_a_silent_venue_goes_stale_once_and_comes_back_with_its_next_record():
    fi = FeedIntegrity(2, 1, 2 * S, venue_names=["SIMA", "SIMB"])
    assert fi.health["stale"].tolist() == [1, 1]  # nothing heard yet
    fi.check(recs(*snap(1, recv_ns=10 * S), *snap(1, venue=1, recv_ns=10 * S)), 10 * S)
    assert fi.health["stale"].tolist() == [0, 0]
    assert fi.silence(11 * S) == []
    fi.check(recs(upd(2, recv_ns=11 * S)), 11 * S)
    assert fi.silence(12 * S + 1) == [1]  # venue 1: quiet since 10 s
    assert fi.silence(12 * S + 2) == []  # counted once
    assert fi.silence(13 * S) == [0]
    c0, c1 = fi.counters(0), fi.counters(1)
    assert (c0["stale"], c0["silences"], c1["stale"], c1["silences"]) == (1, 1, 1, 1)
    assert c0["venue"] == "SIMA" and c1["venue"] == "SIMB"
    assert fi.is_stale(0, 0)
    fi.check(recs(upd(3, recv_ns=14 * S)), 14 * S)
    assert fi.counters(0)["stale"] == 0 and fi.counters(0)["last_recv_ns"] == 14 * S
    assert not fi.is_stale(0, 0)
    assert fi.stream_state(0, 0) == LIVE  # silence loses nothing: no snapshot needed


def test_rate_over_the_last_second():
    fi = FeedIntegrity(1, 1, 2 * S)
    fi.check(recs(*snap(0)), 0)
    seq = 1
    for k in range(1, 31):  # 30 batches of 50 records, 100 ms apart
        batch = recs(*(upd(seq + j) for j in range(50)))
        seq += 50
        fi.check(batch, k * S // 10)
    assert fi.counters(0)["rate_hz"] == pytest.approx(500, rel=0.05)
    fi.silence(5 * S)
    assert fi.counters(0)["rate_hz"] < 100


# -- FEED_HEALTH -------------------------------------------------------------------------------
def test_feed_health_is_flat_and_aligned():
    assert FEED_HEALTH.itemsize == 176 and not FEED_HEALTH.hasobject
    for name in FEED_HEALTH.names:
        dt, off = FEED_HEALTH.fields[name][:2]
        assert dt.itemsize < 8 or off % 8 == 0, name
    fi = FeedIntegrity(3, 2, S)
    buf = bytearray(fi.health.tobytes())
    again = np.frombuffer(buf, dtype=FEED_HEALTH)
    assert again.shape == (3,) and again.tobytes() == fi.health.tobytes()


def test_bad_construction_and_lookups_are_refused():
    with pytest.raises(ValueError):
        FeedIntegrity(0, 1, S)
    with pytest.raises(ValueError):
        FeedIntegrity(1, 1, 0)
    with pytest.raises(TypeError):
        FeedIntegrity(1, 1, S).check(np.zeros(3, dtype=np.int64), 0)
    with pytest.raises(IndexError):
        FeedIntegrity(1, 1, S).stream_state(0, 1)


# -- the compiled kernel against its plain-Python form ---------------------------------------
def _random_batch(r: random.Random, n: int) -> np.ndarray:
    rows = []
    for _ in range(n):
        v, i = r.choice((0, 0, 1, 3)), r.choice((0, 1, 1, 2, 5))
        if r.random() < 0.08:
            rows += snap(r.randint(0, 40), venue=v, instrument=i)
            continue
        rows.append(dict(
            venue=v, instrument=i, channel=r.choice((0, 0, 0, 1)),
            kind=r.choice((QUOTE, QUOTE, QUOTE, TRADE, STATUS, 0)),
            side=r.choice((BID, ASK, 2)), action=r.choice((NEW, CHANGE, DELETE, CLEAR, 5)),
            flags=r.choice((0, 0, 0, F_SNAPSHOT, F_LAST)),
            seq=r.choice((0, r.randint(0, 60), r.randint(0, 60))),
            price=r.choice((100, 0, -3, 101)), size=r.choice((5, 0, -1, 7)),
            recv_ns=r.randint(0, 10 * S), exch_ns=r.randint(0, 10 * S)))
    return recs(*rows)


@pytest.mark.parametrize("seed", range(8))
def test_the_kernel_matches_its_python_form(seed):
    r = random.Random(seed)
    kw = dict(n_channels=1 + seed % 2, require_snapshot=bool(seed % 3))
    a = FeedIntegrity(3, 3, S, **kw)
    b = FeedIntegrity(3, 3, S, compiled=False, **kw)
    for k in range(30):
        batch = _random_batch(r, r.randint(0, 60))
        now = k * S // 3
        ka, kb = a.check(batch, now).copy(), b.check(batch, now).copy()
        assert ka.tolist() == kb.tolist()
        assert a.filter(batch, now).tobytes() == b.filter(batch, now).tobytes()
        assert a.silence(now) == b.silence(now)
        assert a.take_gaps() == b.take_gaps()
        assert a.health.tobytes() == b.health.tobytes()
        assert a.state.tobytes() == b.state.tobytes() and a.last.tobytes() == b.last.tobytes()
    assert a.unknown_venue == b.unknown_venue > 0
    assert a.health["gaps"].sum() > 0 and a.health["rej_field"].sum() > 0
