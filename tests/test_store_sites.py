"""Reading a store one site at a time: the same rows and the same shift table as reading
it whole (the in-memory path is the reference), and part files a site filter can skip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from tlc_probe.jobs.collect import CollectConfig, collect
from tlc_probe.jobs.shift import shift_outputs, store_shift_table
from tlc_probe.metrics import COMPARISONS, shift_table
from tlc_probe.store import read_stats
from tlc_probe.store.parts import part_path, write_part
from tlc_probe.store.read import SiteIndex, iter_sites, read_site, site_groups

REGIMES = ("train", "whole", "tlc", "tiles", "window")
ROW_KEY = ["model", "task", "regime", "site", "stat", "channel", "sample", "y", "x"]


def _frame(rng, model, sites, regime, n_samples, step=None):
    rows = []
    for depth, site in enumerate(sites):
        kind = "in" if depth % 2 else "se"
        for stat in ("mean", "std") if kind == "in" else ("mean",):
            for s in range(n_samples):
                for channel in range(3):
                    y, x = (s % 2, s // 2) if regime == "tlc" else (None, None)
                    v = rng.normal(depth + (regime == "whole"), 1.0)
                    sample = f"{regime}{s}"
                    rows.append((model, "t", site, kind, depth, sample, channel, y, x, stat, v))
    cols = "model task site kind depth sample channel y x stat value".split()
    df = pd.DataFrame(rows, columns=cols).astype(
        {"depth": "int32", "channel": "int32", "y": "Int32", "x": "Int32", "value": "float32"}
    )
    df.loc[df.index[::37], "value"] = np.nan  # dropped by both paths alike
    if step is not None:
        df["step"] = pd.array([step] * len(df), dtype="Int64")
    return df.sample(frac=1.0, random_state=int(rng.integers(1 << 30)))  # sites interleaved


def _store(root, rng, model, sites, step=None):
    for regime in REGIMES:
        for chunk in range(3):
            frame = _frame(rng, model, sites, regime, 4 if regime != "train" else 6, step)
            write_part(frame, part_path(root, regime, chunk), {"model": model})


@pytest.fixture
def stores(tmp_path):
    rng = np.random.default_rng(0)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _store(a, rng, "m1", ["enc.0", "enc.1", "dec.0", "mid"])
    _store(b, rng, "m2", ["enc.0", "x"])  # a site name shared with another model
    _store(c, rng, "m3", ["s.0", "s.1"], step=5)  # recorded during training
    # a part file from before the step column, in the stepped store
    old = _frame(rng, "m3", ["s.0"], "whole", 3)
    old.to_parquet(part_path(c, "whole", 99), index=False)
    # a file not written by write_part: one row group holding two sites, interleaved
    mixed = _frame(rng, "m1", ["enc.0", "mid"], "tiles", 2)
    mixed.to_parquet(part_path(a, "tiles", 98), index=False)
    assert pq.ParquetFile(part_path(a, "tiles", 98)).metadata.num_row_groups == 1
    return [a, b, c]


def test_site_by_site_rows_equal_the_whole_store(stores):
    whole = read_stats(stores).sort_values(ROW_KEY).reset_index(drop=True)
    assert site_groups(stores) == sorted(set(map(tuple, whole[["model", "task", "site"]].values)))
    got = [frame for _key, frame in iter_sites(stores)]
    assert all(f["site"].nunique() == 1 and f["model"].nunique() == 1 for f in got)
    joined = pd.concat(got, ignore_index=True).sort_values(ROW_KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(joined, whole)


@pytest.mark.parametrize("per_channel, workers", [(True, 2), (False, 1), (True, 3)])
def test_store_shift_table_equals_the_in_memory_table(stores, per_channel, workers):
    for paths in (stores, stores[:2], stores[2]):
        expected = shift_table(read_stats(paths), COMPARISONS, per_channel=per_channel)
        got = store_shift_table(paths, COMPARISONS, per_channel=per_channel, workers=workers)
        assert len(got) > 0
        pd.testing.assert_frame_equal(got, expected)
    assert "step" in store_shift_table(stores, COMPARISONS).columns
    with pytest.raises(ValueError, match="workers"):
        store_shift_table(stores, COMPARISONS, workers=0)


def test_site_index_reads_only_the_row_groups_of_a_site(stores):
    index = SiteIndex(stores)
    pieces = index[("m1", "t", "mid")]
    # one row group in each of the 15 files written by write_part, and the mixed file
    assert len(pieces) == 16 and sum(p.mixed for p in pieces) == 1
    assert all(len(p.row_groups) == 1 for p in pieces)
    assert {dict(p.partition)["regime"] for p in pieces} == set(REGIMES)
    assert index[("m2", "t", "x")] and ("m2", "t", "mid") not in index
    frame = read_site(index, ("m1", "t", "mid"), columns=["regime", "value"])
    assert set(frame.columns) == {"model", "task", "test_set", "site", "regime", "value", "step"}
    whole = read_stats(stores[0])
    assert len(frame) == int((whole["site"] == "mid").sum())
    with pytest.raises(KeyError):
        read_site(index, ("m1", "t", "nowhere"))


def test_part_files_hold_one_row_group_per_site_and_a_filter_skips_the_rest(stores):
    path = part_path(stores[0], "whole", 0)
    meta = pq.ParquetFile(path).metadata
    col = meta.schema.names.index("site")
    ranges = [
        (meta.row_group(i).column(col).statistics.min, meta.row_group(i).column(col).statistics.max)
        for i in range(meta.num_row_groups)
    ]
    assert meta.num_row_groups == 4 and all(lo == hi for lo, hi in ranges)
    assert [lo for lo, _ in ranges] == sorted(lo for lo, _ in ranges)
    fragment = next(ds.dataset(path, format="parquet").get_fragments())
    kept = list(fragment.split_by_row_group(filter=ds.field("site") == "mid"))
    assert len(kept) == 1


def test_shift_outputs_on_a_collected_store_equals_the_in_memory_table(tmp_path):
    class TwoSites(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.norm = nn.InstanceNorm2d(4, affine=True)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.out = nn.Conv2d(4, 3, 1)

        def forward(self, x):
            h = self.norm(self.conv(x))
            return self.out(h * torch.sigmoid(self.pool(h)))

    g = torch.Generator().manual_seed(0)
    test = [{"input": torch.rand(3, 48, 64, generator=g), "id": f"t{i}"} for i in range(2)]
    train = [{"input": torch.rand(3, 80, 80, generator=g), "id": f"r{i}"} for i in range(2)]
    collect(
        TwoSites().eval(),
        tmp_path / "stats",
        model_name="toy",
        task="t",
        train_size=32,
        test_data=test,
        train_data=train,
        config=CollectConfig(n_crops=8, crop_batch=4, positions=3),
        progress=False,
    )
    r = shift_outputs(tmp_path / "stats", tmp_path / "out")
    expected = shift_table(read_stats(tmp_path / "stats"), COMPARISONS)
    assert set(expected["comparison"]) == set(COMPARISONS)
    pd.testing.assert_frame_equal(r["table"], expected)


def test_a_parquet_file_that_is_no_store_is_refused(tmp_path):
    pd.DataFrame({"a": [1.0]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="not a statistics table"):
        store_shift_table(tmp_path / "x.parquet", COMPARISONS)
    with pytest.raises(FileNotFoundError):
        store_shift_table(tmp_path / "nothing", COMPARISONS)


def test_columns_constant_by_the_footers_are_not_read_but_are_right(tmp_path):
    # kind, depth and stat hold one value per row group: taken from the statistics, not
    # read; a float column is always read (its statistics leave NaN out)
    rng = np.random.default_rng(3)
    frame = _frame(rng, "m", ["a", "b"], "whole", 4)
    frame["value"] = np.float32(2.0)
    write_part(frame, part_path(tmp_path, "whole", 0))
    # a foreign file of one site whose floats hold real NaN (not nulls): min == max == 2
    one = _frame(rng, "m", ["c"], "whole", 4).reset_index(drop=True)
    values = np.full(len(one), 2.0, np.float32)
    values[:3] = np.nan
    table = pa.Table.from_pandas(one.drop(columns="value"), preserve_index=False)
    table = table.append_column("value", pa.array(values, from_pandas=False))
    pq.write_table(table, part_path(tmp_path, "whole", 1))
    stats = (
        pq.ParquetFile(part_path(tmp_path, "whole", 1))
        .metadata.row_group(0)
        .column(table.schema.names.index("value"))
        .statistics
    )
    assert stats.min == stats.max == 2.0 and stats.null_count == 0
    expected = read_stats(tmp_path)
    for site in ("a", "b", "c"):
        got = read_site(tmp_path, ("m", "t", site))
        want = expected[expected["site"] == site].reset_index(drop=True)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
    assert read_site(tmp_path, ("m", "t", "c"))["value"].isna().sum() == 3


def test_a_part_file_holds_the_rows_sorted_by_site_whatever_order_its_runs_come_in(tmp_path):
    rng = np.random.default_rng(1)
    runs = [_frame(rng, "m", [site], "whole", 3) for site in ("mid", "enc.0", "dec.0")]
    runs = [r.sort_values(["sample", "channel"], kind="stable") for r in runs]  # row order kept
    contiguous = pd.concat(runs, ignore_index=True)  # each site one run, names out of order
    interleaved = contiguous.sample(frac=1.0, random_state=3)
    for frame in (contiguous, interleaved):
        path = write_part(frame.assign(regime="whole"), tmp_path / "p.parquet")
        meta = pq.ParquetFile(path).metadata
        assert meta.num_row_groups == 3
        got = pq.read_table(path).to_pandas()
        want = frame.sort_values("site", kind="stable").reset_index(drop=True)
        assert got["site"].tolist() == want["site"].tolist()
        assert np.array_equal(got["value"].to_numpy(), want["value"].to_numpy(), equal_nan=True)
        assert got["sample"].tolist() == want["sample"].tolist()
