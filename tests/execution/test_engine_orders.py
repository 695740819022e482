"""Orders from the engine process: real engine, real venue processes, loopback FIX, commands and
the event ring as a desk or ``helmdesk ctl`` sees them."""

from __future__ import annotations

import getpass

import pytest

from engine.core.records import KillState
from engine.ipc import EngineClient, Scope, Verb
from engine.ipc.commands import confirmation_code, order_text
from engine.ipc.events import decode_order, event_text

from tests.conftest import wait_until
from tests.test_cli import helmdesk
from tests.store.test_engine_recovery import _kill_state
from tests.venue.test_server import INSTRUMENTS, venue_factory  # noqa: F401 (fixture)


USERS = '"*" = "trader,risk_manager"'
#: these tests trade with themselves at the simulated venue (its only other participant)
LIMITS = '\n[limits]\nself_match = "venue"\n'
ME = getpass.getuser()  # the engine grants the role of the OS user the kernel reports


def venues_section(*venues) -> str:
    out = ""
    for name, port in venues:
        out += (f'\n[[venues]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
                f'sender = "HELM"\ntarget = "{name}"\nheartbeat_s = 5\n')
    return out


class Orders:
    """What a desk's blotter would show: the last ORDER record of each order."""

    def __init__(self, client: EngineClient) -> None:
        self.client = client
        self.symbols = [i.symbol for i in client.instruments]
        self.last: dict[str, object] = {}
        self.history: dict[str, list] = {}
        self.texts: list[str] = []  # every other event's text

    def poll(self) -> dict:
        for rec in self.client.poll_events():
            o = decode_order(rec, self.symbols)
            if o is not None:
                self.last[o.cl_ord_id] = o
                self.history.setdefault(o.cl_ord_id, []).append(o)
            else:
                self.texts.append(event_text(rec, self.symbols))
        return self.last

    def wait(self, cl: str, cond, what: str, timeout: float = 10.0):
        return wait_until(lambda: cl in self.poll() and cond(self.last[cl]) and self.last[cl],
                          timeout, what)


def order(c: EngineClient, symbol: str, side: str, qty: int, price: float, venue="SIMA", tif="day"):
    idx = [i.symbol for i in c.instruments].index(symbol)
    return c.request(Verb.ORDER, Scope.INSTRUMENT, idx, arg0=qty, arg1=price,
                     text=order_text(venue, side, tif))


@pytest.fixture
def trading(venue_factory, engine_factory, instance):  # noqa: F811
    venue = venue_factory().start()
    eng = engine_factory(instance, instruments=INSTRUMENTS, users=USERS,
                         extra=venues_section(("SIMA", venue.port)) + LIMITS).start()
    with EngineClient(instance) as c:
        wait_until(lambda: c.venues() == (("SIMA", True, True),), 15,
                   "the SIMA session to log on and its books to arrive")
    return venue, eng


def test_order_is_acked_filled_and_shown_with_its_state(trading):
    venue, eng = trading
    with EngineClient(eng.instance) as c:
        orders = Orders(c)
        ack = order(c, "AAA", "buy", 100, 99.5)
        assert ack.accepted, ack.reason
        assert ack.reason.startswith("order ") and "sent to SIMA: buy 100 AAA @ 99.5" in ack.reason
        cl = ack.reason.split()[1]
        o = orders.wait(cl, lambda o: o.status == "New", "the venue's ack")
        assert (o.venue, o.symbol, o.side, o.qty, o.price, o.leaves_qty) == ("SIMA", "AAA", "buy", 100, 99.5, 100)
        assert orders.history[cl][0].status == "PendingNew"
        # a sell that crosses it fills both sides at the resting price
        ack2 = order(c, "AAA", "sell", 40, 99.0, tif="ioc")
        cl2 = ack2.reason.split()[1]
        o2 = orders.wait(cl2, lambda o: o.status in ("Filled", "Cancelled"), "the sell's fill")
        assert (o2.status, o2.cum_qty, o2.avg_px) == ("Filled", 40, 99.5)
        o = orders.wait(cl, lambda o: o.status == "PartiallyFilled", "the buy's partial fill")
        assert (o.cum_qty, o.leaves_qty, o.last_qty, o.last_px) == (40, 60, 40, 99.5)
        # cancel the rest
        ack3 = c.request(Verb.CANCEL, text=cl)
        assert ack3.accepted and ack3.reason == f"cancel of {cl} sent"
        o = orders.wait(cl, lambda o: o.status == "Cancelled", "the cancel")
        assert (o.cum_qty, o.leaves_qty) == (40, 0)
        # cancelling it again is refused with the reason
        again = c.request(Verb.CANCEL, text=cl)
        assert not again.accepted and "cancel requested is impossible in state Cancelled" in again.reason


