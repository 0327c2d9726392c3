"""collect / store: regimes, Parquet layout, atomic parts, resume after a kill, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from folders import pairs_folder
from torch import nn

from tlc_probe.jobs.collect import CollectConfig, collect, collect_checkpoint
from tlc_probe.models import build
from tlc_probe.store import COLUMNS, read_meta, read_stats, save_checkpoint
from tlc_probe.store.parts import parts
from tlc_probe.tiling import image_tiles, tile_starts

TS = 32


def _images(n, h=48, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"input": torch.rand(3, h, w, generator=g), "id": f"im{i}"} for i in range(n)]


def _model():
    torch.manual_seed(0)
    return build("nafnet", "tiny").eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "nafnet-tiny-deblur.pt"
    save_checkpoint(_model(), path, train_size=TS, task="deblur")
    return path


def test_collect_all_regimes_layout_counts_and_readers(tmp_path):
    model, test, train = _model(), _images(2), _images(2, 64, 64, seed=1)
    cfg = CollectConfig(n_crops=5, crop_batch=2, positions=3, tile_overlap=8)
    r = collect(
        model,
        tmp_path / "s",
        model_name="nafnet-tiny",
        task="deblur",
        train_size=TS,
        test_data=test,
        train_data=train,
        config=cfg,
        progress=False,
    )
    assert dict(r.written) == {"train": 3, "whole": 2, "tlc": 2, "tiles": 2, "window": 2}
    files = parts(tmp_path / "s")
    assert [f.parent.name for f in files].count("regime=train") == 3
    # collect writes no step column (its files are as before training steps existed) ...
    assert all("step" not in pq.read_schema(f).names for f in files)
    df = read_stats(tmp_path / "s")
    assert tuple(df.columns) == COLUMNS  # ... and reads back with a null one
    assert df["step"].isna().all()
    assert set(df["regime"]) == {"train", "whole", "tlc", "tiles", "window"}
    n_tiles = len(tile_starts(48, TS, 8)) * len(tile_starts(80, TS, 8))
    samples = df.groupby("regime")["sample"].nunique().to_dict()
    assert samples == {"train": 5, "whole": 2, "tlc": 2, "tiles": 2 * n_tiles, "window": 2}
    crops = df.loc[df.regime == "train", "sample"].str.extract(r"/c(\d+)@")[0].astype(int)
    assert sorted(set(crops)) == list(range(5))  # 5 crops in chunks of 2, 2, 1
    sizes = df[df.regime == "whole"].groupby("site")["channel"].nunique()
    assert len(df[df.regime == "whole"]) == 2 * sizes.sum()  # nafnet: se sites, mean only
    assert len(df[df.regime == "tiles"]) == 2 * n_tiles * sizes.sum()
    assert df.loc[df.regime == "tlc", "y"].notna().any()
    assert df.loc[df.regime == "window", "y"].notna().all()
    assert df.loc[~df.regime.isin(["tlc", "window"]), "y"].isna().all()
    # one window per tile at every site (values and places: tests/test_window.py)
    win = df[df.regime == "window"].groupby(["sample", "site", "channel", "stat"]).size()
    assert (win == n_tiles).all()
    assert len(df) == sum(r.rows.values())
    assert len(pd.read_parquet(tmp_path / "s")) == len(df)  # plain pandas reads the folder
    # DuckDB reads the Hive layout with the regime column
    q = f"select regime, count(*) n from read_parquet('{tmp_path}/s/**/*.parquet', "
    q += "hive_partitioning=true) group by regime"
    counts = dict(duckdb.sql(q).fetchall())
    assert counts == df["regime"].value_counts().to_dict()
    # pyarrow reads it lazily: a filtered count touches only what it needs
    lazy = ds.dataset(tmp_path / "s", format="parquet", partitioning="hive")
    site = df["site"].iloc[0]
    cond = (ds.field("regime") == "tlc") & (ds.field("site") == site)
    assert lazy.count_rows(filter=cond) == int(((df.regime == "tlc") & (df.site == site)).sum())
    meta = read_meta(files[0])
    assert meta["train_size"] == TS and meta["config"]["positions"] == 3
    assert json.loads((tmp_path / "s" / "_run.json").read_text())["model"] == "nafnet-tiny"


def test_whole_and_window_share_a_pass_with_the_rows_of_separate_passes(tmp_path):
    model, test = _model(), _images(2)
    frames = {}
    for regimes in (("whole", "window"), ("whole",), ("window",)):
        cfg = CollectConfig(positions=3, tile_overlap=8, regimes=regimes)
        out = tmp_path / "-".join(regimes)
        collect(
            model,
            out,
            model_name="m",
            task="deblur",
            train_size=TS,
            test_data=test,
            config=cfg,
            progress=False,
        )
        frames[regimes] = read_stats(out).sort_values(
            ["regime", "sample", "site", "channel", "stat", "y", "x"]
        )
    both = frames[("whole", "window")]
    for regime in ("whole", "window"):
        alone = frames[(regime,)].reset_index(drop=True)
        shared = both[both["regime"] == regime].reset_index(drop=True)
        assert len(alone) > 0
        pd.testing.assert_frame_equal(shared, alone)


def test_on_output_gets_each_whole_image_output_of_whole_and_tlc(tmp_path):
    from tlc_probe import convert

    model, test = _model(), _images(2)
    seen = []
    cfg = CollectConfig(positions=3, tile_overlap=8, regimes=("whole", "tlc", "tiles", "window"))
    kw = {"model_name": "m", "task": "deblur", "train_size": TS, "progress": False}
    collect(
        model,
        tmp_path / "s",
        test_data=test,
        config=cfg,
        on_output=lambda regime, item, out: seen.append((regime, item["id"], out)),
        **kw,
    )
    assert sorted((r, i) for r, i, _ in seen) == [
        ("tlc", "im0"),
        ("tlc", "im1"),
        ("whole", "im0"),
        ("whole", "im1"),
    ]  # one call per image and whole-image regime; tiles and window add none
    tlc = convert(model, train_size=TS)
    with torch.no_grad():
        for regime, image, out in seen:
            x = test[int(image[2:])]["input"][None]
            want = (model if regime == "whole" else tlc)(x)
            torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)


def test_tiles_are_the_tiles_of_tiled_inference():
    x = torch.arange(3 * 50 * 70, dtype=torch.float32).reshape(3, 50, 70)
    boxes, tiles = image_tiles(x, 32, 8)
    assert tiles.shape == (len(boxes), 3, 32, 32)
    for (y, x0), t in zip(boxes, tiles, strict=True):
        assert torch.equal(t, x[:, y : y + 32, x0 : x0 + 32])
    assert {b[0] for b in boxes} == set(tile_starts(50, 32, 8))


def test_refuse_overwrite_and_resume_setting_check(tmp_path):
    kw = dict(model_name="m", task="deblur", train_size=TS, test_data=_images(1), progress=False)
    cfg = CollectConfig(regimes=("whole",))
    collect(_model(), tmp_path, config=cfg, **kw)
    with pytest.raises(FileExistsError, match="mode=.resume."):
        collect(_model(), tmp_path, config=cfg, **kw)
    r = collect(_model(), tmp_path, config=cfg, mode="resume", **kw)
    assert r.skipped["whole"] == 1 and not r.written
    with pytest.raises(ValueError, match="other settings.*positions"):
        collect(
            _model(), tmp_path, config=CollectConfig(("whole",), positions=5), mode="resume", **kw
        )
    # a store of an older version that recorded its tiles' batch size (a speed setting
    # it no longer has) resumes
    run = json.loads((tmp_path / "_run.json").read_text())
    (tmp_path / "_run.json").write_text(
        json.dumps({**run, "config": {**run["config"], "tile_batch": 16}})
    )
    assert collect(_model(), tmp_path, config=cfg, mode="resume", **kw).skipped["whole"] == 1
    r = collect(_model(), tmp_path, config=cfg, mode="overwrite", **kw)
    assert r.written["whole"] == 1 and len(parts(tmp_path)) == 1
    bad = CollectConfig(("whole",), names=("nope*",))
    with pytest.raises(ValueError, match="matches no site"):
        collect(_model(), tmp_path, config=bad, mode="overwrite", **kw)
    assert len(parts(tmp_path)) == 1  # a bad pattern fails before the old run is deleted


class NaNSite(nn.Module):
    """Channel 0 of the pooled map is NaN."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = self.conv(x)
        y = torch.cat([y[:, :1] * float("nan"), y[:, 1:]], 1)
        return self.pool(y).mean() + x


