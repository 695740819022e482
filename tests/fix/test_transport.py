"""The session over real TCP on loopback, driven by the asyncio transport."""

from __future__ import annotations

import asyncio
import time

from engine.fix.session import AppMessage, FixSession, LoggedOn, SessionConfig, SessionState
from engine.fix.store import MemoryStore
from engine.fix.transport import Backoff, Initiator, serve_connection


class Venue:
    """A minimal acceptor: one session (one store) for whoever logs on as HELM."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.events: list = []
        self.sessions: list[FixSession] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", port)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _conn(self, reader, writer) -> None:
        s = FixSession(SessionConfig(sender="VENUE", target="HELM", initiator=False, heartbeat_s=1),
                       self.store)
        self.sessions.append(s)
        await serve_connection(s, reader, writer, self._on, tick_s=0.05)

    def _on(self, session, events) -> None:
        self.events += events
        for e in events:
            if isinstance(e, AppMessage) and e.message.msg_type == b"D":
                session.send(b"8", [(11, e.message.get(11)), (150, b"0"), (39, b"0")],
                             time.time_ns())


async def wait_for(cond, timeout=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def test_logon_order_ack_logout_and_reconnect_over_loopback():
    async def main():
        venue = Venue()
        port = await venue.start()
        got: list = []
        helm = FixSession(SessionConfig(sender="HELM", target="VENUE", initiator=True, heartbeat_s=1))
        ini = Initiator(helm, "127.0.0.1", port, lambda s, ev: got.extend(ev),
                        backoff=Backoff(0.05, 0.2))
        task = asyncio.ensure_future(ini.run())
        await wait_for(lambda: helm.state is SessionState.ACTIVE)
        helm.send(b"D", [(11, b"ord-1"), (55, b"AAA")], time.time_ns())
        await wait_for(lambda: any(isinstance(e, AppMessage) for e in got))
        er = [e.message for e in got if isinstance(e, AppMessage)][0]
        assert er.msg_type == b"8" and er.get(11) == b"ord-1"
        # the venue goes away: the initiator retries with back-off, then resumes the session
        for s in venue.sessions:
            s.logout("venue restarting", time.time_ns())
        await venue.stop()
        await wait_for(lambda: helm.state is SessionState.DISCONNECTED)
        seq_before = helm.store.next_sender_seq
        await wait_for(lambda: "failed" in ini.last_reason)  # it retries while the venue is down
        assert ini.connects == 1
        await venue.start(port)
        await wait_for(lambda: helm.state is SessionState.ACTIVE and ini.connects == 2)
        assert sum(isinstance(e, LoggedOn) for e in got) == 2
        assert helm.store.next_sender_seq == seq_before + 1  # resumed, not reset: one Logon more
        assert venue.store.next_target_seq == helm.store.next_sender_seq
        ini.stop()
        await asyncio.wait_for(task, 5)
        await venue.stop()
        return venue

    venue = asyncio.run(main())
    assert venue.sessions[-1].state is SessionState.DISCONNECTED
