"""The simulated exchange: a price-time-priority matching engine per instrument (and, with the
FIX acceptor, the venue around it)."""

from engine.venue.matching import ExecKind, MatchingEngine, OrdType, Report, Side, TimeInForce

__all__ = ["ExecKind", "MatchingEngine", "OrdType", "Report", "Side", "TimeInForce"]
