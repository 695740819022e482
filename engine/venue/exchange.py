"""The simulated exchange's order handling and market data, sans-IO: FIX messages in, replies out.

``Exchange.on_message(owner, message, now_ns)`` takes one decoded application message (an
order request, or a market data request: see "Market data" below) from a counterparty
(``owner`` is its CompID) and appends what must be sent, as ``(owner, msg_type, body)``, to
``outbox``; the caller (``engine.venue.server``) drains it into the FIX sessions. No sockets, no clock reads, no session state: the server owns those, which
keeps this part testable in memory and the same under any transport.

Theory of operation
-------------------
One ``MatchingEngine`` per instrument, prices in integer ticks. A client order is a venue
order id (an ``int``, unique across the venue's books) plus an ``_Order`` record that follows
the matching engine's reports (status, quantities, the notional that gives AvgPx) and the
ClOrdID chain: a cancel or replace moves the order to the request's ClOrdID and the old one
becomes OrigClOrdID (FIX 4.4). ClOrdIDs are per counterparty and may not be reused until
``forget_finished`` (the server calls it when a counterparty starts a new FIX session with
ResetSeqNumFlag=Y); every ClOrdID an order ever had still finds it (cancel, replace, status).

Every matching report about a client's order becomes one ExecutionReport to the order's
owner, whoever caused it (its own request, another counterparty's or the background flow's
order, a disconnect). Reports about background orders (``BACKGROUND``) produce nothing.

Bad input is answered, never raised: a NewOrderSingle with a bad field gets an
ExecutionReport 150=8 39=8 whose Text names the field and the reason; a cancel or replace
that cannot be done gets an OrderCancelReject (35=9); a message too broken to correlate
(no ClOrdID, Symbol or Side) or of a type the venue does not trade gets a
BusinessMessageReject (35=j). Each is counted in ``counters["rejects"]``.

ExecutionReport fields (35=8)::

    37 OrderID (the venue's; "NONE" when rejected)  11 ClOrdID  41 OrigClOrdID (cancel/replace)
    17 ExecID (unique per venue)  150 ExecType  39 OrdStatus  55 Symbol  54 Side  38 OrderQty
    40 OrdType  44 Price (limit)  59 TimeInForce  32 LastQty, 31 LastPx (fills)  151 LeavesQty
    14 CumQty  6 AvgPx  12 Commission, 13 CommType=3 (fills, with fees)  103 OrdRejReason
    (rejects)  58 Text (why: cancels, rejects)  60 TransactTime

A drop-copy session (``engine.venue.server``) gets a copy of each ExecutionReport body with
Account (1) naming the counterparty it went to (``drop_copy_body``); what it sends is
refused (``refuse_drop_copy``: BusinessMessageReject 6).

OrderID and ExecID are 36-character UUIDs, as many real venues send (the engine must take
identifiers of any length): the first 24 characters name the venue's boot (a hash of
``id_prefix``), the last 12 count in hex, so they are unique per venue run and the same in
every run of a backtest.

ExecType: 0 New, F Trade, 4 Canceled, 5 Replaced, 8 Rejected, I Order status. OrdStatus is
the order's status after the event: 0 New, 1 Partially filled, 2 Filled, 4 Canceled,
8 Rejected (after a replace: 0 or 1).

Market data
-----------
A counterparty asks with a MarketDataRequest (35=V)::

    262 MDReqID (required; unique among its live subscriptions)
    263 SubscriptionRequestType: 0 snapshot, 1 snapshot + updates, 2 unsubscribe (262 names
        the subscription; nothing else is read, nothing is answered unless it is unknown)
    264 MarketDepth: 0 every level, N the best N (1 to MAX_MARKET_DEPTH)
    265 MDUpdateType: 1 incremental (the default; 0, full refresh, is refused)
    266 AggregatedBook: Y or absent (levels are always aggregated)
    267 NoMDEntryTypes, each 269 MDEntryType: 0 bid, 1 offer, 2 trade
    146 NoRelatedSym, each 55 Symbol

It is answered with one MarketDataSnapshotFullRefresh (35=W) per symbol, in the order named,
at once (before any update)::

    262 MDReqID  55 Symbol  83 RptSeq (subscriptions only: the last RptSeq the snapshot covers;
    0 when it starts)  268 NoMDEntries, each  269 (0 bid / 1 offer)  270 MDEntryPx
    271 MDEntrySize  1023 MDPriceLevel (1 = best)

bids best first, then offers best first, each side cut to the depth; only the entry types
asked for (an empty book, or only trades asked for, gives 268=0). No trade entry: a
snapshot is the book, trades come as they happen.

Then, for a subscription, each matching call that changes a book it watches (a client's
order, cancel or replace, the background flow, a cancel on disconnect) sends it at most one
MarketDataIncrementalRefresh (35=X) for that symbol, and only if something it watches
changed::

    262 MDReqID  268 NoMDEntries, each  279 MDUpdateAction  269 MDEntryType  55 Symbol
    270 MDEntryPx  271 MDEntrySize  1023 MDPriceLevel (not on trades)  83 RptSeq

Trades first (279=0 269=2, one per fill, at the resting price, in the order they happened),
then per side the level changes that take the book the subscriber holds (cut to its depth)
to the book as it now is (cut to its depth): deletes first (279=2, 271=0), top down, each
numbered as the level is once the deletes above it are applied; then, top down, New (279=0:
insert at the level, the ones below move down) and Change (279=1: the level's size; its price
is unchanged), numbered as in the new book. A level that comes into view when one above goes
arrives as a New at the bottom level. Applying the entries in order to the subscriber's levels
gives exactly the venue's best ``depth`` levels.

RptSeq rule: per subscription and symbol, RptSeq goes up by exactly one per entry, from the
snapshot's 83 (the first entry after a snapshot with 83=n carries n+1). An entry whose RptSeq
is not the last one seen + 1 means something was lost (a gap: take a new snapshot) or seen
before (a duplicate: drop it). ``engine.feeds.fixmd.FixMdSubscriptions`` is the receiver.

A request that cannot be served is answered with a MarketDataRequestReject (35=Y): 262
MDReqID (absent only when the request had none), 281 MDReqRejReason, 58 Text naming the
field and why; nothing of it is served (every symbol must be known). MDReqRejReason: 0
unknown symbol, 1 duplicate MDReqID, 2 too many subscriptions (MAX_MD_SUBSCRIPTIONS), 4
SubscriptionRequestType, 5 MarketDepth, 6 MDUpdateType, 7 AggregatedBook, 8 MDEntryType,
Z (ours: no FIX 4.4 value fits) a missing MDReqID, NoRelatedSym or NoMDEntryTypes, a broken
group, an unsubscribe of no live subscription.

Cost: a book nobody watches costs the order path one attribute test per matching call. A
watched book is read (``book_depth`` to the deepest subscriber's depth) after each matching
call and compared with what was last published; the level changes are worked out once per
distinct depth. ``drop_subscriptions`` ends a counterparty's subscriptions when it goes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Sequence

from engine.core.profile import InstrumentConfig
from engine.core.ticks import tick_decimals
from engine.fix.codec import FixFieldError, FixMessage, utc_timestamp
from engine.fix.tags import (
    ExecType,
    MDReqRejReason,
    MDUpdateAction,
    MsgType,
    OrdStatus,
    SubscriptionRequestType,
    Tag,
    msg_type_name,
    tag_name,
)
from engine.venue.matching import (
    CANCEL_REQUESTED,
    ExecKind,
    MatchingEngine,
    OrdType,
    Side,
    TimeInForce,
)

__all__ = [
    "BACKGROUND",
    "MAX_MARKET_DEPTH",
    "MAX_MD_SUBSCRIPTIONS",
    "MD_MSG_TYPES",
    "Exchange",
    "Outgoing",
    "drop_copy_body",
]

log = logging.getLogger("helmdesk.venue")


class _BackgroundOwner:
    """The owner of the background flow's orders: no CompID can be equal to it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "bg"


