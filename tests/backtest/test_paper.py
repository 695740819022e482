"""Paper trading and a backtest of the same recorded day with the same intents send the same
orders: the live engine process (replaying the day at twice its pace, in-process simulated
venues) and the backtest node run one kernel."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

from engine.backtest.node import BacktestNode
from engine.backtest.synth import simulate_day
from engine.core.profile import load_profile
from engine.ipc import EngineClient, IpcError
from engine.ipc.events import decode_order
from tests.backtest.test_backtest import DAY, PROFILE
from tests.conftest import wait_until

# from 0.5 s on: the simulated venues' sessions log on (two latencies) at the engine's start
INTENTS = """time,symbol,side,qty,price,venue,tif
0.5,AAA,buy,300,MKT,SIMA,ioc
0.7,BBB,sell,200,49.00,SIMB,day
0.9,AAA,buy,100,90.00,SIMA,day
1.1,BBB,buy,100,MKT,SIMB,ioc
"""


@contextmanager
def paper_engine(profile, instance: str, data_dir, *args: str):
    """``python -m engine --profile PROFILE ARGS...`` running; stopped with SIGTERM (and
    checked to exit 0) when the block ends."""
    env = dict(os.environ, HELMDESK_DATA_DIR=str(data_dir))
    proc = subprocess.Popen([sys.executable, "-m", "engine", "--profile", str(profile), *args],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        def running():
            if proc.poll() is not None:
                raise AssertionError(f"engine exited {proc.returncode}: {proc.stderr.read()}")
            try:
                with EngineClient(instance, commands=False) as c:
                    return c.status().state == "running"
            except IpcError:
                return False

        wait_until(running, 30, "the paper engine")
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _orders(path) -> list[tuple]:
    """Each order once, in the order sent: what was asked, and where it ended."""
    final: dict[str, dict] = {}
    for r in csv.DictReader(open(path)):
        final[r["cl_ord_id"]] = r
    return [(r["symbol"], r["side"], r["qty"], r["price"], r["venue"], r["tif"], r["status"])
            for r in final.values()]


def test_paper_session_and_backtest_send_the_same_orders(tmp_path, instance, data_dir):
    prof = tmp_path / "bt.toml"
    prof.write_text(PROFILE)
    root = tmp_path / "ticks"
    simulate_day(load_profile(prof), root, DAY, 3.0)
    intents = tmp_path / "intents.csv"
    intents.write_text(INTENTS)

    BacktestNode(load_profile(prof), DAY, out=tmp_path / "bt", ticks_dir=root, intents=intents,
                 progress=False).run()

    paper = tmp_path / "paper.toml"
    paper.write_text(PROFILE.replace('instance = "bt"', f'instance = "{instance}"\nidle = "sleep"')
                     .replace('kind = "simvenues"', f'kind = "replay"\nday = "{DAY}"\nspeed = 2.0\n'
                              f'ticks_dir = "{root}"') + '\n[users]\n"*" = "trader"\n')
    seen: dict[str, str] = {}
    with paper_engine(paper, instance, data_dir, "--intents", str(intents), "--report",
                      str(tmp_path / "paper")):
        with EngineClient(instance, commands=False) as c:
            symbols = [i.symbol for i in c.instruments]

            def settled():
                for rec in c.poll_events():
                    o = decode_order(rec, symbols)
                    if o is not None:
                        seen[o.cl_ord_id] = o.status
                return len(seen) == 4 and "PendingNew" not in seen.values()

            try:
                wait_until(settled, 30, "four orders answered by the simulated venues")
            except AssertionError as e:
                raise AssertionError(f"{e}: saw {seen}") from None

    backtest, paper_orders = _orders(tmp_path / "bt" / "orders.csv"), _orders(tmp_path / "paper" / "orders.csv")
    assert paper_orders == backtest
    assert [o[-1] for o in backtest] == ["Filled", "Filled", "New", "Filled"]
