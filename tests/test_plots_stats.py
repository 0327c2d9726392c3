"""Figures from the tidy statistics (tlc_probe.viz.stats), rendered from a small synthetic set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from test_shift import synthetic_stats

from tlc_probe.metrics.shift import shift_table
from tlc_probe.store.figures import save_figure
from tlc_probe.viz import stats as viz_stats


@pytest.fixture(scope="module")
def stats() -> pd.DataFrame:
    return synthetic_stats(tiles=False)


@pytest.fixture(scope="module")
def stats_tiles() -> pd.DataFrame:
    return synthetic_stats(tiles=True)


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def test_fig_a3_panels_and_legends(stats, tmp_path):
    table = shift_table(stats)
    fig = viz_stats.fig_a3(stats, "enc.0.norm", "mean", shift=table)
    axes = fig.axes
    assert len(axes) == 2
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[1])
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    rows = table[(table.site == "enc.0.norm") & (table.stat == "mean") & (table.channel == "all")]
    for ax, regime in zip(axes, ("whole", "tlc"), strict=True):
        texts = _legend_texts(ax)
        assert len(texts) == 2
        assert texts[0].startswith("train")
        assert texts[1].startswith(viz_stats.REGIME_LABELS[regime]) and "W1=" in texts[1]
        row = rows[rows.comparison == f"{regime}~train"].iloc[0]
        assert f"W1={row.w1:.3g}" in texts[1] and f"KL={row.kl:.3g}" in texts[1]
        if np.isfinite(row.w1_lo):  # the interval over images, where there is one
            assert f"[{row.w1_lo:.3g}, {row.w1_hi:.3g}]" in texts[1]
        else:
            assert "[" not in texts[1]
        handles = ax.get_legend().legend_handles
        for handle, name in zip(handles, ("train", regime), strict=True):
            assert to_rgb(handle.get_facecolor()[:3]) == pytest.approx(
                to_rgb(viz_stats.REGIME_COLOURS[name])
            )
    assert "enc.0.norm" in fig._suptitle.get_text() and "hinet-tiny" in fig._suptitle.get_text()
    paths = save_figure(fig, tmp_path, "fig_a3_in")
    assert [p.name for p in paths] == ["fig_a3_in.png", "fig_a3_in.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_fig_a3_computes_shift_itself_and_adds_tiles_panel(stats_tiles):
    fig = viz_stats.fig_a3(stats_tiles, "dec.1.se")
    assert len(fig.axes) == 3
    texts = _legend_texts(fig.axes[2])
    assert texts[1].startswith(viz_stats.REGIME_LABELS["tiles"]) and "W1=" in texts[1]
    assert fig.get_figwidth() == pytest.approx(10.5)  # 3.5 in per panel


def test_fig_a3_rejects_ambiguous_model(stats):
    two = pd.concat([stats, stats.assign(model="nafnet-tiny")], ignore_index=True)
    with pytest.raises(ValueError, match="model"):
        viz_stats.fig_a3(two, "enc.0.norm")
    assert len(viz_stats.fig_a3(two, "enc.0.norm", model="nafnet-tiny").axes) == 2


def test_choose_site_takes_largest_normalised_whole_shift():
    rows = [
        ("a", "in", 0, 0.3),
        ("b", "in", 1, 0.9),
        ("c", "se", 2, 5.0),
        ("d", "in", 3, 0.5),
    ]
    table = pd.DataFrame(
        [
            ("m", "deblur", site, kind, depth, "mean", "all", "whole~train", w)
            for site, kind, depth, w in rows
        ],
        columns=[
            "model",
            "task",
            "site",
            "kind",
            "depth",
            "stat",
            "channel",
            "comparison",
            "w1_norm",
        ],
    )
    decoy = table.assign(comparison="tlc~train", w1_norm=99.0)  # other comparisons ignored
    table = pd.concat([table, decoy], ignore_index=True)
    assert viz_stats.choose_site(table, "in") == "b"
    assert viz_stats.choose_site(table, "se") == "c"
    with pytest.raises(ValueError):
        viz_stats.choose_site(table, "xx")


def test_depth_profile_one_line_per_comparison(stats, stats_tiles, tmp_path):
    for data, comps in ((stats, ["whole~train", "tlc~train"]), (stats_tiles, None)):
        comps = comps or ["whole~train", "tlc~train", "tiles~train"]
        fig = viz_stats.depth_profile(shift_table(data))
        (ax,) = fig.axes
        lines = ax.get_lines()
        assert [ln.get_label() for ln in lines] == comps
        for line, comp in zip(lines, comps, strict=True):
            assert to_rgb(line.get_color()) == to_rgb(viz_stats.REGIME_COLOURS[comp.split("~")[0]])
            np.testing.assert_array_equal(line.get_xdata(), [0, 1])  # depths of the 2 sites
    paths = save_figure(fig, tmp_path, "depth_profile")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_heatmap_rows_are_sites_by_depth(stats_tiles, tmp_path):
    table = shift_table(stats_tiles)
    fig = viz_stats.heatmap(table, "hinet-tiny", stat="mean")
    ax = fig.axes[0]
    mesh = ax.collections[0]
    assert mesh.get_coordinates().shape[:2] == (2 + 1, 3 + 1)  # 2 sites x 3 comparisons
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["enc.0.norm (in)", "dec.1.se (se)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "whole~train",
        "tlc~train",
        "tiles~train",
    ]
    annotations = [t.get_text() for t in ax.texts]
    assert len(annotations) == 2 * 3
    w = table.set_index(["site", "stat", "channel", "comparison"]).w1_norm
    assert annotations[0] == f"{w[('enc.0.norm', 'mean', 'all', 'whole~train')]:.2g}"
    std = viz_stats.heatmap(table, "hinet-tiny", stat="std", metric="kl")
    assert std.axes[0].collections[0].get_coordinates().shape[:2] == (1 + 1, 3 + 1)
    paths = save_figure(fig, tmp_path, "heatmap")
    assert all(p.stat().st_size > 0 for p in paths)


def test_save_figure_is_deterministic(stats, tmp_path):
    fig = viz_stats.depth_profile(shift_table(stats, per_channel=False))
    first = [p.read_bytes() for p in save_figure(fig, tmp_path / "a", "f")]
    second = [p.read_bytes() for p in save_figure(fig, tmp_path / "b", "f")]
    assert first == second
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["f.pdf", "f.png"]


def test_fig_a3_one_channel_and_chosen_regimes(stats_tiles):
    from scipy.stats import wasserstein_distance

    def values(regime):
        sel = (
            (stats_tiles.site == "enc.0.norm")
            & (stats_tiles.stat == "mean")
            & (stats_tiles.regime == regime)
            & (stats_tiles.channel == 1)
        )
        return stats_tiles.loc[sel, "value"].to_numpy(np.float64)

    fig = viz_stats.fig_a3(stats_tiles, "enc.0.norm", channel=1, regimes=["train", "tiles"])
    (ax,) = fig.axes
    texts = _legend_texts(ax)
    w1 = wasserstein_distance(values("tiles"), values("train"))
    assert texts[0].startswith("train") and f"W1={w1:.3g}" in texts[1]
    assert "channel 1" in fig._suptitle.get_text() and ax.get_xlabel() == "mean of channel 1"
    # the training histogram hidden: same panels, one legend entry each, same numbers
    fig = viz_stats.fig_a3(stats_tiles, "enc.0.norm", channel=1, regimes=["tlc", "tiles"])
    assert [len(_legend_texts(a)) for a in fig.axes] == [1, 1]
    assert f"W1={w1:.3g}" in _legend_texts(fig.axes[1])[0]
    (alone,) = viz_stats.fig_a3(stats_tiles, "enc.0.norm", regimes=["train"]).axes
    assert _legend_texts(alone)[0].startswith(viz_stats.REGIME_LABELS["train"])
    with pytest.raises(ValueError, match="unknown regimes"):
        viz_stats.fig_a3(stats_tiles, "enc.0.norm", regimes=["nope"])
    with pytest.raises(ValueError, match="channel 7"):
        viz_stats.fig_a3(stats_tiles, "enc.0.norm", channel=7)


def test_fig_a3_states_its_sample_sizes_and_hides_kl_at_small_n(stats):
    site = "enc.0.norm"
    rows = stats[(stats.site == site) & (stats.stat == "mean")]
    fig = viz_stats.fig_a3(stats, site)
    train_text, whole_text = _legend_texts(fig.axes[0])
    n_ch = rows.channel.nunique()
    for text, regime, unit in ((train_text, "train", "crops"), (whole_text, "whole", "images")):
        mine = rows[rows.regime == regime]
        assert f"{mine['sample'].nunique()} {unit}, n={len(mine)}, {n_ch} channels pooled" in text
    # three whole images: KL (biased at small n) is left out of that legend, and said so
    few = stats[~((stats.regime == "whole") & ~stats["sample"].isin(["whole0", "whole1"]))]
    n_whole = int(((few.regime == "whole") & (few.site == site) & (few.stat == "mean")).sum())
    assert n_whole == 6 < viz_stats.KL_MIN_N
    fig = viz_stats.fig_a3(few, site)
    text = _legend_texts(fig.axes[0])[1]
    assert "2 images, n=6" in text and "W1=" in text and "KL=" not in text
    assert "KL left out" in fig._supxlabel.get_text()
    assert "KL=" in _legend_texts(fig.axes[1])[1]  # tlc: 180 values, KL shown


def test_fig_a3_says_when_tlc_equals_whole(stats):
    same = stats[stats.regime != "tlc"]
    copy = same[same.regime == "whole"].assign(regime="tlc")
    fig = viz_stats.fig_a3(pd.concat([same, copy], ignore_index=True), "enc.0.norm")
    assert "TLC equals whole" in fig._supxlabel.get_text()
    assert "cover the maps" in " ".join(t.get_text() for t in fig.axes[1].texts)
    other = viz_stats.fig_a3(stats, "enc.0.norm")._supxlabel
    assert other is None or "TLC equals whole" not in other.get_text()


def test_depth_profile_marks_a_site(stats):
    fig = viz_stats.depth_profile(shift_table(stats, per_channel=False), highlight="dec.1.se")
    (ax,) = fig.axes
    marks = [ln for ln in ax.get_lines() if ln.get_label() == "_highlight"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [1, 1]
    assert [t.get_text() for t in ax.texts] == ["dec.1.se"]


def test_fig_a3_legend_gives_the_interval_over_images(stats):
    table = shift_table(stats)
    rows = table[(table.site == "enc.0.norm") & (table.stat == "mean") & (table.channel == "all")]
    table.loc[rows.index, ["w1_lo", "w1_hi"]] = [0.01, 0.5]  # as many images would give
    fig = viz_stats.fig_a3(stats, "enc.0.norm", "mean", shift=table)
    assert "[0.01, 0.5]" in _legend_texts(fig.axes[0])[1]


def test_depth_profile_shades_the_interval_over_images():
    rows = []
    for comp, w1 in (("whole~train", 0.4), ("tlc~train", 0.2)):
        for depth, site in enumerate(("a", "b")):
            rows.append(
                {
                    "model": "m",
                    "task": "deblur",
                    "site": site,
                    "kind": "se",
                    "depth": depth,
                    "stat": "mean",
                    "channel": "all",
                    "comparison": comp,
                    "w1": w1,
                    "w1_norm": 2 * w1,
                    "w1_lo": w1 - 0.1,
                    "w1_hi": w1 + 0.1,
                }
            )
    table = pd.DataFrame(rows)
    (ax,) = viz_stats.depth_profile(table).axes
    bands = ax.collections[: len(ax.collections)]
    fills = [
        c for c in bands if type(c).__name__ in ("FillBetweenPolyCollection", "PolyCollection")
    ]
    assert len(fills) == 2  # one band per comparison
    ys = fills[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(2 * 0.3) and ys.max() == pytest.approx(2 * 0.5)  # scaled
    (ax,) = viz_stats.depth_profile(table.drop(columns=["w1_lo", "w1_hi"])).axes
    assert not [c for c in ax.collections if "Poly" in type(c).__name__]


def test_tune_figure_marks_each_sites_choice():
    from tlc_probe.viz import tune_figure

    scores = pd.DataFrame(
        [
            ("a", "se", 0, "x1", 0.2),
            ("a", "se", 0, "x1.5", 0.2),
            ("a", "se", 0, "global", 0.9),
            ("b", "se", 1, "x1", 0.1),
            ("b", "se", 1, "x1.5", 0.3),
            ("b", "se", 1, "global", 0.8),
            ("c", "in", 2, "x1", 0.7),
            ("c", "in", 2, "x1.5", 0.6),
            ("c", "in", 2, "global", 0.2),
            ("a", "se", 0, "tuned", 0.2),
            ("b", "se", 1, "tuned", 0.12),
            ("c", "in", 2, "tuned", 0.25),
        ],
        columns=["site", "kind", "depth", "candidate", "w1_norm"],
    )
    # the choice is read from the table (site a's tie-break chose x1.5 over x1 at 0.2)
    chosen_rows = {("a", "x1.5"), ("b", "x1"), ("c", "global")}
    pairs = zip(scores["site"], scores["candidate"], strict=True)
    scores["chosen"] = [pair in chosen_rows for pair in pairs]
    fig = tune_figure(scores, "m")
    ax1, ax2 = fig.axes
    chosen = ax1.collections[0].get_offsets()
    np.testing.assert_array_equal(chosen[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(chosen[:, 1], [1.5, 1.0, 2.25])  # global drawn at 1.5 x 1.5
    assert [t.get_text() for t in ax1.get_yticklabels()] == ["1", "1.5", "global"]
    before, after = ax2.get_lines()
    np.testing.assert_allclose(before.get_ydata(), [0.2, 0.3, 0.6])
    np.testing.assert_allclose(after.get_ydata(), [0.2, 0.12, 0.25])
    assert "n = 3 sites" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="chosen"):
        tune_figure(scores.drop(columns="chosen"))
