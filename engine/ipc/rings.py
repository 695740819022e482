"""Rings over shared memory: the engine→desk event ring and the per-desk SPSC rings.

Event ring (Agrona ``BroadcastTransmitter``/``CopyBroadcastReceiver``): one writer that never
waits. Control is ``[tail intent][pad][tail][pad]``. The writer publishes the intent (where the
tail will be), writes the records, then moves the tail. A reader copies what lies between its
cursor and the tail, then re-reads the intent: any copied record that the writer may have been
overwriting meanwhile (index < intent - capacity) is thrown away and counted as lost, as is
everything the writer lapped before the copy. Each record also carries its own sequence
number, checked on read.

SPSC ring (commands desk→engine, acks engine→desk): control ``[head][pad][tail][pad]``,
fixed-size records packed with ``struct``. The producer refuses when full (the caller decides);
the consumer advances ``head`` only after it has unpacked the record. ``SpscRing`` reads both
words each time (the desk's side, and the store's ring); a pair of words no honest peer could
leave (tail behind head, or more than a lap ahead) reads as a ring with nothing to pop and no
room to push, never as an exception. The engine's side of the desk rings, which keeps its own
copy of the index it owns, is ``engine.ipc.deskslots``. Command records are sealed
(``SealedCommandRing``; layout.command_seal).

The trade ring (time and sales) is the same broadcast ring over TRADE_DTYPE records
(``TradeRingWriter``/``TradeRingReader``): only ``publish_batch`` writes it, and a reader's
``poll`` returns a structured array; what a lapping writer overwrote is counted in ``lost``.

Readers of the event ring treat its words the same way: a tail behind the reader's cursor
(only a corrupt word can do that) moves the cursor to it.
"""

from __future__ import annotations

import struct

import numpy as np

from engine.ipc.layout import (
    CACHE_LINE,
    COMMAND_SEAL_OFF,
    EVENT_DTYPE,
    EVENT_STRUCT,
    SEAL_STRUCT,
    TRADE_DTYPE,
    command_seal,
)

__all__ = ["EventRingWriter", "EventRingReader", "TradeRingWriter", "TradeRingReader",
           "SpscRing", "SealedCommandRing"]

_TAIL_INTENT = 0
_TAIL = CACHE_LINE // 8  # u64 index of the tail word
_HEAD = 0
_REC = EVENT_DTYPE.itemsize
_U64 = (1 << 64) - 1  # index stores wrap as the u64 words do (only corrupt words get there)


class _EventRing:
    _dtype = EVENT_DTYPE  #: the ring's records (each begins with its ``seq`` u64)

    def __init__(self, buf: memoryview, offset: int, capacity: int) -> None:
        if capacity & (capacity - 1):
            raise ValueError(f"event ring capacity must be a power of two, was {capacity}")
        self.capacity = capacity
        self.mask = capacity - 1
        self._ctl = buf[offset : offset + 2 * CACHE_LINE].cast("Q")
        self._rec_off = offset + 2 * CACHE_LINE
        self._buf = buf
        self.records = np.frombuffer(buf, dtype=self._dtype, count=capacity,
                                     offset=self._rec_off)

    @property
    def tail(self) -> int:
        return self._ctl[_TAIL]


