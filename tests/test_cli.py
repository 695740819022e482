"""The helmdesk command: ctl, --version, the headless and windowed demos, the no-display hint."""

import os
import re
import subprocess
import sys


from engine.ipc import EngineClient

from tests.conftest import write_profile

HELMDESK = [sys.executable, "-m", "app"]


def helmdesk(*args, env=None, timeout=60):
    return subprocess.run(HELMDESK + list(args), capture_output=True, text=True, timeout=timeout,
                          env=env or dict(os.environ), stdin=subprocess.DEVNULL)


def test_version():
    r = helmdesk("--version")
    assert r.returncode == 0 and r.stdout.strip() == "helmdesk 0.1.0"


def test_ctl_without_an_engine_says_so_and_fails(instance):
    r = helmdesk("ctl", "--instance", instance, "status")
    assert r.returncode == 3
    assert f"no engine is running: shared memory /helmdesk.{instance} does not exist" in r.stderr
    assert "start one with 'helmdesk'" in r.stderr
    r = helmdesk("ctl", "--instance", instance, "kill")
    assert r.returncode == 3 and "no engine is running" in r.stderr


def test_ctl_status_kill_rearm(engine):
    i = engine.instance
    r = helmdesk("ctl", "--instance", i, "status")
    assert r.returncode == 0, r.stderr
    assert f"pid          {engine.pid}" in r.stdout
    assert "kill switch  armed" in r.stdout
    assert "instruments  ESZ6, FROZEN, AAPL" in r.stdout
    r = helmdesk("ctl", "--instance", i, "kill", "--reason", "runbook step 3")
    assert r.returncode == 0 and "KILL accepted: global kill switch TRIPPED HALTED by" in r.stdout
    r = helmdesk("ctl", "--instance", i, "status")
    assert "kill switch  TRIPPED by" in r.stdout and "runbook step 3" in r.stdout
    r = helmdesk("ctl", "--instance", i, "rearm")
    assert r.returncode == 2 and "--reason" in r.stderr  # argparse: a reason is required
    r = helmdesk("ctl", "--instance", i, "rearm", "--reason", "cleared")
    assert r.returncode == 2 and "needs its name typed again: --confirm global" in r.stderr
    r = helmdesk("ctl", "--instance", i, "rearm", "--reason", "cleared", "--confirm", "globl")
    assert r.returncode == 1 and "typed confirmation does not match 'global'" in r.stderr
    r = helmdesk("ctl", "--instance", i, "rearm", "--reason", "cleared", "--confirm", "global")
    assert r.returncode == 0 and "re-armed to ACTIVE" in r.stdout
    r = helmdesk("ctl", "--instance", i, "rearm", "--reason", "again", "--confirm", "global")
    assert r.returncode == 1 and "REARM REJECTED: global kill switch is not tripped" in r.stderr
    r = helmdesk("ctl", "--instance", i, "kill", "--instrument", "NOPE")
    assert r.returncode == 2 and "unknown instrument 'NOPE' (engine trades ESZ6, FROZEN, AAPL)" in r.stderr
    r = helmdesk("ctl", "--instance", i, "kill", "--instrument", "AAPL")
    assert r.returncode == 0
    assert "tripped      instrument:AAPL HALTED" in helmdesk("ctl", "--instance", i, "status").stdout


