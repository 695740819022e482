"""Post-incident review: a real replay engine of a recorded day, a real desk with the replay
bar, real shared memory. Pause stands the book still, play moves it, the speed is the one
asked, a jump lands at its time with the book the tick store says was there (forward: the
engine catches up; backward: the review restarts the engine), and bad inputs are refused with
the reason in the bar."""

from __future__ import annotations

import pytest

from app.review import ReviewError, ReviewSession, install, plan_review
from engine.backtest.synth import simulate_day
from engine.core.profile import load_profile
from tests.conftest import write_profile

DAY = "2026-11-23"
T0 = 1_795_426_200_000_000_000  # 09:30:00 UTC that day: simulate_day's start
S = 1_000_000_000
INSTRUMENTS = """
[[instruments]]
symbol = "AAA"
tick = 0.01
price = 100.0
update_hz = 20

[[instruments]]
symbol = "BBB"
tick = 0.05
price = 50.0
update_hz = 10
"""
SECONDS = 40


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A recorded day: SECONDS of two simulated venues, written by the tick store's recorder
    exactly as ``[feed] record = true`` writes a live session."""
    d = tmp_path_factory.mktemp("recorded")
    prof = write_profile(d / "rec.toml", "rec", instruments=INSTRUMENTS)
    prof.write_text(prof.read_text().replace('[feed]\nseed = 7\n',
                                             '[feed]\nkind = "simvenues"\nseed = 7\n'
                                             'venues = ["SIMA", "SIMB"]\n'))
    root = d / "ticks"
    assert simulate_day(load_profile(prof), root, DAY, SECONDS) > 0
    return root


def wait_for(qtbot, cond, timeout_ms: int = 30_000, what: str = "condition"):
    """Wait (running Qt) until ``cond()`` is truthy; its value."""
    box = []

    def check():
        v = cond()
        assert v, what
        box.append(v)

    qtbot.waitUntil(check, timeout=timeout_ms)
    return box[-1]


def recorded_book(profile, root, at_ns: int, i: int = 0):
    """What the tick store says instrument ``i``'s consolidated book was at ``at_ns``: the
    recorded day replayed into the engine's own market-data stage up to that time."""
    from engine.feeds.marketdata import MarketData, MarketDataConfig
    from engine.feeds.sources import ReplaySource
    from engine.node import load_day

    records, venues = load_day(root, DAY, [x.symbol for x in profile.instruments])
    md = MarketData(MarketDataConfig.from_profile(profile, venues), profile.instruments,
                    [ReplaySource(records, range(len(venues)))])
    md.start(at_ns)
    bid_px, bid_sz, ask_px, ask_sz = md.consolidated(i)
    return _levels(bid_px, bid_sz), _levels(ask_px, ask_sz)


def _levels(px, sz) -> list[tuple[float, float]]:
    return [(float(p), float(s)) for p, s in zip(px, sz) if s > 0]


def shown_book(rec):
    """The book record the desk last received, as levels."""
    return (_levels(rec["bid_px"], rec["bid_sz"]), _levels(rec["ask_px"], rec["ask_sz"]))


@pytest.fixture
def review(recorded, tmp_path, instance, desk_factory, qtbot):
    """A started replay engine (``at``/``speed`` as asked) and a desk with the replay bar,
    attached the way DeskWindow does it; returns (session, window, controller, books)."""
    made = []

    def make(at: str | None = "09:30:05", speed: float = 1.0, restart: bool = True):
        prof = write_profile(tmp_path / "review.toml", instance, idle="sleep",
                             users='"*" = "trader"', instruments=INSTRUMENTS)
        plan = plan_review(day=DAY, profile=str(prof), data=str(recorded), speed=speed, at=at,
                           instance=instance)
        session = ReviewSession(plan, tmp_path / "review")
        made.append(session)
        session.start()
        win = desk_factory(instance)
        ctl = install(win, session.restart if restart else None)
        books = {}  # what the desk's link delivered last, per instrument
        win.link.book.connect(lambda i, rec: books.__setitem__(i, rec.copy()))
        win.link.select_instrument(0)  # emitted again at the next poll, to us too
        wait_for(qtbot, lambda: win.replaybar.isVisible() and ctl.state is not None
                 and 0 in books, what="the replay bar and a book")
        return session, win, ctl, books, load_profile(prof)

    yield make
    for s in made:
        s.stop()


def answer(qtbot, ctl, send, timeout_ms: int = 30_000) -> tuple[str, bool]:
    """Do ``send()`` (a bar action) and wait for the status line's next words."""
    with qtbot.waitSignal(ctl.answered, timeout=timeout_ms) as blocker:
        send()
    return tuple(blocker.args)


