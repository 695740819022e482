"""The matching engine against a brute-force reference, plus the cases the issue names.

``RefBook`` below is written to be obviously right rather than fast: one list of resting
orders, sorted by (price priority, arrival) every time it is looked at. A hypothesis state
machine drives both with the same requests (good and bad) and wants the same reports, the
same books, and the book invariants after every step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.venue import ExecKind, MatchingEngine, OrdType, Report, Side, TimeInForce

K = ExecKind
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrdType.LIMIT, OrdType.MARKET
DAY, IOC, FOK = TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK


# -- the reference -----------------------------------------------------------------------------
@dataclass
class RefOrder:
    oid: object
    owner: object
    side: Side
    price: int | None
    qty: int
    leaves: int
    cum: int
    prio: int  # time priority: set on arrival, and again when a replace loses it
    arrival: int  # set once, on arrival (cancel_all goes in this order)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class RefBook:
    """Price-time priority done the slow, plain way; reports in the engine's tuple layout."""

    def __init__(self) -> None:
        self.out: list[tuple] = []
        self.resting: list[RefOrder] = []
        self.done: dict[object, str] = {}  # finished order id -> "filled" / "cancelled"
        self.eid = 0
        self.seq = 0

    # reports
    def emit(self, kind, oid, owner, side, price, qty, last_qty, last_px, leaves, cum, ts,
             reason=None) -> None:
        self.eid += 1
        self.out.append((kind, oid, owner, side, price, qty, last_qty, last_px, leaves, cum,
                         self.eid, ts, reason))

    def emit_order(self, kind, o: RefOrder, ts, last_qty=0, last_px=None, reason=None) -> None:
        self.emit(kind, o.oid, o.owner, o.side, o.price, o.qty, last_qty, last_px, o.leaves,
                  o.cum, ts, reason)

    # the book
    def queue(self, side: Side) -> list[RefOrder]:
        mine = [o for o in self.resting if o.side == side]
        return sorted(mine, key=lambda o: (-o.price if side == BUY else o.price, o.prio))

    def crossing(self, agg: RefOrder) -> list[RefOrder]:
        other = SELL if agg.side == BUY else BUY

        def crosses(o: RefOrder) -> bool:
            if agg.price is None:
                return True
            return o.price <= agg.price if agg.side == BUY else o.price >= agg.price

        return [o for o in self.queue(other) if crosses(o)]

    def find(self, oid) -> RefOrder | None:
        for o in self.resting:
            try:
                if o.oid == oid:
                    return o
            except Exception:
                return None
        return None

    def is_known(self, oid) -> bool:
        return self.find(oid) is not None or oid in self.done

    def not_live(self, oid) -> str:
        try:
            state = self.done.get(oid)
        except TypeError:
            state = None
        if state:
            return f"order {oid!r} is already {state}"
        return f"unknown order id {oid!r}"

    def match(self, agg: RefOrder, ts: int) -> None:
        while agg.leaves:
            opp = self.crossing(agg)
            if not opp:
                return
            o = opp[0]
            q = min(o.leaves, agg.leaves)
            agg.leaves -= q
            agg.cum += q
            o.leaves -= q
            o.cum += q
            self.emit_order(K.FILL if not agg.leaves else K.PARTIAL_FILL, agg, ts, q, o.price)
            self.emit_order(K.FILL if not o.leaves else K.PARTIAL_FILL, o, ts, q, o.price)
            if not o.leaves:
                self.resting.remove(o)
                self.done[o.oid] = "filled"

    # requests
    def why_not(self, oid, side, qty, price, ord_type, tif) -> str | None:
        try:
            hash(oid)
        except TypeError:
            return f"order id must be hashable, was {oid!r}"
        if self.is_known(oid):
            return f"duplicate order id {oid!r}"
        if side not in (1, 2):
            return f"side must be 1 (buy) or 2 (sell), was {side!r}"
        if ord_type not in (1, 2):
            return f"order type must be 1 (market) or 2 (limit), was {ord_type!r}"
        if tif not in (0, 3, 4):
            return f"time in force must be 0 (day), 3 (IOC) or 4 (FOK), was {tif!r}"
        if not _is_int(qty):
            return f"quantity must be an integer, was {qty!r}"
        if qty <= 0:
            return f"quantity must be positive, was {qty}"
        if ord_type == MARKET:
            if price is not None:
                return f"market order takes no price, was {price!r}"
            return None
        if price is None:
            return "limit order needs a price"
        if not _is_int(price):
            return f"price must be an integer number of ticks, was {price!r}"
        if price <= 0:
            return f"price must be positive, was {price}"
        return None

    def submit(self, oid, owner, side, qty, price, ord_type, tif, ts) -> None:
        reason = self.why_not(oid, side, qty, price, ord_type, tif)
        if reason:
            self.emit(K.REJECTED, oid, owner, side, price, qty, 0, None, 0, 0, ts, reason)
            return
        self.seq += 1
        o = RefOrder(oid, owner, Side(side), price, qty, qty, 0, self.seq, self.seq)
        self.emit_order(K.NEW, o, ts)
        cancel = None
        if ord_type == MARKET and not self.queue(SELL if o.side == BUY else BUY):
            cancel = "no liquidity"
        elif tif == FOK and sum(x.leaves for x in self.crossing(o)) < qty:
            cancel = "FOK not fillable"
        if cancel is None:
            self.match(o, ts)
            if not o.leaves:
                self.done[oid] = "filled"
                return
            if ord_type == LIMIT and tif == DAY:
                self.resting.append(o)
                return
            cancel = "no liquidity" if ord_type == MARKET else "IOC remainder"
        o.leaves = 0
        self.emit_order(K.CANCELLED, o, ts, reason=cancel)
        self.done[oid] = "cancelled"

    def cancel(self, oid, ts) -> None:
        o = self.find(oid)
        if o is None:
            self.emit(K.CANCEL_REJECTED, oid, None, None, None, None, 0, None, 0, 0, ts,
                      self.not_live(oid))
            return
        self.resting.remove(o)
        o.leaves = 0
        self.emit_order(K.CANCELLED, o, ts, reason="cancel requested")
        self.done[oid] = "cancelled"

    def replace(self, oid, new_qty, new_price, ts) -> None:
        o = self.find(oid)
        if o is None:
            self.emit(K.REPLACE_REJECTED, oid, None, None, None, None, 0, None, 0, 0, ts,
                      self.not_live(oid))
            return
        if not _is_int(new_qty):
            reason = f"quantity must be an integer, was {new_qty!r}"
        elif new_price is not None and not _is_int(new_price):
            reason = f"price must be an integer number of ticks, was {new_price!r}"
        elif new_qty <= 0:
            reason = f"quantity must be positive, was {new_qty}"
        elif new_price is not None and new_price <= 0:
            reason = f"price must be positive, was {new_price}"
        elif new_qty <= o.cum:
            reason = f"quantity {new_qty} must exceed the {o.cum} already filled"
        else:
            reason = None
        if reason:
            self.emit_order(K.REPLACE_REJECTED, o, ts, reason=reason)
            return
        if new_price is None:
            new_price = o.price
        keeps = new_price == o.price and new_qty <= o.qty
        o.price, o.qty, o.leaves = new_price, new_qty, new_qty - o.cum
        self.emit_order(K.REPLACED, o, ts)
        if keeps:
            return
        self.seq += 1
        o.prio = self.seq
        self.resting.remove(o)
        self.match(o, ts)
        if o.leaves:
            self.resting.append(o)
        else:
            self.done[oid] = "filled"

    def cancel_all(self, owner, ts) -> int:
        mine = sorted((o for o in self.resting if o.owner == owner), key=lambda o: o.arrival)
        for o in mine:
            self.resting.remove(o)
            o.leaves = 0
            self.emit_order(K.CANCELLED, o, ts, reason="owner disconnected")
            self.done[o.oid] = "cancelled"
        return len(mine)

    def book(self, side: Side) -> list[tuple]:
        return [(o.oid, o.owner, o.price, o.qty, o.leaves, o.cum) for o in self.queue(side)]


