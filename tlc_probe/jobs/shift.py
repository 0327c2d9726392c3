"""The shift job: statistics directories -> shift tables and summary on disk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..metrics.shift import shift_table, summary
from ..store.atomic import atomic_write
from ..store.read import read_stats


def write_shift(table: pd.DataFrame, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``shift.csv``, ``shift.parquet`` and ``summary.csv`` (:func:`summary` of the
    table) into ``out_dir`` (created if needed), each atomically. Returns
    ``{"shift_csv", "shift_parquet", "summary_csv"}`` -> paths."""
    out = Path(out_dir)
    summ = summary(table)
    return {
        "shift_csv": atomic_write(out / "shift.csv", lambda p: table.to_csv(p, index=False)),
        "shift_parquet": atomic_write(
            out / "shift.parquet", lambda p: table.to_parquet(p, index=False)
        ),
        "summary_csv": atomic_write(out / "summary.csv", lambda p: summ.to_csv(p, index=False)),
    }


def shift_outputs(
    stats: str | Path | Sequence[str | Path], out: str | Path, per_channel: bool = True
) -> dict:
    """Read ``stats`` (directories or part files), compute the shift table
    (:func:`tlc_probe.metrics.shift_table`) and its summary, and write them to ``out``
    (:func:`write_shift`). Returns {"table", "summary", "paths"}.

    Raises ``FileNotFoundError`` when there is nothing to read and ``ValueError`` when
    what was read is no statistics table."""
    frame = read_stats(stats)
    try:
        table = shift_table(frame, per_channel=per_channel)
    except KeyError as e:
        raise ValueError(f"{stats} is not a statistics table: {e}") from None
    paths = write_shift(table, out)
    return {"table": table, "summary": summary(table), "paths": paths}