class EventRingWriter(_EventRing):
    """The engine's side. ``publish`` for one record, ``publish_batch`` for many."""

    def __init__(self, buf: memoryview, offset: int, capacity: int) -> None:
        super().__init__(buf, offset, capacity)
        self._tail = self._ctl[_TAIL]
        self._pack = EVENT_STRUCT.pack_into
        self._seq_arange = np.arange(0, dtype=np.uint64)

    def publish(self, ts_ns: int, kind: int, level: int, instrument: int, text: bytes) -> None:
        seq = self._tail
        nxt = seq + 1
        ctl = self._ctl
        ctl[_TAIL_INTENT] = nxt
        self._pack(
            self._buf,
            self._rec_off + (seq & self.mask) * _REC,
            seq,
            ts_ns,
            kind,
            level,
            instrument,
            text,
        )
        ctl[_TAIL] = nxt
        self._tail = nxt

    def publish_batch(self, recs: np.ndarray) -> None:
        """Publish records (EVENT_DTYPE); their ``seq`` field is overwritten."""
        n = len(recs)
        if n == 0:
            return
        cap = self.capacity
        if n > cap:  # only the newest `cap` can survive anyway
            self._ctl[_TAIL_INTENT] = self._tail + n - cap
            self._ctl[_TAIL] = self._tail + n - cap
            self._tail += n - cap
            recs = recs[n - cap :]
            n = cap
        seq0 = self._tail
        if len(self._seq_arange) < n:
            self._seq_arange = np.arange(max(n, 1024), dtype=np.uint64)
        recs["seq"] = self._seq_arange[:n] + np.uint64(seq0)
        ctl = self._ctl
        ctl[_TAIL_INTENT] = seq0 + n
        i = seq0 & self.mask
        first = min(n, cap - i)
        self.records[i : i + first] = recs[:first]
        if first < n:
            self.records[: n - first] = recs[first:]
        ctl[_TAIL] = seq0 + n
        self._tail = seq0 + n


class EventRingReader(_EventRing):
    """A desk's side: copies new records out; counts what it lost to a lapping writer."""

    def __init__(self, buf: memoryview, offset: int, capacity: int, *, from_start: bool = False):
        super().__init__(buf, offset, capacity)
        tail = self._ctl[_TAIL]
        self.cursor = max(0, tail - capacity) if from_start else tail
        self.lost = 0

    def poll(self, max_records: int = 4096) -> np.ndarray:
        """Return the records published since the last poll (oldest first, a copy)."""
        ctl = self._ctl
        tail = ctl[_TAIL]
        cursor = self.cursor
        if tail <= cursor:
            self.cursor = tail  # == : nothing new; < : a corrupt tail, follow it
            return self.records[:0].copy()
        cap = self.capacity
        if tail - cursor > cap:
            self.lost += tail - cap - cursor
            cursor = tail - cap
        n = min(tail - cursor, max_records)
        i = cursor & self.mask
        first = min(n, cap - i)
        if first == n:
            out = self.records[i : i + n].copy()
        else:
            out = np.concatenate((self.records[i:], self.records[: n - first]))
        intent = ctl[_TAIL_INTENT]
        valid_from = intent - cap  # records older than this may have been overwritten mid-copy
        end = cursor + n
        if valid_from > cursor:
            drop = min(valid_from, end) - cursor
            self.lost += drop
            out = out[drop:]
            cursor += drop
        # Belt and braces: every record carries its own sequence number.
        if len(out) and (out["seq"][0] != cursor or out["seq"][-1] != end - 1):
            good = out["seq"] == np.arange(cursor, end, dtype=np.uint64)
            self.lost += int(len(out) - good.sum())
            out = out[good]
        self.cursor = end
        return out

    def poll_one(self) -> tuple | None:
        """One record as a tuple, or None; for readers that want records one at a time."""
        ctl = self._ctl
        tail = ctl[_TAIL]
        cursor = self.cursor
        if tail <= cursor:
            self.cursor = tail
            return None
        cap = self.capacity
        if tail - cursor > cap:
            self.lost += tail - cap - cursor
            cursor = tail - cap
        rec = EVENT_STRUCT.unpack_from(self._buf, self._rec_off + (cursor & self.mask) * _REC)
        if rec[0] != cursor or ctl[_TAIL_INTENT] - cap > cursor:
            self.lost += 1
            self.cursor = cursor + 1
            return None
        self.cursor = cursor + 1
        return rec


class TradeRingWriter(EventRingWriter):
    """The engine's side of the trade ring: ``publish_batch`` of TRADE_DTYPE records."""

    _dtype = TRADE_DTYPE

    def publish(self, *_args) -> None:  # pragma: no cover - a programming error
        raise TypeError("the trade ring takes whole batches: publish_batch")

    def claim(self, n: int) -> int:
        """Begin writing ``n`` records in place; return the first one's index ``seq0``. The
        caller writes record ``seq0 + j`` (its ``seq`` field too) at ``records[(seq0 + j) &
        mask]`` for the last ``min(n, capacity)`` of them, then calls ``commit(n)``."""
        seq0 = self._tail
        self._ctl[_TAIL_INTENT] = seq0 + n
        return seq0

    def commit(self, n: int) -> None:
        """The ``n`` records of the last ``claim`` are written: readers may have them."""
        self._tail = t = self._tail + n
        self._ctl[_TAIL] = t


