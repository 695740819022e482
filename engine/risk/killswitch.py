"""Kill switches: one global, one per instrument. Tripping is never refused; re-arming is.

State lives in a numpy table of ``engine.core.records.KILL_ROW`` (the shape the desk reads, so
publishing is one copy). ``KillSwitches`` itself does no I/O: a live node hands it a
``KillStateFile``, which persists every change atomically on a thread of its own (off the hot
thread) and gives the state back at start, so a restarted engine comes back with the switches
as they were; a backtest gives it none.

The state file is the one source of truth for the switches at restart. It fails closed: a file
that cannot be read, or that reads as anything but the exact shape ``_to_json`` writes (JSON
of the wrong shape, a timestamp that is a string or 1e30, an unknown key), brings the engine up
with the global switch TRIPPED and the reason. Each save has a number; ``durable(n)`` says when
save ``n`` is on disk (file fsync'd, renamed into place, directory fsync'd): the engine sends
the ack that confirms a kill or a re-arm only then. The database's ``kill_events`` are the
audit trail; at start they may only make the state stricter (``check_audit``): a trip the
audit holds that the file does not know (a file lost or rolled back) trips the switch again.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.core.records import KILL_ROW, Scope

__all__ = ["KillStateFile", "KillSwitches"]

log = logging.getLogger("helmdesk.risk")


class KillSwitches:
    def __init__(self, symbols: list[str], state: KillStateFile | None = None) -> None:
        self.symbols = symbols
        self.rows = np.zeros(len(symbols) + 1, dtype=KILL_ROW)
        self.rows["scope"][0] = Scope.GLOBAL
        self.rows["scope"][1:] = Scope.INSTRUMENT
        self.rows["scope_id"][1:] = np.arange(len(symbols))
        self.global_tripped = False
        self.failed_closed: str | None = None  #: why the state came up TRIPPED at start
        self._state = state
        self.version = 0  # bumped on every change: the publisher compares it
        if state is not None:
            self._load(state)

    # -- state changes ---------------------------------------------------------------------------
    def _row(self, scope: int, scope_id: int) -> int:
        return 0 if scope == Scope.GLOBAL else 1 + scope_id

    def is_tripped(self, scope: int, scope_id: int = 0) -> bool:
        return bool(self.rows["tripped"][self._row(scope, scope_id)])

    def name(self, scope: int, scope_id: int = 0) -> str:
        return "global" if scope == Scope.GLOBAL else f"instrument {self.symbols[scope_id]}"

    def set(self, scope: int, scope_id: int, tripped: bool, user: str, reason: str, ts_ns: int,
            *, persist: bool = True) -> bool:
        """Set a switch; return False if it already was in that state. ``persist=False``: the
        caller calls ``persist()`` itself, later (after the cancels a kill sends: handing the
        rows over wakes the writer thread, which then competes for the GIL)."""
        r = self._row(scope, scope_id)
        if bool(self.rows["tripped"][r]) == tripped:
            return False
        row = self.rows[r]
        row["tripped"] = tripped
        row["ts_ns"] = ts_ns
        row["user"] = user.encode()[:16]
        row["reason"] = reason.encode()[:32]
        if r == 0:
            self.global_tripped = tripped
        self.version += 1
        if persist:
            self.persist()
        return True

    def persist(self) -> int:
        """Hand the current rows to the state file's writer thread (JSON is built there);
        return the save's number for ``durable`` (0: nothing to persist to)."""
        if self._state is not None:
            return self._state.save(self.rows.copy(), self.symbols)
        return 0

    def durable(self, save: int) -> bool:
        """True once save number ``save`` is on disk (always, without a state file)."""
        return self._state is None or self._state.durable >= save

    @property
    def persist_error(self) -> str | None:
        """Why the last save failed (None: it did not)."""
        return None if self._state is None else self._state.error

    # -- persistence -----------------------------------------------------------------------------
    def _load(self, state: KillStateFile) -> None:
        try:
            entries = state.load()
        except (OSError, ValueError) as e:
            self._fail_closed(f"state file unusable: {e} ({state.path})", "state file unusable")
            return
        index = {s: i for i, s in enumerate(self.symbols)}
        for e in entries:
            name = e["switch"]
            if name == "global":
                r = 0
            elif name in index:
                r = 1 + index[name]
            else:
                log.warning("kill switch state for unknown instrument %r ignored", name)
                continue
            row = self.rows[r]
            row["tripped"] = e["tripped"]
            row["ts_ns"] = e["ts_ns"]
            row["user"] = e["user"].encode()[:16]
            row["reason"] = e["reason"].encode()[:32]
        self.global_tripped = bool(self.rows["tripped"][0])
        self.version += 1

    def _fail_closed(self, why: str, short: str) -> None:
        """Start with the global switch TRIPPED (DESIGN.md: risk controls fail closed)."""
        log.error("kill switch state unusable: %s: starting with the global kill switch "
                  "TRIPPED", why)
        self.failed_closed = why
        self.set(Scope.GLOBAL, 0, True, "engine", short, 0)

    def check_audit(self, last_events: dict[str, tuple[bool, int]]) -> list[str]:
        """Compare with the audit trail's last event per switch (name -> (tripped, ts_ns)):
        a trip newer than what the file says of that switch trips it again. Returns the
        switches tripped so."""
        out = []
        index = {s: i for i, s in enumerate(self.symbols)}
        for name, (tripped, ts_ns) in last_events.items():
            r = 0 if name == "global" else 1 + index[name] if name in index else None
            if r is None or not tripped or self.rows["tripped"][r]:
                continue
            if ts_ns > int(self.rows["ts_ns"][r]):
                scope, scope_id = (Scope.GLOBAL, 0) if r == 0 else (Scope.INSTRUMENT, r - 1)
                log.error("kill switch %s: the audit trail has it TRIPPED at %d, the state file "
                          "does not (lost or rolled back): TRIPPED again", name, ts_ns)
                self.set(scope, scope_id, True, "engine", "state file behind the audit", ts_ns)
                out.append(name)
        if out:
            self.failed_closed = (f"the state file is behind the audit trail for "
                                  f"{', '.join(out)}: TRIPPED again")
        return out

    def close(self) -> None:
        """Flush pending state to disk (the state file's writer stops)."""
        if self._state is not None:
            self._state.close()


