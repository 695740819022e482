"""A FIX session's ``MessageStore`` that persists through the write-behind writer.

``engine.fix.store.SqlStore`` commits on every message: fine for the venue, milliseconds of
the engine's hot thread. ``WriteBehindFixStore`` answers from memory and hands each change to
the ``StoreLink`` as a record (no waiting): a sent message is one FIX_MSG record (which also
moves the next sender number), an administrative message or a new target number one FIX_SEQ
record, a reset one FIX_RESET record. Its starting state is what ``recover.load`` found.

If the engine dies, a record not yet written is lost only if the writer dies with it; the
session then restarts from slightly older numbers, which FIX's own recovery (a ResendRequest,
or a higher MsgSeqNum from us being accepted) covers.
"""

from __future__ import annotations

from engine.store.link import StoreLink
from engine.store.recover import Recovered

__all__ = ["WriteBehindFixStore"]


class WriteBehindFixStore:
    """In-memory session state, persisted through ``link`` (see engine/fix/store.py's protocol)."""

    def __init__(self, link: StoreLink, session_key: str, recovered: Recovered | None = None,
                 ) -> None:
        if len(session_key.encode()) > 64:
            raise ValueError(f"FIX session key {session_key!r} is longer than 64 bytes")
        self.link = link
        self.session_key = session_key
        state = recovered.fix_session(session_key) if recovered is not None else None
        self.next_sender_seq = state.next_sender_seq if state else 1
        self.next_target_seq = state.next_target_seq if state else 1
        self._sent: dict[int, bytes] = dict(state.sent) if state else {}

    def set_next_sender_seq(self, seq: int) -> None:
        self.next_sender_seq = seq
        self.link.put_fix_seq(self.session_key, seq, self.next_target_seq)

    def set_next_target_seq(self, seq: int) -> None:
        self.next_target_seq = seq
        self.link.put_fix_seq(self.session_key, self.next_sender_seq, seq)

    def record_sent(self, seq: int, raw: bytes | None) -> None:
        self.next_sender_seq = seq + 1
        if raw is None:
            self.link.put_fix_seq(self.session_key, seq + 1, self.next_target_seq)
        else:
            self._sent[seq] = raw
            self.link.put_fix_message(self.session_key, seq, raw)

    def sent_range(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        sent = self._sent
        if end - begin > len(sent):
            return sorted((s, r) for s, r in sent.items() if begin <= s <= end)
        return [(s, sent[s]) for s in range(begin, end + 1) if s in sent]

    def reset(self) -> None:
        self.next_sender_seq = self.next_target_seq = 1
        self._sent.clear()
        self.link.put_fix_reset(self.session_key)
