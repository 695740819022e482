"""Building MD_EVENT records by hand, and a brute-force consolidated BBO, for the book tests."""

from __future__ import annotations

import numpy as np

from engine.book.books import (
    BBO_CROSSED,
    BBO_LOCKED,
    BBO_NO_ASK,
    BBO_NO_BID,
    ST_EXCLUDED,
    BookSet,
)
from engine.core.events import (
    ASK,
    BID,
    CLEAR,
    F_LAST,
    F_SNAPSHOT,
    MD_EVENT,
    NEW,
    QUOTE,
)

_DEFAULTS = dict(kind=QUOTE, venue=0, side=BID, action=NEW, level=0, flags=0, instrument=0,
                 seq=0, exch_ns=0, recv_ns=0, price=0, size=0)


def records(*rows: dict) -> np.ndarray:
    """An MD_EVENT array, one record per dict (fields not given: ``_DEFAULTS``)."""
    out = np.zeros(len(rows), dtype=MD_EVENT)
    for k, row in enumerate(rows):
        for name, value in {**_DEFAULTS, **row}.items():
            out[k][name] = value
    return out


def q(venue: int, side: int, action: int, level: int = 0, price: int = 0, size: int = 0,
      instrument: int = 0, **more) -> dict:
    return dict(kind=QUOTE, venue=venue, side=side, action=action, level=level, price=price,
                size=size, instrument=instrument, **more)


def snapshot(venue: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]],
             instrument: int = 0, flagged: bool = True) -> list[dict]:
    """A full refresh: CLEAR BID, the bids, CLEAR ASK, the asks; flagged F_SNAPSHOT and the
    last one F_LAST (``flagged=False``: no flags at all, as a feed that does not flag them)."""
    rows = [q(venue, BID, CLEAR, instrument=instrument)]
    rows += [q(venue, BID, NEW, k, p, s, instrument) for k, (p, s) in enumerate(bids)]
    rows += [q(venue, ASK, CLEAR, instrument=instrument)]
    rows += [q(venue, ASK, NEW, k, p, s, instrument) for k, (p, s) in enumerate(asks)]
    for row in rows:
        row["flags"] = F_SNAPSHOT if flagged else 0
    if flagged:
        rows[-1]["flags"] |= F_LAST
    return rows


def brute_bbo(books: BookSet, i: int) -> dict:
    """Instrument ``i``'s consolidated BBO computed from scratch from the per-venue arrays."""
    included = [v for v in range(books.n_venues) if not books.state[v, i] & ST_EXCLUDED]
    out: dict = {"excluded": sum(1 << v for v in range(books.n_venues) if v not in included)}
    for name, px, sz, pick in (("bid", books.bid_px, books.bid_sz, max),
                               ("ask", books.ask_px, books.ask_sz, min)):
        quotes = {v: (int(px[v, i, 0]), int(sz[v, i, 0])) for v in included if sz[v, i, 0] > 0}
        best = pick((p for p, _ in quotes.values()), default=0)
        at_best = [v for v, (p, _) in quotes.items() if p == best]
        out[f"{name}_px"] = best
        out[f"{name}_sz"] = sum(quotes[v][1] for v in at_best)
        out[f"{name}_venues"] = sum(1 << v for v in at_best)
    flags = BBO_NO_BID if not out["bid_venues"] else 0
    flags |= BBO_NO_ASK if not out["ask_venues"] else 0
    if out["bid_venues"] and out["ask_venues"]:
        if out["bid_px"] > out["ask_px"]:
            flags |= BBO_CROSSED
        elif out["bid_px"] == out["ask_px"]:
            flags |= BBO_LOCKED
    out["flags"] = flags
    return out


def stored_bbo(books: BookSet, i: int) -> dict:
    b = books.bbo[i]
    return {name: int(b[name]) for name in ("excluded", "bid_px", "bid_sz", "bid_venues",
                                            "ask_px", "ask_sz", "ask_venues", "flags")}
