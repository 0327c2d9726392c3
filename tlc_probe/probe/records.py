"""The tidy records the probe returns: one definition of their columns and types.

One row per site x sample x channel x statistic (x position for local means). The
store (:mod:`tlc_probe.store.schema`) adds the run's ``model``, ``task`` and ``regime``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

#: Arrow schema of the probe's records, in column order.
RECORD_SCHEMA = pa.schema(
    [
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
#: Column order of :meth:`tlc_probe.Probe.take`.
RECORD_COLUMNS: tuple[str, ...] = tuple(RECORD_SCHEMA.names)
#: Integer columns that may be null (y, x for global statistics; the store's ``step``
#: outside training): nullable ``Int32`` / ``Int64`` in pandas.
NULLABLE: tuple[str, ...] = ("y", "x", "step")


def pandas_dtype(name: str, arrow_type: pa.DataType) -> object:
    """The pandas dtype of a statistics column: ``str`` for strings, nullable ``Int32`` /
    ``Int64`` for :data:`NULLABLE`, the NumPy dtype of the Arrow type otherwise."""
    if pa.types.is_string(arrow_type):
        return str
    if name in NULLABLE:
        return "Int64" if arrow_type == pa.int64() else "Int32"
    return np.dtype(arrow_type.to_pandas_dtype())


def empty_frame(schema: pa.Schema = RECORD_SCHEMA) -> pd.DataFrame:
    """A DataFrame with no rows and the columns (and pandas dtypes) of ``schema``."""
    return pd.DataFrame({f.name: pd.Series(dtype=pandas_dtype(f.name, f.type)) for f in schema})


def coerce(frame: pd.DataFrame, schema: pa.Schema = RECORD_SCHEMA) -> pd.DataFrame:
    """``frame`` with every column of ``schema`` it holds cast to its pandas dtype
    (:func:`pandas_dtype`), in place; returns it."""
    for f in schema:
        if f.name in frame.columns:
            frame[f.name] = frame[f.name].astype(pandas_dtype(f.name, f.type))
    return frame
