"""The tick store: append-only files of MD_EVENT records, one file per (day, venue).

Recording writes the engine's normalized market data exactly as the books saw it; replay
hands it back as one MD_EVENT array, so a backtest runs the same books and strategies on it.

Layout::

    <root>/                         default: <data dir>/ticks (engine.core.paths.data_dir)
      2026-11-23/                   the UTC day of the records' recv_ns
        SIMA.ticks                  one venue's records of that day
        SIMA.1.ticks                a further segment (see "Segments" below)
        SIMB.ticks

A file is a header, padded with zeros to a multiple of 4096 bytes, then the raw records::

    offset  size
    0       8     magic b"HDTICKS\\0"
    8       4     format version (u4 little-endian): FORMAT_VERSION
    12      4     MD_EVENT_VERSION the records were written with (u4)
    16      4     record size in bytes (u4): 64
    20      4     header size (u4): where the first record starts, a multiple of 4096
    24      4     length of the JSON text that follows (u4)
    28      4     reserved (0)
    32      n     JSON (UTF-8): {"format", "md_event_version", "record_size",
                  "dtype": numpy.lib.format.dtype_to_descr(MD_EVENT), "venue", "day",
                  "instruments": [[symbol, tick], ...] (index = the records' instrument id),
                  "created_ns", "created" (ISO-8601 UTC), "writer"}
    32+n    ...   zeros up to the header size
    header  64*k  the records, in the order they were appended

A reader refuses, naming the path and the reason, a file with another magic, format version,
MD_EVENT_VERSION or dtype, or a header cut short. A crash can leave part of a record at the end:
a reader ignores a tail shorter than a record (``torn_bytes``), and a writer reopening the file
cuts it off before appending.

Writing (``TickWriter``) copies each batch into a buffer per file and writes whole buffers with
``os.write``: one system call per ~1 MiB, never one per record (a batch of 4096 records or
more, with nothing buffered before it, is written as it is). A new file gets its header
written and fsynced under a temporary name, then linked into place, so a file under its real
name always has a whole header. Each open file is held with ``flock``: a second writer of the
same venue and day (another process, or another writer in this one) moves on to the next
segment instead of interleaving.

Segments: a writer appends to ``<venue>.ticks`` when its header matches (venue, MD_EVENT
version and dtype, instrument table). If it does not (the engine restarted mid-day with another
instrument table), or another process holds it, or it cannot be read, the writer uses
``<venue>.1.ticks``, then ``.2``... A venue's segments are one stream, in segment order.

Recording from the engine (``TickRecorder``): the hot thread calls ``record(batch)``, which
copies the batch into a preallocated ring and returns (about 1 us for 64 records). A thread
writes the ring out: per slice of the ring, one ``writev`` per venue pointing at that venue's
runs of records, so the kernel copies them with the GIL released and the thread's own Python
work stays a few tens of microseconds. Under a spinning hot thread the writer gets the GIL
back only at forced switches (``sys.getswitchinterval()``), which caps it at a few million
records/s. The ring is bounded: when the writer cannot keep up, batches are dropped and
counted (``dropped_records``), never waited for.

Replay (``replay`` / ``open_day``) merges a day's venues into one stream. The ordering rule:

1. each venue's records keep the order they were recorded in (segments in order): a venue's
   stream is never reordered, even where its recv_ns went backwards (a wall clock stepped back);
2. between venues, records are ordered by recv_ns, where a record whose recv_ns is lower than
   an earlier record of its venue counts as at that earlier time (the running maximum);
3. ties go to the venue listed first (``venues``; default: by name), then to recording order.

When every venue's recv_ns never goes backwards, this is exactly a stable sort by recv_ns. In
the merged stream ``venue`` is rewritten to the venue's index in ``TickDay.venues`` and
``instrument`` to its index in ``TickDay.instruments`` (which equals the files' own ids when
every file of the day has the same instrument table); nothing else is touched.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.lib.format import descr_to_dtype, dtype_to_descr

from engine.core.events import MD_EVENT, MD_EVENT_VERSION

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "HEADER_ALIGN",
    "NS_PER_DAY",
    "TickStoreError",
    "TickFileError",
    "StoredInstrument",
    "TickWriter",
    "TickReader",
    "TickRecorder",
    "TickDay",
    "default_root",
    "day_of",
    "list_days",
    "day_files",
    "open_day",
    "replay",
]

MAGIC = b"HDTICKS\x00"
#: bumped when the file layout (not MD_EVENT) changes
FORMAT_VERSION = 1
HEADER_ALIGN = 4096
NS_PER_DAY = 86_400 * 1_000_000_000
_PREFIX = struct.Struct("<8sIIIII4x")  # magic, format, md version, record size, header size, json len
_VENUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,23}$")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FILE_RE = re.compile(r"^([A-Za-z0-9_-]{1,23})(?:\.(\d+))?\.ticks$")
_RECORD = MD_EVENT.itemsize
# Bulk copies go through this view: numpy copies a structured dtype field by field (~7x slower)
_RAW = np.dtype((np.void, _RECORD))
_BUFFER_RECORDS = 16384  # 1 MiB per open file
_DIRECT_RECORDS = 4096  # a batch this long, with nothing buffered before it, is written as is
_SLICE_RECORDS = 32768  # the most the recorder's thread takes from its ring at a time
_MAX_RUNS = 256  # more venue changes than this in a slice: copy per venue instead of writev
_IOV_MAX = min(1024, os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024)
_MAX_OPEN_DAYS = 4


class TickStoreError(Exception):
    """Something in the tick store cannot be done; the message says what and why.

    ``TickFileError``: a file is refused (not a tick file, another version, header cut short).
    """


class TickFileError(TickStoreError, ValueError):
    """A tick file is refused; the message starts with its path."""


class StoredInstrument(NamedTuple):
    """One row of a file's instrument table: the records' ``instrument`` id is its index."""

    symbol: str
    tick: float


def default_root() -> Path:
    """``<data dir>/ticks``."""
    from engine.core.paths import data_dir

    return data_dir() / "ticks"


def day_of(ns: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of a time in ns since the epoch."""
    return str(np.datetime64(int(ns) // NS_PER_DAY, "D"))


def _instruments(instruments: Iterable) -> tuple[StoredInstrument, ...]:
    out: list[StoredInstrument] = []
    seen: set[str] = set()
    for i, ins in enumerate(instruments):
        if isinstance(ins, (tuple, list)):
            symbol, tick = ins
        else:
            symbol, tick = ins.symbol, ins.tick
        if not isinstance(symbol, str) or not symbol or any(c.isspace() for c in symbol):
            raise ValueError(f"instrument {i}: symbol must be a non-empty word, was {symbol!r}")
        tick = float(tick)
        if not (math.isfinite(tick) and tick > 0):
            raise ValueError(f"instrument {i} ({symbol}): tick must be a positive number, was {tick!r}")
        if symbol in seen:
            raise ValueError(f"instrument {i}: {symbol!r} is listed twice")
        seen.add(symbol)
        out.append(StoredInstrument(symbol, tick))
    return tuple(out)


def _check_venue(venue: str) -> str:
    if not isinstance(venue, str) or not _VENUE_RE.match(venue):
        raise ValueError(f"venue name must be 1-23 letters, digits, '-' or '_', was {venue!r}")
    return venue


def _header_bytes(venue: str, day: str, instruments: Sequence[StoredInstrument]) -> bytes:
    now = time.time_ns()
    meta = {
        "format": FORMAT_VERSION,
        "md_event_version": MD_EVENT_VERSION,
        "record_size": _RECORD,
        "dtype": dtype_to_descr(MD_EVENT),
        "venue": venue,
        "day": day,
        "instruments": [[s, t] for s, t in instruments],
        "created_ns": now,
        "created": datetime.fromtimestamp(now / 1e9, UTC).isoformat(timespec="microseconds"),
        "writer": "helmdesk engine.feeds.tickstore",
    }
    text = json.dumps(meta, separators=(",", ":")).encode()
    size = -(-(_PREFIX.size + len(text)) // HEADER_ALIGN) * HEADER_ALIGN
    head = _PREFIX.pack(MAGIC, FORMAT_VERSION, MD_EVENT_VERSION, _RECORD, size, len(text)) + text
    return head + bytes(size - len(head))


def _read_header(path: Path, f) -> tuple[dict, int, int]:
    """Validate a tick file's header: (meta, header size, file size), or TickFileError."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    raw = f.read(_PREFIX.size)
    if len(raw) >= len(MAGIC) and raw[: len(MAGIC)] != MAGIC:
        raise TickFileError(f"{path}: not a Helmdesk tick file (it starts with {raw[:8]!r}, "
                            f"a tick file with {MAGIC!r})")
    if len(raw) < _PREFIX.size:
        raise TickFileError(f"{path}: truncated header: the file is {size} bytes, "
                            f"shorter than a header's first {_PREFIX.size}")
    _, fmt, md_version, rec_size, header_size, json_len = _PREFIX.unpack(raw)
    if fmt != FORMAT_VERSION:
        raise TickFileError(f"{path}: tick file format version {fmt}, this engine reads "
                            f"version {FORMAT_VERSION}")
    if md_version != MD_EVENT_VERSION:
        raise TickFileError(f"{path}: written with MD_EVENT version {md_version}, this engine "
                            f"reads version {MD_EVENT_VERSION}")
    if rec_size != _RECORD:
        raise TickFileError(f"{path}: records of {rec_size} bytes, this engine's MD_EVENT has {_RECORD}")
    if header_size % HEADER_ALIGN or header_size < _PREFIX.size + json_len:
        raise TickFileError(f"{path}: corrupt header: header size {header_size} with "
                            f"{json_len} bytes of JSON")
    if size < header_size:
        raise TickFileError(f"{path}: truncated header: the file is {size} bytes, its header "
                            f"{header_size}")
    text = f.read(json_len)
    try:
        meta = json.loads(text)
        descr = [tuple(d) for d in meta["dtype"]]
        dtype = descr_to_dtype(descr)
        venue = meta["venue"]
        instruments = _instruments(meta["instruments"])
        _check_venue(venue)
    except (ValueError, KeyError, TypeError) as e:
        raise TickFileError(f"{path}: corrupt header: {e}") from None
    if dtype != MD_EVENT:
        raise TickFileError(f"{path}: written with another MD_EVENT layout than this engine's, "
                            f"though both say version {MD_EVENT_VERSION}: file {dtype}, "
                            f"engine {MD_EVENT}")
    meta["instruments"] = instruments
    return meta, header_size, size


class TickReader:
    """One tick file, validated, its records a read-only memory map (zero copy).

    ``records``: the whole records present when the file was opened (a file being written
    may grow; open it again to see more). ``torn_bytes``: the length of a trailing partial
    record that was ignored (0 normally; a crash or a write in progress leaves one).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            raise TickFileError(f"{self.path}: no such tick file") from None
        except OSError as e:
            raise TickFileError(f"{self.path}: cannot read: {e.strerror}") from None
        with f:
            meta, header_size, size = _read_header(self.path, f)
        self.header: dict = meta
        self.header_size = header_size
        self.venue: str = meta["venue"]
        self.day: str = str(meta.get("day", ""))
        self.instruments: tuple[StoredInstrument, ...] = meta["instruments"]
        self.created_ns: int = int(meta.get("created_ns", 0))
        body = size - header_size
        n = body // _RECORD
        self.torn_bytes = body - n * _RECORD
        if n:
            self.records = np.memmap(self.path, dtype=MD_EVENT, mode="r", offset=header_size, shape=(n,))
        else:
            self.records = np.zeros(0, dtype=MD_EVENT)
            self.records.flags.writeable = False

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"TickReader({str(self.path)!r}: {self.venue} {self.day}, {len(self)} records)"

    def close(self) -> None:
        """Drop this reader's map (views taken from ``records`` keep it alive)."""
        self.records = np.zeros(0, dtype=MD_EVENT)

    def __enter__(self) -> TickReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _DayFile:
    """One open, locked file a writer appends to, with its write buffer."""

    __slots__ = ("path", "fd", "buf", "n", "size", "records", "appended_to", "torn_dropped")

    def __init__(self, path: Path, fd: int, size: int, existing: int, torn: int) -> None:
        self.path = path
        self.fd = fd
        self.buf = np.empty(_BUFFER_RECORDS, dtype=MD_EVENT)
        self.n = 0
        self.size = size  #: bytes known to be in the file, whole records only
        self.records = existing
        self.appended_to = existing > 0  #: it had records before this writer
        self.torn_dropped = torn

    def add(self, rec: np.ndarray) -> None:
        k = len(rec)
        if self.n == 0 and k >= _DIRECT_RECORDS and rec.flags.c_contiguous:
            self._write(rec)  # no copy; and the GIL is released while the kernel copies
            return
        if self.n + k > len(self.buf):
            self.write_out()
            if k > len(self.buf):
                self._write(rec)
                return
        self.buf.view(_RAW)[self.n : self.n + k] = rec.view(_RAW)
        self.n += k

    def write_out(self) -> None:
        if self.n:
            self._write(self.buf[: self.n])
            self.n = 0

    def _write(self, rec: np.ndarray) -> None:
        self.write_views([memoryview(np.ascontiguousarray(rec).view(np.uint8))])

    def write_views(self, views: list[memoryview]) -> None:
        """Write byte views (whole records in all) in as few system calls as possible."""
        total = 0
        try:
            for i in range(0, len(views), _IOV_MAX):
                chunk = views[i : i + _IOV_MAX]
                want = sum(len(v) for v in chunk)
                done = os.writev(self.fd, chunk) if len(chunk) > 1 else os.write(self.fd, chunk[0])
                if done < want:  # a short write (a signal, a full disk): the rest one by one
                    for v in chunk:
                        if done >= len(v):
                            done -= len(v)
                            continue
                        v = v[done:]
                        done = 0
                        while len(v):
                            v = v[os.write(self.fd, v):]
                total += want
        except OSError:
            # keep the file whole records long: a reader and a later append stay aligned
            try:
                os.ftruncate(self.fd, self.size + total)
            except OSError:
                pass
            self.size += total
            self.records += total // _RECORD
            raise
        self.size += total
        self.records += total // _RECORD

    def close(self) -> None:
        try:
            self.write_out()
        finally:
            os.close(self.fd)  # also releases the flock


class TickWriter:
    """Appends MD_EVENT batches of one venue to ``<root>/<day>/<venue>.ticks``.

    ``append(records)`` splits a batch by the UTC day of ``recv_ns`` and copies it into a
    buffer per file; whole buffers are written (``flush()`` writes what is buffered now,
    ``close()`` flushes and closes). Not thread-safe: one thread uses a writer.
    """

    def __init__(self, root: str | os.PathLike, venue: str, instruments: Iterable) -> None:
        self.root = Path(root)
        self.venue = _check_venue(venue)
        self.instruments = _instruments(instruments)
        self._header_check = [[s, t] for s, t in self.instruments]
        self._files: dict[int, _DayFile] = {}  # day number -> open file
        self.files: list[Path] = []  #: every file this writer opened, in order
        self.notes: list[str] = []  #: why a segment was skipped, a torn tail cut off...
        self.records = 0  #: appended (buffered or written)
        self._closed = False

    # -- APPEND --

    def append(self, records: np.ndarray) -> None:
        """Append a batch of MD_EVENT records (copied: the caller may reuse its array)."""
        if self._closed:
            raise TickStoreError(f"tick writer of {self.venue} under {self.root} is closed")
        if records.dtype != MD_EVENT:
            raise TypeError(f"records must be MD_EVENT, were {records.dtype}")
        n = len(records)
        if not n:
            return
        top = int(records["instrument"].max())
        if top >= len(self.instruments):
            raise ValueError(f"instrument id {top} is not in {self.venue}'s instrument table "
                             f"({len(self.instruments)} instruments)")
        recv = records["recv_ns"]
        d0 = int(recv.min()) // NS_PER_DAY
        d1 = int(recv.max()) // NS_PER_DAY
        if d0 == d1:
            self._file(d0).add(records)
        else:
            days = recv // NS_PER_DAY
            raw = records.view(_RAW)
            for d in np.unique(days):
                self._file(int(d)).add(raw[days == d].view(MD_EVENT))
        self.records += n

    def _append_views(self, day: int, views: list[memoryview], n: int) -> None:
        """Append ``n`` records given as byte views (already checked), without copying them."""
        f = self._file(day)
        f.write_out()
        f.write_views(views)
        self.records += n

    def flush(self, *, fsync: bool = False) -> None:
        """Write every buffered record to the file (``fsync``: and to the disk)."""
        for f in self._files.values():
            f.write_out()
            if fsync:
                os.fsync(f.fd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        err = None
        for f in self._files.values():
            try:
                f.close()
            except OSError as e:
                err = err or e
        self._files.clear()
        if err:
            raise err

    def __enter__(self) -> TickWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def last_recv_ns(self, day: str) -> int | None:
        """The recv_ns of the last record this venue has for ``day`` (stored or buffered)."""
        last = None
        d = int(np.datetime64(day, "D").astype(np.int64))
        f = self._files.get(d)
        if f is not None and f.n:
            return int(f.buf[f.n - 1]["recv_ns"])
        for path in day_files(self.root, day).get(self.venue, []):
            try:
                with TickReader(path) as r:
                    if len(r):
                        t = int(r.records[-1]["recv_ns"])
                        last = t if last is None else max(last, t)
            except TickFileError:
                continue
        return last

    # -- FILES --

    def _file(self, day: int) -> _DayFile:
        f = self._files.get(day)
        if f is None:
            if len(self._files) >= _MAX_OPEN_DAYS:
                oldest = min(self._files)
                self._files.pop(oldest).close()
            f = self._files[day] = self._open(str(np.datetime64(day, "D")))
            self.files.append(f.path)
        return f

    def _open(self, day: str) -> _DayFile:
        folder = self.root / day
        folder.mkdir(parents=True, exist_ok=True)
        for seg in range(10_000):
            path = folder / (f"{self.venue}.ticks" if seg == 0 else f"{self.venue}.{seg}.ticks")
            f = self._create(path, day)
            if f is None:
                f = self._reopen(path)
            if f is not None:
                return f
        raise TickStoreError(f"{folder}: no usable segment for {self.venue} (10000 tried)")

    def _create(self, path: Path, day: str) -> _DayFile | None:
        """A new file with its whole header under ``path``, or None if ``path`` exists."""
        if path.exists():
            return None
        head = _header_bytes(self.venue, day, self.instruments)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, head)
            os.fsync(fd)
            try:
                os.link(tmp, path)  # never replaces a file another writer just made
            except FileExistsError:
                os.close(fd)
                return None
            finally:
                os.unlink(tmp)
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise
        os.lseek(fd, 0, os.SEEK_END)
        return _DayFile(path, fd, len(head), 0, 0)

    def _reopen(self, path: Path) -> _DayFile | None:
        """The existing ``path`` ready to append to, or None (locked, refused, other table)."""
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as e:
            self.notes.append(f"{path}: skipped: cannot open: {e.strerror}")
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self.notes.append(f"{path}: skipped: another writer holds it")
            return None
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                meta, header_size, size = _read_header(path, f)
        except TickFileError as e:
            os.close(fd)
            self.notes.append(f"{e} (skipped)")
            return None
        if meta["venue"] != self.venue or [[s, t] for s, t in meta["instruments"]] != self._header_check:
            os.close(fd)
            self.notes.append(f"{path}: skipped: written for another instrument table")
            return None
        body = size - header_size
        torn = body % _RECORD
        if torn:
            os.ftruncate(fd, size - torn)
            self.notes.append(f"{path}: cut off a torn last record ({torn} bytes)")
        os.lseek(fd, 0, os.SEEK_END)
        return _DayFile(path, fd, size - torn, body // _RECORD, torn)


# -- RECORDING FROM THE ENGINE --


class TickRecorder:
    """Records the engine's normalized batches off the hot thread.

    ``venues``: the engine's venue table (a record's ``venue`` field indexes it);
    ``instruments``: its instrument table (``.symbol``/``.tick`` objects or pairs). Call
    ``record(batch)`` with each batch of MD_EVENT the engine handled, before reusing the
    batch's array; ``close()`` at the end writes what is queued and closes the files.

    ``record`` copies the batch into a preallocated ring (``max_queued_bytes``, 64 MiB by
    default: a million records) and returns; a thread empties the ring into the venues'
    ``TickWriter``s every ``poll_s`` and writes the files out at least every ``flush_s``.
    A full ring drops the batch (``dropped_records``): recording never makes the engine wait.
    With ``thread=False`` ``record`` writes on the caller's thread (tests, tools).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        venues: Sequence[str],
        instruments: Iterable,
        *,
        thread: bool = True,
        max_queued_bytes: int = 64 << 20,
        poll_s: float = 0.005,
        flush_s: float = 1.0,
    ) -> None:
        instruments = _instruments(instruments)
        self.venues = tuple(_check_venue(v) for v in venues)
        if not self.venues:
            raise ValueError("a recorder needs at least one venue")
        self.writers = [TickWriter(root, v, instruments) for v in self.venues]
        self.poll_s = poll_s
        self.flush_s = flush_s
        self.dropped_records = 0  #: not recorded: the ring was full (the caller's count)
        self.failed_records = 0  #: not recorded: writing them failed (the thread's count)
        self.bad_records = 0  #: not recorded: venue or instrument id outside the tables
        self.written_records = 0  #: handed to the writers
        self.errors = 0
        self.last_error = ""
        # single producer (record), single consumer (the thread): head is written only by
        # the caller, tail only by the thread; a slot is reused only once tail passed it
        self._cap = max(1, max_queued_bytes // _RECORD)
        self._ring = self._raw = None
        if thread:
            self._ring = np.empty(self._cap, dtype=MD_EVENT)
            self._ring.view(np.uint8)[:] = 0  # fault the pages in now, not on the hot path
            self._raw = self._ring.view(_RAW)
            self._bytes = memoryview(self._ring.view(np.uint8))
        self._head = 0
        self._tail = 0
        self._stop = False
        self._flush_req = 0
        self._flush_done = 0
        self._flushed = threading.Condition()
        self._thread: threading.Thread | None = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="tick-recorder", daemon=True)
            self._thread.start()

    def record(self, batch: np.ndarray) -> bool:
        """Queue a copy of ``batch`` (MD_EVENT); False, and counted, if the ring is full."""
        k = len(batch)
        if self._thread is None:
            self._write(batch)
            return True
        head = self._head
        cap = self._cap
        if head - self._tail + k > cap:
            self.dropped_records += k
            return False
        pos = head % cap
        src = batch.view(_RAW)
        if pos + k <= cap:
            self._raw[pos : pos + k] = src
        else:
            first = cap - pos
            self._raw[pos:] = src[:first]
            self._raw[: k - first] = src[first:]
        self._head = head + k
        return True

    @property
    def queued_records(self) -> int:
        return self._head - self._tail

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Write everything recorded so far to the files; False if ``timeout`` passed first."""
        if self._thread is None:
            for w in self.writers:
                w.flush()
            return True
        with self._flushed:
            self._flush_req += 1
            want = self._flush_req
            return self._flushed.wait_for(
                lambda: self._flush_done >= want or not self._thread.is_alive(), timeout)

    def close(self) -> None:
        """Write what is queued, stop the thread, close the files."""
        self._stop = True
        if self._thread is not None:
            self._thread.join()
        for w in self.writers:
            try:
                w.close()
            except OSError as e:
                self._error(e)

    def __enter__(self) -> TickRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- WRITER THREAD --

    def _run(self) -> None:
        last_flush = time.monotonic()
        cap = self._cap
        while True:
            stop = self._stop
            want = self._flush_req
            head = self._head
            busy = head != self._tail
            while self._tail != head:
                tail = self._tail
                pos = tail % cap
                end = min(cap, pos + head - tail, pos + _SLICE_RECORDS)
                try:
                    self._drain(pos, end)
                except Exception as e:  # the thread must outlive any one slice (a full disk...)
                    self.failed_records += end - pos
                    self._error(e)
                self._tail = tail + (end - pos)
            now = time.monotonic()
            if want > self._flush_done or stop or now - last_flush >= self.flush_s:
                for w in self.writers:
                    try:
                        w.flush()
                    except OSError as e:
                        self._error(e)
                last_flush = now
                with self._flushed:
                    self._flush_done = want
                    self._flushed.notify_all()
            if stop and self._head == self._tail:
                return
            if not busy:
                time.sleep(self.poll_s)

    def _drain(self, a: int, b: int) -> None:
        """Write ring slots a..b to the venues' files straight from the ring.

        Why not ``_write``: the thread holds the GIL for its Python work and gets it back,
        after each system call, only when the hot thread lets go (at once when it waits on
        its sockets, after up to ``sys.getswitchinterval()`` when it spins). So the thread
        copies nothing itself: one ``writev`` per venue hands the kernel the slices of the
        ring that belong to it, and the GIL is free while the kernel copies.
        """
        ring = self._ring[a:b]
        venue = ring["venue"]
        recv = ring["recv_ns"]
        nv = len(self.writers)
        day = int(recv.min()) // NS_PER_DAY
        top = int(venue.max())
        if (top >= nv or day != int(recv.max()) // NS_PER_DAY
                or int(ring["instrument"].max()) >= len(self.writers[0].instruments)):
            self._write(ring)  # a day boundary or bad ids: the careful path
            return
        if int(venue.min()) == top:
            runs = {top: [(a, b)]}
        else:
            cut = np.flatnonzero(venue[1:] != venue[:-1]) + 1
            if len(cut) > _MAX_RUNS:
                self._write(ring)
                return
            starts = [0, *cut.tolist()]
            ends = [*cut.tolist(), b - a]
            runs = {}
            for s, e, v in zip(starts, ends, venue[starts].tolist()):
                runs.setdefault(v, []).append((a + s, a + e))
        mv = self._bytes
        for v, spans in runs.items():
            n = sum(e - s for s, e in spans)
            try:
                self.writers[v]._append_views(day, [mv[s * _RECORD : e * _RECORD] for s, e in spans], n)
                self.written_records += n
            except OSError as e:
                self.failed_records += n
                self._error(e)

    def _write(self, batch: np.ndarray) -> None:
        if not len(batch):
            return
        venue = batch["venue"]
        lo, hi = int(venue.min()), int(venue.max())
        nv = len(self.writers)
        if lo == hi:
            parts = [(lo, batch)]
        else:
            raw = batch.view(_RAW)
            parts = [(int(v), raw[venue == v].view(MD_EVENT)) for v in np.unique(venue)]
        for v, part in parts:
            if v >= nv:
                self.bad_records += len(part)
                self._error(ValueError(f"venue id {v} is not in the recorder's venues "
                                       f"({', '.join(self.venues)})"))
                continue
            try:
                self.writers[v].append(part)
                self.written_records += len(part)
            except ValueError as e:  # an instrument id outside the table
                self.bad_records += len(part)
                self._error(e)
            except OSError as e:
                self.failed_records += len(part)
                self._error(e)

    def _error(self, e: Exception) -> None:
        self.errors += 1
        self.last_error = str(e)


# -- READING A DAY --


def list_days(root: str | os.PathLike) -> list[str]:
    """The days (``YYYY-MM-DD``) that have a folder under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _DAY_RE.match(p.name))


def day_files(root: str | os.PathLike, day: str) -> dict[str, list[Path]]:
    """``{venue: [segment paths in order]}`` for one day, venues by name."""
    folder = Path(root) / day
    found: dict[str, list[tuple[int, Path]]] = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _FILE_RE.match(p.name)
            if m:
                found.setdefault(m.group(1), []).append((int(m.group(2) or 0), p))
    return {v: [p for _, p in sorted(found[v])] for v in sorted(found)}


class TickDay:
    """One day's files, opened and checked: ``merge()`` gives the replay stream.

    ``venues``: the order asked for (a merged record's ``venue`` is its index here);
    ``instruments``: the day's instrument table (a merged record's ``instrument`` indexes it);
    ``readers``: ``{venue: [TickReader per segment]}``; ``torn_bytes``: ignored tails in all.
    """

    def __init__(self, root: str | os.PathLike, day: str, venues: Sequence[str] | None = None) -> None:
        root = Path(root)
        if not _DAY_RE.match(day):
            raise TickStoreError(f"day must be YYYY-MM-DD, was {day!r}")
        files = day_files(root, day)
        if not files:
            days = list_days(root)
            have = f"days there: {', '.join(days)}" if days else "no days recorded there"
            raise TickStoreError(f"no ticks for {day} under {root} ({have})")
        if venues is None:
            venues = list(files)
        missing = [v for v in venues if v not in files]
        if missing:
            raise TickStoreError(f"no {', '.join(missing)} ticks for {day} under {root} "
                                 f"(venues that day: {', '.join(files)})")
        if len(set(venues)) != len(venues):
            raise TickStoreError(f"venues listed twice: {list(venues)}")
        self.root = root
        self.day = day
        self.venues: tuple[str, ...] = tuple(venues)
        self.readers = {v: [TickReader(p) for p in files[v]] for v in self.venues}
        self.torn_bytes = sum(r.torn_bytes for rs in self.readers.values() for r in rs)
        # the day's instrument table: the first file's, then symbols the others add
        table: list[StoredInstrument] = []
        index: dict[str, int] = {}
        for rs in self.readers.values():
            for r in rs:
                for s, t in r.instruments:
                    if s not in index:
                        index[s] = len(table)
                        table.append(StoredInstrument(s, t))
                    elif table[index[s]].tick != t:
                        raise TickFileError(f"{r.path}: {s} has tick {t} there, "
                                            f"{table[index[s]].tick} in another file of {day}")
        self.instruments: tuple[StoredInstrument, ...] = tuple(table)
        self._index = index

    def __len__(self) -> int:
        return sum(len(r) for rs in self.readers.values() for r in rs)

    def merge(self, out: np.ndarray | None = None) -> np.ndarray:
        """The day as one MD_EVENT array, ordered as the module docstring says.

        A new array, or the first ``len(self)`` records of ``out`` (an MD_EVENT array at least
        that long): a backtest replaying day after day reuses one array, and saves the page
        faults of a fresh one (most of the cost on a VM).
        """
        files = [(vi, r) for vi, v in enumerate(self.venues) for r in self.readers[v] if len(r)]
        n = sum(len(r) for _, r in files)
        # the sort key: recv_ns, held at its running maximum within each venue
        key = np.empty(n, dtype=np.int64)
        at = 0
        for vi, v in enumerate(self.venues):
            start = at
            for r in self.readers[v]:
                key[at : at + len(r)] = r.records["recv_ns"]
                at += len(r)
            np.maximum.accumulate(key[start:at], out=key[start:at])
        if out is None:
            out = np.empty(n, dtype=MD_EVENT)
        elif out.dtype != MD_EVENT or out.ndim != 1 or len(out) < n:
            raise ValueError(f"out must be a 1-d MD_EVENT array of at least {n} records, was "
                             f"{out.dtype} {out.shape}")
        else:
            out = out[:n]
        raw = out.view(_RAW)
        if len(self.venues) == 1 or n < 2 or bool(np.all(key[1:] >= key[:-1])):
            dest = None  # already in order: concatenate
        else:
            # where each record goes: the inverse of the stable sort's permutation, so each
            # file is copied once straight into its places (no intermediate concatenation)
            order = np.argsort(key, kind="stable")
            dest = np.empty(n, dtype=np.intp)
            dest[order] = np.arange(n, dtype=np.intp)
        del key
        at = 0
        for vi, r in files:
            k = len(r)
            where = slice(at, at + k) if dest is None else dest[at : at + k]
            raw[where] = r.records.view(_RAW)
            part = out[where] if dest is None else None
            if part is not None:
                part["venue"] = vi
                self._remap(r, part)
            else:
                out["venue"][where] = vi
                ids = self._lookup(r)
                if ids is not None:
                    out["instrument"][where] = ids[r.records["instrument"]]
            at += k
        return out

    def _lookup(self, r: TickReader) -> np.ndarray | None:
        """Day-table ids by file id, or None when the file's ids are the day's already."""
        mine = [s for s, _ in r.instruments]
        if mine == [s for s, _ in self.instruments[: len(mine)]]:
            return None
        top = int(r.records["instrument"].max()) if len(r) else 0
        if top >= len(mine):
            raise TickFileError(f"{r.path}: instrument id {top} is not in its instrument table "
                                f"({len(mine)} instruments)")
        return np.array([self._index[s] for s in mine], dtype=np.uint32)

    def _remap(self, r: TickReader, part: np.ndarray) -> None:
        ids = self._lookup(r)
        if ids is not None:
            part["instrument"] = ids[part["instrument"]]

    def close(self) -> None:
        for rs in self.readers.values():
            for r in rs:
                r.close()


def open_day(root: str | os.PathLike, day: str, venues: Sequence[str] | None = None) -> TickDay:
    """Open a day of the store for replay (every venue of the day by default, by name)."""
    return TickDay(root, day, venues)


def replay(root: str | os.PathLike, day: str, venues: Sequence[str] | None = None, *,
           out: np.ndarray | None = None) -> np.ndarray:
    """A day's ticks of ``venues`` (default: all, by name) merged into one stream by recv_ns.

    Shorthand for ``open_day(root, day, venues).merge(out)``; see the module docstring for the
    ordering rule and for what ``venue`` and ``instrument`` mean in the result.
    """
    d = TickDay(root, day, venues)
    try:
        return d.merge(out)
    finally:
        d.close()
