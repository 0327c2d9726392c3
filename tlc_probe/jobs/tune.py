"""Per-site windows chosen from the measured shift, checked by PSNR: ``tune_windows``.

The paper gives every site one window rule, base = 1.5 x train. Here each site's window
is chosen from what the probe measures, then the choice is checked on images that are
not the evaluation images:

1. **Statistics per candidate.** For each candidate c (multiples of the training extent,
   and ``"global"``), the network converted uniformly with base = c x train (``"global"``:
   the network itself) runs on the tuning images under the :class:`~tlc_probe.Probe`;
   the train regime is the network on training-size crops of the same images (so the
   content is the same and only the extent of the mean and the context differ). One
   pass per candidate and image, with the exact machinery every other command uses.
2. **The choice.** Per site, the candidate whose statistic (the site's primary one) sits
   closest to training: the smallest W1 / std(train), averaged over channels
   (:func:`~tlc_probe.metrics.shift.shift_table`). Each site is judged with every
   other site at the same candidate — not at the windows chosen for them — so a
   last pass with the chosen plan measures each site again ("after").
3. **Validation.** PSNR of the plan and of the uniform 1.5 on the tuning images, which
   are training images, never the evaluation images: the plan is kept only when its
   paired PSNR difference is above 0; otherwise the plan is the uniform 1.5, so tuning
   never silently loses. Both, with the interval, go into ``plan.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..metrics.image import psnr
from ..metrics.intervals import paired_difference
from ..metrics.shift import shift_table, stat_mask
from ..probe import Probe
from ..store.atomic import atomic_write
from ..store.figures import save_figure
from ..tensors import model_device_dtype, pixel_batches
from ..tlc import convert, tlc_windows
from ..tlc.plan import GLOBAL, Plan, uniform_windows
from ..viz import tune_figure
from .collect import train_crops
from .images import ImageSource, Items
from .subject import Subject, as_subject

#: Window candidates, as multiples of each site's training extent, and global.
CANDIDATES: tuple[float | str, ...] = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, GLOBAL)
#: The paper's uniform rule, the fallback and the baseline of the validation.
UNIFORM = 1.5


def _label(c: float | str) -> str:
    return GLOBAL if c == GLOBAL else f"x{float(c):g}"


def _net(model: nn.Module, train_size: int, c: float | str) -> nn.Module:
    if c == GLOBAL:
        return model
    return convert(model, train_size=train_size, base_size=int(float(c) * train_size))


def tune_windows(
    checkpoint: Subject | nn.Module | str | Path,
    *,
    images: ImageSource | None = None,
    n_images: int = 4,
    candidates: Sequence[float | str] = CANDIDATES,
    n_crops: int = 64,
    positions: int = 8,
    seed: int = 0,
    progress: bool = True,
    **identity: Any,
) -> dict[str, Any]:
    """Choose each site's window from the shift of its statistics, check it by PSNR.

    Args:
        checkpoint: a checkpoint, a :class:`~tlc_probe.jobs.subject.Subject` or an own
            module (``identity``: ``model``, ``preset``, ``task``, ``train_size``,
            ``name`` as in :func:`~tlc_probe.jobs.subject.load_subject`).
        images: where the tuning images come from: its *training* images
            (:meth:`~tlc_probe.jobs.images.ImageSource.train_set`; the bundled training
            photos by default), never its test images, which stay for evaluation.
        n_images: tuning images used (whole images, spread over the training images;
            statistics and validation PSNR).
        candidates: multiples (>= 1) of the training extent, and ``"global"``; must hold
            1.5 (the uniform rule, the validation's baseline).
        n_crops: training crops of the tuning images for the train regime.
        positions: window positions per axis the probe samples per map.
        seed: of the crops.
        progress: show a progress bar.

    Returns:
        {"subject": the :class:`~tlc_probe.jobs.subject.Subject`, "plan": the
        :class:`~tlc_probe.tlc.plan.Plan` (validated, or the uniform 1.5
        when validation does not support the choice), "chosen": the plan the statistics
        chose, "scores": one row per site and candidate (site, kind, depth, candidate,
        w1_norm: mean over channels of W1 / std(train) of the primary statistic, chosen:
        whether this candidate is the site's choice), plus rows of candidate
        ``"tuned"`` measured with the chosen plan (chosen False),
        "validation": per-image PSNR (image, scheme ``uniform`` / ``tuned``, psnr),
        "kept": ``"tuned"`` or ``"uniform"``, "dpsnr": paired_difference of tuned to
        uniform}.
    """
    subject = as_subject(checkpoint, **identity)
    model, ts = subject.model.eval(), subject.train_size
    if UNIFORM not in [c for c in candidates if c != GLOBAL]:
        raise ValueError(f"candidates must hold the uniform rule {UNIFORM}, got {candidates}")
    for c in candidates:
        if c != GLOBAL and not float(c) >= 1:
            raise ValueError(
                f"candidates are multiples >= 1 of the training extent or 'global', got {c!r}"
            )
    images = images if images is not None else ImageSource(seed=seed)
    pool = images.train_set(subject.task, subject.meta.get("train_config"))
    if pool is None:
        raise ValueError(
            "tuning needs images that are not the evaluation images: give train_data "
            "(--train-data) or a GoPro folder with its train split"
        )
    if n_images < 1 or len(pool) == 0:
        raise ValueError(f"no tuning image (n_images={n_images}, {len(pool)} available)")
    # spread over the pool (the bundled pool holds several degradations of each photo)
    spread = np.linspace(0, len(pool) - 1, min(n_images, len(pool))).round().astype(int)
    tuning = torch.utils.data.Subset(pool, np.unique(spread).tolist())
    items = Items(tuning)
    base = {"model": subject.name, "task": subject.task}

    frames = []
    # training crops of the tuning images themselves: no content difference between the
    # regimes, only the extent of the mean and the context remain
    ids, crops = train_crops(tuning, ts, 0, n_crops, seed, {}, 0)
    with torch.no_grad(), Probe(model, positions=positions) as probe:
        for batch in pixel_batches(crops, model_device_dtype(model)[0]):
            model(batch)
        frames.append(probe.take(ids).assign(regime="train", **base))
    nets = {_label(c): _net(model, ts, c) for c in candidates}
    features = {w["name"]: tuple(w["feature_size"]) for w in tlc_windows(nets[_label(UNIFORM)])}
    outputs: dict[str, list[float]] = {}
    bar = tqdm(
        total=len(items) * (len(nets) + 1), desc=f"tune {subject.name}", disable=not progress
    )

    def measure(label: str, net: nn.Module) -> None:
        with torch.no_grad(), Probe(net, positions=positions) as p:
            for i in range(len(items)):
                item = items[i]
                out = net(item["input"][None])
                outputs.setdefault(label, []).append(psnr(out[0].clamp(0, 1), item["target"]))
                frames.append(p.take([item["id"]]).assign(regime=label, **base))
                bar.update(1)

    for label, net in nets.items():
        measure(label, net)
    scores = _scores(pd.concat(frames, ignore_index=True), list(nets))
    best = _choose(scores)
    scores["chosen"] = scores["candidate"] == scores["site"].map(
        {s: _label(c) for s, c in best.items()}
    )
    chosen = Plan(
        {
            s: (None if c == GLOBAL else uniform_windows({s: features[s]}, ts, c)[s])
            for s, c in best.items()
            if s in features
        },
        train_size=ts,
        checkpoint_sha256=subject.meta.get("checkpoint_sha256"),
        candidates=tuple(candidates),
    )
    measure("tuned", model if chosen.all_global else convert(model, train_size=ts, plan=chosen))
    bar.close()
    after = _scores(pd.concat(frames, ignore_index=True), ["tuned"]).assign(chosen=False)
    scores = pd.concat([scores, after], ignore_index=True)
    uniform = outputs[_label(UNIFORM)]
    d = paired_difference(outputs["tuned"], uniform)
    kept = "tuned" if d["diff"] > 0 else "uniform"
    validation = {
        "images": [str(items[i]["id"]) for i in range(len(items))],
        "uniform_psnr": float(np.mean(uniform)),
        "tuned_psnr": float(np.mean(outputs["tuned"])),
        "dpsnr": d["diff"],
        "dpsnr_lo": d["lo"],
        "dpsnr_hi": d["hi"],
        "kept": kept,
    }
    windows = chosen.windows if kept == "tuned" else uniform_windows(features, ts, UNIFORM)
    plan = Plan(windows, ts, chosen.checkpoint_sha256, tuple(candidates), validation)
    per_image = pd.DataFrame(
        [
            (validation["images"][i], s, v)
            for s in ("uniform", "tuned")
            for i, v in enumerate(uniform if s == "uniform" else outputs["tuned"])
        ],
        columns=["image", "scheme", "psnr"],
    )
    return {
        "subject": subject,
        "plan": plan,
        "chosen": chosen,
        "scores": scores,
        "validation": per_image,
        "kept": kept,
        "dpsnr": d,
    }


def _scores(stats: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per site and candidate label: the mean over channels of W1 / std(train) of the
    site's primary statistic."""
    comparisons = [f"{label}~train" for label in labels]
    table = shift_table(stats, comparisons, per_channel=True, intervals=False)
    table = table[(table["channel"] != "all") & stat_mask(table, "mean")]
    table = table.assign(candidate=table["comparison"].str.split("~").str[0])
    out = table.groupby(["site", "kind", "depth", "candidate"], as_index=False, sort=False)
    return out["w1_norm"].mean()


def _choose(scores: pd.DataFrame) -> dict[str, float | str]:
    """Per site the candidate with the smallest score; ties go to the one nearest the
    uniform 1.5."""
    best = {}
    for site, grp in scores.groupby("site", sort=False):

        def key(row) -> tuple[float, float]:
            c = row["candidate"]
            ratio = np.inf if c == GLOBAL else float(c[1:])
            return (round(float(row["w1_norm"]), 12), abs(ratio - UNIFORM))

        row = min((r for _, r in grp.iterrows()), key=key)
        c = row["candidate"]
        best[str(site)] = GLOBAL if c == GLOBAL else float(c[1:])
    return best


def tune_outputs(
    checkpoint: Subject | nn.Module | str | Path,
    out: str | Path,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`tune_windows` (``kwargs`` as there), then written to ``out``: ``plan.json``
    (the validated plan), ``chosen.json`` (the plan the statistics chose), ``scores.csv``,
    ``validation.csv`` and ``tune.{png,pdf}``. Returns tune_windows' dict plus "paths"."""
    res = tune_windows(checkpoint, **kwargs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [res["plan"].save(out / "plan.json"), res["chosen"].save(out / "chosen.json")]
    paths.append(atomic_write(out / "scores.csv", lambda p: res["scores"].to_csv(p, index=False)))
    paths.append(
        atomic_write(out / "validation.csv", lambda p: res["validation"].to_csv(p, index=False))
    )
    paths += save_figure(tune_figure(res["scores"], res["subject"].name), out, "tune")
    return res | {"paths": paths}
