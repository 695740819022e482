"""What the desk reads besides books: the frame stamp, a replay's position, the trades ring
(time and sales) and the engine's latency histograms."""

from __future__ import annotations

import time

import numpy as np

from engine.book.books import BookSet, apply_batch
from engine.core.events import BUY, MD_EVENT, QUOTE, SELL, STATUS, TRADE
from engine.core.ticks import tick_decimals
from engine.ipc import EngineClient, ReplayState, Verb
from engine.ipc.layout import LATENCY_BUCKETS, LATENCY_NAMES, latency_bucket, latency_edges_us
from engine.ipc.publisher import (
    EngineSegment,
    LatencyCounts,
    _take_trades,
    _take_trades_reference,
    _write_trades,
    _write_trades_reference,
)
from engine.ipc.layout import TRADE_DTYPE
from widgets.latency import EDGES_US

from tests.conftest import wait_until


# -- replay position (a unit test on a segment) ------------------------------------------------
def test_replay_state_is_none_until_a_replay_writes_its_position(instance):
    seg = EngineSegment(instance, [("A", 0.01, 10.0)])
    try:
        with EngineClient(instance, commands=False) as c:
            assert c.replay_state() is None
            seg.set_replay(1_700_000_000_000_000_000, 1_700_000_100_000_000_000,
                           1_700_000_050_000_000_000, 2.5, True)
            assert c.replay_state() == ReplayState(
                1_700_000_000_000_000_000, 1_700_000_100_000_000_000,
                1_700_000_050_000_000_000, 2.5, True)
            seg.set_replay(1, 3, 2, 0.125, False)
            assert c.replay_state() == ReplayState(1, 3, 2, 0.125, False)
    finally:
        seg.close()


def test_publish_stamp_counts_publishes_with_their_monotonic_time(instance):
    seg = EngineSegment(instance, [("A", 0.01, 10.0)])
    try:
        with EngineClient(instance, commands=False) as c:
            assert c.publish_stamp() == (0, 0)
            before = time.monotonic_ns()
            seg.stamp_publish()
            seg.stamp_publish()
            seq, mono = c.publish_stamp()
            assert seq == 2 and before <= mono <= time.monotonic_ns()
    finally:
        seg.close()


# -- a real engine -------------------------------------------------------------------------------
def test_a_running_engine_advances_its_publish_stamp_and_is_no_replay(engine):
    with EngineClient(engine.instance, commands=False) as c:
        assert c.replay_state() is None
        seq0, _ = wait_until(lambda: (s := c.publish_stamp())[0] and s, 10, "a first publish")
        seq1, mono1 = wait_until(lambda: (s := c.publish_stamp())[0] > seq0 and s, 10,
                                 "the stamp to advance")
        assert seq1 > seq0
        now = time.monotonic_ns()
        assert 0 < mono1 <= now
        assert now - mono1 < 60 * 1_000_000_000  # recent: this boot's clock, not garbage


# -- the trade ring --------------------------------------------------------------------------------
def _random_batch(rng, n: int, n_venues: int, n_instruments: int) -> np.ndarray:
    """MD_EVENT records, mostly trades, some of them ones the books refuse."""
    recs = np.zeros(n, dtype=MD_EVENT)
    recs["kind"] = rng.choice([QUOTE, TRADE, TRADE, TRADE, STATUS, 9], n)
    recs["venue"] = rng.integers(0, n_venues + 1, n)
    recs["instrument"] = rng.integers(0, n_instruments + 1, n)
    recs["side"] = rng.choice([0, BUY, SELL, 3], n, p=[0.2, 0.35, 0.35, 0.1])
    recs["action"] = rng.integers(0, 3, n)
    recs["price"] = rng.integers(-2, 20_000, n)
    recs["size"] = rng.integers(-1, 50, n)
    recs["recv_ns"] = np.cumsum(rng.integers(0, 1000, n)) + 1_700_000_000_000_000_000
    recs["exch_ns"] = recs["recv_ns"] - rng.integers(0, 500, n)
    return recs


