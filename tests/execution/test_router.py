"""The smart order router: the planner on hand-made and random books (against a brute-force
search), and the router with a real Oms and sans-IO exchanges as venues, through FIX."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.profile import InstrumentConfig
from engine.execution.oms import Oms, OrderUpdate
from engine.execution.orders import ClOrdIds, OrdStatus
from engine.execution.router import (
    BUY,
    SELL,
    Child,
    ParentStatus,
    SmartRouter,
    VenueInfo,
    plan,
)
from engine.fix.codec import FixDecoder, encode
from engine.fix.session import AppMessage, FixSession, SessionConfig, SessionNotActive
from engine.venue.exchange import Exchange

T0 = 1_795_000_000_000_000_000


class Book:
    """A venue's L2 book as the router reads it: price and size lists, best first; an empty
    level has price 0."""

    __slots__ = ("ask_px", "ask_sz", "bid_px", "bid_sz")

    def __init__(self, depth: int) -> None:
        self.bid_px = [0.0] * depth
        self.bid_sz = [0.0] * depth
        self.ask_px = [0.0] * depth
        self.ask_sz = [0.0] * depth


def book(asks=(), bids=()) -> Book:
    b = Book(max(5, len(asks), len(bids)))
    for i, (px, sz) in enumerate(asks):
        b.ask_px[i], b.ask_sz[i] = px, sz
    for i, (px, sz) in enumerate(bids):
        b.bid_px[i], b.bid_sz[i] = px, sz
    return b


def infos(*vs: VenueInfo) -> dict[str, VenueInfo]:
    return {v.name: v for v in vs}


A, B = VenueInfo("A", 0.0, 10.0), VenueInfo("B", 0.0, 20.0)


# -- PLANNING ------------------------------------------------------------------------------------
def test_a_buy_sweeps_two_venues_best_price_first():
    books = {"A": book([(100.0, 300)]), "B": book([(100.0, 200), (101.0, 500)])}
    p = plan(BUY, 600, None, books, infos(A, B), {"A", "B"})
    # at 100 both venues quote; A first (lower latency), then B's 200 @ 100 and 100 @ 101
    assert p == [Child("A", 300, 100.0), Child("B", 300, 101.0)]
    assert p.unplaced == 0
    assert [c.why for c in p] == ["takes 300 @ 100 on A (fee 0 bps)",
                                  "takes 200 @ 100, 100 @ 101 on B (fee 0 bps)"]


def test_a_sell_sweeps_bids_best_price_first():
    books = {"A": book(bids=[(99.0, 100), (98.0, 100)]), "B": book(bids=[(99.5, 150)])}
    p = plan(SELL, 300, 98.5, books, infos(A, B), {"A", "B"})
    assert p == [Child("B", 150, 99.5), Child("A", 150, 98.5)]  # 50 rests at the limit on A
    assert p[1].why.endswith("rests 50 at the limit 98.5 on A: best venue to rest on "
                             "(fee 0 bps, 10 us)")


def test_at_equal_price_lower_fee_then_lower_latency_then_name():
    books = {n: book([(100.0, 100)]) for n in "ABCD"}
    vs = infos(VenueInfo("A", 1.0, 5.0), VenueInfo("B", 0.2, 50.0), VenueInfo("C", 0.2, 10.0),
               VenueInfo("D", 0.2, 10.0))
    p = plan(BUY, 350, None, books, vs, set("ABCD"))
    assert [(c.venue, c.qty) for c in p] == [("C", 100), ("D", 100), ("B", 100), ("A", 50)]


def test_fees_can_make_a_higher_quote_the_cheaper_one():
    vs = infos(VenueInfo("A", 30.0, 10.0), VenueInfo("B", 0.0, 10.0))
    buy = plan(BUY, 100, None, {"A": book([(100.00, 100)]), "B": book([(100.20, 100)])}, vs,
               {"A", "B"})
    assert buy == [Child("B", 100, 100.20)]  # 100.20 all in, against 100.30 at A
    rebate = infos(VenueInfo("A", -20.0, 10.0), VenueInfo("B", 0.0, 10.0))
    sell = plan(SELL, 150, None, {"A": book(bids=[(100.00, 100)]),
                                  "B": book(bids=[(100.10, 100)])}, rebate, {"A", "B"})
    assert sell == [Child("A", 100, 100.00), Child("B", 50, 100.10)]  # 100.20 with the rebate


def test_the_limit_is_never_crossed_and_the_remainder_rests_at_it():
    books = {"A": book([(100.0, 300), (100.5, 1000)]), "B": book([(100.0, 200), (101.0, 500)])}
    vs = infos(VenueInfo("A", 0.1, 10.0), VenueInfo("B", 0.0, 20.0))
    p = plan(BUY, 1000, 100.0, books, vs, {"A", "B"})
    # B is cheaper (fee) and the best venue to rest on: its child takes 200 and rests 500
    assert p == [Child("B", 700, 100.0), Child("A", 300, 100.0)]
    assert p.unplaced == 0
    ioc = plan(BUY, 1000, 100.0, books, vs, {"A", "B"}, rest=False)
    assert ioc == [Child("B", 200, 100.0), Child("A", 300, 100.0)]
    assert (ioc.unplaced, ioc.reason) == (
        500, "no visible liquidity for 500 more at 100 or better, and it may not rest (IOC)")


def test_a_market_order_without_liquidity_is_left_unplaced_with_the_reason():
    p = plan(BUY, 100, None, {"A": book(), "B": book(bids=[(99.0, 10)])}, infos(A, B),
             {"A", "B"})
    assert (list(p), p.unplaced, p.reason) == ([], 100, "no visible liquidity for 100 more on A, B")
    part = plan(BUY, 100, None, {"A": book([(100.0, 30)])}, infos(A, B), {"A", "B"})
    assert part == [Child("A", 30, 100.0)] and part.unplaced == 70


def test_a_venue_that_is_down_is_never_used():
    books = {"A": book([(101.0, 100)]), "B": book([(99.0, 1000)])}
    vs = infos(VenueInfo("A", 1.0, 90.0), VenueInfo("B", 0.0, 1.0))
    assert plan(BUY, 300, 101.0, books, vs, {"A"}) == [Child("A", 300, 101.0)]
    assert plan(BUY, 300, None, books, vs, {"A", "Z"}) == [Child("A", 100, 101.0)]
    none = plan(BUY, 300, 101.0, books, vs, set())
    assert (list(none), none.unplaced, none.reason) == ([], 300, "no venue is up (configured: A, B)")


def test_bad_input_gets_a_reason_not_an_exception():
    books, vs, up = {"A": book([(100.0, 10)])}, infos(A, B), {"A", "B"}
    assert plan(3, 10, None, books, vs, up) == "side must be 1 (buy) or 2 (sell), was 3"
    assert plan(True, 10, None, books, vs, up) == "side must be 1 (buy) or 2 (sell), was True"
    for q in (0, -5, 1.5, True, "10"):
        assert plan(BUY, q, None, books, vs, up) == (
            f"quantity must be a positive whole number, was {q!r}")
    for lim in (math.nan, math.inf, -1.0, 0, "100"):
        assert plan(BUY, 10, lim, books, vs, up) == (
            f"limit price must be a positive number or None (market), was {lim!r}")
    bad_fee = infos(VenueInfo("A", math.nan, 1.0))
    assert plan(BUY, 10, None, books, bad_fee, up) == (
        "venue A: fee_bps must be a number between -10000 and 10000, was nan")
    junk = {"A": book([(math.nan, 10), (100.0, math.nan), (100.5, -3), (math.inf, 5),
                       (101.0, 0.5), (102.0, 4)])}
    assert plan(BUY, 10, None, junk, vs, up) == [Child("A", 4, 102.0)]  # only sane levels
    assert plan(BUY, 10, None, None, vs, up).reason == "no visible liquidity for 10 more on A, B"


# -- PLANNING: A BRUTE-FORCE REFERENCE ----------------------------------------------------------
def units(b: Book, side: int, fee_bps: float, limit: float | None) -> list[tuple[float, float]]:
    """The venue's visible units within the limit, best first: (quoted price, effective)."""
    pxs, szs = (b.ask_px, b.ask_sz) if side == BUY else (b.bid_px, b.bid_sz)
    k = 1 + fee_bps / 1e4 if side == BUY else 1 - fee_bps / 1e4
    out = []
    for px, sz in zip(pxs, szs):
        if px > 0 and sz >= 1 and (limit is None or (px <= limit if side == BUY else px >= limit)):
            out += [(px, px * k)] * int(sz)
    return out


