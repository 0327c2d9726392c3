"""Figures (matplotlib/seaborn): each function returns a Figure and keeps no global state."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .data import degrade, load_depth, load_photo


def degradations_figure(photo: str = "motorcycle_left", seed: int = 3) -> Figure:
    """Clean ``photo`` and its three synthetic degradations (deblur / derain / dehaze
    inputs, with seed ``seed``; haze uses the photo's measured depth if it has one), side
    by side. Returns the Figure (16 x 4 inches)."""
    img = load_photo(photo)
    panels = [("clean", img)] + [
        (task, degrade(task, img, seed, depth=load_depth(photo)))
        for task in ("deblur", "derain", "dehaze")
    ]
    fig = Figure(figsize=(16, 3.4 * img.shape[1] / img.shape[2] * 1.35))
    axes = fig.subplots(1, 4)
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


def qualitative_figure(checkpoint: str, photo: int = 0, seed: int = 0, crop: int = 96) -> Figure:
    """Fig. A4-A6 analogue for a checkpoint on test photo ``photo`` (its task's
    degradation, seed ``seed``): input, whole-image output, TLC output and ground truth
    (top row, PSNR in dB in the titles) and the same ``crop`` x ``crop`` zoom of each
    (bottom row), placed where whole-image and TLC outputs differ most. Returns the Figure.
    """
    from .data import SyntheticPairs
    from .metrics import psnr
    from .models import build_from_checkpoint, model_label
    from .tlc import convert

    model, meta = build_from_checkpoint(checkpoint)
    item = SyntheticPairs(meta["task"], split="test", n_per_photo=1, seed=seed)[photo]
    x, y = item["input"], item["target"]
    with torch.no_grad():
        whole = model(x[None])[0].clamp(0, 1)
        tlc = convert(model)(x[None])[0].clamp(0, 1)
    cy, cx = _crop_box((whole - tlc).abs().mean(0), crop)
    panels = [("input", x), ("whole image", whole), ("TLC", tlc), ("ground truth", y)]
    fig = Figure(figsize=(12, 3.0 * x.shape[1] / x.shape[2] * 1.25 + 3.2))
    axes = fig.subplots(2, 4, height_ratios=[x.shape[1] / x.shape[2] * 1.25, 1.0])
    for j, (name, im) in enumerate(panels):
        title = name if name == "ground truth" else f"{name}  {psnr(im, y):.2f} dB"
        axes[0, j].imshow(im.permute(1, 2, 0).numpy())
        axes[0, j].add_patch(Rectangle((cx, cy), crop, crop, fill=False, edgecolor="yellow", lw=1))
        axes[0, j].set_title(title, fontsize=9)
        axes[1, j].imshow(im[:, cy : cy + crop, cx : cx + crop].permute(1, 2, 0).numpy())
        for ax in axes[:, j]:
            ax.axis("off")
    name = model_label(meta)
    fig.suptitle(f"{name} ({meta['task']}, trained on {meta['train_size']} px): {item['id']}")
    fig.tight_layout()
    return fig
