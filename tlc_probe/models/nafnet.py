"""NAFNet (Chen et al., ECCV 2022): a U-Net of nonlinear-activation-free blocks.

Attribute names follow the official implementation (megvii-research/NAFNet,
``basicsr/models/archs/NAFNet_arch.py``), so ``state_dict()`` keys and shapes match the
published checkpoints (``NAFNet-GoPro-width32.pth`` / ``-width64.pth``) exactly.

The global-aggregation sites are the simplified channel attention pools, one per block:
``<encoders|middle_blks|decoders>.<...>.sca.0`` (``nn.AdaptiveAvgPool2d(1)``, kind 'se').
LayerNorm2d normalises over channels at each position: no spatial aggregation, no site.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TASK: str = "deblur"

PRESETS: dict[str, dict[str, Any]] = {
    # options/test/GoPro/NAFNet-width32.yml and -width64.yml (network_g).
    "official": {
        "img_channel": 3,
        "width": 32,
        "middle_blk_num": 1,
        "enc_blk_nums": [1, 1, 1, 28],
        "dec_blk_nums": [1, 1, 1, 1],
    },
    "official-width64": {
        "img_channel": 3,
        "width": 64,
        "middle_blk_num": 1,
        "enc_blk_nums": [1, 1, 1, 28],
        "dec_blk_nums": [1, 1, 1, 1],
    },
    # Three levels (two blocks at the deepest): 8 SCA sites at 64, 32, 16 and 8 px of a 64-px patch.
    "tiny": {
        "img_channel": 3,
        "width": 16,
        "middle_blk_num": 1,
        "enc_blk_nums": [1, 1, 2],
        "dec_blk_nums": [1, 1, 1],
    },
}

TRAIN_SIZE: dict[str, int] = {"official": 256, "official-width64": 256, "tiny": 64}


def pad_multiple(enc_blk_nums: list[int] = (), **_: Any) -> int:
    """Side multiple the input needs: one stride-2 downsampling per encoder level."""
    return 2 ** len(enc_blk_nums)


PAD_MULTIPLE = pad_multiple


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each position: (N, C, H, W) -> (N, C, H, W),
    with per-channel ``weight`` and ``bias`` and eps 1e-6 as in the official code."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(dim=1, keepdim=True)
        var = (x - mu).pow(2).mean(dim=1, keepdim=True)
        y = (x - mu) * torch.rsqrt(var + self.eps)
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def simple_gate(x: Tensor) -> Tensor:
    """SimpleGate: multiply the two channel halves, (N, 2C, H, W) -> (N, C, H, W)."""
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    """Two residual branches on ``c`` channels, each scaled by a learned per-channel factor
    (``beta``, ``gamma``, zero at init):

    1. norm1 -> 1x1 conv to 2c -> 3x3 depthwise -> SimpleGate -> x * sca(x) -> 1x1 conv to c
    2. norm2 -> 1x1 conv to 2c -> SimpleGate -> 1x1 conv to c

    ``sca`` (simplified channel attention) is a global average pool and a 1x1 conv, with no
    nonlinearity. (N, c, H, W) -> (N, c, H, W).
    """

    def __init__(self, c: int, DW_Expand: int = 2, FFN_Expand: int = 2, drop_out_rate: float = 0.0):
        super().__init__()
        dw = c * DW_Expand
        ffn = c * FFN_Expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        t = simple_gate(self.conv2(self.conv1(self.norm1(x))))
        t = self.conv3(t * self.sca(t))
        y = x + self.dropout1(t) * self.beta
        t = self.conv5(simple_gate(self.conv4(self.norm2(y))))
        return y + self.dropout2(t) * self.gamma


class NAFNet(nn.Module):
    """U-Net of NAFBlocks: ``intro`` 3x3 conv to ``width``; per encoder level a stack of
    blocks then a 2x2 stride-2 conv doubling the channels (``downs``); ``middle_blks``;
    per decoder level a 1x1 conv doubling the channels + PixelShuffle(2) (``ups``), the
    encoder skip added, a stack of blocks; ``ending`` 3x3 conv; global residual.

    ``forward``: (N, img_channel, H, W) -> (N, img_channel, H, W) for any H, W >= 1. The
    input is zero-padded at the bottom/right to a multiple of 2 ** len(enc_blk_nums) and
    the output cropped back, as the official code does (zero, not replicate, so published
    checkpoints behave exactly as in their own test code).
    """

    def __init__(
        self,
        img_channel: int = 3,
        width: int = 16,
        middle_blk_num: int = 1,
        enc_blk_nums: list[int] = (),
        dec_blk_nums: list[int] = (),
    ) -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError("enc_blk_nums and dec_blk_nums need the same number of levels")
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.middle_blks = nn.Sequential()  # registered here: state_dict order as published
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()
        chan = width
        for n in enc_blk_nums:
            self.encoders.append(nn.Sequential(*(NAFBlock(chan) for _ in range(n))))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = nn.Sequential(*(NAFBlock(chan) for _ in range(middle_blk_num)))
        for n in dec_blk_nums:
            self.ups.append(
                nn.Sequential(nn.Conv2d(chan, 2 * chan, 1, bias=False), nn.PixelShuffle(2))
            )
            chan //= 2
            self.decoders.append(nn.Sequential(*(NAFBlock(chan) for _ in range(n))))
        self.padder_size = 2 ** len(enc_blk_nums)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = self.padder_size
        inp = F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m))
        y = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            y = encoder(y)
            skips.append(y)
            y = down(y)
        y = self.middle_blks(y)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips), strict=True):
            y = decoder(up(y) + skip)
        return (self.ending(y) + inp)[..., :h, :w]

    def forward_all(self, x: Tensor) -> list[Tensor]:
        """NAFNet has one output: ``[forward(x)]``."""
        return [self.forward(x)]
