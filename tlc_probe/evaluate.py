"""PSNR of a checkpoint on the held-out test photos under each inference scheme."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch

from .data.datasets import SyntheticPairs
from .metrics import psnr
from .models import build_from_checkpoint, model_label
from .tiling import tiled_inference
from .tlc import convert

SCHEMES = ("whole", "tlc", "tiles-16")


def held_out_psnr(runs: dict[str, Callable], task: str, seed: int = 0) -> dict[str, float]:
    """Mean PSNR (dB) over the test photos degraded for ``task`` (seed ``seed``): of the
    degraded input (key "input") and of each run's output, clamped to [0, 1] (one key per
    run name); "n" is the number of photos. Each run maps (1, 3, H, W) -> (1, 3, H, W)."""
    data = SyntheticPairs(task, split="test", n_per_photo=1, seed=seed)
    scores: dict[str, list[float]] = {k: [] for k in ("input", *runs)}
    with torch.no_grad():
        for i in range(len(data)):
            item = data[i]
            x, y = item["input"][None], item["target"]
            scores["input"].append(psnr(item["input"], y))
            for name, run in runs.items():
                scores[name].append(psnr(run(x).clamp(0, 1)[0], y))
    return {**{k: sum(v) / len(v) for k, v in scores.items()}, "n": len(data)}


def scheme_psnr(checkpoint: str | Path, seed: int = 0) -> dict:
    """Mean PSNR (dB) over the test photos degraded for the checkpoint's task: of the
    input, and of the output with whole-image inference, TLC (``convert`` with the
    checkpoint's train_size) and overlapping tiles (tile = train_size, overlap 16).
    Returns {"model", "task", "train_size", "input", "whole", "tlc", "tiles-16", "n"}."""
    model, meta = build_from_checkpoint(checkpoint)
    ts = int(meta["train_size"])
    tlc = convert(model)  # train_size from the checkpoint metadata
    runs = {
        "whole": model,
        "tlc": tlc,
        "tiles-16": lambda x: tiled_inference(model, x, tile=ts, overlap=16),
    }
    scores = held_out_psnr(runs, meta["task"], seed)
    return {
        "model": model_label(meta),
        "task": meta["task"],
        "train_size": ts,
        **{k: scores[k] for k in ("input", *SCHEMES)},
        "n": scores["n"],
    }


def psnr_table(checkpoints: Sequence[str | Path], seed: int = 0) -> pd.DataFrame:
    """:func:`scheme_psnr` of each checkpoint, one row each, PSNR in dB."""
    return pd.DataFrame([scheme_psnr(c, seed) for c in checkpoints])


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no extra dependency)."""
    cols = list(table.columns)
    rows = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join(rows)
