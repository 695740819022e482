"""The FIX 4.4 session layer against Volume 2's session test cases, two ends in memory.

Test names carry the Volume 2 case numbers. "Peer" messages are built with ``encode`` so a
test can say exactly what arrives, mistakes included.
"""

from __future__ import annotations

import pytest

from engine.fix.codec import FixDecoder, FixMessage, encode, utc_timestamp
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
from engine.fix.store import SqlStore

T0 = 1_795_000_000_000_000_000  # ns, a fixed wall clock for the tests
S = 1_000_000_000


def decode_all(data: bytes) -> list[FixMessage]:
    d = FixDecoder()
    d.feed(data)
    out = []
    while (m := d.next()) is not None:
        assert isinstance(m, FixMessage), m
        out.append(m)
    return out


class Peer:
    """The other end, driven by hand: it sends exactly the bytes a test asks for."""

    def __init__(self, sender=b"VENUE", target=b"HELM"):
        self.sender, self.target = sender, target
        self.seq = 1

    def msg(self, msg_type: bytes, body=(), *, seq=None, now=T0, extra=(), sender=None,
            target=None) -> bytes:
        if seq is None:
            seq = self.seq
            self.seq += 1
        return encode(msg_type, list(body), sender=sender or self.sender, target=target or self.target,
                      seq=seq, sending_time_ns=now, extra_header=list(extra))


def initiator(**kw) -> FixSession:
    cfg = dict(sender="HELM", target="VENUE", initiator=True, heartbeat_s=30)
    cfg.update(kw)
    return FixSession(SessionConfig(**cfg))


def acceptor(**kw) -> FixSession:
    cfg = dict(sender="VENUE", target="HELM", initiator=False, heartbeat_s=30)
    cfg.update(kw)
    return FixSession(SessionConfig(**cfg))


def logged_on_initiator(peer: Peer, **kw) -> FixSession:
    s = initiator(**kw)
    s.connect(T0)
    sent = decode_all(s.data_to_send())
    assert [m.msg_type for m in sent] == [b"A"]
    ev = s.receive_data(peer.msg(b"A", [(98, b"0"), (108, b"30")]), T0)
    assert ev == [LoggedOn(30, False)] and s.state is SessionState.ACTIVE
    return s


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


def connect_pair(**kw):
    a, b = initiator(**kw), acceptor()
    b.connect(T0)
    a.connect(T0)
    ea, eb = pump(a, b, T0)
    return a, b, ea, eb


# -- 1: logon ------------------------------------------------------------------------------------
def test_1_logon_exchange_and_heartbeat_interval_from_the_logon():
    a, b, ea, eb = connect_pair(heartbeat_s=7)
    assert a.state is b.state is SessionState.ACTIVE
    assert ea == [LoggedOn(7, False)] and eb == [LoggedOn(7, False)]
    assert b.heartbeat_s == 7  # the acceptor took HeartBtInt from the Logon
    assert a.store.next_sender_seq == b.store.next_target_seq == 2


def test_1_first_message_not_a_logon_disconnects():
    b = acceptor()
    b.connect(T0)
    ev = b.receive_data(Peer(b"HELM", b"VENUE").msg(b"D", [(11, b"x")]), T0)
    assert ev == [Disconnect("first message was 35=D, not a Logon")]
    assert b.state is SessionState.DISCONNECTED


def test_1_logon_with_wrong_compids_disconnects():
    b = acceptor()
    b.connect(T0)
    ev = b.receive_data(Peer(b"EVIL", b"VENUE").msg(b"A", [(98, b"0"), (108, b"30")]), T0)
    assert isinstance(ev[-1], Disconnect) and "unexpected CompIDs 49=EVIL" in ev[-1].reason


def test_1_logon_with_seq_too_high_is_answered_then_a_resend_is_requested():
    b = acceptor()
    b.connect(T0)
    ev = b.receive_data(Peer(b"HELM", b"VENUE").msg(b"A", [(98, b"0"), (108, b"30")], seq=5), T0)
    assert ev == [LoggedOn(30, False)]
    out = decode_all(b.data_to_send())
    assert [m.msg_type for m in out] == [b"A", b"2"]
    assert out[1].get(7) == b"1" and out[1].get(16) == b"0"


def test_1_logon_without_heartbeat_interval_disconnects():
    b = acceptor()
    b.connect(T0)
    ev = b.receive_data(Peer(b"HELM", b"VENUE").msg(b"A", [(98, b"0")]), T0)
    assert ev[-1].reason.startswith("Logon without a valid HeartBtInt")


