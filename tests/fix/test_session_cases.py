"""FIX 4.4 Volume 2, "FIX Session-level Test Cases and Expected Behaviors", cases 1a-20.

Every test's name starts with its case number. The session under test is the sans-IO
``FixSession``, in the acceptor role and, where the case applies to both, the initiator role
(``role`` is parametrized). The other end is a ``Peer`` that sends exactly the bytes a test
asks for, mistakes included. Case 14 follows QuickFIX's numbering of the field checks (a
undefined tag, b required tag missing, c tag not defined for the message type, d tag without
value, e value out of range, f data format, g header/body/trailer order, h repeated tag, i
NumInGroup count, j repeating group order).
"""

from __future__ import annotations

import pytest

from engine.fix.codec import FixMessage, checksum, utc_timestamp
from engine.fix.session import (
    AppMessage,
    Disconnect,
    FixSession,
    Garbled,
    LoggedOn,
    LoggedOut,
    PeerReject,
    RejectSent,
    SessionConfig,
    SessionNotActive,
    SessionState,
)

from tests.fix._sessions import T0, S, decode_all
from tests.fix._sessions import Peer as _Peer

ROLES = ["acceptor", "initiator"]
role = pytest.mark.parametrize("role", ROLES)


class Peer(_Peer):
    """The other end, driven by hand; ``raw`` also frames fields written by hand."""

    def raw(self, fields: bytes, *, seq=None, now=T0) -> bytes:
        """A whole message from ``35=…`` fields written by hand (header order included)."""
        if seq is None:
            seq = self.seq
            self.seq += 1
        fields = fields.replace(b"{seq}", b"%d" % seq).replace(b"{now}", utc_timestamp(now))
        fields = fields.replace(b"{me}", self.sender).replace(b"{you}", self.target)
        return frame(fields)


def frame(fields: bytes) -> bytes:
    """Wrap ``35=…<SOH>…<SOH>`` in a correct BeginString, BodyLength and CheckSum."""
    head = b"8=FIX.4.4\x019=%d\x01" % len(fields)
    return head + fields + b"10=%03d\x01" % checksum(head + fields)


LOGON = [(98, b"0"), (108, b"30")]


def session(role: str, **kw) -> tuple[FixSession, Peer]:
    """A session in ``role`` (not connected) and the peer facing it."""
    if role == "initiator":
        cfg = SessionConfig(sender="HELM", target="VENUE", initiator=True, **kw)
        return FixSession(cfg), Peer(b"VENUE", b"HELM")
    cfg = SessionConfig(sender="VENUE", target="HELM", initiator=False, **kw)
    return FixSession(cfg), Peer(b"HELM", b"VENUE")


def logged_on(role: str, **kw) -> tuple[FixSession, Peer]:
    """A session in ``role`` logged on (their Logon was 1, ours 1), its output drained."""
    s, p = session(role, **kw)
    s.connect(T0)
    ev = s.receive_data(p.msg(b"A", LOGON), T0)
    assert ev == [LoggedOn(30, False)] and s.state is SessionState.ACTIVE
    s.data_to_send()
    return s, p


def sent(s: FixSession) -> list[FixMessage]:
    return decode_all(s.data_to_send())


def pump(a: FixSession, b: FixSession, now: int) -> tuple[list, list]:
    """Move bytes both ways until both are quiet; return each side's events."""
    ea, eb = [], []
    for _ in range(100):
        x, y = a.data_to_send(), b.data_to_send()
        if not x and not y:
            return ea, eb
        if x:
            eb += b.receive_data(x, now)
        if y:
            ea += a.receive_data(y, now)
    raise AssertionError("sessions never went quiet")


def pair(**kw) -> tuple[FixSession, FixSession]:
    a = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True, **kw))
    b = FixSession(SessionConfig(sender="VENUE", target="HELM", initiator=False))
    b.connect(T0)
    a.connect(T0)
    pump(a, b, T0)
    return a, b


def assert_rejected(s: FixSession, ev: list, seq: int, reason: int, ref_tag: int | None,
                    msg_type: bytes) -> FixMessage:
    """``ev`` is one Reject of message ``seq``; the Reject on the wire says so; the number
    is used up and the session goes on."""
    assert len(ev) == 1 and isinstance(ev[0], RejectSent), ev
    assert (ev[0].ref_seq, ev[0].reason) == (seq, reason), ev
    rej = sent(s)[-1]
    assert rej.msg_type == b"3"
    assert rej.get(45) == b"%d" % seq and rej.get(373) == b"%d" % reason
    assert rej.get(372) == msg_type
    assert rej.get(371) == (None if ref_tag is None else b"%d" % ref_tag)
    assert s.store.next_target_seq == seq + 1
    assert s.state is SessionState.ACTIVE
    return rej


