"""The store segment and its records: the single source of truth for the engine and the writer.

One segment per engine instance, ``/dev/shm/helmdesk.<instance>.store`` (mode 0600), created
and unlinked by the engine's ``StoreLink``; the writer process only attaches (through
``engine.ipc.segment``, so no resource tracker ever unlinks it behind our back)::

    0      HEADER (4096 B, u64 words; every writer of a word owns its cache line)
           line 0  magic "HELMSTOR" · version u32 · header size u32 · total size · capacity
                   · slot size · engine pid · created (wall ns)
           line 1  engine → writer: stop request
           line 2  writer → engine: writer pid · state · durable seq
           line 3  writer counters: applied · bad · duplicates · batches · db errors · replays
           · failing since (wall ns of the first failed commit in a row; 0: committing)
           line 4-7  writer → engine: why the writer failed (256 B UTF-8, NUL padded)
           line 8-11 writer → engine: the database's last error while failing (256 B)
    4096   RING    SpscRing control ([head][pad][tail][pad]) + capacity × 256-byte slots

The ring is ``engine.ipc.rings.SpscRing``'s layout with one twist: the writer moves ``head``
only after the records it read are committed. So ``head`` is the durable position, and every
record between ``head`` and ``tail`` is still intact in the ring: a writer that died is
replaced by one that simply starts reading at ``head`` again (records are idempotent: see
writer.py), and nothing has to be kept or re-sent by the engine.

Byte 0 of the segment carries the engine's OFD lock and byte 1 the writer's, each held for the
holder's life (the kernel drops them when it dies): that is how a new engine tells a stale
segment (both dead) from one whose orphaned writer is still draining.

A record is one or more slots. Slot 0 starts with the 16-byte header ``seq u64 · kind u16 ·
nslots u16 · length u32`` and the kind's fields packed with ``struct`` (fixed-width,
NUL-padded UTF-8 strings; ``price`` NaN for "none"). A record may carry a *tail* of
``length`` bytes that starts right after its fields and runs on through ``nslots - 1``
continuation slots of pure data (wrapping at the end of the ring like the slots do): FIX_MSG's
raw message, and the identifiers a venue chooses, which may be of any length (a UUID OrderID
is 36 characters): an ORDER whose venue order id, or an EXECUTION whose ExecID, does not fit
its fixed field leaves the field empty and carries the whole identifier as its tail. A LIMIT
record (a risk limit edited) carries all its texts in its tail: user, role, workstation, scope,
key, old value, new value and reason, in that order, each UTF-8, NUL between them.

A KILL record's ``state`` byte is ``KILL_STATE_CODE`` ("active", "reducing", "halted"; 0: not
given, read from ``tripped``), its ``scope_name`` the switch's scope as people write it
("strategy:pairs"; empty: made from the scope kind and the name).
"""

from __future__ import annotations

import enum
import math
import struct

from engine.execution.orders import OrdStatus
from engine.ipc.layout import CACHE_LINE, RING_CONTROL

__all__ = [
    "COMMAND",
    "ENGINE_LOCK",
    "EXECUTION",
    "FIX_MSG",
    "FIX_MSG_FIRST",
    "FIX_RESET",
    "FIX_SEQ",
    "HDR",
    "HEADER_SIZE",
    "KILL",
    "KILL_STATES",
    "KILL_STATE_CODE",
    "LIMIT",
    "LIMIT_FIELDS",
    "ORDER_TAG",
    "ORDER_TAG_FIELDS",
    "MAX_FIX_MSG",
    "MAX_TAIL",
    "ORDER",
    "RING_OFF",
    "SLOT",
    "STATUS_CODE",
    "STATUS_OF_CODE",
    "STORE_MAGIC",
    "STORE_VERSION",
    "WIDTH",
    "WRITER_LOCK",
    "Kind",
    "W",
    "WriterState",
    "copy_in",
    "copy_out",
    "record_slots",
    "TAILED",
    "segment_name",
    "total_size",
]

