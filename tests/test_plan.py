"""Window plans: plan.json round trip, its errors, and convert(plan=) against the rule."""

from __future__ import annotations

import json

import pytest
import torch

from tlc_probe import convert, list_sites
from tlc_probe.models import build
from tlc_probe.tlc.plan import Plan, uniform_windows


def _features(converted) -> dict[str, tuple[int, int]]:
    return {s.name: tuple(s.module.feature_size) for s in list_sites(converted) if s.local}


@pytest.fixture(scope="module")
def mprnet():
    torch.manual_seed(0)
    return build("mprnet", "tiny").eval()


def test_a_uniform_plan_converts_as_the_rule_does(mprnet):
    rule = convert(mprnet, train_size=64)
    features = _features(rule)
    assert len(features) > 10
    plan = Plan(uniform_windows(features, 64, 1.5), train_size=64)
    planned = convert(mprnet, train_size=64, plan=plan)
    x = torch.rand(1, 3, 150, 170)
    with torch.no_grad():
        assert torch.equal(planned(x), rule(x))
    wide = convert(mprnet, train_size=64, base_size=128)
    by_plan = convert(mprnet, 64, plan=Plan(uniform_windows(features, 64, 2), train_size=64))
    with torch.no_grad():
        assert torch.equal(by_plan(x), wide(x))


def test_a_planned_window_and_a_planned_global_site(mprnet):
    rule = convert(mprnet, train_size=64)
    features = _features(rule)
    first, second = list(features)[:2]
    h, w = features[first]
    plan = Plan({first: (3 * h, 3 * w), second: "global"}, train_size=(64, 64))
    net = convert(mprnet, train_size=64, plan=plan)
    mods = {s.name: s for s in list_sites(net)}
    assert mods[first].module.kernel_size == (3 * h, 3 * w)
    assert not mods[second].local  # left global by the plan, no warning needed
    third = list(features)[2]
    assert mods[third].module.kernel_size == rule.get_submodule(third).kernel_size


def test_plan_round_trip_and_its_errors(tmp_path, mprnet):
    plan = Plan(
        {"a.pool": [12, 16], "b.norm": "global"},
        train_size=128,
        checkpoint_sha256="ab" * 32,
        candidates=(1, 1.5, 2, "global"),
        validation={"uniform_psnr": 24.3, "tuned_psnr": 24.4},
    )
    path = plan.save(tmp_path)
    assert path.name == "plan.json"
    data = json.loads(path.read_text())
    assert data["windows"] == {"a.pool": [12, 16], "b.norm": "global"}
    assert data["train_size"] == [128, 128] and data["candidates"] == [1, 1.5, 2, "global"]
    assert Plan.load(tmp_path) == plan
    with pytest.raises(ValueError, match="another|not this one"):
        plan.check_checkpoint("cd" * 32)
    plan.check_checkpoint("ab" * 32)
    with pytest.raises(ValueError, match="at least 1"):
        Plan({"a": [0, 4]}, train_size=64)
    with pytest.raises(ValueError, match=r"\[h, w\] or 'global'"):
        Plan({"a": "wide"}, train_size=64)
    (tmp_path / "bad.json").write_text('{"windows": 3}')
    with pytest.raises(ValueError, match="bad.json is no window plan"):
        Plan.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="does not have"):
        convert(mprnet, 64, plan=Plan({"nowhere.pool": [8, 8]}, train_size=64))
    with pytest.raises(ValueError, match="made for train_size"):
        convert(mprnet, 64, plan=Plan({}, train_size=128))
    with pytest.raises(ValueError, match="not both"):
        convert(mprnet, 64, base_size=96, plan=Plan({}, train_size=64))
    site = next(iter(_features(convert(mprnet, 64))))
    with pytest.raises(ValueError, match="smaller than the map"):
        convert(mprnet, 64, plan=Plan({site: [1, 1]}, train_size=64))
    with pytest.raises(ValueError, match=">= 1 or 'global'"):
        uniform_windows({"a": (4, 4)}, 64, 0.5)
