"""The simulated venue's drop copy: a FIX session that receives a copy of every
ExecutionReport sent to any counterparty, with the counterparty in Account(1). Real venue
(a process, or ``Venue`` in this process where its counters are read), real loopback TCP, FIX
initiator sessions from engine.fix; the in-process venue's copy on a clock the test passes."""

from __future__ import annotations

import asyncio

import pytest

from engine.core.profile import (
    ProfileError,
    VenueConfig,
    parse_profile,
)
from engine.fix.session import AppMessage, LoggedOn
from engine.fix.store import MemoryStore
from engine.venue.inprocess import InProcessVenue
from engine.venue.server import Venue
from tests.venue.test_inprocess import AAA, BBB, LAT, T0, order
from tests.venue.test_server import (  # noqa: F401 (fixture)
    Client,
    connect_until_accepted,
    until,
    venue_factory,
)

ER = b"8"
DC = 'drop_copy = ["HELMDC"]'


def _body(m) -> list[tuple[int, bytes]]:
    """An application message's body: every field but the header's and the trailer's."""
    header = {8, 9, 35, 49, 56, 34, 52, 43, 97, 122, 10}
    return [(t, v) for t, v in m.fields if t not in header]


def _copies(c: Client) -> list:
    return [m for m in c.msgs if m.msg_type == ER]


async def _trade(helm: Client, helm2: Client) -> None:
    """HELM rests a buy; HELM2 sells into it twice (one fill each, the second rests the rest);
    HELM2 cancels what rests."""
    helm.order("B1", side=1, qty="10", price="100.00")
    await helm.er("B1", b"0")
    helm2.order("S1", side=2, qty="4", price="100.00")
    await helm2.er("S1", b"F")
    helm2.order("S2", side=2, qty="20", price="100.00")
    await helm2.er("S2", b"F")
    await helm.er("B1", b"F", _39=2)
    helm2.send(b"F", (11, "S2c"), (41, "S2"), (55, "AAA"), (54, 2), (60, b"20260101-00:00:00"))
    await helm2.er("S2c", b"4")


def test_drop_copy_sees_every_execution_of_both_counterparties(venue_factory):  # noqa: F811
    venue = venue_factory(extra=DC).start()
    assert "drop copy HELMDC" in venue.output

    async def main():
        dc = await Client(venue.port, "HELMDC").connect()
        helm = await Client(venue.port, "HELM").connect()
        helm2 = await Client(venue.port, "HELM2").connect()
        await _trade(helm, helm2)
        sent = [("HELM", m) for m in _copies(helm)] + [("HELM2", m) for m in _copies(helm2)]
        assert len(sent) == 8  # B1 new, 2 fills; S1 new, fill; S2 new, fill, cancel
        await until(lambda: len(_copies(dc)) == len(sent), "a copy of every report")
        by_exec = {m.get(17): m for m in _copies(dc)}
        assert len(by_exec) == len(sent)  # every ExecID once
        for who, m in sent:
            copy = by_exec[m.get(17)]
            # the same fields in the same order, then the counterparty it went to
            assert _body(copy) == _body(m) + [(1, who.encode())], (who, m)
        fills = [(m.get(1), m.get(11), m.get(32)) for m in _copies(dc) if m.get(150) == b"F"]
        assert sorted(fills) == sorted([(b"HELM", b"B1", b"4"), (b"HELM2", b"S1", b"4"),
                                        (b"HELM", b"B1", b"6"), (b"HELM2", b"S2", b"6")])
        # in sequence: one copy per MsgSeqNum, none resent
        seqs = [m.seq for m in _copies(dc)]
        assert seqs == sorted(seqs) and not any(m.poss_dup for m in _copies(dc))
        for c in (dc, helm, helm2):
            await c.logout()

    asyncio.run(main())
    assert venue.stop() == 0


