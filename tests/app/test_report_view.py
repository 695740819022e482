"""The desk's view of a backtest report folder: the metrics a user reads, the chart, the CSV
files opening in a table; a missing folder or one that is not a report says so."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from widgets.report import ReportView, load_report

DAY = "2026-11-23"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A real report folder: a backtest with scripted orders over a made-up day, and its
    chart."""
    from engine.backtest.node import BacktestNode
    from engine.backtest.synth import simulate_day
    from engine.core.profile import load_profile
    from tests.backtest.test_backtest import INTENTS, PROFILE

    d = tmp_path_factory.mktemp("report")
    prof = d / "bt.toml"
    prof.write_text(PROFILE)
    simulate_day(load_profile(prof), d / "ticks", DAY, 6.0)
    (d / "i.csv").write_text(INTENTS)
    out = d / "out"
    BacktestNode(load_profile(prof), DAY, out=out, ticks_dir=d / "ticks", intents=d / "i.csv",
                 capital=50_000.0, progress=False).run()
    return out


@pytest.fixture
def drawn(report, qapp):
    from app.reportchart import render

    render(report)
    return report


def _cell(view, label: str, column: int = 1) -> str:
    t = view.metrics
    for r in range(t.rowCount()):
        if t.item(r, 0).text() == label:
            return t.item(r, column).text()
    raise AssertionError(f"no metric {label!r}")


def test_the_view_shows_the_metrics_a_user_reads(qtbot, drawn):
    s = json.loads((drawn / "summary.json").read_text())
    m = s["metrics"]
    view = ReportView.open(drawn)
    qtbot.addWidget(view)
    assert view.isVisible() and view.report is not None
    assert view.title.text() == f"Backtest bt.toml {DAY}"
    assert "seed" not in view.facts.text() and "capital 50000.0" in view.facts.text()
    headers = [view.metrics.horizontalHeaderItem(c).text()
               for c in range(view.metrics.columnCount())]
    assert headers == ["Metric", "desk", "strategy:script"]
    assert _cell(view, "Total P&L") == f"{m['total_pnl']:,.2f}"
    assert _cell(view, "Fees") == f"{m['fees']:,.2f}"
    assert _cell(view, "Max drawdown") == f"{m['max_drawdown']:,.2f}"
    assert _cell(view, "Max drawdown % of capital") == f"{m['max_drawdown_pct']:.2f} %"
    assert _cell(view, "Orders") == str(m["orders"]) == str(s["orders"])
    assert _cell(view, "Fill ratio (orders with a fill)") == f"{100 * m['fill_ratio_orders']:.1f} %"
    sharpe = _cell(view, "Sharpe (annualised)")
    assert sharpe == ("–" if m["sharpe"] is None else f"{m['sharpe']:,.2f}")
    assert _cell(view, "Realized P&L (net of fees)", 2) == "–"  # the desk's figure only
    assert not view.chart.pixmap().isNull() and view.chart.pixmap().width() == 1200
    files = [view.files.item(k).text() for k in range(view.files.count())]
    assert files == ["metrics.csv", "equity.csv", "trades.csv", "orders.csv", "executions.csv",
                     "positions.csv"]


def test_a_csv_opens_in_a_table_tab_once(qtbot, drawn):
    view = ReportView()
    qtbot.addWidget(view)
    assert view.load(drawn)
    item = view.files.findItems("executions.csv", Qt.MatchExactly)[0]
    view.files.itemClicked.emit(item)
    assert view.tabs.count() == 2 and view.tabs.tabText(1) == "executions.csv"
    table = view.tabs.currentWidget()
    model = table.model()
    with open(drawn / "executions.csv") as f:
        lines = f.read().splitlines()
    assert model.rowCount() == len(lines) - 1 > 0
    assert [model.headerData(c, Qt.Horizontal)
            for c in range(model.columnCount())] == lines[0].split(",")
    assert model.index(0, 1).data() == lines[1].split(",")[1]
    assert view.open_csv("executions.csv") is table and view.tabs.count() == 2
    view.open_csv("trades.csv")
    assert view.tabs.count() == 3
    view.tabs.tabCloseRequested.emit(1)
    assert view.tabs.count() == 2 and view.tabs.tabText(1) == "trades.csv"
    view.tabs.tabCloseRequested.emit(0)  # the chart stays
    assert view.tabs.count() == 2


