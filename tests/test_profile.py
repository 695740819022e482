"""Profiles: validated at load, errors name the file, the key and the reason."""

from pathlib import Path

import pytest

from engine.core.paths import demo_profile_path
from engine.core.profile import ProfileError, load_profile
from engine.core.roles import Role

GOOD = """
[engine]
instance = "x1"
idle = "sleep"

[[instruments]]
symbol = "AAA"
tick = 0.01
price = 10.0
"""


def write(tmp_path, text) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def test_demo_profile_loads():
    p = load_profile(demo_profile_path())
    assert p.engine.instance == "demo" and p.engine.idle == "hybrid"
    assert [i.symbol for i in p.instruments] == ["ESZ6", "NQZ6", "AAPL", "MSFT"]
    assert p.role_of("anyone") is Role.TRADER_RISK_MANAGER


def test_defaults(tmp_path):
    p = load_profile(write(tmp_path, GOOD))
    assert p.engine.cores is None and p.engine.publish_hz == 1000
    assert p.instruments[0].update_hz == 50
    assert p.role_of("nobody") is Role.VIEWER  # no [users]: everyone only watches


@pytest.mark.parametrize("text, where, reason", [
    (GOOD + "\n[engine2]\n", "profile.engine2", "unknown key"),
    (GOOD.replace('idle = "sleep"', 'idle = "nap"'), "[engine].idle", "must be one of spin, hybrid, sleep, was 'nap'"),
    (GOOD.replace('idle = "sleep"', "cores = [99]"), "[engine].cores[0]", "must be a CPU number"),
    (GOOD.replace('idle = "sleep"', "cores = true"), "[engine].cores", "must be a list, was True"),
    (GOOD.replace('idle = "sleep"', 'colour = "red"'), "[engine].colour", "unknown key"),
    (GOOD.replace('"x1"', '"bad name!"'), "[engine].instance", "must be 1-23 letters"),
    (GOOD.replace("tick = 0.01", "tick = -1"), "[[instruments]][0].tick", "must be between"),
    (GOOD.replace("price = 10.0", "price = nan"), "[[instruments]][0].price", "was nan"),
    (GOOD.replace("price = 10.0", "price = 0.1"), "[[instruments]][0].price", "at least 20 ticks"),
    (GOOD.replace('symbol = "AAA"\n', ""), "[[instruments]][0].symbol", "is required"),
    (GOOD + '\n[[instruments]]\nsymbol = "AAA"\ntick = 0.01\nprice = 10.0\n', "[[instruments]][1].symbol", "'AAA' is listed twice"),
    (GOOD + '\n[users]\nbob = "god"\n', "[users].bob", "unknown role 'god'"),
    ("[engine]\n", "profile.instruments", "is required"),
    # integer keys take whole numbers only: never rounded
    (GOOD.replace('idle = "sleep"', 'idle = "sleep"\nevent_capacity = 1024.9'),
     "[engine].event_capacity", "must be an integer, was 1024.9"),
    (GOOD.replace('idle = "sleep"', 'idle = "sleep"\nevent_capacity = 1024.0'),
     "[engine].event_capacity", "must be an integer, was 1024.0"),
    (GOOD + "\n[desk]\nstale_ms = 300.5\n", "[desk].stale_ms", "must be an integer"),
    (GOOD + "\n[feed]\nseed = 1e3\n", "[feed].seed", "must be an integer"),
    # lengths are bounded
    (GOOD + '\n[desk]\nname = "a-very-long-workstation-name"\n', "[desk].name",
     "must be 1-16 letters"),
    (GOOD + f'\n[users]\n{"u" * 33} = "viewer"\n', f"[users].{'u' * 33}",
     "is not an OS user name"),
    (GOOD + '\n[users]\n"bad user" = "viewer"\n', "[users].bad user", "is not an OS user name"),
    # no secrets in the clear
    (GOOD + '\n[database]\nurl = "postgresql://helm:hunter2@127.0.0.1/helm"\n',
     "[database].url", "carries a password (postgresql://helm:***@127.0.0.1/helm): profiles "
                       "hold no secrets"),
    (GOOD + '\n[database]\nurl = "postgresql://helm@127.0.0.1/helm"\npassword = "hunter2"\n',
     "[database].password", "must be a reference, env:NAME or keyring:NAME"),
    (GOOD + '\n[database]\nurl = "nonsense"\n', "[database].url", "must be an SQLAlchemy URL"),
])
def test_errors_name_file_key_and_reason(tmp_path, text, where, reason):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {where}: "), msg
    assert reason in msg


