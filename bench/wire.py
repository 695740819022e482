"""Tick to order on the wire: market-data bytes in → a strategy's NewOrderSingle bytes out.

    python -m bench.wire [--quick]

A real engine process (``bench._wire_engine``: ``python -m engine`` plus stamps) runs with
``idle = "spin"`` pinned to one CPU; this process is pinned to the other and is the engine's
one venue, a minimal FIX 4.4 acceptor on 127.0.0.1 that is both its market-data source
(``[feed] kind = "venues"``) and its order venue. Each sample:

1. the bench encodes one MarketDataIncrementalRefresh (35=X) that moves an instrument's best
   bid and ask (per side: delete the old level 1, a new level 1; four entries), stamps
   ``t0 = perf_counter_ns()`` and writes it (one non-blocking ``send``: an empty loopback
   buffer takes it whole);
2. it busy-polls its non-blocking socket, stamping ``perf_counter_ns()`` after every ``recv``
   that returns bytes, until a whole NewOrderSingle (35=D) is in: the stamp of the read that
   completed it is ``t1``, and ``t1 - t0`` the sample (``tick_to_order``). It goes on polling
   until all the move's orders are in (``tick_to_all_orders``);
3. untimed: the engine's messages go through a ``FixSession`` (acceptor): a DAY order is
   acknowledged (ExecutionReport New), an IOC one filled whole at its limit, a cancel
   confirmed (Canceled); then it waits 2-5 ms, sleeping in short steps (the engine's helper
   processes, its store writer and VaR, run on this CPU) and goes on.

A warm-up is discarded. ``perf_counter_ns`` is CLOCK_MONOTONIC, one clock for every process,
so the engine's own stamps (the read that brought the X, the NewOrderSingle written) line up
with the bench's: each sample splits into wire in, engine, wire out. The loopback cost is
measured in the same run by a bare ping-pong with a child process pinned where the engine
runs (busy-polling both ends, the message's size, the same gaps). A second, shorter engine run
per strategy stamps each stage of the engine's turn and the time each part of it takes (about
twenty wrappers: where the time goes, not the figure). Other processes' use of the machine
during the samples is reported: above ``FOREIGN_OK_PCT`` the figures are marked NOISY.

"A signal that trades" — the main keys are the market maker's (``kind = "marketmaker"``,
engine/strategy/marketmaker.py, with its defaults: a move of the mid cancels both quotes and
sends new ones; in a tree without it, ``bench._wire_engine.WireQuoter``, which requotes the
same way). Every move is a decision that puts orders on the wire, through the whole hot
path (FIX decode, RptSeq checks, normalize, books, ``on_book``, pre-trade risk, OMS, FIX
encode, send), and a market maker lives on that path at every tick. The pairs strategy
(``pairs_`` keys) trades a signal too, an entry when one leg's move takes the spread's z past
``entry_z`` (``pairs_signal`` says how the bench makes that happen), but its decision is rare
by design and its orders go through the smart order router: its figure is reported beside,
not as, the tick-to-order of the desk.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench._common import (
    ROOT,
    Table,
    emit_json,
    progress,
    shm_leftovers,
    stop_process,
    tail,
    verdict,
)

TARGET_P50_US = 50.0
TARGET_P99_US = 250.0
VENUE = "WIREV"
SENDER = b"WIREV"  # the acceptor's CompID
ENGINE_ID = b"HELM"
TICK = 0.01
PRICE = 100.0
SIZE = 100
GAP_S = (0.002, 0.005)
ORDER_TIMEOUT_S = 0.5  # no NewOrderSingle this long after a move: the sample is missed
_PROBE = 64  # busy-poll turns between deadline checks
FOREIGN_OK_PCT = 5.0  #: other processes' share of the machine above which figures are noisy


# -- the profile -----------------------------------------------------------------------------------
@dataclass
class Signal:
    """One strategy to measure: its profile entry and how the bench makes it trade."""

    key: str  #: prefix of its JSON keys ("" for the main figure)
    kind: str
    toml: str  #: its [[strategies]] table
    symbols: tuple[str, ...]
    orders_per_move: int  #: NewOrderSingles a move should bring
    moves: object = None  #: callable(rng, venue) -> (symbol, new mid in ticks): the timed move
    warmup: object = None  #: callable(rng, venue), once before the samples (untimed)
    before: object = None  #: callable(rng, venue), before each timed move (untimed)
    after: object = None  #: callable(rng, venue), after each timed move (untimed)
    extra_limits: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)  #: what its hooks counted (reported)


def profile_text(instance: str, port: int, engine_cpu: int, sig: Signal) -> str:
    syms = sig.symbols  # the venue streams exactly these (another would go stale)
    lines = [
        "[engine]", f'instance = "{instance}"', 'idle = "spin"', f"cores = [{engine_cpu}]", "",
        "[desk]", 'name = "bench-wire"', "",
        "[feed]", 'kind = "venues"', "",
    ]
    for s in syms:
        lines += ["[[instruments]]", f'symbol = "{s}"', f"tick = {TICK}", f"price = {PRICE}", ""]
    lines += [
        "[[venues]]", f'name = "{VENUE}"', 'host = "127.0.0.1"', f"port = {port}",
        f'sender = "{ENGINE_ID.decode()}"', f'target = "{SENDER.decode()}"', "heartbeat_s = 30",
        "reset_on_logon = true", "market_data = true", "",
        "[users]", '"*" = "viewer"', "",
        # the path is measured, not the throttles: every order must pass. A random walk
        # comes back to a price within 50 ms (duplicate_window_ms = 0); the acceptor does no
        # matching (self_match = "venue")
        "[limits]", "max_orders_per_s = 1000000", "max_messages_per_s = 1000000",
        "runaway_orders_per_s = 10000000", "max_open_orders = 1000000",
        "duplicate_window_ms = 0", 'self_match = "venue"',
        *(f"{k} = {v}" for k, v in sig.extra_limits.items()), "",
        sig.toml,
    ]
    return "\n".join(lines) + "\n"


# -- the acceptor ----------------------------------------------------------------------------------
class _Book:
    """A one-level book per side (mid ± 1 tick) and the subscription that streams it."""

    __slots__ = ("symbol", "symbol_b", "mid", "req_id", "rpt")

    def __init__(self, symbol: str, mid: int) -> None:
        self.symbol = symbol
        self.symbol_b = symbol.encode()
        self.mid = mid  # in ticks
        self.req_id: bytes | None = None
        self.rpt = 0


def _px(ticks: int) -> bytes:
    return b"%.2f" % (ticks * TICK)


def _move_body(b: _Book, mid: int) -> list:
    """An X body moving ``b``'s bid and ask to ``mid`` ± 1 tick: per side, delete the old
    level 1 and a new level 1 (the venue's order of entries: deletes first)."""
    r = b.rpt
    s = b.symbol_b
    entries: list = []
    for typ, old, new in ((b"0", b.mid - 1, mid - 1), (b"1", b.mid + 1, mid + 1)):
        entries += [(279, b"2"), (269, typ), (55, s), (270, _px(old)), (271, SIZE),
                    (1023, 1), (83, r + 1),
                    (279, b"0"), (269, typ), (55, s), (270, _px(new)), (271, SIZE),
                    (1023, 1), (83, r + 2)]
        r += 2
    return [(262, b.req_id or b"md.WIREV.AAA.1"), (268, 4), *entries]


class Venue:
    """The engine's one FIX venue: market data and orders on one acceptor session."""

    def __init__(self, symbols) -> None:
        from engine.fix.session import FixSession, SessionConfig
        from engine.fix.store import MemoryStore

        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))  # loopback only
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.sock: socket.socket | None = None
        self.session = FixSession(SessionConfig(
            sender=SENDER.decode(), target=ENGINE_ID.decode(), initiator=False,
            reset_on_logon=True), MemoryStore())
        self.books = {s: _Book(s, round(PRICE / TICK)) for s in symbols}
        self.books_by_b = {b.symbol_b: b for b in self.books.values()}
        self.orders: dict[bytes, list] = {}  # ClOrdID -> [symbol, side, qty, price, OrderID]
        self.next_id = 0
        self.counts = dict.fromkeys(("orders", "fills", "cancels", "replaces", "status",
                                     "unknown", "md_requests", "other"), 0)
        self.logged_on = False
        self.cl_seen: list[bytes] = []  # ClOrdIDs of the NewOrderSingles, in arrival order

    def accept(self, timeout: float, alive) -> None:
        self.listener.settimeout(0.2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock, _ = self.listener.accept()
                break
            except socket.timeout:
                alive()
                if time.monotonic() > deadline:
                    raise TimeoutError("the engine did not connect to the bench's venue")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        self.session.connect(time.time_ns())

    def wait_ready(self, alive, timeout: float = 20.0) -> None:
        """The engine's connection accepted, then its Logon and its subscriptions (``alive()``
        raises if the engine died meanwhile)."""
        self.accept(30.0, alive)
        deadline = time.monotonic() + timeout
        while not (self.logged_on and self.subscribed()):
            alive()
            if time.monotonic() > deadline:
                raise TimeoutError("the engine did not log on and subscribe")
            self.pump(0.01)

    def close(self) -> None:
        for s in (self.sock, self.listener):
            if s is not None:
                s.close()

    # -- untimed: everything the engine sends --------------------------------------------------
    def feed(self, data: bytes) -> None:
        from engine.fix.session import AppMessage, Disconnect, LoggedOn

        now = time.time_ns()
        for e in self.session.receive_data(data, now):
            if type(e) is AppMessage:
                self._on_app(e.message, now)
            elif isinstance(e, LoggedOn):
                self.logged_on = True
            elif isinstance(e, Disconnect):
                raise RuntimeError(f"the engine's session ended: {e.reason}")
        self.flush()

    def flush(self) -> None:
        out = self.session.data_to_send()
        if out:
            self.sock.setblocking(True)
            try:
                self.sock.sendall(out)
            finally:
                self.sock.setblocking(False)

    def pump(self, seconds: float, sleep: bool = True) -> None:
        """Answer whatever the engine sends for ``seconds`` (sleeping between reads)."""
        end = time.perf_counter() + seconds
        while True:
            self.drain()
            left = end - time.perf_counter()
            if left <= 0:
                return
            if sleep:
                time.sleep(min(left, 0.0005))

    def drain(self) -> int:
        n = 0
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not data:
                raise RuntimeError("the engine closed the connection")
            n += len(data)
            self.feed(data)
        self.session.tick(time.time_ns())  # heartbeats, test requests
        self.flush()
        return n

    def _on_app(self, m, now: int) -> None:
        t = m.msg_type
        if t == b"D":
            self.counts["orders"] += 1
            cl = m.get(11)
            self.cl_seen.append(cl)
            self.next_id += 1
            oid = b"W%d" % self.next_id
            o = [m.get(55), m.get(54), m.get(38), m.get(44), oid]
            if m.get(59) in (b"3", b"4"):  # IOC, FOK: filled whole at the limit, at once
                self.counts["fills"] += 1
                self._report(now, cl, None, o, b"F", b"2", b"0",
                             fill=(o[2], o[3] or _px(self.books_by_b[o[0]].mid)))
                return
            self.orders[cl] = o
            self._report(now, cl, None, o, b"0", b"0", o[2])
        elif t == b"F":
            cl, orig = m.get(11), m.get(41)
            o = self.orders.pop(orig, None)
            if o is None:
                self.counts["unknown"] += 1
                self.session.send(b"9", [(37, b"NONE"), (11, cl), (41, orig), (39, b"8"),
                                         (434, b"1"), (102, b"1"), (58, b"unknown order")], now)
                return
            self.counts["cancels"] += 1
            self._report(now, cl, orig, o, b"4", b"4", b"0")
        elif t == b"G":
            cl, orig = m.get(11), m.get(41)
            o = self.orders.pop(orig, None)
            if o is None:
                self.counts["unknown"] += 1
                self.session.send(b"9", [(37, b"NONE"), (11, cl), (41, orig), (39, b"8"),
                                         (434, b"2"), (102, b"1"), (58, b"unknown order")], now)
                return
            self.counts["replaces"] += 1
            o = [o[0], o[1], m.get(38), m.get(44) or o[3], o[4]]
            self.orders[cl] = o
            self._report(now, cl, orig, o, b"5", b"0", o[2])
        elif t == b"H":
            self.counts["status"] += 1
            cl = m.get(11)
            o = self.orders.get(cl)
            if o is not None:
                self._report(now, cl, None, o, b"I", b"0", o[2])
        elif t == b"V":
            self.counts["md_requests"] += 1
            self._on_md_request(m, now)
        else:
            self.counts["other"] += 1

    def _report(self, now: int, cl: bytes, orig: bytes | None, o: list, exec_type: bytes,
                status: bytes, leaves: bytes, fill: tuple[bytes, bytes] | None = None) -> None:
        from engine.fix.codec import utc_timestamp

        self.next_id += 1
        body = [(37, o[4]), (11, cl)]
        if orig is not None:
            body.append((41, orig))
        body += [(17, b"E%d" % self.next_id), (150, exec_type), (39, status), (55, o[0]),
                 (54, o[1]), (38, o[2]), (40, b"2")]
        if o[3]:
            body.append((44, o[3]))
        body.append((59, b"3" if fill else b"0"))
        if fill:
            body += [(32, fill[0]), (31, fill[1]), (151, b"0"), (14, fill[0]), (6, fill[1])]
        else:
            body += [(151, leaves), (14, b"0"), (6, b"0")]
        body.append((60, utc_timestamp(now)))
        self.session.send(b"8", body, now)

    def _on_md_request(self, m, now: int) -> None:
        req = m.get(262)
        sub = m.get(263)
        sym = m.get(55)
        book = next((b for b in self.books.values() if b.symbol_b == sym), None)
        if sub == b"2":
            if book is not None and book.req_id == req:
                book.req_id = None
            return
        if book is None:
            self.session.send(b"Y", [(262, req), (281, b"0"), (58, b"unknown symbol")], now)
            return
        book.req_id = req
        entries = [(269, b"0"), (270, _px(book.mid - 1)), (271, SIZE), (1023, 1),
                   (269, b"1"), (270, _px(book.mid + 1)), (271, SIZE), (1023, 1)]
        self.session.send(b"W", [(262, req), (55, book.symbol_b), (83, book.rpt), (268, 2),
                                 *entries], now)

    # -- timed: one move ----------------------------------------------------------------------
    def move_message(self, symbol: str, mid: int) -> bytes:
        """The bytes of one X moving ``symbol``'s bid and ask to ``mid`` ± 1 tick."""
        b = self.books[symbol]
        body = _move_body(b, mid)
        b.rpt += 4
        b.mid = mid
        self.session.send(b"X", body, time.time_ns())
        return self.session.data_to_send()

    def send_move(self, symbol: str, mid: int) -> None:
        """An untimed move (answered later, by ``pump``)."""
        data = self.move_message(symbol, mid)
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)

    def wait_orders(self, n: int, timeout: float) -> bool:
        """Answer the engine until ``n`` NewOrderSingles have come (True) or ``timeout``."""
        end = time.perf_counter() + timeout
        while len(self.cl_seen) < n:
            if time.perf_counter() > end:
                return False
            self.drain()
        return True

    def subscribed(self) -> bool:
        return all(b.req_id is not None for b in self.books.values())


