"""Execution figures: FIX codec, the session path, the venue's matching engine.

    python -m bench.execution [--quick]

Issue 4's targets: encode NewOrderSingle ≥ 300,000/s, decode ExecutionReport ≥ 150,000/s
(validated), matching ≥ 500,000 orders/s, order round trip over loopback p50 ≤ 150 µs /
p99 ≤ 500 µs. The order round trip needs the engine's OMS and the venue process, which are not
built yet: its row says so instead of printing a number.

``fix_er_session_decode_per_s`` is the fuller path: ExecutionReport bytes through
``FixSession.receive_data`` (framing, checksum, header checks including SendingTime parsing,
sequence handling) to the application event, then the OMS's typed reads.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import _fixcodec, _matching
from bench._common import Table, emit_json, fmt_rate, progress, verdict
from engine.fix.codec import encode
from engine.fix.session import AppMessage, FixSession, SessionConfig

TARGET_NOS = 300_000
TARGET_ER = 150_000
TARGET_MATCH = 500_000
SENDER, TARGET = b"VENUE", b"HELM"


def session_er_rate(n: int, rounds: int) -> float:
    """ExecutionReports/s through a logged-on initiator session, typed reads included."""
    now = time.time_ns()
    best = 0.0
    for _ in range(rounds):
        s = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True))
        s.connect(now)
        s.receive_data(encode(b"A", [(98, b"0"), (108, b"30")], sender=SENDER, target=TARGET,
                              seq=1, sending_time_ns=now), now)
        msgs = [
            encode(b"8", [(37, b"V%d" % i), (11, b"C%d" % i), (17, b"E%d" % i), (150, b"F"),
                          (39, b"1"), (55, b"AAPL"), (54, b"1"), (38, 500), (32, 100),
                          (31, b"190.25"), (151, 400), (14, 100), (6, b"190.25")],
                   sender=SENDER, target=TARGET, seq=2 + i, sending_time_ns=now)
            for i in range(n)
        ]
        t0 = time.perf_counter()
        got = 0
        for raw in msgs:
            for ev in s.receive_data(raw, now):
                if type(ev) is AppMessage:
                    m = ev.message
                    m.get(11), m.get(17), m.get(150), m.get(39)
                    m.get_int(14), m.get_int(151), m.get_float(31), m.get_int(32)
                    got += 1
        dt = time.perf_counter() - t0
        assert got == n, f"only {got} of {n} ExecutionReports came through the session"
        best = max(best, n / dt)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.execution",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    args = p.parse_args(argv)
    progress("FIX codec")
    f = dict(_fixcodec.run(args.quick))
    progress("ExecutionReports through the session")
    f["fix_er_session_decode_per_s"] = round(
        session_er_rate(5_000 if args.quick else 50_000, 2 if args.quick else 3), 2)
    progress("matching engine")
    f.update({k: v for k, v in _matching.run(args.quick).items() if not k.startswith("_")})

    t = Table(f"Helmdesk execution bench ({'quick' if args.quick else 'full'}), "
              f"Python {sys.version.split()[0]}")
    t.section("FIX 4.4 encode / decode (simplefix measured in the same run)")
    t.add("NewOrderSingle encode, ours", fmt_rate(f["fix_nos_encode_per_s"]),
          f"≥ {TARGET_NOS:,} /s", verdict(f["fix_nos_encode_per_s"], TARGET_NOS, higher_is_better=True))
    t.add("NewOrderSingle encode, simplefix", fmt_rate(f["simplefix_nos_encode_per_s"]))
    t.add("ExecutionReport decode, ours (validated + typed reads)", fmt_rate(f["fix_er_decode_per_s"]),
          f"≥ {TARGET_ER:,} /s", verdict(f["fix_er_decode_per_s"], TARGET_ER, higher_is_better=True))
    t.add("ExecutionReport through FixSession → event", fmt_rate(f["fix_er_session_decode_per_s"]),
          f"≥ {TARGET_ER:,} /s",
          verdict(f["fix_er_session_decode_per_s"], TARGET_ER, higher_is_better=True))
    t.add("ExecutionReport decode, simplefix", fmt_rate(f["simplefix_plain_er_decode_per_s"]))
    t.add("MarketDataIncrementalRefresh (4 entries), ours",
          fmt_rate(f["fix_md_incremental_decode_per_s"]))
    t.section("matching engine (one instrument, seeded realistic flow)")
    t.add("requests/s", fmt_rate(f["matching_orders_per_s"]), f"≥ {TARGET_MATCH:,} /s",
          verdict(f["matching_orders_per_s"], TARGET_MATCH, higher_is_better=True))
    t.add("per request p50 / p99",
          f"{f['matching_order_p50_ns']:,} / {f['matching_order_p99_ns']:,} ns")
    t.section("order round trip engine → venue → ExecutionReport (loopback TCP)")
    t.add("order_rtt_p50_us / order_rtt_p99_us", "not built yet", "≤ 150 / ≤ 500 µs", "MISSING")
    print(t.render())
    emit_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
