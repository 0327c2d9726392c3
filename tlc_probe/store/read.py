"""Reading statistics back: one tidy DataFrame from part files, directories or lists, or
the same rows one site at a time (bounded memory for stores of any size)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..probe.records import coerce
from .schema import COLUMNS, STATS_SCHEMA

#: The columns that name a group of :func:`iter_sites`.
SITE_GROUP = ("model", "task", "site")


def _roots(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    return [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]


def _files(root: Path) -> list[str]:
    files = sorted(
        str(p)
        for p in root.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise FileNotFoundError(f"no Parquet statistics under {root}")
    return files


def _dataset(root: Path) -> ds.Dataset:
    """One root as a pyarrow dataset: a directory with Hive ``key=value`` folders becoming
    columns (part files of several versions, with and without ``step``, unified with
    missing columns null), or one file."""
    if not root.is_dir():
        if not root.exists():
            raise FileNotFoundError(f"no statistics at {root}")
        return ds.dataset(str(root), format="parquet")
    names = _files(root)
    kw = {"format": "parquet", "partitioning": "hive", "partition_base_dir": str(root)}
    found = ds.dataset(names, **kw)
    schemas = [found.schema] + [pq.read_schema(f) for f in names]
    schema = pa.unify_schemas(schemas, promote_options="permissive")  # string, large_string
    return ds.dataset(names, schema=schema, **kw)


def _tidy(df: pd.DataFrame, categorical: bool = False) -> pd.DataFrame:
    if "value" in df.columns and "step" not in df.columns:  # written before steps existed
        n = len(df)
        df["step"] = pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, dtype=bool))
    if categorical:
        strings = [f.name for f in STATS_SCHEMA if pa.types.is_string(f.type)]
        coerce(df, pa.schema([f for f in STATS_SCHEMA if f.name not in strings]))
        for c in strings:
            if c in df.columns:
                df[c] = df[c].astype("category")
    else:
        coerce(df, STATS_SCHEMA)
    first = [c for c in COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def read_stats(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read statistics into one tidy DataFrame: a part file, a statistics directory, a
    folder of several (e.g. ``results/stats`` with one directory per model), or a list.

    In a directory every ``*.parquet`` below it is read, Hive ``key=value`` folders
    (``regime=...``) becoming columns, except names starting with '.' or '_' (temporary
    files, ``_run.json``). Returns the columns of :data:`COLUMNS` first, in that order:
    strings as ``str`` (not categorical), depth / channel int32, y / x nullable Int32,
    step nullable Int64 (null outside training, also for stores older than the column),
    value float32. Raises ``FileNotFoundError`` when there is nothing to read.

    The whole store is held in memory (about 400 bytes a row); :func:`iter_sites` reads
    the same rows one site at a time.
    """
    frames = []
    for root in _roots(paths):
        if root.is_dir():
            frames.append(_dataset(root).to_table().to_pandas())
        else:
            frames.append(pd.read_parquet(root))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _tidy(df)


def _file_groups(path: str) -> set[tuple[str, str, str]]:
    """The (model, task, site) keys of one part file: from the row groups' statistics
    where each row group holds one key (as :func:`~tlc_probe.store.parts.write_part`
    writes them), else from reading those three columns of the row group."""
    f = pq.ParquetFile(path)
    names = f.schema_arrow.names
    if missing := [c for c in SITE_GROUP if c not in names]:
        raise KeyError(f"{path} lacks the columns {missing}")
    index = [f.metadata.schema.names.index(c) for c in SITE_GROUP]
    keys: set[tuple[str, str, str]] = set()
    for i in range(f.metadata.num_row_groups):
        rg = f.metadata.row_group(i)
        if rg.num_rows == 0:
            continue
        stats = [rg.column(j).statistics for j in index]
        if all(st is not None and st.has_min_max and st.min == st.max for st in stats):
            keys.add(tuple(str(st.min) for st in stats))
            continue
        part = f.read_row_group(i, columns=list(SITE_GROUP))
        unique = part.group_by(list(SITE_GROUP)).aggregate([])
        keys.update(zip(*(unique.column(c).to_pylist() for c in SITE_GROUP), strict=True))
    return keys


