"""The engine's audit trail as a table: commands with their answers, orders, executions, kill
switch changes and limit edits, newest first, filtered by kind and by text.

``AuditLogView.set_entries(rows)`` takes the whole trail at once: each row a tuple
``(ts_ns, kind, user, role, workstation, text)`` (a 7th item, the engine's answer, is shown
after "=>"), or an object with those attributes (``who``/``what``/``answer`` as the engine's
``AuditEntry`` names them are read too). The model is set in one reset: 20,000 rows cost one
sort and one formatting pass (times by numpy), not 20,000 inserts. Filtering is a
``QSortFilterProxyModel`` over it, reading a lower-cased text made once per row.

Kinds are the engine's (``commands``, ``orders``, ``executions``, ``kills``, ``limits``; the
singular is read too) and shown singular; another kind shows under "all" only.

Times are UTC to the microsecond, as the engine's ``helmdesk ctl audit`` prints them:
``2026-12-04 10:00:00.000000Z``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QFontDatabase, QFontMetrics
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets._model import ALIGN, DISPLAY, TIP, TableModel

__all__ = ["AuditLogModel", "AuditLogProxy", "AuditLogView", "KIND_FILTERS", "format_utc"]

COLUMNS = ("Time (UTC)", "Kind", "User", "Role", "Workstation", "What")
TIME, KIND, USER, ROLE, WORKSTATION, WHAT = range(6)
#: the kind filter's choices; "all" keeps every row
KIND_FILTERS = ("all", "commands", "orders", "executions", "kills", "limits")
_KINDS = frozenset(KIND_FILTERS[1:])


def format_utc(ts_ns: np.ndarray) -> list[str]:
    """``2026-12-04 10:00:00.000000Z`` for each time in ns since the epoch (truncated to µs)."""
    us = np.asarray(ts_ns, dtype=np.int64) // 1000
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return [t.replace("T", " ") + "Z" for t in text.tolist()]


def _group(kind: str) -> str:
    """The filter group of a kind: "commands" for "commands" or "command"; "" for others."""
    k = kind.strip().lower()
    if k in _KINDS:
        return k
    return k + "s" if k + "s" in _KINDS else ""


def _fields(row) -> tuple[int, str, str, str, str, str]:
    if hasattr(row, "ts_ns"):
        user = getattr(row, "user", None)
        if user is None:
            user = getattr(row, "who", "")
        text = getattr(row, "text", None)
        if text is None:
            text = getattr(row, "what", "")
        answer = getattr(row, "answer", "")
        return (int(row.ts_ns), str(row.kind), str(user), str(row.role), str(row.workstation),
                f"{text}  => {answer}" if answer else str(text))
    if not 6 <= len(row) <= 7:
        raise ValueError(f"an audit row had {len(row)} fields: it needs (ts_ns, kind, user, "
                         "role, workstation, text) and may add the answer")
    ts, kind, user, role, ws, text, *answer = row
    what = f"{text}  => {answer[0]}" if answer and answer[0] else str(text)
    return int(ts), str(kind), str(user), str(role), str(ws), what


class AuditLogModel(TableModel):
    """The trail, newest first; set whole (one reset)."""

    columns = COLUMNS

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._cells: list[tuple[str, ...]] = []
        self._ts = np.zeros(0, np.int64)
        self.groups: list[str] = []  # each row's filter group
        self.haystacks: list[str] = []  # each row's lower-cased text, for the text filter

    def set_entries(self, rows: Iterable) -> None:
        """Replace every row (any order; shown newest first, ties in reverse of given)."""
        fields = [_fields(r) for r in rows]
        ts = np.fromiter((f[0] for f in fields), dtype=np.int64, count=len(fields))
        order = np.argsort(ts, kind="stable")[::-1]
        times = format_utc(ts[order])
        self.beginResetModel()
        self._ts = ts[order]
        cells = []
        groups = []
        hay = []
        for t, i in zip(times, order.tolist()):
            _, kind, user, role, ws, what = fields[i]
            g = _group(kind)
            label = g[:-1] if g else kind
            cells.append((t, label, user or "-", role or "-", ws or "-", what))
            groups.append(g)
            hay.append("\x00".join((label, user, role, ws, what)).casefold())
        self._cells, self.groups, self.haystacks = cells, groups, hay
        self.endResetModel()

    def newest_ns(self) -> int | None:
        return int(self._ts[0]) if len(self._ts) else None

    def row(self, r: int) -> tuple[str, ...]:
        """Row ``r``'s texts (0: the newest entry)."""
        return self._cells[r]

    def row_count(self) -> int:
        return len(self._cells)

    def data(self, index, role=DISPLAY):
        r = index.row()
        if not 0 <= r < len(self._cells):
            return None
        if role == DISPLAY:
            return self._cells[r][index.column()]
        if role == TIP and index.column() == WHAT:
            return self._cells[r][WHAT]
        return None


