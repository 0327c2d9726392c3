"""A researcher's own checkpoint and data through the whole pipeline (issue 33): one name
per run on every output, the user's images on every command, joins that match or are
refused, TLC that changes nothing said, the main job on an official-format checkpoint
and a GoPro-layout folder, and on an own module through the Python API."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
import torch
from folders import gopro_folder, pairs_folder
from torch import nn

import tlc_probe
from tlc_probe.cli import main
from tlc_probe.jobs import CollectConfig, ImageSource, collect_checkpoint, load_subject
from tlc_probe.metrics import decomposition, shift_table
from tlc_probe.models import build
from tlc_probe.store import read_stats, save_checkpoint

TRAIN = 32


def _official_nafnet(path):
    """An official-preset NAFNet with random weights, saved as the release does."""
    torch.manual_seed(0)
    net = build("nafnet", "official")
    for p in net.parameters():  # zero-initialised betas would make every block an identity
        p.data.normal_(0, 0.05)
    torch.save({"params": net.state_dict()}, path)
    return path


class SmallNet(nn.Module):
    """An own module: a squeeze-excitation pool (a site) and a functional mean (a site)
    around a residual conv stack; [0, 1] images in, images out."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate = nn.Sequential(nn.Conv2d(c, c, 1), nn.Sigmoid())
        self.tail = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        f = torch.relu(self.head(x))
        f = f * self.gate(self.pool(f))
        f = f - 0.5 * f.mean((2, 3), keepdim=True)
        return x + 0.1 * self.tail(f)


def test_one_checkpoint_gets_one_name_by_any_route(tmp_path):
    ck = _official_nafnet(tmp_path / "NAFNet-GoPro-width32.pth")
    zoo = load_subject(ck, model="nafnet", preset="official", task="deblur", train_size=TRAIN)
    detected = load_subject(ck, task="deblur", train_size=TRAIN)  # spandrel
    assert zoo.name == detected.name == "NAFNet-GoPro-width32"
    assert zoo.meta["architecture"] == "nafnet" and zoo.meta["preset"] == "official"
    assert load_subject(ck, task="deblur", train_size=TRAIN, name="mine").name == "mine"
    with pytest.raises(ValueError, match="task= and train_size="):
        load_subject(ck, model="nafnet")
    with pytest.raises(ValueError, match="name must be"):
        load_subject(ck, task="deblur", train_size=TRAIN, name="a/b")
    own = save_checkpoint(build("hinet", "tiny"), tmp_path / "h.pt", task="deblur", train_size=64)
    assert load_subject(own).name == "hinet-tiny"
    with pytest.raises(ValueError, match="not of model 'nafnet'"):
        load_subject(own, model="nafnet")


@pytest.mark.slow
def test_reproduce_on_an_official_checkpoint_and_a_gopro_folder(tmp_path, capsys):
    ck = _official_nafnet(tmp_path / "NAFNet-GoPro-width32.pth")
    data = gopro_folder(tmp_path / "GoPro", 48, 80)  # 48 x 80 > base 48: TLC acts in W
    out = tmp_path / "mine"
    argv = ["reproduce", "--checkpoint", str(ck), "--model", "nafnet", "--task", "deblur"]
    argv += ["--train-size", str(TRAIN), "--data", str(data), "--layout", "gopro"]
    argv += ["--out", str(out), "--quick"]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "main job: about" in printed and "NAFNet-GoPro-width32 deblur mean" in printed
    name = "NAFNet-GoPro-width32"
    report = (out / "REPORT.md").read_text()
    assert f"`{name}` on gopro folder {data.resolve()}" in report
    assert "## Table A1" in report and f"### {name}" in report
    for line in report.splitlines():  # every embedded figure exists
        if line.startswith("!["):
            assert (out / line.split("(")[1].rstrip(")")).exists(), line
    # every output carries the run's name, so they join
    stats = read_stats(out / "stats" / name)
    assert set(stats["model"]) == {name} and set(stats["regime"]) >= {"train", "whole", "tlc"}
    run = json.loads((out / "stats" / name / "_run.json").read_text())
    assert str(data.resolve()) in run["data"] and run["test_set"] == "GoPro"
    assert [s[0] for s in run["samples"]["test"]] == ["GOPR0000_11_00/000000"]  # --quick: 1
    assert len(run["samples"]["train"]) == 4  # the crops come from the train split
    assert run["train_images"] == f"the train split {(data / 'train').resolve()}"
    rel = pd.read_csv(out / "reliance" / "reliance.csv")
    bench = pd.read_csv(out / "bench" / name / "bench.csv")
    summ = pd.read_csv(out / "shift" / "summary.csv")
    assert set(rel["model"]) == set(bench["model"]) == set(summ["model"]) == {name}
    assert (rel["site"] != "all").sum() == 36  # every sca.0 pool of width-32 NAFNet
    parts = pd.read_csv(out / "shift" / "decomposition.csv")
    assert len(parts) == 36 and parts["frozen_delta_psnr"].notna().all()  # joined
    assert summ["n_relied"].notna().all() and not summ["tlc_noop"].any()
    # Table A1 on the folder's image: its PSNR is that of the model's own output
    x = tlc_probe.jobs.ImageSource(data, "gopro").test_items("deblur", 1)[0]
    net = load_subject(ck, model="nafnet", task="deblur", train_size=TRAIN).model
    with torch.no_grad():
        whole = net(x["input"][None])[0].clamp(0, 1)
    expected = tlc_probe.metrics.image.psnr(whole, x["target"])
    test_rows = bench[(bench["image_size"] == "test") & (bench["scheme"] == "whole")]
    assert test_rows["psnr"].iloc[0] == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_reproduce_on_an_own_module_through_the_python_api(tmp_path):
    data = gopro_folder(tmp_path / "GoPro", 48, 80, sequences=1)
    torch.manual_seed(0)
    r = tlc_probe.reproduce(
        SmallNet(),
        out=tmp_path / "own",
        name="smallnet",
        task="deblur",
        train_size=TRAIN,
        data=data,
        layout="gopro",
        quick=True,
        progress=False,
    )
    assert r["user_model"] and r["models"] == {"smallnet": "smallnet"}
    report = (tmp_path / "own" / "REPORT.md").read_text()
    assert "`smallnet` on gopro folder" in report and "### smallnet" in report
    parts = pd.read_csv(tmp_path / "own" / "shift" / "decomposition.csv")
    assert set(parts["site"]) == {"pool", "#mean0"}  # the module pool and the functional mean
    assert parts["frozen_delta_psnr"].notna().all()


