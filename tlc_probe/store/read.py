"""Reading statistics back: one tidy DataFrame from part files, directories or lists, or
the same rows one site at a time (bounded memory for stores of any size)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..probe.records import coerce
from .schema import COLUMNS, DEFAULT_TEST_SET, META_KEY, STATS_SCHEMA

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


def _regime_folder(path: str) -> tuple[Path, str]:
    """(statistics directory, regime) of a part file: the folder above its
    ``regime=<r>`` folder and r, or its own folder and '' for a file outside one."""
    folder = Path(path).parent
    if folder.name.startswith("regime="):
        return folder.parent, folder.name.split("=", 1)[1]
    return folder, ""


#: Run metadata that may differ between two copies of one run (the checkpoint is the
#: same by its sha256, whatever path named it).
INCIDENTAL = ("command", "versions", "checkpoint", "world_size")


class RunsApart:
    """Refuses to pool two statistics directories: :meth:`add` raises ``ValueError`` when
    rows of one (model, task, test set, regime, site) come from a second directory — two copies of
    a run, or two runs with other settings (exact and fast TLC, another seed), whose rows
    would silently be read as one sample. Directories holding other sites, regimes or
    test sets of the same model combine freely. Files without run metadata (not written
    by tlc-probe) are not checked."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, str, str], tuple[Path, dict]] = {}

    def add(self, path: str, kv: Mapping[bytes, bytes] | None, sites: Iterable[str]) -> None:
        """Record part file ``path`` with its key-value metadata and the sites it holds."""
        if not kv or META_KEY not in kv:
            return
        run = json.loads(kv[META_KEY])
        store, regime = _regime_folder(path)
        for site in sites:
            test_set = str(run.get("test_set", DEFAULT_TEST_SET))
            key = (str(run.get("model")), str(run.get("task")), test_set, regime, site)
            first = self._seen.setdefault(key, (store, run))
            if first[0] == store:
                continue
            mine, theirs = (
                {k: v for k, v in r.items() if k not in INCIDENTAL} for r in (run, first[1])
            )
            what = "copies of one run" if mine == theirs else "two runs with other settings"
            raise ValueError(
                f"{key[0]} / {key[1]} / {test_set} / regime {regime or '?'} / site {site}: rows in "
                f"{first[0]} and in {store} ({what}); they would be pooled as one sample — "
                "read one directory at a time"
            )


def _meta_test_set(kv: Mapping[bytes, bytes] | None) -> str:
    """The test set a part file's run metadata names (files written before the
    ``test_set`` column existed: collect recorded it there), else ``photos``."""
    if kv and META_KEY in kv:
        return str(json.loads(kv[META_KEY]).get("test_set", DEFAULT_TEST_SET))
    return DEFAULT_TEST_SET


def _read_root(root: Path, apart: RunsApart | None = None) -> pa.Table:
    """One root as a table: a directory with Hive ``key=value`` folders becoming columns
    (part files of several versions, with and without ``step``, unified with missing
    columns null; a file without ``test_set`` gets its run metadata's), or one file."""
    if not root.is_dir():
        if not root.exists():
            raise FileNotFoundError(f"no statistics at {root}")
        _statistics_metadata(str(root))
        table = ds.dataset(str(root), format="parquet").to_table()
        if "test_set" not in table.column_names:
            fill = _meta_test_set(pq.read_schema(root).metadata)
            table = table.append_column("test_set", pa.array([fill] * table.num_rows, pa.string()))
        return table
    names = _files(root)
    own = [_statistics_metadata(f).schema.to_arrow_schema() for f in names]  # checked first
    kw = {"format": "parquet", "partitioning": "hive", "partition_base_dir": str(root)}
    found = ds.dataset(names, **kw)
    schemas = [found.schema, *own]
    apart = apart or RunsApart()
    for f, sch in zip(names, schemas[1:], strict=True):
        if sch.metadata and META_KEY in sch.metadata:  # written by tlc-probe
            apart.add(f, sch.metadata, {key[2] for key in _file_pieces(root, f)})
    schema = pa.unify_schemas(schemas, promote_options="permissive")  # string, large_string
    groups: dict[str | None, list[str]] = {}  # files by the test set they lack, if any
    for f, sch in zip(names, own, strict=True):
        fill = None if "test_set" in sch.names else _meta_test_set(sch.metadata)
        groups.setdefault(fill, []).append(f)
    tables = []
    for fill, files in groups.items():
        table = ds.dataset(files, schema=schema, **kw).to_table()
        if fill is not None:
            column = pa.array([fill] * table.num_rows, pa.string())
            if "test_set" in table.column_names:
                table = table.set_column(table.column_names.index("test_set"), "test_set", column)
            else:
                table = table.append_column("test_set", column)
        tables.append(table)
    return pa.concat_tables(tables, promote_options="permissive")


