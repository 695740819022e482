"""The desk's engine link when the engine resets this desk's command ring: the command that
waited fails at once with the reason, and the status line counts what the engine refused."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.link import EngineLink
from engine.ipc import Ack, AckStatus, SlotReset, Verb
from engine.ipc.layout import CACHE_LINE, RING_CONTROL, EngineState
from engine.ipc.publisher import EngineSegment

U64 = (1 << 64) - 1


def test_a_command_ring_reset_fails_the_waiting_command_with_the_reason(instance, qtbot):
    seg = EngineSegment(instance, [("A", 0.01, 10.0)], idle="sleep")
    link = EngineLink(instance, stale_ms=60_000)
    try:
        seg.set_state(EngineState.RUNNING)
        seg.heartbeat(time.monotonic_ns(), time.time_ns())
        link.poll()
        assert link.client is not None
        off = link.client.layout.slot_cmd_off  # in the desk's own slot object
        ctl = link.client.slot_seg.buf[off : off + RING_CONTROL].cast("Q")

        async def main():
            waiting = asyncio.ensure_future(link.command(Verb.PING, timeout=5))
            await asyncio.sleep(0)  # the command is in the ring
            ctl[CACHE_LINE // 8] = U64  # scribbled on before the engine looked
            assert seg.serve_commands(lambda c: Ack(c.cmd_id, AckStatus.ACCEPTED, "pong")) == 0
            link.poll()
            with pytest.raises(SlotReset, match="the engine dropped this desk's commands: "
                                                "command ring reset: its tail"):
                await waiting

        asyncio.run(main())
        ctl.release()
        seg.heartbeat(time.monotonic_ns(), time.time_ns())
        link.poll()
        assert link.health.state == "connected"
        assert link.health.text.endswith("· 1 desk inputs refused")
    finally:
        link.close()
        seg.close()
