"""The database's schema version: checked at every open, an older one migrated, a newer refused.

Theory of operation
-------------------
``SCHEMA_VERSION`` is the version of the tables in models.py. A database keeps the versions
applied to it in ``schema_version`` (one row each, with when and by which Helmdesk); the
highest is its version. Version 1 is the schema from before that table existed, so a database
with an ``orders`` table and no ``schema_version`` is version 1; one with neither is empty
(version 0).

``prepare(engine, url)`` runs at every ``models.open_db``:

- **newer than this code**: ``SchemaTooNew`` names the database, its version and ours, and
  says to upgrade Helmdesk. Nothing is written: an older engine must not write rows a newer
  one does not expect, nor "repair" its tables;
- **older** (with ``create``): each step of ``MIGRATIONS`` from its version up, then the
  tables it lacks, then the new version's row: one transaction. PostgreSQL has transactional
  DDL and takes an advisory lock first, so engines that share a desk's database and start
  together migrate it once; SQLite takes its write lock (``BEGIN IMMEDIATE``), DDL included;
- **empty** (with ``create``): every table, and the current version's row;
- without ``create`` (a reader such as ``helmdesk ctl``) an older database is left as it is:
  ``version(engine)`` tells the reader what it has.

Adding a version: bump ``SCHEMA_VERSION``, change the tables in models.py, and add the step
from the version before to ``MIGRATIONS``; a test builds the old schema and opens it.

Errors::

    SchemaError(ValueError)  base; the message names the database (password masked)
    └── SchemaTooNew         the database was written by a newer Helmdesk
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, func, insert, inspect, select, text

from engine.store import models as m

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaError", "SchemaTooNew", "prepare", "version"]

#: The version of the tables in models.py.
SCHEMA_VERSION = 3
_PG_LOCK_KEY = 0x48454C4D  # "HELM": the advisory lock migrations take on PostgreSQL


class SchemaError(ValueError):
    """The database's schema cannot be used by this code; the message says why."""


class SchemaTooNew(SchemaError):
    pass


# -- the steps ------------------------------------------------------------------------------------
def _v1_to_v2(conn: Connection) -> None:
    """Kill events get a state and a scope name (and both join the key, so switches of every
    scope changing at one nanosecond are all kept); the audit trail's time indexes; new
    tables (limit_changes, schema_version) are made by ``create_all`` after the steps."""
    pg = conn.dialect.name == "postgresql"
    if inspect(conn).has_table("kill_events"):
        conn.execute(text("ALTER TABLE kill_events RENAME TO kill_events_v1"))
        pk = inspect(conn).get_pk_constraint("kill_events_v1").get("name")
        if pg and pk == "kill_events_pkey":  # the new table's key takes that name
            conn.execute(text("ALTER TABLE kill_events_v1 RENAME CONSTRAINT kill_events_pkey "
                              "TO kill_events_v1_pkey"))
        m.kill_events.create(conn)
        conn.execute(text(
            'INSERT INTO kill_events (ts_ns, scope, scope_id, scope_name, state, tripped, name, '
            '"user", reason) SELECT ts_ns, scope, scope_id, '
            "CASE WHEN scope = 0 THEN 'global' ELSE 'instrument:' || name END, "
            "CASE WHEN tripped THEN 'halted' ELSE 'active' END, tripped, name, "
            '"user", reason FROM kill_events_v1'))
        conn.execute(text("DROP TABLE kill_events_v1"))
    have = set(inspect(conn).get_table_names())
    for table, index in ((m.orders, "ix_orders_created_ns"),
                         (m.executions, "ix_executions_ts_ns"),
                         (m.commands, "ix_commands_ts_ns")):
        if table.name in have:
            next(i for i in table.indexes if i.name == index).create(conn, checkfirst=True)


def _v2_to_v3(conn: Connection) -> None:
    """Executions carry the venue's fee (0 for those written before)."""
    if inspect(conn).has_table("executions"):
        cols = {c["name"] for c in inspect(conn).get_columns("executions")}
        if "fee" not in cols:
            conn.execute(text("ALTER TABLE executions ADD COLUMN fee FLOAT NOT NULL DEFAULT 0"))


#: version -> the step that takes a database of that version to the next one
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3}
assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION))


# -- reading and preparing --------------------------------------------------------------------------
def _read_version(conn: Connection) -> int:
    insp = inspect(conn)
    if insp.has_table("schema_version"):
        v = conn.execute(select(func.max(m.schema_version.c.version))).scalar()
        if v is not None:
            return int(v)
    return 1 if insp.has_table("orders") else 0


def version(engine: Engine) -> int:
    """The schema version of the database behind ``engine`` (0: empty)."""
    with engine.connect() as conn:
        return _read_version(conn)


def _too_new(conn: Connection, url: str, v: int) -> SchemaTooNew:
    """The refusal, naming the release that wrote the newer schema (a downgrade's victim)."""
    t = m.schema_version
    by = conn.execute(select(t.c.by).where(t.c.version == v).limit(1)).scalar() or "?"
    return SchemaTooNew(
        f"database {m.safe_url(url)} has schema version {v}, newer than this Helmdesk's "
        f"({SCHEMA_VERSION}, {_by()}): upgrade Helmdesk to use it ({by} wrote it); the "
        f"database was not changed")


def _by() -> str:
    from engine import __version__

    try:
        from importlib.metadata import version as dist_version

        return f"helmdesk {dist_version('helmdesk')}"
    except Exception:  # noqa: BLE001 - not installed as a distribution: the source's own
        return f"helmdesk {__version__}"


def prepare(engine: Engine, url: str, *, create: bool = True) -> int:
    """Check the schema version; with ``create`` migrate or create up to ``SCHEMA_VERSION``.
    Return the version the database has now; raise ``SchemaTooNew`` (module docstring)."""
    v = version(engine)
    if v > SCHEMA_VERSION:
        with engine.connect() as conn:
            raise _too_new(conn, url, v)
    if v == SCHEMA_VERSION or not create:
        return v
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw = conn.connection.driver_connection if sqlite else None
        if sqlite:  # pysqlite would run DDL outside any transaction: begin ourselves
            before = raw.isolation_level
            raw.isolation_level = None
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            if not sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            v = _read_version(conn)  # again, under the lock: another may have done it
            if v > SCHEMA_VERSION:
                raise _too_new(conn, url, v)
            if v < SCHEMA_VERSION:
                for step in range(max(v, 1), SCHEMA_VERSION) if v else ():
                    MIGRATIONS[step](conn)
                m.metadata.create_all(conn)
                conn.execute(insert(m.schema_version), {"version": SCHEMA_VERSION,
                                                        "applied_ns": time.time_ns(),
                                                        "by": _by()})
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if sqlite:
                raw.isolation_level = before
    return SCHEMA_VERSION
