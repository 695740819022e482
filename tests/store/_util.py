"""Helpers for the store tests: read the database, wait for durability."""

from __future__ import annotations

from sqlalchemy import create_engine, func, select

from engine.store import StoreLink


class Db:
    """Read what the writer wrote (a separate connection, as another process would)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def rows(self, table, *where, order_by=None) -> list:
        q = select(table).where(*where)
        if order_by is not None:
            q = q.order_by(order_by)
        with self.engine.connect() as c:
            return [r._asdict() for r in c.execute(q)]

    def count(self, table) -> int:
        with self.engine.connect() as c:
            return c.execute(select(func.count()).select_from(table)).scalar_one()

    def scalars(self, column) -> list:
        with self.engine.connect() as c:
            return list(c.execute(select(column)).scalars())


def flushed(link: StoreLink, timeout: float = 10.0) -> StoreLink:
    assert link.flush(timeout), f"records not durable in time: {link.stats()} {link.last_error}"
    return link