def test_1_reset_on_logon_restarts_both_sides_at_one():
    a, b, _, _ = connect_pair()
    for i in range(3):
        a.send(b"D", [(11, f"o{i}".encode())], T0)
    pump(a, b, T0)
    a.connection_lost(T0)
    b.connection_lost(T0)
    a2 = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True, reset_on_logon=True),
                    a.store)
    b.connect(T0)
    a2.connect(T0)
    ea, eb = pump(a2, b, T0)
    assert ea == [LoggedOn(30, True)] and eb == [LoggedOn(30, True)]
    assert a2.store.next_sender_seq == 2 and b.store.next_target_seq == 2


# -- 2: standard header ------------------------------------------------------------------------
def test_2a_2b_a_gap_forces_a_resend_and_the_state_ends_identical():
    a, b, _, _ = connect_pair()
    lost = []
    for i in range(5):
        a.send(b"D", [(11, f"o{i}".encode()), (55, b"AAA")], T0)
        data = a.data_to_send()
        if i in (1, 2):
            lost.append(data)  # dropped on the wire
            continue
        ev = b.receive_data(data, T0)
        if i == 0:
            assert [e.message.get(11) for e in ev] == [b"o0"]
        else:
            assert ev == []  # kept until the gap is filled
    assert b.counters["resend_requests_sent"] == 1  # one request for the whole gap
    ea, eb = pump(a, b, T0)
    got = [e.message.get(11) for e in eb if isinstance(e, AppMessage)]
    assert got == [b"o1", b"o2", b"o3", b"o4"]  # in order, each once
    assert [e.message.poss_dup for e in eb] == [True, True, False, False]
    assert b.store.next_target_seq == a.store.next_sender_seq
    assert a.store.next_target_seq == b.store.next_sender_seq


def test_2c_seq_too_low_without_possdup_logs_out_and_disconnects():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"8", [(11, b"x")], seq=1), T0)
    assert ev == [Disconnect("MsgSeqNum too low, expecting 2 but received 1")]
    out = decode_all(s.data_to_send())
    assert out[-1].msg_type == b"5" and out[-1].get(58) == b"MsgSeqNum too low, expecting 2 but received 1"


def test_2d_3_garbled_messages_are_ignored_and_use_no_sequence_number():
    p = Peer()
    s = logged_on_initiator(p)
    good = p.msg(b"8", [(11, b"a")])
    bad_sum = good[:-4] + b"000\x01" if not good.endswith(b"000\x01") else good[:-4] + b"001\x01"
    ev = s.receive_data(bad_sum, T0)
    assert len(ev) == 1 and isinstance(ev[0], Garbled)
    assert s.store.next_target_seq == 2
    ev = s.receive_data(good, T0)  # the same number, correct this time
    assert [e.message.get(11) for e in ev] == [b"a"]
    assert s.counters["garbled"] == 1


def test_2e_possdup_duplicate_is_ignored():
    p = Peer()
    s = logged_on_initiator(p)
    first = p.msg(b"8", [(11, b"a")])
    s.receive_data(first, T0)
    dup = p.msg(b"8", [(11, b"a")], seq=2, now=T0 + S, extra=[(43, b"Y"), (122, utc_timestamp(T0))])
    assert s.receive_data(dup, T0 + S) == []
    assert s.counters["duplicates_ignored"] == 1 and s.store.next_target_seq == 3


def test_2f_possdup_with_orig_sending_time_after_sending_time_is_rejected():
    p = Peer()
    s = logged_on_initiator(p)
    s.receive_data(p.msg(b"8", [(11, b"a")]), T0)
    dup = p.msg(b"8", [(11, b"a")], seq=2, extra=[(43, b"Y"), (122, utc_timestamp(T0 + 5 * S))])
    ev = s.receive_data(dup, T0)
    assert ev == [RejectSent(2, 10, "OrigSendingTime is later than SendingTime")]


def test_2g_possdup_without_orig_sending_time_is_rejected():
    p = Peer()
    s = logged_on_initiator(p)
    s.receive_data(p.msg(b"8", [(11, b"a")]), T0)
    ev = s.receive_data(p.msg(b"8", [(11, b"a")], seq=2, extra=[(43, b"Y")]), T0)
    assert ev == [RejectSent(2, 1, "Required tag missing: OrigSendingTime(122)")]
    rej = decode_all(s.data_to_send())[-1]
    assert rej.msg_type == b"3" and rej.get(373) == b"1" and rej.get(371) == b"122"


