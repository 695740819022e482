"""The ``helmdesk`` command. Imports no Qt until a subcommand needs a window.

    helmdesk                      the demo: an engine with the demo profile and a desk on it
    helmdesk --headless           the demo engine with a live status line, no Qt
    helmdesk engine --profile P   the headless engine
    helmdesk desk --attach NAME   a desk attached to a running engine
    helmdesk venue --profile P    a simulated exchange (FIX acceptor, matching engine)
    helmdesk backtest --profile P --from D1 --to D2   the engine over recorded days, simulated
                                  venues, a report folder (metrics, equity chart, report.html)
    helmdesk review --day D [--profile P] [--speed N] [--at TIME] | --report FOLDER
                                  a replay engine of a recorded day and a desk that scrubs it
                                  (play, pause, speed, jump to a time)
    helmdesk ctl status|kill|rearm|order|cancel|cancel-all|orders|audit|strategy   commands for scripts and runbooks
    helmdesk import-ticks FILE.csv  quotes and trades into the tick store; ticks info: what is there
    helmdesk --version

$HELMDESK_PROFILE, when set, is every --profile's default (an installed workstation's
/usr/bin/helmdesk sets it to /etc/helmdesk/<workstation>.toml); $HELMDESK_INSTANCE is the
default instance of desk --attach and ctl.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["main", "version"]


def version() -> str:
    """The package's version; a packaged build adds its git commit and workstation
    (``build.json``, written by packaging/build.py)."""
    from engine.core.paths import resources_dir

    stamp = resources_dir() / "build.json"
    if stamp.is_file():
        import json

        try:
            b = json.loads(stamp.read_text())
            return f"{b['version']} (commit {b['commit']}, workstation {b['workstation']})"
        except (OSError, ValueError, KeyError):
            pass
    try:
        from importlib.metadata import version as v

        return v("helmdesk")
    except Exception:
        from engine import __version__

        return __version__


def _default_instance() -> str:
    return os.environ.get("HELMDESK_INSTANCE", "demo")


def _desk_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instrument", help="symbol shown in the ladder first")
    p.add_argument("--exit-after", type=float, metavar="SECONDS",
                   help="close by itself after SECONDS (scripted runs, screenshots)")
    p.add_argument("--screenshot", metavar="PNG", help="save a picture of the desk when closing")


def build_parser() -> argparse.ArgumentParser:
    from engine.main import add_arguments as engine_arguments
    from engine.venue.main import add_arguments as venue_arguments

    p = argparse.ArgumentParser(
        prog="helmdesk",
        description="Helmdesk trading desk. With no command: the demo engine and desk.",
    )
    p.add_argument("--version", action="version", version=f"helmdesk {version()}")
    p.add_argument("--headless", action="store_true",
                   help="demo engine only, with a live status line (no window)")
    p.add_argument("--profile", help="profile for the demo (default: the bundled demo profile)")
    p.add_argument("--error-dialog", action="store_true",
                   help="show why the profile or the engine could not start in a window too "
                        "(the desktop entry's launch, with no terminal to read it)")
    _desk_options(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser("engine", help="run the headless engine")
    engine_arguments(e)

    d = sub.add_parser("desk", help="open a desk attached to a running engine")
    d.add_argument("--attach", metavar="NAME", default=None,
                   help="engine instance to attach to (default: the --profile's engine, else "
                        "$HELMDESK_INSTANCE, else demo)")
    d.add_argument("--profile", help="profile whose [desk] section to use")
    _desk_options(d)

    v = sub.add_parser("venue", help="run a simulated exchange (FIX 4.4 acceptor)")
    venue_arguments(v)

    from engine.backtest.main import add_arguments as backtest_arguments

    b = sub.add_parser("backtest", help="run the engine over recorded days with simulated "
                                        "venues; write a report folder")
    backtest_arguments(b)

    _review_parser(sub)

    c = sub.add_parser("ctl", help="send a command to a running engine")
    c.add_argument("--instance", default=None,
                   help="engine instance (default: $HELMDESK_INSTANCE or demo)")
    c.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the ack")
    csub = c.add_subparsers(dest="verb", metavar="VERB", required=True)
    csub.add_parser("status", help="engine pid, epoch, heartbeat, kill state, instruments")
    scopes = ("global, or KIND:NAME with KIND instrument, strategy, venue, account or trader "
              "(helmdesk ctl status lists them)")
    k = csub.add_parser("kill", help="trip a kill switch (global unless --scope)")
    k.add_argument("--scope", metavar="SCOPE", help=scopes)
    k.add_argument("--instrument", metavar="SYMBOL", help="the same as --scope instrument:SYMBOL")
    k.add_argument("--state", type=str.lower, choices=("reducing", "halted"), default="halted",
                   help="reducing: only orders that reduce positions pass; halted (default): "
                        "nothing passes, every working order in scope is cancelled")
    k.add_argument("--reason", default="", help="why (kept in the audit trail)")
    r = csub.add_parser("rearm", help="re-arm a tripped kill switch (risk manager)")
    r.add_argument("--scope", metavar="SCOPE", help=scopes)
    r.add_argument("--instrument", metavar="SYMBOL", help="the same as --scope instrument:SYMBOL")
    r.add_argument("--reason", required=True, help="why it is safe again (required)")
    r.add_argument("--confirm", metavar="NAME",
                   help="the scope's name typed again (global, strategy:pairs, ...): required")
    r.add_argument("--to", type=str.lower, choices=("active", "reducing"), default="active",
                   help="active (default), or reducing: from HALTED to REDUCING only")
    lim = csub.add_parser("limits", help="the risk limits and how much of each is used; "
                                         "'limits set' changes one (risk manager)")
    lsub = lim.add_subparsers(dest="limits_verb", metavar="ACTION")
    ls = lsub.add_parser("set", help="change one limit (risk manager; audited)")
    ls.add_argument("key", help="the limit's key, as in [limits] (max_order_qty, ...)")
    ls.add_argument("value", type=float, help="the new value")
    ls.add_argument("--scope", default="global",
                    help="global (the desk's own and the default), instrument:X, strategy:X, "
                         "account:X or venue:X")
    ls.add_argument("--reason", required=True, help="why (required; audited)")
    pos = csub.add_parser("positions", help="positions and P&L per book and instrument")
    pos.add_argument("--book", help="only this book (desk, strategy:NAME, account:NAME)")
    rc = csub.add_parser("recon", help="differences a restart found between the database and "
                                       "the venues; accept or correct one (risk manager)")
    rsub = rc.add_subparsers(dest="recon_verb", metavar="ACTION")
    for name, what in (("accept", "keep the engine's figure (an order's venue fills are "
                                  "already applied)"),
                       ("correct", "book the venue's position")):
        a = rsub.add_parser(name, help=what)
        a.add_argument("diff_id", type=_positive_int, metavar="ID")
        a.add_argument("--reason", required=True, help="why (required; audited)")
    st = csub.add_parser("strategy", help="the strategies, their state and key figures; "
                                          "pause, resume or stop one (trader)")
    ssub = st.add_subparsers(dest="strategy_verb", metavar="ACTION")
    for name, what in (("pause", "stop new signals (its orders stay; a market maker pulls "
                                 "its quotes)"),
                       ("resume", "run again (a strategy a HALTED kill switch paused resumes "
                                  "only when the switch is re-armed)"),
                       ("stop", "stop it until the engine restarts: its working orders are "
                                "cancelled")):
        a = ssub.add_parser(name, help=what)
        a.add_argument("name", metavar="NAME", help="the strategy's name ([[strategies]] name)")
        a.add_argument("--reason", default="", help="why (kept in the audit trail)")
    csub.add_parser("ping", help="round trip through the command ring")
    o = csub.add_parser("order", help="send a manual order (trader)")
    o.add_argument("--venue", required=True, help="venue name from the engine's profile")
    o.add_argument("--symbol", required=True)
    o.add_argument("--side", required=True, type=str.lower, choices=("buy", "sell"))
    o.add_argument("--qty", required=True, type=_positive_int, help="a whole number")
    o.add_argument("--price", type=_positive_float, help="limit price (omit for a market order)")
    o.add_argument("--tif", default="day", type=str.lower, choices=("day", "ioc", "fok"))
    o.add_argument("--no-wait", action="store_true",
                   help="return once the engine sent it, without waiting for the venue's answer")
    x = csub.add_parser("cancel", help="cancel one order by its ClOrdID")
    x.add_argument("order_id", metavar="ID")
    w = csub.add_parser("orders", help="orders from the engine's database, the venue's "
                                       "identifiers whole (the engine need not run)")
    w.add_argument("order_id", metavar="ID", nargs="?",
                   help="one order, with its executions (ClOrdID)")
    w.add_argument("--profile", help="the engine's profile, for its [database] (default: the "
                                     "instance's SQLite file in the data directory)")
    w.add_argument("--last", type=_positive_int, default=20, help="how many (newest first)")
    _audit_parser(csub)
    a = csub.add_parser("cancel-all", help="cancel every live order (in scope)")
    a.add_argument("--instrument", "--scope", dest="instrument", metavar="SYMBOL",
                   help="only this instrument's orders")
    a.add_argument("--venue", default="", help="only this venue's orders")

    from app.ticks import add_parsers as ticks_parsers  # import-ticks, ticks info

    ticks_parsers(sub)
    _profile_from_environment(p, os.environ.get("HELMDESK_PROFILE", ""))
    return p


def _profile_from_environment(parser: argparse.ArgumentParser, path: str) -> None:
    """Every --profile (of every subcommand) defaults to ``path`` when it is set: an installed
    workstation runs its own profile without being told, the demo's is for a developer."""
    if not path:
        return
    for action in parser._actions:
        if action.dest == "profile":
            action.default, action.required = path, False
            action.help = f"{action.help or 'profile'}; here $HELMDESK_PROFILE: {path}"
        elif isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _profile_from_environment(sub, path)


