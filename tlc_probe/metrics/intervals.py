"""95 % intervals with images as the unit: a number without an interval is not a finding.

The rows of one image (its positions, channels, tiles) are not independent, so every
interval here resamples *images* — clusters — never rows (a row bootstrap would be far too
narrow). Two kinds:

* :func:`paired_difference`: per-image values of two schemes on the same images (PSNR of
  TLC and of whole-image inference): the mean paired difference, its bootstrap interval
  (``scipy.stats.bootstrap`` over images) and, from 6 images on, the Wilcoxon signed-rank
  p-value (``scipy.stats.wilcoxon``).
* :func:`w1_intervals`: per site, statistic and comparison ``cmp~ref`` of the tidy
  statistics, the cluster bootstrap interval of W1 — the images of ``cmp`` and the
  clusters of ``ref`` (training images for ``train``; test images for the other regimes)
  resampled, paired where both sides come from the same images — and the paired
  difference W1(tlc~ref) − W1(whole~ref) with its interval.

The cluster bootstrap never touches rows: each cluster is summarised once by its
histogram on :data:`BINS` bins at the group's pooled quantiles, a resample is a weighted
sum of cluster histograms, and W1 is the integral of the CDF difference with the CDFs
linear inside a bin (the histogram's W1 is within a fraction of a bin width of the exact
one). Memory is (clusters x bins) per group, whatever the number of rows.
Intervals are percentile intervals of ``scipy.stats.bootstrap`` (BCa needs more images
than a test set of three photos has to be stable); seeded, so a rerun gives the same
numbers. Fewer than :data:`MIN_CLUSTERS` images on a side: no W1 interval (NaN); a
paired mean on fewer than :data:`MIN_BOOTSTRAP` images gets Student's t interval.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

#: Histogram bins per group for the cluster bootstrap of W1 (at the pooled quantiles:
#: the histogram's W1 is within ~0.5 % of the exact one on smooth samples).
BINS = 256
#: Bootstrap resamples of every interval.
N_RESAMPLES = 1000
#: Fewest images for a Wilcoxon signed-rank p-value.
MIN_WILCOXON = 6
#: Fewest images for a bootstrap interval of a paired mean; below, Student's t interval
#: (a bootstrap of 3 values is their range: it excludes 0 a quarter of the time by chance).
MIN_BOOTSTRAP = 10
#: Fewest images (clusters) on a side for a cluster-bootstrap interval of W1; below, none
#: (NaN): resampling 3 images gives 10 distinct resamples, far too few for 95 %.
MIN_CLUSTERS = 5
CONFIDENCE = 0.95

_CROP_OR_TILE = re.compile(r"^(.*)/[ct]\d+@\d+,\d+$")
_DEGRADATION = re.compile(r"^(.*)#\d+$")


def image_of(samples: Sequence[str] | pd.Series | np.ndarray) -> np.ndarray:
    """The image (cluster) of each sample id: ``<image>/c<k>@y,x`` (a training crop) and
    ``<image>/t<k>@y,x`` (a tile) belong to ``<image>``, and ``<photo>#<k>`` (the k-th
    degradation of a bundled photo) to ``<photo>``; any other id is its own image.
    Returns an object array of strings."""
    out = np.empty(len(samples), dtype=object)
    for i, s in enumerate(np.asarray(samples, dtype=object)):
        m = _CROP_OR_TILE.match(str(s))
        image = m.group(1) if m else str(s)
        k = _DEGRADATION.match(image)
        out[i] = k.group(1) if k else image
    return out


def _ranks(labels: Sequence | np.ndarray) -> tuple[np.ndarray, int]:
    """Each of ``labels`` as its rank among the distinct labels in sorted order (int64),
    and how many distinct labels there are; each distinct label is compared once."""
    codes, uniques = pd.factorize(np.asarray(labels, dtype=object))
    _, ranks = np.unique(np.asarray(uniques, dtype=object), return_inverse=True)
    return ranks.reshape(-1)[codes], len(uniques)


def image_ranks(samples: Sequence[str] | pd.Series | np.ndarray) -> tuple[np.ndarray, int]:
    """Each sample id's image (:func:`image_of`) as its rank among the images' sorted
    names, and the number of images: (int64 array, int). Each distinct id is parsed once
    (a site's rows hold a few hundred samples thousands of times), so clusters are
    numbered in name order without comparing a string per row."""
    codes, uniques = pd.factorize(samples)
    ranks, n = _ranks(image_of(np.asarray(uniques, dtype=object)))
    return ranks[codes], n


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of ``a - b`` over paired units (images) with its interval: bootstrap from
    :data:`MIN_BOOTSTRAP` images on, Student's t below (wide on few images, as it must be).

    Args:
        a: one value per image (e.g. PSNR in dB of one scheme); pairs with a
            non-finite value are dropped.
        b: the other scheme's values on the same images, in the same order.
        confidence: of the interval.
        n_resamples: bootstrap resamples (``scipy.stats.bootstrap``, percentile method,
            images resampled; from :data:`MIN_BOOTSTRAP` images on).
        seed: of the resampling.

    Returns:
        {"diff", "lo", "hi", "p_wilcoxon", "n"}: lo / hi NaN for fewer than 2 images (and
        equal to diff when every difference is the same); ``p_wilcoxon`` the two-sided
        Wilcoxon signed-rank p-value from :data:`MIN_WILCOXON` images on (NaN below, and
        1.0 when every difference is 0).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D and paired, got shapes {a.shape} and {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    n = int(d.size)
    out = {"diff": float(d.mean()) if n else np.nan, "lo": np.nan, "hi": np.nan}
    out |= {"p_wilcoxon": np.nan, "n": n}
    if n >= 2:
        if np.all(d == d[0]):
            out["lo"] = out["hi"] = float(d[0])
        elif n < MIN_BOOTSTRAP:
            ci = sps.ttest_1samp(d, 0.0).confidence_interval(confidence)
            out["lo"], out["hi"] = float(ci.low), float(ci.high)
        else:
            res = sps.bootstrap(
                (d,),
                np.mean,
                n_resamples=n_resamples,
                confidence_level=confidence,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
            out["lo"] = float(res.confidence_interval.low)
            out["hi"] = float(res.confidence_interval.high)
    if n >= MIN_WILCOXON:
        out["p_wilcoxon"] = 1.0 if not np.any(d) else float(sps.wilcoxon(d).pvalue)
    return out


# -- W1 by cluster bootstrap ---------------------------------------------------------------


def _multiplicity(idx: np.ndarray, n_clusters: int) -> np.ndarray:
    """(..., n) resampled cluster indices -> (m, n_clusters) counts of each cluster per
    resample (m = the product of the leading dimensions)."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1, idx.shape[-1])
    m = idx.shape[0]
    flat = idx + n_clusters * np.arange(m)[:, None]
    return np.bincount(flat.ravel(), minlength=m * n_clusters).reshape(m, n_clusters)


def _cdfs(weights: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """CDFs at the bin edges (m, B + 1) of the mixtures ``weights`` (m, n) of the cluster
    histograms ``hist`` (n, B)."""
    counts = weights @ hist
    cum = np.cumsum(counts, axis=1)
    total = np.maximum(cum[:, -1:], 1e-300)
    return np.concatenate([np.zeros((cum.shape[0], 1)), cum / total], axis=1)


def _w1_of_cdfs(fa: np.ndarray, fb: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """W1 of CDFs given at the bin edges, linear inside each bin: the integral of
    |F_a - F_b| bin by bin (where the difference changes sign inside a bin, the two
    triangles)."""
    d = fa - fb
    d0, d1 = d[:, :-1], d[:, 1:]
    a0, a1 = np.abs(d0), np.abs(d1)
    total = a0 + a1
    area = 0.5 * total
    cross = d0 * d1 < 0  # (then total > 0)
    if cross.any():
        area[cross] = (d0[cross] ** 2 + d1[cross] ** 2) / (2.0 * total[cross])
    return area @ widths


class _Group:
    """One group's values summarised per (regime, image): histograms on shared bins.

    ``regimes``: each value's regime as an index into ``names``; ``images``: each value's
    image as its rank among the images' sorted names (so that clusters are in name
    order); ``n_images``: the number of ranks."""

    def __init__(
        self,
        values: np.ndarray,
        regimes: np.ndarray,
        names: Sequence[str],
        images: np.ndarray,
        n_images: int,
        bins: int,
    ):
        edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
        self.flat = edges.size < 2  # every value the same: every W1 is 0
        self.widths = np.diff(edges)
        b = max(self.widths.size, 1)
        where = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, b - 1)
        self.hist: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for code in np.flatnonzero(np.bincount(regimes, minlength=len(names))):
            mine = regimes == code
            img = images[mine]
            present = np.bincount(img, minlength=n_images) > 0
            ids = np.flatnonzero(present)  # image ranks, ascending: name order
            local = (np.cumsum(present) - 1)[img]
            counts = np.bincount(local * b + where[mine], minlength=ids.size * b)
            self.hist[str(names[code])] = (ids, counts.reshape(ids.size, b).astype(np.float64))

    def aligned(self, *regimes: str) -> list[np.ndarray] | None:
        """The histograms of ``regimes`` when they come from the same images (rows in the
        same image order: resampled together), else None (resampled independently)."""
        ids = [self.hist[r][0] for r in regimes]
        if any(not np.array_equal(i, ids[0]) for i in ids[1:]):
            return None
        return [self.hist[r][1] for r in regimes]


def _interval(data: tuple[np.ndarray, ...], statistic, confidence, n_resamples, seed):
    if any(d.size < MIN_CLUSTERS for d in data):
        return np.nan, np.nan
    res = sps.bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        batch=max(1, min(n_resamples, 20_000_000 // max(1, sum(d.size for d in data) * 64))),
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _w1_interval(group: _Group, cmp: str, ref: str, confidence, n_resamples, seed):
    """(lo, hi) of W1(cmp, ref) resampling images (jointly where both are the same)."""
    if group.flat:
        return 0.0, 0.0
    w = group.widths
    pair = group.aligned(cmp, ref)
    if pair is not None:
        ha, hb = pair
        n = ha.shape[0]

        def paired(i, axis=-1):
            m = _multiplicity(i, n)
            return _w1_of_cdfs(_cdfs(m, ha), _cdfs(m, hb), w).reshape(i.shape[:-1])

        return _interval((np.arange(n),), paired, confidence, n_resamples, seed)
    ha, hb = group.hist[cmp][1], group.hist[ref][1]

    def independent(i, j, axis=-1):
        fa = _cdfs(_multiplicity(i, ha.shape[0]), ha)
        fb = _cdfs(_multiplicity(j, hb.shape[0]), hb)
        return _w1_of_cdfs(fa, fb, w).reshape(i.shape[:-1])

    data = (np.arange(ha.shape[0]), np.arange(hb.shape[0]))
    return _interval(data, independent, confidence, n_resamples, seed)


def _dw1_interval(group: _Group, ref: str, confidence, n_resamples, seed):
    """(lo, hi) of W1(tlc, ref) - W1(whole, ref): tlc and whole on the same images,
    resampled together (with ``ref`` too when it comes from the same images)."""
    if group.flat:
        return 0.0, 0.0
    w = group.widths
    three = group.aligned("tlc", "whole", ref)
    if three is not None:
        ht, hw, hr = three
        n = ht.shape[0]

        def paired(i, axis=-1):
            m = _multiplicity(i, n)
            fr = _cdfs(m, hr)
            d = _w1_of_cdfs(_cdfs(m, ht), fr, w) - _w1_of_cdfs(_cdfs(m, hw), fr, w)
            return d.reshape(i.shape[:-1])

        return _interval((np.arange(n),), paired, confidence, n_resamples, seed)
    two = group.aligned("tlc", "whole")
    if two is None:
        return np.nan, np.nan
    ht, hw = two
    hr = group.hist[ref][1]

    def independent(i, j, axis=-1):
        m = _multiplicity(i, ht.shape[0])
        fr = _cdfs(_multiplicity(j, hr.shape[0]), hr)
        d = _w1_of_cdfs(_cdfs(m, ht), fr, w) - _w1_of_cdfs(_cdfs(m, hw), fr, w)
        return d.reshape(i.shape[:-1])

    data = (np.arange(ht.shape[0]), np.arange(hr.shape[0]))
    return _interval(data, independent, confidence, n_resamples, seed)


def w1_intervals(
    stats: pd.DataFrame,
    comparisons: Sequence[str],
    keys: Sequence[str],
    *,
    reference: str = "train",
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    bins: int = BINS,
) -> pd.DataFrame:
    """Cluster-bootstrap intervals of the pooled (all channels) W1 of every group.

    Args:
        stats: tidy statistics with ``keys``, ``regime``, ``sample`` and ``value``
            columns (non-finite values are left out).
        comparisons: ``"cmp~ref"`` strings.
        keys: the columns that make a group (model, task, site, kind, depth, stat, and
            step where there is one).
        reference: the regime of the paired TLC difference (``tlc~reference`` minus
            ``whole~reference``).
        confidence: of the intervals.
        n_resamples: bootstrap resamples of each interval.
        seed: of the resampling (reruns agree).
        bins: histogram bins per group.

    Returns:
        One row per group and comparison present: ``keys``, comparison, w1_lo, w1_hi
        (units of the statistic), and on each group's rows dw1_tlc_lo, dw1_tlc_hi (the
        interval of W1(tlc~reference) - W1(whole~reference); NaN where a side is missing).
    """
    columns = [*keys, "comparison", "w1_lo", "w1_hi", "dw1_tlc_lo", "dw1_tlc_hi"]
    values = stats["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    keep = np.isfinite(values)
    if not keep.any():
        return pd.DataFrame(columns=columns)
    frame = stats.loc[keep, [*keys, "regime", "sample"]]
    # each image as its rank in name order, each regime as a code (integer work per group)
    images, n_images = image_ranks(frame["sample"])
    regimes, names = pd.factorize(frame["regime"].astype(str))
    values = values[keep]
    pairs = [(c, *c.split("~", 1)) for c in dict.fromkeys(comparisons)]
    rows = []
    by = frame.groupby(list(keys), sort=False, observed=True, dropna=False)
    for key, idx in by.indices.items():
        key = key if isinstance(key, tuple) else (key,)
        group = _Group(values[idx], regimes[idx], names, images[idx], n_images, bins)
        dw = (np.nan, np.nan)
        if {"tlc", "whole", reference} <= set(group.hist):
            dw = _dw1_interval(group, reference, confidence, n_resamples, seed)
        for comparison, cmp, ref in pairs:
            if cmp in group.hist and ref in group.hist:
                lo, hi = _w1_interval(group, cmp, ref, confidence, n_resamples, seed)
                rows.append((*key, comparison, lo, hi, *dw))
    return pd.DataFrame(rows, columns=columns)


def sampling_floor(
    values: np.ndarray,
    images: Sequence[str] | np.ndarray,
    other: np.ndarray,
    other_images: Sequence[str] | np.ndarray,
    *,
    n_splits: int = 20,
    seed: int = 0,
) -> float:
    """The W1 that sampling images alone gives between two sides drawn from one
    distribution: ``values`` of ``images`` (one image id per value) against ``other`` of
    ``other_images`` — e.g. the content link (tiles~train) of a test set whose content
    equals training's by construction.

    Each side's part is estimated from the side itself, so that the two may be sampled
    differently (many tiles of few test images, a few crops of many training images):
    split its n images into random halves A, B ``n_splits`` times, take the mean
    W1(values of A, values of B) (``scipy.stats.wasserstein_distance``) and scale it by
    sqrt((1/n) / (1/|A| + 1/|B|)) — W1 between two samples of one distribution shrinks
    about as that root of the sample sizes, and the images, not the values, are the
    samples. The floor is the root of the sum of the two parts' squares. NaN when a side
    has fewer than 4 images."""
    rng = np.random.default_rng(seed)
    parts = [
        _half_split_w1(values, images, n_splits, rng),
        _half_split_w1(other, other_images, n_splits, rng),
    ]
    return float(np.hypot(*parts))


def _half_split_w1(values, images, n_splits: int, rng: np.random.Generator) -> float:
    """One side's part of :func:`sampling_floor` (NaN below 4 images)."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    # images numbered in name order, as rng.permutation(sorted names) would take them
    ranks, n = _ranks(np.asarray(images, dtype=object)[ok])
    if n < 4:
        return float("nan")
    order = np.argsort(values[ok], kind="stable")
    sorted_values, image = values[ok][order], ranks[order]
    steps = np.diff(sorted_values)
    half = n // 2
    w = []
    for _ in range(n_splits):
        chosen = np.zeros(n, dtype=bool)
        chosen[rng.permutation(n)[:half]] = True
        in_a = chosen[image]
        # W1 of the two halves (scipy.stats.wasserstein_distance): both are subsequences
        # of the sorted values, so their CDFs at each breakpoint are running counts
        below_a = np.cumsum(in_a)[:-1]
        below_b = np.arange(1, in_a.size) - below_a
        n_a = int(in_a.sum())
        gap = np.abs(below_a / n_a - below_b / (in_a.size - n_a))
        w.append(float(np.sum(gap * steps)))
    return float(np.mean(w) * np.sqrt((1 / n) / (1 / half + 1 / (n - half))))
