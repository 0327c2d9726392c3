"""SPDNet specifics: outputs equal to the official class's (fixture, odd size), the Haar
transform against its definition, never-run instance norms, the linear SE sites and
their rewrite (shared zoo checks: tests/test_zoo.py)."""

import math
import warnings

import numpy as np
import pytest
import torch
from zoo_checks import deterministic_

from tlc_probe import Probe, convert, list_sites
from tlc_probe.models import build
from tlc_probe.models.spdnet import HaarDWT, HaarIDWT
from tlc_probe.sites import execution_order
from tlc_probe.tlc.se import LocalLinearSE

FIXTURE = np.load("tests/fixtures/official_outputs.npz")


def test_official_outputs_equal_the_official_class():
    """Same deterministic weights in both; official outputs from Joyies/SPDNet's Rainnet
    on [0, 255] inputs (rgb_range 255), divided by 255 (tests/fixtures/README.md). A
    45 x 38 input exercises the wavelet's zero padding of odd sides."""
    model = build("spdnet", "official").eval()
    deterministic_(model)
    with torch.no_grad():
        outs = model.forward_all(torch.from_numpy(FIXTURE["spdnet_input"]))
    for got, key in zip(outs, ["out3", "out2", "out1"], strict=True):
        ref = FIXTURE[f"spdnet_{key}"]
        assert got.shape == ref.shape
        assert np.abs(got.numpy() - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), key


def test_haar_dwt_against_its_definition():
    """2 x 2 blocks a b / c d: low (a+b+c+d)/2; the high bands in the order the official
    code gets them from pytorch_wavelets (high along H, along W, both); an odd side gets
    a zero row at its end; the inverse restores the (padded) input."""
    x = torch.randn(2, 3, 7, 10, dtype=torch.float64)
    low, (high,) = HaarDWT().double()(x)
    xp = torch.nn.functional.pad(x, (0, 0, 0, 1))
    a, b = xp[..., 0::2, 0::2], xp[..., 0::2, 1::2]
    c, d = xp[..., 1::2, 0::2], xp[..., 1::2, 1::2]
    assert torch.allclose(low, (a + b + c + d) / 2)
    assert torch.allclose(high[:, :, 0], (a + b - c - d) / 2)  # high along H
    assert torch.allclose(high[:, :, 1], (a - b + c - d) / 2)  # high along W
    assert torch.allclose(high[:, :, 2], (a - b - c + d) / 2)
    back = HaarIDWT().double()((low, [high]))
    assert torch.allclose(back, xp, atol=1e-12)
    assert math.isclose(float(HaarDWT().h0_col.sum()), math.sqrt(2), rel_tol=1e-6)


def test_instance_norms_are_listed_but_never_run():
    model = build("spdnet", "official")
    ins = [s for s in list_sites(model) if s.kind == "in"]
    assert len(ins) == 51  # every convd holds one, none is called (as upstream)
    tiny = build("spdnet", "tiny").eval()
    order = execution_order(tiny)
    assert all(not s.executed for s in order if s.kind == "in")
    assert all(s.executed for s in order if s.kind == "se")
    probe = Probe(tiny)
    assert {s.kind for s in probe.sites} == {"se"}
    assert len(probe.never_run) == sum(1 for s in order if s.kind == "in")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build("spdnet", "tiny").eval()
    with torch.no_grad():  # gates that swing with the pooled means (~0.01): larger heads
        for name, p in model.named_parameters():
            if ".se.fc." in name:
                p.normal_(0, 3)
    return model


def test_linear_se_rewritten_exactly_at_train_size(tiny):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tlc = convert(tiny, train_size=128)
    assert any("never called" in str(w.message) and "ins" in str(w.message) for w in caught)
    se = [m for m in tlc.modules() if isinstance(m, LocalLinearSE)]
    assert len(se) == sum(1 for s in list_sites(tiny) if s.kind == "se")
    assert list(tlc.state_dict()) == list(tiny.state_dict())
    x, big = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 200, 264)
    big[..., 130:] *= 0.2
    with torch.no_grad():
        assert torch.allclose(tlc(x), tiny(x), atol=1e-5)
        # output |.| <= 0.08 at random init; float32 noise would be ~1e-8
        assert (tlc(big) - tiny(big)).abs().max() > 2e-5


def test_fast_mode_puts_no_grid_head_on_linear_heads(tiny):
    from tlc_probe import convert
    from tlc_probe.tlc.convert import grid_head_pools

    assert grid_head_pools(tiny) == [] and grid_head_pools(build("nafnet", "tiny"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sites never called at train size
        fast = convert(tiny, train_size=128, mode="fast")
    assert not any(getattr(m, "grid_head", False) for m in fast.modules())
