"""The venue's market data: in memory against ``Exchange`` (exact messages), and end to end
against a real ``helmdesk venue`` process over loopback TCP, checked by the engine's
``FixMdSubscriptions`` and built into its book (``CheckedBook``: FixMdNormalizer →
FeedIntegrity → BookSet)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.profile import InstrumentConfig
from engine.feeds.fixmd import FixMdSubscriptions
from engine.fix.codec import FixDecoder, FixMessage, decode, encode
from engine.venue.background import BackgroundFlow
from engine.venue.exchange import MAX_MARKET_DEPTH, Exchange
from tests.conftest import wait_until
from tests.feeds.test_fixmd import CheckedBook
from tests.venue.test_server import (
    Client,
    VenueProc,
    _log,
    connect_until_accepted,
    until,
    venue_profile,
)

AAA = InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)
BBB = InstrumentConfig(symbol="BBB", tick=0.25, price=50.0)
_seq = itertools.count(1)


# -- helpers -----------------------------------------------------------------------------------
def msg(msg_type: bytes, *fields) -> FixMessage:
    d = FixDecoder()
    d.feed(encode(msg_type, list(fields), sender=b"HELM", target=b"SIMA", seq=next(_seq),
                  sending_time_ns=1_700_000_000_000_000_000))
    return d.next()


def md_request(req_id: str | None, *symbols: str, sub: int = 1, depth=0,
               types=(0, 1, 2), **extra) -> FixMessage:
    fields: list = [] if req_id is None else [(262, req_id)]
    fields += [(263, sub), (264, depth)] if depth is not None else [(263, sub)]
    fields += [(int(k[1:]), v) for k, v in extra.items()]
    if types:
        fields += [(267, len(types)), *[(269, t) for t in types]]
    if symbols:
        fields += [(146, len(symbols)), *[(55, s) for s in symbols]]
    return msg(b"V", *fields)


def sent(x: Exchange) -> list[tuple[str, FixMessage]]:
    """What the exchange would send, as decoded wire messages, and clear it."""
    got = [(owner, decode(encode(mt, body, sender=b"SIMA", target=owner.encode(),
                                 seq=next(_seq), sending_time_ns=0)))
           for owner, mt, body in x.outbox]
    x.outbox.clear()
    return got


def entries(m: FixMessage) -> list[tuple]:
    """A W's or X's entries as text tuples: (279, 269, 55, 270, 271, 1023, 83), None if absent."""
    return [tuple(None if e.get(t) is None else e[t].decode()
                  for t in (279, 269, 55, 270, 271, 1023, 83)) for e in m.groups(268)]


def snapshot_levels(m: FixMessage) -> dict[str, list[tuple[float, int]]]:
    """A W's book as ``Exchange.book_levels`` gives it."""
    out: dict[str, list] = {"bids": [], "offers": []}
    for e in m.groups(268):
        side = {b"0": "bids", b"1": "offers"}[e[269]]
        assert int(e[1023]) == len(out[side]) + 1
        out[side].append((float(e[270]), int(e[271])))
    return out


def book_levels(book: CheckedBook, symbol: str) -> dict[str, list[tuple[float, int]]]:
    """What the engine's book of ``symbol`` holds, in the same shape."""
    return dict(zip(("bids", "offers"), book.levels(symbol)))


def venue_book(depth: int) -> CheckedBook:
    """The engine's books of AAA and BBB as a subscriber of ``depth`` levels builds them."""
    return CheckedBook({"AAA": AAA.tick, "BBB": BBB.tick}, depth)


def order(cl: str, side: int, qty: int, price: str, symbol: str = "AAA", tif: int = 0):
    return msg(b"D", (11, cl), (55, symbol), (54, side), (38, qty), (40, 2), (44, price),
               (59, tif))


def seeded_book(x: Exchange) -> None:
    """AAA: bids 99.98 ×5, 99.97 ×3 + 4, 99.95 ×2; offers 100.01 ×6, 100.03 ×1."""
    b = x.books[0]
    for side, qty, px in ((1, 5, 9998), (1, 3, 9997), (1, 4, 9997), (1, 2, 9995),
                          (2, 6, 10001), (2, 1, 10003)):
        x.submit_background(b, side, qty, px, 0)
    assert not x.outbox