def test_the_tape_keeps_exactly_the_trades_the_books_applied_as_its_reference_does():
    rng = np.random.default_rng(11)
    n_venues, n_instruments = 3, 5
    for _ in range(20):
        recs = _random_batch(rng, int(rng.integers(0, 300)), n_venues, n_instruments)
        out = np.zeros((len(recs), 7), dtype=np.int64)
        ref = np.zeros((len(recs), 7), dtype=np.int64)
        n = _take_trades(recs, n_venues, n_instruments, out, 0)
        assert n == _take_trades_reference(recs, n_venues, n_instruments, ref, 0)
        assert (out[:n] == ref[:n]).all()
        books = BookSet(n_venues, n_instruments)
        apply_batch(books, recs)
        assert n == int(books.venue["trades"].sum())  # the trades the books applied, no more


def test_the_compiled_ring_writer_writes_what_its_reference_does():
    rng = np.random.default_rng(5)
    tick = np.array([0.01, 0.25, 0.05, 1e-4])
    for _ in range(20):
        n = int(rng.integers(0, 40))
        kept = np.zeros((n, 7), dtype=np.int64)
        kept[:, 0] = rng.integers(0, len(tick), n)
        kept[:, 1] = rng.integers(0, 16, n)
        kept[:, 2] = rng.integers(0, 3, n)
        kept[:, 3] = rng.integers(1, 10**7, n)
        kept[:, 4] = rng.integers(1, 10**6, n)
        kept[:, 5:] = rng.integers(0, 2**62, (n, 2))
        seq0, first = int(rng.integers(0, 2**40)), int(rng.integers(0, n + 1))
        a, b = np.zeros(16, dtype=TRADE_DTYPE), np.zeros(16, dtype=TRADE_DTYPE)
        _write_trades(kept, first, n, tick, a, 15, seq0)
        _write_trades_reference(kept, first, n, tick, b, 15, seq0)
        assert a.tobytes() == b.tobytes()


def test_trade_ring_records_carry_prices_as_the_books_show_them_and_count_a_lapped_reader(
        instance):
    ticks = [0.01, 0.25]
    seg = EngineSegment(instance, [("A", ticks[0], 100.0), ("B", ticks[1], 5000.0)],
                        trade_capacity=64)
    try:
        books = BookSet(2, 2)
        tape = seg.trade_tape(2)
        books.taps.append(tape)
        rng = np.random.default_rng(3)
        with EngineClient(instance, commands=False) as fast, \
                EngineClient(instance, commands=False) as slow:
            got = []
            for _ in range(10):
                recs = _random_batch(rng, 40, 2, 2)
                apply_batch(books, recs)
                tape.drain()
                got.append(fast.poll_trades())
            got = np.concatenate(got)
            assert fast.trades_lost == 0
            assert (got["seq"] == np.arange(len(got))).all()  # in order, none missing
            assert len(got) == int(books.venue["trades"].sum()) > 64
            last = got[-1]
            v, i = int(last["venue"]), int(last["instrument"])
            assert last["price_ticks"] == books.venue["last_px"][v, i]
            assert last["size"] == books.venue["last_sz"][v, i]
            assert last["side"] == books.venue["last_side"][v, i]
            tick, places = ticks[i], tick_decimals(ticks[i])
            assert last["price"] == round(float(last["price_ticks"] * tick), places)
            # the slow reader never polled: it sees the newest 64 and is told of the rest
            late = slow.poll_trades()
            assert len(late) == 64 and slow.trades_lost == len(got) - 64
            assert (late["seq"] == got["seq"][-64:]).all()
    finally:
        seg.close()


def _last_by_instrument(trades: np.ndarray) -> dict[int, tuple[float, float]]:
    out = {}
    for t in trades:
        out[int(t["instrument"])] = (float(t["price"]), float(t["size"]))
    return out


