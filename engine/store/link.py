"""The engine's side of the store: hand rows to the writer process, learn which are durable.

``StoreLink`` creates the store segment (records.py), starts ``python -m engine.store.writer``
and waits until it says it is ready. From then on the hot thread calls ``put_*``: each packs
one record straight into the ring (``struct.pack_into`` into shared memory, then one store of
the tail word) and returns its sequence number. Nothing on that path waits, allocates beyond
the packed strings, logs or makes a system call.

- **Ring full.** A record that does not fit goes, already packed, into an in-process overflow
  deque (counted in ``overflowed``); so does everything after it, to keep the order.
  ``poll()`` moves the deque into the ring as the writer frees space. Nothing is dropped.
- **Durable.** The writer commits a batch, then publishes the highest sequence number it made
  durable, then moves the ring's head. ``poll()`` returns that number; ``durable(seq)`` says
  whether ``seq`` is covered. The engine holds a fill's report until then (DESIGN.md) and
  never waits for it.
- **Writer death.** ``poll()`` reaps the writer (``waitpid``, at most every 10 ms). A dead one
  is restarted at once, with a logged error; the new writer starts reading at the ring's head,
  which only ever moves past committed records, so every record not yet acknowledged is
  written again, and the writer's idempotent upserts make a record that was committed twice
  harmless. A writer that keeps dying without making progress is given up after
  ``max_restarts`` attempts: ``alive`` is False, ``last_error`` says why, records keep
  queueing (``pending``) and nothing is lost while the engine lives.
- **Engine death.** The writer watches its parent pid: if the engine dies it writes everything
  already in the ring, unlinks the segment and exits. If both died, the next ``StoreLink`` for
  the instance finds the segment, writes what is left in it with a writer of its own, and only
  then starts afresh.
- **CPUs.** The writer is moved off the CPUs the engine is pinned to (it would inherit them and
  compete with the hot thread); an unpinned engine leaves it where it is.
- **Close.** ``close()`` waits (with a deadline) until every record is durable, tells the
  writer to stop, and unlinks the segment.

Errors::

    StoreError               base; the message names the database (password masked)
    ├── StoreStartError      the writer could not start (bad URL, unwritable path, no driver…)
    └── StoreInUse           another live engine holds this instance's store segment
"""

from __future__ import annotations

import collections
import logging
import os
import struct
import subprocess
import time
from pathlib import Path
from typing import Self

from engine.core.cpus import off_engine_cpus
from engine.core.paths import module_command
from engine.execution.orders import Order, OrdStatus
from engine.ipc.layout import RING_CONTROL
from engine.ipc.rings import SpscRing
from engine.ipc.segment import (
    IpcError,
    Segment,
    segment_exists,
    try_lock,
    unlink_segment,
    unlock,
)
from engine.store.records import (
    COMMAND,
    ENGINE_LOCK,
    EXECUTION,
    FIX_MSG,
    FIX_MSG_FIRST,
    FIX_RESET,
    FIX_SEQ,
    HEADER_SIZE,
    KILL,
    KILL_STATE_CODE,
    LIMIT,
    ORDER_TAG,
    MAX_FIX_MSG,
    MAX_TAIL,
    NAN,
    ORDER,
    RING_OFF,
    SLOT,
    STATUS_CODE,
    STORE_MAGIC,
    STORE_VERSION,
    WIDTH,
    WRITER_LOCK,
    Kind,
    W,
    WriterState,
    copy_in,
    record_slots,
    segment_name,
    total_size,
)

__all__ = ["StoreError", "StoreInUse", "StoreLink", "StoreStartError"]

log = logging.getLogger("helmdesk.store")

_HEAD = 0  # SpscRing control words (u64 index): head on line 0, tail on line 1
_TAIL = 8
_SLOT_STRUCT = struct.Struct(f"{SLOT}s")
_ROOT = str(Path(__file__).resolve().parents[2])  # so `-m engine.store.writer` always resolves
_CHECK_NS = 10_000_000  # reap the writer at most this often from poll()

