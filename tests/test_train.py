"""Patch training: loss goes down, checkpoints load, resuming equals not stopping."""

import pytest
import torch

from tlc_probe.jobs.train import TrainConfig, train
from tlc_probe.metrics import psnr
from tlc_probe.store import build_from_checkpoint

pytestmark = pytest.mark.slow


def _cfg(tmp_path, name="run.pt", **kw):
    base = dict(
        model="nafnet",
        task="derain",
        out=str(tmp_path / name),
        iters=24,
        batch=4,
        n_per_photo=1,
        val_every=12,
        lr=2e-3,
    )
    return TrainConfig(**{**base, **kw})


def test_loss_goes_down_and_checkpoint_loads(tmp_path):
    res = train(_cfg(tmp_path), progress=False)
    first, last = sum(res["losses"][:6]) / 6, sum(res["losses"][-6:]) / 6
    assert last < first, (first, last)
    model, meta = build_from_checkpoint(tmp_path / "run.pt")
    assert meta["train_size"] == 64 and meta["iterations"] == 24 and meta["task"] == "derain"
    assert meta["name"] == "nafnet" and abs(meta["output_psnr"] - res["output_psnr"]) < 1e-9
    assert (tmp_path / "run.pt.resume.pt").exists()


def test_resume_equals_an_uninterrupted_run(tmp_path):
    full = train(_cfg(tmp_path, "full.pt"), progress=False)
    part = train(_cfg(tmp_path, "part.pt"), progress=False, stop_after=10)
    assert part["iterations"] == 10
    rest = train(_cfg(tmp_path, "part.pt"), resume=True, progress=False)
    assert rest["iterations"] == 24
    assert full["losses"][10:] == rest["losses"]
    a, _ = build_from_checkpoint(tmp_path / "full.pt")
    b, _ = build_from_checkpoint(tmp_path / "part.pt")
    assert all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_psnr_matches_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio

    x, y = torch.rand(3, 20, 30), torch.rand(3, 20, 30)
    assert (
        abs(psnr(x, y) - peak_signal_noise_ratio(y.numpy(), x.numpy(), data_range=1.0)) < 1e-6
    )  # skimage: float32 MSE
    assert psnr(x, x) == float("inf")
