"""The portfolio: positions, average cost and P&L per book and instrument, in the engine.

Books are the desk as a whole (book 0), each strategy and each account of the scope table: a
fill counts in the desk's book, its strategy's (if a strategy sent it) and its account's. Each
fill goes through ``engine.core.positions.apply_fill`` — the one position arithmetic the
store's writer and the backtest report use too — with its fee, so realized P&L is net of fees.
Unrealized P&L marks each open position to the instrument's mark (the consolidated mid, set by
the risk engine with ``mark``); ``exposure`` is Σ |position| × mark per book.

Everything the pre-trade checks read per order is a plain Python number kept up to date on each
fill, working-order change and mark (no numpy on that path); ``rows()`` builds the
``POSITION_ROW`` table the desk reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.core.positions import apply_fill
from engine.core.records import BOOK_ACCOUNT, BOOK_DESK, BOOK_STRATEGY, POSITION_ROW

__all__ = ["Portfolio"]

NAN = float("nan")


class Portfolio:
    def __init__(self, symbols: Sequence[str], strategies: Sequence[str],
                 accounts: Sequence[str]) -> None:
        self.symbols = list(symbols)
        n = self.n = len(self.symbols)
        self.n_strategies = len(strategies)
        self.book_names = (["desk"] + [f"strategy:{s}" for s in strategies]
                           + [f"account:{a}" for a in accounts])
        self.book_kind = ([BOOK_DESK] + [BOOK_STRATEGY] * len(strategies)
                          + [BOOK_ACCOUNT] * len(accounts))
        self.book_id = [0] + list(range(len(strategies))) + list(range(len(accounts)))
        nb = self.n_books = len(self.book_names)
        self.qty = [[0] * n for _ in range(nb)]
        self.avg = [[0.0] * n for _ in range(nb)]
        self.realized = [[0.0] * n for _ in range(nb)]
        self.fees = [[0.0] * n for _ in range(nb)]
        self.unreal = [[0.0] * n for _ in range(nb)]
        self.work_buy = [[0] * n for _ in range(nb)]
        self.work_sell = [[0] * n for _ in range(nb)]
        self.realized_tot = [0.0] * nb
        self.unreal_tot = [0.0] * nb
        self.exposure = [0.0] * nb  #: Σ |qty| × mark (positions; working orders apart)
        self.work_notional = [0.0] * nb  #: Σ leaves × price of working orders
        self.marks = [NAN] * n
        #: qty as a numpy array (books × instruments), for the VaR helper
        self.qty_np = np.zeros((nb, n), dtype=np.float64)
        #: instrument -> the books holding a position in it
        self.holders: list[set[int]] = [set() for _ in range(n)]
        self.held: set[int] = set()  #: instruments some book holds
        self.fills = 0

    def strategy_book(self, s: int) -> int:
        return 1 + s

    def account_book(self, a: int) -> int:
        return 1 + self.n_strategies + a

    # -- changes ---------------------------------------------------------------------------------
    def fill(self, books: Sequence[int], i: int, side: int, qty: int, px: float,
             fee: float = 0.0) -> None:
        """An execution of ``qty`` at ``px`` (side 1 buy, 2 sell), in each of ``books``."""
        self.fills += 1
        mark = self.marks[i]
        if mark != mark:  # no mark yet: the fill's price is the best we know
            mark = self.marks[i] = px
        for b in books:
            q0 = self.qty[b][i]
            q, avg, real = apply_fill((q0, self.avg[b][i], self.realized[b][i]), side, qty, px,
                                      fee)
            self.realized_tot[b] += real - self.realized[b][i]
            self.qty[b][i], self.avg[b][i], self.realized[b][i] = q, avg, real
            self.qty_np[b, i] = q
            self.fees[b][i] += fee
            u = (mark - avg) * q
            self.unreal_tot[b] += u - self.unreal[b][i]
            self.unreal[b][i] = u
            self.exposure[b] += (abs(q) - abs(q0)) * mark
            if q:
                self.holders[i].add(b)
            else:
                self.holders[i].discard(b)
        if self.holders[i]:
            self.held.add(i)
        else:
            self.held.discard(i)

    def working(self, books: Sequence[int], i: int, side: int, delta: int, px: float) -> None:
        """Working quantity of a side changed by ``delta`` (an order sent, filled, cancelled)."""
        if side == 1:
            for b in books:
                self.work_buy[b][i] += delta
                self.work_notional[b] += delta * px
        else:
            for b in books:
                self.work_sell[b][i] += delta
                self.work_notional[b] += delta * px

    def mark(self, i: int, px: float) -> None:
        """Instrument ``i``'s mark moved to ``px`` (NaN is ignored: the last mark stays)."""
        old = self.marks[i]
        if px != px or px == old:
            return
        self.marks[i] = px
        for b in self.holders[i]:
            q = self.qty[b][i]
            u = (px - self.avg[b][i]) * q
            self.unreal_tot[b] += u - self.unreal[b][i]
            self.unreal[b][i] = u
            self.exposure[b] += abs(q) * (px - (old if old == old else px))

    # -- reading ---------------------------------------------------------------------------------
    def pnl(self, b: int = 0) -> float:
        """Book ``b``'s P&L today: realized (fees deducted) + unrealized."""
        return self.realized_tot[b] + self.unreal_tot[b]

    def book_of(self, name: str) -> int | None:
        try:
            return self.book_names.index(name)
        except ValueError:
            return None

    def positions(self, b: int = 0) -> dict[str, int]:
        return {self.symbols[i]: q for i, q in enumerate(self.qty[b]) if q}

    def rows(self) -> np.ndarray:
        """POSITION_ROW rows: each book's total, then its instruments with anything in them."""
        out = []
        for b in range(self.n_books):
            qty, wb, ws, real = self.qty[b], self.work_buy[b], self.work_sell[b], self.realized[b]
            active = [i for i in range(self.n) if qty[i] or wb[i] or ws[i] or real[i]]
            if b and not active:
                continue
            out.append((b, -1))
            out += [(b, i) for i in active]
        rows = np.zeros(len(out), dtype=POSITION_ROW)
        for k, (b, i) in enumerate(out):
            r = rows[k]
            r["book_kind"] = self.book_kind[b]
            r["book_id"] = self.book_id[b]
            r["instrument"] = i
            r["book"] = self.book_names[b].encode()[:24]
            if i < 0:
                r["realized"] = self.realized_tot[b]
                r["unrealized"] = self.unreal_tot[b]
                r["fees"] = sum(self.fees[b])
                r["mark"] = NAN
                r["working_buy"] = sum(self.work_buy[b])
                r["working_sell"] = sum(self.work_sell[b])
                continue
            r["qty"] = self.qty[b][i]
            r["avg_px"] = self.avg[b][i]
            r["realized"] = self.realized[b][i]
            r["unrealized"] = self.unreal[b][i]
            r["fees"] = self.fees[b][i]
            r["mark"] = self.marks[i]
            r["working_buy"] = self.work_buy[b][i]
            r["working_sell"] = self.work_sell[b][i]
        return rows

    def restore(self, b: int, i: int, qty: int, avg: float, realized: float) -> None:
        """A position rebuilt after a restart (from the database)."""
        self.qty[b][i], self.avg[b][i] = qty, avg
        self.qty_np[b, i] = qty
        self.realized_tot[b] += realized - self.realized[b][i]
        self.realized[b][i] = realized
        if qty:
            self.holders[i].add(b)
            self.held.add(i)
            m = self.marks[i]
            if m == m:
                u = (m - avg) * qty
                self.unreal_tot[b] += u - self.unreal[b][i]
                self.unreal[b][i] = u
                self.exposure[b] += abs(qty) * m
