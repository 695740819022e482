"""The desk against a real engine process: what the user sees, read back from the widgets."""

import subprocess
import sys
import time

import numpy as np
from PySide6.QtCore import Qt

from engine.ipc import EngineClient



def ladder_prices(w):
    return [row[1] for row in w.ladder.model.rows()]


def test_ladder_shows_the_engines_book(engine, desk_factory, qtbot):
    w = desk_factory(engine.instance, instrument="FROZEN")
    qtbot.waitUntil(lambda: w.status.state == "connected", timeout=10_000)
    assert w.instrument_box.currentText() == "FROZEN"
    with EngineClient(engine.instance, commands=False) as c:
        rec = c.read_book(1)[0]
    qtbot.waitUntil(lambda: ladder_prices(w)[10] != "", timeout=5_000)
    rows = w.ladder.model.rows()
    # asks above (worst first), bids below (best first): exactly the engine's numbers
    asks = [(float(r[1].replace(",", "")), float(r[2].replace(",", ""))) for r in rows[:10]]
    bids = [(float(r[1].replace(",", "")), float(r[0].replace(",", ""))) for r in rows[10:]]
    assert asks == list(zip(rec["ask_px"][::-1], rec["ask_sz"][::-1]))
    assert bids == list(zip(rec["bid_px"], rec["bid_sz"]))
    assert rows[9][0] == "" and rows[10][2] == ""  # each side shows only its own size
    assert w.ladder.title.text().startswith(f"FROZEN   {rec['bid_px'][0]:,.2f} / {rec['ask_px'][0]:,.2f}")
    assert not w.ladder.model.stale and not w.ladder.banner.isVisible()
    assert f"pid {engine.pid}" in w.status.text()


def test_ladder_follows_a_live_book_and_the_instrument_choice(engine, desk_factory, qtbot):
    w = desk_factory(engine.instance)
    qtbot.waitUntil(lambda: w.status.state == "connected", timeout=10_000)
    w.instrument_box.setCurrentText("AAPL")
    c = EngineClient(engine.instance, commands=False)
    try:
        def shows_engine_book():
            rec = c.read_book(2)[0]
            best = (float(rec["bid_px"][0]), float(rec["ask_px"][0]))
            return w.ladder.model.best() == best
        qtbot.waitUntil(shows_engine_book, timeout=5_000)
        assert w.ladder.title.text().startswith("AAPL")
        assert w.chart.n > 0
    finally:
        c.close()


def test_desk_goes_stale_when_the_engine_is_killed_and_recovers(engine, engine_factory, desk_factory, qtbot):
    w = desk_factory(engine.instance)
    qtbot.waitUntil(lambda: w.status.state == "connected", timeout=10_000)
    qtbot.waitUntil(lambda: ladder_prices(w)[10] != "", timeout=5_000)
    old_pid = engine.pid
    engine.kill9()
    t0 = time.monotonic()
    qtbot.waitUntil(lambda: w.status.state == "stale", timeout=5_000)
    stale_after = time.monotonic() - t0
    assert "STALE" in w.status.text() and "heartbeat" in w.status.text()
    assert w.ladder.model.stale and w.ladder.banner.isVisible()
    assert w.ladder.model.data(w.ladder.model.index(10, 1), Qt.ForegroundRole).color().name() == "#6b6f76"
    assert not w.killpanel.kill_button.isEnabled()
    assert ladder_prices(w)[10] != ""  # last figures stay, greyed
    print(f"STALE shown {stale_after * 1000:.0f} ms after SIGKILL")

    new = engine_factory(engine.instance).start()
    qtbot.waitUntil(lambda: w.status.state == "connected", timeout=10_000)
    assert f"pid {new.pid}" in w.status.text() and str(old_pid) not in w.status.text()
    assert not w.ladder.model.stale and w.killpanel.kill_button.isEnabled()


def test_desk_shows_a_clean_stop_at_once(engine, desk_factory, qtbot):
    w = desk_factory(engine.instance)
    qtbot.waitUntil(lambda: w.status.state == "connected", timeout=10_000)
    assert engine.stop() == 0
    qtbot.waitUntil(lambda: w.status.state != "connected", timeout=5_000)
    assert w.ladder.model.stale


def test_kill_button_pending_then_engine_state_then_rearm(engine, desk_factory, qtbot, monkeypatch):
    w = desk_factory(engine.instance)
    qtbot.waitUntil(lambda: w.status.state == "connected", timeout=10_000)
    qtbot.waitUntil(lambda: w.role is not None, timeout=5_000)
    assert w.killpanel.state_label.text() == "ARMED — trading allowed"
    assert not w.killpanel.rearm_button.isEnabled()
    seen = []
    w.killpanel.pending_changed.connect(lambda p, t: seen.append((p, t)))
    qtbot.mouseClick(w.killpanel.kill_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=5_000)
    assert seen[0] == (True, "KILL: pending — waiting for the engine's ack")
    assert seen[1][0] is False and seen[1][1].startswith("KILL: confirmed by engine — global kill switch TRIPPED")
    qtbot.waitUntil(lambda: w.killpanel.state_label.text().startswith("KILLED"), timeout=5_000)
    assert "KILL button on desk" in w.killpanel.state_label.text()
    with EngineClient(engine.instance, commands=False) as c:
        assert c.status().kill_tripped  # the engine's state, not the desk's opinion
    assert w.killpanel.rearm_button.isEnabled()  # demo users are risk managers

    from PySide6.QtWidgets import QInputDialog
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("desk test: all clear", True))
    qtbot.mouseClick(w.killpanel.rearm_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: seen[-1][1].startswith("Re-arm: confirmed by engine"), timeout=5_000)
    qtbot.waitUntil(lambda: w.killpanel.state_label.text() == "ARMED — trading allowed", timeout=5_000)
    lines = "\n".join(w.eventlog.lines())
    assert "kill    global HALTED by" in lines and "global re-armed to ACTIVE by" in lines