def timed_move(venue: Venue, data: bytes, orders: int, clock=time.perf_counter_ns):
    """Send ``data`` (an X), busy-poll until ``orders`` NewOrderSingles are in (or the
    timeout); return (t0, t_first_order, t_last_order, bytes read). None stamps: missed."""
    sock = venue.sock
    recv = sock.recv
    buf = b""
    t_first = t_last = None
    seen = 0
    scan = 0
    t0 = clock()
    sent = sock.send(data)  # non-blocking: an empty loopback buffer takes it whole
    if sent < len(data):
        sock.setblocking(True)
        sock.sendall(data[sent:])
        sock.setblocking(False)
    deadline = t0 + int(ORDER_TIMEOUT_S * 1e9)
    k = 0
    while True:
        try:
            chunk = recv(65536)
        except BlockingIOError:
            k += 1
            if k % _PROBE == 0 and clock() > deadline:
                break
            continue
        t = clock()
        if not chunk:
            raise RuntimeError("the engine closed the connection")
        buf += chunk
        while True:  # whole NewOrderSingles now in the buffer
            i = buf.find(b"\x0135=D\x01", scan)
            if i < 0:
                break
            j = buf.find(b"\x0110=", i)
            if j < 0 or len(buf) < j + 8:
                break
            scan = j + 8
            seen += 1
            if t_first is None:
                t_first = t
            t_last = t
        if seen >= orders:
            break
    return t0, t_first, t_last, buf


