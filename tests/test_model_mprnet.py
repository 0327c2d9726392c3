"""MPRNet: official key names/shapes, parameter count, any-size input, TLC conversion."""

import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from zoo_checks import ANY_SIZES, assert_any_size, assert_tlc_invariants

from tlc_probe import LocalAvgPool2d, convert, list_sites, tlc_windows
from tlc_probe.models.mprnet import PRESETS, TRAIN_SIZE, MPRNet

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "mprnet_official.json").read_text())


def test_official_keys_shapes_and_parameter_count():
    model = MPRNet(**PRESETS["official"])
    sd = model.state_dict()
    assert list(sd) == list(FIXTURE["shapes"])
    assert [list(v.shape) for v in sd.values()] == list(FIXTURE["shapes"].values())
    assert "shallow_feat1.1.CA.conv_du.0.weight" in sd
    n = sum(p.numel() for p in model.parameters())
    print(f"MPRNet official: {n:,} parameters (published ~20.1 M)")
    assert n == FIXTURE["num_params"] and abs(n - 20.1e6) / 20.1e6 < 0.01
    # One PReLU shared by every CAB, as in the official code.
    assert model.shallow_feat1[1].body[1] is model.stage3_orsnet.orb3.body[0].body[1]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return MPRNet(**PRESETS["tiny"]).eval()


@pytest.mark.parametrize("size", ANY_SIZES)
def test_any_size(tiny, size):
    assert_any_size(tiny, size)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        outs = tiny.forward_all(x)
    assert len(outs) == 3 and all(o.shape == x.shape for o in outs)


def test_reflect_padding_to_a_multiple_of_8(tiny):
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        ref = tiny(F.pad(x, (0, 2, 0, 3), mode="reflect"))[..., :21, :30]
        assert torch.allclose(tiny(x), ref, atol=1e-6)


def test_tlc_conversion_calibrates_quarter_patch_sites(tiny):
    sites = list_sites(tiny)
    assert sites and all(s.kind == "se" and s.name.endswith("CA.avg_pool") for s in sites)
    tlc = convert(tiny, train_size=TRAIN_SIZE["tiny"])
    windows = {s["name"]: (s["feature_size"], s["kernel_size"]) for s in tlc_windows(tlc)}
    # Stage 1 sees quarters (32 px of a 64-px patch), stage 2 halves (32 x 64), stage 3 all.
    assert windows["stage1_encoder.encoder_level1.0.CA.avg_pool"] == ((32, 32), (48, 48))
    assert windows["stage2_encoder.encoder_level1.0.CA.avg_pool"] == ((32, 64), (48, 96))
    assert windows["stage3_orsnet.orb1.body.0.CA.avg_pool"] == ((64, 64), (96, 96))
    assert isinstance(tlc.stage3_orsnet.orb1.body[0].CA.avg_pool, LocalAvgPool2d)
    assert_tlc_invariants(tiny, tlc, TRAIN_SIZE["tiny"])


def test_tiny_forward_backward_runs():
    model = MPRNet(**PRESETS["tiny"])
    x = torch.rand(4, 3, 64, 64)
    model(x).mean().backward()
    t0 = time.perf_counter()
    sum(o.mean() for o in model.forward_all(x)).backward()
    n = sum(p.numel() for p in model.parameters())
    print(f"MPRNet tiny: {n:,} params, fwd+bwd (4,3,64,64) {time.perf_counter() - t0:.3f} s")
    assert n * 4 <= 5 * 2**20
