"""Segment life cycle: one engine per name, stale take-over, clean exit, layout refusal."""

import os
import signal

import pytest

from engine.ipc import EngineClient, LayoutMismatch, NoEngine, Verb
from engine.ipc.layout import H, LAYOUT_VERSION, MAGIC, segment_name
from engine.ipc.publisher import EngineSegment
from engine.ipc.segment import Segment

from tests.conftest import wait_until


def shm_path(instance):
    return "/dev/shm" + segment_name(instance)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_engine_cleanly_and_removes_the_segment(engine, sig):
    assert os.path.exists(shm_path(engine.instance))
    st = os.stat(shm_path(engine.instance))
    assert st.st_mode & 0o777 == 0o600  # owner-only
    assert engine.stop(sig) == 0
    assert not os.path.exists(shm_path(engine.instance))
    with pytest.raises(NoEngine, match="no engine is running"):
        EngineClient(engine.instance)


def test_a_second_engine_with_the_same_name_refuses_while_the_first_lives(engine, engine_factory):
    second = engine_factory(engine.instance).start(wait=False)
    assert second.proc.wait(20) == 3
    err = second.output()
    assert f"an engine for instance '{engine.instance}' is already running (pid {engine.pid})" in err
    with EngineClient(engine.instance, commands=False) as c:  # the first is untouched
        assert c.pid == engine.pid and c.status().state == "running"


def test_a_new_engine_takes_over_the_segment_of_a_sigkilled_one(engine, engine_factory):
    old_pid = engine.pid
    engine.kill9()
    assert os.path.exists(shm_path(engine.instance))  # SIGKILL leaves it behind
    new = engine_factory(engine.instance).start()
    with EngineClient(engine.instance, commands=False) as c:
        assert c.pid == new.pid != old_pid
    log = (new.env["HELMDESK_DATA_DIR"] + f"/logs/engine-{engine.instance}.log")
    line = f"taking over stale shared memory /helmdesk.{engine.instance} left by pid {old_pid}"
    # Log records are written by a listener thread, so the file catches up a little later.
    wait_until(lambda: line in open(log).read(), 10, "the takeover line")
    assert new.stop() == 0
    assert not os.path.exists(shm_path(engine.instance))


def test_in_process_second_segment_refused(instance):
    first = EngineSegment(instance, [("A", 0.01, 10.0)])
    try:
        with pytest.raises(Exception, match="already running"):
            EngineSegment(instance, [("A", 0.01, 10.0)])
    finally:
        first.close()


def _fake(instance, magic, version):
    seg = Segment.create(segment_name(instance), 8192)
    seg.q[H.TOTAL_SIZE // 8] = 8192
    seg.buf[H.VERSION : H.VERSION + 4] = version.to_bytes(4, "little")
    seg.q[H.MAGIC // 8] = magic
    return seg


def test_a_desk_refuses_a_segment_with_the_wrong_magic(instance):
    seg = _fake(instance, 0x1234, LAYOUT_VERSION)
    try:
        with pytest.raises(LayoutMismatch, match="is not a Helmdesk engine segment .*refusing"):
            EngineClient(instance)
    finally:
        seg.unlink()
        seg.close()


def test_a_desk_refuses_a_segment_with_another_layout_version(instance):
    seg = _fake(instance, MAGIC, LAYOUT_VERSION + 1)
    try:
        with pytest.raises(LayoutMismatch, match=f"layout version {LAYOUT_VERSION + 1}, this program "
                                                 f"understands version {LAYOUT_VERSION}"):
            EngineClient(instance)
    finally:
        seg.unlink()
        seg.close()


def test_command_slots_are_exclusive_and_freed_on_close(engine):
    clients = [EngineClient(engine.instance) for _ in range(8)]
    try:
        assert sorted(c.slot for c in clients) == list(range(8))
        with pytest.raises(Exception, match="all 8 command slots"):
            EngineClient(engine.instance)
        clients.pop(3).close()
        again = EngineClient(engine.instance)
        clients.append(again)
        assert again.slot == 3
        assert again.request(Verb.PING).accepted  # a reused slot works
    finally:
        for c in clients:
            c.close()


def test_heartbeat_moves(engine):
    with EngineClient(engine.instance, commands=False) as c:
        n = c.status().heartbeat_count
        wait_until(lambda: c.status().heartbeat_count >= n + 20, 5, "20 heartbeats")
        assert c.heartbeat_age_ms() < 1000
