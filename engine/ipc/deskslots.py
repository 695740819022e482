"""The engine's side of the desk slots: every word a desk writes is checked on each read.

Each desk slot is its own memory object (``layout``'s SLOT OBJECT, made by the attach thread
when a desk attaches: ``engine.ipc.attach``) holding a command ring (the desk produces, the
engine consumes) and an ack ring (the engine produces, the desk consumes). New slots and
freed ones reach the loop through ``inbox`` (the attach thread appends, ``serve`` takes); the
loop looks only at the slots of attached desks. Who sent a command is what the kernel said at
attach: the user and role the engine granted are stamped on every ``Command`` here, before any
handler sees it; the user and role bytes of the record (the desk's claim) are never read.
The desk can write any byte of its slot, so the engine trusts none of what it writes there:

- It keeps its own copy of the indices it owns (the command ring's head, the ack ring's tail)
  and only stores them; the words desks own (the command ring's tail, the ack ring's head)
  are read and checked against those copies: ``0 < tail - head <= capacity`` for commands,
  ``0 <= tail - head <= capacity`` for acks. A look at an idle slot is two comparisons: the
  command ring's two words against the engine's head (a head word someone else wrote would
  make the desk misjudge its room: it is written back, and counted).
- A slot whose words are impossible is reset: the engine rewrites both words of that ring to
  its own index (what was in the command ring is dropped; what was in the ack ring is given
  up), counts it, and bumps the slot header's ``SLOT_RESETS`` word so the desk can see it
  happened (``EngineClient`` resyncs). After a command ring reset the desk is also sent an ack
  with command id 0, REJECTED, saying why.
- A handler may answer with a ``PendingAck`` (a kill's ack waits until the switch's new state
  is durable): it is sent when its ``poll()`` gives the ack; acks of that desk after it wait
  behind it, in order, and the commands behind it are still served (their effects are not
  delayed). ``flush`` sends what became ready; ``serve`` calls it first.
- Each record is checked before any handler sees it (``_decode``): its seal (written last by
  the desk: a record half written, or one left from an earlier lap, has the wrong one), a
  command id other than 0, a verb and scope that exist, a scope id in range, finite numbers,
  an order quantity in range, UTF-8 workstation and text. A bad record is answered with a
  REJECTED ack and its reason, and counted.

Every drop is counted by reason in the header (``H.REJECTS``, ``REJECT_REASONS``) and logged,
at most once a second per reason. ``serve`` never raises: an unexpected error while serving a
slot (an engine bug) resets that slot and is counted as ``slot_error``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from engine.ipc.commands import (
    MAX_ORDER_QTY,
    Ack,
    AckStatus,
    Command,
    PendingAck,
    Scope,
    Verb,
    check_command,
)
from engine.ipc.layout import (
    ACK_STRUCT,
    CACHE_LINE,
    COMMAND_STRUCT,
    REJECT_REASONS,
    RING_CONTROL,
    SLOT_HEADER,
    SLOT_RESETS,
    H,
    Layout,
    command_seal,
)

__all__ = ["DeskSlots"]

_HEAD, _TAIL = 0, CACHE_LINE // 8  # u64 indices of a ring's control words
_VERBS = frozenset(int(v) for v in Verb)
_GLOBAL, _INSTRUMENT, _ORDER = int(Scope.GLOBAL), int(Scope.INSTRUMENT), int(Verb.ORDER)
(CMD_RING, ACK_RING, TORN, BAD_ID, BAD_VERB, BAD_SCOPE, BAD_NUMBER, BAD_TEXT, REFUSED,
 SLOT_ERROR) = range(len(REJECT_REASONS))
_LOG_EVERY_NS = 1_000_000_000


def _utf8(raw: bytes) -> str:
    """NUL-padded UTF-8; raises UnicodeDecodeError for anything else."""
    return raw.split(b"\0", 1)[0].decode()


class _Slot:
    """One desk slot as the engine sees it: views of its words, the engine's own indices and
    who the desk is (``engine.ipc.attach.Granted``)."""

    __slots__ = ("ack", "ack_rec", "ack_tail", "buf", "cmd", "cmd_rec", "hdr", "head", "k",
                 "mm", "resets", "role", "user", "waiting", "who")

    def __init__(self, mm, lay: Layout, k: int, who) -> None:
        self.k = k
        self.mm = mm
        self.buf = buf = memoryview(mm)
        cmd_off, ack_off = lay.slot_cmd_off, lay.slot_ack_off
        self.cmd = buf[cmd_off : cmd_off + RING_CONTROL].cast("Q")
        self.ack = buf[ack_off : ack_off + RING_CONTROL].cast("Q")
        self.hdr = buf[:SLOT_HEADER].cast("Q")
        self.cmd_rec = cmd_off + RING_CONTROL
        self.ack_rec = ack_off + RING_CONTROL
        self.head = 0  # the command ring's head: ours (the object starts zeroed)
        self.ack_tail = 0  # the ack ring's tail: ours
        self.resets = 0
        self.waiting: deque = deque()  # acks not sent yet: a PendingAck first, in order
        self.who = who
        self.user = who.user  #: the OS user the kernel named at attach
        self.role = who.role  #: the role the engine granted that user

    def release(self) -> None:
        self.cmd.release()
        self.ack.release()
        self.hdr.release()
        self.buf.release()
        try:
            self.mm.close()
        except BufferError:  # a view still points into it: unmapped when it is collected
            pass


class DeskSlots:
    """Serve the command rings of every desk slot of a segment (module docstring)."""

    def __init__(self, q: memoryview, lay: Layout,
                 log: Callable[[str], None], scope_sizes: dict[int, int] | None = None) -> None:
        """``scope_sizes``: scope kind -> how many the engine has (default: instruments)."""
        self._q = q
        self._log = log
        self._layout = lay
        self.capacity = lay.cmd_capacity
        self._mask = lay.cmd_capacity - 1
        self._n_instruments = lay.n_instruments
        self._sizes = scope_sizes or {_INSTRUMENT: lay.n_instruments}
        self.slots: list[_Slot | None] = [None] * lay.max_desks  #: by slot index
        self.active: list[_Slot] = []  #: the slots of attached desks
        #: ("attach", k, mmap, Granted) / ("detach", k) from the attach thread, in order
        self.inbox: deque = deque()
        self._unpack = COMMAND_STRUCT.unpack_from
        self._pack_ack = ACK_STRUCT.pack_into
        # the counters, as the header shows them (written from these, never read back)
        self.accepted = 0
        self.rejected = 0
        self.backpressure = 0
        self.rejects = [0] * len(REJECT_REASONS)
        self._log_after = [0] * len(REJECT_REASONS)
        self.waiting = 0  #: acks held back (behind a PendingAck) across all slots

    def reject_counts(self) -> dict[str, int]:
        return dict(zip(REJECT_REASONS, self.rejects))

    # -- attach and detach -----------------------------------------------------------------------
    def _take_inbox(self) -> None:
        inbox = self.inbox
        while inbox:
            item = inbox.popleft()
            k = item[1]
            old = self.slots[k]
            if old is not None:  # detached (or a detach we have not seen: same thing)
                self.waiting -= len(old.waiting)  # its acks have nobody to go to
                old.waiting.clear()
                self.slots[k] = None
                old.release()
            if item[0] == "attach":
                self.slots[k] = _Slot(item[2], self._layout, k, item[3])
        self.active = [s for s in self.slots if s is not None]

    def pending(self) -> bool:
        """Is there anything for ``serve`` to do: a command waiting, a desk come or gone?"""
        if self.inbox:
            return True
        for s in self.active:
            if s.cmd[_TAIL] != s.head:
                return True
        return False

    # -- the loop's entry ------------------------------------------------------------------------
    def serve(self, handle: Callable[[Command], Ack | PendingAck]) -> int:
        """Answer every pending command with exactly one ack; return how many. Never raises."""
        done = 0
        if self.inbox:
            self._take_inbox()
        if self.waiting:
            self.flush()
        for s in self.active:
            ctl, head = s.cmd, s.head
            if ctl[_TAIL] == head and ctl[_HEAD] == head:
                continue
            try:
                done += self._serve(s, handle)
            except Exception as e:  # a bug of ours: the slot is reset, the loop goes on
                self._count(SLOT_ERROR, s, f"error serving the slot: {e!r}")
                self._reset_commands(s, f"engine error: {e!r}", SLOT_ERROR)
        return done

    def _serve(self, s: _Slot, handle: Callable[[Command], Ack]) -> int:
        cap = self.capacity
        q = self._q
        done = 0
        if s.cmd[_HEAD] != s.head:  # our word, scribbled on: the desk would misjudge its room
            self._count(CMD_RING, s, f"command ring head {s.cmd[_HEAD]} is not the engine's "
                                     f"{s.head}")
            s.cmd[_HEAD] = s.head
            self._mark_reset(s)
        while True:
            tail = s.cmd[_TAIL]
            head = s.head
            n = tail - head
            if n == 0:
                return done
            if not 0 < n <= cap:
                self._reset_commands(s, f"its tail {tail} is impossible with head {head}")
                return done
            if self._ack_room(s) <= len(s.waiting):
                # the desk is not reading its acks: leave its commands queued, never drop one
                self.backpressure += 1
                q[H.ACK_BACKPRESSURE // 8] = self.backpressure
                return done
            rec = self._unpack(s.buf, s.cmd_rec + (head & self._mask) * COMMAND_STRUCT.size)
            s.head = head + 1
            s.cmd[_HEAD] = head + 1
            cmd = self._decode(rec, head, s)
            if isinstance(cmd, Command):
                try:
                    ack = handle(cmd)
                except Exception as e:  # an engine bug must still answer, and not kill the loop
                    ack = Ack(cmd.cmd_id, AckStatus.REJECTED, f"internal error: {e!r}"[:96])
            else:
                reason, why = cmd
                self._count(reason, s, why)
                ack = Ack(rec[0], AckStatus.REJECTED, why)
            if s.waiting or type(ack) is PendingAck:
                s.waiting.append(ack)  # sent by flush, in order
                self.waiting += 1
            else:
                self._answer(s, ack)
            done += 1

    def flush(self) -> int:
        """Send the held acks that may go now (each slot's in order); return how many wait."""
        for s in self.active:
            w = s.waiting
            while w:
                ack = w[0]
                if type(ack) is PendingAck:
                    try:
                        ack = ack.poll()
                    except Exception as e:  # a bug of ours: answer anyway, never raise
                        ack = Ack(w[0].ack.cmd_id, AckStatus.REJECTED,
                                  f"internal error: {e!r}"[:96])
                    if ack is None:
                        break
                w.popleft()
                self.waiting -= 1
                self._answer(s, ack)
        return self.waiting

    def _answer(self, s: _Slot, ack: Ack) -> None:
        # the counter first: a desk that has read the ack reads a counter that includes it
        q = self._q
        if ack.status is AckStatus.ACCEPTED:
            self.accepted += 1
            q[H.CMDS_ACCEPTED // 8] = self.accepted
        else:
            self.rejected += 1
            q[H.CMDS_REJECTED // 8] = self.rejected
        self._push_ack(s, ack)

    # -- records -----------------------------------------------------------------------------------
    def _decode(self, rec: tuple, index: int, s: _Slot) -> Command | tuple[int, str]:
        """The command in a record, stamped with who the slot's desk is (the user and role
        the engine granted at attach; the record's own are ignored), or (reason, why) if the
        record is not one a desk sends."""
        (cmd_id, ts_ns, verb, scope, scope_id, arg0, arg1, _user, workstation, _role, _pad,
         seal, text) = rec
        if seal != command_seal(index):
            return TORN, (f"command at ring index {index} was not finished or is stale "
                          f"(seal {seal:#x})")
        if cmd_id == 0:
            return BAD_ID, "command id 0"
        if verb not in _VERBS:
            return BAD_VERB, self._why(rec, f"unknown verb {verb}")
        if not (scope == _GLOBAL and scope_id == 0
                or 0 <= scope_id < self._sizes.get(scope, 0)):
            return BAD_SCOPE, self._why(rec, f"bad scope {scope} / scope id {scope_id}")
        if not (math.isfinite(arg0) and math.isfinite(arg1)):
            return BAD_NUMBER, self._why(rec, "arguments must be finite numbers")
        if verb == _ORDER and not (0 < arg0 <= MAX_ORDER_QTY and arg0 == int(arg0)):
            return BAD_NUMBER, self._why(rec, f"quantity {arg0:g} out of range")
        try:
            ws_s, text_s = _utf8(workstation), _utf8(text)
        except UnicodeDecodeError:
            return BAD_TEXT, "workstation or text is not UTF-8"
        return Command(cmd_id, verb, scope, scope_id, arg0, arg1, s.user, ws_s, s.role, text_s,
                       ts_ns)

    def _why(self, rec: tuple, fallback: str) -> str:
        """The reason ``check_command`` gives (what desks have always been told), if any."""
        return check_command(Command.from_fields(rec), self._sizes) or fallback

    # -- acks and resets -------------------------------------------------------------------------
    def _ack_room(self, s: _Slot) -> int:
        """Free acks in the slot's ring. Our tail word, if scribbled on, is written back (else
        the desk could never read the acks that fill the ring, and we would wait on it for
        ever); a head word that is impossible with it resets the ring. Either is counted once."""
        tail = s.ack_tail
        scribbled = s.ack[_TAIL] != tail
        head = s.ack[_HEAD]
        used = tail - head
        if not scribbled and 0 <= used <= self.capacity:
            return self.capacity - used
        why = []
        if scribbled:
            why.append(f"tail {s.ack[_TAIL]} is not the engine's {tail}")
            s.ack[_TAIL] = tail
        if not 0 <= used <= self.capacity:
            why.append(f"head {head} is impossible with tail {tail}")
            s.ack[_HEAD] = tail
            used = 0
        self._count(ACK_RING, s, "ack ring " + " and ".join(why))
        self._mark_reset(s)
        return self.capacity - used

    def _push_ack(self, s: _Slot, ack: Ack) -> None:
        tail = s.ack_tail
        self._pack_ack(s.buf, s.ack_rec + (tail & self._mask) * ACK_STRUCT.size,
                       *ack.fields())
        s.ack_tail = tail + 1
        s.ack[_TAIL] = tail + 1  # the ack is visible only after this store

    def _reset_commands(self, s: _Slot, why: str, reason: int = CMD_RING) -> None:
        """Drop what the slot's command ring holds and tell the desk, if its acks allow."""
        if reason == CMD_RING:
            self._count(CMD_RING, s, f"command ring reset: {why}")
        s.cmd[_TAIL] = s.head
        s.cmd[_HEAD] = s.head
        self._mark_reset(s)
        if self._ack_room(s):
            self._push_ack(s, Ack(0, AckStatus.REJECTED, f"command ring reset: {why}"[:96]))

    def _mark_reset(self, s: _Slot) -> None:
        s.resets += 1
        s.hdr[SLOT_RESETS // 8] = s.resets

    def _count(self, reason: int, s: _Slot, why: str) -> None:
        n = self.rejects[reason] = self.rejects[reason] + 1
        self._q[H.REJECTS // 8 + reason] = n
        now = time.monotonic_ns()
        if now >= self._log_after[reason]:
            self._log_after[reason] = now + _LOG_EVERY_NS
            self._log(f"desk slot {s.k}: dropped ({REJECT_REASONS[reason]}): {why} "
                      f"[{n} {REJECT_REASONS[reason]} so far]")

    def release(self) -> None:
        """Unmap every slot (the engine is closing; the attach thread has stopped)."""
        for s in self.active:
            s.release()
        for item in self.inbox:
            if item[0] == "attach":
                try:
                    item[2].close()
                except BufferError:
                    pass
        self.inbox.clear()
        self.slots = [None] * len(self.slots)
        self.active = []
