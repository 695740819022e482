"""The risk limits a profile sets (``[limits]``), read and checked at load.

Schema::

    [limits]                       # the desk's limits: defaults for every order and book
    max_order_qty = 10000          # fat finger: one order's quantity ...
    max_order_notional = 1e7       # ... and notional (quantity × limit price, or the reference
                                   #   price for a market order)
    price_collar_bps = 500         # a limit price this far from the reference price is refused
    max_position = 100000          # net position per instrument, working orders included
    max_gross_position = 200000    # long + short per instrument, working orders included
    max_exposure = 5e7             # Σ |position| × mark + working notional, the desk
    daily_loss_limit = 1e6         # realized + unrealized P&L (fees included) may not fall below
                                   #   minus this: orders refused, then cancel and flatten
    max_orders_per_s = 100         # new orders per second: per venue and per strategy
    max_messages_per_s = 500       # orders + cancels per second per venue (cancels still pass)
    max_open_orders = 1000         # working orders per strategy (manual: per trader)
    max_fills = 0                  # repeated-execution throttle: a strategy with this many
    fill_window_ms = 1000          #   fills in the window pauses for fill_pause_ms (0: off)
    fill_pause_ms = 5000
    runaway_orders_per_s = 1000    # a source asking faster than this is HALTED (its scope)
    # -- desk-wide only --
    reference_max_age_ms = 5000    # a last-trade reference older than this is not fresh
    self_match = "reject"          # reject | cancel_resting: an order that would trade against
                                   #   our own resting order; "venue": left to the venues' own
                                   #   self-trade prevention (or a test trading with itself)
    duplicate_window_ms = 50       # the same order (source, instrument, side, qty, price,
                                   #   venue) again within this window is refused (0: off)
    restricted = ["XYZ"]           # instruments nobody may trade
    stale_data = "reducing"        # what stale market data trips for its instrument:
                                   #   reducing | halted | none
    venue_down = "reducing"        # what a lost venue session trips for that venue
    cooling_off_s = 60             # an automatic trip may not be re-armed for this long
    warn_fraction = 0.8            # a limit this used raises an alert (the soft limit)
    flatten_child_qty = 100        # de-risking: child orders at most this large ...
    flatten_interval_ms = 500      # ... one per instrument per interval

    [limits.instrument.ESZ6]       # per instrument: order and position keys
    max_order_qty = 50
    restricted = true
    [limits.strategy.pairs]        # per strategy: its own orders, positions and P&L
    daily_loss_limit = 20000
    [limits.account.main]          # per account: its orders, positions and P&L
    max_exposure = 1e6
    [limits.venue.SIMA]            # per venue: order keys and the rate throttles
    max_orders_per_s = 50

How they combine: an order-level key (quantity, notional, collar) is the strictest of the
instrument's value (or the desk's default), and the values the order's strategy, account and
venue set. A book's key (position, exposure, daily loss) applies to that book's own figures:
the desk's (its instrument's value or the default) and, where set, the strategy's and the
account's. Rates: per venue (the venue's value or the default) and per strategy (likewise).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

__all__ = [
    "LIMIT_KEYS",
    "SCOPED_KEYS",
    "Limits",
    "LimitsConfig",
    "parse_limits",
    "TRIP_CHOICES",
]

#: key -> (type, lowest, highest, default, description)
LIMIT_KEYS: dict[str, tuple[type, float, float, object, str]] = {
    "max_order_qty": (int, 1, 2**31 - 1, 10_000, "one order's quantity"),
    "max_order_notional": (float, 0.01, 1e15, 1e7, "one order's notional"),
    "price_collar_bps": (float, 0.01, 100_000.0, 500.0, "limit price distance from the reference"),
    "max_position": (int, 0, 2**62, 100_000, "net position per instrument"),
    "max_gross_position": (int, 0, 2**62, 200_000, "long + short per instrument"),
    "max_exposure": (float, 0.0, 1e18, 5e7, "notional exposure"),
    "daily_loss_limit": (float, 0.0, 1e18, 1e6, "the day's loss"),
    "max_orders_per_s": (int, 1, 1_000_000, 100, "new orders per second"),
    "max_messages_per_s": (int, 1, 1_000_000, 500, "messages per second"),
    "max_open_orders": (int, 1, 10_000_000, 1000, "working orders"),
    "max_fills": (int, 0, 1_000_000, 0, "fills in the window (0: off)"),
    "fill_window_ms": (int, 1, 3_600_000, 1000, "the fill throttle's window"),
    "fill_pause_ms": (int, 0, 86_400_000, 5000, "the fill throttle's pause"),
    "runaway_orders_per_s": (int, 1, 10_000_000, 1000, "order attempts per second"),
}

#: Which keys each kind of scope may set.
_ORDER_KEYS = ("max_order_qty", "max_order_notional", "price_collar_bps")
SCOPED_KEYS: dict[str, tuple[str, ...]] = {
    "instrument": _ORDER_KEYS + ("max_position", "max_gross_position"),
    "strategy": tuple(LIMIT_KEYS),
    "account": _ORDER_KEYS + ("max_position", "max_gross_position", "max_exposure",
                              "daily_loss_limit"),
    "venue": _ORDER_KEYS + ("max_orders_per_s", "max_messages_per_s"),
}
TRIP_CHOICES = ("reducing", "halted", "none")
SELF_MATCH = ("reject", "cancel_resting", "venue")
_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-")


@dataclass(frozen=True, slots=True)
class Limits:
    """One scope's limit values (every key set: the desk's defaults filled in)."""

    max_order_qty: int = 10_000
    max_order_notional: float = 1e7
    price_collar_bps: float = 500.0
    max_position: int = 100_000
    max_gross_position: int = 200_000
    max_exposure: float = 5e7
    daily_loss_limit: float = 1e6
    max_orders_per_s: int = 100
    max_messages_per_s: int = 500
    max_open_orders: int = 1000
    max_fills: int = 0
    fill_window_ms: int = 1000
    fill_pause_ms: int = 5000
    runaway_orders_per_s: int = 1000


assert [f.name for f in fields(Limits)] == list(LIMIT_KEYS)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """The profile's ``[limits]``: the desk's values and each scope's overrides."""

    desk: Limits = field(default_factory=Limits)
    #: "instrument" / "strategy" / "account" / "venue" -> name -> {key: value} (only what the
    #: profile sets for that scope)
    scoped: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    restricted: frozenset[str] = frozenset()
    reference_max_age_ms: int = 5000
    self_match: str = "reject"
    duplicate_window_ms: int = 50
    stale_data: str = "reducing"
    venue_down: str = "reducing"
    cooling_off_s: float = 60.0
    warn_fraction: float = 0.8
    flatten_child_qty: int = 100
    flatten_interval_ms: int = 500

    def overrides(self, kind: str, name: str) -> dict[str, float]:
        return self.scoped.get(kind, {}).get(name, {})

    def with_value(self, kind: str, name: str, key: str, value: float) -> LimitsConfig:
        """A copy with one limit changed (``kind`` "desk": the default)."""
        if kind == "desk":
            return replace(self, desk=replace(self.desk, **{key: value}))
        scoped = {k: {n: dict(v) for n, v in d.items()} for k, d in self.scoped.items()}
        scoped.setdefault(kind, {}).setdefault(name, {})[key] = value
        return replace(self, scoped=scoped)


