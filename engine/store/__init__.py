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

from engine.store.fixstore import WriteBehindFixStore
from engine.store.link import StoreError, StoreInUse, StoreLink, StoreStartError
from engine.store.models import default_url
from engine.store.records import Kind
from engine.store.recover import (
    FixSessionState,
    KillEvent,
    Position,
    Recovered,
    StoredOrder,
    load,
)

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
