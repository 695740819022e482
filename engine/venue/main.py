"""``helmdesk venue --profile PATH [--port N]``: run a simulated exchange until signalled.

Prints one line to stderr once listening (tests and benchmarks read the port from it)::

    helmdesk venue SIMA: listening on 127.0.0.1:40123, 2 instruments, counterparties HELM,
    HELM2, drop copy HELMDC; log /…/logs/venue-SIMA.log          (one line; ", drop copy
    …" only with [venue] drop_copy)

SIGTERM or SIGINT logs the sessions out and exits 0. Exit 2: a bad profile or argument, or
a ``[venue] password`` whose reference cannot be read; exit 3: the port cannot be listened on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from engine.core.profile import Profile, ProfileError, load_profile

__all__ = ["main", "add_arguments", "run"]

log = logging.getLogger("helmdesk.venue")


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, was {text!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, was {n}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, help="venue profile (TOML with a [venue] section)")
    p.add_argument("--port", type=_port, metavar="N",
                   help="override [venue].port (0: any free port)")


def run(args: argparse.Namespace) -> int:
    from engine.logs import setup_logging

    try:
        profile = load_profile(args.profile)
    except ProfileError as e:
        print(f"helmdesk venue: {e}", file=sys.stderr)
        return 2
    if profile.venue is None:
        print(f"helmdesk venue: {profile.path}: no [venue] section: a venue's profile names "
              f"the venue and its counterparties (see engine/core/profile.py)", file=sys.stderr)
        return 2
    try:
        password = profile.venue_password()  # read now, not at load: a profile validates
    except ProfileError as e:                # without the environment it runs in
        print(f"helmdesk venue: {e}", file=sys.stderr)
        return 2
    name = profile.venue.name
    log_path, listener = setup_logging(f"venue-{name}")
    try:
        log.info("venue %s starting, pid %d, profile %s", name, os.getpid(), profile.path)
        return asyncio.run(_serve(profile, args.port, log_path, password))
    finally:
        listener.stop()


async def _serve(profile: Profile, port: int | None, log_path: Path, password: str) -> int:
    from engine.venue.server import Venue

    cfg = profile.venue
    venue = Venue(cfg, profile.instruments, port=port, password=password)
    try:
        await venue.start()
    except OSError as e:
        print(f"helmdesk venue {cfg.name}: cannot listen on {cfg.host}:{venue.port}: "
              f"{e.strerror or e}", file=sys.stderr)
        return 3
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    drop_copy = f", drop copy {', '.join(cfg.drop_copy)}" if cfg.drop_copy else ""
    print(f"helmdesk venue {cfg.name}: listening on {cfg.host}:{venue.port}, "
          f"{len(profile.instruments)} instruments, counterparties "
          f"{', '.join(cfg.counterparties)}{drop_copy}; log {log_path}", file=sys.stderr,
          flush=True)
    await stop.wait()
    log.info("venue %s: signalled, logging sessions out", cfg.name)
    await venue.stop()
    # Done: a second signal must not kill the exit half-way (see engine/main.py).
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="helmdesk venue", description="run a simulated exchange")
    add_arguments(p)
    return run(p.parse_args(argv))
