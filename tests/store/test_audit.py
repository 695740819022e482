"""The audit trail: written by every engine (the demo too), read back by `helmdesk ctl audit`."""

from __future__ import annotations

import pytest

from app.cli import main
from engine.execution.orders import OrdStatus
from engine.ipc import EngineClient, Scope, Verb
from engine.store import read_audit
from engine.store.audit import format_ts, parse_when
from tests.store._util import flushed

H = 3_600_000_000_000  # an hour in ns
T0 = 1_796_378_400_000_000_000  # 2026-12-04 10:00:00 UTC


def test_when_takes_iso_times_dates_and_times_ago():
    assert format_ts(T0) == "2026-12-04 10:00:00.000000Z"
    assert parse_when("2026-12-04T10:00", 0) == T0  # UTC unless it says otherwise
    assert parse_when("2026-12-04T11:00+01:00", 0) == T0
    assert parse_when("2026-12-04T10:00:00Z", 0) == T0
    assert parse_when("2026-12-04", 0) == T0 - 10 * H
    assert parse_when("15m", T0) == T0 - H // 4
    assert parse_when("2h", T0) == T0 - 2 * H
    assert parse_when(" 1d ", T0) == T0 - 24 * H
    assert parse_when("1.5h", T0) == T0 - 3 * H // 2
    for bad in ("15x", "yesterday", "2026-13-01", "", "-2h"):
        with pytest.raises(ValueError, match=f"^{bad!r} is not a time: give an ISO time"):
            parse_when(bad, T0)


def _trail(link) -> None:
    """A command and what it did, an order with its fill, a limit edit: an hour apart each."""
    link.put_limit("bob", "risk_manager", "ws-9", "instrument:ESZ6", "max_order_qty", "100",
                   "250", "client asked", T0)
    link.put_command(7, "ana", "ws-3", 1, int(Verb.KILL), int(Scope.INSTRUMENT), 2, 0.0, 0.0,
                     "fat finger", 1, "instrument AAPL kill switch TRIPPED", T0 + H)
    link.put_kill("AAPL", 1, 2, True, "ana", "fat finger", T0 + H, state="halted",
                  scope_name="instrument:AAPL")
    link.put_order("HD-1", "SIMA", "ESZ6", 1, 10, 5000.25, "day", OrdStatus.PARTIALLY_FILLED, 4,
                   6, 5000.0, "V-" + "9" * 60, "", T0 + 2 * H, T0 + 3 * H)
    link.put_execution("E-1", "SIMA", "HD-1", "ESZ6", 1, 4, 5000.0, T0 + 3 * H)
    link.put_command(8, "ana", "ws-3", 0, int(Verb.REARM), 0, 0, 0.0, 0.0, "", 2,
                     "only a risk manager may re-arm", T0 + 4 * H)
    flushed(link)