# -- the engine process ----------------------------------------------------------------------------
class WireEngine:
    """An engine process from a throw-away profile and data directory (a context manager:
    stopped, SIGTERM then SIGKILL, its segment and directory removed, whatever happened)."""

    def __init__(self, tag: str, profile: str, *, stages: bool = False) -> None:
        self.instance = f"wire{os.getpid() % 100000}{tag}"[:23]
        self._tmp = tempfile.TemporaryDirectory(prefix=f"helmdesk-bench-wire-{tag}-")
        self.dir = Path(self._tmp.name)
        self.data_dir = self.dir / "data"
        self.profile = self.dir / "engine.toml"
        self.trace = self.dir / "trace.json"
        self.stderr_path = self.dir / "engine.stderr"
        self.text = profile.replace("@INSTANCE@", self.instance)
        self.stages = stages
        self.proc: subprocess.Popen | None = None
        self.rc: int | None = None
        self.records: list[dict] = []
        self.log = ""

    def __enter__(self) -> "WireEngine":
        from engine.core.profile import load_profile

        try:
            self.data_dir.mkdir(mode=0o700)
            self.profile.write_text(self.text)
            load_profile(self.profile)  # refused here, with file, key and reason, if wrong
            env = {**os.environ, "HELMDESK_DATA_DIR": str(self.data_dir),
                   "HELMDESK_WIRE_TRACE": str(self.trace),
                   "HELMDESK_WIRE_STAGES": "1" if self.stages else "0"}
            with open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "bench._wire_engine", "--profile", str(self.profile),
                     "--parent-pid", str(os.getpid())],
                    cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"engine {self.instance} exited with code {self.proc.returncode}:"
                               f"\n{tail(self.stderr_path)}")

    def stop(self) -> None:
        if self.proc is None:
            return
        from engine.ipc.layout import segment_name
        from engine.ipc.segment import unlink_segment

        self.rc = stop_process(self.proc, grace=10.0)
        self.proc = None
        unlink_segment(segment_name(self.instance))  # a no-op after a clean stop
        try:
            self.records = json.loads(self.trace.read_text())
        except (OSError, ValueError):
            self.records = []
        try:
            self.log = (self.data_dir / "logs" / f"engine-{self.instance}.log").read_text(
                errors="replace")
        except OSError:
            self.log = ""

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self._tmp.cleanup()


