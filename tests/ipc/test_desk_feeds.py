"""What the desk reads besides books: the frame stamp, a replay's position, the trades ring
(time and sales) and the engine's latency histograms."""

from __future__ import annotations

import time

import pytest

from engine.ipc import EngineClient, ReplayState
from engine.ipc.publisher import EngineSegment

from tests.conftest import wait_until


# -- replay position (a unit test on a segment) ------------------------------------------------
def test_replay_state_is_none_until_a_replay_writes_its_position(instance):
    seg = EngineSegment(instance, [("A", 0.01, 10.0)])
    try:
        with EngineClient(instance, commands=False) as c:
            assert c.replay_state() is None
            seg.set_replay(1_700_000_000_000_000_000, 1_700_000_100_000_000_000,
                           1_700_000_050_000_000_000, 2.5, True)
            assert c.replay_state() == ReplayState(
                1_700_000_000_000_000_000, 1_700_000_100_000_000_000,
                1_700_000_050_000_000_000, 2.5, True)
            seg.set_replay(1, 3, 2, 0.125, False)
            assert c.replay_state() == ReplayState(1, 3, 2, 0.125, False)
    finally:
        seg.close()


def test_publish_stamp_counts_publishes_with_their_monotonic_time(instance):
    seg = EngineSegment(instance, [("A", 0.01, 10.0)])
    try:
        with EngineClient(instance, commands=False) as c:
            assert c.publish_stamp() == (0, 0)
            before = time.monotonic_ns()
            seg.stamp_publish()
            seg.stamp_publish()
            seq, mono = c.publish_stamp()
            assert seq == 2 and before <= mono <= time.monotonic_ns()
    finally:
        seg.close()


# -- a real engine -------------------------------------------------------------------------------
def test_a_running_engine_advances_its_publish_stamp_and_is_no_replay(engine):
    with EngineClient(engine.instance, commands=False) as c:
        assert c.replay_state() is None
        seq0, _ = wait_until(lambda: (s := c.publish_stamp())[0] and s, 10, "a first publish")
        seq1, mono1 = wait_until(lambda: (s := c.publish_stamp())[0] > seq0 and s, 10,
                                 "the stamp to advance")
        assert seq1 > seq0
        now = time.monotonic_ns()
        assert 0 < mono1 <= now
        assert now - mono1 < 60 * 1_000_000_000  # recent: this boot's clock, not garbage
