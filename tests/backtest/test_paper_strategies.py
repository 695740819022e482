"""A paper session's strategies, recorded and backtested with the same venue model, send the
same orders: the live engine process trades the pairs strategy or the market maker against its
in-process simulated venues, recording the market (``[feed] record``) in ``slice_us`` cells;
the backtest node replays that recording with the same profile, and every order the paper
session sent — when, what, where, and how it ended — is the backtest's too."""

from __future__ import annotations

import csv
import time

import pytest

from engine.backtest.node import BacktestNode
from engine.core.profile import load_profile
from engine.feeds.tickstore import list_days
from engine.ipc import EngineClient
from engine.ipc.events import decode_order
from tests.backtest.test_paper import paper_engine
from tests.conftest import wait_until

MARKET = """
[engine]
instance = "{instance}"
idle = "sleep"
slice_us = 1000

[feed]
kind = "simvenues"
venues = ["SIMA", "SIMB"]
pairs = [{{ a = "AAA", b = "BBB", half_life_s = 2, spread_bp = 8 }}]
seed = 5
record = true
ticks_dir = "{ticks}"

[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0
update_hz = 40

[[instruments]]
symbol = "BBB"
tick = 0.01
price = 50.0
update_hz = 40

[[venues]]
name = "SIMA"
kind = "sim"
latency_us = 150
fee_bps = 0.2

[[venues]]
name = "SIMB"
kind = "sim"
latency_us = 300

[limits]
self_match = "venue"
duplicate_window_ms = 0

[users]
"*" = "trader"
"""

STRATEGIES = {
    "pairs": """
[[strategies]]
name = "pairs"
kind = "pairs"
pairs = [["AAA", "BBB"]]
formation_s = 2
sample_ms = 50
entry_z = 1.0
exit_z = 0.2
notional = 20000
cooldown_s = 0.2
""",
    "marketmaker": """
[[strategies]]
name = "mm"
kind = "marketmaker"
symbols = ["AAA", "BBB"]
venue = "SIMA"
size = 100
max_position = 300
half_spread_ticks = 1
min_requote_ms = 100
""",
}

#: orders and fills the paper session must have had before it is stopped
MIN_ORDERS = {"pairs": 4, "marketmaker": 20}
FILLS = 3
#: orders are compared up to this long after the last of those fills; the session runs on
#: as long again before it is stopped
SETTLE_NS = 500_000_000


def _orders(path) -> dict[str, tuple]:
    """Each order by id: its first update's time, what was asked, where it ended."""
    first: dict[str, dict] = {}
    last: dict[str, dict] = {}
    for r in csv.DictReader(open(path)):
        first.setdefault(r["cl_ord_id"], r)
        last[r["cl_ord_id"]] = r
    return {k: (int(f["ts_ns"]), f["symbol"], f["side"], f["qty"], f["price"], f["venue"],
                f["tif"], last[k]["status"], last[k]["cum_qty"], last[k]["avg_px"])
            for k, f in first.items()}


def _executions(path, until_ns: int) -> list[tuple]:
    return [(int(r["ts_ns"]), r["symbol"], r["side"], r["qty"], r["price"], r["fee"],
             r["source"]) for r in csv.DictReader(open(path)) if int(r["ts_ns"]) <= until_ns]


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_a_recorded_paper_session_backtests_to_the_same_orders(kind, tmp_path, instance,
                                                                 data_dir):
    ticks = tmp_path / "ticks"
    prof = tmp_path / "paper.toml"
    prof.write_text(MARKET.format(instance=instance, ticks=ticks) + STRATEGIES[kind])
    seen: dict[str, str] = {}
    fills: list[int] = []  # when each fill was sent to the desk (the engine's clock)
    with paper_engine(prof, instance, data_dir, "--report", str(tmp_path / "paper")):
        with EngineClient(instance, commands=False) as c:
            symbols = [i.symbol for i in c.instruments]

            def traded():
                for rec in c.poll_events():
                    o = decode_order(rec, symbols)
                    if o is not None:
                        seen[o.cl_ord_id] = o.status
                        if o.last_qty:
                            fills.append(int(rec["ts_ns"]))
                return len(seen) >= MIN_ORDERS[kind] and len(fills) >= FILLS

            try:
                wait_until(traded, 90, f"{MIN_ORDERS[kind]} orders and {FILLS} fills of the "
                                       f"{kind} strategy")
            except AssertionError as e:
                raise AssertionError(f"{e}: saw {seen}, {len(fills)} fills") from None
        # the engine's clock is this machine's: let it run on a while past those fills
        until = fills[FILLS - 1] + SETTLE_NS
        wait_until(lambda: time.time_ns() > until + SETTLE_NS, 10, "the session to go on")

    days = list_days(ticks)
    assert days, "the paper session recorded nothing"
    BacktestNode(load_profile(prof), start=days[0], end=days[-1], out=tmp_path / "bt",
                 ticks_dir=ticks, progress=False).run()

    paper = _orders(tmp_path / "paper" / "orders.csv")
    backtest = _orders(tmp_path / "bt" / "orders.csv")
    assert len(paper) >= MIN_ORDERS[kind]
    # the paper session stopped mid-flight, the backtest goes on a second after the recording
    # ends: everything that happened up to a while after the first fills is settled in both
    settled = sorted(t for t in paper.values() if t[0] <= until)
    assert len(settled) >= 2, paper
    assert sorted(t for t in backtest.values() if t[0] <= until) == settled
    executions = _executions(tmp_path / "paper" / "executions.csv", until)
    assert len(executions) >= FILLS
    assert _executions(tmp_path / "bt" / "executions.csv", until) == executions
    # who sent each fill is in both reports
    assert {r[-1] for r in executions} == {f"strategy:{'mm' if kind == 'marketmaker' else 'pairs'}"}
