"""The scheme PSNR table, against PSNR computed here by hand."""

import pytest
import torch

from tlc_probe.data.datasets import SyntheticPairs
from tlc_probe.jobs.evaluate import psnr_table
from tlc_probe.jobs.render import markdown
from tlc_probe.metrics import psnr
from tlc_probe.models import build
from tlc_probe.store import save_checkpoint


@pytest.mark.slow
def test_table_of_an_identity_like_checkpoint(tmp_path):
    # A fresh NAFNet's blocks are identities (beta = gamma = 0); with the ending conv
    # zeroed the net returns its input, so every scheme scores the input's PSNR.
    model = build("nafnet", "tiny").eval()
    with torch.no_grad():
        model.ending.weight.zero_()
        model.ending.bias.zero_()
    path = save_checkpoint(model, tmp_path / "n.pt", train_size=64, task="dehaze")
    table = psnr_table([path], reliance=True)
    row = table.iloc[0]
    data = SyntheticPairs("dehaze", split="test", n_per_photo=1, seed=0)
    expected = sum(psnr(data[i]["input"].clamp(0, 1), data[i]["target"]) for i in range(3)) / 3
    assert row["model"] == "nafnet-tiny" and row["task"] == "dehaze" and row["n"] == 3
    for col in ("input", "whole", "tlc", "tiles-16"):
        assert abs(row[col] - expected) < 1e-4, col
    md = markdown(table.round(2))
    assert md.splitlines()[0].startswith("| model | task | train_size | site_maps | input |")
    # NAFNet-tiny: SE pools at full resolution down to 1/8 (three downsamplings)
    assert row["site_maps"] == "8x8-64x64"
    # the output ignores every SE gate (the ending conv is zero): freezing changes nothing
    assert row["frozen_all"] == 0.0 and row["relied_sites"] == "0/8"
    assert torch.isfinite(torch.tensor(float(row["whole"])))
