"""Squeeze-excitation with ``nn.Linear`` layers, made local.

Many SE blocks (SENet's reference code, RCDNet, SPDNet, ...) pool to one value per channel,
flatten it to (N, C) and run ``nn.Linear`` layers on it::

    y = fc(avg_pool(x).view(b, c)).view(b, c, 1, 1);   return x * y

A map of local means cannot be viewed to (N, C). But a Linear layer on C values is the
same map applied at every position (a 1x1 convolution), and ReLU / sigmoid act on each
value alone, so the head can run on the map of local means with channels last: exact
at training size, the same weights, the same state_dict keys. :func:`linear_se_head`
recognises such a block by its parts; :class:`LocalLinearSE` is its TLC version;
``convert`` checks, at training size, that it computes what the original block computes
before it replaces it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .gridmap import GridMap

#: Modules that act on every value alone (so on a channel-last map exactly as on (N, C)).
POINTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Hardsigmoid,
    nn.SiLU,
    nn.Hardswish,
    nn.GELU,
    nn.Tanh,
    nn.Identity,
    nn.Dropout,
)


def _per_value(module: nn.Module) -> bool:
    if isinstance(module, (nn.Linear, *POINTWISE)):
        return True
    # a PReLU with one weight is pointwise; one weight per channel would act on the wrong axis
    return isinstance(module, nn.PReLU) and module.num_parameters == 1


def linear_se_head(parent: nn.Module, pool: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The head of an SE block with linear layers: the (name, module) children of
    ``parent`` that follow its ``pool`` child, when they are either one ``nn.Sequential``
    of linear layers and pointwise activations, or such layers as direct children (taken in
    registration order); at least one ``nn.Linear``. ``None`` when ``parent`` has another
    shape (its pool is then no linear SE pool)."""
    others = [(n, m) for n, m in parent.named_children() if m is not pool]
    if len(others) == 1 and isinstance(others[0][1], nn.Sequential):
        layers = list(others[0][1])
    else:
        layers = [m for _, m in others]
    if not layers or not all(_per_value(m) for m in layers):
        return None
    if not any(isinstance(m, nn.Linear) for m in layers):
        return None
    return others


def _channels_first(layer: nn.Module, m: torch.Tensor) -> torch.Tensor:
    """``layer`` (a head layer of :func:`linear_se_head`) on a channels-first map: an
    ``nn.Linear`` as the 1x1 convolution with its weights, a dropout in eval mode as
    the identity, a pointwise activation as it is; an ``nn.Sequential`` of them in turn."""
    if isinstance(layer, nn.Sequential):
        for part in layer:
            m = _channels_first(part, m)
        return m
    if isinstance(layer, nn.Linear):
        return F.conv2d(m, layer.weight[:, :, None, None], layer.bias)
    if isinstance(layer, nn.Dropout) and not layer.training:
        return m
    return layer(m)


class LocalLinearSE(nn.Module):
    """The TLC version of a linear SE block: ``x * head(pool(x))`` with the head applied
    to the pooled map with channels last. ``pool`` is the block's (local) pool and
    ``head`` its other children, kept under their own names (same state_dict keys).

    ``forward``: (N, C, H, W) -> (N, C, H, W); a global pool output (N, C, 1, 1) gives
    the original block's result. A pool returning a deferred map (``valid_head`` /
    ``fused_head``, :class:`~tlc_probe.tlc.gridmap.GridMap`) gets the head channels
    first, its linear layers as 1x1 convolutions, so that the map stays deferred.
    """

    def __init__(self, pool_name: str, pool: nn.Module, head: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self._pool_name = pool_name
        self._head_names = [name for name, _ in head]
        for name, module in [(pool_name, pool), *head]:
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = getattr(self, self._pool_name)(x)
        if isinstance(m, GridMap):  # a deferred map: the head as 1x1 convolutions on it
            for name in self._head_names:
                m = _channels_first(getattr(self, name), m)
            return x * m
        m = m.movedim(1, -1)  # (N, h, w, C)
        for name in self._head_names:
            m = getattr(self, name)(m)
        return x * m.movedim(-1, 1)

    def extra_repr(self) -> str:
        return f"pool={self._pool_name!r}, head={self._head_names}"
