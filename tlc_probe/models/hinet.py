"""HINet (Chen et al., CVPRW 2021): a two-stage U-Net with half instance normalization.

Attribute names follow the official implementation (megvii-model/HINet,
``basicsr/models/archs/hinet_arch.py``), so ``state_dict()`` keys and shapes match the
published checkpoints (e.g. ``HINet-GoPro.pth``) exactly.

The global-aggregation sites are the half instance norms, ``down_path_{1,2}.<i>.norm``
for the encoder levels ``hin_position_left <= i <= hin_position_right`` of both stages.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TASK: str = "deblur"

PRESETS: dict[str, dict[str, Any]] = {
    # options/train/GoPro/HINet.yml (network_g), other kwargs at the constructor defaults.
    "official": {
        "in_chn": 3,
        "wf": 64,
        "depth": 5,
        "relu_slope": 0.2,
        "hin_position_left": 3,
        "hin_position_right": 4,
    },
    # Same rule as the GoPro preset (HIN in the two deepest encoder levels of both stages),
    # one level less and 12 base channels: ~0.78 M parameters.
    "tiny": {
        "in_chn": 3,
        "wf": 12,
        "depth": 4,
        "relu_slope": 0.2,
        "hin_position_left": 2,
        "hin_position_right": 3,
    },
}

TRAIN_SIZE: dict[str, int] = {"official": 256, "tiny": 64}


def pad_multiple(depth: int = 5, **_: Any) -> int:
    """Side multiple the input needs: each of the ``depth - 1`` stride-2 downsamplings must
    see an even size for the transposed convolutions to restore it, hence 2 ** (depth - 1)."""
    return 2 ** (depth - 1)


PAD_MULTIPLE = pad_multiple


class UNetConvBlock(nn.Module):
    """One U-Net level: two 3x3 convs (leaky ReLU) plus a 1x1 identity path.

    With ``use_HIN`` the first ``out_size // 2`` channels after ``conv_1`` go through
    ``norm = nn.InstanceNorm2d(out_size // 2, affine=True)``, the rest pass unchanged.
    With ``use_csff`` (stage-2 encoder) the block adds ``csff_enc(enc) + csff_dec(dec)``,
    the stage-1 encoder and decoder features of the same level.
    ``forward``: (N, in_size, H, W) -> (N, out_size, H, W), before downsampling; the
    owner applies ``downsample`` (4x4 stride-2 conv, present when ``downsample``).
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        downsample: bool,
        relu_slope: float,
        use_csff: bool = False,
        use_HIN: bool = False,
    ) -> None:
        super().__init__()
        # Registration order fixes the state_dict key order of the official checkpoints.
        self.identity = nn.Conv2d(in_size, out_size, 1)
        self.conv_1 = nn.Conv2d(in_size, out_size, 3, padding=1)
        self.relu_1 = nn.LeakyReLU(relu_slope)
        self.conv_2 = nn.Conv2d(out_size, out_size, 3, padding=1)
        self.relu_2 = nn.LeakyReLU(relu_slope)
        self.use_csff = downsample and use_csff
        if self.use_csff:
            self.csff_enc = nn.Conv2d(out_size, out_size, 3, padding=1)
            self.csff_dec = nn.Conv2d(out_size, out_size, 3, padding=1)
        self.use_HIN = use_HIN
        if use_HIN:
            self.norm = nn.InstanceNorm2d(out_size // 2, affine=True)
        self.downsample = (
            nn.Conv2d(out_size, out_size, 4, stride=2, padding=1, bias=False)
            if downsample
            else None
        )

    def forward(self, x: Tensor, enc: Tensor | None = None, dec: Tensor | None = None) -> Tensor:
        """(N, in_size, H, W) [, enc, dec: (N, out_size, H, W)] -> (N, out_size, H, W)."""
        y = self.conv_1(x)
        if self.use_HIN:
            half = self.norm.num_features
            y = torch.cat([self.norm(y[:, :half]), y[:, half:]], dim=1)
        y = self.relu_2(self.conv_2(self.relu_1(y))) + self.identity(x)
        if enc is not None and dec is not None:
            if not self.use_csff:
                raise ValueError("this block has no cross-stage feature fusion")
            y = y + self.csff_enc(enc) + self.csff_dec(dec)
        return y


class UNetUpBlock(nn.Module):
    """Decoder level: 2x transposed conv, concatenation with the skip features, conv block.

    (N, in_size, H, W), bridge (N, out_size, 2H, 2W) -> (N, out_size, 2H, 2W);
    ``in_size == 2 * out_size``.
    """

    def __init__(self, in_size: int, out_size: int, relu_slope: float) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_size, out_size, 2, stride=2)
        self.conv_block = UNetConvBlock(in_size, out_size, False, relu_slope)

    def forward(self, x: Tensor, bridge: Tensor) -> Tensor:
        """See the class docstring."""
        return self.conv_block(torch.cat([self.up(x), bridge], dim=1))


