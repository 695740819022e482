"""Plain quote/trade CSV files into the tick store, row by row, rejecting what is wrong.

The format: UTF-8 text, a header row naming the columns (any order, any case), then one
event per row. Blank lines and lines starting with ``#`` are skipped.

==========  ========  =================================================================
column      required  value
==========  ========  =================================================================
time        yes       ISO-8601 (``2026-11-23T14:30:00.123456789Z``; up to 9 decimals;
                      no offset means UTC; ``+01:00`` style offsets are converted), or
                      an integer: nanoseconds since the epoch (UTC)
symbol      yes       an instrument of the import's table (``--tick`` / ``--profile``)
type        yes       ``quote`` or ``trade``
side        yes       quote: ``bid`` / ``ask``; trade: the aggressor ``buy`` / ``sell``,
                      or empty (unknown)
price       yes       a number on the instrument's tick grid (stored as integer ticks);
                      may be empty for a quote ``delete`` / ``clear``
size        yes       a whole number >= 0 (a trade's > 0); may be empty for ``delete`` /
                      ``clear``
level       no        a quote's 0-based depth level, 0-254 (default 0)
venue       no        the venue's name (default: the import's ``venue``)
action      no        a quote's ``new`` / ``change`` / ``delete`` / ``clear`` (MD_EVENT's
                      actions, the FIX MDUpdateAction meanings)
==========  ========  =================================================================

Without an ``action`` column, quotes are top of book: a row says "the best bid (ask) is now
price x size" and becomes two records, CLEAR of that side then NEW at level 0 (both
``F_SNAPSHOT``; a size of 0 leaves just the CLEAR: the side is empty). Its level must be 0.
With an ``action`` column, each quote row is one record with that action and level, exactly
as a feed handler would have written it. A trade row is one TRADE record.

Each record gets ``recv_ns = exch_ns = time``, ``flags`` with ``F_LAST`` on the last record
of its row, ``seq`` 0, ``channel`` 0, and the venue's index in ``venues`` (the profile's
``[[venues]]`` order) or, for other venues, the order they first appear in.

Rows of one venue must be in time order (equal times are fine), and after what the store
already has for that venue and day (it is append-only): a row going back in time is rejected.

A bad row is rejected with its row number (the file's line number; the header is line 1) and
the reason, counted, and the import goes on; nothing about a row can stop it. A bad file
(no header, an unknown or missing column) is refused as a whole: ``CsvFormatError``.

The file is read as a stream in chunks of rows, so its size does not matter.
"""

from __future__ import annotations

import csv
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from engine.core.events import (
    ASK, BID, BUY, CHANGE, CLEAR, DELETE, F_LAST, F_SNAPSHOT, MD_EVENT, NEW, QUOTE, SELL, TRADE,
)
from engine.feeds.tickstore import NS_PER_DAY, TickWriter, _instruments, day_of

__all__ = ["CsvFormatError", "ImportResult", "COLUMNS", "REQUIRED", "import_csv"]

REQUIRED = ("time", "symbol", "type", "side", "price", "size")
COLUMNS = REQUIRED + ("level", "venue", "action")

_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|z|[+-]\d\d:?\d\d)?"
)
_VENUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,23}$")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_EPOCH_NS = 10**17  # 1973: smaller epoch times are seconds or milliseconds by mistake
_MAX_TICKS = 1 << 62
_QUOTE_SIDES = {"bid": BID, "ask": ASK}
_TRADE_SIDES = {"buy": BUY, "sell": SELL, "": 0}
_ACTIONS = {"new": NEW, "change": CHANGE, "delete": DELETE, "clear": CLEAR}
_CHUNK_ROWS = 65536


class CsvFormatError(ValueError):
    """The file as a whole cannot be imported (no header, unknown or missing columns)."""


class _Bad(Exception):
    """One row's reason for rejection."""


@dataclass
class ImportResult:
    path: Path
    root: Path
    rows_read: int = 0  #: data rows (not the header, blank or # lines)
    rows_imported: int = 0
    rows_rejected: int = 0
    records_written: int = 0  #: MD_EVENT records (a top-of-book quote row makes two)
    reasons: list[str] = field(default_factory=list)  #: the first rejections, "row N: why"
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  #: (venue, day) -> records
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  #: from the writers (segments skipped...)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0


