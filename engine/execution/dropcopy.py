"""The drop copy: the venue's own copy of every execution, reconciled with the engine's fills.

A venue with ``drop_copy_sender`` in its ``[[venues]]`` table gets a ``DropCopyClient``: a
second FIX 4.4 session to the venue as that CompID (``kind = "fix"``: a ``PolledConnection``
to the same host and port; ``kind = "sim"``: the in-process venue's ``DropCopyLink``), on
which the venue sends a copy of every ExecutionReport it sends any counterparty, with
Account(1) naming the counterparty it went to (docs/fix.md, "Drop copy"). The client only
receives. It is an independent witness: if the engine's order session loses, garbles or
misapplies a fill, the drop copy still has it.

Theory of operation
-------------------
``Reconciler`` (sans-IO: messages, fills and times in, differences out) keys every
execution by ExecID (17), which the venue makes unique:

- a drop-copy fill (150=F) is *ours* when its Account is our order session's SenderCompID
  (with no Account: when its ClOrdID is an order the engine knows); others are counted per
  counterparty and go no further;
- ``on_copy`` and ``on_engine_fill`` each look the ExecID up in the other side's dict. Found:
  the two are compared (symbol, side, LastQty, LastPx) and a difference is raised at once.
  Not found: the ExecID waits in that side's *unmatched* dict with a due time, now + the
  grace period (``[[venues]] drop_copy_grace_ms``, default 2 s: the other side's report may
  be in flight);
- ``sweep`` (at most every ``sweep_ms``, 100 ms by default) raises every unmatched execution
  past its due time: "in the drop copy, not in the engine" or the other way round. Due
  times grow with insertion, so a sweep stops at the first that is not due: its cost is the
  number raised. A side whose session is down does not make the other side's executions
  overdue: they wait until that session has been back for a grace period (the venue keeps
  the copies, and the engine's order session asks about its orders in doubt);
- an execution raised late and matched after all resolves its difference (an INFO line);
- the engine settles an order in doubt with one synthetic execution
  (``reconciled-<ClOrdID>-<CumQty>``, engine.execution.oms) for fills it missed: that
  quantity absorbs the drop copy's real executions of that order instead of being looked
  for in the drop copy;
- fills whose TransactTime (60) is before the client started (copies the venue kept from an
  earlier engine run) are counted in ``before_start`` and left out: the engine applied them
  in that run, or settles them with a status request.

Each difference calls ``notify(level, text, instrument)`` (the kernel's notify: a line for
the desks) naming the venue, the ExecID, the order and what differs, is logged, counted in
``counters`` and kept in ``differences()`` while it stands. Per ER the work is a dict lookup
and an insert or a delete; nothing a venue sends raises (bad reports are counted, logged).

Positions: ``positions()`` is the net quantity per symbol of our fills as the drop copy has
them (buys positive), ``engine_positions()`` the same from the engine's fills as fed; a bench
compares either with the portfolio and counts ``differences()``.

Kernel and bench API (``ExecutionEngine.drop_copies[venue]`` is the client)::

    client.poll(now_ns) -> bool                 # drive the session, reconcile, sweep
    client.on_engine_fill(exec_id, cl_ord_id, symbol, side, qty, px, now_ns)
    client.positions() -> dict[str, int]        # from the drop copy
    client.engine_positions() -> dict[str, int] # from the engine's fills
    client.differences() -> list[Difference]    # standing; str(row) reads as a sentence
    client.counters                             # missing_in_engine, missing_in_drop_copy, ...
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from engine.core.profile import VenueLinkConfig
from engine.fix.codec import FixMessage, utc_timestamp
from engine.fix.polled import PolledConnection
from engine.fix.session import (
    AppMessage,
    Disconnect,
    FixSession,
    Garbled,
    LoggedOn,
    PeerReject,
    RejectSent,
    SessionConfig,
)
from engine.fix.store import MemoryStore, MessageStore
from engine.fix.transport import Backoff

__all__ = ["DEFAULT_GRACE_MS", "DEFAULT_SWEEP_MS", "Difference", "DropCopyClient",
           "Execution", "Reconciler"]

log = logging.getLogger("helmdesk.dropcopy")

DEFAULT_GRACE_MS = 2000
DEFAULT_SWEEP_MS = 100
#: A drop copy not logged on this long after start (or a drop) is reported once to the desks.
NOT_UP_WARN_NS = 10_000_000_000
#: Notify(level, text, instrument index or -1), as ExecutionEngine's
Notify = Callable[[int, str, int], None]
_NEVER = 1 << 62
_RECONCILED = "reconciled-"  # engine.execution.oms: a synthetic execution settling doubt
_SIDES = {b"1": 1, b"2": 2}
_SIDE_NAMES = {1: "buy", 2: "sell"}

#: Difference kinds
MISSING_IN_ENGINE = "missing in engine"
MISSING_IN_DROP_COPY = "missing in drop copy"
MISMATCH = "mismatch"
POSITION = "position"


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill as one side reports it."""

    exec_id: str
    cl_ord_id: str
    symbol: str
    side: int  #: 1 buy, 2 sell
    qty: int
    px: float
    ts_ns: int  #: when it reached us

    def __str__(self) -> str:
        return f"{_SIDE_NAMES.get(self.side, self.side)} {self.qty} {self.symbol} @ {self.px:g}"