# -- 1: logon ------------------------------------------------------------------------------------
def test_case_1a_valid_logon_is_answered_with_a_logon_and_its_heartbeat_interval():
    a, b = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True,
                                    heartbeat_s=7)), \
        FixSession(SessionConfig(sender="VENUE", target="HELM", initiator=False))
    b.connect(T0)
    a.connect(T0)
    ea, eb = pump(a, b, T0)
    assert a.state is b.state is SessionState.ACTIVE
    assert ea == [LoggedOn(7, False)] and eb == [LoggedOn(7, False)]
    assert b.heartbeat_s == 7  # the acceptor took HeartBtInt from the Logon
    assert a.store.next_sender_seq == b.store.next_target_seq == 2


@role
def test_case_1a_logon_with_msgseqnum_too_high_is_answered_then_a_resend_is_requested(role):
    s, p = session(role)
    s.connect(T0)
    s.data_to_send()
    ev = s.receive_data(p.msg(b"A", LOGON, seq=5), T0)
    assert ev == [LoggedOn(30, False)]
    out = sent(s)
    want = [b"A", b"2"] if role == "acceptor" else [b"2"]
    assert [m.msg_type for m in out] == want
    assert out[-1].get(7) == b"1" and out[-1].get(16) == b"0"


def test_case_1a_reset_seq_num_flag_restarts_both_sides_at_one():
    a, b = pair()
    for i in range(3):
        a.send(b"D", [(11, f"o{i}".encode())], T0)
    pump(a, b, T0)
    a.connection_lost(T0)
    b.connection_lost(T0)
    a2 = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True,
                                  reset_on_logon=True), a.store)
    b.connect(T0)
    a2.connect(T0)
    ea, eb = pump(a2, b, T0)
    assert ea == [LoggedOn(30, True)] and eb == [LoggedOn(30, True)]
    assert a2.store.next_sender_seq == 2 and b.store.next_target_seq == 2


def test_case_1b_a_second_logon_on_a_live_session_ends_it():
    # 1b proper (a second connection with the same identity, closed without a word) is the
    # acceptor's transport's business: tests/fix/test_venue_conformance.py. The session's part:
    s, p = logged_on("acceptor")
    ev = s.receive_data(p.msg(b"A", LOGON), T0)
    assert ev == [Disconnect("Logon received while already logged on")]


@role
def test_case_1c_logon_with_unexpected_compids_disconnects(role):
    s, p = session(role)
    s.connect(T0)
    s.data_to_send()
    ev = s.receive_data(p.msg(b"A", LOGON, sender=b"EVIL"), T0)
    assert len(ev) == 1 and isinstance(ev[0], Disconnect)
    assert "unexpected CompIDs 49=EVIL" in ev[0].reason
    assert s.state is SessionState.DISCONNECTED


@role
def test_case_1d_logon_with_a_bad_sending_time_is_logged_out(role):
    s, p = session(role)
    s.connect(T0)
    s.data_to_send()
    ev = s.receive_data(p.msg(b"A", LOGON, now=T0 - 600 * S), T0)
    why = "Invalid Logon message: SendingTime accuracy problem, field=52"
    assert ev == [Disconnect(why)]
    out = sent(s)
    assert [m.msg_type for m in out] == [b"5"] and out[0].get(58) == why.encode()


@role
def test_case_1d_logon_with_an_invalid_field_is_logged_out(role):
    s, p = session(role)
    s.connect(T0)
    s.data_to_send()
    ev = s.receive_data(p.msg(b"A", [(98, b"0"), (108, b"abc")]), T0)
    assert len(ev) == 1 and ev[0].reason.startswith("Invalid Logon message: HeartBtInt(108)")
    assert [m.msg_type for m in sent(s)] == [b"5"]
    s, p = session(role)
    s.connect(T0)
    ev = s.receive_data(p.msg(b"A", [(98, b"0")]), T0)  # HeartBtInt missing
    assert ev[0].reason == "Invalid Logon message: Required tag missing: HeartBtInt(108) in Logon(A)"


@role
def test_case_1d_logon_of_another_fix_version_disconnects_without_a_word(role):
    s, p = session(role)
    s.connect(T0)
    s.data_to_send()
    logon = p.msg(b"A", LOGON).replace(b"FIX.4.4", b"FIX.4.2")
    # its end is known when the next message starts (a BeginString says nothing of the length)
    ev = s.receive_data(logon + logon, T0)
    assert isinstance(ev[0], Garbled) and ev[-1].reason.startswith("Incorrect BeginString")
    assert s.state is SessionState.DISCONNECTED and s.data_to_send() == b""


