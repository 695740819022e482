"""``helmdesk ctl``: the desk's commands from a terminal, through the same command ring.

It attaches like a desk (engine.ipc.attach): the engine grants it the role its OS user has in
the profile's ``[users]``, whatever it is asked to do, and refuses a user it does not list."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from engine.ipc import (
    AttachRefused,
    CommandTimeout,
    EngineClient,
    IpcError,
    Scope,
    Verb,
)
from engine.ipc.commands import STRATEGY_ACTIONS, confirmation_code, order_text
from engine.ipc.events import decode_order, event_text

__all__ = ["run"]


def _err(msg: str) -> None:
    print(f"helmdesk ctl: {msg}", file=sys.stderr)


def _scope(client: EngineClient, symbol: str | None) -> tuple[int, int]:
    if not symbol:
        return Scope.GLOBAL, 0
    for ins in client.instruments:
        if ins.symbol == symbol:
            return Scope.INSTRUMENT, ins.index
    known = ", ".join(i.symbol for i in client.instruments)
    raise ValueError(f"unknown instrument {symbol!r} (engine trades {known})")


def _named_scope(client: EngineClient, text: str) -> tuple[int, int]:
    """A scope's name ("global", "strategy:pairs") -> (scope, scope_id), from the engine's own
    kill-switch table; ``ValueError`` lists the names it knows."""
    if text in ("global", "desk"):
        return Scope.GLOBAL, 0
    rows = None
    for _ in range(100):  # a torn read: the engine was writing; read again
        rows = client.read_kill()
        if rows is not None:
            break
    if rows is None:
        raise ValueError("could not read the engine's kill switch table")
    hit = rows[rows["name"] == text.encode()]
    if not len(hit):
        kind = text.split(":", 1)[0]
        known = [r["name"].decode() for r in rows if r["name"].decode().startswith(kind + ":")]
        raise ValueError(f"no scope {text!r} in this engine"
                         + (f" (its {kind}s: {', '.join(known)})" if known else
                            " (scopes are global or KIND:NAME, KIND instrument, strategy, "
                            "venue, account or trader)"))
    return int(hit[0]["scope"]), int(hit[0]["scope_id"])


def _status(client: EngineClient) -> int:
    s = client.status()
    started = datetime.fromtimestamp(s.epoch_wall_ns / 1e9).isoformat(sep=" ", timespec="seconds")
    kill = "TRIPPED" if s.kill_tripped else "armed"
    if s.kill_tripped:
        kill += f" by {s.kill_user or '?'}" + (f": {s.kill_reason}" if s.kill_reason else "")
    print(f"instance     {s.instance}")
    print(f"pid          {s.pid}")
    print(f"state        {s.state}")
    print(f"epoch        {s.epoch_wall_ns} ({started})")
    print(f"heartbeat    {s.heartbeat_age_ms:.1f} ms ago (#{s.heartbeat_count})")
    print(f"idle         {s.idle}")
    print(f"kill switch  {kill}")
    rows = client.read_kill()
    if rows is not None:
        states = {1: "REDUCING", 2: "HALTED"}
        tripped = [f"{r['name'].decode()} {states.get(int(r['state']), '?')}"
                   for r in rows[1:] if r["state"]]
        if tripped:
            print(f"tripped      {', '.join(tripped)}")
    print(f"instruments  {', '.join(i.symbol for i in s.instruments)}")
    if s.venues:
        print(f"venues       {', '.join(_venue_text(v) for v in s.venues)}")
    print(f"commands     {s.commands_accepted} accepted, {s.commands_rejected} rejected")
    dropped = {k: v for k, v in s.rejects.items() if v}
    if dropped:  # what desks wrote into shared memory that the engine refused
        print(f"desk input   refused: {', '.join(f'{k} {v}' for k, v in sorted(dropped.items()))}")
    stale = s.heartbeat_age_ms > 1000 or s.state != "running"
    if stale:
        _err(f"engine looks dead: state {s.state}, heartbeat {s.heartbeat_age_ms:.0f} ms old")
        return 3
    return 0


def _venue_text(v) -> str:
    if not v.up:
        return f"{v.name} DOWN"
    return f"{v.name} up" + ("" if v.books_ok else " (books not good)")


def _orders(args: argparse.Namespace, instance: str) -> int:
    """Orders (and one order's executions) as the database has them: every identifier whole,
    whatever its length; works with or without a running engine."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from engine.store import models as m

    url, rc = _db_url(args, instance)
    if url is None:
        return rc
    safe = m.safe_url(url)
    try:
        db = m.open_db(url, create=False)
        with db.connect() as conn:
            q = select(m.orders)
            if args.order_id:
                q = q.where(m.orders.c.cl_ord_id == args.order_id)
            rows = conn.execute(q.order_by(m.orders.c.updated_ns.desc()).limit(args.last)).all()
            execs = conn.execute(select(m.executions).where(
                m.executions.c.cl_ord_id == args.order_id).order_by(
                m.executions.c.ts_ns)).all() if args.order_id else []
        db.dispose()
    except SQLAlchemyError as e:
        _err(f"cannot read {safe}: {str(getattr(e, 'orig', e)).splitlines()[0]}")
        return 3
    if args.order_id and not rows:
        _err(f"no order {args.order_id!r} in {safe}")
        return 1
    for r in reversed(rows):
        px = "market" if r.price is None else f"{r.price:g}"
        side = {1: "buy", 2: "sell"}.get(r.side, str(r.side))
        print(f"{r.cl_ord_id}  {r.venue} {r.symbol} {side} {r.qty} @ {px} {r.tif}  "
              f"{r.status} {r.cum_qty} filled at {r.avg_px:g}, {r.leaves_qty} left  "
              f"venue id {r.venue_order_id or '-'}")
    for e in execs:
        print(f"  execution {e.exec_id}  {e.qty} @ {e.price:g}  "
              f"{datetime.fromtimestamp(e.ts_ns / 1e9):%H:%M:%S.%f}")
    return 0


def _db_url(args: argparse.Namespace, instance: str) -> tuple[str | None, int]:
    """The engine's database URL (its profile's [database], or the instance's SQLite file), or
    None and the exit code, said, when there is none to read."""
    from engine.core.paths import data_dir
    from engine.core.profile import DEFAULT_DATABASE_URL, ProfileError, load_profile
    from engine.store.models import safe_url

    try:
        if args.profile:
            url = load_profile(args.profile).database(str(data_dir()))
        else:
            url = DEFAULT_DATABASE_URL.format(data_dir=data_dir(), instance=instance)
    except ProfileError as e:
        _err(str(e))
        return None, 2
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        _err(f"no database for engine {instance!r} at {safe_url(url)} (give --profile for "
             f"another)")
        return None, 3
    return url, 0


def _audit_times(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """--since and --until in ns; ``ValueError`` names the option and the input."""
    from engine.store.audit import parse_when

    now = time.time_ns()
    out = []
    for opt, text in (("--since", args.since), ("--until", args.until)):
        try:
            out.append(None if text is None else parse_when(text, now))
        except ValueError as e:
            raise ValueError(f"{opt}: {e}") from None
    since, until = out
    if since is not None and until is not None and since >= until:
        raise ValueError(f"--since {args.since!r} is not before --until {args.until!r}")
    return since, until


def _audit(args: argparse.Namespace, instance: str) -> int:
    """The audit trail from the database, oldest first, one line per entry; works with or
    without a running engine."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.store.audit import KINDS, read_audit
    from engine.store.models import safe_url
    from engine.store.schema import SchemaError

    try:
        since, until = _audit_times(args)
    except ValueError as e:
        _err(str(e))
        return 2
    url, rc = _db_url(args, instance)
    if url is None:
        return rc
    last = args.last if args.last is not None else (None if since is not None else 100)
    try:
        entries = read_audit(url, since_ns=since, until_ns=until, kinds=args.kind or KINDS,
                             last=last)
    except SchemaError as e:
        _err(str(e))
        return 3
    except SQLAlchemyError as e:
        _err(f"cannot read {safe_url(url)}: {str(getattr(e, 'orig', e)).splitlines()[0]}")
        return 3
    for e in entries:
        print(e.line())
    if not entries:
        _err(f"no audit entries in {safe_url(url)} for that selection")
    return 0


def run(args: argparse.Namespace, instance: str) -> int:
    if args.verb == "orders":
        return _orders(args, instance)
    if args.verb == "audit":
        return _audit(args, instance)
    try:
        client = EngineClient(instance, commands=args.verb != "status", workstation="ctl")
    except AttachRefused as e:  # this OS user is not in the engine's [users], say
        _err(str(e) + ("" if args.verb == "status" else f"; {args.verb} not sent"))
        return 3
    except IpcError as e:
        _err(f"{e} (instance {instance!r}; start one with 'helmdesk' or 'helmdesk engine')"
             + ("" if args.verb == "status" else f"; {args.verb} not sent"))
        return 3
    try:
        if args.verb == "status":
            return _status(client)
        s = client.status()
        if s.state != "running" or s.heartbeat_age_ms > 1000:
            _err(f"engine {instance!r} (pid {s.pid}) is not running: state {s.state}, "
                 f"heartbeat {s.heartbeat_age_ms:,.0f} ms old; {args.verb} not sent")
            return 3
        if args.verb == "positions":
            return _positions(client, args.book)
        if args.verb == "limits" and not args.limits_verb:
            return _limits(client)
        if args.verb == "recon" and not args.recon_verb:
            return _recon(client)
        if args.verb == "strategy" and not args.strategy_verb:
            return _strategies(client)
        if args.verb == "strategy":
            args.scope = f"strategy:{args.name}"
        try:
            if getattr(args, "scope", None):
                scope, sid = _named_scope(client, args.scope)
            else:
                scope, sid = _scope(client, getattr(args, "instrument", None) or
                                    getattr(args, "symbol", None))
        except ValueError as e:
            _err(str(e))
            return 2
        verb = _VERBS[args.verb]
        arg0 = arg1 = 0.0
        text = getattr(args, "reason", "") or ""
        if verb is Verb.KILL:
            arg0 = 1.0 if args.state == "reducing" else 2.0
        elif verb is Verb.REARM:
            name = args.scope or (f"instrument:{args.instrument}" if args.instrument else "global")
            if not args.confirm:
                _err(f"re-arming {name} needs its name typed again: --confirm {name}")
                return 2
            arg0 = 1.0 if args.to == "reducing" else 0.0
            arg1 = confirmation_code(args.confirm)
        elif verb is Verb.LIMIT:
            arg0, text = args.value, f"{args.key} {args.reason}"
        elif verb is Verb.RECON:
            arg0, arg1 = float(args.diff_id), 1.0 if args.recon_verb == "correct" else 0.0
        elif verb is Verb.STRATEGY:
            arg0 = float({v: k for k, v in STRATEGY_ACTIONS.items()}[args.strategy_verb])
        elif verb is Verb.ORDER:
            arg0, arg1 = float(args.qty), float(args.price or 0.0)
            text = order_text(args.venue, args.side, args.tif)
        elif verb is Verb.CANCEL:
            text = args.order_id
        elif verb is Verb.CANCEL_ALL:
            text = args.venue
        t0 = time.perf_counter()
        try:
            ack = client.request(verb, scope, sid, arg0=arg0, arg1=arg1, text=text,
                                 timeout=args.timeout)
        except CommandTimeout as e:
            _err(str(e))
            return 4
        except IpcError as e:
            _err(str(e))
            return 3
        rtt_us = (time.perf_counter() - t0) * 1e6
        if not ack.accepted:
            _err(f"{verb.name} REJECTED: {ack.reason}")
            return 1
        print(f"{verb.name} accepted: {ack.reason} ({rtt_us:.0f} µs)")
        if verb is Verb.ORDER and not args.no_wait:
            kind, ident = ack.reason.split()[:2]
            if kind == "parent":
                return _await_parent(client, ident, args.timeout)
            return _await_answer(client, ident, args.timeout)
        return 0
    finally:
        client.close()


_VERBS = {"kill": Verb.KILL, "rearm": Verb.REARM, "ping": Verb.PING, "order": Verb.ORDER,
          "cancel": Verb.CANCEL, "cancel-all": Verb.CANCEL_ALL, "limits": Verb.LIMIT,
          "recon": Verb.RECON, "strategy": Verb.STRATEGY}


def _risk_table(client: EngineClient, name: str):
    for _ in range(100):  # None: a torn read (the engine was writing): read again
        rows = client.read_risk(name)
        if rows is not None:
            return rows
    raise IpcError(f"could not read the engine's {name} table")


def _positions(client: EngineClient, book: str | None) -> int:
    """Positions and P&L per book and instrument, as the engine publishes them."""
    rows = _risk_table(client, "positions")
    symbols = [i.symbol for i in client.instruments]
    if book:
        rows = rows[rows["book"] == book.encode()]
        if not len(rows):
            _err(f"no book {book!r} with positions (books: desk, strategy:NAME, account:NAME)")
            return 1
    print(f"{'book':<20} {'instrument':<12} {'qty':>10} {'avg px':>12} {'mark':>12} "
          f"{'unrealized':>14} {'realized':>14} {'fees':>10} {'working b/s':>14}")
    for r in rows:
        i = int(r["instrument"])
        inst = "TOTAL" if i < 0 else symbols[i] if i < len(symbols) else f"#{i}"
        qty = "" if i < 0 else f"{int(r['qty']):+,d}"
        avg = "" if i < 0 else f"{float(r['avg_px']):,.4f}"
        mark = "" if i < 0 or r["mark"] != r["mark"] else f"{float(r['mark']):,.4f}"
        print(f"{r['book'].decode():<20} {inst:<12} {qty:>10} {avg:>12} {mark:>12} "
              f"{float(r['unrealized']):>14,.2f} {float(r['realized']):>14,.2f} "
              f"{float(r['fees']):>10,.2f} {int(r['working_buy']):>6,d}/{int(r['working_sell']):<7,d}")
    if not len(rows):
        print("no positions")
    return 0


def _limits(client: EngineClient) -> int:
    """Every limit, and how much of those the engine measures is used."""
    rows = _risk_table(client, "limits")
    print(f"{'limit':<24} {'scope':<24} {'used':>16} {'limit':>16} {'used %':>8}")
    for r in rows:
        used = float(r["used"])
        frac = float(r["fraction"])
        print(f"{r['key'].decode():<24} {r['scope'].decode():<24} "
              f"{'' if used != used else f'{used:,.2f}':>16} {float(r['limit']):>16,.2f} "
              f"{'' if frac != frac else f'{frac:.0%}':>8}")
    return 0


def _recon(client: EngineClient) -> int:
    """The differences a restart found, open ones first."""
    rows = _risk_table(client, "recon")
    if not len(rows):
        print("no differences: the database and the venues agree")
        return 0
    state = {0: "OPEN", 1: "accepted", 2: "corrected"}
    for r in sorted(rows, key=lambda r: (int(r["state"]) != 0, int(r["id"]))):
        kind = "order" if int(r["kind"]) == 0 else "position"
        print(f"{int(r['id']):>4}  {state.get(int(r['state']), '?'):<9} {kind:<8} "
              f"{r['key'].decode():<24} database {int(r['db_qty']):+d}  venue "
              f"{int(r['venue_qty']):+d}  {r['text'].decode(errors='replace')}")
    return 1 if any(int(r["state"]) == 0 for r in rows) else 0


_STATES = {0: "running", 1: "PAUSED", 2: "HALTED (risk)", 3: "stopped"}


def _strategies(client: EngineClient) -> int:
    """Each strategy: state, key figures, and its top signal rows."""
    rows = _risk_table(client, "strategies")
    if not len(rows):
        print("this engine runs no strategies ([[strategies]] in its profile)")
        return 0
    signals = _risk_table(client, "signals")
    for k, r in enumerate(rows):
        figures = "  ".join(f"{r['fig_names'][j].decode()} {float(r['fig_values'][j]):,.6g}"
                            for j in range(int(r["n_figures"])))
        print(f"{r['name'].decode():<24} {r['kind'].decode():<12} "
              f"{_STATES.get(int(r['state']), '?'):<14} {figures}")
        cols = [c.decode() for c in r["sig_cols"]]
        mine = signals[signals["strategy"] == k]
        if len(mine) and any(cols):
            print("    " + f"{'':<16}" + "".join(f"{c:>12}" for c in cols if c))
            for s in mine[:5]:
                print("    " + f"{s['label'].decode():<16}" + "".join(
                    f"{float(v):>12,.4g}" for v, c in zip(s["values"], cols) if c))
    return 0


def _events_until(client: EngineClient, timeout: float):
    """Yield each event record as it arrives, until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield from client.poll_events()
        time.sleep(0.005)


def _await_parent(client: EngineClient, parent_id: str, timeout: float) -> int:
    """Show a router parent's progress until it is done (or ``timeout`` passes)."""
    symbols = [i.symbol for i in client.instruments]
    head = f"SOR {parent_id} "
    for rec in _events_until(client, timeout):
        text = event_text(rec, symbols)
        if text.startswith(head):
            print(text, flush=True)
            if " Working " not in text:
                return 0
    print(f"{parent_id} still working after {timeout:g} s (watch the desk's blotter)")
    return 0


def _await_answer(client: EngineClient, cl_ord_id: str, timeout: float) -> int:
    """Show the order's events until the venue has answered (or ``timeout`` passes)."""
    symbols = [i.symbol for i in client.instruments]
    for rec in _events_until(client, timeout):
        o = decode_order(rec, symbols)
        if o is not None and o.cl_ord_id == cl_ord_id and o.status != "PendingNew":
            print(event_text(rec, symbols), flush=True)
            return 1 if o.status == "Rejected" else 0
    _err(f"no answer from the venue about {cl_ord_id} within {timeout:g} s "
         f"(it is still PendingNew; watch the desk's blotter)")
    return 4
