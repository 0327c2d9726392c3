"""Independent references for the tests: brute force, written without tlc_probe."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import uniform_filter1d


def replicate_valid(valid: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pad a map of valid windows back to (h, w), split evenly, extra at bottom/right."""
    vh, vw = valid.shape[-2:]
    t, left = (h - vh) // 2, (w - vw) // 2
    return F.pad(valid, (left, w - vw - left, t, h - vh - t), mode="replicate")


def brute_local_mean(x: torch.Tensor, k: tuple[int, int]) -> torch.Tensor:
    """float64 mean over every k window (clipped to the map) by F.avg_pool2d, stride 1."""
    h, w = x.shape[-2:]
    kh, kw = min(k[0], h), min(k[1], w)
    valid = F.avg_pool2d(x.double(), (kh, kw), stride=1)
    return replicate_valid(valid, h, w)


def scipy_local_mean(x: torch.Tensor, k: tuple[int, int]) -> torch.Tensor:
    """float64 valid window means by scipy's running filter (for maps too big for avg_pool2d)."""
    a = x.double().numpy()
    h, w = a.shape[-2:]
    kh, kw = min(k[0], h), min(k[1], w)
    a = uniform_filter1d(a, kw, axis=-1, mode="constant")
    a = uniform_filter1d(a, kh, axis=-2, mode="constant")
    # With origin 0, scipy's output at index i averages [i - k // 2, i - k // 2 + k),
    # so the window starting at j is read at j + k // 2.
    valid = a[..., kh // 2 : kh // 2 + h - kh + 1, kw // 2 : kw // 2 + w - kw + 1]
    return replicate_valid(torch.from_numpy(np.ascontiguousarray(valid)), h, w)


def brute_local_instance_norm(x, k, weight=None, bias=None, eps=1e-5):
    """Local instance norm from brute-force float64 window moments (biased variance)."""
    xd = x.double()
    mu = brute_local_mean(xd, k)
    var = brute_local_mean(xd * xd, k) - mu * mu
    out = (xd - mu) / torch.sqrt(var.clamp(min=0) + eps)
    if weight is not None:
        out = out * weight.double()[None, :, None, None] + bias.double()[None, :, None, None]
    return out
