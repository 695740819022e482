"""``MarketData.changed``: the compiled pass that finds the books that changed since a
reader's ``seen`` counters, held to its plain-Python reference on random inputs, and through
the stage itself."""

from __future__ import annotations

import numpy as np

from engine.book.books import BookSet
from engine.core.profile import InstrumentConfig
from engine.feeds.marketdata import (MarketData, MarketDataConfig, _changed,
                                     _changed_reference)


def test_the_compiled_pass_is_its_reference_on_random_inputs():
    rng = np.random.default_rng(3)
    for n in (1, 7, 1000):
        books = BookSet(2, n)
        now = books.bbo["updates"]  # a strided view, as the stage passes it
        for _ in range(50):
            now[:] = rng.integers(0, 5, n)
            seen = rng.integers(0, 5, n)
            want = np.flatnonzero(now != seen)
            seen2 = seen.copy()
            out, out2 = np.full(n, -1), np.full(n, -1)
            k = _changed(now, seen, out)
            k2 = _changed_reference(now, seen2, out2)
            assert k == k2 == len(want)
            assert (out[:k] == want).all() and (out2[:k2] == want).all()
            assert (seen == now).all() and (seen2 == now).all()


def test_changed_gives_each_reader_its_own_changes_once():
    ins = [InstrumentConfig(symbol=f"S{k}", tick=0.01, price=10.0) for k in range(5)]
    md = MarketData(MarketDataConfig(venues=("A",), silence_ns=(10**9,)), ins)
    a, b = md.new_seen(), md.new_seen()
    md.books.bbo["updates"][[1, 3]] += 1
    got = md.changed(a)
    assert got.tolist() == [1, 3] and got.dtype == np.int64
    assert md.changed(a).tolist() == []
    md.books.bbo["updates"][4] += 2
    assert md.changed(b).tolist() == [1, 3, 4]
    assert got.tolist() == [1, 3]  # a result is the reader's own: the next call keeps it
