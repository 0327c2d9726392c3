"""Foreign checkpoints through spandrel: spandrel's own NAFNet class, saved the way the
official release saves it ({"params": state_dict}), detected, converted and probed."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch
from folders import pairs_folder

from tlc_probe import convert, list_sites
from tlc_probe.jobs.collect import CollectConfig, collect_checkpoint
from tlc_probe.models.foreign import _pad_crop_hooks, import_spandrel
from tlc_probe.store import build_from_checkpoint, read_stats

TRAIN = 32


def _official_nafnet_file(tmp_path):
    spandrel = import_spandrel()  # the extra is part of the test environment: no skip
    from spandrel.architectures.NAFNet import NAFNet

    torch.manual_seed(0)
    net = NAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
    for p in net.parameters():  # NAFNet's zero-initialised betas would make blocks identities
        p.data.normal_(0, 0.2)
    path = tmp_path / "NAFNet-GoPro-width8.pth"
    torch.save({"params": net.state_dict()}, path)
    return spandrel, net.eval(), path


def test_spandrel_detects_the_checkpoint_and_tlc_converts_it(tmp_path):
    spandrel, net, path = _official_nafnet_file(tmp_path)
    model, meta = build_from_checkpoint(path, task="deblur", train_size=TRAIN)
    assert type(model) is type(net)  # spandrel's class: the plain global model
    assert meta["name"] == "nafnet" and meta["preset"] == "spandrel"
    assert meta["train_size"] == TRAIN and meta["task"] == "deblur"
    x = torch.rand(1, 3, 37, 45)  # not a multiple of 4 (spandrel's NAFNet pads itself)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), atol=1e-6)
    sites = list_sites(model)
    assert {s.kind for s in sites} == {"se"} and len(sites) == 5  # one SCA pool per block
    tlc = convert(model, train_size=TRAIN)
    assert all(s.local for s in list_sites(tlc))
    small, big = torch.rand(1, 3, TRAIN, TRAIN), torch.rand(1, 3, 4 * TRAIN, 3 * TRAIN + 5)
    with torch.no_grad():
        assert torch.allclose(tlc(small), model(small), atol=1e-5)
        assert tlc(big).shape == big.shape
        assert not torch.allclose(tlc(big), model(big), atol=1e-4)


def test_collect_runs_the_whole_path_on_a_spandrel_checkpoint(tmp_path):
    _, _, path = _official_nafnet_file(tmp_path)
    cfg = CollectConfig(regimes=("train", "whole", "tlc"), positions=3, n_crops=4, crop_batch=4)
    res = collect_checkpoint(
        path,
        tmp_path / "stats",
        task="deblur",
        train_size=TRAIN,
        n_images=1,
        config=cfg,
        progress=False,
    )
    df = read_stats(tmp_path / "stats")
    assert set(df.model) == {"NAFNet-GoPro-width8"}  # the file stem: any route, one name
    assert set(df.regime) == {"train", "whole", "tlc"}
    tlc = df[df.regime == "tlc"]
    assert tlc.y.notna().all() and len(tlc.site.unique()) == 5
    assert df[df.regime == "whole"].y.isna().all()
    assert res is not None


def test_cli_collect_with_a_spandrel_checkpoint(tmp_path):
    _, _, path = _official_nafnet_file(tmp_path)
    out, data = tmp_path / "cli", pairs_folder(tmp_path / "data", 1, 48, 64)
    cmd = [sys.executable, "-m", "tlc_probe.cli", "collect", "--checkpoint", path]
    cmd += ["--out", out, "--task", "deblur", "--train-size", TRAIN, "--data", data]
    cmd += ["--regimes", "whole,tlc", "--positions", 2]
    done = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    df = read_stats(out)
    assert isinstance(df, pd.DataFrame) and set(df.regime) == {"whole", "tlc"}
    missing = [sys.executable, "-m", "tlc_probe.cli", "collect", "--checkpoint", str(path)]
    missing += ["--out", str(tmp_path / "x"), "--task", "deblur"]
    done = subprocess.run(missing, capture_output=True, text=True)
    assert done.returncode != 0 and "train-size" in done.stderr


class NeedsMultipleOf8(torch.nn.Module):
    """Refuses sizes that are no multiple of 8 or below 16; doubles its input."""

    def forward(self, x):
        h, w = x.shape[-2:]
        if h % 8 or w % 8 or min(h, w) < 16:
            raise ValueError(f"size {h}x{w}")
        return 2 * x


def test_size_requirements_are_met_by_padding_and_the_output_cropped_back():
    model = NeedsMultipleOf8()
    _pad_crop_hooks(model, multiple=8, minimum=16)
    for size in [(13, 21), (5, 3), (16, 24)]:
        x = torch.rand(2, 3, *size)
        assert torch.equal(model(x), 2 * x)


def test_task_and_train_size_never_contradict_a_tlc_probe_checkpoint(tmp_path):
    from tlc_probe.models import build
    from tlc_probe.store import save_checkpoint

    path = save_checkpoint(build("hinet", "tiny"), tmp_path / "h.pt", task="deblur", train_size=64)
    _, meta = build_from_checkpoint(path, task="deblur", train_size=64)  # agreeing: fine
    assert meta["train_size"] == 64
    with pytest.raises(ValueError, match="train_size 128 .it records 64"):
        build_from_checkpoint(path, train_size=128)


def test_reliance_and_bench_take_a_spandrel_checkpoint(tmp_path):
    from tlc_probe.jobs.bench import window_sweep
    from tlc_probe.jobs.reliance import reliance_checkpoint

    _, _, path = _official_nafnet_file(tmp_path)
    table = reliance_checkpoint(path, 1, task="deblur", train_size=TRAIN)
    assert set(table.model) == {"NAFNet-GoPro-width8"} and set(table.task) == {"deblur"}
    assert (table.kind == "se").sum() == 5 and table.psnr.notna().all()
    sweep = window_sweep(path, (1.5,), n_photos=1, progress=False, task="deblur", train_size=TRAIN)
    assert list(sweep.model.unique()) == ["NAFNet-GoPro-width8"] and len(sweep) == 2