def _review_parser(sub) -> None:
    p = sub.add_parser(
        "review", help="post-incident review: replay a recorded day (or a backtest's) in an "
                       "engine of its own, with a desk that plays, pauses, speeds up and jumps",
        description="Starts a replay engine of the day (the profile's instruments, strategies "
                    "and venues, simulated in the engine as a backtest runs them; without a "
                    "profile the demo profile's instruments) under an instance of its own, and "
                    "a desk on it with the replay bar. A jump back replays the day again from "
                    "its start up to that time (docs/operations.md).")
    p.add_argument("--day", metavar="YYYY-MM-DD", help="the recorded day (with --report: one of "
                   "the backtest's days; default its first)")
    p.add_argument("--report", metavar="FOLDER", help="a backtest's report folder: review its "
                   "day with its profile")
    p.add_argument("--profile", help="profile whose instruments, [[strategies]] and [[venues]] "
                   "replay the day (default: the demo profile's instruments only)")
    p.add_argument("--data", "--ticks", dest="data", metavar="DIR",
                   help="tick store root (default: the profile's [feed] ticks_dir, else "
                        "<data dir>/ticks)")
    p.add_argument("--speed", type=_positive_float, default=1.0, metavar="N",
                   help="playing speed, 0.1 .. 1000 times the recorded pace (default 1)")
    p.add_argument("--at", metavar="TIME", help="start there, paused: HH:MM:SS[.mmm] (UTC) or "
                   "ISO 8601; every record before it is applied first")
    p.add_argument("--instance", help="the replay engine's instance (default: review-PID)")
    _desk_options(p)


