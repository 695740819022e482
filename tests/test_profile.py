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
    assert p.role_of("anyone") is Role.RISK_MANAGER


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
