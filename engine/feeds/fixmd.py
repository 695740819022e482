"""FIX 4.4 market data subscriptions of one venue session and their RptSeq checks, sans-IO.

``FixMdSubscriptions`` builds the MarketDataRequests (35=V) to send and checks the sequence of
the snapshots (35=W), incrementals (35=X) and rejects (35=Y) the venue answers with: which
symbol is in sequence (good) and which is stale, and which needs a new snapshot. It keeps no
book: the engine's one book per venue and instrument is ``engine.book.books.BookSet``, built
from the same messages by ``engine.feeds.normalize.FixMdNormalizer`` (see
``engine.feeds.sources.FixMdSource``). It owns no socket, no session and no clock: the caller
sends what it returns through the venue's ``FixSession`` and feeds it every market data message
that session delivers::

    md = FixMdSubscriptions("SIMA", ["AAA", "BBB"], depth=10)
    # on LoggedOn:
    for msg_type, body in md.subscribe():
        session.send(msg_type, body, now_ns)
    # on each AppMessage m:
    changed = md.on_message(m, now_ns)       # symbols it applied entries of, or made stale/good
    for msg_type, body in md.take_requests():  # re-subscriptions after a gap
        session.send(msg_type, body, now_ns)
    # on the connection's end (the venue ends our subscriptions with it):
    md.connection_lost()

The venue side is ``engine.venue.exchange`` (its docstring has the message layouts).

Theory of operation
-------------------
One subscription per symbol (263=1, 265=1 incremental, 264=depth, entry types bid, offer and,
if asked, trade), each with its own MDReqID ``<prefix>.<venue>.<symbol>.<n>``: a symbol can
then be refreshed without touching the others. The venue numbers the entries of each
subscription's symbol with RptSeq (83): the snapshot says which RptSeq it covers, and every
incremental entry after it carries the next number. So, per symbol:

- a snapshot of the live request sets the expected RptSeq and makes the symbol good;
- an entry with the expected RptSeq is applied: checked against the book's shape (below);
- an entry with an RptSeq already seen is a duplicate (a resend, say): dropped, counted;
- an entry with a higher RptSeq means entries were lost: a *gap*. The symbol goes stale and
  a refresh is queued (``take_requests``): an unsubscribe of the request and a new
  subscription, whose snapshot makes the symbol good again. Until then the symbol's updates
  are dropped (and counted): its snapshot covers them.
- a message of a request that was ended (an old MDReqID) is dropped and counted.

What is kept to check an entry
------------------------------
Levels are positional (MDPriceLevel, 1 = best), so an entry is only right if it fits the book
the venue is describing: a Change or Delete must name a level we hold, at the price we hold
there; a New must go at most one below the last level and between its neighbours' prices. For
that, each symbol keeps the *prices* of the levels it holds on each side, best first, at most
``depth`` of them (their count is the level count); no sizes, no trade: those are checked as
numbers and left to the book. An entry at a level deeper than ``depth`` concerns a level we
do not hold: once its numbers are sane, it is accepted with nothing more to check.

Input that cannot be applied is never raised: a price or size that is not a finite positive
number, an unknown symbol, a missing RptSeq or MDPriceLevel, a level that does not fit the
book (a Change below the last level, a New out of price order) is counted (``counters``), its
reason kept in ``last_problem``, and, since the book now misses something the venue sent, the
symbol goes stale and is refreshed. Automatic refreshes are capped at ``MAX_AUTO_REFRESH`` in a
row without a good snapshot, so a venue sending nonsense cannot make us loop; the symbol then
stays stale until the caller subscribes again. A reject (35=Y) ends the request: the symbol
stays stale, its reason in ``reason(symbol)``.

``stale(symbol)`` is True until its first snapshot, after a gap or bad entry until the next
one, after a reject, an unsubscribe and ``connection_lost``: then the venue's book of that
symbol may not be what the messages built.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from engine.fix.codec import FixFieldError, FixMessage
from engine.fix.tags import MDUpdateAction, MsgType, Tag

__all__ = ["MAX_AUTO_REFRESH", "MD_DOWN", "MD_MESSAGE", "MD_STALE", "FixMdSubscriptions",
           "MdRequest"]

#: What a venue session hands the market-data stage, as (kind, payload, recv_ns): a message its
#: subscriptions accepted (to normalize into the books), the symbols whose books lost
#: something (stale until their fresh snapshot), or the session dropping (payload None).
MD_MESSAGE, MD_STALE, MD_DOWN = 0, 1, 2

#: ``(MsgType, body)``: a message for the caller to hand to ``FixSession.send``.
MdRequest = tuple[bytes, list]

#: Automatic refreshes of one symbol in a row without a good snapshot in between.
MAX_AUTO_REFRESH = 3

_W = MsgType.MarketDataSnapshotFullRefresh
_X = MsgType.MarketDataIncrementalRefresh
_Y = MsgType.MarketDataRequestReject
_NEW, _CHANGE, _DELETE = MDUpdateAction.New, MDUpdateAction.Change, MDUpdateAction.Delete
_BID, _OFFER, _TRADE = b"0", b"1", b"2"
_COUNTERS = ("snapshots", "incrementals", "entries", "gaps", "duplicates", "stale_dropped",
             "bad_messages", "bad_entries", "unknown_symbols", "rejects", "refreshes", "ignored")


class _Symbol:
    """What we know of one symbol's stream."""

    __slots__ = ("auto_refreshes", "awaiting", "levels", "reason", "req_id", "rpt_seq", "stale",
                 "symbol", "symbol_b")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.symbol_b = symbol.encode()
        #: the prices of the levels held, best first, at most ``depth``: bids, offers
        self.levels: tuple[list[float], list[float]] = ([], [])
        self.req_id: bytes | None = None  # the live request (None: not subscribed)
        self.awaiting = False  # its snapshot has not come yet
        self.stale = True
        self.rpt_seq = 0  # RptSeq of the last entry applied
        self.auto_refreshes = 0
        self.reason: str | None = "not subscribed"


