"""Shared memory between the engine and its desks: layout, seqlocks, rings, commands."""

from engine.ipc.client import (
    CommandTimeout,
    DeskInfo,
    EngineClient,
    EngineStatus,
    Instrument,
    ReplayState,
    SlotReset,
)
from engine.ipc.commands import Ack, AckStatus, Command, Scope, Verb
from engine.ipc.layout import EngineState, Layout, segment_name
from engine.ipc.segment import (
    AttachRefused,
    EngineAlreadyRunning,
    EngineStarting,
    IpcError,
    LayoutMismatch,
    NoEngine,
)

__all__ = [
    "Ack",
    "AckStatus",
    "AttachRefused",
    "Command",
    "CommandTimeout",
    "DeskInfo",
    "EngineAlreadyRunning",
    "EngineClient",
    "EngineStarting",
    "EngineState",
    "EngineStatus",
    "Instrument",
    "IpcError",
    "Layout",
    "LayoutMismatch",
    "NoEngine",
    "ReplayState",
    "Scope",
    "SlotReset",
    "Verb",
    "segment_name",
]
