"""The smart order router inside the engine process: two real venue processes, their books
seen through FIX market data, a parent order split over both, re-routed when one drops."""

from __future__ import annotations

import socket
import time

import pytest

from engine.fix.session import AppMessage, FixSession, SessionConfig, SessionState
from engine.ipc import EngineClient, Scope, Verb
from engine.ipc.commands import order_text

from tests.conftest import wait_until
from tests.execution.test_engine_orders import USERS, Orders
from tests.venue.test_server import INSTRUMENTS, venue_factory  # noqa: F401 (fixture)


class Maker:
    """Another participant on a venue: rests orders there over its own FIX session (a
    blocking socket; it stays connected, so the venue keeps its orders)."""

    def __init__(self, port: int, target: str) -> None:
        self.session = FixSession(SessionConfig(sender="HELM2", target=target, initiator=True,
                                                heartbeat_s=30, reset_on_logon=True))
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.session.connect(time.time_ns())
        self.msgs: list = []
        self._flush()
        self._until(lambda: self.session.state is SessionState.ACTIVE, "maker logon")

    def _flush(self) -> None:
        out = self.session.data_to_send()
        if out:
            self.sock.sendall(out)

    def _until(self, cond, what: str) -> None:
        deadline = time.monotonic() + 10
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"venue closed the maker's connection ({what})")
            for e in self.session.receive_data(data, time.time_ns()):
                if isinstance(e, AppMessage):
                    self.msgs.append(e.message)
            self._flush()

    def rest(self, cl: str, side: int, qty: int, price: str, symbol: str = "AAA") -> None:
        self.session.send(b"D", [(11, cl), (55, symbol), (54, side), (60, b"20260101-00:00:00"),
                                 (38, qty), (40, 2), (44, price), (59, 0)], time.time_ns())
        self._flush()
        self._until(lambda: any(m.get(11) == cl.encode() and m.get(150) == b"0" for m in self.msgs),
                    f"maker order {cl} acked")

    def close(self) -> None:
        self.sock.close()


def venues_section(*venues) -> str:
    out = ""
    for name, port, fee in venues:
        out += (f'\n[[venues]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
                f'sender = "HELM"\ntarget = "{name}"\nheartbeat_s = 5\nfee_bps = {fee}\n')
    return out


@pytest.fixture
def two_venues(venue_factory, engine_factory, instance):  # noqa: F811
    a = venue_factory("SIMA").start()
    b = venue_factory("SIMB").start()
    makers = [Maker(a.port, "SIMA"), Maker(b.port, "SIMB")]
    # the book the router sees: SIMA 300 @ 100.00 (fee 0.5 bps); SIMB 200 @ 100.00 and
    # 500 @ 100.01 (fee 1 bps)
    makers[0].rest("A1", 2, 300, "100.00")
    makers[1].rest("B1", 2, 200, "100.00")
    makers[1].rest("B2", 2, 500, "100.01")
    eng = engine_factory(instance, instruments=INSTRUMENTS, users=USERS,
                         extra=venues_section(("SIMA", a.port, 0.5), ("SIMB", b.port, 1.0))).start()
    with EngineClient(instance, user="tester") as c:
        wait_until(lambda: c.venues() == (("SIMA", True, True), ("SIMB", True, True)), 15,
                   "both sessions up with good books")
    yield a, b, eng, makers
    for m in makers:
        m.close()


def test_a_parent_sweeps_both_venues_best_price_then_fee(two_venues):
    _a, _b, eng, _makers = two_venues
    with EngineClient(eng.instance, user="tester") as c:
        orders = Orders(c)
        ack = c.request(Verb.ORDER, Scope.INSTRUMENT, 0, arg0=600, arg1=100.01,
                        text=order_text("*", "buy", "day"))
        assert ack.accepted, ack.reason
        # 100.00 first on the cheaper venue, then SIMB's 100.00 and 100 of its 100.01
        assert ack.reason.endswith(" routed: 300@SIMA, 300@SIMB"), ack.reason
        wait_until(lambda: len(orders.poll()) == 2 and
                   all(o.status == "Filled" for o in orders.last.values()), 10, "both children filled")
        by_venue = {o.venue: o for o in orders.last.values()}
        assert (by_venue["SIMA"].cum_qty, by_venue["SIMA"].avg_px) == (300, 100.0)
        assert by_venue["SIMB"].cum_qty == 300
        assert by_venue["SIMB"].avg_px == pytest.approx((200 * 100.0 + 100 * 100.01) / 300)
        # the parent's story is on the event ring for the desk's log
        parent = ack.reason.split()[1]
        done = wait_until(lambda: orders.poll() is not None and next(
            (t for t in orders.texts if t.startswith(f"SOR {parent} AAA Done")), None), 10,
            "the parent reported done")
        assert done.startswith(f"SOR {parent} AAA Done 600/600 avg 100.00")


def test_a_dropped_venue_is_never_routed_to_and_its_rest_is_rerouted(two_venues):
    a, _b, eng, makers = two_venues
    with EngineClient(eng.instance, user="tester") as c:
        orders = Orders(c)
        # a DAY parent below the market: it rests on the cheaper venue
        ack = c.request(Verb.ORDER, Scope.INSTRUMENT, 0, arg0=50, arg1=99.0,
                        text=order_text("*", "buy", "day"))
        assert ack.reason.endswith(" routed: 50@SIMA"), ack.reason
        first = ack.reason.split()[1]
        wait_until(lambda: len(orders.poll()) == 1 and
                   next(iter(orders.last.values())).status == "New", 10, "the child resting")
        a.stop()  # (the maker does not answer the venue's Logout: the venue gives up on it)
        # its child is in doubt, and the rest goes to SIMB
        wait_until(lambda: any(o.venue == "SIMB" and o.status == "New" for o in orders.poll().values()),
                   15, "the rest re-routed to SIMB")
        sima = [o for o in orders.last.values() if o.venue == "SIMA"]
        assert len(sima) == 1 and sima[0].unknown
        simb = [o for o in orders.last.values() if o.venue == "SIMB"]
        assert len(simb) == 1 and (simb[0].qty, simb[0].price) == (50, 99.0)
        # with SIMA down, a new parent only goes to SIMB
        wait_until(lambda: c.venues()[0] == ("SIMA", False, False), 5, "SIMA shown down")
        ack = c.request(Verb.ORDER, Scope.INSTRUMENT, 0, arg0=10, arg1=99.0,
                        text=order_text("*", "buy", "day"))
        assert ack.reason.endswith(" routed: 10@SIMB"), ack.reason
        # cancelling the parent by its id cancels its working child
        assert c.request(Verb.CANCEL, text=first).accepted
        wait_until(lambda: all(o.status == "Cancelled" for o in orders.poll().values()
                               if o.venue == "SIMB" and o.qty == 50), 10, "the parent cancelled")
