"""The checks every zoo model shares (parametrised over ``available()``: a new model gets
them all), the registry, and checkpoint formats and metadata."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from zoo_checks import ANY_SIZES, assert_any_size, assert_tlc_invariants

from tlc_probe import convert, tlc_windows
from tlc_probe.models import available, build
from tlc_probe.store import (
    build_from_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

NAMES = sorted(available())
FIXTURES = Path(__file__).parent / "fixtures"
#: Parameter counts of the published configurations (the papers / official repositories).
PUBLISHED = {
    "hinet": 88.7e6,
    "mprnet": 20.1e6,
    "nafnet": 17.1e6,
    "ffanet": 4.456e6,
    "restormer": 26.13e6,
    "spdnet": 3.32e6,
}


def test_available_lists_the_six_models_with_presets():
    zoo = available()
    assert NAMES == ["ffanet", "hinet", "mprnet", "nafnet", "restormer", "spdnet"]
    for name, info in zoo.items():
        assert {"official", "tiny"} <= set(info["presets"]), name
        assert info["task"] in ("deblur", "dehaze", "derain")
        for preset in info["presets"].values():
            assert preset["train_size"] > 0 and preset["pad_multiple"] >= 1
    assert zoo["hinet"]["presets"]["official"]["pad_multiple"] == 16
    assert zoo["ffanet"]["task"] == "dehaze"


def test_build_errors_and_overrides():
    with pytest.raises(ValueError, match="unknown model"):
        build("resnet")
    with pytest.raises(ValueError, match="no preset"):
        build("hinet", "huge")
    with pytest.raises(TypeError):
        build("hinet", "tiny", no_such_kwarg=1)
    m = build("hinet", "tiny", wf=8)
    assert m.zoo["name"] == "hinet" and m.zoo["preset"] == "tiny" and m.zoo["config"]["wf"] == 8
    assert m.down_path_1[0].conv_1.out_channels == 8


@pytest.mark.parametrize("name", NAMES)
def test_official_preset_matches_the_official_class(name):
    """Keys, order and shapes of the official class's state_dict (fixture made from the
    official repository) and the published parameter count."""
    fixture = json.loads((FIXTURES / f"{name}_official.json").read_text())
    with torch.device("meta"):  # shapes only, no memory for the weights
        model = build(name, "official")
    sd = model.state_dict()
    assert list(sd) == list(fixture["shapes"])
    assert [list(v.shape) for v in sd.values()] == list(fixture["shapes"].values())
    n = sum(p.numel() for p in model.parameters())
    assert n == fixture["num_params"]
    assert abs(n - PUBLISHED[name]) / PUBLISHED[name] < 0.01


@pytest.fixture(scope="module", params=NAMES)
def tiny(request):
    """(name, tiny model in eval mode); parameters that start at zero (NAFNet's beta and
    gamma make every block the identity) are drawn at random so the blocks do something."""
    torch.manual_seed(0)
    model = build(request.param, "tiny").eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.is_floating_point() and not p.any():
                p.normal_(0, 0.5)
            if ".se.fc." in name:  # SPDNet's linear SE heads: gates that vary with the means
                p.normal_(0, 3)
    return request.param, model


@pytest.mark.parametrize("size", ANY_SIZES)
def test_tiny_any_size(tiny, size):
    assert_any_size(tiny[1], size)


def test_tiny_tlc_equals_the_model_at_train_size_and_differs_beyond(tiny):
    name, model = tiny
    train_size = available()[name]["presets"]["tiny"]["train_size"]
    assert_tlc_invariants(model, convert(model, train_size=train_size), train_size)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_trains_and_fits_the_size_budget(name):
    torch.manual_seed(0)
    model = build(name, "tiny").train()
    x = torch.rand(4, 3, 64, 64)
    called = set()
    hooks = [m.register_forward_hook(lambda m, a, o: called.add(m)) for m in model.modules()]
    sum((o - x).abs().mean() for o in model.forward_all(x)).backward()
    for h in hooks:
        h.remove()
    # every parameter of a module the pass calls gets a finite gradient (SPDNet keeps
    # modules it never calls, as upstream: their parameters get none)
    used = {id(p) for m in called for p in m.parameters(recurse=False)}
    assert used
    for p in model.parameters():
        if id(p) in used:
            assert p.grad is not None and torch.isfinite(p.grad).all()
    assert sum(p.numel() for p in model.parameters()) * 4 <= 5e6  # <= 5 MB of float32 weights


def _fresh_pair(name):
    torch.manual_seed(1)
    a = build(name, "tiny").eval()
    torch.manual_seed(2)
    b = build(name, "tiny").eval()
    return a, b


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("wrapper", ["params", "state_dict+module", "raw", "model+log"])
def test_round_trip_in_each_published_wrapper(name, wrapper, tmp_path):
    src, dst = _fresh_pair(name)
    sd = src.state_dict()
    if wrapper == "params":
        obj = {"params": sd}
    elif wrapper == "state_dict+module":
        obj = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    elif wrapper == "raw":
        obj = sd
    else:  # FFA-Net style: weights beside a training log holding numpy scalars
        obj = {
            "model": {f"module.{k}": v for k, v in sd.items()},
            "step": 10,
            "psnrs": [np.float64(21.5)],
            "max_ssim": np.float32(0.8),
        }
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert not torch.equal(src(x), dst(x))
        load_checkpoint(dst, path)
        assert torch.equal(src(x), dst(x))


def test_strict_mismatch_is_one_clear_error():
    model = build("hinet", "tiny")
    sd = dict(model.state_dict())
    keys = list(sd)
    for k in keys[:7]:
        del sd[k]
    sd["extra.a"] = torch.zeros(1)
    sd["extra.b"] = torch.zeros(1)
    sd[keys[10]] = torch.zeros(3, 3)
    with pytest.raises(ValueError) as err:
        load_checkpoint(model, {"params": sd})
    msg = str(err.value)
    assert "7 missing" in msg and "(+2 more)" in msg and keys[0] in msg
    assert "2 unexpected: extra.a, extra.b" in msg
    assert f"1 shape: {keys[10]}: checkpoint (3, 3)" in msg


class _Evil:
    def __reduce__(self):
        return (open, ("/tmp/tlc-probe-pwned", "w"))


def test_pickled_code_is_never_run(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"params": build("hinet", "tiny").state_dict(), "x": _Evil()}, path)
    marker = "/tmp/tlc-probe-pwned"
    import os

    if os.path.exists(marker):
        os.unlink(marker)
    with pytest.raises(ValueError, match="cannot be read safely"):
        load_checkpoint(build("hinet", "tiny"), path)
    assert not os.path.exists(marker)


def test_wrapper_without_weights_and_explicit_key(tmp_path):
    with pytest.raises(ValueError, match="no state_dict"):
        read_checkpoint({"step": 3, "losses": [1.0]})
    sd = build("hinet", "tiny").state_dict()
    got, meta = read_checkpoint({"params": {}, "ema": sd}, key="ema")
    assert list(got) == list(sd) and meta == {}
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")


def test_tlc_probe_checkpoint_carries_train_size_for_convert(tmp_path):
    torch.manual_seed(0)
    model = build("hinet", "tiny").eval()
    path = save_checkpoint(
        model, tmp_path / "sub" / "hinet.pt", train_size=48, iterations=7, seed=0
    )
    assert [p.name for p in path.parent.iterdir()] == ["hinet.pt"]  # no temporary left over
    rebuilt, meta = build_from_checkpoint(path)
    assert meta["train_size"] == 48 and meta["iterations"] == 7 and meta["name"] == "hinet"
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    # convert() with the recorded train_size: windows 1.5 x 48 = 72 at full resolution,
    # against 1.5 x 256 with the default train_size; convert() reads no metadata itself.
    windows = {s["kernel_size"][0] for s in tlc_windows(convert(rebuilt, meta["train_size"]))}
    assert max(windows) <= 72
    assert max(s["kernel_size"][0] for s in tlc_windows(convert(rebuilt))) > 72


def test_foreign_checkpoint_has_no_metadata(tmp_path):
    path = tmp_path / "raw.pth"
    torch.save(build("hinet", "tiny").state_dict(), path)
    with pytest.raises(ValueError, match="no tlc-probe metadata"):
        build_from_checkpoint(path)
    assert load_checkpoint(build("hinet", "tiny"), path) == {}
