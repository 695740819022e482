"""Pair selection: the Engle–Granger statistic and MacKinnon p-value against statsmodels, the
half-life, and the choice of the cointegrated pairs out of a universe of random walks."""

from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest

from engine.strategy.selection import (
    SELECTION_COLUMNS,
    engle_granger,
    half_life,
    mackinnon_crit,
    mackinnon_p,
    pair_stats,
    select_pairs,
    write_selection_csv,
)


def _ou(rng, n, phi, sd=1.0):
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = phi * s[t - 1] + rng.normal(0, sd)
    return s


def _series(kind, n, seed):
    """(y, x): cointegrated with white noise, with an AR(1) spread, or two random walks."""
    rng = np.random.default_rng(seed)
    x = 100 + np.cumsum(rng.normal(0, 1, n))
    if kind == "white":
        return 5 + 1.5 * x + rng.normal(0, 1, n), x
    if kind == "ar1":
        return 3 + 0.7 * x + _ou(rng, n, 0.9), x
    if kind == "slow":  # barely mean-reverting: p-values in the middle of the range
        return 20 + x + _ou(rng, n, 0.98, 2.0), x
    return 50 + np.cumsum(rng.normal(0, 1, n)), x


CASES = [(kind, n, seed) for kind in ("white", "ar1", "slow", "walks")
         for n, seed in ((60, 1), (250, 2), (1000, 3))]


