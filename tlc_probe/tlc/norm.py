"""``LocalInstanceNorm2d``: the TLC replacement of ``nn.InstanceNorm2d``."""

from __future__ import annotations

import torch
from torch import nn

from .box import FAST_MIN_CELLS, box_mean, box_mean_fast, check_map, fast_stride
from .pooling import _pair


class LocalInstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm whose mean and variance are taken over a local window.

    out = (x - mu_local) / sqrt(var_local + eps) * weight + bias, with mu_local and
    var_local (biased, as in ``nn.InstanceNorm2d``) the mean of x and of (x - c)^2 over
    the k_h x k_w window at each position. It subclasses ``nn.InstanceNorm2d``, so its
    parameters and buffers (``weight``, ``bias``, running stats if any) and therefore
    the checkpoint keys are those of the module it replaces. When the window covers the
    map it calls the global instance norm itself, identical to ``nn.InstanceNorm2d``.

    Args:
        num_features, eps, momentum, affine, track_running_stats: as ``nn.InstanceNorm2d``.
        kernel_size: window (k_h, k_w) in pixels of the map this module sees.
        fast_imp: block-grid approximation of the local moments (see ``LocalAvgPool2d``).
        fast_min_cells: fewest blocks per window axis in the fast variant.
        feature_size: the map size seen at training size (set by ``convert``).
    """

    def __init__(
        self,
        num_features: int,
        kernel_size: int | tuple[int, int],
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        fast_imp: bool = False,
        fast_min_cells: int = FAST_MIN_CELLS,
        feature_size: tuple[int, int] | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype
        )
        self.kernel_size = _pair(kernel_size)
        if min(self.kernel_size) < 1:
            raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")
        self.fast_imp = fast_imp
        self.fast_min_cells = fast_min_cells
        self.feature_size = feature_size

    @classmethod
    def from_instance_norm(
        cls, norm: nn.InstanceNorm2d, kernel_size: tuple[int, int], **kwargs
    ) -> LocalInstanceNorm2d:
        """A local copy of ``norm`` sharing its parameters and buffers (no data copied)."""
        local = cls(
            norm.num_features,
            kernel_size,
            eps=norm.eps,
            momentum=norm.momentum,
            affine=norm.affine,
            track_running_stats=norm.track_running_stats,
            **kwargs,
        )
        for name, p in norm._parameters.items():
            local._parameters[name] = p
        for name, b in norm._buffers.items():
            local._buffers[name] = b
        local.train(norm.training)
        return local

    def covers(self, size: tuple[int, int]) -> bool:
        """True when the window spans a map of ``size`` (H, W), i.e. the statistics are global."""
        return self.kernel_size[0] >= size[0] and self.kernel_size[1] >= size[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W), normalised with local (or, if covering, global) moments."""
        check_map(x)
        size = (x.shape[-2], x.shape[-1])
        uses_running = self.track_running_stats and not self.training
        if uses_running or self.covers(size):
            return super().forward(x)
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"expected {self.num_features} channels, got input of shape {tuple(x.shape)}"
            )
        if self.fast_imp:
            kh, kw = min(self.kernel_size[0], size[0]), min(self.kernel_size[1], size[1])
            strides = (fast_stride(kh, self.fast_min_cells), fast_stride(kw, self.fast_min_cells))

            def local(t: torch.Tensor) -> torch.Tensor:
                return box_mean_fast(t, self.kernel_size, strides)
        else:

            def local(t: torch.Tensor) -> torch.Tensor:
                return box_mean(t, self.kernel_size)

        # Centre each channel first: var = E[(x-c)^2] - E[x-c]^2 is then well conditioned
        # even for maps with a large offset, and it is computed in float64.
        xd = x.double() if x.device.type != "mps" else x.float()
        xc = xd - xd.mean(dim=(-2, -1), keepdim=True)
        mu = local(xc)
        var = (local(xc * xc) - mu * mu).clamp_(min=0.0)
        out = ((xc - mu) * torch.rsqrt(var + self.eps)).to(x.dtype)
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", kernel_size={self.kernel_size}, fast_imp={self.fast_imp}"
            + f", feature_size={self.feature_size}"
        )
