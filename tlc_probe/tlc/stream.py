"""Exact window means streamed in row bands that stay in cache (the fused TLC path).

:func:`~tlc_probe.tlc.box.box_mean_valid` makes about a dozen passes over full-size maps
(cumulative sums, differences, scaling), and on a CPU each pass over a map larger than
the cache costs a trip to memory. :func:`box_mean_bands` computes the same window means a
band of rows at a time, every intermediate the size of one band:

* a running vertical sum S (N, C, 1, W) holds, for each column, the sum of ``x - offset``
  over the k_h rows of the current windows. Moving the windows down by one row adds the
  row that enters and subtracts the row that leaves (the offset cancels in that
  difference), so a band of b rows is one difference of two b-row slices of ``x`` and
  a cumulative sum down the band started from S;
* a cumulative sum along W of those vertical sums and one difference give the window
  sums, scaled and shifted back by the offset.

``x`` is read twice (entering and leaving rows) and nothing of full size is written (but
the C / r-channel map of a projection, below). The arithmetic differs from the integral
image only in the order of float additions.

A squeeze-excitation head usually starts with a 1x1 convolution that narrows the channels
(C -> C / r). Means are linear, so that convolution can act on ``x`` before the window sums
instead of on the means (``project``): one matrix product writes the C / r-channel map,
and every band operation then works on C / r channels. The first windows' column sums
and the centring offset come from one pass (:func:`top_sums_and_mean`).
:func:`window_sum_bands` does the same for a map given by its rows, so that a map of
products (local channel attention) is made a few rows at a time and never held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .box import channel_mm

#: Bytes of one band of the input, (N, C, b, W): sized for the last-level cache shared by
#: a few such buffers (measured on a 2-core EPYC, L2 2 MiB, L3 32 MiB: a 24-channel
#: 720x1280 map runs fastest at 32-row bands, a 96-channel one at 16).
BAND_BYTES = 6 << 20


def band_rows(shape: torch.Size | tuple[int, ...], itemsize: int, rows: int | None = None) -> int:
    """Rows per band for a map of ``shape`` (N, C, H, W) and ``itemsize`` bytes per value:
    ``rows`` if given, else about :data:`BAND_BYTES` per band, from 1 to 64 rows."""
    if rows is not None:
        if rows < 1:
            raise ValueError(f"rows per band must be >= 1, got {rows}")
        return int(rows)
    n, c, _, w = shape
    return max(1, min(64, BAND_BYTES // max(1, n * c * w * itemsize)))


def box_mean_bands(
    x: torch.Tensor,
    kernel: tuple[int, int],
    offset: torch.Tensor,
    rows: int | None = None,
    project: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    top: torch.Tensor | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Mean of every k_h x k_w window lying inside ``x``, a band of window rows at a time.

    Args:
        x: (N, C, H, W) finite float32 or float64 map (not checked: callers know).
        kernel: window (k_h, k_w), at most (H, W).
        offset: (N, C, 1, 1) value subtracted from each channel before summing, to keep
            float precision for maps with an offset; each channel's mean is best.
        rows: window rows per band (default :func:`band_rows`).
        project: ``(weight, bias)``, a (K, C) matrix and a (K,) vector or None, of
            ``x``'s dtype: the window means of ``weight @ x + bias`` (per pixel) instead
            of ``x``'s, the projected (N, K, H, W) map made first. A mean is linear, so
            these are ``weight @ means + bias`` up to float rounding; with K < C every
            band operation works on fewer channels.
        top: (N, C, 1, W) the sums of ``x``'s first k_h rows, if already made
            (:func:`top_sums_and_mean`); else they are summed here.

    Yields:
        (v0, means): ``means`` (N, C or K, b, W - k_w + 1) holds the means of the windows
        whose top rows are v0 .. v0 + b - 1, for consecutive bands covering the
        H - k_h + 1 valid rows; the same numbers as
        :func:`~tlc_probe.tlc.box.box_mean_valid` rows v0 .. v0 + b - 1 up to float
        rounding. ``means`` is a buffer reused for the next band (and may be
        overwritten by the consumer): use it before asking for the next.

    Example:
        >>> x = torch.rand(1, 2, 10, 9)
        >>> bands = list(box_mean_bands(x, (4, 3), x.mean((-2, -1), keepdim=True), rows=3))
        >>> [(v0, tuple(m.shape)) for v0, m in bands]  # doctest: +SKIP
        [(0, (1, 2, 3, 7)), (3, (1, 2, 3, 7)), (6, (1, 2, 1, 7))]
    """
    n, c, h, w = x.shape
    offset_out = offset
    if project is not None:  # centred, the bias cancels: sum(W x + b - (W o + b)) = W sum(x - o)
        weight, bias = project
        k = weight.shape[0]
        x = channel_mm(weight, x)
        offset = (weight @ offset.reshape(n, c, 1)).reshape(n, k, 1, 1)
        if top is not None:
            top = (weight @ top.reshape(n, c, w)).reshape(n, k, 1, w)
        offset_out = offset if bias is None else offset + bias.reshape(1, k, 1, 1)
    b = band_rows(x.shape, x.element_size(), rows)
    rows_of = lambda a, z: x[:, :, a:z]  # noqa: E731
    bands = window_sum_bands(rows_of, tuple(x.shape), kernel, offset, b, top=top)
    scale = 1.0 / (kernel[0] * kernel[1])
    for v0, sums in bands:
        yield v0, sums.mul_(scale).add_(offset_out)


