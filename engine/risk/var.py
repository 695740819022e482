"""Value at Risk for the desk and every strategy, computed off the hot path.

One marks history serves every book: ``positions`` is a (books × instruments) matrix whose rows
are the desk and each strategy, so one pass (one matrix product) gives them all.

Conventions
-----------
- **Returns** are simple: ``r[t, i] = m[t + 1, i] / m[t, i] - 1`` over a window of ``window``
  marks (``window - 1`` returns). A scenario is one mark interval's move of every instrument.
- **Positions** are signed quantities in the unit the mark prices (a futures contract's
  multiplier already applied by the caller). Notional = position × the newest mark.
- **Scenario P&L** of book ``b``: ``pnl[t, b] = Σ_i notional[b, i] · r[t, i]``.
- **Historical VaR** at level ``c``: ``-quantile(pnl[:, b], 1 - c)``, numpy's default (linear)
  interpolation between scenarios. It keeps the window's mean, so it may be negative when even
  the worst scenarios made money; it is reported as is, never clipped.
- **Parametric VaR** (normal, zero mean): ``z_c · sqrt(w' Σ w)`` with ``w`` the book's notionals,
  ``Σ`` the returns' sample covariance (ddof 1) and ``z_c`` the normal quantile (1.6449 at 95 %,
  2.3263 at 99 %). Computed without forming ``Σ``: ``w' Σ w`` is the sample variance of the
  book's scenario P&L, because ``R_c w = R w - mean(R) w`` (``R_c`` the centred returns). For
  500 instruments and 51 books that is one (249 × 500)·(500 × 51) product and a variance
  (0.3 ms) instead of a 500 × 500 covariance and ``w' Σ w`` per book (2.3 ms; bench/var.py).
- **Horizon**: one mark interval; with ``horizon_ms`` set, both figures are scaled by
  ``sqrt(horizon_ms / interval_ms)`` (square-root-of-time: it assumes independent returns).
- **Sign and unit**: a loss is a positive number, in the currency of the marks.
- Marks are taken as equally spaced: a gap (the engine stalled) is one scenario like any other.

Edge cases (per book, ``VarResult.status`` and ``VarResult.reason(book)``)
- fewer than ``min_marks`` marks (at least 3): NaN, ``FEW_MARKS``; never a number made up.
- an instrument with a zero, negative, NaN or infinite mark anywhere in the window is skipped
  for every book (``n_bad`` counts them; ``n_skipped[b]`` counts those book ``b`` holds); so is
  a NaN position. A book whose every holding is skipped gets NaN (``NO_MARKS``); one that keeps
  some holdings gets figures for those and ``n_skipped > 0``.
- a flat book (no position at all) has VaR 0 (``FLAT``), whatever the history.
- a method that is not configured gives NaN for its figures.

Profile keys (``[var]``; ``VarConfig.from_table``)::

    [var]
    window = 250          # marks in the window (window - 1 returns), 3..100000
    min_marks = 250       # marks needed before VaR is reported (default: window), 3..window
    interval_ms = 1000    # one mark per interval: mark() takes at most one per interval
    recompute_ms = 1000   # the helper recomputes at most this often (when something changed)
    horizon_ms = 1000     # the horizon VaR is quoted for (default: interval_ms)
    levels = [0.95, 0.99] # confidence levels, each in (0.5, 1)
    method = "both"       # "both", "historical" or "parametric"

Live: ``VarService`` (theory of operation)
------------------------------------------
The engine has one hot thread and CPython's GIL: a thread doing the VaR would hold the GIL for
milliseconds at a time (DESIGN.md). So a helper process computes, and the two share one memory
file (``memfd_create``: it has no name, so nothing is left in ``/dev/shm`` whatever dies, and
no resource tracker is involved)::

    0      HEADER (4096 B), u64 words, each group on its own cache line
           line 0  magic · version · n_instruments · n_books · window · n_levels
           line 1  in_seq (input seqlock) · mark_count · positions_version      engine writes
           line 2  helper state · helper pid · computes · torn reads             helper writes
           line 3  out_seq (output seqlock) · n_marks · ts_ns · compute_ns · n_bad · mark_count
           byte 1024: the helper's error text (UTF-8, NUL-padded, 1024 B)
    MARK_TS    window × i64        the ring of marks' timestamps  ┐ under in_seq,
    MARKS      window × n × f64    the ring of marks              │ slot = count % window
    POSITIONS  books × n × f64     the newest positions           ┘
    OUT        books × BOOK record (hist, param per level; n_skipped; status)  under out_seq

- ``mark(now_ns, marks, positions)`` (hot thread): one int compare when no mark is due; else
  in_seq odd, the marks into their ring slot (0.3 µs for 500), positions copied (5 µs for
  51 × 500; pass ``None`` when they did not change), count + 1, in_seq even. No system call,
  no allocation, never waits.
- The helper wakes every ``recompute_ms`` (a ``select`` on the stop pipe: it never spins). If
  the mark count or the positions changed, it copies window and positions (seqlock: retried if
  a mark landed meanwhile), computes, and publishes under out_seq.
- ``poll()`` (hot thread): one word compare when nothing is new; else a copy of the small
  result block (a torn copy is dropped and read at the next poll: it never loops). Every
  100 ms it also reaps the helper (``waitpid`` WNOHANG).
- **Helper death**: poll returns once a ``VarResult`` whose ``error`` says how it ended
  (exit code or signal, and its own error text); ``service.error`` keeps it. No restart.
- **Engine death**: the helper asked for SIGTERM at its parent's death (``PR_SET_PDEATHSIG``)
  and also sees EOF on the stop pipe (the kernel closes the engine's end): it exits.
- **CPUs**: the helper runs off the engine's pinned CPUs, with one BLAS thread (OpenBLAS's
  threads spin while they wait, and on 2 cores made a recompute 5 × slower: 5 ms, not 1 ms).
- **close()**: closes the stop pipe, waits (deadline), then SIGTERM, then SIGKILL.

``VarCalculator`` is the same interface in-process for backtests: it computes inside
``mark()`` when a recompute is due by the logic clock, so results are deterministic (only
``compute_ms`` is a measurement).

Errors: a bad ``[var]`` table raises ``ProfileError`` naming the key and the reason;
shapes that do not match the service's raise ``ValueError`` (a programming error).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from statistics import NormalDist
from typing import Any, Self

import numpy as np

from engine.core.cpus import off_engine_cpus
from engine.core.paths import module_command
from engine.core.profile import ProfileError

__all__ = [
    "BookStatus",
    "VarCalculator",
    "VarConfig",
    "VarResult",
    "VarService",
    "compute_var",
    "historical_var",
    "parametric_var",
    "z_score",
]

METHODS = ("both", "historical", "parametric")
MIN_MARKS = 3  # two returns: the least a sample variance needs


class BookStatus(IntEnum):
    """Why a book's figures are what they are."""

    #: figures computed (some holdings may still have been skipped: see ``n_skipped``)
    OK = 0
    #: fewer marks than ``min_marks``: NaN
    FEW_MARKS = 1
    #: the book holds nothing: VaR 0
    FLAT = 2
    #: every instrument the book holds has a zero or NaN mark in the window: NaN
    NO_MARKS = 3