def test_orders_on_the_drop_copy_session_are_refused_and_counted(tmp_path):
    cfg = VenueConfig(name="SIMA", sender="SIMA", counterparties=("HELM",),
                      drop_copy=("HELMDC",))

    async def main():
        v = Venue(cfg, [AAA], port=0, db_url=f"sqlite:///{tmp_path / 'v.db'}", tick_s=0.05)
        await v.start()
        try:
            dc = await Client(v.port, "HELMDC").connect()
            seq = dc.order("DC1", side=1, qty="10", price="100.00")
            rej = await dc.wait("the BusinessMessageReject", lambda m: m.msg_type == b"j")
            assert (rej.get(45), rej.get(372), rej.get(379), rej.get(380)) == (
                str(seq).encode(), b"D", b"DC1", b"6")
            assert b"HELMDC is a drop-copy session of SIMA" in rej.get(58)
            assert b"may not send NewOrderSingle(D)" in rej.get(58)
            dc.send(b"H", (11, "DC1"), (55, "AAA"), (54, 1))  # nor ask about orders
            await until(lambda: sum(m.msg_type == b"j" for m in dc.msgs) == 2, "second reject")
            snap = v.snapshot()
            assert snap["counters"]["drop_copy_refused"] == 2
            assert snap["counters"]["orders"] == 0 and snap["books"]["AAA"]["orders"] == 0
            assert snap["sessions"]["HELMDC"]["drop_copy"] is True
            assert snap["sessions"]["HELM"]["drop_copy"] is False
            # the session goes on: a counterparty's order is still copied to it
            helm = await Client(v.port, "HELM").connect()
            helm.order("B1", side=1, qty="5", price="99.00")
            await helm.er("B1", b"0")
            copy = await dc.wait("the copy", lambda m: m.msg_type == ER)
            assert (copy.get(11), copy.get(1)) == (b"B1", b"HELM")
            assert v.snapshot()["counters"]["drop_copies"] == 1
            await dc.logout()
            await helm.logout()
        finally:
            await v.stop()

    asyncio.run(main())


def test_drop_copy_keeps_sequence_and_resends_after_a_reconnect(tmp_path):
    cfg = VenueConfig(name="SIMA", sender="SIMA", counterparties=("HELM", "HELM2"),
                      drop_copy=("HELMDC",))

    async def main():
        v = Venue(cfg, [AAA], port=0, db_url=f"sqlite:///{tmp_path / 'v.db'}", tick_s=0.05)
        await v.start()
        try:
            store = MemoryStore()
            dc = await Client(v.port, "HELMDC", store=store).connect()
            helm = await Client(v.port, "HELM").connect()
            helm2 = await Client(v.port, "HELM2").connect()
            helm.order("B1", side=1, qty="10", price="100.00")
            await dc.wait("B1's copy", lambda m: m.get(11) == b"B1")
            first = [m.seq for m in _copies(dc)]
            # the drop copy goes away; trading goes on; the venue keeps the copies
            await dc.drop()
            await until(lambda: v.snapshot()["sessions"]["HELMDC"]["state"] == "disconnected",
                        "the venue to see the drop copy gone")
            helm2.order("S1", side=2, qty="3", price="100.00")
            await helm2.er("S1", b"F")
            await until(lambda: v.snapshot()["sessions"]["HELMDC"]["pending"] == 3,
                        "three copies kept (S1 new and fill, B1 fill)")
            dc2 = await connect_until_accepted(v.port, "HELMDC", store)
            assert not next(e for e in dc2.events if isinstance(e, LoggedOn)).reset
            await until(lambda: len(_copies(dc2)) == 3, "the kept copies after the Logon")
            seqs = [m.seq for m in _copies(dc2)]
            assert seqs[0] > first[-1] and seqs == list(range(seqs[0], seqs[0] + 3))
            assert sorted((m.get(1), m.get(11), m.get(150)) for m in _copies(dc2)) == [
                (b"HELM", b"B1", b"F"), (b"HELM2", b"S1", b"0"), (b"HELM2", b"S1", b"F")]
            assert v.snapshot()["counters"]["sent_late"] >= 3
            await dc2.drop()
            # a drop copy that lost what it had read asks again: ResendRequest, PossDupFlag=Y
            lost = MemoryStore()
            lost.set_next_sender_seq(store.next_sender_seq)
            lost.set_next_target_seq(first[0])
            dc3 = await connect_until_accepted(v.port, "HELMDC", lost)
            await until(lambda: len(_copies(dc3)) == 4, "every copy resent")
            again = _copies(dc3)
            assert all(m.poss_dup and m.get(122) for m in again)
            assert [m.seq for m in again] == first + seqs
            assert {m.get(17) for m in again} == {m.get(17) for m in _copies(dc) + _copies(dc2)}
            venue_end = v._cps["HELMDC"].session.store
            await until(lambda: lost.next_target_seq == venue_end.next_sender_seq, "no gap left")
            for c in (dc3, helm, helm2):
                await c.logout()
        finally:
            await v.stop()

    asyncio.run(main())


