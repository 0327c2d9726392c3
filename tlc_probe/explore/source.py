"""Lazy, bounded-memory access to a statistics store for interactive exploration: the
sites of each model by depth, one site's rows at a time (a small cache), and the shift
rows an explorer shows, computed only for what is drawn."""

from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ..metrics.shift import (
    COMPARISONS,
    concat_shift_tables,
    parse_comparison,
    shift_table,
    stat_mask,
)
from ..store.read import SiteIndex, read_site

#: The columns read for a site (the store's others, sample / y / x / step, are not needed).
SITE_COLUMNS = ("regime", "sample", "kind", "depth", "channel", "stat", "step", "value")
#: The regimes an explorer knows, in the order it shows them.
REGIMES = ("train", "whole", "tlc", "tiles", "window")


def _newest_mtime(root: Path) -> float:
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".parquet", ".json")]
    return max((p.stat().st_mtime for p in files), default=0.0)


class StatsSource:
    """What an explorer reads, and no more.

    ``stats`` is a statistics directory (or several, or a folder of them, as
    :func:`~tlc_probe.store.read_stats` takes them), or a :class:`~tlc_probe.store.SiteIndex`.
    Building a source reads only the part files' footers. Each site's rows are read when
    they are first asked for (only :data:`SITE_COLUMNS`; a site recorded during training,
    with steps, is refused with ``ValueError``) and the last ``cache_sites`` of
    them are kept; the pooled shift rows of a whole (model, task) — what a depth profile
    draws — are computed site by site (one site's rows in memory at a time) the first time
    they are asked for, unless ``shift`` (a shift table, or the path of one as ``.parquet``
    or ``.csv``) already holds them.

    :attr:`reads` counts the sites whose statistics were read from disk, by (model,
    task, site) (listing a model's sites reads only their kind and depth columns,
    uncounted).

    Example::

        source = StatsSource.open("results")          # results/stats (+ results/shift)
        model, task = source.groups[0]
        sites = source.sites(model, task)             # site, kind, depth; by depth
        rows = source.rows(model, task, sites.site[0])
    """

    def __init__(
        self,
        stats: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | SiteIndex,
        shift: pd.DataFrame | str | os.PathLike[str] | None = None,
        comparisons: Sequence[str] = COMPARISONS,
        cache_sites: int = 4,
    ) -> None:
        if cache_sites < 1:
            raise ValueError(f"cache_sites must be >= 1, got {cache_sites}")
        if not isinstance(stats, SiteIndex):
            roots = [stats] if isinstance(stats, str | os.PathLike) else list(stats)
            if files := [str(r) for r in roots if Path(r).is_file()]:
                raise ValueError(
                    f"{files[0]} is a file: the explorer reads a statistics folder (a collect "
                    "--out, a main job's stats/ or its output folder), not a part file"
                )
        self.index = stats if isinstance(stats, SiteIndex) else SiteIndex(stats)
        self.comparisons = tuple(comparisons)
        for c in self.comparisons:
            parse_comparison(c)
        self.cache_sites = cache_sites
        #: sites read from disk, by (model, task, site)
        self.reads: Counter[tuple[str, str, str]] = Counter()
        self._rows: OrderedDict[tuple[str, str, str], pd.DataFrame] = OrderedDict()
        self._sites: dict[tuple[str, str], pd.DataFrame] = {}
        self._pooled: dict[tuple[str, str], pd.DataFrame] = {}
        if shift is not None:
            table = _read_table(shift) if not isinstance(shift, pd.DataFrame) else shift
            if missing := [c for c in SHIFT_COLUMNS if c not in table.columns]:
                raise ValueError(f"shift is no shift table: it lacks the columns {missing}")
            table = table[table["channel"].astype(str) == "all"]
            for (model, task), part in table.groupby(["model", "task"], observed=True):
                self._pooled[(str(model), str(task))] = part.reset_index(drop=True)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], comparisons: Sequence[str] = COMPARISONS
    ) -> StatsSource:
        """A source for ``path``: the output folder of ``tlc-probe reproduce`` (its
        ``stats/``, with ``shift/shift.parquet`` for the depth profiles when that is newer
        than every statistics file) or a statistics directory / folder of them.
        ``FileNotFoundError`` when it holds no statistics."""
        root = Path(path)
        stats, shift = root, None
        if (root / "stats").is_dir():
            stats = root / "stats"
            table = root / "shift" / "shift.parquet"
            if table.is_file() and table.stat().st_mtime >= _newest_mtime(stats):
                shift = table
        return cls(stats, shift=shift, comparisons=comparisons)

    @classmethod
    def open_test_sets(
        cls, path: str | os.PathLike[str], comparisons: Sequence[str] = COMPARISONS
    ) -> dict[str, StatsSource]:
        """One source per test set of ``path``: :meth:`open` of it under its test set's
        name (a main job's ``summary.json`` names it; else ``photos``), and of its
        ``synthetic/`` folder (the main job's generated test set) when present."""
        root = Path(path)
        name = "photos"
        if (root / "summary.json").is_file():
            name = str(json.loads((root / "summary.json").read_text()).get("test_set", name))
        sources = {name: cls.open(root, comparisons)}
        if (root / "synthetic" / "stats").is_dir() and name != "synthetic":
            sources["synthetic"] = cls.open(root / "synthetic", comparisons)
        return sources

    @property
    def groups(self) -> list[tuple[str, str]]:
        """Every (model, task) of the store, sorted."""
        return sorted({(m, t) for m, t, _ in self.index})

    def sites(self, model: str, task: str) -> pd.DataFrame:
        """The sites of (model, task): a frame with columns site, kind, depth, ordered by
        depth then name. Reads only the kind and depth columns of each site (where a row
        group holds one site their value comes from its statistics, not its pages)."""
        key = (model, task)
        if key not in self._sites:
            names = [s for m, t, s in self.index if (m, t) == key]
            if not names:
                raise KeyError(f"no statistics of {model} / {task}; have {self.groups}")
            rows = []
            for site in names:
                f = read_site(self.index, (model, task, site), columns=["kind", "depth"])
                rows.append((site, str(f["kind"].iloc[0]), int(f["depth"].iloc[0])))
            frame = pd.DataFrame(rows, columns=["site", "kind", "depth"])
            self._sites[key] = frame.sort_values(["depth", "site"], ignore_index=True)
        return self._sites[key]

    def rows(self, model: str, task: str, site: str) -> pd.DataFrame:
        """The statistics rows of one site (columns model, task, site and
        :data:`SITE_COLUMNS`), read once and kept while among the last ``cache_sites``
        sites asked for."""
        key = (model, task, site)
        if key in self._rows:
            self._rows.move_to_end(key)
            return self._rows[key]
        frame = _no_steps(read_site(self.index, key, columns=list(SITE_COLUMNS), categorical=True))
        self.reads[key] += 1
        self._rows[key] = frame
        while len(self._rows) > self.cache_sites:
            self._rows.popitem(last=False)
        return frame

    def choices(self, model: str, task: str, site: str) -> dict[str, list]:
        """What one site offers: ``{"stat": [...], "channel": [...], "regime": [...]}``
        (regimes in the order of :data:`REGIMES`, others after them)."""
        f = self.rows(model, task, site)
        present = set(f["regime"].astype(str))
        return {
            "stat": sorted(set(f["stat"].astype(str))),
            "channel": sorted(int(c) for c in f["channel"].unique()),
            "regime": [r for r in REGIMES if r in present] + sorted(present - set(REGIMES)),
        }

    def site_shift(
        self, model: str, task: str, site: str, stat: str, channel: int | None = None
    ) -> pd.DataFrame:
        """The shift rows of one site for ``stat``: every comparison of the source whose
        regimes the site has, channels pooled (``channel=None``, rows with channel "all")
        or of one channel. Computed from the site's rows."""
        f = self.rows(model, task, site)
        f = f[stat_mask(f, stat)]
        if channel is not None:
            f = f[f["channel"] == channel]
        table = shift_table(f, self.comparisons, per_channel=channel is not None)
        want = "all" if channel is None else str(channel)
        return table[table["channel"].astype(str) == want].reset_index(drop=True)

    def profile(self, model: str, task: str) -> pd.DataFrame:
        """The pooled shift table (channel "all", every stat and comparison) of every site
        of (model, task): from ``shift`` when given, else computed one site at a time
        (each site's rows read, compared and dropped; the row cache is not used, so
        memory stays bounded) and kept."""
        key = (model, task)
        if key not in self._pooled:
            tables = []
            for site in self.sites(model, task)["site"]:
                f = _no_steps(
                    read_site(self.index, (model, task, site), columns=list(SITE_COLUMNS))
                )
                self.reads[(model, task, site)] += 1
                tables.append(shift_table(f, self.comparisons, per_channel=False))
            self._pooled[key] = concat_shift_tables(tables, self.comparisons)
        return self._pooled[key]