def test_nonfinite_counted_and_dropped_unless_kept(tmp_path):
    kw = dict(model_name="m", task="t", train_size=8, test_data=_images(2), progress=False)
    with pytest.warns(RuntimeWarning, match=r"non-finite statistics dropped.*'pool': 2"):
        r = collect(NaNSite(), tmp_path / "a", config=CollectConfig(regimes=("whole",)), **kw)
    assert dict(r.nonfinite) == {"pool": 2}
    df = read_stats(tmp_path / "a")
    assert len(df) == 2 * 3 and np.isfinite(df["value"]).all()
    cfg = CollectConfig(regimes=("whole",), keep_nonfinite=True)
    with pytest.warns(RuntimeWarning, match="non-finite statistics kept"):
        collect(NaNSite(), tmp_path / "b", config=cfg, **kw)
    assert read_stats(tmp_path / "b")["value"].isna().sum() == 2


def test_small_image_and_missing_metadata_errors(tmp_path, ckpt):
    with pytest.raises(ValueError, match="smaller than train_size 32"):
        collect(
            _model(),
            tmp_path / "a",
            model_name="m",
            task="t",
            train_size=TS,
            test_data=_images(1),
            train_data=_images(1, 20, 40),
            config=CollectConfig(regimes=("train",)),
            progress=False,
        )
    raw = tmp_path / "raw.pth"
    torch.save(_model().state_dict(), raw)
    with pytest.raises(ValueError, match="model="):
        collect_checkpoint(raw, tmp_path / "b")
    with pytest.raises(ValueError, match="train_size="):
        collect_checkpoint(raw, tmp_path / "b", model_name="nafnet", preset="tiny", task="deblur")


