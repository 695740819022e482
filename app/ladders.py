"""The desk's trading ladders: our working orders by instrument, and a ladder panel per dock.

``WorkingOrders`` keeps every live order the engine reports (ORDER events), by symbol, so each
ladder shows ours at their levels; it also carries out a ladder's drag (cancel/replace): the
new order goes out only once the venue confirms the cancel, for what was left, so a fill that
raced the cancel is never doubled.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from widgets import LadderWidget, WorkingOrder

__all__ = ["LadderPanel", "Move", "WorkingOrders"]

#: statuses in which an order still works at its venue
_LIVE = frozenset({"PendingNew", "New", "PartiallyFilled", "PendingCancel", "PendingReplace",
                   "Replaced"})


@dataclass(frozen=True, slots=True)
class Move:
    """A cancel/replace's second half: send ``qty`` at ``price`` (the order's venue, side and
    time in force) now that its cancel is confirmed."""

    symbol: str
    venue: str
    side: str
    qty: int
    price: float
    tif: str
    replaces: str


class WorkingOrders:
    """Live orders by symbol, from ORDER events."""

    def __init__(self) -> None:
        self._orders: dict[str, tuple[str, WorkingOrder]] = {}  # cl_ord_id -> (symbol, order)
        self._moves: dict[str, float] = {}  # cl_ord_id -> the price it is moving to
        self.dirty: set[str] = set()  #: symbols whose working orders changed since taken

    def update(self, o) -> Move | None:
        """One ORDER event (an ``OrderRecord``); a ``Move`` when it confirms a moved order's
        cancel with quantity left to place again."""
        live = o.status in _LIVE and o.leaves_qty > 0 and o.price is not None
        had = self._orders.get(o.cl_ord_id)
        if live:
            w = WorkingOrder(o.cl_ord_id, o.side, o.price, float(o.leaves_qty))
            if had is None or had[1] != w:
                self._orders[o.cl_ord_id] = (o.symbol, w)
                self.dirty.add(o.symbol)
        elif had is not None:
            del self._orders[o.cl_ord_id]
            self.dirty.add(had[0])
        if live:
            return None
        price = self._moves.pop(o.cl_ord_id, None)
        left = o.qty - o.cum_qty
        if price is None or o.status != "Cancelled" or left <= 0:
            return None
        return Move(o.symbol, o.venue, o.side, left, price, o.tif, o.cl_ord_id)

    def of(self, symbol: str) -> list[WorkingOrder]:
        return [w for s, w in self._orders.values() if s == symbol]

    def get(self, cl_ord_id: str) -> tuple[str, WorkingOrder] | None:
        return self._orders.get(cl_ord_id)

    def moving(self, cl_ord_id: str, price: float) -> None:
        """``cl_ord_id``'s cancel is being sent: once confirmed, re-place it at ``price``."""
        self._moves[cl_ord_id] = price

    def move_failed(self, cl_ord_id: str) -> None:
        self._moves.pop(cl_ord_id, None)

    def clear(self) -> None:
        self.dirty |= {s for s, _ in self._orders.values()}
        self._orders.clear()
        self._moves.clear()


class LadderPanel(QWidget):
    """A ladder with its own instrument chooser: several are docked at once."""

    instrument_changed = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.ladder = LadderWidget()
        self.box = QComboBox()
        self.box.setMinimumWidth(120)
        self.box.setToolTip("The instrument this ladder trades")
        self.index = -1
        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 0)
        top.addWidget(QLabel("Instrument"))
        top.addWidget(self.box, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(top)
        lay.addWidget(self.ladder, 1)
        self.box.currentIndexChanged.connect(self._chosen)

    def set_instruments(self, symbols: list[str], want: str | None) -> None:
        """The engine's instruments; keep ``want`` (or this panel's symbol) chosen if it is
        one of them."""
        keep = want or self.box.currentText()
        self.box.blockSignals(True)
        self.box.clear()
        self.box.addItems(symbols)
        idx = self.box.findText(keep) if keep else -1
        self.box.setCurrentIndex(max(idx, 0) if symbols else -1)
        self.box.blockSignals(False)
        self.index = -1
        self._chosen(self.box.currentIndex())

    @property
    def symbol(self) -> str:
        return self.box.currentText()

    def _chosen(self, idx: int) -> None:
        if idx != self.index and idx >= 0:
            self.index = idx
            self.instrument_changed.emit(idx)
