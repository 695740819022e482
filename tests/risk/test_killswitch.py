"""Kill switch state: fails closed on any file that is not exactly what the engine writes, is
durable (file and directory synced) before a save counts, and the audit trail can only make
it stricter."""

from __future__ import annotations

import json

import pytest

from engine.core.records import Scope
from engine.risk.killswitch import KillStateFile, KillSwitches, parse_state
from tests.conftest import wait_until

SYMBOLS = ["ESZ6", "AAPL"]
GOOD = {"version": 1, "switches": [
    {"switch": "AAPL", "tripped": True, "ts_ns": 5, "user": "ana", "reason": "halted"}]}


def _switches(tmp_path, text: str | bytes | None):
    path = tmp_path / "killswitches.json"
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    state = KillStateFile(path)
    try:
        return KillSwitches(SYMBOLS, state), state
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
    ('{"version": 2, "switches": []}', "version 2 is not 1"),
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
        assert kill.is_tripped(Scope.INSTRUMENT, 1) and kill.rows["reason"][2] == b"halted"
    finally:
        state.close()
    assert parse_state(json.dumps(GOOD)) == GOOD["switches"]


def test_no_file_is_a_first_start_with_everything_armed(tmp_path):
    kill, state = _switches(tmp_path, None)
    try:
        assert not kill.rows["tripped"].any() and kill.failed_closed is None
    finally:
        state.close()


def test_a_save_counts_only_once_it_is_on_disk(tmp_path):
    kill, state = _switches(tmp_path, None)
    try:
        assert kill.set(Scope.GLOBAL, 0, True, "ana", "runbook", 10, persist=False)
        n = kill.persist()
        assert n == 1
        wait_until(lambda: kill.durable(n), 5, "the save to be durable")
        assert parse_state((tmp_path / "killswitches.json").read_text()) == [
            {"switch": "global", "tripped": True, "ts_ns": 10, "user": "ana",
             "reason": "runbook"}]
        assert kill.persist_error is None
    finally:
        state.close()


def test_a_save_that_cannot_be_written_is_never_durable_and_says_why(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    kill, state = _switches(d, None)
    try:
        d.rmdir()  # the state directory is gone (a disk unmounted, a cleaner run amok)
        kill.set(Scope.GLOBAL, 0, True, "ana", "runbook", 10, persist=False)
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
        tripped = kill.check_audit({"AAPL": (False, 99), "ESZ6": (True, 7),
                                    "global": (True, 0), "GONE": (True, 50)})
        assert tripped == ["ESZ6"]
        assert kill.is_tripped(Scope.INSTRUMENT, 0) and kill.is_tripped(Scope.INSTRUMENT, 1)
        assert not kill.global_tripped
        assert kill.rows["reason"][1] == b"state file behind the audit"
        assert "behind the audit trail for ESZ6" in kill.failed_closed
    finally:
        state.close()
