"""Logon credentials, Username (553) and Password (554): the initiator presents them, the
acceptor refuses a Logon without the right ones, saying neither which nor what was sent. Two
sessions in memory, real bytes between them."""

from __future__ import annotations

import logging

import pytest

from engine.fix.session import (
    LOGON_REFUSED,
    Disconnect,
    FixSession,
    LoggedOn,
    LoggedOut,
    SessionConfig,
    SessionState,
)
from engine.fix.store import MemoryStore
from tests.fix._sessions import T0, Peer, decode_all
from tests.fix.test_session import acceptor, initiator, pump

PW = "s3cret=pass"  # '=' is a legal character of a FIX value


def logon(a: FixSession, b: FixSession) -> tuple[list, list, list]:
    """Connect both; return the acceptor's view of what the initiator sent, and each side's
    events."""
    b.connect(T0)
    a.connect(T0)
    first = a.data_to_send()
    eb = b.receive_data(first, T0)
    ea, eb2 = pump(a, b, T0)
    return decode_all(first), ea, eb + eb2


def test_the_initiators_logon_carries_username_and_password():
    sent, _, _ = logon(initiator(username="helm", password=PW), acceptor())
    assert [m.msg_type for m in sent] == [b"A"]
    assert (sent[0].get(553), sent[0].get(554)) == (b"helm", PW.encode())


def test_without_credentials_the_logon_carries_neither():
    sent, _, _ = logon(initiator(), acceptor())
    assert sent[0].get(553) is None and sent[0].get(554) is None


def test_the_right_credentials_log_on():
    a, b = initiator(username="helm", password=PW), acceptor(username="helm", password=PW)
    _, ea, eb = logon(a, b)
    assert ea == [LoggedOn(30, False)] and eb == [LoggedOn(30, False)]
    assert a.state is b.state is SessionState.ACTIVE
    assert b.counters["logons_refused"] == 0


def test_a_password_alone_asks_no_username():
    a, b = initiator(password=PW), acceptor(password=PW)
    _, ea, eb = logon(a, b)
    assert b.state is SessionState.ACTIVE and b.counters["logons_refused"] == 0


@pytest.mark.parametrize("username, password", [
    ("helm", "wrong-one"),  # wrong password
    ("helm", ""),  # none sent
    ("other", PW),  # wrong username, right password
], ids=["wrong password", "no password", "wrong username"])
def test_a_logon_with_wrong_credentials_is_refused(username, password, caplog):
    a = initiator(username=username, password=password)
    b = acceptor(username="helm", password=PW)
    with caplog.at_level(logging.DEBUG, logger="helmdesk.fix"):
        _, ea, eb = logon(a, b)
    # the acceptor: a Logout saying so, the connection dropped, counted
    assert eb == [Disconnect(LOGON_REFUSED)] and b.state is SessionState.DISCONNECTED
    assert b.counters["logons_refused"] == 1
    # the initiator hears the reason, which is what its operator is shown
    assert ea == [LoggedOut("Logon refused: invalid username or password"),
                  Disconnect("logged out: Logon refused: invalid username or password")]
    assert a.state is SessionState.DISCONNECTED
    # what was sent is nowhere: not in the Logout, not in the log
    if password:
        assert password not in caplog.text
    assert PW not in caplog.text


def test_the_refusal_echoes_nothing_that_was_sent():
    p = Peer(sender=b"HELM", target=b"VENUE")
    b = acceptor(username="helm", password=PW)
    b.connect(T0)
    ev = b.receive_data(p.msg(b"A", [(98, b"0"), (108, b"30"), (553, b"helm"),
                                     (554, b"my-guess-123")]), T0)
    out = decode_all(b.data_to_send())
    assert [m.msg_type for m in out] == [b"5"]
    assert out[0].get(58) == b"Logon refused: invalid username or password"
    assert b"my-guess-123" not in out[0].raw
    assert out[0].get(553) is None and out[0].get(554) is None
    assert ev == [Disconnect(LOGON_REFUSED)] and b.counters["logons_refused"] == 1


def test_compids_are_checked_before_credentials():
    p = Peer(sender=b"EVIL", target=b"VENUE")
    b = acceptor(username="helm", password=PW)
    b.connect(T0)
    ev = b.receive_data(p.msg(b"A", [(98, b"0"), (108, b"30")]), T0)
    assert ev[-1].reason.startswith("Logon from unexpected CompIDs")
    assert b.counters["logons_refused"] == 0


def test_the_logon_is_not_stored_so_neither_is_the_password():
    store = MemoryStore()
    a = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True, password=PW),
                   store)
    logon(a, acceptor(password=PW))
    assert a.state is SessionState.ACTIVE
    assert store.sent_range(1, 10) == []  # admin messages become gap fills on a resend


def test_the_password_is_not_in_the_configs_repr():
    cfg = SessionConfig(sender="HELM", target="VENUE", initiator=True, username="helm",
                        password=PW)
    assert PW not in repr(cfg) and "helm" in repr(cfg)
    with pytest.raises(ValueError, match="must not contain SOH"):
        SessionConfig(sender="HELM", target="VENUE", initiator=True, password="a\x01b")