def _collect(ck, out, data, **kw):
    cfg = CollectConfig(regimes=("train", "whole", "tlc"), n_crops=4, crop_batch=4, positions=2)
    return collect_checkpoint(ck, out, images=ImageSource(data), config=cfg, progress=False, **kw)


def test_two_checkpoints_of_one_architecture_under_two_names(tmp_path):
    data = pairs_folder(tmp_path / "data", 1, 40, 96)
    cks = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        cks.append(
            save_checkpoint(
                build("nafnet", "tiny"), tmp_path / f"n{seed}.pt", task="deblur", train_size=TRAIN
            )
        )
    cfg = CollectConfig(regimes=("whole", "tlc"), positions=2)
    for ck, name in zip(cks, ("seed0", "seed1"), strict=True):
        collect_checkpoint(
            ck, tmp_path / name, images=ImageSource(data), config=cfg, progress=False, name=name
        )
    both = [tmp_path / "seed0", tmp_path / "seed1"]
    table = shift_table(read_stats(both), ["tlc~whole"])
    assert set(table["model"]) == {"seed0", "seed1"}
    w1 = table[table.channel == "all"].groupby("model")["w1"].sum()
    assert w1["seed0"] != w1["seed1"]  # two networks, two sets of numbers
    # under the default name both runs are "nafnet-tiny": pooling them is refused
    for ck, d in zip(cks, ("a", "b"), strict=True):
        collect_checkpoint(ck, tmp_path / d, images=ImageSource(data), config=cfg, progress=False)
    with pytest.raises(ValueError, match="read one directory at a time"):
        read_stats([tmp_path / "a", tmp_path / "b"])


def test_a_reliance_join_that_matches_nothing_is_refused(tmp_path, capsys):
    table = pd.DataFrame(
        {
            "model": "NAFNet-GoPro-width32",
            "task": "deblur",
            "site": ["a.pool", "b.pool"],
            "kind": "se",
            "depth": [0, 1],
            "stat": "mean",
            "channel": "all",
            "comparison": "whole~train",
            "w1": [0.1, 0.2],
            "kl": [0.1, 0.2],
        }
    )
    other = pd.DataFrame(
        {
            "model": "nafnet-spandrel",
            "task": "deblur",
            "site": ["a.pool", "all"],
            "delta_psnr": [0.5, 0.6],
        }
    )
    with pytest.raises(ValueError, match="matches no site.*nafnet-spandrel"):
        decomposition(table, other)
    # the same name but other sites (another model saved under this name): refused too
    renamed = other.assign(model="NAFNet-GoPro-width32", site=["c.pool", "all"])
    with pytest.raises(ValueError, match="none matches"):
        decomposition(table, renamed)
    # a second model without reliance rows: NA, not 0, with a warning
    two = pd.concat([table, table.assign(model="other")], ignore_index=True)
    mine = other.assign(model="NAFNet-GoPro-width32")
    with pytest.warns(UserWarning, match="no reliance rows for \\['other'\\]"):
        parts = decomposition(two, mine)
    assert parts.loc[parts.model == "other", "frozen_delta_psnr"].isna().all()
    assert parts.loc[(parts.model != "other") & (parts.site == "a.pool"), "relied"].all()
    with pytest.warns(UserWarning, match="no reliance rows"):
        summ = tlc_probe.summary(two, mine)
    assert summ.loc[summ.model == "other", "n_relied"].isna().all()
    assert (summ.loc[summ.model != "other", "n_relied"] == 1).all()


