"""The FIX 4.4 session layer beyond the numbered test cases (those are all in
test_session_cases.py): bounds, resets, persistence, SendingTime parsing, garbage.

"Peer" messages are built with ``encode`` so a test can say exactly what arrives, mistakes
included.
"""

from __future__ import annotations

import pytest

from engine.fix.codec import encode, utc_timestamp
from engine.fix.session import (
    AppMessage,
    Disconnect,
    FixSession,
    Garbled,
    LoggedOn,
    RejectSent,
    SessionConfig,
    SessionNotActive,
    SessionState,
)
from engine.fix.store import SqlStore
from tests.fix._sessions import T0, S, Peer, decode_all

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


def test_app_messages_need_an_active_session():
    s = initiator()
    with pytest.raises(SessionNotActive, match="HELM->VENUE is disconnected"):
        s.send(b"D", [(11, b"x")], T0)


def test_garbage_between_messages_is_skipped_and_the_session_survives():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(b"\x00\xffnot fix at all\x01" + p.msg(b"8", [(11, b"a")]) + b"8=FIX.4.4\x019=5", T0)
    assert any(isinstance(e, Garbled) for e in ev)
    assert [e.message.get(11) for e in ev if isinstance(e, AppMessage)] == [b"a"]
    ev = s.receive_data(b"\x01garbage" * 3 + p.msg(b"8", [(11, b"b")]), T0)
    assert [e.message.get(11) for e in ev if isinstance(e, AppMessage)] == [b"b"]
    assert s.state is SessionState.ACTIVE


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




# -- bounds: nothing a peer sends makes the session hold unbounded state --------------------------
def test_the_queue_ahead_of_a_gap_is_bounded_logout_says_why_and_it_is_counted():
    p = Peer()
    s = logged_on_initiator(p, max_queue=3)
    p.seq = 10  # 2..9 lost
    for _ in range(3):
        assert s.receive_data(p.msg(b"0"), T0) == []
    ev = s.receive_data(p.msg(b"0"), T0)
    assert ev == [Disconnect("too many messages queued ahead of a gap (3, expecting 2 but "
                             "received 13)")]
    assert decode_all(s.data_to_send())[-1].get(58).startswith(b"too many messages queued")
    assert s.counters["queue_overflows"] == 1


def test_a_resend_request_over_the_limit_is_rejected_and_counted():
    p = Peer()
    s = logged_on_initiator(p, max_resend=3)
    for i in range(5):
        s.send(b"D", [(11, b"o%d" % i)], T0)
    s.data_to_send()
    ev = s.receive_data(p.msg(b"2", [(7, b"1"), (16, b"0")]), T0)
    assert ev == [RejectSent(2, 5, "ResendRequest for 6 messages is over the limit of 3: ask "
                                   "in smaller ranges")]
    assert s.counters["resend_requests_refused"] == 1 and s.counters["resends_served"] == 0
    assert decode_all(s.data_to_send())[0].get(373) == b"5"
    s.receive_data(p.msg(b"2", [(7, b"4"), (16, b"6")]), T0)  # within the limit: served
    out = decode_all(s.data_to_send())
    assert [m.seq for m in out] == [4, 5, 6] and all(m.poss_dup for m in out)


def test_a_resend_request_with_a_range_that_is_none_is_rejected():
    p = Peer()
    s = logged_on_initiator(p)
    ev = s.receive_data(p.msg(b"2", [(7, b"5"), (16, b"3")]), T0)
    assert [(e.reason, e.ref_seq) for e in ev] == [(5, 2)]


def test_a_long_gap_is_asked_for_in_pieces_of_max_resend():
    a = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True))
    b = FixSession(SessionConfig(sender="VENUE", target="HELM", initiator=False, max_resend=4))
    b.connect(T0)
    a.connect(T0)
    pump(a, b, T0)
    for i in range(10):  # a's 2..11 never reach b
        a.send(b"D", [(11, b"o%d" % i)], T0)
    a.data_to_send()
    a.send(b"D", [(11, b"last")], T0)  # 12
    b.receive_data(a.data_to_send(), T0)
    rr = decode_all(b.data_to_send())
    assert [(m.get(7), m.get(16)) for m in rr] == [(b"2", b"5")]
    a.receive_data(b"".join(m.raw for m in rr), T0)
    _, eb = pump(a, b, T0)  # piece after piece until the gap is closed
    got = [e.message.get(11) for e in eb if isinstance(e, AppMessage)]
    assert got == [b"o%d" % i for i in range(10)] + [b"last"]
    assert b.counters["resend_requests_sent"] == 3 and b.store.next_target_seq == 13


