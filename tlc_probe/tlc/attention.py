"""Channel ("transposed") attention made local: TLC for Restormer's MDTA.

Restormer's attention mixes channels, not positions. Per head, with c channels of the
query, key and value maps q, k, v (each (c, H, W)), it aggregates the whole map::

    G_ij = sum_s q_i(s) k_j(s),   |q_i|^2 = sum_s q_i(s)^2,   |k_j|^2 likewise
    A_ij = softmax_j( T * G_ij / (max(|q_i|, eps) * max(|k_j|, eps)) )   (eps = 1e-12)
    out_i(p) = sum_j A_ij v_j(p)

(``F.normalize`` of q and k over the positions, then ``softmax(T * q @ k^T) @ v``.) The
c x c matrix A is the site's statistic: it is one matrix for the whole map, so on a whole
image it is aggregated over a far larger region than on a training crop.

The local version gives every position p its own matrix A(p), computed exactly as above
but with the sums over the window W(p) of the site's training extent x base/train: the
same windows as every other TLC site (valid windows, replicate-padded at the border; see
:mod:`tlc_probe.tlc.box`). Where the window covers the map, A(p) = A: the local module is
the global one at training size.

Three implementations, chosen by measurement (``benchmarks/tlc_overhead.py``):

* exact (:func:`local_channel_attention`): every G_ij(p) is a box sum of the product map
  q_i k_j, taken with the integral images of :func:`tlc_probe.tlc.box.box_mean_valid`
  (centred, so float32 stays precise), a block of query channels at a time so that the
  c x c x H x W products never exist at once (``max_elements``). It costs about
  10 elementwise passes over c^2 H W values per head: memory-bound, several times the
  block's convolutions on a CPU.
* exact in row bands (:func:`local_channel_attention_bands`, ``fused``; not under
  autograd): the same sums streamed a few rows at a time
  (:func:`tlc_probe.tlc.stream.window_sum_bands`, the products made on demand), each
  band's attention applied to its rows and dropped, so every pass stays in cache:
  Restormer-tiny at 720x1280 3.0x -> 1.4x of whole-image inference. Still about a dozen
  elementwise passes over c^2 values per position where the global attention does two
  matrix products, which bounds what any exact local attention costs here.
* fast (:func:`local_channel_attention_fast`, ``fast_imp``): the map is cut into r_h x r_w
  cells (r from :func:`tlc_probe.tlc.box.fast_stride`, zero-padded at the bottom/right to
  whole cells); each cell's c x c Gram matrix is one matrix product (compute-bound, as
  the global attention's own ``q @ k^T``), window Grams are box sums over whole cells,
  and A is evaluated at cell-aligned windows only. Each position then gets the bilinear
  blend of the attention of its two nearest window starts per axis, applied to its own
  values: out(p) = sum_g w_g(p) A_g v(p), a few matrix products per row of cells. Exact
  where a window start is cell-aligned; elsewhere the blend of the two nearest
  cell-aligned windows (at the bottom/right border, where H - k is no multiple of r, the
  last of them reaches into the zero padding and so sums a shorter window).
  ``tests/test_attention.py`` states the error against a brute-force windowed reference
  (1.9 % of the output range on a smooth map, window 24, r = 3).

:func:`attention_stats` and :func:`attention_stats_at` give the probe its per-channel
statistics of this aggregation (:data:`ATTN_STATS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..tensors import check_map
from .box import (
    FAST_MIN_CELLS,
    ZERO_FLOOR,
    box_mean_valid,
    clamp_window,
    finite_peak,
    needs_grad,
    replicate_band_rows,
    replicate_bands,
    replicate_to,
)
from .stream import band_rows, window_sum_bands
from .window import LocalWindow

#: ``F.normalize``'s default: the smallest norm a query or key channel is divided by.

#: Statistics the probe records at an attention site, per channel i (over the extent):
#: ``q_rms`` = sqrt(mean_s q_i(s)^2) and ``k_rms`` (the norms the normalisation divides
#: by, over the square root of the number of positions, so that extents of different
#: size compare), and ``logit_mean`` = mean_j T * q_i.k_j / (|q_i| |k_j|) (the mean of
#: query channel i's row of attention logits).
ATTN_STATS: tuple[str, ...] = ("q_rms", "k_rms", "logit_mean")


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    n, c, h, w = t.shape
    if c % heads:
        raise ValueError(f"{c} channels do not split into {heads} heads")
    return t.reshape(n, heads, c // heads, h, w)


def _temperature(temperature: torch.Tensor, heads: int) -> torch.Tensor:
    return temperature.reshape(heads)


def channel_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: torch.Tensor, heads: int
) -> torch.Tensor:
    """Global MDTA: q, k, v (N, C, H, W), ``temperature`` (heads, 1, 1) -> (N, C, H, W)."""
    n, c, h, w = q.shape
    qh, kh, vh = (t.reshape(n, heads, c // heads, h * w) for t in (q, k, v))
    qh, kh = F.normalize(qh, dim=-1), F.normalize(kh, dim=-1)
    attn = (qh @ kh.transpose(-2, -1) * temperature.reshape(heads, 1, 1)).softmax(dim=-1)
    return (attn @ vh).reshape(n, c, h, w)


def attention_matrix(
    q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor, heads: int
) -> torch.Tensor:
    """The global attention matrices of q, k (N, C, H, W): (N, heads, c, c), rows summing
    to 1 (what :func:`channel_attention` applies to v)."""
    n, c, h, w = q.shape
    qh, kh = (F.normalize(t.reshape(n, heads, c // heads, h * w), dim=-1) for t in (q, k))
    return (qh @ kh.transpose(-2, -1) * temperature.reshape(heads, 1, 1)).softmax(dim=-1)


def window_norms(sums: torch.Tensor, peak: torch.Tensor, area: int) -> torch.Tensor:
    """Norms sqrt(sum) of window sums of squares ``sums``, 0 where a sum is below the
    rounding floor :data:`ZERO_FLOOR` of ``area`` times ``peak`` (the channel's largest
    square on the map, broadcastable to ``sums``). Differentiable, with zero gradient
    where the norm is floored."""
    floor = peak.to(sums.dtype) * (area * ZERO_FLOOR.get(sums.dtype, 1e-6))
    keep = sums > floor
    return torch.where(keep, torch.where(keep, sums, 1.0).sqrt(), 0.0)


def squares(t: torch.Tensor) -> torch.Tensor:
    """``t ** 2``, in float32 for a half-precision ``t`` (an fp16 square overflows past
    |t| = 256)."""
    return (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).square()


def scaled_inverse(nq: torch.Tensor, nk: torch.Tensor, temp: torch.Tensor) -> torch.Tensor:
    """``temp / (nq * nk)`` where both norms are positive, 0 where either is zero (a zero
    vector's cosine with anything is 0, as brute force's normalisation makes it)."""
    denom = nq * nk
    keep = denom > 0
    return torch.where(keep, temp / torch.where(keep, denom, 1.0), 0.0)


def _window_sums(t: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Sums over every valid k_h x k_w window of ``t`` (N, K, H, W) (kernel fitting the map):
    (N, K, H-k_h+1, W-k_w+1), from centred integral images (float32 keeps precision)."""
    return box_mean_valid(t, kernel) * (kernel[0] * kernel[1])


