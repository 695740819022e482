"""A sanity check of the fill model, not a tuned result: the pairs strategy backtested on a
synthetic market whose pairs are cointegrated makes money net of fees and the spread it
crosses; on the same instruments moving as independent random walks it does not beat its
costs. Same profile, strategy and venues both times; only ``[feed] pairs`` differs."""

from __future__ import annotations

import json

import pytest

from engine.backtest.node import BacktestNode
from engine.backtest.synth import simulate_day
from engine.core.profile import load_profile

DAY = "2026-03-02"
SYMBOLS = [f"S{k:02d}" for k in range(8)]
PAIRS = [(SYMBOLS[2 * k], SYMBOLS[2 * k + 1]) for k in range(4)]

HEAD = """
[engine]
instance = "pnl"
idle = "sleep"

[feed]
kind = "simvenues"
venues = ["SIMA", "SIMB"]
seed = 3
"""

TAIL = """
[[venues]]
name = "SIMA"
kind = "sim"
fee_bps = 0.3

[[venues]]
name = "SIMB"
kind = "sim"
fee_bps = 0.3

[limits]
max_orders_per_s = 1000
max_position = 100000
max_order_notional = 1000000.0

[[strategies]]
name = "pairs"
kind = "pairs"
pairs = [{pairs}]
formation_s = 20.0
sample_ms = 100
entry_z = 2.0
exit_z = 0.3
stop_z = 5.0
max_hold_s = 60
cooldown_s = 1.0
notional = 20000.0
"""


def _profile(tmp_path, cointegrated: bool):
    text = HEAD
    if cointegrated:  # b = 2a + c + S, S reverting in 3 s with a 30 bp standard deviation
        text += "pairs = [" + ", ".join(
            f'{{ a = "{a}", b = "{b}", beta = 2.0, half_life_s = 3.0, spread_bp = 30 }}'
            for a, b in PAIRS) + "]\n"
    for k, s in enumerate(SYMBOLS):
        price = 50.0 if k % 2 == 0 else 100.0
        text += f'\n[[instruments]]\nsymbol = "{s}"\ntick = 0.01\nprice = {price}\n' \
                f"update_hz = 20\n"
    text += TAIL.format(pairs=", ".join(f'["{b}", "{a}"]' for a, b in PAIRS))
    path = tmp_path / ("coint.toml" if cointegrated else "walks.toml")
    path.write_text(text)
    return load_profile(path)


def _run(tmp_path, cointegrated: bool) -> dict:
    profile = _profile(tmp_path, cointegrated)
    root = tmp_path / ("ticks-c" if cointegrated else "ticks-w")
    simulate_day(profile, root, DAY, 240.0)
    out = tmp_path / ("bt-c" if cointegrated else "bt-w")
    BacktestNode(profile, DAY, out=out, ticks_dir=root, progress=False, capital=100_000.0).run()
    return json.loads((out / "summary.json").read_text())["strategy_metrics"]["pairs"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("pnl")


@pytest.fixture(scope="module")
def runs(folder):
    return _run(folder, True), _run(folder, False)


def test_cointegrated_pairs_make_money_net_of_costs(runs):
    coint, _ = runs
    assert coint["round_trips"] >= 10, coint
    assert coint["fees"] > 0
    assert coint["total_pnl"] > 0, coint


def test_independent_random_walks_do_not_beat_the_costs(runs):
    coint, walks = runs
    assert walks["round_trips"] >= 5, walks  # it traded: the costs were paid
    assert walks["total_pnl"] < 0, walks
    assert walks["total_pnl"] < coint["total_pnl"]


def test_the_same_data_profile_and_seed_give_byte_identical_files(runs, folder, tmp_path):
    import hashlib

    done = folder / "bt-c"  # the module's run
    out = tmp_path / "again"
    BacktestNode(_profile(tmp_path, True), DAY, out=out, ticks_dir=folder / "ticks-c",
                 progress=False, capital=100_000.0).run()
    files = ("orders.csv", "executions.csv", "positions.csv", "equity.csv", "trades.csv",
             "pairs-pairs.csv", "metrics.csv")

    def digest(folder):
        return [hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in files]

    assert digest(out) == digest(done)
