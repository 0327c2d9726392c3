"""The window settings every local site carries (shared by pooling and norm)."""

from __future__ import annotations

import torch

from ..sizes import as_pair
from .box import fast_stride


def grid_starts(n_valid: int, positions: int) -> torch.Tensor:
    """Up to ``positions`` distinct indices spread evenly over 0 .. n_valid - 1 (both
    ends included), as a 1-D int64 tensor."""
    n = max(1, min(positions, n_valid))
    return torch.unique(torch.linspace(0, n_valid - 1, n).round().long())


class LocalWindow:
    """Mixin: ``kernel_size`` (k_h, k_w), ``fast_imp``, ``fast_min_cells`` and the
    calibrated ``feature_size``, with the two questions a local site asks of a map.

    Subclasses set ``tlc_kind`` ('in' or 'se'): :func:`tlc_probe.sites.site_kind` reads it
    to recognise a converted site without importing this package."""

    tlc_kind: str

    kernel_size: tuple[int, int]
    fast_imp: bool
    fast_min_cells: int
    feature_size: tuple[int, int] | None

    def _set_window(
        self,
        kernel_size: int | tuple[int, int],
        fast_imp: bool,
        fast_min_cells: int,
        feature_size: tuple[int, int] | None,
    ) -> None:
        self.kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
        self.fast_imp = fast_imp
        self.fast_min_cells = fast_min_cells
        self.feature_size = feature_size

    def empty_batch(self, x: object) -> bool:
        """Refuse an integer map (``TypeError``, as torch's own pool and norm refuse it);
        True for an empty batch (0, C, H, W) of a non-empty map size, which the caller hands
        on as the original module would; False otherwise (``check_map`` judges the rest)."""
        if not isinstance(x, torch.Tensor):
            return False
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} needs a floating-point map, got {x.dtype}")
        return x.dim() == 4 and x.shape[0] == 0 and min(x.shape[1:]) > 0

    def covers(self, size: tuple[int, int]) -> bool:
        """True when the window spans a map of ``size`` (H, W): the statistic is global."""
        return self.kernel_size[0] >= size[0] and self.kernel_size[1] >= size[1]

    def strides(self, size: tuple[int, int]) -> tuple[int, int]:
        """Block strides (r_h, r_w) the fast variant uses on a map of ``size`` (H, W)."""
        kh, kw = min(self.kernel_size[0], size[0]), min(self.kernel_size[1], size[1])
        return fast_stride(kh, self.fast_min_cells), fast_stride(kw, self.fast_min_cells)

    def window_grid(
        self, size: tuple[int, int], positions: int, device: torch.device
    ) -> tuple[tuple[int, int], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where :meth:`window_stats` reads a map of ``size``: the window (k_h, k_w)
        clipped to the map, up to ``positions`` valid window starts per axis spread
        evenly (iy, ix), and the P = len(iy) * len(ix) window centres (ys, xs, row-major)
        in feature-map pixels: the window at (i, j) covers rows i .. i + k_h - 1 and its
        centre is i + (k_h - 1) // 2."""
        h, w = size
        kh, kw = min(self.kernel_size[0], h), min(self.kernel_size[1], w)
        iy = grid_starts(h - kh + 1, positions).to(device)
        ix = grid_starts(w - kw + 1, positions).to(device)
        ys = (iy + (kh - 1) // 2).repeat_interleave(len(ix))
        xs = (ix + (kw - 1) // 2).repeat(len(iy))
        return (kh, kw), iy, ix, ys, xs

    def window_repr(self) -> str:
        """``kernel_size=..., fast_imp=..., feature_size=...`` for ``extra_repr``."""
        return (
            f"kernel_size={self.kernel_size}, fast_imp={self.fast_imp}, "
            f"feature_size={self.feature_size}"
        )