def check_value(key: str, value) -> float | int:
    """The value for ``key`` if it is acceptable; ``ValueError`` saying why not."""
    spec = LIMIT_KEYS.get(key)
    if spec is None:
        raise ValueError(f"unknown limit {key!r} (known: {', '.join(LIMIT_KEYS)})")
    typ, lo, hi, _default, _what = spec
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, was {value!r}")
    if typ is int:
        if value != int(value) or isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{key} must be a whole number, was {value!r}")
        value = int(value)
    else:
        value = float(value)
    if value != value or not lo <= value <= hi:
        raise ValueError(f"{key} must be between {lo:g} and {hi:g}, was {value!r}")
    return value


def parse_limits(reader, symbols: set[str], venues: set[str]) -> LimitsConfig:
    """Read ``[limits]`` with the profile's table reader (``engine.core.profile._Reader``):
    every error names the file, the key and the reason."""
    desk = {}
    for key in LIMIT_KEYS:
        if key in reader.table:
            desk[key] = _value(reader, key)
    scoped: dict[str, dict[str, dict[str, float]]] = {}
    for kind, allowed in SCOPED_KEYS.items():
        sub = reader.get(kind, dict, {})
        for name, table in sub.items():
            where = f"{kind}.{name}"
            if not isinstance(table, dict):
                reader.fail(where, f"must be a table of limits, was {table!r}")
            if not name or len(name) > 16 or set(name) - _NAME_OK:
                reader.fail(where, "names must be 1-16 letters, digits, '_', '.', ':', '/' or '-'")
            if kind == "instrument" and name not in symbols:
                reader.fail(where, f"{name!r} is not one of the profile's [[instruments]]")
            if kind == "venue" and name not in venues:
                reader.fail(where, f"{name!r} is not one of the profile's [[venues]]")
            values = {}
            for key, v in table.items():
                if kind == "instrument" and key == "restricted":
                    if not isinstance(v, bool):
                        reader.fail(f"{where}.restricted", f"must be true/false, was {v!r}")
                    continue
                if key not in allowed:
                    why = ("unknown limit" if key not in LIMIT_KEYS
                           else f"is not a per-{kind} limit (those are: {', '.join(allowed)})")
                    reader.fail(f"{where}.{key}", why)
                try:
                    values[key] = check_value(key, v)
                except ValueError as e:
                    reader.fail(f"{where}.{key}", str(e))
            scoped.setdefault(kind, {})[name] = values
    restricted = reader.get("restricted", list, [])
    for k, s in enumerate(restricted):
        if not isinstance(s, str):
            reader.fail(f"restricted[{k}]", f"must be a symbol, was {s!r}")
    restricted_set = set(restricted) | {
        name for name, t in reader.table.get("instrument", {}).items()
        if isinstance(t, dict) and t.get("restricted") is True}

    def choice(key: str, default: str, options: tuple[str, ...]) -> str:
        v = reader.get(key, str, default)
        if v not in options:
            reader.fail(key, f"must be one of {', '.join(options)}, was {v!r}")
        return v

    cfg = LimitsConfig(
        desk=Limits(**desk),
        scoped=scoped,
        restricted=frozenset(restricted_set),
        reference_max_age_ms=reader.integer("reference_max_age_ms", 5000, lo=1, hi=86_400_000),
        self_match=choice("self_match", "reject", SELF_MATCH),
        duplicate_window_ms=reader.integer("duplicate_window_ms", 50, lo=0, hi=3_600_000),
        stale_data=choice("stale_data", "reducing", TRIP_CHOICES),
        venue_down=choice("venue_down", "reducing", TRIP_CHOICES),
        cooling_off_s=float(reader.number("cooling_off_s", 60.0, lo=0.0, hi=86_400.0)),
        warn_fraction=float(reader.number("warn_fraction", 0.8, lo=0.01, hi=1.0)),
        flatten_child_qty=reader.integer("flatten_child_qty", 100, lo=1, hi=2**31 - 1),
        flatten_interval_ms=reader.integer("flatten_interval_ms", 500, lo=1, hi=3_600_000),
    )
    reader.done()
    return cfg


def _value(reader, key: str):
    reader.used.add(key)
    try:
        return check_value(key, reader.table[key])
    except ValueError as e:
        reader.fail(key, str(e))
