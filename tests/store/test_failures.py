"""What goes wrong: a writer killed, a full ring, garbage, a bad URL, an engine that dies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest

from engine.execution.orders import OrdStatus
from engine.ipc.segment import segment_exists
from engine.store import StoreInUse, StoreLink, StoreStartError
from engine.store import models as m
from engine.store.link import _HEAD
from engine.store.records import HDR, ORDER, SLOT, Kind, W, segment_name
from tests.conftest import wait_until
from tests.store._util import flushed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def put_mix(link: StoreLink, i: int) -> None:
    """Record ``i`` of a stream: a command, an execution or an order change, in turn."""
    k = i % 3
    if k == 0:
        link.put_command(i, "u", "w", 1, 1, 0, 0, 0.0, 0.0, f"cmd {i}", 1, "", i)
    elif k == 1:
        link.put_execution(f"E{i}", "SIMA", f"O{i % 50}", f"S{i % 7}", 1 + i % 2, 1 + i % 5,
                           100.0 + i % 11, i)
    else:
        link.put_order(f"O{i % 50}", "SIMA", "ESZ6", 1, 100, 10.0, "day", OrdStatus.NEW, 0, 100,
                       0.0, "", "", i, i)


def check_mix(db, n: int) -> None:
    """Every record of put_mix(0..n-1) is in the database exactly once."""
    cmds = sorted(db.scalars(m.commands.c.cmd_id))
    assert cmds == list(range(0, n, 3))
    execs = db.rows(m.executions)
    assert sorted(int(r["exec_id"][1:]) for r in execs) == list(range(1, n, 3))
    for sym in {r["symbol"] for r in execs}:  # no fill applied twice to a position
        want = sum((1 + i % 5) * (1 if i % 2 == 0 else -1) for i in range(1, n, 3)
                   if f"S{i % 7}" == sym)
        (pos,) = db.rows(m.positions, m.positions.c.symbol == sym)
        assert pos["qty"] == want, sym
    last = {f"O{i % 50}": i for i in range(2, n, 3)}
    got = {r["cl_ord_id"]: r["updated_ns"] for r in db.rows(m.orders)}
    assert got == last


def test_a_writer_killed_mid_stream_is_restarted_and_nothing_is_lost(make_link, db):
    link = make_link(capacity=1024, batch=200)
    first = link.writer_pid
    n = 12_000
    for i in range(n // 2):
        put_mix(link, i)
        if i % 64 == 0:
            link.poll()
    wait_until(lambda: link.poll() > 0, what="the first writer to write something")
    assert link.pending > 0
    os.kill(first, signal.SIGKILL)
    for i in range(n // 2, n):
        put_mix(link, i)
        if i % 64 == 0:
            link.poll()
    flushed(link, 15)
    assert link.restarts == 1 and link.alive and link.writer_pid != first
    assert f"store writer pid {first}" in link.last_error
    assert "exited with code -9" in link.last_error
    check_mix(db, n)


def test_records_committed_but_not_acknowledged_are_harmless_when_written_again(link, db):
    for i in range(30):
        put_mix(link, i)
    flushed(link)
    before = {t.name: db.rows(t) for t in (m.orders, m.executions, m.positions, m.commands)}
    # the writer dies after a commit but before its ack: rewind both as if it never acked
    proc = link._proc
    proc.kill()
    proc.wait()
    link._ctl[_HEAD] = 0
    link._q[W.DURABLE] = 0
    flushed(link)
    after = {t.name: db.rows(t) for t in (m.orders, m.executions, m.positions, m.commands)}
    assert after == before
    assert link.stats()["duplicates"] == 10  # every execution seen again, none applied
    # acknowledged but the head not moved: skipped, not re-applied
    link._proc.kill()
    link._proc.wait()
    link._ctl[_HEAD] = 0
    flushed(link)
    wait_until(lambda: link.poll() and link._ring.head == 30, what="the head to move again")
    assert link.stats()["replayed"] == 30 and link.stats()["applied"] == 60


def test_a_full_ring_overflows_into_the_link_and_loses_nothing(make_link, db):
    link = make_link(capacity=16)
    n = 3000
    for i in range(n):  # no poll(): the writer cannot keep up with 16 slots
        put_mix(link, i)
        if i % 500 == 0:
            link.put_fix_message("F", i + 1, b"m" * 2000)  # 8 slots, through the overflow too
    assert link.overflowed > 0 and link.stats()["overflow_now"] > 0
    flushed(link, 15)
    check_mix(db, n)
    assert db.count(m.fix_messages) == 6
    assert link.stats()["overflow_now"] == 0 and link.pending == 0


def test_garbage_is_refused_counted_and_the_writer_goes_on(link, db, data_dir):
    link.put_command(1, "u", "w", 1, 1, 0, 0, 0.0, 0.0, "before", 1, "", 1)
    bad_kind = link._put_raw(99, b"whatever")
    order = ORDER.pack(0, 1, 1, 0, b"HD-9", b"SIMA", b"ESZ6", b"day", b"", b"", 1, 0, 10, 1.0, 0,
                       10, 0.0, 1, 1)  # status code 0 exists for no status
    bad_order = link._put_raw(1, order[16:])
    link._put_slots(random.Random(7).randbytes(SLOT))  # a corrupt slot: no sequence at all
    link._put_slots(bytes(SLOT))  # a zeroed one
    link._put_slots(HDR.pack(999, Kind.COMMAND, 1, 0) + bytes(SLOT - HDR.size))  # a stray
    link.put_execution("E", "SIMA", "bad", "ESZ6", 3, 1, 1.0, 1)  # side 3 is nothing
    link.put_execution("E", "SIMA", "neg", "ESZ6", 1, 1, float("nan"), 1)
    after = link.put_command(2, "u", "w", 1, 1, 0, 0, 0.0, 0.0, "after", 1, "", 2)
    flushed(link)
    assert link.durable(bad_kind) and link.durable(bad_order) and link.durable(after)
    assert sorted(db.scalars(m.commands.c.text)) == ["after", "before"]
    assert db.count(m.orders) == 0 and db.count(m.executions) == 0
    assert link.stats()["bad"] == 7 and link.alive and link.restarts == 0
    path = data_dir / "logs" / f"store-{link.instance}.log"
    # the writer's log thread may still be writing what the writer already acknowledged
    log = wait_until(lambda: (t := path.read_text()).count("refused:") == 7 and t,
                     what="the writer's log to name the seven refused records")
    assert f"store record {bad_kind} (kind 99) refused: kind 99 is unknown" in log
    assert f"store record {bad_order} (kind 1) refused: order status code 0 is unknown" in log
    assert "refused: slot count 0 is impossible here" in log
    assert "store record 999 (kind 3) refused: sequence number 999 out of order, expected" in log
    assert "side 3 is neither buy" in log and "execution price is nan" in log


@pytest.mark.parametrize("bad_url, reason", [
    # refused before any process starts
    ("postgresql+nosuchdriver://trader:s3cret@db.example/helm",
     "cannot be used: Can't load plugin: sqlalchemy.dialects:postgresql.nosuchdriver"),
    ("mysql://trader:s3cret@db.example/helm", "cannot be used: dialect 'mysql' is not supported"),
    ("no url at all", "cannot be used: Could not parse SQLAlchemy URL"),
    # only the writer can tell
    ("sqlite:////nonexistent-dir/deeper/engine.db",
     ("store writer for sqlite:////nonexistent-dir/deeper/engine.db failed to start: cannot "
     "open the database: unable to open database file")),
])
def test_a_bad_url_gives_a_clear_error_and_leaves_nothing(instance, bad_url, reason):
    with pytest.raises(StoreStartError) as e:
        StoreLink(instance, bad_url, start_timeout=20)
    msg = str(e.value)
    assert msg.startswith("store ") and reason in msg
    assert "s3cret" not in msg
    assert not segment_exists(segment_name(instance))


def test_a_second_link_for_a_live_instance_is_refused(link, instance):
    with pytest.raises(StoreInUse, match=f"an engine for instance '{instance}' is already "
                                         f"running \\(pid {os.getpid()}\\)"):
        StoreLink(instance, link.url)
    assert link.alive and segment_exists(segment_name(instance))


def _child(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_when_the_engine_dies_the_writer_finishes_the_ring_and_cleans_up(instance, url, db):
    child = _child("""
        import os, signal, sys
        from engine.store import StoreLink
        link = StoreLink(sys.argv[1], sys.argv[2])
        print(link.writer_pid, flush=True)
        for i in range(3000):  # within the ring: an overflow deque dies with its engine
            link.put_command(i, "u", "w", 1, 1, 0, 0, 0.0, 0.0, "", 1, "", i)
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush
    """, instance, url)
    try:
        writer = int(child.stdout.readline())
        child.wait(20)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -9
    wait_until(lambda: _gone(writer), 20, "the orphaned writer to exit")
    assert db.count(m.commands) == 3000
    assert not segment_exists(segment_name(instance))


def test_a_ring_left_by_a_dead_engine_and_writer_is_written_at_the_next_start(
        instance, url, db, make_link):
    child = _child("""
        import sys
        from engine.store import StoreLink
        link = StoreLink(sys.argv[1], sys.argv[2])
        print(link.writer_pid, flush=True)
        sys.stdin.readline()  # the writer is killed meanwhile; nobody polls, nobody restarts
        for i in range(300):
            link.put_command(i, "u", "w", 1, 1, 0, 0, 0.0, 0.0, "", 1, "", i)
        print("pushed", flush=True)
        sys.stdin.readline()
    """, instance, url)
    try:
        writer = int(child.stdout.readline())
        os.kill(writer, signal.SIGKILL)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "pushed\n"
        child.kill()
        child.wait(10)
    finally:
        child.kill()
        child.communicate()
    assert segment_exists(segment_name(instance)) and db.count(m.commands) == 0
    link = make_link()  # writes what was left, then starts afresh
    assert db.count(m.commands) == 300
    assert link.put_command(1000, "u", "w", 1, 1, 0, 0, 0.0, 0.0, "", 1, "", 1000) == 1
    flushed(link)
    assert db.count(m.commands) == 301


def test_a_writer_that_cannot_stay_up_is_given_up_and_its_records_kept(make_link, db):
    link = make_link(max_restarts=1)
    link._proc.kill()
    link._proc.wait()
    wait_until(lambda: (link.poll(), link.restarts == 1 and link.alive)[1],
               what="the restarted writer")
    link._proc.kill()  # dies again before it has written anything
    link._proc.wait()
    wait_until(lambda: (link.poll(), link.writer_pid is None)[1], what="the link to give up")
    assert not link.alive and "exited with code -9" in link.last_error
    seq = link.put_command(1, "u", "w", 1, 1, 0, 0, 0.0, 0.0, "", 1, "", 1)
    link.poll()
    assert not link.durable(seq) and link.pending == 1
    assert link.close(timeout=0.2) == 1  # said, not silent: and the ring stays for next time
    assert segment_exists(segment_name(link.instance))
    make_link()  # the next start writes it
    assert db.count(m.commands) == 1


def test_a_signal_to_the_whole_process_group_leaves_the_writer_to_its_engine(engine_factory,
                                                                             instance):
    """``timeout``, a service manager and Ctrl-C signal every process of the group: the store
    writer keeps writing what its engine sends while it stops, and leaves when told."""
    import signal as sig
    from pathlib import Path

    from engine.ipc import EngineClient, Verb

    e = engine_factory(instance).start()

    def writer_pid() -> int | None:
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    cmd = (d / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"engine.store.writer" in cmd and instance.encode() in cmd:
                    return int(d.name)
        return None

    pid = writer_pid()
    assert pid is not None
    os.kill(pid, sig.SIGTERM)
    os.kill(pid, sig.SIGINT)
    with EngineClient(instance) as c:
        assert c.request(Verb.PING).accepted  # audited: a record for the writer
    os.kill(pid, 0)  # still there: its engine has not told it to go
    assert e.stop() == 0
    assert "exited with code" not in e.output()
    assert writer_pid() is None
