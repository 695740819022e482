"""The strategy panel shows what the engine publishes and asks for actions a trader may take."""

from __future__ import annotations

import numpy as np

from engine.core.records import SIGNAL_ROW, STRATEGY_ROW
from widgets.strategies import StrategyPanel


def _rows(states=(0, 1)) -> tuple[np.ndarray, np.ndarray]:
    rows = np.zeros(len(states), dtype=STRATEGY_ROW)
    for k, (name, kind, state) in enumerate(zip(("pairs", "mm"), ("pairs", "marketmaker"),
                                                states)):
        rows[k]["index"] = 5 + k
        rows[k]["name"] = name.encode()
        rows[k]["kind"] = kind.encode()
        rows[k]["state"] = state
        rows[k]["n_figures"] = 2
        rows[k]["fig_names"][:2] = (b"open", b"pnl")
        rows[k]["fig_values"][:2] = (3, -12.5)
    rows[0]["sig_cols"] = (b"z", b"beta", b"spread", b"position")
    sig = np.zeros(2, dtype=SIGNAL_ROW)
    sig[0] = (0, 1, b"AAA/BBB", (1.5, 0.5, 0.02, 0))
    sig[1] = (0, 0, b"CCC/DDD", (-2.25, 1.0, -0.1, 100))
    return rows, sig