class SAM(nn.Module):
    """Supervised attention module between the stages.

    feats (N, n_feat, H, W), image (N, 3, H, W) -> (gated feats (N, n_feat, H, W),
    stage-1 restored image (N, 3, H, W)). The image is ``conv2(feats) + image``; the
    gate is ``sigmoid(conv3(restored))`` applied to ``conv1(feats)``, plus ``feats``.
    """

    def __init__(self, n_feat: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(n_feat, n_feat, kernel_size, padding=pad, bias=bias)
        self.conv2 = nn.Conv2d(n_feat, 3, kernel_size, padding=pad, bias=bias)
        self.conv3 = nn.Conv2d(3, n_feat, kernel_size, padding=pad, bias=bias)

    def forward(self, feats: Tensor, image: Tensor) -> tuple[Tensor, Tensor]:
        """See the class docstring."""
        restored = self.conv2(feats) + image
        gate = torch.sigmoid(self.conv3(restored))
        return feats + self.conv1(feats) * gate, restored


class HINet(nn.Module):
    """HINet: two U-Nets in sequence, linked by SAM and cross-stage feature fusion.

    Stage 1 (``conv_01``, ``down_path_1``, ``skip_conv_1``, ``up_path_1``) ends in ``sam12``,
    which yields the stage-1 image and gated features; stage 2 starts from
    ``cat12([conv_02(image), gated features])`` and its encoder (``down_path_2``) adds the
    stage-1 encoder/decoder features of each level (CSFF); ``last`` maps to the residual
    of the final image. Level ``i`` has ``2**i * wf`` channels.

    Args:
        in_chn: image channels.
        wf: channels of the first level.
        depth: U-Net levels (``depth - 1`` downsamplings).
        relu_slope: negative slope of the leaky ReLUs.
        hin_position_left, hin_position_right: encoder levels (inclusive range) whose
            blocks use half instance normalization, in both stages.

    ``forward``: (N, in_chn, H, W) -> final (stage-2) image (N, in_chn, H, W), any H, W >= 1.
    The input is padded at the bottom/right to a multiple of ``2 ** (depth - 1)`` with
    replicate padding and the output cropped back (an input of at most that multiple on
    both sides gets twice the multiple in width, so that the deepest level, where instance
    norm may sit, has more than one pixel). The published test code never pads (it
    restores GoPro frames, 720x1280, or 256x256 grid crops, all multiples of 16); replicate
    continues the image without the black borders of zero padding, which would shift the
    instance-norm statistics and add false edges, and unlike reflect it works for any pad
    size (even a 1x1 input).
    """

    def __init__(
        self,
        in_chn: int = 3,
        wf: int = 64,
        depth: int = 5,
        relu_slope: float = 0.2,
        hin_position_left: int = 0,
        hin_position_right: int = 4,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.down_path_1 = nn.ModuleList()
        self.down_path_2 = nn.ModuleList()
        self.conv_01 = nn.Conv2d(in_chn, wf, 3, padding=1)
        self.conv_02 = nn.Conv2d(in_chn, wf, 3, padding=1)

        widths = [wf * 2**i for i in range(depth)]
        prev = wf
        for i, width in enumerate(widths):
            hin = hin_position_left <= i <= hin_position_right
            down = i < depth - 1
            self.down_path_1.append(UNetConvBlock(prev, width, down, relu_slope, use_HIN=hin))
            self.down_path_2.append(
                UNetConvBlock(prev, width, down, relu_slope, use_csff=down, use_HIN=hin)
            )
            prev = width

        self.up_path_1 = nn.ModuleList()
        self.up_path_2 = nn.ModuleList()
        self.skip_conv_1 = nn.ModuleList()
        self.skip_conv_2 = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up_path_1.append(UNetUpBlock(prev, width, relu_slope))
            self.up_path_2.append(UNetUpBlock(prev, width, relu_slope))
            self.skip_conv_1.append(nn.Conv2d(width, width, 3, padding=1))
            self.skip_conv_2.append(nn.Conv2d(width, width, 3, padding=1))
            prev = width
        self.sam12 = SAM(wf)
        self.cat12 = nn.Conv2d(2 * wf, wf, 1)
        self.last = nn.Conv2d(wf, in_chn, 3, padding=1)

    @staticmethod
    def _encode(
        blocks: nn.ModuleList,
        x: Tensor,
        encs: list[Tensor] | None = None,
        decs: list[Tensor] | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Run an encoder; returns the bottleneck and the pre-downsampling features of each
        level but the last. ``encs``/``decs`` (stage-1 features, shallow level first) feed
        the CSFF of the stage-2 encoder."""
        skips = []
        for i, block in enumerate(blocks):
            if block.downsample is None:
                x = block(x)
            else:
                fuse = (encs[i], decs[i]) if encs is not None and decs is not None else ()
                feat = block(x, *fuse)
                skips.append(feat)
                x = block.downsample(feat)
        return x, skips

    @staticmethod
    def _decode(
        ups: nn.ModuleList, skip_convs: nn.ModuleList, x: Tensor, skips: list[Tensor]
    ) -> tuple[Tensor, list[Tensor]]:
        """Run a decoder from the bottleneck; returns its output and every level's output,
        shallow level first."""
        outs = []
        for up, skip_conv, skip in zip(ups, skip_convs, reversed(skips), strict=True):
            x = up(x, skip_conv(skip))
            outs.append(x)
        return x, outs[::-1]

    def _stages(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3, H, W), H and W multiples of the pad multiple -> (stage-1, stage-2) image."""
        x1, encs = self._encode(self.down_path_1, self.conv_01(image))
        x1, decs = self._decode(self.up_path_1, self.skip_conv_1, x1, encs)
        gated, out_1 = self.sam12(x1, image)

        x2 = self.cat12(torch.cat([self.conv_02(image), gated], dim=1))
        x2, skips = self._encode(self.down_path_2, x2, encs, decs)
        x2, _ = self._decode(self.up_path_2, self.skip_conv_2, x2, skips)
        return out_1, self.last(x2) + image

    def forward_all(self, x: Tensor) -> list[Tensor]:
        """(N, 3, H, W) -> [stage-2 (final) image, stage-1 image], each (N, 3, H, W).

        The official forward returns them in the opposite order, [stage 1, stage 2]."""
        h, w = x.shape[-2:]
        m = pad_multiple(self.depth)
        hp, wp = h + -h % m, w + -w % m
        if hp == wp == m:
            # The deepest level would be 1x1, where instance norm is undefined.
            wp = 2 * m
        xp = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
        out_1, out_2 = self._stages(xp)
        return [out_2[..., :h, :w], out_1[..., :h, :w]]

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> restored image (N, 3, H, W), the stage-2 output."""
        return self.forward_all(x)[0]
