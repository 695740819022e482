"""The desk's main window: docks for the ladder, chart, kill switches and events."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import datetime

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QToolBar,
    QWidget,
    QSizePolicy,
)

from app.link import EngineLink, Health
from app.theme import apply_theme
from engine.core.profile import DeskConfig
from engine.core.roles import Role
from engine.core.ticks import tick_decimals
from engine.ipc import IpcError, Scope, Verb
from engine.ipc.layout import H
from engine.runtime import EventKind
from widgets import ConnectionStatus, EventLog, KillSwitchPanel, LadderWidget, PriceChart

__all__ = ["DeskWindow", "run_desk_window"]


class DeskWindow(QMainWindow):
    def __init__(self, instance: str, desk: DeskConfig | None = None, *, instrument: str | None = None,
                 poll_ms: int = 50) -> None:
        super().__init__()
        desk = desk or DeskConfig()
        self.instance = instance
        self.setWindowTitle(f"Helmdesk — {instance}")
        self.setObjectName("deskWindow")
        self.resize(1400, 860)
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks)
        self.link = EngineLink(instance, stale_ms=desk.stale_ms, poll_ms=poll_ms,
                               workstation=desk.name, parent=self)
        self._want_symbol = instrument
        self._instruments = ()
        self._next_status = 0.0
        self.role: Role | None = None

        # widgets
        self.ladder = LadderWidget()
        self.chart = PriceChart()
        self.killpanel = KillSwitchPanel()
        self.eventlog = EventLog()
        self.status = ConnectionStatus()
        self.counters = QLabel("")
        self.counters.setObjectName("counters")

        self.setCentralWidget(self.chart)
        self.ladder_dock = self._dock("Ladder", self.ladder, Qt.LeftDockWidgetArea)
        self.kill_dock = self._dock("Kill switches", self.killpanel, Qt.RightDockWidgetArea)
        self.events_dock = self._dock("Events", self.eventlog, Qt.BottomDockWidgetArea)

        tb = QToolBar("Instrument")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.addWidget(QLabel(" Instrument "))
        self.instrument_box = QComboBox()
        self.instrument_box.setMinimumWidth(140)
        self.instrument_box.currentIndexChanged.connect(self._select)
        tb.addWidget(self.instrument_box)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        tb.addWidget(spacer)
        self.role_label = QLabel("role: ?")
        self.role_label.setObjectName("roleLabel")
        tb.addWidget(self.role_label)
        self.addToolBar(tb)
        self.statusBar().addPermanentWidget(self.status, 1)
        self.statusBar().addPermanentWidget(self.counters)

        # wiring
        self.link.attached.connect(self._on_attached)
        self.link.health_changed.connect(self._on_health)
        self.link.book.connect(self._on_book)
        self.link.kill.connect(self._on_kill)
        self.link.events.connect(self._on_events)
        self.link.role.connect(self._on_role)
        self.link.refused.connect(self._on_refused)
        self.killpanel.kill_clicked.connect(lambda: self._spawn(self.kill_global()))
        self.killpanel.rearm_requested.connect(lambda r: self._spawn(self.rearm_global(r)))
        self._chart_timer = QTimer(self)
        self._chart_timer.setInterval(500)  # a glance chart: 2 Hz is plenty, and cheap
        self._chart_timer.timeout.connect(self.chart.redraw)
        self._tasks: set[asyncio.Task] = set()

    def _dock(self, title: str, w: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(title.replace(" ", "") + "Dock")
        d.setWidget(w)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, d)
        return d

    def start(self) -> None:
        self.link.start()
        self._chart_timer.start()

    # -- link events --------------------------------------------------------------------------------
    def _on_attached(self, instruments) -> None:
        self._instruments = instruments
        current = self.instrument_box.currentText() or self._want_symbol
        self.instrument_box.blockSignals(True)
        self.instrument_box.clear()
        for ins in instruments:
            self.instrument_box.addItem(ins.symbol)
        idx = max(0, self.instrument_box.findText(current)) if current else 0
        self.instrument_box.setCurrentIndex(idx)
        self.instrument_box.blockSignals(False)
        self._select(idx)
        # after the engine's own earlier events, which this same poll is about to drain
        line = f"{_now()}  attached to engine {self.instance!r} (pid {self.link.client.pid})"
        QTimer.singleShot(0, lambda: self.eventlog.append([line]))

    def _select(self, idx: int) -> None:
        if not 0 <= idx < len(self._instruments):
            return
        ins = self._instruments[idx]
        self.link.select_instrument(idx)
        self.ladder.set_symbol(ins.symbol, tick_decimals(ins.tick))
        self.chart.clear()
        self.chart.plot.setTitle(f"{ins.symbol} mid", color="#c8ccd2")

    def _on_health(self, h: Health) -> None:
        # a state change shows at once; the heartbeat figure twice a second (each new text
        # repaints the status bar, and that is most of what an idle desk would spend)
        now = time.monotonic()
        if h.state != self.status.state or now >= self._next_status:
            self._next_status = now + 0.5
            self.status.set_health(h.state, h.text)
            c = self.link.client
            if c is not None:
                self.counters.setText(
                    f"commands {c.counter(H.CMDS_ACCEPTED)} ok / {c.counter(H.CMDS_REJECTED)} rejected"
                    f" · feed events {c.counter(H.FEED_EVENTS):,}"
                )
        stale = h.state != "connected"
        why = h.text if stale else ""
        if stale != self.ladder.model.stale or (stale and self.ladder.banner.text() != f"STALE — {why}"):
            self.ladder.set_stale(stale, why)
        self.chart.set_stale(stale)
        self.killpanel.set_stale(stale)

    def _on_book(self, i: int, rec) -> None:
        if i != self.link.instrument:
            return
        self.ladder.set_book(rec["bid_px"], rec["bid_sz"], rec["ask_px"], rec["ask_sz"],
                             float(rec["last_px"]), float(rec["last_sz"]))
        b, a = float(rec["bid_px"][0]), float(rec["ask_px"][0])
        if b and a:
            self.chart.append(rec["ts_event_ns"] / 1e9, (a + b) / 2)

    def _on_kill(self, rows) -> None:
        g = rows[0]
        when = datetime.fromtimestamp(g["ts_ns"] / 1e9).strftime("%H:%M:%S") if g["ts_ns"] else ""
        self.killpanel.set_state(bool(g["tripped"]), g["user"].decode(errors="replace"),
                                 g["reason"].decode(errors="replace"), when)
        self.killpanel.set_instruments(
            [(ins.symbol, bool(rows[1 + ins.index]["tripped"])) for ins in self._instruments
             if 1 + ins.index < len(rows)]
        )

    def _on_events(self, recs, lost: int) -> None:
        lines = []
        for r in recs:
            t = datetime.fromtimestamp(r["ts_ns"] / 1e9).strftime("%H:%M:%S.%f")[:-3]
            kind = EventKind.NAMES.get(int(r["kind"]), "?")
            lines.append(f"{t}  {kind:<7} {r['text'].decode(errors='replace')}")
        self.eventlog.append(lines)
        self.eventlog.set_lost(lost)

    def _on_role(self, role: Role) -> None:
        self.role = role
        self.role_label.setText(f"role: {role.label} ")
        self.killpanel.set_can_rearm(role is Role.RISK_MANAGER)

    def _on_refused(self, msg: str) -> None:
        self.eventlog.append([f"{_now()}  REFUSED: {msg}"])

    # -- commands -----------------------------------------------------------------------------------
    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, label: str, verb: Verb, text: str = "") -> None:
        self.killpanel.set_pending(True, f"{label}: pending — waiting for the engine's ack")
        try:
            ack = await self.link.command(verb, Scope.GLOBAL, 0, text=text)
        except asyncio.TimeoutError:
            self.killpanel.set_pending(False, f"{label}: NO ACK within 2 s — engine not responding")
            return
        except IpcError as e:
            self.killpanel.set_pending(False, f"{label}: not sent — {e}")
            return
        if ack.accepted:
            self.killpanel.set_pending(False, f"{label}: confirmed by engine — {ack.reason}")
        else:
            self.killpanel.set_pending(False, f"{label}: REJECTED — {ack.reason}")
        self.link.poll()  # show the engine's state now, not at the next tick

    async def kill_global(self) -> None:
        await self._send("KILL", Verb.KILL, "KILL button on desk")

    async def rearm_global(self, reason: str) -> None:
        await self._send("Re-arm", Verb.REARM, reason)

    def closeEvent(self, event) -> None:
        self.link.close()
        for t in list(self._tasks):
            t.cancel()
        super().closeEvent(event)


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


def run_desk_window(instance: str, desk: DeskConfig, *, instrument: str | None = None,
                    exit_after: float | None = None, screenshot: str | None = None) -> int:
    """Create the QApplication and qasync loop, show the desk, run until it closes."""
    os.environ.setdefault("QT_API", "pyside6")
    import qasync

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Helmdesk")
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    win = DeskWindow(instance, desk, instrument=instrument)
    closed = asyncio.Event()

    def _quit() -> None:
        if screenshot:
            win.grab().save(screenshot)
            print(f"helmdesk: screenshot saved to {screenshot}", file=sys.stderr)
        win.close()

    app.lastWindowClosed.connect(closed.set)
    # Ctrl-C / SIGTERM close the desk like its window's close button. Python runs signal
    # handlers between any two bytecodes (the link's poll timer gives it a chance every 50 ms),
    # so the handler only schedules the close for the event loop's next turn.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: QTimer.singleShot(0, win.close))
    win.start()
    win.show()
    if exit_after:
        QTimer.singleShot(int(exit_after * 1000), _quit)
    with loop:
        loop.run_until_complete(closed.wait())
    return 0