def test_the_trail_is_merged_in_time_order_and_selected(link, url):
    _trail(link)
    every = read_audit(url)
    assert [(e.ts_ns - T0) // H for e in every] == [0, 1, 1, 2, 3, 4]
    assert [e.kind for e in every] == ["limits", "commands", "kills", "orders", "executions",
                                       "commands"]
    lines = [e.line() for e in every]
    assert lines[0].startswith("2026-12-04 10:00:00.000000Z  bob          risk_manager   ws-9")
    assert lines[0].endswith("limit      instrument:ESZ6 max_order_qty 100 -> 250: 'client asked'")
    assert "ana          trader" in lines[1]
    assert lines[1].endswith("KILL instrument #2 'fat finger'  => ACCEPTED: instrument AAPL kill "
                             "switch TRIPPED")
    assert lines[2].endswith("kill       instrument:AAPL HALTED: 'fat finger'")
    assert lines[3].startswith("2026-12-04 12:00:00.000000Z  -            -              -")
    assert lines[3].endswith("HD-1 SIMA ESZ6 buy 10 @ 5000.25 day  => PartiallyFilled 4/10 at "
                             "5000, venue id V-" + "9" * 60)  # whole, however long
    assert lines[4].endswith("execution  E-1 SIMA ESZ6 buy 4 @ 5000 for HD-1")
    assert lines[5].endswith("REARM  => REJECTED: only a risk manager may re-arm")

    assert [e.kind for e in read_audit(url, since_ns=T0 + H, until_ns=T0 + 3 * H)] == [
        "commands", "kills", "orders"]
    assert [e.kind for e in read_audit(url, kinds=["kills", "limits"])] == ["limits", "kills"]
    assert [e.ts_ns for e in read_audit(url, last=2)] == [T0 + 3 * H, T0 + 4 * H]
    assert read_audit(url, since_ns=T0 + 5 * H) == []
    with pytest.raises(ValueError, match="unknown audit kind 'fills'"):
        read_audit(url, kinds=["fills"])


def _profile(tmp_path, instance, url):
    p = tmp_path / "audit.toml"
    p.write_text(f'[engine]\ninstance = "{instance}"\n\n[database]\nurl = "{url}"\n\n'
                 f'[[instruments]]\nsymbol = "ESZ6"\ntick = 0.25\nprice = 5000.0\n')
    return str(p)


def test_ctl_audit_prints_the_trail_without_an_engine(link, url, instance, tmp_path, capsys):
    _trail(link)
    prof = _profile(tmp_path, instance, url)
    assert main(["ctl", "--instance", instance, "audit", "--profile", prof]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6 and "KILL instrument #2" in out[1] and "REJECTED" in out[5]
    assert main(["ctl", "audit", "--profile", prof, "--since", "2026-12-04T11:00",
                 "--until", "2026-12-04T13:00", "--kind", "orders", "--kind", "kills"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[5] for line in out] == ["kill", "order"]
    assert main(["ctl", "audit", "--profile", prof, "--last", "1"]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_ctl_audit_says_what_is_wrong_with_its_input(instance, tmp_path, capsys, data_dir):
    assert main(["ctl", "--instance", instance, "audit", "--since", "15x"]) == 2
    err = capsys.readouterr().err
    assert "helmdesk ctl: --since: '15x' is not a time: give an ISO time" in err
    assert main(["ctl", "audit", "--since", "1h", "--until", "2h"]) == 2
    assert "--since '1h' is not before --until '2h'" in capsys.readouterr().err
    assert main(["ctl", "--instance", instance, "audit"]) == 3
    assert f"no database for engine {instance!r} at sqlite:///" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ctl", "audit", "--kind", "fills"])
    assert "invalid choice: 'fills'" in capsys.readouterr().err


def test_an_engine_without_venues_keeps_its_audit_trail(engine_factory, instance, url,
                                                         tmp_path, capsys):
    """The demo's shape (simulated feed, no [[venues]]): its commands, with their answers,
    and its kill switch changes are in its database after it stops."""
    e = engine_factory(instance, extra=f'\n[database]\nurl = "{url}"\n').start()
    with EngineClient(instance) as c:
        acks = [c.request(Verb.KILL, Scope.INSTRUMENT, 2, text="AAPL halted"),
                c.request(Verb.REARM, Scope.INSTRUMENT, 2, text="fixed"),  # accepted or not
                c.request(Verb.PING)]
    assert acks[0].accepted
    assert e.stop() == 0
    assert main(["ctl", "audit", "--profile", str(e.profile)]) == 0
    out = capsys.readouterr().out.splitlines()
    commands = [line for line in out if line.split()[5] == "command"]
    kills = [line for line in out if line.split()[5] == "kill"]
    assert len(commands) == 3
    # each at its answer's time: a kill switch change is answered once its state file is on
    # disk, so the PING sent after a REARM may be answered (and written) before it
    for what, ack in zip(("KILL instrument #2 'AAPL halted'", "REARM instrument #2 'fixed'",
                          "PING"), acks):
        line = next(x for x in commands if what in x)
        assert f"=> {ack.status.name}" in line and ack.reason[:40] in line
    assert len(kills) == 1 + acks[1].accepted
    assert "instrument:AAPL HALTED: 'AAPL halted'" in kills[0]


def test_an_acknowledged_alert_is_in_the_trail_with_who_and_its_words(engine_factory, instance,
                                                                      url, capsys):
    e = engine_factory(instance, extra=f'\n[database]\nurl = "{url}"\n').start()
    with EngineClient(instance) as c:
        ok = c.request(Verb.ACK_ALERT, arg0=42.0, text="venue SIMA down")
        no_words = c.request(Verb.ACK_ALERT, arg0=43.0, text="  ")
        no_seq = c.request(Verb.ACK_ALERT, arg0=0.0, text="venue SIMA down")
        replay = c.request(Verb.REPLAY, arg0=1.0)
    assert ok.accepted and ok.reason.startswith("alert 42 acknowledged by ")
    assert not no_words.accepted and no_words.reason == "ACK_ALERT needs the alert's words"
    assert not no_seq.accepted and "needs the alert's event seq (arg0 ≥ 1), was 0" in no_seq.reason
    assert not replay.accepted and "plays no replay" in replay.reason
    assert e.stop() == 0
    assert main(["ctl", "audit", "--profile", str(e.profile), "--kind", "commands"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "ACK_ALERT" in x and "=> ACC" in x)
    assert "'venue SIMA down'" in line and "alert 42 acknowledged by" in line
