"""``python -m engine.store.writer --instance X``: the store's write-behind writer process.

Started by the engine's ``StoreLink`` (link.py), never by hand. The database URL comes from
``$HELMDESK_STORE_URL`` (or ``--url``; the environment keeps a password out of ``ps``), the
default being the instance's SQLite file. Logs to ``<data>/logs/store-<instance>.log``.

Theory of operation
-------------------
- **Start.** Attach to ``helmdesk.<instance>.store`` (never unlink it: the engine owns it),
  take the writer lock byte, open the database (create the tables, SQLite WAL), load the
  positions, then say READY in the header. A failure is written into the header (the engine's
  error message quotes it) and the process exits 3.
- **Loop.** Read up to ``--batch`` records from the ring's head without moving it, decode them,
  apply them all in one transaction, commit, publish the highest durable sequence number, and
  only then move the head past them. An empty ring means a short sleep (0.5 ms while traffic
  is recent, 1 ms after 50 ms of quiet): the writer never spins a core.
- **Idempotent.** Head moves only after a commit, so a restarted writer re-reads what its
  predecessor may already have committed. Every record is therefore safe to apply twice:
  orders, FIX sequence numbers and messages are upserts (last write wins, in ring order);
  executions, commands, kill events and limit changes are inserts that ignore a row already
  there, and a
  position moves only with an execution that was really inserted. A record whose sequence
  number is at or below the published durable one is skipped as already written.
- **Bad records** (unknown kind, a broken header, a sequence number out of order, a field that
  does not decode or makes no sense) are logged with the reason, counted in the header and
  acknowledged, so nothing behind them stalls. A batch the database refuses as a whole for a
  data reason (integrity, data errors) is retried one record per transaction to find the bad
  ones. Operational errors (database locked, disk full, connection lost) are *not* the
  records' fault: nothing is acknowledged, the batch is retried with a growing pause.
- **Stop.** The stop word (engine's ``close``): write what is in the ring, then exit 0. SIGINT
  and SIGTERM are ignored: Ctrl-C, ``timeout`` and a service manager signal the whole process
  group, and a writer that left first would lose what its engine writes while stopping (the
  engine decides; a writer whose engine is gone stops by itself, below).
- **Orphan.** When the engine dies (our parent pid changes), write what is in the ring, unlink
  the segment (nobody else will) and exit 0. If the database stays unusable for 30 s the
  segment is left for the next engine start to write.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy import exc as sa_exc

from engine.core.positions import apply_fill
from engine.ipc.layout import RING_CONTROL
from engine.ipc.segment import IpcError, Segment, try_lock, unlink_segment
from engine.store import models as m
from engine.store.records import (
    COMMAND,
    EXECUTION,
    FIX_MSG,
    FIX_RESET,
    FIX_SEQ,
    HDR,
    HEADER_SIZE,
    KILL,
    KILL_STATES,
    LIMIT,
    LIMIT_FIELDS,
    ORDER_TAG,
    ORDER_TAG_FIELDS,
    ORDER,
    RING_OFF,
    SLOT,
    STATUS_OF_CODE,
    STORE_MAGIC,
    STORE_VERSION,
    WRITER_LOCK,
    Kind,
    W,
    WriterState,
    copy_out,
    TAILED,
    record_slots,
    segment_name,
)

__all__ = ["BadRecord", "Writer", "apply_fill", "main"]

log = logging.getLogger("helmdesk.store")

_HEAD, _TAIL = 0, 8
_ORPHAN_GIVE_UP_S = 30.0
_SELLS = (2, 5, 6)  # FIX Side: sell, sell short, sell short exempt


class BadRecord(ValueError):
    """A record the writer refuses; the message says why."""


# -- decoding -----------------------------------------------------------------------------------
def _id(raw: bytes, what: str, *, empty_ok: bool = False) -> str:
    try:
        s = raw.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecord(f"{what} is not UTF-8: {raw.rstrip(bytes(1))!r}") from None
    if not s and not empty_ok:
        raise BadRecord(f"{what} is empty")
    if "\0" in s:
        raise BadRecord(f"{what} has a NUL inside: {s!r}")
    return s


def _text(raw: bytes) -> str:
    """Free text: as much as decodes (PostgreSQL stores no NUL, so none is kept)."""
    return raw.rstrip(b"\0").decode("utf-8", "replace").replace("\0", "")


_BIGINT = 2**63


def _bigint(v: int, what: str) -> int:
    if v >= _BIGINT:  # a u64 field: the databases' integers are signed 64-bit
        raise BadRecord(f"{what} {v} does not fit a 64-bit integer")
    return v


def _side(side: int) -> int:
    if side != 1 and side not in _SELLS:
        raise BadRecord(f"side {side} is neither buy (1) nor sell (2, 5, 6)")
    return side


def _finite(x: float, what: str) -> float:
    if not math.isfinite(x):
        raise BadRecord(f"{what} is {x}")
    return x


def _enum_name(enum_cls, v: int) -> str:
    try:
        return enum_cls(v).name
    except ValueError:
        return f"#{v}"


def _long_id(field: bytes, tail: bytes | None, what: str) -> str:
    """An identifier from its fixed field, or from the record's tail when it is longer."""
    if tail is None:
        return _id(field, what, empty_ok=True)
    if field.rstrip(b"\0"):
        raise BadRecord(f"{what} is both in its field and in the record's tail")
    return _id(tail, what)


