"""Post-incident review: a replay engine of a recorded day and a desk that scrubs it.

    helmdesk review --day YYYY-MM-DD [--profile P] [--speed N] [--at TIME] [--data DIR]
    helmdesk review --report FOLDER [--day D] [--profile P] ...

``plan_review`` checks the inputs (the day is in the tick store, the time is inside it) and
``ReviewSession`` runs the engine: a ``[feed] kind = "replay"`` engine of that day under an
instance name of its own, built from the profile as a backtest of a paper recording is — its
instruments, ``[[strategies]]`` and ``[[venues]]``, every venue simulated inside the engine —
or, without a profile, with the demo profile's instruments alone. Each engine it starts gets a
fresh data directory of its own (its database, kill switch state and log), so a review never
writes to a trading desk's database and a restarted replay does not restore the orders of
the one before.

On the desk, ``ReviewController`` ties a ``widgets.replaybar.ReplayBar`` to the ``EngineLink``:
it shows the engine's replay position (``EngineClient.replay_state``, read on every link
poll; the bar is hidden while the engine is no replay engine), turns the bar's signals into
REPLAY commands and shows each answer, or refusal, in the bar's status line.

A jump backwards: a running engine cannot un-happen its orders and fills, so it refuses one.
The controller, given a ``restart`` (the session's), restarts the replay engine instead: the
engine is stopped, and a new one of the same name replays the day from its start, catching
up (every record, through the strategies and venues) to the earlier time and stands there
paused; the desk's link re-attaches by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.core.paths import module_command

__all__ = ["ReviewController", "ReviewError", "ReviewPlan", "ReviewSession", "install",
           "plan_review", "run", "toml_text"]

NS = 1_000_000_000
#: how long a jump's answer may take (it comes once the engine has caught up)
JUMP_TIMEOUT_S = 600.0


class ReviewError(Exception):
    """An input the review cannot use; the message names it and says why."""


# -- WHAT TO REVIEW ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReviewPlan:
    instance: str
    day: str
    root: Path  #: the tick store
    profile: dict  #: the replay engine's profile (a TOML table), without the run's settings
    speed: float
    at_ns: int | None  #: where to start (None: the day's first record)
    first_ns: int  #: the day's first and last records (any instrument)
    last_ns: int
    what: str  #: what is reviewed, for people ("2026-11-23 with paper.toml")


def _parse_at(text: str, day: str) -> int:
    """``HH:MM:SS[.fff]`` on ``day`` (UTC), or an ISO 8601 time (UTC unless it has an offset)."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?", text.strip())
    if m:
        h, mi, s = int(m[1]), int(m[2]), int(m[3])
        if h > 23 or mi > 59 or s > 59:
            raise ReviewError(f"--at {text!r} is not a time of day (00:00:00 .. 23:59:59.999)")
        frac = int((m[4] or "0").ljust(9, "0"))
        midnight = int(dt.datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp()) * NS
        return midnight + ((h * 60 + mi) * 60 + s) * NS + frac
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReviewError(f"--at {text!r} is not a time: write HH:MM:SS[.mmm] (UTC) or an ISO "
                          f"8601 time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    if t.astimezone(dt.timezone.utc).date().isoformat() != day:
        raise ReviewError(f"--at {text!r} is not on the reviewed day {day}")
    return int(t.timestamp()) * NS + t.microsecond * 1000


def _clock(ns: int) -> str:
    from engine.feeds.sources import clock_text

    return clock_text(ns)


def _find_profile(name: str, folder: Path) -> Path | None:
    from engine.core.paths import resources_dir

    for d in (folder, Path.cwd(), resources_dir() / "profiles"):
        if (d / name).is_file():
            return d / name
    return None


def _day_span(root: Path, day: str, symbols: set[str]) -> tuple[int, int]:
    """The day's first and last record times (of ``symbols``' instruments)."""
    import numpy as np

    from engine.feeds.tickstore import TickDay, TickStoreError, list_days

    days = list_days(root)
    if day not in days:
        have = f"days there: {', '.join(days)}" if days else (
            "no days recorded there" if root.is_dir() else "no such folder")
        raise ReviewError(f"no ticks for {day} in the tick store {root} ({have})")
    try:
        td = TickDay(root, day)
    except TickStoreError as e:
        raise ReviewError(str(e)) from None
    try:
        if not symbols & {i.symbol for i in td.instruments}:
            raise ReviewError(f"{day} in {root} has no records of the profile's instruments "
                              f"({', '.join(sorted(symbols))}); recorded: "
                              f"{', '.join(i.symbol for i in td.instruments)}")
        first, last = None, None
        for readers in td.readers.values():
            for r in readers:
                if len(r):
                    t = np.asarray(r.records["recv_ns"])
                    lo, hi = int(t.min()), int(t.max())
                    first = lo if first is None else min(first, lo)
                    last = hi if last is None else max(last, hi)
    finally:
        td.close()
    if first is None:
        raise ReviewError(f"{day} in {root} holds no records")
    return first, last


def _engine_profile(data: dict, instance: str, with_trading: bool) -> dict:
    """The replay engine's profile from a desk's: instruments, users, limits, the engine's
    settings, and with ``with_trading`` its strategies and venues (each simulated in the
    engine, as a backtest runs them). Its database, feed and anything live are left out."""
    engine = dict(data.get("engine", {}))
    engine["instance"] = instance
    out: dict = {"engine": engine}
    for key in ("desk", "users", "limits"):
        if key in data:
            out[key] = data[key]
    out["instruments"] = data.get("instruments", [])
    feed = {k: v for k, v in data.get("feed", {}).items() if k == "silence_ms"}
    out["feed"] = feed
    if with_trading:
        if "var" in data:
            out["var"] = data["var"]
        if data.get("strategies"):
            out["strategies"] = data["strategies"]
        venues = []
        for v in data.get("venues", []):
            keep = {k: v[k] for k in ("name", "symbols", "heartbeat_s", "fee_bps", "latency_us",
                                      "queue_model", "sender") if k in v}
            keep["kind"] = "sim"
            venues.append(keep)
        if venues:
            out["venues"] = venues
    return out


def plan_review(*, day: str | None, profile: str | None = None, report: str | None = None,
                data: str | None = None, speed: float = 1.0, at: str | None = None,
                instance: str | None = None) -> ReviewPlan:
    """Check what ``helmdesk review`` was asked; ``ReviewError`` names the input and why."""
    from engine.core.paths import demo_profile_path
    from engine.core.profile import ProfileError, load_profile
    from engine.feeds.sources import ReplaySource
    from engine.feeds.tickstore import default_root

    if not ReplaySource.SPEED_MIN <= speed <= ReplaySource.SPEED_MAX:
        raise ReviewError(f"--speed must be {ReplaySource.SPEED_MIN:g} .. "
                          f"{ReplaySource.SPEED_MAX:g}, was {speed:g}")
    summary_from = None
    if report is not None:
        folder = Path(report)
        path = folder / "summary.json"
        try:
            summary = json.loads(path.read_text())
        except FileNotFoundError:
            raise ReviewError(f"--report {report}: no summary.json there (not a backtest's "
                              f"report folder)") from None
        except (OSError, ValueError) as e:
            raise ReviewError(f"--report {report}: cannot read summary.json: {e}") from None
        days = list(summary.get("days") or [])
        if not days:
            raise ReviewError(f"--report {report}: the backtest replayed no day")
        if day is None:
            day = days[0]
        elif day not in days:
            raise ReviewError(f"--day {day} is not a day of the backtest in {report} "
                              f"(its days: {', '.join(days)})")
        if profile is None:
            name = str(summary.get("profile") or "")
            found = _find_profile(name, folder) if name else None
            if found is None:
                raise ReviewError(f"--report {report}: the backtest's profile {name!r} is not in "
                                  f"the folder, the current directory or the bundled profiles: "
                                  f"give it with --profile")
            profile = str(found)
        start = str(summary.get("from") or "")
        if "T" in start and start.startswith(day):
            summary_from = start
    if day is None:
        raise ReviewError("which day: --day YYYY-MM-DD (or --report FOLDER)")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        raise ReviewError(f"--day must be YYYY-MM-DD, was {day!r}")
    try:
        dt.date.fromisoformat(day)
    except ValueError:
        raise ReviewError(f"--day {day!r} is not a date") from None
    path = Path(profile) if profile else demo_profile_path()
    try:
        loaded = load_profile(path)
        raw = tomllib.loads(path.read_text())
    except ProfileError as e:
        raise ReviewError(str(e)) from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ReviewError(f"--profile {path}: {e}") from None
    root = Path(data or loaded.feed.ticks_dir or default_root()).expanduser().resolve()
    symbols = {i.symbol for i in loaded.instruments}
    first, last = _day_span(root, day, symbols)
    at_ns = None
    at = at or summary_from
    if at:
        at_ns = _parse_at(at, day)
        if not first <= at_ns <= last:
            raise ReviewError(f"--at {at} is outside the recording of {day}: it runs from "
                              f"{_clock(first)} to {_clock(last)} (UTC)")
    instance = instance or f"review-{os.getpid()}"
    what = f"{day}" + (f" with {path.name}" if profile else " (demo instruments)")
    return ReviewPlan(instance=instance, day=day, root=root,
                      profile=_engine_profile(raw, instance, profile is not None), speed=speed,
                      at_ns=at_ns, first_ns=first, last_ns=last, what=what)


# -- THE REPLAY ENGINE ---------------------------------------------------------------------------
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string is JSON's
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def toml_text(data: dict, _prefix: str = "") -> str:
    """``data`` (what ``tomllib`` reads) as TOML text."""
    lines, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((k, v, False))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v, True))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v, array in tables:
        name = f"{_prefix}{_toml_key(k)}"
        for item in (v if array else [v]):
            out += f"\n[[{name}]]\n" if array else f"\n[{name}]\n"
            out += toml_text(item, f"{name}.")
    return out