@dataclass(frozen=True, slots=True)
class Difference:
    """One standing difference between the drop copy and the engine."""

    kind: str  #: MISSING_IN_ENGINE, MISSING_IN_DROP_COPY, MISMATCH or POSITION
    venue: str
    symbol: str
    exec_id: str  #: "" for a position row
    cl_ord_id: str
    text: str  #: the sentence the desks were told
    ts_ns: int

    def __str__(self) -> str:
        return self.text


class Reconciler:
    """One venue's drop copy against the engine's fills, sans-IO (module docstring)."""

    def __init__(self, venue: str, our_comp_id: str, *, grace_ms: int = DEFAULT_GRACE_MS,
                 notify: Notify | None = None, index: dict[str, int] | None = None,
                 is_ours: Callable[[str], bool] | None = None, since_ns: int = 0) -> None:
        self.venue = venue
        self.our_comp_id = our_comp_id
        self._ours_b = our_comp_id.encode()
        self.grace_ns = grace_ms * 1_000_000
        self.notify = notify if notify is not None else (lambda _level, _text, _inst: None)
        self.index = index or {}
        self.is_ours = is_ours or (lambda _cl: False)
        self._since_ts = b""
        self.since(since_ns)
        self._dc: dict[str, Execution] = {}  # ExecID -> the drop copy's fill (ours)
        self._eng: dict[str, Execution] = {}  # ExecID -> the engine's fill
        self._dc_only: dict[str, int] = {}  # ExecID -> due time, insertion (so due) order
        self._eng_only: dict[str, int] = {}
        self._absorb: dict[str, int] = {}  # ClOrdID -> reconciled qty not yet matched
        self._standing: dict[str, Difference] = {}  # ExecID -> its difference
        self._pos: dict[str, int] = {}
        self._eng_pos: dict[str, int] = {}
        #: counterparty (Account) -> fills seen in the drop copy
        self.counterparties: dict[str, int] = {}
        self.counters = dict.fromkeys(
            ("reports", "fills", "ours", "others", "matched", "duplicates", "absorbed",
             "engine_fills", "missing_in_engine", "missing_in_drop_copy", "mismatches",
             "resolved", "bad_reports", "before_start", "other_messages", "sweeps"), 0)

    def since(self, now_ns: int) -> None:
        """Leave out fills whose TransactTime is before ``now_ns`` (0: none)."""
        self._since_ts = utc_timestamp(now_ns) if now_ns > 0 else b""

    # -- THE DROP COPY'S SIDE --------------------------------------------------------------------
    def on_copy(self, m: FixMessage, now_ns: int) -> None:
        """One application message of the drop-copy session."""
        if m.msg_type != b"8":
            self.counters["other_messages"] += 1
            log.warning("%s drop copy: 35=%s ignored: %r", self.venue, _s(m.msg_type),
                        m.raw[:256])
            return
        c = self.counters
        c["reports"] += 1
        if m.get(150) != b"F":
            return
        c["fills"] += 1
        try:
            account = m.get(1)
            cl_b, exec_b, sym_b = m.get(11), m.get(17), m.get(55)
            side = _SIDES.get(m.get(54))
            if exec_b is None or cl_b is None or sym_b is None or side is None:
                raise ValueError("ExecID(17), ClOrdID(11), Symbol(55) or Side(54) missing or "
                                 "not 1/2")
            qty, px = m.get_int(32), m.get_float(31)
            if qty <= 0 or not px > 0 or px == float("inf"):
                raise ValueError(f"LastQty(32) {qty} / LastPx(31) {px} out of range")
        except (ValueError, TypeError) as e:
            c["bad_reports"] += 1
            log.error("%s drop copy: fill report refused as unusable (%s): %r", self.venue, e,
                      m.raw[:512])
            return
        if account is not None:
            who = account.decode("ascii", "replace")
            self.counterparties[who] = self.counterparties.get(who, 0) + 1
            if account != self._ours_b:
                c["others"] += 1
                return
        cl = cl_b.decode("ascii", "replace")
        if account is None and not self.is_ours(cl):
            c["others"] += 1
            return
        t = m.get(60)
        if self._since_ts and t is not None and t < self._since_ts:
            c["before_start"] += 1
            return
        exec_id = exec_b.decode("ascii", "replace")
        if exec_id in self._dc:
            c["duplicates"] += 1
            return
        c["ours"] += 1
        sym = sym_b.decode("ascii", "replace")
        x = Execution(exec_id, cl, sym, side, qty, px, now_ns)
        self._dc[exec_id] = x
        self._pos[sym] = self._pos.get(sym, 0) + (qty if side == 1 else -qty)
        other = self._eng.get(exec_id)
        if other is not None:
            self._eng_only.pop(exec_id, None)
            self._matched(other, x, now_ns)
        elif self._absorb.get(cl, 0) >= qty:
            self._absorb_one(x)
        else:
            self._dc_only[exec_id] = now_ns + self.grace_ns

    # -- THE ENGINE'S SIDE -----------------------------------------------------------------------
    def on_engine_fill(self, exec_id: str, cl_ord_id: str, symbol: str, side: int, qty: int,
                       px: float, now_ns: int) -> None:
        """An execution the engine applied (an order update with a fill)."""
        self.counters["engine_fills"] += 1
        self._eng_pos[symbol] = self._eng_pos.get(symbol, 0) + (qty if side == 1 else -qty)
        if exec_id.startswith(_RECONCILED):  # never in the drop copy: absorbs its real ones
            self._absorb[cl_ord_id] = self._absorb.get(cl_ord_id, 0) + qty
            for eid in [e for e in self._dc_only if self._dc[e].cl_ord_id == cl_ord_id]:
                x = self._dc[eid]
                if self._absorb[cl_ord_id] < x.qty:
                    break
                del self._dc_only[eid]
                self._absorb_one(x)
            for eid in [e for e, d in self._standing.items()
                        if d.kind == MISSING_IN_ENGINE and d.cl_ord_id == cl_ord_id]:
                x = self._dc[eid]
                if self._absorb[cl_ord_id] < x.qty:
                    break
                self._absorb_one(x)
                self._resolve(eid, "settled by the engine's status request", now_ns)
            return
        x = Execution(exec_id, cl_ord_id, symbol, side, qty, px, now_ns)
        self._eng[exec_id] = x
        other = self._dc.get(exec_id)
        if other is not None:
            self._dc_only.pop(exec_id, None)
            self._matched(x, other, now_ns)
        else:
            self._eng_only[exec_id] = now_ns + self.grace_ns

    # -- SWEEP -----------------------------------------------------------------------------------
    def next_due_ns(self) -> int:
        """When the earliest unmatched execution falls due (``1 << 62``: none waits)."""
        a = next(iter(self._dc_only.values()), _NEVER)
        b = next(iter(self._eng_only.values()), _NEVER)
        return a if a < b else b

    def sweep(self, now_ns: int, *, copy_since: int | None = 0,
              engine_since: int | None = 0) -> int:
        """Raise every unmatched execution past its due time; return how many.
        ``copy_since`` / ``engine_since``: since when that side's session is up (None: down);
        while down, or within a grace period of coming up, the other side's executions wait."""
        self.counters["sweeps"] += 1
        n = 0
        if engine_since is not None and engine_since + self.grace_ns <= now_ns:
            n += self._raise_due(self._dc_only, now_ns, MISSING_IN_ENGINE)
        if copy_since is not None and copy_since + self.grace_ns <= now_ns:
            n += self._raise_due(self._eng_only, now_ns, MISSING_IN_DROP_COPY)
        return n

    def _raise_due(self, unmatched: dict[str, int], now_ns: int, kind: str) -> int:
        due = []
        for eid, t in unmatched.items():
            if t > now_ns:
                break
            due.append(eid)
        raised = 0
        for eid in due:
            del unmatched[eid]
            if kind == MISSING_IN_ENGINE:
                x = self._dc[eid]
                if self._absorb.get(x.cl_ord_id, 0) >= x.qty:
                    self._absorb_one(x)
                    continue
                self.counters["missing_in_engine"] += 1
                where = "in the drop copy, not in the engine"
            else:
                x = self._eng[eid]
                self.counters["missing_in_drop_copy"] += 1
                where = "in the engine, not in the drop copy"
            text = (f"{self.venue} drop copy: execution {eid} of order {x.cl_ord_id} ({x}) is "
                    f"{where} after {self.grace_ns / 1e9:g} s")
            self._raise(Difference(kind, self.venue, x.symbol, eid, x.cl_ord_id, text, now_ns))
            raised += 1
        return raised

    # -- INSPECTION ------------------------------------------------------------------------------
    def positions(self) -> dict[str, int]:
        """Net quantity per symbol of our fills in the drop copy (buys positive)."""
        return dict(self._pos)

    def engine_positions(self) -> dict[str, int]:
        """Net quantity per symbol of the engine's fills as fed (``on_engine_fill``)."""
        return dict(self._eng_pos)

    def differences(self) -> list[Difference]:
        """The differences standing now: executions raised and not since matched, mismatches,
        and a row per symbol whose two positions differ."""
        out = list(self._standing.values())
        for sym in sorted(set(self._pos) | set(self._eng_pos)):
            a, b = self._pos.get(sym, 0), self._eng_pos.get(sym, 0)
            if a != b:
                out.append(Difference(
                    POSITION, self.venue, sym, "", "",
                    f"{self.venue} drop copy: {sym} position {a:+d} in the drop copy, {b:+d} in "
                    f"the engine", 0))
        return out

    def pending(self) -> int:
        """Executions one side has and the other not yet, within the grace period."""
        return len(self._dc_only) + len(self._eng_only)

    # -- INTERNALS -------------------------------------------------------------------------------
    def _matched(self, eng: Execution, dc: Execution, now_ns: int) -> None:
        why = []
        if eng.symbol != dc.symbol:
            why.append(f"symbol {eng.symbol} in the engine, {dc.symbol} in the drop copy")
        if eng.side != dc.side:
            why.append(f"side {_SIDE_NAMES[eng.side]} in the engine, {_SIDE_NAMES[dc.side]} in "
                       f"the drop copy")
        if eng.qty != dc.qty:
            why.append(f"qty {eng.qty} in the engine, {dc.qty} in the drop copy")
        if abs(eng.px - dc.px) > 1e-9 * max(1.0, abs(dc.px)):
            why.append(f"price {eng.px:g} in the engine, {dc.px:g} in the drop copy")
        eid = eng.exec_id
        if why:
            self.counters["mismatches"] += 1
            self._standing.pop(eid, None)
            text = (f"{self.venue} drop copy: execution {eid} of order {eng.cl_ord_id} differs: "
                    f"{'; '.join(why)}")
            self._raise(Difference(MISMATCH, self.venue, dc.symbol, eid, eng.cl_ord_id, text,
                                   now_ns))
            return
        self.counters["matched"] += 1
        if eid in self._standing:
            self._resolve(eid, "both sides now have it and agree", now_ns)

    def _absorb_one(self, x: Execution) -> None:
        self._absorb[x.cl_ord_id] -= x.qty
        self.counters["absorbed"] += 1

    def _raise(self, d: Difference) -> None:
        self._standing[d.exec_id] = d
        log.error("%s", d.text)
        try:
            self.notify(logging.ERROR, d.text, self.index.get(d.symbol, -1))
        except Exception:  # the desks' line is not worth the engine's loop
            log.exception("%s drop copy: notify failed", self.venue)

    def _resolve(self, exec_id: str, how: str, now_ns: int) -> None:
        d = self._standing.pop(exec_id)
        self.counters["resolved"] += 1
        text = f"{self.venue} drop copy: execution {exec_id} of order {d.cl_ord_id}: {how}"
        log.warning("%s (raised %.3f s earlier)", text, (now_ns - d.ts_ns) / 1e9)
        try:
            self.notify(logging.INFO, text, self.index.get(d.symbol, -1))
        except Exception:
            log.exception("%s drop copy: notify failed", self.venue)


