"""A simulated venue inside the engine's process: the sans-IO exchange behind two FIX sessions
that talk through memory, with latency on the caller's clock.

``InProcessVenue`` is a venue client (``engine.execution.venues`` has the protocol): the
execution stage polls it, sends through it and reads its session, exactly as it does a
``FixVenueClient``; only what lies behind the session differs. No sockets, no threads, no
clock reads, no randomness: the same calls with the same ``now_ns`` give the same bytes.

Theory of operation
-------------------
Transport. Our session (initiator, ``sender`` -> ``name``) and the venue's (acceptor,
``name`` -> ``sender``) are real ``FixSession`` objects with ``MemoryStore`` stores: every
message is encoded, framed, decoded and sequence-checked as over TCP. What a session writes
at ``t`` goes into the FIFO of its direction as one chunk due at ``t + latency_ns`` (never
before the chunk ahead of it: a FIFO, as a byte stream is). The venue side is the exchange
as ``engine.venue.server`` wires it: application messages to ``Exchange.on_message``, its
``outbox`` drained into the acceptor at once, messages for a counterparty that is not logged
on kept (market data dropped) and sent after its next Logon.

Time. ``poll(now_ns)`` does, in time order, everything due by ``now_ns``: chunks arriving at
either end (each handled at its arrival time, so the venue answers at ``arrival`` and the
answer arrives ``latency_ns`` later: a round trip is ``2 × latency_ns``), both sessions'
timers and a reconnect. At equal times: chunks to the venue, chunks to us, timers, reconnect.
It returns our session's events. Session timers run on their deadlines (our heartbeat is due
``HeartBtInt`` after we last wrote, the test request ``HeartBtInt × 1.2`` after we last
heard), at most once a second of clock time; ``next_due_ns()`` is the earliest of the two
FIFOs' heads, the timers and the reconnect, kept up to date as things happen, so a backtest
can step its clock straight to it and an idle ``poll`` is one comparison.

Connection. The first ``poll`` connects both sessions (our Logon goes out; the venue is up
after ``2 × latency_ns``). A session that disconnects (its own Disconnect event) has its last
bytes followed by an end-of-stream marker, which reaches the other end ``latency_ns`` later
as a closed connection. The venue, the moment its side is gone, cancels every live order of
ours (cancel on disconnect) and ends our market data subscriptions. Once ours is gone we
reconnect after ``engine.fix.transport.Backoff``'s delay (0.5 s, doubling, reset by a Logon);
sequence numbers carry over (ResendRequest fills what was lost). ``close(now_ns)`` logs out
and closes our side at once; what is already on the wire still reaches the venue (orders
in flight are handled, then our live orders cancelled), and nothing comes back.

Fill model: the venue's other participants are the recorded market
--------------------------------------------------------------------
With ``books`` (the engine's ``BookSet``; ``venue_index`` is this venue's row), the exchange's
matching engine holds a *mirror* of the venue's recorded book of each instrument we trade
there: one background (``BACKGROUND``) limit order per displayed level, at the level's price
and size. The mirror is synced just before the exchange handles our NewOrderSingle, cancel or
replace for that instrument, and in ``on_market`` for each changed instrument on which we have
live orders. A sync diffs by price: a level whose recorded price and size are what was
mirrored at that price and whose order is whole is left alone, wherever it now sits in the
book; any other is cancelled, and every level to show is then submitted (all cancels before
any submit, so the old mirror never trades with the new). A NewOrderSingle for an instrument
on which none of our orders is live needs less, as nothing of ours can be touched: only the
side it trades against is synced, and only as deep as the displayed size reaches its
quantity; of the other side only the levels that would cross it are cancelled (the rest waits
for the next full sync). The instrument needs syncs on market moves from the moment an order
of ours is live there until the last one ends (checked right after each message about it).

- A marketable order takes the displayed levels best first, at most their displayed size, at
  their prices (the matching engine fills at the resting price); what is left of a limit order
  rests, of a market or IOC order is cancelled.
- A resting order fills when a sync submits an opposite level at or through its price: a
  *touch fill*, at our limit price, up to that level's size. There is no queue position: we
  fill as soon as the recorded market touches us, ahead of every order displayed at our price
  (a limitation: queue position is not modelled). The fill happens at the sync, so at the
  ``now_ns`` of the ``on_market`` call that saw the market move.
- No market impact: what we take is not taken from the recorded market. The next sync shows
  the level at its displayed size again, for our next order to take.
- Never the same liquidity twice for a resting order: per side and price, the venue counts
  the displayed size our orders have used there (taken or touched; at most the displayed size,
  forgotten when the price leaves the displayed book). A level that would cross one of our
  resting orders shows only the size not yet used: the same displayed 200 can fill our
  resting bid once, and it gets more only when the recorded size at that price grows. While
  that resting order stays, the used size is missing for our other orders too; once it is
  gone, the level shows its displayed size again.
- The recorded book is trusted to be in price order (the feed handler validates it). While the
  venue's book of an instrument is halted or being rebuilt (``ST_HALTED``, ``ST_REBUILDING``)
  or its best bid is at or above its best ask, the mirror is emptied: no liquidity.
- Fees: ``fee_bps`` as the exchange charges them (Commission on each fill). Reports about
  mirror orders produce nothing (the exchange ignores background reports).

Without ``books`` there are no other participants: an order rests until another of our orders
crosses it.

Drop copy
---------
``drop_copy(comp_id)`` gives the venue's drop copy as a ``DropCopyLink``: one more pair of
sessions through memory (the venue's acceptor, ``name`` -> ``comp_id``, and the initiator the
engine polls), with the same latency, connecting on its first ``poll``, reconnecting as ours
does. Every ExecutionReport the exchange sends us is copied to it when it is made (kept while
the link is not logged on, as for us), with Account(1) naming our CompID, as ``helmdesk
venue`` does (``engine.venue.server``). An application message on it is refused with a
BusinessMessageReject 6 and counted (``refused``).

Cost
----
Idle ``poll`` and ``next_due_ns`` compare and return ints (no allocation: an idle ``poll``
returns the empty tuple). A message costs its FIX encode and decode on each side and the
exchange's handling, in plain Python. A sync reads the instrument's venue book with one
``tolist()``; an unchanged book is then one list comparison, a changed one costs a cancel
and a submit per level changed at its price (for a new order where none of ours is live,
only the levels it can reach; after our order took from the mirror, one order lookup per
level it took, plus one). Once none of ours is left on an instrument whose used sizes are
kept, its next market move costs one ``tolist()`` to forget those at prices that left. The
matching engine remembers finished order ids in two bounded generations
(``MatchingEngine(remember_done=...)``); a busy mirror fills them with its own cancelled
orders, which costs memory, not time.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence

from engine.book.books import ST_HALTED, ST_REBUILDING, BookSet
from engine.core.events import ASK, BID
from engine.core.profile import InstrumentConfig
from engine.fix.session import (
    AppMessage,
    Disconnect,
    FixSession,
    LoggedOn,
    SessionConfig,
    SessionState,
)
from engine.fix.store import MemoryStore
from engine.fix.tags import MsgType
from engine.fix.transport import Backoff
from engine.venue.exchange import BIZ_OTHER, MD_MSG_TYPES, Exchange, drop_copy_body
from engine.venue.matching import Side

__all__ = ["MAX_LATENCY_NS", "NEVER", "DropCopyLink", "InProcessVenue"]

log = logging.getLogger("helmdesk.venue")

#: ``next_due_ns()`` when nothing will be due without new input.
NEVER = 1 << 62
#: Latency above this would put SendingTime outside the sessions' accepted skew.
MAX_LATENCY_NS = 60_000_000_000
#: Session timers run at most this often.
_TICK_NS = 1_000_000_000
#: Messages kept for us while our session is not logged on; the oldest go first.
_MAX_PENDING = 100_000
#: Every FIX message ends ``<SOH>10=ddd<SOH>``: counting this counts a chunk's messages.
_TRAILER = b"\x0110="
_ORDER_MSGS = frozenset({MsgType.NewOrderSingle, MsgType.OrderCancelRequest,
                         MsgType.OrderCancelReplaceRequest})
_ACTIVE = SessionState.ACTIVE
_DISCONNECTED = SessionState.DISCONNECTED
_NOT_EXECUTABLE = ST_HALTED | ST_REBUILDING
_SIDES = (BID, ASK)
_NO_EVENTS: tuple = ()
_EXECUTION_REPORT = MsgType.ExecutionReport
#: Side (FIX tag 54) of a new order -> the side of the book it trades against.
_TAKES = {b"1": ASK, b"2": BID}


class _Mirror:
    """What the exchange holds of one instrument's recorded book (module docstring).

    Per side (``BID``, ``ASK``): price -> ``[size, order, left]`` for each displayed level
    last mirrored, best first: the recorded size, the background order standing for it (None:
    none) and that order's open size as last known; per side, price -> displayed size our
    orders have used at that price.
    """

    __slots__ = ("book", "count", "empty", "levels", "rows", "short", "used")

    def __init__(self, book, depth: int) -> None:
        self.book = book  # the exchange's book of the instrument
        #: the recorded levels last mirrored on both sides, as read (None: not both sides)
        self.rows: list | None = None
        self.empty = [[[0, 0]] * depth, [[0, 0]] * depth]  # what a book without liquidity reads
        self.levels: list[dict[int, list]] = [{}, {}]
        self.used: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.count = 0  #: background orders live
        self.short = 0  #: levels shown below their displayed size (taken from, used up)


class _SessionPair:
    """The two FIX sessions of an in-process connection — ours (``session``, the engine's
    side) and the venue's (``_acceptor``) — through memory, ``latency_ns`` each way: FIFOs,
    session timers, disconnects and the reconnect, as the module docstring tells. Subclasses
    say what the venue's end does with what it receives (``_venue_after``), what it sends
    (``_venue_flush``) and what losing its end means (``_venue_lost``)."""

    def _venue_lost(self, t: int) -> None:
        """The venue's end of the connection is gone."""
        self._venue_conn = False

    @property
    def up(self) -> bool:
        """Our session is logged on."""
        return self.session.state is _ACTIVE

    def fileno(self) -> int:
        return -1  # nothing to wait on: next_due_ns says when

    def next_due_ns(self) -> int:
        """When ``poll`` next has work (a message arriving, a session timer, a reconnect);
        ``1 << 62`` if never without new input."""
        return self._due

    def poll(self, now_ns: int) -> Sequence:
        """Do everything due by ``now_ns`` in time order; return our session's events (a list;
        the empty tuple when nothing was due)."""
        if now_ns < self._due:
            return _NO_EVENTS
        return self._run(now_ns)

    def fail(self, why: str, now_ns: int) -> list:
        """Our end failed on its input (an engine bug met by what the venue sent): drop the
        connection as the venue would see a broken one, and reconnect later."""
        events: list = []
        if self._our_conn:
            self._our_lost(now_ns, events, why)
            self._refresh_due()
        return events

    def _run(self, now: int) -> list:
        events: list = []
        if not self._started:
            self._started = True
            self._reconnect = now
        fv, fu = self._to_venue, self._to_us
        while True:
            t, what = self._timer, 2
            if self._reconnect < t:
                t, what = self._reconnect, 3
            if fu and fu[0][0] <= t:
                t, what = fu[0][0], 1
            if fv and fv[0][0] <= t:
                t, what = fv[0][0], 0
            if t > now:
                break
            if what == 0:
                self._to_venue_one(*fv.popleft())
            elif what == 1:
                self._to_us_one(*fu.popleft(), events)
            elif what == 2:
                self._tick(t, events)
            else:
                self._connect(t)
            self._timer = self._next_timer(t)
        self._refresh_due()
        return events

    def _refresh_due(self) -> None:
        due = self._timer
        if self._reconnect < due:
            due = self._reconnect
        if self._to_venue and self._to_venue[0][0] < due:
            due = self._to_venue[0][0]
        if self._to_us and self._to_us[0][0] < due:
            due = self._to_us[0][0]
        self._due = due

    def _push(self, fifo: deque, t: int, chunk: bytes | None) -> None:
        due = t + self.latency_ns
        if fifo and fifo[-1][0] > due:
            due = fifo[-1][0]  # a FIFO: nothing overtakes what was written before it
        fifo.append((due, chunk))
        if due < self._due:
            self._due = due

    def _next_timer(self, now: int) -> int:
        """When a session timer is next due: the earlier session deadline, at most once a
        second of clock time, and not before ``now`` (the time being handled)."""
        due = NEVER
        if self._our_conn:
            due = _deadline(self.session, self._our_sent)
        if self._venue_conn:
            due = min(due, _deadline(self._acceptor, self._venue_sent))
        if due == NEVER:
            return NEVER
        return max(due, self._last_tick + _TICK_NS, now)

    def _tick(self, t: int, events: list) -> None:
        self._last_tick = t
        if self._venue_conn:
            self._venue_after(self._acceptor.tick(t), t)
        if self._our_conn:
            self._our_after(self.session.tick(t), t, events)

    def _connect(self, t: int) -> None:
        self._reconnect = NEVER
        self._to_venue.clear()  # what is still on the wire belonged to the old connection
        self._to_us.clear()
        if self._venue_conn:  # its end had not seen the close yet
            self._acceptor.connection_lost(t)
            self._venue_lost(t)
            self._venue_flush(t)
        self._our_conn = self._venue_conn = True
        self._last_tick = t  # the Logon exchange's time-outs are first checked a second on
        self.counters["connects"] += 1
        self._acceptor.connect(t)
        self.session.connect(t)  # our Logon
        self._our_flush(t)

    def _to_us_one(self, t: int, chunk: bytes | None, events: list) -> None:
        if not self._our_conn:
            return
        if chunk is None:
            self._our_lost(t, events, "connection closed by the venue")
            return
        self._our_after(self.session.receive_data(chunk, t), t, events)

    def _our_after(self, evs: list, t: int, events: list) -> None:
        down = False
        if evs:
            events += evs
            for e in evs:
                if type(e) is Disconnect:
                    down = True
                elif type(e) is LoggedOn:
                    self.counters["logons"] += 1
                    self.backoff.reset()
        self._our_flush(t)
        if down:
            self._our_lost(t, events, None)

    def _our_flush(self, t: int) -> None:
        data = self.session.data_to_send()
        if data:
            self._our_sent = t
            self.counters["msgs_to_venue"] += data.count(_TRAILER)
            if self._venue_conn:  # else nobody reads it: the venue's end is closed
                self._push(self._to_venue, t, data)

    def _our_lost(self, t: int, events: list, why: str | None) -> None:
        """Our end of the connection is gone (``why``: tell the engine; None: the session's
        own Disconnect event already did)."""
        self._our_conn = False
        self.session.connection_lost(t)
        if self._venue_conn:
            self._push(self._to_venue, t, None)
        self.counters["drops"] += 1
        if why is not None:
            events.append(Disconnect(why))
        if not self._closed:
            delay = self.backoff.delay()
            self._reconnect = t + self.latency_ns + int(delay * 1e9)
            log.warning("%s->%s: %s; reconnecting in %.2f s", self._owner, self.name,
                        why or "session ended", delay)

    def _to_venue_one(self, t: int, chunk: bytes | None) -> None:
        if not self._venue_conn:
            return
        if chunk is None:
            self._acceptor.connection_lost(t)
            self._venue_lost(t)
            self._venue_flush(t)
            return
        self._venue_after(self._acceptor.receive_data(chunk, t), t)


