"""The alerts a person must acknowledge: a table newest on top, a sound, a badge count.

``AlertsPanel.add_alerts(alerts)`` takes ``Alert`` records (a batch, any order; ones already
shown are skipped) and inserts the new ones on top, newest (highest ``seq``) first, with one
``beginInsertRows``. An alert is NEW until acknowledged. The Acknowledge button, or Enter or
Space on the selected rows, emits ``ack_requested(seq, text)`` for each selected NEW alert and
shows it "ack sent…"; the engine audits the acknowledgement and the desk then calls
``set_acked(seq, user, ts_ns)`` (the row reads "ack by alice 14:02:11" and dims) or
``set_ack_failed(seq, reason)`` (back to NEW; the reason in the status line). Acknowledged
means the engine said so: an "ack sent…" alert still counts, and still sounds.

Sound: ``beep()`` once for each batch that brings a new alert, then every ``repeat_s`` while any
critical alert is unacknowledged (one QTimer, running only then). Mute stops the sound, never
hides or acknowledges an alert.

The table keeps at most ``max_rows`` alerts: past that the oldest acknowledged ones go first.
Only when every row is unacknowledged does the oldest unacknowledged one go, and then it is
counted (``dropped_unacknowledged``) and the status line says so until the panel is cleared.

Times shown are local (HH:MM:SS.mmm), as a person on the desk reads a clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase, QFontMetrics
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets._model import ALIGN, BG, DISPLAY, FG, FONT, RIGHT, TIP, TableModel

__all__ = ["Alert", "AlertsModel", "AlertsPanel", "LEVELS"]

#: the levels an alert may have, least urgent first
LEVELS = ("warning", "critical")
COLUMNS = ("Time", "Level", "Source", "Alert", "State")
TIME, LEVEL, SOURCE, TEXT, STATE = range(5)

_FG_BY_LEVEL = {"critical": QBrush(QColor("#ff6b6b")), "warning": QBrush(QColor("#f0c674"))}
# the same faint tint as the blotter's, on what still needs a look
_BG_BY_LEVEL = {"critical": QBrush(QColor(255, 107, 107, 34)),
                "warning": QBrush(QColor(240, 198, 116, 24))}
_DIM = QBrush(QColor("#7d838b"))

NEW, SENT, ACKED = "new", "sent", "acked"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as the engine raised it: its event ``seq`` (what an acknowledgement names),
    when (ns since the epoch), ``level`` (one of ``LEVELS``), who raised it and its words."""

    seq: int
    ts_ns: int
    level: str
    source: str
    text: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"alert {self.seq} level was {self.level!r}: it must be one of "
                             f"{', '.join(LEVELS)}")


