"""A market made up: the profile's simulated venues recorded as a day, sampled, or a whole
synthetic universe of instruments and pairs.

For trying backtests without a recorded session, for the tests and for the benches:

- ``simulate_day`` runs ``engine.feeds.simvenues.SimVenues`` (seeded: the same arguments give
  the same files) from the day's start for ``seconds`` of market time and records every event,
  snapshots first, exactly as ``[feed] record = true`` records a live session.
- ``sample_market`` runs the profile's simulated venues into the engine's own market-data
  stage (``MarketData``: the same books the desk and the strategies read) and samples every
  instrument's consolidated BBO at a fixed mean interval of market time: crossed and locked
  shares, mids for fitting pairs (``fit_pair``). ``bench/market.py`` reports it.
- ``universe_profile_text`` writes a profile of ``n`` instruments ``S0000``… and disjoint
  cointegrated pairs of varied hedge ratios, half-lives and spreads, for benches and tests at
  scale.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from engine.core.events import EventBuffer
from engine.core.profile import Profile
from engine.core.ticks import tick_decimals
from engine.feeds.tickstore import TickRecorder

__all__ = ["MarketSample", "fit_pair", "sample_market", "simulate_day", "universe_profile_text"]


def simulate_day(profile: Profile, root: str | Path, day: str, seconds: float, *,
                 venues: Sequence[str] | None = None, start: str = "09:30:00",
                 rate_hz: float | None = None,
                 progress: Callable[[float], None] | None = None) -> int:
    """Record ``seconds`` of the profile's simulated venues (``[feed] venues``, or
    ``venues``) on ``day`` (UTC, from ``start``) into the tick store at ``root``; return how
    many records were written. ``rate_hz``: events per second per instrument and venue
    (default: each instrument's ``update_hz``)."""
    from engine.node import sim_source

    names = list(venues or profile.feed.venues)
    t0 = int(dt.datetime.fromisoformat(f"{day}T{start}+00:00").timestamp()) * 1_000_000_000
    if rate_hz is not None:
        profile = dataclasses.replace(profile, instruments=tuple(
            dataclasses.replace(i, update_hz=rate_hz) for i in profile.instruments))
    src = sim_source(profile, names, t0)
    rec = TickRecorder(root, names, profile.instruments, thread=False)
    buf = EventBuffer(1 << 16)
    end = t0 + int(seconds * 1e9)
    step = 50_000_000  # 50 ms of market time a call
    n = src.start(t0, buf)
    rec.record(buf.view())
    buf.clear()
    t = t0
    try:
        while t < end:
            t = min(t + step, end)
            while True:
                n += src.step(t, buf)
                if buf.n:
                    rec.record(buf.view())
                full = buf.full
                buf.clear()
                if not full:
                    break
            if progress is not None:
                progress((t - t0) / (end - t0))
    finally:
        rec.close()
    return n


# -- SAMPLING THE CONSOLIDATED BOOK --------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MarketSample:
    """The consolidated BBO of every instrument at each sample instant (``sample_market``).
    Arrays are (samples, instruments); prices in ticks (0: no such side)."""

    symbols: tuple[str, ...]
    ticks: np.ndarray  #: (instruments,) tick sizes
    t_ns: np.ndarray  #: (samples,) the sample instants, market time
    bid: np.ndarray
    ask: np.ndarray
    events: int  #: events the venues generated (``SimVenues.events``)
    requotes: int  #: of which re-quotes the fair value forced (``SimVenues.requotes``)
    records: int  #: MD_EVENT records applied to the books
    seconds: float

    @property
    def two_sided(self) -> np.ndarray:
        return (self.bid > 0) & (self.ask > 0)

    def crossed_pct(self) -> np.ndarray:
        """Per instrument: % of samples with best bid > best ask over all venues."""
        return 100.0 * ((self.bid > self.ask) & self.two_sided).mean(axis=0)

    def locked_pct(self) -> np.ndarray:
        """Per instrument: % of samples with best bid == best ask over all venues."""
        return 100.0 * ((self.bid == self.ask) & self.two_sided).mean(axis=0)

    def spread_ticks(self) -> np.ndarray:
        """Per instrument: the mean consolidated spread in ticks (two-sided samples)."""
        s = np.where(self.two_sided, self.ask - self.bid, 0)
        return s.sum(axis=0) / np.maximum(self.two_sided.sum(axis=0), 1)

    def mids(self) -> np.ndarray:
        """Consolidated mids in price units (NaN where a side is missing)."""
        m = (self.bid + self.ask) * 0.5 * self.ticks
        return np.where(self.two_sided, m, np.nan)


def sample_market(profile: Profile, seconds: float, *, interval_ms: float = 10.0,
                  venues: Sequence[str] | None = None, start_ns: int = 0,
                  seed: int = 0) -> MarketSample:
    """Run the profile's simulated venues (``sim_source``) for ``seconds`` of market time into
    a ``MarketData`` stage and sample every instrument's consolidated BBO once per
    ``interval_ms``, each sample at a seeded uniform instant within its interval.

    The instants are random, not on a fixed grid: the simulation moves its fair values on a
    1 ms grid and the venues re-quote at those instants, so samples always taken at the same
    phase of that grid would always see the same stage of the venues' re-quotes arriving (at
    whole milliseconds: none of them yet) and hide the short windows in which one venue has
    re-quoted and another not yet."""
    from engine.feeds.marketdata import MarketData, MarketDataConfig
    from engine.node import sim_source

    names = list(venues or profile.feed.venues)
    src = sim_source(profile, names, start_ns)
    md = MarketData(MarketDataConfig.from_profile(profile, names), profile.instruments, [src])
    md.start(start_ns)
    step = int(interval_ms * 1e6)
    n = int(seconds * 1e9) // step
    rng = np.random.default_rng(seed)
    t_ns = start_ns + np.arange(n, dtype=np.int64) * step + rng.integers(1, step + 1, n)
    n_i = len(profile.instruments)
    bid = np.empty((n, n_i), dtype=np.int64)
    ask = np.empty((n, n_i), dtype=np.int64)
    bbo = md.books.bbo
    for k, t in enumerate(t_ns.tolist()):
        md.step(t)
        bid[k] = bbo["bid_px"]
        ask[k] = bbo["ask_px"]
    md.close()
    sim = src.sim
    return MarketSample(symbols=tuple(i.symbol for i in profile.instruments),
                        ticks=np.array([i.tick for i in profile.instruments]), t_ns=t_ns,
                        bid=bid, ask=ask, events=sim.events, requotes=sim.requotes,
                        records=md.applied, seconds=float(seconds))


def fit_pair(a: np.ndarray, b: np.ndarray, dt_s: float,
             beta: float | None = None) -> tuple[float, float, float]:
    """A pair's hedge ratio, its spread's half-life and standard deviation, from two price
    series sampled every ``dt_s``: the slope of an OLS of ``b`` on ``a`` (with an intercept);
    then the spread ``b − beta·a`` (``beta`` given, else the fitted slope), demeaned: the
    half-life of its AR(1) (``inf`` when it does not revert) and its standard deviation.

    Sample at a second or so, not at every tick: the mids carry a tick of rounding noise,
    which at 100 ms steps (where a spread of a minute's half-life reverts by 0.1 % a step)
    already halves the fitted half-life. And a slope fitted over a short span absorbs the
    spread's slow swings, leaving a residual that looks faster than the spread is: give the
    configured ``beta`` to see the spread itself."""
    x = np.column_stack([np.ones_like(a), a])
    coef, *_ = np.linalg.lstsq(x, b, rcond=None)
    slope = float(coef[1])
    res = b - (slope if beta is None else beta) * a
    res = res - res.mean()
    z, y = res[:-1], res[1:]
    phi = float((z @ y) / (z @ z))
    hl = -math.log(2) / math.log(phi) * dt_s if 0 < phi < 1 else math.inf
    return slope, hl, float(res.std())


# -- A SYNTHETIC UNIVERSE --------------------------------------------------------------------------
def universe_profile_text(n_instruments: int, n_pairs: int,
                          venues: Sequence[str] = ("SIMA", "SIMB"), seed: int = 7, *,
                          instance: str = "universe", update_hz: float = 50.0,
                          tick: float = 0.01, price_range: tuple[float, float] = (10.0, 500.0),
                          rel_beta_range: tuple[float, float] = (0.5, 2.0),
                          half_life_range_s: tuple[float, float] = (30.0, 600.0),
                          spread_bp_range: tuple[float, float] = (2.0, 20.0)) -> str:
    """Profile TOML text: ``n_instruments`` instruments ``S0000``… (prices log-uniform in
    ``price_range``, rounded to ``tick``) quoted by the simulated ``venues``, and ``n_pairs``
    cointegrated pairs with disjoint legs (S0000 leads S0001, S0002 leads S0003, …). Each
    pair's b moves ``rel`` times a's returns (``rel`` log-uniform in ``rel_beta_range``; the
    profile's ``beta`` is then ``rel × price_b / price_a``), with a half-life and a spread
    (bp) log-uniform in their ranges. Seeded: the same arguments give the same text. Append
    sections (``[[strategies]]``, ``[limits]``…) as needed."""
    if not 1 <= n_instruments <= 4096:
        raise ValueError(f"n_instruments must be 1..4096 (a profile's limit), was "
                         f"{n_instruments}")
    if not 0 <= n_pairs <= n_instruments // 2:
        raise ValueError(f"n_pairs must be 0..{n_instruments // 2} (disjoint legs), was "
                         f"{n_pairs}")
    if not 1 <= len(venues) <= 16:
        raise ValueError(f"need 1..16 venues, was {len(venues)}")
    lo, hi = price_range
    if not 20 * tick <= lo <= hi:
        raise ValueError(f"price_range must be at least 20 ticks and ordered, was {price_range}")
    rng = np.random.default_rng(seed)

    def log_uniform(r: tuple[float, float], size: int) -> np.ndarray:
        return np.exp(rng.uniform(math.log(r[0]), math.log(r[1]), size))

    decimals = tick_decimals(tick)
    prices = np.maximum(np.round(log_uniform(price_range, n_instruments) / tick), 20) * tick
    rel = log_uniform(rel_beta_range, n_pairs)
    half_lives = log_uniform(half_life_range_s, n_pairs)
    spreads = log_uniform(spread_bp_range, n_pairs)
    sym = [f"S{k:04d}" for k in range(n_instruments)]
    names = ", ".join(f'"{v}"' for v in venues)
    lines = [f"# A synthetic universe: {n_instruments} instruments, {n_pairs} cointegrated pairs "
             f"(engine.backtest.synth.universe_profile_text, seed {seed})",
             "[engine]", f'instance = "{instance}"', "",
             "[feed]", 'kind = "simvenues"', f"venues = [{names}]", f"seed = {seed}",
             "pairs = ["]
    for k in range(n_pairs):
        a, b = 2 * k, 2 * k + 1
        beta = rel[k] * prices[b] / prices[a]
        lines.append(f'  {{ a = "{sym[a]}", b = "{sym[b]}", beta = {beta:.6f}, '
                     f"half_life_s = {half_lives[k]:.1f}, spread_bp = {spreads[k]:.2f} }},")
    lines += ["]", ""]
    for k in range(n_instruments):
        lines += ["[[instruments]]", f'symbol = "{sym[k]}"', f"tick = {tick!r}",
                  f"price = {prices[k]:.{decimals}f}", f"update_hz = {update_hz!r}", ""]
    return "\n".join(lines)