def z_score(level: float) -> float:
    """The standard normal quantile at ``level`` (1.6449 at 0.95, 2.3263 at 0.99)."""
    return NormalDist().inv_cdf(level)


# -- config ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class VarConfig:
    """The ``[var]`` table (the keys are in the module docstring)."""

    window: int = 250
    min_marks: int | None = None  # None: window
    interval_ms: int = 1000
    recompute_ms: int = 1000
    horizon_ms: int | None = None  # None: interval_ms
    levels: tuple[float, ...] = (0.95, 0.99)
    method: str = "both"

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None, *, where: str = "[var]") -> VarConfig:
        """Build from a plain dict (the profile's ``[var]`` table); unknown keys are refused.

        Errors are ``ProfileError("<where>.<key>: <reason>")``; pass ``where`` with the
        file's name in it (``"desk.toml: [var]"``) to have it in the message.
        """
        table = {} if table is None else table
        if not isinstance(table, Mapping):
            raise ProfileError(f"{where}: must be a table, was {type(table).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        for key in table:
            if key not in known:
                raise ProfileError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {}
        for key in ("window", "min_marks", "interval_ms", "recompute_ms", "horizon_ms"):
            if key in table:
                v = table[key]
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ProfileError(f"{where}.{key}: must be an integer, was {v!r}")
                kw[key] = v
        if "levels" in table:
            v = table["levels"]
            if (not isinstance(v, (list, tuple)) or not v
                    or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v)):
                raise ProfileError(f"{where}.levels: must be a list of numbers such as "
                                   f"[0.95, 0.99], was {v!r}")
            kw["levels"] = tuple(float(x) for x in v)
        if "method" in table:
            kw["method"] = table["method"]
        try:
            return cls(**kw)
        except ValueError as e:
            raise ProfileError(f"{where}.{e}") from None

    def to_table(self) -> dict[str, Any]:
        """The inverse of ``from_table`` (how the helper process receives its config)."""
        table = {"window": self.window, "min_marks": self.min_marks,
                 "interval_ms": self.interval_ms, "recompute_ms": self.recompute_ms,
                 "horizon_ms": self.horizon_ms, "levels": list(self.levels),
                 "method": self.method}
        return {k: v for k, v in table.items() if v is not None}

    def check(self) -> None:
        """ValueError("<key>: <reason>") for the first bad value."""

        def bad(key: str, reason: str) -> None:
            raise ValueError(f"{key}: {reason}, was {getattr(self, key)!r}")

        if not MIN_MARKS <= self.window <= 100_000:
            bad("window", f"must be between {MIN_MARKS} and 100000 marks")
        if self.min_marks is not None and not MIN_MARKS <= self.min_marks <= self.window:
            bad("min_marks", f"must be between {MIN_MARKS} and window ({self.window})")
        if not 1 <= self.interval_ms <= 86_400_000:
            bad("interval_ms", "must be between 1 and 86400000 ms")
        if not 1 <= self.recompute_ms <= 86_400_000:
            bad("recompute_ms", "must be between 1 and 86400000 ms")
        if self.horizon_ms is not None and not 1 <= self.horizon_ms <= 366 * 86_400_000:
            bad("horizon_ms", "must be between 1 ms and a year")
        if (not self.levels or len(self.levels) > 8
                or any(not (0.5 < x < 1.0) for x in self.levels)):  # NaN fails too
            bad("levels", "must be 1 to 8 confidence levels, each between 0.5 and 1 (exclusive)")
        if len(set(self.levels)) != len(self.levels):
            bad("levels", "must not repeat a level")
        if self.method not in METHODS:
            bad("method", f"must be one of {', '.join(METHODS)}")

    @property
    def needed(self) -> int:
        """Marks needed before VaR is reported."""
        return self.window if self.min_marks is None else self.min_marks

    @property
    def scale(self) -> float:
        """Horizon scaling of both figures: sqrt(horizon / interval)."""
        h = self.interval_ms if self.horizon_ms is None else self.horizon_ms
        return math.sqrt(h / self.interval_ms)


