"""``helmdesk engine --profile PATH``: load, pin, create the segment, run until signalled."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from engine.core.profile import ProfileError, load_profile
from engine.ipc.segment import IpcError

__all__ = ["main", "add_arguments", "run"]

log = logging.getLogger("helmdesk.engine")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, help="engine profile (TOML)")
    p.add_argument("--instance", help="override the profile's [engine].instance")
    p.add_argument("--idle", choices=("spin", "hybrid", "sleep"), help="override [engine].idle")
    p.add_argument("--intents", metavar="CSV", help="scripted orders to send (paper trading: "
                   "the backtest's intents file format)")
    p.add_argument("--report", metavar="DIR", help="at the end, write every order, execution "
                   "and position to DIR as a backtest does")
    p.add_argument("--parent-pid", type=int, metavar="PID", help="stop (SIGTERM) when process "
                   "PID, our parent, dies: a launcher that owns this engine passes its own pid")


class _Stopped(BaseException):
    """A signal arrived while the engine was starting: unwind (removing what was made)."""


def _stop_while_starting(signum: int, _frame) -> None:
    raise _Stopped(signal.Signals(signum).name)


def follow_parent(parent_pid: int) -> bool:
    """Ask the kernel for SIGTERM when our parent dies (Linux PR_SET_PDEATHSIG). False when
    the parent is already gone (we were orphaned before asking): the caller should exit."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as e:  # not Linux: the check below still holds at start
        log.warning("cannot follow the parent process: %s", e)
    return os.getppid() == parent_pid


def run(args: argparse.Namespace) -> int:
    # until the loop runs, SIGTERM / SIGHUP / SIGINT unwind the start (the segment and the
    # store are removed again); then they ask the loop to stop
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _stop_while_starting)
    if args.parent_pid is not None and not follow_parent(args.parent_pid):
        print(f"helmdesk engine: the launcher (pid {args.parent_pid}) is gone: not starting",
              file=sys.stderr)
        return 3
    try:
        return _run(args)
    except _Stopped as e:
        print(f"helmdesk engine: {e} while starting: stopped", file=sys.stderr)
        return 128 + signal.Signals[str(e)].value


def _run(args: argparse.Namespace) -> int:
    from engine.logs import setup_logging
    from engine.node import LiveNode, pin_to_cores

    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        print(f"helmdesk engine: {e}", file=sys.stderr)
        return 2
    overrides = {}
    if args.instance:
        overrides["instance"] = args.instance
    if args.idle:
        overrides["idle"] = args.idle
    if overrides:
        try:
            from engine.core.profile import parse_profile  # re-validate the overridden value
            import tomllib

            data = tomllib.loads(profile.path.read_text())
            data.setdefault("engine", {}).update(overrides)
            profile = parse_profile(data, profile.path)
        except ProfileError as e:
            print(f"helmdesk engine: {e}", file=sys.stderr)
            return 2
    instance = profile.engine.instance
    log_path, listener = setup_logging(f"engine-{instance}")
    try:
        log.info("engine %s starting, pid %d, profile %s", instance, os.getpid(), profile.path)
        cores = pin_to_cores(profile.engine.cores)
        from engine.feeds.tickstore import TickStoreError
        from engine.store import StoreError

        from engine.strategy.registry import build as build_strategies

        report = None
        try:
            strategies = build_strategies(profile)
        except ProfileError as e:
            print(f"helmdesk engine: {e}", file=sys.stderr)
            return 2
        if args.intents:
            from engine.strategy.scripted import IntentsError, ScriptedIntents, load_intents

            try:
                strategies.append(ScriptedIntents(load_intents(
                    args.intents, {i.symbol for i in profile.instruments})))
            except IntentsError as e:
                print(f"helmdesk engine: {e}", file=sys.stderr)
                return 2
        if args.report:
            from engine.backtest.report import ReportJournal

            report = ReportJournal()
        try:
            engine = LiveNode(profile, strategies=strategies, journal_extra=report)
        except ProfileError as e:  # a secret a reference names cannot be read: one line
            log.error("cannot start: %s", e)  # warnings and errors reach stderr too
            return 2
        except (IpcError, StoreError, TickStoreError, OSError) as e:
            log.error("cannot start: %s", e)  # warnings and errors reach stderr too
            return 3
        except Exception:  # a bug: the traceback goes to the log, the segment is gone
            log.exception("cannot start: unexpected error (segment and store removed)")
            return 3
        try:
            engine.install_signal_handlers()
        except _Stopped:
            engine.close()
            raise
        print(
            f"helmdesk engine {instance}: pid {os.getpid()}, CPUs {sorted(cores)}, "
            f"idle {profile.engine.idle}, {len(profile.instruments)} instruments, log {log_path}",
            file=sys.stderr,
            flush=True,
        )
        try:
            engine.run()
        finally:
            engine.close()
            if report is not None:
                from pathlib import Path

                from engine.backtest.report import marks

                report.write(Path(args.report),
                             marks(engine.kernel.market, profile.instruments),
                             {"instance": instance, "records_applied": engine.kernel.market.applied})
            # Done: a late SIGTERM (a launcher stopping us after Ctrl-C reached the whole
            # process group) must not kill the exit half-way. Python puts signals it handled
            # back to their default at shutdown, but leaves ignored ones ignored.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 0
    finally:
        listener.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="helmdesk engine", description="run the headless engine")
    add_arguments(p)
    return run(p.parse_args(argv))
