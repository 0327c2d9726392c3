"""The command line: collect -> shift -> plot, bench --quick, reproduce --quick."""

import json

import pandas as pd
import pytest
import torch

from tlc_probe.cli import build_parser, main
from tlc_probe.jobs.collect import CollectConfig, collect
from tlc_probe.jobs.reproduce import reproduce
from tlc_probe.metrics.shift import SHIFT_COLUMNS
from tlc_probe.models import build
from tlc_probe.store import save_checkpoint, shipped_checkpoints


@pytest.fixture(scope="module")
def stats_dir(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("stats") / "hinet"
    g = torch.Generator().manual_seed(0)
    imgs = [{"input": torch.rand(3, 64, 96, generator=g), "id": f"im{i}"} for i in range(2)]
    collect(
        build("hinet", "tiny").eval(),
        out,
        model_name="hinet-tiny",
        task="deblur",
        train_size=32,
        test_data=imgs,
        train_data=imgs,
        config=CollectConfig(n_crops=8, crop_batch=4, positions=4, tile_overlap=8),
        progress=False,
    )
    return out


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {
        "reproduce",
        "train",
        "evaluate",
        "collect",
        "shift",
        "plot",
        "bench",
    }
    for name, p in sub.choices.items():
        assert p.description, name
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.dest}"


def test_shift_then_plot(stats_dir, tmp_path, capsys):
    assert main(["shift", str(stats_dir), "--out", str(tmp_path / "shift")]) == 0
    table = pd.read_csv(tmp_path / "shift" / "shift.csv")
    assert tuple(table.columns)[: len(SHIFT_COLUMNS)] == SHIFT_COLUMNS
    assert set(table["comparison"]) == {"whole~train", "tlc~train", "tiles~train"}
    assert "frac_w1_improved" in capsys.readouterr().out
    assert main(["plot", str(stats_dir), "--out", str(tmp_path / "fig")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "fig").glob("*.png"))
    assert any("-a3-" in p for p in pngs) and "hinet-tiny-deblur-depth.png" in pngs
    assert all((tmp_path / "fig" / p).stat().st_size > 0 for p in pngs)
    assert len(list((tmp_path / "fig").glob("*.pdf"))) == len(pngs)


def test_shift_and_plot_report_missing_statistics(tmp_path, capsys):
    assert main(["shift", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no Parquet statistics" in capsys.readouterr().err


def test_bench_quick(tmp_path, capsys):
    torch.manual_seed(0)
    ck = save_checkpoint(build("nafnet", "tiny"), tmp_path / "n.pt", train_size=64, task="deblur")
    out = tmp_path / "bench"
    assert (
        main(["bench", "--checkpoint", str(ck), "--quick", "--sizes", "64x96", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "| Input | #Overlap | TLC |" in printed
    df = pd.read_csv(out / "bench.csv")
    assert set(df["image_size"]) == {"test", "64x96"} and len(df) == 12  # 6 schemes x 2 sizes
    for name in ("sweep.csv", "sweep.png", "seams.png", "seams.pdf", "bench.md"):
        assert (out / name).stat().st_size > 0, name


def test_reproduce_quick_on_a_shipped_checkpoint(tmp_path):
    ck = [c for c in shipped_checkpoints() if c.stem == "nafnet-tiny-deblur"]
    r = reproduce(tmp_path, quick=True, checkpoints=ck, progress=False)
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Table A1" in report and "![" in report
    for line in report.splitlines():  # every embedded figure exists
        if line.startswith("!["):
            assert (tmp_path / line.split("(")[1].rstrip(")")).exists(), line
    assert "![qualitative-nafnet-tiny-deblur](figures/qualitative-nafnet-tiny-deblur.png)" in report
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["summary"][0]["model"] == "nafnet-tiny" and s["summary"][0]["n_sites"] > 0
    assert set(r["bench"]) == {"nafnet-tiny-deblur"}
