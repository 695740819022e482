"""Profiles: one TOML file drives a process. Validated at load; errors name file, key, reason.

Schema (every later issue adds its own section here rather than a new format)::

    [engine]
    instance = "demo"        # shared memory helmdesk.<instance>; letters, digits, - and _
    cores = [1]              # CPUs to pin the engine to (default: the last CPU)
    idle = "hybrid"          # spin | hybrid | sleep
    spin_us = 200            # hybrid: how long to spin after the last activity
    max_sleep_us = 1000      # the longest the loop ever waits (command latency bound)
    publish_hz = 1000        # snapshot publication rate cap
    event_capacity = 16384   # event ring records (power of two)
    slice_us = 0             # N > 0: market data in whole N-µs slices, turns in time order
                             #   (a paper session a backtest replays exactly; adds ≤ N µs)

    [desk]
    name = "desk-1"          # workstation name carried in every command
    stale_ms = 300           # heartbeat age at which the desk shows STALE
    account = "main"         # the account orders are booked to unless they name one
    confirm_qty = 100        # the desk asks to confirm any order above this quantity

    [limits]                 # risk limits: see engine/core/limits.py for every key
    max_order_qty = 10000
    [limits.instrument.ESZ6] # per instrument, strategy, account and venue
    max_order_qty = 50

    [var]                    # value at risk, off the hot path: see engine/risk/var.py
    window = 250             # marks in the historical window
    interval_ms = 1000       # one mark per interval

    [feed]
    kind = "sim"             # sim: one simulated venue, SIM, quoting every instrument (a
                             #   preset of simvenues); simvenues: several simulated venues
                             #   quoting the instruments (each at its update_hz), with
                             #   cointegrated pairs; venues: the [[venues]]' own books over
                             #   FIX market data; replay: a recorded day
    seed = 42
    venues = ["SIMA", "SIMB"]  # simvenues: the simulated venues' names (1-8 characters)
    pairs = [["ESZ6", "NQZ6"]] # simvenues: cointegrated instrument pairs
    record = false           # write every normalized event to the tick store
    silence_ms = 2000        # a venue silent this long is stale (a FIX venue: at least 1.5 ×
                             #   its heartbeat, since its heartbeats count as traffic)
    day = "2026-11-23"       # replay: the day to play (UTC), from the tick store
    speed = 1.0              # replay: 2.0 plays twice as fast
    at = "10:30:00"          # replay: start at this time of the day (UTC), every record before
                             #   it applied first as fast as the engine can (default: the start)
    paused = false           # replay: start paused (a desk's REPLAY play starts it)
    ticks_dir = ""           # tick store root (default: <data dir>/ticks)

    [[instruments]]          # one table per instrument
    symbol = "ESZ6"
    tick = 0.25
    price = 5000.0           # starting reference price
    update_hz = 50           # simulated book updates per second

    [users]                  # OS user -> role; "*" is everybody else. Who a desk is comes
    alice = "trader"         #   from the kernel (SO_PEERCRED when it attaches to the engine's
    "*" = "viewer"           #   socket: engine/ipc/attach.py), never from the desk; an OS user
                             #   not listed, when there is no "*", cannot attach at all (not
                             #   even to watch): it is refused with its name and this file's
                             #   path. A uid with no passwd entry matches "*" only.

    [venue]                  # optional: makes the profile a simulated exchange's (helmdesk venue);
    name = "SIMA"            # the engine ignores it. Letters, digits, - and _ (file names use it)
    host = "127.0.0.1"       # loopback only: a simulator, not an exchange (no TLS)
    port = 9876              # 0: any free port (printed when listening)
    sender = "SIMA"          # our SenderCompID (default: name)
    counterparties = ["HELM"]  # initiator CompIDs allowed to log on (required, non-empty)
    drop_copy = ["HELMDC"]   # drop-copy CompIDs: each may log on as a session that receives a
                             #   copy of every ExecutionReport sent to any counterparty, with
                             #   Account(1) = that counterparty's CompID; it may send no
                             #   orders (BusinessMessageReject 6). Default: none (docs/fix.md)
    heartbeat_s = 30         # the sessions' default; each Logon's HeartBtInt (108) wins
    latency_us = 0           # each inbound application message is handled this much later
    background_hz = 0.0      # orders/s per instrument from other (simulated) participants
    seed = 1                 # seeds the background flow
    reference_seed = 7       # optional: the background mid follows a wall-clock reference
                             #   price; venues with the same one quote around the same price
    fee_bps = 0.0            # charged per fill: Commission(12), CommType(13)=3 absolute
    reset_on_logon = false   # the acceptor sessions (docs/fix.md): sequences back to 1 on each
    reset_on_logout = false  #   Logon / after a Logout exchange / after any disconnect
    reset_on_disconnect = false
    max_latency_s = 120.0    # SendingTime accepted this far from the venue's clock
    validate_fields_out_of_order = true   # header/body/trailer order errors: Reject 14
    allow_unknown_msg_fields = false      # true: tags not defined (for the message) pass
    max_connections = 64     # connections open at once, in total (more: refused, counted)
    max_connections_per_counterparty = 4  # ...from one SenderCompID, waiting ones included
    username = ""            # optional: every Logon (counterparties' and drop copies') must
    password = "env:SIMA_FIX_PASSWORD"  #   carry this Username (553) / Password (554); the
                             #   password is a reference like [database].password's, read
                             #   when the venue starts (a missing one stops it, naming it)

    The venue trades the profile's [[instruments]] (symbol, tick, price: the background
    flow's starting mid).

    [[venues]]               # the venues the engine trades on, one table per venue
    name = "SIMA"            # 1-8 letters, digits, - and _ (names the venue everywhere)
    kind = "fix"             # fix: a FIX 4.4 order session over TCP (host, port, CompIDs);
                             # sim: a simulated venue inside the engine (paper trading: its
                             #   other participants are the feed's book of the venue of the
                             #   same name; FIX still encoded and decoded, in memory)
    host = "127.0.0.1"       # fix: any FIX 4.4 acceptor
    port = 9876
    sender = "HELM"          # our SenderCompID
    target = "SIMA"          # their CompID
    heartbeat_s = 30
    reset_on_logon = false   # true: ResetSeqNumFlag=Y on every Logon (else sequences resume)
    fee_bps = 0.0            # taker fee, for the smart order router
    latency_us = 0           # expected one-way latency, for the smart order router (and a
                             #   sim venue's own latency each way)
    symbols = ["ESZ6"]       # what the engine may route there (default: every instrument)
    market_data = true       # fix: subscribe to its books (35=V) on the session
    drop_copy_sender = ""    # the drop copy's SenderCompID ("": none). fix: a second session
                             #   to host:port as that CompID; sim: the in-process venue's copy.
                             #   The engine reconciles it with its own fills
                             #   (engine/execution/dropcopy.py)
    drop_copy_grace_ms = 2000  # how long an execution one side has may wait for the other's
    username = "helm"        # fix, optional: Username (553) of the Logon (the drop copy's too)
    password = "env:HELMDESK_SIMA_PW"  # fix, optional: Password (554), a reference (env:NAME
                             #   or keyring:NAME, as [database].password), read when the
                             #   engine starts: a missing one stops it, naming the venue
    queue_model = "risk_averse"  # sim: how our resting orders fill: risk_averse, prob, or none
                             #   (the touch fill); docs/backtest.md, "Fill model"
    md_latency_us = 0        # sim, in a backtest: how far the venue's exchange is ahead of the
                             #   market data the strategies see. 0: not at all (a paper
                             #   session's venues, which see the market when the engine does);
                             #   N: each record N µs before its receipt; "recorded": at its
                             #   own exch_ns (engine/venue/mdlatency.py)

    [database]               # where the engine's orders, fills and FIX sequences persist
    url = "sqlite:///{data_dir}/engine-{instance}.db"   # the default; any SQLAlchemy URL,
                             #   without a password in it (refused: profiles carry no secrets)
    password = "env:HELMDESK_DB_PASSWORD"  # optional: a reference, read when the engine
                             #   connects: env:NAME (an environment variable) or keyring:NAME
                             #   (the OS keyring, service "helmdesk", if the keyring package
                             #   is installed)

Unknown sections and keys are errors, as are wrong types and out-of-range values; an
integer key refuses a number with a fraction (``event_capacity = 1024.9``, ``1024.0``) and
names have bounded lengths (instance 23, desk name 16, user names 32, symbols 16, CompIDs 32,
host names 253).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.limits import LimitsConfig, parse_limits
from engine.core.roles import Role

__all__ = [
    "ProfileError",
    "EngineConfig",
    "DeskConfig",
    "FeedConfig",
    "FeedPairConfig",
    "InstrumentConfig",
    "StrategyConfig",
    "VenueConfig",
    "VenueLinkConfig",
    "Profile",
    "load_profile",
    "parse_profile",
]

IDLE_MODES = ("spin", "hybrid", "sleep")
FEED_KINDS = ("sim", "simvenues", "venues", "replay")
VENUE_KINDS = ("fix", "sim")
#: a simulated venue's queue models (``engine.venue.inprocess.QUEUE_MODELS``, copied: the
#: profile does not import the venue)
QUEUE_MODELS = ("risk_averse", "prob", "none")
DEFAULT_DATABASE_URL = "sqlite:///{data_dir}/engine-{instance}.db"
_INSTANCE_RE = re.compile(r"^[A-Za-z0-9_-]{1,23}$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,16}$")
_COMP_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_COMP_ID_RULE = "a CompID of 1-32 letters, digits, '_', '.' or '-'"
_DESK_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
_STRATEGY_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,23}$")
_USER_RE = re.compile(r"^(\*|[A-Za-z0-9_][A-Za-z0-9_.@-]{0,31})$")
_SECRET_RE = re.compile(r"^(env|keyring):([A-Za-z_][A-Za-z0-9_.-]{0,127})$")
MAX_HOST = 253


class ProfileError(ValueError):
    """A profile is invalid; the message names the file, the key and the reason."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    instance: str = "demo"
    cores: tuple[int, ...] | None = None
    idle: str = "hybrid"
    spin_us: int = 200
    max_sleep_us: int = 1000
    publish_hz: int = 1000
    event_capacity: int = 1 << 14
    #: 0: live (each turn applies the market data received by then); N µs: market data in
    #: whole slices of receive time and every turn at the next time due, in order — a paper
    #: session then replays exactly in a backtest (docs/strategies.md)
    slice_us: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeskConfig:
    name: str = "desk"
    stale_ms: int = 300
    account: str = "main"
    confirm_qty: int = 100  #: the desk asks the trader to confirm an order above this quantity


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedPairConfig:
    """A cointegrated pair of the simulated venues (``[feed] pairs``): ``b`` follows ``a`` as
    ``P_b = beta·P_a + c + S``, the spread S mean-reverting with ``half_life_s`` and a standard
    deviation of ``spread_bp`` basis points of b's price (``engine.feeds.simvenues``)."""

    a: str
    b: str
    beta: float | None = None  #: the hedge ratio; None: b's price / a's price (equal returns)
    half_life_s: float = 60.0
    spread_bp: float = 5.0

    def hedge_ratio(self, price_a: float, price_b: float) -> float:
        """``beta``, or by default ``price_b / price_a`` (the legs' starting prices)."""
        return self.beta if self.beta is not None else price_b / price_a


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConfig:
    kind: str = "sim"
    seed: int = 42
    record: bool = False
    silence_ms: int = 2000
    day: str = ""
    speed: float = 1.0
    at: str = ""  #: replay: start at this time of the day (HH:MM:SS[.fff] UTC), caught up to
    paused: bool = False  #: replay: start paused
    ticks_dir: str = ""
    venues: tuple[str, ...] = ("SIMA", "SIMB")
    pairs: tuple[FeedPairConfig, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentConfig:
    symbol: str
    tick: float
    price: float
    update_hz: float = 50.0


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueConfig:
    """A simulated exchange (``helmdesk venue``): who may log on and how the market behaves."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    sender: str  #: our SenderCompID; the profile's default is ``name``
    counterparties: tuple[str, ...]
    heartbeat_s: int = 30
    latency_us: int = 0
    background_hz: float = 0.0  #: per instrument
    seed: int = 1
    fee_bps: float = 0.0
    reference_seed: int | None = None
    reset_on_logon: bool = False  #: the acceptor sessions' FIX settings (docs/fix.md)
    reset_on_logout: bool = False
    reset_on_disconnect: bool = False
    max_latency_s: float = 120.0
    validate_fields_out_of_order: bool = True
    allow_unknown_msg_fields: bool = False
    max_connections: int = 64
    max_connections_per_counterparty: int = 4
    drop_copy: tuple[str, ...] = ()  #: CompIDs of drop-copy sessions (receive, never order)
    #: what every counterparty's (and drop copy's) Logon must carry as Username (553) and
    #: Password (554); the password is a secret reference, read at start (``venue_password``)
    username: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueLinkConfig:
    """One venue the engine trades on (``[[venues]]``): a FIX order session, or a simulated
    venue inside the engine (``kind = "sim"``)."""

    name: str
    kind: str = "fix"
    host: str = ""
    port: int = 0
    sender: str = "HELM"
    target: str = ""
    heartbeat_s: int = 30
    reset_on_logon: bool = False
    fee_bps: float = 0.0
    latency_us: int = 0
    symbols: tuple[str, ...] = ()  #: instruments routed there (every instrument by default)
    market_data: bool = True  #: subscribe to its books over the order session
    drop_copy_sender: str = ""  #: the drop copy session's SenderCompID ("": no drop copy)
    drop_copy_grace_ms: int = 2000  #: an execution one side lacks is a difference after this
    queue_model: str = "risk_averse"  #: how a simulated venue fills our resting orders
    #: a simulated venue's market-data latency in a backtest: µs (0: none), or "recorded"
    md_latency_us: int | str = 0
    #: fix: the Username (553) and Password (554) of the Logon (the drop copy's too); the
    #: password is a secret reference, read when the session is built (``venue_link_password``)
    username: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyConfig:
    """One ``[[strategies]]`` entry: a strategy of ``kind`` (``engine.strategy.registry``)
    named ``name`` (its kill switch, limits and books are ``strategy:NAME``). ``enabled =
    false`` starts it paused; ``account`` books its orders to an account other than the
    desk's; every other key is the strategy's own parameter (``params``), read and checked by
    its class through ``reader()``."""

    path: Path
    index: int
    name: str
    kind: str
    enabled: bool = True
    account: str = ""
    params: dict = field(default_factory=dict)

    def reader(self) -> _Reader:
        """The parameters as a profile table: errors name the file, the entry and the key."""
        return _Reader(self.path, f"[[strategies]][{self.index}] ({self.name})", self.params)


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    path: Path
    engine: EngineConfig
    desk: DeskConfig
    feed: FeedConfig
    instruments: tuple[InstrumentConfig, ...]
    users: dict[str, Role] = field(default_factory=dict)
    venue: VenueConfig | None = None  #: only a venue's profile has one
    venues: tuple[VenueLinkConfig, ...] = ()  #: the engine's order sessions
    database_url: str = DEFAULT_DATABASE_URL
    database_password: str = ""  #: a secret reference (env:NAME, keyring:NAME), or none
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    #: the ``[var]`` table as written (engine.risk.var.VarConfig reads and checks it)
    var: dict = field(default_factory=dict)
    strategies: tuple[StrategyConfig, ...] = ()  #: ``[[strategies]]``

    def database(self, data_dir: str) -> str:
        """The database URL with ``{data_dir}`` and ``{instance}`` filled in and the password
        read from its reference (``ProfileError`` if it cannot be)."""
        url = self.database_url.replace("{data_dir}", data_dir).replace(
            "{instance}", self.engine.instance)
        if not self.database_password:
            return url
        from sqlalchemy.engine import make_url

        secret = resolve_secret(self.database_password, f"{self.path}: [database].password")
        return make_url(url).set(password=secret).render_as_string(hide_password=False)

    def venue_link_password(self, link: VenueLinkConfig) -> str:
        """The password of ``[[venues]]`` entry ``link``, read from its reference ("": none;
        ``ProfileError`` naming the venue if it cannot be read)."""
        if not link.password:
            return ""
        return resolve_secret(link.password, f"{self.path}: [[venues]] {link.name} password")

    def venue_password(self) -> str:
        """The password ``[venue]`` requires of every Logon, read from its reference ("":
        none; ``ProfileError`` if it cannot be read)."""
        if self.venue is None or not self.venue.password:
            return ""
        return resolve_secret(self.venue.password, f"{self.path}: [venue].password")

    def role_of(self, user: str) -> Role:
        """The role the profile grants an OS user (``*`` for anyone unlisted, else viewer)."""
        role = self.users.get(user)
        if role is None:
            role = self.users.get("*", Role.VIEWER)
        return role


def resolve_secret(ref: str, what: str) -> str:
    """The secret a reference names: ``env:NAME`` or ``keyring:NAME`` (service "helmdesk")."""
    m = _SECRET_RE.match(ref)
    if m is None:
        raise ProfileError(f"{what}: {ref!r} is not a secret reference (env:NAME or keyring:NAME)")
    kind, name = m.groups()
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ProfileError(f"{what}: environment variable {name} is not set")
        return value
    try:
        import keyring  # optional: only profiles that use keyring: need it
    except ImportError:
        raise ProfileError(f"{what}: keyring:{name} needs the keyring package (pip install "
                           f"keyring), which is not installed") from None
    try:
        value = keyring.get_password("helmdesk", name)
    except Exception as e:  # a keyring backend's own error: say which
        raise ProfileError(f"{what}: the keyring could not be read: {e}") from None
    if value is None:
        raise ProfileError(f"{what}: the keyring has no secret {name!r} for service 'helmdesk'")
    return value


def _check_url(r: "_Reader", key: str, url: str) -> None:
    """A database URL: parseable, and with no password in it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:
        r.fail(key, f"must be an SQLAlchemy URL such as sqlite:///path.db, was {url!r}")
    try:
        u = make_url(url)
    except (ArgumentError, ValueError) as e:
        r.fail(key, f"is not a usable URL ({e})")
    if u.password is not None:
        r.fail(key, f"carries a password ({u.render_as_string(hide_password=True)}): profiles "
                    f"hold no secrets; give [database].password = \"env:NAME\" or "
                    f"\"keyring:NAME\" instead")


class _Reader:
    """Pulls typed values out of one table, remembering which keys were used."""

    def __init__(self, path: Path, where: str, table: Any) -> None:
        self.path = path
        self.where = where
        if not isinstance(table, dict):
            self.fail(None, f"must be a table, was {type(table).__name__}")
        self.table = table
        self.used: set[str] = set()

    def fail(self, key: str | None, reason: str) -> None:
        at = f"{self.where}.{key}" if key else self.where
        raise ProfileError(f"{self.path}: {at}: {reason}")

    def get(self, key: str, typ: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                self.fail(key, "is required")
            return default
        v = self.table[key]
        # bool is an int in Python; a profile saying `cores = true` is a mistake
        if isinstance(v, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,)):
            self.fail(key, f"must be {_tname(typ)}, was {v!r}")
        if not isinstance(v, typ):
            self.fail(key, f"must be {_tname(typ)}, was {v!r}")
        return v

    def number(self, key: str, default: Any = ..., *, lo: float, hi: float) -> float:
        v = self.get(key, (int, float), default)
        if v is not default:
            if v != v or not lo <= v <= hi:  # NaN fails too
                self.fail(key, f"must be between {lo:g} and {hi:g}, was {v!r}")
        return v

    def integer(self, key: str, default: Any = ..., *, lo: int, hi: int) -> int:
        """A whole number: ``1024.9`` and ``1024.0`` are refused, not rounded."""
        v = self.get(key, int, default)
        if v is not default and not lo <= v <= hi:
            self.fail(key, f"must be between {lo} and {hi}, was {v!r}")
        return v

    def done(self) -> None:
        extra = sorted(set(self.table) - self.used)
        if extra:
            self.fail(extra[0], "unknown key")


def _tname(typ: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             bool: "true/false", dict: "a table"}
    if isinstance(typ, tuple):
        return " or ".join(names.get(t, t.__name__) for t in typ)
    return names.get(typ, typ.__name__)


def load_profile(path: str | os.PathLike) -> Profile:
    """Read and validate a profile file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ProfileError(f"{p}: no such profile file") from None
    except OSError as e:
        raise ProfileError(f"{p}: cannot read profile: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ProfileError(f"{p}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{p}: not valid TOML: {e}") from None
    return parse_profile(data, p)


def parse_profile(data: dict, path: Path) -> Profile:
    root = _Reader(path, "profile", data)
    ncpu = os.cpu_count() or 1

    e = _Reader(path, "[engine]", root.get("engine", dict, {}))
    instance = e.get("instance", str, "demo")
    if not _INSTANCE_RE.match(instance):
        e.fail("instance", f"must be 1-23 letters, digits, '-' or '_', was {instance!r}")
    cores = e.get("cores", list, None)
    if cores is not None:
        if not cores:
            e.fail("cores", "must name at least one CPU")
        for i, c in enumerate(cores):
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < ncpu:
                e.fail(f"cores[{i}]", f"must be a CPU number 0..{ncpu - 1} of this machine, was {c!r}")
        cores = tuple(sorted(set(cores)))
    idle = e.get("idle", str, "hybrid")
    if idle not in IDLE_MODES:
        e.fail("idle", f"must be one of {', '.join(IDLE_MODES)}, was {idle!r}")
    event_capacity = e.integer("event_capacity", 1 << 14, lo=64, hi=1 << 22)
    if event_capacity & (event_capacity - 1):
        e.fail("event_capacity", f"must be a power of two, was {event_capacity}")
    engine = EngineConfig(
        instance=instance,
        cores=cores,
        idle=idle,
        spin_us=e.integer("spin_us", 200, lo=0, hi=1_000_000),
        max_sleep_us=e.integer("max_sleep_us", 1000, lo=50, hi=1000),
        publish_hz=e.integer("publish_hz", 1000, lo=1, hi=100_000),
        event_capacity=event_capacity,
        slice_us=e.integer("slice_us", 0, lo=0, hi=1_000_000),
    )
    e.done()

    d = _Reader(path, "[desk]", root.get("desk", dict, {}))
    desk_name = d.get("name", str, "desk")
    if not _DESK_NAME_RE.match(desk_name):
        d.fail("name", f"must be 1-16 letters, digits, '_', '.' or '-' (it names the "
                       f"workstation in every command), was {desk_name!r}")
    account = d.get("account", str, "main")
    if not _DESK_NAME_RE.match(account):
        d.fail("account", f"must be 1-16 letters, digits, '_', '.' or '-', was {account!r}")
    desk = DeskConfig(
        name=desk_name,
        stale_ms=d.integer("stale_ms", 300, lo=20, hi=60_000),
        account=account,
        confirm_qty=d.integer("confirm_qty", 100, lo=0, hi=2**31 - 1),
    )
    d.done()

    raw_instruments = root.get("instruments", list)
    if not raw_instruments:
        root.fail("instruments", "must list at least one [[instruments]] table")
    instruments = []
    seen: set[str] = set()
    for i, t in enumerate(raw_instruments):
        r = _Reader(path, f"[[instruments]][{i}]", t)
        sym = r.get("symbol", str)
        if not _SYMBOL_RE.match(sym):
            r.fail("symbol", f"must be 1-16 of A-Z a-z 0-9 _ . : / -, was {sym!r}")
        if sym in seen:
            r.fail("symbol", f"{sym!r} is listed twice")
        seen.add(sym)
        tick = float(r.number("tick", lo=1e-9, hi=1e6))
        price = float(r.number("price", lo=1e-9, hi=1e9))
        if price / tick < 20:
            r.fail("price", f"{price} must be at least 20 ticks of {tick} (the book has 10 levels)")
        instruments.append(
            InstrumentConfig(
                symbol=sym,
                tick=tick,
                price=price,
                update_hz=float(r.number("update_hz", 50.0, lo=0.0, hi=100_000.0)),
            )
        )
        r.done()
    if len(instruments) > 4096:
        root.fail("instruments", f"at most 4096 instruments, was {len(instruments)}")

    f = _Reader(path, "[feed]", root.get("feed", dict, {}))
    kind = f.get("kind", str, "sim")
    if kind not in FEED_KINDS:
        f.fail("kind", f"must be one of {', '.join(FEED_KINDS)}, was {kind!r}")
    feed = FeedConfig(
        kind=kind,
        seed=f.integer("seed", 42, lo=0, hi=2**63 - 1),
        record=f.get("record", bool, False),
        silence_ms=f.integer("silence_ms", 2000, lo=10, hi=3_600_000),
        day=f.get("day", str, ""),
        speed=float(f.number("speed", 1.0, lo=0.001, hi=1e6)),
        at=f.get("at", str, ""),
        paused=f.get("paused", bool, False),
        ticks_dir=f.get("ticks_dir", str, ""),
        venues=_feed_venues(f),
        pairs=_feed_pairs(f, seen),
    )
    if kind == "replay" and not re.match(r"^\d{4}-\d{2}-\d{2}$", feed.day):
        f.fail("day", f"replay needs the day to play as YYYY-MM-DD, was {feed.day!r}")
    if feed.at and not re.match(r"^\d{2}:\d{2}:\d{2}(\.\d{1,9})?$", feed.at):
        f.fail("at", f"must be a time of the day HH:MM:SS[.fff] (UTC), was {feed.at!r}")
    f.done()

    u = _Reader(path, "[users]", root.get("users", dict, {}))
    users = {}
    for name in list(u.table):
        if not _USER_RE.match(name):
            u.fail(name, "is not an OS user name (1-32 letters, digits, '_', '.', '@', '-', "
                         "not starting with '.', '@' or '-') nor \"*\"")
        value = u.get(name, str)
        try:
            users[name] = Role.parse(value)
        except ValueError as err:
            u.fail(name, str(err))
    u.done()
    venue = _parse_venue(root.get("venue", dict, None), path)
    venues = _parse_venue_links(root.get("venues", list, []), path, [i.symbol for i in instruments])
    feed_venues = {"sim": ("SIM",), "simvenues": feed.venues}.get(feed.kind, ())
    for k, v in enumerate(venues):
        if v.kind == "fix" and v.market_data and v.name in feed_venues:
            root.fail(f"venues[{k}].name", f"{v.name!r} is also a simulated [feed] venue: each "
                                           f"venue has one book, rename one (or market_data = "
                                           f"false)")
    if feed.kind == "venues" and not any(v.kind == "fix" and v.market_data for v in venues):
        f.fail("kind", "'venues' takes the books of the [[venues]] FIX sessions (market_data), "
                       "and there are none")
    db = _Reader(path, "[database]", root.get("database", dict, {}))
    database_url = db.get("url", str, DEFAULT_DATABASE_URL)
    _check_url(db, "url", database_url)
    database_password = db.get("password", str, "")
    if database_password and not _SECRET_RE.match(database_password):
        db.fail("password", "must be a reference, env:NAME or keyring:NAME: profiles hold no "
                            "secrets in the clear")
    db.done()
    limits = parse_limits(_Reader(path, "[limits]", root.get("limits", dict, {})), seen,
                          {v.name for v in venues})
    var = dict(root.get("var", dict, {}))
    strategies = _parse_strategies(root.get("strategies", list, []), path)
    root.done()
    return Profile(
        path=path, engine=engine, desk=desk, feed=feed, instruments=tuple(instruments), users=users,
        venue=venue, venues=venues, database_url=database_url,
        database_password=database_password, limits=limits, var=var, strategies=strategies,
    )


def _parse_strategies(raw: list, path: Path) -> tuple[StrategyConfig, ...]:
    """``[[strategies]]``: name, kind, enabled, account; the rest is the strategy's (its class
    checks them when the engine builds it)."""
    out = []
    names: set[str] = set()
    for k, t in enumerate(raw):
        r = _Reader(path, f"[[strategies]][{k}]", t)
        name = r.get("name", str)
        if not _STRATEGY_NAME_RE.match(name):
            r.fail("name", f"must be 1-23 letters, digits, '_', '.' or '-', was {name!r}")
        if name in names:
            r.fail("name", f"{name!r} names two strategies")
        names.add(name)
        kind = r.get("kind", str)
        account = r.get("account", str, "")
        if account and not _DESK_NAME_RE.match(account):
            r.fail("account", f"must be 1-16 letters, digits, '_', '.' or '-', was {account!r}")
        enabled = r.get("enabled", bool, True)
        params = {key: v for key, v in t.items() if key not in ("name", "kind", "account",
                                                                 "enabled")}
        out.append(StrategyConfig(path=path, index=k, name=name, kind=kind, enabled=enabled,
                                  account=account, params=params))
    if len(out) > 64:
        raise ProfileError(f"{path}: [[strategies]]: at most 64 strategies, was {len(out)}")
    return tuple(out)


def _feed_venues(f: "_Reader") -> tuple[str, ...]:
    raw = f.get("venues", list, ["SIMA", "SIMB"])
    if not 1 <= len(raw) <= 16:
        f.fail("venues", f"must name 1 to 16 simulated venues, was {len(raw)}")
    for k, v in enumerate(raw):
        if not isinstance(v, str) or not _VENUE_NAME_RE.match(v):
            f.fail(f"venues[{k}]", f"must be 1-8 letters, digits, '-' or '_', was {v!r}")
    if len(set(raw)) != len(raw):
        f.fail("venues", "lists a venue twice")
    return tuple(raw)


def _feed_pairs(f: "_Reader", symbols: set[str]) -> tuple[FeedPairConfig, ...]:
    """``[feed] pairs``: each ``["A", "B"]`` (the defaults) or ``{ a = "A", b = "B", beta = 0.5,
    half_life_s = 60, spread_bp = 5 }``. A b leg follows one instrument and leads none (no
    chains: ``engine.feeds.simvenues``)."""
    out: list[FeedPairConfig] = []
    for k, p in enumerate(f.get("pairs", list, [])):
        key = f"pairs[{k}]"
        if isinstance(p, dict):
            r = _Reader(f.path, f"{f.where}.{key}", p)
            a, b = r.get("a", str), r.get("b", str)
            beta = r.get("beta", (int, float), None)
            if beta is not None and not (0 < beta < 1e6):  # NaN fails too
                r.fail("beta", f"must be a hedge ratio > 0 and < 1e6 (b moves beta × a's "
                               f"moves, in price units), was {beta!r}")
            pair = FeedPairConfig(
                a=a, b=b, beta=None if beta is None else float(beta),
                half_life_s=float(r.number("half_life_s", 60.0, lo=0.1, hi=86_400.0)),
                spread_bp=float(r.number("spread_bp", 5.0, lo=0.0, hi=10_000.0)))
            r.done()
        elif isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p):
            pair = FeedPairConfig(a=p[0], b=p[1])
        else:
            f.fail(key, f"must be two symbols like [\"A\", \"B\"] or a table like "
                        f"{{ a = \"A\", b = \"B\", beta = 0.5 }}, was {p!r}")
        a, b = pair.a, pair.b
        for x in (a, b):
            if x not in symbols:
                f.fail(key, f"{x!r} is not one of the profile's instruments")
        if a == b:
            f.fail(key, f"pairs {a!r} with itself")
        for n, q in enumerate(out):
            if q.b == b:
                f.fail(key, f"{b!r} already follows {q.a!r} (pairs[{n}]): an instrument "
                            f"follows one other at most")
            if q.b == a:
                f.fail(key, f"{a!r} follows {q.a!r} (pairs[{n}]), so it may not lead a pair "
                            f"(no chains)")
            if q.a == b:
                f.fail(key, f"{b!r} leads pairs[{n}], so it may not follow {a!r} (no chains)")
        out.append(pair)
    return tuple(out)


_VENUE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,8}$")


def _parse_venue_links(tables: list, path: Path, symbols: list[str]) -> tuple[VenueLinkConfig, ...]:
    out: list[VenueLinkConfig] = []
    for i, t in enumerate(tables):
        v = _Reader(path, f"[[venues]][{i}]", t)
        name = v.get("name", str)
        if not _VENUE_NAME_RE.match(name):
            v.fail("name", f"must be 1-8 letters, digits, '-' or '_', was {name!r}")
        if any(o.name == name for o in out):
            v.fail("name", f"{name!r} is listed twice")
        kind = v.get("kind", str, "fix")
        if kind not in VENUE_KINDS:
            v.fail("kind", f"must be one of {', '.join(VENUE_KINDS)}, was {kind!r}")
        fix = kind == "fix"
        host = v.get("host", str) if fix else v.get("host", str, "")
        if fix and (not host or len(host) > MAX_HOST or any(c.isspace() for c in host)):
            v.fail("host", f"must be a host name or address, was {host!r}")
        ids = {}
        for key, default in (("sender", "HELM"), ("target", name)):
            ids[key] = v.get(key, str) if fix else v.get(key, str, default)
            if not _COMP_ID_RE.match(ids[key]):
                v.fail(key, f"must be {_COMP_ID_RULE}, was {ids[key]!r}")
        raw = v.get("symbols", list, None)
        chosen: tuple[str, ...] = tuple(symbols)
        if raw is not None:
            for k, sym in enumerate(raw):
                if sym not in symbols:
                    v.fail(f"symbols[{k}]", f"{sym!r} is not one of the profile's instruments")
            chosen = tuple(dict.fromkeys(raw))
        out.append(VenueLinkConfig(
            name=name,
            kind=kind,
            host=host,
            port=v.integer("port", lo=1, hi=65535) if fix else v.integer("port", 0, lo=0, hi=0),
            sender=ids["sender"],
            target=ids["target"],
            heartbeat_s=v.integer("heartbeat_s", 30, lo=1, hi=3600),
            reset_on_logon=v.get("reset_on_logon", bool, False),
            fee_bps=float(v.number("fee_bps", 0.0, lo=-10_000.0, hi=10_000.0)),
            latency_us=v.integer("latency_us", 0, lo=0, hi=10_000_000),
            symbols=chosen,
            market_data=v.get("market_data", bool, True),
            drop_copy_sender=_drop_copy_sender(v, ids["sender"]),
            drop_copy_grace_ms=v.integer("drop_copy_grace_ms", 2000, lo=0, hi=3_600_000),
            queue_model=_queue_model(v, kind),
            md_latency_us=_md_latency(v, kind),
            **_credentials(v, fix),
        ))
        v.done()
    return tuple(out)


def _queue_model(v: "_Reader", kind: str) -> str:
    model = v.get("queue_model", str, "risk_averse")
    if model not in QUEUE_MODELS:
        v.fail("queue_model", f"must be one of {', '.join(QUEUE_MODELS)}, was {model!r}")
    if kind != "sim" and model != "risk_averse":
        v.fail("queue_model", "is a simulated venue's fill model: only kind = \"sim\" has one")
    return model


def _md_latency(v: "_Reader", kind: str) -> int | str:
    lat = v.get("md_latency_us", (int, str), 0)
    if isinstance(lat, str) and lat != "recorded":
        v.fail("md_latency_us", f"must be a number of µs or \"recorded\", was {lat!r}")
    if isinstance(lat, int) and not 0 <= lat <= 10_000_000:
        v.fail("md_latency_us", f"must be between 0 and 10000000, was {lat!r}")
    if kind != "sim" and lat != 0:
        v.fail("md_latency_us", "is a simulated venue's fill model: only kind = \"sim\" has one")
    return lat


def _credentials(v: "_Reader", allowed: bool = True) -> dict[str, str]:
    """``username`` (plain, optional) and ``password`` (a secret reference, optional): what a
    Logon carries. Only read here, never resolved: a profile validates without its secrets."""
    out = {}
    for key in ("username", "password"):
        value = v.get(key, str, "")
        if value and not allowed:
            v.fail(key, "is a FIX Logon's: only kind = \"fix\" has one (a sim venue is in the "
                        "engine's own process)")
        out[key] = value
    name = out["username"]
    if len(name) > 64 or any(c in name for c in "\x01=") or not name.isprintable():
        v.fail("username", f"must be at most 64 printable characters, without '=', was {name!r}")
    if out["password"] and not _SECRET_RE.match(out["password"]):
        # never echo it: it may be the secret itself
        v.fail("password", "must be a reference, env:NAME or keyring:NAME: profiles hold no "
                           "secrets in the clear")
    return out


def _drop_copy_sender(v: "_Reader", sender: str) -> str:
    dc = v.get("drop_copy_sender", str, "")
    if dc and not _COMP_ID_RE.match(dc):
        v.fail("drop_copy_sender", f"must be {_COMP_ID_RULE} (or \"\" for none), was {dc!r}")
    if dc and dc == sender:
        v.fail("drop_copy_sender", f"{dc!r} is the order session's sender too: the drop copy "
                                   f"is a session of its own, with a CompID of its own")
    return dc


def _parse_venue(table: dict | None, path: Path) -> VenueConfig | None:
    if table is None:
        return None
    v = _Reader(path, "[venue]", table)
    name = v.get("name", str)
    if not _INSTANCE_RE.match(name):
        v.fail("name", f"must be 1-23 letters, digits, '-' or '_', was {name!r}")
    host = v.get("host", str, "127.0.0.1")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or ":" in host:
        v.fail("host", f"must be an IPv4 loopback address such as 127.0.0.1 (a simulated "
                       f"venue, with no TLS, is for tests and paper trading), was {host!r}")
    sender = v.get("sender", str, name)
    if not _COMP_ID_RE.match(sender):
        v.fail("sender", f"must be {_COMP_ID_RULE}, was {sender!r}")
    raw = v.get("counterparties", list)
    if not raw:
        v.fail("counterparties", "must list at least one initiator CompID")
    seen: list[str] = []
    for i, c in enumerate(raw):
        if not isinstance(c, str) or not _COMP_ID_RE.match(c):
            v.fail(f"counterparties[{i}]", f"must be {_COMP_ID_RULE}, was {c!r}")
        if c in seen:
            v.fail(f"counterparties[{i}]", f"{c!r} is listed twice")
        if c == sender:
            v.fail(f"counterparties[{i}]", f"{c!r} is the venue's own CompID")
        seen.append(c)
    drop_copy: list[str] = []
    for i, c in enumerate(v.get("drop_copy", list, [])):
        key = f"drop_copy[{i}]"
        if not isinstance(c, str) or not _COMP_ID_RE.match(c):
            v.fail(key, f"must be {_COMP_ID_RULE}, was {c!r}")
        if c in drop_copy:
            v.fail(key, f"{c!r} is listed twice")
        if c == sender:
            v.fail(key, f"{c!r} is the venue's own CompID")
        if c in seen:
            v.fail(key, f"{c!r} is also a counterparty: a drop-copy session may not trade")
        drop_copy.append(c)
    config = VenueConfig(
        name=name,
        host=host,
        port=v.integer("port", 0, lo=0, hi=65535),
        sender=sender,
        counterparties=tuple(seen),
        heartbeat_s=v.integer("heartbeat_s", 30, lo=1, hi=3600),
        latency_us=v.integer("latency_us", 0, lo=0, hi=10_000_000),
        background_hz=float(v.number("background_hz", 0.0, lo=0.0, hi=100_000.0)),
        seed=v.integer("seed", 1, lo=0, hi=2**63 - 1),
        reference_seed=v.integer("reference_seed", None, lo=0, hi=2**32 - 1),
        fee_bps=float(v.number("fee_bps", 0.0, lo=0.0, hi=10_000.0)),
        reset_on_logon=v.get("reset_on_logon", bool, False),
        reset_on_logout=v.get("reset_on_logout", bool, False),
        reset_on_disconnect=v.get("reset_on_disconnect", bool, False),
        max_latency_s=float(v.number("max_latency_s", 120.0, lo=0.001, hi=86_400.0)),
        validate_fields_out_of_order=v.get("validate_fields_out_of_order", bool, True),
        allow_unknown_msg_fields=v.get("allow_unknown_msg_fields", bool, False),
        max_connections=v.integer("max_connections", 64, lo=1, hi=100_000),
        max_connections_per_counterparty=v.integer("max_connections_per_counterparty", 4,
                                                   lo=1, hi=1000),
        drop_copy=tuple(drop_copy),
        **_credentials(v),
    )
    v.done()
    return config
