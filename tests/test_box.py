"""LocalAvgPool2d and the box-mean kernels against brute force and scipy."""

import random

import pytest
import torch
from reference import brute_local_mean, fast_reference, offset_trend_map, scipy_local_mean
from torch import nn

from tlc_probe import LocalAvgPool2d
from tlc_probe.tlc.box import box_mean, box_mean_fast, fast_error_bound, fast_stride


def _random_cases(n=40, seed=1):
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        shape = (rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 41), rng.randint(1, 41))
        kernel = (rng.randint(1, 48), rng.randint(1, 48))  # often larger than one side
        cases.append((shape, kernel))
    return cases


def _rel_err(got, ref, x):
    return float((got.double() - ref).abs().max() / x.double().abs().max().clamp(min=1e-12))


@pytest.mark.parametrize("shape,kernel", _random_cases())
def test_exact_matches_bruteforce(shape, kernel):
    x = torch.randn(shape) * 3 + 1
    got = box_mean(x, kernel)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert _rel_err(got, brute_local_mean(x, kernel), x) <= 1e-5


@pytest.mark.parametrize(
    "shape,kernel",
    [
        ((2, 3, 17, 23), (5, 7)),
        ((1, 2, 9, 31), (12, 4)),
        ((3, 1, 40, 41), (39, 2)),
        ((2, 5, 33, 20), (6, 30)),
    ],
)
def test_pool_module_local_matches_bruteforce(shape, kernel):
    x = torch.randn(shape)
    pool = LocalAvgPool2d(kernel)
    assert not pool.covers(shape[-2:])
    got = pool(x)
    assert got.shape == x.shape
    assert _rel_err(got, brute_local_mean(x, kernel), x) <= 1e-5


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("shape,kernel", [((2, 3, 12, 20), (12, 20)), ((1, 4, 7, 5), (96, 96))])
def test_covering_window_is_the_global_pool(shape, kernel, fast):
    x = torch.randn(shape)
    got = LocalAvgPool2d(kernel, fast_imp=fast)(x)
    assert got.shape == (*shape[:2], 1, 1)
    assert torch.equal(got, nn.AdaptiveAvgPool2d(1)(x))


def test_window_covering_one_side_only_stays_local():
    x = torch.randn(1, 2, 10, 30)
    got = LocalAvgPool2d((50, 6))(x)  # covers H, not W: a 10 x 6 window
    assert got.shape == x.shape
    assert _rel_err(got, brute_local_mean(x, (10, 6)), x) <= 1e-5
    assert not torch.allclose(got, got.mean(dim=-1, keepdim=True).expand_as(got))


@pytest.mark.parametrize("kernel", [(384, 384), (96, 96), (7, 5), (384, 96)])
def test_precision_720x1280_float32_against_float64(kernel):
    x = offset_trend_map()
    ref = scipy_local_mean(x, kernel)
    err = _rel_err(box_mean(x, kernel), ref, x)
    assert err <= 2e-6, err  # measured: 3e-8 (384), 4e-8 (96), 3e-7 (7x5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes(dtype):
    x = torch.randn(1, 2, 20, 24).to(dtype)
    got = box_mean(x, (5, 6))
    assert got.dtype == dtype
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float64: 1e-12}[dtype]
    assert _rel_err(got, brute_local_mean(x, (5, 6)), x) <= tol


