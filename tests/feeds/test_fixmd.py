"""FixMdBooks: the engine's side of FIX market data, fed real wire messages (encoded, then
decoded by engine.fix.codec) and, where the venue's answer matters, the venue's ``Exchange``."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.profile import InstrumentConfig
from engine.feeds.fixmd import MAX_AUTO_REFRESH, FixMdBooks
from engine.fix.codec import FixGarbled, FixMessage, GarbleKind, decode, encode
from engine.venue.exchange import Exchange

_seq = itertools.count(1)
AAA = InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)
BBB = InstrumentConfig(symbol="BBB", tick=0.25, price=50.0)


def wire(msg_type: bytes, *fields) -> FixMessage:
    return decode(encode(msg_type, list(fields), sender=b"SIMA", target=b"HELM",
                         seq=next(_seq), sending_time_ns=1_700_000_000_000_000_000))


def W(req: str, sym: str, rpt, *levels, trade=None) -> FixMessage:
    """A snapshot; ``levels`` are (269, px, size, level)."""
    body: list = [(262, req), (55, sym)]
    if rpt is not None:
        body.append((83, rpt))
    body.append((268, len(levels) + (trade is not None)))
    for t, px, sz, lv in levels:
        body += [(269, t), (270, px), (271, sz), (1023, lv)]
    if trade:
        body += [(269, 2), (270, trade[0]), (271, trade[1])]
    return wire(b"W", *body)


def X(req: str | None, *entries, count: int | None = None) -> FixMessage:
    """An incremental; ``entries`` are {tag: value} dicts in wire order."""
    body: list = [] if req is None else [(262, req)]
    body.append((268, len(entries) if count is None else count))
    for e in entries:
        body += list(e.items())
    return wire(b"X", *body)


def e(action, side, px, size, level, rpt, sym="AAA") -> dict:
    d = {279: action, 269: side, 55: sym}
    for tag, v in ((270, px), (271, size), (1023, level), (83, rpt)):
        if v is not None:
            d[tag] = v
    return d


def levels(md: FixMdBooks, sym: str = "AAA") -> tuple[list, list]:
    b = md.books[sym]
    return ([(p, s) for p, s in zip(b.bid_px, b.bid_sz) if p],
            [(p, s) for p, s in zip(b.ask_px, b.ask_sz) if p])


def req_id(md: FixMdBooks, sym: str = "AAA") -> str:
    return md._syms[sym].req_id.decode()  # the live request: what the venue would echo


def live(depth: int = 3) -> FixMdBooks:
    """Subscribed to AAA and BBB, AAA's snapshot in: bids 10.02 ×5, 10.01 ×3; offers 10.04 ×2."""
    md = FixMdBooks("SIMA", ["AAA", "BBB"], depth=depth)
    md.subscribe()
    changed = md.on_message(W(req_id(md), "AAA", 7, (0, "10.02", 5, 1), (0, "10.01", 3, 2),
                              (1, "10.04", 2, 1)))
    assert changed == ["AAA"] and not md.stale("AAA") and md.stale("BBB")
    return md


