"""The backtest node: the kernel over a recorded day with in-process simulated venues, the
output folder, determinism, and paper trading giving the same orders."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backtest.node import BacktestNode
from engine.backtest.synth import simulate_day
from engine.core.profile import load_profile
from engine.strategy.scripted import IntentsError, load_intents

DAY = "2026-11-23"

PROFILE = """
[engine]
instance = "bt"

[feed]
kind = "simvenues"
venues = ["SIMA", "SIMB"]
pairs = [["AAA", "BBB"]]
seed = 9

[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0
update_hz = 200

[[instruments]]
symbol = "BBB"
tick = 0.01
price = 50.0
update_hz = 200

[[venues]]
name = "SIMA"
kind = "sim"
latency_us = 150
fee_bps = 0.5

[[venues]]
name = "SIMB"
kind = "sim"
latency_us = 300

[limits]
price_collar_bps = 2000   # the script rests a bid 10 % under the market
self_match = "venue"      # ... and later sells at market into a book it rests in
"""

INTENTS = """time,symbol,side,qty,price,venue,tif
0.5,AAA,buy,300,MKT,SIMA,ioc
1.0,BBB,sell,200,49.00,SIMB,day
2.0,AAA,buy,100,90.00,SIMA,day
3.0,AAA,sell,500,,*,ioc
4.0,BBB,buy,100,51.00,*,day
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("bt")
    prof = d / "bt.toml"
    prof.write_text(PROFILE)
    root = d / "ticks"
    simulate_day(load_profile(prof), root, DAY, 6.0)
    return prof, root


def _run(prof: Path, root: Path, out: Path, intents: str | None = INTENTS) -> dict:
    path = None
    if intents is not None:
        path = out.parent / f"{out.name}-intents.csv"
        path.write_text(intents)
    node = BacktestNode(load_profile(prof), DAY, out=out, ticks_dir=root, intents=path,
                        progress=False)
    return node.run().summary


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_backtest_writes_orders_fills_and_positions(store, tmp_path):
    prof, root = store
    s = _run(prof, root, tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "equity.csv", "executions.csv", "metrics.csv", "orders.csv", "positions.csv",
        "report.html", "summary.json", "trades.csv"]
    assert s["records"] > 1000 and s["records_applied"] == s["records"]
    assert s["intents_sent"] == 5 and s["intents_refused"] == []
    orders = _rows(out / "orders.csv")
    first = {}
    for r in orders:
        first.setdefault(r["cl_ord_id"], r)
    sent = [(r["symbol"], r["side"], r["qty"], r["price"], r["venue"]) for r in first.values()]
    # the market buy, the resting sell below the market, the resting bid far below it, then the
    # router's children for the two routed intents
    assert sent[:3] == [("AAA", "buy", "300", "", "SIMA"), ("BBB", "sell", "200", "49.0", "SIMB"),
                        ("AAA", "buy", "100", "90.0", "SIMA")]
    final = {}
    for r in orders:
        final[r["cl_ord_id"]] = r
    ids = list(first)
    assert final[ids[0]]["status"] == "Filled"  # marketable: takes the displayed asks
    assert final[ids[1]]["status"] == "Filled"  # a sell at 49 against bids near 50
    assert final[ids[2]]["status"] == "New"  # a bid at 90 never reached: still working
    fills = _rows(out / "executions.csv")
    assert {f["cl_ord_id"] for f in fills} >= {ids[0], ids[1]}
    # the market buy paid the SIMA asks near 100, in whole lots, fee charged by the venue
    buy = [f for f in fills if f["cl_ord_id"] == ids[0]]
    assert sum(int(f["qty"]) for f in buy) == 300
    assert all(99.0 < float(f["price"]) < 101.0 for f in buy)
    # 0.5 bps of the notional at SIMA, nothing at SIMB; every fill is the script's
    for f in fills:
        want = 0.5e-4 * int(f["qty"]) * float(f["price"]) if f["venue"] == "SIMA" else 0.0
        assert abs(float(f["fee"]) - want) < 1e-6 and f["source"] == "strategy:script"
    pos = {r["symbol"]: r for r in _rows(out / "positions.csv")}
    net = {}
    for f in fills:
        net[f["symbol"]] = net.get(f["symbol"], 0) + int(f["qty"]) * (1 if f["side"] == "buy" else -1)
    assert {k: int(v["qty"]) for k, v in pos.items()} == net
    assert s["executions"] == len(fills) and s["orders"] == len(ids)
    # realized P&L is net of fees, as the risk engine books it
    fees = sum(float(f["fee"]) for f in fills)
    assert abs(sum(float(r["fees"]) for r in pos.values()) - fees) < 1e-9
    assert abs(s["fees"] - fees) < 1e-6 and fees > 0


def test_backtest_is_deterministic_byte_for_byte(store, tmp_path):
    prof, root = store
    _run(prof, root, tmp_path / "a")
    _run(prof, root, tmp_path / "b")
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert a == b and len(a) == 8
    assert (tmp_path / "a" / "executions.csv").read_text().count("\n") > 2


def test_backtest_without_intents_replays_the_day(store, tmp_path):
    prof, root = store
    s = _run(prof, root, tmp_path / "o", intents=None)
    assert s["orders"] == 0 and s["executions"] == 0 and s["records_applied"] == s["records"]
    assert s["venues"] == ["SIMA", "SIMB"]


def test_bad_intents_are_refused_with_rows_and_reasons(tmp_path):
    p = tmp_path / "i.csv"
    p.write_text("time,symbol,side,qty,price\n1,AAA,buy,10,100\nsoon,AAA,buy,10,1\n"
                 "2,ZZZ,buy,10,1\n3,AAA,hold,10,1\n4,AAA,buy,-5,1\n5,AAA,buy,5,nan\n")
    with pytest.raises(IntentsError) as e:
        load_intents(p, {"AAA"})
    msg = str(e.value)
    for want in ("row 3: time 'soon'", "row 4: symbol 'ZZZ'", "row 5: side must be buy or sell",
                 "row 6: qty must be 1..", "row 7: price must be positive", "5 bad rows"):
        assert want in msg, msg
    p.write_text("when,symbol\n")
    with pytest.raises(IntentsError, match="missing time, side, qty; unknown when"):
        load_intents(p)


def test_helmdesk_backtest_cli(store, tmp_path):
    prof, root = store
    intents = tmp_path / "i.csv"
    intents.write_text(INTENTS)
    env = dict(os.environ, HELMDESK_DATA_DIR=str(tmp_path / "data"))
    r = subprocess.run([sys.executable, "-m", "app", "backtest", "--profile", str(prof),
                        "--day", DAY, "--ticks", str(root), "--intents", str(intents),
                        "--out", str(tmp_path / "cli")], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"backtest {DAY}:" in r.stdout and "output in" in r.stdout
    assert (tmp_path / "cli" / "orders.csv").exists()
    r = subprocess.run([sys.executable, "-m", "app", "backtest", "--profile", str(prof),
                        "--day", "2020-01-01", "--ticks", str(root)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 2 and "2020-01-01" in r.stderr, r.stderr