def test_fast_stride_rule():
    assert [fast_stride(k) for k in (96, 48, 24, 384, 7, 8, 16, 1)] == [12, 6, 3, 48, 1, 1, 2, 1]
    for k in range(1, 200):
        r = fast_stride(k)
        assert k % r == 0 and (r == 1 or k // r >= 8)


def _fast_cases():
    return [
        ((1, 3, 45, 70), (24, 32)),  # ragged borders: partial blocks
        ((2, 2, 96, 96), (48, 48)),
        ((1, 2, 50, 130), (16, 96)),
        ((1, 1, 31, 200), (31, 40)),  # window covers H
        ((1, 2, 100, 100), (99, 24)),
    ]


@pytest.mark.parametrize("shape,kernel", _fast_cases())
@pytest.mark.parametrize("field", ["noise", "smooth", "step"])
def test_fast_within_documented_bound(shape, kernel, field):
    n, c, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    if field == "noise":
        x = torch.randn(shape)
    elif field == "smooth":
        x = torch.sin(6 * yy + 3 * xx).expand(n, c, h, w) * torch.rand(n, c, 1, 1) + 2
    else:  # a vertical and a horizontal edge: the worst case for a shifted window
        x = ((yy > 0.37) ^ (xx > 0.61)).float().expand(n, c, h, w).contiguous()
    kh, kw = min(kernel[0], h), min(kernel[1], w)
    strides = (fast_stride(kh), fast_stride(kw))
    assert strides != (1, 1)
    exact = brute_local_mean(x, kernel)
    got = box_mean_fast(x, kernel)
    assert got.shape == x.shape
    rng = (x.amax(dim=(-2, -1), keepdim=True) - x.amin(dim=(-2, -1), keepdim=True)).double()
    bound = fast_error_bound((kh, kw), strides)
    assert ((got.double() - exact).abs() <= bound * rng + 1e-5).all()
    if field == "smooth":  # far inside the bound on smooth maps
        assert float(((got.double() - exact).abs() / rng).max()) <= 0.25 * bound


def test_fast_with_unit_strides_is_exact():
    x = torch.randn(2, 3, 30, 41)
    assert torch.equal(box_mean_fast(x, (7, 9), (1, 1)), box_mean(x, (7, 9)))


def test_fast_module_uses_rule_strides():
    pool = LocalAvgPool2d((48, 96), fast_imp=True)
    assert pool.strides((200, 300)) == (6, 12)
    assert pool.strides((30, 300)) == (3, 12)  # window clipped to 30 rows


def test_fast_error_bound_formula():
    assert fast_error_bound((48, 96), (6, 12)) == pytest.approx(6 / 96 + 12 / 192)
    assert fast_error_bound((7, 7), (1, 1)) == 0.0


@pytest.mark.parametrize("fast", [False, True])
def test_bad_input(fast):
    pool = LocalAvgPool2d(4, fast_imp=fast)
    with pytest.raises(ValueError, match="4-D"):
        pool(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        pool(torch.randn(1, 3, 0, 8))
    assert pool(torch.randn(0, 3, 8, 8)).shape == (0, 3, 8, 8)  # an empty batch passes
    with pytest.raises(ValueError, match=">= 1"):
        LocalAvgPool2d((0, 3))
    with pytest.raises(ValueError, match="divide"):
        box_mean_fast(torch.randn(1, 1, 20, 20), (8, 8), (3, 3))


def test_fast_is_exact_on_a_linear_ramp():
    # Window means of a ramp are linear in the window start: interpolation is exact.
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(120.0), indexing="ij")
    x = (0.3 * yy - 0.7 * xx + 5)[None, None]
    got = box_mean_fast(x, (48, 60))
    assert LocalAvgPool2d((48, 60), fast_imp=True).strides((96, 120)) == (6, 6)
    assert _rel_err(got, brute_local_mean(x, (48, 60)), x) <= 1e-6


@pytest.mark.parametrize("shape,kernel", _fast_cases())
def test_fast_equals_its_definition(shape, kernel):
    x = torch.randn(shape, dtype=torch.float64)
    kh, kw = min(kernel[0], shape[2]), min(kernel[1], shape[3])
    strides = (fast_stride(kh), fast_stride(kw))
    got = box_mean_fast(x, kernel)
    assert torch.allclose(got, fast_reference(x, (kh, kw), strides), atol=1e-12)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "float16", "sliced"])
def test_input_is_left_untouched(fast, layout):
    x = torch.randn(2, 3, 40, 52) + 2
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "float16":
        x = x.half()
    elif layout == "sliced":
        x = torch.randn(2, 3, 40, 60)[..., 4:56]
    before = x.clone()
    got = (box_mean_fast if fast else box_mean)(x, (16, 24))
    assert torch.equal(x, before)
    tol = 2e-3 if layout == "float16" else 1e-5
    bound = fast_error_bound((16, 24), (fast_stride(16), fast_stride(24))) if fast else 0.0
    rng = float(x.float().max() - x.float().min())
    assert _rel_err(got, brute_local_mean(x, (16, 24)), x) <= tol + bound * rng


def test_overwrite_reuses_the_scratch_map():
    x = torch.randn(1, 4, 30, 33) * 2 + 5
    ref = brute_local_mean(x, (9, 12))
    scratch = x.clone()
    got = box_mean(scratch, (9, 12), overwrite=True)
    assert got.data_ptr() == scratch.data_ptr()
    assert _rel_err(got, ref, x) <= 1e-5


@pytest.mark.parametrize("fast", [False, True])
def test_gradients_are_those_of_the_window_mean(fast):
    # Under autograd the out-of-place path runs; gradcheck compares with finite differences.
    x = torch.randn(1, 2, 14, 17, dtype=torch.float64, requires_grad=True)
    pool = LocalAvgPool2d((8, 8), fast_imp=fast)
    assert not pool.covers((14, 17))
    assert torch.autograd.gradcheck(pool, (x,))
    with_grad = pool(x)  # the out-of-place path
    assert with_grad.requires_grad
    with torch.no_grad():  # the in-place path: the same values
        assert torch.allclose(with_grad.detach(), pool(x.detach()), atol=1e-12)
