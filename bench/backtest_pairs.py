"""A pairs backtest end to end, on one core, against a plain-Python loop over the same records.

    python -m bench.backtest_pairs [--quick]

The market: ``engine.backtest.synth.universe_profile_text`` — 1,000 instruments ``S0000``…
(prices log-uniform in 10–500, a cent tick, quoted by two simulated venues at 50 updates a
second each, plus the re-quotes the moving price forces), of which 500 disjoint pairs are
cointegrated (``[feed] pairs``: S0001 follows S0000, …; half-lives 5–60 s, spreads 2–20 bp).
``simulate_day`` records a day of it (30 s of market time; ``--quick``: 10 s) into a tick
store in a temporary folder: some 450,000 events a second of market time.

The run: the backtest node (``engine.backtest.node.BacktestNode``, as ``helmdesk backtest``
runs it, logging at ERROR) replays the day through the live engine's kernel — books, the
pairs strategy trading those 500 explicit pairs (Kalman hedge, a 5 s formation; ``--quick``
3 s), the risk engine's checks, the OMS, the smart order router, and two in-process simulated
venues (FIX encoded and decoded in memory, latency on the simulated clock, the recorded books
mirrored into their matching engines). Its parameters (entry at |z| 1.5, a 3 s cooldown) give
about one order per 1,000 events; the actual ratio is printed.

- ``backtest_pairs_events_per_s``: events replayed per second of wall time of the run
  (``BacktestResult.seconds``: from the kernel's start to its stop, the day already in memory),
  median of three runs; each run's ``orders.csv`` is checked to be the same. Target
  2,500,000 /s (hftbacktest does 2.6 M/s, NautilusTrader 180–250 k/s on these machines).
- ``backtest_pairs_orders``, ``backtest_pairs_events``, ``backtest_pairs_orders_per_event``.
- ``backtest_pairs_vs_python``: that rate over the rate of a plain-Python reference loop run in
  the same process over the same records (``python_reference``): what a quant would write by
  hand without our engine. Per record, in pure Python over lists: the venue's L2 book of the
  instrument (lists of prices and sizes by level: NEW inserts, CHANGE sets, DELETE removes,
  CLEAR empties), and when level 0 moved, the instrument's consolidated best bid and ask over
  the venues; when those changed and are sound, the z-score of each pair touching the
  instrument (the same Kalman prediction as the strategy, learning at most once per
  ``sample_ms``, state initialised from the strategy's own formation), and a flat / long /
  short signal at the same thresholds. It sends no orders, so it does less than the run: no
  risk, OMS, router or venues. The records are handed to it as Python lists, 65,536 at a
  time, converted outside its timing (its "day in memory"); its final consolidated books are
  checked against the engine's.
- ``backtest_pairs_untraded_events_per_s``: the same run with thresholds no z reaches (the
  strategy forms, learns and decides on every book, and never sends: the engine without its
  order path, like the reference), median of three; ``backtest_pairs_untraded_vs_python``,
  its ratio to the reference. The two rates together say what the orders cost.

``measure_backtest_pairs(...)`` returns the figures (bench/strategy.py runs this script as
its part ``backtest_pairs``).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import Table, emit_json, fmt_count, fmt_rate, progress, verdict

__all__ = ["measure_backtest_pairs", "python_reference", "main"]

DAY = "2026-11-23"
TARGET_EVENTS_PER_S = 2_500_000
N_INSTRUMENTS = 1000
N_PAIRS = 500
VENUES = ("SIMA", "SIMB")
CHUNK = 65_536

STRATEGY = """
[[strategies]]
name = "pairs"
kind = "pairs"
pairs = [{pairs}]
formation_s = {formation_s}
sample_ms = 100
entry_z = {entry_z}
exit_z = 0.3
stop_z = {stop_z}
cooldown_s = 3.0
notional = 10000.0
"""

VENUES_AND_LIMITS = """
[[venues]]
name = "SIMA"
kind = "sim"
latency_us = 100
fee_bps = 0.2

[[venues]]
name = "SIMB"
kind = "sim"
latency_us = 150
fee_bps = 0.2

