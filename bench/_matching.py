"""Matching engine figures: requests per second and per-request latency on a realistic flow.

    python -m bench._matching [--quick]

The flow is seeded and made in a first, untimed pass that watches the book it builds (so
cancels and replaces name live orders and aggressive prices sit at the touch):

- ~60 % passive limit orders (DAY), a few ticks either side of the touch;
- ~25 % aggressive: limits priced through the touch (DAY, IOC or FOK) and market orders,
  big enough to take one to a few resting orders, so the book moves and fills happen;
- ~15 % cancels (~11 %) and cancel/replaces (~4 %: smaller, bigger, or moved) of live orders,
  plus a few cancels of orders that already went (rejected, as real cancel races are).

The timed passes replay that exact request stream on fresh engines (same requests, same
reports: the fill count is checked) and drain the reports every 1,024 requests as a venue
would. Figures count every request (submit, cancel, replace) as one "order" message; the
fill count is the number of matches (each gives two fill reports). Latency is
``time.perf_counter_ns`` around each request of one whole pass (the timer's own cost is
reported beside it). ``gc`` stays on, after ``gc.freeze()``, as in the engine; a pass with it
off shows what the collector costs.

Target (set by the issue): >= 500,000 orders/s in plain CPython. A miss prints MISS; nothing
here is tuned to pass.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from typing import Any

from bench._common import Table, emit_json, fmt_count, fmt_rate, progress, verdict
from engine.venue.matching import ExecKind, MatchingEngine, OrdType, TimeInForce

TARGET_ORDERS_PER_S = 500_000.0
SEED = 20261123
CHUNK = 1024  # requests between two drains of the report list

_FINISHED = (ExecKind.FILL, ExecKind.CANCELLED)


def make_flow(n: int, seed: int = SEED) -> tuple[list[tuple[str, tuple]], dict[str, Any]]:
    """``n`` requests as ``(method name, args)``, made against a live engine; and flow stats."""
    rng = random.Random(seed)
    rand, randint = rng.random, rng.randint
    eng = MatchingEngine()
    reports = eng.reports
    live: list[int] = []  # live order ids, with their positions for O(1) removal
    pos: dict[int, int] = {}
    gone: list[int] = []  # a few recently finished ids, for late cancels

    def drop(oid: int) -> None:
        i = pos.pop(oid)
        last = live.pop()
        if last != oid:
            live[i] = last
            pos[last] = i

    ops: list[tuple[str, tuple]] = []
    kinds = dict.fromkeys(("passive", "cross_limit", "market", "cancel", "replace",
                           "late_cancel"), 0)
    kinds["sweeps"] = 0  # aggressive orders sized to take 2-4 levels (counted above too)
    mid = 10_000
    next_id = 1
    depth_samples: list[int] = []
    for i in range(n):
        bb, ba = eng.best_bid(), eng.best_ask()
        if bb is not None and ba is not None:
            mid = (bb + ba) // 2
        r = rand()
        ts = i * 1000
        if r < 0.60 or not live:
            side = 1 if rand() < 0.5 else 2
            off = min(int(rng.expovariate(0.35)), 40)  # ticks behind the touch (or the mid)
            if side == 1:
                px = (bb if bb is not None else mid - 1) - off
                if ba is not None and px >= ba:
                    px = ba - 1
            else:
                px = (ba if ba is not None else mid + 1) + off
                if bb is not None and px <= bb:
                    px = bb + 1
            qty = rng.choice((1, 2, 5, 10, 10, 20, 25, 50, 100))
            args: tuple = (next_id, f"c{randint(0, 7)}", side, qty, max(1, px), OrdType.LIMIT,
                           TimeInForce.DAY, ts)
            kinds["passive"] += 1
            op = "submit"
        elif r < 0.85:
            side = 1 if rand() < 0.5 else 2
            owner = f"c{randint(0, 7)}"
            # size by what is shown: mostly a small share of the touch, now and then a sweep
            if rand() < 0.05:
                share, bids, asks = rng.uniform(0.5, 1.2), *eng.book_depth(randint(2, 4))
                kinds["sweeps"] += 1
            else:
                share, bids, asks = rng.uniform(0.01, 0.1), *eng.book_depth(1)
            qty = max(1, int(share * sum(lv[1] for lv in (asks if side == 1 else bids))))
            if r < 0.75:
                through = randint(0, 2)
                if side == 1:
                    px = (ba if ba is not None else mid + 1) + through
                else:
                    px = (bb if bb is not None else mid - 1) - through
                u = rand()
                tif = (TimeInForce.DAY if u < 0.5 else TimeInForce.IOC if u < 0.9
                       else TimeInForce.FOK)
                args = (next_id, owner, side, qty, max(1, px), OrdType.LIMIT, tif, ts)
                kinds["cross_limit"] += 1
            else:
                tif = TimeInForce.FOK if rand() < 0.1 else TimeInForce.IOC
                args = (next_id, owner, side, qty, None, OrdType.MARKET, tif, ts)
                kinds["market"] += 1
            op = "submit"
        elif r < 0.96:
            if gone and rand() < 0.05:
                args = (gone[randint(0, len(gone) - 1)], ts)
                kinds["late_cancel"] += 1
            else:
                args = (live[randint(0, len(live) - 1)], ts)
                kinds["cancel"] += 1
            op = "cancel"
        else:
            oid = live[randint(0, len(live) - 1)]
            _, side, px, qty, leaves, cum = eng.order(oid)
            u = rand()
            if u < 0.5:  # smaller: keeps its place
                args = (oid, max(cum + 1, qty - randint(1, max(1, leaves // 2))), px, ts)
            elif u < 0.75:  # bigger: loses it
                args = (oid, qty + randint(1, 20), px, ts)
            else:  # moved a tick or two
                step = randint(1, 2) * (1 if rand() < 0.5 else -1)
                args = (oid, qty, max(1, px + step), ts)
            kinds["replace"] += 1
            op = "replace"
        ops.append((op, args))
        getattr(eng, op)(*args)
        if op == "submit":
            next_id += 1
        for rep in reports:
            if rep[0] in _FINISHED and rep[1] in pos:
                drop(rep[1])
                gone.append(rep[1])
        if op == "submit" and eng.order(args[0]) is not None:
            pos[args[0]] = len(live)
            live.append(args[0])
        if len(gone) > 256:
            del gone[:128]
        reports.clear()
        if i % 1000 == 0:
            depth_samples.append(len(eng))
    bids, asks = eng.book_depth(10_000)
    stats = {
        "kinds": kinds,
        "live_orders_mean": statistics.fmean(depth_samples),
        "live_orders_end": len(eng),
        "levels_end": (len(bids), len(asks)),
    }
    return ops, stats


def bind(ops: list[tuple[str, tuple]]) -> tuple[MatchingEngine, list[tuple[Any, tuple]]]:
    eng = MatchingEngine()
    return eng, [(getattr(eng, name), args) for name, args in ops]


def count_fills(reports: list) -> int:
    # a match gives two fill reports, the aggressor's first
    return sum(1 for r in reports if r[0] == ExecKind.FILL or r[0] == ExecKind.PARTIAL_FILL) // 2


def timed_pass(ops: list[tuple[str, tuple]], gc_on: bool) -> tuple[float, int]:
    """One pass over the stream on a fresh engine: (requests per second, fills)."""
    eng, calls = bind(ops)
    reports = eng.reports
    chunks = [calls[i:i + CHUNK] for i in range(0, len(calls), CHUNK)]
    fills = 0
    is_fill = (ExecKind.FILL, ExecKind.PARTIAL_FILL)
    gc.collect()
    gc.freeze()
    if not gc_on:
        gc.disable()
    elapsed = 0
    clock = time.perf_counter_ns
    try:
        for chunk in chunks:
            t0 = clock()
            for f, a in chunk:
                f(*a)
            elapsed += clock() - t0
            # counting is the bench's business, not the engine's: outside the timing
            fills += sum(1 for r in reports if r[0] in is_fill)
            t0 = clock()
            reports.clear()
            elapsed += clock() - t0
    finally:
        gc.enable()
        gc.unfreeze()
    return len(calls) / (elapsed / 1e9), fills // 2


def latency_pass(ops: list[tuple[str, tuple]]) -> tuple[list[int], int]:
    """Per-request ``perf_counter_ns`` deltas over one pass; and the timer's own cost."""
    eng, calls = bind(ops)
    reports = eng.reports
    clock = time.perf_counter_ns
    out = [0] * len(calls)
    gc.collect()
    gc.freeze()
    try:
        i = 0
        for f, a in calls:
            t0 = clock()
            f(*a)
            out[i] = clock() - t0
            i += 1
            if len(reports) > CHUNK:
                reports.clear()
    finally:
        gc.unfreeze()
    empty = [0] * 100_000
    for j in range(len(empty)):
        t0 = clock()
        empty[j] = clock() - t0
    return out, int(statistics.median(empty))


