"""Attaching a desk to an engine: the kernel says who the desk is; the engine hands it memory.

Theory of operation
-------------------
A desk (or ``helmdesk ctl``) connects to the engine's **attach socket**, an AF_UNIX stream
socket in the abstract namespace, ``@helmdesk.<instance>.attach`` (``attach_address``), and
sends one ``REQUEST``. The engine's attach thread reads the peer's credentials with
SO_PEERCRED — the kernel's word, not the desk's — maps the uid to an OS user name (pwd) and
asks the node's ``grant`` which role the profile's ``[users]`` gives that name. It answers
with one ``REPLY`` and, with it, file descriptors (SCM_RIGHTS):

- the engine's segment opened **read-only** (``O_RDONLY``: the desk can map it PROT_READ only;
  the object is 0600, so a desk of another user cannot open it again read-write through
  ``/proc/self/fd`` either);
- if the desk asked for a command slot: a **fresh slot object** (a memfd sealed against
  shrinking and growing, so a desk cannot make the engine's mapping fault) that only this desk
  ever receives, read-write, holding its command and ack rings (``layout`` SLOT OBJECT);
- and a datagram socket **connected to the engine's doorbell** (engine.ipc.rundir): the desk
  rings the bell by sending on it, without ever needing to reach the engine's private 0700
  directory (the kernel checks the path when the engine connects, never again).

Or it refuses, saying why (a user the profile does not list, a layout version it does not
speak, no slot free), and closes. A refusal is counted in the header (REJECT_REASONS
"refused") and logged.

The connection of a desk that holds a slot stays open for the desk's life: when the desk's
process ends (however it ends) the kernel closes it, the attach thread sees end-of-file at
once and frees the slot (the engine drops its rings and the DESKS row). The slot's index is
given to the next desk; its memory never is.

Who is talking is checked both ways: the engine believes only SO_PEERCRED; the desk checks
that the socket's peer runs as the owner of ``/dev/shm/helmdesk.<instance>`` (the engine made
it, 0600), that the segment it was handed is that object, and that the peer's pid is the
one in its header, so a process of another user that bound the socket name first cannot pose
as the engine (at worst it keeps the engine from starting: the engine then says so).

Everything here runs on the attach thread, never on the hot loop: it hands new slots to the
loop through ``DeskSlots.inbox`` and wakes it with the doorbell.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import pwd
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from engine.core.roles import Role
from engine.ipc.layout import (
    DESK_ATTACHES,
    DESK_PID,
    DESK_ROLE,
    DESK_UID,
    DESK_USER,
    DESK_USER_LEN,
    DESK_ROW,
    LAYOUT_VERSION,
    REJECT_REASONS,
    H,
    Layout,
)
from engine.ipc.segment import IpcError

__all__ = [
    "AttachServer",
    "Grant",
    "Granted",
    "REQUEST",
    "REPLY",
    "WANT_SLOT",
    "attach_address",
    "peer_credentials",
    "recv_reply",
    "user_name",
]

REQUEST_MAGIC = b"HDATTACH"
REPLY_MAGIC = b"HDGRANTS"
#: magic, layout version the desk speaks, flags (WANT_SLOT), workstation (informational)
REQUEST = struct.Struct("<8sII16s")
#: magic, status (OK / REFUSED), slot (-1: none), granted role, desk uid, engine pid,
#: segment size, slot object size, granted user name, length of the reason text that follows
REPLY = struct.Struct("<8sIiIIqQQ32sH")
OK, REFUSED = 0, 1
WANT_SLOT = 1
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_REASON_MAX = 1024
_PENDING_MAX = 32  # connections that have not sent their request yet
_REQUEST_TIMEOUT_S = 2.0
_REFUSED = REJECT_REASONS.index("refused")


def attach_address(instance: str) -> str:
    """The engine's attach socket (abstract namespace: nothing on disk to leave behind)."""
    return f"\0helmdesk.{instance}.attach"


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel recorded them."""
    return _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                            _PEERCRED.size))


def user_name(uid: int) -> str:
    """The OS user name of ``uid``; the number itself if it has no passwd entry."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class Granted(NamedTuple):
    """What the engine granted a desk at attach: the kernel's identity and the role."""

    pid: int
    uid: int
    user: str
    role: Role


#: ``grant(uid, user)``: the role the profile gives that OS user, or why it may not attach
Grant = Callable[[int, str], "Role | str"]


