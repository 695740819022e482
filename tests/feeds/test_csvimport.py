"""CSV import: good rows into the store, each bad row's reason, and the real command line."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.events import (
    ASK, BID, BUY, CHANGE, CLEAR, DELETE, F_LAST, F_SNAPSHOT, NEW, QUOTE, SELL, TRADE,
)
from engine.feeds.csvimport import CsvFormatError, import_csv
from engine.feeds.tickstore import TickReader, replay
from tests.test_cli import helmdesk

INS = [("AAA", 0.01), ("ESZ6", 0.25)]
T = 1_795_392_000_000_000_000  # 2026-11-23T00:00:00Z
S = 1_000_000_000


def csv(tmp_path, text: str, name: str = "ticks.csv"):
    p = tmp_path / name
    p.write_text(text.lstrip())
    return p


def test_good_rows_become_the_records_a_feed_would_write(tmp_path):
    p = csv(tmp_path, """
time,symbol,type,side,price,size
2026-11-23T14:30:00Z,AAA,quote,bid,100.01,5
2026-11-23T14:30:00.000000001Z,AAA,quote,ASK,100.03,7

# a comment, and a blank line above
1795444200000000002,AAA,quote,ask,100.03,0
2026-11-23T15:30:00.5+01:00,ESZ6,trade,sell,5000.25,2
2026-11-23 14:30:01.25,ESZ6,trade,,5000.5,1
""")
    res = import_csv(p, tmp_path / "ticks", INS, venue="SIMA")
    assert (res.rows_read, res.rows_imported, res.rows_rejected) == (5, 5, 0), res.reasons
    assert res.records_written == 7 and res.counts == {("SIMA", "2026-11-23"): 7}
    r = replay(tmp_path / "ticks", "2026-11-23")
    t = T + (14 * 3600 + 30 * 60) * S
    assert r["recv_ns"].tolist() == [t, t, t + 1, t + 1, t + 2, t + S // 2, t + S + S // 4]
    assert np.array_equal(r["exch_ns"], r["recv_ns"])
    assert r["kind"].tolist() == [QUOTE] * 5 + [TRADE, TRADE]
    # top of book: CLEAR the side, then NEW at level 0; a size of 0 only clears it
    assert r["action"].tolist()[:5] == [CLEAR, NEW, CLEAR, NEW, CLEAR]
    assert r["side"].tolist() == [BID, BID, ASK, ASK, ASK, SELL, 0]
    assert r["flags"].tolist() == [F_SNAPSHOT, F_SNAPSHOT | F_LAST, F_SNAPSHOT, F_SNAPSHOT | F_LAST,
                                   F_SNAPSHOT | F_LAST, F_LAST, F_LAST]
    assert r["price"].tolist() == [0, 10001, 0, 10003, 0, 20001, 20002]
    assert r["size"].tolist() == [0, 5, 0, 7, 0, 2, 1]
    assert r["instrument"].tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert (r["venue"] == 0).all() and (r["level"] == 0).all() and (r["seq"] == 0).all()


def test_action_column_gives_depth_updates_and_venue_column_splits_files(tmp_path):
    p = csv(tmp_path, """