def test_case_1e_first_message_not_a_logon_acceptor_disconnects_without_a_word():
    s, p = session("acceptor")
    s.connect(T0)
    ev = s.receive_data(p.msg(b"D", [(11, b"x")]), T0)
    assert ev == [Disconnect("first message was 35=D, not a Logon")]
    assert s.state is SessionState.DISCONNECTED and s.data_to_send() == b""


def test_case_1e_first_message_not_a_logon_initiator_logs_out_saying_so():
    s, p = session("initiator")
    s.connect(T0)
    s.data_to_send()
    ev = s.receive_data(p.msg(b"8", [(11, b"x")]), T0)
    assert ev == [Disconnect("first message was 35=8, not a Logon")]
    out = sent(s)
    assert out[-1].msg_type == b"5" and out[-1].get(58) == b"first message was 35=8, not a Logon"


# -- 2: standard header ------------------------------------------------------------------------
@role
def test_case_2a_msgseqnum_as_expected_is_accepted(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"D" if role == "acceptor" else b"8", [(11, b"a")]), T0)
    assert [e.message.get(11) for e in ev] == [b"a"]
    assert s.store.next_target_seq == 3


def test_case_2b_a_gap_forces_a_resend_and_the_state_ends_identical():
    a, b = pair()
    for i in range(5):
        a.send(b"D", [(11, f"o{i}".encode()), (55, b"AAA")], T0)
        data = a.data_to_send()
        if i in (1, 2):
            continue  # dropped on the wire
        ev = b.receive_data(data, T0)
        if i == 0:
            assert [e.message.get(11) for e in ev] == [b"o0"]
        else:
            assert ev == []  # kept until the gap is filled
    assert b.counters["resend_requests_sent"] == 1  # one request for the whole gap
    _, eb = pump(a, b, T0)
    got = [e.message.get(11) for e in eb if isinstance(e, AppMessage)]
    assert got == [b"o1", b"o2", b"o3", b"o4"]  # in order, each once
    assert [e.message.poss_dup for e in eb] == [True, True, False, False]
    assert b.store.next_target_seq == a.store.next_sender_seq
    assert a.store.next_target_seq == b.store.next_sender_seq


@role
def test_case_2b_msgseqnum_too_high_sends_one_resend_request(role):
    s, p = logged_on(role)
    p.seq = 5
    assert s.receive_data(p.msg(b"0"), T0) == []
    assert s.receive_data(p.msg(b"0"), T0) == []
    out = sent(s)
    assert [(m.msg_type, m.get(7), m.get(16)) for m in out] == [(b"2", b"2", b"0")]


@role
def test_case_2c_msgseqnum_too_low_without_possdup_logs_out_and_disconnects(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"0", seq=1), T0)
    assert ev == [Disconnect("MsgSeqNum too low, expecting 2 but received 1")]
    out = sent(s)
    assert out[-1].msg_type == b"5"
    assert out[-1].get(58) == b"MsgSeqNum too low, expecting 2 but received 1"


@role
def test_case_2d_garbled_messages_are_ignored_and_use_no_sequence_number(role):
    s, p = logged_on(role)
    good = p.msg(b"0")
    bad_sum = good[:-4] + (b"001\x01" if good.endswith(b"000\x01") else b"000\x01")
    ev = s.receive_data(bad_sum, T0)
    assert len(ev) == 1 and isinstance(ev[0], Garbled)
    assert s.store.next_target_seq == 2 and s.data_to_send() == b""
    assert s.receive_data(good, T0) == []  # the same number, correct this time
    assert s.store.next_target_seq == 3 and s.counters["garbled"] == 1


@role
def test_case_2e_possdup_already_received_is_ignored(role):
    s, p = logged_on(role)
    s.receive_data(p.msg(b"0"), T0)
    dup = p.msg(b"0", seq=2, now=T0 + S, extra=[(43, b"Y"), (122, utc_timestamp(T0))])
    assert s.receive_data(dup, T0 + S) == []
    assert s.counters["duplicates_ignored"] == 1 and s.store.next_target_seq == 3


@role
def test_case_2e_possdup_not_yet_received_is_processed(role):
    s, p = logged_on(role)
    mt = b"D" if role == "acceptor" else b"8"
    ev = s.receive_data(p.msg(mt, [(11, b"a")], now=T0 + S,
                              extra=[(43, b"Y"), (122, utc_timestamp(T0))]), T0 + S)
    assert [e.message.get(11) for e in ev] == [b"a"] and ev[0].message.poss_dup


