"""Identity the kernel proves: desks of real, different OS users against a real engine.

The engine runs as this test's user (root in CI); desks run as two system users this module
creates (``helmdesk-t1``: trader, ``helmdesk-t2``: risk manager), as ``nobody`` (not in the
profile's [users]) and as root (viewer). Each desk is a process forked from this one that
drops to its user with setgid/setuid before it attaches: the venv's interpreter lives under
/root (mode 0700 here), which another user could not start, but a forked child needs no new
file (everything it runs is imported before the fork; the repository is world-readable).
A forked child closes every descriptor it inherited but its control pipe, so what it holds of
the engine is exactly what the engine handed it.
"""

from __future__ import annotations

import fcntl
import mmap
import multiprocessing
import multiprocessing.connection  # noqa: F401 (imported before any child drops its user)
import multiprocessing.util  # noqa: F401
import os
import pwd
import shutil
import signal
import socket
import subprocess
import traceback  # noqa: F401

import _posixshmem
import pytest

from engine.core.roles import Role
from engine.ipc import AttachRefused, EngineClient, Verb
from engine.ipc.commands import Scope
from engine.ipc.layout import (
    CACHE_LINE,
    COMMAND_STRUCT,
    RING_CONTROL,
    command_seal,
    segment_name,
)
from engine.ipc.rundir import doorbell_path
from tests.conftest import wait_until

TRADER, RISK = "helmdesk-t1", "helmdesk-t2"
UNLISTED = "nobody"
ROOT = pwd.getpwuid(0).pw_name if os.geteuid() == 0 else "root"
USERS = f'{TRADER} = "trader"\n{RISK} = "risk_manager"\n{ROOT} = "viewer"'
LOCK = "/tmp/helmdesk-test-users.lock"


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", name], capture_output=True, text=True)
    try:
        pwd.getpwnam(name)  # made now, by us or by a test run beside us
    except KeyError:
        raise AssertionError(f"useradd {name} failed ({r.returncode}): {r.stderr}") from None


@pytest.fixture(scope="module")
def os_users() -> dict[str, pwd.struct_passwd]:
    """Two system users (made once, idempotent), and nobody: needs root."""
    if os.geteuid() != 0:
        pytest.skip("desks of other OS users need root (euid 0) to create the users "
                    f"{TRADER}/{RISK} and to setuid to them; CI runs as root")
    if shutil.which("useradd") is None:
        pytest.skip("useradd (package passwd) is not installed: cannot create test users")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in (TRADER, RISK):
            _ensure_user(name)
    try:
        nobody = pwd.getpwnam(UNLISTED)
    except KeyError:
        pytest.skip(f"no {UNLISTED!r} user on this system: no unlisted user to refuse")
    return {TRADER: pwd.getpwnam(TRADER), RISK: pwd.getpwnam(RISK), UNLISTED: nobody,
            ROOT: pwd.getpwuid(0)}