def test_rows_figures_and_the_selected_strategys_signals(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows, sig = _rows()
    p.set_rows(rows, sig)
    assert p.row_texts("pairs") == ("pairs", "pairs", "RUNNING", "open 3   pnl -12.5")
    assert p.row_texts("mm")[2] == "PAUSED"
    assert p.summary.text() == "2 strategies, 1 running"
    # the first strategy is selected: its signals, by rank, under its own column names
    assert p.signal_texts() == [("CCC/DDD", "-2.25", "1", "-0.1", "100"),
                                ("AAA/BBB", "1.5", "0.5", "0.02", "0")]
    assert [p.signals.horizontalHeaderItem(c).text() for c in range(5)] == \
        ["Label", "z", "beta", "spread", "position"]


def test_buttons_follow_the_state_and_the_role(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows, sig = _rows((0, 1))
    p.set_rows(rows, sig)
    assert not p.pause_button.isEnabled()
    assert "only a trader" in p.pause_button.toolTip()
    p.set_role("trader")
    assert p.pause_button.isEnabled() and not p.resume_button.isEnabled()
    got = []
    p.action_requested.connect(lambda *a: got.append(a))
    p.pause_button.click()
    assert got == [(5, "pause", "pairs")]
    p.table.selectRow(1)  # the paused one
    assert p.resume_button.isEnabled() and not p.pause_button.isEnabled()
    p.resume_button.click()
    p.confirm_stop = False
    p.stop_button.click()
    assert got[1:] == [(6, "resume", "mm"), (6, "stop", "mm")]
    rows["state"][0] = 2  # halted by risk: resume is not the way out
    p.table.selectRow(0)
    p.set_rows(rows, sig)
    assert p.row_texts("pairs")[2] == "HALTED (risk)"
    assert not p.resume_button.isEnabled()


def test_no_strategies_says_so(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    p.set_rows(np.zeros(0, dtype=STRATEGY_ROW), np.zeros(0, dtype=SIGNAL_ROW))
    assert p.summary.text() == "this engine runs no strategies"
    assert p.signal_texts() == []


# -- the spread and z-score chart ------------------------------------------------------------------
_T0 = 1_767_000_000_000_000_000  # ns, the engine's clock


def _pairs(entry_exit=(2.0, 0.5), cols=(b"z", b"beta", b"spread", b"position")) -> np.ndarray:
    rows = np.zeros(1, dtype=STRATEGY_ROW)
    rows[0]["index"] = 7
    rows[0]["name"] = b"pairs"
    rows[0]["kind"] = b"pairs"
    names = [b"open", b"realized"] + ([b"entry_z", b"exit_z"] if entry_exit else [])
    rows[0]["n_figures"] = len(names)
    rows[0]["fig_names"][:len(names)] = names
    rows[0]["fig_values"][:len(names)] = [1, 12.5, *(entry_exit or ())]
    rows[0]["sig_cols"] = cols
    rows[0]["ts_ns"] = _T0
    return rows


def _signals(pairs: list[tuple[str, float, float]]) -> np.ndarray:
    """(label, z, spread) rows, ranked by |z| as the engine ranks them."""
    ranked = sorted(pairs, key=lambda p: -abs(p[1]))
    sig = np.zeros(len(ranked), dtype=SIGNAL_ROW)
    for rank, (label, z, spread) in enumerate(ranked):
        sig[rank] = (0, rank, label.encode(), (z, 1.1, spread, 0))
    return sig


def _feed(p: StrategyPanel, rows: np.ndarray, steps: list[list[tuple[str, float, float]]],
          dt_ns: int = 250_000_000) -> None:
    for pairs in steps:
        rows[0]["ts_ns"] += dt_ns
        p.set_rows(rows, _signals(pairs))


def _click_signal(qtbot, p: StrategyPanel, row: int) -> None:
    from PySide6.QtCore import Qt

    rect = p.signals.visualItemRect(p.signals.item(row, 0))
    qtbot.mouseClick(p.signals.viewport(), Qt.LeftButton, pos=rect.center())


def test_the_chart_follows_the_top_row_until_a_row_is_clicked(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    p.resize(520, 600)
    p.show()
    qtbot.waitExposed(p)
    rows = _pairs()
    _feed(p, rows, [[("NQZ6/ESZ6", 2.13, 4.25), ("CLZ6/BZZ6", -1.0, 0.5)]])
    assert p.chart_key() == (0, "NQZ6/ESZ6")
    assert p.chart_title() == "NQZ6/ESZ6  z 2.13  spread 4.25"
    assert p.signals.selectionModel().selectedRows()[0].row() == 0  # what is charted is lit
    # another pair takes the top: the chart goes with it
    _feed(p, rows, [[("NQZ6/ESZ6", 0.4, 1.0), ("CLZ6/BZZ6", -2.5, 0.9)]])
    assert p.chart_key() == (0, "CLZ6/BZZ6")
    assert p.chart_title() == "CLZ6/BZZ6  z -2.50  spread 0.9"
    # the trader clicks the second row: that pair stays charted whatever its rank
    _click_signal(qtbot, p, 1)
    assert p.chart_key() == (0, "NQZ6/ESZ6")
    _feed(p, rows, [[("NQZ6/ESZ6", 0.3, 0.8), ("CLZ6/BZZ6", -2.6, 1.2)]])
    assert p.chart_key() == (0, "NQZ6/ESZ6")
    assert p.signals.selectionModel().selectedRows()[0].row() == 1
    x, y = p.chart_series()["z"]
    assert list(y) == [2.13, 0.4, 0.3]
    p.follow_top()
    assert p.chart_key() == (0, "CLZ6/BZZ6")


def test_history_grows_only_when_the_engine_clock_moves(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows = _pairs()
    pairs = [("AAA/BBB", 2.0, 0.1)]
    _feed(p, rows, [pairs, pairs])
    t, v = p.history((0, "AAA/BBB"))
    assert len(t) == 2
    p.set_rows(rows, _signals([("AAA/BBB", 9.0, 9.0)]))  # the same snapshot time again
    p.set_rows(rows, _signals([("AAA/BBB", 9.0, 9.0)]))
    t, v = p.history((0, "AAA/BBB"))
    assert len(t) == 2 and v[-1, 0] == 2.0
    assert list(t) == [(_T0 + 250_000_000) / 1e9, (_T0 + 500_000_000) / 1e9]
    # a strategy row without a clock records nothing
    p2 = StrategyPanel()
    qtbot.addWidget(p2)
    r2 = _pairs()
    r2[0]["ts_ns"] = 0
    p2.set_rows(r2, _signals(pairs))
    assert p2.history((0, "AAA/BBB")) is None


def test_the_series_are_what_was_fed_and_redraw_only_on_a_new_point(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows = _pairs()
    zs = np.sin(np.arange(40) / 5.0) * 2.5
    spreads = np.cos(np.arange(40) / 7.0) * 3.0 + 10.0
    _feed(p, rows, [[("NQZ6/ESZ6", float(z), float(s))] for z, s in zip(zs, spreads)])
    series = p.chart_series()
    assert list(series) == ["spread", "z"]  # spread above z
    x, y = series["z"]
    np.testing.assert_array_equal(y, zs)
    np.testing.assert_array_equal(series["spread"][1], spreads)
    np.testing.assert_array_equal(x, (_T0 + 250_000_000 * np.arange(1, 41)) / 1e9)
    t, v = p.history((0, "NQZ6/ESZ6"))
    np.testing.assert_array_equal(v[:, 0], zs)
    np.testing.assert_array_equal(v[:, 1], 1.1)
    # a snapshot with no new time draws nothing: the curve keeps the very arrays it had
    curve = p.chart.curves[1]
    before = curve.getOriginalDataset()[1]
    p.set_rows(rows, _signals([("NQZ6/ESZ6", 0.0, 0.0)]))
    assert curve.getOriginalDataset()[1] is before
    _feed(p, rows, [[("NQZ6/ESZ6", 1.0, 2.0)]])
    assert curve.getOriginalDataset()[1] is not before
    assert p.chart_series()["z"][1][-1] == 1.0


def test_the_ring_keeps_the_latest_points(qtbot):
    p = StrategyPanel(history_points=16)
    qtbot.addWidget(p)
    rows = _pairs()
    _feed(p, rows, [[("AAA/BBB", float(k), float(-k))] for k in range(40)])
    t, v = p.history((0, "AAA/BBB"))
    assert list(v[:, 0]) == [float(k) for k in range(24, 40)]
    assert np.all(np.diff(t) > 0)
    np.testing.assert_array_equal(p.chart_series()["spread"][1], -v[:, 0])


def test_a_row_that_left_the_top_rows_breaks_its_line(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows = _pairs()
    a, b = ("AAA/BBB", 2.0, 1.0), ("CCC/DDD", 1.0, 0.5)
    _feed(p, rows, [[a, b], [a], [a, b]])
    t, v = p.history((0, "CCC/DDD"))
    assert len(t) == 3 and np.isnan(v[1]).all()  # the gap, at the time it came back
    assert t[1] == t[2]
    assert len(p.history((0, "AAA/BBB"))[0]) == 3


def test_the_clock_going_back_starts_the_history_again(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows = _pairs()
    _feed(p, rows, [[("AAA/BBB", 1.0, 1.0)]] * 5)
    rows[0]["ts_ns"] = _T0 - 10**9  # a replay rewound
    p.set_rows(rows, _signals([("AAA/BBB", 3.0, 3.0)]))
    t, v = p.history((0, "AAA/BBB"))
    assert list(v[:, 0]) == [3.0]


def test_entry_and_exit_lines_sit_at_the_strategys_figures(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows = _pairs(entry_exit=(2.25, 0.5))
    _feed(p, rows, [[("AAA/BBB", 1.0, 1.0)]])
    assert p.chart_levels() == [2.25, -2.25, 0.5, -0.5]
    key = p.chart.key_label.text()  # what the dashed lines are, beside the title
    assert "entry ±2.25" in key and "exit ±0.5" in key
    rows[0]["fig_values"][2] = 3.0  # a new entry level is drawn without a new point
    p.set_rows(rows, _signals([("AAA/BBB", 1.0, 1.0)]))
    assert p.chart_levels()[:2] == [3.0, -3.0]
    q = StrategyPanel()
    qtbot.addWidget(q)
    _feed(q, _pairs(entry_exit=None), [[("AAA/BBB", 1.0, 1.0)]])
    assert q.chart_levels() == [] and q.chart.key_label.text() == ""


def test_keys_beyond_the_bound_are_dropped_least_recently_seen_first(qtbot):
    p = StrategyPanel(history_keys=4)
    qtbot.addWidget(p)
    rows = _pairs()
    _feed(p, rows, [[("P0", 3.0, 0), ("P1", 2.0, 0), ("P2", 1.5, 0)],
                    [("P0", 3.0, 0), ("P3", 1.0, 0)]])  # P1, P2 last seen in the first call
    assert p.history_keys() == [(0, "P1"), (0, "P2"), (0, "P0"), (0, "P3")]
    _feed(p, rows, [[("P0", 3.0, 0), ("P4", 0.5, 0)]])
    assert p.history((0, "P1")) is None  # the least recently seen went
    assert p.history_keys() == [(0, "P2"), (0, "P3"), (0, "P0"), (0, "P4")]
    # a snapshot with more new rows than the bound: the older keys go, then the snapshot's
    # first rows are kept and the rest refused (no churn within one snapshot); P0, charted
    # when the snapshot came, stays
    many = [(f"Q{k}", 10.0 - k, 0) for k in range(6)]
    _feed(p, rows, [many])
    assert p.history_keys() == [(0, "P0"), (0, "Q0"), (0, "Q1"), (0, "Q2")]
    assert p._history.dropped_keys == 4 and p._history.refused_keys == 3
    assert p.chart_key() == (0, "Q0")


def test_the_charted_row_is_never_dropped(qtbot):
    p = StrategyPanel(history_keys=2)
    qtbot.addWidget(p)
    p.resize(520, 600)
    p.show()
    qtbot.waitExposed(p)
    rows = _pairs()
    _feed(p, rows, [[("P0", 3.0, 0), ("P1", 2.0, 0)]])
    _click_signal(qtbot, p, 1)
    assert p.chart_key() == (0, "P1")
    _feed(p, rows, [[("P0", 3.0, 0)], [("P2", 1.0, 0)]])
    assert p.chart_key() == (0, "P1")  # P1 was the least recently seen, but it is charted
    assert p.history((0, "P1")) is not None and p.history((0, "P0")) is None
    assert p.chart_title().endswith("(out of the top rows)")
    assert not p.signals.selectionModel().selectedRows()


def test_a_strategy_without_a_spread_column_charts_its_second(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows = _pairs(entry_exit=None, cols=(b"bid", b"ask", b"position", b"skew"))
    sig = np.zeros(1, dtype=SIGNAL_ROW)
    for k in range(3):
        rows[0]["ts_ns"] += 10**9
        sig[0] = (0, 0, b"ESZ6", (100.0 + k, 100.25 + k, 3, 0.1))
        p.set_rows(rows, sig)
    series = p.chart_series()
    assert list(series) == ["ask", "bid"]  # no z: the first column below
    assert list(series["ask"][1]) == [100.25, 101.25, 102.25]
    assert list(series["bid"][1]) == [100.0, 101.0, 102.0]
    assert p.chart_levels() == []
    assert p.chart_title() == "ESZ6  ask 102.2  bid 102"


def test_no_signal_columns_no_chart(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    rows, sig = _rows()
    p.show()
    p.set_rows(rows, sig)
    assert p.chart.isVisible()
    p.table.selectRow(1)  # the market maker in _rows() names no signal columns
    assert not p.chart.isVisible() and p.chart_key() is None


def test_stale_greys_the_chart(qtbot):
    p = StrategyPanel()
    qtbot.addWidget(p)
    p.show()
    _feed(p, _pairs(), [[("AAA/BBB", 1.0, 1.0)]])
    assert not p.chart.stale_label.isVisible()
    p.set_stale(True)
    assert p.chart.stale_label.isVisible() and p.chart.stale_label.text() == "STALE"
    assert p.chart.curves[1].opts["pen"].color().name() == "#6b6f76"
    p.set_stale(False)
    assert not p.chart.stale_label.isVisible()
    assert p.chart.curves[1].opts["pen"].color().name() != "#6b6f76"


def test_screenshot_at_dock_size(qtbot, desk_theme):
    """tests/artifacts/strategy-panel.png: a dock-sized panel, dark as the desk draws it."""
    from tests.app._shots import save_png

    p = StrategyPanel()
    qtbot.addWidget(p)
    p.resize(520, 600)
    p.show()
    qtbot.waitExposed(p)
    rows = _pairs()
    rng = np.random.default_rng(7)
    z = np.cumsum(rng.normal(0, 0.25, 60))
    others = [("CLZ6/BZZ6", 1.1, 0.42), ("GCZ6/SIZ6", -0.8, 12.5), ("ZNZ6/ZBZ6", 0.3, -0.07)]
    _feed(p, rows, [[("NQZ6/ESZ6", float(zk), float(4.0 + 0.6 * zk))] + others for zk in z],
          dt_ns=15 * 10**9)
    qtbot.wait(50)
    save_png(p, "strategy-panel.png")
    p.set_stale(True)
    qtbot.wait(50)
    save_png(p, "strategy-panel-stale.png")
    assert p.chart_key() == (0, "NQZ6/ESZ6") and len(p.chart_series()["z"][0]) == 60
