"""Venue clients: "a venue the order manager talks to", one protocol, two kinds.

The execution engine drives every client the same way, live, in paper trading and in a
backtest::

    client.name, client.symbols        # the venue's name; what may be sent there
    client.up                          # its FIX session is logged on
    client.session                     # that FixSession (``last_received_ns``)
    client.poll(now_ns) -> list        # do what is due; the session's events for the OMS
                                       # (AppMessage, LoggedOn, Disconnect, ...)
    client.send(msg_type, body, now_ns) -> seq | None   # None: not logged on
    client.next_due_ns() -> int        # when poll next has work without new input
    client.fileno() -> int             # a socket a live loop may wait on; -1: none
    client.close(now_ns)

- ``FixVenueClient``: a FIX 4.4 order session over TCP to any acceptor (``[[venues]]``
  ``kind = "fix"``): a ``PolledConnection`` on a non-blocking socket, reconnecting with back-off.
  With ``market_data`` it also subscribes to the venue's books on the same session: its
  ``FixMdSubscriptions`` keeps the subscriptions and RptSeq checks, and what it accepts goes to
  ``md_inbox`` for the market-data stage (``engine.feeds.sources.FixMdSource``), never to the
  OMS: ``(MD_MESSAGE, message, recv_ns)`` to normalize into the books, ``(MD_STALE, symbols,
  recv_ns)`` for books that lost something (a gap, a bad entry) until their fresh snapshot, and
  ``(MD_DOWN, None, recv_ns)`` when the session drops (every book of the venue is stale).
  A message the subscriptions took only in part (a resend overlapping new entries) is not
  normalized: its symbols are refreshed instead, so the books never apply an entry twice.
- ``engine.venue.inprocess.InProcessVenue``: a simulated venue inside the engine's process (the
  sans-IO exchange and matching engine, FIX encoded and decoded in memory, latency on the
  kernel's clock), for paper trading (``kind = "sim"``) and backtests.

Both run the same FIX session code, so the OMS and the router cannot tell them apart.
"""

from __future__ import annotations

import logging
import traceback

from engine.core.profile import VenueLinkConfig
from engine.feeds.fixmd import MD_DOWN, MD_MESSAGE, MD_STALE, FixMdSubscriptions
from engine.fix.polled import PolledConnection
from engine.fix.session import (
    AppMessage,
    Disconnect,
    FixSession,
    LoggedOn,
    SessionConfig,
)
from engine.fix.store import MessageStore
from engine.fix.transport import Backoff

log = logging.getLogger("helmdesk.execution")

__all__ = ["FixVenueClient"]
_MD_TYPES = (b"W", b"X", b"Y")
_TICK_NS = 100_000_000  # PolledConnection drives its timers ten times a second


class FixVenueClient:
    """One FIX venue: its profile entry, its FIX session and the connection that polls it."""

    __slots__ = ("cfg", "name", "session", "conn", "symbols", "md", "md_inbox")

    def __init__(self, cfg: VenueLinkConfig, store: MessageStore,
                 backoff: Backoff | None = None, *, password: str = "") -> None:
        """``password``: the secret itself, which ``cfg.password`` only refers to
        (``Profile.venue_link_password`` reads it); "": the Logon carries none."""
        self.cfg = cfg
        self.name = cfg.name
        self.session = FixSession(
            SessionConfig(sender=cfg.sender, target=cfg.target, initiator=True,
                          heartbeat_s=cfg.heartbeat_s, reset_on_logon=cfg.reset_on_logon,
                          username=cfg.username, password=password),
            store,
        )
        self.conn = PolledConnection(self.session, cfg.host, cfg.port, backoff=backoff)
        self.symbols = frozenset(cfg.symbols)
        #: subscriptions and RptSeq checks of the venue's books (None: no market data)
        self.md = FixMdSubscriptions(cfg.name, cfg.symbols) if cfg.market_data else None
        #: (MD_MESSAGE | MD_STALE | MD_DOWN, message | symbols | None, recv_ns): for the
        #: market-data stage
        self.md_inbox: list = []

    @property
    def up(self) -> bool:
        return self.conn.up

    def fileno(self) -> int:
        return self.conn.fileno()

    def next_due_ns(self) -> int:
        return 0  # a socket: the live loop polls it every turn and waits on its fileno

    def books_ok(self) -> bool:
        """Every book it sends us is good (subscribed, snapshot in, no gap)."""
        md = self.md
        return md is not None and not any(md.stale(s) for s in self.cfg.symbols)

    def poll(self, now_ns: int) -> list:
        events = self.conn.poll(now_ns)
        if not events or self.md is None:
            return events
        out = []
        md = self.md
        for e in events:
            if type(e) is AppMessage and e.message.msg_type in _MD_TYPES:
                try:
                    self._on_md(e.message, now_ns)
                except Exception as err:  # nothing a venue sends may stop the engine
                    self._md_unusable(e.message, err, now_ns)
                continue
            if isinstance(e, LoggedOn):
                for msg_type, body in md.subscribe():
                    self.conn.send(msg_type, body, now_ns)
            elif isinstance(e, Disconnect):
                md.connection_lost()
                self.md_inbox.append((MD_DOWN, None, now_ns))  # its books are stale now
            out.append(e)
        return out

    def fail(self, why: str, now_ns: int) -> list:
        """Our end failed on its input (an engine bug met by what the venue sent): close the
        connection (the reconnect comes after the backoff) and report it as a drop."""
        self.conn.close(now_ns)
        if self.md is not None:
            self.md.connection_lost()
            self.md_inbox.append((MD_DOWN, None, now_ns))
        return [Disconnect(why)]

    def _on_md(self, m, now_ns: int) -> None:
        md = self.md
        c = md.counters
        took = c["entries"] + c["snapshots"]
        dropped = c["duplicates"] + c["unknown_symbols"]
        changed = md.on_message(m, now_ns)
        took = c["entries"] + c["snapshots"] - took
        if took and c["duplicates"] + c["unknown_symbols"] != dropped:
            for sym in changed:  # taken in part: the books would apply the rest twice
                md.refresh(sym, "a message was only partly usable")
        elif took or m.msg_type == b"Y":
            self.md_inbox.append((MD_MESSAGE, m, now_ns))
        stale = [s for s in changed if md.stale(s)]
        if stale:
            self.md_inbox.append((MD_STALE, stale, now_ns))
        for msg_type, body in md.take_requests():
            self.conn.send(msg_type, body, now_ns)

    def _md_unusable(self, m, err: Exception, now_ns: int) -> None:
        """A market-data message we could not apply: refused, counted, and the books it names
        are asked for again (a snapshot replaces whatever was half applied)."""
        md = self.md
        md.counters["bad_messages"] += 1
        log.error("%s: market data refused as unusable (%s: %s): %r\n%s", self.name,
                  type(err).__name__, err, m.raw[:512], traceback.format_exc())
        for sym in self.cfg.symbols:
            md.refresh(sym, f"an unusable message ({type(err).__name__})")
        self.md_inbox.append((MD_STALE, list(self.cfg.symbols), now_ns))
        for msg_type, body in md.take_requests():
            self.conn.send(msg_type, body, now_ns)

    def send(self, msg_type: bytes, body: list, now_ns: int) -> int | None:
        return self.conn.send(msg_type, body, now_ns)

    def close(self, now_ns: int) -> None:
        self.conn.close(now_ns)
