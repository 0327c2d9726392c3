"""FFA-Net (Qin et al., AAAI 2020): feature fusion attention network for dehazing.

Attribute names follow the official implementation (zhilin007/FFA-Net,
``net/models/FFA.py``), so ``state_dict()`` keys and shapes match the published
checkpoints (``its_train_ffa_3_19.pk``, ``ots_train_ffa_3_19.pk``: weights under
``model`` with DataParallel's ``module.`` prefix) exactly.

Global-aggregation sites (all kind 'se'): the channel attention pool of every block,
``g<k>.gp.<i>.calayer.avg_pool``, and the group-fusion attention pool ``ca.0``. The
official fusion reshapes the pooled weights to (N, gps, dim) — one value per channel —
which breaks on a map of local means. Here the same weights are viewed as
(N, gps, dim, h, w): identical for the 1x1 global output, position-wise for a local one,
so ``convert()`` turns ``ca.0`` local like every other pool.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

TASK: str = "dehaze"

PRESETS: dict[str, dict[str, Any]] = {
    # net/main.py defaults and the published checkpoints: 3 groups of 19 blocks, 64 channels.
    "official": {"gps": 3, "blocks": 19, "dim": 64},
    "tiny": {"gps": 3, "blocks": 2, "dim": 16},
}

#: The paper trains on 240 x 240 crops of RESIDE ITS/OTS.
TRAIN_SIZE: dict[str, int] = {"official": 240, "tiny": 64}

#: No downsampling: any size works as it is.
PAD_MULTIPLE: int = 1


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class PALayer(nn.Module):
    """Pixel attention: x * sigmoid(1x1 conv(ReLU(1x1 conv(x)))) with one map for all
    channels. (N, C, H, W) -> (N, C, H, W); no spatial aggregation."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.pa = nn.Sequential(
            nn.Conv2d(channel, channel // 8, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel // 8, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.pa(x)


class CALayer(nn.Module):
    """Channel attention: x * sigmoid(conv(ReLU(conv(avg_pool(x))))), reduction 8.
    (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.ca = nn.Sequential(
            nn.Conv2d(channel, channel // 8, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel // 8, channel, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.ca(self.avg_pool(x))


class Block(nn.Module):
    """conv1 + ReLU with a local residual, conv2, channel then pixel attention, residual."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = _conv(dim, dim, kernel_size)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = _conv(dim, dim, kernel_size)
        self.calayer = CALayer(dim)
        self.palayer = PALayer(dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.act1(self.conv1(x)) + x)
        return self.palayer(self.calayer(y)) + x


class Group(nn.Module):
    """``blocks`` Blocks and a closing conv in ``gp``, with a residual around them."""

    def __init__(self, dim: int, kernel_size: int, blocks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [Block(dim, kernel_size) for _ in range(blocks)]
        self.gp = nn.Sequential(*layers, _conv(dim, dim, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.gp(x) + x


class FFANet(nn.Module):
    """``pre`` conv -> groups g1, g2, g3 in series -> attention-weighted fusion of the
    three group outputs (``ca``), pixel attention (``palayer``) -> ``post`` convs, plus
    the hazy input (global residual).

    ``forward``: (N, 3, H, W) -> (N, 3, H, W) for any H, W >= 1 (no padding needed).
    ``dim`` is fixed to 64 in the official code; it is a parameter here for the tiny preset.
    """

    def __init__(self, gps: int = 3, blocks: int = 19, dim: int = 64) -> None:
        super().__init__()
        if gps != 3:
            raise ValueError("FFA-Net fuses exactly three groups (gps=3)")
        if dim % 16:
            raise ValueError("dim must be a multiple of 16 (the fusion attention uses dim // 16)")
        self.gps, self.dim = gps, dim
        # Registration order = the official state_dict order (groups, ca, palayer, pre, post).
        self.g1 = Group(dim, 3, blocks)
        self.g2 = Group(dim, 3, blocks)
        self.g3 = Group(dim, 3, blocks)
        self.ca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim * gps, dim // 16, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // 16, dim * gps, 1),
            nn.Sigmoid(),
        )
        self.palayer = PALayer(dim)
        self.pre = nn.Sequential(_conv(3, dim))
        self.post = nn.Sequential(_conv(dim, dim), _conv(dim, 3))

    def forward(self, x: Tensor) -> Tensor:
        r1 = self.g1(self.pre(x))
        r2 = self.g2(r1)
        r3 = self.g3(r2)
        w = self.ca(torch.cat([r1, r2, r3], dim=1))  # (N, 3 dim, 1 or H, 1 or W)
        w = w.view(w.shape[0], self.gps, self.dim, *w.shape[-2:])
        fused = w[:, 0] * r1 + w[:, 1] * r2 + w[:, 2] * r3
        return self.post(self.palayer(fused)) + x

    def forward_all(self, x: Tensor) -> list[Tensor]:
        """FFA-Net has one output: ``[forward(x)]``."""
        return [self.forward(x)]
