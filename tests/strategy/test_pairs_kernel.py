"""The pairs kernel: the compiled kernel against its plain-Python reference on random inputs,
the hedge ratios and z-scores against direct numpy computations, and the decisions on
hand-made price paths."""

from __future__ import annotations

import numpy as np
import pytest

from engine.book.books import BBO_CROSSED, BBO_LOCKED, BBO_NO_ASK
from engine.strategy import pairs_kernel as K


class Pairs:
    """Kernel inputs for ``n`` pairs over ``m`` instruments, prices in ticks of 1.0 unless
    given: the strategy's arrays without the strategy."""

    def __init__(self, legs, m, *, hedge=K.H_KALMAN, window=1, entry=2.0, exit_=0.5, stop=4.0,
                 sample_ns=1, max_hold_ns=0, warmup=0, tick=None):
        self.la = np.array([a for a, _ in legs], dtype=np.int64)
        self.lb = np.array([b for _, b in legs], dtype=np.int64)
        n = len(legs)
        self.bid = np.zeros(m, dtype=np.int64)
        self.ask = np.zeros(m, dtype=np.int64)
        self.flags = np.zeros(m, dtype=np.uint16)
        self.tick = np.ones(m) if tick is None else np.asarray(tick, dtype=np.float64)
        self.ptr, self.idx = K.build_index(self.la, self.lb, m)
        self.pf = np.array([entry, exit_, stop])
        self.pi = np.array([sample_ns, max_hold_ns, hedge, warmup, 0], dtype=np.int64)
        self.sf = np.zeros((n, K.NF))
        self.si = np.zeros((n, K.NI), dtype=np.int64)
        self.si[:, K.I_LAST_SAMPLE] = -(1 << 60)
        self.xs = np.zeros((n, window))
        self.ys = np.zeros((n, window))
        self.out_p = np.zeros(n, dtype=np.int64)
        self.out_a = np.zeros(n, dtype=np.int64)

    def quote(self, i, mid_ticks, half_spread=1):
        self.bid[i] = mid_ticks - half_spread
        self.ask[i] = mid_ticks + half_spread

    def args(self, changed, now):
        return (np.asarray(changed, dtype=np.int64), now, self.bid, self.ask, self.flags,
                self.tick, self.ptr, self.idx, self.la, self.lb, self.pf, self.pi, self.sf,
                self.si, self.xs, self.ys, self.out_p, self.out_a)

    def tick_(self, changed, now, fn=K.pairs_tick):
        n = fn(*self.args(changed, now))
        return [(int(self.out_p[k]), int(self.out_a[k])) for k in range(n)]

    def copy(self):
        c = object.__new__(Pairs)
        for k, v in self.__dict__.items():
            setattr(c, k, v.copy() if isinstance(v, np.ndarray) else v)
        return c


def _random_state(rng, hedge, n_inst=12, n_pairs=9, window=7):
    legs = []
    while len(legs) < n_pairs:
        a, b = rng.choice(n_inst, 2, replace=False)
        legs.append((int(a), int(b)))
    P = Pairs(legs, n_inst, hedge=hedge, window=window, entry=1.0, exit_=0.3, stop=2.5,
              sample_ns=int(rng.integers(1, 4)), max_hold_ns=int(rng.integers(0, 6)),
              warmup=int(rng.integers(0, 4)), tick=rng.choice([0.01, 0.25, 1.0], n_inst))
    n = len(legs)
    P.sf[:, K.F_ALPHA] = rng.normal(100, 1, n)
    P.sf[:, K.F_BETA] = rng.normal(1, 0.1, n)
    P.sf[:, K.F_XC] = rng.normal(100, 1, n)
    P.sf[:, K.F_P00] = rng.uniform(0, 1e-2, n)
    P.sf[:, K.F_P11] = rng.uniform(0, 1e-3, n)
    P.sf[:, K.F_P01] = rng.uniform(-1e-4, 1e-4, n)
    P.sf[:, K.F_R] = rng.uniform(0.5, 4, n)
    P.sf[:, K.F_QA] = rng.uniform(0, 1e-3, n)
    P.sf[:, K.F_QB] = rng.uniform(0, 1e-5, n)
    P.sf[:, K.F_SIGMA] = rng.uniform(0, 2, n) * (rng.random(n) < 0.9)
    P.si[:, K.I_NOBS] = rng.integers(0, 2 * window, n)
    P.si[:, K.I_HEAD] = rng.integers(0, window, n)
    P.si[:, K.I_LAST_SAMPLE] = 0
    P.xs[:] = rng.normal(0, 3, P.xs.shape)
    P.ys[:] = rng.normal(100, 3, P.ys.shape)
    for i in range(n_inst):  # mids near 100 in price units
        P.quote(i, int(round(rng.normal(100, 1) / P.tick[i])), int(rng.integers(1, 3)))
    return P