@role
def test_case_2f_possdup_with_orig_sending_time_after_sending_time_is_rejected(role):
    s, p = logged_on(role)
    late = [(43, b"Y"), (122, utc_timestamp(T0 + 5 * S))]
    ev = s.receive_data(p.msg(b"0", extra=late), T0)  # MsgSeqNum as expected
    assert ev == [RejectSent(2, 10, "OrigSendingTime is later than SendingTime")]
    assert_rejected_on_wire = sent(s)[-1]
    assert assert_rejected_on_wire.get(373) == b"10" and s.store.next_target_seq == 3
    ev = s.receive_data(p.msg(b"0", seq=2, extra=late), T0)  # and when already seen
    assert ev == [RejectSent(2, 10, "OrigSendingTime is later than SendingTime")]
    assert s.store.next_target_seq == 3


@role
def test_case_2g_possdup_without_orig_sending_time_is_rejected(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"0", extra=[(43, b"Y")]), T0)
    assert ev == [RejectSent(2, 1, "Required tag missing: OrigSendingTime(122)")]
    rej = sent(s)[-1]
    assert rej.msg_type == b"3" and rej.get(373) == b"1" and rej.get(371) == b"122"
    assert s.store.next_target_seq == 3


@role
def test_case_2h_another_begin_string_logs_out_and_disconnects(role):
    s, p = logged_on(role)
    other = p.msg(b"0").replace(b"FIX.4.4", b"FIX.4.2")
    ev = s.receive_data(other + other, T0)  # its end is known when the next one starts
    assert isinstance(ev[0], Garbled)
    assert isinstance(ev[-1], Disconnect) and ev[-1].reason.startswith("Incorrect BeginString")
    out = sent(s)
    assert out[-1].msg_type == b"5" and out[-1].get(58).startswith(b"Incorrect BeginString")


@role
def test_case_2i_compid_mismatch_rejects_logs_out_and_disconnects(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"0", sender=b"OTHER"), T0)
    assert isinstance(ev[0], RejectSent) and ev[0].reason == 9
    assert ev[-1] == Disconnect("CompID problem")
    out = sent(s)
    assert [m.msg_type for m in out[-2:]] == [b"3", b"5"]
    assert s.store.next_target_seq == 3  # the Reject counted its number


@role
def test_case_2j_wrong_body_length_is_garbled_and_ignored(role):
    s, p = logged_on(role)
    good = p.msg(b"0")
    i = good.index(b"9=") + 2
    j = good.index(b"\x01", i)
    bad = good[:i] + b"%d" % (int(good[i:j]) + 3) + good[j:]
    ev = s.receive_data(bad + p.msg(b"0", seq=2), T0)  # the next start ends the garbled one
    assert isinstance(ev[0], Garbled) and "BodyLength" in ev[0].reason
    assert s.store.next_target_seq == 3 and s.state is SessionState.ACTIVE


@role
def test_case_2k_sending_time_out_of_range_rejects_logs_out_and_disconnects(role):
    s, p = logged_on(role, max_latency_s=60)
    ev = s.receive_data(p.msg(b"0", now=T0 - 90 * S), T0)
    assert ev[0].reason == 10 and "90.0 s from our clock" in ev[0].text
    assert ev[-1] == Disconnect("SendingTime accuracy problem")
    assert [m.msg_type for m in sent(s)[-2:]] == [b"3", b"5"]


@role
def test_case_2l_invalid_msg_type_is_rejected_and_the_session_goes_on(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"ZZZ", [(11, b"a")]), T0)
    assert ev == [RejectSent(2, 11, "Invalid MsgType ZZZ")]
    assert s.receive_data(p.msg(b"0"), T0) == [] and s.store.next_target_seq == 4


@role
def test_case_2m_a_valid_msg_type_the_application_does_not_take_is_handed_to_it(role):
    # the application answers with a BusinessMessageReject 3 (the venue's exchange does:
    # tests/fix/test_venue_conformance.py); the session neither rejects nor validates it
    s, p = logged_on(role, app_msg_types=frozenset({b"D"}))
    ev = s.receive_data(p.msg(b"R", [(131, b"q1"), (11, b"not-in-R")]), T0)
    assert [type(e) for e in ev] == [AppMessage] and ev[0].message.msg_type == b"R"
    assert s.store.next_target_seq == 3


