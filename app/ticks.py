"""``helmdesk import-ticks`` and ``helmdesk ticks info``: the tick store from a terminal.

    helmdesk import-ticks FILE.csv [--venue NAME] [--root DIR] [--profile P.toml]
                          [--tick SYMBOL=TICK ...] [--show-rejects N] [--progress-every ROWS]
    helmdesk ticks info [--root DIR] [DAY]
    helmdesk ticks simulate --profile P --day D [--seconds S] [--root DIR]

import-ticks exit codes: 0 every row was imported; 1 some rows were rejected (the others were
imported; the summary shows the first reasons); 2 nothing was imported: a bad option, profile
or header, or a file that cannot be read. ticks info: 0, or 1 if the store, the day or a file
cannot be read. The CSV format is in ``engine.feeds.csvimport``; the store's layout in
``engine.feeds.tickstore``.

``measure(quick)`` gives the store's throughput figures for ``bench/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parsers", "run", "measure"]


def _err(cmd: str, msg: str) -> None:
    print(f"helmdesk {cmd}: {msg}", file=sys.stderr)


def _tick_option(text: str) -> tuple[str, float]:
    sym, sep, tick = text.partition("=")
    sym = sym.strip()
    if not sep or not sym:
        raise argparse.ArgumentTypeError(f"must be SYMBOL=TICK, was {text!r}")
    try:
        t = float(tick)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{sym}: tick must be a number, was {tick!r}") from None
    if not 0 < t < float("inf"):
        raise argparse.ArgumentTypeError(f"{sym}: tick must be a positive number, was {tick!r}")
    return sym, t


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, was {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, was {v}")
    return v


def add_parsers(sub) -> None:
    """Register ``import-ticks`` and ``ticks`` on the ``helmdesk`` subparsers."""
    i = sub.add_parser("import-ticks", help="import a quote/trade CSV file into the tick store",
                       description="Import a CSV of quotes and trades (header row: time,symbol,"
                       "type,side,price,size[,level][,venue][,action]) into the tick store. "
                       "Exit 0: all rows imported; 1: some rows rejected; 2: nothing imported.")
    i.add_argument("file", metavar="FILE.csv")
    i.add_argument("--venue", help="venue of rows without a venue column")
    i.add_argument("--root", help="tick store directory (default: <data dir>/ticks)")
    i.add_argument("--profile", help="profile whose [[instruments]] give the ticks "
                   "(and whose [[venues]] give the venue order)")
    i.add_argument("--tick", action="append", type=_tick_option, default=[],
                   metavar="SYMBOL=TICK", help="an instrument's tick size (repeatable)")
    i.add_argument("--show-rejects", type=_count, default=20, metavar="N",
                   help="how many rejected rows to show (default 20)")
    i.add_argument("--progress-every", type=_count, default=1_000_000, metavar="ROWS",
                   help="a progress line on stderr every ROWS rows (default 1000000; 0: none)")

    t = sub.add_parser("ticks", help="look at the tick store")
    tsub = t.add_subparsers(dest="ticks_verb", metavar="VERB", required=True)
    info = tsub.add_parser("info", help="days, venues and record counts")
    info.add_argument("day", nargs="?", metavar="DAY", help="one day (YYYY-MM-DD)")
    info.add_argument("--root", help="tick store directory (default: <data dir>/ticks)")
    sim = tsub.add_parser("simulate", help="record a made-up day of the profile's simulated "
                          "venues (to try backtests)")
    sim.add_argument("--profile", required=True, help="profile: [[instruments]], [feed] venues,"
                     " pairs and seed")
    sim.add_argument("--day", required=True, help="the day to write (YYYY-MM-DD)")
    sim.add_argument("--seconds", type=float, default=60.0, help="market time (default 60)")
    sim.add_argument("--root", help="tick store directory (default: <data dir>/ticks)")


def run(args: argparse.Namespace) -> int:
    if args.command == "import-ticks":
        return _import(args)
    if args.ticks_verb == "simulate":
        return _simulate(args)
    return _info(args)


def _simulate(args) -> int:
    import datetime as dt

    from engine.backtest.synth import simulate_day
    from engine.core.profile import ProfileError, load_profile

    try:
        profile = load_profile(args.profile)
        dt.date.fromisoformat(args.day)
    except ProfileError as e:
        _err("ticks simulate", str(e))
        return 2
    except ValueError:
        _err("ticks simulate", f"--day must be YYYY-MM-DD, was {args.day!r}")
        return 2
    if not 0 < args.seconds <= 86_400:
        _err("ticks simulate", f"--seconds must be in (0, 86400], was {args.seconds:g}")
        return 2
    root = _root(args)
    tty = sys.stderr.isatty()

    def show(frac: float) -> None:
        if tty:
            sys.stderr.write(f"\r[{'#' * int(30 * frac):<30}] {100 * frac:5.1f}%")

    n = simulate_day(profile, root, args.day, args.seconds, progress=show)
    if tty:
        sys.stderr.write("\n")
    print(f"{args.day}: {n:,} records of {', '.join(profile.feed.venues)} written to {root}")
    return 0


def _root(args) -> Path:
    from engine.feeds.tickstore import default_root

    return Path(args.root) if args.root else default_root()


# -- IMPORT --


def _import(args) -> int:
    from engine.core.profile import ProfileError, load_profile
    from engine.feeds.csvimport import CsvFormatError, import_csv

    cmd = "import-ticks"
    table: dict[str, float] = {}
    venues: list[str] = []
    if args.profile:
        try:
            prof = load_profile(args.profile)
        except ProfileError as e:
            _err(cmd, str(e))
            return 2
        table = {i.symbol: i.tick for i in prof.instruments}
        venues = [v.name for v in prof.venues]
    for sym, tick in args.tick:
        if sym in table and table[sym] != tick:
            where = "the profile" if args.profile else "an earlier --tick"
            _err(cmd, f"--tick {sym}={tick:g}: {where} gives {sym} a tick of {table[sym]:g}")
            return 2
        table[sym] = tick
    if not table:
        _err(cmd, "no instruments: give each symbol's tick with --tick SYMBOL=TICK or a "
                  "--profile with [[instruments]]")
        return 2
    path = Path(args.file)
    if not path.is_file():
        _err(cmd, f"{path}: no such file")
        return 2
    root = _root(args)

    def progress(res, seconds: float) -> None:
        print(f"{path.name}: {res.rows_read:,} rows read, {res.rows_imported:,} imported, "
              f"{res.rows_rejected:,} rejected ({res.rows_read / seconds:,.0f} rows/s)",
              file=sys.stderr, flush=True)

    try:
        res = import_csv(path, root, list(table.items()), venue=args.venue, venues=venues,
                         max_reasons=args.show_rejects,
                         progress=progress if args.progress_every else None,
                         progress_every=args.progress_every or 1 << 62)
    except CsvFormatError as e:
        _err(cmd, str(e))
        return 2
    except OSError as e:
        _err(cmd, f"{e.filename or path}: {e.strerror or e}")
        return 2
    print(f"{path}: {res.rows_read:,} rows read, {res.rows_imported:,} imported, "
          f"{res.rows_rejected:,} rejected in {res.seconds:.2f} s")
    for (venue, day), n in sorted(res.counts.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"  {day} {venue}: {n:,} record{'' if n == 1 else 's'}")
    print(f"tick store: {root}")
    for note in res.notes:
        _err(cmd, note)
    if res.rows_rejected:
        shown = len(res.reasons)
        more = res.rows_rejected - shown
        print(f"rejected rows{f' (first {shown})' if more > 0 else ''}:", file=sys.stderr)
        for r in res.reasons:
            print(f"  {r}", file=sys.stderr)
        if more > 0:
            print(f"  ... and {more:,} more", file=sys.stderr)
        return 1
    return 0


# -- INFO --


def _info(args) -> int:
    from engine.feeds.tickstore import TickFileError, TickReader, day_files, list_days

    cmd = "ticks info"
    root = _root(args)
    if not root.is_dir():
        _err(cmd, f"no tick store at {root}")
        return 1
    days = list_days(root)
    if args.day:
        if args.day not in days:
            have = ", ".join(days) if days else "none"
            _err(cmd, f"no ticks for {args.day} under {root} (days: {have})")
            return 1
        days = [args.day]
    print(f"tick store {root}")
    if not days:
        print("(no days recorded)")
        return 0
    print(f"{'day':10}  {'venue':8} {'files':>5} {'records':>13} {'MiB':>9}  "
          f"{'first (UTC)':12}  {'last (UTC)':12}  instruments")
    rc = 0
    for day in days:
        for venue, paths in day_files(root, day).items():
            n = size = torn = 0
            first = last = None
            syms: list[str] = []
            for p in paths:
                try:
                    with TickReader(p) as r:
                        n += len(r)
                        torn += r.torn_bytes
                        size += p.stat().st_size
                        syms += [s for s, _ in r.instruments if s not in syms]
                        if len(r):
                            a, b = int(r.records[0]["recv_ns"]), int(r.records[-1]["recv_ns"])
                            first = a if first is None else min(first, a)
                            last = b if last is None else max(last, b)
                except TickFileError as e:
                    _err(cmd, f"REFUSED {e}")
                    rc = 1
            names = ", ".join(syms[:6]) + (f" +{len(syms) - 6}" if len(syms) > 6 else "")
            line = (f"{day:10}  {venue:8} {len(paths):>5} {n:>13,} {size / 2**20:>9.1f}  "
                    f"{_clock(first):12}  {_clock(last):12}  {names}")
            if torn:
                line += f"  (torn tail ignored: {torn} bytes)"
            print(line)
    return rc


def _clock(ns: int | None) -> str:
    if ns is None:
        return "-"
    s, frac = divmod(ns, 1_000_000_000)
    s %= 86400
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{frac // 1_000_000:03d}"


# -- MEASURE --


def measure(quick: bool = True) -> dict[str, float]:
    """The tick store's figures: appends, replay (two venues merged), CSV import.

    ``quick``: 1M records per venue and 200k CSV rows (a few seconds); else 5M and 1M.
    Each figure is the best of three runs in a temporary directory (page cache, not disk).
    Keys: tickstore_write_events_per_s (``TickWriter.append`` of 256-record batches, through
    close), tickstore_replay_events_per_s (two venues' files to one merged array, a fresh one),
    tickstore_replay_reuse_events_per_s (the same into a reused array: no page faults),
    csv_import_rows_per_s, tickstore_record_call_us_p50 / _p99 (``TickRecorder.record`` of a
    64-record batch, on the caller's side).
    """
    import os
    import tempfile
    import time

    import numpy as np

    from engine.core.events import MD_EVENT, QUOTE
    from engine.feeds.csvimport import import_csv
    from engine.feeds.tickstore import TickRecorder, TickWriter, day_of, replay

    n = 1_000_000 if quick else 5_000_000
    rows = 200_000 if quick else 1_000_000
    batch = 256
    t0 = 1_795_000_000_000_000_000  # 2026-11-18, 09:46 UTC: one day for the whole run
    rng = np.random.default_rng(5)
    instruments = [("AAA", 0.01), ("BBB", 0.25)]

    def stream(venue: int) -> np.ndarray:
        r = np.zeros(n, dtype=MD_EVENT)
        r["kind"] = QUOTE
        r["venue"] = venue
        r["instrument"] = rng.integers(0, 2, n)
        r["recv_ns"] = t0 + np.cumsum(rng.integers(1, 2000, n))
        r["price"] = rng.integers(10_000, 10_100, n)
        r["size"] = rng.integers(1, 100, n)
        return r

    streams = [stream(0), stream(1)]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="helmdesk-ticks-") as tmp:
        best_w = best_r = best_reuse = 0.0
        reuse = np.empty(2 * n, dtype=MD_EVENT)
        reuse.view(np.uint8)[:] = 0
        for k in range(3):
            root = os.path.join(tmp, f"w{k}")
            start = time.perf_counter()
            for name, s in zip(("SIMA", "SIMB"), streams):
                with TickWriter(root, name, instruments) as w:
                    for i in range(0, n, batch):
                        w.append(s[i : i + batch])
            best_w = max(best_w, 2 * n / (time.perf_counter() - start))
            start = time.perf_counter()
            merged = replay(root, day_of(t0))
            best_r = max(best_r, len(merged) / (time.perf_counter() - start))
            del merged
            start = time.perf_counter()
            merged = replay(root, day_of(t0), out=reuse)
            best_reuse = max(best_reuse, len(merged) / (time.perf_counter() - start))
        out["tickstore_write_events_per_s"] = best_w
        out["tickstore_replay_events_per_s"] = best_r
        out["tickstore_replay_reuse_events_per_s"] = best_reuse

        rec = TickRecorder(os.path.join(tmp, "rec"), ["SIMA", "SIMB"], instruments)
        small = streams[0][:64].copy()
        calls = []
        for i in range(20_000):
            small["recv_ns"] += 1
            a = time.perf_counter_ns()
            rec.record(small)
            calls.append(time.perf_counter_ns() - a)
            if i % 64 == 0:
                time.sleep(0)  # let the writer thread in, as the engine's loop would
        rec.close()
        calls.sort()
        out["tickstore_record_call_us_p50"] = calls[len(calls) // 2] / 1e3
        out["tickstore_record_call_us_p99"] = calls[int(len(calls) * 0.99)] / 1e3

        path = os.path.join(tmp, "ticks.csv")
        with open(path, "w") as f:
            f.write("time,symbol,type,side,price,size\n")
            ts = t0 + np.cumsum(rng.integers(1, 2000, rows))
            px = rng.integers(10_000, 10_100, rows)
            sz = rng.integers(1, 100, rows)
            for j in range(rows):
                if j % 4 == 3:
                    f.write(f"{ts[j]},AAA,trade,buy,{px[j] / 100:.2f},{sz[j]}\n")
                else:
                    f.write(f"{ts[j]},AAA,quote,{'bid' if j % 2 else 'ask'},{px[j] / 100:.2f},{sz[j]}\n")
        best_c = 0.0
        for k in range(2 if quick else 3):
            res = import_csv(path, os.path.join(tmp, f"c{k}"), instruments, venue="SIMA")
            best_c = max(best_c, res.rows_per_s)
        out["csv_import_rows_per_s"] = best_c
    return out


if __name__ == "__main__":  # python -m app.ticks [--full]: print the figures
    import json

    print(json.dumps(measure(quick="--full" not in sys.argv)))
