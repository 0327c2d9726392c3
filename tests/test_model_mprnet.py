"""MPRNet specifics: the shared PReLU, three stage outputs, reflect padding, the windows of
the quarter-patch sites (shared zoo checks: tests/test_zoo.py)."""

import pytest
import torch
import torch.nn.functional as F
from zoo_checks import ANY_SIZES

from tlc_probe import LocalAvgPool2d, convert, list_sites, tlc_windows
from tlc_probe.models.mprnet import PRESETS, TRAIN_SIZE, MPRNet


def test_official_preset_shares_one_prelu_across_every_cab():
    # (keys, shapes and parameter count: tests/test_zoo.py, for every model)
    with torch.device("meta"):
        model = MPRNet(**PRESETS["official"])
    assert "shallow_feat1.1.CA.conv_du.0.weight" in model.state_dict()
    assert model.shallow_feat1[1].body[1] is model.stage3_orsnet.orb3.body[0].body[1]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return MPRNet(**PRESETS["tiny"]).eval()


@pytest.mark.parametrize("size", ANY_SIZES)
def test_forward_all_is_the_three_stage_outputs(tiny, size):
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
