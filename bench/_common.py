"""Helpers shared by the bench scripts: percentiles, tables, child processes, deadlines.

Every bench script prints a readable table and, as its last line, one JSON object of its
figures (units in the key names); ``emit_json`` writes that line. Child processes (engines,
desks, helper writers) are always stopped by ``stop_process`` from a ``finally`` block, and
``shm_leftovers`` lets a script prove it left nothing in ``/dev/shm``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np

__all__ = [
    "ROOT",
    "CLK_TCK",
    "EngineProcess",
    "Table",
    "allowed_cpus",
    "bench_child",
    "cpu_seconds",
    "emit_json",
    "fmt_count",
    "fmt_rate",
    "machine_busy_pct",
    "percentiles_us",
    "progress",
    "shm_leftovers",
    "stop_process",
    "tail",
    "verdict",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[1]  # bench children run with -m from here
SHM_DIR = Path("/dev/shm")
CLK_TCK = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


# -- numbers ---------------------------------------------------------------------------------------
def percentiles_us(samples_ns: Sequence[int] | np.ndarray,
                   ps: Iterable[float] = (50, 99, 99.9)) -> dict[str, float]:
    """Percentiles of nanosecond samples, in microseconds, keyed ``p50``, ``p99``, ``p99.9``."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    out = {f"p{p:g}": float(np.percentile(a, p)) for p in ps}
    out["max"] = float(a.max())
    out["mean"] = float(a.mean())
    return out


def fmt_rate(per_s: float) -> str:
    return f"{per_s:,.0f} /s"


def fmt_count(n: float) -> str:
    return f"{n:,.0f}"


def verdict(value: float, target: float, *, higher_is_better: bool) -> str:
    """``ok`` or ``MISS``: the value against its target, never adjusted."""
    ok = value >= target if higher_is_better else value <= target
    return "ok" if ok else "MISS"


# -- output ----------------------------------------------------------------------------------------
@dataclass
class Table:
    """Rows of (figure, value, target, verdict); section titles are rows of their own."""

    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def section(self, name: str) -> None:
        self.rows.append((name, "", "", ""))

    def add(self, name: str, value: str, target: str = "", result: str = "") -> None:
        self.rows.append(("  " + name, value, target, result))

    def render(self) -> str:
        head = ("figure", "value", "target", "")
        rows = [head, *self.rows]
        data = [r for r in rows if r[1] or r[2]]  # section titles may run past the columns
        w = [max(len(r[c]) for r in data) for c in range(4)]
        rule = "-" * (sum(w) + 6)
        lines = [self.title, rule]
        for i, r in enumerate(rows):
            if i and not r[1] and not r[2]:  # a section title
                lines.append(r[0])
                continue
            lines.append(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:<{w[2]}}  {r[3]}".rstrip())
            if i == 0:
                lines.append(rule)
        lines.append(rule)
        return "\n".join(lines)


def emit_json(figures: dict[str, object]) -> None:
    """The last line of a bench script's output: its figures as one JSON object."""
    print(json.dumps(figures, sort_keys=True), flush=True)


def progress(msg: str) -> None:
    """Progress goes to stderr so stdout stays table + JSON."""
    print(f"  … {msg}", file=sys.stderr, flush=True)


