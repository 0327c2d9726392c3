"""The bad-input sweep of issue 35, one test per case fixed here (each seen red before
its fix): refused with one clear line naming what to change, nothing left behind."""

from __future__ import annotations

import pytest
import torch
from folders import pairs_folder
from toy_models import ToyNet

from tlc_probe import convert
from tlc_probe.cli import main
from tlc_probe.jobs import CollectConfig, ImageSource, collect_checkpoint
from tlc_probe.models import build
from tlc_probe.store import build_from_checkpoint, save_checkpoint


def test_base_size_smaller_than_train_size_is_refused():  # case 3
    with pytest.raises(ValueError, match=r"base_size \(16, 16\) is smaller than train_size"):
        convert(ToyNet().eval(), 64, base_size=16)
    convert(ToyNet().eval(), 64, base_size=64)  # equal: windows of the training extent


def test_an_unknown_task_is_refused_with_a_folder_too(tmp_path, capsys):  # case 4
    data = pairs_folder(tmp_path / "d", 1, 40, 48)
    raw = tmp_path / "raw.pth"
    torch.save(build("nafnet", "tiny").state_dict(), raw)
    argv = ["collect", "--checkpoint", str(raw), "--model", "nafnet", "--preset", "tiny"]
    argv += ["--task", "denoise", "--train-size", "32", "--data", str(data)]
    argv += ["--regimes", "whole", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "task must be one of ('deblur', 'derain', 'dehaze'), got 'denoise'" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()


def test_a_huge_train_size_is_refused_before_any_allocation(tmp_path, capsys):  # case 5
    raw = tmp_path / "raw.pth"
    torch.save(build("nafnet", "tiny").state_dict(), raw)
    argv = ["collect", "--checkpoint", str(raw), "--model", "nafnet", "--preset", "tiny"]
    argv += ["--task", "deblur", "--train-size", "100000", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "train_size (100000, 100000) is larger than any training patch" in err
    with pytest.raises(ValueError, match="larger than any training patch"):
        convert(ToyNet().eval(), 20000)


def test_a_truncated_checkpoint_is_called_truncated(tmp_path):  # case 9
    good = save_checkpoint(build("nafnet", "tiny"), tmp_path / "n.pt", task="deblur", train_size=32)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="is truncated or not a PyTorch checkpoint"):
        build_from_checkpoint(cut)


def test_an_unknown_architecture_is_named_with_the_file(tmp_path):  # case 10
    path = tmp_path / "mystery.pth"
    torch.save({"params": {"foo.weight": torch.zeros(3, 3), "bar.bias": torch.zeros(3)}}, path)
    with pytest.raises(ValueError) as e:
        build_from_checkpoint(path, task="deblur", train_size=32)
    said = str(e.value)
    assert str(path) in said and "spandrel does not recognise this checkpoint" in said
    assert "2 tensors" in said and not said.rstrip().endswith(":")


def test_a_declared_site_of_an_unknown_kind_names_the_declaration():  # case 13
    with pytest.raises(ValueError, match="declared site 'ca1.avg_pool' has the unknown kind"):
        convert(ToyNet().eval(), 32, sites={"ca1.avg_pool": "bogus"})


def _whole_only_store(out):
    """Statistics of the whole regime alone (no train reference) at ``out``."""
    data = pairs_folder(out.parent / "d", 1, 40, 48)
    ck = save_checkpoint(build("nafnet", "tiny"), out.parent / "n.pt", task="deblur", train_size=32)
    config = CollectConfig(regimes=("whole",))
    collect_checkpoint(ck, out, images=ImageSource(data), config=config, progress=False)


def test_a_store_without_the_reference_regime_is_refused_by_shift(tmp_path, capsys):  # case 17
    _whole_only_store(tmp_path / "s")
    out = tmp_path / "shift"
    assert main(["shift", str(tmp_path / "s"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no comparison could be made" in err and "'train' regime" in err
    assert not out.exists()  # case 18: no empty --out left behind


def test_failed_commands_leave_no_empty_out_folder(tmp_path, capsys):  # case 18
    ck = save_checkpoint(build("nafnet", "tiny"), tmp_path / "n.pt", task="deblur", train_size=32)
    out = tmp_path / "deep" / "bench"
    argv = ["bench", "--checkpoint", str(ck), "--overlaps", "1000", "--sizes", "--out", str(out)]
    assert main(argv) == 2
    assert not out.exists() and not (tmp_path / "deep").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("x")
    assert main(["shift", str(tmp_path / "nothing"), "--out", str(kept)]) == 2
    assert (kept / "mine.txt").exists()  # a folder that was there is never removed


def test_a_shift_table_or_a_truncated_part_given_as_statistics(tmp_path, capsys):  # 6, 8
    from tlc_probe import read_stats
    from tlc_probe.jobs.shift import shift_outputs

    data = pairs_folder(tmp_path / "d", 1, 40, 48)
    ck = save_checkpoint(build("nafnet", "tiny"), tmp_path / "n.pt", task="deblur", train_size=32)
    cfg = CollectConfig(regimes=("train", "whole", "tlc"), n_crops=4, crop_batch=4, positions=2)
    images = ImageSource(data, train_data=data)
    collect_checkpoint(ck, tmp_path / "s", images=images, config=cfg, progress=False)
    shift_outputs(tmp_path / "s", tmp_path / "shift")
    table = tmp_path / "shift" / "shift.parquet"
    assert main(["shift", str(table), "--out", str(tmp_path / "o")]) == 2
    assert "is a shift table (tlc-probe shift's output), not statistics" in capsys.readouterr().err
    part = next((tmp_path / "s").glob("regime=whole/*.parquet"))
    part.write_bytes(part.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match=f"{part.name} is no readable Parquet file"):
        read_stats(tmp_path / "s")
    assert main(["plot", str(tmp_path / "s"), "--out", str(tmp_path / "p")]) == 2
    assert part.name in capsys.readouterr().err


def test_a_meta_or_compiled_model_is_named_in_one_line():  # cases 11, 12
    with torch.device("meta"):
        meta = ToyNet()
    with pytest.raises(ValueError, match="on the meta device"):
        convert(meta.eval(), 32)
    compiled = torch.compile(ToyNet().eval())
    with pytest.raises(ValueError, match=r"convert\(model._orig_mod"):
        convert(compiled, 32)


def test_a_declared_site_that_cannot_work_is_named_as_a_declaration():  # case 14
    with pytest.raises(ValueError) as e:
        convert(ToyNet().eval(), 32, sites={"head": "se"})
    assert "declared sites ['head']" in str(e.value) and "remove them from sites=" in str(e.value)
    assert "skip=" not in str(e.value)


def test_train_stats_below_a_file_is_refused_before_training(tmp_path, capsys):  # case 15
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = [
        "train",
        "--model",
        "nafnet",
        "--task",
        "deblur",
        "--iters",
        "1",
        "--out",
        str(tmp_path / "m.pt"),
        "--record-every",
        "1",
        "--stats",
        str(blocker / "stats"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--stats" in err and "is a file" in err and not (tmp_path / "m.pt").exists()


def test_a_model_without_sites_says_so_without_python_only_advice():  # case 16
    with pytest.raises(ValueError) as e:
        convert(torch.nn.Conv2d(3, 3, 3, padding=1), 32)
    said = str(e.value)
    assert "nothing for TLC to convert" in said and not said.endswith("sites=...")


def test_plot_without_the_train_regime_draws_nothing_and_says_so(tmp_path, capsys):  # case 17
    _whole_only_store(tmp_path / "s")
    assert main(["plot", str(tmp_path / "s"), "--out", str(tmp_path / "p")]) == 2
    assert "nothing to draw" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_the_explorer_names_what_it_was_given_instead(tmp_path):  # case 7
    from tlc_probe.explore import StatsSource
    from tlc_probe.jobs.shift import shift_outputs

    data = pairs_folder(tmp_path / "d", 1, 40, 96)
    ck = save_checkpoint(build("nafnet", "tiny"), tmp_path / "n.pt", task="deblur", train_size=32)
    cfg = CollectConfig(regimes=("train", "whole", "tlc"), n_crops=4, crop_batch=4, positions=2)
    collect_checkpoint(
        ck, tmp_path / "s", images=ImageSource(data, train_data=data), config=cfg, progress=False
    )
    shift_outputs(tmp_path / "s", tmp_path / "shift")
    stats = tmp_path / "s"
    part = next(stats.glob("regime=whole/*.parquet"))
    with pytest.raises(ValueError, match="is no shift table"):
        StatsSource(stats, shift=part)  # statistics where the shift table goes
    with pytest.raises(ValueError, match=r"is no shift table .*summary.csv"):
        StatsSource(stats, shift=tmp_path / "shift" / "summary.csv")
    with pytest.raises(ValueError, match="is a file: the explorer reads a statistics folder"):
        StatsSource(part)
    source = StatsSource(stats, shift=tmp_path / "shift" / "shift.parquet")  # the right ones
    assert source.groups == [("nafnet-tiny", "deblur")]


class Branchy(torch.nn.Module):
    """A functional site after a mean that runs only on wide maps (issue 35, case 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.out = torch.nn.Conv2d(8, 3, 1)

    def forward(self, x):
        y = self.c(x)
        if y.shape[-1] > 64:
            y = y + 0 * y.mean((2, 3), keepdim=True)
        return self.out(y * torch.sigmoid(y.mean((2, 3), keepdim=True)))


def test_a_call_made_only_at_some_sizes_takes_no_sites_place():  # case 1
    from reference import brute_local_mean

    torch.manual_seed(0)
    model = Branchy().eval()
    tlc = convert(model, 32)  # the calibration pass (32 px) never makes the extra call
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        y = model.c(x)
        ref = model.out(y * torch.sigmoid(brute_local_mean(y.double(), (48, 48)).float()))
        with pytest.warns(UserWarning, match=r"did not run in the calibration pass"):
            got = tlc(x)
    assert (got - ref).abs().max() < 1e-5  # the real site is local, as brute force says
    assert (got - model(x)).abs().max() > 1e-4  # (and that differs from the global model)


def gap(t):
    return t.mean((2, 3), keepdim=True)


class HelperBranchy(Branchy):
    """Case 1 through a helper: the same line of ``gap`` serves an extra call made only on
    wide maps and the real site."""

    def forward(self, x):
        y = self.c(x)
        if y.shape[-1] > 64:
            y = y + 0 * gap(y)
        return self.out(y * torch.sigmoid(gap(y)))


def test_a_helper_called_from_two_places_gives_two_call_sites():
    from reference import brute_local_mean

    torch.manual_seed(0)
    model = HelperBranchy().eval()
    tlc = convert(model, 32)
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        y = model.c(x)
        ref = model.out(y * torch.sigmoid(brute_local_mean(y.double(), (48, 48)).float()))
        with pytest.warns(UserWarning, match="did not run in the calibration pass"):
            got = tlc(x)
    assert (got - ref).abs().max() < 1e-5