def test_a_trader_cannot_rearm_and_sees_why(engine_factory, instance, desk_factory, qtbot):
    engine_factory(instance, users='"*" = "trader"').start()
    w = desk_factory(instance)
    qtbot.waitUntil(lambda: w.role is not None, timeout=10_000)
    assert w.role_label.text().strip() == f"user {w.link.client.user} · role trader"
    qtbot.mouseClick(w.killpanel.kill_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.killpanel.state_label.text().startswith("KILLED"), timeout=5_000)
    assert not w.killpanel.rearm_button.isEnabled()
    # even if the desk were wrong, the engine says no
    import asyncio
    fut = asyncio.ensure_future(w.rearm_global("I insist"))
    qtbot.waitUntil(fut.done, timeout=5_000)
    assert "REJECTED — user" in w.killpanel.pending_label.text()
    assert "is trader here and may not REARM" in w.killpanel.pending_label.text()


def test_ctl_kill_flips_what_the_desk_shows(engine, desk_factory, qtbot):
    w = desk_factory(engine.instance)
    qtbot.waitUntil(lambda: w.killpanel.state_label.text() == "ARMED — trading allowed", timeout=10_000)
    r = subprocess.run([sys.executable, "-m", "app", "ctl", "--instance", engine.instance, "kill",
                        "--reason", "from the runbook"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    qtbot.waitUntil(lambda: w.killpanel.state_label.text().startswith("KILLED"), timeout=5_000)
    assert "from the runbook" in w.killpanel.state_label.text()
    r = subprocess.run([sys.executable, "-m", "app", "ctl", "--instance", engine.instance, "kill",
                        "--instrument", "AAPL"], capture_output=True, text=True, timeout=30)
    qtbot.waitUntil(lambda: (w.killpanel.row_texts("instrument:AAPL") or ("", ""))[1]
                    == "HALTED", timeout=5_000)
    assert w.killpanel.row_texts("instrument:ESZ6")[1] == "ACTIVE"
    assert w.killpanel.row_texts("global")[1] == "HALTED"
    # one click on a row trips that scope; the row waits for the ack, then shows the state
    reduce_esz6 = w.killpanel.row_buttons("instrument:ESZ6")[0]
    qtbot.mouseClick(reduce_esz6, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.killpanel.row_texts("instrument:ESZ6")[1] == "REDUCING",
                    timeout=5_000)
    qtbot.waitUntil(lambda: any("REDUCE instrument:ESZ6: confirmed" in x
                                for x in w.eventlog.lines()), timeout=5_000)


def test_desk_waits_for_an_engine_that_is_not_there_yet(engine_factory, instance, desk_factory, qtbot):
    w = desk_factory(instance)
    qtbot.waitUntil(lambda: w.status.state == "disconnected", timeout=5_000)
    assert f"waiting for engine '{instance}'" in w.status.text()
    assert not w.killpanel.kill_button.isEnabled()
    e = engine_factory(instance).start()
    qtbot.waitUntil(lambda: w.status.state == "connected", timeout=10_000)
    assert f"pid {e.pid}" in w.status.text()


def test_painting_the_desk_keeps_references_to_none_and_true(engine, desk_factory, qtbot):
    """PySide6 6.12.0 drops a reference to None/True per paint; Python 3.11 then aborts at exit."""
    w = desk_factory(engine.instance)
    qtbot.waitUntil(lambda: w.status.state == "connected", timeout=10_000)
    for _ in range(5):
        w.repaint()
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(100):
        w.ladder.model.set_stale(not w.ladder.model.stale)
        w.chart.append(time.time(), 1.0 + np.random.random())
        w.chart.redraw()
        w.repaint()
    after = sys.getrefcount(None), sys.getrefcount(True)
    assert after[0] > before[0] - 50 and after[1] > before[1] - 50, (before, after)


def test_desk_refuses_a_segment_of_another_layout_version_and_says_so(instance, desk_factory, qtbot):
    from engine.ipc.layout import H, LAYOUT_VERSION, MAGIC, segment_name
    from engine.ipc.segment import Segment

    seg = Segment.create(segment_name(instance), 8192)
    try:
        seg.q[H.TOTAL_SIZE // 8] = 8192
        seg.buf[H.VERSION : H.VERSION + 4] = (LAYOUT_VERSION + 1).to_bytes(4, "little")
        seg.q[H.MAGIC // 8] = MAGIC
        w = desk_factory(instance)
        qtbot.waitUntil(lambda: "REFUSED" in w.status.text(), timeout=5_000)
        assert w.status.state == "disconnected"
        assert f"has layout version {LAYOUT_VERSION + 1}, this program understands version" in w.status.text()
        assert any("REFUSED" in line for line in w.eventlog.lines())
        assert not w.killpanel.kill_button.isEnabled()
    finally:
        seg.unlink()
        seg.close()
