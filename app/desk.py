"""The desk's main window: docks for the ladder, chart, kill switches and events."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QSizePolicy,
    QToolBar,
    QWidget,
)

from app.link import EngineLink, Health
from app.theme import apply_theme
from engine.core.paths import data_dir
from engine.core.profile import DeskConfig
from engine.core.roles import Role
from engine.core.ticks import tick_decimals
from engine.ipc import IpcError, Scope, Verb
from engine.ipc.commands import STRATEGY_ACTIONS, confirmation_code, order_text
from engine.ipc.events import decode_order, event_text
from engine.ipc.layout import BOOK_CROSSED, BOOK_LOCKED, EventKind, H
from widgets import (
    BlotterWidget,
    ConnectionStatus,
    EventLog,
    FeedHealth,
    KillSwitchPanel,
    LadderWidget,
    LimitEditor,
    PositionsTable,
    PriceChart,
    ReconTable,
    ReportView,
    RiskPanel,
    StrategyPanel,
)

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
        self.blotter = BlotterWidget()
        self.status = ConnectionStatus()
        self.feeds = FeedHealth()
        self.counters = QLabel("")
        self.counters.setObjectName("counters")
        self.risk = RiskPanel()
        self.limits = LimitEditor()
        self.recon = ReconTable()
        self.strategy_panel = StrategyPanel()
        self._strategies_shown = False
        self.positions = PositionsTable(())  # rebuilt with the engine's instruments on attach
        self._kill_rows = None
        self._recon_shown = False

        self.setCentralWidget(self.chart)
        self.chart.setMinimumWidth(300)  # docks do not squeeze the chart to nothing
        self.ladder_dock = self._dock("Ladder", self.ladder, Qt.LeftDockWidgetArea)
        self.kill_dock = self._dock("Kill switches", self.killpanel, Qt.RightDockWidgetArea)
        self.events_dock = self._dock("Events", self.eventlog, Qt.BottomDockWidgetArea)
        self.blotter_dock = self._dock("Orders", self.blotter, Qt.BottomDockWidgetArea)
        self.positions_dock = self._dock("Positions", self.positions, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.events_dock, self.blotter_dock)
        self.tabifyDockWidget(self.blotter_dock, self.positions_dock)
        self.blotter_dock.raise_()
        self.kill_dock.setMinimumWidth(460)  # the scope table's buttons beside each state
        self.risk_dock = self._dock("Risk", self.risk, Qt.RightDockWidgetArea)
        self.limits_dock = self._dock("Limits", self.limits, Qt.RightDockWidgetArea)
        self.recon_dock = self._dock("Reconciliation", self.recon, Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.risk_dock, self.limits_dock)
        self.tabifyDockWidget(self.limits_dock, self.recon_dock)
        self.strategies_dock = self._dock("Strategies", self.strategy_panel,
                                          Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.recon_dock, self.strategies_dock)
        self.risk_dock.raise_()

        menu = self.menuBar().addMenu("&File")
        self.open_report_action = menu.addAction("Open backtest report…")
        self.open_report_action.setShortcut(QKeySequence.Open)
        self.open_report_action.triggered.connect(self.choose_report)
        shots = menu.addMenu("Save as PNG")
        shots.addAction("Whole window", lambda: self.choose_png(self, "desk"))
        shots.addSeparator()
        for d in sorted(self.findChildren(QDockWidget), key=lambda d: d.windowTitle()):
            shots.addAction(d.windowTitle(),
                            lambda d=d: self.choose_png(d.widget(), d.windowTitle()))
        self.png_menu = shots
        menu.addSeparator()
        menu.addAction("Close desk", QKeySequence.Quit, self.close)
        self.reports: list[ReportView] = []

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
        self.statusBar().addPermanentWidget(self.feeds)
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
        self.killpanel.trip_requested.connect(
            lambda scope, sid, state, name: self._spawn(self.trip(scope, sid, state, name)))
        self.killpanel.rearm_scope_requested.connect(
            lambda scope, sid, name, reason, typed: self._spawn(
                self.rearm(scope, sid, name, reason, typed)))
        self.strategy_panel.action_requested.connect(
            lambda sid, action, name: self._spawn(self.strategy_action(sid, action, name)))
        self.recon.settle_requested.connect(
            lambda i, correct, reason: self._spawn(self.settle(i, correct, reason)))
        self.limits.limit_change_requested.connect(
            lambda scope, key, value, reason: self._spawn(
                self.set_limit(scope, key, value, reason)))
        self.blotter.order_requested.connect(
            lambda *a: self._spawn(self.send_order(*a)))
        self.blotter.cancel_requested.connect(lambda cl: self._spawn(self.cancel_order(cl)))
        self.blotter.cancel_all_requested.connect(lambda: self._spawn(self.cancel_all()))
        self._chart_timer = QTimer(self)
        self._chart_timer.setInterval(500)  # a glance chart: 2 Hz is plenty, and cheap
        self._chart_timer.timeout.connect(self.chart.redraw)
        self._risk_timer = QTimer(self)
        self._risk_timer.setInterval(250)  # positions, limits and VaR: the engine publishes 10 Hz
        self._risk_timer.timeout.connect(self._read_risk)
        self._tasks: set[asyncio.Task] = set()

    def choose_report(self) -> None:
        """Ask for a report folder (``helmdesk backtest`` writes them under the data
        directory's ``backtests/``) and open it."""
        start = data_dir() / "backtests"
        folder = QFileDialog.getExistingDirectory(
            self, "Open backtest report", str(start if start.is_dir() else data_dir()))
        if folder:
            self.open_report(folder)

    def choose_png(self, w: QWidget, name: str) -> None:
        """Ask where to save ``w`` as it looks now (default: the data directory's
        ``screenshots/``, the panel's name and the time), then save it."""
        folder = data_dir() / "screenshots"
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path, _ = QFileDialog.getSaveFileName(
            self, f"Save {name} as PNG", str(folder / f"{name.lower().replace(' ', '-')}-"
                                             f"{stamp}.png"), "PNG images (*.png)")
        if path:
            self.save_png(w, path)

    def save_png(self, w: QWidget, path) -> bool:
        """``w`` as it looks now into the PNG ``path`` (its folder made if missing); the event
        log says where, or why not."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self.eventlog.append([f"{_now()}  cannot save {path}: {e.strerror or e}"])
            return False
        if not w.grab().save(str(path), "PNG"):
            self.eventlog.append([f"{_now()}  cannot save {path}: the image could not be "
                                  f"written there"])
            return False
        self.eventlog.append([f"{_now()}  saved {path}"])
        return True

    def open_report(self, folder) -> ReportView:
        """A window with the backtest report in ``folder`` (or why it cannot be shown)."""
        view = ReportView.open(folder, self)
        self.reports.append(view)
        view.destroyed.connect(lambda *_: self.reports.remove(view))  # closed: deleted
        return view

    def _dock(self, title: str, w: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(title.replace(" ", "") + "Dock")
        d.setWidget(w)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, d)
        return d

    def _first_layout(self) -> None:
        """Room for the kill switches and the gauges; the chart and the log give way."""
        self.resizeDocks([self.kill_dock, self.risk_dock], [440, 360], Qt.Vertical)
        self.resizeDocks([self.blotter_dock], [170], Qt.Vertical)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_laid_out", False):
            self._laid_out = True
            QTimer.singleShot(0, self._first_layout)

    def start(self) -> None:
        self.link.start()
        self._chart_timer.start()
        self._risk_timer.start()

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
        self.positions_dock.setWidget(None)
        self.positions.deleteLater()
        self.positions = PositionsTable([i.symbol for i in instruments],
                                        [tick_decimals(i.tick) for i in instruments])
        self.positions_dock.setWidget(self.positions)
        # an engine that trades shows its orders first; one that does not, its events
        (self.blotter_dock if self.link.client.venues() else self.events_dock).raise_()
        # after the engine's own earlier events, which this same poll is about to drain
        line = f"{_now()}  attached to engine {self.instance!r} (pid {self.link.client.pid})"
        QTimer.singleShot(0, lambda: self.eventlog.append([line]))

    def _select(self, idx: int) -> None:
        if not 0 <= idx < len(self._instruments):
            return
        ins = self._instruments[idx]
        self.link.select_instrument(idx)
        self.ladder.set_symbol(ins.symbol, tick_decimals(ins.tick))
        self.blotter.set_instrument(ins.symbol, ins.tick, tick_decimals(ins.tick), ins.ref_price)
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
                rows = c.read_feed()
                if rows is not None:
                    self.feeds.set_feeds([
                        (r["venue"].decode(errors="replace"), float(r["rate_hz"]), int(r["gaps"]),
                         int(r["duplicates"]), int(r["rejects"]), bool(r["stale"]),
                         int(r["stale_books"])) for r in rows])
                self.counters.setText(
                    f"commands {c.counter(H.CMDS_ACCEPTED)} ok / {c.counter(H.CMDS_REJECTED)} rejected"
                    f" · feed events {c.counter(H.FEED_EVENTS):,}"
                )
        c = self.link.client
        if c is not None:
            self.blotter.set_venues(list(c.venues()))
        stale = h.state != "connected"
        why = h.text if stale else ""
        if stale != self.ladder.model.stale or (stale and self.ladder.banner.text() != f"STALE — {why}"):
            self.ladder.set_stale(stale, why)
        self.chart.set_stale(stale)
        self.killpanel.set_stale(stale)

    def _on_book(self, i: int, rec) -> None:
        if i != self.link.instrument:
            return
        flags = int(rec["flags"])
        warning = ("CROSSED across venues" if flags & BOOK_CROSSED else
                   "LOCKED across venues" if flags & BOOK_LOCKED else "")
        self.ladder.set_book(rec["bid_px"], rec["bid_sz"], rec["ask_px"], rec["ask_sz"],
                             float(rec["last_px"]), float(rec["last_sz"]), warning)
        b, a = float(rec["bid_px"][0]), float(rec["ask_px"][0])
        if b and a and not flags:  # a crossed or locked book has no usable mid
            self.chart.append(rec["ts_event_ns"] / 1e9, (a + b) / 2)

    def _on_kill(self, rows) -> None:
        self._kill_rows = rows
        self.killpanel.set_rows(rows, time.time_ns())

    def _read_risk(self) -> None:
        """The engine's positions, limit use and VaR, as last published."""
        c = self.link.client
        if c is None:
            return
        positions, limits, var, recon = (c.read_risk(n)
                                         for n in ("positions", "limits", "var", "recon"))
        if recon is not None:
            self.recon.set_rows(recon)
            if len(recon) and (recon["state"] == 0).any() and not self._recon_shown:
                self._recon_shown = True  # a restart found differences: show them once
                self.recon_dock.raise_()
        if positions is not None:
            self.positions.update(positions)
        if limits is not None:
            measured = limits[np.isfinite(limits["used"])]
            self.risk.set_limits(measured)
            self.limits.set_limits(limits)
            desk = measured[(measured["key"] == b"daily_loss_limit") & (measured["scope"] == b"desk")]
            total = positions[(positions["book"] == b"desk") & (positions["instrument"] == -1)] \
                if positions is not None else ()
            pnl = float(total[0]["realized"] + total[0]["unrealized"]) if len(total) else 0.0
            self.risk.set_pnl(pnl, float(desk[0]["limit"]) if len(desk) else float("nan"))
        if var is not None:
            self.risk.var_model.update(var)
        strategies = c.read_risk("strategies")
        if strategies is not None:
            self.strategy_panel.set_rows(strategies, c.read_risk("signals"))
            if len(strategies) and not self._strategies_shown:
                self._strategies_shown = True  # the engine trades: show what it does
                self.strategies_dock.raise_()

    def _on_events(self, recs, lost: int) -> None:
        lines = []
        symbols = [i.symbol for i in self._instruments]
        model = self.blotter.model
        for r in recs:
            kind = int(r["kind"])
            if kind == EventKind.ORDER:
                o = decode_order(r, symbols)
                if o is None:
                    continue
                model.update(o.cl_ord_id, o.venue, o.symbol, o.side, o.qty, o.price, o.status,
                             o.cum_qty, o.leaves_qty, o.avg_px, o.text, o.unknown)
                # the log keeps what a trader must notice: fills, refusals, doubt
                if not (o.last_qty or o.unknown or o.status in ("Rejected", "Expired")):
                    continue
            t = datetime.fromtimestamp(r["ts_ns"] / 1e9).strftime("%H:%M:%S.%f")[:-3]
            name = EventKind.NAMES.get(kind, "?")
            lines.append(f"{t}  {name:<7} {event_text(r, symbols)}")
        if lines:
            self.eventlog.append(lines)
        self.eventlog.set_lost(lost)

    def _on_role(self, role: Role) -> None:
        self.role = role
        self.role_label.setText(f"role: {role.label} ")
        self.killpanel.set_can_rearm(role.manages_risk)
        self.killpanel.set_role(_role_name(role))
        self.limits.set_role(_role_name(role))
        self.recon.set_role(_role_name(role))
        self.strategy_panel.set_role("trader" if role.trades else _role_name(role))
        self.blotter.set_permissions(trade=role.trades, cancel=role is not Role.VIEWER)

    def _on_refused(self, msg: str) -> None:
        self.eventlog.append([f"{_now()}  REFUSED: {msg}"])

    # -- commands -----------------------------------------------------------------------------------
    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, label: str, verb: Verb, text: str = "", **kw) -> None:
        self.killpanel.set_pending(True, f"{label}: pending — waiting for the engine's ack")
        try:
            ack = await self.link.command(verb, Scope.GLOBAL, 0, text=text, **kw)
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

    async def _order_command(self, label: str, verb: Verb, scope: int = Scope.GLOBAL,
                             scope_id: int = 0, **kw) -> None:
        self.blotter.set_status(f"{label}: pending — waiting for the engine's ack")
        try:
            ack = await self.link.command(verb, scope, scope_id, **kw)
        except asyncio.TimeoutError:
            self.blotter.set_status(f"{label}: NO ACK within 2 s — engine not responding", True)
            return
        except IpcError as e:
            self.blotter.set_status(f"{label}: not sent — {e}", True)
            return
        if ack.accepted:
            self.blotter.set_status(f"{label}: {ack.reason}")
        else:
            self.blotter.set_status(f"{label}: REJECTED — {ack.reason}", True)
        self.link.poll()

    async def send_order(self, venue: str, side: str, qty: int, price: float, tif: str) -> None:
        idx = self.instrument_box.currentIndex()
        if not 0 <= idx < len(self._instruments):
            self.blotter.set_status("no instrument selected", True)
            return
        await self._order_command("Order", Verb.ORDER, Scope.INSTRUMENT, idx,
                                  text=order_text(venue, side, tif), arg0=qty, arg1=price)

    async def cancel_order(self, cl_ord_id: str) -> None:
        await self._order_command(f"Cancel {cl_ord_id}", Verb.CANCEL, text=cl_ord_id)

    async def cancel_all(self) -> None:
        await self._order_command("Cancel all", Verb.CANCEL_ALL)

    async def kill_global(self) -> None:
        await self._send("KILL", Verb.KILL, "KILL button on desk")

    async def rearm_global(self, reason: str) -> None:
        """The big button's re-arm: its dialog asked for the reason; the name it confirms is
        the global switch's."""
        await self._send("Re-arm", Verb.REARM, reason, arg1=confirmation_code("global"))

    async def trip(self, scope: int, scope_id: int, state: int, name: str) -> None:
        label = f"{'REDUCE' if state == 1 else 'HALT'} {name}"
        await self._scoped(name, label, Verb.KILL, scope, scope_id, text="kill panel on desk",
                           arg0=float(state))

    async def rearm(self, scope: int, scope_id: int, name: str, reason: str,
                    typed: str) -> None:
        await self._scoped(name, f"Re-arm {name}", Verb.REARM, scope, scope_id, text=reason,
                           arg1=confirmation_code(typed))

    async def set_limit(self, scope: str, key: str, value: float, reason: str) -> None:
        """A risk manager's limit edit: the scope by its name, as the engine names it."""
        where = self._scope_of(scope)
        if where is None:
            self.limits.set_result(scope, key, False, f"no scope {scope!r} in this engine")
            return
        text = f"{key} {reason}"[:48]
        try:
            ack = await self.link.command(Verb.LIMIT, where[0], where[1], text=text,
                                          arg0=float(value))
        except (asyncio.TimeoutError, IpcError) as e:
            self.limits.set_result(scope, key, False, f"not confirmed: {e or 'no ack in 2 s'}")
            return
        self.limits.set_result(scope, key, ack.accepted, ack.reason)
        self.link.poll()

    async def settle(self, diff_id: int, correct: bool, reason: str) -> None:
        """A risk manager settles a difference a restart found."""
        how = "Correct" if correct else "Accept"
        await self._order_command(f"{how} difference {diff_id}", Verb.RECON, text=reason,
                                  arg0=float(diff_id), arg1=1.0 if correct else 0.0)

    async def strategy_action(self, scope_id: int, action: str, name: str) -> None:
        """A trader pauses, resumes or stops a strategy."""
        await self._order_command(f"{action.capitalize()} {name}", Verb.STRATEGY,
                                  Scope.STRATEGY, scope_id,
                                  arg0=float({v: k for k, v in STRATEGY_ACTIONS.items()}[action]))
        self._read_risk()

    def _scope_of(self, name: str) -> tuple[int, int] | None:
        """(scope, scope_id) of a scope's name ("desk" is the global scope)."""
        if name in ("desk", "global"):
            return Scope.GLOBAL, 0
        rows = self._kill_rows
        if rows is None:
            return None
        hit = rows[rows["name"] == name.encode()]
        return (int(hit[0]["scope"]), int(hit[0]["scope_id"])) if len(hit) else None

    async def _scoped(self, name: str, label: str, verb: Verb, scope: int, scope_id: int,
                      **kw) -> None:
        """A kill-panel row's command: pending on its row until the ack."""
        self.killpanel.set_pending(True, f"{label}: pending", name)
        try:
            ack = await self.link.command(verb, scope, scope_id, **kw)
        except asyncio.TimeoutError:
            self.killpanel.set_pending(False, f"{label}: NO ACK within 2 s", name)
            self.eventlog.append([f"{_now()}  {label}: NO ACK within 2 s — engine not responding"])
            return
        except IpcError as e:
            self.killpanel.set_pending(False, f"{label}: not sent — {e}", name)
            return
        verdict = "confirmed" if ack.accepted else "REJECTED"
        self.killpanel.set_pending(False, f"{label}: {verdict} — {ack.reason}", name)
        self.eventlog.append([f"{_now()}  {label}: {verdict} — {ack.reason}"])
        self.link.poll()

    def closeEvent(self, event) -> None:
        self.link.close()
        for t in list(self._tasks):
            t.cancel()
        super().closeEvent(event)


def _role_name(role: Role) -> str:
    """The widgets' role names: a trader and risk manager in one is a risk manager who trades."""
    return "risk_manager" if role.manages_risk else role.name.lower()


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
    # Ctrl-C / SIGTERM / SIGHUP close the desk like its window's close button. Python runs signal
    # handlers between any two bytecodes (the link's poll timer gives it a chance every 50 ms),
    # so the handler only schedules the close for the event loop's next turn.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_a: QTimer.singleShot(0, win.close))
    win.start()
    win.show()
    if exit_after:
        QTimer.singleShot(int(exit_after * 1000), _quit)
    with loop:
        loop.run_until_complete(closed.wait())
    return 0

