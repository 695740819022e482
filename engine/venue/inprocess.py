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
and size. A sync diffs by price: a level whose recorded price and size are what was mirrored
at that price and whose order is whole is left alone, wherever it now sits in the book; any
other is cancelled, and every level to show is then submitted (all cancels before any submit,
so the old mirror never trades with the new).

When. Only our own orders ever trade with the mirror, so it is synced when one of ours may:

- With a queue model (the default; "Queue position" below) the recorded market reaches our
  resting orders through the queue, never through the mirror (a level that would cross one of
  ours is kept out of the book). So the mirror is synced only for a NewOrderSingle, and only
  the side it trades against, as deep as the displayed size reaches its quantity and no
  further than its limit price (a passive quote: nothing); of the other side only the levels
  that would cross it are cancelled (the rest waits until an order needs them). A replace
  syncs both sides; a cancel takes nothing: it only looks at the queue first (a resting order
  the market reached fills before its cancel). A market move of an instrument where ours rest
  only looks at the queue (and forgets used sizes at prices that left).
- With ``queue_model="none"`` the mirror is what fills our resting orders (a touch fill), so
  it is synced in full before each order message about the instrument and in ``on_market``
  at each market move while an order of ours is live there (checked right after each message
  about it); a NewOrderSingle where none of ours is live needs only the side it takes, as
  above.

Either way our order meets the recorded book as it is at that moment, and the fills are the
same: the laziness changes only how much of the book the matching engine holds meanwhile.

- A marketable order takes the displayed levels best first, at most their displayed size, at
  their prices (the matching engine fills at the resting price); what is left of a limit order
  rests, of a market or IOC order is cancelled.
- A resting order fills as ``queue_model`` says (see "Queue position" below): by default
  only once the recorded volume ahead of it at its price has traded, or when the market goes
  through its price; ``queue_model="none"`` keeps the *touch fill*.
- No market impact: what we take is not taken from the recorded market. The next sync shows
  the level at its displayed size again, for our next order to take.
- Never the same liquidity twice for a resting order: per side and price, the venue counts
  the displayed size our orders have used there (taken, or touched under "none"; at most the
  displayed size, forgotten when the price leaves the displayed book). A level that would
  cross one of our resting orders offers only the size not yet used: the same displayed 200
  can fill our resting bid once, and it gets more only when the recorded size at that price
  grows. While that resting order stays, the used size is missing for our other orders too;
  once it is gone, the level shows its displayed size again. A recorded trade's volume at a
  price fills our orders there once, front first.
- The recorded book is trusted to be in price order (the feed handler validates it). While the
  venue's book of an instrument is halted or being rebuilt (``ST_HALTED``, ``ST_REBUILDING``)
  or its best bid is at or above its best ask, the mirror is emptied: no liquidity.
- Fees: ``fee_bps`` as the exchange charges them (Commission on each fill). Reports about
  mirror orders produce nothing (the exchange ignores background reports).

Without ``books`` there are no other participants: an order rests until another of our orders
crosses it.

Queue position
--------------
``queue_model`` (a constructor argument, one of ``QUEUE_MODELS``):

``"risk_averse"`` (the default; hftbacktest's RiskAdverseQueueModel). An order of ours that
comes to rest at price P (a new order; a replace that moves its price or raises its quantity:
one that only lowers it keeps its place) joins the back of P on its side: its *volume ahead*
is the recorded size at P on that side at that moment in this venue's book (0 at a price no
one else shows). Our own orders at P queue among themselves in arrival order, each behind the
recorded size that was ahead of it when it came.

- Only trades move an order forward. A TRADE record of this venue at P that reaches our side
  (aggressor SELL: our bids; BUY: our asks; unknown: our bids if P was below the recorded best
  ask at the last look, our asks if above the best bid) goes down the queue front first: it
  uses up the volume ahead of our first order at P, fills that order with what is left (a
  partial fill if the trade is short of its leaves, at P), and goes on with the rest to our
  next order there (what our orders took passed no one else).
- A size decrease at P that is not a trade never moves an order forward, except that its
  volume ahead is never more than the recorded size at P: ``ahead = min(ahead, size)`` (the
  orders that left must have been ahead of us). Cancels and new orders behind us change
  nothing.
- Through: an order fills in full, at its price, when the market goes through it: a trade
  that reaches its side at a price strictly through it (below our bid, above our ask), or the
  recorded opposite best, counting only size our orders have not used, strictly through it
  (ask < our bid, bid > our ask).
- Touching is not filling: an opposite level at our price (ask == our bid) fills nothing.
  The mirror cannot hold it (it would cross our order), so it is kept out of the matching
  engine's book and given to it as liquidity outside the book
  (``MatchingEngine.set_outside``): a new order of ours, or a replace, that reaches that price
  still takes it, before the displayed levels behind it, and counts what it took as used.

