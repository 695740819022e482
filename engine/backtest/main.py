"""``helmdesk backtest --profile P --day D``: the engine's kernel over a recorded day."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, help="engine profile (TOML): instruments, "
                   "[[venues]] (simulated in the engine: latency_us, fee_bps)")
    p.add_argument("--day", required=True, help="tick-store day to replay (YYYY-MM-DD)")
    p.add_argument("--intents", metavar="CSV", help="scripted orders: time,symbol,side,qty,"
                   "price,venue,tif (time: seconds after the start, HH:MM:SS UTC or ISO 8601)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: backtests/<profile>-"
                   "<day> under the data directory)")
    p.add_argument("--ticks", metavar="DIR", help="tick store root (default: the profile's "
                   "[feed] ticks_dir, else <data dir>/ticks)")
    p.add_argument("--resolution-us", type=int, default=1000, metavar="US",
                   help="while orders work, market data is applied at most this much recorded "
                        "time at once (fill timing resolution; default 1000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import logging

    from engine.backtest.node import BacktestNode
    from engine.core.paths import data_dir
    from engine.core.profile import ProfileError, load_profile
    from engine.feeds.tickstore import TickStoreError
    from engine.strategy.scripted import IntentsError

    logging.basicConfig(level=logging.ERROR, format="helmdesk backtest: %(message)s")
    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        print(f"helmdesk backtest: {e}", file=sys.stderr)
        return 2
    if args.resolution_us <= 0:
        print(f"helmdesk backtest: --resolution-us must be positive, was {args.resolution_us}",
              file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else data_dir() / "backtests" / f"{profile.path.stem}-{args.day}"
    try:
        node = BacktestNode(profile, args.day, out=out, ticks_dir=args.ticks,
                            intents=args.intents, resolution_us=args.resolution_us,
                            progress=None if not args.no_progress else False)
        result = node.run()
    except (IntentsError, TickStoreError, ValueError, OSError) as e:
        print(f"helmdesk backtest: {e}", file=sys.stderr)
        return 2
    s = result.summary
    print(f"backtest {args.day}: {result.records:,} records in {result.seconds:.2f} s "
          f"({result.events_per_s / 1e6:.2f} M/s); {s['orders']} orders, {s['executions']} "
          f"fills, realized {s['realized']:+.2f}, unrealized {s['unrealized']:+.2f}; "
          f"output in {result.out}")
    for line in s["intents_refused"]:
        print(f"  refused: {line}")
    return 0