prices = st.integers(9_990, 10_010).map(lambda t: t / 100)


@st.composite
def markets(draw):
    vs, books, up = {}, {}, set()
    for name in "ABC":
        vs[name] = VenueInfo(name, draw(st.sampled_from([-2.0, 0.0, 0.5, 1.0, 3.0])),
                             draw(st.sampled_from([10.0, 50.0])))
        if draw(st.booleans()) or name == "A":
            up.add(name)
        asks = sorted(draw(st.sets(prices, max_size=3)))
        bids = sorted(draw(st.sets(prices, max_size=3)), reverse=True)
        books[name] = book([(p, draw(st.integers(1, 5))) for p in asks],
                           [(p, draw(st.integers(1, 5))) for p in bids])
    side = draw(st.sampled_from([BUY, SELL]))
    qty = draw(st.integers(1, 40))
    limit = draw(st.none() | prices)
    return side, qty, limit, books, vs, up, draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(markets())
def test_the_plan_takes_the_cheapest_effective_liquidity(m):
    side, qty, limit, books, vs, up, rest = m
    p = plan(side, qty, limit, books, vs, up, rest=rest)
    got = {n: units(books[n], side, vs[n].fee_bps, limit) for n in sorted(up)}
    target = min(qty, sum(len(u) for u in got.values()))
    # exhaustive search over how many units each venue gives
    better = min if side == BUY else max
    best = better(
        sum(sum(e for _, e in got[n][:k]) for n, k in zip(got, alloc))
        for alloc in itertools.product(*(range(len(u) + 1) for u in got.values()))
        if sum(alloc) == target)

    assert all(c.venue in up and c.qty > 0 for c in p)
    assert len({c.venue for c in p}) == len(p)  # one child per venue
    assert sum(c.qty for c in p) + p.unplaced == qty  # never more than asked
    taken = {c.venue: min(c.qty, len(got[c.venue])) for c in p}
    assert sum(taken.values()) == target
    cost = sum(sum(e for _, e in got[c.venue][:taken[c.venue]]) for c in p)
    assert math.isclose(cost, best, rel_tol=1e-12, abs_tol=1e-9)
    for c in p:
        if c.qty > taken[c.venue]:  # the remainder, resting at the limit
            assert rest and limit is not None and c.price == limit
        else:
            assert c.price == got[c.venue][taken[c.venue] - 1][0]  # marketable, no worse
        if limit is not None:
            assert (c.price <= limit) if side == BUY else (c.price >= limit)
    if p.unplaced:
        assert not (rest and limit is not None and up) and p.reason


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(allow_nan=True, allow_infinity=True)), max_size=5),
       st.integers(-3, 50), st.none() | st.floats(allow_nan=True, allow_infinity=True))
