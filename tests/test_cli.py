"""The command line: collect -> shift -> plot, bench --quick, reproduce --quick, and one
line with exit status 2 for every error."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from tlc_probe.cli import build_parser, main
from tlc_probe.jobs.collect import CollectConfig, collect
from tlc_probe.jobs.reproduce import reproduce
from tlc_probe.metrics.shift import COMPARISONS, SHIFT_COLUMNS
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
    assert set(table["comparison"]) == set(COMPARISONS)
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


MISSING = "/nonexistent/tlc-probe-test"
BAD_PATHS = {
    "reproduce": ["reproduce", "--checkpoints", f"{MISSING}/a.pt", "--out", "{tmp}/r"],
    "train": [
        "train",
        "--model",
        "nafnet",
        "--task",
        "deblur",
        "--out",
        f"{MISSING}/x.pt",
        "--resume",
    ],
    "evaluate": ["evaluate", f"{MISSING}/a.pt"],
    "collect": ["collect", "--checkpoint", f"{MISSING}/a.pt", "--out", "{tmp}/c"],
    "collect --data": ["collect", "--checkpoint", "{ckpt}", "--data", MISSING, "--out", "{tmp}/c"],
    "shift": ["shift", MISSING, "--out", "{tmp}/s"],
    "plot": ["plot", MISSING, "--out", "{tmp}/p"],
    "bench": ["bench", "--checkpoint", f"{MISSING}/a.pt", "--out", "{tmp}/b"],
    "reliance": ["reliance", f"{MISSING}/a.pt", "--out", "{tmp}/rl"],
    "tune": ["tune", "--checkpoint", f"{MISSING}/a.pt", "--out", "{tmp}/t"],
    "tune plan": ["bench", "--checkpoint", "{ckpt}", "--plan", f"{MISSING}/p", "--out", "{tmp}/b"],
}


def test_every_command_is_covered_by_the_bad_path_cases():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {case.split()[0] for case in BAD_PATHS}


@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_a_path_that_does_not_exist_is_one_line_and_exit_2(case, tmp_path, capsys):
    ckpt = shipped_checkpoints()[0]
    argv = [a.format(tmp=tmp_path, ckpt=ckpt) for a in BAD_PATHS[case]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"tlc-probe {argv[0]}: error: ") and MISSING in err[0]
    assert not list(tmp_path.iterdir()), "nothing may be written before the error"


@pytest.mark.slow
def test_the_console_script_prints_no_traceback_and_debug_shows_it(tmp_path):
    cmd = [sys.executable, "-m", "tlc_probe.cli", "evaluate", f"{MISSING}/a.pt"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip()
        == f"tlc-probe evaluate: error: checkpoint {MISSING}/a.pt: no such file or folder"
    )
    r = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" in r.stderr and "FileNotFoundError" in r.stderr


def test_library_errors_are_translated_to_the_commands_flags(tmp_path, capsys):
    raw = tmp_path / "raw.pth"
    torch.save(build("nafnet", "tiny").state_dict(), raw)
    assert main(["collect", "--checkpoint", str(raw), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--model (and --preset)" in err and "--task" in err and "model_name" not in err
    ck = str(shipped_checkpoints()[0])
    for flags, says in (
        (["--crops", "0"], "--crops must be >= 1"),
        (["--overlap", "999"], "--overlap"),  # >= train_size (128)
    ):
        assert main(["collect", "--checkpoint", ck, "--out", str(tmp_path / "o"), *flags]) == 2
        err = capsys.readouterr().err
        assert says in err and "tile_overlap" not in err and "n_crops" not in err, err


@pytest.mark.slow
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
    assert set(df["image_size"]) == {"test", "64x96"} and len(df) == 10  # 5 schemes x 2 sizes
    for name in ("sweep.csv", "sweep.png", "seams.png", "seams.pdf", "bench.md"):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.slow
def test_reproduce_quick_on_a_shipped_checkpoint(tmp_path):
    ck = [c for c in shipped_checkpoints() if c.stem == "nafnet-tiny-deblur"]
    r = reproduce(out=tmp_path, quick=True, checkpoints=ck, progress=False)
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Table A1" in report and "![" in report
    for line in report.splitlines():  # every embedded figure exists
        if line.startswith("!["):
            assert (tmp_path / line.split("(")[1].rstrip(")")).exists(), line
    assert "![qualitative-nafnet-tiny-deblur](figures/qualitative-nafnet-tiny-deblur.png)" in report
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["summary"][0]["model"] == "nafnet-tiny" and s["summary"][0]["n_sites"] > 0
    assert set(r["bench"]) == {"nafnet-tiny-deblur"}
    # the decomposition and reliance reach the report, the tables and the summary
    assert "## Where the shift comes from" in report and "## Reliance" in report
    assert "figures/nafnet-tiny-deblur-decomposition.png" in report
    parts = pd.read_csv(tmp_path / "shift" / "decomposition.csv")
    assert parts["frozen_delta_psnr"].notna().all() and parts["context_share"].notna().all()
    rel = pd.read_csv(tmp_path / "reliance" / "reliance.csv")
    assert set(rel["site"]) >= {"all"} and (rel["n_images"] == 1).all()
    assert {"n_relied", "flag", "median_aggregation_share"} <= set(s["summary"][0])
    # verdicts first, the tuned windows beside whole and TLC
    assert report.index("## Verdicts") < report.index("## The claim")
    assert "- **nafnet-tiny** (deblur): tlc " in report and "over the uniform 1.5" in report
    assert "## Windows chosen per site" in report and (tmp_path / "tune").is_dir()
    assert "tlc-tuned" in set(
        pd.read_csv(tmp_path / "bench" / "nafnet-tiny-deblur" / "bench.csv")["scheme"]
    )
    assert s["tune"]["nafnet-tiny-deblur"]["kept"] in ("tuned", "uniform")


def test_the_analysis_commands_keep_freed_memory_on_linux():
    # glibc accepts the allocator settings `tlc-probe shift` and `plot` make (Linux only)
    import sys

    from tlc_probe.cli.allocator import keep_freed_memory

    assert keep_freed_memory() is sys.platform.startswith("linux")


def test_plot_offers_the_attention_statistics_the_probe_records():
    from tlc_probe.cli.plot import ATTN_STATS as CLI_STATS
    from tlc_probe.tlc.attention import ATTN_STATS

    assert CLI_STATS == ATTN_STATS


def test_bench_refuses_an_unknown_scheme_before_any_work(tmp_path, capsys):
    ck = save_checkpoint(build("nafnet", "tiny"), tmp_path / "n.pt", train_size=64, task="deblur")
    out = tmp_path / "bench"
    argv = ["bench", "--checkpoint", str(ck), "--schemes", "whole", "tlc-nope", "--out", str(out)]
    assert main(argv) == 2
    assert "--schemes: unknown scheme 'tlc-nope'" in capsys.readouterr().err
    assert not out.exists()


def test_tune_writes_a_plan_that_bench_runs(tmp_path, capsys):
    torch.manual_seed(0)
    ck = save_checkpoint(build("nafnet", "tiny"), tmp_path / "n.pt", train_size=64, task="deblur")
    out = tmp_path / "tune"
    assert main(["tune", "--checkpoint", str(ck), "--images", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validation PSNR uniform 1.5" in printed and "kept" in printed
    plan = json.loads((out / "plan.json").read_text())
    assert plan["train_size"] == [64, 64] and plan["validation"]["kept"] in ("tuned", "uniform")
    scores = pd.read_csv(out / "scores.csv")
    assert {"x1", "x1.5", "x4", "global", "tuned"} <= set(scores["candidate"])
    assert len(pd.read_csv(out / "validation.csv")) == 2  # one image, uniform and tuned
    assert (out / "tune.png").stat().st_size > 0
    bench_out = tmp_path / "bench"
    argv = ["bench", "--checkpoint", str(ck), "--quick", "--sizes", "--schemes", "tlc"]
    assert main([*argv, "--no-sweep", "--plan", str(out), "--out", str(bench_out)]) == 0
    assert "tlc-tuned" in set(pd.read_csv(bench_out / "bench.csv")["scheme"])
    other = save_checkpoint(
        build("nafnet", "tiny"), tmp_path / "o.pt", train_size=64, task="deblur"
    )
    bad = [
        "bench",
        "--checkpoint",
        str(other),
        "--quick",
        "--plan",
        str(out),
        "--out",
        str(bench_out),
    ]
    assert main(bad) == 2 and "not this one" in capsys.readouterr().err
    assert main(["tune", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(out)]) == 2
    assert (
        main(["bench", "--checkpoint", str(ck), "--schemes", "tlc-tuned", "--out", str(out)]) == 2
    )
