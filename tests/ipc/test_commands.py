"""Commands through a real engine: exactly one ack each; bad ones rejected with a reason."""

import math
import os
import pwd
import re

from hypothesis import given, settings, strategies as st

from engine.core.roles import Role
from engine.ipc import AckStatus, AttachRefused, EngineClient, IpcError, Scope, Verb
from engine.ipc.commands import Command, check_command
from engine.ipc.layout import COMMAND_STRUCT, REJECT_REASONS, EngineState, H, segment_name
from engine.ipc.segment import Segment

from tests.conftest import wait_until

ME = pwd.getpwuid(os.geteuid()).pw_name


def test_every_command_gets_exactly_one_ack(engine):
    with EngineClient(engine.instance) as c:
        sent, acks = [], []
        for i in range(300):
            sent.append(c.send(Verb.PING))
            if i % 50 == 49:  # the rings hold 64: read acks while the engine catches up
                wait_until(lambda: acks.extend(c.poll_acks()) or len(acks) == i + 1, 5,
                           "acks")
        wait_until(lambda: acks.extend(c.poll_acks()) or len(acks) >= 300, 10, "300 acks")
        assert [a.cmd_id for a in acks] == sent
        assert all(a.status is AckStatus.ACCEPTED for a in acks)
        assert acks[0].reason.startswith("pong")
        # and no stray second ack turns up later
        c.request(Verb.PING)
        assert c.poll_acks() == []
        assert c.counter(H.CMDS_ACCEPTED) == 301


def reject_reason(c, verb, scope=Scope.GLOBAL, scope_id=0, **kw):
    ack = c.request(verb, scope, scope_id, **kw)
    assert ack.status is AckStatus.REJECTED, ack
    return ack.reason


def test_bad_commands_are_rejected_with_the_reason_and_the_engine_goes_on(engine):
    with EngineClient(engine.instance) as c:
        assert reject_reason(c, 99) == "unknown verb 99"
        assert reject_reason(c, Verb.KILL, 7).startswith("bad scope 7")
        assert reject_reason(c, Verb.KILL, Scope.INSTRUMENT, 42) == "unknown instrument id 42 (engine has 3 instruments)"
        assert reject_reason(c, Verb.KILL, Scope.GLOBAL, 3).startswith("bad scope id 3")
        assert reject_reason(c, Verb.KILL, arg0=math.nan) == "argument arg0 is nan (must be a finite number)"
        assert reject_reason(c, Verb.KILL, arg1=math.inf).startswith("argument arg1 is inf")
        assert reject_reason(c, Verb.REARM) == "REARM needs a reason"
        assert reject_reason(c, Verb.REARM, text="all good") == "global kill switch is not tripped"
        assert c.counter(H.CMDS_REJECTED) == 8
        hb = c.status().heartbeat_count
        wait_until(lambda: c.status().heartbeat_count > hb + 5, 5, "heartbeat to go on")
        assert c.request(Verb.PING).accepted
        assert not c.status().kill_tripped


def test_the_engine_grants_the_os_users_role_whatever_the_desk_claims(engine_factory, instance):
    """Who a desk is comes from the kernel (SO_PEERCRED at attach), its role from [users]:
    a client that calls itself bob, a risk manager, is still this OS user, a viewer here."""
    e = engine_factory(instance, users=f'{ME} = "viewer"\nbob = "risk_manager"').start()
    with EngineClient(instance, user="bob", role=Role.RISK_MANAGER) as c:
        assert (c.user, c.role) == (ME, Role.VIEWER)  # what the engine granted
        assert reject_reason(c, Verb.KILL) == f"user {ME!r} is viewer here and may not KILL"
        ack = c.request(Verb.PING)
        assert ack.value == Role.VIEWER and ack.reason == "pong; you are viewer"
        assert [(d.pid, d.uid, d.user, d.role) for d in c.desks()] == [
            (os.getpid(), os.geteuid(), ME, Role.VIEWER)]
    assert e.stop() == 0