@pytest.mark.parametrize("hedge", [K.H_KALMAN, K.H_OLS])
@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_kernel_gives_the_references_arrays(hedge, seed):
    rng = np.random.default_rng(seed)
    a = _random_state(rng, hedge)
    b = a.copy()
    actions = set()
    for step in range(400):
        now = step + 1
        # the market moves: a few instruments, sometimes a bad book
        for i in rng.choice(len(a.bid), int(rng.integers(1, 4)), replace=False):
            mid = int(a.bid[i] + a.ask[i]) // 2 + int(round(rng.normal(0, 0.7) / a.tick[i]))
            a.quote(i, mid, int(rng.integers(0, 3)))
            a.flags[i] = rng.choice([0, 0, 0, 0, BBO_NO_ASK, BBO_CROSSED, BBO_LOCKED])
        b.bid[:], b.ask[:], b.flags[:] = a.bid, a.ask, a.flags
        changed = rng.choice(len(a.bid) + 2, int(rng.integers(0, 5)))  # out of range too
        # the strategy settles some pairs: not busy, a new position, a cooldown
        for p in np.flatnonzero(a.si[:, K.I_BUSY]):
            if rng.random() < 0.5:
                state, cool = int(rng.integers(-1, 2)), now + int(rng.integers(0, 3))
                for s in (a, b):
                    s.si[p, K.I_BUSY] = 0
                    s.si[p, K.I_STATE] = state
                    s.si[p, K.I_ENTRY_NS] = now
                    s.si[p, K.I_COOL_UNTIL] = cool
        got = a.tick_(changed, now, K.pairs_tick)
        want = b.tick_(changed, now, K.pairs_tick_reference)
        assert got == want, f"step {step}"
        actions.update(act for _p, act in got)
        for name in ("sf", "si", "xs", "ys", "pi"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name),
                                          err_msg=f"{name} at step {step}")
    assert a.si[:, K.I_TICKS].sum() > 100  # the pairs were evaluated, not skipped
    assert actions & {K.ACT_ENTER_LONG, K.ACT_ENTER_SHORT}, actions
    assert actions & {K.ACT_EXIT, K.ACT_STOP, K.ACT_TIME_STOP}, actions


def _drive(P, path, p=0):
    """Feed (x, y) prices in ticks (tick 1.0), one sample each; the z of each tick."""
    zs = []
    for k, (x, y) in enumerate(path):
        P.bid[1], P.ask[1] = x - 1, x + 1
        P.bid[0], P.ask[0] = y - 1, y + 1
        P.tick_([0, 1], (k + 1) * 10)
        zs.append(P.sf[p, K.F_Z])
    return np.array(zs)