def recv_reply(sock: socket.socket, deadline: float) -> tuple[tuple, str, list[int]]:
    """Read one REPLY (and its reason text) from a blocking stream socket, collecting the
    descriptors that came with it. Raises IpcError if the engine closes or is too slow."""
    want = REPLY.size
    data = b""
    fds: list[int] = []
    try:
        while len(data) < want:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk, got, _flags, _addr = socket.recv_fds(sock, want - len(data), 4)
            fds += got
            if not chunk:
                raise IpcError("the engine closed its attach socket before answering")
            data += chunk
            if len(data) == REPLY.size:
                head = REPLY.unpack(data)
                if head[0] != REPLY_MAGIC:
                    raise IpcError("the engine's attach socket answered something that is "
                                   "not a Helmdesk attach reply")
                want = REPLY.size + min(head[9], _REASON_MAX)
    except socket.timeout:
        for fd in fds:
            os.close(fd)
        raise IpcError("the engine did not answer the attach request in time") from None
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    head = REPLY.unpack_from(data)
    return head, data[REPLY.size:].decode("utf-8", "replace"), fds


class _Conn:
    __slots__ = ("sock", "deadline", "buf", "slot")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = b""
        self.slot = -1  # >= 0 once it holds a command slot


class AttachServer:
    """The engine's attach socket and the thread that serves it (module docstring)."""

    def __init__(self, instance: str, *, layout: Layout, segment_name: str, q: memoryview,
                 buf: memoryview, bell_path: str, grant: Grant, inbox, wake: Callable[[], None],
                 log: Callable[[str], None]) -> None:
        self.instance = instance
        self.layout = layout
        self._q = q
        # the DESKS table as u64 words (rows of DESK_ROW bytes)
        self._rows = buf[layout.desks_off : layout.desks_off
                         + layout.max_desks * DESK_ROW].cast("Q")
        self._buf = buf
        self._bell_path = bell_path
        self._grant = grant
        self._inbox = inbox
        self._wake = wake
        self._log = log
        self.refused = 0
        self._attaches = [0] * layout.max_desks
        self._free = list(range(layout.max_desks))
        self._stop = False
        import _posixshmem

        # what every desk gets: the segment, read-only (an O_RDONLY description can only be
        # mapped PROT_READ, and cannot be truncated)
        self._segment_fd = _posixshmem.shm_open(segment_name, os.O_RDONLY, mode=0o600)
        self._sel = selectors.DefaultSelector()
        self._stop_r, self._stop_w = os.pipe()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                self._listener.bind(attach_address(instance))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                raise IpcError(
                    f"the attach socket @helmdesk.{instance}.attach is held by another process "
                    f"(not an engine of this instance: this one holds the instance's lock); "
                    f"find it with 'ss -xlp | grep helmdesk.{instance}.attach'") from None
            self._listener.listen(16)
            self._listener.setblocking(False)
            self._sel.register(self._listener, selectors.EVENT_READ, None)
            self._sel.register(self._stop_r, selectors.EVENT_READ, None)
        except BaseException:
            self._close_fds()
            raise
        self._thread = threading.Thread(target=self._run, name=f"attach-{instance}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving; every desk's connection is closed (the desks see the engine go)."""
        self._stop = True
        if self._thread.is_alive():
            os.write(self._stop_w, b"x")
            self._thread.join(5)
        self._close_fds()

    def _close_fds(self) -> None:
        for key in list(self._sel.get_map().values()):
            if isinstance(key.data, _Conn):
                key.data.sock.close()
        self._sel.close()
        self._listener.close()
        self._rows.release()
        for fd in (self._stop_r, self._stop_w, self._segment_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stop_r = self._stop_w = self._segment_fd = -1

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            pending = [k.data for k in self._sel.get_map().values()
                       if isinstance(k.data, _Conn) and k.data.slot < 0]
            timeout = None
            if pending:
                timeout = max(0.0, min(c.deadline for c in pending) - time.monotonic())
            for key, _ev in self._sel.select(timeout):
                if self._stop:
                    return
                try:
                    if key.fileobj is self._listener:
                        self._accept()
                    elif isinstance(key.data, _Conn):
                        self._readable(key.data)
                except Exception as e:  # a bug of ours must not end attaching for good
                    self._log(f"attach socket: error serving a desk: {e!r}")
                    if isinstance(key.data, _Conn):
                        try:
                            self._drop(key.data)
                        except Exception as e2:
                            self._log(f"attach socket: error dropping a desk: {e2!r}")
            now = time.monotonic()
            for c in pending:
                if c.slot < 0 and now >= c.deadline and c.sock.fileno() >= 0:
                    self._refuse(c, "no attach request within "
                                    f"{_REQUEST_TIMEOUT_S:g} s", count_only=True)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of descriptors, say: try again on the next wake
                self._log(f"attach socket: accept failed: {e}")
                return
            waiting = sum(1 for k in self._sel.get_map().values()
                          if isinstance(k.data, _Conn) and k.data.slot < 0)
            if waiting >= _PENDING_MAX:
                sock.close()
                self._count(f"more than {_PENDING_MAX} connections waiting to attach: one "
                            "closed")
                continue
            sock.setblocking(False)
            self._sel.register(sock, selectors.EVENT_READ,
                               _Conn(sock, time.monotonic() + _REQUEST_TIMEOUT_S))

    def _readable(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(REQUEST.size - len(c.buf) if c.slot < 0 else 256)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the desk's process closed it (ended, however it ended)
            self._drop(c)
            return
        if c.slot >= 0:
            return  # a desk has nothing more to say: ignored
        c.buf += data
        if len(c.buf) == REQUEST.size:
            self._serve_request(c)

    def _serve_request(self, c: _Conn) -> None:
        pid, uid, _gid = peer_credentials(c.sock)
        magic, version, flags, _ws = REQUEST.unpack(c.buf)
        user = user_name(uid)
        if magic != REQUEST_MAGIC:
            return self._refuse(c, f"pid {pid} (uid {uid}) sent something that is not an "
                                   "attach request")
        if version != LAYOUT_VERSION:
            return self._refuse(c, f"the desk speaks layout version {version}, engine "
                                   f"{self.instance!r} version {LAYOUT_VERSION}; run matching "
                                   "engine and desk versions")
        granted = self._grant(uid, user)
        if isinstance(granted, str):
            return self._refuse(c, granted)
        role = Role(granted)
        who = Granted(pid, uid, user, role)
        if not flags & WANT_SLOT:
            self._reply(c, OK, -1, who, "", [self._segment_fd])
            self._drop(c)
            return
        if not self._free:
            return self._refuse(c, f"all {self.layout.max_desks} command slots of engine "
                                   f"{self.instance!r} are in use; close a desk or ctl first")
        k = min(self._free)
        lay = self.layout
        slot_fd = os.memfd_create(f"helmdesk.{self.instance}.desk{k}",
                                  os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        bell = None
        mm = None
        try:
            os.ftruncate(slot_fd, lay.slot_size)
            # the desk holds it read-write: it must not be able to shrink it under our mapping
            fcntl.fcntl(slot_fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            mm = mmap.mmap(slot_fd, lay.slot_size)
            bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            bell.connect(self._bell_path)
            self._free.remove(k)
            c.slot = k
            self._inbox.append(("attach", k, mm, who))
            mm = None  # the loop's now
            self._write_row(k, who)
            self._wake()
            self._reply(c, OK, k, who, "", [self._segment_fd, slot_fd, bell.fileno()])
        except OSError as e:
            if mm is not None:
                mm.close()
            if c.slot >= 0:
                self._log(f"attach socket: desk pid {pid} ({user}) could not be given slot "
                          f"{k}: {e}")
                self._drop(c)
            else:
                self._refuse(c, f"the engine could not make a command slot: {e}")
            return
        finally:
            os.close(slot_fd)
            if bell is not None:
                bell.close()
        self._log(f"desk pid {pid} attached: OS user {user} (uid {uid}) as {role.label}, "
                  f"command slot {k}")

    def _reply(self, c: _Conn, status: int, slot: int, who: Granted | None, reason: str,
               fds: list[int]) -> None:
        text = reason.encode()[:_REASON_MAX]
        lay = self.layout
        head = REPLY.pack(REPLY_MAGIC, status, slot, int(who.role) if who else 0,
                          who.uid if who else 0, os.getpid(), lay.total_size, lay.slot_size,
                          (who.user if who else "").encode()[:32], len(text))
        try:  # a fresh connection's buffer takes this whole at once
            socket.send_fds(c.sock, [head + text], fds)
        except OSError:
            self._drop(c)

    def _refuse(self, c: _Conn, why: str, *, count_only: bool = False) -> None:
        self._count(f"attach refused: {why}")  # counted before the desk can hear of it
        if not count_only:
            self._reply(c, REFUSED, -1, None, why, [])
        self._drop(c)

    def _count(self, why: str) -> None:
        self.refused += 1
        self._q[H.REJECTS // 8 + _REFUSED] = self.refused
        self._log(why)

    def _drop(self, c: _Conn) -> None:
        """Forget a connection; a desk's slot is freed (the loop drops its rings)."""
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        k, c.slot = c.slot, -1
        if k >= 0:
            self._rows[(k * DESK_ROW + DESK_PID) // 8] = 0  # free first
            self._inbox.append(("detach", k))
            self._free.append(k)
            self._wake()
            self._log(f"desk in command slot {k} detached; slot freed")

    def _write_row(self, k: int, who: Granted) -> None:
        row, w = k * DESK_ROW, self._rows
        self._attaches[k] += 1
        w[(row + DESK_UID) // 8] = who.uid
        w[(row + DESK_ROLE) // 8] = int(who.role)
        w[(row + DESK_ATTACHES) // 8] = self._attaches[k]
        raw = who.user.encode()[:DESK_USER_LEN].ljust(DESK_USER_LEN, b"\0")
        off = self.layout.desk_row_off(k) + DESK_USER
        self._buf[off : off + DESK_USER_LEN] = raw
        w[(row + DESK_PID) // 8] = who.pid  # present: last
