"""Widgets on their own, fed plain data (no engine). The trading ladder has its own file,
test_ladder.py."""

from PySide6.QtCore import Qt

from engine.core.ticks import tick_decimals
from widgets import ConnectionStatus, KillSwitchPanel, LadderWidget


def book(mid=100.0, tick=0.5):
    bid_px = [mid - tick * (k + 1) for k in range(10)]
    ask_px = [mid + tick * (k + 1) for k in range(10)]
    return bid_px, [100.0 * (k + 1) for k in range(10)], ask_px, [10.0 * (k + 1) for k in range(10)]


def test_tick_decimals():
    assert [tick_decimals(t) for t in (0.25, 0.01, 0.0025, 5, 1e-8, 0.1)] == [2, 2, 4, 0, 8, 1]


def test_ladder_widget_decimals_follow_the_tick(qtbot):
    w = LadderWidget()
    qtbot.addWidget(w)
    w.set_symbol("X", tick_decimals(0.0025))
    w.set_stale(False)
    w.set_book(*book(1.5, 0.0025), last_px=1.5025, last_sz=300)
    assert w.model.rows()[10][1] == "1.4975"  # the levels form the desk reads
    assert w.model.row_texts(1.5001)[1:4] == ("", "1.5001", "")  # no tick given: 0.0001 grid
    assert w.title.text() == "X   1.4975 / 1.5025   spread 0.0050   last 300 @ 1.5025"


def test_kill_panel_states(qtbot):
    p = KillSwitchPanel()
    qtbot.addWidget(p)
    p.set_stale(False)
    p.set_state(False)
    assert p.kill_button.isEnabled() and not p.rearm_button.isEnabled()
    p.set_pending(True, "KILL: pending")
    assert p.kill_button.text() == "KILL — pending…" and not p.kill_button.isEnabled()
    p.set_pending(False, "done")
    p.set_state(True, "bob", "fat finger", "12:00:01")
    assert p.state_label.text() == "KILLED by bob at 12:00:01\nfat finger"
    assert p.state_label.property("state") == "killed"
    assert not p.rearm_button.isEnabled()  # not a risk manager
    p.set_can_rearm(True)
    assert p.rearm_button.isEnabled()
    p.set_stale(True)
    assert not p.rearm_button.isEnabled() and not p.kill_button.isEnabled()
    p.set_instruments([("A", False), ("B", True)])
    assert [p.table.item(r, 1).text() for r in range(2)] == ["armed", "KILLED"]


def test_connection_status(qtbot):
    s = ConnectionStatus()
    qtbot.addWidget(s)
    s.set_health("stale", "heartbeat 900 ms old")
    assert s.text() == "● STALE   heartbeat 900 ms old" and s.property("state") == "stale"
    import pytest
    with pytest.raises(ValueError, match="unknown connection state 'odd'"):
        s.set_health("odd", "")


def test_blotter_inserts_new_orders_on_top_and_updates_rows_in_place(qtbot, qtmodeltester):
    from widgets import BlotterModel

    m = BlotterModel(max_rows=3)
    m.update("c1", "SIMA", "AAPL", "buy", 300, 190.05, "New", 0, 300, 0.0)
    m.update("c2", "SIMA", "AAPL", "sell", 100, None, "PendingNew", 0, 100, 0.0)
    qtmodeltester.check(m)
    assert [m.data(m.index(r, 0)) for r in range(2)] == ["c2", "c1"]
    with qtbot.waitSignal(m.dataChanged) as sig:
        m.update("c1", "SIMA", "AAPL", "buy", 300, 190.05, "PartiallyFilled", 100, 200, 190.05)
    assert sig.args[0].row() == 1 and sig.args[1].row() == 1
    assert m.row_of("c1") == ("c1", "SIMA", "AAPL", "buy", "300", "190.05", "PartiallyFilled",
                              "100", "200", "190.05", "")
    assert m.row_of("c2")[5] == "MKT"
    m.update("c1", "SIMA", "AAPL", "buy", 300, 190.05, "PartiallyFilled", 100, 200, 190.05,
             "venue disconnected: state unknown", unknown=True)
    assert m.row_of("c1")[6] == "UNKNOWN"
    assert m.data(m.index(1, 6), Qt.ForegroundRole).color().name() == "#f0c674"
    for k in range(3, 6):  # keeps max_rows, dropping the oldest
        m.update(f"c{k}", "SIMA", "AAPL", "buy", 1, 1.0, "New", 0, 1, 0.0)
    assert m.rowCount() == 3 and m.row_of("c1") is None and m.row_of("c5") is not None


def test_feed_health_spells_out_problems(qtbot):
    from widgets import FeedHealth

    w = FeedHealth()
    qtbot.addWidget(w)
    w.set_feeds([("SIMA", 1234.0, 0, 0, 0, False, 0), ("SIMB", 0.0, 3, 1, 12, True, 2)])
    assert w.text() == "SIMA 1.2k/s  ·  SIMB STALE 2 books stale gaps 3 dups 1 rejects 12"
    assert w.stale and "f0c674" in w.styleSheet()
    w.set_feeds([("SIMA", 999.0, 0, 0, 0, False, 0)])
    assert w.text() == "SIMA 999/s" and not w.stale
