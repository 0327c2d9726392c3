"""The window settings every local site carries (shared by pooling and norm)."""

from __future__ import annotations

import torch

from ..sizes import as_pair
from .box import fast_stride


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

    def window_repr(self) -> str:
        """``kernel_size=..., fast_imp=..., feature_size=...`` for ``extra_repr``."""
        return (
            f"kernel_size={self.kernel_size}, fast_imp={self.fast_imp}, "
            f"feature_size={self.feature_size}"
        )
