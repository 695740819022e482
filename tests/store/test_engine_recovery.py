"""Crash recovery of a real engine, on SQLite and on PostgreSQL: after ``kill -9`` a restarted
engine has its positions, limits and kill switches back, as the desk and ``ctl`` see them."""

from __future__ import annotations

from engine.ipc import EngineClient, Scope, Verb
from engine.ipc.commands import order_text
from tests.conftest import wait_until

#: an in-process simulated venue trading against the simulated feed's book of the same name
VENUE = '\n[[venues]]\nname = "SIM"\nkind = "sim"\n'


def _table(c: EngineClient, name: str):
    got = []

    def read() -> bool:
        rows = c.read_risk(name)  # None: the engine was writing it
        if rows is not None:
            got.append(rows)
        return rows is not None

    wait_until(read, 5, f"the {name} table")
    return got[-1]


def _desk_qty(c: EngineClient, symbol: str) -> int:
    rows = _table(c, "positions")
    i = [x.symbol for x in c.instruments].index(symbol)
    hit = rows[(rows["book"] == b"desk") & (rows["instrument"] == i)]
    return int(hit[0]["qty"]) if len(hit) else 0


def _kill_state(c: EngineClient, name: str) -> int:
    rows = c.read_kill()
    return int(rows[rows["name"] == name.encode()][0]["state"])


def _limit(c: EngineClient, scope: str, key: str) -> float:
    rows = _table(c, "limits")
    hit = rows[(rows["scope"] == scope.encode()) & (rows["key"] == key.encode())]
    return float(hit[0]["limit"]) if len(hit) else float("nan")


def test_positions_limits_and_kill_switches_survive_kill_9(engine_factory, instance, url):
    extra = f'\n[database]\nurl = "{url}"\n{VENUE}'
    users = '"*" = "trader,risk_manager"'
    e = engine_factory(instance, users=users, extra=extra).start()
    with EngineClient(instance) as c:
        syms = [x.symbol for x in c.instruments]
        aapl = syms.index("AAPL")
        wait_until(lambda: c.venues() and c.venues()[0][1], 15, "the SIM venue session")

        def buy() -> bool:
            ack = c.request(Verb.ORDER, Scope.INSTRUMENT, aapl, arg0=7, arg1=0.0,
                            text=order_text("SIM", "buy", "ioc"))
            assert ack.accepted or "reference" in ack.reason, ack.reason
            return ack.accepted

        wait_until(buy, 10, "a market order accepted (a reference price first)")
        wait_until(lambda: _desk_qty(c, "AAPL") == 7, 10, "the fill in the desk's book")
        ack = c.request(Verb.LIMIT, Scope.INSTRUMENT, syms.index("ESZ6"), arg0=77,
                        text="max_order_qty after the incident")
        assert ack.accepted, ack.reason
        ack = c.request(Verb.KILL, Scope.INSTRUMENT, syms.index("FROZEN"), arg0=1,
                        text="feed under review")
        assert ack.accepted and "REDUCING" in ack.reason
        wait_until(lambda: _limit(c, "instrument:ESZ6", "max_order_qty") == 77, 5,
                   "the new limit published")
    e.kill9()

    again = e.start()  # the same profile file: limits edited since it changed stand again
    with EngineClient(instance) as c:
        syms = [x.symbol for x in c.instruments]
        wait_until(lambda: _desk_qty(c, "AAPL") == 7, 10, "the position rebuilt from the database")
        assert _kill_state(c, "instrument:FROZEN") == 1  # REDUCING, as it was
        assert _kill_state(c, "global") == 0
        assert _limit(c, "instrument:ESZ6", "max_order_qty") == 77
        ack = c.request(Verb.ORDER, Scope.INSTRUMENT, syms.index("ESZ6"), arg0=78,
                        arg1=0.0, text=order_text("SIM", "buy", "ioc"))
        assert not ack.accepted and "max_order_qty 77" in ack.reason
    assert again.stop() == 0
