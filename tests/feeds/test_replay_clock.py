"""The replay clock of a live replay engine (``ReplaySource``): play, pause, speed and jump on
the recorded time, without a process (the engine's loop asks ``clock`` each turn)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.events import MD_EVENT, EventBuffer
from engine.feeds.sources import NEVER, ReplayRefused, ReplaySource, clock_text

T0 = 1_795_426_200_000_000_000  # 2026-11-23 09:30:00 UTC
MS = 1_000_000
S = 1_000_000_000


def _records(times_ms) -> np.ndarray:
    r = np.zeros(len(times_ms), dtype=MD_EVENT)
    r["recv_ns"] = [T0 + t * MS for t in times_ms]
    r["seq"] = np.arange(len(times_ms))
    return r


def _source(times_ms=range(0, 60_000, 10), **kw) -> ReplaySource:
    return ReplaySource(_records(list(times_ms)), [0], speed=kw.pop("speed", 1.0), **kw)


def test_play_runs_recorded_time_at_the_speed_and_pause_stands_still():
    src = _source(speed=2.0)
    wall = 5_000 * S
    assert src.begin(wall) == T0 and not src.catching_up
    assert src.clock(wall + S, NEVER) == T0 + 2 * S  # 2x: two recorded seconds a second
    assert src.pause() == "paused at 09:30:02.000"
    assert src.clock(wall + 10 * S, NEVER) == T0 + 2 * S  # stands still
    assert src.wait_ns(T0 + 3 * S) == NEVER  # nothing comes while paused
    assert src.play() == "playing at 2x from 09:30:02.000"
    assert src.clock(wall + 11 * S, NEVER) == T0 + 4 * S  # from where it stood
    assert src.set_speed(10) == "playing at 10x from 09:30:04.000"
    assert src.clock(wall + 12 * S, NEVER) == T0 + 14 * S
    assert src.wait_ns(T0 + 15 * S) == S // 10 + 1  # one recorded second at 10x


@pytest.mark.parametrize("speed", [0, 0.05, 1001, -1])
def test_a_speed_out_of_range_is_refused_with_the_range(speed):
    src = _source()
    src.begin(0)
    with pytest.raises(ReplayRefused, match=r"speed must be 0.1 .. 1000 .*was"):
        src.set_speed(speed)
    assert src.speed == 1.0


def test_a_forward_jump_catches_up_in_slices_of_recorded_time():
    src = _source(times_ms=[0, 1, 2, 500, 501, 30_000])
    src.slice_ns = MS
    src.begin(0)
    src.pause()
    assert src.jump(T0 + 20 * S) == ("jumping from 09:30:00.000 to 09:30:20.000, then paused")
    steps = []
    while src.catching_up:
        steps.append(src.clock(0, NEVER) - T0)
        out = EventBuffer(64)
        src.step(T0 + steps[-1], out)
    # a millisecond a turn while records come; the empty stretches are skipped; the turn
    # after the one at the time lands (its answer sees that turn's books)
    assert steps == [1 * MS, 2 * MS, 500 * MS, 501 * MS, 20 * S, 20 * S]
    assert src.landed_text() == "at 09:30:20.000, paused"
    assert src.clock(10 * S, NEVER) == T0 + 20 * S  # and stays paused there
    assert src.pos == 5  # every record up to the time, none after


def test_a_jump_to_a_time_the_kernel_has_work_stops_there_too():
    src = _source(times_ms=[0, 10_000])
    src.slice_ns = MS
    src.begin(0)
    src.step(T0, EventBuffer(64))  # the first record: the next is 10 s later
    src.jump(T0 + 5 * S)
    assert src.clock(0, T0 + 2 * S) == T0 + 2 * S  # a timer due: a turn at its time
    assert src.clock(0, NEVER) == T0 + 5 * S


def test_a_catch_up_turn_never_passes_a_time_the_kernel_has_work():
    src = _source(times_ms=range(0, 100))
    src.slice_ns = MS
    src.begin(0)
    src.step(T0, EventBuffer(64))
    src.jump(T0 + 50 * MS)
    assert src.clock(0, T0 + MS // 2) == T0 + MS // 2  # a venue's answer due mid-slice
    assert src.clock(0, NEVER) == T0 + MS // 2 + MS


def test_backwards_and_outside_the_day_are_refused_with_the_reason():
    src = _source()
    src.begin(0)
    src.jump(T0 + 10 * S)
    while src.catching_up:
        src.clock(0, NEVER)
    with pytest.raises(ReplayRefused, match="cannot jump back from 09:30:10.000 to "
                                            "09:30:05.000: orders and fills cannot un-happen"):
        src.jump(T0 + 5 * S)
    with pytest.raises(ReplayRefused, match=r"10:00:00.000 is outside the recorded day "
                                            r"\(09:30:00.000 .. 09:30:59.990\)"):
        src.jump(T0 + 30 * 60 * S)


def test_the_day_ends_paused_at_its_last_record():
    src = _source(times_ms=[0, 1000])
    src.begin(0)
    assert src.clock(5 * S, NEVER) == T0 + S
    assert src.paused and src.state_text() == "at the day's end, 09:30:01.000, paused"
    with pytest.raises(ReplayRefused, match="nothing left to play"):
        src.play()


def test_start_at_a_time_catches_up_and_stays_paused():
    src = _source(at_ns=T0 + 3 * S, paused=True)
    src.slice_ns = 0  # nobody but the books sees the records: all at once
    src.begin(0)
    assert src.catching_up and src.wait_ns(NEVER) == 0
    assert src.clock(0, NEVER) == T0 + 3 * S and src.catching_up  # the turn at the time
    assert src.clock(0, NEVER) == T0 + 3 * S and not src.catching_up  # landed
    assert src.clock(S, NEVER) == T0 + 3 * S


def test_clock_text():
    assert clock_text(T0 + 3_723_456 * MS) == "10:32:03.456"
