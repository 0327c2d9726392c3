"""``Probe``: forward hooks that record the statistics each global-aggregation site uses.

What is recorded, per site, per sample, per channel (``stat``):

* a global site (``nn.InstanceNorm2d``, ``nn.AdaptiveAvgPool2d(1)``, or a TLC site whose
  window covers the map): ``mean``, the spatial mean of the site's input; for kind 'in'
  also ``std``, the biased standard deviation (what instance norm divides by, before
  its eps). ``y`` and ``x`` are null.
* a TLC site on a map larger than its window: the same statistics over local windows,
  computed as the module computes them (exact or ``fast_imp``), at a regular grid of
  window positions: ``positions`` rows and columns spread evenly over the distinct
  windows (every window lying inside the map; border pixels reuse the nearest one by
  replicate padding, so they add no new values). ``y, x`` is the centre pixel of the
  window in feature-map coordinates: the window covers rows
  ``y - (k_h - 1) // 2 .. y - (k_h - 1) // 2 + k_h - 1`` and likewise columns.
* a global site given a training-extent :class:`~tlc_probe.probe.windows.Window`
  (``windows=``): the same statistics over windows of that extent placed where the
  training-size tiles lie (:func:`~tlc_probe.probe.windows.window_stats`), ``y, x`` their
  centres; the model's output is unchanged (the ``window`` regime).
* a channel-attention site (kind 'attn'): :data:`~tlc_probe.tlc.attention.ATTN_STATS`
  per channel (``q_rms``, ``k_rms``, ``logit_mean``) of the query and key maps the
  module computes (read from the output of its ``qkv_dwconv``, so nothing is computed
  twice), over the whole map, the TLC windows or the training-extent windows as above.

Hooks keep the gathered tensors on the model's device; :meth:`Probe.take` moves all of
them to the host in one transfer (no per-site synchronisation inside the forward pass,
one per ``take``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn

from ..functional import find_sites
from ..sites import (
    PRIMARY_STAT,
    SITE_KINDS,
    Site,
    select_sites,
    temporary_hooks,
)
from ..tlc.attention import attention_stats
from .records import RECORD_COLUMNS, empty_frame
from .windows import Window, window_stats


@dataclass
class _Record:
    stat: str
    values: torch.Tensor  # (N, C) or (N, C, P)
    ys: torch.Tensor | None = None  # (P,) feature-map rows, local records only
    xs: torch.Tensor | None = None
    forward: int = 0  # index of the model forward pass it came from


@dataclass
class _SiteLog:
    site: Site
    records: list[_Record] = field(default_factory=list)


class Probe:
    """Record the statistics the global-aggregation sites of ``model`` aggregate.

    A context manager: on entry it registers one forward pre-hook per selected site (and
    removes them all on exit, also when the block raises). Every forward pass inside the
    block appends, per site, the statistics of that call; :meth:`take` returns them as a
    tidy DataFrame and clears them.

    Args:
        model: the network (global or TLC-converted by :func:`tlc_probe.convert`).
        kinds: site kinds to record: 'in', 'se', 'attn'.
        names: fnmatch patterns of site names (default: all).
        depths: inclusive (lo, hi) range of execution order (either end ``None``).
        positions: grid positions per axis for local (TLC) sites (16 -> up to 256 per map).
        example: input for the pass that numbers the sites (default: random 64 x 64).
        enabled: called at every site call while active; the call is recorded only when
            it returns True (default: always). A training recorder passes e.g.
            ``lambda: model.training`` so that validation passes are not recorded.
        windows: ``{site name: Window}`` (e.g. :func:`~tlc_probe.probe.training_windows`):
            those global sites record their statistics over training-extent windows
            instead of the whole map. Naming a TLC-converted site raises ``ValueError``.
        extra_sites: declared sites, {qualified module name: kind}, for aggregations no
            rule recognises (the module's input is recorded as for a site of that kind);
            one that the numbering pass never reaches raises ``ValueError``.

    Functional aggregations (``x.mean((2, 3), keepdim=True)`` and the others of
    :mod:`tlc_probe.functional`) are attached to ``model`` as sites by the numbering pass
    (proxy modules, outputs unchanged) and recorded like the others.

    Example::

        with Probe(model) as probe:
            model(x)                       # x: (2, 3, H, W)
        df = probe.take(["a", "b"])        # one row per site, sample, channel, stat
    """

    def __init__(
        self,
        model: nn.Module,
        kinds: Iterable[str] = SITE_KINDS,
        names: Sequence[str] | None = None,
        depths: tuple[int | None, int | None] | None = None,
        positions: int = 16,
        example: torch.Tensor | None = None,
        enabled: Callable[[], bool] | None = None,
        windows: Mapping[str, Window] | None = None,
        extra_sites: Mapping[str, str] | None = None,
    ) -> None:
        if positions < 1:
            raise ValueError(f"positions must be >= 1, got {positions}")
        self.model = model
        self.positions = positions
        self.enabled = enabled
        self.all_sites = find_sites(model, example, extra=extra_sites)
        if never := [
            s.name for s in self.all_sites if s.name in (extra_sites or {}) and not s.executed
        ]:
            raise ValueError(f"declared sites never reached in a forward pass: {never}")
        self.sites = select_sites(self.all_sites, kinds, names, depths)
        self.never_run = [s.name for s in self.all_sites if not s.executed]
        self.windows = dict(windows or {})
        if local := [s.name for s in self.sites if s.local and s.name in self.windows]:
            raise ValueError(f"windows= is for global sites; these are TLC-converted: {local}")
        self._logs = [_SiteLog(s) for s in self.sites]
        self._hooks = None  # the temporary_hooks context while active
        self._batches: list[int] = []  # batch size of each model forward pass since take()
        self._input_size: tuple[int, int] | None = None  # (H, W) of the last model input

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> Probe:
        if self._hooks is not None:
            raise RuntimeError("this Probe is already active")
        pairs = [(self.model, self._count)]
        pairs += [(g.site.module, self._hook(g)) for g in self._logs if g.site.kind != "attn"]
        # attention: a forward hook on the module's qkv_dwconv sees q, k, v as computed
        attn = [g for g in self._logs if g.site.kind == "attn"]
        after = [(g.site.module.qkv_dwconv, self._attn_hook(g)) for g in attn]
        hooks = temporary_hooks(pairs)
        hooks.__enter__()  # registers all or none (it removes what it added on failure)
        try:
            post = temporary_hooks(after, pre=False)
            post.__enter__()
        except BaseException:
            hooks.__exit__(None, None, None)
            raise
        self._hooks = (hooks, post)
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this probe registered (idempotent)."""
        hooks, self._hooks = self._hooks, None
        self._input_size = None
        if hooks is not None:
            for h in reversed(hooks):
                h.__exit__(None, None, None)

    @property
    def active(self) -> bool:
        """Whether hooks are registered now."""
        return self._hooks is not None

    def _count(self, _module, args) -> None:
        if self.enabled is not None and not self.enabled():
            return
        x = args[0] if args else None
        self._batches.append(int(x.shape[0]) if isinstance(x, torch.Tensor) else 1)
        is_map = isinstance(x, torch.Tensor) and x.dim() == 4
        self._input_size = (int(x.shape[-2]), int(x.shape[-1])) if is_map else None

    def _hook(self, log: _SiteLog):
        kind, local = log.site.kind, log.site.local
        window = self.windows.get(log.site.name)

        def hook(module, args):
            if self.enabled is not None and not self.enabled():
                return
            x = args[0]
            f = max(0, len(self._batches) - 1)
            size = (x.shape[-2], x.shape[-1])
            with torch.no_grad():
                if window is not None:
                    stats, ys, xs = window_stats(x, kind, window, self._input_size)
                    for stat, v in stats.items():
                        log.records.append(_Record(stat, v, ys, xs, f))
                    return
                if local and not module.covers(size):
                    stats, ys, xs = module.window_stats(x, self.positions)
                    for stat, v in stats.items():
                        log.records.append(_Record(stat, v, ys, xs, f))
                    return
                xf = x.detach().float() if x.dtype != torch.float64 else x.detach()
                if kind == "in":
                    var, mean = torch.var_mean(xf, dim=(-2, -1), correction=0)
                    log.records.append(_Record("mean", mean, forward=f))
                    log.records.append(_Record("std", var.sqrt(), forward=f))
                else:
                    log.records.append(_Record("mean", xf.mean(dim=(-2, -1)), forward=f))

        return hook

    def _attn_hook(self, log: _SiteLog):
        window = self.windows.get(log.site.name)
        site = log.site.module

        def hook(_qkv_dwconv, _args, qkv):
            if self.enabled is not None and not self.enabled():
                return
            f = max(0, len(self._batches) - 1)
            q, k, _ = qkv.detach().chunk(3, dim=1)
            size = (q.shape[-2], q.shape[-1])
            heads, temp = site.num_heads, site.temperature.detach()
            with torch.no_grad():
                if window is not None:
                    stats, ys, xs = window_stats(
                        torch.cat([q, k], dim=1), "attn", window, self._input_size, (temp, heads)
                    )
                elif log.site.local and not site.covers(size):
                    # (rows of a channel contiguous: a channels-last map interleaves them)
                    stats, ys, xs = site.window_stats(
                        q.contiguous(), k.contiguous(), self.positions
                    )
                else:
                    stats, ys, xs = attention_stats(q, k, temp, heads), None, None
                for stat, v in stats.items():
                    log.records.append(_Record(stat, v, ys, xs, f))

        return hook

    # -- results ---------------------------------------------------------------------
    def pending(self) -> int:
        """Number of samples that went through the model since the last :meth:`take`:
        counted at the model's ``forward``, or, when the sites ran without it (e.g. through
        a ``forward_all`` method), the fewest samples any site recorded."""
        if self._batches:
            return sum(self._batches)
        counts = [
            sum(r.values.shape[0] for r in g.records if r.stat == PRIMARY_STAT[g.site.kind])
            for g in self._logs
        ]
        counts = [c for c in counts if c]
        return min(counts) if counts else 0

    def clear(self) -> None:
        """Drop everything recorded so far."""
        self._batches.clear()
        for log in self._logs:
            log.records.clear()

    def take(self, samples: Sequence[str]) -> pd.DataFrame:
        """Everything recorded since the last call, as a tidy DataFrame, then clear.

        Args:
            samples: one id per sample, in the order the samples went through the model
                (over all forward passes since the last call).

        Returns:
            Columns :data:`~tlc_probe.probe.records.RECORD_COLUMNS`: site (str), kind,
            depth (int32), sample, channel (int32), y, x (Int32, null for global
            statistics), stat ('mean' | 'std'), value (float32); one row per site x
            sample x channel x stat (x position for local sites). Non-finite values are
            kept; the store counts them.

        A site that runs k times in one forward pass (MPRNet's stage 1 runs on four
        quarter patches) records k rows per sample and channel, with sample ids
        ``<id>/part<j>`` (j = 0 .. k - 1): the statistic of each part.

        Raises:
            ValueError: ``samples`` does not match the samples that went through the
                model, a site did not run in a pass, or its count is no multiple of them.
        """
        samples = np.asarray(list(samples), dtype=object)
        if not self._batches and not any(log.records for log in self._logs):
            if len(samples):
                raise ValueError(f"nothing was recorded, {len(samples)} ids given")
            return empty_frame()
        batches = self._batches or [len(samples)]  # hooks fired outside model.forward
        if sum(batches) != len(samples):
            n = sum(batches)
            self.clear()
            raise ValueError(f"{n} samples went through the model, {len(samples)} ids given")
        starts = np.concatenate([[0], np.cumsum(batches)])
        blocks: list[_Block] = []
        try:
            self._to_host()
            for log in self._logs:
                for f, b in enumerate(batches):
                    recs = [r for r in log.records if r.forward == f]
                    by_stat: dict[str, list[_Record]] = {}
                    for r in recs:
                        by_stat.setdefault(r.stat, []).append(r)
                    ids = samples[starts[f] : starts[f] + b]
                    for stat, rs in by_stat.items():
                        blocks.extend(_rows(log.site, stat, rs, _call_ids(log.site, rs, ids)))
                    if not by_stat:
                        raise ValueError(f"site {log.site.name} did not run in forward pass {f}")
        finally:
            self.clear()
        if not blocks:
            return empty_frame()
        return _frame(blocks)

    def _to_host(self) -> None:
        """Move every recorded tensor (values and positions) to the host: one transfer per
        device and dtype (typically two: float values, int64 positions), exact."""
        recs = [r for log in self._logs for r in log.records]
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for r in recs:
            for t in (r.values, r.ys, r.xs):
                if t is not None:
                    groups.setdefault((t.device, t.dtype), []).append(t)
        host: dict[int, torch.Tensor] = {}
        for ts in groups.values():
            flat = torch.cat([t.reshape(-1) for t in ts]).cpu()
            for t, part in zip(ts, flat.split([t.numel() for t in ts]), strict=True):
                host[id(t)] = part.reshape(t.shape)
        for r in recs:
            r.values = host[id(r.values)]
            r.ys = None if r.ys is None else host[id(r.ys)]
            r.xs = None if r.xs is None else host[id(r.xs)]


def _call_ids(site: Site, recs: list[_Record], ids: np.ndarray) -> np.ndarray:
    """Sample ids for the rows of one site's records in one forward pass of ``len(ids)``
    samples. A site that runs k times per pass (MPRNet's stage 1 on four quarter
    patches, or one call on a batch k times larger) gets ``<id>/part<j>`` for its j-th
    block of ``len(ids)`` rows."""
    n = sum(int(r.values.shape[0]) for r in recs)
    if n == len(ids):
        return ids
    if n % len(ids):
        raise ValueError(
            f"site {site.name} recorded {n} samples in a forward pass of {len(ids)}; cannot "
            "assign them to samples (exclude it with names=...)"
        )
    k = n // len(ids)
    return np.array([f"{s}/part{j}" for j in range(k) for s in ids], dtype=object)


@dataclass
class _Block:
    """The rows of one record: ``n`` rows of one site and stat, their samples, channels,
    positions (None for a global statistic) and values."""

    site: Site
    stat: str
    sample: np.ndarray
    channel: np.ndarray
    y: np.ndarray | None
    x: np.ndarray | None
    value: np.ndarray

    @property
    def n(self) -> int:
        return int(self.value.size)


def _rows(site: Site, stat: str, recs: list[_Record], ids: np.ndarray) -> Iterable[_Block]:
    """The row blocks of one site and stat in one forward pass; ``ids`` names every row
    block of the concatenated records. Global records, (n, C) each, are concatenated on
    the device and moved to the host once."""
    if all(r.ys is None for r in recs) and len(recs) > 1:
        recs = [_Record(stat, torch.cat([r.values for r in recs]))]
    start = 0
    for r in recs:
        v = r.values.float().cpu().numpy()
        nb, c = v.shape[:2]
        p = v.shape[2] if v.ndim == 3 else 1
        block = ids[start : start + nb]
        start += nb
        y = x = None
        if r.ys is not None:
            y = np.tile(r.ys.cpu().numpy(), nb * c).astype(np.int32)
            x = np.tile(r.xs.cpu().numpy(), nb * c).astype(np.int32)
        yield _Block(
            site,
            stat,
            np.repeat(block, c * p),
            np.tile(np.repeat(np.arange(c, dtype=np.int32), p), nb),
            y,
            x,
            v.reshape(-1).astype(np.float32),
        )


def _frame(blocks: list[_Block]) -> pd.DataFrame:
    """One tidy frame (:data:`RECORD_COLUMNS`) of row blocks, in order, built column by
    column (one DataFrame, not one per block)."""
    sizes = [b.n for b in blocks]

    def each(get) -> np.ndarray:
        return np.concatenate([get(b) for b in blocks])

    def constant(get, dtype) -> np.ndarray:
        return np.repeat(np.array([get(b) for b in blocks], dtype=dtype), sizes)

    def text(get) -> pd.Series:
        # a string per block: its rows index a dictionary of the distinct strings (no
        # Python string per row)
        codes, names = pd.factorize(np.array([get(b) for b in blocks], dtype=object))
        index = pa.array(np.repeat(codes.astype(np.int32), sizes))
        strings = pa.DictionaryArray.from_arrays(index, pa.array(list(names), pa.string()))
        return strings.cast(pa.string()).to_pandas()

    def position(get) -> pd.arrays.IntegerArray:
        parts = [get(b) if get(b) is not None else np.zeros(b.n, np.int32) for b in blocks]
        null = np.repeat(np.array([get(b) is None for b in blocks]), sizes)
        return pd.arrays.IntegerArray(np.concatenate(parts).astype(np.int32), null)

    columns = {
        "site": text(lambda b: b.site.name),
        "kind": text(lambda b: b.site.kind),
        "depth": constant(lambda b: b.site.depth, np.int32),
        "sample": each(lambda b: b.sample),
        "channel": each(lambda b: b.channel),
        "y": position(lambda b: b.y),
        "x": position(lambda b: b.x),
        "stat": text(lambda b: b.stat),
        "value": each(lambda b: b.value),
    }
    return pd.DataFrame(columns, columns=list(RECORD_COLUMNS))