def _window_grams(
    qh: torch.Tensor, kh: torch.Tensor, kernel: tuple[int, int], max_elements: int
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Window sums of the products q_i k_j, a block of query channels at a time.

    qh, kh: (N, heads, c, H, W); ``kernel`` fits the map. Yields (head, i0, g) with g
    (N, r, c, H-k_h+1, W-k_w+1) = sum over each valid window of q_{i0+a} k_b, r query
    channels chosen so that r x c x N x H x W <= ``max_elements`` (at least one).
    """
    n, heads, c, h, w = qh.shape
    hv, wv = h - kernel[0] + 1, w - kernel[1] + 1
    rows = max(1, min(c, max_elements // max(1, c * n * h * w)))
    for hd in range(heads):
        for i0 in range(0, c, rows):
            r = min(c, i0 + rows) - i0
            prod = qh[:, hd, i0 : i0 + r, None] * kh[:, hd, None]  # (N, r, c, H, W)
            g = _window_sums(prod.reshape(n, r * c, h, w), kernel)
            yield hd, i0, g.reshape(n, r, c, hv, wv)


def local_channel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    temperature: torch.Tensor,
    heads: int,
    kernel: tuple[int, int],
    max_elements: int = 1 << 25,
) -> torch.Tensor:
    """Exact local MDTA: every position's attention from its own k_h x k_w window.

    Args:
        q, k, v: (N, C, H, W) query, key and value maps (C divisible by ``heads``).
        temperature: (heads, 1, 1) logit scale.
        heads: number of heads.
        kernel: window (k_h, k_w) in pixels of this map; clipped to (H, W).
        max_elements: largest product block (query channels x c x N x H x W) held at once.

    Returns:
        (N, C, H, W) in the compute dtype of :func:`box_mean_valid` cast back to ``v``'s.
        Differentiable (autograd through the box sums).
    """
    n, c_all, h, w = q.shape
    kh, kw = clamp_window(kernel, (h, w))
    qh, kh_, vh = _heads(q, heads), _heads(k, heads), _heads(v, heads)
    c = qh.shape[2]
    hv, wv = h - kh + 1, w - kw + 1
    area = kh * kw
    sq, sk = squares(qh), squares(kh_)
    nq = _window_sums(sq.reshape(n, c_all, h, w), (kh, kw)).reshape(n, heads, c, hv, wv)
    nk = _window_sums(sk.reshape(n, c_all, h, w), (kh, kw)).reshape(n, heads, c, hv, wv)
    nq = window_norms(nq, finite_peak(sq, (-2, -1))[..., None, None], area)
    nk = window_norms(nk, finite_peak(sk, (-2, -1))[..., None, None], area)
    temp = _temperature(temperature, heads)
    outs = []
    for hd, i0, g in _window_grams(qh, kh_, (kh, kw), max_elements):
        r = g.shape[1]
        scale = scaled_inverse(nq[:, hd, i0 : i0 + r, None], nk[:, hd, None], temp[hd])
        logits = g * scale.to(g.dtype)
        a = logits.softmax(dim=2).reshape(n, r * c, hv, wv)
        a = replicate_to(a, (h, w)).reshape(n, r, c, h, w)
        outs.append((a * vh[:, hd, None].to(a.dtype)).sum(dim=2))
    return torch.cat(outs, dim=1).to(v.dtype)


def local_channel_attention_bands(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    temperature: torch.Tensor,
    heads: int,
    kernel: tuple[int, int],
    rows: int | None = None,
) -> torch.Tensor | None:
    """Exact local MDTA computed in row bands that stay in cache (no autograd).

    The numbers of :func:`local_channel_attention` up to float rounding, without its
    c x c x H x W intermediates: per head, the window sums of the products q_i k_j and of
    q_i^2, k_j^2 are streamed by :func:`~tlc_probe.tlc.stream.window_sum_bands` (the
    products computed a few rows at a time, each row twice: when its windows start and
    when they end; centred on their global means, one matrix product), each band's
    attention is applied to the values of the rows it covers (border rows and columns
    take the edge windows' attention, as replicate padding does), and the band is
    dropped.

    Args:
        q, k, v: (N, C, H, W) finite float32 / float64 maps (C divisible by ``heads``).
        temperature, heads, kernel: as in :func:`local_channel_attention`.
        rows: window rows per band (default: about
            :data:`~tlc_probe.tlc.stream.BAND_BYTES` of products per band).

    Returns:
        (N, C, H, W) of ``v``'s dtype; ``None`` when a global product mean is not finite
        (NaN / inf in q or k: the caller then takes :func:`local_channel_attention`).
    """
    n, c_all, h, w = q.shape
    kh, kw = clamp_window(kernel, (h, w))
    # each channel's rows contiguous: the channels of a channels-last qkv map (and its
    # chunks) are interleaved, and every band operation below would stride over them
    q, k, v = _planar(q), _planar(k), _planar(v)
    qh, kh_, vh = _heads(q, heads), _heads(k, heads), _heads(v, heads)
    c = qh.shape[2]
    n_prod = c * c + 2 * c  # q_i k_j, then q_i^2, then k_j^2
    temp = _temperature(temperature, heads)
    vw = w - kw + 1
    valid_rows = h - kh + 1
    out = torch.empty_like(v)
    out_h = _heads(out, heads)
    band = band_rows((n, n_prod, h, w), q.element_size(), rows)
    spare = [q.new_empty(n, n_prod, band, w) for _ in range(2)]  # the rows entering, leaving
    for hd in range(heads):
        qq, kk, vv = qh[:, hd], kh_[:, hd], vh[:, hd]
        qf, kf = qq.reshape(n, c, h * w), kk.reshape(n, c, h * w)
        means = [
            (qf @ kf.transpose(1, 2)).reshape(n, c * c),
            torch.linalg.vector_norm(qf, dim=-1).square_(),
            torch.linalg.vector_norm(kf, dim=-1).square_(),
        ]
        offset = torch.cat(means, dim=1).div_(h * w)[..., None, None]  # (N, K, 1, 1)
        if not torch.isfinite(offset).all():
            return None
        peak_q = finite_peak(squares(qq), (-2, -1))[..., None, None]  # (N, c, 1, 1)
        peak_k = finite_peak(squares(kk), (-2, -1))[..., None, None]

        def products(a: int, z: int, qq=qq, kk=kk) -> torch.Tensor:
            spare.append(spare.pop(0))  # the two buffers in turn
            buf = spare[-1][:, :, : z - a]
            qa, ka = qq[:, :, a:z], kk[:, :, a:z]
            torch.mul(qa[:, :, None], ka[:, None], out=buf[:, : c * c].view(n, c, c, z - a, w))
            torch.mul(qa, qa, out=buf[:, c * c : c * c + c])
            torch.mul(ka, ka, out=buf[:, c * c + c :])
            return buf

        sums = window_sum_bands(products, (n, n_prod, h, w), (kh, kw), offset, band)
        for v0, s in sums:
            s.add_(offset * (kh * kw))
            b = s.shape[-2]
            g = s[:, : c * c].reshape(n, c, c, b, vw)
            nq = window_norms(s[:, c * c : c * c + c], peak_q, kh * kw)
            nk = window_norms(s[:, c * c + c :], peak_k, kh * kw)
            attn = _softmax_rows(g.mul_(scaled_inverse(nq[:, :, None], nk[:, None], temp[hd])))
            for out_rows, a_rows in replicate_band_rows(v0, b, h, valid_rows):
                for cols, a_cols in replicate_bands(w, vw):
                    target = out_h[:, hd, :, out_rows, cols]
                    _attend_into(target, attn[..., a_rows, a_cols], vv[..., out_rows, cols])
    return out


def _planar(t: torch.Tensor) -> torch.Tensor:
    """``t`` (N, C, H, W) with each channel an H x W block of contiguous rows (a copy only
    where it is not: a channel chunk of a contiguous map already is)."""
    h, w = t.shape[-2:]
    if t.stride(-1) == 1 and t.stride(-2) == w and t.stride(-3) == h * w:
        return t
    return t.contiguous()


def _softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 2 of (N, c, c, ...) logits T q.k / (|q| |k|), in place. These are
    bounded by |T| (Cauchy-Schwarz), so below 60 exp cannot overflow and the usual
    subtraction of the row maximum is skipped (the same result up to rounding)."""
    lo, hi = torch.aminmax(logits)
    if bool(hi > 60.0) or bool(lo < -60.0):
        return logits.softmax(dim=2)
    e = logits.exp_()
    return e.div_(e.sum(dim=2, keepdim=True))


def _attend_into(target: torch.Tensor, attn: torch.Tensor, v: torch.Tensor) -> None:
    """target[n, i] = sum_j attn[n, i, j] * v[n, j]: ``target`` (N, c, R, X), ``attn``
    (N, c, c, r, x) with r, x equal to R, X or 1 (repeated), ``v`` (N, c, R, X); one
    broadcast multiply-add per j, no c x c x R x X intermediate."""
    shape = target.shape
    torch.mul(attn[:, :, 0].expand(shape), v[:, 0:1].expand(shape), out=target)
    for j in range(1, attn.shape[2]):
        target.addcmul_(attn[:, :, j].expand(shape), v[:, j : j + 1].expand(shape))


def _cell_window_sums(t: torch.Tensor, mh: int, mw: int) -> torch.Tensor:
    """Sums over every mh x mw block of cells along dims 2 and 3 of ``t`` (float64):
    (..., Hc - mh + 1, Wc - mw + 1, ...)."""
    t = t.double()
    s = t.cumsum(2)
    s = torch.cat([s[:, :, mh - 1 : mh], s[:, :, mh:] - s[:, :, :-mh]], dim=2)
    s = s.cumsum(3)
    return torch.cat([s[:, :, :, mw - 1 : mw], s[:, :, :, mw:] - s[:, :, :, :-mw]], dim=3)


def blend_weights(n: int, k: int, r: int, n_starts: int, dtype: torch.dtype) -> torch.Tensor:
    """(n, n_starts) weights: pixel y's exact window starts at t = clamp(y - (k-1)//2, 0,
    n - k); it gets weights (1 - f, f) on cell-aligned starts floor(t/r) and the next one
    (clipped to ``n_starts - 1``), f = t/r - floor(t/r). Rows sum to 1."""
    y = torch.arange(n, dtype=torch.float64)
    t = (y - (k - 1) // 2).clamp(0, n - k) / r
    i0 = t.floor().long().clamp(max=n_starts - 1)
    f = t - i0
    i1 = (i0 + 1).clamp(max=n_starts - 1)
    m = torch.zeros(n, n_starts, dtype=torch.float64)
    m.index_put_((torch.arange(n), i0), 1 - f, accumulate=True)
    m.index_put_((torch.arange(n), i1), f, accumulate=True)
    return m.to(dtype)


def local_channel_attention_fast(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    temperature: torch.Tensor,
    heads: int,
    kernel: tuple[int, int],
    strides: tuple[int, int],
) -> torch.Tensor:
    """Cell-grid local MDTA (see the module docstring): (N, C, H, W) maps -> (N, C, H, W).

    ``strides`` (r_h, r_w) must divide the clipped ``kernel`` (as
    :func:`tlc_probe.tlc.box.fast_stride` gives); r = 1 on both axes makes every window
    start cell-aligned, i.e. exact (and slow)."""
    n, c_all, h, w = q.shape
    kh, kw = clamp_window(kernel, (h, w))
    sh, sw = strides
    if kh % sh or kw % sw:
        raise ValueError(f"strides {strides} must divide the window {(kh, kw)}")
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    hp, wp = math.ceil(h / sh) * sh, math.ceil(w / sw) * sw
    hc, wc, mh, mw = hp // sh, wp // sw, kh // sh, kw // sw
    c = c_all // heads

    def cells(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t.to(dt), (0, wp - w, 0, hp - h))  # zeros add nothing to the sums
        t = t.reshape(n, heads, c, hc, sh, wc, sw).permute(0, 1, 3, 5, 2, 4, 6)
        return t.reshape(n, heads, hc, wc, c, sh * sw)

    qc, kc = cells(q), cells(k)
    g = _cell_window_sums(qc @ kc.transpose(-1, -2), mh, mw)  # (N, heads, Hv, Wv, c, c)
    peak_q = finite_peak(qc.square(), (2, 3, 5)).double()[:, :, None, None]  # (N, h, 1, 1, c)
    peak_k = finite_peak(kc.square(), (2, 3, 5)).double()[:, :, None, None]
    area = kh * kw
    nq = window_norms(_cell_window_sums(qc.square().sum(-1), mh, mw), peak_q, area)
    nk = window_norms(_cell_window_sums(kc.square().sum(-1), mh, mw), peak_k, area)
    temp = _temperature(temperature, heads).to(torch.float64).view(1, heads, 1, 1, 1, 1)
    a = (g * scaled_inverse(nq[..., :, None], nk[..., None, :], temp)).softmax(dim=-1).to(dt)
    hv, wv = a.shape[2], a.shape[3]
    my = blend_weights(h, kh, sh, hv, dt).to(q.device)
    mx = blend_weights(w, kw, sw, wv, dt).to(q.device)
    vh = _heads(v, heads).to(dt)
    out = torch.zeros(n, heads, c, h, w, dtype=dt, device=q.device)
    for i in range(hv):
        rows = torch.nonzero(my[:, i]).flatten()
        if not len(rows):
            continue
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        ax = torch.einsum("xj,nhjcd->nhxcd", mx, a[:, :, i])  # blended along x: (N, h, W, c, c)
        part = torch.einsum("nhxcd,nhdyx->nhcyx", ax, vh[..., r0:r1, :])
        out[..., r0:r1, :] += part * my[r0:r1, i].view(1, 1, 1, -1, 1)
    return out.reshape(n, c_all, h, w).to(v.dtype)


class LocalChannelAttention(LocalWindow, nn.Module):
    """TLC version of an MDTA module (Restormer's ``Attention``): the same ``qkv``,
    ``qkv_dwconv``, ``project_out`` and ``temperature`` (so the same state_dict keys),
    with the channel attention taken over k_h x k_w windows (see the module docstring).

    ``forward``: (N, C, H, W) -> (N, C, H, W); where the window covers the map, exactly
    the global module. ``fused``: the exact attention in row bands
    (:func:`local_channel_attention_bands`) for float32 / float64 maps without autograd.
    """

    tlc_kind = "attn"

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        num_heads: int,
        fast_imp: bool = False,
        fast_min_cells: int = FAST_MIN_CELLS,
        feature_size: tuple[int, int] | None = None,
        fused: bool = False,
    ) -> None:
        super().__init__()
        if fused and fast_imp:
            raise ValueError("fused=True is for the exact attention: not with fast_imp")
        self._set_window(kernel_size, fast_imp, fast_min_cells, feature_size)
        self.fused = fused
        self.num_heads = int(num_heads)
        self.temperature = nn.Parameter(torch.ones(self.num_heads, 1, 1))
        self.qkv: nn.Module = nn.Identity()
        self.qkv_dwconv: nn.Module = nn.Identity()
        self.project_out: nn.Module = nn.Identity()

    @classmethod
    def from_attention(
        cls, module: nn.Module, kernel_size: int | tuple[int, int], **opts
    ) -> LocalChannelAttention:
        """The local version of ``module`` (anything with ``num_heads``, ``temperature``,
        ``qkv``, ``qkv_dwconv``, ``project_out`` that computes MDTA), sharing its
        parameters and submodules; ``opts`` as the constructor's."""
        new = cls(kernel_size, module.num_heads, **opts)
        new.temperature = module.temperature
        new.qkv, new.qkv_dwconv, new.project_out = module.qkv, module.qkv_dwconv, module.project_out
        new.train(module.training)
        return new

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The channel attention of q, k, v (N, C, H, W) with this module's windows."""
        size = (q.shape[-2], q.shape[-1])
        if self.covers(size):
            return channel_attention(q, k, v, self.temperature, self.num_heads)
        if self.fast_imp:
            return local_channel_attention_fast(
                q, k, v, self.temperature, self.num_heads, self.kernel_size, self.strides(size)
            )
        exact = (q, k, v, self.temperature, self.num_heads, self.kernel_size)
        if (
            self.fused
            and not needs_grad(q, k, v, self.temperature)
            and q.dtype in (torch.float32, torch.float64)
            and q.dtype == k.dtype == v.dtype
        ):
            out = local_channel_attention_bands(*exact)
            if out is not None:
                return out
        return local_channel_attention(*exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.empty_batch(x):
            return self.project_out(x)
        check_map(x)
        # one copy to the default layout (from a channels-last model's maps): the local
        # attention works on rows of one channel at a time
        q, k, v = self.qkv_dwconv(self.qkv(x)).contiguous().chunk(3, dim=1)
        return self.project_out(self.attend(q, k, v))

    def window_stats(
        self, q: torch.Tensor, k: torch.Tensor, positions: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """:data:`ATTN_STATS` over this site's windows of the query and key maps ``q``,
        ``k`` (N, C, H, W) at the grid of window positions of :meth:`window_grid`:
        ({stat: (N, C, P)}, ys (P,), xs (P,) window centres); exact, also for a
        ``fast_imp`` module (its windows, not its cell-grid blend)."""
        size = (q.shape[-2], q.shape[-1])
        kernel, iy, ix, ys, xs = self.window_grid(size, positions, q.device)
        stats = attention_stats_at(q, k, self.temperature, self.num_heads, kernel, iy, ix)
        return stats, ys, xs

    def extra_repr(self) -> str:
        fused = ", fused=True" if self.fused else ""
        return f"num_heads={self.num_heads}, " + self.window_repr() + fused


# -- statistics for the probe --------------------------------------------------------------


def _logit_mean(
    g: torch.Tensor,
    nq: torch.Tensor,
    nk: torch.Tensor,
    temp: torch.Tensor,
    peaks: tuple[torch.Tensor, torch.Tensor] | None = None,
    area: int = 1,
):
    """Row means of T * G / (|q| |k|) (0 for a zero vector): g (N, h, c, c, ...), nq, nk
    (N, h, c, ...) sums of squares, temp (h,); ``peaks`` (the channels' largest squares,
    broadcastable to nq / nk) and ``area`` floor window sums at their rounding
    (:func:`window_norms`)."""
    if peaks is None:
        nq, nk = nq.clamp_min(0).sqrt(), nk.clamp_min(0).sqrt()
    else:
        nq, nk = window_norms(nq, peaks[0], area), window_norms(nk, peaks[1], area)
    shape = (1, -1) + (1,) * (g.dim() - 2)
    scale = scaled_inverse(nq.unsqueeze(3), nk.unsqueeze(2), temp.to(g.dtype).reshape(shape))
    return (g * scale).mean(dim=3)


def attention_stats(
    q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor, heads: int
) -> dict[str, torch.Tensor]:
    """:data:`ATTN_STATS` of q, k (N, C, H, W) over the whole map: {stat: (N, C)}, in
    float32 (float64 for float64 input)."""
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    n, c_all, h, w = q.shape
    qh = q.detach().to(dt).reshape(n, heads, c_all // heads, h * w)
    kh = k.detach().to(dt).reshape(n, heads, c_all // heads, h * w)
    sq, sk = qh.square().sum(-1), kh.square().sum(-1)
    g = qh @ kh.transpose(-2, -1)
    temp = _temperature(temperature.detach(), heads)
    return {
        "q_rms": (sq / (h * w)).sqrt().reshape(n, c_all),
        "k_rms": (sk / (h * w)).sqrt().reshape(n, c_all),
        "logit_mean": _logit_mean(g, sq, sk, temp).reshape(n, c_all),
    }


def _strips(starts: list[int], k: int, n: int) -> tuple[list[int], list[list[int]]]:
    """Cut 0 .. n at every window start and end of windows ``starts`` of length ``k``:
    (the strip edges, for each window the indices of the strips it covers)."""
    edges = sorted({0, n, *starts, *(s + k for s in starts)})
    at = {e: i for i, e in enumerate(edges)}
    return edges, [list(range(at[s], at[s + k])) for s in starts]


def _window_totals(blocks: torch.Tensor, rows: list[list[int]], cols: list[list[int]]):
    """Sums of ``blocks`` (..., R, S) over each window's strips: (..., P), P = len(rows) *
    len(cols) row-major. A block holding NaN / inf makes exactly the windows that cover
    it NaN (the others never add it)."""
    bad = ~torch.isfinite(blocks)
    clean = blocks.masked_fill(bad, 0.0).double()
    my = clean.new_zeros(len(rows), blocks.shape[-2])
    mx = clean.new_zeros(len(cols), blocks.shape[-1])
    for i, r in enumerate(rows):
        my[i, r] = 1.0
    for j, c in enumerate(cols):
        mx[j, c] = 1.0
    total = my @ clean @ mx.T  # (..., ny, nx)
    hit = (my @ bad.double() @ mx.T) > 0
    return total.masked_fill(hit, float("nan")).flatten(-2)


def attention_stats_at(
    q: torch.Tensor,
    k: torch.Tensor,
    temperature: torch.Tensor,
    heads: int,
    kernel: tuple[int, int],
    iy: torch.Tensor,
    ix: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """:data:`ATTN_STATS` over the k_h x k_w windows whose top-left corners are the
    pairs of rows ``iy`` x columns ``ix`` (valid starts): {stat: (N, C, P)}, P =
    len(iy) * len(ix) row-major. Exact: the map is cut into the blocks between window
    edges, each block's Gram matrix of the stacked query and key channels is one matrix
    product, and each window adds the Gram matrices of its blocks (in float64). A
    window holding NaN / inf has NaN statistics; the others are untouched by it."""
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    n, c_all, h, w = q.shape
    kh, kw = clamp_window(kernel, (h, w))
    c = c_all // heads
    qd, kd = q.detach().to(dt), k.detach().to(dt)
    both = torch.cat([_heads(qd, heads), _heads(kd, heads)], dim=2)  # (N, h, 2c, H, W)
    ey, rows = _strips(iy.tolist(), kh, h)
    ex, cols = _strips(ix.tolist(), kw, w)
    grams = both.new_empty(n, heads, 2 * c, 2 * c, len(ey) - 1, len(ex) - 1)
    for r in range(len(ey) - 1):
        band = both[..., ey[r] : ey[r + 1], :]
        for j in range(len(ex) - 1):
            b = band[..., ex[j] : ex[j + 1]].reshape(n, heads, 2 * c, -1)
            grams[..., r, j] = b @ b.transpose(-2, -1)
    sums = _window_totals(grams, rows, cols)  # (N, h, 2c, 2c, P) float64
    diag = sums.diagonal(dim1=2, dim2=3).movedim(-1, 2)  # (N, h, 2c, P)
    sq, sk = diag[:, :, :c].to(dt), diag[:, :, c:].to(dt)
    g = sums[:, :, :c, c:].to(dt)
    temp = _temperature(temperature.detach(), heads)
    area = kh * kw
    peaks = tuple(finite_peak(t.square(), (-2, -1)).reshape(n, heads, c, 1) for t in (qd, kd))
    return {
        "q_rms": (sq / area).clamp_min(0).sqrt().reshape(n, c_all, -1),
        "k_rms": (sk / area).clamp_min(0).sqrt().reshape(n, c_all, -1),
        "logit_mean": _logit_mean(g, sq, sk, temp, peaks, area).reshape(n, c_all, -1),
    }
