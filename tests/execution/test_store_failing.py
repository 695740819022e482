"""A database that stops committing is an alert, not a freeze: the desk is told why, fills are
shown marked NOT DURABLE instead of being held without end, kills and cancels keep working, and
once the database is back everything is written, nothing lost."""

from __future__ import annotations

import sqlite3

from engine.ipc import EngineClient, Scope, Verb
from tests.conftest import wait_until
from tests.execution.test_engine_orders import Orders, order, trading  # noqa: F401
from tests.venue.test_server import venue_factory  # noqa: F401 (fixture)


def test_a_locked_database_is_an_alert_and_nothing_is_lost(trading, data_dir):  # noqa: F811
    venue, eng = trading
    db = data_dir / f"engine-{eng.instance}.db"
    with EngineClient(eng.instance, user="tester") as c:
        orders = Orders(c)
        resting = order(c, "AAA", "buy", 100, 99.5).reason.split()[1]
        orders.wait(resting, lambda o: o.status == "New", "acked")
        lock = sqlite3.connect(db, timeout=10, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")  # another process holds the database: commits fail
            # a fill now: its record waits for the database, which does not come
            crossing = order(c, "AAA", "sell", 40, 99.0, tif="ioc").reason.split()[1]
            alert = wait_until(lambda: next((t for t in (orders.poll() and orders.texts)
                                             if "DATABASE FAILING" in t), None), 30,
                               "the alert that the database fails")
            assert alert.startswith("DATABASE FAILING (commits fail: database is locked)"), alert
            # the fills are shown, marked, instead of held until the database returns
            o = orders.wait(resting, lambda o: o.cum_qty == 40, "the fill shown")
            assert o.text == "NOT DURABLE" and o.status == "PartiallyFilled"
            assert orders.wait(crossing, lambda o: o.status == "Filled", "the other side")
            # kill switches and cancels keep working
            kill = c.request(Verb.KILL, Scope.INSTRUMENT, 0, text="db down")
            assert kill.accepted and "TRIPPED" in kill.reason
            assert c.request(Verb.CANCEL_ALL).accepted
            orders.wait(resting, lambda o: o.status == "Cancelled", "the cancel")
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        wait_until(lambda: next((t for t in (orders.poll() and orders.texts)
                                 if "database writing again" in t), None), 30,
                   "the all-clear")
    assert eng.stop() == 0
    con = sqlite3.connect(db)
    try:  # nothing was lost: both fills, both orders' last states, the kill, the commands
        assert con.execute("select count(*), sum(qty) from executions").fetchone() == (2, 80)
        assert con.execute("select status, cum_qty from orders where cl_ord_id = ?",
                           (resting,)).fetchone() == ("Cancelled", 40)
        assert con.execute("select name, tripped from kill_events").fetchall() == [("instrument:AAA", 1)]
        verbs = [r[0] for r in con.execute("select verb from commands order by ts_ns")]
        assert verbs == ["ORDER", "ORDER", "KILL", "CANCEL_ALL"]
    finally:
        con.close()
