"""Functional global aggregations (``x.mean((2, 3), keepdim=True)`` and kin) and
user-declared sites: found, converted, probed; checked against brute-force windows."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from einops.layers.torch import Reduce
from reference import brute_local_instance_norm, brute_local_mean, replicate_valid
from torch import nn

from tlc_probe import Probe, convert, list_sites
from tlc_probe.functional import ROUTER_ATTR, attach_functional_sites, find_sites
from tlc_probe.jobs.reliance import reliance
from tlc_probe.models import available, build

TRAIN = 24  # every site sees the input size: window 36 x 36
KERNEL = (36, 36)


def brute_local_layer_norm(x: torch.Tensor, k: tuple[int, int], eps: float = 1e-5):
    """Layer norm over (C, window) at every position, by unfold, float64."""
    h, w = x.shape[-2:]
    kh, kw = min(k[0], h), min(k[1], w)
    win = x.double().unfold(-2, kh, 1).unfold(-2, kw, 1)  # (N, C, Vh, Vw, kh, kw)
    mu = replicate_valid(win.mean(dim=(1, 4, 5))[:, None], h, w)
    var = replicate_valid(win.var(dim=(1, 4, 5), unbiased=False)[:, None], h, w)
    return (x.double() - mu) / torch.sqrt(var + eps)


class FunctionalBlock(nn.Module):
    """Each functional form once, plus uses of ``mean`` that are no site. With
    ``ref_kernel`` set, the same block computed with brute-force local windows."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.fc = nn.Conv2d(c, c, 1)
        self.weight = nn.Parameter(torch.rand(c) + 0.5)
        self.bias = nn.Parameter(torch.rand(c) - 0.5)
        self.ref_kernel: tuple[int, int] | None = None
        self.energy = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        k = self.ref_kernel
        if k is None:
            a = y.mean((2, 3), keepdim=True)
            g = torch.mean(y, dim=[-2, -1], keepdim=True)
            p = F.adaptive_avg_pool2d(y, 1)
        else:
            a = g = p = brute_local_mean(y, k).to(y.dtype)
        u = y * torch.sigmoid(self.fc(a)) + g - 0.5 * p
        if k is None:
            z = F.instance_norm(u, weight=self.weight, bias=self.bias)
            z = F.layer_norm(z, z.shape[1:])
        else:
            z = brute_local_instance_norm(u, k, self.weight, self.bias).to(u.dtype)
            z = brute_local_layer_norm(z, k).to(z.dtype)
        gate = torch.sigmoid(z.mean(1, keepdim=True))  # over channels: no site
        gate = gate + 0.1 * z.mean(dim=(1, 3), keepdim=True)  # channels and columns: no site
        self.energy = (z**2).mean().detach()  # over everything (a loss-like scalar): no site
        tokens = z.flatten(2).transpose(1, 2)  # (N, HW, C)
        t = F.layer_norm(tokens, tokens.shape[-1:]).mean(1)  # channel LN, 3-D mean: no sites
        return x + z * gate + 0.01 * t[:, :, None, None]


class FunctionalNet(nn.Module):
    def __init__(self, c: int = 6) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.block = FunctionalBlock(c)
        self.tail = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.block(self.head(x)))


EXPECTED = {
    "block#mean0": "se",
    "block#mean1": "se",
    "block#adaptive_avg_pool2d0": "se",
    "block#instance_norm0": "in",
    "block#layer_norm0": "in",
}


def _net() -> FunctionalNet:
    torch.manual_seed(0)
    return FunctionalNet().double().eval()


def test_functional_sites_are_found_and_nothing_else():
    net = _net()
    x = torch.rand(2, 3, 29, 31, dtype=torch.float64)
    before = net(x)
    names = attach_functional_sites(net, size=TRAIN)
    assert sorted(names) == sorted(EXPECTED)
    assert {s.name: s.kind for s in list_sites(net)} == EXPECTED
    assert all(s.functional for s in list_sites(net))
    assert torch.equal(net(x), before)  # the proxies compute the very calls
    assert attach_functional_sites(net) == names  # idempotent
    order = find_sites(net)
    assert [s.name for s in order] == [
        "block#mean0",
        "block#mean1",
        "block#adaptive_avg_pool2d0",
        "block#instance_norm0",
        "block#layer_norm0",
    ]
    assert net.state_dict().keys() == _net().state_dict().keys()


