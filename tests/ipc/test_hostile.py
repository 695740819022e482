"""Clients cannot crash the engine through shared memory.

Every word a desk can write is scribbled on here: the command ring's and the ack ring's
control words, the records, the slot header (all in the desk's own slot object); and the
header's words the engine keeps counts in (which a process of the engine's own user could
reach by opening the segment by name: desks map it read-only).
The engine drops what is impossible, counts it by reason, resets the slot and tells the
desk; it never raises. Then a real engine is scribbled on by a real process for a few seconds
while an honest desk keeps getting its PINGs answered.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pwd
import random
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.roles import Role
from engine.ipc import AckStatus, EngineClient, Scope, Verb
from engine.ipc.client import SlotReset
from engine.ipc.commands import Ack, Command
from engine.ipc.layout import (
    CACHE_LINE,
    COMMAND_STRUCT,
    REJECT_REASONS,
    RING_CONTROL,
    SLOT_OWNER_PID,
    SLOT_RESETS,
    H,
    command_seal,
)
from engine.ipc.publisher import EngineSegment
from engine.ipc.rings import EventRingReader
from tests.conftest import wait_until

U64 = (1 << 64) - 1
HEAD, TAIL = 0, CACHE_LINE // 8


def pong(cmd: Command) -> Ack:
    return Ack(cmd.cmd_id, AckStatus.ACCEPTED, "pong")


class Desk:
    """An engine segment in this process, one desk attached to it, and raw access to the
    desk's slot: the engine side is served by hand (``serve``)."""

    def __init__(self, instance: str) -> None:
        self.shm = EngineSegment(instance, [("A", 0.01, 10.0)], idle="sleep")
        self.c = EngineClient(instance)
        lay = self.c.layout
        buf = self.c.slot_seg.buf  # the desk's own slot object
        self.cap = lay.cmd_capacity
        cmd_off, ack_off = lay.slot_cmd_off, lay.slot_ack_off
        self.cmd_ctl = buf[cmd_off : cmd_off + RING_CONTROL].cast("Q")
        self.ack_ctl = buf[ack_off : ack_off + RING_CONTROL].cast("Q")
        self.hdr = buf[:CACHE_LINE].cast("Q")
        self.cmd_rec = cmd_off + RING_CONTROL
        self.buf = buf
        self.handled: list[Command] = []

    def serve(self) -> int:
        def handle(cmd: Command) -> Ack:
            self.handled.append(cmd)
            return pong(cmd)

        return self.shm.serve_commands(handle)

    def rejects(self) -> dict[str, int]:
        return {k: v for k, v in self.c.rejects().items() if v}

    def write_record(self, index: int, fields: tuple, *, seal: int | None = None) -> None:
        """Write a command record at ring index ``index`` (sealed for it unless told) and
        move the tail past it, as a desk would (or not)."""
        off = self.cmd_rec + (index & (self.cap - 1)) * COMMAND_STRUCT.size
        COMMAND_STRUCT.pack_into(self.buf, off, *fields[:11],
                                 command_seal(index) if seal is None else seal, fields[12])
        self.cmd_ctl[TAIL] = index + 1

    def ping_round_trip(self) -> Ack:
        cmd_id = self.c.send(Verb.PING)
        assert self.serve() == 1
        acks = self.c.poll_acks()
        assert [a.cmd_id for a in acks] == [cmd_id], acks
        return acks[0]

    def close(self) -> None:
        for v in (self.cmd_ctl, self.ack_ctl, self.hdr):
            v.release()
        self.c.close()
        self.shm.close()


@pytest.fixture
def desk(instance):
    d = Desk(instance)
    yield d
    d.close()


def fields(cmd_id=7, verb=Verb.PING, scope=Scope.GLOBAL, scope_id=0, arg0=0.0, arg1=0.0,
           user=b"desk", workstation=b"ws", role=0, text=b""):
    return (cmd_id, 0, int(verb), int(scope), scope_id, arg0, arg1, user, workstation, role,
            b"", 0, text)


