"""Seqlock-guarded numpy snapshots (as Linux include/linux/seqlock.h).

A block is ``[seq u64 | pad to 64 B][n × dtype]``. The single writer makes ``seq`` odd, writes
the records in place, and makes it even again; it never waits. A reader reads ``seq``, copies
the records, reads ``seq`` again, and keeps the copy only if both reads were the same even
number. A writer that died half-way leaves ``seq`` odd for ever: readers give up after a bounded
number of retries instead of hanging.

The writer keeps its own copy of ``seq`` and only ever stores it: whatever another process
writes into the word is overwritten at the next publication, never read back and incremented.
"""

from __future__ import annotations

import numpy as np

from engine.ipc.layout import SEQLOCK_PREFIX

__all__ = ["SeqlockBlock", "block_size"]


def block_size(dtype: np.dtype, n: int) -> int:
    return SEQLOCK_PREFIX + (dtype.itemsize * n + 63) // 64 * 64


class SeqlockBlock:
    """One seqlock over ``n`` records of ``dtype`` at ``offset`` in ``buf``."""

    __slots__ = ("_seq", "_wseq", "view", "_raw", "n", "dtype", "torn_retries")

    def __init__(self, buf: memoryview, offset: int, dtype: np.dtype, n: int = 1) -> None:
        if offset % 64:
            raise ValueError(f"seqlock block offset {offset} is not cache-line aligned")
        self._seq = buf[offset : offset + 8].cast("Q")
        start = offset + SEQLOCK_PREFIX
        self.view = np.frombuffer(buf, dtype=dtype, count=n, offset=start)
        # byte views for copies: np.copyto on a padded structured dtype goes field by field
        # (~2.5 µs for a book); a byte copy of the same 384 bytes is a memcpy (~0.1 µs)
        self._raw = np.frombuffer(buf, dtype=np.uint8, count=n * dtype.itemsize, offset=start)
        self.n = n
        self.dtype = dtype
        self.torn_retries = 0  # reader side: how many copies were thrown away
        self._wseq = 0  # writer side: the last seq stored (the writer's block starts zeroed)

    # -- writer ------------------------------------------------------------------------------
    def begin(self) -> None:
        self._wseq = w = (self._wseq + 1) | 1
        self._seq[0] = w  # odd: write in progress

    def end(self) -> None:
        self._wseq = w = (self._wseq + 1) & ~1
        self._seq[0] = w  # even: consistent

    def write(self, records: np.ndarray) -> None:
        """Publish ``records`` (this block's dtype and length): one byte copy under the lock."""
        raw = records.view(np.uint8).reshape(-1)
        s = self._seq
        w = self._wseq
        s[0] = w + 1
        self._raw[:] = raw
        s[0] = self._wseq = w + 2

    @property
    def seq(self) -> int:
        return self._seq[0]

    # -- reader ------------------------------------------------------------------------------
    def read(self, out: np.ndarray | None = None, max_retries: int = 100_000) -> np.ndarray | None:
        """Copy a consistent snapshot into ``out`` (allocated if None); None if it never was."""
        if out is None:
            out = np.empty(self.n, dtype=self.dtype)
        s = self._seq
        raw = self._raw
        dst = out.view(np.uint8).reshape(-1)
        for _ in range(max_retries):
            s1 = s[0]
            if s1 & 1:
                self.torn_retries += 1
                continue
            dst[:] = raw
            if s[0] == s1:
                return out
            self.torn_retries += 1
        return None

    def read_seq(self) -> int:
        """The current sequence: unchanged since a read means nothing changed."""
        return self._seq[0]

    def release(self) -> None:
        self._seq.release()
        self.view = None
        self._raw = None