``"prob"`` (hftbacktest's ProbQueueModel with PowerProbQueueFunc, f(x) = x³): as
``"risk_averse"``, and when the recorded size at P changes, a decrease that the trades at P
since its last change do not explain, ``chg = size then - size now - traded``, moves each of
our orders there forward by its expected share ahead, without a random draw: with ``behind
= size then - traded - ahead`` and ``p = f(behind) / (f(behind) + f(ahead))`` (the chance
that it was behind us), ``ahead = ahead - (1 - p) × chg + min(behind - p × chg, 0)``,
rounded to the nearest unit, at most the size now. (hftbacktest counts ``behind`` before the
trades take their volume.) An increase only clamps, as above.

``"none"``: the touch fill, no queue position. A resting order fills when a sync submits an
opposite level at or through its price, at our limit price, up to that level's size (less
what our orders used there), ahead of every order displayed at our price.

When. The venue looks at an instrument where an order of ours rests in ``on_market`` and just
before it handles an order message of ours about it: first the trades since the last look, in
the order recorded, then the book as it now is; fills happen then, at that ``now_ns``. A look
sees a batch of market data as its trades and the book at its end (the clamp comes after the
trades of the batch), so the queue moves at the step market data reaches the books in (a
backtest's ``--resolution-us`` while orders work, ``[engine] slice_us``). Trades come from a
tap on the books (``BookSet.taps``): registered while any order of ours rests, it picks this
venue's trades of the instruments where one does out of every batch ``apply_batch`` applies
(``apply_one`` calls no taps). While the book is halted, being rebuilt or crossed, its trades
still count (and can go through us), but its sizes are not read and its levels fill nothing.

Market-data latency
-------------------
By default the mirror reads the engine's own books: the exchange sees the recorded market
when the engine does (a paper session can do no better). ``use_exchange_time(view)`` gives
the venue an ``engine.venue.mdlatency.ExchangeTimeBooks`` instead (a backtest's ``[[venues]]
md_latency_us``): its own books, fed with the venue's records at their exchange times, ahead
of the engine's by the feed latency. The mirror, the queue's looks and the trade tape then
read those books; the engine's ``on_market`` calls no longer carry news (the venue brings
its books up to the call's time instead); its books are brought up to ``t`` before an order
message arriving at ``t`` is handled (records at ``t`` first), and, while an order of ours is
live there or a used size waits to be forgotten, ``next_due_ns`` includes the end of the
view's cell holding its next record, where ``poll`` brings them up to date and looks, as
``on_market`` does. Everything else (sessions, queue models, fills) is as above.

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
returns the empty tuple); the session timer is worked out once per ``poll`` or ``send`` that
did something, not once per message (``_stale``). A message costs its FIX encode and decode
on each side and the exchange's handling, in plain Python: in the order bench
(``bench.orders``) the sessions' codec and the session layer are about half of what the venue
pair costs an order, this module's own mirror, queue and timer work about a third (a new
passive order with nothing mirrored skips the mirror). With market-data latency, a look
also costs the exchange-time books' ``advance`` (a binary search and one compiled
``apply_batch``). A sync reads the instrument's venue book with one
``tolist()``; an unchanged book is then one list comparison, a changed one costs a cancel and a
submit per level changed at its price (for a new order, under a queue model or where none of
ours is live, only the levels it can reach: none for a passive one; after our order took from
the mirror, one order lookup per level it took, plus one). A market move of an instrument where
ours rest costs, under a queue model, one ``tolist()`` and the queue's look (no order to the
matching engine). Once none of ours is left on an instrument whose used sizes are kept, its
next market move costs one ``tolist()`` to forget those at prices that left. Queue position
costs nothing while no order of ours rests (no tap on the books; a marketable order that does
not rest never makes one) and nothing for an instrument where none rests; while some rest, each
batch the books apply gets one compiled pass (well under a µs a call, a few ns a record)
picking out this venue's trades of those instruments, each such trade then costs a look at our
price levels on its side there, and each look at an instrument a pass over our levels there
(with ``queue_model="none"``, a full re-mirror on each while a level is short). The matching
engine remembers
finished order ids in two bounded generations (``MatchingEngine(remember_done=...)``); a busy
mirror fills them with its own cancelled orders, which costs memory, not time.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np
from numba import njit

from engine.book.books import ST_HALTED, ST_REBUILDING, BookSet
from engine.core.events import ASK, BID, BUY, MD_EVENT, SELL, TRADE
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
from engine.venue.exchange import BACKGROUND, BIZ_OTHER, MD_MSG_TYPES, Exchange, drop_copy_body
from engine.venue.matching import Side
from engine.venue.mdlatency import ExchangeTimeBooks