# -- requests, against the venue -----------------------------------------------------------------
def test_the_requests_are_what_the_venue_serves():
    md = FixMdBooks("SIMA", ["AAA", "BBB"], depth=2)
    x = Exchange("SIMA", [AAA, BBB])
    x.submit_background(x.books[0], 1, 4, 9990, 0)
    x.submit_background(x.books[0], 2, 6, 10010, 0)
    reqs = md.subscribe()
    assert [dict(body)[55] for _, body in reqs] == [b"AAA", b"BBB"]  # one request a symbol
    mt, body = reqs[0]
    assert mt == b"V" and body == [
        (262, b"md.SIMA.AAA.1"), (263, b"1"), (264, 2), (265, b"1"), (267, 3), (269, b"0"),
        (269, b"1"), (269, b"2"), (146, 1), (55, b"AAA")]
    for mt, body in reqs:
        x.on_message("HELM", wire(mt, *body), 1)
    for _, mt, body in x.outbox:
        assert mt == b"W"
        md.on_message(wire(mt, *body))
    x.outbox.clear()
    assert not md.stale("AAA") and not md.stale("BBB") and md.reason("AAA") is None
    assert levels(md) == ([(99.9, 4.0)], [(100.1, 6.0)])
    assert levels(md, "BBB") == ([], [])
    for mt, body in md.unsubscribe(["AAA"]):
        x.on_message("HELM", wire(mt, *body), 2)
    assert x.outbox == [] and x.md_subscriptions("HELM") == 1  # BBB's is left
    assert md.stale("AAA") and md.reason("AAA") == "unsubscribed"
    with pytest.raises(ValueError, match="'ZZZ' is not a symbol of this feed"):
        md.subscribe(["ZZZ"])


# -- applying snapshots and incrementals ---------------------------------------------------------
def test_incrementals_insert_change_and_delete_levels_in_place():
    md = live()
    r = req_id(md)
    book = md.books["AAA"]
    bid_px = book.bid_px  # the same lists throughout: updated in place
    assert md.on_message(X(r, e(0, 0, "10.03", 1, 1, 8))) == ["AAA"]
    assert levels(md) == ([(10.03, 1.0), (10.02, 5.0), (10.01, 3.0)], [(10.04, 2.0)])
    md.on_message(X(r, e(0, 0, "10.025", 2, 2, 9)))  # at depth 3: 10.01 falls off
    assert levels(md)[0] == [(10.03, 1.0), (10.025, 2.0), (10.02, 5.0)]
    md.on_message(X(r, e(1, 0, "10.02", 8, 3, 10), e(2, 1, "10.04", 0, 1, 11),
                    e(0, 1, "10.05", 4, 1, 12), e(0, 2, "10.04", 2, None, 13)))
    assert levels(md) == ([(10.03, 1.0), (10.025, 2.0), (10.02, 8.0)], [(10.05, 4.0)])
    assert (book.last_px, book.last_sz) == (10.04, 2.0)
    md.on_message(X(r, e(2, 0, "10.03", 0, 1, 14)))
    assert levels(md)[0] == [(10.025, 2.0), (10.02, 8.0)]
    assert book.bid_px is bid_px and len(book.bid_px) == 3 and book.check() is None
    assert md.counters["entries"] == 7 and book.updates == 5  # a snapshot and 4 messages
    assert not md.stale("AAA") and md.last_problem is None


def test_a_snapshot_deeper_than_the_book_is_cut_and_a_trade_sets_the_last():
    md = FixMdBooks("SIMA", ["AAA"], depth=2)
    md.subscribe()
    md.on_message(W(req_id(md), "AAA", 0, (0, "5", 1, 1), (0, "4", 1, 2), (0, "3", 1, 3),
                    trade=("5.5", 3)))
    assert levels(md) == ([(5.0, 1.0), (4.0, 1.0)], [])
    assert (md.books["AAA"].last_px, md.books["AAA"].last_sz) == (5.5, 3.0)
    md.on_message(X(req_id(md), e(0, 0, "3", 1, 3, 1)))  # below our depth: nothing to hold
    assert levels(md)[0] == [(5.0, 1.0), (4.0, 1.0)] and not md.stale("AAA")


def test_duplicates_and_old_entries_are_dropped_and_counted():
    md = live()
    r = req_id(md)
    once = X(r, e(1, 0, "10.02", 6, 1, 8))
    md.on_message(once)
    assert md.on_message(once) == []
    assert md.on_message(X(r, e(1, 0, "10.02", 1, 1, 5))) == []  # older than the snapshot
    assert levels(md)[0][0] == (10.02, 6.0)
    assert md.counters["duplicates"] == 2 and not md.stale("AAA")
    assert md.on_message(W(r, "AAA", 3, (0, "1", 1, 1))) == []  # an old snapshot again
    assert md.counters["duplicates"] == 3 and levels(md)[0][0] == (10.02, 6.0)


