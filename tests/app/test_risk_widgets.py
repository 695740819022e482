"""The risk widgets on their own, fed the engine's numpy records (no engine running): what a
user sees, in-place updates, the signals their controls send, what each role may click.

``test_render_*`` also save each widget, themed and filled with a desk's worth of data, as a
PNG under tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontInfo
from PySide6.QtWidgets import QLineEdit

from engine.core.records import (
    KILL_ROW,
    LIMIT_ROW,
    POSITION_ROW,
    SCOPE_NAMES,
    VAR_ROW,
    KillState,
    Scope,
)
from tests.app._shots import save_png
from widgets import (
    KillSwitchPanel,
    LimitEditor,
    PositionsModel,
    PositionsTable,
    RiskPanel,
)
from widgets import killswitch as ks

NOW = 1_767_000_000 * 10**9  # a fixed wall clock for the tables' times
INSTRUMENTS = ["ESZ6", "FROZEN", "AAPL"]
DISPLAY, FG, ALIGN, FONT, TIP = (Qt.DisplayRole, Qt.ForegroundRole, Qt.TextAlignmentRole,
                                 Qt.FontRole, Qt.ToolTipRole)
RIGHT = int((Qt.AlignRight | Qt.AlignVCenter).value)


def clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).strftime("%H:%M:%S")


# -- data as the engine publishes it ----------------------------------------------------------------
def kill_rows() -> np.ndarray:
    spec = [  # scope, id, name, state, auto, user, reason, seconds ago, cooling-off left (s)
        (Scope.GLOBAL, 0, "global", KillState.ACTIVE, 0, "", "", 0, 0),
        (Scope.INSTRUMENT, 0, "instrument:ESZ6", KillState.ACTIVE, 0, "", "", 0, 0),
        (Scope.INSTRUMENT, 1, "instrument:FROZEN", KillState.REDUCING, 1, "engine",
         "stale market data: no update for 5,000 ms", 30, 30),
        (Scope.INSTRUMENT, 2, "instrument:AAPL", KillState.HALTED, 0, "alice",
         "fat finger on AAPL, checking the book", 300, 0),
        (Scope.STRATEGY, 0, "strategy:pairs", KillState.HALTED, 1, "engine",
         "daily_loss_limit 20,000 breached: -20,412.50", 45, 15),
        (Scope.STRATEGY, 1, "strategy:momo", KillState.REDUCING, 0, "bob",
         "news at 14:30, trim only", 600, 0),
        (Scope.VENUE, 0, "venue:SIMA", KillState.ACTIVE, 0, "", "", 0, 0),
        (Scope.VENUE, 1, "venue:SIMB", KillState.ACTIVE, 0, "carol", "session back, all clear",
         900, 0),
        (Scope.ACCOUNT, 0, "account:main", KillState.ACTIVE, 0, "", "", 0, 0),
        (Scope.TRADER, 0, "trader:alice", KillState.ACTIVE, 0, "", "", 0, 0),
    ]
    rows = np.zeros(len(spec), KILL_ROW)
    for r, (scope, sid, name, state, auto, user, reason, ago, cool) in enumerate(spec):
        rows[r] = (state, scope, auto, 0, sid, NOW - ago * 10**9 if ago else 0,
                   NOW + cool * 10**9 if cool else 0, name.encode(), user.encode(),
                   reason.encode())
    return rows


def limit_rows() -> np.ndarray:
    spec = [
        ("max_position", "instrument:ESZ6", 3, 50),
        ("max_orders_per_s", "venue:SIMA", 12, 50),
        ("max_exposure", "desk", 36_400_000, 50_000_000),
        ("daily_loss_limit", "strategy:pairs", 18_500, 20_000),
        ("max_open_orders", "strategy:momo", 1_000, 1_000),
        ("max_gross_position", "instrument:AAPL", math.nan, 200_000),
    ]
    rows = np.zeros(len(spec), LIMIT_ROW)
    for r, (key, scope, used, limit) in enumerate(spec):
        rows[r] = (key.encode(), scope.encode(), used, limit, used / limit)
    return rows


def var_rows() -> np.ndarray:
    rows = np.zeros(3, VAR_ROW)
    nan = math.nan
    rows[0] = (b"desk", 12_345.6, 20_111.2, 11_900.0, 16_800.4, 250, NOW - 5 * 10**9)
    rows[1] = (b"strategy:pairs", 8_020.0, 13_377.7, 7_650.0, 10_820.9, 250, NOW - 5 * 10**9)
    rows[2] = (b"strategy:momo", nan, nan, nan, nan, 12, 0)
    return rows


def position_rows() -> np.ndarray:
    nan = math.nan
    spec = [  # kind, id, instrument, qty, avg, realized, unrealized, fees, mark, wbuy, wsell, book
        (0, 0, 0, 3, 5000.25, 1_250.0, 3.75, 12.5, 5001.5, 2, 0, "desk"),
        (0, 0, 1, 500, 100.02, -80.0, nan, 4.0, nan, 0, 0, "desk"),
        (0, 0, 2, -200, 190.12, 310.0, -56.0, 6.0, 190.40, 0, 100, "desk"),
        (0, 0, -1, 0, 0.0, 1_480.0, -52.25, 22.5, nan, 0, 0, "desk"),
        (1, 0, 0, 2, 5000.5, 900.0, 2.0, 8.0, 5001.5, 0, 0, "strategy:pairs"),
        (1, 0, 2, -200, 190.12, 310.0, -56.0, 6.0, 190.40, 0, 100, "strategy:pairs"),
        (1, 0, -1, 0, 0.0, 1_210.0, -54.0, 14.0, nan, 0, 0, "strategy:pairs"),
    ]
    rows = np.zeros(len(spec), POSITION_ROW)
    for r, (kind, bid, ins, qty, avg, real, unreal, fees, mark, wb, ws, book) in enumerate(spec):
        rec = rows[r]
        rec["book_kind"], rec["book_id"], rec["instrument"], rec["qty"] = kind, bid, ins, qty
        rec["avg_px"], rec["realized"], rec["unrealized"], rec["fees"] = avg, real, unreal, fees
        rec["mark"], rec["working_buy"], rec["working_sell"] = mark, wb, ws
        rec["book"] = book.encode()
    return rows


def count(img, hexcolor: str) -> int:
    want = QColor(hexcolor).rgb()
    return sum(1 for y in range(img.height()) for x in range(img.width()) if img.pixel(x, y) == want)


# -- the codes the widgets copy ---------------------------------------------------------------------
def test_the_codes_widgets_copy_agree_with_the_engine():
    assert [ks.ACTIVE, ks.REDUCING, ks.HALTED] == [s.value for s in KillState]
    assert ks.STATE_NAMES == {s.value: s.name for s in KillState}
    assert ks.SCOPE_NAMES == tuple(SCOPE_NAMES[s] for s in Scope)
    assert ks.SCOPE_GLOBAL == Scope.GLOBAL


# -- RiskPanel --------------------------------------------------------------------------------------
def test_risk_panel_shows_one_gauge_per_limit_in_its_band(qtbot):
    p = RiskPanel()
    qtbot.addWidget(p)
    p.update(limit_rows(), var_rows(), -12_300.0, 50_000.0)
    assert [g.text for g in p.gauges] == [
        "max_position · instrument:ESZ6  3 / 50",
        "max_orders_per_s · venue:SIMA  12 / 50",
        "max_exposure · desk  36,400,000 / 50,000,000",
        "daily_loss_limit · strategy:pairs  18,500 / 20,000",
        "max_open_orders · strategy:momo  1,000 / 1,000",
        "max_gross_position · instrument:AAPL  n/a / 200,000",
    ]
    assert [g.percent for g in p.gauges] == ["6 %", "24 %", "73 %", "92 %", "100 %  BREACHED",
                                             "n/a"]
    assert [g.band for g in p.gauges] == ["calm", "calm", "amber", "red", "breached", "none"]
    assert p.gauges[2].fraction == pytest.approx(0.728)
    assert [g.colour().name() for g in p.gauges[2:5]] == ["#f0c674", "#ff6b6b", "#d6322a"]
    assert not p.no_limits.isVisible()
    # the bar is painted in its band's colour, filled as far as the fraction
    p.resize(420, 600)
    p.show()
    qtbot.waitExposed(p)
    amber = p.gauges[2].grab().toImage()
    calm = p.gauges[0].grab().toImage()
    assert count(amber, "#f0c674") > 10 * count(calm, "#3f8a5c") > 0


def test_the_pnl_gauge_fills_with_the_loss_and_reddens_near_the_limit(qtbot):
    p = RiskPanel()
    qtbot.addWidget(p)
    g = p.pnl_gauge
    p.set_pnl(4_210.5, 50_000.0)
    assert (g.text, g.percent, g.band) == ("Daily P&L  +4,210  ·  loss limit 50,000", "0 %", "calm")
    p.set_pnl(-36_000.0, 50_000.0)
    assert (g.percent, g.band) == ("72 %", "amber")
    p.set_pnl(-46_000.0, 50_000.0)
    assert (g.percent, g.band, g.colour().name()) == ("92 %", "red", "#ff6b6b")
    p.set_pnl(-51_000.0, 50_000.0)
    assert g.text == "Daily P&L  -51,000  ·  loss limit 50,000"
    assert (g.percent, g.band) == ("102 %  BREACHED", "breached")
    p.set_pnl(-12.5, 0.0)
    assert (g.text, g.percent) == ("Daily P&L  -12.50  ·  no loss limit", "n/a")


def test_var_rows_say_na_with_the_marks_they_had(qtbot, qtmodeltester):
    p = RiskPanel()
    qtbot.addWidget(p)
    p.update(limit_rows(), var_rows(), 0.0, 50_000.0)
    m = p.var_model
    qtmodeltester.check(m)
    assert m.row_texts(0) == ("desk", "12,346", "20,111", "11,900", "16,800", "250")
    assert m.data(m.index(0, 0), TIP) == f"computed at {clock(NOW - 5 * 10**9)}"
    assert m.row_texts(2) == ("strategy:momo", "n/a", "n/a", "n/a", "n/a", "12")
    assert m.data(m.index(2, 0), TIP) == "never computed"
    na = m.index(2, 1)
    assert m.data(na, FG).color().name() == "#7d838b"
    assert m.data(na, TIP) == "not available: 12 marks in the window, too few"
    assert m.data(m.index(0, 3), ALIGN) == RIGHT
    assert QFontInfo(m.data(m.index(0, 3), FONT)).fixedPitch()


def test_risk_panel_updates_in_place(qtbot):
    p = RiskPanel()
    qtbot.addWidget(p)
    limits, var = limit_rows(), var_rows()
    p.update(limits, var, -100.0, 50_000.0)
    gauges = list(p.gauges)
    limits[3]["used"], limits[3]["fraction"] = 19_900.0, 0.995
    var[1]["var99_param"] = 11_000.0
    m = p.var_model
    with qtbot.assertNotEmitted(m.modelReset), qtbot.assertNotEmitted(m.rowsInserted), \
            qtbot.waitSignal(m.dataChanged) as sig:
        p.update(limits, var, -100.0, 50_000.0)
    assert p.gauges == gauges and all(a is b for a, b in zip(p.gauges, gauges))
    assert p.gauges[3].text == "daily_loss_limit · strategy:pairs  19,900 / 20,000"
    assert p.gauges[3].percent == "100 %" and p.gauges[3].band == "red"  # 99.5 %: not yet
    assert (sig.args[0].row(), sig.args[0].column(), sig.args[1].column()) == (1, 4, 4)
    assert m.row_texts(1)[4] == "11,000"
    # fewer limits: the extra gauges go, the rest stay
    p.update(limits[:2], var, -100.0, 50_000.0)
    assert p.gauges == gauges[:2]
    p.update(limits[:0], var[:0], math.nan, 50_000.0)
    assert p.gauges == [] and m.rowCount() == 0 and p.pnl_gauge.text == "Daily P&L  n/a"
    assert not p.no_limits.isHidden()


# -- PositionsTable ---------------------------------------------------------------------------------
def test_positions_model_is_a_sound_qt_model(qtmodeltester):
    m = PositionsModel(INSTRUMENTS, [2, 2, 2])
    m.update(position_rows())
    qtmodeltester.check(m)


def test_positions_show_each_book_and_instrument_with_bold_totals(qtbot):
    t = PositionsTable(INSTRUMENTS, [2, 2, 2])
    qtbot.addWidget(t)
    t.update(position_rows())
    m = t.model
    assert m.row_of("desk", "ESZ6") == ("desk", "ESZ6", "3", "5,000.25", "5,001.50", "3.75",
                                        "1,250.00", "12.50", "2", "0")
    assert m.row_of("desk", "FROZEN") == ("desk", "FROZEN", "500", "100.02", "—", "—", "-80.00",
                                          "4.00", "0", "0")
    assert m.row_of("desk", "AAPL")[2] == "-200" and m.row_of("desk", "AAPL")[9] == "100"
    assert m.row_of("desk", "Total") == ("desk", "Total", "", "", "", "-52.25", "1,480.00",
                                         "22.50", "", "")
    aapl, total, esz6 = 2, 3, 0
    assert m.data(m.index(aapl, 5), FG).color().name() == "#ff6b6b"  # unrealized loss
    assert m.data(m.index(aapl, 6), FG).color().name() == "#8fe3ab"  # realized gain
    assert m.data(m.index(1, 5), FG).color().name() == "#7d838b"  # no mark: no P&L
    assert m.data(m.index(total, 0), FONT).bold() and m.data(m.index(total, 5), FONT).bold()
    assert m.data(m.index(esz6, 0), FONT) is None
    assert not m.data(m.index(esz6, 5), FONT).bold()
    for c in range(2, 10):
        assert m.data(m.index(esz6, c), ALIGN) == RIGHT
        assert QFontInfo(m.data(m.index(esz6, c), FONT)).fixedPitch()
    assert [t.book_box.itemText(i) for i in range(t.book_box.count())] == [
        "All books", "desk", "strategy:pairs"]


def test_positions_update_in_place_and_insert_only_new_keys(qtbot):
    m = PositionsModel(INSTRUMENTS)
    rows = position_rows()
    m.update(rows)
    objects = m.row_objects()
    rows[2]["unrealized"] = 24.0  # desk AAPL: from a loss to a gain
    with qtbot.assertNotEmitted(m.modelReset), qtbot.assertNotEmitted(m.rowsInserted), \
            qtbot.waitSignal(m.dataChanged) as sig:
        m.update(rows)
    assert (sig.args[0].row(), sig.args[0].column(), sig.args[1].row(), sig.args[1].column()) \
        == (2, 5, 2, 5)
    assert m.data(m.index(2, 5)) == "24.00"
    assert m.data(m.index(2, 5), FG).color().name() == "#8fe3ab"
    assert all(a is b for a, b in zip(m.row_objects(), objects))
    with qtbot.assertNotEmitted(m.dataChanged):
        m.update(rows)  # nothing changed, nothing repainted
    more = np.concatenate([rows, rows[:1]])
    more[-1]["book_kind"], more[-1]["book"] = 2, b"account:main"
    with qtbot.waitSignal(m.rowsInserted) as ins, qtbot.assertNotEmitted(m.modelReset):
        m.update(more)
    assert ins.args[1:] == [7, 7]
    assert m.row_of("account:main", "ESZ6")[0] == "account:main"
    assert all(a is b for a, b in zip(m.row_objects(), objects))


def test_positions_sort_with_totals_last_and_filter_by_book(qtbot):
    t = PositionsTable(INSTRUMENTS)
    qtbot.addWidget(t)
    t.update(position_rows())
    t.view.sortByColumn(5, Qt.AscendingOrder)  # unrealized
    shown = [(r[0], r[1], r[5]) for r in t.visible_rows()]
    assert shown[:5] == [("desk", "FROZEN", "—"), ("desk", "AAPL", "-56.00"),
                         ("strategy:pairs", "AAPL", "-56.00"), ("strategy:pairs", "ESZ6", "2.00"),
                         ("desk", "ESZ6", "3.75")]
    assert {r[1] for r in t.visible_rows()[5:]} == {"Total"}
    t.view.sortByColumn(5, Qt.DescendingOrder)
    assert [r[5] for r in t.visible_rows()][:2] == ["3.75", "2.00"]
    assert {r[1] for r in t.visible_rows()[5:]} == {"Total"}
    t.set_book_filter("strategy:pairs")
    assert t.book_box.currentText() == "strategy:pairs"
    assert [(r[0], r[1]) for r in t.visible_rows()] == [
        ("strategy:pairs", "ESZ6"), ("strategy:pairs", "AAPL"), ("strategy:pairs", "Total")]
    t.set_book_filter(None)
    assert len(t.visible_rows()) == 7


# -- KillSwitchPanel --------------------------------------------------------------------------------
@pytest.fixture
def panel(qtbot):
    p = KillSwitchPanel()
    qtbot.addWidget(p)
    p.set_stale(False)
    p.set_rows(kill_rows(), now_ns=NOW)
    return p


def test_kill_panel_shows_every_switch(panel):
    p = panel
    assert p.scope_table.rowCount() == 10
    assert p.row_texts("strategy:pairs") == (
        "strategy:pairs", "HALTED", "auto", "engine", clock(NOW - 45 * 10**9),
        f"15s (until {clock(NOW + 15 * 10**9)})", "daily_loss_limit 20,000 breached: -20,412.50")
    assert p.row_texts("instrument:AAPL")[1:4] == ("HALTED", "", "alice")
    assert p.row_texts("venue:SIMA") == ("venue:SIMA", "ACTIVE", "", "", "", "", "")
    colours = {name: p.scope_table.item(r, 1).foreground().color().name()
               for r, name in enumerate(["global", "instrument:ESZ6", "instrument:FROZEN"])}
    assert colours == {"global": "#8fe3ab", "instrument:ESZ6": "#8fe3ab",
                       "instrument:FROZEN": "#f0c674"}
    assert p.scope_table.item(3, 1).foreground().color().name() == "#ff6b6b"
    assert p.state_label.text() == "ARMED — trading allowed"
    # the global row drives the headline too
    rows = kill_rows()
    rows[0]["state"], rows[0]["user"], rows[0]["reason"] = KillState.REDUCING, b"bob", b"fed day"
    rows[0]["ts_ns"] = NOW
    p.set_rows(rows, now_ns=NOW)
    assert p.state_label.text() == f"REDUCING by bob at {clock(NOW)}\nfed day"
    assert p.state_label.property("state") == "reducing"
    rows[0]["state"] = KillState.HALTED
    p.set_rows(rows, now_ns=NOW)
    assert p.state_label.text().startswith("KILLED by bob")
    assert p.state_label.property("state") == "killed"


def test_a_row_updates_in_place(panel, qtbot):
    p = panel
    items = [p.scope_table.item(r, 0) for r in range(10)]
    buttons = p.row_buttons("strategy:momo")
    rows = kill_rows()
    rows[5]["state"], rows[5]["user"] = KillState.HALTED, b"dave"
    p.set_rows(rows, now_ns=NOW)
    assert all(p.scope_table.item(r, 0) is items[r] for r in range(10))
    assert p.row_buttons("strategy:momo") == buttons
    assert p.row_texts("strategy:momo")[1:4] == ("HALTED", "", "dave")
    assert p.scope_table.item(5, 1).foreground().color().name() == "#ff6b6b"


def test_one_click_trips_a_scope(panel, qtbot):
    p = panel
    reduce, halt, _ = p.row_buttons("strategy:momo")  # REDUCING now
    assert not reduce.isEnabled() and reduce.toolTip() == "strategy:momo is already REDUCING"
    with qtbot.waitSignal(p.trip_requested) as sig:
        qtbot.mouseClick(halt, Qt.LeftButton)
    assert sig.args == [int(Scope.STRATEGY), 1, int(KillState.HALTED), "strategy:momo"]
    reduce, halt, _ = p.row_buttons("venue:SIMA")
    with qtbot.waitSignal(p.trip_requested) as sig:
        qtbot.mouseClick(reduce, Qt.LeftButton)
    assert sig.args == [int(Scope.VENUE), 0, int(KillState.REDUCING), "venue:SIMA"]
    _, halt, _ = p.row_buttons("global")
    with qtbot.waitSignal(p.trip_requested) as sig:
        qtbot.mouseClick(halt, Qt.LeftButton)
    assert sig.args == [0, 0, 2, "global"]


def test_rearm_asks_why_and_for_the_name_typed_exactly(panel, qtbot):
    p = panel
    p.set_role("risk_manager")
    _, _, rearm = p.row_buttons("instrument:AAPL")
    assert rearm.isEnabled()
    qtbot.mouseClick(rearm, Qt.LeftButton)
    qtbot.waitUntil(lambda: p.rearm_dialog is not None and p.rearm_dialog.isVisible(),
                    timeout=2_000)
    dlg = p.rearm_dialog
    assert dlg.windowTitle() == "Re-arm instrument:AAPL"
    assert not dlg.ok_button.isEnabled()
    qtbot.keyClicks(dlg.confirm, "instrument:AAPL")
    assert not dlg.ok_button.isEnabled()  # no reason yet
    assert dlg.ok_button.toolTip() == "say why it is safe to trade again"
    qtbot.keyClicks(dlg.reason, "book checked with alice")
    assert dlg.ok_button.isEnabled()
    qtbot.keyClick(dlg.confirm, Qt.Key_Backspace)
    assert not dlg.ok_button.isEnabled()
    assert dlg.ok_button.toolTip() == "type instrument:AAPL exactly to confirm"
    qtbot.keyClicks(dlg.confirm, "l")  # a different case is not the name
    assert not dlg.ok_button.isEnabled()
    dlg.confirm.setText("instrument:AAPL ")  # nor with a space
    assert not dlg.ok_button.isEnabled()
    dlg.confirm.clear()
    qtbot.keyClicks(dlg.confirm, "instrument:AAPL")
    assert dlg.ok_button.isEnabled()
    with qtbot.waitSignal(p.rearm_scope_requested) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.LeftButton)
    assert sig.args == [int(Scope.INSTRUMENT), 2, "instrument:AAPL", "book checked with alice",
                        "instrument:AAPL"]
    qtbot.waitUntil(lambda: p.rearm_dialog is None, timeout=2_000)


def test_a_cancelled_rearm_sends_nothing(panel, qtbot):
    p = panel
    p.set_role("risk_manager")
    qtbot.mouseClick(p.row_buttons("strategy:momo")[2], Qt.LeftButton)
    qtbot.waitUntil(lambda: p.rearm_dialog is not None, timeout=2_000)
    dlg = p.rearm_dialog
    qtbot.keyClicks(dlg.reason, "x")
    qtbot.keyClicks(dlg.confirm, "strategy:momo")
    with qtbot.assertNotEmitted(p.rearm_scope_requested):
        dlg.reject()
    qtbot.waitUntil(lambda: p.rearm_dialog is None, timeout=2_000)


def test_what_each_role_may_click_and_why_not(panel):
    p = panel
    p.set_role("viewer")
    reduce, halt, rearm = p.row_buttons("venue:SIMA")
    why = "A viewer may only watch: tripping needs the trader or risk_manager role"
    assert not reduce.isEnabled() and reduce.toolTip() == why
    assert not halt.isEnabled() and halt.toolTip() == why
    assert not rearm.isEnabled()
    assert rearm.toolTip() == "A viewer may not re-arm: only a risk_manager may"
    assert not p.kill_button.isEnabled() and p.kill_button.toolTip() == why
    p.set_role("trader")
    reduce, halt, rearm = p.row_buttons("instrument:AAPL")  # HALTED by alice
    assert not reduce.isEnabled()
    assert reduce.toolTip() == "instrument:AAPL is HALTED, which is stricter: re-arm it to loosen"
    assert not halt.isEnabled() and halt.toolTip() == "instrument:AAPL is already HALTED"
    assert not rearm.isEnabled()
    assert rearm.toolTip() == "A trader may not re-arm: only a risk_manager may"
    assert p.row_buttons("venue:SIMA")[1].isEnabled() and p.kill_button.isEnabled()
    p.set_role("risk_manager")
    assert rearm.isEnabled() and rearm.toolTip().startswith("Re-arm instrument:AAPL")
    # an automatic trip cools off before anyone may re-arm it
    rearm_pairs = p.row_buttons("strategy:pairs")[2]
    assert not rearm_pairs.isEnabled()
    assert rearm_pairs.toolTip() == (f"Tripped by the engine: cooling off until "
                                     f"{clock(NOW + 15 * 10**9)}")
    p.set_rows(kill_rows(), now_ns=NOW + 16 * 10**9)
    assert rearm_pairs.isEnabled() and p.row_texts("strategy:pairs")[5] == ""
    assert not p.row_buttons("venue:SIMA")[2].isEnabled()
    assert p.row_buttons("venue:SIMA")[2].toolTip() == "venue:SIMA is ACTIVE: nothing to re-arm"
    p.set_stale(True)
    assert not p.row_buttons("venue:SIMA")[1].isEnabled()
    assert p.row_buttons("venue:SIMA")[1].toolTip() == "No engine data: the states shown may be old"
    with pytest.raises(ValueError, match="unknown role 'admin'"):
        p.set_role("admin")


def test_a_row_stays_pending_until_the_caller_clears_it(panel, qtbot):
    p = panel
    p.set_role("risk_manager")
    seen = []
    p.pending_changed.connect(lambda pending, text: seen.append((pending, text)))
    p.set_pending(True, "Halt strategy:momo: waiting for the engine's ack", name="strategy:momo")
    assert p.row_texts("strategy:momo")[1] == "REDUCING"
    assert p.row_pending("strategy:momo") == "waiting for the engine's ack…"
    assert p.row_pending("venue:SIMA") == ""
    _, halt, rearm = p.row_buttons("strategy:momo")
    assert not halt.isEnabled() and not rearm.isEnabled()
    assert halt.toolTip() == ("Waiting for the engine's ack: Halt strategy:momo: waiting for the "
                              "engine's ack")
    assert p.kill_button.isEnabled()  # one row's command holds up nothing else
    assert p.row_buttons("venue:SIMA")[1].isEnabled()
    p.set_rows(kill_rows(), now_ns=NOW)  # a snapshot before the ack: still pending
    assert p.row_pending("strategy:momo") == "waiting for the engine's ack…"
    rows = kill_rows()
    rows[5]["state"] = KillState.HALTED
    p.set_rows(rows, now_ns=NOW)
    p.set_pending(False, "Halt strategy:momo: confirmed by engine", name="strategy:momo")
    assert p.row_texts("strategy:momo")[1] == "HALTED" and p.row_pending("strategy:momo") == ""
    assert p.pending_label.text() == "Halt strategy:momo: confirmed by engine"
    assert rearm.isEnabled() and not halt.isEnabled()
    assert seen == [(True, "Halt strategy:momo: waiting for the engine's ack"),
                    (False, "Halt strategy:momo: confirmed by engine")]


# -- LimitEditor ------------------------------------------------------------------------------------
@pytest.fixture
def editor(qtbot):
    e = LimitEditor()
    qtbot.addWidget(e)
    e.set_limits(limit_rows())
    e.resize(560, 320)
    e.show()
    qtbot.waitExposed(e)
    return e


def test_limit_editor_shows_the_limits_and_is_read_only_but_for_a_risk_manager(editor, qtmodeltester):
    e = editor
    m = e.model
    qtmodeltester.check(m)
    assert m.row_of("desk", "max_exposure") == ("max_exposure", "desk", "50,000,000", "")
    assert m.row_of("strategy:pairs", "daily_loss_limit")[2] == "20,000"
    value = m.index(2, 2)
    for role in ("viewer", "trader"):
        e.set_role(role)
        assert not m.flags(value) & Qt.ItemIsEditable
        assert m.data(value, TIP) == f"Only a risk_manager may change limits (you are {role})"
        assert not e.edit_button.isEnabled() and e.edit_button.toolTip() == m.data(value, TIP)
        assert e.hint.text() == f"Read only: only a risk_manager may change limits (you are {role})."
    e.set_role("risk_manager")
    assert m.flags(value) & Qt.ItemIsEditable and e.edit_button.isEnabled()
    assert not m.flags(m.index(2, 0)) & Qt.ItemIsEditable  # only the value


def test_a_limit_edit_asks_why_then_emits_the_values(editor, qtbot):
    e = editor
    e.set_role("risk_manager")
    e.view.selectRow(3)  # daily_loss_limit · strategy:pairs
    qtbot.mouseClick(e.edit_button, Qt.LeftButton)
    line = e.view.viewport().findChild(QLineEdit)
    qtbot.waitUntil(lambda: line is not None and line.isVisible(), timeout=2_000)
    line.selectAll()
    qtbot.keyClicks(line, "25,000")
    qtbot.keyClick(line, Qt.Key_Return)
    qtbot.waitUntil(lambda: e.dialog is not None and e.dialog.isVisible(), timeout=2_000)
    dlg = e.dialog
    assert not dlg.ok_button.isEnabled()
    qtbot.keyClicks(dlg.reason, "new capital for pairs")
    with qtbot.waitSignal(e.limit_change_requested) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.LeftButton)
    assert sig.args == ["strategy:pairs", "daily_loss_limit", 25_000.0, "new capital for pairs"]
    m = e.model
    assert m.row_of("strategy:pairs", "daily_loss_limit") == (
        "daily_loss_limit", "strategy:pairs", "20,000", "pending: 20,000 → 25,000")
    assert m.data(m.index(3, 3), FG).color().name() == "#f0c674"
    assert not m.flags(m.index(3, 2)) & Qt.ItemIsEditable  # one change at a time
    e.set_result("strategy:pairs", "daily_loss_limit", True, "daily_loss_limit now 25,000")
    assert m.row_of("strategy:pairs", "daily_loss_limit")[3] == "accepted: daily_loss_limit now 25,000"
    assert m.data(m.index(3, 3), FG).color().name() == "#8fe3ab"
    with qtbot.waitSignal(m.dataChanged), qtbot.assertNotEmitted(m.rowsInserted):
        e.set_limits([("strategy:pairs", "daily_loss_limit", 25e3)])
    assert m.row_of("strategy:pairs", "daily_loss_limit")[2] == "25,000"
    e.set_result("desk", "max_exposure", False, "user bob is trader here and may not SET_LIMIT")
    assert m.row_of("desk", "max_exposure")[3] == (
        "rejected: user bob is trader here and may not SET_LIMIT")
    assert m.data(m.index(2, 3), FG).color().name() == "#ff6b6b"


def test_a_limit_edit_that_is_no_number_is_not_sent(editor, qtbot):
    e = editor
    e.set_role("risk_manager")
    m = e.model
    with qtbot.assertNotEmitted(m.edit_requested):
        assert not m.setData(m.index(0, 2), "fifty")
        assert not m.setData(m.index(1, 2), "-5")
    assert m.row_of("instrument:ESZ6", "max_position")[3] == "not sent: 'fifty' is not a number"
    assert m.row_of("venue:SIMA", "max_orders_per_s")[3] == "not sent: a limit may not be negative"
    with qtbot.assertNotEmitted(m.edit_requested):
        m.setData(m.index(0, 2), "50")  # the same value: nothing to ask
    assert e.dialog is None


# -- pictures for a person to look at ---------------------------------------------------------------
def test_render_risk_panel(qtbot, desk_theme):
    p = RiskPanel()
    qtbot.addWidget(p)
    p.update(limit_rows(), var_rows(), -38_250.0, 50_000.0)
    p.resize(560, 560)
    p.show()
    qtbot.waitExposed(p)
    img = p.grab().toImage()
    assert count(img, "#f0c674") > 200  # the amber P&L bar and exposure gauge
    save_png(p, "risk_panel.png")


def test_render_positions(qtbot, desk_theme):
    t = PositionsTable(INSTRUMENTS, [2, 2, 2])
    qtbot.addWidget(t)
    t.update(position_rows())
    t.resize(960, 280)
    t.show()
    qtbot.waitExposed(t)
    save_png(t, "positions.png")


def test_render_kill_panel(qtbot, desk_theme):
    p = KillSwitchPanel()
    qtbot.addWidget(p)
    p.set_stale(False)
    p.set_role("risk_manager")
    p.set_rows(kill_rows(), now_ns=NOW)
    p.set_pending(True, "Halt strategy:momo: pending — waiting for the engine's ack",
                  name="strategy:momo")
    p.resize(1000, 560)
    p.show()
    qtbot.waitExposed(p)
    save_png(p, "kill_panel.png")
    p.resize(480, 560)  # as wide as the desk's right dock: the buttons must still show
    qtbot.waitUntil(lambda: p.width() == 480, timeout=2_000)
    buttons = p.row_buttons("global")[2].parentWidget()
    right = buttons.mapTo(p.scope_table.viewport(), buttons.rect().topRight()).x()
    assert right <= p.scope_table.viewport().width()
    save_png(p, "kill_panel_narrow.png")
    qtbot.mouseClick(p.row_buttons("instrument:AAPL")[2], Qt.LeftButton)
    qtbot.waitUntil(lambda: p.rearm_dialog is not None and p.rearm_dialog.isVisible(),
                    timeout=2_000)
    qtbot.keyClicks(p.rearm_dialog.reason, "book checked with alice")
    qtbot.keyClicks(p.rearm_dialog.confirm, "instrument:AAP")
    save_png(p.rearm_dialog, "rearm_dialog.png")
    p.rearm_dialog.reject()


def test_render_limit_editor(desk_theme, editor, qtbot):
    e = editor
    e.set_role("risk_manager")
    e.set_pending("strategy:pairs", "daily_loss_limit", "pending: 20,000 → 25,000")
    e.set_result("desk", "max_exposure", False, "above the desk's hard cap")
    e.set_result("instrument:ESZ6", "max_position", True, "max_position now 50")
    e.resize(640, 300)
    save_png(e, "limit_editor.png")


def test_recon_table_shows_differences_open_first_and_settles_with_a_reason(qtbot, monkeypatch):
    from engine.core.records import RECON_ROW
    from widgets import ReconTable

    w = ReconTable()
    qtbot.addWidget(w)
    rows = np.zeros(2, dtype=RECON_ROW)
    rows[0] = (1, 1, 0, 0, 0, 0, 4, 7, 5, b"T-1-9", b"accepted by rita: venue blotter")
    rows[1] = (2, 0, 1, 0, 0, 0, 10, 12, 6, b"AAPL", b"position AAPL: engine +10, venue +12")
    w.set_rows(rows)
    assert w.table.item(0, 0).text() == "2" and w.table.item(0, 1).text() == "OPEN"
    assert w.row_texts(1)[1:3] == ("accepted", "order")
    assert w.row_texts(2)[4:6] == ("+10", "+12")
    assert w.summary.text().startswith("1 difference to settle")
    w.table.selectRow(0)
    assert not w.accept_button.isEnabled()  # a viewer or trader does not settle
    assert "only a risk manager" in w.accept_button.toolTip()
    w.set_role("risk_manager")
    assert w.accept_button.isEnabled() and w.correct_button.isEnabled()
    monkeypatch.setattr("widgets.recon.QInputDialog.getText",
                        lambda *a, **k: ("the venue is right", True))
    with qtbot.waitSignal(w.settle_requested) as sig:
        w.correct_button.click()
    assert sig.args == [2, True, "the venue is right"]
    w.table.selectRow(1)  # a settled one: nothing to do
    assert not w.accept_button.isEnabled()
