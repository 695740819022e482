"""Kill switches: one global, one per instrument. Tripping is never refused; re-arming is.

State lives in a numpy table of ``engine.core.records.KILL_ROW`` (the shape the desk reads, so
publishing is one copy). ``KillSwitches`` itself does no I/O: a live node hands it a
``KillStateFile``, which persists every change atomically on a thread of its own (off the hot
thread) and gives the state back at start, so a restarted engine comes back with the switches
as they were, failing closed; a backtest gives it none.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
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

    def persist(self) -> None:
        """Hand the current rows to the state file's writer thread (JSON is built there)."""
        if self._state is not None:
            self._state.save(self.rows.copy(), self.symbols)

    # -- persistence -----------------------------------------------------------------------------
    def _load(self, state: KillStateFile) -> None:
        try:
            entries = state.load()
        except (OSError, ValueError, KeyError, TypeError) as e:
            # unreadable state: fail closed, as DESIGN.md's risk controls say
            log.error("kill switch state %s unreadable (%s): starting with global kill TRIPPED",
                      state.path, e)
            self.set(Scope.GLOBAL, 0, True, "engine", "state file unreadable", 0)
            return
        index = {s: i for i, s in enumerate(self.symbols)}
        for e in entries:
            name = e.get("switch")
            if name == "global":
                r = 0
            elif name in index:
                r = 1 + index[name]
            else:
                log.warning("kill switch state for unknown instrument %r ignored", name)
                continue
            row = self.rows[r]
            row["tripped"] = bool(e.get("tripped"))
            row["ts_ns"] = int(e.get("ts_ns", 0))
            row["user"] = str(e.get("user", "")).encode()[:16]
            row["reason"] = str(e.get("reason", "")).encode()[:32]
        self.global_tripped = bool(self.rows["tripped"][0])
        self.version += 1

    def close(self) -> None:
        """Flush pending state to disk (the state file's writer stops)."""
        if self._state is not None:
            self._state.close()


class KillStateFile:
    """The kill switches' JSON file: written atomically (fsync, rename) on a thread of its
    own, newest state only; read back at start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="kill-persist", daemon=True)
        self._writer.start()

    def load(self) -> list[dict]:
        """The switches' last state (empty when there is no file); raises when unreadable."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return data["switches"]

    def save(self, rows: np.ndarray, symbols: list[str]) -> None:
        self._q.put((rows, symbols))

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
                    self._write(self._to_json(*item))
                    return
                item = nxt
            self._write(self._to_json(*item))

    def _write(self, text: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            log.error("could not persist kill switch state to %s: %s", self.path, e)

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        if self._writer.is_alive():
            self._q.put(None)
            self._writer.join(timeout=5)
