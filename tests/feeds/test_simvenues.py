"""SimVenues: the simulated multi-venue feed, checked by applying its stream to a plain Python
book (``PyBooks``, also used by the other feed tests) and by FeedIntegrity."""

from __future__ import annotations

import math

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
    SELL,
    TRADE,
    EventBuffer,
)
from engine.feeds.integrity import FeedIntegrity
from engine.feeds.simvenues import SimInstrument, SimPair, SimVenue, SimVenues


class PyBooks:
    """MD_EVENT records applied to plain lists, every rule asserted: per (venue, instrument)
    one list of [price, size] a side, level 0 the best. NEW inserts at ``level`` (never past
    ``depth``), CHANGE sets the size of the level (same price), DELETE removes it (its price,
    if given, must match), CLEAR empties the side. At each message's end (F_LAST) both sides
    must be strictly ordered, sizes > 0, and the book not crossed."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.books: dict[tuple[int, int], tuple[list, list]] = {}
        self.trades = 0
        self.last_trade: dict[tuple[int, int], tuple[int, int, int]] = {}
        self.seq: dict[tuple[int, int, int], int] = {}

    def side(self, v: int, i: int, s: int) -> list:
        return self.books.setdefault((v, i), ([], []))[s]

    def apply(self, r: np.void) -> None:
        kind, v, i = int(r["kind"]), int(r["venue"]), int(r["instrument"])
        self.seq[(v, int(r["channel"]), i)] = int(r["seq"])
        px, sz, level, action = int(r["price"]), int(r["size"]), int(r["level"]), \
            int(r["action"])
        if kind == TRADE:
            assert px > 0 and sz > 0
            self.trades += 1
            self.last_trade[(v, i)] = (px, sz, int(r["side"]))
        elif kind == QUOTE:
            lv = self.side(v, i, int(r["side"]))
            if action == CLEAR:
                lv.clear()
            elif action == NEW:
                assert px > 0 and sz > 0, r
                assert level <= len(lv) < self.depth, (r, lv)
                lv.insert(level, [px, sz])
            elif action == CHANGE:
                assert level < len(lv) and lv[level][0] == px and sz > 0, (r, lv)
                lv[level][1] = sz
            elif action == DELETE:
                assert level < len(lv) and px in (0, lv[level][0]), (r, lv)
                del lv[level]
            else:
                raise AssertionError(f"action {action}")
        if r["flags"] & F_LAST:
            self.check(v, i)

    def check(self, v: int, i: int) -> None:
        bids, asks = self.books.get((v, i), ([], []))
        assert all(a[0] > b[0] for a, b in zip(bids, bids[1:])), bids
        assert all(a[0] < b[0] for a, b in zip(asks, asks[1:])), asks
        assert all(s > 0 for _, s in bids + asks)
        assert not (bids and asks) or bids[0][0] < asks[0][0], (bids[:1], asks[:1])

    def levels(self, v: int, i: int) -> tuple[list, list]:
        bids, asks = self.books.get((v, i), ([], []))
        return [tuple(x) for x in bids], [tuple(x) for x in asks]

    def mid(self, v: int, i: int) -> float:
        bids, asks = self.books[(v, i)]
        return (bids[0][0] + asks[0][0]) / 2


INSTRUMENTS = [("AAA", 0.01, 100.0), ("BBB", 0.25, 50.0), ("CCC", 0.01, 20.0)]
VENUES = [("SIMA", 0, 150), ("SIMB", 2, 400, 50, 0.5, 2), ("SIMC", -1, 900, 0)]


def make(**kw) -> SimVenues:
    args = dict(seed=7, rate_hz=200.0, depth=5, burst_every_s=2.0, burst_len_s=0.2,
                trade_prob=0.1)
    args.update(kw)
    return SimVenues(INSTRUMENTS, VENUES, [(0, 2, 0.2, 3.0, 20.0)], **args)


def stream(sim: SimVenues, until_ns: int, step_ns: int, cap: int) -> np.ndarray:
    """Every record to ``until_ns``, stepping ``step_ns`` at a time into a ``cap`` buffer."""
    out = EventBuffer(cap)
    got = []
    now = 0
    while now < until_ns:
        now = min(until_ns, now + step_ns)
        while True:
            out.clear()
            sim.step(now, out)
            got.append(out.view().copy())
            if out.n < out.capacity:
                break
    return np.concatenate(got)


# -- determinism ------------------------------------------------------------------------------
def test_same_seed_same_bytes_however_it_is_stepped():
    a = stream(make(loss_prob=0.01), 3 * 10**9, 7_000_000, 64)
    b = stream(make(loss_prob=0.01), 3 * 10**9, 250_000_000, 100_000)
    assert len(a) > 5_000
    assert a.tobytes() == b.tobytes()
    c = stream(make(seed=8), 3 * 10**9, 7_000_000, 64)
    assert c.tobytes() != a.tobytes()


def test_same_calls_same_snapshots():
    def run() -> bytes:
        sim = make()
        parts = [sim.snapshot(0)]
        out = EventBuffer(512)
        for k in range(1, 40):
            out.clear()
            sim.step(k * 25_000_000, out)
            parts.append(out.view().copy())
            if k % 10 == 0:
                parts.append(sim.snapshot(k * 25_000_000, [(1, 2), (0, 0)]))
        return np.concatenate(parts).tobytes()

    assert run() == run()


def test_the_compiled_kernels_match_their_python_forms():
    kw = dict(rate_hz=[300.0, 100.0, 50.0], loss_prob=0.02)
    a, b = make(**kw), make(compiled=False, **kw)
    assert stream(a, 300_000_000, 20_000_000, 300).tobytes() == \
        stream(b, 300_000_000, 20_000_000, 300).tobytes()
    assert a.snapshot(3 * 10**8).tobytes() == b.snapshot(3 * 10**8).tobytes()
    assert a.violations == b.violations == 0


# -- the books the stream implies -------------------------------------------------------------
def test_the_stream_keeps_every_venue_book_valid_and_snapshots_agree():
    sim = make(depth=6)
    books = PyBooks(6)
    for r in sim.snapshot(0):
        books.apply(r)
    integ = FeedIntegrity(3, 3, 10**9)
    assert integ.check(sim.snapshot(0), 0).all()
    out = EventBuffer(1000)
    last_recv = -1
    kinds = {QUOTE: 0, TRADE: 0}
    actions = {NEW: 0, CHANGE: 0, DELETE: 0}
    now = 0
    for _ in range(400):
        now += 10_000_000
        out.clear()
        sim.step(now, out)
        rec = out.view()
        assert integ.check(rec, now).all()
        for r in rec:
            assert last_recv <= r["recv_ns"] <= now  # arrival order, nothing early
            last_recv = int(r["recv_ns"])
            kinds[int(r["kind"])] += 1
            if r["kind"] == QUOTE:
                actions[int(r["action"])] += 1
            if r["kind"] == TRADE:  # a trade is at the touch, then the touch shrinks
                bids, asks = books.levels(int(r["venue"]), int(r["instrument"]))
                touch = asks[0] if r["side"] == BUY else bids[0]
                assert r["side"] in (BUY, SELL) and r["price"] == touch[0]
                assert 0 < r["size"] < touch[1]
            books.apply(r)
        assert sim.next_due_ns > now
    assert kinds[TRADE] > 100 and min(actions.values()) > 100
    assert sim.violations == 0
    h = integ.health
    assert h["gaps"].sum() == h["duplicates"].sum() == h["stale_dropped"].sum() == 0
    # a snapshot is the books as delivered, at the last seq delivered
    snap = PyBooks(6)
    for r in sim.snapshot(now):
        assert r["flags"] & F_SNAPSHOT and r["recv_ns"] == now
        snap.apply(r)
    assert snap.books == books.books
    assert snap.seq == books.seq
    assert integ.check(sim.snapshot(now), now).all()


def test_wire_times():
    sim = make(trade_prob=0.0)
    rec = stream(sim, 2 * 10**9, 50_000_000, 4096)
    for v, (_, _, lat_us, *rest) in enumerate(VENUES):
        mine = rec[rec["venue"] == v]
        delay = mine["recv_ns"] - mine["exch_ns"]
        assert (delay >= lat_us * 1000).all()
        assert (np.diff(mine["exch_ns"]) >= 0).all()  # one venue, one stream: in order
        jitter = rest[0] if rest else 20
        assert abs(delay.mean() - (lat_us + jitter) * 1000) < 0.2 * (lat_us + jitter) * 1000 \
            + 5000
    assert (np.diff(rec["recv_ns"]) >= 0).all()


def test_venues_quote_around_the_same_price_with_their_offsets():
    sim = SimVenues([("AAA", 0.01, 100.0, 1e-4)],
                    [("A", 0, 100, 10, 0.2), ("B", 3, 100, 10, 0.2), ("C", -2, 100, 10, 0.2)],
                    seed=3, rate_hz=100.0, burst_factor=1.0, trade_prob=0.0)
    books = PyBooks(10)
    for r in sim.snapshot(0):
        books.apply(r)
    out = EventBuffer(4096)
    diffs: list[list[float]] = [[], []]
    for k in range(1, 600):
        out.clear()
        sim.step(k * 10_000_000, out)
        for r in out.view():
            books.apply(r)
        diffs[0].append(books.mid(1, 0) - books.mid(0, 0))
        diffs[1].append(books.mid(2, 0) - books.mid(0, 0))
    assert abs(np.mean(diffs[0]) - 3) < 0.5 and abs(np.mean(diffs[1]) + 2) < 0.5


def test_venues_keep_their_quotes_around_one_fair_value():
    # Venues re-quote at their own drawn times and whenever the fair value leaves their quote:
    # with the same wire delay everywhere, every sample of the books sees each venue's quote
    # bracket the same fair value, so the best bid over all venues never reaches the best ask
    # over all venues, however fast the price moves against the rate of drawn events.
    sim = SimVenues([("AAA", 0.01, 100.0, 2e-3), ("BBB", 0.25, 5000.0, 5e-4)],
                    [("A", 0, 100, 0, 0.5, 1), ("B", 0, 100, 0, 0.5, 2),
                     ("C", 0, 100, 0, 0.5, 3)],
                    seed=4, rate_hz=2.0, trade_prob=0.2, depth=4)
    books = PyBooks(4)
    for r in sim.snapshot(0):
        books.apply(r)
    out = EventBuffer(1 << 14)
    gaps: list[int] = []
    for k in range(1, 20_000):  # 6 s, a sample every 0.3 ms: between whole milliseconds too
        out.clear()
        sim.step(k * 300_000, out)
        for r in out.view():
            books.apply(r)
        for i in range(2):
            best_bid = max(books.levels(v, i)[0][0][0] for v in range(3))
            best_ask = min(books.levels(v, i)[1][0][0] for v in range(3))
            gaps.append(best_ask - best_bid)
    # venue A is one tick wide around the fair value and the others' quotes contain it too:
    # the consolidated book is exactly one tick wide, never locked or crossed
    assert set(gaps) == {1}
    assert sim.requotes > 1000 and sim.events - sim.requotes < 200  # the price moves them
    assert sim.violations == 0


def test_bursts_raise_the_rate():
    # (a price that never moves: no re-quotes forced by it, only the drawn events)
    sim = SimVenues([("AAA", 0.01, 100.0, 0.0)], [("A", 0, 100)], seed=5, rate_hz=200.0,
                    burst_every_s=3.0, burst_len_s=0.5, burst_factor=10.0, trade_prob=0.0)
    rec = stream(sim, 60 * 10**9, 500_000_000, 200_000)
    last = rec[rec["flags"] & F_LAST != 0]  # one per event
    per_100ms = np.bincount(last["exch_ns"] // 100_000_000, minlength=600)
    assert sim.bursts >= 5
    assert per_100ms.max() > 5 * np.median(per_100ms)
    assert 15 < np.median(per_100ms) < 25  # 200 Hz outside bursts


def test_many_instruments_and_every_stream_numbered_from_one():
    insts = [SimInstrument(symbol=f"S{i}", tick=0.05, price=10.0 + i) for i in range(300)]
    venues = [SimVenue(name="A"), SimVenue(name="B", offset_ticks=1, latency_us=300)]
    pairs = [SimPair(i=2 * k, j=2 * k + 1, beta=1.0, half_life_s=10.0, spread_bp=5.0)
             for k in range(100)]
    sim = SimVenues(insts, venues, pairs, seed=1, rate_hz=5.0, channels=4, depth=3)
    rec = stream(sim, 2 * 10**9, 100_000_000, 8192)
    assert set(np.unique(rec["instrument"])) == set(range(300))
    assert (rec["channel"] == rec["instrument"] % 4).all()
    first = {}
    for r in rec[:5000]:
        first.setdefault((int(r["venue"]), int(r["instrument"])), int(r["seq"]))
    assert set(first.values()) == {1}
    integ = FeedIntegrity(2, 300, 10**9, n_channels=4)
    assert len(integ.check(np.zeros(0, MD_EVENT), 0)) == 0
    fresh = SimVenues(insts, venues, pairs, seed=1, rate_hz=5.0, channels=4, depth=3)
    assert integ.check(fresh.snapshot(0), 0).all()
    assert integ.check(rec, 2 * 10**9).all()


def test_losses_show_as_gaps_and_a_snapshot_mends_them():
    sim = make(loss_prob=0.002)
    integ = FeedIntegrity(3, 3, 10**9)
    books = PyBooks(5)
    integ.check(snap := sim.snapshot(0), 0)
    for r in snap:
        books.apply(r)
    out = EventBuffer(4096)
    now = 0
    mended = 0
    for _ in range(100):
        now += 20_000_000
        out.clear()
        sim.step(now, out)
        for r in integ.filter(out.view(), now):
            if r["kind"] != 3:
                books.apply(r)
        gaps = integ.take_gaps()
        if gaps:
            snap = sim.snapshot(now, [(v, i) for v, _, i in gaps])
            assert integ.check(snap, now).all()
            for r in snap:
                books.apply(r)
            mended += len(gaps)
    assert sim.lost > 0 and mended > 0
    assert int(integ.health["gaps"].sum()) == mended
    # after the last snapshots, every stream the integrity check keeps live is the venue's
    truth = PyBooks(5)
    for r in sim.snapshot(now):
        truth.apply(r)
    for (v, i), book in truth.books.items():
        if integ.stream_state(v, i) == 1:
            assert books.books[(v, i)] == book


# -- the model: a pair is cointegrated -------------------------------------------------------
def _half_life_and_t(a: np.ndarray, b: np.ndarray, dt: float) -> tuple[float, float, float]:
    """Engle-Granger, step by step: regress b on a, then the residual's AR(1): the half-life
    and the Dickey-Fuller t statistic of (phi - 1); and the correlation of the levels."""
    x = np.column_stack([np.ones_like(a), a])
    coef, *_ = np.linalg.lstsq(x, b, rcond=None)
    res = b - x @ coef
    y, z = np.diff(res), res[:-1]
    gamma = (z @ y) / (z @ z)
    e = y - gamma * z
    se = math.sqrt((e @ e) / (len(y) - 1) / (z @ z))
    phi = 1 + gamma
    hl = -math.log(2) / math.log(phi) * dt if 0 < phi < 1 else math.inf
    return hl, gamma / se, float(np.corrcoef(a, b)[0, 1])


def test_a_pair_is_cointegrated_with_its_half_life():
    half_life = 5.0
    sim = SimVenues([("A", 0.01, 100.0, 5e-4), ("B", 0.01, 100.0), ("C", 0.01, 100.0, 5e-4)],
                    [("V", 0, 100, 10, 0.3)], [(0, 1, 1.0, half_life, 20.0)], seed=11,
                    rate_hz=20.0, trade_prob=0.0, burst_factor=1.0)
    books = PyBooks(10)
    for r in sim.snapshot(0):
        books.apply(r)
    out = EventBuffer(4096)
    mids = []
    dt = 0.1
    for k in range(1, 6001):  # 600 s, sampled every 100 ms
        out.clear()
        sim.step(int(k * dt * 1e9), out)
        for r in out.view():
            books.apply(r)
        mids.append([books.mid(0, i) for i in range(3)])
    m = np.array(mids) * 0.01
    hl, t, corr = _half_life_and_t(m[:, 0], m[:, 1], dt)
    assert half_life / 2 < hl < half_life * 2, hl
    assert t < -3.9  # Engle-Granger 1 % critical value for two series is about -3.9
    assert corr > 0.9
    # an instrument that follows nothing is no pair: no such mean reversion
    hl_c, t_c, _ = _half_life_and_t(m[:, 0], m[:, 2], dt)
    assert hl_c > 5 * half_life and t_c > t / 2


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [
    (dict(pairs=[(0, 0, 1.0, 5.0, 0.1)]), "legs must differ"),
    (dict(pairs=[(0, 5, 1.0, 5.0, 0.1)]), "no such instrument"),
    (dict(pairs=[(0, 1, 1.0, 5.0, 0.1), (2, 1, 1.0, 5.0, 0.1)]), "follow one instrument"),
    (dict(pairs=[(0, 1, 1.0, 5.0, 0.1), (1, 2, 1.0, 5.0, 0.1)]), "follow one instrument"),
    (dict(pairs=[(0, 1, 0.0, 5.0, 0.1)]), "beta and half_life_s must be > 0"),
    (dict(pairs=[(0, 1, float("nan"), 5.0, 0.1)]), "beta and half_life_s must be > 0"),
    (dict(pairs=[(0, 1, 1.0, 0.0, 0.1)]), "beta and half_life_s must be > 0"),
    (dict(pairs=[(0, 1, 1.0, 5.0, -1.0)]), "spread_bp >= 0"),
    (dict(depth=0), "depth"),
    (dict(venues=[]), "venues"),
    (dict(rate_hz=-1.0), "rates"),
])
def test_bad_configuration_is_refused(kw, match):
    args = dict(instruments=INSTRUMENTS, venues=VENUES)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        SimVenues(**args)


def test_no_rate_no_events():
    sim = SimVenues(INSTRUMENTS, VENUES, rate_hz=0.0)
    out = EventBuffer(16)
    assert sim.step(10**10, out) == 0 and sim.next_due_ns >= 1 << 62
    assert len(sim.snapshot(0)) == 9 * (2 + 2 * 10)
    assert set(sim.snapshot(0)["kind"]) == {QUOTE}
    snap = sim.snapshot(0, [(1, 1)])
    assert snap["side"].tolist()[:2] == [BID, ASK] and (snap["venue"] == 1).all()
    with pytest.raises(IndexError):
        sim.snapshot(0, [(3, 0)])


def test_a_caller_far_behind_is_skipped_ahead():
    sim = make(max_lag_s=1.0)
    out = EventBuffer(1 << 20)
    sim.step(10**9, out)
    n1 = out.n
    out.clear()
    sim.step(3600 * 10**9, out)  # an hour later: only the last second or so is generated
    assert sim.skips == 1 and out.n < 3 * n1
    exch = out.view()["exch_ns"]
    assert ((exch < 10**9) | (exch >= 3598 * 10**9)).all()  # what was in flight, then now