def test_ctl_kill_any_scope_to_a_state_and_set_limits(engine):
    i = engine.instance
    r = helmdesk("ctl", "--instance", i, "kill", "--scope", "instrument:ESZ6", "--state",
                 "reducing", "--reason", "feed trouble")
    assert r.returncode == 0, r.stderr
    assert "instrument:ESZ6 kill switch TRIPPED REDUCING" in r.stdout
    assert "tripped      instrument:ESZ6 REDUCING" in helmdesk("ctl", "--instance", i,
                                                             "status").stdout
    r = helmdesk("ctl", "--instance", i, "kill", "--scope", "strategy:nope")
    assert r.returncode == 2 and "no scope 'strategy:nope' in this engine" in r.stderr
    r = helmdesk("ctl", "--instance", i, "rearm", "--scope", "instrument:ESZ6", "--reason",
                 "fixed", "--confirm", "instrument:ESZ6")
    assert r.returncode == 0 and "instrument:ESZ6 kill switch re-armed to ACTIVE" in r.stdout
    # limits: listed, set with a reason, refused when out of range, audited
    r = helmdesk("ctl", "--instance", i, "limits", "set", "max_order_qty", "25", "--scope",
                 "instrument:AAPL", "--reason", "new desk rule")
    assert r.returncode == 0, r.stderr
    assert "max_order_qty for instrument:AAPL: default -> 25" in r.stdout
    r = helmdesk("ctl", "--instance", i, "limits")
    line = next(x for x in r.stdout.splitlines() if "instrument:AAPL" in x)
    assert line.split()[:2] == ["max_order_qty", "instrument:AAPL"] and "25.00" in line
    r = helmdesk("ctl", "--instance", i, "limits", "set", "max_order_qty", "0.5", "--reason", "x")
    assert r.returncode == 1 and "max_order_qty must be a whole number" in r.stderr
    r = helmdesk("ctl", "--instance", i, "audit", "--kind", "limits")
    assert "max_order_qty" in r.stdout and "new desk rule" in r.stdout
    r = helmdesk("ctl", "--instance", i, "positions")
    assert r.returncode == 0 and "desk" in r.stdout and "TOTAL" in r.stdout
    r = helmdesk("ctl", "--instance", i, "recon")
    assert r.returncode == 0 and "no differences" in r.stdout


