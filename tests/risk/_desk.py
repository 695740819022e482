"""A kernel on a simulated clock for the risk tests: recorded books for each instrument on three
in-process simulated venues (their other participants: those books), no desk, no database.

``Desk(limits=...)`` starts it with the venues logged on; ``order(...)`` submits through the
kernel's one door like a manual order; ``run(seconds)`` steps the clock; ``quote(...)`` moves
an instrument's books (every venue). The risk benchmark (bench/risk.py) builds a larger one:
``Desk(limits, symbols={...500...}, strategies_named=[...])``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.core.events import (ASK, BID, CLEAR, F_LAST, F_SNAPSHOT, MD_EVENT, NEW, QUOTE,
                                STATUS, STATUS_GAP)
from engine.core.intents import OrderIntent
from engine.core.profile import parse_profile
from engine.execution.orders import ClOrdIds
from engine.feeds.sources import MarketDataSource
from engine.kernel import Kernel
from engine.venue.inprocess import InProcessVenue

T0 = 1_700_000_000_000_000_000
VENUES = ("SIMA", "SIMB", "SIMC")
SYMBOLS = {"AAA": (0.01, 100.0), "BBB": (0.01, 50.0), "CCC": (0.25, 5000.0)}


def profile_dict(limits: dict | None = None, users: dict | None = None,
                 symbols: dict | None = None) -> dict:
    return {
        "engine": {"instance": "risk-test"},
        "desk": {"name": "test-desk", "account": "main"},
        "feed": {"kind": "replay", "day": "2026-12-04", "silence_ms": 3_600_000},
        "instruments": [{"symbol": s, "tick": t, "price": p}
                        for s, (t, p) in (symbols or SYMBOLS).items()],
        "venues": [{"name": v, "kind": "sim", "latency_us": 100} for v in VENUES],
        "users": users or {"alice": "trader", "rita": "risk_manager", "*": "viewer"},
        "limits": limits or {},
    }


class _Source(MarketDataSource):
    """Market data the test pushes (``push``): handed to the kernel at its next step."""

    def __init__(self) -> None:
        self.venue_ids = tuple(range(len(VENUES)))
        self.next_due_ns = 0
        self.pending: list[np.ndarray] = []
        self.seq = {}

    def start(self, now_ns: int, out) -> int:
        return self.step(now_ns, out)

    def step(self, now_ns: int, out) -> int:
        n = 0
        while self.pending and out.n < out.capacity:
            recs = self.pending[0]
            k = min(len(recs), out.capacity - out.n)
            part, rest = recs[:k].copy(), recs[k:]
            part["recv_ns"] = now_ns
            part["exch_ns"] = now_ns
            out.rec[out.n:out.n + k] = part
            out.n += k
            n += k
            if len(rest):
                self.pending[0] = rest
            else:
                self.pending.pop(0)
        self.next_due_ns = now_ns if self.pending else 1 << 62
        return n

    def push(self, rows: list[dict]) -> None:
        recs = np.zeros(len(rows), dtype=MD_EVENT)
        for k, row in enumerate(rows):
            key = (row["venue"], row["instrument"])
            self.seq[key] = self.seq.get(key, 0) + 1
            row = {**row, "seq": self.seq[key]}
            for name, value in row.items():
                recs[k][name] = value
        self.pending.append(recs)
        self.next_due_ns = 0


class Desk:
    def __init__(self, limits: dict | None = None, *, strategies=(), kill_state=None,
                 users: dict | None = None, journal=None, symbols: dict | None = None) -> None:
        self.specs = symbols or SYMBOLS
        self.profile = parse_profile(profile_dict(limits, users, self.specs),
                                     Path("risk-test.toml"))
        self.source = _Source()
        self.clients = [InProcessVenue(v, self.profile.instruments, latency_ns=100_000)
                        for v in VENUES]
        self.kernel = Kernel(self.profile, market_venues=list(VENUES), sources=[self.source],
                             venues=self.clients, ids=ClOrdIds("T", 1), strategies=strategies,
                             kill_state=kill_state, journal=journal)
        self.risk = self.kernel.risk
        self.symbols = list(self.specs)
        self.t = T0
        for s, (_tick, px) in self.specs.items():
            self.quote(s, px)
        self.kernel.start(self.t)
        self.run(0.05)
        assert all(c.up for c in self.clients), "the simulated venues did not log on"

    # -- the market --------------------------------------------------------------------------
    def quote(self, symbol: str, mid: float, *, size: int = 1000, venues=VENUES,
              spread_ticks: int = 1) -> None:
        """Every venue quotes ``symbol`` around ``mid``: 5 levels a side, ``size`` each."""
        i = self.symbols.index(symbol)
        tick = self.specs[symbol][0]
        m = round(mid / tick)
        rows = []
        for v in venues:
            vid = VENUES.index(v)
            rows.append(dict(kind=QUOTE, venue=vid, instrument=i, side=BID, action=CLEAR,
                             flags=F_SNAPSHOT))
            rows += [dict(kind=QUOTE, venue=vid, instrument=i, side=BID, action=NEW, level=k,
                          price=m - spread_ticks - k, size=size, flags=F_SNAPSHOT)
                     for k in range(5)]
            rows.append(dict(kind=QUOTE, venue=vid, instrument=i, side=ASK, action=CLEAR,
                             flags=F_SNAPSHOT))
            rows += [dict(kind=QUOTE, venue=vid, instrument=i, side=ASK, action=NEW, level=k,
                          price=m + spread_ticks + k, size=size, flags=F_SNAPSHOT)
                     for k in range(5)]
            rows[-1]["flags"] |= F_LAST
        self.source.push(rows)

    def gap(self, symbol: str, venues=VENUES) -> None:
        """A sequence gap on each venue's stream of ``symbol``: its book goes stale."""
        i = self.symbols.index(symbol)
        self.source.push([dict(kind=STATUS, venue=VENUES.index(v), instrument=i,
                               action=STATUS_GAP) for v in venues])

    # -- driving -------------------------------------------------------------------------------
    def run(self, seconds: float) -> None:
        """Step the kernel until ``seconds`` of simulated time have passed."""
        end = self.t + int(seconds * 1e9)
        k = self.kernel
        while True:
            nxt = k.step(self.t)
            if nxt > end:
                break
            self.t = max(nxt, self.t + 1000)
        self.t = end
        k.step(self.t)

    def order(self, symbol: str, side: str, qty: int, price: float | None = None, *,
              venue: str = "SIMA", source: str = "manual:alice", account: str = "",
              tif: str = "day"):
        """Submit through the kernel's door; the order, router parent, or why refused."""
        intent = OrderIntent(symbol=symbol, side=1 if side == "buy" else 2, qty=qty,
                             price=price, venue=venue, tif=tif, source=source, account=account)
        self.t += 1000
        return self.kernel.submit(intent, self.t)

    def position(self, symbol: str, book: str = "desk") -> int:
        p = self.risk.portfolio
        return p.qty[p.book_of(book)][self.symbols.index(symbol)]

    def working(self) -> dict[str, object]:
        """ClOrdID -> order, for the orders working now."""
        oms = self.kernel.execution.oms
        return {cl: oms.orders[cl] for cl in self.kernel.execution.working}