def subscribed(depth: int = 0, types=(0, 1, 2), owner: str = "HELM2") -> Exchange:
    x = Exchange("SIMA", [AAA, BBB])
    seeded_book(x)
    x.on_message(owner, md_request("r1", "AAA", depth=depth, types=types), 1)
    [(_, w)] = sent(x)
    assert w.msg_type == b"W"
    return x


# -- snapshots ---------------------------------------------------------------------------------
def test_a_subscription_starts_with_a_snapshot_equal_to_the_book():
    x = Exchange("SIMA", [AAA, BBB])
    seeded_book(x)
    x.on_message("HELM", md_request("r1", "AAA", "BBB"), 1)
    [(o1, w1), (o2, w2)] = sent(x)
    assert (o1, o2) == ("HELM", "HELM")
    assert [(w.msg_type, w.get(262), w.get(55), w.get(83)) for w in (w1, w2)] == [
        (b"W", b"r1", b"AAA", b"0"), (b"W", b"r1", b"BBB", b"0")]
    assert entries(w1) == [
        (None, "0", None, "99.98", "5", "1", None), (None, "0", None, "99.97", "7", "2", None),
        (None, "0", None, "99.95", "2", "3", None), (None, "1", None, "100.01", "6", "1", None),
        (None, "1", None, "100.03", "1", "2", None)]
    assert snapshot_levels(w1) == x.book_levels("AAA")
    assert w2.get(268) == b"0" and entries(w2) == []  # BBB is empty
    assert x.md_subscriptions("HELM") == 1 and x.counters["md_snapshots"] == 2


def test_a_snapshot_is_cut_to_the_depth_and_the_entry_types_asked_for():
    x = Exchange("SIMA", [AAA])
    seeded_book(x)
    x.on_message("HELM", md_request("top", "AAA", depth=1), 1)
    x.on_message("HELM", md_request("offers", "AAA", depth=2, types=(1,)), 2)
    x.on_message("HELM", md_request("once", "AAA", sub=0, depth=2, types=(0,)), 3)
    [(_, top), (_, offers), (_, once)] = sent(x)
    assert [e[1:6] for e in entries(top)] == [("0", None, "99.98", "5", "1"),
                                              ("1", None, "100.01", "6", "1")]
    assert [e[3] for e in entries(offers)] == ["100.01", "100.03"]
    assert [e[3] for e in entries(once)] == ["99.98", "99.97"]
    assert once.get(83) is None  # a snapshot request: no stream to number
    assert x.md_subscriptions("HELM") == 2  # "once" was not kept


# -- incrementals ------------------------------------------------------------------------------
def test_a_client_order_adding_a_level_is_one_new_entry_to_each_subscriber():
    x = subscribed()
    x.on_message("HELM", order("c1", 1, 9, "99.99"), 2)  # a new best bid
    got = sent(x)
    assert [(o, m.msg_type) for o, m in got] == [("HELM", b"8"), ("HELM2", b"X")]
    X = got[1][1]
    assert X.get(262) == b"r1"
    assert entries(X) == [("0", "0", "AAA", "99.99", "9", "1", "1")]
    x.on_message("HELM", order("c2", 1, 1, "99.97"), 3)  # joins level 3 (was 2)
    [(_, _), (_, X)] = sent(x)
    assert entries(X) == [("1", "0", "AAA", "99.97", "8", "3", "2")]
    x.on_message("HELM", msg(b"F", (41, "c1"), (11, "c1x"), (55, "AAA"), (54, 1)), 4)
    [(_, er), (_, X)] = sent(x)
    assert er.get(150) == b"4"
    assert entries(X) == [("2", "0", "AAA", "99.99", "0", "1", "3")]
    assert snapshot_levels(_fresh_snapshot(x)) == x.book_levels("AAA")


def test_a_trade_is_published_first_then_the_levels_it_took_in_one_message():
    x = subscribed()
    x.on_message("HELM", order("hit", 2, 8, "99.97", tif=3), 2)  # sells 5 @ 99.98, 3 @ 99.97
    got = sent(x)
    assert [m.msg_type for _, m in got] == [b"8", b"8", b"8", b"X"]  # New, 2 fills, one X
    assert [(m.get(31), m.get(32)) for _, m in got[1:3]] == [(b"99.98", b"5"), (b"99.97", b"3")]
    assert entries(got[3][1]) == [
        ("0", "2", "AAA", "99.98", "5", None, "1"),
        ("0", "2", "AAA", "99.97", "3", None, "2"),
        ("2", "0", "AAA", "99.98", "0", "1", "3"),
        ("1", "0", "AAA", "99.97", "4", "1", "4"),
    ]
    assert x.counters["md_incrementals"] == 1 and x.counters["md_entries"] == 4


