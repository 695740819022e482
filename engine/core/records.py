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
    "SCOPE_NAMES",
    "KillState",
    "Notice",
    "KILL_ROW",
    "BOOK_DESK",
    "BOOK_STRATEGY",
    "BOOK_ACCOUNT",
    "POSITION_ROW",
    "LIMIT_ROW",
    "VAR_ROW",
    "RECON_ROW",
    "SIGNAL_ROW",
    "STRATEGY_ROW",
    "FEED_HEALTH",
]

#: Venues a BookSet, the feed-health table and the desk's venue list hold at most (a u2 mask).
MAX_VENUES = 16

# A venue session's state word (the desk shows it next to the order ticket).
VENUE_DOWN = 0
VENUE_UP = 1  #: bit 0: the session is logged on
VENUE_BOOKS_OK = 2  #: bit 1: every book it sends us is good (subscribed, no gap)


class Scope(enum.IntEnum):
    """What a kill switch, a limit or a command applies to. ``scope_id`` is the index in the
    engine's table of that kind (``engine.risk.scopes.ScopeTable``: instruments in profile
    order, then the strategies, venues, accounts and traders it knows)."""

    GLOBAL = 0  #: the whole engine; scope_id must be 0
    INSTRUMENT = 1  #: one instrument
    STRATEGY = 2  #: one strategy (its orders, router children included)
    VENUE = 3  #: one venue (orders sent there)
    ACCOUNT = 4  #: one account (orders booked to it)
    TRADER = 5  #: one person's manual orders (an OS user of the profile's [users])


#: How scopes are written in commands, files and the CLI ("strategy:pairs").
SCOPE_NAMES = {Scope.GLOBAL: "global", Scope.INSTRUMENT: "instrument", Scope.STRATEGY: "strategy",
               Scope.VENUE: "venue", Scope.ACCOUNT: "account", Scope.TRADER: "trader"}


class KillState(enum.IntEnum):
    """A kill switch's state; an order's effective state is the strictest (highest) over
    every scope it falls in."""

    ACTIVE = 0  #: orders pass (the other checks permitting)
    REDUCING = 1  #: only orders that reduce the position pass; adding working orders cancelled
    HALTED = 2  #: nothing new passes; every working order in scope cancelled

    @property
    def label(self) -> str:
        return self.name.lower()


class Notice(enum.IntEnum):
    """Kinds of what the engine tells its desks (the event ring's ``kind``)."""

    LOG = 1
    COMMAND = 2
    KILL = 3
    ALERT = 4
    ORDER = 5  #: an order changed


#: One kill switch. Row 0 is the global switch, then one row per instrument, strategy, venue,
#: account and trader of the engine's scope table, in that order (``ScopeTable.rows``).
KILL_ROW = np.dtype(
    [
        ("state", "u1"),  # KillState value
        ("scope", "u1"),  # Scope value
        ("auto", "u1"),  # 1: the engine tripped it (a limit, stale data, a lost session)
        ("pad0", "u1"),
        ("scope_id", "<i4"),
        ("ts_ns", "<i8"),  # wall clock of the last change
        ("cool_until_ns", "<i8"),  # an automatic trip may not be re-armed before this (0: any time)
        ("name", "S24"),  # "global", "instrument:ESZ6", "strategy:pairs", ...
        ("user", "S32"),  # who changed it last ("engine" for automatic trips)
        ("reason", "S96"),
    ]
)
assert KILL_ROW.itemsize == 176

#: Books of the portfolio: the desk as a whole, each strategy, each account.
BOOK_DESK, BOOK_STRATEGY, BOOK_ACCOUNT = 0, 1, 2

