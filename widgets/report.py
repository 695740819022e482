"""A backtest's report folder on the desk: its metrics, its equity chart, its CSV files.

``load_report(folder)`` reads the folder ``helmdesk backtest`` writes (summary.json,
metrics.csv, equity.png, the CSV files) with the csv and json modules into a ``Report`` of
plain data; ``ReportView`` shows one: the run's facts, the metrics table (desk and each
strategy), the chart, and the list of CSV files — a click opens one in a table tab. A folder
that is missing or is not a report shows what is wrong instead. ``ReportView.open(folder)``
makes one and shows it as a window: what the desk's menu calls.

The view knows the report's files, not the engine (widgets import neither app nor engine):
the few metric meanings it needs to format values are copied here.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QFont, QPixmap
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabBar,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

__all__ = ["CsvModel", "Report", "ReportError", "ReportView", "load_report", "read_csv"]

#: rows of a CSV file the view loads (a big orders.csv is for other tools)
MAX_ROWS = 200_000

_RATIOS = {"fill_ratio_qty", "fill_ratio_orders", "hit_rate"}  # 0..1, shown in %
_PERCENT = {"max_drawdown_pct"}  # already in %
_COUNTS = {"orders", "orders_filled", "fills", "round_trips", "round_trips_open", "samples"}
_SECONDS = {"avg_holding_s"}
_MONEY = {"total_pnl", "realized_pnl", "unrealized_pnl", "fees", "max_drawdown", "turnover"}
_DISPLAY = Qt.DisplayRole


class ReportError(Exception):
    """The folder cannot be shown as a report: the message names it and says why."""


@dataclass(frozen=True, slots=True)
class Report:
    folder: Path
    title: str
    facts: list[tuple[str, str]]
    #: the metrics' columns: "desk", then "strategy:NAME" per strategy
    columns: list[str]
    #: (key, label, raw values per column as written)
    metrics: list[tuple[str, str, list[str]]]
    chart: Path | None
    files: list[str] = field(default_factory=list)  #: the CSV files, the report's order
    summary: dict = field(default_factory=dict)

    def metric(self, key: str, column: str = "desk") -> str:
        """A metric as the view shows it (formatted), for a column."""
        for k, _label, values in self.metrics:
            if k == key:
                return format_metric(key, values[self.columns.index(column)])
        raise KeyError(key)


def format_metric(key: str, raw: str) -> str:
    if raw == "":
        return "–"
    try:
        x = float(raw)
    except ValueError:
        return raw
    if key in _RATIOS:
        return f"{100 * x:.1f} %"
    if key in _PERCENT:
        return f"{x:.2f} %"
    if key in _COUNTS:
        return f"{int(x):,}"
    if key in _SECONDS:
        return f"{x:,.1f} s" if x < 120 else f"{x / 60:,.1f} min"
    if key in _MONEY:
        return f"{x:,.2f}"
    return f"{x:,.2f}"


def read_csv(path: str | Path, limit: int = MAX_ROWS) -> tuple[list[str], list[list[str]], int]:
    """(header, the first ``limit`` rows, how many rows there are)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = []
        n = 0
        for r in reader:
            if n < limit:
                rows.append(r)
            n += 1
    return header, rows, n