__all__ = ["MAX_LATENCY_NS", "NEVER", "QUEUE_MODELS", "DropCopyLink", "InProcessVenue"]

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
_NEW_ORDER = MsgType.NewOrderSingle
_CANCEL = MsgType.OrderCancelRequest
_ACTIVE = SessionState.ACTIVE
_DISCONNECTED = SessionState.DISCONNECTED
_NOT_EXECUTABLE = ST_HALTED | ST_REBUILDING
_SIDES = (BID, ASK)
_NO_EVENTS: tuple = ()
_EXECUTION_REPORT = MsgType.ExecutionReport
#: Side (FIX tag 54) of a new order -> the side of the book it trades against.
_TAKES = {b"1": ASK, b"2": BID}
#: ``InProcessVenue(queue_model=...)``: how a resting order of ours fills (module docstring).
QUEUE_MODELS = ("risk_averse", "prob", "none")
#: The "prob" model's f(x) = x ** _PROB_POWER (hftbacktest's PowerProbQueueFunc, n = 3).
_PROB_POWER = 3
#: A queue entry, one per resting order of ours: [venue order id, book side, price, order
#: quantity, leaves, recorded volume ahead of it].
_OID, _SIDE, _PX, _QTY, _LEAVES, _AHEAD = range(6)
#: The matching engine's side of our order on each book side.
_ENGINE_SIDE = (Side.BUY, Side.SELL)


class _Mirror:
    """What the exchange holds of one instrument's recorded book (module docstring).

    Per side (``BID``, ``ASK``): price -> ``[size, order, left]`` for each displayed level
    last mirrored, best first: the recorded size, the background order standing for it (None:
    none) and that order's open size as last known; per side, price -> displayed size our
    orders have used at that price.
    """

    __slots__ = ("book", "count", "empty", "hidden", "levels", "looked", "rows", "short",
                 "used")

    def __init__(self, book, depth: int) -> None:
        self.book = book  # the exchange's book of the instrument
        #: the recorded levels last mirrored on both sides, as read (None: not both sides)
        self.rows: list | None = None
        self.empty = [[[0, 0]] * depth, [[0, 0]] * depth]  # what a book without liquidity reads
        self.levels: list[dict[int, list]] = [{}, {}]
        self.used: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.count = 0  #: background orders live
        self.short = 0  #: levels shown below their displayed size (taken from, used up, kept out)
        #: levels kept out of the book (queue models): (side, price, displayed size, the
        #: [price, size] the matching engine takes from, that size when last looked at)
        self.hidden: list[tuple] = []
        #: (state, book) of the last lazy look; None once an order message may have changed
        #: what a look finds (a lazy sync of the same book after it has nothing to do)
        self.looked: tuple | None = None


class _Queue:
    """Our resting orders of one instrument and the recorded volume ahead of each (module
    docstring, "Queue position").

    Per side (``BID``, ``ASK``): price -> the queue entries there (``_OID`` ... ``_AHEAD``) in
    time priority; the recorded size at that price at the last look; the recorded volume traded
    there since (the "prob" model's). ``bid``/``ask``: the recorded best prices at the last
    look (0: none), which tell the side of a trade whose aggressor is unknown.
    """

    __slots__ = ("ask", "bid", "levels", "orders", "prev", "traded")

    def __init__(self) -> None:
        self.orders: dict[int, list] = {}  # venue order id -> its entry
        self.levels: tuple[dict[int, list], dict[int, list]] = ({}, {})
        self.prev: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.traded: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.bid = self.ask = 0


def _scan_trades_kernel(records, venue, watch, out, n):  # pragma: no cover - compiled
    """Write (instrument, price, size, aggressor) of each TRADE record of ``venue`` whose
    instrument is watched into ``out`` from row ``n``; return the rows filled (the caller
    makes room for every record first)."""
    n_watch = watch.shape[0]
    for k in range(records.shape[0]):
        r = records[k]
        if r.kind != TRADE or r.venue != venue:
            continue
        i = np.int64(r.instrument)
        if i >= n_watch or not watch[i]:
            continue
        out[n, 0] = i
        out[n, 1] = r.price
        out[n, 2] = r.size
        out[n, 3] = r.side
        n += 1
    return n


_scan_trades = njit(cache=True, nogil=True)(_scan_trades_kernel)
_warm = [False]


def _warm_up() -> None:
    """Compile the tape's pass now (or load it from numba's cache), once per process: the
    first order of ours to rest would otherwise stall the loop for it."""
    if not _warm[0]:
        _warm[0] = True
        _scan_trades(np.zeros(1, dtype=MD_EVENT), 0, np.zeros(1, dtype=np.bool_),
                     np.zeros((1, 4), dtype=np.int64), 0)