# -- a desk in a process of another user -----------------------------------------------------------
def _ops():
    def request(c, verb, scope=0, scope_id=0, text="", arg0=0.0, arg1=0.0):
        ack = c.request(verb, scope, scope_id, text=text, arg0=arg0, arg1=arg1, timeout=5)
        return ack.accepted, ack.reason, ack.value

    def raw(c, verb, user, role, text=""):
        """A record written by hand: any user name and role in it."""
        ring = c._cmd
        index = ring.tail
        f = (c._id_base | 0xFFFF, 0, int(verb), 0, 0, 0.0, 0.0, user, b"ws", role, b"", 0,
             text.encode())
        off = RING_CONTROL + c.layout.slot_cmd_off + (index % c.layout.cmd_capacity) * \
            COMMAND_STRUCT.size
        COMMAND_STRUCT.pack_into(c.slot_seg.buf, off, *f[:11], command_seal(index), f[12])
        ring._ctl[CACHE_LINE // 8] = index + 1  # the tail word: published
        c._ring_bell()
        ack = wait(lambda: c.poll_ack(), 5)
        return ack.cmd_id == f[0], ack.accepted, ack.reason

    def holdings(c):
        """What this process holds: its descriptors' targets."""
        out = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass
        return out

    def attempts(c, other_pid):
        """Every way this desk might write what is not its own; each outcome by name."""
        out = {}

        def attempt(name, fn):
            try:
                fn()
                out[name] = "WROTE"
            except Exception as e:
                out[name] = type(e).__name__

        def write_view():
            c.seg.buf[4096] = 1

        def map_rw():
            mmap.mmap(c.seg.fd, c.seg.size)  # PROT_READ | PROT_WRITE, MAP_SHARED

        def reopen_rw():
            os.close(os.open(f"/proc/self/fd/{c.seg.fd}", os.O_RDWR))

        def open_by_name():
            os.close(_posixshmem.shm_open(c.seg.name, os.O_RDWR, 0o600))

        def truncate():
            os.ftruncate(c.seg.fd, 0)

        def shrink_own_slot():  # would make the engine's mapping of it fault
            os.ftruncate(c.slot_seg.fd, 0)

        def other_desks_fds():
            for fd in os.listdir(f"/proc/{other_pid}/fd"):
                os.close(os.open(f"/proc/{other_pid}/fd/{fd}", os.O_RDWR))

        def reach_the_bell_by_path():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.connect(c._bell_path_for_test)
            finally:
                s.close()

        for name, fn in (("write_view", write_view), ("map_rw", map_rw),
                         ("reopen_rw", reopen_rw), ("open_by_name", open_by_name),
                         ("truncate", truncate), ("shrink_own_slot", shrink_own_slot),
                         ("other_desks_fds", other_desks_fds),
                         ("reach_the_bell_by_path", reach_the_bell_by_path)):
            attempt(name, fn)
        return out

    def bell_peer(c):
        return c._bell.getpeername()

    def identity(c):
        return os.getuid(), os.getgid(), c.user, int(c.role), c.slot

    return {"request": request, "raw": raw, "holdings": holdings, "attempts": attempts,
            "bell_peer": bell_peer, "identity": identity, "exit": lambda c: None}


def wait(cond, timeout):
    import time

    end = time.monotonic() + timeout
    while (v := cond()) is None or v is False:
        if time.monotonic() > end:
            raise TimeoutError("timed out")
        time.sleep(0.001)
    return v


_OPS = _ops()


def _desk_main(conn, uid, gid, instance, kw, bell_path) -> None:
    keep = conn.fileno()
    for fd in range(3, 4096):  # what the parent held is not this desk's
        if fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass
    try:
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        c = EngineClient(instance, **kw)
        c._bell_path_for_test = bell_path
    except Exception as e:
        conn.send(("error", type(e).__name__, str(e)))
        return
    conn.send(("ok", os.getpid()))
    while True:
        what, args = conn.recv()
        try:
            result = _OPS[what](c, *args)
        except Exception as e:
            conn.send(("error", type(e).__name__, str(e)))
            continue
        conn.send(("ok", result))
        if what == "exit":
            c.close()
            return


class Desk:
    """An EngineClient in a forked process of OS user ``os_user`` (None: this one's)."""

    def __init__(self, instance: str, os_user: pwd.struct_passwd | None, **kw) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        uid, gid = (os_user.pw_uid, os_user.pw_gid) if os_user else (None, None)
        self.proc = ctx.Process(target=_desk_main, daemon=True,
                                args=(child, uid, gid, instance, kw, doorbell_path(instance)))
        self.proc.start()
        child.close()
        self.pid = self._result(20)

    def _result(self, timeout: float):
        if not self.conn.poll(timeout):
            raise AssertionError(f"desk process {self.proc.pid} did not answer in {timeout} s")
        msg = self.conn.recv()
        if msg[0] == "error":
            raise {"AttachRefused": AttachRefused}.get(msg[1], RuntimeError)(msg[2])
        return msg[1]

    def __call__(self, what: str, *args, timeout: float = 15):
        self.conn.send((what, args))
        return self._result(timeout)

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self("exit")
            except Exception:
                pass
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


@pytest.fixture
def desks():
    made: list[Desk] = []

    def make(instance, os_user, **kw) -> Desk:
        d = Desk(instance, os_user, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


@pytest.fixture
def engine(engine_factory, instance, os_users):
    return engine_factory(instance, users=USERS).start()


def _may_not(user: str, role: str, verb: str) -> str:
    return f"user {user!r} is {role} here and may not {verb}"


# -- tests ---------------------------------------------------------------------------------------
MATRIX = {
    "viewer": {"PING"},
    "trader": {"PING", "KILL", "ORDER", "CANCEL", "CANCEL_ALL"},
    "risk_manager": {"PING", "KILL", "REARM", "CANCEL", "CANCEL_ALL"},
}
ARGS = {"PING": {}, "KILL": {"text": "test"}, "REARM": {"text": "checked"},
        "ORDER": {"scope": Scope.INSTRUMENT, "text": "SIM buy day", "arg0": 1, "arg1": 5000.0},
        "CANCEL": {"text": "no-such-order"}, "CANCEL_ALL": {}}


def test_the_role_verb_matrix_is_granted_by_uid(engine, os_users, desks):
    for name, role in ((ROOT, "viewer"), (TRADER, "trader"), (RISK, "risk_manager")):
        d = desks(engine.instance, os_users[name] if name != ROOT else None)
        uid, _gid, user, granted, _slot = d("identity")
        assert (uid, user, Role(granted).label) == (os_users[name].pw_uid, name, role)
        for verb in ("PING", "KILL", "REARM", "ORDER", "CANCEL", "CANCEL_ALL"):
            kw = ARGS[verb]
            ok, reason, _v = d("request", int(Verb[verb]), kw.get("scope", 0), 0,
                               kw.get("text", ""), kw.get("arg0", 0.0), kw.get("arg1", 0.0))
            if verb in MATRIX[role]:  # past the role check (a handler may still refuse)
                assert "may not" not in reason, (name, verb, reason)
            else:
                assert not ok and reason == _may_not(name, role, verb), (name, verb, reason)
    with EngineClient(engine.instance, commands=False) as c:
        assert c.status().kill_user == TRADER  # its KILL went through, under its name
    assert engine.stop() == 0


def test_a_desk_that_writes_another_name_is_treated_as_who_it_is(engine, os_users, desks):
    d = desks(engine.instance, os_users[TRADER], user=ROOT, role=Role.RISK_MANAGER)
    assert d("identity")[2:4] == (TRADER, Role.TRADER)
    # a REARM whose record says root, a risk manager: it is helmdesk-t1, a trader
    answered, ok, reason = d("raw", int(Verb.REARM), ROOT.encode(), int(Role.RISK_MANAGER),
                             "let me")
    assert answered and not ok and reason == _may_not(TRADER, "trader", "REARM")
    answered, ok, reason = d("raw", int(Verb.REARM), RISK.encode(), 2, "let me")
    assert answered and reason == _may_not(TRADER, "trader", "REARM")
    ok, reason, _ = d("request", int(Verb.KILL), 0, 0, "tripped by t1")
    assert ok and reason.endswith(f"by {TRADER}")  # the audit names the kernel's user
    with EngineClient(engine.instance, commands=False) as c:
        assert c.status().kill_user == TRADER
        assert [(x.uid, x.user, x.role) for x in c.desks()] == [
            (os_users[TRADER].pw_uid, TRADER, Role.TRADER)]
    assert engine.stop() == 0


def test_an_unlisted_user_is_refused_at_attach(engine, os_users, desks):
    for commands in (True, False):
        with pytest.raises(AttachRefused) as e:
            desks(engine.instance, os_users[UNLISTED], commands=commands)
        assert str(e.value) == (
            f"engine {engine.instance!r} refused this desk: OS user {UNLISTED!r} (uid "
            f"{os_users[UNLISTED].pw_uid}) is not in [users] of profile {engine.profile} and "
            f"it has no \"*\" entry: add the user there (viewer, trader or risk_manager) to "
            f"attach to engine {engine.instance!r}")
    with EngineClient(engine.instance, commands=False) as c:
        assert c.rejects()["refused"] == 2 and c.desks() == []
    assert engine.proc.poll() is None
    assert engine.stop() == 0


def test_a_desk_of_another_user_cannot_write_anything_but_its_own_slot(engine, os_users, desks):
    a = desks(engine.instance, os_users[TRADER])
    b = desks(engine.instance, os_users[RISK])
    slot_a, slot_b = a("identity")[4], b("identity")[4]
    assert slot_a != slot_b
    held = b("holdings")
    memfds = {t for t in held.values() if t.startswith("/memfd:")}  # (mmap keeps a dup)
    assert memfds == {f"/memfd:helmdesk.{engine.instance}.desk{slot_b} (deleted)"}  # its own
    assert f"/dev/shm{segment_name(engine.instance)}" in held.values()  # read-only: below
    tried = b("attempts", a.pid)
    assert tried == {
        "write_view": "TypeError",  # a read-only mapping
        "map_rw": "PermissionError",  # the descriptor is O_RDONLY
        "reopen_rw": "PermissionError",  # the object is 0600, not B's
        "open_by_name": "PermissionError",
        "truncate": "OSError",  # not open for writing (EINVAL)
        "shrink_own_slot": "PermissionError",  # sealed: F_SEAL_SHRINK (EPERM)
        "other_desks_fds": "PermissionError",  # another uid's process
        "reach_the_bell_by_path": "PermissionError",  # the 0700 run directory
    }, tried
    # both still work: B's own slot, and A's untouched by anything B did
    assert b("request", int(Verb.PING))[0]
    ok, reason, value = a("request", int(Verb.PING))
    assert ok and value == Role.TRADER
    assert engine.stop() == 0


def test_another_users_desk_rings_the_engines_bell_through_the_socket_it_was_handed(
        engine, os_users, desks):
    d = desks(engine.instance, os_users[RISK])
    assert d("bell_peer") == doorbell_path(engine.instance)  # connected by the engine for it
    for _ in range(20):  # an idle "sleep" engine answers each (the bell wakes it)
        assert d("request", int(Verb.PING))[0]
    assert engine.stop() == 0


def test_a_desks_death_frees_its_slot(engine, os_users, desks):
    d = desks(engine.instance, os_users[TRADER])
    k = d("identity")[4]
    with EngineClient(engine.instance, commands=False) as c:
        assert [(x.slot, x.pid) for x in c.desks()] == [(k, d.pid)]
        os.kill(d.pid, signal.SIGKILL)  # no goodbye: the kernel closes its connection
        d.proc.join(5)
        wait_until(lambda: c.desks() == [], 5, "the engine to free the dead desk's slot")
        again = desks(engine.instance, os_users[RISK])
        assert again("identity")[4] == k  # the same slot, a new object
        assert again("request", int(Verb.PING))[0]
        (row,) = c.desks()
        assert (row.slot, row.pid, row.user, row.attaches) == (k, again.pid, RISK, 2)
    log = os.path.join(engine.env["HELMDESK_DATA_DIR"], "logs", f"engine-{engine.instance}.log")
    wait_until(lambda: f"desk in command slot {k} detached; slot freed" in open(log).read(), 10,
               "the engine to log the detach")
    assert engine.stop() == 0

