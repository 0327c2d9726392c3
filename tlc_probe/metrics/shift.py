"""Distribution-shift metrics between regimes of the tidy statistics: KL, JS and W1.

A comparison is written ``"cmp~ref"``: ``"tlc~train"`` compares the statistics gathered with
the TLC-converted model on whole images (cmp) with those of the training patches (ref). For
every (model, task, site, kind, depth, stat) and every channel (plus ``"all"``: all channels
pooled) the values of the two regimes are two empirical samples; in the ``tlc`` regime each
local mean (every (y, x) position) is one value. Non-finite values are dropped first.

Rules (one set, used by :func:`w1`, :func:`kl_js` and :func:`shift_table` alike):

``w1``
    Exact 1-D Wasserstein-1 distance between the two unweighted empirical distributions,
    ``integral |F_ref(v) - F_cmp(v)| dv`` over the merged sorted values; the semantics of
    ``scipy.stats.wasserstein_distance``. Units of the statistic.
``w1_norm``
    ``w1 / std(ref)`` (population std, ddof=0); dimensionless. If the reference is constant,
    the std of ref and cmp pooled is used instead; if that is 0 too, both samples are the same
    constant, ``w1`` is 0 and so is ``w1_norm``. Never NaN for non-empty samples.
``kl``, ``js``
    Histograms on bins fixed from the reference alone, shared by both samples:

    * Freedman–Diaconis width ``h = 2 IQR n^(-1/3)`` on the reference, ``nb = ceil(range / h)``;
      if the IQR is 0 but the range is not, Sturges' ``nb = ceil(log2 n) + 1``; if the
      reference is constant, one bin holding exactly that value;
    * ``nb`` clipped to ``[1, MAX_BINS]`` (512), then ``nb`` equal bins spanning the
      reference's ``[min, max]`` (half-open, the last one closed);
    * two overflow bins, ``(-inf, min)`` and ``(max, +inf)``, catch the cmp values outside the
      reference range (the reference has none there), so ``K = nb + 2`` bins in all;
    * both histograms are normalised to probabilities and smoothed with one epsilon,
      ``p <- (p + EPS) / (1 + K * EPS)`` with ``EPS = 1e-6`` (the same for cmp), so every
      bin is strictly positive and nothing is inf or NaN.

    ``kl = sum p ln(p / q)`` = KL(ref ‖ cmp) in nats; at most about ``ln(1 / EPS)`` ≈ 13.8
    for disjoint samples. ``js = (KL(p ‖ m) + KL(q ‖ m)) / 2`` with ``m = (p + q) / 2``, in
    ``[0, ln 2]``. The histogram estimate of KL is biased upward by about ``(K - 1) / (2 n_cmp)``
    and converges to the continuous KL as both samples grow.

All of it is vectorised over groups: values are sorted once per granularity (per channel,
pooled) and every comparison reuses that order (other regimes' values only add breakpoints of
zero weight to the W1 integral). W1 stays exact, so a group's values are all held, sorted
(9 bytes a row for float32 values); every pass over them streams in slabs of
:data:`SLAB` rows, so the working memory beyond that does not grow with the group.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..sites import PRIMARY_STAT
from .decomposition import decomposition, relied_on

EPS = 1e-6
MAX_BINS = 512
#: The default comparisons: each inference regime against training, and the two links of
#: the decomposition (:mod:`tlc_probe.metrics.decomposition`): context (window~tiles) and
#: aggregation extent (whole~window).
COMPARISONS: tuple[str, ...] = (
    "whole~train",
    "tlc~train",
    "tiles~train",
    "window~train",
    "window~tiles",
    "whole~window",
)
KEYS: tuple[str, ...] = ("model", "task", "test_set", "site", "kind", "depth", "stat")
#: The test set of statistics frames without a ``test_set`` column.
DEFAULT_TEST_SET = "photos"
SHIFT_COLUMNS: tuple[str, ...] = (
    "model",
    "task",
    "test_set",
    "site",
    "kind",
    "depth",
    "stat",
    "channel",
    "comparison",
    "kl",
    "js",
    "w1",
    "w1_norm",
    "n_ref",
    "n_cmp",
)
#: The interval columns :func:`shift_table` appends to :data:`SHIFT_COLUMNS` (NaN on
#: per-channel rows and without a ``sample`` column).
INTERVAL_COLUMNS: tuple[str, ...] = ("w1_lo", "w1_hi", "dw1_tlc", "dw1_tlc_lo", "dw1_tlc_hi")


def comparisons_for(reference: str = "train") -> tuple[str, ...]:
    """The comparisons of a shift table against ``reference``: every inference regime
    (whole, tlc, tiles, window) against it, then what the decomposition
    (:mod:`tlc_probe.metrics.decomposition`) needs and is not there yet (window~tiles,
    whole~window, whole~train, tlc~train, tiles~train); a regime is never compared with
    itself. ``"train"`` gives :data:`COMPARISONS`; ``"tiles"`` compares with the test
    images' own training-size tiles, which takes the content difference between training
    and test images out of the comparisons with the reference."""
    if not reference or "~" in reference:
        raise ValueError(f"reference must be a regime name, got {reference!r}")
    own = [f"{r}~{reference}" for r in ("whole", "tlc", "tiles", "window") if r != reference]
    links = ["window~tiles", "whole~window", "whole~train", "tlc~train", "tiles~train"]
    return tuple(dict.fromkeys([*own, *links]))


def parse_comparison(comparison: str) -> tuple[str, str]:
    """Split ``"cmp~ref"`` into ``(cmp, ref)`` regime names."""
    cmp, sep, ref = comparison.partition("~")
    if not sep or not cmp or not ref or "~" in ref:
        raise ValueError(f"comparison must look like 'cmp~ref', got {comparison!r}")
    return cmp, ref


# --------------------------------------------------------------------------------------------
# grouped kernels: rows sorted by (group, value) — g = group code, v = value (float32 or
# float64), r = regime code of each row. Every pass streams over slabs of SLAB rows, so
# beyond the sorted rows themselves the working memory is a few slabs, whatever the size
# of a group (exact W1 still needs every value of a group, sorted; these arrays hold them
# in 9 bytes a row for float32 values).

#: Rows per slab of the streamed kernels.
SLAB = 1 << 20


def _sort_within_groups(g: np.ndarray, value_order: np.ndarray, n_groups: int) -> np.ndarray:
    """Permutation sorting rows by (group, value), given an order sorting them by value."""
    gv = g[value_order]
    # a stable integer sort keeps the value order inside each group; numpy radix-sorts
    # 16-bit integers, which is ~2x faster than its 64-bit merge sort
    if n_groups <= np.iinfo(np.uint16).max + 1:
        gv = gv.astype(np.uint16)
    elif n_groups <= np.iinfo(np.int32).max:
        gv = gv.astype(np.int32)
    return value_order[np.argsort(gv, kind="stable")]


def _exclusive_cumsum(n: np.ndarray) -> np.ndarray:
    out = np.zeros_like(n)
    np.cumsum(n[:-1], out=out[1:])
    return out


class _Rows:
    """Rows sorted by (group, value), read in slabs."""

    def __init__(self, g: np.ndarray, v: np.ndarray, r: np.ndarray, n_groups: int):
        self.g, self.v, self.r, self.n_groups = g, v, r, n_groups
        self._counts: dict[int, np.ndarray] = {}

    def slabs(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(g, v, r)`` of each slab in order: intp group codes, float64 values."""
        for a in range(0, self.g.size, SLAB):
            b = a + SLAB
            yield self.g[a:b].astype(np.intp), self.v[a:b].astype(np.float64), self.r[a:b]

    def of(self, code: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(g, v)`` of the rows of regime ``code``, slab by slab, in order."""
        for g, v, r in self.slabs():
            sel = r == code
            yield g[sel], v[sel]

    def count(self, code: int) -> np.ndarray:
        """Rows of regime ``code`` in each group."""
        if code not in self._counts:
            n = np.zeros(self.n_groups, dtype=np.int64)
            for g, _v in self.of(code):
                n += np.bincount(g, minlength=self.n_groups)
            self._counts[code] = n
        return self._counts[code]

    def sums(self, code: int, mean: np.ndarray | None = None) -> np.ndarray:
        """Per group, the sum of the values of regime ``code`` (of their squared deviations
        from ``mean`` when given)."""
        out = np.zeros(self.n_groups)
        for g, v in self.of(code):
            x = v if mean is None else np.square(v - mean[g])
            out += np.bincount(g, weights=x, minlength=self.n_groups)
        return out


class _RefBins:
    """Per-group reference statistics and shared histogram bins for one reference regime."""

    def __init__(self, rows: _Rows, code: int):
        n_groups = rows.n_groups
        n = rows.count(code)
        self.n = n
        nn = np.maximum(n, 1)
        start = _exclusive_cumsum(n)
        # order statistics of each group's reference values (numpy's 'linear' quantiles);
        # groups without reference values read 0, their results are dropped
        pos = {p: p * (nn - 1) for p in (0.25, 0.75)}
        low = {p: np.floor(x).astype(np.int64) for p, x in pos.items()}
        ranks = {"lo": np.zeros_like(nn), "hi": nn - 1}
        for p, i in low.items():
            ranks[f"a{p}"], ranks[f"b{p}"] = i, np.minimum(i + 1, nn - 1)
        at = {k: np.zeros(n_groups) for k in ranks}
        seen = 0
        for g, v in rows.of(code):
            rank = seen + np.arange(g.size) - start[g]  # within the group, 0-based
            seen += g.size
            for k, want in ranks.items():
                hit = rank == want[g]
                at[k][g[hit]] = v[hit]

        def quantile(p: float) -> np.ndarray:
            a, b = at[f"a{p}"], at[f"b{p}"]
            return a + (pos[p] - low[p]) * (b - a)

        lo, hi = at["lo"], at["hi"]
        iqr = quantile(0.75) - quantile(0.25)
        self.sum = rows.sums(code)
        self.std = np.sqrt(rows.sums(code, self.sum / nn) / nn)

        rng = hi - lo
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            h = 2.0 * iqr * np.power(nn, -1.0 / 3.0)
            nb_fd = np.ceil(rng / h)
        nb_sturges = np.ceil(np.log2(nn)) + 1.0
        nb = np.where(rng > 0, np.where(h > 0, nb_fd, nb_sturges), 1.0)
        nb = np.clip(np.nan_to_num(nb, nan=1.0, posinf=MAX_BINS), 1, MAX_BINS).astype(np.int64)
        self.lo, self.hi, self.nb = lo, hi, nb
        self.width = np.where(rng > 0, rng / nb, 1.0)
        self.k = nb + 2  # with the two overflow bins
        self.offset = _exclusive_cumsum(self.k)
        self.n_bins = int(self.k.sum())
        self.bin_group = np.repeat(np.arange(n_groups), self.k)
        self.counts = self.histogram(rows.of(code))

    def codes(self, g: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Global bin code (group offset + bin index) of each value of group ``g``."""
        lo, hi, nb = self.lo[g], self.hi[g], self.nb[g]
        with np.errstate(invalid="ignore", over="ignore"):
            b = np.floor((v - lo) / self.width[g])
        b = np.clip(np.nan_to_num(b, nan=0.0), 0, nb - 1).astype(np.int64) + 1
        b[v < lo] = 0
        over = v > hi
        b[over] = nb[over] + 1
        return self.offset[g] + b

    def histogram(self, parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Counts in every bin of every group of the values of ``(g, v)`` parts."""
        counts = np.zeros(self.n_bins, dtype=np.int64)
        for g, v in parts:
            counts += np.bincount(self.codes(g, v), minlength=self.n_bins)
        return counts


def _smoothed(counts: np.ndarray, n: np.ndarray, bins: _RefBins) -> np.ndarray:
    p = counts / np.maximum(n, 1)[bins.bin_group]
    return (p + EPS) / (1.0 + bins.k[bins.bin_group] * EPS)


def _kl_js_from_counts(
    counts_ref: np.ndarray,
    n_ref: np.ndarray,
    counts_cmp: np.ndarray,
    n_cmp: np.ndarray,
    bins: _RefBins,
) -> tuple[np.ndarray, np.ndarray]:
    n_groups = bins.n.size
    p = _smoothed(counts_ref, n_ref, bins)
    q = _smoothed(counts_cmp, n_cmp, bins)
    m = 0.5 * (p + q)
    kl = np.bincount(bins.bin_group, weights=p * np.log(p / q), minlength=n_groups)
    js_terms = p * np.log(p / m) + q * np.log(q / m)
    js = 0.5 * np.bincount(bins.bin_group, weights=js_terms, minlength=n_groups)
    # rounding can leave -1e-17 for identical histograms
    return np.maximum(kl, 0.0), np.clip(js, 0.0, math.log(2.0))


def _w1_sorted(rows: _Rows, cmp_code: int, ref_code: int) -> np.ndarray:
    """Per-group W1 between the rows of regimes ``cmp_code`` and ``ref_code``, streamed:
    only the rows of the two regimes count (the others would add breakpoints of zero
    weight); each slab's last row is carried into the next, whose first value closes its
    interval."""
    n_groups = rows.n_groups
    n_cmp, n_ref = rows.count(cmp_code), rows.count(ref_code)
    first_cmp, first_row = _exclusive_cumsum(n_cmp), _exclusive_cumsum(n_cmp + n_ref)
    d_cmp, d_ref = np.maximum(n_cmp, 1), np.maximum(n_ref, 1)
    w1 = np.zeros(n_groups)
    seen_cmp = seen = 0
    carry: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for g, v, r in rows.slabs():
        is_cmp = r == cmp_code
        both = is_cmp | (r == ref_code)
        g, v, is_cmp = g[both], v[both], is_cmp[both]
        below_cmp = seen_cmp + np.cumsum(is_cmp) - first_cmp[g]  # cmp rows up to here
        below_ref = seen + np.arange(1, g.size + 1) - first_row[g] - below_cmp
        gap = below_ref / d_ref[g] - below_cmp / d_cmp[g]
        seen_cmp, seen = seen_cmp + int(is_cmp.sum()), seen + g.size
        if carry is not None:
            g, v, gap = (np.concatenate([c, x]) for c, x in zip(carry, (g, v, gap), strict=True))
        if not g.size:
            continue
        # both CDFs reach 1 at a group's last row, so masking the jump to the next group
        # is only a guard against rounding
        dv = np.where(g[1:] == g[:-1], np.diff(v), 0.0)
        w1 += np.bincount(g[:-1], weights=np.abs(gap[:-1]) * dv, minlength=n_groups)
        carry = (g[-1:], v[-1:], gap[-1:])
    return w1


def _group_metrics(rows: _Rows, pairs: Sequence[tuple[int, int]]) -> list[dict[str, np.ndarray]]:
    """Metrics of every (cmp, ref) regime-code pair for every group of ``rows``.

    Returns one dict of per-group arrays (kl, js, w1, w1_norm, n_ref, n_cmp) per pair;
    groups where a side is empty have n == 0.
    """
    n_groups = rows.n_groups
    bins_cache: dict[int, _RefBins] = {}
    zeros, none = np.zeros(n_groups), np.zeros(n_groups, dtype=np.int64)
    out = []
    for cmp_code, ref_code in pairs:
        n_ref, n_cmp = rows.count(ref_code), rows.count(cmp_code)
        if not (n_ref.any() and n_cmp.any()):  # a regime without rows
            blank = {"kl": zeros, "js": zeros, "w1": zeros, "w1_norm": zeros}
            out.append(blank | {"n_ref": none, "n_cmp": none})
            continue
        if ref_code not in bins_cache:
            bins_cache[ref_code] = _RefBins(rows, ref_code)
        bins = bins_cache[ref_code]
        w1 = _w1_sorted(rows, cmp_code, ref_code)
        kl, js = _kl_js_from_counts(
            bins.counts, n_ref, bins.histogram(rows.of(cmp_code)), n_cmp, bins
        )
        scale = bins.std.copy()
        flat = (scale <= 0) & (n_ref > 0)
        if flat.any():  # constant reference: fall back to the pooled std of ref and cmp
            n_u = np.maximum(n_ref + n_cmp, 1)
            mean_u = (bins.sum + rows.sums(cmp_code)) / n_u
            sq = rows.sums(ref_code, mean_u) + rows.sums(cmp_code, mean_u)
            scale[flat] = np.sqrt(sq / n_u)[flat]
        with np.errstate(divide="ignore", invalid="ignore"):
            w1_norm = np.where(scale > 0, w1 / scale, 0.0)
        out.append(
            {"kl": kl, "js": js, "w1": w1, "w1_norm": w1_norm, "n_ref": n_ref, "n_cmp": n_cmp}
        )
    return out


def _finite(x: np.ndarray | Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError("every sample needs at least one finite value")
    return a


# --------------------------------------------------------------------------------------------
# public scalar API


def w1(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> float:
    """Wasserstein-1 distance between the empirical distributions of samples ``a`` and ``b``.

    Same value as ``scipy.stats.wasserstein_distance(a, b)`` (unweighted): the integral of
    ``|F_a - F_b|`` over the merged sorted values, in the units of the values. Non-finite
    values are dropped; both samples need at least one finite value.
    """
    a, b = np.sort(_finite(a)), np.sort(_finite(b))
    merged = np.sort(np.concatenate([a, b]))
    f_a = np.searchsorted(a, merged[:-1], side="right") / a.size
    f_b = np.searchsorted(b, merged[:-1], side="right") / b.size
    return float(np.sum(np.abs(f_a - f_b) * np.diff(merged)))


def kl_js(
    ref: np.ndarray | Sequence[float],
    cmp: np.ndarray | Sequence[float],
    bins_from: np.ndarray | Sequence[float] | None = None,
) -> tuple[float, float]:
    """``(KL(ref ‖ cmp), JS(ref, cmp))`` in nats, on histogram bins fixed from ``ref``.

    Binning, overflow bins and the ``EPS`` smoothing are those of the module docstring (the
    rule :func:`shift_table` uses). ``bins_from`` fixes the bins from another sample instead
    (then JS is symmetric in ``ref`` and ``cmp``). KL >= 0 (at most about ln(1/EPS) ≈ 13.8),
    JS in ``[0, ln 2]``; both 0 for identical samples. Non-finite values are dropped; every
    sample needs at least one finite value.
    """
    ref, cmp = _finite(ref), _finite(cmp)
    edges = np.sort(ref if bins_from is None else _finite(bins_from))
    rows = _Rows(np.zeros(edges.size, np.intp), edges, np.zeros(edges.size, np.int8), 1)
    bins = _RefBins(rows, 0)

    def hist(x: np.ndarray) -> np.ndarray:
        return bins.histogram([(np.zeros(x.size, np.intp), x)])

    kl, js = _kl_js_from_counts(
        hist(ref), np.array([ref.size]), hist(cmp), np.array([cmp.size]), bins
    )
    return float(kl[0]), float(js[0])


# --------------------------------------------------------------------------------------------
# tables


def _compact(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """``codes`` in the smallest unsigned dtype holding ``n_codes`` distinct codes."""
    return codes.astype(np.min_scalar_type(max(n_codes - 1, 0)), copy=False)


def _factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``values`` (in the smallest dtype that holds them) and the value of
    each code (missing values get a code of their own). A categorical column's own codes,
    and an integer column's offsets from its minimum when its range is small, are used
    without hashing; they may leave codes that no row has."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        uniques = np.asarray(dtype.categories, dtype=object)
        if (codes < 0).any():
            codes = np.where(codes < 0, uniques.size, codes)
            uniques = np.append(uniques, np.array([np.nan], dtype=object))
        return _compact(codes, uniques.size), uniques
    if len(values) and pd.api.types.is_integer_dtype(dtype):
        arr = values.array
        extension = isinstance(dtype, pd.api.extensions.ExtensionDtype)
        mask = np.asarray(arr.isna()) if extension else None
        data = arr.to_numpy(dtype=np.int64, na_value=0) if extension else np.asarray(arr)
        valid = data[~mask] if mask is not None else data
        lo = int(valid.min()) if valid.size else 0
        hi = int(valid.max()) if valid.size else 0
        if hi - lo < 1 << 20:
            codes = data - lo if lo else data
            uniques = np.arange(lo, hi + 1).astype(object)
            if mask is not None and mask.any():
                codes = np.where(mask, uniques.size, codes)
                uniques = np.append(uniques, np.array([pd.NA], dtype=object))
            return _compact(codes, uniques.size), uniques
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=False)
    return _compact(codes, len(uniques)), np.asarray(uniques, dtype=object)


def _combine(code_cols: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes of the row-wise combination of several factor codes, and one row of
    each combination (to recover its key values)."""
    key = np.zeros(code_cols[0][0].size, dtype=np.int64)
    total = 1
    for codes, card in code_cols:
        key = key * card + codes
        total *= max(card, 1)
    if total <= max(4 * key.size, 1 << 22):  # a table over every combination is cheap
        used = np.zeros(total, dtype=bool)
        used[key] = True
        codes = np.cumsum(used) - 1
        row = np.empty(total, dtype=np.int64)
        row[key] = np.arange(key.size)  # any row of a combination holds its key values
        return _compact(codes, int(codes[-1]) + 1)[key], row[used]
    dense = pd.factorize(key, sort=False)[0].astype(np.int64)
    # factorize numbers combinations in order of first appearance: a row starts a new code
    # exactly when its code exceeds every earlier one
    seen = np.maximum.accumulate(dense)
    is_first = np.empty(dense.size, dtype=bool)
    is_first[:1] = True
    is_first[1:] = dense[1:] > seen[:-1]
    return _compact(dense, int(seen[-1]) + 1), np.flatnonzero(is_first)


def _ordered_bits(v: np.ndarray) -> np.ndarray:
    """float32 -> uint32 with the same order (negative values' bits flipped)."""
    bits = v.view(np.uint32)
    return np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))


