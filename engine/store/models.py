"""The engine's database: SQLAlchemy 2.x Core tables on one ``MetaData``, and how to open it.

SQLite by default (a file under the data directory, WAL, ``synchronous=NORMAL``: a commit
survives the process dying, which is what an engine restart needs, not the machine losing
power mid-checkpoint); any SQLAlchemy URL otherwise. Only Core constructs are used and the
upserts are built per dialect (``insert … ON CONFLICT``), so SQLite and PostgreSQL both work;
another dialect is refused with a clear message rather than half-supported.

``fix_sessions``/``fix_messages`` have the columns of ``engine.fix.store.SqlStore``'s tables,
so a database one of them wrote can be read by the other.

Times are int ns (``*_ns``, BIGINT); quantities are integers; prices are floats; statuses and
verbs are stored as the names a person reads (``PartiallyFilled``, ``KILL``), not as codes.
Free text is TEXT: PostgreSQL refuses a string longer than its VARCHAR(n), SQLite never does,
and a record must not be written by one and refused by the other.

The schema has a version (``schema.py``: ``SCHEMA_VERSION``, the ``schema_version`` table):
``open_db`` refuses a database newer than this code and migrates an older one.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url

from engine.fix.store import FIX_MESSAGES, FIX_SESSIONS

__all__ = [
    "DIALECTS",
    "check_url",
    "commands",
    "default_url",
    "driver_url",
    "executions",
    "fix_messages",
    "fix_sessions",
    "insert_ignore",
    "kill_events",
    "limit_changes",
    "metadata",
    "open_db",
    "orders",
    "positions",
    "safe_url",
    "schema_version",
    "upsert",
]

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("cl_ord_id", String(32), primary_key=True),
    Column("venue", String(16), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("side", SmallInteger, nullable=False),  # 1 buy, 2 sell (FIX 54)
    Column("qty", BigInteger, nullable=False),
    Column("price", Float, nullable=True),  # None: a market order
    Column("tif", String(8), nullable=False),
    Column("status", String(16), nullable=False),  # OrdStatus value
    Column("cum_qty", BigInteger, nullable=False),
    Column("leaves_qty", BigInteger, nullable=False),
    Column("avg_px", Float, nullable=False),
    Column("venue_order_id", Text, nullable=False),  # the venue's: any length
    Column("parent_id", String(32), nullable=True),
    Column("created_ns", BigInteger, nullable=False),  # set by the first row, kept after
    Column("updated_ns", BigInteger, nullable=False),
)
Index("ix_orders_status", orders.c.status)
Index("ix_orders_created_ns", orders.c.created_ns)  # the audit trail reads by time

executions = Table(
    "executions",
    metadata,
    Column("exec_id", Text, primary_key=True),  # the venue's: any length
    Column("venue", String(16), primary_key=True),
    Column("cl_ord_id", String(32), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("side", SmallInteger, nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("price", Float, nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("fee", Float, nullable=False, server_default="0"),  # the venue's Commission(12)
)
Index("ix_executions_cl_ord_id", executions.c.cl_ord_id)
Index("ix_executions_ts_ns", executions.c.ts_ns)  # the audit trail reads by time

positions = Table(
    "positions",
    metadata,
    Column("symbol", String(16), primary_key=True),
    Column("qty", BigInteger, nullable=False),  # signed: > 0 long, < 0 short
    Column("avg_px", Float, nullable=False),  # average cost of the open quantity
    Column("realized", Float, nullable=False),  # price × quantity units (no multiplier)
    Column("updated_ns", BigInteger, nullable=False),
)

kill_events = Table(
    "kill_events",
    metadata,
    Column("ts_ns", BigInteger, primary_key=True),
    Column("scope", SmallInteger, primary_key=True),  # engine.core.records.Scope
    Column("scope_id", Integer, primary_key=True),
    # one switch changes to one state at most once a nanosecond: the key of a replayed record
    Column("scope_name", Text, primary_key=True),  # "global", "instrument:ESZ6", "strategy:pairs"
    Column("state", String(16), primary_key=True),  # "active", "reducing", "halted"
    Column("tripped", Boolean, nullable=False),  # state != "active"
    Column("name", Text, nullable=False),  # the switch's name as the engine gave it
    Column("user", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

limit_changes = Table(
    "limit_changes",
    metadata,
    Column("ts_ns", BigInteger, primary_key=True),
    Column("scope", Text, primary_key=True),  # "default", "instrument:ESZ6", "strategy:pairs"
    Column("key", Text, primary_key=True),  # the limit's key in [limits]: max_order_qty, ...
    Column("user", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("workstation", Text, nullable=False),
    Column("old_value", Text, nullable=False),  # as text; "" when there was none
    Column("new_value", Text, nullable=False),  # as text; "" when it was removed
    Column("reason", Text, nullable=False),
)


order_tags = Table(
    "order_tags",  # whose each order is: the risk engine's books after a restart
    metadata,
    Column("cl_ord_id", Text, primary_key=True),
    Column("source", Text, nullable=False),  # "strategy:pairs", "manual:alice", "risk:flatten"
    Column("account", Text, nullable=False),  # "" for the desk's account
    Column("ts_ns", BigInteger, nullable=False),
)


commands = Table(
    "commands",
    metadata,
    Column("cmd_id", BigInteger, primary_key=True),
    Column("ts_ns", BigInteger, primary_key=True),  # when the engine decided
    Column("user", String(16), nullable=False),
    Column("workstation", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("verb", String(16), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("scope_id", Integer, nullable=False),
    Column("arg0", Float, nullable=False),
    Column("arg1", Float, nullable=False),
    Column("text", String(48), nullable=False),
    Column("status", String(16), nullable=False),  # ACCEPTED / REJECTED
    Column("reason", String(96), nullable=False),
)
Index("ix_commands_ts_ns", commands.c.ts_ns)  # the audit trail reads by time

fix_sessions = FIX_SESSIONS.to_metadata(metadata)  # one definition: engine/fix/store.py
fix_messages = FIX_MESSAGES.to_metadata(metadata)

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),  # one row per version applied; max: current
    Column("applied_ns", BigInteger, nullable=False),
    Column("by", Text, nullable=False),  # "helmdesk 0.1.0"
)

DIALECTS = ("sqlite", "postgresql")


def default_url(instance: str) -> str:
    """The embedded default: ``<data dir>/state/<instance>/engine.db``."""
    from engine.core.paths import state_dir

    return f"sqlite:///{Path(state_dir(instance)) / 'engine.db'}"


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not even a URL: it has no parts to hide
        return url


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be the store's database, as far as can be told without connecting."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = driver_url(url)
    except ArgumentError as e:
        return str(e)
    if u.get_backend_name() not in DIALECTS:
        return (f"dialect {u.get_backend_name()!r} is not supported (the store speaks "
                f"{', '.join(DIALECTS)})")
    try:
        u.get_dialect()
    except NoSuchModuleError as e:
        return str(e)
    return None


def driver_url(url: str):
    """``url`` parsed; a plain ``postgresql://`` gets psycopg 3, the driver Helmdesk installs
    (SQLAlchemy's default for it is psycopg2, which it does not)."""
    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return u


def open_db(url: str, *, create: bool = True) -> Engine:
    """An ``Engine`` for ``url``; SQLite gets WAL and ``synchronous=NORMAL`` on every connection.

    The schema's version is checked first (``schema.prepare``): a database newer than this
    code raises ``SchemaTooNew``; with ``create`` an older or empty one is migrated or created
    (without, it is left as it is: a reader does not change a database under its engine).

    Raises ``ValueError`` for a dialect other than SQLite or PostgreSQL, and whatever
    SQLAlchemy raises for a URL it cannot use (the caller words the message).
    """
    u = driver_url(url)
    if u.get_backend_name() not in DIALECTS:
        raise ValueError(
            f"database {safe_url(url)}: dialect {u.get_backend_name()!r} is not supported "
            f"(the store speaks {', '.join(DIALECTS)})"
        )
    eng = create_engine(u)
    if eng.dialect.name == "sqlite":

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - run by the driver
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    from engine.store.schema import prepare

    try:
        prepare(eng, url, create=create)
    except BaseException:
        eng.dispose()
        raise
    return eng


def _insert_for(dialect_name: str):
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise ValueError(f"no upsert for dialect {dialect_name!r} (the store speaks {DIALECTS})")
    return insert


def upsert(table: Table, dialect_name: str, *, keep: tuple[str, ...] = ()):
    """``INSERT … ON CONFLICT (primary key) DO UPDATE`` every column but the key and ``keep``."""
    ins = _insert_for(dialect_name)(table)
    key = [c.name for c in table.primary_key.columns]
    return ins.on_conflict_do_update(
        index_elements=key,
        set_={c.name: ins.excluded[c.name] for c in table.columns
              if c.name not in key and c.name not in keep},
    )


def insert_ignore(table: Table, dialect_name: str):
    """``INSERT … ON CONFLICT DO NOTHING``: a row that is already there stays as it is."""
    return _insert_for(dialect_name)(table).on_conflict_do_nothing()
