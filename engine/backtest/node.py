"""The backtest node: the live engine's kernel over recorded days, on a simulated clock.

``BacktestNode`` builds the same ``Kernel`` the live node builds, with these adapters: a
``DaysReplay`` of the tick-store days in the run's range (the records' own receive times are
the clock), one in-process simulated venue (``engine.venue.inprocess.InProcessVenue``: the
sans-IO exchange, FIX encoded and decoded in memory, latency on the simulated clock; with
``md_latency_us``, its own books of the recorded market at exchange time: ``_exchange_time``)
per ``[[venues]]`` entry of the profile — or, with none, per venue recorded in the range —, no
desk, no command rings, and a ``ReportJournal`` that keeps what happened for the output folder
(``engine.backtest.report``). Its orders come from the profile's ``[[strategies]]``
(``engine.strategy.registry.build``) and, if given, a scripted intents file
(``engine.strategy.scripted``).

Range. ``start``/``end`` are dates (``YYYY-MM-DD``: the whole UTC day, both ends inclusive) or
ISO 8601 times (UTC unless they carry an offset) that cut inside a day: records received
before ``start`` or after ``end`` are skipped. Every recorded day in the range is replayed in
order through one kernel, so positions, orders and strategy state carry from one day to the
next; a day is loaded (merged from its files) when the one before has been replayed, so only
one day is in memory at a time.

Clock. The run starts a second before the first record, so the venue sessions are logged on
when the market opens; the loop jumps the clock to the next time anything is due (a venue
message, a timer, an intent, the next recorded record, the next equity sample) and runs as
fast as the CPU allows. Market data is taken a slice at a time: while any order works at a
simulated venue (whose fills depend on the market at each moment) or a strategy reads the
books, a slice spans at most ``resolution_ns`` of recorded time; otherwise everything up to
the next other thing due goes in one batch. A profile with ``[engine] slice_us`` slices as the
live engine then does: the records of each whole cell ``[kN, (k+1)N)`` of receive time in one
step at ``(k+1)N`` (``resolution_ns`` unused), so a paper session run with ``slice_us`` and a
backtest of its recording take the market in the same steps and make the same decisions.
Between days (from a second after a day's last record to a second before the next day's
first) no market data comes, so the clock steps only to the venue sessions' and the
strategies' timers: the FIX sessions heartbeat through the night as they would live, and the
risk engine, whose marks are due every ``mark_ms`` but see no price move, runs at those steps
(a 17-hour night is a few thousand steps, not 600,000).

Equity. Every ``sample_ms`` of market time (on whole multiples of it since the epoch, from the
first record of each day; none overnight) the node reads the risk engine's portfolio
(``kernel.risk.portfolio``: realized P&L net of fees per book) and marks each open position to
the instrument's consolidated mid at that moment (when the consolidated book is locked,
crossed or one-sided: the last trade, as ``positions.csv`` is marked): a row of desk realized,
unrealized and fees and each strategy's equity. The risk engine's own marks are not used:
they are as old as its last ``mark_ms`` step. One more row is taken when the run ends.

Seeds. ``seed`` is recorded in the summary and given to every strategy that has a ``seed``
attribute (the convention: a strategy that draws random numbers keeps ``seed`` and makes its
generator from it in ``on_start``).

The slices and samples depend only on the data and the settings, so a run is deterministic:
the same days, profile, seed and intents give byte-identical output files.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.backtest.report import ReportJournal, marks, write_html
from engine.core.events import MD_EVENT
from engine.core.profile import Profile, VenueLinkConfig
from engine.execution.orders import ClOrdIds
from engine.feeds.sources import NEVER, ReplaySource
from engine.kernel import Kernel
from engine.strategy.api import Strategy
from engine.strategy.scripted import ScriptedIntents, load_intents

__all__ = ["BacktestNode", "BacktestResult", "DaysReplay", "RangeError", "ReplayRange",
           "plan_range"]

log = logging.getLogger("helmdesk.backtest")

#: The run starts this long before the first record: the venue sessions log on meanwhile.
PREOPEN_NS = 1_000_000_000
NS_PER_DAY = 86_400_000_000_000


class RangeError(ValueError):
    """The run's range cannot be used; the message names the input and the reason."""


