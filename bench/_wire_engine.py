"""Bench-only engine launcher for bench/wire.py: ``python -m engine`` plus wire stamps.

    HELMDESK_WIRE_TRACE=OUT.json python -m bench._wire_engine --profile P

Runs exactly what ``python -m engine --profile P`` runs (``engine.main``: pinning, logging,
the store writer, the segment, signals), with what the bench needs added at run time, never
by editing the engine:

- **stamps** (``time.perf_counter_ns``, CLOCK_MONOTONIC: the same clock in every process, so
  the bench can line them up with its own): the FIX venue client's session gets a wrapper
  around ``receive_data`` (stamp ``read``: the bytes of a socket read are in hand) and its
  connection one around ``send`` (stamp ``sent``: a NewOrderSingle has been written to the
  socket). Each NewOrderSingle sent becomes one record: its ClOrdID, the stamps of the turn
  that sent it and ``n``, its place among the turn's orders. Two wrappers cost the hot path
  a few hundred ns.
- ``HELMDESK_WIRE_STAGES=1`` also stamps the turn's stages, first time each in the turn:
  ``polled`` (venue clients polled: FIX decoded, market data checked), ``books`` (market data
  normalized into the books), ``on_book`` (a strategy's callback entered), ``submit`` (the
  door entered), ``risk`` (the pre-trade chain passed), ``cancel_sent`` (an
  OrderCancelRequest written); and the inclusive time of each part of the turn up to the
  NewOrderSingle (``spent``: the venue poll, FIX decode and encode, market-data checks and
  normalizing, the books, the strategy's reads, cancels, submits, the risk chain, each
  subscriber of order updates, garbage collections), summed over the whole turn and kept
  with its first order.
  Some twenty wrappers: a trace run, not the figure.
- ``kind = "wirequoter"`` (``WireQuoter``): a bench-only strategy that requotes a bid and an
  ask around the mid when it moves: the main keys' strategy in a tree without the market
  maker (``kind = "marketmaker"``, which the bench uses when it exists).

The records are written as JSON to ``$HELMDESK_WIRE_TRACE`` when the loop ends (SIGTERM).
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import time

from engine.core.intents import BUY, SELL, OrderIntent
from engine.strategy.api import Strategy
from engine.strategy.registry import KINDS

__all__ = ["WireQuoter", "main"]

_D = b"D"
_CL_FIELD = re.compile(rb"(?:^|\x01)11=([^\x01]*)")
_F = b"F"


class WireQuoter(Strategy):
    """Quote ``qty`` at mid ± ``half_spread_ticks`` on ``venue``; when the mid moves by
    ``requote_ticks`` or more from the quoted one, cancel both quotes and send new ones."""

    kind = "wirequoter"
    wants_books = True

    def __init__(self, *, venue: str, qty: int, half_spread_ticks: int, requote_ticks: int,
                 symbols: list[str], ticks: list[float]) -> None:
        super().__init__()
        self.venue = venue
        self.qty = qty
        self.half = half_spread_ticks
        self.requote = requote_ticks
        self.symbols = symbols
        self.ticks = ticks
        self.quoted_mid = [None] * len(symbols)  # in ticks
        self.working: list[list[str]] = [[] for _ in symbols]
        self.refused = 0

    @classmethod
    def from_config(cls, config, profile) -> WireQuoter:
        r = config.reader()
        venue = r.get("venue", str)
        qty = r.integer("qty", 1, lo=1, hi=1_000_000)
        half = r.integer("half_spread_ticks", 1, lo=1, hi=1000)
        requote = r.integer("requote_ticks", 1, lo=1, hi=1000)
        r.done()
        return cls(venue=venue, qty=qty, half_spread_ticks=half, requote_ticks=requote,
                   symbols=[i.symbol for i in profile.instruments],
                   ticks=[i.tick for i in profile.instruments])

    def on_book(self, ctx, instruments, now_ns: int) -> None:
        market = ctx.market
        for i in instruments:
            i = int(i)
            bid, _bs, ask, _as = market.consolidated(i)
            if not bid[0] or not ask[0]:
                continue
            tick = self.ticks[i]
            mid = round((bid[0] + ask[0]) / (2 * tick))
            q = self.quoted_mid[i]
            if q is not None and abs(mid - q) < self.requote:
                continue
            for cl in self.working[i]:
                ctx.cancel(cl, now_ns)
            self.working[i] = []
            self.quoted_mid[i] = mid
            sym = self.symbols[i]
            for side, px in ((BUY, mid - self.half), (SELL, mid + self.half)):
                r = ctx.submit(OrderIntent(symbol=sym, side=side, qty=self.qty,
                                           price=round(px * tick, 8), venue=self.venue), now_ns)
                if isinstance(r, str):
                    self.refused += 1
                else:
                    self.working[i].append(r.cl_ord_id)

    def on_order(self, ctx, update, order) -> None:
        if update.leaves_qty <= 0:
            for w in self.working:
                if order.cl_ord_id in w:
                    w.remove(order.cl_ord_id)

    def figures(self) -> dict[str, float]:
        return {"refused": self.refused}


# -- stamps --------------------------------------------------------------------------------------
class _Stamps:
    """The stamps of the current turn and the records of the NewOrderSingles sent."""

    def __init__(self, stages: bool) -> None:
        self.stages = stages
        self.turn: dict[str, int] = {}
        self.n = 0  # NewOrderSingles sent since the last read
        self.records: list[dict] = []
        self.spent: dict[str, int] = {}  # stages: inclusive ns per part in this turn

    def install(self, node) -> None:
        clock = time.perf_counter_ns
        kernel = node.kernel
        clients = [c for c in kernel.execution.clients.values() if hasattr(c, "conn")]
        for c in clients:
            self._wrap_client(c, clock)
        if not self.stages:
            return
        turn = self.turn

        def first(name: str, fn):
            def wrapper(*a, **kw):
                r = fn(*a, **kw)
                if name not in turn:
                    turn[name] = clock()
                return r
            return wrapper

        def first_in(name: str, fn):
            def wrapper(*a, **kw):
                if name not in turn:
                    turn[name] = clock()
                return fn(*a, **kw)
            return wrapper

        execution = kernel.execution
        execution.poll = first("polled", execution.poll)
        market = kernel.market
        market.step = first("books", market.step)
        for s in kernel.strategies.strategies:
            s.on_book = first_in("on_book", s.on_book)
        for ctx in kernel.strategies.contexts:
            ctx._submit = first_in("submit", ctx._submit)
        risk = kernel.risk
        risk.check_intent = first("risk", risk.check_intent)
        self._install_spent(kernel, clients, clock)

    def _install_spent(self, kernel, clients, clock) -> None:
        """Inclusive time per part, summed over the turn (``spent``): which part the turn's
        time goes to. Nested parts count in their callers too."""
        spent = self.spent

        def timed(name: str, fn):
            def wrapper(*a, **kw):
                t = clock()
                try:
                    return fn(*a, **kw)
                finally:
                    spent[name] = spent.get(name, 0) + clock() - t
            return wrapper

        def wrap(obj, attr: str, name: str) -> None:
            setattr(obj, attr, timed(name, getattr(obj, attr)))

        import engine.fix.session as fix_session

        fix_session.encode = timed("FIX codec: encode", fix_session.encode)
        fix_session.frame = timed("FIX codec: encode", fix_session.frame)
        for c in clients:
            conn = c.conn
            wrap(conn, "poll", "venue poll: recv + FIX session")
            wrap(conn.session, "receive_data", "FIX session: receive_data (decode, checks)")
            wrap(conn.session, "_send_unrecorded", "FIX session: send (encode, queue)")
            wrap(conn.session.store, "record_sent", "FIX store: sent message to the ring")
            wrap(conn.session.store, "set_next_target_seq", "FIX store: target seq to the ring")
            wrap(conn, "_flush", "socket send")
            if c.md is not None:
                wrap(c.md, "on_message", "md RptSeq/level checks")
        market = kernel.market
        for src in market.sources:
            for norm in getattr(src, "normalizers", ()):
                wrap(norm, "on_message", "md normalize (FIX -> MD_EVENT)")
        wrap(market, "flush", "books: apply batch")
        wrap(market, "consolidated", "market.consolidated (strategy read)")
        for ctx in kernel.strategies.contexts:
            wrap(ctx, "_cancel", "cancel (OMS + encode + send + updates)")
            wrap(ctx, "_submit", "submit (risk + OMS + encode + send + updates)")
        wrap(kernel.risk, "check_intent", "pre-trade risk chain")
        ex = kernel.execution
        wrapped = {id(fn): timed(f"order update -> {getattr(fn, '__qualname__', fn)}", fn)
                   for fn in ex._subscribers}
        for subs in (ex._subscribers, ex._now_subs, ex._deferred_subs):  # the same, wrapped
            subs[:] = [wrapped[id(fn)] for fn in subs]
        gc_start = [0]

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                gc_start[0] = clock()
            else:
                name = f"gc: generation {info['generation']} collection"
                spent[name] = spent.get(name, 0) + clock() - gc_start[0]
        gc.callbacks.append(on_gc)
        records = self.records
        step = kernel.step

        def step_then_keep(now_ns):
            n0 = len(records)
            r = step(now_ns)
            if self.n and len(records) > n0:  # this turn sent orders: its parts, whole
                records[len(records) - self.n]["spent"] = dict(spent)
            return r
        kernel.step = step_then_keep

    def _wrap_client(self, c, clock) -> None:
        session = c.conn.session
        conn = c.conn
        receive = session.receive_data
        send = conn.send
        turn = self.turn
        records = self.records
        stages = self.stages

        spent = self.spent

        def receive_data(data, now_ns):
            turn.clear()
            spent.clear()
            turn["read"] = clock()
            self.n = 0
            return receive(data, now_ns)

        def send_timed(msg_type, body, now_ns):
            seq = send(msg_type, body, now_ns)
            if msg_type == _D:
                t = clock()
                if type(body) is bytes:  # encoded already (the OMS's templates)
                    m = _CL_FIELD.search(body)
                    cl = m.group(1) if m else b""
                else:
                    cl = next((v for k, v in body if k == 11), b"")
                rec = dict(turn)
                rec["sent"] = t
                rec["n"] = self.n
                rec["cl"] = cl.decode() if isinstance(cl, bytes) else str(cl)
                records.append(rec)
                self.n += 1
            elif stages and msg_type == _F and "cancel_sent" not in turn:
                turn["cancel_sent"] = clock()
            return seq

        session.receive_data = receive_data
        conn.send = send_timed


def main(argv: list[str] | None = None) -> int:
    from engine import main as engine_main
    from engine.node import LiveNode

    KINDS.setdefault("wirequoter", "bench._wire_engine:WireQuoter")
    out = os.environ.get("HELMDESK_WIRE_TRACE")
    stamps = _Stamps(os.environ.get("HELMDESK_WIRE_STAGES") == "1")
    run = LiveNode.run

    def run_stamped(node) -> None:
        stamps.install(node)
        try:
            run(node)
        finally:
            if out:
                tmp = out + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(stamps.records, f)
                os.replace(tmp, out)

    LiveNode.run = run_stamped
    return engine_main.main(argv)


if __name__ == "__main__":
    sys.exit(main())
