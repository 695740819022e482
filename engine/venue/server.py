"""The simulated exchange on the network: a FIX 4.4 acceptor around ``Exchange``.

Theory of operation
-------------------
``Venue.start()`` listens on the configured loopback address. A new connection is read up to
its first whole message (at most ``PRELOGON_BYTES`` within ``LOGON_TIMEOUT_S``). That
message's SenderCompID (49) picks the counterparty among the configured ones, and that
counterparty's ``FixSession`` (acceptor; TargetCompID = that CompID) is driven over the
connection by ``engine.fix.transport.serve_connection``, starting with the bytes already read:
the session layer then checks TargetCompID, the Logon, sequence numbers and everything else,
and counts the garbage. A SenderCompID that is not configured, a TargetCompID that is not
ours (checked here too, so a stranger cannot use up the real session's sequence numbers) gets
a Logout saying why, and the connection is closed. A Logon for a counterparty still connected
after ``RECONNECT_GRACE_S`` (a duplicate identity, FIX case 1b) is closed without a word:
anything sent would use up a sequence number of the session in use.

Connections are capped (``max_connections`` in total, ``max_connections_per_counterparty``
from one SenderCompID, the one being served and those waiting for it together): a connection
over either cap is closed at once, counted in ``refused`` and logged. The acceptor sessions take
their FIX settings (``reset_on_logon``, ``reset_on_logout``, ``reset_on_disconnect``,
``max_latency_s``, ``validate_fields_out_of_order``, ``allow_unknown_msg_fields``) from the
profile's ``[venue]`` (docs/fix.md). They validate every message against the FIX 4.4
dictionary, except an order's values and required fields, which the exchange rejects in its
own terms (an ExecutionReport naming the field), and message types the exchange does not take,
which it answers with a BusinessMessageReject.

One session per counterparty. Its sequence numbers and sent messages live in
``<data dir>/venue-<name>.db`` (``SqlStore``), so a restarted venue resumes sessions rather
than resetting them. Orders live in memory only: a restarted venue has empty books. A Logon
with ResetSeqNumFlag=Y starts a new session, which frees the ClOrdIDs of finished orders.

Application messages reach ``Exchange`` ``latency_us`` after they arrive, through a FIFO per
session (so their order is kept). Its answers are written at once: the transport only flushes
when its own loop turns, which is up to ``tick_s`` later. A message for a counterparty that is
not logged on (the cancels of cancel on disconnect; a fill in the instant a connection drops)
is kept and sent after its next Logon, so a client hears about every change to its orders.

Cancel on disconnect: the moment a session's connection is gone, whatever reason, the
messages it still had in the latency FIFO are handled (the session layer accepted them), then
every live order of that counterparty is cancelled.

The background flow (``BackgroundFlow``) steps ``background_hz`` times a second on every book.

Market data (``Exchange``'s docstring has the messages): a MarketDataRequest (35=V) takes the
same latency FIFO as orders, so it is answered after every earlier message of that session;
its snapshots (35=W) go out at once, and from then on every matching call that changes a
watched book, whoever caused it, sends each subscriber at most one incremental (35=X) per
symbol. A batch's ExecutionReports are written to the sockets before its market data (so an
order's round trip does not pay for the book updates it caused); market data keeps the order
it was made in, so a snapshot asked for mid-stream shows exactly the book the incrementals
before it built. Market data is live or nothing: it is never kept for a
counterparty that is not logged on (counted in ``md_dropped``), and a counterparty's
subscriptions end the moment its connection does (before its orders are cancelled, so it is
not sent the cancels' book changes): after a reconnect it subscribes again and gets fresh
snapshots. Resent messages (ResendRequest) carry their old RptSeq, so a receiver drops them
as duplicates.

Drop copy: each CompID of ``[venue] drop_copy`` has an acceptor session like a counterparty's
(same store, settings, caps, sequence numbers, resends, messages kept while it is away), but
it only receives: every ExecutionReport the venue sends any counterparty is copied to every
drop-copy session the moment it is sent (or kept for a counterparty that is away), with
Account(1) naming that counterparty (``exchange.drop_copy_body``). An application message
from a drop-copy session is answered with a BusinessMessageReject 6 (not authorized) and
counted (``drop_copy_refused``); copies sent are counted in ``drop_copies``.

Credentials: with ``[venue] username`` / ``password`` every Logon (drop copies' too) must carry
them as Username (553) / Password (554). A Logon that does not is refused like a wrong CompID,
before its session sees it (so a guess uses up none of its sequence numbers): a Logout "Logon
refused: invalid username or password", the close, and ``logons_refused`` counted. The
password is the secret itself, read from the profile's reference by ``helmdesk venue``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Sequence

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from engine.core.clock import Clock, LiveClock
from engine.core.paths import data_dir
from engine.core.profile import InstrumentConfig, VenueConfig
from engine.fix.codec import (
    FixDecoder,
    FixEncodeError,
    FixGarbled,
    FixMessage,
    GarbleKind,
    encode,
)
from engine.fix.session import (
    LOGON_REFUSED,
    AppMessage,
    Disconnect,
    FixSession,
    LoggedOn,
    SessionConfig,
    SessionState,
)
from engine.fix.store import SqlStore
from engine.fix.transport import serve_connection
from engine.venue.background import BackgroundFlow
from engine.venue.exchange import BIZ_OTHER, MD_MSG_TYPES, Exchange, drop_copy_body

__all__ = ["Venue", "LOGON_TIMEOUT_S", "PRELOGON_BYTES", "RECONNECT_GRACE_S"]

log = logging.getLogger("helmdesk.venue")

#: A connection must send its first whole message within this time...
LOGON_TIMEOUT_S = 10.0
#: ...and within this many bytes (garbage before it included).
PRELOGON_BYTES = 256 * 1024
#: How long a new connection waits for the same counterparty's old one to end.
RECONNECT_GRACE_S = 2.0
#: Messages kept per counterparty while it is not logged on; the oldest go first.
MAX_PENDING = 100_000
#: At most this many background steps per wake-up (a stalled loop skips, it does not burst).
MAX_BACKGROUND_BATCH = 1000
_EXECUTION_REPORT = b"8"


class _AcceptorSession(FixSession):
    """A ``FixSession`` that tells the venue the moment its connection is gone.

    ``serve_connection`` calls ``connection_lost`` as soon as it stops reading, before it
    awaits the socket's close: cancelling there leaves no moment in which an order of a
    client that is gone could still trade.
    """

    def __init__(self, config: SessionConfig, store: SqlStore, on_lost) -> None:
        super().__init__(config, store)
        self._on_lost = on_lost

    def connection_lost(self, now_ns: int) -> None:
        super().connection_lost(now_ns)
        self._on_lost()


class _Counterparty:
    """One configured initiator: its session and what the venue keeps for it."""

    __slots__ = ("comp_id", "session", "writer", "task", "connected", "inbox", "timer",
                 "pending", "drop_copy")

    def __init__(self, comp_id: str, session: _AcceptorSession, drop_copy: bool = False) -> None:
        self.comp_id = comp_id
        self.session = session
        self.drop_copy = drop_copy  #: a drop-copy session: receives copies, sends no orders
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task | None = None
        self.connected = False
        self.inbox: deque[tuple[float, FixMessage]] = deque()  # (due loop time, message)
        self.timer: asyncio.TimerHandle | None = None
        self.pending: deque[tuple[bytes, list]] = deque()  # to send after the next Logon


class _Prefixed:
    """A stream reader that first gives back the bytes read while looking for the Logon."""

    def __init__(self, prefix: bytes, reader: asyncio.StreamReader) -> None:
        self._prefix = prefix
        self._reader = reader

    async def read(self, n: int = -1) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self._reader.read(n)


class Venue:
    """A simulated exchange: ``await start()``, then it serves until ``await stop()``."""

    def __init__(self, config: VenueConfig, instruments: Sequence[InstrumentConfig], *,
                 port: int | None = None, db_url: str | None = None,
                 clock: Clock | None = None, tick_s: float = 0.2, password: str = "") -> None:
        """``password``: the secret every Logon must carry, which ``config.password`` only
        refers to (``Profile.venue_password`` reads it); "": none asked."""
        self.config = config
        self._password = password
        self.port = config.port if port is None else port
        self.clock = clock or LiveClock()
        # ids carry the start time (ms): a restarted venue never repeats an OrderID or ExecID
        boot = format(self.clock.wall_ns() // 1_000_000, "x")
        self.exchange = Exchange(config.name, instruments, fee_bps=config.fee_bps,
                                 id_prefix=f"{config.name}-{boot}-")
        self.background = (BackgroundFlow(self.exchange, seed=config.seed,
                                          reference_seed=config.reference_seed)
                           if config.background_hz > 0 else None)
        self.counters = dict.fromkeys(
            ("connections", "refused", "refused_over_limit", "sessions", "disconnects",
             "cancelled_on_disconnect", "sent_late", "pending_dropped", "md_dropped", "errors",
             "drop_copies", "logons_refused"), 0)
        self._open = 0  # connections open now
        self._per_cp: dict[str, int] = {}  # connections open now by claimed counterparty
        self._db_url = db_url or f"sqlite:///{data_dir() / f'venue-{config.name}.db'}"
        self._db: Engine | None = None
        self._tick_s = tick_s
        self._sender = config.sender.encode()
        self._latency_s = config.latency_us / 1_000_000
        self._cps: dict[str, _Counterparty] = {}
        self._drop_copies: list[_Counterparty] = []  # the drop-copy sessions' ends
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._background_task: asyncio.Task | None = None
        self._dirty: set[_Counterparty] = set()
        self._stores_to_flush: list[SqlStore] = []

    # -- LIFE CYCLE ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the sessions' store and listen; ``port`` is then the real one."""
        cfg = self.config
        self._db = _open_db(self._db_url)
        app_types = frozenset(self.exchange._handlers)  # what the exchange takes
        for comp_id in (*cfg.counterparties, *cfg.drop_copy):
            session_cfg = SessionConfig(
                sender=cfg.sender, target=comp_id, initiator=False, heartbeat_s=cfg.heartbeat_s,
                reset_on_logon=cfg.reset_on_logon, reset_on_logout=cfg.reset_on_logout,
                reset_on_disconnect=cfg.reset_on_disconnect, max_latency_s=cfg.max_latency_s,
                validate_fields_out_of_order=cfg.validate_fields_out_of_order,
                allow_unknown_msg_fields=cfg.allow_unknown_msg_fields,
                app_msg_types=app_types, validate_app_values=False,
                username=cfg.username, password=self._password)
            store = SqlStore(self._db, f"{cfg.sender}->{comp_id}", deferred=True,
                             on_dirty=self._store_dirty)
            session = _AcceptorSession(session_cfg, store,
                                       lambda c=comp_id: self._connection_lost(c))
            cp = self._cps[comp_id] = _Counterparty(comp_id, session,
                                                    drop_copy=comp_id in cfg.drop_copy)
            if cp.drop_copy:
                self._drop_copies.append(cp)
        self._server = await asyncio.start_server(self._on_connection, cfg.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.background is not None:
            self._background_task = asyncio.ensure_future(self._run_background())
        log.info("venue %s listening on %s:%d as %s: %d instruments, counterparties %s, "
                 "drop copy %s, latency %d us, background %g/s per instrument, seed %d",
                 cfg.name, cfg.host, self.port, cfg.sender, len(self.exchange.books),
                 ", ".join(cfg.counterparties), ", ".join(cfg.drop_copy) or "none",
                 cfg.latency_us, cfg.background_hz, cfg.seed)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Log every session out, wait up to ``timeout_s`` for the answers, close."""
        if self._server is None:
            return
        if self._background_task is not None:
            self._background_task.cancel()
            await asyncio.gather(self._background_task, return_exceptions=True)
        self._server.close()
        now = self.clock.wall_ns()
        serving = set()
        for cp in self._cps.values():
            if cp.task is not None:
                serving.add(cp.task)
            if cp.session.state is SessionState.ACTIVE:
                cp.session.logout("venue shutting down", now)
                self._flush(cp)
        for t in self._tasks - serving:
            t.cancel()  # still waiting for a first message
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self._flush_stores()
        if self._db is not None:
            self._db.dispose()
        log.info("venue %s stopped: %s", self.config.name, self.snapshot()["counters"])

    # -- THE SESSIONS' STORE ---------------------------------------------------------------------
    def _store_dirty(self, store: SqlStore) -> None:
        """A session's store has changes: commit them once this turn of the event loop has
        written its replies (no reply waits for a commit; see engine/fix/store.py)."""
        if not self._stores_to_flush:
            asyncio.get_running_loop().call_soon(self._flush_stores)
        self._stores_to_flush.append(store)

    def _flush_stores(self) -> None:
        stores, self._stores_to_flush = self._stores_to_flush, []
        for store in stores:
            try:
                store.flush()
            except Exception:
                self.counters["errors"] += 1
                log.exception("%s: could not write session %s to its store", self.config.name,
                              store.session_id)

    # -- CONNECTIONS -----------------------------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.counters["connections"] += 1
        peer = _peer(writer)
        if self._open >= self.config.max_connections:
            self._over_limit(writer, peer, f"{self._open} connections open, the most "
                                           f"max_connections = {self.config.max_connections} "
                                           f"allows")
            return
        self._tasks.add(task)
        self._open += 1
        cp = None
        counted: str | None = None
        try:
            prefix, first = await _first_message(reader)
            cp = self._choose(first, peer, writer)
            if cp is not None:
                n = self._per_cp.get(cp.comp_id, 0)
                if n >= self.config.max_connections_per_counterparty:
                    self._over_limit(writer, peer, f"{n} connections of {cp.comp_id} open, the "
                                                   f"most max_connections_per_counterparty = "
                                                   f"{self.config.max_connections_per_counterparty}"
                                                   f" allows")
                    cp = None
                    return
                counted = cp.comp_id
                self._per_cp[counted] = n + 1
            if cp is not None and not await self._claim(cp):
                # a duplicate identity (FIX 1b): close without a word, which would use up a
                # sequence number of the session in use
                self.counters["refused"] += 1
                log.warning("%s refused a connection from %s: %s is already connected",
                            self.config.name, peer, cp.comp_id)
                cp = None
            if cp is None:
                return
            cp.writer, cp.task, cp.connected = writer, task, True
            log.info("%s: connection from %s for %s", self.config.name, peer, cp.comp_id)
            why = await serve_connection(cp.session, _Prefixed(prefix, reader), writer,
                                         lambda _s, events: self._on_events(cp, events),
                                         clock=self.clock.wall_ns, tick_s=self._tick_s)
            log.info("%s: session with %s (%s) ended: %s", self.config.name, cp.comp_id, peer,
                     why)
        except asyncio.CancelledError:
            # stop() gave up waiting for this counterparty's Logout. Ending quietly matters:
            # on Python 3.11 a cancelled connection task makes asyncio's stream callback log
            # a traceback ("Exception in callback ... CancelledError").
            log.warning("%s: connection from %s closed at shutdown without a Logout reply",
                        self.config.name, peer)
            writer.close()
        except Exception:
            self.counters["errors"] += 1
            log.exception("%s: connection from %s failed", self.config.name, peer)
        finally:
            if cp is not None and cp.task is task:
                cp.writer = cp.task = None
            if cp is None:
                writer.close()
            if counted is not None:
                self._per_cp[counted] -= 1
            self._open -= 1
            self._tasks.discard(task)

    def _over_limit(self, writer: asyncio.StreamWriter, peer: str, why: str) -> None:
        """Close a connection over a cap at once: nothing is read or kept for it."""
        self.counters["refused"] += 1
        self.counters["refused_over_limit"] += 1
        log.warning("%s refused a connection from %s: %s", self.config.name, peer, why)
        writer.close()

    def _choose(self, first: FixMessage | FixGarbled | str, peer: str,
                writer: asyncio.StreamWriter) -> _Counterparty | None:
        """The counterparty whose session gets this connection, or None (refused)."""
        if isinstance(first, str):
            self._refuse(writer, None, peer, first)
            return None
        m = first if isinstance(first, FixMessage) else first.message
        raw = m.get(49) if m is not None else None
        comp_id = _text(raw) if raw else None
        cp = self._cps.get(comp_id) if comp_id else None
        if cp is None:
            why = (f"SenderCompID {comp_id!r} is not a counterparty of {self.config.name}"
                   if comp_id else
                   f"first message unusable: {getattr(first, 'reason', 'no SenderCompID')}")
            self._refuse(writer, raw, peer, why)
            return None
        if m.get(56) != self._sender:  # before its session sees it: keep its numbers clean
            self._refuse(writer, raw, peer, f"TargetCompID {_text(m.get(56))!r} is not "
                                            f"{self.config.sender!r}")
            return None
        if m.msg_type == b"A" and not cp.session.credentials_ok(m):  # the same, for a guess
            self.counters["logons_refused"] += 1
            self._refuse(writer, raw, peer, LOGON_REFUSED)
            return None
        return cp

    async def _claim(self, cp: _Counterparty) -> bool:
        """Wait up to ``RECONNECT_GRACE_S`` for the counterparty's previous connection to end.

        A client that sends Logout, closes and reconnects at once may be faster than the
        venue reading that Logout: its new connection waits rather than being refused.
        """
        deadline = asyncio.get_running_loop().time() + RECONNECT_GRACE_S
        while cp.connected:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or cp.task is None:
                return False
            await asyncio.wait({cp.task}, timeout=left)
        return True

    def _refuse(self, writer: asyncio.StreamWriter, comp_id: bytes | None, peer: str,
                why: str) -> None:
        """Tell the peer why in a Logout (when we know whom to address), and close."""
        self.counters["refused"] += 1
        log.warning("%s refused a connection from %s: %s", self.config.name, peer, why)
        if comp_id:
            try:
                writer.write(encode(b"5", [(58, why)], sender=self._sender,
                                    target=comp_id, seq=1, sending_time_ns=self.clock.wall_ns()))
            except FixEncodeError:  # pragma: no cover - a parsed value is always encodable
                pass

    # -- SESSION EVENTS --------------------------------------------------------------------------
    def _on_events(self, cp: _Counterparty, events: list) -> None:
        try:
            for e in events:
                if isinstance(e, AppMessage):
                    self._receive(cp, e.message)
                elif isinstance(e, LoggedOn):
                    self._logged_on(cp, e)
                elif isinstance(e, Disconnect):
                    self._connection_lost(cp.comp_id)  # now, not when the socket has closed
            self._drain_outbox()
        except Exception:
            self.counters["errors"] += 1
            log.exception("%s: error handling events of %s", self.config.name, cp.comp_id)

    def _logged_on(self, cp: _Counterparty, e: LoggedOn) -> None:
        self.counters["sessions"] += 1
        store = cp.session.store
        log.info("%s: %s logged on (HeartBtInt %d s%s), next MsgSeqNum in %d, out %d",
                 self.config.name, cp.comp_id, e.heartbeat_s, ", sequence reset" if e.reset else "",
                 store.next_target_seq, store.next_sender_seq)
        if e.reset:
            n = self.exchange.forget_finished(cp.comp_id)
            log.info("%s: %s reset its sequence numbers: a new day, %d ClOrdIDs free again",
                     self.config.name, cp.comp_id, n)
        if cp.pending and cp.session.state is SessionState.ACTIVE:  # not if it left at once
            now = self.clock.wall_ns()
            n = len(cp.pending)
            while cp.pending:
                msg_type, body = cp.pending.popleft()
                cp.session.send(msg_type, body, now)
            self.counters["sent_late"] += n
            self._dirty.add(cp)
            log.info("%s: sent %s %d messages kept while it was away", self.config.name,
                     cp.comp_id, n)

    def _connection_lost(self, comp_id: str) -> None:
        """Handle what is in flight, then cancel everything the counterparty has live."""
        cp = self._cps[comp_id]
        if not cp.connected:
            return
        cp.connected = False
        self.counters["disconnects"] += 1
        if cp.timer is not None:
            cp.timer.cancel()
            cp.timer = None
        while cp.inbox:
            self._handle(cp, cp.inbox.popleft()[1])
        subs = self.exchange.drop_subscriptions(comp_id)
        n = self.exchange.cancel_all(comp_id, self.clock.wall_ns())
        self.counters["cancelled_on_disconnect"] += n
        log.info("%s: %s disconnected: cancelled its %d live orders%s", self.config.name, comp_id,
                 n, f", ended its {subs} market data subscriptions" if subs else "")
        self._drain_outbox()

    # -- APPLICATION MESSAGES --------------------------------------------------------------------
    def _receive(self, cp: _Counterparty, m: FixMessage) -> None:
        """Hand ``m`` to the exchange now, or ``latency_us`` from now (in arrival order)."""
        if cp.drop_copy:  # receives only: refused at once, nothing reaches a book
            self.exchange.refuse_drop_copy(cp.comp_id, m, self.clock.wall_ns())
            return
        if not self._latency_s:
            self._handle(cp, m)
            return
        loop = asyncio.get_running_loop()
        cp.inbox.append((loop.time() + self._latency_s, m))
        if cp.timer is None:
            cp.timer = loop.call_at(cp.inbox[0][0], self._inbox_due, cp)

    def _inbox_due(self, cp: _Counterparty) -> None:
        cp.timer = None
        loop = asyncio.get_running_loop()
        # the loop may run a timer up to its clock resolution early: the head is due anyway
        self._handle(cp, cp.inbox.popleft()[1])
        now = loop.time()
        while cp.inbox and cp.inbox[0][0] <= now:
            self._handle(cp, cp.inbox.popleft()[1])
        if cp.inbox:
            cp.timer = loop.call_at(cp.inbox[0][0], self._inbox_due, cp)
        self._drain_outbox()

    def _handle(self, cp: _Counterparty, m: FixMessage) -> None:
        now = self.clock.wall_ns()
        try:
            self.exchange.on_message(cp.comp_id, m, now)
        except Exception:
            self.counters["errors"] += 1
            log.exception("%s: could not handle 35=%s seq %d from %s", self.config.name,
                          m.msg_type.decode("ascii", "replace"), m.seq, cp.comp_id)
            self.exchange.business_reject(cp.comp_id, m, BIZ_OTHER,
                                          "the venue failed to handle this message (see its log)",
                                          now)

    # -- MESSAGES OUT ----------------------------------------------------------------------------
    def _drain_outbox(self) -> None:
        """Send what the exchange answered; keep what a counterparty cannot receive now.

        Order messages go out (are written to the socket) before the batch's market data:
        each message sent costs its encoding and its store's commit, and an ExecutionReport
        must not wait for the book updates its order caused. Market data keeps its own order.
        """
        out = self.exchange.outbox
        if out:
            batch = out[:]
            out.clear()
            now = self.clock.wall_ns()
            md = None
            for item in batch:
                if item[1] in MD_MSG_TYPES:
                    if md is None:
                        md = []
                    md.append(item)
                else:
                    self._send(item, now)
            if md is not None:
                for cp in self._dirty:
                    self._flush(cp)
                self._dirty.clear()
                for item in md:
                    self._send(item, now)
        for cp in self._dirty:
            self._flush(cp)
        self._dirty.clear()

    def _send(self, item: tuple, now: int) -> None:
        comp_id, msg_type, body = item
        cp = self._cps[comp_id]
        self._send_to(cp, msg_type, body, now)
        if msg_type == _EXECUTION_REPORT and self._drop_copies and not cp.drop_copy:
            copy = drop_copy_body(comp_id, body)
            for dc in self._drop_copies:
                self.counters["drop_copies"] += 1
                self._send_to(dc, msg_type, copy, now)

    def _send_to(self, cp: _Counterparty, msg_type: bytes, body: list, now: int) -> None:
        """Send one message to ``cp``, or keep it while ``cp`` is away (market data: drop)."""
        comp_id = cp.comp_id
        if cp.session.state is not SessionState.ACTIVE:
            if msg_type in MD_MSG_TYPES:  # stale by the time it could be read
                self.counters["md_dropped"] += 1
            else:
                self._keep(cp, msg_type, body)
            return
        try:
            cp.session.send(msg_type, body, now)
        except Exception:  # a bad field of ours: lose this message, not the batch
            self.counters["errors"] += 1
            log.exception("%s: could not send 35=%s to %s: %r", self.config.name,
                          msg_type.decode(), comp_id, body)
            return
        self._dirty.add(cp)

    def _keep(self, cp: _Counterparty, msg_type: bytes, body: list) -> None:
        if len(cp.pending) >= MAX_PENDING:
            cp.pending.popleft()
            self.counters["pending_dropped"] += 1
        cp.pending.append((msg_type, body))

    def _flush(self, cp: _Counterparty) -> None:
        data = cp.session.data_to_send()
        if data and cp.writer is not None and not cp.writer.is_closing():
            cp.writer.write(data)

    # -- BACKGROUND FLOW -------------------------------------------------------------------------
    async def _run_background(self) -> None:
        hz = self.config.background_hz
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = 0
        while True:
            due = int((loop.time() - start) * hz)
            try:
                now = self.clock.wall_ns()
                for _ in range(min(due - done, MAX_BACKGROUND_BATCH)):
                    self.background.step(now)
                self._drain_outbox()
            except Exception:
                self.counters["errors"] += 1
                log.exception("%s: background flow step failed", self.config.name)
            done = due
            await asyncio.sleep(max(0.001, (done + 1) / hz - (loop.time() - start)))

    # -- INSPECTION ------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Counters, each instrument's best bid/ask and each session's state (tests, logs)."""
        counters = dict(self.counters)
        counters.update(self.exchange.counters)
        counters["garbled"] = counters["session_rejects"] = 0
        sessions = {}
        for comp_id, cp in self._cps.items():
            s = cp.session
            counters["garbled"] += s.counters["garbled"]
            counters["session_rejects"] += s.counters["rejects_sent"]
            counters["logons_refused"] += s.counters["logons_refused"]
            sessions[comp_id] = {
                "state": s.state.value,
                "next_sender_seq": s.store.next_sender_seq,
                "next_target_seq": s.store.next_target_seq,
                "live_orders": self.exchange.live_orders(comp_id),
                "md_subscriptions": self.exchange.md_subscriptions(comp_id),
                "pending": len(cp.pending),
                "drop_copy": cp.drop_copy,
            }
        return {"counters": counters, "books": self.exchange.book_snapshot(),
                "sessions": sessions}


async def _first_message(
        reader: asyncio.StreamReader) -> tuple[bytes, FixMessage | FixGarbled | str]:
    """Read up to the first whole message (or well-framed invalid one); return every byte
    read and that message, or why there is none (closed, silent, only garbage)."""
    decoder = FixDecoder()
    chunks: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOGON_TIMEOUT_S
    while size < PRELOGON_BYTES:
        try:
            data = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            return b"".join(chunks), f"no message within {LOGON_TIMEOUT_S:g} s"
        except (ConnectionError, OSError) as e:
            return b"".join(chunks), f"connection error before a message: {e}"
        if not data:
            return b"".join(chunks), f"closed after {size} bytes and no message"
        chunks.append(data)
        size += len(data)
        decoder.feed(data)
        while (item := decoder.next()) is not None:
            if isinstance(item, FixMessage) or item.should_reject:
                return b"".join(chunks), item
            if item.kind is GarbleKind.BEGIN_STRING:  # FIX 1d/2h: not a FIX 4.4 session
                return b"".join(chunks), f"not FIX 4.4: {item.reason}"
    return b"".join(chunks), f"{size} bytes and no message"


def _open_db(url: str) -> Engine:
    """The sessions' database. SQLite runs WAL (``SqlStore`` sets it) with synchronous=NORMAL:
    a commit survives the process dying, not the machine; every message commits, and a full
    sync each time would cost more than the rest of handling it."""
    db = create_engine(url)
    if db.dialect.name == "sqlite":
        @event.listens_for(db, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    return db


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("ascii", "replace")


def _peer(writer: asyncio.StreamWriter) -> str:
    addr = writer.get_extra_info("peername")
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
