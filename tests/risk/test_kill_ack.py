"""The ack that confirms a kill (or a re-arm) is sent only once the new state is on disk, and
says so when it cannot be saved; the switch itself acts at once either way."""

from __future__ import annotations

import json
import shutil

from engine.ipc import EngineClient, Scope, Verb
from engine.ipc.commands import confirmation_code


def _state(data_dir, instance) -> dict:
    path = data_dir / "state" / instance / "killswitches.json"
    return {e["switch"]: e for e in json.loads(path.read_text())["switches"]}


def test_the_kill_ack_comes_after_the_state_is_on_disk(engine_factory, instance, data_dir):
    e = engine_factory(instance).start()
    with EngineClient(instance) as c:
        for k in range(5):  # every ack finds the file already saying what it confirms
            state = ("reducing", "halted")[k % 2]
            ack = c.request(Verb.KILL, Scope.INSTRUMENT, 2, text=f"halt {k}", arg0=1 + k % 2)
            assert ack.accepted and f"TRIPPED {state.upper()}" in ack.reason
            got = _state(data_dir, instance)["instrument:AAPL"]
            assert got["state"] == state and got["reason"] == f"halt {k}"
            ack = c.request(Verb.REARM, Scope.INSTRUMENT, 2, text=f"resume {k}",
                            arg1=confirmation_code("instrument:AAPL"))
            assert ack.accepted and "re-armed" in ack.reason
            got = _state(data_dir, instance)["instrument:AAPL"]
            assert got["state"] == "active" and got["reason"] == f"resume {k}"
        assert c.request(Verb.PING).accepted  # acks after a held one still come, in order
    assert e.stop() == 0


def test_a_kill_whose_state_cannot_be_saved_says_so(engine_factory, instance, data_dir):
    e = engine_factory(instance).start()
    with EngineClient(instance) as c:
        shutil.rmtree(data_dir / "state" / instance)  # the state directory is gone
        ack = c.request(Verb.KILL, text="disk trouble")
        assert ack.accepted and ack.kill_tripped  # the switch acted
        assert "STATE NOT SAVED: could not save the kill switch state" in ack.reason
        assert c.status().kill_tripped
    assert e.stop() == 0
