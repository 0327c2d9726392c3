"""The generated test set (``synthetic``): deterministic, disjoint from training, and a test
set everywhere a run names one (ImageSource, the CLI, the store, the shift table)."""

import argparse
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tlc_probe.cli.options import add_data_options, image_source
from tlc_probe.data import datasets, synthetic_pairs
from tlc_probe.jobs.images import ImageSource
from tlc_probe.jobs.train import TrainConfig, training_pool
from tlc_probe.metrics.intervals import image_of
from tlc_probe.metrics.shift import shift_table
from tlc_probe.store import read_stats, shipped_checkpoints
from tlc_probe.store.checkpoint import read_checkpoint
from tlc_probe.store.parts import part_path, write_part
from tlc_probe.store.read import SiteIndex, read_site
from tlc_probe.store.schema import META_KEY


def _seeds_drawn(dataset, monkeypatch) -> set[int]:
    """Every seed ``dataset``'s items draw an image or a degradation from (the generators
    patched to record the seed and return a small image)."""
    drawn: set[int] = set()

    def leaves(size, seed, **_):
        drawn.add(int(seed))
        return torch.zeros(3, 8, 8)

    def degrade(task, img, seed, depth=None):
        drawn.add(int(seed))
        return img

    monkeypatch.setattr(datasets, "dead_leaves", leaves)
    monkeypatch.setattr(datasets, "degrade", degrade)
    monkeypatch.setattr(datasets, "load_photo", lambda name: torch.zeros(3, 8, 8))
    monkeypatch.setattr(datasets, "load_depth", lambda name: None)
    datasets._leaves.cache_clear()
    datasets.GENERATED.clear()
    try:
        for i in range(len(dataset)):
            dataset[i]
    finally:
        datasets._leaves.cache_clear()
        datasets.GENERATED.clear()
    return drawn


def test_the_synthetic_set_is_deterministic_and_of_the_paper_geometry():
    a, b = synthetic_pairs("deblur"), synthetic_pairs("deblur")
    assert len(a) == 12 and len(synthetic_pairs("deblur", "train")) == 24
    x, y = a[3], b[3]
    assert x["input"].shape == (3, 360, 640) and x["id"] == "synthetic-03"
    assert torch.equal(x["input"], y["input"]) and torch.equal(x["target"], y["target"])
    assert not torch.equal(x["target"], a[4]["target"])
    assert not torch.equal(x["input"], x["target"])  # degraded
    # each image is its own unit of resampling (not one "photo" with degradations)
    ids = [a[i]["id"] for i in range(3)]
    assert list(image_of(ids)) == ids
    with pytest.raises(ValueError, match="split"):
        synthetic_pairs("deblur", "val")


def test_synthetic_seeds_are_disjoint_from_every_shipped_checkpoints_training(monkeypatch):
    test_seeds = set()
    for task in ("deblur", "derain", "dehaze"):
        for split in ("test", "train"):
            test_seeds |= _seeds_drawn(synthetic_pairs(task, split), monkeypatch)
    assert len(test_seeds) == 2 * (12 + 24)  # an image seed and a degradation seed each
    checked = 0
    for ck in shipped_checkpoints():
        tc = read_checkpoint(ck)[1]["train_config"]
        cfg = TrainConfig(**{k: v for k, v in tc.items() if k in TrainConfig.__dataclass_fields__})
        trained = _seeds_drawn(training_pool(cfg), monkeypatch)  # the path training takes
        assert len(trained) >= 24 and not trained & test_seeds, ck.name
        checked += 1
    assert checked == 7
    # a seeded synthetic set other than 0 is another set, still far from training seeds
    other = _seeds_drawn(synthetic_pairs("deblur", "test", seed=5), monkeypatch)
    assert not other & test_seeds and min(other) > 10**12


def test_image_source_of_each_test_set(tmp_path):
    syn = ImageSource.of("synthetic")
    assert syn.label() == "synthetic" and syn.bundled
    assert [syn.test_set("derain")[i]["id"] for i in (0, 11)] == ["synthetic-00", "synthetic-11"]
    assert syn.train_set("derain")[0]["id"] == "synthetic-train-00"
    assert "dead-leaves" in syn.describe("derain") and "per task" in syn.describe(None)
    assert ImageSource.of("photos").label() == "photos"
    (tmp_path / "mine").mkdir()
    assert ImageSource.of(tmp_path / "mine").label() == "mine"
    with pytest.raises(ValueError, match="not with data"):
        ImageSource(tmp_path / "mine", synthetic=True)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_data_options(p, train=True)
    return p.parse_args(list(argv))