@role
def test_case_2n_msg_type_not_the_third_field_is_garbled_and_ignored(role):
    s, p = logged_on(role)
    bad = p.raw(b"49={me}\x0135=0\x0156={you}\x0134={seq}\x0152={now}\x01", seq=2)
    ev = s.receive_data(bad, T0)
    assert len(ev) == 1 and isinstance(ev[0], Garbled) and "MsgType" in ev[0].reason
    assert s.store.next_target_seq == 2 and s.data_to_send() == b""


# -- 3: standard trailer -------------------------------------------------------------------------
@role
def test_case_3_checksum_right_accepted_wrong_ignored_garbage_skipped(role):
    s, p = logged_on(role)
    good = p.msg(b"0")
    assert s.receive_data(good, T0) == [] and s.store.next_target_seq == 3
    bad = p.msg(b"0")
    bad = bad[:-4] + (b"001\x01" if bad.endswith(b"000\x01") else b"000\x01")
    ev = s.receive_data(b"\x00\xffnot fix\x01" + bad, T0)
    assert [type(e) for e in ev] == [Garbled, Garbled]
    assert s.store.next_target_seq == 3 and s.state is SessionState.ACTIVE


# -- 4, 5, 6: heartbeats and test requests -----------------------------------------------------
@role
def test_case_4a_heartbeat_when_nothing_was_sent_for_an_interval(role):
    s, p = logged_on(role)
    assert s.tick(T0 + 29 * S) == [] and s.data_to_send() == b""
    s.receive_data(p.msg(b"0", now=T0 + 30 * S), T0 + 30 * S)  # they are alive
    s.tick(T0 + 30 * S)
    assert [m.msg_type for m in sent(s)] == [b"0"]


@role
def test_case_4b_test_request_is_answered_with_its_id(role):
    s, p = logged_on(role)
    s.receive_data(p.msg(b"1", [(112, b"PING-7")]), T0)
    hb = sent(s)
    assert hb[0].msg_type == b"0" and hb[0].get(112) == b"PING-7"


@role
def test_case_5_a_heartbeat_is_accepted_and_counts(role):
    s, p = logged_on(role)
    assert s.receive_data(p.msg(b"0", [(112, b"TEST-1")]), T0) == []
    assert s.store.next_target_seq == 3 and s.data_to_send() == b""


@role
def test_case_6_silence_brings_a_test_request_then_a_disconnect(role):
    s, p = logged_on(role)
    s.tick(T0 + 36 * S + 1)  # 30 s × 1.2 without a byte from them
    tr = sent(s)
    assert tr[0].msg_type == b"1" and tr[0].get(112) == b"TEST-1"
    assert s.tick(T0 + 73 * S) == [Disconnect("no answer to TestRequest within 36 s")]
    assert sent(s)[-1].msg_type == b"5"


@role
def test_case_6_an_answer_to_the_test_request_keeps_the_session(role):
    s, p = logged_on(role)
    s.tick(T0 + 37 * S)
    s.receive_data(p.msg(b"0", [(112, b"TEST-1")], now=T0 + 37 * S), T0 + 37 * S)
    assert s.tick(T0 + 60 * S) == [] and s.state is SessionState.ACTIVE


# -- 7, 8, 9: reject, resend request, sequence reset sent ------------------------------------------
@role
def test_case_7_a_reject_from_the_peer_is_reported_and_consumes_its_number(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"3", [(45, b"7"), (373, b"5"), (58, b"bad price")]), T0)
    assert ev == [PeerReject(7, 5, "bad price")] and s.store.next_target_seq == 3


@role
def test_case_8_resend_request_resends_app_messages_and_gap_fills_admin_ones(role):
    s, p = logged_on(role)  # our 1 was the Logon
    mt = b"8" if role == "acceptor" else b"D"
    s.send(mt, [(11, b"o1")], T0)  # 2
    s.tick(T0 + 30 * S)  # 3: a heartbeat
    s.send(mt, [(11, b"o2")], T0 + 31 * S)  # 4
    s.data_to_send()
    s.receive_data(p.msg(b"2", [(7, b"1"), (16, b"0")], now=T0 + 40 * S), T0 + 40 * S)
    out = sent(s)
    assert [(m.msg_type, m.seq) for m in out] == [(b"4", 1), (mt, 2), (b"4", 3), (mt, 4)]
    assert out[0].get(123) == b"Y" and out[0].get(36) == b"2" and out[2].get(36) == b"4"
    assert all(m.poss_dup for m in out)
    assert out[1].get(11) == b"o1" and out[1].get(122) == utc_timestamp(T0)
    assert out[3].get(122) == utc_timestamp(T0 + 31 * S)
    assert s.store.next_sender_seq == 5  # resending uses no new numbers


