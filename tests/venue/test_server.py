"""The simulated exchange end to end: a real ``python -m engine.venue`` process, real loopback
TCP, and FIX initiator sessions from engine.fix on the client side."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.core.profile import InstrumentConfig, VenueConfig
from engine.fix.codec import FixMessage, encode
from engine.fix.session import (
    AppMessage,
    FixSession,
    LoggedOn,
    LoggedOut,
    SessionConfig,
    SessionState,
)
from engine.fix.store import MemoryStore
from engine.fix.transport import serve_connection
from engine.venue.server import Venue
from tests.conftest import wait_until

INSTRUMENTS = """
[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0

[[instruments]]
symbol = "BBB"
tick = 0.25
price = 50.0
"""


def venue_profile(path: Path, *, name: str = "SIMA", extra: str = "",
                  instruments: str = INSTRUMENTS) -> Path:
    path.write_text(f'{instruments}\n[venue]\nname = "{name}"\n'
                    f'counterparties = ["HELM", "HELM2"]\n{extra}\n')
    return path


class VenueProc:
    """A real venue process; its stderr is collected by a thread (never a full pipe)."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.port = 0

    def start(self, port: int = 0) -> "VenueProc":
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.venue", "--profile", str(self.profile),
             "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=dict(os.environ))
        threading.Thread(target=self._collect, args=(self.proc,), daemon=True).start()

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f"venue exited {self.proc.returncode}: {self.output}")
            return re.search(r"listening on 127\.0\.0\.1:(\d+)", self.output)

        self.port = int(wait_until(listening, 20, "the venue to listen").group(1))
        return self

    def _collect(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def venue_factory(tmp_path):
    started: list[VenueProc] = []

    def make(name: str = "SIMA", extra: str = "", instruments: str = INSTRUMENTS) -> VenueProc:
        v = VenueProc(venue_profile(tmp_path / f"{name}-{len(started)}.toml", name=name,
                                    extra=extra, instruments=instruments))
        started.append(v)
        return v

    yield make
    for v in started:
        if v.proc is not None:
            v.stop(signal.SIGKILL)
            v.proc.stderr.close()
            assert "Traceback" not in v.output, v.output


@pytest.fixture
def venue(venue_factory) -> VenueProc:
    return venue_factory().start()


# -- the client side ---------------------------------------------------------------------------
async def until(cond, what: str, timeout: float = 10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


class Client:
    """A FIX initiator session over one real TCP connection (engine.fix, no reconnects)."""

    def __init__(self, port: int, sender: str = "HELM", target: str = "SIMA",
                 store=None, reset: bool = False) -> None:
        self.port = port
        self.session = FixSession(SessionConfig(sender=sender, target=target, initiator=True,
                                                heartbeat_s=5, reset_on_logon=reset),
                                  store or MemoryStore())
        self.events: list = []
        self.msgs: list[FixMessage] = []
        self.task: asyncio.Future | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self, preamble: bytes = b"", logon: bool = True,
                      streams: tuple | None = None) -> "Client":
        reader, self.writer = streams or await asyncio.open_connection("127.0.0.1", self.port)
        if preamble:
            self.writer.write(preamble)
        self.task = asyncio.ensure_future(
            serve_connection(self.session, reader, self.writer, self._on, tick_s=0.05))
        if logon:
            await until(lambda: self.session.state is SessionState.ACTIVE or self.task.done(),
                        f"{self.session.config.sender} to log on")
            assert self.session.state is SessionState.ACTIVE, self.events
        return self

    def _on(self, _session, events) -> None:
        self.events += events
        self.msgs += [e.message for e in events if isinstance(e, AppMessage)]

    def send(self, msg_type: bytes, *fields) -> int:
        seq = self.session.send(msg_type, list(fields), time.time_ns())
        self.writer.write(self.session.data_to_send())
        return seq

    def order(self, cl: str, side: int = 1, qty="10", price: str | None = "100.00",
              symbol: str = "AAA", ord_type: int = 2, tif: int | None = None) -> int:
        fields = [(11, cl), (55, symbol), (54, side), (60, b"20260101-00:00:00"), (38, qty),
                  (40, ord_type)]
        if price is not None:
            fields.append((44, price))
        if tif is not None:
            fields.append((59, tif))
        return self.send(b"D", *fields)

    async def wait(self, what: str, pred, timeout: float = 10.0) -> FixMessage:
        return await until(lambda: next((m for m in self.msgs if pred(m)), None), what, timeout)

    async def er(self, cl: str, exec_type: bytes, **fields) -> FixMessage:
        """The first ExecutionReport for ClOrdID ``cl`` with ExecType ``exec_type``."""
        return await self.wait(f"ER 11={cl} 150={exec_type!r}",
                               lambda m: m.msg_type == b"8" and m.get(11) == cl.encode()
                               and m.get(150) == exec_type and _has(m, fields))

    def ers(self, cl: str) -> list[FixMessage]:
        return [m for m in self.msgs if m.msg_type == b"8" and m.get(11) == cl.encode()]

    async def logout(self) -> None:
        self.session.logout("client done", time.time_ns())
        self.writer.write(self.session.data_to_send())
        await asyncio.wait_for(self.task, 10)

    async def drop(self) -> None:
        """Vanish without a Logout (a crash, a cable)."""
        self.writer.transport.abort()
        await asyncio.wait_for(self.task, 10)


def _has(m: FixMessage, fields: dict) -> bool:
    return all(m.get(int(k[1:])) == (v if isinstance(v, bytes) else str(v).encode())
               for k, v in fields.items())


def fields(m: FixMessage, *tags: int) -> tuple:
    return tuple(None if m.get(t) is None else m.get(t).decode() for t in tags)


async def connect_until_accepted(port: int, sender: str, store) -> Client:
    """Log on; a venue that has not yet seen the old connection go refuses: try again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        c = Client(port, sender, store=store)
        await c.connect(logon=False)
        await until(lambda: c.session.state is SessionState.ACTIVE or c.task.done(), "logon")
        if c.session.state is SessionState.ACTIVE:
            return c
        assert loop.time() < deadline, c.events
        await asyncio.sleep(0.05)


# -- sessions ----------------------------------------------------------------------------------
def test_logon_and_logout(venue):
    async def main():
        c = await Client(venue.port).connect()
        assert any(isinstance(e, LoggedOn) and not e.reset for e in c.events)
        await c.logout()
        assert any(isinstance(e, LoggedOut) for e in c.events)
        assert c.session.state is SessionState.DISCONNECTED

    asyncio.run(main())
    assert venue.stop() == 0
    assert "HELM disconnected: cancelled its 0 live orders" in _log(venue)


def test_unknown_comp_id_is_refused_and_others_still_served(venue):
    async def main():
        evil = await Client(venue.port, "EVIL").connect(logon=False)
        await asyncio.wait_for(evil.task, 10)
        assert not any(isinstance(e, LoggedOn) for e in evil.events)
        # a Logout saying why, then the close: the client reports the venue's text
        assert evil.task.result() == "logged out: SenderCompID 'EVIL' is not a counterparty of SIMA"
        ok = await Client(venue.port, "HELM2").connect()
        ok.order("after-evil")
        await ok.er("after-evil", b"0")

    asyncio.run(main())
    assert "SenderCompID 'EVIL' is not a counterparty of SIMA" in venue.output


def test_a_logon_to_another_target_is_refused_without_touching_the_session(venue):
    store = MemoryStore()

    async def main():
        lost = await Client(venue.port, "HELM", "SIMZ").connect(logon=False)
        await asyncio.wait_for(lost.task, 10)
        assert not any(isinstance(e, LoggedOn) for e in lost.events)
        c = await Client(venue.port, "HELM", store=store).connect()
        assert store.next_target_seq == 2  # the venue's Logon is its first message to HELM
        await c.logout()

    asyncio.run(main())
    assert "TargetCompID 'SIMZ' is not 'SIMA'" in venue.output


def test_garbage_and_a_bad_checksum_are_ignored_and_the_session_survives(venue):
    async def main():
        # garbage even before the Logon
        c = await Client(venue.port).connect(preamble=b"GET / HTTP/1.1\r\n\r\n")
        c.order("before")
        await c.er("before", b"0")
        c.writer.write(b"\x01\x01 not fix at all 8=FIX.4.4\x019=zz\x01")
        s = c.session
        bad = bytearray(encode(b"D", [(11, "bad-sum"), (55, "AAA"), (54, 1), (38, 1), (40, 2),
                                      (44, "100.00")], sender=b"HELM", target=b"SIMA",
                               seq=s.store.next_sender_seq, sending_time_ns=time.time_ns()))
        bad[-4:-1] = b"000" if bad[-4:-1] != b"000" else b"001"  # CheckSum wrong
        c.writer.write(bytes(bad))
        c.order("after")  # the same MsgSeqNum: the garbled one did not use it
        await c.er("after", b"0")
        assert not c.ers("bad-sum")
        assert s.state is SessionState.ACTIVE and s.counters["rejects_received"] == 0
        await c.logout()

    asyncio.run(main())
    assert "ignored garbled input" in venue.output
    assert venue.stop() == 0


def test_logout_close_and_reconnect_at_once_is_served(venue):
    async def main():
        c = await Client(venue.port, reset=True).connect()
        for i in range(5):
            c.order("same-id")  # a reset Logon is a new session: ClOrdIDs start afresh
            await c.er("same-id", b"0", _39="0")
            # the next connection is open before this one says Logout and closes
            streams = await asyncio.open_connection("127.0.0.1", venue.port)
            c.session.logout("again", time.time_ns())
            c.writer.write(c.session.data_to_send())
            c.writer.close()  # no waiting for the venue's answer
            c = await Client(venue.port, reset=True).connect(streams=streams)
            m = await c.er("same-id", b"4")  # the last one's cancel on disconnect, kept for us
            assert m.get(58) == b"owner disconnected"

    asyncio.run(main())
    assert "already connected" not in venue.output


def test_a_resumed_session_keeps_its_clordids(venue):
    store = MemoryStore()

    async def main():
        c = await Client(venue.port, store=store).connect()
        c.order("once")
        await c.er("once", b"0")
        await c.logout()
        c2 = await Client(venue.port, store=store).connect()
        c2.order("once")
        m = await c2.er("once", b"8")
        assert fields(m, 103) == ("6",)
        await c2.logout()

    asyncio.run(main())


def test_sigterm_logs_sessions_out_and_exits_0(venue):
    async def main():
        a = await Client(venue.port).connect()
        b = await Client(venue.port, "HELM2").connect()
        await asyncio.to_thread(venue.stop)
        for c in (a, b):
            await asyncio.wait_for(c.task, 10)
            assert [e.text for e in c.events if isinstance(e, LoggedOut)] == ["venue shutting down"]

    asyncio.run(main())
    assert venue.proc.returncode == 0


def test_restart_resumes_sequence_numbers(venue):
    store = MemoryStore()

    async def main():
        c = await Client(venue.port, store=store).connect()
        c.order("r1")
        er1 = await c.er("r1", b"0")
        await asyncio.to_thread(venue.stop, signal.SIGKILL)  # no Logout, no clean close
        await asyncio.wait_for(c.task, 10)
        out, inn = store.next_sender_seq, store.next_target_seq
        assert (out, inn) == (3, 3)  # Logon and D out; Logon and ER in
        await asyncio.to_thread(venue.start)
        c2 = await Client(venue.port, store=store).connect()
        logon = next(e for e in c2.events if isinstance(e, LoggedOn))
        assert not logon.reset
        c2.order("r2")
        er2 = await c2.er("r2", b"0")
        # resumed: one Logon more each way, no gap to fill on either side
        assert er2.seq == inn + 1
        assert c2.session.counters["resend_requests_sent"] == 0  # we saw no gap
        assert c2.session.counters["resends_served"] == 0  # the venue saw none
        assert er1.get(17) != er2.get(17) and er1.get(37) != er2.get(37)  # ids never repeat
        c2.order("r1")  # a new process does not know the old ClOrdIDs: its books are empty
        await c2.er("r1", b"0")
        await c2.logout()

    asyncio.run(main())


# -- orders ------------------------------------------------------------------------------------
def test_limit_order_is_acked_new(venue):
    async def main():
        c = await Client(venue.port).connect()
        c.order("n1", side=1, qty="7", price="99.97")
        m = await c.er("n1", b"0")
        assert fields(m, 39, 55, 54, 38, 40, 44, 59, 151, 14, 6) == (
            "0", "AAA", "1", "7", "2", "99.97", "0", "7", "0", "0")
        assert len(m.get(37)) == 36 and len(m.get(17)) == 36  # UUIDs, as real venues send
        assert m.get(60) and m.get(58) is None and m.get(31) is None
        await c.logout()

    asyncio.run(main())


def test_two_sessions_cross_and_both_get_their_fills(venue):
    async def main():
        a = await Client(venue.port, "HELM").connect()
        b = await Client(venue.port, "HELM2").connect()
        a.order("s1", side=2, qty="5", price="100.00")
        a.order("s2", side=2, qty="5", price="100.10")
        await a.er("s2", b"0")
        b.order("b1", side=1, qty="8", price="100.10")
        await b.er("b1", b"F", _39="2")
        t1, t2 = [m for m in b.ers("b1") if m.get(150) == b"F"]
        assert fields(t1, 32, 31, 14, 151, 6, 39) == ("5", "100.00", "5", "3", "100", "1")
        assert fields(t2, 32, 31, 14, 151, 6, 39) == ("3", "100.10", "8", "0", "100.0375", "2")
        s1 = await a.er("s1", b"F")
        assert fields(s1, 32, 31, 14, 151, 6, 39, 54) == ("5", "100.00", "5", "0", "100", "2", "2")
        s2 = await a.er("s2", b"F")
        assert fields(s2, 32, 31, 14, 151, 6, 39) == ("3", "100.10", "3", "2", "100.1", "1")
        assert len({m.get(17) for m in a.msgs + b.msgs}) == len(a.msgs) + len(b.msgs)
        # the rest of s2 is still there for the next buyer
        b.order("b2", side=1, qty="2", price="100.10", tif=3)
        await b.er("b2", b"F", _39="2", _31="100.10")
        await a.er("s2", b"F", _39="2", _14="5")

    asyncio.run(main())


def test_ioc_remainder_is_cancelled(venue):
    async def main():
        a = await Client(venue.port, "HELM").connect()
        b = await Client(venue.port, "HELM2").connect()
        a.order("s", side=2, qty="3", price="100.00")
        await a.er("s", b"0")
        b.order("ioc", side=1, qty="5", price="100.00", tif=3)
        m = await b.er("ioc", b"4")
        assert [x.get(150) for x in b.ers("ioc")] == [b"0", b"F", b"4"]
        assert fields(m, 39, 14, 151, 58) == ("4", "3", "0", "IOC remainder")

    asyncio.run(main())


def test_fok_that_cannot_fill_is_cancelled_and_leaves_the_book_alone(venue):
    async def main():
        a = await Client(venue.port, "HELM").connect()
        b = await Client(venue.port, "HELM2").connect()
        a.order("s", side=2, qty="3", price="100.00")
        await a.er("s", b"0")
        b.order("fok", side=1, qty="5", price="100.00", tif=4)
        m = await b.er("fok", b"4")
        assert [x.get(150) for x in b.ers("fok")] == [b"0", b"4"]
        assert fields(m, 39, 14, 151, 58) == ("4", "0", "0", "FOK not fillable")
        b.send(b"H", (11, "s-check"), (55, "AAA"), (54, 1))  # not b's order: unknown to b
        await b.er("s-check", b"I", _39="8")
        b.order("fok2", side=1, qty="3", price="100.00", tif=4)  # now it fits exactly
        await b.er("fok2", b"F", _39="2", _32="3")
        await a.er("s", b"F", _39="2", _14="3", _151="0")

    asyncio.run(main())


def test_market_order_without_liquidity_is_cancelled(venue):
    async def main():
        c = await Client(venue.port).connect()
        c.order("mkt", side=1, qty="2", price=None, ord_type=1)
        m = await c.er("mkt", b"4")
        assert fields(m, 39, 40, 44, 58) == ("4", "1", None, "no liquidity")

    asyncio.run(main())


def test_cancel_replace_status_and_their_rejects(venue):
    async def main():
        c = await Client(venue.port).connect()
        c.order("a1", side=1, qty="10", price="99.00")
        await c.er("a1", b"0")
        c.send(b"G", (41, "a1"), (11, "a2"), (55, "AAA"), (54, 1), (38, 15), (40, 2),
               (44, "99.50"))
        m = await c.er("a2", b"5")
        assert fields(m, 41, 39, 38, 44, 151, 14) == ("a1", "0", "15", "99.50", "15", "0")
        c.send(b"H", (11, "a2"), (55, "AAA"), (54, 1))
        st = await c.er("a2", b"I")
        assert fields(st, 39, 38, 44, 151) == ("0", "15", "99.50", "15")
        assert st.get(37) == m.get(37)
        c.send(b"G", (41, "a2"), (11, "a2b"), (38, 15), (44, "99.505"))  # off the grid
        rej = await c.wait("replace reject", lambda x: x.msg_type == b"9" and x.get(11) == b"a2b")
        assert fields(rej, 41, 434, 102, 39) == ("a2", "2", "99", "0")
        assert "not on AAA's tick grid of 0.01" in rej.get(58).decode()
        c.send(b"F", (41, "a2"), (11, "a3"), (55, "AAA"), (54, 1))
        x = await c.er("a3", b"4")
        assert fields(x, 41, 39, 14, 151, 58) == ("a2", "4", "0", "0", "cancel requested")
        c.send(b"F", (41, "a3"), (11, "a4"))
        late = await c.wait("too late", lambda x: x.msg_type == b"9" and x.get(11) == b"a4")
        assert fields(late, 37, 41, 39, 434, 102) == (m.get(37).decode(), "a3", "4", "1", "0")
        c.send(b"F", (41, "nope"), (11, "a5"))
        unk = await c.wait("unknown", lambda x: x.msg_type == b"9" and x.get(11) == b"a5")
        assert fields(unk, 37, 41, 39, 434, 102) == ("NONE", "nope", "8", "1", "1")
        assert "unknown order" in unk.get(58).decode()
        c.send(b"H", (11, "never"), (55, "AAA"), (54, 2))
        st = await c.er("never", b"I")
        assert fields(st, 37, 39, 151, 14) == ("NONE", "8", "0", "0")
        assert "unknown order" in st.get(58).decode()

    asyncio.run(main())


def test_a_session_cannot_touch_another_sessions_orders(venue):
    async def main():
        a = await Client(venue.port, "HELM").connect()
        b = await Client(venue.port, "HELM2").connect()
        a.order("mine", side=2, qty="1", price="101.00")
        await a.er("mine", b"0")
        b.send(b"F", (41, "mine"), (11, "theirs"))
        r = await b.wait("cancel reject", lambda x: x.msg_type == b"9")
        assert fields(r, 102, 11) == ("1", "theirs")
        assert not a.ers("theirs") and len(a.ers("mine")) == 1

    asyncio.run(main())


BAD_ORDERS = [
    # (fields of the D, the reason's text, OrdRejReason)
    ({44: "100.005"}, "Price(44) '100.005' is not on AAA's tick grid of 0.01", "99"),
    ({55: "ZZZ"}, "Symbol(55) 'ZZZ' is not traded on SIMA (it trades AAA, BBB)", "1"),
    ({38: "0"}, "OrderQty(38) must be a whole number from 1 to 1000000000, was '0'", "99"),
    ({38: "2.5"}, "OrderQty(38) must be a whole number from 1 to 1000000000, was '2.5'", "99"),
    ({38: "lots"}, "OrderQty(38) must be a whole number", "99"),
    ({38: "1e3"}, "OrderQty(38) must be a whole number from 1 to 1000000000, was '1e3'", "99"),
    ({44: None}, "Price(44) is missing: a limit order (40=2) needs one", "99"),
    ({44: "-1"}, "Price(44) must be positive, was '-1'", "99"),
    ({44: "abc"}, "Price(44) was 'abc', not a finite number", "99"),
    ({54: "7"}, "Side(54) must be 1 (buy) or 2 (sell), was '7'", "99"),
    ({40: "3"}, "OrdType(40) must be 1 (market) or 2 (limit), was '3'", "99"),
    ({59: "6"}, "TimeInForce(59) must be 0 (day), 3 (IOC) or 4 (FOK), was '6'", "99"),
    ({40: "1"}, "Price(44) '100.00' was given for a market order (40=1), which takes none", "99"),
    ({55: "BBB", 44: "50.10"}, "Price(44) '50.10' is not on BBB's tick grid of 0.25", "99"),
]


def test_bad_orders_are_rejected_with_the_field_and_the_reason(venue):
    async def main():
        c = await Client(venue.port).connect()
        for i, (change, reason, code) in enumerate(BAD_ORDERS):
            f = {11: f"bad{i}", 55: "AAA", 54: "1", 38: "10", 40: "2", 44: "100.00"}
            f.update(change)
            c.send(b"D", *[(t, v) for t, v in f.items() if v is not None])
            m = await c.er(f"bad{i}", b"8")
            assert fields(m, 39, 37, 151, 14, 103) == ("8", "NONE", "0", "0", code), reason
            assert reason in m.get(58).decode(), m.get(58)
        c.order("dup")
        await c.er("dup", b"0")
        c.order("dup", qty="3")
        m = await c.er("dup", b"8")
        assert fields(m, 103, 58) == ("6", "ClOrdID(11) 'dup' was already used in this session")
        c.order("bad0")  # a rejected order's ClOrdID is used up too
        await c.wait("dup reject", lambda x: x.get(11) == b"bad0" and x.get(103) == b"6")
        c.send(b"D", (55, "AAA"), (54, 1), (38, 1), (40, 2), (44, "100.00"))  # no ClOrdID
        j = await c.wait("35=j", lambda x: x.msg_type == b"j")
        assert fields(j, 372, 380, 58) == ("D", "5", "ClOrdID(11) is missing")
        assert c.session.state is SessionState.ACTIVE
        c.order("still-ok")
        await c.er("still-ok", b"0")

    asyncio.run(main())


def test_an_unsupported_message_type_gets_a_business_reject(venue):
    async def main():
        c = await Client(venue.port).connect()
        seq = c.send(b"R", (131, "quote-1"), (146, 1), (55, "AAA"))  # QuoteRequest
        j = await c.wait("35=j", lambda m: m.msg_type == b"j")
        assert fields(j, 372, 45, 380) == ("R", str(seq), "3")
        assert "unsupported message type R:" in j.get(58).decode()
        c.order("next")
        await c.er("next", b"0")

    asyncio.run(main())


def test_cancel_on_disconnect(venue):
    async def main():
        a = await Client(venue.port, "HELM").connect()
        b = await Client(venue.port, "HELM2").connect()
        a.order("rest", side=2, qty="4", price="100.00")
        await a.er("rest", b"0")
        await a.drop()
        # back again: the venue has seen it go (or refuses until it has), and it tells
        a2 = await connect_until_accepted(venue.port, "HELM", a.session.store)
        m = await a2.er("rest", b"4")
        assert fields(m, 39, 14, 151, 58) == ("4", "0", "0", "owner disconnected")
        b.order("take", side=1, qty="4", price=None, ord_type=1)
        x = await b.er("take", b"4")
        assert fields(x, 58, 14) == ("no liquidity", "0")
        assert not any(m.get(150) == b"F" for m in a.msgs + a2.msgs)

    asyncio.run(main())
    wait_until(lambda: "HELM disconnected: cancelled its 1 live orders" in _log(venue), 5,
               "the venue to log the cancels")


def test_latency_delays_every_message_and_keeps_their_order(venue_factory):
    v = venue_factory(extra="latency_us = 150000").start()

    async def main():
        c = await Client(v.port).connect()
        t0 = time.monotonic()
        for i in range(5):
            c.order(f"l{i}", price=f"{99 + i / 100:.2f}")
        await c.er("l4", b"0")
        assert time.monotonic() - t0 >= 0.15
        assert [m.get(11) for m in c.msgs] == [f"l{i}".encode() for i in range(5)]
        c.order("cross", side=2, qty="50", price="99.00")  # its own orders: it trades them all
        m = await c.er("cross", b"F", _39="2", _14="50")
        assert m.get(6) == b"99.02"  # 10 at each of 99.04, 99.03, 99.02, 99.01, 99.00

    asyncio.run(main())


def test_two_venues_at_once_with_their_own_instruments_and_fees(venue_factory):
    one = venue_factory("SIMA").start()
    two = venue_factory("SIMB", extra="fee_bps = 2.5",
                        instruments='[[instruments]]\nsymbol = "CCC"\ntick = 0.5\nprice = 20.0\n'
                        ).start()

    async def main():
        a = await Client(one.port, "HELM", "SIMA").connect()
        b = await Client(two.port, "HELM", "SIMB").connect()
        b2 = await Client(two.port, "HELM2", "SIMB").connect()
        a.order("x", symbol="CCC", price="20.0")
        assert "not traded on SIMA" in (await a.er("x", b"8")).get(58).decode()
        b.order("y", side=2, qty="8", symbol="CCC", price="20.5")
        ack = await b.er("y", b"0")
        b2.order("z", side=1, qty="8", symbol="CCC", price="21.0")
        f = await b2.er("z", b"F")
        assert fields(f, 31, 12, 13) == ("20.5", "0.041", "3")  # 2.5 bp of 8 × 20.5
        a.order("w", symbol="AAA", price="1.0")
        a_ack = await a.er("w", b"0")
        # SIMB's identifiers share its run's UUID prefix, SIMA's have their own
        assert f.get(17)[:24] == ack.get(37)[:24] != a_ack.get(37)[:24]

    asyncio.run(main())


def test_venue_needs_a_venue_section_and_a_good_port(tmp_path):
    p = tmp_path / "engine.toml"
    p.write_text(INSTRUMENTS)
    r = subprocess.run([sys.executable, "-m", "app", "venue", "--profile", str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{p}: no [venue] section" in r.stderr
    q = venue_profile(tmp_path / "v.toml")
    r = subprocess.run([sys.executable, "-m", "app", "venue", "--profile", str(q), "--port",
                        "70000"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "must be a port number 0..65535, was 70000" in r.stderr


def test_a_busy_port_is_a_clear_error(venue, venue_factory):
    other = venue_factory("SIMC")
    r = subprocess.run([sys.executable, "-m", "app", "venue", "--profile", str(other.profile),
                        "--port", str(venue.port)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
    assert f"helmdesk venue SIMC: cannot listen on 127.0.0.1:{venue.port}" in r.stderr


# -- in process: the background flow -----------------------------------------------------------
def test_background_flow_moves_the_book_and_fills_client_orders(data_dir):
    cfg = VenueConfig(name="SIMX", sender="SIMX", counterparties=("HELM",), background_hz=300,
                      seed=5)
    inst = [InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)]

    async def main():
        v = Venue(cfg, inst, tick_s=0.05)
        await v.start()
        try:
            book = lambda: v.snapshot()["books"]["AAA"]  # noqa: E731
            first = await until(lambda: (b := book())["bid"] and b["ask"] and b, "a two-sided book")
            await until(lambda: (book()["bid"], book()["ask"]) != (first["bid"], first["ask"]),
                        "the touch to move")
            assert v.snapshot()["counters"]["background_orders"] > 0
            c = await Client(v.port, "HELM", "SIMX").connect()
            bid = book()["bid"]
            c.order("join", side=1, qty="1", price=f"{bid + 0.01:.2f}")
            await c.er("join", b"F", _39="2")
            assert {m.get(150) for m in c.msgs} <= {b"0", b"F"}  # nothing about others' orders
            snap = v.snapshot()
            assert snap["counters"]["fills"] == 1 and snap["counters"]["background_fills"] > 0
            assert snap["books"]["AAA"]["orders"] <= 200
            assert snap["counters"]["errors"] == 0
            await c.logout()
        finally:
            await v.stop()
        assert (data_dir / "venue-SIMX.db").exists()

    asyncio.run(main())


def _log(v: VenueProc) -> str:
    path = Path(os.environ["HELMDESK_DATA_DIR"]) / "logs" / f"venue-{_name(v)}.log"
    return path.read_text() if path.exists() else ""


def _name(v: VenueProc) -> str:
    return re.search(r'name = "([^"]+)"', v.profile.read_text()).group(1)

