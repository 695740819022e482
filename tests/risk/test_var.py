"""VaR: the figures against a naive reference and a case done by hand, the edge cases, the
``[var]`` table, the in-process calculator, and the service with its real helper process."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.core.profile import ProfileError
from engine.risk.var import (
    BookStatus,
    VarCalculator,
    VarConfig,
    VarService,
    compute_var,
    historical_var,
    parametric_var,
    z_score,
)
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000


def _history(rng: np.random.Generator, n_marks: int, n: int) -> np.ndarray:
    """Marks of ``n`` instruments: correlated log-normal walks around different prices."""
    common = rng.normal(0, 0.01, (n_marks, 1))
    own = rng.normal(0, 0.02, (n_marks, n))
    start = rng.uniform(5, 500, n)
    return start * np.exp(np.cumsum(0.5 * common + own, axis=0))


def _reference(marks, positions, levels):
    """The most naive VaR: loop over books and scenarios, np.percentile, explicit covariance."""
    marks = np.asarray(marks, float)
    n_marks, n = marks.shape
    returns = np.empty((n_marks - 1, n))
    for t in range(n_marks - 1):
        for i in range(n):
            returns[t, i] = marks[t + 1, i] / marks[t, i] - 1.0
    cov = np.cov(returns, rowvar=False, ddof=1)
    hist = np.empty((len(positions), len(levels)))
    param = np.empty_like(hist)
    for b, pos in enumerate(positions):
        notional = [pos[i] * marks[-1, i] for i in range(n)]
        pnl = [sum(notional[i] * returns[t, i] for i in range(n)) for t in range(n_marks - 1)]
        w = np.array(notional)
        sigma = math.sqrt(w @ cov @ w)
        for k, c in enumerate(levels):
            hist[b, k] = -np.percentile(pnl, 100 * (1 - c))
            param[b, k] = z_score(c) * sigma
    return hist, param


# -- the figures -------------------------------------------------------------------------------
def test_tiny_case_by_hand():
    # Two instruments, five marks, so four returns:
    #   A: 100, 110, 99, 99, 108.9   -> +10 %, -10 %, 0 %, +10 %
    #   B: 50, 45, 45, 49.5, 44.55   -> -10 %, 0 %, +10 %, -10 %
    # Notional at the last marks: desk 10 A + 20 B = 1089 + 891; book 1 10 A = 1089; book 2 flat.
    # Desk P&L per scenario: 108.9 - 89.1 = 19.8, -108.9, 89.1, 19.8
    #   sorted -108.9, 19.8, 19.8, 89.1; linear quantile at p sits at (4 - 1) p = 3 p:
    #   q(5 %) = -108.9 + 0.15 * 128.7 = -89.595 -> VaR95 89.595
    #   q(1 %) = -108.9 + 0.03 * 128.7 = -105.039 -> VaR99 105.039
    #   mean 4.95, deviations 14.85, -113.85, 84.15, 14.85, squares sum 20484.09, / 3 = 6828.03,
    #   sigma 82.63189 -> 1.644854 sigma = 135.9174, 2.326348 sigma = 192.2305
    # Book 1 P&L: 108.9, -108.9, 0, 108.9; sorted -108.9, 0, 108.9, 108.9:
    #   q(5 %) = -108.9 + 0.15 * 108.9 = -92.565; q(1 %) = -108.9 + 0.03 * 108.9 = -105.633
    #   mean 27.225, squares sum 32612.8275, / 3 = 10870.9425, sigma 104.26381
    #   -> 171.4987 and 242.5539
    marks = np.array([[100, 50], [110, 45], [99, 45], [99, 49.5], [108.9, 44.55]])
    positions = np.array([[10, 20], [10, 0], [0, 0]])
    r = compute_var(marks, positions, (0.95, 0.99), min_marks=5)
    np.testing.assert_allclose(r.var95_hist, [89.595, 92.565, 0.0], rtol=1e-9)
    np.testing.assert_allclose(r.var99_hist, [105.039, 105.633, 0.0], rtol=1e-9)
    np.testing.assert_allclose(r.var95_param, [135.9174, 171.4987, 0.0], rtol=1e-5)
    np.testing.assert_allclose(r.var99_param, [192.2305, 242.5539, 0.0], rtol=1e-5)
    assert list(r.status) == [BookStatus.OK, BookStatus.OK, BookStatus.FLAT]
    assert r.n_marks == 5 and r.n_bad == 0
    assert [r.reason(b) for b in range(3)] == [None, None, None]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_naive_reference(seed):
    rng = np.random.default_rng(seed)
    n_marks, n, books = 40, 7, 4
    marks = _history(rng, n_marks, n)
    positions = rng.integers(-50, 50, (books, n)).astype(float)
    positions[0] = positions[1:].sum(axis=0)  # the desk is the sum of its strategies
    positions[2, :3] = 0
    levels = (0.95, 0.975, 0.99)
    want_hist, want_param = _reference(marks, positions, levels)
    r = compute_var(marks, positions, levels)
    np.testing.assert_allclose(r.hist, want_hist, rtol=1e-9)
    np.testing.assert_allclose(r.param, want_param, rtol=1e-9)
    np.testing.assert_allclose(historical_var(marks, positions, levels), want_hist, rtol=1e-9)
    np.testing.assert_allclose(parametric_var(marks, positions, levels), want_param, rtol=1e-9)
    assert (r.status == BookStatus.OK).all()


def test_z_scores():
    assert z_score(0.95) == pytest.approx(1.645, abs=5e-4)
    assert z_score(0.99) == pytest.approx(2.326, abs=5e-4)


def test_a_horizon_scales_by_the_square_root_of_time():
    rng = np.random.default_rng(3)
    marks, positions = _history(rng, 30, 5), rng.normal(0, 10, (2, 5))
    one = compute_var(marks, positions)
    cfg = VarConfig(window=30, interval_ms=1000, horizon_ms=25_000)
    assert cfg.scale == pytest.approx(5.0)
    five = compute_var(marks, positions, scale=cfg.scale)
    np.testing.assert_allclose(five.hist, 5 * one.hist)
    np.testing.assert_allclose(five.param, 5 * one.param)


def test_fewer_marks_than_needed_is_nan_with_a_reason():
    rng = np.random.default_rng(4)
    marks, positions = _history(rng, 9, 3), np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    r = compute_var(marks, positions, min_marks=10)
    assert np.isnan(r.hist[0]).all() and np.isnan(r.param[0]).all()
    assert r.status[0] == BookStatus.FEW_MARKS
    assert r.reason(0) == "only 9 marks of the 10 needed"
    # a flat book's VaR is known whatever the history: 0, not NaN
    assert (r.hist[1] == 0).all() and (r.param[1] == 0).all() and r.status[1] == BookStatus.FLAT
    # below three marks there is no variance to take, whatever min_marks says
    r = compute_var(marks[:2], positions, min_marks=2)
    assert np.isnan(r.hist[0]).all() and r.reason(0) == "only 2 marks of the 3 needed"
    r = compute_var(marks[:0], positions)
    assert np.isnan(r.param[0]).all()


@pytest.mark.parametrize("bad", [0.0, np.nan, -1.0, np.inf])
def test_an_instrument_with_a_bad_mark_is_skipped_and_counted(bad):
    rng = np.random.default_rng(5)
    marks = _history(rng, 20, 4)
    marks[7, 2] = bad
    positions = np.array([[1.0, 2.0, 3.0, 4.0],   # holds the bad one: figures without it
                          [1.0, 2.0, 0.0, 4.0],   # does not hold it
                          [0.0, 0.0, 5.0, 0.0]])  # holds only the bad one: NaN
    r = compute_var(marks, positions)
    clean = compute_var(np.delete(marks, 2, axis=1), np.delete(positions, 2, axis=1))
    np.testing.assert_allclose(r.hist[:2], clean.hist[:2])
    np.testing.assert_allclose(r.param[:2], clean.param[:2])
    assert r.n_bad == 1
    assert list(r.n_skipped) == [1, 0, 1]
    assert list(r.status) == [BookStatus.OK, BookStatus.OK, BookStatus.NO_MARKS]
    assert np.isnan(r.hist[2]).all() and np.isnan(r.param[2]).all()
    assert "1 held instrument(s) left out" in r.reason(0)
    assert r.reason(1) is None
    assert "every instrument held" in r.reason(2)


def test_a_nan_position_is_skipped_and_counted():
    rng = np.random.default_rng(6)
    marks = _history(rng, 20, 3)
    r = compute_var(marks, np.array([[1.0, np.nan, 2.0]]))
    clean = compute_var(marks, np.array([[1.0, 0.0, 2.0]]))
    np.testing.assert_allclose(r.hist, clean.hist)
    assert r.n_skipped[0] == 1 and r.n_bad == 0


def test_no_positions_is_zero():
    rng = np.random.default_rng(7)
    r = compute_var(_history(rng, 20, 3), np.zeros((2, 3)))
    assert (r.hist == 0).all() and (r.param == 0).all()
    assert (r.status == BookStatus.FLAT).all()


def test_one_method_leaves_the_other_nan():
    rng = np.random.default_rng(8)
    marks, positions = _history(rng, 20, 3), np.array([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0]])
    both = compute_var(marks, positions)
    h = compute_var(marks, positions, method="historical")
    p = compute_var(marks, positions, method="parametric")
    np.testing.assert_allclose(h.hist, both.hist)
    np.testing.assert_allclose(p.param, both.param)
    assert np.isnan(h.param).all() and np.isnan(p.hist).all()


def test_shapes_that_do_not_match_are_refused():
    with pytest.raises(ValueError, match="same instruments"):
        compute_var(np.ones((5, 3)), np.ones((2, 4)))
    r = compute_var(np.ones((5, 3)), np.ones(3))  # one book as a 1-D row
    assert r.hist.shape == (1, 2)
    with pytest.raises(KeyError, match="0.9 is not configured"):
        r.var(0.9)


# -- the [var] table ---------------------------------------------------------------------------
def test_config_defaults_and_keys():
    cfg = VarConfig.from_table({})
    assert (cfg.window, cfg.needed, cfg.interval_ms, cfg.recompute_ms) == (250, 250, 1000, 1000)
    assert cfg.levels == (0.95, 0.99) and cfg.method == "both" and cfg.scale == 1.0
    table = {"window": 100, "min_marks": 20, "interval_ms": 500, "recompute_ms": 2000,
             "horizon_ms": 2000, "levels": [0.9, 0.99], "method": "historical"}
    cfg = VarConfig.from_table(table)
    assert cfg.to_table() == table
    assert VarConfig.from_table(cfg.to_table()) == cfg
    assert cfg.needed == 20 and cfg.scale == pytest.approx(2.0)


@pytest.mark.parametrize("table, message", [
    ({"windw": 10}, r"\[var\]\.windw: unknown key"),
    ({"window": 2}, r"\[var\]\.window: must be between 3 and 100000 marks, was 2"),
    ({"window": 10.0}, r"\[var\]\.window: must be an integer, was 10.0"),
    ({"window": True}, r"\[var\]\.window: must be an integer"),
    ({"window": 10, "min_marks": 11}, r"\[var\]\.min_marks: must be between 3 and window"),
    ({"interval_ms": 0}, r"\[var\]\.interval_ms: must be between 1"),
    ({"levels": [0.95, 1.0]}, r"\[var\]\.levels: must be 1 to 8 confidence levels"),
    ({"levels": [0.95, 0.95]}, r"\[var\]\.levels: must not repeat a level"),
    ({"levels": "0.95"}, r"\[var\]\.levels: must be a list of numbers"),
    ({"method": "monte-carlo"}, r"\[var\]\.method: must be one of both, historical"),
])
def test_config_refuses_bad_values_naming_the_key(table, message):
    with pytest.raises(ProfileError, match=message):
        VarConfig.from_table(table)


def test_config_error_names_the_file_when_given():
    with pytest.raises(ProfileError, match=r"^desk\.toml: \[var\]\.method: "):
        VarConfig.from_table({"method": "x"}, where="desk.toml: [var]")
    with pytest.raises(ProfileError, match="must be a table, was list"):
        VarConfig.from_table([1])


# -- the in-process calculator ----------------------------------------------------------------
def _feed(target, marks, positions, start_ns=0, step_ns=MS):
    taken = []
    for t, row in enumerate(marks):
        taken.append(target.mark(start_ns + t * step_ns, row, positions))
    return taken


def test_calculator_uses_the_newest_window_after_the_ring_wraps():
    rng = np.random.default_rng(9)
    cfg = VarConfig(window=16, interval_ms=1, recompute_ms=1)
    marks, positions = _history(rng, 40, 5), rng.normal(0, 10, (3, 5))
    calc = VarCalculator(cfg, 5, 3)
    assert all(_feed(calc, marks, positions))
    r = calc.poll()
    want = compute_var(marks[-16:], positions, min_marks=16)
    np.testing.assert_allclose(r.hist, want.hist)
    np.testing.assert_allclose(r.param, want.param)
    assert r.n_marks == 16 and r.ts_ns == 39 * MS and r.compute_ms >= 0
    assert calc.poll() is None  # handed over once


def test_calculator_takes_at_most_one_mark_per_interval_and_recomputes_on_its_clock():
    cfg = VarConfig(window=5, interval_ms=10, recompute_ms=30)
    calc = VarCalculator(cfg, 1, 1)
    pos = np.ones((1, 1))
    assert calc.mark(0, np.array([100.0]), pos)
    assert calc.due_ns == 10 * MS
    assert not calc.mark(9 * MS, np.array([1.0]), pos)  # not due: ignored
    assert calc.mark(12 * MS, np.array([101.0]), pos)
    assert calc.due_ns == 20 * MS  # on the grid, not 22 ms
    assert calc.mark(75 * MS, np.array([102.0]), pos)  # more than an interval late
    assert calc.due_ns == 85 * MS
    computes = calc.computes
    assert calc.mark(85 * MS, np.array([103.0]), pos)
    assert calc.computes == computes  # the last recompute was at 75 ms: next at 105 ms


def test_calculator_is_deterministic_and_keeps_positions_when_given_none():
    rng = np.random.default_rng(10)
    cfg = VarConfig(window=20, interval_ms=1, recompute_ms=5)
    marks, positions = _history(rng, 60, 6), rng.normal(0, 10, (2, 6))

    def run(keep: bool):
        calc, out = VarCalculator(cfg, 6, 2), []
        for t, row in enumerate(marks):
            calc.mark(t * MS, row, None if keep and t else positions)
            r = calc.poll()
            if r is not None:
                out.append((r.ts_ns, r.hist.tobytes(), r.param.tobytes(), r.status.tobytes()))
        return out

    first = run(False)
    assert first == run(False) == run(True)
    assert len(first) == 12


# -- the service: a real helper process ---------------------------------------------------------
def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.fixture
def service():
    made = []

    def make(cfg: VarConfig, n: int, books: int) -> VarService:
        s = VarService(cfg, n, books)
        made.append(s)
        assert s.wait_ready(30), f"the VaR helper did not start: {s.poll()}"
        return s

    yield make
    for s in made:
        s.close()


def _wait_result(svc: VarService, want, what: str):
    got = []

    def newest():
        r = svc.poll()
        if r is not None:
            assert r.error is None, r.error
            got.append(r)
            return r if want(r) else None
        return None

    return wait_until(newest, 30, what)


def test_service_matches_the_calculator_over_a_wrapped_ring(service):
    rng = np.random.default_rng(11)
    cfg = VarConfig(window=32, interval_ms=1, recompute_ms=5)
    marks, positions = _history(rng, 80, 9), rng.normal(0, 10, (4, 9))
    positions[3] = 0
    svc = service(cfg, 9, 4)
    assert all(_feed(svc, marks, positions))
    r = _wait_result(svc, lambda r: r.ts_ns == 79 * MS, "the result of the last mark")
    want = compute_var(marks[-32:], positions, min_marks=32)
    np.testing.assert_allclose(r.hist, want.hist, rtol=1e-12)
    np.testing.assert_allclose(r.param, want.param, rtol=1e-12)
    assert list(r.status) == [0, 0, 0, BookStatus.FLAT]
    assert r.n_marks == 32 and r.compute_ms > 0 and r.error is None
    assert r.var95_hist.shape == (4,) and r.var99_param.shape == (4,)


def test_service_reports_too_few_marks_then_figures(service):
    rng = np.random.default_rng(12)
    cfg = VarConfig(window=10, interval_ms=1, recompute_ms=5)
    marks, positions = _history(rng, 10, 3), np.array([[1.0, 1.0, 1.0]])
    svc = service(cfg, 3, 1)
    _feed(svc, marks[:4], positions)
    r = _wait_result(svc, lambda r: r.n_marks == 4, "a result of four marks")
    assert np.isnan(r.hist).all() and r.reason(0) == "only 4 marks of the 10 needed"
    _feed(svc, marks[4:], None, start_ns=4 * MS)  # positions unchanged
    r = _wait_result(svc, lambda r: r.n_marks == 10, "a result of ten marks")
    np.testing.assert_allclose(r.hist, compute_var(marks, positions).hist)


def test_a_shape_error_leaves_the_window_as_it_was(service):
    rng = np.random.default_rng(13)
    cfg = VarConfig(window=8, interval_ms=1, recompute_ms=1)
    marks, positions = _history(rng, 12, 3), rng.normal(0, 10, (2, 3))
    svc, calc = service(cfg, 3, 2), VarCalculator(cfg, 3, 2)
    for target in (svc, calc):
        _feed(target, marks, positions)
        with pytest.raises(ValueError):
            target.mark(50 * MS, marks[0] * 2, np.ones((2, 4)))
    want = compute_var(marks[-8:], positions)
    np.testing.assert_allclose(calc.poll().hist, want.hist)
    r = _wait_result(svc, lambda r: r.ts_ns == 11 * MS, "the result of the last good mark")
    np.testing.assert_allclose(r.hist, want.hist)


def test_service_poll_returns_none_when_nothing_is_new(service):
    svc = service(VarConfig(window=5, interval_ms=1, recompute_ms=5), 2, 1)
    assert svc.poll() is None
    with pytest.raises(ValueError):
        svc.mark(0, np.ones(3), None)  # wrong shape: a programming error, said at once
    assert svc.mark(0, np.ones(2), np.ones((1, 2)))  # and the seqlock was left even


def test_service_close_leaves_no_process(service):
    svc = service(VarConfig(window=5, interval_ms=1, recompute_ms=5), 2, 1)
    pid = svc.pid
    assert svc.close() == 0  # the stop pipe ended it: no signal needed
    assert _gone(pid)
    assert svc.poll() is None and svc.close() == 0  # closing twice is harmless
    assert not svc.mark(0, np.ones(2), np.ones((1, 2)))  # and marks after it are ignored


def test_a_killed_helper_is_reported(service):
    svc = service(VarConfig(window=5, interval_ms=1, recompute_ms=5), 2, 2)
    os.kill(svc.pid, signal.SIGKILL)
    r = wait_until(svc.poll, 10, "poll to report the dead helper")
    assert r.error is not None and "was killed by SIGKILL" in r.error
    assert np.isnan(r.hist).all() and r.reason(1) == r.error
    assert svc.error == r.error and not svc.alive
    assert svc.poll() is None  # reported once; mark() still costs nothing and harms nothing
    assert svc.mark(0, np.ones(2), np.ones((2, 2)))


def test_the_helper_dies_with_the_engine(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from engine.risk.var import VarConfig, VarService\n"
        "s = VarService(VarConfig(window=5), 2, 1)\n"
        "assert s.wait_ready(30)\n"
        "print(s.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    engine = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        helper = int(engine.stdout.readline())
        assert not _gone(helper)
        engine.kill()
        engine.wait()
        wait_until(lambda: _gone(helper), 10, "the helper to exit after the engine died")
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