def test_case_9_sequence_reset_reset_sent_moves_the_peer_on():
    a, b = pair()
    a.reset_sequence(50, T0)
    _, eb = pump(a, b, T0)
    assert eb == [] and b.store.next_target_seq == 50 and a.store.next_sender_seq == 50
    a.send(b"D", [(11, b"after")], T0)
    _, eb = pump(a, b, T0)
    assert [(e.message.seq, e.message.get(11)) for e in eb] == [(50, b"after")]
    with pytest.raises(ValueError, match="must be above"):
        a.reset_sequence(10, T0)


# -- 10, 11: sequence reset received -------------------------------------------------------------
@role
def test_case_10a_gap_fill_with_msgseqnum_too_high_asks_for_the_gap(role):
    s, p = logged_on(role)
    s.receive_data(p.msg(b"4", [(123, b"Y"), (36, b"12")], seq=9), T0)
    rr = sent(s)
    assert rr[0].msg_type == b"2" and rr[0].get(7) == b"2"


@role
def test_case_10b_gap_fill_in_sequence_moves_the_expected_number(role):
    s, p = logged_on(role)
    assert s.receive_data(p.msg(b"4", [(123, b"Y"), (36, b"10")], seq=2), T0) == []
    assert s.store.next_target_seq == 10


@role
def test_case_10c_gap_fill_too_low_with_possdup_is_ignored(role):
    s, p = logged_on(role)
    s.receive_data(p.msg(b"0"), T0)
    s.receive_data(p.msg(b"0"), T0)
    gf = p.msg(b"4", [(123, b"Y"), (36, b"4")], seq=2, extra=[(43, b"Y"),
                                                          (122, utc_timestamp(T0))])
    assert s.receive_data(gf, T0) == [] and s.store.next_target_seq == 4


@role
def test_case_10d_gap_fill_too_low_without_possdup_logs_out(role):
    s, p = logged_on(role)
    s.receive_data(p.msg(b"0"), T0)
    ev = s.receive_data(p.msg(b"4", [(123, b"Y"), (36, b"5")], seq=2), T0)
    assert ev == [Disconnect("MsgSeqNum too low, expecting 3 but received 2")]


@role
def test_case_10e_gap_fill_that_does_not_move_forward_is_rejected(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"4", [(123, b"Y"), (36, b"2")], seq=2), T0)
    assert ev == [RejectSent(2, 5, "NewSeqNo 2 is not above MsgSeqNum 2")]
    assert sent(s)[-1].get(371) == b"36"


@role
def test_case_11a_reset_ignores_msgseqnum_and_moves_the_expected_number(role):
    s, p = logged_on(role)
    assert s.receive_data(p.msg(b"4", [(36, b"50")], seq=999), T0) == []
    assert s.store.next_target_seq == 50
    assert s.receive_data(p.msg(b"4", [(36, b"60"), (123, b"N")], seq=1), T0) == []
    assert s.store.next_target_seq == 60 and s.data_to_send() == b""


@role
def test_case_11b_reset_to_the_expected_number_is_accepted(role):
    s, p = logged_on(role)
    assert s.receive_data(p.msg(b"4", [(36, b"2")], seq=2), T0) == []
    assert s.store.next_target_seq == 2 and s.data_to_send() == b""


@role
def test_case_11c_reset_to_a_lower_number_is_rejected_and_the_number_stays(role):
    s, p = logged_on(role)
    s.receive_data(p.msg(b"4", [(36, b"50")], seq=2), T0)
    ev = s.receive_data(p.msg(b"4", [(36, b"20")], seq=50), T0)
    text = "Value is incorrect (out of range) for this tag"
    assert ev == [RejectSent(50, 5, text)]
    rej = sent(s)[-1]
    assert (rej.get(45), rej.get(371), rej.get(372), rej.get(373), rej.get(58)) == (
        b"50", b"36", b"4", b"5", text.encode())
    assert s.store.next_target_seq == 50  # not incremented
    assert s.receive_data(p.msg(b"1", [(112, b"HELLO")], seq=50), T0) == []
    assert sent(s)[-1].get(112) == b"HELLO"


# -- 12, 13: logout ----------------------------------------------------------------------------
def test_case_12_13_logout_exchange():
    a, b = pair()
    a.logout("end of day", T0)
    assert a.state is SessionState.LOGOUT_SENT
    ea, eb = pump(a, b, T0)
    assert eb == [LoggedOut("end of day"), Disconnect("logged out: end of day")]
    assert ea == [LoggedOut(""), Disconnect("logged out")]