def _tidy(df: pd.DataFrame, categorical: bool = False) -> pd.DataFrame:
    if "value" in df.columns and "test_set" not in df.columns:  # written before test sets
        df.insert(min(2, df.shape[1]), "test_set", DEFAULT_TEST_SET)
    elif "test_set" in df.columns and df["test_set"].isna().any():  # old and new files
        filled = df["test_set"].astype(object).fillna(DEFAULT_TEST_SET)
        df["test_set"] = filled.astype("category") if categorical else filled
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
    the same rows one site at a time. Rows of one (model, task, regime, site) found in two
    statistics directories are refused (:class:`RunsApart`), never pooled.
    """
    frames = []
    apart = RunsApart()
    for root in _roots(paths):
        if not root.is_dir() and root.exists():
            apart.add(str(root), pq.read_schema(root).metadata, _sites_of(root))
        frames.append(_read_root(root, apart).to_pandas())
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _tidy(df)


@dataclass(frozen=True)
class SitePiece:
    """Row groups of one part file that hold rows of one site.

    ``partition`` holds the Hive ``key=value`` folders between the store's root and the
    file (``(("regime", "tlc"),)``); ``mixed`` row groups also hold other sites, so their
    rows are filtered after reading (files not written by
    :func:`~tlc_probe.store.parts.write_part`)."""

    path: str
    metadata: pq.FileMetaData = field(repr=False, compare=False)
    row_groups: tuple[int, ...]
    partition: tuple[tuple[str, str], ...]
    mixed: bool


def _partition(root: Path, path: str) -> tuple[tuple[str, str], ...]:
    if not root.is_dir():
        return ()
    folders = Path(path).relative_to(root).parts[:-1]
    return tuple(tuple(p.split("=", 1)) for p in folders if "=" in p)  # type: ignore[misc]


def _sites_of(path: Path) -> set[str]:
    """The sites a single part file holds (nothing for a file without the key columns)."""
    try:
        return {key[2] for key in _file_pieces(path, str(path))}
    except KeyError:
        return set()


def _statistics_metadata(path: str) -> pq.FileMetaData:
    """The Parquet footer of a part file, or ``ValueError`` naming the file: unreadable
    (truncated, not Parquet) or a table of another kind (a shift table)."""
    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path} is no readable Parquet file (truncated?): {e}") from None
    names = meta.schema.names
    if "comparison" in names and "value" not in names:
        raise ValueError(
            f"{path} is a shift table (tlc-probe shift's output), not statistics: give the "
            "statistics folder (collect --out, or a main job's stats/)"
        )
    return meta


def _file_pieces(root: Path, path: str) -> dict[tuple[str, str, str], SitePiece]:
    """The sites of one part file and the row groups holding each: from the row groups'
    statistics where a row group holds one site (as
    :func:`~tlc_probe.store.parts.write_part` writes them), else from reading those three
    columns of the row group."""
    meta = _statistics_metadata(path)
    names = meta.schema.names
    if missing := [c for c in SITE_GROUP if c not in names]:
        raise KeyError(f"{path} lacks the columns {missing}")
    index = [names.index(c) for c in SITE_GROUP]
    groups: dict[tuple[str, str, str], list[int]] = {}
    mixed: set[tuple[str, str, str]] = set()
    file = None
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        if rg.num_rows == 0:
            continue
        stats = [rg.column(j).statistics for j in index]
        if all(st is not None and st.has_min_max and st.min == st.max for st in stats):
            groups.setdefault(tuple(str(st.min) for st in stats), []).append(i)  # type: ignore[arg-type]
            continue
        file = file or pq.ParquetFile(path, metadata=meta)
        unique = file.read_row_group(i, columns=list(SITE_GROUP)).group_by(list(SITE_GROUP))
        unique = unique.aggregate([])
        for key in zip(*(unique.column(c).to_pylist() for c in SITE_GROUP), strict=True):
            groups.setdefault(key, []).append(i)
            mixed.add(key)
    part = _partition(root, path)
    return {
        key: SitePiece(path, meta, tuple(rgs), part, key in mixed) for key, rgs in groups.items()
    }


class SiteIndex(Mapping[tuple[str, str, str], tuple[SitePiece, ...]]):
    """Where every (model, task, site) of the statistics at ``paths`` (as
    :func:`read_stats` takes them) lies: key -> the :class:`SitePiece` s holding its rows,
    keys sorted. Built from the part files' footers alone where each row group holds one
    site (files of :func:`~tlc_probe.store.parts.write_part`), else by reading the three
    key columns, one row group at a time; :func:`read_site` and :func:`iter_sites` then
    read only those row groups. ``FileNotFoundError`` when there is nothing to read,
    ``KeyError`` for a file without the key columns.

    Example::

        index = SiteIndex("results/stats/hinet-tiny-deblur")
        for key, frame in iter_sites(index, columns=["regime", "channel", "value"]):
            ...
    """

    def __init__(self, paths: str | Path | Iterable[str | Path]) -> None:
        pieces: dict[tuple[str, str, str], list[SitePiece]] = {}
        #: the paths indexed
        self.roots = _roots(paths)
        apart = RunsApart()
        for root in self.roots:
            if not root.exists():
                raise FileNotFoundError(f"no statistics at {root}")
            for f in _files(root) if root.is_dir() else [str(root)]:
                found = _file_pieces(root, f)
                for key, piece in found.items():
                    pieces.setdefault(key, []).append(piece)
                if found:
                    kv = next(iter(found.values())).metadata.metadata
                    apart.add(f, kv, {key[2] for key in found})
        self._pieces = {k: tuple(pieces[k]) for k in sorted(pieces)}
        metas = {id(p.metadata): p.metadata for ps in self._pieces.values() for p in ps}
        fields = [m.schema.to_arrow_schema() for m in metas.values()]
        parts = sorted({k for ps in self._pieces.values() for p in ps for k, _ in p.partition})
        fields.append(pa.schema([pa.field(k, pa.string()) for k in parts]))
        #: every column of the store: the files' columns unified, missing ones null, and
        #: the Hive partition columns (strings)
        self.schema = pa.unify_schemas(fields, promote_options="permissive")

    def __getitem__(self, key: tuple[str, str, str]) -> tuple[SitePiece, ...]:
        return self._pieces[tuple(key)]  # type: ignore[index]

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return iter(self._pieces)

    def __len__(self) -> int:
        return len(self._pieces)


def site_groups(paths: str | Path | Iterable[str | Path]) -> list[tuple[str, str, str]]:
    """Every (model, task, site) of the statistics at ``paths`` (as :func:`read_stats`
    takes them), sorted: the keys of :class:`SiteIndex`. ``KeyError`` for a file without
    the key columns."""
    return list(SiteIndex(paths))


def _where(key: Sequence[str]) -> pc.Expression:
    cond = None
    for name, v in zip(SITE_GROUP, key, strict=True):
        term = pc.field(name) == v
        cond = term if cond is None else cond & term
    return cond


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))


def _constants(piece: SitePiece, columns: Sequence[str], schema: pa.Schema) -> dict[str, object]:
    """The string and integer ``columns`` that hold one value in every row of ``piece``, by
    the row groups' statistics (min == max, no nulls), and that value; such columns are
    not read. (Float statistics leave NaN out, so float columns are always read.) The
    column types come from ``schema`` (the index's, :attr:`SiteIndex.schema`)."""
    if piece.mixed:
        return {}
    names = piece.metadata.schema.names
    out: dict[str, object] = {}
    for c in columns:
        kind = schema.field(c).type
        if not (pa.types.is_string(kind) or pa.types.is_integer(kind)):
            continue
        values = set()
        for i in piece.row_groups:
            st = piece.metadata.row_group(i).column(names.index(c)).statistics
            if st is None or not st.has_min_max or st.null_count != 0 or st.min != st.max:
                break
            values.add(st.min)
        else:
            if len(values) == 1:
                out[c] = values.pop()
    return out


def _read_piece(
    piece: SitePiece, key: Sequence[str], columns: Sequence[str], schema: pa.Schema
) -> pa.Table:
    part = dict(piece.partition)
    names = set(piece.metadata.schema.names)
    have = [c for c in columns if c in names and c not in part]
    fixed = _constants(piece, have, schema)
    read = [c for c in have if c not in fixed]
    extra = [c for c in SITE_GROUP if c not in read] if piece.mixed else []
    # strings arrive dictionary-encoded (4 bytes a row, no string copies)
    strings = [c for c in read if pa.types.is_string(schema.field(c).type)]
    file = pq.ParquetFile(piece.path, metadata=piece.metadata, read_dictionary=strings)
    table = file.read_row_groups(list(piece.row_groups), columns=read + extra)
    if piece.mixed:
        table = table.filter(_where(key)).drop_columns(extra)
    n = table.num_rows if read or piece.mixed else _piece_rows(piece)
    columns_out = []
    for c in columns:
        if c in read:
            columns_out.append(table.column(c))
        elif c in part or (c in fixed and pa.types.is_string(schema.field(c).type)):
            columns_out.append(_constant(str(part[c] if c in part else fixed[c]), n))
        elif c in fixed:
            columns_out.append(pa.array(np.full(n, fixed[c]), type=schema.field(c).type))
        elif c == "test_set":  # a file written before the column existed
            columns_out.append(_constant(_meta_test_set(piece.metadata.metadata), n))
        else:
            columns_out.append(pa.nulls(n, schema.field(c).type))
    return pa.table(columns_out, names=list(columns))


def _piece_rows(piece: SitePiece) -> int:
    """The number of rows of ``piece``'s row groups (all sites' for a mixed piece)."""
    return sum(piece.metadata.row_group(i).num_rows for i in piece.row_groups)


def _read_site(
    index: SiteIndex,
    key: Sequence[str],
    columns: Sequence[str] | None,
    categorical: bool,
) -> pd.DataFrame:
    pieces = index.get(tuple(key))  # type: ignore[arg-type]
    if not pieces:
        raise KeyError(f"no statistics of {tuple(key)}")
    # the key's own columns are not read: every row holds the key
    wanted = index.schema.names if columns is None else columns
    cols = [c for c in index.schema.names if c in wanted and c not in SITE_GROUP]
    if "test_set" not in cols:  # always: rows of two test sets must never look alike
        cols.append("test_set")  # (files before the column: from their run metadata)
    tables = [_read_piece(p, key, cols, index.schema) for p in pieces]
    table = pa.concat_tables(tables, promote_options="permissive")
    if not categorical:  # partition columns arrive dictionary-encoded
        for i, f in enumerate(table.schema):
            if pa.types.is_dictionary(f.type):
                table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
    frame = table.to_pandas(strings_to_categorical=categorical)
    n = len(frame)
    for i, (name, v) in enumerate(zip(SITE_GROUP, key, strict=True)):
        col = pd.Categorical.from_codes(np.zeros(n, np.int8), [v]) if categorical else [v] * n
        frame.insert(i, name, col)
    return _tidy(frame, categorical)


def _index(paths: str | Path | Iterable[str | Path] | SiteIndex) -> SiteIndex:
    return paths if isinstance(paths, SiteIndex) else SiteIndex(paths)


def read_site(
    paths: str | Path | Iterable[str | Path] | SiteIndex,
    key: Sequence[str],
    columns: Sequence[str] | None = None,
    categorical: bool = False,
) -> pd.DataFrame:
    """The rows of one ``key`` = (model, task, site) of the statistics at ``paths`` (or of
    a :class:`SiteIndex` of them): what :func:`read_stats` returns for it (only
    ``columns``, the key's columns and ``test_set`` when given; string columns categorical with
    ``categorical``). Reads only the row groups holding the site. ``KeyError`` when there
    are none."""
    return _read_site(_index(paths), key, columns, categorical)


def iter_sites(
    paths: str | Path | Iterable[str | Path] | SiteIndex,
    columns: Sequence[str] | None = None,
    categorical: bool = False,
) -> Iterator[tuple[tuple[str, str, str], pd.DataFrame]]:
    """The statistics at ``paths`` (or of a :class:`SiteIndex` of them) one (model, task,
    site) at a time, in the order of :func:`site_groups`: yields ``((model, task, site),
    frame)``, each frame :func:`read_site` of that key, the next one read ahead in a
    thread. Peak memory is about two sites' rows; each site reads only the row groups
    holding it.

    Raises ``FileNotFoundError`` when there is nothing to read.
    """
    index = _index(paths)
    keys = list(index)
    # the next site is read in a thread while the caller works on this one (pyarrow and
    # most of pandas release the GIL): at most two sites in memory
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(_read_site, index, keys[0], columns, categorical) if keys else None
        for i, key in enumerate(keys):
            frame = ahead.result()
            if i + 1 < len(keys):
                ahead = pool.submit(_read_site, index, keys[i + 1], columns, categorical)
            yield key, frame
            del frame