_ENTRY_TYPES = {"switch": str, "tripped": bool, "ts_ns": int, "user": str, "reason": str}
_MAX_TS_NS = 2**63 - 1


def parse_state(text: str) -> list[dict]:
    """The entries of a state file's text; ``ValueError`` naming what is wrong with it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(data, dict) or set(data) != {"version", "switches"}:
        raise ValueError(f"expected an object with 'version' and 'switches', got "
                         f"{_show(data)}")
    if data["version"] != 1 or type(data["version"]) is not int:
        raise ValueError(f"version {_show(data['version'])} is not 1")
    entries = data["switches"]
    if not isinstance(entries, list):
        raise ValueError(f"'switches' is {_show(entries)}, not a list")
    seen = set()
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) != set(_ENTRY_TYPES):
            raise ValueError(f"switches[{k}] is {_show(e)}, not an object with "
                             f"{', '.join(_ENTRY_TYPES)}")
        for key, typ in _ENTRY_TYPES.items():
            if type(e[key]) is not typ:
                raise ValueError(f"switches[{k}].{key} is {_show(e[key])}, not {typ.__name__}")
        if not 0 <= e["ts_ns"] <= _MAX_TS_NS:
            raise ValueError(f"switches[{k}].ts_ns {e['ts_ns']} is out of range")
        if e["switch"] in seen:
            raise ValueError(f"switches[{k}]: switch {e['switch']!r} appears twice")
        seen.add(e["switch"])
    return entries


def _show(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


class KillStateFile:
    """The kill switches' JSON file: written atomically (fsync, rename, directory fsync) on a
    thread of its own, newest state only; read back at start (``parse_state``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._saves = 0
        self.durable = 0  #: the number of the last save that is on disk
        self.error: str | None = None  #: why the last write failed (None: it did not)
        #: called on the writer thread after each save is durable or has failed (the live
        #: node wakes its loop with it, so the ack that waits goes out at once)
        self.on_saved: Callable[[], None] | None = None
        self._writer = threading.Thread(target=self._write_loop, name="kill-persist", daemon=True)
        self._writer.start()

    def load(self) -> list[dict]:
        """The switches' last state (empty when there is no file); ``ValueError`` or
        ``OSError`` when it cannot be used."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except UnicodeDecodeError as e:
            raise ValueError(f"not UTF-8 text: {e}") from None
        return parse_state(text)

    def save(self, rows: np.ndarray, symbols: list[str]) -> int:
        """Queue the state for writing; return the save's number (see ``durable``)."""
        self._saves += 1
        self._q.put((self._saves, rows, symbols))
        return self._saves

    @staticmethod
    def _to_json(rows: np.ndarray, symbols: list[str]) -> str:
        out = []
        for r, row in enumerate(rows):
            if row["tripped"] or row["ts_ns"]:
                out.append(
                    {
                        "switch": "global" if r == 0 else symbols[r - 1],
                        "tripped": bool(row["tripped"]),
                        "ts_ns": int(row["ts_ns"]),
                        "user": row["user"].decode(errors="replace"),
                        "reason": row["reason"].decode(errors="replace"),
                    }
                )
        return json.dumps({"version": 1, "switches": out}, indent=1)

    def _write_loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            while True:  # only the newest state matters
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._write(item)
                    return
                item = nxt
            self._write(item)

    def _write(self, item: tuple) -> None:
        n, rows, symbols = item
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as f:
                f.write(self._to_json(rows, symbols))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)  # the rename itself survives a crash only once the dir is synced
            finally:
                os.close(fd)
        except OSError as e:
            self.error = f"could not save the kill switch state to {self.path}: {e}"
            log.error("%s", self.error)
        else:
            self.error = None
            self.durable = n
        if self.on_saved is not None:
            self.on_saved()

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        if self._writer.is_alive():
            self._q.put(None)
            self._writer.join(timeout=5)
