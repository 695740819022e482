"""The engine-side transport: a FixSession on a non-blocking socket, polled, against a real
venue process, with the OMS on top."""

from __future__ import annotations

import select
import time

from engine.execution.oms import Oms
from engine.execution.orders import ClOrdIds, OrdStatus
from engine.fix.polled import PolledConnection
from engine.fix.session import AppMessage, Disconnect, FixSession, SessionConfig, SessionState
from engine.fix.store import SqlStore
from engine.fix.transport import Backoff

from tests.venue.test_server import venue, venue_factory  # noqa: F401 (fixtures)


def drive(conn, oms, cond, what, timeout=15.0):
    """The engine loop in miniature: wait on the socket (≤ 10 ms), poll, feed the OMS."""
    deadline = time.monotonic() + timeout
    events = []
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {conn.last_reason}")
        if conn.fileno() >= 0:
            select.select([conn], [], [], 0.01)
        else:
            time.sleep(0.005)
        for e in conn.poll(time.time_ns()):
            events.append(e)
            if isinstance(e, AppMessage):
                oms.on_message("SIMA", e.message)
            elif isinstance(e, Disconnect):
                oms.on_venue_down("SIMA")
    return events


def test_polled_session_trades_reconnects_and_resumes(venue, tmp_path):  # noqa: F811
    store = SqlStore(f"sqlite:///{tmp_path / 'engine.db'}", "HELM-SIMA")
    session = FixSession(SessionConfig(sender="HELM", target="SIMA", initiator=True, heartbeat_s=5),
                         store)
    conn = PolledConnection(session, "127.0.0.1", venue.port, backoff=Backoff(0.05, 0.2))
    oms = Oms(ClOrdIds("HELM", int(time.time() * 1000)), lambda v, mt, b: conn.send(mt, b, time.time_ns()))
    drive(conn, oms, lambda: conn.up, "logon")
    o = oms.new_order("SIMA", "AAA", 1, 100, 99.0, "day", time.time_ns())
    drive(conn, oms, lambda: o.status is OrdStatus.NEW, "the order's ack")
    assert o.venue_order_id
    # the venue dies: the order is in doubt, the link retries with back-off
    venue.stop()
    drive(conn, oms, lambda: session.state is SessionState.DISCONNECTED, "the drop")
    assert o.cl_ord_id in oms.unknown
    assert oms.new_order("SIMA", "AAA", 1, 1, 99.0, "day", time.time_ns()) == "venue SIMA is not logged on"
    drive(conn, oms, lambda: "failed" in conn.last_reason, "a failed reconnect")
    seq_before = store.next_sender_seq
    venue.start(venue.port)
    drive(conn, oms, lambda: conn.up and conn.connects == 2, "the reconnect")
    assert store.next_sender_seq == seq_before + 1  # resumed: one more Logon, no reset
    # its books were lost with it: the order is unknown there now; a new one trades
    o2 = oms.new_order("SIMA", "AAA", 2, 10, 101.0, "ioc", time.time_ns())
    drive(conn, oms, lambda: o2.status is OrdStatus.CANCELLED, "the IOC's cancel")
    conn.close(time.time_ns())
    store.close()


def test_send_puts_the_bytes_on_the_wire_before_the_store_records_them():
    """Send first: the store's record (a ring write in the engine) comes after the write."""
    import socket

    from engine.fix.store import MemoryStore

    listener = socket.create_server(("127.0.0.1", 0))
    on_wire: list[bool] = []

    class Store(MemoryStore):
        def record_sent(self, seq: int, raw: bytes | None) -> None:
            if raw is not None and b"\x0135=D\x01" in raw:
                peer.settimeout(1.0)
                on_wire.append(peer.recv(65536) == raw)
            super().record_sent(seq, raw)

    store = Store()
    session = FixSession(SessionConfig(sender="HELM", target="SIMA", initiator=True), store)
    conn = PolledConnection(session, "127.0.0.1", listener.getsockname()[1])
    try:
        now = time.time_ns()
        conn.poll(now)  # connecting
        peer, _ = listener.accept()
        deadline = time.monotonic() + 5
        while session.state is not SessionState.AWAITING_LOGON:  # connected: Logon sent
            assert time.monotonic() < deadline
            select.select([], [conn], [], 0.01)
            conn.poll(time.time_ns())
        peer.settimeout(1.0)
        assert b"35=A" in peer.recv(65536)
        session._set_state(SessionState.ACTIVE, now)  # as if the Logon was answered
        oms = Oms(ClOrdIds("HELM", 1), lambda v, mt, b: conn.send(mt, b, time.time_ns()))
        o = oms.new_order("SIMA", "AAA", 1, 100, 99.0, "day", time.time_ns())
        assert not isinstance(o, str), o
        assert on_wire == [True]
        assert [s for s, _ in store.sent_range(1, 10)] == [store.next_sender_seq - 1]
    finally:
        conn.close(time.time_ns())
        listener.close()