def test_background_flow_is_published_too_and_rptseq_counts_every_entry():
    x = subscribed()
    x.submit_background(x.books[0], 2, 2, 10002, 5)
    [(owner, X)] = sent(x)
    assert owner == "HELM2"
    assert entries(X) == [("0", "1", "AAA", "100.02", "2", "2", "1")]
    x.submit_background(x.books[0], 1, 9, 10002, 6)  # takes two offer levels, rests 1
    [(_, X)] = sent(x)
    assert [e[0:2] + e[3:] for e in entries(X)] == [
        ("0", "2", "100.01", "6", None, "2"), ("0", "2", "100.02", "2", None, "3"),
        ("0", "0", "100.02", "1", "1", "4"),  # the rest is the new best bid
        ("2", "1", "100.01", "0", "1", "5"), ("2", "1", "100.02", "0", "1", "6")]


def test_a_depth_limited_subscriber_sees_only_its_levels_and_what_comes_into_view():
    x = subscribed(depth=2)
    x.submit_background(x.books[0], 1, 1, 9995, 2)  # level 3: below its depth
    assert sent(x) == []
    x.on_message("HELM", order("c", 2, 5, "99.98", tif=3), 3)  # takes the best bid whole
    [_, _, (_, X)] = sent(x)
    assert [e[0:2] + e[3:] for e in entries(X)] == [
        ("0", "2", "99.98", "5", None, "1"),
        ("2", "0", "99.98", "0", "1", "2"),
        ("0", "0", "99.95", "3", "2", "3")]  # level 3 moved into view


def test_subscribers_of_different_depths_each_get_their_own_rptseq():
    x = subscribed(depth=1)
    x.on_message("HELM", md_request("deep", "AAA", depth=5, types=(1,)), 2)
    sent(x)
    x.submit_background(x.books[0], 2, 3, 10003, 3)  # level 2 of the offers
    [(owner, X)] = sent(x)
    assert (owner, entries(X)) == ("HELM", [("1", "1", "AAA", "100.03", "4", "2", "1")])
    x.submit_background(x.books[0], 2, 1, 10000, 4)  # a new best offer
    [(o1, x1), (o2, x2)] = sent(x)
    assert (o1, entries(x1)) == ("HELM2", [("2", "1", "AAA", "100.01", "0", "1", "1"),
                                           ("0", "1", "AAA", "100.00", "1", "1", "2")])
    assert (o2, entries(x2)) == ("HELM", [("0", "1", "AAA", "100.00", "1", "1", "2")])


def test_unsubscribe_and_a_disconnect_stop_the_updates():
    x = subscribed()
    x.on_message("HELM2", md_request("r1", sub=2, depth=None, types=()), 2)
    x.submit_background(x.books[0], 1, 1, 9990, 3)
    assert sent(x) == [] and x.md_subscriptions("HELM2") == 0
    x.on_message("HELM2", md_request("r1", "AAA"), 4)  # the MDReqID is free again
    [(_, w)] = sent(x)
    assert w.msg_type == b"W" and snapshot_levels(w) == x.book_levels("AAA")
    assert x.drop_subscriptions("HELM2") == 1
    x.submit_background(x.books[0], 1, 1, 9991, 5)
    assert sent(x) == []
    assert x.books[0].md_levels is None  # nothing tracked while nobody watches


def test_nothing_changes_for_a_subscriber_of_another_symbol():
    x = Exchange("SIMA", [AAA, BBB])
    x.on_message("HELM", md_request("b", "BBB"), 1)
    sent(x)
    x.submit_background(x.books[0], 1, 1, 9990, 2)
    assert sent(x) == []
    x.submit_background(x.books[1], 1, 1, 199, 3)
    [(_, X)] = sent(x)
    assert entries(X) == [("0", "0", "BBB", "49.75", "1", "1", "1")]


def _fresh_snapshot(x: Exchange) -> FixMessage:
    x.on_message("CHECK", md_request(f"chk{next(_seq)}", "AAA", sub=0), 99)
    [(_, w)] = sent(x)
    return w


