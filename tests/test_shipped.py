"""The checkpoints shipped with the package: loadable, with metadata, and restoring."""

from pathlib import Path

import pytest
import torch

import tlc_probe
from tlc_probe.data.datasets import SyntheticPairs
from tlc_probe.metrics import psnr
from tlc_probe.sites import feature_sizes
from tlc_probe.store import (
    CHECKPOINTS_ENV,
    build_from_checkpoint,
    checkpoint_dir,
    shipped_checkpoints,
)

SHIPPED = shipped_checkpoints(Path(tlc_probe.__file__).parent / "checkpoints")


def test_the_trained_checkpoints_are_shipped():
    names = {p.name for p in SHIPPED}
    assert names == {
        "hinet-tiny-deblur.pt",
        "mprnet-tiny-deblur.pt",
        "nafnet-tiny-deblur.pt",
        "hinet-tiny-derain.pt",
        "ffanet-tiny-dehaze.pt",
        "restormer-tiny-deblur.pt",
        "spdnet-tiny-derain.pt",
    }


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_checkpoint_restores_held_out_photos(path):
    assert path.stat().st_size <= 5 * 2**20
    model, meta = build_from_checkpoint(path)
    assert meta["train_size"] == 128 and meta["iterations"] > 0
    # the paper's regime: every global site sees at least 16 x 16 on a training patch
    sizes = [hw for v in feature_sizes(model, meta["train_size"]).values() for hw in v]
    assert sizes and min(min(hw) for hw in sizes) >= 16
    assert path.name == f"{meta['name']}-{meta['preset']}-{meta['task']}.pt"
    data = SyntheticPairs(meta["task"], split="test", n_per_photo=1, seed=0)
    gains = []
    with torch.no_grad():
        for i in range(len(data)):
            item = data[i]
            out = model(item["input"][None]).clamp(0, 1)[0]
            gains.append(psnr(out, item["target"]) - psnr(item["input"], item["target"]))
    print(f"{path.name}: PSNR gain per test photo {[round(g, 2) for g in gains]} dB")
    # Acceptance: above the degraded input with whole-image inference. The margin is the
    # smallest measured gain (hinet-tiny-deblur, +1.16 dB) rounded down; see
    # tlc_probe/checkpoints/README.md.
    assert sum(gains) / len(gains) > 1.0


def test_checkpoint_folder_is_the_argument_else_the_environment_else_the_package(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(CHECKPOINTS_ENV, raising=False)
    assert checkpoint_dir() == Path(tlc_probe.__file__).parent / "checkpoints"
    for name in ("b.pt", "a.pt", "a.pt.resume.pt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path))
    assert checkpoint_dir() == tmp_path
    assert shipped_checkpoints() == [tmp_path / "a.pt", tmp_path / "b.pt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert checkpoint_dir(empty) == empty
    with pytest.raises(FileNotFoundError, match="no tlc-probe checkpoints"):
        shipped_checkpoints(empty)
