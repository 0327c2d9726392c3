"""The fused exact path (``convert``'s default exact implementation): window means streamed in row
bands, the squeeze-excitation head and multiply run band by band; the exact path's
numbers, checked against brute force, scipy and the plain exact path."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from reference import brute_local_mean, offset_trend_map, replicate_valid, scipy_local_mean
from toy_models import CALayer, ToyNet

from tlc_probe import LocalAvgPool2d, convert
from tlc_probe.models import build
from tlc_probe.schemes import make_scheme
from tlc_probe.tlc.box import channel_mm
from tlc_probe.tlc.convert import backend
from tlc_probe.tlc.fused import FusedMap
from tlc_probe.tlc.gridmap import ValidMap
from tlc_probe.tlc.stream import band_rows, box_mean_bands, top_sums_and_mean


def _streamed(x, kernel, rows=None):
    """The bands of box_mean_bands, checked to be consecutive, joined: (N, C, V_h, V_w)."""
    parts, expect = [], 0
    for v0, means in box_mean_bands(x, kernel, x.mean((-2, -1), keepdim=True), rows):
        assert v0 == expect
        parts.append(means.clone())  # the buffer is reused by the next band
        expect += means.shape[-2]
    assert expect == x.shape[-2] - kernel[0] + 1
    return torch.cat(parts, dim=-2)


def _rel_err(got, ref, x):
    return float((got.double() - ref).abs().max() / x.double().abs().max())


@pytest.mark.parametrize(
    ("shape", "kernel", "rows"),
    [
        ((2, 3, 23, 17), (5, 4), 3),  # odd sizes, batch 2, a short last band
        ((1, 2, 19, 31), (19, 7), None),  # window as tall as the map: one valid row
        ((2, 1, 12, 9), (4, 9), 1),  # as wide as the map; one row per band
        ((1, 3, 8, 8), (1, 1), 5),  # 1 x 1 windows: the map itself
        ((3, 2, 40, 33), (12, 10), 100),  # a band taller than the valid rows
    ],
)
def test_streamed_means_equal_brute_force(shape, kernel, rows):
    torch.manual_seed(0)
    x = torch.randn(shape) * 2 + 5
    got = _streamed(x, kernel, rows)
    want = F.avg_pool2d(x.double(), kernel, stride=1)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert _rel_err(got, want, x) <= 1e-6


def test_streamed_means_in_float64():
    x = torch.randn(2, 2, 30, 21, dtype=torch.float64)
    got = _streamed(x, (7, 6), rows=4)
    assert got.dtype == torch.float64
    assert _rel_err(got, F.avg_pool2d(x, (7, 6), stride=1), x) <= 1e-13


@pytest.mark.parametrize("kernel", [(384, 384), (96, 96), (7, 5)])
def test_streamed_precision_720x1280_against_float64(kernel):
    x = offset_trend_map()
    got = replicate_valid(_streamed(x, kernel), 720, 1280)
    err = _rel_err(got, scipy_local_mean(x, kernel), x)
    assert err <= 2e-6, err  # the integral image's bound (tests/test_box.py)


@pytest.mark.parametrize("given_top", [False, True])
@pytest.mark.parametrize(
    ("shape", "kernel", "rows"), [((2, 5, 23, 17), (6, 5), 3), ((1, 6, 40, 33), (40, 9), None)]
)
def test_projected_means_are_the_means_of_the_projected_map(shape, kernel, rows, given_top):
    # the SE head's first 1x1 convolution moved before the window sums (fewer channels)
    torch.manual_seed(3)
    x = torch.randn(shape) * 3 + 7
    weight, bias = torch.randn(2, shape[1]), torch.randn(2)
    top, offset = top_sums_and_mean(x, kernel[0])
    torch.testing.assert_close(offset, x.mean((-2, -1), keepdim=True))
    torch.testing.assert_close(top, x[:, :, : kernel[0]].sum(-2, keepdim=True))
    parts = [
        m.clone()
        for _, m in box_mean_bands(
            x, kernel, offset, rows, (weight, bias), top if given_top else None
        )
    ]
    got = torch.cat(parts, dim=-2)
    want = F.conv2d(
        F.avg_pool2d(x.double(), kernel, stride=1), weight.double()[:, :, None, None], bias.double()
    )
    assert got.shape == want.shape
    assert float((got.double() - want).abs().max()) <= 1e-5 * float(want.abs().max())


def test_band_rows():
    assert band_rows((1, 24, 720, 1280), 4) == 51  # about 6 MiB a band
    assert band_rows((1, 96, 720, 1280), 4) == 12
    assert band_rows((1, 1, 10, 10), 4) == 64 and band_rows((8, 512, 10, 4096), 4) == 1
    assert band_rows((1, 1, 10, 10), 4, rows=3) == 3
    with pytest.raises(ValueError, match="rows per band"):
        band_rows((1, 1, 10, 10), 4, rows=0)


def _head(c_in, c_out):
    torch.manual_seed(5)
    w1, w2 = torch.randn(2, c_in, 1, 1), torch.randn(c_out, 2, 1, 1)
    return w1, torch.randn(2), w2, torch.randn(c_out)


@pytest.mark.parametrize(
    ("shape", "kernel", "other"),
    [
        ((2, 3, 23, 17), (6, 5), "full"),
        ((1, 4, 31, 40), (30, 3), "full"),  # two border rows, no band of its own
        ((3, 2, 13, 12), (13, 11), "full"),  # one row of two windows: every row repeats it
        ((2, 3, 50, 21), (9, 21), "channel1"),  # other broadcast over channels
        ((2, 3, 17, 19), (4, 4), "batch1"),
        ((2, 3, 23, 17), (6, 5), "channels_last"),  # maps of a channels-last model
    ],
)
def test_pool_head_and_multiply_equal_brute_force(shape, kernel, other):
    torch.manual_seed(1)
    x = torch.randn(shape)
    c = shape[1]
    w1, b1, w2, b2 = _head(c, 4)  # the head changes the channel count: 3 -> 2 -> 4
    others = {
        "full": (shape[0], 4, *shape[2:]),
        "channel1": (shape[0], 1, *shape[2:]),
        "channels_last": (shape[0], 4, *shape[2:]),
    }
    y = torch.randn(others.get(other, (1, 4, *shape[2:])))
    if other == "channels_last":
        x, y = (t.contiguous(memory_format=torch.channels_last) for t in (x, y))
    pool = LocalAvgPool2d(kernel, fused_head=True)
    with torch.no_grad():
        m = pool(x)
        assert isinstance(m, FusedMap) and m.shape == x.shape
        h = F.conv2d(m, w1, b1)
        assert isinstance(h, FusedMap) and h.shape == (shape[0], 2, *shape[2:])
        h = F.relu(h, inplace=True)
        h = torch.sigmoid(F.conv2d(h, w2, b2))
        assert isinstance(h, FusedMap) and h.shape == (shape[0], 4, *shape[2:])
        got = y * h
    assert type(got) is torch.Tensor and got.shape == (shape[0], 4, *shape[2:])
    if other == "channels_last":  # the product keeps the layout the next convolution wants
        assert got.is_contiguous(memory_format=torch.channels_last)
    ref = F.relu(F.conv2d(brute_local_mean(x, kernel), w1.double(), b1.double()))
    ref = torch.sigmoid(F.conv2d(ref, w2.double(), b2.double()))
    torch.testing.assert_close(got.double(), y.double() * ref, rtol=1e-5, atol=1e-6)


def test_any_other_use_computes_the_full_map():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 21, 18)
    with torch.no_grad():
        h = torch.sigmoid(LocalAvgPool2d((5, 4), fused_head=True)(x))
        smooth = F.conv2d(h, torch.ones(1, 3, 3, 3), padding=1)  # not pointwise
        plain = h + 0  # nor an addition
    ref = torch.sigmoid(brute_local_mean(x, (5, 4))).float()
    assert type(plain) is torch.Tensor
    torch.testing.assert_close(plain, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(smooth, F.conv2d(ref, torch.ones(1, 3, 3, 3), padding=1))


def test_input_changed_in_place_before_the_multiply_is_refused():
    x = torch.randn(1, 2, 12, 12)
    with torch.no_grad():
        m = torch.sigmoid(LocalAvgPool2d((4, 4), fused_head=True)(x))
        x.add_(1.0)
        with pytest.raises(RuntimeError, match="modified in place"):
            x * m


@pytest.mark.filterwarnings("ignore:sites never called")  # spdnet at 32 px
@pytest.mark.parametrize("name", ["hinet", "mprnet", "ffanet", "nafnet", "restormer", "spdnet"])
def test_the_default_exact_mode_equals_the_plain_exact_path(name):
    # every zoo model: SE pools (spdnet: linear SE), instance norm (hinet), attention
    torch.manual_seed(0)
    model = build(name, "tiny").eval()
    with backend("plain"):
        exact = convert(model, train_size=32)
    fused = convert(model, train_size=32)  # mode="exact" picks the fused path itself
    if name != "hinet":  # (instance norm has one exact implementation)
        assert any(
            getattr(m, "fused_head", False) or getattr(m, "fused", False) for m in fused.modules()
        )
    for shape in [(2, 3, 75, 61), (1, 3, 33, 97)]:  # odd sizes, batch > 1
        x = torch.rand(shape)
        with torch.no_grad():
            a, b = exact(x), fused(x)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=2e-6)
    x = torch.rand(1, 3, 45, 70, requires_grad=True)  # under autograd: same outputs, gradients
    (ga,) = torch.autograd.grad(exact(x).square().sum(), x)
    (gb,) = torch.autograd.grad(fused(x).square().sum(), x)
    torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:sites never called")  # spdnet at 32 px
@pytest.mark.parametrize("name", ["hinet", "mprnet", "ffanet", "nafnet", "restormer", "spdnet"])
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_a_channels_last_model_converts_to_the_same_numbers(name, mode):
    # load_subject lays CPU models out channels last (tensors.channels_last_on_cpu): every
    # local path must give the default layout's numbers on its maps
    torch.manual_seed(0)
    model = build(name, "tiny").eval()
    with backend("plain") if mode == "exact" else contextlib.nullcontext():
        ref = convert(model, train_size=32, mode=mode)
    last = convert(copy.deepcopy(model).to(memory_format=torch.channels_last), 32, mode=mode)
    for shape in [(2, 3, 75, 61), (1, 3, 33, 97)]:
        x = torch.rand(shape)
        with torch.no_grad():
            a, b = ref(x), last(x)
        a, b = (t[0] if isinstance(t, tuple | list) else t for t in (a, b))
        torch.testing.assert_close(b, a, rtol=1e-5, atol=2e-6)


def test_channel_mm_in_either_layout_is_the_1x1_convolution():
    torch.manual_seed(4)
    x, w = torch.randn(2, 5, 9, 7), torch.randn(3, 5)
    want = F.conv2d(x.double(), w.double()[:, :, None, None])
    for fmt in (torch.contiguous_format, torch.channels_last):
        got = channel_mm(w, x.contiguous(memory_format=fmt))
        assert got.is_contiguous(memory_format=fmt)
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_under_autograd_the_plain_path_with_the_same_gradients():
    # (trainable head weights on an input without gradients: tests/test_validmap.py)
    torch.manual_seed(1)
    model = ToyNet(se_block=CALayer)
    with backend("plain"):
        exact = convert(model.eval(), train_size=32)
    fused = convert(model.eval(), train_size=32)
    x = torch.rand(2, 3, 70, 58, requires_grad=True)
    (ga,) = torch.autograd.grad(exact(x).sum(), x)
    (gb,) = torch.autograd.grad(fused(x).sum(), x)
    torch.testing.assert_close(gb, ga, rtol=1e-5, atol=1e-6)


def test_nonfinite_and_half_maps_take_the_valid_path():
    x = torch.rand(1, 2, 14, 13)
    x[0, 1, 6, 5] = float("nan")
    pool = LocalAvgPool2d((4, 5), fused_head=True)
    with torch.no_grad():
        out = pool(x)
        assert isinstance(out, ValidMap) and not isinstance(out, FusedMap)
        full = out * torch.ones_like(x)
        assert type(pool(x.half())) is ValidMap
    ref = brute_local_mean(x, (4, 5))
    assert torch.equal(full.isnan(), ref.isnan())  # NaN only where brute force has it
    torch.testing.assert_close(full.nan_to_num().double(), ref.nan_to_num(), rtol=1e-5, atol=1e-6)


def test_backends_are_chosen_by_convert_and_forced_only_by_name():
    toy = ToyNet(se_block=CALayer).eval()
    with pytest.raises(ValueError, match="unknown backend"):
        with backend("banded"):
            pass
    with backend("grid"), pytest.raises(ValueError, match="not one of mode 'exact'"):
        convert(toy, train_size=32)
    net = make_scheme("tlc", toy, 32)
    assert net.tlc_mode == "exact"
    assert any(getattr(m, "fused_head", False) for m in net.run.modules())
    assert "fused_head=True" in repr(net.run)
    for name, flag in (("valid", "valid_head"), ("plain", None)):
        with backend(name):
            forced = convert(toy, train_size=32)
        pools = [m for m in forced.modules() if isinstance(m, LocalAvgPool2d)]
        assert pools and all(not m.fused_head for m in pools)
        assert all(getattr(m, flag) for m in pools) if flag else True
    fast = convert(toy, train_size=32, mode="fast")
    assert any(getattr(m, "grid_head", False) for m in fast.modules())
