"""Kill switch state: fails closed on any file that is not exactly what the engine writes, is
durable (file and directory synced) before a save counts, and the audit trail can only make
it stricter."""

from __future__ import annotations

import json

import pytest

from engine.core.records import KillState, Scope
from engine.risk.killswitch import KillStateFile, KillSwitches, parse_state
from engine.risk.scopes import ScopeTable
from tests.conftest import wait_until

SYMBOLS = ["ESZ6", "AAPL"]
TABLE = ScopeTable(SYMBOLS, ["pairs"], ["SIMA"], ["main"], ["ana"])
GOOD = {"version": 1, "switches": [
    {"switch": "AAPL", "tripped": True, "ts_ns": 5, "user": "ana", "reason": "halted"}]}
V2 = {"version": 2, "switches": [
    {"switch": "strategy:pairs", "state": "reducing", "auto": True, "ts_ns": 5,
     "cool_until_ns": 60, "user": "engine", "reason": "daily loss"},
    {"switch": "venue:SIMA", "state": "halted", "auto": False, "ts_ns": 6, "cool_until_ns": 0,
     "user": "ana", "reason": "venue trouble"}]}


def _switches(tmp_path, text: str | bytes | None):
    path = tmp_path / "killswitches.json"
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    state = KillStateFile(path)
    try:
        return KillSwitches(TABLE, state), state
    except BaseException:
        state.close()
        raise


def _entry(**kw) -> str:
    e = dict(GOOD["switches"][0], **kw)
    return json.dumps({"version": 1, "switches": [e]})


@pytest.mark.parametrize("text, why", [
    ('{"switches": 5}', "expected an object with 'version' and 'switches'"),
    ("[1]", "expected an object with 'version' and 'switches', got [1]"),
    ('"tripped"', "expected an object"),
    ('{"version": 1, "switches": 5}', "'switches' is 5, not a list"),
    ('{"version": 1, "switches": [1]}', "switches[0] is 1, not an object"),
    (_entry(ts_ns="2026-12-04"), 'switches[0].ts_ns is "2026-12-04", not int'),
    (_entry(ts_ns=1e30), "switches[0].ts_ns is 1e+30, not int"),
    (_entry(ts_ns=2**64), "switches[0].ts_ns 18446744073709551616 is out of range"),
    (_entry(ts_ns=-1), "switches[0].ts_ns -1 is out of range"),
    (_entry(tripped=1), "switches[0].tripped is 1, not bool"),
    (_entry(user=None), "switches[0].user is null, not str"),
    ('{"version": 3, "switches": []}', "version 3 is not 1 or 2"),
    (json.dumps({"version": 2, "switches": [dict(V2["switches"][0], state="paused")]}),
     'switches[0].state is "paused", not one of active, reducing, halted'),
    (json.dumps({"version": 2, "switches": [dict(V2["switches"][0], cool_until_ns=-5)]}),
     "switches[0].cool_until_ns -5 is out of range"),
    (json.dumps({"version": 2, "switches": [GOOD["switches"][0]]}), "switches[0] is"),
    ('{"version": 1, "switch', "not JSON"),
    (b"\xff\xfe", "not UTF-8 text"),
    ("", "not JSON"),
])
def test_a_state_file_of_the_wrong_shape_brings_the_engine_up_tripped(tmp_path, text, why):
    kill, state = _switches(tmp_path, text)
    try:
        assert kill.global_tripped and kill.is_tripped(Scope.GLOBAL)
        assert why in kill.failed_closed, kill.failed_closed
        assert kill.rows["reason"][0] == b"state file unusable"
        assert kill.rows["user"][0] == b"engine"
    finally:
        state.close()


def test_a_good_file_is_restored_as_it_was(tmp_path):
    kill, state = _switches(tmp_path, json.dumps(GOOD))
    try:
        assert not kill.global_tripped and kill.failed_closed is None
        assert kill.state(Scope.INSTRUMENT, 1) == KillState.HALTED  # version 1: tripped
        assert kill.rows["reason"][2] == b"halted"
    finally:
        state.close()
    assert parse_state(json.dumps(GOOD)) == [
        {"switch": "instrument:AAPL", "state": "halted", "auto": False, "ts_ns": 5,
         "cool_until_ns": 0, "user": "ana", "reason": "halted"}]


def test_every_scope_and_state_comes_back_as_it_was(tmp_path):
    kill, state = _switches(tmp_path, json.dumps(V2))
    try:
        assert kill.failed_closed is None
        assert kill.state(Scope.STRATEGY, 0) == KillState.REDUCING
        r = TABLE.row(Scope.STRATEGY, 0)
        assert kill.rows["auto"][r] and kill.rows["cool_until_ns"][r] == 60
        assert kill.state(Scope.VENUE, 0) == KillState.HALTED
        assert kill.state(Scope.INSTRUMENT, 0) == KillState.ACTIVE
        n = kill.persist()
        wait_until(lambda: kill.durable(n), 5, "the save")
        assert json.loads((tmp_path / "killswitches.json").read_text()) == V2
    finally:
        state.close()


def test_no_file_is_a_first_start_with_everything_armed(tmp_path):
    kill, state = _switches(tmp_path, None)
    try:
        assert not kill.rows["state"].any() and kill.failed_closed is None
    finally:
        state.close()


def test_a_save_counts_only_once_it_is_on_disk(tmp_path):
    kill, state = _switches(tmp_path, None)
    try:
        assert kill.set(Scope.GLOBAL, 0, KillState.HALTED, "ana", "runbook", 10, persist=False)
        n = kill.persist()
        assert n == 1
        wait_until(lambda: kill.durable(n), 5, "the save to be durable")
        assert parse_state((tmp_path / "killswitches.json").read_text()) == [
            {"switch": "global", "state": "halted", "auto": False, "ts_ns": 10,
             "cool_until_ns": 0, "user": "ana", "reason": "runbook"}]
        assert kill.persist_error is None
    finally:
        state.close()


def test_a_save_that_cannot_be_written_is_never_durable_and_says_why(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    kill, state = _switches(d, None)
    try:
        d.rmdir()  # the state directory is gone (a disk unmounted, a cleaner run amok)
        kill.set(Scope.GLOBAL, 0, KillState.HALTED, "ana", "runbook", 10, persist=False)
        n = kill.persist()
        wait_until(lambda: kill.persist_error, 5, "the write to fail")
        assert not kill.durable(n)
        assert "could not save the kill switch state to" in kill.persist_error
    finally:
        state.close()


def test_the_audit_trail_can_only_make_the_state_stricter(tmp_path):
    kill, state = _switches(tmp_path, json.dumps(GOOD))
    try:
        # re-armed in the audit: the file (AAPL tripped) stands; ESZ6 tripped later than the
        # file knows: tripped again; a trip older than the file's state is history
        tripped = kill.check_audit({"instrument:AAPL": (0, 99), "ESZ6": (True, 7),
                                    "global": (2, 0), "GONE": (2, 50),
                                    "strategy:pairs": (KillState.REDUCING, 8)})
        assert tripped == ["instrument:ESZ6", "strategy:pairs"]
        assert kill.state(Scope.STRATEGY, 0) == KillState.REDUCING
        assert kill.is_tripped(Scope.INSTRUMENT, 0) and kill.is_tripped(Scope.INSTRUMENT, 1)
        assert not kill.global_tripped
        assert kill.rows["reason"][1] == b"state file behind the audit"
        assert "behind the audit trail for instrument:ESZ6" in kill.failed_closed
    finally:
        state.close()
