"""Execution figures: FIX codec, the session path, the venue's matching engine.

    python -m bench.execution [--quick]

Issue 4's targets: encode NewOrderSingle ≥ 300,000/s, decode ExecutionReport ≥ 150,000/s
(validated), matching ≥ 500,000 orders/s, order round trip over loopback p50 ≤ 150 µs /
p99 ≤ 500 µs. The order round trip is measured against a real ``helmdesk venue`` process over loopback TCP:
this bench's client is a ``FixSession`` initiator (the engine's OMS is not built yet), once
on a blocking socket and once on asyncio streams, to see which transport serves it better.
Each order is a DAY limit far from the market (NewOrderSingle → ExecutionReport New), then
cancelled (OrderCancelRequest → ExecutionReport Cancelled), both timed.

``fix_er_session_decode_per_s`` is the fuller path: ExecutionReport bytes through
``FixSession.receive_data`` (framing, checksum, header checks including SendingTime parsing,
sequence handling) to the application event, then the OMS's typed reads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import _fixcodec, _matching
from bench._common import (
    Table,
    emit_json,
    fmt_rate,
    percentiles_us,
    progress,
    stop_process,
    verdict,
)
from engine.fix.codec import encode
from engine.fix.session import AppMessage, FixSession, SessionConfig

TARGET_NOS = 300_000
TARGET_ER = 150_000
TARGET_MATCH = 500_000
SENDER, TARGET = b"VENUE", b"HELM"


def session_er_rate(n: int, rounds: int) -> float:
    """ExecutionReports/s through a logged-on initiator session, typed reads included."""
    now = time.time_ns()
    best = 0.0
    for _ in range(rounds):
        s = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True))
        s.connect(now)
        s.receive_data(encode(b"A", [(98, b"0"), (108, b"30")], sender=SENDER, target=TARGET,
                              seq=1, sending_time_ns=now), now)
        msgs = [
            encode(b"8", [(37, b"V%d" % i), (11, b"C%d" % i), (17, b"E%d" % i), (150, b"F"),
                          (39, b"1"), (55, b"AAPL"), (54, b"1"), (38, 500), (32, 100),
                          (31, b"190.25"), (151, 400), (14, 100), (6, b"190.25")],
                   sender=SENDER, target=TARGET, seq=2 + i, sending_time_ns=now)
            for i in range(n)
        ]
        t0 = time.perf_counter()
        got = 0
        for raw in msgs:
            for ev in s.receive_data(raw, now):
                if type(ev) is AppMessage:
                    m = ev.message
                    m.get(11), m.get(17), m.get(150), m.get(39)
                    m.get_int(14), m.get_int(151), m.get_float(31), m.get_int(32)
                    got += 1
        dt = time.perf_counter() - t0
        assert got == n, f"only {got} of {n} ExecutionReports came through the session"
        best = max(best, n / dt)
    return best


# -- order round trip against a venue process ---------------------------------------------------
VENUE_PROFILE = """
[venue]
name = "BENCHV"
counterparties = ["HELM"]
latency_us = 0
background_hz = 0

[[instruments]]
symbol = "AAPL"
tick = 0.01
price = 190.0
"""


class VenueProcess:
    """``python -m engine.venue`` on an ephemeral loopback port, in a private data dir."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="helmdesk-bench-venue-")
        prof = Path(self.dir.name) / "venue.toml"
        prof.write_text(VENUE_PROFILE)
        env = dict(os.environ, HELMDESK_DATA_DIR=self.dir.name)
        cmd = [sys.executable, "-m", "engine.venue", "--profile", str(prof), "--port", "0"]
        if len(os.sched_getaffinity(0)) > 1:  # venue on the last CPU, client on the first
            cmd = ["taskset", "-c", str(max(os.sched_getaffinity(0))), *cmd]
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = self._read_port()

    def _read_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                return int(m.group(1))
        stop_process(self.proc)
        raise RuntimeError("the venue did not say which port it listens on")

    def close(self) -> None:
        stop_process(self.proc)
        self.proc.stderr.close()
        self.dir.cleanup()


