"""The engine process: pinning, logging, books, kill state that survives a restart."""

import os

import numpy as np

from engine.book.l2 import L2Book
from engine.core.profile import InstrumentConfig
from engine.feeds.sim import SimFeed
from engine.ipc import EngineClient, Scope, Verb

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
            b = L2Book()
            b.bid_px, b.bid_sz = list(rec["bid_px"]), list(rec["bid_sz"])
            b.ask_px, b.ask_sz = list(rec["ask_px"]), list(rec["ask_sz"])
            assert b.check() is None, (c.instruments[i].symbol, b.check())
            assert (rec["bid_sz"] > 0).all() and (rec["ask_sz"] > 0).all()
        frozen = c.read_book(1)[0]
        assert frozen["updates"] == 0  # update_hz = 0: the book stays as seeded
        assert frozen["bid_px"][0] < 100.0 < frozen["ask_px"][0]


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


def test_sim_feed_is_deterministic_and_keeps_books_sane():
    cfg = [InstrumentConfig(symbol="A", tick=0.25, price=100.0, update_hz=1000),
           InstrumentConfig(symbol="B", tick=0.01, price=1.0, update_hz=333)]
    runs = []
    for _ in range(2):
        f = SimFeed(cfg, seed=11)
        changed = set()
        for t in range(0, 2_000_000_000, 997_000):
            f.step(t, changed)
            for b in f.books:
                assert b.check() is None
        runs.append([(b.bid_px[:], b.bid_sz[:], b.ask_px[:], b.ask_sz[:], b.updates) for b in f.books])
    assert runs[0] == runs[1]
    assert runs[0][0][4] > 1000  # ~2000 updates at 1 kHz over 2 s
    assert np.all(np.array(runs[0][1][0]) > 0)  # B never walks below zero
