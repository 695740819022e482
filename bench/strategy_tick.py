"""The pairs strategy's per-tick cost: one ``on_book`` for one changed instrument.

    python -m bench.strategy_tick [--quick]

500 pairs over 1,000 instruments (disjoint pairs, each a random walk and a leg that follows it
with a mean-reverting spread), one venue's ``BookSet`` whose consolidated bid/ask the script
sets directly, 200,000 ticks each moving one instrument's quote (about 50 Hz an instrument in
market time, so each pair learns a sample every ``sample_ms``). Each tick is timed with
``perf_counter_ns`` around ``PairsStrategy.on_book(ctx, [i], now)``: the compiled kernel's
call through its bound entry point, the pair's Kalman prediction and (when a sample is due)
update, the decision, and the Python handling of any action (orders are refused here, so the
pair backs off: the refusal path is timed too). The same stream's first ticks then go through
the kernel's plain-Python reference (``compiled=False``) for the ratio.

``measure_strategy_tick(...)`` returns the figures (bench/strategy.py calls it); run alone the
script prints a table and, last, one JSON line with ``strategy_tick_p99_us`` (target ≤ 20 µs).
Nothing here is tuned to pass; a missed target prints MISS.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from bench._common import Table, emit_json, percentiles_us, verdict
from engine.book.books import BookSet
from engine.strategy.api import StrategyContext
from engine.strategy.pairs import PairsConfig, PairsStrategy

__all__ = ["measure_strategy_tick"]

TARGET_P99_US = 20.0
_TICK = 0.01


class _Instrument:
    __slots__ = ("symbol",)

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol


class _Market:
    """What a strategy reads of the market-data stage: the books, ticks, decimals, names."""

    def __init__(self, n: int) -> None:
        self.books = BookSet(1, n, depth=1, start_stale=False)
        self.ticks = [_TICK] * n
        self.decimals = [2] * n
        self.instruments = [_Instrument(f"S{i:04d}") for i in range(n)]


class _Stream:
    """Pairs (2p, 2p+1): 2p a random walk, 2p+1 = beta·P(2p) + c + an AR(1) spread."""

    def __init__(self, n_pairs: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.x = rng.uniform(20, 200, n_pairs)
        self.beta = rng.uniform(0.5, 2.0, n_pairs)
        self.c = rng.uniform(5, 50, n_pairs)
        self.s = np.zeros(n_pairs)
        self.sd = 0.02 * self.x  # the spread's stationary sd: 2 % of the price
        self.phi = 0.995

    def mids(self) -> np.ndarray:
        out = np.empty(2 * len(self.x))
        out[0::2] = self.x
        out[1::2] = self.beta * self.x + self.c + self.s
        return out

    def all_step(self) -> None:
        n = len(self.x)
        self.x += self.rng.normal(0, 0.001, n) * self.x
        self.s = self.phi * self.s + self.rng.normal(0, 1, n) * self.sd * np.sqrt(1 - self.phi ** 2)

    def plan(self, n_ticks: int, n_inst: int) -> tuple[np.ndarray, np.ndarray]:
        """Which instrument each tick moves, and a standard normal draw for it."""
        return (self.rng.integers(0, n_inst, n_ticks).astype(np.int64),
                self.rng.normal(0, 1, n_ticks))


def _set(books: BookSet, i, mid) -> None:
    m = np.rint(np.asarray(mid) / _TICK).astype(np.int64)
    books.bbo["bid_px"][i] = m - 1
    books.bbo["ask_px"][i] = m + 1
    books.bbo["bid_sz"][i] = 100
    books.bbo["ask_sz"][i] = 100
    books.bbo["flags"][i] = 0


def _run(n_pairs: int, n_inst: int, ticks: int, compiled: bool, seed: int,
         formation_samples: int, spacing_ns: int) -> tuple[np.ndarray, PairsStrategy]:
    market = _Market(n_inst)
    books = market.books
    refused = [0]

    def submit(_intent, _now, _source):
        refused[0] += 1
        return "bench: orders are not sent"

    now = [0]
    ctx = StrategyContext("pairs", market, submit, lambda _c, _n: None,
                          lambda _lvl, _text, _inst: None, lambda: now[0])
    legs = tuple((f"S{2 * p + 1:04d}", f"S{2 * p:04d}") for p in range(n_pairs))
    cfg = PairsConfig(pairs=legs, formation_s=formation_samples * 0.1, sample_ms=100,
                      cooldown_s=1.0)
    s = PairsStrategy(cfg, "pairs", compiled=compiled)
    stream = _Stream(n_pairs, seed)
    t = 1_700_000_000_000_000_000
    _set(books, np.arange(2 * n_pairs), stream.mids())
    now[0] = t
    s.on_start(ctx, t)
    while s._call is None:  # formation: every instrument sampled on the strategy's timer
        t = s.next_timer_ns()
        stream.all_step()
        _set(books, np.arange(2 * n_pairs), stream.mids())
        now[0] = t
        s.on_timer(ctx, t)
    which, draws = stream.plan(ticks, 2 * n_pairs)
    one = np.zeros(1, dtype=np.int64)
    bid, ask = books.bbo["bid_px"], books.bbo["ask_px"]
    x, beta, c, sp, sd, phi = stream.x, stream.beta, stream.c, stream.s, stream.sd, stream.phi
    k_ou = float(np.sqrt(1 - phi ** 2))
    out = np.empty(ticks, dtype=np.int64)
    clock = time.perf_counter_ns
    on_book = s.on_book
    gc.collect()
    gc.disable()
    try:
        for k in range(ticks):
            i = int(which[k])
            p = i >> 1
            if i & 1:  # the follower: its spread moves
                sp[p] = phi * sp[p] + draws[k] * sd[p] * k_ou
                mid = beta[p] * x[p] + c[p] + sp[p]
            else:
                x[p] *= 1.0 + 0.001 * draws[k]
                mid = x[p]
            m = int(round(mid / _TICK))
            bid[i], ask[i] = m - 1, m + 1
            one[0] = i
            t += spacing_ns
            now[0] = t
            t0 = clock()
            on_book(ctx, one, t)
            out[k] = clock() - t0
            if t >= s.next_timer_ns():  # legs' timers, as the host would
                s.on_timer(ctx, t)
    finally:
        gc.enable()
    s.bench_refused = refused[0]
    return out, s


def measure_strategy_tick(n_pairs: int = 500, n_instruments: int = 1000, *,
                          ticks: int = 200_000, python_ticks: int = 20_000, seed: int = 1,
                          formation_samples: int = 50) -> dict:
    """Per-tick ``on_book`` percentiles (µs), compiled and the Python reference, and the
    ratio. ``n_instruments`` must be ``2 × n_pairs`` (disjoint pairs cover them)."""
    if n_instruments != 2 * n_pairs:
        raise ValueError(f"disjoint pairs: n_instruments must be 2 × n_pairs, was "
                         f"{n_instruments} for {n_pairs} pairs")
    spacing = 1_000_000_000 // (50 * n_instruments)  # 50 Hz an instrument
    fast, s = _run(n_pairs, n_instruments, ticks, True, seed, formation_samples, spacing)
    slow, _ = _run(n_pairs, n_instruments, python_ticks, False, seed, formation_samples,
                   spacing)
    f, p = percentiles_us(fast), percentiles_us(slow)
    clock = time.perf_counter_ns
    timer = np.array([clock() - clock() for _ in range(20_000)])  # t1 - t2 < 0: negated below
    figures = {
        "strategy_tick_p50_us": round(f["p50"], 3),
        "strategy_tick_p99_us": round(f["p99"], 3),
        "strategy_tick_p99_9_us": round(f["p99.9"], 3),
        "strategy_tick_mean_us": round(f["mean"], 3),
        "strategy_tick_python_p50_us": round(p["p50"], 3),
        "strategy_tick_python_p99_us": round(p["p99"], 3),
        "strategy_tick_speedup_p50": round(p["p50"] / f["p50"], 1) if f["p50"] else None,
        "strategy_tick_speedup_p99": round(p["p99"] / f["p99"], 1) if f["p99"] else None,
        "strategy_tick_timer_us": round(float(np.median(-timer)) / 1e3, 3),
        "strategy_tick_pairs": n_pairs,
        "strategy_tick_instruments": n_instruments,
        "strategy_tick_ticks": ticks,
        "strategy_tick_python_ticks": python_ticks,
        "strategy_tick_actions": int(s.counts["entries"] + s.counts["too_small"]
                                     + s.counts["aborted"] + s.bench_refused),
        "strategy_tick_samples": int(s.si[:, 2].sum()),
    }
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer ticks")
    args = ap.parse_args()
    ticks, pticks = (50_000, 5_000) if args.quick else (200_000, 20_000)
    f = measure_strategy_tick(ticks=ticks, python_ticks=pticks)
    t = Table("pairs strategy: one on_book for one changed instrument "
              f"({f['strategy_tick_pairs']} pairs, {f['strategy_tick_instruments']} instruments)")
    t.section(f"compiled kernel ({f['strategy_tick_ticks']:,} ticks)")
    t.add("p50", f"{f['strategy_tick_p50_us']:.2f} us")
    t.add("p99", f"{f['strategy_tick_p99_us']:.2f} us", f"<= {TARGET_P99_US:g} us",
          verdict(f["strategy_tick_p99_us"], TARGET_P99_US, higher_is_better=False))
    t.add("p99.9", f"{f['strategy_tick_p99_9_us']:.2f} us")
    t.add("mean", f"{f['strategy_tick_mean_us']:.2f} us")
    t.section(f"plain-Python reference ({f['strategy_tick_python_ticks']:,} ticks)")
    t.add("p50", f"{f['strategy_tick_python_p50_us']:.2f} us")
    t.add("p99", f"{f['strategy_tick_python_p99_us']:.2f} us")
    t.section("ratio (reference / compiled)")
    t.add("p50", f"{f['strategy_tick_speedup_p50']:g} x")
    t.add("p99", f"{f['strategy_tick_speedup_p99']:g} x")
    t.section("context")
    t.add("perf_counter_ns pair", f"{f['strategy_tick_timer_us']:.3f} us")
    t.add("model samples learnt", f"{f['strategy_tick_samples']:,}")
    t.add("orders asked (refused here)", f"{f['strategy_tick_actions']:,}")
    print(t.render())
    emit_json(f)


if __name__ == "__main__":
    main()
