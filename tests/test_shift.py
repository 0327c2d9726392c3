"""Shift metrics (tlc_probe.metrics.shift) against scipy, analytic values and the rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wasserstein_distance

from tlc_probe.jobs.shift import write_shift
from tlc_probe.metrics.shift import (
    INTERVAL_COLUMNS,
    SHIFT_COLUMNS,
    kl_js,
    shift_table,
    summary,
    w1,
)
from tlc_probe.store import read_stats

LN2 = math.log(2.0)


# ------------------------------------------------------------------------------------- W1


@pytest.mark.parametrize("n, m", [(1, 1), (1, 7), (2, 5), (10, 3), (100, 250), (1000, 37)])
def test_w1_equals_scipy(n, m):
    rng = np.random.default_rng(n * 1000 + m)
    a = rng.normal(0.0, 1.0, n)
    b = rng.gamma(2.0, 1.5, m) - 1.0
    assert w1(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12, abs=1e-15)


def test_w1_with_ties_equals_scipy():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 50).astype(float)
    b = rng.integers(1, 6, 21).astype(float)
    assert w1(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)


def test_w1_shift_of_a_sample_is_the_shift():
    a = np.random.default_rng(1).normal(size=500)
    assert w1(a, a + 0.25) == pytest.approx(0.25, rel=1e-12)


# ------------------------------------------------------------------------------- KL / JS


def test_identical_samples_have_zero_kl_and_js():
    a = np.random.default_rng(2).normal(size=2000)
    kl, js = kl_js(a, a.copy())
    assert abs(kl) < 1e-9 and abs(js) < 1e-9


def _kl_estimates(mu: float, sizes: tuple[int, ...], seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [kl_js(rng.normal(0.0, 1.0, n), rng.normal(mu, 1.0, n))[0] for n in sizes]


def test_kl_of_gaussians_converges_to_analytic():
    # KL(N(0,1) || N(mu,1)) = mu^2 / 2. Observed (seed 0, mu = 1, true 0.5):
    # n=1e3 -> ~0.71, n=1e4 -> ~0.55, n=1e5 -> ~0.50; tolerance at 1e5: 5 % relative.
    mu, sizes = 1.0, (1_000, 10_000, 100_000)
    true = mu**2 / 2
    est = _kl_estimates(mu, sizes)
    err = [abs(e - true) / true for e in est]
    print("KL estimates", dict(zip(sizes, est, strict=True)), "true", true)
    assert err[2] < 0.05, est
    assert err[0] > err[1] > err[2], est


def test_js_of_disjoint_samples_is_ln2():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1, 400), rng.uniform(5, 6, 300)
    kl, js = kl_js(a, b)
    assert js <= LN2
    assert js == pytest.approx(LN2, abs=1e-3)  # the EPS smoothing keeps it a hair below
    assert np.isfinite(kl) and kl > 10  # ~ ln(1 / EPS)


def _reference_kl_js(ref: np.ndarray, cmp: np.ndarray) -> tuple[float, float]:
    """Independent implementation of the documented rule with np.histogram."""
    n = ref.size
    lo, hi = ref.min(), ref.max()
    iqr = np.subtract(*np.percentile(ref, [75, 25]))
    if hi == lo:
        counts_r, counts_c = [np.array([np.sum(x == lo)]) for x in (ref, cmp)]
    else:
        nb = math.ceil((hi - lo) / (2 * iqr * n ** (-1 / 3))) if iqr > 0 else None
        nb = nb if nb is not None else math.ceil(math.log2(n)) + 1
        edges = np.linspace(lo, hi, min(max(nb, 1), 512) + 1)
        counts_r = np.histogram(ref, edges)[0]
        counts_c = np.histogram(cmp[(cmp >= lo) & (cmp <= hi)], edges)[0]
    under = [np.sum(x < lo) for x in (ref, cmp)]
    over = [np.sum(x > hi) for x in (ref, cmp)]
    p = np.concatenate([[under[0]], counts_r, [over[0]]]) / ref.size
    q = np.concatenate([[under[1]], counts_c, [over[1]]]) / cmp.size
    eps = 1e-6
    p, q = (p + eps) / (1 + p.size * eps), (q + eps) / (1 + q.size * eps)
    m = (p + q) / 2
    kl = float(np.sum(p * np.log(p / q)))
    js = float(0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m)))
    return kl, js


@pytest.mark.parametrize(
    "make",
    [
        lambda r: (r.normal(0, 1, 300), r.normal(0.5, 1.5, 200)),  # Freedman-Diaconis
        lambda r: (np.r_[np.zeros(50), [1.0, 2.0]], r.normal(0, 1, 40)),  # IQR 0 -> Sturges
        lambda r: (np.full(10, 3.0), np.r_[np.full(5, 3.0), [1.0, 4.0, 5.0]]),  # constant ref
        lambda r: (r.standard_cauchy(20_000), r.standard_cauchy(1000)),  # bin cap (512)
    ],
    ids=["fd", "sturges", "constant", "cap"],
)
def test_kl_js_follows_documented_rule(make):
    ref, cmp = make(np.random.default_rng(4))
    kl, js = kl_js(ref, cmp)
    ref_kl, ref_js = _reference_kl_js(ref, cmp)
    assert kl == pytest.approx(ref_kl, rel=1e-9, abs=1e-12)
    assert js == pytest.approx(ref_js, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------- hypothesis properties

finite = st.floats(width=32, allow_nan=False, allow_infinity=False)
samples = st.one_of(
    st.lists(finite, min_size=1, max_size=40),
    st.builds(lambda x, n: [x] * n, finite, st.integers(1, 10)),  # constant samples
)


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_metrics_are_finite_and_non_negative(a, b):
    kl, js = kl_js(a, b)
    d = w1(a, b)
    assert all(np.isfinite([kl, js, d]))
    assert kl >= 0 and d >= 0
    assert 0 <= js <= LN2


@settings(max_examples=200, deadline=None)
@given(samples)
def test_identity(a):
    assert w1(a, a) == 0
    kl, js = kl_js(a, a)
    assert abs(kl) < 1e-9 and abs(js) < 1e-9


@settings(max_examples=200, deadline=None)
@given(samples, samples, samples)
def test_symmetry_of_w1_and_js(a, b, c):
    assert w1(a, b) == pytest.approx(w1(b, a), rel=1e-12, abs=1e-300)
    # JS is symmetric once both histograms use the same bins (here fixed from c)
    assert kl_js(a, b, bins_from=c)[1] == pytest.approx(kl_js(b, a, bins_from=c)[1], abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(samples, samples)
def test_w1_matches_scipy_on_arbitrary_inputs(a, b):
    expected = wasserstein_distance(a, b)
    assert w1(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-9 * (1 + abs(expected)))


# ---------------------------------------------------------------------------- shift_table


def synthetic_stats(tiles: bool = False, seed: int = 0) -> pd.DataFrame:
    """Two sites (an instance-norm site with mean and std, an SE site with mean only), three
    channels; train 40 crops, whole 10 images, tlc 3 images x 4 x 5 positions, optionally
    tiles 3 images x 6 tiles."""
    rng = np.random.default_rng(seed)
    rows = []
    sites = [("enc.0.norm", "in", 0, ("mean", "std")), ("dec.1.se", "se", 1, ("mean",))]
    regimes = {"train": 0.0, "whole": 1.0, "tlc": 0.1} | ({"tiles": 0.4} if tiles else {})
    for site, kind, depth, stats in sites:
        for stat in stats:
            for regime, loc in regimes.items():
                if regime == "tlc":
                    where = [
                        (f"img{i}", y, x) for i in range(3) for y in range(4) for x in range(5)
                    ]
                elif regime == "tiles":
                    where = [(f"img{i}/t{t}", None, None) for i in range(3) for t in range(6)]
                else:
                    n = 40 if regime == "train" else 10
                    where = [(f"{regime}{i}", None, None) for i in range(n)]
                for channel in range(3):
                    for sample, y, x in where:
                        value = rng.normal(loc + channel, 1.0 + 0.5 * depth)
                        rows.append(
                            (
                                *("hinet-tiny", "deblur", regime, site, kind, depth, sample),
                                *(channel, y, x, stat, value),
                            )
                        )
    columns = "model task regime site kind depth sample channel y x stat value".split()
    df = pd.DataFrame(rows, columns=columns)
    return df.astype(
        {"depth": "int32", "channel": "int32", "y": "Int32", "x": "Int32", "value": "float32"}
    )


def _values(stats, site, stat, regime, channel=None):
    sel = (stats.site == site) & (stats.stat == stat) & (stats.regime == regime)
    if channel is not None:
        sel &= stats.channel == channel
    return stats.loc[sel, "value"].to_numpy(np.float64)


def test_shift_table_shape_and_columns():
    stats = synthetic_stats()
    table = shift_table(stats)
    assert tuple(table.columns) == (*SHIFT_COLUMNS, *INTERVAL_COLUMNS)
    # 3 site-stats x (3 channels + "all") x 2 comparisons (no tiles regime)
    assert len(table) == 3 * 4 * 2
    assert set(table.comparison) == {"whole~train", "tlc~train"}
    assert set(table.channel) == {"0", "1", "2", "all"}
    assert table.duplicated(["site", "stat", "channel", "comparison"]).sum() == 0
    assert table[["kl", "js", "w1", "w1_norm"]].notna().all().all()
    pooled = shift_table(stats, per_channel=False)
    assert len(pooled) == 3 * 2 and set(pooled.channel) == {"all"}


def test_shift_table_per_channel_matches_scipy():
    stats = synthetic_stats()
    table = shift_table(stats).set_index(["site", "stat", "channel", "comparison"])
    for site, stat, channel in [("enc.0.norm", "std", 1), ("dec.1.se", "mean", 2)]:
        ref = _values(stats, site, stat, "train", channel)
        for regime in ("whole", "tlc"):
            cmp = _values(stats, site, stat, regime, channel)
            row = table.loc[(site, stat, str(channel), f"{regime}~train")]
            assert row.w1 == pytest.approx(wasserstein_distance(ref, cmp), rel=1e-9)
            assert row.w1_norm == pytest.approx(row.w1 / ref.std(), rel=1e-9)
            kl, js = _reference_kl_js(ref, cmp)
            assert row.kl == pytest.approx(kl, rel=1e-9) and row.js == pytest.approx(js, rel=1e-9)
            assert (row.n_ref, row.n_cmp) == (ref.size, cmp.size)
    assert table.loc[("dec.1.se", "mean", "0", "tlc~train"), "n_cmp"] == 3 * 4 * 5


def test_shift_table_pooled_row_matches_scipy_on_all_values():
    stats = synthetic_stats()
    table = shift_table(stats).set_index(["site", "stat", "channel", "comparison"])
    ref = _values(stats, "enc.0.norm", "mean", "train")
    cmp = _values(stats, "enc.0.norm", "mean", "tlc")
    row = table.loc[("enc.0.norm", "mean", "all", "tlc~train")]
    assert row.w1 == pytest.approx(wasserstein_distance(ref, cmp), rel=1e-9)
    assert row.kl == pytest.approx(_reference_kl_js(ref, cmp)[0], rel=1e-9)
    assert (row.n_ref, row.n_cmp) == (3 * 40, 3 * 60)


def test_tiles_comparison_only_when_tiles_present():
    assert not (shift_table(synthetic_stats()).comparison == "tiles~train").any()
    with_tiles = shift_table(synthetic_stats(tiles=True))
    tiles = with_tiles[with_tiles.comparison == "tiles~train"]
    assert len(tiles) == 3 * 4 and (tiles.n_cmp[tiles.channel != "all"] == 18).all()


def test_shift_table_drops_non_finite_values_and_constant_reference():
    stats = synthetic_stats()
    first_train = stats.index[(stats.regime == "train") & (stats.channel == 0)][0]
    stats.loc[first_train, "value"] = np.nan
    site, stat = stats.loc[first_train, ["site", "stat"]]
    train_ch1 = (stats.regime == "train") & (stats.channel == 1) & (stats.site == site)
    stats.loc[train_ch1 & (stats.stat == stat), "value"] = 2.5
    table = shift_table(stats).set_index(["site", "stat", "channel", "comparison"])
    assert table.loc[(site, stat, "0", "whole~train"), "n_ref"] == 39
    row = table.loc[(site, stat, "1", "whole~train")]  # constant reference
    ref = _values(stats, site, stat, "train", 1)
    cmp = _values(stats, site, stat, "whole", 1)
    pooled_std = np.concatenate([ref, cmp]).std()
    assert row.w1_norm == pytest.approx(wasserstein_distance(ref, cmp) / pooled_std, rel=1e-6)
    assert np.isfinite(table[["kl", "js", "w1", "w1_norm"]].to_numpy()).all()


def test_shift_table_handles_categorical_columns():
    stats = synthetic_stats()
    cat = stats.astype({c: "category" for c in ("model", "task", "regime", "site", "kind")})
    pd.testing.assert_frame_equal(shift_table(cat), shift_table(stats))


def test_float32_and_float64_values_give_the_same_table():
    # float32 values (the store's) are sorted through packed integer keys, float64 ones
    # with argsort: negative values, signed zeros and ties included, both match
    stats = synthetic_stats(tiles=True)
    stats.loc[stats.index[::5], "value"] = np.float32(-0.0)
    stats.loc[stats.index[1::5], "value"] = np.float32(0.0)
    stats.loc[stats.index[2::7], "value"] = np.float32(-3.25)
    table32 = shift_table(stats)
    table64 = shift_table(stats.astype({"value": "float64"}))
    pd.testing.assert_frame_equal(table32, table64, rtol=1e-12)
    ref = _values(stats, "dec.1.se", "mean", "train", 0)
    cmp = _values(stats, "dec.1.se", "mean", "tiles", 0)
    row = table32.set_index(["site", "stat", "channel", "comparison"]).loc[
        ("dec.1.se", "mean", "0", "tiles~train")
    ]
    assert row.w1 == pytest.approx(wasserstein_distance(ref, cmp), rel=1e-9)


@pytest.mark.parametrize("slab", [1, 2, 7, 250])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_streaming_in_slabs_gives_the_same_table(monkeypatch, slab, dtype):
    # every pass reads the sorted rows in slabs; groups spanning many slabs (a slab of one
    # row, of a few, cutting groups anywhere) give the table of one slab, which matches scipy
    import tlc_probe.metrics.shift as shift

    stats = synthetic_stats(tiles=True).astype({"value": dtype})
    ref_rows = (stats.regime == "train") & (stats.site == "dec.1.se") & (stats.channel == 1)
    stats.loc[ref_rows, "value"] = 0.5  # a constant reference: the pooled-std fallback
    expected = shift_table(stats)
    monkeypatch.setattr(shift, "SLAB", slab)
    got = shift_table(stats)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
    row = got.set_index(["site", "stat", "channel", "comparison"]).loc[
        ("enc.0.norm", "std", "all", "tiles~train")
    ]
    ref = _values(stats, "enc.0.norm", "std", "train")
    cmp = _values(stats, "enc.0.norm", "std", "tiles")
    assert row.w1 == pytest.approx(wasserstein_distance(ref, cmp), rel=1e-9)
    kl, js = _reference_kl_js(ref, cmp)
    assert row.kl == pytest.approx(kl, rel=1e-9) and row.js == pytest.approx(js, rel=1e-9)
    assert row.w1_norm == pytest.approx(row.w1 / ref.std(), rel=1e-9)
    flat = got.set_index(["site", "stat", "channel", "comparison"]).loc[
        ("dec.1.se", "mean", "1", "whole~train")
    ]
    cmp = _values(stats, "dec.1.se", "mean", "whole", 1)
    pooled = np.concatenate([np.full(40, 0.5), cmp]).std()
    assert flat.w1_norm == pytest.approx(wasserstein_distance(np.full(40, 0.5), cmp) / pooled)


def test_unusual_key_columns_give_the_same_table():
    # keys coded without hashing (categorical codes, small integer ranges) and with it
    # (integers spread wider than 2**20, combinations beyond the dense table) agree
    stats = synthetic_stats()
    expected = shift_table(stats)
    many = [f"unused{i}" for i in range(3000)] + sorted(stats["site"].unique())
    odd = stats.astype({"kind": "category", "model": "category"})
    odd["site"] = pd.Categorical(stats["site"], categories=many)
    odd["depth"] = stats["depth"] * (1 << 25)  # range > 2**20: hashed
    odd["channel"] = stats["channel"] + 1000  # offsets from the minimum
    got = shift_table(odd)
    assert (got["depth"] == expected["depth"] * (1 << 25)).all()
    channels = [c if c == "all" else str(int(c) + 1000) for c in expected["channel"]]
    assert (got["channel"] == channels).all()
    cols = ["model", "task", "site", "kind", "stat", "comparison", "kl", "js", "w1", "n_ref"]
    pd.testing.assert_frame_equal(got[cols], expected[cols])


def test_steps_with_missing_values_are_a_group_of_their_own():
    stats = synthetic_stats()
    stats["step"] = pd.array(np.where(stats.index % 2 == 0, 100, 200), dtype="Int64")
    stats.loc[stats.index % 3 == 0, "step"] = pd.NA
    table = shift_table(stats)
    assert set(table["step"].astype(object).where(table["step"].notna(), None)) == {
        100,
        200,
        None,
    }
    for step in (100, None):
        rows = stats[stats["step"].isna()] if step is None else stats[stats["step"] == step]
        sel = table["step"].isna() if step is None else table["step"] == step
        sub = table[sel & (table.site == "enc.0.norm") & (table.stat == "mean")]
        row = sub[(sub.channel == "2") & (sub.comparison == "whole~train")].iloc[0]
        ref = _values(rows, "enc.0.norm", "mean", "train", 2)
        cmp = _values(rows, "enc.0.norm", "mean", "whole", 2)
        assert row.w1 == pytest.approx(wasserstein_distance(ref, cmp), rel=1e-9)


# -------------------------------------------------------------------------------- summary


def _table(rows: list[tuple[str, str, float, float]], stat: str = "mean") -> pd.DataFrame:
    """A hand-made shift table: (site, comparison, w1, kl) rows, channel "all"."""
    return pd.DataFrame(
        [
            ("m", "deblur", "photos", site, "in", int(site[1:]), stat, "all", comp, kl, 0.1, w)
            + (w, 10, 10)
            for site, comp, w, kl in rows
        ],
        columns=list(SHIFT_COLUMNS),
    )


def test_summary_on_a_known_case():
    whole = [1.0, 1.0, 2.0, 4.0]
    tlc = [0.5, 2.0, 0.5, 4.0]  # improved at sites 0 and 2; ratios 0.5, 2, 0.25, 1
    kl_whole, kl_tlc = [1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.1, 3.0]  # kl improved at 3 of 4
    rows = [(f"s{i}", "whole~train", whole[i], kl_whole[i]) for i in range(4)]
    rows += [(f"s{i}", "tlc~train", tlc[i], kl_tlc[i]) for i in range(4)]
    table = _table(rows)
    noise = table.assign(channel="0", w1=100.0)  # per-channel rows must be ignored
    out = summary(pd.concat([table, noise], ignore_index=True))
    assert len(out) == 1
    got = out.iloc[0]
    assert got.n_sites == 4
    assert got.frac_w1_improved == 0.5
    assert got.frac_kl_improved == 0.75
    assert got.median_w1_ratio == pytest.approx(np.median([0.5, 2.0, 0.25, 1.0]))
    assert "frac_w1_improved_tiles" not in out.columns

    tiles = [(f"s{i}", "tiles~train", w, 0.0) for i, w in enumerate([0.1, 0.1, 3.0, 8.0])]
    out = summary(_table(rows + tiles)).iloc[0]
    assert out.frac_w1_improved_tiles == 0.5
    assert out.median_w1_ratio_tiles == pytest.approx(np.median([0.1, 0.1, 1.5, 2.0]))


def test_summary_end_to_end_tlc_improves_everywhere():
    # tlc drawn almost like train, whole shifted by one std: every site improves
    out = summary(shift_table(synthetic_stats(tiles=True)))
    assert set(out.stat) == {"mean", "std"}
    assert (out.frac_w1_improved == 1.0).all() and (out.median_w1_ratio < 1).all()
    assert out.loc[out.stat == "mean", "n_sites"].item() == 2


# ----------------------------------------------------------------------------------- I/O


def test_read_stats_and_write_shift_roundtrip(tmp_path):
    stats = synthetic_stats(tiles=True)
    data = tmp_path / "stats"
    for regime, part in stats.groupby("regime"):
        folder = data / f"regime={regime}"
        folder.mkdir(parents=True)
        part.drop(columns="regime").to_parquet(folder / "part-0.parquet", index=False)
    (data / "_run.json").write_text("{}")
    (data / "regime=train" / ".part-1.parquet.tmp").write_bytes(b"half a file")
    back = read_stats(data)
    assert len(back) == len(stats)
    assert back["regime"].dtype != "category" and set(back.regime) == set(stats.regime)
    assert str(back.y.dtype) == "Int32" and back.value.dtype == np.float32
    key = ["regime", "site", "stat", "channel", "sample", "y", "x"]
    pd.testing.assert_frame_equal(
        shift_table(back).sort_values(list(SHIFT_COLUMNS[:8])).reset_index(drop=True),
        shift_table(stats).sort_values(list(SHIFT_COLUMNS[:8])).reset_index(drop=True),
    )
    assert back.sort_values(key).value.to_numpy().tolist() == (
        stats.sort_values(key).value.to_numpy().tolist()
    )

    table = shift_table(back)
    paths = write_shift(table, tmp_path / "out")
    names = {"shift.csv", "shift.parquet", "decomposition.csv", "summary.csv"}
    assert {p.name for p in paths.values()} == names
    assert {p.name for p in (tmp_path / "out").iterdir()} == names
    pd.testing.assert_frame_equal(pd.read_parquet(paths["shift_parquet"]), table)
    csv = pd.read_csv(paths["shift_csv"], dtype={"channel": str})
    assert list(csv.columns) == [*SHIFT_COLUMNS, *INTERVAL_COLUMNS] and len(csv) == len(table)
    np.testing.assert_allclose(csv.w1, table.w1, rtol=1e-12)
    assert len(pd.read_csv(paths["summary_csv"])) == 2
