"""The explorer (tlc_probe.explore) driven from Python: set the widgets' values, check the
figure, the table and what was read against references computed here (scipy's W1 on the
raw values, the shift table of the whole store read at once)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance
from test_shift import synthetic_stats

from tlc_probe.explore import StatsSource, explore
from tlc_probe.metrics.shift import shift_table
from tlc_probe.store import read_stats
from tlc_probe.store.parts import part_path, write_part


def _write_store(root, frame: pd.DataFrame) -> None:
    for (model, regime), part in frame.groupby(["model", "regime"]):
        write_part(part, part_path(root / model, regime, 0), {"model": model})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Two models: hinet-tiny (enc.0.norm depth 0 with mean and std, dec.1.se depth 1;
    alphabetical order is the reverse of depth order) and nafnet-tiny (three SE sites,
    the deepest without tiles)."""
    a = synthetic_stats(tiles=True, seed=1)
    b = synthetic_stats(tiles=True, seed=2)
    b = b[b["stat"] == "mean"].assign(model="nafnet-tiny")
    b["site"] = b["site"].map({"enc.0.norm": "b.0.se", "dec.1.se": "a.1.se"})
    b["kind"] = "se"
    c = b[(b["site"] == "a.1.se") & (b["regime"] != "tiles")].assign(site="c.2.se", depth=2)
    return pd.concat([a, b, c], ignore_index=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory, frame):
    root = tmp_path_factory.mktemp("stats")
    _write_store(root, frame)
    return root


def _legends(fig) -> list[list[str]]:
    return [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]


def _values(frame, model, site, regime, stat="mean", channel=None) -> np.ndarray:
    sel = (
        (frame.model == model)
        & (frame.site == site)
        & (frame.regime == regime)
        & (frame.stat == stat)
    )
    if channel is not None:
        sel &= frame.channel == channel
    return frame.loc[sel, "value"].to_numpy(np.float64)


def test_controls_offer_the_store_sites_by_depth(store):
    ex = explore(store)
    assert [v for _, v in ex.model.options] == [("hinet-tiny", "deblur"), ("nafnet-tiny", "deblur")]
    assert [label for label, _ in ex.site.options] == [
        "  0 · enc.0.norm (in)",
        "  1 · dec.1.se (se)",
    ]
    assert ex.site.value == "enc.0.norm" and ex.position.max == 1
    assert list(ex.stat.options) == ["mean", "std"]
    assert list(ex.channel.options) == ["all", "0", "1", "2"]
    assert ex.selected_regimes == ["train", "whole", "tlc", "tiles"]
    assert ex.regimes["window"].disabled  # the store has no window regime


def test_first_view_matches_scipy(store, frame):
    ex = explore(store)
    fig, table = ex.shown_figure, ex.shown_table
    assert len(fig.axes) == 3  # whole, tlc, tiles against train
    assert "enc.0.norm" in fig._suptitle.get_text()
    train = _values(frame, "hinet-tiny", "enc.0.norm", "train")
    for regime, texts in zip(("whole", "tlc", "tiles"), _legends(fig), strict=True):
        w1 = wasserstein_distance(_values(frame, "hinet-tiny", "enc.0.norm", regime), train)
        row = table[table.comparison == f"{regime}~train"].iloc[0]
        assert row.w1 == pytest.approx(w1, rel=1e-5)
        assert f"W1={row.w1:.3g}" in texts[1]
    assert set(table.comparison) == {"whole~train", "tlc~train", "tiles~train"}
    assert ex.figure.value[:8] == b"\x89PNG\r\n\x1a\n" and ex.profile.value[:4] == b"\x89PNG"
    assert "whole~train" in ex.table.value and "W1 / std(train)" in ex.table.value