def pct(samples: list[int], p: float) -> int:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def run(quick: bool) -> dict[str, Any]:
    """Measure; return the figures (units in the key names)."""
    n = 100_000 if quick else 1_000_000
    runs = 1 if quick else 3
    progress(f"making a {n:,}-request flow (seed {SEED})")
    t0 = time.perf_counter()
    ops, stats = make_flow(n)
    made_s = time.perf_counter() - t0
    rates, fills_seen = [], set()
    for k in range(runs):
        progress(f"timed pass {k + 1}/{runs}, gc on")
        rate, fills = timed_pass(ops, gc_on=True)
        rates.append(rate)
        fills_seen.add(fills)
    progress("timed pass, gc off")
    rate_gc_off, fills = timed_pass(ops, gc_on=False)
    fills_seen.add(fills)
    assert len(fills_seen) == 1, f"passes over the same stream differ: {fills_seen} fills"
    progress("latency pass")
    lat, timer_ns = latency_pass(ops)
    kinds = stats["kinds"]
    submits = kinds["passive"] + kinds["cross_limit"] + kinds["market"]
    rate = statistics.median(rates)
    return {
        "matching_orders_per_s": round(rate),
        "matching_orders_per_s_best": round(max(rates)),
        "matching_orders_per_s_gc_off": round(rate_gc_off),
        "matching_order_p50_ns": pct(lat, 50),
        "matching_order_p99_ns": pct(lat, 99),
        "matching_order_p999_ns": pct(lat, 99.9),
        "matching_timer_overhead_ns": timer_ns,
        "matching_requests": n,
        "matching_submits": submits,
        "matching_fills": fills_seen.pop(),
        "matching_live_orders_mean": round(stats["live_orders_mean"]),
        "_kinds": kinds,
        "_levels_end": stats["levels_end"],
        "_runs": [round(r) for r in rates],
        "_made_s": made_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._matching",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100k requests, one timed pass")
    args = p.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})  # as the engine and a venue run: one core of their own
    fig = run(args.quick)
    kinds, n = fig.pop("_kinds"), fig["matching_requests"]
    levels, runs = fig.pop("_levels_end"), fig.pop("_runs")
    made_s = fig.pop("_made_s")
    t = Table(f"matching engine, one instrument, {n:,} requests (seed {SEED}), "
              f"Python {sys.version.split()[0]}, CPU {cpus[-1]}")
    t.section("flow")
    sweeps = kinds.pop("sweeps")
    for k, v in kinds.items():
        t.add(f"{k.replace('_', ' ')} requests", f"{fmt_count(v)} ({100 * v / n:.1f} %)")
    t.add("aggressive ones sized to sweep 2-4 levels", fmt_count(sweeps))
    t.add("fills (matches)", fmt_count(fig["matching_fills"]))
    t.add("live orders, mean", fmt_count(fig["matching_live_orders_mean"]))
    t.add("levels at the end (bid / ask)", f"{levels[0]} / {levels[1]}")
    t.add("flow made in (untimed)", f"{made_s:.1f} s")
    t.section("throughput (every request counts: submit, cancel, replace)")
    t.add("orders/s, gc on (median)", fmt_rate(fig["matching_orders_per_s"]),
          f">= {fmt_rate(TARGET_ORDERS_PER_S)}",
          verdict(fig["matching_orders_per_s"], TARGET_ORDERS_PER_S, higher_is_better=True))
    if len(runs) > 1:
        t.add("orders/s, each pass", ", ".join(fmt_count(r) for r in runs))
    submits_per_s = fig["matching_orders_per_s"] * fig["matching_submits"] / n
    t.add("of which submits/s", fmt_rate(submits_per_s))
    t.add("orders/s, gc off", fmt_rate(fig["matching_orders_per_s_gc_off"]))
    t.section("latency per request (perf_counter_ns around the call)")
    t.add("p50", f"{fig['matching_order_p50_ns']:,} ns")
    t.add("p99", f"{fig['matching_order_p99_ns']:,} ns")
    t.add("p99.9", f"{fig['matching_order_p999_ns']:,} ns")
    t.add("timer overhead (included above)", f"{fig['matching_timer_overhead_ns']:,} ns")
    print(t.render())
    emit_json(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
