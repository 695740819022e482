"""Order throughput of a backtest: the market maker requoting on nearly every book event.

    python -m bench.orders [--quick]

A day is recorded first (``engine.backtest.synth.simulate_day``: the simulated venues of a
profile, every event written to a tick store in a temporary folder), then replayed by the
backtest node — the same ``Kernel`` the live engine runs, with in-process simulated venues
(``InProcessVenue``: FIX encoded and decoded in memory, the recorded book mirrored into the
matching engine, the queue model filling resting orders) — with one strategy: the market
maker (``engine.strategy.marketmaker``) quoting every instrument on one venue, one tick either
side of the consolidated mid with ``requote_ticks = 1`` and a skew of 1 tick a lot, so that a
move of the touch or a fill moves its quotes: each requote is a cancel and a new order for
each side that moved, through the risk engine's checks, the OMS, FIX both ways, the matching
engine, and the execution reports back.

- ``backtest_orders_per_s``: orders the strategy submitted (and the risk engine let through)
  per second of wall time of the run, end to end (replay, books, strategy, risk, OMS, venue,
  reports); target ≥ 100,000 /s.
- ``backtest_orders_events_per_s``: recorded events replayed per second in the same run.
- ``backtest_resting_events_per_s``: the same day with ``requote_ticks`` so large that the
  quotes rest while the market moves (requoted only after a fill): the market-data path of a
  venue with resting orders, whose recorded book it mirrors at every move.
- ``backtest_orders_cancels``, ``backtest_orders_fills``: the cancels the strategy sent and
  the fills it got; ``backtest_orders_refused``: its orders the risk engine refused (0: the
  limits are set wide so that nothing is refused; a refusal would be counted, not hidden).

The run is timed as the backtest node times it (``BacktestResult.seconds``: from the first
step to the end of the run, the day already in memory). The median of three runs is reported
(the machine is shared); each run's orders are checked to be the same.

``measure_orders(...)`` returns the figures (bench/strategy.py runs this script).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench._common import Table, emit_json, fmt_count, fmt_rate, progress, verdict

__all__ = ["measure_orders", "main"]

DAY = "2026-11-23"
TARGET_ORDERS_PER_S = 100_000
#: instruments priced here, a tick 0.01: the efficient price moves ~10 ticks per √s, so the
#: venues re-quote their touch many times a second (engine.feeds.simvenues)
PRICE = 500
#: ``requote_ticks`` of the second configuration: the quotes rest while the market moves
#: (requoted only after a fill), which measures the market-data path with resting orders
RESTING_TICKS = 10_000


def _profile(tmp: Path, n_instruments: int, venues: list[str], queue_model: str,
             requote_ticks: int = 1) -> Path:
    """The recorded market's profile, the one venue the market maker quotes on, limits wide
    enough that no order is refused (the figure is throughput, not risk's verdicts)."""
    lines = ['[engine]\ninstance = "benchorders"\n', '[feed]\nkind = "simvenues"',
             f"venues = {venues!r}".replace("'", '"'), "seed = 7", ""]
    for k in range(n_instruments):
        lines += ["[[instruments]]", f'symbol = "S{k:03d}"', "tick = 0.01",
                  f"price = {PRICE + 10 * k}.0", "update_hz = 100", ""]
    lines += ["[[venues]]", f'name = "{venues[0]}"', 'kind = "sim"', "latency_us = 100",
              "fee_bps = 0.2", f'queue_model = "{queue_model}"', ""]
    lines += ["[limits]", "max_orders_per_s = 1000000", "max_messages_per_s = 1000000",
              "runaway_orders_per_s = 1000000", "duplicate_window_ms = 0",
              "max_open_orders = 100000", ""]
    lines += ["[[strategies]]", 'name = "mm"', 'kind = "marketmaker"', f'venue = "{venues[0]}"',
              "half_spread_ticks = 1", "size = 10", "max_position = 100",
              "skew_ticks_per_lot = 1.0", f"requote_ticks = {requote_ticks}", ""]
    p = tmp / f"bench-orders-{requote_ticks}.toml"
    p.write_text("\n".join(lines))
    return p


def _run(profile, root: Path, out: Path) -> dict:
    from engine.backtest.node import BacktestNode

    node = BacktestNode(profile, DAY, out=out, ticks_dir=root, progress=False)
    r = node.run()
    (mm,) = node.kernel.strategies.strategies
    c = mm.counts
    venue = next(iter(node.kernel.execution.clients.values()))
    return {"seconds": r.seconds, "records": r.records, "orders": c["orders"],
            "cancels": c["cancels"], "fills": c["fills"], "refused": c["refused"],
            "requotes": c["requotes"], "syncs": venue.counters["syncs"],
            "mirror_orders": venue.counters["mirror_submits"] + venue.counters["mirror_cancels"],
            "orders_csv": (out / "orders.csv").read_bytes()}


def measure_orders(*, quick: bool = False, n_instruments: int | None = None,
                   seconds: float | None = None, runs: int = 3,
                   queue_model: str = "risk_averse") -> dict:
    """Record a day, replay it ``runs`` times with the market maker; the figures (module
    docstring), medians over the runs."""
    from engine.backtest.synth import simulate_day
    from engine.core.profile import load_profile

    n_instruments = n_instruments or (4 if quick else 10)
    seconds = seconds or (3.0 if quick else 10.0)
    venues = ["SIMA", "SIMB"]
    f: dict = {}
    with tempfile.TemporaryDirectory(prefix="helmdesk-bench-orders-") as d:
        tmp = Path(d)
        profile = load_profile(_profile(tmp, n_instruments, venues, queue_model))
        root = tmp / "ticks"
        progress(f"recording a day: {n_instruments} instruments × {len(venues)} venues, "
                 f"{seconds:g} s of market time")
        t = time.perf_counter()
        n = simulate_day(profile, root, DAY, seconds)
        progress(f"{n:,} records in {time.perf_counter() - t:.1f} s")
        results = []
        for k in range(runs):
            progress(f"replay with the market maker, run {k + 1} of {runs}")
            results.append(_run(profile, root, tmp / f"run{k}"))
        resting = load_profile(_profile(tmp, n_instruments, venues, queue_model, RESTING_TICKS))
        rest = []
        for k in range(runs):
            progress(f"replay with resting quotes, run {k + 1} of {runs}")
            r = _run(resting, root, tmp / f"rest{k}")
            r.pop("orders_csv")
            rest.append(r)
    f["backtest_resting_events_per_s"] = round(
        statistics.median(r["records"] / r["seconds"] for r in rest))
    f["backtest_resting_orders"] = rest[0]["orders"]
    same = len({r.pop("orders_csv") for r in results}) == 1
    rates = [r["orders"] / r["seconds"] for r in results]
    k = rates.index(statistics.median(rates)) if runs % 2 else 0
    mid = results[k]
    f["backtest_orders_per_s"] = round(statistics.median(rates))
    f["backtest_orders_events_per_s"] = round(
        statistics.median(r["records"] / r["seconds"] for r in results))
    f["backtest_orders_s"] = round(mid["seconds"], 3)
    f["backtest_orders_records"] = mid["records"]
    f["backtest_orders_orders"] = mid["orders"]
    f["backtest_orders_cancels"] = mid["cancels"]
    f["backtest_orders_fills"] = mid["fills"]
    f["backtest_orders_refused"] = mid["refused"]
    f["backtest_orders_requotes"] = mid["requotes"]
    f["backtest_orders_per_event"] = round(mid["orders"] / max(mid["records"], 1), 3)
    f["backtest_orders_venue_syncs"] = mid["syncs"]
    f["backtest_orders_mirror_orders"] = mid["mirror_orders"]
    f["backtest_orders_deterministic"] = same
    f["backtest_orders_instruments"] = n_instruments
    f["backtest_orders_queue_model"] = queue_model
    return f


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.orders",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smaller day: a smoke run")
    args = p.parse_args(argv)
    f = measure_orders(quick=args.quick)
    t = Table(f"Helmdesk order-throughput bench ({'quick' if args.quick else 'full'}), "
              f"Python {sys.version.split()[0]}")
    t.section(f"a recorded day: {f['backtest_orders_records']:,} records, "
              f"{f['backtest_orders_instruments']} instruments × 2 venues; the market maker "
              f"quotes on one (queue model {f['backtest_orders_queue_model']}), one core")
    t.add("orders submitted per second of wall time (backtest_orders_per_s)",
          fmt_rate(f["backtest_orders_per_s"]), f"≥ {TARGET_ORDERS_PER_S:,} /s",
          verdict(f["backtest_orders_per_s"], TARGET_ORDERS_PER_S, higher_is_better=True))
    t.add("events replayed per second, same runs", fmt_rate(f["backtest_orders_events_per_s"]))
    t.add("orders / cancels / fills / refused",
          f"{fmt_count(f['backtest_orders_orders'])} / {fmt_count(f['backtest_orders_cancels'])}"
          f" / {fmt_count(f['backtest_orders_fills'])} / "
          f"{fmt_count(f['backtest_orders_refused'])}")
    t.add("orders per recorded event", f"{f['backtest_orders_per_event']:.3f}")
    t.add("run (median of 3); three runs' orders identical",
          f"{f['backtest_orders_s']:.2f} s; "
          f"{'yes' if f['backtest_orders_deterministic'] else 'NO'}")
    t.add("same day, quotes resting (requote_ticks "
          f"{RESTING_TICKS:,}): events/s (backtest_resting_events_per_s)",
          fmt_rate(f["backtest_resting_events_per_s"]))
    t.add("venue mirror syncs / mirror orders",
          f"{fmt_count(f['backtest_orders_venue_syncs'])} / "
          f"{fmt_count(f['backtest_orders_mirror_orders'])}")
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
