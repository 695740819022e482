"""The venue's order handling and background flow in memory (no sockets): what the network
tests cannot pin down exactly."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from engine.core.profile import InstrumentConfig
from engine.fix.codec import FixDecoder, FixMessage, decode, encode
from engine.venue.background import BackgroundFlow
from engine.venue.exchange import Exchange

AAA = InstrumentConfig(symbol="AAA", tick=0.01, price=100.0)
_seq = iter(range(1, 1 << 30))


def msg(msg_type: bytes, *fields) -> FixMessage:
    d = FixDecoder()
    d.feed(encode(msg_type, list(fields), sender=b"HELM", target=b"SIMA", seq=next(_seq),
                  sending_time_ns=1_700_000_000_000_000_000))
    return d.next()


def out(x: Exchange) -> list[tuple[str, bytes, dict]]:
    """What the exchange would send, as wire values: (owner, MsgType, {tag: bytes})."""
    got = []
    for owner, mt, body in x.outbox:
        m = decode(encode(mt, body, sender=b"SIMA", target=owner.encode(), seq=1,
                          sending_time_ns=0))
        got.append((owner, mt, dict(m.fields)))
    x.outbox.clear()
    return got


def test_same_seed_same_books_and_the_cap_holds():
    books = []
    for _ in range(2):
        x = Exchange("SIMA", [AAA])
        flow = BackgroundFlow(x, seed=11, max_live=50)
        for i in range(3000):
            flow.step(i)
        assert flow.live(0) <= 50 and len(x.books[0].engine) <= 50
        assert x.books[0].engine.check() is None
        assert not x.outbox  # nobody to tell
        books.append(x.books[0].engine.book_depth(10))
    assert books[0] == books[1] and books[0][0] and books[0][1]


def test_venues_with_one_reference_seed_quote_around_one_price():
    """Different seeds, rates and start times; the same reference: the same mid at any time."""
    day = 1_795_400_000_000_000_000  # some wall-clock time, ns
    a, b = Exchange("SIMA", [AAA]), Exchange("SIMB", [AAA])
    fa = BackgroundFlow(a, seed=1, reference_seed=7)
    fb = BackgroundFlow(b, seed=2, reference_seed=7)
    mids_a, mids_b, moved = [], [], set()
    for k in range(600):  # 60 s: a steps every 100 ms, b twice as often, starting 3.05 s later
        t = day + k * 100_000_000
        fa.step(t)
        mids_a.append(fa.mid(0))
        moved.add(fa.mid(0))
        if k >= 31:
            fb.step(t - 50_000_000)
            fb.step(t)
            mids_b.append(fb.mid(0))
    assert mids_a[31:] == mids_b  # the same path
    assert len(moved) > 3  # and it does move


def test_venues_on_one_reference_rarely_cross_each_other():
    """Crossing orders are IOC under a reference: each touch stays near the shared mid, so the
    two venues' merged book crosses only when the mid trends past stale passive orders."""
    t0 = 1_795_400_000_000_000_000
    a, b = Exchange("SIMA", [AAA]), Exchange("SIMB", [AAA])
    fa = BackgroundFlow(a, seed=1, reference_seed=7)
    fb = BackgroundFlow(b, seed=2, reference_seed=7)
    crossed = 0
    n = 3000
    for k in range(n):
        t = t0 + k * 20_000_000
        fa.step(t)
        fb.step(t)
        ba, bb = a.books[0].engine.book_depth(1), b.books[0].engine.book_depth(1)
        bids = [x[0][0] for x in (ba[0], bb[0]) if x]
        asks = [x[0][0] for x in (ba[1], bb[1]) if x]
        if bids and asks and max(bids) > min(asks):
            crossed += 1
    assert crossed < n * 0.05, f"crossed {crossed} times in {n}"
    assert a.books[0].engine.check() is None and b.books[0].engine.check() is None