class _TradeTape:
    """A ``BookSet`` tap (``books.taps``): the trades of one venue's books of the instruments
    in ``watch``, kept until the venue reads them. Registered only while something is watched;
    one compiled pass over each batch (a few ns a record, under a µs a call)."""

    __slots__ = ("books", "count", "errors", "n", "out", "venue", "watch")

    def __init__(self, books: BookSet, venue: int) -> None:
        self.books = books
        self.venue = venue
        self.watch = np.zeros(books.n_instruments, dtype=np.bool_)
        self.count = 0  #: instruments watched
        self.out = np.zeros((1024, 4), dtype=np.int64)  # instrument, price, size, aggressor
        self.n = 0  #: rows of ``out`` not yet read
        self.errors = 0  #: batches it could not read (logged once): the books go on

    def __call__(self, records: np.ndarray) -> None:
        try:
            need = self.n + len(records)
            if need > len(self.out):
                grown = np.zeros((max(need, 2 * len(self.out)), 4), dtype=np.int64)
                grown[:self.n] = self.out[:self.n]
                self.out = grown
            self.n = _scan_trades(records, self.venue, self.watch, self.out, self.n)
        except Exception:  # never into the books' caller: our queues miss these trades
            self.errors += 1
            if self.errors == 1:
                log.exception("venue %d: could not read the trades of a batch of %d records "
                              "(%s): queue positions miss them", self.venue, len(records),
                              getattr(records, "dtype", type(records)))

    def set(self, i: int, on: bool) -> None:
        """Watch instrument ``i``, or stop; the tap is on the books while anything is."""
        if i >= len(self.watch) or bool(self.watch[i]) == on:
            return
        self.watch[i] = on
        self.count += 1 if on else -1
        taps = self.books.taps
        if self.count and self not in taps:
            taps.append(self)
        elif not self.count and self in taps:
            taps.remove(self)
            self.n = 0

    def take(self) -> list:
        """The trades kept so far, as [instrument, price, size, aggressor] rows; forgets them."""
        rows = self.out[:self.n].tolist()
        self.n = 0
        return rows


