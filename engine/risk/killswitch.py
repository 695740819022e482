"""Kill switches: one per scope (global, each instrument, strategy, venue, account and trader),
each ACTIVE, REDUCING or HALTED. Tripping is never refused; re-arming is (by the commands).

State lives in a numpy table of ``engine.core.records.KILL_ROW``, one row per row of the
engine's ``ScopeTable`` (the shape the desk reads, so publishing is one copy), with a plain
list of the states beside it for the hot path (``states[row]``). ``KillSwitches`` itself does no
I/O: a live node hands it a ``KillStateFile``, which persists every change atomically on a
thread of its own (off the hot thread) and gives the state back at start, so a restarted engine
comes back with the switches as they were; a backtest gives it none.

The state file is the one source of truth for the switches at restart. It fails closed: a file
that cannot be read, or that reads as anything but the exact shape ``_to_json`` writes (JSON
of the wrong shape, a timestamp that is a string or 1e30, an unknown key, a state that is not
active/reducing/halted), brings the engine up with the global switch HALTED and the reason.
Each save has a number; ``durable(n)`` says when save ``n`` is on disk (file fsync'd, renamed
into place, directory fsync'd): the engine sends the ack that confirms a kill or a re-arm only
then. The database's ``kill_events`` are the audit trail; at start they may only make the state
stricter (``check_audit``): a trip the audit holds that the file does not know (a file lost or
rolled back) trips the switch again.

Version 1 files (the global and instrument switches, tripped or not) are read as version 2
(tripped: HALTED) and rewritten as version 2 at the next change.
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

from engine.core.records import KILL_ROW, KillState, Scope
from engine.risk.scopes import ScopeTable

__all__ = ["KillStateFile", "KillSwitches", "parse_state"]

log = logging.getLogger("helmdesk.risk")

_STATE_NAMES = {s.label: s for s in KillState}


class KillSwitches:
    def __init__(self, table: ScopeTable, state: KillStateFile | None = None) -> None:
        self.table = table
        self.rows = np.zeros(table.n_rows, dtype=KILL_ROW)
        for r, (scope, scope_id, name) in enumerate(table.rows()):
            self.rows[r]["scope"] = scope
            self.rows[r]["scope_id"] = scope_id
            self.rows[r]["name"] = name.encode()[:24]
        self.names = [name for _s, _i, name in table.rows()]
        self.row_of = {name: r for r, name in enumerate(self.names)}
        #: each row's KillState as a plain int: what the pre-trade check reads
        self.states = [0] * table.n_rows
        self.n_tripped = 0  #: rows not ACTIVE (0: the pre-trade check has nothing to look at)
        self.failed_closed: str | None = None  #: why the state came up HALTED at start
        self._state = state
        self.version = 0  # bumped on every change: the publisher compares it
        if state is not None:
            self._load(state)

    # -- reading ---------------------------------------------------------------------------------
    @property
    def global_tripped(self) -> bool:
        return self.states[0] != KillState.ACTIVE

    def state(self, scope: int, scope_id: int = 0) -> KillState:
        return KillState(self.states[self.table.row(scope, scope_id)])

    def is_tripped(self, scope: int, scope_id: int = 0) -> bool:
        return self.states[self.table.row(scope, scope_id)] != KillState.ACTIVE

    def name(self, scope: int, scope_id: int = 0) -> str:
        return self.table.name(scope, scope_id)

    def tripped_rows(self) -> list[int]:
        return [r for r, s in enumerate(self.states) if s]

    # -- state changes ---------------------------------------------------------------------------
    def set(self, scope: int, scope_id: int, state: int, user: str, reason: str, ts_ns: int,
            *, auto: bool = False, cool_until_ns: int = 0, persist: bool = True) -> bool:
        """Set a switch; return False if it already was in that state. ``persist=False``: the
        caller calls ``persist()`` itself, later (after the cancels a kill sends: handing the
        rows over wakes the writer thread, which then competes for the GIL)."""
        return self.set_row(self.table.row(scope, scope_id), state, user, reason, ts_ns,
                            auto=auto, cool_until_ns=cool_until_ns, persist=persist)

    def set_row(self, r: int, state: int, user: str, reason: str, ts_ns: int, *,
                auto: bool = False, cool_until_ns: int = 0, persist: bool = True) -> bool:
        state = int(state)
        if self.states[r] == state:
            return False
        row = self.rows[r]
        row["state"] = state
        row["auto"] = auto and state != KillState.ACTIVE
        row["ts_ns"] = ts_ns
        row["cool_until_ns"] = cool_until_ns if state != KillState.ACTIVE else 0
        row["user"] = _clip(user, 32)
        row["reason"] = _clip(reason, 96)
        self.n_tripped += (state != 0) - (self.states[r] != 0)
        self.states[r] = state
        self.version += 1
        if persist:
            self.persist()
        return True

    def persist(self) -> int:
        """Hand the current rows to the state file's writer thread (JSON is built there);
        return the save's number for ``durable`` (0: nothing to persist to)."""
        if self._state is not None:
            return self._state.save(self.rows.copy(), self.names)
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
        for e in entries:
            r = self.row_of.get(e["switch"])
            if r is None:
                log.warning("kill switch state for %r ignored: this engine has no such scope",
                            e["switch"])
                continue
            row = self.rows[r]
            st = _STATE_NAMES[e["state"]]
            row["state"] = st
            row["auto"] = e["auto"]
            row["ts_ns"] = e["ts_ns"]
            row["cool_until_ns"] = e["cool_until_ns"]
            row["user"] = _clip(e["user"], 32)
            row["reason"] = _clip(e["reason"], 96)
            self.states[r] = int(st)
        self.n_tripped = sum(1 for x in self.states if x)
        self.version += 1

    def _fail_closed(self, why: str, short: str) -> None:
        """Start with the global switch HALTED (DESIGN.md: risk controls fail closed)."""
        log.error("kill switch state unusable: %s: starting with the global kill switch "
                  "HALTED", why)
        self.failed_closed = why
        self.set(Scope.GLOBAL, 0, KillState.HALTED, "engine", short, 0, auto=True)

    def check_audit(self, last_events: dict[str, tuple[int, int]]) -> list[str]:
        """Compare with the audit trail's last event per switch (name -> (state, ts_ns); a
        bool state is read as HALTED / ACTIVE): a trip newer than what the file says of that
        switch, or stricter, trips it again. Returns the switches tripped so."""
        out = []
        for name, (state, ts_ns) in last_events.items():
            r = self.row_of.get(name)
            if r is None and name in self.table.ids[Scope.INSTRUMENT]:  # version 1 names
                r = self.row_of[f"instrument:{name}"]
            state = int(KillState.HALTED if state is True else state)
            if r is None or not state or self.states[r] >= state:
                continue
            if ts_ns > int(self.rows["ts_ns"][r]):
                log.error("kill switch %s: the audit trail has it %s at %d, the state file "
                          "does not (lost or rolled back): %s again", self.names[r],
                          KillState(state).name, ts_ns, KillState(state).name)
                self.set_row(r, state, "engine", "state file behind the audit", ts_ns,
                             auto=True)
                out.append(self.names[r])
        if out:
            self.failed_closed = (f"the state file is behind the audit trail for "
                                  f"{', '.join(out)}: tripped again")
        return out

    def close(self) -> None:
        """Flush pending state to disk (the state file's writer stops)."""
        if self._state is not None:
            self._state.close()


