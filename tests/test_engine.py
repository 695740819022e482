"""The engine process: pinning, logging, books, kill state that survives a restart."""

import os
from pathlib import Path


from engine.core.profile import parse_profile
from engine.feeds.marketdata import MarketData, MarketDataConfig
from engine.ipc import EngineClient, Scope, Verb
from engine.node import SIM_VENUE, sim_source

from tests.conftest import wait_until


def test_engine_pins_itself_and_logs_to_the_data_dir(engine_factory, instance, data_dir):
    e = engine_factory(instance, extra="cores = [0]").start()
    assert os.sched_getaffinity(e.pid) == {0}
    log = data_dir / "logs" / f"engine-{instance}.log"
    # Log records are written by a listener thread, so the file catches up a little later.
    wait_until(lambda: f"engine {instance} running" in log.read_text(), 10, "the running line")
    assert "pinned to CPUs [0]" in log.read_text()


def test_engine_defaults_to_the_last_core(engine):
    assert os.sched_getaffinity(engine.pid) == {max(os.sched_getaffinity(0))}


def test_published_books_are_whole_and_moving(engine):
    with EngineClient(engine.instance, commands=False) as c:
        assert [i.symbol for i in c.instruments] == ["ESZ6", "FROZEN", "AAPL"]
        first = c.read_book(0)[0]
        wait_until(lambda: c.read_book(0)[0]["updates"] > first["updates"] + 10, 10, "book updates")
        for i in range(3):
            rec = c.read_book(i)[0]
            assert _sane(rec), (c.instruments[i].symbol, rec)
            assert (rec["bid_sz"] > 0).all() and (rec["ask_sz"] > 0).all()
        frozen = c.read_book(1)[0]
        # update_hz = 0: the simulated venue quotes it once (its snapshot) and never moves it
        assert frozen["bid_px"][0] <= 100.0 <= frozen["ask_px"][0]
        wait_until(lambda: c.read_book(0)[0]["updates"] > first["updates"] + 20, 10, "more")
        assert c.read_book(1)[0]["updates"] == frozen["updates"]


def _sane(rec) -> bool:
    """Levels in price order, one tick grid apart or more, and the book not crossed."""
    bids, asks = list(rec["bid_px"]), list(rec["ask_px"])
    return (all(a > b for a, b in zip(bids, bids[1:]))
            and all(b > a for a, b in zip(asks, asks[1:])) and bids[0] < asks[0])


def test_kill_state_survives_an_engine_restart(engine_factory, instance):
    e = engine_factory(instance).start()
    with EngineClient(instance) as c:
        assert c.request(Verb.KILL, Scope.INSTRUMENT, 2, text="AAPL halted").accepted
        assert c.request(Verb.KILL, text="end of day").accepted
    assert e.stop() == 0
    e2 = engine_factory(instance).start()
    with EngineClient(instance) as c:
        s = c.status()
        assert s.kill_tripped and s.kill_reason == "end of day"
        assert s.instruments_killed == ("AAPL",)
        events = c.poll_events()
        assert b"global kill switch is TRIPPED (restored)" in events["text"].tolist()
    assert e2.stop() == 0


def test_sim_feed_is_deterministic_and_keeps_books_sane(tmp_path):
    """[feed] kind = "sim" is one simulated venue quoting every instrument: the same seed and
    steps give the same books, which stay two-sided, in order and uncrossed."""
    profile = parse_profile({
        "feed": {"kind": "sim", "seed": 11},
        "instruments": [{"symbol": "A", "tick": 0.25, "price": 100.0, "update_hz": 1000},
                        {"symbol": "B", "tick": 0.01, "price": 1.0, "update_hz": 333}],
    }, tmp_path / "p.toml")
    runs = []
    for _ in range(2):
        md = MarketData(MarketDataConfig.from_profile(profile, [SIM_VENUE]), profile.instruments,
                        [sim_source(profile, [SIM_VENUE], 0)])
        md.start(0)
        for t in range(0, 2_000_000_000, 997_000):
            md.step(t)
            for i in range(2):
                assert md.books.bbo_ok(i), md.books.bbo[i]
        b = md.books
        runs.append((b.book.tobytes(), b.bbo.tobytes()))
        assert b.bbo["updates"][0] > 1000  # ~2000 events at 1 kHz over 2 s, and the snapshot
        assert (b.bid_px[0, 1, 0] > 0) and (b.ask_px[0, 1] > 0).all()  # B stays positive
    assert runs[0] == runs[1]


def test_a_fresh_install_starts_with_no_stale_books_and_no_tripped_switch(
        engine_factory, instance, data_dir, tmp_path, monkeypatch):
    """numba's cache empty, as on a workstation's first start: the demo's kernels (simulated
    venues, feed checks, the pairs strategy) compile before the engine takes its start time.
    They used to compile in the first turns, seconds that the books spent silent: every
    instrument's kill switch went REDUCING as stale, and was re-armed once data came."""
    from tests.conftest import EngineProc

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))  # nothing cached
    text = (Path(__file__).parents[1] / "resources" / "profiles" / "demo.toml").read_text()
    prof = tmp_path / "demo.toml"
    prof.write_text(text.replace('instance = "demo"', f'instance = "{instance}"', 1))
    e = EngineProc(prof, instance, dict(os.environ, HELMDESK_DATA_DIR=str(data_dir)))
    try:
        e.start(wait=False)
        e.wait_ready(timeout=120)  # compiling everything: seconds
        with EngineClient(instance, commands=False) as c:
            def bid(i: int) -> float:
                b = c.read_book(i)
                return 0.0 if b is None else float(b[0]["bid_px"][0])

            wait_until(lambda: all(bid(i) > 0 for i in range(4)), 10, "every book to have a bid")
            hb = c.status().heartbeat_count
            wait_until(lambda: c.status().heartbeat_count > hb + 100, 20, "more turns")
            assert not c.status().kill_tripped
    finally:
        assert e.stop() == 0
    err = e.output()
    log = (data_dir / "logs" / f"engine-{instance}.log").read_text()
    assert f"engine {instance} running" in log
    assert "is stale" not in err + log and "REDUCING" not in err + log, err[-2000:]