def test_junk_books_and_inputs_never_raise(levels, qty, limit):
    b = book(levels, levels)
    for side in (BUY, SELL):
        p = plan(side, qty, limit, {"A": b, "B": b}, infos(A, B), {"A", "B"})
        if not isinstance(p, str):
            assert sum(c.qty for c in p) + p.unplaced == qty
            assert all(math.isfinite(c.price) and c.price > 0 for c in p)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(allow_nan=True, allow_infinity=True)), max_size=6),
       st.integers(1, 50), st.none() | st.floats(0.5, 200.0))
def test_plain_float_levels_plan_as_any_other_number_does(levels, qty, limit):
    """Float levels (what the engine's books give) take a shortcut past the conversion;
    the same levels as another number type take the long way: the same plan."""
    class Num(float):  # a float that is not exactly float: the general path
        pass

    fast = book(levels, levels)
    slow = book([(Num(p), Num(s)) for p, s in levels], [(Num(p), Num(s)) for p, s in levels])
    for side in (BUY, SELL):
        for rest in (True, False):
            a = plan(side, qty, limit, {"A": fast}, infos(A, B), {"A", "B"}, rest=rest)
            b = plan(side, qty, limit, {"A": slow}, infos(A, B), {"A", "B"}, rest=rest)
            assert a == b and getattr(a, "unplaced", 0) == getattr(b, "unplaced", 0)


# -- THE ROUTER, THROUGH FIX AGAINST TWO EXCHANGES ----------------------------------------------
class Link:
    """One venue: our initiator session, its acceptor session and its exchange."""

    def __init__(self, name: str, symbols: tuple[str, ...]) -> None:
        self.name = name
        self.helm = FixSession(SessionConfig(sender="HELM", target=name, initiator=True))
        self.venue = FixSession(SessionConfig(sender=name, target="HELM", initiator=False))
        self.exchange = Exchange(name, [InstrumentConfig(symbol=s, tick=0.01, price=100.0)
                                        for s in symbols])
        self.up = True
        self.venue.connect(T0)
        self.helm.connect(T0)


