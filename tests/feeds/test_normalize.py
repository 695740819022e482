"""FixMdNormalizer: FIX market data → MD_EVENT, fed real wire bytes (engine.fix.codec.encode)
and the venue's own market data (engine.venue.exchange.Exchange, sans-IO)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from engine.core.profile import InstrumentConfig
from engine.feeds import normalize as nz
from engine.feeds.fixmd import FixMdSubscriptions
from engine.feeds.integrity import FeedIntegrity
from engine.feeds.normalize import REASONS, FixMdNormalizer
from engine.fix.codec import FixMessage, decode, encode
from engine.venue.exchange import Exchange
from engine.venue.matching import Side
from tests.feeds.test_simvenues import PyBooks

T0 = 1_700_000_000_123_000_000  # SendingTime of message 0 (ms precision on the wire)
INSTRUMENTS = {"AAA": (0, 0.01), "BBB": (1, 0.25), "CCC": (7, 5.0)}
_seq = itertools.count(1)


def raw(msg_type: bytes, body: list, i: int = 0) -> bytes:
    return encode(msg_type, body, sender=b"SIMA", target=b"HELM", seq=next(_seq),
                  sending_time_ns=T0 + i * 1_000_000)


def X(*entries: dict, req: str = "R1", count: int | None = None, i: int = 0) -> bytes:
    body: list = [(262, req), (268, len(entries) if count is None else count)]
    for e in entries:
        body += list(e.items())
    return raw(b"X", body, i)


def e(action, side, px, size, level, rpt, sym="AAA") -> dict:
    d = {279: action, 269: side, 55: sym}
    for tag, v in ((270, px), (271, size), (1023, level), (83, rpt)):
        if v is not None:
            d[tag] = v
    return d


def W(sym: str, rpt, *levels, req: str = "R1") -> bytes:
    """A snapshot; ``levels`` are (269, px, size, level or None)."""
    body: list = [(262, req), (55, sym)]
    if rpt is not None:
        body.append((83, rpt))
    body.append((268, len(levels)))
    for t, px, sz, lv in levels:
        body += [(269, t), (270, px), (271, sz)]
        if lv is not None:
            body.append((1023, lv))
    return raw(b"W", body)


def norm(**kw) -> FixMdNormalizer:
    return FixMdNormalizer(2, "SIMA", INSTRUMENTS, 5, **kw)


def run(n: FixMdNormalizer, *msgs: bytes, recv_ns: int = 42, cap: int = 256) -> np.ndarray:
    out = EventBuffer(cap)
    for m in msgs:
        n.on_message(decode(m), recv_ns, out)
    return out.view().copy()


def problems(n: FixMdNormalizer) -> dict[str, int]:
    return {k: v for k, v in n.counters.items() if k in REASONS and v}


# -- what each message becomes ---------------------------------------------------------------
def test_an_incremental_becomes_one_record_per_entry():
    n = norm()
    rec = run(n, X(e(0, 0, "100.25", 300, 1, 11), e(1, 1, "100.27", 5, 2, 12),
                   e(2, 0, "100.20", 0, 3, 13), e(0, 2, "100.26", 7, None, 14), i=3),
              recv_ns=99)
    assert len(rec) == 4 and not problems(n)
    assert rec["kind"].tolist() == [QUOTE, QUOTE, QUOTE, TRADE]
    assert rec["side"].tolist() == [BID, ASK, BID, 0]  # a trade's aggressor: unknown in 4.4
    assert rec["action"].tolist() == [NEW, CHANGE, DELETE, NEW]
    assert rec["level"].tolist() == [0, 1, 2, 0]
    assert rec["price"].tolist() == [10025, 10027, 10020, 10026]
    assert rec["size"].tolist() == [300, 5, 0, 7]
    assert rec["seq"].tolist() == [11, 12, 13, 14]
    assert rec["flags"].tolist() == [0, 0, 0, F_LAST]
    assert set(rec["venue"]) == {2} and set(rec["channel"]) == {5}
    assert set(rec["instrument"]) == {0} and set(rec["recv_ns"]) == {99}
    assert set(rec["exch_ns"]) == {T0 + 3_000_000}  # SendingTime (52)
    assert n.counters["records"] == 4 and n.counters["incrementals"] == 1


def test_a_snapshot_clears_both_sides_then_adds_each_level():
    n = norm()
    rec = run(n, W("BBB", 9, (0, "50.25", 10, 1), (0, "50", 20, 2), (1, "50.75", 5, 1)))
    assert rec["action"].tolist() == [CLEAR, CLEAR, NEW, NEW, NEW]
    assert rec["side"].tolist() == [BID, ASK, BID, BID, ASK]
    assert rec["level"].tolist() == [0, 0, 0, 1, 0]
    assert rec["price"].tolist() == [0, 0, 201, 200, 203]
    assert rec["size"].tolist() == [0, 0, 10, 20, 5]
    assert set(rec["seq"]) == {9} and set(rec["instrument"]) == {1}
    assert rec["flags"].tolist() == [F_SNAPSHOT] * 4 + [F_SNAPSHOT | F_LAST]
    # without MDPriceLevel, a side's levels are its entries in wire order; no RptSeq: seq 0
    rec = run(n, W("BBB", None, (1, "51", 1, None), (1, "52", 2, None)))
    assert rec["level"].tolist() == [0, 0, 0, 1] and set(rec["seq"]) == {0}
    assert n.counters["snapshots"] == 2 and not problems(n)


@pytest.mark.parametrize("price, tick, ticks", [
    ("190.23", 0.01, 19023), ("0.01", 0.01, 1), (".25", 0.25, 1), ("50.75", 0.25, 203),
    ("105", 5.0, 21), ("100.2500", 0.25, 401), ("7", 0.0025, 2800), ("0.0075", 0.0025, 3),
])
def test_prices_become_exact_ticks(price, tick, ticks):
    n = FixMdNormalizer(0, "V", {"Q": (3, tick)})
    rec = run(n, X(e(0, 0, price, 1, 1, 1, sym="Q")))
    assert rec["price"].tolist() == [ticks], n.last_problem


@pytest.mark.parametrize("price, tick", [("190.235", 0.01), ("50.1", 0.25), ("102", 5.0),
                                         ("0.001", 0.0025)])
def test_a_price_off_the_tick_grid_is_rejected_not_rounded(price, tick):
    n = FixMdNormalizer(0, "V", {"Q": (3, tick)})
    assert len(run(n, X(e(0, 0, price, 1, 1, 1, sym="Q")))) == 0
    assert problems(n) == {"off_tick": 1} and "off_tick" in n.last_problem


# -- bad input: dropped, counted by reason, never raised --------------------------------------
BAD_ENTRIES = [
    ({55: "ZZZ"}, "unknown_symbol"),
    ({55: None}, "missing_field"),
    ({269: None}, "missing_field"),
    ({270: None}, "missing_field"),
    ({271: None}, "missing_field"),
    ({1023: None}, "missing_field"),
    ({279: "5"}, "bad_action"),
    ({270: "nan"}, "bad_price"),
    ({270: "NaN"}, "bad_price"),
    ({270: "inf"}, "bad_price"),
    ({270: "-100.25"}, "bad_price"),
    ({270: "0"}, "bad_price"),
    ({270: "0.00"}, "bad_price"),
    ({270: "1e2"}, "bad_price"),
    ({270: "abc"}, "bad_price"),
    ({270: "100.255"}, "off_tick"),
    ({271: "0"}, "bad_size"),
    ({271: "-5"}, "bad_size"),
    ({271: "1.5"}, "bad_size"),
    ({271: "nan"}, "bad_size"),
    ({1023: "0"}, "bad_level"),
    ({1023: "256"}, "bad_level"),
    ({1023: "x"}, "bad_level"),
    ({83: "x7"}, "bad_seq"),
    ({83: "-7"}, "bad_seq"),
    ({83: "9" * 20}, "bad_seq"),
]


@pytest.mark.parametrize("change, reason", BAD_ENTRIES)
@pytest.mark.parametrize("compiled", [True, False])
def test_a_bad_entry_is_dropped_alone_and_counted(change, reason, compiled):
    n = norm()
    if not compiled:
        n._kernel = None
    bad = e(0, 0, "100.25", 300, 1, 2)
    for tag, v in change.items():
        if v is None:
            del bad[tag]
        else:
            bad[tag] = v
    rec = run(n, X(e(0, 0, "100.26", 1, 1, 1), bad, e(0, 1, "100.30", 2, 1, 3)))
    assert rec["seq"].tolist() == [1, 3]  # the good ones still come
    assert rec["flags"].tolist() == [0, F_LAST]
    assert problems(n) == {reason: 1}
    assert n.last_problem.startswith(f"SIMA: {reason}: incremental")


def test_deletes_need_no_price_and_read_size_zero():
    n = norm()
    rec = run(n, X(e(2, 0, None, 0, 1, 1), e(2, 1, "100.5", 300, 2, 2)))
    assert rec["price"].tolist() == [0, 10050] and rec["size"].tolist() == [0, 0]
    assert not problems(n)


def test_other_entry_types_and_messages_are_ignored_not_errors():
    n = norm()
    rec = run(n, X(e(0, "4", "100.25", 1, None, 1), e(0, 0, "100.25", 1, 1, 2)),
              raw(b"8", [(37, "O1"), (11, "C1"), (17, "E1"), (150, "0"), (39, "0"),
                         (55, "AAA"), (54, "1"), (151, 1), (14, 0), (6, 0)]))
    assert rec["seq"].tolist() == [2]
    assert n.counters["ignored"] == 2 and not problems(n)


def test_a_bad_snapshot_is_dropped_whole():
    n = norm()
    cases = [
        (W("AAA", 3, (0, "100", 1, 1), (0, "nan", 1, 2)), "bad_price"),
        (W("AAA", 3, (0, "100", 1, 1), (0, "99.995", 1, 2)), "off_tick"),
        (W("AAA", 3, (0, "100", 0, 1)), "bad_size"),
        (W("AAA", 3, (0, "100", 1, 2)), "bad_level"),
        (W("AAA", 3, (0, "100", 1, 1), (0, "100.5", 1, 2)), "bad_snapshot"),
        (W("AAA", 3, (1, "100", 1, 1), (1, "99", 1, 2)), "bad_snapshot"),
        (W("ZZZ", 3, (0, "100", 1, 1)), "unknown_symbol"),
        (W("AAA", "x", (0, "100", 1, 1)), "bad_seq"),
        (raw(b"W", [(262, "R1"), (83, 1), (268, 0)]), "missing_field"),
    ]
    for msg, reason in cases:
        before = n.counters[reason]
        assert len(run(n, msg)) == 0, reason
        assert n.counters[reason] == before + 1, (reason, n.last_problem)
        assert "snapshot" in n.last_problem
    assert n.counters["snapshots"] == 0


def test_a_group_whose_count_is_wrong_is_dropped():
    n = norm()
    assert len(run(n, X(e(0, 0, "100", 1, 1, 1), e(0, 0, "99", 1, 2, 2), count=3))) == 0
    assert problems(n) == {"bad_group": 1}
    # MDUpdateAction (279) opens each entry: without it, two entries run into one
    second = e(0, 0, "99", 1, 2, 2)
    del second[279]
    assert len(run(n, X(e(0, 0, "100", 1, 1, 1), second))) == 0
    assert problems(n) == {"bad_group": 2}


def test_a_reject_is_counted_with_its_text():
    n = norm()
    rec = run(n, raw(b"Y", [(262, "R9"), (281, "0"), (58, "Symbol(55) 'ZZZ' is not traded")]))
    assert len(rec) == 0 and problems(n) == {"rejects": 1}
    assert "R9" in n.last_problem and "'ZZZ' is not traded" in n.last_problem


def test_messages_of_an_ended_request_are_dropped():
    n = norm()
    n.set_requests(["R2"])
    rec = run(n, X(e(0, 0, "100", 1, 1, 1), req="R1"), X(e(0, 0, "100", 1, 1, 1), req="R2"),
              W("AAA", 0, (0, "100", 1, 1), req="R1"))
    assert rec["seq"].tolist() == [1] and problems(n) == {"stale_request": 2}
    n.set_requests(None)
    assert len(run(n, X(e(0, 0, "100", 1, 1, 1), req="R1"))) == 1


def test_on_message_never_raises_on_what_is_not_a_message():
    n = norm()
    out = EventBuffer(4)
    assert n.on_message(None, 1, out) == 0  # type: ignore[arg-type]
    assert n.on_message(b"8=FIX.4.4", 1, out) == 0  # type: ignore[arg-type]
    assert out.n == 0 and n.counters["internal_error"] == 2


def test_sending_time_to_exch_ns():
    n = norm()
    for ts, want in ((b"20231114-22:13:20.123", 1_700_000_000_123_000_000),
                     (b"20231114-22:13:20", 1_700_000_000_000_000_000),
                     (b"20231114-22:13:20.123456", 1_700_000_000_123_456_000),
                     (b"20231114-22:13:20.123456789", 1_700_000_000_123_456_789),
                     (b"20240229-00:00:00.001", 1_709_164_800_001_000_000),
                     (b"20231114-22:13:60.000", 1_700_000_040_000_000_000),  # leap second
                     (b"20230229-00:00:00.000", 0), (b"2023111-22:13:20.123", 0),
                     (b"20231114-22:13:20.12", 0), (b"20231114 22:13:20.123", 0)):
        m = (b"35=X\x0149=SIMA\x0156=HELM\x0134=1\x0152=" + ts +
             b"\x01262=R\x01268=1\x01279=0\x01269=0\x0155=AAA\x01270=1\x01271=1\x011023=1\x01")
        msg = b"8=FIX.4.4\x019=%d\x01%s" % (len(m), m)
        msg += b"10=%03d\x01" % (sum(msg) % 256)
        for compiled in (True, False):
            k = norm()
            if not compiled:
                k._kernel = None
            rec = run(k, msg)
            assert rec["exch_ns"].tolist() == [want], (ts, compiled)
    assert not problems(n)


# -- the compiled path against the Python one -------------------------------------------------
_SYMS = [b"AAA", b"BBB", b"CCC", b"ZZZ", b"AA"]


@st.composite
def md_entries(draw) -> list[tuple[int, bytes]]:
    fields = [(279, draw(st.sampled_from([b"0", b"1", b"2", b"3", b"00"]))),
              (269, draw(st.sampled_from([b"0", b"1", b"2", b"4", b"10"]))),
              (55, draw(st.sampled_from(_SYMS)))]
    px = draw(st.one_of(st.sampled_from([b"100.25", b"100.255", b"50.5", b"50.75", b"105",
                                         b"0", b"-1", b"nan", b"1e2", b".25", b"5.", b"110.00"]),
                        st.decimals(min_value=0, max_value=10**6, places=3,
                                    allow_nan=False).map(lambda d: str(d).encode())))
    extra = [(270, px), (271, draw(st.sampled_from([b"0", b"1", b"300", b"2.0", b"-4",
                                                      b"12345678901234567890"]))),
             (1023, draw(st.sampled_from([b"1", b"3", b"10", b"255", b"256", b"0", b"01"]))),
             (83, draw(st.sampled_from([b"1", b"77", b"123456789012345678", b"9" * 19,
                                        b"x"]))),
             (273, b"12:00:00.000")]
    keep = draw(st.lists(st.booleans(), min_size=len(extra), max_size=len(extra)))
    return fields + [f for f, k in zip(extra, keep) if k or f[0] in (270, 271) and k]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(md_entries(), max_size=6), st.integers(0, 3), st.integers(0, 10**9))
def test_the_kernel_writes_what_the_python_path_writes(entries, count_delta, t):
    body: list = [(262, b"R1"), (268, len(entries) + (count_delta == 3))]
    for ent in entries:
        body += ent
    msg = decode(encode(b"X", body, sender=b"S", target=b"T", seq=1,
                        sending_time_ns=T0 + t * 1000))
    outs = []
    for how in ("entry point", "py_func", "python"):
        n = norm()
        n._kernel = {"entry point": n._kernel, "py_func": nz._x_kernel, "python": None}[how]
        out = EventBuffer(16)
        k = n.on_message(msg, 42, out)
        outs.append((k, out.view().tobytes(), n.counters))
    assert outs[0] == outs[1] == outs[2]
    assert outs[0][2]["internal_error"] == 0


def test_the_kernel_takes_plain_venue_messages():
    n = norm()
    msg = decode(X(e(0, 0, "100.25", 300, 1, 11), e(2, 1, "100.27", 0, 2, 12),
                   e(0, 2, "100.26", 7, None, 14)))
    out = np.zeros((8, 8), dtype=np.int64)
    assert n._kernel(msg.raw, n._tab, n._symb, out, 0, 42, n._vc, n._meta) == 3
    assert n._kernel(msg.raw, n._tab, n._symb, out[:2], 0, 42, n._vc, n._meta) == -1  # no room


# -- bytes in: framing, garbage, buffer room --------------------------------------------------
def test_feed_bytes_takes_any_split_and_skips_garbage():
    msgs = [X(e(0, 0, "100.%02d" % k, 1 + k, 1, k + 1), i=k) for k in range(20)]
    stream = b"".join(msgs[:5]) + b"garbage!" + b"".join(msgs[5:10]) + msgs[10][:-3] \
        + b"".join(msgs[11:])
    r = random.Random(5)
    for _ in range(20):
        n = norm()
        out = EventBuffer(64)
        i = 0
        while i < len(stream):
            j = min(len(stream), i + r.randint(1, 90))
            n.feed_bytes(stream[i:j], 7, out)
            i = j
        got = out.view()["seq"].tolist()
        assert got == [k + 1 for k in range(20) if k != 10]
        c = n.counters
        assert c["garbled"] == 2 and c["records"] == 19, c


def test_feed_bytes_waits_for_room_instead_of_dropping():
    msgs = b"".join(X(*(e(0, 0, "100", 1, 1, 4 * k + j + 1) for j in range(4)), i=k)
                    for k in range(10))
    n = norm()
    out = EventBuffer(10)
    seen = []
    n.feed_bytes(msgs, 1, out)
    while True:
        seen += out.view()["seq"].tolist()
        out.clear()
        if not n.pending:
            break
        n.feed_bytes(b"", 1, out)
    assert seen == list(range(1, 41)) and n.counters["buffer_full"] == 0
    # on_message with no room: counted, all or nothing
    full = EventBuffer(3)
    assert n.on_message(decode(X(*(e(0, 0, "100", 1, 1, j) for j in range(4)))), 1, full) == 0
    assert full.n == 0 and n.counters["buffer_full"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 5), st.randoms(use_true_random=False))
def test_random_and_truncated_bytes_never_raise(junk, cut, rnd):
    good = X(e(0, 0, "100.25", 3, 1, 1), e(1, 1, "100.5", 2, 1, 2))
    parts = [junk, good[:len(good) - cut] if cut else good, junk[::-1], good,
             good[: len(good) // 2]]
    data = b"".join(parts)
    n = norm()
    out = EventBuffer(32)
    i = 0
    while i < len(data):
        j = min(len(data), i + rnd.randint(1, 200))
        n.feed_bytes(data[i:j], 1, out)
        i = j
    c = n.counters
    assert c["internal_error"] == 0
    assert out.n >= 2  # the whole good message after the junk always comes through
    rec = out.view()
    assert ((rec["kind"] == QUOTE) & (rec["price"] > 0) & (rec["size"] > 0)).all()


def test_flipped_bytes_are_counted_and_later_messages_still_come():
    good = X(e(0, 0, "100.25", 3, 1, 1), e(1, 1, "100.5", 2, 1, 2))
    r = random.Random(11)
    for _ in range(200):
        bad = bytearray(good)
        bad[r.randrange(len(bad))] = r.randrange(256)
        n = norm()
        out = EventBuffer(32)
        n.feed_bytes(bytes(bad) + good, 1, out)
        assert n.counters["internal_error"] == 0
        assert out.view()["seq"].tolist()[-2:] == [1, 2]


# -- against the venue: snapshot + incrementals rebuild the venue's book ---------------------
AAA = InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)
BBB = InstrumentConfig(symbol="BBB", tick=0.25, price=50.0)


def _venue_run(seed: int, depth: int, steps: int) -> None:
    x = Exchange("SIMA", [AAA, BBB])
    md = FixMdSubscriptions("SIMA", ["AAA", "BBB"], depth=depth)
    n = FixMdNormalizer(0, "SIMA", {"AAA": (0, 0.01), "BBB": (1, 0.25)})
    integ = FeedIntegrity(1, 2, 10**9)
    books = PyBooks(depth)
    r = random.Random(seed)
    live: list[tuple[int, int]] = []
    out = EventBuffer(4096)

    def pump(now: int) -> None:
        data = b"".join(encode(mt, body, sender=b"SIMA", target=b"HELM", seq=next(_seq),
                               sending_time_ns=T0 + now) for _, mt, body in x.outbox)
        x.outbox.clear()
        i = 0
        while i < len(data):  # as a socket would deliver it
            j = min(len(data), i + r.randint(1, 700))
            n.feed_bytes(data[i:j], now, out)
            i = j
        keep = integ.check(out.view(), now)
        assert keep.all(), integ.counters(0)
        for rec in out.view():
            books.apply(rec)
        out.clear()

    for t in range(40):  # a book to start with
        b = x.books[t % 2]
        side = Side.BUY if t % 4 < 2 else Side.SELL
        px = b.start_ticks + (-1 - t // 4 if side == Side.BUY else 1 + t // 4)
        x.submit_background(b, side, 1 + t, px, t)
    for mt, body in md.subscribe():
        x.on_message("HELM", decode(raw(mt, body)), 100)
    pump(100)
    for t in range(200, 200 + steps):
        b = x.books[r.randrange(2)]
        if live and r.random() < 0.3:
            bi, oid = live.pop(r.randrange(len(live)))
            x.cancel_background(x.books[bi], oid, t)
        else:
            side = r.choice((Side.BUY, Side.SELL))
            px = b.start_ticks + r.randint(-12, 12)
            oid = x.submit_background(b, side, r.randint(1, 30), px, t)
            live.append((x.books.index(b), oid))
        if r.random() < 0.5:
            pump(t)
    pump(10**6)
    for iid, (sym, inst) in enumerate((("AAA", AAA), ("BBB", BBB))):
        want = x.book_levels(sym, depth)
        got = books.levels(0, iid)
        assert got == ([(round(p / inst.tick), q) for p, q in want["bids"]],
                       [(round(p / inst.tick), q) for p, q in want["offers"]]), sym
    c = n.counters
    assert not {k: v for k, v in c.items() if k in REASONS and v}
    assert c["snapshots"] == 2 and c["incrementals"] > steps // 4
    assert books.trades > 0
    h = integ.counters(0)
    assert h["gaps"] == h["duplicates"] == h["out_of_order"] == h["stale_dropped"] == 0
    assert h["events"] == c["records"] and h["snapshots"] == 2


@pytest.mark.parametrize("seed, depth", [(1, 3), (2, 10), (3, 1)])
def test_snapshot_and_incrementals_rebuild_the_venues_book(seed, depth):
    _venue_run(seed, depth, 600)


def test_records_are_md_event_bytes():
    n = norm()
    out = EventBuffer(8)
    n.feed_bytes(X(e(0, 0, "100.25", 300, 1, 11)), 5, out)
    assert out.rec.dtype == MD_EVENT
    r = out.view()[0]
    assert (r["kind"], r["venue"], r["channel"], r["instrument"], r["pad"]) == (QUOTE, 2, 5, 0, 0)
    assert isinstance(decode(X(e(0, 0, "1", 1, 1, 1))), FixMessage)
