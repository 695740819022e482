"""The strategies' figures in one table: per tick, tick to order on the wire, backtest rates.

    python -m bench.strategy [--quick] [--only PART ...]

Runs, each as its own ``python -m bench.<part>`` subprocess (its pinning, children and imports
cannot disturb the next; its own table is printed as it comes):

- ``strategy_tick``: the pairs strategy's ``on_book`` for one changed instrument, 500 pairs over
  1,000 instruments, compiled kernel and plain-Python reference (``strategy_tick_p99_us``);
- ``wire``: a live engine process, feed bytes in → a strategy's NewOrderSingle bytes out over
  loopback TCP (``tick_to_order_p50_us``, ``tick_to_order_p99_us``);
- ``backtest_pairs``: a backtest end to end — recorded books, the pairs strategy on 500 pairs,
  risk, OMS, router, in-process venues — on one core, about one order per 1,000 events,
  against a plain-Python reference loop in the same process (``backtest_pairs_events_per_s``);
- ``orders``: an order-heavy backtest, the market maker requoting on every event
  (``backtest_orders_per_s``).

Then a summary against the targets, and last one JSON line merging every part's figures.
``python -m bench`` runs these parts through this script, not twice.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bench._common import ROOT, Table, emit_json, fmt_rate, verdict

#: (part, key, target, higher is better, unit)
TARGETS = (
    ("strategy_tick", "strategy_tick_p99_us", 20.0, False, "us"),
    ("wire", "tick_to_order_p50_us", 50.0, False, "us"),
    ("wire", "tick_to_order_p99_us", 250.0, False, "us"),
    ("backtest_pairs", "backtest_pairs_events_per_s", 2_500_000.0, True, "/s"),
    ("orders", "backtest_orders_per_s", 100_000.0, True, "/s"),
)
PARTS = tuple(dict.fromkeys(t[0] for t in TARGETS))


def run_part(part: str, quick: bool) -> tuple[int, dict]:
    """Run ``python -m bench.<part>``, echoing its output; its exit code and last-line JSON."""
    proc = subprocess.Popen([sys.executable, "-m", f"bench.{part}",
                             *(["--quick"] if quick else [])], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                            bufsize=1)
    last = ""
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.strip():
                last = line
    finally:
        rc = proc.wait()
    try:
        figures = json.loads(last)
    except json.JSONDecodeError:
        figures = None
    return rc, figures if isinstance(figures, dict) else {}


def _value(v: float, unit: str) -> str:
    return f"{fmt_rate(v)}" if unit == "/s" else f"{v:,.1f} us"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.strategy",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts in every part")
    ap.add_argument("--only", nargs="+", choices=PARTS, metavar="PART",
                    help=f"run only these parts ({', '.join(PARTS)})")
    args = ap.parse_args(argv)
    figures: dict[str, object] = {}
    failed = []
    for part in args.only or PARTS:
        rc, f = run_part(part, args.quick)
        if rc != 0 or not f:
            failed.append(part)
        figures.update(f)
    t = Table("strategies: the targets" + (" (--quick)" if args.quick else ""))
    for part, key, target, higher, unit in TARGETS:
        if args.only and part not in args.only:
            continue
        v = figures.get(key)
        if not isinstance(v, (int, float)):
            t.add(key, "n/a", "", f"{part} gave no figure")
            continue
        t.add(key, _value(float(v), unit), ("≥ " if higher else "≤ ") + _value(target, unit),
              verdict(float(v), target, higher_is_better=higher))
    extra = (("backtest_pairs_vs_python", "backtest_pairs vs the plain-Python loop", "x"),
             ("strategy_tick_speedup_p99", "strategy tick: Python reference / compiled, p99",
              "x"))
    for key, label, unit in extra:
        v = figures.get(key)
        if isinstance(v, (int, float)):
            t.add(label, f"{v:,.1f} {unit}")
    if failed:
        t.add("parts that failed", ", ".join(failed))
    print(t.render())
    emit_json(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