def _audit_parser(csub) -> None:
    from engine.store.audit import KINDS

    u = csub.add_parser(
        "audit", help="the audit trail from the engine's database: commands and their answers, "
                      "orders, executions, kill switch and limit changes (the engine need not "
                      "run)",
        description="Prints the audit trail oldest first, one line per entry: time (UTC), who, "
                    "role, workstation, kind, what, and the engine's answer after '=>'. WHEN is "
                    "an ISO time (2026-12-04T10:00, 2026-12-04: UTC unless it has an offset) or "
                    "a time ago (30s, 15m, 2h, 1d, 1w).")
    u.add_argument("--since", metavar="WHEN", help="entries at or after WHEN")
    u.add_argument("--until", metavar="WHEN", help="entries before WHEN")
    u.add_argument("--kind", action="append", choices=KINDS,
                   help="only this kind (repeat for several; default: all)")
    u.add_argument("--last", type=_positive_int, metavar="N",
                   help="only the newest N (default: 100, or all with --since)")
    u.add_argument("--profile", help="the engine's profile, for its [database] (default: the "
                                     "instance's SQLite file in the data directory)")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, was {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, was {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, was {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, was {text!r}")
    return v


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "engine":
        from engine.main import run

        return run(args)
    if args.command == "backtest":
        from app.reportchart import render_or_why
        from engine.backtest.main import run as backtest_run

        return backtest_run(args, chart=render_or_why)
    if args.command == "venue":
        from engine.venue.main import run as venue_run

        return venue_run(args)
    if args.command == "ctl":
        from app.ctl import run as ctl_run

        return ctl_run(args, args.instance or _default_instance())
    if args.command in ("import-ticks", "ticks"):
        from app.ticks import run as ticks_run

        return ticks_run(args)
    if args.command == "review":
        from app.review import run as review_run

        return review_run(args)
    if args.command == "desk":
        from app.launch import run_desk

        return run_desk(args, args.attach, _default_instance())
    if args.headless:
        from app.launch import run_headless

        return run_headless(args)
    from app.launch import run_demo

    return run_demo(args)
