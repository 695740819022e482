"""The engine's trading side: its FIX order sessions, the OMS on top, and what the loop calls.

``Trading`` is owned by the engine's one hot thread. Each loop turn calls ``poll(now_ns)``
(wall clock, for FIX timestamps), which drives every venue's ``PolledConnection`` (connect
without blocking, read, feed the session, write, timers) and hands each application message
to the OMS. Whatever changes an order is passed to ``on_order(update, order)``, which the
engine turns into an event-ring record for the desks (and, with a store, a database row).

Venue sessions come from the profile's ``[[venues]]``. A session that drops marks that venue's
live orders *unknown* (the venue cancels on disconnect, but that is its word, not ours); when
it logs on again, every order in doubt is asked about with an OrderStatusRequest and settled by
the answer. Sequence numbers and the sent-message store persist per venue, so a restarted
engine resumes its sessions instead of resetting them (unless the profile says
``reset_on_logon``).

Orders entered from a desk or ``helmdesk ctl`` go through ``place``: the checks here are the
ones that need the trading side (venue known, trades the symbol, logged on, price on the tick
grid); kill switches and permissions are the engine's, before it calls ``place``. A cancel is
never blocked by any check.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

from engine.core.profile import InstrumentConfig, VenueLinkConfig
from engine.execution.oms import Oms, OrderUpdate
from engine.execution.orders import ClOrdIds, Order
from engine.execution.router import CheckFn, ParentOrder, ParentUpdate, SmartRouter, VenueInfo
from engine.feeds.fixmd import FixMdBooks
from engine.fix.polled import PolledConnection
from engine.fix.session import (
    AppMessage,
    Disconnect,
    FixSession,
    Garbled,
    LoggedOn,
    LoggedOut,
    PeerReject,
    RejectSent,
    SessionConfig,
)
from engine.fix.store import MessageStore
from engine.fix.transport import Backoff
from engine.ipc.layout import VENUE_BOOKS_OK, VENUE_DOWN, VENUE_UP

__all__ = ["Trading", "VenueLink"]

log = logging.getLogger("helmdesk.trading")

OnOrder = Callable[[OrderUpdate, Order], None]
OnEvent = Callable[[int, str], None]  # (logging level, text)
OnParent = Callable[[ParentUpdate], None]
_MD_TYPES = (b"W", b"X", b"Y")


class VenueLink:
    """One venue: its profile entry, its FIX session and the connection that polls it."""

    __slots__ = ("cfg", "session", "conn", "symbols", "was_up", "md")

    def __init__(self, cfg: VenueLinkConfig, store: MessageStore, backoff: Backoff) -> None:
        self.cfg = cfg
        self.session = FixSession(
            SessionConfig(sender=cfg.sender, target=cfg.target, initiator=True,
                          heartbeat_s=cfg.heartbeat_s, reset_on_logon=cfg.reset_on_logon),
            store,
        )
        self.conn = PolledConnection(self.session, cfg.host, cfg.port, backoff=backoff)
        self.symbols = frozenset(cfg.symbols)
        self.was_up = False
        self.md = FixMdBooks(cfg.name, cfg.symbols) if cfg.market_data else None

    def state_word(self) -> int:
        """The venue's state for shared memory (layout: VENUE_UP | VENUE_BOOKS_OK)."""
        if not self.conn.up:
            return VENUE_DOWN
        md = self.md
        ok = md is not None and not any(md.stale(s) for s in self.cfg.symbols)
        return VENUE_UP | (VENUE_BOOKS_OK if ok else 0)

    def routable(self, symbol: str) -> bool:
        """May the router send ``symbol`` here: logged on, trades it, and (with market
        data) its book here is good?"""
        if not self.conn.up or symbol not in self.symbols:
            return False
        return self.md is None or not self.md.stale(symbol)

    @property
    def up(self) -> bool:
        return self.conn.up


