"""NAFNet: official key names/shapes, parameter counts, any-size input, TLC conversion."""

import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from zoo_checks import ANY_SIZES, assert_any_size, assert_tlc_invariants

from tlc_probe import LocalAvgPool2d, convert, list_sites
from tlc_probe.models.nafnet import PRESETS, TRAIN_SIZE, LayerNorm2d, NAFNet, pad_multiple

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "nafnet_official.json").read_text())


def test_official_keys_and_shapes_match_the_official_class():
    sd = NAFNet(**PRESETS["official"]).state_dict()
    assert list(sd) == list(FIXTURE["shapes"])
    assert [list(v.shape) for v in sd.values()] == list(FIXTURE["shapes"].values())
    assert "encoders.0.0.sca.1.weight" in sd


@pytest.mark.parametrize("preset,published", [("official", 17.1e6), ("official-width64", 67.9e6)])
def test_official_parameter_counts(preset, published):
    n = sum(p.numel() for p in NAFNet(**PRESETS[preset]).parameters())
    print(f"NAFNet {preset}: {n:,} parameters (published ~{published / 1e6:.1f} M)")
    assert abs(n - published) / published < 0.01
    if preset == "official":
        assert n == FIXTURE["num_params"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = NAFNet(**PRESETS["tiny"]).eval()
    with torch.no_grad():  # beta/gamma start at zero: make the blocks do something
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("size", ANY_SIZES)
def test_any_size(tiny, size):
    assert_any_size(tiny, size)


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
    assert_tlc_invariants(tiny, tlc, TRAIN_SIZE["tiny"])


def test_tiny_forward_backward_runs():
    model = NAFNet(**PRESETS["tiny"])
    x = torch.rand(4, 3, 64, 64)
    model(x).mean().backward()  # warm-up
    t0 = time.perf_counter()
    model(x).mean().backward()
    n = sum(p.numel() for p in model.parameters())
    print(f"NAFNet tiny: {n:,} params, fwd+bwd (4,3,64,64) {time.perf_counter() - t0:.3f} s")
    assert n * 4 <= 5 * 2**20