def _clock(ts_ns: int, millis: bool) -> str:
    s = time.strftime("%H:%M:%S", time.localtime(ts_ns // 1_000_000_000))
    return f"{s}.{ts_ns // 1_000_000 % 1000:03d}" if millis else s


@dataclass(slots=True)
class _Row:
    alert: Alert
    state: str = NEW
    user: str = ""
    ack_ts_ns: int = 0
    cells: tuple[str, ...] = ()

    def format(self) -> None:
        a = self.alert
        if self.state == ACKED:
            state = f"ack by {self.user} {_clock(self.ack_ts_ns, False)}"
        elif self.state == SENT:
            state = "ack sent…"
        else:
            state = "NEW"
        self.cells = (_clock(a.ts_ns, True), a.level.upper(), a.source, a.text, state)


class AlertsModel(TableModel):
    """The alerts, newest on top; rows change in place (``dataChanged``), never a reset."""

    columns = COLUMNS

    #: the number of unacknowledged alerts (NEW or ack sent) whenever it changes
    unacknowledged_changed = Signal(int)

    def __init__(self, max_rows: int = 2000, parent=None) -> None:
        super().__init__(parent)
        if max_rows < 1:
            raise ValueError(f"max_rows was {max_rows}: it must be at least 1")
        self.max_rows = max_rows
        self._rows: list[_Row] = []  # newest first
        self._by_seq: dict[int, _Row] = {}
        self._unacked = 0
        #: unacknowledged alerts the cap had to drop (every row was unacknowledged)
        self.dropped_unacknowledged = 0
        self._mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        self._bold = QFont()
        self._bold.setBold(True)

    # -- data in ---------------------------------------------------------------------------------
    def add_alerts(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Insert the alerts not already shown, on top; returns them (newest first)."""
        new: dict[int, Alert] = {}
        for a in alerts:
            if a.seq not in self._by_seq:
                new[a.seq] = a
        if not new:
            return []
        fresh = sorted(new.values(), key=lambda a: a.seq, reverse=True)
        rows = []
        for a in fresh:
            r = _Row(a)
            r.format()
            rows.append(r)
        self.beginInsertRows(QModelIndex(), 0, len(rows) - 1)
        self._rows[:0] = rows
        for r in rows:
            self._by_seq[r.alert.seq] = r
        self.endInsertRows()
        self._cap()
        self._count_changed()
        return fresh

    def mark_sent(self, seq: int) -> bool:
        """The acknowledgement of ``seq`` went to the engine; False if it is not NEW."""
        row = self._by_seq.get(seq)
        if row is None or row.state != NEW:
            return False
        row.state = SENT
        self._changed(row)
        return True

    def set_acked(self, seq: int, user: str, ts_ns: int) -> bool:
        """``user`` acknowledged ``seq`` at ``ts_ns``; False if it is not shown (dropped)."""
        row = self._by_seq.get(seq)
        if row is None:
            return False
        if row.state != ACKED:
            row.state, row.user, row.ack_ts_ns = ACKED, user, ts_ns
            self._changed(row)
            self._count_changed()
        return True

    def set_ack_failed(self, seq: int) -> bool:
        """The acknowledgement of ``seq`` was refused or lost: NEW again."""
        row = self._by_seq.get(seq)
        if row is None or row.state != SENT:
            return False
        row.state = NEW
        self._changed(row)
        return True

    def clear(self) -> None:
        if self._rows:
            self.beginRemoveRows(QModelIndex(), 0, len(self._rows) - 1)
            self._rows.clear()
            self._by_seq.clear()
            self.endRemoveRows()
        self.dropped_unacknowledged = 0
        self._count_changed()

    def _changed(self, row: _Row) -> None:
        row.format()
        r = self._rows.index(row)  # a scan of at most max_rows, once per acknowledgement
        self.dataChanged.emit(self.index(r, 0), self.index(r, len(COLUMNS) - 1),
                              [Qt.DisplayRole, Qt.ForegroundRole, Qt.BackgroundRole,
                               Qt.FontRole])

    def _cap(self) -> None:
        excess = len(self._rows) - self.max_rows
        if excess <= 0:
            return
        doomed: list[int] = []
        for r in range(len(self._rows) - 1, -1, -1):  # the oldest acknowledged first
            if len(doomed) == excess:
                break
            if self._rows[r].state == ACKED:
                doomed.append(r)
        for r in range(len(self._rows) - 1, -1, -1):  # then, only if it must, unacknowledged
            if len(doomed) == excess:
                break
            if self._rows[r].state != ACKED:
                doomed.append(r)
                self.dropped_unacknowledged += 1
        doomed.sort(reverse=True)
        # remove in runs of adjacent rows, bottom up, so row numbers above stay valid
        i = 0
        while i < len(doomed):
            last = first = doomed[i]
            while i + 1 < len(doomed) and doomed[i + 1] == first - 1:
                i += 1
                first = doomed[i]
            self.beginRemoveRows(QModelIndex(), first, last)
            for row in self._rows[first:last + 1]:
                del self._by_seq[row.alert.seq]
            del self._rows[first:last + 1]
            self.endRemoveRows()
            i += 1

    def _count_changed(self) -> None:
        n = sum(1 for r in self._rows if r.state != ACKED)
        if n != self._unacked:
            self._unacked = n
            self.unacknowledged_changed.emit(n)

    # -- what the user sees (tests read this) ----------------------------------------------------
    def unacknowledged(self) -> int:
        return self._unacked

    def critical_unacknowledged(self) -> int:
        return sum(1 for r in self._rows if r.state != ACKED and r.alert.level == "critical")

    def row(self, r: int) -> tuple[str, ...]:
        """Row ``r``'s texts (0: the newest alert)."""
        return self._rows[r].cells

    def alert_at(self, r: int) -> Alert:
        return self._rows[r].alert

    def state_of(self, seq: int) -> str | None:
        """"new", "sent" or "acked"; None when not shown."""
        row = self._by_seq.get(seq)
        return None if row is None else row.state

    # -- the model -----------------------------------------------------------------------------
    def row_count(self) -> int:
        return len(self._rows)

    def data(self, index, role=DISPLAY):
        r, c = index.row(), index.column()
        if not 0 <= r < len(self._rows):
            return None
        row = self._rows[r]
        if role == DISPLAY:
            return row.cells[c]
        if role == FG:
            return _DIM if row.state == ACKED else _FG_BY_LEVEL[row.alert.level]
        if role == BG:
            return None if row.state == ACKED else _BG_BY_LEVEL[row.alert.level]
        if role == FONT:
            if c == TIME:
                return self._mono
            if c == LEVEL and row.state != ACKED:
                return self._bold
            return None
        if role == ALIGN and c == TIME:
            return RIGHT
        if role == TIP and c == TEXT:
            return row.alert.text
        return None


class AlertsPanel(QWidget):
    """The alerts table with Acknowledge and Mute, a count and a status line."""

    #: acknowledge this alert: its seq and its words (the engine audits both)
    ack_requested = Signal("qint64", str)
    #: the number of unacknowledged alerts, whenever it changes (the desk's badge)
    unacknowledged_changed = Signal(int)

    def __init__(self, beep: Callable[[], None] | None = None, repeat_s: float = 10.0,
                 max_rows: int = 2000, parent=None) -> None:
        super().__init__(parent)
        self.beep = beep if beep is not None else QApplication.beep
        self.muted = False
        self.model = AlertsModel(max_rows, self)
        self.view = QTableView()
        self.view.setObjectName("alertsView")
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        self.view.setShowGrid(False)
        self.view.setWordWrap(False)
        self.view.setSelectionBehavior(QTableView.SelectRows)
        self.view.setSelectionMode(QTableView.ExtendedSelection)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(TEXT, QHeaderView.Stretch)
        # widths from the fonts, not measured from the rows (ResizeToContents reads them all)
        self.view.ensurePolished()  # the font a style sheet gives it
        fm = self.view.fontMetrics()
        mono = QFontMetrics(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        header.resizeSection(TIME, mono.horizontalAdvance("00:00:00.000") + 20)
        header.resizeSection(LEVEL, fm.horizontalAdvance("CRITICAL") + 28)
        header.resizeSection(SOURCE, fm.horizontalAdvance("strategy:pairs") + 20)
        header.resizeSection(STATE, fm.horizontalAdvance("ack by someone 00:00:00") + 20)
        self.view.verticalHeader().setDefaultSectionSize(fm.height() + 6)
        self.view.installEventFilter(self)

        self.ack_button = QPushButton("Acknowledge")
        self.ack_button.setObjectName("ackAlerts")
        self.ack_button.setToolTip("Acknowledge the selected alerts (Enter or Space)")
        self.ack_button.clicked.connect(self.acknowledge_selected)
        self.mute_button = QPushButton("Mute")
        self.mute_button.setObjectName("muteAlerts")
        self.mute_button.setCheckable(True)
        self.mute_button.setToolTip("Stop the sound; alerts still show")
        self.mute_button.toggled.connect(self.set_muted)
        self.count_label = QLabel("")
        self.count_label.setObjectName("alertsCount")
        self.status = QLabel("")
        self.status.setObjectName("alertsStatus")
        self._status_error = ""

        top = QHBoxLayout()
        top.addWidget(self.count_label)
        top.addStretch(1)
        top.addWidget(self.mute_button)
        top.addWidget(self.ack_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.view)
        lay.addWidget(self.status)

        self.repeat = QTimer(self)
        self.repeat.setInterval(max(1, round(repeat_s * 1000)))
        self.repeat.timeout.connect(self._beep)
        self.model.unacknowledged_changed.connect(self._on_count)
        self._on_count(0)

    # -- in --------------------------------------------------------------------------------------
    def add_alerts(self, alerts: Iterable[Alert]) -> None:
        """Show the alerts not shown yet, on top; beep once if there was any."""
        dropped = self.model.dropped_unacknowledged
        if self.model.add_alerts(alerts):
            self._beep()
        if self.model.dropped_unacknowledged != dropped:
            self._show_status()
        self._update_repeat()

    def set_acked(self, seq: int, user: str, ts_ns: int) -> None:
        """The engine recorded ``user``'s acknowledgement of ``seq`` at ``ts_ns``."""
        self.model.set_acked(seq, user, ts_ns)
        self._update_repeat()

    def set_ack_failed(self, seq: int, reason: str) -> None:
        """The acknowledgement of ``seq`` did not go through: it is NEW again; say why."""
        self.model.set_ack_failed(seq)
        self._status_error = f"alert {seq} not acknowledged: {reason}"
        self._show_status()

    def set_muted(self, muted: bool) -> None:
        """Silence (or not) the beeps; the alerts still show and still count."""
        self.muted = bool(muted)
        if self.mute_button.isChecked() != self.muted:
            self.mute_button.setChecked(self.muted)  # toggled calls back here: no harm
        self.mute_button.setText("Muted" if self.muted else "Mute")
        self.mute_button.setStyleSheet("color: #f0c674;" if self.muted else "")
        self._update_repeat()

    def acknowledge_selected(self) -> int:
        """Ask to acknowledge each selected NEW alert, oldest first; returns how many."""
        rows = [ix.row() for ix in self.view.selectionModel().selectedRows()]
        alerts = sorted((self.model.alert_at(r) for r in rows), key=lambda a: a.seq)
        asked = 0
        for a in alerts:
            if self.model.mark_sent(a.seq):
                asked += 1
                self.ack_requested.emit(a.seq, a.text)
        if not rows:
            self._status_error = "select the alerts to acknowledge"
            self._show_status()
        elif asked:
            self._status_error = ""
            self._show_status()
        return asked

    def clear(self) -> None:
        self.model.clear()
        self._status_error = ""
        self._show_status()
        self._update_repeat()

    def unacknowledged(self) -> int:
        return self.model.unacknowledged()

    # -- internals -------------------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.view and event.type() == QEvent.KeyPress and event.key() in (
                Qt.Key_Return, Qt.Key_Enter, Qt.Key_Space):
            self.acknowledge_selected()
            return True
        return super().eventFilter(obj, event)

    def _beep(self) -> None:
        if not self.muted:
            self.beep()

    def _update_repeat(self) -> None:
        run = not self.muted and self.model.critical_unacknowledged() > 0
        if run and not self.repeat.isActive():
            self.repeat.start()
        elif not run and self.repeat.isActive():
            self.repeat.stop()

    def _on_count(self, n: int) -> None:
        crit = self.model.critical_unacknowledged()
        if n == 0:
            self.count_label.setText("No unacknowledged alerts")
            self.count_label.setStyleSheet("color: #9aa0a8;")
        else:
            self.count_label.setText(f"{n:,} unacknowledged" + (f" ({crit:,} critical)"
                                                               if crit else ""))
            self.count_label.setStyleSheet(
                f"color: {'#ff6b6b' if crit else '#f0c674'}; font-weight: bold;")
        self.unacknowledged_changed.emit(n)

    def _show_status(self) -> None:
        parts = []
        d = self.model.dropped_unacknowledged
        if d:
            parts.append(f"{d:,} unacknowledged alert{'s' if d != 1 else ''} dropped: more than "
                         f"{self.model.max_rows:,} rows, all unacknowledged")
        if self._status_error:
            parts.append(self._status_error)
        self.status.setText("   ·   ".join(parts))
        self.status.setStyleSheet("color: #ff8a80;" if parts else "")
