"""Per-site windows chosen from the shift: a constructed model whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tlc_probe import convert
from tlc_probe.jobs.images import ImageSource
from tlc_probe.jobs.tune import tune_windows


class SEOnInput(nn.Module):
    """A squeeze-excitation on the image itself: its statistic is the mean of the input
    over the window, so windows of the training extent reproduce the training crops'
    distribution exactly, and larger ones narrow it."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(self.pool(x)))


def _blocks(folder, n: int = 3, block: int = 32, size=(384, 512)) -> None:
    """``pairs`` layout: images of i.i.d. grey blocks (a statistic whose spread falls
    clearly with the window: a 96-px window averages about twice the blocks of a 64-px)."""
    rng = np.random.default_rng(0)
    for sub in ("input", "target"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        g = rng.integers(0, 256, (size[0] // block, size[1] // block), dtype=np.uint8)
        img = np.repeat(np.repeat(g, block, 0), block, 1)
        for sub in ("input", "target"):
            Image.fromarray(np.stack([img] * 3, -1)).save(folder / sub / f"b{i}.png")


def test_tuning_picks_the_training_extent_for_a_mean_of_the_input(tmp_path):
    _blocks(tmp_path / "blocks")
    images = ImageSource(data=tmp_path / "blocks", layout="pairs", train_data=tmp_path / "blocks")
    torch.manual_seed(0)
    res = tune_windows(
        SEOnInput().eval(),
        task="deblur",
        train_size=64,
        name="se-on-input",
        images=images,
        n_images=3,
        candidates=(1.0, 1.5, 3.0, "global"),
        n_crops=512,
        positions=16,
        progress=False,
    )
    assert res["chosen"].windows == {"pool": (64, 64)}
    sc = res["scores"]
    assert sc.loc[sc["chosen"], "candidate"].tolist() == ["x1"]  # the report reads this
    s = res["scores"].set_index("candidate")["w1_norm"]
    assert s["x1"] < s["x1.5"] < s["x3"] < s["global"]  # the further from 64 px, the worse
    assert s["tuned"] == pytest.approx(s["x1"])  # measured again with the plan
    plan = res["plan"]
    kept = plan.validation["kept"]
    assert plan.windows == {"pool": (64, 64) if kept == "tuned" else (96, 96)}
    assert len(res["validation"]) == 6 and set(res["validation"]["scheme"]) == {
        "uniform",
        "tuned",
    }
    x = torch.rand(1, 3, 200, 260)
    with torch.no_grad():  # the plan converts
        assert convert(SEOnInput(), 64, plan=plan)(x).shape == x.shape


def test_tuning_refuses_candidates_without_the_uniform_rule():
    with pytest.raises(ValueError, match="uniform rule"):
        tune_windows(SEOnInput(), task="deblur", train_size=64, name="m", candidates=(1, 2))
    with pytest.raises(ValueError, match=">= 1"):
        tune_windows(SEOnInput(), task="deblur", train_size=64, name="m", candidates=(0.5, 1.5))
