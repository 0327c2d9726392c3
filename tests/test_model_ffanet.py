"""FFA-Net: official key names/shapes, any-size input, TLC of every pool incl. the fusion."""

import json
import time
from pathlib import Path

import pytest
import torch
from zoo_checks import ANY_SIZES, assert_any_size, assert_tlc_invariants

from tlc_probe import LocalAvgPool2d, convert, list_sites
from tlc_probe.models.ffanet import PRESETS, TRAIN_SIZE, FFANet

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "ffanet_official.json").read_text())


def test_official_keys_and_shapes_match_the_official_class():
    model = FFANet(**PRESETS["official"])
    sd = model.state_dict()
    assert list(sd) == list(FIXTURE["shapes"])
    assert [list(v.shape) for v in sd.values()] == list(FIXTURE["shapes"].values())
    assert "g1.gp.0.calayer.ca.0.weight" in sd
    n = sum(p.numel() for p in model.parameters())
    print(f"FFA-Net official: {n:,} parameters (official class: {FIXTURE['num_params']:,})")
    assert n == FIXTURE["num_params"]
    assert abs(n - 4.456e6) / 4.456e6 < 0.01


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return FFANet(**PRESETS["tiny"]).eval()


@pytest.mark.parametrize("size", ANY_SIZES)
def test_any_size(tiny, size):
    assert_any_size(tiny, size)


def test_fusion_weights_one_per_group_and_channel(tiny):
    # The fused map is sum_k w_k * res_k with w the (N, 3 dim, 1, 1) attention: check it
    # against the group outputs captured by hooks.
    got = {}
    handles = [
        getattr(tiny, name).register_forward_hook(
            lambda m, a, o, name=name: got.__setitem__(name, (a[0], o))
        )
        for name in ("g1", "g2", "g3", "ca", "palayer")
    ]
    try:
        with torch.no_grad():
            tiny(torch.rand(1, 3, 20, 24))
    finally:
        for h in handles:
            h.remove()
    w = got["ca"][1].view(1, 3, 16, 1, 1)
    fused = w[:, 0] * got["g1"][1] + w[:, 1] * got["g2"][1] + w[:, 2] * got["g3"][1]
    assert torch.allclose(got["palayer"][0], fused, atol=1e-6)


def test_block_group_and_global_residuals(tiny):
    # Spelled out from the submodules: Block = x + pa(ca(conv2(relu(conv1 x) + x))) with
    # ca(y) = y * sigmoid-MLP(mean_hw y); Group = x + gp(x); FFANet = x + post(...).
    x = torch.rand(2, 16, 11, 13)
    block = tiny.g2.gp[1]
    with torch.no_grad():
        y = block.conv2(torch.relu(block.conv1(x)) + x)
        y = y * block.calayer.ca(y.mean(dim=(2, 3), keepdim=True))
        y = y * block.palayer.pa(y)
        assert torch.allclose(block(x), y + x, atol=1e-6)
        assert torch.allclose(tiny.g1(x), tiny.g1.gp(x) + x, atol=1e-6)
        model = FFANet(**PRESETS["tiny"]).eval()
        model.post[-1].weight.zero_()
        model.post[-1].bias.zero_()
        img = torch.rand(1, 3, 9, 7)
        assert torch.equal(model(img), img)


def test_tlc_converts_every_pool_including_the_fusion_attention(tiny):
    names = {s.name for s in list_sites(tiny)}
    blocks = PRESETS["tiny"]["blocks"]
    expected = {f"g{g}.gp.{i}.calayer.avg_pool" for g in (1, 2, 3) for i in range(blocks)}
    assert names == expected | {"ca.0"}
    tlc = convert(tiny, train_size=TRAIN_SIZE["tiny"])  # no skip needed
    assert isinstance(tlc.ca[0], LocalAvgPool2d)
    assert_tlc_invariants(tiny, tlc, TRAIN_SIZE["tiny"])


def test_bad_config():
    with pytest.raises(ValueError, match="gps=3"):
        FFANet(gps=2)
    with pytest.raises(ValueError, match="multiple of 16"):
        FFANet(dim=20)


def test_tiny_forward_backward_runs():
    model = FFANet(**PRESETS["tiny"])
    x = torch.rand(4, 3, 64, 64)
    model(x).mean().backward()
    t0 = time.perf_counter()
    model(x).mean().backward()
    n = sum(p.numel() for p in model.parameters())
    print(f"FFA-Net tiny: {n:,} params, fwd+bwd (4,3,64,64) {time.perf_counter() - t0:.3f} s")
    assert n * 4 <= 5 * 2**20