@pytest.mark.parametrize("depth", [1, 3, 10])
def test_a_receiver_applying_the_incrementals_always_holds_the_venues_book(depth):
    """Random client orders, cancels and background flow; after every step the engine's book
    (fed the wire messages) holds exactly the venue's best ``depth`` levels and the last trade,
    and FixMdSubscriptions found every entry in sequence and fitting."""
    action = st.tuples(st.sampled_from("bbbcrx"), st.integers(1, 2), st.integers(1, 9),
                       st.integers(-6, 6), st.integers(0, 30))

    @settings(max_examples=40, deadline=None)
    @given(st.lists(action, max_size=60), st.integers(0, 1000))
    def run(actions, seed):
        x = Exchange("SIMA", [AAA])
        flow = BackgroundFlow(x, seed=seed, max_live=30)
        for i in range(20):
            flow.step(i)
        md = FixMdSubscriptions("SIMA", ["AAA"], depth=depth)
        book = venue_book(depth)
        [(mt, body)] = md.subscribe()
        x.on_message("HELM", decode(encode(mt, body, sender=b"HELM", target=b"SIMA", seq=1,
                                           sending_time_ns=0)), 20)
        live: list[str] = []
        for i, (kind, side, qty, away, pick) in enumerate(actions):
            mid = flow.mid(0)
            if kind == "b":
                flow.step(100 + i)
            elif kind == "c":
                cl = f"o{i}"
                x.on_message("HELM", order(cl, side, qty, f"{(mid + away) / 100:.2f}"), i)
                live.append(cl)
            elif kind == "r" and live:
                cl = live.pop(pick % len(live))
                x.on_message("HELM", msg(b"F", (41, cl), (11, cl + "x")), i)
            elif kind == "x" and live:
                cl = live[pick % len(live)]
                x.on_message("HELM", msg(b"G", (41, cl), (11, f"{cl}.{i}"), (38, qty),
                                         (44, f"{(mid + away) / 100:.2f}")), i)
                live[pick % len(live)] = f"{cl}.{i}"
            last = None
            for owner, m in sent(x):
                if m.msg_type in (b"W", b"X"):
                    md.on_message(m)
                    book.on_message(m)
                    last = [e for e in m.groups(268) if e.get(269) == b"2"] or last
            assert not md.stale("AAA"), md.last_problem
            assert book.good("AAA")
            assert book_levels(book, "AAA") == x.book_levels("AAA", depth)
            if last:
                assert book.last_trade("AAA") == (float(last[-1][270]), int(last[-1][271]))
        assert md.counters["gaps"] == md.counters["bad_entries"] == 0
        assert book.books.rejects.sum() == 0 and book.normalizer.last_problem is None

    run()


# -- rejects -----------------------------------------------------------------------------------
REJECTS = [
    # (request, MDReqRejReason, text)
    (lambda: md_request("a", "ZZZ"), "0",
     "Symbol(55) 'ZZZ' is not traded on SIMA (it trades AAA, BBB)"),
    (lambda: md_request("b", "AAA", "ZZZ"), "0", "Symbol(55) 'ZZZ' is not traded on SIMA"),
    (lambda: md_request("c", "AAA", depth=-1), "5",
     f"MarketDepth(264) must be 0 (every level) or 1 to {MAX_MARKET_DEPTH}, was '-1'"),
    (lambda: md_request("d", "AAA", depth=MAX_MARKET_DEPTH + 1), "5", "was '101'"),
    (lambda: md_request("e", "AAA", depth="top"), "5", "was 'top'"),
    (lambda: md_request("f", "AAA", depth=None), "5", "MarketDepth(264) is missing"),
    (lambda: md_request("g", "AAA", sub=5), "4",
     ("SubscriptionRequestType(263) must be 0 (snapshot), 1 (snapshot and updates) or 2 "
      "(unsubscribe), was '5'")),
    (lambda: md_request("h", "AAA", _265=0), "6", "MDUpdateType(265) must be 1 (incremental)"),
    (lambda: md_request("i", "AAA", _266="N"), "7", "AggregatedBook(266) must be Y"),
    (lambda: md_request("j", "AAA", types=(0, 4)), "8",
     ("MDEntryType(269) '4' is not published by SIMA: it publishes 0 (bid), 1 (offer) and 2 "
      "(trade)")),
    (lambda: md_request(None, "AAA"), "Z", "MDReqID(262) is missing"),
    (lambda: md_request("k"), "Z", "NoRelatedSym(146) is missing"),
    (lambda: md_request("l", "AAA", types=()), "Z", "NoMDEntryTypes(267) is missing"),
    (lambda: msg(b"V", (262, "m"), (263, 1), (264, 0), (267, 1), (269, 0), (146, 2),
                 (55, "AAA")), "Z", "NoRelatedSym(146) says 2 entries but there are only 1"),
    (lambda: md_request("n", sub=2, depth=None, types=()), "Z",
     "MDReqID(262) 'n' is not a live subscription: nothing to unsubscribe"),
    (lambda: md_request("live", "BBB"), "1", "MDReqID(262) 'live' is already a live subscription"),
]


