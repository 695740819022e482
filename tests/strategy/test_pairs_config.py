"""The pairs strategy's ``[[strategies]]`` parameters: defaults, and bad values refused naming
the file, the entry and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.profile import ProfileError, parse_profile
from engine.strategy.pairs import PairsConfig, PairsStrategy
from engine.strategy.registry import build
from tests.risk._desk import profile_dict


def _build(**params):
    data = profile_dict()
    data["strategies"] = [{"name": "stat-arb", "kind": "pairs", **params}]
    return build(parse_profile(data, Path("desk.toml")))


def test_defaults_and_given_values():
    (s,) = _build()
    assert isinstance(s, PairsStrategy) and s.name == "stat-arb" and s.kind == "pairs"
    assert s.config == PairsConfig()
    c = s.config
    assert (c.pairs, c.formation_s, c.sample_ms, c.max_pairs, c.p_value) == (None, 30.0, 100,
                                                                           10, 0.05)
    assert (c.entry_z, c.exit_z, c.stop_z, c.max_hold_s, c.cooldown_s) == (2.0, 0.5, 4.0,
                                                                          300.0, 5.0)
    assert (c.hedge, c.delta, c.obs_var, c.window, c.sizing) == ("kalman", 1e-4, None, 300,
                                                                 "dollar")
    assert (c.slippage_ticks, c.tif, c.leg_timeout_ms, c.max_leg_retries) == (1, "ioc", 2000, 2)
    (s,) = _build(pairs=[["AAA", "BBB"], ["CCC", "AAA"]], formation_s=5, sample_ms=250,
                  hedge="ols", window=50, obs_var=0.25, adf_lag=2, tif="day", disjoint=False,
                  notional=5000, sizing="hedge", selection_out="/tmp/x.csv")
    c = s.config
    assert c.pairs == (("AAA", "BBB"), ("CCC", "AAA")) and c.formation_samples == 20
    assert (c.hedge, c.window, c.obs_var, c.adf_lag, c.tif, c.disjoint, c.sizing) == (
        "ols", 50, 0.25, 2, "day", False, "hedge")


@pytest.mark.parametrize("params,key,reason", [
    ({"pairs": "some"}, "pairs", 'must be "auto" or a list'),
    ({"pairs": []}, "pairs", "at least one pair"),
    ({"pairs": [["AAA"]]}, "pairs[0]", "must be a pair of symbols"),
    ({"pairs": [["AAA", "ZZZ"]]}, "pairs[0]", "'ZZZ' is not one of the profile's instruments"),
    ({"pairs": [["AAA", "AAA"]]}, "pairs[0]", "the legs must differ"),
    ({"pairs": [["AAA", "BBB"], ["BBB", "AAA"]]}, "pairs[1]", "BBB/AAA is given twice"),
    ({"formation_s": 1.0}, "formation_s", "at least 20 samples of sample_ms = 100"),
    ({"entry_z": 2.0, "exit_z": 2.0}, "exit_z", "must be below entry_z"),
    ({"stop_z": 1.5}, "stop_z", "must be above entry_z"),
    ({"hedge": "pca"}, "hedge", 'must be "kalman" or "ols"'),
    ({"obs_var": "big"}, "obs_var", 'must be "auto" or a variance'),
    ({"obs_var": -1.0}, "obs_var", 'must be "auto" or a variance'),
    ({"adf_lag": "bic"}, "adf_lag", 'must be "aic" or a whole number'),
    ({"tif": "fok"}, "tif", 'must be "ioc" or "day"'),
    ({"sizing": "beta"}, "sizing", 'must be "dollar" or "hedge"'),
    ({"notional": 0}, "notional", "must be between"),
    ({"max_leg_retries": 1.5}, "max_leg_retries", "must be an integer"),
    ({"window": 5}, "window", "must be between 10"),
    ({"disjoint": "yes"}, "disjoint", "must be true/false"),
    ({"entry": 2.0}, "entry", "unknown key"),
])
def test_bad_parameters_are_refused_naming_the_key(params, key, reason):
    with pytest.raises(ProfileError) as e:
        _build(**params)
    msg = str(e.value)
    assert msg.startswith("desk.toml: [[strategies]][0] (stat-arb)." + key + ": "), msg
    assert reason in msg
