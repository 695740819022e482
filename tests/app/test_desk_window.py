"""The main window: layouts per workstation, several ladders, shortcuts and their help, the
user and role shown, controls a role may not use, confirmation of large orders, flatten."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget

from tests.execution.test_engine_orders import USERS, venues_section
from tests.venue.test_server import INSTRUMENTS, venue_factory  # noqa: F401 (fixture)


def _docks(w) -> dict[str, QDockWidget]:
    return {d.objectName(): d for d in w.findChildren(QDockWidget)}


def test_the_layout_is_saved_and_restored_per_workstation(instance, data_dir, desk_factory,
                                                           qtbot):
    w = desk_factory(instance)  # no engine: the layout does not need one
    w.add_ladder()
    w.add_ladder()
    assert [p.parentWidget().objectName() for p in w.ladders] == ["Ladder1Dock", "Ladder2Dock",
                                                                   "Ladder3Dock"]
    docks = _docks(w)
    docks["TimeandsalesDock"].setFloating(True)
    docks["EventsDock"].hide()
    assert w.auto_recentre_action.isChecked() and w.ladders[2].ladder.model.auto_recentre
    w.auto_recentre_action.setChecked(False)
    assert not any(p.ladder.model.auto_recentre for p in w.ladders)
    w.resize(1500, 960)
    saved_geometry = bytes(w.saveGeometry())
    w.close()
    ini = data_dir / "desk" / "test-desk.ini"
    assert ini.is_file()

    again = desk_factory(instance)
    assert len(again.ladders) == 3
    docks = _docks(again)
    assert docks["TimeandsalesDock"].isFloating()
    assert docks["EventsDock"].isHidden() and not docks["OrdersDock"].isHidden()
    assert not again.auto_recentre_action.isChecked()
    assert not any(p.ladder.model.auto_recentre for p in again.ladders)
    # the window's geometry is saved too (restoring it here is clamped to the offscreen
    # platform's screen, so only the saved bytes can be compared)
    assert bytes(again.settings.value("geometry")) == saved_geometry
    # Window → Reset layout: one ladder, every panel back where it starts
    again.reset_layout()
    qtbot.waitUntil(lambda: len(again.ladders) == 1, timeout=5_000)
    assert not docks["TimeandsalesDock"].isFloating() and not docks["EventsDock"].isHidden()


def test_another_workstation_has_its_own_layout(instance, data_dir, desk_factory, qtbot):
    from app.desk import DeskWindow
    from engine.core.profile import DeskConfig

    w = desk_factory(instance)
    w.add_ladder()
    w.close()
    other = DeskWindow(instance, DeskConfig(name="ws-2"), poll_ms=25)
    qtbot.addWidget(other)
    other.start()
    assert len(other.ladders) == 1
    other.close()
    assert (data_dir / "desk" / "ws-2.ini").is_file()


def test_f1_lists_every_shortcut_and_any_key_closes_it(instance, desk_factory, qtbot):
    w = desk_factory(instance)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5_000)  # shortcuts reach the active window
    qtbot.keyClick(w, Qt.Key_F1)
    assert w.help.isVisible()
    lines = w.help.lines()
    for keys, what in (("Ctrl+Shift+K", "Kill all"), ("Ctrl+Shift+X", "Cancel all"),
                       ("Ctrl+Shift+F", "Flatten"), ("F5", "Re-centre"),
                       ("F2", "Focus the ladder's ticket"), ("Ctrl+L", "New ladder"),
                       ("Home", "Re-centre the ladder with focus"), ("F1", "Keyboard shortcuts")):
        assert any(x.startswith(f"{keys}  {what}") for x in lines), (keys, lines)
    qtbot.keyClick(w.help, Qt.Key_Escape)
    assert not w.help.isVisible()
    qtbot.keyClick(w, Qt.Key_L, Qt.ControlModifier)
    assert len(w.ladders) == 2


def test_a_viewer_sees_who_they_are_and_why_controls_are_off(engine_factory, instance,
                                                             desk_factory, qtbot):
    engine_factory(instance, users='"*" = "viewer"').start()
    w = desk_factory(instance)
    qtbot.waitUntil(lambda: w.role is not None, timeout=15_000)
    user = w.link.client.user
    assert w.role_label.text().strip() == f"user {user} · role viewer"
    lad = w.ladder
    assert lad.view.trade_refusal() == "your role is viewer: only a trader may send orders"
    assert lad.view.cancel_refusal() == "your role is viewer: a viewer may not cancel orders"
    b = w.blotter
    assert not b.send_button.isEnabled()
    assert b.send_button.toolTip() == "your role is viewer: only a trader may trade"
    assert not b.cancel_all_button.isEnabled()
    assert "viewer" in b.cancel_all_button.toolTip()
    assert not w.flatten_action.isEnabled() and not w.kill_action.isEnabled()
    assert not w.cancel_all_action.isEnabled()


def _trading_desk(venue_factory, engine_factory, instance, desk_factory, qtbot):  # noqa: F811
    venue = venue_factory().start()
    engine_factory(instance, instruments=INSTRUMENTS, users=USERS,
                   extra=venues_section(("SIMA", venue.port))).start()
    w = desk_factory(instance)
    qtbot.waitUntil(lambda: w.role is not None and w.blotter.venues_label.text() == "SIMA up",
                    timeout=15_000)
    return w


def test_an_order_above_the_confirmation_size_waits_for_the_trader(venue_factory,  # noqa: F811
                                                                   engine_factory, instance,
                                                                   desk_factory, qtbot):
    w = _trading_desk(venue_factory, engine_factory, instance, desk_factory, qtbot)
    asked = []
    w.confirm = lambda title, text: asked.append(text) or False
    b = w.blotter
    b.qty.setValue(150)
    b.price.setValue(99.5)
    qtbot.mouseClick(b.send_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: b.status.text().startswith("not sent"), timeout=5_000)
    assert asked[0].startswith("BUY 150 AAA @ 99.5 on SIMA?")
    assert "above this desk's confirmation size (100)" in asked[0]
    assert b.status.text() == "not sent: buy 150 (not confirmed)"
    assert b.model.rowCount() == 0
    w.confirm = lambda title, text: asked.append(text) or True
    qtbot.mouseClick(b.send_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: b.model.rowCount() == 1, timeout=10_000)
    assert len(asked) == 2
    b.qty.setValue(100)  # at the size: no question
    qtbot.mouseClick(b.send_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: b.model.rowCount() == 2, timeout=10_000)
    assert len(asked) == 2


def test_the_ladder_trades_shows_our_order_cancels_and_moves_it(venue_factory,  # noqa: F811
                                                                 engine_factory, instance,
                                                                 desk_factory, qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest

    from widgets.ladder import BID, WORK_BUY

    w = _trading_desk(venue_factory, engine_factory, instance, desk_factory, qtbot)
    lad, b = w.ladder, w.blotter
    qtbot.waitUntil(lambda: lad.model.best()[0] > 0, timeout=10_000)
    view = lad.view
    lad.model.held = True  # as with the mouse over it (these clicks come without): no re-centre
    lad.recentre()
    for _ in range(4):  # a few rows down (↓), as a trader would: room under the bid
        QTest.keyClick(view, Qt.Key_Down)
    # prices on the grid under the bid (they rest): the first order's, the second's, its move's
    bid = lad.model.best()[0]
    under = sorted((p for p, _ in lad.model.visible_rows() if p < bid - 0.015), reverse=True)
    price, second_price, moved = under[3], under[4], under[6]
    lad.qty.setValue(7)
    lad.venue.setCurrentText("SIMA")
    QTest.mouseClick(view, Qt.LeftButton, pos=view.row_rect(price, BID).center())
    qtbot.waitUntil(lambda: b.model.rowCount() == 1 and b.model._cells[0][6] == "New",
                    timeout=10_000)
    assert b.model._cells[0][1:6] == ("SIMA", "AAA", "buy", "7", f"{price:g}")
    qtbot.waitUntil(lambda: len(lad.model.orders_at("buy", price)) == 1, timeout=5_000)
    assert view.shown_text(price, WORK_BUY) == "◆ 7"
    first = b.model._cells[0][0]

    # a click on our order cancels it
    QTest.mouseClick(view, Qt.LeftButton, pos=view.row_rect(price, WORK_BUY).center())
    qtbot.waitUntil(lambda: b.model._cells[0][6] == "Cancelled", timeout=10_000)
    qtbot.waitUntil(lambda: not lad.model.orders_at("buy", price), timeout=5_000)

    # another (a tick lower: the same order again within the duplicate window is refused),
    # dragged two ticks down: cancelled, then the same size placed there
    price = second_price
    QTest.mouseClick(view, Qt.LeftButton, pos=view.row_rect(price, BID).center())
    qtbot.waitUntil(lambda: len(lad.model.orders_at("buy", price)) == 1, timeout=10_000)
    second = next(r[0] for r in b.model._cells if r[0] != first)
    start = view.row_rect(price, WORK_BUY).center()
    end = view.row_rect(moved, WORK_BUY).center()
    QTest.mousePress(view, Qt.LeftButton, pos=start)
    QTest.mouseMove(view, QPoint(start.x(), start.y() + 8))
    QTest.mouseMove(view, end)
    QTest.mouseRelease(view, Qt.LeftButton, pos=end)
    qtbot.waitUntil(lambda: len(lad.model.orders_at("buy", moved)) == 1, timeout=10_000)
    assert not lad.model.orders_at("buy", price)
    qtbot.waitUntil(lambda: [r[6] for r in b.model._cells] == ["New", "Cancelled", "Cancelled"],
                    timeout=10_000)
    rows = {r[0]: r for r in b.model._cells}
    assert rows[second][6] == "Cancelled"
    new = [r for r in rows.values() if r[0] not in (first, second)]
    assert len(new) == 1 and new[0][1:8] == ("SIMA", "AAA", "buy", "7", f"{moved:g}", "New", "0")
    assert lad.model.orders_at("buy", moved)[0].cl_ord_id == new[0][0]


def test_flatten_asks_first_then_the_engine_answers(venue_factory, engine_factory,  # noqa: F811
                                                   instance, desk_factory, qtbot):
    w = _trading_desk(venue_factory, engine_factory, instance, desk_factory, qtbot)
    asked = []
    w.confirm = lambda title, text: asked.append((title, text)) or False
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5_000)
    qtbot.keyClick(w, Qt.Key_F, Qt.ControlModifier | Qt.ShiftModifier)
    assert asked == [("Flatten", "Cancel this desk's working orders in AAA and close account "
                                 "main's AAA position?")]
    assert not w.blotter.status.text().startswith("Flatten")
    w.confirm = lambda title, text: True
    qtbot.keyClick(w, Qt.Key_F, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.waitUntil(lambda: w.blotter.status.text().startswith("Flatten AAA: "), timeout=5_000)
    qtbot.waitUntil(lambda: "pending" not in w.blotter.status.text(), timeout=5_000)
    assert w.blotter.status.text() == ("Flatten AAA: account:main holds no AAA; 0 working "
                                       "orders cancelled")


def test_tape_latency_alerts_and_audit_from_a_live_engine(engine, desk_factory, qtbot):
    from PySide6.QtCore import QItemSelectionModel

    from engine.ipc import Verb

    w = desk_factory(engine.instance)
    qtbot.waitUntil(lambda: w.role is not None, timeout=15_000)
    # time and sales: the current instrument's trades, newest on top, as the book's last trade
    tape = w.tape.model
    qtbot.waitUntil(lambda: tape.rowCount() > 0, timeout=10_000)
    symbol = w.instrument_box.currentText()
    assert w.tape_dock.windowTitle() == f"Time and sales {symbol}"
    t, price, size, side, venue = tape.row(0)
    assert venue in {"SIM"} and float(price.replace(",", "")) > 0 and int(size.replace(",", ""))
    qtbot.waitUntil(lambda: w.ladder.model.volume_at(float(price.replace(",", ""))) > 0,
                    timeout=5_000)

    # latency: the engine's histograms and this desk's own round trips
    for _ in range(3):
        w._spawn(w.link.command(Verb.PING))
    qtbot.waitUntil(lambda: w.link.round_trips.count >= 3, timeout=5_000)
    w._read_latency()
    w.latency.redraw()
    assert {"command", "desk round trip"} <= set(w.latency.names())
    assert w.latency.title("desk round trip").startswith("desk round trip  n=")

    # an alert: a kill, acknowledged by a person, the engine's answer shown on its row
    w._spawn(w.kill_global())
    qtbot.waitUntil(lambda: w.alerts.model.rowCount() > 0, timeout=5_000)
    assert w.alerts_dock.windowTitle().startswith("Alerts (")
    assert w.alerts.model.row(0)[1:] == ("CRITICAL", "kill desk",
                                         f"global HALTED by {w.link.client.user}: KILL button on "
                                         f"desk", "NEW")
    view = w.alerts.view
    view.selectionModel().select(view.model().index(0, 0),
                                 QItemSelectionModel.Select | QItemSelectionModel.Rows)
    assert w.alerts.acknowledge_selected() == 1
    user = w.link.client.user
    qtbot.waitUntil(lambda: w.alerts.model.row(0)[-1].startswith(f"ack by {user} "),
                    timeout=5_000)
    qtbot.waitUntil(lambda: w.alerts_dock.windowTitle() == "Alerts", timeout=5_000)

    # the audit trail: the kill and the acknowledgement, read from the engine's database
    w.audit_dock.show()
    w.audit_dock.raise_()
    w._spawn(w.load_audit())
    qtbot.waitUntil(lambda: any("ACK_ALERT" in " ".join(r) for r in w.audit.shown_rows()),
                    timeout=10_000)
    assert any("KILL" in " ".join(r) for r in w.audit.shown_rows())


def test_the_whole_window_on_the_demo_engine_as_a_picture(data_dir, instance, desk_factory,
                                                           qtbot, tmp_path, desk_theme):
    """The demo profile's engine (three simulated venues, pairs and market maker trading)
    and a desk on it, every panel filled, kept as tests/artifacts/desk-main-window.png for a
    person to look at."""
    import os
    import re

    from PySide6.QtGui import QImage

    from tests.app._shots import ROOT as root, save_png
    from tests.conftest import EngineProc

    text = (root / "resources" / "profiles" / "demo.toml").read_text()
    text = re.sub(r'(?m)^instance = "demo"', f'instance = "{instance}"', text)
    prof = tmp_path / "demo.toml"
    prof.write_text(text)
    e = EngineProc(prof, instance, dict(os.environ, HELMDESK_DATA_DIR=str(data_dir))).start()
    try:
        w = desk_factory(instance)
        w.resize(1600, 1000)
        qtbot.waitUntil(lambda: w.role is not None, timeout=15_000)
        w.add_ladder("NQZ6")
        qtbot.waitUntil(lambda: all(p.ladder.model.best()[0] > 0 for p in w.ladders),
                        timeout=10_000)
        qtbot.waitUntil(lambda: w.tape.model.rowCount() > 5, timeout=10_000)
        qtbot.waitUntil(lambda: w.strategy_panel.table.rowCount() == 2, timeout=10_000)
        qtbot.waitUntil(lambda: w.blotter.model.rowCount() > 0, timeout=15_000)
        assert [p.symbol for p in w.ladders] == ["ESZ6", "NQZ6"]
        assert w.ladders[1].parentWidget().windowTitle() == "Ladder 2 NQZ6"
        assert w.status.state == "connected"
        w._each_second()
        w._redraw_charts()
        back = QImage(str(save_png(w, "desk-main-window.png")))
        assert (back.width(), back.height()) == (w.width(), w.height())
    finally:
        e.stop()