#: Owner of the simulated other participants' orders.
BACKGROUND: Any = _BackgroundOwner()

#: ``(owner CompID, MsgType, body fields)``: one message for the server to send.
Outgoing = tuple[str, bytes, list]

_NONE = b"NONE"
_MAX_QTY = 1_000_000_000
_WHOLE = re.compile(rb"([0-9]{1,10})(?:\.0*)?").fullmatch  # "10" or "10.0": FIX Qty, whole
_TERMINAL = frozenset({OrdStatus.Filled, OrdStatus.Canceled, OrdStatus.Rejected})
_SIDES = {b"1": Side.BUY, b"2": Side.SELL}
_ORD_TYPES = {b"1": OrdType.MARKET, b"2": OrdType.LIMIT}
_TIFS = {b"0": TimeInForce.DAY, b"3": TimeInForce.IOC, b"4": TimeInForce.FOK}

# OrdRejReason (103), CxlRejReason (102), BusinessRejectReason (380): the values we use.
REJ_UNKNOWN_SYMBOL, REJ_DUPLICATE, REJ_OTHER = b"1", b"6", b"99"
CXL_TOO_LATE, CXL_UNKNOWN_ORDER, CXL_DUPLICATE, CXL_OTHER = b"0", b"1", b"6", b"99"
BIZ_OTHER, BIZ_UNSUPPORTED_TYPE, BIZ_FIELD_MISSING, BIZ_NOT_AUTHORIZED = (
    b"0", b"3", b"5", b"6")

_FILL_KINDS = (ExecKind.PARTIAL_FILL, ExecKind.FILL)

#: The deepest MarketDepth (264) a subscription may ask for besides 0 (every level).
MAX_MARKET_DEPTH = 100
#: Live market data subscriptions per counterparty; more are refused (281=2).
MAX_MD_SUBSCRIPTIONS = 1000
#: The market data messages: never kept for a counterparty that is away (a stale book is
#: worse than none: it gets a new snapshot when it subscribes again).
MD_MSG_TYPES = frozenset({MsgType.MarketDataSnapshotFullRefresh,
                          MsgType.MarketDataIncrementalRefresh,
                          MsgType.MarketDataRequestReject})
_FULL_DEPTH = 1 << 30  # MarketDepth 0: every level
_ENTRY_TYPES = {b"0": "bid", b"1": "offer", b"2": "trade"}
_NEW, _CHANGE, _DELETE = MDUpdateAction.New, MDUpdateAction.Change, MDUpdateAction.Delete
_W, _X = MsgType.MarketDataSnapshotFullRefresh, MsgType.MarketDataIncrementalRefresh


class _Rejected(Exception):
    """A request's field is bad; ``text`` names it and why, ``code`` is the FIX reason."""

    def __init__(self, text: str, code: bytes) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class _Book:
    """One instrument: its matching engine, how its prices are written, who watches it."""

    __slots__ = ("clients", "decimals", "engine", "md_depth", "md_levels", "md_subs",
                 "start_ticks", "symbol", "symbol_b", "tick")

    def __init__(self, inst: InstrumentConfig, remember_done: int) -> None:
        self.symbol = inst.symbol
        self.symbol_b = inst.symbol.encode()
        self.tick = inst.tick
        self.decimals = tick_decimals(inst.tick)
        self.engine = MatchingEngine(remember_done=remember_done)
        #: the clients' live orders on this book by venue order id, in arrival order
        self.clients: dict[int, _Order] = {}
        self.start_ticks = max(1, round(inst.price / inst.tick))
        self.md_subs: list[_MdSub] = []  # subscriptions with updates that name this book
        self.md_depth = 0  # the deepest of theirs (_FULL_DEPTH for "every level"); 0: none
        #: the levels as last published (book_depth(md_depth)); None while nobody watches
        self.md_levels: tuple[list, list] | None = None

    def price(self, ticks: int) -> bytes:
        return b"%.*f" % (self.decimals, ticks * self.tick)

    def ticks_of(self, m: FixMessage, tag: int) -> int:
        """The price in ``tag`` as whole ticks; refuse one that is off the grid."""
        try:
            px = m.get_float(tag)
        except FixFieldError as e:
            raise _Rejected(e.reason, REJ_OTHER) from None
        t = round(px / self.tick)
        if px <= 0 or t <= 0:
            raise _Rejected(f"{tag_name(tag)} must be positive, was {_show(m.get(tag))}",
                            REJ_OTHER)
        if abs(t * self.tick - px) > self.tick * 1e-6:
            raise _Rejected(f"{tag_name(tag)} {_show(m.get(tag))} is not on {self.symbol}'s tick "
                            f"grid of {self.tick:g}", REJ_OTHER)
        return t


