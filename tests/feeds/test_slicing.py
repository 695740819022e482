"""``[engine] slice_us``: market data reaches the books in whole slices of receive time, so
what the books show at any step does not depend on when the loop ran."""

from __future__ import annotations

from engine.core.events import ASK, BID, CHANGE
from engine.core.profile import InstrumentConfig
from engine.feeds.marketdata import MarketData, MarketDataConfig
from engine.feeds.sources import NEVER, ReplaySource
from tests.book._records import q, records, snapshot

MS = 1_000_000


def _market(slice_ns: int) -> MarketData:
    rows = snapshot(0, [(100, 5)], [(102, 5)])
    for r in rows:
        r["recv_ns"] = 10 * MS  # the snapshot arrives at 10 ms
    # size changes of the best bid at 10.2, 10.9, 11.0 and 13.5 ms
    for t, size in ((10.2, 6), (10.9, 7), (11.0, 8), (13.5, 9)):
        rows.append(q(0, BID, CHANGE, 0, 100, size, recv_ns=int(t * MS)))
    src = ReplaySource(records(*rows), [0])
    ins = [InstrumentConfig(symbol="AAA", tick=0.01, price=1.0)]
    return MarketData(MarketDataConfig(venues=("V",), silence_ns=(10**12,), slice_ns=slice_ns),
                      ins, [src])


def _bid_size(md: MarketData) -> int:
    return int(md.books.bid_sz[0, 0, 0])


def test_without_slices_each_step_applies_what_has_arrived():
    md = _market(0)
    md.step(10_500_000)
    assert _bid_size(md) == 6 and md.next_due_ns == 10_900_000


def test_a_slice_goes_to_the_books_whole_when_it_ends():
    md = _market(MS)
    assert md.step(10 * MS) == 0  # [10, 11) ms is still open
    assert md.next_due_ns == 11 * MS
    md.step(10_999_999)
    assert md.applied == 0
    md.step(11 * MS)  # the slice [10, 11) ms: snapshot, 6, 7 — not 8 (it is at 11.0)
    assert _bid_size(md) == 7 and md.next_due_ns == 12 * MS
    md.step(13_700_000)  # late: every whole slice by then, never the open one
    assert _bid_size(md) == 8 and md.next_due_ns == 14 * MS
    md.step(14 * MS)
    assert _bid_size(md) == 9 and md.next_due_ns == NEVER


def test_the_books_are_the_same_however_the_steps_fall():
    a, b = _market(MS), _market(MS)
    for t in range(10 * MS, 15 * MS, 37_000):  # many small steps
        a.step(t)
    a.step(15 * MS)
    b.step(15 * MS)  # one big one
    assert _bid_size(a) == _bid_size(b) == 9
    assert a.applied == b.applied


def test_a_paper_market_opens_in_a_slice_of_its_own_once_its_venues_are_up(tmp_path):
    """The paper engine's simulated market waits for its in-process venues' sessions, then
    opens at the next step: its snapshots are that step's records, in a cell of their own."""
    from engine.core.profile import load_profile
    from engine.node import sim_source

    p = tmp_path / "p.toml"
    p.write_text('[feed]\nkind = "simvenues"\nvenues = ["SIMA"]\n'
                 '[[instruments]]\nsymbol = "AAA"\ntick = 0.01\nprice = 10.0\n')
    profile = load_profile(p)
    up = [False]
    src = sim_source(profile, ["SIMA"], 0, lambda: up[0])
    md = MarketData(MarketDataConfig(venues=("SIMA",), silence_ns=(10**12,), slice_ns=MS),
                    profile.instruments, [src])
    assert md.start(5 * MS + 300) == 0 and md.books.bbo["updates"][0] == 0
    assert md.step(7 * MS) == 0 and src.opened_ns is None  # the sessions are still logging on
    up[0] = True
    assert md.step(md.next_due_ns) == 0  # seen up: the market opens at the next step
    opens = md.next_due_ns
    assert opens % MS == 0 and md.step(opens) > 0
    assert src.opened_ns == opens - 1  # the last nanosecond of the cell before ``opens``
    assert _bid_size(md) > 0