def load_report(folder: str | Path) -> Report:
    """Read a report folder; ``ReportError`` says why it cannot be shown."""
    folder = Path(folder)
    if not folder.exists():
        raise ReportError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ReportError(f"{folder}: not a folder")
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{folder}: not a backtest report (no summary.json; "
                          "helmdesk backtest --out writes one)") from None
    except (OSError, ValueError) as e:
        raise ReportError(f"{folder / 'summary.json'}: cannot read: {e}") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{folder / 'summary.json'}: not a report summary")
    columns: list[str] = []
    metrics: list[tuple[str, str, list[str]]] = []
    path = folder / "metrics.csv"
    if path.exists():
        try:
            header, rows, _n = read_csv(path)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ReportError(f"{path}: cannot read: {e}") from None
        if header[:2] != ["metric", "label"]:
            raise ReportError(f"{path}: not a metrics table (columns metric, label, desk, ...)")
        columns = header[2:]
        for r in rows:
            r = r + [""] * (len(header) - len(r))
            metrics.append((r[0], r[1], r[2:len(header)]))
    days = summary.get("days") or []
    span = (days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}") if days else ""
    title = f"Backtest {summary.get('profile', folder.name)} {span}".strip()
    facts = [(k, str(v)) for k, v in (
        ("from", summary.get("from")), ("to", summary.get("to")), ("days", len(days) or None),
        ("records", f"{summary['records']:,}" if isinstance(summary.get("records"), int)
         else None),
        ("strategies", ", ".join(summary.get("strategies") or []) or None),
        ("seed", summary.get("seed")), ("capital", summary.get("capital")),
    ) if v not in (None, "")]
    listed = [f for f in summary.get("files", []) if f.endswith(".csv")]
    present = sorted(p.name for p in folder.glob("*.csv"))
    files = [f for f in listed if (folder / f).exists()] + [f for f in present if f not in listed]
    chart = folder / "equity.png"
    return Report(folder, title, facts, columns, metrics, chart if chart.exists() else None,
                  files, summary)


class CsvModel(QAbstractTableModel):
    """A CSV file's rows as read (text), read-only."""

    def __init__(self, header: list[str], rows: list[list[str]], parent=None) -> None:
        super().__init__(parent)
        self.header = header
        self.rows = rows

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.header)

    def headerData(self, section, orientation, role=_DISPLAY):
        if role != _DISPLAY:
            return None
        if orientation == Qt.Horizontal:
            return self.header[section] if section < len(self.header) else None
        return str(section + 1)

    def data(self, index, role=_DISPLAY):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        c = index.column()
        if role == _DISPLAY:
            return row[c] if c < len(row) else ""
        if role == Qt.TextAlignmentRole and c < len(row):
            try:
                float(row[c])
            except ValueError:
                return None
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None


