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


def offset_trend_map() -> torch.Tensor:
    """(1, 2, 720, 1280) float32 noise with an offset of 100 and trends along both axes:
    the map on which a float32 integral image without centring loses digits."""
    g = torch.Generator().manual_seed(3)
    return (
        torch.randn(1, 2, 720, 1280, generator=g) * torch.linspace(0.5, 3, 1280)
        + torch.linspace(0, 5, 720)[:, None]
        + 100.0
    )


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


def fast_reference_factors(x: torch.Tensor, kernel, strides):
    """The fast variant's definition, by loops, in float64: (grid, W_h, W_w) with grid
    (N, C, G_h, G_w) the window means (over the covered pixels) at block-aligned starts
    (g r_h, f r_w) and W the (valid starts, G) linear-interpolation weights of start s at
    grid coordinate s / r; the valid map is W_h @ grid @ W_w^T."""
    h, w = x.shape[-2:]
    (kh, kw), (rh, rw) = kernel, strides
    xd = x.double()

    def axis(n, k, r):
        starts = list(range(0, n - k + r, r))  # the last may pass n - k: a partial window
        weights = np.zeros((n - k + 1, len(starts)))
        for s in range(n - k + 1):
            lo, frac = divmod(s, r)
            weights[s, lo] += 1 - frac / r
            if frac:
                weights[s, lo + 1] += frac / r
        return starts, torch.from_numpy(weights)

    sh, wh = axis(h, kh, rh)
    sw, ww = axis(w, kw, rw)
    grid = torch.zeros(*x.shape[:2], len(sh), len(sw), dtype=torch.float64)
    for i, a in enumerate(sh):
        for j, b in enumerate(sw):
            grid[..., i, j] = xd[..., a : min(a + kh, h), b : min(b + kw, w)].mean(dim=(-2, -1))
    return grid, wh, ww


def fast_reference(x: torch.Tensor, kernel, strides) -> torch.Tensor:
    """The fast variant's replicate-padded (N, C, H, W) map, float64 (see above)."""
    grid, wh, ww = fast_reference_factors(x, kernel, strides)
    return replicate_valid(wh @ grid @ ww.T, *x.shape[-2:])


def brute_window_means(x: torch.Tensor, k: tuple[int, int]) -> torch.Tensor:
    """float64 mean of every k window (clipped to the map), each taken by ``Tensor.mean``
    over the window's own values (so NaN, +-inf behave as in any mean), replicate-padded."""
    h, w = x.shape[-2:]
    kh, kw = min(k[0], h), min(k[1], w)
    win = x.double().unfold(-2, kh, 1).unfold(-2, kw, 1)  # (N, C, Vh, Vw, kh, kw)
    return replicate_valid(win.mean(dim=(-2, -1)), h, w)


def brute_window_instance_norm(x: torch.Tensor, k: tuple[int, int], eps: float = 1e-5):
    """Local instance norm from per-window float64 ``mean`` / biased ``var`` (unfold)."""
    h, w = x.shape[-2:]
    kh, kw = min(k[0], h), min(k[1], w)
    win = x.double().unfold(-2, kh, 1).unfold(-2, kw, 1).flatten(-2)
    mu = replicate_valid(win.mean(dim=-1), h, w)
    var = replicate_valid(win.var(dim=-1, unbiased=False), h, w)
    return (x.double() - mu) / torch.sqrt(var + eps)


def brute_local_channel_attention(q, k, v, temperature, heads, kernel):
    """Restormer's channel attention with every position's matrix taken over its own
    window, one position at a time (float64): the window of p starts at
    clamp(p - (k - 1) // 2, 0, n - k) per axis (valid windows, replicate at the border).
    q, k, v (N, C, H, W); temperature (heads, 1, 1)."""
    q, k, v = (t.double() for t in (q, k, v))
    n, c_all, h, w = q.shape
    kh, kw = min(kernel[0], h), min(kernel[1], w)
    c = c_all // heads
    temp = temperature.double().reshape(heads)
    out = torch.empty(n, c_all, h, w, dtype=torch.float64)
    for y in range(h):
        y0 = min(max(y - (kh - 1) // 2, 0), h - kh)
        for x in range(w):
            x0 = min(max(x - (kw - 1) // 2, 0), w - kw)
            for hd in range(heads):
                sl = slice(hd * c, (hd + 1) * c)
                qw = q[:, sl, y0 : y0 + kh, x0 : x0 + kw].reshape(n, c, -1)
                kw_ = k[:, sl, y0 : y0 + kh, x0 : x0 + kw].reshape(n, c, -1)
                qn = qw / qw.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                kn = kw_ / kw_.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                a = torch.softmax(temp[hd] * qn @ kn.transpose(1, 2), dim=-1)
                out[:, sl, y, x] = (a @ v[:, sl, y, x].unsqueeze(-1)).squeeze(-1)
    return out