def test_2i_compid_mismatch_rejects_logs_out_and_disconnects():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"8", [(11, b"a")], sender=b"OTHER"), T0)
    assert isinstance(ev[0], RejectSent) and ev[0].reason == 9
    assert ev[-1] == Disconnect("CompID problem")
    out = decode_all(s.data_to_send())
    assert [m.msg_type for m in out[-2:]] == [b"3", b"5"]


def test_2k_sending_time_out_of_skew_rejects_logs_out_and_disconnects():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"8", [(11, b"a")], now=T0 - 600 * S), T0)
    assert ev[0].reason == 10 and "600.0 s from our clock" in ev[0].text
    assert ev[-1] == Disconnect("SendingTime accuracy problem")


def test_2l_invalid_msg_type_is_rejected_and_the_session_goes_on():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"ZZZ", [(11, b"a")]), T0)
    assert ev == [RejectSent(2, 11, "Invalid MsgType ZZZ")]
    ev = s.receive_data(p.msg(b"8", [(11, b"b")]), T0)
    assert [e.message.get(11) for e in ev] == [b"b"]


# -- 4, 5, 6: heartbeats and test requests -----------------------------------------------------
def test_4a_heartbeat_when_nothing_was_sent_for_an_interval():
    p = Peer()
    s = logged_on_initiator(p)
    s.data_to_send()
    assert s.tick(T0 + 29 * S) == [] and s.data_to_send() == b""
    s.receive_data(p.msg(b"0", now=T0 + 30 * S), T0 + 30 * S)  # they are alive
    s.tick(T0 + 30 * S)
    assert [m.msg_type for m in decode_all(s.data_to_send())] == [b"0"]


def test_4b_test_request_is_answered_with_its_id():
    p = Peer()
    s = logged_on_initiator(p)
    s.data_to_send()
    s.receive_data(p.msg(b"1", [(112, b"PING-7")]), T0)
    hb = decode_all(s.data_to_send())
    assert hb[0].msg_type == b"0" and hb[0].get(112) == b"PING-7"


def test_6_silence_brings_a_test_request_then_a_disconnect():
    p = Peer()
    s = logged_on_initiator(p)
    s.data_to_send()
    s.tick(T0 + 36 * S + 1)  # 30 s × 1.2 without a byte from them
    tr = decode_all(s.data_to_send())
    assert tr[0].msg_type == b"1" and tr[0].get(112) == b"TEST-1"
    ev = s.tick(T0 + 73 * S)
    assert ev == [Disconnect("no answer to TestRequest within 36 s")]


def test_6_an_answer_to_the_test_request_keeps_the_session():
    p = Peer()
    s = logged_on_initiator(p)
    s.tick(T0 + 37 * S)
    s.receive_data(p.msg(b"0", [(112, b"TEST-1")], now=T0 + 37 * S), T0 + 37 * S)
    assert s.tick(T0 + 60 * S) == [] and s.state is SessionState.ACTIVE


# -- 7, 8: reject and resend request ---------------------------------------------------------
def test_7_a_reject_from_the_peer_is_reported_and_consumes_its_number():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"3", [(45, b"7"), (373, b"5"), (58, b"bad price")]), T0)
    assert ev == [PeerReject(7, 5, "bad price")] and s.store.next_target_seq == 3


def test_8_resend_request_resends_app_messages_and_gap_fills_admin_ones():
    p = Peer()
    s = logged_on_initiator(p)  # seq 1 was our Logon
    s.send(b"D", [(11, b"o1")], T0)  # 2
    s.tick(T0 + 30 * S)  # 3: a heartbeat
    s.send(b"D", [(11, b"o2")], T0 + 31 * S)  # 4
    s.data_to_send()
    s.receive_data(p.msg(b"2", [(7, b"1"), (16, b"0")], now=T0 + 40 * S), T0 + 40 * S)
    out = decode_all(s.data_to_send())
    assert [(m.msg_type, m.seq) for m in out] == [(b"4", 1), (b"D", 2), (b"4", 3), (b"D", 4)]
    assert out[0].get(123) == b"Y" and out[0].get(36) == b"2"
    assert out[2].get(36) == b"4"
    assert all(m.poss_dup for m in out)
    assert out[1].get(11) == b"o1" and out[1].get(122) == utc_timestamp(T0)
    assert out[3].get(122) == utc_timestamp(T0 + 31 * S)
    assert s.store.next_sender_seq == 5  # resending uses no new numbers


