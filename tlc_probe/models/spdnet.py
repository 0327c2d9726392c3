"""SPDNet (Yi et al., ICCV 2021): structure-preserving deraining guided by the residue
channel prior, with wavelet multi-scale subnets.

Attribute names follow the official implementation (Joyies/SPDNet,
``src/model/spdnet.py``, class ``Rainnet``), so ``state_dict()`` keys, order and shapes
match the published checkpoints exactly, including the Haar filters that the official
code keeps as buffers of its wavelet modules (``sub{1,2,3}.DWT.h0_col`` ...,
``.IDWT.g0_col`` ...; pytorch_wavelets' ``DWTForward(J=1, wave='haar')`` /
``DWTInverse(wave='haar')``, mode 'zero'). The transform is implemented here from those
buffers; no wavelet package is needed.

Global-aggregation sites: the squeeze-excitation pool of every residual block
(``….se.avg_pool``, kind 'se'), whose mean is flattened and fed to ``nn.Linear`` layers
(``convert`` rewrites them to run per position). The ``nn.InstanceNorm2d`` of every
``convd`` (``….ins``) is in the state_dict but never called (commented out upstream):
never-run sites.

The official model works on images in [0, 255] (``rgb_range`` 255, no mean shift); the
``official`` preset scales its [0, 1] input and output accordingly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TASK: str = "derain"

PRESETS: dict[str, dict[str, Any]] = {
    # README training command: --n_feats 32 --n_resblocks 3 (rgb_range 255 by default).
    "official": {"n_feats": 32, "n_resblocks": 3, "rgb_range": 255.0},
    # One residual block per RIR: 36 SE sites at 128, 64 and 32 px of a 128-px patch.
    "tiny": {"n_feats": 16, "n_resblocks": 1, "rgb_range": 1.0},
}

#: Patch size of the official training command (``--patch_size 128``).
TRAIN_SIZE: dict[str, int] = {"official": 128, "tiny": 128}

#: Any size runs (the subnets crop or interpolate back); no padding needed.
PAD_MULTIPLE: int = 1

_R = 1 / math.sqrt(2)


def get_residue(x: Tensor) -> Tensor:
    """Residue channel: max minus min over the colour channels, (N, 3, H, W) -> (N, 1, H, W)."""
    return x.max(dim=1, keepdim=True)[0] - x.min(dim=1, keepdim=True)[0]


class convd(nn.Module):  # noqa: N801 - the official class name
    """Reflection pad, conv (``stride``), ReLU. ``ins`` is created but never called."""

    def __init__(self, inputchannel: int, outchannel: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.padding = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(inputchannel, outchannel, kernel_size, stride)
        self.ins = nn.InstanceNorm2d(outchannel, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(self.padding(x)))


class Upsample(nn.Module):
    """Reflection pad, 3x3 transposed conv (stride 2), ReLU, then nearest interpolation to
    the size of the second argument."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        out = self.relu(self.conv2d(self.reflection_pad(x)))
        return F.interpolate(out, y.shape[2:])