def test_kalman_hedge_ratio_and_z_match_the_matrix_filter():
    rng = np.random.default_rng(7)
    n = 300
    x = np.round(1000 + np.cumsum(rng.normal(0, 2, n)))
    y = np.round(500 + 0.8 * x + rng.normal(0, 3, n))
    P = Pairs([(0, 1)], 2, hedge=K.H_KALMAN, sample_ns=10, entry=50, stop=100)
    xc0, r, q = 1000.0, 9.0, 1e-4
    f = P.sf[0]
    f[K.F_XC], f[K.F_ALPHA], f[K.F_BETA] = xc0, 1300.0, 0.7
    f[K.F_P00], f[K.F_P01], f[K.F_P11] = 4.0, 0.0, 0.01
    f[K.F_R], f[K.F_QA], f[K.F_QB] = r, q * r, q * r / xc0 ** 2
    zs = _drive(P, zip(x, y))
    # the textbook filter, in matrices
    theta = np.array([1300.0, 0.7])
    Pm = np.diag([4.0, 0.01])
    Q = np.diag([q * r, q * r / xc0 ** 2])
    want_z = []
    for xi, yi in zip(x, y):
        h = np.array([1.0, xi - xc0])
        Pp = Pm + Q
        e = yi - h @ theta
        S = h @ Pp @ h + r
        want_z.append(e / np.sqrt(S))
        Kg = Pp @ h / S
        theta = theta + Kg * e
        Pm = (np.eye(2) - np.outer(Kg, h)) @ Pp
    np.testing.assert_allclose(zs, want_z, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose([f[K.F_ALPHA], f[K.F_BETA]], theta, rtol=1e-10)
    np.testing.assert_allclose([[f[K.F_P00], f[K.F_P01]], [f[K.F_P01], f[K.F_P11]]], Pm,
                               rtol=1e-8, atol=1e-15)
    assert abs(f[K.F_BETA] - 0.8) < 0.05  # it found the hedge ratio


def test_rolling_ols_hedge_ratio_and_z_match_lstsq_over_the_window():
    rng = np.random.default_rng(3)
    n, w = 120, 25
    x = np.round(2000 + np.cumsum(rng.normal(0, 3, n)))
    y = np.round(100 + 1.5 * x + rng.normal(0, 4, n))
    P = Pairs([(0, 1)], 2, hedge=K.H_OLS, window=w, sample_ns=10, entry=50, stop=100)
    P.sf[0, K.F_XC] = 2000.0
    zs = _drive(P, zip(x, y))
    xc = x - 2000.0
    for k in range(3, n):  # after the sample at k, the fit is over the last w samples
        lo = max(0, k + 1 - w)
        A = np.column_stack([np.ones(k + 1 - lo), xc[lo:k + 1]])
        (a, b), *_ = np.linalg.lstsq(A, y[lo:k + 1], rcond=None)
        res = y[lo:k + 1] - a - b * xc[lo:k + 1]
        sigma = np.sqrt(res @ res / (len(res) - 2))
        if k + 1 < n:  # the next tick's z is its prediction with this fit
            np.testing.assert_allclose(zs[k + 1], (y[k + 1] - a - b * xc[k + 1]) / sigma,
                                       rtol=1e-8)
    np.testing.assert_allclose([P.sf[0, K.F_ALPHA], P.sf[0, K.F_BETA], P.sf[0, K.F_SIGMA]],
                               [a, b, sigma], rtol=1e-9)


def _fixed(P):
    """A Kalman pair that never learns (P = Q = 0) with R = 1: z = y - x (ticks of 1.0)."""
    P.sf[:, K.F_BETA] = 1.0
    P.sf[:, K.F_R] = 1.0
    return P


def _at(P, x, y, now, p=0):
    P.bid[2 * p + 1], P.ask[2 * p + 1] = x - 1, x + 1
    P.bid[2 * p], P.ask[2 * p] = y - 1, y + 1
    return P.tick_([2 * p, 2 * p + 1], now)


def test_entry_exit_stop_and_time_stop_on_a_hand_made_path():
    P = _fixed(Pairs([(0, 1)], 2, entry=2.0, exit_=0.5, stop=4.0, max_hold_ns=1000))
    assert _at(P, 100, 101, 1) == []  # z = 1: nothing
    assert _at(P, 100, 98, 2) == [(0, K.ACT_ENTER_LONG)]  # z = -2: buy the spread
    assert P.si[0, K.I_BUSY] == 1
    assert _at(P, 100, 96, 3) == []  # busy: the strategy's orders work
    P.si[0, K.I_BUSY], P.si[0, K.I_STATE], P.si[0, K.I_ENTRY_NS] = 0, 1, 3
    assert _at(P, 100, 99, 4) == []  # z = -1: hold
    assert _at(P, 100, 100, 5) == [(0, K.ACT_EXIT)]  # z = 0 >= -0.5: exit
    P.si[0, K.I_BUSY], P.si[0, K.I_STATE], P.si[0, K.I_COOL_UNTIL] = 0, 0, 20
    assert _at(P, 100, 103, 10) == []  # z = 3, but cooling down
    assert _at(P, 100, 103, 20) == [(0, K.ACT_ENTER_SHORT)]
    P.si[0, K.I_BUSY], P.si[0, K.I_STATE], P.si[0, K.I_ENTRY_NS] = 0, -1, 20
    assert _at(P, 100, 104, 21) == [(0, K.ACT_STOP)]  # z = 4 >= stop: stop out
    P.si[0, K.I_BUSY], P.si[0, K.I_STATE], P.si[0, K.I_ENTRY_NS] = 0, -1, 30
    assert _at(P, 100, 103, 1029) == []
    assert _at(P, 100, 103, 1030) == [(0, K.ACT_TIME_STOP)]  # held max_hold_ns
    P.si[0, K.I_BUSY], P.si[0, K.I_STATE] = 0, 0
    assert _at(P, 100, 95, 1040) == []  # z = -5: past the stop, no entry
    P.si[0, K.I_STATE] = 1
    assert _at(P, 100, 95, 1041) == [(0, K.ACT_STOP)]  # a long stops out below -stop


def test_unsound_books_are_skipped_and_each_pair_is_visited_once():
    P = _fixed(Pairs([(0, 1), (2, 3), (0, 3)], 4))
    P.quote(0, 97), P.quote(1, 100), P.quote(2, 100), P.quote(3, 100)
    for flag in (BBO_NO_ASK, BBO_CROSSED, BBO_LOCKED):
        P.flags[1] = flag
        assert P.tick_([0, 1], 1) == [(2, K.ACT_ENTER_LONG)]  # 0/3 only: 0/1 has a bad leg
        P.si[2, K.I_BUSY] = 0
        assert P.si[0, K.I_TICKS] == 0
    P.flags[1] = 0
    acts = P.tick_([0, 1, 3, 0], 2)  # pair 0/1 and 0/3 touched twice: evaluated once
    assert sorted(acts) == [(0, K.ACT_ENTER_LONG), (2, K.ACT_ENTER_LONG)]
    assert P.si[:, K.I_TICKS].tolist() == [1, 1, 4]


def test_z_waits_for_warmup():
    P = _fixed(Pairs([(0, 1)], 2, warmup=3))
    for now in (1, 2, 3):
        assert _at(P, 100, 95, now) == [] and P.sf[0, K.F_Z] == 0.0
    assert _at(P, 100, 97, 4) == [(0, K.ACT_ENTER_LONG)] and P.sf[0, K.F_Z] == -3.0
