"""Risk figures: the pre-trade chain, a kill with 1,000 working orders, VaR, tick to order.

    python -m bench.risk [--quick]

- ``pretrade_chain_p99_us``: the whole chain (``RiskEngine.check_intent``: every check of
  ``engine.risk.engine.CHECKS``) per order, on a kernel with 500 instruments, 50 strategies
  with limits of their own, 100 instruments and 2 accounts with overrides, 3 venues and 1,000
  working orders resting; orders from every strategy and from traders, to each venue and to
  the router, 10,000 a second of simulated time, timed one by one (target p99 ≤ 10 µs). As
  in the engine, ``gc.freeze()`` once set up; the collector stays on.
- ``kill_1000_last_cancel_ms``: a real engine process with 1,000 working orders across 3
  simulated venue processes (FIX over TCP on loopback); a risk manager's KILL on the command
  ring; the engine's own measure from reading the command to writing the last
  OrderCancelRequest (target ≤ 20 ms). ``kill_1000_ack_ms``: the same kill as the desk sees
  it, command written → ack read (the ack waits for the kill state to be on disk).
- ``var_recompute_ms``: one VaR recompute in the helper process, 500 instruments, the desk and
  50 strategies, 250 marks, both methods (bench/var.py has the detail).
- ``tick_to_order_p50_us`` / ``tick_to_order_p99_us``: a tick handed to the kernel → a
  strategy's order written by the OMS (books, strategy, risk chain, FIX encode), on the same
  500-instrument kernel, without VaR and with a VaR helper process marking every 100 ms
  (``_var`` keys). The VaR helper runs on the other CPU; the figure is whether the hot path
  moves.

Every figure is a percentile of many samples on this noisy 2-core machine; compare the two
tick-to-order runs as a ratio. Nothing is tuned to pass: a missed target prints MISS.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from bench._common import (
    EngineProcess,
    Table,
    emit_json,
    percentiles_us,
    progress,
    verdict,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_INSTRUMENTS, N_STRATEGIES = 500, 50
ALL_CPUS = sorted(os.sched_getaffinity(0))  #: before main() pins this process to the first


def _symbols(n: int) -> dict[str, tuple[float, float]]:
    return {f"S{k:03d}": (0.01, 100.0 + k) for k in range(n)}


def _limits() -> dict:
    high = {"max_orders_per_s": 1_000_000, "max_messages_per_s": 1_000_000,
            "runaway_orders_per_s": 10_000_000, "max_open_orders": 10_000_000}
    return {
        **high, "max_position": 10_000_000, "max_gross_position": 20_000_000,
        "max_exposure": 1e13, "duplicate_window_ms": 50,
        "strategy": {f"st{k}": {"max_position": 1_000_000, "daily_loss_limit": 1e9,
                                "max_order_qty": 5_000} for k in range(N_STRATEGIES)},
        "instrument": {f"S{k:03d}": {"max_order_qty": 2_000} for k in range(0, N_INSTRUMENTS, 5)},
        "account": {"acc1": {"max_exposure": 1e12}, "acc2": {"daily_loss_limit": 1e9}},
    }


def _desk(strategies=()):
    from tests.risk._desk import Desk

    return Desk(_limits(), symbols=_symbols(N_INSTRUMENTS), strategies=strategies,
                users={"alice": "trader", "bob": "trader", "*": "viewer"})


# -- the chain -------------------------------------------------------------------------------------
def bench_chain(n: int) -> dict[str, float]:
    from engine.core.intents import OrderIntent

    d = _desk()
    rng = np.random.default_rng(7)
    progress("1,000 working orders")
    for k in range(1000):
        i = int(rng.integers(N_INSTRUMENTS))
        sym, (_t, px) = f"S{i:03d}", _symbols(N_INSTRUMENTS)[f"S{i:03d}"]
        r = d.order(sym, "buy", 1, round(px - 0.5 - (k % 7) * 0.01, 2),
                    venue=("SIMA", "SIMB", "SIMC")[k % 3], source=f"strategy:st{k % 50}")
        if isinstance(r, str):
            raise RuntimeError(f"set-up order refused: {r}")
    d.run(0.05)
    working = len(d.working())
    intents = []
    for k in range(n):
        i = int(rng.integers(N_INSTRUMENTS))
        sym = f"S{i:03d}"
        px = _symbols(N_INSTRUMENTS)[sym][1]
        side = 1 + k % 2
        price = round(px + (-0.3 if side == 1 else 0.3) - int(rng.integers(20)) * 0.01, 2)
        source = f"strategy:st{k % 50}" if k % 4 else ("manual:alice", "manual:bob")[k % 8 // 4]
        intents.append(OrderIntent(symbol=sym, side=side, qty=1 + k % 50, price=price,
                                   venue=("SIMA", "SIMB", "SIMC", "*")[k % 4], source=source,
                                   account=("", "acc1", "acc2")[k % 3]))
    risk = d.risk
    now = d.t
    clock = time.perf_counter_ns
    samples = np.empty(n, dtype=np.int64)
    refused = 0
    gc.collect()
    gc.freeze()  # as the engine does once started: start-up objects are never scanned again
    for k, intent in enumerate(intents):
        now += 100_000  # 10,000 orders a second: every throttle window stays busy
        t0 = clock()
        why = risk.check_intent(intent, now)
        samples[k] = clock() - t0
        refused += why is not None
    overhead = min(clock() - clock() for _ in range(1000))
    p = percentiles_us(np.maximum(samples - max(overhead, 0), 0))
    return {"pretrade_chain_p50_us": round(p["p50"], 2), "pretrade_chain_p99_us": round(p["p99"], 2),
            "pretrade_orders": n, "pretrade_refused": refused, "pretrade_working": working}


# -- kill with 1,000 working orders ----------------------------------------------------------------
def bench_kill(n_orders: int, rounds: int) -> dict[str, float]:
    from bench.execution import VenueProcess
    from engine.ipc import EngineClient, Scope, Verb
    from engine.ipc.commands import confirmation_code, order_text

    venues = [VenueProcess(cpu=ALL_CPUS[0]) for _ in range(3)]
    extra = "".join(
        f'[[venues]]\nname = "V{k}"\nhost = "127.0.0.1"\nport = {v.port}\nsender = "HELM"\n'
        f'target = "BENCHV"\nreset_on_logon = true\nsymbols = ["AAPL"]\nmarket_data = false\n\n'
        for k, v in enumerate(venues))
    extra += ("[limits]\nmax_orders_per_s = 1000000\nmax_messages_per_s = 1000000\n"
              "runaway_orders_per_s = 10000000\nmax_open_orders = 10000000\n"
              "max_position = 100000000\nmax_gross_position = 100000000\n"
              "duplicate_window_ms = 0\nprice_collar_bps = 2000\n")
    acks, written = [], []

    def working(c) -> int:
        """Working buy quantity as the engine's risk table has it (desk total)."""
        rows = c.read_risk("positions")
        if rows is None:
            return -1
        tot = rows[(rows["book"] == b"desk") & (rows["instrument"] == -1)]
        return int(tot[0]["working_buy"]) if len(tot) else 0

    try:
        with EngineProcess(f"benchrisk{os.getpid()}", idle="hybrid", extra=extra,
                           users='"*" = "trader,risk_manager"',
                           cores=[ALL_CPUS[-1]]) as eng:
            os.environ["HELMDESK_DATA_DIR"] = str(eng.data_dir)
            with EngineClient(eng.instance) as c:
                symbols = [i.symbol for i in c.instruments]
                aapl = symbols.index("AAPL")
                wait_until(lambda: [v[1] for v in c.venues()] == [True] * 3, 20,
                           "the engine to log on to the 3 venues")
                for r in range(rounds):
                    progress(f"round {r + 1}/{rounds}: {n_orders} orders")
                    for k in range(n_orders):
                        ack = None
                        for _ in range(200):  # the first: until the feed gives a reference
                            ack = c.request(Verb.ORDER, Scope.INSTRUMENT, aapl, arg0=1,
                                            arg1=round(155.0 + (k % 100) * 0.01, 2),
                                            text=order_text(f"V{k % 3}", "buy"))
                            if ack.accepted or "reference" not in ack.reason:
                                break
                            time.sleep(0.05)
                        if not ack.accepted:
                            raise RuntimeError(f"order refused: {ack.reason}")
                    wait_until(lambda: working(c) >= n_orders, 30, f"{n_orders} orders working")
                    t0 = time.perf_counter_ns()
                    ack = c.request(Verb.KILL, text="bench", timeout=10)
                    acks.append(time.perf_counter_ns() - t0)
                    if not ack.accepted:
                        raise RuntimeError(f"kill refused: {ack.reason}")
                    wait_until(lambda: working(c) == 0, 30, "every order cancelled")
                    ack = c.request(Verb.REARM, text="bench round over",
                                    arg1=confirmation_code("global"))
                    if not ack.accepted:
                        raise RuntimeError(f"re-arm refused: {ack.reason}")
            log_path = eng.data_dir / "logs" / f"engine-{eng.instance}.log"
            wait_until(lambda: len(re.findall(r"cancels written (\d+) µs",
                                              log_path.read_text())) >= rounds, 10,
                       "the engine's kill figures in its log")
            for m in re.finditer(r"(\d+) cancels written (\d+) µs", log_path.read_text()):
                if int(m.group(1)) >= n_orders:
                    written.append(int(m.group(2)) * 1000)
    finally:
        for v in venues:
            v.close()
    pw, pa = percentiles_us(written), percentiles_us(acks)
    return {"kill_1000_last_cancel_ms": round(pw["p50"] / 1000, 2),
            "kill_1000_last_cancel_max_ms": round(max(written) / 1e6, 2),
            "kill_1000_ack_ms": round(pa["p50"] / 1000, 2),
            "kill_1000_ack_max_ms": round(max(acks) / 1e6, 2), "kill_rounds": len(written)}


