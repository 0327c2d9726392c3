"""Constructed models for the tests: a toy restoration net with both kinds of global site
at two scales, and SE variants that cannot take a map of local means."""

import torch
from torch import nn


class LinearSE(nn.Module):
    """SE with flatten + nn.Linear after the pool: cannot take a map of local means."""

    def __init__(self, c, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, c // r), nn.ReLU(), nn.Linear(c // r, c), nn.Sigmoid())

    def forward(self, x):
        b, c = x.shape[:2]
        return x * self.fc(self.pool(x).flatten(1)).view(b, c, 1, 1)


class ViewSE(nn.Module):
    """SE that views the pooled output to (N, C): fails on a map."""

    def __init__(self, c):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.conv = nn.Conv1d(1, 1, 3, padding=1)

    def forward(self, x):
        b, c = x.shape[:2]
        y = self.pool(x).view(b, 1, c)
        return x * torch.sigmoid(self.conv(y)).view(b, c, 1, 1)


class HalfIN(nn.Module):
    """conv -> instance norm on half the channels (HINet's HIN) -> ReLU -> conv, residual.

    (N, c, H, W) -> (N, c, H, W).
    """

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.InstanceNorm2d(c // 2, affine=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        a, b = torch.chunk(y, 2, dim=1)
        y = torch.cat([self.norm(a), b], dim=1)
        return x + self.conv2(torch.relu(y))


class CALayer(nn.Module):
    """Channel attention as in MPRNet/RCAN: global pool -> 1x1 convs -> sigmoid -> rescale.

    (N, c, H, W) -> (N, c, H, W).
    """

    def __init__(self, c: int, reduction: int = 4) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(c, max(1, c // reduction), 1),
            nn.ReLU(),
            nn.Conv2d(max(1, c // reduction), c, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class ToyNet(nn.Module):
    """Two-scale residual net: HIN block + CA at full and at half resolution.

    Sites: ``enc.norm``, ``ca1.avg_pool`` (full resolution), ``mid.norm``,
    ``ca2.avg_pool`` (half resolution). (N, 3, H, W) -> (N, 3, H, W), any H, W >= 1.
    ``se_block`` swaps the CA class of the full-resolution stage (tests use it).
    """

    def __init__(self, c: int = 8, se_block: type[nn.Module] = CALayer) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.enc = HalfIN(c)
        self.ca1 = se_block(c)
        self.down = nn.Conv2d(c, 2 * c, 2, stride=2)
        self.mid = HalfIN(2 * c)
        self.ca2 = CALayer(2 * c)
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.tail = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = nn.functional.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        y = self.ca1(self.enc(self.head(xp)))
        z = self.up(self.ca2(self.mid(self.down(y))))
        return x + self.tail(y + z)[..., :h, :w]
