"""What the desk's flat table models share: Qt's role numbers as plain ints (``data`` is
asked thousands of times a second: comparing ints beats comparing enums), the alignments, and
the row, column and header plumbing of a table without a tree."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt

__all__ = ["ALIGN", "BG", "CENTRE", "DISPLAY", "FG", "FONT", "LEFT", "RIGHT", "TIP",
           "TableModel"]

DISPLAY = Qt.DisplayRole.value
FG = Qt.ForegroundRole.value
BG = Qt.BackgroundRole.value
ALIGN = Qt.TextAlignmentRole.value
FONT = Qt.FontRole.value
TIP = Qt.ToolTipRole.value
RIGHT = int((Qt.AlignRight | Qt.AlignVCenter).value)
LEFT = int((Qt.AlignLeft | Qt.AlignVCenter).value)
CENTRE = int(Qt.AlignCenter.value)


class TableModel(QAbstractTableModel):
    """A flat table: ``columns`` are its headers; a subclass gives ``row_count()`` and
    ``data``, and ``header(section, role)`` for a header's other roles (alignment, tooltip)."""

    columns: tuple[str, ...] = ()

    def row_count(self) -> int:  # pragma: no cover - per model
        raise NotImplementedError

    def header(self, section: int, role: int):
        return None

    # -- QAbstractTableModel ---------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else self.row_count()

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=DISPLAY):
        if orientation == Qt.Horizontal and 0 <= section < len(self.columns):
            return self.columns[section] if role == DISPLAY else self.header(section, role)
        return None