def test_cli_test_set_option(tmp_path):
    assert image_source(_args()).label() == "photos"
    assert image_source(_args("--test-set", "synthetic")).synthetic
    folder = tmp_path / "pairs"
    folder.mkdir()
    assert image_source(_args("--test-set", str(folder))).data == str(folder)
    with pytest.raises(ValueError, match="give one"):
        image_source(_args("--test-set", "synthetic", "--data", str(folder)))
    with pytest.raises(FileNotFoundError, match="not photos, synthetic or an existing folder"):
        image_source(_args("--test-set", "synthetc"))  # a typo is named as such


def _frame(model: str, regime: str, shift: float, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(len(regime))
    return pd.DataFrame(
        {
            "model": model,
            "task": "deblur",
            "site": "s",
            "kind": "se",
            "depth": 0,
            "sample": [f"img{i % 8}" for i in range(n)],
            "channel": 0,
            "y": pd.array([pd.NA] * n, dtype="Int32"),
            "x": pd.array([pd.NA] * n, dtype="Int32"),
            "stat": "mean",
            "value": (rng.normal(size=n) + shift).astype(np.float32),
        }
    )


def test_test_set_round_trips_through_the_store_and_splits_the_shift(tmp_path):
    for test_set, shift in (("photos", 1.0), ("synthetic", 0.0)):
        root = tmp_path / test_set
        for regime, s in (("train", 0.0), ("whole", shift)):
            write_part(_frame("m", regime, s), part_path(root, regime, 0), {"test_set": test_set})
    stats = read_stats([tmp_path / "photos", tmp_path / "synthetic"])
    assert set(stats["test_set"]) == {"photos", "synthetic"}
    assert list(stats.columns[:4]) == ["model", "task", "test_set", "regime"]
    table = shift_table(stats, ["whole~train"], per_channel=False)
    w1 = table.set_index("test_set")["w1"]
    assert len(table) == 2 and w1["photos"] > 0.5 > w1["synthetic"]  # never pooled
    # a store written before test sets: part files without the column read as photos
    old = tmp_path / "old" / "regime=whole"
    old.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(_frame("m", "whole", 0.0)), old / "part-0-000000.parquet")
    assert set(read_stats(tmp_path / "old")["test_set"]) == {"photos"}
    both = read_stats([tmp_path / "old", tmp_path / "synthetic"])  # old and new together
    assert set(both["test_set"]) == {"photos", "synthetic"}
    # a store written when collect recorded the test set in its run metadata only
    gopro = tmp_path / "gopro" / "regime=whole"
    gopro.mkdir(parents=True)
    table = pa.Table.from_pandas(_frame("m", "whole", 0.0), preserve_index=False)
    meta = {META_KEY: json.dumps({"model": "m", "test_set": "GoPro"}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), gopro / "part-0-000000.parquet")
    assert set(read_stats(tmp_path / "gopro")["test_set"]) == {"GoPro"}
    index = SiteIndex(tmp_path / "gopro")
    assert set(read_site(index, ("m", "deblur", "s"))["test_set"]) == {"GoPro"}


def test_figures_refuse_to_pool_two_test_sets(tmp_path):
    from tlc_probe.jobs.figures import stats_figures

    for test_set in ("photos", "synthetic"):
        root = tmp_path / test_set
        for regime, s in (("train", 0.0), ("whole", 1.0), ("tlc", 0.5)):
            write_part(_frame("m", regime, s), part_path(root, regime, 0), {"test_set": test_set})
    with pytest.raises(ValueError, match="hold test sets \\['photos', 'synthetic'\\]"):
        stats_figures([tmp_path / "photos", tmp_path / "synthetic"], tmp_path / "figs")
    assert stats_figures(tmp_path / "synthetic", tmp_path / "figs")  # one test set draws