@pytest.mark.parametrize("kind,n,seed", CASES)
def test_statistic_p_value_and_critical_values_agree_with_statsmodels(kind, n, seed):
    stattools = pytest.importorskip("statsmodels.tsa.stattools")
    y, x = _series(kind, n, seed)
    got = engle_granger(y, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stat, p, crit = stattools.coint(y, x)
    assert got.stat == pytest.approx(stat, rel=1e-9)
    assert got.p_value == pytest.approx(p, rel=1e-8, abs=1e-12)
    np.testing.assert_allclose(got.crit, crit, rtol=1e-12)
    if n >= 250:  # long enough for the test to tell them apart
        if kind == "walks":
            assert got.p_value > 0.05
        elif kind in ("white", "ar1"):
            assert got.p_value < 0.01


@pytest.mark.parametrize("lag", [0, 1, 4])
def test_a_fixed_lag_agrees_with_statsmodels_too(lag):
    stattools = pytest.importorskip("statsmodels.tsa.stattools")
    y, x = _series("ar1", 300, 11)
    got = engle_granger(y, x, lag=lag)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stat, p, _crit = stattools.coint(y, x, maxlag=lag, autolag=None)
    assert got.lag == lag
    assert got.stat == pytest.approx(stat, rel=1e-9)
    assert got.p_value == pytest.approx(p, rel=1e-8, abs=1e-12)


def test_mackinnon_surface_across_its_range():
    adfvalues = pytest.importorskip("statsmodels.tsa.adfvalues")
    for t in np.linspace(-20, 2, 221):
        want = adfvalues.mackinnonp(t, regression="c", N=2)
        assert mackinnon_p(float(t)) == pytest.approx(want, rel=1e-10, abs=1e-15), t
    for nobs in (20, 99, 500, 10_000):
        np.testing.assert_allclose(mackinnon_crit(nobs),
                                   adfvalues.mackinnoncrit(N=2, regression="c", nobs=nobs))
    # the figures a desk reads: the 5 % value at 100 samples, the p-value at it
    assert mackinnon_crit(99)[1] == pytest.approx(-3.3985, abs=1e-4)
    assert mackinnon_p(-3.3985) == pytest.approx(0.0425, abs=1e-4)  # asymptotic


def test_half_life_of_an_ar1_spread():
    rng = np.random.default_rng(5)
    phi = 0.95  # half-life ln 2 / -ln 0.95 = 13.5 samples
    s = _ou(rng, 20_000, phi)
    assert half_life(s, 0.1) == pytest.approx(-math.log(2) / math.log(phi) * 0.1, rel=0.05)
    assert half_life(np.cumsum(np.ones(50)), 1.0) == math.inf  # trending: never reverts


def _universe(seed, n=600, walks=24):
    """Random walks, and four cointegrated pairs among them (columns 0/1, 2/3, 4/5, 6/7)."""
    rng = np.random.default_rng(seed)
    prices = 100 + np.cumsum(rng.normal(0, 0.5, (n, walks)), axis=0)
    for a, b, beta in ((1, 0, 1.0), (3, 2, 0.5), (5, 4, 2.0), (7, 6, 1.2)):
        prices[:, a] = 10 + beta * prices[:, b] + _ou(rng, n, 0.8, 0.4)
    prices += 200 - prices.min()  # positive
    return prices, [f"S{k:02d}" for k in range(walks)]


def test_selection_picks_the_cointegrated_pairs_out_of_random_walks(tmp_path):
    prices, symbols = _universe(9)
    sel = select_pairs(prices, symbols, sample_s=0.1, max_pairs=10, p_value=0.01,
                       candidates=4, min_corr=0.0)
    got = {frozenset((s.a, s.b)) for s in sel.chosen}
    want = {frozenset(p) for p in (("S00", "S01"), ("S02", "S03"), ("S04", "S05"),
                                    ("S06", "S07"))}
    assert want <= got
    assert len(got - want) <= 1  # a spurious pass at 1 % among many tests, at most one
    assert [s.p_value for s in sel.chosen] == sorted(s.p_value for s in sel.chosen)
    assert sel.tested < len(symbols) * (len(symbols) - 1) // 2  # preselection pruned
    s03 = next(s for s in sel.chosen if {s.a, s.b} == {"S02", "S03"})
    beta = s03.beta if s03.a == "S03" else 1 / s03.beta
    assert beta == pytest.approx(0.5, rel=0.1)
    assert 0 < s03.half_life_s < 2  # AR(1) phi 0.8: 3.1 samples of 0.1 s
    # what the statistics of a chosen pair say is what statsmodels says
    stattools = pytest.importorskip("statsmodels.tsa.stattools")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stat, p, _ = stattools.coint(prices[:, s03.ia], prices[:, s03.ib])
    assert (s03.adf_stat, s03.p_value) == (pytest.approx(stat, rel=1e-9),
                                           pytest.approx(p, rel=1e-8, abs=1e-12))
    path = write_selection_csv(tmp_path / "selection.csv", sel.chosen)
    rows = list(csv.reader(path.open()))
    assert tuple(rows[0]) == SELECTION_COLUMNS
    assert len(rows) == 1 + len(sel.chosen)
    assert rows[1][0:2] == [sel.chosen[0].a, sel.chosen[0].b]
    assert float(rows[1][5]) == pytest.approx(sel.chosen[0].p_value, rel=1e-9)


def test_disjoint_legs_and_max_pairs():
    prices, symbols = _universe(4)
    prices[:, 8] = 7 + prices[:, 0] + np.random.default_rng(1).normal(0, 0.3, len(prices))
    both = select_pairs(prices, symbols, sample_s=1, p_value=0.01, min_corr=0.0,
                        disjoint=False)
    got = {frozenset((s.a, s.b)) for s in both.chosen}
    # S01 and S08 both follow S00: three pairs over three instruments ...
    assert {frozenset(p) for p in (("S00", "S01"), ("S00", "S08"), ("S01", "S08"))} <= got
    one = select_pairs(prices, symbols, sample_s=1, p_value=0.01, min_corr=0.0)
    legs = [x for s in one.chosen for x in (s.a, s.b)]
    assert len(legs) == len(set(legs))  # ... disjoint: each instrument once
    two = select_pairs(prices, symbols, sample_s=1, p_value=0.01, min_corr=0.0, max_pairs=2)
    assert [(s.a, s.b) for s in two.chosen] == [(s.a, s.b) for s in one.chosen[:2]]


def test_constant_or_incomplete_instruments_are_left_out():
    prices, symbols = _universe(2, n=200, walks=10)
    prices[:, 9] = 123.0
    prices[50, 8] = np.nan
    sel = select_pairs(prices, symbols, sample_s=1, p_value=0.05, min_corr=0.0)
    assert sel.excluded == ("S08", "S09")
    assert all({"S08", "S09"}.isdisjoint((s.a, s.b)) for s in sel.chosen)


def test_given_pairs_are_tested_as_given():
    prices, symbols = _universe(3, n=300, walks=8)
    got = pair_stats(prices, symbols, [(1, 0), (0, 2)], sample_s=0.5)
    assert [(s.a, s.b) for s in got] == [("S01", "S00"), ("S00", "S02")]
    assert got[0].p_value < 0.01 < got[1].p_value
    assert got[0].beta == pytest.approx(1.0, rel=0.05)


def test_degenerate_windows_never_raise_and_the_rest_of_the_batch_is_tested():
    """Prices that sat on their ticks through a short window (a $10 stock over 2 s): a
    constant leg, a residual that never moves twice in a row, an exact line. The engine
    tests the given pairs at the end of every formation: none of these may raise."""
    rng = np.random.default_rng(5)
    n = 20
    x = 50 + np.cumsum(rng.normal(0, 0.05, n))
    good_y = 1.5 * x + rng.normal(0, 0.02, n)
    steps = np.full(n, 10.0)
    steps[12:] = 10.01  # one tick, once: every lagged difference but one is zero
    prices = np.column_stack([good_y, x, np.full(n, 10.0), steps, 2 * x + 1, np.full(n, 3.0)])
    names = ["Y", "X", "FLAT", "STEP", "LINE", "FLAT2"]
    got = pair_stats(prices, names, [(0, 1), (2, 1), (3, 1), (4, 1), (0, 5)], sample_s=0.1)
    assert [(s.a, s.b) for s in got] == [("Y", "X"), ("FLAT", "X"), ("STEP", "X"),
                                         ("LINE", "X"), ("Y", "FLAT2")]
    assert math.isfinite(got[0].adf_stat) and 0 <= got[0].p_value <= 1
    assert got[3].adf_stat == -math.inf  # an exact line: as cointegrated as it gets
    assert math.isnan(got[4].beta) and math.isnan(got[4].p_value)  # x never moved: no slope
    # before, one of these made numpy raise "Singular matrix" and the whole batch was lost
    assert all(isinstance(s.adf_stat, float) for s in got[1:3])
