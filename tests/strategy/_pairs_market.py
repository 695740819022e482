"""What the pairs strategy reads of the market-data stage, set by hand: one venue's
``BookSet`` of AAA and BBB (cent ticks), their names, ticks and decimals. No kernel."""

from __future__ import annotations

from engine.book.books import BookSet


class _Ins:
    def __init__(self, symbol):
        self.symbol = symbol


class TwoBooks:
    def __init__(self):
        self.books = BookSet(1, 2, depth=1, start_stale=False)
        self.ticks = [0.01, 0.01]
        self.decimals = [2, 2]
        self.instruments = [_Ins("AAA"), _Ins("BBB")]

    def quote(self, i, mid):
        """Instrument ``i`` sound, a tick either side of ``mid`` (a price), 100 each."""
        self.quote_ticks(i, round(mid / 0.01))

    def quote_ticks(self, i, mid_ticks):
        b = self.books.bbo
        b["bid_px"][i], b["ask_px"][i], b["flags"][i] = mid_ticks - 1, mid_ticks + 1, 0
        b["bid_sz"][i] = b["ask_sz"][i] = 100
