"""Crash recovery under load: ``kill -9`` the engine again and again while it trades.

    python -m bench.soak_recovery [--restarts N] [--quick]

A simulated venue process with other participants trading (background flow) and a drop copy;
an engine process trading on it over FIX (market orders from this script through the command
ring, both sides, a few a second to a few dozen); after a random 0.2–1.2 s of that the engine
gets SIGKILL at whatever it was doing, and is started again on the same data directory (its
database, its kill-switch file, its FIX sequence numbers). ``--restarts`` times (100 by
default), then one clean start that settles the orders left in doubt, and a clean stop.

The witness is a drop-copy session this script keeps open to the venue the whole time (a
second drop-copy CompID): every execution the venue sent the engine's session, whoever was
or was not alive to read it. At the end:

- ``soak_lost_executions``: executions the venue reported that the database does not
  account for (by ExecID, or absorbed by the one ``reconciled-`` execution the engine books
  for fills it missed while its order was in doubt);
- ``soak_doubled_executions``: quantity the database holds beyond what the venue reported,
  counted in executions;
- ``soak_position_mismatches``: instruments whose position in the database (the writer's
  positions table) differs from the drop copy's, plus those whose position in the restarted
  engine's own books (``helmdesk ctl positions``' table) differs;
- ``soak_restarts``: restarts done; ``soak_orders``: orders accepted; ``soak_fills``: the
  venue's fills for the engine; ``soak_restart_s_p50`` / ``_max``: SIGKILL → the restarted
  engine logged on to the venue again.

Any of the three counts above not 0 is a defect, printed as MISS.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._common import Table, emit_json, progress, stop_process, wait_until

VENUE = "SOAKV"
SYMBOLS = (("AAPL", 0.01, 190.0), ("MSFT", 0.01, 420.0))

VENUE_PROFILE = f"""
[venue]
name = "{VENUE}"
counterparties = ["HELM"]
drop_copy = ["HELMDC", "WITNESS"]
background_hz = 40
seed = 3
reference_seed = 7

""" + "".join(f'[[instruments]]\nsymbol = "{s}"\ntick = {t}\nprice = {p}\n\n'
              for s, t, p in SYMBOLS)


def engine_profile(instance: str, port: int) -> str:
    inst = "".join(f'[[instruments]]\nsymbol = "{s}"\ntick = {t}\nprice = {p}\n\n'
                   for s, t, p in SYMBOLS)
    return f"""
[engine]
instance = "{instance}"
idle = "hybrid"

[desk]
name = "soak"

[feed]
kind = "venues"
silence_ms = 5000

{inst}
[users]
"*" = "trader,risk_manager"

[[venues]]
name = "{VENUE}"
host = "127.0.0.1"
port = {port}
sender = "HELM"
target = "{VENUE}"
heartbeat_s = 5
drop_copy_sender = "HELMDC"