class Desk:
    """Oms + SmartRouter over several venues, each a real FIX session pair and Exchange."""

    def __init__(self, venues: dict[str, tuple[str, ...]], infos_: list[VenueInfo], *,
                 max_reroutes: int = 3, check=None) -> None:
        self.links = {n: Link(n, syms) for n, syms in venues.items()}
        self.oms = Oms(ClOrdIds("HELM", 1_795_000_000_000), self._send)
        self.router = SmartRouter(self.oms, infos_, self.books, self.up,
                                  max_reroutes=max_reroutes, check=check)
        self.stale: dict[str, Book] = {}  # a venue whose feed lags: this is what we see
        self.updates: list[OrderUpdate] = []
        self.parent_updates: list = []
        self._other = itertools.count(1)
        self.pump()

    def _send(self, venue, msg_type, body):
        try:
            return self.links[venue].helm.send(msg_type, body, T0)
        except SessionNotActive:
            return None

    def up(self, _symbol: str = "") -> set[str]:
        return {n for n, link in self.links.items() if link.up}

    def books(self, symbol: str) -> dict[str, Book]:
        out = {}
        for n, link in self.links.items():
            out[n] = self.stale.get(n) or l2_of(link.exchange, symbol)
        return out

    def pump(self) -> None:
        for _ in range(100):
            quiet = True
            for link in self.links.values():
                a, b = link.helm.data_to_send(), link.venue.data_to_send()
                if not a and not b:
                    continue
                quiet = False
                for ev in link.venue.receive_data(a, T0) if a else []:
                    if isinstance(ev, AppMessage):
                        link.exchange.on_message("HELM", ev.message, T0)
                self._deliver(link)
                for ev in link.helm.receive_data(b, T0) if b else []:
                    if isinstance(ev, AppMessage):
                        self.apply(self.oms.on_message(link.name, ev.message))
            if quiet:
                return
        raise AssertionError("never went quiet")

    def apply(self, updates: list[OrderUpdate]) -> None:
        for u in updates:
            self.updates.append(u)
            self.parent_updates += self.router.on_update(u, T0)

    def _deliver(self, link: Link) -> None:
        for owner, mt, body in link.exchange.outbox:
            if owner == "HELM" and link.up:
                link.venue.send(mt, body, T0)
        link.exchange.outbox.clear()

    def other(self, venue: str, side: int, qty: int, price: float, symbol: str = "AAPL") -> None:
        """Another participant's limit order straight into a venue's exchange."""
        link = self.links[venue]
        d = FixDecoder()
        d.feed(encode(b"D", [(11, f"x{next(self._other)}"), (55, symbol), (54, side), (38, qty),
                             (40, b"2"), (44, f"{price:.2f}"), (59, b"0")], sender=b"OTHER",
                      target=venue.encode(), seq=1, sending_time_ns=T0))
        link.exchange.on_message("OTHER", d.next(), T0)
        self._deliver(link)
        self.pump()

    def drop(self, venue: str, cancels: bool = True) -> None:
        """The venue's session drops; it cancels our orders on disconnect, as it says (or,
        ``cancels`` False, it does not)."""
        link = self.links[venue]
        link.up = False
        link.helm.connection_lost(T0)
        link.venue.connection_lost(T0)
        if cancels:
            link.exchange.cancel_all("HELM", T0)
        link.exchange.outbox.clear()  # reports the venue holds until we reconnect
        self.apply(self.oms.on_venue_down(venue))
        self.parent_updates += self.router.on_venue_down(venue, T0)

    def reconnect(self, venue: str) -> None:
        link = self.links[venue]
        link.venue.connect(T0)
        link.helm.connect(T0)
        link.up = True
        self.pump()

    def sent_to(self, venue: str) -> int:
        """How many orders our Oms sent to ``venue``."""
        return sum(1 for o in self.oms.orders.values() if o.venue == venue)


def l2_of(ex: Exchange, symbol: str) -> Book:
    """What the venue's market data would show: its book's real depth."""
    out = Book(10)
    for b in ex.books:
        if b.symbol == symbol:
            bids, asks = b.engine.book_depth(10)
            for i, (t, q, _n) in enumerate(asks):
                out.ask_px[i], out.ask_sz[i] = round(t * b.tick, 2), float(q)
            for i, (t, q, _n) in enumerate(bids):
                out.bid_px[i], out.bid_sz[i] = round(t * b.tick, 2), float(q)
    return out


SIMA, SIMB = VenueInfo("SIMA", 0.0, 100.0), VenueInfo("SIMB", 0.0, 200.0)


def two_venues(**kw) -> Desk:
    return Desk({"SIMA": ("AAPL",), "SIMB": ("AAPL",)}, [SIMA, SIMB], **kw)


