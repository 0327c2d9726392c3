"""FFA-Net specifics: fusion weights, residuals, TLC of every pool including the fusion
attention (shared zoo checks: tests/test_zoo.py)."""

import pytest
import torch

from tlc_probe import LocalAvgPool2d, convert, list_sites
from tlc_probe.models.ffanet import PRESETS, TRAIN_SIZE, FFANet


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return FFANet(**PRESETS["tiny"]).eval()


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


def test_bad_config():
    with pytest.raises(ValueError, match="gps=3"):
        FFANet(gps=2)
    with pytest.raises(ValueError, match="multiple of 16"):
        FFANet(dim=20)