@pytest.mark.parametrize("make, code, text", REJECTS)
def test_a_bad_request_gets_a_market_data_request_reject(make, code, text):
    x = Exchange("SIMA", [AAA, BBB])
    x.on_message("HELM", md_request("live", "AAA"), 1)
    sent(x)
    request = make()
    x.on_message("HELM", request, 2)
    [(owner, y)] = sent(x)
    assert (owner, y.msg_type, y.get(281)) == ("HELM", b"Y", code.encode())
    assert text in y.get(58).decode(), y.get(58)
    assert y.get(262) == request.get(262)
    assert x.md_subscriptions("HELM") == 1 and x.counters["rejects"] == 1
    x.submit_background(x.books[0], 1, 1, 9990, 3)
    [(_, X)] = sent(x)  # the live one is untouched
    assert X.get(262) == b"live"


# -- end to end: a venue process, loopback TCP, FixMdSubscriptions and the engine's book --------
class MdClient(Client):
    """A FIX client feeding every market data message to a FixMdSubscriptions and to the
    engine's book (``book``) as it arrives, in order.

    A snapshot request ``probe*`` (263=0) is answered after every incremental the venue made
    before it (one session, one order): at that instant the subscriber's book must equal it.
    """

    def __init__(self, port: int, md: FixMdSubscriptions, **kw) -> None:
        super().__init__(port, **kw)
        self.md = md
        self.book = venue_book(md.depth)
        self.probes: list[tuple[str, dict, dict, bool]] = []  # (symbol, venue's, ours, stale)
        self.drop_next_x_of: str | None = None  # lose one incremental of this symbol
        self.lost: list[FixMessage] = []

    def _on(self, session, events) -> None:
        super()._on(session, events)
        for e in events:
            m = getattr(e, "message", None)
            if m is None:
                continue
            if m.msg_type == b"W" and m.get(262, b"").startswith(b"probe"):
                sym = m.get(55).decode()
                self.probes.append((sym, snapshot_levels(m), book_levels(self.book, sym),
                                    self.md.stale(sym) or not self.book.good(sym)))
                continue
            if (m.msg_type == b"X" and self.drop_next_x_of
                    and m.groups(268)[0].get(55) == self.drop_next_x_of.encode()):
                self.drop_next_x_of = None
                self.lost.append(m)
                continue
            if m.msg_type in (b"W", b"X", b"Y"):
                self.book.on_message(m)
            self.md.on_message(m, time.time_ns())
            self.send_all(self.md.take_requests())

    def send_all(self, requests) -> None:
        for mt, body in requests:
            self.send(mt, *body)

    def probe(self, symbol: str) -> int:
        n = len(self.probes)
        self.send(b"V", (262, f"probe{next(_seq)}"), (263, 0), (264, self.md.depth), (267, 2),
                  (269, 0), (269, 1), (146, 1), (55, symbol))
        return n

    async def probed(self, symbol: str) -> tuple[dict, dict, bool]:
        n = self.probe(symbol)
        await until(lambda: len(self.probes) > n, f"the probe snapshot of {symbol}")
        sym, venue, ours, stale = self.probes[n]
        assert sym == symbol
        return venue, ours, stale


@pytest.fixture
def md_venue(tmp_path):
    v = VenueProc(venue_profile(tmp_path / "md.toml", extra="background_hz = 150\nseed = 9"))
    yield v.start()
    v.stop()
    v.proc.stderr.close()
    assert "Traceback" not in v.output, v.output


