"""LocalInstanceNorm2d against nn.InstanceNorm2d and a brute-force local norm."""

import inspect

import pytest
import torch
from reference import brute_local_instance_norm
from torch import nn

from tlc_probe import LocalInstanceNorm2d
from tlc_probe.tlc.box import fast_stride


def _affine_norm(c, **kw):
    norm = nn.InstanceNorm2d(c, affine=True, **kw)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(c) + 0.5)
        norm.bias.copy_(torch.randn(c))
    return norm


@pytest.mark.parametrize("fast", [False, True])
def test_covering_window_equals_instance_norm(fast):
    norm = _affine_norm(4)
    local = LocalInstanceNorm2d.from_instance_norm(norm, (32, 32), fast_imp=fast)
    x = torch.randn(2, 4, 24, 30) * 2 + 3
    assert torch.equal(local(x), norm(x))


@pytest.mark.parametrize(
    "shape,kernel",
    [((2, 4, 23, 37), (9, 12)), ((1, 3, 40, 17), (40, 5)), ((3, 2, 11, 50), (6, 64))],
)
def test_local_matches_bruteforce(shape, kernel):
    norm = _affine_norm(shape[1])
    local = LocalInstanceNorm2d.from_instance_norm(norm, kernel)
    x = torch.randn(shape) * 3 + 10  # an offset: naive E[x^2] - E[x]^2 in float32 would fail
    ref = brute_local_instance_norm(x, kernel, norm.weight.detach(), norm.bias.detach(), norm.eps)
    got = local(x).detach()
    assert got.shape == x.shape and got.dtype == x.dtype
    assert float((got.double() - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


def test_without_affine():
    local = LocalInstanceNorm2d(3, (5, 5))
    x = torch.randn(1, 3, 20, 20)
    ref = brute_local_instance_norm(x, (5, 5))
    assert torch.allclose(local(x).double(), ref, atol=1e-5)


def test_fast_close_to_exact_on_smooth_maps():
    c, h, w = 3, 96, 144
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    x = (torch.sin(2 * yy + 1.5 * xx) + 0.3 * torch.cos(3 * xx))[None, None].repeat(1, c, 1, 1)
    x = x + 0.05 * torch.randn(1, c, h, w)
    norm = _affine_norm(c)
    k = (48, 72)
    assert (fast_stride(48), fast_stride(72)) == (6, 9)
    with torch.no_grad():
        exact = LocalInstanceNorm2d.from_instance_norm(norm, k)(x)
        fast = LocalInstanceNorm2d.from_instance_norm(norm, k, fast_imp=True)(x)
    # Normalised outputs are O(1); the fast moments shift them by a few percent at most.
    assert float((fast - exact).abs().mean()) <= 0.02
    assert float((fast - exact).abs().max()) <= 0.2


def test_state_dict_and_parameters_are_the_instance_norms():
    norm = _affine_norm(6)
    local = LocalInstanceNorm2d.from_instance_norm(norm, (8, 8))
    assert local.weight is norm.weight and local.bias is norm.bias
    assert list(local.state_dict()) == list(norm.state_dict())
    fresh = LocalInstanceNorm2d(6, (8, 8), affine=True)
    fresh.load_state_dict(norm.state_dict(), strict=True)
    assert torch.equal(fresh.weight, norm.weight)


def test_running_stats_in_eval_mode_are_used_not_local():
    norm = nn.InstanceNorm2d(2, affine=True, track_running_stats=True)
    norm.train()
    for _ in range(3):
        norm(torch.randn(4, 2, 16, 16) + 2)
    norm.eval()
    local = LocalInstanceNorm2d.from_instance_norm(norm, (4, 4))
    x = torch.randn(1, 2, 16, 16)
    assert torch.equal(local(x), norm(x))
    assert list(local.state_dict()) == list(norm.state_dict())


def test_bad_input():
    local = LocalInstanceNorm2d(3, (4, 4))
    with pytest.raises(ValueError, match="4-D"):
        local(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        local(torch.randn(1, 3, 0, 8))
    with pytest.raises(ValueError, match="channels"):
        local(torch.randn(1, 5, 10, 10))


def test_local_mean_far_above_local_spread_stays_accurate():
    # Two flat halves at -100 and +100 with unit noise: E[x^2] - E[x]^2 cancels ~4 digits.
    x = torch.randn(1, 2, 60, 90)
    x[..., 45:] += 100
    x[..., :45] -= 100
    x[:, 1] *= 0.01  # and a channel whose spread is tiny against eps
    local = LocalInstanceNorm2d(2, (20, 20))
    ref = brute_local_instance_norm(x, (20, 20))
    assert float((local(x).double() - ref).abs().max()) <= 1e-4


@pytest.mark.skipif(
    "bias" not in inspect.signature(nn.InstanceNorm2d.__init__).parameters,
    reason="nn.InstanceNorm2d(bias=False) needs torch >= 2.13",
)
def test_affine_without_bias():
    norm = nn.InstanceNorm2d(3, affine=True, bias=False)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
    local = LocalInstanceNorm2d.from_instance_norm(norm, (7, 9))
    assert list(local.state_dict()) == ["weight"]
    x = torch.randn(2, 3, 20, 30)
    ref = brute_local_instance_norm(x, (7, 9)) * norm.weight.detach().double()[None, :, None, None]
    assert torch.allclose(local(x).detach().double(), ref, atol=1e-5)


def test_autograd_through_the_float64_fallback():
    # The fallback assigns into the moments; under autograd that must not break backward.
    x = torch.randn(1, 2, 40, 60) * 0.01
    x[..., 30:] += 100
    x[..., :30] -= 100
    x.requires_grad_(True)
    local = LocalInstanceNorm2d(2, (12, 12), affine=True)
    out = local(x)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():
        ref = brute_local_instance_norm(x, (12, 12), local.weight, local.bias)
    assert float((out.detach().double() - ref).abs().max()) <= 1e-3


@pytest.mark.parametrize("eps", [1e-5, 1e-8, 1e-12])
@pytest.mark.parametrize("grad", [False, True])
def test_constant_windows_normalise_to_zero_as_brute_force(eps, grad):
    # Constant windows (black borders, saturated sky): var = 0, so (x - mean) / sqrt(eps)
    # magnifies any rounding residue of the mean (was 0.12 off at eps 1e-12, constant 5).
    torch.manual_seed(7)
    x = torch.randn(2, 3, 90, 120)
    x[0, :, 20:70, 30:100] = 5.0  # a constant block larger than the window
    x[1, :, 10:80, 0:60] = 0.37
    x[1, 1] = 0.0  # a channel constant but for a corner
    x[1, 1, :5, :5] = 1.0
    local = LocalInstanceNorm2d(3, (24, 24), eps=eps, affine=True)
    with torch.no_grad():
        local.weight.copy_(torch.tensor([0.5, 2.0, -1.5]))
        local.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    out = local(x.requires_grad_(grad))
    with torch.no_grad():
        ref = brute_local_instance_norm(x, (24, 24), local.weight, local.bias, eps=eps)
    assert float((out.detach().double() - ref).abs().max()) <= 1e-5
    if grad:
        out.sum().backward()
        assert torch.isfinite(x.grad).all()