# -- tick to order ---------------------------------------------------------------------------------
class _Reactor:
    """A strategy that answers every book change of its instruments with an IOC order."""

    name = "st0"
    wants_books = True

    def __init__(self) -> None:
        self.sent = 0

    def next_timer_ns(self) -> int:
        return 1 << 62

    def on_start(self, ctx, now_ns) -> None:
        pass

    def on_book(self, ctx, instruments, now_ns) -> None:
        from engine.core.intents import OrderIntent

        for i in instruments:
            sym = f"S{int(i):03d}"
            ctx.submit(OrderIntent(symbol=sym, side=1, qty=1, price=None, venue="SIMA",
                                   tif="ioc"), now_ns)
            self.sent += 1

    def on_order(self, ctx, update, order) -> None:
        pass

    def on_timer(self, ctx, now_ns) -> None:
        pass

    def on_stop(self, ctx, now_ns) -> None:
        pass


def bench_tick_to_order(n: int, with_var: bool) -> dict[str, float]:
    from engine.risk.var import VarConfig, VarService

    s = _Reactor()
    d = _desk([s])
    risk = d.risk
    if with_var:
        p = risk.portfolio
        risk.var = VarService(VarConfig(window=250, interval_ms=100, recompute_ms=100), p.n,
                              1 + p.n_strategies)
        risk.var.wait_ready(20)
    sent_at: list[int] = []
    client = d.clients[0]
    send = client.send

    def timed_send(msg_type, body, now_ns):
        if msg_type == b"D":
            sent_at.append(time.perf_counter_ns())
        return send(msg_type, body, now_ns)

    client.send = timed_send
    k = d.kernel
    rng = np.random.default_rng(3)
    samples = []
    gc.collect()
    gc.freeze()
    t_wall0 = time.perf_counter_ns()
    t_sim0 = d.t
    try:
        for j in range(n):
            i = int(rng.integers(N_INSTRUMENTS))
            sym = f"S{i:03d}"
            d.quote(sym, d.specs[sym][1] + (j % 3) * 0.01)
            before = len(sent_at)
            t0 = time.perf_counter_ns()
            d.t = max(d.t + 1, t_sim0 + (t0 - t_wall0))  # simulated clock ≥ the wall: VaR
            k.step(d.t)
            if len(sent_at) > before:
                samples.append(sent_at[before] - t0)
            for _ in range(3):  # the venue answers (fills, cancels): off the timed steps
                d.t += 400_000
                k.step(d.t)
        figures = percentiles_us(samples)
        var_ok = None
        if with_var:
            var_ok = risk._var_result is not None and not getattr(risk._var_result, "error", None)
    finally:
        k.stop(d.t)
    suffix = "_var" if with_var else ""
    out = {f"tick_to_order_p50_us{suffix}": round(figures["p50"], 1),
           f"tick_to_order_p99_us{suffix}": round(figures["p99"], 1)}
    if with_var:
        out["tick_to_order_var_figures"] = bool(var_ok)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (CI smoke)")
    ap.add_argument("--skip-kill", action="store_true", help="no engine and venue processes")
    args = ap.parse_args(argv)
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except OSError:
        pass
    f: dict[str, object] = {}
    logging.getLogger("helmdesk").setLevel(logging.ERROR)  # refusals are counted, not logged
    progress("pre-trade chain")
    f.update(bench_chain(5_000 if args.quick else 50_000))
    progress("tick to order, without VaR")
    f.update(bench_tick_to_order(1_000 if args.quick else 10_000, with_var=False))
    progress("tick to order, with the VaR helper")
    f.update(bench_tick_to_order(1_000 if args.quick else 10_000, with_var=True))
    progress("VaR recompute")
    from bench.var import recompute_in_helper

    comp = recompute_in_helper(np.random.default_rng(1), 20 if args.quick else 100)
    f["var_recompute_ms"] = round(float(np.median(comp)), 2)
    f["var_recompute_p99_ms"] = round(float(np.percentile(comp, 99)), 2)
    if not args.skip_kill:
        progress("kill with 1,000 working orders")
        f.update(bench_kill(1000, 2 if args.quick else 5))

    t = Table("risk (bench/risk.py)")
    t.section(f"pre-trade chain: {N_INSTRUMENTS} instruments, {N_STRATEGIES} strategies, "
              f"{f['pretrade_working']} working orders")
    t.add("pretrade_chain_p50_us", f"{f['pretrade_chain_p50_us']:.2f} µs")
    t.add("pretrade_chain_p99_us", f"{f['pretrade_chain_p99_us']:.2f} µs", "≤ 10 µs",
          verdict(f["pretrade_chain_p99_us"], 10, higher_is_better=False))
    t.section("tick → order (books, strategy, risk, FIX encode)")
    for suffix, what in (("", "without VaR"), ("_var", "VaR helper running")):
        t.add(f"tick_to_order_p50_us{suffix}", f"{f[f'tick_to_order_p50_us{suffix}']:.1f} µs",
              what)
        t.add(f"tick_to_order_p99_us{suffix}", f"{f[f'tick_to_order_p99_us{suffix}']:.1f} µs",
              what)
    ratio = f["tick_to_order_p99_us_var"] / max(f["tick_to_order_p99_us"], 1e-9)
    f["tick_to_order_p99_var_ratio"] = round(ratio, 2)
    t.add("p99 with VaR / without", f"{ratio:.2f}×", "≈ 1")
    t.section("VaR (helper process)")
    t.add("var_recompute_ms", f"{f['var_recompute_ms']:.2f} ms", "500 instr × 51 books")
    t.add("var_recompute_p99_ms", f"{f['var_recompute_p99_ms']:.2f} ms")
    if "kill_1000_last_cancel_ms" in f:
        t.section(f"kill with 1,000 working orders at 3 venues ({f['kill_rounds']} rounds)")
        t.add("kill_1000_last_cancel_ms", f"{f['kill_1000_last_cancel_ms']:.2f} ms", "≤ 20 ms",
              verdict(f["kill_1000_last_cancel_ms"], 20, higher_is_better=False))
        t.add("kill_1000_last_cancel_max_ms", f"{f['kill_1000_last_cancel_max_ms']:.2f} ms")
        t.add("kill_1000_ack_ms", f"{f['kill_1000_ack_ms']:.2f} ms", "desk side")
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
