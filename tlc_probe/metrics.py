"""Image quality metrics."""

from __future__ import annotations

import math

import torch


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two images of the same shape (values in
    [0, data_range]); ``inf`` for identical images. Computed in float64 over all pixels."""
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = float(((x.double() - y.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range**2 / mse)
