"""Shared fixtures: real engine processes, a private data dir, and a /dev/shm leak check."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QT_API"] = "pyside6"

import pytest  # noqa: E402

from engine.ipc import EngineClient, IpcError  # noqa: E402

PREFIX = f"t{os.getpid() % 100000}x"
_ids = itertools.count()

DEMO_INSTRUMENTS = """
[[instruments]]
symbol = "ESZ6"
tick = 0.25
price = 5000.0
update_hz = 50

[[instruments]]
symbol = "FROZEN"
tick = 0.01
price = 100.0
update_hz = 0

[[instruments]]
symbol = "AAPL"
tick = 0.01
price = 190.0
update_hz = 50
"""


def wait_until(cond, timeout: float = 10.0, what: str = "condition", interval: float = 0.005):
    """Poll ``cond`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def shm_entries() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith(f"helmdesk.{PREFIX}")}


def bell_files() -> set[Path]:
    """Doorbell sockets of this run's engines (an engine killed with SIGKILL leaves its own;
    the next engine of that name replaces it, so they are cleaned, not failed on)."""
    from engine.ipc.rundir import runtime_dir

    try:
        return set(runtime_dir().glob(f"{PREFIX}*.bell"))
    except Exception:  # no private directory here: nothing of ours to clean
        return set()


@pytest.fixture(autouse=True)
def no_leftover_segments():
    """No test may leave a segment of ours in /dev/shm."""
    before, bells = shm_entries(), bell_files()
    yield
    left = shm_entries() - before
    for n in left:
        os.unlink(f"/dev/shm/{n}")
    for b in bell_files() - bells:
        b.unlink(missing_ok=True)
    assert not left, f"test left shared memory behind: {sorted(left)}"


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("HELMDESK_DATA_DIR", str(d))
    return d


@pytest.fixture
def instance() -> str:
    return f"{PREFIX}{next(_ids)}"


def write_profile(path: Path, instance: str, *, idle: str = "sleep", users: str = '"*" = "risk_manager"',
                  instruments: str = DEMO_INSTRUMENTS, extra: str = "") -> Path:
    path.write_text(
        f'[engine]\ninstance = "{instance}"\nidle = "{idle}"\n{extra}\n'
        f'[desk]\nname = "test-desk"\nstale_ms = 300\n\n[feed]\nseed = 7\n'
        f"{instruments}\n[users]\n{users}\n"
    )
    return path


class EngineProc:
    """A real engine process for a test."""

    def __init__(self, profile: Path, instance: str, env: dict) -> None:
        self.profile = profile
        self.instance = instance
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "EngineProc":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "--profile", str(self.profile)],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                with EngineClient(self.instance, commands=False) as c:
                    return c.status().state == "running" and c.pid == self.proc.pid
            except IpcError:
                return False

        wait_until(ready, timeout, f"engine {self.instance} to start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def output(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture
def engine_factory(tmp_path, data_dir):
    started: list[EngineProc] = []

    def make(instance: str, **kw) -> EngineProc:
        prof = write_profile(tmp_path / f"{instance}-{len(started)}.toml", instance, **kw)
        env = dict(os.environ, HELMDESK_DATA_DIR=str(data_dir))
        e = EngineProc(prof, instance, env)
        started.append(e)
        return e

    yield make
    for e in started:
        if e.proc is not None and e.proc.poll() is None:
            e.stop()
        if e.proc is not None:
            for s in (e.proc.stdout, e.proc.stderr):
                if s:
                    s.close()
    # an engine killed with SIGKILL leaves its segment: clean what this test made
    for n in shm_entries():
        for e in started:
            if n == f"helmdesk.{e.instance}":
                try:
                    os.unlink(f"/dev/shm/{n}")
                except FileNotFoundError:
                    pass


@pytest.fixture
def engine(engine_factory, instance) -> EngineProc:
    return engine_factory(instance).start()
