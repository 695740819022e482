"""Records and codes every stage shares, and the node's publisher copies into shared memory.

The domain parts (feeds, books, execution, risk) keep their state in these numpy dtypes and
plain codes; ``engine.ipc.layout`` embeds the same dtypes in the segment, so the node publishes
them with one copy and no domain module ever imports the shared-memory layout.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = [
    "MAX_VENUES",
    "VENUE_DOWN",
    "VENUE_UP",
    "VENUE_BOOKS_OK",
    "Scope",
    "Notice",
    "KILL_ROW",
    "FEED_HEALTH",
]

#: Venues a BookSet, the feed-health table and the desk's venue list hold at most (a u2 mask).
MAX_VENUES = 16

# A venue session's state word (the desk shows it next to the order ticket).
VENUE_DOWN = 0
VENUE_UP = 1  #: bit 0: the session is logged on
VENUE_BOOKS_OK = 2  #: bit 1: every book it sends us is good (subscribed, no gap)


class Scope(enum.IntEnum):
    """What a kill switch or a command applies to."""

    GLOBAL = 0  #: the whole engine; scope_id must be 0
    INSTRUMENT = 1  #: one instrument; scope_id is its index in the engine's instrument table


class Notice(enum.IntEnum):
    """Kinds of what the engine tells its desks (the event ring's ``kind``)."""

    LOG = 1
    COMMAND = 2
    KILL = 3
    ALERT = 4
    ORDER = 5  #: an order changed


#: One kill switch: row 0 is the global switch, row 1 + i instrument i's.
KILL_ROW = np.dtype(
    [
        ("tripped", "u1"),
        ("scope", "u1"),  # Scope value
        ("pad0", "V2"),
        ("scope_id", "<i4"),
        ("ts_ns", "<i8"),  # wall clock of the last change
        ("user", "S16"),
        ("reason", "S32"),
    ]
)
assert KILL_ROW.itemsize == 64

#: Market data health of one venue, the one record for it: ``FeedIntegrity`` counts into it,
#: ``MarketData`` keeps one row per venue of its table, the desk's status bar reads it. Fixed-size
#: fields only, every 8-byte field 8-aligned; counters only go up.
FEED_HEALTH = np.dtype([
    ("venue", "S16"),            # the venue's name, ASCII, NUL-padded ("": an unused row)
    ("events", "<u8"),           # records kept
    ("snapshots", "<u8"),        # snapshots started (QUOTE CLEAR BID, F_SNAPSHOT, kept)
    ("gaps", "<u8"),             # sequence gaps (a stream went STALE)
    ("duplicates", "<u8"),       # seq == last: dropped
    ("out_of_order", "<u8"),     # seq < last, or a snapshot record without its CLEAR: dropped
    ("stale_dropped", "<u8"),    # records of a STALE (or unsynced) stream: dropped
    ("rej_price", "<u8"),        # price <= 0 (NEW/CHANGE/TRADE) or < 0 (DELETE)
    ("rej_size", "<u8"),         # size <= 0 (NEW/CHANGE/TRADE) or < 0 (DELETE)
    ("rej_instrument", "<u8"),   # instrument id >= n_instruments
    ("rej_channel", "<u8"),      # channel >= n_channels
    ("rej_field", "<u8"),        # kind, side or action out of MD_EVENT's ranges
    ("rejects", "<u8"),          # every bad input of the venue: the rej_* above, the feed
                                 #   handler's (garbled, off-tick, unknown symbol, ...), the books'
    ("silences", "<u8"),         # times the venue fell silent for the silence limit
    ("last_recv_ns", "<i8"),     # latest recv_ns of any record from it (0: none yet)
    ("last_exch_ns", "<i8"),     # latest exch_ns of a kept record
    ("window_start_ns", "<i8"),  # start of the current rate window (-1: not started)
    ("window_events", "<u8"),    # records kept in the current window
    ("rate_hz", "<f8"),          # records kept per second over the last complete window
    ("stale_streams", "<u4"),    # its streams now STALE (awaiting a snapshot)
    ("stale_books", "<u4"),      # its books left out of the consolidated book now
    ("stale", "u1"),             # 1: silent past the limit, nothing heard yet, or a stale book
    ("pad", "u1", (7,)),
])
assert FEED_HEALTH.itemsize == 176