def summary(parent) -> list[tuple]:
    return [(c.venue, c.qty, c.price, c.tif, c.status, c.cum_qty) for c in parent.children]


def test_a_parent_buy_sweeps_both_books_and_ends_done_at_the_right_average():
    d = two_venues()
    d.other("SIMA", 2, 300, 100.00)
    d.other("SIMB", 2, 200, 100.00)
    d.other("SIMB", 2, 500, 101.00)
    parent = d.router.route("P1", "AAPL", BUY, 600, 101.0, "day", T0)
    d.pump()
    assert summary(parent) == [
        ("SIMA", 300, 100.0, "day", OrdStatus.FILLED, 300),
        ("SIMB", 300, 101.0, "day", OrdStatus.FILLED, 300)]
    assert parent.status is ParentStatus.DONE and parent.cum_qty == 600
    assert parent.avg_px == (300 * 100.0 + 200 * 100.0 + 100 * 101.0) / 600
    assert parent.children[1].avg_px == (200 * 100.0 + 100 * 101.0) / 300
    assert d.parent_updates[-1].text == "filled 600 @ avg 100.1666667"
    assert [(u.last_qty, u.last_px, u.venue) for u in d.parent_updates if u.last_qty] == [
        (300, 100.0, "SIMA"), (200, 100.0, "SIMB"), (100, 101.0, "SIMB")]
    assert d.links["SIMB"].exchange.book_snapshot()["AAPL"]["ask"] == 101.0  # 400 left there
    text = parent.explain()
    assert text.startswith("parent P1: buy 600 AAPL limit 101 day: Done, filled 600 of 600 "
                           "@ avg 100.1666667")
    assert "takes 200 @ 100, 100 @ 101 on SIMB (fee 0 bps)" in text


def test_a_market_sell_takes_the_better_bid_first_with_ioc_children():
    d = two_venues()
    d.other("SIMA", 1, 100, 99.00)
    d.other("SIMB", 1, 200, 99.50)
    parent = d.router.route("S1", "AAPL", SELL, 250, None, "day", T0)
    d.pump()
    assert summary(parent) == [("SIMB", 200, 99.5, "ioc", OrdStatus.FILLED, 200),
                               ("SIMA", 50, 99.0, "ioc", OrdStatus.FILLED, 50)]
    assert parent.status is ParentStatus.DONE and parent.avg_px == (200 * 99.5 + 50 * 99.0) / 250


def test_the_remainder_rests_at_the_limit_and_fills_later():
    d = Desk({"SIMA": ("AAPL",), "SIMB": ("AAPL",)},
             [VenueInfo("SIMA", 0.3, 100.0), VenueInfo("SIMB", 0.1, 200.0)])
    d.other("SIMA", 2, 300, 100.00)
    parent = d.router.route("P1", "AAPL", BUY, 500, 100.0, "day", T0)
    d.pump()
    assert summary(parent) == [("SIMA", 300, 100.0, "day", OrdStatus.FILLED, 300),
                               ("SIMB", 200, 100.0, "day", OrdStatus.NEW, 0)]  # lower fee
    assert (parent.status, parent.cum_qty, parent.working_qty) == (ParentStatus.WORKING, 300, 200)
    d.other("SIMB", 2, 200, 99.00)
    assert parent.status is ParentStatus.DONE and parent.avg_px == 100.0


def test_a_rejected_child_is_rerouted_to_the_other_venue():
    # SIMB does not trade AAPL, but a stale feed shows it with the best offer
    d = Desk({"SIMA": ("AAPL",), "SIMB": ("MSFT",)}, [SIMA, SIMB])
    d.stale["SIMB"] = book([(99.99, 500)])
    d.other("SIMA", 2, 500, 100.00)
    parent = d.router.route("P1", "AAPL", BUY, 400, 100.5, "day", T0)
    d.pump()
    assert summary(parent) == [("SIMB", 400, 99.99, "day", OrdStatus.REJECTED, 0),
                               ("SIMA", 400, 100.0, "day", OrdStatus.FILLED, 400)]
    assert parent.status is ParentStatus.DONE and parent.avg_px == 100.0
    why = (f"rejected {parent.children[0].cl_ord_id}: Symbol(55) 'AAPL' is not traded on SIMB "
           f"(it trades MSFT)")
    assert parent.excluded == {"SIMB": why}
    assert f"400 re-routed away from SIMB ({why}): SIMA 400 @ 100" in [
        u.text for u in d.parent_updates]
    assert parent.children[1].attempt == 1 and parent.reroutes == 1
    assert "re-route 1: 400 over SIMA: SIMA 400 @ 100" in parent.explain()


