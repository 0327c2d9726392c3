"""Intervals with images as the unit: paired PSNR differences (scipy's bootstrap and
Wilcoxon as references), the cluster bootstrap of W1 (images resampled, never rows) and
the interval columns of the shift table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tlc_probe.metrics.intervals import image_of, paired_difference, w1_intervals
from tlc_probe.metrics.shift import shift_table, summary


def test_paired_difference_is_scipys_bootstrap_and_wilcoxon():
    a = np.array([30.0, 31.0, 29.0, 28.4, 32.1, 30.6, 29.9, 27.5, 30.2, 31.4, 29.3, 28.8])
    b = np.array([29.5, 30.5, 29.2, 28.0, 31.0, 30.9, 29.1, 27.1, 30.4, 30.6, 29.0, 28.9])
    got = paired_difference(a, b, n_resamples=999, seed=3)
    d = a - b
    assert got["diff"] == pytest.approx(d.sum() / 12) and got["n"] == 12
    ref = sps.bootstrap(
        (d,), np.mean, n_resamples=999, method="percentile", rng=np.random.default_rng(3)
    )
    assert got["lo"] == pytest.approx(ref.confidence_interval.low)
    assert got["hi"] == pytest.approx(ref.confidence_interval.high)
    assert got["p_wilcoxon"] == pytest.approx(sps.wilcoxon(d).pvalue)
    assert paired_difference(a, b, n_resamples=999, seed=3) == got  # seeded


def test_few_images_get_students_t_not_a_bootstrap_of_their_range():
    # by hand: d = 0.1, 0.2, 0.3; mean 0.2, sd 0.1, t(0.975, 2) = 4.3027
    got = paired_difference([0.1, 0.2, 0.3], [0.0, 0.0, 0.0])
    half = 4.302652729911275 * 0.1 / np.sqrt(3)
    assert got["lo"] == pytest.approx(0.2 - half) and got["hi"] == pytest.approx(0.2 + half)
    assert got["lo"] < 0 < got["hi"]  # the bootstrap of three values gave [0.1, 0.3]


def test_paired_difference_small_and_degenerate_samples():
    three = paired_difference([30.0, 31.0, 29.0], [29.5, 30.5, 29.2])
    assert three["diff"] == pytest.approx((0.5 + 0.5 - 0.2) / 3)
    assert three["lo"] <= three["diff"] <= three["hi"] and np.isnan(three["p_wilcoxon"])
    few = w1_intervals(_clustered(4, 50), ["whole~train"], ["site"]).iloc[0]
    assert np.isnan(few["w1_lo"]) and np.isnan(few["w1_hi"])  # 4 images: no interval
    one = paired_difference([30.0], [29.0])
    assert one["diff"] == 1.0 and np.isnan(one["lo"]) and np.isnan(one["hi"])
    same = paired_difference([1.0] * 6, [0.5] * 6)
    assert (same["lo"], same["hi"]) == (0.5, 0.5)
    assert paired_difference([2.0] * 6, [2.0] * 6)["p_wilcoxon"] == 1.0
    nan = paired_difference([1.0, np.nan, 3.0], [0.0, 1.0, 1.0])
    assert nan["n"] == 2 and nan["diff"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="paired"):
        paired_difference([1.0, 2.0], [1.0])


def test_image_of_crops_and_tiles():
    ids = ["a/c00003@4,5", "dir/b/t012@0,64", "photo", "x#2", "odd/c1@1"]
    assert image_of(ids).tolist() == ["a", "dir/b", "photo", "x", "odd/c1@1"]
    # degradations of one bundled photo are one image
    assert image_of(["rocket#0/c00001@0,0", "rocket#3", "rocket#3/t002@0,64"]).tolist() == [
        "rocket",
        "rocket",
        "rocket",
    ]


def _clustered(n_images: int, rows: int, seed: int = 0) -> pd.DataFrame:
    """Each image's values sit near an image mean that varies a lot between images: the
    rows of one image are far from independent."""
    rng = np.random.default_rng(seed)
    parts = []
    for regime, shift in (("whole", 1.0), ("train", 0.0)):
        for i in range(n_images):
            centre = shift + rng.normal(0, 1.0)
            v = centre + rng.normal(0, 0.05, rows)
            parts.append(pd.DataFrame({"regime": regime, "sample": f"{regime}{i}", "value": v}))
    return pd.concat(parts, ignore_index=True).assign(site="s")


def test_the_bootstrap_resamples_images_not_rows():
    frame = _clustered(8, 200)
    by_image = w1_intervals(frame, ["whole~train"], ["site"]).iloc[0]
    rows = frame.assign(sample=[f"r{k}" for k in range(len(frame))])  # every row its own unit
    by_row = w1_intervals(rows, ["whole~train"], ["site"]).iloc[0]
    width_image = by_image["w1_hi"] - by_image["w1_lo"]
    width_row = by_row["w1_hi"] - by_row["w1_lo"]
    assert width_image > 5 * width_row  # rows of one image are not independent
    exact = sps.wasserstein_distance(
        frame.loc[frame.regime == "whole", "value"], frame.loc[frame.regime == "train", "value"]
    )
    assert by_row["w1_lo"] <= exact * 1.02 and exact * 0.98 <= by_row["w1_hi"]


def _regimes(n_images: int = 6, seed: int = 1) -> pd.DataFrame:
    """whole far from train, tlc close to it, on the same test images; 12 training images."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_images):
        for regime, shift in (("whole", 2.0), ("tlc", 0.3)):
            v = shift + rng.normal(0, 1, 300)
            parts.append(pd.DataFrame({"regime": regime, "sample": f"img{i}", "value": v}))
    for t in range(12):
        ids = [f"train{t}/c{k:05d}@0,0" for k in range(5)]
        v = rng.normal(0, 1, 5 * 40)
        parts.append(pd.DataFrame({"regime": "train", "sample": np.repeat(ids, 40), "value": v}))
    frame = pd.concat(parts, ignore_index=True)
    keys = {"model": "m", "task": "deblur", "site": "a", "kind": "se", "depth": 0, "stat": "mean"}
    return frame.assign(channel=0, **keys)


