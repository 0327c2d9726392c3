"""The shift job: statistics directories -> shift tables, decomposition and summary on disk."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from ..metrics.decomposition import decomposition
from ..metrics.intervals import image_ranks, sampling_floor
from ..metrics.shift import KEYS, comparisons_for, concat_shift_tables, shift_table, summary
from ..store.atomic import atomic_write
from ..store.read import SiteIndex, read_site

#: The columns a shift table is computed from (the store's other columns are not read).
SHIFT_INPUT = (*KEYS, "regime", "sample", "channel", "step", "value")


def store_shift_table(
    stats: str | Path | Sequence[str | Path] | SiteIndex,
    comparisons: Sequence[str],
    per_channel: bool = True,
    progress: bool = False,
    workers: int = 2,
) -> pd.DataFrame:
    """:func:`~tlc_probe.metrics.shift_table` of the statistics at ``stats`` (as
    :func:`~tlc_probe.store.read_stats` takes them, or a
    :class:`~tlc_probe.store.read.SiteIndex` of them), computed one (model, task, site) at
    a time (:func:`~tlc_probe.store.read.read_site`, only the columns it needs), so peak
    memory is about ``workers`` sites' rows whatever the size of the store. The same table
    as ``shift_table(read_stats(stats), ...)``: every group of a shift table lies within
    one site. W1 stays exact (each site's values are all in memory while it is compared).
    ``workers`` sites are read and compared at once, in threads (numpy and pyarrow release
    the GIL for the heavy work). ``progress`` shows a bar over the sites.

    Raises ``FileNotFoundError`` when there is nothing to read and ``ValueError`` when
    what was read is no statistics table."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    try:
        index = stats if isinstance(stats, SiteIndex) else SiteIndex(stats)

        def one(key: tuple[str, str, str]) -> pd.DataFrame:
            frame = read_site(index, key, columns=SHIFT_INPUT, categorical=True)
            return shift_table(frame, comparisons, per_channel=per_channel)

        keys = list(index)
        tables = []
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            tqdm(total=len(keys), desc="shift", disable=not progress) as bar,
        ):
            running: deque[Future[pd.DataFrame]] = deque()
            for key in keys:
                running.append(pool.submit(one, key))
                if len(running) == workers:  # at most ``workers`` sites in memory
                    tables.append(running.popleft().result())
                    bar.update()
            while running:
                tables.append(running.popleft().result())
                bar.update()
    except (KeyError, pa.ArrowInvalid) as e:
        raise ValueError(f"{stats} is not a statistics table: {e}") from None
    return concat_shift_tables(tables, comparisons)


#: Columns of :func:`content_floors`.
FLOOR_COLUMNS = ("model", "task", "test_set", "site", "stat", "content_floor")


def content_floors(stats: str | Path | Sequence[str | Path] | SiteIndex) -> pd.DataFrame:
    """Per site and statistic of the statistics at ``stats``: the W1 of the content link
    (tiles~train, channels pooled) that sampling the images alone gives
    (:func:`~tlc_probe.metrics.intervals.sampling_floor` of the ``tiles`` values by test
    image and the ``train`` values by training image). Where the test
    images are drawn as the training images are (the ``synthetic`` test set), a content
    W1 near this floor is sampling noise, not a content difference. Columns
    :data:`FLOOR_COLUMNS`; sites without tiles or train rows are left out."""
    index = stats if isinstance(stats, SiteIndex) else SiteIndex(stats)
    rows = []
    for key in index:
        columns = ["test_set", "regime", "sample", "stat", "value"]
        frame = read_site(index, key, columns=columns, categorical=True)
        groups = frame.groupby(["test_set", "stat"], sort=False, observed=True).indices
        for test_set, stat in sorted(groups, key=lambda k: tuple(map(str, k))):
            g = frame.iloc[groups[(test_set, stat)]]
            tiles, train = g[g["regime"] == "tiles"], g[g["regime"] == "train"]
            if tiles.empty or train.empty:
                continue
            floor = sampling_floor(  # images by rank: the same halves as by name
                tiles["value"].to_numpy(),
                image_ranks(tiles["sample"])[0],
                train["value"].to_numpy(),
                image_ranks(train["sample"])[0],
            )
            rows.append((*key[:2], test_set, key[2], stat, floor))
    return pd.DataFrame(rows, columns=list(FLOOR_COLUMNS))