def decode_order(f: tuple, tail: bytes | None = None) -> dict:
    (_seq, _k, _n, _l, c, v, s, t, vo, p, side, status, qty, price, cum, leaves, avg,
     created, updated) = f
    st = STATUS_OF_CODE.get(status)
    if st is None:
        raise BadRecord(f"order status code {status} is unknown")
    if qty <= 0 or cum < 0 or leaves < 0 or cum > qty:
        raise BadRecord(f"order quantities make no sense: qty {qty}, cum {cum}, leaves {leaves}")
    return {
        "cl_ord_id": _id(c, "ClOrdID"), "venue": _id(v, "venue"), "symbol": _id(s, "symbol"),
        "side": _side(side), "qty": qty,
        "price": None if math.isnan(price) else _finite(price, "price"),
        "tif": _id(t, "time in force", empty_ok=True), "status": st.value, "cum_qty": cum,
        "leaves_qty": leaves, "avg_px": _finite(avg, "average price"),
        "venue_order_id": _long_id(vo, tail, "venue order id"),
        "parent_id": _id(p, "parent id", empty_ok=True) or None,
        "created_ns": created or updated, "updated_ns": updated,
    }


def decode_execution(f: tuple, tail: bytes | None = None) -> dict:
    _seq, _k, _n, _l, e, v, c, s, side, qty, price, ts, fee = f
    if qty <= 0:
        raise BadRecord(f"execution quantity is {qty}")
    if not math.isfinite(price) or price < 0:
        raise BadRecord(f"execution price is {price}")
    if not math.isfinite(fee):
        raise BadRecord(f"execution fee is {fee}")
    exec_id = _long_id(e, tail, "ExecID")
    if not exec_id:
        raise BadRecord("ExecID is empty")
    return {"exec_id": exec_id, "venue": _id(v, "venue"),
            "cl_ord_id": _id(c, "ClOrdID"), "symbol": _id(s, "symbol"), "side": _side(side),
            "qty": qty, "price": price, "ts_ns": ts, "fee": fee}


def decode_command(f: tuple) -> dict:
    from engine.core.roles import Role
    from engine.ipc.commands import AckStatus, Scope, Verb

    (_seq, _k, _n, _l, cmd_id, ts, verb, scope, scope_id, arg0, arg1, role, status, u, w,
     t, r) = f
    return {"cmd_id": _bigint(cmd_id, "command id"), "ts_ns": ts, "user": _text(u),
                "workstation": _text(w),
                "role": _enum_name(Role, role), "verb": _enum_name(Verb, verb),
                "scope": _enum_name(Scope, scope), "scope_id": scope_id,
                "arg0": arg0 if math.isfinite(arg0) else 0.0,
                "arg1": arg1 if math.isfinite(arg1) else 0.0, "text": _text(t),
                "status": _enum_name(AckStatus, status), "reason": _text(r)}