def test_shift_table_intervals_and_the_paired_tlc_difference():
    frame = _regimes()
    table = shift_table(frame, ["whole~train", "tlc~train"])
    pooled = table[table.channel == "all"].set_index("comparison")
    assert (pooled["w1_lo"] <= pooled["w1"]).all() and (pooled["w1"] <= pooled["w1_hi"]).all()
    whole, tlc = pooled.loc["whole~train"], pooled.loc["tlc~train"]
    assert whole["dw1_tlc"] == pytest.approx(tlc["w1"] - whole["w1"])  # by hand from the table
    assert whole["dw1_tlc_lo"] <= whole["dw1_tlc"] <= whole["dw1_tlc_hi"] < 0
    per_channel = table[table.channel != "all"]
    assert per_channel[["w1_lo", "w1_hi", "dw1_tlc"]].isna().all(axis=None)
    again = shift_table(frame, ["whole~train", "tlc~train"])
    pd.testing.assert_frame_equal(table, again)  # seeded
    plain = shift_table(frame.drop(columns="sample"), ["whole~train", "tlc~train"])
    assert plain[["w1_lo", "dw1_tlc"]].isna().all(axis=None)
    s = summary(table)
    assert s["n_w1_improved_sure"].tolist() == [1]


def test_a_shift_within_noise_has_an_interval_across_zero():
    frame = _regimes()
    tlc = frame.regime == "tlc"
    frame.loc[tlc, "value"] = frame.loc[tlc, "value"] + 1.7  # as far from train as whole
    table = shift_table(frame, ["whole~train", "tlc~train"])
    row = table[(table.channel == "all") & (table.comparison == "tlc~train")].iloc[0]
    assert row["dw1_tlc_lo"] < 0 < row["dw1_tlc_hi"]
    assert summary(table)["n_w1_improved_sure"].tolist() == [0]


def test_sampling_floor_is_the_w1_of_two_independent_draws_of_images():
    from scipy.stats import wasserstein_distance

    from tlc_probe.metrics.intervals import sampling_floor

    rng = np.random.default_rng(3)

    def draw(n_images: int, per_image: int, between: float, within: float):
        # values cluster by image: an image effect plus within-image noise; one marginal
        # N(0, 1.09) for both settings used below, sampled differently
        effect = between * rng.normal(size=n_images)
        values = np.concatenate([e + within * rng.normal(size=per_image) for e in effect])
        return values, np.repeat([f"i{k}" for k in range(n_images)], per_image)

    # many values of few images against a few values each of many images, either way
    for test_kind, train_kind in [((1.0, 0.3), (0.3, 1.0)), ((0.3, 1.0), (1.0, 0.3))]:
        floors, truth = [], []
        for rep in range(120):
            test, images = draw(12, 30, *test_kind)
            train, train_images = draw(24, 3, *train_kind)
            floors.append(sampling_floor(test, images, train, train_images, n_splits=8, seed=rep))
            truth.append(wasserstein_distance(test, train))  # one distribution: W1 is noise
        assert np.mean(floors) == pytest.approx(np.mean(truth), rel=0.15), test_kind
    # 30 values per image are no 30 samples: a row-level floor would be far smaller
    rows = [wasserstein_distance(*rng.normal(size=(2, 360))) for _ in range(50)]
    assert np.mean(floors) > 2 * np.mean(rows)
    few = sampling_floor(np.arange(9.0), ["a", "b", "c"] * 3, np.arange(8.0), list("abcdefgh"))
    assert np.isnan(few)  # 3 images on a side


def test_sampling_floor_takes_scipys_w1_of_each_random_half():
    from scipy.stats import wasserstein_distance

    from tlc_probe.metrics.intervals import sampling_floor

    rng = np.random.default_rng(5)
    # ties within and across images, image names out of order, a non-finite value
    values = rng.integers(0, 7, 90).astype(float)
    values[4] = np.nan
    images = np.array([f"im{k}" for k in rng.integers(0, 9, 90)], dtype=object)
    other = rng.normal(size=40)
    other_images = np.repeat(["z", "b", "q", "a", "m"], 8)

    def part(v, im, draws):  # the definition: W1 of the values of two random halves
        ok = np.isfinite(v)
        v, im = v[ok], np.asarray(im)[ok]
        names = np.unique(im)
        half = names.size // 2
        w = []
        for _ in range(5):
            a = np.isin(im, draws.permutation(names)[:half])
            w.append(wasserstein_distance(v[a], v[~a]))
        return np.mean(w) * np.sqrt((1 / names.size) / (1 / half + 1 / (names.size - half)))

    draws = np.random.default_rng(11)
    expected = np.hypot(part(values, images, draws), part(other, other_images, draws))
    got = sampling_floor(values, images, other, other_images, n_splits=5, seed=11)
    assert got == pytest.approx(expected, rel=1e-12)
    # integer image labels keep their numeric order (2 before 10), as np.unique gives it
    numbers = rng.integers(0, 12, 90)
    draws = np.random.default_rng(4)
    expected = np.hypot(part(values, numbers, draws), part(other, other_images, draws))
    got = sampling_floor(values, numbers, other, other_images, n_splits=5, seed=4)
    assert got == pytest.approx(expected, rel=1e-12)
