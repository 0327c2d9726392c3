"""convert(): calibration, windows, weights, safety checks and bad input."""

import warnings

import pytest
import torch
from reference import brute_local_instance_norm, brute_local_mean
from torch import nn
from toy_models import CALayer, HalfIN, LinearSE, ToyNet, ViewSE

from tlc_probe import LocalAvgPool2d, LocalInstanceNorm2d, convert, list_sites, tlc_windows
from tlc_probe.tlc.se import LocalLinearSE


def _eval(m):
    return m.eval()


def test_same_output_at_train_size_and_below_base_size():
    model = _eval(ToyNet())
    tlc = convert(model, train_size=(32, 32))
    with torch.no_grad():
        for size in [(32, 32), (40, 44), (48, 48), (17, 23)]:
            x = torch.rand(2, 3, *size)
            assert torch.allclose(tlc(x), model(x), atol=1e-6), size


def test_differs_from_global_on_large_input():
    model = _eval(ToyNet())
    tlc = convert(model, train_size=32)
    x = torch.rand(1, 3, 96, 128)
    x[..., :, 64:] *= 0.3  # different statistics left and right
    with torch.no_grad():
        assert (tlc(x) - model(x)).abs().max() > 1e-3


def test_windows_follow_feature_size_times_base_over_train():
    tlc = convert(_eval(ToyNet()), train_size=(32, 48))
    windows = {s["name"]: (s["feature_size"], s["kernel_size"]) for s in tlc_windows(tlc)}
    assert windows == {
        "enc.norm": ((32, 48), (48, 72)),
        "ca1.avg_pool": ((32, 48), (48, 72)),
        "mid.norm": ((16, 24), (24, 36)),
        "ca2.avg_pool": ((16, 24), (24, 36)),
    }
    tlc = convert(_eval(ToyNet()), train_size=32, base_size=40)
    assert {s["name"]: s["kernel_size"] for s in tlc_windows(tlc)}["mid.norm"] == (20, 20)


def test_state_dict_unchanged_and_input_untouched():
    model = _eval(ToyNet())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tlc = convert(model, train_size=32)
    assert tlc is not model
    assert isinstance(model.enc.norm, nn.InstanceNorm2d)
    assert not isinstance(model.enc.norm, LocalInstanceNorm2d)
    assert isinstance(model.ca1.avg_pool, nn.AdaptiveAvgPool2d)
    assert isinstance(tlc.enc.norm, LocalInstanceNorm2d)
    assert isinstance(tlc.ca2.avg_pool, LocalAvgPool2d)
    sd = tlc.state_dict()
    assert list(sd) == list(before)
    assert all(torch.equal(sd[k], before[k]) for k in before)
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)
    # A checkpoint of the original loads strictly into the converted model.
    tlc.load_state_dict(before, strict=True)


def test_inplace_and_training_mode():
    model = ToyNet().train()
    out = convert(model, train_size=32, inplace=True)
    assert out is model and isinstance(model.mid.norm, LocalInstanceNorm2d)
    assert model.training and model.mid.norm.training


def test_local_pool_site_equals_bruteforce_on_large_input():
    model = _eval(CALayer(6))
    tlc = convert(model, train_size=32, in_channels=6)
    x = torch.randn(2, 6, 70, 90)
    with torch.no_grad():
        ref = x.double() * model.conv_du.double()(brute_local_mean(x, (48, 48)))
        got = tlc(x)
    assert torch.allclose(got.double(), ref, atol=1e-5)


def test_local_norm_site_equals_bruteforce_on_large_input():
    model = _eval(HalfIN(6))
    tlc = convert(model, train_size=(20, 30), in_channels=6)
    x = torch.randn(1, 6, 64, 80) + 2
    with torch.no_grad():
        y = model.conv1(x)
        a, b = torch.chunk(y, 2, dim=1)
        n = model.norm
        a = brute_local_instance_norm(a, (30, 45), n.weight, n.bias, n.eps).float()
        ref = x + model.conv2(torch.relu(torch.cat([a, b], dim=1)))
        assert torch.allclose(tlc(x), ref, atol=1e-4)