def decode_kill(f: tuple) -> dict:
    from engine.core.records import Scope

    _seq, _k, _n, _l, ts, scope, tripped, code, scope_id, name, u, r, sn = f
    if tripped > 1:
        raise BadRecord(f"kill 'tripped' is {tripped}, not 0 or 1")
    if code > len(KILL_STATES):
        raise BadRecord(f"kill state code {code} is unknown")
    state = KILL_STATES[code - 1] if code else ("halted" if tripped else "active")
    if bool(tripped) != (state != "active"):
        raise BadRecord(f"kill state {state} with tripped {tripped}")
    name = _id(name, "switch name")
    scope_name = _id(sn, "scope name", empty_ok=True)
    if not scope_name:
        scope_name = "global" if scope == 0 else (
            name if ":" in name else f"{_enum_name(Scope, scope).lower()}:{name}")
    return {"ts_ns": ts, "scope": scope, "scope_id": scope_id, "scope_name": scope_name,
            "state": state, "tripped": bool(tripped), "name": name, "user": _text(u),
            "reason": _text(r)}


def _texts(f: tuple, tail: bytes | None, fields: tuple[str, ...], what: str) -> dict:
    """A record whose texts ride in its tail, NUL between them: the row, its ts_ns too."""
    parts = (tail or b"").split(b"\0")
    if len(parts) != len(fields):
        raise BadRecord(f"{what} has {len(parts)} texts, not {len(fields)}")
    row = {name: _text(raw) for name, raw in zip(fields, parts)}
    row["ts_ns"] = f[4]
    return row


def decode_limit(f: tuple, tail: bytes | None) -> dict:
    row = _texts(f, tail, LIMIT_FIELDS, "a limit change")
    if not row["scope"] or not row["key"]:
        raise BadRecord("a limit change without a scope or a key")
    return row


def decode_order_tag(f: tuple, tail: bytes | None) -> dict:
    row = _texts(f, tail, ORDER_TAG_FIELDS, "an order tag")
    if not row["cl_ord_id"]:
        raise BadRecord("an order tag without a ClOrdID")
    return row


def _fix_seq_no(n: int, what: str) -> int:
    if not 1 <= n < 2**31:
        raise BadRecord(f"{what} {n} is out of range")
    return n


# -- a batch ------------------------------------------------------------------------------------
@dataclass
class _Batch:
    """Rows of one transaction, folded: later rows of a key replace earlier ones."""

    orders: dict = field(default_factory=dict)
    execs: dict = field(default_factory=dict)  # (exec_id, venue) -> row, first kept
    commands: dict = field(default_factory=dict)
    kills: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)  # ClOrdID -> row, first kept
    resets: dict = field(default_factory=dict)  # session -> ts (applied before the rest)
    fix_msgs: dict = field(default_factory=dict)  # (session, seq) -> raw
    fix_seqs: dict = field(default_factory=dict)  # session -> [sender or None, target or None]

    def add(self, kind: int, row) -> None:
        if kind == Kind.ORDER:
            prev = self.orders.get(row["cl_ord_id"])
            if prev is not None:
                row["created_ns"] = prev["created_ns"]
            self.orders[row["cl_ord_id"]] = row
        elif kind == Kind.EXECUTION:
            self.execs.setdefault((row["exec_id"], row["venue"]), row)
        elif kind == Kind.COMMAND:
            self.commands.setdefault((row["cmd_id"], row["ts_ns"]), row)
        elif kind == Kind.KILL:
            self.kills.setdefault((row["ts_ns"], row["scope"], row["scope_id"],
                                   row["scope_name"], row["state"]), row)
        elif kind == Kind.LIMIT:
            self.limits.setdefault((row["ts_ns"], row["scope"], row["key"]), row)
        elif kind == Kind.ORDER_TAG:
            self.tags.setdefault(row["cl_ord_id"], row)
        elif kind == Kind.FIX_SEQ:
            session, sender, target = row
            self.fix_seqs[session] = [sender, target]
        elif kind == Kind.FIX_MSG:
            session, seq, raw = row
            self.fix_msgs[(session, seq)] = raw
            self.fix_seqs.setdefault(session, [None, None])[0] = seq + 1
        elif kind == Kind.FIX_RESET:
            session, ts = row
            self.resets[session] = ts
            for k in [k for k in self.fix_msgs if k[0] == session]:
                del self.fix_msgs[k]
            self.fix_seqs[session] = [1, 1]


