"""The event ring never blocks its writer and counts exactly what a slow reader lost."""

import os
import subprocess
import sys
import textwrap

import numpy as np
from hypothesis import given, settings, strategies as st

from engine.ipc.layout import EVENT_DTYPE, RING_CONTROL
from engine.ipc.rings import EventRingReader, EventRingWriter
from engine.ipc.segment import Segment

from tests.conftest import PREFIX


def make_ring(cap: int, tag: str):
    name = f"/helmdesk.{PREFIX}{tag}{os.getpid()}"
    seg = Segment.create(name, RING_CONTROL + cap * EVENT_DTYPE.itemsize + 4096)
    return seg


def test_a_writer_with_no_reader_never_blocks_and_the_reader_counts_the_loss():
    seg = make_ring(64, "ev1")
    try:
        w = EventRingWriter(seg.buf, 0, 64)
        r = EventRingReader(seg.buf, 0, 64)
        for i in range(1000):  # 15x the capacity, nobody reading
            w.publish(i, 4, 20, i, b"x%d" % i)
        got = r.poll()
        assert r.lost == 1000 - 64
        assert list(got["seq"]) == list(range(936, 1000))
        assert got["text"][-1] == b"x999" and got["instrument"][0] == 936
        assert len(r.poll()) == 0  # nothing new
        w.publish(5, 1, 20, -1, b"after")
        assert r.poll()["text"].tolist() == [b"after"]
    finally:
        seg.unlink()
        seg.close()


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["one", "batch", "read"]), st.integers(1, 200)),
                    max_size=60))
def test_delivered_plus_lost_is_everything_in_order(ops):
    seg = make_ring(128, "ev2")
    try:
        w = EventRingWriter(seg.buf, 0, 128)
        r = EventRingReader(seg.buf, 0, 128)
        produced = 0
        delivered = []
        for op, n in ops:
            if op == "one":
                for _ in range(n):
                    w.publish(produced, 1, 20, produced % 1000, b"")
                    produced += 1
            elif op == "batch":
                recs = np.zeros(n, EVENT_DTYPE)
                recs["ts_ns"] = np.arange(produced, produced + n)
                w.publish_batch(recs)
                produced += n
            else:
                delivered.extend(r.poll(max_records=n)["ts_ns"].tolist())
        while len(batch := r.poll()):
            delivered.extend(batch["ts_ns"].tolist())
        assert delivered == sorted(delivered)
        assert len(set(delivered)) == len(delivered)
        assert len(delivered) + r.lost == produced
        if produced:
            assert delivered[-1] == produced - 1  # the newest is never lost
    finally:
        seg.unlink()
        seg.close()


PRODUCER = textwrap.dedent("""
    import sys, numpy as np
    from engine.ipc.segment import Segment
    from engine.ipc.rings import EventRingWriter
    from engine.ipc.layout import EVENT_DTYPE
    seg = Segment.attach(sys.argv[1], check=False)
    w = EventRingWriter(seg.buf, 0, int(sys.argv[2]))
    total = int(sys.argv[3])
    batch = np.zeros(64, EVENT_DTYPE)
    done = 0
    while done < total:
        n = min(64, total - done)
        b = batch[:n]
        b["ts_ns"] = np.arange(done, done + n)
        b["instrument"] = (np.arange(done, done + n) * 7) % 100000
        w.publish_batch(b)
        done += n
""")


def test_across_processes_every_delivered_record_is_intact():
    cap, total = 1024, 400_000
    seg = make_ring(cap, "ev3")
    try:
        r = EventRingReader(seg.buf, 0, cap)
        p = subprocess.Popen([sys.executable, "-c", PRODUCER, seg.name, str(cap), str(total)])
        got = 0
        last = -1
        while True:
            recs = r.poll(max_records=cap)
            if len(recs):
                ts = recs["ts_ns"]
                assert (np.diff(ts) > 0).all() and ts[0] > last
                assert np.array_equal(recs["instrument"], (ts * 7) % 100000)
                assert np.array_equal(recs["seq"].astype(np.int64), ts)
                last = int(ts[-1])
                got += len(recs)
            elif p.poll() is not None and r.tail == r.cursor:
                break
        assert p.returncode == 0
        assert last == total - 1
        assert got + r.lost == total
    finally:
        seg.unlink()
        seg.close()