# -- 10, 11: sequence reset ----------------------------------------------------------------------
def test_10b_gap_fill_in_sequence_moves_the_expected_number():
    p = Peer()
    s = logged_on_initiator(p)
    s.receive_data(p.msg(b"4", [(123, b"Y"), (36, b"10")], seq=2), T0)
    assert s.store.next_target_seq == 10


def test_10e_gap_fill_that_does_not_move_forward_is_rejected():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"4", [(123, b"Y"), (36, b"2")], seq=2), T0)
    assert ev == [RejectSent(2, 5, "NewSeqNo 2 is not above MsgSeqNum 2")]


def test_10a_gap_fill_with_a_higher_number_asks_for_the_gap():
    p = Peer()
    s = logged_on_initiator(p)
    s.data_to_send()
    s.receive_data(p.msg(b"4", [(123, b"Y"), (36, b"12")], seq=9), T0)
    rr = decode_all(s.data_to_send())
    assert rr[0].msg_type == b"2" and rr[0].get(7) == b"2"


def test_11_reset_mode_ignores_msgseqnum_and_never_goes_back():
    p = Peer()
    s = logged_on_initiator(p)
    s.receive_data(p.msg(b"4", [(36, b"50")], seq=999), T0)
    assert s.store.next_target_seq == 50
    ev = s.receive_data(p.msg(b"4", [(36, b"20")], seq=50), T0)
    assert ev == [RejectSent(50, 5, "NewSeqNo 20 would move MsgSeqNum back from 50")]
    assert s.store.next_target_seq == 50


# -- 12, 13: logout ----------------------------------------------------------------------------
def test_12_13_logout_exchange():
    a, b, _, _ = connect_pair()
    a.logout("end of day", T0)
    assert a.state is SessionState.LOGOUT_SENT
    ea, eb = pump(a, b, T0)
    assert eb == [LoggedOut("end of day"), Disconnect("logged out: end of day")]
    assert ea == [LoggedOut(""), Disconnect("logged out")]


def test_12_no_logout_answer_disconnects_after_the_timeout():
    p = Peer()
    s = logged_on_initiator(p)
    s.logout("bye", T0)
    assert s.tick(T0 + 5 * S) == []
    assert s.tick(T0 + 11 * S) == [Disconnect("no Logout answer within 10 s")]


def test_app_messages_need_an_active_session():
    s = initiator()
    with pytest.raises(SessionNotActive, match="HELM->VENUE is disconnected"):
        s.send(b"D", [(11, b"x")], T0)


# -- 14: messages with problems ---------------------------------------------------------------
def test_14a_required_tag_missing_is_rejected_and_consumes_the_number():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"1", []), T0)
    assert ev == [RejectSent(2, 1, "Required tag missing: 112")]
    assert s.store.next_target_seq == 3


def test_14f_wrong_data_format_is_rejected():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"2", [(7, b"abc"), (16, b"0")]), T0)
    assert ev == [RejectSent(2, 6, "Incorrect data format for value: 7=abc")]


def test_garbage_between_messages_is_skipped_and_the_session_survives():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(b"\x00\xffnot fix at all\x01" + p.msg(b"8", [(11, b"a")]) + b"8=FIX.4.4\x019=5", T0)
    assert any(isinstance(e, Garbled) for e in ev)
    assert [e.message.get(11) for e in ev if isinstance(e, AppMessage)] == [b"a"]
    ev = s.receive_data(b"\x01garbage" * 3 + p.msg(b"8", [(11, b"b")]), T0)
    assert [e.message.get(11) for e in ev if isinstance(e, AppMessage)] == [b"b"]
    assert s.state is SessionState.ACTIVE


# -- persistence ---------------------------------------------------------------------------------
def test_restart_of_either_side_resumes_sequence_numbers(tmp_path):
    url = f"sqlite:///{tmp_path / 'fix.db'}"
    a = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True), SqlStore(url, "HELM-VENUE"))
    b = FixSession(SessionConfig(sender="VENUE", target="HELM", initiator=False), SqlStore(url, "VENUE-HELM"))
    b.connect(T0)
    a.connect(T0)
    pump(a, b, T0)
    for i in range(4):
        a.send(b"D", [(11, f"o{i}".encode())], T0)
    pump(a, b, T0)
    assert (a.store.next_sender_seq, b.store.next_target_seq) == (6, 6)
    a.store.close()
    b.store.close()
    # both processes restart: new objects, same database
    a = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True), SqlStore(url, "HELM-VENUE"))
    b = FixSession(SessionConfig(sender="VENUE", target="HELM", initiator=False), SqlStore(url, "VENUE-HELM"))
    assert (a.store.next_sender_seq, a.store.next_target_seq) == (6, 2)
    b.connect(T0)
    a.connect(T0)
    ea, eb = pump(a, b, T0)
    assert ea == [LoggedOn(30, False)] and eb == [LoggedOn(30, False)]
    a.send(b"D", [(11, b"after")], T0)
    _, eb = pump(a, b, T0)
    assert [e.message.seq for e in eb] == [7]
    assert a.store.sent_range(1, 10)[0][0] == 2  # the first stored app message, for resends