def _no_steps(frame: pd.DataFrame) -> pd.DataFrame:
    if "test_set" in frame.columns and frame["test_set"].nunique() > 1:
        site, sets = frame["site"].iloc[0], sorted(map(str, frame["test_set"].unique()))
        raise ValueError(
            f"site {site} holds statistics of test sets {sets}: the explorer draws one at a "
            "time (open a main job's folder, or one test set's statistics)"
        )
    if frame["step"].notna().any():
        site = frame["site"].iloc[0]
        raise ValueError(
            f"site {site} holds statistics recorded during training (steps); the explorer "
            "draws inference stores (training dynamics: tlc_probe.viz.training_dynamics)"
        )
    return frame.drop(columns="step")


#: The columns of a shift table the explorer shows.
SHIFT_COLUMNS = ("model", "task", "site", "stat", "channel", "comparison", "w1")


def _read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The pooled rows of the shift table at ``path`` (``shift.parquet`` or
    ``shift.csv``); ``ValueError`` naming the file when it is no shift table (statistics,
    a summary, a decomposition)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"shift={p} is a folder: give a shift table (shift/shift.parquet)")
    if p.suffix == ".csv":
        table = pd.read_csv(p, dtype={"channel": str})
    else:
        try:
            names = pq.read_schema(p).names
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(f"shift={p} is no readable Parquet file: {e}") from None
        if missing := [c for c in SHIFT_COLUMNS if c not in names]:
            raise ValueError(
                f"shift={p} is no shift table (it lacks {missing}): give the shift.parquet "
                "or shift.csv that tlc-probe shift writes"
            )
        return pd.read_parquet(p, filters=[("channel", "==", "all")])  # the pooled rows only
    if missing := [c for c in SHIFT_COLUMNS if c not in table.columns]:
        raise ValueError(
            f"shift={p} is no shift table (it lacks {missing}; summary.csv and "
            "decomposition.csv are other tables): give shift.csv or shift.parquet"
        )
    return table