@pytest.mark.parametrize("name", sorted(available()))
def test_zoo_models_have_no_functional_site_and_are_left_untouched(name):
    # HINet's F.instance_norm is its nn.InstanceNorm2d's own call, Restormer's means are
    # over the channels of (N, HW, C) tokens: none of them is a functional site
    model = build(name, "tiny")
    assert attach_functional_sites(model, size=64) == []
    assert not hasattr(model, ROUTER_ATTR)
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


def test_converted_functional_model_equals_brute_force_on_odd_sizes():
    net = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no site left global, none unreached
        tlc = convert(net, train_size=TRAIN)
    assert tlc.state_dict().keys() == net.state_dict().keys()
    kinds = {s.name: (s.kind, s.local) for s in list_sites(tlc)}
    assert kinds == {n: (k, True) for n, k in EXPECTED.items()}
    ref = copy.deepcopy(net)
    ref.block.ref_kernel = KERNEL
    for size in [(45, 37), (37, 53)]:
        x = torch.rand(2, 3, *size, dtype=torch.float64)
        got, want = tlc(x), ref(x)
        assert torch.allclose(got, want, atol=1e-9), (got - want).abs().max()
        assert not torch.allclose(got, net(x), atol=1e-3)  # local differs from global
    x = torch.rand(2, 3, TRAIN, TRAIN, dtype=torch.float64)
    assert torch.allclose(tlc(x), net(x), atol=1e-12)  # the original at train size


