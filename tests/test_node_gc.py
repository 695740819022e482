"""The live loop's garbage collection (engine.node.IdleGc): off while the loop runs, done in
idle turns on CPython's own schedule, in a busy turn only past the cap, back on at the end."""

from __future__ import annotations

import gc

import pytest

from engine.node import IdleGc


@pytest.fixture
def idle_gc():
    was = gc.isenabled()
    thresholds = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    g = IdleGc()
    g.start()
    try:
        yield g
    finally:
        g.stop()
        gc.set_threshold(*thresholds)
        if was:
            gc.enable()
        else:
            gc.disable()


def _allocate(n: int) -> list:
    return [[] for _ in range(n)]  # tracked containers: each counts towards generation 0


def test_start_turns_automatic_collection_off_and_stop_back_on(idle_gc):
    assert not gc.isenabled()
    idle_gc.stop()
    assert gc.isenabled()


def test_an_idle_turn_collects_once_the_threshold_is_reached(idle_gc):
    gc.collect()
    keep = _allocate(100)
    idle_gc.idle()
    assert idle_gc.collections == [0, 0, 0]  # below 700: nothing to do
    keep += _allocate(1000)
    idle_gc.idle()
    assert idle_gc.collections[0] == 1
    assert gc.get_count()[0] < 700
    del keep


def test_every_tenth_young_collection_takes_the_next_generation_too(idle_gc):
    gc.collect()
    keep = []
    for _ in range(11):
        keep += _allocate(800)
        idle_gc.idle()
    assert idle_gc.collections[1] == 1
    assert sum(idle_gc.collections[:2]) == 11


def test_a_busy_turn_collects_only_past_the_cap(idle_gc):
    gc.collect()
    keep = _allocate(5000)
    idle_gc.busy()
    assert idle_gc.collections == [0, 0, 0]
    keep += _allocate(IdleGc.BUSY_MAX)
    idle_gc.busy()
    assert idle_gc.collections[0] == 1
    del keep
