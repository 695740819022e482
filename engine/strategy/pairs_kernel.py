"""The pairs strategy's per-tick kernel: one compiled call per ``on_book`` updates the pairs that
touch the changed instruments and says which of them must act.

State lives in two arrays indexed by pair, ``sf`` (float64, columns ``F_*``) and ``si`` (int64,
columns ``I_*``), plus the rolling-OLS ring ``xs``/``ys`` (pairs × window); the strategy
writes them at formation and when its orders settle, the kernel on every tick. Inputs are read
in place: the consolidated ``bid_px``/``ask_px``/``flags`` views of ``BookSet.bbo`` and each
instrument's tick size. ``inst_ptr``/``inst_pairs`` (CSR) list the pairs of each instrument.

Per pair touched (once per call even when both legs changed; a pair whose either leg's book is
not sound — one-sided, crossed or locked — is skipped):

1. mids ``y = (bid_a + ask_a) / 2 · tick_a``, ``x`` likewise; ``xc = x - F_XC`` (x from its
   formation mean: keeps α and β nearly uncorrelated);
2. the *prediction*, with the state as it is: spread ``e = y - (α + β xc)``, and
   ``z = e / √S``. Kalman (``H_KALMAN``): ``S = h' (P + Q) h + R``, h = (1, xc), the
   innovation's variance; rolling OLS (``H_OLS``): ``S = σ²``, the window's residual variance;
3. if ``sample_ns`` passed since the pair's last sample, the model learns from this tick:
   Kalman ``P⁻ = P + Q``, ``K = P⁻ h / S``, ``θ += K e``, ``P = P⁻ - S K K'``; OLS pushes
   (xc, y) into the ring and refits α, β, σ over it (two passes: exact, no running sums);
4. the decision on the prediction's z, for a pair not busy (its orders working), ready
   (``I_NOBS >= warmup``) and past its cooldown (``I_COOL_UNTIL``: after an exit, or a
   refusal): flat, ``-stop < z <= -entry`` enters long
   the spread (buy A), ``entry <= z < stop`` short; long, ``z <= -stop`` stops, ``z >=
   -exit`` exits, held ``max_hold_ns`` or more (0: never) time-stops; short mirrors it. An
   action sets ``I_BUSY`` and is written to ``out_pair``/``out_act``.

``pairs_tick`` is compiled (numba); ``pairs_tick_reference`` is the same statement in plain
Python (slow), which the tests hold it to on random inputs, array for array.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.book.books import BBO_NOT_OK

__all__ = [
    "ACT_NAMES", "ACT_NONE", "ACT_ENTER_LONG", "ACT_ENTER_SHORT", "ACT_EXIT", "ACT_STOP",
    "ACT_TIME_STOP", "H_KALMAN", "H_OLS", "NF", "NI", "PF_N", "PI_N",
    "F_ALPHA", "F_BETA", "F_P00", "F_P01", "F_P11", "F_R", "F_QA", "F_QB", "F_XC", "F_SIGMA",
    "F_Z", "F_SPREAD", "F_MID_A", "F_MID_B",
    "I_STATE", "I_BUSY", "I_NOBS", "I_LAST_SAMPLE", "I_ENTRY_NS", "I_COOL_UNTIL", "I_HEAD",
    "I_MARK", "I_TICKS",
    "PF_ENTRY", "PF_EXIT", "PF_STOP", "PI_SAMPLE_NS", "PI_MAX_HOLD_NS", "PI_HEDGE",
    "PI_WARMUP", "PI_STAMP",
    "build_index", "pairs_tick", "pairs_tick_reference",
]

#: actions
ACT_NONE, ACT_ENTER_LONG, ACT_ENTER_SHORT, ACT_EXIT, ACT_STOP, ACT_TIME_STOP = range(6)
ACT_NAMES = ("none", "enter long", "enter short", "exit", "stop", "time stop")
#: hedge-ratio methods
H_KALMAN, H_OLS = 0, 1

# -- float state columns ------------------------------------------------------------------------
F_ALPHA = 0  #: α (at xc = 0)
F_BETA = 1  #: β
F_P00 = 2  #: Kalman state covariance P (symmetric: P00, P01, P11)
F_P01 = 3
F_P11 = 4
F_R = 5  #: observation noise variance
F_QA = 6  #: state noise variance of α per sample
F_QB = 7  #: ... of β
F_XC = 8  #: the centre of x (B's formation mean)
F_SIGMA = 9  #: OLS: the window's residual standard deviation
F_Z = 10  #: the last z (0 until ready)
F_SPREAD = 11  #: the last spread e (price units of A)
F_MID_A = 12  #: the last mids
F_MID_B = 13
NF = 14
# -- int state columns --------------------------------------------------------------------------
I_STATE = 0  #: -1 short the spread, 0 flat, 1 long
I_BUSY = 1  #: 1 while the strategy's orders for it work (no decisions)
I_NOBS = 2  #: samples learnt (formation included)
I_LAST_SAMPLE = 3  #: time of the last sample (ns)
I_ENTRY_NS = 4  #: when the position was entered
I_COOL_UNTIL = 5  #: no entry before this time
I_HEAD = 6  #: OLS ring: the next slot to write
I_MARK = 7  #: the call that last touched it (each pair once a call)
I_TICKS = 8  #: ticks evaluated
NI = 9
# -- parameters -----------------------------------------------------------------------------------
PF_ENTRY, PF_EXIT, PF_STOP = 0, 1, 2
PF_N = 3
PI_SAMPLE_NS, PI_MAX_HOLD_NS, PI_HEDGE, PI_WARMUP, PI_STAMP = 0, 1, 2, 3, 4
PI_N = 5


def build_index(leg_a: np.ndarray, leg_b: np.ndarray, n_instruments: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """CSR of instrument -> pairs: the pairs of instrument i are
    ``inst_pairs[inst_ptr[i]:inst_ptr[i + 1]]``, in pair order."""
    legs = np.concatenate([leg_a, leg_b]).astype(np.int64)
    pairs = np.concatenate([np.arange(len(leg_a)), np.arange(len(leg_b))]).astype(np.int64)
    order = np.lexsort((pairs, legs))
    counts = np.bincount(legs, minlength=n_instruments)
    ptr = np.zeros(n_instruments + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, pairs[order].copy()


@njit(cache=True)
def pairs_tick(changed, now_ns, bid_px, ask_px, flags, tick, inst_ptr, inst_pairs, leg_a,
               leg_b, pf, pi, sf, si, xs, ys, out_pair, out_act):
    """Update the pairs of the ``changed`` instruments at ``now_ns``; return how many pairs
    must act (``out_pair[:n]``, ``out_act[:n]``). See the module docstring."""
    entry, exit_, stop = pf[PF_ENTRY], pf[PF_EXIT], pf[PF_STOP]
    sample_ns, max_hold = pi[PI_SAMPLE_NS], pi[PI_MAX_HOLD_NS]
    hedge, warmup = pi[PI_HEDGE], pi[PI_WARMUP]
    pi[PI_STAMP] += 1
    stamp = pi[PI_STAMP]
    window = xs.shape[1]
    n_inst = inst_ptr.shape[0] - 1
    n_out = 0
    for c in range(changed.shape[0]):
        i = changed[c]
        if i < 0 or i >= n_inst:
            continue
        for k in range(inst_ptr[i], inst_ptr[i + 1]):
            p = inst_pairs[k]
            if si[p, I_MARK] == stamp:
                continue
            si[p, I_MARK] = stamp
            a = leg_a[p]
            b = leg_b[p]
            if (flags[a] & BBO_NOT_OK) != 0 or (flags[b] & BBO_NOT_OK) != 0:
                continue
            y = (bid_px[a] + ask_px[a]) * 0.5 * tick[a]
            x = (bid_px[b] + ask_px[b]) * 0.5 * tick[b]
            xc = x - sf[p, F_XC]
            alpha = sf[p, F_ALPHA]
            beta = sf[p, F_BETA]
            e = y - (alpha + beta * xc)
            nobs = si[p, I_NOBS]
            due = now_ns - si[p, I_LAST_SAMPLE] >= sample_ns
            z = 0.0
            if hedge == H_KALMAN:
                p00 = sf[p, F_P00] + sf[p, F_QA]
                p01 = sf[p, F_P01]
                p11 = sf[p, F_P11] + sf[p, F_QB]
                s = p00 + 2.0 * xc * p01 + xc * xc * p11 + sf[p, F_R]
                if s > 0.0:
                    z = e / math.sqrt(s)
                    if due:
                        k0 = (p00 + xc * p01) / s
                        k1 = (p01 + xc * p11) / s
                        sf[p, F_ALPHA] = alpha + k0 * e
                        sf[p, F_BETA] = beta + k1 * e
                        sf[p, F_P00] = p00 - k0 * k0 * s
                        sf[p, F_P01] = p01 - k0 * k1 * s
                        sf[p, F_P11] = p11 - k1 * k1 * s
            else:
                sigma = sf[p, F_SIGMA]
                if sigma > 0.0:
                    z = e / sigma
                if due:
                    h = si[p, I_HEAD]
                    xs[p, h] = xc
                    ys[p, h] = y
                    si[p, I_HEAD] = h + 1 if h + 1 < window else 0
                    cnt = nobs + 1 if nobs + 1 < window else window
                    mx = 0.0
                    my = 0.0
                    for j in range(cnt):
                        mx += xs[p, j]
                        my += ys[p, j]
                    mx /= cnt
                    my /= cnt
                    sxx = 0.0
                    sxy = 0.0
                    for j in range(cnt):
                        dx = xs[p, j] - mx
                        sxx += dx * dx
                        sxy += dx * (ys[p, j] - my)
                    if sxx > 0.0:
                        bnew = sxy / sxx
                        anew = my - bnew * mx
                        ssr = 0.0
                        for j in range(cnt):
                            r = ys[p, j] - anew - bnew * xs[p, j]
                            ssr += r * r
                        sf[p, F_ALPHA] = anew
                        sf[p, F_BETA] = bnew
                        sf[p, F_SIGMA] = math.sqrt(ssr / (cnt - 2)) if cnt > 2 else 0.0
            if due:
                si[p, I_LAST_SAMPLE] = now_ns
                si[p, I_NOBS] = nobs + 1
            si[p, I_TICKS] += 1
            ready = nobs >= warmup
            if not ready:
                z = 0.0
            sf[p, F_Z] = z
            sf[p, F_SPREAD] = e
            sf[p, F_MID_A] = y
            sf[p, F_MID_B] = x
            if not ready or si[p, I_BUSY] != 0:
                continue
            if now_ns < si[p, I_COOL_UNTIL]:
                continue
            st = si[p, I_STATE]
            act = ACT_NONE
            if st == 0:
                if -stop < z <= -entry:
                    act = ACT_ENTER_LONG
                elif entry <= z < stop:
                    act = ACT_ENTER_SHORT
            elif st > 0:
                if z <= -stop:
                    act = ACT_STOP
                elif z >= -exit_:
                    act = ACT_EXIT
                elif max_hold > 0 and now_ns - si[p, I_ENTRY_NS] >= max_hold:
                    act = ACT_TIME_STOP
            else:
                if z >= stop:
                    act = ACT_STOP
                elif z <= exit_:
                    act = ACT_EXIT
                elif max_hold > 0 and now_ns - si[p, I_ENTRY_NS] >= max_hold:
                    act = ACT_TIME_STOP
            if act != ACT_NONE:
                si[p, I_BUSY] = 1
                out_pair[n_out] = p
                out_act[n_out] = act
                n_out += 1
    return n_out


# -- THE REFERENCE ---------------------------------------------------------------------------------
def pairs_tick_reference(changed, now_ns, bid_px, ask_px, flags, tick, inst_ptr, inst_pairs,
                         leg_a, leg_b, pf, pi, sf, si, xs, ys, out_pair, out_act) -> int:
    """``pairs_tick`` in plain Python, one pair at a time through small functions: the
    statement the compiled kernel is tested against (same arrays in, same arrays out)."""
    entry, exit_, stop = float(pf[PF_ENTRY]), float(pf[PF_EXIT]), float(pf[PF_STOP])
    pi[PI_STAMP] += 1
    stamp = int(pi[PI_STAMP])
    touched: list[int] = []
    n_inst = len(inst_ptr) - 1
    for i in (int(v) for v in changed):
        if 0 <= i < n_inst:
            for k in range(int(inst_ptr[i]), int(inst_ptr[i + 1])):
                p = int(inst_pairs[k])
                if int(si[p, I_MARK]) != stamp:
                    si[p, I_MARK] = stamp
                    touched.append(p)
    n_out = 0
    for p in touched:
        a, b = int(leg_a[p]), int(leg_b[p])
        if int(flags[a]) & BBO_NOT_OK or int(flags[b]) & BBO_NOT_OK:
            continue
        y = (int(bid_px[a]) + int(ask_px[a])) * 0.5 * float(tick[a])
        x = (int(bid_px[b]) + int(ask_px[b])) * 0.5 * float(tick[b])
        nobs = int(si[p, I_NOBS])
        due = now_ns - int(si[p, I_LAST_SAMPLE]) >= int(pi[PI_SAMPLE_NS])
        if int(pi[PI_HEDGE]) == H_KALMAN:
            z, e = _kalman_ref(sf[p], x, y, due)
        else:
            z, e = _ols_ref(sf[p], si[p], xs[p], ys[p], x, y, due, nobs)
        if due:
            si[p, I_LAST_SAMPLE] = now_ns
            si[p, I_NOBS] = nobs + 1
        si[p, I_TICKS] += 1
        ready = nobs >= int(pi[PI_WARMUP])
        sf[p, F_Z] = z if ready else 0.0
        sf[p, F_SPREAD] = e
        sf[p, F_MID_A] = y
        sf[p, F_MID_B] = x
        if not ready or si[p, I_BUSY]:
            continue
        act = _decide_ref(int(si[p, I_STATE]), z, now_ns,
                          int(si[p, I_COOL_UNTIL]), int(si[p, I_ENTRY_NS]),
                          int(pi[PI_MAX_HOLD_NS]), entry, exit_, stop)
        if act:
            si[p, I_BUSY] = 1
            out_pair[n_out], out_act[n_out] = p, act
            n_out += 1
    return n_out


def _kalman_ref(f, x: float, y: float, due: bool) -> tuple[float, float]:
    """Kalman prediction (z, e) and, when a sample is due, the update of ``f`` (a pair's row)."""
    xc = x - float(f[F_XC])
    alpha, beta = float(f[F_ALPHA]), float(f[F_BETA])
    e = y - (alpha + beta * xc)
    p00 = float(f[F_P00]) + float(f[F_QA])
    p01 = float(f[F_P01])
    p11 = float(f[F_P11]) + float(f[F_QB])
    s = p00 + 2.0 * xc * p01 + xc * xc * p11 + float(f[F_R])
    if not s > 0.0:
        return 0.0, e
    if due:
        k0 = (p00 + xc * p01) / s
        k1 = (p01 + xc * p11) / s
        f[F_ALPHA], f[F_BETA] = alpha + k0 * e, beta + k1 * e
        f[F_P00], f[F_P01], f[F_P11] = p00 - k0 * k0 * s, p01 - k0 * k1 * s, p11 - k1 * k1 * s
    return e / math.sqrt(s), e


def _ols_ref(f, ints, xs, ys, x: float, y: float, due: bool, nobs: int) -> tuple[float, float]:
    """Rolling-OLS prediction (z, e) and, when a sample is due, the ring push and refit."""
    xc = x - float(f[F_XC])
    e = y - (float(f[F_ALPHA]) + float(f[F_BETA]) * xc)
    sigma = float(f[F_SIGMA])
    z = e / sigma if sigma > 0.0 else 0.0
    if due:
        window = len(xs)
        h = int(ints[I_HEAD])
        xs[h], ys[h] = xc, y
        ints[I_HEAD] = (h + 1) % window
        cnt = min(nobs + 1, window)
        px, py = [float(v) for v in xs[:cnt]], [float(v) for v in ys[:cnt]]
        mx = my = 0.0
        for u, v in zip(px, py):
            mx += u
            my += v
        mx /= cnt
        my /= cnt
        sxx = sxy = 0.0
        for u, v in zip(px, py):
            sxx += (u - mx) * (u - mx)
            sxy += (u - mx) * (v - my)
        if sxx > 0.0:
            b = sxy / sxx
            a = my - b * mx
            ssr = 0.0
            for u, v in zip(px, py):
                r = v - a - b * u
                ssr += r * r
            f[F_ALPHA], f[F_BETA] = a, b
            f[F_SIGMA] = math.sqrt(ssr / (cnt - 2)) if cnt > 2 else 0.0
    return z, e


def _decide_ref(state: int, z: float, now_ns: int, cool_until: int, entry_ns: int,
                max_hold: int, entry: float, exit_: float, stop: float) -> int:
    if now_ns < cool_until:
        return ACT_NONE
    held_too_long = max_hold > 0 and now_ns - entry_ns >= max_hold
    if state == 0:
        if -stop < z <= -entry:
            return ACT_ENTER_LONG
        if entry <= z < stop:
            return ACT_ENTER_SHORT
        return ACT_NONE
    toward = z if state > 0 else -z  # z as a long position sees it
    if toward <= -stop:
        return ACT_STOP
    if toward >= -exit_:
        return ACT_EXIT
    if held_too_long:
        return ACT_TIME_STOP
    return ACT_NONE