# -- helpers ---------------------------------------------------------------------------------------
def drain(eng: MatchingEngine) -> list[Report]:
    out = [Report._make(r) for r in eng.reports]
    eng.reports.clear()
    return out


def kinds(reports) -> list[ExecKind]:
    return [r.kind for r in reports]


def book_invariants(eng: MatchingEngine) -> None:
    assert eng.check() is None, eng.check()
    bids, asks = eng.book_depth(10_000)
    for side, levels in ((BUY, bids), (SELL, asks)):
        orders = eng.book_orders(side)
        for price, qty, count in levels:
            at = [o for o in orders if o[2] == price]
            assert qty == sum(o[4] for o in at) > 0
            assert count == len(at)
        assert sum(c for _, _, c in levels) == len(orders)
        for oid, _owner, _price, qty, leaves, cum in orders:
            assert cum + leaves == qty and leaves > 0, oid
        prices = [p for p, _, _ in levels]
        assert prices == sorted(prices, reverse=(side == BUY))
    if bids and asks:
        assert bids[0][0] < asks[0][0], f"crossed: {bids[0]} / {asks[0]}"
    assert eng.best_bid() == (bids[0][0] if bids else None)
    assert eng.best_ask() == (asks[0][0] if asks else None)
    assert len(eng) == len(eng.book_orders(BUY)) + len(eng.book_orders(SELL))