class DropCopyClient:
    """One venue's drop copy session and its ``Reconciler`` (module docstring)."""

    def __init__(self, cfg: VenueLinkConfig, link, *, notify: Notify | None = None,
                 index: dict[str, int] | None = None,
                 is_ours: Callable[[str], bool] | None = None,
                 order_up: Callable[[], bool] | None = None,
                 sweep_ms: int = DEFAULT_SWEEP_MS, reset_first_logon: bool = False) -> None:
        """``link``: the drop copy's session driver (``PolledConnection`` or the in-process
        venue's ``DropCopyLink``; ``for_venue`` makes the right one); ``order_up``: whether
        the venue's order session is logged on; ``reset_first_logon``: the session's first
        Logon asks for new sequence numbers (a store that did not survive the last run)."""
        self.cfg = cfg
        self.name = cfg.name
        self.link = link
        self.session: FixSession = link.session
        self.notify = notify if notify is not None else (lambda _level, _text, _inst: None)
        self.reconciler = Reconciler(cfg.name, cfg.sender, grace_ms=cfg.drop_copy_grace_ms,
                                     notify=self.notify, index=index, is_ours=is_ours)
        self.order_up = order_up or (lambda: True)
        self.sweep_ns = sweep_ms * 1_000_000
        self._reset_first = reset_first_logon
        self._next_sweep = 0
        self._started = False
        self._copy_since: int | None = None
        self._order_since: int | None = None
        self._was_up = False  # logged on since the last drop (for the DOWN line)
        self._down_since = 0  # when it was last seen not logged on (start, a drop)
        self._told_down = False  # the desks were told it is not coming up
        self.counters = dict.fromkeys(
            ("logons", "reset_logons", "drops", "session_rejects", "errors"), 0)

    @classmethod
    def for_venue(cls, cfg: VenueLinkConfig, client, *, store: MessageStore | None = None,
                  backoff: Backoff | None = None, **kw) -> DropCopyClient:
        """The drop copy of venue ``cfg`` (whose order client is ``client``): kind fix, a
        session to ``cfg.host:cfg.port`` as ``cfg.drop_copy_sender`` (``store``: where its
        sequence numbers live; None: memory, so its first Logon resets them); kind sim, the
        in-process venue's copy."""
        kw.setdefault("order_up", lambda: client.up)
        if cfg.kind == "sim":
            return cls(cfg, client.drop_copy(cfg.drop_copy_sender, cfg.heartbeat_s), **kw)
        # the venue's credentials, as the order session presents them (already read)
        order_cfg = client.session.config
        session = FixSession(SessionConfig(sender=cfg.drop_copy_sender, target=cfg.target,
                                           initiator=True, heartbeat_s=cfg.heartbeat_s,
                                           reset_on_logon=store is None or cfg.reset_on_logon,
                                           username=order_cfg.username,
                                           password=order_cfg.password),
                             store if store is not None else MemoryStore())
        link = PolledConnection(session, cfg.host, cfg.port, backoff=backoff)
        return cls(cfg, link, reset_first_logon=store is None and not cfg.reset_on_logon, **kw)

    # -- THE LOOP'S SIDE -------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self.link.up

    def fileno(self) -> int:
        return self.link.fileno()

    def next_due_ns(self) -> int:
        nxt = getattr(self.link, "next_due_ns", None)
        due = 0 if nxt is None else nxt()  # a socket: every turn, as FixVenueClient
        if self.reconciler.pending():
            sweep = max(self.reconciler.next_due_ns(), self._next_sweep)
            if sweep < due:
                due = sweep
        return due

    def poll(self, now_ns: int) -> bool:
        """Drive the session, reconcile what arrived, sweep when due; True if anything
        arrived. Never raises."""
        if not self._started:
            self._started = True
            self._down_since = now_ns
            self.reconciler.since(now_ns)
        busy = False
        try:
            events = self.link.poll(now_ns)
        except Exception as e:  # a bug met by what the venue sent: drop the session, go on
            self.counters["errors"] += 1
            log.exception("%s drop copy: the session failed on its input; reconnecting",
                          self.name)
            events = self._fail(f"internal error: {type(e).__name__}: {e}", now_ns)
        if events:
            busy = True
            self._on_events(events, now_ns)
        if now_ns >= self._next_sweep:
            self._next_sweep = now_ns + self.sweep_ns
            up = self.order_up()
            if not up:
                self._order_since = None
            elif self._order_since is None:
                self._order_since = now_ns
            if self.reconciler.pending():
                self.reconciler.sweep(now_ns, copy_since=self._copy_since,
                                      engine_since=self._order_since)
            if (self._copy_since is None and not self._told_down
                    and now_ns - self._down_since >= NOT_UP_WARN_NS):
                self._told_down = True
                why = getattr(self.link, "last_reason", "") or "no Logon"
                log.warning("%s drop copy not logged on for %d s: %s", self.name,
                            NOT_UP_WARN_NS // 1_000_000_000, why)
                self._tell(logging.WARNING, f"{self.name} drop copy not logged on as "
                                            f"{self.cfg.drop_copy_sender}: {why}"[:200])
        return busy

    def _on_events(self, events, now_ns: int) -> None:
        rec = self.reconciler
        for e in events:
            tp = type(e)
            if tp is AppMessage:
                try:
                    rec.on_copy(e.message, now_ns)
                except Exception:  # nothing a venue sends may stop the engine
                    self.counters["errors"] += 1
                    rec.counters["bad_reports"] += 1
                    log.exception("%s drop copy: report could not be reconciled: %r",
                                  self.name, e.message.raw[:512])
            elif tp is LoggedOn:
                self.counters["logons"] += 1
                self.counters["reset_logons"] += e.reset
                self._copy_since = now_ns
                self._was_up = True
                self._told_down = False
                if self._reset_first:  # later Logons resume: a reconnect resends what was lost
                    self._reset_first = False
                    self.session.config = dataclasses.replace(self.session.config,
                                                              reset_on_logon=False)
                log.info("%s drop copy: logged on as %s (%s)", self.name,
                         self.cfg.drop_copy_sender, "reset" if e.reset else "resumed")
                self._tell(logging.INFO, f"{self.name} drop copy up")
            elif tp is Disconnect:
                self.counters["drops"] += 1
                self._copy_since = None
                self._down_since = now_ns
                if self._was_up:
                    self._was_up = False
                    log.warning("%s drop copy down: %s", self.name, e.reason)
                    self._tell(logging.WARNING, f"{self.name} drop copy DOWN: {e.reason}"[:200])
            elif tp in (PeerReject, RejectSent, Garbled):
                self.counters["session_rejects"] += 1
                log.warning("%s drop copy: %s", self.name, e)

    def _fail(self, why: str, now_ns: int) -> list:
        fail = getattr(self.link, "fail", None)
        if fail is not None:
            return fail(why, now_ns)
        self.link.close(now_ns)
        return [Disconnect(why)]

    def _tell(self, level: int, text: str) -> None:
        try:
            self.notify(level, text, -1)
        except Exception:
            log.exception("%s drop copy: notify failed", self.name)

    def close(self, now_ns: int) -> None:
        self.link.close(now_ns)

    # -- THE ENGINE'S FILLS AND WHAT A BENCH READS -----------------------------------------------
    def on_engine_fill(self, exec_id: str, cl_ord_id: str, symbol: str, side: int, qty: int,
                       px: float, now_ns: int) -> None:
        self.reconciler.on_engine_fill(exec_id, cl_ord_id, symbol, side, qty, px, now_ns)

    def positions(self) -> dict[str, int]:
        return self.reconciler.positions()

    def engine_positions(self) -> dict[str, int]:
        return self.reconciler.engine_positions()

    def differences(self) -> list[Difference]:
        return self.reconciler.differences()

    def snapshot(self) -> dict:
        """Counters of the session and the reconciliation (logs, benches, tests)."""
        out = dict(self.reconciler.counters)
        out.update(self.counters)
        out["pending"] = self.reconciler.pending()
        out["up"] = self.up
        return out


def _s(raw: bytes | None) -> str:
    return "<missing>" if raw is None else raw.decode("ascii", "replace")
