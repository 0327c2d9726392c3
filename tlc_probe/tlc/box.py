"""Box means over sliding windows in O(HW): the arithmetic behind every local site.

Two estimators of the mean over each k_h x k_w window of a feature map:

* :func:`box_mean` (exact): separable integral image. A cumulative sum along W gives
  every row's window sum by one subtraction; a cumulative sum of those along H gives
  the window sum. Each channel is centred on its global mean first, and each 1-D
  cumulative sum spans one row or column (not the whole map), so float32 keeps about
  float32 accuracy: on 720x1280 maps with an offset of 100 the error against a float64
  brute force is below 1e-6 of max|x| (windows 384, 96) and 3e-7 (window 7x5); see
  ``tests/test_box.py`` and ``benchmarks/local_pool.py``. Half precision is computed
  in float32.
* :func:`box_mean_fast` (``fast_imp``): the paper's sampling speed-up, done with block
  means instead of a strided pick so that its error has a guaranteed bound. The map is
  reduced to r_h x r_w block means, the integral image runs on that r_h*r_w times
  smaller grid, and the window means at block-aligned starts are interpolated
  (bilinearly) to every start in between.

Both compute the "valid" windows, expanded to the input size by replicate padding split
evenly on both sides (the extra pixel at the bottom/right), as the published TLC
implementation does. When a window covers the whole map the callers return the global
mean instead (see :mod:`tlc_probe.tlc.pooling`).

Non-finite values stay local. A cumulative sum carries one NaN or inf to every later
sum (and the centring mean to the whole channel), so a map holding any is computed on
its finite part, with zeros in place of the others, and each window that holds a
non-finite value then gets what a brute-force mean gives: NaN for a NaN or for both
infinities, +inf or -inf for one of them (:func:`nonfinite_windows`; three more box
sums, taken only on such maps). Finite maps are recognised without a pass of their own:
the exact path checks its centring means (N x C values), the fast path its block grid
(callers that know pass ``finite=True``); on a GPU that check is one host sync per call.

Speed. On a CPU these maps are memory-bound and a fresh tensor costs more than the
arithmetic (its pages are faulted in on first touch), so the exact pool allocates its
output and one row-sum buffer and works in place (cumulative sums, differences written
with ``out=``, padding filled in place); ``benchmarks/local_pool.py`` measures it.
The fast pool writes its output once, as M_h @ grid @ M_w^T, the interpolation and the
padding being one small matrix per axis. Under autograd an out-of-place path with the
same arithmetic is taken.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..tensors import check_map

#: Default minimum number of blocks per window axis in the fast variant. It fixes the
#: stride r (see :func:`fast_stride`) and with it the error bound (:func:`fast_error_bound`).
FAST_MIN_CELLS = 8


def clamp_window(kernel: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Window (k_h, k_w) clipped to the map size (H, W); both must be positive ints."""
    kh, kw = kernel
    if kh < 1 or kw < 1:
        raise ValueError(f"window must be >= 1 in both axes, got {kernel}")
    return min(kh, size[0]), min(kw, size[1])


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def replicate_to(valid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Replicate-pad a map of valid windows to ``size`` (H, W), split evenly on both
    sides with the extra pixel at the bottom/right."""
    h, w = size
    vh, vw = valid.shape[-2:]
    top, left = (h - vh) // 2, (w - vw) // 2
    pad = (left, w - vw - left, top, h - vh - top)
    return F.pad(valid, pad, mode="replicate") if any(pad) else valid


def valid_region(size: tuple[int, int], kernel: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of an (H, W) map where the valid windows sit once replicate-padded
    (the layout of :func:`replicate_to`); ``kernel`` must fit the map."""
    (h, w), (kh, kw) = size, kernel
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return slice(top, top + h - kh + 1), slice(left, left + w - kw + 1)


def replicate_bands(size: int, valid: int) -> list[tuple[slice, slice]]:
    """The row (or column) bands of a map of ``size`` replicate-padded from ``valid``
    (the layout of :func:`replicate_to`): (band of the full map, the
    valid rows it repeats), empty bands left out."""
    top = (size - valid) // 2
    bands = [
        (slice(0, top), slice(0, 1)),
        (slice(top, top + valid), slice(0, valid)),
        (slice(top + valid, size), slice(valid - 1, valid)),
    ]
    return [(full, v) for full, v in bands if full.stop > full.start]


def replicate_band_rows(v0: int, b: int, size: int, valid: int) -> list[tuple[slice, slice]]:
    """Rows of a map of ``size`` rows, replicate-padded from ``valid`` rows (the layout of
    :func:`replicate_to`), that a band of valid rows v0 .. v0 + b - 1 fills: (rows of the
    full map, rows of the band), the band itself, then the rows above the first valid row
    (first band) and below the last (last band)."""
    top = (size - valid) // 2
    pieces = [(slice(top + v0, top + v0 + b), slice(0, b))]
    if v0 == 0 and top:
        pieces.append((slice(0, top), slice(0, 1)))
    if v0 + b == valid and top + valid < size:
        pieces.append((slice(top + valid, size), slice(b - 1, b)))
    return pieces


def replicate_border_(out: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Fill ``out`` (N, C, H, W) outside :func:`valid_region` with copies of the region's
    edge, in place (the result of :func:`replicate_to` without a new tensor)."""
    rows, cols = valid_region(out.shape[-2:], kernel)
    band = out[..., rows, :]
    if cols.start:
        band[..., : cols.start].copy_(
            band[..., cols.start : cols.start + 1].expand_as(band[..., : cols.start])
        )
    if cols.stop < out.shape[-1]:
        right = band[..., cols.stop :]
        right.copy_(band[..., cols.stop - 1 : cols.stop].expand_as(right))
    if rows.start:
        top = out[..., : rows.start, :]
        top.copy_(out[..., rows.start : rows.start + 1, :].expand_as(top))
    if rows.stop < out.shape[-2]:
        bottom = out[..., rows.stop :, :]
        bottom.copy_(out[..., rows.stop - 1 : rows.stop, :].expand_as(bottom))
    return out


def _window_sums_into(c: torch.Tensor, k: int, dim: int, out: torch.Tensor) -> None:
    """Write the sums of k consecutive elements along ``dim``, from its cumulative sum
    ``c``, into ``out`` (``c``'s shape with n - k + 1 along ``dim``; may be a view)."""
    n = c.shape[dim]
    out.narrow(dim, 0, 1).copy_(c.narrow(dim, k - 1, 1))
    torch.sub(c.narrow(dim, k, n - k), c.narrow(dim, 0, n - k), out=out.narrow(dim, 1, n - k))


def _box_sums_(a: torch.Tensor, kernel: tuple[int, int], out: torch.Tensor) -> torch.Tensor:
    """Window sums of ``a`` (N, C, H, W) written into ``out`` (N, C, H-k_h+1, W-k_w+1),
    which may be a view of ``a``. ``a`` is overwritten (it holds the cumulative sums).

    Memory traffic is what costs on a CPU, and fresh tensors most of all (their pages are
    faulted in on first touch), so this allocates one (N, C, H, W-k_w+1) buffer and does
    everything else in place: about 1.8x faster than out-of-place steps on 96 x 360 x 640.
    """
    kh, kw = kernel
    n, c, h, w = a.shape
    a.cumsum_(dim=-1)
    rows = a.new_empty(n, c, h, w - kw + 1)
    _window_sums_into(a, kw, -1, rows)
    _window_sums_into(rows.cumsum_(dim=-2), kh, -2, out)
    return out


def _top_left(a: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """The (N, C, H-k_h+1, W-k_w+1) top-left view of ``a``: where valid sums are written."""
    return a[..., : a.shape[-2] - kernel[0] + 1, : a.shape[-1] - kernel[1] + 1]


def channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` (N, C, H, W) is laid out channels last (and not also plain
    contiguous, as a map with one channel or one pixel is)."""
    return (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def map_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format new maps made from ``x`` get: channels last when ``x`` is (a
    model converted with ``.to(memory_format=torch.channels_last)`` keeps its maps so,
    and a map of the other layout costs every later op a reorder), else contiguous."""
    return torch.channels_last if channels_last(x) else torch.contiguous_format


def channel_mm(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``weight`` (P, K) applied to every pixel of ``x`` (N, K, H, W): a new (N, P, H, W)
    map in ``x``'s layout (:func:`map_format`), one matrix product per image (a
    bias-free 1x1 convolution; on a CPU, for the few channels of an SE head on a large
    map, several times faster than oneDNN's convolution, which reorders the map into
    its blocked layout and back)."""
    n, k, h, w = x.shape
    if channels_last(x):  # (N, H, W, K) in memory: one (HW, K) @ (K, P) product per image
        size, fmt = (n, weight.shape[0], h, w), torch.channels_last
        out = torch.empty(size, dtype=x.dtype, device=x.device, memory_format=fmt)
        rows, cols = x.permute(0, 2, 3, 1), out.permute(0, 2, 3, 1)
        for i in range(n):
            torch.mm(rows[i].view(h * w, k), weight.t(), out=cols[i].view(h * w, -1))
        return out
    x = x.contiguous()
    out = torch.empty(n, weight.shape[0], h, w, dtype=x.dtype, device=x.device)
    for i in range(n):  # one product per image: torch.matmul would transpose and copy
        torch.mm(weight, x[i].view(k, h * w), out=out[i].view(-1, h * w))
    return out


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """True when autograd records ops on any of ``tensors`` (then no ``out=`` / in-place
    shortcuts may be taken)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _box_sums_autograd(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """:func:`_box_sums_` out of place, for inputs that need gradients."""
    kh, kw = kernel
    c = x.cumsum(dim=-1)
    rows = torch.cat([c[..., kw - 1 : kw], c[..., kw:] - c[..., :-kw]], dim=-1).cumsum(dim=-2)
    return torch.cat([rows[..., kh - 1 : kh, :], rows[..., kh:, :] - rows[..., :-kh, :]], dim=-2)


def box_sum_valid(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Sums over every k_h x k_w window lying inside ``x``: (N, C, H-k_h+1, W-k_w+1).

    ``kernel`` must already fit the map. Computed by two 1-D cumulative sums in ``x``'s
    dtype; callers centre ``x`` first when precision matters.
    """
    if needs_grad(x):
        return _box_sums_autograd(x, kernel)
    a = x.contiguous().clone()
    return _box_sums_(a, kernel, _top_left(a, kernel))


def box_mean_valid(
    x: torch.Tensor,
    kernel: tuple[int, int],
    centre: bool = True,
    overwrite: bool = False,
    *,
    finite: bool | None = None,
) -> torch.Tensor:
    """Mean of every k_h x k_w window lying inside ``x``: (N, C, H-k_h+1, W-k_w+1).

    ``kernel`` is clipped to (H, W). Computed in float32 (float64 for float64 input).
    ``centre`` subtracts each channel's global mean before the cumulative sums, which
    keeps float32 precise for maps with an offset; callers that pass centred maps skip
    that pass with ``False``. ``overwrite`` lets a caller hand over a scratch map (one of
    the compute dtype) to be used as workspace, which saves a copy; the result is then a
    view of it. Windows holding NaN / inf get the brute-force mean (see the module
    docstring); ``finite=True`` tells that ``x`` holds none (skips the check that
    ``centre=False`` otherwise costs).
    """
    check_map(x)
    kh, kw = clamp_window(kernel, x.shape[-2:])
    if needs_grad(x):
        if not (finite or all_finite(x)):
            return _with_nonfinite(x, (kh, kw), None, padded=False)
        return _box_mean_autograd(x, (kh, kw), centre)
    ws = _workspace(x, centre, overwrite, finite)
    if ws is None:
        return _with_nonfinite(x, (kh, kw), None, padded=False)
    a, offset = ws
    out = _box_sums_(a, (kh, kw), _top_left(a, (kh, kw)))
    out.mul_(1.0 / (kh * kw))
    return out if offset is None else out.add_(offset)


#: Relative floor of a window statistic, per compute dtype: a window sum of squares
#: below ``area * floor * (the channel's largest square on the map)`` (a variance below
#: ``floor`` times that square) is the box sums' own rounding — the integral images leave
#: ~1e-7 of that scale in float32 where the true value is 0 — so the window counts as
#: zero (local attention: a zero vector) or constant (local instance norm).
ZERO_FLOOR = {torch.float32: 1e-6, torch.float64: 1e-13}


def finite_peak(sq: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """The largest finite value of ``sq`` over ``dims`` (detached; NaN / inf left out, so
    that one bad pixel does not move the zero floor of every window of its channel)."""
    return sq.detach().nan_to_num(0.0, 0.0, 0.0).amax(dims)


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is finite (one pass over it)."""
    return bool(torch.isfinite(x).all())


def finite_centre(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Each channel's mean of ``x`` (N, C, H, W) -> ((N, C, 1, 1), whether ``x`` is
    finite). Where a channel holds NaN / inf the mean is taken over its finite values
    (zeros in place of the others), so that centring keeps the non-finite values where
    they are instead of spreading them over the channel."""
    offset = x.mean(dim=(-2, -1), keepdim=True)
    if all_finite(offset) or all_finite(x):  # (the second: a mere overflow of the sum)
        return offset, True
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    return torch.where(torch.isfinite(x), x, zero).mean(dim=(-2, -1), keepdim=True), False


def nonfinite_windows(
    x: torch.Tensor, kernel: tuple[int, int], padded: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which windows of ``x`` (N, C, H, W) hold non-finite values, as brute force sees
    them: boolean maps (nan, pos, neg) of the windows whose mean is NaN (a NaN, or both
    +inf and -inf), +inf and -inf. Valid windows, replicate-padded to (H, W) when
    ``padded`` (the layout of :func:`box_mean`). ``kernel`` must fit the map."""
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32

    def held(mask: torch.Tensor) -> torch.Tensor:
        # counts are small integers: exact in float32 (below 2^24 per map)
        s = box_sum_valid(mask.to(dt), kernel)
        return (replicate_to(s, x.shape[-2:]) if padded else s) > 0.5

    nan, pos, neg = held(x.isnan()), held(x == float("inf")), held(x == float("-inf"))
    nan |= pos & neg
    return nan, pos & ~nan, neg & ~nan


def fill_nonfinite(
    means: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """``means`` with +inf, -inf and NaN written where the (nan, pos, neg) masks of
    :func:`nonfinite_windows` say a brute-force mean has them."""
    nan, pos, neg = masks
    return (
        means.masked_fill(pos, float("inf"))
        .masked_fill(neg, float("-inf"))
        .masked_fill(nan, float("nan"))
    )


def _with_nonfinite(
    x: torch.Tensor, kernel: tuple[int, int], strides: tuple[int, int] | None, padded: bool
) -> torch.Tensor:
    """Window means of a map holding non-finite values: the finite part (zeros in place
    of the others; exact, or fast on ``strides``), then NaN / +-inf where brute force
    has them (:func:`nonfinite_windows`). In the compute dtype."""
    xf = x.to(_compute_dtype(x))
    z = torch.where(torch.isfinite(xf), xf, torch.zeros((), dtype=xf.dtype, device=xf.device))
    if strides is None or strides == (1, 1):
        means = (box_mean if padded else box_mean_valid)(z, kernel, finite=True)
    else:
        grid, m_h, m_w = fast_factors(z, kernel, strides, padded=padded)
        means = expand_factors(grid, m_h, m_w)
    return fill_nonfinite(means, nonfinite_windows(xf, kernel, padded))


def _box_mean_autograd(x: torch.Tensor, kernel: tuple[int, int], centre: bool) -> torch.Tensor:
    """Valid window means out of place (the same arithmetic), for inputs needing gradients."""
    xc = x.to(_compute_dtype(x))
    offset = xc.mean(dim=(-2, -1), keepdim=True) if centre else torch.zeros((), dtype=xc.dtype)
    return _box_sums_autograd(xc - offset, kernel) / (kernel[0] * kernel[1]) + offset


def _workspace(
    x: torch.Tensor, centre: bool, overwrite: bool, finite: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """A contiguous map of the compute dtype holding ``x`` (minus its channel means
    ``offset`` when ``centre``; offset None otherwise) that may be overwritten; None,
    with ``x`` untouched, when ``x`` holds a non-finite value (seen in the centring
    means, or by a pass over ``x`` without centring unless ``finite``)."""
    dt = _compute_dtype(x)
    xc = x.to(dt)
    offset = xc.mean(dim=(-2, -1), keepdim=True) if centre else None
    if not finite and not (all_finite(offset) if centre else all_finite(xc)):
        return None
    if overwrite and x.dtype == dt and x.is_contiguous():
        return (x if offset is None else x.sub_(offset)), offset
    a = torch.empty(x.shape, dtype=dt, device=x.device)
    if offset is None:
        return a.copy_(xc), None
    return torch.sub(xc, offset, out=a), offset


def box_mean(
    x: torch.Tensor,
    kernel: tuple[int, int],
    centre: bool = True,
    overwrite: bool = False,
    *,
    finite: bool | None = None,
) -> torch.Tensor:
    """Exact mean of every k_h x k_w window of ``x``, replicate-padded to ``x``'s size.

    Args:
        x: (N, C, H, W) map, any float dtype.
        kernel: window (k_h, k_w) in pixels of ``x``; clipped to (H, W).
        centre, overwrite, finite: as in :func:`box_mean_valid` (``overwrite`` returns
            ``x`` itself, filled with the means, except for a map holding NaN / inf).

    Returns:
        (N, C, H, W) tensor of ``x.dtype``: position (i, j) holds the mean over the
        window whose top-left corner is (clamp(i - top, 0, H - k_h), clamp(j - left, 0,
        W - k_w)), with top = (k_h - 1) // 2 and left = (k_w - 1) // 2; NaN / +-inf where
        that window holds non-finite values, as a brute-force mean. One new map is
        allocated (plus a row-sum buffer); padding is written in place.
    """
    check_map(x)
    kh, kw = clamp_window(kernel, x.shape[-2:])
    if needs_grad(x):
        if not (finite or all_finite(x)):
            return _with_nonfinite(x, (kh, kw), None, padded=True).to(x.dtype)
        return replicate_to(_box_mean_autograd(x, (kh, kw), centre), x.shape[-2:]).to(x.dtype)
    ws = _workspace(x, centre, overwrite, finite)
    if ws is None:
        return _with_nonfinite(x, (kh, kw), None, padded=True).to(x.dtype)
    a, offset = ws
    inner = a[(..., *valid_region(a.shape[-2:], (kh, kw)))]
    _box_sums_(a, (kh, kw), inner).mul_(1.0 / (kh * kw))
    if offset is not None:
        inner.add_(offset)
    return replicate_border_(a, (kh, kw)).to(x.dtype)


def fast_stride(k: int, min_cells: int = FAST_MIN_CELLS) -> int:
    """Block stride r for a window of ``k`` pixels in the fast variant.

    r is the largest divisor of ``k`` with k / r >= ``min_cells`` (1 if there is none),
    so a window is exactly k / r whole blocks and never fewer than ``min_cells``.
    Examples (min_cells=8): k=96 -> 12, k=48 -> 6, k=24 -> 3, k=384 -> 48, k=7 -> 1.
    """
    if k < 1 or min_cells < 1:
        raise ValueError(f"need k >= 1 and min_cells >= 1, got k={k}, min_cells={min_cells}")
    for r in range(k // min_cells, 1, -1):
        if k % r == 0:
            return r
    return 1


def fast_error_bound(kernel: tuple[int, int], strides: tuple[int, int]) -> float:
    """Worst-case |fast - exact| of a window mean, as a fraction of the map's value range.

    The fast variant knows the window means only at block-aligned starts and
    interpolates linearly between the two nearest ones per axis. A window shifted by d
    pixels along one axis (and clipped to the map) shares all but d/k of the larger
    window's pixels with the exact one, so its mean is off by at most (d/k)(hi - lo);
    with weights (1 - t/r, t/r) on shifts t and r - t the interpolated error is at most
    2 t (r - t) / (r k) <= r / (2k) of the range per axis. Hence the bound
    r_h/(2 k_h) + r_w/(2 k_w) (an axis with r = 1 adds 0): at most 1/8 with the default
    min_cells=8, and 0 for maps that are linear across each block.
    """
    (kh, kw), (rh, rw) = kernel, strides
    return (rh / (2 * kh) if rh > 1 else 0.0) + (rw / (2 * kw) if rw > 1 else 0.0)


def _fast_grid(x: torch.Tensor, kernel: tuple[int, int], strides: tuple[int, int]) -> torch.Tensor:
    """Means of the windows starting at block-aligned positions: (N, C, G_h, G_w), float64.

    The map is reduced to (r_h x r_w) block means (partial at the bottom/right border,
    where sums and pixel counts are both tracked, so every value is an exact mean of the
    pixels it covers); grid point (g, f) is the window starting at (g r_h, f r_w).
    """
    (h, w), (kh, kw), (rh, rw) = x.shape[-2:], kernel, strides
    xc = x.to(_compute_dtype(x))
    if channels_last(xc):  # reduce the (N, H, W, C) view, channels innermost: no copy
        t = xc.permute(0, 2, 3, 1)
        sums = _block_sums(_block_sums(t, rh, 1), rw, 2).permute(0, 3, 1, 2).double()
    else:
        sums = _block_sums(_block_sums(xc, rh, -2), rw, -1).double()
    nbh, nbw = sums.shape[-2:]
    cnt_h = torch.full((nbh,), float(rh), dtype=torch.float64, device=x.device)
    cnt_h[-1] = h - (nbh - 1) * rh
    cnt_w = torch.full((nbw,), float(rw), dtype=torch.float64, device=x.device)
    cnt_w[-1] = w - (nbw - 1) * rw
    counts = cnt_h[:, None] * cnt_w[None, :]
    kb = (kh // rh, kw // rw)
    return box_sum_valid(sums, kb) / box_sum_valid(counts[None, None], kb)


def _block_sums(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sums of consecutive r-element blocks along ``dim``, the last block partial:
    ceil(n / r) along ``dim``. A reshape and a sum read x once (twice as fast as
    ``avg_pool2d`` here)."""
    dim = dim % x.dim()
    n = x.shape[dim]
    full = n // r * r
    head = x.narrow(dim, 0, full)
    shape = (*x.shape[:dim], full // r, r, *x.shape[dim + 1 :])
    parts = [head.reshape(shape).sum(dim=dim + 1)] if full else []
    if full < n:
        parts.append(x.narrow(dim, full, n - full).sum(dim=dim, keepdim=True))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


def _interp_matrix(rows: torch.Tensor, r: int, n_grid: int, dtype: torch.dtype) -> torch.Tensor:
    """(len(rows), n_grid) weights of the linear interpolation, on the block grid, of the
    window starting at each of ``rows`` (valid starts; start s sits at grid coordinate
    s / r)."""
    u = rows.to(torch.float64) / r
    lo = u.floor().long().clamp_(max=n_grid - 1)
    frac = u - lo
    hi = (lo + 1).clamp_(max=n_grid - 1)
    m = torch.zeros(len(rows), n_grid, dtype=torch.float64, device=rows.device)
    idx = torch.arange(len(rows), device=rows.device)
    m.index_put_((idx, lo), 1.0 - frac, accumulate=True)
    m.index_put_((idx, hi), frac, accumulate=True)
    return m.to(dtype)


def fast_factors(
    x: torch.Tensor, kernel: tuple[int, int], strides: tuple[int, int], padded: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fast variant in factored form: (grid (N, C, G_h, G_w), M_h, M_w), all in the
    compute dtype, with M_h @ grid @ M_w^T the window means at every valid start
    (``padded`` False: (N, C, H-k_h+1, W-k_w+1)) or replicate-padded to (N, C, H, W).

    Interpolation and padding are one linear map per axis (M_h: (rows, G_h), M_w:
    (cols, G_w)), so the full map costs two small matrix products and a single write
    (bilinear interpolation followed by a pad writes it twice). ``kernel`` must fit.
    """
    (h, w), (kh, kw), (rh, rw) = x.shape[-2:], kernel, strides
    grid = _fast_grid(x, kernel, strides)
    dt = _compute_dtype(x)
    if padded:
        rows, cols = valid_region((h, w), kernel)
        starts_h = (torch.arange(h, device=x.device) - rows.start).clamp_(0, h - kh)
        starts_w = (torch.arange(w, device=x.device) - cols.start).clamp_(0, w - kw)
    else:
        starts_h = torch.arange(h - kh + 1, device=x.device)
        starts_w = torch.arange(w - kw + 1, device=x.device)
    m_h = _interp_matrix(starts_h, rh, grid.shape[-2], dt)
    m_w = _interp_matrix(starts_w, rw, grid.shape[-1], dt)
    return grid.to(dt), m_h, m_w


def expand_factors(grid: torch.Tensor, m_h: torch.Tensor, m_w: torch.Tensor) -> torch.Tensor:
    """M_h @ grid @ M_w^T: (N, C, G_h, G_w) -> (N, C, rows of M_h, rows of M_w)."""
    return torch.matmul(m_h, torch.matmul(grid, m_w.T))


def fast_window(
    x: torch.Tensor, kernel: tuple[int, int], strides: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The window clipped to ``x`` (N, C, H, W) and the checked block strides (default
    :func:`fast_stride` per axis): ((k_h, k_w), (r_h, r_w)). Raises ``ValueError`` on a
    bad map or strides that do not divide the window."""
    check_map(x)
    kh, kw = clamp_window(kernel, x.shape[-2:])
    rh, rw = strides if strides is not None else (fast_stride(kh), fast_stride(kw))
    if rh < 1 or rw < 1 or kh % rh or kw % rw:
        raise ValueError(f"strides {(rh, rw)} must be positive and divide the window {(kh, kw)}")
    return (kh, kw), (rh, rw)


def box_mean_fast_valid(
    x: torch.Tensor, kernel: tuple[int, int], strides: tuple[int, int] | None = None
) -> torch.Tensor:
    """:func:`box_mean_valid` approximated on an r_h x r_w block grid (see
    :func:`box_mean_fast`): (N, C, H-k_h+1, W-k_w+1) in float32 (float64 for float64)."""
    kernel, strides = fast_window(x, kernel, strides)
    if strides == (1, 1):
        return box_mean_valid(x, kernel)
    grid, m_h, m_w = fast_factors(x, kernel, strides, padded=False)
    if not all_finite(grid):
        return _with_nonfinite(x, kernel, strides, padded=False)
    return expand_factors(grid, m_h, m_w)


def box_mean_fast(
    x: torch.Tensor, kernel: tuple[int, int], strides: tuple[int, int] | None = None
) -> torch.Tensor:
    """Approximate :func:`box_mean` on an r_h x r_w block grid (the ``fast_imp`` variant).

    Args:
        x: (N, C, H, W) map.
        kernel: window (k_h, k_w) in pixels; clipped to (H, W).
        strides: block size (r_h, r_w); by default :func:`fast_stride` of each axis of
            the clipped window. Each r must divide its window.

    Returns:
        (N, C, H, W) tensor of ``x.dtype``, within :func:`fast_error_bound` x (max - min
        of the channel) of :func:`box_mean`: the window means at block-aligned starts,
        interpolated linearly in between and replicate-padded as :func:`box_mean`. A
        map holding NaN / inf: NaN / +-inf exactly where :func:`box_mean` has them, the
        other windows from its finite part (zeros in place of the non-finite values;
        the bound then holds for that map's range).
    """
    kernel, strides = fast_window(x, kernel, strides)
    if strides == (1, 1):
        return box_mean(x, kernel)
    grid, m_h, m_w = fast_factors(x, kernel, strides)
    if not all_finite(grid):  # block sums carry every NaN / inf of the map
        return _with_nonfinite(x, kernel, strides, padded=True).to(x.dtype)
    return expand_factors(grid, m_h, m_w).to(x.dtype)
