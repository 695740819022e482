"""The router's view of a venue book: the same prices and sizes as ``MarketData.venue_book``
(the reference), made lazily in plain Python from the book's integer ticks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.books import BookSet
from engine.core.ticks import tick_decimals
from engine.execution.engine import _BookView
from engine.feeds.marketdata import MarketData

TICKS = (0.01, 0.05, 0.001, 0.0001, 0.5, 1.0, 0.25, 0.005, 0.1, 1e-6, 0.0025, 5.0)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(TICKS), st.integers(0, 2**32 - 1), st.integers(1, 10**9))
def test_the_lazy_view_is_the_reference_book(tick, seed, top):
    books = BookSet(n_venues=2, n_instruments=3, depth=10)
    rng = np.random.default_rng(seed)
    for arr in (books.bid_px, books.bid_sz, books.ask_px, books.ask_sz):
        arr[...] = rng.integers(0, top, arr.shape)
    books.bid_px[1, 2, 5:] = 0  # empty levels
    market = SimpleNamespace(books=books, ticks=[tick] * 3, decimals=[tick_decimals(tick)] * 3)
    for v in range(2):
        for i in range(3):
            ref = MarketData.venue_book(market, v, i)
            view = _BookView(books, v, i, tick, tick_decimals(tick))
            got = (view.bid_px, view.bid_sz, view.ask_px, view.ask_sz)
            assert got == ref
            assert [list(map(repr, x)) for x in got] == [list(map(repr, x)) for x in ref]
