"""A price-time-priority matching engine for one instrument: sans-IO, no FIX, no sockets.

A venue holds one ``MatchingEngine`` per instrument and feeds it requests (``submit``,
``cancel``, ``replace``, ``cancel_all``) with the time passed in; every state change becomes a
report (a plain tuple, see ``Report``) appended to the engine's ``reports`` list, which the
caller drains. Nothing here reads a clock, raises on a bad request, or depends on anything but
its inputs: the same requests give the same reports.

Reports per request (each takes the next ``exec_id``):

- ``submit``: REJECTED (the reason names the input); or NEW, then for each match the
  aggressor's fill and then the resting order's (PARTIAL_FILL or FILL, at the resting price),
  then, unless it rests, CANCELLED: "IOC remainder", "FOK not fillable" (an FOK fills all of
  it or touches nothing), or "no liquidity" (what a market order could not fill; it never
  rests, whatever its time in force).
- ``cancel``: CANCELLED "cancel requested", or CANCEL_REJECTED.
- ``replace``: REPLACED and, if the new price crosses, fills as above; or REPLACE_REJECTED.
- ``cancel_all``: CANCELLED "owner disconnected" for each of the owner's live orders, in the
  order they arrived.
- ``execute``: the resting order's PARTIAL_FILL or FILL, at its price (a counterparty outside
  the book traded with it: no aggressor order, so no aggressor report).

Liquidity outside the book (``set_outside``): per side an aggressor takes, price levels that
an owner of the engine keeps out of the book because they would cross a resting order (a
simulated venue's recorded market touching one of ours: ``engine.venue.inprocess``). They are
better than anything that side of the book holds, so an aggressor that reaches them takes them
first, best first, at their prices (its fill reports only: the counterparty has no order
here); what it takes is gone from them (they are changed in place). FOK counts them.

Theory of operation
-------------------
Prices are integer ticks, quantities integers. Each side is a dict ``key -> level`` plus a
sorted list of the keys, ascending, so that the best level of *both* sides is the last key
(``keys[-1]``) and emptying it is ``list.pop()``: a bid's key is its price, an ask's key is
minus its price. An aggressor crosses the opposite side while ``keys[-1] >= lim``, where
``lim`` is minus its own key (a buy at 101 crosses asks with key >= -101, i.e. price <= 101)
and minus infinity for a market order; one loop serves both sides.

A level is ``[qty, count, dead, orders]``: live quantity, live order count, dead entries, and
a deque of orders in time priority. A cancel does not search the deque: it zeroes the
order's leaves and counts it dead; matching pops dead entries when it meets them, a level
whose last live order goes is dropped whole, and a level that collects more dead entries than
live ones (a long-lived order at the front, churn behind it) is compacted.

An order is a list ``[order_id, owner, side, price, qty, leaves, cum, key]`` (a list because
it is the cheapest mutable record to make and update in CPython; see DESIGN.md, "One hot
thread"): the hot code indexes it with the literal positions below. Live orders are always
limit DAY orders (market, IOC and FOK orders never rest). ``cum + leaves == qty`` holds for
every live order.

Orders that finished (filled or cancelled) are remembered by id, so that a late cancel gets
"order 9 is already filled" and a reused id is refused as a duplicate. Memory stays bounded:
two generations of at most ``remember_done`` ids each, the older dropped whole when the newer
fills up (so an id is remembered for at least ``remember_done`` finished orders).
"""

from __future__ import annotations

import operator
from bisect import bisect_left, insort
from collections import deque
from enum import IntEnum
from typing import Any, Hashable, NamedTuple

__all__ = [
    "ExecKind",
    "MatchingEngine",
    "OrdType",
    "Report",
    "Side",
    "TimeInForce",
]


class Side(IntEnum):
    """Order side; the values are FIX Side(54)."""

    #: buy
    BUY = 1
    #: sell
    SELL = 2


class OrdType(IntEnum):
    """Order type; the values are FIX OrdType(40)."""

    #: take whatever the opposite side has; never rests
    MARKET = 1
    #: at the limit price or better
    LIMIT = 2


class TimeInForce(IntEnum):
    """Time in force; the values are FIX TimeInForce(59)."""

    #: rest until filled or cancelled
    DAY = 0
    #: immediate or cancel: fill what can be filled now, cancel the rest
    IOC = 3
    #: fill or kill: fill all of it now, or cancel it without touching the book
    FOK = 4