def test_shift_cli_refuses_an_unmatched_reliance_table(tmp_path, capsys):
    data = pairs_folder(tmp_path / "data", 1, 40, 96)
    ck = save_checkpoint(
        build("nafnet", "tiny"), tmp_path / "n.pt", task="deblur", train_size=TRAIN
    )
    cfg = CollectConfig(regimes=("train", "whole", "tlc"), n_crops=4, crop_batch=4, positions=2)
    images = ImageSource(data, train_data=data)
    collect_checkpoint(ck, tmp_path / "s", images=images, config=cfg, progress=False)
    rel = tmp_path / "rel.csv"
    pd.DataFrame(
        {"model": ["someone-else"], "task": ["deblur"], "site": ["x"], "delta_psnr": [0.1]}
    ).to_csv(rel, index=False)
    argv = ["shift", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--reliance", str(rel)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "matches no site" in err and "someone-else" in err and "nafnet-tiny" in err


def test_tlc_that_changes_nothing_is_said(tmp_path):
    ck = save_checkpoint(
        build("nafnet", "tiny"), tmp_path / "n.pt", task="deblur", train_size=TRAIN
    )
    small = pairs_folder(tmp_path / "small", 1, 40, 48)  # <= base 48: windows cover the maps
    cfg = CollectConfig(regimes=("train", "whole", "tlc"), n_crops=8, crop_batch=8, positions=2)
    with pytest.warns(RuntimeWarning, match="TLC changed nothing"):
        r = collect_checkpoint(
            ck,
            tmp_path / "s",
            images=ImageSource(small, train_data=small),
            config=cfg,
            progress=False,
        )
    assert r.tlc_noop
    large = pairs_folder(tmp_path / "large", 1, 40, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        r = collect_checkpoint(
            ck,
            tmp_path / "l",
            images=ImageSource(large, train_data=large),
            config=cfg,
            progress=False,
        )
    assert not r.tlc_noop
    for store, noop in (("s", True), ("l", False)):
        summ = tlc_probe.summary(shift_table(read_stats(tmp_path / store)))
        assert len(summ) and summ["tlc_noop"].tolist() == [noop] * len(summ)
    # the bench says so too
    from tlc_probe.jobs import bench

    with pytest.warns(RuntimeWarning, match="TLC changed nothing on the test images"):
        bench(
            ck,
            sizes=[(64, 128)],
            repeats=1,
            progress=False,
            images=ImageSource(small),
            schemes=["tlc"],
        )  # TLC acts at the timing size: the test images are what counts
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        bench(ck, sizes=[], repeats=1, progress=False, images=ImageSource(large), schemes=["tlc"])


@pytest.mark.slow
def test_reproduce_on_a_spandrel_checkpoint_under_a_name_of_ones_own(tmp_path, capsys):
    from tlc_probe.models.foreign import import_spandrel

    import_spandrel()  # the extra is part of the test environment: no skip
    from spandrel.architectures.NAFNet import NAFNet

    torch.manual_seed(0)
    net = NAFNet(width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
    for p in net.parameters():
        p.data.normal_(0, 0.2)
    ck = tmp_path / "NAFNet-GoPro-width8.pth"
    torch.save({"params": net.state_dict()}, ck)
    data = gopro_folder(tmp_path / "GoPro", 48, 80, sequences=1, frames=3)
    out = tmp_path / "run"
    argv = ["reproduce", "--checkpoint", str(ck), "--task", "deblur", "--train-size", "32"]
    argv += ["--data", str(data), "--layout", "gopro", "--name", "mine", "--quick"]
    assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    # the run's name, not the file's stem, names every output
    assert (out / "stats" / "mine" / "_run.json").is_file()
    assert (out / "bench" / "mine" / "bench.csv").is_file()
    assert "### mine" in (out / "REPORT.md").read_text()
    for table in ("reliance/reliance.csv", "shift/summary.csv", "bench/mine/bench.csv"):
        assert set(pd.read_csv(out / table)["model"]) == {"mine"}, table
    run = json.loads((out / "stats" / "mine" / "_run.json").read_text())
    assert run["preset"] == "spandrel" and run["architecture"] == "NAFNet"
    # a preset without a model to build is refused, naming the flags
    assert main([*argv, "--preset", "official", "--out", str(tmp_path / "x")]) == 2
    assert "--preset 'official' is a preset of --model" in capsys.readouterr().err
