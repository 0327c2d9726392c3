"""Image figures from tensors: degradations and the qualitative comparison (Fig. A4-A6
analogues). Each function returns a Figure and keeps no global state."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..metrics.image import psnr


def degradations_figure(clean: torch.Tensor, degraded: Mapping[str, torch.Tensor]) -> Figure:
    """The (3, H, W) ``clean`` photo and its degradations ``{task: (3, H, W)}`` (deblur /
    derain / dehaze inputs), side by side. Returns the Figure (16 in wide)."""
    img = clean
    panels = [("clean", img), *degraded.items()]
    fig = Figure(figsize=(16, 3.4 * img.shape[1] / img.shape[2] * 1.35))
    axes = fig.subplots(1, len(panels))
    names = {"deblur": "motion blur", "derain": "rain streaks", "dehaze": "haze"}
    for ax, (name, im) in zip(axes, panels, strict=True):
        ax.imshow(im.permute(1, 2, 0).numpy())
        ax.set_title(names.get(name, name))
        ax.axis("off")
    fig.tight_layout()
    return fig


def _crop_box(diff: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` window (stride size/2) where the
    (H, W) map ``diff`` has the largest mean."""
    h, w = diff.shape
    s = min(size, h, w)
    pooled = torch.nn.functional.avg_pool2d(diff[None, None], s, stride=max(1, s // 2))[0, 0]
    i = int(pooled.flatten().argmax())
    return (i // pooled.shape[1]) * max(1, s // 2), (i % pooled.shape[1]) * max(1, s // 2)


def qualitative_figure(
    inputs: torch.Tensor,
    outputs: Mapping[str, torch.Tensor],
    target: torch.Tensor,
    title: str = "",
    crop: int = 96,
) -> Figure:
    """Fig. A4-A6 analogue: the degraded ``inputs``, each of ``outputs`` (e.g. ``{"whole
    image": ..., "TLC": ...}``) and the ``target`` (all (3, H, W) in [0, 1]) in the top row,
    PSNR (dB) against the target in the titles, and the same ``crop`` x ``crop`` zoom of
    each below, placed where the first two outputs differ most. Returns the Figure."""
    outs = list(outputs.values())
    diff = (outs[0] - outs[1]).abs().mean(0) if len(outs) > 1 else (outs[0] - target).abs().mean(0)
    cy, cx = _crop_box(diff, crop)
    x, y = inputs, target
    panels = [("input", x), *outputs.items(), ("ground truth", y)]
    n = len(panels)
    fig = Figure(figsize=(3 * n, 3.0 * x.shape[1] / x.shape[2] * 1.25 + 3.2))
    axes = fig.subplots(2, n, height_ratios=[x.shape[1] / x.shape[2] * 1.25, 1.0])
    for j, (name, im) in enumerate(panels):
        label = name if name == "ground truth" else f"{name}  {psnr(im, y):.2f} dB"
        axes[0, j].imshow(im.permute(1, 2, 0).numpy())
        axes[0, j].add_patch(Rectangle((cx, cy), crop, crop, fill=False, edgecolor="yellow", lw=1))
        axes[0, j].set_title(label, fontsize=9)
        axes[1, j].imshow(im[:, cy : cy + crop, cx : cx + crop].permute(1, 2, 0).numpy())
        for ax in axes[:, j]:
            ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