STORE_MAGIC = int.from_bytes(b"HELMSTOR", "little")
STORE_VERSION = 4  # 3: KILL carries state and scope name; LIMIT records; 4: EXECUTION fee
HEADER_SIZE = 4096
RING_OFF = HEADER_SIZE
SLOT = 256
ENGINE_LOCK = 0  # byte offsets of the OFD locks
WRITER_LOCK = 1
MAX_FIX_MSG = 64 * 1024  # a FIX message longer than this is a bug, not a message
MAX_TAIL = MAX_FIX_MSG  # no record's tail is longer (an identifier is part of a message)


class W:
    """Header word indexes (u64 words: byte offset / 8)."""

    MAGIC = 0
    VERSION = 1  # u32 version | u32 header size
    TOTAL_SIZE = 2
    CAPACITY = 3
    SLOT_SIZE = 4
    ENGINE_PID = 5
    CREATED_NS = 6
    # line 1: engine -> writer
    STOP = CACHE_LINE // 8
    # line 2: writer -> engine
    WRITER_PID = 2 * CACHE_LINE // 8
    WRITER_STATE = WRITER_PID + 1
    DURABLE = WRITER_PID + 2
    # line 3: writer counters
    APPLIED = 3 * CACHE_LINE // 8
    BAD = APPLIED + 1
    DUPLICATES = APPLIED + 2
    BATCHES = APPLIED + 3
    DB_ERRORS = APPLIED + 4
    REPLAYED = APPLIED + 5
    COUNTERS = ("applied", "bad", "duplicates", "batches", "db_errors", "replayed")
    FAILING_SINCE = APPLIED + 6
    # lines 4-7: the writer's failure text (bytes, not words)
    ERROR_OFF = 4 * CACHE_LINE
    ERROR_LEN = 4 * CACHE_LINE
    # lines 8-11: the database's last error while commits fail (bytes)
    DB_ERROR_OFF = 8 * CACHE_LINE
    DB_ERROR_LEN = 4 * CACHE_LINE


class WriterState:
    STARTING = 0
    READY = 1
    FAILED = 2
    STOPPED = 3


class Kind(enum.IntEnum):
    ORDER = 1  #: a new or changed order row (upsert by ClOrdID)
    EXECUTION = 2  #: a fill (insert once by ExecID + venue; moves the position)
    COMMAND = 3  #: an audited command and its result
    KILL = 4  #: a kill switch tripped or re-armed
    FIX_SEQ = 5  #: a FIX session's next sender/target sequence numbers
    FIX_MSG = 6  #: a FIX message sent (kept for resends); next sender seq = its seq + 1
    FIX_RESET = 7  #: a FIX session reset: messages forgotten, both numbers back to 1
    LIMIT = 8  #: a risk limit edited: who, where, which, from what to what, why
    ORDER_TAG = 9  #: whose an order is: ClOrdID, source ("strategy:pairs"), account


#: Field widths in bytes (UTF-8). Our own identifiers longer than these are refused (a venue's
#: go to the record's tail); free text is cut.
WIDTH = {
    "cl_ord_id": 32, "venue": 16, "symbol": 16, "tif": 8, "venue_order_id": 48, "parent_id": 32,
    "exec_id": 48, "user": 16, "workstation": 16, "cmd_text": 48, "reason": 96, "name": 24,
    "session": 64, "kill_user": 32, "scope_name": 48, "limit_text": 256,
}