# -- the figures (pure numpy) ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class VarResult:
    """VaR of every book at every level; a loss is positive, in currency. NaN: not available.

    ``hist`` and ``param`` are (books × levels); row 0 is whatever the caller put first in
    ``positions`` (the desk, by the engine's convention).
    """

    levels: tuple[float, ...]
    hist: np.ndarray  #: (books, levels) historical VaR
    param: np.ndarray  #: (books, levels) parametric VaR
    status: np.ndarray  #: (books,) uint8 BookStatus
    n_skipped: np.ndarray  #: (books,) held instruments skipped for a bad mark or position
    n_bad: int  #: instruments with a zero, negative or non-finite mark in the window
    n_marks: int  #: marks in the window used
    min_marks: int  #: marks needed
    ts_ns: int = 0  #: the newest mark used (the caller's clock)
    compute_ms: float = math.nan  #: copy + compute time (a measurement, not deterministic)
    error: str | None = None  #: the helper failed: every figure is NaN

    def _level(self, level: float) -> int:
        for k, x in enumerate(self.levels):
            if abs(x - level) < 1e-12:
                return k
        raise KeyError(f"VaR level {level} is not configured (levels {list(self.levels)})")

    def var(self, level: float, method: str = "historical") -> np.ndarray:
        """The (books,) figures at ``level`` by ``method`` ("historical" or "parametric")."""
        table = {"historical": self.hist, "parametric": self.param}[method]
        return table[:, self._level(level)]

    @property
    def var95_hist(self) -> np.ndarray:
        return self.hist[:, self._level(0.95)]

    @property
    def var99_hist(self) -> np.ndarray:
        return self.hist[:, self._level(0.99)]

    @property
    def var95_param(self) -> np.ndarray:
        return self.param[:, self._level(0.95)]

    @property
    def var99_param(self) -> np.ndarray:
        return self.param[:, self._level(0.99)]

    def reason(self, book: int) -> str | None:
        """Why book ``book``'s figures are NaN, or what was left out; None when clean."""
        if self.error is not None:
            return self.error
        st = int(self.status[book])
        skipped = int(self.n_skipped[book])
        if st == BookStatus.FEW_MARKS:
            return f"only {self.n_marks} marks of the {self.min_marks} needed"
        if st == BookStatus.NO_MARKS:
            return (f"every instrument held ({skipped}) has a zero or NaN mark in the window "
                    "(or a NaN position)")
        if skipped:
            return f"{skipped} held instrument(s) left out: a zero or NaN mark or position"
        return None

    @classmethod
    def failed(cls, error: str, n_books: int, levels: tuple[float, ...],
               min_marks: int) -> VarResult:
        nan = np.full((n_books, len(levels)), np.nan)
        return cls(levels=levels, hist=nan, param=nan.copy(),
                   status=np.zeros(n_books, np.uint8), n_skipped=np.zeros(n_books, np.int32),
                   n_bad=0, n_marks=0, min_marks=min_marks, error=error)


