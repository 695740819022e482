"""The tick store with real files: round trips, the merge rule, refusals, torn tails, segments."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from engine.core.events import MD_EVENT, MD_EVENT_VERSION, QUOTE, TRADE
from engine.feeds.tickstore import (
    HEADER_ALIGN,
    NS_PER_DAY,
    TickDay,
    TickFileError,
    TickReader,
    TickRecorder,
    TickStoreError,
    TickWriter,
    day_files,
    day_of,
    list_days,
    open_day,
    replay,
)

T0 = 1_795_000_000_000_000_000  # 2026-11-18T09:46:40Z
DAY = "2026-11-18"
INS = [("AAA", 0.01), ("BBB", 0.25), ("CCC", 5.0)]


def events(n: int, venue: int, seed: int, t0: int = T0, step: int = 1000) -> np.ndarray:
    """n random MD_EVENT records of one venue, recv_ns non-decreasing (with repeats)."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n, dtype=MD_EVENT)
    r["kind"] = rng.choice([QUOTE, TRADE], n)
    r["venue"] = venue
    r["side"] = rng.integers(0, 2, n)
    r["level"] = rng.integers(0, 10, n)
    r["instrument"] = rng.integers(0, len(INS), n)
    r["seq"] = np.arange(1, n + 1)
    r["recv_ns"] = t0 + np.cumsum(rng.integers(0, step, n))  # 0: equal times happen
    r["exch_ns"] = r["recv_ns"] - rng.integers(0, 500, n)
    r["price"] = rng.integers(-50, 10_000, n)
    r["size"] = rng.integers(0, 1000, n)
    r["aux"] = rng.integers(0, 1 << 40, n)
    return r


def write(root, venue: str, rec: np.ndarray, instruments=INS, batch: int = 97) -> TickWriter:
    with TickWriter(root, venue, instruments) as w:
        for i in range(0, len(rec), batch):
            w.append(rec[i : i + batch])
    return w


def merged_reference(*streams: np.ndarray) -> np.ndarray:
    """Stable sort of the venues' concatenation by recv_ns: what replay must give here."""
    cat = np.concatenate(streams)
    return cat[np.argsort(cat["recv_ns"], kind="stable")]


# -- ROUND TRIP --


def test_write_read_round_trip_is_identical(tmp_path):
    a = events(5000, 0, seed=1)
    w = write(tmp_path, "SIMA", a)
    assert w.files == [tmp_path / DAY / "SIMA.ticks"]
    r = TickReader(tmp_path / DAY / "SIMA.ticks")
    assert isinstance(r.records, np.memmap) and not r.records.flags.writeable
    assert r.records.dtype == MD_EVENT and np.array_equal(r.records, a)
    assert r.venue == "SIMA" and r.day == DAY and r.torn_bytes == 0
    assert r.instruments == (("AAA", 0.01), ("BBB", 0.25), ("CCC", 5.0))
    assert r.instruments[1].symbol == "BBB" and r.instruments[1].tick == 0.25
    assert r.header["md_event_version"] == MD_EVENT_VERSION and r.header_size == HEADER_ALIGN
    size = (tmp_path / DAY / "SIMA.ticks").stat().st_size
    assert size == HEADER_ALIGN + 5000 * 64


def test_replay_merges_two_venues_by_recv_ns(tmp_path):
    a, b = events(4000, 0, seed=2, step=50), events(3000, 1, seed=3, step=70)
    b["recv_ns"][::10] = a["recv_ns"][: len(b[::10])]  # cross-venue ties: SIMA (listed first) wins
    b["recv_ns"] = np.maximum.accumulate(b["recv_ns"])
    write(tmp_path, "SIMA", a)
    write(tmp_path, "SIMB", b, batch=1000)
    got = replay(tmp_path, DAY)
    assert np.array_equal(got, merged_reference(a, b))
    assert np.all(np.diff(got["recv_ns"]) >= 0)
    assert np.array_equal(replay(tmp_path, DAY), got)  # deterministic
    # one venue alone is that venue's file; asking in another order renumbers the venues
    assert np.array_equal(replay(tmp_path, DAY, ["SIMB"])["seq"], b["seq"])
    swapped = replay(tmp_path, DAY, ["SIMB", "SIMA"])
    a2, b2 = a.copy(), b.copy()
    a2["venue"], b2["venue"] = 1, 0
    assert np.array_equal(swapped, merged_reference(b2, a2))