def test_bad_orders_are_refused_with_the_reason(trading):
    _venue, eng = trading
    with EngineClient(eng.instance) as c:
        def why(*a, **kw):
            ack = order(c, *a, **kw)
            assert not ack.accepted
            return ack.reason

        assert why("AAA", "buy", 10, 99.5, venue="NOPE") == "unknown venue 'NOPE' (venues: SIMA)"
        assert why("AAA", "buy", 10, 99.503) == "price 99.503 is not on AAA's tick grid of 0.01"
        assert why("AAA", "buy", 10, 99.5, venue="*", tif="fok") == (
            "not routed: time in force fok cannot be all-or-none across venues: use ioc or day")
        r = c.request(Verb.ORDER, Scope.INSTRUMENT, 0, arg0=1.5, arg1=99.0, text="SIMA buy")
        assert r.reason == "quantity must be a whole number 1..2147483647, was 1.5"
        r = c.request(Verb.ORDER, Scope.INSTRUMENT, 0, arg0=10, arg1=99.0, text="SIMA hold")
        assert r.reason == "side must be buy or sell, was 'hold'"
        r = c.request(Verb.ORDER, Scope.GLOBAL, 0, arg0=10, arg1=99.0, text="SIMA buy")
        assert r.reason == "ORDER needs instrument scope"
        r = c.request(Verb.CANCEL, text="no-such-order")
        assert r.reason == "unknown order no-such-order"
    # which role may send which verb: tests/ipc/test_identity.py, with real OS users


def test_kill_cancels_every_live_order_and_blocks_new_ones(trading):
    _venue, eng = trading
    with EngineClient(eng.instance) as c:
        orders = Orders(c)
        cls = []
        for px in (98.0, 98.5, 99.0):
            ack = order(c, "AAA", "buy", 10, px)
            cls.append(ack.reason.split()[1])
        for cl in cls:
            orders.wait(cl, lambda o: o.status == "New", f"{cl} acked")
        ack = c.request(Verb.KILL, text="test kill")
        assert ack.accepted and ack.reason == f"global kill switch TRIPPED HALTED by {ME}; 3 cancels sent"
        for cl in cls:
            o = orders.wait(cl, lambda o: o.status == "Cancelled", f"{cl} cancelled")
            assert o.leaves_qty == 0
        refused = order(c, "AAA", "buy", 10, 98.0)
        assert not refused.accepted and refused.reason == "global is HALTED"
        assert c.request(Verb.REARM, text="test over", arg1=confirmation_code("global")).accepted
        assert order(c, "AAA", "buy", 10, 98.01).accepted


def test_instrument_kill_cancels_only_that_instrument(trading):
    _venue, eng = trading
    with EngineClient(eng.instance) as c:
        orders = Orders(c)
        a = order(c, "AAA", "buy", 10, 98.0).reason.split()[1]
        b = order(c, "BBB", "buy", 10, 49.0).reason.split()[1]
        orders.wait(a, lambda o: o.status == "New", "AAA acked")
        orders.wait(b, lambda o: o.status == "New", "BBB acked")
        ack = c.request(Verb.KILL, Scope.INSTRUMENT, 1, text="BBB only")
        assert ack.reason.endswith("; 1 cancels sent")
        orders.wait(b, lambda o: o.status == "Cancelled", "BBB cancelled")
        assert orders.poll()[a].status == "New"
        assert order(c, "BBB", "sell", 1, 51.0).reason == "instrument:BBB is HALTED"
        # cancel-all for one venue through ctl
        r = helmdesk("ctl", "--instance", eng.instance, "cancel-all", "--venue", "SIMA")
        assert r.returncode == 0, r.stderr
        assert "CANCEL_ALL accepted: 1 cancels sent" in r.stdout
        orders.wait(a, lambda o: o.status == "Cancelled", "AAA cancelled")