#: One position: a book's holding of one instrument (``instrument`` -1: the book's total, its
#: P&L summed over instruments). Marked to the consolidated mid; fees are in ``realized``.
POSITION_ROW = np.dtype([
    ("book_kind", "u1"),      # BOOK_DESK, BOOK_STRATEGY, BOOK_ACCOUNT
    ("pad0", "u1", (3,)),
    ("book_id", "<i4"),       # index of the strategy / account in the scope table (desk: 0)
    ("instrument", "<i4"),    # instrument index, or -1 for the book's total
    ("pad1", "u1", (4,)),
    ("qty", "<i8"),           # net position (negative: short)
    ("avg_px", "<f8"),        # average cost of the open position
    ("realized", "<f8"),      # realized P&L, fees deducted
    ("unrealized", "<f8"),    # (mark - avg_px) * qty
    ("fees", "<f8"),          # fees paid (already in realized)
    ("mark", "<f8"),          # the mark used (NaN: no mark yet)
    ("working_buy", "<i8"),   # quantity in working buy orders
    ("working_sell", "<i8"),  # quantity in working sell orders
    ("book", "S24"),          # "desk", "strategy:pairs", "account:main"
])
assert POSITION_ROW.itemsize == 104

#: One limit's utilisation, for the risk gauges: how much of it is used now.
LIMIT_ROW = np.dtype([
    ("key", "S24"),           # the limit's key in [limits] (max_position, daily_loss, ...)
    ("scope", "S24"),         # where it applies: "desk", "instrument:ESZ6", "strategy:pairs"
    ("used", "<f8"),          # what is used now (same unit as limit)
    ("limit", "<f8"),         # the limit
    ("fraction", "<f8"),      # used / limit (the gauge)
])
assert LIMIT_ROW.itemsize == 72

#: Value at risk of one book (desk or strategy), in the desk's currency; NaN: not available.
VAR_ROW = np.dtype([
    ("book", "S24"),
    ("var95_hist", "<f8"),
    ("var99_hist", "<f8"),
    ("var95_param", "<f8"),
    ("var99_param", "<f8"),
    ("n_marks", "<i8"),       # marks in the window the figures come from
    ("ts_ns", "<i8"),         # when they were computed (0: never)
])
assert VAR_ROW.itemsize == 72

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

#: One difference between the database and a venue found after a restart, for a risk manager
#: to accept (keep the engine's figure; for an order, the venue's fills are already applied) or
#: correct (book the venue's figure). ``state`` 0 open, 1 accepted, 2 corrected.
RECON_ROW = np.dtype([
    ("id", "<i4"),
    ("state", "u1"),
    ("kind", "u1"),           # 0 order, 1 position
    ("pad", "u1", (2,)),
    ("instrument", "<i4"),
    ("pad1", "u1", (4,)),
    ("db_qty", "<i8"),        # the database's figure (filled qty of the order / position)
    ("venue_qty", "<i8"),     # the venue's
    ("ts_ns", "<i8"),
    ("key", "S48"),           # the order's ClOrdID, or the instrument's symbol
    ("text", "S88"),          # what differs, and who settled it how
])
assert RECON_ROW.itemsize == 176

#: One strategy as the desks see it: its state (engine.strategy.host.StrategyState: 0 running,
#: 1 paused by a person, 2 halted by risk, 3 stopped), kind, up to eight named key figures
#: (``fig_names[k] == b""``: none) and the names of its signal rows' four values.
STRATEGY_ROW = np.dtype([
    ("index", "<i4"),         # its strategy scope id (the STRATEGY verb's scope_id)
    ("state", "u1"),
    ("n_figures", "u1"),
    ("pad", "u1", (2,)),
    ("ts_ns", "<i8"),
    ("name", "S24"),
    ("kind", "S16"),
    ("fig_names", "S16", (8,)),
    ("fig_values", "<f8", (8,)),
    ("sig_cols", "S8", (4,)),
])
assert STRATEGY_ROW.itemsize == 280

#: One of a strategy's most interesting rows (a pairs strategy's pairs by |z|): ``label``
#: ("AAPL/MSFT") and four values its STRATEGY_ROW's ``sig_cols`` name.
SIGNAL_ROW = np.dtype([
    ("strategy", "<i4"),      # its STRATEGY_ROW index
    ("rank", "<i4"),
    ("label", "S24"),
    ("values", "<f8", (4,)),
])
assert SIGNAL_ROW.itemsize == 64