# -- THE RANGE --


@dataclass(frozen=True, slots=True)
class ReplayRange:
    """The recorded days to replay, and the time window (UTC ns, inclusive) cut from them."""

    root: Path
    days: tuple[str, ...]
    start_ns: int
    end_ns: int
    start: str  #: as given
    end: str
    #: weekdays in the range with no recording (told, not an error: a holiday, a gap)
    missing_weekdays: tuple[str, ...] = ()


def _parse_when(text: str, what: str, *, end: bool) -> int:
    """UTC ns of a date (its first or, for ``end``, last ns) or an ISO 8601 time."""
    raw = text.strip()
    try:
        if len(raw) == 10 and "T" not in raw:
            d = dt.date.fromisoformat(raw)
            ns = (d - dt.date(1970, 1, 1)).days * NS_PER_DAY
            return ns + NS_PER_DAY - 1 if end else ns
        t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise RangeError(f"{what} {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time "
                         f"(2026-11-23T14:30:00, UTC unless it has an offset)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    d = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (d.days * 86_400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000


def _day_of(ns: int) -> str:
    return str(np.datetime64(ns // NS_PER_DAY, "D"))


def plan_range(root: str | Path, start: str, end: str | None = None) -> ReplayRange:
    """The recorded days under ``root`` between ``start`` and ``end`` (default: ``start``'s
    day), checked: a bad date, an end before the start, a single day that was not recorded or
    a range with no recorded day is a ``RangeError`` naming the input and the reason."""
    from engine.feeds.tickstore import list_days

    root = Path(root)
    end = start if end is None else end
    start_ns = _parse_when(start, "--from", end=False)
    end_ns = _parse_when(end, "--to", end=True)
    if end_ns < start_ns:
        raise RangeError(f"--to {end} is before --from {start}")
    first, last = _day_of(start_ns), _day_of(end_ns)
    recorded = list_days(root)
    days = tuple(d for d in recorded if first <= d <= last)
    where = (f"days there: {_span(recorded)}" if recorded else
             "no days recorded there" if root.is_dir() else "no such folder")
    if not days:
        if first == last:
            raise RangeError(f"tick store {root}: no ticks for {first} ({where})")
        raise RangeError(f"tick store {root}: no recorded day from {first} to {last} ({where})")
    have = set(days)
    missing = []
    d = dt.date.fromisoformat(first)
    while (s := d.isoformat()) <= last:
        if s not in have and d.weekday() < 5:
            missing.append(s)
        d += dt.timedelta(days=1)
    return ReplayRange(root, days, start_ns, end_ns, start, end, tuple(missing))


def _span(days: list[str]) -> str:
    return ", ".join(days) if len(days) <= 6 else f"{days[0]} .. {days[-1]} ({len(days)} days)"


# -- THE SOURCE --


class DaysReplay(ReplaySource):
    """A ``ReplaySource`` over consecutive recorded days: when a day's last record has been
    handed out, the next day is loaded (merged, mapped onto the engine's instruments and
    venues, cut to the window) and replay goes on from its first record."""

    def __init__(self, rng: ReplayRange, symbols: Sequence[str], venues: Sequence[str],
                 on_day: Callable[[int], None] | None = None) -> None:
        self.range = rng
        self.symbols = list(symbols)
        self.venue_names = list(venues)
        self.on_day = on_day
        self.day_index = -1
        self.done_before = 0  #: records of the days before the current one
        self.loaded: list[int] = []  #: records replayed of each day loaded so far
        self.skipped: list[str] = []  #: days in range without a record of our instruments
        self.exhausted = False  #: no day left to load
        super().__init__(self._load_next(), range(len(self.venue_names)))

    @property
    def final(self) -> bool:
        """The current day is the last with records in the range."""
        return self.exhausted or self.day_index >= len(self.range.days) - 1

    @property
    def first_ns(self) -> int:
        """The current day's first record."""
        return self.t0

    @property
    def last_ns(self) -> int:
        return int(self.times[-1]) if len(self.times) else self.t0

    @property
    def done(self) -> int:
        """Records handed out so far, all days."""
        return self.done_before + self.pos

    def step(self, now_ns: int, out) -> int:
        n = ReplaySource.step(self, now_ns, out)
        while self.next_due_ns >= NEVER and not self.exhausted:
            records = self._load_next()
            if not len(records):  # the days left had nothing of ours
                self.exhausted = True
                if self.on_day is not None:
                    self.on_day(self.day_index)
                break
            self.done_before += len(self.records)
            self.records, self.times = records, records["recv_ns"]
            self.t0 = self.start_ns = int(self.times[0])
            self.pos = 0
            self.next_due_ns = self.t0
            if self.on_day is not None:
                self.on_day(self.day_index)
            if out.n < out.capacity:
                n += ReplaySource.step(self, now_ns, out)
        return n

    def _load_next(self) -> np.ndarray:
        """The next day with records of ours (an empty array: none left)."""
        from engine.feeds.tickstore import open_day

        rng = self.range
        while self.day_index + 1 < len(rng.days):
            self.day_index += 1
            day = rng.days[self.day_index]
            d = open_day(rng.root, day)
            try:
                records = d.merge()
                index = {s: i for i, s in enumerate(self.symbols)}
                ids = np.array([index.get(ins.symbol, -1) for ins in d.instruments], dtype=np.int64)
                vmap = np.array([self.venue_names.index(v) for v in d.venues], dtype=np.int64)
            finally:
                d.close()
            mapped = ids[records["instrument"]]
            t = records["recv_ns"]
            keep = (mapped >= 0) & (t >= rng.start_ns) & (t <= rng.end_ns)
            if not keep.all():
                dropped = int((mapped < 0).sum())
                if dropped:
                    log.warning("replay %s: %d records of instruments this engine does not "
                                "trade dropped", day, dropped)
                records = records[keep]
            records["instrument"] = mapped[keep]
            records["venue"] = vmap[records["venue"]]
            self.loaded.append(len(records))
            if len(records):
                return records
            self.skipped.append(day)
        self.exhausted = True
        return np.zeros(0, dtype=MD_EVENT)


# -- THE NODE --


@dataclass(frozen=True, slots=True)
class BacktestResult:
    out: Path
    summary: dict
    records: int
    seconds: float
    #: why there is no equity.png (None: drawn, or nobody was asked to draw it)
    chart_warning: str | None = None

    @property
    def events_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class EquitySamples:
    """What the node samples: time, desk realized / unrealized / fees, each strategy's
    equity (realized + unrealized), one row per sample."""

    strategies: list[str]
    rows: list[tuple] = field(default_factory=list)


class BacktestNode:
    def __init__(self, profile: Profile, day: str | None = None, *, out: Path,
                 start: str | None = None, end: str | None = None,
                 ticks_dir: str | Path | None = None, intents: str | Path | None = None,
                 strategies: Sequence[Strategy] | None = None, seed: int | None = None,
                 resolution_us: int = 1000, sample_ms: int = 1000, capital: float | None = None,
                 drain_s: float = 1.0, progress: bool | None = None,
                 chart: Callable[[Path], str | None] | None = None) -> None:
        """``day``: shorthand for ``start=end=day``. ``strategies``: default the profile's
        ``[[strategies]]`` (a ``ProfileError`` if one cannot be built). ``chart(folder)``:
        draws ``equity.png`` once the folder is written, returns why not (or None)."""
        from engine.feeds.tickstore import TickDay, default_root
        from engine.venue.inprocess import InProcessVenue

        if day is not None:
            if start is not None or end is not None:
                raise RangeError("give a day, or a range (from, to), not both")
            start = end = day
        if start is None:
            raise RangeError("no day or range to replay")
        if sample_ms <= 0:
            raise ValueError(f"--sample-ms must be positive, was {sample_ms}")
        self.profile = profile
        self.out = Path(out)
        self.resolution_ns = resolution_us * 1000
        self.sample_ns = sample_ms * 1_000_000
        self.sample_ms = sample_ms
        self.capital = capital
        self.seed = seed
        self.drain_ns = int(drain_s * 1e9)
        self.chart = chart
        self.progress = sys.stderr.isatty() if progress is None else progress
        root = Path(ticks_dir or profile.feed.ticks_dir or default_root())
        self.range = rng = plan_range(root, start, end)
        self.day = rng.days[0]
        symbols = [i.symbol for i in profile.instruments]
        venues: set[str] = set()
        self.raw_records: list[int] = []  # per day, before mapping (the progress bar's total)
        for d in rng.days:
            td = TickDay(root, d)
            venues.update(td.venues)
            self.raw_records.append(len(td))
            td.close()
        venues_sorted = sorted(venues)
        self.source = DaysReplay(rng, symbols, venues_sorted, on_day=self._on_day)
        if not len(self.source.records):
            raise RangeError(f"tick store {root}: {_range_text(rng)} has no records of this "
                             f"profile's instruments ({', '.join(symbols)})"
                             + (f" between {rng.start} and {rng.end}" if _cut(rng) else ""))
        self.t0 = int(self.source.records["recv_ns"][0])
        if strategies is None:
            from engine.strategy.registry import build

            strategies = build(profile)
        strategies = list(strategies)
        if seed is not None:
            for s in strategies:
                if hasattr(s, "seed"):
                    s.seed = seed
        self.script = None
        if intents is not None:  # times relative to the first record replayed
            self.script = ScriptedIntents(load_intents(intents, set(symbols)), origin_ns=self.t0)
            strategies.append(self.script)
        configs = profile.venues or tuple(
            VenueLinkConfig(name=v, kind="sim", symbols=tuple(symbols)) for v in venues_sorted)
        clients = [InProcessVenue(v.name, profile.instruments, sender=v.sender,
                                  latency_ns=v.latency_us * 1000, fee_bps=v.fee_bps,
                                  heartbeat_s=v.heartbeat_s, queue_model=v.queue_model) for v in configs]
        if configs is not profile.venues:
            profile = _with_venues(profile, configs)
        self.t_end = NEVER - 1
        #: (from, until): between two days nothing is due but timers; see run()
        self.night = (NEVER, NEVER)
        self._last_ns: int | None = None
        self._md_venues: list = []  # venues with market-data latency: fed each day's records
        self._on_day(self.source.day_index)
        self.report = ReportJournal()
        self.kernel = Kernel(
            profile, market_venues=venues_sorted, sources=[self.source], venues=clients,
            ids=ClOrdIds("BT", self.t0 // 1_000_000), journal=self.report,
            strategies=strategies)
        self._md_venues = self._exchange_time(clients, configs)
        portfolio = self.kernel.risk.portfolio
        names = [s.name for s in self.kernel.strategies.strategies]
        self._books = [portfolio.book_of(f"strategy:{n}") for n in names]
        self.equity = EquitySamples(names)

    def _exchange_time(self, clients: list, configs: Sequence[VenueLinkConfig]) -> list:
        """Give each simulated venue with ``md_latency_us`` its own books of the recorded
        market at exchange time (``engine.venue.mdlatency``), stepped as the kernel's market
        is: ``[engine] slice_us`` cells, else ``resolution_ns``."""
        from engine.venue.mdlatency import ExchangeTimeBooks

        market = self.kernel.market
        books = market.books
        rows = self.kernel.execution.book_row
        out = []
        for c, v in zip(clients, configs):
            lat = v.md_latency_us
            row = rows.get(c.name)
            if lat == 0 or row is None:  # none, or no recorded market of its own
                continue
            view = ExchangeTimeBooks(
                books.n_venues, books.n_instruments, books.depth, row,
                latency_ns=None if lat == "recorded" else lat * 1000,
                step_ns=market.slice_ns or max(self.resolution_ns, 1))
            view.add(self.source.records)
            c.use_exchange_time(view)
            out.append(c)
        return out

    @property
    def records(self) -> np.ndarray:
        """The records of the day being replayed (of the first day, before the run)."""
        return self.source.records

    def _on_day(self, k: int) -> None:
        """A day was loaded (or none is left): the end of the run once the last is; the
        night before it, if there is one. The venues' exchange-time books get the day."""
        src = self.source
        if not src.exhausted:
            for c in self._md_venues:
                c.add_exchange_records(src.records)
        if src.final:
            self.t_end = src.last_ns + self.drain_ns
        if self._last_ns is not None and not src.exhausted:
            self.night = (self._last_ns + self.drain_ns, src.first_ns - PREOPEN_NS)
        self._last_ns = src.last_ns

    # -- the loop --
    def run(self) -> BacktestResult:
        kernel = self.kernel
        market = kernel.market
        execution = kernel.execution
        strategies = kernel.strategies
        source = self.source
        resolution = self.resolution_ns
        sample = self.sample_ns
        fine = strategies.wants_books
        started = time.perf_counter()
        next_show = started + 1.0
        now = self.t0 - PREOPEN_NS  # the venues' sessions log on before the first record
        next_sample = self.t0  # then on the grid
        kernel.start(now)
        gc.freeze()  # the day and the kernel's set-up never need scanning again (as live)
        while True:
            nxt = kernel.step(now)
            t_end = self.t_end
            if now >= next_sample:
                self._sample(now)
                nxt_s = now - now % sample + sample
                first = source.first_ns
                if nxt_s < first:  # the next day is loaded: no samples overnight
                    nxt_s = first - first % sample + (sample if first % sample else 0)
                next_sample = nxt_s
            if next_sample < nxt:
                nxt = next_sample
            if now >= self.night[0]:
                # the night between two days: no market data until the next day's pre-open,
                # so the clock goes from one session or strategy timer to the next (the risk
                # engine's marks wait: no price moves)
                n_end = self.night[1]
                if now < n_end:
                    nxt = min(execution.next_due_ns(), strategies.next_due_ns, n_end)
                else:
                    self.night = (NEVER, NEVER)
            if nxt >= NEVER or nxt > t_end:
                if now >= t_end:
                    break
                nxt = t_end
            md = market.next_due_ns
            if nxt == md:  # market data is what comes next: take a slice of it
                other = min(execution.next_due_ns(), strategies.next_due_ns, t_end, next_sample)
                if fine or execution.working:  # md is a cell's end when the market slices
                    until = md if market.slice_ns else md + resolution
                else:
                    until = other
                nxt = min(max(until, md), other) if other > md else md
            now = max(now + 1, nxt) if nxt <= now else nxt
            if self.progress and time.perf_counter() >= next_show:
                next_show += 0.25
                self._show(started)
        kernel.stop(now)
        seconds = time.perf_counter() - started
        gc.unfreeze()
        if self.progress:
            self._show(started, end=True)
        return self._write(now, seconds)

    def _sample(self, now: int, end_marks: dict[int, float] | None = None) -> None:
        """One equity row: desk realized, unrealized, fees; each strategy's equity."""
        p = self.kernel.risk.portfolio
        held = sorted(p.held)
        m = {}
        if end_marks is not None:
            m = {i: end_marks.get(i, p.marks[i]) for i in held}
        elif held:
            market = self.kernel.market
            books = market.books
            bbo = books.bbo
            for i in held:
                if books.bbo_ok(i):
                    m[i] = (int(bbo["bid_px"][i]) + int(bbo["ask_px"][i])) * 0.5 * market.ticks[i]
                else:  # locked, crossed or one-sided: the last trade, as at the end
                    m[i] = market.last_trade(i)[0] or p.marks[i]

        def unreal(b: int) -> float:
            q, a = p.qty[b], p.avg[b]
            return sum((m[i] - a[i]) * q[i] for i in held if q[i] and m[i] == m[i])

        row = [now, p.realized_tot[0], unreal(0), sum(p.fees[0])]
        for b in self._books:
            row.append(p.realized_tot[b] + unreal(b) if b is not None else 0.0)
        self.equity.rows.append(tuple(row))

    def _write(self, now: int, seconds: float) -> BacktestResult:
        kernel = self.kernel
        market = kernel.market
        rng = self.range
        end_marks = marks(market, self.profile.instruments)
        index = {ins.symbol: i for i, ins in enumerate(self.profile.instruments)}
        final = {index[s]: px for s, px in end_marks.items() if px}
        if self.equity.rows and self.equity.rows[-1][0] == now:
            self.equity.rows.pop()
        self._sample(now, final)  # the closing row, marked as positions.csv is
        tables = {}
        for s in kernel.strategies.strategies:
            try:
                got = s.report_tables()
            except Exception as e:  # a strategy's bug must not lose the run's report
                log.error("strategy %s: report_tables failed: %r", s.name, e)
                continue
            for stem, (cols, rows) in sorted(got.items()):
                tables[f"{s.name}-{stem}"] = (tuple(cols), list(rows))
        total = self.source.done
        summary = {
            "profile": self.profile.path.name,
            "from": rng.start,
            "to": rng.end,
            "days": [d for d in rng.days if d not in self.source.skipped],
            "days_without_records": list(self.source.skipped),
            "weekdays_not_recorded": list(rng.missing_weekdays),
            "seed": self.seed,
            "sample_ms": self.sample_ms,
            "capital": self.capital,
            "instruments": len(self.profile.instruments),
            "venues": list(market.venues),
            "strategies": [s.name for s in kernel.strategies.strategies],
            "records": total,
            "records_applied": market.applied,
            "intents_sent": self.script.sent if self.script else 0,
            "intents_refused": [f"row {r}: {why}" for r, why in self.script.refused]
            if self.script else [],
        }
        summary = self.report.write(self.out, end_marks, summary, equity=self.equity,
                                    tables=tables, capital=self.capital,
                                    sample_ms=self.sample_ms)
        warning = None
        if self.chart is not None:
            try:
                warning = self.chart(self.out)
            except Exception as e:  # the report stands without its picture
                warning = f"equity.png not drawn: {e}"
        write_html(self.out, note=warning)
        return BacktestResult(self.out, summary, total, seconds, warning)

    def _show(self, started: float, end: bool = False) -> None:
        src = self.source
        done = src.done
        k = src.day_index
        total = sum(src.loaded) + sum(self.raw_records[k + 1:])
        frac = done / total if total else 1.0
        took = time.perf_counter() - started
        rate = done / took if took > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        bar = "#" * int(30 * frac)
        days = len(self.range.days)
        sys.stderr.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  day {k + 1}/{days} "
                         f"{self.range.days[k]}  {done:,}/{total:,} records  "
                         f"{rate / 1e6:.2f} M/s  "
                         + (f"ETA {_duration(eta)} " if not end else f"{took:.1f} s     ")
                         + ("\n" if end else ""))
        sys.stderr.flush()


def _duration(s: float) -> str:
    s = int(s + 0.5)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _cut(rng: ReplayRange) -> bool:
    return len(rng.start.strip()) != 10 or len(rng.end.strip()) != 10


def _range_text(rng: ReplayRange) -> str:
    return (f"day {rng.days[0]}" if len(rng.days) == 1
            else f"days {rng.days[0]} to {rng.days[-1]}")


def _with_venues(profile: Profile, venues: tuple) -> Profile:
    import dataclasses

    return dataclasses.replace(profile, venues=venues)
