"""FixMdSubscriptions: the engine's side of FIX market data subscriptions and their RptSeq
checks, fed real wire messages (encoded, then decoded by engine.fix.codec) and, where the
venue's answer matters, the venue's ``Exchange``. What the messages make of the venue's book is
looked at where the engine keeps it: ``CheckedBook`` (FixMdNormalizer → FeedIntegrity →
BookSet), fed the same messages."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.books import BookSet, apply_batch
from engine.core.events import EventBuffer
from engine.core.profile import InstrumentConfig
from engine.core.ticks import tick_decimals
from engine.feeds.fixmd import MAX_AUTO_REFRESH, FixMdSubscriptions
from engine.feeds.integrity import FeedIntegrity
from engine.feeds.normalize import FixMdNormalizer
from engine.fix.codec import FixGarbled, FixMessage, GarbleKind, decode, encode
from engine.venue.exchange import Exchange

_seq = itertools.count(1)
AAA = InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)
BBB = InstrumentConfig(symbol="BBB", tick=0.25, price=50.0)
#: the checked book's ticks: AAA's half a cent puts the hand-made 10.025 on its grid
TICKS = {"AAA": 0.005, "BBB": 0.25}


class CheckedBook:
    """The venue's books as the engine keeps them, built from the wire messages it is given:
    ``FixMdNormalizer`` (35=W/X into MD_EVENT records), ``FeedIntegrity`` (RptSeq duplicates
    dropped; a gap makes the book stale until its next snapshot) and a ``BookSet`` (venue 0,
    instruments in ``ticks`` order, prices in integer ticks)."""

    def __init__(self, ticks: dict[str, float], depth: int) -> None:
        self.index = {s: i for i, s in enumerate(ticks)}
        self.ticks = dict(ticks)
        self.normalizer = FixMdNormalizer(0, "SIMA", {s: (i, ticks[s])
                                                      for s, i in self.index.items()})
        self.integrity = FeedIntegrity(1, len(ticks), 10**18)
        self.books = BookSet(1, len(ticks), depth)
        self._buf = EventBuffer(4096)

    def on_message(self, m) -> None:
        buf = self._buf
        if isinstance(m, FixMessage):
            self.normalizer.on_message(m, 0, buf)
        if buf.n:
            apply_batch(self.books, self.integrity.filter(buf.view(), 0))
            buf.clear()

    def good(self, symbol: str = "AAA") -> bool:
        """The book is in the consolidated book: snapshot in, no gap since."""
        return not self.books.excluded(0, self.index[symbol])

    def levels(self, symbol: str = "AAA") -> tuple[list, list]:
        """(bids, offers): the levels held, best first, as (price, size)."""
        i, tick = self.index[symbol], self.ticks[symbol]
        d = tick_decimals(tick)
        b = self.books
        return tuple([(round(p * tick, d), q) for p, q in zip(px[0, i].tolist(), sz[0, i].tolist())
                      if p] for px, sz in ((b.bid_px, b.bid_sz), (b.ask_px, b.ask_sz)))

    def last_trade(self, symbol: str = "AAA") -> tuple[float, int]:
        i, tick = self.index[symbol], self.ticks[symbol]
        v = self.books.venue[0, i]
        return round(int(v["last_px"]) * tick, tick_decimals(tick)), int(v["last_sz"])


def both(md: FixMdSubscriptions, book: CheckedBook):
    """``on_message`` of ``md`` (its answer returned) and of ``book``: the same messages."""
    def on_message(m):
        book.on_message(m)
        return md.on_message(m)
    return on_message


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


def req_id(md: FixMdSubscriptions, sym: str = "AAA") -> str:
    return md._syms[sym].req_id.decode()  # the live request: what the venue would echo


def held(md: FixMdSubscriptions, sym: str = "AAA") -> tuple[list, list]:
    return md._syms[sym].levels  # the prices it checks entries against: bids, offers


def live(depth: int = 3, book: CheckedBook | None = None) -> FixMdSubscriptions:
    """Subscribed to AAA and BBB, AAA's snapshot in: bids 10.02 ×5, 10.01 ×3; offers 10.04 ×2
    (given to ``book`` too)."""
    md = FixMdSubscriptions("SIMA", ["AAA", "BBB"], depth=depth)
    md.subscribe()
    w = W(req_id(md), "AAA", 7, (0, "10.02", 5, 1), (0, "10.01", 3, 2), (1, "10.04", 2, 1))
    if book is not None:
        book.on_message(w)
    changed = md.on_message(w)
    assert changed == ["AAA"] and not md.stale("AAA") and md.stale("BBB")
    assert held(md) == ([10.02, 10.01], [10.04])
    return md


# -- requests, against the venue -----------------------------------------------------------------
def test_the_requests_are_what_the_venue_serves():
    md = FixMdSubscriptions("SIMA", ["AAA", "BBB"], depth=2)
    assert md.symbols == ("AAA", "BBB")
    book = CheckedBook(TICKS, 2)
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
        both(md, book)(wire(mt, *body))
    x.outbox.clear()
    assert not md.stale("AAA") and not md.stale("BBB") and md.reason("AAA") is None
    assert book.good("AAA") and book.good("BBB")
    assert book.levels("AAA") == ([(99.9, 4)], [(100.1, 6)])  # the venue's book
    assert book.levels("BBB") == ([], [])
    for mt, body in md.unsubscribe(["AAA"]):
        x.on_message("HELM", wire(mt, *body), 2)
    assert x.outbox == [] and x.md_subscriptions("HELM") == 1  # BBB's is left
    assert md.stale("AAA") and md.reason("AAA") == "unsubscribed"
    with pytest.raises(ValueError, match="'ZZZ' is not a symbol of this feed"):
        md.subscribe(["ZZZ"])


# -- checking snapshots and incrementals ---------------------------------------------------------
def test_incrementals_insert_change_and_delete_levels():
    book = CheckedBook(TICKS, 3)
    md = live(book=book)
    send = both(md, book)
    r = req_id(md)
    assert send(X(r, e(0, 0, "10.03", 1, 1, 8))) == ["AAA"]
    assert book.levels() == ([(10.03, 1), (10.02, 5), (10.01, 3)], [(10.04, 2)])
    send(X(r, e(0, 0, "10.025", 2, 2, 9)))  # at depth 3: 10.01 falls off
    assert book.levels()[0] == [(10.03, 1), (10.025, 2), (10.02, 5)]
    assert held(md)[0] == [10.03, 10.025, 10.02]
    assert send(X(r, e(1, 0, "10.02", 8, 3, 10), e(2, 1, "10.04", 0, 1, 11),
                  e(0, 1, "10.05", 4, 1, 12), e(0, 2, "10.04", 2, None, 13))) == ["AAA"]
    assert book.levels() == ([(10.03, 1), (10.025, 2), (10.02, 8)], [(10.05, 4)])
    assert book.last_trade() == (10.04, 2)
    send(X(r, e(2, 0, "10.03", 0, 1, 14)))
    assert book.levels()[0] == [(10.025, 2), (10.02, 8)]
    assert held(md) == ([10.025, 10.02], [10.05])
    assert md.counters["entries"] == 7 and md.counters["incrementals"] == 4
    assert not md.stale("AAA") and md.last_problem is None
    assert book.good() and book.books.rejects.sum() == 0


def test_a_snapshot_deeper_than_the_depth_is_cut_and_levels_below_it_are_let_be():
    md = FixMdSubscriptions("SIMA", ["AAA"], depth=2)
    book = CheckedBook({"AAA": 0.5}, 2)
    send = both(md, book)
    md.subscribe()
    assert send(W(req_id(md), "AAA", 0, (0, "5", 1, 1), (0, "4", 1, 2), (0, "3", 1, 3),
                  trade=("5.5", 3))) == ["AAA"]
    assert not md.stale("AAA") and md.counters["snapshots"] == 1 and held(md) == ([5.0, 4.0], [])
    assert book.levels() == ([(5.0, 1), (4.0, 1)], [])
    assert send(X(req_id(md), e(0, 0, "3", 1, 3, 1))) == ["AAA"]  # below our depth: let be
    assert send(X(req_id(md), e(1, 0, "3", 2, 3, 2))) == ["AAA"]
    assert held(md) == ([5.0, 4.0], []) and not md.stale("AAA")
    assert md.counters["entries"] == 2 and md.counters["bad_entries"] == 0
    assert book.levels()[0] == [(5.0, 1), (4.0, 1)]


def test_duplicates_and_old_entries_are_dropped_and_counted():
    md = live()
    r = req_id(md)
    once = X(r, e(1, 0, "10.02", 6, 1, 8))
    assert md.on_message(once) == ["AAA"]
    assert md.on_message(once) == []
    assert md.on_message(X(r, e(1, 0, "10.02", 1, 1, 5))) == []  # older than the snapshot
    assert md.counters["duplicates"] == 2 and md.counters["entries"] == 1
    assert not md.stale("AAA")
    assert md.on_message(W(r, "AAA", 3, (0, "1", 1, 1))) == []  # an old snapshot again
    assert md.counters["duplicates"] == 3 and md.counters["snapshots"] == 1
    # neither put the sequence or the levels back: the next entry is 9, and 10.02 is the best
    assert md.on_message(X(r, e(1, 0, "10.02", 7, 1, 9))) == ["AAA"]
    assert md.counters["entries"] == 2 and md.counters["gaps"] == 0
    assert held(md) == ([10.02, 10.01], [10.04]) and md.last_problem is None


def test_a_gap_marks_the_symbol_stale_and_asks_for_a_new_snapshot():
    book = CheckedBook(TICKS, 3)
    md = live(book=book)
    send = both(md, book)
    old = req_id(md)
    assert md.take_requests() == []
    changed = send(X(old, e(1, 0, "10.02", 6, 1, 9)))  # 8 was lost
    assert changed == ["AAA"] and md.stale("AAA")
    assert md.reason("AAA") == "gap: RptSeq 9 after 7 (awaiting a new snapshot)"
    assert md.counters["gaps"] == 1 and md.counters["refreshes"] == 1
    assert md.counters["entries"] == 0  # the entry after the gap was not taken
    assert not book.good()  # the engine's book knows it too
    (m1, unsub), (m2, sub) = md.take_requests()
    new = req_id(md)
    assert (m1, dict(unsub)[262], dict(unsub)[263]) == (b"V", old.encode(), b"2")
    assert (m2, dict(sub)[262], dict(sub)[263]) == (b"V", new.encode(), b"1")
    assert new != old and md.take_requests() == []
    send(X(old, e(1, 0, "10.02", 7, 1, 10)))  # the old stream, still in flight
    assert md.counters["stale_dropped"] == 1 and md.stale("AAA")
    assert send(W(new, "AAA", 0, (0, "10.00", 9, 1))) == ["AAA"]
    assert not md.stale("AAA") and md.reason("AAA") is None and held(md) == ([10.0], [])
    # a best offer of 10.10 fits only because the snapshot replaced the levels (10.04 was)
    assert send(X(new, e(0, 1, "10.10", 1, 1, 1))) == ["AAA"]
    assert md.counters["entries"] == 1 and not md.stale("AAA")
    assert book.good() and book.levels() == ([(10.0, 9)], [(10.1, 1)])
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
def test_an_entry_that_cannot_be_applied_is_counted_and_the_symbol_refreshed(entry, counter,
                                                                             why):
    md = live()
    changed = md.on_message(X(req_id(md), entry))
    assert changed == ["AAA"] and md.stale("AAA")
    assert md.counters[counter] == 1 and md.counters["entries"] == 0
    assert why in md.reason("AAA") and why in md.last_problem
    assert held(md) == ([10.02, 10.01], [10.04])  # nothing of it was taken
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
    assert not md.stale("AAA") and md.counters["entries"] == 0 and md.counters["snapshots"] == 1
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
    md = FixMdSubscriptions("SIMA", ["AAA"])
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


def test_connection_lost_makes_every_symbol_stale_until_subscribed_again():
    md = live()
    md.on_message(X(req_id(md), e(1, 0, "10.02", 6, 1, 99)))  # a gap: a refresh queued
    md.connection_lost()
    assert md.take_requests() == []  # for the old connection: gone with it
    assert [md.reason(s) for s in ("AAA", "BBB")] == ["connection lost"] * 2
    assert md.stale("AAA") and md.stale("BBB") and md.counters["entries"] == 0
    assert md.on_message(X("md.SIMA.AAA.1", e(1, 0, "10.02", 6, 1, 8))) == []
    assert md.counters["stale_dropped"] == 1  # a message of a request the venue ended
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
        for side, px in enumerate(held(md)):  # what it checks against stays a book side
            assert len(px) <= 3 and px == sorted(set(px), reverse=side == 0)
    assert sum(md.counters.values()) >= sum(before.values()) + len(messages)


_PRICES = ["9.99", "10.00", "10.005", "10.01", "10.02", "10.03", "10.04", "10.05", "10.06"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("012"), st.sampled_from("01"),
                          st.sampled_from(_PRICES), st.integers(1, 4)), max_size=40))
def test_what_it_lets_through_keeps_the_engines_book_in_order(steps):
    """Well-formed entries in sequence, at any level and price: each either fits (the engine's
    book takes it too, and holds the levels it holds) or is refused and the symbol refreshed
    (here the venue answers with a snapshot at once)."""
    book = CheckedBook(TICKS, 3)
    md = live(book=book)
    send = both(md, book)
    rpt = 7
    taken = 0
    for action, side, px, level in steps:
        rpt += 1
        send(X(req_id(md), e(action, side, px, 0 if action == "2" else 1, level, rpt)))
        if md.stale("AAA"):
            assert md.counters["bad_entries"] == md.counters["refreshes"]
            assert [dict(b)[263] for _, b in md.take_requests()] == [b"2", b"1"]
            send(W(req_id(md), "AAA", 0, (0, "10.02", 5, 1), (0, "10.01", 3, 2),
                   (1, "10.04", 2, 1)))
            rpt = 0
        else:
            taken += 1
        assert not md.stale("AAA") and book.good()
        for side, (side_px, levels) in enumerate(zip(held(md), book.levels())):
            assert [p for p, _ in levels] == side_px == sorted(set(side_px), reverse=side == 0)
        for ticks in (book.books.bid_px[0, 0].tolist(), book.books.ask_px[0, 0].tolist()):
            n = sum(1 for p in ticks if p)
            assert all(ticks[:n])  # no empty level above a held one
    assert md.counters["entries"] == taken and md.counters["gaps"] == 0
