"""The schema's version: a new database gets it, an older one is migrated, a newer one refused."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    create_engine,
    insert,
    inspect,
)

from engine.store import SchemaTooNew, StoreLink, StoreStartError, load
from engine.store import models as m
from engine.store.schema import SCHEMA_VERSION, _by, prepare, version
from tests.store._util import flushed


def _v1(url: str) -> None:
    """The tables as the schema was before it had a version (kill events without states),
    with a kill switch tripped and re-armed, an order and a command in them."""
    md = MetaData()
    kill = Table("kill_events", md, Column("ts_ns", BigInteger, primary_key=True),
                 Column("scope", SmallInteger, primary_key=True),
                 Column("scope_id", Integer, primary_key=True),
                 Column("tripped", Boolean, primary_key=True),
                 Column("name", String(16), nullable=False),
                 Column("user", String(16), nullable=False),
                 Column("reason", String(96), nullable=False))
    orders = m.orders.to_metadata(md)
    for t in (m.executions, m.positions, m.commands, m.fix_sessions, m.fix_messages):
        t.to_metadata(md)
    for t in md.tables.values():  # the time indexes came with version 2
        t.indexes = {i for i in t.indexes if not i.name.endswith(("_ts_ns", "_created_ns"))}
    eng = create_engine(url)
    md.create_all(eng)
    with eng.begin() as c:
        c.execute(insert(kill), [
            {"ts_ns": 5, "scope": 1, "scope_id": 2, "tripped": True, "name": "AAPL",
             "user": "ana", "reason": "fat finger"},
            {"ts_ns": 6, "scope": 1, "scope_id": 2, "tripped": False, "name": "AAPL",
             "user": "bob", "reason": "fixed"},
            {"ts_ns": 7, "scope": 0, "scope_id": 0, "tripped": True, "name": "global",
             "user": "ana", "reason": "all out"}])
        c.execute(insert(orders), {
            "cl_ord_id": "O1", "venue": "SIMA", "symbol": "ESZ6", "side": 1, "qty": 1,
            "price": 1.0, "tif": "day", "status": "New", "cum_qty": 0, "leaves_qty": 1,
            "avg_px": 0.0, "venue_order_id": "", "parent_id": None, "created_ns": 1,
            "updated_ns": 1})
    eng.dispose()


def _set_version(url: str, v: int) -> None:
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(insert(m.schema_version), {"version": v, "applied_ns": 1, "by": "helmdesk 99"})
    eng.dispose()


def test_a_new_database_gets_every_table_and_the_version(url):
    eng = m.open_db(url)
    try:
        assert version(eng) == SCHEMA_VERSION
        assert set(m.metadata.tables) <= set(inspect(eng).get_table_names())
        assert prepare(eng, url) == SCHEMA_VERSION  # opening again changes nothing
        with eng.connect() as c:
            rows = c.execute(m.schema_version.select()).all()
        assert [r.version for r in rows] == [SCHEMA_VERSION] and rows[0].by.startswith("helmdesk ")
    finally:
        eng.dispose()


def test_a_database_from_before_the_version_is_migrated_and_keeps_its_rows(url):
    _v1(url)
    probe = create_engine(url)
    assert version(probe) == 1
    reader = m.open_db(url, create=False)  # a reader leaves it as it is
    assert version(reader) == 1
    reader.dispose()
    eng = m.open_db(url)
    try:
        assert version(eng) == SCHEMA_VERSION
        insp = inspect(eng)
        assert {"state", "scope_name"} <= {c["name"] for c in insp.get_columns("kill_events")}
        assert "limit_changes" in insp.get_table_names()
        assert "kill_events_v1" not in insp.get_table_names()
        assert "ix_commands_ts_ns" in {i["name"] for i in insp.get_indexes("commands")}
        assert "ix_orders_created_ns" in {i["name"] for i in insp.get_indexes("orders")}
    finally:
        eng.dispose()
        probe.dispose()
    r = load(url)
    assert sorted(r.orders) == ["O1"]
    assert (r.kills["AAPL"].tripped, r.kills["AAPL"].state, r.kills["AAPL"].user) == (
        False, "active", "bob")
    assert r.kill_scopes["instrument:AAPL"].reason == "fixed"
    assert (r.kill_scopes["global"].state, r.kill_scopes["global"].tripped) == ("halted", True)


def test_a_migrated_database_takes_the_new_records(make_link, url, db):
    _v1(url)
    link = make_link()  # the writer migrates it when it opens it
    link.put_kill("strategy:pairs", 2, 0, True, "ana", "r", 8, state="reducing",
                  scope_name="strategy:pairs")
    link.put_limit("ana", "risk_manager", "ws", "default", "collar_bps", "200", "100", "", 9)
    flushed(link)
    assert db.count(m.kill_events) == 4 and db.count(m.limit_changes) == 1


def test_a_database_newer_than_this_code_is_refused_and_left_alone(url, instance):
    m.open_db(url).dispose()
    _set_version(url, SCHEMA_VERSION + 7)
    with pytest.raises(SchemaTooNew) as e:
        m.open_db(url)
    assert str(e.value) == (
        f"database {m.safe_url(url)} has schema version {SCHEMA_VERSION + 7}, newer than this "
        f"Helmdesk's ({SCHEMA_VERSION}, {_by()}): upgrade Helmdesk to use it (helmdesk 99 "
        f"wrote it); the database was not changed")
    with pytest.raises(SchemaTooNew):
        m.open_db(url, create=False)
    with pytest.raises(SchemaTooNew):
        load(url)
    # the engine's writer refuses it too, and the engine says so
    with pytest.raises(StoreStartError, match="cannot open the database: database .* newer"):
        StoreLink(instance, url)
    eng = create_engine(url)
    with eng.connect() as c:
        assert [r.version for r in c.execute(m.schema_version.select()).all()] == [
            SCHEMA_VERSION, SCHEMA_VERSION + 7]
    eng.dispose()


def test_an_unknown_table_set_is_created_alongside(url):
    """A database that some other program wrote to (no Helmdesk tables): ours are added."""
    eng = create_engine(url)
    Table("theirs", MetaData(), Column("x", Float)).create(eng)
    eng.dispose()
    eng = m.open_db(url)
    assert version(eng) == SCHEMA_VERSION and "theirs" in inspect(eng).get_table_names()
    eng.dispose()


def test_a_migration_that_fails_half_way_leaves_the_database_as_it_was(url, monkeypatch):
    """One transaction, DDL included, on both: a step that breaks after renaming and
    rebuilding kill_events leaves version 1 with its old table, and the next open migrates."""
    from engine.store import schema

    _v1(url)
    step = schema.MIGRATIONS[1]

    def broken(conn):
        step(conn)
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(schema.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        m.open_db(url)
    probe = create_engine(url)
    insp = inspect(probe)
    assert version(probe) == 1
    assert "state" not in {c["name"] for c in insp.get_columns("kill_events")}
    assert not {"kill_events_v1", "limit_changes", "schema_version"} & set(
        insp.get_table_names())
    probe.dispose()
    monkeypatch.setitem(schema.MIGRATIONS, 1, step)
    eng = m.open_db(url)
    assert version(eng) == SCHEMA_VERSION
    eng.dispose()