def with_content_floors(
    results: dict[str, pd.DataFrame], stats: str | Path | Sequence[str | Path] | SiteIndex
) -> dict[str, pd.DataFrame]:
    """:func:`shift_results` with the content link's sampling floor joined
    (:func:`content_floors` of ``stats``): the decomposition gains ``content_floor`` and
    ``content_to_floor`` (content W1 / floor: about 1 or below where content is sampling
    noise), the summary ``median_content_to_floor`` (median over sites)."""
    floors = content_floors(stats)
    on = ["model", "task", "test_set", "site", "stat"]
    parts = results["decomposition"].merge(floors, on=on, how="left", validate="many_to_one")
    parts["content_to_floor"] = parts["content_w1"] / parts["content_floor"].where(
        parts["content_floor"] > 0
    )
    group = ["model", "task", "test_set", "stat"]
    ratio = parts.groupby(group, sort=False)["content_to_floor"].median()
    summ = results["summary"].merge(
        ratio.rename("median_content_to_floor").reset_index(), on=group, how="left"
    )
    return results | {"decomposition": parts, "summary": summ}


def shift_results(
    table: pd.DataFrame, reliance: pd.DataFrame | None = None, reference: str = "train"
) -> dict[str, pd.DataFrame]:
    """A shift table's derived frames, each computed once: ``{"table", "decomposition"
    (:func:`~tlc_probe.metrics.decomposition`, ``reliance`` joined when given), "summary"
    (:func:`~tlc_probe.metrics.summary` against ``reference``)}``."""
    parts = decomposition(table, reliance)
    return {
        "table": table,
        "decomposition": parts,
        "summary": summary(table, reliance, reference, parts=parts),
    }


def write_shift_results(
    results: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write :func:`shift_results` into ``out_dir`` (created if needed), each file
    atomically: ``shift.csv``, ``shift.parquet``, ``decomposition.csv`` and
    ``summary.csv``. Returns ``{"shift_csv", "shift_parquet", "decomposition_csv",
    "summary_csv"}`` -> paths."""
    out = Path(out_dir)
    table, parts, summ = results["table"], results["decomposition"], results["summary"]
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


def write_shift(
    table: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    reliance: pd.DataFrame | None = None,
    reference: str = "train",
) -> dict[str, Path]:
    """:func:`shift_results` of ``table`` written by :func:`write_shift_results`; returns
    its paths."""
    return write_shift_results(shift_results(table, reliance, reference), out_dir)


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
    progress: bool = False,
) -> dict:
    """Read ``stats`` (directories or part files) site by site, compute the shift table
    (:func:`store_shift_table`, comparisons
    :func:`~tlc_probe.metrics.shift.comparisons_for` ``reference``), its decomposition
    and summary (with ``reliance`` when given), and write them to ``out``
    (:func:`write_shift`). Returns {"table", "summary", "decomposition", "paths"}.

    Raises ``FileNotFoundError`` when there is nothing to read and ``ValueError`` when
    what was read is no statistics table or holds no pair of regimes to compare."""
    comparisons = comparisons_for(reference)
    table = store_shift_table(stats, comparisons, per_channel, progress)
    if table.empty:
        raise ValueError(
            f"{stats}: no comparison could be made ({', '.join(comparisons)}): the "
            f"statistics lack the {reference!r} regime or every regime it is compared "
            f"with; collect them with --regimes {reference},whole,tlc,tiles,window"
        )
    results = shift_results(table, reliance, reference)
    return {**results, "paths": write_shift_results(results, out)}
