"""``helmdesk backtest``: --from/--to over recorded days, --day and --ticks kept, the profile's
strategies, errors that name the input and the reason, byte-identical reports, the chart."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from engine.strategy import registry
from tests.backtest.test_backtest import DAY, INTENTS, PROFILE
from tests.backtest.test_report import DAY2, Flipper

HASHED = ("orders.csv", "executions.csv", "positions.csv", "equity.csv", "trades.csv",
          "metrics.csv", "summary.json")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    from engine.backtest.synth import simulate_day
    from engine.core.profile import load_profile

    d = tmp_path_factory.mktemp("cli")
    prof = d / "bt.toml"
    prof.write_text(PROFILE)
    root = d / "ticks"
    simulate_day(load_profile(prof), root, DAY, 6.0)
    simulate_day(load_profile(prof), root, DAY2, 6.0)
    return prof, root


@pytest.fixture(autouse=True)
def _app(qapp):
    """The chart is drawn in this process: on pytest-qt's QApplication (a QGuiApplication
    made first would leave later widget tests without one)."""
    yield


def _backtest(capsys, prof: Path, *args: str) -> tuple[int, str, str]:
    code = main(["backtest", "--profile", str(prof), "--no-progress", *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_days_through_one_kernel(store, tmp_path, capsys):
    prof, root = store
    intents = tmp_path / "i.csv"
    intents.write_text(INTENTS)
    out = tmp_path / "two"
    code, stdout, err = _backtest(capsys, prof, "--data", str(root), "--from", DAY, "--to", DAY2,
                                  "--intents", str(intents), "--out", str(out), "--seed", "7")
    assert code == 0, err
    assert f"backtest {DAY} to {DAY2} (2 days):" in stdout and "output in" in stdout
    assert "report.html" in stdout and "warning" not in err
    s = json.loads((out / "summary.json").read_text())
    assert s["days"] == [DAY, DAY2] and s["from"] == DAY and s["to"] == DAY2 and s["seed"] == 7
    assert s["records"] == s["records_applied"] > 2 * 5_000
    # positions carry over the night: the script's day-1 positions are still held on day 2
    eq = _rows(out / "equity.csv")
    day2 = [r for r in eq if r["time"].startswith(DAY2)]
    assert day2 and all(float(r["unrealized"]) != 0.0 for r in day2[1:])
    assert float(day2[0]["realized"]) == float([r for r in eq if r["time"].startswith(DAY)][-1]
                                               ["realized"])
    # the chart, drawn by the application, and the page showing it
    png = (out / "equity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<img src="equity.png"' in (out / "report.html").read_text()


def test_one_day_the_old_way_and_one_day_of_two(store, tmp_path, capsys):
    prof, root = store
    code, stdout, err = _backtest(capsys, prof, "--ticks", str(root), "--day", DAY2, "--out",
                                  str(tmp_path / "d"))
    assert code == 0, err
    assert f"backtest {DAY2}:" in stdout
    s = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert s["days"] == [DAY2] and s["from"] == s["to"] == DAY2 and s["seed"] is None
    assert {r["time"][:10] for r in _rows(tmp_path / "d" / "equity.csv")} == {DAY2}


def test_times_cut_inside_the_days(store, tmp_path, capsys):
    prof, root = store
    whole = tmp_path / "whole"
    assert _backtest(capsys, prof, "--data", str(root), "--from", DAY, "--to", DAY2, "--out",
                     str(whole))[0] == 0
    cut = tmp_path / "cut"
    code, _out, err = _backtest(capsys, prof, "--data", str(root), "--from", f"{DAY}T09:30:02",
                                "--to", f"{DAY2}T09:30:03.5Z", "--out", str(cut))
    assert code == 0, err
    a = json.loads((whole / "summary.json").read_text())
    b = json.loads((cut / "summary.json").read_text())
    assert 0 < b["records"] < a["records"] and b["days"] == [DAY, DAY2]
    t = [r["time"] for r in _rows(cut / "equity.csv")]
    assert t[0] >= f"{DAY}T09:30:02" and t[-1] <= f"{DAY2}T09:30:05"  # the end + 1 s drain
    # an offset is honoured: 10:30:02+01:00 is 09:30:02 UTC
    off = tmp_path / "off"
    assert _backtest(capsys, prof, "--data", str(root), "--from", f"{DAY}T10:30:02+01:00",
                     "--to", f"{DAY2}T09:30:03.5", "--out", str(off))[0] == 0
    assert json.loads((off / "summary.json").read_text())["records"] == b["records"]


@pytest.mark.parametrize("args, want", [
    (("--from", "2026-13-01"), "--from '2026-13-01' is not a date (YYYY-MM-DD) or an ISO 8601"),
    (("--from", DAY, "--to", "tomorrow"), "--to 'tomorrow' is not a date"),
    (("--from", DAY2, "--to", DAY), f"--to {DAY} is before --from {DAY2}"),
    (("--from", "2027-01-04", "--to", "2027-01-08"),
     f"no recorded day from 2027-01-04 to 2027-01-08 (days there: {DAY}, {DAY2})"),
    (("--day", "2026-11-25"), f"no ticks for 2026-11-25 (days there: {DAY}, {DAY2})"),
    (("--day", DAY, "--from", DAY), "--day is --from DAY --to DAY: give one or the other"),
    ((), "what to replay: --from FROM [--to TO], or --day DAY"),
    (("--day", DAY, "--sample-ms", "0"), "--sample-ms must be positive, was 0"),
    (("--day", DAY, "--capital", "-5"), "--capital must be positive, was -5"),
    (("--from", f"{DAY}T12:00", "--to", f"{DAY}T13:00"),
     f"day {DAY} has no records of this profile's instruments (AAA, BBB) between"),
])
def test_errors_name_the_input_and_the_reason(store, tmp_path, capsys, args, want):
    prof, root = store
    code, _out, err = _backtest(capsys, prof, "--data", str(root), "--out", str(tmp_path / "x"),
                                *args)
    assert code == 2 and want in err, err
    assert not (tmp_path / "x").exists()


def test_a_missing_store_and_a_weekday_gap(store, tmp_path, capsys):
    prof, root = store
    code, _out, err = _backtest(capsys, prof, "--data", str(tmp_path / "nowhere"), "--day", DAY)
    assert code == 2 and f"{tmp_path / 'nowhere'}: no ticks for {DAY} (no such folder)" in err
    # Wednesday 2026-11-25 was not recorded: said, and the two days replayed
    code, _out, err = _backtest(capsys, prof, "--data", str(root), "--from", DAY, "--to",
                                "2026-11-25", "--out", str(tmp_path / "gap"))
    assert code == 0 and "note: no ticks for 2026-11-25 (weekdays in the range)" in err
    s = json.loads((tmp_path / "gap" / "summary.json").read_text())
    assert s["days"] == [DAY, DAY2] and s["weekdays_not_recorded"] == ["2026-11-25"]


def test_the_profiles_strategies_run_and_a_bad_one_is_refused(store, tmp_path, capsys,
                                                               monkeypatch):
    prof, root = store
    monkeypatch.setitem(registry.KINDS, "testflip", "tests.backtest.test_report:Flipper")
    p = tmp_path / "flip.toml"
    p.write_text(PROFILE + '\n[[strategies]]\nname = "flipper"\nkind = "testflip"\n')
    out = tmp_path / "flip"
    code, stdout, err = _backtest(capsys, p, "--data", str(root), "--day", DAY, "--out",
                                  str(out), "--seed", "3")
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["strategies"] == ["flipper"] and s["orders"] == 4
    assert _rows(out / "flipper-about.csv") == [{"seed": "3", "ratio": "0.5"}]
    assert "strategy:flipper" in _rows(out / "metrics.csv")[0]
    assert {t["source"] for t in _rows(out / "trades.csv")} == {"strategy:flipper"}
    assert Flipper.kind == "testflip"

    p.write_text(PROFILE + '\n[[strategies]]\nname = "x"\nkind = "nosuch"\n')
    code, _out, err = _backtest(capsys, p, "--data", str(root), "--day", DAY)
    assert code == 2 and "[[strategies]][0].kind: 'nosuch' is not a strategy kind" in err


def _hashes(out: Path) -> dict[str, str]:
    return {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in HASHED}


def test_the_same_input_gives_byte_identical_reports(store, tmp_path, capsys, monkeypatch):
    prof, root = store
    monkeypatch.setitem(registry.KINDS, "testflip", "tests.backtest.test_report:Flipper")
    p = tmp_path / "flip.toml"
    p.write_text(PROFILE + '\n[[strategies]]\nname = "flipper"\nkind = "testflip"\n')
    intents = tmp_path / "i.csv"
    intents.write_text(INTENTS)
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        code, _o, err = _backtest(capsys, p, "--data", str(root), "--from", DAY, "--to", DAY2,
                                  "--intents", str(intents), "--seed", "11", "--out", str(out))
        assert code == 0, err
        outs.append(out)
    a, b = (_hashes(o) for o in outs)
    assert a == b
    assert (outs[0] / "report.html").read_bytes() == (outs[1] / "report.html").read_bytes()
    assert len(_rows(outs[0] / "executions.csv")) > 4 and len(_rows(outs[0] / "trades.csv")) > 2


def test_progress_shows_days_records_rate(store, tmp_path, capsys):
    from engine.backtest.node import BacktestNode
    from engine.core.profile import load_profile

    prof, root = store
    BacktestNode(load_profile(prof), out=tmp_path / "p", start=DAY, end=DAY2, ticks_dir=root,
                 progress=True).run()
    err = capsys.readouterr().err
    assert "100.0%" in err and f"day 2/2 {DAY2}" in err and "records" in err and "M/s" in err


def test_without_qt_the_report_is_written_and_a_warning_says_why(store, tmp_path):
    """A PySide6 that cannot be imported (as with a missing libEGL): no equity.png, the page
    says why, the run succeeds."""
    prof, root = store
    fake = tmp_path / "fake"
    (fake / "PySide6").mkdir(parents=True)
    (fake / "PySide6" / "__init__.py").write_text(
        "raise ImportError('libEGL.so.1: cannot open shared object file')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(Path.cwd())]))
    out = tmp_path / "noqt"
    r = subprocess.run([sys.executable, "-m", "app", "backtest", "--profile", str(prof),
                        "--data", str(root), "--day", DAY, "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "warning: equity.png not drawn: Qt is not available (libEGL.so.1" in r.stderr
    assert not (out / "equity.png").exists() and (out / "equity.csv").exists()
    page = (out / "report.html").read_text()
    assert "equity.png not drawn: Qt is not available" in page and "<img" not in page
