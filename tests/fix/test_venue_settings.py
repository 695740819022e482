"""The venue's acceptor settings ([venue] in a profile) and host names resolved once."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from engine.core.profile import ProfileError, load_profile
from engine.fix.polled import PolledConnection
from engine.fix.session import FixSession, SessionConfig
from engine.fix.transport import Backoff, Initiator, resolve_address
from engine.venue.server import Venue

PROFILE = """
[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0

[venue]
name = "SET"
counterparties = ["HELM"]
{extra}
"""

SETTINGS = """reset_on_logon = true
reset_on_logout = true
reset_on_disconnect = true
max_latency_s = 5.5
validate_fields_out_of_order = false
allow_unknown_msg_fields = true
max_connections = 10
max_connections_per_counterparty = 2
"""


def profile(tmp_path: Path, extra: str):
    p = tmp_path / "venue.toml"
    p.write_text(PROFILE.format(extra=extra))
    return load_profile(p)


def test_venue_settings_are_read_and_reach_the_acceptor_sessions(tmp_path):
    prof = profile(tmp_path, SETTINGS)
    cfg = prof.venue
    assert (cfg.reset_on_logon, cfg.reset_on_logout, cfg.reset_on_disconnect) == (True,) * 3
    assert (cfg.max_latency_s, cfg.validate_fields_out_of_order,
            cfg.allow_unknown_msg_fields) == (5.5, False, True)
    assert (cfg.max_connections, cfg.max_connections_per_counterparty) == (10, 2)

    async def main() -> SessionConfig:
        v = Venue(cfg, prof.instruments, port=0, db_url=f"sqlite:///{tmp_path / 'v.db'}")
        await v.start()
        try:
            return v._cps["HELM"].session.config
        finally:
            await v.stop()

    sc = asyncio.run(main())
    assert (sc.reset_on_logon, sc.reset_on_logout, sc.reset_on_disconnect) == (True,) * 3
    assert (sc.max_latency_s, sc.validate_fields_out_of_order,
            sc.allow_unknown_msg_fields) == (5.5, False, True)
    assert sc.app_msg_types == frozenset({b"D", b"F", b"G", b"H", b"V"})


def test_venue_settings_default_to_the_strict_ones(tmp_path):
    cfg = profile(tmp_path, "").venue
    assert (cfg.reset_on_logon, cfg.reset_on_logout, cfg.reset_on_disconnect) == (False,) * 3
    assert (cfg.max_latency_s, cfg.validate_fields_out_of_order,
            cfg.allow_unknown_msg_fields) == (120.0, True, False)
    assert (cfg.max_connections, cfg.max_connections_per_counterparty) == (64, 4)


@pytest.mark.parametrize("line, word", [
    ("max_latency_s = 0", "max_latency_s"),
    ("max_connections = 0", "max_connections"),
    ("reset_on_logon = 1", "reset_on_logon"),
    ("allow_unknown_msg_fields = \"yes\"", "allow_unknown_msg_fields"),
])
def test_bad_venue_settings_are_refused(tmp_path, line, word):
    with pytest.raises(ProfileError, match=word):
        profile(tmp_path, line)


# -- host names: resolved once, never in the loop ------------------------------------------------
@pytest.fixture
def lookups(monkeypatch):
    calls: list[str] = []
    real = socket.getaddrinfo

    def counting(host, *a, **kw):
        calls.append(host)
        return real(host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    return calls


def test_the_polled_connection_resolves_its_host_once(lookups):
    s = FixSession(SessionConfig(sender="HELM", target="SIMA", initiator=True))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there: every attempt fails and is retried
    conn = PolledConnection(s, "localhost", port, backoff=Backoff(0.0, 0.0))
    assert conn.address == ("127.0.0.1", port) and lookups == ["localhost"]
    deadline = time.monotonic() + 5
    while conn.last_reason.count("failed") == 0 or conn.connects:
        assert time.monotonic() < deadline, conn.last_reason
        conn.poll(time.time_ns())
    for _ in range(20):
        conn.poll(time.time_ns())
    assert lookups == ["localhost"]
    conn.close(time.time_ns())


def test_a_host_that_does_not_resolve_is_said_at_once():
    with pytest.raises(ValueError, match="cannot resolve FIX host 'no-such-host.invalid'"):
        resolve_address("no-such-host.invalid", 1)


def test_the_asyncio_initiator_resolves_its_host_once(lookups):
    async def main() -> None:
        s = FixSession(SessionConfig(sender="HELM", target="SIMA", initiator=True))
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ini = Initiator(s, "localhost", port, lambda *_: None, backoff=Backoff(0.0, 0.0))
        task = asyncio.ensure_future(ini.run())
        deadline = time.monotonic() + 5
        while ini.connects < 3:  # the server closes each one: it reconnects
            assert time.monotonic() < deadline
            await asyncio.sleep(0)
        ini.stop()
        await asyncio.wait_for(task, 5)
        server.close()
        assert ini.address == ("127.0.0.1", port)

    asyncio.run(main())
    assert lookups.count("localhost") == 1