# -- against the reference, by hypothesis -------------------------------------------------------
# Strategies are made once, here: building one per draw is what makes a stateful test slow.
OWNERS = ("a", "b", "c")
prices = st.integers(1, 10)
qtys = st.integers(1, 20)
picks = st.integers(0, 255)  # an index into the live orders, modulo their number
any_ids = st.integers(-1, 70) | st.sampled_from([[1], "x"])
any_sides = st.sampled_from([1, 2, SELL, 0, 3, None, "B"])
any_qtys = st.integers(-2, 20) | st.sampled_from([None, 1.5, True, "3"])
any_prices = st.none() | st.integers(-1, 11) | st.sampled_from([2.5, False])
any_ord_types = st.sampled_from([1, 2, LIMIT, MARKET, 0, 3, None])
any_tifs = st.sampled_from([0, 3, 4, DAY, IOC, FOK, 1, 2, None])
# a replace's new quantity: relative to the order (same, one less, more, at or just above
# what is filled), or anything at all
rel_qtys = st.sampled_from(["same", "less", "more", "cum", "cum+1"]) | st.integers(-1, 25)
rel_prices = st.sampled_from(["same", "up", "down"]) | st.none() | prices
bad_qtys = st.sampled_from([None, 2.5, True, 0, -1])
bad_prices = st.sampled_from([1.5, True, 0, -2])


class MatchingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.eng = MatchingEngine()
        self.ref = RefBook()
        self.ts = 0
        self.next_id = 0

    def both(self, name: str, *args) -> None:
        self.ts += 1
        got = getattr(self.eng, name)(*args, self.ts)
        want = getattr(self.ref, name)(*args, self.ts)
        assert got == want
        assert self.eng.reports == self.ref.out, (name, args)
        self.eng.reports.clear()
        self.ref.out.clear()

    def live(self, pick: int) -> RefOrder:
        return self.ref.resting[pick % len(self.ref.resting)]

    @rule(side=st.sampled_from([BUY, SELL, 1, 2]), qty=qtys, price=prices,
          owner=st.sampled_from(OWNERS))
    def rest(self, side, qty, price, owner):
        self.next_id += 1
        self.both("submit", self.next_id, owner, side, qty, price, LIMIT, DAY)

    @rule(side=st.sampled_from([BUY, SELL]), qty=qtys, price=st.none() | prices,
          tif=st.sampled_from([DAY, IOC, FOK]), owner=st.sampled_from(OWNERS))
    def aggress(self, side, qty, price, tif, owner):
        self.next_id += 1
        ord_type = MARKET if price is None else LIMIT
        self.both("submit", self.next_id, owner, side, qty, price, ord_type, tif)

    @rule(oid=any_ids, owner=st.sampled_from(OWNERS), side=any_sides, qty=any_qtys,
          price=any_prices, ord_type=any_ord_types, tif=any_tifs)
    def submit_anything(self, oid, owner, side, qty, price, ord_type, tif):
        self.both("submit", oid, owner, side, qty, price, ord_type, tif)

    @precondition(lambda self: self.ref.resting)
    @rule(pick=picks)
    def cancel_live(self, pick):
        self.both("cancel", self.live(pick).oid)

    @rule(oid=any_ids)
    def cancel_any(self, oid):
        self.both("cancel", oid)

    @precondition(lambda self: self.ref.resting)
    @rule(pick=picks, qty=rel_qtys, price=rel_prices)
    def replace_live(self, pick, qty, price):
        o = self.live(pick)
        qty = {"same": o.qty, "less": o.qty - 1, "more": o.qty + 3, "cum": o.cum,
               "cum+1": o.cum + 1}.get(qty, qty)
        price = {"same": o.price, "up": o.price + 1, "down": o.price - 1}.get(price, price)
        self.both("replace", o.oid, qty, price)

    @rule(oid=any_ids, qty=any_qtys | bad_qtys, price=any_prices | bad_prices)
    def replace_any(self, oid, qty, price):
        self.both("replace", oid, qty, price)

    @rule(owner=st.sampled_from(OWNERS + ("nobody",)))
    def cancel_all(self, owner):
        self.both("cancel_all", owner)

    @invariant()
    def books_agree_and_hold(self):
        book_invariants(self.eng)
        for side in (BUY, SELL):
            assert self.eng.book_orders(side) == self.ref.book(side)


MatchingMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60,
                                             deadline=None, report_multiple_bugs=False)
test_engine_matches_the_reference = MatchingMachine.TestCase


def test_long_random_streams_match_the_reference_and_replay_identically():
    """Longer, deeper streams than hypothesis makes: thick levels, compaction, sweeps."""
    compacted = 0
    for seed in range(3):
        rng = random.Random(seed)
        eng, again, ref = MatchingEngine(), MatchingEngine(), RefBook()
        next_id = 0
        for ts in range(3000):
            r = rng.random()
            if ts > 2000:  # mostly cancels now: levels empty out behind long-lived orders
                r = 0.72 + 0.28 * r
            if r < 0.6:
                next_id += 1
                side = rng.choice((BUY, SELL))
                px = rng.randint(3, 8) + (0 if side == BUY else 4)  # overlap at 7..8
                req = ("submit", next_id, rng.choice(OWNERS), side, rng.randint(1, 30), px,
                       LIMIT, DAY)
            elif r < 0.7:
                next_id += 1
                mkt = rng.random() < 0.3
                req = ("submit", next_id, rng.choice(OWNERS), rng.choice((BUY, SELL)),
                       rng.randint(1, rng.choice((30, 30, 30, 300))),
                       None if mkt else rng.randint(1, 14),
                       MARKET if mkt else LIMIT, rng.choice((DAY, IOC, FOK)))
            elif r < 0.95:
                live = [o.oid for o in ref.resting]
                req = ("cancel", rng.choice(live) if live and rng.random() < 0.9
                       else rng.randint(0, next_id + 1))
            elif r < 0.995:
                live = [o.oid for o in ref.resting] or [0]
                req = ("replace", rng.choice(live), rng.randint(0, 40),
                       rng.choice((None, rng.randint(1, 14))))
            else:
                req = ("cancel_all", rng.choice(OWNERS))
            name, *args = req
            decks = {(side, k): lv[3] for side, levels in ((BUY, eng._bids), (SELL, eng._asks))
                     for k, lv in levels.items()}
            for e in (eng, again, ref):
                getattr(e, name)(*args, ts)
            compacted += sum(lv[3] is not decks.get((side, k), lv[3])  # a new deque
                             for side, levels in ((BUY, eng._bids), (SELL, eng._asks))
                             for k, lv in levels.items())
            assert eng.reports == ref.out, f"seed {seed} step {ts}: {req}"
            assert again.reports == eng.reports
            eng.reports.clear(), again.reports.clear(), ref.out.clear()
            if ts % 50 == 0:
                book_invariants(eng)
                for side in (BUY, SELL):
                    assert eng.book_orders(side) == ref.book(side)
        book_invariants(eng)
    assert compacted, "no level was compacted: the streams are too shallow to test that"


# -- the cases the issue names -------------------------------------------------------------------
def fresh() -> MatchingEngine:
    return MatchingEngine()


def test_reports_are_tuples_in_the_documented_order():
    eng = fresh()
    eng.submit(1, "a", BUY, 10, 100, LIMIT, DAY, 7)
    (r,) = eng.reports
    assert type(r) is tuple and len(r) == len(Report._fields)
    assert r == (K.NEW, 1, "a", BUY, 100, 10, 0, None, 10, 0, 1, 7, None)
    assert Report._make(r).leaves == 10