# -- ring control words --------------------------------------------------------------------------
def test_an_ack_head_past_its_tail_is_reset_and_the_ping_still_answered(desk):
    """Was: ``ValueError: __len__() should return >= 0`` in the engine's loop."""
    desk.ping_round_trip()
    desk.ack_ctl[HEAD] = desk.ack_ctl[TAIL] + 5
    cmd_id = desk.c.send(Verb.PING)
    assert desk.serve() == 1
    acks = desk.c.poll_acks()
    assert [(a.cmd_id, a.status) for a in acks] == [(cmd_id, AckStatus.ACCEPTED)]
    assert desk.rejects() == {"ack_ring": 1}
    assert desk.hdr[SLOT_RESETS // 8] == 1 and desk.c.resets == 1
    assert desk.ack_ctl[HEAD] == desk.ack_ctl[TAIL] == 2


@pytest.mark.parametrize("ack_head", [U64, 1 << 63, 200])
def test_an_ack_ring_over_a_lap_behind_or_far_ahead_is_reset(desk, ack_head):
    desk.ping_round_trip()
    desk.ack_ctl[HEAD] = ack_head  # 200: the engine's tail 1 is 199 behind (a "negative" count)
    desk.ping_round_trip()
    assert desk.rejects() == {"ack_ring": 1}


@pytest.mark.parametrize("tail_of", [
    lambda head, cap: head - 1,  # behind the head
    lambda head, cap: head + cap + 1,  # more than a lap ahead
    lambda head, cap: U64,  # huge (-1 as a signed word)
    lambda head, cap: 1 << 63,  # the most negative signed word
])
def test_an_impossible_command_tail_resets_the_ring_and_the_desk_is_told(desk, tail_of):
    for _ in range(3):
        desk.ping_round_trip()
    tail = tail_of(3, desk.cap)
    desk.cmd_ctl[TAIL] = tail
    assert desk.serve() == 0
    assert desk.rejects() == {"cmd_ring": 1}
    assert desk.cmd_ctl[HEAD] == desk.cmd_ctl[TAIL] == 3  # back to the engine's own head
    (notice,) = desk.c.poll_acks()
    assert notice.cmd_id == 0 and notice.status is AckStatus.REJECTED
    assert notice.reason == f"command ring reset: its tail {tail} is impossible with head 3"
    assert desk.c.resets == 1
    assert len(desk.handled) == 3  # nothing from the bad ring reached a handler
    desk.ping_round_trip()  # and the slot works again


def test_a_scribbled_engine_owned_head_is_written_back_and_the_commands_still_served(desk):
    desk.ping_round_trip()
    desk.cmd_ctl[HEAD] = 1_000_000  # the engine's word: it keeps its own copy
    desk.write_record(1, fields(cmd_id=11))
    assert desk.serve() == 1
    assert desk.cmd_ctl[HEAD] == 2 and desk.rejects() == {"cmd_ring": 1}
    assert [a.cmd_id for a in desk.c.poll_acks()] == [11]
    assert desk.c.resets == 1


def test_both_rings_impossible_at_once(desk):
    desk.cmd_ctl[TAIL] = U64
    desk.ack_ctl[HEAD] = U64
    desk.ack_ctl[TAIL] = 12345  # the engine's word: ignored, rewritten
    assert desk.serve() == 0
    assert desk.rejects() == {"cmd_ring": 1, "ack_ring": 1}
    assert desk.hdr[SLOT_RESETS // 8] == 2
    (notice,) = desk.c.poll_acks()
    assert notice.cmd_id == 0 and notice.reason.startswith("command ring reset")
    desk.ping_round_trip()


def test_a_full_ack_ring_with_a_scribbled_tail_is_not_a_deadlock(desk):
    """The desk's head a full ring behind the engine's tail, and the engine's tail word
    scribbled: the desk cannot read what would free the ring, so the engine writes its word
    back (it used to wait for the desk for ever)."""
    for _ in range(desk.cap):
        desk.ping_round_trip()
    desk.ack_ctl[HEAD] = 0  # the head a whole ring behind the engine's tail (cap): full
    desk.ack_ctl[TAIL] = 14454
    cmd_id = desk.c.send(Verb.PING)
    assert desk.serve() == 0  # full: the command waits, never dropped
    assert len(desk.c.poll_acks()) == desk.cap  # the desk can read the ring again
    assert desk.serve() == 1
    assert [a.cmd_id for a in desk.c.poll_acks()] == [cmd_id]
    assert desk.rejects() == {"ack_ring": 1}


# -- records -------------------------------------------------------------------------------------
def test_a_record_the_desk_never_finished_is_dropped_as_torn(desk):
    """A tail moved over a slot whose record has no seal (a desk that died mid-write)."""
    desk.write_record(0, fields(cmd_id=21), seal=0)
    assert desk.serve() == 1
    (ack,) = desk.c.poll_acks()
    assert ack.cmd_id == 21 and ack.status is AckStatus.REJECTED
    assert ack.reason == "command at ring index 0 was not finished or is stale (seal 0x0)"
    assert desk.rejects() == {"torn": 1} and desk.handled == []
    desk.ping_round_trip()


def test_a_record_left_from_the_last_lap_is_dropped_as_torn(desk):
    for _ in range(desk.cap):  # fill a whole lap
        desk.ping_round_trip()
    desk.cmd_ctl[TAIL] = desk.cap + 1  # over the old record at index 0, never rewritten
    assert desk.serve() == 1
    assert desk.rejects() == {"torn": 1}
    assert desk.c.poll_acks()[0].status is AckStatus.REJECTED
    assert len(desk.handled) == desk.cap


@pytest.mark.parametrize("bad, reason, said", [
    ({"cmd_id": 0}, "bad_id", "command id 0"),
    ({"verb": 99}, "bad_verb", "unknown verb 99"),
    ({"scope": 7}, "bad_scope", "bad scope 7 (expected 0=global, 1=instrument, 2=strategy, 3=venue, 4=account, "
                                     "5=trader)"),
    ({"scope": Scope.INSTRUMENT, "scope_id": 1}, "bad_scope",
     "unknown instrument id 1 (engine has 1 instruments)"),
    ({"scope": Scope.INSTRUMENT, "scope_id": -1}, "bad_scope",
     "unknown instrument id -1 (engine has 1 instruments)"),
    ({"scope_id": 3}, "bad_scope", "bad scope id 3 for global scope (must be 0)"),
    ({"arg0": math.nan}, "bad_number", "argument arg0 is nan (must be a finite number)"),
    ({"arg1": -math.inf}, "bad_number", "argument arg1 is -inf (must be a finite number)"),
    ({"verb": Verb.ORDER, "scope": Scope.INSTRUMENT, "arg0": 1e300, "arg1": 10.0,
      "text": b"X buy"},
     "bad_number", "quantity must be a whole number 1..2147483647, was 1e+300"),
    ({"verb": Verb.ORDER, "scope": Scope.INSTRUMENT, "arg0": -5, "arg1": 10.0,
      "text": b"X buy"},
     "bad_number", "quantity must be a whole number 1..2147483647, was -5"),
    ({"workstation": b"ws\xc3"}, "bad_text", "workstation or text is not UTF-8"),
    ({"text": b"\x80" * 48}, "bad_text", "workstation or text is not UTF-8"),
])
def test_garbage_in_a_field_is_rejected_by_reason_before_any_handler(desk, bad, reason, said):
    desk.write_record(0, fields(cmd_id=bad.get("cmd_id", 31), **{k: v for k, v in bad.items()
                                                                  if k != "cmd_id"}))
    assert desk.serve() == 1
    (ack,) = desk.c.poll_acks()
    assert (ack.cmd_id, ack.status, ack.reason) == (bad.get("cmd_id", 31), AckStatus.REJECTED,
                                                    said)
    assert desk.rejects() == {reason: 1}
    assert desk.c.counter(H.CMDS_REJECTED) == 1 and desk.handled == []
    desk.ping_round_trip()
    assert desk.c.counter(H.CMDS_ACCEPTED) == 1


@pytest.mark.parametrize("user, role", [(b"root", 2), (b"\xff\xfe", 9), (b"", 255)])
def test_the_records_user_and_role_are_ignored_the_granted_ones_stamped(desk, user, role):
    """Whatever a desk writes as its user and role (a name, garbage, a role that does not
    exist), the handler sees who the kernel said it is and the role the engine granted."""
    desk.write_record(0, fields(cmd_id=51, user=user, role=role))
    assert desk.serve() == 1
    (cmd,) = desk.handled
    assert (cmd.user, cmd.role) == (pwd.getpwuid(os.geteuid()).pw_name, Role.VIEWER)
    assert desk.rejects() == {}


def test_text_after_the_nul_padding_is_not_read(desk):
    desk.write_record(0, fields(cmd_id=41, text=b"why\0\xff\xff"))
    desk.serve()
    assert desk.handled[0].text == "why" and desk.rejects() == {}


def test_an_engine_error_while_serving_is_counted_and_the_slot_reset(desk):
    def bad_value(cmd: Command) -> Ack:  # an ack no ring can carry: a bug, not a desk's fault
        return Ack(cmd.cmd_id, AckStatus.ACCEPTED, "pong", value=1 << 70)

    desk.c.send(Verb.PING)
    assert desk.shm.serve_commands(bad_value) == 0
    assert desk.rejects() == {"slot_error": 1}
    (notice,) = desk.c.poll_acks()
    assert notice.cmd_id == 0 and "engine error" in notice.reason
    desk.ping_round_trip()


def test_a_request_whose_command_a_reset_swallowed_raises_slot_reset(desk):
    """The engine finds the ring corrupt with our command in it: request says so at once."""
    def engine_side() -> None:
        wait_until(lambda: desk.cmd_ctl[TAIL] != desk.cmd_ctl[HEAD], 5, "the command")
        desk.cmd_ctl[TAIL] = U64  # scribbled on before the engine looked
        desk.serve()

    t = threading.Thread(target=engine_side)
    t.start()
    try:
        with pytest.raises(SlotReset, match="reset this desk's slot .* before answering PING: "
                                            "command ring reset: its tail"):
            desk.c.request(Verb.PING, timeout=10)
    finally:
        t.join()
    assert desk.c.resets == 1 and desk.handled == []
    desk.ping_round_trip()


# -- anything at all ------------------------------------------------------------------------------
words = st.one_of(st.integers(0, U64), st.integers(0, 200), st.sampled_from([U64, 1 << 63]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmd_head=words, cmd_tail=words, ack_head=words, ack_tail=words,
       records=st.binary(min_size=0, max_size=64 * 128), slot_header=st.binary(max_size=64))
def test_any_words_and_bytes_in_a_slot_never_raise_and_the_slot_recovers(
        desk, cmd_head, cmd_tail, ack_head, ack_tail, records, slot_header):
    off = desk.cmd_rec
    desk.buf[off : off + len(records)] = records
    desk.buf[: len(slot_header)] = slot_header
    desk.cmd_ctl[HEAD], desk.cmd_ctl[TAIL] = cmd_head, cmd_tail
    desk.ack_ctl[HEAD], desk.ack_ctl[TAIL] = ack_head, ack_tail
    resets = desk.c.resets
    for _ in range(4):  # a lap of garbage records at most: served while the desk reads acks
        desk.serve()
        desk.c.poll_acks()
    if desk.c.resets > resets:  # the desk saw its slot reset: its header is written back
        assert desk.hdr[SLOT_OWNER_PID // 8] == os.getpid()
    assert desk.serve() == 0
    desk.ping_round_trip()


def test_scribbled_header_counters_and_sequences_are_never_read_back(desk):
    q = desk.shm.q  # the engine's user can open the segment read-write by name
    for off in (H.HB_COUNT, H.CMDS_ACCEPTED, H.CMDS_REJECTED, H.ACK_BACKPRESSURE,
                *(H.REJECTS + 8 * k for k in range(len(REJECT_REASONS)))):
        q[off // 8] = U64
    book = desk.shm.books[0]
    book._seq[0] = U64  # odd and at the top: "+= 1" would overflow the word
    desk.shm.heartbeat(1, 2)
    desk.shm.publish_book(0, 5, 1, [1.0] * 10, [1.0] * 10, [2.0] * 10, [1.0] * 10, 1.5, 1.0)
    desk.ping_round_trip()
    desk.write_record(1, fields(cmd_id=0))
    desk.serve()
    assert q[H.HB_COUNT // 8] == 1 and q[H.CMDS_ACCEPTED // 8] == 1
    assert desk.c.rejects()["bad_id"] == 1
    assert book.read_seq() == 2 and desk.c.read_book(0)[0]["ts_event_ns"] == 5


def test_a_reader_follows_a_corrupt_event_tail_instead_of_raising(desk):
    ev = desk.shm.events
    reader = EventRingReader(desk.c.seg.buf, desk.c.layout.events_off, ev.capacity)
    ev.publish(1, 1, 20, -1, b"one")
    assert reader.poll()["text"].tolist() == [b"one"]
    ctl = ev._ctl
    ctl[TAIL] = U64
    ctl[0] = 3  # the tail intent too
    assert len(reader.poll()) == 0 and reader.poll_one() is None
    ev.publish(2, 1, 20, -1, b"two")  # the engine's own tail (1) was never read back
    assert len(reader.poll()) == 0 and reader.cursor == 2  # the reader follows the tail down
    ev.publish(3, 1, 20, -1, b"three")
    assert reader.poll()["text"].tolist() == [b"three"]


def test_the_command_ring_refuses_and_says_so_when_its_words_are_corrupt(desk):
    desk.cmd_ctl[HEAD] = 10  # tail 0: behind the head
    with pytest.raises(Exception, match="command ring of this desk's slot .* is corrupt"):
        desk.c.send(Verb.PING)
    desk.serve()  # the engine resets it
    desk.c.poll_acks()
    desk.ping_round_trip()


# -- a real engine, a real scribbler ------------------------------------------------------------
def _scribbler(instance: str, seconds: float, seed: int, started) -> None:
    """A desk process that claims a slot and writes random words and bytes into all of it."""
    c = EngineClient(instance)
    lay, buf = c.layout, c.slot_seg.buf  # all it can write: its own slot
    slot_off, cmd_off, ack_off = 0, lay.slot_cmd_off, lay.slot_ack_off
    cmd = buf[cmd_off : cmd_off + RING_CONTROL].cast("Q")
    ack = buf[ack_off : ack_off + RING_CONTROL].cast("Q")
    rng = random.Random(seed)
    rec_span = (cmd_off + RING_CONTROL, ack_off)  # the command records
    ack_span = (ack_off + RING_CONTROL, ack_off + lay.ack_ring_size)
    started.set()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        word = rng.choice((rng.getrandbits(64), U64, 1 << 63, cmd[HEAD] + rng.randint(-3, 70),
                           ack[TAIL] + rng.randint(-70, 3), 0))
        word &= U64
        what = rng.randrange(6)
        if what == 0:
            cmd[TAIL] = word
        elif what == 1:
            ack[HEAD] = word
        elif what == 2:
            cmd[rng.choice((HEAD, TAIL))], ack[rng.choice((HEAD, TAIL))] = word, word ^ 1
        elif what == 3:
            a, b = rec_span if rng.random() < 0.7 else ack_span
            at = rng.randrange(a, b - 16)
            buf[at : at + 16] = rng.randbytes(16)
        elif what == 4:
            at = slot_off + rng.randrange(0, 48)
            buf[at : at + 8] = rng.randbytes(8)
        else:  # a plausible record with one field wrong, properly sealed and published
            tail = cmd[HEAD]
            off = cmd_off + RING_CONTROL + (tail % lay.cmd_capacity) * COMMAND_STRUCT.size
            f = list(fields(cmd_id=rng.getrandbits(64), verb=rng.randrange(0, 9),
                            scope=rng.randrange(0, 3), scope_id=rng.randrange(-2, 3),
                            arg0=rng.choice((1.0, math.nan, math.inf, 1e300, -1.0)),
                            role=rng.randrange(0, 5),
                            text=rng.choice((b"ok", b"\xff\xfe", b""))))
            f[11] = command_seal(tail)
            COMMAND_STRUCT.pack_into(buf, off, *f)
            cmd[TAIL] = (tail + 1) & U64
    for v in (cmd, ack):
        v.release()
    c.close()


def test_a_scribbling_desk_cannot_stop_the_engine_answering_another(engine, data_dir):
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    vandal = ctx.Process(target=_scribbler, args=(engine.instance, 3.0, 1234, started))
    vandal.start()
    try:
        with EngineClient(engine.instance) as c:
            wait_until(started.is_set, 20, "the scribbler to claim its slot")
            pings = 0
            while vandal.is_alive():
                ack = c.request(Verb.PING, timeout=5.0)
                assert ack.accepted and ack.reason.startswith("pong"), ack
                pings += 1
            vandal.join(10)
            assert vandal.exitcode == 0
            assert engine.proc.poll() is None  # alive
            hb = c.status().heartbeat_count
            wait_until(lambda: c.status().heartbeat_count > hb + 5, 5, "the heartbeat to go on")
            assert c.request(Verb.PING).accepted
            rejects = c.status().rejects
            assert c.resets == 0  # nothing touched the honest desk's slot
    finally:
        if vandal.is_alive():
            vandal.kill()
            vandal.join()
    assert pings > 50
    for reason in ("cmd_ring", "ack_ring", "torn", "bad_verb", "bad_number", "bad_text"):
        assert rejects[reason] > 0, rejects
    assert rejects["slot_error"] == 0, rejects
    log = data_dir / "logs" / f"engine-{engine.instance}.log"
    # Log records are written by a listener thread, so the file catches up a little later.
    wait_until(lambda: "dropped (torn): command at ring index" in log.read_text(), 10,
               "the engine to log what it dropped")
    text = log.read_text()
    assert "dropped (cmd_ring): command ring" in text and "dropped (ack_ring): ack ring" in text
    assert engine.stop() == 0