def test_a_gap_marks_the_book_stale_and_asks_for_a_new_snapshot():
    md = live()
    old = req_id(md)
    assert md.take_requests() == []
    changed = md.on_message(X(old, e(1, 0, "10.02", 6, 1, 9)))  # 8 was lost
    assert changed == ["AAA"] and md.stale("AAA")
    assert md.reason("AAA") == "gap: RptSeq 9 after 7 (awaiting a new snapshot)"
    assert md.counters["gaps"] == 1 and md.counters["refreshes"] == 1
    (m1, unsub), (m2, sub) = md.take_requests()
    new = req_id(md)
    assert (m1, dict(unsub)[262], dict(unsub)[263]) == (b"V", old.encode(), b"2")
    assert (m2, dict(sub)[262], dict(sub)[263]) == (b"V", new.encode(), b"1")
    assert new != old and md.take_requests() == []
    assert levels(md)[0][0] == (10.02, 5.0)  # the last good state, flagged stale
    md.on_message(X(old, e(1, 0, "10.02", 7, 1, 10)))  # the old stream, still in flight
    assert md.counters["stale_dropped"] == 1 and md.stale("AAA")
    assert md.on_message(W(new, "AAA", 0, (0, "10.00", 9, 1))) == ["AAA"]
    assert not md.stale("AAA") and levels(md) == ([(10.0, 9.0)], [])
    md.on_message(X(new, e(0, 1, "10.10", 1, 1, 1)))
    assert levels(md)[1] == [(10.1, 1.0)]
    assert md.stale("BBB") and md.reason("BBB") == "awaiting a snapshot"  # never had one


BAD_ENTRIES = [
    # (entry, counter, words of the reason)
    (e(0, 0, "nan", 1, 1, 8), "bad_entries", "MDEntryPx(270) 'nan' is not a positive number"),
    (e(0, 0, "-10.05", 1, 1, 8), "bad_entries", "MDEntryPx(270) '-10.05' is not a positive"),
    (e(0, 0, "0", 1, 1, 8), "bad_entries", "MDEntryPx(270) '0' is not a positive number"),
    (e(0, 0, "inf", 1, 1, 8), "bad_entries", "MDEntryPx(270) 'inf'"),
    (e(0, 0, "ten", 1, 1, 8), "bad_entries", "MDEntryPx(270) 'ten'"),
    (e(0, 0, "10.03", 0, 1, 8), "bad_entries", "MDEntrySize(271) '0' is not a positive number"),
    (e(0, 0, "10.03", -2, 1, 8), "bad_entries", "MDEntrySize(271) '-2'"),
    (e(0, 0, "10.03", "NaN", 1, 8), "bad_entries", "MDEntrySize(271) 'NaN'"),
    (e(1, 0, "10.02", 0, 1, 8), "bad_entries", "MDEntrySize(271) '0'"),
    (e(0, 2, "nan", 1, None, 8), "bad_entries", "MDEntryPx(270) 'nan'"),
    (e(0, 0, "10.03", 1, 1, None), "bad_entries", "RptSeq(83) is <missing>"),
    (e(0, 0, "10.03", 1, 1, "8x"), "bad_entries", "RptSeq(83) is '8x'"),
    (e(0, 0, "10.03", 1, None, 8), "bad_entries", "MDPriceLevel(1023) <missing> is not a level"),
    (e(0, 0, "10.03", 1, 0, 8), "bad_entries", "MDPriceLevel(1023) '0' is not a level"),
    (e(7, 0, "10.03", 1, 1, 8), "bad_entries", "MDUpdateAction(279) must be 0 (new), 1 (change)"),
    (e(1, 0, "10.00", 1, 3, 8), "bad_entries", "at level 3, but the book holds 2 levels"),
    (e(0, 0, "10.00", 1, 1, 8), "bad_entries", "New at level 1 price 10 is out of price order"),
    (e(0, 1, "10.01", 1, 2, 8), "bad_entries", "New at level 2 price 10.01 is out of price order"),
    (e(2, 0, "10.01", 0, 1, 8), "bad_entries", "level 1 is at 10.02, the entry says 10.01"),
]