def test_a_background_order_fills_a_client_and_only_the_client_hears():
    x = Exchange("SIMA", [AAA], fee_bps=1.0)
    x.on_message("HELM", msg(b"D", (11, "c1"), (55, "AAA"), (54, 2), (38, 5), (40, 2),
                             (44, "100.02")), 1)
    assert [m[2][150] for m in out(x)] == [b"0"]
    x.submit_background(x.books[0], 1, 3, 10003, 2)  # a buyer crosses at 100.03
    [(owner, mt, f)] = out(x)
    assert (owner, mt, f[150], f[39], f[32], f[31], f[151], f[14], f[6]) == (
        "HELM", b"8", b"F", b"1", b"3", b"100.02", b"2", b"3", b"100.02")
    assert (f[12], f[13]) == (b"0.030006", b"3")  # 1 bp of 3 × 100.02


def test_replacing_a_partly_filled_order_reports_it_partly_filled():
    x = Exchange("SIMA", [AAA])
    x.on_message("HELM", msg(b"D", (11, "c1"), (55, "AAA"), (54, 2), (38, 5), (40, 2),
                             (44, "100.02")), 1)
    x.submit_background(x.books[0], 1, 2, 10002, 2)
    out(x)
    x.on_message("HELM", msg(b"G", (41, "c1"), (11, "c2"), (38, 4), (44, "100.05")), 3)
    [(_, _, f)] = out(x)
    assert (f[150], f[39], f[11], f[41], f[38], f[44], f[151], f[14]) == (
        b"5", b"1", b"c2", b"c1", b"4", b"100.05", b"2", b"2")
    x.on_message("HELM", msg(b"G", (41, "c2"), (11, "c3"), (38, 2), (44, "100.05")), 4)
    [(_, mt, f)] = out(x)  # not above what is filled
    assert (mt, f[102], f[434], f[39]) == (b"9", b"99", b"2", b"1")
    assert f[58] == b"quantity 2 must exceed the 2 already filled"


def test_cancel_all_reports_each_order_to_its_owner():
    x = Exchange("SIMA", [AAA])
    for i, owner in enumerate(("HELM", "HELM2", "HELM")):
        x.on_message(owner, msg(b"D", (11, f"o{i}"), (55, "AAA"), (54, 1), (38, 1), (40, 2),
                                (44, "99.00")), i)
    out(x)
    assert x.cancel_all("HELM", 9) == 2
    got = out(x)
    assert [(o, f[11], f[150], f[58]) for o, _, f in got] == [
        ("HELM", b"o0", b"4", b"owner disconnected"), ("HELM", b"o2", b"4", b"owner disconnected")]
    assert x.live_orders("HELM") == 0 and x.live_orders("HELM2") == 1


_VALUES = {
    11: ["a", "b", "c", "d"], 41: ["a", "b", "c", "zz"], 55: ["AAA", "ZZZ", "aaa"],
    54: ["1", "2", "3", "B"], 38: ["1", "5", "0", "-3", "2.5", "1e3", "x", "99999999999"],
    40: ["1", "2", "3", "P"], 44: ["100.00", "100.01", "99.995", "0", "-1", "nan", "inf", "q"],
    59: ["0", "3", "4", "1", "x"], 790: ["r1"],
}


def test_any_mix_of_requests_gets_answers_and_never_raises():
    field = st.sampled_from(sorted(_VALUES)).flatmap(
        lambda t: st.tuples(st.just(t), st.sampled_from(_VALUES[t])))
    request = st.tuples(st.sampled_from([b"D", b"D", b"F", b"G", b"H", b"X"]),
                        st.lists(field, max_size=9, unique_by=lambda f: f[0]),
                        st.sampled_from(["HELM", "HELM2"]))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(request, max_size=25), st.integers(0, 40))
    def run(requests, background_steps):
        x = Exchange("SIMA", [AAA])
        flow = BackgroundFlow(x, seed=3)
        for i, (mt, fields, owner) in enumerate(requests):
            x.on_message(owner, msg(mt, *fields), i)
            replies = out(x)
            assert replies, (mt, fields)
            assert {r[1] for r in replies} <= {b"8", b"9", b"j"}
            for _ in range(background_steps):
                flow.step(i)
            out(x)
            assert x.books[0].engine.check() is None
        for owner in ("HELM", "HELM2"):
            x.cancel_all(owner, 99)
            assert x.live_orders(owner) == 0

    run()