def test_partial_fills_across_several_levels():
    eng = fresh()
    eng.submit(1, "m", SELL, 5, 101, LIMIT, DAY, 1)
    eng.submit(2, "m", SELL, 5, 102, LIMIT, DAY, 2)
    eng.submit(3, "n", SELL, 5, 102, LIMIT, DAY, 3)
    eng.submit(4, "m", SELL, 5, 103, LIMIT, DAY, 4)
    drain(eng)
    eng.submit(9, "t", BUY, 12, 102, LIMIT, DAY, 5)
    got = drain(eng)
    assert [(r.kind, r.order_id, r.last_qty, r.last_px, r.leaves, r.cum) for r in got] == [
        (K.NEW, 9, 0, None, 12, 0),
        (K.PARTIAL_FILL, 9, 5, 101, 7, 5), (K.FILL, 1, 5, 101, 0, 5),
        (K.PARTIAL_FILL, 9, 5, 102, 2, 10), (K.FILL, 2, 5, 102, 0, 5),
        (K.FILL, 9, 2, 102, 0, 12), (K.PARTIAL_FILL, 3, 2, 102, 3, 2),
    ]
    assert [r.exec_id for r in got] == list(range(got[0].exec_id, got[0].exec_id + 7))
    assert eng.book_depth(5) == ([], [(102, 3, 1), (103, 5, 1)])
    assert eng.order(3) == ("n", SELL, 102, 5, 3, 2)
    # a buy that rests after taking a level: the remainder is the new best bid
    eng.submit(10, "t", BUY, 4, 102, LIMIT, DAY, 6)
    got = drain(eng)
    assert kinds(got) == [K.NEW, K.PARTIAL_FILL, K.FILL]
    assert eng.best_bid() == 102 and eng.best_ask() == 103
    assert eng.book_depth(1) == ([(102, 1, 1)], [(103, 5, 1)])
    book_invariants(eng)


def test_fok_is_all_or_nothing():
    eng = fresh()
    eng.submit(1, "m", SELL, 5, 101, LIMIT, DAY, 1)
    eng.submit(2, "m", SELL, 5, 102, LIMIT, DAY, 2)
    eng.submit(3, "m", SELL, 50, 104, LIMIT, DAY, 3)
    drain(eng)
    before = (eng.book_orders(SELL), eng.book_depth(10))
    # needs 11 at 102 or better, only 10 there (the 50 at 104 is beyond its limit)
    eng.submit(7, "t", BUY, 11, 102, LIMIT, FOK, 4)
    got = drain(eng)
    assert [(r.kind, r.leaves, r.cum, r.reason) for r in got] == [
        (K.NEW, 11, 0, None), (K.CANCELLED, 0, 0, "FOK not fillable")]
    assert (eng.book_orders(SELL), eng.book_depth(10)) == before
    # a market FOK bigger than the whole side: nothing happens either
    eng.submit(8, "t", BUY, 61, None, MARKET, FOK, 5)
    assert [r.reason for r in drain(eng)] == [None, "FOK not fillable"]
    assert (eng.book_orders(SELL), eng.book_depth(10)) == before
    # exactly enough: it fills, across both levels
    eng.submit(9, "t", BUY, 10, 102, LIMIT, FOK, 6)
    got = drain(eng)
    assert kinds(got) == [K.NEW, K.PARTIAL_FILL, K.FILL, K.FILL, K.FILL]
    assert got[-2].leaves == 0 and got[-2].cum == 10
    assert eng.book_depth(10) == ([], [(104, 50, 1)])
    # an FOK that does not cross at all
    eng.submit(10, "t", SELL, 1, 105, LIMIT, FOK, 7)
    assert [r.reason for r in drain(eng)] == [None, "FOK not fillable"]
    book_invariants(eng)


def test_ioc_remainder_is_cancelled():
    eng = fresh()
    eng.submit(1, "m", BUY, 3, 100, LIMIT, DAY, 1)
    drain(eng)
    eng.submit(2, "t", SELL, 10, 99, LIMIT, IOC, 2)
    got = drain(eng)
    assert [(r.kind, r.order_id, r.last_qty, r.leaves, r.cum, r.reason) for r in got] == [
        (K.NEW, 2, 0, 10, 0, None),
        (K.PARTIAL_FILL, 2, 3, 7, 3, None), (K.FILL, 1, 3, 0, 3, None),
        (K.CANCELLED, 2, 0, 0, 3, "IOC remainder"),
    ]
    assert eng.book_depth(5) == ([], [])  # the IOC did not rest
    eng.submit(3, "t", SELL, 10, 99, LIMIT, IOC, 3)  # nothing to hit at all
    assert [(r.kind, r.reason) for r in drain(eng)] == [
        (K.NEW, None), (K.CANCELLED, "IOC remainder")]
    eng.submit(3, "t", SELL, 1, 99, LIMIT, DAY, 4)  # and its id is used up
    assert drain(eng)[0].reason == "duplicate order id 3"


