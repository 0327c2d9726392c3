"""Collection sharded over torchrun ranks (two gloo processes on the CPU) against the
single-process run: the same rows, resumable per rank, a changed world size refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from folders import pairs_folder

from tlc_probe.jobs.distributed import Shard
from tlc_probe.models import build
from tlc_probe.store import read_stats, save_checkpoint

ROW_KEY = ["regime", "site", "stat", "channel", "sample", "y", "x"]
ARGS = ["--regimes", "train,whole,tlc", "--crops", "12", "--batch", "4", "--positions", "3"]


def _collect(checkpoint, data, out, *extra, ranks=1):
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        + ["--nproc_per_node", str(ranks)]
        if ranks > 1
        else [sys.executable]
    )
    cmd = [*launcher, "-m", "tlc_probe.cli", "collect", "--checkpoint", str(checkpoint)]
    cmd += ["--data", str(data), "--train-data", str(data)]
    # torchrun gives each rank one thread; the single process gets one too, so that the
    # kernels reduce in the same order and the values agree to the bit
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*cmd, "--out", str(out), *ARGS, *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def _rows(out):
    return read_stats(out).sort_values(ROW_KEY).reset_index(drop=True)


def test_shards_split_chunks_round_robin():
    shards = [Shard(r, 3) for r in range(3)]
    assert [[j for j in range(8) if s.takes(j)] for s in shards] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    with pytest.raises(ValueError, match="not in a world"):
        Shard(2, 2)


@pytest.mark.slow
def test_two_ranks_write_the_rows_of_one_process_and_resume_per_rank(tmp_path):
    model = build("nafnet", "tiny").eval()
    ckpt = save_checkpoint(model, tmp_path / "n.pt", train_size=32, task="deblur")
    data = pairs_folder(tmp_path / "pairs", 5, 72, 96)

    one, two = tmp_path / "one", tmp_path / "two"
    done = _collect(ckpt, data, one)
    assert done.returncode == 0, done.stderr
    done = _collect(ckpt, data, two, ranks=2)
    assert done.returncode == 0, done.stderr
    assert "rank 1/2" in done.stdout
    writers = {p.name.split("-")[1] for p in two.glob("regime=*/part-*.parquet")}
    assert writers == {"0", "1"}
    run = json.loads((two / "_run.json").read_text())
    assert run["world_size"] == 2 and run["config"]["writer"] == "<rank>"
    expected = _rows(one)
    assert len(expected) > 0 and set(expected["regime"]) == {"train", "whole", "tlc"}
    assert _rows(two).equals(expected)

    # rank 1 "died": its chunks of train and tlc are missing and a half-written file
    # is left; the resumed job redoes exactly those
    lost = [p for p in two.glob("regime=*/part-1-*.parquet") if "whole" not in str(p)]
    for p in lost:
        p.unlink()
    (two / "regime=tlc" / ".part-1-000001.parquet.123-abcd.tmp").write_bytes(b"half")
    done = _collect(ckpt, data, two, "--resume", ranks=2)
    assert done.returncode == 0, done.stderr
    assert not list(two.rglob(".*.tmp"))
    assert _rows(two).equals(expected)

    # another world size on resume is refused with the reason, nothing is written
    done = _collect(ckpt, data, two, "--resume")
    assert done.returncode == 2
    assert "collected by 2 process(es)" in done.stderr and "has 1" in done.stderr
    assert _rows(two).equals(expected)
