"""Box means over sliding windows in O(HW): the arithmetic behind every local site.

Two estimators of the mean over each k_h x k_w window of a feature map:

* :func:`box_mean` (exact): separable integral image. A cumulative sum along W gives
  every row's window sum by one subtraction; a cumulative sum of those along H gives
  the window sum. Each channel is centred on its global mean first, and each 1-D
  cumulative sum spans one row or column (not the whole map), so float32 keeps about
  float32 accuracy: on 720x1280 maps with an offset of 100 the error against a float64
  brute force is below 1e-6 of max|x| (windows 384, 96) and 3e-7 (window 7x5); see
  ``tests/test_box.py`` and ``benchmarks/local_pool.py``. Half precision is computed
  in float32.
* :func:`box_mean_fast` (``fast_imp``): the paper's sampling speed-up, done with block
  means instead of a strided pick so that its error has a guaranteed bound. The map is
  reduced to r_h x r_w block means, the integral image runs on that r_h*r_w times
  smaller grid, and the window means at block-aligned starts are interpolated
  (bilinearly) to every start in between.

Both return the "valid" windows only, expanded to the input size by replicate padding
split evenly on both sides (the extra pixel at the bottom/right), as the published TLC
implementation does. When a window covers the whole map the callers return the global
mean instead (see :mod:`tlc_probe.tlc.pooling`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Default minimum number of blocks per window axis in the fast variant. It fixes the
#: stride r (see :func:`fast_stride`) and with it the error bound (:func:`fast_error_bound`).
FAST_MIN_CELLS = 8


def check_map(x: torch.Tensor, what: str = "input") -> None:
    """Raise ``ValueError`` unless ``x`` is a non-empty 4-D (N, C, H, W) tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what} must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{what} is empty (zero-sized map), got shape {tuple(x.shape)}")