@role
def test_case_12_no_logout_answer_disconnects_after_the_timeout(role):
    s, p = logged_on(role)
    s.logout("bye", T0)
    assert s.tick(T0 + 5 * S) == []
    assert s.tick(T0 + 11 * S) == [Disconnect("no Logout answer within 10 s")]


@role
def test_case_13b_logout_from_the_peer_is_answered_then_disconnect(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"5", [(58, b"done")]), T0)
    assert ev == [LoggedOut("done"), Disconnect("logged out: done")]
    assert [m.msg_type for m in sent(s)] == [b"5"]


# -- 14: field errors: Reject, the number is used up, the session goes on -----------------------
@role
def test_case_14a_undefined_tag_is_rejected_with_reason_0(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"0", [(4000, b"x")]), T0)
    assert_rejected(s, ev, 2, 0, 4000, b"0")
    # a user-defined tag (5000 and up) is not the dictionary's business
    assert s.receive_data(p.msg(b"0", [(5001, b"x")]), T0) == []


@role
def test_case_14a_unknown_tags_pass_when_allowed(role):
    s, p = logged_on(role, allow_unknown_msg_fields=True)
    assert s.receive_data(p.msg(b"0", [(4000, b"x"), (44, b"1")]), T0) == []
    assert s.store.next_target_seq == 3 and s.data_to_send() == b""


@role
def test_case_14b_required_tag_missing_is_rejected(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"1", []), T0)
    assert_rejected(s, ev, 2, 1, 112, b"1")
    # application messages too, when the session is told to check them
    s, p = logged_on(role, validate_app_required=True)
    mt, body = (b"D", [(11, b"c"), (55, b"A"), (54, b"1"), (38, b"1"), (40, b"1")]) \
        if role == "acceptor" else (b"9", [(37, b"o"), (11, b"c"), (41, b"c0"), (39, b"0")])
    ev = s.receive_data(p.msg(mt, body), T0)
    assert_rejected(s, ev, 2, 1, 60 if role == "acceptor" else 434, mt)


@role
def test_case_14c_tag_not_defined_for_the_message_type_is_rejected(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"0", [(44, b"1.5")]), T0)
    rej = assert_rejected(s, ev, 2, 2, 44, b"0")
    assert b"Price(44)" in rej.get(58)


@role
def test_case_14d_tag_without_a_value_is_rejected(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.raw(b"35=0\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x01112=\x01"),
                        T0)
    assert_rejected(s, ev, 2, 4, 112, b"0")


@role
def test_case_14e_value_out_of_range_is_rejected(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"H", [(11, b"c"), (55, b"AAA"), (54, b"Z")]), T0)
    rej = assert_rejected(s, ev, 2, 5, 54, b"H")
    assert b"Side(54)" in rej.get(58)


@role
def test_case_14f_incorrect_data_format_is_rejected(role):
    s, p = logged_on(role)
    ev = s.receive_data(p.msg(b"2", [(7, b"abc"), (16, b"0")]), T0)
    assert_rejected(s, ev, 2, 6, 7, b"2")
    ev = s.receive_data(p.msg(b"0", [], extra=[(97, b"maybe")]), T0)  # PossResend: Boolean
    assert_rejected(s, ev, 3, 6, 97, b"0")


@role
def test_case_14g_header_field_after_the_body_is_rejected(role):
    s, p = logged_on(role)
    bad = p.raw(b"35=1\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x01112=x\x01"
                b"50=DESK\x01")
    assert_rejected(s, s.receive_data(bad, T0), 2, 14, 50, b"1")


@role
def test_case_14g_out_of_order_passes_when_not_validated(role):
    s, p = logged_on(role, validate_fields_out_of_order=False)
    bad = p.raw(b"35=1\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x01112=x\x01"
                b"50=DESK\x01")
    assert s.receive_data(bad, T0) == [] and sent(s)[0].get(112) == b"x"


@role
def test_case_14h_tag_appearing_more_than_once_is_rejected(role):
    s, p = logged_on(role)
    bad = p.raw(b"35=1\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x01112=x\x01112=y\x01")
    assert_rejected(s, s.receive_data(bad, T0), 2, 13, 112, b"1")


MD_REQUEST = b"35=V\x0149={me}\x0156={you}\x0134={seq}\x0152={now}\x01262=r1\x01263=1\x01264=1\x01"


