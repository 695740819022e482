"""The engine's private runtime directory and its doorbell socket.

The doorbell is an AF_UNIX datagram socket a desk sends one byte to after it pushes a command.
It lives at ``<runtime dir>/<instance>.bell``, where the runtime directory is

- ``$XDG_RUNTIME_DIR/helmdesk`` when ``$XDG_RUNTIME_DIR`` is set and is a directory of ours
  with mode 0700 (as systemd-logind makes it);
- ``/tmp/helmdesk-<uid>`` otherwise.

Either way the directory must be ours, a real directory (not a symbolic link) and mode 0700:
it is created so, and one that already exists otherwise is refused with ``UnsafeRuntimeDir``
naming the path and what is wrong, never used or "fixed". No other user can then bind the
engine's name first (an abstract-namespace socket could be squatted by anyone) or send to it.

A socket file left by an engine that died is replaced by the next engine of that instance:
it can only be there because that engine is gone (the new one holds the instance's shared
memory lock before it binds), and the private directory means only we could have made it.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

from engine.ipc.segment import IpcError

__all__ = ["UnsafeRuntimeDir", "bind_doorbell", "doorbell_path", "runtime_dir",
           "unlink_doorbell"]

TMP_ROOT = "/tmp"
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


class UnsafeRuntimeDir(IpcError):
    """The runtime directory exists but is not private to us."""


def _private_dir_problem(st: os.stat_result, uid: int) -> str | None:
    """Why a directory's lstat result is not a private directory of ``uid``, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid != uid:
        return f"it is owned by uid {st.st_uid}, not by us (uid {uid})"
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o700:
        return f"its mode is {mode:04o}, not 0700"
    return None


def _ensure_private_dir(path: Path, uid: int) -> Path:
    """Create ``path`` mode 0700, or check the one that is there; refuse anything else."""
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)  # whatever the umask took away (the directory is ours: no race)
    except FileExistsError:
        pass
    try:
        st = os.lstat(path)
    except OSError as e:
        raise UnsafeRuntimeDir(f"cannot use runtime directory {path}: {e.strerror}") from None
    why = _private_dir_problem(st, uid)
    if why is not None:
        raise UnsafeRuntimeDir(
            f"refusing runtime directory {path}: {why}; it must be a directory owned by you "
            f"with mode 0700 (remove it, or set XDG_RUNTIME_DIR to a private directory)"
        )
    return path


def runtime_dir(*, tmp_root: str = TMP_ROOT, uid: int | None = None) -> Path:
    """The private directory for the engine's sockets (module docstring), created if need be."""
    uid = os.geteuid() if uid is None else uid
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        try:
            usable = _private_dir_problem(os.lstat(xdg), uid) is None
        except OSError:
            usable = False
        if usable:
            return _ensure_private_dir(Path(xdg) / "helmdesk", uid)
    return _ensure_private_dir(Path(tmp_root) / f"helmdesk-{uid}", uid)


def doorbell_path(instance: str, *, tmp_root: str = TMP_ROOT) -> str:
    """Path of the doorbell socket of an engine instance (its directory checked)."""
    path = str(runtime_dir(tmp_root=tmp_root) / f"{instance}.bell")
    if len(path.encode()) > _SUN_PATH_MAX:
        raise IpcError(f"doorbell socket path {path} is longer than {_SUN_PATH_MAX} bytes; "
                       "set XDG_RUNTIME_DIR to a shorter private directory")
    return path


def bind_doorbell(path: str) -> tuple[socket.socket, int]:
    """Bind the engine's doorbell at ``path`` (non-blocking), replacing a dead engine's;
    return the socket and the inode of its file (for ``unlink_doorbell``)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    bound = False
    try:
        try:
            sock.bind(path)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            _remove_stale(path)
            sock.bind(path)
        bound = True
        os.chmod(path, 0o600)
        inode = os.lstat(path).st_ino
        sock.setblocking(False)
    except BaseException as e:
        sock.close()
        if bound:
            os.unlink(path)
        if isinstance(e, OSError):
            raise IpcError(f"cannot bind the engine's doorbell {path}: {e.strerror or e}") from None
        raise
    return sock, inode


def _remove_stale(path: str) -> None:
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        raise IpcError(f"{path} is in the way of the engine's doorbell and is not a socket "
                       "of ours; remove it")
    os.unlink(path)


def unlink_doorbell(path: str, inode: int) -> None:
    """Remove the doorbell's file if it is still the one we bound (``inode``)."""
    try:
        if os.lstat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass
