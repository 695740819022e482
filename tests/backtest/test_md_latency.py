"""Market-data latency in a backtest: an order sent on a stale book meets the market as the
venue's exchange had it when the order arrived, not the book the strategy saw. A recorded day
written by hand (each record with its exchange and receive time), the real backtest node, a
scripted order, the executions it writes."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from engine.backtest.node import BacktestNode
from engine.core.events import ASK, BID, DELETE, MD_EVENT
from engine.core.profile import load_profile
from engine.feeds.tickstore import TickWriter
from tests.book._records import q, records, snapshot

DAY = "2026-11-23"
T0 = int(np.datetime64(f"{DAY}T12:00:00", "ns").astype(np.int64))
US = 1_000
FEED_US = 400  # each record is received 400 µs after the exchange stamped it
ORDER_US = 100  # latency_us: an order reaches the venue 100 µs after it is sent
T1 = T0 + 500_000 * US  # the exchange's 100.00 ask is taken away
T2 = T0 + 1_000_000 * US  # ... and then its 100.01 ask

PROFILE = """
[engine]
instance = "mdlat"

[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0

[[venues]]
name = "SIMA"
kind = "sim"
latency_us = {order_us}
{md}
"""

# sent 200 µs after the exchange moved: the strategy's book (200 µs before the record comes)
# still shows the level that went; the order reaches the venue 300 µs after the move
INTENTS = """time,symbol,side,qty,price,venue,tif
0.5002,AAA,buy,200,100.00,SIMA,ioc
1.0002,AAA,buy,100,MKT,SIMA,ioc
"""


def _rows() -> list[dict]:
    rows = snapshot(0, [(9999, 500), (9998, 500)], [(10000, 200), (10001, 300), (10002, 1000)])
    for r in rows:
        r["exch_ns"] = T0 - FEED_US * US
        r["recv_ns"] = T0
    for t in (T1, T2):  # the best ask goes, each time
        rows.append(q(0, ASK, DELETE, 0, exch_ns=t, recv_ns=t + FEED_US * US))
    # later quotes keep the book fresh for the risk engine's reference price
    for k in range(1, 20):
        t = T0 + k * 100_000 * US + 7 * US
        rows.append(q(0, BID, DELETE, 1, exch_ns=t - FEED_US * US, recv_ns=t))
        rows.append(q(0, BID, 0, 1, 9998, 500 + k, exch_ns=t - FEED_US * US, recv_ns=t))
    return rows


def _day(root) -> None:
    rec = records(*_rows())
    rec = rec[np.argsort(rec["recv_ns"], kind="stable")]
    assert rec.dtype == MD_EVENT
    with TickWriter(root, "SIMA", [("AAA", 0.01)]) as w:
        w.append(rec)


def _run(tmp_path, md: str, name: str) -> list[tuple[str, str, str]]:
    root = tmp_path / "ticks"
    if not root.exists():
        _day(root)
    (tmp_path / name).mkdir()
    prof = tmp_path / name / "bt.toml"
    prof.write_text(PROFILE.format(order_us=ORDER_US, md=md))
    intents = tmp_path / "intents.csv"
    intents.write_text(INTENTS)
    out = tmp_path / name / "out"
    BacktestNode(load_profile(prof), DAY, out=out, ticks_dir=root, intents=intents,
                 progress=False).run()
    return [(r["side"], r["qty"], r["price"])
            for r in csv.DictReader(open(out / "executions.csv"))]


@pytest.mark.parametrize("md, fills", [
    # the venue sees what the strategy saw (a paper session's venue): the stale levels fill
    ("", [("buy", "200", "100.0"), ("buy", "100", "100.01")]),
    ("md_latency_us = 0", [("buy", "200", "100.0"), ("buy", "100", "100.01")]),
    # the records' own times: each move was 300 µs old when the order came; the IOC at the
    # level that went gets nothing, the market order pays the next level
    ('md_latency_us = "recorded"', [("buy", "100", "100.02")]),
    ("md_latency_us = 1000", [("buy", "100", "100.02")]),
    # 50 µs: the exchange has each move 350 µs after it was stamped, after our order came
    ("md_latency_us = 50", [("buy", "200", "100.0"), ("buy", "100", "100.01")]),
])
def test_a_marketable_order_on_a_stale_book_meets_the_exchange_time_book(tmp_path, md, fills):
    assert _run(tmp_path, md, "run") == fills


def test_a_backtest_with_recorded_md_latency_is_deterministic(tmp_path):
    md = 'md_latency_us = "recorded"'
    _run(tmp_path, md, "a")
    _run(tmp_path, md, "b")
    for f in ("orders.csv", "executions.csv", "summary.json", "equity.csv"):
        a = hashlib.sha256((tmp_path / "a" / "out" / f).read_bytes()).hexdigest()
        b = hashlib.sha256((tmp_path / "b" / "out" / f).read_bytes()).hexdigest()
        assert a == b, f


def test_the_exchange_time_books_get_each_day_of_a_range(tmp_path):
    root = tmp_path / "ticks"
    _day(root)
    day = 86_400_000_000_000
    nxt = str(np.datetime64(T0 + day, "ns").astype("datetime64[D]"))
    with TickWriter(root, "SIMA", [("AAA", 0.01)]) as w:  # the same market a day later
        rec = records(*[dict(r) for r in _rows()])
        rec["exch_ns"] += day
        rec["recv_ns"] += day
        w.append(rec)
    (tmp_path / "r").mkdir()
    prof = tmp_path / "r" / "bt.toml"
    prof.write_text(PROFILE.format(order_us=ORDER_US, md='md_latency_us = "recorded"'))
    intents = tmp_path / "intents.csv"
    when = np.datetime64(T1 + day + 200 * US, "ns")
    intents.write_text("time,symbol,side,qty,price,venue,tif\n"
                       f"{when}Z,AAA,buy,300,100.01,SIMA,ioc\n")
    out = tmp_path / "r" / "out"
    BacktestNode(load_profile(prof), start=DAY, end=nxt, out=out, ticks_dir=root,
                 intents=intents, progress=False).run()
    got = [(r["qty"], r["price"]) for r in csv.DictReader(open(out / "executions.csv"))]
    assert got == [("300", "100.01")]  # not 200 at 100.00: gone at the exchange on day two too


@pytest.mark.parametrize("line, why", [
    ('md_latency_us = "exch"', 'must be a number of µs or "recorded"'),
    ("md_latency_us = -1", "must be between 0 and 10000000"),
    ("md_latency_us = 1.5", "must be an integer or a string"),
])
def test_the_profile_refuses_a_bad_md_latency(tmp_path, line, why):
    from engine.core.profile import ProfileError

    prof = tmp_path / "bad.toml"
    prof.write_text(PROFILE.format(order_us=ORDER_US, md=line))
    with pytest.raises(ProfileError, match=f"md_latency_us: {why}"):
        load_profile(prof)


def test_only_a_simulated_venue_has_md_latency(tmp_path):
    from engine.core.profile import ProfileError

    prof = tmp_path / "fix.toml"
    prof.write_text(PROFILE.format(order_us=ORDER_US, md='md_latency_us = "recorded"')
                    .replace('kind = "sim"', 'kind = "fix"\nhost = "127.0.0.1"\nport = 9876\n'
                                             'sender = "HELM"\ntarget = "SIMA"'))
    with pytest.raises(ProfileError, match='only kind = "sim" has one'):
        load_profile(prof)
    assert load_profile(_ok(tmp_path)).venues[0].md_latency_us == "recorded"


def _ok(tmp_path):
    p = tmp_path / "ok.toml"
    p.write_text(PROFILE.format(order_us=ORDER_US, md='md_latency_us = "recorded"'))
    return p
