"""What the FIX session tests share: a fixed clock, decoding what a session sent, and the
other end of a session driven by hand."""

from __future__ import annotations

from engine.fix.codec import FixDecoder, FixMessage, encode

T0 = 1_795_000_000_000_000_000  # ns, a fixed wall clock for the tests
S = 1_000_000_000


def decode_all(data: bytes) -> list[FixMessage]:
    d = FixDecoder()
    d.feed(data)
    out = []
    while (m := d.next()) is not None:
        assert isinstance(m, FixMessage), m
        out.append(m)
    return out


class Peer:
    """The other end, driven by hand: it sends exactly the bytes a test asks for."""

    def __init__(self, sender: bytes = b"VENUE", target: bytes = b"HELM") -> None:
        self.sender, self.target = sender, target
        self.seq = 1

    def msg(self, msg_type: bytes, body=(), *, seq=None, now=T0, extra=(), sender=None,
            target=None) -> bytes:
        if seq is None:
            seq = self.seq
            self.seq += 1
        return encode(msg_type, list(body), sender=sender or self.sender,
                      target=target or self.target, seq=seq, sending_time_ns=now,
                      extra_header=list(extra))
