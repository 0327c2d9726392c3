"""Scores on the test images (the held-out bundled photos, or a user's folder): the one
loop that runs schemes over them, used by ``evaluate``, training validation and the
window sweep (and the test items the bench, reliance and the figures run on)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data import SyntheticPairs
from ..metrics.decomposition import relied_on
from ..metrics.image import psnr, ssim
from ..schemes import make_schemes
from ..sites import feature_sizes
from .images import ImageSource
from .reliance import reliance as freeze
from .subject import Subject, load_for_test

#: Schemes of the ``evaluate`` table.
EVALUATE_SCHEMES = ("whole", "tlc", "tiles-16")


def held_out_items(task: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """The first ``n`` (all if None) held-out test photos degraded for ``task`` with
    ``seed``, one degradation each: items ``{"input", "target": (3, H, W), "id"}``."""
    data = SyntheticPairs(task, split="test", n_per_photo=1, seed=seed)
    count = len(data) if n is None else min(n, len(data))
    return [data[i] for i in range(count)]


def held_out_scores(
    runs: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    items: Sequence[dict],
    with_ssim: bool = False,
) -> dict[str, dict[str, float]]:
    """Mean scores over ``items`` of the degraded input (key "input") and of each run's
    output clamped to [0, 1]: ``{name: {"psnr": dB, "ssim": ...}}`` (SSIM only with
    ``with_ssim``). Each run maps (1, 3, H, W) -> (1, 3, H, W); evaluated under no_grad."""
    scores: dict[str, dict[str, list[float]]] = {k: {} for k in ("input", *runs)}

    def add(name: str, out: torch.Tensor, target: torch.Tensor) -> None:
        scores[name].setdefault("psnr", []).append(psnr(out, target))
        if with_ssim:
            scores[name].setdefault("ssim", []).append(ssim(out, target))

    with torch.no_grad():
        for item in items:
            x, y = item["input"], item["target"]
            add("input", x, y)
            for name, run in runs.items():
                add(name, run(x[None]).clamp(0, 1)[0], y)
    return {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in scores.items()}


def held_out_psnr(
    runs: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], task: str, seed: int = 0
) -> dict[str, float]:
    """Mean PSNR (dB) over all test photos degraded for ``task``: of the input (key
    "input") and of each run (:func:`held_out_scores`); "n" is the number of photos."""
    items = held_out_items(task, seed=seed)
    scores = held_out_scores(runs, items)
    return {**{k: v["psnr"] for k, v in scores.items()}, "n": len(items)}


def site_map_range(model: nn.Module, train_size: int) -> str:
    """The smallest and largest feature map any site of ``model`` sees on a
    ``train_size`` input, as ``"HxW-HxW"`` (by area; one size: ``"HxW"``; no site: "-")."""
    sizes = [hw for found in feature_sizes(model, train_size).values() for hw in found]
    if not sizes:
        return "-"
    lo, hi = min(sizes, key=lambda s: s[0] * s[1]), max(sizes, key=lambda s: s[0] * s[1])
    return f"{lo[0]}x{lo[1]}" if lo == hi else f"{lo[0]}x{lo[1]}-{hi[0]}x{hi[1]}"


def scheme_psnr(
    checkpoint: Subject | str | Path,
    seed: int = 0,
    *,
    images: ImageSource | None = None,
    **identity: Any,
) -> dict:
    """Mean PSNR (dB) over the test images (``images``; default the bundled photos
    degraded for the checkpoint's task with ``seed``; ``identity`` as in
    :func:`~tlc_probe.jobs.subject.load_for_test`): of the input, and of the output with
    whole-image inference, TLC (the checkpoint's train_size) and overlapping tiles
    (tile = train_size, overlap 16).
    Returns {"model", "task", "train_size", "site_maps" (:func:`site_map_range`),
    "input", "whole", "tlc", "tiles-16", "n"}."""
    return _scheme_row(*load_for_test(checkpoint, None, seed, images=images, **identity))


def _scheme_row(subject: Subject, items: Sequence[dict]) -> dict:
    ts, model = subject.train_size, subject.model
    runs = {s.name: s.run for s in make_schemes(model, ts, EVALUATE_SCHEMES)}
    scores = held_out_scores(runs, items)
    return {
        "model": subject.name,
        "task": subject.task,
        "train_size": ts,
        "site_maps": site_map_range(model, ts),
        **{k: scores[k]["psnr"] for k in ("input", *EVALUATE_SCHEMES)},
        "n": len(items),
    }


def psnr_table(
    checkpoints: Sequence[Subject | str | Path],
    seed: int = 0,
    reliance: bool = False,
    *,
    images: ImageSource | None = None,
    **identity: Any,
) -> pd.DataFrame:
    """:func:`scheme_psnr` of each checkpoint, one row each, PSNR in dB. With
    ``reliance``, also ``frozen_all`` (PSNR change, dB, with every site's statistic
    frozen to its mean over the test photos; :func:`tlc_probe.jobs.reliance.reliance`)
    and ``relied_sites`` ("k/n": sites whose freezing alone changes PSNR by at least
    :data:`~tlc_probe.metrics.decomposition.RELIED_DB`)."""
    rows = []
    for c in checkpoints:
        subject, items = load_for_test(c, None, seed, images=images, **identity)
        row = _scheme_row(subject, items)
        if reliance:
            rel = freeze(subject.model, items, reference=items)
            one = rel[rel["site"] != "all"]
            row["frozen_all"] = float(rel.loc[rel["site"] == "all", "delta_psnr"].iloc[0])
            row["relied_sites"] = f"{int(relied_on(one['delta_psnr']).sum())}/{len(one)}"
        rows.append(row)
    return pd.DataFrame(rows)