def _from_ordered_bits(o: np.ndarray) -> np.ndarray:
    bits = np.where(o >> 31, o & np.uint32(0x7FFFFFFF), ~o).astype(np.uint32)
    return bits.view(np.float32)


def _sorted_rows(
    group: np.ndarray, values: np.ndarray, r_codes: np.ndarray, n_groups: int
) -> _Rows:
    """The rows sorted by (group, value), held compactly: int32 group codes (int64 beyond
    2**31 groups), the values in their own dtype, int8 regime codes. float32 values (the
    store's) are sorted as one packed uint64 key per row (group | order-preserving value
    bits | regime), built and unpacked slab by slab, which needs no argsort."""
    n = group.size
    g_dtype = np.int32 if n_groups < 1 << 31 else np.int64
    if values.dtype == np.float32 and n_groups < 1 << 29 and int(r_codes.max(initial=0)) < 8:
        key = np.empty(n, dtype=np.uint64)
        for a in range(0, n, SLAB):
            b = a + SLAB
            k = group[a:b].astype(np.uint64) << np.uint64(35)
            k |= _ordered_bits(values[a:b]).astype(np.uint64) << np.uint64(3)
            k |= r_codes[a:b].astype(np.uint64)
            key[a:b] = k
        key.sort()
        g = np.empty(n, dtype=g_dtype)
        v = np.empty(n, dtype=np.float32)
        r = np.empty(n, dtype=np.int8)
        for a in range(0, n, SLAB):
            k = key[a : a + SLAB]
            g[a : a + SLAB] = k >> np.uint64(35)
            v[a : a + SLAB] = _from_ordered_bits((k >> np.uint64(3)).astype(np.uint32))
            r[a : a + SLAB] = k & np.uint64(7)
        return _Rows(g, v, r, n_groups)
    order = np.argsort(values)  # ties in value may come in any order: no metric sees it
    order = _sort_within_groups(group, order, n_groups)
    return _Rows(group[order].astype(g_dtype), values[order], r_codes[order], n_groups)