def _log_figures(log: str) -> dict:
    """Refusals, warnings and errors in the engine's log; its counters at stop."""
    out = {"refused": len(re.findall(r" REFUSED: ", log)),
           "warnings": len(re.findall(r"^\S+ \S+ WARNING ", log, re.M)),
           "errors": len(re.findall(r"^\S+ \S+ ERROR ", log, re.M))}
    m = re.search(r"counters (\{.*\})", log)
    if m:
        try:
            out["counters"] = json.loads(m.group(1))
        except ValueError:
            pass
    reasons = re.findall(r" REFUSED: (.*)$", log, re.M)
    if reasons:
        out["refusal"] = reasons[0][:160]
    errors = re.findall(r"^\S+ \S+ ERROR +(.*)$", log, re.M)
    if errors:
        out["error"] = errors[0][:200]
    return out


# -- the machine -----------------------------------------------------------------------------------
def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (an engine's store writer and VaR helper)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


class ForeignLoad:
    """How much of the machine processes other than ours used between ``start`` and
    ``stop``: the figures of a shared 2-core machine are only as good as this is small."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.fraction = float("nan")

    @staticmethod
    def _machine() -> tuple[int, int]:
        vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return sum(vals) - vals[3] - vals[4], sum(vals)  # busy, all (jiffies)

    def _ours(self) -> dict[int, int]:
        out = {}
        for top in self.pids:
            for p in _family(top):
                try:
                    raw = Path(f"/proc/{p}/stat").read_text()
                except OSError:
                    continue
                fields = raw[raw.rindex(")") + 2:].split()
                out[p] = int(fields[11]) + int(fields[12])
        return out

    def start(self) -> None:
        self._m0 = self._machine()
        self._o0 = self._ours()

    def stop(self) -> float:
        busy1, all1 = self._machine()
        o1 = self._ours()
        ours = sum(v - self._o0.get(p, 0) for p, v in o1.items())
        busy, total = busy1 - self._m0[0], all1 - self._m0[1]
        self.fraction = max(0.0, busy - ours) / max(1, total)
        return self.fraction


# -- one run ---------------------------------------------------------------------------------------
@dataclass
class Run:
    samples: np.ndarray  #: t1 - t0 per sample, ns
    requote: np.ndarray  #: last order's read - t0, ns
    split: np.ndarray  #: per sample (wire in, engine, wire out), ns; NaN: no engine record
    wire_in: np.ndarray  #: engine read - t0
    engine: np.ndarray  #: engine sent - engine read
    wire_out: np.ndarray  #: t1 - engine sent
    stages: dict  #: stage name -> array of ns since the read
    spent: dict  #: part -> inclusive ns per sample in the turn that sent it (0: not in it)
    spent_engine: np.ndarray  #: read -> sent of the same samples
    missed: int
    log: dict
    venue_counts: dict
    rc: int | None
    foreign: float  #: the machine's share other processes used during the samples
    missed_at: list  #: the moves (warm-up included) that brought no order


def run_signal(sig: Signal, n: int, warm: int, cpus: tuple[int, int], *, stages: bool,
               tag: str) -> Run:
    bench_cpu, engine_cpu = cpus
    venue = Venue(sig.symbols)
    profile = profile_text("@INSTANCE@", venue.port, engine_cpu, sig)
    rng = random.Random(7)
    stamps: list[tuple[int, int, int, bytes | None]] = []
    missed = 0
    missed_at: list[int] = []  # which moves brought no order (warm-up included)
    try:
        with WireEngine(tag, profile, stages=stages) as eng:
            venue.wait_ready(eng.alive)
            venue.pump(0.2)  # the strategy's first quotes, answered
            if sig.warmup is not None:
                sig.warmup(rng, venue)
            progress(f"{sig.kind}: {warm} warm-up + {n} samples")
            gc.collect()
            gc.disable()  # the bench's own pauses stay out of the samples; collected in gaps
            load = ForeignLoad(os.getpid(), eng.proc.pid)
            load.start()
            try:
                for k in range(warm + n):
                    venue.pump(rng.uniform(*GAP_S))
                    if venue.drain():  # something came late: answer it, wait again
                        venue.pump(GAP_S[0])
                    if sig.before is not None:
                        sig.before(rng, venue)
                    symbol, mid = sig.moves(rng, venue)
                    before = len(venue.cl_seen)
                    data = venue.move_message(symbol, mid)
                    t0, t1, t2, buf = timed_move(venue, data, sig.orders_per_move)
                    venue.feed(buf)
                    if sig.after is not None:
                        sig.after(rng, venue)
                    if t1 is None:
                        missed += 1
                        missed_at.append(k)
                        eng.alive()
                        continue
                    cl = venue.cl_seen[before] if len(venue.cl_seen) > before else None
                    if k >= warm:
                        stamps.append((t0, t1, t2, cl))
                    if k % 200 == 199:
                        gc.collect()
                        progress(f"{sig.kind}: {k + 1}/{warm + n}")
            finally:
                gc.enable()
            load.stop()
            venue.pump(0.05)
            counts = dict(venue.counts)
    finally:
        venue.close()
    by_cl = {r["cl"]: r for r in eng.records if r.get("n") == 0}
    t0 = np.array([s[0] for s in stamps], dtype=np.int64)
    t1 = np.array([s[1] for s in stamps], dtype=np.int64)
    t2 = np.array([s[2] for s in stamps], dtype=np.int64)
    wire_in, engine, wire_out = [], [], []
    split = np.full((len(stamps), 3), np.nan)  # per sample: wire in, engine, wire out
    stage_rows: dict[str, list[int]] = {}
    spent_rows: list[dict] = []  # per engine-stamped sample: part -> inclusive ns
    spent_engine: list[int] = []  # ...and its read -> sent
    for k, s in enumerate(stamps):
        r = by_cl.get(s[3].decode() if s[3] else "")
        if r is None or "read" not in r:
            continue
        split[k] = (r["read"] - s[0], r["sent"] - r["read"], s[1] - r["sent"])
        wire_in.append(r["read"] - s[0])
        engine.append(r["sent"] - r["read"])
        wire_out.append(s[1] - r["sent"])
        for name, t in r.items():
            if name not in ("cl", "n", "read", "spent"):
                stage_rows.setdefault(name, []).append(t - r["read"])
        if "spent" in r:
            spent_rows.append(r["spent"])
            spent_engine.append(r["sent"] - r["read"])
    return Run(samples=t1 - t0, requote=t2 - t0, split=split, wire_in=np.array(wire_in),
               engine=np.array(engine), wire_out=np.array(wire_out),
               stages={k: np.array(v) for k, v in stage_rows.items()},
               spent=_dense(spent_rows), spent_engine=np.array(spent_engine), missed=missed,
               log=_log_figures(eng.log), venue_counts=counts, rc=eng.rc,
               foreign=load.fraction, missed_at=missed_at)


def _dense(rows: list[dict]) -> dict[str, np.ndarray]:
    names = sorted({k for r in rows for k in r})
    return {k: np.array([r.get(k, 0) for r in rows], dtype=np.int64) for k in names}


# -- the signals -----------------------------------------------------------------------------------
def _walk(symbol: str, step: int, band: int = 20):
    """A random walk of ``symbol``'s mid, ``step`` ticks a move, within ``band`` moves of
    the start (the collar stays far)."""
    start = round(PRICE / TICK)

    def moves(rng: random.Random, venue: Venue) -> tuple[str, int]:
        mid = venue.books[symbol].mid
        d = step if rng.random() < 0.5 else -step
        if abs(mid + d - start) > band * step:
            d = -d
        return symbol, mid + d
    return moves


def market_maker_signal() -> Signal:
    """The real market maker if it exists, else the bench's stand-in (same behaviour)."""
    if (ROOT / "engine" / "strategy" / "marketmaker.py").exists():
        toml = ("[[strategies]]\nname = \"mm\"\nkind = \"marketmaker\"\n"
                f"venue = \"{VENUE}\"\nsymbols = [\"AAA\"]\n")
        kind = "marketmaker"
    else:
        toml = ("[[strategies]]\nname = \"mm\"\nkind = \"wirequoter\"\n"
                f"venue = \"{VENUE}\"\nqty = 1\nhalf_spread_ticks = 2\nrequote_ticks = 1\n")
        kind = "wirequoter"
    return Signal(key="", kind=kind, toml=toml, symbols=("AAA",), orders_per_move=2,
                  moves=_walk("AAA", 1))


PAIRS_DEVIATION_TICKS = 10  #: the timed move of leg A off the spread's mean (z ≈ 10)


def pairs_signal() -> Signal:
    """``kind = "pairs"`` on AAA/BBB: an entry is the timed sample, the exit untimed.

    The spread's noise is a tick at most (A = B ± 1 tick, B walking a tick at a time within
    ± 3 ticks of its start, so between B's tick and A's it is off by two at most),
    and the Kalman hedge runs with a fixed observation variance (``obs_var`` = 1 tick², no
    state noise, ``delta = 0``): z is then the spread in ticks, whatever the model learns from
    the moves the bench makes (it learns one tick every ``sample_ms``, sometimes a deviated
    one). Each sample: a normal tick of both legs, then the timed move of A by
    ``PAIRS_DEVIATION_TICKS`` (alternately up and down: short and long entries), which must
    bring the two legs' IOC orders (through the router, filled whole by the bench); then A
    back to normal, whose exit orders are awaited and answered (untimed, counted; a tick the
    pair ignored while its fills were still on the way is sent again)."""
    start = round(PRICE / TICK)
    st = {"sign": 1, "a": start, "b": start}
    counts = {"exits": 0, "exits_retried": 0, "exits_missed": 0}

    def normal(rng: random.Random, venue: Venue) -> None:
        step = rng.choice((-1, 1))  # B walks a tick: the spread between B's and A's tick
        if abs(st["b"] + step - start) > 3:  # moves by two at most (z < entry_z)
            step = -step
        st["b"] += step
        st["a"] = st["b"] + rng.randint(-1, 1)
        venue.send_move("BBB", st["b"])
        venue.send_move("AAA", st["a"])

    def warmup(rng: random.Random, venue: Venue) -> None:
        end = time.monotonic() + PAIRS_FORMATION_S + 1.0  # formation, then a margin
        while time.monotonic() < end:
            normal(rng, venue)
            venue.pump(0.02)

    def before(rng: random.Random, venue: Venue) -> None:
        normal(rng, venue)
        venue.pump(0.001, sleep=False)  # answered, and the engine idle again

    def moves(rng: random.Random, venue: Venue) -> tuple[str, int]:
        st["sign"] = -st["sign"]
        return "AAA", st["a"] + st["sign"] * PAIRS_DEVIATION_TICKS

    def after(rng: random.Random, venue: Venue) -> None:
        venue.pump(0.002, sleep=False)  # the fills reach the strategy: the pair is in
        n = len(venue.cl_seen)
        for attempt in range(5):  # a pair still busy with its fills ignores a tick: again
            venue.send_move("AAA", st["a"])
            if venue.wait_orders(n + 2, 0.02):
                counts["exits"] += 1
                counts["exits_retried"] += attempt > 0
                return
        counts["exits_missed"] += 1

    toml = ('[[strategies]]\nname = "pairs"\nkind = "pairs"\npairs = [["AAA", "BBB"]]\n'
            f"formation_s = {PAIRS_FORMATION_S}\nsample_ms = 100\n"
            "entry_z = 4.0\nexit_z = 2.5\nstop_z = 1000.0\ncooldown_s = 0.0\n"
            "max_hold_s = 0.0\nnotional = 10000.0\n"
            'hedge = "kalman"\ndelta = 0.0\nobs_var = 0.0001\ntif = "ioc"\n')
    return Signal(key="pairs_", kind="pairs", toml=toml, symbols=("AAA", "BBB"),
                  orders_per_move=2, moves=moves, warmup=warmup, before=before, after=after,
                  counts=counts)


PAIRS_FORMATION_S = 2.0


# -- the loopback ----------------------------------------------------------------------------------
def _echo(port: int, cpu: int) -> None:
    """The ping-pong's other end: pinned, busy-polling, answers each message with one of the
    same size carrying the perf_counter_ns of the read that completed it."""
    os.sched_setaffinity(0, {cpu})
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    size = struct.unpack("<I", s.recv(4, socket.MSG_WAITALL))[0]
    s.setblocking(False)
    clock = time.perf_counter_ns
    recv = s.recv
    buf = b""
    pad = b"x" * (size - 8)
    while True:
        try:
            chunk = recv(65536)
        except BlockingIOError:
            continue
        if not chunk:
            return
        t = clock()
        buf += chunk
        if len(buf) >= size:
            buf = buf[size:]
            s.send(struct.pack("<q", t) + pad)


def _gap(s: socket.socket, seconds: float) -> None:
    """Wait as the wire samples' gap does: short sleeps, a read attempt after each."""
    end = time.perf_counter() + seconds
    while True:
        try:
            s.recv(65536)
        except BlockingIOError:
            pass
        left = end - time.perf_counter()
        if left <= 0:
            return
        time.sleep(min(left, 0.0005))


def _fake_md(k: int) -> bytes:
    from engine.fix.codec import encode

    b = _Book("AAA", round(PRICE / TICK))
    return encode(b"X", _move_body(b, b.mid + 1), sender=SENDER, target=ENGINE_ID, seq=k + 1,
                  sending_time_ns=time.time_ns())


def loopback(n: int, warm: int, size: int, cpus: tuple[int, int]) -> dict[str, np.ndarray]:
    """A bare ping-pong with a child pinned to the engine's CPU, both ends busy-polling, the
    gaps of the wire samples between pings: one-way each way and the round trip, in ns."""
    bench_cpu, engine_cpu = cpus
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-m", "bench.wire", "--echo", str(port),
                              str(engine_cpu)], cwd=ROOT, stdin=subprocess.DEVNULL)
    rng = random.Random(3)
    out_ns, back_ns, rtt_ns = [], [], []
    try:
        ls.settimeout(10)
        s, _ = ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(struct.pack("<I", size))
        s.setblocking(False)
        msg = b"y" * size
        clock = time.perf_counter_ns
        recv = s.recv
        gc.collect()
        gc.disable()
        load = ForeignLoad(os.getpid(), child.pid)
        load.start()
        try:
            for k in range(warm + n):
                _gap(s, rng.uniform(*GAP_S))
                _fake_md(k)  # what the wire sample does between its gap and its send
                buf = b""
                t0 = clock()
                s.send(msg)
                while True:
                    try:
                        chunk = recv(65536)
                    except BlockingIOError:
                        continue
                    t1 = clock()
                    if not chunk:
                        raise RuntimeError("the echo child closed the connection")
                    buf += chunk
                    if len(buf) >= size:
                        break
                if k >= warm:
                    t_child = struct.unpack("<q", buf[:8])[0]
                    out_ns.append(t_child - t0)
                    back_ns.append(t1 - t_child)
                    rtt_ns.append(t1 - t0)
        finally:
            gc.enable()
        load.stop()
        s.close()
    finally:
        ls.close()
        stop_process(child, grace=2.0)
    return {"out": np.array(out_ns), "back": np.array(back_ns), "rtt": np.array(rtt_ns),
            "foreign": load.fraction}


