"""The one internal representation of market data: every feed handler writes these records.

One numpy structured dtype, ``MD_EVENT`` (64 bytes), for depth updates, trades and status
events, told apart by ``kind``. Feed handlers fill preallocated arrays of it (``EventBuffer``);
the books, the tick store, replay and the strategies read nothing else, so nothing downstream
ever sees a venue's own format.

Fields::

    kind        u1   QUOTE (a depth level changed), TRADE, STATUS
    venue       u1   index of the venue in the engine's venue table (profile order)
    side        u1   QUOTE: BID / ASK; TRADE: the aggressor, BUY / SELL / 0 unknown
    action      u1   QUOTE: NEW / CHANGE / DELETE (FIX MDUpdateAction 279), CLEAR (empty this
                     side of the book: the start of a snapshot); STATUS: a STATUS_* code
    level       u1   QUOTE: 0-based depth level (FIX MDPriceLevel 1023 minus one)
    flags       u1   F_SNAPSHOT (part of a full refresh), F_LAST (last record of a venue message)
    channel     u2   the venue's feed channel (sequence numbers are per venue and channel)
    instrument  u4   index in the engine's instrument table
    seq         u8   the venue's sequence number (FIX RptSeq 83); 0: none
    exch_ns     i8   the venue's time (UTC ns; FIX SendingTime/MDEntryTime), 0 if unknown
    recv_ns     i8   our receive time (the engine's wall clock, ns)
    price       i8   integer ticks of the instrument (price / tick)
    size        i8   whole units (DELETE: 0)
    aux         i8   TRADE: the venue's trade id if numeric, else 0; STATUS: detail

Prices are integer ticks so books compare and add exactly; ``to_ticks`` / ``from_ticks`` convert
at the edges with the instrument's tick.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MD_EVENT",
    "MD_EVENT_VERSION",
    "QUOTE",
    "TRADE",
    "STATUS",
    "BID",
    "ASK",
    "BUY",
    "SELL",
    "NEW",
    "CHANGE",
    "DELETE",
    "CLEAR",
    "STATUS_OK",
    "STATUS_STALE",
    "STATUS_HALTED",
    "STATUS_GAP",
    "F_SNAPSHOT",
    "F_LAST",
    "EventBuffer",
    "to_ticks",
    "from_ticks",
]

#: bumped whenever MD_EVENT changes: the tick store refuses files of another version
MD_EVENT_VERSION = 1

MD_EVENT = np.dtype(
    [
        ("kind", "u1"),
        ("venue", "u1"),
        ("side", "u1"),
        ("action", "u1"),
        ("level", "u1"),
        ("flags", "u1"),
        ("channel", "<u2"),
        ("instrument", "<u4"),
        ("pad", "<u4"),
        ("seq", "<u8"),
        ("exch_ns", "<i8"),
        ("recv_ns", "<i8"),
        ("price", "<i8"),
        ("size", "<i8"),
        ("aux", "<i8"),
    ]
)
assert MD_EVENT.itemsize == 64

# kind
QUOTE, TRADE, STATUS = 1, 2, 3
# side
BID, ASK = 0, 1  # QUOTE
BUY, SELL = 1, 2  # TRADE aggressor (0: unknown)
# action (QUOTE)
NEW, CHANGE, DELETE, CLEAR = 0, 1, 2, 3
# action (STATUS)
STATUS_OK, STATUS_STALE, STATUS_HALTED, STATUS_GAP = 0, 1, 2, 3
# flags
F_SNAPSHOT = 1
F_LAST = 2


class EventBuffer:
    """A preallocated batch of MD_EVENT records that a feed handler fills and hands on.

    ``rec`` is the whole array; ``n`` how many are filled. ``clear()`` starts again without
    allocating; ``full`` tells the handler to hand the batch on first.
    """

    __slots__ = ("rec", "n", "capacity")

    def __init__(self, capacity: int = 4096) -> None:
        self.rec = np.zeros(capacity, dtype=MD_EVENT)
        self.n = 0
        self.capacity = capacity

    @property
    def full(self) -> bool:
        return self.n >= self.capacity

    def view(self) -> np.ndarray:
        """The filled part (a view: copy it to keep it past ``clear()``)."""
        return self.rec[: self.n]

    def clear(self) -> None:
        self.n = 0


def to_ticks(price: float, tick: float) -> int:
    """A price in integer ticks (rounded to the nearest tick)."""
    return int(round(price / tick))


def from_ticks(ticks: int, tick: float) -> float:
    return ticks * tick
