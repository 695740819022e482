"""Engine logging under a flood: each message template logs a bounded number of lines a
second; what is held back is counted in the next line of that template."""

from __future__ import annotations

import logging

from engine.logs import RateLimit


def _record(msg: str, created: float, *args) -> logging.LogRecord:
    r = logging.LogRecord("helmdesk.fix", logging.WARNING, __file__, 1, msg, args, None)
    r.created = created
    return r


def test_a_flood_of_one_template_is_held_back_and_counted():
    f = RateLimit()
    passed = [f.filter(_record("%s rejected message %d", 100.5, "HELM", n)) for n in range(500)]
    assert sum(passed) == RateLimit.PER_S
    other = _record("gap detected, expecting %d", 100.6, 7)
    assert f.filter(other)  # another template has its own budget
    nxt = _record("%s rejected message %d", 101.0, "HELM", 501)
    assert f.filter(nxt)
    assert nxt.getMessage() == ("HELM rejected message 501 [480 more like this held back in the "
                                "last second]")
    later = _record("%s rejected message %d", 102.0, "HELM", 502)
    assert f.filter(later) and later.getMessage() == "HELM rejected message 502"