class ReviewSession:
    """The replay engine of a ``ReviewPlan``: started, restarted at an earlier time, stopped.
    Each engine it starts has a data directory of its own under ``folder``."""

    def __init__(self, plan: ReviewPlan, folder: Path) -> None:
        self.plan = plan
        self.folder = Path(folder)
        self.runs = 0
        self.proc: subprocess.Popen | None = None

    def _launch(self, at_ns: int | None, paused: bool) -> subprocess.Popen:
        """Write the run's profile and start its engine (in this thread: the engine follows
        this process with PR_SET_PDEATHSIG, which a thread's end would fire)."""
        from engine.feeds.sources import clock_text

        plan = self.plan
        self.runs += 1
        run = self.folder / f"run-{self.runs}"
        run.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = dict(plan.profile)
        feed = dict(data.get("feed", {}), kind="replay", day=plan.day, speed=plan.speed,
                    ticks_dir=str(plan.root), paused=paused)
        if at_ns is not None:
            ns = at_ns % (86_400 * NS)
            feed["at"] = f"{clock_text(at_ns)[:8]}.{ns % NS:09d}"
        data["feed"] = feed
        path = run / "review.toml"
        path.write_text(f"# helmdesk review {plan.what}: written by the review launcher\n"
                        + toml_text(data))
        env = dict(os.environ, HELMDESK_DATA_DIR=str(run / "data"))
        return subprocess.Popen(
            module_command("engine", "--profile", str(path), "--parent-pid", str(os.getpid())),
            env=env, stdin=subprocess.DEVNULL)

    def _ready(self, at_ns: int | None) -> str | None:
        """None once the engine runs and stands where it was asked; else what it waits for
        (an engine that exited raises)."""
        from engine.ipc import EngineClient, IpcError

        rc = self.proc.poll()
        if rc is not None:
            raise ReviewError(f"the replay engine exited with code {rc} while starting (its log "
                              f"is under {self.folder})")
        try:
            with EngineClient(self.plan.instance, commands=False) as c:
                if c.status().state != "running" or c.pid != self.proc.pid:
                    return "starting"
                st = c.replay_state()
        except IpcError:
            return "starting"
        if st is None:
            return "starting"
        if at_ns is not None and st.now_ns < at_ns - 1000:
            return f"catching up: {_clock(st.now_ns)}"
        return None

    def start(self, at_ns: int | None = None, paused: bool | None = None,
              timeout: float = 60.0) -> None:
        """Start the engine and wait until it runs (and has caught up to ``at_ns``)."""
        at_ns = self.plan.at_ns if at_ns is None else at_ns
        paused = (at_ns is not None) if paused is None else paused
        self.proc = self._launch(at_ns, paused)
        deadline = time.monotonic() + timeout
        while (why := self._ready(at_ns)) is not None:
            if time.monotonic() > deadline:
                self.stop()
                raise ReviewError(f"the replay engine did not start within {timeout:g} s ({why})")
            time.sleep(0.05)

    async def restart(self, at_ns: int, timeout: float = 120.0) -> None:
        """Stop the engine; start a new one that catches up to ``at_ns`` and stands there,
        paused. Waits without blocking the desk's event loop."""
        await self._stop_async()
        self.proc = self._launch(at_ns, True)
        deadline = time.monotonic() + timeout
        while (why := self._ready(at_ns)) is not None:
            if time.monotonic() > deadline:
                raise ReviewError(f"the restarted replay engine did not reach {_clock(at_ns)} "
                                  f"within {timeout:g} s ({why})")
            await asyncio.sleep(0.05)

    async def _stop_async(self, timeout: float = 10.0) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while p.poll() is None:
            if time.monotonic() > deadline:
                p.kill()
                break
            await asyncio.sleep(0.02)
        p.wait()

    def stop(self, timeout: float = 10.0) -> int | None:
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode


