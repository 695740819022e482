"""FIX codec figures: our encoder and decoder against simplefix on the same messages.

    python -m bench._fixcodec [--quick]

All in this process, one thread, no I/O: each figure is messages per second over a timed loop
(best of a few rounds, after a warm-up round, garbage collector off while timing), with the
loop's own cost included. Decode loops cycle through 1024 different messages of each kind
(ids, quantities, prices and timestamps vary; lengths vary by a few bytes), fed one message
per ``feed`` unless said otherwise; simplefix parses the very same bytes in the same run.

- ``fix_nos_encode_per_s``: ``encode_new_order_single`` of a whole NewOrderSingle — header
  8/9/35/49/56/34/52, body 11/1/55/54/60/38/40/44/59, trailer 10 — with SendingTime and
  TransactTime formatted per message from the live clock's ns (``time.time_ns()``), a new
  ClOrdID and MsgSeqNum each time, OrderQty an int, Price already bytes (as an OMS holding
  tick-rounded prices would pass it). ``fix_generic_nos_encode_per_s``: the same fields
  through ``encode``. ``simplefix_nos_encode_per_s``: simplefix building and encoding the
  same fields (``append_utc_timestamp`` for 52 and 60).
- ``fix_er_decode_per_s``: bytes of an ExecutionReport (a partial fill, 22 fields) →
  ``FixDecoder.feed`` + ``next`` (framing, BodyLength, CheckSum, field syntax, required header
  fields, MsgSeqNum) → the OMS's typed reads: ClOrdID 11, ExecID 17, ExecType 150 and
  OrdStatus 39 as bytes, CumQty 14, LeavesQty 151, LastPx 31 and LastQty 32 as floats.
  ``fix_er_decode_validate_per_s``: the same plus ``engine.fix.dictionary.validate`` (the
  FIX 4.4 data dictionary check every inbound message gets in the session), and its ratio to
  simplefix, ``fix_er_decode_validate_vs_simplefix_ratio``.
  ``fix_er_stream_decode_per_s``: the same with 32 messages per ``feed``, as a busy socket
  read delivers them. ``simplefix_plain_er_decode_per_s``: ``FixParser.append_buffer`` +
  ``get_message``, no validation and no field reads (its best case).
- ``fix_md_incremental_decode_per_s``: a MarketDataIncrementalRefresh (35=X) with MDReqID 262
  and NoMDEntries=4, each entry 279/269/55/270/271/1023 (Symbol in every entry: FIX 4.4's
  MDIncGrp carries the Instrument inside the group) → decode → ``groups(268)`` → per entry
  the action, type and symbol as bytes, price and size as floats, the level as an int.
  ``simplefix_plain_md_decode_per_s``: simplefix parsing the same bytes.

Targets (set by the issue): encode ≥ 300,000/s, ExecutionReport decode ≥ 150,000/s,
MarketDataIncrementalRefresh decode ≥ 150,000/s. A missed target prints MISS.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import sys
import time
from typing import Callable

import simplefix

from bench._common import Table, emit_json, fmt_rate, progress, verdict
from engine.fix import FixDecoder, FixMessage, encode, encode_new_order_single, utc_timestamp
from engine.fix.dictionary import validator

TARGET_NOS_ENCODE = 300_000.0
TARGET_ER_DECODE = 150_000.0
TARGET_MD_DECODE = 150_000.0

SENDER, TARGET = b"HELM", b"SIMA"


def _rate(loop: Callable[[int], None], n: int, rounds: int) -> float:
    """Messages per second: best of ``rounds`` timed runs of ``loop(n)`` after one warm-up."""
    loop(max(1, n // 10))
    best = float("inf")
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            loop(n)
            best = min(best, time.perf_counter() - t0)
    finally:
        if gc_was:
            gc.enable()
    return n / best


# -- messages ----------------------------------------------------------------------------------
N_DISTINCT = 1024  # the loops cycle through this many different messages of each kind


def execution_report(i: int = 0) -> bytes:
    """A partial fill as a venue sends it; ``i`` varies the ids, quantities and prices."""
    ts = time.time_ns() + i * 1_000_000
    qty = 100 + i % 900
    last = 1 + i % qty
    px = b"%.2f" % (190 + (i % 400) / 100)
    return encode(b"8", [
        (37, b"SIMA-%06d" % i), (11, b"C%08d" % i), (17, b"E%09d" % i), (150, b"F"),
        (39, b"1"), (55, b"AAPL"), (54, b"1"), (38, qty), (44, px), (32, last), (31, px),
        (151, qty - last), (14, last), (6, px), (60, utc_timestamp(ts)),
    ], sender=TARGET, target=SENDER, seq=1 + i, sending_time_ns=ts)


def md_incremental(i: int = 0) -> bytes:
    """Four book changes: ``i`` varies the prices, sizes and levels."""
    body: list[tuple[int, bytes | int]] = [(262, b"MD1"), (268, 4)]
    for k, (action, side) in enumerate(((b"1", b"0"), (b"1", b"1"), (b"0", b"0"),
                                        (b"2", b"1"))):
        px = b"%.2f" % (190 + ((i + 7 * k) % 400) / 100)
        body += [(279, action), (269, side), (55, b"AAPL"), (270, px),
                 (271, 100 * (1 + (i + k) % 50)), (1023, 1 + (i + k) % 10)]
    ts = time.time_ns() + i * 1_000_000
    return encode(b"X", body, sender=TARGET, target=SENDER, seq=1 + i, sending_time_ns=ts)


# -- loops -------------------------------------------------------------------------------------
_CL_IDS = [b"C%08d" % i for i in range(4096)]


def nos_ours(n: int) -> None:
    now = time.time_ns
    ids = _CL_IDS
    for i in range(n):
        ts = now()
        encode_new_order_single(sender=SENDER, target=TARGET, seq=i + 1, sending_time_ns=ts,
                                cl_ord_id=ids[i & 4095], account=b"ACC1", symbol=b"AAPL",
                                side=b"1", transact_time_ns=ts, order_qty=100, ord_type=b"2",
                                price=b"190.25", time_in_force=b"0")


def nos_generic(n: int) -> None:
    now = time.time_ns
    ids = _CL_IDS
    for i in range(n):
        ts = now()
        encode(b"D", [(11, ids[i & 4095]), (1, b"ACC1"), (55, b"AAPL"), (54, b"1"),
                      (60, utc_timestamp(ts)), (38, 100), (40, b"2"), (44, b"190.25"),
                      (59, b"0")],
               sender=SENDER, target=TARGET, seq=i + 1, sending_time_ns=ts)


def nos_simplefix(n: int) -> None:
    now = time.time
    ids = _CL_IDS
    for i in range(n):
        ts = now()
        m = simplefix.FixMessage()
        m.append_pair(8, b"FIX.4.4")
        m.append_pair(35, b"D")
        m.append_pair(49, SENDER)
        m.append_pair(56, TARGET)
        m.append_pair(34, i + 1)
        m.append_utc_timestamp(52, ts, precision=3)
        m.append_pair(11, ids[i & 4095])
        m.append_pair(1, b"ACC1")
        m.append_pair(55, b"AAPL")
        m.append_pair(54, b"1")
        m.append_utc_timestamp(60, ts, precision=3)
        m.append_pair(38, 100)
        m.append_pair(40, b"2")
        m.append_pair(44, b"190.25")
        m.append_pair(59, b"0")
        m.encode()


def er_ours(raws: list[bytes], check: Callable | None = None) -> Callable[[int], None]:
    """Decode and read eight fields; with ``check``, also run it on each message."""
    def loop(n: int) -> None:
        dec = FixDecoder()
        feed = dec.feed
        nxt = dec.next
        for i in range(n):
            feed(raws[i & 1023])
            m = nxt()
            if check is not None and check(m) is not None:
                raise AssertionError(f"{m!r} is not valid FIX 4.4: {check(m)}")
            get = m.get
            get_float = m.get_float
            get(11), get(17), get(150), get(39)
            get_float(14), get_float(151), get_float(31), get_float(32)
    return loop


def er_validated(raws: list[bytes]) -> Callable[[int], None]:
    """``er_ours`` plus the FIX 4.4 dictionary check the session runs on every inbound
    message (``engine.fix.dictionary.validator``): the codec's decode as the session pays it."""
    return er_ours(raws, validator())  # the options a session has by default