def frame(fields: bytes) -> bytes:
    """Wrap ``35=…<SOH>…<SOH>`` in a correct BeginString, BodyLength and CheckSum."""
    from engine.fix.codec import checksum

    head = b"8=FIX.4.4\x019=%d\x01" % len(fields)
    return head + fields + b"10=%03d\x01" % checksum(head + fields)


def test_14_a_well_framed_message_with_a_bad_field_is_rejected_not_ignored():
    p = Peer()
    s = logged_on_initiator(p)
    s.data_to_send()
    stamp = utc_timestamp(T0)
    bad = frame(b"35=8\x0149=VENUE\x0156=HELM\x0134=2\x0152=" + stamp + b"\x0111=a\x0158=\x01")
    ev = s.receive_data(bad, T0)  # tag 58 without a value: framed fine, so Reject 4 (14c)
    assert len(ev) == 1 and isinstance(ev[0], RejectSent) and ev[0].reason == 4, ev
    assert s.store.next_target_seq == 3  # its number is used up
    rej = decode_all(s.data_to_send())[-1]
    assert rej.msg_type == b"3" and rej.get(373) == b"4" and rej.get(371) == b"58"
    assert rej.get(372) == b"8" and rej.get(45) == b"2"
    ev = s.receive_data(p.msg(b"8", [(11, b"b")], seq=3), T0)
    assert [e.message.get(11) for e in ev] == [b"b"]


def test_a_message_without_msgseqnum_ends_the_session():
    p = Peer()
    s = logged_on_initiator(p)
    bad = frame(b"35=8\x0149=VENUE\x0156=HELM\x0152=" + utc_timestamp(T0) + b"\x0111=a\x01")
    ev = s.receive_data(bad, T0)
    assert isinstance(ev[-1], Disconnect) and ev[-1].reason.startswith("unusable message")


def test_sending_time_parsed_right_across_seconds_and_bad_ones_rejected():
    p = Peer()
    s = logged_on_initiator(p)
    for k, dt in enumerate((1, 999_000_000, 1_000_000_000, 61_500_000_000)):
        ev = s.receive_data(p.msg(b"8", [(11, b"%d" % k)], now=T0 + dt), T0)
        assert [e.message.get(11) for e in ev] == [b"%d" % k]
    stamp = utc_timestamp(T0)[:18] + b"abc"
    bad = frame(b"35=8\x0149=VENUE\x0156=HELM\x0134=6\x0152=" + stamp + b"\x0111=x\x01")
    ev = s.receive_data(bad, T0)
    assert ev == [RejectSent(6, 6, f"SendingTime {stamp.decode()} is not a UTCTimestamp")]
    # far in the future by a whole day, same clock second-of-day: the cache must not fool it
    ev = s.receive_data(p.msg(b"8", [(11, b"late")], seq=7, now=T0 + 86_400 * S), T0)
    assert ev[0].reason == 10


def test_20_a_resend_request_ahead_of_a_gap_is_served_at_once_and_only_once():
    p = Peer()
    s = logged_on_initiator(p)  # their Logon was 1; we expect 2
    s.send(b"D", [(11, b"o1")], T0)  # our 2
    s.data_to_send()
    p.seq = 2
    p.msg(b"8", [(11, b"lost")])  # their 2 never arrives
    s.receive_data(p.msg(b"2", [(7, b"2"), (16, b"0")]), T0)  # their 3: resend ours from 2
    out = decode_all(s.data_to_send())
    assert [(m.msg_type, m.seq) for m in out] == [(b"D", 2), (b"2", 3)]  # served, then our request
    assert out[1].get(7) == b"2"
    # they fill their gap; the queued ResendRequest must not be served a second time
    ev = s.receive_data(p.msg(b"8", [(11, b"lost")], seq=2, extra=[(43, b"Y"), (122, utc_timestamp(T0))]), T0)
    assert [e.message.get(11) for e in ev] == [b"lost"]
    assert decode_all(s.data_to_send()) == []
    assert s.store.next_target_seq == 4 and s.counters["resends_served"] == 1
