"""``LocalAvgPool2d``: the TLC replacement of a global ``nn.AdaptiveAvgPool2d(1)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tensors import check_map
from .box import (
    FAST_MIN_CELLS,
    all_finite,
    box_mean,
    box_mean_fast,
    box_mean_fast_valid,
    box_mean_valid,
    channels_last,
    clamp_window,
    fast_factors,
    fast_window,
    finite_centre,
    needs_grad,
)
from .fused import FusedMap
from .gridmap import GridMap, ValidMap
from .stream import top_sums_and_mean
from .window import LocalWindow


class LocalAvgPool2d(LocalWindow, nn.Module):
    """Mean over a local k_h x k_w window at every position (TLC's local pooling).

    Where the window covers the whole input it returns the global mean, shape
    (N, C, 1, 1), exactly as ``nn.AdaptiveAvgPool2d(1)`` does (the module *is* the
    global pool at training size). Otherwise it returns an (N, C, H, W) map of local
    means: valid windows, replicate-padded (see :func:`tlc_probe.tlc.box.box_mean`).

    Args:
        kernel_size: window (k_h, k_w) in pixels of the map this module sees.
        fast_imp: use the block-grid approximation (:func:`~tlc_probe.tlc.box.box_mean_fast`)
            with stride r = :func:`~tlc_probe.tlc.box.fast_stride` (window, ``fast_min_cells``)
            per axis; error bounded by :func:`~tlc_probe.tlc.box.fast_error_bound`.
        fast_min_cells: fewest blocks per window axis in the fast variant.
        feature_size: the map size seen at training size (set by :func:`convert`; kept
            for reports, not used in the computation).
        grid_head: with ``fast_imp``, return a :class:`~tlc_probe.tlc.gridmap.GridMap`:
            the 1x1 convolutions and activations after the pool then run on the block
            grid and only their result is expanded (not under autograd, and not where
            the strides are 1 x 1, i.e. no grid).
        valid_head: without ``fast_imp``, return a
            :class:`~tlc_probe.tlc.gridmap.ValidMap`: the head after the pool runs on the
            map of valid windows (its 1x1 convolutions as matrix products) and the
            final multiply reads the full map once, without a padded copy; the same
            numbers as the plain exact path up to float rounding (not under autograd).
        fused_head: without ``fast_imp``, return a
            :class:`~tlc_probe.tlc.fused.FusedMap`: nothing is computed until the
            squeeze-excitation multiply, which computes the local means, the head and
            the product in one pass of row bands (the plain exact path's numbers up to
            float rounding). Taken for finite float32 / float64 maps that do not need
            gradients; otherwise as ``valid_head``.
    """

    tlc_kind = "se"

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        fast_imp: bool = False,
        fast_min_cells: int = FAST_MIN_CELLS,
        feature_size: tuple[int, int] | None = None,
        grid_head: bool = False,
        valid_head: bool = False,
        fused_head: bool = False,
    ) -> None:
        super().__init__()
        for name, on in (("valid_head", valid_head), ("fused_head", fused_head)):
            if on and fast_imp:
                raise ValueError(f"{name}=True is for the exact pool: not with fast_imp")
        if valid_head and fused_head:
            raise ValueError("valid_head and fused_head exclude each other: choose one")
        self._set_window(kernel_size, fast_imp, fast_min_cells, feature_size)
        self.grid_head = grid_head
        self.valid_head = valid_head
        self.fused_head = fused_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, 1, 1) when the window covers the map, else (N, C, H, W).
        Integer maps are refused (``TypeError``) as ``nn.AdaptiveAvgPool2d`` refuses them;
        an empty batch gives an empty result of that shape."""
        if self.empty_batch(x):
            return F.adaptive_avg_pool2d(x, 1) if self.covers(x.shape[-2:]) else x.clone()
        check_map(x)
        size = (x.shape[-2], x.shape[-1])
        if self.covers(size):
            return F.adaptive_avg_pool2d(x, 1)
        if self.fast_imp and self.grid_head and not needs_grad(x):
            kernel, strides = fast_window(x, self.kernel_size, self.strides(size))
            if strides != (1, 1):
                grid, m_h, m_w = fast_factors(x, kernel, strides)
                if all_finite(grid):  # else the full map keeps NaN / inf local
                    dt = x.dtype
                    return GridMap.wrap(grid.to(dt), m_h.to(dt), m_w.to(dt))
        if self.fast_imp:
            return box_mean_fast(x, self.kernel_size, self.strides(size))
        if self.fused_head and not needs_grad(x) and x.dtype in (torch.float32, torch.float64):
            kernel = clamp_window(self.kernel_size, size)
            if channels_last(x):  # a sum down H is slow in this layout, the pool is not;
                # the bands then sum the first windows' rows themselves (a few channels
                # when the head's projection comes first)
                top, offset = None, F.adaptive_avg_pool2d(x, 1)
            else:
                top, offset = top_sums_and_mean(x, kernel[0])
            if all_finite(offset):  # else the plain path keeps NaN / inf local
                return FusedMap.wrap_fused(x, kernel, offset, top)
        if (self.valid_head or self.fused_head) and not needs_grad(x):  # (fused: NaN, half)
            return ValidMap.wrap_valid(box_mean_valid(x, self.kernel_size).to(x.dtype), size)
        return box_mean(x, self.kernel_size)

    def window_stats(
        self, x: torch.Tensor, positions: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The local means this pool computes on ``x`` (N, C, H, W), as it computes them
        (exact, or the block grid with ``fast_imp``), at the grid of window positions of
        :meth:`window_grid`: ({"mean": (N, C, P) float32 / float64}, ys (P,), xs (P,)
        window centres). NaN / inf stay in the windows that hold them."""
        size = (x.shape[-2], x.shape[-1])
        (kh, kw), iy, ix, ys, xs = self.window_grid(size, positions, x.device)
        xf = x.detach().float() if x.dtype != torch.float64 else x.detach()
        offset, finite = finite_centre(xf)
        xc = xf - offset
        if self.fast_imp:
            mu = box_mean_fast_valid(xc, (kh, kw), self.strides(size))  # checks its grid
        else:
            mu = box_mean_valid(xc, (kh, kw), centre=False, finite=finite or None)
        mean = mu.index_select(-2, iy).index_select(-1, ix).flatten(-2)
        return {"mean": mean + offset.flatten(-2)}, ys, xs

    def extra_repr(self) -> str:
        extra = ", grid_head=True" if self.grid_head else ""
        extra += ", valid_head=True" if self.valid_head else ""
        return self.window_repr() + extra + (", fused_head=True" if self.fused_head else "")
