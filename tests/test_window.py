"""The window regime and the decomposition of a shift into content, context and
aggregation, on constructed models whose answer is known."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from torch import nn

from tlc_probe.jobs.collect import CollectConfig, collect
from tlc_probe.metrics import decomposition, relied_on, shift_table, summary
from tlc_probe.metrics.shift import comparisons_for
from tlc_probe.probe import Probe, Window, training_windows, window_starts, window_stats
from tlc_probe.store.read import read_stats
from tlc_probe.tiling import tile_starts


class InputSE(nn.Module):
    """Squeeze-excitation directly on the input: the site's features are the pixels
    themselves, so they cannot depend on context or padding."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return x * torch.sigmoid(self.pool(x))


class PaddedOnes(nn.Module):
    """An instance norm on a 3x3 box filter of a map of ones with zero padding: 1 inside,
    (rows inside / 3) x (columns inside / 3) on the border. Whatever the image, the site
    sees a constant map plus border effects."""

    def __init__(self):
        super().__init__()
        self.box = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.box.weight.fill_(1.0 / 9.0)
        self.norm = nn.InstanceNorm2d(1)

    def forward(self, x):
        return x + self.norm(self.box(torch.ones_like(x[:, :1])))


class Strided(nn.Module):
    """A site at full resolution, one at 1/2 and one at 1/4."""

    def __init__(self):
        super().__init__()
        self.n0 = nn.InstanceNorm2d(3)
        self.d1 = nn.Conv2d(3, 4, 2, stride=2)
        self.n1 = nn.InstanceNorm2d(4, affine=True)
        self.d2 = nn.Conv2d(4, 4, 2, stride=2)
        self.p2 = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = self.d2(self.n1(self.d1(self.n0(x))))
        return (y * self.p2(y)).mean(1, keepdim=True).expand(-1, 3, -1, -1)


class PaddedPooled(nn.Module):
    """Pads its input with zeros to a multiple of 16 at the bottom and right (as NAFNet,
    HINet and MPRNet do), then an SE pool on 4 x 4 block means: the site's features at
    1/4 depend only on the pixels of their block, never on context."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        h, w = x.shape[-2:]
        x = torch.nn.functional.pad(x, (0, -w % 16, 0, -h % 16))
        f = torch.nn.functional.avg_pool2d(x, 4)
        g = f * torch.sigmoid(self.pool(f))
        return torch.nn.functional.interpolate(g, scale_factor=4.0)[..., :h, :w]


def _box_map(h: int, w: int) -> np.ndarray:
    """PaddedOnes's site input, by hand."""

    def axis(n):
        a = np.ones(n)
        a[0] = a[-1] = 2.0 / 3.0
        return a

    return np.outer(axis(h), axis(w))


