"""The kernel's execution stage: the order manager and the smart order router over the venues.

``ExecutionEngine`` is owned by the kernel. Intents come in through ``submit`` (the kernel's one
door, behind the risk engine: manual orders from a desk or ``helmdesk ctl``, strategies, scripted
intents), cancels through ``cancel`` / ``cancel_all``, which no check ever blocks. Each step the
kernel calls ``poll(now_ns)``, which drives every venue client (``engine.execution.venues``)
and hands each ExecutionReport and OrderCancelReject to the OMS.

Every change to an order — an intent's (PendingNew, PendingCancel) or a venue's report — goes
to every subscriber (``subscribe``: the journal, the desk publisher, strategies, a backtest's
report), in the order they subscribed; a router parent's progress goes to ``subscribe_parents``.

Send first, book later: a subscriber that only records (the journal, the desk publisher)
subscribes ``deferred``. The updates an intent causes reach it not at once but when the kernel
calls ``flush_deferred`` after the stage that sent them, so a strategy's second and later
messages of a turn (a requote: two cancels, then two orders) do not wait behind the records of
the first. Nothing is lost or reordered: every subscriber still sees every update once, in
order (a venue's report, and anything ``later`` queued, first flushes what waits), and the
subscribers that decide (the risk engine, strategies) still see each update at once. A
deferred subscriber must read an order's state from the update (status, quantities), not
from the order, which may have moved on by then.

Venue sessions: a session that drops marks that venue's live orders *unknown* (the venue
cancels on disconnect, but that is its word, not ours); when it logs on again, every order in
doubt is asked about with an OrderStatusRequest and settled by the answer. The router reads
each venue's book from the market-data stage's ``BookSet`` (the same books the desk and the
strategies read) and uses a venue for a symbol only while its session is up and that book is
good.

Drop copy: a venue with ``drop_copy_sender`` has a ``DropCopyClient`` in ``drop_copies``
(engine.execution.dropcopy), polled with the venue clients and fed every fill an order
update carries; it reconciles the venue's copy of our executions with ours and tells the
desks (``notify``) what differs.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.core.intents import ROUTER, OrderIntent
from engine.core.profile import InstrumentConfig, Profile, VenueLinkConfig
from engine.core.records import VENUE_BOOKS_OK, VENUE_DOWN, VENUE_UP
from engine.execution.dropcopy import DropCopyClient
from engine.execution.oms import Oms, OrderUpdate
from engine.execution.orders import ClOrdIds, Order
from engine.execution.router import (
    CheckFn,
    ParentOrder,
    ParentUpdate,
    SmartRouter,
    VenueInfo,
)
from engine.fix.session import (
    AppMessage,
    Disconnect,
    Garbled,
    LoggedOn,
    LoggedOut,
    PeerReject,
    RejectSent,
)

__all__ = ["ExecutionConfig", "ExecutionEngine"]

log = logging.getLogger("helmdesk.execution")

OnOrder = Callable[[OrderUpdate, Order], None]
OnParent = Callable[[ParentUpdate], None]
#: notify(logging level, text, instrument index or -1): a line for the desks
Notify = Callable[[int, str, int], None]
_NEVER = 1 << 62


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionConfig:
    """The execution stage's settings: the profile's ``[[venues]]`` and instruments."""

    venues: tuple[VenueLinkConfig, ...]
    instruments: tuple[InstrumentConfig, ...]

    @classmethod
    def from_profile(cls, profile: Profile) -> ExecutionConfig:
        return cls(venues=profile.venues, instruments=profile.instruments)


class _BookView:
    """One venue's book of one symbol, as the router reads it (prices, best first).

    Lazy: the router reads one side (a buy the asks), so a side's prices are made only when
    read, from the book's integer ticks, in plain Python (a level at a time is cheaper than
    numpy's per-call cost at this depth). ``round(t * tick * f) / f`` is exactly what
    ``MarketData.venue_book`` gives, ``(ticks * tick).round(places)``: numpy rounds by the
    same multiply, round-half-even and divide (tests/execution compares the two)."""

    __slots__ = ("_books", "_v", "_i", "_tick", "_f")

    def __init__(self, books, v: int, i: int, tick: float, places: int) -> None:
        self._books, self._v, self._i, self._tick, self._f = books, v, i, tick, 10.0 ** places

    def _prices(self, ticks) -> list[float]:
        tick, f = self._tick, self._f
        return [round(t * tick * f) / f for t in ticks[self._v, self._i].tolist()]

    @property
    def bid_px(self) -> list[float]:
        return self._prices(self._books.bid_px)

    @property
    def ask_px(self) -> list[float]:
        return self._prices(self._books.ask_px)

    @property
    def bid_sz(self) -> list[float]:
        return [float(n) for n in self._books.bid_sz[self._v, self._i].tolist()]

    @property
    def ask_sz(self) -> list[float]:
        return [float(n) for n in self._books.ask_sz[self._v, self._i].tolist()]


class ExecutionEngine:
    def __init__(self, config: ExecutionConfig, clients: Sequence, ids: ClOrdIds, *,
                 market=None, notify: Notify | None = None, check: CheckFn | None = None
                 ) -> None:
        """``clients``: the venue clients, in ``config.venues`` order; ``market``: the
        market-data stage (its books and venue table); ``check``: asked before each router
        child goes out (the risk engine)."""
        self.config = config
        self.clients = {c.name: c for c in clients}
        self._clients = list(self.clients.values())
        self._market_clients = [c for c in self._clients if hasattr(c, "on_market")]
        self.ticks = {i.symbol: i.tick for i in config.instruments}
        self.index = {i.symbol: k for k, i in enumerate(config.instruments)}
        self.market = market
        #: venue name -> its row in the market-data stage's BookSet (absent: no book)
        self.book_row = ({} if market is None else
                         {name: market.venue_ids[name] for name in self.clients
                          if name in market.venue_ids})
        for c in self._market_clients:  # a simulated venue's other participants: its book
            row = self.book_row.get(c.name)
            c.books = market.books if row is not None else None
            c.venue_index = row or 0
        self.notify = notify or (lambda _level, _text, _inst: None)
        self._subscribers: list[OnOrder] = []
        self._deferred_mask: list[bool] = []  # per subscriber: deferred
        self._deferred_subs: list[OnOrder] = []  # of _subscribers: those that may wait
        self._now_subs: list[OnOrder] = []  # of _subscribers: those that may not
        #: (fn, args) waiting for flush_deferred, in the order they happened
        self._later: list[tuple[Callable, tuple]] = []
        #: ClOrdIDs of the orders working now (leaves > 0)
        self.working: set[str] = set()
        self._parent_subscribers: list[OnParent] = []
        self.oms = Oms(ids, self._send, on_intent=self._publish_intent)
        self.router = SmartRouter(
            self.oms, [VenueInfo(v.name, v.fee_bps, v.latency_us) for v in config.venues],
            self._books, self._routable, check=check)
        self._now = 0
        self._was_up: set[str] = set()  # venues logged on since their last drop
        #: venues whose session has logged on at least once (however briefly): a drop of one
        #: of these is a lost session (the risk engine's venue_down)
        self.ever_up: set[str] = set()
        #: venues whose Logon was answered with a Logout (refused), and its text: told once
        self._refused: dict[str, str] = {}
        self._md_seen = None if market is None else market.new_seen()
        self._md_applied = -1
        self.counters = dict.fromkeys(
            ("app_messages", "ignored", "session_rejects", "drops", "unusable", "client_errors"),
            0)
        #: venue name -> its drop copy (``[[venues]] drop_copy_sender``), reconciled with
        #: the fills every order update carries (engine.execution.dropcopy)
        self.drop_copies: dict[str, DropCopyClient] = {
            v.name: DropCopyClient.for_venue(v, self.clients[v.name], notify=self.notify,
                                             index=self.index, is_ours=self.oms.orders.__contains__)
            for v in config.venues if v.drop_copy_sender and v.name in self.clients}
        self._drop_copies = list(self.drop_copies.values())
        if self._drop_copies:
            self.subscribe(self._to_drop_copy)

    # -- subscribers -----------------------------------------------------------------------------
    def subscribe(self, fn: OnOrder, *, deferred: bool = False) -> None:
        """``fn(update, order)`` for every change to every order, from now on. ``deferred``:
        an intent's updates may reach ``fn`` later in the turn (module docstring)."""
        self._subscribers.append(fn)
        (self._deferred_subs if deferred else self._now_subs).append(fn)
        self._deferred_mask = [f in self._deferred_subs for f in self._subscribers]

    def later(self, fn: Callable, *args) -> None:
        """Call ``fn(*args)`` at the next ``flush_deferred``, in order with the deferred
        updates (a record that goes with them: an order's tag for the journal)."""
        self._later.append((fn, args))

    def flush_deferred(self) -> None:
        """Hand the deferred subscribers what waits for them, in order (the kernel calls this
        after each stage that may send, and a venue's report calls it first)."""
        later = self._later
        while later:  # a deferred subscriber never sends, but be safe: take what it adds too
            self._later = []
            for fn, args in later:
                fn(*args)
            later = self._later

    def _to_deferred(self, u: OrderUpdate, o: Order) -> None:
        for fn in self._deferred_subs:
            fn(u, o)

    def subscribe_parents(self, fn: OnParent) -> None:
        """``fn(parent_update)`` for every change to a router parent."""
        self._parent_subscribers.append(fn)

    def _publish(self, u: OrderUpdate, o: Order) -> None:
        """An update every subscriber sees now, after whatever the deferred ones still wait
        for (so each sees every update in order)."""
        if u.leaves_qty > 0:
            self.working.add(u.cl_ord_id)
        else:
            self.working.discard(u.cl_ord_id)
        for fn, deferred in zip(self._subscribers, self._deferred_mask):
            if self._later and deferred:
                self.flush_deferred()
            fn(u, o)

    def _publish_intent(self, u: OrderUpdate, o: Order) -> None:
        """An update an intent caused (its message is on the wire already): the subscribers
        that decide see it now, the deferred ones at the next ``flush_deferred``."""
        if not self._deferred_subs:
            self._publish(u, o)
            return
        if u.leaves_qty > 0:
            self.working.add(u.cl_ord_id)
        else:
            self.working.discard(u.cl_ord_id)
        for fn in self._now_subs:
            fn(u, o)
        self._later.append((self._to_deferred, (u, o)))

    def _to_drop_copy(self, u: OrderUpdate, o: Order) -> None:
        if u.last_qty > 0:
            dc = self.drop_copies.get(u.venue)
            if dc is not None:
                dc.on_engine_fill(u.exec_id, u.cl_ord_id, u.symbol, o.side, u.last_qty,
                                  u.last_px, self._now)

    def _publish_parent(self, pu: ParentUpdate) -> None:
        for fn in self._parent_subscribers:
            fn(pu)

    # -- the kernel's side -----------------------------------------------------------------------
    def fds(self) -> list[int]:
        """Sockets a live loop's wait should include (connected or connecting)."""
        return [fd for c in (*self._clients, *self._drop_copies) if (fd := c.fileno()) >= 0]

    def next_due_ns(self) -> int:
        nxt = _NEVER
        for c in (*self._clients, *self._drop_copies) if self._drop_copies else self._clients:
            t = c.next_due_ns()
            if t < nxt:
                nxt = t
        return nxt

    def poll(self, now_ns: int) -> bool:
        """Drive every venue client once; True if anything arrived."""
        self._now = now_ns
        busy = False
        for c in self._clients:
            try:
                events = c.poll(now_ns)
            except Exception as e:  # a bug met by what a venue sent: drop it, never the engine
                self.counters["client_errors"] += 1
                log.error("%s: the session failed on its input (%s: %s); reconnecting\n%s",
                          c.name, type(e).__name__, e, traceback.format_exc())
                self.notify(logging.ERROR, f"{c.name} session failed ({type(e).__name__}: "
                                           f"{e}); reconnecting", -1)
                events = c.fail(f"internal error: {type(e).__name__}: {e}", now_ns)
            if events:
                busy = True
                self._on_events(c, events, now_ns)
        for dc in self._drop_copies:  # never raises: it counts and reports bad input itself
            busy = dc.poll(now_ns) or busy
        return busy

    def on_market(self, now_ns: int) -> None:
        """The books moved: simulated venues whose other participants are those books see it
        (a resting order the market now reaches fills)."""
        if not self._market_clients or self.market is None:
            return
        applied = self.market.applied
        if applied == self._md_applied:
            return
        self._md_applied = applied
        changed = self.market.changed(self._md_seen)
        if len(changed):
            for c in self._market_clients:
                c.on_market(changed, now_ns)

    def _on_events(self, client, events: list, now_ns: int) -> None:
        oms = self.oms
        router = self.router
        name = client.name
        for e in events:
            if type(e) is AppMessage:
                self.counters["app_messages"] += 1
                mt = e.message.msg_type
                if mt in (b"8", b"9"):
                    try:
                        for u in oms.on_message(name, e.message):
                            self._publish(u, oms.orders[u.cl_ord_id])
                            for pu in router.on_update(u, now_ns):
                                self._publish_parent(pu)
                    except Exception as err:  # nothing a venue sends may stop the engine
                        self._unusable(name, e.message, err, now_ns)
                else:
                    self.counters["ignored"] += 1
                    log.info("%s: 35=%s not handled by the engine", name,
                             mt.decode("ascii", "replace"))
            elif isinstance(e, LoggedOn):
                self._was_up.add(name)
                self.ever_up.add(name)
                self._refused.pop(name, None)
                n = oms.request_status(name, now_ns)
                how = "reset" if e.reset else "resumed"
                self.notify(logging.INFO, f"{name} session up ({how}); "
                                          f"{n} orders in doubt asked about", -1)
                log.info("%s: logged on (%s sequence numbers); %d status requests sent",
                         name, how, n)
            elif isinstance(e, Disconnect):
                self.counters["drops"] += 1
                updates = oms.on_venue_down(name)
                for u in updates:
                    self._publish(u, oms.orders[u.cl_ord_id])
                for pu in router.on_venue_down(name, now_ns):
                    self._publish_parent(pu)
                if name in self._was_up:
                    self._was_up.discard(name)
                    self.notify(logging.ERROR, f"{name} session DOWN: {e.reason}; "
                                               f"{len(updates)} orders unknown", -1)
                    log.error("%s: session down (%s); %d live orders now unknown", name,
                              e.reason, len(updates))
            elif isinstance(e, LoggedOut):
                log.warning("%s: logged out: %s", name, e.text)
                if name not in self._was_up and self._refused.get(name) != e.text:
                    # our Logon refused (credentials, CompIDs): the desks must hear why the
                    # venue never comes up, once per reason, not once per retry
                    self._refused[name] = e.text
                    self.notify(logging.ERROR, f"{name} session not up: logged out: "
                                               f"{e.text}"[:200], -1)
            elif isinstance(e, (PeerReject, RejectSent, Garbled)):
                self.counters["session_rejects"] += 1
                log.warning("%s: %s", name, e)

    def _unusable(self, venue: str, m, err: Exception, now_ns: int) -> None:
        """A report we could not apply: count it, say so, and put its order in doubt until the
        venue answers a status request (unless this was the answer to one)."""
        self.counters["unusable"] += 1
        why = f"{type(err).__name__}: {err}"
        log.error("%s: report refused as unusable (%s): %r\n%s", venue, why, m.raw[:512],
                  traceback.format_exc())
        u = self.oms.in_doubt(venue, m, why)
        if u is None:
            self.notify(logging.ERROR, f"{venue}: unusable report refused: {why}"[:200], -1)
            return
        o = self.oms.orders[u.cl_ord_id]
        self.notify(logging.ERROR, f"{venue}: order {o.cl_ord_id} in doubt: {why}"[:200],
                    self.index.get(o.symbol, -1))
        self._publish(u, o)
        if m.get(150) != b"I":  # not a status answer itself: ask for one
            self.oms.request_status(venue, now_ns, only=o.cl_ord_id)

    def close(self, now_ns: int) -> None:
        for c in (*self._clients, *self._drop_copies):
            c.close(now_ns)

    # -- intents ---------------------------------------------------------------------------------
    def submit(self, intent: OrderIntent, now_ns: int) -> Order | ParentOrder | str:
        """Send an intent: to its venue, or to the router (venue ``*``). Return the order or
        the router's parent, or why nothing was sent. Risk checks are the kernel's, before."""
        self._now = now_ns
        symbol = intent.symbol
        if symbol not in self.ticks:
            return f"unknown instrument {symbol!r}"
        if intent.venue == ROUTER:
            if not self.clients:
                return "no venues configured"
            return self.router.route(self.oms.ids.next(), symbol, intent.side, intent.qty,
                                     intent.price, intent.tif, now_ns)
        venue = intent.venue
        client = self.clients.get(venue)
        if client is None:
            known = ", ".join(self.clients) or "none configured"
            return f"unknown venue {venue!r} (venues: {known})"
        if symbol not in client.symbols:
            return f"venue {venue} does not trade {symbol}"
        price = intent.price
        if price is not None:
            tick = self.ticks[symbol]
            steps = price / tick
            if not math.isfinite(steps) or abs(steps - round(steps)) > 1e-6:
                return f"price {price:g} is not on {symbol}'s tick grid of {tick:g}"
        return self.oms.new_order(venue, symbol, intent.side, intent.qty, price, intent.tif,
                                  now_ns)

    def cancel(self, cl_ord_id: str, now_ns: int) -> str | None:
        """Cancel one order. A router parent's id, or one of its children's, cancels the whole
        parent: a child cancelled alone would only be re-routed."""
        self._now = now_ns
        parent = (cl_ord_id if cl_ord_id in self.router.parents
                  else self.router.parent_of(cl_ord_id))
        if parent is not None:
            return self.router.cancel(parent, now_ns)
        return self.oms.cancel(cl_ord_id, now_ns)

    def cancel_all(self, now_ns: int, venue: str | None = None, symbol: str | None = None,
                   reason: str = "cancel all") -> int:
        """Cancel every live order in scope; return how many cancel requests went out. The
        router's parents in scope are halted first, so their children are not re-routed."""
        self._now = now_ns
        self.router.halt(reason, symbol)
        return self.oms.cancel_all(now_ns, venue, symbol)

    def restore(self, orders: list[Order]) -> None:
        """Orders rebuilt from the store after a restart: shown, in doubt until reconciled."""
        for u in self.oms.restore(orders):
            self._publish(u, self.oms.orders[u.cl_ord_id])

    # -- venues ----------------------------------------------------------------------------------
    def venue_states(self) -> list[int]:
        """Each venue's state word (VENUE_UP | VENUE_BOOKS_OK), in configuration order."""
        out = []
        for c in self._clients:
            if not c.up:
                out.append(VENUE_DOWN)
                continue
            md = getattr(c, "md", None)
            if md is not None:
                ok = c.books_ok()
            else:
                row = self.book_row.get(c.name)
                ok = row is not None and not any(
                    self.market.books.excluded(row, self.index[s]) for s in c.symbols)
            out.append(VENUE_UP | (VENUE_BOOKS_OK if ok else 0))
        return out

    def _books(self, symbol: str) -> dict:
        """Each usable venue's book of ``symbol``, for the router."""
        market = self.market
        if market is None:
            return {}
        i = self.index[symbol]
        books = market.books
        out = {}
        for name, c in self.clients.items():
            row = self.book_row.get(name)
            if (row is not None and symbol in c.symbols and c.up
                    and not books.excluded(row, i)):
                out[name] = _BookView(books, row, i, market.ticks[i], market.decimals[i])
        return out

    def _routable(self, symbol: str) -> list[str]:
        """Venues the router may send ``symbol`` to: logged on, trade it, and (with a book
        there) that book is good."""
        out = []
        i = self.index.get(symbol)
        for name, c in self.clients.items():
            if not c.up or symbol not in c.symbols:
                continue
            row = self.book_row.get(name)
            if row is not None and self.market.books.excluded(row, i):
                continue
            out.append(name)
        return out

    def _send(self, venue: str, msg_type: bytes, body: list) -> int | None:
        c = self.clients.get(venue)
        if c is None:
            return None
        return c.send(msg_type, body, self._now)