def test_a_missing_folder_is_a_message_not_a_crash(qtbot, tmp_path):
    view = ReportView.open(tmp_path / "nope")
    qtbot.addWidget(view)
    assert view.report is None and not view.message.isHidden()
    assert view.message.text() == f"{tmp_path / 'nope'}: no such folder"
    assert view.title.text() == "No backtest report" and view.body.isHidden()
    assert view.open_csv("orders.csv") is None
    # a folder that is not a report; then a report: the view recovers
    assert not view.load(tmp_path)
    assert "not a backtest report (no summary.json" in view.message.text()
    (tmp_path / "summary.json").write_text("[1, 2")
    assert not view.load(tmp_path) and "cannot read" in view.message.text()


def test_a_report_without_a_chart_or_metrics_still_shows(qtbot, tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"profile": "p.toml", "days": [DAY],
                                                        "files": ["orders.csv"]}))
    (tmp_path / "orders.csv").write_text("ts_ns,cl_ord_id\n1,A\n")
    (tmp_path / "extra.csv").write_text("x\n1\n")
    r = load_report(tmp_path)
    assert r.chart is None and r.metrics == [] and r.files == ["orders.csv", "extra.csv"]
    view = ReportView()
    qtbot.addWidget(view)
    assert view.load(tmp_path)
    assert "equity.png was not drawn" in view.chart.text() and view.metrics.rowCount() == 0


def test_the_desk_opens_a_report_from_its_file_menu(qtbot, drawn, desk_factory, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    desk = desk_factory("no-such-engine-for-reports")
    menu = desk.menuBar().actions()[0]
    assert menu.text() == "&File"
    assert [a.text() for a in menu.menu().actions() if a.text()] == [
        "Open backtest report…", "Save as PNG", "Close desk"]
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(drawn))
    desk.open_report_action.trigger()
    assert len(desk.reports) == 1
    view = desk.reports[0]
    assert view.isVisible() and view.isWindow() and view.report is not None
    assert view.title.text() == f"Backtest bt.toml {DAY}"
    view.close()  # deletes itself
    qtbot.waitUntil(lambda: not desk.reports, timeout=5000)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    desk.open_report_action.trigger()  # cancelled: nothing opens
    assert desk.reports == []


def test_the_desk_saves_a_panel_or_itself_as_png(qtbot, desk_factory, monkeypatch, tmp_path):
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QFileDialog

    desk = desk_factory("no-such-engine-for-pngs")
    desk.png_menu.aboutToShow.emit()  # as opening the menu does: the panels there now
    actions = {a.text(): a for a in desk.png_menu.actions() if a.text()}
    assert {"Whole window", "Ladder", "Orders", "Strategies", "Kill switches"} <= set(actions)
    asked = []

    def save_to(parent, title, default, *a):
        asked.append((title, default))
        return str(tmp_path / "shots" / "ladder.png"), "PNG images (*.png)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_to)
    actions["Ladder"].trigger()
    assert asked[0][0] == "Save Ladder as PNG" and "/screenshots/ladder-" in asked[0][1]
    img = QImage(str(tmp_path / "shots" / "ladder.png"))
    assert (img.width(), img.height()) == (desk.ladder_dock.widget().width(),
                                           desk.ladder_dock.widget().height())
    assert f"saved {tmp_path / 'shots' / 'ladder.png'}" in "\n".join(desk.eventlog.lines())
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert not desk.save_png(desk, blocker / "x.png")  # its folder is a file
    assert f"cannot save {blocker / 'x.png'}: " in "\n".join(desk.eventlog.lines())