HDR = struct.Struct("<QHHI")  # seq, kind, nslots, length
# seq kind nslots len | cl_ord_id venue symbol tif venue_order_id parent_id | side status
# | qty price cum_qty leaves_qty avg_px created_ns updated_ns
ORDER = struct.Struct("<QHHI32s16s16s8s48s32sBBxxxxxxqdqqdqq")  # a UUID OrderID fits
# | exec_id venue cl_ord_id symbol | side | qty price ts_ns
EXECUTION = struct.Struct("<QHHI48s16s32s16sBxxxxxxxqdqd")  # ... qty, price, ts, fee
# | cmd_id ts_ns verb scope scope_id arg0 arg1 role status | user workstation text reason
COMMAND = struct.Struct("<QHHIQqHHiddBB16s16s48s96s")
# | ts_ns scope tripped state scope_id | name user reason scope_name
KILL = struct.Struct("<QHHIqBBBxi24s32s96s48s")
#: A KILL record's state byte (0: not given; the writer takes "halted" if tripped, else "active").
KILL_STATES = ("active", "reducing", "halted")
KILL_STATE_CODE = {name: i + 1 for i, name in enumerate(KILL_STATES)}
# | ts_ns ; the texts of LIMIT_FIELDS follow as the tail, NUL between them
LIMIT = struct.Struct("<QHHIq")
LIMIT_FIELDS = ("user", "role", "workstation", "scope", "key", "old_value", "new_value", "reason")
# | ts_ns ; ClOrdID, source and account follow as the tail, NUL between them
ORDER_TAG = struct.Struct("<QHHIq")
ORDER_TAG_FIELDS = ("cl_ord_id", "source", "account")
FIX_SEQ = struct.Struct("<QHHI64sqq")  # | session next_sender next_target
FIX_RESET = struct.Struct("<QHHI64sq")  # | session ts_ns
FIX_MSG = struct.Struct("<QHHI64sq")  # | session seq ; raw bytes follow
FIX_MSG_FIRST = SLOT - FIX_MSG.size  # raw bytes that fit in the first slot
#: Kinds that may carry a tail, and where in their first slot it starts.
TAILED = {Kind.ORDER: ORDER.size, Kind.EXECUTION: EXECUTION.size, Kind.FIX_MSG: FIX_MSG.size,
          Kind.LIMIT: LIMIT.size, Kind.ORDER_TAG: ORDER_TAG.size}
for _st in (ORDER, EXECUTION, COMMAND, KILL, FIX_SEQ, FIX_RESET, FIX_MSG, LIMIT, ORDER_TAG):
    assert _st.size <= SLOT, _st.format
assert RING_CONTROL == 2 * CACHE_LINE

#: OrdStatus <-> the byte in an ORDER record (0 is never a status: a zeroed slot is garbage).
STATUS_CODE: dict[OrdStatus, int] = {s: i + 1 for i, s in enumerate(OrdStatus)}
STATUS_OF_CODE: dict[int, OrdStatus] = {i: s for s, i in STATUS_CODE.items()}

NAN = math.nan


def segment_name(instance: str) -> str:
    """Name of the POSIX shared-memory object of an instance's store ring."""
    return f"/helmdesk.{instance}.store"


def total_size(capacity: int) -> int:
    return RING_OFF + RING_CONTROL + capacity * SLOT


def record_slots(kind: int, length: int) -> int:
    """Slots a record of ``kind`` with a tail of ``length`` bytes takes."""
    first = SLOT - TAILED.get(kind, SLOT)
    if length <= first:
        return 1
    return 1 + (length - first + SLOT - 1) // SLOT


def copy_in(buf: memoryview, slots_off: int, capacity: int, pos: int, data) -> None:
    """Write ``data`` into the ring's slot area at byte ``pos`` (ring-relative, wrapping)."""
    area = capacity * SLOT
    pos %= area
    n = len(data)
    first = min(n, area - pos)
    buf[slots_off + pos : slots_off + pos + first] = data[:first]
    if first < n:
        buf[slots_off : slots_off + n - first] = data[first:]


def copy_out(buf: memoryview, slots_off: int, capacity: int, pos: int, n: int) -> bytes:
    """Read ``n`` bytes of the ring's slot area from byte ``pos`` (ring-relative, wrapping)."""
    area = capacity * SLOT
    pos %= area
    first = min(n, area - pos)
    out = bytes(buf[slots_off + pos : slots_off + pos + first])
    if first < n:
        out += bytes(buf[slots_off : slots_off + n - first])
    return out