def test_reset_on_logout_and_on_disconnect_start_the_numbers_again():
    a, b, _, _ = connect_pair()
    b2 = FixSession(SessionConfig(sender="VENUE", target="HELM", initiator=False,
                                  reset_on_logout=True), b.store)
    b2.connect(T0)
    a2 = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True), a.store)
    a2.connect(T0)
    pump(a2, b2, T0)
    a2.logout("bye", T0)
    pump(a2, b2, T0)
    assert (b2.store.next_sender_seq, b2.store.next_target_seq) == (1, 1)
    c = FixSession(SessionConfig(sender="VENUE", target="HELM", initiator=False,
                                 reset_on_disconnect=True))
    c.store.set_next_target_seq(7)
    c.connect(T0)
    c.connection_lost(T0)
    assert c.store.next_target_seq == 1


def test_acceptor_reset_on_logon_starts_every_session_at_one():
    b = acceptor(reset_on_logon=True)
    b.store.set_next_target_seq(9)
    b.store.set_next_sender_seq(9)
    b.connect(T0)
    ev = b.receive_data(Peer(b"HELM", b"VENUE").msg(b"A", [(98, b"0"), (108, b"30")]), T0)
    assert ev == [LoggedOn(30, False)]
    assert decode_all(b.data_to_send())[0].seq == 1 and b.store.next_target_seq == 2


def test_validation_can_be_turned_off():
    p = Peer()
    s = logged_on_initiator(p, validate=False)
    assert s.receive_data(p.msg(b"0", [(44, b"1")]), T0) == []
    assert s.store.next_target_seq == 3


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_queue and max_resend"):
        SessionConfig(sender="A", target="B", initiator=True, max_queue=0)
    with pytest.raises(ValueError, match="max_latency_s"):
        SessionConfig(sender="A", target="B", initiator=True, max_latency_s=0)


def test_sequence_numbers_above_the_highest_are_refused_not_taken():
    """NewSeqNo, Begin/EndSeqNo and MsgSeqNum beyond 2**31 - 1 (or thousands of digits long)
    are rejected with reason 5; the expected number does not move."""
    from engine.fix.codec import MAX_SEQ_NUM
    from engine.fix.session import RejectSent

    for value in (str(MAX_SEQ_NUM + 1).encode(), b"9" * 30, b"9" * 5000):
        for mt, body in ((b"4", [(123, b"N"), (36, value)]), (b"4", [(123, b"Y"), (36, value)]),
                         (b"2", [(7, value), (16, b"0")]), (b"2", [(7, b"1"), (16, value)])):
            acc = FixSession(SessionConfig(sender="V", target="H", initiator=False))
            acc.connect(T0)
            acc.receive_data(encode(b"A", [(98, 0), (108, 30)], sender=b"H", target=b"V", seq=1,
                                    sending_time_ns=T0), T0)
            acc.data_to_send()
            events = acc.receive_data(encode(mt, body, sender=b"H", target=b"V", seq=2,
                                             sending_time_ns=T0), T0)
            rejects = [e for e in events if isinstance(e, RejectSent)]
            assert [r.reason for r in rejects] == [5], (mt, body[:1], value[:12], events)
            # a Reset-mode SequenceReset ignores MsgSeqNum (case 11): the number stays
            reset_mode = mt == b"4" and body[0] == (123, b"N")
            assert acc.store.next_target_seq == (2 if reset_mode else 3)
            assert acc.state.value == "active"
    acc = FixSession(SessionConfig(sender="V", target="H", initiator=False))
    acc.connect(T0)
    events = acc.receive_data(encode(b"A", [(98, 0), (108, 30)], sender=b"H", target=b"V",
                                     seq=MAX_SEQ_NUM + 1, sending_time_ns=T0), T0)
    assert acc.state.value != "active"
