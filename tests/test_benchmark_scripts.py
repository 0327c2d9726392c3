"""The benchmark scripts that tests can run small: not dead code."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_table_a1_runs_on_cpu_and_writes_its_table(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "gpu_table_a1.py"),
        "--device", "cpu",
        "--size", "64x96",
        "--models", "nafnet",
        "--precisions", "fp32", "bf16",
        "--repeats", "2",
        "--train-size", "32",
        "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "table_a1.csv")
    # the official preset, the paper's schemes at its overlap fractions of a 32-px tile
    assert list(table["scheme"].unique()) == ["whole", "tlc", "tlc-fast", "tiles-2", "tiles-16"]
    assert set(table["precision"]) == {"fp32", "bf16"} and set(table["size"]) == {"64x96"}
    assert (table.loc[table["scheme"] == "whole", "ratio"] == 1.0).all()
    assert (table["time_s"] > 0).all() and table["peak_mem_mb"].isna().all()  # no CUDA
    md = (tmp_path / "table_a1.md").read_text().splitlines()
    assert md[2].startswith("| mprnet (paper) | fp32 | RTX 2080Ti | 1.60 s | 2.03 s | 1.69 s")
    assert len(md) == 3 + 2 and md[3].startswith("| nafnet | fp32 | cpu |")
    # a CUDA device asked for where there is none: one clear line, not a traceback
    if not torch.cuda.is_available():  # (on a GPU machine this would run the benchmark)
        cuda = subprocess.run([*cmd[:2], "--device", "cuda"], capture_output=True, text=True)
        assert cuda.returncode == 2 and "no CUDA device" in cuda.stderr