def top_sums_and_mean(x: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (N, C, H, W) -> (the sums of its first ``rows`` rows (N, C, 1, W), each
    channel's mean (N, C, 1, 1)) in one pass over ``x``: the centring offset and the
    first windows' column sums of :func:`box_mean_bands`."""
    h, w = x.shape[-2:]
    top = x[:, :, :rows].sum(dim=-2, keepdim=True)
    total = top.sum(dim=-1, keepdim=True)
    if rows < h:
        total = total + x[:, :, rows:].sum(dim=(-2, -1), keepdim=True)
    return top, total / (h * w)


def window_sum_bands(
    rows_of: Callable[[int, int], torch.Tensor],
    shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    offset: torch.Tensor,
    rows: int,
    top: torch.Tensor | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Sums of ``map - offset`` over every k_h x k_w window lying inside a map given by
    its rows, a band of window rows at a time (see :func:`box_mean_bands`).

    Args:
        rows_of: ``rows_of(a, z)`` -> rows a .. z - 1 of the (N, K, H, W) map, finite,
            of ``offset``'s dtype and device (a view, or computed on demand: each row is
            asked for twice, when its windows start and when they end, at most ``rows``
            rows a call; no more than two results are in use at once, so two buffers
            taken in turn suffice).
        shape: (N, K, H, W) of the map.
        kernel: window (k_h, k_w), at most (H, W).
        offset: (N, K, 1, 1) subtracted from each channel before summing (float32 or
            float64; each channel's mean keeps the most precision).
        rows: window rows per band.
        top: (N, K, 1, W) the sums of the map's first k_h rows (not centred), if known.

    Yields:
        (v0, sums), ``sums`` (N, K, b, W - k_w + 1) the centred window sums of the
        windows with top rows v0 .. v0 + b - 1; a buffer reused for the next band.
    """
    n, c, h, w = shape
    kh, kw = kernel
    vh, vw = h - kh + 1, w - kw + 1
    b_max = max(1, min(rows, vh))
    diff = offset.new_empty(n, c, b_max, w)  # the rows entering minus those leaving
    sums = offset.new_empty(n, c, b_max, vw)
    if top is None:  # windows with top row 0
        top = offset.new_zeros(n, c, 1, w)
        for a in range(0, kh, b_max):
            top.add_(rows_of(a, min(kh, a + b_max)).sum(dim=-2, keepdim=True))
    running = top - offset * kh
    for v0 in range(0, vh, b_max):
        b = min(b_max, vh - v0)
        d = diff[:, :, :b]
        if v0 == 0:
            d[:, :, :1].zero_()
            if b > 1:  # rows entering (k_h .. k_h+b-2) minus rows leaving (0 .. b-2)
                torch.sub(rows_of(kh, kh + b - 1), rows_of(0, b - 1), out=d[:, :, 1:])
        else:
            entering = rows_of(v0 + kh - 1, v0 + kh - 1 + b)
            torch.sub(entering, rows_of(v0 - 1, v0 - 1 + b), out=d)
        d[:, :, 0].add_(running[:, :, 0])
        d.cumsum_(dim=-2)  # the running sum down the band
        running.copy_(d[:, :, b - 1 : b])
        d.cumsum_(dim=-1)
        m = sums[:, :, :b]
        m[..., :1].copy_(d[..., kw - 1 : kw])
        torch.sub(d[..., kw:], d[..., : w - kw], out=m[..., 1:])
        yield v0, m