class ExecKind(IntEnum):
    """What a report says happened; the values follow FIX OrdStatus(39) where there is one."""

    #: accepted (every accepted order gets this first, even one that fills at once)
    NEW = 0
    #: a fill that leaves some quantity
    PARTIAL_FILL = 1
    #: a fill that leaves none
    FILL = 2
    #: the order is gone; ``reason`` says why
    CANCELLED = 4
    #: a cancel/replace took effect; the report shows the order as it now is
    REPLACED = 5
    #: a submit was refused; ``reason`` names the input
    REJECTED = 8
    #: a cancel was refused (FIX: OrderCancelReject, CxlRejResponseTo=1)
    CANCEL_REJECTED = 11
    #: a cancel/replace was refused (FIX: OrderCancelReject, CxlRejResponseTo=2)
    REPLACE_REJECTED = 12


class Report(NamedTuple):
    """The field order of a report.

    Reports are made as plain tuples on the hot path (a tuple display is the cheapest object
    CPython builds); this class documents their fields and gives named access where speed
    does not matter: ``Report._make(t).leaves``. A plain tuple and a ``Report`` with the same
    fields compare equal.
    """

    #: an ``ExecKind``
    kind: ExecKind
    order_id: Hashable
    #: the owner given at submit (None on a cancel/replace reject of an order not live)
    owner: Any
    #: a ``Side`` (on a rejected submit: the side as given)
    side: Any
    #: limit price in ticks; None for a market order
    price: int | None
    #: order quantity (after a replace: the new one)
    qty: int
    #: quantity of this fill; 0 unless a fill
    last_qty: int
    #: price of this fill in ticks (always the resting side's: the resting order's, or that of
    #: the level outside the book taken); None unless a fill
    last_px: int | None
    #: quantity still open (0 once filled, cancelled or rejected)
    leaves: int
    #: quantity filled so far
    cum: int
    #: unique per report, increasing from 1, in the order the reports are made
    exec_id: int
    #: the ``ts_ns`` of the request that caused it
    ts_ns: int
    #: why (cancels and rejects), else None
    reason: str | None


# Report kinds as module globals: the hot path loads a global instead of an enum attribute.
_NEW = ExecKind.NEW
_PARTIAL = ExecKind.PARTIAL_FILL
_FILL = ExecKind.FILL
_CANCELLED = ExecKind.CANCELLED
_REPLACED = ExecKind.REPLACED
_REJECTED = ExecKind.REJECTED
_CANCEL_REJECTED = ExecKind.CANCEL_REJECTED
_REPLACE_REJECTED = ExecKind.REPLACE_REJECTED
_BUY = Side.BUY
_SELL = Side.SELL

# Cancel reasons.
IOC_REMAINDER = "IOC remainder"
FOK_NOT_FILLABLE = "FOK not fillable"
CANCEL_REQUESTED = "cancel requested"
OWNER_DISCONNECTED = "owner disconnected"
NO_LIQUIDITY = "no liquidity"

_NO_LIMIT = float("-inf")  # a market order crosses every level
_COMPACT_MIN = 32  # compact a level once it has more dead entries than this and than live ones

# The code indexes orders and levels with literals (a constant is a LOAD_CONST, a named one a
# global lookup). An order: 0 order_id, 1 owner, 2 side, 3 price, 4 qty, 5 leaves, 6 cum,
# 7 key. A level: 0 qty, 1 count, 2 dead, 3 orders (a deque).


def _as_int(x: object) -> int | None:
    """``x`` as an int if it is an integer (numpy ints too, bools not), else None."""
    if type(x) is int:
        return x
    if isinstance(x, (bool, float, str, bytes)):
        return None
    try:
        return operator.index(x)  # type: ignore[arg-type]
    except Exception:
        return None


# Side, order type and time in force are taken as the enum or anything equal to its value
# (the fast path looks them up or compares them; the slow path must agree with it).
_SIDE_OF = {1: Side.BUY, 2: Side.SELL}
_ORD_TYPE_OF = {1: OrdType.MARKET, 2: OrdType.LIMIT}
_TIF_OF = {0: TimeInForce.DAY, 3: TimeInForce.IOC, 4: TimeInForce.FOK}


def _lookup(table: dict, x: object) -> Any:
    try:
        return table.get(x)
    except Exception:
        return None


