"""The pairs strategy's formation is on an absolute grid of sample instants, from the first
sound book it sees: two kernels started at different times before the same recorded market
sample the same instants, choose the same pairs and send the same orders (when a paper
session starts is not a fact of the market its backtest replays)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.node import DaysReplay, plan_range
from engine.backtest.synth import simulate_day, universe_profile_text
from engine.core.profile import load_profile
from engine.execution.orders import ClOrdIds
from engine.kernel import Journal, Kernel
from engine.strategy.api import StrategyContext
from engine.strategy.pairs import PairsConfig, PairsStrategy
from engine.venue.inprocess import InProcessVenue
from tests.strategy._pairs_market import TwoBooks

DAY = "2026-03-03"
SAMPLE_NS = 100_000_000

# four instruments S0000..S0003, two cointegrated pairs (S0001 follows S0000, S0003 S0002)
PROFILE = universe_profile_text(4, 2, seed=11, instance="grid", update_hz=20.0,
                                price_range=(40.0, 100.0), half_life_range_s=(1.0, 1.0),
                                spread_bp_range=(30.0, 30.0)) + """
[[venues]]
name = "SIMA"
kind = "sim"
latency_us = 150

[[venues]]
name = "SIMB"
kind = "sim"
latency_us = 300

[limits]
max_orders_per_s = 1000
max_position = 100000
max_order_notional = 1000000.0
duplicate_window_ms = 0
"""

CONFIG = PairsConfig(pairs=None, formation_s=6.0, sample_ms=100, max_pairs=2, p_value=0.5,
                     min_corr=0.0, entry_z=1.5, exit_z=0.3, stop_z=8.0, cooldown_s=0.5,
                     notional=10_000.0, max_hold_s=0.0)


class _Orders(Journal):
    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def order(self, update, order, ts_ns: int) -> None:
        self.rows.append((ts_ns, update.cl_ord_id, order.symbol, order.side, order.qty,
                          order.price, update.status.value, update.last_qty, update.last_px))


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    path = root / "grid.toml"
    path.write_text(PROFILE)
    profile = load_profile(path)
    simulate_day(profile, root / "ticks", DAY, 14.0)
    return profile, root / "ticks"


def _session(profile, root, lead_ns: int) -> tuple[PairsStrategy, list[tuple]]:
    """A kernel started ``lead_ns`` before the day's first record, stepped at every time
    something is due until 13 s after it."""
    symbols = [i.symbol for i in profile.instruments]
    venues = [v.name for v in profile.venues]
    source = DaysReplay(plan_range(root, DAY), symbols, venues)
    t0 = int(source.records["recv_ns"][0])
    s = PairsStrategy(CONFIG, "pairs")
    journal = _Orders()
    clients = [InProcessVenue(v.name, profile.instruments, latency_ns=v.latency_us * 1000)
               for v in profile.venues]
    kernel = Kernel(profile, market_venues=venues, sources=[source], venues=clients,
                    ids=ClOrdIds("T", 1), journal=journal, strategies=[s])
    now, end = t0 - lead_ns, t0 + 13_000_000_000
    kernel.start(now)
    while now < end:
        now = max(now + 1, min(kernel.step(now), end))
    kernel.stop(now)
    return s, journal.rows


def test_two_starts_before_the_same_market_choose_the_same_pairs_and_send_the_same_orders(
        market):
    profile, root = market
    # starts off the grid, at different phases of it (a window from on_start would sample
    # 0.63 and 0.77 of a sample_ms into each interval: different mids)
    a, orders_a = _session(profile, root, 370_000_000)
    b, orders_b = _session(profile, root, 1_230_000_000)
    for s in (a, b):
        assert s.formations == 1 and s.window_start_ns % SAMPLE_NS == 0
    assert a.window_start_ns == b.window_start_ns
    assert len(a.selection) == 2
    assert [(p.a, p.b, p.beta, p.p_value) for p in a.selection] == \
        [(p.a, p.b, p.beta, p.p_value) for p in b.selection]
    assert a.counts["entries"] >= 2 and len(orders_a) >= 8
    assert orders_a == orders_b
    assert a.figures() == b.figures()


def test_formation_waits_for_a_book_then_samples_on_the_grid():
    market = TwoBooks()
    ctx = StrategyContext("pairs", market, lambda *a: "no", lambda c, n: None,
                          lambda lvl, text, i: None)
    s = PairsStrategy(PairsConfig(pairs=(("AAA", "BBB"),), formation_s=2.0), "pairs")
    t = 5 * SAMPLE_NS + 12_345
    s.on_start(ctx, t)  # no book yet: it looks again at the next sample instant
    assert s.next_timer_ns() == 6 * SAMPLE_NS and s.formations == 0
    s.on_timer(ctx, 6 * SAMPLE_NS)
    assert s.next_timer_ns() == 7 * SAMPLE_NS
    market.quote_ticks(0, 5000)
    s.on_book(ctx, np.array([0]), 6 * SAMPLE_NS + 7)  # the first sound book
    assert s.next_timer_ns() == 7 * SAMPLE_NS  # the first sample instant after it
    assert s.window_start_ns == 7 * SAMPLE_NS
    s.on_timer(ctx, 7 * SAMPLE_NS + 40_000)  # a late turn samples, and stays on the grid
    assert s.next_timer_ns() == 8 * SAMPLE_NS


def test_a_given_pair_whose_b_never_moved_in_the_window_still_gets_a_model():
    """B sat on its ticks through the formation (no slope to fit): the Kalman filter starts
    from β = 0 with a wide prior instead of NaN (which would never trade), and learns."""
    from engine.strategy import pairs_kernel as K

    market = TwoBooks()
    quote = market.quote_ticks
    ctx = StrategyContext("pairs", market, lambda *a: "no", lambda c, n: None,
                          lambda lvl, text, i: None)
    s = PairsStrategy(PairsConfig(pairs=(("AAA", "BBB"),), formation_s=2.0), "pairs")
    quote(1, 5000)
    quote(0, 10000)
    t = 10 * SAMPLE_NS
    s.on_start(ctx, t)
    for k in range(20):
        quote(0, 10000 + (k % 3))
        t = s.next_timer_ns()
        s.on_timer(ctx, t)
    assert s.pairs and np.isfinite(s.sf[0]).all()
    assert s.sf[0, K.F_BETA] == 0.0
    for k in range(1, 40):  # now B moves, A follows at twice its moves
        quote(1, 5000 + k)
        quote(0, 10000 + 2 * k)
        s.on_book(ctx, np.array([0, 1]), t + k * SAMPLE_NS)
    assert np.isfinite(s.sf[0]).all() and s.sf[0, K.F_BETA] > 0.5