def test_converted_functional_model_backpropagates_and_deepcopies():
    tlc = convert(_net(), train_size=TRAIN)
    x = torch.rand(1, 3, 41, 39, dtype=torch.float64, requires_grad=True)
    tlc(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    twin = copy.deepcopy(tlc)
    y = torch.rand(1, 3, 41, 39, dtype=torch.float64)
    assert torch.equal(twin(y), tlc(y))
    twin.block.conv.weight.data.add_(1.0)  # the copy routes through its own modules
    assert not torch.allclose(twin(y), tlc(y))


def test_probe_records_every_functional_site_locally_and_globally():
    net = _net()
    tlc = convert(net, train_size=TRAIN)
    x = torch.rand(2, 3, 45, 37, dtype=torch.float64)
    with Probe(tlc, positions=4) as probe:
        tlc(x)
    df = probe.take(["a", "b"])
    assert set(df.site) == set(EXPECTED)
    assert df.y.notna().all() and df.x.notna().all()  # every record local (y, x)
    assert set(df[df.kind == "in"].stat) == {"mean", "std"}

    seen = []
    probe = Probe(net)
    hook = net.block.conv.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
    with probe:
        net(x)
    hook.remove()
    df = probe.take(["a", "b"])
    assert df.y.isna().all()
    got = df[(df.site == "block#mean0") & (df["sample"] == "b")].sort_values("channel")
    want = seen[0][1].mean(dim=(-2, -1)).float().numpy()
    assert got.value.to_numpy() == pytest.approx(want, rel=1e-6)


class VectorMean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.conv(x)
        v = y.mean(dim=(2, 3))  # (N, C): a site, but no map can take its place
        return y * torch.sigmoid(self.fc(v)).view(-1, 4, 1, 1)


def test_a_vector_mean_is_a_site_reported_by_name():
    net = VectorMean().eval()
    assert attach_functional_sites(copy.deepcopy(net), size=TRAIN) == ["#mean0"]
    with pytest.raises(ValueError, match=r"keepdim=False.*#mean0.*skip="):
        convert(net, train_size=TRAIN)


class HandMadeMean(nn.Module):
    """A spatial mean no rule recognises (sum / count)."""

    def forward(self, x):
        return x.sum(dim=(2, 3), keepdim=True) / (x.shape[-2] * x.shape[-1])


class HandMadeNorm(nn.Module):
    """Instance norm written out by hand, with a per-channel affine."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(c) + 0.5)
        self.bias = nn.Parameter(torch.rand(c))
        self.eps = 1e-5

    def forward(self, x):
        mu = x.sum(dim=(2, 3), keepdim=True) / (x.shape[-2] * x.shape[-1])
        var = ((x - mu) ** 2).sum(dim=(2, 3), keepdim=True) / (x.shape[-2] * x.shape[-1])
        y = (x - mu) / torch.sqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class Declared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.pool = HandMadeMean()
        self.norm = HandMadeNorm(5)
        self.unused = HandMadeMean()
        self.maxpool = nn.AdaptiveMaxPool2d(1)
        self.tail = nn.Conv2d(5, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        y = self.norm(y * torch.sigmoid(self.pool(y)))
        return self.tail(y + 0.1 * self.maxpool(y))


def test_declared_sites_convert_and_match_brute_force():
    torch.manual_seed(1)
    net = Declared().double().eval()
    assert list_sites(net) == []  # no rule recognises them
    sites = {"pool": "se", "norm": "in"}
    tlc = convert(net, train_size=TRAIN, sites=sites)
    assert tlc.state_dict().keys() == net.state_dict().keys()
    assert {s.name: s.local for s in list_sites(tlc)} == {"pool": True, "norm": True}
    x = torch.rand(2, 3, 43, 39, dtype=torch.float64)
    y = net.conv(x)
    ref_y = y * torch.sigmoid(brute_local_mean(y, KERNEL))
    ref = brute_local_instance_norm(ref_y, KERNEL, net.norm.weight, net.norm.bias)
    want = net.tail(ref + 0.1 * net.maxpool(ref))
    assert torch.allclose(tlc(x), want, atol=1e-9)
    small = torch.rand(1, 3, TRAIN, TRAIN, dtype=torch.float64)
    assert torch.allclose(tlc(small), net(small), atol=1e-12)

    with Probe(net, extra_sites=sites) as probe:
        net(x)
    assert set(probe.take(["a", "b"]).site) == {"pool", "norm"}


def test_declared_sites_are_checked():
    net = Declared().eval()
    with pytest.raises(ValueError, match="not a submodule"):
        convert(net, train_size=TRAIN, sites={"nope": "se"})
    with pytest.raises(ValueError, match="declared site 'pool' has the unknown kind 'mean'"):
        convert(net, train_size=TRAIN, sites={"pool": "mean"})
    with pytest.raises(ValueError, match=r"never reached.*unused"):
        convert(net, train_size=TRAIN, sites={"unused": "se"})
    with pytest.raises(ValueError, match=r"never reached.*unused"):
        Probe(net, extra_sites={"unused": "se"})
    with pytest.raises(ValueError, match=r"declared sites \['maxpool'\] do not compute"):
        convert(net, train_size=TRAIN, sites={"maxpool": "se"})


def test_reliance_freezes_functional_sites():
    # Frozen to the statistics the single image itself has, nothing changes (the frozen
    # instance / layer norms rebuild their moments from the per-channel ones). Frozen to
    # another image's: the instance norm matters; the three means do not, by
    # construction (they scale or shift each channel by a constant, which the instance
    # norm after them removes), nor does the layer norm (its input, the instance norm's
    # output, has the same per-channel moments in every image).
    net = _net().float()
    gen = torch.Generator().manual_seed(3)
    items = [
        {"input": torch.rand(3, 29, 33, generator=gen), "target": torch.rand(3, 29, 33), "id": i}
        for i in range(2)
    ]
    own = reliance(net, items[:1])
    assert set(own.site) == set(EXPECTED) | {"all"}
    assert own.mean_abs_delta.max() < 1e-5
    other = reliance(net, items[:1], reference=items[1:]).set_index("site").mean_abs_delta
    assert other["block#instance_norm0"] > 1e-3 and other["all"] > 1e-3
    cancelled = ["block#mean0", "block#mean1", "block#adaptive_avg_pool2d0", "block#layer_norm0"]
    assert other[cancelled].max() < 1e-4, other


class ScalesItsInput(nn.Module):
    """Multiplies its input in place (as spandrel's RCAN does with ``x *= rgb_range``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(4, 4, 1)
        self.tail = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        x *= 2.0
        y = self.conv(x)
        return self.tail(y * torch.sigmoid(self.fc(self.pool(y))))


def test_a_model_that_scales_its_input_in_place_converts():
    # every calibration pass gets a fresh copy of the input; with one shared input the
    # second pass saw 2x the first and the pool was reported unsafe
    net = ScalesItsInput().eval()
    tlc = convert(net, train_size=TRAIN)
    assert {s.name: s.local for s in list_sites(tlc)} == {"pool": True}
    x = torch.rand(1, 3, TRAIN, TRAIN)
    with torch.no_grad():
        assert torch.allclose(tlc(x.clone()), net(x.clone()), atol=1e-6)


class EinopsPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.squeeze = Reduce("b c h w -> b c 1 1", "mean")  # calls torch.mean itself
        self.tail = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        return self.tail(y * torch.sigmoid(self.squeeze(y)))


def test_a_proxy_lost_by_copying_is_found_again():
    net = EinopsPool().eval()
    assert attach_functional_sites(net, size=TRAIN) == ["squeeze#mean0"]
    twin = copy.deepcopy(net)  # einops rebuilds its layers from the recipe: no proxy
    assert "#mean0" not in twin.squeeze._modules
    assert attach_functional_sites(twin, size=TRAIN) == ["squeeze#mean0"]
    assert "#mean0" in twin.squeeze._modules
    # einops reduces with keepdim=False and reshapes: a vector, so convert (which copies
    # the model and so has to find the call again) names it
    with pytest.raises(ValueError, match=r"keepdim=False.*squeeze#mean0"):
        convert(net, train_size=TRAIN)
    tlc = convert(_net(), train_size=TRAIN)
    del tlc.block._modules["#mean1"]  # a converted model that lost a local proxy
    with pytest.warns(UserWarning, match="lost"):
        assert "block#mean1" in attach_functional_sites(tlc, size=TRAIN)


def test_an_interrupted_forward_leaves_no_mode_behind():
    tlc = convert(_net(), train_size=TRAIN)
    modes = torch.overrides._get_current_function_mode_stack

    def interrupt(*_):
        raise KeyboardInterrupt  # not an Exception: always-called hooks do not run

    hook = tlc.block.conv.register_forward_hook(interrupt)
    x = torch.rand(1, 3, 40, 40, dtype=torch.float64)
    with pytest.raises(KeyboardInterrupt):
        tlc(x)
    assert len(modes()) == 1  # stale until the root is called again
    hook.remove()
    tlc(x)
    assert modes() == []
    assert convert_ok_after(tlc, x)
    with pytest.raises(RuntimeError):  # an ordinary exception ends the pass at once
        tlc(torch.rand(1, 5, 40, 40, dtype=torch.float64))
    assert modes() == []


def convert_ok_after(tlc, x) -> bool:
    ref = copy.deepcopy(_net())
    ref.block.ref_kernel = KERNEL
    return torch.allclose(tlc(x), ref(x), atol=1e-9)


def test_a_declared_pool_in_a_linear_se_block_runs_its_linears_per_position():
    from toy_models import LinearSE, ToyNet

    from tlc_probe.tlc.se import LocalLinearSE

    model = ToyNet(se_block=LinearSE).eval()
    tlc = convert(model, train_size=32, sites={"ca1.pool": "se"})
    assert isinstance(tlc.ca1, LocalLinearSE)
    with torch.no_grad():
        assert tlc(torch.rand(1, 3, 70, 58)).shape == (1, 3, 70, 58)


class GCBlock(nn.Module):
    """GCNet's global-context block: a softmax-weighted context (1 x 1), transformed by
    conv -> LayerNorm([C // 4, 1, 1]) -> ReLU -> conv and added back; then an SE pool
    written as ``x.mean((2, 3), keepdim=True)``."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.mask = nn.Conv2d(c, 1, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(c, c // 4, 1),
            nn.LayerNorm([c // 4, 1, 1]),
            nn.ReLU(),
            nn.Conv2d(c // 4, c, 1),
        )
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.tail = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        f = self.head(x)
        n, c, h, w = f.shape
        weights = self.mask(f).view(n, 1, h * w).softmax(-1)
        context = (f.view(n, c, h * w) * weights).sum(-1).view(n, c, 1, 1)
        f = f + self.transform(context)
        return self.tail(f * torch.sigmoid(f.mean((2, 3), keepdim=True)))


def test_a_norm_on_a_one_pixel_map_is_no_site():
    model = GCBlock().eval()
    sites = find_sites(model, size=32)
    assert [(s.name, s.kind) for s in sites] == [("#mean0", "se")]  # no transform.1#layer_norm0
    tlc = convert(model, train_size=32)
    x = torch.rand(1, 3, 40, 72)
    with torch.no_grad():
        ref = model(x)  # the layer norm, global on 1 x 1 anyway, is untouched
        assert tlc(x).shape == ref.shape and not torch.allclose(tlc(x), ref)
    with Probe(tlc) as probe, torch.no_grad():
        tlc(x)
    rows = probe.take(["img"])
    assert set(rows["site"]) == {"#mean0"} and set(rows["stat"]) == {"mean"}