class Trading:
    def __init__(self, venues: tuple[VenueLinkConfig, ...], instruments: tuple[InstrumentConfig, ...],
                 ids: ClOrdIds, stores: Callable[[VenueLinkConfig], MessageStore], *,
                 on_order: OnOrder, on_event: OnEvent, on_parent: OnParent | None = None,
                 check: CheckFn | None = None, on_md=None,
                 backoff: Callable[[], Backoff] = Backoff) -> None:
        self.links = {v.name: VenueLink(v, stores(v), backoff()) for v in venues}
        self.ticks = {i.symbol: i.tick for i in instruments}
        self.oms = Oms(ids, self._send, on_intent=on_order)
        self.router = SmartRouter(
            self.oms, [VenueInfo(v.name, v.fee_bps, v.latency_us) for v in venues],
            self._books, self._routable, check=check)
        self.on_order = on_order
        self.on_event = on_event
        self.on_parent = on_parent or (lambda _u: None)
        #: every market data message a session delivers, after its FixMdBooks took it:
        #: on_md(venue, message, now_ns, fixmd) (the engine's MarketData)
        self.on_md = on_md
        self._now = 0
        self.counters = dict.fromkeys(("app_messages", "ignored", "session_rejects", "drops"), 0)

    # -- the loop's side ---------------------------------------------------------------------
    def fds(self) -> list[int]:
        """Sockets the loop's wait should include (connected or connecting)."""
        return [fd for link in self.links.values() if (fd := link.conn.fileno()) >= 0]

    def poll(self, now_ns: int) -> bool:
        """Drive every venue session once; True if anything arrived."""
        self._now = now_ns
        busy = False
        for name, link in self.links.items():
            events = link.conn.poll(now_ns)
            if events:
                busy = True
                self._on_events(name, link, events, now_ns)
        return busy

    def _on_events(self, name: str, link: VenueLink, events: list, now_ns: int) -> None:
        oms = self.oms
        router = self.router
        for e in events:
            if isinstance(e, AppMessage):
                self.counters["app_messages"] += 1
                mt = e.message.msg_type
                if mt in (b"8", b"9"):
                    for u in oms.on_message(name, e.message):
                        self.on_order(u, oms.orders[u.cl_ord_id])
                        for pu in router.on_update(u, now_ns):
                            self.on_parent(pu)
                elif mt in _MD_TYPES and link.md is not None:
                    link.md.on_message(e.message, now_ns)
                    if self.on_md is not None:
                        self.on_md(name, e.message, now_ns, link.md)
                    for msg_type, body in link.md.take_requests():
                        link.conn.send(msg_type, body, now_ns)
                else:
                    self.counters["ignored"] += 1
                    log.info("%s: 35=%s not handled by the engine yet", name,
                             mt.decode("ascii", "replace"))
            elif isinstance(e, LoggedOn):
                link.was_up = True
                if link.md is not None:
                    for msg_type, body in link.md.subscribe():
                        link.conn.send(msg_type, body, now_ns)
                n = oms.request_status(name, now_ns)
                how = "reset" if e.reset else "resumed"
                self.on_event(logging.INFO, f"{name} session up ({how}); "
                                            f"{n} orders in doubt asked about")
                log.info("%s: logged on (%s sequence numbers); %d status requests sent",
                         name, how, n)
            elif isinstance(e, Disconnect):
                self.counters["drops"] += 1
                was_up, link.was_up = link.was_up, False
                if link.md is not None:
                    link.md.connection_lost()
                    if self.on_md is not None:
                        self.on_md(name, None, now_ns, link.md)  # its books are stale now
                updates = oms.on_venue_down(name)
                for u in updates:
                    self.on_order(u, oms.orders[u.cl_ord_id])
                for pu in router.on_venue_down(name, now_ns):
                    self.on_parent(pu)
                if was_up:
                    self.on_event(logging.ERROR, f"{name} session DOWN: {e.reason}; "
                                                 f"{len(updates)} orders unknown")
                    log.error("%s: session down (%s); %d live orders now unknown", name,
                              e.reason, len(updates))
            elif isinstance(e, LoggedOut):
                log.warning("%s: logged out: %s", name, e.text)
            elif isinstance(e, (PeerReject, RejectSent, Garbled)):
                self.counters["session_rejects"] += 1
                log.warning("%s: %s", name, e)

    def close(self, now_ns: int) -> None:
        for link in self.links.values():
            link.conn.close(now_ns)

    # -- intents -----------------------------------------------------------------------------
    def place(self, venue: str, symbol: str, side: int, qty: int, price: float | None,
              tif: str, now_ns: int) -> Order | str:
        """Send one order to one venue; return it, or why it was not sent."""
        link = self.links.get(venue)
        if link is None:
            known = ", ".join(self.links) or "none configured"
            return f"unknown venue {venue!r} (venues: {known})"
        if symbol not in link.symbols:
            return f"venue {venue} does not trade {symbol}"
        if price is not None:
            tick = self.ticks[symbol]
            steps = price / tick
            if not math.isfinite(steps) or abs(steps - round(steps)) > 1e-6:
                return f"price {price:g} is not on {symbol}'s tick grid of {tick:g}"
        return self.oms.new_order(venue, symbol, side, qty, price, tif, now_ns)

    def route(self, symbol: str, side: int, qty: int, price: float | None, tif: str,
              now_ns: int) -> ParentOrder | str:
        """A parent order for the smart order router: split over the venues by their books."""
        if not self.links:
            return "no venues configured"
        return self.router.route(self.oms.ids.next(), symbol, side, qty, price, tif, now_ns)

    def cancel(self, cl_ord_id: str, now_ns: int) -> str | None:
        """Cancel one order. A router parent's id, or one of its children's, cancels the whole
        parent: a child cancelled alone would only be re-routed."""
        parent = cl_ord_id if cl_ord_id in self.router.parents else self.router.parent_of(cl_ord_id)
        if parent is not None:
            return self.router.cancel(parent, now_ns)
        return self.oms.cancel(cl_ord_id, now_ns)

    def cancel_all(self, now_ns: int, venue: str | None = None, symbol: str | None = None,
                   reason: str = "cancel all") -> int:
        """Cancel every live order in scope; return how many cancel requests went out. The
        router's parents in scope are halted first, so their children are not re-routed."""
        self.router.halt(reason, symbol)
        return self.oms.cancel_all(now_ns, venue, symbol)

    # -- what the router sees ----------------------------------------------------------------
    def _books(self, symbol: str) -> dict:
        return {name: link.md.books[symbol] for name, link in self.links.items()
                if link.md is not None and symbol in link.symbols and link.conn.up
                and not link.md.stale(symbol)}

    def _routable(self, symbol: str) -> list[str]:
        return [name for name, link in self.links.items() if link.routable(symbol)]

    def _send(self, venue: str, msg_type: bytes, body: list) -> int | None:
        link = self.links.get(venue)
        if link is None:
            return None
        return link.conn.send(msg_type, body, self._now)

    def set_now(self, now_ns: int) -> None:
        """The wall clock for FIX timestamps of what is sent outside ``poll``."""
        self._now = now_ns
