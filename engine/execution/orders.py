"""The order state machine, table-driven (one place says every legal transition).

As h11's ``_state.py``: ``TRANSITIONS[(state, event)]`` is the new state; a pair that is not
in the table is impossible and is refused with a reason the caller logs (``apply`` returns it;
the order is left as it was). ``PREVIOUS`` means "back to the state before the pending one"
(a cancel or replace the venue refused).

``Order.apply_fill`` applies an execution exactly once: an ExecID seen before is a duplicate
ExecutionReport (a resend with PossDupFlag, a venue replaying after reconnect) and changes
nothing. ``ClOrdIds`` makes ids that stay unique across engine restarts.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

__all__ = [
    "OrdStatus",
    "OrderEvent",
    "TRANSITIONS",
    "PREVIOUS",
    "Order",
    "ClOrdIds",
    "TERMINAL",
]


class OrdStatus(enum.Enum):
    # Members are singletons compared by identity: hash them by identity too (Enum's own
    # __hash__ is Python code; the transition table and TERMINAL hash on every report).
    __hash__ = object.__hash__

    PENDING_NEW = "PendingNew"  #: sent, no answer yet
    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    FILLED = "Filled"
    PENDING_CANCEL = "PendingCancel"
    CANCELLED = "Cancelled"
    PENDING_REPLACE = "PendingReplace"
    REPLACED = "Replaced"  #: this version was replaced; the new ClOrdID carries on
    REJECTED = "Rejected"
    EXPIRED = "Expired"


class OrderEvent(enum.Enum):
    __hash__ = object.__hash__  # as OrdStatus

    ACK_NEW = "ack new"  #: ER 150=0
    PARTIAL_FILL = "partial fill"  #: ER 150=F, leaves > 0
    FULL_FILL = "full fill"  #: ER 150=F, leaves == 0
    REJECT = "reject"  #: ER 150=8
    CANCEL_REQUESTED = "cancel requested"  #: we sent OrderCancelRequest
    CANCELLED = "cancelled"  #: ER 150=4 (asked for, or unsolicited)
    CANCEL_REJECTED = "cancel rejected"  #: 35=9 with 434=1
    REPLACE_REQUESTED = "replace requested"  #: we sent OrderCancelReplaceRequest
    REPLACED = "replaced"  #: ER 150=5
    REPLACE_REJECTED = "replace rejected"  #: 35=9 with 434=2
    EXPIRED = "expired"  #: ER 150=C


PREVIOUS = "previous"  # marker: back to where the order was before its pending request

S, E = OrdStatus, OrderEvent
_LIVE = (S.NEW, S.PARTIALLY_FILLED)

#: Rule 1: every legal transition is here, and only here.
TRANSITIONS: dict[tuple[OrdStatus, OrderEvent], OrdStatus | str] = {
    (S.PENDING_NEW, E.ACK_NEW): S.NEW,
    (S.PENDING_NEW, E.REJECT): S.REJECTED,
    (S.PENDING_NEW, E.PARTIAL_FILL): S.PARTIALLY_FILLED,  # a fill may overtake the ack
    (S.PENDING_NEW, E.FULL_FILL): S.FILLED,
    (S.PENDING_NEW, E.CANCELLED): S.CANCELLED,  # IOC/FOK/market remainder, unsolicited
    (S.PENDING_NEW, E.CANCEL_REQUESTED): S.PENDING_CANCEL,
    (S.PENDING_NEW, E.EXPIRED): S.EXPIRED,
    **{(st, E.PARTIAL_FILL): S.PARTIALLY_FILLED for st in _LIVE},
    **{(st, E.FULL_FILL): S.FILLED for st in _LIVE},
    **{(st, E.CANCELLED): S.CANCELLED for st in _LIVE},  # unsolicited cancel
    **{(st, E.CANCEL_REQUESTED): S.PENDING_CANCEL for st in _LIVE},
    **{(st, E.REPLACE_REQUESTED): S.PENDING_REPLACE for st in _LIVE},
    **{(st, E.EXPIRED): S.EXPIRED for st in _LIVE},
    (S.PENDING_CANCEL, E.CANCELLED): S.CANCELLED,
    (S.PENDING_CANCEL, E.CANCEL_REJECTED): PREVIOUS,
    (S.PENDING_CANCEL, E.PARTIAL_FILL): S.PENDING_CANCEL,  # fills still count meanwhile
    (S.PENDING_CANCEL, E.FULL_FILL): S.FILLED,
    (S.PENDING_CANCEL, E.ACK_NEW): S.PENDING_CANCEL,  # the late ack of a pending-new
    (S.PENDING_CANCEL, E.EXPIRED): S.EXPIRED,
    (S.PENDING_REPLACE, E.REPLACED): S.REPLACED,
    (S.PENDING_REPLACE, E.REPLACE_REJECTED): PREVIOUS,
    (S.PENDING_REPLACE, E.PARTIAL_FILL): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.FULL_FILL): S.FILLED,
    (S.PENDING_REPLACE, E.CANCELLED): S.CANCELLED,
    (S.PENDING_REPLACE, E.EXPIRED): S.EXPIRED,
}
del S, E

TERMINAL = frozenset(
    {OrdStatus.FILLED, OrdStatus.CANCELLED, OrdStatus.REPLACED, OrdStatus.REJECTED, OrdStatus.EXPIRED}
)


@dataclass(slots=True)
class Order:
    cl_ord_id: str
    symbol: str
    side: int  # 1 buy, 2 sell
    qty: int
    price: float | None
    venue: str
    tif: str = "day"
    status: OrdStatus = OrdStatus.PENDING_NEW
    cum_qty: int = 0
    avg_px: float = 0.0
    venue_order_id: str = ""
    _before_pending: OrdStatus | None = None
    _exec_ids: set[str] = field(default_factory=set)

    @property
    def leaves_qty(self) -> int:
        return 0 if self.status in TERMINAL else self.qty - self.cum_qty

    def apply(self, event: OrderEvent) -> str | None:
        """Move by ``event``; return why it is impossible (the order is unchanged), or None."""
        new = TRANSITIONS.get((self.status, event))
        if new is None:
            return (f"order {self.cl_ord_id}: {event.value} is impossible in state "
                    f"{self.status.value}")
        if new == PREVIOUS:
            new = self._before_pending or OrdStatus.NEW
            self._before_pending = None
        elif new in (OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE):
            if self.status not in (OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE):
                self._before_pending = self.status
            elif event is OrderEvent.ACK_NEW:
                self._before_pending = OrdStatus.NEW  # a refused cancel comes back to New
        self.status = new
        if new in TERMINAL:
            self._before_pending = None
        return None

    def has_execution(self, exec_id: str) -> bool:
        """True once the execution ``exec_id`` has been applied to this order."""
        return exec_id in self._exec_ids

    def apply_fill(self, exec_id: str, last_qty: int, last_px: float) -> str | None:
        """Apply one execution once. Return why not (duplicate, overfill, impossible)."""
        if exec_id in self._exec_ids:
            return f"order {self.cl_ord_id}: execution {exec_id} already applied (duplicate)"
        if last_qty <= 0:
            return f"order {self.cl_ord_id}: execution {exec_id} has quantity {last_qty}"
        if self.cum_qty + last_qty > self.qty:
            return (f"order {self.cl_ord_id}: execution {exec_id} of {last_qty} would fill "
                    f"{self.cum_qty + last_qty} of {self.qty}")
        full = self.cum_qty + last_qty == self.qty
        why = self.apply(OrderEvent.FULL_FILL if full else OrderEvent.PARTIAL_FILL)
        if why is not None:
            return why
        self._exec_ids.add(exec_id)
        self.avg_px = (self.avg_px * self.cum_qty + last_px * last_qty) / (self.cum_qty + last_qty)
        self.cum_qty += last_qty
        if self._before_pending is OrdStatus.NEW:
            self._before_pending = OrdStatus.PARTIALLY_FILLED  # a refused cancel comes back here
        return None


class ClOrdIds:
    """ClOrdIDs unique across restarts: ``<prefix>-<start time, base 36>-<counter>``.

    The start time is the engine's wall clock in ms at start-up (from ``engine.core.clock``):
    a restart gets a later one, so ids never repeat unless the clock goes back, which
    ``__init__`` refuses when told the last start time it used.
    """

    def __init__(self, prefix: str, start_wall_ms: int, last_start_wall_ms: int = 0) -> None:
        if start_wall_ms <= last_start_wall_ms:
            raise ValueError(
                f"clock went back: start {start_wall_ms} ms is not after the last start "
                f"{last_start_wall_ms} ms; ClOrdIDs could repeat"
            )
        self.start_wall_ms = start_wall_ms
        self._head = f"{prefix}-{_b36(start_wall_ms)}-"
        self._n = itertools.count(1)
        self._high = -1  # counter // 36 whose digits _high_b36 holds
        self._high_b36 = ""

    def next(self) -> str:
        high, low = divmod(next(self._n), 36)
        if high != self._high:  # all but the last digit change once every 36 ids
            self._high = high
            self._high_b36 = _b36(high) if high else ""
        return self._head + self._high_b36 + _DIGITS[low]


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if not n:
            return out
