"""Starting things: the demo (engine child + desk), the headless demo, a desk on its own."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.core.paths import demo_profile_path, log_dir, module_command
from engine.core.profile import ProfileError, load_profile
from engine.core.ticks import tick_decimals
from engine.ipc import EngineClient, EngineStarting, IpcError, NoEngine

__all__ = ["run_demo", "run_headless", "run_desk", "display_problem", "EngineChild"]


def display_problem() -> str | None:
    """Why a window cannot open here, or None. Qt aborts the process (exit 134) otherwise."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal", "vnc", "eglfs", "linuxfb")):
        return None
    if sys.platform != "linux":
        return None
    if platform.startswith("wayland") and os.environ.get("WAYLAND_DISPLAY"):
        return None
    if os.environ.get("DISPLAY") or (not platform and os.environ.get("WAYLAND_DISPLAY")):
        return None
    hint = [
        "no display: this machine has no DISPLAY (or WAYLAND_DISPLAY) to open the desk on.",
        "  - on a desktop, run it from a terminal inside the graphical session;",
        "  - over ssh, use 'ssh -X' (X forwarding);",
        "  - with no screen at all, use a virtual display: xvfb-run -a helmdesk",
        "    (Debian: apt-get install xvfb xauth libxcb-cursor0), or QT_QPA_PLATFORM=offscreen",
        "    with --screenshot FILE.png to save a picture;",
        "  - or watch the engine without a window: helmdesk --headless",
    ]
    if shutil.which("xvfb-run") is None:
        hint[3] += "  [xvfb-run is not installed]"
    return "\n".join(hint)


class Terminated(BaseException):
    """SIGTERM or SIGHUP reached a launcher: unwind (stopping what it started) and exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, _frame) -> None:
    raise Terminated(signum)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP raise ``Terminated`` in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so a launcher's ``finally`` stops its engine whatever stops it."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)


class EngineChild:
    """An engine in a child process (the demo owns it and stops it on exit). The engine is
    told to follow us: if this process dies without stopping it (SIGKILL, a crash), the
    kernel sends the engine SIGTERM (``--parent-pid``: PR_SET_PDEATHSIG)."""

    def __init__(self, profile: Path, instance: str) -> None:
        self.instance = instance
        self.proc = subprocess.Popen(
            module_command("engine", "--profile", str(profile), "--parent-pid", str(os.getpid())),
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 20.0, progress=None) -> None:
        """Wait until the engine's segment is attachable; raise with the reason if it dies."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError(f"engine exited with code {rc} while starting (see above)")
            try:
                with EngineClient(self.instance, commands=False) as c:
                    if c.status().state == "running" and c.pid == self.proc.pid:
                        return
            except (NoEngine, EngineStarting):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"engine did not start within {timeout:g} s")
            if progress:
                progress()
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait for the clean exit (a second signal to us does not cut it short),
        SIGKILL only if the engine hangs."""
        old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    print(f"helmdesk: engine pid {self.proc.pid} did not stop within "
                          f"{timeout:g} s: killed", file=sys.stderr)
                    self.proc.kill()
                    self.proc.wait()
            return self.proc.returncode
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def _load(args: argparse.Namespace):
    path = Path(args.profile) if getattr(args, "profile", None) else demo_profile_path()
    try:
        return load_profile(path)
    except ProfileError as e:
        print(f"helmdesk: {e}", file=sys.stderr)
        return None


def _start_engine(profile) -> EngineChild | None:
    """Start the demo engine; None means one is already running (use it, do not own it)."""
    instance = profile.engine.instance
    try:
        with EngineClient(instance, commands=False) as c:
            s = c.status()
            if s.state == "running" and s.heartbeat_age_ms < 1000:
                print(f"helmdesk: engine {instance!r} is already running (pid {s.pid}); "
                      "attaching to it", file=sys.stderr)
                return None
    except IpcError:
        pass
    print(f"helmdesk: starting engine {instance!r} …", file=sys.stderr, flush=True)
    child = EngineChild(profile.path, instance)
    try:
        child.wait_ready()
    except BaseException:  # it died, timed out, or we were told to stop while it started
        child.stop()
        raise
    return child


_LOG_ERROR = re.compile(r"^\S+ \S+ (?:ERROR|CRITICAL) +\S+: (.*)$")


def _errors_in(log: Path, last: int = 6) -> str:
    """The last ERROR/CRITICAL lines of a log file, without their time stamps."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-200:]
    except OSError:
        return ""
    # "2026-12-06 00:08:22,100 ERROR   helmdesk.engine: the message"
    bad = [m.group(1) for m in map(_LOG_ERROR.match, lines) if m]
    return "\n".join(bad[-last:])


def _error_dialog(args: argparse.Namespace, rc: int, title: str, text: str,
                  details: str = "", log: Path | None = None) -> int:
    """With --error-dialog (the desktop entry's launch: no terminal shows stderr), the reason
    in a window too; --exit-after closes it and --screenshot saves it. Returns ``rc``."""
    if not getattr(args, "error_dialog", False):
        return rc
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.theme import apply_theme
    from widgets.icon import app_icon

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setWindowIcon(app_icon())
    apply_theme(app)
    box = QMessageBox(QMessageBox.Icon.Critical, "Helmdesk", title)
    box.setStyleSheet("QLabel#qt_msgbox_label, QLabel#qt_msgbox_informativelabel "
                      "{ min-width: 480px; }")  # a path and a reason on few lines
    box.setInformativeText(text + (f"\n\nThe engine's log: {log}" if log else ""))
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    if args.exit_after:
        def close() -> None:
            if args.screenshot:
                box.grab().save(args.screenshot)
            box.done(0)

        QTimer.singleShot(int(args.exit_after * 1000), close)
    box.exec()
    return rc