def polls(qtbot, win, n: int = 6) -> None:
    """Let the desk poll the engine ``n`` more times (a condition, not a sleep)."""
    seen = []
    win.link.health_changed.connect(seen.append)
    try:
        qtbot.waitUntil(lambda: len(seen) >= n, timeout=15_000)
    finally:
        win.link.health_changed.disconnect(seen.append)


# -- the tests -----------------------------------------------------------------------------------
def test_starts_paused_at_the_time_with_that_moments_book(review, qtbot):
    _session, win, ctl, books, profile = review(at="09:30:05")
    bar = win.replaybar
    st = ctl.state
    assert st.paused and st.now_ns == T0 + 5 * S
    assert bar.time.text() == "09:30:05.000"
    assert bar.state.text() == "paused"
    assert bar.play.text() == "▶ Play"
    assert bar.slider.maximum() == (st.last_ns - st.first_ns) // 1_000_000
    assert bar.slider.value() == (st.now_ns - st.first_ns) // 1_000_000
    want = recorded_book(profile, _session.plan.root, T0 + 5 * S)
    wait_for(qtbot, lambda: shown_book(books[0]) == want, what=f"the book of 09:30:05: {want}")


def test_pause_stops_the_book_and_play_resumes_it(review, qtbot):
    _session, win, ctl, books, _profile = review(at=None, speed=2.0)
    bar = win.replaybar
    wait_for(qtbot, lambda: not ctl.state.paused and bar.state.text() == "playing 2×",
             what="playing at 2x")
    text, ok = answer(qtbot, ctl, bar.play.click)  # the button pauses while playing
    assert ok and text.startswith("paused at "), text
    stood = ctl.state.now_ns
    assert text == f"paused at {bar.time.text()}"
    polls(qtbot, win, 2)  # the records of the pause's own turn are published after its ack
    book, seq = books[0].copy(), win.link.client.books[0].read_seq()
    polls(qtbot, win)
    assert ctl.state.now_ns == stood and ctl.state.paused
    # nothing applied: the engine publishes no book and the desk's stands
    assert win.link.client.books[0].read_seq() == seq and (books[0] == book).all()
    assert bar.state.text() == "paused" and bar.play.text() == "▶ Play"

    text, ok = answer(qtbot, ctl, bar.play.click)
    assert ok and text.startswith("playing at 2x from "), text
    wait_for(qtbot, lambda: ctl.state.now_ns > stood and not (books[0] == book).all(),
             what="the market moving again")
    assert bar.play.text() == "❚❚ Pause"


def test_the_speed_asked_is_the_speed_reported(review, qtbot):
    _session, win, ctl, _books, _profile = review(at="09:30:02")
    bar = win.replaybar
    k = bar.speeds.findData(10.0)
    text, ok = answer(qtbot, ctl, lambda: (bar.speeds.setCurrentIndex(k),
                                           bar.speeds.activated.emit(k)))
    assert ok and text == "paused at 09:30:02.000, speed 10x", text
    wait_for(qtbot, lambda: ctl.state.speed == 10.0, what="speed 10 in the header")
    text, ok = answer(qtbot, ctl, bar.play.click)
    assert ok and text == "playing at 10x from 09:30:02.000", text
    wait_for(qtbot, lambda: bar.state.text() == "playing 10×", what="the bar saying so")
    assert bar.speeds.currentText() == "10×"
    # a speed typed into the list: read, sent, reported
    bar.speeds.setEditText("4x")
    text, ok = answer(qtbot, ctl, bar.speeds.lineEdit().returnPressed.emit)
    assert ok and text.startswith("playing at 4x from "), text
    wait_for(qtbot, lambda: ctl.state.speed == 4.0 and bar.state.text() == "playing 4×",
             what="4x shown")


def test_jump_forward_lands_at_the_time_with_the_recorded_book(review, qtbot):
    session, win, ctl, books, profile = review(at="09:30:03")
    bar = win.replaybar
    bar.jump.setText("09:30:21.250")
    text, ok = answer(qtbot, ctl, bar.jump.returnPressed.emit)
    assert ok and text == "at 09:30:21.250, paused", text
    target = T0 + 21 * S + 250_000_000
    # the answer comes after that moment's books: the desk shows them with it
    assert ctl.state.now_ns == target and bar.time.text() == "09:30:21.250"
    assert shown_book(books[0]) == recorded_book(profile, session.plan.root, target, 0)
    for i in (0, 1):
        win.link.select_instrument(i)
        want = recorded_book(profile, session.plan.root, target, i)
        wait_for(qtbot, lambda: i in books and shown_book(books[i]) == want,
                 what=f"instrument {i}'s book at 09:30:21.250: {want}")
    # the slider: dragged, it shows the target; released, it jumps there
    bar.slider.sliderPressed.emit()
    bar.slider.setValue(30_000)
    bar.slider.sliderMoved.emit(30_000)
    assert bar.time.text() == "→ 09:30:30.000"
    text, ok = answer(qtbot, ctl, bar.slider.sliderReleased.emit)
    assert ok and text == "at 09:30:30.000, paused", text