class AuditLogProxy(QSortFilterProxyModel):
    """Keeps the rows of one kind group (or all) whose text holds a lower-cased substring
    (kind, user, role, workstation or what).

    The rows kept are worked out once per filter change, in one pass over the model's lists,
    so the per-row call Qt makes is a list lookup: 20,000 rows refilter in about 50 ms.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.kind = "all"
        self.text = ""
        self._keep: list[bool] | None = None  # None: every row

    def setSourceModel(self, model) -> None:
        super().setSourceModel(model)
        model.modelAboutToBeReset.connect(self._forget)

    def set_kind(self, kind: str) -> None:
        if kind not in KIND_FILTERS:
            raise ValueError(f"audit kind filter was {kind!r}: it must be one of "
                             f"{', '.join(KIND_FILTERS)}")
        self._refilter(kind, self.text)

    def set_text(self, text: str) -> None:
        self._refilter(self.kind, text.strip().casefold())

    def _refilter(self, kind: str, text: str) -> None:
        if (kind, text) == (self.kind, self.text):
            return
        self.kind, self.text = kind, text
        self._keep = None
        # invalidate(): one layoutChanged. A filter change (begin/endFilterChange) would
        # remove or insert each run of rows on its own: 4,000 signals for one kind of five,
        # three times slower here.
        self.invalidate()

    def _forget(self) -> None:
        self._keep = None

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        if self._keep is None:
            m = self.sourceModel()
            kind, text = self.kind, self.text
            if kind == "all" and not text:
                return True
            self._keep = [(kind == "all" or g == kind) and (not text or text in h)
                          for g, h in zip(m.groups, m.haystacks)]
        return self._keep[source_row]


class AuditLogView(QWidget):
    """The trail with its filters, a Refresh button and a status line."""

    #: the user wants the trail read again
    refresh_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model = AuditLogModel(self)
        self.proxy = AuditLogProxy(self)
        self.proxy.setSourceModel(self.model)
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        fm = QFontMetrics(mono)
        self.view = QTableView()
        self.view.setObjectName("auditView")
        self.view.setModel(self.proxy)
        self.view.setFont(mono)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        self.view.verticalHeader().setDefaultSectionSize(fm.height() + 4)
        self.view.setShowGrid(False)
        self.view.setWordWrap(False)
        self.view.setSelectionBehavior(QTableView.SelectRows)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        self._fit_columns()

        self.kind_box = QComboBox()
        self.kind_box.setObjectName("auditKind")
        self.kind_box.addItems(list(KIND_FILTERS))
        self.kind_box.currentTextChanged.connect(self.set_kind_filter)
        self.text_edit = QLineEdit()
        self.text_edit.setObjectName("auditFilter")
        self.text_edit.setPlaceholderText("filter: user, workstation, order, words…")
        self.text_edit.setClearButtonEnabled(True)
        self.text_edit.setMinimumWidth(240)
        # a keystroke refilters 20,000 rows: wait for a pause in the typing
        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(150)
        self._typing.timeout.connect(lambda: self.set_text_filter(self.text_edit.text()))
        self.text_edit.textChanged.connect(self._typing.start)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("auditRefresh")
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.shown_label = QLabel("")
        self.shown_label.setObjectName("auditShown")
        self.shown_label.setStyleSheet("color: #9aa0a8;")
        self.status = QLabel("")
        self.status.setObjectName("auditStatus")

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Kind"))
        bar.addWidget(self.kind_box)
        bar.addWidget(self.text_edit, 1)
        bar.addWidget(self.shown_label)
        bar.addWidget(self.refresh_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(bar)
        lay.addWidget(self.view)
        lay.addWidget(self.status)
        for sig in (self.proxy.modelReset, self.proxy.layoutChanged):
            sig.connect(self._count_shown)
        self._count_shown()

    def _fit_columns(self) -> None:
        """Widths from the view's font as the style sheet leaves it (a theme may resize it),
        not measured from 20,000 rows."""
        self.view.ensurePolished()
        fm = self.view.fontMetrics()
        header = self.view.horizontalHeader()
        for col, sample in ((TIME, "2026-12-04 10:00:00.000000Z"), (KIND, "execution"),
                            (USER, "someone"), (ROLE, "risk_manager"),
                            (WORKSTATION, "workstation")):
            header.resizeSection(col, fm.horizontalAdvance(sample) + 20)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.StyleChange, QEvent.FontChange) and hasattr(self, "view"):
            self._fit_columns()

    # -- in --------------------------------------------------------------------------------------
    def set_entries(self, rows: Iterable) -> None:
        """Show the whole trail (replaces what was shown); the status says how many and up to
        when."""
        self.model.set_entries(rows)
        n = self.model.rowCount()
        newest = self.model.newest_ns()
        to = "" if newest is None else " to " + format_utc(np.array([newest]))[0][11:19]
        self.set_status(f"{n:,} entr{'y' if n == 1 else 'ies'}{to}")

    def set_status(self, text: str, error: bool = False) -> None:
        """"loading…", "1,234 entries to 14:02:11", or an error (in red)."""
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff8a80;" if error else "color: #9aa0a8;")

    def set_kind_filter(self, kind: str) -> None:
        """One of ``KIND_FILTERS``."""
        self.proxy.set_kind(kind)
        if self.kind_box.currentText() != kind:
            self.kind_box.setCurrentText(kind)

    def set_text_filter(self, text: str) -> None:
        """Keep the rows holding ``text`` (any case) now, without waiting for the typing."""
        self._typing.stop()
        if self.text_edit.text() != text:
            self.text_edit.blockSignals(True)
            self.text_edit.setText(text)
            self.text_edit.blockSignals(False)
        self.proxy.set_text(text)

    # -- what the user sees (tests read this) ----------------------------------------------------
    def shown_rows(self) -> list[tuple[str, ...]]:
        """The rows as shown (filtered), top first."""
        p = self.proxy
        return [tuple(p.data(p.index(r, c)) for c in range(len(COLUMNS)))
                for r in range(p.rowCount())]

    def _count_shown(self, *_args) -> None:
        n, total = self.proxy.rowCount(), self.model.rowCount()
        self.shown_label.setText(f"{total:,} rows" if n == total else
                                 f"showing {n:,} of {total:,}")