class SELayer(nn.Module):
    """Squeeze-excitation with linear layers: x * sigmoid(fc(mean over the map)), where
    ``fc`` = Linear(C, C/r), ReLU, Linear(C/r, C), Sigmoid (no biases)."""

    def __init__(self, channel: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        y = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * y.expand_as(x)


class RB(nn.Module):
    """Residual block: x + se(conv-ReLU-conv-ReLU(x)); ``relu`` is unused, as upstream."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for _ in range(2):
            body += [nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU()]
        self.module_body = nn.Sequential(*body)
        self.relu = nn.ReLU()
        self.se = SELayer(n_feats, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.se(self.module_body(x)) + x


class RIR(nn.Module):
    """Residual in residual: ReLU(x + (``n_blocks`` RBs, 3x3 conv)(x))."""

    def __init__(self, n_feats: int, n_blocks: int) -> None:
        super().__init__()
        body: list[nn.Module] = [RB(n_feats) for _ in range(n_blocks)]
        body.append(nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.module_body = nn.Sequential(*body)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.module_body(x) + x)


class res_ch(nn.Module):  # noqa: N801 - the official class name
    """Features of the (three-times repeated) residue channel."""

    def __init__(self, n_feats: int, blocks: int = 2) -> None:
        super().__init__()
        self.conv_init1 = convd(3, n_feats // 2, 3, 1)
        self.conv_init2 = convd(n_feats // 2, n_feats, 3, 1)
        self.extra = RIR(n_feats, n_blocks=blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.extra(self.conv_init2(self.conv_init1(x)))


class Fuse(nn.Module):
    """ReLU(rb(up(x, y) + y)); ``conv`` and ``relu`` exist unused, as upstream."""

    def __init__(self, inchannel: int = 64, outchannel: int = 64) -> None:
        super().__init__()
        self.up = Upsample(inchannel, outchannel, 3, 2)
        self.conv = convd(outchannel, outchannel, 3, 1)
        self.rb = RB(outchannel)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.relu(self.rb(self.up(x, y) + y))


class Prior_Sp(nn.Module):  # noqa: N801 - the official class name
    """Residue-prior attention between the image features and the prior features."""

    def __init__(self, in_dim: int = 32) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.query_conv = nn.Conv2d(in_dim, in_dim, 3, 1, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim, 3, 1, 1)
        self.gamma1 = nn.Conv2d(in_dim * 2, 2, 3, 1, 1)
        self.gamma2 = nn.Conv2d(in_dim * 2, 2, 3, 1, 1)
        self.sig = nn.Sigmoid()

    def forward(self, x: Tensor, prior: Tensor) -> tuple[Tensor, Tensor]:
        attention = self.sig(self.query_conv(x) * self.key_conv(prior))
        att_x, att_p = x * attention, prior * attention
        g1 = self.gamma1(torch.cat((x, att_x), dim=1))
        g2 = self.gamma2(torch.cat((prior, att_p), dim=1))
        return x * g1[:, [0]] + att_x * g1[:, [1]], prior * g2[:, [0]] + att_p * g2[:, [1]]


def _haar_buffers(module: nn.Module, letter: str) -> None:
    """Register ``<letter>0_col``, ``<letter>1_col`` (1, 1, 2, 1) and ``..._row`` (1, 1, 1, 2):
    the Haar low-pass [1, 1] / sqrt 2 and high-pass [1, -1] / sqrt 2 filters (for analysis
    the time-reversed db1 filters, for synthesis db1's own: the same numbers)."""
    lo, hi = torch.tensor([_R, _R]), torch.tensor([_R, -_R])
    for axis, shape in (("col", (1, 1, 2, 1)), ("row", (1, 1, 1, 2))):
        module.register_buffer(f"{letter}0_{axis}", lo.view(shape))
        module.register_buffer(f"{letter}1_{axis}", hi.view(shape))


class HaarDWT(nn.Module):
    """One level of the 2-D Haar wavelet transform with zero padding (an odd side gets
    one zero row / column at its end), laid out as pytorch_wavelets' ``DWTForward``:
    ``forward(x)`` (N, C, H, W) -> (low (N, C, H', W'), [high (N, C, 3, H', W')]) with
    H' = ceil(H / 2). The filters are buffers (``h0_col`` (1, 1, 2, 1), ``h1_col``,
    ``h0_row`` (1, 1, 1, 2), ``h1_row``), as in the official checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        _haar_buffers(self, "h")

    @staticmethod
    def _split(x: Tensor, lo: Tensor, hi: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        c = x.shape[1]
        if x.shape[dim] % 2:
            x = F.pad(x, (0, 1) if dim == 3 else (0, 0, 0, 1))
        stride = (1, 2) if dim == 3 else (2, 1)
        filt = torch.cat([lo, hi]).to(x.dtype).repeat(c, 1, 1, 1)
        y = F.conv2d(x, filt, stride=stride, groups=c)
        return y[:, 0::2], y[:, 1::2]

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        lo_w, hi_w = self._split(x, self.h0_row, self.h1_row, dim=3)
        ll, lh = self._split(lo_w, self.h0_col, self.h1_col, dim=2)
        hl, hh = self._split(hi_w, self.h0_col, self.h1_col, dim=2)
        return ll, [torch.stack([lh, hl, hh], dim=2)]


class HaarIDWT(nn.Module):
    """The inverse of :class:`HaarDWT` (pytorch_wavelets' ``DWTInverse(wave='haar')``):
    ``forward((low, [high]))`` -> (N, C, 2H', 2W'). Filters: buffers ``g0_col``,
    ``g1_col`` (1, 1, 2, 1), ``g0_row``, ``g1_row`` (1, 1, 1, 2)."""

    def __init__(self) -> None:
        super().__init__()
        _haar_buffers(self, "g")

    @staticmethod
    def _merge(lo: Tensor, hi: Tensor, g0: Tensor, g1: Tensor, dim: int) -> Tensor:
        c = lo.shape[1]
        stride = (1, 2) if dim == 3 else (2, 1)
        g0, g1 = (g.to(lo.dtype).repeat(c, 1, 1, 1) for g in (g0, g1))
        out = F.conv_transpose2d(lo, g0, stride=stride, groups=c)
        return out + F.conv_transpose2d(hi, g1, stride=stride, groups=c)

    def forward(self, coeffs: tuple[Tensor, list[Tensor]]) -> Tensor:
        ll, (high,) = coeffs
        lh, hl, hh = high.unbind(dim=2)
        lo = self._merge(ll, lh, self.g0_col, self.g1_col, dim=2)
        hi = self._merge(hl, hh, self.g0_col, self.g1_col, dim=2)
        return self._merge(lo, hi, self.g0_row, self.g1_row, dim=3)


class subnet(nn.Module):  # noqa: N801 - the official class name
    """Three-scale wavelet subnet: prior fusion, two Haar levels, three columns of RIRs per
    scale, inverse transforms and fusion back to full resolution. The ``*_d``, ``*_u``,
    ``down2`` and ``down3`` modules exist unused, as upstream."""

    def __init__(self, n_feats: int, blocks: int = 2) -> None:
        super().__init__()
        self.DWT = HaarDWT()
        self.IDWT = HaarIDWT()
        self.DWT_2 = convd(n_feats * 4, n_feats, 3, 1)
        self.DWT_3 = convd(n_feats * 4, n_feats, 3, 1)
        self.IDWT_2 = convd(n_feats, n_feats * 4, 3, 1)
        self.IDWT_3 = convd(n_feats, n_feats * 4, 3, 1)
        self.prior = Prior_Sp(n_feats)
        self.fuse_res = convd(n_feats * 2, n_feats, 3, 1)
        self.branch1_1 = RIR(n_feats, blocks)
        self.branch1_1_d = convd(n_feats, n_feats, 3, 2)
        self.branch1_2 = RIR(n_feats, blocks)
        self.branch1_2_d = convd(n_feats, n_feats, 3, 2)
        self.branch1_3 = RIR(n_feats, blocks)
        self.down2 = convd(n_feats, n_feats, 3, 2)
        self.branch2_1 = RIR(n_feats, blocks)
        self.branch2_1_u = Upsample(n_feats, n_feats, 3, 2)
        self.branch2_1_d = convd(n_feats, n_feats, 3, 2)
        self.branch2_2 = RIR(n_feats, blocks)
        self.branch2_2_u = Upsample(n_feats, n_feats, 3, 2)
        self.branch2_2_d = convd(n_feats, n_feats, 3, 2)
        self.branch2_3 = RIR(n_feats, blocks)
        self.down3 = convd(n_feats, n_feats, 3, 2)
        self.branch3_1 = RIR(n_feats, blocks)
        self.branch3_1_u = Upsample(n_feats, n_feats, 3, 2)
        self.branch3_2 = RIR(n_feats, blocks)
        self.branch3_2_u = Upsample(n_feats, n_feats, 3, 2)
        self.branch3_3 = RIR(n_feats, blocks)
        self.fuse12 = Fuse(n_feats, n_feats)
        self.fuse23 = Fuse(n_feats, n_feats)

    @staticmethod
    def _bands_to_channels(low: Tensor, high: list[Tensor]) -> Tensor:
        # three high bands, then the low band, each C channels (as upstream)
        return torch.cat([high[0][:, :, i] for i in range(3)] + [low], dim=1)

    @staticmethod
    def _channels_to_bands(x: Tensor) -> tuple[Tensor, list[Tensor]]:
        # C x 4 interleaved, low band first (upstream's inverse is not the forward's mirror)
        y = x.reshape(x.shape[0], x.shape[1] // 4, 4, x.shape[-2], x.shape[-1])
        return y[:, :, 0].contiguous(), [y[:, :, 1:].contiguous()]

    def forward(self, x: Tensor, res_feats: Tensor) -> Tensor:
        x_p, res_p = self.prior(x, res_feats)
        x1 = self.fuse_res(torch.cat((x_p, res_p), dim=1))
        x2 = self.DWT_2(self._bands_to_channels(*self.DWT(x1)))
        x3 = self.DWT_3(self._bands_to_channels(*self.DWT(x2)))
        for col in (1, 2, 3):
            x1 = getattr(self, f"branch1_{col}")(x1)
            x2 = getattr(self, f"branch2_{col}")(x2)
            x3 = getattr(self, f"branch3_{col}")(x3)
        up3 = self.IDWT(self._channels_to_bands(self.IDWT_3(x3)))
        x2 = self.fuse23(up3, x2)
        up2 = self.IDWT(self._channels_to_bands(self.IDWT_2(x2)))
        return self.fuse12(up2, x1)


class Rainnet(nn.Module):
    """SPDNet: three subnets in sequence, each guided by the residue channel of the
    previous output. ``forward_all``: (N, 3, H, W) -> [out3, out2, out1] (final first, as
    the official forward returns them); ``forward`` -> out3. Inputs in [0, 1]; the model
    computes on ``rgb_range`` x the input (255 for the official weights)."""

    def __init__(self, n_feats: int = 32, n_resblocks: int = 3, rgb_range: float = 255.0) -> None:
        super().__init__()
        self.rgb_range = float(rgb_range)
        blocks = n_resblocks
        self.conv_init1 = convd(3, n_feats // 2, 3, 1)
        self.conv_init2 = convd(n_feats // 2, n_feats, 3, 1)
        self.res_extra1 = res_ch(n_feats, blocks)
        self.sub1 = subnet(n_feats, blocks)
        self.res_extra2 = res_ch(n_feats, blocks)
        self.sub2 = subnet(n_feats, blocks)
        self.res_extra3 = res_ch(n_feats, blocks)
        self.sub3 = subnet(n_feats, blocks)
        self.ag1 = convd(n_feats * 2, n_feats, 3, 1)
        self.ag2 = convd(n_feats * 3, n_feats, 3, 1)
        self.ag2_en = convd(n_feats * 2, n_feats, 3, 1)
        self.ag_en = convd(n_feats * 3, n_feats, 3, 1)
        self.output1 = nn.Conv2d(n_feats, 3, 3, 1, padding=1)
        self.output2 = nn.Conv2d(n_feats, 3, 3, 1, padding=1)
        self.output3 = nn.Conv2d(n_feats, 3, 3, 1, padding=1)

    def _official(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        def prior(img: Tensor) -> Tensor:
            return get_residue(img).expand(-1, 3, -1, -1)

        x_init = self.conv_init2(self.conv_init1(x))
        x1 = self.sub1(x_init, self.res_extra1(prior(x)))
        out1 = self.output1(x1)
        x2 = self.sub2(self.ag1(torch.cat((x1, x_init), 1)), self.res_extra2(prior(out1)))
        out2 = self.output2(self.ag2_en(torch.cat([x2, x1], 1)))
        x3 = self.sub3(self.ag2(torch.cat((x2, x1, x_init), 1)), self.res_extra3(prior(out2)))
        out3 = self.output3(self.ag_en(torch.cat([x3, x2, x1], 1)))
        return out3, out2, out1

    def forward_all(self, x: Tensor) -> list[Tensor]:
        """[out3, out2, out1], each (N, 3, H, W), in the input's [0, 1] range. Maps under
        8 x 8 are replicate-padded to 8 first (the quarter-scale branch reflects its
        borders, which needs 2 x 2) and cropped back."""
        h, w = x.shape[-2:]
        if h < 8 or w < 8:
            x = F.pad(x, (0, max(0, 8 - w), 0, max(0, 8 - h)), mode="replicate")
        r = self.rgb_range
        outs = [o / r for o in self._official(x * r)] if r != 1 else self._official(x)
        return [o[..., :h, :w] for o in outs]

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> the final restored image (out3)."""
        return self.forward_all(x)[0]