def test_a_venue_going_down_moves_the_rest_to_the_other_one_never_back():
    d = Desk({"SIMA": ("AAPL",), "SIMB": ("AAPL",)},
             [VenueInfo("SIMA", 0.3, 100.0), VenueInfo("SIMB", 0.1, 200.0)])
    d.other("SIMA", 2, 100, 100.00)
    parent = d.router.route("P1", "AAPL", BUY, 500, 100.0, "day", T0)
    d.pump()
    assert [(c.venue, c.qty, c.status) for c in parent.children] == [
        ("SIMA", 100, OrdStatus.FILLED), ("SIMB", 400, OrdStatus.NEW)]
    d.drop("SIMB")
    d.pump()
    assert [(c.venue, c.qty, c.price, c.in_doubt) for c in parent.children] == [
        ("SIMA", 100, 100.0, False), ("SIMB", 400, 100.0, True), ("SIMA", 400, 100.0, False)]
    assert parent.children[2].status is OrdStatus.NEW  # resting at the limit on SIMA
    assert parent.excluded == {"SIMB": "went down"}
    assert (parent.status, parent.working_qty) == (ParentStatus.WORKING, 400)
    d.other("SIMA", 2, 400, 100.00)
    assert (parent.status, parent.cum_qty, parent.avg_px) == (ParentStatus.DONE, 500, 100.0)
    # the venue comes back; the parent never uses it again
    d.links["SIMB"].up = True
    assert d.sent_to("SIMB") == 1
    # a late fill of the child in doubt (reconciliation) counts, and says it overfilled
    late = d.router.on_update(OrderUpdate(parent.children[1].cl_ord_id, "SIMB", "AAPL",
                                          OrdStatus.PARTIALLY_FILLED, 100, 300, 100, 100.0), T0)
    assert parent.cum_qty == 600 and parent.status is ParentStatus.DONE
    assert parent.reason == (f"overfilled by 100: children in doubt filled after their rest had "
                             f"been re-routed ({parent.children[1].cl_ord_id} on SIMB)")
    assert [(u.last_qty, u.status) for u in late] == [(100, ParentStatus.DONE),
                                                      (0, ParentStatus.DONE)]


def test_a_child_in_doubt_that_is_still_live_is_cancelled_and_its_fill_counted():
    d = Desk({"SIMA": ("AAPL",), "SIMB": ("AAPL",)},
             [VenueInfo("SIMA", 0.3, 100.0), VenueInfo("SIMB", 0.1, 200.0)])
    parent = d.router.route("P1", "AAPL", BUY, 400, 99.0, "day", T0)
    d.pump()
    d.drop("SIMB", cancels=False)  # the venue does not cancel on disconnect after all
    assert [(c.venue, c.qty, c.in_doubt) for c in parent.children] == [
        ("SIMB", 400, True), ("SIMA", 400, False)]
    d.reconnect("SIMB")
    d.other("SIMB", 2, 100, 99.00)  # fills the child in doubt
    doubt, moved = parent.children
    assert (doubt.cum_qty, doubt.status) == (100, OrdStatus.CANCELLED)  # the router cancelled it
    assert d.links["SIMB"].exchange.live_orders("HELM") == 0
    assert (parent.cum_qty, parent.working_qty, parent.status) == (100, 400, ParentStatus.WORKING)
    assert (f"cancel child {doubt.cl_ord_id} on SIMB: it is live again after its venue came "
            f"back, and its rest was re-routed") in parent.explain()
    # the re-routed child still works for 400: filling 300 of it fills the parent, and the
    # router cancels the 100 left so the parent is not overfilled
    d.other("SIMA", 2, 300, 99.00)
    assert (moved.cum_qty, moved.status) == (300, OrdStatus.CANCELLED)
    assert (parent.status, parent.cum_qty, parent.reason) == (ParentStatus.DONE, 400, "")
    assert d.router.counters["overfills"] == 0


