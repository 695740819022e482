"""The smart order router, sans-IO: a parent order in, child orders to the venues out.

Two layers. ``plan`` is a pure function: a parent's side, quantity and limit plus every venue's
L2 book give the child orders (venue, quantity, price) that take the cheapest visible
liquidity. ``SmartRouter`` sends a plan's children through the ``Oms``, follows their reports
(``on_update``) and moves what a venue failed to do (a reject, an unsolicited cancel, a venue
going down) to the venues still usable. Nothing here reads a clock or touches a socket; time
is passed in, books and venue health are read through the two callables the engine gives.

Theory of operation
-------------------
**Ranking.** Every level of every venue that is up is one candidate. A level's *effective*
price is what one unit really costs or yields once the venue's taker fee is charged:
``px * (1 + fee_bps / 10_000)`` for a buy, ``px * (1 - fee_bps / 10_000)`` for a sell (a
negative fee is a rebate). Candidates are taken best effective price first (lowest for a buy,
highest for a sell); ties go to the lower fee, then the lower latency, then the venue name
(so the plan is deterministic), then the better raw price. Effective prices, not quoted ones,
because they are what the desk pays: 100.00 with a 30 bps fee costs more than 100.02 with
none. Within one venue the fee is the same on every level, so a venue's levels are always
taken best first, as its matching engine would fill them.

**Limit.** The limit applies to the *quoted* price: a buy never takes a level above it, a sell
never one below it, whatever the fees. That is the price the trader typed and the one the
venue enforces on the child; fees are charged on top, as on the venue itself.

**Children.** One child per venue: its quantity is everything taken there and its price is
the worst level taken there (the highest for a buy), so it is marketable against all of it
and no worse. What the visible book cannot fill within the limit is the *remainder*. A DAY
limit parent rests it at the limit price on the best venue to rest on (lowest fee, then
latency, then name, among the venues up); if that venue already has a child, the remainder
joins it and that child's price becomes the limit (still marketable: a remainder exists only
once every visible level within the limit is taken). A market parent or an IOC parent does not
rest: the remainder is ``Plan.unplaced``, with ``Plan.reason``. Market parents' children are
IOC limit orders at the worst level taken (a market order never rests, as on the venue, and
never sweeps deeper than the book it was planned on); IOC parents' children are IOC; DAY
limit parents' children are DAY. FOK is refused: it cannot be all-or-none across venues.

**Re-routing.** A child that is rejected, cancelled without our asking (not its IOC
remainder), or whose venue goes down (``on_venue_down``) fails *for its parent*: that venue
is excluded from the parent for good, and the child's unfilled rest is planned again over the
venues that are up and not excluded, with fresh books, and sent. The failed venue is never
tried again by that parent, even if it is the only one left or comes back: a venue that
rejected will reject the same order again, and retrying the venue that just failed is the
classic re-route loop. With no venue left the rest is given up and the parent says which
venues failed and why. Re-plans are also capped per parent (``max_reroutes``). A child whose
venue went down is *in doubt* (the venue cancels on disconnect, but that is its word): its
rest is re-routed at once. If it turns out live after all (a report about it that is not in
doubt: the venue did not cancel it), the router cancels it; a fill it got still counts. Once a
parent is filled in full, the router cancels whatever of it still works; if late fills made it
overfilled anyway, the parent says by how much and where from.

**Ending.** Placing is synchronous, so a parent ends when none of its children is working:
``DONE`` when its whole quantity is filled, otherwise ``PARTIAL`` with ``reason`` naming each
piece given up and why (not placed, IOC remainder, cancelled on request, refused by the
pre-trade check, no venue left, re-route cap). ``explain()`` tells the whole story.

**What the engine must do.** Feed every ``OrderUpdate`` the Oms produces to ``on_update``
(updates about orders that are not children are ignored); after ``oms.on_venue_down(v)``
call ``router.on_venue_down(v, now_ns)``; cancel a parent with ``router.cancel`` (not by
cancelling its children in the Oms: a child cancel the router did not ask for is re-routed);
before a kill switch's ``oms.cancel_all`` call ``router.halt`` for the same scope, so the
cancels are final. The optional ``check`` callable is asked before every child goes out
(wire it to pre-trade risk and the kill switches); a piece it refuses is given up, never
re-routed.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.execution.oms import Oms, OrderUpdate
from engine.execution.orders import TERMINAL, OrdStatus

__all__ = [
    "BUY",
    "SELL",
    "Child",
    "ChildOrder",
    "ParentOrder",
    "ParentStatus",
    "ParentUpdate",
    "Plan",
    "SmartRouter",
    "VenueInfo",
    "plan",
]

BUY, SELL = 1, 2
_SIDE_NAME = {BUY: "buy", SELL: "sell"}
_BPS = 1e-4
_MAX_FEE_BPS = 10_000.0  # a fee of 100% or more makes a sell's proceeds negative

#: ``books_fn(symbol)``: each venue's L2 book of the symbol (``ask_px``/``ask_sz``/``bid_px``/
#: ``bid_sz`` lists, best first, an empty level has price 0).
BooksFn = Callable[[str], Mapping[str, Any]]
#: ``up_fn(symbol)``: the names of the venues ``symbol`` may go to now (session logged on,
#: and whatever else the caller requires, such as a good book there).
UpFn = Callable[[str], Iterable[str]]
#: ``check(venue, symbol, side, qty, price, parent_id)``: why this child may not go out, or None.
CheckFn = Callable[[str, str, int, int, float, str], "str | None"]


@dataclass(frozen=True, slots=True)
class VenueInfo:
    """What the router knows about a venue."""

    name: str
    fee_bps: float  #: taker fee in basis points of notional; negative for a rebate
    latency_us: float  #: order latency to the venue; breaks ties between equal prices

    def problem(self) -> str | None:
        """Why this venue cannot be routed to, or None."""
        if not isinstance(self.name, str) or not self.name:
            return f"venue name must be a non-empty string, was {self.name!r}"
        fee = _number(self.fee_bps)
        if fee is None or not -_MAX_FEE_BPS < fee < _MAX_FEE_BPS:
            return (f"venue {self.name}: fee_bps must be a number between -10000 and 10000, "
                    f"was {self.fee_bps!r}")
        lat = _number(self.latency_us)
        if lat is None or lat < 0:
            return f"venue {self.name}: latency_us must be a number >= 0, was {self.latency_us!r}"
        return None


@dataclass(frozen=True, slots=True)
class Child:
    """One planned child order; ``why`` says what it takes (not compared)."""

    venue: str
    qty: int
    price: float
    why: str = field(default="", compare=False)


class Plan(list):
    """The planned children (a ``list[Child]``, in the order their venues were first taken),
    plus what could not be placed: ``unplaced`` units, and ``reason`` why."""

    __slots__ = ("reason", "unplaced")

    def __init__(self, children: Iterable[Child] = (), unplaced: int = 0, reason: str = "") -> None:
        super().__init__(children)
        self.unplaced = unplaced
        self.reason = reason

    def __repr__(self) -> str:
        return f"Plan({list.__repr__(self)}, unplaced={self.unplaced}, reason={self.reason!r})"


# -- PLANNING --------------------------------------------------------------------------------------
def plan(side: int, qty: int, limit_px: float | None, books: Mapping[str, Any] | None,
         venues: Mapping[str, VenueInfo], up: Iterable[str], *, rest: bool = True) -> Plan | str:
    """Plan child orders for ``qty`` over the venues in ``up``; see the module docstring.

    ``limit_px`` None is a market order (it never rests). ``rest`` False (an IOC parent) keeps
    a limit order's remainder off the books too. Return why not, as a string, when an input is
    bad (side, quantity, limit, a venue's configuration); a book level with a price or size
    that is not a positive finite number is skipped as empty.
    """
    why = _check_intent(side, qty, limit_px)
    if why is not None:
        return why
    if not isinstance(venues, Mapping):
        return f"venues must map venue names to VenueInfo, was {type(venues).__name__}"
    up = set(up)
    usable: list[VenueInfo] = []
    for name in sorted(n for n in up if isinstance(n, str)):
        info = venues.get(name)
        if info is None:
            continue  # up but not configured for routing: not ours to use
        if _GOOD.get(id(info)) is not info:  # checked once: a VenueInfo is frozen
            if not isinstance(info, VenueInfo):
                return f"venue {name}: expected a VenueInfo, was {type(info).__name__}"
            bad = info.problem()
            if bad is not None:
                return bad
            if len(_GOOD) >= _GOOD_MAX:
                _GOOD.clear()
            _GOOD[id(info)] = info
        usable.append(info)
    if not isinstance(books, Mapping):
        books = {}

    buy = side == BUY
    levels = []  # (rank key, price, size, venue)
    for info in usable:
        book = books.get(info.name)
        if book is None:
            continue
        pxs = getattr(book, "ask_px" if buy else "bid_px", None) or ()
        szs = getattr(book, "ask_sz" if buy else "bid_sz", None) or ()
        k = 1.0 + info.fee_bps * _BPS if buy else 1.0 - info.fee_bps * _BPS
        for px, sz in zip(pxs, szs):
            if type(px) is float and type(sz) is float:  # the books' own: no conversion
                # as _number's test below: NaN fails the comparisons, infinities are refused
                if not (px > 0.0 and sz >= 1.0) or px == _INF or sz == _INF:
                    continue
            else:
                px, sz = _number(px), _number(sz)
                if px is None or sz is None or px <= 0 or sz < 1:
                    continue
            if limit_px is not None and (px > limit_px if buy else px < limit_px):
                continue
            eff = px * k
            key = (eff if buy else -eff, info.fee_bps, info.latency_us, info.name,
                   px if buy else -px)
            levels.append((key, px, int(sz), info))
    levels.sort(key=_first)

    left = qty
    taken: dict[str, list[tuple[int, float]]] = {}  # venue -> [(qty, price)], in taking order
    for _key, px, sz, info in levels:
        if not left:
            break
        n = min(sz, left)
        taken.setdefault(info.name, []).append((n, px))
        left -= n

    children: dict[str, Child] = {}
    for name, takes in taken.items():
        info = venues[name]
        worst = max(p for _, p in takes) if buy else min(p for _, p in takes)
        got = ", ".join(f"{n} @ {_px(p)}" for n, p in takes)
        children[name] = Child(name, sum(n for n, _ in takes), worst,
                               f"takes {got} on {name} (fee {info.fee_bps:g} bps)")
    out = Plan(children.values())
    if not left:
        return out
    if not usable:
        configured = ", ".join(sorted(venues)) or "none"
        out.unplaced, out.reason = left, f"no venue is up (configured: {configured})"
    elif limit_px is None:
        out.unplaced, out.reason = left, (f"no visible liquidity for {left} more on "
                                          f"{', '.join(v.name for v in usable)}")
    elif not rest:
        out.unplaced, out.reason = left, (f"no visible liquidity for {left} more at "
                                          f"{_px(limit_px)} or better, and it may not rest (IOC)")
    else:
        best = min(usable, key=_rest_rank)
        why = (f"rests {left} at the limit {_px(limit_px)} on {best.name}: best venue to rest "
               f"on (fee {best.fee_bps:g} bps, {best.latency_us:g} us)")
        have = children.get(best.name)
        if have is None:
            out.append(Child(best.name, left, float(limit_px), why))
        else:
            out[out.index(have)] = Child(best.name, have.qty + left, float(limit_px),
                                         f"{have.why}; {why}")
    return out


def _check_intent(side: object, qty: object, limit_px: object) -> str | None:
    if isinstance(side, bool) or not isinstance(side, int) or side not in (BUY, SELL):
        return f"side must be 1 (buy) or 2 (sell), was {side!r}"
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        return f"quantity must be a positive whole number, was {qty!r}"
    if limit_px is not None:
        px = _number(limit_px)
        if px is None or px <= 0:
            return f"limit price must be a positive number or None (market), was {limit_px!r}"
    return None


_INF = float("inf")
#: id -> a VenueInfo whose ``problem()`` was None (held, so its id is not reused while here)
_GOOD: dict[int, VenueInfo] = {}
_GOOD_MAX = 4096


def _number(x: object) -> float | None:
    """``x`` as a finite float, or None (NaN, infinities, bools, anything not a number)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _first(level: tuple) -> tuple:
    return level[0]


def _rest_rank(v: VenueInfo) -> tuple:
    return (v.fee_bps, v.latency_us, v.name)


def _px(x: float) -> str:
    return f"{x:.10g}"


# -- PARENTS AND CHILDREN --------------------------------------------------------------------------
class ParentStatus(enum.Enum):
    WORKING = "Working"  #: children are working at venues
    DONE = "Done"  #: filled in full
    PARTIAL = "PartiallyDone"  #: ended short of its quantity; ``ParentOrder.reason`` says why


@dataclass(slots=True)
class ChildOrder:
    """A child order the router sent, as its reports left it."""

    cl_ord_id: str
    venue: str
    qty: int
    price: float
    tif: str
    attempt: int  #: 0 for the first plan, n for the n-th re-route
    why: str  #: what the plan meant it to take
    status: OrdStatus = OrdStatus.PENDING_NEW
    cum_qty: int = 0
    notional: float = 0.0
    in_doubt: bool = False  #: its venue went down while it was live; its rest was re-routed
    end: str = ""  #: how it ended, when not simply filled

    @property
    def working(self) -> bool:
        return not self.in_doubt and self.status not in TERMINAL

    @property
    def avg_px(self) -> float:
        return self.notional / self.cum_qty if self.cum_qty else 0.0


@dataclass(slots=True)
class ParentOrder:
    """One routed order: its children, fills, and what was given up and why."""

    parent_id: str
    symbol: str
    side: int
    qty: int
    limit_px: float | None
    tif: str
    ts_init: int
    status: ParentStatus = ParentStatus.WORKING
    reason: str = ""  #: why it ended short (PARTIAL), or an overfill note
    cum_qty: int = 0
    notional: float = 0.0
    children: list[ChildOrder] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  #: venue -> why it is not used again
    reroutes: int = 0
    given_up: list[tuple[int, str]] = field(default_factory=list)  #: (qty, why) not to be done
    history: list[str] = field(default_factory=list)  #: each decision, in order
    halted: str = ""  #: why no more children go out (cancel requested, kill switch)

    @property
    def avg_px(self) -> float:
        return self.notional / self.cum_qty if self.cum_qty else 0.0

    @property
    def working_qty(self) -> int:
        """Quantity live at venues now (not counting children in doubt)."""
        return sum(c.qty - c.cum_qty for c in self.children if c.working)

    @property
    def rests(self) -> bool:
        """Whether what the book cannot fill rests at the limit (DAY limit parents only)."""
        return self.tif == "day" and self.limit_px is not None

    @property
    def child_tif(self) -> str:
        return "day" if self.rests else "ioc"

    def explain(self) -> str:
        """Where each piece went and why, for the desk and the log."""
        lim = "market" if self.limit_px is None else f"limit {_px(self.limit_px)}"
        head = (f"parent {self.parent_id}: {_SIDE_NAME[self.side]} {self.qty} {self.symbol} "
                f"{lim} {self.tif}: {self.status.value}, filled {self.cum_qty} of {self.qty}")
        if self.cum_qty:
            head += f" @ avg {_px(self.avg_px)}"
        if self.reason:
            head += f" ({self.reason})"
        lines = [head]
        lines += [f"  {h}" for h in self.history]
        for c in self.children:
            line = (f"  child {c.cl_ord_id} on {c.venue}: {c.qty} @ {_px(c.price)} {c.tif}, "
                    f"{'in doubt' if c.in_doubt else c.status.value}, filled {c.cum_qty}")
            if c.cum_qty:
                line += f" @ avg {_px(c.avg_px)}"
            if c.end:
                line += f" ({c.end})"
            lines.append(line)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ParentUpdate:
    """What changed about a parent, for the desk's blotter and the event ring."""

    parent_id: str
    symbol: str
    status: ParentStatus
    qty: int
    cum_qty: int
    avg_px: float
    working_qty: int
    last_qty: int = 0
    last_px: float = 0.0
    venue: str = ""
    text: str = ""


# -- THE ROUTER ------------------------------------------------------------------------------------
class SmartRouter:
    """Route parents over venues through an ``Oms``; see the module docstring."""

    def __init__(self, oms: Oms, venues: Mapping[str, VenueInfo] | Iterable[VenueInfo],
                 books_fn: BooksFn, up_fn: UpFn, *, check: CheckFn | None = None,
                 max_reroutes: int = 3) -> None:
        """Raise ``ValueError`` on a bad venue configuration (it is start-up, not an edge)."""
        infos = list(venues.values()) if isinstance(venues, Mapping) else list(venues)
        self.venues: dict[str, VenueInfo] = {}
        for info in infos:
            bad = info.problem() if isinstance(info, VenueInfo) else f"not a VenueInfo: {info!r}"
            if bad is not None:
                raise ValueError(f"router configuration: {bad}")
            if info.name in self.venues:
                raise ValueError(f"router configuration: venue {info.name} is given twice")
            self.venues[info.name] = info
        if isinstance(venues, Mapping) and any(k != v.name for k, v in venues.items()):
            raise ValueError("router configuration: each venue's key must be its name")
        if isinstance(max_reroutes, bool) or not isinstance(max_reroutes, int) or max_reroutes < 0:
            raise ValueError(f"router configuration: max_reroutes must be a whole number >= 0, "
                             f"was {max_reroutes!r}")
        self.oms = oms
        self.books_fn = books_fn
        self.up_fn = up_fn
        self.check = check
        self.max_reroutes = max_reroutes
        self.parents: dict[str, ParentOrder] = {}
        self._working: dict[str, ParentOrder] = {}
        self._children: dict[str, tuple[ParentOrder, ChildOrder]] = {}  # by ClOrdID
        self._cancelling: set[str] = set()  # children the router asked to cancel
        self.counters = dict.fromkeys(
            ("parents", "refused", "children", "not_sent", "reroutes", "overfills"), 0)

    # -- intents ---------------------------------------------------------------------------------
    def route(self, parent_id: str, symbol: str, side: int, qty: int, limit_px: float | None,
              tif: str, now_ns: int) -> ParentOrder | str:
        """Plan ``parent_id`` and send its children; return the parent, or why nothing went
        out (a bad input, or a plan with no child). The parent may already have ended (every
        send failed, say): its ``status``, ``reason`` and ``explain()`` say so."""
        why = None
        if not isinstance(parent_id, str) or not parent_id:
            why = f"parent id must be a non-empty string, was {parent_id!r}"
        elif parent_id in self.parents:
            why = "parent id was already used"
        elif not isinstance(symbol, str) or not symbol:
            why = f"symbol must be a non-empty string, was {symbol!r}"
        elif tif == "fok":
            why = "time in force fok cannot be all-or-none across venues: use ioc or day"
        elif tif not in ("day", "ioc"):
            why = f"time in force must be day or ioc, was {tif!r}"
        p: Plan | str = ""
        up = self._up(symbol)
        if why is None:
            rests = tif == "day" and limit_px is not None
            p = plan(side, qty, limit_px, self.books_fn(symbol), self.venues, up, rest=rests)
            if isinstance(p, str):
                why = p
            elif not p:
                why = p.reason
        if why is not None:
            self.counters["refused"] += 1
            return f"parent {parent_id!r} NOT ROUTED: {why}"
        parent = ParentOrder(parent_id, symbol, int(side), qty,
                             None if limit_px is None else float(limit_px), tif, now_ns)
        self.parents[parent_id] = self._working[parent_id] = parent
        self.counters["parents"] += 1
        at = len(parent.history)
        out: list[ParentUpdate] = []
        self._place(parent, p, now_ns, out)
        # the plan's line goes before its children's, written once they are on the wire
        parent.history.insert(at, f"plan over {', '.join(sorted(up))}: {_show_plan(p)}")
        self._settle(parent, out)  # every child refused or failed: it ends here
        return parent

    def cancel(self, parent_id: str, now_ns: int) -> str | None:
        """Cancel a working parent: no more children, cancel requests for the live ones.
        Return why not (or which child cancels could not go out), or None."""
        parent = self.parents.get(parent_id)
        if parent is None:
            return f"unknown parent {parent_id!r}"
        if parent.status is not ParentStatus.WORKING:
            return f"parent {parent_id} is already {parent.status.value}"
        parent.halted = parent.halted or "cancelled on request"
        parent.history.append("cancel requested")
        problems = [self._cancel_child(parent, c, now_ns, "") for c in parent.children
                    if c.working]
        return "; ".join(w for w in problems if w) or None

    def halt(self, reason: str, symbol: str | None = None) -> int:
        """Stop re-routing and sending children for the working parents (of ``symbol``, or
        all): from now on a child's cancel is final. Call it before a kill switch's
        ``oms.cancel_all``. Return how many parents were halted."""
        n = 0
        for parent in self._working.values():
            if symbol in (None, parent.symbol) and not parent.halted:
                parent.halted = reason
                parent.history.append(f"halted: {reason}")
                n += 1
        return n

    def parent_of(self, cl_ord_id: str) -> str | None:
        """The parent id of a child order, or None when it is not a child of ours."""
        hit = self._children.get(cl_ord_id)
        return None if hit is None else hit[0].parent_id

    # -- reports ---------------------------------------------------------------------------------
    def on_update(self, u: OrderUpdate, now_ns: int) -> list[ParentUpdate]:
        """Apply one Oms update; return what it changed about parents (none if ``u`` is not
        about one of our children)."""
        hit = self._children.get(u.cl_ord_id)
        if hit is None:
            return []
        parent, child = hit
        out: list[ParentUpdate] = []
        if u.last_qty > 0:
            self._fill(parent, child, u.last_qty, u.last_px, out)
        before, child.status = child.status, u.status
        asked = u.cl_ord_id in self._cancelling
        if u.status in TERMINAL:
            self._cancelling.discard(u.cl_ord_id)
        if parent.cum_qty >= parent.qty and parent.status is ParentStatus.WORKING:
            # a child in doubt filled late: what still works would overfill the parent
            parent.halted = parent.halted or "filled in full"
            for c in parent.children:
                if c.working and c.cl_ord_id not in self._cancelling:
                    self._cancel_child(parent, c, now_ns, "the parent is filled in full")
        text = u.text or "no text"
        if child.in_doubt:  # its rest was re-routed when the venue went down
            if u.status in TERMINAL and before not in TERMINAL:
                child.end = f"in doubt, then {u.status.value} ({text})"
            elif u.status not in TERMINAL and not u.unknown and not asked:
                self._cancel_child(parent, child, now_ns, "it is live again after its venue "
                                   "came back, and its rest was re-routed")
            self._settle(parent, out)
            return out
        if before in TERMINAL or u.status not in TERMINAL or u.status is OrdStatus.FILLED:
            self._settle(parent, out)
            return out
        rest = child.qty - child.cum_qty
        if u.status is OrdStatus.REJECTED:
            child.end = f"rejected: {text}"
            self._fail(parent, child.venue, f"rejected {child.cl_ord_id}: {text}", rest, now_ns,
                       out)
        elif u.status is OrdStatus.CANCELLED:
            if asked or parent.halted:
                child.end = f"cancelled: {parent.halted or 'on request'}"
                if parent.cum_qty < parent.qty:
                    self._give_up(parent, rest, parent.halted or "cancelled on request")
            elif child.tif == "ioc":
                child.end = f"IOC remainder cancelled ({text})"
                self._give_up(parent, rest, f"IOC child on {child.venue} left {rest} unfilled "
                                            f"({text})")
            else:
                child.end = f"cancelled by the venue: {text}"
                self._fail(parent, child.venue,
                           f"cancelled {child.cl_ord_id} unasked: {text}", rest, now_ns, out)
        else:  # EXPIRED, or REPLACED outside the router
            child.end = f"{u.status.value}: {text}"
            self._give_up(parent, rest, f"{u.status.value} on {child.venue} ({text})")
        self._settle(parent, out)
        return out

    def on_venue_down(self, venue: str, now_ns: int) -> list[ParentUpdate]:
        """``venue``'s session dropped (call after ``oms.on_venue_down``): each working
        parent's live children there go in doubt and their rest is re-routed elsewhere."""
        out: list[ParentUpdate] = []
        for parent in list(self._working.values()):
            rest = 0
            for c in parent.children:
                if c.venue == venue and c.working:
                    c.in_doubt = True
                    c.end = "venue went down while it was live; its rest was re-routed"
                    rest += c.qty - c.cum_qty
            if rest:
                self._fail(parent, venue, "went down", rest, now_ns, out)
                self._settle(parent, out)
        return out

    # -- placing ---------------------------------------------------------------------------------
    def _place(self, parent: ParentOrder, p: Plan, now_ns: int, out: list[ParentUpdate]) -> None:
        """Send a plan's children; re-plan what could not be sent, within the cap."""
        while True:
            if p.unplaced:
                self._give_up(parent, p.unplaced, f"not placed: {p.reason}")
            failed = 0
            for c in p:
                why = parent.halted or (self.check and self.check(
                    c.venue, parent.symbol, parent.side, c.qty, c.price, parent.parent_id))
                if why:
                    parent.history.append(f"{c.qty} for {c.venue} not sent: {why}")
                    self._give_up(parent, c.qty, f"refused for {c.venue}: {why}")
                    continue
                tif = parent.child_tif
                o = self.oms.new_order(c.venue, parent.symbol, parent.side, c.qty, c.price, tif,
                                       now_ns)
                if isinstance(o, str):
                    self.counters["not_sent"] += 1
                    parent.excluded[c.venue] = f"not sent: {o}"
                    parent.history.append(f"{c.qty} for {c.venue} not sent: {o}")
                    failed += c.qty
                    continue
                child = ChildOrder(o.cl_ord_id, c.venue, c.qty, c.price, tif, parent.reroutes,
                                   c.why)
                parent.children.append(child)
                self._children[child.cl_ord_id] = (parent, child)
                self.counters["children"] += 1
                parent.history.append(f"child {child.cl_ord_id} -> {c.venue} {c.qty} @ "
                                      f"{_px(c.price)} {tif}: {c.why}")
            if not failed:
                return
            p = self._replan(parent, failed, now_ns)
            if p is None:
                return

    def _fail(self, parent: ParentOrder, venue: str, why: str, rest: int, now_ns: int,
              out: list[ParentUpdate]) -> None:
        """A child failed at ``venue``: never use it again for this parent; move its rest."""
        parent.excluded[venue] = why
        parent.history.append(f"{venue} {why}: not used again for this parent")
        if rest <= 0:
            return
        p = self._replan(parent, rest, now_ns)
        if p is None:
            text = f"{rest} left {venue} ({why}) and was given up: {parent.given_up[-1][1]}"
        else:
            self._place(parent, p, now_ns, out)
            text = f"{rest} re-routed away from {venue} ({why}): {_show_plan(p)}"
        out.append(self._update(parent, venue=venue, text=text))

    def _replan(self, parent: ParentOrder, qty: int, now_ns: int) -> Plan | None:
        """Plan ``qty`` again over the venues up and not excluded; None when it is given up."""
        if parent.halted:
            self._give_up(parent, qty, f"not re-routed: {parent.halted}")
            return None
        if parent.reroutes >= self.max_reroutes:
            self._give_up(parent, qty, f"not re-routed: already re-routed {parent.reroutes} "
                                       f"times (the cap)")
            return None
        up = self._up(parent.symbol) - parent.excluded.keys()
        if not up & self.venues.keys():
            failed = "; ".join(f"{v} {w}" for v, w in parent.excluded.items())
            self._give_up(parent, qty, f"no venue left to re-route to ({failed})")
            return None
        parent.reroutes += 1
        self.counters["reroutes"] += 1
        p = plan(parent.side, qty, parent.limit_px, self.books_fn(parent.symbol), self.venues,
                 up, rest=parent.rests)
        if isinstance(p, str):
            self._give_up(parent, qty, f"not re-routed: {p}")
            return None
        parent.history.append(f"re-route {parent.reroutes}: {qty} over {', '.join(sorted(up))}: "
                              f"{_show_plan(p)}")
        return p

    def _cancel_child(self, parent: ParentOrder, c: ChildOrder, now_ns: int,
                      why: str) -> str | None:
        """Ask the Oms to cancel a child; its cancel is then final. Return why not."""
        self._cancelling.add(c.cl_ord_id)
        w = self.oms.cancel(c.cl_ord_id, now_ns)
        if why:
            parent.history.append(f"cancel child {c.cl_ord_id} on {c.venue}: {why}")
        if w is None:
            return None
        self._cancelling.discard(c.cl_ord_id)
        parent.history.append(f"cancel of child {c.cl_ord_id} on {c.venue} not sent: {w}")
        return f"child {c.cl_ord_id} on {c.venue}: {w}"

    def _give_up(self, parent: ParentOrder, qty: int, why: str) -> None:
        if qty > 0:
            parent.given_up.append((qty, why))
            parent.history.append(f"gave up {qty}: {why}")

    # -- fills and ending ------------------------------------------------------------------------
    def _fill(self, parent: ParentOrder, child: ChildOrder, qty: int, px: float,
              out: list[ParentUpdate]) -> None:
        child.cum_qty += qty
        child.notional += qty * px
        parent.cum_qty += qty
        parent.notional += qty * px
        text = f"{qty} @ {_px(px)} on {child.venue}"
        if parent.cum_qty > parent.qty:
            self.counters["overfills"] += 1
            text += f"; {_overfill(parent)}"
            parent.history.append(f"fill {text}")
        out.append(self._update(parent, qty, px, child.venue, text))

    def _settle(self, parent: ParentOrder, out: list[ParentUpdate]) -> None:
        """End a parent none of whose children is working any more; after that, say when a
        late report (a child in doubt filling or closing) changes how it ended."""
        was = parent.status
        if was is ParentStatus.WORKING:
            if any(c.working for c in parent.children):
                return
            self._working.pop(parent.parent_id, None)
        if parent.cum_qty >= parent.qty:
            status = ParentStatus.DONE
            reason = _overfill(parent) if parent.cum_qty > parent.qty else ""
        else:
            status = ParentStatus.PARTIAL
            parts = [f"{q} {w}" for q, w in parent.given_up]
            doubt = sum(c.qty - c.cum_qty for c in parent.children
                        if c.in_doubt and c.status not in TERMINAL)
            if doubt:
                parts.append(f"{doubt} in doubt at venues that went down (re-routed)")
            reason = "unfilled: " + ("; ".join(parts) if parts else "no reason recorded")
        if (status, reason) == (was, parent.reason):
            return
        parent.status, parent.reason = status, reason
        text = reason or f"filled {parent.cum_qty} @ avg {_px(parent.avg_px)}"
        parent.history.append(f"{'ended' if was is ParentStatus.WORKING else 'now'} "
                              f"{status.value}: {text}")
        out.append(self._update(parent, text=text))

    def _update(self, parent: ParentOrder, last_qty: int = 0, last_px: float = 0.0,
                venue: str = "", text: str = "") -> ParentUpdate:
        return ParentUpdate(parent.parent_id, parent.symbol, parent.status, parent.qty,
                            parent.cum_qty, parent.avg_px, parent.working_qty, last_qty, last_px,
                            venue, text)

    def _up(self, symbol: str) -> set[str]:
        return set(self.up_fn(symbol))


def _overfill(parent: ParentOrder) -> str:
    late = ", ".join(f"{c.cl_ord_id} on {c.venue}" for c in parent.children
                     if c.in_doubt and c.cum_qty)
    return (f"overfilled by {parent.cum_qty - parent.qty}: children in doubt filled after "
            f"their rest had been re-routed ({late or 'none in doubt'})")


def _show_plan(p: Plan) -> str:
    parts = [f"{c.venue} {c.qty} @ {_px(c.price)}" for c in p]
    if p.unplaced:
        parts.append(f"{p.unplaced} unplaced ({p.reason})")
    return ", ".join(parts) or "nothing"