def shift_table(
    stats: pd.DataFrame,
    comparisons: Sequence[str] = COMPARISONS,
    per_channel: bool = True,
    intervals: bool = True,
) -> pd.DataFrame:
    """KL, JS and W1 between regimes for every site, statistic and channel.

    ``stats`` is the tidy statistics frame (columns model, task, test_set, regime, site,
    kind, depth, channel, stat, value are used; see DESIGN.md; without ``test_set`` the
    rows are of ``photos``). ``comparisons`` are ``"cmp~ref"`` strings;
    a comparison whose regimes are absent (e.g. no ``tiles``) yields no rows, as does any
    group where one side has no finite value.

    Returns one row per (model, task, test_set, site, kind, depth, stat, channel,
    comparison) with
    columns :data:`SHIFT_COLUMNS`: ``channel`` is the channel index as a string, or ``"all"``
    for all channels pooled (the only rows when ``per_channel`` is False); ``kl``/``js`` in
    nats, ``w1`` in the units of the statistic, ``w1_norm`` dimensionless, ``n_ref``/``n_cmp``
    the numbers of values compared. On the pooled rows, with ``intervals`` and a ``sample``
    column in ``stats``: ``w1_lo``/``w1_hi``, the 95 % cluster-bootstrap interval of W1
    resampling images (:func:`~tlc_probe.metrics.intervals.w1_intervals`), and on every
    comparison's row of a group ``dw1_tlc`` = W1(tlc~R) - W1(whole~R) (R = ``train`` when
    compared, else the first regime both are compared with) with ``dw1_tlc_lo`` /
    ``dw1_tlc_hi``, paired over images; NaN elsewhere. Rows are ordered by model, task,
    depth, site, kind, stat, channel (numeric, then "all") and comparison (in the order
    given).

    Statistics recorded during training (a ``step`` column with values) are compared within
    each step: the table then has a ``step`` column after ``task`` (nullable Int64), rows
    ordered by step after task, and each step's rows equal the table of that step's rows
    alone. Without steps the table has no ``step`` column.
    """
    comparisons = list(dict.fromkeys(comparisons))
    parsed = [parse_comparison(c) for c in comparisons]
    regimes = sorted({x for pair in parsed for x in pair})
    if "test_set" not in stats.columns:
        stats = stats.assign(test_set=DEFAULT_TEST_SET)
    missing = [c for c in (*KEYS, "regime", "channel", "value") if c not in stats.columns]
    if missing:
        raise KeyError(f"statistics frame lacks columns {missing}")
    stepped = "step" in stats.columns and bool(stats["step"].notna().any())
    keys_used = (*KEYS, "step") if stepped else KEYS
    columns = _columns(stepped)
    empty = pd.DataFrame({c: pd.Series(dtype=_out_dtype(c)) for c in columns})

    reg_codes, reg_uniques = _factorize(stats["regime"])
    lookup = np.array([regimes.index(str(u)) if str(u) in regimes else -1 for u in reg_uniques])
    r_codes = lookup[reg_codes].astype(np.int8) if lookup.size else reg_codes.astype(np.int8)
    column = stats["value"]
    if column.dtype == np.float32:  # the store's values: kept in float32 until a slab is read
        values = column.to_numpy()
    else:
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    keep = (r_codes >= 0) & np.isfinite(values)
    if not keep.any():
        return empty
    # rows of regimes no comparison uses are dropped (they would only add breakpoints)
    subset = (lambda a: a[keep]) if not keep.all() else (lambda a: a)
    values, r_codes = subset(values), subset(r_codes)
    pairs = [(regimes.index(c), regimes.index(rf)) for c, rf in parsed]

    factors = {}
    for k in (*keys_used, "channel"):
        codes, uniques = _factorize(stats[k])
        factors[k] = (subset(codes), uniques)
    base, base_first = _combine([(factors[k][0], len(factors[k][1])) for k in keys_used])

    granularities: list[tuple[np.ndarray, np.ndarray, bool]] = []
    if per_channel:
        ch_codes, ch_uniques = factors["channel"]
        group, first = _combine([(base, base_first.size), (ch_codes, len(ch_uniques))])
        granularities.append((group, first, True))
    granularities.append((base, base_first, False))

    frames = []
    for group, first, by_channel in granularities:
        n_groups = first.size
        metrics = _group_metrics(_sorted_rows(group, values, r_codes, n_groups), pairs)
        keys = {k: factors[k][1][factors[k][0][first]] for k in keys_used}
        if by_channel:
            ch_codes, ch_uniques = factors["channel"]
            channel = np.array([str(int(c)) for c in ch_uniques], dtype=object)[ch_codes[first]]
        else:
            channel = np.full(n_groups, "all", dtype=object)
        for comparison, m in zip(comparisons, metrics, strict=True):
            ok = (m["n_ref"] > 0) & (m["n_cmp"] > 0)
            if not ok.any():
                continue
            part = {k: keys[k][ok] for k in keys_used}
            part["channel"] = channel[ok]
            part["comparison"] = np.full(int(ok.sum()), comparison, dtype=object)
            part.update({k: m[k][ok] for k in ("kl", "js", "w1", "w1_norm", "n_ref", "n_cmp")})
            frames.append(pd.DataFrame(part))
    if not frames:
        return empty
    table = pd.concat(frames, ignore_index=True)
    for c in INTERVAL_COLUMNS:
        table[c] = np.nan
    if intervals and "sample" in stats.columns:
        table = _with_intervals(table, stats, comparisons, keys_used)
    return _tidy_table(table, comparisons, columns)