def test_an_unsolicited_cancel_is_rerouted_a_requested_one_is_final():
    d = Desk({"SIMA": ("AAPL",), "SIMB": ("AAPL",)},
             [VenueInfo("SIMA", 0.3, 100.0), VenueInfo("SIMB", 0.1, 200.0)])
    parent = d.router.route("P1", "AAPL", BUY, 400, 99.0, "day", T0)
    d.pump()
    assert summary(parent) == [("SIMB", 400, 99.0, "day", OrdStatus.NEW, 0)]
    link = d.links["SIMB"]
    link.exchange.cancel_all("HELM", T0)  # the venue cancels on its own
    d._deliver(link)
    d.pump()
    assert summary(parent) == [("SIMB", 400, 99.0, "day", OrdStatus.CANCELLED, 0),
                               ("SIMA", 400, 99.0, "day", OrdStatus.NEW, 0)]
    assert parent.excluded["SIMB"].endswith("unasked: owner disconnected")
    assert d.router.cancel("P1", T0) is None
    d.pump()
    assert len(parent.children) == 2 and parent.children[1].status is OrdStatus.CANCELLED
    assert parent.status is ParentStatus.PARTIAL
    assert parent.reason == "unfilled: 400 cancelled on request"
    assert d.router.cancel("P1", T0) == "parent P1 is already PartiallyDone"
    assert d.router.cancel("nope", T0) == "unknown parent 'nope'"


def test_rerouting_is_capped_per_parent():
    names = ("V1", "V2", "V3", "V4")
    vs = [VenueInfo(n, 0.0, 10.0 * i) for i, n in enumerate(names)]
    # the feed shows V1..V3 with better offers, but only V4 trades AAPL
    venues = {n: ("AAPL",) if n == "V4" else ("MSFT",) for n in names}
    for cap, ends in ((1, ParentStatus.PARTIAL), (3, ParentStatus.DONE)):
        d = Desk(venues, vs, max_reroutes=cap)
        for i, n in enumerate(names[:3]):
            d.stale[n] = book([(99.0 + i / 10, 100)])
        d.other("V4", 2, 100, 100.00)
        parent = d.router.route("P1", "AAPL", BUY, 100, 100.0, "day", T0)
        d.pump()
        assert parent.status is ends
        assert [c.venue for c in parent.children] == list(names[:cap + 1])
        if cap == 1:
            assert parent.reason == ("unfilled: 100 not re-routed: already re-routed 1 times "
                                     "(the cap)")
            assert d.sent_to("V3") == d.sent_to("V4") == 0
        else:
            assert parent.cum_qty == 100 and set(parent.excluded) == {"V1", "V2", "V3"}


def test_with_no_venue_left_the_parent_ends_naming_each_failure():
    d = Desk({"SIMA": ("MSFT",), "SIMB": ("MSFT",)}, [SIMA, SIMB])
    d.stale = {"SIMA": book([(100.0, 100)]), "SIMB": book([(100.0, 100)])}
    parent = d.router.route("P1", "AAPL", BUY, 100, 100.0, "day", T0)
    d.pump()
    a, b = parent.children
    assert [(c.venue, c.qty, c.status) for c in parent.children] == [
        ("SIMA", 100, OrdStatus.REJECTED), ("SIMB", 100, OrdStatus.REJECTED)]
    assert parent.status is ParentStatus.PARTIAL
    assert parent.reason == (
        f"unfilled: 100 no venue left to re-route to (SIMA rejected {a.cl_ord_id}: Symbol(55) "
        f"'AAPL' is not traded on SIMA (it trades MSFT); SIMB rejected {b.cl_ord_id}: "
        f"Symbol(55) 'AAPL' is not traded on SIMB (it trades MSFT))")
    assert d.parent_updates[-1].status is ParentStatus.PARTIAL


def test_a_venue_that_will_not_take_the_order_is_skipped_at_once():
    d = two_venues()
    d.other("SIMA", 2, 100, 100.00)
    d.other("SIMB", 2, 100, 100.00)
    d.links["SIMA"].helm.connection_lost(T0)  # the router's view of "up" lags behind
    parent = d.router.route("P1", "AAPL", BUY, 150, 100.0, "day", T0)
    d.pump()
    # SIMB's planned 50 goes out; SIMA's 100 is re-planned over SIMB at once
    assert summary(parent) == [("SIMB", 50, 100.0, "day", OrdStatus.FILLED, 50),
                               ("SIMB", 100, 100.0, "day", OrdStatus.PARTIALLY_FILLED, 50)]
    assert parent.excluded == {"SIMA": "not sent: venue SIMA is not logged on"}
    assert d.router.counters["not_sent"] == 1


