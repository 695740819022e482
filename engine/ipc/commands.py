"""Command and ack records: the vocabulary desks and ``helmdesk ctl`` speak to the engine.

A command is one 128-byte record on the desk's command ring (layout.COMMAND_STRUCT); the engine
answers every command with exactly one 128-byte ack (layout.ACK_STRUCT): accepted, or rejected
with a reason a person can read. Anything a desk can put in the ring is decoded here without
raising: unknown verbs and scopes stay numbers so the engine can name them in its rejection.
The engine reads the record more strictly (``engine.ipc.deskslots``): a record that is not
sealed for its ring index, or holds bytes that are not UTF-8, an id of 0 or an unknown role,
is rejected there before any handler sees it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from engine.core.records import Scope
from engine.core.roles import Role

__all__ = [
    "Verb",
    "Scope",
    "Role",
    "AckStatus",
    "Command",
    "Ack",
    "PendingAck",
    "ROLE_MAY",
    "check_command",
    "order_text",
    "parse_order_text",
    "SIDES",
    "TIFS",
    "ROUTER",
]


class Verb(enum.IntEnum):
    PING = 1  #: no effect; proves the round trip
    KILL = 2  #: trip a kill switch in a scope
    REARM = 3  #: re-arm a tripped kill switch (risk manager only; needs a reason)
    ORDER = 4  #: a manual order: see ``order_text``
    CANCEL = 5  #: cancel one order; text is its ClOrdID
    CANCEL_ALL = 6  #: cancel every live order in scope; text may name one venue


class AckStatus(enum.IntEnum):
    ACCEPTED = 1
    REJECTED = 2


#: Which verbs each role may send. Enforced by the engine, not only by the desk.
ROLE_MAY: dict[Role, frozenset[Verb]] = {
    Role.VIEWER: frozenset({Verb.PING}),
    Role.TRADER: frozenset({Verb.PING, Verb.KILL, Verb.ORDER, Verb.CANCEL, Verb.CANCEL_ALL}),
    # A risk manager de-risks (cancels) but does not trade.
    Role.RISK_MANAGER: frozenset({Verb.PING, Verb.KILL, Verb.REARM, Verb.CANCEL, Verb.CANCEL_ALL}),
}

#: An ORDER command: scope INSTRUMENT and the instrument's id, arg0 the quantity (a whole
#: number), arg1 the limit price (0: a market order), text "VENUE SIDE [TIF]", for example
#: "SIMA buy day"; VENUE "*" lets the smart order router choose.
SIDES = {"buy": 1, "sell": 2}
TIFS = ("day", "ioc", "fok")
MAX_ORDER_QTY = 2**31 - 1
ROUTER = "*"


def order_text(venue: str, side: str, tif: str = "day") -> str:
    return f"{venue} {side} {tif}"


def parse_order_text(text: str) -> tuple[str, int, str] | str:
    """``"SIMA buy day"`` -> ("SIMA", 1, "day"); a string is why it cannot be read."""
    parts = text.split()
    if len(parts) not in (2, 3):
        return f"order text must be 'VENUE SIDE [TIF]', was {text!r}"
    venue, side = parts[0], parts[1].lower()
    tif = parts[2].lower() if len(parts) == 3 else "day"
    if side not in SIDES:
        return f"side must be buy or sell, was {parts[1]!r}"
    if tif not in TIFS:
        return f"time in force must be day, ioc or fok, was {parts[2]!r}"
    return venue, SIDES[side], tif


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _b(text: str, n: int) -> bytes:
    raw = text.encode("utf-8")[:n]
    # never cut a multi-byte character in half
    return raw.decode("utf-8", "ignore").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Command:
    cmd_id: int
    verb: int  # a Verb value, or whatever number arrived
    scope: int = Scope.GLOBAL
    scope_id: int = 0
    arg0: float = 0.0
    arg1: float = 0.0
    user: str = ""
    workstation: str = ""
    role: int = Role.VIEWER
    text: str = ""
    ts_ns: int = 0

    def fields(self) -> tuple:
        """The tuple COMMAND_STRUCT packs (seal 0: the ring stores it, SealedCommandRing)."""
        return (
            self.cmd_id,
            self.ts_ns,
            self.verb,
            self.scope,
            self.scope_id,
            self.arg0,
            self.arg1,
            _b(self.user, 16),
            _b(self.workstation, 16),
            self.role,
            b"",
            0,
            _b(self.text, 48),
        )

    @classmethod
    def from_fields(cls, f: tuple) -> "Command":
        return cls(
            cmd_id=f[0],
            ts_ns=f[1],
            verb=f[2],
            scope=f[3],
            scope_id=f[4],
            arg0=f[5],
            arg1=f[6],
            user=_text(f[7]),
            workstation=_text(f[8]),
            role=f[9],
            text=_text(f[12]),
        )

    @property
    def verb_name(self) -> str:
        try:
            return Verb(self.verb).name
        except ValueError:
            return f"verb#{self.verb}"


@dataclass(frozen=True, slots=True)
class Ack:
    cmd_id: int
    status: AckStatus
    reason: str = ""
    kill_tripped: bool = False  # the global kill switch after the command
    value: int = 0
    ts_ns: int = 0

    def fields(self) -> tuple:
        return (
            self.cmd_id,
            self.ts_ns,
            int(self.status),
            int(self.kill_tripped),
            b"",
            self.value,
            _b(self.reason, 96),
        )

    @classmethod
    def from_fields(cls, f: tuple) -> "Ack":
        try:
            status = AckStatus(f[2])
        except ValueError:
            status = AckStatus.REJECTED
        return cls(
            cmd_id=f[0],
            ts_ns=f[1],
            status=status,
            kill_tripped=bool(f[3]),
            value=f[5],
            reason=_text(f[6]),
        )

    @property
    def accepted(self) -> bool:
        return self.status is AckStatus.ACCEPTED


class PendingAck:
    """An answer that may not be sent yet: ``poll()`` returns the ``Ack`` once it may (the
    state it confirms is durable, say), None until then. Acks of one desk stay in order: the
    ones after a pending ack wait behind it."""

    __slots__ = ("ack", "_ready")

    def __init__(self, ack: Ack, ready: Callable[[], Ack | None]) -> None:
        self.ack = ack  #: what the answer says (the final one may add to its reason)
        self._ready = ready

    def poll(self) -> Ack | None:
        return self._ready()


def check_command(cmd: Command, n_instruments: int) -> str | None:
    """Return why a command is malformed, or None. Permissions are checked by the engine."""
    try:
        verb = Verb(cmd.verb)
    except ValueError:
        return f"unknown verb {cmd.verb}"
    try:
        scope = Scope(cmd.scope)
    except ValueError:
        return f"bad scope {cmd.scope} (expected 0=global or 1=instrument)"
    if scope is Scope.GLOBAL and cmd.scope_id != 0:
        return f"bad scope id {cmd.scope_id} for global scope (must be 0)"
    if scope is Scope.INSTRUMENT and not 0 <= cmd.scope_id < n_instruments:
        return f"unknown instrument id {cmd.scope_id} (engine has {n_instruments})"
    for name, v in (("arg0", cmd.arg0), ("arg1", cmd.arg1)):
        if not math.isfinite(v):
            return f"argument {name} is {v} (must be a finite number)"
    if verb is Verb.REARM and not cmd.text.strip():
        return "REARM needs a reason"
    if verb is Verb.ORDER:
        if scope is not Scope.INSTRUMENT:
            return "ORDER needs instrument scope"
        if cmd.arg0 != int(cmd.arg0) or not 0 < cmd.arg0 <= MAX_ORDER_QTY:
            return f"quantity must be a whole number 1..{MAX_ORDER_QTY}, was {cmd.arg0:g}"
        if cmd.arg1 < 0:
            return f"price must be positive (0 for a market order), was {cmd.arg1:g}"
        parsed = parse_order_text(cmd.text)
        if isinstance(parsed, str):
            return parsed
    if verb is Verb.CANCEL and not cmd.text.strip():
        return "CANCEL needs the order's ClOrdID"
    return None