class TradeRingReader(EventRingReader):
    """A desk's side of the trade ring: ``poll`` copies new trades out, ``lost`` counts what a
    lapping writer overwrote before this reader copied it."""

    _dtype = TRADE_DTYPE

    def poll_one(self):  # pragma: no cover - a programming error
        raise TypeError("the trade ring is read in batches: poll")


class SpscRing:
    """Single-producer single-consumer ring of fixed-size struct records."""

    __slots__ = ("_ctl", "_buf", "_rec_off", "_size", "capacity", "mask", "_pack", "_unpack")

    def __init__(self, buf: memoryview, offset: int, capacity: int, st: struct.Struct) -> None:
        if capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two, was {capacity}")
        self._ctl = buf[offset : offset + 2 * CACHE_LINE].cast("Q")
        self._buf = buf
        self._rec_off = offset + 2 * CACHE_LINE
        self._size = st.size
        self.capacity = capacity
        self.mask = capacity - 1
        self._pack = st.pack_into
        self._unpack = st.unpack_from

    @property
    def head(self) -> int:
        return self._ctl[_HEAD]

    @property
    def tail(self) -> int:
        return self._ctl[_TAIL]

    def __len__(self) -> int:
        """Records waiting (0 if the words are corrupt: see the module docstring)."""
        n = self._ctl[_TAIL] - self._ctl[_HEAD]
        return n if 0 <= n <= self.capacity else 0

    def sane(self) -> bool:
        """Are the two words a pair an honest producer and consumer could leave?"""
        return 0 <= self._ctl[_TAIL] - self._ctl[_HEAD] <= self.capacity

    def free(self) -> int:
        n = self._ctl[_TAIL] - self._ctl[_HEAD]
        return self.capacity - n if 0 <= n <= self.capacity else 0

    def try_push(self, *fields) -> bool:
        ctl = self._ctl
        tail = ctl[_TAIL]
        if not 0 <= tail - ctl[_HEAD] < self.capacity:
            return False
        self._pack(self._buf, self._rec_off + (tail & self.mask) * self._size, *fields)
        ctl[_TAIL] = (tail + 1) & _U64  # the record is visible only after this store
        return True

    def pop(self) -> tuple | None:
        ctl = self._ctl
        head = ctl[_HEAD]
        if not 0 < ctl[_TAIL] - head <= self.capacity:
            return None
        rec = self._unpack(self._buf, self._rec_off + (head & self.mask) * self._size)
        ctl[_HEAD] = (head + 1) & _U64
        return rec

    def skip_all(self) -> int:
        """Consumer: drop everything pending (a new owner of a slot ignores old acks)."""
        ctl = self._ctl
        tail = ctl[_TAIL]
        n = tail - ctl[_HEAD]
        ctl[_HEAD] = tail
        return n if 0 <= n <= self.capacity else 0


class SealedCommandRing(SpscRing):
    """A desk's command ring: each record's seal is stored after the rest of it, and before
    the tail moves, so the engine can tell a finished record from anything else."""

    __slots__ = ()

    def try_push(self, *fields) -> bool:
        """``fields`` as COMMAND_STRUCT packs them (their seal is replaced)."""
        ctl = self._ctl
        tail = ctl[_TAIL]
        if not 0 <= tail - ctl[_HEAD] < self.capacity:
            return False
        off = self._rec_off + (tail & self.mask) * self._size
        self._pack(self._buf, off, *fields)
        SEAL_STRUCT.pack_into(self._buf, off + COMMAND_SEAL_OFF, command_seal(tail))
        ctl[_TAIL] = (tail + 1) & _U64
        return True