class _SessionPair:
    """The two FIX sessions of an in-process connection — ours (``session``, the engine's
    side) and the venue's (``_acceptor``) — through memory, ``latency_ns`` each way: FIFOs,
    session timers, disconnects and the reconnect, as the module docstring tells. Subclasses
    say what the venue's end does with what it receives (``_venue_after``), what it sends
    (``_venue_flush``) and what losing its end means (``_venue_lost``)."""

    #: when the venue's recorded market next needs a step of its own (InProcessVenue with
    #: market-data latency; NEVER: never)
    _md_due = NEVER
    #: None: ``_timer`` is exact. Else the time of the last thing handled since it was: while
    #: both sessions are logged on their deadlines only move later (each write and read
    #: pushes them), so ``_timer`` is a lower bound, worked out again only when it comes due
    #: or someone asks when the next work is (``_settle_timer``): once a poll or a send, not
    #: once a message
    _stale: int | None = None

    def _venue_lost(self, t: int) -> None:
        """The venue's end of the connection is gone."""
        self._venue_conn = False

    def _md_step(self, t: int) -> None:
        """The venue's recorded market is due at ``t`` (``_md_due``)."""

    @property
    def up(self) -> bool:
        """Our session is logged on."""
        return self.session.state is _ACTIVE

    def fileno(self) -> int:
        return -1  # nothing to wait on: next_due_ns says when

    def next_due_ns(self) -> int:
        """When ``poll`` next has work (a message arriving, a session timer, a reconnect);
        ``1 << 62`` if never without new input."""
        if self._stale is not None:
            self._settle_timer()
            self._refresh_due()
        return self._due

    def poll(self, now_ns: int) -> Sequence:
        """Do everything due by ``now_ns`` in time order; return our session's events (a list;
        the empty tuple when nothing was due)."""
        if now_ns < self._due:  # exact, or a lower bound: nothing is due before it
            return _NO_EVENTS
        return self._run(now_ns)

    def fail(self, why: str, now_ns: int) -> list:
        """Our end failed on its input (an engine bug met by what the venue sent): drop the
        connection as the venue would see a broken one, and reconnect later."""
        events: list = []
        if self._stale is not None:
            self._settle_timer()
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
            if self._md_due < t:
                t, what = self._md_due, 4
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
                if self._stale is not None:  # a lower bound came due: is a timer?
                    self._settle_timer()
                    if self._timer > t:
                        continue
                self._tick(t, events)
            elif what == 3:
                self._connect(t)
            else:
                self._md_step(t)
            if (what < 2 or what == 4) and (self.session.state is _ACTIVE
                                            and self._acceptor.state is _ACTIVE):
                self._stale = t  # the deadlines moved later, if at all: a lower bound
            else:
                self._timer = self._next_timer(t)
                self._stale = None
        if self._stale is not None:
            self._settle_timer()
        self._refresh_due()
        return events

    def _settle_timer(self) -> None:
        """Make ``_timer`` exact again (``_stale``)."""
        self._timer = self._next_timer(self._stale)
        self._stale = None

    def _refresh_due(self) -> None:
        due = self._timer
        if self._reconnect < due:
            due = self._reconnect
        if self._md_due < due:
            due = self._md_due
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
                 venue_index: int = 0, queue_model: str = "risk_averse") -> None:
        """``queue_model``: how a resting order of ours fills (``QUEUE_MODELS``; module
        docstring, "Fill model")."""
        if not 0 <= latency_ns <= MAX_LATENCY_NS:
            raise ValueError(f"latency_ns must be 0..{MAX_LATENCY_NS} (the sessions accept "
                             f"SendingTime {MAX_LATENCY_NS // 10**9} s off), was {latency_ns}")
        if queue_model not in QUEUE_MODELS:
            raise ValueError(f"queue_model must be one of {', '.join(QUEUE_MODELS)}, was "
                             f"{queue_model!r}")
        self.name = name
        self.symbols = frozenset(i.symbol for i in instruments)
        self.latency_ns = int(latency_ns)
        #: the recorded market of this venue: ``books`` row ``venue_index`` (None: no one else)
        self.books = books
        self.venue_index = venue_index
        self.queue_model = queue_model
        self._queued = queue_model != "none"  # resting orders keep a queue position
        self._prob = queue_model == "prob"
        if self._queued:
            _warm_up()
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
             "sent_late", "pending_dropped", "md_dropped", "errors", "queue_fills",
             "through_fills", "trades_read"), 0)
        self._index = {i.symbol.encode(): k for k, i in enumerate(instruments)}
        self._mirrors: list[_Mirror | None] = [None] * len(instruments)
        self._queues: list[_Queue | None] = [None] * len(instruments)
        self._tape: _TradeTape | None = None  # made when an order of ours first rests
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
        self._xt: ExchangeTimeBooks | None = None  # market-data latency: use_exchange_time

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
        if self._acceptor.state is _ACTIVE:
            self._stale = now_ns  # our write only pushes our heartbeat later (_stale)
        else:
            self._timer = self._next_timer(now_ns)
            self._stale = None
            self._refresh_due()
        return seq

    def use_exchange_time(self, view: ExchangeTimeBooks) -> None:
        """Market-data latency: the exchange mirrors ``view`` (its books row
        ``view.venue_index``: the recorded market at its exchange times), not the books the
        engine reads; the engine's market moves no longer reach it (module docstring)."""
        self._xt = view
        self.books = view.books
        self.venue_index = view.venue_index
        self._md_refresh()
        self._due = min(self._due, self._md_due)

    def add_exchange_records(self, records) -> None:
        """More recorded market for the exchange-time books (``use_exchange_time``): a day's
        records as the replay loads it."""
        self._xt.add(records)
        self._md_refresh()
        self._due = min(self._due, self._md_due)  # an early poll only finds nothing due

    def on_market(self, instruments: Iterable[int], now_ns: int) -> None:
        """The recorded books of these instrument indexes moved: re-mirror those with our
        orders live (a resting order the market now reaches fills). With market-data latency
        (``use_exchange_time``) the engine's books are not the exchange's: its own books are
        brought up to ``now_ns`` instead."""
        if self._xt is not None:
            self._md_step(now_ns)
            self._refresh_due()
            return
        self._market_moved(instruments, now_ns)

    def _market_moved(self, instruments: Iterable[int], now_ns: int) -> None:
        working, forgetting = self._working, self._forgetting
        if not (working or forgetting) or self.books is None or self._closed:
            return
        changed = instruments.tolist() if hasattr(instruments, "tolist") else instruments
        synced = False
        tape = self._tape
        if tape is not None and tape.n:
            synced = self._read_tape(now_ns)
        lazy = self._queued
        for i in changed:
            if i in working:
                synced = True
                try:
                    self._sync(i, now_ns, lazy=lazy)
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
            self._stale = None
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
        self._stale = None

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
        if self._xt is not None:
            self._md_refresh()

    def _md_step(self, t: int) -> None:
        """Bring the exchange-time books up to ``t``; the venue sees what moved."""
        if not self._closed:
            changed = self._xt.advance(t)
            if len(changed):
                self._market_moved(changed, t)
        self._md_refresh()

    def _md_refresh(self) -> None:
        """Ask for a step at the exchange-time books' next record while that can fill one
        of ours or forget a used size (else they wait for our next order message)."""
        self._md_due = (self._xt.due_ns if (self._working or self._forgetting)
                        and not self._closed else NEVER)

    def _handle_app(self, m, t: int) -> None:
        x = self.exchange
        i = None
        try:
            if self.books is not None and m.msg_type in _ORDER_MSGS:
                if self._xt is not None:
                    self._md_step(t)  # the market as the exchange has it when this arrives
                i = self._index.get(m.get(55))
                if self._tape is not None and self._tape.n:
                    self._read_tape(t)  # trades before this message count before it
                if i is not None:
                    mt = m.msg_type
                    if mt == _NEW_ORDER and (self._queued or i not in self._working):
                        # nothing but this order can take from the mirror now (none of ours
                        # is live, or a queue model keeps the recorded market off ours):
                        # the side it takes, as deep as its quantity and price reach
                        side = _TAKES.get(m.get(54))
                        qty = m.get(38)
                        need = int(qty) if qty is not None and qty.isdigit() else None
                        self._sync(i, t, side, need, limit=self._limit(i, m))
                    elif mt == _CANCEL and self._queued:
                        self._sync(i, t, lazy=True)  # it takes nothing: only the queue's look
                    else:
                        self._sync(i, t)
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
        for i, q in enumerate(self._queues):
            if q is not None:
                self._unwatch(i)

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
    def _limit(self, i: int, m) -> int | None:
        """A new order's limit price in ticks (None: a market order, or not readable: the
        exchange will say why)."""
        px = m.get(44)
        if px is None:
            return None
        try:
            return round(float(px) / self.exchange.books[i].tick)
        except ValueError:
            return None

    def _sync(self, i: int, t: int, side: int | None = None, need: int | None = None,
              lazy: bool = False, limit: int | None = None) -> None:
        """Make the exchange's background orders of instrument ``i`` show the venue's recorded
        book now (module docstring, "Fill model"). For a new order of ours that alone can
        take from it (module docstring, "When"): ``side``, only the side it trades against
        (the other loses just the levels that would cross it); ``need``, only as deep as
        its quantity reaches, and ``limit``, its price (ticks). ``lazy`` (a market move, a
        queue model): look at the book for our resting orders and forget the used sizes at
        prices that left, but leave the background orders as they are until our next order
        message about ``i`` needs them (nothing else trades with them)."""
        raw = self.books.book[self.venue_index, i].tolist()  # [side][level] = [price, size]
        mirror = self._mirrors[i]
        if mirror is None or len(mirror.empty[BID]) != len(raw[BID]):
            mirror = self._new_mirror(i, len(raw[BID]))
        if lazy:
            looked = (self.books.state.item(self.venue_index, i), raw)
            if looked == mirror.looked:
                return  # this venue's book did not move (another venue's did): no news
            mirror.looked = looked
        else:
            mirror.looked = None
        rows = self._shown(i, raw, mirror)
        self.counters["syncs"] += 1
        q = self._queues[i]
        if q is not None:
            self._look(i, q, raw, rows, mirror, t)
            if not q.orders:
                self._unwatch(i)
        self._forgetting.discard(i)
        if lazy:
            for s in _SIDES:
                used = mirror.used[s]
                if used:
                    _forget(used, {p: d for p, d in rows[s] if d > 0 and p > 0})
        elif side is not None or mirror.short or rows != mirror.rows:  # else it shows the book
            self._remirror(mirror, rows, t, side, need, limit)
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
                  need: int | None, limit: int | None = None) -> None:
        """Cancel every level whose price left the book or whose size changed or was taken
        from (``side``: on that side only, and on the other the levels crossing it); then
        submit what is to be shown, bids then asks, best first (a level crossing one of our
        resting orders shows only what our orders have not used there; ``need``: no level
        past the one where the displayed size reaches it, nor past ``limit``)."""
        if (side is not None and limit is not None and not mirror.count and not mirror.hidden
                and not (mirror.levels[BID] or mirror.levels[ASK] or mirror.used[BID]
                         or mirror.used[ASK])):
            # the usual passive quote with an empty mirror: if the side's best level does not
            # reach its price, nothing is shown and nothing is to cancel (the loop below would
            # come to the same)
            for p, d in rows[side]:
                if d > 0 and p > 0:
                    if p > limit if side == ASK else p < limit:
                        need = 0
                    break
            else:
                need = 0
            if need is not None and need <= 0:
                mirror.rows = None
                mirror.short = 0
                return
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
                    if need is not None and (need <= 0 or limit is not None and (
                            p > limit if s == ASK else p < limit)):
                        continue  # deeper than the order reaches: not shown this time
                    e = [d, None, 0]
                    todo.append((s, p, e))
                new[p] = e
                if need is not None:
                    need -= d - used.get(p, 0)  # what our orders used may not be shown
            levels[s] = new
        mirror.rows = rows if side is None else None  # one side shown: look again next time
        short = 0
        engine = book.engine
        queued = self._queued
        outside: tuple[list, list] = ([], [])  # per side: levels kept out (queue models)
        was_hidden = mirror.hidden
        hidden = mirror.hidden = []
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
            if crosses and queued:  # no touch fill: kept out, for our new orders to take
                short += 1
                if size > 0:
                    x_e = [p, size]
                    outside[s].append(x_e)
                    hidden.append((s, p, d, x_e, size))
                continue
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
        if hidden or was_hidden:
            engine.set_outside(Side.SELL, outside[BID])
            engine.set_outside(Side.BUY, outside[ASK])

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

    def _settle_outside(self, mirror: _Mirror) -> None:
        """Our order may have taken levels kept out of the book (queue models): count what it
        took as used at their prices."""
        hidden = []
        for s, p, d, x_e, n in mirror.hidden:
            left = x_e[1]
            if left != n:
                used = mirror.used[s]
                used[p] = min(used.get(p, 0) + n - left, d)
            hidden.append((s, p, d, x_e, left))
        mirror.hidden = hidden

    def _after_order(self, i: int, taken: bool) -> None:
        """Our order message about instrument ``i`` was handled: ``i`` is working while an
        order of ours is live there; once none is, the used sizes are still checked against
        the next market move (as a sync would)."""
        mirror = self._mirrors[i]
        if mirror is None:
            self._working.add(i)
            return
        mirror.looked = None  # our orders changed: the next look may find something
        if taken:
            self._settle(mirror)
        if mirror.hidden:
            self._settle_outside(mirror)
        if self._queued and (self._queues[i] is not None
                             or len(mirror.book.engine) != mirror.count):
            self._track(i)  # else none of ours was or is resting there
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
        book.engine.set_outside(Side.BUY, [])
        book.engine.set_outside(Side.SELL, [])
        return mirror

    # -- QUEUE POSITION --------------------------------------------------------------------------
    def _track(self, i: int) -> None:
        """An order message about instrument ``i`` was handled: queue each resting order of
        ours that is new there, or lost its place (a replace to another price or a larger
        quantity), at the back of its price (the recorded size there is ahead of it); forget
        those no longer live."""
        book = self.exchange.books[i]
        q = self._queues[i]
        clients = book.clients  # ours: the only client of this exchange
        if not clients and q is None:
            return
        live = [(oid, BID if o.side_b == b"1" else ASK, o.price, o.qty, o.leaves)
                for oid, o in clients.items()]
        known = q.orders if q is not None else {}
        if len(live) > 1 and sum(1 for e in live if _moved(known.get(e[0]), e)) > 1:
            live = self._by_priority(book.engine)  # queue the new ones in time priority
        if q is None:
            q = self._queues[i] = _Queue()
            self._raw_best(q, self.books.book[self.venue_index, i].tolist())
        raw = None
        seen = set()
        for oid, s, price, qty, leaves in live:
            seen.add(oid)
            e = q.orders.get(oid)
            if e is not None:
                if e[_SIDE] == s and e[_PX] == price and qty <= e[_QTY]:  # kept its place
                    e[_QTY] = qty
                    e[_LEAVES] = leaves
                    continue
                self._unqueue(q, e)
            if raw is None:
                raw = self.books.book[self.venue_index, i].tolist()
            d = _size_at(raw[s], price)
            e = [oid, s, price, qty, leaves, d]
            q.orders[oid] = e
            q.levels[s].setdefault(price, []).append(e)
            q.prev[s].setdefault(price, d)
        for oid in [oid for oid in q.orders if oid not in seen]:
            self._unqueue(q, q.orders[oid])
        if q.orders:
            tape = self._tape
            if tape is None or tape.books is not self.books:
                if tape is not None and tape in tape.books.taps:  # the books were replaced
                    tape.books.taps.remove(tape)
                tape = self._tape = _TradeTape(self.books, self.venue_index)
            tape.set(i, True)
        else:
            self._unwatch(i)

    @staticmethod
    def _by_priority(engine) -> list:
        """Our live orders of a book, each side in time priority (``_track``'s shape)."""
        live = []
        for s in _SIDES:
            for oid, owner, price, qty, leaves, _cum in engine.book_orders(_ENGINE_SIDE[s]):
                if owner is not BACKGROUND:
                    live.append((oid, s, price, qty, leaves))
        return live

    def _unwatch(self, i: int) -> None:
        """None of ours rests on ``i`` any more: no queue, its trades are not needed."""
        self._queues[i] = None
        if self._tape is not None:
            self._tape.set(i, False)

    def _unqueue(self, q: _Queue, e: list) -> None:
        del q.orders[e[_OID]]
        s, p = e[_SIDE], e[_PX]
        at = q.levels[s][p]
        at.remove(e)
        if not at:
            del q.levels[s][p]
            q.prev[s].pop(p, None)
            q.traded[s].pop(p, None)

    def _fill(self, i: int, q: _Queue, e: list, n: int, t: int) -> int:
        """The recorded market trades ``n`` of our order ``e`` at its price."""
        got = self.exchange.fill_from_background(self.exchange.books[i], e[_OID], n, t)
        e[_LEAVES] -= got
        if got < n or e[_LEAVES] <= 0:  # filled, or no longer live
            self._unqueue(q, e)
        return got

    def _fill_through(self, i: int, q: _Queue, s: int, through, t: int) -> None:
        """Fill in full each order of ours on side ``s`` priced better than ``through`` (for
        a bid, above it): the market went through them."""
        levels = q.levels[s]
        for p in [p for p in levels if (p > through if s == BID else p < through)]:
            for e in list(levels.get(p, ())):
                if self._fill(i, q, e, e[_LEAVES], t):
                    self.counters["through_fills"] += 1

    def _read_tape(self, t: int) -> bool:
        """Apply the trades the tape kept to the queues of their instruments; True if any of
        our orders filled."""
        fills = self.counters["queue_fills"] + self.counters["through_fills"]
        queues = self._queues
        rows = self._tape.take()
        self.counters["trades_read"] += len(rows)
        for i, px, size, aggressor in rows:
            q = queues[i]
            if q is None or size <= 0 or px <= 0:  # a record the books refused
                continue
            try:
                self._trade(i, q, px, size, aggressor, t)
                if not q.orders:
                    self._unwatch(i)
            except Exception:
                self._fail_sync(i)
        return self.counters["queue_fills"] + self.counters["through_fills"] != fills

    def _trade(self, i: int, q: _Queue, px: int, size: int, aggressor: int, t: int) -> None:
        """The recorded market traded ``size`` at ``px``: sellers reach our bids, buyers our
        asks (an unknown aggressor: whichever side the price was not on at the last look).
        Orders priced through ``px`` fill in full; at ``px`` the volume goes to the queue,
        front first: what is ahead of an order, then the order (module docstring)."""
        hit_bids = aggressor == SELL or (aggressor != BUY and (not q.ask or px < q.ask))
        hit_asks = aggressor == BUY or (aggressor != SELL and (not q.bid or px > q.bid))
        for s in _SIDES:
            if not (hit_bids if s == BID else hit_asks) or not q.levels[s]:
                continue
            self._fill_through(i, q, s, px, t)
            at = q.levels[s].get(px)
            if not at:
                continue
            if self._prob:
                traded = q.traded[s]
                traded[px] = traded.get(px, 0) + size
            ours = 0  # what our orders ahead took of this trade: it passed no one else
            for e in list(at):
                vol = size - ours
                if vol <= 0:
                    break
                ahead = e[_AHEAD]
                if vol <= ahead:
                    e[_AHEAD] = ahead - vol
                    continue
                e[_AHEAD] = 0
                n = min(e[_LEAVES], vol - ahead)
                got = self._fill(i, q, e, n, t)
                if got:
                    self.counters["queue_fills"] += 1
                ours += got

    def _look(self, i: int, q: _Queue, raw: list, shown: list, mirror: _Mirror, t: int) -> None:
        """The recorded book of ``i`` as it now is (``raw``; ``shown``: what the mirror may
        show): fill in full our orders that the best opposite level with size our orders have
        not used is strictly through; then, at each of our prices whose recorded size changed,
        move the volume ahead of our orders (risk-averse: down to that size; "prob": also by
        the expected share ahead of a decrease no trade explains)."""
        if shown is mirror.empty:  # halted, rebuilding or crossed: no liquidity, no news
            return
        bids, asks = q.levels
        if bids:
            ours = max(bids)
            used = mirror.used[ASK]
            for p, d in shown[ASK]:  # best first: only levels below our best bid matter
                if p >= ours:
                    break
                if d > 0 and p > 0 and d > used.get(p, 0):
                    self._fill_through(i, q, BID, p, t)
                    break
        if asks:
            ours = min(asks)
            used = mirror.used[BID]
            for p, d in shown[BID]:
                if p <= ours:
                    break
                if d > 0 and d > used.get(p, 0):
                    self._fill_through(i, q, ASK, p, t)
                    break
        prob = self._prob
        for s in _SIDES:
            levels = q.levels[s]
            if not levels:
                continue
            prev, side = q.prev[s], raw[s]
            for p, at in levels.items():
                d = _size_at(side, p)
                was = prev.get(p, d)
                if d == was:  # no news at p: ahead <= d holds; "prob" keeps its trades
                    continue
                prev[p] = d
                if prob:
                    gone = q.traded[s].pop(p, 0)
                    chg = was - d - gone  # the decrease no trade explains
                    for e in at:
                        e[_AHEAD] = _prob_ahead(e[_AHEAD], was - gone, chg, d)
                else:
                    for e in at:
                        if e[_AHEAD] > d:
                            e[_AHEAD] = d
        self._raw_best(q, raw)

    @staticmethod
    def _raw_best(q: _Queue, raw: list) -> None:
        """Keep the recorded best prices (they tell the side of a trade with no aggressor)."""
        bid, ask = raw[BID][0], raw[ASK][0]
        q.bid = bid[0] if bid[1] > 0 else 0
        q.ask = ask[0] if ask[1] > 0 else 0

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
        self._stale = None

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


