"""The doorbell lives in a directory only we can use; the segment is ours and 0600."""

from __future__ import annotations

import os
import select
import socket
import stat

import pytest

from engine.ipc import EngineClient, IpcError, Verb
from engine.ipc.layout import segment_name
from engine.ipc.publisher import EngineSegment
from engine.ipc.rundir import UnsafeRuntimeDir, doorbell_path, runtime_dir
from engine.ipc.segment import Segment

UID = os.geteuid()
root_only = pytest.mark.skipif(UID != 0, reason="making a file another user owns needs root")


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    """A private XDG_RUNTIME_DIR, as systemd-logind makes it."""
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    return d


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_doorbell_is_a_0600_socket_in_a_0700_directory_of_ours(xdg, instance):
    shm = EngineSegment(instance, [("A", 0.01, 10.0)])
    try:
        path = xdg / "helmdesk" / f"{instance}.bell"
        assert shm.bell_path == doorbell_path(instance) == str(path)
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == UID and mode(path) == 0o600
        assert mode(xdg / "helmdesk") == 0o700 and os.lstat(xdg / "helmdesk").st_uid == UID
    finally:
        shm.close()
    assert not path.exists()  # removed with the engine


def test_without_a_usable_xdg_dir_it_is_tmp_helmdesk_uid(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert runtime_dir(tmp_root=str(tmp_path)) == tmp_path / f"helmdesk-{UID}"
    assert mode(tmp_path / f"helmdesk-{UID}") == 0o700
    shared = tmp_path / "shared-run"  # an XDG_RUNTIME_DIR others may write: not used
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    assert runtime_dir(tmp_root=str(tmp_path)) == tmp_path / f"helmdesk-{UID}"
    assert not (shared / "helmdesk").exists()


def test_the_default_fallback_is_under_tmp(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert doorbell_path("x") == f"/tmp/helmdesk-{UID}/x.bell"
    assert mode(f"/tmp/helmdesk-{UID}") == 0o700


def test_a_directory_others_may_write_is_refused_with_the_path_and_why(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    d = tmp_path / f"helmdesk-{UID}"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(UnsafeRuntimeDir, match=f"refusing runtime directory {d}: its mode is "
                                               "0777, not 0700; it must be a directory owned "
                                               "by you with mode 0700"):
        runtime_dir(tmp_root=str(tmp_path))
    assert mode(d) == 0o777  # refused, never "fixed"


def test_a_symlink_or_a_file_in_its_place_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / f"helmdesk-{UID}").symlink_to(target)
    with pytest.raises(UnsafeRuntimeDir, match="it is a symbolic link"):
        runtime_dir(tmp_root=str(tmp_path))
    other = tmp_path / "o"
    other.mkdir()
    (other / f"helmdesk-{UID}").write_text("")
    with pytest.raises(UnsafeRuntimeDir, match="it is not a directory"):
        runtime_dir(tmp_root=str(other))


@root_only
def test_a_directory_another_user_owns_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    d = tmp_path / f"helmdesk-{UID}"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    with pytest.raises(UnsafeRuntimeDir, match=f"{d}: it is owned by uid 65534, not by us"):
        runtime_dir(tmp_root=str(tmp_path))


def test_an_engine_refuses_to_start_on_an_unsafe_directory(xdg, instance):
    (xdg / "helmdesk").mkdir()
    (xdg / "helmdesk").chmod(0o777)
    with pytest.raises(UnsafeRuntimeDir, match="its mode is 0777, not 0700"):
        EngineSegment(instance, [("A", 0.01, 10.0)])
    # and it left no segment behind (the autouse fixture checks /dev/shm too)
    assert not os.path.exists("/dev/shm" + segment_name(instance))


def test_the_engine_process_says_why_it_refuses(xdg, engine_factory, instance):
    (xdg / "helmdesk").mkdir()
    (xdg / "helmdesk").chmod(0o755)
    e = engine_factory(instance).start(wait=False)
    assert e.proc.wait(20) == 3
    assert f"refusing runtime directory {xdg / 'helmdesk'}: its mode is 0755" in e.output()


def test_a_stale_doorbell_of_a_dead_engine_is_replaced_and_rings(xdg, instance):
    path = xdg / "helmdesk" / f"{instance}.bell"
    path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(path))  # an engine that died leaves its socket file
    dead.close()
    shm = EngineSegment(instance, [("A", 0.01, 10.0)], idle="sleep")
    try:
        with EngineClient(instance) as c:
            c.send(Verb.PING)
            r, _, _ = select.select([shm.bell], [], [], 5.0)
            assert r == [shm.bell]  # the desk's datagram reached the new engine
            shm.drain_bell()
            assert select.select([shm.bell], [], [], 0)[0] == []
    finally:
        shm.close()


def test_something_else_in_the_doorbells_place_is_refused(xdg, instance):
    (xdg / "helmdesk").mkdir(mode=0o700)
    (xdg / "helmdesk" / f"{instance}.bell").write_text("not a socket")
    with pytest.raises(IpcError, match="is in the way of the engine's doorbell and is not a "
                                       "socket of ours"):
        EngineSegment(instance, [("A", 0.01, 10.0)])


def test_a_real_engine_rings_through_the_private_directory(xdg, engine_factory, instance):
    e = engine_factory(instance).start()  # idle sleep: without the bell, 1 ms a command
    assert os.path.exists(xdg / "helmdesk" / f"{instance}.bell")
    with EngineClient(instance) as c:
        for _ in range(20):
            assert c.request(Verb.PING).accepted
    assert e.stop() == 0
    assert not os.path.exists(xdg / "helmdesk" / f"{instance}.bell")


def test_a_new_segment_is_ours_and_0600_whatever_the_umask(instance):
    old = os.umask(0)
    try:
        seg = Segment.create(segment_name(instance), 8192)
    finally:
        os.umask(old)
    try:
        st = os.fstat(seg.fd)
        assert st.st_uid == UID and stat.S_IMODE(st.st_mode) == 0o600
    finally:
        seg.unlink()
        seg.close()


@root_only
def test_a_segment_name_another_user_holds_is_refused_with_a_clear_error(instance):
    name = segment_name(instance)
    squat = Segment.create(name, 8192)
    os.fchown(squat.fd, 65534, 65534)  # as if another user had made it first
    try:
        with pytest.raises(IpcError, match=f"shared memory {name} .* already exists and belongs "
                                           "to another user \\(uid 65534\\)"):
            EngineSegment(instance, [("A", 0.01, 10.0)])
        with pytest.raises(IpcError, match="nothing listens on its attach socket \\(its shared "
                                           f"memory {name} belongs to uid 65534\\)"):
            EngineClient(instance)
    finally:
        squat.unlink()
        squat.close()