def test_engine_with_a_bad_profile_names_the_problem(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[engine]\nidle = "nap"\n')
    r = helmdesk("engine", "--profile", str(p))
    assert r.returncode == 2
    assert f"{p}: [engine].idle: must be one of spin, hybrid, sleep, was 'nap'" in r.stderr


def test_headless_demo_runs_without_qt(tmp_path, instance):
    prof = write_profile(tmp_path / "h.toml", instance)
    code = (
        "import sys, app.cli\n"
        f"rc = app.cli.main(['--headless', '--profile', {str(prof)!r}, '--exit-after', '1.5'])\n"
        "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'qasync'))]\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"{instance} pid" in r.stdout and "running" in r.stdout
    assert re.search(r"ESZ6 \d+\.\d\d/\d+\.\d\d ", r.stdout), r.stdout  # 0.25 ticks: 2 decimals


def test_no_display_gets_a_hint_not_a_core_dump(tmp_path, instance):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    prof = write_profile(tmp_path / "d.toml", instance)
    for args in (["--profile", str(prof)], ["desk", "--attach", instance]):
        r = helmdesk(*args, env=env)
        assert r.returncode == 2, r.stderr
        assert "no display" in r.stderr and "xvfb-run -a helmdesk" in r.stderr
        assert "helmdesk --headless" in r.stderr
    assert not os.path.exists(f"/dev/shm/helmdesk.{instance}")  # no engine was left running


def test_demo_starts_an_engine_and_closing_the_desk_stops_it(tmp_path, instance):
    prof = write_profile(tmp_path / "demo.toml", instance)
    shot = tmp_path / "desk.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = helmdesk("--profile", str(prof), "--exit-after", "2.5", "--screenshot", str(shot), env=env)
    assert r.returncode == 0, r.stderr
    assert f"starting engine '{instance}'" in r.stderr
    assert "demo engine stopped (exit 0)" in r.stderr
    assert shot.stat().st_size > 20_000  # a real picture of a real window
    assert not os.path.exists(f"/dev/shm/helmdesk.{instance}")


def test_demo_attaches_to_a_running_engine_and_leaves_it_running(engine):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = helmdesk("--profile", str(engine.profile), "--exit-after", "1", env=env)
    assert r.returncode == 0, r.stderr
    assert f"engine '{engine.instance}' is already running (pid {engine.pid}); attaching" in r.stderr
    assert engine.proc.poll() is None
    with EngineClient(engine.instance, commands=False) as c:
        assert c.status().state == "running"


def test_ctrl_c_on_the_demo_stops_desk_and_engine(tmp_path, instance):
    import signal

    from tests.conftest import wait_until

    prof = write_profile(tmp_path / "demo.toml", instance)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = subprocess.Popen(HELMDESK + ["--profile", str(prof)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)  # its own process group, as in a terminal
    try:
        def desk_attached():
            try:
                with EngineClient(instance, commands=False) as c:
                    return bool(c.desks())
            except Exception:
                return False
        wait_until(desk_attached, 30, "the demo desk to attach")  # its handlers are in place
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C does
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 0, err
    assert "demo engine stopped (exit 0)" in err
    assert not os.path.exists(f"/dev/shm/helmdesk.{instance}")


def test_ctl_on_a_dead_engines_segment_says_it_is_dead(engine):
    engine.kill9()  # leaves the segment behind, heartbeat frozen
    from tests.conftest import wait_until

    with EngineClient(engine.instance, commands=False) as c:
        wait_until(lambda: c.heartbeat_age_ms() > 1100, 5, "the heartbeat to age")
    r = helmdesk("ctl", "--instance", engine.instance, "status")
    assert r.returncode == 3 and f"pid          {engine.pid}" in r.stdout
    assert "engine looks dead: state running, heartbeat" in r.stderr
    r = helmdesk("ctl", "--instance", engine.instance, "kill")
    assert r.returncode == 3
    assert f"engine '{engine.instance}' (pid {engine.pid}) is not running" in r.stderr
    assert "kill not sent" in r.stderr


STRATEGY_TOML = """
[[venues]]
name = "SIMA"
kind = "sim"

[[strategies]]
name = "pairs"
kind = "pairs"
pairs = [["AAPL", "ESZ6"]]
formation_s = 2.0
"""


def test_ctl_strategy_lists_pauses_resumes_and_stops_a_strategy(engine_factory, instance):
    from tests.conftest import DEMO_INSTRUMENTS, wait_until

    e = engine_factory(instance, users='"*" = "trader"',
                       instruments=DEMO_INSTRUMENTS + STRATEGY_TOML).start()
    i = e.instance

    def state() -> str:
        r = helmdesk("ctl", "--instance", i, "strategy")
        assert r.returncode == 0, r.stderr
        line = next(x for x in r.stdout.splitlines() if x.startswith("pairs "))
        assert line.split()[1] == "pairs"  # the kind
        return line.split()[2]

    wait_until(lambda: state() == "running", 20, "the pairs strategy published as running")
    r = helmdesk("ctl", "--instance", i, "strategy", "pause", "pairs", "--reason", "news due")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("STRATEGY accepted: ")
    assert state() == "PAUSED"
    r = helmdesk("ctl", "--instance", i, "strategy", "resume", "pairs", "--reason", "news out")
    assert r.returncode == 0 and state() == "running"
    r = helmdesk("ctl", "--instance", i, "strategy", "pause", "nope")
    assert r.returncode == 2 and "no scope 'strategy:nope' in this engine" in r.stderr
    r = helmdesk("ctl", "--instance", i, "strategy", "stop", "pairs", "--reason", "done today")
    assert r.returncode == 0 and state() == "stopped"
    r = helmdesk("ctl", "--instance", i, "strategy", "resume", "pairs", "--reason", "again")
    assert r.returncode == 1 and "STRATEGY REJECTED" in r.stderr and "stopped" in r.stderr
    r = helmdesk("ctl", "--instance", i, "audit")
    assert "news due" in r.stdout and "done today" in r.stdout


def test_an_installed_workstations_profile_is_every_commands_default(tmp_path, monkeypatch):
    """/usr/bin/helmdesk of a package sets $HELMDESK_PROFILE: the engine, the demo/desk and ctl
    then use that workstation's profile without being told."""
    bad = tmp_path / "ws-7.toml"
    bad.write_text('[engine]\nidle = "nap"\n')
    env = {**os.environ, "HELMDESK_PROFILE": str(bad)}
    for args in (["engine"], ["--headless"]):
        r = helmdesk(*args, env=env)
        assert r.returncode == 2, (args, r.stderr)
        assert f"{bad}: [engine].idle: must be one of spin, hybrid, sleep, was 'nap'" in r.stderr
    r = helmdesk("engine", "--help", env=env)
    assert "here $HELMDESK_PROFILE: /" in " ".join(r.stdout.split())  # argparse wraps the path
    assert "ws-7.toml" in r.stdout.replace("\n", "").replace(" ", "")
    r = helmdesk("engine")  # without it the profile is required, as before
    assert r.returncode == 2 and "the following arguments are required: --profile" in r.stderr

    # a desk with the workstation's profile attaches to that profile's engine
    import app.launch
    from app.cli import main

    prof = write_profile(tmp_path / "ws-8.toml", "ws8engine")
    seen = []
    monkeypatch.setattr(app.launch, "_run_window",
                        lambda args, instance, desk, audit_url: seen.append(instance) or 0)
    monkeypatch.setenv("HELMDESK_PROFILE", str(prof))
    assert main(["desk"]) == 0 and main(["desk", "--attach", "other"]) == 0
    assert seen == ["ws8engine", "other"]
