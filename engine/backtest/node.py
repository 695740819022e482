"""The backtest node: the live engine's kernel on a recorded day, on a simulated clock.

``BacktestNode`` builds the same ``Kernel`` the live node builds, with these adapters: a
``ReplaySource`` of a tick-store day (the records' own receive times are the clock), one
in-process simulated venue (``engine.venue.inprocess.InProcessVenue``: the sans-IO exchange,
FIX encoded and decoded in memory, latency on the simulated clock) per ``[[venues]]`` entry of
the profile — or, with none, per venue recorded that day —, no desk, no command rings, and a
``ReportJournal`` that writes the output folder. Its orders come from the strategies; until
strategies exist, from a scripted intents file (``engine.strategy.scripted``).

The run starts a second before the day's first record, so the venue sessions are logged on
when the market opens; the loop jumps the clock to the next time anything is due (a venue message, a timer, an
intent, the next recorded record) and runs as fast as the CPU allows. Market data is taken a
slice at a time: while any order works at a simulated venue (whose fills depend on the market
at each moment) or a strategy reads the books, a slice spans at most ``resolution_ns`` of
recorded time; otherwise everything up to the next other thing due goes in one batch. The
slices depend only on the data and the settings, so a run is deterministic: the same day,
profile and intents give byte-identical output files.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.backtest.report import ReportJournal, marks
from engine.core.profile import Profile, VenueLinkConfig
from engine.execution.orders import ClOrdIds
from engine.feeds.sources import NEVER, ReplaySource
from engine.kernel import Kernel
from engine.node import load_day
from engine.strategy.scripted import ScriptedIntents, load_intents

__all__ = ["BacktestNode", "BacktestResult"]

#: The run starts this long before the day's first record: the venue sessions log on meanwhile.
PREOPEN_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class BacktestResult:
    out: Path
    summary: dict
    records: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class BacktestNode:
    def __init__(self, profile: Profile, day: str, *, out: Path, ticks_dir: str | Path | None = None,
                 intents: str | Path | None = None, resolution_us: int = 1000,
                 drain_s: float = 1.0, progress: bool | None = None) -> None:
        from engine.feeds.tickstore import default_root
        from engine.venue.inprocess import InProcessVenue

        self.profile = profile
        self.day = day
        self.out = Path(out)
        self.resolution_ns = resolution_us * 1000
        self.drain_ns = int(drain_s * 1e9)
        self.progress = sys.stderr.isatty() if progress is None else progress
        root = ticks_dir or profile.feed.ticks_dir or default_root()
        symbols = [i.symbol for i in profile.instruments]
        self.records, venues = load_day(root, day, symbols)
        if not len(self.records):
            raise ValueError(f"tick store {root}: day {day} has no records of this profile's "
                             f"instruments ({', '.join(symbols)})")
        self.t0 = int(self.records["recv_ns"][0])
        self.script = None
        strategies = []
        if intents is not None:  # times relative to the day's first record
            self.script = ScriptedIntents(load_intents(intents, set(symbols)), origin_ns=self.t0)
            strategies.append(self.script)
        configs = profile.venues or tuple(
            VenueLinkConfig(name=v, kind="sim", symbols=tuple(symbols)) for v in venues)
        clients = [InProcessVenue(v.name, profile.instruments, sender=v.sender,
                                  latency_ns=v.latency_us * 1000, fee_bps=v.fee_bps,
                                  heartbeat_s=v.heartbeat_s) for v in configs]
        if configs is not profile.venues:
            profile = _with_venues(profile, configs)
        self.t_end = int(self.records["recv_ns"][-1]) + self.drain_ns
        self.report = ReportJournal()
        self.source = ReplaySource(self.records, range(len(venues)))
        self.kernel = Kernel(
            profile, market_venues=venues, sources=[self.source], venues=clients,
            ids=ClOrdIds("BT", self.t0 // 1_000_000), journal=self.report,
            strategies=strategies)

    def run(self) -> BacktestResult:
        kernel = self.kernel
        market = kernel.market
        execution = kernel.execution
        strategies = kernel.strategies
        resolution = self.resolution_ns
        fine = strategies.wants_books
        t_end = self.t_end
        total = len(self.records)
        started = time.perf_counter()
        next_show = started + 1.0
        now = self.t0 - PREOPEN_NS  # the venues' sessions log on before the first record
        kernel.start(now)
        while True:
            nxt = kernel.step(now)
            if nxt >= NEVER or nxt > t_end:
                if now >= t_end:
                    break
                nxt = t_end
            md = market.next_due_ns
            if nxt == md:  # market data is what comes next: take a slice of it
                other = min(execution.next_due_ns(), strategies.next_due_ns, t_end)
                until = md + resolution if fine or execution.working else other
                nxt = min(max(until, md), other) if other > md else md
            now = max(now + 1, nxt) if nxt <= now else nxt
            if self.progress and time.perf_counter() >= next_show:
                next_show += 0.25
                self._show(started, total)
        kernel.stop(now)
        seconds = time.perf_counter() - started
        if self.progress:
            self._show(started, total, end=True)
        summary = {
            "day": self.day,
            "instruments": len(self.profile.instruments),
            "venues": list(market.venues),
            "records": total,
            "records_applied": market.applied,
            "intents_sent": self.script.sent if self.script else 0,
            "intents_refused": [f"row {r}: {why}" for r, why in self.script.refused]
            if self.script else [],
        }
        summary = self.report.write(self.out, marks(market, self.profile.instruments), summary)
        return BacktestResult(self.out, summary, total, seconds)

    def _show(self, started: float, total: int, end: bool = False) -> None:
        done = self.source.pos
        frac = done / total if total else 1.0
        took = time.perf_counter() - started
        rate = done / took if took > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  {done:,}/{total:,} records  "
                         f"{rate / 1e6:.2f} M/s  "
                         + (f"ETA {eta:.0f} s " if not end else f"{took:.1f} s    ")
                         + ("\n" if end else ""))
        sys.stderr.flush()


def _with_venues(profile: Profile, venues: tuple) -> Profile:
    import dataclasses

    return dataclasses.replace(profile, venues=venues)
