"""FIX Logon credentials end to end: a real venue process that requires a password, real
engine processes whose profiles refer to one, loopback FIX; what the operator sees (the
venue's state in shared memory, the desks' notices, the logs) and what the venue counted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from engine.ipc import EngineClient
from engine.ipc.events import event_text

from tests.conftest import wait_until
from tests.execution.test_engine_orders import USERS, venues_section
from tests.venue.test_server import (  # noqa: F401 (fixture)
    INSTRUMENTS,
    _log,
    venue_factory,
    venue_profile,
)

REFUSED = "Logon refused: invalid username or password"
VENUE_AUTH = 'username = "helm"\npassword = "env:HD_TEST_VENUE_PW"\n'
LINK_AUTH = 'username = "helm"\npassword = "env:HD_TEST_SIMA_PW"\n'


def notices(c: EngineClient) -> list[str]:
    symbols = [i.symbol for i in c.instruments]
    return [event_text(rec, symbols) for rec in c.poll_events()]


def test_the_right_password_logs_on_and_a_wrong_one_is_shown_refused(
        venue_factory, engine_factory, instance, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HD_TEST_VENUE_PW", "correct horse")
    venue = venue_factory(extra=VENUE_AUTH).start()
    section = venues_section(("SIMA", venue.port)) + LINK_AUTH

    monkeypatch.setenv("HD_TEST_SIMA_PW", "battery staple")  # not the venue's
    wrong = engine_factory(f"{instance}w", instruments=INSTRUMENTS, users=USERS,
                           extra=section).start()
    with EngineClient(wrong.instance) as c:
        seen: list[str] = []
        wait_until(lambda: seen.extend(notices(c)) or any(REFUSED in t for t in seen), 15,
                   "the desks to be told the Logon was refused")
        assert c.venues() == (("SIMA", False, False),)
    told = [t for t in seen if REFUSED in t]
    assert len(told) == 1 and told[0].endswith(f"SIMA session not up: logged out: {REFUSED}")
    assert wrong.stop() == 0
    err = wrong.output()
    assert f"SIMA: logged out: {REFUSED}" in err and "battery staple" not in err

    monkeypatch.setenv("HD_TEST_SIMA_PW", "correct horse")
    right = engine_factory(instance, instruments=INSTRUMENTS, users=USERS, extra=section).start()
    with EngineClient(instance) as c:
        wait_until(lambda: c.venues() == (("SIMA", True, True),), 15,
                   "the SIMA session to log on and its books to arrive")
    assert right.stop() == 0

    assert venue.stop() == 0
    # the venue said why (never what was sent) and counted each refusal
    assert "refused a connection from 127.0.0.1:" in venue.output
    assert f": {REFUSED}" in venue.output
    assert "battery staple" not in venue.output + _log(venue)
    stopped = [ln for ln in _log(venue).splitlines() if "venue SIMA stopped" in ln][-1]
    refused = int(re.search(r"'logons_refused': (\d+)", stopped).group(1))
    assert refused >= 1  # the engine retries (with back-off) until it is stopped
    assert re.search(r"'sessions': (\d+)", stopped).group(1) == "1"  # the right one


def test_a_secret_that_cannot_be_read_stops_the_start_in_one_line(
        tmp_path, engine_factory, instance, monkeypatch):
    monkeypatch.delenv("HD_TEST_SIMA_PW", raising=False)
    eng = engine_factory(instance, instruments=INSTRUMENTS, users=USERS,
                         extra=venues_section(("SIMA", 9)) + LINK_AUTH).start(wait=False)
    assert eng.proc.wait(20) == 2
    err = eng.output().strip()
    assert err.endswith("[[venues]] SIMA password: environment variable HD_TEST_SIMA_PW is "
                        "not set"), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err

    monkeypatch.delenv("HD_TEST_VENUE_PW", raising=False)
    profile = venue_profile(tmp_path / "venue.toml", extra=VENUE_AUTH)
    r = subprocess.run([sys.executable, "-m", "engine.venue", "--profile", str(profile)],
                       capture_output=True, text=True, timeout=30, env=dict(os.environ))
    assert r.returncode == 2
    assert r.stderr == (f"helmdesk venue: {profile}: [venue].password: environment variable "
                        f"HD_TEST_VENUE_PW is not set\n")


def test_the_drop_copy_presents_the_venues_credentials_too(venue_factory,  # noqa: F811
                                                           monkeypatch):
    import time

    from engine.core.profile import InstrumentConfig, VenueLinkConfig
    from engine.execution.engine import ExecutionConfig, ExecutionEngine
    from engine.execution.orders import ClOrdIds
    from engine.execution.venues import FixVenueClient
    from engine.fix.store import MemoryStore
    from tests.execution.test_dropcopy import Notes, drive

    monkeypatch.setenv("HD_TEST_VENUE_PW", "correct horse")
    venue = venue_factory(extra=VENUE_AUTH + 'drop_copy = ["HELMDC"]\n').start()
    cfg = VenueLinkConfig(name="SIMA", host="127.0.0.1", port=venue.port, sender="HELM",
                          target="SIMA", heartbeat_s=5, market_data=False, symbols=("AAA",),
                          drop_copy_sender="HELMDC", username="helm",
                          password="env:HD_TEST_SIMA_PW")
    eng = ExecutionEngine(
        ExecutionConfig(venues=(cfg,), instruments=(InstrumentConfig(symbol="AAA", tick=0.01,
                                                                     price=100.0),)),
        [FixVenueClient(cfg, MemoryStore(), password="correct horse")],
        ClOrdIds("HELM", int(time.time() * 1000)), notify=Notes())
    dc = eng.drop_copies["SIMA"]
    try:
        drive(eng, lambda: eng.clients["SIMA"].up and dc.up, "both sessions to log on")
        assert dc.session.config.username == "helm"
    finally:
        eng.close(time.time_ns())
    assert venue.stop() == 0
    stopped = [ln for ln in _log(venue).splitlines() if "venue SIMA stopped" in ln][-1]
    assert "'logons_refused': 0" in stopped and "'sessions': 2" in stopped


def test_a_keyring_password_is_read_through_the_keyring_package(
        venue_factory, engine_factory, instance, tmp_path, monkeypatch):  # noqa: F811
    """keyring:NAME: stored with `keyring set helmdesk NAME` (the bundle's `helmdesk
    --run-module keyring set ...`), read by the engine process through the configured backend."""
    monkeypatch.setenv("HD_TEST_VENUE_PW", "correct horse")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.keyring_backend.FileKeyring")
    monkeypatch.setenv("HELMDESK_TEST_KEYRING", str(tmp_path / "keyring.json"))
    venue = venue_factory(extra=VENUE_AUTH).start()
    section = (venues_section(("SIMA", venue.port))
               + 'username = "helm"\npassword = "keyring:sima-fix"\n')

    missing = engine_factory(f"{instance}k", instruments=INSTRUMENTS, users=USERS,
                             extra=section).start(wait=False)
    assert missing.proc.wait(20) == 2
    assert missing.output().strip().endswith(
        "[[venues]] SIMA password: the keyring has no secret 'sima-fix' for service 'helmdesk'")

    r = subprocess.run([sys.executable, "-m", "keyring", "set", "helmdesk", "sima-fix"],
                       input="correct horse\n", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    eng = engine_factory(instance, instruments=INSTRUMENTS, users=USERS, extra=section).start()
    with EngineClient(instance) as c:
        wait_until(lambda: c.venues() == (("SIMA", True, True),), 15,
                   "the SIMA session to log on with the keyring's password")
    assert eng.stop() == 0
    assert venue.stop() == 0
    stopped = [ln for ln in _log(venue).splitlines() if "venue SIMA stopped" in ln][-1]
    assert "'logons_refused': 0" in stopped
