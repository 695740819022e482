"""Execution figures: FIX codec, the session path, the venue's matching engine.

    python -m bench.execution [--quick]

Issue 4's targets: encode NewOrderSingle ≥ 300,000/s, decode ExecutionReport ≥ 150,000/s
(validated), matching ≥ 500,000 orders/s, order round trip over loopback p50 ≤ 150 µs /
p99 ≤ 500 µs. The order round trip is measured against a real ``helmdesk venue`` process over loopback TCP
through the live node (``engine.node.LiveNode``: the kernel, its store writer and desk
publisher, the loop in each idle mode; a strategy submits through the kernel's door), then, for
comparison, from a bare ``FixSession`` on a blocking socket and on asyncio streams. Each
order is a DAY limit far from the market (NewOrderSingle → ExecutionReport New), then
cancelled (OrderCancelRequest → ExecutionReport Cancelled), both timed.

Kill click to cancels (DESIGN.md's second hot path): an engine process with ten working
orders at a venue process; KILL from a client through the command ring, timed to its ack
(which the engine sends after writing every OrderCancelRequest) and to the last Cancelled
record on the event ring.

``fix_er_decode_per_s`` is the issue's full path: ExecutionReport bytes through
``FixSession.receive_data`` (framing, checksum, header checks including SendingTime parsing,
sequence handling) to the application event, then ``Oms.on_message`` applying the fill to its
order (state machine, ExecID check, average price) and returning the ``OrderUpdate``.
``fix_er_codec_decode_per_s`` is the codec alone (``FixDecoder`` + typed reads), the figure
compared with simplefix; ``fix_er_session_decode_per_s`` stops at the session's event.
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


def session_er_rate(n: int, rounds: int, oms: bool = False) -> float:
    """ExecutionReports/s through a logged-on initiator session, typed reads included; with
    ``oms``, on into the order manager, which applies each fill to its order."""
    from engine.execution.oms import Oms
    from engine.execution.orders import ClOrdIds, Order, OrdStatus

    now = time.time_ns()
    best = 0.0
    for _ in range(rounds):
        manager = Oms(ClOrdIds("B", now // 1_000_000), lambda *_a: 1)
        for i in range(n):
            manager.orders["C%d" % i] = Order(cl_ord_id="C%d" % i, symbol="AAPL", side=1, qty=500,
                                             price=190.25, venue="VENUE", status=OrdStatus.NEW)
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
        if oms:
            on_message = manager.on_message
            for raw in msgs:
                for ev in s.receive_data(raw, now):
                    if type(ev) is AppMessage:
                        got += len(on_message("VENUE", ev.message))
        else:
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

    def __init__(self, cpu: int | None = None) -> None:
        """``cpu``: where the venue runs (default: the last CPU, the bench client on the first)."""
        self.dir = tempfile.TemporaryDirectory(prefix="helmdesk-bench-venue-")
        prof = Path(self.dir.name) / "venue.toml"
        prof.write_text(VENUE_PROFILE)
        env = dict(os.environ, HELMDESK_DATA_DIR=self.dir.name)
        cmd = [sys.executable, "-m", "engine.venue", "--profile", str(prof), "--port", "0"]
        if cpu is None and len(os.sched_getaffinity(0)) > 1:  # venue on the last CPU
            cpu = max(os.sched_getaffinity(0))
        if cpu is not None:  # even if this process is pinned elsewhere by now
            cmd = ["taskset", "-c", str(cpu), *cmd]
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


def rtt_node(port: int, n: int, tmp: Path, idle: str = "hybrid", warm: int = 100,
             persist: bool = True) -> tuple[list[int], list[int]]:
    """The engine's order path through the live node (``engine.node.LiveNode``, as
    ``helmdesk engine`` runs it: kernel, shared-memory segment, store writer process, the
    loop's idle mode): a strategy submits through the kernel's door, the round trip ends when
    the ExecutionReport New reaches the strategy's ``on_order`` (after the journal and the desk
    publisher had it); then it cancels, timed to the Cancelled report."""
    from engine.core.intents import BUY, OrderIntent
    from engine.core.profile import parse_profile
    from engine.node import LiveNode
    from engine.strategy.api import NEVER, Strategy

    clock = time.perf_counter_ns

    class RoundTrips(Strategy):
        name = "bench"

        def __init__(self) -> None:
            self.orders: list[int] = []
            self.cancels: list[int] = []
            self.due = 0
            self.cl = ""
            self.t0 = 0
            self.phase = 0
            self.k = 0
            self.stop = lambda: None

        def next_timer_ns(self) -> int:
            return self.due

        def on_timer(self, ctx, now_ns: int) -> None:
            self.due = NEVER
            self.t0 = clock()
            self.k += 1  # a new price each time: the same order again within 50 ms is a duplicate
            r = ctx.submit(OrderIntent(symbol="AAPL", side=BUY, qty=100,
                                       price=round(185.0 + self.k % 500 * 0.01, 2),
                                       venue="BENCHV", source="bench"), now_ns)
            if isinstance(r, str):  # not logged on yet
                self.due = now_ns + 1_000_000
                return
            self.cl, self.phase = r.cl_ord_id, 1

        def on_order(self, ctx, u, o) -> None:
            if o.cl_ord_id != self.cl:
                return
            st = u.status.value
            if self.phase == 1 and st == "New":
                self.orders.append(clock() - self.t0)
                self.phase, self.t0 = 2, clock()
                ctx.cancel(self.cl, ctx.now_ns)
            elif self.phase == 2 and st == "Cancelled":
                self.cancels.append(clock() - self.t0)
                self.phase = 0
                if len(self.orders) >= n + warm:
                    self.stop()
                else:
                    self.due = ctx.now_ns

    data = tmp / f"data-{idle}"
    os.environ["HELMDESK_DATA_DIR"] = str(data)
    profile = parse_profile({
        "engine": {"instance": f"benchrtt{os.getpid() % 100000}{idle[0]}", "idle": idle},
        "feed": {"kind": "sim"},
        "instruments": [{"symbol": "AAPL", "tick": 0.01, "price": 190.0, "update_hz": 1}],
        "venues": [{"name": "BENCHV", "host": "127.0.0.1", "port": port, "sender": "HELM",
                    "target": "BENCHV", "heartbeat_s": 30, "reset_on_logon": True,
                    "market_data": False}],
        "users": {"*": "trader"},
        # the path is measured, not the throttles: a round trip every ~200 µs is 5,000 orders
        # a second, past the default rates (the price collar and the rest still check each one)
        "limits": {"max_orders_per_s": 1_000_000, "max_messages_per_s": 1_000_000,
                   "runaway_orders_per_s": 10_000_000},
    }, tmp / "bench-node.toml")
    bench = RoundTrips()
    node = LiveNode(profile, strategies=[bench], persist=persist)
    bench.stop = node.stop
    try:
        node.run()
    finally:
        node.close()
    return bench.orders[warm:], bench.cancels[warm:]


def bench_order_rtt(quick: bool, f: dict) -> None:
    n = 500 if quick else 5000
    cpus = os.sched_getaffinity(0)
    venue = VenueProcess(cpu=max(cpus))
    if len(cpus) > 1:  # the bench (and the live node in it) on the first CPU, the venue on the last
        os.sched_setaffinity(0, {min(cpus)})
    data = os.environ.get("HELMDESK_DATA_DIR")
    try:
        with tempfile.TemporaryDirectory(prefix="helmdesk-bench-oms-") as tmp:
            orders, cancels = rtt_node(venue.port, n, Path(tmp))
            po, pc = percentiles_us(orders), percentiles_us(cancels)
            f["order_rtt_p50_us"], f["order_rtt_p99_us"] = round(po["p50"], 1), round(po["p99"], 1)
            f["cancel_rtt_p50_us"], f["cancel_rtt_p99_us"] = round(pc["p50"], 1), round(pc["p99"], 1)
            for idle in ("spin", "sleep"):
                p = percentiles_us(rtt_node(venue.port, n, Path(tmp), idle)[0])
                f[f"order_rtt_p50_us_{idle}"] = round(p["p50"], 1)
                f[f"order_rtt_p99_us_{idle}"] = round(p["p99"], 1)
        pb = percentiles_us(rtt_blocking(venue.port, n)[0])
        f["order_rtt_p50_us_blocking"] = round(pb["p50"], 1)
        f["order_rtt_p99_us_blocking"] = round(pb["p99"], 1)
        pa = percentiles_us(rtt_asyncio(venue.port, n))
        f["order_rtt_p50_us_asyncio"] = round(pa["p50"], 1)
        f["order_rtt_p99_us_asyncio"] = round(pa["p99"], 1)
        f["order_rtt_node_vs_blocking_ratio"] = round(
            f["order_rtt_p50_us"] / f["order_rtt_p50_us_blocking"], 3)
    finally:
        venue.close()
        os.sched_setaffinity(0, cpus)  # what follows places its own processes
        if data is None:
            os.environ.pop("HELMDESK_DATA_DIR", None)
        else:
            os.environ["HELMDESK_DATA_DIR"] = data


def bench_kill_to_cancels(quick: bool, f: dict) -> None:
    """Kill click to cancels: an engine process with N working orders at a venue process;
    KILL through the command ring → ack (sent after every OrderCancelRequest is written) →
    every order Cancelled on the event ring (the venue's reports back through the engine)."""
    from bench._common import EngineProcess
    from engine.ipc import EngineClient, Scope, Verb
    from engine.ipc.commands import confirmation_code, order_text
    from engine.ipc.events import decode_order

    rounds, n_orders = (5, 10) if quick else (30, 10)
    cpus = sorted(os.sched_getaffinity(0))
    # the engine gets the last CPU to itself; the venue shares the first with this client
    venue = VenueProcess(cpu=cpus[0])
    extra = ('[[venues]]\nname = "BENCHV"\nhost = "127.0.0.1"\n'
             f'port = {venue.port}\nsender = "HELM"\ntarget = "BENCHV"\n'
             'reset_on_logon = true\nsymbols = ["AAPL"]\n'
             # each round sends the same ten orders again: not duplicates, not a runaway
             '[limits]\nduplicate_window_ms = 0\nmax_orders_per_s = 100000\n'
             'max_messages_per_s = 100000\n')
    users = '"*" = "trader,risk_manager"'  # the OS user's role: one person trades and kills
    acks, done, written = [], [], []
    try:
        with EngineProcess(f"benchkill{os.getpid()}", idle="hybrid", users=users, extra=extra,
                           cores=[max(os.sched_getaffinity(0))]) as eng:
            os.environ["HELMDESK_DATA_DIR"] = str(eng.data_dir)
            with EngineClient(eng.instance) as c, EngineClient(eng.instance) as r:
                symbols = [i.symbol for i in c.instruments]
                aapl = symbols.index("AAPL")
                deadline = time.monotonic() + 15
                while c.venues() != (("BENCHV", True, True),):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the engine did not log on to the venue")
                    time.sleep(0.01)
                status: dict[str, str] = {}

                def drain() -> None:
                    for rec in c.poll_events():
                        o = decode_order(rec, symbols)
                        if o is not None:
                            status[o.cl_ord_id] = o.status

                def wait(ids, state) -> None:
                    end = time.monotonic() + 10
                    while not all(status.get(i) == state for i in ids):
                        if time.monotonic() > end:
                            raise RuntimeError(f"orders not {state} in 10 s")
                        drain()

                for _ in range(rounds):
                    ids = []
                    for k in range(n_orders):
                        ack = c.request(Verb.ORDER, Scope.INSTRUMENT, aapl, arg0=100,
                                        arg1=185.0 + k * 0.01, text=order_text("BENCHV", "buy"))
                        if not ack.accepted:
                            raise RuntimeError(f"order refused: {ack.reason}")
                        ids.append(ack.reason.split()[1])
                    wait(ids, "New")
                    t0 = time.perf_counter_ns()
                    ack = r.request(Verb.KILL, text="bench")
                    acks.append(time.perf_counter_ns() - t0)
                    if not ack.reason.endswith(f"{n_orders} cancels sent"):
                        raise RuntimeError(f"unexpected kill ack: {ack.reason}")
                    wait(ids, "Cancelled")
                    done.append(time.perf_counter_ns() - t0)
                    r.request(Verb.REARM, text="bench round over",
                              arg1=confirmation_code("global"))
            # the engine's own figure: command read → the last OrderCancelRequest written
            log_path = eng.data_dir / "logs" / f"engine-{eng.instance}.log"
            deadline = time.monotonic() + 5
            while len(written := re.findall(r"cancels written (\d+) µs", log_path.read_text())) < rounds:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    finally:
        venue.close()
    if written:
        pw = percentiles_us([int(w) * 1000 for w in written])
        f["kill_cancels_written_p50_us"] = round(pw["p50"], 1)
        f["kill_cancels_written_p99_us"] = round(pw["p99"], 1)
    pk, pd = percentiles_us(acks), percentiles_us(done)
    f["kill_ack_p50_us"], f["kill_ack_p99_us"] = round(pk["p50"], 1), round(pk["p99"], 1)
    f["kill_cancelled_p50_us"] = round(pd["p50"], 1)
    f["kill_cancelled_p99_us"] = round(pd["p99"], 1)
    f["kill_orders"] = n_orders


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.execution",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    args = p.parse_args(argv)
    progress("FIX codec")
    f = dict(_fixcodec.run(args.quick))
    progress("ExecutionReports through the session")
    n_er, rounds_er = (5_000, 2) if args.quick else (50_000, 3)
    f["fix_er_codec_decode_per_s"] = f.pop("fix_er_decode_per_s")
    # the codec alone; bench.ingest owns fix_md_incremental_decode_per_s (bytes → MD_EVENT)
    f["fix_md_codec_decode_per_s"] = f.pop("fix_md_incremental_decode_per_s")
    f["fix_er_session_decode_per_s"] = round(session_er_rate(n_er, rounds_er), 2)
    f["fix_er_decode_per_s"] = round(session_er_rate(n_er, rounds_er, oms=True), 2)
    progress("order round trips against a venue process")
    try:
        bench_order_rtt(args.quick, f)
    except Exception as e:  # keep the other figures; say what failed
        progress(f"order round trip FAILED: {e!r}")
    progress("kill click to cancels through an engine process")
    try:
        bench_kill_to_cancels(args.quick, f)
    except Exception as e:
        progress(f"kill to cancels FAILED: {e!r}")
    progress("matching engine")
    f.update({k: v for k, v in _matching.run(args.quick).items() if not k.startswith("_")})

    t = Table(f"Helmdesk execution bench ({'quick' if args.quick else 'full'}), "
              f"Python {sys.version.split()[0]}")
    t.section("FIX 4.4 encode / decode (simplefix measured in the same run)")
    t.add("NewOrderSingle encode, ours", fmt_rate(f["fix_nos_encode_per_s"]),
          f"≥ {TARGET_NOS:,} /s", verdict(f["fix_nos_encode_per_s"], TARGET_NOS, higher_is_better=True))
    t.add("NewOrderSingle encode, simplefix", fmt_rate(f["simplefix_nos_encode_per_s"]))
    t.add("ExecutionReport bytes → FixSession → OMS order event (fix_er_decode_per_s)",
          fmt_rate(f["fix_er_decode_per_s"]), f"≥ {TARGET_ER:,} /s",
          verdict(f["fix_er_decode_per_s"], TARGET_ER, higher_is_better=True))
    t.add("ExecutionReport decode, codec alone (validated + typed reads)",
          fmt_rate(f["fix_er_codec_decode_per_s"]))
    t.add("ExecutionReport through FixSession → event", fmt_rate(f["fix_er_session_decode_per_s"]))
    t.add("ExecutionReport decode + FIX 4.4 dictionary check (fix_er_decode_validate_per_s)",
          fmt_rate(f["fix_er_decode_validate_per_s"]),
          f"{f['fix_er_decode_validate_vs_simplefix_ratio']:.1f} × simplefix")
    t.add("ExecutionReport decode, simplefix", fmt_rate(f["simplefix_plain_er_decode_per_s"]))
    t.add("MarketDataIncrementalRefresh (4 entries), ours",
          fmt_rate(f["fix_md_codec_decode_per_s"]))
    t.section("matching engine (one instrument, seeded realistic flow)")
    t.add("requests/s", fmt_rate(f["matching_orders_per_s"]), f"≥ {TARGET_MATCH:,} /s",
          verdict(f["matching_orders_per_s"], TARGET_MATCH, higher_is_better=True))
    t.add("per request p50 / p99",
          f"{f['matching_order_p50_ns']:,} / {f['matching_order_p99_ns']:,} ns")
    t.section("order round trip → venue process → ExecutionReport (loopback TCP)")
    if "order_rtt_p99_us" in f:
        ok = f["order_rtt_p50_us"] <= 150 and f["order_rtt_p99_us"] <= 500
        t.add("live node (hybrid idle, store writer, desk publisher): submit → ER New",
              f"{f['order_rtt_p50_us']:,.1f} / {f['order_rtt_p99_us']:,.1f} µs", "≤ 150 / ≤ 500 µs",
              "ok" if ok else "MISS")
        ratio = f["order_rtt_node_vs_blocking_ratio"]
        t.add("live node p50 / bare blocking-socket p50 (order_rtt_node_vs_blocking_ratio)",
              f"{ratio:.2f}×", "≤ 1.25×", "ok" if ratio <= 1.25 else "MISS")
        t.add("live node: OrderCancelRequest → ER Cancelled applied (p50 / p99)",
              f"{f['cancel_rtt_p50_us']:,.1f} / {f['cancel_rtt_p99_us']:,.1f} µs")
        t.add("live node, idle spin (p50 / p99)",
              f"{f['order_rtt_p50_us_spin']:,.1f} / {f['order_rtt_p99_us_spin']:,.1f} µs")
        t.add("live node, idle sleep (p50 / p99)",
              f"{f['order_rtt_p50_us_sleep']:,.1f} / {f['order_rtt_p99_us_sleep']:,.1f} µs")
        t.add("bare FixSession, blocking socket (p50 / p99)",
              f"{f['order_rtt_p50_us_blocking']:,.1f} / {f['order_rtt_p99_us_blocking']:,.1f} µs")
        t.add("bare FixSession, asyncio streams (p50 / p99)",
              f"{f['order_rtt_p50_us_asyncio']:,.1f} / {f['order_rtt_p99_us_asyncio']:,.1f} µs")
    else:
        t.add("order_rtt_p50_us / order_rtt_p99_us", "not measured", "≤ 150 / ≤ 500 µs", "MISSING")
    t.section("kill click to cancels (engine process, hybrid idle, venue process)")
    if "kill_ack_p99_us" in f:
        if "kill_cancels_written_p50_us" in f:
            t.add(f"in the engine: KILL read → {f['kill_orders']} cancels written (p50 / p99)",
                  f"{f['kill_cancels_written_p50_us']:,.1f} / "
                  f"{f['kill_cancels_written_p99_us']:,.1f} µs")
        t.add(f"KILL → ack at the client, {f['kill_orders']} cancels written first (p50 / p99)",
              f"{f['kill_ack_p50_us']:,.1f} / {f['kill_ack_p99_us']:,.1f} µs")
        t.add("KILL → every order Cancelled on the event ring (p50 / p99)",
              f"{f['kill_cancelled_p50_us']:,.1f} / {f['kill_cancelled_p99_us']:,.1f} µs")
    else:
        t.add("kill_ack_p50_us", "not measured", "", "MISSING")
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