def _images(n: int, h: int, w: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        ramp = torch.linspace(0, 1, w).view(1, 1, w) * torch.rand(3, 1, 1, generator=g)
        img = (0.6 * ramp + 0.4 * torch.rand(3, h, w, generator=g)).clamp(0, 1)
        items.append({"input": img, "target": img, "id": f"img{i}"})
    return items


def test_window_starts_lie_over_the_tiles():
    # input 92 px, tiles of 32 overlapping by 8: starts 0, 24, 48, 60 (the last one flush
    # with the border); a site at 1/4 (kernel 8) on a map padded to 96 / 4 = 24 rows
    assert tile_starts(92, 32, 8) == [0, 24, 48, 60]
    assert window_starts(24, 8, 32, 8, n_input=92) == [0, 6, 12, 15]  # not 16: padding
    assert window_starts(23, 8, 32, 8, n_input=92) == [0, 6, 12, 15]  # floor(92 / 4)
    # overlaps that do not divide: one window per tile (starts 0, 44, ..., 220, 232),
    # each start / 8 rounded half to even
    assert window_starts(37, 8, 64, 20, n_input=296) == [0, 6, 11, 16, 22, 28, 29]
    assert window_starts(20, 32, 32, 8, n_input=20) == [0]  # map shorter than the window
    # a site on half the input (a part): tiled in its own frame, overlap 8 -> 2 at 1/4
    assert window_starts(12, 8, 32, 8, n_input=96) == [0, 4]


def test_training_windows_scale_with_the_site_resolution():
    windows = training_windows(Strided(), train_size=32, overlap=8)
    assert windows["n0"] == Window((32, 32), (32, 32), (8, 8))
    assert windows["n1"] == Window((16, 16), (32, 32), (8, 8))
    assert windows["p2"] == Window((8, 8), (32, 32), (8, 8))
    with pytest.raises(ValueError, match="below train_size"):
        training_windows(Strided(), train_size=32, overlap=32)


def test_window_stats_match_brute_force():
    x = torch.randn(2, 3, 23, 37, dtype=torch.float64)
    # no input size: the map is tiled in its own frame (here: train = kernel, scale 1)
    stats, ys, xs = window_stats(x, "in", Window((8, 10), (8, 10), (3, 2)))
    rows, cols = tile_starts(23, 8, 3), tile_starts(37, 10, 2)
    a = x.numpy()
    k = 0
    for y0 in rows:
        for x0 in cols:
            patch = a[:, :, y0 : y0 + 8, x0 : x0 + 10]
            np.testing.assert_allclose(stats["mean"][..., k].numpy(), patch.mean((-2, -1)))
            np.testing.assert_allclose(stats["std"][..., k].numpy(), patch.std((-2, -1)))
            assert (int(ys[k]), int(xs[k])) == (y0 + 3, x0 + 4)  # centres
            k += 1
    assert stats["mean"].shape == (2, 3, len(rows) * len(cols))
    se, _, _ = window_stats(x, "se", Window((8, 10), (8, 10), (3, 2)))
    assert set(se) == {"mean"}


def test_window_probe_leaves_the_output_alone_and_records_local_rows():
    torch.manual_seed(0)
    model = Strided().eval()
    x = torch.rand(1, 3, 64, 96)
    ref = model(x)
    windows = training_windows(model, 32, 0)
    with torch.no_grad(), Probe(model, windows=windows) as probe:
        got = model(x)
    assert torch.equal(ref, got)
    df = probe.take(["a"])
    n1 = df[(df["site"] == "n1") & (df["stat"] == "mean")]
    # 1/2 resolution: a 32 x 48 map, 16 x 16 windows without overlap -> 2 x 3 windows,
    # centred at 8 + 16 i (rows) and 8 + 16 j (columns) of the map
    places = n1[["y", "x"]].drop_duplicates().astype(int)
    assert sorted(map(tuple, places.to_numpy())) == [(y, x) for y in (7, 23) for x in (7, 23, 39)]
    assert df["y"].notna().all()
    with pytest.raises(ValueError, match="TLC-converted"):
        from tlc_probe import convert

        Probe(convert(model, 32), windows=windows)


def _decompose(model, tmp_path, size=(96, 128), train=32, overlap=0, n=3):
    test = _images(n, *size, seed=1)
    trainset = _images(2, 160, 160, seed=2)
    cfg = CollectConfig(n_crops=16, crop_batch=8, tile_overlap=overlap, positions=4)
    collect(
        model.eval(),
        tmp_path / "stats",
        model_name="toy",
        task="t",
        train_size=train,
        test_data=test,
        train_data=trainset,
        config=cfg,
        progress=False,
    )
    stats = read_stats(tmp_path / "stats")
    table = shift_table(stats, per_channel=False)
    return stats, table, decomposition(table)


def test_pure_global_mean_of_the_input_has_no_context_shift(tmp_path):
    stats, table, dec = _decompose(InputSE(), tmp_path, overlap=8)
    row = dec.set_index("site").loc["pool"]
    # the windows are the tiles, mapped to the site (here: the same pixels)
    assert row["context_w1"] == pytest.approx(0.0, abs=1e-7)
    assert row["context_share"] == pytest.approx(0.0, abs=1e-5)
    assert row["aggregation_w1"] > 1e-3  # the input varies: whole means != window means
    # the same link computed by scipy from the raw values
    vals = {
        r: g["value"].to_numpy(np.float64)
        for r, g in stats[stats["site"] == "pool"].groupby("regime", observed=True)
    }
    assert row["aggregation_w1"] == pytest.approx(
        scipy.stats.wasserstein_distance(vals["whole"], vals["window"]), rel=1e-9
    )
    total = row["content_w1"] + row["context_w1"] + row["aggregation_w1"]
    assert row["aggregation_share"] == pytest.approx(row["aggregation_w1"] / total)
    shares = row[["content_share", "context_share", "aggregation_share"]].sum()
    assert shares == pytest.approx(1.0)
    # whole~train is bounded by the chain of the three links
    assert row["whole_w1"] <= row["chain_w1"] + 1e-12


def test_padded_model_windows_are_the_tiles_at_reduced_resolution(tmp_path):
    # 92 x 124 is padded to 96 x 128; tiles start on the 4-px block grid (0, 24, 48, 60 and
    # 0, 24, 48, 72, 92), so every tile's 1/4-scale block means are the whole image's
    # block means under it: window == tiles exactly, no context shift
    stats, _, dec = _decompose(PaddedPooled(), tmp_path, size=(92, 124), overlap=8)
    win = stats[(stats["regime"] == "window") & (stats["sample"] == "img0")]
    n_tiles = len(tile_starts(92, 32, 8)) * len(tile_starts(124, 32, 8))
    assert len(win) == 3 * n_tiles  # one window per tile and channel, none on the padding
    row = dec.set_index("site").loc["pool"]
    assert row["context_w1"] == pytest.approx(0.0, abs=1e-7)
    assert row["aggregation_w1"] > 1e-3


def test_constant_map_with_border_effects_is_context_not_aggregation(tmp_path):
    h, w, t = 256, 320, 16
    stats, table, dec = _decompose(PaddedOnes(), tmp_path, size=(h, w), train=t, n=2)
    row = dec[(dec["site"] == "norm") & (dec["stat"] == "mean")].iloc[0]
    # by hand: the whole map, a tile, and the non-overlapping windows of the whole map
    m = _box_map(h, w)
    tile = _box_map(t, t).mean()
    windows = [
        m[y : y + t, x : x + t].mean() for y in tile_starts(h, t, 0) for x in tile_starts(w, t, 0)
    ]
    assert row["context_w1"] == pytest.approx(
        scipy.stats.wasserstein_distance(windows, [tile]), rel=1e-5
    )
    assert row["aggregation_w1"] == pytest.approx(
        scipy.stats.wasserstein_distance([m.mean()], windows), rel=1e-4
    )
    assert row["content_w1"] == pytest.approx(0.0, abs=1e-6)  # images do not matter
    # only the windows along the image border differ from the whole mean, so aggregation's
    # share is small (and shrinks as the image grows); the tiles' own borders are context
    assert row["context_share"] > 0.9
    assert row["aggregation_share"] < 0.1


def test_summary_reports_shares_and_flags_sites_nothing_relies_on(tmp_path):
    _, table, _ = _decompose(InputSE(), tmp_path, overlap=8)
    rel = pd.DataFrame(
        {
            "model": ["toy", "toy"],
            "task": ["t", "t"],
            "site": ["pool", "all"],
            "delta_psnr": [-0.001, -0.001],
        }
    )
    s = summary(table, rel).iloc[0]
    assert s["median_context_share"] == pytest.approx(0.0, abs=1e-5)
    assert s["n_relied"] == 0 and s["flag"] == "output relies on no site"
    assert s["all_frozen_delta_psnr"] == pytest.approx(-0.001)
    s2 = summary(table, rel.assign(delta_psnr=[-0.5, -0.5])).iloc[0]
    assert s2["n_relied"] == 1 and s2["flag"] == ""
    # a site missing from the reliance table is unmeasured, not "not relied on"
    only_all = rel[rel["site"] == "all"].assign(delta_psnr=-1.0)
    s3 = summary(table, only_all).iloc[0]
    assert pd.isna(s3["n_relied"]) and s3["flag"] == "" and s3["all_frozen_delta_psnr"] == -1.0
    assert decomposition(table, only_all)["relied"].isna().all()
    with pytest.raises(ValueError, match="several rows"):
        summary(table, pd.concat([rel, rel]))
    assert "median_context_share" not in summary(table[table["comparison"] == "whole~train"])


def test_relied_on_is_the_threshold_with_unmeasured_left_na():
    got = relied_on(pd.Series([0.0099, -0.01, 0.5, None, float("nan")])).tolist()
    assert got[:3] == [False, True, True]
    assert got[3] is pd.NA and got[4] is pd.NA
    assert relied_on(pd.Series([0.02]), relied_db=0.05).tolist() == [False]


def test_summary_with_the_decomposition_given_is_the_same(tmp_path):
    _, table, _ = _decompose(InputSE(), tmp_path, overlap=8)
    rel = pd.DataFrame(
        {"model": ["toy"] * 2, "task": ["t"] * 2, "site": ["pool", "all"], "delta_psnr": [-0.3] * 2}
    )
    parts = decomposition(table, rel)
    pd.testing.assert_frame_equal(summary(table, rel, parts=parts), summary(table, rel))
    # the given decomposition is what is used: one whose site is not relied on flips n_relied
    quiet = parts.assign(relied=pd.array([False] * len(parts), dtype="boolean"))
    assert summary(table, rel, parts=quiet).iloc[0]["n_relied"] == 0
    assert summary(table, rel).iloc[0]["n_relied"] == 1


def test_tiles_as_reference(tmp_path):
    stats, _, _ = _decompose(InputSE(), tmp_path, overlap=8)
    comps = comparisons_for("tiles")
    assert comps[:4] == ("whole~tiles", "tlc~tiles", "window~tiles", "whole~window")
    assert {"whole~train", "tiles~train"} <= set(comps)  # the decomposition still works
    table = shift_table(stats, comps, per_channel=False)
    w1 = table.set_index("comparison")["w1"]
    # no context at this site: the tiles' means are the windows' means, so comparing the
    # whole image with either gives the same W1
    assert w1["whole~tiles"] == pytest.approx(w1["whole~window"], rel=1e-6)
    s = summary(table, reference="tiles").iloc[0]
    expected = float(w1["tlc~tiles"] / w1["whole~tiles"])
    assert s["n_sites"] == 1 and s["median_w1_ratio"] == pytest.approx(expected)
    assert decomposition(table)["aggregation_share"].notna().all()
    with pytest.raises(ValueError, match="regime name"):
        comparisons_for("whole~train")
