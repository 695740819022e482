"""The desk's main window: docks for the ladder, chart, kill switches and events."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QToolBar,
    QWidget,
)

from app.help import HelpOverlay
from app.ladders import LadderPanel, Move, WorkingOrders
from app.link import EngineLink, Health
from app.review import ReviewController
from app.theme import apply_theme
from engine.core.paths import data_dir
from engine.core.profile import DEFAULT_DATABASE_URL, DeskConfig
from engine.core.roles import Role
from engine.core.ticks import tick_decimals
from engine.ipc import IpcError, Scope, Verb
from engine.ipc.commands import STRATEGY_ACTIONS, confirmation_code, order_text
from engine.ipc.events import decode_order, event_text
from engine.ipc.layout import BOOK_CROSSED, BOOK_LOCKED, EventKind, H
from widgets import (
    Alert,
    AlertsPanel,
    AuditLogView,
    BlotterWidget,
    ConnectionStatus,
    DepthChart,
    EventLog,
    FeedHealth,
    KillSwitchPanel,
    LadderWidget,
    LatencyPanel,
    LimitEditor,
    PnlChart,
    PositionsTable,
    PriceChart,
    ReconTable,
    ReplayBar,
    ReportView,
    RiskPanel,
    StrategyPanel,
    TimeAndSales,
)
from widgets.icon import app_icon

__all__ = ["DeskWindow", "run_desk_window"]

_STATE_VERSION = 2  #: of saveState's layouts: a layout saved by another version is not restored
#: event kind -> the level from which it is an alert a person must acknowledge
_ALERT_LEVEL = {EventKind.ALERT: logging.WARNING, EventKind.KILL: logging.WARNING,
                EventKind.LOG: logging.ERROR, EventKind.COMMAND: 99, EventKind.ORDER: 99}


class DeskWindow(QMainWindow):
    def __init__(self, instance: str, desk: DeskConfig | None = None, *, instrument: str | None = None,
                 poll_ms: int = 16, audit_url: str | None = None) -> None:
        super().__init__()
        desk = desk or DeskConfig()
        self.desk = desk
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
        self.ladders: list[LadderPanel] = []
        self.working = WorkingOrders()
        self.chart = PriceChart()
        self.depth = DepthChart()
        self.tape = TimeAndSales()
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
        self.pnl = PnlChart()
        self.latency = LatencyPanel()
        self.alerts = AlertsPanel()
        self.audit = AuditLogView()
        self.audit_url = audit_url or DEFAULT_DATABASE_URL.format(data_dir=data_dir(),
                                                                  instance=instance)
        self._pnl_now: tuple[float, dict[str, float]] | None = None
        self._kill_rows = None
        self._recon_shown = False
        self._venues: list[str] = []
        self._md_venues: list[str] = []  #: market-data venues by index (the trade ring's)
        self._trades_lost = 0
        self._shown_stale: bool | None = None
        self._depth_rec = None  #: the current instrument's latest book, not yet drawn

        self.setCentralWidget(self.chart)
        self.chart.setMinimumWidth(300)  # docks do not squeeze the chart to nothing
        self.kill_dock = self._dock("Kill switches", self.killpanel, Qt.RightDockWidgetArea)
        self.events_dock = self._dock("Events", self.eventlog, Qt.BottomDockWidgetArea)
        self.blotter_dock = self._dock("Orders", self.blotter, Qt.BottomDockWidgetArea)
        self.positions_dock = self._dock("Positions", self.positions, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.events_dock, self.blotter_dock)
        self.tabifyDockWidget(self.blotter_dock, self.positions_dock)
        self.blotter_dock.raise_()
        self.kill_dock.setMinimumWidth(460)  # the scope table's buttons beside each state
        self.killpanel.setMinimumHeight(240)  # the button, the state and a scope row or two
        self.risk_dock = self._dock("Risk", self.risk, Qt.RightDockWidgetArea)
        self.limits_dock = self._dock("Limits", self.limits, Qt.RightDockWidgetArea)
        self.recon_dock = self._dock("Reconciliation", self.recon, Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.risk_dock, self.limits_dock)
        self.tabifyDockWidget(self.limits_dock, self.recon_dock)
        self.strategies_dock = self._dock("Strategies", self.strategy_panel,
                                          Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.recon_dock, self.strategies_dock)
        self.risk_dock.raise_()
        self.pnl_dock = self._dock("PnL", self.pnl, Qt.RightDockWidgetArea)
        self.latency_dock = self._dock("Latency", self.latency, Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.strategies_dock, self.pnl_dock)
        self.tabifyDockWidget(self.pnl_dock, self.latency_dock)
        self.risk_dock.raise_()
        self.alerts_dock = self._dock("Alerts", self.alerts, Qt.BottomDockWidgetArea)
        self.audit_dock = self._dock("Audit log", self.audit, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.positions_dock, self.alerts_dock)
        self.tabifyDockWidget(self.alerts_dock, self.audit_dock)
        self.blotter_dock.raise_()
        self.depth_dock = self._dock("Depth", self.depth, Qt.BottomDockWidgetArea)
        self.tape_dock = self._dock("Time and sales", self.tape, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.depth_dock, self.tape_dock)
        self.tape_dock.raise_()

        menu = self.menuBar().addMenu("&File")
        self.open_report_action = menu.addAction("Open backtest report…")
        self.open_report_action.setShortcut(QKeySequence.Open)
        self.open_report_action.triggered.connect(self.choose_report)
        self.png_menu = menu.addMenu("Save as PNG")
        self.png_menu.aboutToShow.connect(self._fill_png_menu)  # ladders come and go
        self._fill_png_menu()
        menu.addSeparator()
        menu.addAction("Close desk", QKeySequence.Quit, self.close)
        self.reports: list[ReportView] = []

        trade = self.menuBar().addMenu("&Trade")
        self.shortcuts: list[tuple[str, str]] = []  # (keys, what): the help overlay lists them
        self.kill_action = self._shortcut(trade, "Kill all (trip the global switch)",
                                          "Ctrl+Shift+K", self._kill_key)
        self.cancel_all_action = self._shortcut(trade, "Cancel all working orders",
                                                "Ctrl+Shift+X", self._cancel_all_key)
        self.flatten_action = self._shortcut(trade, "Flatten the current instrument…",
                                             "Ctrl+Shift+F", self.ask_flatten)
        trade.addSeparator()
        self.recentre_action = self._shortcut(trade, "Re-centre the ladders", "F5",
                                              self.recentre)
        self.ticket_action = self._shortcut(trade, "Focus the ladder's ticket", "F2",
                                            self.focus_ticket)
        self.auto_recentre_action = trade.addAction(
            "Re-centre a ladder when the market leaves it")
        self.auto_recentre_action.setCheckable(True)
        self.auto_recentre_action.setChecked(True)  # never while the mouse is over it
        self.auto_recentre_action.toggled.connect(self._auto_recentre)
        window = self.menuBar().addMenu("&Window")
        self.new_ladder_action = self._shortcut(window, "New ladder", "Ctrl+L",
                                                lambda: self.add_ladder(raise_=True))
        window.addAction("Reset layout", self.reset_layout)
        window.addSeparator()
        self.panels_menu = window.addMenu("Panels")
        self.panels_menu.aboutToShow.connect(self._fill_panels_menu)
        helpm = self.menuBar().addMenu("&Help")
        self.help_action = self._shortcut(helpm, "Keyboard shortcuts", "F1", self.toggle_help)
        self.help = HelpOverlay(self)

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
        # post-incident review: the replay bar, shown only on a replay engine
        self.replaybar = ReplayBar(self)
        self.addToolBarBreak(Qt.TopToolBarArea)
        self.addToolBar(Qt.TopToolBarArea, self.replaybar)
        self.review = ReviewController(self.link, self.replaybar)
        self.statusBar().addPermanentWidget(self.status, 1)
        self.statusBar().addPermanentWidget(self.feeds)
        self.statusBar().addPermanentWidget(self.counters)

        # wiring
        self.link.attached.connect(self._on_attached)
        self.link.health_changed.connect(self._on_health)
        self.link.book.connect(self._on_book)
        self.link.kill.connect(self._on_kill)
        self.link.events.connect(self._on_events)
        self.link.trades.connect(self._on_trades)
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
        self.alerts.ack_requested.connect(lambda seq, text: self._spawn(self.ack_alert(seq, text)))
        self.alerts.unacknowledged_changed.connect(self._alert_count)
        self.audit.refresh_requested.connect(lambda: self._spawn(self.load_audit()))
        self.audit_dock.visibilityChanged.connect(
            lambda shown: shown and self.audit.model.rowCount() == 0
            and self._spawn(self.load_audit()))
        self._depth_timer = QTimer(self)
        self._depth_timer.setInterval(100)
        self._depth_timer.timeout.connect(self._draw_depth)
        self._pnl_timer = QTimer(self)
        self._pnl_timer.setInterval(1000)  # one P&L point a second: a day is 86,400
        self._pnl_timer.timeout.connect(self._each_second)
        self._chart_timer = QTimer(self)
        self._chart_timer.setInterval(500)  # a glance chart: 2 Hz is plenty, and cheap
        self._chart_timer.timeout.connect(self._redraw_charts)
        self._risk_timer = QTimer(self)
        self._risk_timer.setInterval(83)  # a third of the risk tables a turn: each at 4 Hz
        self._risk_timer.timeout.connect(self._risk_step)
        self._risk_part = -1
        self._tasks: set[asyncio.Task] = set()
        self.confirm = self._ask  #: (title, text) -> bool; tests put their own answer here
        self.settings = QSettings(str(data_dir() / "desk" / f"{desk.name}.ini"),
                                  QSettings.IniFormat)
        self.add_ladder()
        self._default_state = self.saveState(_STATE_VERSION)

    # -- ladders ------------------------------------------------------------------------------------
    @property
    def ladder(self) -> LadderWidget:
        """The first ladder."""
        return self.ladders[0].ladder

    @property
    def ladder_dock(self) -> QDockWidget:
        return self.ladders[0].parentWidget()

    def add_ladder(self, symbol: str | None = None, *, raise_: bool = False) -> LadderPanel:
        """Another ladder dock (for ``symbol``, else the current instrument)."""
        panel = LadderPanel()
        n = 1
        taken = {d.objectName() for d in self.findChildren(QDockWidget)}
        while f"Ladder{n}Dock" in taken:
            n += 1
        dock = QDockWidget("Ladder" if n == 1 else f"Ladder {n}", self)
        dock.setObjectName(f"Ladder{n}Dock")
        dock.setWidget(panel)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | (QDockWidget.DockWidgetClosable if n > 1 else
                            QDockWidget.DockWidgetFeature(0)))
        dock.setAttribute(Qt.WA_DeleteOnClose)
        if self.ladders:
            self.addDockWidget(Qt.LeftDockWidgetArea, dock)
            self.splitDockWidget(self.ladders[-1].parentWidget(), dock, Qt.Horizontal)
        else:
            self.addDockWidget(Qt.LeftDockWidgetArea, dock)
        self.ladders.append(panel)
        lad = panel.ladder
        panel.instrument_changed.connect(lambda i, p=panel: self._ladder_instrument(p, i))
        lad.order_requested.connect(
            lambda side, price, qty, venue, p=panel: self._ladder_order(p, side, price, qty, venue))
        lad.cancel_requested.connect(
            lambda cl: self._order_command(f"Cancel {cl}", Verb.CANCEL, text=cl))
        lad.move_requested.connect(lambda cl, price: self._spawn(self.move_order(cl, price)))
        dock.destroyed.connect(lambda *_a, p=panel: self._ladder_gone(p))
        if self._instruments:
            panel.set_instruments([i.symbol for i in self._instruments],
                                  symbol or self.instrument_box.currentText())
        lad.set_venues([v.name for v in self._venues])
        lad.model.auto_recentre = self.auto_recentre_action.isChecked()
        if self.role is not None:
            self._ladder_permissions(panel)
        lad.set_stale(self.link.health.state != "connected", self.link.health.text)
        if raise_:
            dock.show()
            dock.raise_()
            lad.setFocus()
        return panel

    def _ladder_gone(self, panel: LadderPanel) -> None:
        if panel in self.ladders:
            self.ladders.remove(panel)
            self._watch()

    def _ladder_instrument(self, panel: LadderPanel, idx: int) -> None:
        if not 0 <= idx < len(self._instruments):
            return
        ins = self._instruments[idx]
        panel.ladder.set_symbol(ins.symbol, tick_decimals(ins.tick), ins.tick)
        panel.ladder.set_orders(self.working.of(ins.symbol))
        dock = panel.parentWidget()
        if isinstance(dock, QDockWidget):
            n = dock.objectName()[6:-4]
            dock.setWindowTitle(f"Ladder {ins.symbol}" if n == "1" else f"Ladder {n} {ins.symbol}")
        self._watch()
        self.link.refresh()

    def _watch(self) -> None:
        self.link.watch({p.index for p in self.ladders if p.index >= 0})

    def _ladder_order(self, panel: LadderPanel, side: str, price: float, qty: int,
                      venue: str) -> None:
        """A click on a ladder: the ticket's size at the clicked price, confirmed by the
        trader first when above the profile's ``confirm_qty``."""
        idx = panel.index
        if not 0 <= idx < len(self._instruments):
            return
        symbol = self._instruments[idx].symbol
        d = tick_decimals(self._instruments[idx].tick)
        what = f"{side.upper()} {qty:,} {symbol} @ {price:,.{d}f} on {venue}"
        if qty > self.desk.confirm_qty and not self.confirm(
                "Confirm order", f"{what}?\n\nThe quantity is above this desk's confirmation "
                f"size ({self.desk.confirm_qty:,})."):
            self.blotter.set_status(f"not sent: {what} (not confirmed)")
            return
        self._order_command(what, Verb.ORDER, Scope.INSTRUMENT, idx,
                            text=order_text(venue, side, "day"), arg0=qty, arg1=price)

    async def move_order(self, cl_ord_id: str, price: float) -> None:
        """A ladder drag: cancel, then (once the venue confirms the cancel) the quantity left
        at ``price``, same venue, side and time in force."""
        held = self.working.get(cl_ord_id)
        if held is None:
            self.blotter.set_status(f"cannot move {cl_ord_id}: it is not working", True)
            return
        self.working.moving(cl_ord_id, price)
        ok = await self._order_command(f"Move {cl_ord_id} to {price:g}", Verb.CANCEL,
                                       text=cl_ord_id)
        if not ok:
            self.working.move_failed(cl_ord_id)

    def _replace(self, m: Move) -> None:
        idx = next((k for k, i in enumerate(self._instruments) if i.symbol == m.symbol), -1)
        if idx < 0:
            return
        self._spawn(self._order_command(
            f"Moved {m.replaces}: {m.side} {m.qty:,} {m.symbol} @ {m.price:g}", Verb.ORDER,
            Scope.INSTRUMENT, idx, text=order_text(m.venue, m.side, m.tif), arg0=m.qty,
            arg1=m.price))

    def _auto_recentre(self, on: bool) -> None:
        for p in self.ladders:
            p.ladder.model.auto_recentre = on

    def recentre(self) -> None:
        for p in self.ladders:
            p.ladder.recentre()

    def focus_ticket(self) -> None:
        """The ticket of the ladder with focus, else of the first."""
        focus = QApplication.focusWidget()
        for p in self.ladders:
            if focus is not None and p.isAncestorOf(focus):
                p.ladder.focus_ticket()
                return
        if self.ladders:
            self.ladders[0].ladder.focus_ticket()

    def _ladder_permissions(self, panel: LadderPanel) -> None:
        role = self.role
        trade_why = "" if role.trades else (
            f"your role is {role.label}: only a trader may send orders")
        cancel_why = "" if role is not Role.VIEWER else (
            "your role is viewer: a viewer may not cancel orders")
        panel.ladder.set_can_trade(not trade_why, trade_why)
        panel.ladder.set_can_cancel(not cancel_why, cancel_why)

    # -- keys, menus, layouts -----------------------------------------------------------------------
    def _shortcut(self, menu, text: str, keys: str, slot) -> QAction:
        action = menu.addAction(text)
        action.setShortcut(QKeySequence(keys))
        action.setShortcutContext(Qt.WindowShortcut)
        action.triggered.connect(slot)
        self.addAction(action)  # works with the menu bar hidden too
        self.shortcuts.append((keys, text))
        return action

    def toggle_help(self) -> None:
        self.help.show_over(self, self.shortcuts) if not self.help.isVisible() else self.help.hide()

    def _kill_key(self) -> None:
        if self.kill_action.isEnabled():
            self._spawn(self.kill_global())

    def _cancel_all_key(self) -> None:
        if self.cancel_all_action.isEnabled():
            self._spawn(self.cancel_all())

    def ask_flatten(self) -> None:
        """Flatten the current instrument in this desk's account, once the trader confirms."""
        idx = self.instrument_box.currentIndex()
        if not 0 <= idx < len(self._instruments) or not self.flatten_action.isEnabled():
            return
        symbol = self._instruments[idx].symbol
        if self.confirm("Flatten", f"Cancel this desk's working orders in {symbol} and close "
                                   f"account {self.desk.account}'s {symbol} position?"):
            self._spawn(self.flatten(idx))

    async def flatten(self, idx: int) -> None:
        symbol = self._instruments[idx].symbol
        await self._order_command(f"Flatten {symbol}", Verb.FLATTEN, Scope.INSTRUMENT, idx,
                                  text=self.desk.account)

    def _ask(self, title: str, text: str) -> bool:
        return QMessageBox.question(self, title, text, QMessageBox.Yes | QMessageBox.No,
                                    QMessageBox.No) == QMessageBox.Yes

    def _fill_png_menu(self) -> None:
        m = self.png_menu
        m.clear()
        m.addAction("Whole window", lambda: self.choose_png(self, "desk"))
        m.addSeparator()
        for d in sorted(self.findChildren(QDockWidget), key=lambda d: d.windowTitle()):
            m.addAction(d.windowTitle(), lambda d=d: self.choose_png(d.widget(), d.windowTitle()))

    def _fill_panels_menu(self) -> None:
        m = self.panels_menu
        m.clear()
        for d in sorted(self.findChildren(QDockWidget), key=lambda d: d.windowTitle()):
            m.addAction(d.toggleViewAction())

    def save_layout(self) -> None:
        """This workstation's layout: window geometry, docks, each ladder's instrument."""
        s = self.settings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("state", self.saveState(_STATE_VERSION))
        s.setValue("ladders", [p.symbol for p in self.ladders])
        s.setValue("instrument", self.instrument_box.currentText())
        s.setValue("auto_recentre", self.auto_recentre_action.isChecked())
        s.sync()

    def restore_layout(self) -> bool:
        """The layout this workstation saved last (False: none, or unreadable)."""
        s = self.settings
        symbols = s.value("ladders", [], list) or []
        if not isinstance(symbols, list):
            symbols = [symbols]
        for sym in symbols[len(self.ladders):]:
            self.add_ladder(str(sym))
        for p, sym in zip(self.ladders, symbols):
            p.setProperty("want", str(sym))
        self._want_symbol = self._want_symbol or (s.value("instrument") or None)
        self.auto_recentre_action.setChecked(s.value("auto_recentre", True, bool))
        geometry, state = s.value("geometry"), s.value("state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        return state is not None and self.restoreState(state, _STATE_VERSION)

    def reset_layout(self) -> None:
        for p in self.ladders[1:]:
            p.parentWidget().close()
        self.restoreState(self._default_state, _STATE_VERSION)
        self._first_layout()

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
        self.resizeDocks([self.kill_dock, self.risk_dock], [400, 460], Qt.Vertical)
        self.resizeDocks([self.blotter_dock], [230], Qt.Vertical)
        self.resizeDocks([self.blotter_dock, self.tape_dock], [1000, 560], Qt.Horizontal)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_laid_out", False):
            self._laid_out = True
            QTimer.singleShot(0, self._first_layout)

    def start(self) -> None:
        self.restore_layout()
        self.link.start()
        self._pnl_timer.start()
        self._depth_timer.start()
        self._chart_timer.start()
        self._risk_timer.start()

    # -- link events --------------------------------------------------------------------------------
    def _on_attached(self, instruments) -> None:
        self._instruments = instruments
        self.working.clear()  # a new engine (a restart, a replay started again): its own
        self.pnl.clear()  # orders and times, nothing of the last one's
        current = self.instrument_box.currentText() or self._want_symbol
        self.instrument_box.blockSignals(True)
        self.instrument_box.clear()
        for ins in instruments:
            self.instrument_box.addItem(ins.symbol)
        idx = max(0, self.instrument_box.findText(current)) if current else 0
        self.instrument_box.setCurrentIndex(idx)
        self.instrument_box.blockSignals(False)
        symbols = [i.symbol for i in instruments]
        for p in self.ladders:
            p.set_instruments(symbols, p.property("want") or current)
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
        if self.ladders:  # the first ladder follows the desk's instrument; others choose theirs
            self.ladders[0].box.setCurrentText(ins.symbol)
        self._watch()
        self.blotter.set_instrument(ins.symbol, ins.tick, tick_decimals(ins.tick), ins.ref_price)
        self.chart.clear()
        self.chart.plot.setTitle(f"{ins.symbol} mid", color="#c8ccd2")
        self.depth.clear_depth()
        self._depth_rec = None
        self.tape.clear()
        self.tape.set_decimals(tick_decimals(ins.tick))
        self.depth_dock.setWindowTitle(f"Depth {ins.symbol}")
        self.tape_dock.setWindowTitle(f"Time and sales {ins.symbol}")

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
                    self._md_venues = [r["venue"].decode(errors="replace") for r in rows]
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
            venues = list(c.venues())
            if venues != self._venues:
                self._venues = venues
                self.blotter.set_venues(venues)
                for p in self.ladders:
                    p.ladder.set_venues([v.name for v in venues])
        stale = h.state != "connected"
        why = h.text if stale else ""
        for p in self.ladders:
            lad = p.ladder
            if stale != lad.model.stale or (stale and lad.banner.text() != f"STALE — {why}"):
                lad.set_stale(stale, why)
        if stale == self._shown_stale:  # the health comes every poll: act on changes only
            return
        self._shown_stale = stale
        self.chart.set_stale(stale)
        self.depth.set_stale(stale)
        self.strategy_panel.set_stale(stale)
        self.pnl.set_stale(stale)
        self.latency.set_stale(stale)
        self.killpanel.set_stale(stale)

    def _on_book(self, i: int, rec) -> None:
        flags = int(rec["flags"])
        warning = ("CROSSED across venues" if flags & BOOK_CROSSED else
                   "LOCKED across venues" if flags & BOOK_LOCKED else "")
        for p in self.ladders:
            if p.index == i:
                p.ladder.set_book(rec["bid_px"], rec["bid_sz"], rec["ask_px"], rec["ask_sz"],
                                  float(rec["last_px"]), float(rec["last_sz"]), warning)
        if i != self.link.instrument:
            return
        self._depth_rec = rec  # drawn by its own 10 Hz timer: a chart, not a ladder
        b, a = float(rec["bid_px"][0]), float(rec["ask_px"][0])
        if b and a and not flags:  # a crossed or locked book has no usable mid
            self.chart.append(rec["ts_event_ns"] / 1e9, (a + b) / 2)

    def _on_kill(self, rows) -> None:
        self._kill_rows = rows
        self.killpanel.set_rows(rows, time.time_ns())

    def _read_risk(self) -> None:
        """The engine's risk tables as last published: all of them now."""
        for part in range(len(self._RISK_PARTS)):
            self._read_risk_part(part)

    def _risk_step(self) -> None:
        """One third of the risk tables each turn of their timer (12 Hz: each table at 4 Hz,
        the engine publishes them at 10): no frame redraws them all."""
        self._risk_part = (self._risk_part + 1) % len(self._RISK_PARTS)
        self._read_risk_part(self._risk_part)

    _RISK_PARTS = ("positions", "limits", "strategies")

    def _read_risk_part(self, part: int) -> None:
        c = self.link.client
        if c is None:
            return
        if part == 0:
            recon = c.read_risk("recon")
            if recon is not None:
                self.recon.set_rows(recon)
                if len(recon) and (recon["state"] == 0).any() and not self._recon_shown:
                    self._recon_shown = True  # a restart found differences: show them once
                    self.recon_dock.raise_()
            positions = c.read_risk("positions")
            if positions is not None:
                self.positions.update(positions)
                total = positions[(positions["book"] == b"desk") & (positions["instrument"] == -1)]
                pnl = float(total[0]["realized"] + total[0]["unrealized"]) if len(total) else 0.0
                books = positions[positions["instrument"] == -1]
                self._pnl_now = (pnl, {
                    bytes(r["book"]).decode(errors="replace").split(":", 1)[-1]:
                    float(r["realized"] + r["unrealized"])
                    for r in books if bytes(r["book"]).startswith(b"strategy:")})
        elif part == 1:
            limits = c.read_risk("limits")
            if limits is not None:
                measured = limits[np.isfinite(limits["used"])]
                self.risk.set_limits(measured)
                self.limits.set_limits(limits)
                desk = measured[(measured["key"] == b"daily_loss_limit")
                                & (measured["scope"] == b"desk")]
                loss_limit = float(desk[0]["limit"]) if len(desk) else float("nan")
                pnl = self._pnl_now[0] if self._pnl_now is not None else 0.0
                self.risk.set_pnl(pnl, loss_limit)
                self.pnl.set_daily_loss_limit(loss_limit)
            var = c.read_risk("var")
            if var is not None:
                self.risk.var_model.update(var)
        else:
            strategies = c.read_risk("strategies")
            if strategies is not None:
                self.strategy_panel.set_rows(strategies, c.read_risk("signals"))
                if len(strategies) and not self._strategies_shown:
                    self._strategies_shown = True  # the engine trades: show what it does
                    self.strategies_dock.raise_()

    def _on_events(self, recs, lost: int) -> None:
        lines = []
        alerts = []
        symbols = [i.symbol for i in self._instruments]
        model = self.blotter.model
        for r in recs:
            kind = int(r["kind"])
            level = int(r["level"])
            if level >= _ALERT_LEVEL.get(kind, 99):
                i = int(r["instrument"])
                where = symbols[i] if 0 <= i < len(symbols) else "desk"
                alerts.append(Alert(int(r["seq"]), int(r["ts_ns"]),
                                    "critical" if level >= logging.ERROR else "warning",
                                    f"{EventKind.NAMES.get(kind, '?')} {where}",
                                    event_text(r, symbols)))
            if kind == EventKind.ORDER:
                o = decode_order(r, symbols)
                if o is None:
                    continue
                model.update(o.cl_ord_id, o.venue, o.symbol, o.side, o.qty, o.price, o.status,
                             o.cum_qty, o.leaves_qty, o.avg_px, o.text, o.unknown)
                move = self.working.update(o)
                if move is not None:
                    self._replace(move)
                # the log keeps what a trader must notice: fills, refusals, doubt
                if not (o.last_qty or o.unknown or o.status in ("Rejected", "Expired")):
                    continue
            t = datetime.fromtimestamp(r["ts_ns"] / 1e9).strftime("%H:%M:%S.%f")[:-3]
            name = EventKind.NAMES.get(kind, "?")
            lines.append(f"{t}  {name:<7} {event_text(r, symbols)}")
        if lines:
            self.eventlog.append(lines)
        self.eventlog.set_lost(lost)
        if alerts:
            self.alerts.add_alerts(alerts)
            if any(a.level == "critical" for a in alerts):
                self.alerts_dock.raise_()
        dirty = self.working.dirty
        if dirty:
            for p in self.ladders:
                if p.symbol in dirty:
                    p.ladder.set_orders(self.working.of(p.symbol))
            dirty.clear()

    def _on_trades(self, tr, lost: int) -> None:
        """A poll's trades: the tape shows the current instrument's, each ladder its own's
        (last trade size and volume per price)."""
        ins = tr["instrument"]
        cur = self.link.instrument
        mine = tr[ins == cur]
        if len(mine):
            names = self._md_venues
            venue = [names[v] if v < len(names) else f"#{v}" for v in mine["venue"].tolist()]
            self.tape.add_trades(mine["ts_recv_ns"], mine["price"], mine["size"], mine["side"],
                                 venue)
        for p in self.ladders:
            t = mine if p.index == cur else tr[ins == p.index]
            if len(t):
                p.ladder.add_trades(t["price"], t["size"])
        if lost != self._trades_lost:
            self._trades_lost = lost
            self.eventlog.append([f"{_now()}  the desk fell behind the engine's trades: "
                                  f"{lost:,} not shown in time and sales"])

    def _read_latency(self) -> None:
        c = self.link.client
        counts = c.read_latency() if c is not None else None
        if counts is not None:
            edges = c.latency_edges_us()
            for name, n in counts.items():
                self.latency.set_histogram(name.replace("_", " "), edges, n)
        mine = self.link.round_trips
        shown = self.latency.histogram("desk round trip")
        if shown.count != mine.count:
            shown.set_counts(mine.counts)

    def _alert_count(self, n: int) -> None:
        self.alerts_dock.setWindowTitle(f"Alerts ({n})" if n else "Alerts")

    async def ack_alert(self, seq: int, text: str) -> None:
        """A person acknowledges an alert: the engine audits who, when and what."""
        try:
            ack = await self.link.command(Verb.ACK_ALERT, text=text[:48], arg0=float(seq))
        except (asyncio.TimeoutError, IpcError) as e:
            self.alerts.set_ack_failed(seq, f"not acknowledged: {e or 'no ack within 2 s'}")
            return
        if ack.accepted:
            c = self.link.client
            self.alerts.set_acked(seq, c.user if c is not None else "?", time.time_ns())
        else:
            self.alerts.set_ack_failed(seq, f"REFUSED — {ack.reason}")

    async def load_audit(self) -> None:
        """The engine's audit trail (its database), read off the event loop."""
        from engine.store.audit import read_audit

        url = self.audit_url
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
            self.audit.set_status(f"no audit trail yet: {url[len('sqlite:///'):]} does not "
                                  f"exist (the engine makes it)", True)
            return
        self.audit.set_status("loading…")
        try:
            entries = await asyncio.to_thread(read_audit, url, last=5000)
        except Exception as e:  # noqa: BLE001 - any database problem is shown, never raised
            self.audit.set_status(f"cannot read the audit trail: "
                                  f"{str(getattr(e, 'orig', e)).splitlines()[0]}", True)
            return
        self.audit.set_entries(entries)
        self.audit.set_status(f"{len(entries):,} entries, newest "
                              f"{datetime.now().strftime('%H:%M:%S')}" if entries else
                              "no entries yet")

    def _draw_depth(self) -> None:
        rec, self._depth_rec = self._depth_rec, None
        if rec is not None:
            self.depth.set_depth(rec["bid_px"], rec["bid_sz"], rec["ask_px"], rec["ask_sz"])

    def _redraw_charts(self) -> None:
        self.chart.redraw()

    def _each_second(self) -> None:
        """The P&L's point and the latency figures: once a second, in a frame of their own
        (the mid chart's is another: no frame draws them all)."""
        self._pnl_point()
        self.pnl.redraw()
        self._read_latency()
        self.latency.redraw()

    def _pnl_point(self) -> None:
        if self._pnl_now is not None and self.link.health.state == "connected":
            desk, strategies = self._pnl_now
            self.pnl.append(time.time(), desk, strategies)

    def _on_role(self, role: Role) -> None:
        self.role = role
        c = self.link.client
        user = c.user if c is not None else "?"
        self.role_label.setText(f"user {user} · role {role.label} ")
        self.role_label.setToolTip(f"The engine knows you as OS user {user!r} and grants you "
                                   f"the {role.label} role (its profile's [users])")
        for p in self.ladders:
            self._ladder_permissions(p)
        trade_why = "" if role.trades else f"your role is {role.label}: only a trader may trade"
        for a in (self.flatten_action,):
            a.setEnabled(not trade_why)
            a.setToolTip(trade_why)
        cancel_why = "" if role is not Role.VIEWER else "your role is viewer: it may not cancel"
        self.cancel_all_action.setEnabled(not cancel_why)
        self.kill_action.setEnabled(role is not Role.VIEWER)
        self.killpanel.set_can_rearm(role.manages_risk)
        self.killpanel.set_role(_role_name(role))
        self.limits.set_role(_role_name(role))
        self.recon.set_role(_role_name(role))
        self.strategy_panel.set_role("trader" if role.trades else _role_name(role))
        self.blotter.set_permissions(trade=role.trades, cancel=role is not Role.VIEWER,
                                     why_not_trade=trade_why, why_not_cancel=cancel_why)

    def _on_refused(self, msg: str) -> None:
        self.eventlog.append([f"{_now()}  REFUSED: {msg}"])

    # -- commands -----------------------------------------------------------------------------------
    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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

    def _order_command(self, label: str, verb: Verb, scope: int = Scope.GLOBAL,
                       scope_id: int = 0, **kw) -> asyncio.Task:
        """Send an order command now; its answer goes to the blotter's status line. The task
        resolves True when the engine accepted it."""
        self.blotter.set_status(f"{label}: pending — waiting for the engine's ack")
        return self._spawn(self._order_answer(label, self.link.command(verb, scope, scope_id,
                                                                        **kw)))

    async def _order_answer(self, label: str, pending) -> bool:
        try:
            ack = await pending
        except asyncio.TimeoutError:
            self.blotter.set_status(f"{label}: NO ACK within 2 s — engine not responding", True)
            return False
        except IpcError as e:
            self.blotter.set_status(f"{label}: not sent — {e}", True)
            return False
        if ack.accepted:
            self.blotter.set_status(f"{label}: {ack.reason}")
        else:
            self.blotter.set_status(f"{label}: REJECTED — {ack.reason}", True)
        self.link.poll()
        return ack.accepted

    async def send_order(self, venue: str, side: str, qty: int, price: float, tif: str) -> None:
        idx = self.instrument_box.currentIndex()
        if not 0 <= idx < len(self._instruments):
            self.blotter.set_status("no instrument selected", True)
            return
        if qty > self.desk.confirm_qty and not self.confirm(
                "Confirm order", f"{side.upper()} {qty:,} {self._instruments[idx].symbol} @ "
                f"{price:g} on {venue}?\n\nThe quantity is above this desk's confirmation "
                f"size ({self.desk.confirm_qty:,})."):
            self.blotter.set_status(f"not sent: {side} {qty:,} (not confirmed)")
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
        self.save_layout()
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
                    exit_after: float | None = None, screenshot: str | None = None,
                    audit_url: str | None = None, app_name: str = "Helmdesk",
                    setup=None) -> int:
    """Create the QApplication and qasync loop, show the desk, run until it closes.
    ``setup(win)``: what a caller adds to the window before it starts (``helmdesk review``:
    its replay's restart and title)."""
    os.environ.setdefault("QT_API", "pyside6")
    import qasync

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(app_name)
    app.setDesktopFileName("helmdesk")  # the installed desktop entry, for the window manager
    app.setWindowIcon(app_icon())
    apply_theme(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    win = DeskWindow(instance, desk, instrument=instrument, audit_url=audit_url)
    if setup is not None:
        setup(win)
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

