"""Restormer (attention sites) and SPDNet (linear SE sites) through collect -> shift ->
figures: every regime recorded at every executed site, the shift table and Fig. A3 /
depth figures drawn for the attention statistics."""

import warnings

import pytest
import torch

from tlc_probe.jobs.collect import CollectConfig, collect
from tlc_probe.jobs.figures import stats_figures
from tlc_probe.jobs.shift import store_shift_table
from tlc_probe.metrics.shift import COMPARISONS
from tlc_probe.models import build
from tlc_probe.sites import execution_order
from tlc_probe.store import read_stats

TS = 32


def _images(n, h=48, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"input": torch.rand(3, h, w, generator=g), "id": f"im{i}"} for i in range(n)]


@pytest.mark.parametrize("name,task", [("restormer", "deblur"), ("spdnet", "derain")])
def test_collect_shift_and_figures(name, task, tmp_path):
    torch.manual_seed(0)
    model = build(name, "tiny").eval()
    cfg = CollectConfig(n_crops=4, crop_batch=2, positions=3, tile_overlap=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SPDNet: its never-called instance norms stay
        collect(
            model,
            tmp_path / "s",
            model_name=f"{name}-tiny",
            task=task,
            train_size=TS,
            test_data=_images(1),
            train_data=_images(2, 64, 64, seed=1),
            config=cfg,
            progress=False,
        )
    df = read_stats(tmp_path / "s")
    executed = {s.name for s in execution_order(model) if s.executed}
    kind = "attn" if name == "restormer" else "se"
    for regime in ("train", "whole", "tlc", "tiles", "window"):
        sub = df[df["regime"] == regime]
        assert set(sub["site"]) == executed, regime
        assert set(sub["kind"]) == {kind}, regime
    stats = {"q_rms", "k_rms", "logit_mean"} if kind == "attn" else {"mean"}
    assert set(df["stat"]) == stats
    assert df.loc[df["regime"] == "tlc", "y"].notna().any()
    table = store_shift_table(tmp_path / "s", COMPARISONS, per_channel=False)
    assert {"whole~train", "tlc~train", "tiles~train", "window~train"} <= set(table["comparison"])
    assert set(table["stat"]) == stats
    paths = stats_figures(tmp_path / "s", tmp_path / "fig", shift=table)
    names = {p.stem for p in paths}
    assert any("-a3-" in n for n in names) and any(n.endswith("-depth") for n in names)
