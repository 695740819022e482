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


def run(args: argparse.Namespace) -> int:
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
        from engine.store import StoreError

        strategies, report = [], None
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
        except (IpcError, StoreError) as e:
            log.error("%s", e)  # warnings and errors reach stderr too
            return 3
        engine.install_signal_handlers()
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
