"""A hostile desk against a real engine: ``scribble_run(seconds)`` (bench/hostile.py runs it).

    python -m bench._scribble [--seconds 20]

A real engine process (``python -m engine``, idle hybrid) and, beside it, one scribbler
process that attaches as a desk could:

1. for the first half, claims a command slot and writes random words into everything in it
   (the command ring's and the ack ring's control words, the records, the slot header) and
   publishes plausible records with one field wrong, ringing the command bell as it goes;
2. for the second half, writes random bytes and random 8-byte words anywhere past the
   segment header (books, kill switches, feed health, the event ring, every desk slot), as a
   hostile local process with write access to the segment could.

Meanwhile an honest desk (``EngineClient`` in this process) sends PINGs and waits for each
ack, and reads the event ring. In the second phase the honest desk's own slot is fair game,
so some of its PINGs may go unanswered: ``scribble_acks_ok`` counts those that were. If the
engine dies it is counted and started again (its reject counters are kept), so one crash does
not end the run. Returns::

    {"scribble_engine_crashes": int, "scribble_rejects": {reason: count},
     "scribble_acks_ok": int, "scribble_seconds": float}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

from bench._common import ROOT, EngineProcess, progress, stop_process, tail

U64 = (1 << 64) - 1
_HEAD, _TAIL = 0, 8  # u64 indices of a ring's control words (head line 0, tail line 1)
_ATTACH_S = 10.0


def scribble_run(seconds: float) -> dict:
    """The scenario of the module docstring; ``seconds`` split evenly between the phases."""
    from engine.ipc import EngineClient, IpcError, Verb
    from engine.ipc.layout import REJECT_REASONS

    instance = f"scrib{os.getpid()}"
    rejects = dict.fromkeys(REJECT_REASONS, 0)
    crashes = 0
    acks_ok = 0
    t0 = time.monotonic()
    engine = EngineProcess(instance, idle="hybrid")
    engine.start()
    client: EngineClient | None = None
    scribbler: subprocess.Popen | None = None
    try:
        client = EngineClient(instance, user="honest", workstation="bench")
        for phase, span in (("slot", seconds / 2), ("segment", seconds / 2)):
            progress(f"scribbling: {phase} phase, {span:g} s")
            scribbler = _start_scribbler(engine, phase, span, seed=len(phase))
            ok0, failed = acks_ok, 0
            while scribbler.poll() is None:
                if engine.proc.poll() is not None:  # dead: count it, keep its counters, restart
                    crashes += 1
                    progress(f"engine died (exit {engine.proc.returncode}):\n"
                             f"{tail(engine.stderr_path)}")
                    _add(rejects, client.rejects())
                    client.close()
                    engine.__exit__(None, None, None)  # its leftovers removed
                    engine = EngineProcess(instance, idle="hybrid")
                    engine.start()
                    client = EngineClient(instance, user="honest", workstation="bench")
                    continue
                try:
                    ack = client.request(Verb.PING, timeout=1.0)
                    acks_ok += ack.accepted and ack.reason.startswith("pong")
                except IpcError:
                    failed += 1  # the honest slot was scribbled on (phase 2): try again
                client.poll_events()
            progress(f"{phase} phase: {acks_ok - ok0:,} PINGs answered, {failed:,} not, "
                     f"honest desk's slot reset {client.resets} times so far")
            if scribbler.returncode != 0:
                raise RuntimeError(f"the scribbler failed ({scribbler.returncode})")
        _add(rejects, client.rejects())
        if engine.proc.poll() is not None or stop_process(engine.proc) != 0:
            crashes += 1  # died at the very end, or could not stop cleanly
    finally:
        if scribbler is not None and scribbler.poll() is None:
            stop_process(scribbler)
        if client is not None:
            client.close()
        engine.__exit__(None, None, None)
    return {
        "scribble_engine_crashes": crashes,
        "scribble_rejects": rejects,
        "scribble_acks_ok": acks_ok,
        "scribble_seconds": round(time.monotonic() - t0, 2),
    }


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


def _start_scribbler(engine: EngineProcess, phase: str, seconds: float,
                     seed: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench._scribble", "--child", phase, "--instance",
         engine.instance, "--seconds", str(seconds), "--seed", str(seed)],
        cwd=ROOT, env=engine.env(), stdin=subprocess.DEVNULL,
    )


# -- the scribbler (``python -m bench._scribble --child slot|segment``) ---------------------------
def _attach(instance: str, slot: bool, deadline: float):
    from engine.ipc import EngineClient, IpcError

    while True:
        try:
            return EngineClient(instance, user="vandal", commands=slot)
        except IpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # the engine is being restarted


def child_scribble(instance: str, phase: str, seconds: float, seed: int) -> int:
    """Scribble until ``seconds`` are up; re-attach if the engine is replaced."""
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        c = _attach(instance, phase == "slot", time.monotonic() + _ATTACH_S)
        try:
            scribble, views = (_slot_scribbler if phase == "slot" else _segment_scribbler)(c, rng)
            n = 0
            while time.monotonic() < end:
                scribble()
                n += 1
                if n % 4096 == 0 and c.replaced():
                    break
        finally:
            for v in views:  # memoryviews, then the segment they view
                (v.release if hasattr(v, "release") else v.close)()
            c.close()
    return 0


def _slot_scribbler(c, rng: random.Random):
    """One random write into the client's own slot a call."""
    from engine.ipc.layout import COMMAND_STRUCT, RING_CONTROL, command_seal

    lay, buf = c.layout, c.slot_seg.buf  # the desk's own slot object: all it can write
    slot_off, cmd_off, ack_off = 0, lay.slot_cmd_off, lay.slot_ack_off
    cmd = c._cmd._ctl
    ack = c._ack._ctl
    spans = ((cmd_off + RING_CONTROL, ack_off), (ack_off + RING_CONTROL,
                                                 ack_off + lay.ack_ring_size))
    cap = lay.cmd_capacity

    def scribble() -> None:
        word = rng.choice((rng.getrandbits(64), U64, 1 << 63, 0, cmd[_HEAD] + rng.randint(-3, 70),
                           ack[_TAIL] + rng.randint(-70, 3))) & U64
        what = rng.randrange(6)
        if what == 0:
            cmd[_TAIL] = word
        elif what == 1:
            ack[_HEAD] = word
        elif what == 2:
            cmd[rng.choice((_HEAD, _TAIL))] = word
            ack[rng.choice((_HEAD, _TAIL))] = word ^ 1
        elif what == 3:
            a, b = spans[rng.random() < 0.3]
            at = rng.randrange(a, b - 16)
            buf[at : at + 16] = rng.randbytes(16)
        elif what == 4:
            at = slot_off + rng.randrange(0, 56)
            buf[at : at + 8] = rng.randbytes(8)
        else:  # a plausible record with something wrong, sealed and published
            tail = cmd[_HEAD]
            COMMAND_STRUCT.pack_into(
                buf, cmd_off + RING_CONTROL + (tail % cap) * COMMAND_STRUCT.size,
                rng.getrandbits(64), 0, rng.randrange(0, 9), rng.randrange(0, 3),
                rng.randrange(-2, 5), rng.choice((1.0, math.nan, math.inf, 1e300, -1.0)),
                rng.choice((0.0, -math.inf)), rng.choice((b"vandal", b"\xff")), b"ws",
                rng.randrange(0, 5), b"", command_seal(tail),
                rng.choice((b"ok", b"\xc3", b"SIM buy day")))
            cmd[_TAIL] = (tail + 1) & U64
        c._ring_bell()

    return scribble, ()


def _segment_scribbler(c, rng: random.Random):
    """One random write anywhere past the header a call: bytes, or an aligned word. Desks map
    the segment read-only: this is a process of the engine's own user opening it by name."""
    from engine.ipc.layout import HEADER_SIZE
    from engine.ipc.segment import Segment

    seg = Segment.attach(c.seg.name)
    buf = seg.buf
    size = seg.size
    words = buf[HEADER_SIZE:size].cast("Q")
    n_words = len(words)

    def scribble() -> None:
        if rng.random() < 0.5:
            n = rng.randint(1, 64)
            at = rng.randrange(HEADER_SIZE, size - n)
            buf[at : at + n] = rng.randbytes(n)
        else:
            words[rng.randrange(n_words)] = rng.choice(
                (rng.getrandbits(64), U64, 1 << 63, 0, rng.randrange(0, 1 << 20)))

    return scribble, (words, seg)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._scribble", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--child", choices=("slot", "segment"), help=argparse.SUPPRESS)
    p.add_argument("--instance", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child_scribble(a.instance, a.child, a.seconds, a.seed)
    print(json.dumps(scribble_run(a.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
