"""Pair selection for the pairs strategy: correlation preselection, then Engle–Granger.

Input: a formation window of mid prices sampled every ``sample_s`` seconds, a 2-D array
(samples × instruments), price levels. Numpy only, no statistics package at run time::

    sel = select_pairs(prices, symbols, sample_s=0.1, max_pairs=10, p_value=0.05)
    for s in sel.chosen:
        s.a, s.b, s.beta, s.alpha, s.p_value, s.half_life_s
    write_selection_csv(path, sel.chosen)           # the caller gives the path

Theory of operation
-------------------
**Preselection.** Testing every pair of 1,000 instruments is half a million tests; a pair
that is cointegrated over the window also has strongly correlated price levels. So each
instrument keeps its ``candidates`` best partners by the correlation of log prices among those
whose log price correlation is at least ``min_corr`` and whose return correlation (log price
differences) is at least ``min_ret_corr``; the union of those partners, both orders of each
pair, is tested. Instruments with a constant or incomplete series are left out.

**Engle–Granger** (``engle_granger_batch``), for y on x, each candidate at once in numpy:

1. OLS of y on a constant and x: ``y = alpha + beta x + e``.
2. ADF regression on the residual without deterministic terms (the residual of a regression
   with a constant has mean zero): ``Δe_t = ρ e_{t-1} + Σ_{j=1..k} γ_j Δe_{t-j} + u_t``. The
   statistic is the t-ratio of ρ.
3. **Lag choice**: ``k`` minimises Akaike's criterion ``n log(2π) + n log(SSR/n) + n + 2(k+1)``
   over ``k = 0..maxlag``, every ``k`` fitted on the same rows (the last
   ``N - 1 - maxlag``), with ``maxlag = ceil(12 (N/100)^{1/4})`` (Schwert's rule) capped at
   ``N/2 - 1``; the chosen ``k`` is then refitted on every row it can use. This is what
   statsmodels' ``coint`` (``adfuller(autolag="aic")``) and Stata's ``egranger`` do, so the
   figures agree with them. A fixed ``lag`` skips the search.
4. **p-value**: MacKinnon's (1994) response surface for the cointegration test with N = 2
   variables and a constant, ``Φ(Σ c_i τ^i)`` (one polynomial below τ* = -2.62, another above;
   1 beyond τ_max = 0.92, 0 below τ_min = -18.86). **Critical values** (1 %, 5 %, 10 %):
   MacKinnon (2010), ``c0 + c1/T + c2/T²`` with T = N - 1.
   Two series so collinear that the fit's R² is within 100·√ε of 1 get τ = -inf, p = 0.

One batched QR does the work: one QR of the widest ADF design gives every nested
lag's SSR (the leading columns' QR is the leading block of the whole one).

**Half-life**: AR(1) with a constant on the residual, ``Δe_t = a + b e_{t-1}``:
``half_life = -ln 2 / ln(1 + b)`` samples, times ``sample_s``; infinite when ``b >= 0``.

**Ranking**: by p-value, then the absolute correlation of log prices (higher first), then the
symbols, so the choice is deterministic. Of each unordered pair only its better direction
counts. Up to ``max_pairs`` pairs with ``p_value`` at most the threshold are chosen; with
``disjoint`` no instrument is a leg of two chosen pairs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SELECTION_COLUMNS",
    "EGResult",
    "PairStats",
    "Selection",
    "engle_granger",
    "engle_granger_batch",
    "half_life",
    "mackinnon_crit",
    "mackinnon_p",
    "pair_stats",
    "select_pairs",
    "selection_rows",
    "write_selection_csv",
]

# -- MacKinnon (1994): p-values of the cointegration t-test, N = 2, constant -----------------------
_TAU_MAX = 0.92
_TAU_MIN = -18.86
_TAU_STAR = -2.62
#: Φ argument polynomial, lowest power first: for τ <= τ* ...
_SMALL_P = (2.92, 1.5012, 3.9796e-2)
#: ... and for τ > τ*
_LARGE_P = (2.1945, 6.4695e-1, -2.9198e-1, -4.2377e-2)
# -- MacKinnon (2010): critical values, N = 2, constant: (c0, c1, c2) for 1 %, 5 %, 10 % ----------
_CRIT_2010 = ((-3.89644, -10.9519, -33.527),
              (-3.33613, -6.1101, -6.823),
              (-3.04445, -4.2412, -2.720))
_SQRT_EPS = math.sqrt(np.finfo(float).eps)

SELECTION_COLUMNS = ("a", "b", "beta", "alpha", "adf_stat", "p_value", "crit_5pct", "adf_lag",
                     "corr", "ret_corr", "half_life_s", "n")


def mackinnon_p(stat: float) -> float:
    """MacKinnon's (1994) approximate asymptotic p-value of an Engle–Granger τ with two
    variables and a constant."""
    if stat != stat:
        return float("nan")
    if stat > _TAU_MAX:
        return 1.0
    if stat < _TAU_MIN:
        return 0.0
    coef = _SMALL_P if stat <= _TAU_STAR else _LARGE_P
    z = 0.0
    for c in reversed(coef):  # Horner
        z = z * stat + c
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def mackinnon_crit(nobs: int) -> tuple[float, float, float]:
    """MacKinnon's (2010) 1 %, 5 % and 10 % critical values for T = ``nobs`` (the series'
    length minus one, as statsmodels and Stata use)."""
    return tuple(c0 + c1 / nobs + c2 / nobs ** 2 for c0, c1, c2 in _CRIT_2010)


def _schwert_maxlag(n: int) -> int:
    return max(0, min(n // 2 - 1, int(math.ceil(12.0 * (n / 100.0) ** 0.25))))


@dataclass(frozen=True, slots=True)
class EGResult:
    """One Engle–Granger test of y on x."""

    stat: float  #: ADF τ of the residual
    p_value: float
    crit: tuple[float, float, float]  #: 1 %, 5 %, 10 %
    alpha: float
    beta: float
    lag: int  #: the ADF regression's lagged differences
    resid_var: float  #: the residual's variance (SSR / (N - 2))


def engle_granger_batch(y: np.ndarray, x: np.ndarray, *, maxlag: int | None = None,
                        lag: int | None = None) -> dict[str, np.ndarray]:
    """Engle–Granger tests of each column of ``y`` on the same column of ``x`` (both
    samples × candidates). Returns arrays: ``stat``, ``p_value``, ``alpha``, ``beta``,
    ``lag``, ``resid_var``, ``resid`` (samples × candidates). ``lag`` fixes the ADF lag;
    else AIC over 0..``maxlag`` (module docstring). Degenerate columns never raise: ``stat``
    (and ``p_value``) is NaN where the test is undefined (x constant, or the ADF regression
    rank-deficient: a residual that sat still), −inf where y is an exact line in x."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if y.ndim == 1:
        y, x = y[:, None], x[:, None]
    n, c = y.shape
    if n < 8:
        raise ValueError(f"an Engle–Granger test needs at least 8 samples, was {n}")
    # 1. y = alpha + beta x + e (centred: exact for price levels far from zero)
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - xm, y - ym
    sxx = (xc * xc).sum(axis=0)
    sxy = (xc * yc).sum(axis=0)
    syy = (yc * yc).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(sxx > 0, sxy / sxx, np.nan)
    alpha = ym - beta * xm
    resid = y - alpha - beta * x
    ssr = (resid * resid).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - ssr / syy
    collinear = ~(r2 < 1.0 - 100 * _SQRT_EPS)  # NaN (constant y) counts as unusable too
    resid_var = ssr / (n - 2)

    # 2./3. ADF on the residual, no deterministic terms
    d = np.diff(resid, axis=0)  # (n-1, c)
    if lag is None:
        L = _schwert_maxlag(n) if maxlag is None else int(maxlag)
        if not 0 <= L <= n // 2 - 1:
            raise ValueError(f"maxlag must be 0..{n // 2 - 1} for {n} samples, was {maxlag}")
        rows = n - 1 - L
        X = np.empty((c, rows, L + 1))
        X[:, :, 0] = resid[L:n - 1].T  # e_{t-1}
        for j in range(1, L + 1):
            X[:, :, j] = d[L - j:n - 1 - j].T  # Δe_{t-j}
        yv = d[L:].T  # (c, rows)
        q, _r = np.linalg.qr(X)
        qty = np.einsum("crk,cr->ck", q, yv)
        yy = (yv * yv).sum(axis=1)
        ssr_k = np.maximum(yy[:, None] - np.cumsum(qty * qty, axis=1), 1e-300)  # k = 1..L+1
        ks = np.arange(1, L + 2)
        aic = rows * (np.log(2 * np.pi) + np.log(ssr_k / rows) + 1.0) + 2.0 * ks
        chosen = np.argmin(aic, axis=1)  # the first minimum: the shortest lag on a tie
    else:
        if not 0 <= lag <= n // 2 - 1:
            raise ValueError(f"lag must be 0..{n // 2 - 1} for {n} samples, was {lag}")
        chosen = np.full(c, int(lag))
    stat = np.full(c, np.nan)
    for k in np.unique(chosen):
        cols = np.flatnonzero(chosen == k)
        rows = n - 1 - k
        X = np.empty((len(cols), rows, k + 1))
        X[:, :, 0] = resid[k:n - 1, cols].T
        for j in range(1, k + 1):
            X[:, :, j] = d[k - j:n - 1 - j, cols].T
        yv = d[k:, cols].T
        q, r = np.linalg.qr(X)
        # a rank-deficient regression (a residual that never moves, or never moves twice in
        # a row: prices that sat on their ticks through a short window) has no τ: NaN, and
        # the rest of the batch is tested
        piv = np.abs(np.diagonal(r, axis1=1, axis2=2))
        with np.errstate(invalid="ignore"):
            full = (piv > 1e-10 * piv.max(axis=1, keepdims=True)).all(axis=1)
        if not full.all():
            cols, X, yv, q, r = cols[full], X[full], yv[full], q[full], r[full]
            if not len(cols):
                continue
        qty = np.einsum("crk,cr->ck", q, yv)
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.linalg.solve(r, qty[:, :, None])[:, :, 0]
            e = yv - np.einsum("crk,ck->cr", X, b)
            s2 = (e * e).sum(axis=1) / (rows - (k + 1))
            rinv = np.linalg.inv(r)
            var0 = s2 * (rinv[:, 0, :] ** 2).sum(axis=1)
            stat[cols] = b[:, 0] / np.sqrt(var0)
    stat = np.where(collinear, -np.inf, stat)
    stat = np.where(np.isnan(beta), np.nan, stat)
    p = np.array([mackinnon_p(float(s)) for s in stat])
    return {"stat": stat, "p_value": p, "alpha": alpha, "beta": beta, "lag": chosen,
            "resid_var": resid_var, "resid": resid}