def _hashable(x: object) -> bool:
    try:
        hash(x)
    except Exception:
        return False
    return True


class MatchingEngine:
    """The order book and matching of one instrument.

    ``reports`` is the list reports are appended to (a new one if not given); the caller
    reads and clears it. ``remember_done`` bounds the memory of finished order ids (see the
    module docstring).
    """

    __slots__ = ("reports", "_emit", "_orders", "_bid_keys", "_bids", "_ask_keys", "_asks",
                 "_sides", "_books", "_done", "_done_old", "_remember", "_exec_id", "_outside")

    def __init__(self, reports: list | None = None, *, remember_done: int = 1_000_000) -> None:
        self.reports: list = [] if reports is None else reports
        self._emit = self.reports.append
        self._orders: dict[Hashable, list] = {}  # live (resting) orders by id, in arrival order
        self._bid_keys: list[int] = []
        self._bids: dict[int, list] = {}
        self._ask_keys: list[int] = []
        self._asks: dict[int, list] = {}
        #: aggressor side -> [[price, qty], ...] outside the book, best first (set_outside)
        self._outside: dict[int, list[list[int]]] = {1: [], 2: []}
        # side -> (side, own keys, own levels, opposite keys, opposite levels, key sign,
        # the liquidity outside the book it takes)
        buy = (_BUY, self._bid_keys, self._bids, self._ask_keys, self._asks, 1, self._outside[1])
        sell = (_SELL, self._ask_keys, self._asks, self._bid_keys, self._bids, -1,
                self._outside[2])
        self._sides = {1: buy, 2: sell}
        self._books = (None, (self._bid_keys, self._bids), (self._ask_keys, self._asks))
        self._done: dict[Hashable, ExecKind] = {}  # finished ids -> FILL or CANCELLED
        self._done_old: dict[Hashable, ExecKind] = {}
        self._remember = max(1, remember_done)
        self._exec_id = 0

    # -- REQUESTS ------------------------------------------------------------------------------
    def submit(self, order_id: Hashable, owner: Any, side: int, qty: int,
               price: int | None = None, ord_type: int = OrdType.LIMIT,
               tif: int = TimeInForce.DAY, ts_ns: int = 0) -> None:
        """Accept (and match, and maybe rest) a new order, or reject it with a reason."""
        orders = self._orders
        done = self._done
        if len(done) >= self._remember:
            self._done_old = done
            self._done = done = {}
        try:
            s, mykeys, mylevels, okeys, olevels, sign, ext = self._sides[side]
            if (order_id in orders or order_id in done or order_id in self._done_old
                    or type(qty) is not int or qty <= 0):
                raise ValueError
            if ord_type == 2:  # LIMIT
                if type(price) is not int or price <= 0:
                    raise ValueError
                lim = -sign * price
            elif ord_type == 1 and price is None:  # MARKET
                lim = _NO_LIMIT
            else:
                raise ValueError
            if tif != 0 and tif != 3 and tif != 4:
                raise ValueError
        except Exception:
            self._refuse_submit(order_id, owner, side, qty, price, ord_type, tif, ts_ns)
            return
        emit = self._emit
        eid = self._exec_id + 1
        emit((_NEW, order_id, owner, s, price, qty, 0, None, qty, 0, eid, ts_ns, None))
        rem = qty
        # outside liquidity in reach (an opposite key is minus the aggressor's sign × price)
        reach = ext and -sign * ext[0][0] >= lim
        if reach or okeys and okeys[-1] >= lim:
            if tif == 4:  # FOK: is there enough at or better than the limit?
                need = qty
                if reach:
                    for px, n in ext:
                        if -sign * px < lim:
                            break
                        need -= n
                for i in range(len(okeys) - 1, -1, -1):
                    if need <= 0:
                        break
                    k = okeys[i]
                    if k < lim:
                        break
                    need -= olevels[k][0]
                    if need <= 0:
                        break
                if need > 0:
                    eid += 1
                    emit((_CANCELLED, order_id, owner, s, price, qty, 0, None, 0, 0, eid, ts_ns,
                          FOK_NOT_FILLABLE))
                    self._exec_id = eid
                    done[order_id] = _CANCELLED
                    return
            self._exec_id = eid
            if reach:
                rem = self._take_outside(order_id, owner, s, price, qty, rem, lim, sign, ext,
                                         ts_ns)
            if rem and okeys and okeys[-1] >= lim:
                rem = self._match(order_id, owner, s, price, qty, rem, lim, okeys, olevels,
                                  ts_ns)
            if not rem:
                done[order_id] = _FILL
                return
            eid = self._exec_id
        elif lim is _NO_LIMIT:  # a market order and nothing on the other side
            eid += 1
            emit((_CANCELLED, order_id, owner, s, None, qty, 0, None, 0, 0, eid, ts_ns,
                  NO_LIQUIDITY))
            self._exec_id = eid
            done[order_id] = _CANCELLED
            return
        if tif == 0 and lim is not _NO_LIMIT:  # rest
            key = sign * price
            o = [order_id, owner, s, price, qty, rem, qty - rem, key]
            orders[order_id] = o
            lv = mylevels.get(key)
            if lv is None:
                mylevels[key] = [rem, 1, 0, deque((o,))]
                if not mykeys or key > mykeys[-1]:
                    mykeys.append(key)
                else:
                    insort(mykeys, key)
            else:
                lv[0] += rem
                lv[1] += 1
                lv[3].append(o)
            self._exec_id = eid
            return
        eid += 1
        emit((_CANCELLED, order_id, owner, s, price, qty, 0, None, 0, qty - rem, eid, ts_ns,
              NO_LIQUIDITY if lim is _NO_LIMIT else
              FOK_NOT_FILLABLE if tif == 4 else IOC_REMAINDER))
        self._exec_id = eid
        done[order_id] = _CANCELLED

    def cancel(self, order_id: Hashable, ts_ns: int = 0) -> None:
        """Cancel a live order, or reject the cancel with a reason."""
        try:
            o = self._orders.pop(order_id, None)
        except TypeError:  # unhashable: not an id we could know
            o = None
        if o is None:
            self._exec_id += 1
            self._emit((_CANCEL_REJECTED, order_id, None, None, None, None, 0, None, 0, 0,
                        self._exec_id, ts_ns, self._not_live(order_id)))
            return
        self._unlink(o)
        self._exec_id += 1
        self._emit((_CANCELLED, order_id, o[1], o[2], o[3], o[4], 0, None, 0, o[6],
                    self._exec_id, ts_ns, CANCEL_REQUESTED))
        self._done[order_id] = _CANCELLED

    def replace(self, order_id: Hashable, new_qty: int, new_price: int | None = None,
                ts_ns: int = 0) -> None:
        """Change a live order's quantity and/or price (None keeps the price).

        A quantity decrease at the same price keeps time priority; a price change or a
        quantity increase loses it (the order goes to the back of its new level, and may
        match if the new price crosses). The new quantity must exceed what is already filled.
        """
        try:
            o = self._orders.get(order_id)
        except TypeError:
            o = None
        if o is None:
            self._exec_id += 1
            self._emit((_REPLACE_REJECTED, order_id, None, None, None, None, 0, None, 0, 0,
                        self._exec_id, ts_ns, self._not_live(order_id)))
            return
        oid, owner, s, price, qty, leaves, cum, key = o
        if type(new_qty) is not int or (new_price is not None and type(new_price) is not int):
            new_qty, new_price, reason = self._replace_inputs(new_qty, new_price)
        else:
            reason = None
        if reason is None:
            if new_qty <= 0:
                reason = f"quantity must be positive, was {new_qty}"
            elif new_price is not None and new_price <= 0:
                reason = f"price must be positive, was {new_price}"
            elif new_qty <= cum:
                reason = f"quantity {new_qty} must exceed the {cum} already filled"
        if reason is not None:
            self._exec_id += 1
            self._emit((_REPLACE_REJECTED, oid, owner, s, price, qty, 0, None, leaves, cum,
                        self._exec_id, ts_ns, reason))
            return
        if new_price is None:
            new_price = price
        new_leaves = new_qty - cum
        if new_price == price and new_qty <= qty:  # keeps its place
            o[4] = new_qty
            o[5] = new_leaves
            self._books[s][1][key][0] -= qty - new_qty
            self._exec_id += 1
            self._emit((_REPLACED, oid, owner, s, price, new_qty, 0, None, new_leaves, cum,
                        self._exec_id, ts_ns, None))
            return
        self._unlink(o)
        self._exec_id += 1
        self._emit((_REPLACED, oid, owner, s, new_price, new_qty, 0, None, new_leaves, cum,
                    self._exec_id, ts_ns, None))
        _, mykeys, mylevels, okeys, olevels, sign, ext = self._sides[s]
        new_key = sign * new_price
        rem = new_leaves
        reach = ext and -sign * ext[0][0] >= -new_key
        if reach or okeys and okeys[-1] >= -new_key:
            if reach:
                rem = self._take_outside(oid, owner, s, new_price, new_qty, rem, -new_key, sign,
                                         ext, ts_ns)
            if rem and okeys and okeys[-1] >= -new_key:
                rem = self._match(oid, owner, s, new_price, new_qty, rem, -new_key, okeys,
                                  olevels, ts_ns)
            if not rem:
                del self._orders[oid]
                self._done[oid] = _FILL
                return
        o = [oid, owner, s, new_price, new_qty, rem, new_qty - rem, new_key]
        self._orders[oid] = o  # same dict position: cancel_all order stays arrival order
        lv = mylevels.get(new_key)
        if lv is None:
            mylevels[new_key] = [rem, 1, 0, deque((o,))]
            insort(mykeys, new_key)
        else:
            lv[0] += rem
            lv[1] += 1
            lv[3].append(o)

    def cancel_all(self, owner: Any, ts_ns: int = 0) -> int:
        """Cancel every live order of ``owner`` (cancel on disconnect), in arrival order.

        Returns how many were cancelled.
        """
        try:
            victims = [o for o in self._orders.values() if o[1] == owner]
        except Exception:  # an owner that cannot be compared owns nothing
            return 0
        orders, done, emit = self._orders, self._done, self._emit
        eid = self._exec_id
        for o in victims:
            oid = o[0]
            del orders[oid]
            self._unlink(o)
            eid += 1
            emit((_CANCELLED, oid, o[1], o[2], o[3], o[4], 0, None, 0, o[6], eid, ts_ns,
                  OWNER_DISCONNECTED))
            done[oid] = _CANCELLED
        self._exec_id = eid
        return len(victims)

    def execute(self, order_id: Hashable, qty: int, ts_ns: int = 0) -> int:
        """A counterparty outside the book trades up to ``qty`` of live order ``order_id`` at
        its price (it keeps its place if some is left); return how much (0: not live)."""
        try:
            o = self._orders.get(order_id)
        except TypeError:
            o = None
        if o is None or qty <= 0:
            return 0
        leaves = o[5]
        n = qty if qty < leaves else leaves
        cum = o[6] + n
        self._exec_id += 1
        if n == leaves:
            self._unlink(o)
            o[6] = cum
            del self._orders[order_id]
            self._done[order_id] = _FILL
            self._emit((_FILL, order_id, o[1], o[2], o[3], o[4], n, o[3], 0, cum,
                        self._exec_id, ts_ns, None))
        else:
            o[5] = leaves - n
            o[6] = cum
            self._books[o[2]][1][o[7]][0] -= n
            self._emit((_PARTIAL, order_id, o[1], o[2], o[3], o[4], n, o[3], leaves - n, cum,
                        self._exec_id, ts_ns, None))
        return n

    def set_outside(self, side: int, levels: list[list[int]]) -> None:
        """The liquidity outside the book that an aggressor on ``side`` (BUY: asks, SELL: bids)
        meets first: ``[price, qty]`` lists, best first, each better than that side of the book
        (module docstring). The lists are kept, and changed in place as they are taken."""
        self._outside[side][:] = levels

    def outside(self, side: int) -> list[list[int]]:
        """What is left of the liquidity outside the book for an aggressor on ``side``."""
        return self._outside[side]

    # -- MARKET DATA -----------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        return self._bid_keys[-1] if self._bid_keys else None

    def best_ask(self) -> int | None:
        return -self._ask_keys[-1] if self._ask_keys else None

    def book_depth(self, n: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """The best ``n`` levels of each side as ``(price, qty, order count)``, best first."""
        n = max(0, n)
        bids, asks = self._bids, self._asks
        return (
            [(k, bids[k][0], bids[k][1]) for k in self._bid_keys[:-n - 1:-1]],
            [(-k, asks[k][0], asks[k][1]) for k in self._ask_keys[:-n - 1:-1]],
        )

    # -- INSPECTION (tests, debugging, recovery; not the hot path) --------------------------------
    def __len__(self) -> int:
        """How many orders are live."""
        return len(self._orders)

    def order(self, order_id: Hashable) -> tuple | None:
        """A live order as ``(owner, side, price, qty, leaves, cum)``, or None."""
        try:
            o = self._orders.get(order_id)
        except TypeError:
            return None
        return None if o is None else (o[1], o[2], o[3], o[4], o[5], o[6])

    def book_orders(self, side: int) -> list[tuple]:
        """One side's live orders in priority order as ``(order_id, owner, price, qty, leaves,
        cum)``."""
        keys, levels = self._books[Side(side)]
        return [(o[0], o[1], o[3], o[4], o[5], o[6])
                for k in reversed(keys) for o in levels[k][3] if o[5]]

    def check(self) -> str | None:
        """What is inconsistent in the book, or None (for tests and debugging)."""
        live = 0
        for s in (_BUY, _SELL):
            keys, levels = self._books[s]
            if keys != sorted(keys) or len(set(keys)) != len(keys):
                return f"{s.name} keys out of order: {keys}"
            if set(keys) != set(levels):
                return f"{s.name} keys {keys} do not match levels {sorted(levels)}"
            for k, lv in levels.items():
                qty, count, dead, q = lv
                alive = [o for o in q if o[5]]
                if count != len(alive) or dead != len(q) - len(alive) or not count:
                    return f"{s.name} level {k}: count {count} dead {dead}, deque {list(q)}"
                if qty != sum(o[5] for o in alive):
                    return f"{s.name} level {k}: qty {qty} is not the sum of its leaves"
                for o in alive:
                    if o[7] != k or o[2] != s or self._orders.get(o[0]) is not o:
                        return f"{s.name} level {k}: misplaced order {o}"
                    if o[5] + o[6] != o[4] or o[5] <= 0 or o[6] < 0:
                        return f"order {o[0]}: cum {o[6]} + leaves {o[5]} != qty {o[4]}"
                live += count
        if live != len(self._orders):
            return f"{live} orders in the levels, {len(self._orders)} live"
        b, a = self.best_bid(), self.best_ask()
        if b is not None and a is not None and b >= a:
            return f"crossed: bid {b} >= ask {a}"
        return None

    # -- MATCHING --------------------------------------------------------------------------------
    def _match(self, oid: Hashable, owner: Any, s: Side, price: int | None, qty: int, rem: int,
               lim: float, okeys: list, olevels: dict, ts_ns: int) -> int:
        """Fill the aggressor ``oid`` (``rem`` open of ``qty``) against the opposite side down
        to ``lim`` (the caller saw the best level cross); return what is left open.

        Per fill, the aggressor's report comes first, then the resting order's.
        """
        emit = self._emit
        orders = self._orders
        done = self._done
        eid = self._exec_id
        while True:
            k = okeys[-1]
            lv = olevels[k]
            q = lv[3]
            while True:
                o = q[0]
                ol = o[5]
                if not ol:  # dead: cancelled or moved by a replace
                    q.popleft()
                    lv[2] -= 1
                    continue
                px = o[3]
                if ol <= rem:  # the resting order fills
                    q.popleft()
                    rem -= ol
                    lv[0] -= ol
                    lv[1] -= 1
                    ocum = o[6] + ol
                    o[5] = 0
                    o[6] = ocum
                    roid = o[0]
                    del orders[roid]
                    done[roid] = _FILL
                    emit((_PARTIAL if rem else _FILL, oid, owner, s, price, qty, ol, px, rem,
                          qty - rem, eid + 1, ts_ns, None))
                    eid += 2
                    emit((_FILL, roid, o[1], o[2], px, o[4], ol, px, 0, ocum, eid, ts_ns, None))
                    if not rem or not lv[1]:
                        break
                else:  # the aggressor fills
                    ol -= rem
                    ocum = o[6] + rem
                    o[5] = ol
                    o[6] = ocum
                    lv[0] -= rem
                    emit((_FILL, oid, owner, s, price, qty, rem, px, 0, qty, eid + 1, ts_ns,
                          None))
                    eid += 2
                    emit((_PARTIAL, o[0], o[1], o[2], px, o[4], rem, px, ol, ocum, eid, ts_ns,
                          None))
                    rem = 0
                    break
            if not lv[1]:
                okeys.pop()
                del olevels[k]
            if not rem or not okeys or okeys[-1] < lim:
                self._exec_id = eid
                return rem

    def _take_outside(self, oid: Hashable, owner: Any, s: Side, price: int | None, qty: int,
                      rem: int, lim: float, sign: int, ext: list, ts_ns: int) -> int:
        """Fill the aggressor ``oid`` from the liquidity outside the book (``ext``, best first)
        down to ``lim``; return what is left open. Its own reports only."""
        emit = self._emit
        eid = self._exec_id
        while ext and rem:
            e = ext[0]
            px = e[0]
            if -sign * px < lim:
                break
            n = e[1] if e[1] < rem else rem
            rem -= n
            e[1] -= n
            if not e[1]:
                del ext[0]
            eid += 1
            emit((_PARTIAL if rem else _FILL, oid, owner, s, price, qty, n, px, rem, qty - rem,
                  eid, ts_ns, None))
        self._exec_id = eid
        return rem

    def _unlink(self, o: list) -> None:
        """Take live order ``o`` out of its level (not out of ``_orders``)."""
        keys, levels = self._books[o[2]]
        k = o[7]
        lv = levels[k]
        lv[0] -= o[5]
        o[5] = 0
        lv[1] -= 1
        if not lv[1]:
            del levels[k]
            if keys[-1] == k:
                keys.pop()
            else:
                del keys[bisect_left(keys, k)]
            return
        lv[2] += 1
        if lv[2] > _COMPACT_MIN and lv[2] > lv[1]:
            lv[3] = deque([x for x in lv[3] if x[5]])
            lv[2] = 0

    # -- REJECTS ---------------------------------------------------------------------------------
    def _not_live(self, order_id: Hashable) -> str:
        """Why ``order_id`` cannot be cancelled or replaced: finished, or never known."""
        try:
            kind = self._done.get(order_id) or self._done_old.get(order_id)
        except TypeError:
            kind = None
        if kind is _FILL:
            return f"order {order_id!r} is already filled"
        if kind is _CANCELLED:
            return f"order {order_id!r} is already cancelled"
        return f"unknown order id {order_id!r}"

    def _replace_inputs(self, new_qty: object, new_price: object) -> tuple[Any, Any, str | None]:
        q = _as_int(new_qty)
        if q is None:
            return new_qty, new_price, f"quantity must be an integer, was {new_qty!r}"
        if new_price is None:
            return q, None, None
        p = _as_int(new_price)
        if p is None:
            return q, new_price, f"price must be an integer number of ticks, was {new_price!r}"
        return q, p, None

    def _refuse_submit(self, order_id: Any, owner: Any, side: Any, qty: Any, price: Any,
                       ord_type: Any, tif: Any, ts_ns: int) -> None:
        """Reject a submit the fast path refused, naming the first bad input; or, when the
        inputs were only integers of another type (numpy ints, say), submit them as ints."""
        reason = None
        s = t = f = q = p = None
        if not _hashable(order_id):
            reason = f"order id must be hashable, was {order_id!r}"
        elif (order_id in self._orders or order_id in self._done
              or order_id in self._done_old):
            reason = f"duplicate order id {order_id!r}"
        elif (s := _lookup(_SIDE_OF, side)) is None:
            reason = f"side must be 1 (buy) or 2 (sell), was {side!r}"
        elif (t := _lookup(_ORD_TYPE_OF, ord_type)) is None:
            reason = f"order type must be 1 (market) or 2 (limit), was {ord_type!r}"
        elif (f := _lookup(_TIF_OF, tif)) is None:
            reason = f"time in force must be 0 (day), 3 (IOC) or 4 (FOK), was {tif!r}"
        elif (q := _as_int(qty)) is None:
            reason = f"quantity must be an integer, was {qty!r}"
        elif q <= 0:
            reason = f"quantity must be positive, was {q}"
        elif t is OrdType.MARKET:
            if price is not None:
                reason = f"market order takes no price, was {price!r}"
        elif price is None:
            reason = "limit order needs a price"
        elif (p := _as_int(price)) is None:
            reason = f"price must be an integer number of ticks, was {price!r}"
        elif p <= 0:
            reason = f"price must be positive, was {p}"
        if reason is None:
            if q is not qty or p is not price:  # int-like: once more, as plain ints
                self.submit(order_id, owner, s, q, p, t, f, ts_ns)
                return
            reason = f"order {order_id!r} could not be read"  # pragma: no cover - a bug
        self._exec_id += 1
        self._emit((_REJECTED, order_id, owner, side, price, qty, 0, None, 0, 0, self._exec_id,
                    ts_ns, reason))
