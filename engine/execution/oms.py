"""The order manager, sans-IO: order intents in, FIX application messages out; reports in,
order updates out.

``Oms`` knows orders, not sockets: it hands each outgoing message to ``send(venue, msg_type,
body)`` (the engine's FIX sessions behind it; ``None`` back means the venue is not logged
on), and it is fed every application message a venue session delivers
(``on_message(venue, message)``). Every change to an order goes through its state machine
(``engine.execution.orders``); whatever the machine refuses, or whatever cannot be matched to
an order, is logged with the reason and counted, never raised. Fills apply once per ExecID.

Doubt and reconciliation: when a venue's session drops, its live orders become *unknown*
(``on_venue_down``); orders rebuilt after a restart (``restore``) start unknown too. Once the
session is back, ``request_status`` sends an OrderStatusRequest (35=H) for each, and the
venue's answer (ExecutionReport 150=I) settles it: fills the engine missed are applied (one
synthetic execution for the difference in CumQty, at the price that makes AvgPx right), an
order the venue reports cancelled, expired or does not know is closed. Until then the order
stays unknown and the desk shows it so.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

from engine.execution.orders import TERMINAL, ClOrdIds, Order, OrderEvent, OrdStatus
from engine.fix.codec import FixMessage, float_bytes, utc_timestamp

__all__ = ["Oms", "OrderUpdate"]

log = logging.getLogger("helmdesk.oms")

Send = Callable[[str, bytes, list], "int | None"]

_EXEC_EVENTS = {
    b"0": OrderEvent.ACK_NEW,
    b"4": OrderEvent.CANCELLED,
    b"8": OrderEvent.REJECT,
    b"C": OrderEvent.EXPIRED,
}
_TIF = {"day": b"0", "ioc": b"3", "fok": b"4"}
# The bodies of the messages every order sends, one ``%`` each (FixSession.send takes them
# encoded: codec.frame), in the field order the field-by-field encoding had
_NOS_LIMIT = b"11=%s\x0155=%s\x0154=%d\x0160=%s\x0138=%d\x0140=2\x0144=%s\x0159=%s\x01"
_NOS_MARKET = b"11=%s\x0155=%s\x0154=%d\x0160=%s\x0138=%d\x0140=1\x0159=%s\x01"
_CANCEL = b"%s41=%s\x0111=%s\x0155=%s\x0154=%d\x0160=%s\x01"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 1 µs per report
class OrderUpdate:
    """What changed, for the desk's blotter and the event ring."""

    cl_ord_id: str
    venue: str
    symbol: str
    status: OrdStatus
    cum_qty: int
    leaves_qty: int
    last_qty: int = 0
    last_px: float = 0.0
    text: str = ""
    unknown: bool = False  #: the venue's session dropped: state in doubt until reconciled
    exec_id: str = ""  #: the execution applied by this update (last_qty > 0)
    fee: float = 0.0  #: what the venue charged for this execution (Commission 12; rebate < 0)


