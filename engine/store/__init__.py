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
- ``records.py`` is the segment layout and the record formats; ``models.py`` the tables.
- ``recover.load(url)`` rebuilds orders (with their ExecIDs), positions, kill switches and FIX
  sequence numbers on restart; ``WriteBehindFixStore`` gives FIX sessions a store that never
  commits on the hot thread.
"""

import importlib

#: public name -> the private module that defines it; imported on first use, so the writer
#: process (which needs records, models and writer only) does not pay for the rest
_HOME = {
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
    "FixSessionState",
    "KillEvent",
    "Kind",
    "Position",
    "Recovered",
    "StoreError",
    "StoreInUse",
    "StoreLink",
    "StoreStartError",
    "StoredOrder",
    "WriteBehindFixStore",
    "default_url",
    "load",
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