def er_stream(raws: list[bytes], per_read: int) -> Callable[[int], None]:
    chunks = [b"".join(raws[k:k + per_read]) for k in range(0, len(raws), per_read)]

    def loop(n: int) -> None:
        dec = FixDecoder()
        nxt = dec.next
        for i in range(n // per_read):
            dec.feed(chunks[i % len(chunks)])
            while (m := nxt()) is not None:
                get = m.get
                get_float = m.get_float
                get(11), get(17), get(150), get(39)
                get_float(14), get_float(151), get_float(31), get_float(32)
    return loop


def md_ours(raws: list[bytes]) -> Callable[[int], None]:
    def loop(n: int) -> None:
        dec = FixDecoder()
        feed = dec.feed
        nxt = dec.next
        for i in range(n):
            feed(raws[i & 1023])
            m = nxt()
            for e in m.groups(268):
                e[279], e[269], e[55], float(e[270]), float(e[271]), int(e[1023])
    return loop


def plain_simplefix(raws: list[bytes]) -> Callable[[int], None]:
    def loop(n: int) -> None:
        p = simplefix.FixParser()
        for i in range(n):
            p.append_buffer(raws[i & 1023])
            p.get_message()
    return loop


def check(raw: bytes) -> FixMessage:
    dec = FixDecoder()
    dec.feed(raw)
    m = dec.next()
    assert isinstance(m, FixMessage), m
    p = simplefix.FixParser()
    p.append_buffer(raw)
    sm = p.get_message()
    assert [(int(t), v) for t, v in sm.pairs] == m.fields
    return m


# -- main --------------------------------------------------------------------------------------
def run(quick: bool) -> dict[str, object]:
    n_ours = 30_000 if quick else 300_000
    n_sf = 3_000 if quick else 30_000
    rounds = 3 if quick else 5
    ers = [execution_report(i) for i in range(N_DISTINCT)]
    mds = [md_incremental(i) for i in range(N_DISTINCT)]
    for raw in ers + mds:
        check(raw)
    assert all(len(check(raw).groups(268)) == 4 for raw in mds)
    ts = time.time_ns()
    ours = encode_new_order_single(sender=SENDER, target=TARGET, seq=7, sending_time_ns=ts,
                                   cl_ord_id=b"C1", account=b"ACC1", symbol=b"AAPL", side=b"1",
                                   order_qty=100, ord_type=b"2", price=b"190.25",
                                   time_in_force=b"0")
    generic = encode(b"D", [(11, b"C1"), (1, b"ACC1"), (55, b"AAPL"), (54, b"1"),
                            (60, utc_timestamp(ts)), (38, 100), (40, b"2"), (44, b"190.25"),
                            (59, b"0")], sender=SENDER, target=TARGET, seq=7, sending_time_ns=ts)
    assert ours == generic, (ours, generic)

    f: dict[str, object] = {}
    progress("NewOrderSingle encode")
    f["fix_nos_encode_per_s"] = _rate(nos_ours, n_ours, rounds)
    f["fix_generic_nos_encode_per_s"] = _rate(nos_generic, n_ours, rounds)
    f["simplefix_nos_encode_per_s"] = _rate(nos_simplefix, n_sf, rounds)
    progress("ExecutionReport decode")
    f["fix_er_decode_per_s"] = _rate(er_ours(ers), n_ours, rounds)
    f["fix_er_decode_validate_per_s"] = _rate(er_validated(ers), n_ours, rounds)
    f["fix_er_stream_decode_per_s"] = _rate(er_stream(ers, 32), n_ours, rounds)
    f["simplefix_plain_er_decode_per_s"] = _rate(plain_simplefix(ers), n_sf, rounds)
    progress("MarketDataIncrementalRefresh decode")
    f["fix_md_incremental_decode_per_s"] = _rate(md_ours(mds), n_ours, rounds)
    f["simplefix_plain_md_decode_per_s"] = _rate(plain_simplefix(mds), n_sf, rounds)
    f["fix_nos_encode_vs_simplefix_ratio"] = (f["fix_nos_encode_per_s"]
                                              / f["simplefix_nos_encode_per_s"])
    f["fix_er_decode_vs_simplefix_ratio"] = (f["fix_er_decode_per_s"]
                                             / f["simplefix_plain_er_decode_per_s"])
    f["fix_er_decode_validate_vs_simplefix_ratio"] = (f["fix_er_decode_validate_per_s"]
                                                      / f["simplefix_plain_er_decode_per_s"])
    f["fix_md_decode_vs_simplefix_ratio"] = (f["fix_md_incremental_decode_per_s"]
                                             / f["simplefix_plain_md_decode_per_s"])
    f["fix_er_bytes"] = round(sum(map(len, ers)) / len(ers))  # mean size
    f["fix_md_bytes"] = round(sum(map(len, mds)) / len(mds))
    f["fix_nos_bytes"] = len(ours)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in f.items()}