def test_ctl_order_waits_for_the_venue_and_cancel_by_id(trading):
    _venue, eng = trading
    r = helmdesk("ctl", "--instance", eng.instance, "order", "--venue", "SIMA", "--symbol", "AAA",
                 "--side", "buy", "--qty", "25", "--price", "97.5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ORDER accepted: order ")
    cl = lines[0].split()[3]
    assert lines[1] == f"{cl} SIMA buy 25 AAA @ 97.5: New, 0 done, 25 left"
    r = helmdesk("ctl", "--instance", eng.instance, "status")
    assert "venues       SIMA up" in r.stdout
    r = helmdesk("ctl", "--instance", eng.instance, "cancel", cl)
    assert r.returncode == 0 and f"CANCEL accepted: cancel of {cl} sent" in r.stdout
    r = helmdesk("ctl", "--instance", eng.instance, "order", "--venue", "SIMA", "--symbol", "AAA",
                 "--side", "buy", "--qty", "0", "--price", "97.5")
    assert r.returncode == 2 and "must be positive, was 0" in r.stderr
    r = helmdesk("ctl", "--instance", eng.instance, "order", "--venue", "SIMA", "--symbol", "ZZZ",
                 "--side", "buy", "--qty", "5")
    assert r.returncode == 2 and "unknown instrument 'ZZZ'" in r.stderr


def test_venue_drop_makes_orders_unknown_until_reconciled(trading):
    venue, eng = trading
    with EngineClient(eng.instance) as c:
        orders = Orders(c)
        cl = order(c, "AAA", "buy", 10, 98.0).reason.split()[1]
        orders.wait(cl, lambda o: o.status == "New", "acked")
        port = venue.port
        venue.stop()
        o = orders.wait(cl, lambda o: o.unknown, "the order in doubt")
        assert o.status == "New" and o.text == "venue session down"
        wait_until(lambda: c.venues() == (("SIMA", False, False),), 5, "the venue shown down")
        # the risk engine's health round trips the venue's switch a few turns later
        wait_until(lambda: _kill_state(c, "venue:SIMA") == KillState.REDUCING, 5,
                   "venue:SIMA REDUCING")
        refused = order(c, "AAA", "buy", 10, 98.0)
        assert refused.reason.startswith("venue:SIMA is REDUCING: only orders that reduce")
        # the venue comes back (with empty books): the engine asks, the venue does not know it
        venue.start(port)
        o = orders.wait(cl, lambda o: not o.unknown, "reconciliation", timeout=20)
        assert o.status == "Cancelled" and o.leaves_qty == 0
        wait_until(lambda: c.venues() == (("SIMA", True, True),), 5, "the venue shown up again")


def test_a_restarted_engine_rebuilds_its_orders_and_resumes_its_session(trading, engine_factory,
                                                                         data_dir):
    import sqlite3

    venue, eng = trading
    with EngineClient(eng.instance) as c:
        orders = Orders(c)
        cl = order(c, "AAA", "buy", 100, 99.5).reason.split()[1]
        orders.wait(cl, lambda o: o.status == "New", "acked")
        order(c, "AAA", "sell", 40, 99.0, tif="ioc")  # crosses our own bid: 40 filled
        orders.wait(cl, lambda o: o.cum_qty == 40, "the partial fill")
        # a kill and a re-arm, for the audit trail
        c.request(Verb.KILL, Scope.INSTRUMENT, 1, text="audit me")
    assert eng.stop() == 0  # the venue cancels the rest of our orders when the session drops
    db = data_dir / f"engine-{eng.instance}.db"
    con = sqlite3.connect(db)
    try:
        assert con.execute("select status, cum_qty, leaves_qty from orders where cl_ord_id = ?",
                           (cl,)).fetchone() == ("PartiallyFilled", 40, 60)
        assert con.execute("select count(*), sum(qty) from executions").fetchone() == (2, 80)
        assert con.execute("select qty from positions where symbol = 'AAA'").fetchone() == (0,)
        verbs = [r[0] for r in con.execute("select verb from commands order by ts_ns")]
        assert verbs[:3] == ["ORDER", "ORDER", "KILL"]
        assert con.execute("select name, tripped, user, reason from kill_events").fetchall() == [
            ("instrument:BBB", 1, ME, "audit me")]
    finally:
        con.close()

    again = engine_factory(eng.instance, instruments=INSTRUMENTS, users=USERS,
                           extra=venues_section(("SIMA", venue.port)) + LIMITS).start()
    with EngineClient(again.instance) as c:
        orders = Orders(c)
        o = orders.wait(cl, lambda o: o.status == "Cancelled", "the restored order reconciled")
        first = orders.history[cl][0]
        assert (first.status, first.cum_qty, first.unknown, first.text) == (
            "PartiallyFilled", 40, True, "restored")
        assert (o.cum_qty, o.leaves_qty, o.avg_px, o.unknown) == (40, 0, 99.5, False)
        up = wait_until(lambda: next((t for t in orders.texts if "SIMA session up" in t), None) or
                        orders.poll() and None, 10, "the logon event")
        # the sequence numbers came back from the store: no reset
        assert up == "SIMA session up (resumed); 1 orders in doubt asked about"
        # and the new ClOrdIDs differ from the last run's
        cl2 = order(c, "AAA", "buy", 1, 98.0).reason.split()[1]
        assert cl2.rsplit("-", 1)[0] != cl.rsplit("-", 1)[0]