class _Order:
    """A client order as the venue reports it."""

    __slots__ = ("order_id", "order_id_b", "owner", "cl_ord_id", "orig_cl_ord_id", "book",
                 "symbol_b", "side_b", "ord_type_b", "tif_b", "price", "qty", "leaves", "cum",
                 "notional", "status")

    def __init__(self, owner: str, cl_ord_id: bytes, symbol_b: bytes, side_b: bytes) -> None:
        self.order_id: int | None = None  # None: rejected, never reached a book
        self.order_id_b = _NONE
        self.owner = owner
        self.cl_ord_id = cl_ord_id
        self.orig_cl_ord_id: bytes | None = None
        self.book: _Book | None = None
        self.symbol_b = symbol_b
        self.side_b = side_b
        self.ord_type_b: bytes | None = None
        self.tif_b = b"0"
        self.price: int | None = None  # ticks
        self.qty = 0
        self.leaves = 0
        self.cum = 0
        self.notional = 0  # sum of LastQty × LastPx in ticks: AvgPx without rounding drift
        self.status = OrdStatus.New

    @property
    def live(self) -> bool:
        return self.status not in _TERMINAL


class _MdSub:
    """A counterparty's market data subscription (MarketDataRequest 263=1) or, for the
    moment of answering it, a snapshot request (263=0)."""

    __slots__ = ("bids", "books", "depth", "offers", "owner", "req_id", "rpt_seq", "trades")

    def __init__(self, owner: str, req_id: bytes, depth: int, types: set[bytes],
                 books: list[_Book], updates: bool) -> None:
        self.owner = owner
        self.req_id = req_id
        self.depth = depth
        self.bids = b"0" in types
        self.offers = b"1" in types
        self.trades = b"2" in types
        self.books = books
        #: symbol -> RptSeq of the last entry sent (None: a snapshot request, no updates)
        self.rpt_seq: dict[bytes, int] | None = (
            {b.symbol_b: 0 for b in books} if updates else None)


@dataclass(frozen=True, slots=True)
class _Request:
    """The cancel/replace a batch of matching reports answers."""

    owner: str
    cl_ord_id: bytes
    order: _Order
    response_to: bytes  # CxlRejResponseTo (434): 1 cancel, 2 replace


def _uuid_prefix(seed: str) -> bytes:
    """The first 24 characters of this venue run's UUIDs ("xxxxxxxx-xxxx-4xxx-8xxx-")."""
    h = hashlib.blake2b(seed.encode(), digest_size=8).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[12:15]}-8{h[15:16]}{h[:2]}-".encode()


