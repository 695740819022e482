"""store: the engine's database, written behind the hot thread by a helper process.

Theory of operation (DESIGN.md, "Persistence" and "One hot thread in CPython")::

    hot thread ──put_*──▶ ring in /dev/shm/helmdesk.<instance>.store ──▶ writer process
        ▲    (struct.pack_into, no wait)                                   │ one transaction
        └──────────── poll(): durable seq ◀── header word ◀── commit ◀─────┘ per batch

- ``StoreLink`` (link.py) is the engine's side: ``put_*`` returns a record's sequence number,
  ``poll()`` the highest durable one; a fill is reported once ``durable(seq)``. A full ring
  spills into an in-process deque; a dead writer is restarted and re-reads every record it had
  not acknowledged (the ring's head moves only after a commit).
- ``writer.py`` is the process: batches, idempotent upserts, positions from executions, bad
  records refused and counted, never a spinning core; it finishes the ring and exits when the
  engine dies.
- ``records.py`` is the segment layout and the record formats; ``models.py`` the tables;
  ``schema.py`` their version: a database newer than this code is refused, an older one is
  migrated when opened.
- ``audit.py`` reads the audit trail back (commands with their answers, orders, executions,
  kill switch and limit changes), merged in time order: ``helmdesk ctl audit``.
- ``recover.load(url)`` rebuilds orders (with their ExecIDs), positions, kill switches and FIX
  sequence numbers on restart; ``WriteBehindFixStore`` gives FIX sessions a store that never
  commits on the hot thread.
"""

import importlib

#: public name -> the private module that defines it; imported on first use, so the writer
#: process (which needs records, models and writer only) does not pay for the rest
_HOME = {
    "AuditEntry": "audit",
    "read_audit": "audit",
    "SCHEMA_VERSION": "schema",
    "SchemaError": "schema",
    "SchemaTooNew": "schema",
    "WriteBehindFixStore": "fixstore",
    "StoreLink": "link",
    "StoreError": "link",
    "StoreStartError": "link",
    "StoreInUse": "link",
    "default_url": "models",
    "Kind": "records",
    "load": "recover",
    "Recovered": "recover",
    "StoredOrder": "recover",
    "Position": "recover",
    "KillEvent": "recover",
    "FixSessionState": "recover",
}

__all__ = [
    "SCHEMA_VERSION",
    "AuditEntry",
    "FixSessionState",
    "KillEvent",
    "Kind",
    "Position",
    "Recovered",
    "SchemaError",
    "SchemaTooNew",
    "StoreError",
    "StoreInUse",
    "StoreLink",
    "StoreStartError",
    "StoredOrder",
    "WriteBehindFixStore",
    "default_url",
    "load",
    "read_audit",
]
assert sorted(__all__) == sorted(_HOME)


def __getattr__(name: str):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'engine.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"engine.store.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
