"""Restormer specifics: outputs equal to the official class's (fixture), channel layer
norm, padding, its attention sites and their TLC version (shared zoo checks:
tests/test_zoo.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import brute_local_channel_attention
from zoo_checks import deterministic_

from tlc_probe import convert, list_sites
from tlc_probe.models import build
from tlc_probe.models.restormer import PRESETS, LayerNorm
from tlc_probe.sites import is_channel_attention
from tlc_probe.tlc.attention import LocalChannelAttention

FIXTURE = np.load("tests/fixtures/official_outputs.npz")


def test_official_output_equals_the_official_class():
    """The same deterministic weights in both; the official output comes from
    swz30/Restormer's own class (tests/fixtures/README.md)."""
    model = build("restormer", "official").eval()
    deterministic_(model)
    with torch.no_grad():
        got = model(torch.from_numpy(FIXTURE["restormer_input"])).numpy()
    ref = FIXTURE["restormer_output"]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("kind", ["WithBias", "BiasFree"])
def test_layer_norm_over_channels(kind):
    ln = LayerNorm(6, kind)
    with torch.no_grad():
        ln.body.weight.normal_()
        if ln.body.bias is not None:
            ln.body.bias.normal_()
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    xl = x.permute(0, 2, 3, 1)
    if kind == "WithBias":
        ref = F.layer_norm(xl, (6,), ln.body.weight, ln.body.bias, eps=1e-5)
    else:  # no centring: x / sqrt(var + eps) * w
        ref = xl / torch.sqrt(xl.var(-1, keepdim=True, unbiased=False) + 1e-5) * ln.body.weight
    assert torch.allclose(ln(x), ref.permute(0, 3, 1, 2), atol=1e-5)


def test_reflect_padding_to_eight():
    torch.manual_seed(0)
    model = build("restormer", "tiny").eval()
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        padded = F.pad(x, (0, 2, 0, 3), mode="reflect")  # 24 x 32
        assert torch.allclose(model(x), model._unet(padded)[..., :21, :30], atol=1e-6)


def test_attention_sites_and_their_local_version():
    torch.manual_seed(0)
    model = build("restormer", "tiny").eval()
    sites = list_sites(model)
    cfg = PRESETS["tiny"]
    n_blocks = 2 * sum(cfg["num_blocks"][:3]) + cfg["num_blocks"][3] + cfg["num_refinement_blocks"]
    assert len(sites) == n_blocks and all(s.kind == "attn" for s in sites)
    assert all(s.name.endswith(".attn") for s in sites)
    tlc = convert(model, train_size=64)
    att = tlc.encoder_level1[0].attn
    assert isinstance(att, LocalChannelAttention) and att.kernel_size == (96, 96)
    assert tlc.latent[0].attn.kernel_size == (12, 12)  # 8 px at 64 -> x 1.5
    assert list(tlc.state_dict()) == list(model.state_dict())
    # the converted block computes brute-force local attention on its own q, k, v
    x = torch.randn(1, 16, 20, 27)
    small = LocalChannelAttention.from_attention(model.encoder_level1[0].attn, (7, 9))
    with torch.no_grad():
        q, k, v = small.qkv_dwconv(small.qkv(x)).chunk(3, dim=1)
        ref = brute_local_channel_attention(q, k, v, small.temperature, small.num_heads, (7, 9))
        got = small(x)
        want = small.project_out(ref.float())
    assert torch.allclose(got, want, atol=1e-5)


def test_mdta_recognised_by_its_parts():
    model = build("restormer", "tiny")
    att = model.encoder_level1[0].attn
    assert is_channel_attention(att)
    att.num_heads = 3  # temperature (2, 1, 1) no longer matches
    assert not is_channel_attention(att)
    assert not is_channel_attention(model.encoder_level1[0].ffn)
