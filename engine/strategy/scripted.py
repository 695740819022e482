"""Scripted intents: orders at given times from a CSV file, as a strategy would send them.

Until strategies exist, a backtest's or a paper session's orders come from a file::

    time,symbol,side,qty,price,venue,tif
    1.5,AAPL,buy,100,189.50,SIMA,day        # 1.5 s after the run starts
    14:30:00.250,MSFT,sell,50,,*,ioc         # at 14:30:00.250 UTC on the run's day; market
    2026-11-23T14:31:00Z,AAPL,sell,100,190,SIMA

``time`` is seconds after the start of the run (a plain number), a time of day (UTC, on the
day the run starts) or an ISO 8601 UTC timestamp. ``price`` empty or ``MKT`` is a market order;
``venue`` defaults to ``*`` (the smart order router), ``tif`` to ``day``. Rows are sent in time
order (rows with the same time in file order). A file with any bad row is refused as a whole,
each bad row named with its number and the reason: a script half-run is worse than none.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

from engine.core.intents import BUY, SELL, OrderIntent
from engine.strategy.api import NEVER, Strategy, StrategyContext

__all__ = ["IntentsError", "ScriptedIntent", "ScriptedIntents", "load_intents"]

_SIDES = {"buy": BUY, "b": BUY, "1": BUY, "sell": SELL, "s": SELL, "2": SELL}
_TIFS = ("day", "ioc", "fok")
_COLUMNS = ("time", "symbol", "side", "qty", "price", "venue", "tif")
_DAY_NS = 86_400_000_000_000


class IntentsError(ValueError):
    """An intents file cannot be used; the message names the file, rows and reasons."""


@dataclass(frozen=True, slots=True)
class ScriptedIntent:
    row: int
    kind: str  #: "offset" (ns after the start), "clock" (ns after midnight UTC), "at" (UTC ns)
    t_ns: int
    intent: OrderIntent


def _parse_time(raw: str) -> tuple[str, int]:
    raw = raw.strip()
    if not raw:
        raise ValueError("time is empty")
    try:
        s = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(s) or s < 0:
            raise ValueError(f"time {raw!r} must be seconds >= 0")
        return "offset", round(s * 1e9)
    if "T" in raw or "-" in raw:
        try:
            t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"time {raw!r} is not an ISO 8601 timestamp") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        d = t - epoch
        return "at", (d.days * 86_400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000
    try:
        t = dt.time.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"time {raw!r} is not seconds, HH:MM:SS[.ffffff] or ISO 8601") from None
    return "clock", ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000_000 + t.microsecond * 1000


def load_intents(path: str | Path, symbols: set[str] | None = None) -> list[ScriptedIntent]:
    """Read and check an intents file; raise ``IntentsError`` naming every bad row."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IntentsError(f"{p}: no such intents file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise IntentsError(f"{p}: cannot read: {e}") from None
    rows = list(csv.reader(line for line in text.splitlines() if line.strip()
                           and not line.lstrip().startswith("#")))
    if not rows:
        raise IntentsError(f"{p}: empty (the first line names the columns: {','.join(_COLUMNS)})")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in _COLUMNS[:4] if c not in header]
    unknown = [h for h in header if h not in _COLUMNS]
    if missing or unknown:
        raise IntentsError(f"{p}: line 1 must name the columns {','.join(_COLUMNS)} (price, "
                           f"venue and tif optional); "
                           + (f"missing {', '.join(missing)}" if missing else "")
                           + ("; " if missing and unknown else "")
                           + (f"unknown {', '.join(unknown)}" if unknown else ""))
    col = {h: k for k, h in enumerate(header)}
    out: list[ScriptedIntent] = []
    bad: list[str] = []
    for n, row in enumerate(rows[1:], start=2):
        def get(name: str, default: str = "") -> str:
            k = col.get(name)
            return row[k].strip() if k is not None and k < len(row) else default
        try:
            if len(row) != len(header):
                raise ValueError(f"has {len(row)} fields, the header {len(header)}")
            kind, t = _parse_time(get("time"))
            symbol = get("symbol")
            if not symbol:
                raise ValueError("symbol is empty")
            if symbols is not None and symbol not in symbols:
                raise ValueError(f"symbol {symbol!r} is not one of the profile's instruments")
            side = _SIDES.get(get("side").lower())
            if side is None:
                raise ValueError(f"side must be buy or sell, was {get('side')!r}")
            try:
                qty = int(get("qty"))
            except ValueError:
                raise ValueError(f"qty must be a whole number, was {get('qty')!r}") from None
            if not 0 < qty < 2**31:
                raise ValueError(f"qty must be 1..{2**31 - 1}, was {qty}")
            raw_px = get("price")
            price = None
            if raw_px and raw_px.upper() != "MKT":
                try:
                    price = float(raw_px)
                except ValueError:
                    raise ValueError(f"price must be a number or MKT, was {raw_px!r}") from None
                if not math.isfinite(price) or price <= 0:
                    raise ValueError(f"price must be positive, was {raw_px!r}")
            tif = get("tif", "day").lower() or "day"
            if tif not in _TIFS:
                raise ValueError(f"tif must be day, ioc or fok, was {tif!r}")
            venue = get("venue", "*") or "*"
        except ValueError as e:
            bad.append(f"row {n}: {e}")
            continue
        out.append(ScriptedIntent(n, kind, t, OrderIntent(
            symbol=symbol, side=side, qty=qty, price=price, venue=venue, tif=tif,
            source="script")))
    if bad:
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        raise IntentsError(f"{p}: {len(bad)} bad rows, nothing run: " + "; ".join(bad[:20]) + more)
    return out


class ScriptedIntents(Strategy):
    """Sends each scripted intent at its time; refusals are counted and told to the desks."""

    name = "script"

    def __init__(self, intents: list[ScriptedIntent], origin_ns: int | None = None) -> None:
        """``origin_ns``: when "the start of the run" is (the first recorded record of a
        backtest's day); default: when the strategy starts."""
        self.script = intents
        self.origin_ns = origin_ns
        self.queue: list[tuple[int, int, OrderIntent]] = []
        self.sent = 0
        self.refused: list[tuple[int, str]] = []  #: (row, why)
        self._next = NEVER

    def on_start(self, ctx: StrategyContext, now_ns: int) -> None:
        origin = now_ns if self.origin_ns is None else self.origin_ns
        midnight = origin - origin % _DAY_NS
        due = []
        for s in self.script:
            t = (origin + s.t_ns if s.kind == "offset" else
                 midnight + s.t_ns if s.kind == "clock" else s.t_ns)
            due.append((max(t, now_ns), s.row, s.intent))
        due.sort(key=lambda x: (x[0], x[1]))
        self.queue = due[::-1]  # pop from the end
        self._next = self.queue[-1][0] if self.queue else NEVER

    def next_timer_ns(self) -> int:
        return self._next

    def on_timer(self, ctx: StrategyContext, now_ns: int) -> None:
        q = self.queue
        while q and q[-1][0] <= now_ns:
            _t, row, intent = q.pop()
            r = ctx.submit(intent, now_ns)
            if isinstance(r, str):
                self.refused.append((row, r))
                ctx.notify(30, f"row {row} {intent.symbol} refused: {r}")
            else:
                self.sent += 1
        self._next = q[-1][0] if q else NEVER
