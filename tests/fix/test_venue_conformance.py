"""The simulated venue (``helmdesk venue``, a real process on 127.0.0.1) against the FIX 4.4
session test cases that apply to an acceptor, over real TCP.

The client is a raw socket: it sends the exact bytes a case calls for and reads what comes back
(every wait has a deadline; nothing sleeps for a fixed time). Each test starts its session with
a ResetSeqNumFlag=Y Logon, so the venue process is shared by the module. Connection caps are
tested on a venue of their own.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.fix.codec import FixDecoder, FixGarbled, FixMessage, checksum, encode, utc_timestamp

ROOT = Path(__file__).parents[2]
PROFILE = """
[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0

[venue]
name = "CONF"
counterparties = ["HELM", "HELM2"]
max_latency_s = 60.0
{extra}
"""
WAIT_S = 10.0


class Venue:
    """``python -m engine.venue`` on an ephemeral loopback port, in a private data dir."""

    def __init__(self, tmp: Path, extra: str = "") -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        prof = tmp / "venue.toml"
        prof.write_text(PROFILE.format(extra=extra))
        env = dict(os.environ, HELMDESK_DATA_DIR=str(tmp), PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.venue", "--profile", str(prof), "--port", "0"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._port: int | None = None
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        with self._seen:
            self._seen.wait_for(lambda: self._port is not None or self.proc.poll() is not None,
                                timeout=30)
        assert self._port, "the venue did not say where it listens:\n" + self.output
        self.port = self._port
        self.log_file = tmp / "logs" / "venue-CONF.log"

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    self._port = int(m.group(1))
                self._seen.notify_all()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_log(self, text: str) -> None:
        """Wait for ``text`` on the venue's stderr (its warnings and errors)."""
        with self._seen:
            assert self._seen.wait_for(lambda: text in self.output, timeout=WAIT_S), self.output

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def venue(tmp_path_factory):
    v = Venue(tmp_path_factory.mktemp("conformance"))
    yield v
    v.stop()
    assert "Traceback" not in v.output, v.output


_OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_clients():
    """A test that failed half way must not leave its session connected for the next one."""
    yield
    while _OPEN:
        _OPEN.pop().close()


class Raw:
    """A scripted FIX client on a plain socket."""

    def __init__(self, port: int, sender: bytes = b"HELM", target: bytes = b"CONF") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        _OPEN.append(self.sock)
        self.sender, self.target = sender, target
        self.seq = 1
        self.dec = FixDecoder()
        self.got: list[FixMessage] = []

    def msg(self, msg_type: bytes, body=(), *, seq=None, extra=(), now=None, sender=None,
            target=None) -> bytes:
        if seq is None:
            seq = self.seq
            self.seq += 1
        return encode(msg_type, list(body), sender=sender or self.sender,
                      target=target or self.target, seq=seq,
                      sending_time_ns=time.time_ns() if now is None else now,
                      extra_header=list(extra))

    def send(self, msg_type: bytes, body=(), **kw) -> int:
        seq = kw.get("seq") or self.seq
        self.sock.sendall(self.msg(msg_type, body, **kw))
        return seq

    def raw(self, fields: bytes) -> None:
        """Send ``35=…`` fields written by hand, framed correctly (and numbered)."""
        fields = (fields.replace(b"{seq}", b"%d" % self.seq)
                  .replace(b"{now}", utc_timestamp(time.time_ns()))
                  .replace(b"{me}", self.sender).replace(b"{you}", self.target))
        self.seq += 1
        head = b"8=FIX.4.4\x019=%d\x01" % len(fields)
        self.sock.sendall(head + fields + b"10=%03d\x01" % checksum(head + fields))

    def _read(self, deadline: float) -> bool:
        """Read once; False when the venue closed the connection."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        except ConnectionError:
            return False
        if not data:
            return False
        self.dec.feed(data)
        while (m := self.dec.next()) is not None:
            assert not isinstance(m, FixGarbled), m
            self.got.append(m)
        return True

    def expect(self, pred, what: str) -> FixMessage:
        """The first message received (kept or new) that ``pred`` accepts."""
        deadline = time.monotonic() + WAIT_S
        while True:
            for i, m in enumerate(self.got):
                if pred(m):
                    del self.got[: i + 1]
                    return m
            assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s: {self.got}"
            assert self._read(deadline), f"closed while waiting for {what}: {self.got}"

    def type(self, msg_type: bytes) -> FixMessage:
        return self.expect(lambda m: m.msg_type == msg_type, f"35={msg_type.decode()}")

    def closed(self) -> list[FixMessage]:
        """Wait for the venue to close the connection; return what it sent before."""
        deadline = time.monotonic() + WAIT_S
        while self._read(deadline):
            assert time.monotonic() < deadline, f"still open after {WAIT_S} s: {self.got}"
        out, self.got = self.got, []
        return out

    def logon(self, *, reset: bool = True, hb: int = 30, seq: int | None = None) -> FixMessage:
        body = [(98, b"0"), (108, b"%d" % hb)] + ([(141, b"Y")] if reset else [])
        self.send(b"A", body, seq=seq)
        if seq is not None:
            self.seq = seq + 1
        return self.type(b"A")

    def bye(self) -> None:
        self.send(b"5")
        self.type(b"5")
        self.closed()
        self.sock.close()


def client(venue: Venue, sender: bytes = b"HELM", **kw) -> Raw:
    c = Raw(venue.port, sender)
    c.logon(**kw)
    return c


def assert_reject(c: Raw, seq: int, reason: int, ref_tag: int | None) -> FixMessage:
    rej = c.type(b"3")
    assert (rej.get(45), rej.get(373)) == (b"%d" % seq, b"%d" % reason), rej
    assert rej.get(371) == (None if ref_tag is None else b"%d" % ref_tag), rej
    c.send(b"1", [(112, b"after")])  # the number was used up and the session goes on
    assert c.type(b"0").get(112) == b"after"
    return rej


# -- 1: logon ------------------------------------------------------------------------------------
def test_case_1a_valid_logon_is_answered(venue):
    c = Raw(venue.port)
    a = c.logon(hb=17)
    assert (a.get(108), a.get(141), a.seq) == (b"17", b"Y", 1)
    c.bye()


def test_case_1a_logon_with_msgseqnum_too_high_gets_a_resend_request(venue):
    client(venue).bye()  # the venue now expects 3 next (Logon 1, Logout 2)
    c = Raw(venue.port)
    c.logon(reset=False, seq=7)
    rr = c.type(b"2")
    assert (rr.get(7), rr.get(16)) == (b"3", b"0")
    c.send(b"4", [(123, b"Y"), (36, b"8")], seq=3, extra=[(43, b"Y"), (122, utc_timestamp(
        time.time_ns()))])
    c.seq = 8
    c.bye()


def test_case_1b_duplicate_identity_is_closed_without_a_word(venue):
    c = client(venue)
    dup = Raw(venue.port)
    dup.send(b"A", [(98, b"0"), (108, b"30")])
    assert dup.closed() == []  # after the venue's grace for the first to go
    c.send(b"1", [(112, b"still")])
    assert c.type(b"0").get(112) == b"still"  # the first session is untouched
    c.bye()


@pytest.mark.parametrize("sender, target, text", [
    (b"EVIL", b"CONF", b"SenderCompID 'EVIL' is not a counterparty of CONF"),
    (b"HELM", b"OTHER", b"TargetCompID 'OTHER' is not 'CONF'"),
])
def test_case_1c_logon_with_wrong_compids_is_logged_out_and_closed(venue, sender, target, text):
    c = Raw(venue.port, sender, target)
    c.send(b"A", [(98, b"0"), (108, b"30"), (141, b"Y")])
    out = c.closed()
    assert [m.msg_type for m in out] == [b"5"] and out[0].get(58) == text


def test_case_1d_logon_with_a_bad_sending_time_is_logged_out(venue):
    c = Raw(venue.port)
    c.send(b"A", [(98, b"0"), (108, b"30"), (141, b"Y")], now=time.time_ns() - 600 * 10**9)
    out = c.closed()
    assert [m.get(58) for m in out] == [
        b"Invalid Logon message: SendingTime accuracy problem, field=52"]


def test_case_1d_logon_of_another_fix_version_is_closed(venue):
    c = Raw(venue.port)
    logon = c.msg(b"A", [(98, b"0"), (108, b"30")]).replace(b"FIX.4.4", b"FIX.4.2")
    c.sock.sendall(logon + logon)
    assert c.closed() == []


def test_case_1e_first_message_not_a_logon_is_closed_without_a_word(venue):
    c = Raw(venue.port)
    c.send(b"1", [(112, b"hello")])
    assert c.closed() == []


# -- 2: header -----------------------------------------------------------------------------------
def test_case_2a_2b_a_gap_is_asked_for_and_filled(venue):
    c = client(venue)
    c.seq = 5  # 2..4 never sent
    c.send(b"1", [(112, b"ahead")])
    rr = c.type(b"2")
    assert (rr.get(7), rr.get(16)) == (b"2", b"0")
    c.send(b"4", [(123, b"Y"), (36, b"5")], seq=2,
           extra=[(43, b"Y"), (122, utc_timestamp(time.time_ns()))])
    assert c.type(b"0").get(112) == b"ahead"  # the kept TestRequest, answered in its turn
    c.bye()


def test_case_2c_msgseqnum_too_low_is_logged_out(venue):
    c = client(venue)
    c.send(b"1", [(112, b"x")], seq=1)
    out = c.closed()
    assert out[-1].msg_type == b"5"
    assert out[-1].get(58) == b"MsgSeqNum too low, expecting 2 but received 1"


def test_case_2d_2j_3_garbled_input_is_ignored(venue):
    c = client(venue)
    good = c.msg(b"1", [(112, b"x")], seq=2)
    bad_sum = good[:-4] + (b"001\x01" if good.endswith(b"000\x01") else b"000\x01")
    i = good.index(b"9=") + 2
    j = good.index(b"\x01", i)
    bad_len = good[:i] + b"%d" % (int(good[i:j]) + 5) + good[j:]
    c.sock.sendall(b"garbage\x01" + bad_sum + bad_len + good)
    assert c.type(b"0").get(112) == b"x"  # the good one, number 2, was the next expected
    c.bye()


def test_case_2e_2f_2g_possdup(venue):
    c = client(venue)
    c.send(b"1", [(112, b"one")])
    c.type(b"0")
    now = time.time_ns()
    c.send(b"1", [(112, b"dup")], seq=2, extra=[(43, b"Y"), (122, utc_timestamp(now))])
    c.send(b"1", [(112, b"late")], extra=[(43, b"Y"), (122, utc_timestamp(now + 10**10))])
    assert_reject(c, 3, 10, 122)  # 2f (and 2e: the duplicate was ignored, no answer)
    c.send(b"1", [(112, b"no-orig")], extra=[(43, b"Y")])
    assert_reject(c, 5, 1, 122)  # 2g
    assert all(m.get(112) != b"dup" for m in c.got)
    c.bye()


def test_case_2h_another_begin_string_is_logged_out(venue):
    c = client(venue)
    other = c.msg(b"1", [(112, b"x")]).replace(b"FIX.4.4", b"FIX.4.2")
    c.sock.sendall(other + other)
    out = c.closed()
    assert out[-1].msg_type == b"5" and out[-1].get(58).startswith(b"Incorrect BeginString")


def test_case_2i_compid_mismatch_is_rejected_and_logged_out(venue):
    c = client(venue)
    c.send(b"1", [(112, b"x")], sender=b"HELM2")
    out = c.closed()
    assert [(m.msg_type, m.get(373)) for m in out] == [(b"3", b"9"), (b"5", None)]


def test_case_2k_sending_time_out_of_range_is_rejected_and_logged_out(venue):
    c = client(venue)
    c.send(b"1", [(112, b"x")], now=time.time_ns() - 300 * 10**9)
    out = c.closed()
    assert [(m.msg_type, m.get(373)) for m in out] == [(b"3", b"10"), (b"5", None)]


def test_case_2l_invalid_msg_type_is_rejected(venue):
    c = client(venue)
    c.send(b"ZZZ", [(58, b"x")])
    assert_reject(c, 2, 11, 35)
    c.bye()


def test_case_2m_unsupported_msg_type_gets_a_business_message_reject(venue):
    c = client(venue)
    seq = c.send(b"B", [(148, b"headline"), (33, b"1"), (58, b"text")])  # News
    j = c.type(b"j")
    assert (j.get(45), j.get(372), j.get(380)) == (b"%d" % seq, b"B", b"3")
    c.bye()


def test_case_2n_msg_type_not_third_is_ignored(venue):
    c = client(venue)
    c.raw(b"49={me}\x0135=1\x0156={you}\x0134={seq}\x0152={now}\x01112=x\x01")
    c.seq = 2  # a garbled message uses no number
    c.send(b"1", [(112, b"y")])
    assert c.type(b"0").get(112) == b"y"
    c.bye()


# -- 4 to 8 ----------------------------------------------------------------------------------
def test_case_4_5_6_heartbeats_and_test_requests(venue):
    c = client(venue, hb=1)
    c.send(b"0")  # 5: a heartbeat is taken
    assert c.type(b"0").msg_type == b"0"  # 4a: the venue's own heartbeat within the interval
    tr = c.type(b"1")  # 6: we stay silent: it asks
    out = c.closed()  # and, still silent, it gives up
    assert tr.get(112) and out[-1].msg_type == b"5"


def test_case_4b_test_request_is_answered(venue):
    c = client(venue)
    c.send(b"1", [(112, b"PING")])
    assert c.type(b"0").get(112) == b"PING"
    c.bye()


def test_case_7_a_reject_is_taken(venue):
    c = client(venue)
    c.send(b"3", [(45, b"1"), (373, b"99"), (58, b"just so")])
    c.send(b"1", [(112, b"x")])
    assert c.type(b"0").get(112) == b"x"
    c.bye()


def test_case_8_resend_request_is_served(venue):
    c = client(venue)
    c.send(b"1", [(112, b"a")])
    c.type(b"0")
    c.send(b"2", [(7, b"1"), (16, b"0")])
    gf = c.type(b"4")
    assert (gf.seq, gf.get(123), gf.get(36), gf.get(43)) == (1, b"Y", b"3", b"Y")
    c.bye()


# -- 10, 11: sequence reset --------------------------------------------------------------------
def test_case_10_gap_fill(venue):
    c = client(venue)
    c.send(b"4", [(123, b"Y"), (36, b"10")])  # 10b: 2 -> 10
    c.seq = 10
    c.send(b"4", [(123, b"Y"), (36, b"10")])  # 10e: not forward
    assert_reject(c, 10, 5, 36)
    c.send(b"4", [(123, b"Y"), (36, b"20")], seq=15)  # 10a: ahead of a gap
    rr = c.type(b"2")
    assert rr.get(7) == b"12"
    c.send(b"4", [(123, b"Y"), (36, b"20")], seq=12,
           extra=[(43, b"Y"), (122, utc_timestamp(time.time_ns()))])
    c.seq = 20
    c.bye()


def test_case_11_sequence_reset_reset(venue):
    c = client(venue)
    c.send(b"4", [(36, b"30")], seq=999)  # 11a: MsgSeqNum ignored
    c.seq = 30
    c.send(b"4", [(36, b"20")], seq=30)  # 11c
    rej = c.type(b"3")
    assert (rej.get(45), rej.get(371), rej.get(372), rej.get(373), rej.get(58)) == (
        b"30", b"36", b"4", b"5", b"Value is incorrect (out of range) for this tag")
    c.seq = 30  # not incremented
    c.send(b"1", [(112, b"HELLO")])
    assert c.type(b"0").get(112) == b"HELLO"
    c.bye()


# -- 12, 13: logout ----------------------------------------------------------------------------
def test_case_13b_logout_is_answered_then_closed(venue):
    c = client(venue)
    c.send(b"5", [(58, b"done")])
    assert c.type(b"5").msg_type == b"5"
    assert c.closed() == []


def test_case_12_venue_logout_on_shutdown(tmp_path):
    v = Venue(tmp_path / "v12")
    try:
        c = client(v)
        v.proc.send_signal(signal.SIGTERM)
        lo = c.type(b"5")
        assert lo.get(58) == b"venue shutting down"
        c.send(b"5")
        assert c.closed() == []
        assert v.proc.wait(timeout=15) == 0
    finally:
        v.stop()


# -- 14: field errors ----------------------------------------------------------------------------
HB = b"35=1\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x01"
MDR = b"35=V\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x01262=r\x01263=0\x01264=1\x01"


@pytest.mark.parametrize("case, fields, reason, ref_tag", [
    ("14a", HB + b"112=x\x014000=y\x01", 0, 4000),
    ("14b", b"35=1\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x01", 1, 112),
    ("14c", HB + b"112=x\x0144=1\x01", 2, 44),
    ("14d", HB + b"112=\x01", 4, 112),
    ("14e", b"35=3\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x0145=1\x01373=77\x01", 5,
     373),
    ("14f", b"35=2\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x017=abc\x0116=0\x01", 6, 7),
    ("14g", HB + b"112=x\x0150=DESK\x01", 14, 50),
    ("14h", HB + b"112=x\x01112=y\x01", 13, 112),
    ("14i", MDR + b"267=2\x01269=0\x01146=1\x0155=AAA\x01", 16, 267),
    ("14j", MDR + b"267=1\x01269=0\x01146=1\x0165=WI\x0155=AAA\x01", 15, 146),
])
def test_case_14_field_errors_are_rejected_and_use_up_the_number(venue, case, fields, reason,
                                                                  ref_tag):
    c = client(venue)
    c.raw(fields)
    assert_reject(c, 2, reason, ref_tag)
    c.bye()


# -- 15 to 20 ----------------------------------------------------------------------------------
def test_case_15_fields_in_another_order_are_accepted(venue):
    c = client(venue)
    c.send(b"H", [(11, b"nope"), (55, b"AAA"), (54, b"1")], extra=[(50, b"D"), (57, b"T")])
    c.send(b"H", [(54, b"1"), (55, b"AAA"), (11, b"nope2")], extra=[(57, b"T"), (50, b"D")])
    ers = [c.type(b"8"), c.type(b"8")]  # both status requests answered
    assert sorted(m.get(11) for m in ers) == [b"nope", b"nope2"]
    c.bye()


def test_case_16_messages_for_a_gone_counterparty_are_sent_after_its_next_logon(venue):
    c = client(venue)
    c.send(b"D", [(11, b"rest16"), (55, b"AAA"), (54, b"1"), (60, utc_timestamp(time.time_ns())),
                  (38, b"5"), (40, b"2"), (44, b"90.00")])
    assert c.expect(lambda m: m.get(11) == b"rest16", "ER New").get(150) == b"0"
    c.sock.close()  # gone: the venue cancels its orders and keeps the news
    c2 = Raw(venue.port)  # (the venue waits for the old connection to end before this one)
    c2.seq = c.seq
    c2.logon(reset=False)
    er = c2.expect(lambda m: m.get(11) == b"rest16", "the kept cancel")
    assert (er.get(150), er.get(58)) == (b"4", b"owner disconnected")
    c2.bye()


def test_case_17_encryption_is_refused(venue):
    c = Raw(venue.port)
    c.send(b"A", [(98, b"1"), (108, b"30"), (141, b"Y")])
    out = c.closed()
    assert b"EncryptMethod(98)=1 is not supported" in out[-1].get(58)


def test_case_18_19_third_party_addressing_and_possresend_are_taken(venue):
    c = client(venue)
    c.send(b"H", [(11, b"q"), (55, b"AAA"), (54, b"1")], extra=[(115, b"CLIENT"), (97, b"Y")])
    assert c.type(b"8").get(11) == b"q"
    c.bye()


def test_case_20_simultaneous_resend_requests(venue):
    c = client(venue)
    c.seq = 3  # our 2 is "lost"
    c.send(b"2", [(7, b"1"), (16, b"0")])
    gf = c.type(b"4")  # ours is served at once...
    rr = c.type(b"2")  # ...and theirs asks for our 2
    assert gf.seq == 1 and rr.get(7) == b"2"
    c.send(b"4", [(123, b"Y"), (36, b"3")], seq=2,
           extra=[(43, b"Y"), (122, utc_timestamp(time.time_ns()))])
    c.send(b"1", [(112, b"z")], seq=4)
    c.seq = 5
    assert c.type(b"0").get(112) == b"z"
    assert not any(m.msg_type == b"4" for m in c.got)  # not served twice
    c.bye()


# -- connection caps (no local denial of service) ----------------------------------------------
def test_connections_over_the_caps_are_refused_counted_and_logged(tmp_path):
    v = Venue(tmp_path / "caps", "max_connections = 3\nmax_connections_per_counterparty = 1")
    try:
        a = client(v)
        waiting = Raw(v.port)  # a second HELM: over its cap of one
        waiting.send(b"A", [(98, b"0"), (108, b"30"), (141, b"Y")])
        assert waiting.closed() == []
        v.wait_log("1 connections of HELM open, the most max_connections_per_counterparty = 1")
        idle = [socket.create_connection(("127.0.0.1", v.port)) for _ in range(2)]
        over = socket.create_connection(("127.0.0.1", v.port))  # the fourth: over the total
        over.settimeout(WAIT_S)
        assert over.recv(100) == b""  # closed at once, nothing said
        v.wait_log("the most max_connections = 3 allows")
        for s in [*idle, over]:
            s.close()
        a.bye()
    finally:
        v.stop()
    assert "'refused_over_limit': 2" in v.log_file.read_text()  # the counters at stop
