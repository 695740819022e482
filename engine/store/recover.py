"""Rebuild the engine's state from the store's database on restart: ``load(url) -> Recovered``.

Run it *after* ``StoreLink`` has started (a segment an engine left behind is written first) and
before trading starts. What comes back:

- every order as an ``engine.execution.orders.Order`` (``orders``) and the working ones
  (``working``: not in a terminal state), each carrying the ExecIDs of its executions, so a
  venue replaying a fill after the restart is still recognised as a duplicate;
- every limit edit (``limit_changes``), oldest first; every execution with its fee, oldest
  first, and whose each order was (``order_tags``), so each book's positions can be rebuilt;
- positions by symbol, the last event of every kill switch (by the name the engine gave it in
  ``kills``, by its scope name, "strategy:pairs", in ``kill_scopes``), and per FIX session its
  next sequence numbers and the messages it sent (for resend requests).

**Executions are the truth for fills.** The engine hands an execution and the order's new state
as two records; a crash can leave the first written and not the second. An order whose row
disagrees with its executions therefore takes cum_qty/avg_px from the executions (and
PartiallyFilled/Filled accordingly) and is listed in ``repaired`` with the reason, so the
engine can log it: a fill is never lost nor applied twice.

An order recovered in PendingCancel/PendingReplace comes back to New (or PartiallyFilled)
when the venue refuses the request: the state before the request is not stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sqlalchemy import select

from engine.execution.orders import TERMINAL, Order, OrdStatus
from engine.store import models as m

__all__ = ["FixSessionState", "KillEvent", "Position", "Recovered", "StoredOrder", "load"]


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An ``orders`` row as it is in the database (the columns ``Order`` has no field for)."""

    cl_ord_id: str
    venue: str
    symbol: str
    side: int
    qty: int
    price: float | None
    tif: str
    status: OrdStatus
    cum_qty: int
    leaves_qty: int
    avg_px: float
    venue_order_id: str
    parent_id: str | None
    created_ns: int
    updated_ns: int


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    qty: int
    avg_px: float
    realized: float
    updated_ns: int


@dataclass(frozen=True, slots=True)
class KillEvent:
    name: str  # the switch's name as the engine gave it: "global", "ESZ6", "strategy:pairs"
    scope: int
    scope_id: int
    tripped: bool  # state != "active"
    user: str
    reason: str
    ts_ns: int
    state: str = ""  # "active", "reducing", "halted"
    scope_name: str = ""  # "global", "instrument:ESZ6", "strategy:pairs"


@dataclass(slots=True)
class FixSessionState:
    next_sender_seq: int = 1
    next_target_seq: int = 1
    sent: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Recovered:
    orders: dict[str, Order] = field(default_factory=dict)
    working: dict[str, Order] = field(default_factory=dict)
    rows: dict[str, StoredOrder] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    kills: dict[str, KillEvent] = field(default_factory=dict)  # the last event per switch
    kill_scopes: dict[str, KillEvent] = field(default_factory=dict)  # the same by scope name
    fix_sessions: dict[str, FixSessionState] = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)
    #: every execution, oldest first: (ts_ns, cl_ord_id, symbol, side, qty, price, fee)
    executions: list[tuple[int, str, str, int, int, float, float]] = field(default_factory=list)
    #: whose each order is: ClOrdID -> (source, account)
    order_tags: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: every limit edit, oldest first: (ts_ns, scope, key, new value as text, user, reason)
    limit_changes: list[tuple[int, str, str, str, str, str]] = field(default_factory=list)

    def fix_session(self, session: str) -> FixSessionState:
        """The stored state of ``session`` (a fresh one if it was never stored)."""
        return self.fix_sessions.get(session) or FixSessionState()


_HAS_TIF = "tif" in {f.name for f in dataclasses.fields(Order)}


def load(url: str) -> Recovered:
    """Read everything a restarting engine needs from the database at ``url``."""
    eng = m.open_db(url)
    try:
        with eng.connect() as conn:
            return _load(conn)
    finally:
        eng.dispose()


