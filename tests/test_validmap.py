"""The exact pool's valid-window head (``convert``'s ``valid`` backend, and its
fallback under autograd / half / NaN): the same numbers
as the plain exact path, with the squeeze-excitation head run on the valid windows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import brute_local_mean
from toy_models import CALayer, ToyNet

from tlc_probe import LocalAvgPool2d, convert
from tlc_probe.models import build
from tlc_probe.tlc.box import replicate_to
from tlc_probe.tlc.convert import backend
from tlc_probe.tlc.fused import FusedMap
from tlc_probe.tlc.gridmap import ValidMap


def _pair(model, train_size):
    with backend("plain"):
        exact = convert(model.eval(), train_size=train_size)
    with backend("valid"):
        valid = convert(model.eval(), train_size=train_size)
    return exact, valid


@pytest.mark.parametrize("name", ["mprnet", "ffanet", "nafnet"])
def test_valid_head_equals_the_exact_path(name):
    torch.manual_seed(0)
    exact, valid = _pair(build(name, "tiny"), 32)
    assert any(getattr(m, "valid_head", False) for m in valid.modules())
    x = torch.rand(2, 3, 75, 61)
    with torch.no_grad():
        a, b = exact(x), valid(x)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a - b).abs().max()


def test_the_head_runs_on_the_valid_windows():
    pool = LocalAvgPool2d((6, 5), valid_head=True)
    x = torch.rand(2, 3, 13, 11)
    out = pool(x)
    assert isinstance(out, ValidMap) and out.shape == (2, 3, 13, 11)
    assert out.as_subclass(torch.Tensor).shape == (2, 3, 8, 7)  # H - k + 1, W - k + 1
    w = torch.rand(4, 3, 1, 1)
    head = torch.sigmoid(F.relu(F.conv2d(out, w)))
    assert isinstance(head, ValidMap) and head.as_subclass(torch.Tensor).shape[-2:] == (8, 7)
    want = torch.sigmoid(F.relu(F.conv2d(brute_local_mean(x, (6, 5)).float(), w)))
    got = x[:, :1] * head  # the multiply expands once
    assert type(got) is torch.Tensor
    assert torch.allclose(got, x[:, :1] * want, atol=1e-6)
    smooth = F.conv2d(head, torch.rand(1, 4, 3, 3), padding=1)  # not pointwise: expanded
    assert type(smooth) is torch.Tensor and smooth.shape == (2, 1, 13, 11)


def test_valid_head_under_autograd_and_with_nonfinite_values():
    torch.manual_seed(1)
    exact, valid = _pair(ToyNet(se_block=CALayer), 32)
    x = torch.rand(1, 3, 70, 58, requires_grad=True)
    (ga,) = torch.autograd.grad(exact(x).sum(), x)
    (gb,) = torch.autograd.grad(valid(x).sum(), x)
    assert torch.allclose(ga, gb, atol=1e-6)
    y = torch.rand(1, 3, 70, 58)
    y[0, 1, 30, 20] = float("nan")
    with torch.no_grad():
        a, b = exact(y), valid(y)
    assert torch.equal(a.isnan(), b.isnan())
    assert torch.allclose(a.nan_to_num(), b.nan_to_num(), atol=1e-6)


def test_valid_head_is_for_the_exact_path_only():
    with backend("valid"), pytest.raises(ValueError, match="not one of mode 'fast'"):
        convert(ToyNet(se_block=CALayer).eval(), train_size=32, mode="fast")
    with pytest.raises(ValueError, match="valid_head"):
        LocalAvgPool2d(4, fast_imp=True, valid_head=True)


@pytest.mark.parametrize("bias", [False, True])
def test_head_convolutions_as_matrix_products_equal_conv2d(bias):
    torch.manual_seed(2)
    valid = torch.rand(3, 5, 17, 23)[..., 2:, 3:]  # a non-contiguous view, as the pool's
    pool_out = ValidMap.wrap_valid(valid, (20, 26))
    w = torch.rand(7, 5, 1, 1)
    b = torch.rand(7) if bias else None
    got = F.conv2d(pool_out, w, b)
    assert isinstance(got, ValidMap)
    want = F.conv2d(valid, w, b)
    torch.testing.assert_close(got.as_subclass(torch.Tensor), want, rtol=1e-5, atol=1e-6)
    # a grouped 1x1 convolution takes conv2d itself
    wg = torch.rand(5, 1, 1, 1)
    grouped = F.conv2d(ValidMap.wrap_valid(valid, (20, 26)), wg, groups=5)
    assert isinstance(grouped, ValidMap)
    assert torch.equal(grouped.as_subclass(torch.Tensor), F.conv2d(valid, wg, groups=5))


@pytest.mark.parametrize(
    ("size", "valid_hw"),
    [((13, 11), (8, 7)), ((9, 12), (9, 1)), ((6, 6), (6, 6)), ((7, 10), (1, 3))],
)
@pytest.mark.parametrize("other_shape", ["full", "batch1", "channel1", "row1"])
def test_the_multiply_by_regions_equals_expanding_first(size, valid_hw, other_shape):
    torch.manual_seed(3)
    valid = torch.rand(2, 4, *valid_hw)
    h, w = size
    shapes = {
        "full": (2, 4, h, w),
        "batch1": (1, 4, h, w),
        "channel1": (2, 1, h, w),
        "row1": (2, 4, 1, w),
    }
    other = torch.rand(shapes[other_shape])
    got = other * ValidMap.wrap_valid(valid, size)
    assert type(got) is torch.Tensor and got.shape == (2, 4, h, w)
    assert torch.equal(got, other * replicate_to(valid, size))  # the very same products
    assert torch.equal(ValidMap.wrap_valid(valid, size) * other, got)


@pytest.mark.parametrize("head", ["valid_head", "fused_head"])
def test_trainable_head_weights_on_a_deferred_map(head):
    """An input without gradients but head weights with them (a frozen trunk, a trained
    SE head): the conv takes conv2d itself (a FusedMap: the plain path at the multiply)
    and the gradients are the padded path's."""
    torch.manual_seed(4)
    x = torch.rand(2, 3, 13, 11)
    w = torch.rand(3, 3, 1, 1, requires_grad=True)
    b = torch.rand(3, requires_grad=True)
    pooled = LocalAvgPool2d((6, 5), **{head: True})(x)
    assert isinstance(pooled, FusedMap if head == "fused_head" else ValidMap)
    out = x * torch.sigmoid(F.conv2d(pooled, w, b))
    want = x * torch.sigmoid(F.conv2d(brute_local_mean(x, (6, 5)).float(), w, b))
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    got_grads = torch.autograd.grad(out.square().sum(), (w, b))
    want_grads = torch.autograd.grad(want.square().sum(), (w, b))
    for g, r in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
