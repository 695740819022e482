"""The FIX 4.4 session layer, sans-IO: bytes and time in, bytes and events out.

Shape of h11's connection: ``receive_data(bytes, now_ns)`` returns the events that input
caused; ``send(...)`` queues a message; ``tick(now_ns)`` drives heartbeats, test requests and
time-outs; ``data_to_send()`` hands the transport what to write. No sockets, no clock reads:
the same code serves the initiator (engine) and the acceptor (venue), in tests and live.

Theory of operation (FIX 4.4 Volume 2, "Session Protocol"; the numbered test cases refer to
its "Test Cases" section):

- Inbound MsgSeqNum equal to the expected one: process it, expect the next (2a). Higher: keep
  the message, ask for the gap with one ResendRequest (2b), process the kept messages in order
  once the gap is filled. Lower without PossDupFlag: Logout "MsgSeqNum too low" and disconnect
  (2c); lower with PossDupFlag=Y: a duplicate, ignored (2e), unless OrigSendingTime is missing
  (Reject 1, 2g) or later than SendingTime (Reject 10, 2f).
- A garbled message (bad BodyLength or CheckSum: the decoder's business) is ignored and does
  not consume a sequence number (2d, 2j, 3). A message of another FIX version (BeginString
  not FIX.4.4) is not garbage but the wrong session: Logout and disconnect (2h).
- CompID mismatch (2i) and SendingTime out of the allowed ``max_latency_s`` (2k): Reject,
  Logout, disconnect. Unknown MsgType: Reject 11 (2l); a valid application MsgType the
  application does not take (``app_msg_types``): BusinessMessageReject 3 (2m).
- Every message in sequence is validated against the FIX 4.4 data dictionary
  (``engine.fix.dictionary``; 14a-14j): a failure is a Reject (35=3) with
  SessionRejectReason, RefTagID, RefMsgType and RefSeqNum, and its MsgSeqNum is consumed. A
  Logon that fails it (1d), asks for encryption (17) or has a SendingTime out of range: Logout
  and disconnect.
- ResendRequest: resend the stored application messages with PossDupFlag=Y and
  OrigSendingTime; administrative messages (and anything not stored) become one
  SequenceReset-GapFill per run (8). SequenceReset-GapFill moves the expected number forward
  (10b), never back (Reject 5, 10e); SequenceReset-Reset ignores MsgSeqNum (11) and never
  moves it back either (Reject 5, "Value is incorrect (out of range) for this tag", 11c).
- No traffic sent for HeartBtInt: Heartbeat (4a). Nothing received for HeartBtInt × 1.2:
  TestRequest (6); still nothing after another HeartBtInt × 1.2: disconnect.
- Logout from us: wait ``logout_timeout_s`` for theirs, then disconnect (12). From them:
  answer it and disconnect (13); in answer to our Logon (a refusal), just disconnect, its
  text the reason (``Disconnect("logged out: <text>")``).
- Credentials: the initiator's Logon carries Username (553) and Password (554) when
  configured; an acceptor configured with either refuses a Logon whose values differ
  (compared in constant time) with a Logout "Logon refused: invalid username or password"
  (which one, and what was sent, never said) and disconnects, counting ``logons_refused``.
  Administrative messages are never stored, so the password never reaches a message store.

Bounds (nothing a peer sends makes the session hold unbounded state): at most ``max_queue``
messages are kept ahead of a gap (beyond: Logout "too many messages queued ahead of a gap",
disconnect); a ResendRequest for more than ``max_resend`` messages is rejected (Reject 5), and
a gap larger than that is asked for in pieces of ``max_resend``. Each is counted.
"""

from __future__ import annotations

import enum
import hmac
import logging
import re
from dataclasses import dataclass, field

from engine.fix.codec import (
    FixDecoder,
    FixGarbled,
    FixMessage,
    MAX_SEQ_NUM,
    GarbleKind,
    encode,
    frame,
    parse_utc_timestamp,
    utc_timestamp,
)
from engine.fix.dictionary import validator
from engine.fix.store import MemoryStore, MessageStore

__all__ = [
    "SessionConfig",
    "SessionState",
    "FixSession",
    "SessionNotActive",
    "LoggedOn",
    "AppMessage",
    "PeerReject",
    "RejectSent",
    "BusinessRejectSent",
    "Garbled",
    "LoggedOut",
    "Disconnect",
    "REJECT_REASONS",
    "HELMDESK_APP_TYPES",
    "LOGON_REFUSED",
]

log = logging.getLogger("helmdesk.fix")

# -- message types and tags we act on ----------------------------------------------------------
HEARTBEAT, TEST_REQUEST, RESEND_REQUEST, REJECT, SEQUENCE_RESET, LOGOUT, LOGON = (
    b"0", b"1", b"2", b"3", b"4", b"5", b"A"
)
ADMIN_TYPES = frozenset({HEARTBEAT, TEST_REQUEST, RESEND_REQUEST, REJECT, SEQUENCE_RESET, LOGOUT, LOGON})
#: The application MsgTypes Helmdesk handles: the venue takes orders and market data requests,
#: the engine reads executions, cancel rejects, market data and business rejects.
HELMDESK_APP_TYPES = frozenset({b"D", b"F", b"G", b"H", b"V", b"8", b"9", b"W", b"X", b"Y",
                                b"j"})