def site_groups(paths: str | Path | Iterable[str | Path]) -> list[tuple[str, str, str]]:
    """Every (model, task, site) of the statistics at ``paths`` (as :func:`read_stats`
    takes them), sorted. Reads only the part files' footers where each row group holds
    one site (files of :func:`~tlc_probe.store.parts.write_part`), else those three
    columns, one row group at a time. ``KeyError`` for a file without them."""
    seen: set[tuple[str, str, str]] = set()
    for root in _roots(paths):
        if not root.exists():
            raise FileNotFoundError(f"no statistics at {root}")
        for f in _files(root) if root.is_dir() else [str(root)]:
            seen |= _file_groups(f)
    return sorted(seen)


def _where(key: Sequence[str]) -> pc.Expression:
    cond = None
    for name, v in zip(SITE_GROUP, key, strict=True):
        term = pc.field(name) == v
        cond = term if cond is None else cond & term
    return cond


def _read_site(
    datasets: Sequence[ds.Dataset],
    key: Sequence[str],
    columns: Sequence[str] | None,
    categorical: bool,
) -> pd.DataFrame:
    frames = []
    for d in datasets:
        # the key's own columns are not read: every row holds the key
        wanted = d.schema.names if columns is None else columns
        cols = [c for c in d.schema.names if c in wanted and c not in SITE_GROUP]
        table = d.to_table(columns=cols, filter=_where(key))
        if table.num_rows:
            frames.append(table.to_pandas(strings_to_categorical=categorical))
    if not frames:
        raise KeyError(f"no statistics of {tuple(key)}")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    n = len(frame)
    for i, (name, v) in enumerate(zip(SITE_GROUP, key, strict=True)):
        col = pd.Categorical.from_codes(np.zeros(n, np.int8), [v]) if categorical else [v] * n
        frame.insert(i, name, col)
    return _tidy(frame, categorical)


def read_site(
    paths: str | Path | Iterable[str | Path],
    key: Sequence[str],
    columns: Sequence[str] | None = None,
    categorical: bool = False,
) -> pd.DataFrame:
    """The rows of one ``key`` = (model, task, site) of the statistics at ``paths``: what
    :func:`read_stats` returns for it (only ``columns`` and the key's columns when given;
    string columns categorical with ``categorical``). Reads only the row groups holding
    the site in part files written sorted by site. ``KeyError`` when there are none."""
    return _read_site([_dataset(r) for r in _roots(paths)], key, columns, categorical)


def iter_sites(
    paths: str | Path | Iterable[str | Path],
    columns: Sequence[str] | None = None,
    categorical: bool = False,
    keys: Sequence[tuple[str, str, str]] | None = None,
) -> Iterator[tuple[tuple[str, str, str], pd.DataFrame]]:
    """The statistics at ``paths`` one (model, task, site) at a time, in the order of
    :func:`site_groups`: yields ``((model, task, site), frame)``, each frame
    :func:`read_site` of that key, the next one read ahead in a thread. Peak memory is
    about two sites' rows; every site costs
    one filtered scan, which reads only the row groups holding it in part files written
    sorted by site (:func:`~tlc_probe.store.parts.write_part`). ``keys``: the
    :func:`site_groups` of ``paths`` when the caller has them already.

    Raises ``FileNotFoundError`` when there is nothing to read.
    """
    roots = _roots(paths)
    datasets = [_dataset(r) for r in roots]
    keys = site_groups(roots) if keys is None else list(keys)
    # the next site is read in a thread while the caller works on this one (pyarrow and
    # most of pandas release the GIL): at most two sites in memory
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(_read_site, datasets, keys[0], columns, categorical) if keys else None
        for i, key in enumerate(keys):
            frame = ahead.result()
            if i + 1 < len(keys):
                ahead = pool.submit(_read_site, datasets, keys[i + 1], columns, categorical)
            yield key, frame
            del frame