def _key_str(value: object) -> str:
    """A key value as text, the same whichever dtype carried it (a step read as 3.0)."""
    if pd.isna(value):
        return "<NA>"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _tlc_reference(comparisons: Sequence[str]) -> str | None:
    refs = [c.split("~", 1)[1] for c in comparisons if c.startswith("tlc~")]
    both = [r for r in refs if f"whole~{r}" in comparisons]
    return "train" if "train" in both else (both[0] if both else None)


def _with_intervals(
    table: pd.DataFrame, stats: pd.DataFrame, comparisons: Sequence[str], keys: Sequence[str]
) -> pd.DataFrame:
    """``table`` with its pooled rows' interval columns filled (see :func:`shift_table`)."""
    from .intervals import w1_intervals  # (scipy.stats: imported when intervals are made)

    reference = _tlc_reference(comparisons)
    found = w1_intervals(stats, comparisons, list(keys), reference=reference or "train")
    if reference is None:  # no tlc~R and whole~R pair: no paired difference either
        found = found.assign(dw1_tlc_lo=np.nan, dw1_tlc_hi=np.nan)
    pooled = table["channel"] == "all"
    rows = np.flatnonzero(pooled.to_numpy())
    group, comp = _group_keys(table.loc[pooled], keys)
    if not found.empty:
        found_group, found_comp = _group_keys(found, keys)
        pos = pd.Index(_joined(found_group, found_comp)).get_indexer(_joined(group, comp))
        hit = pos >= 0
        for c in ("w1_lo", "w1_hi", "dw1_tlc_lo", "dw1_tlc_hi"):
            table.loc[rows[hit], c] = found[c].to_numpy()[pos[hit]]
    if reference is not None:  # the point estimate, from the exact W1 of the two comparisons
        w1 = pd.Series(table.loc[pooled, "w1"].to_numpy(), index=group)
        tlc = w1[comp == f"tlc~{reference}"]
        whole = w1[comp == f"whole~{reference}"]
        diff = tlc.reindex(group).to_numpy() - whole.reindex(group).to_numpy()
        table.loc[pooled, "dw1_tlc"] = diff.astype(np.float64)
    return table