def _iso(ns: int) -> str:
    s, frac = divmod(ns, 1_000_000_000)
    d = date.fromordinal(_EPOCH_ORDINAL + s // 86400)
    s %= 86400
    text = f"{d.isoformat()}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


class _Importer:
    def __init__(self, path: Path, root: Path, instruments, venue, venues, max_reasons,
                 progress, progress_every) -> None:
        self.res = ImportResult(path=path, root=root)
        self.table = _instruments(instruments)
        if not self.table:
            raise CsvFormatError("no instruments: give each symbol's tick (--tick SYMBOL=TICK "
                                 "or a profile's [[instruments]])")
        self.sym = {s: (i, t) for i, (s, t) in enumerate(self.table)}
        self.default_venue = venue
        self.venue_names: list[str] = list(venues)
        self.venue_index = {v: i for i, v in enumerate(self.venue_names)}
        self.writers: dict[int, TickWriter] = {}
        self.max_reasons = max_reasons
        self.progress = progress
        self.progress_every = max(1, progress_every)
        self.days: dict[str, int] = {}
        self.last: dict[tuple[int, int], int] = {}
        self.fresh: set[tuple[int, int]] = set()  # (venue, day)s whose last time is the store's
        self._clear_cols()

    def _clear_cols(self) -> None:
        self.c_kind: list[int] = []
        self.c_side: list[int] = []
        self.c_action: list[int] = []
        self.c_level: list[int] = []
        self.c_flags: list[int] = []
        self.c_inst: list[int] = []
        self.c_ts: list[int] = []
        self.c_price: list[int] = []
        self.c_size: list[int] = []
        self.c_venue: list[int] = []

    # -- ROWS --

    def run(self, f) -> ImportResult:
        res = self.res
        t0 = time.perf_counter()
        reader = csv.reader(f)
        header = None
        for row in reader:
            if row and not (len(row) == 1 and not row[0].strip()) and not row[0].startswith("#"):
                header = row
                break
        if header is None:
            raise CsvFormatError(f"{res.path}: no header row (the file is empty)")
        cols = self._columns(header)
        ncols = len(header)
        c = cols.get
        i_time, i_sym, i_type, i_side, i_price, i_size = (cols[k] for k in REQUIRED)
        i_level, i_venue, i_action = c("level"), c("venue"), c("action")
        bbo = i_action is None
        chunk = min(_CHUNK_ROWS, self.progress_every)
        next_flush = chunk
        next_progress = self.progress_every
        while True:
            try:
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
                        continue
                    res.rows_read += 1
                    try:
                        if len(row) != ncols:
                            raise _Bad(f"{len(row)} fields, the header has {ncols}")
                        self._row(row, i_time, i_sym, i_type, i_side, i_price, i_size, i_level,
                                  i_venue, i_action, bbo)
                        res.rows_imported += 1
                    except _Bad as e:
                        self._reject(reader.line_num, str(e))
                    except Exception as e:  # never let one row stop the import
                        self._reject(reader.line_num, f"cannot be read: {type(e).__name__}: {e}")
                    if res.rows_read >= next_flush:
                        next_flush = res.rows_read + chunk
                        self._write_chunk()
                        if res.rows_read >= next_progress:
                            next_progress += self.progress_every
                            if self.progress:
                                self.progress(res, time.perf_counter() - t0)
                break
            except csv.Error as e:  # the reader itself choked on a line (a NUL, a huge field)
                res.rows_read += 1
                self._reject(reader.line_num, f"not CSV: {e}")
        self._write_chunk()
        for w in self.writers.values():
            w.close()
            res.files.extend(p for p in w.files if p not in res.files)
            res.notes.extend(w.notes)
        res.seconds = time.perf_counter() - t0
        return res

    def _columns(self, header: list[str]) -> dict[str, int]:
        cols: dict[str, int] = {}
        for i, name in enumerate(header):
            key = name.strip().lower()
            if key not in COLUMNS:
                raise CsvFormatError(f"{self.res.path}: header: unknown column {name.strip()!r} "
                                     f"(columns: {', '.join(COLUMNS)})")
            if key in cols:
                raise CsvFormatError(f"{self.res.path}: header: column {key!r} is there twice")
            cols[key] = i
        missing = [k for k in REQUIRED if k not in cols]
        if missing:
            raise CsvFormatError(f"{self.res.path}: header: no {', '.join(map(repr, missing))} "
                                 f"column (required: {', '.join(REQUIRED)})")
        if "venue" not in cols and not self.default_venue:
            raise CsvFormatError(f"{self.res.path}: no venue column: give the venue (--venue NAME)")
        return cols

    def _row(self, row, i_time, i_sym, i_type, i_side, i_price, i_size, i_level, i_venue,
             i_action, bbo) -> None:
        ts = self._time(row[i_time].strip())
        symbol = row[i_sym].strip()
        got = self.sym.get(symbol)
        if got is None:
            raise _Bad(f"unknown symbol {symbol!r}")
        inst, tick = got
        typ = row[i_type].strip().lower()
        vname = row[i_venue].strip() if i_venue is not None else ""
        v = self.venue_index.get(vname or self.default_venue)
        if v is None:
            v = self._venue(vname or self.default_venue)
        if typ == "quote":
            text = row[i_side].strip()
            side = _QUOTE_SIDES.get(text.lower())
            if side is None:
                raise _Bad(f"a quote's side must be bid or ask, was {text!r}")
            level = 0
            if i_level is not None and row[i_level].strip():
                level = _int(row[i_level], "level")
                if not 0 <= level <= 254:
                    raise _Bad(f"level {level} is not 0-254")
            if bbo:
                if level:
                    raise _Bad(f"level {level}: without an action column quotes are top of "
                               f"book (level 0)")
                action = NEW
            else:
                text = row[i_action].strip()
                action = _ACTIONS.get(text.lower())
                if action is None:
                    raise _Bad(f"action {text!r} is not new, change, delete or clear")
            empty_ok = action in (DELETE, CLEAR)
            price = self._price(row[i_price], symbol, tick, empty_ok)
            size = self._size(row[i_size], empty_ok)
            if action == DELETE:
                size = 0
            self._in_order(v, ts)
            if bbo:
                self._add(QUOTE, side, CLEAR, 0, F_SNAPSHOT | (0 if size else F_LAST), inst, ts, 0, 0, v)
                if size:
                    self._add(QUOTE, side, NEW, 0, F_SNAPSHOT | F_LAST, inst, ts, price, size, v)
            else:
                self._add(QUOTE, side, action, level, F_LAST, inst, ts, price, size, v)
        elif typ == "trade":
            text = row[i_side].strip()
            side = _TRADE_SIDES.get(text.lower())
            if side is None:
                raise _Bad(f"a trade's side must be buy, sell or empty, was {text!r}")
            price = self._price(row[i_price], symbol, tick, False)
            size = self._size(row[i_size], False)
            if size == 0:
                raise _Bad("a trade's size must be positive, was 0")
            self._in_order(v, ts)
            self._add(TRADE, side, 0, 0, F_LAST, inst, ts, price, size, v)
        else:
            raise _Bad(f"type {row[i_type].strip()!r} is not quote or trade")

    def _add(self, kind, side, action, level, flags, inst, ts, price, size, v) -> None:
        self.c_kind.append(kind)
        self.c_side.append(side)
        self.c_action.append(action)
        self.c_level.append(level)
        self.c_flags.append(flags)
        self.c_inst.append(inst)
        self.c_ts.append(ts)
        self.c_price.append(price)
        self.c_size.append(size)
        self.c_venue.append(v)

    def _time(self, text: str) -> int:
        if text.isdigit():
            ns = int(text)
            if ns < _MIN_EPOCH_NS:
                raise _Bad(f"time {text} is in 1970: epoch times are in nanoseconds "
                           f"(were these seconds or milliseconds?)")
            if ns >= 1 << 63:
                raise _Bad(f"time {text} is too far in the future")
            return ns
        m = _ISO.fullmatch(text)
        if m is None:
            raise _Bad(f"time {text!r} is not ISO-8601 (2026-11-23T14:30:00.5Z) or epoch nanoseconds")
        y, mo, d, hh, mm, ss, frac, tz = m.groups()
        day = self.days.get(text[:10])
        if day is None:
            try:
                day = date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORDINAL
            except ValueError:
                raise _Bad(f"time {text!r}: {text[:10]} is not a date") from None
            self.days[text[:10]] = day
        h, mi, s = int(hh), int(mm), int(ss)
        if h > 23 or mi > 59 or s > 59:
            raise _Bad(f"time {text!r}: {hh}:{mm}:{ss} is not a time of day")
        ns = (day * 86400 + h * 3600 + mi * 60 + s) * 1_000_000_000
        if frac:
            ns += int(frac.ljust(9, "0"))
        if tz and tz not in "Zz":
            sign = -1 if tz[0] == "-" else 1
            digits = tz[1:].replace(":", "")
            ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 1_000_000_000
        return ns

    def _price(self, text: str, symbol: str, tick: float, empty_ok: bool) -> int:
        text = text.strip()
        if not text and empty_ok:
            return 0
        try:
            p = float(text)
        except ValueError:
            raise _Bad(f"price {text!r} is not a number") from None
        if not math.isfinite(p):
            raise _Bad(f"price {text!r} is not a finite number")
        t = p / tick
        k = round(t)
        if abs(t - k) > max(1e-6, abs(k) * 1e-13):
            raise _Bad(f"price {text} is not on {symbol}'s tick {tick:g}")
        if abs(k) >= _MAX_TICKS:
            raise _Bad(f"price {text} is too large")
        return k

    def _size(self, text: str, empty_ok: bool) -> int:
        text = text.strip()
        if not text and empty_ok:
            return 0
        n = _int(text, "size")
        if n < 0:
            raise _Bad(f"size {text} is negative")
        if n >= _MAX_TICKS:
            raise _Bad(f"size {text} is too large")
        return n

    def _venue(self, name: str) -> int:
        if not _VENUE_RE.match(name):
            raise _Bad(f"venue {name!r} is not 1-23 letters, digits, '-' or '_'")
        if len(self.venue_names) >= 255:
            raise _Bad(f"venue {name!r}: at most 255 venues in one import")
        self.venue_index[name] = len(self.venue_names)
        self.venue_names.append(name)
        return self.venue_index[name]

    def _in_order(self, v: int, ts: int) -> None:
        key = (v, ts // NS_PER_DAY)
        last = self.last.get(key)
        if last is None:
            last = self._writer(v).last_recv_ns(day_of(ts))
            if last is None:
                last = -(1 << 63)
            else:
                self.fresh.add(key)
        if ts < last:
            name = self.venue_names[v]
            if key in self.fresh:
                raise _Bad(f"time {_iso(ts)} is before the last {name} tick already stored for "
                           f"{day_of(ts)} ({_iso(last)}): the store is append-only")
            raise _Bad(f"time {_iso(ts)} is before {name}'s previous row ({_iso(last)}): "
                       f"a venue's rows must be in time order")
        self.last[key] = ts
        if self.fresh:
            self.fresh.discard(key)

    def _writer(self, v: int) -> TickWriter:
        w = self.writers.get(v)
        if w is None:
            w = self.writers[v] = TickWriter(self.res.root, self.venue_names[v], self.table)
        return w

    def _reject(self, line: int, reason: str) -> None:
        self.res.rows_rejected += 1
        if len(self.res.reasons) < self.max_reasons:
            self.res.reasons.append(f"row {line}: {reason}")

    # -- CHUNKS --

    def _write_chunk(self) -> None:
        n = len(self.c_ts)
        if not n:
            return
        rec = np.zeros(n, dtype=MD_EVENT)
        rec["kind"] = self.c_kind
        rec["side"] = self.c_side
        rec["action"] = self.c_action
        rec["level"] = self.c_level
        rec["flags"] = self.c_flags
        rec["instrument"] = self.c_inst
        ts = np.array(self.c_ts, dtype=np.int64)
        rec["recv_ns"] = ts
        rec["exch_ns"] = ts
        rec["price"] = self.c_price
        rec["size"] = self.c_size
        venue = np.array(self.c_venue, dtype=np.uint8)
        rec["venue"] = venue
        self._clear_cols()
        single = venue.min() == venue.max()
        for v in np.unique(venue):
            part = rec if single else rec[venue == v]
            self._writer(int(v)).append(part)
            days, counts = np.unique(part["recv_ns"] // NS_PER_DAY, return_counts=True)
            for d, k in zip(days.tolist(), counts.tolist()):
                key = (self.venue_names[int(v)], day_of(d * NS_PER_DAY))
                self.res.counts[key] = self.res.counts.get(key, 0) + k
            self.res.records_written += len(part)


def _int(text: str, what: str) -> int:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        raise _Bad(f"{what} {text!r} is not a number") from None
    if not math.isfinite(f) or f != int(f):
        raise _Bad(f"{what} {text!r} is not a whole number")
    return int(f)


def import_csv(
    path: str | os.PathLike,
    root: str | os.PathLike,
    instruments: Iterable,
    *,
    venue: str | None = None,
    venues: Sequence[str] = (),
    max_reasons: int = 20,
    progress: Callable[[ImportResult, float], None] | None = None,
    progress_every: int = 1_000_000,
) -> ImportResult:
    """Import one CSV file (the format is in the module docstring) into the store at ``root``.

    ``instruments``: ``(symbol, tick)`` pairs or objects with ``.symbol``/``.tick``: the
    symbols rows may name and the instrument table the files get. ``venue``: for rows without
    a venue. ``venues``: the engine's venue table (index order). ``progress(result, seconds)``
    is called every ``progress_every`` rows. Bad rows are counted in the result, never raised;
    ``CsvFormatError`` for a file that cannot be imported at all, ``OSError`` if it cannot be
    read or the store cannot be written.
    """
    p = Path(path)
    if venue is not None and not _VENUE_RE.match(venue):
        raise CsvFormatError(f"venue {venue!r} is not 1-23 letters, digits, '-' or '_'")
    imp = _Importer(p, Path(root), instruments, venue, venues, max_reasons, progress, progress_every)
    # utf-8-sig: a spreadsheet's byte order mark is not part of the first column's name;
    # errors="replace": a bad byte makes its row's field wrong (rejected), not the import fail
    with open(p, newline="", encoding="utf-8-sig", errors="replace") as f:
        return imp.run(f)

