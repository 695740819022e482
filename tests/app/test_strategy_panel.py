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
