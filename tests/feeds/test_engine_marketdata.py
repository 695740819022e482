"""The engine's market data from its venues: real venue processes, the engine's own FIX
sessions, the consolidated book published to shared memory, feed health on the desk's side."""

from __future__ import annotations

import pytest

from engine.ipc import EngineClient

from tests.conftest import wait_until
from tests.execution.test_engine_orders import USERS
from tests.execution.test_engine_sor import Maker, venues_section
from tests.venue.test_server import INSTRUMENTS, venue_factory  # noqa: F401 (fixture)


def book_of(c: EngineClient, i: int):
    rec = c.read_book(i)[0]
    bids = [(float(p), float(s)) for p, s in zip(rec["bid_px"], rec["bid_sz"]) if s]
    asks = [(float(p), float(s)) for p, s in zip(rec["ask_px"], rec["ask_sz"]) if s]
    return bids, asks


def health(c: EngineClient) -> dict:
    rows = c.read_feed()
    return {r["venue"].decode(): r for r in rows} if rows is not None else {}


@pytest.fixture
def md_engine(venue_factory, engine_factory, instance):  # noqa: F811
    a = venue_factory("SIMA").start()
    b = venue_factory("SIMB").start()
    makers = [Maker(a.port, "SIMA"), Maker(b.port, "SIMB")]
    makers[0].rest("A1", 1, 100, "99.00")
    makers[0].rest("A2", 2, 300, "100.00")
    makers[1].rest("B1", 1, 50, "99.00")
    makers[1].rest("B2", 1, 70, "98.50")
    makers[1].rest("B3", 2, 500, "100.01")
    eng = engine_factory(
        instance, instruments=INSTRUMENTS, users=USERS,
        extra='[feed]\nkind = "venues"\nsilence_ms = 1000\nrecord = true\n'
        + venues_section(("SIMA", a.port, 0.5), ("SIMB", b.port, 1.0)),
    )
    # write_profile puts its own [feed] table last: drop it, ours comes first
    text = eng.profile.read_text().replace("[feed]\nseed = 7\n", "")
    eng.profile.write_text(text)
    eng.start()
    yield a, b, eng, makers
    for m in makers:
        m.close()


def test_the_ladder_shows_the_consolidated_book_of_both_venues(md_engine):
    _a, _b, eng, makers = md_engine
    with EngineClient(eng.instance, commands=False) as c:
        want = ([(99.0, 150.0), (98.5, 70.0)], [(100.0, 300.0), (100.01, 500.0)])
        wait_until(lambda: book_of(c, 0) == want, 15, "the consolidated AAA book")
        h = wait_until(lambda: (r := health(c)) and all(
            not x["stale"] and x["events"] for x in r.values()) and r, 10, "healthy feeds")
        assert set(h) == {"SIMA", "SIMB"}
        assert all(x["gaps"] == 0 and x["rejects"] == 0 for x in h.values())
        # a new level on one venue shows at once, aggregated
        makers[0].rest("A3", 1, 25, "98.50")
        wait_until(lambda: book_of(c, 0)[0] == [(99.0, 150.0), (98.5, 95.0)], 10, "the new level")
        assert book_of(c, 1) == ([], [])  # BBB: nobody quotes it


def test_a_dropped_venue_leaves_the_consolidated_book(md_engine):
    _a, b, eng, makers = md_engine
    with EngineClient(eng.instance, commands=False) as c:
        wait_until(lambda: book_of(c, 0)[1] == [(100.0, 300.0), (100.01, 500.0)], 15, "both books")
        # health is published every 100 ms: see both venues healthy before one goes
        wait_until(lambda: (r := health(c)) and all(not x["stale"] and x["events"]
                                                    for x in r.values()), 10, "healthy feeds")
        makers[1].close()
        b.stop()
        # SIMB's books are stale: only SIMA's levels remain, and the desk sees why
        wait_until(lambda: book_of(c, 0) == ([(99.0, 100.0)], [(100.0, 300.0)]), 10,
                   "SIMB out of the consolidated book")
        h = wait_until(lambda: (r := health(c)) and r["SIMB"]["stale"] and r, 10, "SIMB stale")
        assert h["SIMB"]["stale_books"] == 2 and not h["SIMA"]["stale"], h
        assert h["SIMA"]["events"] > 0


