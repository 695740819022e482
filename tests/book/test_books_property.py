"""The compiled book kernels against the plain-Python reference on random MD_EVENT streams,
garbage included, and the consolidated BBO against a brute force after every event."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.book.books import (
    BookSet,
    apply_batch,
    apply_one,
    apply_reference,
    consolidated_depth_reference,
)
from engine.core.events import (
    CHANGE,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    NEW,
    QUOTE,
    STATUS,
    STATUS_GAP,
    TRADE,
)
from tests.book._records import brute_bbo, records, snapshot, stored_bbo

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

dims = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.booleans())


@st.composite
def md_rows(draw, n_venues: int, n_instruments: int, depth: int) -> dict:
    """One record: usually valid for the book's shape (prices close together, so books get
    several levels and venues cross and lock), one in eight with one field of garbage."""
    kind = draw(st.sampled_from([QUOTE] * 8 + [TRADE, STATUS]))
    row = dict(
        kind=kind,
        venue=draw(st.integers(0, n_venues - 1)),
        instrument=draw(st.integers(0, n_instruments - 1)),
        side=draw(st.integers(0, 1) if kind == QUOTE else st.integers(0, 2)),
        action=draw(st.sampled_from([NEW] * 3 + [CHANGE] * 3 + [DELETE] * 2 + [CLEAR])
                    if kind == QUOTE else st.integers(0, 3)),
        level=draw(st.integers(0, depth - 1)),
        flags=draw(st.sampled_from([0, 0, F_SNAPSHOT, F_SNAPSHOT | F_LAST, F_LAST])),
        price=draw(st.integers(97, 103)),
        size=draw(st.integers(1, 5)),
        seq=draw(st.integers(0, 2**64 - 1)),
        exch_ns=draw(st.integers(-2**63, 2**63 - 1)),
        recv_ns=draw(st.integers(0, 2**62)),
    )
    if draw(st.integers(0, 7)) == 0:
        name, bad = draw(st.sampled_from([
            ("kind", st.sampled_from([0, 4, 255])),
            ("venue", st.integers(n_venues, 255)),
            ("instrument", st.integers(n_instruments, 2**32 - 1)),
            ("side", st.integers(3, 255)),
            ("action", st.integers(4, 255)),
            ("level", st.integers(depth, 255)),
            ("size", st.sampled_from([0, -1, -2**63])),
            ("price", st.sampled_from([0, -1, -2**63])),
        ]))
        row[name] = draw(bad)
    return row


@st.composite
def streams(draw):
    n_venues, n_instruments, depth, start_stale = draw(dims)
    rows = draw(st.lists(md_rows(n_venues, n_instruments, depth), max_size=100))
    return (n_venues, n_instruments, depth, start_stale), records(*rows)


def assert_same(a: BookSet, b: BookSet) -> None:
    for name in ("book", "venue", "bbo", "rejects"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@SETTINGS
@given(streams())
def test_kernel_batch_equals_the_reference(case):
    shape, recs = case
    kernel, ref = BookSet(*shape[:3], start_stale=shape[3]), BookSet(*shape[:3],
                                                                     start_stale=shape[3])
    assert apply_batch(kernel, recs) == apply_reference(ref, recs)
    assert_same(kernel, ref)


@SETTINGS
@given(streams(), st.integers(1, 20))
def test_one_at_a_time_keeps_the_bbo_right_after_every_event(case, depth_n):
    shape, recs = case
    one, batch, bound = (BookSet(*shape[:3], start_stale=shape[3]) for _ in range(3))
    apply = bound.bind(recs)
    for k in range(len(recs)):
        changes = one.bbo["changes"].copy()
        out = apply_one(one, recs, k)
        assert apply(k) == out
        changed = np.flatnonzero(one.bbo["changes"] != changes)
        assert len(changed) == (out == 1)  # 1 exactly when its instrument's BBO changed
        for i in range(one.n_instruments):
            assert stored_bbo(one, i) == brute_bbo(one, i), (k, i)
    apply_batch(batch, recs)
    assert_same(one, batch)
    assert_same(one, bound)
    for i in range(one.n_instruments):
        assert np.array_equal(one.consolidated_depth(i, depth_n),
                              consolidated_depth_reference(one, i, depth_n))


class BookMachine(RuleBasedStateMachine):
    """Realistic sequences (snapshots, gaps, quotes near the top, trades) plus garbage, one
    event at a time through ``apply_one`` and through the reference: identical after each."""

    @initialize(shape=dims)
    def make(self, shape):
        self.n_venues, self.n_instruments, self.depth, stale = shape
        self.kernel = BookSet(*shape[:3], start_stale=stale)
        self.ref = BookSet(*shape[:3], start_stale=stale)

    def apply(self, rows: list[dict]) -> None:
        recs = records(*rows)
        for k in range(len(recs)):
            apply_one(self.kernel, recs, k)
        apply_reference(self.ref, recs)

    @precondition(lambda self: hasattr(self, "kernel"))
    @rule(data=st.data())
    def any_record(self, data):
        self.apply([data.draw(md_rows(self.n_venues, self.n_instruments, self.depth))])

    @precondition(lambda self: hasattr(self, "kernel"))
    @rule(data=st.data(), flagged=st.booleans())
    def snapshot(self, data, flagged):
        v = data.draw(st.integers(0, self.n_venues - 1))
        i = data.draw(st.integers(0, self.n_instruments - 1))
        n = st.integers(0, self.depth)
        bids = [(100 - k, s) for k, s in enumerate(data.draw(st.lists(st.integers(1, 9),
                                                                       max_size=self.depth)))]
        asks = [(data.draw(st.integers(99, 102)) + k, 1) for k in range(data.draw(n))]
        self.apply(snapshot(v, bids, asks, i, flagged))

    @precondition(lambda self: hasattr(self, "kernel"))
    @rule(data=st.data())
    def gap(self, data):
        self.apply([dict(kind=STATUS, action=STATUS_GAP,
                         venue=data.draw(st.integers(0, self.n_venues - 1)),
                         instrument=data.draw(st.integers(0, self.n_instruments - 1)))])

    @precondition(lambda self: hasattr(self, "kernel"))
    @invariant()
    def same_as_reference(self):
        assert_same(self.kernel, self.ref)

    @precondition(lambda self: hasattr(self, "kernel"))
    @invariant()
    def bbo_is_the_brute_force(self):
        for i in range(self.n_instruments):
            assert stored_bbo(self.kernel, i) == brute_bbo(self.kernel, i)


BookMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30,
                                         deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
test_book_machine = BookMachine.TestCase

