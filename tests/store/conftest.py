"""Fixtures for the store: a database of its own for each test, SQLite and PostgreSQL, and a
real link with a real writer.

``url`` is parametrized: every test that uses it runs against a SQLite file in tmp_path and
against a fresh database on the PostgreSQL server of ``$HELMDESK_TEST_PG_URL`` (created for the
test, dropped after it; `bash packaging/dev.sh test` starts a throwaway server on 127.0.0.1).
Without that variable the PostgreSQL cases skip with the reason, except in CI (``$CI`` set),
where they fail: CI must run them.
"""

from __future__ import annotations

import itertools
import os

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from engine.store import StoreLink
from tests.store._util import Db

PG_URL = os.environ.get("HELMDESK_TEST_PG_URL", "")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_dbs = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    """An AUTOCOMMIT engine on the test server's maintenance database."""
    if not PG_URL:
        why = ("HELMDESK_TEST_PG_URL is not set (bash packaging/dev.sh test starts a throwaway "
               "PostgreSQL on 127.0.0.1)")
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the PostgreSQL cases: {why}")
        pytest.skip(why)
    u = make_url(PG_URL)
    if u.host not in _LOOPBACK:
        pytest.fail(f"HELMDESK_TEST_PG_URL must name a server on loopback, was host {u.host!r}")
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    eng = create_engine(u, isolation_level="AUTOCOMMIT")
    yield eng
    eng.dispose()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A new, empty PostgreSQL database for this test alone (dropped after it)."""
    name = f"hd_t{os.getpid()}_{next(_dbs)}"
    with pg_server.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield pg_server.url.set(database=name).render_as_string(hide_password=False)
    with pg_server.connect() as c:  # FORCE: a writer a test left running does not stop it
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'engine.db'}"


@pytest.fixture
def make_link(instance, url):
    """StoreLink(instance, url, **kw); every link made is closed after the test."""
    made: list[StoreLink] = []

    def make(**kw) -> StoreLink:
        link = StoreLink(kw.pop("instance", instance), kw.pop("url", url), **kw)
        made.append(link)
        return link

    yield make
    for link in made:
        link.close()


@pytest.fixture
def link(make_link) -> StoreLink:
    return make_link()


@pytest.fixture
def db(url):
    d = Db(url)
    yield d
    d.engine.dispose()