def test_a_venue_is_never_reordered_when_its_clock_steps_back(tmp_path):
    a = np.zeros(4, dtype=MD_EVENT)
    a["recv_ns"] = T0 + np.array([10, 20, 15, 30])  # the wall clock stepped back 5 ns
    a["seq"] = [1, 2, 3, 4]
    b = np.zeros(3, dtype=MD_EVENT)
    b["venue"] = 1
    b["recv_ns"] = T0 + np.array([12, 17, 25])
    b["seq"] = [11, 12, 13]
    write(tmp_path, "SIMA", a)
    write(tmp_path, "SIMB", b)
    got = replay(tmp_path, DAY)
    # SIMA's 15 counts as at 20 (its running maximum): it stays after seq 2
    assert got["seq"].tolist() == [1, 11, 12, 2, 3, 13, 4]


def test_writer_splits_batches_by_utc_day(tmp_path):
    midnight = (T0 // NS_PER_DAY + 1) * NS_PER_DAY
    rec = events(1000, 0, seed=4, t0=midnight - 500 * 1000, step=2000)
    rec["recv_ns"][600] = midnight - 1  # the clock stepped back across midnight
    with TickWriter(tmp_path, "SIMA", INS) as w:
        w.append(rec)  # one batch across midnight
    day2 = day_of(midnight)
    assert (day_of(midnight - 1), day2) == (DAY, "2026-11-19")
    assert list_days(tmp_path) == [DAY, day2]
    first = TickReader(tmp_path / DAY / "SIMA.ticks").records
    second = TickReader(tmp_path / day2 / "SIMA.ticks").records
    before = rec["recv_ns"] < midnight
    assert np.array_equal(first, rec[before]) and np.array_equal(second, rec[~before])
    assert np.array_equal(replay(tmp_path, day2), rec[~before])


def test_big_batches_and_many_small_ones_give_the_same_file(tmp_path):
    rec = events(40_000, 0, seed=5)  # more than one 1 MiB buffer
    write(tmp_path / "a", "SIMA", rec, batch=40_000)
    write(tmp_path / "b", "SIMA", rec, batch=3)
    ra, rb = (TickReader(p / DAY / "SIMA.ticks") for p in (tmp_path / "a", tmp_path / "b"))
    assert np.array_equal(ra.records, rec) and np.array_equal(rb.records, rec)


def test_flush_makes_records_visible_to_a_reader_while_writing(tmp_path):
    rec = events(100, 0, seed=6)
    w = TickWriter(tmp_path, "SIMA", INS)
    w.append(rec)
    assert len(TickReader(tmp_path / DAY / "SIMA.ticks")) == 0  # still in the buffer
    w.flush()
    assert np.array_equal(TickReader(tmp_path / DAY / "SIMA.ticks").records, rec)
    w.close()


def test_writer_refuses_what_is_not_its_records(tmp_path):
    w = TickWriter(tmp_path, "SIMA", INS)
    with pytest.raises(TypeError, match="must be MD_EVENT"):
        w.append(np.zeros(3, dtype=np.int64))
    bad = events(3, 0, seed=7)
    bad["instrument"][1] = 3
    with pytest.raises(ValueError, match="instrument id 3 is not in SIMA's instrument table"):
        w.append(bad)
    with pytest.raises(ValueError, match="venue name"):
        TickWriter(tmp_path, "no/slash", INS)
    with pytest.raises(ValueError, match="listed twice"):
        TickWriter(tmp_path, "SIMA", [("AAA", 0.01), ("AAA", 0.01)])
    w.close()


# -- REFUSALS --


@pytest.fixture
def one_file(tmp_path):
    write(tmp_path, "SIMA", events(10, 0, seed=8))
    return tmp_path / DAY / "SIMA.ticks"


def patch(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_wrong_magic_is_refused(one_file):
    patch(one_file, 0, b"PK\x03\x04")
    with pytest.raises(TickFileError, match="not a Helmdesk tick file") as e:
        TickReader(one_file)
    assert str(one_file) in str(e.value)


def test_another_md_event_version_is_refused(one_file):
    patch(one_file, 12, struct.pack("<I", MD_EVENT_VERSION + 1))
    with pytest.raises(TickFileError) as e:
        TickReader(one_file)
    assert str(e.value) == (f"{one_file}: written with MD_EVENT version {MD_EVENT_VERSION + 1}, "
                            f"this engine reads version {MD_EVENT_VERSION}")


def test_another_format_version_is_refused(one_file):
    patch(one_file, 8, struct.pack("<I", 9))
    with pytest.raises(TickFileError, match="tick file format version 9, this engine reads version 1"):
        TickReader(one_file)


def test_another_dtype_with_the_same_version_is_refused(one_file):
    head = one_file.read_bytes()[:HEADER_ALIGN]
    at = head.index(b'"recv_ns"')
    patch(one_file, at, b'"recv_us"')  # a field renamed without bumping MD_EVENT_VERSION
    with pytest.raises(TickFileError, match="another MD_EVENT layout"):
        TickReader(one_file)


@pytest.mark.parametrize("size, why", [
    (0, "truncated header: the file is 0 bytes"),
    (20, "truncated header: the file is 20 bytes"),
    (1000, f"truncated header: the file is 1000 bytes, its header {HEADER_ALIGN}"),
])
def test_truncated_header_is_refused(one_file, size, why):
    with open(one_file, "r+b") as f:
        f.truncate(size)
    with pytest.raises(TickFileError, match=why):
        TickReader(one_file)


def test_torn_last_record_is_ignored_and_counted_then_cut_by_the_next_writer(tmp_path):
    a = events(50, 0, seed=9)
    write(tmp_path, "SIMA", a)
    path = tmp_path / DAY / "SIMA.ticks"
    with open(path, "ab") as f:
        f.write(b"\x01" * 30)  # a crash in the middle of a record
    r = TickReader(path)
    assert r.torn_bytes == 30 and np.array_equal(r.records, a)
    assert open_day(tmp_path, DAY).torn_bytes == 30
    assert np.array_equal(replay(tmp_path, DAY), a)
    b = events(20, 0, seed=10, t0=int(a["recv_ns"][-1]))
    w = write(tmp_path, "SIMA", b)
    assert w.files == [path]
    assert any("cut off a torn last record (30 bytes)" in n for n in w.notes)
    r = TickReader(path)
    assert r.torn_bytes == 0 and np.array_equal(r.records, np.concatenate([a, b]))


def test_replay_names_what_is_missing(tmp_path):
    with pytest.raises(TickStoreError, match=r"no ticks for 2026-11-18 .* \(no days recorded there\)"):
        replay(tmp_path, DAY)
    write(tmp_path, "SIMA", events(5, 0, seed=11))
    with pytest.raises(TickStoreError, match=r"no SIMX ticks for 2026-11-18 .*\(venues that day: SIMA\)"):
        replay(tmp_path, DAY, ["SIMA", "SIMX"])
    with pytest.raises(TickStoreError, match="days there: 2026-11-18"):
        replay(tmp_path, "2026-11-19")
    with pytest.raises(TickStoreError, match="YYYY-MM-DD"):
        replay(tmp_path, "yesterday")


# -- SEGMENTS --


def test_reopening_appends_to_the_same_file(tmp_path):
    a, b = events(30, 0, seed=12), events(30, 0, seed=13, t0=T0 + 10**9)
    write(tmp_path, "SIMA", a)
    write(tmp_path, "SIMA", b)
    assert list(day_files(tmp_path, DAY)) == ["SIMA"]
    assert np.array_equal(replay(tmp_path, DAY), np.concatenate([a, b]))


def test_another_instrument_table_starts_a_segment_and_replay_maps_ids(tmp_path):
    a = events(30, 0, seed=14)
    write(tmp_path, "SIMA", a)
    later = [("DDD", 1.0), ("CCC", 5.0), ("AAA", 0.01)]  # restarted with another profile
    b = events(30, 0, seed=15, t0=T0 + 10**9)
    b["instrument"] = np.arange(30) % 3
    w = write(tmp_path, "SIMA", b, instruments=later)
    assert w.files == [tmp_path / DAY / "SIMA.1.ticks"]
    assert "another instrument table" in w.notes[0]
    assert day_files(tmp_path, DAY)["SIMA"][1].name == "SIMA.1.ticks"
    d = open_day(tmp_path, DAY)
    assert [s for s, _ in d.instruments] == ["AAA", "BBB", "CCC", "DDD"]
    got = d.merge()
    assert np.array_equal(got[:30], a)
    symbols = [d.instruments[i].symbol for i in got["instrument"][30:]]
    assert symbols == [later[i][0] for i in b["instrument"]]
    bad = [("AAA", 0.05)]
    c = events(3, 0, seed=16, t0=T0 + 2 * 10**9)
    c["instrument"] = 0
    write(tmp_path, "SIMA", c, instruments=bad)
    with pytest.raises(TickFileError, match="AAA has tick 0.05 there, 0.01 in another file"):
        open_day(tmp_path, DAY)


def test_a_file_another_writer_holds_is_left_alone(tmp_path):
    first = TickWriter(tmp_path, "SIMA", INS)
    first.append(events(5, 0, seed=17))
    second = TickWriter(tmp_path, "SIMA", INS)
    second.append(events(5, 0, seed=18))
    first.close()
    second.close()
    assert first.files[0].name == "SIMA.ticks" and second.files[0].name == "SIMA.1.ticks"
    assert "another writer holds it" in second.notes[0]


def test_an_unreadable_file_is_never_overwritten(tmp_path):
    (tmp_path / DAY).mkdir()
    (tmp_path / DAY / "SIMA.ticks").write_bytes(b"something else entirely")
    w = write(tmp_path, "SIMA", events(5, 0, seed=19))
    assert w.files[0].name == "SIMA.1.ticks"
    assert (tmp_path / DAY / "SIMA.ticks").read_bytes() == b"something else entirely"
    with pytest.raises(TickFileError, match="not a Helmdesk tick file"):
        TickDay(tmp_path, DAY)


# -- RECORDING --


def test_recorder_records_the_engines_batches_by_venue(tmp_path):
    a, b = events(3000, 0, seed=20, step=40), events(2000, 1, seed=21, step=60)
    stream = merged_reference(a, b)  # what the engine saw, both venues in one stream
    buf = np.zeros(64, dtype=MD_EVENT)  # the engine's reused batch
    with TickRecorder(tmp_path, ["SIMA", "SIMB"], INS) as rec:
        for i in range(0, len(stream), 64):
            part = stream[i : i + 64]
            buf[: len(part)] = part
            assert rec.record(buf[: len(part)])
            buf["price"] = -1  # the engine reuses its array at once: the recorder has a copy
        assert rec.flush()
        assert len(TickReader(tmp_path / DAY / "SIMA.ticks")) == len(a)
    assert rec.written_records == len(stream) and rec.dropped_records == rec.bad_records == 0
    assert np.array_equal(TickReader(tmp_path / DAY / "SIMA.ticks").records, a)
    assert np.array_equal(TickReader(tmp_path / DAY / "SIMB.ticks").records, b)
    assert np.array_equal(replay(tmp_path, DAY), stream)


def test_recorder_drops_and_counts_rather_than_wait_or_crash(tmp_path):
    with TickRecorder(tmp_path, ["SIMA"], INS, max_queued_bytes=64 * 100) as rec:
        assert not rec.record(events(101, 0, seed=22))  # more than the ring holds
        assert rec.dropped_records == 101
        wrong = events(10, 0, seed=23)
        wrong["venue"][:4] = 7  # not one of the recorder's venues
        assert rec.record(wrong)
        rec.flush()
    assert rec.bad_records == 4 and rec.written_records == 6
    assert "venue id 7" in rec.last_error
    assert len(TickReader(tmp_path / DAY / "SIMA.ticks")) == 6


def test_recorder_without_a_thread(tmp_path):
    a = events(500, 0, seed=24)
    with TickRecorder(tmp_path, ["SIMA"], INS, thread=False) as rec:
        for i in range(0, 500, 50):
            rec.record(a[i : i + 50])
    assert np.array_equal(replay(tmp_path, DAY), a)


def test_recorder_writes_per_venue_batches_straight_from_its_ring(tmp_path):
    """The engine's usual batches (one venue each) take the writev path; the ring wraps."""
    midnight = (T0 // NS_PER_DAY + 1) * NS_PER_DAY
    a = events(3000, 0, seed=25, t0=midnight - 1_000_000, step=700)
    b = events(2000, 1, seed=26, t0=midnight - 1_000_000, step=1000)
    with TickRecorder(tmp_path, ["SIMA", "SIMB"], INS, max_queued_bytes=64 * 1000) as rec:
        for i in range(10):  # 300 + 200 records a round: the 1000-record ring wraps
            assert rec.record(a[i * 300 : (i + 1) * 300])
            assert rec.record(b[i * 200 : (i + 1) * 200])
            assert rec.flush()
    assert rec.written_records == 5000 and rec.dropped_records == rec.errors == 0
    for venue, stream in (("SIMA", a), ("SIMB", b)):
        got = np.concatenate([TickReader(tmp_path / d / f"{venue}.ticks").records
                              for d in (DAY, "2026-11-19")])
        assert np.array_equal(got, stream)  # split at midnight, nothing lost or reordered


def test_replay_into_a_reused_array(tmp_path):
    a, b = events(300, 0, seed=27), events(200, 1, seed=28)
    write(tmp_path, "SIMA", a)
    write(tmp_path, "SIMB", b)
    buf = np.zeros(1000, dtype=MD_EVENT)
    got = replay(tmp_path, DAY, out=buf)
    assert len(got) == 500 and np.shares_memory(got, buf)
    assert np.array_equal(got, merged_reference(a, b))
    with pytest.raises(ValueError, match="at least 500 records"):
        replay(tmp_path, DAY, out=buf[:499])
