"""Part files and run metadata of a statistics directory.

Layout of one statistics directory (one model and task)::

    DIR/_run.json                                  run metadata (also in every file's schema)
    DIR/regime=<regime>/part-<writer>-<chunk>.parquet

``regime`` is a Hive partition (the directory name), so ``pandas.read_parquet(DIR)`` and
DuckDB ``read_parquet('DIR/**/*.parquet', hive_partitioning=true)`` both return it as a
column; the files hold the other columns of :data:`~tlc_probe.store.schema.PART_SCHEMA`.
A part file is written under a hidden temporary name and renamed when complete, so a
killed run leaves only whole files, and readers (which skip names starting with '.')
never see half of one. The file name encodes the writer id and the chunk number: a
resumed run knows which chunks are done, and writers with different ids that process
disjoint samples (e.g. the ranks of a sharded job) cannot collide on a name.
``collect`` itself does not shard: one collection is one writer, and resuming with
another writer id is refused.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_write, write_text
from .schema import DEFAULT_TEST_SET, META_KEY, PART_SCHEMA, RUN_JSON, STEP_PART_SCHEMA


def part_path(root: str | Path, regime: str, chunk: int, writer: str = "0") -> Path:
    """Where chunk ``chunk`` of ``regime`` written by ``writer`` lives under ``root``."""
    return Path(root) / f"regime={regime}" / f"part-{writer}-{chunk:06d}.parquet"


def part_writer_chunk(path: str | Path) -> tuple[str, int]:
    """(writer, chunk) of a part file named by :func:`part_path` (writer ids may contain
    '-'; the chunk is the last field)."""
    writer, _, chunk = Path(path).stem.removeprefix("part-").rpartition("-")
    return writer, int(chunk)


def write_part(
    frame: pd.DataFrame, path: str | Path, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``frame`` (the columns of :data:`~tlc_probe.store.schema.PART_SCHEMA`, plus
    ``step`` for rows recorded during training; any extra ignored; without ``test_set``,
    that of ``meta``, else ``photos``) to ``path`` atomically
    (:func:`~tlc_probe.store.atomic.atomic_write`). ``meta`` goes into the schema metadata
    as JSON under ``META_KEY``. Rows are written sorted by site (stable), one row group
    per site. Returns ``path``."""
    if "test_set" not in frame.columns:
        frame = frame.assign(test_set=str((meta or {}).get("test_set", DEFAULT_TEST_SET)))
    base = STEP_PART_SCHEMA if "step" in frame.columns else PART_SCHEMA
    schema = base.with_metadata({META_KEY: json.dumps(dict(meta or {}), default=str)})
    rows = frame[base.names]
    runs = _site_runs(rows["site"])
    if len({site for site, _, _ in runs}) < len(runs):  # a site in several runs: sort
        rows = rows.sort_values("site", kind="stable")
        runs = _site_runs(rows["site"])
    table = pa.Table.from_pandas(rows, schema=schema, preserve_index=False)
    # each site's rows are one run (as the probe gives them): its row group is that
    # slice, written in the order of the site names (the rows sorted by site, stably)
    slices = [(a, n) for _, a, n in sorted(runs, key=lambda run: run[0])] or [(0, 0)]

    def write(p: Path) -> None:
        # one row group per site: a reader filtering on a site skips the others' groups
        with pq.ParquetWriter(p, schema, compression="zstd") as w:
            for a, n in slices:
                w.write_table(table.slice(a, n))

    return atomic_write(path, write)


def _site_runs(site: pd.Series) -> list[tuple[str, int, int]]:
    """(site, first row, rows) of each run of equal consecutive values of ``site``."""
    codes, names = pd.factorize(site)
    starts = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), len(codes)]
    return [(str(names[codes[a]]), a, b - a) for a, b in itertools.pairwise(starts) if b > a]


def write_run_json(root: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write ``meta`` as ``root/_run.json`` (atomically). Returns the path."""
    return write_text(Path(root) / RUN_JSON, json.dumps(dict(meta), indent=2, default=str) + "\n")


def read_run_json(root: str | Path) -> dict[str, Any] | None:
    """The run metadata of a statistics directory, or ``None`` if it has none."""
    path = Path(root) / RUN_JSON
    return json.loads(path.read_text()) if path.exists() else None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The run metadata stored in one part file's Parquet schema."""
    md = pq.read_schema(path).metadata or {}
    return json.loads(md[META_KEY]) if META_KEY in md else {}


def parts(root: str | Path) -> list[Path]:
    """Every complete part file under ``root`` (sorted)."""
    return sorted(Path(root).glob("regime=*/part-*.parquet"))


def has_data(root: str | Path) -> bool:
    """Whether ``root`` holds a run (part files or _run.json)."""
    root = Path(root)
    return bool(parts(root)) or (root / RUN_JSON).exists()


def clear(root: str | Path) -> None:
    """Delete what runs write under ``root`` — part files (complete and temporary) and
    _run.json — and the regime folders they leave empty; any other file stays."""
    root = Path(root)
    for f in [*root.glob("regime=*/part-*.parquet"), *root.glob("regime=*/.part-*.tmp")]:
        f.unlink(missing_ok=True)
    for d in root.glob("regime=*"):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    (root / RUN_JSON).unlink(missing_ok=True)


def part_is_whole(path: str | Path) -> bool:
    """Whether the part file at ``path`` is a readable Parquet file of the part schema
    (its footer parses and it has the ``value`` column): what a resume keeps."""
    try:
        return "value" in pq.ParquetFile(path).schema_arrow.names
    except (OSError, pa.ArrowException):
        return False


def clear_tmp(root: str | Path, writer: str = "*") -> int:
    """Delete the temporary part files a killed ``writer`` (default: any) left under
    ``root``; returns how many."""
    stale = list(Path(root).glob(f"regime=*/.part-{writer}-*.tmp"))
    for f in stale:
        f.unlink(missing_ok=True)
    return len(stale)