class ReportView(QWidget):
    """One report folder: facts, metrics, chart, CSV files (module docstring)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Backtest report")
        self.report: Report | None = None
        self.title = QLabel("no report")
        self.title.setObjectName("reportTitle")
        f = self.title.font()
        f.setPointSizeF(f.pointSizeF() * 1.25)
        f.setBold(True)
        self.title.setFont(f)
        self.facts = QLabel("")
        self.facts.setWordWrap(True)
        self.message = QLabel("")
        self.message.setObjectName("reportMessage")
        self.message.setWordWrap(True)
        self.message.hide()

        self.metrics = QTableWidget(0, 1)
        self.metrics.verticalHeader().hide()
        self.metrics.setEditTriggers(QTableWidget.NoEditTriggers)
        self.metrics.setSelectionMode(QTableWidget.NoSelection)
        self.metrics.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.files = QListWidget()
        self.files.itemActivated.connect(lambda item: self.open_csv(item.text()))
        self.files.itemClicked.connect(lambda item: self.open_csv(item.text()))
        left = QSplitter(Qt.Vertical)
        left.addWidget(self.metrics)
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Files (click to open)"))
        lay.addWidget(self.files)
        left.addWidget(box)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 1)

        self.chart = QLabel("no chart")
        self.chart.setAlignment(Qt.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidget(self.chart)
        scroll.setWidgetResizable(True)
        self.tabs = QTabWidget()
        self.tabs.setTabsClosable(True)
        self.tabs.tabCloseRequested.connect(self._close_tab)
        self.tabs.addTab(scroll, "Equity")
        self.tabs.tabBar().setTabButton(0, QTabBar.RightSide, None)  # the chart stays
        self.body = QSplitter(Qt.Horizontal)
        self.body.addWidget(left)
        self.body.addWidget(self.tabs)
        self.body.setStretchFactor(0, 2)
        self.body.setStretchFactor(1, 3)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        outer.addWidget(self.title)
        outer.addWidget(self.facts)
        outer.addWidget(self.message)
        outer.addWidget(self.body, 1)
        self._tables: dict[str, QTableView] = {}

    # -- inputs ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path, parent=None) -> ReportView:
        """A window showing the report in ``folder`` (or why it cannot): the desk's menu
        action calls this. The window deletes itself when closed."""
        view = cls(parent)
        if parent is not None:
            view.setWindowFlag(Qt.Window, True)
        view.setAttribute(Qt.WA_DeleteOnClose, True)
        view.load(folder)
        view.resize(1280, 820)
        view.show()
        return view

    def load(self, folder: str | Path) -> bool:
        """Show the report in ``folder``; False (and the reason shown) if it cannot be."""
        try:
            report = load_report(folder)
        except ReportError as e:
            self.show_problem(str(e))
            return False
        self.set_report(report)
        return True

    def show_problem(self, text: str) -> None:
        self.report = None
        self.title.setText("No backtest report")
        self.facts.setText("")
        self.message.setText(text)
        self.message.show()
        self.body.hide()

    def set_report(self, report: Report) -> None:
        self.report = report
        self.message.hide()
        self.body.show()
        self.title.setText(report.title)
        self.setWindowTitle(f"{report.title} — {report.folder.name}")
        self.facts.setText("   ·   ".join(f"{k} {v}" for k, v in report.facts))
        t = self.metrics
        t.clear()
        t.setColumnCount(1 + len(report.columns))
        t.setHorizontalHeaderLabels(["Metric"] + report.columns)
        t.setRowCount(len(report.metrics))
        for r, (key, label, values) in enumerate(report.metrics):
            item = QTableWidgetItem(label or key)
            item.setToolTip(key)
            t.setItem(r, 0, item)
            for c, raw in enumerate(values, start=1):
                cell = QTableWidgetItem(format_metric(key, raw))
                cell.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                cell.setToolTip(raw)
                t.setItem(r, c, cell)
        self.files.clear()
        for name in report.files:
            self.files.addItem(QListWidgetItem(name))
        if report.chart is not None:
            pix = QPixmap(str(report.chart))
            if pix.isNull():
                self.chart.setText(f"{report.chart.name}: cannot be read")
            else:
                self.chart.setPixmap(pix)
        else:
            self.chart.setPixmap(QPixmap())
            self.chart.setText("no chart: equity.png was not drawn (see report.html)")
        while self.tabs.count() > 1:
            self.tabs.removeTab(1)
        self._tables.clear()

    # -- files -----------------------------------------------------------------------------------
    def open_csv(self, name: str) -> QTableView | None:
        """Show a CSV file of the report in its own tab (the one already open, if it is)."""
        if self.report is None:
            return None
        view = self._tables.get(name)
        if view is not None:
            self.tabs.setCurrentWidget(view)
            return view
        try:
            header, rows, n = read_csv(self.report.folder / name)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            self.message.setText(f"{name}: cannot read: {e}")
            self.message.show()
            return None
        view = QTableView()
        view.setModel(CsvModel(header, rows, view))
        mono = QFont("monospace")
        mono.setStyleHint(QFont.Monospace)
        view.setFont(mono)
        view.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        view.resizeColumnsToContents()
        label = name if n <= len(rows) else f"{name} (first {len(rows):,} of {n:,})"
        self._tables[name] = view
        self.tabs.addTab(view, label)
        self.tabs.setCurrentWidget(view)
        return view

    def _close_tab(self, k: int) -> None:
        if k == 0:  # the chart stays
            return
        w = self.tabs.widget(k)
        for name, v in list(self._tables.items()):
            if v is w:
                del self._tables[name]
        self.tabs.removeTab(k)
        w.deleteLater()
