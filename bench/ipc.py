"""Shared-memory IPC figures: snapshot reads, event ring throughput, command round trips, desk CPU.

    python -m bench.ipc [--quick]

Every figure crosses a real process boundary: snapshots are read while another process
publishes them, the event ring has its producer in another process, commands go to a real
engine (one per idle mode) and the desk is the real Qt desk attached to a real engine. The
bench process runs on the first allowed CPU and engines/writers on the second (when there
are two), as a workstation runs the desk and the pinned engine.

Targets (set by the issue): command round trip p99 ≤ 50 µs (idle hybrid),
event ring ≥ 5,000,000 records/s batched, desk CPU ≤ 10 % of a core when idle.
A missed target prints MISS; nothing here is tuned to pass.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass

import numpy as np

from bench._common import (
    EngineProcess,
    Table,
    allowed_cpus,
    bench_child,
    cpu_seconds,
    emit_json,
    fmt_count,
    fmt_rate,
    machine_busy_pct,
    percentiles_us,
    progress,
    shm_leftovers,
    stop_process,
    tail,
    verdict,
    wait_until,
)
from engine.ipc import EngineClient, EngineStarting, NoEngine, Verb
from engine.ipc.commands import confirmation_code
from engine.ipc.layout import (
    BOOK_DTYPE,
    EVENT_DTYPE,
    RING_CONTROL,
    Layout,
    segment_name,
)
from engine.ipc.rings import EventRingReader, EventRingWriter
from engine.ipc.segment import Segment, unlink_segment

Figures = dict[str, object]  # JSON-able figures, units in the key names

TARGET_RTT_P99_US = 50.0
TARGET_RING_BATCHED = 5_000_000.0
TARGET_DESK_CPU_PCT = 10.0

PID = os.getpid()
TAG = f"bench{PID}-"  # every instance and segment this run makes starts with it
EVENT_CAPACITY = Layout(n_instruments=1).event_capacity  # the engine's default ring
DESK_POLL_RECORDS = 4096  # EngineClient.poll_events default, as the desk drains

# Control words of the throw-away ring segment (u64 offsets; own cache lines per writer).
_READY, _GO = 0, 1  # line 0: producer says ready, bench says go
_DONE, _PRODUCED, _ELAPSED_NS = 8, 9, 10  # line 1: the producer's result
_RING_OFF = 4096


@dataclass(frozen=True)
class Sizes:
    """How long/how many: the full run and the ``--quick`` smoke run."""

    snapshot_s: float
    verify_s: float
    ring_s: float
    warmup: int
    pings: int
    gap_pings: int
    desk_settle_s: float
    desk_sample_s: float
    desk_exit_after_s: float
    kills: int


FULL = Sizes(2.0, 1.0, 1.5, 2000, 20000, 1000, 4.0, 8.0, 14.0, 1000)
QUICK = Sizes(0.5, 0.3, 0.3, 200, 2000, 200, 2.5, 2.5, 6.0, 100)


# -- children (run as ``python -m bench.ipc --child ...``) -----------------------------------------
def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def child_snapshot_writer(instance: str, hz: float, cpu: int | None) -> int:
    """The engine's own publisher (EngineSegment.publish_book) at ~``hz``, until SIGTERM.

    Every field of publication k holds k (prices k + level), so a reader can tell a torn copy.
    """
    from engine.ipc.layout import EngineState
    from engine.ipc.publisher import EngineSegment

    _pin(cpu)
    stop = False

    def _stop(*_a: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    shm = EngineSegment(instance, [("BENCH", 0.01, 100.0)], idle="sleep")
    try:
        shm.set_state(EngineState.RUNNING)
        levels = range(10)
        period = int(1e9 / hz)
        nxt = time.monotonic_ns()
        k = 0
        while not stop:
            k += 1
            px = [float(k + j) for j in levels]
            sz = [float(k)] * 10
            shm.publish_book(0, k, k, px, sz, px, sz, float(k), float(k))
            nxt += period
            delay = nxt - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
    finally:
        shm.close(unlink=True)
    return 0


def child_ring_producer(name: str, mode: str, batch: int, seconds: float, cpu: int | None) -> int:
    """Write 64-byte records into the event ring as fast as it can for ``seconds``."""
    _pin(cpu)
    seg = Segment.attach(name, check=False)
    q = seg.q
    w = EventRingWriter(seg.buf, _RING_OFF, EVENT_CAPACITY)
    recs = np.zeros(batch, dtype=EVENT_DTYPE)
    recs["kind"] = 1
    recs["level"] = 20
    recs["text"] = b"bench event record, forty bytes of text"
    text = bytes(recs["text"][0])
    clock = time.perf_counter_ns
    q[_READY] = 1
    give_up = time.monotonic() + 30
    while not q[_GO]:
        if time.monotonic() > give_up:  # the bench died before saying go
            return 1
    n = 0
    t0 = clock()
    end = t0 + int(seconds * 1e9)
    if mode == "batched":
        publish_batch = w.publish_batch
        while True:
            publish_batch(recs)
            n += batch
            if clock() >= end:
                break
    else:
        publish = w.publish
        while True:
            for i in range(n, n + 1024):
                publish(i, 1, 20, 0, text)
            n += 1024
            if clock() >= end:
                break
    elapsed = clock() - t0
    q[_PRODUCED] = n
    q[_ELAPSED_NS] = elapsed
    q[_DONE] = 1  # after the figures and after the last tail store (TSO)
    del w, recs
    seg.close()
    return 0


# -- snapshot reads --------------------------------------------------------------------------------
def bench_snapshots(sz: Sizes, writer_cpu: int | None, table: Table, figures: Figures) -> None:
    """EngineClient.read_book in a tight loop while another process publishes at ~1 kHz."""
    instance = TAG + "snap"
    progress("snapshot reads against a 1 kHz publisher in another process")
    args = ["--child", "snapshot-writer", "--instance", instance, "--hz", "1000"]
    if writer_cpu is not None:
        args += ["--cpu", str(writer_cpu)]
    writer = bench_child("ipc", *args)
    client: EngineClient | None = None
    try:
        def attach() -> EngineClient | None:
            if writer.poll() is not None:
                raise RuntimeError(f"snapshot writer exited with code {writer.returncode}")
            try:
                return EngineClient(instance, commands=False)
            except (NoEngine, EngineStarting):
                return None

        client = wait_until(attach, 20.0, "the snapshot writer's segment")
        block = client.books[0]
        wait_until(lambda: block.read_seq() > 20, 5.0, "the writer to publish")
        read = client.read_book
        out = np.empty(1, dtype=BOOK_DTYPE)
        clock = time.perf_counter_ns

        # timed loop: reads only
        failed = 0
        reads = 0
        seq0 = block.read_seq()
        torn0 = block.torn_retries
        t0 = clock()
        end = t0 + int(sz.snapshot_s * 1e9)
        while True:
            for _ in range(1000):
                if read(0, out) is None:
                    failed += 1
            reads += 1000
            t1 = clock()
            if t1 >= end:
                break
        dt = (t1 - t0) / 1e9
        publishes = (block.read_seq() - seq0) // 2
        torn = block.torn_retries - torn0

        # verification loop: every copy kept must be one whole publication
        bad = 0
        checked = 0
        end = clock() + int(sz.verify_s * 1e9)
        while clock() < end:
            for _ in range(200):
                r = read(0, out)
                if r is None:
                    continue
                rec = r[0]
                k = rec["updates"]
                if not (rec["ts_event_ns"] == k and rec["last_sz"] == k
                        and rec["bid_px"][9] == k + 9 and rec["ask_sz"][0] == k):
                    bad += 1
                checked += 1
    finally:
        if client is not None:
            client.close()
        rc = stop_process(writer)
        unlink_segment(segment_name(instance))  # no-op unless the writer was killed
        if rc not in (0, -signal.SIGTERM):
            print(f"warning: snapshot writer exited with code {rc}", file=sys.stderr)

    rate = reads / dt
    figures.update(
        snapshot_reads_per_s=round(rate),
        snapshot_read_ns=round(1e9 / rate, 1),
        snapshot_torn_retries=torn,
        snapshot_failed_reads=failed,
        snapshot_writer_publishes_per_s=round(publishes / dt),
        snapshot_torn_accepted=bad,
    )
    table.section("book snapshot (EngineClient.read_book, writer in another process)")
    table.add("reads", fmt_rate(rate))
    table.add("one read", f"{1e9 / rate:,.0f} ns")
    table.add("writer publishes", fmt_rate(publishes / dt))
    table.add("torn retries (incl. spins while the writer is mid-write)",
              f"{torn:,} ({torn / max(1, publishes):.1f} per publish)")
    table.add("failed reads (gave up after 10,000 retries)", fmt_count(failed), "0",
              "ok" if failed == 0 else "MISS")
    table.add(f"torn copies accepted (of {checked:,} checked)", fmt_count(bad), "0",
              "ok" if bad == 0 else "MISS")


# -- event ring ------------------------------------------------------------------------------------
def run_ring(mode: str, batch: int, seconds: float, producer_cpu: int | None) -> dict[str, float]:
    """One producer process, this process consumes with EventRingReader.poll (busy)."""
    name = segment_name(TAG + "ring")  # a throw-away segment, not an engine's
    size = _RING_OFF + RING_CONTROL + EVENT_CAPACITY * EVENT_DTYPE.itemsize
    seg = Segment.create(name, size)
    producer: subprocess.Popen | None = None
    try:
        q = seg.q
        reader = EventRingReader(seg.buf, _RING_OFF, EVENT_CAPACITY)
        args = ["--child", "ring-producer", "--segment", name, "--mode", mode,
                "--batch", str(batch), "--seconds", str(seconds)]
        if producer_cpu is not None:
            args += ["--cpu", str(producer_cpu)]
        producer = bench_child("ipc", *args)

        def ready(q=q) -> bool:  # bound now: q is deleted below
            if producer.poll() is not None:
                raise RuntimeError(f"ring producer exited with code {producer.returncode}")
            return bool(q[_READY])

        wait_until(ready, 20.0, "the ring producer", 0.005)
        poll = reader.poll
        clock = time.perf_counter_ns
        delivered = 0
        polls = 0
        t0 = clock()
        deadline = t0 + int((seconds + 10) * 1e9)
        q[_GO] = 1
        while True:
            done = q[_DONE]
            delivered += len(poll(DESK_POLL_RECORDS))
            polls += 1
            if done and reader.cursor == reader.tail:
                break
            if clock() > deadline:
                raise RuntimeError(f"ring producer did not finish (exit code {producer.poll()})")
        elapsed = (clock() - t0) / 1e9
        produced = q[_PRODUCED]
        lost = reader.lost
        prod_s = q[_ELAPSED_NS] / 1e9
        del reader, q
        if producer.wait(10) != 0:
            raise RuntimeError(f"ring producer exited with code {producer.returncode}")
    finally:
        if producer is not None:
            stop_process(producer)
        try:
            seg.close()
        finally:
            seg.unlink()
    return {
        "produced": produced,
        "delivered": delivered,
        "lost": lost,
        "produced_per_s": produced / prod_s,
        "delivered_per_s": delivered / elapsed,
        "unaccounted": produced - delivered - lost,
        "polls": polls,
    }


def bench_ring(sz: Sizes, producer_cpu: int | None, table: Table, figures: Figures) -> None:
    table.section(f"event ring ({EVENT_CAPACITY:,} × 64 B; producer process → "
                  f"EventRingReader.poll({DESK_POLL_RECORDS}) busy here)")
    for mode, batch in (("batched", 256), ("single", 1)):
        progress(f"event ring, producer {mode}")
        r = run_ring(mode, batch, sz.ring_s, producer_cpu)
        pct = 100.0 * r["lost"] / r["produced"] if r["produced"] else 0.0
        figures[f"event_ring_records_per_s_{mode}"] = round(r["delivered_per_s"])
        figures[f"event_ring_produced_per_s_{mode}"] = round(r["produced_per_s"])
        figures[f"event_ring_lost_records_{mode}"] = int(r["lost"])
        figures[f"event_ring_lost_pct_{mode}"] = round(pct, 3)
        label = "publish_batch(256)" if mode == "batched" else "publish() one by one"
        target, result = "", ""
        if mode == "batched":
            target = f"≥ {TARGET_RING_BATCHED:,.0f} /s"
            result = verdict(r["delivered_per_s"], TARGET_RING_BATCHED, higher_is_better=True)
        table.add(f"{label}: delivered", fmt_rate(r["delivered_per_s"]), target, result)
        table.add(f"{label}: produced", fmt_rate(r["produced_per_s"]))
        table.add(f"{label}: lost (overwritten unread)",
                  f"{r['lost']:,} of {r['produced']:,} ({pct:.2f} %)")
        if r["unaccounted"]:
            table.add(f"{label}: UNACCOUNTED records", fmt_count(r["unaccounted"]), "0", "MISS")


# -- command round trips ---------------------------------------------------------------------------
def ping_rtts(client: EngineClient, n: int, gap_s: float = 0.0) -> tuple[list[int], int]:
    """``n`` PING round trips (ns), busy-polling the ack ring; returns samples, bad acks."""
    send = client.send
    poll = client.poll_ack
    clock = time.perf_counter_ns
    sleep = time.sleep
    ping = Verb.PING
    samples = [0] * n
    bad = 0
    for k in range(n):
        if gap_s:
            sleep(gap_s)
        t0 = clock()
        cmd_id = send(ping)
        while (ack := poll()) is None:
            if clock() - t0 > 2_000_000_000:
                raise RuntimeError("no ack within 2 s: is the engine alive?")
        samples[k] = clock() - t0
        if ack.cmd_id != cmd_id or not ack.accepted:
            bad += 1
    return samples, bad


def kill_rtts(client: EngineClient, n: int) -> tuple[list[int], int]:
    """``n`` KILL → ack round trips (ns); each KILL is followed by an untimed REARM.

    This is the kill path as far as this issue builds it: command ring → engine → switch
    flipped, state handed to the persistence thread, snapshot republished, event → ack.
    """
    clock = time.perf_counter_ns

    rearm_code = confirmation_code("global")

    def round_trip(verb: Verb) -> tuple[int, bool]:
        t0 = clock()
        cmd_id = client.send(verb, text="bench",
                             arg1=rearm_code if verb is Verb.REARM else 0.0)
        while (ack := client.poll_ack()) is None:
            if clock() - t0 > 2_000_000_000:
                raise RuntimeError("no ack within 2 s: is the engine alive?")
        ok = ack.cmd_id == cmd_id and ack.accepted and ack.kill_tripped == (verb is Verb.KILL)
        return clock() - t0, ok

    samples = [0] * n
    bad = 0
    for k in range(n):
        samples[k], ok = round_trip(Verb.KILL)
        bad += not ok
        bad += not round_trip(Verb.REARM)[1]
    return samples, bad


def bench_rtt(sz: Sizes, engine_cores: list[int] | None, table: Table, figures: Figures) -> None:
    table.section("command round trip: PING → ack, busy-polled by the desk side")
    runs = [("hybrid", 0.0), ("hybrid", 0.002), ("spin", 0.0), ("sleep", 0.0), ("sleep", 0.002)]
    by_mode: dict[str, list[float]] = {}
    for mode, gap in runs:
        by_mode.setdefault(mode, []).append(gap)
    for mode, gaps in by_mode.items():
        progress(f"command round trips, engine idle = {mode}")
        with EngineProcess(TAG + mode, idle=mode, cores=engine_cores) as eng:
            with EngineClient(eng.instance, workstation="bench") as client:
                ping_rtts(client, sz.warmup)
                for gap in gaps:
                    n = sz.gap_pings if gap else sz.pings
                    samples, bad = ping_rtts(client, n, gap)
                    p = percentiles_us(samples)
                    # the headline keys are the default mode, back to back
                    suffix = "" if mode == "hybrid" and not gap else f"_{mode}"
                    suffix += "_gap" if gap else ""
                    figures[f"cmd_rtt_p50_us{suffix}"] = round(p["p50"], 2)
                    figures[f"cmd_rtt_p99_us{suffix}"] = round(p["p99"], 2)
                    figures[f"cmd_rtt_p999_us{suffix}"] = round(p["p99.9"], 2)
                    figures[f"cmd_rtt_max_us{suffix}"] = round(p["max"], 2)
                    how = f"{n:,} back to back" if not gap else f"{n:,}, {gap * 1e3:g} ms apart"
                    label = f"idle {mode}{' (default)' if mode == 'hybrid' else ''}, {how}"
                    target = result = ""
                    if not suffix:
                        target = f"p99 ≤ {TARGET_RTT_P99_US:g} µs"
                        result = verdict(p["p99"], TARGET_RTT_P99_US, higher_is_better=False)
                    table.add(label, f"p50 {p['p50']:,.1f} µs  p99 {p['p99']:,.1f} µs", target,
                              result)
                    table.add("", f"p99.9 {p['p99.9']:,.1f} µs  max {p['max']:,.0f} µs")
                    if bad:
                        table.add("  wrong or rejected acks", fmt_count(bad), "0", "MISS")
                if mode == "hybrid":
                    samples, bad = kill_rtts(client, sz.kills)
                    p = percentiles_us(samples)
                    figures["kill_ack_p50_us"] = round(p["p50"], 2)
                    figures["kill_ack_p99_us"] = round(p["p99"], 2)
                    table.add(f"KILL → ack, idle hybrid, {sz.kills:,} (each re-armed after)",
                              f"p50 {p['p50']:,.1f} µs  p99 {p['p99']:,.1f} µs")
                    if bad:
                        table.add("  wrong or rejected acks", fmt_count(bad), "0", "MISS")


# -- desk CPU --------------------------------------------------------------------------------------
def _desk_attached(instance: str, desk_pid: int) -> bool:
    """Has the desk claimed a command slot (so it really is attached and polling)?"""
    with EngineClient(instance, commands=False) as c:
        return any(d.pid == desk_pid for d in c.desks())


def bench_desk(sz: Sizes, engine_cores: list[int] | None, desk_cpus: list[int], table: Table,
               figures: Figures) -> None:
    """The Qt desk (offscreen) attached to a 4 × 50 Hz engine: CPU of each over a quiet window."""
    progress(f"desk CPU: {sz.desk_settle_s:g} s settle, {sz.desk_sample_s:g} s sample")
    with EngineProcess(TAG + "desk", idle="hybrid", cores=engine_cores) as eng:
        env = {**eng.env(), "QT_QPA_PLATFORM": "offscreen", "QT_API": "pyside6"}
        desk_log = eng.dir / "desk.stderr"
        with open(desk_log, "wb") as log:
            desk = subprocess.Popen(
                [sys.executable, "-m", "app", "desk", "--attach", eng.instance,
                 "--exit-after", f"{sz.desk_exit_after_s:g}"],
                cwd=eng.dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        try:
            os.sched_setaffinity(desk.pid, set(desk_cpus))  # a desk is not pinned
            started = time.monotonic()
            time.sleep(sz.desk_settle_s)
            if desk.poll() is not None:
                raise RuntimeError(f"desk exited with code {desk.returncode}:\n{tail(desk_log)}")
            attached = _desk_attached(eng.instance, desk.pid)
            d0, e0, t0 = cpu_seconds(desk.pid), cpu_seconds(eng.pid), time.monotonic()
            time.sleep(sz.desk_sample_s)
            d1, e1, t1 = cpu_seconds(desk.pid), cpu_seconds(eng.pid), time.monotonic()
            try:
                rc = desk.wait(max(0.0, sz.desk_exit_after_s - (time.monotonic() - started)) + 5)
            except subprocess.TimeoutExpired:
                rc = None
        finally:
            stop_process(desk)
        if rc != 0:
            print(f"warning: desk did not exit cleanly by itself (code {rc}):\n{tail(desk_log)}",
                  file=sys.stderr)
    desk_pct = 100.0 * (d1 - d0) / (t1 - t0)
    eng_pct = 100.0 * (e1 - e0) / (t1 - t0)
    figures.update(desk_idle_cpu_pct=round(desk_pct, 2), engine_cpu_pct_hybrid=round(eng_pct, 2),
                   desk_attached=attached)
    table.section(f"CPU over {t1 - t0:.1f} s, engine 4 × 50 Hz idle hybrid, desk offscreen")
    table.add("desk (percent of one core)", f"{desk_pct:.1f} %", f"≤ {TARGET_DESK_CPU_PCT:g} %",
              verdict(desk_pct, TARGET_DESK_CPU_PCT, higher_is_better=False))
    table.add("engine, idle hybrid", f"{eng_pct:.1f} %")
    if not attached:
        table.add("desk attached to the engine", "NO", "yes", "MISS")


# -- main ------------------------------------------------------------------------------------------
def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ipc", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run (< 30 s)")
    hidden = argparse.SUPPRESS
    p.add_argument("--child", choices=("snapshot-writer", "ring-producer"), help=hidden)
    p.add_argument("--instance", help=hidden)
    p.add_argument("--segment", help=hidden)
    p.add_argument("--hz", type=float, default=1000.0, help=hidden)
    p.add_argument("--mode", choices=("batched", "single"), default="batched", help=hidden)
    p.add_argument("--batch", type=int, default=256, help=hidden)
    p.add_argument("--seconds", type=float, default=1.0, help=hidden)
    p.add_argument("--cpu", type=int, help=hidden)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.child == "snapshot-writer":
        return child_snapshot_writer(args.instance, args.hz, args.cpu)
    if args.child == "ring-producer":
        return child_ring_producer(args.segment, args.mode, args.batch, args.seconds, args.cpu)

    sz = QUICK if args.quick else FULL
    cpus = allowed_cpus()
    here = other = None
    engine_cores: list[int] | None = None
    if len(cpus) >= 2:
        here, other = cpus[0], cpus[1]
        os.sched_setaffinity(0, {here})
        engine_cores = [other]
    placement = (f"bench on CPU {here}, engine/writers on CPU {other}" if here is not None
                 else "one CPU: nothing pinned")
    table = Table(f"Helmdesk IPC bench ({'quick' if args.quick else 'full'}) — {len(cpus)} CPUs, "
                  f"Python {sys.version.split()[0]}, {placement}")
    figures: Figures = {}
    busy = machine_busy_pct()
    figures["machine_busy_pct_before"] = round(busy, 1)
    table.title += f"\nmachine busy before the run: {busy:.0f} % of {len(cpus)} CPUs"
    if busy > 5:
        table.title += "  WARNING: other processes are running; figures will suffer"
        print(f"WARNING: the machine is {busy:.0f} % busy before the bench starts",
              file=sys.stderr)
    sections = (
        ("snapshots", lambda: bench_snapshots(sz, other, table, figures)),
        ("event ring", lambda: bench_ring(sz, other, table, figures)),
        ("command round trip", lambda: bench_rtt(sz, engine_cores, table, figures)),
        ("desk CPU", lambda: bench_desk(sz, engine_cores, cpus, table, figures)),
    )
    failed = []
    t_start = time.monotonic()
    try:
        for name, run in sections:
            try:
                run()
            except Exception as e:  # report it, go on with the other figures
                failed.append(name)
                traceback.print_exc()
                table.section(f"{name}: ERROR {type(e).__name__}: {e}".splitlines()[0])
    finally:
        left = shm_leftovers("helmdesk." + TAG)
        if left:
            print(f"WARNING: left in /dev/shm: {', '.join(left)} (removing them)",
                  file=sys.stderr)
            for name in left:
                unlink_segment("/" + name)
    figures["ipc_shm_leftovers"] = len(left)
    print(table.render())
    print(f"{time.monotonic() - t_start:.0f} s; /dev/shm left clean: {'yes' if not left else 'NO'}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    emit_json(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
