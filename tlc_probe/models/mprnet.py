"""MPRNet (Zamir et al., CVPR 2021), deblurring variant: multi-stage progressive restoration.

Attribute names follow the official implementation (swz30/MPRNet,
``Deblurring/MPRNet.py``), so ``state_dict()`` keys and shapes match the published
``model_deblurring.pth`` (weights under ``state_dict``) exactly. As in the official code,
a single PReLU module is shared by every channel-attention block (CAB), so its weight
appears under each CAB's ``body.1.weight`` key.

Stage 1 runs a shared encoder/decoder on the four quarters of the image, stage 2 on the
two halves, stage 3 (ORSNet) on the full image. The global-aggregation sites are the
``CA.avg_pool`` of every CAB (kind 'se'): the windows of stage-1 sites follow the
quarter-patch feature sizes, which ``convert()`` calibrates per site.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TASK: str = "deblur"

PRESETS: dict[str, dict[str, Any]] = {
    # The constructor defaults of Deblurring/MPRNet.py, used for the GoPro model.
    "official": {
        "in_c": 3,
        "out_c": 3,
        "n_feat": 96,
        "scale_unetfeats": 48,
        "scale_orsnetfeats": 32,
        "num_cab": 8,
        "kernel_size": 3,
        "reduction": 4,
        "bias": False,
    },
    "tiny": {
        "in_c": 3,
        "out_c": 3,
        "n_feat": 16,
        "scale_unetfeats": 8,
        "scale_orsnetfeats": 8,
        "num_cab": 2,
        "kernel_size": 3,
        "reduction": 4,
        "bias": False,
    },
}

TRAIN_SIZE: dict[str, int] = {"official": 256, "tiny": 64}

#: Quarter patches, then two halvings inside the U-Nets: sides must be multiples of 8.
PAD_MULTIPLE: int = 8


def _conv(cin: int, cout: int, k: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class CALayer(nn.Module):
    """Channel attention: x * sigmoid(conv(ReLU(conv(avg_pool(x))))). (N, C, H, W) -> same."""

    def __init__(self, channel: int, reduction: int = 16, bias: bool = False) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel // reduction, channel, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(self.avg_pool(x))


class CAB(nn.Module):
    """Channel attention block: conv -> act -> conv -> CALayer, plus the input."""

    def __init__(self, n_feat: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module):
        super().__init__()
        self.CA = CALayer(n_feat, reduction, bias=bias)  # registered first: key order
        self.body = nn.Sequential(
            _conv(n_feat, n_feat, kernel_size, bias), act, _conv(n_feat, n_feat, kernel_size, bias)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.CA(self.body(x)) + x


def _cabs(n: int, c: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module):
    return nn.Sequential(*(CAB(c, kernel_size, reduction, bias, act) for _ in range(n)))


class SAM(nn.Module):
    """Supervised attention module: (features, degraded image) -> (attended features,
    restored image of this stage = conv2(features) + image)."""

    def __init__(self, n_feat: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        self.conv1 = _conv(n_feat, n_feat, kernel_size, bias)
        self.conv2 = _conv(n_feat, 3, kernel_size, bias)
        self.conv3 = _conv(3, n_feat, kernel_size, bias)

    def forward(self, x: Tensor, x_img: Tensor) -> tuple[Tensor, Tensor]:
        img = self.conv2(x) + x_img
        return self.conv1(x) * torch.sigmoid(self.conv3(img)) + x, img


class _Resample(nn.Module):
    """Bilinear resize by ``scale`` then a 1x1 conv (no bias): ``cin`` -> ``cout``."""

    def __init__(self, cin: int, cout: int, scale: float) -> None:
        super().__init__()
        block = nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False)
        attr = "down" if scale < 1 else "up"
        setattr(self, attr, nn.Sequential(block, nn.Conv2d(cin, cout, 1, bias=False)))
        self._attr = attr

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        y = getattr(self, self._attr)(x)
        return y if skip is None else y + skip


def DownSample(c: int, s: int) -> _Resample:  # noqa: N802 - official class name
    """Halve the size, c -> c + s channels."""
    return _Resample(c, c + s, 0.5)


def UpSample(c: int, s: int) -> _Resample:  # noqa: N802 - official class name
    """Double the size, c + s -> c channels (``forward(x, skip)`` adds ``skip``)."""
    return _Resample(c + s, c, 2.0)


class Encoder(nn.Module):
    """Three levels of two CABs (n, n + s, n + 2s channels) with downsampling between; with
    ``csff`` the previous stage's encoder and decoder features are added at each level.
    ``forward(x, enc=None, dec=None)`` -> [enc1, enc2, enc3]."""

    def __init__(self, n_feat, kernel_size, reduction, act, bias, scale_unetfeats, csff):
        super().__init__()
        chans = [n_feat + i * scale_unetfeats for i in range(3)]
        self.encoder_level1 = _cabs(2, chans[0], kernel_size, reduction, bias, act)
        self.encoder_level2 = _cabs(2, chans[1], kernel_size, reduction, bias, act)
        self.encoder_level3 = _cabs(2, chans[2], kernel_size, reduction, bias, act)
        self.down12 = DownSample(chans[0], scale_unetfeats)
        self.down23 = DownSample(chans[1], scale_unetfeats)
        self.csff = csff
        if csff:
            for i, c in enumerate(chans, start=1):
                setattr(self, f"csff_enc{i}", nn.Conv2d(c, c, 1, bias=bias))
            for i, c in enumerate(chans, start=1):
                setattr(self, f"csff_dec{i}", nn.Conv2d(c, c, 1, bias=bias))

    def forward(self, x: Tensor, enc: list[Tensor] | None = None, dec: list[Tensor] | None = None):
        outs = []
        levels = (self.encoder_level1, self.encoder_level2, self.encoder_level3)
        downs = (self.down12, self.down23, None)
        for i, (level, down) in enumerate(zip(levels, downs, strict=True), start=1):
            x = level(x)
            if enc is not None and dec is not None:
                x = x + getattr(self, f"csff_enc{i}")(enc[i - 1])
                x = x + getattr(self, f"csff_dec{i}")(dec[i - 1])
            outs.append(x)
            if down is not None:
                x = down(x)
        return outs


class Decoder(nn.Module):
    """Mirror of :class:`Encoder` with CAB-attended skips: [enc1..3] -> [dec1, dec2, dec3]."""

    def __init__(self, n_feat, kernel_size, reduction, act, bias, scale_unetfeats):
        super().__init__()
        chans = [n_feat + i * scale_unetfeats for i in range(3)]
        self.decoder_level1 = _cabs(2, chans[0], kernel_size, reduction, bias, act)
        self.decoder_level2 = _cabs(2, chans[1], kernel_size, reduction, bias, act)
        self.decoder_level3 = _cabs(2, chans[2], kernel_size, reduction, bias, act)
        self.skip_attn1 = CAB(chans[0], kernel_size, reduction, bias, act)
        self.skip_attn2 = CAB(chans[1], kernel_size, reduction, bias, act)
        self.up21 = UpSample(chans[0], scale_unetfeats)
        self.up32 = UpSample(chans[1], scale_unetfeats)

    def forward(self, outs: list[Tensor]) -> list[Tensor]:
        enc1, enc2, enc3 = outs
        dec3 = self.decoder_level3(enc3)
        dec2 = self.decoder_level2(self.up32(dec3, self.skip_attn2(enc2)))
        dec1 = self.decoder_level1(self.up21(dec2, self.skip_attn1(enc1)))
        return [dec1, dec2, dec3]


class ORB(nn.Module):
    """Original-resolution block: ``num_cab`` CABs and a conv, plus the input."""

    def __init__(self, n_feat, kernel_size, reduction, act, bias, num_cab):
        super().__init__()
        cabs = [CAB(n_feat, kernel_size, reduction, bias, act) for _ in range(num_cab)]
        self.body = nn.Sequential(*cabs, _conv(n_feat, n_feat, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class ORSNet(nn.Module):
    """Stage 3: three ORBs at full resolution, each followed by the stage-2 encoder and
    decoder features of one level, upsampled to full size and projected by 1x1 convs."""

    def __init__(
        self, n_feat, scale_orsnetfeats, kernel_size, reduction, act, bias, scale_unetfeats, num_cab
    ):  # noqa: E501
        super().__init__()
        c = n_feat + scale_orsnetfeats
        s = scale_unetfeats
        for i in (1, 2, 3):
            setattr(self, f"orb{i}", ORB(c, kernel_size, reduction, act, bias, num_cab))
        self.up_enc1 = UpSample(n_feat, s)
        self.up_dec1 = UpSample(n_feat, s)
        self.up_enc2 = nn.Sequential(UpSample(n_feat + s, s), UpSample(n_feat, s))
        self.up_dec2 = nn.Sequential(UpSample(n_feat + s, s), UpSample(n_feat, s))
        for i in (1, 2, 3):
            setattr(self, f"conv_enc{i}", nn.Conv2d(n_feat, c, 1, bias=bias))
        for i in (1, 2, 3):
            setattr(self, f"conv_dec{i}", nn.Conv2d(n_feat, c, 1, bias=bias))

    def forward(self, x: Tensor, enc: list[Tensor], dec: list[Tensor]) -> Tensor:
        up_enc = (nn.Identity(), self.up_enc1, self.up_enc2)
        up_dec = (nn.Identity(), self.up_dec1, self.up_dec2)
        for i in range(3):
            x = getattr(self, f"orb{i + 1}")(x)
            x = x + getattr(self, f"conv_enc{i + 1}")(up_enc[i](enc[i]))
            x = x + getattr(self, f"conv_dec{i + 1}")(up_dec[i](dec[i]))
        return x


class MPRNet(nn.Module):
    """Three-stage MPRNet. ``forward``: (N, 3, H, W) -> stage-3 image (N, 3, H, W) for any
    H, W >= 1; the input is padded at the bottom/right to a multiple of 8 by reflection (as
    the published demo does; replicate where the pad exceeds the image) and cropped back.
    ``forward_all``: [stage 3, stage 2, stage 1] images, the official output order.
    """

    def __init__(
        self,
        in_c: int = 3,
        out_c: int = 3,
        n_feat: int = 96,
        scale_unetfeats: int = 48,
        scale_orsnetfeats: int = 32,
        num_cab: int = 8,
        kernel_size: int = 3,
        reduction: int = 4,
        bias: bool = False,
    ) -> None:
        super().__init__()
        act = nn.PReLU()  # one module shared by every CAB, as published
        k, r, s = kernel_size, reduction, scale_unetfeats
        for i in (1, 2, 3):
            shallow = nn.Sequential(_conv(in_c, n_feat, k, bias), CAB(n_feat, k, r, bias, act))
            setattr(self, f"shallow_feat{i}", shallow)
        self.stage1_encoder = Encoder(n_feat, k, r, act, bias, s, csff=False)
        self.stage1_decoder = Decoder(n_feat, k, r, act, bias, s)
        self.stage2_encoder = Encoder(n_feat, k, r, act, bias, s, csff=True)
        self.stage2_decoder = Decoder(n_feat, k, r, act, bias, s)
        self.stage3_orsnet = ORSNet(n_feat, scale_orsnetfeats, k, r, act, bias, s, num_cab)
        self.sam12 = SAM(n_feat, kernel_size=1, bias=bias)
        self.sam23 = SAM(n_feat, kernel_size=1, bias=bias)
        self.concat12 = _conv(n_feat * 2, n_feat, k, bias)
        self.concat23 = _conv(n_feat * 2, n_feat + scale_orsnetfeats, k, bias)
        self.tail = _conv(n_feat + scale_orsnetfeats, out_c, k, bias)

    def _stages(self, x3: Tensor) -> list[Tensor]:
        h, w = x3.shape[-2:]
        top, bot = x3[..., : h // 2, :], x3[..., h // 2 :, :]
        halves = (top, bot)
        # Stage 1: shared encoder on the four quarters, decoder on the two halves.
        feats1 = []
        for half in halves:
            left, right = half[..., : w // 2], half[..., w // 2 :]
            enc_l = self.stage1_encoder(self.shallow_feat1(left))
            enc_r = self.stage1_encoder(self.shallow_feat1(right))
            feats1.append([torch.cat(pair, dim=3) for pair in zip(enc_l, enc_r, strict=True)])
        res1 = [self.stage1_decoder(f) for f in feats1]
        sam1 = [self.sam12(r[0], half) for r, half in zip(res1, halves, strict=True)]
        stage1_img = torch.cat([img for _, img in sam1], dim=2)
        # Stage 2: the two halves, with stage-1 features fused into the encoder.
        feats2 = []
        for half, (samfeat, _), f1, r1 in zip(halves, sam1, feats1, res1, strict=True):
            x2 = self.concat12(torch.cat([self.shallow_feat2(half), samfeat], dim=1))
            feats2.append(self.stage2_encoder(x2, f1, r1))
        feat2 = [torch.cat(pair, dim=2) for pair in zip(*feats2, strict=True)]
        res2 = self.stage2_decoder(feat2)
        samfeat3, stage2_img = self.sam23(res2[0], x3)
        # Stage 3: full resolution.
        x = self.concat23(torch.cat([self.shallow_feat3(x3), samfeat3], dim=1))
        x = self.stage3_orsnet(x, feat2, res2)
        return [self.tail(x) + x3, stage2_img, stage1_img]

    def forward_all(self, x: Tensor) -> list[Tensor]:
        """[stage 3, stage 2, stage 1] restored images, each (N, 3, H, W)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return [out[..., :h, :w] for out in self._stages(x)]

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> the final (stage-3) restored image."""
        return self.forward_all(x)[0]