def test_a_user_the_profile_does_not_list_cannot_attach(engine_factory, instance):
    e = engine_factory(instance, users='somebody-else = "risk_manager"').start(wait=False)
    why = (f"engine {instance!r} refused this desk: OS user {ME!r} \\(uid {os.geteuid()}\\) is "
           f"not in \\[users\\] of profile {e.profile} and it has no \"\\*\" entry: add the "
           "user there")

    def refused(commands):
        try:
            EngineClient(instance, commands=commands).close()
        except AttachRefused as err:
            return str(err)
        except IpcError:  # not up yet
            return None
        raise AssertionError("an unlisted user attached")

    assert re.match(why, wait_until(lambda: refused(True), 20, "the refusal"))
    assert re.match(why, refused(False))  # not even to watch
    seg = Segment.attach(segment_name(instance), readonly=True)  # ours: read it by name
    try:
        assert seg.q[H.REJECTS // 8 + REJECT_REASONS.index("refused")] >= 2
        wait_until(lambda: seg.q[H.STATE // 8] == EngineState.RUNNING, 20, "the engine to run")
    finally:
        seg.close()
    assert e.proc.poll() is None  # the engine goes on
    assert e.stop() == 0


def test_raw_garbage_in_the_command_ring_is_rejected_not_fatal(engine):
    with EngineClient(engine.instance) as c:
        ring = c._cmd
        # a record no desk would write: huge verb, negative scope id, NaN, bytes that are not UTF-8
        ring.try_push(12345, 0, 65535, 65535, -5, math.nan, math.nan, b"\xff\xfe", b"\xc3", 255, b"", 0, b"\x80" * 48)
        c._ring_bell()
        acks = wait_until(c.poll_acks, 5, "an ack for the garbage record")
        assert acks[0].cmd_id == 12345 and acks[0].status is AckStatus.REJECTED
        assert acks[0].reason == "unknown verb 65535"
        assert c.request(Verb.PING).accepted


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(min_size=COMMAND_STRUCT.size, max_size=COMMAND_STRUCT.size))
def test_any_128_bytes_decode_and_check_without_raising(raw):
    cmd = Command.from_fields(COMMAND_STRUCT.unpack(raw))
    reason = check_command(cmd, 3)
    assert reason is None or isinstance(reason, str) and reason
    if reason is None:
        assert cmd.verb in set(Verb) and cmd.scope in set(Scope)
        assert math.isfinite(cmd.arg0) and math.isfinite(cmd.arg1)


def test_command_fields_round_trip():
    cmd = Command(cmd_id=7, verb=Verb.KILL, scope=Scope.INSTRUMENT, scope_id=2, arg0=1.5,
                  user="ålice", workstation="ws-1", role=2, text="why: ✓", ts_ns=99)
    assert Command.from_fields(COMMAND_STRUCT.unpack(COMMAND_STRUCT.pack(*cmd.fields()))) == cmd
    long = Command(cmd_id=1, verb=1, user="é" * 20)  # 40 bytes: cut at 16 without splitting a char
    back = Command.from_fields(COMMAND_STRUCT.unpack(COMMAND_STRUCT.pack(*long.fields())))
    assert back.user == "é" * 8


def test_a_desk_that_reads_no_acks_holds_back_its_commands_without_losing_one(engine):
    with EngineClient(engine.instance) as c:
        cap = c.layout.cmd_capacity
        sent = [c.send(Verb.PING) for _ in range(cap)]
        wait_until(lambda: len(c._ack) == cap, 5, "the ack ring to fill")
        sent += [c.send(Verb.PING) for _ in range(10)]  # the engine must leave these queued
        wait_until(lambda: c.counter(H.ACK_BACKPRESSURE) > 0, 5, "back-pressure to be counted")
        assert len(c._cmd) == 10
        acks = []
        wait_until(lambda: acks.extend(c.poll_acks()) or len(acks) == cap + 10, 5, "all acks")
        assert [a.cmd_id for a in acks] == sent