def _load(conn) -> Recovered:
    out = Recovered()
    fills: dict[str, list[tuple[str, int, float]]] = {}
    for e in conn.execute(select(m.executions.c.cl_ord_id, m.executions.c.exec_id,
                                 m.executions.c.qty, m.executions.c.price)
                          .order_by(m.executions.c.ts_ns)):
        fills.setdefault(e.cl_ord_id, []).append((e.exec_id, e.qty, e.price))
    for r in conn.execute(select(m.orders).order_by(m.orders.c.created_ns, m.orders.c.cl_ord_id)):
        row = StoredOrder(
            cl_ord_id=r.cl_ord_id, venue=r.venue, symbol=r.symbol, side=r.side, qty=r.qty,
            price=r.price, tif=r.tif, status=OrdStatus(r.status), cum_qty=r.cum_qty,
            leaves_qty=r.leaves_qty, avg_px=r.avg_px, venue_order_id=r.venue_order_id,
            parent_id=r.parent_id, created_ns=r.created_ns, updated_ns=r.updated_ns)
        out.rows[row.cl_ord_id] = row
        order = _order(row, fills.get(row.cl_ord_id, ()), out.repaired)
        out.orders[order.cl_ord_id] = order
        if order.status not in TERMINAL:
            out.working[order.cl_ord_id] = order
    for p in conn.execute(select(m.positions)):
        out.positions[p.symbol] = Position(p.symbol, p.qty, p.avg_px, p.realized, p.updated_ns)
    for k in conn.execute(select(m.kill_events).order_by(m.kill_events.c.ts_ns)):
        ev = KillEvent(k.name, k.scope, k.scope_id, bool(k.tripped), k.user, k.reason, k.ts_ns,
                       k.state, k.scope_name)
        out.kills[k.name] = ev
        out.kill_scopes[k.scope_name] = ev
    x = m.executions.c
    for e in conn.execute(select(x.ts_ns, x.cl_ord_id, x.symbol, x.side, x.qty, x.price, x.fee)
                          .order_by(x.ts_ns, x.exec_id)):
        out.executions.append(tuple(e))
    for t in conn.execute(select(m.order_tags)):
        out.order_tags[t.cl_ord_id] = (t.source, t.account)
    for c in conn.execute(select(m.limit_changes).order_by(m.limit_changes.c.ts_ns)):
        out.limit_changes.append((c.ts_ns, c.scope, c.key, c.new_value, c.user, c.reason))
    for s in conn.execute(select(m.fix_sessions)):
        out.fix_sessions[s.session_id] = FixSessionState(s.next_sender_seq, s.next_target_seq)
    for msg in conn.execute(select(m.fix_messages).order_by(m.fix_messages.c.session_id,
                                                           m.fix_messages.c.seq)):
        st = out.fix_sessions.setdefault(msg.session_id, FixSessionState())
        st.sent[msg.seq] = bytes(msg.raw)
    return out


def _order(row: StoredOrder, fills, repaired: list[str]) -> Order:
    kw = {"cl_ord_id": row.cl_ord_id, "symbol": row.symbol, "side": row.side, "qty": row.qty,
              "price": row.price, "venue": row.venue, "status": row.status, "cum_qty": row.cum_qty,
              "avg_px": row.avg_px, "venue_order_id": row.venue_order_id}
    if _HAS_TIF:
        kw["tif"] = row.tif
    order = Order(**kw)
    order._exec_ids = {f[0] for f in fills}
    if row.status in (OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE):
        order._before_pending = OrdStatus.PARTIALLY_FILLED if row.cum_qty else OrdStatus.NEW
    cum = sum(f[1] for f in fills)
    if cum != row.cum_qty:
        avg = sum(f[1] * f[2] for f in fills) / cum if cum else 0.0
        why = (f"order {row.cl_ord_id}: row says {row.cum_qty} filled at {row.avg_px:g} "
               f"({row.status.value}), its executions {cum} at {avg:g}")
        order.cum_qty = cum
        order.avg_px = avg
        if cum >= row.qty and row.status is not OrdStatus.FILLED:
            order.status = OrdStatus.FILLED
            order._before_pending = None
        elif cum < row.qty and row.status is OrdStatus.FILLED:  # its last fill was not stored
            order.status = OrdStatus.PARTIALLY_FILLED if cum else OrdStatus.NEW
        elif cum and row.status in (OrdStatus.PENDING_NEW, OrdStatus.NEW):
            order.status = OrdStatus.PARTIALLY_FILLED
        repaired.append(f"{why}: executions kept, now {order.status.value}")
    return order
