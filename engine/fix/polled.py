"""A FIX session on a non-blocking socket that the engine's own loop polls.

The engine has one hot thread and no asyncio loop: each turn it calls ``poll(now_ns)``, which
connects (without blocking), reads whatever arrived, feeds the session, writes what the
session has to send, and drives its timers at most ten times a second. ``fileno()`` lets the
loop include the socket in its ``select`` when it waits. A dropped connection is retried with
capped back-off; the session's store keeps the sequence numbers across connections. The host
name is resolved once, when the connection is made (``resolve_address``): never in the loop.
"""

from __future__ import annotations

import errno
import logging
import socket

from engine.fix.session import Disconnect, FixSession, LoggedOn, SessionState
from engine.fix.transport import Backoff, resolve_address

__all__ = ["PolledConnection"]

log = logging.getLogger("helmdesk.fix")

_ACTIVE = SessionState.ACTIVE

_TICK_NS = 100_000_000


class PolledConnection:
    """Keep ``session`` (an initiator) connected to ``host:port``; poll it from a loop."""

    def __init__(self, session: FixSession, host: str, port: int, *,
                 backoff: Backoff | None = None) -> None:
        self.session = session
        self.host = host
        self.port = port
        #: the address connected to, resolved here once (ValueError if the name does not)
        self.address = resolve_address(host, port)
        self.backoff = backoff or Backoff()
        self.sock: socket.socket | None = None
        self._connecting = False
        self._out = b""
        self._next_attempt = 0
        self._next_tick = 0
        self.connects = 0
        self.last_reason = ""

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    @property
    def up(self) -> bool:
        return self.session.state is SessionState.ACTIVE

    # -- the loop's side ---------------------------------------------------------------------
    def poll(self, now_ns: int) -> list:
        """Do whatever can be done without waiting; return the session's events."""
        if self.sock is None:
            if now_ns >= self._next_attempt:
                self._start_connect(now_ns)
            return []
        if self._connecting:
            return self._finish_connect(now_ns)
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:  # the usual idle turn: nothing read, nothing due, nothing to write
            if now_ns < self._next_tick and not self._out and not self.session._out:
                return []
        except OSError as e:
            return self._drop(f"receive failed: {e.strerror or e}", now_ns)
        else:
            if not data:
                return self._drop("connection closed by the venue", now_ns)
            return self._poll_more(self.session.receive_data(data, now_ns), now_ns)
        return self._poll_more([], now_ns)

    def _poll_more(self, events: list, now_ns: int) -> list:
        """``poll`` after its first read: read on until the socket is empty, drive the timers,
        write, and see what the events mean for the connection."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as e:
                return events + self._drop(f"receive failed: {e.strerror or e}", now_ns)
            if not data:
                return events + self._drop("connection closed by the venue", now_ns)
            events += self.session.receive_data(data, now_ns)
        if now_ns >= self._next_tick:
            self._next_tick = now_ns + _TICK_NS
            events += self.session.tick(now_ns)
        self._flush()
        for e in events:
            if isinstance(e, LoggedOn):
                self.backoff.reset()
            elif isinstance(e, Disconnect):
                return events + self._drop(e.reason, now_ns, already=True)
        return events

    def send(self, msg_type: bytes, body: list | bytes, now_ns: int) -> int | None:
        """Send an application message now; None when the session is not logged on."""
        session = self.session
        if session.state is not _ACTIVE:
            return None
        # what session.send does once it is up, but the store's record after the write: the
        # bytes go first (the sequence number is the store's until the record is made)
        seq = session._send_unrecorded(msg_type, body, now_ns)
        try:
            self._flush()
        finally:
            session._record_unrecorded()
        return seq

    def close(self, now_ns: int) -> None:
        if self.sock is not None:
            if self.up:
                self.session.logout("engine stopping", now_ns)
                self._flush()
            self._close_socket()
            self.session.connection_lost(now_ns)

    # -- internals ---------------------------------------------------------------------------
    def _start_connect(self, now_ns: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rc = s.connect_ex(self.address)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self._retry(f"connect to {self.host}:{self.port} failed: {errno.errorcode.get(rc, rc)}",
                        now_ns)
            return
        self.sock = s
        self._connecting = True

    def _finish_connect(self, now_ns: int) -> list:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                self.sock.getpeername()
            except OSError:
                return []  # still connecting
            self._connecting = False
            self.connects += 1
            self.session.connect(now_ns)
            self._next_tick = now_ns + _TICK_NS
            self._flush()
            return []
        self._close_socket()
        self._retry(f"connect to {self.host}:{self.port} failed: {errno.errorcode.get(err, err)}",
                    now_ns)
        return []

    def _flush(self) -> None:
        queued = self.session._out  # session.data_to_send(), without the call: every send
        out = queued[0] if len(queued) == 1 else b"".join(queued)
        queued.clear()
        if self._out:  # what the socket did not take last time goes first
            out = self._out + out
        if not out or self.sock is None:
            self._out = out
            return
        try:
            n = self.sock.send(out)
        except BlockingIOError:
            n = 0  # the kernel's buffer is full: the rest goes on a later poll
        except OSError:
            n = 0  # the next recv sees the broken connection
        self._out = out[n:] if n < len(out) else b""

    def _drop(self, why: str, now_ns: int, already: bool = False) -> list:
        self._close_socket()
        self.session.connection_lost(now_ns)
        self._retry(why, now_ns)
        return [] if already else [Disconnect(why)]

    def _retry(self, why: str, now_ns: int) -> None:
        self.last_reason = why
        delay = self.backoff.delay()
        self._next_attempt = now_ns + int(delay * 1e9)
        log.warning("%s->%s: %s; retrying in %.2f s", self.session.config.sender,
                    self.session.config.target, why, delay)

    def _close_socket(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self._connecting = False
        self._out = b""