def test_fast_imp_close_to_exact():
    model = _eval(ToyNet())
    exact = convert(model, train_size=32)
    fast = convert(model, train_size=32, mode="fast")
    assert all(s["fast_imp"] for s in tlc_windows(fast))
    with pytest.warns(DeprecationWarning, match="mode='fast'"):
        old = convert(model, train_size=32, fast_imp=True)  # TLC's own name, for one release
    assert all(s["fast_imp"] for s in tlc_windows(old))
    with pytest.raises(ValueError, match="mode must be one of"):
        convert(model, train_size=32, mode="grid")
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 160), indexing="ij")
    x = torch.stack([yy, xx, (yy + xx) / 2])[None]
    with torch.no_grad():
        ref, got = exact(x), fast(x)
    assert float((got - ref).abs().max()) <= 0.05 * float(ref.abs().max())


def test_linear_se_block_runs_its_linear_layers_per_position():
    """A pool flattened into nn.Linear layers: the whole block becomes LocalLinearSE,
    equal to a brute-force local mean fed through the same layers at every position."""
    torch.manual_seed(0)
    model = _eval(ToyNet(se_block=LinearSE))
    with torch.no_grad():
        for p in model.ca1.fc.parameters():
            p.normal_(0, 2)
    tlc = convert(model, train_size=32)
    assert isinstance(tlc.ca1, LocalLinearSE) and isinstance(tlc.ca1.pool, LocalAvgPool2d)
    assert tlc.ca1.pool.kernel_size == (48, 48)
    assert list(tlc.state_dict()) == list(model.state_dict())
    block = tlc.ca1
    x = torch.randn(2, 8, 50, 61)
    with torch.no_grad():
        m = brute_local_mean(x.double(), (48, 48)).float()  # (N, C, H, W)
        gate = model.ca1.fc(m.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert torch.allclose(block(x), x * gate, atol=1e-5)
        small = torch.rand(1, 3, 32, 32)
        assert torch.allclose(tlc(small), model(small), atol=1e-6)


def test_lookalike_linear_se_is_refused_by_name():
    """Pool + Linear layers whose forward is not x * head(pool(x)) (here the gate is
    added): found by the check at train size, named."""

    class AddSE(LinearSE):
        def forward(self, x):
            b, c = x.shape[:2]
            return x + self.fc(self.pool(x).flatten(1)).view(b, c, 1, 1)

    model = _eval(ToyNet(se_block=AddSE))
    with pytest.raises(ValueError, match=r"look like a linear squeeze.*ca1\.pool"):
        convert(model, train_size=32)
    with pytest.warns(UserWarning, match="leaves these"):
        convert(model, train_size=32, skip=["ca1.pool"])


@pytest.mark.parametrize("se_block,name", [(ViewSE, "ca1.pool")])
def test_pool_feeding_flatten_or_view_raises_naming_it(se_block, name):
    model = _eval(ToyNet(se_block=se_block))
    with pytest.raises(ValueError, match=r"ca1\.pool") as err:
        convert(model, train_size=32)
    msg = str(err.value)
    assert "skip=" in msg and "ca2.avg_pool" not in msg  # bisection isolates the bad one
    with pytest.warns(UserWarning, match="leaves these global-aggregation sites global"):
        tlc = convert(model, train_size=32, skip=[name])
    assert isinstance(tlc.ca1.pool, nn.AdaptiveAvgPool2d)
    assert isinstance(tlc.ca2.avg_pool, LocalAvgPool2d)
    with torch.no_grad():
        assert tlc(torch.rand(1, 3, 100, 120)).shape == (1, 3, 100, 120)


def test_partial_conversion_warns():
    model = _eval(ToyNet())
    with pytest.warns(UserWarning, match=r"enc\.norm.*mid\.norm"):
        tlc = convert(model, train_size=32, kinds=("se",))
    assert not isinstance(tlc.enc.norm, LocalInstanceNorm2d)
    with pytest.warns(UserWarning, match=r"ca2\.avg_pool"):
        convert(model, train_size=32, skip=["ca2.*"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert(model, train_size=32)  # all sites: no warning


def test_shared_module_replaced_everywhere():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.ca = CALayer(4, reduction=2)
            self.again = self.ca

        def forward(self, x):
            return self.again(self.ca(self.conv(x)))

    tlc = convert(_eval(Shared()), train_size=16)
    assert isinstance(tlc.ca.avg_pool, LocalAvgPool2d) and tlc.again is tlc.ca


def test_no_site_raises():
    with pytest.raises(ValueError, match="no global-aggregation site"):
        convert(nn.Conv2d(3, 3, 3), train_size=16)


def test_site_not_reached_is_left_with_a_warning():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.small = nn.InstanceNorm2d(3)
            self.large = nn.InstanceNorm2d(3)

        def forward(self, x):
            return self.large(x) if x.shape[-1] > 100 else self.small(x)

    with pytest.warns(UserWarning, match=r"never called.*left as they are.*'large'"):
        tlc = convert(Branchy(), train_size=32)
    assert isinstance(tlc.small, LocalInstanceNorm2d)
    assert type(tlc.large) is nn.InstanceNorm2d


def test_site_called_at_two_sizes_raises():
    class TwoScales(nn.Module):
        def __init__(self):
            super().__init__()
            self.ca = CALayer(4, reduction=2)
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            y = self.ca(self.conv(x))
            return y + nn.functional.interpolate(self.ca(y[..., ::2, ::2]), scale_factor=2)

    with pytest.raises(ValueError, match=r"several feature sizes.*ca\.avg_pool"):
        convert(TwoScales(), train_size=32)


def test_bad_arguments():
    model = _eval(ToyNet())
    with pytest.raises(ValueError, match="match no site"):
        convert(model, train_size=32, skip=["nothing.*"])
    with pytest.raises(ValueError, match="kinds"):
        convert(model, train_size=32, kinds=("bn",))
    with pytest.raises(ValueError, match="train_size"):
        convert(model, train_size=(0, 32))
    with pytest.raises(ValueError, match="train_size"):
        convert(model, train_size="big")
    with pytest.raises(ValueError, match="calibration forward pass"):
        convert(model, train_size=32, in_channels=5)
    with pytest.raises(ValueError, match="already TLC-converted"):
        convert(convert(model, train_size=32), train_size=32)


def test_list_sites_lists_kinds_in_order():
    sites = list_sites(ToyNet())
    assert [(s.name, s.kind) for s in sites] == [
        ("enc.norm", "in"),
        ("ca1.avg_pool", "se"),
        ("mid.norm", "in"),
        ("ca2.avg_pool", "se"),
    ]
    assert [s.name for s in list_sites(ToyNet(), kinds="in")] == ["enc.norm", "mid.norm"]
    # Running-stats instance norm uses stored statistics: not a site.
    assert list_sites(nn.InstanceNorm2d(3, track_running_stats=True)) == []


def test_failed_check_leaves_an_inplace_model_untouched():
    class AddSE(LinearSE):
        def forward(self, x):
            b, c = x.shape[:2]
            return x + self.fc(self.pool(x).flatten(1)).view(b, c, 1, 1)

    model = _eval(ToyNet(se_block=AddSE))
    before = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match="look like"):
        convert(model, train_size=32, inplace=True)
    assert [type(m) for m in model.modules()] == before  # nothing replaced, not even the INs
    with pytest.warns(UserWarning, match="leaves these"):
        convert(model, train_size=32, inplace=True, skip=["ca1.pool"])  # a retry works


def test_linear_se_with_dropout_converts_in_train_mode():
    model = ToyNet(se_block=LinearSE)
    model.ca1.fc.insert(2, nn.Dropout(0.5))
    model.train()
    tlc = convert(model, train_size=32)
    assert isinstance(tlc.ca1, LocalLinearSE) and tlc.training


def test_fast_mode_without_a_grid_head_target_is_silent_and_no_site_left_raises():
    model = _eval(ToyNet(se_block=LinearSE))
    with warnings.catch_warnings(record=True) as caught:  # the grid head is automatic
        warnings.simplefilter("always")
        convert(model, train_size=32, kinds=("se",), skip=["ca2.*"], mode="fast")
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and "leaves these global-aggregation sites global" in said[0]

    class Dead(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.InstanceNorm2d(3)
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            return x * self.pool(x)

    with pytest.raises(ValueError, match="never called"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert(Dead(), train_size=16, kinds=("in",))