def compute_var(marks: np.ndarray, positions: np.ndarray,
                levels: tuple[float, ...] = (0.95, 0.99), *, method: str = "both",
                min_marks: int = MIN_MARKS, scale: float = 1.0, ts_ns: int = 0) -> VarResult:
    """Historical and parametric VaR of every book (see the module docstring's conventions).

    ``marks``: (marks × instruments), oldest first; ``positions``: (books × instruments), or
    one book as a 1-D array.
    """
    marks = np.asarray(marks, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim == 1:
        positions = positions[None, :]
    if marks.ndim != 2 or positions.ndim != 2 or marks.shape[1] != positions.shape[1]:
        raise ValueError(f"marks must be (marks × instruments) and positions (books × "
                         f"instruments) with the same instruments, were {marks.shape} and "
                         f"{positions.shape}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, was {method!r}")
    n_marks = marks.shape[0]
    n_books, n_levels = positions.shape[0], len(levels)
    hist = np.full((n_books, n_levels), np.nan)
    param = np.full((n_books, n_levels), np.nan)
    status = np.zeros(n_books, np.uint8)

    held = positions != 0  # a NaN position counts as held (and is then skipped)
    with np.errstate(invalid="ignore"):
        good = (marks > 0).all(axis=0) & np.isfinite(marks).all(axis=0)  # +inf > 0
    usable = good & np.isfinite(positions)
    skipped = held & ~usable
    n_skipped = skipped.sum(axis=1).astype(np.int32)
    n_bad = int(marks.shape[1] - np.count_nonzero(good))

    if n_marks >= max(min_marks, MIN_MARKS):
        if n_bad:
            keep = np.flatnonzero(good)
            m = marks[:, keep]
            w = np.where(usable[:, keep], positions[:, keep], 0.0)
        else:
            m = marks
            w = np.where(usable, positions, 0.0)
        returns = m[1:] / m[:-1]
        returns -= 1.0
        notional = w * m[-1]
        pnl = returns @ notional.T  # (scenarios, books): the one heavy step
        q = np.asarray(levels, dtype=np.float64)
        if method != "parametric":
            hist[:] = -np.quantile(pnl, 1.0 - q, axis=0).T * scale
        if method != "historical":
            sd = pnl.std(axis=0, ddof=1)
            z = np.array([z_score(x) for x in q])
            param[:] = sd[:, None] * z[None, :] * scale
        lost = held.any(axis=1) & ~(held & usable).any(axis=1)
        status[lost] = BookStatus.NO_MARKS
        hist[lost] = np.nan
        param[lost] = np.nan
    else:
        status[:] = BookStatus.FEW_MARKS
    flat = ~held.any(axis=1)
    status[flat] = BookStatus.FLAT
    if method != "parametric":
        hist[flat] = 0.0
    if method != "historical":
        param[flat] = 0.0
    return VarResult(levels=tuple(levels), hist=hist, param=param, status=status,
                     n_skipped=n_skipped, n_bad=n_bad, n_marks=n_marks,
                     min_marks=max(min_marks, MIN_MARKS), ts_ns=ts_ns)


def historical_var(marks: np.ndarray, positions: np.ndarray,
                   levels: tuple[float, ...] = (0.95, 0.99)) -> np.ndarray:
    """(books × levels) historical VaR; NaN where not available (``compute_var`` says why)."""
    return compute_var(marks, positions, levels, method="historical").hist


def parametric_var(marks: np.ndarray, positions: np.ndarray,
                   levels: tuple[float, ...] = (0.95, 0.99)) -> np.ndarray:
    """(books × levels) parametric (normal) VaR; NaN where not available."""
    return compute_var(marks, positions, levels, method="parametric").param


def _compute(config: VarConfig, marks: np.ndarray, positions: np.ndarray,
             ts_ns: int) -> VarResult:
    return compute_var(marks, positions, config.levels, method=config.method,
                       min_marks=config.needed, scale=config.scale, ts_ns=ts_ns)


# -- the mark clock --------------------------------------------------------------------------------
class _Due:
    """At most one mark per interval, on a grid (a late mark does not shift the next one,
    unless it was more than an interval late)."""

    __slots__ = ("due_ns", "interval_ns")

    def __init__(self, interval_ms: int) -> None:
        self.interval_ns = interval_ms * 1_000_000
        self.due_ns = 0

    def take(self, now_ns: int) -> None:
        due = self.due_ns + self.interval_ns
        self.due_ns = due if due > now_ns else now_ns + self.interval_ns


def _chronological(ts: np.ndarray, ring: np.ndarray, count: int) -> tuple[np.ndarray, int]:
    """The ring's marks oldest first (a copy) and the newest mark's timestamp."""
    window = ring.shape[0]
    if count <= window:
        return ring[:count].copy(), int(ts[count - 1]) if count else 0
    k = count % window
    return np.concatenate((ring[k:], ring[:k])), int(ts[(count - 1) % window])


# -- backtests: in process -------------------------------------------------------------------------
class VarCalculator:
    """``VarService``'s interface in process, for backtests: deterministic, no helper.

    ``mark()`` computes when a recompute is due by ``now_ns`` (the logic clock) and something
    changed; ``poll()`` hands the newest result over once.
    """

    def __init__(self, config: VarConfig, n_instruments: int, n_books: int) -> None:
        self.config = config
        self.n_instruments = n_instruments
        self.n_books = n_books
        self._ts = np.zeros(config.window, np.int64)
        self._ring = np.zeros((config.window, n_instruments))
        self._positions = np.zeros((n_books, n_instruments))
        self._count = 0
        self._due = _Due(config.interval_ms)
        self._recompute_ns = config.recompute_ms * 1_000_000
        self._next_compute_ns = 0
        self._result: VarResult | None = None
        self.error: str | None = None
        self.computes = 0

    @property
    def due_ns(self) -> int:
        """When ``mark()`` next takes a mark."""
        return self._due.due_ns

    @property
    def alive(self) -> bool:
        return True

    def mark(self, now_ns: int, marks: np.ndarray, positions: np.ndarray | None = None) -> bool:
        """Take a mark if one is due (True), else do nothing (False); see ``VarService.mark``."""
        if now_ns < self._due.due_ns:
            return False
        if positions is not None:  # first, as VarService.mark does
            self._positions[:] = positions
        slot = self._count % self.config.window
        self._ring[slot] = marks
        self._ts[slot] = now_ns
        self._count += 1
        self._due.take(now_ns)
        if now_ns >= self._next_compute_ns:
            self._next_compute_ns = now_ns + self._recompute_ns
            t0 = time.perf_counter_ns()
            window, ts_ns = _chronological(self._ts, self._ring, self._count)
            r = _compute(self.config, window, self._positions, ts_ns)
            self._result = replace(r, compute_ms=(time.perf_counter_ns() - t0) / 1e6)
            self.computes += 1
        return True

    def poll(self) -> VarResult | None:
        """The newest result not yet returned, or None."""
        r, self._result = self._result, None
        return r

    def close(self, timeout: float = 0.0) -> int | None:
        return 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- live: the helper process and its memory -------------------------------------------------------
_MAGIC = 0x48444B5641523031  # "HDKVAR01"
_VERSION = 1
_HEADER = 4096
# header words (u64 index); each group on its own 64-byte line
_W_MAGIC, _W_VERSION, _W_N, _W_BOOKS, _W_WINDOW, _W_LEVELS = 0, 1, 2, 3, 4, 5
_W_IN_SEQ, _W_COUNT, _W_POS_VERSION = 8, 9, 10  # engine writes
_W_STATE, _W_PID, _W_COMPUTES, _W_TORN = 16, 17, 18, 19  # helper writes
_W_OUT_SEQ, _W_OUT_MARKS, _W_OUT_TS, _W_OUT_COMPUTE_NS, _W_OUT_BAD, _W_OUT_COUNT = (
    24, 25, 26, 27, 28, 29)
_ERROR_OFF, _ERROR_LEN = 1024, 1024
_STARTING, _READY, _FAILED = 0, 1, 2
_CHECK_NS = 100_000_000  # poll() reaps the helper at most this often
_ROOT = str(Path(__file__).resolve().parents[2])


def _book_dtype(n_levels: int) -> np.dtype:
    return np.dtype([("hist", np.float64, (n_levels,)), ("param", np.float64, (n_levels,)),
                     ("n_skipped", np.int32), ("status", np.uint8)], align=True)


def _align(n: int) -> int:
    return (n + 63) // 64 * 64


@dataclass(frozen=True, slots=True)
class _Layout:
    n: int
    books: int
    window: int
    levels: int

    @property
    def ts_off(self) -> int:
        return _HEADER

    @property
    def marks_off(self) -> int:
        return _align(self.ts_off + 8 * self.window)

    @property
    def pos_off(self) -> int:
        return _align(self.marks_off + 8 * self.window * self.n)

    @property
    def out_off(self) -> int:
        return _align(self.pos_off + 8 * self.books * self.n)

    @property
    def size(self) -> int:
        return _align(self.out_off + _book_dtype(self.levels).itemsize * self.books)


class _Mapping:
    """The numpy views of one VaR memory file (either side)."""

    def __init__(self, fd: int, layout: _Layout) -> None:
        self.layout = lo = layout
        self.mm = mmap.mmap(fd, lo.size)
        buf = memoryview(self.mm)
        self.buf = buf
        self.q = buf[:_HEADER].cast("q")
        self.ts = np.frombuffer(buf, np.int64, lo.window, lo.ts_off)
        self.ring = np.frombuffer(buf, np.float64, lo.window * lo.n, lo.marks_off)
        self.ring = self.ring.reshape(lo.window, lo.n)
        self.positions = np.frombuffer(buf, np.float64, lo.books * lo.n, lo.pos_off)
        self.positions = self.positions.reshape(lo.books, lo.n)
        self.out = np.frombuffer(buf, _book_dtype(lo.levels), lo.books, lo.out_off)

    def error_text(self) -> str:
        raw = bytes(self.buf[_ERROR_OFF:_ERROR_OFF + _ERROR_LEN])
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def set_error(self, text: str) -> None:
        raw = text.encode("utf-8", "replace")[:_ERROR_LEN - 1]
        self.buf[_ERROR_OFF:_ERROR_OFF + _ERROR_LEN] = raw.ljust(_ERROR_LEN, b"\0")

    def close(self) -> None:
        self.ts = self.ring = self.positions = self.out = None  # numpy views pin the mmap
        self.q.release()
        self.buf.release()
        try:
            self.mm.close()
        except BufferError:  # a caller still holds a view: the GC unmaps it later
            pass


class VarService:
    """VaR computed by a helper process; the hot thread only marks and polls (see the module
    docstring). Use as a context manager, or call ``close()``."""

    def __init__(self, config: VarConfig, n_instruments: int, n_books: int) -> None:
        if n_instruments < 1 or n_books < 1:
            raise ValueError(f"VaR needs at least one instrument and one book, was "
                             f"{n_instruments} instruments and {n_books} books")
        self.config = config
        self.n_instruments = n_instruments
        self.n_books = n_books
        self.layout = _Layout(n_instruments, n_books, config.window, len(config.levels))
        self.error: str | None = None
        self._due = _Due(config.interval_ms)
        self._count = 0
        self._pos_version = 0
        self._wseq = 0  # in_seq as we last stored it: never read back
        self._seen_out = 0
        self._next_check_ns = 0
        self._proc: subprocess.Popen | None = None
        self._stop_w: int | None = None
        self._fd = os.memfd_create("helmdesk-var", os.MFD_CLOEXEC)
        self._map: _Mapping | None = None
        try:
            os.ftruncate(self._fd, self.layout.size)
            self._map = m = _Mapping(self._fd, self.layout)
            q = m.q
            q[_W_VERSION], q[_W_N], q[_W_BOOKS] = _VERSION, n_instruments, n_books
            q[_W_WINDOW], q[_W_LEVELS] = config.window, len(config.levels)
            q[_W_MAGIC] = _MAGIC  # last: a helper seeing it sees everything above
            self._q = q
            self._ts, self._ring, self._positions = m.ts, m.ring, m.positions
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        stop_r, self._stop_w = os.pipe()  # both close-on-exec: only pass_fds reach the helper
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_ROOT, env.get("PYTHONPATH"))))
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = "1"  # BLAS worker threads would spin on the engine's CPU
        cmd = module_command(
            "engine.risk.var_helper", "--fd", str(self._fd), "--stop-fd", str(stop_r),
            "--parent-pid", str(os.getpid()),
            "--layout", json.dumps([self.layout.n, self.layout.books, self.layout.window,
                                    self.layout.levels]),
            "--config", json.dumps(self.config.to_table()))
        try:
            self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                          pass_fds=(self._fd, stop_r), close_fds=True)
        finally:
            os.close(stop_r)
        off_engine_cpus(self._proc.pid)

    # -- the hot thread --------------------------------------------------------------------------
    @property
    def due_ns(self) -> int:
        """When ``mark()`` next takes a mark (the engine's loop may sleep until then)."""
        return self._due.due_ns

    def mark(self, now_ns: int, marks: np.ndarray, positions: np.ndarray | None = None) -> bool:
        """Take the marks (n_instruments,) and positions (n_books × n_instruments) if a mark
        is due at ``now_ns``: True if taken. ``positions=None``: unchanged since the last mark
        (saves their copy). Costs one compare when not due, a few µs when taken; never waits.
        """
        if now_ns < self._due.due_ns or self._map is None:
            return False
        q = self._q
        w = self._wseq + 1
        q[_W_IN_SEQ] = w  # odd: the helper will not trust what it copies now
        try:
            # positions first: a shape error (raised before numpy writes) then leaves the ring
            # as it was, never the oldest mark overwritten under an unchanged count
            if positions is not None:
                self._positions[:] = positions
                self._pos_version += 1
                q[_W_POS_VERSION] = self._pos_version
            slot = self._count % self.config.window
            self._ring[slot] = marks
            self._ts[slot] = now_ns
            self._count += 1
            q[_W_COUNT] = self._count
        finally:
            self._wseq = w + 1
            q[_W_IN_SEQ] = w + 1
        self._due.take(now_ns)
        return True

    def poll(self) -> VarResult | None:
        """The newest result not yet returned, or None; never waits. After the helper died,
        returns once a result whose ``error`` says how (``self.error`` keeps it)."""
        m = self._map
        if m is None:
            return None
        s = self._q[_W_OUT_SEQ]
        if s != self._seen_out and not s & 1:
            r = self._read_out(m, s)
            if r is not None:
                return r
        if self.error is None:
            now = time.monotonic_ns()
            if now >= self._next_check_ns:
                self._next_check_ns = now + _CHECK_NS
                return self._check_helper(m)
        return None

    def _read_out(self, m: _Mapping, s: int) -> VarResult | None:
        q = self._q
        n_marks, ts_ns, compute_ns, n_bad = (q[_W_OUT_MARKS], q[_W_OUT_TS],
                                             q[_W_OUT_COMPUTE_NS], q[_W_OUT_BAD])
        out = m.out.copy()
        if q[_W_OUT_SEQ] != s:
            return None  # torn: the next poll reads it again
        self._seen_out = s
        cfg = self.config
        return VarResult(levels=cfg.levels, hist=out["hist"].copy(), param=out["param"].copy(),
                         status=out["status"].copy(), n_skipped=out["n_skipped"].copy(),
                         n_bad=n_bad,
                         n_marks=n_marks, min_marks=cfg.needed, ts_ns=ts_ns,
                         compute_ms=compute_ns / 1e6)

    def _check_helper(self, m: _Mapping) -> VarResult | None:
        proc = self._proc
        rc = None if proc is None else proc.poll()
        if proc is not None and rc is None:
            return None
        why = m.error_text()
        if rc is None:
            how = "was never started"
        elif rc < 0:
            how = f"was killed by {signal.Signals(-rc).name}"
        else:
            how = f"exited with code {rc}"
        pid = "" if proc is None else f" (pid {proc.pid})"
        self.error = f"VaR helper{pid} {how}{': ' + why if why else ''}; VaR is not available"
        return VarResult.failed(self.error, self.n_books, self.config.levels, self.config.needed)

    # -- the rest --------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def ready(self) -> bool:
        """The helper has attached and is waiting for marks (not for the hot thread)."""
        return self._map is not None and self._q[_W_STATE] == _READY

    def wait_ready(self, timeout: float = 20.0) -> bool:
        """Block until the helper is ready (start-up, tests, bench); False if it died first or
        the time ran out."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            if not self.alive or time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> int | None:
        """Stop the helper (stop pipe, then SIGTERM, then SIGKILL) and unmap; its exit code."""
        if self._stop_w is not None:
            os.close(self._stop_w)  # EOF: the helper exits at once
            self._stop_w = None
        rc = None
        proc = self._proc
        if proc is not None:
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    rc = proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
        if self._map is not None:
            self._q = self._ts = self._ring = self._positions = None
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        return rc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the helper process ----------------------------------------------------------------------------
def _follow_parent(parent_pid: int) -> bool:
    """SIGTERM when our parent dies (Linux PR_SET_PDEATHSIG); False if it is already gone."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the stop pipe's EOF still tells us
        pass
    return os.getppid() == parent_pid