_K_ORDER, _K_EXEC, _K_CMD, _K_KILL = Kind.ORDER, Kind.EXECUTION, Kind.COMMAND, Kind.KILL
_K_FSEQ, _K_FMSG, _K_FRESET = Kind.FIX_SEQ, Kind.FIX_MSG, Kind.FIX_RESET
_K_LIMIT = Kind.LIMIT
_K_TAG = Kind.ORDER_TAG


class StoreError(Exception):
    """Base of the store's errors; the message is meant for the user."""


class StoreStartError(StoreError):
    pass


class StoreInUse(StoreError):
    pass


def _cut(raw: bytes, n: int) -> bytes:
    """At most ``n`` bytes of UTF-8 ``raw``, never half a character (free text may be cut)."""
    if len(raw) <= n:
        return raw
    return raw[:n].decode("utf-8", "ignore").encode()


class StoreLink:
    """The write-behind store of one engine instance (see the module docstring)."""

    def __init__(self, instance: str, url: str | None = None, *, capacity: int = 4096,
                 start_timeout: float = 20.0, max_restarts: int = 3, batch: int = 1000) -> None:
        from engine.store.models import check_url, default_url, safe_url

        if capacity < 16 or capacity & (capacity - 1):
            raise ValueError(f"store ring capacity must be a power of two ≥ 16, was {capacity}")
        self.instance = instance
        self.url = url or default_url(instance)
        self.safe_url = safe_url(self.url)
        why = check_url(self.url)
        if why is not None:
            raise StoreStartError(f"store database {self.safe_url} cannot be used: {why}")
        self.capacity = capacity
        self.start_timeout = start_timeout
        self.max_restarts = max_restarts
        self.batch = batch
        self.name = segment_name(instance)
        self.alive = False
        self.last_error = ""
        self.restarts = 0  # writers started after the first
        self.overflowed = 0  # records that waited in the overflow deque
        self._overflow: collections.deque[tuple[int, bytes]] = collections.deque()
        self._keys: dict[str, bytes] = {}  # FIX session key -> its bytes (checked)
        self._seq = 0
        self._proc: subprocess.Popen | None = None
        self._seg: Segment | None = None
        self._closed = False
        self._failures = 0  # writer deaths since durable last moved
        self._durable_at_start = 0
        self._next_check = 0

        self._clear_stale()
        try:
            seg = Segment.create(self.name, total_size(capacity))
        except FileExistsError:
            raise StoreInUse(f"store ring {self.name} was created by another engine just now; "
                             f"one engine per instance") from None
        self._seg = seg
        try:
            if not try_lock(seg.fd, ENGINE_LOCK):  # nobody else can have it open yet
                raise StoreInUse(f"store ring {self.name} was taken while being created")
            q = seg.q
            q[W.VERSION] = STORE_VERSION | HEADER_SIZE << 32
            q[W.TOTAL_SIZE] = seg.size
            q[W.CAPACITY] = capacity
            q[W.SLOT_SIZE] = SLOT
            q[W.ENGINE_PID] = os.getpid()
            q[W.CREATED_NS] = time.time_ns()
            # touch every page now: a first write to a fresh tmpfs page faults (~1-2 µs),
            # which would otherwise land in put_*'s p99 on the hot thread
            seg.buf[RING_OFF:] = bytes(seg.size - RING_OFF)
            q[W.MAGIC] = STORE_MAGIC  # last: a writer seeing it sees a complete header
            self._q = q
            self._ring = SpscRing(seg.buf, RING_OFF, capacity, _SLOT_STRUCT)
            self._ctl = seg.buf[RING_OFF : RING_OFF + RING_CONTROL].cast("Q")
            self._buf = seg.buf
            self._slots_off = RING_OFF + RING_CONTROL
            self._mask = capacity - 1
            self._tail = 0
            self._limit = capacity  # tail may reach this without looking at head again
            self._proc = _spawn(instance, self.url, batch)
            _wait_ready(self._proc, seg, self.safe_url, time.monotonic() + start_timeout)
        except BaseException:
            self._abandon()
            raise
        self.alive = True
        log.info("store for %s: writer pid %d on %s, ring %d × %d B",
                 instance, self._proc.pid, self.safe_url, capacity, SLOT)

    # -- hot path --------------------------------------------------------------------------------
    def put_order(self, cl_ord_id: str, venue: str, symbol: str, side: int, qty: int,
                  price: float | None, tif: str, status: OrdStatus, cum_qty: int,
                  leaves_qty: int, avg_px: float, venue_order_id: str = "",
                  parent_id: str = "", created_ns: int = 0, updated_ns: int = 0) -> int:
        """A new or changed order (upsert by ClOrdID; ``created_ns`` of the first row stays)."""
        c = cl_ord_id.encode()
        v = venue.encode()
        s = symbol.encode()
        t = tif.encode()
        vo = venue_order_id.encode()
        p = parent_id.encode()
        if len(c) > 32 or len(v) > 16 or len(s) > 16 or len(t) > 8 or len(vo) > 48 or len(p) > 32:
            self._too_long(cl_ord_id=cl_ord_id, venue=venue, symbol=symbol, tif=tif,
                           parent_id=parent_id)
            if len(vo) > 48:  # a venue's identifier of any length: carried as the tail
                return self._put_tailed(_K_ORDER, ORDER, vo, c, v, s, t, b"", p, side,
                                        STATUS_CODE[status], qty,
                                        NAN if price is None else price, cum_qty, leaves_qty,
                                        avg_px, created_ns, updated_ns)
        seq = self._seq + 1
        self._seq = seq
        tail = self._tail
        if tail < self._limit:
            ORDER.pack_into(self._buf, self._slots_off + (tail & self._mask) * SLOT, seq, _K_ORDER,
                            1, 0, c, v, s, t, vo, p, side, STATUS_CODE[status], qty,
                            NAN if price is None else price, cum_qty, leaves_qty, avg_px,
                            created_ns, updated_ns)
            self._tail = self._ctl[_TAIL] = tail + 1
        else:
            self._slow(1, ORDER.pack(seq, _K_ORDER, 1, 0, c, v, s, t, vo, p, side,
                                     STATUS_CODE[status], qty, NAN if price is None else price,
                                     cum_qty, leaves_qty, avg_px, created_ns, updated_ns))
        return seq

    def put_order_state(self, order: Order, updated_ns: int, *, parent_id: str = "",
                        created_ns: int = 0) -> int:
        """``put_order`` from an ``Order`` (``created_ns`` defaults to ``updated_ns``)."""
        return self.put_order(order.cl_ord_id, order.venue, order.symbol, order.side, order.qty,
                              order.price, getattr(order, "tif", "day"), order.status,
                              order.cum_qty, order.leaves_qty, order.avg_px,
                              order.venue_order_id, parent_id, created_ns or updated_ns,
                              updated_ns)

    def put_execution(self, exec_id: str, venue: str, cl_ord_id: str, symbol: str, side: int,
                      qty: int, price: float, ts_ns: int, fee: float = 0.0) -> int:
        """A fill: written once per (ExecID, venue); the writer moves the position with it
        (``fee``: what the venue charged, deducted from the realized P&L)."""
        e = exec_id.encode()
        v = venue.encode()
        c = cl_ord_id.encode()
        s = symbol.encode()
        if len(e) > 48 or len(v) > 16 or len(c) > 32 or len(s) > 16:
            self._too_long(venue=venue, cl_ord_id=cl_ord_id, symbol=symbol)
            if len(e) > 48:  # a venue's ExecID of any length: carried as the tail
                return self._put_tailed(_K_EXEC, EXECUTION, e, b"", v, c, s, side, qty, price,
                                        ts_ns, fee)
        seq = self._seq + 1
        self._seq = seq
        tail = self._tail
        if tail < self._limit:
            EXECUTION.pack_into(self._buf, self._slots_off + (tail & self._mask) * SLOT, seq,
                                _K_EXEC, 1, 0, e, v, c, s, side, qty, price, ts_ns, fee)
            self._tail = self._ctl[_TAIL] = tail + 1
        else:
            self._slow(1, EXECUTION.pack(seq, _K_EXEC, 1, 0, e, v, c, s, side, qty, price, ts_ns,
                                         fee))
        return seq

    def put_command(self, cmd_id: int, user: str, workstation: str, role: int, verb: int,
                    scope: int, scope_id: int, arg0: float, arg1: float, text: str,
                    status: int, reason: str, ts_ns: int) -> int:
        """An audited command and the engine's answer (texts longer than their field are cut)."""
        u = user.encode()
        w = workstation.encode()
        t = text.encode()
        r = reason.encode()
        if len(u) > 16 or len(w) > 16 or len(t) > 48 or len(r) > 96:
            u, w, t, r = _cut(u, 16), _cut(w, 16), _cut(t, 48), _cut(r, 96)
        seq = self._seq + 1
        self._seq = seq
        tail = self._tail
        if tail < self._limit:
            COMMAND.pack_into(self._buf, self._slots_off + (tail & self._mask) * SLOT, seq,
                              _K_CMD, 1, 0, cmd_id, ts_ns, verb, scope, scope_id, arg0, arg1,
                              role, status, u, w, t, r)
            self._tail = self._ctl[_TAIL] = tail + 1
        else:
            self._slow(1, COMMAND.pack(seq, _K_CMD, 1, 0, cmd_id, ts_ns, verb, scope, scope_id,
                                       arg0, arg1, role, status, u, w, t, r))
        return seq

    def put_command_ack(self, cmd, ack) -> int:
        """``put_command`` from an ``engine.ipc.commands`` ``Command`` and its ``Ack``."""
        return self.put_command(cmd.cmd_id, cmd.user, cmd.workstation, int(cmd.role),
                                int(cmd.verb), int(cmd.scope), cmd.scope_id, cmd.arg0, cmd.arg1,
                                cmd.text, int(ack.status), ack.reason, ack.ts_ns)

    def put_kill(self, name: str, scope: int, scope_id: int, tripped: bool, user: str,
                 reason: str, ts_ns: int, *, state: str = "", scope_name: str = "") -> int:
        """A kill switch changed: ``state`` "active", "reducing" or "halted" (default: "halted"
        if ``tripped``, else "active"; tripped is state != "active"), ``scope_name`` as people
        write it ("strategy:pairs"; default: the scope kind and ``name``)."""
        n = name.encode()
        sn = scope_name.encode()
        if len(n) > 24 or len(sn) > 48:
            self._too_long(name=name, scope_name=scope_name)
        code = KILL_STATE_CODE.get(state, 0) if state else 0
        if state and (not code or tripped != (state != "active")):
            raise ValueError(f"store record refused: kill state {state!r} with tripped "
                             f"{tripped} (states: active, reducing, halted; tripped unless "
                             f"active)")
        u = user.encode()
        r = reason.encode()
        if len(u) > 32 or len(r) > 96:
            u, r = _cut(u, 32), _cut(r, 96)
        seq = self._seq + 1
        self._seq = seq
        tail = self._tail
        if tail < self._limit:
            KILL.pack_into(self._buf, self._slots_off + (tail & self._mask) * SLOT, seq, _K_KILL,
                           1, 0, ts_ns, scope, tripped, code, scope_id, n, u, r, sn)
            self._tail = self._ctl[_TAIL] = tail + 1
        else:
            self._slow(1, KILL.pack(seq, _K_KILL, 1, 0, ts_ns, scope, tripped, code, scope_id, n,
                                    u, r, sn))
        return seq

    def put_order_tag(self, cl_ord_id: str, source: str, account: str, ts_ns: int) -> int:
        """Whose order ``cl_ord_id`` is (once, when it is sent): who asked ("strategy:pairs",
        "manual:alice") and the account, so a restart rebuilds each book's positions."""
        tail = b"\0".join(_cut(t.replace("\0", "").encode(), 128)
                           for t in (cl_ord_id, source, account))
        return self._put_tailed(_K_TAG, ORDER_TAG, tail, ts_ns)

    def put_limit(self, user: str, role: str, workstation: str, scope: str, key: str, old: str,
                  new: str, reason: str, ts_ns: int) -> int:
        """A risk limit edited (the audit trail of limits): ``scope`` "default",
        "instrument:ESZ6", "strategy:pairs"…, ``key`` the limit's key, ``old``/``new`` its
        values as text ("" for none). Each text is cut at 256 bytes; rare, so it takes the
        slow path (one packed record, no waiting all the same)."""
        if not scope or not key:
            raise ValueError(f"store record refused: a limit change needs a scope and a key, "
                             f"was scope {scope!r}, key {key!r}")
        texts = (user, getattr(role, "name", role), workstation, scope, key, old, new, reason)
        tail = b"\0".join(_cut(str(t).replace("\0", "").encode(), 256) for t in texts)
        return self._put_tailed(_K_LIMIT, LIMIT, tail, ts_ns)

    def _session_key(self, session: str) -> bytes:
        """``session`` as the record's field (checked once: a session sends many)."""
        sb = self._keys.get(session)
        if sb is None:
            sb = session.encode()
            if len(sb) > 64:
                self._too_long(session=session)
            if len(self._keys) < 1024:
                self._keys[session] = sb
        return sb

    def put_fix_seq(self, session: str, next_sender: int, next_target: int) -> int:
        """A FIX session's next sender and target sequence numbers."""
        sb = self._keys.get(session) or self._session_key(session)
        seq = self._seq + 1
        self._seq = seq
        tail = self._tail
        if tail < self._limit:
            FIX_SEQ.pack_into(self._buf, self._slots_off + (tail & self._mask) * SLOT, seq,
                              _K_FSEQ, 1, 0, sb, next_sender, next_target)
            self._tail = self._ctl[_TAIL] = tail + 1
        else:
            self._slow(1, FIX_SEQ.pack(seq, _K_FSEQ, 1, 0, sb, next_sender, next_target))
        return seq

    def put_fix_message(self, session: str, msg_seq: int, raw: bytes) -> int:
        """A FIX message sent as ``msg_seq`` (kept for resends); next sender seq = msg_seq + 1."""
        sb = self._keys.get(session) or self._session_key(session)
        n = len(raw)
        nslots = 1 if n <= FIX_MSG_FIRST else record_slots(_K_FMSG, n)
        if n > MAX_FIX_MSG or nslots > self.capacity:
            most = min(MAX_FIX_MSG, FIX_MSG_FIRST + (self.capacity - 1) * SLOT)
            raise ValueError(f"FIX message {msg_seq} of session {session} is {n} bytes: more "
                             f"than the store takes ({most})")
        seq = self._seq + 1
        self._seq = seq
        tail = self._tail
        if tail + nslots <= self._limit:
            off = (tail & self._mask) * SLOT
            FIX_MSG.pack_into(self._buf, self._slots_off + off, seq, _K_FMSG, nslots, n, sb,
                              msg_seq)
            if nslots == 1:
                start = self._slots_off + off + FIX_MSG.size
                self._buf[start : start + n] = raw
            else:
                copy_in(self._buf, self._slots_off, self.capacity, off + FIX_MSG.size, raw)
            self._tail = self._ctl[_TAIL] = tail + nslots
        else:
            data = bytearray(FIX_MSG.size + n)
            FIX_MSG.pack_into(data, 0, seq, _K_FMSG, nslots, n, sb, msg_seq)
            data[FIX_MSG.size :] = raw
            self._slow(nslots, bytes(data))
        return seq

    def put_fix_reset(self, session: str, ts_ns: int = 0) -> int:
        """A FIX session reset: its stored messages are forgotten and both numbers go to 1."""
        sb = session.encode()
        if len(sb) > 64:
            self._too_long(session=session)
        seq = self._seq + 1
        self._seq = seq
        tail = self._tail
        if tail < self._limit:
            FIX_RESET.pack_into(self._buf, self._slots_off + (tail & self._mask) * SLOT, seq,
                                _K_FRESET, 1, 0, sb, ts_ns)
            self._tail = self._ctl[_TAIL] = tail + 1
        else:
            self._slow(1, FIX_RESET.pack(seq, _K_FRESET, 1, 0, sb, ts_ns))
        return seq

    def durable(self, seq: int) -> bool:
        """True once record ``seq`` is committed (or was refused as bad and counted)."""
        return seq <= self._q[W.DURABLE]

    @property
    def last_seq(self) -> int:
        """The sequence number of the last record put."""
        return self._seq

    @property
    def durable_seq(self) -> int:
        return self._q[W.DURABLE]

    @property
    def pending(self) -> int:
        """Records put but not yet durable (in the ring or the overflow deque)."""
        return self._seq - self._q[W.DURABLE]

    # -- slow path -------------------------------------------------------------------------------
    def _slow(self, nslots: int, data: bytes) -> None:
        """The cached limit was reached: look at the head again; spill if still no room."""
        if not self._overflow:
            limit = self._ctl[_HEAD] + self.capacity
            tail = self._tail
            if tail + nslots <= limit:
                copy_in(self._buf, self._slots_off, self.capacity, (tail & self._mask) * SLOT, data)
                self._tail = self._ctl[_TAIL] = tail + nslots
                self._limit = limit
                return
        self._overflow.append((nslots, data))
        self.overflowed += 1
        self._limit = 0  # every put takes this path until poll() has emptied the deque

    def _drain_overflow(self) -> None:
        ov = self._overflow
        limit = self._ctl[_HEAD] + self.capacity
        tail = self._tail
        while ov:
            nslots, data = ov[0]
            if tail + nslots > limit:
                break
            copy_in(self._buf, self._slots_off, self.capacity, (tail & self._mask) * SLOT, data)
            tail += nslots
            ov.popleft()
        self._tail = self._ctl[_TAIL] = tail
        if not ov:
            self._limit = limit

    def _put_tailed(self, kind: int, st: struct.Struct, tail: bytes, *fields) -> int:
        """A record whose ``tail`` (a long identifier) runs on after its fields."""
        n = len(tail)
        nslots = record_slots(kind, n)
        if n > MAX_TAIL or nslots > self.capacity:
            raise ValueError(f"store record refused: an identifier of {n} bytes is longer than "
                             f"the store takes ({min(MAX_TAIL, (self.capacity - 1) * SLOT)})")
        seq = self._seq + 1
        self._seq = seq
        data = bytearray(nslots * SLOT)
        st.pack_into(data, 0, seq, kind, nslots, n, *fields)
        data[st.size : st.size + n] = tail
        self._slow(nslots, bytes(data))
        return seq

    def _too_long(self, **values: str) -> None:
        bad = [f"{k} {v!r} ({len(v.encode())} bytes, at most {WIDTH.get(k, 32)})"
               for k, v in values.items() if len(v.encode()) > WIDTH.get(k, 32)]
        if bad:
            raise ValueError(f"store record refused: {', '.join(bad)}")

    def _put_slots(self, data: bytes) -> None:
        """Push raw slot bytes as they are (tests: a corrupt record). Not for engine code."""
        self._slow(max(1, -(-len(data) // SLOT)), data)

    def _put_raw(self, kind: int, payload: bytes = b"") -> int:
        """Push a record of any ``kind`` with a proper sequence number (tests: a bad record)."""
        seq = self._seq + 1
        self._seq = seq
        self._put_slots(struct.pack("<QHHI", seq, kind, 1, 0) + payload[: SLOT - 16])
        return seq

    # -- housekeeping (call every loop turn, or at least every few ms) -----------------------------
    def poll(self) -> int:
        """Move overflow into the ring, look after the writer; return the highest durable seq."""
        if self._overflow:
            self._drain_overflow()
        now = time.monotonic_ns()
        if now >= self._next_check:
            self._next_check = now + _CHECK_NS
            self._check_writer()
        return self._q[W.DURABLE]

    def _check_writer(self) -> None:
        proc = self._proc
        q = self._q
        if proc is None:
            return
        rc = proc.poll()
        if rc is None:
            if not self.alive and q[W.WRITER_STATE] == WriterState.READY:
                self.alive = True
                log.warning("store writer pid %d for %s is ready again", proc.pid, self.safe_url)
            return
        # the writer is gone
        self.alive = False
        why = _failure_text(self._buf) if q[W.WRITER_STATE] == WriterState.FAILED else ""
        self.last_error = (f"store writer pid {proc.pid} for {self.safe_url} exited with code "
                           f"{rc}{': ' + why if why else ''}")
        if q[W.DURABLE] > self._durable_at_start:
            self._failures = 0
        self._failures += 1
        self._proc = None
        if self._failures > self.max_restarts:
            log.error("%s; given up after %d restarts without progress: %d records wait",
                      self.last_error, self.max_restarts, self.pending)
            return
        log.error("%s; restarting it (%d records not yet durable)", self.last_error, self.pending)
        self._durable_at_start = q[W.DURABLE]
        q[W.WRITER_STATE] = WriterState.STARTING
        _clear_failure(self._buf)
        self._proc = _spawn(self.instance, self.url, self.batch)
        self.restarts += 1

    def health(self) -> str | None:
        """Why records are not becoming durable, or None when the store is writing: the
        database refuses commits ("commits fail: " and its error), or the writer is dead for
        good (why it died)."""
        q = self._q
        if self._proc is None and not self.alive:
            return self.last_error or "the store writer is not running"
        since = q[W.FAILING_SINCE]
        if since:
            raw = bytes(self._buf[W.DB_ERROR_OFF : W.DB_ERROR_OFF + W.DB_ERROR_LEN])
            why = raw.split(b"\0", 1)[0].decode("utf-8", "replace") or "commit failed"
            return f"commits fail: {why}"
        return None

    def stats(self) -> dict[str, int]:
        """The writer's counters plus the link's own."""
        q = self._q
        out = {name: int(q[W.APPLIED + i]) for i, name in enumerate(W.COUNTERS)}
        out.update(last_seq=self._seq, durable_seq=int(q[W.DURABLE]), pending=self.pending,
                   overflowed=self.overflowed, overflow_now=len(self._overflow),
                   in_ring=len(self._ring), restarts=self.restarts)
        return out

    @property
    def writer_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record put so far is durable (True) or ``timeout`` ends (False)."""
        deadline = time.monotonic() + timeout
        while self.poll() < self._seq:
            if time.monotonic() > deadline or (self._proc is None and not self.alive):
                return False
            time.sleep(0.001)
        return True

    # -- teardown ----------------------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> int:
        """Flush, stop the writer, unlink the segment; return how many records were not durable.

        Records still in the ring when the flush fails stay in the segment (it is then left in
        /dev/shm, logged): the next ``StoreLink`` for the instance writes them.
        """
        if self._closed:
            return 0
        self._closed = True
        ok = self.flush(timeout)
        q = self._q
        q[W.STOP] = 1
        if self._proc is not None:
            try:
                self._proc.wait(max(1.0, timeout / 2))
            except subprocess.TimeoutExpired:
                log.error("store writer pid %d did not stop: killed", self._proc.pid)
                self._proc.kill()
                self._proc.wait()
        lost = self._seq - q[W.DURABLE]
        in_ring = len(self._ring)
        self.alive = False
        if ok and not lost:
            self._abandon()
            return 0
        keep = in_ring > 0
        log.error("store for %s closed with %d records not durable (%d in the ring%s, %d in the "
                  "overflow deque are lost): %s", self.instance, lost, in_ring,
                  ", left in /dev/shm" + self.name + " for the next start" if keep else "",
                  len(self._overflow), self.last_error or "flush timed out")
        self._abandon(unlink=not keep)
        return lost

    def _abandon(self, unlink: bool = True) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        seg = self._seg
        if seg is not None:
            self._seg = None
            for attr in ("_ctl",):
                v = getattr(self, attr, None)
                if v is not None:
                    v.release()
            ring = getattr(self, "_ring", None)
            if ring is not None:
                ring._ctl.release()
            if unlink:
                seg.unlink()
            seg.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- a segment left behind ---------------------------------------------------------------------
    def _clear_stale(self) -> None:
        """Deal with a store segment of this instance left by an engine that died."""
        deadline = time.monotonic() + self.start_timeout
        while segment_exists(self.name):
            try:
                seg = Segment.attach(self.name, check=False)
            except IpcError:
                continue  # gone meanwhile
            try:
                if not self._drain_stale(seg, deadline):
                    continue
            finally:
                seg.close()

    def _drain_stale(self, seg: Segment, deadline: float) -> bool:
        q = seg.q
        if seg.size < HEADER_SIZE or q[W.MAGIC] != STORE_MAGIC or (
                q[W.VERSION] & 0xFFFFFFFF) != STORE_VERSION or q[W.TOTAL_SIZE] != seg.size:
            log.warning("store ring %s is not one this version can read: removed", self.name)
            unlink_segment(self.name)
            return True
        if not try_lock(seg.fd, ENGINE_LOCK):
            raise StoreInUse(f"an engine for instance {self.instance!r} is already running "
                             f"(pid {q[W.ENGINE_PID]}): store ring {self.name} belongs to it; "
                             f"one engine per instance")
        # an orphaned writer may still be writing what its engine left: let it finish
        while not try_lock(seg.fd, WRITER_LOCK):
            if time.monotonic() > deadline:
                raise StoreInUse(f"the writer of store ring {self.name} (pid "
                                 f"{q[W.WRITER_PID]}) is still busy after {self.start_timeout:g} s")
            time.sleep(0.01)
        unlock(seg.fd, WRITER_LOCK)
        if not seg.still_current():
            return False  # the orphan finished and removed it
        cap = q[W.CAPACITY]
        ring = SpscRing(seg.buf, RING_OFF, cap, _SLOT_STRUCT)
        waiting = len(ring)
        if waiting:
            log.warning("store ring %s was left by engine pid %d with %d slots not yet written: "
                        "writing them to %s first", self.name, q[W.ENGINE_PID], waiting,
                        self.safe_url)
            q[W.STOP] = 0
            q[W.WRITER_STATE] = WriterState.STARTING
            _clear_failure(seg.buf)
            q[W.ENGINE_PID] = os.getpid()
            proc = _spawn(self.instance, self.url, self.batch)
            try:
                _wait_ready(proc, seg, self.safe_url, deadline)
                while len(ring):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise StoreStartError(
                            f"could not write the {len(ring)} records left in {self.name} to "
                            f"{self.safe_url}: "
                            f"{_failure_text(seg.buf) or 'writer exited or timed out'}")
                    time.sleep(0.002)
                q[W.STOP] = 1
                proc.wait(max(1.0, deadline - time.monotonic()))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                ring._ctl.release()
        else:
            ring._ctl.release()
        unlink_segment(self.name)
        return True


# -- the writer process ----------------------------------------------------------------------------
def _spawn(instance: str, url: str, batch: int) -> subprocess.Popen:
    env = dict(os.environ)
    env["HELMDESK_STORE_URL"] = url  # not on the command line: a password would show in ps
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (_ROOT, env.get("PYTHONPATH"))))
    proc = subprocess.Popen(
        module_command("engine.store.writer", "--instance", instance, "--batch", str(batch)),
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True,
    )
    off_engine_cpus(proc.pid)
    return proc


def _failure_text(buf: memoryview) -> str:
    raw = bytes(buf[W.ERROR_OFF : W.ERROR_OFF + W.ERROR_LEN])
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _clear_failure(buf: memoryview) -> None:
    buf[W.ERROR_OFF : W.ERROR_OFF + W.ERROR_LEN] = bytes(W.ERROR_LEN)


def _wait_ready(proc: subprocess.Popen, seg: Segment, url: str, deadline: float) -> None:
    q = seg.q
    while True:
        state = q[W.WRITER_STATE]
        if state == WriterState.READY:
            return
        rc = proc.poll()
        if state == WriterState.FAILED or rc is not None:
            why = _failure_text(seg.buf)
            if rc is None:
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            raise StoreStartError(
                f"store writer for {url} failed to start: "
                f"{why or f'it exited with code {proc.returncode} (see its log)'}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise StoreStartError(f"store writer for {url} was not ready in time (pid {proc.pid})")
        time.sleep(0.005)