[limits]
max_orders_per_s = 1000
max_position = 1000000
max_gross_position = 1000000
duplicate_window_ms = 0
stale_data = "none"
venue_down = "none"
"""


class Venue:
    def __init__(self, root: Path) -> None:
        self.dir = root / "venue"
        self.dir.mkdir()
        prof = self.dir / "venue.toml"
        prof.write_text(VENUE_PROFILE)
        env = dict(os.environ, HELMDESK_DATA_DIR=str(self.dir))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.venue", "--profile", str(prof), "--port", "0"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        self.port = 0
        while time.monotonic() < deadline and not self.port:
            line = self.proc.stderr.readline()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line or "")
            if m:
                self.port = int(m.group(1))
            elif not line:
                break
        if not self.port:
            stop_process(self.proc)
            raise RuntimeError("the venue did not say which port it listens on")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for _ in self.proc.stderr:  # keep its stderr pipe from filling up
            pass

    def close(self) -> None:
        stop_process(self.proc)


class Witness:
    """A drop-copy session of our own, open across every engine restart."""

    def __init__(self, port: int) -> None:
        from engine.core.profile import VenueLinkConfig
        from engine.execution.dropcopy import DropCopyClient

        cfg = VenueLinkConfig(name=VENUE, kind="fix", host="127.0.0.1", port=port,
                              sender="HELM", target=VENUE, heartbeat_s=5,
                              drop_copy_sender="WITNESS", drop_copy_grace_ms=3_600_000)

        class _Order:
            up = True

        self.client = DropCopyClient.for_venue(cfg, _Order())
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.client.poll(time.time_ns())
            time.sleep(0.002)

    def fills(self) -> dict[str, tuple[str, str, int, int]]:
        """ExecID -> (ClOrdID, symbol, signed qty, side) of every fill of ours it saw."""
        with self._lock:
            return {x: (e.cl_ord_id, e.symbol, e.qty if e.side == 1 else -e.qty, e.side)
                    for x, e in self.client.reconciler._dc.items()}

    @property
    def up(self) -> bool:
        return self.client.up

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)


class Engine:
    """The engine process, started again and again on one data directory."""

    def __init__(self, root: Path, instance: str, port: int) -> None:
        self.instance = instance
        self.data = root / "data"
        self.data.mkdir(mode=0o700)
        self.profile = root / "engine.toml"
        self.profile.write_text(engine_profile(instance, port))
        self.env = dict(os.environ, HELMDESK_DATA_DIR=str(self.data))
        self.proc: subprocess.Popen | None = None
        self.err = root / "engine.stderr"

    def start(self) -> None:
        with open(self.err, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "--profile", str(self.profile)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)

    def client(self, timeout: float = 30.0):
        from engine.ipc import EngineClient, IpcError

        os.environ["HELMDESK_DATA_DIR"] = str(self.data)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the engine exited {self.proc.returncode}: "
                                   f"{self.err.read_text()[-2000:]}")
            try:
                c = EngineClient(self.instance)
                if c.status().state == "running":
                    return c
                c.close()
            except IpcError as e:
                last = str(e)
            time.sleep(0.05)
        raise RuntimeError(f"the engine did not come up in {timeout:g} s: {last}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        return stop_process(self.proc, grace=20)


REFUSED: dict[str, int] = {}  #: why orders were refused (the engine's reasons, first words)


def _send_orders(c, aapl_msft: list[int], stop: threading.Event, rng: random.Random) -> int:
    """Market orders, both sides, until ``stop`` or the engine is gone; how many accepted."""
    from engine.ipc import IpcError, Scope, Verb
    from engine.ipc.commands import order_text

    n = 0
    while not stop.is_set():
        i = rng.choice(aapl_msft)
        try:
            ack = c.request(Verb.ORDER, Scope.INSTRUMENT, i, arg0=rng.randint(1, 5), arg1=0.0,
                            text=order_text(VENUE, rng.choice(("buy", "sell")), "ioc"),
                            timeout=0.5)
        except IpcError:
            return n
        n += ack.accepted
        if not ack.accepted:
            why = " ".join(ack.reason.split()[:6])
            REFUSED[why] = REFUSED.get(why, 0) + 1
        time.sleep(rng.uniform(0.0, 0.02))
    return n


def _db_fills(path: Path) -> tuple[dict, dict[str, int]]:
    """ExecID -> (ClOrdID, symbol, signed qty) and symbol -> position, from the database."""
    con = sqlite3.connect(path)
    try:
        fills = {x: (cl, sym, q if side == 1 else -q)
                 for x, cl, sym, side, q in con.execute(
                     "select exec_id, cl_ord_id, symbol, side, qty from executions")}
        pos = dict(con.execute("select symbol, qty from positions"))
    finally:
        con.close()
    return fills, pos


def compare(witness: dict, db: dict) -> tuple[int, int]:
    """(lost executions, doubled executions): witness fills the database does not account
    for, and database fills beyond the witness's (module docstring)."""
    reconciled: dict[str, int] = {}  # ClOrdID -> quantity booked as "reconciled-"
    doubled = 0
    for x, (cl, _sym, q) in db.items():
        if x.startswith("reconciled-"):
            reconciled[cl] = reconciled.get(cl, 0) + abs(q)
        elif x not in witness:
            doubled += 1  # the venue never sent it
    lost = 0
    missing: dict[str, list[int]] = {}  # ClOrdID -> witness fills the database lacks by id
    for x, (cl, _sym, q, _side) in witness.items():
        if x not in db:
            missing.setdefault(cl, []).append(abs(q))
    for cl in set(missing) | set(reconciled):
        have = reconciled.get(cl, 0)
        for q in sorted(missing.get(cl, ())):
            if have >= q:
                have -= q  # booked as part of the order's reconciled execution
            else:
                lost += 1
        if have > 0:
            doubled += 1  # reconciled more than the venue reported
    return lost, doubled


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--restarts", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="10 restarts")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    restarts = 10 if args.quick else args.restarts
    rng = random.Random(args.seed)
    tmp = tempfile.TemporaryDirectory(prefix="helmdesk-soak-")
    root = Path(tmp.name)
    venue = Venue(root)
    witness = Witness(venue.port)
    eng = Engine(root, f"soak{os.getpid()}", venue.port)
    orders = 0
    restart_s = []
    done = 0
    killed_at = 0.0
    try:
        wait_until(lambda: witness.up, 20, "the witness drop copy to log on")
        eng.start()
        for k in range(restarts + 1):
            c = eng.client()
            try:
                wait_until(lambda: c.venues() and c.venues()[0][1], 30,
                           "the engine to log on to the venue")
                if k:
                    restart_s.append(time.monotonic() - killed_at)
                if k == restarts:
                    break
                progress(f"restart {k + 1}/{restarts}")
                symbols = [i.symbol for i in c.instruments]
                stop = threading.Event()
                sent = [0]
                t = threading.Thread(target=lambda: sent.__setitem__(
                    0, _send_orders(c, [symbols.index(s) for s, _, _ in SYMBOLS], stop, rng)))
                t.start()
                time.sleep(rng.uniform(0.2, 1.2))
                eng.kill9()  # in the middle of whatever it was doing
                killed_at = time.monotonic()
                stop.set()
                t.join(10)
                orders += sent[0]
            finally:
                c.close()
            done += 1
            eng.start()
        progress("last start: letting the orders in doubt settle")
        time.sleep(5)  # status answers, reconciled fills, the witness's copies
        c = eng.client()
        try:
            engine_pos = {}
            for _ in range(100):
                rows = c.read_risk("positions")
                if rows is not None:
                    names = [i.symbol for i in c.instruments]
                    engine_pos = {names[int(r["instrument"])]: int(r["qty"]) for r in rows
                                  if r["book"] == b"desk" and int(r["instrument"]) >= 0}
                    break
        finally:
            c.close()
        rc = eng.stop()
        if rc != 0:
            progress(f"the engine stopped with {rc}")
        time.sleep(1)
        w = witness.fills()
    finally:
        witness.close()
        if eng.proc is not None and eng.proc.poll() is None:
            eng.stop()
        venue.close()
    db, db_pos = _db_fills(eng.data / f"engine-{eng.instance}.db")
    lost, doubled = compare(w, db)
    w_pos: dict[str, int] = {}
    for _cl, sym, q, _side in w.values():
        w_pos[sym] = w_pos.get(sym, 0) + q
    syms = [s for s, _, _ in SYMBOLS]
    mismatch = [s for s in syms if db_pos.get(s, 0) != w_pos.get(s, 0)]
    mismatch += [f"{s} (engine)" for s in syms if engine_pos.get(s, 0) != w_pos.get(s, 0)]
    restart_s.sort()
    f = {"soak_restarts": done, "soak_orders": orders, "soak_fills": len(w),
         "soak_lost_executions": lost, "soak_doubled_executions": doubled,
         "soak_position_mismatches": len(mismatch),
         "soak_restart_s_p50": round(restart_s[len(restart_s) // 2], 2) if restart_s else None,
         "soak_restart_s_max": round(restart_s[-1], 2) if restart_s else None}
    t = Table("crash recovery soak (bench/soak_recovery.py)")
    t.add("soak_restarts", str(done), str(restarts), "ok" if done == restarts else "MISS")
    t.add("soak_orders", f"{orders:,}")
    t.add("soak_fills (the venue's, for us)", f"{len(w):,}")
    for key in ("soak_lost_executions", "soak_doubled_executions", "soak_position_mismatches"):
        t.add(key, str(f[key]), "0", "ok" if f[key] == 0 else "MISS")
    t.add("positions (database / engine / drop copy)",
          "; ".join(f"{s} {db_pos.get(s, 0):+d}/{engine_pos.get(s, 0):+d}/{w_pos.get(s, 0):+d}"
                    for s in syms))
    if restart_s:
        t.add("soak_restart_s_p50 / max", f"{f['soak_restart_s_p50']} / {f['soak_restart_s_max']} s",
              "SIGKILL → logged on again")
    print(t.render())
    if mismatch:
        print(f"position mismatches: {', '.join(mismatch)}")
    if REFUSED:
        print("orders refused: " + "; ".join(f"{n} × {why}" for why, n in
                                              sorted(REFUSED.items(), key=lambda x: -x[1])))
    emit_json(f)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