def engle_granger(y, x, *, maxlag: int | None = None, lag: int | None = None) -> EGResult:
    """The Engle–Granger test of ``y`` on ``x`` (1-D series of the same length)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    x = np.asarray(x, dtype=np.float64).ravel()
    if y.shape != x.shape:
        raise ValueError(f"y and x must have the same length, were {len(y)} and {len(x)}")
    r = engle_granger_batch(y, x, maxlag=maxlag, lag=lag)
    return EGResult(float(r["stat"][0]), float(r["p_value"][0]), mackinnon_crit(len(y) - 1),
                    float(r["alpha"][0]), float(r["beta"][0]), int(r["lag"][0]),
                    float(r["resid_var"][0]))


def half_life(resid: np.ndarray, sample_s: float = 1.0) -> np.ndarray | float:
    """The half-life of mean reversion of ``resid`` (samples × series, or 1-D), in seconds:
    AR(1) with a constant, ``-ln 2 / ln(1 + b)``; inf when it does not revert."""
    e = np.asarray(resid, dtype=np.float64)
    one = e.ndim == 1
    if one:
        e = e[:, None]
    lagged, d = e[:-1], np.diff(e, axis=0)
    lc = lagged - lagged.mean(axis=0)
    dc = d - d.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (lc * dc).sum(axis=0) / (lc * lc).sum(axis=0)
        hl = np.where((b < 0) & (b > -1), -math.log(2) / np.log1p(b), np.inf) * sample_s
    return float(hl[0]) if one else hl


@dataclass(frozen=True, slots=True)
class PairStats:
    """A tested pair: y = ``a``, x = ``b`` (``a = alpha + beta b + e``)."""

    a: str
    b: str
    ia: int  #: column of ``a`` in the formation prices
    ib: int
    beta: float
    alpha: float
    adf_stat: float
    p_value: float
    crit_5pct: float
    adf_lag: int
    corr: float  #: correlation of log prices
    ret_corr: float  #: correlation of log returns
    half_life_s: float
    n: int  #: samples
    resid_var: float
    x_mean: float  #: the mean of ``b`` over the window
    x_var: float  #: the variance of ``b`` over the window


@dataclass(frozen=True, slots=True)
class Selection:
    chosen: tuple[PairStats, ...]
    tested: int  #: candidate pairs tested (each unordered pair once)
    excluded: tuple[str, ...]  #: instruments left out (constant or incomplete series)


def _usable(prices: np.ndarray) -> np.ndarray:
    ok = np.isfinite(prices).all(axis=0) & (prices > 0).all(axis=0)
    with np.errstate(invalid="ignore"):
        ok &= np.nanstd(prices, axis=0) > 0
    return ok


def _corr(a: np.ndarray) -> np.ndarray:
    ac = a - a.mean(axis=0)
    s = np.sqrt((ac * ac).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ac.T @ ac) / np.outer(s, s)


def _stats(prices: np.ndarray, symbols: Sequence[str], ia: np.ndarray, ib: np.ndarray,
           sample_s: float, lag: int | None, corr: np.ndarray, ret_corr: np.ndarray
           ) -> list[PairStats]:
    n = prices.shape[0]
    out: list[PairStats] = []
    step = 512  # bounds the ADF design tensor's memory (candidates × rows × lags)
    for s in range(0, len(ia), step):
        a, b = ia[s:s + step], ib[s:s + step]
        y, x = prices[:, a], prices[:, b]
        r = engle_granger_batch(y, x, lag=lag)
        hl = half_life(r["resid"], sample_s)
        crit5 = mackinnon_crit(n - 1)[1]
        xm = x.mean(axis=0)
        xv = x.var(axis=0)
        for k in range(len(a)):
            i, j = int(a[k]), int(b[k])
            out.append(PairStats(
                symbols[i], symbols[j], i, j, float(r["beta"][k]), float(r["alpha"][k]),
                float(r["stat"][k]), float(r["p_value"][k]), crit5, int(r["lag"][k]),
                float(corr[i, j]), float(ret_corr[i, j]), float(hl[k]), n,
                float(r["resid_var"][k]), float(xm[k]), float(xv[k])))
    return out


def pair_stats(prices: np.ndarray, symbols: Sequence[str], pairs: Sequence[tuple[int, int]],
               *, sample_s: float, lag: int | None = None) -> list[PairStats]:
    """The statistics of given pairs (columns (a, b) of ``prices``), tested as given."""
    prices = np.asarray(prices, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        logp = np.log(prices)
        corr = _corr(logp)
        ret_corr = _corr(np.diff(logp, axis=0))
    ia = np.array([p[0] for p in pairs], dtype=np.int64)
    ib = np.array([p[1] for p in pairs], dtype=np.int64)
    return _stats(prices, symbols, ia, ib, sample_s, lag, corr, ret_corr)


def select_pairs(prices: np.ndarray, symbols: Sequence[str], *, sample_s: float,
                 max_pairs: int = 10, p_value: float = 0.05, candidates: int = 5,
                 min_corr: float = 0.5, min_ret_corr: float = -1.0, disjoint: bool = True,
                 lag: int | None = None) -> Selection:
    """Choose cointegrated pairs from a formation window (module docstring)."""
    prices = np.asarray(prices, dtype=np.float64)
    n, m = prices.shape
    if len(symbols) != m:
        raise ValueError(f"{m} price columns but {len(symbols)} symbols")
    ok = _usable(prices)
    excluded = tuple(symbols[i] for i in np.flatnonzero(~ok))
    cols = np.flatnonzero(ok)
    if len(cols) < 2 or n < 8:
        return Selection((), 0, excluded)
    p = prices[:, cols]
    logp = np.log(p)
    corr = _corr(logp)
    ret_corr = _corr(np.diff(logp, axis=0))
    score = np.where((corr >= min_corr) & (ret_corr >= min_ret_corr), corr, -np.inf)
    np.fill_diagonal(score, -np.inf)
    k = min(candidates, len(cols) - 1)
    pairs: set[tuple[int, int]] = set()
    for i in range(len(cols)):
        order = np.argsort(-score[i], kind="stable")[:k]
        for j in order:
            if np.isfinite(score[i, j]):
                pairs.add((min(i, int(j)), max(i, int(j))))
    if not pairs:
        return Selection((), 0, excluded)
    und = sorted(pairs)
    ia = np.array([a for a, _ in und] + [b for _, b in und], dtype=np.int64)
    ib = np.array([b for _, b in und] + [a for a, _ in und], dtype=np.int64)
    local = [symbols[c] for c in cols]
    tested = _stats(p, local, ia, ib, sample_s, lag, corr, ret_corr)
    half = len(und)
    best: list[PairStats] = []
    for u in range(half):  # the better direction of each unordered pair
        s1, s2 = tested[u], tested[u + half]
        best.append(s1 if _rank(s1) <= _rank(s2) else s2)
    best.sort(key=_rank)
    chosen: list[PairStats] = []
    used: set[int] = set()
    for s in best:
        if len(chosen) >= max_pairs:
            break
        if not s.p_value <= p_value:
            continue
        if disjoint and (s.ia in used or s.ib in used):
            continue
        chosen.append(s)
        used.update((s.ia, s.ib))
    # back to the caller's columns
    chosen = [_recol(s, int(cols[s.ia]), int(cols[s.ib])) for s in chosen]
    return Selection(tuple(chosen), half, excluded)


def _rank(s: PairStats) -> tuple:
    p = s.p_value if s.p_value == s.p_value else 2.0
    c = abs(s.corr) if s.corr == s.corr else 0.0
    return (p, -c, s.a, s.b)


def _recol(s: PairStats, ia: int, ib: int) -> PairStats:
    return PairStats(s.a, s.b, ia, ib, s.beta, s.alpha, s.adf_stat, s.p_value, s.crit_5pct,
                     s.adf_lag, s.corr, s.ret_corr, s.half_life_s, s.n, s.resid_var,
                     s.x_mean, s.x_var)


def selection_rows(pairs: Sequence[PairStats]) -> list[tuple]:
    """One row per pair, in ``SELECTION_COLUMNS`` order, rounded for reading."""
    return [(s.a, s.b, _r(s.beta), _r(s.alpha), _r(s.adf_stat), _r(s.p_value),
             _r(s.crit_5pct), s.adf_lag, _r(s.corr), _r(s.ret_corr), _r(s.half_life_s), s.n)
            for s in pairs]


def _r(x: float) -> float:
    return float(f"{x:.10g}") if math.isfinite(x) else x


def write_selection_csv(path: str | Path, pairs: Sequence[PairStats]) -> Path:
    """Write the chosen pairs' statistics to ``path`` (its folder must exist)."""
    p = Path(path)
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(SELECTION_COLUMNS)
        w.writerows(selection_rows(pairs))
    return p