def test_market_orders_never_rest():
    eng = fresh()
    eng.submit(1, "t", BUY, 5, None, MARKET, DAY, 1)  # into an empty book
    got = drain(eng)
    assert [(r.kind, r.price, r.leaves, r.cum, r.reason) for r in got] == [
        (K.NEW, None, 5, 0, None), (K.CANCELLED, None, 0, 0, "no liquidity")]
    eng.submit(2, "m", SELL, 2, 150, LIMIT, DAY, 2)
    eng.submit(3, "m", SELL, 2, 110, LIMIT, DAY, 3)
    drain(eng)
    eng.submit(4, "t", BUY, 5, None, MARKET, IOC, 4)  # sweeps the side at any price
    got = drain(eng)
    assert [(r.order_id, r.last_px, r.leaves) for r in got if r.kind in (K.FILL, K.PARTIAL_FILL)
            ] == [(4, 110, 3), (3, 110, 0), (4, 150, 1), (2, 150, 0)]
    assert (got[-1].kind, got[-1].cum, got[-1].reason) == (K.CANCELLED, 4, "no liquidity")
    assert eng.book_depth(5) == ([], [])
    eng.submit(5, "t", SELL, 1, None, MARKET, FOK, 5)
    assert drain(eng)[-1].reason == "no liquidity"


def test_replace_keeps_priority_only_for_a_smaller_quantity_at_the_same_price():
    eng = fresh()
    for oid in (1, 2, 3):
        eng.submit(oid, "m", BUY, 10, 100, LIMIT, DAY, oid)
    drain(eng)
    eng.replace(1, 6, 100, 4)  # smaller: stays first
    eng.replace(2, 12, None, 5)  # bigger (price kept): goes last
    got = drain(eng)
    assert [(r.kind, r.order_id, r.price, r.qty, r.leaves) for r in got] == [
        (K.REPLACED, 1, 100, 6, 6), (K.REPLACED, 2, 100, 12, 12)]
    assert [o[0] for o in eng.book_orders(BUY)] == [1, 3, 2]
    assert eng.book_depth(1) == ([(100, 28, 3)], [])
    eng.replace(1, 6, 99, 6)  # moved away: its own level now
    eng.replace(1, 6, 100, 7)  # and back: behind the others
    assert [o[0] for o in eng.book_orders(BUY)] == [3, 2, 1]
    eng.replace(3, 10, 100, 8)  # same quantity, same price: keeps its place
    assert [o[0] for o in eng.book_orders(BUY)] == [3, 2, 1]
    drain(eng)
    eng.submit(9, "t", SELL, 13, 100, LIMIT, IOC, 9)
    got = drain(eng)
    assert [(r.order_id, r.last_qty) for r in got if r.kind == K.FILL or r.kind == K.PARTIAL_FILL
            and r.order_id != 9] == [(3, 10), (9, 3), (2, 3)]
    book_invariants(eng)


