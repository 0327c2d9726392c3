"""The figures jobs: statistics -> Fig. A3 / depth / heatmap files, and checkpoints ->
qualitative panels (the inference runs here; :mod:`tlc_probe.viz` only draws)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from ..metrics.decomposition import decomposition
from ..metrics.shift import COMPARISONS, shift_table, stat_mask
from ..schemes import make_schemes
from ..store.figures import save_figure
from ..store.read import SiteIndex, read_site
from ..viz import (
    choose_site,
    decomposition_figure,
    depth_profile,
    fig_a3,
    heatmap,
    qualitative_figure,
    training_dynamics,
)
from .images import ImageSource
from .recorder import QUALITY_CSV, read_quality
from .shift import store_shift_table
from .subject import Subject, load_for_test


def _quality(stats: str | Path | Sequence[str | Path] | SiteIndex) -> pd.DataFrame:
    if isinstance(stats, SiteIndex):
        roots: list[str | Path] = list(stats.roots)
    else:
        roots = [stats] if isinstance(stats, str | Path) else list(stats)
    found = [Path(r) / QUALITY_CSV for r in roots if Path(r).is_dir()]
    found += [q for r in roots if Path(r).is_dir() for q in Path(r).glob(f"*/{QUALITY_CSV}")]
    frames = [read_quality(q.parent) for q in dict.fromkeys(found) if q.exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def stats_figures(
    stats: str | Path | Sequence[str | Path] | SiteIndex | pd.DataFrame,
    out: str | Path,
    sites: Sequence[str] = (),
    stat: str = "mean",
    shift: pd.DataFrame | None = None,
    quality: pd.DataFrame | None = None,
    reliance: pd.DataFrame | None = None,
) -> list[Path]:
    """Draw, for every (model, task) in ``stats``: the Fig. A3 figure of the site of each
    kind with the largest normalised whole~train W1 (:func:`tlc_probe.viz.choose_site`)
    and of every site in ``sites`` that the model has, the depth profile and the heatmap.
    Files ``<model>-<task>-a3-<site>.{png,pdf}``, ``...-depth.*``, ``...-heatmap.*`` in
    ``out``. Statistics recorded during training (a ``step`` column) also give
    ``<model>-<task>-training.*`` (:func:`tlc_probe.viz.training_dynamics`, with the probe
    PSNR of ``quality``, read from the stores' ``_quality.csv`` when ``stats`` are paths),
    and the other figures show the last recorded step. When the decomposition's regimes
    (train, tiles, window, whole) are all there, ``<model>-<task>-decomposition.*``
    (:func:`tlc_probe.viz.decomposition_figure`, sites not relied on marked when
    ``reliance`` is given). Returns the paths written.

    A (model, task) without rows of ``stat`` (e.g. ``"q_rms"``, which only attention
    sites record) draws nothing.

    Statistics given as paths (or a :class:`~tlc_probe.store.read.SiteIndex` of them) are
    read one site at a time (the shift table site by site,
    :func:`~tlc_probe.jobs.shift.store_shift_table`, and the raw rows only of the sites
    drawn), so memory stays bounded for stores of any size.

    Raises ``ValueError`` when a name in ``sites`` belongs to no model in ``stats``, and
    when one model's statistics hold several test sets (they would be pooled)."""
    if isinstance(stats, pd.DataFrame):
        groups = sorted(set(map(tuple, stats[["model", "task", "site"]].drop_duplicates().values)))

        def rows_of(model: str, task: str, site: str) -> pd.DataFrame:
            sel = (stats["model"] == model) & (stats["task"] == task) & (stats["site"] == site)
            return stats[sel]
    else:
        index = stats if isinstance(stats, SiteIndex) else SiteIndex(stats)
        groups = list(index)
        if quality is None:
            quality = _quality(stats)

        def rows_of(model: str, task: str, site: str) -> pd.DataFrame:
            return read_site(index, (model, task, site))

    missing = [s for s in sites if s not in {g[2] for g in groups}]
    if missing:
        raise ValueError(f"sites {missing} are in no statistics given")
    if shift is not None:
        table = shift
    elif isinstance(stats, pd.DataFrame):
        table = shift_table(stats, per_channel=False)
    else:
        table = store_shift_table(index, COMPARISONS, per_channel=False)
    if "test_set" in table.columns and len(table):
        sets = table.groupby(["model", "task"])["test_set"].unique()
        if (mixed := sets[sets.map(len) > 1]).any():
            (model, task), names = mixed.index[0], sorted(map(str, mixed.iloc[0]))
            raise ValueError(
                f"statistics of {model} / {task} hold test sets {names}: their figures would "
                "pool them; draw one test set at a time (give the statistics of one)"
            )
    paths: list[Path] = []
    for model, task in sorted({(m, t) for m, t, _ in groups}):
        mine = {g[2] for g in groups if g[:2] == (model, task)}
        tab = table[(table["model"] == model) & (table["task"] == task)]
        last = None
        if "step" in tab.columns and tab["step"].notna().any():
            if tab["comparison"].isin(["whole~train", "tlc~train"]).any():
                fig = training_dynamics(tab, quality, stat=stat, model=model, task=task)
                paths += save_figure(fig, out, f"{model}-{task}-training")
            else:
                warnings.warn(
                    f"{model}/{task}: train rows only (no whole / tlc regime recorded): no "
                    "training-dynamics figure",
                    RuntimeWarning,
                    stacklevel=2,
                )
            last = tab["step"].max()
            tab = tab[tab["step"] == last]
            if tab.empty:
                continue
        if not stat_mask(tab, stat).any():  # e.g. --stat q_rms: only attention sites have it
            continue
        chosen = []
        for kind in ("in", "se", "attn"):
            if ((tab["kind"] == kind) & stat_mask(tab, stat)).any():
                chosen.append(choose_site(tab, kind, model=model))
        chosen += [s for s in sites if s in mine and s not in chosen]
        tag = f"{model}-{task}"
        for site in chosen:
            sub = rows_of(model, task, site)
            if last is not None:
                sub = sub[sub["step"] == last]
            fig = fig_a3(sub, site, stat=stat, shift=tab, model=model, task=task)
            paths += save_figure(fig, out, f"{tag}-a3-{site}")
        paths += save_figure(
            depth_profile(tab, stat=stat, model=model, task=task), out, f"{tag}-depth"
        )
        paths += save_figure(heatmap(tab, model, stat=stat, task=task), out, f"{tag}-heatmap")
        parts = decomposition(tab, reliance)
        shares = parts[["content_share", "context_share", "aggregation_share"]]
        if shares.notna().all(axis=1).any():
            fig = decomposition_figure(parts, model=model, stat=stat)
            paths += save_figure(fig, out, f"{tag}-decomposition")
    return paths


def qualitative(
    checkpoint: Subject | str | Path,
    photo: int = 0,
    seed: int = 0,
    crop: int = 96,
    *,
    images: ImageSource | None = None,
    **identity: Any,
) -> Figure:
    """Fig. A4-A6 analogue for a checkpoint (or subject; ``identity`` as in
    :func:`~tlc_probe.jobs.subject.load_subject`) on test image ``photo`` of ``images``
    (default: the bundled photos degraded for its task with ``seed``): whole-image and
    TLC outputs beside the input and the ground truth
    (:func:`tlc_probe.viz.qualitative_figure`). Returns the Figure."""
    subject, items = load_for_test(checkpoint, photo + 1, seed, images=images, **identity)
    item, ts, model = items[photo], subject.train_size, subject.model
    labels = {"whole": "whole image", "tlc": "TLC"}
    with torch.no_grad():
        outputs = {
            labels[s.name]: s.run(item["input"][None])[0].clamp(0, 1)
            for s in make_schemes(model, ts, ["whole", "tlc"])
        }
    title = f"{subject.name} ({subject.task}, trained on {ts} px): {item['id']}"
    return qualitative_figure(item["input"], outputs, item["target"], title=title, crop=crop)
