"""Hostile inputs: the engine must survive a desk scribbling over shared memory and a venue
sending anything at all.

    python -m bench.hostile [--seconds 60] [--only scribble|fix]

Two runs, each against a real engine process:

- **scribble** (``bench._scribble``): one client process writes random words into its desk
  slot's control words and records, then anywhere past the segment header, while another desk
  keeps sending PINGs that must all be acked. ``scribble_engine_crashes`` counts engine deaths;
  ``scribble_rejects`` is what the engine dropped, by reason (its header counters).
- **fix fuzz** (this file): the engine trades on one FIX venue, EVIL, which is this process: a
  real acceptor on 127.0.0.1 (``engine.fix.session.FixSession`` in the acceptor role, one
  session for the whole run, so reconnects resume sequence numbers as a real venue's do). A
  desk keeps sending orders to EVIL; EVIL answers with a stream drawn from ``ATTACKS``: reports
  about those orders with venue identifiers of any length and values of every wrong kind,
  reports about orders that do not exist, market data that makes no sense, unknown message
  types and tags, repeated tags, truncated and oversized messages, bad BodyLength and CheckSum,
  random bytes, sequence numbers too high, SequenceResets and ResendRequests with impossible
  values, PossDup without OrigSendingTime, bad SendingTime, Logouts and Rejects. A message
  mangled after framing uses up EVIL's sequence number, so the engine asks for it again and
  gets the original: the session layer is exercised too. ``fix_fuzz_engine_crashes`` counts
  engine deaths (the engine is restarted and the traceback shown); ``fix_fuzz_rejects`` is
  every drop and rejection the engine counted, by stage and reason (the counters it logs when
  it stops).

Targets (issue 9): both crash counts 0 over 60-second runs, every rejected input counted.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import select
import socket
import threading
import time

from bench._common import EngineProcess, Table, emit_json, progress, tail

__all__ = ["fuzz_run", "ATTACKS"]

SOH = b"\x01"
_RNG_SEED = 20261204


# -- the hostile venue -----------------------------------------------------------------------------
class EvilVenue:
    """An acceptor that logs the engine on properly, then sends it whatever ``ATTACKS`` say."""

    def __init__(self, seed: int = _RNG_SEED) -> None:
        from engine.fix.session import FixSession, SessionConfig

        self.rng = random.Random(seed)
        self.session = FixSession(SessionConfig(sender="EVIL", target="HELM", initiator=False,
                                                heartbeat_s=30, max_latency_s=3600.0))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.orders: list[tuple[bytes, bytes, bytes, int]] = []  # ClOrdID, symbol, side, qty
        self.md_reqs: list[tuple[bytes, bytes]] = []  # MDReqID, symbol
        self.sent: dict[str, int] = {}
        self.connections = 0
        self._next_disruptive = 0.0
        self.bytes_out = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evil-venue", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()

    # -- the connection loop ---------------------------------------------------------------------
    def _run(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                self._serve(conn)
            except OSError:
                pass  # the engine dropped the connection: wait for the next one
            finally:
                conn.close()
                self.session.connection_lost(time.time_ns())

    def _serve(self, conn: socket.socket) -> None:
        from engine.fix.session import AppMessage, Disconnect, SessionState

        s = self.session
        s.connect(time.time_ns())
        conn.setblocking(False)
        out = b""
        next_attack = 0.0
        while not self._stop.is_set():
            r, _, _ = select.select([conn], [conn] if out else [], [], 0.002)
            now = time.time_ns()
            events = []
            if r:
                data = conn.recv(65536)
                if not data:
                    return
                events = s.receive_data(data, now)
            events += s.tick(now)
            for e in events:
                if isinstance(e, Disconnect):
                    return
                if isinstance(e, AppMessage):
                    self._remember(e.message)
            out += s.data_to_send()  # the session's own first (its Logon answer, say)
            if s.state is SessionState.ACTIVE and time.monotonic() >= next_attack:
                next_attack = time.monotonic() + 0.001
                out += self._attack(now)
            if out:
                try:
                    n = conn.send(out[:262144])
                except BlockingIOError:
                    n = 0
                self.bytes_out += n
                out = out[n:]
                if len(out) > 4 << 20:  # the engine is not reading: drop what waits
                    out = b""

    def _remember(self, m) -> None:
        if m.msg_type == b"D":
            self.orders.append((m.get(11, b"x"), m.get(55, b"AAPL"), m.get(54, b"1"),
                                int(m.get(38, b"1") or 1)))
            del self.orders[:-200]
        elif m.msg_type == b"V":
            self.md_reqs.append((m.get(262, b"r"), m.get(55, b"AAPL")))
            del self.md_reqs[:-50]

    # -- attacks ---------------------------------------------------------------------------------
    def _attack(self, now: int) -> bytes:
        name = self.rng.choices(_NAMES, _WEIGHTS)[0]
        if name in DISRUPTIVE:  # these end the session (as FIX says): one every 2 s at most
            if time.monotonic() < self._next_disruptive:
                name = "er_bad_values"
            else:
                self._next_disruptive = time.monotonic() + 2.0
        self.sent[name] = self.sent.get(name, 0) + 1
        return ATTACKS[name][1](self, now) or b""

    def _order(self):
        if self.orders:
            return self.rng.choice(self.orders)
        return (b"HD-none", b"AAPL", b"1", 10)

    def _id(self) -> bytes:
        """A venue identifier of any length: a UUID, or much longer."""
        r = self.rng
        n = r.choice((8, 36, 36, 36, 64, 200, 4000))
        return bytes(r.choice(b"0123456789abcdef-") for _ in range(n))

    def _value(self) -> bytes:
        """A wrong value of some kind (never containing SOH)."""
        r = self.rng
        return r.choice((b"", b"-1", b"0", b"nan", b"inf", b"-inf", b"1e309", b"abc",
                         b"99999999999999999999999", b"1.5.5", b" 7", b"\xff\xfe",
                         b"9" * 400, bytes(r.randrange(2, 256) for _ in range(r.randrange(1, 40)))))

    def _send(self, msg_type: bytes, body: list) -> bytes:
        """An application message with the session's next number, framed here without any
        check (values may be empty, wrong, huge); it is not kept for resends (a ResendRequest
        for it gets a gap fill)."""
        st = self.session.store
        seq = st.next_sender_seq
        st.set_next_sender_seq(seq + 1)
        st.record_sent(seq, None)
        return raw_message(msg_type, body, seq, time.time_ns())

    def _er(self, *, ids: bool = True, bad: bool = False) -> list:
        cl, sym, side, qty = self._order()
        r = self.rng
        et, st = r.choice(((b"0", b"0"), (b"F", b"1"), (b"F", b"2"), (b"4", b"4"), (b"8", b"8"),
                           (b"C", b"C"), (b"I", b"1"), (b"5", b"0")))
        last = r.randrange(1, qty + 1)
        body = [(37, self._id() if ids else b"V1"), (11, cl), (17, self._id()), (150, et),
                (39, st), (55, sym), (54, side), (38, qty), (151, qty - last), (14, last),
                (6, b"100.0"), (32, last), (31, b"100.0")]
        if bad:
            k = r.randrange(len(body))
            body[k] = (body[k][0], self._value())
        return body


def raw_message(msg_type: bytes, body: list, seq: int, now_ns: int, header: list = ()) -> bytes:
    """A FIX 4.4 message framed with a right BodyLength and CheckSum, nothing else checked."""
    from engine.fix.codec import utc_timestamp

    def field(tag, value) -> bytes:
        if not isinstance(value, bytes):
            value = str(value).encode()
        return b"%d=%s\x01" % (tag, value)

    inner = b"".join([field(35, msg_type), field(49, b"EVIL"), field(56, b"HELM"),
                      field(34, seq), field(52, utc_timestamp(now_ns)),
                      *[field(t, v) for t, v in header], *[field(t, v) for t, v in body]])
    head = b"8=FIX.4.4\x019=%d\x01" % len(inner)
    return head + inner + b"10=%03d\x01" % (sum(head + inner) % 256)


def _er_long_ids(v: EvilVenue, now: int) -> bytes:
    return v._send(b"8", v._er())


def _er_bad_values(v: EvilVenue, now: int) -> bytes:
    return v._send(b"8", v._er(bad=True))


def _er_unknown_order(v: EvilVenue, now: int) -> bytes:
    body = v._er()
    body[1] = (11, v._id())
    return v._send(b"8", body)


def _status_answer(v: EvilVenue, now: int) -> bytes:
    cl, sym, side, qty = v._order()
    cum = v.rng.choice((0, qty, qty + 1, -1, 2**62))
    return v._send(b"8", [(37, v._id()), (11, cl), (17, b"0"), (150, b"I"),
                          (39, v.rng.choice((b"0", b"1", b"2", b"4", b"8", b"C", b"Z"))),
                          (55, sym), (54, side), (38, qty), (151, 0), (14, cum),
                          (6, v.rng.choice((b"100.0", b"nan", b"-5", b"1e308")))])


def _cancel_reject(v: EvilVenue, now: int) -> bytes:
    cl = v._order()[0]
    return v._send(b"9", [(37, v._id()), (11, v._id()), (41, cl), (39, v._value() or b"0"),
                          (434, v.rng.choice((b"1", b"2", b"x")))])


def _md_garbage(v: EvilVenue, now: int) -> bytes:
    r = v.rng
    req, sym = r.choice(v.md_reqs) if v.md_reqs else (b"r", b"AAPL")
    n = r.choice((0, 1, 2, 5, 300))
    entries = []
    for _ in range(n):
        entries += [(279, r.choice((b"0", b"1", b"2", b"9"))),
                    (269, r.choice((b"0", b"1", b"2", b"Z"))), (55, sym),
                    (270, r.choice((b"100.25", b"-1", b"nan", b"1e300", v._value()))),
                    (271, r.choice((b"10", b"0", b"-5", v._value())))]
    count = r.choice((n, n + 1, max(0, n - 1), 99999))
    if r.random() < 0.5:  # incremental: action, type, symbol, price, size per entry
        return v._send(b"X", [(262, req), (268, count), *entries])
    snapshot = [f for f in entries if f[0] in (269, 270, 271)]  # no action, no symbol
    return v._send(b"W", [(262, req), (55, sym), (268, count), *snapshot])


def _random_msg_type(v: EvilVenue, now: int) -> bytes:
    mt = v.rng.choice((b"Z", b"ZZ", b"AE", b"j", b"h", b"BE", b"U7", b"q"))
    return v._send(mt, [(58, v._value()), (11, v._order()[0])])


def _unknown_tags(v: EvilVenue, now: int) -> bytes:
    body = v._er()
    for _ in range(v.rng.randrange(1, 6)):
        body.insert(v.rng.randrange(len(body) + 1),
                    (v.rng.choice((5000, 9999, 20001, 99999, 123456789)), v._value() or b"x"))
    return v._send(b"8", body)


def _dup_tags(v: EvilVenue, now: int) -> bytes:
    body = v._er()
    k = v.rng.randrange(len(body))
    body.insert(v.rng.randrange(len(body) + 1), body[k])
    return v._send(b"8", body)


def _mangle(v: EvilVenue, how) -> bytes:
    """A good message, framed by the session (its number used up), then broken."""
    raw = bytearray(v._send(b"8", v._er()))
    return bytes(how(raw))


def _truncate(v: EvilVenue, now: int) -> bytes:
    return _mangle(v, lambda raw: raw[: v.rng.randrange(1, len(raw))])


def _bad_checksum(v: EvilVenue, now: int) -> bytes:
    def f(raw):
        raw[-2] = ord("0") + (raw[-2] - ord("0") + 1) % 10
        return raw
    return _mangle(v, f)


def _bad_body_length(v: EvilVenue, now: int) -> bytes:
    def f(raw):
        return re.sub(rb"\x019=\d+", b"\x019=" + str(v.rng.choice((0, 5, 10**6, 99999999))).encode(),
                      bytes(raw), count=1)
    return _mangle(v, f)


def _flip_bytes(v: EvilVenue, now: int) -> bytes:
    def f(raw):
        for _ in range(v.rng.randrange(1, 8)):
            raw[v.rng.randrange(len(raw))] = v.rng.randrange(256)
        return raw
    return _mangle(v, f)


def _garbage(v: EvilVenue, now: int) -> bytes:
    return v.rng.randbytes(v.rng.randrange(1, 4096))


def _oversized(v: EvilVenue, now: int) -> bytes:
    r = v.rng
    if r.random() < 0.5:  # one field far longer than any message should be
        body = v._er()
        body.append((58, b"x" * r.choice((70_000, 300_000, 1_500_000))))
        return v._send(b"8", body)
    return b"8=FIX.4.4\x019=" + b"9" * r.randrange(1, 30) + SOH + b"A" * r.randrange(1000, 2_000_000)


def _seq_too_high(v: EvilVenue, now: int) -> bytes:
    st = v.session.store
    st.set_next_sender_seq(st.next_sender_seq + v.rng.randrange(1, 50))
    return v._send(b"8", v._er())


def _sequence_reset(v: EvilVenue, now: int) -> bytes:
    st = v.session.store
    seq = st.next_sender_seq
    new = v.rng.choice((b"0", b"1", b"%d" % max(1, seq - 5), b"%d" % (seq + 3),
                        b"%d" % (seq + 900), b"9" * 30, b"-4"))
    raw = _admin(v, b"4", [(123, v.rng.choice((b"Y", b"N", b"Q"))), (36, new)], now)
    if new.isdigit() and seq < int(new) < 2**31:  # taken: our next number is that one now
        st.set_next_sender_seq(int(new))
    return raw


def _resend_request(v: EvilVenue, now: int) -> bytes:
    a, b = v.rng.choice(((1, 0), (1, 2**31 - 1), (500, 3), (0, 0), (2**40, 1), (1, 10**6)))
    return _admin(v, b"2", [(7, a), (16, b)], now)


def _admin(v: EvilVenue, mt: bytes, body: list, now: int, *, seq: int | None = None,
           extra_header: list = ()) -> bytes:
    """A message framed here, not by the session: the next number (or ``seq``), used up."""
    st = v.session.store
    if seq is None:
        seq = st.next_sender_seq
        st.set_next_sender_seq(seq + 1)
        st.record_sent(seq, None)
    return raw_message(mt, body, seq, now, extra_header)


def _test_request(v: EvilVenue, now: int) -> bytes:
    return _admin(v, b"1", [(112, v._value() or b"t")] if v.rng.random() < 0.7 else [], now)


def _reject(v: EvilVenue, now: int) -> bytes:
    return _admin(v, b"3", [(45, v.rng.choice((b"1", b"-3", b"x"))), (373, v._value() or b"1"),
                            (58, v._value())], now)


def _logout(v: EvilVenue, now: int) -> bytes:
    return _admin(v, b"5", [(58, v._value())], now)


def _sending_time(v: EvilVenue, now: int) -> bytes:
    """SendingTime hours away from the clock (or at the epoch)."""
    return _admin(v, b"8", v._er(), v.rng.choice((now - 10**13, now + 10**13, 0)))


def _poss_dup(v: EvilVenue, now: int) -> bytes:
    """A resend of an earlier number, PossDupFlag=Y, with or without OrigSendingTime."""
    seq = max(1, v.session.store.next_sender_seq - v.rng.randrange(1, 5))
    header = [(43, b"Y")]
    if v.rng.random() < 0.5:
        header.append((122, v.rng.choice((b"20261204-00:00:00.000", b"29991231-23:59:59",
                                          b"garbage"))))
    return _admin(v, b"8", v._er(), now, seq=seq, extra_header=header)

#: name -> (weight, attack): most keep the session up; the disruptive ones are rarer
ATTACKS = {
    "er_long_ids": (20, _er_long_ids),
    "er_bad_values": (20, _er_bad_values),
    "er_unknown_order": (6, _er_unknown_order),
    "status_answer": (8, _status_answer),
    "cancel_reject": (5, _cancel_reject),
    "md_garbage": (12, _md_garbage),
    "random_msg_type": (4, _random_msg_type),
    "unknown_tags": (6, _unknown_tags),
    "dup_tags": (4, _dup_tags),
    "truncate": (3, _truncate),
    "bad_checksum": (3, _bad_checksum),
    "bad_body_length": (3, _bad_body_length),
    "flip_bytes": (4, _flip_bytes),
    "garbage": (3, _garbage),
    "oversized": (1, _oversized),
    "seq_too_high": (2, _seq_too_high),
    "sequence_reset": (2, _sequence_reset),
    "resend_request": (2, _resend_request),
    "test_request": (2, _test_request),
    "reject": (2, _reject),
    "logout": (0.3, _logout),
    "sending_time": (1, _sending_time),
    "poss_dup": (2, _poss_dup),
}
#: attacks after which FIX has the engine end the session (SendingTime far off: Logout; a
#: Logout; bytes flipped in BeginString): rationed, so most of the run is spent logged on
DISRUPTIVE = frozenset({"sending_time", "logout", "flip_bytes"})
_NAMES = list(ATTACKS)
_WEIGHTS = [ATTACKS[n][0] for n in _NAMES]


# -- the run ---------------------------------------------------------------------------------------
def _flatten(counters: dict, prefix: str = "") -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in counters.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int) and v:
            out[key] = v
    return out


_REJECT_KEYS = re.compile(
    r"^(execution\.(unusable|client_errors|session_rejects|ignored|drops)"
    r"|oms\.(refused|unmatched|duplicates|rejected_locally)"
    r"|sessions\.[^.]+\.(?!resends_served|resend_requests_sent)\w+"
    r"|market_data\.[^.]+\.(gaps|duplicates|stale_dropped|bad_messages|bad_entries|"
    r"unknown_symbols|rejects|refreshes|ignored))$")


def _engine_counters(eng: EngineProcess) -> dict:
    log = eng.data_dir / "logs" / f"engine-{eng.instance}.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.findall(r"counters (\{.*\})", text)
    return json.loads(found[-1]) if found else {}


def fuzz_run(seconds: float) -> dict:
    """The FIX fuzz run; returns its figures (see the module docstring)."""
    from engine.ipc import EngineClient, IpcError, Scope, Verb
    from engine.ipc.commands import order_text

    evil = EvilVenue()
    evil.start()
    extra = (f'[[venues]]\nname = "EVIL"\nhost = "127.0.0.1"\nport = {evil.port}\n'
             f'sender = "HELM"\ntarget = "EVIL"\nheartbeat_s = 30\nmarket_data = true\n')
    crashes, tracebacks, orders_sent = 0, [], 0
    rejects: dict[str, int] = {}
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            eng = EngineProcess("hostilefix", idle="sleep", extra=extra, n_instruments=2,
                                update_hz=20)
            with eng:
                died = False
                try:
                    with EngineClient(eng.instance, user="fuzz") as c:
                        last = 0.0
                        while time.monotonic() < end:
                            if eng.proc.poll() is not None:
                                died = True
                                break
                            if time.monotonic() - last >= 0.02:
                                last = time.monotonic()
                                k = orders_sent % 2
                                try:
                                    c.send(Verb.ORDER, Scope.INSTRUMENT, k, arg0=10 + k,
                                           arg1=100.0 + (orders_sent % 7),
                                           text=order_text("EVIL", "buy" if k else "sell"))
                                    orders_sent += 1
                                    c.poll_acks()
                                except IpcError:
                                    pass
                            time.sleep(0.002)
                except IpcError:
                    died = eng.proc.poll() is not None
                if died:
                    crashes += 1
                    tracebacks.append(tail(eng.stderr_path, 25))
                    progress(f"ENGINE DIED (exit {eng.proc.returncode}); restarting")
                    eng.running = False
                else:
                    eng.stop()
                    for k, v in _flatten(_engine_counters(eng)).items():
                        if _REJECT_KEYS.match(k):
                            rejects[k] = rejects.get(k, 0) + v
    finally:
        evil.stop()
    return {"fix_fuzz_engine_crashes": crashes, "fix_fuzz_rejects": rejects,
            "fix_fuzz_attacks": dict(evil.sent), "fix_fuzz_connections": evil.connections,
            "fix_fuzz_orders_sent": orders_sent, "fix_fuzz_bytes_out": evil.bytes_out,
            "fix_fuzz_seconds": seconds, "tracebacks": tracebacks}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    p.add_argument("--only", choices=("scribble", "fix"), help="run one of the two")
    args = p.parse_args(argv)
    figures: dict = {}
    t = Table("hostile inputs")
    if args.only in (None, "scribble"):
        from bench._scribble import scribble_run

        progress(f"shared-memory scribble for {args.seconds:g} s")
        s = scribble_run(args.seconds)
        figures["scribble_engine_crashes"] = s["scribble_engine_crashes"]
        figures["scribble_rejects"] = s["scribble_rejects"]
        figures["scribble_acks_ok"] = s.get("scribble_acks_ok", 0)
        t.add("scribble_engine_crashes", str(s["scribble_engine_crashes"]), "= 0",
              "ok" if s["scribble_engine_crashes"] == 0 else "MISSED")
        for k, v in sorted(s["scribble_rejects"].items()):
            t.add(f"  rejected: {k}", str(v))
        t.add("PINGs acked meanwhile", str(s.get("scribble_acks_ok", 0)))
    if args.only in (None, "fix"):
        progress(f"FIX fuzz for {args.seconds:g} s")
        f = fuzz_run(args.seconds)
        for tb in f.pop("tracebacks"):
            print(tb)
        figures.update(f)
        t.add("fix_fuzz_engine_crashes", str(f["fix_fuzz_engine_crashes"]), "= 0",
              "ok" if f["fix_fuzz_engine_crashes"] == 0 else "MISSED")
        for k, v in sorted(f["fix_fuzz_rejects"].items()):
            t.add(f"  rejected: {k}", str(v))
        t.add("attacks sent", str(sum(f["fix_fuzz_attacks"].values())))
        t.add("engine connections", str(f["fix_fuzz_connections"]))
        t.add("orders sent by the desk", str(f["fix_fuzz_orders_sent"]))
    print(t.render())
    emit_json(figures)


if __name__ == "__main__":
    main()
