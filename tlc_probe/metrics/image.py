"""Image quality: PSNR, SSIM and the seam index of tiled outputs. Numbers in, numbers out.

Seam index. Let r = output - ground truth (per channel) and, for a horizontal line i
(between rows i - 1 and i), D_i = mean over channels and columns of |r_i - r_(i-1)|;
likewise for vertical lines. The index is the mean of D over the lines where a tile edge
lies (inside the image) divided by its mean over the lines at least ``margin`` pixels
from any tile edge. Natural residuals have no preferred lines, so a seamless output
gives about 1; a tile seam (a jump of the residual along the edge) gives more.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import structural_similarity

from ..tiling import tile_edges


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two images of the same shape (values in
    [0, data_range]); ``inf`` for identical images. Computed in float64 over all pixels."""
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = float(((x.double() - y.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(output: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM (scikit-image, Gaussian-free 7x7 windows, data range 1) of (C, H, W) images."""
    a = output.detach().double().permute(1, 2, 0).cpu().numpy()
    b = target.detach().double().permute(1, 2, 0).cpu().numpy()
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0))


def seam_index(
    output: torch.Tensor,
    target: torch.Tensor,
    tile: int,
    overlap: int,
    margin: int = 2,
) -> float:
    """Boundary-artifact index of an (C, H, W) ``output`` against ``target`` for tiles of
    ``tile`` px overlapping by ``overlap`` (see the module docstring): mean |jump| of the
    residual across tile-edge lines / the same on lines >= ``margin`` px from every edge.
    NaN when the image holds no tile edge or no line away from them."""
    r = (output.double() - target.double()).reshape(-1, *output.shape[-2:])
    h, w = r.shape[-2:]
    dy = (r[:, 1:, :] - r[:, :-1, :]).abs().mean(dim=(0, 2))  # line i+1 between rows i, i+1
    dx = (r[:, :, 1:] - r[:, :, :-1]).abs().mean(dim=(0, 1))
    on, off = [], []
    for d, n in ((dy, h), (dx, w)):
        edges = np.array(tile_edges(n, tile, overlap), dtype=int)
        lines = np.arange(1, n)
        if len(edges):
            dist = np.abs(lines[:, None] - edges[None, :]).min(axis=1)
        else:
            dist = np.full(len(lines), n)
        vals = d.numpy()
        on.append(vals[dist == 0])
        off.append(vals[dist >= margin])
    on_v, off_v = np.concatenate(on), np.concatenate(off)
    if not len(on_v) or not len(off_v) or off_v.mean() == 0:
        return float("nan")
    return float(on_v.mean() / off_v.mean())
