"""Fixtures for the store: a database file in tmp_path and a real link with a real writer."""

from __future__ import annotations

import pytest

from engine.store import StoreLink
from tests.store._util import Db


@pytest.fixture
def url(tmp_path) -> str:
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
