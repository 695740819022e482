"""A passive market maker: a bid and an ask around the consolidated mid, skewed by inventory.

A ``[[strategies]]`` entry of ``kind = "marketmaker"`` (docs/strategies.md has every
parameter)::

    [[strategies]]
    name = "mm"
    kind = "marketmaker"
    venue = "SIMA"            # where it quotes (default: the profile's first venue)
    symbols = ["AAA"]         # default: every instrument the venue trades
    half_spread_ticks = 2
    size = 100
    max_position = 500
    skew_ticks_per_lot = 1.0

Quotes
------
For each instrument, on a sound consolidated book (two-sided, not crossed, not locked, not
stale: ``BookSet.bbo`` flags) with mid ``m`` in ticks and position ``q``::

    skew   = skew_ticks_per_lot * q / size          (ticks; long -> positive)
    centre = m - skew
    bid    = floor(centre - half_spread_ticks)      ask = ceil(centre + half_spread_ticks)

so a long position moves both quotes down (it sells more readily, buys less readily) and a
short one up. The quotes are passive: a bid never reaches the consolidated best ask (at most
one tick below it), an ask never the best bid. Sizes: the bid ``min(size, max_position - q)``,
the ask ``min(size, max_position + q)``: at ``+max_position`` only the ask is quoted, at
``-max_position`` only the bid, and both filling never takes the position past the limit.
The book not sound: the quotes stay as they are until it is (the risk engine's stale-data
switch is what pulls them on stale data).

Requotes ("cancel/replace": the kernel has no 35=G replace, so the old quote is cancelled and
the new one submitted in the same step) happen when the mid has moved ``requote_ticks`` or
more from the mid the quotes were made at, when the position changed (a fill: the skew moved),
when a quote ended without being asked to (filled, rejected by the venue, cancelled by a kill
switch), and on resume. A side whose price and size stay the same is left working (it keeps
its place in the queue). With ``min_requote_ms``, an instrument is requoted at most that often;
a move in between is taken care of when the time comes (a timer), from the book as it is then.

Risk
----
Every order goes through ``ctx.submit`` (the risk engine). A refused side is counted
(``refused``), told to the desk, and left alone for ``refusal_backoff_ms`` before it is tried
again: never a tight loop of refusals. A venue's reject is counted (``rejected``) and backs off
the same way. A refusal that says only reducing orders pass (a REDUCING kill switch, a daily
loss breach) puts the instrument in *reduce-only* mode for ``refusal_backoff_ms``: only the
side that reduces the position is quoted, at most the position's size, and its requote waits
for the old quote's cancel to be confirmed (the risk engine counts a working order until then,
and a new one on top would not reduce); when the time is up one quote of the adding side is
tried, and a refusal starts another period. So a REDUCING switch costs one refusal per
instrument per ``refusal_backoff_ms``, and the market maker works its position down meanwhile.
HALTED pauses the strategy (the host): ``on_pause`` cancels every quote; re-arming resumes it
and ``on_resume`` quotes again at once from the books as they are. A person's pause is the
same. ``on_stop`` cancels every quote.

Fills reach ``on_order`` for every order of the kernel; ours are known by ClOrdID. Each
instrument keeps (qty, avg price, realized net of fees) with ``engine.core.positions.apply_fill``
(the tests hold it to the risk engine's book of the strategy), so the P&L it shows costs one
multiplication per instrument to mark.

Determinism: no clock is read and nothing is random: the same books at the same ``now_ns`` give
the same orders.

Cost: an ``on_book`` that does not requote reads four numbers of the consolidated BBO per
changed instrument and compares; a requote is at most two cancels and two submits.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from engine.book.books import BBO_NOT_OK
from engine.core.intents import BUY, SELL, OrderIntent
from engine.core.positions import apply_fill
from engine.strategy.api import NEVER, Strategy, StrategyContext

__all__ = ["MarketMaker", "MarketMakerConfig"]

log = logging.getLogger("helmdesk.strategy.marketmaker")

INFO, WARNING = logging.INFO, logging.WARNING
#: The two sides of a quote: index 0 the bid, 1 the ask.
_BID, _ASK = 0, 1
_SIDE_NAMES = ("bid", "ask")
_INTENT_SIDE = (BUY, SELL)
#: What a refusal says when only orders that reduce the position may pass.
_REDUCE_ONLY_WORDS = ("REDUCING", "only reducing orders")


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketMakerConfig:
    """The parameters of a ``kind = "marketmaker"`` entry (docs/strategies.md)."""

    symbols: tuple[str, ...] | None = None  #: None: every instrument the venue trades
    venue: str = ""  #: "": the profile's first venue (or, with none, the market's first)
    half_spread_ticks: int = 1
    size: int = 100
    max_position: int = 1000  #: from a profile: 10 × size unless given
    skew_ticks_per_lot: float = 1.0
    requote_ticks: int = 1
    min_requote_ms: float = 0.0
    refusal_backoff_ms: int = 1000
    tif: str = "day"

    @classmethod
    def from_config(cls, config, profile) -> MarketMakerConfig:
        """Read and check a ``[[strategies]]`` entry; a bad value is a ``ProfileError``
        naming the file, the entry and the key."""
        r = config.reader()
        names = [v.name for v in profile.venues]
        venue = r.get("venue", str, names[0] if names else "")
        if names and venue not in names:
            r.fail("venue", f"{venue!r} is not one of the profile's venues "
                            f"({', '.join(names)})")
        known = [i.symbol for i in profile.instruments]
        traded = set(known)
        link = next((v for v in profile.venues if v.name == venue), None)
        if link is not None and link.symbols:
            traded = set(link.symbols)
        raw = r.get("symbols", list, None)
        symbols = None
        if raw is not None:
            if not raw:
                r.fail("symbols", "must name at least one instrument (or be left out: all)")
            seen: set[str] = set()
            for k, s in enumerate(raw):
                if not isinstance(s, str):
                    r.fail(f"symbols[{k}]", f"must be a symbol (a string), was {s!r}")
                if s not in known:
                    r.fail(f"symbols[{k}]", f"{s!r} is not one of the profile's instruments")
                if s not in traded:
                    r.fail(f"symbols[{k}]", f"{s!r} is not traded on venue {venue}")
                if s in seen:
                    r.fail(f"symbols[{k}]", f"{s!r} is given twice")
                seen.add(s)
            symbols = tuple(raw)
        size = r.integer("size", 100, lo=1, hi=100_000_000)
        max_position = r.integer("max_position", 10 * size, lo=0, hi=1_000_000_000)
        tif = r.get("tif", str, "day")
        if tif not in ("day", "gtc"):
            r.fail("tif", f'must be "day" or "gtc" (a quote rests), was {tif!r}')
        cfg = cls(
            symbols=symbols, venue=venue,
            half_spread_ticks=r.integer("half_spread_ticks", 1, lo=0, hi=1_000_000),
            size=size, max_position=max_position,
            skew_ticks_per_lot=float(r.number("skew_ticks_per_lot", 1.0, lo=0.0, hi=1e6)),
            requote_ticks=r.integer("requote_ticks", 1, lo=1, hi=1_000_000),
            min_requote_ms=float(r.number("min_requote_ms", 0.0, lo=0.0, hi=3_600_000.0)),
            refusal_backoff_ms=r.integer("refusal_backoff_ms", 1000, lo=1, hi=3_600_000),
            tif=tif,
        )
        r.done()
        return cfg


class _Inst:
    """One quoted instrument: its two quotes, its position and its counts (plain attributes:
    touched on every book change)."""

    __slots__ = ("i", "symbol", "tick", "decimals", "cl", "px", "qty", "blocked", "wait",
                 "pending", "mid2", "last", "dirty", "reduce_until", "pos", "fees", "fills",
                 "bought", "sold", "orders", "cancels", "refused", "rejected", "skew", "due")

    def __init__(self, i: int, symbol: str, tick: float, decimals: int) -> None:
        self.i, self.symbol, self.tick, self.decimals = i, symbol, tick, decimals
        self.cl = ["", ""]  #: the working quote of each side ("": none)
        self.px = [0, 0]  #: its price, in ticks
        self.qty = [0, 0]  #: its quantity as sent
        self.blocked = [0, 0]  #: no new quote on the side before this (a refusal's backoff)
        self.wait = ["", ""]  #: a cancelled quote to see end before the side's next one
        self.pending: dict[str, tuple[int, int]] = {}  #: cancelled, not ended: cl -> side, px
        self.mid2 = -1  #: twice the mid (ticks) the quotes were made at; -1: not quoted
        self.last = -NEVER  #: when it was last requoted
        self.dirty = False  #: requote at the next chance, whatever the mid did
        self.reduce_until = 0  #: reduce-only mode until then
        self.pos: tuple[int, float, float] = (0, 0.0, 0.0)  #: (qty, avg px, realized)
        self.fees = 0.0
        self.fills = self.bought = self.sold = 0
        self.orders = self.cancels = self.refused = self.rejected = 0
        self.skew = 0.0  #: the skew of the last quotes, ticks
        self.due = NEVER  #: the timer's time for this instrument


class MarketMaker(Strategy):
    """A passive market maker with inventory skew (module docstring)."""

    kind = "marketmaker"
    name = "mm"
    wants_books = True
    signal_columns = ("bid", "ask", "position", "skew")

    def __init__(self, config: MarketMakerConfig | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.config = config or MarketMakerConfig()
        self.venue = self.config.venue
        self.insts: list[_Inst] = []
        self._by_index: dict[int, _Inst] = {}
        self._orders: dict[str, tuple[_Inst, int]] = {}  # ClOrdID -> (instrument, side)
        self._next = NEVER
        self._bid = self._ask = self._flags = None
        self.counts = dict.fromkeys(("requotes", "orders", "cancels", "fills", "refused",
                                     "rejected", "reduce_only"), 0)

    @classmethod
    def from_config(cls, config, profile) -> MarketMaker:
        return cls(MarketMakerConfig.from_config(config, profile), config.name)

    # -- the callbacks ---------------------------------------------------------------------------
    def next_timer_ns(self) -> int:
        return self._next

    def on_start(self, ctx: StrategyContext, now_ns: int) -> None:
        market = ctx.market
        bbo = market.books.bbo
        self._bid, self._ask, self._flags = bbo["bid_px"], bbo["ask_px"], bbo["flags"]
        if not self.venue:
            self.venue = market.venues[0]
        names = [ins.symbol for ins in market.instruments]
        wanted = self.config.symbols if self.config.symbols is not None else names
        self.insts = []
        for s in wanted:
            i = names.index(s)
            self.insts.append(_Inst(i, s, float(market.ticks[i]), int(market.decimals[i])))
        self._by_index = {b.i: b for b in self.insts}
        n = len(self.insts)
        ctx.notify(INFO, f"quoting {n} instrument{'s' if n != 1 else ''} on {self.venue}: "
                         f"±{self.config.half_spread_ticks} ticks, {self.config.size} a side")

    def on_book(self, ctx: StrategyContext, instruments, now_ns: int) -> None:
        by_index = self._by_index
        bid, ask, flags = self._bid, self._ask, self._flags
        two = 2 * self.config.requote_ticks
        for i in instruments.tolist() if hasattr(instruments, "tolist") else instruments:
            b = by_index.get(i)
            if b is None or flags.item(i) & BBO_NOT_OK:
                continue
            mid2 = bid.item(i) + ask.item(i)
            if b.dirty or b.mid2 < 0 or abs(mid2 - b.mid2) >= two:
                self._requote(ctx, b, now_ns)

    def on_timer(self, ctx: StrategyContext, now_ns: int) -> None:
        nxt = NEVER
        for b in self.insts:
            due = b.due
            if due <= now_ns:
                b.due = NEVER
                self._requote(ctx, b, now_ns)
                due = b.due
            if due < nxt:
                nxt = due
        self._next = nxt

    def on_order(self, ctx: StrategyContext, update, order) -> None:
        rec = self._orders.get(update.cl_ord_id)
        if rec is None:
            return
        b, side = rec
        if update.last_qty <= 0 and update.leaves_qty > 0:
            return  # an ack: nothing changes
        now = ctx.now_ns
        if update.last_qty > 0:
            qty = int(update.last_qty)
            fee = float(update.fee or 0.0)
            b.pos = apply_fill(b.pos, _INTENT_SIDE[side], qty, float(update.last_px), fee)
            b.fees += fee
            b.fills += 1
            self.counts["fills"] += 1
            if side == _BID:
                b.bought += qty
            else:
                b.sold += qty
            b.dirty = True  # the skew moved: requote
            self._due(b, now)
        if update.leaves_qty > 0:
            return
        cl = update.cl_ord_id
        del self._orders[cl]
        if b.cl[side] == cl:
            b.cl[side] = ""
        for s in (_BID, _ASK):
            if b.wait[s] == cl:
                b.wait[s] = ""
                self._due(b, now)
        if b.pending.pop(cl, None) is not None:  # we cancelled it
            return
        # it ended without our asking: filled, rejected, cancelled by a kill switch or a venue
        if update.status.value == "Rejected":
            b.rejected += 1
            self.counts["rejected"] += 1
            b.blocked[side] = now + self.config.refusal_backoff_ms * 1_000_000
            ctx.notify(WARNING, f"{b.symbol} {_SIDE_NAMES[side]} rejected by {update.venue}: "
                                f"{update.text or 'no reason given'}", b.i)
        b.dirty = True
        self._due(b, now)

    def on_pause(self, ctx: StrategyContext, now_ns: int) -> None:
        self._pull(ctx, now_ns)

    def on_resume(self, ctx: StrategyContext, now_ns: int) -> None:
        flags = self._flags
        for b in self.insts:
            b.dirty = True
            if flags is not None and not flags.item(b.i) & BBO_NOT_OK:
                self._requote(ctx, b, now_ns, force=True)

    def on_stop(self, ctx: StrategyContext, now_ns: int) -> None:
        self._pull(ctx, now_ns)
        self._next = NEVER

    # -- quoting ---------------------------------------------------------------------------------
    def _requote(self, ctx: StrategyContext, b: _Inst, now: int, force: bool = False) -> None:
        """Bring ``b``'s two quotes to what the book and the position say now."""
        cfg = self.config
        i = b.i
        if self._flags.item(i) & BBO_NOT_OK:
            b.dirty = True  # the next sound book requotes
            return
        if not force and cfg.min_requote_ms and now < b.last + int(cfg.min_requote_ms * 1e6):
            b.dirty = True
            self._due(b, b.last + int(cfg.min_requote_ms * 1e6))
            return
        b.due = NEVER
        best_bid, best_ask = self._bid.item(i), self._ask.item(i)
        mid2 = best_bid + best_ask
        q = b.pos[0]
        size = cfg.size
        skew = cfg.skew_ticks_per_lot * q / size
        centre = mid2 * 0.5 - skew
        h = cfg.half_spread_ticks
        px_bid = min(math.floor(centre - h + 1e-9), best_ask - 1)
        px_ask = max(math.ceil(centre + h - 1e-9), best_bid + 1, px_bid + 1)
        qty_bid = min(size, cfg.max_position - q)
        qty_ask = min(size, cfg.max_position + q)
        if px_bid < 1:
            qty_bid = 0
        # reduce-only (a refusal said so): only what reduces the position, at most its size;
        # in it or just out of it (one try of the adding side), a reducing quote is replaced
        # only once its old one has ended
        careful = b.reduce_until != 0
        reduce_only = now < b.reduce_until
        if reduce_only:
            qty_bid = min(qty_bid, -q) if q < 0 else 0
            qty_ask = min(qty_ask, q) if q > 0 else 0
        b.mid2 = mid2
        b.last = now
        b.dirty = False
        b.skew = skew
        self.counts["requotes"] += 1
        px, qty = (px_bid, px_ask), [qty_bid, qty_ask]
        keep = [False, False]
        for side in (_BID, _ASK):  # every cancel before any new order (self-match)
            cl = b.cl[side]
            if cl:
                if qty[side] > 0 and b.px[side] == px[side] and b.qty[side] == qty[side]:
                    keep[side] = True  # as it should be: it keeps its place in the queue
                    continue
                self._cancel(ctx, b, side, now)
                if careful:  # the old one counts as working until its cancel is confirmed
                    b.wait[side] = cl
        if not keep[_BID]:
            self._place(ctx, b, _BID, px_bid, qty_bid, now)
        if not reduce_only and now < b.reduce_until:  # the bid was just refused so
            qty[_ASK] = min(qty_ask, q) if q > 0 else 0
        if not keep[_ASK]:
            self._place(ctx, b, _ASK, px_ask, qty[_ASK], now)
        if b.reduce_until:
            if b.reduce_until <= now:
                b.reduce_until = 0  # the adding side passed: out of reduce-only
            else:
                self._due(b, b.reduce_until)  # try the adding side again then

    def _place(self, ctx: StrategyContext, b: _Inst, side: int, px: int, qty: int,
               now: int) -> None:
        """A new quote on ``side``, unless there is nothing to quote, it must wait for a
        cancelled quote to end, or the side is backing off after a refusal."""
        if qty <= 0:
            return
        if not b.wait[side]:
            for old, (s, p) in b.pending.items():
                # our cancelled quote still counts until its end is heard (it may have filled
                # meanwhile): an order crossing it would be refused as a self-match
                if s != side and (p <= px if side == _BID else p >= px):
                    b.wait[side] = old
                    break
        if b.wait[side]:
            return  # its end brings a requote
        if now < b.blocked[side]:
            self._due(b, b.blocked[side])
            return
        intent = OrderIntent(symbol=b.symbol, side=_INTENT_SIDE[side], qty=qty,
                             price=round(px * b.tick, b.decimals), venue=self.venue,
                             tif=self.config.tif)
        r = ctx.submit(intent, now)
        if r.__class__ is str:
            self._refused(ctx, b, side, qty, px, r, now)
            return
        cl = r.cl_ord_id
        b.cl[side] = cl
        b.px[side] = px
        b.qty[side] = qty
        b.orders += 1
        self.counts["orders"] += 1
        self._orders[cl] = (b, side)

    def _cancel(self, ctx: StrategyContext, b: _Inst, side: int, now: int) -> None:
        cl = b.cl[side]
        b.cl[side] = ""
        b.pending[cl] = (side, b.px[side])
        b.cancels += 1
        self.counts["cancels"] += 1
        ctx.cancel(cl, now)  # "not working any more" is fine: its end is on its way to us

    def _refused(self, ctx: StrategyContext, b: _Inst, side: int, qty: int, px: int,
                 why: str, now: int) -> None:
        """Obey a refusal: count it, tell the desk, and leave the side alone a while."""
        backoff = self.config.refusal_backoff_ms * 1_000_000
        b.refused += 1
        self.counts["refused"] += 1
        b.blocked[side] = now + backoff
        if any(w in why for w in _REDUCE_ONLY_WORDS):
            if now >= b.reduce_until:
                self.counts["reduce_only"] += 1
            b.reduce_until = now + backoff
            b.blocked[side] = 0  # reduce-only mode keeps the adding side off, not this
            self._due(b, b.reduce_until)
            other = 1 - side
            q = b.pos[0]
            reducing = (other == _ASK and q > 0) or (other == _BID and q < 0)
            if b.cl[other] and not reducing:  # a quote that adds stays out too
                self._cancel(ctx, b, other, now)
        else:
            self._due(b, b.blocked[side])
        ctx.notify(WARNING, f"{b.symbol} {_SIDE_NAMES[side]} {qty} @ "
                            f"{round(px * b.tick, b.decimals)} refused: {why}", b.i)

    def _pull(self, ctx: StrategyContext, now: int) -> None:
        """Cancel every quote (pause, stop): nothing is quoted until asked again."""
        for b in self.insts:
            for side in (_BID, _ASK):
                if b.cl[side]:
                    self._cancel(ctx, b, side, now)
                b.wait[side] = ""
            b.mid2 = -1
            b.due = NEVER
        self._next = NEVER

    def _due(self, b: _Inst, t: int) -> None:
        if t < b.due:
            b.due = t
        if t < self._next:
            self._next = t

    # -- what the desk and the report read -------------------------------------------------------
    def _mark(self, b: _Inst) -> float:
        """Unrealized P&L of ``b`` at the consolidated mid (0 without a sound book)."""
        q, avg, _r = b.pos
        if not q or self._flags is None or self._flags.item(b.i) & BBO_NOT_OK:
            return 0.0
        mid = (self._bid.item(b.i) + self._ask.item(b.i)) * 0.5 * b.tick
        return (mid - avg) * q

    def figures(self) -> dict[str, float]:
        c = self.counts
        realized = sum(b.pos[2] for b in self.insts)
        return {
            "quotes": float(sum(1 for b in self.insts for cl in b.cl if cl)),
            "position": float(sum(b.pos[0] for b in self.insts)),
            "fills": float(c["fills"]),
            "volume": float(sum(b.bought + b.sold for b in self.insts)),
            "refused": float(c["refused"]),
            "rejected": float(c["rejected"]),
            "realized": round(realized, 2),
            "pnl": round(realized + sum(self._mark(b) for b in self.insts), 2),
        }

    def signals(self, n: int) -> list[tuple[str, float, float, float, float]]:
        """The instruments with the largest |position| first, then by symbol: symbol, the
        bid and ask quoted (0: none), position, skew in ticks."""
        if n <= 0:
            return []
        rows = sorted(self.insts, key=lambda b: (-abs(b.pos[0]), b.symbol))[:n]
        return [(b.symbol,
                 round(b.px[_BID] * b.tick, b.decimals) if b.cl[_BID] else 0.0,
                 round(b.px[_ASK] * b.tick, b.decimals) if b.cl[_ASK] else 0.0,
                 float(b.pos[0]), round(b.skew, 6)) for b in rows]

    def report_tables(self) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
        cols = ("symbol", "fills", "bought", "sold", "volume", "position", "avg_px",
                "realized", "fees", "orders", "cancels", "refused", "rejected")
        rows = [(b.symbol, b.fills, b.bought, b.sold, b.bought + b.sold, b.pos[0],
                 round(b.pos[1], 6), round(b.pos[2], 2), round(b.fees, 2), b.orders, b.cancels,
                 b.refused, b.rejected) for b in self.insts]
        return {"instruments": (cols, rows)}

    def position(self, symbol: str) -> int:
        """The strategy's position in ``symbol`` by its own books."""
        return next((b.pos[0] for b in self.insts if b.symbol == symbol), 0)
