"""Probe and sites: recorded statistics against hooks and brute-force window means."""

import numpy as np
import pytest
import torch
from torch import nn
from toy_models import ToyNet

from tlc_probe import convert
from tlc_probe.cli.collect import parse_depths
from tlc_probe.models import build
from tlc_probe.probe import Probe, grid_starts
from tlc_probe.sites import execution_order, select_sites
from tlc_probe.tlc.box import fast_error_bound


def _toy():
    torch.manual_seed(0)
    return ToyNet().eval()


def _inputs_by_hand(model, sites, x):
    """The input of each named site, gathered with plain forward pre-hooks (float64)."""
    got = {}
    mods = dict(model.named_modules())
    handles = [
        mods[s].register_forward_pre_hook(
            lambda _m, a, s=s: got.setdefault(s, []).append(a[0].detach().double())
        )
        for s in sites
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return {s: torch.cat(v) for s, v in got.items()}


class Unused(nn.Module):
    """An InstanceNorm defined but never called (as in SPDNet), and one that runs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.used = nn.InstanceNorm2d(4)
        self.dead = nn.InstanceNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = self.used(self.conv(x))
        return y * self.pool(y)


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return x * self.pool(x) * self.pool(2 * x)


def test_sites_depth_order_and_never_executed():
    sites = execution_order(Unused())
    assert [(s.name, s.kind, s.depth) for s in sites] == [
        ("used", "in", 0),
        ("pool", "se", 1),
        ("dead", "in", None),
    ]
    probe = Probe(Unused())
    assert probe.never_run == ["dead"]
    assert [s.name for s in probe.sites] == ["used", "pool"]


def test_sites_keep_names_and_depths_after_convert():
    model = _toy()
    tlc = convert(model, train_size=32)
    a = [(s.name, s.kind, s.depth, s.local) for s in execution_order(model)]
    b = [(s.name, s.kind, s.depth, s.local) for s in execution_order(tlc)]
    assert [t[:3] for t in a] == [t[:3] for t in b]
    assert not any(t[3] for t in a) and all(t[3] for t in b)
    assert [t[2] for t in a] == list(range(len(a)))


def test_select_by_kind_pattern_depth_and_errors():
    sites = execution_order(_toy())
    assert {s.kind for s in select_sites(sites, kinds="se")} == {"se"}
    assert all(s.depth <= 1 for s in select_sites(sites, depths=(None, 1)))
    names = [s.name for s in sites]
    assert [s.name for s in select_sites(sites, names=[names[0]])] == [names[0]]
    with pytest.raises(ValueError, match="matches no site.*" + names[0].replace(".", r"\.")):
        select_sites(sites, names=["nope.*"])
    with pytest.raises(ValueError, match="kinds must be"):
        select_sites(sites, kinds=("bn",))
    assert parse_depths("2:5") == (2, 5) and parse_depths(":3") == (None, 3)
    assert parse_depths("4") == (4, 4) and parse_depths(None) is None


def test_whole_means_and_stds_equal_hand_computed_hook_values():
    model = build("hinet", "tiny").eval()  # instance norm (mean, std) sites
    x = torch.rand(2, 3, 72, 88, generator=torch.Generator().manual_seed(1))
    with Probe(model) as probe:
        with torch.no_grad():
            model(x)
    df = probe.take(["a", "b"])
    ref = _inputs_by_hand(model, [s.name for s in probe.sites], x)
    assert df["y"].isna().all() and df["x"].isna().all()
    for s in probe.sites:
        inp = ref[s.name]
        for stat, want in (("mean", inp.mean((2, 3))), ("std", inp.std((2, 3), correction=0))):
            if stat == "std" and s.kind != "in":
                continue
            rows = df[(df.site == s.name) & (df.stat == stat)].sort_values(["sample", "channel"])
            got = rows["value"].to_numpy().reshape(2, -1)
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    n_ch = {s.name: ref[s.name].shape[1] for s in probe.sites}
    n_stats = {s.name: 2 if s.kind == "in" else 1 for s in probe.sites}
    assert len(df) == sum(2 * n_ch[s] * n_stats[s] for s in n_ch)


def test_se_sites_of_nafnet_recorded():
    model = build("nafnet", "tiny").eval()
    x = torch.rand(1, 3, 64, 64)
    with Probe(model, kinds="se") as probe, torch.no_grad():
        model(x)
    df = probe.take(["img"])
    ref = _inputs_by_hand(model, [s.name for s in probe.sites], x)
    assert set(df["stat"]) == {"mean"} and set(df["kind"]) == {"se"}
    for name, inp in ref.items():
        got = df[df.site == name].sort_values("channel")["value"].to_numpy()
        np.testing.assert_allclose(got, inp.mean((2, 3))[0].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fast", [False, True])
def test_tlc_local_means_equal_brute_force_windows(fast):
    model = _toy()
    tlc = convert(model, train_size=32, mode="fast" if fast else "exact")
    x = torch.rand(1, 3, 112, 144, generator=torch.Generator().manual_seed(2))
    x[..., 60:, :] = x[..., 60:, :] * 0.2 + 0.5  # statistics that vary over the map
    positions = 5
    with Probe(tlc, positions=positions) as probe, torch.no_grad():
        tlc(x)
    df = probe.take(["img"])
    ref = _inputs_by_hand(tlc, [s.name for s in probe.sites], x)
    mods = dict(tlc.named_modules())
    for s in probe.sites:
        inp = ref[s.name][0]  # (C, H, W) float64
        (kh, kw), (h, w) = mods[s.name].kernel_size, inp.shape[-2:]
        kh, kw = min(kh, h), min(kw, w)
        top, left = (kh - 1) // 2, (kw - 1) // 2
        for stat in ("mean", "std") if s.kind == "in" else ("mean",):
            rows = df[(df.site == s.name) & (df.stat == stat)]
            assert rows["y"].notna().all()
            ny, nx = (
                len(grid_starts(h - kh + 1, positions)),
                len(grid_starts(w - kw + 1, positions)),
            )
            assert len(rows) == inp.shape[0] * ny * nx
            assert rows[["y", "x"]].drop_duplicates().shape[0] == ny * nx
            for r in rows.itertuples():
                win = inp[r.channel, r.y - top : r.y - top + kh, r.x - left : r.x - left + kw]
                assert win.shape == (kh, kw)
                want = float(win.mean() if stat == "mean" else win.std(correction=0))
                if not fast:
                    assert abs(r.value - want) < 1e-5, (s.name, stat, r)
                elif stat == "mean":
                    rng = float(inp[r.channel].max() - inp[r.channel].min())
                    bound = fast_error_bound((kh, kw), mods[s.name].strides((h, w)))
                    assert abs(r.value - want) <= bound * rng + 1e-6


def test_row_count_is_sites_samples_channels_positions():
    model = _toy()
    tlc = convert(model, train_size=32)
    x = torch.rand(3, 3, 96, 96)
    with Probe(tlc, positions=4) as probe, torch.no_grad():
        tlc(x)
    df = probe.take(["a", "b", "c"])
    ref = _inputs_by_hand(tlc, [s.name for s in probe.sites], x)
    mods = dict(tlc.named_modules())
    want = 0
    for s in probe.sites:
        c, h, w = ref[s.name].shape[1:]
        kh, kw = (min(k, n) for k, n in zip(mods[s.name].kernel_size, (h, w), strict=True))
        p = min(4, h - kh + 1) * min(4, w - kw + 1)
        want += 3 * c * p * (2 if s.kind == "in" else 1)
    assert len(df) == want
    assert set(df["sample"]) == {"a", "b", "c"}


def test_hooks_removed_on_exit_and_on_exception():
    model = _toy()

    def n_hooks():
        return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())

    before = n_hooks()
    probe = Probe(model)
    with pytest.raises(RuntimeError, match="boom"):
        with probe:
            assert n_hooks() == before + len(probe.sites) + 1  # + the pass counter
            model(torch.rand(1, 3, 32, 32))
            raise RuntimeError("boom")
    assert n_hooks() == before and not probe.active
    with probe:
        pass
    assert n_hooks() == before


def test_take_checks_sample_count():
    model = _toy()
    with Probe(model) as probe, torch.no_grad():
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="2 samples went through the model, 3 ids given"):
        probe.take(["a", "b", "c"])
    assert probe.pending() == 0  # cleared after the error


def test_site_called_twice_gives_one_row_block_per_call():
    twice = Twice()
    x = torch.rand(2, 3, 8, 8)
    with Probe(twice) as p, torch.no_grad():
        twice(x)
    df = p.take(["a", "b"]).sort_values(["sample", "channel"])
    assert sorted(set(df["sample"])) == ["a/part0", "a/part1", "b/part0", "b/part1"]
    want = {"a/part0": x[0], "b/part0": x[1], "a/part1": 2 * x[0], "b/part1": 2 * x[1]}
    for sample, inp in want.items():
        got = df[df["sample"] == sample]["value"].to_numpy()
        np.testing.assert_allclose(got, inp.mean((1, 2)).numpy(), rtol=1e-6)


def test_mprnet_stage1_quarter_patches_are_parts():
    model = build("mprnet", "tiny").eval()
    x = torch.rand(2, 3, 64, 64)
    with Probe(model, kinds="se") as probe, torch.no_grad():
        model(x)
    df = probe.take(["a", "b"])
    ref = _inputs_by_hand(model, [s.name for s in probe.sites], x)
    for s in probe.sites:
        inp = ref[s.name]  # every call's input, in call order
        k = inp.shape[0] // 2
        rows = df[df.site == s.name]
        assert rows["sample"].nunique() == 2 * k
        for j in range(k):
            for i, name in enumerate(["a", "b"]):
                sample = name if k == 1 else f"{name}/part{j}"
                got = rows[rows["sample"] == sample].sort_values("channel")["value"].to_numpy()
                want = inp[j * 2 + i].mean((1, 2)).numpy()
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert {int(inp.shape[0]) // 2 for inp in ref.values()} >= {1, 4}  # stage 1 runs 4 times


def test_local_std_where_the_mean_dwarfs_the_spread():
    # Flat halves at -100 and +100 with noise 0.01: float32 E[x^2] - E[x]^2 would lose
    # every digit of the variance; the probe repeats the module's float64 fallback.
    model = convert(nn.Sequential(nn.InstanceNorm2d(3)).eval(), train_size=30)
    x = torch.randn(1, 3, 60, 90, generator=torch.Generator().manual_seed(5)) * 0.01
    x[..., 45:] += 100
    x[..., :45] -= 100
    with Probe(model, positions=6) as probe, torch.no_grad():
        model(x)
    rows = probe.take(["img"]).query("stat == 'std'")
    (kh, kw), xd = model[0].kernel_size, x[0].double()
    top, left = (kh - 1) // 2, (kw - 1) // 2
    flat = 0
    for r in rows.itertuples():
        want = float(
            xd[r.channel, r.y - top : r.y - top + kh, r.x - left : r.x - left + kw].std(
                correction=0
            )
        )
        flat += want < 0.1
        assert abs(r.value - want) <= 1e-4 + 1e-3 * want, (r, want)
    assert flat >= 18  # windows inside one half, where the cancellation bites