def test_route_refuses_bad_input_with_the_reason():
    d = two_venues()
    r = d.router
    assert r.route("P1", "AAPL", 3, 10, 100.0, "day", T0) == (
        "parent 'P1' NOT ROUTED: side must be 1 (buy) or 2 (sell), was 3")
    assert r.route("P1", "AAPL", BUY, 10, 100.0, "fok", T0) == (
        "parent 'P1' NOT ROUTED: time in force fok cannot be all-or-none across venues: "
        "use ioc or day")
    assert r.route("P1", "AAPL", BUY, 10, None, "day", T0) == (
        "parent 'P1' NOT ROUTED: no visible liquidity for 10 more on SIMA, SIMB")
    assert r.route("P1", "AAPL", BUY, 10, math.nan, "day", T0) == (
        "parent 'P1' NOT ROUTED: limit price must be a positive number or None (market), was nan")
    first = r.route("P1", "AAPL", BUY, 10, 99.0, "day", T0)  # rests: SIMA is quicker
    assert summary(first) == [("SIMA", 10, 99.0, "day", OrdStatus.PENDING_NEW, 0)]
    assert r.route("P1", "AAPL", BUY, 10, 99.0, "day", T0) == (
        "parent 'P1' NOT ROUTED: parent id was already used")
    for link in d.links.values():
        link.up = False
    assert r.route("P2", "AAPL", BUY, 10, 99.0, "day", T0) == (
        "parent 'P2' NOT ROUTED: no venue is up (configured: SIMA, SIMB)")
    assert r.counters["refused"] == 6 and r.counters["parents"] == 1


def test_market_and_ioc_remainders_are_given_up_with_the_reason():
    d = two_venues()
    d.other("SIMA", 2, 100, 100.00)
    market = d.router.route("M1", "AAPL", BUY, 300, None, "day", T0)
    d.pump()
    assert summary(market) == [("SIMA", 100, 100.0, "ioc", OrdStatus.FILLED, 100)]
    assert market.reason == ("unfilled: 200 not placed: no visible liquidity for 200 more on "
                             "SIMA, SIMB")
    # the feed shows more than the venue has: the IOC child fills what is there
    d.other("SIMA", 2, 100, 100.00)
    d.stale["SIMA"] = book([(100.0, 300)])
    ioc = d.router.route("I1", "AAPL", BUY, 300, 100.0, "ioc", T0)
    d.pump()
    assert summary(ioc) == [("SIMA", 300, 100.0, "ioc", OrdStatus.CANCELLED, 100)]
    assert (ioc.status, ioc.reason) == (
        ParentStatus.PARTIAL, "unfilled: 200 IOC child on SIMA left 200 unfilled (IOC remainder)")


def test_a_kill_switch_stops_rerouting_halt_or_check():
    killed: list[str] = []

    def check(venue, symbol, side, qty, price, parent_id):
        return killed[0] if killed else None

    for halt in (True, False):
        killed.clear()
        d = Desk({"SIMA": ("AAPL",), "SIMB": ("AAPL",)},
                 [VenueInfo("SIMA", 0.3, 100.0), VenueInfo("SIMB", 0.1, 200.0)], check=check)
        parent = d.router.route("P1", "AAPL", BUY, 400, 99.0, "day", T0)
        d.pump()
        killed.append("kill switch tripped")
        if halt:
            assert d.router.halt("kill switch tripped", symbol="AAPL") == 1
        assert d.oms.cancel_all(T0) == 1  # the kill switch's cancels, not the router's
        d.pump()
        assert [c.venue for c in parent.children] == ["SIMB"]
        assert parent.status is ParentStatus.PARTIAL
        assert parent.reason == ("unfilled: 400 kill switch tripped" if halt else
                                 "unfilled: 400 refused for SIMA: kill switch tripped")
        assert d.sent_to("SIMA") == 0
        # a parent routed while the switch is tripped sends nothing and ends at once
        late = d.router.route("P2", "AAPL", BUY, 100, 99.0, "day", T0)
        assert (late.status, late.reason, late.children) == (
            ParentStatus.PARTIAL, "unfilled: 100 refused for SIMB: kill switch tripped", [])


def test_updates_about_other_orders_are_ignored():
    d = two_venues()
    o = d.oms.new_order("SIMA", "AAPL", BUY, 10, 99.0, "day", T0)
    d.pump()
    assert d.parent_updates == [] and d.router.parent_of(o.cl_ord_id) is None


def test_bad_router_configuration_is_refused_at_start():
    oms = Oms(ClOrdIds("HELM", 1), lambda *a: None)
    for vs, why in (([VenueInfo("A", math.inf, 1.0)], "fee_bps must be"),
                    ([A, A], "venue A is given twice"),
                    ({"X": A}, "each venue's key must be its name")):
        try:
            SmartRouter(oms, vs, dict, lambda _s: set())
        except ValueError as e:
            assert why in str(e)
        else:
            raise AssertionError(f"accepted {vs}")
