"""Backtest figures: the engine's kernel over a recorded day, on one core.

    python -m bench.backtest [--quick]

A day is recorded first (``engine.backtest.synth.simulate_day``: the simulated venues of a
profile, every event written to a tick store in a temporary folder), then replayed by the
backtest node — the same ``Kernel`` the live engine runs, with a ``ReplaySource``, in-process
simulated venues (``InProcessVenue``: FIX encoded and decoded in memory, latency on the
simulated clock) and the report journal:

- ``backtest_replay_events_per_s``: records replayed per second of wall time, no orders
  (kernel + books + venues); target ≥ 5,000,000 /s.
- ``backtest_scripted_events_per_s``: the same with one scripted order per 1,000 records
  (marketable IOC orders at a venue and through the smart order router); target ≥ 2,000,000 /s.
- ``kernel_idle_step_p50_us``: one ``Kernel.step`` with nothing due (the backtest's kernel,
  after its day); target ≤ 2 µs.
- ``backtest_replay_events_per_s_with_load``: the same, counting the load and merge of the
  day's files (the rates above start once the day is in memory, as hftbacktest's do).
- ``books_apply_events_per_s``: the books alone (``apply_batch`` over the same records in
  batches of the kernel's size), measured in the same run: what the kernel adds on top.

Timings are the best of three runs (wall-clock rates on a shared 2-core machine only go down
when the machine is busy); each run's output is checked to be the same.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import Table, emit_json, fmt_rate, percentiles_us, progress, verdict

DAY = "2026-11-23"
TARGET_REPLAY = 5_000_000
TARGET_SCRIPTED = 2_000_000
TARGET_IDLE_US = 2.0


def _profile(tmp: Path, n_instruments: int, venues: list[str]) -> Path:
    lines = ['[engine]\ninstance = "benchbt"\n', '[feed]\nkind = "simvenues"',
             f"venues = {venues!r}".replace("'", '"'), "seed = 3", ""]
    for k in range(n_instruments):
        lines += ["[[instruments]]", f'symbol = "S{k:03d}"', "tick = 0.01",
                  f"price = {50 + k % 200}.0", "update_hz = 50", ""]
    for k, v in enumerate(venues):
        lines += ["[[venues]]", f'name = "{v}"', 'kind = "sim"', f"latency_us = {100 + 50 * k}",
                  f"fee_bps = {0.2 * k:.1f}", ""]
    p = tmp / "bench-backtest.toml"
    p.write_text("\n".join(lines))
    return p


def _intents(path: Path, records: np.ndarray, symbols: list[str], venues: list[str],
             every: int) -> int:
    """One marketable IOC order per ``every`` records, at the records' times."""
    t0 = int(records["recv_ns"][0])
    rows = ["time,symbol,side,qty,price,venue,tif"]
    rng = np.random.default_rng(11)
    for n, k in enumerate(range(every, len(records), every)):
        t = (int(records["recv_ns"][k]) - t0) / 1e9
        sym = symbols[int(records["instrument"][k])]
        side = "buy" if rng.random() < 0.5 else "sell"
        venue = "*" if n % 2 else venues[n // 2 % len(venues)]
        rows.append(f"{t:.9f},{sym},{side},{100 * (1 + n % 3)},MKT,{venue},ioc")
    path.write_text("\n".join(rows) + "\n")
    return len(rows) - 1


def _run(profile, root: Path, out: Path, intents: Path | None):
    """(result, node, seconds including loading and merging the day from the tick store)."""
    from engine.backtest.node import BacktestNode

    t = time.perf_counter()
    node = BacktestNode(profile, DAY, out=out, ticks_dir=root, intents=intents, progress=False)
    r = node.run()
    return r, node, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.backtest",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smaller day: a smoke run")
    args = p.parse_args(argv)

    from engine.backtest.synth import simulate_day
    from engine.book.books import BookSet, apply_batch
    from engine.core.profile import load_profile

    n_instruments, venues = (50, ["SIMA", "SIMB"]) if args.quick else (200, ["SIMA", "SIMB", "SIMC", "SIMD"])
    seconds = 20.0 if args.quick else 120.0
    f: dict = {}
    with tempfile.TemporaryDirectory(prefix="helmdesk-bench-backtest-") as d:
        tmp = Path(d)
        prof_path = _profile(tmp, n_instruments, venues)
        profile = load_profile(prof_path)
        root = tmp / "ticks"
        progress(f"recording a day: {n_instruments} instruments × {len(venues)} venues, "
                 f"{seconds:g} s of market time")
        t = time.perf_counter()
        n = simulate_day(profile, root, DAY, seconds)
        f["backtest_day_records"] = n
        progress(f"{n:,} records in {time.perf_counter() - t:.1f} s")

        progress("replay, no orders (best of 3)")
        runs = [_run(profile, root, tmp / f"replay{k}", None) for k in range(3)]
        best = max(runs, key=lambda x: x[0].events_per_s)
        f["backtest_replay_events_per_s"] = round(best[0].events_per_s)
        f["backtest_replay_s"] = round(best[0].seconds, 3)
        f["backtest_replay_events_per_s_with_load"] = round(n / min(r[2] for r in runs))
        node = best[1]
        records = node.records

        progress("one scripted order per 1,000 records (best of 3)")
        intents = tmp / "intents.csv"
        f["backtest_scripted_orders"] = _intents(intents, records, [i.symbol for i in profile.instruments],
                                                 venues, 1000)
        sruns = [_run(profile, root, tmp / f"scripted{k}", intents) for k in range(3)]
        sbest = max(sruns, key=lambda x: x[0].events_per_s)
        f["backtest_scripted_events_per_s"] = round(sbest[0].events_per_s)
        f["backtest_scripted_fills"] = sbest[0].summary["executions"]
        same = len({(tmp / f"scripted{k}" / "executions.csv").read_bytes() for k in range(3)}) == 1
        f["backtest_deterministic"] = same

        progress("books alone over the same records")
        books = BookSet(len(venues), n_instruments)
        cap = node.kernel.market.buf.capacity
        t = time.perf_counter()
        for a in range(0, len(records), cap):
            apply_batch(books, records[a:a + cap])
        f["books_apply_events_per_s"] = round(len(records) / (time.perf_counter() - t))

        progress("idle kernel steps")
        kernel = node.kernel
        now = node.t_end + 10
        kernel.step(now)
        samples = np.empty(20_000, dtype=np.int64)
        clock = time.perf_counter_ns
        step = kernel.step
        for k in range(len(samples)):
            t0 = clock()
            step(now)
            samples[k] = clock() - t0
        overhead = min(clock() - clock() for _ in range(1000))
        pc = percentiles_us(samples - overhead)
        f["kernel_idle_step_p50_us"] = round(pc["p50"], 3)
        f["kernel_idle_step_p99_us"] = round(pc["p99"], 3)

    f["backtest_replay_vs_books_ratio"] = round(
        f["backtest_replay_events_per_s"] / f["books_apply_events_per_s"], 3)
    t = Table(f"Helmdesk backtest bench ({'quick' if args.quick else 'full'}), "
              f"Python {sys.version.split()[0]}")
    t.section(f"a recorded day: {f['backtest_day_records']:,} records, {n_instruments} "
              f"instruments × {len(venues)} venues, in-process venues, one core")
    t.add("replay through the kernel, no orders (backtest_replay_events_per_s)",
          fmt_rate(f["backtest_replay_events_per_s"]), f"≥ {TARGET_REPLAY:,} /s",
          verdict(f["backtest_replay_events_per_s"], TARGET_REPLAY, higher_is_better=True))
    t.add(f"with {f['backtest_scripted_orders']:,} scripted IOC orders, 1 per 1,000 records "
          f"(backtest_scripted_events_per_s)", fmt_rate(f["backtest_scripted_events_per_s"]),
          f"≥ {TARGET_SCRIPTED:,} /s",
          verdict(f["backtest_scripted_events_per_s"], TARGET_SCRIPTED, higher_is_better=True))
    t.add("same, counting the day's load and merge from the tick store",
          fmt_rate(f["backtest_replay_events_per_s_with_load"]))
    t.add("fills in the scripted run; three runs byte-identical",
          f"{f['backtest_scripted_fills']:,}; {'yes' if f['backtest_deterministic'] else 'NO'}")
    t.add("books alone, same records and batches (books_apply_events_per_s)",
          fmt_rate(f["books_apply_events_per_s"]))
    t.add("kernel replay / books alone", f"{f['backtest_replay_vs_books_ratio']:.2f}")
    t.section("kernel step with nothing due")
    t.add("kernel_idle_step_p50_us / p99", f"{f['kernel_idle_step_p50_us']:.2f} / "
          f"{f['kernel_idle_step_p99_us']:.2f} µs", f"p50 ≤ {TARGET_IDLE_US} µs",
          verdict(f["kernel_idle_step_p50_us"], TARGET_IDLE_US, higher_is_better=False))
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
