"""Figures (matplotlib/seaborn): each function returns a Figure and keeps no global state."""

from __future__ import annotations

from matplotlib.figure import Figure

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
