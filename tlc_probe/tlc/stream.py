"""Exact window means streamed in row bands that stay in cache (the fused TLC path).

:func:`~tlc_probe.tlc.box.box_mean_valid` makes about a dozen passes over full-size maps
(cumulative sums, differences, scaling), and on a CPU each pass over a map larger than
the cache costs a trip to memory. :func:`box_mean_bands` computes the same window means a
band of rows at a time, every intermediate the size of one band:

* a running vertical sum S (N, C, 1, W) holds, for each column, the sum of ``x - offset``
  over the k_h rows of the current windows. Moving the windows down by one row adds the
  row that enters and subtracts the row that leaves (the offset cancels in that
  difference), so a band of b rows is one difference of two b-row slices of ``x``, one
  cumulative sum down the band and one add of S;
* a cumulative sum along W of those vertical sums and one difference give the window
  sums, scaled and shifted back by the offset.

``x`` is read twice (entering and leaving rows) and nothing of full size is written. The
arithmetic differs from the integral image only in the order of float additions.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

#: Bytes of one band of the input, (N, C, b, W): sized for the last-level cache shared by
#: a few such buffers (measured on a 2-core EPYC, L2 2 MiB, L3 32 MiB: a 24-channel
#: 720x1280 map runs fastest at 32-row bands, a 96-channel one at 16).
BAND_BYTES = 6 << 20


def band_rows(shape: torch.Size | tuple[int, ...], itemsize: int, rows: int | None = None) -> int:
    """Rows per band for a map of ``shape`` (N, C, H, W) and ``itemsize`` bytes per value:
    ``rows`` if given, else about :data:`BAND_BYTES` per band, from 8 to 64 rows."""
    if rows is not None:
        if rows < 1:
            raise ValueError(f"rows per band must be >= 1, got {rows}")
        return int(rows)
    n, c, _, w = shape
    return max(8, min(64, BAND_BYTES // max(1, n * c * w * itemsize)))


def box_mean_bands(
    x: torch.Tensor,
    kernel: tuple[int, int],
    offset: torch.Tensor,
    rows: int | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Mean of every k_h x k_w window lying inside ``x``, a band of window rows at a time.

    Args:
        x: (N, C, H, W) finite float32 or float64 map (not checked: callers know).
        kernel: window (k_h, k_w), at most (H, W).
        offset: (N, C, 1, 1) value subtracted from each channel before summing, to keep
            float precision for maps with an offset; each channel's mean is best.
        rows: window rows per band (default :func:`band_rows`).

    Yields:
        (v0, means): ``means`` (N, C, b, W - k_w + 1) holds the means of the windows
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
    kh, kw = kernel
    vh, vw = h - kh + 1, w - kw + 1
    b_max = min(band_rows(x.shape, x.element_size(), rows), vh)
    diff = x.new_empty(n, c, b_max, w)
    means = x.new_empty(n, c, b_max, vw)
    running = (x[:, :, :kh] - offset).sum(dim=-2, keepdim=True)  # windows with top row 0
    scale = 1.0 / (kh * kw)
    for v0 in range(0, vh, b_max):
        b = min(b_max, vh - v0)
        d = diff[:, :, :b]
        if v0 == 0:
            d[:, :, :1].copy_(running)
            if b > 1:  # rows entering (k_h .. k_h+b-2) minus rows leaving (0 .. b-2)
                torch.sub(x[:, :, kh : kh + b - 1], x[:, :, : b - 1], out=d[:, :, 1:])
                d.cumsum_(dim=-2)
        else:
            torch.sub(x[:, :, v0 + kh - 1 : v0 + kh - 1 + b], x[:, :, v0 - 1 : v0 - 1 + b], out=d)
            d.cumsum_(dim=-2).add_(running)
        running.copy_(d[:, :, b - 1 : b])
        d.cumsum_(dim=-1)
        m = means[:, :, :b]
        m[..., :1].copy_(d[..., kw - 1 : kw])
        torch.sub(d[..., kw:], d[..., : w - kw], out=m[..., 1:])
        yield v0, m.mul_(scale).add_(offset)
