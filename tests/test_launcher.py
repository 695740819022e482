"""The launchers never orphan their engine: SIGTERM, SIGHUP (also while the engine starts) and
SIGKILL of the launcher all end with the engine stopped and its shared memory removed."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.ipc import EngineClient, IpcError
from tests.conftest import wait_until, write_profile

HELMDESK = [sys.executable, "-m", "app"]


def _engines_of(profile: Path) -> list[int]:
    """Pids of live engine processes started with ``profile``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"engine" in argv and str(profile).encode() in argv and state != "Z":
            out.append(int(d.name))
    return out


def _running(instance: str) -> bool:
    try:
        with EngineClient(instance, commands=False) as c:
            return c.status().state == "running"
    except IpcError:
        return False


def _launch(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(HELMDESK + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or dict(os.environ))


def _status_line(p: subprocess.Popen, timeout: float = 20.0) -> str:
    """The headless launcher's first status line: it has seen its engine running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if r:
            return p.stdout.readline()
    raise AssertionError("the launcher printed no status line")


def _gone(instance: str, profile: Path) -> bool:
    return not _engines_of(profile) and not os.path.exists(f"/dev/shm/helmdesk.{instance}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_headless_launcher_stops_its_engine(tmp_path, instance, sig):
    prof = write_profile(tmp_path / "h.toml", instance)
    p = _launch(["--headless", "--profile", str(prof)])
    try:
        assert "running" in _status_line(p)
        (engine_pid,) = _engines_of(prof)
        p.send_signal(sig)
        _, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
        assert f"helmdesk: {sig.name}: stopping" in err
        wait_until(lambda: _gone(instance, prof), 10, "the engine to stop")
        assert not Path(f"/proc/{engine_pid}").exists() or _engines_of(prof) == []
    finally:
        p.kill()
        p.communicate()


def test_a_signal_while_the_engine_starts_stops_it_too(tmp_path, instance):
    prof = write_profile(tmp_path / "h.toml", instance)
    p = _launch(["--headless", "--profile", str(prof)])
    try:
        # the engine process exists but is not running yet (start-up takes a while)
        wait_until(lambda: _engines_of(prof), 20, "the engine process", interval=0.001)
        assert not _running(instance)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
        assert p.returncode == 128 + signal.SIGTERM, err
        assert "helmdesk: SIGTERM while the engine started: stopped it" in err
        wait_until(lambda: _gone(instance, prof), 10, "the engine to stop")
    finally:
        p.kill()
        p.communicate()


def test_a_demo_launcher_killed_outright_takes_its_engine_with_it(tmp_path, instance):
    prof = write_profile(tmp_path / "d.toml", instance)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = _launch(["--profile", str(prof), "--exit-after", "120"], env)
    try:
        wait_until(lambda: _running(instance), 30, "the engine to run")
        assert len(_engines_of(prof)) == 1
        p.kill()  # SIGKILL: no handler runs, no finally
        p.communicate()
        # the kernel tells the engine (PR_SET_PDEATHSIG): it stops cleanly, segment removed
        wait_until(lambda: _gone(instance, prof), 15, "the orphaned engine to stop")
    finally:
        p.kill()
        p.communicate()


def test_an_engine_whose_launcher_is_already_gone_does_not_start(tmp_path, instance):
    prof = write_profile(tmp_path / "e.toml", instance)
    r = subprocess.run([sys.executable, "-m", "engine", "--profile", str(prof),
                        "--parent-pid", "1"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 3
    assert "the launcher (pid 1) is gone: not starting" in r.stderr
    assert not os.path.exists(f"/dev/shm/helmdesk.{instance}")


def test_sigterm_to_a_starting_engine_removes_what_it_made(tmp_path, instance):
    """Whenever SIGTERM lands in the start, the engine unwinds: no segment is left."""
    prof = write_profile(tmp_path / "s.toml", instance)
    p = subprocess.Popen([sys.executable, "-m", "engine", "--profile", str(prof)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: os.path.exists(f"/dev/shm/helmdesk.{instance}"), 20,
                   "the segment to appear", interval=0.0005)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
        assert p.returncode in (0, 128 + signal.SIGTERM), err
        assert "Traceback" not in err
        assert not os.path.exists(f"/dev/shm/helmdesk.{instance}")
    finally:
        p.kill()
        p.communicate()


def test_a_failed_start_says_why_and_leaves_no_segment(tmp_path, instance):
    """The segment exists before the market data source is opened: a recorded day that is not
    there fails the start after it, and the segment goes with it."""
    prof = write_profile(tmp_path / "r.toml", instance,
                         extra=f'\n[feed]\nkind = "replay"\nday = "2020-01-01"\n'
                               f'ticks_dir = "{tmp_path / "none"}"\n')
    prof.write_text(prof.read_text().replace("[feed]\nseed = 7\n", ""))
    r = subprocess.run([sys.executable, "-m", "engine", "--profile", str(prof)],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 3, r.stderr
    assert "cannot start: no ticks for 2020-01-01 under" in r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(f"/dev/shm/helmdesk.{instance}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_demo_closes_the_desk_and_stops_its_engine(tmp_path, instance, sig):
    prof = write_profile(tmp_path / "d.toml", instance)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = _launch(["--profile", str(prof), "--exit-after", "120"], env)
    try:
        wait_until(lambda: _running(instance), 30, "the engine to run")
        wait_until(lambda: _desk_attached(instance, p.pid), 30, "the desk to attach")
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "demo engine stopped (exit 0)" in err
        wait_until(lambda: _gone(instance, prof), 10, "the engine to stop")
    finally:
        p.kill()
        p.communicate()


def _desk_attached(instance: str, pid: int) -> bool:
    """Process ``pid`` holds a command slot (the demo's window is up and attached)."""
    try:
        with EngineClient(instance, commands=False) as c:
            return any(d.pid == pid for d in c.desks())
    except IpcError:
        return False


def _dialog_of(args: list[str], qapp, data_dir: Path, shot: Path) -> tuple[int, dict]:
    """Run the demo launcher in this process with --error-dialog; read the dialog it shows."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.cli import build_parser
    from app.launch import run_demo

    seen: dict = {}

    def look() -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(50, look)
            return
        seen.update(title=box.text(), text=box.informativeText(), details=box.detailedText(),
                    icon=box.windowIcon().isNull())

    QTimer.singleShot(50, look)
    args = build_parser().parse_args([*args, "--error-dialog", "--exit-after", "1.5",
                                      "--screenshot", str(shot)])
    return run_demo(args), seen


def test_a_profile_that_cannot_be_used_is_said_in_a_window_from_the_menu(tmp_path, qapp,
                                                                        data_dir):
    bad = tmp_path / "ws-7.toml"
    bad.write_text('[engine]\nidle = "nap"\n')
    shot = tmp_path / "error.png"
    rc, seen = _dialog_of(["--profile", str(bad)], qapp, data_dir, shot)
    assert rc == 2
    assert seen["title"] == "The profile cannot be used"
    assert seen["text"] == f"{bad}: [engine].idle: must be one of spin, hybrid, sleep, was 'nap'"
    assert shot.stat().st_size > 2_000 and not seen["icon"]


def test_an_engine_that_cannot_start_is_said_in_a_window_with_its_log(tmp_path, qapp, data_dir,
                                                                     instance, monkeypatch):
    from tests.execution.test_engine_orders import venues_section

    monkeypatch.delenv("HD_TEST_NO_SUCH_PW", raising=False)
    prof = write_profile(tmp_path / "ws-8.toml", instance,
                         extra="", instruments='[[instruments]]\nsymbol = "AAA"\ntick = 0.01\n'
                                               'price = 100.0\n')
    prof.write_text(prof.read_text() + venues_section(("SIMA", 9))
                    + 'password = "env:HD_TEST_NO_SUCH_PW"\n')
    rc, seen = _dialog_of(["--profile", str(prof)], qapp, data_dir, tmp_path / "error.png")
    assert rc == 3
    assert seen["title"] == f"The engine {instance!r} did not start"
    log = data_dir / "logs" / f"engine-{instance}.log"
    reason = (f"cannot start: {prof}: [[venues]] SIMA password: environment variable "
              f"HD_TEST_NO_SUCH_PW is not set")
    assert seen["text"] == f"{reason}\n\nThe engine's log: {log}"
    assert seen["details"].endswith(reason), seen["details"]
    assert not _running(instance)
