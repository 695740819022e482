"""The simulated market as a whole: the profile's venues through the engine's market-data
stage. Its consolidated book is rarely locked and almost never crossed, its pairs have the
hedge ratio, half-life and spread their profile sets, and a synthetic universe of any size
behaves the same. Every figure here is a function of the seeds, not of timing."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.synth import fit_pair, sample_market, simulate_day, universe_profile_text
from engine.core.paths import demo_profile_path
from engine.core.profile import load_profile

PAIRS = """
[engine]
instance = "pairs"

[feed]
kind = "simvenues"
venues = ["SIMA", "SIMB"]
seed = 5
pairs = [
    { a = "AAA", b = "BBB", beta = 0.8, half_life_s = 15, spread_bp = 10 },
    { a = "CCC", b = "DDD", beta = 5.0, half_life_s = 40, spread_bp = 6 },
]

[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0
update_hz = 20

[[instruments]]
symbol = "BBB"
tick = 0.01
price = 50.0
update_hz = 20

[[instruments]]
symbol = "CCC"
tick = 0.01
price = 40.0
update_hz = 20

[[instruments]]
symbol = "DDD"
tick = 0.05
price = 300.0
update_hz = 20
"""


def test_the_demo_market_is_rarely_crossed_or_locked():
    profile = load_profile(demo_profile_path())
    s = sample_market(profile, 60.0, interval_ms=10.0, seed=profile.feed.seed)
    assert len(s.t_ns) == 6000 and s.two_sided.all()
    crossed, locked = s.crossed_pct(), s.locked_pct()
    for k, sym in enumerate(s.symbols):
        assert crossed[k] <= 0.5, (sym, crossed[k])
        assert locked[k] <= 5.0, (sym, locked[k])
    # ... and not by quoting wide: the venues' two-tick quotes overlap into 1-2 ticks
    assert (s.spread_ticks() < 2.0).all(), s.spread_ticks()
    assert s.requotes > 0 and s.events > 60 * 4 * 3 * 50  # drawn events, and forced ones
    # the same profile, the same market
    again = sample_market(profile, 60.0, interval_ms=10.0, seed=profile.feed.seed)
    assert np.array_equal(again.bid, s.bid) and np.array_equal(again.ask, s.ask)


def test_a_pair_has_its_configured_hedge_ratio_half_life_and_spread(tmp_path):
    path = tmp_path / "pairs.toml"
    path.write_text(PAIRS)
    profile = load_profile(path)
    s = sample_market(profile, 3600.0, interval_ms=100.0, seed=1)
    mids = s.mids()[::50]  # every 5 s (fit_pair: tick noise biases finer samples)
    assert np.isfinite(mids).all()
    got = {}
    for (a, b), pair in zip(((0, 1), (2, 3)), profile.feed.pairs):
        beta, _, _ = fit_pair(mids[:, a], mids[:, b], 5.0)  # OLS of b on a, over the hour
        _, half_life, sd = fit_pair(mids[:, a], mids[:, b], 5.0, pair.beta)
        got[pair.b] = (beta, half_life, sd / profile.instruments[b].price * 1e4)
        # Bounds from the estimator's scatter, not this seed's luck: over seeds 1 to 10 the
        # fits of this setup fell within ±10 % (beta), 0.55-1.3 × (half-life) and ±25 % (sd)
        assert abs(beta / pair.beta - 1) < 0.15, (pair, got[pair.b])
        assert 0.5 < half_life / pair.half_life_s < 2.0, (pair, got[pair.b])
        assert 0.7 < got[pair.b][2] / pair.spread_bp < 1.4, (pair, got[pair.b])
    assert got["BBB"][1] < got["DDD"][1]  # the configured half-lives, in order


def test_a_synthetic_universe(tmp_path):
    text = universe_profile_text(40, 20, ("SIMA", "SIMB", "SIMC"), seed=3)
    assert text == universe_profile_text(40, 20, ("SIMA", "SIMB", "SIMC"), seed=3)
    assert text != universe_profile_text(40, 20, ("SIMA", "SIMB", "SIMC"), seed=4)
    path = tmp_path / "u.toml"
    path.write_text(text)
    profile = load_profile(path)
    assert [i.symbol for i in profile.instruments] == [f"S{k:04d}" for k in range(40)]
    assert profile.feed.venues == ("SIMA", "SIMB", "SIMC")
    pairs = profile.feed.pairs
    legs = [p.a for p in pairs] + [p.b for p in pairs]
    assert len(pairs) == 20 and len(set(legs)) == 40  # disjoint legs
    assert len({round(p.beta, 3) for p in pairs}) == 20  # various hedge ratios...
    assert len({p.half_life_s for p in pairs}) > 10  # ... half-lives and spreads
    assert all(30 <= p.half_life_s <= 600 and 2 <= p.spread_bp <= 20 for p in pairs)
    s = sample_market(profile, 20.0, interval_ms=10.0)
    assert s.crossed_pct().max() <= 0.5 and s.locked_pct().max() <= 5.0
    assert simulate_day(profile, tmp_path / "ticks", "2026-11-23", 1.0) > 40 * 3 * 50


@pytest.mark.parametrize("args, match", [
    ((10, 6), "n_pairs must be 0..5"),
    ((0, 0), "n_instruments must be 1..4096"),
    ((4, 1, ()), "need 1..16 venues"),
])
def test_a_synthetic_universe_refuses_what_no_profile_could_hold(args, match):
    with pytest.raises(ValueError, match=match):
        universe_profile_text(*args)