def _cli(*args):
    return [sys.executable, "-m", "tlc_probe.cli", "collect", *map(str, args)]


@pytest.mark.slow
def test_kill_half_way_then_resume_equals_uninterrupted(tmp_path, ckpt):
    data = pairs_folder(tmp_path / "data", 2, 48, 64)
    common = ["--checkpoint", ckpt, "--data", data, "--train-data", data, "--crops", 120]
    common += ["--batch", 1, "--positions", 3, "--overlap", 8]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run(_cli(*common, "--out", full), check=True, env=env, capture_output=True)
    part = tmp_path / "part"
    proc = subprocess.Popen(
        _cli(*common, "--out", part), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while len(parts(part)) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = parts(part)
    assert 5 <= len(done) < len(parts(full)), "the kill must land half way"
    for f in done:  # only complete files are visible
        assert pq.read_table(f).num_rows > 0
    r = subprocess.run(_cli(*common, "--out", part), env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "--resume" in r.stderr
    subprocess.run(_cli(*common, "--out", part, "--resume"), check=True, env=env)
    key = ["regime", "site", "sample", "channel", "stat", "y", "x"]
    a = read_stats(full).sort_values(key, ignore_index=True)
    b = read_stats(part).sort_values(key, ignore_index=True)
    assert len(b) == len(a) and len(b.drop_duplicates(key)) == len(b)
    pd.testing.assert_frame_equal(a, b)
    assert not list(part.rglob(".*.tmp"))