Venue,Time,Symbol,Type,Side,Price,Size,Level,Action
SIMB,1795443000000000000,AAA,quote,bid,100.00,5,0,new
SIMA,1795443000000000000,AAA,quote,bid,99.99,3,1,new
SIMB,1795443000000000001,AAA,quote,bid,100.00,9,0,change
SIMB,1795443000000000002,AAA,quote,bid,,,0,delete
SIMA,1795443000000000003,AAA,trade,buy,100.00,4,,
""")
    res = import_csv(p, tmp_path / "ticks", INS, venues=["SIMA", "SIMB"])
    assert res.rows_rejected == 0 and res.counts == {("SIMA", "2026-11-23"): 2, ("SIMB", "2026-11-23"): 3}
    b = TickReader(tmp_path / "ticks" / "2026-11-23" / "SIMB.ticks").records
    assert b["action"].tolist() == [NEW, CHANGE, DELETE] and b["size"].tolist() == [5, 9, 0]
    assert (b["venue"] == 1).all()  # the index in the venues given (a profile's [[venues]])
    r = replay(tmp_path / "ticks", "2026-11-23")
    assert r["venue"].tolist() == [0, 1, 1, 1, 0]  # the tie at ...000: SIMA (by name) first
    assert r["level"].tolist() == [1, 0, 0, 0, 0] and r["kind"][4] == TRADE and r["side"][4] == BUY


BAD_ROWS = """
time,symbol,type,side,price,size,level,venue
2026-11-23T10:00:00Z,AAA,quote,bid,100.00,1,,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,abc,1,,SIMA
2026-11-23T10:00:01Z,ZZZ,quote,bid,100.00,1,,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,100.003,1,,SIMA
2026-11-23T10:00:01Z,AAA,quote,buy,100.00,1,,SIMA
2026-11-23T10:00:01Z,AAA,trade,bid,100.00,1,,SIMA
2026-11-23T10:00:01Z,AAA,order,bid,100.00,1,,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,100.00,1.5,,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,100.00,-2,,SIMA
2026-11-23T10:00:01Z,AAA,trade,buy,100.00,0,,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,100.00,1,2,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,100.00,1,x,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,100.00,1,,bad venue
yesterday,AAA,quote,bid,100.00,1,,SIMA
2026-02-30T10:00:00Z,AAA,quote,bid,100.00,1,,SIMA
2026-11-23T25:00:00Z,AAA,quote,bid,100.00,1,,SIMA
1795000000,AAA,quote,bid,100.00,1,,SIMA
2026-11-23T09:59:59Z,AAA,quote,bid,100.00,1,,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,inf,1,,SIMA
2026-11-23T10:00:01Z,AAA,quote,bid,100.00
2026-11-23T10:00:02Z,AAA,quote,ask,100.02,1,,SIMA
"""

REASONS = [
    "row 3: price 'abc' is not a number",
    "row 4: unknown symbol 'ZZZ'",
    "row 5: price 100.003 is not on AAA's tick 0.01",
    "row 6: a quote's side must be bid or ask, was 'buy'",
    "row 7: a trade's side must be buy, sell or empty, was 'bid'",
    "row 8: type 'order' is not quote or trade",
    "row 9: size '1.5' is not a whole number",
    "row 10: size -2 is negative",
    "row 11: a trade's size must be positive, was 0",
    "row 12: level 2: without an action column quotes are top of book (level 0)",
    "row 13: level 'x' is not a number",
    "row 14: venue 'bad venue' is not 1-23 letters, digits, '-' or '_'",
    "row 15: time 'yesterday' is not ISO-8601 (2026-11-23T14:30:00.5Z) or epoch nanoseconds",
    "row 16: time '2026-02-30T10:00:00Z': 2026-02-30 is not a date",
    "row 17: time '2026-11-23T25:00:00Z': 25:00:00 is not a time of day",
    "row 18: time 1795000000 is in 1970: epoch times are in nanoseconds "
    "(were these seconds or milliseconds?)",
    "row 19: time 2026-11-23T09:59:59Z is before SIMA's previous row (2026-11-23T10:00:00Z): "
    "a venue's rows must be in time order",
    "row 20: price 'inf' is not a finite number",
    "row 21: 5 fields, the header has 8",
]


def test_each_bad_row_is_rejected_with_its_row_number_and_reason(tmp_path):
    p = csv(tmp_path, BAD_ROWS)
    res = import_csv(p, tmp_path / "ticks", INS, max_reasons=100)
    assert res.reasons == REASONS
    assert (res.rows_read, res.rows_imported, res.rows_rejected) == (21, 2, 19)
    r = replay(tmp_path / "ticks", "2026-11-23")
    assert r["price"].tolist() == [0, 10000, 0, 10002]  # the two good rows, top of book


def test_rows_before_what_the_store_has_are_rejected(tmp_path):
    p = csv(tmp_path, "time,symbol,type,side,price,size\n1795443000000000000,AAA,trade,buy,1,1\n")
    assert import_csv(p, tmp_path / "ticks", INS, venue="SIMA").rows_rejected == 0
    # the same file again: equal times are in order (so a second import duplicates the rows)
    assert import_csv(p, tmp_path / "ticks", INS, venue="SIMA").rows_rejected == 0
    p2 = csv(tmp_path, "time,symbol,type,side,price,size\n1795442999000000000,AAA,trade,buy,1,1\n",
             "earlier.csv")
    res = import_csv(p2, tmp_path / "ticks", INS, venue="SIMA")
    assert res.reasons == ["row 2: time 2026-11-23T14:09:59Z is before the last SIMA tick already "
                           "stored for 2026-11-23 (2026-11-23T14:10:00Z): the store is append-only"]
    assert len(replay(tmp_path / "ticks", "2026-11-23")) == 2


@pytest.mark.parametrize("text, why", [
    ("", "no header row"),
    ("time,symbol,type,side,price\n", "no 'size' column"),
    ("time,symbol,type,side,price,size,colour\n", "unknown column 'colour'"),
    ("time,symbol,type,side,price,size,size\n", "column 'size' is there twice"),
])
def test_a_bad_header_refuses_the_file(tmp_path, text, why):
    with pytest.raises(CsvFormatError, match=why):
        import_csv(csv(tmp_path, text or "\n"), tmp_path / "ticks", INS, venue="SIMA")


def test_no_venue_anywhere_refuses_the_file(tmp_path):
    p = csv(tmp_path, "time,symbol,type,side,price,size\n")
    with pytest.raises(CsvFormatError, match="no venue column: give the venue"):
        import_csv(p, tmp_path / "ticks", INS)


# -- THE COMMAND --


def test_command_imports_good_rows_reports_bad_ones_and_exits_1(tmp_path):
    p = csv(tmp_path, BAD_ROWS)
    r = helmdesk("import-ticks", str(p), "--root", str(tmp_path / "ticks"),
                 "--tick", "AAA=0.01", "--show-rejects", "3")
    assert r.returncode == 1, r.stderr
    assert f"{p}: 21 rows read, 2 imported, 19 rejected in" in r.stdout
    assert "  2026-11-23 SIMA: 4 records" in r.stdout
    assert f"tick store: {tmp_path / 'ticks'}" in r.stdout
    assert "rejected rows (first 3):\n" in r.stderr
    for reason in REASONS[:3]:
        assert f"  {reason}\n" in r.stderr
    assert REASONS[3] not in r.stderr and "  ... and 16 more" in r.stderr
    assert len(replay(tmp_path / "ticks", "2026-11-23")) == 4


def test_command_with_a_profile_and_a_clean_file_exits_0(tmp_path):
    prof = tmp_path / "p.toml"
    prof.write_text('[[instruments]]\nsymbol = "ESZ6"\ntick = 0.25\nprice = 5000.0\n\n'
                    '[[venues]]\nname = "SIMA"\nhost = "127.0.0.1"\nport = 9876\n'
                    'sender = "HELM"\ntarget = "SIMA"\n\n'
                    '[[venues]]\nname = "SIMB"\nhost = "127.0.0.1"\nport = 9877\n'
                    'sender = "HELM"\ntarget = "SIMB"\n')
    p = csv(tmp_path, "time,symbol,type,side,price,size\n2026-11-23T10:00:00Z,ESZ6,trade,buy,5000.25,3\n")
    r = helmdesk("import-ticks", str(p), "--profile", str(prof), "--venue", "SIMB")
    assert r.returncode == 0, r.stderr
    assert "1 rows read, 1 imported, 0 rejected" in r.stdout and r.stderr == ""
    rec = replay(tmp_path / "data" / "ticks", "2026-11-23")  # the default root: <data dir>/ticks
    assert rec["price"].tolist() == [20001]
    stored = TickReader(tmp_path / "data" / "ticks" / "2026-11-23" / "SIMB.ticks")
    assert stored.records["venue"].tolist() == [1]  # SIMB is the profile's second venue
    assert stored.instruments == (("ESZ6", 0.25),)
    r = helmdesk("ticks", "info")
    assert r.returncode == 0, r.stderr
    assert "2026-11-23  SIMB         1             1" in r.stdout
    assert "10:00:00.000  10:00:00.000  ESZ6" in r.stdout
    r = helmdesk("ticks", "info", "2026-11-24")
    assert r.returncode == 1 and "no ticks for 2026-11-24" in r.stderr and "2026-11-23" in r.stderr


@pytest.mark.parametrize("args, why", [
    (["--tick", "AAA=0.01"], "no such file"),
    (["--tick", "AAA=zero"], "AAA: tick must be a number, was 'zero'"),
    ([], "no instruments: give each symbol's tick with --tick SYMBOL=TICK"),
    (["--tick", "AAA=0.01", "--tick", "AAA=0.05"], "an earlier --tick gives AAA a tick of 0.01"),
])
def test_command_refuses_bad_options_with_exit_2(tmp_path, args, why):
    r = helmdesk("import-ticks", str(tmp_path / "missing.csv"), "--venue", "SIMA", *args)
    assert r.returncode == 2 and why in r.stderr, r.stderr


def test_command_refuses_a_bad_header_with_exit_2(tmp_path):
    p = csv(tmp_path, "when,symbol,type,side,price,size\n")
    r = helmdesk("import-ticks", str(p), "--venue", "SIMA", "--tick", "AAA=0.01")
    assert r.returncode == 2
    assert f"helmdesk import-ticks: {p}: header: unknown column 'when'" in r.stderr


def test_command_shows_progress_on_a_long_file(tmp_path):
    n = 25_000
    ts = T + np.arange(n) * 1000
    lines = [f"{t},AAA,trade,buy,{100 + (i % 50) / 100:.2f},{1 + i % 9}\n" for i, t in enumerate(ts)]
    p = tmp_path / "long.csv"
    p.write_text("time,symbol,type,side,price,size\n" + "".join(lines))
    r = helmdesk("import-ticks", str(p), "--venue", "SIMA", "--tick", "AAA=0.01",
                 "--root", str(tmp_path / "ticks"), "--progress-every", "5000")
    assert r.returncode == 0, r.stderr
    progress = r.stderr.splitlines()
    assert len(progress) == 5
    assert progress[0].startswith("long.csv: 5,000 rows read, 5,000 imported, 0 rejected (")
    assert progress[-1].startswith("long.csv: 25,000 rows read") and progress[-1].endswith(" rows/s)")
    rec = replay(tmp_path / "ticks", "2026-11-23")
    assert np.array_equal(rec["recv_ns"], ts) and rec["size"][:3].tolist() == [1, 2, 3]
