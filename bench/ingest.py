"""Ingest figures: replaying MD_EVENT records into the books, and the live book update.

    python -m bench.ingest [--quick]

Issue 5's targets: replay ≥ 10,000,000 events/s on one core, a book update p99 ≤ 5 µs (one
event, including the consolidated BBO).

``replay_events_per_s``: the bench writes a stream of MD_EVENT records to a numpy memmap file
in a temporary directory (10 M events, 1 M with ``--quick``): 4 venues × 500 instruments,
depth 10; it starts with a snapshot of every venue's book of every instrument, then
incrementals with skewed instrument activity (a few hot names, a long tail), 50 % CHANGE,
25 % NEW, 25 % DELETE at levels near the top (geometric), 10 % trades, and now and then a
sequence gap (STATUS_GAP) followed by that book's snapshot. The file is opened read-only as a
memmap (as replay from the tick store opens it) and handed to ``apply_batch`` in one call into
a fresh ``BookSet``: per-venue books and the consolidated BBO kept per event; the median of
three passes is reported. The same, in EventBuffer-sized batches of 4096 records, shows the
per-call cost. The plain-Python reference (``apply_reference``) runs on a slice of the same
stream, and the two are checked to leave identical arrays.

``book_update_p50_ns`` / ``book_update_p99_ns``: the live path's cheapest call, one record at
a time of an in-memory MD_EVENT array (as a feed's EventBuffer): ``apply = books.bind(buf)``
once, then ``apply(k)`` per event (per-venue book + consolidated BBO), each timed with
``time.perf_counter_ns`` around the call; the timer's own cost (the median of back-to-back
reads, reported) is subtracted. ``gc`` stays on after ``gc.freeze()``, as in the engine. For
the choice of call, timed the same way: ``apply_one(books, buf, k)`` (numba's type dispatch on
every call: ``book_update_apply_one_*``), an empty numba kernel taking the same seven arguments
(what that dispatch alone costs) and the kernel on a one-record slice instead of an index.

Everything runs pinned to one CPU (the last allowed). A missed target prints MISS; nothing
here is tuned to pass. ``simfeed_events_per_s`` and ``fix_md_incremental_decode_per_s`` are
placeholders that the feed handlers' owners fill in; until then the table says "not measured
yet" and the JSON line leaves them out (so ``python -m bench`` keeps bench.execution's codec
figure of the same name).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from bench._common import Table, allowed_cpus, emit_json, fmt_count, fmt_rate, progress, verdict
from engine.book.books import (
    BBO_CROSSED,
    BBO_LOCKED,
    BookSet,
    apply_batch,
    apply_one,
    apply_reference,
)
from engine.book.kernels import apply_range
from engine.core.events import (
    ASK,
    BID,
    BUY,
    CHANGE,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    MD_EVENT,
    NEW,
    QUOTE,
    SELL,
    STATUS,
    STATUS_GAP,
    TRADE,
)

TARGET_MD_DECODE = 150_000
TARGET_REPLAY = 10_000_000
TARGET_UPDATE_P99_NS = 5_000

N_VENUES, N_INSTRUMENTS, DEPTH = 4, 500, 10
VENUE_SHARE = (0.4, 0.3, 0.2, 0.1)  # the primary venue is the busiest
GAPS_PER_MILLION = 4
CHUNK = 1 << 20


@dataclass(frozen=True)
class Sizes:
    events: int
    reference: int  # records through the plain-Python reference
    live: int  # records through apply_one, one timed call each
    passes: int


FULL = Sizes(events=10_000_000, reference=20_000, live=200_000, passes=3)
QUICK = Sizes(events=1_000_000, reference=5_000, live=50_000, passes=3)


# -- THE STREAM --------------------------------------------------------------------------------
class Stream:
    """A seeded, plausible MD_EVENT stream, made chunk by chunk (module docstring)."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = np.random.default_rng(seed)
        self.mid = self.rng.integers(1_000, 100_000, N_INSTRUMENTS)  # ticks
        w = 1.0 / np.arange(1, N_INSTRUMENTS + 1)  # Zipf: a few hot instruments
        self.inst_p = w / w.sum()
        self.seq = np.zeros(N_VENUES, dtype=np.int64)
        self.ts = 1_767_225_600_000_000_000  # 2026-01-01, UTC ns

    def _stamp(self, rec: np.ndarray) -> None:
        n = len(rec)
        gaps = self.rng.exponential(500.0, n).astype(np.int64) + 1  # ~2 M events/s of market
        exch = self.ts + np.cumsum(gaps)
        self.ts = int(exch[-1])
        rec["exch_ns"] = exch
        rec["recv_ns"] = exch + 20_000 + self.rng.integers(0, 5_000, n)
        for v in range(N_VENUES):
            mine = rec["venue"] == v
            k = int(mine.sum())
            rec["seq"][mine] = self.seq[v] + 1 + np.arange(k)
            self.seq[v] += k

    def snapshot(self, v: int, i: int) -> np.ndarray:
        """CLEAR BID, DEPTH NEWs, CLEAR ASK, DEPTH NEWs; F_SNAPSHOT, the last also F_LAST."""
        rec = np.zeros(2 + 2 * DEPTH, dtype=MD_EVENT)
        rec["kind"], rec["venue"], rec["instrument"] = QUOTE, v, i
        rec["flags"] = F_SNAPSHOT
        rec["flags"][-1] |= F_LAST
        mid = int(self.mid[i])
        for side, start, sign in ((BID, 0, -1), (ASK, 1 + DEPTH, 1)):
            rec["side"][start:start + 1 + DEPTH] = side
            rec["action"][start] = CLEAR
            lv = np.arange(DEPTH)
            rec["action"][start + 1:start + 1 + DEPTH] = NEW
            rec["level"][start + 1:start + 1 + DEPTH] = lv
            rec["price"][start + 1:start + 1 + DEPTH] = mid + sign * (1 + lv + v % 2)
            rec["size"][start + 1:start + 1 + DEPTH] = self.rng.integers(1, 500, DEPTH)
        return rec

    def start(self) -> np.ndarray:
        """Every venue's snapshot of every instrument."""
        rec = np.concatenate([self.snapshot(v, i) for v in range(N_VENUES)
                              for i in range(N_INSTRUMENTS)])
        self._stamp(rec)
        return rec

    def incrementals(self, n: int) -> np.ndarray:
        rng = self.rng
        self.mid += rng.integers(-3, 4, N_INSTRUMENTS)  # the market moves between chunks
        rec = np.zeros(n, dtype=MD_EVENT)
        inst = rng.choice(N_INSTRUMENTS, n, p=self.inst_p)
        rec["instrument"] = inst
        rec["venue"] = rng.choice(N_VENUES, n, p=VENUE_SHARE)
        trade = rng.random(n) < 0.10
        rec["kind"] = np.where(trade, TRADE, QUOTE)
        side = rng.integers(0, 2, n)
        u = rng.random(n)
        action = np.where(u < 0.5, CHANGE, np.where(u < 0.75, NEW, DELETE))
        level = np.minimum(rng.geometric(0.4, n) - 1, DEPTH - 1)
        sign = np.where(side == BID, -1, 1)
        jitter = rng.integers(0, 2, n)
        price = self.mid[inst] + sign * (1 + level + jitter)
        size = rng.integers(1, 500, n)
        size[action == DELETE] = 0
        rec["side"] = np.where(trade, np.where(side == BID, SELL, BUY), side)
        rec["action"] = np.where(trade, 0, action)
        rec["level"] = np.where(trade, 0, level)
        rec["price"] = np.where(trade, self.mid[inst] + sign, price)
        rec["size"] = np.where(trade, rng.integers(1, 100, n), size)
        rec["flags"] = np.where(rng.random(n) < 0.6, F_LAST, 0)  # messages of 1-3 entries
        # now and then a gap on one book, then its snapshot
        pieces, at = [], 0
        for cut in np.sort(rng.integers(0, n, max(1, n * GAPS_PER_MILLION // 1_000_000))):
            v, i = int(rng.integers(N_VENUES)), int(rng.choice(N_INSTRUMENTS, p=self.inst_p))
            gap = np.zeros(1, dtype=MD_EVENT)
            gap["kind"], gap["venue"], gap["instrument"], gap["action"] = STATUS, v, i, STATUS_GAP
            pieces += [rec[at:cut], gap, self.snapshot(v, i)]
            at = cut
        pieces.append(rec[at:])
        out = np.concatenate(pieces)
        self._stamp(out)
        return out


def write_stream(path: Path, n: int) -> tuple[int, int]:
    """Write ``n`` MD_EVENT records to ``path`` (a raw memmap file); return (n, how many of
    them are the opening snapshots)."""
    s = Stream()
    mm = np.memmap(path, dtype=MD_EVENT, mode="w+", shape=(n,))
    first = s.start()
    head = min(n, len(first))
    mm[:head] = first[:head]
    at = head
    while at < n:
        chunk = s.incrementals(min(CHUNK, n - at))[: n - at]
        mm[at:at + len(chunk)] = chunk
        at += len(chunk)
    mm.flush()
    del mm
    return n, head


# -- REPLAY ------------------------------------------------------------------------------------
def bench_replay(path: Path, sz: Sizes, n_snap: int, f: dict) -> dict:
    mm = np.memmap(path, dtype=MD_EVENT, mode="r")
    apply_batch(BookSet(N_VENUES, N_INSTRUMENTS, DEPTH), mm[:1000])  # compile or load
    rates, books = [], None
    for _ in range(sz.passes):
        mm = np.memmap(path, dtype=MD_EVENT, mode="r")  # a fresh mapping each pass
        books = BookSet(N_VENUES, N_INSTRUMENTS, DEPTH)
        t0 = time.perf_counter()
        applied = apply_batch(books, mm)
        rates.append(len(mm) / (time.perf_counter() - t0))
        del mm
    f["replay_events_per_s"] = round(statistics.median(rates))
    f["replay_events"] = sz.events
    f["replay_rejects"] = int(books.rejects.sum())
    info = {"applied": applied, "rates": rates}
    ok = np.array([books.bbo_ok(i) for i in range(N_INSTRUMENTS)])
    flags = books.bbo["flags"]
    info["bbo_ok"] = int(ok.sum())
    info["crossed"] = int(np.count_nonzero(flags & BBO_CROSSED))
    info["locked"] = int(np.count_nonzero(flags & BBO_LOCKED))
    info["bbo_changes"] = int(books.bbo["changes"].sum())

    # in EventBuffer-sized batches, as a feed hands them on
    mm = np.memmap(path, dtype=MD_EVENT, mode="r")
    books = BookSet(N_VENUES, N_INSTRUMENTS, DEPTH)
    batch = 4096
    t0 = time.perf_counter()
    for at in range(0, len(mm), batch):
        apply_batch(books, mm[at:at + batch])
    f["replay_batch4096_events_per_s"] = round(len(mm) / (time.perf_counter() - t0))

    # the plain-Python reference on a slice of the incrementals, and the kernel on the same
    part = np.array(mm[n_snap:n_snap + sz.reference])
    ref, ker = (BookSet(N_VENUES, N_INSTRUMENTS, DEPTH, start_stale=False) for _ in range(2))
    t0 = time.perf_counter()
    apply_reference(ref, part)
    f["replay_reference_events_per_s"] = round(len(part) / (time.perf_counter() - t0))
    apply_batch(ker, part)
    info["reference_agrees"] = all(np.array_equal(getattr(ref, a), getattr(ker, a))
                                   for a in ("book", "venue", "bbo", "rejects"))
    f["replay_kernel_over_reference"] = round(f["replay_events_per_s"]
                                              / f["replay_reference_events_per_s"])
    return info


# -- THE LIVE PATH -----------------------------------------------------------------------------
@njit(cache=False)
def _empty_kernel(records, start, stop, book, venue, bbo, rejects):  # the dispatch alone
    return 0


def _timed(fn, n: int, overhead: int) -> np.ndarray:
    """Call ``fn(k)`` for k in 0..n-1, each timed; minus the timer's own cost."""
    clock = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for k in range(n):
        t0 = clock()
        fn(k)
        out[k] = clock() - t0
    return out - overhead


def _pct(a: np.ndarray, p: float) -> int:
    return int(round(float(np.percentile(a, p))))


def bench_live(path: Path, sz: Sizes, n_snap: int, f: dict) -> None:
    mm = np.memmap(path, dtype=MD_EVENT, mode="r")
    live = np.array(mm[n_snap:n_snap + sz.live])  # in memory, as a feed's EventBuffer is
    head = np.array(mm[:n_snap])
    del mm
    clock = time.perf_counter_ns
    pairs = np.empty(100_000, dtype=np.int64)
    for k in range(len(pairs)):
        pairs[k] = -clock() + clock()
    overhead = int(np.median(pairs))
    f["book_update_timer_overhead_ns"] = overhead

    def books_after_snapshots() -> BookSet:
        b = BookSet(N_VENUES, N_INSTRUMENTS, DEPTH)
        apply_batch(b, head)
        return b

    b = books_after_snapshots()
    apply_one(b, live, 0)  # compile or load
    _empty_kernel(live, 0, 1, b.book, b.venue, b.bbo, b.rejects)
    gc.collect()
    gc.freeze()
    try:
        b = books_after_snapshots()
        apply = b.bind(live)
        bound = _timed(apply, len(live), overhead)
        b = books_after_snapshots()
        one = _timed(lambda k: apply_one(b, live, k), len(live), overhead)
        book, venue, bbo, rejects = b.book, b.venue, b.bbo, b.rejects
        empty = _timed(lambda k: _empty_kernel(live, k, k + 1, book, venue, bbo, rejects),
                       len(live), overhead)
        b = books_after_snapshots()
        sliced = _timed(lambda k: apply_range(live[k:k + 1], 0, 1, b.book, b.venue, b.bbo,
                                              b.rejects), len(live), overhead)
    finally:
        gc.unfreeze()
    f["book_update_p50_ns"] = _pct(bound, 50)
    f["book_update_p99_ns"] = _pct(bound, 99)
    f["book_update_p999_ns"] = _pct(bound, 99.9)
    f["book_update_max_ns"] = int(bound.max())
    f["book_update_apply_one_p50_ns"] = _pct(one, 50)
    f["book_update_apply_one_p99_ns"] = _pct(one, 99)
    f["numba_dispatch_7args_p50_ns"] = _pct(empty, 50)
    f["numba_dispatch_7args_p99_ns"] = _pct(empty, 99)
    f["book_update_slice_p50_ns"] = _pct(sliced, 50)
    f["book_update_slice_p99_ns"] = _pct(sliced, 99)


# -- PLACEHOLDERS: figures the feed handlers' owners add (issue 5) -----------------------------
def simfeed_events_per_s(quick: bool) -> float | None:
    """MD_EVENT records/s the simulated multi-venue feed (engine/feeds/simvenues.py) writes:
    400 instruments × 3 venues, 100 cointegrated pairs, 100 Hz per instrument and venue,
    bursts on, depth 10, stepped 50 ms of simulated time at a time into a 65,536-record
    EventBuffer (the engine steps it every loop turn; the rate per record is the same).
    Best of three runs after a warm-up (compiles its kernels)."""
    from engine.core.events import EventBuffer
    from engine.feeds.simvenues import SimVenues

    n_inst = 100 if quick else 400
    instruments = [(f"S{k:03d}", 0.01, 50.0 + k) for k in range(n_inst)]
    venues = [("SIMA", 0.0, 50.0, 20.0, 0.3, 2), ("SIMB", 0.0, 100.0, 20.0, 0.3, 2),
              ("SIMC", 0.0, 150.0, 20.0, 0.3, 2)]
    pairs = [(2 * k, 2 * k + 1, 1.0, 30.0, 5.0) for k in range(n_inst // 4)]  # beta, s, bp
    seconds = 2.0 if quick else 5.0
    best = 0.0
    for run in range(4):
        sim = SimVenues(instruments, venues, pairs, seed=7 + run, rate_hz=100.0, start_ns=0)
        out = EventBuffer(65_536)
        t, step, records = 0, 50_000_000, 0
        t0 = time.perf_counter()
        while t < seconds * 1e9:
            t += step
            while True:
                out.clear()
                n = sim.step(t, out)
                records += n
                if not out.full:
                    break
        dt = time.perf_counter() - t0
        if run:  # the first run compiles
            best = max(best, records / dt)
    return best


def fix_md_incremental_decode_per_s(quick: bool) -> float | None:
    """FIX MarketDataIncrementalRefresh bytes → MD_EVENT records, per second: 35=X with 4
    entries (two changes, a new level, a delete), framing, checksum and field checks, symbol
    and tick look-ups, prices to integer ticks, into an EventBuffer (``FixMdNormalizer
    .feed_bytes``, the FIX-over-TCP handler's path). Best of three passes; bench.execution's
    ``fix_md_codec_decode_per_s`` is the codec alone on the same messages."""
    from bench._fixcodec import md_incremental
    from engine.core.events import EventBuffer
    from engine.feeds.normalize import FixMdNormalizer

    n = 20_000 if quick else 100_000
    raws = [md_incremental(i) for i in range(n)]
    norm = FixMdNormalizer(0, "BENCH", {"AAPL": (0, 0.01)})
    out = EventBuffer(4096)
    norm.feed_bytes(raws[0], 0, out)  # warm up (compiles what it compiles)
    out.clear()
    best = 0.0
    for _ in range(3):
        written = 0
        t0 = time.perf_counter()
        for raw in raws:
            if out.capacity - out.n < 64:  # the handler wants room for a whole message
                out.clear()
            written += norm.feed_bytes(raw, 1, out)
        best = max(best, n / (time.perf_counter() - t0))
        if written != 4 * n:
            raise RuntimeError(f"the normalizer wrote {written} records for {n} messages of 4 "
                               f"entries: {norm.counters}, last problem {norm.last_problem}")
    return best


def tickstore_figures(quick: bool) -> dict:
    """The tick store's own figures (app.ticks.measure): append, replay merge, CSV import."""
    from app.ticks import measure

    return measure(quick)


# -- MAIN --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    args = p.parse_args(argv)
    sz = QUICK if args.quick else FULL
    cpu = allowed_cpus()[-1]
    os.sched_setaffinity(0, {cpu})
    f: dict = {}
    with tempfile.TemporaryDirectory(prefix="helmdesk-bench-ingest-") as tmp:
        path = Path(tmp) / "md_events.bin"
        progress(f"writing {sz.events:,} MD_EVENT records to {path}")
        t0 = time.perf_counter()
        n, n_snap = write_stream(path, sz.events)
        wrote_s = time.perf_counter() - t0
        progress("replay through apply_batch (and the reference on a slice)")
        info = bench_replay(path, sz, n_snap, f)
        progress("live path: apply_one one event at a time")
        bench_live(path, sz, n_snap, f)
    progress("FIX 35=X bytes → MD_EVENT; the simulated multi-venue feed")
    placeholders = {"simfeed_events_per_s": simfeed_events_per_s(args.quick),
                    "fix_md_incremental_decode_per_s": fix_md_incremental_decode_per_s(args.quick)}
    f.update({k: round(v) for k, v in placeholders.items() if v is not None})
    progress("the tick store: append, replay merge, CSV import")
    ts = tickstore_figures(args.quick)
    f.update({k: round(v, 2) for k, v in ts.items()})

    t = Table(f"Helmdesk ingest bench ({'quick' if args.quick else 'full'}), Python "
              f"{sys.version.split()[0]}, pinned to CPU {cpu}")
    t.section(f"replay: {n:,} MD_EVENT records from a memmap file ({n * 64 / 1e6:,.0f} MB, "
              f"written in {wrote_s:.1f} s), {N_VENUES} venues × {N_INSTRUMENTS} instruments, "
              f"depth {DEPTH}")
    t.add("apply_batch, one call: books + consolidated BBO (median of "
          f"{sz.passes}: {', '.join(f'{r / 1e6:.1f}' for r in info['rates'])} M/s)",
          fmt_rate(f["replay_events_per_s"]), f"≥ {TARGET_REPLAY:,} /s",
          verdict(f["replay_events_per_s"], TARGET_REPLAY, higher_is_better=True))
    t.add("apply_batch, batches of 4096 (as an EventBuffer)",
          fmt_rate(f["replay_batch4096_events_per_s"]))
    t.add(f"apply_reference, plain Python ({sz.reference:,} records)",
          fmt_rate(f["replay_reference_events_per_s"]))
    t.add("kernel / reference", f"{f['replay_kernel_over_reference']:,} ×")
    t.add("reference and kernel leave identical arrays",
          "yes" if info["reference_agrees"] else "NO", "yes",
          "ok" if info["reference_agrees"] else "MISS")
    t.add("records applied / rejected", f"{fmt_count(info['applied'])} / "
                                        f"{fmt_count(f['replay_rejects'])}")
    t.add("BBO changes; at the end: bbo_ok / crossed / locked instruments",
          f"{fmt_count(info['bbo_changes'])}; {info['bbo_ok']} / {info['crossed']} / "
          f"{info['locked']}")
    t.section(f"live path: one event per call ({sz.live:,} events, timer overhead "
              f"{f['book_update_timer_overhead_ns']} ns subtracted)")
    t.add("book update incl. consolidated BBO: books.bind(buf)(k), p50 / p99",
          f"{f['book_update_p50_ns']:,} / {f['book_update_p99_ns']:,} ns",
          f"p99 ≤ {TARGET_UPDATE_P99_NS:,} ns",
          verdict(f["book_update_p99_ns"], TARGET_UPDATE_P99_NS, higher_is_better=False))
    t.add("  same, p99.9 / max",
          f"{f['book_update_p999_ns']:,} / {f['book_update_max_ns']:,} ns")
    t.add("apply_one(books, buf, k): numba's type dispatch per call, p50 / p99",
          f"{f['book_update_apply_one_p50_ns']:,} / {f['book_update_apply_one_p99_ns']:,} ns",
          f"p99 ≤ {TARGET_UPDATE_P99_NS:,} ns",
          verdict(f["book_update_apply_one_p99_ns"], TARGET_UPDATE_P99_NS,
                  higher_is_better=False))
    t.add("numba dispatch alone: empty kernel, same 7 arguments, p50 / p99",
          f"{f['numba_dispatch_7args_p50_ns']:,} / {f['numba_dispatch_7args_p99_ns']:,} ns")
    t.add("the kernel on a 1-record slice instead of an index, p50 / p99",
          f"{f['book_update_slice_p50_ns']:,} / {f['book_update_slice_p99_ns']:,} ns")
    t.section("feed handlers")
    for key, what, target in (
            ("simfeed_events_per_s", "simulated multi-venue feed → MD_EVENT", None),
            ("fix_md_incremental_decode_per_s",
             "FIX 35=X (4 entries) bytes → validated → MD_EVENT", TARGET_MD_DECODE)):
        v = placeholders[key]
        if v is None:
            t.add(f"{what} ({key})", "not measured yet")
        elif target:
            t.add(f"{what} ({key})", fmt_rate(v), f"≥ {target:,} /s",
                  verdict(v, target, higher_is_better=True))
        else:
            t.add(f"{what} ({key})", fmt_rate(v))
    t.section("tick store (best of three; temporary files, page cache)")
    t.add("append (TickWriter, 256-record batches, through close)",
          fmt_rate(ts["tickstore_write_events_per_s"]))
    t.add("replay: two venues' files merged into one stream by recv_ns",
          fmt_rate(ts["tickstore_replay_events_per_s"]))
    t.add("CSV import (helmdesk import-ticks)", fmt_rate(ts["csv_import_rows_per_s"]) + " rows")
    t.add("TickRecorder.record(64 records) on the engine's side, p50 / p99",
          f"{ts['tickstore_record_call_us_p50']:.1f} / {ts['tickstore_record_call_us_p99']:.1f} µs")
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