def _read_inputs(m: _Mapping, config: VarConfig,
                 tries: int = 1000) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """A consistent copy of (window oldest first, positions, newest ts, count), or None."""
    q = m.q
    for _ in range(tries):
        s1 = q[_W_IN_SEQ]
        if s1 & 1:
            q[_W_TORN] += 1
            time.sleep(0)
            continue
        count = q[_W_COUNT]
        window, ts_ns = _chronological(m.ts, m.ring, count)
        positions = m.positions.copy()
        if q[_W_IN_SEQ] == s1:
            return window, positions, ts_ns, count
        q[_W_TORN] += 1
    return None


def helper_main(argv: list[str]) -> int:
    """The helper process (started by ``VarService``, never by hand)."""
    import argparse

    p = argparse.ArgumentParser(prog="helmdesk-var-helper")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--stop-fd", type=int, required=True)
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--layout", required=True)
    p.add_argument("--config", required=True)
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the engine decides
    if not _follow_parent(args.parent_pid):
        return 3
    config = VarConfig.from_table(json.loads(args.config))
    m = _Mapping(args.fd, _Layout(*json.loads(args.layout)))
    q = m.q
    try:
        if q[_W_MAGIC] != _MAGIC or q[_W_VERSION] != _VERSION:
            m.set_error(f"memory file has magic {q[_W_MAGIC]:#x} version {q[_W_VERSION]}, "
                        f"expected {_MAGIC:#x} version {_VERSION}")
            q[_W_STATE] = _FAILED
            return 3
        q[_W_PID] = os.getpid()
        q[_W_STATE] = _READY
        return _helper_loop(m, config, args.stop_fd, args.parent_pid)
    except Exception as e:  # noqa: BLE001 - a broken invariant: say it in the file, then go
        import traceback

        m.set_error(f"{type(e).__name__}: {e} ({traceback.format_exc(limit=-1).strip()})")
        q[_W_STATE] = _FAILED
        return 4