class InProcessVenue(_SessionPair):
    """A simulated venue in this process, driven on the caller's clock (module docstring)."""

    def __init__(self, name: str, instruments: Sequence[InstrumentConfig], *,
                 sender: str = "HELM", latency_ns: int = 0, fee_bps: float = 0.0,
                 heartbeat_s: int = 30, books: BookSet | None = None,
                 venue_index: int = 0) -> None:
        if not 0 <= latency_ns <= MAX_LATENCY_NS:
            raise ValueError(f"latency_ns must be 0..{MAX_LATENCY_NS} (the sessions accept "
                             f"SendingTime {MAX_LATENCY_NS // 10**9} s off), was {latency_ns}")
        self.name = name
        self.symbols = frozenset(i.symbol for i in instruments)
        self.latency_ns = int(latency_ns)
        #: the recorded market of this venue: ``books`` row ``venue_index`` (None: no one else)
        self.books = books
        self.venue_index = venue_index
        # the mirror cancels and re-enters orders all day: remember fewer finished ids than a
        # venue serving people would (memory stays bounded in a long backtest)
        self.exchange = Exchange(name, instruments, fee_bps=fee_bps, remember_done=50_000)
        self.session = FixSession(SessionConfig(sender=sender, target=name, initiator=True,
                                                heartbeat_s=heartbeat_s), MemoryStore())
        self._acceptor = FixSession(SessionConfig(sender=name, target=sender, initiator=False,
                                                  heartbeat_s=heartbeat_s), MemoryStore())
        self._owner = sender
        self.backoff = Backoff()
        self.counters = dict.fromkeys(
            ("msgs_to_venue", "msgs_to_engine", "connects", "logons", "drops", "fills",
             "syncs", "mirror_submits", "mirror_cancels", "cancelled_on_disconnect",
             "sent_late", "pending_dropped", "md_dropped", "errors"), 0)
        self._index = {i.symbol.encode(): k for k, i in enumerate(instruments)}
        self._mirrors: list[_Mirror | None] = [None] * len(instruments)
        self._working: set[int] = set()  # instruments that may have our orders live
        #: instruments with none of ours live whose used sizes await the next market move
        self._forgetting: set[int] = set()
        self._sync_failed: set[int | None] = set()  # logged once each
        self._to_venue: deque[tuple[int, bytes | None]] = deque()  # (due, chunk; None: closed)
        self._to_us: deque[tuple[int, bytes | None]] = deque()
        self._pending: deque[tuple[bytes, list]] = deque()  # for us, after our next Logon
        self._our_conn = self._venue_conn = False  # each end's view of the connection
        self._our_sent = self._venue_sent = 0  # when each session last wrote
        self._last_tick = -_TICK_NS
        self._timer = NEVER
        self._reconnect = NEVER
        self._started = self._closed = False
        self._due = 0  # the first poll connects
        self._copies: list[DropCopyLink] = []

    def drop_copy(self, comp_id: str, heartbeat_s: int | None = None) -> DropCopyLink:
        """The drop copy session ``comp_id`` (made on the first call; module docstring)."""
        for link in self._copies:
            if link.comp_id == comp_id:
                return link
        if comp_id == self._owner:
            raise ValueError(f"drop copy CompID {comp_id!r} is the order session's own")
        link = DropCopyLink(self.name, comp_id, latency_ns=self.latency_ns,
                            heartbeat_s=heartbeat_s or self.session.config.heartbeat_s,
                            exchange=self.exchange)
        self._copies.append(link)
        return link

    # -- THE EXECUTION STAGE'S SIDE --------------------------------------------------------------

    def send(self, msg_type: bytes, body: list, now_ns: int) -> int | None:
        """Send an application message through our session; its MsgSeqNum, or None when the
        session is not logged on. It reaches the venue ``latency_ns`` after ``now_ns``. A
        body that cannot be encoded raises ``FixEncodeError`` (the caller's bug), as over
        TCP."""
        if self.session.state is not _ACTIVE:
            return None
        seq = self.session.send(msg_type, body, now_ns)
        self._our_flush(now_ns)
        self._timer = self._next_timer(now_ns)
        self._refresh_due()
        return seq

    def on_market(self, instruments: Iterable[int], now_ns: int) -> None:
        """The recorded books of these instrument indexes moved: re-mirror those with our
        orders live (a resting order the market now reaches fills)."""
        working, forgetting = self._working, self._forgetting
        if not (working or forgetting) or self.books is None or self._closed:
            return
        changed = instruments.tolist() if hasattr(instruments, "tolist") else instruments
        synced = False
        for i in changed:
            if i in working:
                synced = True
                try:
                    self._sync(i, now_ns)
                except Exception:
                    self._fail_sync(i)
            elif i in forgetting:
                forgetting.discard(i)
                try:
                    self._forget_moved(i)
                except Exception:
                    self._fail_sync(i)
        if synced:
            self._venue_after((), now_ns)
            self._timer = self._next_timer(now_ns)
            self._refresh_due()

    def close(self, now_ns: int) -> None:
        """Log out and close our end; the venue handles what is on the wire, then cancels our
        live orders. Nothing more is received."""
        if self._closed:
            return
        self._closed = True
        self._reconnect = NEVER
        s = self.session
        if self._our_conn:
            if s.state is _ACTIVE:
                s.logout("engine stopping", now_ns)
            self._our_flush(now_ns)
            self._our_conn = False
            s.connection_lost(now_ns)
            self._push(self._to_venue, now_ns, None)
        self._to_us.clear()
        fifo = self._to_venue
        while fifo:  # our end is closed: the venue's answers go nowhere
            self._to_venue_one(*fifo.popleft())
        self._timer = self._due = NEVER

    # -- THE VENUE'S END (the loop, timers and our end: _SessionPair) ----------------------------
    def _venue_after(self, evs: Sequence, t: int) -> None:
        """Handle the venue session's events at ``t``, then send what the exchange answered."""
        lost = False
        for e in evs:
            tp = type(e)
            if tp is AppMessage:
                self._handle_app(e.message, t)
            elif tp is LoggedOn:
                self._handle_logged_on(e, t)
            elif tp is Disconnect:
                self._venue_lost(t)
                lost = True
        self._venue_flush(t)
        if lost and self._our_conn:
            self._push(self._to_us, t, None)

    def _handle_app(self, m, t: int) -> None:
        x = self.exchange
        i = None
        try:
            if self.books is not None and m.msg_type in _ORDER_MSGS:
                i = self._index.get(m.get(55))
                if i is not None:
                    side = need = None
                    if m.msg_type == MsgType.NewOrderSingle and i not in self._working:
                        side = _TAKES.get(m.get(54))  # none of ours there: the side it takes
                        qty = m.get(38)
                        if qty is not None and qty.isdigit():
                            need = int(qty)
                    self._sync(i, t, side, need)
        except Exception:
            self._fail_sync(i)
        taken = x.counters["background_fills"]
        try:
            x.on_message(self._owner, m, t)
        except Exception:
            self.counters["errors"] += 1
            log.exception("%s: could not handle 35=%s seq %d", self.name,
                          m.msg_type.decode("ascii", "replace"), m.seq)
            x.business_reject(self._owner, m, BIZ_OTHER,
                              "the venue failed to handle this message (see its log)", t)
        if i is not None:
            try:
                self._after_order(i, x.counters["background_fills"] != taken)
            except Exception:
                self._working.add(i)
                self._fail_sync(i)

    def _handle_logged_on(self, e: LoggedOn, t: int) -> None:
        if e.reset:
            self.exchange.forget_finished(self._owner)
        acc = self._acceptor
        if self._pending and acc.state is _ACTIVE:
            self.counters["sent_late"] += len(self._pending)
            while self._pending:
                msg_type, body = self._pending.popleft()
                acc.send(msg_type, body, t)

    def _venue_lost(self, t: int) -> None:
        """The venue's end of the connection is gone: cancel on disconnect."""
        if not self._venue_conn:
            return
        self._venue_conn = False
        x = self.exchange
        x.drop_subscriptions(self._owner)
        self.counters["cancelled_on_disconnect"] += x.cancel_all(self._owner, t)

    def _venue_flush(self, t: int) -> None:
        x = self.exchange
        out = x.outbox
        if out:
            batch = out[:]
            out.clear()
            acc = self._acceptor
            active = acc.state is _ACTIVE
            for _owner, msg_type, body in batch:  # one counterparty: every message is ours
                if msg_type == _EXECUTION_REPORT and self._copies:
                    copy = drop_copy_body(self._owner, body)
                    for link in self._copies:
                        link.copy(copy, t)
                if active:
                    try:
                        acc.send(msg_type, body, t)
                    except Exception:  # a bad field of the exchange's: lose this one only
                        self.counters["errors"] += 1
                        log.exception("%s: could not send 35=%s: %r", self.name,
                                      msg_type.decode("ascii", "replace"), body)
                elif msg_type in MD_MSG_TYPES:
                    self.counters["md_dropped"] += 1
                else:
                    if len(self._pending) >= _MAX_PENDING:
                        self._pending.popleft()
                        self.counters["pending_dropped"] += 1
                    self._pending.append((msg_type, body))
            self.counters["fills"] = x.counters["fills"]
        data = self._acceptor.data_to_send()
        if data:
            self._venue_sent = t
            self.counters["msgs_to_engine"] += data.count(_TRAILER)
            if self._our_conn:
                self._push(self._to_us, t, data)

    # -- THE MIRROR OF THE RECORDED MARKET -------------------------------------------------------
    def _sync(self, i: int, t: int, side: int | None = None, need: int | None = None) -> None:
        """Make the exchange's background orders of instrument ``i`` show the venue's recorded
        book now (module docstring, "Fill model"). For a new order of ours while none of ours
        is live there: ``side``, only the side it trades against (the other loses just the
        levels that would cross it); ``need``, only as deep as its quantity reaches."""
        rows = self.books.book[self.venue_index, i].tolist()  # [side][level] = [price, size]
        mirror = self._mirrors[i]
        if mirror is None or len(mirror.empty[BID]) != len(rows[BID]):
            mirror = self._new_mirror(i, len(rows[BID]))
        rows = self._shown(i, rows, mirror)
        self.counters["syncs"] += 1
        self._forgetting.discard(i)
        if side is not None or mirror.short or rows != mirror.rows:  # else it shows the book
            self._remirror(mirror, rows, t, side, need)
        if len(mirror.book.engine) == mirror.count:
            self._working.discard(i)  # none of ours left: market moves need no sync

    def _shown(self, i: int, rows: list, mirror: _Mirror) -> list:
        """The recorded levels to show: none while the book is not executable or crossed."""
        bids, asks = rows
        if int(self.books.state[self.venue_index, i]) & _NOT_EXECUTABLE or (
                bids[0][1] > 0 and asks[0][1] > 0 and bids[0][0] >= asks[0][0]):
            return mirror.empty
        return rows

    def _remirror(self, mirror: _Mirror, rows: list, t: int, side: int | None,
                  need: int | None) -> None:
        """Cancel every level whose price left the book or whose size changed or was taken
        from (``side``: on that side only, and on the other the levels crossing it); then
        submit what is to be shown, bids then asks, best first (a level crossing one of our
        resting orders shows only what our orders have not used there; ``need``: no level
        past the one where the displayed size reaches it)."""
        x = self.exchange
        book = mirror.book
        counters = self.counters
        levels = mirror.levels
        todo = []
        best = None  # side's best price to show
        for s in _SIDES if side is None else (side, 1 - side):
            used = mirror.used[s]
            if side is not None and s != side:  # only what would cross the side shown goes
                if used:
                    _forget(used, {p: d for p, d in rows[s] if d > 0 and p > 0})
                old = levels[s]
                if best is not None and old:
                    keep = {}
                    for p, e in old.items():
                        if p >= best if s == BID else p <= best:
                            if e[2]:
                                x.cancel_background(book, e[1], t)
                                counters["mirror_cancels"] += 1
                                mirror.count -= 1
                        else:
                            keep[p] = e
                    levels[s] = keep
                continue
            shown = {p: d for p, d in rows[s] if d > 0 and p > 0}
            if used:
                _forget(used, shown)
            old = levels[s]
            for p, e in old.items():
                n = e[2]
                if n and (n != e[0] or shown.get(p) != n):
                    x.cancel_background(book, e[1], t)
                    counters["mirror_cancels"] += 1
                    mirror.count -= 1
            new = {}
            for p, d in shown.items():
                if best is None:
                    best = p
                e = old.get(p)
                if e is None or e[0] != d or e[2] != d:
                    if need is not None and need <= 0:
                        continue  # deeper than the order reaches: not shown this time
                    e = [d, None, 0]
                    todo.append((s, p, e))
                new[p] = e
                if need is not None:
                    need -= d
            levels[s] = new
        mirror.rows = rows if side is None else None  # one side shown: look again next time
        short = 0
        engine = book.engine
        for s, p, e in todo:
            d = e[0]
            used = mirror.used[s]
            if s == BID:
                a = engine.best_ask()
                crosses = a is not None and a <= p
            else:
                b = engine.best_bid()
                crosses = b is not None and b >= p
            size = d - used.get(p, 0) if crosses else d  # crosses one of ours
            if size <= 0:
                short += 1  # its displayed size is used up here
                continue
            oid = x.submit_background(book, Side.BUY if s == BID else Side.SELL, size, p, t)
            counters["mirror_submits"] += 1
            o = engine.order(oid)
            left = o[4] if o is not None else 0
            if left < size:  # touch fills of our resting orders
                used[p] = used.get(p, 0) + size - left
            if left:
                e[1] = oid
                mirror.count += 1
            if left != d:
                short += 1
            e[2] = left
        mirror.short = short

    def _settle(self, mirror: _Mirror) -> None:
        """Our order took from the mirror: read what is left of the background orders and
        count what was taken as used at its price. An order takes best first, so the first
        untouched level of a side ends the look."""
        engine = mirror.book.engine
        for s in _SIDES:
            used = mirror.used[s]
            for p, e in mirror.levels[s].items():
                n = e[2]
                if not n:
                    continue
                o = engine.order(e[1])
                left = o[4] if o is not None else 0
                if left == n:
                    break
                used[p] = min(used.get(p, 0) + n - left, e[0])
                e[2] = left
                mirror.short += 1
                if not left:
                    e[1] = None
                    mirror.count -= 1

    def _after_order(self, i: int, taken: bool) -> None:
        """Our order message about instrument ``i`` was handled: ``i`` is working while an
        order of ours is live there; once none is, the used sizes are still checked against
        the next market move (as a sync would)."""
        mirror = self._mirrors[i]
        if mirror is None:
            self._working.add(i)
            return
        if taken:
            self._settle(mirror)
        if len(mirror.book.engine) != mirror.count:
            self._working.add(i)
            return
        self._working.discard(i)
        if mirror.used[BID] or mirror.used[ASK]:
            self._forgetting.add(i)

    def _forget_moved(self, i: int) -> None:
        """The book of ``i`` moved with none of our orders there: forget the used sizes at
        prices that left it (module docstring), as a sync would, without re-mirroring."""
        mirror = self._mirrors[i]
        rows = self._shown(i, self.books.book[self.venue_index, i].tolist(), mirror)
        for s in _SIDES:
            used = mirror.used[s]
            if used:
                _forget(used, {p: d for p, d in rows[s] if d > 0 and p > 0})

    def _new_mirror(self, i: int, depth: int) -> _Mirror:
        old = self._mirrors[i]
        book = self.exchange.books[i]
        if old is not None:  # the book's depth changed: start over
            for s in _SIDES:
                for e in old.levels[s].values():
                    if e[2]:
                        self.exchange.cancel_background(book, e[1], 0)
        mirror = self._mirrors[i] = _Mirror(book, depth)
        return mirror

    def _fail_sync(self, i: int | None) -> None:
        """Count a sync that raised; log it once per instrument (it would fail on every
        market move)."""
        self.counters["errors"] += 1
        if i not in self._sync_failed:
            self._sync_failed.add(i)
            log.exception("%s: could not mirror the recorded book of instrument %r (books %s, "
                          "venue_index %d); its orders meet no market", self.name, i,
                          _shape(self.books), self.venue_index)