def test_recorded_market_data_replays_into_the_same_book(md_engine, engine_factory, data_dir):
    from engine.feeds.tickstore import list_days

    _a, _b, eng, _makers = md_engine
    with EngineClient(eng.instance, commands=False) as c:
        wait_until(lambda: book_of(c, 0)[0] == [(99.0, 150.0), (98.5, 70.0)], 15, "the book")
    assert eng.stop() == 0  # the recorder writes what it has
    days = list_days(data_dir / "ticks")
    assert len(days) == 1
    again = engine_factory(eng.instance + "r", instruments=INSTRUMENTS, users=USERS,
                           extra=f'[feed]\nkind = "replay"\nday = "{days[0]}"\nspeed = 1000.0\n')
    again.profile.write_text(again.profile.read_text().replace("[feed]\nseed = 7\n", ""))
    again.start()
    with EngineClient(again.instance, commands=False) as c:
        wait_until(lambda: book_of(c, 0) == ([(99.0, 150.0), (98.5, 70.0)],
                                             [(100.0, 300.0), (100.01, 500.0)]), 15,
                   "the replayed book")
        # health is published every 100 ms, books as they change: it may come a moment later
        wait_until(lambda: set(health(c)) == {"SIMA", "SIMB"}, 5, "both venues' health rows")


def test_a_crossed_consolidated_book_is_flagged_not_hidden(md_engine):
    from engine.ipc.layout import BOOK_CROSSED, BOOK_LOCKED

    _a, _b, eng, makers = md_engine
    with EngineClient(eng.instance, commands=False) as c:
        wait_until(lambda: book_of(c, 0)[1] == [(100.0, 300.0), (100.01, 500.0)], 15, "both books")
        assert c.read_book(0)[0]["flags"] == 0
        # BBB: SIMB offers at 50.00, SIMA bids 50.00 (locked), then 50.25 (crossed); neither
        # venue can match them: each sees one side only
        makers[1].rest("B6", 2, 10, "50.00", symbol="BBB")
        makers[0].rest("A6", 1, 10, "50.00", symbol="BBB")
        wait_until(lambda: c.read_book(1)[0]["flags"] == BOOK_LOCKED, 10, "the locked flag")
        makers[0].rest("A7", 1, 5, "50.25", symbol="BBB")
        wait_until(lambda: c.read_book(1)[0]["flags"] == BOOK_CROSSED, 10, "the crossed flag")
        assert book_of(c, 1) == ([(50.25, 5.0), (50.0, 10.0)], [(50.0, 10.0)])  # shown as is


def test_simulated_venues_feed_the_consolidated_books(engine_factory, instance):
    eng = engine_factory(instance, extra='[feed]\nkind = "simvenues"\nvenues = ["SIMA", "SIMB"]\n'
                                         'pairs = [["ESZ6", "AAPL"]]\nsilence_ms = 2000\n')
    eng.profile.write_text(eng.profile.read_text().replace("[feed]\nseed = 7\n", ""))
    eng.start()
    with EngineClient(instance, commands=False) as c:
        h = wait_until(lambda: (r := health(c)) and all(x["events"] > 50 for x in r.values()) and r,
                       20, "both simulated venues quoting")
        assert set(h) == {"SIMA", "SIMB"} and all(x["gaps"] == 0 for x in h.values())
        for i, ins in enumerate(c.instruments):
            if ins.symbol == "FROZEN":  # update_hz 0: quoted once, then still
                continue
            wait_until(lambda: book_of(c, i)[0] and book_of(c, i)[1], 10, f"{ins.symbol} two-sided")
            bids, asks = book_of(c, i)
            assert abs(bids[0][0] - ins.ref_price) < ins.ref_price * 0.05
            assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
            assert [p for p, _ in asks] == sorted(p for p, _ in asks)
