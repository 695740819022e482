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

__all__ = ["Trading", "VenueLink"]

log = logging.getLogger("helmdesk.trading")

OnOrder = Callable[[OrderUpdate, Order], None]
OnEvent = Callable[[int, str], None]  # (logging level, text)


class VenueLink:
    """One venue: its profile entry, its FIX session and the connection that polls it."""

    __slots__ = ("cfg", "session", "conn", "symbols", "was_up")

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

    @property
    def up(self) -> bool:
        return self.conn.up


class Trading:
    def __init__(self, venues: tuple[VenueLinkConfig, ...], instruments: tuple[InstrumentConfig, ...],
                 ids: ClOrdIds, stores: Callable[[VenueLinkConfig], MessageStore], *,
                 on_order: OnOrder, on_event: OnEvent, backoff: Callable[[], Backoff] = Backoff) -> None:
        self.links = {v.name: VenueLink(v, stores(v), backoff()) for v in venues}
        self.ticks = {i.symbol: i.tick for i in instruments}
        self.oms = Oms(ids, self._send)
        self.on_order = on_order
        self.on_event = on_event
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
        for e in events:
            if isinstance(e, AppMessage):
                self.counters["app_messages"] += 1
                mt = e.message.msg_type
                if mt in (b"8", b"9"):
                    for u in oms.on_message(name, e.message):
                        self.on_order(u, oms.orders[u.cl_ord_id])
                else:
                    self.counters["ignored"] += 1
                    log.info("%s: 35=%s not handled by the engine yet", name,
                             mt.decode("ascii", "replace"))
            elif isinstance(e, LoggedOn):
                link.was_up = True
                n = oms.request_status(name, now_ns)
                how = "reset" if e.reset else "resumed"
                self.on_event(logging.INFO, f"{name} session up ({how}); "
                                            f"{n} orders in doubt asked about")
                log.info("%s: logged on (%s sequence numbers); %d status requests sent",
                         name, how, n)
            elif isinstance(e, Disconnect):
                self.counters["drops"] += 1
                was_up, link.was_up = link.was_up, False
                updates = oms.on_venue_down(name)
                for u in updates:
                    self.on_order(u, oms.orders[u.cl_ord_id])
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
        o = self.oms.new_order(venue, symbol, side, qty, price, tif, now_ns)
        if isinstance(o, Order):
            self.on_order(self.oms.last_update(o), o)
        return o

    def cancel(self, cl_ord_id: str, now_ns: int) -> str | None:
        why = self.oms.cancel(cl_ord_id, now_ns)
        if why is None:
            o = self.oms.orders[cl_ord_id]
            self.on_order(self.oms.last_update(o), o)
        return why

    def cancel_all(self, now_ns: int, venue: str | None = None, symbol: str | None = None) -> int:
        """Cancel every live order in scope; return how many cancel requests went out."""
        before = {cl for cl, o in self.oms.orders.items() if o.status.value == "PendingCancel"}
        n = self.oms.cancel_all(now_ns, venue, symbol)
        for cl, o in self.oms.orders.items():
            if o.status.value == "PendingCancel" and cl not in before:
                self.on_order(self.oms.last_update(o), o)
        return n

    def _send(self, venue: str, msg_type: bytes, body: list) -> int | None:
        link = self.links.get(venue)
        if link is None:
            return None
        return link.conn.send(msg_type, body, self._now)

    def set_now(self, now_ns: int) -> None:
        """The wall clock for FIX timestamps of what is sent outside ``poll``."""
        self._now = now_ns