def test_a_subscriber_holds_the_venues_book_while_background_flow_runs(md_venue):
    md = FixMdSubscriptions("SIMA", ["AAA", "BBB"], depth=100)

    async def main():
        c = await MdClient(md_venue.port, md).connect()
        c.send_all(md.subscribe())
        await until(lambda: not md.stale("AAA") and not md.stale("BBB"), "both snapshots")
        await until(lambda: md.counters["entries"] > 100, "background flow to be published")
        for sym in ("AAA", "BBB", "AAA"):
            venue, ours, stale = await c.probed(sym)
            assert not stale and venue["bids"] and venue["offers"]
            assert ours == venue
        # a client's resting order deep in the book: in it, then gone
        c.order("deep", side=1, qty="7", price="99.00")
        await c.er("deep", b"0")
        venue, ours, _ = await c.probed("AAA")
        assert (99.0, 7) in ours["bids"] and ours == venue
        c.send(b"F", (41, "deep"), (11, "deep-x"), (55, "AAA"), (54, 1))
        await c.er("deep-x", b"4")
        venue, ours, _ = await c.probed("AAA")
        assert (99.0, 7) not in ours["bids"] and ours == venue
        # a client's trade: its fill, then an incremental with that trade
        ask = c.book.levels("AAA")[1][0][0]  # the best offer
        c.order("take", side=1, qty="1", price=f"{ask + 0.5:.2f}", tif=3)
        fill = await c.er("take", b"F")
        since = c.msgs.index(fill)
        ours = (b"2", b"AAA", fill.get(31), fill.get(32))

        def the_trade():  # the ER goes out first, the incremental with its trade right after
            return next((m for m in c.msgs[since:] if m.msg_type == b"X" and any(
                (e[269], e[55], e[270], e[271]) == ours for e in m.groups(268))), None)

        await until(the_trade, "the client's trade in an incremental")
        assert c.book.last_trade("AAA")[1] > 0
        assert md.counters["gaps"] == md.counters["bad_entries"] == 0
        assert md.counters["duplicates"] == md.counters["unknown_symbols"] == 0
        await c.logout()

    asyncio.run(main())


def test_a_lost_incremental_makes_the_book_stale_until_a_new_snapshot(md_venue):
    md = FixMdSubscriptions("SIMA", ["AAA", "BBB"], depth=10)

    async def main():
        c = await MdClient(md_venue.port, md).connect()
        c.send_all(md.subscribe())
        await until(lambda: not md.stale("AAA") and md.counters["entries"] > 20, "a live book")
        c.drop_next_x_of = "AAA"
        await until(lambda: md.counters["gaps"] == 1, "the gap to be seen")
        assert c.lost and md.counters["refreshes"] == 1
        await until(lambda: not md.stale("AAA"), "the new snapshot")
        assert md.counters["snapshots"] == 3  # AAA, BBB, AAA again
        entries_before = md.counters["entries"]
        await until(lambda: md.counters["entries"] > entries_before + 20, "updates again")
        venue, ours, stale = await c.probed("AAA")
        assert not stale and ours == venue
        assert md.counters["gaps"] == 1 and md.counters["bad_entries"] == 0
        assert not md.stale("BBB")  # the other symbol was never touched
        await c.logout()

    asyncio.run(main())


def test_a_disconnect_ends_the_subscriptions(md_venue):
    md = FixMdSubscriptions("SIMA", ["AAA"], depth=5)

    async def main():
        c = await MdClient(md_venue.port, md).connect()
        [(mt, body)] = md.subscribe()
        c.send(mt, *body)
        await until(lambda: not md.stale("AAA"), "the snapshot")
        await c.drop()
        md.connection_lost()
        assert md.stale("AAA") and md.reason("AAA") == "connection lost"
        c2 = await connect_until_accepted(md_venue.port, "HELM", c.session.store)
        c2.send(mt, *body)  # the same MDReqID: it is free, the venue ended it
        w = await c2.wait("a snapshot", lambda m: m.msg_type in (b"W", b"Y"))
        assert w.msg_type == b"W" and w.get(262) == body[0][1]
        await c2.logout()

    asyncio.run(main())
    wait_until(lambda: "ended its 1 market data subscriptions" in _log(md_venue), 10,
               "the venue to log the ended subscription")