class Writer:
    """The loop over one store segment and one database."""

    def __init__(self, seg: Segment, url: str, *, batch: int = 1000) -> None:
        self.seg = seg
        self.url = url
        self.batch = batch
        q = seg.q
        self.q = q
        self.capacity = int(q[W.CAPACITY])
        self.ctl = seg.buf[RING_OFF : RING_OFF + RING_CONTROL].cast("Q")
        self.buf = seg.buf
        self.slots_off = RING_OFF + RING_CONTROL
        self.mask = self.capacity - 1
        self.engine_pid = int(q[W.ENGINE_PID])
        self.last_seq = int(q[W.DURABLE])  # everything at or below is committed
        self.counts = dict.fromkeys(W.COUNTERS, 0)
        for i, name in enumerate(W.COUNTERS):
            self.counts[name] = int(q[W.APPLIED + i])
        self.db = m.open_db(url)
        self.dialect = self.db.dialect.name
        self.conn = self.db.connect()
        self.positions: dict[str, tuple[int, float, float, int]] = {
            r.symbol: (r.qty, r.avg_px, r.realized, r.updated_ns)
            for r in self.conn.execute(select(m.positions))
        }
        self.conn.commit()
        d = self.dialect
        self._up_order = m.upsert(m.orders, d, keep=("created_ns",))
        self._ins_exec = m.executions.insert()
        self._up_pos = m.upsert(m.positions, d)
        self._ins_cmd = m.insert_ignore(m.commands, d)
        self._ins_kill = m.insert_ignore(m.kill_events, d)
        self._ins_limit = m.insert_ignore(m.limit_changes, d)
        self._ins_tag = m.insert_ignore(m.order_tags, d)
        self._up_fix_msg = m.upsert(m.fix_messages, d)
        self._up_fix_both = m.upsert(m.fix_sessions, d)
        self._up_fix_sender = m.upsert(m.fix_sessions, d, keep=("next_target_seq",))
        self._up_fix_target = m.upsert(m.fix_sessions, d, keep=("next_sender_seq",))
        self._db_error_logged = 0.0
        self._backoff = 0.0

    # -- reading --------------------------------------------------------------------------------
    def _read(self, pos: int, tail: int, expect: int):
        """Decode the record at ring position ``pos``: (slots, seq, kind, row, why)."""
        off = (pos & self.mask) * SLOT
        base = self.slots_off + off
        seq, kind, nslots, length = HDR.unpack_from(self.buf, base)
        if nslots < 1 or nslots > tail - pos or (nslots != 1 and kind not in TAILED):
            return 1, seq, kind, None, f"slot count {nslots} is impossible here"
        if kind in TAILED and nslots != record_slots(kind, length):
            return 1, seq, kind, None, (f"a kind {kind} record with a tail of {length} bytes "
                                        f"cannot take {nslots} slots")
        if seq <= expect - 1:
            return nslots, seq, kind, None, ""  # written before: skip (counted as replayed)
        if seq != expect:
            return 1, seq, kind, None, f"sequence number {seq} out of order, expected {expect}"
        try:
            if kind == Kind.ORDER:
                row = decode_order(ORDER.unpack_from(self.buf, base),
                                   self._tail(off, ORDER.size, length))
            elif kind == Kind.EXECUTION:
                row = decode_execution(EXECUTION.unpack_from(self.buf, base),
                                       self._tail(off, EXECUTION.size, length))
            elif kind == Kind.COMMAND:
                row = decode_command(COMMAND.unpack_from(self.buf, base))
            elif kind == Kind.KILL:
                row = decode_kill(KILL.unpack_from(self.buf, base))
            elif kind == Kind.LIMIT:
                row = decode_limit(LIMIT.unpack_from(self.buf, base),
                                   self._tail(off, LIMIT.size, length))
            elif kind == Kind.ORDER_TAG:
                row = decode_order_tag(ORDER_TAG.unpack_from(self.buf, base),
                                       self._tail(off, ORDER_TAG.size, length))
            elif kind == Kind.FIX_SEQ:
                _s, _k, _n, _l, sess, snd, tgt = FIX_SEQ.unpack_from(self.buf, base)
                row = (_id(sess, "session"), _fix_seq_no(snd, "next sender seq"),
                       _fix_seq_no(tgt, "next target seq"))
            elif kind == Kind.FIX_RESET:
                _s, _k, _n, _l, sess, ts = FIX_RESET.unpack_from(self.buf, base)
                row = (_id(sess, "session"), ts)
            elif kind == Kind.FIX_MSG:
                _s, _k, _n, _l, sess, mseq = FIX_MSG.unpack_from(self.buf, base)
                raw = self._tail(off, FIX_MSG.size, length) or b""
                row = (_id(sess, "session"), _fix_seq_no(mseq, "FIX MsgSeqNum"), raw)
            else:
                return 1, seq, kind, None, f"kind {kind} is unknown"
        except BadRecord as e:
            return nslots, seq, kind, None, str(e)
        return nslots, seq, kind, row, ""

    def _tail(self, off: int, start: int, length: int) -> bytes | None:
        """The tail of the record at ring byte ``off`` whose fields take ``start`` bytes."""
        if not length:
            return None
        return copy_out(self.buf, self.slots_off, self.capacity, off + start, length)

    # -- one step -------------------------------------------------------------------------------
    def step(self) -> int:
        """Write one batch; return the records it took off the ring (0: empty or failed)."""
        ctl = self.ctl
        head = ctl[_HEAD]
        tail = ctl[_TAIL]
        if head == tail:
            return 0
        pos = head
        expect = self.last_seq + 1
        good: list[tuple[int, int, object]] = []
        bad: list[tuple[int, int, str]] = []
        replayed = 0
        n = 0
        while pos < tail and n < self.batch:
            nslots, seq, kind, row, why = self._read(pos, tail, expect)
            pos += nslots
            n += 1
            if row is not None:
                good.append((seq, kind, row))
                expect = seq + 1
            elif not why:
                replayed += 1  # at or below the durable seq: written before
            else:
                bad.append((seq, kind, why))
                if seq == expect:  # a bad record in its place is acknowledged all the same
                    expect = seq + 1
        last = expect - 1
        if good and not self._commit(good, bad):
            return 0
        for seq, kind, why in bad:
            log.warning("store record %d (kind %d) refused: %s", seq, kind, why)
        c = self.counts
        c["applied"] += len(good)
        c["bad"] += len(bad)
        c["replayed"] += replayed
        c["batches"] += 1 if good else 0
        q = self.q
        for i, name in enumerate(W.COUNTERS):
            q[W.APPLIED + i] = c[name]
        if last > self.last_seq:
            self.last_seq = last
            q[W.DURABLE] = last  # first the ack, then the head: a crash between re-writes
        ctl[_HEAD] = pos
        return n

    def _commit(self, good: list, bad: list) -> bool:
        """Apply and commit ``good``; on a data error find the bad ones. False: try later."""
        try:
            self._apply_all(good)
            self._backoff = 0.0
            if self.q[W.FAILING_SINCE]:
                self.q[W.FAILING_SINCE] = 0
                log.warning("database %s: committing again", m.safe_url(self.url))
            return True
        except (sa_exc.IntegrityError, sa_exc.DataError) as e:
            self._rollback()
            log.warning("store batch of %d refused (%s): writing its records one by one",
                        len(good), _short(e))
        except sa_exc.SQLAlchemyError as e:
            self._db_failed(e)
            return False
        kept = []
        for rec in good:
            try:
                self._apply_all([rec])
                kept.append(rec)
            except (sa_exc.IntegrityError, sa_exc.DataError) as e:
                self._rollback()
                bad.append((rec[0], rec[1], f"database refused it: {_short(e)}"))
            except sa_exc.SQLAlchemyError as e:
                self._db_failed(e)
                return False
        good[:] = kept
        return True

    def _rollback(self) -> None:
        try:
            self.conn.rollback()
        except sa_exc.SQLAlchemyError:
            self._reconnect()

    def _reconnect(self) -> None:
        try:
            self.conn.close()
        except sa_exc.SQLAlchemyError:
            pass
        self.conn = self.db.connect()

    def _db_failed(self, e: Exception) -> None:
        self.counts["db_errors"] += 1
        self.q[W.DB_ERRORS] = self.counts["db_errors"]
        raw = _short(e).encode()[: W.DB_ERROR_LEN - 1]
        self.buf[W.DB_ERROR_OFF : W.DB_ERROR_OFF + W.DB_ERROR_LEN] = raw.ljust(W.DB_ERROR_LEN,
                                                                              b"\0")
        if not self.q[W.FAILING_SINCE]:
            self.q[W.FAILING_SINCE] = time.time_ns()
        now = time.monotonic()
        if now - self._db_error_logged > 10.0:
            self._db_error_logged = now
            log.error("database %s: %s; records wait in the ring, retrying",
                      m.safe_url(self.url), _short(e))
        try:
            self.conn.rollback()
        except sa_exc.SQLAlchemyError:
            pass
        try:
            self._reconnect()
        except sa_exc.SQLAlchemyError:
            pass
        self._backoff = min(1.0, max(0.01, self._backoff * 2))
        time.sleep(self._backoff)

    def _apply_all(self, recs: list) -> None:
        b = _Batch()
        for _seq, kind, row in recs:
            b.add(kind, dict(row) if isinstance(row, dict) else row)
        conn = self.conn
        if b.orders:
            conn.execute(self._up_order, list(b.orders.values()))
        pos_new: dict[str, tuple[int, float, float, int]] = {}
        dup = 0
        if b.execs:
            ids = list({k[0] for k in b.execs})
            have = set()
            for i in range(0, len(ids), 500):
                have.update((r[0], r[1]) for r in conn.execute(
                    select(m.executions.c.exec_id, m.executions.c.venue)
                    .where(m.executions.c.exec_id.in_(ids[i : i + 500]))))
            fresh = [r for k, r in b.execs.items() if k not in have]
            dup = sum(1 for r in recs if r[1] == Kind.EXECUTION) - len(fresh)
            if fresh:
                conn.execute(self._ins_exec, fresh)
                for r in fresh:
                    sym = r["symbol"]
                    q, avg, real, _ts = pos_new.get(sym) or self.positions.get(sym) or (0, 0.0,
                                                                                        0.0, 0)
                    q, avg, real = apply_fill((q, avg, real), r["side"], r["qty"], r["price"],
                                              r["fee"])
                    pos_new[sym] = (q, avg, real, r["ts_ns"])
                conn.execute(self._up_pos, [
                    {"symbol": s, "qty": v[0], "avg_px": v[1], "realized": v[2], "updated_ns": v[3]}
                    for s, v in pos_new.items()])
        if b.commands:
            conn.execute(self._ins_cmd, list(b.commands.values()))
        if b.kills:
            conn.execute(self._ins_kill, list(b.kills.values()))
        if b.limits:
            conn.execute(self._ins_limit, list(b.limits.values()))
        if b.tags:
            conn.execute(self._ins_tag, list(b.tags.values()))
        for session in b.resets:
            conn.execute(delete(m.fix_messages).where(m.fix_messages.c.session_id == session))
        if b.fix_msgs:
            conn.execute(self._up_fix_msg, [{"session_id": s, "seq": q, "raw": raw}
                                             for (s, q), raw in b.fix_msgs.items()])
        for session, (sender, target) in b.fix_seqs.items():
            if sender is not None and target is not None:
                stmt = self._up_fix_both
            elif sender is not None:
                stmt = self._up_fix_sender
            else:
                stmt = self._up_fix_target
            conn.execute(stmt, {"session_id": session, "next_sender_seq": sender or 1,
                                    "next_target_seq": target or 1})
        conn.commit()
        self.positions.update(pos_new)
        self.counts["duplicates"] += dup

    # -- the loop -------------------------------------------------------------------------------
    def orphaned(self) -> bool:
        return os.getppid() != self.engine_pid

    def run(self) -> int:
        quiet_since = time.monotonic()
        orphan_since = 0.0
        while True:
            if self.step():
                quiet_since = time.monotonic()
                continue
            empty = self.ctl[_HEAD] == self.ctl[_TAIL]
            if empty and self.q[W.STOP]:
                log.info("store writer: stop requested, ring empty: exiting (%s)", self.counts)
                return 0
            if self.orphaned():
                if empty:
                    if self.seg.still_current():
                        unlink_segment(self.seg.name)
                    log.warning("store writer: engine pid %d is gone; everything it left is "
                                "written, %s removed (%s)", self.engine_pid, self.seg.name,
                                self.counts)
                    return 0
                now = time.monotonic()
                orphan_since = orphan_since or now
                if now - orphan_since > _ORPHAN_GIVE_UP_S:
                    log.error("store writer: engine pid %d is gone and the database has failed "
                              "for %g s: %d slots stay in %s for the next start",
                              self.engine_pid, _ORPHAN_GIVE_UP_S,
                              self.ctl[_TAIL] - self.ctl[_HEAD], self.seg.name)
                    return 1
            if not empty:
                continue  # a failed step has already paused
            time.sleep(0.0005 if time.monotonic() - quiet_since < 0.05 else 0.001)

    def close(self) -> None:
        try:
            self.conn.close()
            self.db.dispose()
        except sa_exc.SQLAlchemyError:
            pass
        self.ctl.release()


