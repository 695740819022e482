"""A trading ladder (depth of market): one row per tick price, our orders beside the book.

Theory of operation
-------------------
The grid is fixed: row ``r`` of the window shows tick index ``top - r`` (price = index × tick),
so a price keeps its row while the market moves; the window is centred on the inside market at
the first book of a symbol and again only when the user asks (``recentre``, Home). Prices are
kept as integer tick indices throughout: two prices are the same level when their indices are
equal, never when two floats happen to compare equal.

Columns, left to right: our working buys | bid size | price | ask size | our working sells |
last trade quantity (LTQ, at the last trade's price only) | volume traded at the price since
the symbol was set.

``LadderModel`` keeps the book, trades and our orders as ``{tick index: value}`` maps and the
window's texts as one list per row, formatted when a value changes. ``set_book`` runs up to
60 times a second for each of several ladders, so it does as little as it can: the arrays'
bytes are compared with the previous call's first (an unchanged side costs one comparison),
then only levels whose size changed are formatted, and ``LadderView`` is told which cells of
which rows changed (directly: a PySide signal per row cost more than the rest of the call)
and repaints exactly those; Qt item views get one ``dataChanged`` over the span.
``LadderView`` paints with QPainter: a QTableView over the same model cost about 5 % of a
core per ladder at 20 updates a second (delegates, style and stylesheet per cell).

A size that changes flashes for ``FLASH_MS``: the model keeps each flashing cell's end time
and one timer, which runs only while something flashes, turns the ends off. A stale ladder
greys everything and flashes nothing.

``LadderWidget`` adds the title, the STALE banner and the order ticket (quantity and venue) and
turns clicks into requests: ``order_requested``, ``cancel_requested``, ``move_requested``. It
holds no trading logic: the desk sends the commands and the engine decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PySide6.QtCore import (
    QEvent,
    QLine,
    QPoint,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from widgets._model import ALIGN, BG, CENTRE, DISPLAY, FG, FONT, RIGHT, TableModel

__all__ = [
    "ASK",
    "BID",
    "COLUMNS",
    "LTQ",
    "PRICE",
    "SMART",
    "VOLUME",
    "WORK_BUY",
    "WORK_SELL",
    "LadderModel",
    "LadderView",
    "LadderWidget",
    "WorkingOrder",
]

#: column numbers, left to right
WORK_BUY, BID, PRICE, ASK, WORK_SELL, LTQ, VOLUME = range(7)
COLUMNS = ("Buys", "Bid", "Price", "Ask", "Sells", "LTQ", "Volume")
#: the venue entry that lets the engine's smart order router choose
SMART = "*"
#: how long a changed size stays highlighted
FLASH_MS = 300
_FLASH_TICK_MS = 50
_PAD = 12  # pixels beside a cell's text, both sides together

_BUY, _SELL = 0, 1
_SIDE_NAME = ("buy", "sell")
_WORK_COL = (WORK_BUY, WORK_SELL)
_SIDE_OF_COL = {WORK_BUY: _BUY, BID: _BUY, ASK: _SELL, WORK_SELL: _SELL}

_BID = QColor("#3fb5ff")
_ASK = QColor("#ff6b6b")
_STALE = QColor("#6b6f76")
_PRICE_FG = QColor("#d7dae0")
_LTQ_FG = QColor("#f0c674")
_VOL_FG = QColor("#9aa0a8")
_WORK_FG = QColor("#f4f6f8")
_BID_BG = QColor(63, 181, 255, 24)
_ASK_BG = QColor(255, 107, 107, 24)
_BID_FLASH = QColor(63, 181, 255, 120)
_ASK_FLASH = QColor(255, 107, 107, 120)
_BUY_CHIP = QColor(38, 120, 190)
_SELL_CHIP = QColor(176, 60, 60)
_STALE_CHIP = QColor(70, 74, 80)
_PRICE_BG = QColor("#1d2127")
_LAST_BG = QColor(240, 198, 116, 45)
_VOL_BAR = QColor(154, 160, 168, 50)
_BASE = QColor("#15181d")
_TITLE_FG = QColor("#e6e8eb")
_WARN = QColor("#f0c674")
_HEADER_BG = QColor("#22262c")
_HEADER_FG = QColor("#9aa0a8")
_EDGE_BG = QColor("#1a1d22")
_RULE = QColor("#2d3238")
_ROW_RULE = QColor("#1c1f24")
_HOVER = QColor(255, 255, 255, 110)
_DROP = QColor("#f0c674")

# Roles as plain ints: comparing PySide enums costs a microsecond each, and data() is called
# for every role of every cell a Qt view repaints.
_NO_CLIP = int(Qt.TextDontClip.value)  # a text too long spills over; it is never cut
_ALIGNS = (RIGHT, RIGHT, CENTRE, RIGHT, RIGHT, RIGHT, RIGHT)


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """One of our orders working at a price: what the ladder shows and what a click cancels."""

    cl_ord_id: str
    side: str  #: "buy" or "sell"
    price: float
    leaves: float  #: quantity still working

    def __post_init__(self) -> None:
        if self.side not in _SIDE_NAME:
            raise ValueError(f"WorkingOrder {self.cl_ord_id}: side was {self.side!r}: "
                             "it must be 'buy' or 'sell'")


def _qty(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.4f}".rstrip("0")


def _work_text(n: int, qty: float) -> str:
    """One marker per order, then their total: "◆◆ 20"; from four orders on "◆×4 80"."""
    return f"{'◆' * n if n <= 3 else f'◆×{n}'} {_qty(qty)}"


_PRICE_BIT, _BID_BIT, _ASK_BIT, _VOL_BIT = 1 << PRICE, 1 << BID, 1 << ASK, 1 << VOLUME


class LadderModel(TableModel):
    """The ladder's window: ``rowCount()`` rows, highest price first, × the 7 ``COLUMNS``.

    Texts are formatted when a value changes; ``data`` only looks them up.
    """

    columns = COLUMNS

    #: the texts of the strips above and below the window changed (see ``edge_texts``)
    edgesChanged = Signal()

    def __init__(self, depth: int = 10, parent=None, rows: int = 31) -> None:
        super().__init__(parent)
        self.depth = depth
        self.tick = 0.01
        self.decimals = 2
        self.stale = True
        #: True: when the market leaves the window (no inside price on a visible row), re-centre
        #: on it, but never while ``held`` (the mouse is over the ladder: a grid that jumps
        #: under the mouse moves the price a click lands on); the edge strip shows "▲ market"
        #: and Home brings it back
        self.auto_recentre = False
        self.held = False
        self._n = rows
        self._top: int | None = None  # tick index of row 0; None until a book centres it
        self._text: list[list[str]] = [[""] * 7 for _ in range(rows)]
        self._flash: dict[tuple[int, int], float] = {}  # (tick, column) -> monotonic end
        self._flash_timer = QTimer(self)
        self._flash_timer.setInterval(_FLASH_TICK_MS)
        self._flash_timer.timeout.connect(self._end_flashes)
        self._edges = (("",) * 7, ("",) * 7)
        self._painters: list = []
        bold = QFont()
        bold.setBold(True)
        self._bold = bold
        live = (_WORK_FG, _BID, _PRICE_FG, _ASK, _WORK_FG, _LTQ_FG, _VOL_FG)
        self._fg_live = [QBrush(c) for c in live]
        self._fg_stale = [QBrush(_STALE)] * 7
        self._bg_live = [QBrush(_BUY_CHIP), QBrush(_BID_BG), QBrush(_PRICE_BG), QBrush(_ASK_BG),
                         QBrush(_SELL_CHIP), None, None]
        self._flash_bg = {BID: QBrush(_BID_FLASH), ASK: QBrush(_ASK_FLASH)}
        self._reset_data()

    def _reset_data(self) -> None:
        self._bid_key = self._ask_key = b""  # the last book's arrays, as bytes
        self._best = (0.0, 0.0)
        self._bids: dict[int, float] = {}
        self._asks: dict[int, float] = {}
        self._bb: int | None = None  # best bid's tick index
        self._ba: int | None = None
        self._vol: dict[int, float] = {}
        self._vol_max = 0.0
        self._ltq: tuple[int, float] | None = None
        self._work: tuple[dict[int, tuple[WorkingOrder, ...]], ...] = ({}, {})
        self._flash.clear()
        self._flash_timer.stop()

    # -- instrument and window -----------------------------------------------------------------
    def set_instrument(self, decimals: int, tick: float | None = None) -> None:
        """Prices on a grid of ``tick`` (default 10**-decimals), shown with ``decimals``.
        Forgets the book, trades and orders and waits for a book to centre on."""
        tick = float(tick) if tick else 10.0 ** -decimals
        if not tick > 0:
            raise ValueError(f"tick was {tick}: it must be positive")
        self.tick, self.decimals = tick, decimals
        self._reset_data()
        self._top = None
        self._refresh_all()

    def clear(self) -> None:
        """Forget the book, trades and orders (the instrument stays)."""
        self.set_instrument(self.decimals, self.tick)

    def tick_of(self, price: float) -> int:
        """The tick index of ``price`` (rounded to the grid)."""
        return int(round(price / self.tick))

    def price_of(self, tick: int) -> float:
        """The price of tick index ``tick``: the nearest float to the exact tick multiple."""
        return round(tick * self.tick, 10)

    def set_row_count(self, n: int) -> None:
        """Show ``n`` rows, keeping the centre price where it is."""
        n = max(1, int(n))
        if n == self._n:
            return
        self.beginResetModel()
        if self._top is not None:
            self._top = self._top - self._n // 2 + n // 2
        self._n = n
        self._text = [[""] * 7 for _ in range(n)]
        self._fill_texts()
        self.endResetModel()
        self._update_edges()

    @property
    def top_tick(self) -> int | None:
        """Tick index of the first (highest) row; None before a book has centred the grid."""
        return self._top

    def page_rows(self) -> int:
        return max(1, self._n - 2)

    def scroll(self, rows: int) -> None:
        """Move the window ``rows`` ticks up (towards higher prices; negative: down)."""
        if self._top is None or not rows:
            return
        self._top += int(rows)
        self._refresh_all()

    def page(self, pages: int) -> None:
        self.scroll(pages * self.page_rows())

    def recentre(self) -> bool:
        """Centre the window on the inside market (or the last trade); False if none is known."""
        centre = self._centre()
        if centre is None:
            return False
        top = centre + self._n // 2
        if top != self._top:
            self._top = top
            self._refresh_all()
        return True

    def _off_window(self) -> bool:
        """Neither side of the inside market is on a visible row."""
        top, n = self._top, self._n
        inside = [t for t in (self._bb, self._ba) if t is not None]
        return bool(inside) and all(t > top or t <= top - n for t in inside)

    def _centre(self) -> int | None:
        bb, ba = self._bb, self._ba
        if bb is not None and ba is not None:
            return (bb + ba + 1) // 2
        if bb is not None or ba is not None:
            return bb if bb is not None else ba
        return self._ltq[0] if self._ltq else None

    # -- data in -------------------------------------------------------------------------------
    def set_book(self, bid_px: Sequence[float], bid_sz: Sequence[float],
                 ask_px: Sequence[float], ask_sz: Sequence[float]) -> bool:
        """The book, best level first (0 price: no level); False if nothing changed."""
        bp = np.asarray(bid_px, dtype=np.float64)
        bs = np.asarray(bid_sz, dtype=np.float64)
        ap = np.asarray(ask_px, dtype=np.float64)
        az = np.asarray(ask_sz, dtype=np.float64)
        bkey = bp.tobytes() + bs.tobytes()
        akey = ap.tobytes() + az.tobytes()
        bid_changed, ask_changed = bkey != self._bid_key, akey != self._ask_key
        if not (bid_changed or ask_changed):
            return False
        self._bid_key, self._ask_key = bkey, akey
        self._best = (float(bp[0]) if len(bp) else 0.0, float(ap[0]) if len(ap) else 0.0)
        old_bb, old_ba = self._bb, self._ba
        changed: list[tuple[int, int]] = []
        if bid_changed:
            self._bids, self._bb = self._diff_side(self._bids, bp, bs, BID, changed)
        if ask_changed:
            self._asks, self._ba = self._diff_side(self._asks, ap, az, ASK, changed)
        if self._top is None:  # the first book of the symbol: centre on it, nothing flashes
            self.recentre()
            return True
        if self.auto_recentre and not self.held and self._off_window() and self.recentre():
            return True  # the market left the window: it comes back to the middle
        flash = not self.stale
        if self._bb != old_bb or self._ba != old_ba:  # the inside's bold moves
            for t in (old_bb, old_ba, self._bb, self._ba):
                if t is not None:
                    changed.append((t, PRICE))
            self._update_edges()
        self._apply(changed, flash)
        return True

    def _diff_side(self, old: dict[int, float], px: np.ndarray, sz: np.ndarray, col: int,
                   changed: list[tuple[int, int]]) -> tuple[dict[int, float], int | None]:
        # plain Python over ten levels: cheaper than numpy's per-call cost for masks and casts
        tick = self.tick
        new = {round(p / tick): s for p, s in zip(px.tolist(), sz.tolist()) if p}
        for t, s in new.items():
            if old.get(t) != s:
                changed.append((t, col))
        for t in old:
            if t not in new:
                changed.append((t, col))
        return new, (round(float(px[0]) / tick) if len(px) and px[0] else None)

    def add_trades(self, prices: Sequence[float], sizes: Sequence[float]) -> None:
        """One batch of trades, oldest first: the last one is the LTQ; each adds to its
        price's volume."""
        p = np.asarray(prices, dtype=np.float64)
        s = np.asarray(sizes, dtype=np.float64)
        if len(p) != len(s):
            raise ValueError(f"add_trades was given {len(p)} prices and {len(s)} sizes: "
                             "they must be as many")
        if not len(p):
            return
        ticks = np.rint(p / self.tick).astype(np.int64).tolist()
        vol = self._vol
        changed: list[tuple[int, int]] = []
        for t, q in zip(ticks, s.tolist()):
            vol[t] = vol.get(t, 0.0) + q
            changed.append((t, VOLUME))
        old = self._ltq
        self._ltq = (ticks[-1], float(s[-1]))
        if old != self._ltq:
            changed.append((self._ltq[0], LTQ))
            changed.append((self._ltq[0], PRICE))
            if old is not None:
                changed.append((old[0], LTQ))
                changed.append((old[0], PRICE))
        biggest = max(vol[t] for t in set(ticks))
        if biggest > self._vol_max:  # every bar is drawn against the largest volume
            self._vol_max = biggest
            self._announce_column(VOLUME)
        if self._top is None:
            self.recentre()
        self._apply(changed, False)

    def reset_volume(self) -> None:
        """Forget the volume traded at each price and the last trade."""
        self._vol.clear()
        self._vol_max = 0.0
        self._ltq = None
        self._refresh_all()

    def set_orders(self, orders: Iterable[WorkingOrder]) -> None:
        """Our working orders for this symbol (all of them, each call)."""
        new: tuple[dict[int, list[WorkingOrder]], ...] = ({}, {})
        for o in orders:
            if o.leaves > 0:
                new[_SIDE_NAME.index(o.side)].setdefault(self.tick_of(o.price), []).append(o)
        work = tuple({t: tuple(v) for t, v in side.items()} for side in new)
        changed: list[tuple[int, int]] = []
        for side in (_BUY, _SELL):
            old, now, col = self._work[side], work[side], _WORK_COL[side]
            changed += [(t, col) for t in now.keys() | old.keys() if now.get(t) != old.get(t)]
        self._work = work
        self._update_edges()
        self._apply(changed, False)

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            if stale:
                self._flash.clear()
                self._flash_timer.stop()
            self._all_changed()
            self.edgesChanged.emit()

    # -- texts and notifications ---------------------------------------------------------------
    def _cell(self, t: int, col: int) -> str:
        if col == BID:
            s = self._bids.get(t)
            return _qty(s) if s else ""
        if col == ASK:
            s = self._asks.get(t)
            return _qty(s) if s else ""
        if col == PRICE:
            return f"{t * self.tick:,.{self.decimals}f}"
        if col == VOLUME:
            v = self._vol.get(t)
            return _qty(v) if v else ""
        if col == LTQ:
            return _qty(self._ltq[1]) if self._ltq and self._ltq[0] == t else ""
        orders = self._work[0 if col == WORK_BUY else 1].get(t)
        return _work_text(len(orders), sum(o.leaves for o in orders)) if orders else ""

    def _fill_texts(self) -> None:
        top = self._top
        for r in range(self._n):
            row = self._text[r]
            if top is None:
                row[:] = [""] * 7
            else:
                t = top - r
                for c in range(7):
                    row[c] = self._cell(t, c)

    def _refresh_all(self) -> None:
        self._fill_texts()
        self._all_changed()
        self._update_edges()

    def _apply(self, changed: list[tuple[int, int]], flash: bool) -> None:
        """Format the changed cells in the window and announce their rows."""
        top, n = self._top, self._n
        if top is None or not changed:
            return
        rows: dict[int, list[int]] = {}
        if flash:
            end = time.monotonic() + FLASH_MS / 1000
        for t, c in changed:
            r = top - t
            if 0 <= r < n:
                text = self._cell(t, c)
                self._text[r][c] = text
                rows.setdefault(r, []).append(c)
                if flash and text and (c == BID or c == ASK):
                    self._flash[(t, c)] = end
        if flash and self._flash and not self._flash_timer.isActive():
            self._flash_timer.start()
        self._announce(rows)

    def _announce(self, rows: dict[int, list[int]]) -> None:
        """Tell the painters which cells of which rows changed, then Qt views (one
        ``dataChanged`` over the span). Painters are called directly: a signal per row costs
        ~20 µs in PySide, and set_book runs for every book of every ladder."""
        if not rows:
            return
        for painter in self._painters:
            painter(rows)
        r0, r1 = min(rows), max(rows)
        c0 = min(min(cols) for cols in rows.values())
        c1 = max(max(cols) for cols in rows.values())
        self.dataChanged.emit(self.createIndex(r0, c0), self.createIndex(r1, c1))

    def add_painter(self, repaint) -> None:
        """Call ``repaint({row: [column, …]})`` for the cells that change."""
        self._painters.append(repaint)

    def remove_painter(self, repaint) -> None:
        if repaint in self._painters:
            self._painters.remove(repaint)

    def _announce_column(self, col: int) -> None:
        self._announce({r: [col] for r in range(self._n)})

    def _all_changed(self) -> None:
        self._announce({r: [0, 6] for r in range(self._n)})

    def _end_flashes(self) -> None:
        now = time.monotonic()
        done = [k for k, end in self._flash.items() if end <= now]
        top, rows = self._top, {}
        for k in done:
            del self._flash[k]
            if top is not None and 0 <= top - k[0] < self._n:
                rows.setdefault(top - k[0], []).append(k[1])
        if not self._flash:
            self._flash_timer.stop()
        self._announce(rows)

    def _update_edges(self) -> None:
        """Texts of the strips above and below the window: our orders out of sight there, and
        the inside market when it has left the window."""
        top = self._top
        if top is None:
            edges = (("",) * 7, ("",) * 7)
        else:
            bottom = top - self._n + 1
            up, down = [""] * 7, [""] * 7
            for side, col in ((_BUY, WORK_BUY), (_SELL, WORK_SELL)):
                above = [os for t, os in self._work[side].items() if t > top]
                below = [os for t, os in self._work[side].items() if t < bottom]
                for strip, arrow, groups in ((up, "▲", above), (down, "▼", below)):
                    if groups:
                        n = sum(len(os) for os in groups)
                        qty = sum(o.leaves for os in groups for o in os)
                        strip[col] = f"{arrow} {_work_text(n, qty)}"
            inside = [t for t in (self._bb, self._ba) if t is not None]
            if inside and min(inside) > top:
                up[PRICE] = "▲ market"
            elif inside and max(inside) < bottom:
                down[PRICE] = "▼ market"
            edges = (tuple(up), tuple(down))
        if edges != self._edges:
            self._edges = edges
            self.edgesChanged.emit()

    # -- what the user sees (tests read this) --------------------------------------------------
    def visible_rows(self) -> list[tuple[float, tuple[str, ...]]]:
        """(price, texts by column) of each row in the window, highest price first."""
        if self._top is None:
            return []
        return [(self.price_of(self._top - r), tuple(self._text[r])) for r in range(self._n)]

    def row_texts(self, price: float) -> tuple[str, ...] | None:
        """The texts by column at ``price``; None if it is outside the window."""
        r = self.row_of(price)
        return None if r is None else tuple(self._text[r])

    def row_of(self, price: float) -> int | None:
        if self._top is None:
            return None
        r = self._top - self.tick_of(price)
        return r if 0 <= r < self._n else None

    def price_of_row(self, r: int) -> float | None:
        return None if self._top is None or not 0 <= r < self._n else self.price_of(self._top - r)

    def edge_texts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Texts by column of the strip above the window and of the one below."""
        return self._edges

    def is_flashing(self, price: float, col: int) -> bool:
        return (self.tick_of(price), col) in self._flash

    def flash_timer_active(self) -> bool:
        return self._flash_timer.isActive()

    def is_inside(self, price: float) -> bool:
        """True at the best bid's or the best ask's price (shown bold)."""
        return self.tick_of(price) in (self._bb, self._ba)

    def orders_at(self, side: str, price: float) -> tuple[WorkingOrder, ...]:
        return self._work[_SIDE_NAME.index(side)].get(self.tick_of(price), ())

    def volume_at(self, price: float) -> float:
        return self._vol.get(self.tick_of(price), 0.0)

    def best(self) -> tuple[float, float]:
        """(best bid, best ask) of the last book, 0.0 for an empty side."""
        return self._best

    def rows(self) -> list[tuple[str, str, str]]:
        """The last book as levels: ``depth`` asks (worst first) then ``depth`` bids (best
        first), each (bid size, price, ask size) with only its own side's size."""
        bp, bs = np.frombuffer(self._bid_key).reshape(2, -1)
        ap, az = np.frombuffer(self._ask_key).reshape(2, -1)
        d, dec = self.depth, self.decimals
        out: list[tuple[str, str, str]] = []
        for k in range(d - 1, -1, -1):
            px = float(ap[k]) if k < len(ap) else 0.0
            out.append(("", f"{px:,.{dec}f}", _qty(float(az[k]))) if px else ("", "", ""))
        for k in range(d):
            px = float(bp[k]) if k < len(bp) else 0.0
            out.append((_qty(float(bs[k])), f"{px:,.{dec}f}", "") if px else ("", "", ""))
        return out

    # -- the model ---------------------------------------------------------------------------
    def row_count(self) -> int:
        return self._n

    def header(self, section: int, role: int):
        return _ALIGNS[section] if role == ALIGN else None

    def data(self, index, role=DISPLAY):
        r, c = index.row(), index.column()
        if not (0 <= r < self._n and 0 <= c < 7):
            return None
        if role == DISPLAY:
            return self._text[r][c]
        if role == FG:
            return (self._fg_stale if self.stale else self._fg_live)[c]
        if role == ALIGN:
            return _ALIGNS[c]
        if self._top is None:
            return None
        t = self._top - r
        if role == BG:
            if self.stale:
                return None
            if (t, c) in self._flash:
                return self._flash_bg[c]
            if c in _WORK_COL and not self._text[r][c]:
                return None
            return self._bg_live[c]
        if role == FONT:
            return self._bold if c in (BID, PRICE, ASK) and t in (self._bb, self._ba) else None
        return None


