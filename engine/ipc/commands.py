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
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from engine.core.records import SCOPE_NAMES, KillState, Scope
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
    "REPLAY_ACTIONS",
    "STRATEGY_ACTIONS",
    "check_command",
    "confirmation_code",
    "order_text",
    "parse_order_text",
    "SIDES",
    "TIFS",
    "ROUTER",
]


class Verb(enum.IntEnum):
    PING = 1  #: no effect; proves the round trip
    KILL = 2  #: trip a kill switch in a scope: arg0 the state (1 reducing, 2 or 0 halted)
    REARM = 3  #: re-arm a tripped kill switch (risk manager only): text the reason, arg1 the
    #:            typed confirmation (``confirmation_code`` of the scope's name)
    ORDER = 4  #: a manual order: see ``order_text``
    CANCEL = 5  #: cancel one order; text is its ClOrdID
    CANCEL_ALL = 6  #: cancel every live order in scope; text may name one venue
    LIMIT = 7  #: set a limit in scope: arg0 the value, text "KEY REASON" (risk manager only)
    RECON = 8  #: settle a restart difference: arg0 its id, arg1 0 accept / 1 correct, text why
    STRATEGY = 9  #: pause (arg0 1), resume (2) or stop (3) a strategy (strategy scope); text why
    ACK_ALERT = 10  #: a person acknowledges an alert: arg0 its event seq, text its words (the
    #:               audit trail keeps who acknowledged what, and when)
    REPLAY = 11  #: drive a replay engine: arg0 the action (REPLAY_ACTIONS), arg1 its value
    FLATTEN = 12  #: cancel an account's working orders in an instrument and close its position
    #:             there (instrument scope; text the account, empty: the engine's default)


#: STRATEGY's arg0 -> the action
STRATEGY_ACTIONS = {1: "pause", 2: "resume", 3: "stop"}
#: REPLAY's arg0 -> the action; arg1 is the speed (speed) or the UTC ns to go to (jump)
REPLAY_ACTIONS = {1: "pause", 2: "play", 3: "speed", 4: "jump"}


class AckStatus(enum.IntEnum):
    ACCEPTED = 1
    REJECTED = 2


#: Which verbs each role may send. Enforced by the engine, not only by the desk.
ROLE_MAY: dict[Role, frozenset[Verb]] = {
    # Anyone watching may acknowledge an alert and drive a replay (a replay trades nothing).
    Role.VIEWER: frozenset({Verb.PING, Verb.ACK_ALERT, Verb.REPLAY}),
    Role.TRADER: frozenset({Verb.PING, Verb.KILL, Verb.ORDER, Verb.CANCEL, Verb.CANCEL_ALL,
                            Verb.STRATEGY, Verb.ACK_ALERT, Verb.REPLAY, Verb.FLATTEN}),
    # A risk manager de-risks (cancels) but does not trade.
    Role.RISK_MANAGER: frozenset({Verb.PING, Verb.KILL, Verb.REARM, Verb.CANCEL, Verb.CANCEL_ALL,
                                  Verb.LIMIT, Verb.RECON, Verb.ACK_ALERT, Verb.REPLAY}),
}
ROLE_MAY[Role.TRADER_RISK_MANAGER] = ROLE_MAY[Role.TRADER] | ROLE_MAY[Role.RISK_MANAGER]


def confirmation_code(name: str) -> float:
    """A re-arm's typed confirmation as the command carries it: the CRC-32 of the scope's
    name as typed ("strategy:pairs"). The engine re-arms only if it is its own name's."""
    return float(zlib.crc32(name.strip().encode()))

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


def check_command(cmd: Command, sizes: "dict[int, int] | int") -> str | None:
    """Return why a command is malformed, or None. ``sizes``: scope kind -> how many the
    engine has (an int: the number of instruments, the other kinds none). Permissions are
    checked by the engine."""
    if isinstance(sizes, int):
        sizes = {Scope.INSTRUMENT: sizes}
    try:
        verb = Verb(cmd.verb)
    except ValueError:
        return f"unknown verb {cmd.verb}"
    try:
        scope = Scope(cmd.scope)
    except ValueError:
        return (f"bad scope {cmd.scope} (expected "
                + ", ".join(f"{int(k)}={n}" for k, n in SCOPE_NAMES.items()) + ")")
    if scope is Scope.GLOBAL and cmd.scope_id != 0:
        return f"bad scope id {cmd.scope_id} for global scope (must be 0)"
    n = sizes.get(scope, 0)
    if scope is not Scope.GLOBAL and not 0 <= cmd.scope_id < n:
        what = SCOPE_NAMES[scope]
        return f"unknown {what} id {cmd.scope_id} (engine has {n} {what}s)"
    for name, v in (("arg0", cmd.arg0), ("arg1", cmd.arg1)):
        if not math.isfinite(v):
            return f"argument {name} is {v} (must be a finite number)"
    if verb is Verb.REARM and not cmd.text.strip():
        return "REARM needs a reason"
    if verb is Verb.KILL and cmd.arg0 not in (0, KillState.REDUCING, KillState.HALTED):
        return f"KILL state must be 1=reducing or 2=halted (0: halted), was {cmd.arg0:g}"
    if verb is Verb.RECON:
        if cmd.arg0 != int(cmd.arg0) or cmd.arg0 < 1 or cmd.arg1 not in (0, 1):
            return "RECON needs a difference id (arg0 ≥ 1) and 0 accept / 1 correct (arg1)"
        if not cmd.text.strip():
            return "RECON needs a reason"
    if verb is Verb.LIMIT:
        if scope not in (Scope.GLOBAL, Scope.INSTRUMENT, Scope.STRATEGY, Scope.ACCOUNT,
                         Scope.VENUE):
            return "LIMIT applies to global (the desk), instrument, strategy, account or venue"
        if not cmd.text.split(maxsplit=1)[1:]:
            return "LIMIT text must be 'KEY REASON'"
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
    if verb is Verb.STRATEGY:
        if scope is not Scope.STRATEGY:
            return "STRATEGY needs strategy scope"
        if cmd.arg0 not in STRATEGY_ACTIONS:
            return (f"STRATEGY action must be "
                    + ", ".join(f"{int(k)}={n}" for k, n in STRATEGY_ACTIONS.items())
                    + f", was {cmd.arg0:g}")
    if verb is Verb.ACK_ALERT:
        if cmd.arg0 != int(cmd.arg0) or cmd.arg0 < 1:
            return f"ACK_ALERT needs the alert's event seq (arg0 ≥ 1), was {cmd.arg0:g}"
        if not cmd.text.strip():
            return "ACK_ALERT needs the alert's words"
    if verb is Verb.FLATTEN and scope is not Scope.INSTRUMENT:
        return "FLATTEN needs instrument scope"
    if verb is Verb.REPLAY and cmd.arg0 not in REPLAY_ACTIONS:
        return ("REPLAY action must be "
                + ", ".join(f"{int(k)}={n}" for k, n in REPLAY_ACTIONS.items())
                + f", was {cmd.arg0:g}")
    return None
