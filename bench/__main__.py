"""``python -m bench [--quick]``: run every bench script in turn, then merge their figures.

Each ``bench/<name>.py`` (not the ``_private`` helpers other scripts import) runs as its own
``python -m bench.<name>`` subprocess, so one script's children, pinning or imports cannot
disturb the next. Their output is passed through as it comes; the last line printed here is
one JSON object merging the last-line JSON object of every script.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench._common import ROOT



def scripts(everything: bool = False) -> list[str]:
    """Every bench script; by default not those ``bench.strategy`` runs as its parts (so
    they run once, through it)."""
    from bench.strategy import PARTS

    return sorted(p.stem for p in (ROOT / "bench").glob("*.py")
                  if not p.stem.startswith("_") and (everything or p.stem not in PARTS))


def run_script(name: str, extra: list[str]) -> tuple[int, dict | None]:
    """Run one script, echoing its stdout; return its exit code and last-line JSON object."""
    proc = subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}", *extra],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
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
        return rc, None
    return rc, figures if isinstance(figures, dict) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts in every script")
    p.add_argument("only", nargs="*", help="run only these scripts (default: all)")
    args = p.parse_args(argv)
    known = scripts(everything=True)
    unknown = sorted(set(args.only) - set(known))
    if unknown:
        p.error(f"no bench script named {', '.join(unknown)} (have: {', '.join(known)})")
    names = [n for n in known if n in args.only] if args.only else scripts()
    extra = ["--quick"] if args.quick else []
    merged: dict[str, object] = {}
    failed: list[str] = []
    for name in names:
        print(f"== bench.{name} {' '.join(extra)}".rstrip(), flush=True)
        t0 = time.monotonic()
        rc, figures = run_script(name, extra)
        took = time.monotonic() - t0
        if figures is None:
            print(f"== bench.{name}: no JSON object on its last line (exit {rc}, {took:.0f} s)",
                  flush=True)
            failed.append(name)
            continue
        clash = sorted(set(figures) & set(merged))
        if clash:
            print(f"warning: bench.{name} repeats keys {', '.join(clash)}; its values win",
                  file=sys.stderr)
        merged.update(figures)
        print(f"== bench.{name}: exit {rc}, {took:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"== failed: {', '.join(failed)}", flush=True)
    print(json.dumps(merged, sort_keys=True), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
