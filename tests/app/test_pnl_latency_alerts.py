"""The P&L chart, latency histograms, alerts panel and audit log on their own, fed plain arrays
and dataclasses (no engine): what each draws or shows, the signals their controls send, the
alert sound (an injected ``beep`` counts its calls) and the caps.

``test_render_*`` save each widget, themed and filled, as a PNG under tests/artifacts/ for a
person to look at.
"""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontInfo

from tests.app._shots import save_png
from widgets import (
    Alert,
    AlertsModel,
    AlertsPanel,
    AuditLogModel,
    AuditLogView,
    LatencyHistogram,
    LatencyPanel,
    PnlChart,
)
from widgets.auditlog import KIND_FILTERS
from widgets.latency import EDGES_US, format_us

DAY0 = calendar.timegm((2026, 12, 4, 0, 0, 0))  # 2026-12-04 00:00:00 UTC, in s
T0 = DAY0 * 10**9 + 10 * 3600 * 10**9  # 2026-12-04 10:00:00 UTC, in ns


def local_clock(ts_ns: int, millis: bool = True) -> str:
    s = time.strftime("%H:%M:%S", time.localtime(ts_ns // 10**9))
    return f"{s}.{ts_ns // 10**6 % 1000:03d}" if millis else s


# == PnlChart =====================================================================================
@pytest.fixture
def chart(qtbot):
    c = PnlChart(capacity=16)
    qtbot.addWidget(c)
    return c


def test_pnl_draws_the_desk_and_each_strategy(chart):
    chart.append(DAY0 + 1.0, 10.0, {"pairs": 4.0})
    chart.append(DAY0 + 2.0, 12.0, {"pairs": 5.0, "momo": -1.0})  # momo starts here
    chart.append(DAY0 + 3.0, 9.0, {"momo": -2.0})  # pairs left out: a gap
    chart.redraw()
    assert chart.names() == ["desk", "pairs", "momo"]
    x, y = chart.series("desk")
    np.testing.assert_array_equal(x, DAY0 + np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(y, [10.0, 12.0, 9.0])
    np.testing.assert_array_equal(chart.series("pairs")[1], [4.0, 5.0, np.nan])
    np.testing.assert_array_equal(chart.series("momo")[1], [np.nan, -1.0, -2.0])
    # the desk's line is the thick one and lies over the others
    assert chart.curve("desk").opts["pen"].widthF() > chart.curve("pairs").opts["pen"].widthF()
    assert chart.curve("desk").zValue() > chart.curve("pairs").zValue()
    assert chart.legend.getLabel(chart.curve("momo")).text == "momo"


def test_pnl_redraw_does_nothing_unless_a_point_came(chart, qtbot):
    chart.append(DAY0 + 1.0, 1.0, {})
    chart.redraw()
    with qtbot.assertNotEmitted(chart.curve("desk").sigPlotChanged):
        chart.redraw()
    with qtbot.waitSignal(chart.curve("desk").sigPlotChanged):
        chart.append(DAY0 + 2.0, 2.0, {})
        chart.redraw()


def test_pnl_arrays_grow_by_doubling_and_keep_every_point(chart):
    for k in range(100):
        chart.append(DAY0 + k, float(k), {"s": -float(k)})
    chart.redraw()
    x, y = chart.series("desk")
    np.testing.assert_array_equal(y, np.arange(100.0))
    np.testing.assert_array_equal(chart.series("s")[1], -np.arange(100.0))
    assert chart._cap == 128  # 16 doubled three times


def test_pnl_drops_a_point_out_of_time_order(chart):
    chart.append(DAY0 + 5.0, 1.0, {})
    chart.append(DAY0 + 5.0, 2.0, {})
    chart.append(DAY0 + 4.0, 3.0, {})
    chart.redraw()
    assert chart.dropped == 2
    np.testing.assert_array_equal(chart.series("desk")[1], [1.0])


def test_pnl_loss_limit_line(chart):
    assert chart.limit_line_value() is None
    chart.set_daily_loss_limit(50_000.0)
    assert chart.limit_line_value() == -50_000.0
    assert chart.limit_label() == "daily loss limit -50,000"
    assert chart.limit_line.pen.style() == Qt.DashLine
    chart.set_daily_loss_limit(float("nan"))
    assert chart.limit_line_value() is None
    chart.set_daily_loss_limit(250.5)  # cents only below 1,000
    assert chart.limit_line_value() == -250.5 and chart.limit_label().endswith(" -250.50")
    chart.set_daily_loss_limit(None)
    assert chart.limit_line_value() is None


def test_pnl_load_refuses_series_of_other_lengths_and_the_desk_name(chart):
    with pytest.raises(ValueError, match="2 values for 'pairs' and 3 times"):
        chart.load(np.arange(3.0), np.zeros(3), {"pairs": np.zeros(2)})
    with pytest.raises(ValueError, match="do not increase"):
        chart.load(np.array([1.0, 1.0]), np.zeros(2), {})
    with pytest.raises(ValueError, match="named 'desk'"):
        chart.append(1.0, 0.0, {"desk": 1.0})


def test_pnl_a_day_of_seconds_loads_appends_and_fits(chart, qtbot):
    n = 86_400
    ts = DAY0 + np.arange(n - 1, dtype=np.float64)
    rng = np.random.default_rng(7)
    desk = np.cumsum(rng.normal(0, 50, n - 1))
    chart.load(ts, desk, {"pairs": desk / 2, "momo": desk / 3})
    chart.append(DAY0 + n - 1, 123.0, {"pairs": 1.0, "momo": 2.0})
    chart.set_daily_loss_limit(1e6)  # far below the P&L: the range still reaches it
    chart.resize(900, 400)
    chart.show()
    qtbot.waitExposed(chart)
    chart.redraw()
    x, y = chart.series("desk")
    assert len(x) == n and x[-1] == DAY0 + n - 1 and y[-1] == 123.0
    vb = chart.plot.getPlotItem().vb

    def fits() -> bool:  # the view box auto-ranges when it next paints
        (x0, x1), (y0, y1) = vb.viewRange()
        return x0 <= DAY0 and x1 >= DAY0 + n - 1 and y0 <= -1e6 <= y1 and x1 - x0 < 1.2 * n

    qtbot.waitUntil(fits)
    curve = chart.curve("desk")
    assert curve.opts["clipToView"] and curve.opts["autoDownsample"]
    assert curve.opts["downsampleMethod"] == "peak"
    assert len(curve.getData()[0]) < n / 10  # pixels' worth, not a day's
    assert chart.curve("pairs").opts["autoDownsample"]
    vb.setXRange(DAY0 + 3600, DAY0 + 7200, padding=0)  # zoomed into one hour: clipped to it
    qtbot.waitUntil(lambda: curve.getData()[0][-1] < DAY0 + 7300)
    assert curve.getData()[0][0] > DAY0 + 3500


def test_pnl_stale_greys_the_lines_and_says_so(chart):
    chart.append(DAY0, 1.0, {"pairs": 1.0})
    chart.set_stale(True)
    assert chart.stale_label.isVisibleTo(chart) and chart.stale_label.text() == "STALE"
    assert {chart.curve(n).opts["pen"].color().name() for n in chart.names()} == {"#6b6f76"}
    chart.set_stale(False)
    assert not chart.stale_label.isVisibleTo(chart)
    assert chart.curve("desk").opts["pen"].color().name() != "#6b6f76"


# == LatencyHistogram ===========================================================================
def expected_percentile(samples: np.ndarray, q: float) -> float:
    """The documented rule, stated on the raw samples: the upper edge of the bucket holding the
    sample of rank ceil(q/100 * n)."""
    s = np.sort(samples)
    v = s[max(1, math.ceil(q / 100 * len(s))) - 1]
    return float(EDGES_US[np.searchsorted(EDGES_US, v, side="right")])


def test_histogram_layout_is_four_buckets_a_power_of_two():
    e = EDGES_US
    assert e[0] == 0.0 and e[1] == 1.0 and math.isinf(e[-1])
    assert e[5] == 2.0 and e[9] == 4.0 and e[-2] == 2.0**24  # 16.8 s, above 10 s
    np.testing.assert_allclose(e[2:-1] / e[1:-2], 2 ** 0.25)
    h = LatencyHistogram()
    assert len(h.counts) == len(e) - 1 == h.edges_us.size - 1


def test_histogram_percentiles_from_known_samples():
    rng = np.random.default_rng(3)
    samples = rng.lognormal(np.log(40.0), 0.8, 10_000)
    h = LatencyHistogram()
    h.add_many(samples)
    assert h.count == 10_000
    for q in (0, 1, 50, 90, 99, 99.9, 100):
        p = h.percentile(q)
        assert p == expected_percentile(samples, q), q
        assert p >= np.percentile(samples, q, method="inverted_cdf")  # never understates
    # one value, many times: every percentile is the upper edge of its bucket
    h = LatencyHistogram()
    for _ in range(100):
        h.add(10.0)  # 2^3.32: bucket [2^3.25, 2^3.5)
    assert h.percentile(50) == h.percentile(99) == 2 ** 3.5
    assert h.max_bucket() == (2 ** 3.25, 2 ** 3.5)


def test_histogram_edges_below_and_above_and_empty():
    h = LatencyHistogram()
    assert math.isnan(h.percentile(50)) and h.max_bucket() is None
    assert h.title("tick") == "tick  n=0"
    h.add(2.0)  # exactly an edge: the bucket it starts
    assert h.counts[5] == 1
    h.add(0.25)
    assert h.counts[0] == 1 and h.percentile(0) == 1.0
    h.add(1e9)  # above 16.8 s: the last bucket
    assert h.counts[-1] == 1 and math.isinf(h.percentile(100))
    assert h.title("x").endswith("p99 >16.8 s  max bucket >16.8 s")
    with pytest.raises(ValueError, match="q=101"):
        h.percentile(101)


def test_histogram_add_many_merge_and_add_agree():
    rng = np.random.default_rng(5)
    samples = rng.uniform(0.5, 5e4, 2_000)
    one, many, merged = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in samples:
        one.add(float(v))
    many.add_many(samples)
    np.testing.assert_array_equal(one.counts, many.counts)
    merged.merge_counts(many.counts)
    merged.merge_counts(many.counts)
    np.testing.assert_array_equal(merged.counts, 2 * many.counts)
    with pytest.raises(ValueError, match="merge_counts was given 3 counts"):
        merged.merge_counts(np.zeros(3))


def test_histogram_title_text():
    h = LatencyHistogram()
    h.add_many(np.full(99, 10.0))
    h.add(1000.0)  # [2^9.75, 2^10) = [861, 1024) µs
    assert h.title("order rtt") == (
        "order rtt  n=100  p50 11.3 µs  p99 11.3 µs  max bucket 861 µs–1.02 ms")
    assert format_us(0.85) == "850 ns" and format_us(2.38e6) == "2.38 s"


# == LatencyPanel ===============================================================================
def test_latency_panel_draws_published_counts_as_given(qtbot):
    p = LatencyPanel()
    qtbot.addWidget(p)
    edges = np.array([0.0, 10.0, 100.0, 1000.0, np.inf])
    p.set_histogram("engine: tick→order", edges, np.array([0, 90, 9, 1]))
    assert p.redraw() == ["engine: tick→order"]
    assert p.title("engine: tick→order") == (
        "engine: tick→order  n=100  p50 100 µs  p99 1 ms  max bucket >1 ms")
    x, heights = p.bars("engine: tick→order")
    np.testing.assert_array_equal(x, [0, 1, 2, 3])
    np.testing.assert_allclose(heights, [0, 1 + np.log10(90), 1 + np.log10(9), 1])
    assert p.percentile_lines("engine: tick→order") == (1.5, 2.5)  # right sides of the bars
    # running totals again: replaced, not added
    p.set_histogram("engine: tick→order", edges, np.array([0, 180, 18, 2]))
    p.redraw()
    assert "n=200" in p.title("engine: tick→order")
    # unchanged counts: nothing to draw
    p.set_histogram("engine: tick→order", edges, np.array([0, 180, 18, 2]))
    assert p.redraw() == []


def test_latency_panel_redraws_only_the_histograms_that_changed(qtbot):
    p = LatencyPanel()
    qtbot.addWidget(p)
    rtt = p.histogram("command rtt")
    assert p.histogram("command rtt") is rtt
    rtt.add_many(np.array([120.0, 130.0, 5000.0]))
    p.set_histogram("feed", EDGES_US, np.eye(1, len(EDGES_US) - 1, 20, dtype=np.int64)[0])
    assert p.redraw() == ["command rtt", "feed"]
    assert p.names() == ["command rtt", "feed"]
    assert p.redraw() == []
    rtt.add(140.0)
    assert p.redraw() == ["command rtt"]
    assert p.title("command rtt").startswith("command rtt  n=4  p50 152 µs")
    p.set_stale(True)  # everything redraws grey
    assert p.stale_label.isVisibleTo(p)
    assert p._blocks["feed"].bars.opts["brush"] == "#6b6f76"


# == Alerts =====================================================================================
def alert(seq: int, level: str = "warning", source: str = "risk", text: str | None = None):
    return Alert(seq, T0 + seq * 1_500_000_123, level, source, text or f"alert number {seq}")


@pytest.fixture
def beeps():
    return []


@pytest.fixture
def panel(qtbot, beeps):
    p = AlertsPanel(beep=lambda: beeps.append(1), repeat_s=0.02)
    qtbot.addWidget(p)
    return p


def test_alerts_model_is_a_sound_qt_model(qtmodeltester):
    m = AlertsModel(max_rows=4)
    m.add_alerts([alert(1), alert(2, "critical")])
    m.set_acked(1, "alice", T0)
    m.add_alerts([alert(3), alert(4), alert(5)])
    qtmodeltester.check(m)


def test_an_alert_must_have_a_known_level():
    with pytest.raises(ValueError, match="alert 7 level was 'info'"):
        Alert(7, T0, "info", "x", "y")


def test_alerts_newest_on_top_formatted_and_coloured(panel):
    panel.add_alerts([alert(1, "critical", "venue:SIMA", "session SIMA down"), alert(2)])
    m = panel.model
    assert m.row(0) == (local_clock(T0 + 2 * 1_500_000_123), "WARNING", "risk",
                        "alert number 2", "NEW")
    assert m.row(1) == (local_clock(T0 + 1_500_000_123), "CRITICAL", "venue:SIMA",
                        "session SIMA down", "NEW")
    assert m.row(1)[0].endswith(".500")  # milliseconds
    fg = [m.data(m.index(r, 3), Qt.ForegroundRole).color().name() for r in (0, 1)]
    assert fg == ["#f0c674", "#ff6b6b"]
    assert QFontInfo(m.data(m.index(0, 0), Qt.FontRole)).fixedPitch()
    assert m.data(m.index(0, 0), Qt.TextAlignmentRole) == int(
        (Qt.AlignRight | Qt.AlignVCenter).value)


def test_a_new_batch_beeps_once_and_a_known_alert_is_not_new(panel, beeps, qtbot):
    with qtbot.waitSignal(panel.unacknowledged_changed) as sig:
        panel.add_alerts([alert(1), alert(2), alert(3)])
    assert sig.args == [3] and beeps == [1]
    inserts = []
    panel.model.rowsInserted.connect(lambda _p, a, b: inserts.append((a, b)))
    panel.add_alerts([alert(2), alert(3)])  # already shown: no row, no sound
    assert beeps == [1] and inserts == []
    panel.add_alerts([alert(3), alert(4)])
    assert beeps == [1, 1] and inserts == [(0, 0)] and panel.model.rowCount() == 4
    assert not panel.repeat.isActive()  # warnings only: no repeat
    assert panel.count_label.text() == "4 unacknowledged"


def test_an_unacknowledged_critical_alert_beeps_again_until_acknowledged(panel, beeps, qtbot):
    panel.add_alerts([alert(1, "critical"), alert(2)])
    assert beeps == [1] and panel.repeat.isActive()
    assert panel.count_label.text() == "2 unacknowledged (1 critical)"
    qtbot.waitUntil(lambda: len(beeps) >= 3)
    panel.set_acked(1, "alice", T0 + 5 * 10**9)
    assert not panel.repeat.isActive()
    assert panel.model.row(1)[4] == f"ack by alice {local_clock(T0 + 5 * 10**9, False)}"
    assert panel.unacknowledged() == 1


def test_acknowledge_asks_for_each_selected_new_alert(panel, qtbot):
    panel.add_alerts([alert(1, "critical", text="venue SIMA down"), alert(2), alert(3)])
    panel.show()
    qtbot.waitExposed(panel)
    panel.view.selectRow(2)  # alert 1
    with qtbot.waitSignal(panel.ack_requested) as sig:
        qtbot.mouseClick(panel.ack_button, Qt.LeftButton)
    assert sig.args == [1, "venue SIMA down"]
    assert panel.model.row(2)[4] == "ack sent…"
    assert panel.unacknowledged() == 3  # acknowledged once the engine says so
    got = []
    panel.ack_requested.connect(lambda seq, text: got.append((seq, text)))
    panel.view.selectAll()
    panel.view.setFocus()
    qtbot.keyClick(panel.view, Qt.Key_Return)  # alert 1 is sent already: not again
    assert got == [(2, "alert number 2"), (3, "alert number 3")]
    got.clear()
    qtbot.keyClick(panel.view, Qt.Key_Space)
    assert got == []
    with qtbot.waitSignal(panel.unacknowledged_changed) as sig:
        panel.set_acked(1, "alice", T0)
    assert sig.args == [2]
    m = panel.model
    assert m.row(2)[4].startswith("ack by alice ")
    assert m.data(m.index(2, 3), Qt.ForegroundRole).color().name() == "#7d838b"  # dimmed
    assert m.data(m.index(2, 3), Qt.BackgroundRole) is None


def test_a_failed_acknowledgement_says_why_and_the_alert_is_new_again(panel):
    panel.add_alerts([alert(1)])
    panel.view.selectRow(0)
    panel.acknowledge_selected()
    panel.set_ack_failed(1, "engine not connected")
    assert panel.model.row(0)[4] == "NEW"
    assert panel.status.text() == "alert 1 not acknowledged: engine not connected"
    assert "#ff8a80" in panel.status.styleSheet()
    assert panel.acknowledge_selected() == 1  # it can be asked again


def test_mute_stops_the_sound_never_the_alerts(panel, beeps, qtbot):
    qtbot.mouseClick(panel.mute_button, Qt.LeftButton)
    assert panel.muted and panel.mute_button.text() == "Muted"
    panel.add_alerts([alert(1, "critical")])
    assert beeps == [] and not panel.repeat.isActive()
    assert panel.model.rowCount() == 1 and panel.unacknowledged() == 1
    panel.set_muted(False)
    assert not panel.mute_button.isChecked() and panel.repeat.isActive()
    qtbot.waitUntil(lambda: len(beeps) >= 1)


def test_the_cap_drops_acknowledged_alerts_first_and_counts_any_other(qtbot, beeps):
    p = AlertsPanel(beep=lambda: beeps.append(1), max_rows=4)
    qtbot.addWidget(p)
    p.add_alerts([alert(1), alert(2), alert(3)])
    p.set_acked(1, "bob", T0)
    p.set_acked(3, "bob", T0)
    p.add_alerts([alert(4), alert(5)])  # 5 rows for 4: the oldest acknowledged (1) goes
    m = p.model
    assert [m.alert_at(r).seq for r in range(m.rowCount())] == [5, 4, 3, 2]
    p.add_alerts([alert(6)])  # then 3, the other acknowledged one, not 2
    assert [m.alert_at(r).seq for r in range(m.rowCount())] == [6, 5, 4, 2]
    assert m.dropped_unacknowledged == 0 and p.status.text() == ""
    p.add_alerts([alert(7, "critical"), alert(8)])  # all unacknowledged: must drop 2, and says so
    assert [m.alert_at(r).seq for r in range(m.rowCount())] == [8, 7, 6, 5]
    assert m.dropped_unacknowledged == 2
    assert p.status.text().startswith("2 unacknowledged alerts dropped")
    assert p.unacknowledged() == 4


# == Audit log ==================================================================================
@dataclass(frozen=True, slots=True)
class EngineEntry:
    """The shape of the engine's AuditEntry (who/what/answer)."""

    ts_ns: int
    kind: str
    who: str
    role: str
    workstation: str
    what: str
    answer: str


def audit_rows():
    return [
        (T0, "commands", "alice", "trader", "ws-07", "KILL global: fat finger"),
        (T0 + 1_000, "kills", "alice", "trader", "ws-07", "global ACTIVE -> HALTED"),
        (T0 + 2_500_000_000, "orders", "", "", "", "C17 buy 100 ESZ6 @ 5,012.25 on SIMA"),
        (T0 + 3_000_000_000, "executions", "", "", "", "C17 filled 100 @ 5,012.25"),
        EngineEntry(T0 + 4_000_000_000, "limits", "carol", "risk_manager", "ws-01",
                    "desk max_exposure 1,000,000 -> 1,200,000", "accepted"),
    ]


def test_audit_models_are_sound_qt_models(qtmodeltester, qtbot):
    v = AuditLogView()
    qtbot.addWidget(v)
    v.set_entries(audit_rows())
    qtmodeltester.check(v.model)
    v.set_kind_filter("orders")
    qtmodeltester.check(v.proxy)


def test_audit_rows_newest_first_utc_to_the_microsecond(qtbot):
    v = AuditLogView()
    qtbot.addWidget(v)
    v.set_entries(audit_rows())
    rows = v.shown_rows()
    assert rows[0] == ("2026-12-04 10:00:04.000000Z", "limit", "carol", "risk_manager", "ws-01",
                       "desk max_exposure 1,000,000 -> 1,200,000  => accepted")
    assert rows[3] == ("2026-12-04 10:00:00.000001Z", "kill", "alice", "trader", "ws-07",
                       "global ACTIVE -> HALTED")
    assert rows[2][2:5] == ("-", "-", "-")
    assert [r[1] for r in rows] == ["limit", "execution", "order", "kill", "command"]
    assert v.status.text() == "5 entries to 10:00:04"
    assert QFontInfo(v.view.font()).fixedPitch()


def test_audit_filters_by_kind_and_text(qtbot):
    v = AuditLogView()
    qtbot.addWidget(v)
    v.set_entries(audit_rows())
    assert list(KIND_FILTERS) == [v.kind_box.itemText(i) for i in range(v.kind_box.count())]
    v.kind_box.setCurrentText("kills")
    assert [r[5] for r in v.shown_rows()] == ["global ACTIVE -> HALTED"]
    v.set_kind_filter("all")
    v.set_text_filter("C17")
    assert [r[1] for r in v.shown_rows()] == ["execution", "order"]
    assert v.shown_label.text() == "showing 2 of 5"
    v.set_text_filter("WS-07")  # any case, any column
    assert len(v.shown_rows()) == 2
    v.set_kind_filter("commands")
    assert [r[5] for r in v.shown_rows()] == ["KILL global: fat finger"]
    v.set_text_filter("")
    v.set_kind_filter("all")
    assert len(v.shown_rows()) == 5 and v.shown_label.text() == "5 rows"
    v.text_edit.setText("carol")  # typing: applied after a pause
    qtbot.waitUntil(lambda: len(v.shown_rows()) == 1)


def test_audit_refresh_and_status(qtbot):
    v = AuditLogView()
    qtbot.addWidget(v)
    with qtbot.waitSignal(v.refresh_requested):
        qtbot.mouseClick(v.refresh_button, Qt.LeftButton)
    v.set_status("loading…")
    assert v.status.text() == "loading…" and "#ff8a80" not in v.status.styleSheet()
    v.set_status("audit read failed: database is locked", error=True)
    assert "#ff8a80" in v.status.styleSheet()


def test_audit_twenty_thousand_rows_in_one_reset(qtbot):
    v = AuditLogView()
    qtbot.addWidget(v)
    kinds = ["commands", "orders", "executions", "kills", "limits"]
    rows = [(T0 + k * 1_000_000, kinds[k % 5], f"user{k % 7}", "trader", "ws-01",
             f"entry {k}") for k in range(20_000)]
    resets = []
    v.model.modelReset.connect(lambda: resets.append(1))
    with qtbot.assertNotEmitted(v.model.rowsInserted):
        v.set_entries(rows)
    assert resets == [1] and v.model.rowCount() == 20_000
    assert v.model.row(0)[5] == "entry 19999"
    v.set_kind_filter("kills")
    assert v.proxy.rowCount() == 4_000
    v.set_text_filter("entry 1999")
    assert [r[5] for r in v.shown_rows()] == ["entry 19998", "entry 19993"]


# == pictures ===================================================================================
def test_render_pnl_chart(qtbot, desk_theme):
    c = PnlChart()
    qtbot.addWidget(c)
    rng = np.random.default_rng(11)
    n = 9 * 3600  # 08:00 to 17:00 UTC
    ts = DAY0 + 8 * 3600 + np.arange(n, dtype=np.float64)
    strategies = {name: np.cumsum(rng.normal(drift, vol, n)) for name, drift, vol in
                  (("pairs", 0.3, 12.0), ("momo", -0.6, 18.0), ("mm", 0.1, 6.0))}
    desk = sum(strategies.values())
    c.load(ts, desk, strategies)
    c.set_daily_loss_limit(25_000)
    c.resize(900, 420)
    c.show()
    qtbot.waitExposed(c)
    c.redraw()
    save_png(c, "pnl_chart.png")


def test_render_latency_panel(qtbot, desk_theme):
    p = LatencyPanel()
    qtbot.addWidget(p)
    rng = np.random.default_rng(2)
    p.histogram("engine: tick→book").add_many(rng.lognormal(np.log(6.0), 0.45, 200_000))
    p.histogram("desk: command round trip").add_many(
        np.concatenate([rng.lognormal(np.log(900.0), 0.5, 3_000), [45_000.0, 2.5e6]]))
    counts = np.zeros(len(EDGES_US) - 1, np.int64)
    counts[30:52] = (rng.random(22) * 400).astype(np.int64) + 1
    p.set_histogram("engine: order→ack", EDGES_US, counts)
    p.resize(760, 620)
    p.show()
    qtbot.waitExposed(p)
    p.redraw()
    save_png(p, "latency_panel.png")


def test_render_alerts_panel(qtbot, desk_theme, beeps):
    p = AlertsPanel(beep=lambda: beeps.append(1))
    qtbot.addWidget(p)
    p.add_alerts([
        Alert(101, T0, "warning", "feed:SIMB", "no update for 2,000 ms on ESZ6"),
        Alert(102, T0 + 3 * 10**9, "critical", "venue:SIMA", "FIX session SIMA down: "
              "heartbeat missed (30 s)"),
        Alert(103, T0 + 9 * 10**9, "critical", "strategy:pairs",
              "daily_loss_limit 20,000 breached: -20,412.50; strategy halted"),
        Alert(104, T0 + 12 * 10**9, "warning", "risk", "desk max_exposure at 91 %"),
    ])
    p.set_acked(101, "alice", T0 + 60 * 10**9)
    p.view.selectRow(1)
    p.acknowledge_selected()
    p.set_ack_failed(103, "engine not connected")
    p.resize(860, 260)
    p.show()
    qtbot.waitExposed(p)
    save_png(p, "alerts_panel.png")


def test_render_audit_log(qtbot, desk_theme):
    v = AuditLogView()
    qtbot.addWidget(v)
    v.set_entries(audit_rows())
    v.resize(1100, 260)
    v.show()
    qtbot.waitExposed(v)
    save_png(v, "audit_log.png")