def _moved(e: list | None, live: tuple) -> bool:
    """Whether ``_track`` queues ``live`` (oid, side, price, qty, leaves) anew: new, or its
    queue entry ``e`` lost its place (another side or price, a larger quantity)."""
    return e is None or e[_SIDE] != live[1] or e[_PX] != live[2] or live[3] > e[_QTY]


def _size_at(levels: list, price: int) -> int:
    """The recorded size at ``price`` in one side's ``[[price, size], ...]`` (0: none)."""
    for p, d in levels:
        if p == price:
            return d if d > 0 else 0
    return 0


def _prob_ahead(front: int, level: int, chg: int, d: int) -> int:
    """The "prob" model: the volume ahead of an order after its level, ``level`` after the
    trades since the last look, lost ``chg`` that no trade explains and now shows ``d``.
    hftbacktest's ProbQueueModel with f(x) = x³, as its expected value: the share of the
    decrease that was ahead is f(front) / (f(front) + f(back)), back = ``level - front``;
    rounded to the nearest unit, never more than ``d``."""
    if chg <= 0 or front <= 0:  # an increase, or nothing ahead: only the size can clamp it
        return front if front <= d else d
    back = level - front
    if back < 0:
        back = 0
    fb = float(back) ** _PROB_POWER
    ff = float(front) ** _PROB_POWER
    p_back = fb / (fb + ff)  # the probability that the decrease was behind us
    est = front - (1.0 - p_back) * chg + min(back - p_back * chg, 0.0)
    ahead = int(est + 0.5) if est > 0 else 0
    return ahead if ahead <= d else d


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
