"""Dead-leaves images: a synthetic image prior for restoration training, any size, no download.

Matheron's dead-leaves model: opaque discs of random colour fall on the plane, each
hiding what lies under it. With radii distributed as r^-3 between ``r_min`` and ``r_max``
the images are approximately scale invariant, with the power spectrum and the sharp,
occluding edges of natural images (Lee, Mumford & Huang 2001; used as a training prior
for restoration by Achddou et al., "Synthetic images as a regularity prior for image
restoration neural networks", 2021).

Here the view is from below: discs are drawn in order and each paints only pixels no
earlier disc covers, which gives the same law and stops once the canvas is covered. The
canvas is drawn at twice the size and area-downsampled (anti-aliased edges); colours are
uniform in RGB, with a per-disc linear shading so that discs are not perfectly flat.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..sizes import as_pair

#: radius range as fractions of the shorter side, and the r^-alpha exponent
R_MIN = 0.004
R_MAX = 0.35
ALPHA = 3.0
MAX_DISCS = 20000


def _radii(rng: np.random.Generator, n: int, r_min: float, r_max: float) -> np.ndarray:
    """``n`` radii with density proportional to r^-ALPHA on [r_min, r_max] (inverse CDF)."""
    e = 1.0 - ALPHA
    u = rng.random(n)
    return (r_min**e + u * (r_max**e - r_min**e)) ** (1.0 / e)


#: Batches of discs between two summed-area tables of the free pixels.
_TABLE_BATCHES = 4


def _free_table(free: np.ndarray) -> np.ndarray:
    """The summed-area table (H + 1, W + 1) of a boolean (H, W) map."""
    table = np.zeros((free.shape[0] + 1, free.shape[1] + 1), dtype=np.int32)
    np.cumsum(free, axis=0, dtype=np.int32, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return table


def _may_show(table: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """False for discs (cy, cx) of radius r whose box, clipped as the drawing loop clips
    it, holds no free pixel by the summed-area ``table``; True otherwise."""
    sh, sw = table.shape[0] - 1, table.shape[1] - 1
    cy, cx = centres[:, 0], centres[:, 1]
    y0 = np.clip(np.trunc(cy - radii), 0, sh).astype(np.int64)
    y1 = np.clip(np.ceil(cy + radii) + 1, 0, sh).astype(np.int64)
    x0 = np.clip(np.trunc(cx - radii), 0, sw).astype(np.int64)
    x1 = np.clip(np.ceil(cx + radii) + 1, 0, sw).astype(np.int64)
    count = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    return (y0 < y1) & (x0 < x1) & (count > 0)


def dead_leaves(size: int | tuple[int, int], seed: int, shading: float = 0.15) -> torch.Tensor:
    """A dead-leaves image: (3, H, W) float32 in [0, 1], deterministic for ``seed``.

    ``size``: H x W (an int for a square); ``shading``: the largest change of a disc's
    colour across its diameter (a linear ramp in a random direction), 0 for flat discs.
    Raises ``ValueError`` for a size below 8 px.
    """
    h, w = as_pair(size, "size")
    if min(h, w) < 8:
        raise ValueError(f"size must be at least 8x8, got {h}x{w}")
    rng = np.random.default_rng(seed)
    sh, sw = 2 * h, 2 * w
    short = min(sh, sw)
    r_min, r_max = max(1.0, R_MIN * short), R_MAX * short
    canvas = np.zeros((3, sh, sw), dtype=np.float32)
    free = np.ones((sh, sw), dtype=bool)
    left = sh * sw
    drawn = 0
    table, age = None, 0
    while left > 0 and drawn < MAX_DISCS:
        batch = 512
        radii = _radii(rng, batch, r_min, r_max)
        centres = rng.random((batch, 2)) * (sh, sw)
        colours = rng.random((batch, 3)).astype(np.float32)
        angles = rng.uniform(0, 2 * np.pi, batch)
        # most discs fall where earlier ones cover every pixel of their box: counted
        # with a summed-area table of the free pixels, they are left out at once (the
        # table is a few batches old at most; free pixels only get fewer, so a disc it
        # finds no free pixel for cannot show)
        if table is None or age == _TABLE_BATCHES:
            table, age = _free_table(free), 0
        age += 1
        shows = _may_show(table, centres, radii)
        discs = zip(radii[shows], centres[shows], colours[shows], angles[shows], strict=True)
        for r, (cy, cx), col, a in discs:
            y0, y1 = max(0, int(cy - r)), min(sh, int(np.ceil(cy + r)) + 1)
            x0, x1 = max(0, int(cx - r)), min(sw, int(np.ceil(cx + r)) + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            hole = free[y0:y1, x0:x1]
            if not hole.any():  # hidden behind earlier discs (most late ones): skip early
                continue
            yy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
            xx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
            inside = (yy**2 + xx**2 <= r * r) & hole
            if not inside.any():
                continue
            ramp = (np.cos(a) * yy + np.sin(a) * xx) / (2 * r) * shading
            region = canvas[:, y0:y1, x0:x1]
            region[:, inside] = np.clip(col[:, None] + ramp[inside], 0.0, 1.0)
            hole &= ~inside
            left -= int(inside.sum())
            drawn += 1
            if left == 0:
                break
    img = torch.from_numpy(canvas)[None]
    return F.avg_pool2d(img, 2)[0].clamp(0, 1).contiguous()