[limits]
max_orders_per_s = 1000000
max_messages_per_s = 1000000
runaway_orders_per_s = 1000000
duplicate_window_ms = 0
max_open_orders = 100000
max_position = 1000000
"""


def _profile(tmp: Path, formation_s: float, trading: bool = True) -> Path:
    """The universe, its two venues, limits wide enough that nothing is refused (the figure
    is throughput, not risk's verdicts: a refusal would be counted, not hidden), and the
    pairs strategy on the 500 cointegrated pairs (A = the follower, regressed on its
    leader); ``trading`` False: thresholds no z reaches (it forms, learns, decides, never
    sends)."""
    from engine.backtest.synth import universe_profile_text

    text = universe_profile_text(N_INSTRUMENTS, N_PAIRS, VENUES, seed=7, instance="benchpairs",
                                 update_hz=50.0, half_life_range_s=(5.0, 60.0))
    pairs = ", ".join(f'["S{2 * k + 1:04d}", "S{2 * k:04d}"]' for k in range(N_PAIRS))
    text += VENUES_AND_LIMITS + STRATEGY.format(
        pairs=pairs, formation_s=formation_s, entry_z=1.5 if trading else 99.0,
        stop_z=6.0 if trading else 999.0)
    path = tmp / f"bench-backtest-pairs{'' if trading else '-untraded'}.toml"
    path.write_text(text)
    return path


def _run(profile, root: Path, out: Path):
    from engine.backtest.node import BacktestNode

    node = BacktestNode(profile, DAY, out=out, ticks_dir=root, progress=False)
    r = node.run()
    (s,) = node.kernel.strategies.strategies
    return r, node, s, (out / "orders.csv").read_bytes()


# -- THE PLAIN-PYTHON REFERENCE ----------------------------------------------------------------
def python_reference(records: np.ndarray, n_instruments: int, n_venues: int, depth: int,
                     ticks, legs, stats, start_ns: int, sample_ns: int, delta: float,
                     entry_z: float, exit_z: float, stop_z: float) -> dict:
    """The hand-written loop (module docstring) over ``records``; its figures and its
    consolidated books. ``legs``: (A, B) instrument indices per pair; ``stats``: the
    strategy's ``PairStats`` per pair (its formation), which initialise the Kalman states as
    the strategy's ``_setup`` does; z is computed from ``start_ns`` (the formation's end)."""
    from engine.core.events import ASK, CHANGE, CLEAR, DELETE, NEW, QUOTE

    bid_px = [[[0] * depth for _ in range(n_instruments)] for _ in range(n_venues)]
    bid_sz = [[[0] * depth for _ in range(n_instruments)] for _ in range(n_venues)]
    ask_px = [[[0] * depth for _ in range(n_instruments)] for _ in range(n_venues)]
    ask_sz = [[[0] * depth for _ in range(n_instruments)] for _ in range(n_venues)]
    best_bid = [0] * n_instruments
    best_ask = [0] * n_instruments
    venues = range(n_venues)
    tick = [float(t) for t in ticks]
    pairs_of: list[list[int]] = [[] for _ in range(n_instruments)]
    for p, (a, b) in enumerate(legs):
        pairs_of[a].append(p)
        pairs_of[b].append(p)
    leg_a = [a for a, _ in legs]
    leg_b = [b for _, b in legs]
    q = delta / (1.0 - delta)
    alpha, beta, p00, p01, p11, obs, qa, qb, xm = [], [], [], [], [], [], [], [], []
    for p, s in enumerate(stats):
        ta = tick[leg_a[p]]
        s2 = max(s.resid_var, ta * ta / 12.0)
        alpha.append(s.alpha + s.beta * s.x_mean)
        beta.append(s.beta)
        p00.append(s2 / s.n)
        p01.append(0.0)
        p11.append(s2 / max(s.x_var * s.n, 1e-12))
        obs.append(s2)
        qa.append(q * s2)
        qb.append(q * s2 / max(s.x_mean * s.x_mean, 1e-12))
        xm.append(s.x_mean)
    n_pairs = len(legs)
    last = [start_ns] * n_pairs
    state = [0] * n_pairs
    z_of = [0.0] * n_pairs
    updates = signals = 0
    sqrt = math.sqrt
    seconds = 0.0
    cols = ("kind", "venue", "side", "action", "level", "instrument", "recv_ns", "price", "size")
    for at in range(0, len(records), CHUNK):
        chunk = records[at:at + CHUNK]
        rows = zip(*[chunk[c].tolist() for c in cols])  # the day in memory, as Python
        t0 = time.perf_counter()
        for kind, v, side, action, level, i, t, price, size in rows:
            if kind != QUOTE:
                continue  # trades and status change no top of book
            if side == ASK:
                px, sz = ask_px[v][i], ask_sz[v][i]
            else:
                px, sz = bid_px[v][i], bid_sz[v][i]
            if action == NEW:
                px.insert(level, price)
                px.pop()
                sz.insert(level, size)
                sz.pop()
            elif action == CHANGE:
                px[level] = price
                sz[level] = size
            elif action == DELETE:
                del px[level]
                px.append(0)
                del sz[level]
                sz.append(0)
            elif action == CLEAR:
                px[:] = [0] * depth
                sz[:] = [0] * depth
                level = 0
            if level != 0:
                continue
            b = 0
            a = 0
            for w in venues:
                vb = bid_px[w][i][0]
                if vb > b:
                    b = vb
                va = ask_px[w][i][0]
                if va and (a == 0 or va < a):
                    a = va
            if b == best_bid[i] and a == best_ask[i]:
                continue
            best_bid[i] = b
            best_ask[i] = a
            if t < start_ns or b == 0 or a == 0 or b >= a:
                continue
            for p in pairs_of[i]:
                ia, ib = leg_a[p], leg_b[p]
                ba, aa, bb, ab = best_bid[ia], best_ask[ia], best_bid[ib], best_ask[ib]
                if ba == 0 or aa == 0 or ba >= aa or bb == 0 or ab == 0 or bb >= ab:
                    continue
                y = (ba + aa) * 0.5 * tick[ia]
                x = (bb + ab) * 0.5 * tick[ib]
                xc = x - xm[p]
                e = y - (alpha[p] + beta[p] * xc)
                s00 = p00[p] + qa[p]
                s01 = p01[p]
                s11 = p11[p] + qb[p]
                var = s00 + 2.0 * xc * s01 + xc * xc * s11 + obs[p]
                z = e / sqrt(var)
                if t - last[p] >= sample_ns:
                    k0 = (s00 + xc * s01) / var
                    k1 = (s01 + xc * s11) / var
                    alpha[p] += k0 * e
                    beta[p] += k1 * e
                    p00[p] = s00 - k0 * k0 * var
                    p01[p] = s01 - k0 * k1 * var
                    p11[p] = s11 - k1 * k1 * var
                    last[p] = t
                z_of[p] = z
                updates += 1
                st = state[p]
                if st == 0:
                    if -stop_z < z <= -entry_z:
                        state[p] = 1
                        signals += 1
                    elif entry_z <= z < stop_z:
                        state[p] = -1
                        signals += 1
                elif st > 0 and (z >= -exit_z or z <= -stop_z):
                    state[p] = 0
                    signals += 1
                elif st < 0 and (z <= exit_z or z >= stop_z):
                    state[p] = 0
                    signals += 1
        seconds += time.perf_counter() - t0
    return {"seconds": seconds, "updates": updates, "signals": signals,
            "best_bid": best_bid, "best_ask": best_ask}


# -- THE MEASUREMENT -----------------------------------------------------------------------------
def measure_backtest_pairs(*, quick: bool = False, seconds: float | None = None,
                           runs: int = 3) -> dict:
    """Record the day, run the backtest ``runs`` times and the reference once; the figures
    (module docstring), medians over the runs."""
    from engine.backtest.synth import simulate_day
    from engine.core.profile import load_profile

    logging.basicConfig(level=logging.ERROR, format="bench.backtest_pairs: %(message)s")
    seconds = seconds or (10.0 if quick else 30.0)
    formation_s = 3.0 if quick else 5.0
    f: dict = {}
    with tempfile.TemporaryDirectory(prefix="helmdesk-bench-pairs-") as d:
        tmp = Path(d)
        profile = load_profile(_profile(tmp, formation_s))
        root = tmp / "ticks"
        progress(f"recording a day: {N_INSTRUMENTS} instruments ({N_PAIRS} cointegrated "
                 f"pairs) × {len(VENUES)} venues, {seconds:g} s of market time")
        t = time.perf_counter()
        n = simulate_day(profile, root, DAY, seconds)
        progress(f"{n:,} records in {time.perf_counter() - t:.1f} s")
        results = []
        for k in range(runs):
            progress(f"backtest with the pairs strategy, run {k + 1} of {runs}")
            r, node, s, orders = _run(profile, root, tmp / f"run{k}")
            results.append((r, s, orders))
            progress(f"{r.records:,} events in {r.seconds:.2f} s: "
                     f"{r.records / r.seconds:,.0f} /s, {s.counts['orders']:,} orders")
        quiet = load_profile(_profile(tmp, formation_s, trading=False))
        untraded = []
        for k in range(runs):
            progress(f"the same, the strategy never trading, run {k + 1} of {runs}")
            q, *_ = _run(quiet, root, tmp / f"untraded{k}")
            untraded.append(q.records / q.seconds)
        progress("the plain-Python reference loop over the same records")
        records = node.records
        s = results[0][1]
        books = node.kernel.market.books
        ref = python_reference(
            records, N_INSTRUMENTS, len(VENUES), books.depth, node.kernel.market.ticks,
            [(int(a), int(b)) for a, b in zip(s.leg_a, s.leg_b)], s.selection,
            s.window_start_ns + (s.config.formation_samples - 1) * s.config.sample_ms * 1_000_000,
            s.config.sample_ms * 1_000_000, s.config.delta, s.config.entry_z,
            s.config.exit_z, s.config.stop_z)
        bbo = books.bbo
        same_books = (ref["best_bid"] == bbo["bid_px"].tolist()
                      and ref["best_ask"] == bbo["ask_px"].tolist())
    rates = [r.records / r.seconds for r, _, _ in results]
    k = rates.index(statistics.median(rates)) if runs % 2 else 0
    r, s, _ = results[k]
    c = s.counts
    rate = statistics.median(rates)
    py_rate = r.records / ref["seconds"]
    f["backtest_pairs_events_per_s"] = round(rate)
    f["backtest_pairs_events"] = r.records
    f["backtest_pairs_s"] = round(r.seconds, 3)
    f["backtest_pairs_orders"] = c["orders"]
    f["backtest_pairs_orders_per_event"] = round(c["orders"] / max(r.records, 1), 6)
    f["backtest_pairs_fills"] = r.summary["executions"]
    f["backtest_pairs_entries"] = c["entries"]
    f["backtest_pairs_exits"] = c["exits"] + c["stops"] + c["time_stops"]
    f["backtest_pairs_legging"] = c["legging"]
    f["backtest_pairs_refused"] = c["refused"]
    f["backtest_pairs_deterministic"] = len({o for _, _, o in results}) == 1
    f["backtest_pairs_instruments"] = N_INSTRUMENTS
    f["backtest_pairs_pairs"] = len(s.pairs)
    f["backtest_pairs_market_s"] = seconds
    f["backtest_pairs_python_events_per_s"] = round(py_rate)
    f["backtest_pairs_python_z_updates"] = ref["updates"]
    f["backtest_pairs_python_signals"] = ref["signals"]
    f["backtest_pairs_python_books_match"] = same_books
    f["backtest_pairs_vs_python"] = round(rate / py_rate, 2)
    f["backtest_pairs_untraded_events_per_s"] = round(statistics.median(untraded))
    f["backtest_pairs_untraded_vs_python"] = round(statistics.median(untraded) / py_rate, 2)
    return f


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.backtest_pairs",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a shorter day: a smoke run")
    args = p.parse_args(argv)
    f = measure_backtest_pairs(quick=args.quick)
    t = Table(f"Helmdesk pairs backtest bench ({'quick' if args.quick else 'full'}), "
              f"Python {sys.version.split()[0]}")
    t.section(f"a recorded day: {f['backtest_pairs_events']:,} events, "
              f"{f['backtest_pairs_market_s']:g} s of {f['backtest_pairs_instruments']:,} "
              f"instruments × {len(VENUES)} venues; the pairs strategy on "
              f"{f['backtest_pairs_pairs']} pairs, risk, OMS, router, in-process venues, one core")
    t.add("events replayed per second of wall time (backtest_pairs_events_per_s)",
          fmt_rate(f["backtest_pairs_events_per_s"]), f"≥ {TARGET_EVENTS_PER_S:,} /s",
          verdict(f["backtest_pairs_events_per_s"], TARGET_EVENTS_PER_S, higher_is_better=True))
    t.add("run (median of 3); three runs' orders identical",
          f"{f['backtest_pairs_s']:.2f} s; "
          f"{'yes' if f['backtest_pairs_deterministic'] else 'NO'}")
    t.add("orders / fills / refused",
          f"{fmt_count(f['backtest_pairs_orders'])} / {fmt_count(f['backtest_pairs_fills'])} / "
          f"{fmt_count(f['backtest_pairs_refused'])}")
    t.add("entries / exits and stops / legging",
          f"{fmt_count(f['backtest_pairs_entries'])} / {fmt_count(f['backtest_pairs_exits'])} / "
          f"{fmt_count(f['backtest_pairs_legging'])}")
    t.add("orders per 1,000 events", f"{1000 * f['backtest_pairs_orders_per_event']:.2f}")
    t.section("the plain-Python reference loop, same records, same process")
    t.add("events per second", fmt_rate(f["backtest_pairs_python_events_per_s"]))
    t.add("pair z updates / signals",
          f"{fmt_count(f['backtest_pairs_python_z_updates'])} / "
          f"{fmt_count(f['backtest_pairs_python_signals'])}")
    t.add("its final consolidated books = the engine's",
          "yes" if f["backtest_pairs_python_books_match"] else "NO")
    t.add("backtest / reference (backtest_pairs_vs_python)",
          f"{f['backtest_pairs_vs_python']:.2f} x")
    t.section("the same backtest, the strategy never trading (no order path)")
    t.add("events per second (backtest_pairs_untraded_events_per_s)",
          fmt_rate(f["backtest_pairs_untraded_events_per_s"]))
    t.add("its rate / the reference's (backtest_pairs_untraded_vs_python)",
          f"{f['backtest_pairs_untraded_vs_python']:.2f} x")
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