# -- the whole bench -------------------------------------------------------------------------------
def _p(a: np.ndarray, q: float) -> float:
    return round(float(np.percentile(a, q)) / 1e3, 1) if len(a) else float("nan")


def _signals() -> list:
    """Factories of the signals to measure (each run gets a fresh one: their hooks keep
    state); the first gives the main keys."""
    out = [market_maker_signal]
    if (ROOT / "engine" / "strategy" / "pairs.py").exists():
        out.append(pairs_signal)
    return out


def _run_figures(pre: str, sig: Signal, r: Run, f: dict) -> None:
    f[f"{pre}strategy"] = sig.kind
    f[f"{pre}tick_to_order_p50_us"] = _p(r.samples, 50)
    f[f"{pre}tick_to_order_p90_us"] = _p(r.samples, 90)
    f[f"{pre}tick_to_order_p99_us"] = _p(r.samples, 99)
    f[f"{pre}tick_to_order_max_us"] = _p(r.samples, 100)
    f[f"{pre}tick_to_order_samples"] = int(len(r.samples))
    f[f"{pre}tick_to_order_missed"] = r.missed
    f[f"{pre}tick_to_all_orders_p50_us"] = _p(r.requote, 50)
    f[f"{pre}tick_to_all_orders_p99_us"] = _p(r.requote, 99)
    f[f"{pre}orders_per_move"] = sig.orders_per_move
    if len(r.engine):
        f[f"{pre}engine_read_to_sent_p50_us"] = _p(r.engine, 50)
        f[f"{pre}engine_read_to_sent_p99_us"] = _p(r.engine, 99)
        f[f"{pre}wire_in_p50_us"] = _p(r.wire_in, 50)
        f[f"{pre}wire_in_p99_us"] = _p(r.wire_in, 99)
        f[f"{pre}wire_out_p50_us"] = _p(r.wire_out, 50)
        f[f"{pre}wire_out_p99_us"] = _p(r.wire_out, 99)
        f[f"{pre}engine_stamped_samples"] = int(len(r.engine))
    if len(r.samples):
        worst = np.argsort(r.samples)[-max(1, len(r.samples) // 100):]  # the top 1 %
        f[f"{pre}worst_1pct_split_mean_us"] = [
            round(float(np.nanmean(r.split[worst, c])) / 1e3, 1) for c in range(3)]
        f[f"{pre}max_split_us"] = [
            round(float(x) / 1e3, 1) for x in r.split[int(np.argmax(r.samples))]]
    f[f"{pre}engine_refused"] = r.log["refused"]
    f[f"{pre}engine_log_errors"] = r.log["errors"]
    for key in ("refusal", "error"):
        if key in r.log:
            f[f"{pre}engine_first_{key}"] = r.log[key]
    for key, v in sig.counts.items():
        f[f"{pre}{key}"] = v
    f[f"{pre}venue_counts"] = r.venue_counts
    f[f"{pre}foreign_cpu_pct"] = round(100 * r.foreign, 1)


def _trace_figures(pre: str, tr: Run, f: dict) -> None:
    f[f"{pre}trace_engine_read_to_sent_p50_us"] = _p(tr.engine, 50)
    f[f"{pre}trace_stages_p50_us"] = {k: _p(v, 50) for k, v in sorted(
        tr.stages.items(), key=lambda kv: float(np.median(kv[1])))}
    f[f"{pre}trace_spent_p50_us"] = {k: _p(v, 50) for k, v in sorted(
        tr.spent.items(), key=lambda kv: -float(np.median(kv[1])))}
    if len(tr.spent_engine):  # the tail: what the slowest 1 % of turns spent more on
        slow = np.argsort(tr.spent_engine)[-max(1, len(tr.spent_engine) // 100):]
        f[f"{pre}trace_slowest_1pct_spent_mean_us"] = {
            k: round(float(v[slow].mean()) / 1e3, 1) for k, v in tr.spent.items()}
        f[f"{pre}trace_slowest_1pct_engine_mean_us"] = round(
            float(tr.spent_engine[slow].mean()) / 1e3, 1)


def measure_wire(quick: bool = False) -> dict:
    """Every figure of this bench (module docstring), keyed as the JSON line has them; the
    main keys are the market maker's, the pairs strategy's start with ``pairs_``."""
    from engine.fix.codec import encode

    cpus_all = sorted(os.sched_getaffinity(0))
    if len(cpus_all) < 2:
        raise RuntimeError("bench.wire needs two CPUs: one for the engine, one for the bench")
    cpus = (cpus_all[0], cpus_all[-1])  # (bench, engine)
    n, warm = (300, 100) if quick else (2000, 300)
    n_trace = 300 if quick else 1000
    f: dict = {"_signals": []}
    os.sched_setaffinity(0, {cpus[0]})
    try:
        progress(f"loopback ping-pong, {n} samples")
        b = _Book("AAA", round(PRICE / TICK))
        size = len(encode(b"X", _move_body(b, b.mid + 1), sender=SENDER, target=ENGINE_ID,
                          seq=1000, sending_time_ns=time.time_ns()))
        lb = loopback(n, warm, size, cpus)
        f["loopback_one_way_p50_us"] = _p(lb["out"], 50)
        f["loopback_one_way_p99_us"] = _p(lb["out"], 99)
        f["loopback_back_p50_us"] = _p(lb["back"], 50)
        f["loopback_rtt_p50_us"] = _p(lb["rtt"], 50)
        f["loopback_rtt_p99_us"] = _p(lb["rtt"], 99)
        f["md_message_bytes"] = size
        f["loopback_foreign_cpu_pct"] = round(100 * lb["foreign"], 1)
        for make in _signals():
            sig = make()
            tag = (sig.key or "m")[:4]
            _run_figures(sig.key, sig, run_signal(sig, n, warm, cpus, stages=False, tag=tag), f)
            progress(f"stage trace of {sig.kind}, {n_trace} samples")
            tr = run_signal(make(), n_trace, warm, cpus, stages=True, tag=tag + "t")
            _trace_figures(sig.key, tr, f)
            f["_signals"].append((sig.key, sig.kind))
    finally:
        os.sched_setaffinity(0, set(cpus_all))
    left = shm_leftovers("helmdesk.wire")
    if left:
        f["shm_left"] = left
    return f


def _table(f: dict, quick: bool) -> Table:
    t = Table(f"Helmdesk tick to order on the wire ({'quick' if quick else 'full'}), "
              f"Python {sys.version.split()[0]}")
    nan = float("nan")
    for pre, kind in f["_signals"]:
        g = {k[len(pre):]: v for k, v in f.items() if k.startswith(pre)}
        main = not pre
        t.section(f"{kind}{' (the main keys)' if main else f' ({pre} keys)'}: feed bytes in → "
                  f"NewOrderSingle out")
        t.add("samples / moves that brought no order",
              f"{g['tick_to_order_samples']} / {g['tick_to_order_missed']}")
        if main:
            t.add("tick_to_order p50", f"{g['tick_to_order_p50_us']:.1f} µs",
                  f"≤ {TARGET_P50_US:g} µs",
                  verdict(g["tick_to_order_p50_us"], TARGET_P50_US, higher_is_better=False))
        else:
            t.add("tick_to_order p50", f"{g['tick_to_order_p50_us']:.1f} µs")
        t.add("tick_to_order p90", f"{g['tick_to_order_p90_us']:.1f} µs")
        if main:
            t.add("tick_to_order p99", f"{g['tick_to_order_p99_us']:.1f} µs",
                  f"≤ {TARGET_P99_US:g} µs",
                  verdict(g["tick_to_order_p99_us"], TARGET_P99_US, higher_is_better=False))
        else:
            t.add("tick_to_order p99", f"{g['tick_to_order_p99_us']:.1f} µs")
        t.add("tick_to_order max", f"{g['tick_to_order_max_us']:.1f} µs")
        t.add(f"tick → all {g['orders_per_move']} orders of the move (p50 / p99)",
              f"{g['tick_to_all_orders_p50_us']:.1f} / {g['tick_to_all_orders_p99_us']:.1f} µs")
        if "engine_read_to_sent_p50_us" in g:
            t.add("wire in: bench send → engine read (p50 / p99)",
                  f"{g['wire_in_p50_us']:.1f} / {g['wire_in_p99_us']:.1f} µs")
            t.add("engine: read → NewOrderSingle written (p50 / p99)",
                  f"{g['engine_read_to_sent_p50_us']:.1f} / "
                  f"{g['engine_read_to_sent_p99_us']:.1f} µs")
            t.add("wire out: engine write → bench read (p50 / p99)",
                  f"{g['wire_out_p50_us']:.1f} / {g['wire_out_p99_us']:.1f} µs")
            t.add("slowest 1 % (mean): wire in / engine / wire out",
                  " / ".join(f"{x:.0f}" for x in g["worst_1pct_split_mean_us"]) + " µs")
            t.add("slowest sample: wire in / engine / wire out",
                  " / ".join(f"{x:.0f}" for x in g["max_split_us"]) + " µs")
        t.add("tick_to_order p50 − loopback round trip p50",
              f"{g['tick_to_order_p50_us'] - f['loopback_rtt_p50_us']:.1f} µs")
        t.add("trace run: the turn's stages, µs after the read (p50)", "")
        for name, v in g["trace_stages_p50_us"].items():
            t.add(f"  {name}", f"{v:.1f} µs")
        slow = g.get("trace_slowest_1pct_spent_mean_us", {})
        t.add("trace run: the turn's parts, inclusive (p50 / slowest 1 % mean)",
              f"{g['trace_engine_read_to_sent_p50_us']:.1f} / "
              f"{g.get('trace_slowest_1pct_engine_mean_us', nan):.1f} µs")
        for name, v in g["trace_spent_p50_us"].items():
            t.add("  " + name, f"{v:.1f} / {slow.get(name, nan):.1f} µs")
        quiet = g["foreign_cpu_pct"] <= FOREIGN_OK_PCT
        t.add("other processes' CPU during the samples (of the machine)",
              f"{g['foreign_cpu_pct']:.1f} %", f"≤ {FOREIGN_OK_PCT:g} %",
              "ok" if quiet else "NOISY: figures disturbed")
        t.add("engine refusals / errors in its log",
              f"{g['engine_refused']} / {g['engine_log_errors']}")
        for key in ("engine_first_refusal", "engine_first_error"):
            if key in g:
                t.add("  " + key.replace("_", " "), g[key][:70])
        c = g["venue_counts"]
        t.add("the venue saw: orders / fills / cancels / replaces",
              f"{c['orders']} / {c['fills']} / {c['cancels']} / {c['replaces']}")
    t.section(f"loopback, bare ping-pong ({f['md_message_bytes']} B, same CPUs and gaps)")
    t.add("one way, bench → other CPU (p50 / p99)",
          f"{f['loopback_one_way_p50_us']:.1f} / {f['loopback_one_way_p99_us']:.1f} µs")
    t.add("round trip (p50 / p99)",
          f"{f['loopback_rtt_p50_us']:.1f} / {f['loopback_rtt_p99_us']:.1f} µs")
    quiet = f["loopback_foreign_cpu_pct"] <= FOREIGN_OK_PCT
    t.add("other processes' CPU during the ping-pong", f"{f['loopback_foreign_cpu_pct']:.1f} %",
          f"≤ {FOREIGN_OK_PCT:g} %", "ok" if quiet else "NOISY: figures disturbed")
    return t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.wire", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer samples: a smoke run")
    p.add_argument("--echo", nargs=2, type=int, help=argparse.SUPPRESS)  # the ping-pong's child
    args = p.parse_args(argv)
    if args.echo:
        _echo(*args.echo)
        return 0
    # SIGTERM unwinds like Ctrl-C: the engine is stopped and its directory removed on the way
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    f = measure_wire(args.quick)
    print(_table(f, args.quick).render())
    emit_json({k: v for k, v in f.items() if not k.startswith("_")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