# -- the in-process venue's copy -----------------------------------------------------------------
def test_in_process_venue_copies_every_report_and_refuses_orders_on_the_copy():
    v = InProcessVenue("SIMA", [AAA, BBB], latency_ns=LAT)
    link = v.drop_copy("HELMDC")
    assert v.drop_copy("HELMDC") is link
    now = T0
    v.poll(now)
    link.poll(now)
    while not (v.up and link.up):
        now = min(v.next_due_ns(), link.next_due_ns())
        v.poll(now)
        link.poll(now)
    ours: list = []
    copies: list = []

    def run(until_ns: int) -> None:
        nonlocal now
        while True:
            nxt = min(v.next_due_ns(), link.next_due_ns())
            if nxt > until_ns:
                now = until_ns
                return
            now = max(now, nxt)
            ours.extend(e.message for e in v.poll(now) if type(e) is AppMessage)
            copies.extend(e.message for e in link.poll(now) if type(e) is AppMessage)

    v.send(b"D", order("B1", "buy", 10, "100.00"), now)
    v.send(b"D", order("S1", "sell", 4, "100.00"), now)
    run(now + 10 * LAT)
    ers = [m for m in ours if m.msg_type == ER]
    assert [m.get(150) for m in ers] == [b"0", b"0", b"F", b"F"]
    assert [_body(m) for m in copies] == [_body(m) + [(1, b"HELM")] for m in ers]
    # an order on the copy: BusinessMessageReject 6, nothing reaches a book
    seq = link.send(b"D", order("X1", "buy", 1, "100.00"), now)
    run(now + 10 * LAT)
    rej = copies[-1]
    assert (rej.msg_type, rej.get(45), rej.get(380)) == (b"j", str(seq).encode(), b"6")
    assert link.counters["refused"] == 1 and v.exchange.counters["drop_copy_refused"] == 1
    assert v.exchange.counters["orders"] == 2 and not any(m.get(11) == b"X1" for m in ours)
    # copies made while the copy is away are kept and sent after its Logon, in sequence
    link.fail("test drop", now)
    assert not link.up
    run(now + 2 * LAT)  # the venue's end has seen the connection go
    v.send(b"D", order("S2", "sell", 2, "100.00"), now)
    run(now + 10 * LAT)
    assert link.counters["copies"] == 7 and not link.up  # S2 new, S2 fill, B1 fill
    run(now + 2_000_000_000)
    assert link.up and link.counters["sent_late"] == 3
    assert [(m.get(11), m.get(150)) for m in copies[-3:]] == [(b"S2", b"0"), (b"S2", b"F"),
                                                              (b"B1", b"F")]
    assert not any(m.poss_dup for m in copies)


# -- the profile ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value, why", [
    ('["HELMDC", "HELMDC"]', "drop_copy[1]: 'HELMDC' is listed twice"),
    ('["HELM"]', ("drop_copy[0]: 'HELM' is also a counterparty: a drop-copy session may not "
                  "trade")),
    ('["SIMA"]', "drop_copy[0]: 'SIMA' is the venue's own CompID"),
    ('["bad id"]', "drop_copy[0]: must be a CompID of 1-32 letters"),
    ('"HELMDC"', "drop_copy: must be a list"),
])
def test_profile_drop_copy_is_validated_like_counterparties(tmp_path, value, why):
    data = {"instruments": [{"symbol": "AAA", "tick": 0.01, "price": 100.0}],
            "venue": {"name": "SIMA", "counterparties": ["HELM"]}}
    import tomllib

    data["venue"]["drop_copy"] = tomllib.loads(f"x = {value}")["x"]
    with pytest.raises(ProfileError) as e:
        parse_profile(data, tmp_path / "v.toml")
    assert f"v.toml: [venue].{why}" in str(e.value)
    data["venue"]["drop_copy"] = ["HELMDC"]
    assert parse_profile(data, tmp_path / "v.toml").venue.drop_copy == ("HELMDC",)
    del data["venue"]["drop_copy"]
    assert parse_profile(data, tmp_path / "v.toml").venue.drop_copy == ()