# -- waiting and processes -------------------------------------------------------------------------
def wait_until(cond: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """Poll ``cond`` until it returns something truthy; TimeoutError naming ``what`` if not."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def bench_child(module: str, *args: str, **popen) -> subprocess.Popen:
    """Start ``python -m bench.<module> ARGS`` (run from the repository root)."""
    return subprocess.Popen(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        **popen,
    )


def allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat`` utime + stime)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLK_TCK


def machine_busy_pct(interval: float = 0.5) -> float:
    """How busy all CPUs are (``/proc/stat``), in percent of the machine, over ``interval``."""

    def sample() -> tuple[int, int]:
        vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = vals[3] + vals[4]  # idle + iowait
        return sum(vals[:8]) - idle, sum(vals[:8])

    b0, t0 = sample()
    time.sleep(interval)
    b1, t1 = sample()
    return 100.0 * (b1 - b0) / max(1, t1 - t0)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def shm_leftovers(prefix: str) -> list[str]:
    """Names in /dev/shm starting with ``prefix`` (without the leading slash)."""
    try:
        return sorted(p.name for p in SHM_DIR.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


# -- an engine in a child process ------------------------------------------------------------------
_INSTRUMENTS = (("ESZ6", 0.25, 5000.0), ("NQZ6", 0.25, 18000.0), ("AAPL", 0.01, 190.0),
                ("MSFT", 0.01, 420.0))


class EngineProcess:
    """A real engine (``python -m engine``) from a throw-away profile and data directory.

    Use as a context manager: the engine is started and ready inside, stopped (SIGTERM, then
    SIGKILL) and its temporary directory removed on the way out, whatever happened.
    """

    def __init__(self, instance: str, *, idle: str = "hybrid", cores: list[int] | None = None,
                 update_hz: float = 50.0, n_instruments: int = 4,
                 users: str = '"*" = "risk_manager"', extra: str = "") -> None:
        self.instance = instance
        self.users = users
        self.extra = extra  # more profile text: [[venues]] tables, say
        self.idle = idle
        self.cores = cores
        self.update_hz = update_hz
        self.n_instruments = n_instruments
        self._tmp = tempfile.TemporaryDirectory(prefix=f"helmdesk-bench-{instance}-")
        self.dir = Path(self._tmp.name)
        self.data_dir = self.dir / "data"
        self.profile = self.dir / "engine.toml"
        self.stderr_path = self.dir / "engine.stderr"
        self.proc: subprocess.Popen | None = None
        self.running = False  # started and seen running (a failed start already said why)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        """Environment for the engine and anything attached to it (same data directory)."""
        return {**os.environ, "HELMDESK_DATA_DIR": str(self.data_dir)}

    def profile_text(self) -> str:
        lines = ["[engine]", f'instance = "{self.instance}"', f'idle = "{self.idle}"']
        if self.cores:
            lines.append(f"cores = [{', '.join(map(str, self.cores))}]")
        lines += ["", "[desk]", 'name = "bench"', "", "[feed]", 'kind = "sim"', "seed = 42", ""]
        for k in range(self.n_instruments):
            sym, tick, price = _INSTRUMENTS[k % len(_INSTRUMENTS)]
            if k >= len(_INSTRUMENTS):
                sym = f"{sym}{k}"
            lines += ["[[instruments]]", f'symbol = "{sym}"', f"tick = {tick}",
                      f"price = {price}", f"update_hz = {self.update_hz:g}", ""]
        lines += ["[users]", self.users, "", self.extra]
        return "\n".join(lines)

    def start(self, timeout: float = 20.0) -> None:
        """Start the engine and wait until it says it is running (its pid in the header)."""
        from engine.ipc import EngineClient, EngineStarting, NoEngine

        self.data_dir.mkdir(mode=0o700)
        self.profile.write_text(self.profile_text())
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "--profile", str(self.profile)],
                cwd=self.dir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"engine {self.instance} exited with code {self.proc.returncode} while "
                    f"starting:\n{tail(self.stderr_path)}"
                )
            try:
                with EngineClient(self.instance, commands=False) as c:
                    return c.engine_state() == 1 and c.pid == self.proc.pid  # RUNNING
            except (NoEngine, EngineStarting):
                return False

        wait_until(ready, timeout, f"engine {self.instance} to run", 0.05)
        self.running = True

    def stop(self) -> int | None:
        """Stop the engine; if it had to be killed, remove the segment it could not."""
        if self.proc is None:
            return None
        rc = stop_process(self.proc)
        from engine.ipc.layout import segment_name
        from engine.ipc.segment import unlink_segment

        unlink_segment(segment_name(self.instance))  # no-op after a clean stop
        return rc

    def __enter__(self) -> "EngineProcess":
        try:
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            rc = self.stop()
            if self.running and rc not in (None, 0):
                print(f"warning: engine {self.instance} exited with code {rc}:\n"
                      f"{tail(self.stderr_path)}", file=sys.stderr)
        finally:
            self._tmp.cleanup()
