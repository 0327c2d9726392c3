"""grid_head: the head of a squeeze-excitation block evaluated on the fast pool's grid."""

import pytest
import torch
from reference import fast_reference, fast_reference_factors, replicate_valid
from torch import nn

from tlc_probe import convert
from tlc_probe.models.mprnet import CALayer
from tlc_probe.tlc.box import fast_stride
from tlc_probe.tlc.convert import backend
from tlc_probe.tlc.gridmap import GridMap


class Block(nn.Module):
    """conv -> squeeze-excitation (MPRNet's CALayer) -> conv, on 8 channels."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv2d(3, 8, 3, padding=1)
        self.ca = CALayer(8, reduction=2, bias=True)
        self.out = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        return self.out(self.ca(self.inp(x)))


class Consumer(nn.Module):
    """A pool whose output is used by ``how`` (not a plain squeeze-excitation head)."""

    def __init__(self, how):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(3, 3, 1)
        self.how = how

    def forward(self, x):
        return self.how(self, x, self.pool(x))


def _models(model, **kw):
    torch.manual_seed(0)
    with backend("plain"):
        fast = convert(model, train_size=16, mode="fast", **kw)
    head = convert(model, train_size=16, mode="fast", **kw)  # the grid head: fast's default
    return fast, head


def test_se_block_equals_head_on_the_reference_grid():
    torch.manual_seed(1)
    model = Block().double().eval()
    _, head = _models(model)
    x = torch.randn(1, 3, 61, 75, dtype=torch.float64)
    kernel = head.ca.avg_pool.kernel_size  # 24 x 24 -> strides 3 x 3
    strides = (fast_stride(kernel[0]), fast_stride(kernel[1]))
    assert strides == (3, 3)
    with torch.no_grad():
        feat = model.inp(x)
        grid, wh, ww = fast_reference_factors(feat, kernel, strides)
        att = model.ca.conv_du(grid)  # 1x1 convs, ReLU, sigmoid at the grid points only
        att = replicate_valid(wh @ att @ ww.T, *feat.shape[-2:])
        want = model.out(feat * att)
        got = head(x)
    assert type(got) is torch.Tensor
    assert torch.allclose(got, want, atol=1e-10)


def test_linear_head_is_exactly_the_plain_fast_pool():
    # 1x1 convolutions commute with the interpolation: no approximation at all.
    model = Consumer(lambda m, x, p: x * m.conv(p)).double().eval()
    fast, head = _models(model)
    x = torch.randn(2, 3, 50, 66, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(head(x), fast(x), atol=1e-12)
        y = head.pool(x)
        assert isinstance(y, GridMap)
        assert y.shape == x.shape and y.size(-1) == 66 and y.size(dim=1) == 3 and y.dim() == 4
        assert torch.allclose(y.full(), fast_reference(x, head.pool.kernel_size, (3, 3)))


@pytest.mark.parametrize(
    "how",
    [
        lambda m, x, p: x + nn.functional.avg_pool2d(p, 3, 1, 1, count_include_pad=False),
        lambda m, x, p: x * p.flatten(2).mean(-1)[..., None, None],
        lambda m, x, p: x * p + p,
        lambda m, x, p: p * x,
        lambda m, x, p: x - p * 2,
        lambda m, x, p: x * (p * p),
    ],
    ids=["pool3x3", "flatten", "twice", "rmul", "sub", "square"],
)
def test_other_consumers_see_the_expanded_map(how):
    # Anything but 1x1 convs and activations gets the plain fast pool's map.
    model = Consumer(how).double().eval()
    fast, head = _models(model)
    x = torch.randn(1, 3, 40, 52, dtype=torch.float64)
    with torch.no_grad():
        got = head(x)
        assert type(got) is torch.Tensor
        assert torch.allclose(got, fast(x), atol=1e-12)


def _set(p, v):
    p[:, :1] = v
    return p


@pytest.mark.parametrize(
    "how",
    [
        lambda m, x, p: x * p.mul_(2),
        lambda m, x, p: x * _set(p, 0.0),
        lambda m, x, p: x * p.__imul__(2),
        lambda m, x, p: x * nn.functional.elu(p, inplace=True),
        lambda m, x, p: x * torch.exp(p, out=p),
    ],
    ids=["mul_", "setitem", "imul", "elu-inplace", "out"],
)
def test_inplace_op_that_cannot_reach_the_grid_raises(how):
    model = Consumer(how).eval()
    _, head = _models(model)
    with torch.no_grad(), pytest.raises(RuntimeError, match="grid_head=False"):
        head(torch.randn(1, 3, 40, 52))


def test_autograd_gets_plain_tensors_and_gradients():
    model = Block().double().eval()
    fast, head = _models(model)
    x = torch.randn(1, 3, 40, 52, dtype=torch.float64, requires_grad=True)
    y = head.ca.avg_pool(head.inp(x))
    assert type(y) is torch.Tensor  # under autograd the plain fast pool runs
    assert torch.allclose(head(x), fast(x), atol=1e-12)
    head(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_grid_head_is_fast_modes_and_inert_at_training_size():
    model = Block().eval()
    with backend("grid"), pytest.raises(ValueError, match="not one of mode 'exact'"):
        convert(model, train_size=16)
    _, head = _models(model)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(head(x), model(x), atol=1e-6)


@pytest.mark.parametrize(
    "op,exact_on_grid",
    [
        (lambda t, w: nn.functional.conv2d(t, w), True),
        (lambda t, w: nn.functional.conv2d(t, w, padding=1), False),
        (lambda t, w: nn.functional.conv2d(t, w, stride=2), False),
        (lambda t, w: nn.functional.conv2d(t, w.expand(-1, -1, 3, 3), padding=1), False),
    ],
    ids=["1x1", "1x1-padded", "1x1-strided", "3x3"],
)
def test_only_plain_1x1_convolutions_run_on_the_grid(op, exact_on_grid):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 40, 52, dtype=torch.float64)
    _, head = _models(Consumer(lambda m, x, p: x * m.conv(p)).double().eval())
    with torch.no_grad():
        g = head.pool(x)
        w = torch.randn(4, 3, 1, 1, dtype=torch.float64)
        got = op(g, w)
        assert isinstance(got, GridMap) == exact_on_grid
        full = got.full() if isinstance(got, GridMap) else got
        assert torch.allclose(full, op(g.full(), w), atol=1e-12)