# -- THE DESK'S SIDE -----------------------------------------------------------------------------
class ReviewController(QObject):
    """A ``ReplayBar`` driving the replay engine behind an ``EngineLink`` (module docstring).

    ``restart(at_ns)``: a coroutine that restarts the replay at an earlier time (the review
    session's); without it a jump backwards goes to the engine, which refuses it and says
    why."""

    answered = Signal(str, bool)  #: the status line's words, accepted or not

    def __init__(self, link, bar,
                 restart: Callable[[int], Awaitable[None]] | None = None, parent=None) -> None:
        super().__init__(parent or link)
        self.link = link
        self.bar = bar
        self.restart = restart
        self.state = None  #: the last ReplayState read
        self.busy = ""  #: what is going on that keeps the bar up (a restart)
        self._tasks: set[asyncio.Future] = set()
        bar.setVisible(False)
        link.health_changed.connect(self.refresh)
        bar.play_requested.connect(lambda: self._start(self._send(2, 0.0, "play")))
        bar.pause_requested.connect(lambda: self._start(self._send(1, 0.0, "pause")))
        bar.speed_requested.connect(lambda x: self._start(self._send(3, float(x), "speed")))
        bar.jump_requested.connect(lambda ns: self._start(self.jump(int(ns))))

    # -- reading ---------------------------------------------------------------------------------
    def refresh(self, _health=None) -> None:
        """Read the replay position (on every link poll)."""
        c = self.link.client
        st = None
        if c is not None:
            try:
                st = c.replay_state()
            except Exception:  # a segment going away under us: read again at the next poll
                st = None
        self.state = st
        if st is None:
            self.bar.setVisible(bool(self.busy))
            return
        if not self.bar.isVisible():
            self.bar.setVisible(True)
        self.bar.set_state(st.first_ns, st.last_ns, st.now_ns, st.speed, st.paused)

    # -- commands --------------------------------------------------------------------------------
    def _start(self, coro) -> asyncio.Future:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _say(self, text: str, ok: bool) -> None:
        self.bar.set_status(text, ok)
        self.answered.emit(text, ok)

    async def _send(self, action: int, arg1: float, what: str,
                    timeout: float = 2.0) -> None:
        from engine.ipc import IpcError, Verb

        if self.busy:
            self._say(f"{what} not sent: {self.busy}", False)
            return
        try:
            ack = await self.link.command(Verb.REPLAY, arg0=float(action), arg1=arg1,
                                          timeout=timeout)
        except (IpcError, asyncio.TimeoutError) as e:
            self._say(f"{what}: no answer from the engine ({e or 'timed out'})", False)
            return
        self.refresh()
        self._say(ack.reason, ack.accepted)

    async def jump(self, target_ns: int) -> None:
        """Forward: the engine catches up (its answer comes when it is there). Backward: a
        restart at that time, if this controller has one; else the engine's refusal."""
        st = self.state
        if (st is not None and self.restart is not None and target_ns < st.now_ns
                and st.first_ns <= target_ns <= st.last_ns):
            await self._restart(target_ns)
            return
        await self._send(4, float(target_ns), "jump", timeout=JUMP_TIMEOUT_S)

    async def _restart(self, target_ns: int) -> None:
        if self.busy:
            self._say(f"jump not done: {self.busy}", False)
            return
        at = _clock(target_ns)
        self.busy = f"restarting the replay at {at}"
        self._say(f"{self.busy}: orders and fills cannot un-happen, so the day is replayed "
                  f"from its start to {at} …", True)
        try:
            await self.restart(target_ns)
        except Exception as e:  # the engine would not start: say so, the desk stays up
            self._say(f"restart at {at} failed: {e}", False)
            return
        finally:
            self.busy = ""
        # the link re-attaches by itself; the new engine is the one standing at the time (the
        # old one was later than it)
        deadline = time.monotonic() + 10.0
        while True:
            self.link.poll()
            self.refresh()
            st = self.state
            if st is not None and abs(st.now_ns - target_ns) <= 1000:
                break
            if time.monotonic() > deadline:
                self._say(f"restarted at {at}, but the desk has not attached to it yet", False)
                return
            await asyncio.sleep(0.05)
        self._say(f"at {_clock(st.now_ns)}, {'paused' if st.paused else 'playing'} "
                  f"(replay restarted)", True)