def _group_keys(frame: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``frame``: its ``keys`` values joined as one text (the same whichever
    dtype carried them) and its comparison, as two object arrays of str."""
    text = frame[list(keys)].map(_key_str)
    group = ["\x1f".join(row) for row in text.itertuples(index=False)]
    comp = [str(c) for c in frame["comparison"]]
    return np.array(group, dtype=object), np.array(comp, dtype=object)


def _joined(group: np.ndarray, comp: np.ndarray) -> list[str]:
    """``group`` and ``comp`` (object arrays of str) joined per row (no string ufuncs:
    NumPy 1.x has none)."""
    return [f"{g}\x1e{c}" for g, c in zip(group, comp, strict=True)]


def concat_shift_tables(
    tables: Sequence[pd.DataFrame], comparisons: Sequence[str] = COMPARISONS
) -> pd.DataFrame:
    """One shift table from tables of disjoint groups (e.g. :func:`shift_table` of each
    site's rows alone), in the row order and dtypes :func:`shift_table` gives the rows
    read together: tables without a ``step`` column get a null one when another has it.
    ``comparisons`` orders the comparisons as in :func:`shift_table`."""
    comparisons = list(dict.fromkeys(comparisons))
    stepped = any("step" in t.columns for t in tables)
    columns = _columns(stepped)
    full = [t for t in tables if len(t)]
    if not full:
        return pd.DataFrame({c: pd.Series(dtype=_out_dtype(c)) for c in columns})
    if stepped:
        full = [t if "step" in t.columns else t.assign(step=pd.NA) for t in full]
    return _tidy_table(pd.concat(full, ignore_index=True), comparisons, columns)


def _columns(stepped: bool) -> list[str]:
    cols = [*SHIFT_COLUMNS, *INTERVAL_COLUMNS]
    return cols[:2] + ["step"] + cols[2:] if stepped else cols


def _out_dtype(column: str) -> str:
    if column == "step":
        return "Int64"
    if column in ("kl", "js", "w1", "w1_norm", *INTERVAL_COLUMNS):
        return "float64"
    if column in ("n_ref", "n_cmp"):
        return "int64"
    if column == "depth":
        return "int32"
    return "object"


def _tidy_table(
    table: pd.DataFrame, comparisons: Sequence[str], columns: Sequence[str]
) -> pd.DataFrame:
    for c in INTERVAL_COLUMNS:  # (tables made before intervals existed)
        if c not in table.columns:
            table[c] = np.nan
    if "test_set" not in table.columns:  # (tables made before test sets existed)
        table.insert(2, "test_set", DEFAULT_TEST_SET)
    for c in columns:
        if c in ("model", "task", "test_set", "site", "kind", "stat", "channel", "comparison"):
            table[c] = table[c].astype(str)
        else:
            table[c] = table[c].astype(_out_dtype(c))
    channel_num = pd.to_numeric(table["channel"].where(table["channel"] != "all"))
    comp_rank = table["comparison"].map({c: i for i, c in enumerate(comparisons)})
    keys = [
        comp_rank.to_numpy(),
        channel_num.fillna(np.inf).to_numpy(),
        table["stat"].to_numpy(),
        table["kind"].to_numpy(),
        table["site"].to_numpy(),
        table["depth"].to_numpy(),
    ]
    if "step" in columns:
        keys.append(table["step"].fillna(-1).to_numpy(dtype=np.int64))
    keys.append(table["test_set"].to_numpy())
    order = np.lexsort((*keys, table["task"].to_numpy(), table["model"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)[list(columns)]


def summary(
    table: pd.DataFrame,
    reliance: pd.DataFrame | None = None,
    reference: str = "train",
    *,
    parts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The paper's claim, measured: does TLC pull the statistics back towards training?

    Uses the pooled (``channel == "all"``) rows of a :func:`shift_table`. Per (model, task,
    stat), over the sites that have both ``whole~train`` and ``tlc~train`` rows (with
    ``reference="tiles"``: ``whole~tiles`` and ``tlc~tiles``, and so on below):

    * ``n_sites``;
    * ``frac_w1_improved`` / ``frac_kl_improved``: fraction of sites where
      ``w1(tlc~train) < w1(whole~train)`` (resp. ``kl``);
    * ``median_w1_ratio``: median over sites of ``w1(tlc~train) / w1(whole~train)`` (sites
      with ``w1(whole~train) == 0`` are left out of the median; NaN if none is left).

    If the table has ``tiles~train`` rows, ``frac_w1_improved_tiles`` and
    ``median_w1_ratio_tiles`` are added: the same with tiles in place of tlc (over the sites
    having tiles and whole rows). If it has the decomposition's comparisons
    (:mod:`tlc_probe.metrics.decomposition`), ``median_content_share``,
    ``median_context_share`` and ``median_aggregation_share`` (medians over sites). With a
    ``reliance`` table (columns model, task, site, delta_psnr): ``n_relied`` (sites whose
    freezing changes PSNR by at least :data:`~tlc_probe.metrics.decomposition.RELIED_DB`),
    ``frac_w1_improved_relied`` (over those), ``all_frozen_delta_psnr`` (the
    ``site == "all"`` row) and ``flag``: ``"output relies on no site"`` when every site was
    measured, none is relied on and freezing all of them changes PSNR by less than
    RELIED_DB too (then no shift of this model matters for its output), else empty.
    With ``tlc~train`` rows, ``tlc_noop``: True when TLC changed no statistic of the
    group (W1 and KL of tlc equal whole's at every site: the windows covered the maps).
    ``n_relied`` is NA for a model the reliance table does not cover.
    A table with a ``step`` column is summarised per step. ``parts``, when given, is
    ``decomposition(table, reliance)`` already computed (it is not recomputed).
    """
    pooled = table[table["channel"].astype(str) == "all"]
    stepped = "step" in table.columns
    if stepped:  # rows without a step (collect stores read together) stay: key -1, then NA
        pooled = pooled.assign(step=pooled["step"].fillna(-1))
    if "test_set" not in pooled.columns:
        pooled = pooled.assign(test_set=DEFAULT_TEST_SET)
    group = ["model", "task", "test_set", *(["step"] if stepped else []), "stat"]
    index = [*group, "site", "kind", "depth"]
    wide = pooled.pivot_table(
        index=index, columns="comparison", values=["w1", "kl"], aggfunc="first"
    )
    has_tiles = reference != "tiles" and ("w1", f"tiles~{reference}") in wide.columns
    decomposed = ("w1", "window~tiles") in wide.columns or ("w1", "whole~window") in wide.columns
    if decomposed or reliance is not None:
        if parts is None:
            parts = decomposition(table, reliance)
        if stepped:
            parts = parts.assign(step=parts["step"].fillna(-1))
        parts = parts.set_index(index)
    else:
        parts = None
    sure = _improved_sure(pooled, group, reference)
    rows = []
    for key, grp in wide.groupby(level=group, sort=True):
        row: dict[str, object] = dict(zip(group, key, strict=True))
        row.update(_improvement(grp, f"tlc~{reference}", "", reference))
        row["n_w1_improved_sure"] = sure.get(key if isinstance(key, tuple) else (key,), pd.NA)
        if has_tiles:
            tiles = _improvement(grp, f"tiles~{reference}", "_tiles", reference)
            row.update({k: tiles[k] for k in ("frac_w1_improved_tiles", "median_w1_ratio_tiles")})
        if parts is not None:
            mine = parts.loc[parts.index.intersection(grp.index)]
            if decomposed:
                for name in ("content", "context", "aggregation"):
                    share = mine[f"{name}_share"].dropna()
                    row[f"median_{name}_share"] = float(share.median()) if share.size else np.nan
            if reliance is not None:
                row.update(_reliance_columns(grp, mine, reliance, row, reference))
        rows.append(row)
    columns = [
        *group,
        "n_sites",
        "frac_w1_improved",
        "frac_kl_improved",
        "median_w1_ratio",
        "n_w1_improved_sure",
    ]
    if has_tiles:
        columns += ["frac_w1_improved_tiles", "median_w1_ratio_tiles"]
    if decomposed:
        columns += ["median_content_share", "median_context_share", "median_aggregation_share"]
    if reliance is not None:
        columns += ["n_relied", "frac_w1_improved_relied", "all_frozen_delta_psnr", "flag"]
    if ("w1", f"tlc~{reference}") in wide.columns:
        columns.append("tlc_noop")
        for row, (_, grp) in zip(rows, wide.groupby(level=group, sort=True), strict=True):
            row["tlc_noop"] = _tlc_noop(grp, reference)
    out = pd.DataFrame(rows, columns=columns)
    out["n_w1_improved_sure"] = out["n_w1_improved_sure"].astype("Int64")
    if "n_relied" in out.columns:
        out["n_relied"] = out["n_relied"].astype("Int64")
    if stepped:
        out["step"] = out["step"].astype("Int64").mask(out["step"] == -1)
    return out


def _improved_sure(pooled: pd.DataFrame, group: list[str], reference: str) -> dict:
    """Per group key, the sites where TLC lowers W1 with the 95 % interval of the paired
    difference below 0 (``dw1_tlc_hi < 0``); groups without intervals are left out (NA)."""
    if "dw1_tlc_hi" not in pooled.columns or reference != _tlc_reference(_comparisons_in(pooled)):
        return {}
    rows = pooled[pooled["comparison"].astype(str) == f"tlc~{reference}"]
    rows = rows[rows["dw1_tlc_hi"].notna()]
    out = {}
    for key, grp in rows.groupby(group, sort=True):
        out[key if isinstance(key, tuple) else (key,)] = int((grp["dw1_tlc_hi"] < 0).sum())
    return out


def _comparisons_in(table: pd.DataFrame) -> list[str]:
    """The comparisons present in ``table``, in order of first appearance."""
    return list(dict.fromkeys(table["comparison"].astype(str)))


def _tlc_noop(wide: pd.DataFrame, reference: str) -> bool:
    """True when TLC changed no statistic of the group: at every site with both rows,
    W1 and KL of ``tlc~ref`` equal those of ``whole~ref`` (to 1e-6 relative) — the
    windows covered the maps (test images no larger than base_size), so the tlc and
    whole regimes hold the same values."""
    tlc, whole = f"tlc~{reference}", f"whole~{reference}"
    if ("w1", whole) not in wide.columns:
        return False
    both = wide[("w1", tlc)].notna() & wide[("w1", whole)].notna()
    if not both.any():
        return False
    same = [
        np.allclose(
            wide.loc[both, (m, tlc)].to_numpy(float),
            wide.loc[both, (m, whole)].to_numpy(float),
            rtol=1e-6,
            atol=1e-12,
            equal_nan=True,
        )
        for m in ("w1", "kl")
    ]
    return bool(all(same))


def _reliance_columns(
    wide: pd.DataFrame, parts: pd.DataFrame, reliance: pd.DataFrame, key: dict, reference: str
) -> dict[str, object]:
    """n_relied, frac_w1_improved_relied, all_frozen_delta_psnr and flag of one group."""
    relied = parts.index[parts["relied"].fillna(False).to_numpy(dtype=bool)]
    every_site_measured = bool(parts["relied"].notna().all()) and len(parts) > 0
    sub = _improvement(wide.loc[wide.index.intersection(relied)], f"tlc~{reference}", "", reference)
    mine = reliance[
        (reliance["model"].astype(str) == str(key["model"]))
        & (reliance["task"].astype(str) == str(key["task"]))
    ]
    everything = mine.loc[mine["site"].astype(str) == "all", "delta_psnr"]
    all_frozen = float(everything.iloc[0]) if len(everything) else np.nan
    n = len(relied)
    quiet = not relied_on(pd.Series([all_frozen])).fillna(False).iloc[0]  # no "all" row: quiet
    if not parts["relied"].notna().any():  # this model's reliance was not measured
        return {
            "n_relied": pd.NA,
            "frac_w1_improved_relied": np.nan,
            "all_frozen_delta_psnr": all_frozen,
            "flag": "",
        }
    return {
        "n_relied": n,
        "frac_w1_improved_relied": sub["frac_w1_improved"] if n else np.nan,
        "all_frozen_delta_psnr": all_frozen,
        "flag": "output relies on no site" if n == 0 and every_site_measured and quiet else "",
    }


def _improvement(
    wide: pd.DataFrame, comparison: str, suffix: str, reference: str = "train"
) -> dict[str, float]:
    def col(metric: str, comp: str) -> pd.Series:
        if (metric, comp) in wide.columns:
            return wide[(metric, comp)]
        return pd.Series(np.nan, index=wide.index)

    whole = f"whole~{reference}"
    both = col("w1", comparison).notna() & col("w1", whole).notna()
    w_new, w_old = col("w1", comparison)[both], col("w1", whole)[both]
    k_new, k_old = col("kl", comparison)[both], col("kl", whole)[both]
    n = int(both.sum())
    ratio = (w_new / w_old)[w_old > 0]
    return {
        f"n_sites{suffix}": n,
        f"frac_w1_improved{suffix}": float((w_new < w_old).mean()) if n else np.nan,
        f"frac_kl_improved{suffix}": float((k_new < k_old).mean()) if n else np.nan,
        f"median_w1_ratio{suffix}": float(ratio.median()) if ratio.size else np.nan,
    }


def stat_mask(frame: pd.DataFrame, stat: str) -> pd.Series:
    """Rows of ``frame`` (with ``stat`` and ``kind`` columns) of statistic ``stat``;
    ``"mean"`` stands for each site's primary statistic
    (:data:`tlc_probe.sites.PRIMARY_STAT`): the mean of 'in' and 'se' sites and the
    ``logit_mean`` of 'attn' sites, which record no mean."""
    stats = frame["stat"].astype(str)
    if stat != "mean" or "kind" not in frame.columns:
        return stats == stat
    primary = frame["kind"].astype(str).map(PRIMARY_STAT).fillna("mean")
    return stats == primary
