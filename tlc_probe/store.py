"""The Parquet store of probe statistics: schema, atomic part files, run metadata, reading.

Layout of one statistics directory (one model and task)::

    DIR/_run.json                                  run metadata (also in every file's schema)
    DIR/regime=<regime>/part-<writer>-<chunk>.parquet

``regime`` is a Hive partition (the directory name), so ``pandas.read_parquet(DIR)`` and
DuckDB ``read_parquet('DIR/**/*.parquet', hive_partitioning=true)`` both return it as a
column; the files hold the other columns of :data:`SCHEMA`. A part file is written under
a hidden temporary name and renamed when complete, so a killed run leaves only whole
files, and readers (which skip names starting with '.') never see half of one. The file
name encodes the writer id and the chunk number: a resumed run knows which chunks are
done, and writers with different ids that process disjoint samples (e.g. the ranks of a
sharded job) cannot collide on a name. ``collect`` itself does not shard: one collection
is one writer, and resuming with another writer id is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

#: Columns of every part file (``regime`` comes from the directory name).
SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("task", pa.string()),
        ("site", pa.string()),
        ("kind", pa.string()),
        ("depth", pa.int32()),
        ("sample", pa.string()),
        ("channel", pa.int32()),
        ("y", pa.int32()),
        ("x", pa.int32()),
        ("stat", pa.string()),
        ("value", pa.float32()),
    ]
)
#: Column order of a statistics table as read back (the contract of DESIGN.md).
COLUMNS = (
    "model",
    "task",
    "regime",
    "site",
    "kind",
    "depth",
    "sample",
    "channel",
    "y",
    "x",
    "stat",
    "value",
)
META_KEY = b"tlc_probe.run"
RUN_JSON = "_run.json"  # "_": pyarrow (pandas.read_parquet(DIR)) skips it


def part_path(root: str | Path, regime: str, chunk: int, writer: str = "0") -> Path:
    """Where chunk ``chunk`` of ``regime`` written by ``writer`` lives under ``root``."""
    return Path(root) / f"regime={regime}" / f"part-{writer}-{chunk:06d}.parquet"


def write_part(
    frame: pd.DataFrame, path: str | Path, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``frame`` (the columns of :data:`SCHEMA`, any extra ignored) to ``path``
    atomically: to a hidden temporary file in the same folder, then renamed. ``meta``
    goes into the schema metadata as JSON under :data:`META_KEY`. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = SCHEMA.with_metadata({META_KEY: json.dumps(dict(meta or {}), default=str)})
    table = pa.Table.from_pandas(frame[SCHEMA.names], schema=schema, preserve_index=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as f:  # on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_run_json(root: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write ``meta`` as ``root/_run.json`` (atomically). Returns the path."""
    path = Path(root) / RUN_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(meta), indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


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
    """Delete a run's files under ``root`` (regime folders, _run.json); nothing else."""
    root = Path(root)
    for d in root.glob("regime=*"):
        if d.is_dir():
            shutil.rmtree(d)
    (root / RUN_JSON).unlink(missing_ok=True)


def clear_tmp(root: str | Path, writer: str = "*") -> int:
    """Delete the temporary part files a killed ``writer`` (default: any) left under
    ``root``; returns how many."""
    stale = list(Path(root).glob(f"regime=*/.part-{writer}-*.tmp"))
    for f in stale:
        f.unlink(missing_ok=True)
    return len(stale)


def read_stats(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read statistics into one tidy DataFrame: a part file, a statistics directory, a
    folder of several (e.g. ``results/stats`` with one directory per model), or a list.

    In a directory every ``*.parquet`` below it is read, Hive ``key=value`` folders
    (``regime=...``) becoming columns, except names starting with '.' or '_' (temporary
    files, ``_run.json``). Returns the columns of :data:`COLUMNS` first, in that order:
    strings as ``str`` (not categorical), depth / channel int32, y / x nullable Int32,
    value float32. Raises ``FileNotFoundError`` when there is nothing to read.
    """
    import pyarrow.dataset as ds

    roots = [paths] if isinstance(paths, str | Path) else list(paths)
    frames = []
    for root in map(Path, roots):
        if root.is_dir():
            files = sorted(
                p
                for p in root.rglob("*.parquet")
                if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
            )
            if not files:
                raise FileNotFoundError(f"no Parquet statistics under {root}")
            dataset = ds.dataset(
                [str(f) for f in files],
                format="parquet",
                partitioning="hive",
                partition_base_dir=str(root),
            )
            frames.append(dataset.to_table().to_pandas())
        else:
            frames.append(pd.read_parquet(root))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for c in ("model", "task", "regime", "site", "kind", "sample", "stat"):
        if c in df.columns:
            df[c] = df[c].astype(str)
    for c in ("depth", "channel"):
        if c in df.columns:
            df[c] = df[c].astype("int32")
    for c in ("y", "x"):
        if c in df.columns:
            df[c] = df[c].astype("Int32")
    if "value" in df.columns:
        df["value"] = df["value"].astype("float32")
    first = [c for c in COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]