class LadderView(QWidget):
    """Paints a ``LadderModel`` (header, strip of what is above, rows, strip of what is below)
    and turns mouse and keys into the ladder's gestures.

    Keys while it has focus: Home re-centres on the inside market, PageUp/PageDown move a page,
    Up/Down one tick, Escape abandons a drag; the wheel moves three ticks a notch; the middle
    button re-centres; a click on the strip above or below the rows moves a page that way.
    Left button: on the bid or ask column (or an empty working-order cell) it asks for an
    order at that row's price at once; on a cell with our orders a click asks to cancel them,
    a drag to another row to move them there.
    """

    #: (side "buy"/"sell", tick index): a click that asks for an order
    order_clicked = Signal(str, int)
    #: (side, tick index): a click on our orders
    cancel_clicked = Signal(str, int)
    #: (side, from tick index, to tick index): our orders dropped on another row
    move_dropped = Signal(str, int, int)

    MIN_ROWS = 15
    WHEEL_ROWS = 3

    def __init__(self, model: LadderModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        model.add_painter(self._cells_changed)
        self.destroyed.connect(lambda *_: model.remove_painter(self._cells_changed))
        model.modelReset.connect(self.update)
        model.edgesChanged.connect(self._edges_changed)
        self.setAttribute(Qt.WA_OpaquePaintEvent)  # every pixel is painted: no erase first
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMouseTracking(True)
        self._font = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        self._bold = QFont(self._font)
        self._bold.setBold(True)
        self.setFont(self._font)
        fm = QFontMetrics(self._bold)
        self.ROW_H = fm.height() + 6
        self._fm = fm
        self._char_w = fm.horizontalAdvance("0")  # every digit and comma: the font is fixed
        self._x = [0] * 8
        self._min_w = [0] * 7
        self._measure()
        self.can_trade, self.why_trade = True, ""
        self.can_cancel, self.why_cancel = True, ""
        self.stale_why = ""
        self._hover: tuple[int, int] | None = None  # (row, column)
        self._press: tuple[int, int, int, QPoint] | None = None  # (column, side, tick, where)
        self._drag_to: int | None = None  # tick the drag would land on; None: nowhere
        self._dragging = False
        self._wheel = 0
        #: a widget laid over the column headers (the STALE banner), kept as wide as the view
        self.header_overlay: QWidget | None = None

    # -- geometry -----------------------------------------------------------------------------
    def _measure(self) -> None:
        """Each column's least width: its header, or a usual text (prices: the longest the
        window shows). A longer size is shortened ("12.3k") rather than clipped."""
        fm = self._fm
        d = self.model.decimals
        texts = self.model._text
        shown = max(len(texts[0][PRICE]), len(texts[-1][PRICE])) if texts else 0
        price = "0" * max(shown, len("0,000") + (d + 1 if d else 0))
        self._price_chars = len(price)
        samples = ("◆◆ 999", "99,999", price, "99,999", "◆◆ 999", "9,999", "99,999")
        self._min_w = [max(fm.horizontalAdvance(s), fm.horizontalAdvance(h)) + _PAD
                       for s, h in zip(samples, COLUMNS)]
        self._layout_columns()

    def _layout_columns(self) -> None:
        spare = max(0, self.width() - sum(self._min_w))
        x, edges = 0, [0]
        for c, w in enumerate(self._min_w):
            x += w + spare * (c + 1) // 7 - spare * c // 7
            edges.append(x)
        self._x = edges
        self._avail = [edges[c + 1] - edges[c] - _PAD for c in range(7)]
        self._rects: dict[int, list[QRect]] = {}  # y -> the row's seven cells (paint reuses)

    def shown_text(self, price: float, col: int) -> str | None:
        """The text painted in ``col`` at ``price`` (a size too long for its column is
        shortened); None outside the window."""
        texts = self.model.row_texts(price)
        if texts is None:
            return None
        text, avail = texts[col], self._avail[col]
        if col != PRICE and self._fm.horizontalAdvance(text) > avail:
            return self._fit(text, avail)
        return text

    def _fit(self, text: str, avail: int) -> str:
        """``text`` (a quantity, after any order markers) short enough for ``avail`` pixels."""
        head, _, num = text.rpartition(" ")
        try:
            v = float(num.replace(",", ""))
        except ValueError:
            return text
        fm = self._fm
        for short in (f"{v / 1e3:,.1f}k", f"{v / 1e3:,.0f}k", f"{v / 1e6:,.1f}M",
                      f"{v / 1e6:,.0f}M", f"{v / 1e9:,.1f}B"):
            out = f"{head} {short}" if head else short
            if fm.horizontalAdvance(out) <= avail:
                return out
        return self._fit(num, avail) if head else text  # markers go first; else it spills

    def instrument_changed(self) -> None:
        """The model's decimals changed: widen the price column if it needs it."""
        self._measure()
        self.updateGeometry()
        self.update()

    def minimumSizeHint(self) -> QSize:
        return QSize(sum(self._min_w), (self.MIN_ROWS + 3) * self.ROW_H)

    def sizeHint(self) -> QSize:
        return QSize(sum(self._min_w) + 40, (self.model.rowCount() + 3) * self.ROW_H)

    def resizeEvent(self, event) -> None:
        self._layout_columns()
        if self.header_overlay is not None:
            self.header_overlay.setGeometry(0, 0, self.width(), self.ROW_H)
        self.model.set_row_count(max(self.MIN_ROWS, self.height() // self.ROW_H - 3))
        super().resizeEvent(event)

    def _grid_y(self) -> int:
        return 2 * self.ROW_H  # under the header and the strip of what is above

    def column_at(self, x: int) -> int | None:
        for c in range(7):
            if self._x[c] <= x < self._x[c + 1]:
                return c
        return None

    def _row_at(self, y: int) -> int | None:
        r = (y - self._grid_y()) // self.ROW_H if y >= self._grid_y() else -1
        return r if 0 <= r < self.model.rowCount() else None

    def price_at(self, y: int) -> float | None:
        """The price of the row at ``y``; None outside the rows."""
        r = self._row_at(y)
        return None if r is None else self.model.price_of_row(r)

    def row_rect(self, price: float, col: int = PRICE) -> QRect | None:
        """Where the cell of ``col`` at ``price`` is drawn; None if it is outside the window."""
        r = self.model.row_of(price)
        if r is None:
            return None
        return QRect(self._x[col], self._grid_y() + r * self.ROW_H,
                     self._x[col + 1] - self._x[col], self.ROW_H)

    def _tick_at(self, pos: QPoint) -> int | None:
        top = self.model.top_tick
        r = self._row_at(pos.y())
        if top is None or r is None or not self.rect().contains(pos):
            return None
        return top - r

    def _update_row(self, r: int, c0: int = 0, c1: int = 6) -> None:
        x0, x1 = self._x[c0], (self._x[c1 + 1] if c1 < 6 else self.width())
        self.update(x0, self._grid_y() + r * self.ROW_H, x1 - x0, self.ROW_H)

    def _cells_changed(self, rows: dict[int, list[int]]) -> None:
        xs, h, y0, w = self._x, self.ROW_H, self._grid_y(), self.width()
        if len(rows) == self.model.rowCount():  # the whole window: one rectangle
            texts = self.model._text
            if texts and max(len(texts[0][PRICE]), len(texts[-1][PRICE])) > self._price_chars:
                self._measure()  # prices of more digits than the column was made for
                self.updateGeometry()
                self.update()
            cols = rows[0]
            x1 = xs[max(cols) + 1] if max(cols) < 6 else w
            self.update(xs[min(cols)], y0, x1 - xs[min(cols)], len(rows) * h)
            return
        update = self.update
        for r, cols in rows.items():
            c0, c1 = min(cols), max(cols)
            x1 = xs[c1 + 1] if c1 < 6 else w
            update(xs[c0], y0 + r * h, x1 - xs[c0], h)

    def _edges_changed(self) -> None:
        h = self.ROW_H
        self.update(0, h, self.width(), h)
        self.update(0, self._grid_y() + self.model.rowCount() * h, self.width(), h)

    # -- permissions ---------------------------------------------------------------------------
    def trade_refusal(self) -> str:
        """Why a click may not send an order now; "" when it may."""
        if not self.can_trade:
            return self.why_trade or "orders are not allowed"
        if self.model.stale:
            why = f": {self.stale_why}" if self.stale_why else ""
            return f"market data is stale{why}: no orders from a stale ladder"
        return ""

    def cancel_refusal(self) -> str:
        return "" if self.can_cancel else (self.why_cancel or "cancels are not allowed")

    def move_refusal(self) -> str:
        return self.cancel_refusal() or self.trade_refusal()

    def tooltip_at(self, pos: QPoint) -> str:
        """The tooltip over ``pos``: why a click there would do nothing; "" otherwise."""
        tick, col = self._tick_at(pos), self.column_at(pos.x())
        if tick is None or col not in _SIDE_OF_COL:
            return ""
        side = _SIDE_OF_COL[col]
        if col in _WORK_COL and self.model._work[side].get(tick):
            why = self.cancel_refusal()
            return f"cannot cancel or move: {why}" if why else ""
        why = self.trade_refusal()
        return f"cannot send orders: {why}" if why else ""

    def event(self, event) -> bool:
        if event.type() == QEvent.ToolTip:
            text = self.tooltip_at(event.pos())
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    # -- mouse and keys ------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        pos = event.position().toPoint()
        if event.button() == Qt.MiddleButton:
            self.model.recentre()
            return
        if event.button() != Qt.LeftButton:
            return
        tick, col = self._tick_at(pos), self.column_at(pos.x())
        if tick is None:
            if self.model.top_tick is not None and pos.y() >= self.ROW_H:
                self.model.page(1 if pos.y() < self._grid_y() else -1)  # a strip: page that way
            return
        if col not in _SIDE_OF_COL:
            return  # price, LTQ, volume: nothing
        side = _SIDE_OF_COL[col]
        if col in _WORK_COL and self.model._work[side].get(tick):
            self._press = (col, side, tick, pos)  # a click cancels, a drag moves: see release
            self._dragging, self._drag_to = False, None
            return
        if not self.trade_refusal():
            self.order_clicked.emit(_SIDE_NAME[side], tick)

    def mouseMoveEvent(self, event) -> None:
        pos = event.position().toPoint()
        r, c = self._row_at(pos.y()), self.column_at(pos.x())
        hover = (r, c) if r is not None and c is not None else None
        if hover != self._hover:
            for h in (self._hover, hover):
                if h is not None:
                    self._update_row(h[0], h[1], h[1])
            self._hover = hover
        if self._press is None or self.move_refusal():
            return
        col, _side, tick, start = self._press
        if not self._dragging:
            far = (pos - start).manhattanLength() >= QApplication.startDragDistance()
            if not far and self._tick_at(pos) == tick:
                return
            self._dragging = True
            self.setCursor(Qt.ClosedHandCursor)
        to = self._tick_at(pos)
        if to != self._drag_to:
            top = self.model.top_tick
            for t in (self._drag_to, to):
                if t is not None and top is not None:
                    self._update_row(top - t, col, col)
            self._drag_to = to

    def mouseReleaseEvent(self, event) -> None:
        if event.button() != Qt.LeftButton or self._press is None:
            return
        col, side, tick, _start = self._press
        dragging, to = self._dragging, self._tick_at(event.position().toPoint())
        self._press, self._drag_to, self._dragging = None, None, False
        self.unsetCursor()
        top = self.model.top_tick
        if top is not None:
            self.update()
        if not dragging:
            if not self.cancel_refusal():
                self.cancel_clicked.emit(_SIDE_NAME[side], tick)
        elif to is not None and to != tick and not self.move_refusal():
            self.move_dropped.emit(_SIDE_NAME[side], tick, to)

    def enterEvent(self, event) -> None:
        self.model.held = True  # no automatic re-centre under the mouse
        super().enterEvent(event)

    def leaveEvent(self, event) -> None:
        if self._hover is not None:
            self._update_row(*self._hover, self._hover[1])
            self._hover = None
        self.model.held = False
        if self.model.auto_recentre and self.model._off_window():
            self.model.recentre()
        super().leaveEvent(event)

    def wheelEvent(self, event) -> None:
        self._wheel += event.angleDelta().y()
        notches = int(self._wheel / 120)
        if notches:
            self._wheel -= notches * 120
            self.model.scroll(notches * self.WHEEL_ROWS)
        event.accept()

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key == Qt.Key_Home:
            self.model.recentre()
        elif key == Qt.Key_PageUp:
            self.model.page(1)
        elif key == Qt.Key_PageDown:
            self.model.page(-1)
        elif key == Qt.Key_Up:
            self.model.scroll(1)
        elif key == Qt.Key_Down:
            self.model.scroll(-1)
        elif key == Qt.Key_Escape and self._press is not None:
            self._press, self._drag_to, self._dragging = None, None, False  # drop nothing
            self.unsetCursor()
            self.update()
        else:
            super().keyPressEvent(event)

    # -- painting ------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        m = self.model
        h, xs, w = self.ROW_H, self._x, self.width()
        clip = event.rect()
        p = QPainter(self)
        p.fillRect(clip, _BASE)
        n, gy = m.rowCount(), self._grid_y()
        if clip.top() < h:
            p.fillRect(0, 0, w, h, _HEADER_BG)
            p.setPen(_HEADER_FG)
            p.setFont(self._bold)
            for c, text in enumerate(COLUMNS):
                p.drawText(QRect(xs[c], 0, xs[c + 1] - xs[c], h), CENTRE, text)
        up, down = m.edge_texts()
        for y, texts in ((h, up), (gy + n * h, down)):
            if clip.top() < y + h and clip.bottom() >= y:
                self._paint_strip(p, y, texts)
        if m.top_tick is not None:
            # the rows under the region's rectangles, not under its bounding box: two cells
            # changed far apart must not repaint every row between them
            # and of each row only the cells under them (a changed size repaints one cell:
            # painting its row's seven cost three quarters of the desk's ladder time)
            rows: dict[int, int] = {}
            for rect in event.region():
                left, right = rect.left(), rect.right()
                mask = 0
                for c in range(7):
                    if xs[c] <= right and xs[c + 1] > left:
                        mask |= 1 << c
                for r in range(max(0, (rect.top() - gy) // h),
                               min(n - 1, (rect.bottom() - gy) // h) + 1):
                    rows[r] = rows.get(r, 0) | mask
            rules = []
            for r in sorted(rows):
                self._paint_row(p, r, gy + r * h, rows[r])
                mask = rows[r]  # each row's rule, under the cells painted, in one call
                first, last = (mask & -mask).bit_length() - 1, mask.bit_length() - 1
                y = gy + r * h + h - 1
                rules.append(QLine(xs[first], y, xs[last + 1] if last < 6 else w, y))
            p.setPen(_ROW_RULE)
            p.drawLines(rules)
        # column rules, over the whole height of what was repainted
        p.setPen(QPen(_RULE, 1))
        for x in xs[1:7]:
            if clip.left() <= x <= clip.right() + 1:
                p.drawLine(x, clip.top(), x, clip.bottom())
        p.end()

    def _paint_strip(self, p: QPainter, y: int, texts) -> None:
        h, xs = self.ROW_H, self._x
        p.fillRect(0, y, self.width(), h, _EDGE_BG)
        p.setFont(self._bold)
        stale = self.model.stale
        colours = {WORK_BUY: _BID, PRICE: _LTQ_FG, WORK_SELL: _ASK}
        for c, text in enumerate(texts):
            if text:
                p.setPen(_STALE if stale else colours.get(c, _HEADER_FG))
                p.drawText(QRect(xs[c] + 4, y, xs[c + 1] - xs[c] - 8, h), CENTRE | _NO_CLIP, text)

    def _paint_row(self, p: QPainter, r: int, y: int, mask: int = 0x7F) -> None:
        """Row ``r``'s cells in ``mask`` (bit c: column c)."""
        m, h, xs = self.model, self.ROW_H, self._x
        t = m.top_tick - r
        texts = m._text[r]
        stale, flash = m.stale, m._flash
        cell = self._rects.get(y)
        if cell is None:
            cell = self._rects[y] = [QRect(xs[c], y, xs[c + 1] - xs[c], h) for c in range(7)]
        # backgrounds
        if mask & _PRICE_BIT:
            p.fillRect(cell[PRICE], _PRICE_BG)
            if m._ltq is not None and m._ltq[0] == t:
                p.fillRect(cell[PRICE], _LAST_BG)
        if not stale:
            if mask & _BID_BIT:
                p.fillRect(cell[BID], _BID_FLASH if (t, BID) in flash else _BID_BG)
            if mask & _ASK_BIT:
                p.fillRect(cell[ASK], _ASK_FLASH if (t, ASK) in flash else _ASK_BG)
        vol = m._vol.get(t) if mask & _VOL_BIT else None
        if vol and m._vol_max > 0:
            bar = cell[VOLUME].adjusted(1, 3, -1, -3)
            bar.setWidth(max(1, int(bar.width() * vol / m._vol_max)))
            p.fillRect(bar, _STALE_CHIP if stale else _VOL_BAR)
        for c, chip in ((WORK_BUY, _BUY_CHIP), (WORK_SELL, _SELL_CHIP)):
            if texts[c] and mask >> c & 1:
                p.fillRect(cell[c].adjusted(2, 2, -2, -2), _STALE_CHIP if stale else chip)
        # texts
        fm = self._fm
        inside = t == m._bb or t == m._ba
        for c in range(7):
            text = texts[c]
            if not text or not mask >> c & 1:
                continue
            p.setFont(self._bold if c in _WORK_COL or (inside and BID <= c <= ASK)
                      else self._font)
            if stale:
                p.setPen(_STALE)
            else:
                p.setPen((_WORK_FG, _BID, _PRICE_FG, _ASK, _WORK_FG, _LTQ_FG, _VOL_FG)[c])
            avail = self._avail[c]
            if c != PRICE and (len(text) * self._char_w > avail
                               or c in _WORK_COL and fm.horizontalAdvance(text) > avail):
                text = self._fit(text, avail)
            p.drawText(cell[c].adjusted(_PAD // 2, 0, -_PAD // 2, 0), _ALIGNS[c] | _NO_CLIP, text)
        # the cell under the mouse, and where a drag would land
        if self._press is not None and self._dragging:
            col, side, tick, _start = self._press
            if t == tick:
                p.setPen(QPen(_DROP, 1, Qt.DashLine))
                p.drawRect(cell[col].adjusted(1, 1, -2, -2))
            if t == self._drag_to and t != tick:  # where the orders would go
                orders = m._work[side].get(tick, ())
                p.setPen(QPen(_DROP, 2))
                p.drawRect(cell[col].adjusted(1, 1, -2, -2))
                p.setFont(self._bold)
                p.setPen(_DROP)
                p.drawText(cell[col].adjusted(_PAD // 2, 0, -_PAD // 2, 0), RIGHT | _NO_CLIP,
                           f"→ {_work_text(len(orders), sum(o.leaves for o in orders))}")
        elif (self._hover is not None and self._hover[0] == r and self._hover[1] in _SIDE_OF_COL
              and not self.tooltip_at(cell[self._hover[1]].center())):
            # the cell a click would act on, and only when it would
            p.setPen(QPen(_HOVER, 1))
            p.drawRect(cell[self._hover[1]].adjusted(0, 0, -1, -1))


class TitleLine(QWidget):
    """A one-line text that repaints itself and nothing else when it changes. A QLabel's
    setText re-lays out its parent and repaints through the style sheet: for four ladders
    at screen rate that was most of the desk's time in Qt."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self._text = text
        self._warning = False
        self._bold = QFont(self.font())
        self._bold.setBold(True)
        self._bold.setPointSizeF(12)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.setFixedHeight(QFontMetrics(self._bold).height() + 8)
        self.setAttribute(Qt.WA_OpaquePaintEvent)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.update()

    def set_warning(self, on: bool) -> None:
        """Amber text: what the title says is wrong with the book (crossed, locked)."""
        if on != self._warning:
            self._warning = on
            self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), _BASE)
        p.setFont(self._bold)
        p.setPen(_WARN if self._warning else _TITLE_FG)
        p.drawText(self.rect().adjusted(6, 0, -6, 0), int(Qt.AlignLeft | Qt.AlignVCenter),
                   self._text)
        p.end()


class LadderWidget(QWidget):
    """Title (symbol, spread, last trade), STALE banner, the ladder and the order ticket.

    Clicks become requests the desk carries out (it knows the account and the engine):
    ``order_requested(side, price, qty, venue)`` with ``side`` "buy"/"sell", ``venue`` the
    ticket's venue ("*": smart order router); ``cancel_requested(cl_ord_id)`` and
    ``move_requested(cl_ord_id, new_price)`` once per order at the clicked level and side.
    """

    order_requested = Signal(str, float, int, str)
    cancel_requested = Signal(str)
    move_requested = Signal(str, float)

    QTY_PRESETS = (1, 5, 10, 50, 100)

    def __init__(self, depth: int = 10, parent=None) -> None:
        super().__init__(parent)
        self.model = LadderModel(depth, self)
        # one line, clipped when narrow: a title that wrapped would move every row under
        # the mouse
        self.title = TitleLine("—")
        self.title.setObjectName("ladderTitle")
        self.view = LadderView(self.model)
        # the banner lies over the column headers rather than above the rows, for the same
        # reason: going stale or live must not move a price away from the mouse
        self.banner = QLabel("STALE", self.view)
        self.banner.setObjectName("staleBanner")
        self.banner.setAlignment(Qt.AlignCenter)
        self.banner.setStyleSheet("padding: 0px; border-radius: 0px;")
        self.view.header_overlay = self.banner
        self.banner.setGeometry(0, 0, self.view.width(), self.view.ROW_H)
        self.setFocusProxy(self.view)

        # the ticket: what a click sends
        self.qty = QSpinBox()
        self.qty.setObjectName("ladderQty")
        self.qty.setRange(1, 10_000_000)
        self.qty.setValue(1)
        self.qty.setGroupSeparatorShown(True)
        self.qty.setAccelerated(True)
        self.qty.setMinimumWidth(72)
        self.venue = QComboBox()
        self.venue.setObjectName("ladderVenue")
        self.venue.addItem(SMART)
        self.venue.setItemData(0, "smart order router: the engine chooses the venue",
                               Qt.ToolTipRole)
        self.venue.setMinimumWidth(64)
        self.ticket_note = QLabel("")
        self.ticket_note.setObjectName("ladderTicketNote")
        self.ticket_note.setStyleSheet("color: #f0c674; font-weight: bold;")
        ticket = QHBoxLayout()
        ticket.setContentsMargins(0, 2, 0, 0)
        ticket.setSpacing(4)
        ticket.addWidget(QLabel("Qty"))
        ticket.addWidget(self.qty)
        self.presets = []
        for q in self.QTY_PRESETS:
            b = QToolButton()
            b.setText(f"{q:,}")
            b.setToolTip(f"ticket quantity {q:,}")
            b.setFocusPolicy(Qt.NoFocus)
            b.clicked.connect(lambda _=False, q=q: self.qty.setValue(q))
            self.presets.append(b)
            ticket.addWidget(b)
        ticket.addSpacing(8)
        ticket.addWidget(QLabel("Venue"))
        ticket.addWidget(self.venue)
        ticket.addStretch(1)
        ticket.addWidget(self.ticket_note)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(2)
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)
        lay.addLayout(ticket)
        self._symbol = ""
        self._title_key = None
        self._warning = ""
        self._why_trade = ""
        self.view.order_clicked.connect(self._order_clicked)
        self.view.cancel_clicked.connect(self._cancel_clicked)
        self.view.move_dropped.connect(self._move_dropped)
        self._show_permissions()
        self.set_stale(True, "no engine")

    # -- data in -------------------------------------------------------------------------------
    def set_symbol(self, symbol: str, decimals: int, tick: float | None = None) -> None:
        """Show ``symbol``: prices on a grid of ``tick`` (default 10**-decimals) with
        ``decimals`` decimals. Forgets the book, volume and orders; the next book centres."""
        self._symbol = symbol
        self._title_key = None
        self.model.set_instrument(decimals, tick)
        self.view.instrument_changed()
        self.title.setText(symbol)

    def set_book(self, bid_px, bid_sz, ask_px, ask_sz, last_px: float = 0.0, last_sz: float = 0.0,
                 warning: str = "") -> None:
        """10 levels a side, best first (0 price: no level). ``warning``: what is wrong with
        this book ("CROSSED", "LOCKED"), shown in amber."""
        self.model.set_book(bid_px, bid_sz, ask_px, ask_sz)
        b, a = self.model.best()
        key = (b, a, last_px, last_sz, warning)
        if key == self._title_key:
            return
        self._title_key = key
        d = self.model.decimals
        text = f"{self._symbol}   {b:,.{d}f} / {a:,.{d}f}"
        if b and a:
            text += f"   spread {a - b:,.{d}f}"
        if warning:
            text += f"   {warning}"
        if last_px:
            text += f"   last {last_sz:,.0f} @ {last_px:,.{d}f}"
        if text != self.title.text():
            self.title.setText(text)
        if warning != self._warning:
            self._warning = warning
            self.title.set_warning(bool(warning))

    def add_trades(self, prices, sizes) -> None:
        """A batch of trades, oldest first: LTQ and volume at each price."""
        self.model.add_trades(prices, sizes)

    def reset_volume(self) -> None:
        self.model.reset_volume()

    def set_orders(self, orders: Iterable[WorkingOrder]) -> None:
        """All our working orders in this symbol."""
        self.model.set_orders(orders)

    def set_stale(self, stale: bool, why: str = "") -> None:
        self.model.set_stale(stale)
        self.view.stale_why = why
        self.banner.setVisible(stale)
        self.banner.setText(f"STALE — {why}" if why else "STALE")
        self.banner.setToolTip(self.banner.text())
        self._show_permissions()

    def recentre(self) -> None:
        """Centre the rows on the inside market."""
        self.model.recentre()

    # -- the ticket and permissions ------------------------------------------------------------
    def set_venues(self, names: Sequence[str]) -> None:
        """The venues a ticket may name, after "*" (smart order router), which is always first."""
        want = [SMART] + [n for n in dict.fromkeys(names) if n != SMART]
        have = [self.venue.itemText(i) for i in range(self.venue.count())]
        if want == have:
            return
        keep = self.venue.currentText()
        self.venue.blockSignals(True)
        self.venue.clear()
        self.venue.addItems(want)
        self.venue.setItemData(0, "smart order router: the engine chooses the venue",
                               Qt.ToolTipRole)
        self.venue.setCurrentIndex(max(0, self.venue.findText(keep)))
        self.venue.blockSignals(False)

    def ticket(self) -> tuple[int, str]:
        """(quantity, venue) a click sends now."""
        return self.qty.value(), self.venue.currentText()

    def focus_ticket(self) -> None:
        """Put the keyboard in the quantity box, its text selected to be typed over."""
        self.qty.setFocus(Qt.ShortcutFocusReason)
        self.qty.selectAll()

    def set_can_trade(self, ok: bool, why: str = "") -> None:
        """Whether clicks may send (and move) orders; ``why`` not, shown over the cells."""
        self.view.can_trade, self.view.why_trade = bool(ok), why
        self._show_permissions()

    def set_can_cancel(self, ok: bool, why: str = "") -> None:
        self.view.can_cancel, self.view.why_cancel = bool(ok), why
        self._show_permissions()

    def _show_permissions(self) -> None:
        why = self.view.trade_refusal()
        if why == self._why_trade and self.qty.toolTip():
            return
        self._why_trade = why
        tip = f"cannot send orders: {why}" if why else "quantity of each order a click sends"
        self.qty.setToolTip(tip)
        self.venue.setToolTip(f"cannot send orders: {why}" if why else
                              "venue of each order a click sends; * lets the engine choose")
        self.ticket_note.setText("" if not why else
                                 "VIEW ONLY" if not self.view.can_trade else "NO ORDERS")
        self.ticket_note.setToolTip(tip if why else "")

    # -- clicks to requests --------------------------------------------------------------------
    def _order_clicked(self, side: str, tick: int) -> None:
        qty, venue = self.ticket()
        self.order_requested.emit(side, self.model.price_of(tick), qty, venue)

    def _cancel_clicked(self, side: str, tick: int) -> None:
        for o in self.model._work[_SIDE_NAME.index(side)].get(tick, ()):
            self.cancel_requested.emit(o.cl_ord_id)

    def _move_dropped(self, side: str, tick: int, to: int) -> None:
        price = self.model.price_of(to)
        for o in self.model._work[_SIDE_NAME.index(side)].get(tick, ()):
            self.move_requested.emit(o.cl_ord_id, price)
