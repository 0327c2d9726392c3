"""``LocalInstanceNorm2d``: the TLC replacement of ``nn.InstanceNorm2d``."""

from __future__ import annotations

import torch
from torch import nn

from ..tensors import check_map
from .box import (
    FAST_MIN_CELLS,
    ZERO_FLOOR,
    all_finite,
    box_mean,
    box_mean_fast,
    clamp_window,
    fill_nonfinite,
    finite_centre,
    finite_peak,
    needs_grad,
    nonfinite_windows,
    valid_region,
)
from .window import LocalWindow

#: (The channel's largest square) / (local variance + eps) above which float32 moments
#: lose too many digits and a (sample, channel) map is recomputed in float64: where the
#: local mean dwarfs the spread (var = E[x^2] - mean^2 cancels), and where a window is
#: flat next to the channel's range (the box sums' rounding, ~1e-7 of that range, is
#: then divided by a tiny sqrt(var + eps)). Feature maps rarely reach it.
CANCELLATION_LIMIT = 1000.0


class LocalInstanceNorm2d(LocalWindow, nn.InstanceNorm2d):
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

    tlc_kind = "in"

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
        self._set_window(kernel_size, fast_imp, fast_min_cells, feature_size)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W), normalised with local (or, if covering, global)
        moments. Integer maps are refused (``TypeError``); an empty batch is handed to
        ``nn.InstanceNorm2d`` (whatever it does, this does)."""
        if self.empty_batch(x):
            return super().forward(x)
        check_map(x)
        size = (x.shape[-2], x.shape[-1])
        uses_running = self.track_running_stats and not self.training
        if uses_running or self.covers(size):
            return super().forward(x)
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"expected {self.num_features} channels, got input of shape {tuple(x.shape)}"
            )
        dt = torch.float64 if x.dtype == torch.float64 else torch.float32
        xc = x.to(dt)
        # NaN / inf stay in their windows: centred on the finite part, their windows get
        # NaN moments (see moments), so the output is NaN exactly there, as brute force.
        offset, finite = finite_centre(xc)
        xc = xc - offset
        mu, var = self.moments(xc, finite=finite or None)
        # out = (xc - mu) * scale + b, scale = w / sqrt(var + eps): the difference first,
        # since with a tiny var + eps, xc * scale - mu * scale would cancel large products
        w = b = None
        if self.affine:
            w = self.weight.to(dt)[None, :, None, None]
            if self.bias is not None:  # torch >= 2.13 allows affine without bias
                b = self.bias.to(dt)[None, :, None, None]
        if needs_grad(xc, w, b):
            scale = (var + self.eps).rsqrt()
            out = (xc - mu) * (scale if w is None else scale * w)
            return (out if b is None else out + b).to(x.dtype)
        # the moments are full (replicate-padded) maps: no further map is allocated
        scale = var.add_(self.eps).rsqrt_()
        if w is not None:
            scale.mul_(w)
        d = xc.sub_(mu)
        if b is None:
            return d.mul_(scale).to(x.dtype)
        return torch.addcmul(b, d, scale, out=d).to(x.dtype)

    def moments(
        self, xc: torch.Tensor, finite: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Local mean and biased variance of a channel-centred (N, C, H, W) map, as this
        module normalises with: replicate-padded (N, C, H, W) maps of ``xc``'s dtype.

        In float32, (sample, channel) maps where the channel's largest square exceeds
        CANCELLATION_LIMIT x (var + eps) somewhere are recomputed in float64 (the probe
        records these too). Computed in float64, a window whose variance is below
        :data:`~tlc_probe.tlc.box.ZERO_FLOOR` times that square is constant up to
        rounding: variance 0 and mean the value at the position, so that the position
        normalises to exactly 0 as under brute force. Windows holding NaN / inf get the
        brute-force moments: the mean of :func:`~tlc_probe.tlc.box.box_mean`, variance
        NaN. ``finite=True`` tells that ``xc`` holds none (skips that check, one pass
        over ``xc``).
        """
        if not (finite or all_finite(xc)):
            ok = torch.isfinite(xc)
            mu, var = self.moments(torch.where(ok, xc, torch.zeros_like(xc)), finite=True)
            masks = nonfinite_windows(xc, clamp_window(self.kernel_size, xc.shape[-2:]))
            nan, pos, neg = masks
            return fill_nonfinite(mu, masks), var.masked_fill(nan | pos | neg, float("nan"))
        mu, var = self._moments(xc)
        peak = finite_peak(xc.square(), (-2, -1))  # (N, C): the channel's largest square
        if xc.dtype == torch.float64:
            return self._floored(xc, mu, var, peak)
        if xc.dtype == torch.float32:
            # float32 loses the digits of var = E[xc^2] - mu^2 where the local mean
            # dwarfs the local spread, and those of xc - mu next to a tiny var + eps;
            # recompute those (sample, channel) maps in float64 (|mu| <= the largest
            # |xc|, so the largest square bounds both cases).
            with torch.no_grad():
                least = var.amin(dim=(-2, -1)) + self.eps
                bad = peak > least * CANCELLATION_LIMIT
            if bad.any():
                idx = bad.nonzero(as_tuple=True)
                if needs_grad(mu, var):  # autograd saved them: assign into copies
                    mu, var = mu.clone(), var.clone()
                x64 = xc[idx].double()[None]
                mu64, var64 = self._floored(x64, *self._moments(x64), peak[idx][None].double())
                mu[idx], var[idx] = mu64[0].float(), var64[0].float()
        return mu, var

    @staticmethod
    def _floored(
        xc: torch.Tensor, mu: torch.Tensor, var: torch.Tensor, peak: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, var) with windows flat up to float64 rounding (var below ZERO_FLOOR x
        ``peak`` (N, C)) made exactly constant: var 0, mu the value at the position (a
        position lies in the window whose moments it takes, so in a constant window
        that value is the window's mean)."""
        flat = var <= (peak * ZERO_FLOOR[torch.float64])[..., None, None].to(var.dtype)
        if not bool(flat.any()):
            return mu, var
        return torch.where(flat, xc, mu), torch.where(flat, 0.0, var)

    def _moments(self, xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local mean and biased variance (clamped >= 0) of a channel-centred map,
        replicate-padded: two (N, C, H, W) tensors of ``xc``'s dtype."""
        if self.fast_imp:
            r = self.strides(xc.shape[-2:])
            mu = box_mean_fast(xc, self.kernel_size, r)
            sq = box_mean_fast(xc * xc, self.kernel_size, r)
        else:
            mu = box_mean(xc, self.kernel_size, centre=False, finite=True)
            sq = box_mean(xc * xc, self.kernel_size, overwrite=True, finite=True)
        if needs_grad(xc):
            return mu, (sq - mu * mu).clamp(min=0.0)
        return mu, torch.addcmul(sq, mu, mu, value=-1.0, out=sq).clamp_(min=0.0)

    def window_stats(
        self, x: torch.Tensor, positions: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The local moments this norm normalises ``x`` (N, C, H, W) with (its own
        :meth:`moments`: replicate-padded, float64 fallback included) at the grid of
        window positions of :meth:`window_grid`: ({"mean", "std": (N, C, P)}, ys (P,),
        xs (P,) window centres). NaN / inf stay in the windows that hold them."""
        size = (x.shape[-2], x.shape[-1])
        kernel, iy, ix, ys, xs = self.window_grid(size, positions, x.device)
        xf = x.detach().float() if x.dtype != torch.float64 else x.detach()
        offset, finite = finite_centre(xf)
        mu, var = self.moments(xf - offset, finite=finite or None)
        rows, cols = valid_region(size, kernel)  # the window starting at (i, j) sits there

        def at(m: torch.Tensor) -> torch.Tensor:
            return m.index_select(-2, iy + rows.start).index_select(-1, ix + cols.start)

        stats = {"mean": at(mu).flatten(-2) + offset.flatten(-2), "std": at(var).flatten(-2).sqrt()}
        return stats, ys, xs

    def extra_repr(self) -> str:
        return super().extra_repr() + ", " + self.window_repr()
