"""POSIX shared-memory segments without multiprocessing's resource tracker.

``multiprocessing.shared_memory`` registers every segment with a resource-tracker process that
unlinks it when *any* attaching process exits (PLATFORM-NOTES.md); we only want the creator to
unlink. So this module talks to ``shm_open``/``mmap`` directly: the engine creates and unlinks,
desks attach and never unlink.

Errors (all ``IpcError``)::

    IpcError
    ├── NoEngine           no segment of that name (engine not running)
    ├── EngineStarting     segment exists but the engine has not finished writing it
    ├── LayoutMismatch     wrong magic or layout version: refuse, never guess
    ├── AttachRefused      the engine refused this desk (its OS user is not in the profile's
    │                      [users], no command slot is free, …): the message says why
    └── EngineAlreadyRunning   a live engine owns the instance name

A desk maps what the engine hands it over its attach socket (``Segment.from_fd``:
``engine.ipc.attach``); ``attach`` by name is for the engine's own user (taking over a dead
engine's segment, the store's rings, reading what a dead engine left).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct

import _posixshmem

from engine.ipc.layout import H, HEADER_SIZE, LAYOUT_VERSION, MAGIC

__all__ = [
    "IpcError",
    "NoEngine",
    "EngineStarting",
    "LayoutMismatch",
    "AttachRefused",
    "EngineAlreadyRunning",
    "Segment",
    "segment_exists",
    "unlink_segment",
    "try_lock",
    "unlock",
]

# Open-file-description locks: held per open fd (not per process, unlike POSIX record locks),
# released by the kernel when the holder dies. The engine holds byte 0 of its segment for its
# whole life (a second engine that can take it knows the first is dead); each desk holds the
# first byte of the command slot it claimed.
_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_FLOCK = struct.Struct("hhxxxxqqixxxx")  # struct flock on x86-64 Linux


def try_lock(fd: int, start: int, length: int = 1) -> bool:
    """Take an exclusive OFD lock on [start, start+length) without waiting."""
    try:
        fcntl.fcntl(fd, _F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, start, length, 0))
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def unlock(fd: int, start: int, length: int = 1) -> None:
    fcntl.fcntl(fd, _F_OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, start, length, 0))


class IpcError(Exception):
    """Base of shared-memory errors; the message is meant for the user."""


class NoEngine(IpcError):
    pass


class EngineStarting(IpcError):
    pass


class LayoutMismatch(IpcError):
    pass


class AttachRefused(IpcError):
    pass


class EngineAlreadyRunning(IpcError):
    pass


def _shm_path(name: str) -> str:
    return "/dev/shm" + name


def segment_exists(name: str) -> bool:
    return os.path.exists(_shm_path(name))


def unlink_segment(name: str) -> None:
    try:
        _posixshmem.shm_unlink(name)
    except FileNotFoundError:
        pass


class Segment:
    """A mapped segment. ``buf`` is a memoryview over the whole mapping: writable, or
    read-only (``readonly``: mapped PROT_READ, as desks map the engine's segment)."""

    def __init__(self, name: str, fd: int, size: int, owner: bool, *,
                 readonly: bool = False) -> None:
        self.name = name
        self.owner = owner
        self.size = size
        self.readonly = readonly
        self.fd = fd  # kept open: OFD locks live on it
        try:
            if readonly:
                self._mmap = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            else:
                self._mmap = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self.inode = os.fstat(fd).st_ino
        self.buf = memoryview(self._mmap)
        self.q = self.buf[: HEADER_SIZE - HEADER_SIZE % 8].cast("Q")  # header as u64 words

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, size: int) -> "Segment":
        """Create a new owner-only (0600) segment. Raises FileExistsError if the name is taken
        by a segment of ours, IpcError if another user's file holds it."""
        try:
            fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        except FileExistsError:
            try:
                st = os.lstat(_shm_path(name))
            except FileNotFoundError:
                raise FileExistsError(name) from None  # gone meanwhile: the caller tries again
            if st.st_uid != os.geteuid():
                raise IpcError(
                    f"shared memory {name} ({_shm_path(name)}) already exists and belongs to "
                    f"another user (uid {st.st_uid}): it cannot be this user's engine; choose "
                    "another instance name or have its owner remove it"
                ) from None
            raise
        try:
            os.fchmod(fd, 0o600)  # whatever the umask was
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o777 != 0o600:
                raise IpcError(
                    f"shared memory {name} was created with owner uid {st.st_uid} and mode "
                    f"{st.st_mode & 0o777:04o}, not ours and 0600; refusing to use it"
                )
            os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            _posixshmem.shm_unlink(name)
            raise
        try:
            return cls(name, fd, size, owner=True)  # closes fd itself if it fails
        except BaseException:  # a signal may land here too: the name goes with the segment
            _posixshmem.shm_unlink(name)
            raise

    @classmethod
    def from_fd(cls, name: str, fd: int, size: int, *, readonly: bool,
                uid: int) -> "Segment":
        """Map an object an engine handed over (``fd`` is ours to close): it must belong to
        ``uid`` (the engine's) and hold at least ``size`` bytes."""
        try:
            st = os.fstat(fd)
            if st.st_uid != uid:
                raise IpcError(f"{name} handed over by the engine belongs to uid {st.st_uid}, "
                               f"not to the engine's uid {uid}; refusing it")
            if st.st_size < size:
                raise IpcError(f"{name} handed over by the engine holds {st.st_size} bytes, "
                               f"less than the {size} it says; refusing it")
        except BaseException:
            os.close(fd)
            raise
        return cls(name, fd, size, owner=False, readonly=readonly)

    @classmethod
    def attach(cls, name: str, *, check: bool = True, readonly: bool = False) -> "Segment":
        """Attach to a segment of our own user by name, checking its magic and layout
        version (``check``)."""
        try:
            fd = _posixshmem.shm_open(name, os.O_RDONLY if readonly else os.O_RDWR, mode=0o600)
        except FileNotFoundError:
            raise NoEngine(f"no engine is running: shared memory {name} does not exist") from None
        except PermissionError:
            raise IpcError(
                f"shared memory {name} belongs to another user (permission denied)"
            ) from None
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            os.close(fd)
            raise IpcError(
                f"shared memory {name} belongs to another user (uid {st.st_uid}), not to us "
                f"(uid {os.geteuid()}): not our engine; refusing to attach"
            )
        size = st.st_size
        if size < HEADER_SIZE:
            os.close(fd)
            raise EngineStarting(f"shared memory {name} is still being created ({size} bytes)")
        seg = cls(name, fd, size, owner=False, readonly=readonly)
        if check:
            try:
                seg.check_header()
            except IpcError:
                seg.close()
                raise
        return seg

    def check_header(self) -> None:
        magic = self.q[H.MAGIC // 8]
        if magic == 0:
            raise EngineStarting(f"engine behind {self.name} is still starting")
        if magic != MAGIC:
            raise LayoutMismatch(
                f"shared memory {self.name} is not a Helmdesk engine segment "
                f"(magic {magic:#018x}, expected {MAGIC:#018x}); refusing to attach"
            )
        version = int.from_bytes(self.buf[H.VERSION : H.VERSION + 4], "little")
        if version != LAYOUT_VERSION:
            raise LayoutMismatch(
                f"engine segment {self.name} has layout version {version}, this program "
                f"understands version {LAYOUT_VERSION}; run matching engine and desk versions"
            )
        total = self.q[H.TOTAL_SIZE // 8]
        if total != self.size:
            raise LayoutMismatch(
                f"engine segment {self.name} says it is {total} bytes but maps {self.size}"
            )

    def still_current(self) -> bool:
        """True while the name still refers to the segment we mapped (not replaced)."""
        try:
            return os.stat(_shm_path(self.name)).st_ino == self.inode
        except FileNotFoundError:
            return False

    # -- teardown ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._mmap is None:
            return
        os.close(self.fd)  # drops this process's locks on the segment
        try:
            self.q.release()
            self.buf.release()
            self._mmap.close()
        except BufferError:
            # numpy views still point into the mapping: it is unmapped when they are collected
            pass
        self._mmap = None

    def unlink(self) -> None:
        if not self.owner:
            raise IpcError("only the engine that created a segment may unlink it")
        unlink_segment(self.name)
