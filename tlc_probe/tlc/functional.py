"""Local versions of the functional sites' proxies (:mod:`tlc_probe.functional`).

Each takes the arguments of the call it stands for (the proxy is called with the call's
own positional arguments) and, where its window covers the map, calls the very function
of the original call with them: at training size the converted model computes exactly
what the original does.

* ``mean`` / ``adaptive_avg_pool2d`` -> :class:`LocalFunctionalMean` (a
  :class:`~tlc_probe.tlc.pooling.LocalAvgPool2d`: a map of local means);
* ``instance_norm`` -> :class:`LocalFunctionalInstanceNorm` (local moments per channel,
  then the call's weight and bias);
* ``layer_norm`` over (C, H, W) -> :class:`LocalFunctionalLayerNorm`: at each position
  the mean and variance over the channels and the window, from the per-channel local
  moments m_c, v_c: M = mean_c m_c, V = mean_c v_c + mean_c (m_c - M)^2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..tensors import check_map
from .box import finite_centre
from .norm import LocalInstanceNorm2d
from .pooling import LocalAvgPool2d


class LocalFunctionalMean(LocalAvgPool2d):
    """Local version of a spatial ``mean(keepdim=True)`` or ``adaptive_avg_pool2d(x, 1)``
    site: ``forward(x, *call_args)`` -> (N, C, 1, 1) where the window covers the map,
    else the (N, C, H, W) map of local means (the other arguments are the call's, fixed
    by the rule that made it a site)."""

    tlc_function = "mean"

    def __init__(self, function: str, kernel_size, **opts) -> None:
        super().__init__(kernel_size, **opts)
        self.tlc_function = function

    def forward(self, x: torch.Tensor, *_call_args) -> torch.Tensor:
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{self.tlc_function}, " + super().extra_repr()


class LocalFunctionalInstanceNorm(LocalInstanceNorm2d):
    """Local version of an ``F.instance_norm`` site: ``forward`` takes the call's
    arguments (input, running_mean, running_var, weight, bias, use_input_stats, momentum,
    eps) and normalises with local moments, then applies the call's weight and bias.
    No parameters of its own (the call brings them)."""

    tlc_function = "instance_norm"

    def __init__(self, num_features: int, kernel_size, eps: float = 1e-5, **opts) -> None:
        super().__init__(num_features, kernel_size, eps=eps, affine=False, **opts)

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        running_mean=None,
        running_var=None,
        weight=None,
        bias=None,
        use_input_stats: bool = True,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> torch.Tensor:
        if self.covers(x.shape[-2:]) or not use_input_stats or self.empty_batch(x):
            return F.instance_norm(
                x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps
            )
        self.eps = eps
        y = super().forward(x)
        if weight is not None:
            y = y * weight.view(1, -1, 1, 1)
        return y + bias.view(1, -1, 1, 1) if bias is not None else y


class LocalFunctionalLayerNorm(LocalInstanceNorm2d):
    """Local version of an ``F.layer_norm`` site over (C, H, W): ``forward(x,
    normalized_shape, weight, bias, eps)``; at each position the moments over all channels
    and the window (see the module docstring), then the call's weight and bias
    (broadcast as the call broadcasts them)."""

    tlc_function = "layer_norm"

    def __init__(self, num_features: int, kernel_size, eps: float = 1e-5, **opts) -> None:
        super().__init__(num_features, kernel_size, eps=eps, affine=False, **opts)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, normalized_shape=None, weight=None, bias=None, eps: float = 1e-5
    ) -> torch.Tensor:
        shape = tuple(x.shape[1:]) if normalized_shape is None else normalized_shape
        if self.covers(x.shape[-2:]) or self.empty_batch(x):
            return F.layer_norm(x, shape, weight, bias, eps)
        check_map(x)
        dt = torch.float64 if x.dtype == torch.float64 else torch.float32
        xc = x.to(dt)
        offset, finite = finite_centre(xc)
        xc = xc - offset
        mu, var = self.moments(xc, finite=finite or None)
        m = mu + offset  # per-channel local means of x
        big_m = m.mean(dim=1, keepdim=True)
        big_v = var.mean(dim=1, keepdim=True) + (m - big_m).square().mean(dim=1, keepdim=True)
        y = ((x.to(dt) - big_m) * (big_v + eps).rsqrt()).to(x.dtype)
        if weight is not None:
            y = y * weight
        return y + bias if bias is not None else y
