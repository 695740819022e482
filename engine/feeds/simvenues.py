"""A seeded simulated multi-venue feed: MD_EVENT batches from several venues quoting the same
instruments, with cointegrated pairs, trades, bursts and per-venue latency.

``SimVenues`` is the feed the engine, the backtests and the benches use when no real venue is
there. It writes MD_EVENT records (``engine.core.events``) into the caller's ``EventBuffer``,
exactly as a FIX feed handler does, so everything downstream runs unchanged::

    sim = SimVenues([("AAA", 0.01, 100.0), ("BBB", 0.01, 50.0)],
                    [("SIMA", 0, 150), ("SIMB", 1, 400)],
                    pairs=[(0, 1, 0.5, 30.0, 5.0)], seed=7)
    books.apply_batch(sim.snapshot(now_ns))     # once: CLEAR + NEW levels, F_SNAPSHOT
    # each engine loop turn:
    buf.clear()
    sim.step(now_ns, buf)                       # every record received by now_ns
    ... buf.view() ...
    sim.next_due_ns                             # when the next record arrives

The model
---------
*Efficient prices* (price units, one per instrument) move on a time grid of ``grid_ms``:

- a free instrument follows an arithmetic random walk, ``dP = vol · P0 · dW`` (``vol`` is
  relative, per √second: 2e-4 by default, 2 bp per √s, about 3 % over a 6.5 h day);
- a pair ``(i, j, beta, half_life_s, spread_bp)`` makes j follow i:
  ``P_j(t) = beta · P_i(t) + c + S(t)`` with ``c = P0_j − beta · P0_i`` and ``S`` an
  Ornstein-Uhlenbeck spread of stationary standard deviation ``sd = spread_bp · 1e-4 · P0_j``
  and mean-reversion rate ``κ = ln 2 / half_life_s``, ``S(0) = 0``, stepped exactly
  (``S' = S e^{−κ dt} + sd √(1 − e^{−2κ dt}) Z``). ``P_i`` and ``P_j`` are then cointegrated
  with vector ``(−beta, 1)`` (``beta``: the hedge ratio, in price units): the spread reverts
  with half-life ``half_life_s`` and stays within a few ``spread_bp`` of j's price, while each
  price wanders like a random walk, so their levels are strongly correlated. The spread is
  given in basis points, not in price per √s, so that one figure means the same for a $20
  stock and a 5000-point future. j's own ``vol`` is unused. A leg j must not be a leg of
  another pair as j, nor an i anywhere (no chains).

*Venues* quote each instrument around its efficient price, in integer ticks: venue v's fair
value is ``m = P / tick + offset_ticks``; at each of its events it quotes around
``m + noise_ticks · Z`` (Z fresh at each event): best bid ``floor(mid − spread/2 + ½)``, kept
so that the quote brackets its fair value (``bid < m < bid + spread_ticks``; ``bid <= m`` when
m is a whole tick and the spread one tick) and at least ``depth`` ticks (so every level is a
positive price), best ask ``bid + spread_ticks``, and ``depth`` levels a side one tick apart
(sizes of 1 to 20 lots). The noise picks where in that bracket a venue sits, so venues
disagree by a tick or so, as real ones do; a venue never crosses itself.

A venue also re-quotes whenever its fair value leaves its quote (checked at each grid step,
before that step's drawn events: a *forced* re-quote, counted in ``requotes``), as a market
maker does before a stale quote is picked off. So every venue's quote contains the same
efficient price at every moment of exchange time, and the consolidated book (best bid over
all venues, best ask over all venues) is never crossed or locked by venues disagreeing: only
in the instants between two venues' re-quotes arriving over their different wire delays (tens
of µs; ``bench/market.py`` measures it), or by offsets set further apart than the spreads. An
instrument whose price moves many ticks per second therefore has more events than its
``rate_hz``: some 2 to 6 × (ticks it moves per √s / spread in ticks)² re-quotes a second more
on each venue (measured: 2 ticks wide, 4 ticks per √s, 15 a second), the rate at which a real
book's touch moves. An instrument of rate 0 is never re-quoted.

*Drawn events* arrive per instrument and venue as a Poisson process of ``rate_hz`` (per
instrument and venue; ``rate_hz`` may be one figure or one per instrument), all multiplied by
``burst_factor`` during a *burst*: bursts start as a Poisson process of one every
``burst_every_s`` on average and last ``burst_len_s``, market-wide. An event is, with
probability ``trade_prob``, a trade at the venue's touch (buyer or seller at random, less than
the touch's size: a TRADE record, then the touch's new size), else the venue re-quotes: if its
best bid moved, the levels that left are deleted and the new ones added (the side moving away
first, so the book is never crossed even between records), else one level's size changes.
Records follow ``engine.venue.exchange``'s level discipline: deletes first (``level`` counted
as the book is after the deletes above it), then NEWs top down; a NEW never pushes a level
past ``depth``.

*Wire*: the venue stamps ``exch_ns`` (the event's time); we receive it at
``recv_ns = exch_ns + latency + jitter`` (jitter exponential, mean ``jitter_us``), never
before that venue's previous record (one TCP stream a venue: arrival order is send order).
Records come out in ``recv_ns`` order across venues. ``seq`` counts per venue and instrument
stream (channel ``instrument % channels``), one per record, as FIX RptSeq does, so
``engine.feeds.integrity.FeedIntegrity`` checks this feed as it checks a FIX one; a snapshot's
records carry the ``seq`` of the last record delivered, and ``loss_prob`` drops delivered
records at random (the books never see them; the snapshot still has the truth) to exercise the
gap path.

Determinism: the whole stream is a function of the seed and the configuration. Generation runs
in blocks of a fixed span of exchange time (``block_events`` at the base rate), ahead of
delivery only as far as the step calls ask; ``step`` boundaries, buffer sizes and snapshot
calls change how records are batched, never which records there are or their bytes (except
that a snapshot shows the books as delivered at the moment it is taken). If the caller falls
more than ``max_lag_s`` behind (an engine that was stopped), the feed skips ahead: prices do
not move across the skipped time and nothing is sent for it.

Cost: prices, event times, instruments, venues and noise are drawn with numpy a block at a
time; one compiled pass (``_gen_kernel``, numba) checks every venue's quote against its fair
value at each grid step (venues × instruments a millisecond: 2 M checks per second of market
time for 1000 instruments on 2 venues, a few ms), turns the block's forced and drawn events
into records and keeps the venues' ladders; the block is merged into the in-flight pool by
``recv_ns`` (a stable sort), and ``step`` copies the due records into the caller's buffer and
replays them into the delivered books (``_apply_kernel``) that ``snapshot`` reads. The
per-event Python work is nil; see ``simfeed_events_per_s`` (records generated per second) in
issue 5's report. Each kernel's plain-Python form (``.py_func``) is tested against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numba import njit

from engine.core.events import (
    ASK,
    BID,
    BUY,
    CHANGE,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    MD_EVENT,
    NEW,
    QUOTE,
    SELL,
    TRADE,
    EventBuffer,
)

__all__ = ["SimInstrument", "SimPair", "SimVenue", "SimVenues"]

_NEVER = 1 << 62
_POOL = 1024  # normal and exponential draws a block for its forced re-quotes (reused in turn)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimInstrument:
    """An instrument every venue quotes: tick, starting price, relative vol per √second."""

    symbol: str
    tick: float
    price: float
    vol: float = 2e-4

    def __post_init__(self) -> None:
        if not (self.tick > 0 and self.price > 0 and self.vol >= 0):
            raise ValueError(f"instrument {self.symbol!r}: tick and price must be > 0 and vol "
                             f">= 0, were {self.tick}, {self.price}, {self.vol}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimVenue:
    """A venue: its quotes' offset from the efficient price and noise (ticks), its spread
    (ticks), and the wire's latency and jitter (µs)."""

    name: str
    offset_ticks: float = 0.0
    latency_us: float = 100.0
    jitter_us: float = 20.0
    noise_ticks: float = 0.3
    spread_ticks: int = 1

    def __post_init__(self) -> None:
        if self.latency_us < 0 or self.jitter_us < 0 or self.noise_ticks < 0 \
                or self.spread_ticks < 1:
            raise ValueError(f"venue {self.name!r}: latency, jitter and noise must be >= 0 and "
                             f"spread_ticks >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimPair:
    """Instrument j follows instrument i: ``P_j = beta·P_i + c + S``, S an OU spread with
    ``half_life_s`` and a stationary standard deviation of ``spread_bp`` basis points of j's
    starting price."""

    i: int
    j: int
    beta: float
    half_life_s: float
    spread_bp: float

    def __post_init__(self) -> None:
        if self.i == self.j or not (math.isfinite(self.beta) and self.beta > 0) \
                or not 0 < self.half_life_s < math.inf or not 0 <= self.spread_bp < math.inf:
            raise ValueError(f"pair ({self.i}, {self.j}): the legs must differ, beta and "
                             f"half_life_s must be > 0 and spread_bp >= 0, were {self.beta}, "
                             f"{self.half_life_s}, {self.spread_bp}")


def _as(cls: type, x: object, names: Sequence[str]):  # noqa: ANN202
    if isinstance(x, cls):
        return x
    if isinstance(x, dict):
        return cls(**x)
    return cls(**dict(zip(names, x)))  # a tuple, in the documented order


# -- KERNELS ---------------------------------------------------------------------------------
# Records are written as MD_EVENT's 8 little-endian words (see engine.feeds.normalize): word 0
# = kind | venue<<8 | side<<16 | action<<24 | level<<32 | flags<<40 | channel<<48.

def _xorshift(x):
    """xorshift32 in int64 arithmetic (no overflow: numba and Python agree)."""
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def _gen_kernel(mt, off, t0, g, step_of, t_ns, inst, ven, nz, u, jitter, zpool, epool, noise,
                jit_ns, live, bid0, bsz, asz, seq, trade_id, last_recv, spread, min_bid, lat_ns,
                depth, n_channels, p_trade, lot, rng, pos, out, ops):
    """One block's events → records in ``out`` (int64 (cap, 8)); stops before ``out`` could
    overflow. ``mt``: fair values in ticks (steps + 1, n_instruments), row k during step k.
    At each step's start every venue whose quote no longer brackets its fair value re-quotes
    (a *forced* event: noise and jitter from ``zpool``/``epool``), then the step's drawn
    events (``t_ns``… sorted, ``step_of`` their step) run. ``pos``: int64 [step, key of the
    step's checks (venue · n_instruments + instrument), next drawn event, forced events so
    far], where to resume. Returns the records written. ``ops``: int64 (4·depth + 4, 6)
    scratch: one event's records as (kind, side, action, level, price, size/aux)."""
    cap = out.shape[0]
    steps = mt.shape[0] - 1
    n_i = mt.shape[1]
    n_q = spread.shape[0] * n_i
    n_ev = t_ns.shape[0]
    n_pool = zpool.shape[0]
    D = depth
    x = rng[0]
    k = pos[0]
    q = pos[1]
    e = pos[2]
    c_forced = pos[3]
    w = 0
    while k < steps and w + 4 * D + 4 <= cap:
        # -- the next event: this step's forced re-quotes first, then its drawn events
        if q < n_q:
            v = q // n_i
            i = q - v * n_i
            q += 1
            m = mt[k, i] + off[v]
            b = bid0[v, i]
            if not live[i] or not (m < b or m > b + spread[v]) or (m < b and b <= min_bid[i]):
                continue
            t = t0 + k * g
            cc = c_forced % n_pool
            c_forced += 1
            mid = m + noise[v] * zpool[cc]
            jit = np.int64(epool[cc] * jit_ns[v])
            uu = 1.0  # never a trade
        elif e < n_ev and step_of[e] == k:
            i = inst[e]
            v = ven[e]
            t = t_ns[e]
            m = mt[k, i] + off[v]
            mid = m + nz[e]
            jit = jitter[e]
            uu = u[e]
            e += 1
        else:
            k += 1
            q = 0
            continue
        # -- the event
        r = t + lat_ns[v] + jit
        if r < last_recv[v]:
            r = last_recv[v]
        last_recv[v] = r
        sp = spread[v]
        b = bid0[v, i]
        a = b + sp
        n_ops = 0  # records this event
        aux = 0
        if uu < p_trade:
            x = _xorshift(x)
            buy = (x >> 7) & 1
            s = asz[v, i, 0] if buy else bsz[v, i, 0]
            x = _xorshift(x)
            if s > 1:
                qty = 1 + (x >> 3) % (s - 1)
                trade_id[v] += 1
                aux = trade_id[v]
                ops[0, 0] = TRADE
                ops[0, 1] = BUY if buy else SELL
                ops[0, 2] = NEW
                ops[0, 3] = 0
                ops[0, 4] = a if buy else b
                ops[0, 5] = qty
                ops[1, 0] = QUOTE
                ops[1, 1] = ASK if buy else BID
                ops[1, 2] = CHANGE
                ops[1, 3] = 0
                ops[1, 4] = a if buy else b
                ops[1, 5] = s - qty
                if buy:
                    asz[v, i, 0] = s - qty
                else:
                    bsz[v, i, 0] = s - qty
                n_ops = 2
        if n_ops == 0:
            # the new best bid: around mid, but bid < m < bid + sp (bid <= m when m is a
            # whole tick and sp is 1), and at least min_bid
            nb = np.int64(math.floor(mid - sp / 2.0 + 0.5))
            lo = np.int64(math.floor(m)) + 1 - sp
            hi = np.int64(math.ceil(m)) - 1
            if hi < lo:
                hi = lo
            if nb < lo:
                nb = lo
            elif nb > hi:
                nb = hi
            if nb < min_bid[i]:
                nb = min_bid[i]
            d = nb - b
            if d == 0:  # the touch stays: one level's size changes
                x = _xorshift(x)
                side = (x >> 9) & 1
                x = _xorshift(x)
                lv1 = (x >> 4) % D
                x = _xorshift(x)
                lv2 = (x >> 4) % D
                lv = lv1 if lv1 < lv2 else lv2  # the top changes most
                x = _xorshift(x)
                sz = lot * (1 + (x >> 5) % 20)
                ops[0, 0] = QUOTE
                ops[0, 1] = side
                ops[0, 2] = CHANGE
                ops[0, 3] = lv
                ops[0, 4] = (b - lv) if side == BID else (a + lv)
                ops[0, 5] = sz
                if side == BID:
                    bsz[v, i, lv] = sz
                else:
                    asz[v, i, lv] = sz
                n_ops = 1
            else:
                na = nb + sp
                c = d if d > 0 else -d
                if c > D:
                    c = D
                for phase in range(2):
                    # up: asks first, then bids; down: bids first (never crossed)
                    side = (ASK if phase == 0 else BID) if d > 0 else (BID if phase == 0 else ASK)
                    away = (side == ASK) == (d > 0)  # this side's best moves away (loses top)
                    lad = asz if side == ASK else bsz
                    if away:
                        # delete the top c, the others move up; new levels at the bottom
                        for j in range(c):
                            ops[n_ops, 0] = QUOTE
                            ops[n_ops, 1] = side
                            ops[n_ops, 2] = DELETE
                            ops[n_ops, 3] = 0
                            ops[n_ops, 4] = (a + j) if side == ASK else (b - j)
                            ops[n_ops, 5] = 0
                            n_ops += 1
                        for j in range(D - c):
                            lad[v, i, j] = lad[v, i, j + c]
                        for j in range(D - c, D):
                            x = _xorshift(x)
                            lad[v, i, j] = lot * (1 + (x >> 5) % 20)
                            ops[n_ops, 0] = QUOTE
                            ops[n_ops, 1] = side
                            ops[n_ops, 2] = NEW
                            ops[n_ops, 3] = j
                            ops[n_ops, 4] = (na + j) if side == ASK else (nb - j)
                            ops[n_ops, 5] = lad[v, i, j]
                            n_ops += 1
                    else:
                        # delete the bottom c; new levels on top
                        for j in range(c):
                            ops[n_ops, 0] = QUOTE
                            ops[n_ops, 1] = side
                            ops[n_ops, 2] = DELETE
                            ops[n_ops, 3] = D - c
                            ops[n_ops, 4] = (a + D - c + j) if side == ASK else (b - (D - c + j))
                            ops[n_ops, 5] = 0
                            n_ops += 1
                        for j in range(D - 1, c - 1, -1):
                            lad[v, i, j] = lad[v, i, j - c]
                        for j in range(c):
                            x = _xorshift(x)
                            lad[v, i, j] = lot * (1 + (x >> 5) % 20)
                            ops[n_ops, 0] = QUOTE
                            ops[n_ops, 1] = side
                            ops[n_ops, 2] = NEW
                            ops[n_ops, 3] = j
                            ops[n_ops, 4] = (na + j) if side == ASK else (nb - j)
                            ops[n_ops, 5] = lad[v, i, j]
                            n_ops += 1
                bid0[v, i] = nb
        ch = i % n_channels
        head = (v << 8) | (ch << 48)
        for j in range(n_ops):
            seq[v, i] += 1
            kind = ops[j, 0]
            out[w, 0] = (kind | head | ops[j, 1] << 16 | ops[j, 2] << 24 | ops[j, 3] << 32
                         | ((F_LAST << 40) if j == n_ops - 1 else 0))
            out[w, 1] = i
            out[w, 2] = seq[v, i]
            out[w, 3] = t
            out[w, 4] = r
            out[w, 5] = ops[j, 4]
            out[w, 6] = ops[j, 5]
            out[w, 7] = aux if kind == TRADE else 0
            w += 1
    rng[0] = x
    pos[0] = k
    pos[1] = q
    pos[2] = e
    pos[3] = c_forced
    return w


def _apply_kernel(words, px, sz, cnt, dseq, bad):
    """Replay delivered records (int64 (n, 8)) into the delivered books ``px``/``sz`` (int64
    (V, I, 2, D)), ``cnt`` (V, I, 2), ``dseq`` (V, I); ``bad[0]`` counts records that do not
    fit the book (never expected: the tests hold it at 0)."""
    D = px.shape[3]
    for r in range(words.shape[0]):
        w0 = words[r, 0]
        kind = w0 & 0xFF
        v = (w0 >> 8) & 0xFF
        side = (w0 >> 16) & 0xFF
        action = (w0 >> 24) & 0xFF
        lv = (w0 >> 32) & 0xFF
        i = words[r, 1]
        dseq[v, i] = words[r, 2]
        if kind != QUOTE:
            continue
        n = cnt[v, i, side]
        p = words[r, 5]
        s = words[r, 6]
        sgn = 1 if side == ASK else -1  # asks go up, bids down
        if action == NEW:
            if lv > n or n >= D or (lv > 0 and (p - px[v, i, side, lv - 1]) * sgn <= 0) \
                    or (lv < n and (px[v, i, side, lv] - p) * sgn <= 0):
                bad[0] += 1
                continue
            for j in range(n, lv, -1):
                px[v, i, side, j] = px[v, i, side, j - 1]
                sz[v, i, side, j] = sz[v, i, side, j - 1]
            px[v, i, side, lv] = p
            sz[v, i, side, lv] = s
            cnt[v, i, side] = n + 1
        elif action == CHANGE:
            if lv >= n or px[v, i, side, lv] != p:
                bad[0] += 1
                continue
            sz[v, i, side, lv] = s
        elif action == DELETE:
            if lv >= n or (p != 0 and px[v, i, side, lv] != p):
                bad[0] += 1
                continue
            for j in range(lv, n - 1):
                px[v, i, side, j] = px[v, i, side, j + 1]
                sz[v, i, side, j] = sz[v, i, side, j + 1]
            px[v, i, side, n - 1] = 0
            sz[v, i, side, n - 1] = 0
            cnt[v, i, side] = n - 1
        elif action == CLEAR:
            for j in range(D):
                px[v, i, side, j] = 0
                sz[v, i, side, j] = 0
            cnt[v, i, side] = 0
        if (w0 >> 40) & F_LAST and cnt[v, i, 0] > 0 and cnt[v, i, 1] > 0 \
                and px[v, i, 0, 0] >= px[v, i, 1, 0]:
            bad[0] += 1  # crossed at the end of a message


def _snapshot_kernel(keys, px, sz, cnt, dseq, lat_ns, n_channels, now_ns, out):
    """Snapshot records of ``keys`` (int64 (k, 2): venue, instrument) into ``out`` (int64
    (cap, 8), big enough); returns how many."""
    w = 0
    for q in range(keys.shape[0]):
        v = keys[q, 0]
        i = keys[q, 1]
        head = (v << 8) | ((i % n_channels) << 48) | (F_SNAPSHOT << 40)
        exch = now_ns - lat_ns[v] if now_ns > lat_ns[v] else 0
        for side in range(2):
            out[w, 0] = QUOTE | head | side << 16 | CLEAR << 24
            out[w, 1] = i
            out[w, 2] = dseq[v, i]
            out[w, 3] = exch
            out[w, 4] = now_ns
            out[w, 5] = 0
            out[w, 6] = 0
            out[w, 7] = 0
            w += 1
        for side in range(2):
            for j in range(cnt[v, i, side]):
                out[w, 0] = QUOTE | head | side << 16 | NEW << 24 | j << 32
                out[w, 1] = i
                out[w, 2] = dseq[v, i]
                out[w, 3] = exch
                out[w, 4] = now_ns
                out[w, 5] = px[v, i, side, j]
                out[w, 6] = sz[v, i, side, j]
                out[w, 7] = 0
                w += 1
        out[w - 1, 0] |= F_LAST << 40
    return w


_xorshift = njit(cache=True, inline="always")(_xorshift)
_gen_nb = njit(cache=True, nogil=True)(_gen_kernel)
_apply_nb = njit(cache=True, nogil=True)(_apply_kernel)
_snapshot_nb = njit(cache=True, nogil=True)(_snapshot_kernel)


# -- THE FEED --------------------------------------------------------------------------------
class SimVenues:
    """A deterministic simulated multi-venue feed of MD_EVENT records (module docstring)."""

    def __init__(self, instruments: Sequence, venues: Sequence, pairs: Sequence = (), *,
                 seed: int = 1, rate_hz: float | Sequence[float] = 50.0, depth: int = 10,
                 trade_prob: float = 0.05, burst_every_s: float = 30.0,
                 burst_len_s: float = 1.0, burst_factor: float = 10.0, channels: int = 1,
                 start_ns: int = 0, grid_ms: float = 1.0, block_events: int = 4096,
                 loss_prob: float = 0.0, lot: int = 100, max_lag_s: float = 5.0,
                 compiled: bool = True) -> None:
        self.instruments = [_as(SimInstrument, x, ("symbol", "tick", "price", "vol"))
                            for x in instruments]
        self.venues = [_as(SimVenue, x, ("name", "offset_ticks", "latency_us", "jitter_us",
                                         "noise_ticks", "spread_ticks")) for x in venues]
        self.pairs = [_as(SimPair, x, ("i", "j", "beta", "half_life_s", "spread_bp"))
                      for x in pairs]
        n_i, n_v = len(self.instruments), len(self.venues)
        if not 1 <= n_v <= 255 or n_i < 1:
            raise ValueError(f"need 1..255 venues and at least one instrument, were {n_v} and "
                             f"{n_i}")
        if not 1 <= depth <= 64:
            raise ValueError(f"depth must be 1..64, was {depth}")
        if not 1 <= channels < 1 << 15:
            raise ValueError(f"channels must be 1..32767, was {channels}")
        rates = np.broadcast_to(np.asarray(rate_hz, dtype=np.float64), (n_i,)).copy()
        if (rates < 0).any() or not 0 <= trade_prob <= 1 or not 0 <= loss_prob < 1 \
                or burst_factor < 1 or grid_ms <= 0 or block_events < 1 or lot < 1:
            raise ValueError("rates must be >= 0, trade_prob and loss_prob in [0, 1), "
                             "burst_factor >= 1, grid_ms > 0, block_events and lot >= 1")
        deps = [p.j for p in self.pairs]
        for p in self.pairs:
            if not (0 <= p.i < n_i and 0 <= p.j < n_i):
                raise ValueError(f"pair ({p.i}, {p.j}): no such instrument")
            if deps.count(p.j) > 1 or p.i in deps:
                raise ValueError(f"pair ({p.i}, {p.j}): a leg j may follow one instrument "
                                 f"only, and may not be followed itself")
        self.depth = depth
        self.channels = channels
        self.seed = seed
        self.trade_prob = float(trade_prob)
        self.loss_prob = float(loss_prob)
        self.lot = lot
        self.burst_every_s = float(burst_every_s)
        self.burst_len_s = float(burst_len_s)
        self.burst_factor = float(burst_factor)
        self.rates = rates
        self._grid_ns = max(1, int(round(grid_ms * 1e6)))
        total = float(rates.sum()) * n_v
        steps = int(block_events / total * 1e9 / self._grid_ns) if total > 0 else 1
        self._block_steps = min(max(1, steps), max(1, int(1e9 // self._grid_ns)))
        self._max_lag_ns = int(max_lag_s * 1e9)
        self._compiled = compiled
        self._gen = _gen_nb if compiled else _gen_kernel
        self._apply = _apply_nb if compiled else _apply_kernel
        self._snap = _snapshot_nb if compiled else _snapshot_kernel
        # -- the model's state
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._loss_rng = np.random.Generator(np.random.PCG64([seed, 1]))
        self._ticks = np.array([x.tick for x in self.instruments])
        self._p0 = np.array([x.price for x in self.instruments])
        # an instrument quoted at rate 0 stands still: its snapshot is all it ever shows
        self._sigma = np.array([x.vol * x.price for x in self.instruments]) * (rates > 0)
        self._price = self._p0.copy()  # efficient prices at the generation horizon
        self._dep = np.array([p.j for p in self.pairs], dtype=np.int64)
        self._lead = np.array([p.i for p in self.pairs], dtype=np.int64)
        self._beta = np.array([p.beta for p in self.pairs])
        self._c = self._p0[self._dep] - self._beta * self._p0[self._lead] if self.pairs \
            else np.zeros(0)
        kappa = np.array([math.log(2) / p.half_life_s for p in self.pairs])
        dt = self._grid_ns / 1e9
        self._ou_a = np.exp(-kappa * dt)
        # S' = a S + sd √(1 − a²) Z keeps S's stationary sd at sd, whatever the grid
        sd = np.array([p.spread_bp * 1e-4 for p in self.pairs]) * self._p0[self._dep] \
            if self.pairs else np.zeros(0)
        self._ou_b = sd * np.sqrt(1 - self._ou_a ** 2)
        self._spread = np.zeros(len(self.pairs))  # S of each pair
        self._burst_left = 0  # grid steps of the current burst still to come
        self.bursts = 0
        # per key (instrument, venue): cumulative weights for drawing which one an event is
        w = np.repeat(rates, n_v)
        self._cumw = np.cumsum(w)
        self._total_rate = float(self._cumw[-1]) if w.size else 0.0
        # venues
        self._offset = np.array([v.offset_ticks for v in self.venues])
        self._noise = np.array([v.noise_ticks for v in self.venues])
        self._jitter_ns = np.array([v.jitter_us * 1e3 for v in self.venues])
        self._lat_ns = np.array([int(v.latency_us * 1e3) for v in self.venues], dtype=np.int64)
        self._spread_t = np.array([v.spread_ticks for v in self.venues], dtype=np.int64)
        self._min_bid = np.full(n_i, depth, dtype=np.int64)
        self._live = (rates > 0).astype(np.int64)  # an instrument of rate 0 is never quoted anew
        # the venues' ladders (generation side) and the books as delivered (snapshot side):
        # each venue's first quote brackets its fair value, as every later one does
        m0 = self._p0[None, :] / self._ticks[None, :] + self._offset[:, None]
        sp = self._spread_t[:, None]
        lo = np.floor(m0).astype(np.int64) + 1 - sp
        hi = np.maximum(np.ceil(m0).astype(np.int64) - 1, lo)
        bid0 = np.clip(np.floor(m0 - sp / 2.0 + 0.5).astype(np.int64), lo, hi)
        self._bid0 = np.maximum(bid0, self._min_bid[None, :])
        self._bsz = lot * self._rng.integers(1, 21, size=(n_v, n_i, depth), dtype=np.int64)
        self._asz = lot * self._rng.integers(1, 21, size=(n_v, n_i, depth), dtype=np.int64)
        self._seq = np.zeros((n_v, n_i), dtype=np.int64)
        self._trade_id = np.zeros(n_v, dtype=np.int64)
        self._last_recv = np.zeros(n_v, dtype=np.int64)
        self._xs = np.array([(seed * 2654435761 + 1) & 0xFFFFFFFF or 1], dtype=np.int64)
        self._gen_pos = np.zeros(4, dtype=np.int64)  # the generation kernel's resume point
        self._forced_est = 64  # forced re-quotes in the last block: sizes the next's buffer
        self._ops = np.zeros((4 * depth + 4, 6), dtype=np.int64)
        lv = np.arange(depth)
        self._dpx = np.zeros((n_v, n_i, 2, depth), dtype=np.int64)
        self._dpx[:, :, BID, :] = self._bid0[:, :, None] - lv
        self._dpx[:, :, ASK, :] = (self._bid0 + self._spread_t[:, None])[:, :, None] + lv
        self._dsz = np.zeros_like(self._dpx)
        self._dsz[:, :, BID, :] = self._bsz
        self._dsz[:, :, ASK, :] = self._asz
        self._dcnt = np.full((n_v, n_i, 2), depth, dtype=np.int64)
        self._dseq = np.zeros((n_v, n_i), dtype=np.int64)
        self._bad = np.zeros(1, dtype=np.int64)
        # -- generation clock and the in-flight pool (records generated, not yet delivered)
        self._t = int(start_ns)  # exchange time generated up to (the horizon)
        self._pool = np.zeros(0, dtype=MD_EVENT)
        self._lost = np.zeros(0, dtype=np.bool_)
        self._pos = 0
        #: counters: events and records generated (``requotes`` of the events: re-quotes
        #: forced by the fair value leaving a venue's quote), records delivered and lost, skips
        self.events = 0
        self.requotes = 0
        self.records = 0
        self.delivered = 0
        self.lost = 0
        self.skips = 0

    # -- PUBLIC ----------------------------------------------------------------------------------
    @property
    def n_venues(self) -> int:
        return len(self.venues)

    @property
    def n_instruments(self) -> int:
        return len(self.instruments)

    @property
    def violations(self) -> int:
        """Delivered records that did not fit the delivered book (a bug if ever > 0)."""
        return int(self._bad[0])

    @property
    def next_due_ns(self) -> int:
        """``recv_ns`` of the next record to deliver (generating as far as needed to know)."""
        if self._total_rate <= 0 and self._pos >= len(self._pool):
            return _NEVER
        for _ in range(64):  # at most 64 blocks ahead (a very slow feed): then "not before"
            pool, pos = self._pool, self._pos
            while pos < len(pool) and self._lost[pos]:
                pos += 1
            if pos < len(pool) and int(pool["recv_ns"][pos]) <= self._t:
                return int(pool["recv_ns"][pos])
            if self._total_rate <= 0:
                return int(pool["recv_ns"][pos]) if pos < len(pool) else _NEVER
            self._block()
        return self._t

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the generation, delivery and snapshot kernels
        now, at start-up, on a throwaway one-book feed of the same kind: a first call in the
        loop would stall it for seconds on a fresh install (the books go stale, the kill
        switches trip). This feed's random draws are untouched."""
        if not self._compiled:
            return
        from dataclasses import replace

        probe = SimVenues(self.instruments[:1],
                          [replace(self.venues[0], latency_us=0.0, jitter_us=0.0)],
                          seed=self.seed, rate_hz=1000.0, depth=self.depth,
                          trade_prob=self.trade_prob, channels=self.channels, lot=self.lot)
        probe.step(probe._t + 100_000_000, EventBuffer(4096))
        probe.snapshot(0)

    def begin(self, t_ns: int) -> None:
        """Open the market at ``t_ns``: exchange time is generated from there (a feed built
        before its engine knew when the market opens). Only before anything was generated."""
        if self.events or len(self._pool):
            raise RuntimeError("the simulated market has begun already")
        self._t = int(t_ns)

    def fair_prices(self) -> np.ndarray:
        """The model's efficient prices (price units) at the generation horizon (a copy)."""
        return self._price.copy()

    def step(self, until_ns: int, out: EventBuffer) -> int:
        """Append to ``out`` every record received by ``until_ns`` (``recv_ns <= until_ns``),
        in arrival order, as far as ``out`` has room; return how many. Call again when
        ``out.full`` (the rest waits) or when ``next_due_ns`` comes."""
        if until_ns - self._t > self._max_lag_ns:
            self._skip_to(until_ns - self._max_lag_ns)
        n0 = out.n
        while True:
            self._deliver(min(until_ns, self._t), out)
            if out.n >= out.capacity or self._t >= until_ns:
                break
            self._block()
        return out.n - n0

    def snapshot(self, now_ns: int, keys: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
        """The books as delivered so far, as records: per (venue, instrument) in ``keys``
        (default: all), CLEAR BID, CLEAR ASK, then a NEW per level (bids, then asks), all
        F_SNAPSHOT, the last F_LAST too; ``seq`` = the stream's last delivered, ``recv_ns`` =
        ``now_ns``, ``exch_ns`` = ``now_ns`` − the venue's latency. A new array."""
        if keys is None:
            kv = np.array([(v, i) for v in range(self.n_venues)
                           for i in range(self.n_instruments)], dtype=np.int64)
        else:
            kv = np.array(list(keys), dtype=np.int64).reshape(-1, 2)
            if kv.size and ((kv[:, 0] < 0).any() or (kv[:, 0] >= self.n_venues).any()
                            or (kv[:, 1] < 0).any() or (kv[:, 1] >= self.n_instruments).any()):
                raise IndexError(f"keys must be (venue, instrument) within ({self.n_venues}, "
                                 f"{self.n_instruments})")
        out = np.zeros(len(kv) * (2 + 2 * self.depth), dtype=MD_EVENT)
        n = self._snap(kv, self._dpx, self._dsz, self._dcnt, self._dseq, self._lat_ns,
                       self.channels, int(now_ns), out.view(np.int64).reshape(-1, 8))
        return out[:n]

    # -- GENERATION ------------------------------------------------------------------------------
    def _skip_to(self, t_ns: int) -> None:
        """Jump the horizon to ``t_ns`` (the caller fell behind): nothing happens meanwhile."""
        span = self._block_steps * self._grid_ns
        gap = t_ns - self._t
        if gap > 0:
            self._t += (gap // span) * span  # keep block boundaries on the same grid
            self._last_recv[:] = np.maximum(self._last_recv, self._t)
            self.skips += 1

    def _block(self) -> None:
        """Generate one block of exchange time into the pool."""
        rng = self._rng
        steps = self._block_steps
        g = self._grid_ns
        t0 = self._t
        n_i = self.n_instruments
        # efficient prices at each step's start: row 0 is now
        z = rng.standard_normal((steps, n_i))
        z *= self._sigma * math.sqrt(g / 1e9)
        path = np.empty((steps + 1, n_i))
        path[0] = self._price
        np.cumsum(z, axis=0, out=path[1:])
        path[1:] += self._price
        if self.pairs:
            zs = rng.standard_normal((steps, len(self.pairs))) * self._ou_b
            s = np.empty((steps + 1, len(self.pairs)))
            s[0] = self._spread
            a = self._ou_a
            for k in range(steps):  # the OU recursion: a few dozen steps a block
                s[k + 1] = a * s[k] + zs[k]
            path[:, self._dep] = self._beta * path[:, self._lead] + self._c + s
            self._spread = s[-1].copy()
        self._price = path[-1].copy()
        # bursts: the event rate of each step
        mult = np.ones(steps)
        left = self._burst_left
        if left:
            mult[:min(steps, left)] = self.burst_factor
            left = max(0, left - steps)
        if self.burst_factor > 1 and self.burst_every_s > 0:
            length = max(1, int(self.burst_len_s * 1e9 / g))
            for st in np.flatnonzero(rng.random(steps) < g / 1e9 / self.burst_every_s).tolist():
                if mult[st] == 1.0:
                    self.bursts += 1  # a new burst (a start inside one only lengthens it)
                mult[st:st + length] = self.burst_factor
                left = max(left, st + length - steps)
        self._burst_left = left
        counts = rng.poisson(self._total_rate * g / 1e9 * mult)
        n = int(counts.sum())
        self._t = t0 + steps * g
        step_of = np.repeat(np.arange(steps), counts)
        t_ns = t0 + ((step_of + rng.random(n)) * g).astype(np.int64)
        t_ns.sort()
        key = np.searchsorted(self._cumw, rng.random(n) * self._total_rate, side="right")
        np.minimum(key, len(self._cumw) - 1, out=key)
        inst = key // self.n_venues
        ven = key - inst * self.n_venues
        step_of = (t_ns - t0) // g  # (after the sort)
        nz = self._noise[ven] * rng.standard_normal(n)
        u = rng.random(n)
        jitter = (rng.standard_exponential(n) * self._jitter_ns[ven]).astype(np.int64)
        # forced re-quotes draw their noise and jitter from these, in turn
        zpool = rng.standard_normal(_POOL)
        epool = rng.standard_exponential(_POOL)
        mt = path / self._ticks  # fair values in ticks
        # records, a chunk at a time
        chunks = []
        pos = self._gen_pos
        pos[:] = 0
        per_event = 4 * self.depth + 4
        while pos[0] < steps:
            cap = 6 * (n - int(pos[2])) + 5 * self._forced_est + 2 * per_event
            buf = np.zeros(cap, dtype=MD_EVENT)
            w = self._gen(mt, self._offset, t0, g, step_of, t_ns, inst, ven, nz, u, jitter,
                          zpool, epool, self._noise, self._jitter_ns, self._live, self._bid0,
                          self._bsz,
                          self._asz, self._seq, self._trade_id, self._last_recv, self._spread_t,
                          self._min_bid, self._lat_ns, self.depth, self.channels,
                          self.trade_prob, self.lot, self._xs, pos,
                          buf.view(np.int64).reshape(-1, 8), self._ops)
            chunks.append(buf[:w])
        forced = int(pos[3])
        self._forced_est = max(64, forced)
        self.requotes += forced
        n += forced
        if n == 0:
            return
        self.events += n
        block = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        self.records += len(block)
        lost = (self._loss_rng.random(len(block)) < self.loss_prob) if self.loss_prob > 0 \
            else np.zeros(len(block), dtype=np.bool_)
        # merge into the in-flight pool by arrival time (stable: each venue's order is kept)
        rest = self._pool[self._pos:]
        pool = np.concatenate((rest, block)) if len(rest) else block
        lost = np.concatenate((self._lost[self._pos:], lost)) if len(rest) else lost
        order = np.argsort(pool["recv_ns"], kind="stable")
        self._pool = pool[order]
        self._lost = lost[order]
        self._pos = 0

    def _deliver(self, until_ns: int, out: EventBuffer) -> None:
        """Move the pool's records with ``recv_ns <= until_ns`` into ``out`` (as room allows),
        replaying them into the delivered books."""
        pool, pos = self._pool, self._pos
        end = pos + int(np.searchsorted(pool["recv_ns"][pos:], until_ns, side="right"))
        room = out.capacity - out.n
        if end <= pos or room <= 0:
            return
        lost = self._lost[pos:end]
        if self.loss_prob > 0 and lost.any():
            kept = np.cumsum(~lost)
            if kept[-1] > room:  # stop after the room-th kept record
                end = pos + int(np.searchsorted(kept, room, side="left")) + 1
                lost = lost[:end - pos]
            take = pool[pos:end][~lost]
            self.lost += int(lost.sum())
        else:
            end = min(end, pos + room)
            take = pool[pos:end]
        self._apply(pool[pos:end].view(np.int64).reshape(-1, 8), self._dpx, self._dsz,
                    self._dcnt, self._dseq, self._bad)
        k = len(take)
        out.rec[out.n:out.n + k] = take
        out.n += k
        self.delivered += k
        self._pos = end
