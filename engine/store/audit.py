"""The audit trail read back from the database: ``read_audit(url, …) -> list[AuditEntry]``.

What an engine keeps, whatever it trades (DESIGN.md, "Persistence"): every command a desk or
``helmdesk ctl`` sent, with the engine's answer (``commands``); every order (``orders`` holds
one row per order, its latest state: the entry stands at the order's creation and its answer
is where the order is now); every execution; every kill switch change; every limit edit.
``helmdesk ctl audit`` prints the entries one line each, oldest first; this module does the
reading and the wording, so a desk can show the same lines.

Times are UTC. A time range is ``since <= ts < until``; ``last`` keeps the newest entries of the
selection (each table is asked for at most that many, newest first, then they are merged).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from engine.store import models as m
from engine.store.schema import SCHEMA_VERSION, SchemaError, version

__all__ = ["KINDS", "AuditEntry", "format_ts", "parse_when", "read_audit"]

#: What the trail holds, in the order entries of one nanosecond are listed (a command, then
#: what it did).
KINDS = ("commands", "orders", "executions", "kills", "limits")
_LABEL = {"commands": "command", "orders": "order", "executions": "execution", "kills": "kill",
          "limits": "limit"}
_SIDES = {1: "buy", 2: "sell", 5: "sell short", 6: "sell short exempt"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the trail. ``who``/``role``/``workstation`` are "" where the table keeps
    none (orders and executions: their command, if a person sent one, has them)."""

    ts_ns: int
    kind: str  #: one of KINDS
    who: str
    role: str
    workstation: str
    what: str
    answer: str

    def line(self) -> str:
        """Time (UTC), who, role, workstation, kind, what, and the answer after "=>"."""
        head = (f"{format_ts(self.ts_ns)}  {self.who or '-':<12} {self.role or '-':<14} "
                f"{self.workstation or '-':<12} {_LABEL[self.kind]:<9}  {self.what}")
        return f"{head}  => {self.answer}" if self.answer else head


def format_ts(ts_ns: int) -> str:
    """``2026-12-04 10:00:00.123456Z``: UTC, to the microsecond."""
    dt = _EPOCH + timedelta(microseconds=ts_ns // 1000)
    return dt.strftime("%Y-%m-%d %H:%M:%S.%fZ")


def parse_when(text: str, now_ns: int) -> int:
    """A time in ns: ISO (``2026-12-04T10:00``, ``2026-12-04``; UTC unless it carries an
    offset) or a time ago (``30s``, ``15m``, ``2h``, ``1d``, ``1w``). ``ValueError`` names
    the input and says what would do."""
    t = text.strip()
    ago = _AGO.match(t)
    if ago:
        return now_ns - int(float(ago.group(1)) * _UNITS[ago.group(2)] * 1_000_000_000)
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give an ISO time (2026-12-04T10:00 or 2026-12-04, UTC "
            f"unless it has an offset such as +01:00) or a time ago (30s, 15m, 2h, 1d, 1w)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def read_audit(url: str, *, since_ns: int | None = None, until_ns: int | None = None,
               kinds: Iterable[str] = KINDS, last: int | None = None) -> list[AuditEntry]:
    """The trail in the database at ``url``, oldest first (module docstring).

    Raises ``ValueError`` for an unknown kind, ``SchemaError`` for a database whose schema is
    not this code's (a newer one, or an older one its engine has not migrated yet), and
    whatever SQLAlchemy raises when the database cannot be read.
    """
    kinds = list(dict.fromkeys(kinds))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown audit kind {bad[0]!r} (kinds: {', '.join(KINDS)})")
    db = m.open_db(url, create=False)
    try:
        v = version(db)
        if v < SCHEMA_VERSION:
            raise SchemaError(
                f"database {m.safe_url(url)} has schema version {v}, older than this "
                f"Helmdesk's ({SCHEMA_VERSION}): start its engine once (that migrates it), "
                f"then ask again" if v else f"database {m.safe_url(url)} holds no Helmdesk "
                f"tables (no engine has written to it)")
        out: list[AuditEntry] = []
        with db.connect() as conn:
            for kind in kinds:
                table, ts = _SOURCES[kind]()
                q = select(table)
                if since_ns is not None:
                    q = q.where(ts >= since_ns)
                if until_ns is not None:
                    q = q.where(ts < until_ns)
                q = q.order_by(ts.desc())
                if last is not None:
                    q = q.limit(last)
                entry = _ENTRY[kind]
                out.extend(entry(r) for r in conn.execute(q))
    finally:
        db.dispose()
    rank = {k: i for i, k in enumerate(KINDS)}
    out.sort(key=lambda e: (e.ts_ns, rank[e.kind]))
    return out[-last:] if last is not None else out


# -- each table as entries ------------------------------------------------------------------------
_SOURCES = {
    "commands": lambda: (m.commands, m.commands.c.ts_ns),
    "orders": lambda: (m.orders, m.orders.c.created_ns),
    "executions": lambda: (m.executions, m.executions.c.ts_ns),
    "kills": lambda: (m.kill_events, m.kill_events.c.ts_ns),
    "limits": lambda: (m.limit_changes, m.limit_changes.c.ts_ns),
}


def _num(x: float) -> str:
    return f"{x:g}"


def _command(r) -> AuditEntry:
    what = r.verb
    if r.scope != "GLOBAL":
        what += f" {r.scope.lower()} #{r.scope_id}"
    if r.arg0 or r.arg1:
        what += f" {_num(r.arg0)} {_num(r.arg1)}"
    if r.text:
        what += f" {r.text!r}"
    answer = r.status + (f": {r.reason}" if r.reason else "")
    return AuditEntry(r.ts_ns, "commands", r.user, r.role.lower(), r.workstation, what, answer)


def _order(r) -> AuditEntry:
    px = "market" if r.price is None else _num(r.price)
    what = (f"{r.cl_ord_id} {r.venue} {r.symbol} {_SIDES.get(r.side, str(r.side))} {r.qty} @ "
            f"{px} {r.tif}" + (f" (child of {r.parent_id})" if r.parent_id else ""))
    answer = f"{r.status} {r.cum_qty}/{r.qty}"
    if r.cum_qty:
        answer += f" at {_num(r.avg_px)}"
    if r.venue_order_id:
        answer += f", venue id {r.venue_order_id}"
    return AuditEntry(r.created_ns, "orders", "", "", "", what, answer)


def _execution(r) -> AuditEntry:
    what = (f"{r.exec_id} {r.venue} {r.symbol} {_SIDES.get(r.side, str(r.side))} {r.qty} @ "
            f"{_num(r.price)} for {r.cl_ord_id}")
    return AuditEntry(r.ts_ns, "executions", "", "", "", what, "")


def _kill(r) -> AuditEntry:
    what = f"{r.scope_name} {r.state.upper()}" + (f": {r.reason!r}" if r.reason else "")
    return AuditEntry(r.ts_ns, "kills", r.user, "", "", what, "")


def _limit(r) -> AuditEntry:
    what = (f"{r.scope} {r.key} {r.old_value or '(none)'} -> {r.new_value or '(none)'}"
            + (f": {r.reason!r}" if r.reason else ""))
    return AuditEntry(r.ts_ns, "limits", r.user, r.role.lower(), r.workstation, what, "")


_ENTRY = {"commands": _command, "orders": _order, "executions": _execution, "kills": _kill,
          "limits": _limit}