#: FIX 4.4 MsgType values: one of 0-9 A-Z a-z, or AA..BH.
_VALID_MSG_TYPE = re.compile(rb"^(?:[0-9A-Za-z]|A[A-Z]|B[A-H])$")

#: SessionRejectReason (373), FIX 4.4.
REJECT_REASONS = {
    0: "Invalid tag number",
    1: "Required tag missing",
    2: "Tag not defined for this message type",
    3: "Undefined tag",
    4: "Tag specified without a value",
    5: "Value is incorrect (out of range) for this tag",
    6: "Incorrect data format for value",
    7: "Decryption problem",
    8: "Signature problem",
    9: "CompID problem",
    10: "SendingTime accuracy problem",
    11: "Invalid MsgType",
    13: "Tag appears more than once",
    14: "Tag specified out of required order",
    15: "Repeating group fields out of order",
    16: "Incorrect NumInGroup count for repeating group",
    17: "Non data value includes field delimiter",
    99: "Other",
}

#: Required body tags of the session messages, and which must be integers.
_REQUIRED = {
    TEST_REQUEST: (112,),
    RESEND_REQUEST: (7, 16),
    REJECT: (45,),
    SEQUENCE_RESET: (36,),
    LOGON: (98, 108),
}
_INT_TAGS = (7, 16, 36, 45, 98, 108)
#: Logout text for a Logon with the wrong Username or Password: the same for either, and
#: never what was sent (a password typed in the username field would be echoed back)
LOGON_REFUSED = "Logon refused: invalid username or password"

_HEADER_TAGS = frozenset({8, 9, 35, 49, 56, 34, 52, 43, 97, 122, 10})


class SessionNotActive(RuntimeError):
    """An application message was sent while the session was not logged on."""


class SessionState(enum.Enum):
    DISCONNECTED = "disconnected"  #: no connection (or it was lost)
    AWAITING_LOGON = "awaiting logon"  #: connected; the Logon exchange is not complete
    ACTIVE = "active"  #: logged on
    LOGOUT_SENT = "logout sent"  #: we sent Logout and wait for theirs


# -- events ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoggedOn:
    heartbeat_s: int
    reset: bool  #: sequence numbers were reset to 1 by this Logon


@dataclass(frozen=True, slots=True)
class AppMessage:
    message: FixMessage


@dataclass(frozen=True, slots=True)
class PeerReject:
    """The counterparty rejected one of our messages (35=3)."""

    ref_seq: int
    reason: int | None
    text: str


@dataclass(frozen=True, slots=True)
class RejectSent:
    """We rejected one of theirs."""

    ref_seq: int
    reason: int
    text: str


@dataclass(frozen=True, slots=True)
class BusinessRejectSent:
    """We answered one of theirs with a BusinessMessageReject (35=j)."""

    ref_seq: int
    reason: int  #: BusinessRejectReason (380)
    text: str


@dataclass(frozen=True, slots=True)
class Garbled:
    """Input that was ignored (FIX: garbled messages are dropped, not rejected)."""

    reason: str


@dataclass(frozen=True, slots=True)
class LoggedOut:
    text: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The transport must close the connection now."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    sender: str  #: our SenderCompID
    target: str  #: their CompID (our TargetCompID)
    initiator: bool
    heartbeat_s: int = 30  #: initiator's HeartBtInt; an acceptor takes the Logon's
    #: initiator: send ResetSeqNumFlag=Y on Logon; acceptor: start at 1 on every Logon
    reset_on_logon: bool = False
    reset_on_logout: bool = False  #: sequence numbers back to 1 after a Logout exchange
    reset_on_disconnect: bool = False  #: ...and after any end of a connection
    max_latency_s: float = 120.0  #: SendingTime accepted this far from our clock
    logon_timeout_s: float = 10.0
    logout_timeout_s: float = 10.0
    test_request_factor: float = 1.2  #: "reasonable transmission time" on top of HeartBtInt
    validate: bool = True  #: check inbound messages against the FIX 4.4 dictionary
    validate_fields_out_of_order: bool = True  #: header/body/trailer order errors: Reject 14
    allow_unknown_msg_fields: bool = False  #: let tags not defined (for the message) through
    #: the application MsgTypes the application takes and the session validates; others are
    #: handed over as they are, for the application's BusinessMessageReject 3 (2m). Default:
    #: the ones Helmdesk handles on either side. None: validate every MsgType
    app_msg_types: frozenset[bytes] | None = HELMDESK_APP_TYPES
    #: True: an application message missing a required field is rejected here too (Reject 1,
    #: conditionally required: BusinessMessageReject 5). Off by default: a venue that leaves
    #: out a field its FIX spec marks required must not cost us a fill, and the application
    #: rejects what it needs in its own terms (the venue's exchange names the field)
    validate_app_required: bool = False
    #: False: an application message's values (enumerations, formats) are left to the
    #: application too; its structure is still checked
    validate_app_values: bool = True
    max_queue: int = 10_000  #: messages kept ahead of a gap
    max_resend: int = 100_000  #: messages served for / asked in one ResendRequest
    #: initiator: the Username (553) its Logon carries; acceptor: the one a Logon must carry
    #: ("" initiator: none sent; acceptor: not checked, unless ``password`` is set)
    username: str = ""
    #: the same for Password (554): the secret itself, resolved from the profile's reference
    #: by whoever builds the session. Left out of repr so a logged config does not show it
    password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("sender", "target"):
            v = getattr(self, name)
            if not v or "\x01" in v or "=" in v:
                raise ValueError(f"{name} CompID {v!r} is empty or contains SOH/'='")
        if "\x01" in self.username or "\x01" in self.password:
            raise ValueError("username and password must not contain SOH")
        if not 1 <= self.heartbeat_s <= 3600:
            raise ValueError(f"heartbeat_s must be 1..3600, was {self.heartbeat_s}")
        if self.max_latency_s <= 0:
            raise ValueError(f"max_latency_s must be positive, was {self.max_latency_s}")
        if self.max_queue < 1 or self.max_resend < 1:
            raise ValueError(f"max_queue and max_resend must be at least 1, were "
                             f"{self.max_queue} and {self.max_resend}")


