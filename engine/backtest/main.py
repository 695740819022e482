"""``helmdesk backtest``: the engine's kernel over recorded days, and a report folder.

    helmdesk backtest --profile P --data TICKSTORE --from FROM --to TO [--out DIR] [--seed N]
                      [--intents F] [--capital C] [--sample-ms MS] [--no-progress]

``FROM``/``TO`` are dates (``YYYY-MM-DD``, both inclusive) or ISO 8601 times that cut inside a
day (UTC unless they carry an offset); ``--day D`` is ``--from D --to D``. The run's orders
come from the profile's ``[[strategies]]`` and, if given, the intents file. The folder it
writes is described in ``engine.backtest.report`` and docs/backtest.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, help="engine profile (TOML): instruments, "
                   "[[strategies]], [[venues]] (simulated in the engine: latency_us, fee_bps)")
    p.add_argument("--data", "--ticks", dest="data", metavar="DIR",
                   help="tick store root (default: the profile's [feed] ticks_dir, else "
                        "<data dir>/ticks)")
    p.add_argument("--from", dest="start", metavar="FROM",
                   help="first day (YYYY-MM-DD) or time (ISO 8601, UTC unless it has an offset: "
                        "2026-11-23T14:30) to replay")
    p.add_argument("--to", dest="end", metavar="TO",
                   help="last day (inclusive) or time; default: FROM's day")
    p.add_argument("--day", metavar="DAY", help="one day: the same as --from DAY --to DAY")
    p.add_argument("--out", metavar="DIR", help="report folder (default: backtests/<profile>-"
                   "<from>[_<to>] under the data directory)")
    p.add_argument("--seed", type=int, metavar="N", help="recorded in the summary and given to "
                   "every strategy that has a seed")
    p.add_argument("--intents", metavar="CSV", help="scripted orders too: time,symbol,side,qty,"
                   "price,venue,tif (time: seconds after the first record, HH:MM:SS UTC on the "
                   "first day, or ISO 8601)")
    p.add_argument("--capital", type=float, metavar="AMOUNT", help="capital for drawdown %% "
                   "and turnover / capital (default: none; P&L is in currency)")
    p.add_argument("--sample-ms", type=int, default=1000, metavar="MS",
                   help="equity sampled every MS of market time (default 1000)")
    p.add_argument("--resolution-us", type=int, default=1000, metavar="US",
                   help="while orders work, market data is applied at most this much recorded "
                        "time at once (fill timing resolution; default 1000)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_const", const=True,
                   help="a progress bar even when stderr is not a terminal")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="no progress bar")


def _fail(text: str) -> int:
    print(f"helmdesk backtest: {text}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace, chart: Callable[[Path], str | None] | None = None) -> int:
    """Run the backtest ``args`` ask for; ``chart(folder)`` draws equity.png once the folder
    is written and returns why it could not (the application passes its Qt renderer: the
    engine imports no Qt)."""
    import logging

    from engine.backtest.node import BacktestNode, RangeError
    from engine.core.paths import data_dir
    from engine.core.profile import ProfileError, load_profile
    from engine.feeds.tickstore import TickStoreError
    from engine.strategy.scripted import IntentsError

    logging.basicConfig(level=logging.ERROR, format="helmdesk backtest: %(message)s")
    start, end = args.start, args.end
    if args.day is not None:
        if start is not None or end is not None:
            return _fail("--day is --from DAY --to DAY: give one or the other")
        start = end = args.day
    if start is None:
        return _fail("what to replay: --from FROM [--to TO], or --day DAY")
    if args.resolution_us <= 0:
        return _fail(f"--resolution-us must be positive, was {args.resolution_us}")
    if args.sample_ms <= 0:
        return _fail(f"--sample-ms must be positive, was {args.sample_ms}")
    if args.capital is not None and not args.capital > 0:
        return _fail(f"--capital must be positive, was {args.capital:g}")
    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        return _fail(str(e))
    if args.out:
        out = Path(args.out)
    else:
        name = _slug(start) + ("" if end in (None, start) else "_" + _slug(end))
        out = data_dir() / "backtests" / f"{profile.path.stem}-{name}"
    try:
        node = BacktestNode(profile, out=out, start=start, end=end, ticks_dir=args.data,
                            intents=args.intents, seed=args.seed,
                            resolution_us=args.resolution_us, sample_ms=args.sample_ms,
                            capital=args.capital, progress=args.progress, chart=chart)
    except ProfileError as e:
        return _fail(str(e))
    except ImportError as e:
        return _fail(f"{profile.path}: [[strategies]]: cannot load a strategy's module: {e}")
    except (RangeError, IntentsError, TickStoreError, ValueError, OSError) as e:
        return _fail(str(e))
    rng = node.range
    if rng.missing_weekdays:
        print(f"helmdesk backtest: note: no ticks for {', '.join(rng.missing_weekdays)} "
              f"(weekdays in the range): skipped", file=sys.stderr)
    try:
        result = node.run()
    except OSError as e:
        return _fail(f"cannot write the report in {out}: {e}")
    s = result.summary
    m = s.get("metrics", {})
    days = s["days"]
    span = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]} ({len(days)} days)"
    sharpe = m.get("sharpe")
    print(f"backtest {span}: {result.records:,} records in {result.seconds:.2f} s "
          f"({result.events_per_s / 1e6:.2f} M/s); {s['orders']} orders, {s['executions']} "
          f"fills, P&L {m.get('total_pnl', 0.0):+.2f} (realized {s['realized']:+.2f}, "
          f"unrealized {s['unrealized']:+.2f}, fees {s['fees']:.2f}), max drawdown "
          f"{m.get('max_drawdown', 0.0):.2f}, Sharpe "
          + ("n/a" if sharpe is None else f"{sharpe:.2f}") + f"; output in {result.out}")
    for line in s["intents_refused"]:
        print(f"  refused: {line}")
    if result.chart_warning:
        print(f"helmdesk backtest: warning: {result.chart_warning}", file=sys.stderr)
    print(f"  report: {result.out / 'report.html'}")
    return 0


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z.-]+", "", text)