def test_unreadable_files(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(write(tmp_path, "[engine\n"))
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(p)


# -- [venue] -------------------------------------------------------------------------------------
VENUE = GOOD + """
[venue]
name = "SIMA"
counterparties = ["HELM", "HELM2"]
"""


def test_a_profile_without_a_venue_section_has_none(tmp_path):
    assert load_profile(write(tmp_path, GOOD)).venue is None


def test_venue_defaults(tmp_path):
    v = load_profile(write(tmp_path, VENUE)).venue
    assert (v.name, v.host, v.port, v.sender, v.counterparties) == (
        "SIMA", "127.0.0.1", 0, "SIMA", ("HELM", "HELM2"))
    assert (v.heartbeat_s, v.latency_us, v.background_hz, v.seed, v.fee_bps) == (30, 0, 0.0, 1, 0.0)


def test_venue_settings(tmp_path):
    text = VENUE + ('host = "127.0.0.2"\nport = 9876\nsender = "SIMA-GW"\nheartbeat_s = 5\n'
                    "latency_us = 250\nbackground_hz = 20\nseed = 7\nfee_bps = 0.5\n")
    v = load_profile(write(tmp_path, text)).venue
    assert (v.host, v.port, v.sender, v.heartbeat_s, v.latency_us) == (
        "127.0.0.2", 9876, "SIMA-GW", 5, 250)
    assert (v.background_hz, v.seed, v.fee_bps) == (20.0, 7, 0.5)


@pytest.mark.parametrize("text, where, reason", [
    (GOOD + '\n[venue]\ncounterparties = ["HELM"]\n', "[venue].name", "is required"),
    (GOOD + '\n[venue]\nname = "SIMA"\n', "[venue].counterparties", "is required"),
    (GOOD + '\n[venue]\nname = "SIMA"\ncounterparties = []\n', "[venue].counterparties",
     "must list at least one initiator CompID"),
    (VENUE.replace('"HELM2"', '"HELM"'), "[venue].counterparties[1]", "'HELM' is listed twice"),
    (VENUE.replace('"HELM2"', '"SIMA"'), "[venue].counterparties[1]",
     "'SIMA' is the venue's own CompID"),
    (VENUE.replace('"HELM2"', '"HE LM"'), "[venue].counterparties[1]", "must be a CompID"),
    (VENUE.replace('"HELM2"', "3"), "[venue].counterparties[1]", "must be a CompID"),
    (VENUE.replace('"SIMA"', '"SIM A"'), "[venue].name", "must be 1-23 letters"),
    (VENUE + 'host = "0.0.0.0"\n', "[venue].host", "must be an IPv4 loopback address"),
    (VENUE + 'host = "example.com"\n', "[venue].host", "was 'example.com'"),
    (VENUE + 'host = "::1"\n', "[venue].host", "must be an IPv4 loopback address"),
    (VENUE + "port = 70000\n", "[venue].port", "must be between 0 and 65535, was 70000"),
    (VENUE + "port = 80.5\n", "[venue].port", "must be an integer, was 80.5"),
    (VENUE + 'sender = "A=B"\n', "[venue].sender", "must be a CompID"),
    (VENUE + "heartbeat_s = 0\n", "[venue].heartbeat_s", "must be between 1 and 3600"),
    (VENUE + "latency_us = -1\n", "[venue].latency_us", "must be between 0 and 10000000"),
    (VENUE + "background_hz = -2.0\n", "[venue].background_hz", "must be between 0 and"),
    (VENUE + "seed = true\n", "[venue].seed", "must be an integer, was True"),
    (VENUE + "fee_bps = nan\n", "[venue].fee_bps", "was nan"),
    (VENUE + "tls = true\n", "[venue].tls", "unknown key"),
    ("venue = 3\n" + GOOD, "profile.venue", "must be a table, was 3"),
])
def test_venue_errors_name_file_key_and_reason(tmp_path, text, where, reason):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {where}: "), msg
    assert reason in msg


def test_every_bundled_profile_loads():
    from engine.core.paths import resources_dir

    paths = sorted((resources_dir() / "profiles").glob("*.toml"))
    assert {p.stem for p in paths} >= {"demo", "sima", "simb", "trading"}
    for p in paths:
        load_profile(p)  # raises with the file, key and reason if one rots
    trading = load_profile(resources_dir() / "profiles" / "trading.toml")
    assert [(v.name, v.port) for v in trading.venues] == [("SIMA", 9876), ("SIMB", 9877)]


def test_the_database_password_is_read_from_its_reference(tmp_path, monkeypatch):
    p = load_profile(write(tmp_path, GOOD + '\n[database]\nurl = "postgresql://helm@127.0.0.1/h"'
                                           '\npassword = "env:HD_TEST_PW"\n'))
    assert "hunter2" not in repr(p)  # the profile holds the reference only
    monkeypatch.setenv("HD_TEST_PW", "hunter2")
    assert p.database("/d") == "postgresql://helm:hunter2@127.0.0.1/h"
    monkeypatch.delenv("HD_TEST_PW")
    with pytest.raises(ProfileError, match=r"\[database\].password: environment variable "
                                           r"HD_TEST_PW is not set"):
        p.database("/d")
    sqlite = load_profile(write(tmp_path, GOOD))
    assert sqlite.database("/d") == "sqlite:////d/engine-x1.db"


# -- [feed] pairs --------------------------------------------------------------------------------
PAIRS = GOOD + """
[[instruments]]
symbol = "BBB"
tick = 0.01
price = 40.0

[[instruments]]
symbol = "CCC"
tick = 0.25
price = 500.0

[[instruments]]
symbol = "DDD"
tick = 0.25
price = 800.0

[feed]
kind = "simvenues"
"""


def test_pairs_as_two_symbols_or_a_table(tmp_path):
    from engine.core.profile import FeedPairConfig

    text = PAIRS + ('pairs = [["AAA", "BBB"], { a = "CCC", b = "DDD", beta = 1.5, '
                    "half_life_s = 20, spread_bp = 12.5 }]\n")
    a, b = load_profile(write(tmp_path, text)).feed.pairs
    assert a == FeedPairConfig(a="AAA", b="BBB")  # the defaults
    assert (a.beta, a.half_life_s, a.spread_bp) == (None, 60.0, 5.0)
    assert a.hedge_ratio(10.0, 40.0) == 4.0  # by default: b's price / a's (equal returns)
    assert b == FeedPairConfig(a="CCC", b="DDD", beta=1.5, half_life_s=20.0, spread_bp=12.5)
    assert b.hedge_ratio(500.0, 800.0) == 1.5
    # one leader may lead several pairs
    text = PAIRS + 'pairs = [["AAA", "BBB"], { a = "AAA", b = "DDD", beta = 80 }]\n'
    assert [p.b for p in load_profile(write(tmp_path, text)).feed.pairs] == ["BBB", "DDD"]


def test_the_pairs_reach_the_simulated_venues(tmp_path):
    from engine.node import sim_source

    text = PAIRS + ('pairs = [["AAA", "BBB"], { a = "CCC", b = "DDD", beta = 1.5, '
                    "half_life_s = 20, spread_bp = 12.5 }]\n")
    profile = load_profile(write(tmp_path, text))
    sim = sim_source(profile, ["SIMA", "SIMB"], 0).sim
    got = [(p.i, p.j, p.beta, p.half_life_s, p.spread_bp) for p in sim.pairs]
    assert got == [(0, 1, 4.0, 60.0, 5.0), (2, 3, 1.5, 20.0, 12.5)]


@pytest.mark.parametrize("pairs, where, reason", [
    ('[["AAA"]]', "[feed].pairs[0]", 'must be two symbols like ["A", "B"] or a table'),
    ('[["AAA", 3]]', "[feed].pairs[0]", "must be two symbols"),
    ('["AAA"]', "[feed].pairs[0]", "was 'AAA'"),
    ('[["AAA", "ZZZ"]]', "[feed].pairs[0]", "'ZZZ' is not one of the profile's instruments"),
    ('[["AAA", "AAA"]]', "[feed].pairs[0]", "pairs 'AAA' with itself"),
    ('[{ a = "AAA" }]', "[feed].pairs[0].b", "is required"),
    ('[{ a = "AAA", b = 2 }]', "[feed].pairs[0].b", "must be a string, was 2"),
    ('[{ a = "AAA", b = "BBB", hedge = 2 }]', "[feed].pairs[0].hedge", "unknown key"),
    ('[{ a = "AAA", b = "BBB", beta = 0 }]', "[feed].pairs[0].beta",
     "must be a hedge ratio > 0 and < 1e6 (b moves beta × a's moves, in price units), was 0"),
    ('[{ a = "AAA", b = "BBB", beta = -1.5 }]', "[feed].pairs[0].beta", "was -1.5"),
    ('[{ a = "AAA", b = "BBB", beta = nan }]', "[feed].pairs[0].beta", "was nan"),
    ('[{ a = "AAA", b = "BBB", beta = true }]', "[feed].pairs[0].beta", "must be an integer or "
                                                                         "a number, was True"),
    ('[{ a = "AAA", b = "BBB", half_life_s = 0 }]', "[feed].pairs[0].half_life_s",
     "must be between 0.1 and 86400, was 0"),
    ('[{ a = "AAA", b = "BBB", spread_bp = -1 }]', "[feed].pairs[0].spread_bp",
     "must be between 0 and 10000, was -1"),
    # no chains: an instrument follows one other at most, and one that follows leads none
    ('[["AAA", "BBB"], ["CCC", "BBB"]]', "[feed].pairs[1]",
     "'BBB' already follows 'AAA' (pairs[0]): an instrument follows one other at most"),
    ('[["AAA", "BBB"], ["BBB", "CCC"]]', "[feed].pairs[1]",
     "'BBB' follows 'AAA' (pairs[0]), so it may not lead a pair (no chains)"),
    ('[["BBB", "CCC"], ["AAA", "BBB"]]', "[feed].pairs[1]",
     "'BBB' leads pairs[0], so it may not follow 'AAA' (no chains)"),
    ('[["AAA", "BBB"], ["AAA", "BBB"]]', "[feed].pairs[1]", "'BBB' already follows 'AAA'"),
])
def test_pair_errors_name_file_key_and_reason(tmp_path, pairs, where, reason):
    path = write(tmp_path, PAIRS + f"pairs = {pairs}\n")
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {where}: "), msg
    assert reason in msg, msg


SIM_VENUE = GOOD + '\n[[venues]]\nname = "SIMA"\nkind = "sim"\n'


def test_a_simulated_venue_takes_a_queue_model(tmp_path):
    from engine.core import profile
    from engine.venue.inprocess import QUEUE_MODELS

    assert profile.QUEUE_MODELS == QUEUE_MODELS
    tmp = tmp_path
    assert load_profile(write(tmp, SIM_VENUE)).venues[0].queue_model == "risk_averse"
    v = load_profile(write(tmp, SIM_VENUE + 'queue_model = "prob"\n')).venues[0]
    assert v.queue_model == "prob"


@pytest.mark.parametrize("text, reason", [
    (SIM_VENUE + 'queue_model = "fifo"\n', "must be one of risk_averse, prob, none, was 'fifo'"),
    (SIM_VENUE.replace('kind = "sim"', 'host = "127.0.0.1"\nport = 9000\nsender = "HELM"')
     + 'target = "SIMA"\nqueue_model = "none"\n', "only kind = \"sim\" has one"),
])
def test_queue_model_errors(tmp_path, text, reason):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    assert str(e.value).startswith(f"{path}: [[venues]][0].queue_model: "), str(e.value)
    assert reason in str(e.value)


# -- Logon credentials ---------------------------------------------------------------------------
FIX_VENUE = GOOD + ('\n[[venues]]\nname = "SIMA"\nhost = "127.0.0.1"\nport = 9876\n'
                    'sender = "HELM"\ntarget = "SIMA"\n')


def test_venue_credentials_are_kept_as_references(tmp_path, monkeypatch):
    monkeypatch.delenv("HD_SIMA_PW", raising=False)
    # loads without the secret in the environment: it is read when the session is built
    p = load_profile(write(tmp_path, FIX_VENUE + 'username = "helm"\n'
                                                 'password = "env:HD_SIMA_PW"\n'))
    v = p.venues[0]
    assert (v.username, v.password) == ("helm", "env:HD_SIMA_PW")
    monkeypatch.setenv("HD_SIMA_PW", "hunter2")
    assert p.venue_link_password(v) == "hunter2" and "hunter2" not in repr(p)
    k = load_profile(write(tmp_path, FIX_VENUE + 'password = "keyring:sima-fix"\n'))
    assert (k.venues[0].username, k.venues[0].password) == ("", "keyring:sima-fix")
    none = load_profile(write(tmp_path, FIX_VENUE))
    assert none.venue_link_password(none.venues[0]) == ""  # no password: nothing to read


def test_a_missing_venue_secret_names_the_venue_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("HELMDESK_SIMA_PW", raising=False)
    path = write(tmp_path, FIX_VENUE + 'password = "env:HELMDESK_SIMA_PW"\n')
    p = load_profile(path)
    with pytest.raises(ProfileError) as e:
        p.venue_link_password(p.venues[0])
    assert str(e.value) == (f"{path}: [[venues]] SIMA password: environment variable "
                            f"HELMDESK_SIMA_PW is not set")


def test_the_venue_servers_password_is_read_from_its_reference(tmp_path, monkeypatch):
    monkeypatch.delenv("HD_VENUE_PW", raising=False)
    path = write(tmp_path, VENUE + 'username = "helm"\npassword = "env:HD_VENUE_PW"\n')
    p = load_profile(path)
    assert (p.venue.username, p.venue.password) == ("helm", "env:HD_VENUE_PW")
    with pytest.raises(ProfileError) as e:
        p.venue_password()
    assert str(e.value) == (f"{path}: [venue].password: environment variable HD_VENUE_PW is "
                            f"not set")
    monkeypatch.setenv("HD_VENUE_PW", "hunter2")
    assert p.venue_password() == "hunter2"
    assert load_profile(write(tmp_path, VENUE)).venue_password() == ""


@pytest.mark.parametrize("text, where, reason", [
    (FIX_VENUE + 'password = "hunter2"\n', "[[venues]][0].password",
     "must be a reference, env:NAME or keyring:NAME: profiles hold no secrets in the clear"),
    (FIX_VENUE + 'password = "env:"\n', "[[venues]][0].password", "must be a reference"),
    (FIX_VENUE + "password = 1234\n", "[[venues]][0].password", "must be a string"),
    (FIX_VENUE + 'username = "a=b"\n', "[[venues]][0].username",
     "must be at most 64 printable characters, without '='"),
    (FIX_VENUE + 'username = "a\\u0001b"\n', "[[venues]][0].username", "printable"),
    (FIX_VENUE + f'username = "{"u" * 65}"\n', "[[venues]][0].username", "at most 64"),
    (SIM_VENUE + 'password = "env:HD_PW"\n', "[[venues]][0].password",
     "only kind = \"fix\" has one"),
    (SIM_VENUE + 'username = "helm"\n', "[[venues]][0].username", "only kind = \"fix\" has one"),
    (VENUE + 'password = "hunter2"\n', "[venue].password",
     "must be a reference, env:NAME or keyring:NAME"),
    (VENUE + 'username = "x=y"\n', "[venue].username", "without '='"),
])
def test_credential_errors_name_file_key_and_reason(tmp_path, text, where, reason):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {where}: "), msg
    assert reason in msg and "hunter2" not in msg  # a secret written in is never echoed