def _helper_loop(m: _Mapping, config: VarConfig, stop_fd: int, parent_pid: int) -> int:
    q = m.q
    wait_s = config.recompute_ms / 1000.0
    seen = (0, 0)
    out_seq = 0
    out_raw = m.out.view(np.uint8)
    while True:
        ready, _, _ = select.select([stop_fd], [], [], wait_s)
        if ready or os.getppid() != parent_pid:
            return 0  # stop byte or EOF (the engine closed or died)
        now = (q[_W_COUNT], q[_W_POS_VERSION])
        if now == seen:
            continue
        t0 = time.perf_counter_ns()
        got = _read_inputs(m, config)
        if got is None:
            continue  # the engine kept writing: next time
        window, positions, ts_ns, count = got
        r = _compute(config, window, positions, ts_ns)
        books = np.empty(m.out.shape[0], m.out.dtype)
        books["hist"], books["param"] = r.hist, r.param
        books["n_skipped"], books["status"] = r.n_skipped, r.status
        compute_ns = time.perf_counter_ns() - t0
        out_seq += 1
        q[_W_OUT_SEQ] = out_seq  # odd
        q[_W_OUT_MARKS], q[_W_OUT_TS], q[_W_OUT_COMPUTE_NS] = r.n_marks, ts_ns, compute_ns
        q[_W_OUT_BAD], q[_W_OUT_COUNT] = r.n_bad, count
        out_raw[:] = books.view(np.uint8)
        out_seq += 1
        q[_W_OUT_SEQ] = out_seq  # even
        q[_W_COMPUTES] += 1
        seen = (count, now[1])