class Exchange:
    """Every instrument's book and every counterparty's orders; FIX in, FIX out."""

    def __init__(self, name: str, instruments: Sequence[InstrumentConfig], *,
                 fee_bps: float = 0.0, id_prefix: str | None = None,
                 remember_done: int = 1_000_000) -> None:
        """``remember_done``: finished order ids each book remembers (at least; see
        ``MatchingEngine``), to tell a cancel that came too late from one for no order."""
        self.name = name
        self.books = [_Book(i, remember_done) for i in instruments]
        self._by_symbol = {b.symbol_b: b for b in self.books}
        self.fee_rate = fee_bps / 10_000.0
        self.outbox: list[Outgoing] = []
        self.counters = dict.fromkeys(
            ("orders", "fills", "cancels", "replaces", "rejects", "status_requests",
             "background_orders", "background_fills", "md_requests", "md_snapshots",
             "md_incrementals", "md_entries", "drop_copy_refused"), 0)
        self._prefix = _uuid_prefix(id_prefix if id_prefix is not None else f"{name}-")
        self._next_order_id = 0
        self._next_exec_id = 0
        self._live: dict[int, _Order] = {}  # client orders on a book, by venue order id
        self._cl_ord_ids: dict[str, dict[bytes, _Order]] = {}  # owner -> ClOrdID -> order
        self._md_subs: dict[str, dict[bytes, _MdSub]] = {}  # owner -> MDReqID -> subscription
        self._handlers = {
            MsgType.NewOrderSingle: self._handle_new_order,
            MsgType.OrderCancelRequest: self._handle_cancel,
            MsgType.OrderCancelReplaceRequest: self._handle_replace,
            MsgType.OrderStatusRequest: self._handle_status,
            MsgType.MarketDataRequest: self._handle_md_request,
        }

    # -- REQUESTS --------------------------------------------------------------------------------
    def on_message(self, owner: str, m: FixMessage, now_ns: int) -> None:
        """Handle one application message from ``owner``; replies go to ``outbox``."""
        handler = self._handlers.get(m.msg_type)
        if handler is None:
            self.business_reject(owner, m, BIZ_UNSUPPORTED_TYPE,
                                 f"unsupported message type {msg_type_name(m.msg_type)}: "
                                 f"{self.name} takes NewOrderSingle(D), OrderCancelRequest(F), "
                                 f"OrderCancelReplaceRequest(G), OrderStatusRequest(H) and "
                                 f"MarketDataRequest(V)", now_ns)
            return
        handler(owner, m, now_ns)

    def cancel_all(self, owner: str, now_ns: int) -> int:
        """Cancel every live order of ``owner`` on every book (cancel on disconnect)."""
        n = 0
        for book in self.books:
            n += book.engine.cancel_all(owner, now_ns)
            self._drain(book, now_ns)
        return n

    def drop_subscriptions(self, owner: str) -> int:
        """End every market data subscription of ``owner`` (it disconnected); return how many."""
        mine = self._md_subs.pop(owner, None)
        if not mine:
            return 0
        for sub in mine.values():
            self._md_unlink(sub)
        return len(mine)

    def forget_finished(self, owner: str) -> int:
        """Let ``owner`` use the ClOrdIDs of its finished orders again (a new FIX session,
        ResetSeqNumFlag=Y, is a new day); return how many were forgotten."""
        known = self._cl_ord_ids.get(owner, {})
        done = [cl for cl, o in known.items() if not o.live]
        for cl in done:
            del known[cl]
        return len(done)

    def business_reject(self, owner: str, m: FixMessage, reason: bytes, text: str,
                        now_ns: int) -> None:
        """Answer ``m`` with a BusinessMessageReject (35=j)."""
        body: list = [(Tag.RefSeqNum, m.seq), (Tag.RefMsgType, m.msg_type)]
        ref = m.get(Tag.ClOrdID)
        if ref is not None:
            body.append((Tag.BusinessRejectRefID, ref))
        body += [(Tag.BusinessRejectReason, reason), (Tag.Text, text),
                 (Tag.TransactTime, utc_timestamp(now_ns))]
        self._reject_out(owner, MsgType.BusinessMessageReject, body, text, m)

    def refuse_drop_copy(self, owner: str, m: FixMessage, now_ns: int) -> None:
        """``owner`` is a drop-copy session: answer its application message with a
        BusinessMessageReject 6 (not authorized), counted in ``drop_copy_refused``."""
        self.counters["drop_copy_refused"] += 1
        self.business_reject(owner, m, BIZ_NOT_AUTHORIZED,
                             f"{owner} is a drop-copy session of {self.name}: it receives copies "
                             f"of ExecutionReports and may not send {msg_type_name(m.msg_type)}",
                             now_ns)

    # -- BACKGROUND FLOW -------------------------------------------------------------------------
    def submit_background(self, book: _Book, side: Side, qty: int, price: int,
                          now_ns: int, tif: TimeInForce = TimeInForce.DAY) -> int:
        """Enter another participant's limit order (DAY unless ``tif``); return its venue
        order id."""
        oid = self._new_order_id()
        self.counters["background_orders"] += 1
        book.engine.submit(oid, BACKGROUND, side, qty, price, OrdType.LIMIT, tif, now_ns)
        self._drain(book, now_ns)
        return oid

    def cancel_background(self, book: _Book, order_id: int, now_ns: int) -> None:
        book.engine.cancel(order_id, now_ns)
        self._drain(book, now_ns)

    def fill_from_background(self, book: _Book, order_id: int, qty: int, now_ns: int) -> int:
        """Another participant, whose order is not in the book, trades up to ``qty`` of the
        resting order ``order_id`` at its price (``MatchingEngine.execute``); return how much.
        Its owner gets the ExecutionReport, with fees, as for any fill."""
        n = book.engine.execute(order_id, qty, now_ns)
        if n:
            self._drain(book, now_ns)
        return n

    # -- INSPECTION ------------------------------------------------------------------------------
    def book_snapshot(self) -> dict[str, dict]:
        """Each instrument's best bid/ask (prices, None when empty) and live order count."""
        out = {}
        for b in self.books:
            bid, ask = b.engine.best_bid(), b.engine.best_ask()
            out[b.symbol] = {
                "bid": None if bid is None else round(bid * b.tick, b.decimals),
                "ask": None if ask is None else round(ask * b.tick, b.decimals),
                "orders": len(b.engine),
            }
        return out

    def live_orders(self, owner: str) -> int:
        return sum(1 for o in self._live.values() if o.owner == owner)

    def book_levels(self, symbol: str, depth: int = 0) -> dict[str, list[tuple[float, int]]]:
        """One instrument's aggregated levels, best first, as ``{"bids": [(price, qty)],
        "offers": [...]}`` (the best ``depth``; 0: every level): what a subscriber's book
        should hold."""
        b = self._by_symbol[symbol.encode()]
        bids, asks = b.engine.book_depth(depth or _FULL_DEPTH)
        return {"bids": [(round(p * b.tick, b.decimals), q) for p, q, _ in bids],
                "offers": [(round(p * b.tick, b.decimals), q) for p, q, _ in asks]}

    def md_subscriptions(self, owner: str) -> int:
        """How many market data subscriptions ``owner`` has live."""
        return len(self._md_subs.get(owner, ()))

    # -- NEW ORDER SINGLE ------------------------------------------------------------------------
    def _handle_new_order(self, owner: str, m: FixMessage, now_ns: int) -> None:
        cl, sym, side = m.get(Tag.ClOrdID), m.get(Tag.Symbol), m.get(Tag.Side)
        if cl is None or sym is None or side is None:
            missing = next(t for t, v in ((11, cl), (55, sym), (54, side)) if v is None)
            self.business_reject(owner, m, BIZ_FIELD_MISSING, f"{tag_name(missing)} is missing",
                                 now_ns)
            return
        o = _Order(owner, cl, sym, side)
        known = self._cl_ord_ids.setdefault(owner, {})
        if cl in known:
            self._reject_order(o, f"ClOrdID(11) {_show(cl)} was already used in this session",
                               REJ_DUPLICATE, now_ns)
            return
        known[cl] = o
        try:
            book, s, qty, ord_type, price, tif = self._read_new_order(m, o)
        except _Rejected as r:
            self._reject_order(o, r.text, r.code, now_ns)
            return
        o.order_id = oid = self._new_order_id()
        o.order_id_b = self._prefix + b"%012x" % oid
        o.book, o.qty, o.leaves, o.price = book, qty, qty, price
        self._live[oid] = o
        book.clients[oid] = o
        self.counters["orders"] += 1
        book.engine.submit(oid, owner, s, qty, price, ord_type, tif, now_ns)
        self._drain(book, now_ns)

    def _read_new_order(self, m: FixMessage, o: _Order) -> tuple:
        """The order's book and matching inputs; ``_Rejected`` names the first bad field."""
        book = self._by_symbol.get(o.symbol_b)
        if book is None:
            raise _Rejected(f"Symbol(55) {_show(o.symbol_b)} is not traded on {self.name} "
                            f"(it trades {', '.join(b.symbol for b in self.books)})",
                            REJ_UNKNOWN_SYMBOL)
        s = _SIDES.get(o.side_b)
        if s is None:
            raise _Rejected(f"Side(54) must be 1 (buy) or 2 (sell), was {_show(o.side_b)}",
                            REJ_OTHER)
        qty = _read_qty(m)
        o.qty = qty
        raw_type = m.get(Tag.OrdType)
        ord_type = _ORD_TYPES.get(raw_type) if raw_type is not None else None
        if ord_type is None:
            raise _Rejected(f"OrdType(40) must be 1 (market) or 2 (limit), was "
                            f"{_show(raw_type)}", REJ_OTHER)
        o.ord_type_b = raw_type
        o.tif_b = tif_b = m.get(Tag.TimeInForce, b"0")
        tif = _TIFS.get(tif_b)
        if tif is None:
            raise _Rejected(f"TimeInForce(59) must be 0 (day), 3 (IOC) or 4 (FOK), was "
                            f"{_show(tif_b)}", REJ_OTHER)
        price = None
        if ord_type is OrdType.LIMIT:
            if Tag.Price not in m:
                raise _Rejected("Price(44) is missing: a limit order (40=2) needs one",
                                REJ_OTHER)
            price = o.price = book.ticks_of(m, Tag.Price)
        elif Tag.Price in m:
            raise _Rejected(f"Price(44) {_show(m.get(Tag.Price))} was given for a market "
                            f"order (40=1), which takes none", REJ_OTHER)
        return book, s, qty, ord_type, price, tif

    def _reject_order(self, o: _Order, text: str, code: bytes, now_ns: int) -> None:
        o.status = OrdStatus.Rejected
        o.leaves = 0
        body = self._report(o, ExecType.Rejected, now_ns, text=text)
        body.insert(-2, (Tag.OrdRejReason, code))
        self._reject_out(o.owner, MsgType.ExecutionReport, body, text, None, o.cl_ord_id)

    # -- CANCEL AND REPLACE ----------------------------------------------------------------------
    def _handle_cancel(self, owner: str, m: FixMessage, now_ns: int) -> None:
        req = self._cancel_request(owner, m, b"1", now_ns)
        if req is None:
            return
        self.counters["cancels"] += 1
        book = req.order.book
        book.engine.cancel(req.order.order_id, now_ns)
        self._drain(book, now_ns, req)

    def _handle_replace(self, owner: str, m: FixMessage, now_ns: int) -> None:
        req = self._cancel_request(owner, m, b"2", now_ns)
        if req is None:
            return
        o = req.order
        try:
            qty = _read_qty(m)  # only limit DAY orders rest, so only they can be live here
            if Tag.Price not in m:
                raise _Rejected("Price(44) is missing: a limit order's replace needs one",
                                CXL_OTHER)
            price = o.book.ticks_of(m, Tag.Price)
        except _Rejected as r:
            self._cancel_reject(req, r.text, CXL_OTHER, now_ns)
            return
        self.counters["replaces"] += 1
        o.book.engine.replace(o.order_id, qty, price, now_ns)
        self._drain(o.book, now_ns, req)

    def _cancel_request(self, owner: str, m: FixMessage, response_to: bytes,
                        now_ns: int) -> _Request | None:
        """Check what a cancel and a replace share; answer and return None if it fails."""
        cl, orig = m.get(Tag.ClOrdID), m.get(Tag.OrigClOrdID)
        if cl is None or orig is None:
            self.business_reject(owner, m, BIZ_FIELD_MISSING,
                                 f"{'ClOrdID(11)' if cl is None else 'OrigClOrdID(41)'} is missing",
                                 now_ns)
            return None
        known = self._cl_ord_ids.setdefault(owner, {})
        o = known.get(orig)
        if o is None:
            o = _Order(owner, orig, m.get(Tag.Symbol, b""), m.get(Tag.Side, b""))
            o.status = OrdStatus.Rejected
            req = _Request(owner, cl, o, response_to)
            self._cancel_reject(req, f"unknown order: OrigClOrdID(41) {_show(orig)} is not an "
                                     f"order of this session", CXL_UNKNOWN_ORDER, now_ns)
            return None
        req = _Request(owner, cl, o, response_to)
        if cl in known:
            self._cancel_reject(req, f"ClOrdID(11) {_show(cl)} was already used in this session",
                                CXL_DUPLICATE, now_ns)
            return None
        known[cl] = o
        if not o.live:
            state = {OrdStatus.Filled: "filled", OrdStatus.Canceled: "cancelled"}.get(
                o.status, "rejected")
            self._cancel_reject(req, f"too late: order {_show(orig)} is already {state}",
                                CXL_TOO_LATE, now_ns)
            return None
        for tag, have in ((Tag.Symbol, o.symbol_b), (Tag.Side, o.side_b)):
            v = m.get(tag)
            if v is not None and v != have:
                self._cancel_reject(req, f"{tag_name(tag)} {_show(v)} does not match the order's "
                                         f"{_show(have)}", CXL_OTHER, now_ns)
                return None
        return req

    def _cancel_reject(self, req: _Request, text: str, reason: bytes, now_ns: int) -> None:
        o = req.order
        body = [(Tag.OrderID, o.order_id_b), (Tag.ClOrdID, req.cl_ord_id),
                (Tag.OrigClOrdID, o.cl_ord_id), (Tag.OrdStatus, o.status),
                (Tag.CxlRejResponseTo, req.response_to), (Tag.CxlRejReason, reason),
                (Tag.Text, text), (Tag.TransactTime, utc_timestamp(now_ns))]
        self._reject_out(req.owner, MsgType.OrderCancelReject, body, text, None, req.cl_ord_id)

    # -- ORDER STATUS ----------------------------------------------------------------------------
    def _handle_status(self, owner: str, m: FixMessage, now_ns: int) -> None:
        cl = m.get(Tag.ClOrdID)
        if cl is None:
            self.business_reject(owner, m, BIZ_FIELD_MISSING, "ClOrdID(11) is missing", now_ns)
            return
        self.counters["status_requests"] += 1
        o = self._cl_ord_ids.get(owner, {}).get(cl)
        extra = [(790, m.get(790))] if 790 in m else []  # OrdStatusReqID, echoed
        if o is None:
            unknown = _Order(owner, cl, m.get(Tag.Symbol, b""), m.get(Tag.Side, b""))
            unknown.status = OrdStatus.Rejected
            text = f"unknown order: ClOrdID(11) {_show(cl)} is not an order of this session"
            body = self._report(unknown, ExecType.OrderStatus, now_ns, text=text)
            self._reject_out(owner, MsgType.ExecutionReport, extra + body, text, None, cl)
            return
        body = self._report(o, ExecType.OrderStatus, now_ns)
        body[1] = (Tag.ClOrdID, cl)  # the ClOrdID asked about, which may be an older one
        self.outbox.append((owner, MsgType.ExecutionReport, extra + body))

    # -- MATCHING REPORTS ------------------------------------------------------------------------
    def _drain(self, book: _Book, now_ns: int, req: _Request | None = None) -> None:
        """Turn the book's matching reports into ExecutionReports (or cancel rejects)."""
        reports = book.engine.reports
        batch = reports[:]
        reports.clear()  # first: whatever happens below, no report is handled twice
        for r in batch:
            kind, oid, owner = r[0], r[1], r[2]
            if owner is BACKGROUND:
                if kind in _FILL_KINDS:
                    self.counters["background_fills"] += 1
                continue
            if kind is ExecKind.CANCEL_REJECTED or kind is ExecKind.REPLACE_REJECTED:
                if req is not None:
                    self._cancel_reject(req, r[12], CXL_OTHER if req.order.live else CXL_TOO_LATE,
                                        now_ns)
                continue
            o = self._live.get(oid)
            if o is None:  # pragma: no cover - a report about an order we never entered
                log.error("%s: matching report about unknown order %r: %r", self.name, oid, r)
                continue
            self._on_report(o, r, now_ns, req)
            if not o.live:
                del self._live[oid]
                book.clients.pop(oid, None)
        if book.md_subs:  # the only cost of market data to the order path when nobody watches
            self._publish(book, batch)

    def _on_report(self, o: _Order, r: tuple, now_ns: int, req: _Request | None) -> None:
        kind = r[0]
        o.qty, o.leaves, o.cum = r[5], r[8], r[9]
        if kind is ExecKind.NEW:
            o.status = OrdStatus.New
            self._emit(o, ExecType.New, now_ns)
        elif kind in _FILL_KINDS:
            last_qty, last_px = r[6], r[7]
            o.notional += last_qty * last_px
            o.status = OrdStatus.Filled if kind is ExecKind.FILL else OrdStatus.PartiallyFilled
            self.counters["fills"] += 1
            self._emit(o, ExecType.Trade, now_ns, last=(last_qty, last_px))
        elif kind is ExecKind.CANCELLED:
            o.status = OrdStatus.Canceled
            requested = req is not None and req.order is o and r[12] == CANCEL_REQUESTED
            if requested:
                o.orig_cl_ord_id, o.cl_ord_id = o.cl_ord_id, req.cl_ord_id
            self._emit(o, ExecType.Canceled, now_ns, text=r[12], orig=requested)
        elif kind is ExecKind.REPLACED:
            o.price = r[4]
            o.status = OrdStatus.PartiallyFilled if o.cum else OrdStatus.New
            if req is not None and req.order is o:
                o.orig_cl_ord_id, o.cl_ord_id = o.cl_ord_id, req.cl_ord_id
            self._emit(o, ExecType.Replaced, now_ns, orig=True)
        elif kind is ExecKind.REJECTED:  # pragma: no cover - we check every field first
            o.status = OrdStatus.Rejected
            self._reject_out(o.owner, MsgType.ExecutionReport,
                             self._report(o, ExecType.Rejected, now_ns, text=r[12]), r[12], None,
                             o.cl_ord_id)

    # -- MARKET DATA REQUESTS --------------------------------------------------------------------
    def _handle_md_request(self, owner: str, m: FixMessage, now_ns: int) -> None:
        self.counters["md_requests"] += 1
        req_id = m.get(Tag.MDReqID)
        try:
            if req_id is None:
                raise _Rejected("MDReqID(262) is missing", MDReqRejReason.Other)
            sub_type = m.get(Tag.SubscriptionRequestType)
            if sub_type == SubscriptionRequestType.Unsubscribe:
                self._unsubscribe(owner, req_id)
                return
            if sub_type not in (SubscriptionRequestType.Snapshot,
                                SubscriptionRequestType.SnapshotAndUpdates):
                raise _Rejected(f"SubscriptionRequestType(263) must be 0 (snapshot), 1 (snapshot "
                                f"and updates) or 2 (unsubscribe), was {_show(sub_type)}",
                                MDReqRejReason.UnsupportedSubscriptionRequestType)
            updates = sub_type == SubscriptionRequestType.SnapshotAndUpdates
            mine = self._md_subs.get(owner, {})
            if req_id in mine:
                raise _Rejected(f"MDReqID(262) {_show(req_id)} is already a live subscription",
                                MDReqRejReason.DuplicateMDReqID)
            depth = _read_depth(m)
            update_type = m.get(Tag.MDUpdateType)
            if updates and update_type is not None and update_type != b"1":
                raise _Rejected(f"MDUpdateType(265) must be 1 (incremental), was "
                                f"{_show(update_type)}", MDReqRejReason.UnsupportedMDUpdateType)
            aggregated = m.get(Tag.AggregatedBook)
            if aggregated is not None and aggregated != b"Y":
                raise _Rejected(f"AggregatedBook(266) must be Y: {self.name} publishes price "
                                f"levels, was {_show(aggregated)}",
                                MDReqRejReason.UnsupportedAggregatedBook)
            types = self._read_entry_types(m)
            books = self._read_md_symbols(m)
            if updates and len(mine) >= MAX_MD_SUBSCRIPTIONS:
                raise _Rejected(f"{owner} already has {len(mine)} subscriptions, the most "
                                f"{self.name} serves", MDReqRejReason.InsufficientBandwidth)
        except _Rejected as r:
            self._md_reject(owner, m, req_id, r)
            return
        sub = _MdSub(owner, req_id, depth, types, books, updates)
        for book in books:
            self._send_snapshot(sub, book)
        if updates:
            self._md_subs.setdefault(owner, {})[req_id] = sub
            for book in books:
                book.md_subs.append(sub)
                self._md_watch(book)

    def _read_entry_types(self, m: FixMessage) -> set[bytes]:
        try:
            entries = m.groups(Tag.NoMDEntryTypes)
        except FixFieldError as e:
            raise _Rejected(e.reason, MDReqRejReason.Other) from None
        if not entries:
            raise _Rejected("NoMDEntryTypes(267) is missing: name MDEntryType(269) 0 (bid), "
                            "1 (offer) and/or 2 (trade)", MDReqRejReason.Other)
        types = set()
        for e in entries:
            t = e.get(Tag.MDEntryType)
            if t not in _ENTRY_TYPES:
                raise _Rejected(f"MDEntryType(269) {_show(t)} is not published by {self.name}: "
                                f"it publishes 0 (bid), 1 (offer) and 2 (trade)",
                                MDReqRejReason.UnsupportedMDEntryType)
            types.add(t)
        return types

    def _read_md_symbols(self, m: FixMessage) -> list[_Book]:
        try:
            entries = m.groups(Tag.NoRelatedSym)
        except FixFieldError as e:
            raise _Rejected(e.reason, MDReqRejReason.Other) from None
        if not entries:
            raise _Rejected("NoRelatedSym(146) is missing: name at least one Symbol(55)",
                            MDReqRejReason.Other)
        books: list[_Book] = []
        for e in entries:
            sym = e.get(Tag.Symbol)
            if sym is None:
                raise _Rejected("Symbol(55) is missing from a NoRelatedSym(146) entry",
                                MDReqRejReason.Other)
            book = self._by_symbol.get(sym)
            if book is None:
                raise _Rejected(f"Symbol(55) {_show(sym)} is not traded on {self.name} (it "
                                f"trades {', '.join(b.symbol for b in self.books)})",
                                MDReqRejReason.UnknownSymbol)
            if book not in books:
                books.append(book)
        return books

    def _unsubscribe(self, owner: str, req_id: bytes) -> None:
        sub = self._md_subs.get(owner, {}).pop(req_id, None)
        if sub is None:
            raise _Rejected(f"MDReqID(262) {_show(req_id)} is not a live subscription: nothing "
                            f"to unsubscribe", MDReqRejReason.Other)
        self._md_unlink(sub)

    def _md_unlink(self, sub: _MdSub) -> None:
        for book in sub.books:
            book.md_subs.remove(sub)
            self._md_watch(book)

    def _md_watch(self, book: _Book) -> None:
        """Track ``book`` as deep as its deepest subscriber looks (or stop tracking it)."""
        subs = book.md_subs
        book.md_depth = max(s.depth for s in subs) if subs else 0
        # every change so far was published: the book as it is now is what they all hold
        book.md_levels = book.engine.book_depth(book.md_depth) if subs else None

    def _md_reject(self, owner: str, m: FixMessage, req_id: bytes | None,
                   r: _Rejected) -> None:
        body: list = [(Tag.MDReqID, req_id)] if req_id is not None else []
        body += [(Tag.MDReqRejReason, r.code), (Tag.Text, r.text)]
        self._reject_out(owner, MsgType.MarketDataRequestReject, body, r.text, m)

    # -- MARKET DATA OUT -------------------------------------------------------------------------
    def _send_snapshot(self, sub: _MdSub, book: _Book) -> None:
        """A MarketDataSnapshotFullRefresh (35=W) of ``book`` for ``sub`` (module docstring)."""
        bids, asks = book.engine.book_depth(sub.depth)
        entries: list = []
        for wanted, levels, entry_type in ((sub.bids, bids, b"0"), (sub.offers, asks, b"1")):
            if wanted:
                for i, (px, qty, _) in enumerate(levels, 1):
                    entries += [(Tag.MDEntryType, entry_type), (Tag.MDEntryPx, book.price(px)),
                                (Tag.MDEntrySize, qty), (Tag.MDPriceLevel, i)]
        body: list = [(Tag.MDReqID, sub.req_id), (Tag.Symbol, book.symbol_b)]
        if sub.rpt_seq is not None:
            body.append((Tag.RptSeq, sub.rpt_seq[book.symbol_b]))
        body.append((Tag.NoMDEntries, len(entries) // 4))
        self.counters["md_snapshots"] += 1
        self.outbox.append((sub.owner, _W, body + entries))

    def _publish(self, book: _Book, batch: list) -> None:
        """Tell ``book``'s subscribers what one matching call changed: at most one
        MarketDataIncrementalRefresh (35=X) each, trades first, then the levels that differ
        from what they were last told, within each one's depth."""
        trades = None
        i, n = 0, len(batch)
        while i < n:  # fills come in pairs, the aggressor's then the resting order's
            r = batch[i]
            if r[0] in _FILL_KINDS:
                if trades is None:
                    trades = []
                trades.append((r[7], r[6]))
                i += 2
            else:
                i += 1
        new = book.engine.book_depth(book.md_depth)
        old = book.md_levels
        if new == old and trades is None:
            return
        book.md_levels = new
        sym = book.symbol_b
        price = book.price
        diffs: dict[int, tuple[list, list]] = {}
        for sub in book.md_subs:
            d = sub.depth
            ops = diffs.get(d)
            if ops is None:
                ops = diffs[d] = (_level_diff(old[0][:d], new[0][:d]),
                                  _level_diff(old[1][:d], new[1][:d]))
            seq = sub.rpt_seq[sym]
            first = seq
            entries: list = []
            if trades is not None and sub.trades:
                for px, qty in trades:
                    seq += 1
                    entries += [(Tag.MDUpdateAction, _NEW), (Tag.MDEntryType, b"2"),
                                (Tag.Symbol, sym), (Tag.MDEntryPx, price(px)),
                                (Tag.MDEntrySize, qty), (Tag.RptSeq, seq)]
            for wanted, side_ops, entry_type in ((sub.bids, ops[0], b"0"),
                                                 (sub.offers, ops[1], b"1")):
                if wanted:
                    for action, level, px, qty in side_ops:
                        seq += 1
                        entries += [(Tag.MDUpdateAction, action), (Tag.MDEntryType, entry_type),
                                    (Tag.Symbol, sym), (Tag.MDEntryPx, price(px)),
                                    (Tag.MDEntrySize, qty), (Tag.MDPriceLevel, level),
                                    (Tag.RptSeq, seq)]
            if seq == first:
                continue
            sub.rpt_seq[sym] = seq
            self.counters["md_incrementals"] += 1
            self.counters["md_entries"] += seq - first
            self.outbox.append((sub.owner, _X, [(Tag.MDReqID, sub.req_id),
                                                (Tag.NoMDEntries, seq - first), *entries]))

    # -- MESSAGES OUT ----------------------------------------------------------------------------
    def _emit(self, o: _Order, exec_type: bytes, now_ns: int, *,
              last: tuple[int, int] | None = None, text: str | None = None,
              orig: bool = False) -> None:
        self.outbox.append((o.owner, MsgType.ExecutionReport,
                            self._report(o, exec_type, now_ns, last=last, text=text, orig=orig)))

    def _report(self, o: _Order, exec_type: bytes, now_ns: int, *,
                last: tuple[int, int] | None = None, text: str | None = None,
                orig: bool = False) -> list:
        """An ExecutionReport body for ``o`` as it is now (field list: module docstring)."""
        self._next_exec_id += 1
        book = o.book
        body: list = [(Tag.OrderID, o.order_id_b), (Tag.ClOrdID, o.cl_ord_id)]
        if orig and o.orig_cl_ord_id is not None:
            body.append((Tag.OrigClOrdID, o.orig_cl_ord_id))
        body += [(Tag.ExecID, self._prefix + b"%012x" % self._next_exec_id),
                 (Tag.ExecType, exec_type), (Tag.OrdStatus, o.status)]
        if o.symbol_b:
            body.append((Tag.Symbol, o.symbol_b))
        if o.side_b:
            body.append((Tag.Side, o.side_b))
        if o.qty:
            body.append((Tag.OrderQty, o.qty))
        if o.ord_type_b is not None:
            body.append((Tag.OrdType, o.ord_type_b))
        if o.price is not None and book is not None:
            body.append((Tag.Price, book.price(o.price)))
        if o.ord_type_b is not None:
            body.append((Tag.TimeInForce, o.tif_b))
        if last is not None:
            body += [(Tag.LastQty, last[0]), (Tag.LastPx, book.price(last[1]))]
            if self.fee_rate:
                fee = self.fee_rate * last[0] * last[1] * book.tick
                body += [(Tag.Commission, _decimal(fee, 8)), (13, b"3")]
        avg = _decimal(o.notional * book.tick / o.cum, book.decimals + 4) if o.cum else b"0"
        body += [(Tag.LeavesQty, o.leaves), (Tag.CumQty, o.cum), (Tag.AvgPx, avg)]
        if text:
            body.append((Tag.Text, text))
        body.append((Tag.TransactTime, utc_timestamp(now_ns)))
        return body

    def _reject_out(self, owner: str, msg_type: bytes, body: list, text: str,
                    m: FixMessage | None, cl_ord_id: bytes | None = None) -> None:
        self.counters["rejects"] += 1
        what = f"35={_text(m.msg_type)} seq {m.seq}" if m is not None else \
            f"ClOrdID {_show(cl_ord_id)}"
        log.info("%s rejected %s from %s (answered 35=%s): %s", self.name, what, owner,
                 _text(msg_type), text)
        self.outbox.append((owner, msg_type, body))

    def _new_order_id(self) -> int:
        self._next_order_id += 1
        return self._next_order_id


def drop_copy_body(owner: str, body: list) -> list:
    """A drop copy of an ExecutionReport body sent to ``owner``: the same fields (ExecID
    included) plus Account(1) naming ``owner``, the counterparty it went to."""
    return body + [(Tag.Account, owner)]


def _read_qty(m: FixMessage) -> int:
    raw = m.get(Tag.OrderQty)
    if raw is None:
        raise _Rejected("OrderQty(38) is missing", REJ_OTHER)
    whole = _WHOLE(raw)
    q = int(whole.group(1)) if whole else 0
    if not 0 < q <= _MAX_QTY:
        raise _Rejected(f"OrderQty(38) must be a whole number from 1 to {_MAX_QTY}, was "
                        f"{_show(raw)}", REJ_OTHER)
    return q


def _read_depth(m: FixMessage) -> int:
    """MarketDepth (264) as the number of levels to publish (``_FULL_DEPTH`` for 0)."""
    raw = m.get(Tag.MarketDepth)
    if raw is None:
        raise _Rejected("MarketDepth(264) is missing: 0 for every level, N for the best N",
                        MDReqRejReason.UnsupportedMarketDepth)
    if not (raw.isdigit() and len(raw) <= 9 and int(raw) <= MAX_MARKET_DEPTH):
        raise _Rejected(f"MarketDepth(264) must be 0 (every level) or 1 to {MAX_MARKET_DEPTH}, "
                        f"was {_show(raw)}", MDReqRejReason.UnsupportedMarketDepth)
    return int(raw) or _FULL_DEPTH


def _level_diff(old: list, new: list) -> list[tuple[bytes, int, int, int]]:
    """The MDUpdateActions that turn levels ``old`` into ``new`` (both ``(price, qty, count)``
    best first, already cut to one depth), as ``(action, MDPriceLevel, price, qty)`` in the
    order a receiver applies them.

    Deletes first, top down, each level numbered as it is once the ones above are gone; then,
    top down, a New for each price that is not there yet and a Change for each whose quantity
    moved, numbered as in ``new``. Deleting first means no New ever pushes a level the
    receiver still needs past its depth.
    """
    if old == new:
        return []
    ops: list[tuple[bytes, int, int, int]] = []
    new_prices = {p for p, _, _ in new}
    kept = 0
    for p, _, _ in old:
        if p in new_prices:
            kept += 1
        else:
            ops.append((_DELETE, kept + 1, p, 0))
    old_qty = {p: q for p, q, _ in old}
    for i, (p, q, _) in enumerate(new, 1):
        was = old_qty.get(p)
        if was is None:
            ops.append((_NEW, i, p, q))
        elif was != q:
            ops.append((_CHANGE, i, p, q))
    return ops


def _decimal(x: float, places: int) -> bytes:
    """``x`` with at most ``places`` decimals and no trailing zeros (FIX floats)."""
    s = b"%.*f" % (places, x)
    return s.rstrip(b"0").rstrip(b".") if b"." in s else s


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace")


def _show(raw: bytes | None) -> str:
    return "<missing>" if raw is None else repr(raw.decode("ascii", "replace"))