def test_jump_backward_restarts_the_replay_at_the_earlier_time(review, qtbot):
    session, win, ctl, books, profile = review(at="09:30:20")
    bar = win.replaybar
    pid = session.proc.pid
    bar.jump.setText("09:30:07.500")
    # a deadline, not a duration (it takes a few seconds; every test engine shares one core)
    with qtbot.waitSignal(ctl.answered, timeout=90_000,
                          check_params_cb=lambda t, ok: "restarted" in t) as blocker:
        bar.jump.returnPressed.emit()
    text, ok = blocker.args
    assert ok and text == "at 09:30:07.500, paused (replay restarted)", text
    assert session.proc.pid != pid
    target = T0 + 7 * S + 500_000_000
    assert ctl.state.now_ns == target and ctl.state.paused
    wait_for(qtbot, lambda: bar.time.text() == "09:30:07.500", what="the bar at 09:30:07.500")
    want = recorded_book(profile, session.plan.root, target)
    wait_for(qtbot, lambda: shown_book(books[0]) == want, what=f"the book of 09:30:07.500")


def test_bad_inputs_are_refused_with_the_reason_shown(review, qtbot):
    _session, win, ctl, _books, _profile = review(at="09:30:10", restart=False)
    bar = win.replaybar
    bar.speeds.setEditText("0")
    text, ok = answer(qtbot, ctl, bar.speeds.lineEdit().returnPressed.emit)
    assert not ok and text == "speed must be 0.1 .. 1000 times the recorded pace, was 0"
    assert bar.status.text() == text and bar.status.property("refused")
    bar.jump.setText("11:00:00")
    text, ok = answer(qtbot, ctl, bar.jump.returnPressed.emit)
    assert not ok and text == ("11:00:00.000 is outside the recorded day (09:30:00.000 .. "
                               f"{_clock(ctl.state.last_ns)})")
    # without a launcher to restart it, a jump back is the engine's to refuse
    bar.jump.setText("09:30:01")
    text, ok = answer(qtbot, ctl, bar.jump.returnPressed.emit)
    assert not ok and text.startswith("cannot jump back from 09:30:10.000 to 09:30:01.000"), text
    bar.jump.setText("9:3O")  # not a time: the bar says so and sends nothing
    bar.jump.returnPressed.emit()
    assert bar.status.text() == "'9:3O' is not a time: write HH:MM:SS or HH:MM:SS.mmm"
    assert ctl.state.now_ns == T0 + 10 * S and ctl.state.paused


def test_a_live_engine_has_no_replay_bar_and_refuses_replay(engine, desk_factory, qtbot):
    from engine.ipc import EngineClient, Verb

    win = desk_factory(engine.instance)
    ctl = install(win)
    wait_for(qtbot, lambda: win.link.health.state == "connected", what="attached")
    polls(qtbot, win, 3)
    assert ctl.state is None and not win.replaybar.isVisible()
    with EngineClient(engine.instance) as c:
        ack = c.request(Verb.REPLAY, arg0=1)
    assert not ack.accepted and ack.reason == ('this engine plays no replay (only a [feed] kind '
                                               '= "replay" engine does)')


def test_the_launcher_names_what_is_wrong(recorded, tmp_path):
    prof = write_profile(tmp_path / "p.toml", "x", instruments=INSTRUMENTS)
    with pytest.raises(ReviewError, match=r"no ticks for 2026-11-24 in the tick store .* "
                                          r"\(days there: 2026-11-23\)"):
        plan_review(day="2026-11-24", profile=str(prof), data=str(recorded))
    with pytest.raises(ReviewError, match=r"--at 10:00:00 is outside the recording of "
                                          r"2026-11-23: it runs from 09:30:00.000 to 09:30:"):
        plan_review(day=DAY, profile=str(prof), data=str(recorded), at="10:00:00")
    with pytest.raises(ReviewError, match=r"--at '9h30' is not a time"):
        plan_review(day=DAY, profile=str(prof), data=str(recorded), at="9h30")
    with pytest.raises(ReviewError, match=r"--speed must be 0.1 .. 1000, was 0"):
        plan_review(day=DAY, profile=str(prof), data=str(recorded), speed=0)
    with pytest.raises(ReviewError, match=r"--report .*: no summary.json there"):
        plan_review(day=None, report=str(tmp_path), data=str(recorded))


