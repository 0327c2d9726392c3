"""Figures of the inference-scheme comparison, from frames and tensors: the TLC window
sweep and the seam crops (Fig. A1/A2 analogue)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ..metrics.image import seam_index
from ..tiling import tile_edges

#: base_size / train_size ratios marked on the sweep's x axis (the paper's default: 1.5).
SWEEP_TICKS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)


def sweep_figure(sweep: pd.DataFrame) -> Figure:
    """PSNR of TLC against base_size / train_size (log x, ticks at the ratios measured),
    the global model as a dashed line; one line per model in ``sweep``; the title states
    the number of test images (column ``n``). Returns the Figure (4.5 x 3 in)."""
    fig = Figure(figsize=(4.5, 3.0))
    ax = fig.subplots()
    for model, g in sweep.groupby("model", sort=False):
        loc = g[np.isfinite(g["ratio"])]
        (line,) = ax.plot(loc["ratio"], loc["psnr"], marker="o", label=f"{model} TLC")
        glob = g[~np.isfinite(g["ratio"])]
        if len(glob):
            ax.axhline(
                float(glob["psnr"].iloc[0]),
                ls="--",
                color=line.get_color(),
                label=f"{model} global",
            )
    ax.set_xscale("log")
    ratios = sorted({float(r) for r in sweep["ratio"] if np.isfinite(r)})
    ax.set_xticks(ratios or list(SWEEP_TICKS), [f"{r:g}" for r in ratios or SWEEP_TICKS])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("base_size / train_size")
    ax.set_ylabel("PSNR (dB)")
    n = sorted({int(v) for v in sweep["n"].dropna()}) if "n" in sweep.columns else []
    ax.set_title("TLC window sweep" + (f" ({'/'.join(map(str, n))} test images)" if n else ""))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def seam_crops_figure(
    outputs: Mapping[str, tuple[torch.Tensor, int]],
    target: torch.Tensor,
    tile: int,
    title: str = "",
    gain: float = 4.0,
) -> Figure:
    """Fig. A1/A2 analogue: ``outputs`` maps a scheme name to (its (3, H, W) output, the
    tile overlap whose edges to draw and score); ``target`` is the (3, H, W) ground truth,
    ``tile`` the tile size. A crop around a tile corner of the first scheme's overlap: each
    output (top) and its |error| x ``gain`` (bottom) with the tile edges drawn, the seam
    index (:func:`tlc_probe.metrics.seam_index`) in each title (NaN where no tile edge lies
    inside: then the crop is centred on the image). Returns the Figure."""
    y = target
    o0 = min(ov for _, ov in outputs.values())
    ey, ex = tile_edges(y.shape[1], tile, o0), tile_edges(y.shape[2], tile, o0)
    # centred on a tile corner; on the image's centre along an axis one tile spans
    cy = ey[len(ey) // 2] if ey else y.shape[1] // 2
    cx = ex[len(ex) // 2] if ex else y.shape[2] // 2
    half = tile
    y0, x0 = max(0, cy - half), max(0, cx - half)
    crop = (slice(y0, y0 + 2 * half), slice(x0, x0 + 2 * half))
    fig = Figure(figsize=(2.2 * len(outputs), 4.6))
    axes = fig.subplots(2, len(outputs), squeeze=False)
    for j, (name, (o, ov)) in enumerate(outputs.items()):
        si = seam_index(o, y, tile, ov)
        err = ((o - y).abs().mean(0) * gain).clamp(0, 1)
        axes[0, j].imshow(o[:, crop[0], crop[1]].permute(1, 2, 0).numpy())
        axes[1, j].imshow(err[crop].numpy(), cmap="magma", vmin=0, vmax=1)
        axes[0, j].set_title(f"{name}\nseam index {si:.2f}", fontsize=8)
        for e in tile_edges(y.shape[1], tile, ov):
            if y0 < e < y0 + 2 * half:
                axes[1, j].axhline(e - y0 - 0.5, color="cyan", lw=0.4, alpha=0.6)
        for e in tile_edges(y.shape[2], tile, ov):
            if x0 < e < x0 + 2 * half:
                axes[1, j].axvline(e - x0 - 0.5, color="cyan", lw=0.4, alpha=0.6)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel(f"|error| x {gain:g}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