def test_site_dropdown_redraws_and_moves_the_slider(store, frame):
    ex = explore(store)
    before, profile_before = ex.figure.value, ex.profile.value
    ex.site.value = "dec.1.se"
    assert ex.figure.value != before and ex.profile.value != profile_before
    assert "dec.1.se" in ex.shown_figure._suptitle.get_text()
    assert ex.position.value == 1
    assert list(ex.stat.options) == ["mean"]
    train = _values(frame, "hinet-tiny", "dec.1.se", "train")
    whole = _values(frame, "hinet-tiny", "dec.1.se", "whole")
    row = ex.shown_table[ex.shown_table.comparison == "whole~train"].iloc[0]
    assert row.w1 == pytest.approx(wasserstein_distance(whole, train), rel=1e-5)
    # the depth profile marks the site at its depth
    (ax,) = ex.shown_profile.axes
    marks = [ln for ln in ax.get_lines() if ln.get_label() == "_highlight"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [1, 1]


def test_slider_picks_the_site(store):
    ex = explore(store)
    ex.position.value = 1
    assert ex.site.value == "dec.1.se"
    assert "dec.1.se" in ex.shown_figure._suptitle.get_text()
    ex.position.value = 0
    assert ex.site.value == "enc.0.norm"


def test_channel_and_stat(store, frame):
    ex = explore(store)
    ex.channel.value = "2"
    train = _values(frame, "hinet-tiny", "enc.0.norm", "train", channel=2)
    tlc = _values(frame, "hinet-tiny", "enc.0.norm", "tlc", channel=2)
    row = ex.shown_table[ex.shown_table.comparison == "tlc~train"].iloc[0]
    assert row.channel == "2" and row.n_ref == train.size and row.n_cmp == tlc.size
    assert row.w1 == pytest.approx(wasserstein_distance(tlc, train), rel=1e-5)
    assert "channel 2" in ex.shown_figure._suptitle.get_text()
    # the drawn histogram holds that channel's values only: its area is 1 over their range
    ex.stat.value = "std"
    assert ex.shown_figure.axes[0].get_xlabel() == "std of channel 2"
    std_train = _values(frame, "hinet-tiny", "enc.0.norm", "train", "std", channel=2)
    row = ex.shown_table[ex.shown_table.comparison == "whole~train"].iloc[0]
    std_whole = _values(frame, "hinet-tiny", "enc.0.norm", "whole", "std", channel=2)
    assert row.w1 == pytest.approx(wasserstein_distance(std_whole, std_train), rel=1e-5)
    # a site without std falls back to mean, and the wish for std comes back with the site
    ex.site.value = "dec.1.se"
    assert ex.stat.value == "mean"
    ex.site.value = "enc.0.norm"
    assert ex.stat.value == "std" and ex.channel.value == "2"


def test_regime_toggles(store):
    ex = explore(store)
    ex.regimes["tiles"].value = False
    assert len(ex.shown_figure.axes) == 2
    assert set(ex.shown_table.comparison) == {"whole~train", "tlc~train"}
    (ax,) = ex.shown_profile.axes
    assert [ln.get_label() for ln in ax.get_lines() if ln.get_label()[0] != "_"] == [
        "whole~train",
        "tlc~train",
    ]
    w1 = ex.shown_table.w1.tolist()
    ex.regimes["train"].value = False  # hides the green histograms, not the comparisons
    assert all(len(t) == 1 and not t[0].startswith("train") for t in _legends(ex.shown_figure))
    assert ex.shown_table.w1.tolist() == w1
    for r in ("whole", "tlc"):
        ex.regimes[r].value = False
    assert "nothing to draw" in ex.message.value and ex.figure.value == b""
    ex.regimes["train"].value = True  # the training values alone
    assert "nothing to draw" not in ex.message.value and len(ex.shown_figure.axes) == 1
    assert "no depth profile: no comparison" in ex.message.value and ex.profile.value == b""
    ex.channel.value = "1"  # the distribution redrawn alone: the profile's reason stays
    assert "no depth profile: no comparison" in ex.message.value


def test_model_dropdown(store, frame):
    ex = explore(store)
    ex.model.value = ("nafnet-tiny", "deblur")
    assert [v for _, v in ex.site.options] == ["b.0.se", "a.1.se", "c.2.se"]
    ex.site.value = "c.2.se"  # no tiles there: its checkbox is disabled
    assert ex.regimes["tiles"].disabled and "tiles" not in ex.selected_regimes
    assert len(ex.shown_figure.axes) == 2
    train = _values(frame, "nafnet-tiny", "c.2.se", "train")
    whole = _values(frame, "nafnet-tiny", "c.2.se", "whole")
    row = ex.shown_table[ex.shown_table.comparison == "whole~train"].iloc[0]
    assert row.w1 == pytest.approx(wasserstein_distance(whole, train), rel=1e-5)


def test_profile_equals_the_table_of_the_whole_store(store):
    source = StatsSource(store)
    ref = shift_table(read_stats(store), per_channel=False)
    for model, task in source.groups:
        got = source.profile(model, task)
        want = ref[(ref.model == model) & (ref.task == task)]
        key = ["site", "stat", "comparison"]
        got = got.sort_values(key).reset_index(drop=True)
        want = want.sort_values(key).reset_index(drop=True)
        assert len(got) == len(want) > 0
        np.testing.assert_allclose(got.w1, want.w1, rtol=1e-6)
        np.testing.assert_allclose(got.kl, want.kl, rtol=1e-6)
        assert list(got.site) == list(want.site)


def test_reads_only_what_it_draws(store, frame):
    table = shift_table(frame, per_channel=False)
    source = StatsSource(store, shift=table, cache_sites=1)
    ex = explore(source)
    assert dict(source.reads) == {("hinet-tiny", "deblur", "enc.0.norm"): 1}
    ex.channel.value = "1"
    ex.regimes["tlc"].value = False
    assert dict(source.reads) == {("hinet-tiny", "deblur", "enc.0.norm"): 1}  # cached
    ex.model.value = ("nafnet-tiny", "deblur")
    assert set(source.reads) == {
        ("hinet-tiny", "deblur", "enc.0.norm"),
        ("nafnet-tiny", "deblur", "b.0.se"),
    }
    assert len(source._rows) == 1  # the cache holds cache_sites sites
    # without a shift table the profile reads every site of the model once, and keeps none
    source = StatsSource(store, cache_sites=1)
    explore(source)
    assert source.reads == {
        ("hinet-tiny", "deblur", "enc.0.norm"): 2,
        ("hinet-tiny", "deblur", "dec.1.se"): 1,
    }
    assert len(source._rows) == 1


def test_open_a_results_folder(tmp_path, frame):
    _write_store(tmp_path / "stats", frame)
    (tmp_path / "shift").mkdir()
    table = shift_table(frame, per_channel=False)
    table.to_parquet(tmp_path / "shift" / "shift.parquet")
    source = StatsSource.open(tmp_path)
    source.profile("hinet-tiny", "deblur")
    assert not source.reads  # the profile came from shift.parquet
    # a shift table older than the statistics is not trusted
    old = (tmp_path / "shift" / "shift.parquet").stat().st_mtime - 100
    os.utime(tmp_path / "shift" / "shift.parquet", (old, old))
    source = StatsSource.open(tmp_path)
    source.profile("hinet-tiny", "deblur")
    assert len(source.reads) == 2


def test_training_stores_and_empty_paths_are_refused(tmp_path, frame):
    stepped = frame[frame.model == "hinet-tiny"].copy()
    stepped["step"] = pd.array(np.full(len(stepped), 5), dtype="Int64")
    _write_store(tmp_path / "run", stepped)
    with pytest.raises(ValueError, match="during training"):
        explore(tmp_path / "run")
    with pytest.raises(FileNotFoundError):
        StatsSource(tmp_path / "nothing")


def test_attention_sites_show_their_mean_logit(tmp_path, frame):
    attn = frame[(frame.model == "hinet-tiny") & (frame.site == "dec.1.se")].copy()
    attn = pd.concat([attn.assign(stat=s) for s in ("q_rms", "logit_mean", "k_rms")])
    attn = attn.assign(model="restormer-tiny", site="attn.0", kind="attn")
    se = frame[(frame.model == "hinet-tiny") & (frame.site == "enc.0.norm")]
    se = se[se.stat == "mean"].assign(model="restormer-tiny", site="pool.1", kind="se", depth=5)
    _write_store(tmp_path, pd.concat([frame[frame.model == "hinet-tiny"], attn, se]))
    ex = explore(tmp_path)
    ex.model.value = ("restormer-tiny", "deblur")
    assert list(ex.stat.options) == ["k_rms", "logit_mean", "q_rms"]
    assert ex.stat.value == "logit_mean"
    assert ex.shown_figure.axes[0].get_xlabel() == "logit_mean per channel"
    # the profile keeps every site: 'mean' is each site's primary statistic
    (ax,) = ex.shown_profile.axes
    whole = [ln for ln in ax.get_lines() if ln.get_label() == "whole~train"][0]
    assert list(whole.get_xdata()) == [1, 5]
    ex.stat.value = "q_rms"  # chosen by hand: the attention site alone
    (ax,) = ex.shown_profile.axes
    whole = [ln for ln in ax.get_lines() if ln.get_label() == "whole~train"][0]
    assert list(whole.get_xdata()) == [1]


def test_a_main_job_folder_with_the_synthetic_set_switches_test_sets(tmp_path, frame):
    _write_store(tmp_path / "job" / "stats", frame)
    synthetic = frame[frame["model"] == "hinet-tiny"].assign(value=frame["value"] + 5.0)
    for (model, regime), part in synthetic.groupby(["model", "regime"]):
        meta = {"model": model, "test_set": "synthetic"}
        write_part(
            part, part_path(tmp_path / "job" / "synthetic" / "stats" / model, regime, 0), meta
        )
    ex = explore(tmp_path / "job")
    assert list(ex.test_set.options) == ["photos", "synthetic"]
    assert ex.test_set.layout.display != "none"
    photos_table, photos_png = ex.shown_table.copy(), ex.figure.value
    ex.test_set.value = "synthetic"
    assert [v for _, v in ex.model.options] == [("hinet-tiny", "deblur")]  # its models only
    shifted = ex.shown_table
    assert len(shifted) == len(photos_table)
    # every regime moved by +5: each comparison's W1 is unchanged, the rows drawn are new
    rows = ex.source.rows("hinet-tiny", "deblur", ex.site.value)
    assert float(rows["value"].min()) > float(frame["value"].min()) + 4
    assert ex.figure.value != photos_png
    assert explore(tmp_path / "job" / "stats").test_set.layout.display == "none"  # one set
