"""NAFNet specifics: width-64 parameter count, zero padding, channel LayerNorm, its SCA
sites (shared zoo checks: tests/test_zoo.py)."""

import pytest
import torch
import torch.nn.functional as F

from tlc_probe import LocalAvgPool2d, convert, list_sites
from tlc_probe.models.nafnet import PRESETS, TRAIN_SIZE, LayerNorm2d, NAFNet, pad_multiple


def test_official_width64_parameter_count():
    # (the width-32 GoPro preset: tests/test_zoo.py, with every model)
    with torch.device("meta"):
        n = sum(p.numel() for p in NAFNet(**PRESETS["official-width64"]).parameters())
    assert abs(n - 67.9e6) / 67.9e6 < 0.01


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = NAFNet(**PRESETS["tiny"]).eval()
    with torch.no_grad():  # beta/gamma start at zero: make the blocks do something
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.5)
    return model


def test_zero_padding_to_the_multiple_as_the_official_code(tiny):
    assert pad_multiple(**PRESETS["tiny"]) == 8 and pad_multiple(**PRESETS["official"]) == 16
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        padded = F.pad(x, (0, 2, 0, 3))  # to 24 x 32, zeros
        assert torch.allclose(tiny(x), tiny(padded)[..., :21, :30], atol=1e-6)


def test_layer_norm_is_over_channels_per_position():
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, eps=1e-6)
    assert torch.allclose(ln(x), ref.permute(0, 3, 1, 2), atol=1e-5)


def test_tlc_conversion(tiny):
    sites = list_sites(tiny)
    assert sites and all(s.kind == "se" and s.name.endswith(".sca.0") for s in sites)
    assert len(sites) == sum(PRESETS["tiny"]["enc_blk_nums"]) + 1 + sum(
        PRESETS["tiny"]["dec_blk_nums"]
    )
    tlc = convert(tiny, train_size=TRAIN_SIZE["tiny"])
    assert isinstance(tlc.encoders[0][0].sca[0], LocalAvgPool2d)