def run_headless(args: argparse.Namespace) -> int:
    """The demo engine with a live one-line status; imports no Qt."""
    profile = _load(args)
    if profile is None:
        return 2
    stop_on_signals()
    try:
        child = _start_engine(profile)
    except RuntimeError as e:
        print(f"helmdesk: {e}", file=sys.stderr)
        return 3
    except (Terminated, KeyboardInterrupt) as e:
        print(f"helmdesk: {_why(e)} while the engine started: stopped it", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    instance = profile.engine.instance
    end = time.monotonic() + args.exit_after if args.exit_after else None
    tty = sys.stdout.isatty()
    rc = 0
    try:
        with EngineClient(instance, commands=False) as c:
            last = 0.0
            while end is None or time.monotonic() < end:
                if child is not None and child.proc.poll() is not None:
                    print(f"\nhelmdesk: engine exited with code {child.proc.returncode}")
                    rc = 3
                    break
                s = c.status()
                books = []
                for ins in s.instruments:
                    b = c.read_book(ins.index)
                    if b is not None:
                        d = tick_decimals(ins.tick)
                        books.append(f"{ins.symbol} {b['bid_px'][0][0]:.{d}f}/{b['ask_px'][0][0]:.{d}f}")
                line = (
                    f"{s.instance} pid {s.pid} {s.state} hb {s.heartbeat_age_ms:5.1f} ms "
                    f"kill {'TRIPPED' if s.kill_tripped else 'armed'} | " + "  ".join(books)
                )
                if tty:
                    print("\r" + line[:200].ljust(120), end="", flush=True)
                elif time.monotonic() - last >= 1.0:
                    print(line, flush=True)
                    last = time.monotonic()
                time.sleep(0.25)
    except (KeyboardInterrupt, Terminated) as e:
        if tty:
            print()
        print(f"helmdesk: {_why(e)}: stopping", file=sys.stderr, flush=True)
        tty = False
    finally:
        if tty:
            print()
        if child is not None:
            child.stop()
    return rc


def _why(e: BaseException) -> str:
    return str(e) if isinstance(e, Terminated) else "interrupted"


def _audit_url(profile) -> str | None:
    """The profile's database, where the desk reads the audit trail (None: the default)."""
    from engine.core.paths import data_dir
    from engine.core.profile import ProfileError

    try:
        return profile.database(str(data_dir()))
    except ProfileError:
        return None


def _run_window(args: argparse.Namespace, instance: str, desk_cfg, on_close=None, *,
                audit_url: str | None = None) -> int:
    problem = display_problem()
    if problem:
        print(f"helmdesk: {problem}", file=sys.stderr)
        return 2
    from app.desk import run_desk_window  # Qt starts here

    return run_desk_window(
        instance,
        desk_cfg,
        instrument=args.instrument,
        exit_after=args.exit_after,
        screenshot=args.screenshot,
        audit_url=audit_url,
    )


def run_desk(args: argparse.Namespace, instance: str | None, default_instance: str) -> int:
    """A desk on ``instance``; without one, on the profile's engine, else ``default_instance``."""
    from engine.core.profile import DeskConfig

    desk_cfg = DeskConfig()
    url = None
    if args.profile:
        profile = _load(args)
        if profile is None:
            return 2
        desk_cfg = profile.desk
        url = _audit_url(profile)
        instance = instance or profile.engine.instance
    return _run_window(args, instance or default_instance, desk_cfg, audit_url=url)


def run_demo(args: argparse.Namespace) -> int:
    problem = display_problem()
    if problem:
        print(f"helmdesk: {problem}", file=sys.stderr)
        return 2
    path = Path(args.profile) if args.profile else demo_profile_path()
    try:
        profile = load_profile(path)
    except ProfileError as e:
        print(f"helmdesk: {e}", file=sys.stderr)
        return _error_dialog(args, 2, "The profile cannot be used", str(e))
    stop_on_signals()  # until the window is up: then the desk closes itself on them
    try:
        child = _start_engine(profile)
    except RuntimeError as e:
        print(f"helmdesk: {e}", file=sys.stderr)
        log = log_dir() / f"engine-{profile.engine.instance}.log"
        errors = _errors_in(log)
        why = errors.splitlines()[-1] if errors else str(e).replace(" (see above)", "")
        return _error_dialog(args, 3, f"The engine {profile.engine.instance!r} did not start",
                             why, errors, log)
    except (Terminated, KeyboardInterrupt) as e:
        print(f"helmdesk: {_why(e)} while the engine started: stopped it", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    try:
        return _run_window(args, profile.engine.instance, profile.desk,
                           audit_url=_audit_url(profile))
    except (Terminated, KeyboardInterrupt) as e:
        print(f"helmdesk: {_why(e)}: stopping", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    finally:
        if child is not None:
            rc = child.stop()
            print(f"helmdesk: demo engine stopped (exit {rc})", file=sys.stderr)