class FixSession:
    """One FIX session over one connection at a time; the store outlives connections."""

    def __init__(self, config: SessionConfig, store: MessageStore | None = None) -> None:
        self.config = config
        self.store = store if store is not None else MemoryStore()
        self.state = SessionState.DISCONNECTED
        self.heartbeat_s = config.heartbeat_s
        self._sender = config.sender.encode()
        self._target = config.target.encode()
        self._decoder = FixDecoder()
        self._out: list[bytes] = []
        self._unrecorded: tuple[int, bytes | None] | None = None  # see _send_unrecorded
        self._events: list = []
        self._queue: dict[int, FixMessage] = {}  # received ahead of a gap, by MsgSeqNum
        self._resend_until = 0  # a ResendRequest is out for numbers below this
        self._last_sent = self._last_recv = 0
        self._state_since = 0
        self._test_req_sent = 0  # when our TestRequest went out (0: none outstanding)
        self._test_req_n = 0
        self._types_ok: set[bytes] = set()  # MsgTypes already seen to be valid
        self._served_early: set[int] = set()  # ResendRequests answered ahead of a gap
        self._ts_second = b""  # SendingTime cache: "YYYYMMDD-HH:MM:SS" and its ns
        self._ts_second_ns = 0
        self._check = config.validate
        self._validate = validator(allow_unknown=config.allow_unknown_msg_fields,
                                   check_order=config.validate_fields_out_of_order,
                                   app_required=config.validate_app_required,
                                   app_values=config.validate_app_values)
        self.counters = dict.fromkeys(
            ("garbled", "rejects_sent", "rejects_received", "resend_requests_sent",
             "resends_served", "duplicates_ignored", "business_rejects_sent", "queue_overflows",
             "resend_requests_refused", "logons_refused"), 0)

    # -- connection life cycle ----------------------------------------------------------------
    def connect(self, now_ns: int) -> None:
        """A connection is up. The initiator sends Logon; the acceptor waits for one."""
        self._decoder = FixDecoder()
        self._queue.clear()
        self._served_early.clear()
        self._resend_until = 0
        self._test_req_sent = 0
        self._last_recv = now_ns
        self._set_state(SessionState.AWAITING_LOGON, now_ns)
        if self.config.initiator:
            reset = self.config.reset_on_logon
            if reset:
                self.store.reset()
            body = [(98, b"0"), (108, str(self.heartbeat_s).encode())]
            if reset:
                body.append((141, b"Y"))
            if self.config.username:
                body.append((553, self.config.username.encode()))
            if self.config.password:  # admin messages are not stored: the store never sees it
                body.append((554, self.config.password.encode()))
            self._send(LOGON, body, now_ns)

    def connection_lost(self, now_ns: int) -> None:
        """The transport's connection closed (from either side). Sequence numbers persist,
        unless ``reset_on_disconnect``."""
        self._set_state(SessionState.DISCONNECTED, now_ns)
        self._out.clear()
        self._queue.clear()
        if self.config.reset_on_disconnect:
            self.store.reset()

    def logout(self, text: str, now_ns: int) -> None:
        if self.state is SessionState.ACTIVE:
            self._send(LOGOUT, [(58, text.encode())] if text else [], now_ns)
            self._set_state(SessionState.LOGOUT_SENT, now_ns)

    def reset_sequence(self, new_seq: int, now_ns: int) -> None:
        """Jump our outbound numbers to ``new_seq`` with a SequenceReset-Reset (9): for when
        messages cannot be resent (a lost store). The peer expects ``new_seq`` next."""
        if self.state is not SessionState.ACTIVE:
            raise SessionNotActive(f"session {self.config.sender}->{self.config.target} is "
                                   f"{self.state.value}")
        if new_seq <= self.store.next_sender_seq:
            raise ValueError(f"NewSeqNo {new_seq} must be above the next MsgSeqNum "
                             f"{self.store.next_sender_seq}")
        self._send(SEQUENCE_RESET, [(123, b"N"), (36, str(new_seq).encode())], now_ns)
        self.store.set_next_sender_seq(new_seq)

    # -- outbound ----------------------------------------------------------------------------
    def send(self, msg_type: bytes, body: list | bytes, now_ns: int) -> int:
        """Queue an application message; return its MsgSeqNum. ``body``: (tag, value) pairs,
        or the body's fields encoded already (``codec.frame``: the OMS's templates)."""
        if self.state is not SessionState.ACTIVE:
            raise SessionNotActive(
                f"session {self.config.sender}->{self.config.target} is {self.state.value}"
            )
        return self._send(msg_type, body, now_ns)

    @property
    def last_received_ns(self) -> int:
        """When the peer last sent us anything (heartbeats too); 0 before the first."""
        return self._last_recv

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _send(self, msg_type: bytes, body: list | bytes, now_ns: int) -> int:
        seq = self._send_unrecorded(msg_type, body, now_ns)
        self._record_unrecorded()
        return seq

    def _send_unrecorded(self, msg_type: bytes, body: list | bytes, now_ns: int) -> int:
        """Encode and queue a message; the store hears of it at ``_record_unrecorded``, which
        must come before anything else is sent or received. A transport that writes at once
        (``PolledConnection.send``) calls it after the write: the bytes go first, the
        store's ring record (a few µs in a live turn) after them."""
        seq = self.store.next_sender_seq
        if type(body) is bytes:
            raw = frame(msg_type, body, sender=self._sender, target=self._target, seq=seq,
                        sending_time_ns=now_ns)
        else:
            raw = encode(msg_type, body, sender=self._sender, target=self._target, seq=seq,
                         sending_time_ns=now_ns)
        # only application messages are resent; administrative ones become gap fills
        self._unrecorded = (seq, None if msg_type in ADMIN_TYPES else raw)
        self._out.append(raw)
        self._last_sent = now_ns
        return seq

    def _record_unrecorded(self) -> None:
        """The message ``_send_unrecorded`` queued goes into the store (its number is used)."""
        seq, raw = self._unrecorded
        self._unrecorded = None
        self.store.record_sent(seq, raw)

    def _send_reject(self, m: FixMessage, reason: int, text: str, now_ns: int,
                     ref_tag: int | None = None) -> None:
        self._reject(m.seq, m.msg_type, reason, text, now_ns, ref_tag)

    def _reject(self, ref_seq: int, ref_msg_type: bytes | None, reason: int, text: str,
                now_ns: int, ref_tag: int | None = None) -> None:
        body = [(45, str(ref_seq).encode())]
        if ref_tag is not None:
            body.append((371, str(ref_tag).encode()))
        if ref_msg_type:
            body.append((372, ref_msg_type))
        body += [(373, str(reason).encode()), (58, text.encode())]
        self._send(REJECT, body, now_ns)
        self.counters["rejects_sent"] += 1
        self._events.append(RejectSent(ref_seq, reason, text))
        log.warning("%s rejected message %d (35=%s): %s", self.config.sender, ref_seq,
                    _s(ref_msg_type), text)

    def _business_reject(self, m: FixMessage, reason: int, text: str, now_ns: int) -> None:
        body = [(45, str(m.seq).encode()), (372, m.msg_type), (380, str(reason).encode()),
                (58, text.encode())]
        self._send(b"j", body, now_ns)
        self.counters["business_rejects_sent"] += 1
        self._events.append(BusinessRejectSent(m.seq, reason, text))
        log.warning("%s business-rejected message %d (35=%s): %s", self.config.sender, m.seq,
                    _s(m.msg_type), text)

    def _fail(self, text: str, now_ns: int) -> None:
        """Logout with a reason and drop the connection (serious protocol errors)."""
        if self.state in (SessionState.ACTIVE, SessionState.AWAITING_LOGON, SessionState.LOGOUT_SENT):
            self._send(LOGOUT, [(58, text.encode())], now_ns)
        self._events.append(Disconnect(text))
        self._set_state(SessionState.DISCONNECTED, now_ns)
        log.error("%s->%s: %s", self.config.sender, self.config.target, text)

    # -- inbound -----------------------------------------------------------------------------
    def receive_data(self, data: bytes, now_ns: int) -> list:
        """Feed bytes from the connection; return what they caused."""
        decoder = self._decoder
        decoder.feed(data)
        while self.state is not SessionState.DISCONNECTED:
            if decoder.drained:
                break  # all consumed (the usual end of a read): no need to ask again
            item = decoder.next()
            if item is None:
                break
            if isinstance(item, FixGarbled):
                if item.should_reject:
                    self._last_recv = now_ns
                    self._on_invalid(item, now_ns)
                    continue
                self.counters["garbled"] += 1
                self._events.append(Garbled(item.reason))
                log.warning("%s: ignored garbled input: %s", self.config.sender, item.reason)
                if item.kind is GarbleKind.BEGIN_STRING:
                    if self.state is SessionState.AWAITING_LOGON:  # 1d: not our session
                        self._events.append(Disconnect(f"Incorrect BeginString: {item.reason}"))
                        self._set_state(SessionState.DISCONNECTED, now_ns)
                    else:
                        self._fail(f"Incorrect BeginString: {item.reason}", now_ns)  # 2h
                continue
            self._last_recv = now_ns
            self._test_req_sent = 0  # any traffic answers a TestRequest
            if not self._in_sequence_app(item, now_ns):
                self._on_message(item, now_ns)
        return self._take_events()

    def _in_sequence_app(self, m: FixMessage, now_ns: int) -> bool:
        """The usual message, the short way: logged on, nothing queued ahead of a gap, the
        next MsgSeqNum, no PossDupFlag, an application MsgType seen before, our CompIDs, a
        SendingTime in range. It is then what ``_on_message`` would make of it (validated,
        its number used up, handed over); anything else is left to ``_on_message``, which
        starts from scratch (nothing here changes state until the message is taken)."""
        mt = m.msg_type
        if (self.state is not SessionState.ACTIVE or self._queue or mt in ADMIN_TYPES
                or mt not in self._types_ok or m.seq != self.store.next_target_seq
                or m.poss_dup or m.get(49) != self._target or m.get(56) != self._sender):
            return False
        raw_time = m.get(52)
        if raw_time is None:
            return False
        try:
            sent = self._sending_ns(raw_time)
        except ValueError:
            return False
        if abs(now_ns - sent) / 1e9 > self.config.max_latency_s:
            return False
        if self._check and not self._valid(m, now_ns):
            return True  # refused as _process refuses it: number used up, answered
        self.store.set_next_target_seq(m.seq + 1)
        self._events.append(AppMessage(m))
        return True

    def _on_invalid(self, bad: FixGarbled, now_ns: int) -> None:
        """A well-framed message that breaks a field rule: Reject it (14), or worse."""
        if self.state is SessionState.AWAITING_LOGON or bad.ref_seq is None:
            self._fail(f"unusable message: {bad.reason}", now_ns)
            return
        expected = self.store.next_target_seq
        if bad.ref_seq > expected:
            self._request_resend(expected, bad.ref_seq, now_ns)
            return
        if bad.ref_seq < expected:
            self.counters["duplicates_ignored"] += 1
            return
        self.store.set_next_target_seq(expected + 1)
        self._reject(bad.ref_seq, bad.ref_msg_type, int(bad.session_reject_reason), bad.reason,
                     now_ns, bad.ref_tag)

    def _take_events(self) -> list:
        ev, self._events = self._events, []
        return ev

    def _on_message(self, m: FixMessage, now_ns: int) -> None:
        if self.state is SessionState.AWAITING_LOGON:
            if m.msg_type == LOGOUT and self.config.initiator:
                self._on_refused(m, now_ns)  # the acceptor refused our Logon: say why
                return
            if m.msg_type != LOGON:
                why = f"first message was 35={m.msg_type.decode(errors='replace')}, not a Logon"
                if self.config.initiator:
                    self._fail(why, now_ns)  # 1B.e: Logout saying why, disconnect
                else:  # no session yet: answering would use up a sequence number (1S.e)
                    self._events.append(Disconnect(why))
                    self._set_state(SessionState.DISCONNECTED, now_ns)
                return
            self._on_logon(m, now_ns)
            return
        if not self._header_ok(m, now_ns):
            return
        mt = m.msg_type
        if mt == SEQUENCE_RESET and m.get(123) != b"Y":
            self._on_sequence_reset(m, now_ns)  # Reset mode: MsgSeqNum is ignored (11)
            return
        expected = self.store.next_target_seq
        seq = m.seq
        if seq > expected:
            if mt == RESEND_REQUEST:
                self._on_resend_request(m, now_ns)  # serve theirs first: no deadlock (20)
                self._served_early.add(seq)  # and only once, when its turn comes
            if mt == LOGOUT:
                self._on_logout(m, now_ns)
                return
            if len(self._queue) >= self.config.max_queue:
                self.counters["queue_overflows"] += 1
                self._fail(f"too many messages queued ahead of a gap ({len(self._queue)}, "
                           f"expecting {expected} but received {seq})", now_ns)
                return
            self._queue[seq] = m
            self._request_resend(expected, seq, now_ns)
            return
        if seq < expected:
            self._on_seq_too_low(m, expected, now_ns)
            return
        self._process(m, now_ns)
        while self.state is not SessionState.DISCONNECTED:
            nxt = self._queue.pop(self.store.next_target_seq, None)
            if nxt is None:
                break
            self._process(nxt, now_ns)
        if self._queue:
            nxt_seq = self.store.next_target_seq
            self._queue = {s: q for s, q in self._queue.items() if s >= nxt_seq}
            if self._queue and nxt_seq >= self._resend_until:  # the next piece of a long gap
                self._request_resend(nxt_seq, max(self._queue), now_ns)

    def _header_ok(self, m: FixMessage, now_ns: int) -> bool:
        if m.get(49) != self._target or m.get(56) != self._sender:
            self._consume(m)
            self._send_reject(m, 9, f"CompID problem: 49={_s(m.get(49))} 56={_s(m.get(56))}, "
                                    f"expected 49={self.config.target} 56={self.config.sender}",
                              now_ns)
            self._fail("CompID problem", now_ns)
            return False
        mt = m.msg_type
        if mt not in self._types_ok:
            if not _VALID_MSG_TYPE.match(mt):
                self._consume(m)
                self._send_reject(m, 11, f"Invalid MsgType {_s(mt)}", now_ns, 35)
                return False
            self._types_ok.add(mt)
        raw_time = m.get(52)
        if raw_time is None:
            self._consume(m)
            self._send_reject(m, 1, "Required tag missing: SendingTime(52)", now_ns, 52)
            return False
        try:
            sent = self._sending_ns(raw_time)
        except ValueError:
            self._consume(m)
            self._send_reject(m, 6, f"SendingTime {_s(raw_time)} is not a UTCTimestamp", now_ns, 52)
            return False
        skew = abs(now_ns - sent) / 1e9
        if skew > self.config.max_latency_s and not m.poss_dup:
            self._consume(m)
            self._send_reject(m, 10, f"SendingTime accuracy problem: {skew:.1f} s from our clock",
                              now_ns, 52)
            self._fail("SendingTime accuracy problem", now_ns)
            return False
        return True

    def _sending_ns(self, raw: bytes) -> int:
        """SendingTime in ns. Its seconds part changes once a second: parse that part once."""
        if len(raw) == 21 and raw[:17] == self._ts_second and raw[17] == 46 and raw[18:].isdigit():
            return self._ts_second_ns + int(raw[18:]) * 1_000_000
        ns = parse_utc_timestamp(raw)
        if len(raw) == 21:
            self._ts_second, self._ts_second_ns = raw[:17], ns - ns % 1_000_000_000
        return ns

    def _consume(self, m: FixMessage) -> None:
        """A rejected message still uses up its sequence number (if it was the next one)."""
        if m.seq == self.store.next_target_seq:
            self.store.set_next_target_seq(m.seq + 1)

    def _on_seq_too_low(self, m: FixMessage, expected: int, now_ns: int) -> None:
        if not m.poss_dup:
            self._fail(f"MsgSeqNum too low, expecting {expected} but received {m.seq}", now_ns)
            return
        bad = _orig_time_problem(m)
        if bad is not None:
            self._send_reject(m, *bad, now_ns, 122)
            return
        self.counters["duplicates_ignored"] += 1  # seen already (2e)

    def _request_resend(self, expected: int, seen: int, now_ns: int) -> None:
        if self._resend_until > expected:
            return  # one is already out for this gap
        end = seen - 1  # the last missing number
        if end - expected + 1 > self.config.max_resend:  # a long gap: ask in pieces
            end = expected + self.config.max_resend - 1
            self._resend_until = end + 1
            end_b = str(end).encode()
        else:
            self._resend_until = seen + 1
            end_b = b"0"
        self._send(RESEND_REQUEST, [(7, str(expected).encode()), (16, end_b)], now_ns)
        self.counters["resend_requests_sent"] += 1
        log.warning("%s: gap detected, expecting %d but received %d: ResendRequest sent",
                    self.config.sender, expected, seen)

    def _process(self, m: FixMessage, now_ns: int) -> None:
        """Handle the next message in sequence."""
        mt = m.msg_type
        if m.poss_dup:  # 2f, 2g: a resend must say when it was first sent, and before now
            bad = _orig_time_problem(m)
            if bad is not None:
                self._consume(m)
                self._send_reject(m, *bad, now_ns, 122)
                return
        if self._check and not self._valid(m, now_ns):
            return
        required = _REQUIRED.get(mt)
        if required is not None:
            for tag in required:
                v = m.get(tag)
                if v is None:
                    self._consume(m)
                    self._send_reject(m, 1, f"Required tag missing: {tag}", now_ns, tag)
                    return
                if tag in _INT_TAGS and not v.isdigit():
                    self._consume(m)
                    self._send_reject(m, 6, f"Incorrect data format for value: {tag}={_s(v)}",
                                      now_ns, tag)
                    return
                if tag in _INT_TAGS and len(v) > 18:  # no count or number of ours is longer
                    self._consume(m)
                    self._send_reject(m, 5, f"Value is incorrect (out of range) for this tag: "
                                            f"{tag}={_s(v[:20])}...", now_ns, tag)
                    return
        if mt == SEQUENCE_RESET:  # GapFill mode, in sequence (10b/10e)
            new = int(m.get(36))
            if new > MAX_SEQ_NUM:
                self._consume(m)
                self._send_reject(m, 5, f"NewSeqNo {_s(m.get(36))[:20]} is above the highest "
                                        f"sequence number, {MAX_SEQ_NUM}", now_ns, 36)
                return
            if new <= m.seq:
                self._consume(m)
                self._send_reject(m, 5, f"NewSeqNo {new} is not above MsgSeqNum {m.seq}", now_ns, 36)
                return
            self.store.set_next_target_seq(new)
            return
        self.store.set_next_target_seq(m.seq + 1)
        if mt == HEARTBEAT:
            return
        if mt == TEST_REQUEST:
            self._send(HEARTBEAT, [(112, m.get(112))], now_ns)
        elif mt == RESEND_REQUEST:
            if m.seq in self._served_early:
                self._served_early.discard(m.seq)
            else:
                self._on_resend_request(m, now_ns)
        elif mt == REJECT:
            self.counters["rejects_received"] += 1
            reason = m.get(373)
            self._events.append(PeerReject(
                int(m.get(45)), int(reason) if reason and reason.isdigit() else None,
                _s(m.get(58, b""))))
        elif mt == LOGOUT:
            self._on_logout(m, now_ns)
        elif mt == LOGON:
            self._fail("Logon received while already logged on", now_ns)
        else:
            self._events.append(AppMessage(m))

    def _valid(self, m: FixMessage, now_ns: int) -> bool:
        """Check ``m`` (the next in sequence) against the dictionary and the application's
        MsgTypes; if it fails, use up its number and answer with a Reject or a
        BusinessMessageReject."""
        types = self.config.app_msg_types
        if types is not None and m.msg_type not in types and m.msg_type not in ADMIN_TYPES:
            return True  # not the application's: it answers with a BusinessMessageReject
        bad = self._validate(m)
        if bad is None:
            return True
        self._consume(m)
        reason, ref_tag, text, business = bad
        if business:
            self._business_reject(m, reason, text, now_ns)
        else:
            self._send_reject(m, reason, text, now_ns, ref_tag)
        return False

    def _on_logon(self, m: FixMessage, now_ns: int) -> None:
        if m.get(49) != self._target or m.get(56) != self._sender:
            self._fail(f"Logon from unexpected CompIDs 49={_s(m.get(49))} 56={_s(m.get(56))}",
                       now_ns)
            return
        if not self.config.initiator and not self.credentials_ok(m):
            self.counters["logons_refused"] += 1
            self._fail(LOGON_REFUSED, now_ns)  # says neither which one nor what was sent
            return
        if self._check:
            bad = self._validate(m)
            if bad is not None:
                self._fail(f"Invalid Logon message: {bad[2]}", now_ns)  # 1d
                return
        hb = m.get(108)
        if hb is None or not hb.isdigit() or not 1 <= int(hb) <= 3600:
            self._fail(f"Logon without a valid HeartBtInt (108={_s(hb)})", now_ns)
            return
        if m.get(98) != b"0":  # 17: encryption is not supported
            self._fail(f"Invalid Logon message: EncryptMethod(98)={_s(m.get(98))} is not "
                       f"supported, only 0 (none)", now_ns)
            return
        try:
            skew = abs(now_ns - parse_utc_timestamp(m.get(52))) / 1e9
        except (ValueError, TypeError):
            skew = float("inf")
        if skew > self.config.max_latency_s:  # 1d
            self._fail("Invalid Logon message: SendingTime accuracy problem, field=52", now_ns)
            return
        reset = m.get(141) == b"Y"
        if not self.config.initiator:
            self.heartbeat_s = int(hb)  # the acceptor uses the initiator's interval
            if reset or self.config.reset_on_logon:
                self.store.reset()
        expected = self.store.next_target_seq
        seq = m.seq
        if seq < expected and not reset:
            self._fail(f"MsgSeqNum too low, expecting {expected} but received {seq}", now_ns)
            return
        if not self.config.initiator:
            body = [(98, b"0"), (108, str(self.heartbeat_s).encode())]
            if reset:
                body.append((141, b"Y"))
            self._send(LOGON, body, now_ns)
        self._set_state(SessionState.ACTIVE, now_ns)
        self._events.append(LoggedOn(self.heartbeat_s, reset))
        if seq > expected:
            self._request_resend(expected, seq, now_ns)  # the Logon itself is gap-filled
        else:
            self.store.set_next_target_seq(seq + 1)

    def credentials_ok(self, m: FixMessage) -> bool:
        """Whether Logon ``m`` carries the Username and Password configured (each only if
        configured: a password alone wants no particular username). Both are compared, in
        constant time, whatever the first gave: how long a refusal takes tells nothing of
        which one was wrong. The venue asks too, before a session sees the Logon."""
        cfg = self.config
        if not cfg.username and not cfg.password:
            return True
        ok = True
        for tag, want in ((553, cfg.username), (554, cfg.password)):
            if want:
                ok &= hmac.compare_digest(m.get(tag) or b"", want.encode())
        return ok

    def _on_refused(self, m: FixMessage, now_ns: int) -> None:
        """A Logout answering our Logon: the acceptor refused it (CompIDs, credentials,
        sequence numbers) and is closing. Its text is the reason the operator needs; no
        answer, which would only use up a sequence number of a session that never started."""
        text = _s(m.get(58, b""))
        self._events.append(LoggedOut(text))
        self._events.append(Disconnect(f"logged out{': ' + text if text else ''}"))
        self._set_state(SessionState.DISCONNECTED, now_ns)

    def _on_logout(self, m: FixMessage, now_ns: int) -> None:
        text = _s(m.get(58, b""))
        if self.state is not SessionState.LOGOUT_SENT:
            self._send(LOGOUT, [], now_ns)  # answer theirs (13b)
        self._events.append(LoggedOut(text))
        self._events.append(Disconnect(f"logged out{': ' + text if text else ''}"))
        self._set_state(SessionState.DISCONNECTED, now_ns)
        if self.config.reset_on_logout:  # our answer is already encoded with the old number
            self.store.reset()

    def _on_sequence_reset(self, m: FixMessage, now_ns: int) -> None:
        new = m.get(36)
        if new is None or not new.isdigit():
            self._send_reject(m, 1 if new is None else 6, "SequenceReset without a valid NewSeqNo",
                              now_ns, 36)
            return
        new_i = int(new) if len(new) <= 18 else MAX_SEQ_NUM + 1
        expected = self.store.next_target_seq
        if new_i > MAX_SEQ_NUM:
            self._send_reject(m, 5, f"NewSeqNo {_s(new)[:20]} is above the highest sequence "
                                    f"number, {MAX_SEQ_NUM}", now_ns, 36)
            return
        if new_i < expected:  # 11c: Reject, and the expected number stays
            log.warning("%s: SequenceReset-Reset to %d would move MsgSeqNum back from %d",
                        self.config.sender, new_i, expected)
            self._send_reject(m, 5, REJECT_REASONS[5], now_ns, 36)
            return
        if new_i == expected:  # 11b: accepted, though it changes nothing
            log.warning("%s: SequenceReset-Reset to %d, the number expected anyway",
                        self.config.sender, new_i)
        self.store.set_next_target_seq(new_i)
        self._queue = {s: q for s, q in self._queue.items() if s >= new_i}

    def _on_resend_request(self, m: FixMessage, now_ns: int) -> None:
        begin = int(m.get(7))
        end = int(m.get(16))
        if begin > MAX_SEQ_NUM or end > MAX_SEQ_NUM:
            self._send_reject(m, 5, f"ResendRequest range {begin}..{end} goes above the highest "
                                    f"sequence number, {MAX_SEQ_NUM}"[:200], now_ns,
                              7 if begin > MAX_SEQ_NUM else 16)
            return
        last = self.store.next_sender_seq - 1
        if end == 0 or end > last:
            end = last
        if begin < 1 or (int(m.get(16)) and begin > int(m.get(16))):
            self._send_reject(m, 5, f"ResendRequest range {begin}..{int(m.get(16))} is not a "
                                    f"range of sequence numbers", now_ns, 7)
            return
        if end - begin + 1 > self.config.max_resend:
            self.counters["resend_requests_refused"] += 1
            self._send_reject(m, 5, f"ResendRequest for {end - begin + 1} messages is over the "
                                    f"limit of {self.config.max_resend}: ask in smaller ranges",
                              now_ns, 16)
            return
        self.counters["resends_served"] += 1
        stored = dict(self.store.sent_range(begin, end))
        gap_from = None
        for seq in range(begin, end + 1):
            raw = stored.get(seq)
            if raw is None:
                if gap_from is None:
                    gap_from = seq
                continue
            if gap_from is not None:
                self._gap_fill(gap_from, seq, now_ns)
                gap_from = None
            self._resend(raw, now_ns)
        if gap_from is not None:
            self._gap_fill(gap_from, end + 1, now_ns)

    def _gap_fill(self, seq: int, new_seq: int, now_ns: int) -> None:
        sending = encode(b"4", [(123, b"Y"), (36, str(new_seq).encode())], sender=self._sender,
                         target=self._target, seq=seq, sending_time_ns=now_ns,
                         extra_header=[(43, b"Y"), (122, utc_timestamp(now_ns))])
        self._out.append(sending)
        self._last_sent = now_ns

    def _resend(self, raw: bytes, now_ns: int) -> None:
        d = FixDecoder()
        d.feed(raw)
        orig = d.next()
        if not isinstance(orig, FixMessage):  # our own store gave back something broken
            return
        body = [(t, v) for t, v in orig.fields if t not in _HEADER_TAGS]
        self._out.append(encode(orig.msg_type, body, sender=self._sender, target=self._target,
                                seq=orig.seq, sending_time_ns=now_ns,
                                extra_header=[(43, b"Y"), (122, orig.get(52))]))
        self._last_sent = now_ns

    # -- time --------------------------------------------------------------------------------
    def tick(self, now_ns: int) -> list:
        """Call every so often (≤ 1 s apart): heartbeats, test requests, time-outs."""
        st = self.state
        if st is SessionState.AWAITING_LOGON and self.config.initiator:
            if now_ns - self._state_since > self.config.logon_timeout_s * 1e9:
                self._events.append(Disconnect(
                    f"no Logon answer within {self.config.logon_timeout_s:g} s"))
                self._set_state(SessionState.DISCONNECTED, now_ns)
        elif st is SessionState.LOGOUT_SENT:
            if now_ns - self._state_since > self.config.logout_timeout_s * 1e9:
                self._events.append(Disconnect(
                    f"no Logout answer within {self.config.logout_timeout_s:g} s"))
                self._set_state(SessionState.DISCONNECTED, now_ns)
        elif st is SessionState.ACTIVE:
            hb_ns = self.heartbeat_s * 1_000_000_000
            grace_ns = int(hb_ns * self.config.test_request_factor)
            if self._test_req_sent and now_ns - self._test_req_sent > grace_ns:
                self._fail(f"no answer to TestRequest within {grace_ns / 1e9:g} s", now_ns)
            elif not self._test_req_sent and now_ns - self._last_recv > grace_ns:
                self._test_req_n += 1
                self._send(TEST_REQUEST, [(112, f"TEST-{self._test_req_n}".encode())], now_ns)
                self._test_req_sent = now_ns
            elif now_ns - self._last_sent >= hb_ns:
                self._send(HEARTBEAT, [], now_ns)
        return self._take_events()

    def _set_state(self, st: SessionState, now_ns: int) -> None:
        self.state = st
        self._state_since = now_ns


def _orig_time_problem(m: FixMessage) -> tuple[int, str] | None:
    """(SessionRejectReason, text) when a PossDupFlag=Y message's OrigSendingTime is missing,
    unreadable or later than its SendingTime."""
    orig = m.get(122)
    if orig is None:
        return 1, "Required tag missing: OrigSendingTime(122)"
    try:
        if parse_utc_timestamp(orig) > parse_utc_timestamp(m.get(52)):
            return 10, "OrigSendingTime is later than SendingTime"
    except ValueError:
        return 6, f"OrigSendingTime {_s(orig)} is not a UTCTimestamp"
    return None


def _s(raw: bytes | None) -> str:
    return "<missing>" if raw is None else raw.decode("ascii", "replace")


