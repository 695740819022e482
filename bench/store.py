"""Write-behind store figures: put cost on the hot thread, writer throughput, ack latency, idle CPU.

    python -m bench.store [--quick]

Everything is real: a ``StoreLink`` in this process (the engine's side), its writer process
(``python -m engine.store.writer``) and a SQLite file (WAL, synchronous=NORMAL) in a
temporary directory. This process runs on the first allowed CPU and the writer is moved to
the second (when there are two), as the engine and its helpers are placed.

- **put cost**: one ``put_*`` call as the hot thread pays it, timed call by call with
  ``perf_counter_ns`` (the timer's own cost, shown, is included), and as the mean of a plain
  loop. The writer drains concurrently; ``flush`` between chunks keeps the ring from filling,
  so this is the ring path. The overflow path (ring full) is measured on its own.
- **writer throughput**: records/s made durable, from the first put to the ack of the last,
  for a mix (orders, executions, commands) and for executions alone (each also moves a position).
- **ack latency**: put → ``durable(seq)`` seen by a polling engine, at a steady moderate rate.
- **writer idle CPU**: % of one core the writer uses with nothing to write (it must not spin).

Targets (proposed here; no issue has set them yet): put p99 ≤ 5 µs, writer ≥ 20,000 records/s,
ack p99 ≤ 10 ms at 1,000 records/s, idle writer ≤ 5 % of a core.
A missed target prints MISS; nothing here is tuned to pass.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench._common import (
    Table,
    allowed_cpus,
    cpu_seconds,
    emit_json,
    fmt_rate,
    machine_busy_pct,
    percentiles_us,
    progress,
    shm_leftovers,
    verdict,
)

Figures = dict[str, object]

TARGET_PUT_P99_NS = 5_000.0
TARGET_WRITER_PER_S = 20_000.0
TARGET_ACK_P99_US = 10_000.0
TARGET_IDLE_CPU_PCT = 5.0

PID = os.getpid()
TAG = f"benchstore{PID}-"  # every instance this run makes starts with it
FIX_SMALL = b"8=FIX.4.4\x019=180\x0135=D\x01" + b"x" * 160 + b"\x0110=000\x01"
FIX_2K = b"8=FIX.4.4\x019=2000\x0135=D\x01" + b"y" * 2000 + b"\x0110=000\x01"


@dataclass(frozen=True)
class Sizes:
    put_n: int  # timed calls per kind
    chunk: int  # puts between flushes
    throughput_n: int
    ack_rate: float  # records/s
    ack_s: float
    idle_s: float


FULL = Sizes(20_000, 2_000, 100_000, 1000.0, 5.0, 3.0)
QUICK = Sizes(3_000, 1_000, 15_000, 1000.0, 1.5, 1.0)


def _kinds(link, n: int):
    """(name, zero-argument put) pairs: one of each record kind with realistic fields.

    Ids are built before any timing: every 4 order records are one order's life (new, ack,
    partial, fill), every execution has its own ExecID.
    """
    from engine.execution.orders import OrdStatus

    st = OrdStatus.PARTIALLY_FILLED
    order_ids = [f"HD-lq3k9z-{i // 4}" for i in range(n)]
    exec_ids = [f"X-lq3k9z-{i}" for i in range(n)]
    k = [0, 0]

    def order():
        i = k[0]
        k[0] = i + 1
        return link.put_order(order_ids[i], "SIMA", "ESZ6", 1, 10, 5000.25, "day", st, 3, 7,
                              5000.0, "V-123456", "", 1_795_000_000_000_000_000,
                              1_795_000_000_000_000_001)

    def execution():
        i = k[1]
        k[1] = i + 1
        return link.put_execution(exec_ids[i], "SIMA", "HD-lq3k9z-1", "ESZ6", 1, 1, 5000.25,
                                  1_795_000_000_000_000_001)

    def command():
        return link.put_command(12345, "ana", "desk-3", 2, 2, 1, 3, 0.0, 0.0, "fat finger", 1,
                                "instrument ESZ6 kill switch TRIPPED by ana", 1)

    def kill():
        return link.put_kill("ESZ6", 1, 3, True, "ana", "fat finger", 1)

    def fix_seq():
        return link.put_fix_seq("HELM->SIMA", 1234, 5678)

    def fix_small():
        return link.put_fix_message("HELM->SIMA", 1234, FIX_SMALL)

    def fix_2k():
        return link.put_fix_message("HELM->SIMA", 1235, FIX_2K)

    return [("order", order), ("execution", execution), ("command", command), ("kill", kill),
            ("fix_seq", fix_seq), ("fix_msg_200B", fix_small), ("fix_msg_2KB", fix_2k)]


def _link(instance: str, url: str, cpu: int | None, **kw):
    from engine.store import StoreLink

    link = StoreLink(instance, url, **kw)
    if cpu is not None:
        os.sched_setaffinity(link.writer_pid, {cpu})
    return link


# -- sections ------------------------------------------------------------------------------------
def bench_put(sz: Sizes, url: str, cpu: int | None, table: Table, figures: Figures) -> None:
    progress("put cost per record kind")
    table.section("put_* on the engine side (ring path; timer included)")
    pc = time.perf_counter_ns
    timer = np.empty(10_000, dtype=np.int64)
    for i in range(len(timer)):
        t0 = pc()
        timer[i] = pc() - t0
    timer_ns = float(np.median(timer))
    figures["store_timer_overhead_ns"] = round(timer_ns)
    table.add("perf_counter_ns pair (included below)", f"{timer_ns:.0f} ns")
    link = _link(TAG + "put", url, cpu, capacity=32768)
    try:
        for name, put in _kinds(link, 2 * sz.put_n):
            samples = np.empty(sz.put_n, dtype=np.int64)
            done = 0
            loop_ns = 0
            while done < sz.put_n:
                k = min(sz.chunk, sz.put_n - done)
                for j in range(k):
                    t0 = pc()
                    put()
                    samples[done + j] = pc() - t0
                link.flush(30)
                t0 = pc()
                for _ in range(k):
                    put()
                loop_ns += pc() - t0
                link.flush(30)
                done += k
            p50, p99 = np.percentile(samples, [50, 99])
            mean = loop_ns / sz.put_n
            figures[f"store_put_{name}_p50_ns"] = round(float(p50))
            figures[f"store_put_{name}_p99_ns"] = round(float(p99))
            figures[f"store_put_{name}_mean_ns"] = round(mean)
            table.add(f"{name}: p50 / p99 / loop mean",
                      f"{p50:,.0f} / {p99:,.0f} / {mean:,.0f} ns", f"p99 ≤ {TARGET_PUT_P99_NS:,.0f}",
                      verdict(p99, TARGET_PUT_P99_NS, higher_is_better=False))
        assert link.stats()["bad"] == 0, link.stats()
    finally:
        link.close()
    # the overflow path: a 16-slot ring that nobody polls into
    link = _link(TAG + "ovf", url, cpu, capacity=16)
    try:
        order = _kinds(link, sz.chunk + 64)[0][1]
        for _ in range(64):
            order()
        samples = np.empty(sz.chunk, dtype=np.int64)
        for j in range(sz.chunk):
            t0 = pc()
            order()
            samples[j] = pc() - t0
        p50, p99 = np.percentile(samples, [50, 99])
        assert link.stats()["overflow_now"] > 0
        figures["store_put_overflow_p50_ns"] = round(float(p50))
        figures["store_put_overflow_p99_ns"] = round(float(p99))
        table.add("order, ring full (overflow deque): p50 / p99", f"{p50:,.0f} / {p99:,.0f} ns")
    finally:
        link.close()


def bench_throughput(sz: Sizes, url: str, cpu: int | None, table: Table,
                     figures: Figures) -> None:
    table.section("writer throughput (first put → last ack; SQLite WAL, synchronous=NORMAL)")
    for label, key in (("mix: order, execution, command", "mix"),
                       ("executions only (+ position)", "executions")):
        progress(f"writer throughput: {label}")
        link = _link(TAG + "tp" + key, url, cpu, capacity=8192)
        try:
            kinds = dict(_kinds(link, sz.throughput_n))
            cycle = ([kinds["order"], kinds["execution"], kinds["command"]] if key == "mix"
                     else [kinds["execution"]])
            m = len(cycle)
            n = sz.throughput_n
            t0 = time.perf_counter()
            for i in range(n):
                cycle[i % m]()
                if i & 255 == 0:
                    link.poll()
            put_s = time.perf_counter() - t0
            ok = link.flush(120)
            total = time.perf_counter() - t0
            st = link.stats()
            assert ok and st["applied"] == n and st["bad"] == 0, st
            rate = n / total
            figures[f"store_writer_{key}_records_per_s"] = round(rate)
            figures[f"store_writer_{key}_batches"] = st["batches"]
            table.add(f"{label}: {n:,} records", fmt_rate(rate),
                      f"≥ {TARGET_WRITER_PER_S:,.0f} /s",
                      verdict(rate, TARGET_WRITER_PER_S, higher_is_better=True))
            table.add(f"  (puts took {put_s:.2f} s; {st['batches']:,} transactions, "
                      f"{n / max(1, st['batches']):,.0f} records each; overflowed "
                      f"{st['overflowed']:,})", "")
        finally:
            link.close()


def bench_ack(sz: Sizes, url: str, cpu: int | None, table: Table, figures: Figures) -> None:
    progress(f"put → durable at {sz.ack_rate:,.0f} records/s for {sz.ack_s:g} s")
    table.section(f"put → durable ack, {sz.ack_rate:,.0f} records/s (the engine polls in a loop)")
    link = _link(TAG + "ack", url, cpu, capacity=8192)
    try:
        n = int(sz.ack_rate * sz.ack_s)
        kinds = dict(_kinds(link, n))
        cycle = [kinds["order"], kinds["execution"], kinds["command"]]
        n = int(sz.ack_rate * sz.ack_s)
        put_ns = np.zeros(n + 1, dtype=np.int64)
        lat = np.zeros(n + 1, dtype=np.int64)
        period = int(1e9 / sz.ack_rate)
        mono = time.monotonic_ns
        start = mono()
        nxt = start
        i = 0
        acked = 0
        while acked < n:
            now = mono()
            if i < n and now >= nxt:
                seq = cycle[i % 3]()
                put_ns[seq] = mono()
                i += 1
                nxt += period
            d = link.poll()
            if d > acked:
                now = mono()
                lat[acked + 1 : d + 1] = now - put_ns[acked + 1 : d + 1]
                acked = d
            if now - start > (sz.ack_s + 30) * 1e9:
                raise TimeoutError(f"acks stalled at {acked} of {n}: {link.stats()}")
        ps = percentiles_us(lat[1:])
        figures["store_ack_p50_us"] = round(ps["p50"], 1)
        figures["store_ack_p99_us"] = round(ps["p99"], 1)
        figures["store_ack_max_us"] = round(ps["max"], 1)
        table.add("p50 / p99 / max", f"{ps['p50']:,.0f} / {ps['p99']:,.0f} / {ps['max']:,.0f} µs",
                  f"p99 ≤ {TARGET_ACK_P99_US:,.0f} µs",
                  verdict(ps["p99"], TARGET_ACK_P99_US, higher_is_better=False))
        st = link.stats()
        table.add(f"  ({n:,} records in {st['batches']:,} transactions)", "")
        # the writer with nothing to do
        time.sleep(0.3)
        pid = link.writer_pid
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(sz.idle_s)
        pct = 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        figures["store_writer_idle_cpu_pct"] = round(pct, 2)
        table.section("writer with nothing to write")
        table.add(f"CPU over {sz.idle_s:g} s", f"{pct:.1f} % of a core",
                  f"≤ {TARGET_IDLE_CPU_PCT:g} %",
                  verdict(pct, TARGET_IDLE_CPU_PCT, higher_is_better=False))
    finally:
        link.close()


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    args = p.parse_args(argv)
    sz = QUICK if args.quick else FULL
    cpus = allowed_cpus()
    here = other = None
    if len(cpus) >= 2:
        here, other = cpus[0], cpus[1]
        os.sched_setaffinity(0, {here})
    placement = (f"bench (engine side) on CPU {here}, writer on CPU {other}" if here is not None
                 else "one CPU: nothing pinned")
    tmp = tempfile.TemporaryDirectory(prefix="helmdesk-bench-store-")
    os.environ["HELMDESK_DATA_DIR"] = str(Path(tmp.name) / "data")  # the writer's logs
    url = f"sqlite:///{Path(tmp.name) / 'engine.db'}"
    import sqlalchemy

    table = Table(f"Helmdesk store bench ({'quick' if args.quick else 'full'}) — {len(cpus)} "
                  f"CPUs, Python {sys.version.split()[0]}, SQLAlchemy {sqlalchemy.__version__}, "
                  f"{placement}")
    figures: Figures = {}
    busy = machine_busy_pct()
    figures["machine_busy_pct_before"] = round(busy, 1)
    table.title += f"\nmachine busy before the run: {busy:.0f} % of {len(cpus)} CPUs"
    if busy > 5:
        table.title += "  WARNING: other processes are running; figures will suffer"
    sections = (
        ("put cost", lambda: bench_put(sz, url, other, table, figures)),
        ("writer throughput", lambda: bench_throughput(sz, url, other, table, figures)),
        ("ack latency", lambda: bench_ack(sz, url, other, table, figures)),
    )
    failed = []
    t_start = time.monotonic()
    try:
        for name, run in sections:
            try:
                run()
            except Exception as e:  # noqa: BLE001 - report it, go on with the other figures
                failed.append(name)
                traceback.print_exc()
                table.section(f"{name}: ERROR {type(e).__name__}: {e}".splitlines()[0])
    finally:
        left = shm_leftovers("helmdesk." + TAG)
        if left:
            from engine.ipc.segment import unlink_segment

            print(f"WARNING: left in /dev/shm: {', '.join(left)} (removing them)",
                  file=sys.stderr)
            for name in left:
                unlink_segment("/" + name)
        tmp.cleanup()
    figures["store_shm_leftovers"] = len(left)
    print(table.render())
    print(f"{time.monotonic() - t_start:.0f} s; /dev/shm left clean: {'yes' if not left else 'NO'}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    emit_json(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