def test_a_backtest_report_folder_gives_its_day_and_profile(recorded, tmp_path):
    from engine.backtest.node import BacktestNode

    prof = write_profile(tmp_path / "bt.toml", "x", instruments=INSTRUMENTS)
    folder = tmp_path / "report"
    BacktestNode(load_profile(prof), out=folder, start=f"{DAY}T09:30:12", end=DAY,
                 ticks_dir=recorded, progress=False).run()
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "bt.toml"
    prof.rename(moved)  # the summary names the profile's file only
    with pytest.raises(ReviewError, match=r"profile 'bt.toml' is not in the folder"):
        plan_review(day=None, report=str(folder), data=str(recorded))
    plan = plan_review(day=None, report=str(folder), profile=str(moved), data=str(recorded),
                       instance="rv1")
    assert plan.day == DAY and plan.at_ns == T0 + 12 * S  # where the backtest began
    assert plan.profile["engine"]["instance"] == "rv1"
    (folder / "bt.toml").write_text(moved.read_text())  # kept with the report: found there
    assert plan_review(day=None, report=str(folder), data=str(recorded)).day == DAY
    with pytest.raises(ReviewError, match=r"--day 2026-11-20 is not a day of the backtest"):
        plan_review(day="2026-11-20", report=str(folder), data=str(recorded))


def _clock(ns: int) -> str:
    from widgets.replaybar import clock_text

    return clock_text(ns)



PAPER = """
[[venues]]
name = "SIMA"
kind = "sim"
latency_us = 200

[[strategies]]
name = "mm"
kind = "marketmaker"
symbols = ["AAA"]
venue = "SIMA"
size = 10
max_position = 50
half_spread_ticks = 1
min_requote_ms = 100
"""


def test_a_catch_up_runs_the_strategies_and_venues_the_same_every_time(recorded, tmp_path,
                                                                        instance):
    """Two replay engines of a paper profile, each jumping to 09:30:15 from the day's start as
    fast as it can: the market maker's orders and the simulated venue's fills are the same,
    at the same recorded times, whatever the machine's pace."""
    from engine.store.recover import load

    runs = []
    for k in range(2):
        name = f"{instance}p{k}"
        prof = write_profile(tmp_path / f"paper{k}.toml", name, idle="sleep",
                             users='"*" = "trader"', instruments=INSTRUMENTS + PAPER)
        plan = plan_review(day=DAY, profile=str(prof), data=str(recorded), at="09:30:15",
                           instance=name)
        assert [v["kind"] for v in plan.profile["venues"]] == ["sim"]
        session = ReviewSession(plan, tmp_path / f"review{k}")
        runs.append(session)
    try:
        for s in runs:
            s.start()  # returns once the engine stands at 09:30:15, paused
    finally:
        for s in runs:
            assert s.stop() == 0
    seen = []
    for k, s in enumerate(runs):
        r = load(f"sqlite:///{s.folder}/run-1/data/engine-{s.plan.instance}.db")
        orders = sorted((o.created_ns, o.symbol, o.side, o.qty, o.price, o.status.value,
                         o.cum_qty) for o in r.rows.values())
        fills = [(ts, sym, side, qty, px) for ts, _cl, sym, side, qty, px, _fee in r.executions]
        seen.append((orders, fills))
        assert fills and orders and all(T0 <= o[0] <= T0 + 15 * S for o in orders), orders[:3]
    assert seen[0] == seen[1]


def test_the_bar_alone_shows_its_state_and_reads_its_inputs(qtbot):
    from widgets.replaybar import ReplayBar, parse_clock, parse_speed

    bar = ReplayBar()
    qtbot.addWidget(bar)
    bar.set_state(T0, T0 + 60 * S, T0 + 5 * S + 7 * 1_000_000, 3.0, False)
    assert (bar.time.text(), bar.state.text(), bar.play.text()) == (
        "09:30:05.007", "playing 3×", "❚❚ Pause")
    assert bar.speeds.currentText() == "3×" and bar.speeds.findData(3.0) >= 0  # listed now
    assert (bar.slider.maximum(), bar.slider.value()) == (60_000, 5_007)
    with qtbot.waitSignal(bar.pause_requested):
        bar.play.click()
    # while the slider is held, the engine's position does not move it or the time shown
    bar.slider.sliderPressed.emit()
    bar.slider.setValue(42_000)
    bar.slider.sliderMoved.emit(42_000)
    bar.set_state(T0, T0 + 60 * S, T0 + 6 * S, 3.0, False)
    assert bar.time.text() == "→ 09:30:42.000" and bar.slider.value() == 42_000
    with qtbot.waitSignal(bar.jump_requested) as jumped:
        bar.slider.sliderReleased.emit()
    assert jumped.args == [T0 + 42 * S] and bar.time.text() == "09:30:06.000"
    assert parse_clock("10:31:02.12", T0) == T0 + (61 * 60 + 2) * S + 120_000_000
    assert parse_clock("24:00:00", T0).startswith("'24:00:00' is not a time of day")
    assert parse_speed("0.5×") == 0.5 and parse_speed("fast").startswith("'fast' is not")