def test_replace_after_a_partial_fill_and_its_rejects():
    eng = fresh()
    eng.submit(1, "m", BUY, 10, 100, LIMIT, DAY, 1)
    eng.submit(2, "t", SELL, 4, 100, LIMIT, DAY, 2)
    drain(eng)
    assert eng.order(1) == ("m", BUY, 100, 10, 6, 4)
    eng.replace(1, 4, 100, 3)  # not above the 4 filled
    eng.replace(1, 0, 100, 4)
    eng.replace(1, 8, -3, 5)
    eng.replace(1, 8.0, 100, 6)
    eng.replace(1, 8, 100.5, 7)
    got = drain(eng)
    assert [r.reason for r in got] == [
        "quantity 4 must exceed the 4 already filled",
        "quantity must be positive, was 0",
        "price must be positive, was -3",
        "quantity must be an integer, was 8.0",
        "price must be an integer number of ticks, was 100.5",
    ]
    assert all(r.kind == K.REPLACE_REJECTED and r.leaves == 6 and r.cum == 4 for r in got)
    eng.replace(1, 5, None, 8)  # 5 > 4 filled: leaves 1, keeps its place
    (r,) = drain(eng)
    assert (r.kind, r.qty, r.leaves, r.cum) == (K.REPLACED, 5, 1, 4)
    assert eng.order(1) == ("m", BUY, 100, 5, 1, 4)
    eng.cancel(1, 9)
    eng.replace(1, 9, 100, 10)
    eng.replace(42, 9, 100, 11)
    assert [(r.kind, r.reason) for r in drain(eng)] == [
        (K.CANCELLED, "cancel requested"),
        (K.REPLACE_REJECTED, "order 1 is already cancelled"),
        (K.REPLACE_REJECTED, "unknown order id 42"),
    ]


def test_replace_that_crosses_matches_then_rests():
    eng = fresh()
    eng.submit(1, "m", SELL, 5, 102, LIMIT, DAY, 1)
    eng.submit(2, "t", BUY, 8, 100, LIMIT, DAY, 2)
    drain(eng)
    eng.replace(2, 8, 102, 3)
    got = drain(eng)
    assert [(r.kind, r.order_id, r.last_qty, r.leaves, r.cum) for r in got] == [
        (K.REPLACED, 2, 0, 8, 0),
        (K.PARTIAL_FILL, 2, 5, 3, 5), (K.FILL, 1, 5, 0, 5),
    ]
    assert eng.book_depth(5) == ([(102, 3, 1)], [])
    eng.submit(3, "m", SELL, 3, 101, LIMIT, DAY, 4)  # fills order 2 entirely
    drain(eng)
    eng.replace(2, 9, 101, 5)
    eng.cancel(2, 6)
    assert [r.reason for r in drain(eng)] == ["order 2 is already filled"] * 2


def test_submit_rejects_name_the_input():
    eng = fresh()
    eng.submit(7, "a", BUY, 1, 100, LIMIT, DAY, 1)
    cases = [
        ((7, "a", SELL, 1, 100, LIMIT, DAY), "duplicate order id 7"),
        ((8, "a", BUY, 0, 100, LIMIT, DAY), "quantity must be positive, was 0"),
        ((8, "a", BUY, -5, 100, LIMIT, DAY), "quantity must be positive, was -5"),
        ((8, "a", BUY, 2.0, 100, LIMIT, DAY), "quantity must be an integer, was 2.0"),
        ((8, "a", BUY, True, 100, LIMIT, DAY), "quantity must be an integer, was True"),
        ((8, "a", BUY, 1, None, LIMIT, DAY), "limit order needs a price"),
        ((8, "a", BUY, 1, 0, LIMIT, DAY), "price must be positive, was 0"),
        ((8, "a", BUY, 1, "100", LIMIT, DAY),
         "price must be an integer number of ticks, was '100'"),
        ((8, "a", BUY, 1, 100, MARKET, DAY), "market order takes no price, was 100"),
        ((8, "a", 3, 1, 100, LIMIT, DAY), "side must be 1 (buy) or 2 (sell), was 3"),
        ((8, "a", BUY, 1, 100, 5, DAY), "order type must be 1 (market) or 2 (limit), was 5"),
        ((8, "a", BUY, 1, 100, LIMIT, 6),
         "time in force must be 0 (day), 3 (IOC) or 4 (FOK), was 6"),
        (([8], "a", BUY, 1, 100, LIMIT, DAY), "order id must be hashable, was [8]"),
    ]
    drain(eng)
    for args, reason in cases:
        eng.submit(*args, 2)
        (r,) = drain(eng)
        assert (r.kind, r.reason) == (K.REJECTED, reason), args
        assert (r.order_id, r.side, r.qty, r.price, r.leaves) == (args[0], args[2], args[3],
                                                                   args[4], 0)
    assert eng.book_orders(BUY) == [(7, "a", 100, 1, 1, 0)]
    assert len(eng) == 1


