"""The desk's order blotter against a real engine trading with a real venue process."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt

from tests.execution.test_engine_orders import USERS, venues_section
from tests.venue.test_server import INSTRUMENTS, venue_factory  # noqa: F401 (fixture)


def test_blotter_ticket_sends_orders_and_shows_their_life(venue_factory, engine_factory, instance,  # noqa: F811
                                                         desk_factory, qtbot):
    venue = venue_factory().start()
    engine_factory(instance, instruments=INSTRUMENTS, users=USERS,
                   extra=venues_section(("SIMA", venue.port))).start()
    w = desk_factory(instance)
    w.confirm = lambda title, text: True  # 200 is above the desk's confirmation size
    b = w.blotter
    qtbot.waitUntil(lambda: w.role is not None and b.venues_label.text() == "SIMA up", timeout=15_000)
    assert b.send_button.isEnabled() and b.send_button.text() == "Send AAA"
    assert b.venue_box.currentText() == "SIMA"
    # a limit buy from the ticket
    b.qty.setValue(200)
    b.price.setValue(99.5)
    qtbot.mouseClick(b.send_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: b.model.rowCount() == 1 and b.model._cells[0][6] == "New", timeout=10_000)
    cells = b.model._cells[0]
    assert cells[1:9] == ("SIMA", "AAA", "buy", "200", "99.5", "New", "0", "200")
    # the ack's coroutine may resume a moment after the row arrived on the event ring
    qtbot.waitUntil(lambda: b.status.text().startswith("Order: order "), timeout=5_000)
    assert "sent to SIMA: buy 200 AAA @ 99.5" in b.status.text()
    # an off-grid price is refused by the engine and the ticket says why
    b.price.setValue(99.5)
    b.price.setDecimals(3)
    b.price.setValue(99.503)
    qtbot.mouseClick(b.send_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "REJECTED" in b.status.text(), timeout=5_000)
    assert b.status.text() == "Order: REJECTED — price 99.503 is not on AAA's tick grid of 0.01"
    # the venue dies: the order is shown UNKNOWN, the venue DOWN, and the event log says so
    venue.stop()
    qtbot.waitUntil(lambda: b.model._cells[0][6] == "UNKNOWN", timeout=10_000)
    qtbot.waitUntil(lambda: b.venues_label.text() == "SIMA DOWN", timeout=5_000)
    qtbot.waitUntil(lambda: any("SIMA session DOWN" in x for x in w.eventlog.lines()), timeout=5_000)
    shot = os.environ.get("HELMDESK_SCREENSHOT_DIR")
    if shot:
        w.grab().save(os.path.join(shot, "desk-blotter.png"))
    # cancel selected: the engine refuses (venue down) and the reason is shown
    b.view.selectRow(0)
    qtbot.mouseClick(b.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: b.status.text().startswith("Cancel "), timeout=5_000)
    qtbot.waitUntil(lambda: "REJECTED" in b.status.text(), timeout=5_000)
    assert b.status.text().endswith("REJECTED — venue SIMA is not logged on")
