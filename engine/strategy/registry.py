"""Strategies by kind: build a profile's ``[[strategies]]``.

``build(profile)`` makes one strategy per entry, through its class's ``from_config``; a kind
this engine does not know, or a parameter the class refuses, is a ``ProfileError`` naming the
file, the entry and the key. Kinds: ``pairs`` (``engine.strategy.pairs``: statistical
arbitrage over cointegrated pairs) and ``marketmaker`` (``engine.strategy.marketmaker``: a
passive market maker)."""

from __future__ import annotations

import importlib

from engine.core.profile import Profile, ProfileError
from engine.strategy.api import Strategy

__all__ = ["KINDS", "build"]

#: kind -> "module:Class"
KINDS = {
    "pairs": "engine.strategy.pairs:PairsStrategy",
    "marketmaker": "engine.strategy.marketmaker:MarketMaker",
}


def build(profile: Profile) -> list[Strategy]:
    out = []
    for c in profile.strategies:
        target = KINDS.get(c.kind)
        if target is None:
            raise ProfileError(f"{c.path}: [[strategies]][{c.index}].kind: {c.kind!r} is not a "
                               f"strategy kind (one of {', '.join(sorted(KINDS))})")
        module, cls = target.split(":")
        s = getattr(importlib.import_module(module), cls).from_config(c, profile)
        s.name = c.name
        s.account = c.account
        s.enabled = c.enabled
        out.append(s)
    return out