class Oms:
    def __init__(self, ids: ClOrdIds, send: Send,
                 on_intent: Callable[[OrderUpdate, Order], None] | None = None) -> None:
        self.ids = ids
        self.send = send
        #: told of every order an intent changed (sent: PendingNew; cancel sent: PendingCancel),
        #: whoever asked (the desk, the router, a kill switch)
        self.on_intent = on_intent
        self.orders: dict[str, Order] = {}
        self._alias: dict[str, str] = {}  # ClOrdID of a cancel request -> the order's
        self.unknown: set[str] = set()  # orders whose venue dropped while they were live
        self._symbols: dict[str, bytes] = {}  # symbol -> its FIX value
        self.counters = dict.fromkeys(
            ("orders", "rejected_locally", "fills", "duplicates", "unmatched", "refused",
             "cancels_too_late"), 0)

    # -- intents -----------------------------------------------------------------------------
    def new_order(self, venue: str, symbol: str, side: int, qty: int, price: float | None,
                  tif: str, now_ns: int) -> Order | str:
        """Send a NewOrderSingle; return the order, or why it was not sent."""
        why = _check_order(side, qty, price, tif)
        if why is None:
            cl = self.ids.next()
            sym = self._symbol_b(symbol)
            if price is not None:
                body = _NOS_LIMIT % (cl.encode(), sym, side, utc_timestamp(now_ns), qty,
                                     float_bytes(float(price)), _TIF[tif])
            else:
                body = _NOS_MARKET % (cl.encode(), sym, side, utc_timestamp(now_ns), qty,
                                      _TIF[tif])
            if self.send(venue, b"D", body) is None:
                why = f"venue {venue} is not logged on"
        if why is not None:
            self.counters["rejected_locally"] += 1
            log.warning("order %s %s %s@%s on %s NOT SENT: %s", symbol, side, qty, price, venue, why)
            return why
        o = Order(cl_ord_id=cl, symbol=symbol, side=side, qty=qty, price=price, venue=venue,
                  tif=tif)
        self.orders[cl] = o
        self.counters["orders"] += 1
        if self.on_intent is not None:
            self.on_intent(self._update(o), o)
        return o

    def cancel(self, cl_ord_id: str, now_ns: int) -> str | None:
        """Send an OrderCancelRequest; return why not, or None. A cancel is never blocked by
        risk checks; only an order that is not live (or a venue that is down) stops it."""
        o = self.orders.get(cl_ord_id)
        if o is None:
            return f"unknown order {cl_ord_id}"
        why = o.apply(OrderEvent.CANCEL_REQUESTED)
        if why is not None:
            return why
        req = self.ids.next()
        vo = o.venue_order_id
        body = _CANCEL % (b"37=%s\x01" % vo.encode() if vo else b"", o.cl_ord_id.encode(),
                          req.encode(), self._symbol_b(o.symbol), o.side,
                          utc_timestamp(now_ns))
        if self.send(o.venue, b"F", body) is None:
            o.apply(OrderEvent.CANCEL_REJECTED)  # nothing went out: back where it was
            return f"venue {o.venue} is not logged on"
        self._alias[req] = o.cl_ord_id
        if self.on_intent is not None:
            self.on_intent(self._update(o), o)
        return None

    def cancel_all(self, now_ns: int, venue: str | None = None, symbol: str | None = None) -> int:
        """Cancel every live order in scope; return how many cancel requests went out."""
        n = 0
        for o in list(self.orders.values()):
            if venue not in (None, o.venue) or symbol not in (None, o.symbol):
                continue
            if o.status in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.PENDING_NEW):
                n += self.cancel(o.cl_ord_id, now_ns) is None
        return n

    def _symbol_b(self, symbol: str) -> bytes:
        """``symbol`` as a FIX value (checked once: the templates take it as it is)."""
        b = self._symbols.get(symbol)
        if b is None:
            b = symbol.encode()
            if not b or b"\x01" in b:
                raise ValueError(f"symbol {symbol!r} cannot be a FIX value")
            self._symbols[symbol] = b
        return b

    def live(self) -> list[Order]:
        return [o for o in self.orders.values() if o.leaves_qty > 0]

    # -- reports -----------------------------------------------------------------------------
    def on_message(self, venue: str, m: FixMessage) -> list[OrderUpdate]:
        """Apply one application message from ``venue``; return the updates it caused."""
        if m.msg_type == b"8":
            return self._on_execution_report(venue, m)
        if m.msg_type == b"9":
            return self._on_cancel_reject(venue, m)
        self.counters["unmatched"] += 1
        log.warning("%s sent 35=%s, which the OMS does not handle", venue, _s(m.msg_type))
        return []

    def in_doubt(self, venue: str, m: FixMessage, why: str) -> OrderUpdate | None:
        """A message from ``venue`` could not be used (``why``): the order it names, if any,
        is in doubt until the venue answers an OrderStatusRequest."""
        o = self._find(venue, m, quiet=True)
        if o is None:
            return None
        self.unknown.add(o.cl_ord_id)
        return self._update(o, text=f"in doubt: {why}"[:200])

    def _find(self, venue: str, m: FixMessage, quiet: bool = False) -> Order | None:
        for tag in (11, 41):
            raw = m.get(tag)
            if raw is None:
                continue
            cl = raw.decode("ascii", "replace")
            cl = self._alias.get(cl, cl)
            o = self.orders.get(cl)
            if o is not None and o.venue == venue:
                return o
        if quiet:
            return None
        self.counters["unmatched"] += 1
        log.warning("%s: report for unknown order 11=%s 41=%s ignored", venue,
                    _s(m.get(11)), _s(m.get(41)))
        return None

    def _on_execution_report(self, venue: str, m: FixMessage) -> list[OrderUpdate]:
        o = self._find(venue, m)
        if o is None:
            return []
        et = m.get(150)
        raw = m.get(58)
        text = raw.decode("ascii", "replace") if raw else ""
        if not o.venue_order_id:
            raw = m.get(37)
            if raw and raw != b"NONE":
                o.venue_order_id = raw.decode("ascii", "replace")
        last_qty, last_px, fee = 0, 0.0, 0.0
        if et == b"F":
            try:
                last_qty, last_px = m.get_int(32), m.get_float(31)
                exec_id = m.get(17).decode("ascii", "replace")
                if 12 in m:
                    fee = m.get_float(12)
                    if not math.isfinite(fee):
                        raise ValueError(f"Commission(12) is {fee}")
            except (ValueError, AttributeError) as e:
                return self._refuse(o, f"fill report without usable 17/31/32/12: {e}")
            if o.has_execution(exec_id):  # a resend or a replay after reconnect
                self.counters["duplicates"] += 1
                return []
            why = o.apply_fill(exec_id, last_qty, last_px)
            if why is not None:
                return self._refuse(o, why)
            self.counters["fills"] += 1
        elif et == b"I":
            return self._on_status(o, m, text)
        else:
            event = _EXEC_EVENTS.get(et)
            if event is None:
                return self._refuse(o, f"ExecType {_s(et)} is not handled")
            why = o.apply(event)
            if why is not None:
                if event is OrderEvent.ACK_NEW and m.poss_dup:
                    self.counters["duplicates"] += 1  # a resent ack of an order already moving
                    return []
                return self._refuse(o, why)
        if self.unknown:
            self.unknown.discard(o.cl_ord_id)
        return [self._update(o, last_qty, last_px, text, exec_id if et == b"F" else "", fee)]

    def _on_status(self, o: Order, m: FixMessage, text: str) -> list[OrderUpdate]:
        """An answer to OrderStatusRequest: make our order agree with the venue's."""
        try:
            cum = m.get_int(14) if 14 in m else o.cum_qty
            avg = m.get_float(6) if 6 in m else 0.0
        except ValueError as e:
            return self._refuse(o, f"order {o.cl_ord_id}: status report unreadable: {e}")
        last_qty, last_px, exec_id = 0, 0.0, ""
        if cum > o.cum_qty:
            last_qty = cum - o.cum_qty
            last_px = (avg * cum - o.avg_px * o.cum_qty) / last_qty
            # unique per order (and so per venue): two orders reconciled to the same CumQty
            # are two executions, not a duplicate
            exec_id = f"reconciled-{o.cl_ord_id}-{cum}"
            why = o.apply_fill(exec_id, min(last_qty, o.qty - o.cum_qty), last_px)
            if why is not None:
                return self._refuse(o, why)
            self.counters["fills"] += 1
            log.warning("order %s: the venue reports %d filled, we had %d: applied the "
                        "difference at %.8g", o.cl_ord_id, cum, cum - last_qty, last_px)
            text = text or f"reconciled: {last_qty} filled while in doubt"
        status = m.get(39)
        event = None
        if status in (b"4", b"8") and o.leaves_qty > 0:
            event = OrderEvent.REJECT if o.status is OrdStatus.PENDING_NEW else OrderEvent.CANCELLED
            text = text or "the venue reports it closed"
        elif status == b"C" and o.leaves_qty > 0:
            event = OrderEvent.EXPIRED
        if event is not None:
            why = o.apply(event)
            if why is not None:
                return self._refuse(o, why)
            log.warning("order %s: reconciled to %s: %s", o.cl_ord_id, o.status.value, text)
        self.unknown.discard(o.cl_ord_id)
        return [self._update(o, last_qty, last_px, text, exec_id)]

    def _on_cancel_reject(self, venue: str, m: FixMessage) -> list[OrderUpdate]:
        o = self._find(venue, m)
        if o is None:
            return []
        event = OrderEvent.REPLACE_REJECTED if m.get(434) == b"2" else OrderEvent.CANCEL_REJECTED
        if o.status in TERMINAL:  # the fill (or cancel) crossed our request: the usual race
            self.counters["cancels_too_late"] += 1
            log.info("order %s: %s after it was %s: %s", o.cl_ord_id, event.value,
                     o.status.value, _s(m.get(58, b"")))
            return []
        why = o.apply(event)
        if why is not None:
            return self._refuse(o, why)
        return [self._update(o, text=f"cancel refused: {_s(m.get(58, b''))}")]

    def _refuse(self, o: Order, why: str) -> list[OrderUpdate]:
        self.counters["refused"] += 1
        log.warning("%s", why)
        return []

    def last_update(self, o: Order, text: str = "") -> OrderUpdate:
        """The order as it is now, as an update (after an intent changed it)."""
        return self._update(o, text=text)

    def _update(self, o: Order, last_qty: int = 0, last_px: float = 0.0, text: str = "",
                exec_id: str = "", fee: float = 0.0) -> OrderUpdate:
        return OrderUpdate(o.cl_ord_id, o.venue, o.symbol, o.status, o.cum_qty, o.leaves_qty,
                           last_qty, last_px, text, o.cl_ord_id in self.unknown, exec_id, fee)

    # -- venue sessions ----------------------------------------------------------------------
    def request_status(self, venue: str, now_ns: int, only: str | None = None) -> int:
        """The venue's session is back: ask about each of its orders in doubt (35=H), or
        about the order ``only``."""
        n = 0
        for cl in sorted(self.unknown) if only is None else [only]:
            o = self.orders[cl]
            if o.venue != venue:
                continue
            body = [(11, cl), (55, o.symbol), (54, str(o.side))]
            if o.venue_order_id:
                body.insert(0, (37, o.venue_order_id))
            if self.send(venue, b"H", body) is None:
                break
            n += 1
        return n

    def restore(self, orders: list[Order]) -> list[OrderUpdate]:
        """Orders rebuilt from the store after a restart: live ones are in doubt until their
        venue answers ``request_status``."""
        out = []
        for o in orders:
            self.orders[o.cl_ord_id] = o
            if o.leaves_qty > 0:
                self.unknown.add(o.cl_ord_id)
            out.append(self._update(o, text="restored"))
        return out

    def on_venue_down(self, venue: str) -> list[OrderUpdate]:
        """The venue's session dropped: its live orders are in doubt (the venue cancels on
        disconnect, but that is its word, not ours) until a report says otherwise."""
        out = []
        for o in self.orders.values():
            if o.venue == venue and o.leaves_qty > 0:
                self.unknown.add(o.cl_ord_id)
                out.append(self._update(o, text="venue session down"))
        return out


def _check_order(side: int, qty: int, price: float | None, tif: str) -> str | None:
    if side not in (1, 2):
        return f"side must be 1 (buy) or 2 (sell), was {side!r}"
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        return f"quantity must be a positive whole number, was {qty!r}"
    if price is not None and (not math.isfinite(price) or price <= 0):
        return f"price must be a positive number, was {price!r}"
    if tif not in _TIF:
        return f"time in force must be day, ioc or fok, was {tif!r}"
    return None


def _s(raw: bytes | None) -> str:
    return "<missing>" if raw is None else raw.decode("ascii", "replace")