def test_a_desk_reads_every_trade_the_engines_books_show_in_order(engine):
    with EngineClient(engine.instance, commands=False) as c:
        trades = []

        def enough():
            trades.append(c.poll_trades())
            return sum(len(t) for t in trades) >= 30

        wait_until(enough, 60, "30 trades on the tape")
        # a moment where the ring and the books agree: trades, books, and no trade in between
        last: dict[int, tuple[float, float]] = {}
        books: dict[int, tuple[float, float]] = {}

        def agree():
            trades.append(c.poll_trades())
            snap = {i: c.read_book(i) for i in range(len(c.instruments))}
            later = c.poll_trades()
            trades.append(later)
            if len(later) or any(b is None for b in snap.values()):
                return False
            last.clear()
            last.update(_last_by_instrument(np.concatenate(trades)))
            books.clear()
            books.update({i: (float(b[0]["last_px"]), float(b[0]["last_sz"]))
                          for i, b in snap.items()})
            return True

        wait_until(agree, 30, "a quiet moment between two publishes")
        got = np.concatenate(trades)
        assert c.trades_lost == 0
        assert (np.diff(got["seq"].astype(np.int64)) == 1).all()  # in order, none missing
        assert (np.diff(got["ts_recv_ns"]) >= 0).all()
        assert set(got["side"]) <= {0, 1, 2}
        assert last  # some instrument traded
        for i, (px, sz) in last.items():
            assert books[i] == (px, sz), (c.instruments[i].symbol, books[i], (px, sz))


# -- latency histograms ----------------------------------------------------------------------------
def test_the_latency_edges_are_the_desks_and_each_sample_lands_between_them():
    edges = latency_edges_us()
    assert np.array_equal(edges, EDGES_US)  # the desk's panel draws them as they are
    assert len(edges) == LATENCY_BUCKETS + 1 == 99
    for ns in (0, 999, 1000, 1189, 1190, 25_000, 1_000_000_000, 2**24 * 1000, 10**13):
        k = latency_bucket(ns)
        assert edges[k] <= ns / 1000 < edges[k + 1], (ns, k)
    h = LatencyCounts()
    for ns in (-5, 500, 50_000, 10**15):
        h.add(ns)
    assert h.count == 4 and h.counts[0] == 2 and h.counts[-1] == 1


def _rows(c: EngineClient) -> np.ndarray:
    got = []
    wait_until(lambda: (r := c.read_latency_rows()) is not None and not got.append(r), 10,
               "a consistent read of the latency rows")
    return got[0]


def _total(c: EngineClient, name: str) -> int:
    lat = wait_until(c.read_latency, 10, "a consistent read of the latency block")
    assert set(lat) == set(LATENCY_NAMES)
    assert all(len(v) == LATENCY_BUCKETS for v in lat.values())
    return int(lat[name].sum())


def test_the_command_histogram_counts_the_commands_a_desk_sent(engine):
    with EngineClient(engine.instance) as c:
        before = _total(c, "command")
        for _ in range(5):
            assert c.request(Verb.PING).accepted
        wait_until(lambda: _total(c, "command") >= before + 5, 10,
                   "the 5 pings in the command histogram")
        rows = _rows(c)
        row = rows[list(LATENCY_NAMES).index("command")]
        assert row["count"] == row["counts"].sum() and row["max_ns"] > 0


PAPER_MARKET = """kind = "simvenues"
venues = ["SIMA"]

[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0
update_hz = 50

[[venues]]
name = "SIMA"
kind = "sim"
latency_us = 100

[[strategies]]
name = "mm"
kind = "marketmaker"
symbols = ["AAA"]
venue = "SIMA"
size = 100
max_position = 300
half_spread_ticks = 1
min_requote_ms = 20
"""


def test_a_paper_trading_strategy_records_tick_to_order_samples(engine_factory, instance):
    e = engine_factory(instance, instruments=PAPER_MARKET, users='"*" = "trader"').start()
    with EngineClient(e.instance, commands=False) as c:
        wait_until(lambda: _total(c, "tick_to_order") >= 5, 60,
                   "the market maker's orders in the tick-to-order histogram")
        rows = _rows(c)
        row = rows[list(LATENCY_NAMES).index("tick_to_order")]
        assert row["count"] == row["counts"].sum() >= 5
