"""The simulated market: how often its consolidated book is crossed or locked, and its pairs.

    python -m bench.market [--quick] [--profile PATH] [--seconds S]

The demo profile's simulated venues (``engine.node.sim_source``, as the engine builds them)
run into the engine's own market-data stage (``MarketData``: the books the desk, the router
and the strategies read) for an hour of market time (``--quick``: 60 s); every instrument's
consolidated BBO (best bid over all venues, best ask over all venues) is sampled once per
10 ms, at a seeded random instant within each 10 ms (``engine.backtest.synth.sample_market``
says why not on a fixed grid). No engine process: market time is simply stepped.

- ``crossed_pct`` / ``locked_pct``: the worst instrument's share of samples with best bid >
  best ask / best bid == best ask; targets ≤ 0.5 % and ≤ 5 % (a reference price is missing
  while the book is either: ``BookSet.bbo_ok``).
- per instrument (``market_instruments``): crossed and locked %, and the mean consolidated
  spread in ticks.
- per pair (``market_pairs``): the configured hedge ratio, half-life and spread next to the
  fitted ones (``fit_pair`` on the mids every 5 s: the slope of an OLS of b on a; the AR(1)
  half-life and the standard deviation of the spread b − beta·a at the configured beta).
  The quick run's 60 s hold a minute's half-life once: read the full run's hour.
- ``market_events_per_s``: the venues' events per second of market time, and
  ``market_requotes_per_s`` of them re-quotes forced by the fair value leaving a quote.

The figures are a deterministic function of the profile and its seed, not timings: the same
run gives the same numbers on any machine. A missed target prints MISS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench._common import Table, emit_json, progress, verdict
from engine.backtest.synth import fit_pair, sample_market
from engine.core.paths import demo_profile_path
from engine.core.profile import load_profile

TARGET_CROSSED_PCT = 0.5
TARGET_LOCKED_PCT = 5.0
INTERVAL_MS = 10.0
FIT_EVERY = 500  # samples: pairs are fitted on the mids every 5 s (fit_pair says why)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.market", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="60 s of market time, not an hour")
    p.add_argument("--profile", type=Path, default=None, help="default: the demo profile")
    p.add_argument("--seconds", type=float, default=None, help="market time to run")
    args = p.parse_args(argv)
    path = args.profile or demo_profile_path()
    profile = load_profile(path)
    seconds = args.seconds or (60.0 if args.quick else 3600.0)
    venues = list(profile.feed.venues)

    progress(f"{seconds:g} s of {path.name}'s simulated venues ({', '.join(venues)}), "
             f"sampled every {INTERVAL_MS:g} ms")
    t0 = time.perf_counter()
    s = sample_market(profile, seconds, interval_ms=INTERVAL_MS, seed=profile.feed.seed)
    wall = time.perf_counter() - t0
    crossed, locked, spread = s.crossed_pct(), s.locked_pct(), s.spread_ticks()

    index = {sym: k for k, sym in enumerate(s.symbols)}
    prices = {i.symbol: i.price for i in profile.instruments}
    mids = s.mids()[::FIT_EVERY]
    pairs: dict[str, dict[str, float]] = {}
    for q in profile.feed.pairs:
        a, b = mids[:, index[q.a]], mids[:, index[q.b]]
        ok = np.isfinite(a) & np.isfinite(b)
        beta = q.hedge_ratio(prices[q.a], prices[q.b])
        beta_fit, hl_fit, sd = fit_pair(a[ok], b[ok], INTERVAL_MS * FIT_EVERY / 1e3, beta)
        pairs[f"{q.a}/{q.b}"] = {
            "beta": round(beta, 6),
            "beta_fit": round(beta_fit, 6),
            "half_life_s": q.half_life_s,
            "half_life_fit_s": round(hl_fit, 2),
            "spread_bp": q.spread_bp,
            "spread_fit_bp": round(sd / prices[q.b] * 1e4, 2),
        }

    f: dict[str, object] = {
        "crossed_pct": round(float(crossed.max()), 3),
        "locked_pct": round(float(locked.max()), 3),
        "market_seconds": seconds,
        "market_samples": len(s.t_ns),
        "market_events_per_s": round(s.events / seconds, 1),
        "market_requotes_per_s": round(s.requotes / seconds, 1),
        "market_instruments": {
            sym: {"crossed_pct": round(float(crossed[k]), 3),
                  "locked_pct": round(float(locked[k]), 3),
                  "spread_ticks": round(float(spread[k]), 3)}
            for k, sym in enumerate(s.symbols)},
        "market_pairs": pairs,
    }
    t = Table(f"Helmdesk simulated market ({'quick' if args.quick else 'full'}): {path.name}, "
              f"{seconds:g} s of market time, {len(venues)} venues, seed {profile.feed.seed}, "
              f"Python {sys.version.split()[0]}")
    t.section(f"consolidated BBO, {len(s.t_ns):,} samples per instrument (one per "
              f"{INTERVAL_MS:g} ms, at a random instant)")
    for k, sym in enumerate(s.symbols):
        t.add(f"{sym} crossed / locked / mean spread",
              f"{crossed[k]:.2f} % / {locked[k]:.2f} % / {spread[k]:.2f} ticks")
    t.add("crossed_pct (worst instrument)", f"{f['crossed_pct']:.2f} %",
          f"≤ {TARGET_CROSSED_PCT:g} %",
          verdict(f["crossed_pct"], TARGET_CROSSED_PCT, higher_is_better=False))
    t.add("locked_pct (worst instrument)", f"{f['locked_pct']:.2f} %",
          f"≤ {TARGET_LOCKED_PCT:g} %",
          verdict(f["locked_pct"], TARGET_LOCKED_PCT, higher_is_better=False))
    if pairs:
        t.section("pairs: configured vs fitted (mids every 5 s)")
        for name, q in pairs.items():
            t.add(f"{name} hedge ratio (OLS of b on a)", f"{q['beta']:.4f} vs {q['beta_fit']:.4f}")
            t.add(f"{name} spread half-life (AR(1))",
                  f"{q['half_life_s']:g} s vs {q['half_life_fit_s']:.1f} s")
            t.add(f"{name} spread sd", f"{q['spread_bp']:g} bp vs {q['spread_fit_bp']:.1f} bp")
    t.section("the venues")
    t.add("events per second of market time (forced re-quotes of them)",
          f"{f['market_events_per_s']:,.0f} ({f['market_requotes_per_s']:,.0f})")
    t.add("records applied to the books", f"{s.records:,}")
    t.add("wall time of the run", f"{wall:.1f} s")
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
