"""Training-extent windows: the statistics a global site would aggregate if its mean
covered only as much of the whole-image feature map as a training patch does.

This is a measurement on the unchanged global model (the ``window`` regime): at each site
the whole-image features are averaged over windows of the site's *training-time* feature
extent (the map size it sees on a ``train_size`` input), placed where the ``train_size``
tiles of the ``tiles`` regime lie, mapped to the site's resolution (:func:`window_starts`;
exactly for sites whose map spans the input, in their own frame for sites that run on
parts of it). So:

* ``tiles`` -> ``window`` changes only the features (same extent and place; in a tile the
  features near its edges see zero padding, in the whole image they see real context):
  the *context* shift;
* ``window`` -> ``whole`` changes only the extent of the mean (same features): the
  *aggregation* shift, the only part that TLC's local means can remove.

Example::

    windows = training_windows(model, train_size=64, overlap=16)
    with Probe(model, windows=windows) as probe:
        model(image)                       # (1, 3, H, W), the whole image
    df = probe.take(["image"])             # y, x: window centres in feature pixels
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..sites import feature_sizes
from ..sizes import as_int, as_pair
from ..tiling import tile_starts
from ..tlc.attention import attention_stats


@dataclass(frozen=True)
class Window:
    """The window of one site: ``kernel`` = (h, w), the feature-map size the site sees on a
    ``train_size`` (H, W) patch; ``overlap`` = (H, W) input pixels shared by neighbouring
    tiles of the ``tiles`` regime."""

    kernel: tuple[int, int]
    train_size: tuple[int, int]
    overlap: tuple[int, int]


def training_windows(
    model: nn.Module,
    train_size: int | tuple[int, int],
    overlap: int | tuple[int, int] = 0,
    in_channels: int = 3,
) -> dict[str, Window]:
    """The :class:`Window` of every site ``model`` reaches on a ``train_size`` input.

    Args:
        model: the global network.
        train_size: training patch size (H, W) in input pixels (an int for a square).
        overlap: overlap of the ``tiles`` regime's tiles in input pixels.
        in_channels: channels of the calibration input.

    Returns:
        ``{site name: Window}``; sites the pass does not reach are left out.

    Raises:
        ValueError: a site sees maps of several sizes in one pass (no single extent), or
            the overlap is not below ``train_size``.
    """
    th, tw = as_pair(train_size, "train_size")
    oh, ow = as_pair(overlap, "overlap", minimum=0)
    if oh >= th or ow >= tw:
        raise ValueError(f"overlap {(oh, ow)} must be below train_size {(th, tw)}")
    sizes = feature_sizes(model, (th, tw), in_channels)
    if multi := {n: v for n, v in sizes.items() if len(v) > 1}:
        raise ValueError(
            f"sites called with several feature sizes at train_size {(th, tw)}, so no single "
            f"training extent: {multi}"
        )
    return {name: Window(found[0], (th, tw), (oh, ow)) for name, found in sizes.items() if found}


def window_starts(
    n: int, kernel: int, train: int, overlap: int, n_input: int | None = None
) -> list[int]:
    """First rows (or columns) of the windows on a site's map of length ``n``, one per
    tile, for a site whose map is ``kernel / train`` times its input.

    * The map spans the model input (``n_input`` given and ``n >= floor(n_input * kernel /
      train)``, as for any stride or padding of the input): the tiles of
      :func:`tlc_probe.tiling.tile_starts` (``n_input``, ``train``, ``overlap``) mapped to the
      map, ``min(round(t * kernel / train), n - kernel)``. A model that pads its input
      (to a multiple of its downsampling) has a longer map; the windows still lie over the
      tiles, not over the padding.
    * Otherwise (the site runs on a part of the input, as MPRNet's stage 1 does on quarter
      patches, or the input size is unknown): the map is tiled in its own frame with the
      tiles' overlap mapped to it, ``tile_starts(n, kernel, round(overlap * kernel /
      train))``; the windows then have the training extent but not exactly the tiles' places.

    The kernel is clipped to the map (one window when the map is no longer than it).
    """
    n, kernel = as_int(n, "n", minimum=1), as_int(kernel, "kernel", minimum=1)
    train, overlap = as_int(train, "train", minimum=1), as_int(overlap, "overlap", minimum=0)
    k, scale = min(kernel, n), kernel / train
    if n_input is not None and n >= math.floor(n_input * scale):
        return [min(round(t * scale), n - k) for t in tile_starts(n_input, train, overlap)]
    return tile_starts(n, k, min(round(overlap * scale), k - 1))


def window_stats(
    x: torch.Tensor,
    kind: str,
    window: Window,
    input_size: tuple[int, int] | None = None,
    attention: tuple[torch.Tensor, int] | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Statistics of a site's input ``x`` (N, C, H, W) over the windows of ``window``
    (placed by :func:`window_starts`; ``input_size`` = the model input's (H, W)).

    Each window's statistics are computed as the global site computes them on a map of
    that size: the mean, and for kind 'in' the biased std (``torch.var_mean``), in float32
    (float64 for float64 input). For kind 'attn', ``x`` is the query and key maps
    concatenated (N, 2C, H, W), ``attention`` = (temperature, heads), and the statistics
    are :data:`~tlc_probe.tlc.attention.ATTN_STATS`. Returns
    ``({"mean": (N, C, P)[, "std": ...]}, ys, xs)`` (``{stat: (N, C, P)}`` for 'attn')
    with ``P`` windows row-major and ``ys``, ``xs`` (P,) their centre pixels: the window
    covers rows ``y - (k_h - 1) // 2 .. y - (k_h - 1) // 2 + k_h - 1``, as in the probe's
    TLC records.
    """
    h, w = x.shape[-2:]
    kh, kw = min(window.kernel[0], h), min(window.kernel[1], w)
    (th, tw), (oh, ow) = window.train_size, window.overlap
    in_h, in_w = input_size if input_size is not None else (None, None)
    rows = window_starts(h, window.kernel[0], th, oh, in_h)
    cols = window_starts(w, window.kernel[1], tw, ow, in_w)
    xf = x.detach().float() if x.dtype != torch.float64 else x.detach()
    means, stds = [], []
    per_window: dict[str, list[torch.Tensor]] = {}
    for y0 in rows:
        for x0 in cols:
            patch = xf[..., y0 : y0 + kh, x0 : x0 + kw]
            if kind == "attn":
                if attention is None:
                    raise ValueError("kind 'attn' needs attention=(temperature, heads)")
                q, k = patch.chunk(2, dim=1)
                for stat, v in attention_stats(q, k, *attention).items():
                    per_window.setdefault(stat, []).append(v)
                continue
            if kind == "in":
                var, mean = torch.var_mean(patch, dim=(-2, -1), correction=0)
                stds.append(var.sqrt())
            else:
                mean = patch.mean(dim=(-2, -1))
            means.append(mean)
    if kind == "attn":
        out = {stat: torch.stack(vs, dim=-1) for stat, vs in per_window.items()}
    else:
        out = {"mean": torch.stack(means, dim=-1)}
    if kind == "in":
        out["std"] = torch.stack(stds, dim=-1)
    iy = torch.tensor(rows, device=x.device) + (kh - 1) // 2
    ix = torch.tensor(cols, device=x.device) + (kw - 1) // 2
    return out, iy.repeat_interleave(len(cols)), ix.repeat(len(rows))
