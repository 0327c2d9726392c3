"""Reading statistics back: one tidy DataFrame from part files, directories or lists."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..probe.records import coerce
from .schema import COLUMNS, STATS_SCHEMA


def read_stats(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read statistics into one tidy DataFrame: a part file, a statistics directory, a
    folder of several (e.g. ``results/stats`` with one directory per model), or a list.

    In a directory every ``*.parquet`` below it is read, Hive ``key=value`` folders
    (``regime=...``) becoming columns, except names starting with '.' or '_' (temporary
    files, ``_run.json``). Returns the columns of :data:`COLUMNS` first, in that order:
    strings as ``str`` (not categorical), depth / channel int32, y / x nullable Int32,
    step nullable Int64 (null outside training, also for stores older than the column),
    value float32. Raises ``FileNotFoundError`` when there is nothing to read.
    """
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
            kw = {"format": "parquet", "partitioning": "hive", "partition_base_dir": str(root)}
            names = [str(f) for f in files]
            found = ds.dataset(names, **kw)
            # part files of several versions (with and without the step column) are read
            # as one schema, missing columns null
            schema = pa.unify_schemas([found.schema] + [pq.read_schema(f) for f in names])
            frames.append(ds.dataset(names, schema=schema, **kw).to_table().to_pandas())
        else:
            frames.append(pd.read_parquet(root))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if "value" in df.columns and "step" not in df.columns:  # written before steps existed
        df["step"] = pd.array(np.full(len(df), pd.NA), dtype="Int64")
    coerce(df, STATS_SCHEMA)
    first = [c for c in COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]