def _cfg() -> SessionConfig:
    return SessionConfig(sender="HELM", target="BENCHV", initiator=True, heartbeat_s=30,
                         reset_on_logon=True)


def _order(i: int) -> list:
    return [(11, b"B%d" % i), (55, b"AAPL"), (54, b"1"), (38, 100), (40, b"2"),
            (44, b"100.00"), (59, b"0")]


def rtt_blocking(port: int, n: int) -> tuple[list[int], list[int]]:
    """Order and cancel round trips (ns) on a blocking socket, busy on recv."""
    s = FixSession(_cfg())
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.connect(time.time_ns())
        sock.sendall(s.data_to_send())

        def until(pred) -> None:
            while True:
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError("the venue closed the connection")
                evs = s.receive_data(data, time.time_ns())
                out = s.data_to_send()
                if out:
                    sock.sendall(out)
                if any(pred(e) for e in evs):
                    return

        until(lambda e: s.state.value == "active")
        orders, cancels = [], []
        clock = time.perf_counter_ns
        for i in range(n):
            cl = b"B%d" % i
            t0 = clock()
            s.send(b"D", _order(i), time.time_ns())
            sock.sendall(s.data_to_send())
            until(lambda e: type(e) is AppMessage and e.message.get(11) == cl)
            orders.append(clock() - t0)
            t0 = clock()
            s.send(b"F", [(41, cl), (11, b"X%d" % i), (55, b"AAPL"), (54, b"1")], time.time_ns())
            sock.sendall(s.data_to_send())
            until(lambda e: type(e) is AppMessage and e.message.get(150) == b"4")
            cancels.append(clock() - t0)
        s.logout("bench done", time.time_ns())
        sock.sendall(s.data_to_send())
        return orders, cancels
    finally:
        sock.close()


def rtt_asyncio(port: int, n: int) -> list[int]:
    """Order round trips (ns) with the client on asyncio streams."""

    async def main() -> list[int]:
        s = FixSession(_cfg())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        s.connect(time.time_ns())
        writer.write(s.data_to_send())

        async def until(pred) -> None:
            while True:
                data = await reader.read(65536)
                if not data:
                    raise RuntimeError("the venue closed the connection")
                evs = s.receive_data(data, time.time_ns())
                out = s.data_to_send()
                if out:
                    writer.write(out)
                if any(pred(e) for e in evs):
                    return

        await until(lambda e: s.state.value == "active")
        samples = []
        clock = time.perf_counter_ns
        for i in range(n):
            cl = b"A%d" % i
            t0 = clock()
            s.send(b"D", [(11, cl), *_order(i)[1:]], time.time_ns())
            writer.write(s.data_to_send())
            await until(lambda e: type(e) is AppMessage and e.message.get(11) == cl)
            samples.append(clock() - t0)
            s.send(b"F", [(41, cl), (11, b"Y%d" % i), (55, b"AAPL"), (54, b"1")], time.time_ns())
            writer.write(s.data_to_send())
            await until(lambda e: type(e) is AppMessage and e.message.get(150) == b"4")
        s.logout("bench done", time.time_ns())
        writer.write(s.data_to_send())
        writer.close()
        return samples

    return asyncio.run(main())