def render(f: dict[str, object]) -> str:
    t = Table(f"FIX 4.4 codec (Python {sys.version.split()[0]}, simplefix "
              f"{importlib.metadata.version('simplefix')}, one thread)")
    t.section(f"NewOrderSingle encode ({f['fix_nos_bytes']} bytes, clock formatted per message)")
    t.add("ours: encode_new_order_single", fmt_rate(f["fix_nos_encode_per_s"]),
          f"≥ {TARGET_NOS_ENCODE:,.0f} /s",
          verdict(f["fix_nos_encode_per_s"], TARGET_NOS_ENCODE, higher_is_better=True))
    t.add("ours: generic encode", fmt_rate(f["fix_generic_nos_encode_per_s"]))
    t.add("simplefix", fmt_rate(f["simplefix_nos_encode_per_s"]))
    t.add("ours / simplefix", f"{f['fix_nos_encode_vs_simplefix_ratio']:.1f} x")
    t.section(f"ExecutionReport decode ({f['fix_er_bytes']} bytes, validated + 8 typed reads)")
    t.add("ours: FixDecoder", fmt_rate(f["fix_er_decode_per_s"]),
          f"≥ {TARGET_ER_DECODE:,.0f} /s",
          verdict(f["fix_er_decode_per_s"], TARGET_ER_DECODE, higher_is_better=True))
    t.add("ours: 32 messages per feed", fmt_rate(f["fix_er_stream_decode_per_s"]))
    t.add("simplefix parse only", fmt_rate(f["simplefix_plain_er_decode_per_s"]))
    t.add("ours / simplefix", f"{f['fix_er_decode_vs_simplefix_ratio']:.1f} x")
    t.add("ours + FIX 4.4 dictionary check", fmt_rate(f["fix_er_decode_validate_per_s"]))
    t.add("ours + dictionary / simplefix",
          f"{f['fix_er_decode_validate_vs_simplefix_ratio']:.1f} x", "≥ 12 x",
          "ok" if f["fix_er_decode_validate_vs_simplefix_ratio"] >= 12 else "MISS")
    t.section(f"MarketDataIncrementalRefresh decode ({f['fix_md_bytes']} bytes, 4 entries read)")
    t.add("ours: FixDecoder + groups", fmt_rate(f["fix_md_incremental_decode_per_s"]),
          f"≥ {TARGET_MD_DECODE:,.0f} /s",
          verdict(f["fix_md_incremental_decode_per_s"], TARGET_MD_DECODE, higher_is_better=True))
    t.add("simplefix parse only", fmt_rate(f["simplefix_plain_md_decode_per_s"]))
    t.add("ours / simplefix", f"{f['fix_md_decode_vs_simplefix_ratio']:.1f} x")
    return t.render()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._fixcodec",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts, fewer rounds")
    args = p.parse_args(argv)
    figures = run(args.quick)
    print(render(figures))
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