@pytest.mark.parametrize("entry, counter, why", BAD_ENTRIES)
def test_an_entry_that_cannot_be_applied_is_counted_and_the_book_refreshed(entry, counter, why):
    md = live()
    before = levels(md)
    changed = md.on_message(X(req_id(md), entry))
    assert changed == ["AAA"] and md.stale("AAA")
    assert md.counters[counter] == 1 and md.counters["entries"] == 0
    assert why in md.reason("AAA") and why in md.last_problem
    assert levels(md) == before
    assert [dict(b)[263] for _, b in md.take_requests()] == [b"2", b"1"]


def test_unknown_symbols_foreign_requests_and_other_messages_are_counted():
    md = live()
    r = req_id(md)
    assert md.on_message(X(r, e(0, 0, "1", 1, 1, 8, sym="ZZZ"))) == []
    assert md.last_problem == "SIMA: incremental entry for Symbol(55) 'ZZZ', which is not ours"
    assert md.on_message(X(None, e(0, 0, "1", 1, 1, 8, sym="ZZZ"))) == []
    assert md.on_message(X(r, e(0, 0, "1", 1, 1, 8, sym="BBB"))) == []  # not this request's
    assert md.last_problem.endswith(f"'BBB', which MDReqID '{r}' is not for")
    assert md.counters["unknown_symbols"] == 3
    assert md.on_message(X("someone-else", e(0, 0, "1", 1, 1, 8))) == []
    assert md.on_message(W("someone-else", "AAA", 0, (0, "1", 1, 1))) == []
    assert md.counters["stale_dropped"] == 2
    assert md.on_message(wire(b"8", (37, "o1"), (11, "c1"), (17, "e1"), (150, "0"))) == []
    assert md.counters["ignored"] == 1
    assert not md.stale("AAA") and levels(md)[0][0] == (10.02, 5.0)
    # X without MDReqID (FIX allows it): the entry's Symbol finds the stream
    assert md.on_message(X(None, e(1, 0, "10.02", 1, 1, 8))) == ["AAA"]


def test_truncated_and_garbled_input_is_counted_never_raised():
    md = live()
    r = req_id(md)
    short = X(r, e(1, 0, "10.02", 6, 1, 8), e(1, 0, "10.01", 6, 2, 9), count=3)
    assert md.on_message(short) == ["AAA"]
    assert md.counters["bad_messages"] == 1 and md.stale("AAA")
    assert "NoMDEntries(268) says 3 entries but there are only 2" in md.last_problem
    new = req_id(md)
    bad_w = W(new, "AAA", 0, (0, "10.02", 5, 1), (0, "10.03", 1, 2))  # out of order
    assert md.on_message(bad_w) == [] and md.stale("AAA")
    assert "snapshot's bid prices are out of order" in md.last_problem
    for junk in (None, b"8=FIX.4.4\x019=5\x0135=X\x01", "X", 42,
                 FixGarbled(GarbleKind.CHECKSUM, "bad sum", b"8=FIX")):
        assert md.on_message(junk) == []
    assert md.counters["bad_messages"] == 1 + 5
    assert md.counters["bad_entries"] == 1  # the snapshot's