def clamp_window(kernel: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Window (k_h, k_w) clipped to the map size (H, W); both must be positive ints."""
    kh, kw = kernel
    if kh < 1 or kw < 1:
        raise ValueError(f"window must be >= 1 in both axes, got {kernel}")
    return min(kh, size[0]), min(kw, size[1])


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def replicate_to(valid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Replicate-pad a map of valid windows to ``size`` (H, W), split evenly on both
    sides with the extra pixel at the bottom/right."""
    h, w = size
    vh, vw = valid.shape[-2:]
    top, left = (h - vh) // 2, (w - vw) // 2
    pad = (left, w - vw - left, top, h - vh - top)
    return F.pad(valid, pad, mode="replicate") if any(pad) else valid


def _window_sums(c: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums of k consecutive elements along ``dim`` from its cumulative sum ``c``."""
    n = c.shape[dim]
    out = c.narrow(dim, k - 1, n - k + 1).clone()
    out.narrow(dim, 1, n - k).sub_(c.narrow(dim, 0, n - k))
    return out


def box_sum_valid(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Sums over every k_h x k_w window lying inside ``x``: (N, C, H-k_h+1, W-k_w+1).

    ``kernel`` must already fit the map. Computed by two 1-D cumulative sums in ``x``'s
    dtype; callers centre ``x`` first when precision matters.
    """
    kh, kw = kernel
    rows = _window_sums(x.cumsum(dim=-1), kw, -1)
    return _window_sums(rows.cumsum_(dim=-2), kh, -2)


def box_mean_valid(x: torch.Tensor, kernel: tuple[int, int], centre: bool = True) -> torch.Tensor:
    """Mean of every k_h x k_w window lying inside ``x``: (N, C, H-k_h+1, W-k_w+1).

    ``kernel`` is clipped to (H, W). Computed in float32 (float64 for float64 input).
    ``centre`` subtracts each channel's global mean before the cumulative sums, which
    keeps float32 precise for maps with an offset; callers that pass centred maps skip
    that pass with ``False``.
    """
    check_map(x)
    kh, kw = clamp_window(kernel, x.shape[-2:])
    xc = x.to(_compute_dtype(x))
    if not centre:
        return box_sum_valid(xc, (kh, kw)).mul_(1.0 / (kh * kw))
    offset = xc.mean(dim=(-2, -1), keepdim=True)
    return box_sum_valid(xc - offset, (kh, kw)).mul_(1.0 / (kh * kw)).add_(offset)


def box_mean(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Exact mean of every k_h x k_w window of ``x``, replicate-padded to ``x``'s size.

    Args:
        x: (N, C, H, W) map, any float dtype.
        kernel: window (k_h, k_w) in pixels of ``x``; clipped to (H, W).

    Returns:
        (N, C, H, W) tensor of ``x.dtype``: position (i, j) holds the mean over the
        window whose top-left corner is (clamp(i - top, 0, H - k_h), clamp(j - left, 0,
        W - k_w)), with top = (k_h - 1) // 2 and left = (k_w - 1) // 2.
    """
    return replicate_to(box_mean_valid(x, kernel).to(x.dtype), x.shape[-2:])


def fast_stride(k: int, min_cells: int = FAST_MIN_CELLS) -> int:
    """Block stride r for a window of ``k`` pixels in the fast variant.

    r is the largest divisor of ``k`` with k / r >= ``min_cells`` (1 if there is none),
    so a window is exactly k / r whole blocks and never fewer than ``min_cells``.
    Examples (min_cells=8): k=96 -> 12, k=48 -> 6, k=24 -> 3, k=384 -> 48, k=7 -> 1.
    """
    if k < 1 or min_cells < 1:
        raise ValueError(f"need k >= 1 and min_cells >= 1, got k={k}, min_cells={min_cells}")
    for r in range(k // min_cells, 1, -1):
        if k % r == 0:
            return r
    return 1


def fast_error_bound(kernel: tuple[int, int], strides: tuple[int, int]) -> float:
    """Worst-case |fast - exact| of a window mean, as a fraction of the map's value range.

    The fast variant knows the window means only at block-aligned starts and
    interpolates linearly between the two nearest ones per axis. A window shifted by d
    pixels along one axis (and clipped to the map) shares all but d/k of the larger
    window's pixels with the exact one, so its mean is off by at most (d/k)(hi - lo);
    with weights (1 - t/r, t/r) on shifts t and r - t the interpolated error is at most
    2 t (r - t) / (r k) <= r / (2k) of the range per axis. Hence the bound
    r_h/(2 k_h) + r_w/(2 k_w) (an axis with r = 1 adds 0): at most 1/8 with the default
    min_cells=8, and 0 for maps that are linear across each block.
    """
    (kh, kw), (rh, rw) = kernel, strides
    return (rh / (2 * kh) if rh > 1 else 0.0) + (rw / (2 * kw) if rw > 1 else 0.0)


def box_mean_fast_valid(
    x: torch.Tensor, kernel: tuple[int, int], strides: tuple[int, int] | None = None
) -> torch.Tensor:
    """:func:`box_mean_valid` approximated on an r_h x r_w block grid (see
    :func:`box_mean_fast`): (N, C, H-k_h+1, W-k_w+1) in float32 (float64 for float64)."""
    check_map(x)
    h, w = x.shape[-2:]
    kh, kw = clamp_window(kernel, (h, w))
    rh, rw = strides if strides is not None else (fast_stride(kh), fast_stride(kw))
    if rh < 1 or rw < 1 or kh % rh or kw % rw:
        raise ValueError(f"strides {(rh, rw)} must be positive and divide the window {(kh, kw)}")
    if rh == 1 and rw == 1:
        return box_mean_valid(x, (kh, kw))
    dt = _compute_dtype(x)
    # Means of (partial, at the border) blocks; times pixel counts gives block sums.
    means = F.avg_pool2d(x.to(dt), (rh, rw), ceil_mode=True).double()
    nbh, nbw = means.shape[-2:]
    cnt_h = torch.full((nbh,), float(rh), dtype=torch.float64, device=x.device)
    cnt_h[-1] = h - (nbh - 1) * rh
    cnt_w = torch.full((nbw,), float(rw), dtype=torch.float64, device=x.device)
    cnt_w[-1] = w - (nbw - 1) * rw
    counts = cnt_h[:, None] * cnt_w[None, :]
    kb = (kh // rh, kw // rw)
    grid = box_sum_valid(means * counts, kb) / box_sum_valid(counts[None, None], kb)
    # Valid start s (0 .. n - k) sits at block coordinate s / r: bilinear interpolation
    # with align_corners maps L block-aligned windows onto r (L - 1) + 1 starts exactly.
    lh = min((h - kh) // rh + 2, grid.shape[-2])
    lw = min((w - kw) // rw + 2, grid.shape[-1])
    size = (rh * (lh - 1) + 1, rw * (lw - 1) + 1)
    up = F.interpolate(grid[..., :lh, :lw].to(dt), size=size, mode="bilinear", align_corners=True)
    return up[..., : h - kh + 1, : w - kw + 1]


def box_mean_fast(
    x: torch.Tensor, kernel: tuple[int, int], strides: tuple[int, int] | None = None
) -> torch.Tensor:
    """Approximate :func:`box_mean` on an r_h x r_w block grid (the ``fast_imp`` variant).

    Args:
        x: (N, C, H, W) map.
        kernel: window (k_h, k_w) in pixels; clipped to (H, W).
        strides: block size (r_h, r_w); by default :func:`fast_stride` of each axis of
            the clipped window. Each r must divide its window.

    Returns:
        (N, C, H, W) tensor of ``x.dtype``, within :func:`fast_error_bound` x (max - min
        of the channel) of :func:`box_mean`. Blocks at the bottom/right border may be
        partial; sums and pixel counts are both tracked there, so every block window
        value is an exact mean over the pixels it covers.
    """
    return replicate_to(box_mean_fast_valid(x, kernel, strides).to(x.dtype), x.shape[-2:])