def test_integer_like_inputs_are_taken_as_ints():
    np = pytest.importorskip("numpy")
    eng = fresh()
    eng.submit(np.int64(5), "a", np.int64(2), np.int32(4), np.int64(101), np.int8(2),
               np.int8(0), 1)
    (r,) = drain(eng)
    assert r.kind == K.NEW and r.side is SELL and type(r.qty) is int and type(r.price) is int
    eng.replace(5, np.int64(6), np.int64(102), 2)
    (r,) = drain(eng)
    assert (r.kind, r.qty, r.price) == (K.REPLACED, 6, 102) and type(r.qty) is int
    book_invariants(eng)


def test_cancel_rejects():
    eng = fresh()
    eng.cancel(42, 1)
    eng.cancel([1], 2)
    got = drain(eng)
    assert [(r.kind, r.order_id, r.owner, r.reason) for r in got] == [
        (K.CANCEL_REJECTED, 42, None, "unknown order id 42"),
        (K.CANCEL_REJECTED, [1], None, "unknown order id [1]"),
    ]
    eng.submit(1, "a", BUY, 1, 100, LIMIT, DAY, 3)
    eng.cancel(1, 4)
    eng.cancel(1, 5)
    got = drain(eng)
    assert [(r.kind, r.reason, r.ts_ns) for r in got] == [
        (K.NEW, None, 3), (K.CANCELLED, "cancel requested", 4),
        (K.CANCEL_REJECTED, "order 1 is already cancelled", 5)]


def test_cancel_all_leaves_other_owners_alone():
    eng = fresh()
    eng.submit(1, "a", BUY, 1, 100, LIMIT, DAY, 1)
    eng.submit(2, "b", BUY, 2, 100, LIMIT, DAY, 2)
    eng.submit(3, "a", SELL, 3, 105, LIMIT, DAY, 3)
    eng.submit(4, "b", SELL, 4, 106, LIMIT, DAY, 4)
    eng.submit(5, "a", BUY, 5, 99, LIMIT, DAY, 5)
    eng.replace(1, 1, 101, 6)  # loses priority, keeps its arrival place for cancel_all
    drain(eng)
    assert eng.cancel_all("a", 7) == 3
    got = drain(eng)
    assert [(r.kind, r.order_id, r.leaves, r.reason) for r in got] == [
        (K.CANCELLED, 1, 0, "owner disconnected"),
        (K.CANCELLED, 3, 0, "owner disconnected"),
        (K.CANCELLED, 5, 0, "owner disconnected"),
    ]
    assert eng.book_depth(5) == ([(100, 2, 1)], [(106, 4, 1)])
    assert eng.cancel_all("a", 8) == 0 and eng.cancel_all("nobody", 9) == 0
    assert eng.cancel_all([], 10) == 0  # an unhashable owner owns nothing
    assert drain(eng) == []
    book_invariants(eng)


def test_a_level_with_many_cancelled_orders_is_compacted_and_keeps_priority():
    eng = fresh()
    eng.submit(0, "a", SELL, 1, 100, LIMIT, DAY, 0)
    for oid in range(1, 201):
        eng.submit(oid, "b", SELL, 1, 100, LIMIT, DAY, oid)
    for oid in range(1, 201):
        if oid % 10:
            eng.cancel(oid, 300 + oid)
    book_invariants(eng)
    assert eng.book_depth(1) == ([], [(100, 21, 21)])
    drain(eng)
    eng.submit(999, "t", BUY, 21, 100, LIMIT, IOC, 999)
    resting = [r.order_id for r in drain(eng) if r.kind == K.FILL and r.order_id != 999]
    assert resting == [0, *range(10, 201, 10)]
    assert eng.book_depth(1) == ([], [])


def test_finished_ids_are_remembered_within_bounds():
    eng = MatchingEngine(remember_done=2)
    for oid in range(1, 6):
        eng.submit(oid, "a", BUY, 1, 100, LIMIT, DAY, oid)
        eng.cancel(oid, oid)
    drain(eng)
    eng.cancel(5, 10)
    eng.cancel(1, 11)  # long forgotten
    eng.submit(5, "a", BUY, 1, 100, LIMIT, DAY, 12)
    assert [r.reason for r in drain(eng)] == [
        "order 5 is already cancelled", "unknown order id 1", "duplicate order id 5"]


def test_reports_go_to_the_callers_list():
    out: list = []
    eng = MatchingEngine(out)
    eng.submit(1, "a", BUY, 1, 100, LIMIT, DAY, 1)
    assert eng.reports is out and len(out) == 1