def _short(e: Exception) -> str:
    text = str(getattr(e, "orig", None) or e)
    return text.splitlines()[0][:300] if text else type(e).__name__


def _fail(seg: Segment | None, text: str) -> None:
    log.error("%s", text)  # to stderr too (setup_logging's stderr_level): once
    if seg is not None:
        raw = text.encode()[: W.ERROR_LEN - 1]
        seg.buf[W.ERROR_OFF : W.ERROR_OFF + len(raw)] = raw
        seg.q[W.WRITER_STATE] = WriterState.FAILED


def _attach(instance: str) -> Segment:
    name = segment_name(instance)
    try:
        seg = Segment.attach(name, check=False)
    except IpcError:
        raise SystemExit(_fail(None, f"no store ring {name}: the engine must create it") or 2)
    q = seg.q
    if (seg.size < HEADER_SIZE or q[W.MAGIC] != STORE_MAGIC
            or (q[W.VERSION] & 0xFFFFFFFF) != STORE_VERSION or q[W.TOTAL_SIZE] != seg.size):
        seg.close()
        raise SystemExit(_fail(None, f"{name} is not a store ring of version {STORE_VERSION}")
                         or 2)
    return seg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.store.writer", description=__doc__
                                .splitlines()[0])
    p.add_argument("--instance", required=True)
    p.add_argument("--url", help="database URL (default: $HELMDESK_STORE_URL, else the "
                                 "instance's SQLite file)")
    p.add_argument("--batch", type=int, default=1000, help="records per transaction at most")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from engine.logs import setup_logging

    _path, listener = setup_logging(f"store-{args.instance}", stderr_level=logging.ERROR)
    try:
        seg = _attach(args.instance)
        try:
            return _run(seg, args)
        finally:
            seg.close()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        listener.stop()


def _run(seg: Segment, args) -> int:
    url = args.url or os.environ.get("HELMDESK_STORE_URL") or m.default_url(args.instance)
    if not try_lock(seg.fd, WRITER_LOCK):
        _fail(seg, f"another writer is attached to {seg.name}")
        return 2
    try:
        writer = Writer(seg, url, batch=max(1, args.batch))
    except Exception as e:  # noqa: BLE001 - any reason: the engine quotes it to the user
        _fail(seg, f"cannot open the database: {_short(e)}")
        return 3

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the engine stops us (module docstring)
    q = seg.q
    q[W.WRITER_PID] = os.getpid()
    q[W.WRITER_STATE] = WriterState.READY
    waiting = writer.ctl[_TAIL] - writer.ctl[_HEAD]
    log.info("store writer pid %d for engine pid %d: %s, ring %d slots, durable seq %d, %d "
             "slots waiting", os.getpid(), writer.engine_pid, m.safe_url(url), writer.capacity,
             writer.last_seq, waiting)
    try:
        rc = writer.run()
    finally:
        writer.close()
    q[W.WRITER_STATE] = WriterState.STOPPED
    return rc


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the database is closed and the log flushed: skip interpreter teardown