def test_a_reject_ends_the_request_and_says_why():
    md = FixMdBooks("SIMA", ["AAA"])
    x = Exchange("SIMA", [BBB])  # a venue that does not trade AAA
    [(mt, body)] = md.subscribe()
    x.on_message("HELM", wire(mt, *body), 1)
    [(_, ymt, ybody)] = x.outbox
    assert md.on_message(wire(ymt, *ybody)) == []  # it was stale already
    assert md.stale("AAA") and md.counters["rejects"] == 1
    assert md.reason("AAA") == ("rejected (281=0): Symbol(55) 'AAA' is not traded on SIMA "
                                "(it trades BBB)")
    assert md.take_requests() == []  # no retry: the caller decides


def test_automatic_refreshes_stop_after_a_few_in_a_row():
    md = live()
    md.on_message(X(req_id(md), e(1, 0, "10.02", 6, 1, 99)))  # a gap
    for _ in range(MAX_AUTO_REFRESH):
        md.take_requests()
        md.on_message(W(req_id(md), "AAA", None, (0, "10.02", 5, 1)))  # no RptSeq: unusable
    assert md.counters["refreshes"] == MAX_AUTO_REFRESH and md.take_requests() == []
    assert "gave up after 3 refreshes" in md.reason("AAA")
    reqs = md.subscribe(["AAA"])  # the caller's own subscribe starts afresh
    assert [dict(b)[263] for _, b in reqs] == [b"2", b"1"]  # the venue still streams the last
    md.on_message(W(req_id(md), "AAA", 0, (0, "10.02", 5, 1)))
    assert not md.stale("AAA")


def test_connection_lost_makes_every_book_stale_until_subscribed_again():
    md = live()
    md.on_message(X(req_id(md), e(1, 0, "10.02", 6, 1, 99)))  # a gap: a refresh queued
    md.connection_lost()
    assert md.take_requests() == []  # for the old connection: gone with it
    assert [md.reason(s) for s in ("AAA", "BBB")] == ["connection lost"] * 2
    assert md.stale("AAA") and levels(md)[0][0] == (10.02, 5.0)
    assert md.on_message(X("md.SIMA.AAA.1", e(1, 0, "10.02", 6, 1, 8))) == []
    reqs = md.subscribe()
    assert [dict(b)[263] for _, b in reqs] == [b"1", b"1"]
    assert md.stale("NOPE") and md.reason("NOPE") == "'NOPE' is not a symbol of this feed"


# -- fuzz ----------------------------------------------------------------------------------------
_ENTRY_VALUES = {
    279: ["0", "1", "2", "0", "1", "2", "9", "x"],
    269: ["0", "1", "0", "1", "2", "4"],
    55: ["AAA", "AAA", "AAA", "BBB", "ZZZ"],
    270: ["10.01", "10.02", "10.03", "10.04", "9.99", "10.05", "0", "-1", "nan", "inf", "q"],
    271: ["1", "5", "0.5", "0", "-3", "nan", "1e400"],
    1023: ["1", "2", "3", "4", "0", "x", "99"],
    83: ["8", "9", "10", "11", "12", "7", "x"],
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.fixed_dictionaries(
    {}, optional={t: st.sampled_from(v) for t, v in _ENTRY_VALUES.items()}), min_size=1,
    max_size=5), max_size=12), st.booleans())
def test_any_incremental_is_applied_or_counted_never_raised(messages, with_req):
    md = live()
    before = dict(md.counters)
    for es in messages:
        es = [x for x in es if x] or [{279: "0"}]
        m = X(req_id(md) if with_req and md._syms["AAA"].req_id else None, *es)
        changed = md.on_message(m)
        assert set(changed) <= {"AAA", "BBB"}
        md.take_requests()
        book = md.books["AAA"]
        for px in (book.bid_px, book.ask_px):  # each side stays in price order, fixed size
            live_px = [p for p in px if p]
            assert len(px) == 3 and px[:len(live_px)] == live_px
            assert live_px == sorted(live_px, reverse=px is book.bid_px)
            assert len(set(live_px)) == len(live_px)
    assert sum(md.counters.values()) >= sum(before.values()) + len(messages)
