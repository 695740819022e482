"""The market maker on a real kernel with three in-process venues (tests/risk/_desk.py): its
quotes and their skew, requotes, size limits, pause and resume, refusals, kill switches, bad
parameters; and a backtest of a recorded day through the backtest node."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from engine.core.profile import ProfileError, parse_profile
from engine.core.records import KillState, Scope
from engine.strategy.host import StrategyState
from engine.strategy.marketmaker import MarketMaker, MarketMakerConfig
from engine.strategy.registry import build
from tests.risk._desk import Desk, profile_dict

BASE = dict(venue="SIMA", symbols=("AAA",), half_spread_ticks=2, size=100, max_position=200,
            skew_ticks_per_lot=1.0, requote_ticks=1)


class Run:
    """A desk with one market maker on AAA (mid 100.00, a tick 0.01), past its venues' logon
    and the backoff of the quotes it tried before they were up; ``notes``: what the desks
    were told."""

    def __init__(self, limits=None, **params):
        self.s = MarketMaker(MarketMakerConfig(**{**BASE, **params}), "mm")
        self.d = Desk({"duplicate_window_ms": 0, **(limits or {})}, strategies=[self.s])
        self.notes: list[str] = []
        self.d.kernel.publisher.notice = (
            lambda kind, level, text, inst, ts: self.notes.append(text))
        self.d.run(1.1)
        self.refused_at_start = self.s.counts["refused"]  # tried before the venues were up
        self.move(100.0)

    def move(self, mid, seconds=0.01, **kw):
        self.d.quote("AAA", mid, **kw)
        self.d.run(seconds)

    @property
    def host(self):
        return self.d.kernel.strategies

    def quotes(self) -> list[tuple[str, float, int]]:
        """The working orders at the venue, as (side, price, leaves), bids first."""
        return sorted((("bid" if o.side == 1 else "ask"), o.price, o.leaves_qty)
                      for o in self.d.working().values())

    def pos(self) -> int:
        """The strategy's own position, checked against the risk engine's book of it."""
        mine = self.s.position("AAA")
        assert mine == self.d.risk.strategy_position("mm", "AAA")
        return mine

    @property
    def fig(self):
        return self.s.figures()

    def refused(self) -> int:
        return self.s.counts["refused"] - self.refused_at_start

    def kill(self, state):
        row = self.d.risk.table.row(Scope.STRATEGY, 0)
        self.d.risk.trip(row, state, "rita", "test", self.d.t)


def test_it_quotes_mid_plus_and_minus_the_half_spread():
    r = Run()
    assert r.quotes() == [("ask", 100.02, 100), ("bid", 99.98, 100)]
    assert r.s.signals(5) == [("AAA", 99.98, 100.02, 0.0, 0.0)]
    assert r.fig["quotes"] == 2 and r.fig["position"] == 0 and r.fig["fills"] == 0
    assert r.refused() == 0


def test_a_fill_skews_both_quotes_against_the_position():
    r = Run()
    r.move(99.95)  # the asks go through our bid at 99.98: it fills in full
    assert r.pos() == 100 and r.fig["fills"] == 1 and r.fig["volume"] == 100
    # skew = 1 tick a lot × 100 / 100: the centre 99.95 - 0.01 = 99.94, ± 2 ticks
    assert r.quotes() == [("ask", 99.96, 100), ("bid", 99.92, 100)]
    label, bid, ask, position, skew = r.s.signals(1)[0]
    assert (label, bid, ask, position, skew) == ("AAA", 99.92, 99.96, 100.0, 1.0)
    assert r.fig["realized"] == 0 and r.fig["pnl"] == pytest.approx(-3.0)  # (99.95-99.98)×100
    r.move(99.98)  # the bids (99.97) go through our ask at 99.96: flat again
    assert r.pos() == 0  # bought at 99.98, sold at 99.96
    assert r.fig["realized"] == pytest.approx(-2.0)
    assert r.quotes() == [("ask", 100.0, 100), ("bid", 99.96, 100)]
    (cols, rows), = r.s.report_tables().values()
    got = dict(zip(cols, rows[0]))
    assert (got["symbol"], got["fills"], got["bought"], got["sold"], got["position"]) == \
        ("AAA", 2, 100, 100, 0)
    assert got["realized"] == pytest.approx(-2.0)


def test_a_move_of_requote_ticks_cancels_and_replaces_a_smaller_one_does_not():
    r = Run(requote_ticks=2)
    first = dict(r.d.working())
    orders, cancels = r.s.counts["orders"], r.s.counts["cancels"]
    r.move(100.01)  # one tick: the quotes stay
    assert r.d.working().keys() == first.keys()
    assert r.quotes() == [("ask", 100.02, 100), ("bid", 99.98, 100)]
    assert (r.s.counts["orders"], r.s.counts["cancels"]) == (orders, cancels)
    r.move(100.02)  # two ticks from where they were made: cancel both, send both
    assert r.quotes() == [("ask", 100.04, 100), ("bid", 100.0, 100)]
    assert (r.s.counts["orders"], r.s.counts["cancels"]) == (orders + 2, cancels + 2)
    assert not set(r.d.working()) & set(first)
    oms = r.d.kernel.execution.oms
    assert {oms.orders[cl].status.value for cl in first} == {"Cancelled"}


def test_min_requote_ms_holds_a_requote_back_then_makes_it_from_the_book_then():
    r = Run(min_requote_ms=50.0)
    requotes = r.s.counts["requotes"]
    r.d.run(0.05)
    r.move(100.01, seconds=0.001)  # 50 ms after the last requote: this one goes
    assert r.quotes() == [("ask", 100.03, 100), ("bid", 99.99, 100)]
    r.move(100.02, seconds=0.001)
    r.move(99.99, seconds=0.001)
    assert r.quotes() == [("ask", 100.03, 100), ("bid", 99.99, 100)]  # not yet
    r.d.run(0.05)  # at the next requote, the book as it is then
    assert r.quotes() == [("ask", 100.01, 100), ("bid", 99.97, 100)]
    assert r.s.counts["requotes"] == requotes + 2


def test_at_max_position_it_quotes_only_the_side_that_reduces():
    r = Run(skew_ticks_per_lot=0.0)
    r.move(99.95)
    r.move(99.90)  # both bids filled: long 200 = max_position
    assert r.pos() == 200
    assert r.quotes() == [("ask", 99.92, 100)]
    assert r.fig["quotes"] == 1
    r.move(99.94)  # the bids (99.93) go through the ask: 100 left, both sides again
    assert r.pos() == 100
    assert r.quotes() == [("ask", 99.96, 100), ("bid", 99.92, 100)]


def test_the_last_lot_to_the_limit_is_quoted_smaller():
    r = Run(skew_ticks_per_lot=0.0, max_position=150)
    r.move(99.95)
    assert r.pos() == 100
    assert r.quotes() == [("ask", 99.97, 100), ("bid", 99.93, 50)]


def test_pause_pulls_the_quotes_and_resume_quotes_again():
    r = Run()
    assert r.host.user_pause("mm", r.d.t) is None
    r.d.run(0.01)
    assert r.quotes() == [] and r.fig["quotes"] == 0
    r.move(100.05)  # paused: it hears nothing
    assert r.quotes() == []
    assert r.host.resume("mm", r.d.t) is None
    r.d.run(0.01)
    assert r.quotes() == [("ask", 100.07, 100), ("bid", 100.03, 100)]
    assert r.refused() == 0


def test_a_refusal_is_counted_shown_and_not_retried_every_tick():
    r = Run({"strategy": {"mm": {"max_order_qty": 50}}})
    # 1.16 s since the start: bid and ask tried at 0 and once more at 1 s, a refusal each
    assert r.quotes() == [] and r.fig["refused"] == 4
    for k in range(30):  # 30 moves in 0.3 s: inside the 1 s backoff
        r.move(100.0 + (k % 3) * 0.01)
    assert r.fig["refused"] == 4
    r.d.run(1.0)  # the backoff is over: one more try of each side, no more
    assert r.fig["refused"] == 6 and r.quotes() == []
    told = [t for t in r.notes if "refused" in t]  # heard since the desk was made: 1 s, 2 s
    assert len(told) == 4
    assert told[0] == ("mm: AAA bid 100 @ 99.98 refused: quantity 100 is over max_order_qty 50 "
                       "for AAA")


def test_halted_pauses_it_and_pulls_its_quotes_re_arm_quotes_again():
    r = Run()
    r.kill(KillState.HALTED)
    r.d.run(0.01)
    assert r.host.state("mm") is StrategyState.HALTED
    assert r.quotes() == [] and r.fig["quotes"] == 0
    r.move(100.03)
    assert r.quotes() == [] and r.refused() == 0  # paused: it sent nothing to be refused
    r.kill(KillState.ACTIVE)
    r.d.run(0.01)
    assert r.host.state("mm") is StrategyState.RUNNING
    assert r.quotes() == [("ask", 100.05, 100), ("bid", 100.01, 100)]


def test_reducing_lets_it_quote_only_the_side_that_reduces_without_a_storm():
    r = Run(skew_ticks_per_lot=0.0)
    r.move(99.95)
    assert r.pos() == 100
    r.kill(KillState.REDUCING)  # the risk engine cancels the bid (it adds), keeps the ask
    r.d.run(0.01)
    assert r.host.state("mm") is StrategyState.RUNNING
    assert r.quotes() == [("ask", 99.97, 100)]
    assert r.refused() == 1  # the bid it tried again, once
    for k in range(20):  # moves inside the backoff: the ask follows, nothing is refused
        r.move(99.95 + 0.01 * (k % 2 + 1))
    assert r.refused() == 1
    assert r.quotes() == [("ask", 99.99, 100)]
    assert r.s.counts["reduce_only"] == 1
    r.move(100.01)  # the bids (100.00) go through the ask: flat
    assert r.pos() == 0
    r.d.run(1.0)
    assert r.quotes() == [] and r.refused() <= 3  # flat: both sides add; one try a second
    r.kill(KillState.ACTIVE)
    r.d.run(1.0)
    r.move(100.0)
    assert r.quotes() == [("ask", 100.02, 100), ("bid", 99.98, 100)]


def test_bad_parameters_are_refused_naming_the_entry_and_the_key():
    def load(**params):
        d = profile_dict()
        d["strategies"] = [{"name": "mm", "kind": "marketmaker", **params}]
        return build(parse_profile(d, Path("mm.toml")))

    (s,) = load()
    assert (s.config.venue, s.config.symbols, s.config.max_position) == ("SIMA", None, 1000)
    (s,) = load(size=10)
    assert s.config.max_position == 100
    for params, key, words in [
        (dict(size=0), "size", "between 1"),
        (dict(venue="NOPE"), "venue", "not one of the profile's venues"),
        (dict(symbols=["ZZZ"]), "symbols[0]", "not one of the profile's instruments"),
        (dict(symbols=[]), "symbols", "at least one"),
        (dict(half_spread_ticks=1.5), "half_spread_ticks", "must be an integer"),
        (dict(tif="ioc"), "tif", "a quote rests"),
        (dict(skew_ticks_per_lot=-1), "skew_ticks_per_lot", "between 0"),
        (dict(requote_ticks=0), "requote_ticks", "between 1"),
        (dict(spread=3), "spread", "unknown key"),
    ]:
        with pytest.raises(ProfileError) as e:
            load(**params)
        assert f"mm.toml: [[strategies]][0] (mm).{key}: " in str(e.value), str(e.value)
        assert words in str(e.value)


def test_a_backtest_of_a_recorded_day_quotes_fills_and_reports(tmp_path):
    from engine.backtest.node import BacktestNode
    from engine.backtest.synth import simulate_day
    from engine.core.profile import load_profile

    text = "\n".join([
        '[engine]\ninstance = "mmbt"', '[feed]\nkind = "simvenues"\nvenues = ["SIMA"]\nseed = 5',
        '[[instruments]]\nsymbol = "AAA"\ntick = 0.01\nprice = 50.0\nupdate_hz = 200',
        '[[instruments]]\nsymbol = "BBB"\ntick = 0.01\nprice = 20.0\nupdate_hz = 200',
        '[[venues]]\nname = "SIMA"\nkind = "sim"\nlatency_us = 100',
        '[limits]\nmax_orders_per_s = 100000\nmax_messages_per_s = 100000',
        'duplicate_window_ms = 0',
        '[[strategies]]\nname = "mm"\nkind = "marketmaker"\nsize = 10\nmax_position = 50',
        "half_spread_ticks = 1\nskew_ticks_per_lot = 0.5", ""])
    path = tmp_path / "mm.toml"
    path.write_text(text)
    profile = load_profile(path)
    simulate_day(profile, tmp_path / "ticks", "2026-11-23", 10.0)
    outs = []
    for k in range(2):
        node = BacktestNode(profile, "2026-11-23", out=tmp_path / f"bt{k}",
                            ticks_dir=tmp_path / "ticks", progress=False)
        node.run()
        (s,) = node.kernel.strategies.strategies
        outs.append(tmp_path / f"bt{k}")
    fig = s.figures()
    assert fig["fills"] > 0 and s.counts["orders"] > 10 and s.counts["cancels"] > 0
    for sym in ("AAA", "BBB"):
        assert abs(s.position(sym)) <= 50
        assert s.position(sym) == node.kernel.risk.strategy_position("mm", sym)
    rows = list(csv.DictReader(open(outs[0] / "mm-instruments.csv")))
    assert [row["symbol"] for row in rows] == ["AAA", "BBB"]
    assert sum(int(row["fills"]) for row in rows) == fig["fills"]
    assert (outs[0] / "orders.csv").read_bytes() == (outs[1] / "orders.csv").read_bytes()
