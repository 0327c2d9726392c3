"""HINet specifics: module metadata, padding, the two stages, SAM, half instance norm, CSFF
and the windows of its IN sites (shared zoo checks: tests/test_zoo.py)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlc_probe import convert, list_sites, tlc_windows
from tlc_probe.models.hinet import (
    PAD_MULTIPLE,
    PRESETS,
    SAM,
    TASK,
    TRAIN_SIZE,
    HINet,
    UNetConvBlock,
)

TINY_SITES = [
    "down_path_1.2.norm",
    "down_path_1.3.norm",
    "down_path_2.2.norm",
    "down_path_2.3.norm",
]


@pytest.fixture(scope="module")
def official() -> nn.Module:
    # Shapes only: the meta device allocates no memory for the 88.7 M parameters.
    with torch.device("meta"):
        return HINet(**PRESETS["official"])


def _tiny() -> HINet:
    torch.manual_seed(0)
    return HINet(**PRESETS["tiny"]).eval()


def test_module_metadata():
    assert TASK == "deblur"
    assert TRAIN_SIZE == {"official": 256, "tiny": 64}
    assert set(PRESETS) == {"official", "tiny"}
    assert PAD_MULTIPLE(**PRESETS["official"]) == 16
    assert PAD_MULTIPLE(**PRESETS["tiny"]) == 8


@pytest.mark.parametrize("size", [(1, 1), (17, 23), (64, 64), (37, 100)])
def test_forward_all_is_stage2_and_stage1_of_any_size(size):
    model = _tiny()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        outs = model.forward_all(x)
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == x.shape
    assert len(outs) == 2 and all(o.shape == x.shape for o in outs)
    assert torch.equal(outs[0], y)


def test_padding_is_replicate_to_multiple_and_cropped():
    model = _tiny()
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        got = model(x)
        xp = F.pad(x, (0, 1, 0, 7), mode="replicate")  # to 24 x 24
        want = model(xp)[..., :17, :23]
        zero = model(F.pad(x, (0, 1, 0, 7)))[..., :17, :23]
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, zero, atol=1e-4)


def test_inputs_up_to_one_multiple_get_double_width():
    # 8x8 (tiny multiple) would leave the deepest, instance-normalised level at 1x1.
    model = _tiny()
    x = torch.rand(1, 3, 5, 8)
    with torch.no_grad():
        got = model(x)
        want = model(F.pad(x, (0, 8, 0, 3), mode="replicate"))[..., :5, :8]
        with pytest.raises(ValueError, match="spatial element"):
            model._stages(F.pad(x, (0, 0, 0, 3), mode="replicate"))
    assert torch.allclose(got, want, atol=1e-6)


def test_forward_all_is_stage2_then_sam_image():
    model = _tiny()
    seen = {}
    model.sam12.register_forward_hook(lambda _m, _a, out: seen.update(stage1=out[1]))
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        final, stage1 = model.forward_all(x)
    assert torch.equal(stage1, seen["stage1"])
    assert not torch.allclose(final, stage1)


def test_both_stages_predict_a_residual_of_the_input():
    model = _tiny()
    for conv in (model.last, model.sam12.conv2):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        final, stage1 = model.forward_all(x)
    assert torch.equal(final, x) and torch.equal(stage1, x)


def test_sam_gates_a_residual_branch_with_the_stage1_image():
    torch.manual_seed(0)
    sam = SAM(6).eval()
    feats, image = torch.randn(2, 6, 10, 12), torch.rand(2, 3, 10, 12)
    with torch.no_grad():
        gated, restored = sam(feats, image)
        assert torch.allclose(restored, sam.conv2(feats) + image)
        gate = torch.sigmoid(sam.conv3(restored))
        assert torch.allclose(gated, feats + sam.conv1(feats) * gate, atol=1e-6)


def test_structure_and_half_instance_norm_levels(official):
    cfg = PRESETS["official"]
    assert (cfg["wf"], cfg["depth"]) == (64, 5)
    assert (cfg["hin_position_left"], cfg["hin_position_right"]) == (3, 4)
    norms = [n for n, m in official.named_modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms == [f"down_path_{s}.{i}.norm" for s in (1, 2) for i in (3, 4)]
    for s in (1, 2):
        for i, block in enumerate(getattr(official, f"down_path_{s}")):
            channels = cfg["wf"] * 2**i
            assert block.conv_1.out_channels == channels
            if i >= 3:
                assert block.norm.num_features == channels // 2 and block.norm.affine
            else:
                assert not hasattr(block, "norm")
            # CSFF only in the stage-2 encoder, at every level that downsamples.
            assert hasattr(block, "csff_enc") == hasattr(block, "csff_dec") == (s == 2 and i < 4)
            assert (block.downsample is None) == (i == 4)
    for name in ("up_path_1", "up_path_2", "skip_conv_1", "skip_conv_2"):
        assert len(getattr(official, name)) == 4
    assert official.sam12.conv2.out_channels == 3
    assert official.cat12.in_channels == 128 and official.cat12.out_channels == 64
    assert official.last.out_channels == 3


def test_hin_normalises_first_half_only():
    torch.manual_seed(0)
    block = UNetConvBlock(3, 8, downsample=False, relu_slope=0.2, use_HIN=True).eval()
    seen = {}
    block.conv_1.register_forward_hook(lambda _m, _a, out: seen.update(conv=out))
    block.norm.register_forward_hook(lambda _m, args, _o: seen.update(norm_in=args[0]))
    block.relu_1.register_forward_hook(lambda _m, args, _o: seen.update(relu_in=args[0]))
    with torch.no_grad():
        block(torch.rand(2, 3, 9, 11) * 5 + 2)
    conv, relu_in = seen["conv"], seen["relu_in"]
    assert block.norm.num_features == 4
    assert torch.equal(seen["norm_in"], conv[:, :4])
    assert torch.equal(relu_in[:, 4:], conv[:, 4:])
    mean = relu_in[:, :4].mean(dim=(2, 3))  # affine starts at weight 1, bias 0
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)


def test_csff_takes_stage1_features_of_the_same_level():
    model = _tiny()
    feats: dict[str, torch.Tensor] = {}

    def keep(name, use_input):
        def hook(_m, args, out):
            feats[name] = args[0] if use_input else out

        return hook

    depth = model.depth
    for i in range(depth - 1):
        model.down_path_1[i].register_forward_hook(keep(f"enc{i}", False))
        model.up_path_1[depth - 2 - i].register_forward_hook(keep(f"dec{i}", False))
        model.down_path_2[i].csff_enc.register_forward_hook(keep(f"csff_enc{i}", True))
        model.down_path_2[i].csff_dec.register_forward_hook(keep(f"csff_dec{i}", True))
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    for i in range(depth - 1):
        assert feats[f"csff_enc{i}"].shape[-1] == 32 >> i
        assert torch.equal(feats[f"csff_enc{i}"], feats[f"enc{i}"])
        assert torch.equal(feats[f"csff_dec{i}"], feats[f"dec{i}"])


def test_tlc_convert_tiny():
    model = _tiny()
    sites = list_sites(model)
    assert [(s.name, s.kind) for s in sites] == [(n, "in") for n in TINY_SITES]
    tlc = convert(model, train_size=TRAIN_SIZE["tiny"])
    windows = {s["name"]: (s["feature_size"], s["kernel_size"]) for s in tlc_windows(tlc)}
    assert windows == {
        n: (((16, 16), (24, 24)) if ".2." in n else ((8, 8), (12, 12))) for n in TINY_SITES
    }
    x = torch.rand(2, 3, 64, 64)
    big = torch.rand(1, 3, 96, 160)
    big[..., 80:] *= 0.3  # different statistics left and right
    with torch.no_grad():
        assert torch.allclose(tlc(x), model(x), atol=1e-5)
        out = tlc(big)
        assert out.shape == big.shape and torch.isfinite(out).all()
        assert (out - model(big)).abs().max() > 1e-3