def _clip(text: str, n: int) -> bytes:
    return text.encode()[:n].decode("utf-8", "ignore").encode()


_ENTRY_TYPES = {"switch": str, "state": str, "auto": bool, "ts_ns": int, "cool_until_ns": int,
                "user": str, "reason": str}
_V1_TYPES = {"switch": str, "tripped": bool, "ts_ns": int, "user": str, "reason": str}
_MAX_TS_NS = 2**63 - 1


def parse_state(text: str) -> list[dict]:
    """The entries of a state file's text (version 2 shape; a version 1 file is converted);
    ``ValueError`` naming what is wrong with it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(data, dict) or set(data) != {"version", "switches"}:
        raise ValueError(f"expected an object with 'version' and 'switches', got "
                         f"{_show(data)}")
    version = data["version"]
    if type(version) is not int or version not in (1, 2):
        raise ValueError(f"version {_show(version)} is not 1 or 2")
    types = _ENTRY_TYPES if version == 2 else _V1_TYPES
    entries = data["switches"]
    if not isinstance(entries, list):
        raise ValueError(f"'switches' is {_show(entries)}, not a list")
    seen = set()
    out = []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) != set(types):
            raise ValueError(f"switches[{k}] is {_show(e)}, not an object with "
                             f"{', '.join(types)}")
        for key, typ in types.items():
            if type(e[key]) is not typ:
                raise ValueError(f"switches[{k}].{key} is {_show(e[key])}, not {typ.__name__}")
        if not 0 <= e["ts_ns"] <= _MAX_TS_NS:
            raise ValueError(f"switches[{k}].ts_ns {e['ts_ns']} is out of range")
        if version == 1:
            name = e["switch"] if e["switch"] == "global" else f"instrument:{e['switch']}"
            e = {"switch": name, "state": "halted" if e["tripped"] else "active",
                 "auto": False, "ts_ns": e["ts_ns"], "cool_until_ns": 0, "user": e["user"],
                 "reason": e["reason"]}
        else:
            if e["state"] not in _STATE_NAMES:
                raise ValueError(f"switches[{k}].state is {_show(e['state'])}, not one of "
                                 f"{', '.join(_STATE_NAMES)}")
            if not 0 <= e["cool_until_ns"] <= _MAX_TS_NS:
                raise ValueError(f"switches[{k}].cool_until_ns {e['cool_until_ns']} is out "
                                 f"of range")
        if e["switch"] in seen:
            raise ValueError(f"switches[{k}]: switch {e['switch']!r} appears twice")
        seen.add(e["switch"])
        out.append(e)
    return out


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

    def save(self, rows: np.ndarray, names: list[str]) -> int:
        """Queue the state for writing; return the save's number (see ``durable``)."""
        self._saves += 1
        self._q.put((self._saves, rows, names))
        return self._saves

    @staticmethod
    def _to_json(rows: np.ndarray, names: list[str]) -> str:
        out = []
        for r, row in enumerate(rows):
            if row["state"] or row["ts_ns"]:
                out.append(
                    {
                        "switch": names[r],
                        "state": KillState(int(row["state"])).label,
                        "auto": bool(row["auto"]),
                        "ts_ns": int(row["ts_ns"]),
                        "cool_until_ns": int(row["cool_until_ns"]),
                        "user": row["user"].decode(errors="replace"),
                        "reason": row["reason"].decode(errors="replace"),
                    }
                )
        return json.dumps({"version": 2, "switches": out}, indent=1)

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
        n, rows, names = item
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as f:
                f.write(self._to_json(rows, names))
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
