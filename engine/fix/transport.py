"""A thin asyncio transport for a sans-IO ``FixSession``: bytes in, bytes out, timers.

The session never knows which transport drives it. This one serves the venue (acceptor) and
tools; the engine's hot loop may drive the same session from non-blocking sockets instead.
``Initiator`` reconnects with capped exponential back-off. Host names are resolved once,
before the first connection (``resolve_address``): a DNS lookup can block for seconds, and a
reconnect loop must not pay it, or meet a changed answer, on every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Callable

from engine.fix.session import Disconnect, FixSession, LoggedOn, SessionState

__all__ = ["serve_connection", "Initiator", "Backoff", "resolve_address"]

log = logging.getLogger("helmdesk.fix")

Clock = Callable[[], int]


async def serve_connection(
    session: FixSession,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_events: Callable[[FixSession, list], None],
    *,
    clock: Clock = time.time_ns,
    tick_s: float = 0.2,
) -> str:
    """Run ``session`` over one connection until it ends; return why it ended."""
    session.connect(clock())
    reason = "connection closed by peer"
    try:
        await _flush(session, writer)
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), tick_s)
            except asyncio.TimeoutError:
                data = None
            now = clock()
            if data == b"":
                break
            events = session.receive_data(data, now) if data else []
            events += session.tick(now)
            await _flush(session, writer)
            if events:
                on_events(session, events)
                ends = [e for e in events if isinstance(e, Disconnect)]
                if ends:
                    reason = ends[0].reason
                    break
            if session.state is SessionState.DISCONNECTED:
                reason = "session ended"
                break
    except (ConnectionError, OSError) as e:
        reason = f"connection error: {e}"
    finally:
        session.connection_lost(clock())
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return reason


async def _flush(session: FixSession, writer: asyncio.StreamWriter) -> None:
    out = session.data_to_send()
    if out:
        writer.write(out)
        await writer.drain()


def resolve_address(host: str, port: int) -> tuple[str, int]:
    """``host`` (a name or an IPv4 address) and ``port`` as the IPv4 address to connect to;
    ValueError saying why if the name does not resolve. Blocking: call it once, at start."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(f"cannot resolve FIX host {host!r}: {e}") from None
    addr = infos[0][4]
    return addr[0], addr[1]


class Backoff:
    """0.5 s, 1 s, 2 s, … capped; ``reset()`` after a session that logged on."""

    def __init__(self, first_s: float = 0.5, cap_s: float = 30.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self.next_s = first_s

    def delay(self) -> float:
        d = self.next_s
        self.next_s = min(self.cap_s, self.next_s * 2)
        return d

    def reset(self) -> None:
        self.next_s = self.first_s


class Initiator:
    """Keep one initiator session connected to ``host:port``, reconnecting with back-off."""

    def __init__(self, session: FixSession, host: str, port: int,
                 on_events: Callable[[FixSession, list], None], *, clock: Clock = time.time_ns,
                 backoff: Backoff | None = None) -> None:
        self.session = session
        self.host = host
        self.port = port
        self.on_events = on_events
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.connects = 0
        self.last_reason = ""
        self.address: tuple[str, int] | None = None  #: resolved once, by run()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.address is None:  # once; retried only until it has an answer
                    self.address = await asyncio.get_running_loop().run_in_executor(
                        None, resolve_address, self.host, self.port)
                reader, writer = await asyncio.open_connection(*self.address)
            except ValueError as e:
                self.last_reason = str(e)
                log.warning("%s; retrying", self.last_reason)
            except OSError as e:
                self.last_reason = f"connect to {self.host}:{self.port} failed: {e.strerror or e}"
                log.warning("%s; retrying", self.last_reason)
            else:
                self.connects += 1
                task = asyncio.ensure_future(
                    serve_connection(self.session, reader, writer, self._events, clock=self.clock))
                stop = asyncio.ensure_future(self._stop.wait())
                done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    # log out properly: the loop flushes within tick_s, the peer answers
                    self.session.logout("initiator stopping", self.clock())
                    try:
                        self.last_reason = await asyncio.wait_for(task, 2.0)
                    except asyncio.TimeoutError:
                        self.last_reason = "stopped without a Logout answer"
                    return
                stop.cancel()
                self.last_reason = task.result()
                log.warning("session %s->%s ended: %s", self.session.config.sender,
                            self.session.config.target, self.last_reason)
            try:
                await asyncio.wait_for(self._stop.wait(), self.backoff.delay())
            except asyncio.TimeoutError:
                pass

    def _events(self, session: FixSession, events: list) -> None:
        if any(isinstance(e, LoggedOn) for e in events):
            self.backoff.reset()
        self.on_events(session, events)
