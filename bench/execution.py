"""Execution figures: FIX codec, the session path, the venue's matching engine.

    python -m bench.execution [--quick]

Issue 4's targets: encode NewOrderSingle ≥ 300,000/s, decode ExecutionReport ≥ 150,000/s
(validated), matching ≥ 500,000 orders/s, order round trip over loopback p50 ≤ 150 µs /
p99 ≤ 500 µs. The order round trip is measured against a real ``helmdesk venue`` process over loopback TCP
from the engine's own trading code (``engine.execution.trading``: OMS on a polled
non-blocking socket, driven in a spinning loop as the engine drives it), then, for
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
import select
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
        if len(os.sched_getaffinity(0)) > 1:  # venue on the last CPU, client on the first
            cpu = max(os.sched_getaffinity(0)) if cpu is None else cpu
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


def rtt_engine(port: int, n: int, store: str, tmp: Path, wait: str = "select"
               ) -> tuple[list[int], list[int]]:
    """The engine's own order path: ``Trading`` (the OMS on a ``PolledConnection``) polled in a
    spinning loop as the engine's loop polls it; round trip from ``place`` to the OMS applying
    the venue's ExecutionReport. ``store``: the session store: "memory", "writebehind" (as the
    engine runs: ``WriteBehindFixStore`` on the store's writer process, and every order change
    handed to it too) or "sql" (a synchronous ``SqlStore``, what the venue uses)."""
    from engine.core.profile import InstrumentConfig, VenueLinkConfig
    from engine.execution.orders import ClOrdIds, OrdStatus
    from engine.execution.trading import Trading
    from engine.fix.store import MemoryStore, SqlStore

    cfg = VenueLinkConfig(name="BENCHV", host="127.0.0.1", port=port, sender="HELM",
                          target="BENCHV", heartbeat_s=30, reset_on_logon=True, symbols=("AAPL",),
                          market_data=False)  # order round trips only
    inst = InstrumentConfig(symbol="AAPL", tick=0.01, price=190.0)
    stores = []
    store_link = None
    on_order = lambda u, o: None  # noqa: E731
    if store == "writebehind":
        from engine.store import StoreLink, WriteBehindFixStore

        store_link = StoreLink(f"benchoms{os.getpid()}", f"sqlite:///{tmp / 'engine.db'}")
        on_order = lambda u, o: store_link.put_order_state(o, time.time_ns())  # noqa: E731

    def make_store(_cfg):
        if store == "memory":
            st = MemoryStore()
        elif store == "writebehind":
            st = WriteBehindFixStore(store_link, f"bench-{time.time_ns()}", None)
        else:
            st = SqlStore(f"sqlite:///{tmp / 'fix.db'}", "b")
        stores.append(st)
        return st

    t = Trading((cfg,), (inst,), ClOrdIds(f"E{store[0]}", time.time_ns() // 1_000_000),
                make_store, on_order=on_order, on_event=lambda lvl, text: None)
    link = t.links["BENCHV"]
    deadline = time.monotonic() + 10
    while not link.up:
        t.poll(time.time_ns())
        if time.monotonic() > deadline:
            raise RuntimeError(f"no logon: {link.conn.last_reason}")
    clock = time.perf_counter_ns
    wall = time.time_ns
    if wait == "spin":
        poll = t.poll
    else:  # as the engine's loop waits when idle: select on its sockets (≤ 1 ms), then poll
        sock = link.conn.sock

        def poll(now: int) -> None:
            select.select((sock,), (), (), 0.001)
            t.poll(wall())
    orders, cancels = [], []
    pending, cancelled = OrdStatus.PENDING_NEW, OrdStatus.CANCELLED
    try:
        for _ in range(n):
            t0 = clock()
            o = t.place("BENCHV", "AAPL", 1, 100, 100.0, "day", wall())
            while o.status is pending:
                poll(wall())
            orders.append(clock() - t0)
            t0 = clock()
            t.cancel(o.cl_ord_id, wall())
            while o.status is not cancelled:
                poll(wall())
            cancels.append(clock() - t0)
            if store_link is not None:
                store_link.poll()  # as the engine's loop does every millisecond
    finally:
        t.close(wall())
        for st in stores:
            if hasattr(st, "close"):
                st.close()
        if store_link is not None:
            store_link.close()
    return orders, cancels


def bench_order_rtt(quick: bool, f: dict) -> None:
    n = 500 if quick else 5000
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    venue = VenueProcess()
    try:
        with tempfile.TemporaryDirectory(prefix="helmdesk-bench-oms-") as tmp:
            rtt_engine(venue.port, 100, "memory", Path(tmp))  # warm up both ends
            orders, cancels = rtt_engine(venue.port, n, "writebehind", Path(tmp))
            po, pc = percentiles_us(orders), percentiles_us(cancels)
            f["order_rtt_p50_us"], f["order_rtt_p99_us"] = round(po["p50"], 1), round(po["p99"], 1)
            f["cancel_rtt_p50_us"], f["cancel_rtt_p99_us"] = round(pc["p50"], 1), round(pc["p99"], 1)
            pm = percentiles_us(rtt_engine(venue.port, n, "memory", Path(tmp))[0])
            f["order_rtt_p50_us_memorystore"] = round(pm["p50"], 1)
            f["order_rtt_p99_us_memorystore"] = round(pm["p99"], 1)
            pp = percentiles_us(rtt_engine(venue.port, n, "writebehind", Path(tmp), "spin")[0])
            f["order_rtt_p50_us_spin"] = round(pp["p50"], 1)
            f["order_rtt_p99_us_spin"] = round(pp["p99"], 1)
            ps = percentiles_us(rtt_engine(venue.port, n, "sql", Path(tmp))[0])
            f["order_rtt_p50_us_sqlstore"] = round(ps["p50"], 1)
            f["order_rtt_p99_us_sqlstore"] = round(ps["p99"], 1)
        pb = percentiles_us(rtt_blocking(venue.port, n)[0])
        f["order_rtt_p50_us_blocking"] = round(pb["p50"], 1)
        f["order_rtt_p99_us_blocking"] = round(pb["p99"], 1)
        pa = percentiles_us(rtt_asyncio(venue.port, n))
        f["order_rtt_p50_us_asyncio"] = round(pa["p50"], 1)
        f["order_rtt_p99_us_asyncio"] = round(pa["p99"], 1)
    finally:
        venue.close()


def bench_kill_to_cancels(quick: bool, f: dict) -> None:
    """Kill click to cancels: an engine process with N working orders at a venue process;
    KILL through the command ring → ack (sent after every OrderCancelRequest is written) →
    every order Cancelled on the event ring (the venue's reports back through the engine)."""
    from bench._common import EngineProcess
    from engine.ipc import EngineClient, Scope, Verb
    from engine.ipc.commands import order_text
    from engine.ipc.events import decode_order

    rounds, n_orders = (5, 10) if quick else (30, 10)
    cpus = sorted(os.sched_getaffinity(0))
    # the engine gets the last CPU to itself; the venue shares the first with this client
    venue = VenueProcess(cpu=cpus[0])
    extra = ('[[venues]]\nname = "BENCHV"\nhost = "127.0.0.1"\n'
             f'port = {venue.port}\nsender = "HELM"\ntarget = "BENCHV"\n'
             'reset_on_logon = true\nsymbols = ["AAPL"]\n')
    users = 'benchtrader = "trader"\n"*" = "risk_manager"'
    acks, done, written = [], [], []
    try:
        with EngineProcess(f"benchkill{os.getpid()}", idle="hybrid", users=users, extra=extra,
                           cores=[max(os.sched_getaffinity(0))]) as eng:
            os.environ["HELMDESK_DATA_DIR"] = str(eng.data_dir)
            with EngineClient(eng.instance, user="benchtrader") as c, \
                    EngineClient(eng.instance, user="benchrisk") as r:
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
                                        arg1=100.0 + k * 0.01, text=order_text("BENCHV", "buy"))
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
                    r.request(Verb.REARM, text="bench round over")
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
        t.add("engine trading code, polled socket + select, write-behind store: NOS → ER New",
              f"{f['order_rtt_p50_us']:,.1f} / {f['order_rtt_p99_us']:,.1f} µs", "≤ 150 / ≤ 500 µs",
              "ok" if ok else "MISS")
        t.add("engine OMS: OrderCancelRequest → ER Cancelled applied (p50 / p99)",
              f"{f['cancel_rtt_p50_us']:,.1f} / {f['cancel_rtt_p99_us']:,.1f} µs")
        t.add("same, spinning on the socket instead of select (p50 / p99)",
              f"{f['order_rtt_p50_us_spin']:,.1f} / {f['order_rtt_p99_us_spin']:,.1f} µs")
        t.add("same, session state in memory only (p50 / p99)",
              f"{f['order_rtt_p50_us_memorystore']:,.1f} / {f['order_rtt_p99_us_memorystore']:,.1f} µs")
        t.add("same, a synchronous SqlStore session store (p50 / p99)",
              f"{f['order_rtt_p50_us_sqlstore']:,.1f} / {f['order_rtt_p99_us_sqlstore']:,.1f} µs")
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