class FixMdSubscriptions:
    """One venue session's market data subscriptions and their RptSeq checks (module
    docstring)."""

    def __init__(self, venue: str, symbols: Iterable[str], *, depth: int = 10,
                 trades: bool = True, req_prefix: str = "md") -> None:
        if not 1 <= depth <= 100:
            raise ValueError(f"depth must be 1..100, was {depth}")
        self.venue = venue
        self.depth = depth
        self.trades = trades
        self._prefix = f"{req_prefix}.{venue}."
        self._syms = {s: _Symbol(s) for s in symbols}
        self._by_symbol_b = {s.symbol_b: s for s in self._syms.values()}
        self._by_req: dict[bytes, _Symbol] = {}  # live MDReqID -> its symbol
        self._next_req = 0
        self._requests: list[MdRequest] = []
        #: the feed's symbols, in the order given: what ``subscribe()`` asks for
        self.symbols: tuple[str, ...] = tuple(self._syms)
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        #: the reason of the last input that was dropped or could not be applied
        self.last_problem: str | None = None

    # -- REQUESTS --------------------------------------------------------------------------------
    def subscribe(self, symbols: Iterable[str] | None = None) -> list[MdRequest]:
        """MarketDataRequests (263=1) for ``symbols`` (default: all), one per symbol; a symbol
        already subscribed is unsubscribed first. It is stale until the snapshot."""
        out: list[MdRequest] = []
        for s in self._pick(symbols):
            s.auto_refreshes = 0
            out += self._resubscribe(s)
        return out

    def unsubscribe(self, symbols: Iterable[str] | None = None) -> list[MdRequest]:
        """MarketDataRequests (263=2) ending the subscriptions of ``symbols`` (default: all)."""
        out: list[MdRequest] = []
        for s in self._pick(symbols):
            if s.req_id is not None:
                out.append(self._end(s))
            s.awaiting = False
            self._go_stale(s, "unsubscribed")
        return out

    def take_requests(self) -> list[MdRequest]:
        """The refreshes ``on_message`` decided on (after a gap or a bad entry), to send now."""
        out, self._requests = self._requests, []
        return out

    def connection_lost(self) -> None:
        """The session's connection ended: the venue ended our subscriptions with it. Every
        symbol is stale until ``subscribe`` (after the next Logon) brings new snapshots."""
        self._by_req.clear()
        self._requests.clear()
        for s in self._syms.values():
            s.req_id = None
            s.awaiting = False
            s.auto_refreshes = 0
            self._go_stale(s, "connection lost")

    def refresh(self, symbol: str, why: str) -> list[str]:
        """Take a fresh snapshot of ``symbol`` (the caller could not use what came): stale
        until it arrives; counted and capped as the automatic refreshes are."""
        s = self._syms.get(symbol)
        return [] if s is None else self._lost(s, why)

    # -- STATE -----------------------------------------------------------------------------------
    def stale(self, symbol: str) -> bool:
        """True when the venue's book of ``symbol`` may not be what its messages built (no
        snapshot yet, entries lost or unusable since, rejected, ended), or ``symbol`` is not
        ours."""
        s = self._syms.get(symbol)
        return True if s is None else s.stale

    def reason(self, symbol: str) -> str | None:
        """Why ``symbol`` is stale (None when it is not)."""
        s = self._syms.get(symbol)
        return f"{symbol!r} is not a symbol of this feed" if s is None else s.reason

    # -- MESSAGES IN -----------------------------------------------------------------------------
    def on_message(self, m: FixMessage, ts_ns: int = 0) -> list[str]:
        """Check one application message of the venue session; return the symbols it applied
        entries of or whose staleness it changed. Other message types are ignored (counted).
        Never raises on bad input: see the module docstring. ``ts_ns`` (the receive time) is
        accepted for the callers' sake; nothing here depends on time."""
        if not isinstance(m, FixMessage):
            self._problem("bad_messages", f"not a FixMessage: {type(m).__name__}")
            return []
        mt = m.msg_type
        if mt == _X:
            return self._on_incremental(m)
        if mt == _W:
            return self._on_snapshot(m)
        if mt == _Y:
            return self._on_reject(m)
        self.counters["ignored"] += 1
        return []

    def _on_snapshot(self, m: FixMessage) -> list[str]:
        req_id = m.get(Tag.MDReqID)
        s = self._by_req.get(req_id) if req_id is not None else None
        if s is None:
            self.counters["stale_dropped"] += 1
            return []
        sym_b = m.get(Tag.Symbol)
        if sym_b != s.symbol_b:
            return self._bad_snapshot(s, "bad_messages", f"snapshot for MDReqID {_show(req_id)} "
                                                         f"names Symbol(55) {_show(sym_b)}")
        rpt = _count(m.get(Tag.RptSeq))
        if rpt is None:
            return self._bad_snapshot(s, "bad_messages", f"snapshot's RptSeq(83) is "
                                                         f"{_show(m.get(Tag.RptSeq))}")
        if not s.awaiting and rpt < s.rpt_seq:  # an old snapshot again (a resend)
            self.counters["duplicates"] += 1
            return []
        try:
            entries = m.groups(Tag.NoMDEntries)
        except FixFieldError as e:
            return self._bad_snapshot(s, "bad_messages", f"snapshot: {e.reason}")
        sides: tuple[list, list] = ([], [])
        for e in entries:
            t = e.get(Tag.MDEntryType)
            if t not in (_BID, _OFFER, _TRADE):
                self.counters["ignored"] += 1
                continue
            px, sz = _positive(e.get(Tag.MDEntryPx)), _positive(e.get(Tag.MDEntrySize))
            if px is None or sz is None:
                bad = Tag.MDEntryPx if px is None else Tag.MDEntrySize
                return self._bad_snapshot(s, "bad_entries", f"snapshot entry {_entry(e)}: "
                                          f"{_field(e, bad)} is not a positive number")
            if t == _TRADE:
                continue
            raw_level = e.get(Tag.MDPriceLevel)
            level = 0 if raw_level is None else _count(raw_level)
            sides[t == _OFFER].append((-1 if level is None else level, px))
        for side, levels in enumerate(sides):
            levels.sort(key=lambda x: x[0])  # stable: no MDPriceLevel keeps wire order
            if any(lv != i for i, (lv, _) in enumerate(levels, 1)) and \
                    any(lv for lv, _ in levels):
                return self._bad_snapshot(s, "bad_entries", f"snapshot's {_SIDE[side]} levels "
                                          f"are not 1..{len(levels)}")
            pxs = [px for _, px in levels]
            if any((b - a) * (1 if side else -1) <= 0 for a, b in pairwise(pxs)):
                return self._bad_snapshot(s, "bad_entries", f"snapshot's {_SIDE[side]} prices "
                                          f"are out of order: {pxs[:8]}")
        for side, levels in enumerate(sides):
            s.levels[side][:] = [px for _, px in levels[:self.depth]]
        s.rpt_seq = rpt
        s.awaiting = s.stale = False
        s.reason = None
        s.auto_refreshes = 0
        self.counters["snapshots"] += 1
        return [s.symbol]

    def _on_incremental(self, m: FixMessage) -> list[str]:
        req_id = m.get(Tag.MDReqID)
        of_req = None
        if req_id is not None:
            of_req = self._by_req.get(req_id)
            if of_req is None:  # an update of a request we ended: its snapshot replaced it
                self.counters["stale_dropped"] += 1
                return []
        self.counters["incrementals"] += 1
        try:
            entries = m.groups(Tag.NoMDEntries)
        except FixFieldError as e:
            self._problem("bad_messages", f"incremental {m.seq}: {e.reason}")
            if of_req is not None:  # its entries are lost to us
                return self._lost(of_req, f"unreadable incremental: {e.reason}")
            return []
        changed: list[str] = []
        for e in entries:
            sym_b = e.get(Tag.Symbol)
            s = of_req if sym_b is None else self._by_symbol_b.get(sym_b)
            if s is None or (of_req is not None and s is not of_req):
                self._problem("unknown_symbols", f"incremental entry for Symbol(55) "
                                                 f"{_show(sym_b)}, which "
                                                 + ("is not ours" if s is None else
                                                    f"MDReqID {_show(req_id)} is not for"))
                continue
            if s.stale:  # only a snapshot can make it good: the coming one covers this
                self.counters["stale_dropped"] += 1
                continue
            rpt = _count(e.get(Tag.RptSeq))
            if rpt is None:
                self.counters["bad_entries"] += 1
                _add(changed, self._lost(s, f"entry {_entry(e)}: RptSeq(83) is "
                                            f"{_show(e.get(Tag.RptSeq))}"))
                continue
            if rpt <= s.rpt_seq:
                self.counters["duplicates"] += 1
                continue
            if rpt != s.rpt_seq + 1:
                self.counters["gaps"] += 1
                _add(changed, self._lost(s, f"gap: RptSeq {rpt} after {s.rpt_seq}"))
                continue
            s.rpt_seq = rpt
            why = self._apply(s, e)
            if why is not None:
                self.counters["bad_entries"] += 1
                _add(changed, self._lost(s, f"entry {_entry(e)}: {why}"))
                continue
            self.counters["entries"] += 1
            if s.symbol not in changed:
                changed.append(s.symbol)
        return changed

    def _apply(self, s: _Symbol, e: dict[int, bytes]) -> str | None:
        """Check one in-sequence entry against ``s``'s levels and apply it to their prices, or
        say why it does not fit."""
        t = e.get(Tag.MDEntryType)
        if t == _TRADE:
            px, sz = _positive(e.get(Tag.MDEntryPx)), _positive(e.get(Tag.MDEntrySize))
            if px is None or sz is None:
                return f"{_field(e, Tag.MDEntryPx if px is None else Tag.MDEntrySize)} " \
                       f"is not a positive number"
            return None
        if t == _BID:
            px_l, better = s.levels[0], 1.0
        elif t == _OFFER:
            px_l, better = s.levels[1], -1.0
        else:  # an entry type we did not ask for: it took its RptSeq, nothing else
            self.counters["ignored"] += 1
            return None
        action = e.get(Tag.MDUpdateAction)
        if action != _NEW and action != _CHANGE and action != _DELETE:
            return f"MDUpdateAction(279) must be 0 (new), 1 (change) or 2 (delete), was " \
                   f"{_show(action)}"
        level = _count(e.get(Tag.MDPriceLevel))
        if level is None or level < 1:
            return f"{_field(e, Tag.MDPriceLevel)} is not a level (1 = best)"
        raw_px = e.get(Tag.MDEntryPx)
        px = _positive(raw_px)
        if px is None and (raw_px is not None or action != _DELETE):
            return f"{_field(e, Tag.MDEntryPx)} is not a positive number"
        n = len(px_l)
        depth = self.depth
        i = level - 1
        if action == _NEW:
            if _positive(e.get(Tag.MDEntrySize)) is None:
                return f"{_field(e, Tag.MDEntrySize)} is not a positive number"
            if level > depth:
                return None  # below what we hold
            if level > n + 1:
                return f"New at level {level}, but the book holds {n} levels"
            if (i and (px_l[i - 1] - px) * better <= 0) or (i < n and (px - px_l[i]) * better <= 0):
                return f"New at level {level} price {px:g} is out of price order"
            px_l.insert(i, px)
            if n == depth:
                px_l.pop()  # the last level falls off
            return None
        if level > n:
            return None if level > depth else \
                f"MDUpdateAction {_show(action)} at level {level}, but the book holds {n} levels"
        if px is not None and px != px_l[i]:
            return f"level {level} is at {px_l[i]:g}, the entry says {px:g}"
        if action == _CHANGE:
            if _positive(e.get(Tag.MDEntrySize)) is None:
                return f"{_field(e, Tag.MDEntrySize)} is not a positive number"
            return None
        del px_l[i]  # a delete
        return None

    def _on_reject(self, m: FixMessage) -> list[str]:
        req_id = m.get(Tag.MDReqID)
        text = (m.get(Tag.Text) or b"").decode("utf-8", "replace")
        code = (m.get(Tag.MDReqRejReason) or b"?").decode("ascii", "replace")
        s = self._by_req.pop(req_id, None) if req_id is not None else None
        self._problem("rejects", f"MarketDataRequest {_show(req_id)} rejected "
                                 f"(281={code}): {text}")
        if s is None:
            return []
        s.req_id = None
        s.awaiting = False
        return self._go_stale(s, f"rejected (281={code}): {text}")

    # -- INTERNALS -------------------------------------------------------------------------------
    def _pick(self, symbols: Iterable[str] | None) -> list[_Symbol]:
        if symbols is None:
            return list(self._syms.values())
        if isinstance(symbols, str):
            symbols = [symbols]
        picked = []
        for sym in symbols:
            s = self._syms.get(sym)
            if s is None:
                raise ValueError(f"{sym!r} is not a symbol of this feed "
                                 f"({', '.join(self._syms)})")
            picked.append(s)
        return picked

    def _resubscribe(self, s: _Symbol, why: str | None = None) -> list[MdRequest]:
        out = [self._end(s)] if s.req_id is not None else []
        self._next_req += 1
        s.req_id = f"{self._prefix}{s.symbol}.{self._next_req}".encode()
        self._by_req[s.req_id] = s
        s.awaiting = True
        self._go_stale(s, "awaiting a snapshot" if why is None else
                       f"{why} (awaiting a new snapshot)")
        out.append((MsgType.MarketDataRequest, self._request_body(s, b"1")))
        return out

    def _end(self, s: _Symbol) -> MdRequest:
        body = self._request_body(s, b"2")
        self._by_req.pop(s.req_id, None)
        s.req_id = None
        return (MsgType.MarketDataRequest, body)

    def _request_body(self, s: _Symbol, sub_type: bytes) -> list:
        types = [_BID, _OFFER, _TRADE] if self.trades else [_BID, _OFFER]
        body: list = [(Tag.MDReqID, s.req_id), (Tag.SubscriptionRequestType, sub_type),
                      (Tag.MarketDepth, self.depth), (Tag.MDUpdateType, b"1"),
                      (Tag.NoMDEntryTypes, len(types))]
        body += [(Tag.MDEntryType, t) for t in types]
        body += [(Tag.NoRelatedSym, 1), (Tag.Symbol, s.symbol_b)]
        return body

    def _lost(self, s: _Symbol, why: str) -> list[str]:
        """``s``'s stream missed something the venue sent: stale, and refresh it (capped)."""
        self.last_problem = f"{self.venue} {s.symbol}: {why}"
        changed = self._go_stale(s, why)
        if s.awaiting or s.req_id is None:
            return changed
        if s.auto_refreshes >= MAX_AUTO_REFRESH:
            s.reason = f"{why} (gave up after {MAX_AUTO_REFRESH} refreshes: subscribe again)"
            return changed
        s.auto_refreshes += 1
        self.counters["refreshes"] += 1
        self._requests += self._resubscribe(s, why)
        return changed

    def _bad_snapshot(self, s: _Symbol, counter: str, why: str) -> list[str]:
        self._problem(counter, f"{s.symbol}: {why}")
        s.awaiting = False  # this answer was it: ask again (capped)
        return self._lost(s, why)

    def _go_stale(self, s: _Symbol, why: str) -> list[str]:
        s.reason = why
        if s.stale:
            return []
        s.stale = True
        return [s.symbol]

    def _problem(self, counter: str, why: str) -> None:
        self.counters[counter] += 1
        self.last_problem = f"{self.venue}: {why}"



_SIDE = ("bid", "offer")


def _count(raw: bytes | None) -> int | None:
    """A non-negative integer field (RptSeq, MDPriceLevel), or None."""
    if raw is None or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def _positive(raw: bytes | None) -> float | None:
    """A price or size: a finite number above zero, or None (NaN, inf, 0, negative, text)."""
    if raw is None:
        return None
    try:
        x = float(raw)
    except ValueError:
        return None
    return x if 0.0 < x < float("inf") else None


def _add(changed: list[str], more: list[str]) -> None:
    for sym in more:
        if sym not in changed:
            changed.append(sym)


def _show(raw: bytes | None) -> str:
    return "<missing>" if raw is None else repr(raw[:40].decode("ascii", "replace"))


def _field(e: dict[int, bytes], tag: int) -> str:
    names = {Tag.MDEntryPx: "MDEntryPx(270)", Tag.MDEntrySize: "MDEntrySize(271)",
             Tag.MDPriceLevel: "MDPriceLevel(1023)"}
    return f"{names.get(tag, tag)} {_show(e.get(tag))}"


def _entry(e: dict[int, bytes]) -> str:
    return "|".join(f"{t}={v[:20].decode('ascii', 'replace')}" for t, v in e.items())