def install(win, restart: Callable[[int], Awaitable[None]] | None = None) -> ReviewController:
    """The desk window's review controller (``win.review``: DeskWindow makes it, with its
    replay bar ``win.replaybar``), given ``restart``: how to start the replay again at an
    earlier time (a backward jump)."""
    win.review.restart = restart
    return win.review


# -- THE COMMAND ---------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """``helmdesk review``: plan, start the replay engine, open the desk on it."""
    from app.launch import Terminated, display_problem, stop_on_signals
    from engine.core.paths import data_dir

    problem = display_problem()
    if problem:
        print(f"helmdesk: {problem}", file=sys.stderr)
        return 2
    try:
        plan = plan_review(day=args.day, profile=args.profile, report=args.report,
                           data=args.data, speed=args.speed, at=args.at, instance=args.instance)
    except ReviewError as e:
        print(f"helmdesk review: {e}", file=sys.stderr)
        return 2
    folder = data_dir() / "reviews" / plan.instance
    session = ReviewSession(plan, folder)
    stop_on_signals()
    print(f"helmdesk review: replaying {plan.what} as engine {plan.instance!r} "
          f"({_clock(plan.first_ns)} .. {_clock(plan.last_ns)} UTC) …", file=sys.stderr,
          flush=True)
    try:
        session.start()
    except ReviewError as e:
        print(f"helmdesk review: {e}", file=sys.stderr)
        return 3
    except (Terminated, KeyboardInterrupt):
        session.stop()
        return 130
    try:
        return _run_window(args, plan, session)
    except (Terminated, KeyboardInterrupt):
        return 130
    finally:
        rc = session.stop()
        print(f"helmdesk review: replay engine stopped (exit {rc}); its files are in {folder}",
              file=sys.stderr)


def _run_window(args: argparse.Namespace, plan: ReviewPlan, session: ReviewSession) -> int:
    from app.desk import run_desk_window
    from engine.core.profile import DeskConfig

    def setup(win) -> None:
        install(win, session.restart)
        win.setWindowTitle(f"Helmdesk review — {plan.what}")

    return run_desk_window(plan.instance, DeskConfig(name="review"), instrument=args.instrument,
                           exit_after=args.exit_after, screenshot=args.screenshot,
                           app_name="Helmdesk review", setup=setup)