def bench_order_rtt(quick: bool, f: dict) -> None:
    n = 500 if quick else 5000
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    venue = VenueProcess()
    try:
        rtt_blocking(venue.port, 100)  # warm up both ends
        orders, cancels = rtt_blocking(venue.port, n)
        po, pc = percentiles_us(orders), percentiles_us(cancels)
        f["order_rtt_p50_us"], f["order_rtt_p99_us"] = round(po["p50"], 1), round(po["p99"], 1)
        f["cancel_rtt_p50_us"], f["cancel_rtt_p99_us"] = round(pc["p50"], 1), round(pc["p99"], 1)
        pa = percentiles_us(rtt_asyncio(venue.port, n))
        f["order_rtt_p50_us_asyncio"] = round(pa["p50"], 1)
        f["order_rtt_p99_us_asyncio"] = round(pa["p99"], 1)
    finally:
        venue.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.execution",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    args = p.parse_args(argv)
    progress("FIX codec")
    f = dict(_fixcodec.run(args.quick))
    progress("ExecutionReports through the session")
    f["fix_er_session_decode_per_s"] = round(
        session_er_rate(5_000 if args.quick else 50_000, 2 if args.quick else 3), 2)
    progress("order round trips against a venue process")
    try:
        bench_order_rtt(args.quick, f)
    except Exception as e:  # keep the other figures; say what failed
        progress(f"order round trip FAILED: {e!r}")
    progress("matching engine")
    f.update({k: v for k, v in _matching.run(args.quick).items() if not k.startswith("_")})

    t = Table(f"Helmdesk execution bench ({'quick' if args.quick else 'full'}), "
              f"Python {sys.version.split()[0]}")
    t.section("FIX 4.4 encode / decode (simplefix measured in the same run)")
    t.add("NewOrderSingle encode, ours", fmt_rate(f["fix_nos_encode_per_s"]),
          f"≥ {TARGET_NOS:,} /s", verdict(f["fix_nos_encode_per_s"], TARGET_NOS, higher_is_better=True))
    t.add("NewOrderSingle encode, simplefix", fmt_rate(f["simplefix_nos_encode_per_s"]))
    t.add("ExecutionReport decode, ours (validated + typed reads)", fmt_rate(f["fix_er_decode_per_s"]),
          f"≥ {TARGET_ER:,} /s", verdict(f["fix_er_decode_per_s"], TARGET_ER, higher_is_better=True))
    t.add("ExecutionReport through FixSession → event", fmt_rate(f["fix_er_session_decode_per_s"]),
          f"≥ {TARGET_ER:,} /s",
          verdict(f["fix_er_session_decode_per_s"], TARGET_ER, higher_is_better=True))
    t.add("ExecutionReport decode, simplefix", fmt_rate(f["simplefix_plain_er_decode_per_s"]))
    t.add("MarketDataIncrementalRefresh (4 entries), ours",
          fmt_rate(f["fix_md_incremental_decode_per_s"]))
    t.section("matching engine (one instrument, seeded realistic flow)")
    t.add("requests/s", fmt_rate(f["matching_orders_per_s"]), f"≥ {TARGET_MATCH:,} /s",
          verdict(f["matching_orders_per_s"], TARGET_MATCH, higher_is_better=True))
    t.add("per request p50 / p99",
          f"{f['matching_order_p50_ns']:,} / {f['matching_order_p99_ns']:,} ns")
    t.section("order round trip → venue process → ExecutionReport (loopback TCP)")
    if "order_rtt_p99_us" in f:
        ok = f["order_rtt_p50_us"] <= 150 and f["order_rtt_p99_us"] <= 500
        t.add("NewOrderSingle → ER New, blocking socket (p50 / p99)",
              f"{f['order_rtt_p50_us']:,.1f} / {f['order_rtt_p99_us']:,.1f} µs", "≤ 150 / ≤ 500 µs",
              "ok" if ok else "MISS")
        t.add("same, asyncio client (p50 / p99)",
              f"{f['order_rtt_p50_us_asyncio']:,.1f} / {f['order_rtt_p99_us_asyncio']:,.1f} µs")
        t.add("OrderCancelRequest → ER Cancelled (p50 / p99)",
              f"{f['cancel_rtt_p50_us']:,.1f} / {f['cancel_rtt_p99_us']:,.1f} µs")
        t.add("(client: a FixSession in this process; the engine's OMS is not built yet)", "")
    else:
        t.add("order_rtt_p50_us / order_rtt_p99_us", "not measured", "≤ 150 / ≤ 500 µs", "MISSING")
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