class DropCopyLink(_SessionPair):
    """The in-process venue's drop copy: the venue's acceptor session for ``comp_id`` and the
    initiator session the engine polls, through memory, ``latency_ns`` each way.

    A venue client to the engine (``up``, ``session``, ``poll``, ``send``, ``next_due_ns``,
    ``fileno``, ``close``, ``fail``), driven exactly as ``InProcessVenue`` drives its own
    pair (see its module docstring: FIFOs, timers, reconnect); the venue feeds it with
    ``copy``. Nothing it receives reaches a book: an application message is refused.
    """

    def __init__(self, name: str, comp_id: str, *, latency_ns: int, heartbeat_s: int,
                 exchange: Exchange) -> None:
        self.name = name  #: the venue's
        self.comp_id = comp_id
        self._owner = comp_id  # who the venue's end talks to (the log's "comp_id->venue")
        self.latency_ns = latency_ns
        self._exchange = exchange
        self.session = FixSession(SessionConfig(sender=comp_id, target=name, initiator=True,
                                                heartbeat_s=heartbeat_s), MemoryStore())
        self._acceptor = FixSession(SessionConfig(sender=name, target=comp_id, initiator=False,
                                                  heartbeat_s=heartbeat_s), MemoryStore())
        self.backoff = Backoff()
        self.counters = dict.fromkeys(
            ("copies", "refused", "sent_late", "pending_dropped", "connects", "logons", "drops",
             "msgs_to_venue", "msgs_to_engine", "errors"), 0)
        self._to_venue: deque[tuple[int, bytes | None]] = deque()
        self._to_us: deque[tuple[int, bytes | None]] = deque()
        self._pending: deque[list] = deque()  # copies made while the venue's end was not active
        self._our_conn = self._venue_conn = False
        self._our_sent = self._venue_sent = 0
        self._last_tick = -_TICK_NS
        self._timer = NEVER
        self._reconnect = NEVER
        self._started = self._closed = False
        self._due = 0  # the first poll connects

    # -- THE ENGINE'S SIDE -----------------------------------------------------------------------

    def send(self, msg_type: bytes, body: list, now_ns: int) -> int | None:
        """Send an application message on the drop copy (the venue refuses it); its MsgSeqNum,
        or None when not logged on."""
        if self.session.state is not _ACTIVE:
            return None
        seq = self.session.send(msg_type, body, now_ns)
        self._our_flush(now_ns)
        self._timer = self._next_timer(now_ns)
        self._refresh_due()
        return seq

    def close(self, now_ns: int) -> None:
        if self._closed:
            return
        self._closed = True
        self._reconnect = NEVER
        s = self.session
        if self._our_conn:
            if s.state is _ACTIVE:
                s.logout("engine stopping", now_ns)
            self._our_flush(now_ns)
            self._our_conn = False
            s.connection_lost(now_ns)
            self._push(self._to_venue, now_ns, None)
        self._to_us.clear()
        while self._to_venue:
            self._to_venue_one(*self._to_venue.popleft())
        self._timer = self._due = NEVER

    # -- THE VENUE'S SIDE ------------------------------------------------------------------------
    def copy(self, body: list, t: int) -> None:
        """The venue sent an ExecutionReport at ``t``: send the copy (``body``, Account
        included), or keep it until the drop copy is logged on."""
        self.counters["copies"] += 1
        acc = self._acceptor
        if acc.state is not _ACTIVE:
            if len(self._pending) >= _MAX_PENDING:
                self._pending.popleft()
                self.counters["pending_dropped"] += 1
            self._pending.append(body)
            return
        try:
            acc.send(_EXECUTION_REPORT, body, t)
        except Exception:  # a bad field of the exchange's: lose this copy only
            self.counters["errors"] += 1
            log.exception("%s: could not send a drop copy to %s: %r", self.name, self.comp_id,
                          body)
            return
        self._venue_flush(t)

    # -- THE VENUE'S END (the loop, timers and our end: _SessionPair) ----------------------------
    def _venue_after(self, evs: Sequence, t: int) -> None:
        lost = False
        acc = self._acceptor
        for e in evs:
            tp = type(e)
            if tp is AppMessage:
                self._refuse(e.message, t)
            elif tp is LoggedOn:
                if self._pending and acc.state is _ACTIVE:
                    self.counters["sent_late"] += len(self._pending)
                    while self._pending:
                        acc.send(_EXECUTION_REPORT, self._pending.popleft(), t)
            elif tp is Disconnect:
                self._venue_conn = False
                lost = True
        self._venue_flush(t)
        if lost and self._our_conn:
            self._push(self._to_us, t, None)

    def _refuse(self, m, t: int) -> None:
        """An application message on the drop copy: BusinessMessageReject 6, counted."""
        self.counters["refused"] += 1
        x = self._exchange
        x.refuse_drop_copy(self.comp_id, m, t)
        out = x.outbox
        mine = [item for item in out if item[0] == self.comp_id]
        out[:] = [item for item in out if item[0] != self.comp_id]
        if self._acceptor.state is _ACTIVE:
            for _owner, msg_type, body in mine:
                self._acceptor.send(msg_type, body, t)

    def _venue_flush(self, t: int) -> None:
        data = self._acceptor.data_to_send()
        if data:
            self._venue_sent = t
            self.counters["msgs_to_engine"] += data.count(_TRAILER)
            if self._our_conn:
                self._push(self._to_us, t, data)


def _forget(used: dict[int, int], shown: dict[int, int]) -> None:
    """Forget the used size at prices no longer shown; keep the rest within what is shown."""
    for p in list(used):
        d = shown.get(p)
        if d is None:
            del used[p]  # the price left the book: its liquidity is new next time
        elif used[p] > d:
            used[p] = d


def _deadline(s: FixSession, sent_ns: int) -> int:
    """When ``s.tick`` next has something to do, given when it last wrote: a heartbeat, or a
    TestRequest. Logging on or out: 0 (its time-outs are checked once a second)."""
    st = s.state
    if st is _ACTIVE:
        hb = s.heartbeat_s * 1_000_000_000
        heartbeat = sent_ns + hb
        test = s.last_received_ns + int(hb * s.config.test_request_factor) + 1
        return min(heartbeat, test)
    if st is _DISCONNECTED:
        return NEVER
    return 0


def _shape(books: BookSet | None) -> str:
    return "None" if books is None else f"{books.n_venues}x{books.n_instruments}x{books.depth}"
