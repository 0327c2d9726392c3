"""The shift job: statistics directories -> shift tables, decomposition and summary on disk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..metrics.decomposition import decomposition
from ..metrics.shift import comparisons_for, shift_table, summary
from ..store.atomic import atomic_write
from ..store.read import read_stats


def write_shift(
    table: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    reliance: pd.DataFrame | None = None,
    reference: str = "train",
) -> dict[str, Path]:
    """Write ``shift.csv``, ``shift.parquet``, ``decomposition.csv`` (per site: content,
    context and aggregation W1 and shares, with ``reliance`` joined when given) and
    ``summary.csv`` (:func:`~tlc_probe.metrics.summary` against ``reference``) into
    ``out_dir`` (created if needed), each atomically. Returns ``{"shift_csv",
    "shift_parquet", "decomposition_csv", "summary_csv"}`` -> paths."""
    out = Path(out_dir)
    summ = summary(table, reliance, reference)
    parts = decomposition(table, reliance)
    return {
        "shift_csv": atomic_write(out / "shift.csv", lambda p: table.to_csv(p, index=False)),
        "shift_parquet": atomic_write(
            out / "shift.parquet", lambda p: table.to_parquet(p, index=False)
        ),
        "decomposition_csv": atomic_write(
            out / "decomposition.csv", lambda p: parts.to_csv(p, index=False)
        ),
        "summary_csv": atomic_write(out / "summary.csv", lambda p: summ.to_csv(p, index=False)),
    }


def read_reliance(paths: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """Reliance tables (CSV files of ``tlc-probe reliance``) concatenated; raises
    ``ValueError`` when one lacks the columns model, task, site, delta_psnr."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    frames = []
    for p in paths:
        frame = pd.read_csv(p)
        if missing := {"model", "task", "site", "delta_psnr"} - set(frame.columns):
            raise ValueError(f"{p} is no reliance table: it lacks columns {sorted(missing)}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def shift_outputs(
    stats: str | Path | Sequence[str | Path],
    out: str | Path,
    per_channel: bool = True,
    *,
    reference: str = "train",
    reliance: pd.DataFrame | None = None,
) -> dict:
    """Read ``stats`` (directories or part files), compute the shift table
    (:func:`tlc_probe.metrics.shift_table`, comparisons
    :func:`~tlc_probe.metrics.shift.comparisons_for` ``reference``), its decomposition
    and summary (with ``reliance`` when given), and write them to ``out``
    (:func:`write_shift`). Returns {"table", "summary", "decomposition", "paths"}.

    Raises ``FileNotFoundError`` when there is nothing to read and ``ValueError`` when
    what was read is no statistics table."""
    frame = read_stats(stats)
    try:
        table = shift_table(frame, comparisons_for(reference), per_channel=per_channel)
    except KeyError as e:
        raise ValueError(f"{stats} is not a statistics table: {e}") from None
    paths = write_shift(table, out, reliance, reference)
    return {
        "table": table,
        "summary": summary(table, reliance, reference),
        "decomposition": decomposition(table, reliance),
        "paths": paths,
    }