def test_ctl_orders_shows_the_venues_identifiers_whole(trading, data_dir):
    """The simulated venue sends 36-character UUIDs for OrderID and ExecID: stored whole and
    shown whole, while the engine runs and after it stopped."""
    import re

    venue, eng = trading
    with EngineClient(eng.instance) as c:
        orders = Orders(c)
        cl = order(c, "AAA", "buy", 10, 99.5).reason.split()[1]
        orders.wait(cl, lambda o: o.status == "New", "acked")
        order(c, "AAA", "sell", 4, 99.0, tif="ioc")
        orders.wait(cl, lambda o: o.cum_qty == 4, "the fill")
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}"
    env = dict(__import__("os").environ, HELMDESK_DATA_DIR=str(data_dir))
    r = wait_until(lambda: (r := helmdesk("ctl", "--instance", eng.instance, "orders", cl,
                                          env=env)).returncode == 0
                   and "execution" in r.stdout and r, 10, "the fill in the database")
    assert re.search(rf"^{cl}  SIMA AAA buy 10 @ 99.5 day  PartiallyFilled 4 filled at 99.5, "
                     rf"6 left  venue id {uuid}$", r.stdout, re.M), r.stdout
    assert re.search(rf"^  execution {uuid}  4 @ 99.5  ", r.stdout, re.M), r.stdout
    assert eng.stop() == 0
    r = helmdesk("ctl", "--instance", eng.instance, "orders", env=env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2  # both orders, engine gone
    r = helmdesk("ctl", "--instance", eng.instance, "orders", "HD-nope", env=env)
    assert r.returncode == 1 and "no order 'HD-nope' in sqlite:///" in r.stderr


def test_a_lost_kill_state_file_is_caught_by_the_audit_trail(trading, engine_factory, data_dir):
    """The kill state file is the source of truth; the database's kill events can only make
    it stricter: a trip the file does not know (the file lost) trips the switch again, and
    that start-up trip is audited too."""
    import sqlite3

    venue, eng = trading
    with EngineClient(eng.instance) as c:
        assert c.request(Verb.KILL, Scope.INSTRUMENT, 0, text="halt AAA").accepted
    assert eng.stop() == 0
    (data_dir / "state" / eng.instance / "killswitches.json").unlink()  # lost
    again = engine_factory(eng.instance, instruments=INSTRUMENTS, users=USERS,
                           extra=venues_section(("SIMA", venue.port)) + LIMITS).start()
    with EngineClient(again.instance) as c:
        s = c.status()
        assert s.instruments_killed == ("AAA",) and not s.kill_tripped
        texts = Orders(c)
        wait_until(lambda: texts.poll() is not None and any(
            "state file is behind the audit trail for instrument:AAA" in t for t in texts.texts), 5,
            "the desk told why")
    assert again.stop() == 0
    con = sqlite3.connect(data_dir / f"engine-{eng.instance}.db")
    try:
        rows = con.execute("select name, tripped, user from kill_events order by ts_ns").fetchall()
    finally:
        con.close()
    assert rows == [("instrument:AAA", 1, ME), ("instrument:AAA", 1, "engine")]
