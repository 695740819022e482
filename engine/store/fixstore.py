"""A FIX session's ``MessageStore`` that persists through the write-behind writer.

``engine.fix.store.SqlStore`` commits on every message: fine for the venue, milliseconds of
the engine's hot thread. ``WriteBehindFixStore`` answers from memory and hands each change to
the ``StoreLink`` as a record (no waiting): a sent message is one FIX_MSG record (which also
moves the next sender number), an administrative message or a new target number one FIX_SEQ
record, a reset one FIX_RESET record. Its starting state is what ``recover.load`` found.

If the engine dies, a record not yet written is lost only if the writer dies with it; the
session then restarts from slightly older numbers, which FIX's own recovery (a ResendRequest,
or a higher MsgSeqNum from us being accepted) covers.

``deferred``: the live node's stores answer from memory at once and put their records on the
ring when the node calls ``flush()`` after the turn: a ring write costs 2-3 µs in a live turn,
and a requote's four messages and the tick's target number would pay it before the orders
are out. The sent messages keep their order; the sequence numbers go as one FIX_SEQ record
(the last values), written after the turn's messages.
"""

from __future__ import annotations

from engine.store.link import StoreLink
from engine.store.recover import Recovered

__all__ = ["WriteBehindFixStore"]


class WriteBehindFixStore:
    """In-memory session state, persisted through ``link`` (see engine/fix/store.py's protocol)."""

    def __init__(self, link: StoreLink, session_key: str, recovered: Recovered | None = None,
                 *, deferred: bool = False) -> None:
        if len(session_key.encode()) > 64:
            raise ValueError(f"FIX session key {session_key!r} is longer than 64 bytes")
        self.link = link
        self.session_key = session_key
        state = recovered.fix_session(session_key) if recovered is not None else None
        self.next_sender_seq = state.next_sender_seq if state else 1
        self.next_target_seq = state.next_target_seq if state else 1
        self._sent: dict[int, bytes] = dict(state.sent) if state else {}
        self.deferred = deferred
        self.dirty = False  #: deferred: records wait for flush()
        self._msgs: list[tuple[int, bytes]] = []  # deferred FIX_MSG records, in order
        self._seq_dirty = False  # deferred: the numbers moved since the last record of them

    def set_next_sender_seq(self, seq: int) -> None:
        self.next_sender_seq = seq
        self._put_seq()

    def set_next_target_seq(self, seq: int) -> None:
        self.next_target_seq = seq
        self._put_seq()

    def record_sent(self, seq: int, raw: bytes | None) -> None:
        self.next_sender_seq = seq + 1
        if raw is None:
            self._put_seq()
            return
        self._sent[seq] = raw
        if self.deferred:
            self._msgs.append((seq, raw))  # its FIX_MSG record moves the sender number too
            self.dirty = True
            return
        self.link.put_fix_message(self.session_key, seq, raw)

    def _put_seq(self) -> None:
        if self.deferred:
            self._seq_dirty = self.dirty = True
            return
        self.link.put_fix_seq(self.session_key, self.next_sender_seq, self.next_target_seq)

    def flush(self) -> None:
        """Deferred: put what waits on the ring (the messages in order, then the numbers)."""
        if not self.dirty:
            return
        self.dirty = False
        link, key = self.link, self.session_key
        msgs = self._msgs
        if msgs:
            self._msgs = []
            for seq, raw in msgs:
                link.put_fix_message(key, seq, raw)
        if self._seq_dirty:  # after the messages: the numbers as they are now
            self._seq_dirty = False
            link.put_fix_seq(key, self.next_sender_seq, self.next_target_seq)

    def sent_range(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        sent = self._sent
        if end - begin > len(sent):
            return sorted((s, r) for s, r in sent.items() if begin <= s <= end)
        return [(s, sent[s]) for s in range(begin, end + 1) if s in sent]

    def reset(self) -> None:
        self.flush()  # what happened before the reset stays before it on the ring
        self.next_sender_seq = self.next_target_seq = 1
        self._sent.clear()
        self.link.put_fix_reset(self.session_key)