@role
def test_case_14i_numingroup_count_not_the_entries_is_rejected(role):
    s, p = logged_on(role)
    bad = p.raw(MD_REQUEST + b"267=2\x01269=0\x01146=1\x0155=AAA\x01")
    rej = assert_rejected(s, s.receive_data(bad, T0), 2, 16, 267, b"V")
    assert b"says 2 but there are 1" in rej.get(58)
    good = p.raw(MD_REQUEST + b"267=2\x01269=0\x01269=1\x01146=1\x0155=AAA\x01")
    ev = s.receive_data(good, T0)
    assert [e.message.msg_type for e in ev] == [b"V"]


@role
def test_case_14j_repeating_group_fields_out_of_order_are_rejected(role):
    s, p = logged_on(role)
    bad = p.raw(MD_REQUEST + b"267=1\x01269=0\x01146=1\x0165=WI\x0155=AAA\x01")
    assert_rejected(s, s.receive_data(bad, T0), 2, 15, 146, b"V")


# -- 15 to 20 ----------------------------------------------------------------------------------
@role
def test_case_15_body_and_optional_header_fields_in_another_order_are_accepted(role):
    s, p = logged_on(role)
    a = p.msg(b"H", [(11, b"c1"), (55, b"AAA"), (54, b"1")], extra=[(50, b"D1"), (57, b"T1")])
    b = p.msg(b"H", [(54, b"2"), (11, b"c2"), (55, b"BBB")], extra=[(57, b"T1"), (50, b"D1")])
    ev = s.receive_data(a + b, T0)
    assert [(e.message.get(11), e.message.get(54)) for e in ev] == [(b"c1", b"1"), (b"c2", b"2")]


def test_case_16_messages_wait_while_disconnected_and_numbers_go_on_after_logon():
    # keeping the application's messages while disconnected is the application's (the venue
    # keeps them for a counterparty: tests/fix/test_venue_conformance.py); the session refuses
    # to send, and after the next Logon sequence numbers continue with no gap
    a, b = pair()
    a.send(b"D", [(11, b"before")], T0)
    pump(a, b, T0)
    a.connection_lost(T0)
    b.connection_lost(T0)
    with pytest.raises(SessionNotActive):
        a.send(b"D", [(11, b"queued")], T0)
    b.connect(T0)
    a.connect(T0)
    pump(a, b, T0)
    a.send(b"D", [(11, b"queued")], T0)
    _, eb = pump(a, b, T0)
    assert [(e.message.seq, e.message.get(11)) for e in eb] == [(4, b"queued")]


@role
def test_case_17_encryption_is_not_supported(role):
    s, p = session(role)
    s.connect(T0)
    s.data_to_send()
    ev = s.receive_data(p.msg(b"A", [(98, b"1"), (108, b"30")]), T0)
    assert len(ev) == 1 and "EncryptMethod(98)=1 is not supported" in ev[0].reason
    assert [m.msg_type for m in sent(s)] == [b"5"]


@role
def test_case_18_third_party_addressing_fields_are_passed_on(role):
    s, p = logged_on(role)
    mt = b"D" if role == "acceptor" else b"8"
    ev = s.receive_data(p.msg(mt, [(11, b"a")], extra=[(115, b"CLIENT"), (128, b"DESK")]), T0)
    m = ev[0].message
    assert (m.get(115), m.get(128), m.get(11)) == (b"CLIENT", b"DESK", b"a")


@role
def test_case_19_possresend_is_delivered_for_the_application_to_judge(role):
    s, p = logged_on(role)
    mt = b"D" if role == "acceptor" else b"8"
    ev = s.receive_data(p.msg(mt, [(11, b"a")], extra=[(97, b"Y")]), T0)
    assert [e.message.get(97) for e in ev] == [b"Y"] and s.store.next_target_seq == 3


@role
def test_case_20_a_resend_request_ahead_of_a_gap_is_served_at_once_and_only_once(role):
    s, p = logged_on(role)  # their Logon was 1; we expect 2
    mt = b"8" if role == "acceptor" else b"D"
    s.send(mt, [(11, b"o1")], T0)  # our 2
    s.data_to_send()
    p.seq = 3  # their 2 never arrives
    s.receive_data(p.msg(b"2", [(7, b"2"), (16, b"0")]), T0)  # their 3: resend ours from 2
    out = sent(s)
    assert [(m.msg_type, m.seq) for m in out] == [(mt, 2), (b"2", 3)]  # served, then ours
    assert out[1].get(7) == b"2"
    lost = p.msg(b"0", seq=2, extra=[(43, b"Y"), (122, utc_timestamp(T0))])
    assert s.receive_data(lost, T0) == []  # the queued ResendRequest is not served again
    assert sent(s) == []
    assert s.store.next_target_seq == 4 and s.counters["resends_served"] == 1
