"""Restormer (Zamir et al., CVPR 2022): a U-Net of transformer blocks whose attention
runs across channels ("transposed" attention, MDTA) instead of across positions.

Attribute names follow the official implementation (swz30/Restormer,
``basicsr/models/archs/restormer_arch.py``), so ``state_dict()`` keys, order and shapes
match the published checkpoints (``motion_deblurring.pth``, weights under ``params``).

The global-aggregation sites are the attention modules, one per transformer block
(``<level>.<i>.attn``, kind 'attn'): per head, the query and key maps are L2-normalised
over all positions and their c x c product ``q @ k^T`` sums over all positions, so the
channel-mixing matrix each position gets depends on the whole map. The channel LayerNorm
normalises each position on its own: no site.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TASK: str = "deblur"

PRESETS: dict[str, dict[str, Any]] = {
    # Motion_Deblurring/Options/Deblurring_Restormer.yml (network_g) = constructor defaults.
    "official": {
        "inp_channels": 3,
        "out_channels": 3,
        "dim": 48,
        "num_blocks": [4, 6, 6, 8],
        "num_refinement_blocks": 4,
        "heads": [1, 2, 4, 8],
        "ffn_expansion_factor": 2.66,
        "bias": False,
        "LayerNorm_type": "WithBias",
        "dual_pixel_task": False,
    },
    # Four levels, one block each (+1 refinement): 8 attention sites at 64, 32, 16 and
    # 8 px of a 64-px patch; 8 channels per head.
    "tiny": {
        "inp_channels": 3,
        "out_channels": 3,
        "dim": 16,
        "num_blocks": [1, 1, 1, 1],
        "num_refinement_blocks": 1,
        "heads": [2, 2, 4, 8],
        "ffn_expansion_factor": 2.0,
        "bias": False,
        "LayerNorm_type": "WithBias",
        "dual_pixel_task": False,
    },
}

#: Patch size of the last training stage TLC uses for Restormer (``train_size`` 256,
#: base 384 in TLC's RestormerLocal-GoPro.yml).
TRAIN_SIZE: dict[str, int] = {"official": 256, "tiny": 64}

#: Three 2x downsamplings: sides must be multiples of 8 (the official test pads to 8).
PAD_MULTIPLE: int = 8


class _ChannelNorm(nn.Module):
    """Layer norm over the last axis with ``weight`` (and ``bias`` unless bias-free);
    eps 1e-5 inside the square root, as the official ``WithBias_LayerNorm`` /
    ``BiasFree_LayerNorm`` (bias-free: divided by the standard deviation, not centred).
    With bias it is ``F.layer_norm`` (~10x faster on a CPU than a variance over a short
    last axis)."""

    def __init__(self, dim: int, with_bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if with_bias else None

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is not None:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, 1e-5)
        var = (x - x.mean(-1, keepdim=True)).square().mean(-1, keepdim=True)
        return x / torch.sqrt(var + 1e-5) * self.weight


class LayerNorm(nn.Module):
    """Channel layer norm of every position: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, dim: int, LayerNorm_type: str) -> None:
        super().__init__()
        if LayerNorm_type not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm_type: 'WithBias' or 'BiasFree', not {LayerNorm_type!r}")
        self.body = _ChannelNorm(dim, with_bias=LayerNorm_type == "WithBias")

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class FeedForward(nn.Module):
    """Gated-Dconv feed-forward network: 1x1 conv to 2 x hidden, 3x3 depthwise, GELU(first
    half) x second half, 1x1 conv back. (N, dim, H, W) -> (N, dim, H, W)."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class Attention(nn.Module):
    """Multi-Dconv head transposed attention (MDTA). q, k, v = 1x1 conv then 3x3
    depthwise conv of the input; per head (c = dim / num_heads channels), q and k are
    L2-normalised over all positions, A = softmax(temperature * q @ k^T) (c x c), and
    every position's output is A @ v there; a 1x1 conv projects it.
    (N, dim, H, W) -> (N, dim, H, W). A global site (kind 'attn'): A aggregates the map."""

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(n, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(n, c, h, w))


class TransformerBlock(nn.Module):
    """x + attn(norm1(x)), then + ffn(norm2(.)). (N, dim, H, W) -> same."""

    def __init__(
        self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, LayerNorm_type: str
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 conv from the image to ``embed_dim`` channels."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, 3, padding=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class _ConvShuffle(nn.Module):
    """3x3 conv (no bias) to ``c_out`` channels, then a pixel (un)shuffle by 2 (``body``)."""

    def __init__(self, c_in: int, c_out: int, shuffle: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), shuffle)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class Downsample(_ConvShuffle):
    """3x3 conv halving the channels, then PixelUnshuffle(2): (N, C, H, W) -> (N, 2C, H/2, W/2)."""

    def __init__(self, n_feat: int) -> None:
        super().__init__(n_feat, n_feat // 2, nn.PixelUnshuffle(2))


class Upsample(_ConvShuffle):
    """3x3 conv doubling the channels, then PixelShuffle(2): (N, C, H, W) -> (N, C/2, 2H, 2W)."""

    def __init__(self, n_feat: int) -> None:
        super().__init__(n_feat, n_feat * 2, nn.PixelShuffle(2))


def _blocks(n: int, dim: int, heads: int, ffn: float, bias: bool, ln: str) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(dim, heads, ffn, bias, ln) for _ in range(n)))


class Restormer(nn.Module):
    """Four-level U-Net of transformer blocks (``dim`` x 1, 2, 4, 8 channels), decoder
    level 1 at 2 x ``dim`` channels, ``refinement`` blocks, 3x3 ``output`` conv and the
    global residual (the dual-pixel variant adds ``skip_conv`` instead).

    ``forward``: (N, inp_channels, H, W) -> (N, out_channels, H, W) for any H, W >= 1:
    the input is padded at the bottom/right to a multiple of 8 by reflection (replicate
    where the image is too small to reflect), as the official test script pads, and the
    output cropped back.
    """

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: list[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: list[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",
        dual_pixel_task: bool = False,
    ) -> None:
        super().__init__()
        b, ffn, ln = bias, ffn_expansion_factor, LayerNorm_type
        nb = list(num_blocks)
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = _blocks(nb[0], dim, heads[0], ffn, b, ln)
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = _blocks(nb[1], dim * 2, heads[1], ffn, b, ln)
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = _blocks(nb[2], dim * 4, heads[2], ffn, b, ln)
        self.down3_4 = Downsample(dim * 4)
        self.latent = _blocks(nb[3], dim * 8, heads[3], ffn, b, ln)
        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=b)
        self.decoder_level3 = _blocks(nb[2], dim * 4, heads[2], ffn, b, ln)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=b)
        self.decoder_level2 = _blocks(nb[1], dim * 2, heads[1], ffn, b, ln)
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = _blocks(nb[0], dim * 2, heads[0], ffn, b, ln)
        self.refinement = _blocks(num_refinement_blocks, dim * 2, heads[0], ffn, b, ln)
        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim * 2, 1, bias=b)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=b)

    def _unet(self, inp: Tensor) -> Tensor:
        emb = self.patch_embed(inp)
        enc1 = self.encoder_level1(emb)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        dec3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1))
        dec3 = self.decoder_level3(dec3)
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1)))
        if self.dual_pixel_task:
            return self.output(dec1 + self.skip_conv(emb))
        return self.output(dec1) + inp

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return self._unet(x)[..., :h, :w]

    def forward_all(self, x: Tensor) -> list[Tensor]:
        """Restormer has one output: ``[forward(x)]``."""
        return [self.forward(x)]
