"""Where a site's shift comes from: content, context and aggregation extent.

The whole-image statistics of a site differ from the training patches' for three reasons,
each isolated by one comparison of the regimes (pooled rows of a shift table):

``content_w1`` = W1(tiles, train)
    training-size tiles of the *test* images against crops of the training images: same
    size, same padding, different pictures (with few training images this is large).
``context_w1`` = W1(window, tiles)
    the global model's whole-image features averaged over windows of the training extent,
    placed where the tiles lie, against the tiles themselves: same extent and place,
    different features — in a tile the features near its edges see zero padding, in the
    whole image they see real context.
``aggregation_w1`` = W1(whole, window)
    the whole-image mean against training-extent windows of the same features: only the
    extent of the mean differs. This is the part TLC's local means act on.

The three links form a path train -> tiles -> window -> whole, so by the triangle
inequality ``whole_w1 = W1(whole, train) <= chain_w1 = content_w1 + context_w1 +
aggregation_w1``. The shares are each link's fraction of ``chain_w1`` (NaN when it is
0); they sum to 1. A link whose regimes were not collected is NaN, and so are the shares.

Reliance (:func:`tlc_probe.jobs.reliance.reliance`, one row per site) can be joined: a
site is *relied on* when freezing its statistic to a constant changes the output's PSNR
by at least ``relied_db``; a shift at a site that is not relied on does not matter for
the output, whatever its size.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

#: comparison of the shift table behind each column
LINKS: dict[str, str] = {
    "whole_w1": "whole~train",
    "tlc_w1": "tlc~train",
    "content_w1": "tiles~train",
    "context_w1": "window~tiles",
    "aggregation_w1": "whole~window",
}
#: |PSNR change| (dB) from freezing a site's statistic at and above which it is relied on
RELIED_DB = 0.01
SITE_KEYS = ("model", "task", "test_set", "site", "kind", "depth", "stat")
DECOMPOSITION_COLUMNS: tuple[str, ...] = (
    *SITE_KEYS,
    *LINKS,
    "chain_w1",
    "content_share",
    "context_share",
    "aggregation_share",
)
RELIANCE_JOIN = ("frozen_delta_psnr", "relied")


def relied_on(delta_psnr: pd.Series, relied_db: float = RELIED_DB) -> pd.Series:
    """Whether each site is relied on: ``|delta_psnr| >= relied_db`` (dB) as a nullable
    boolean Series (NA where ``delta_psnr`` is NA: not measured is not "not relied on")."""
    delta = pd.to_numeric(pd.Series(delta_psnr), errors="coerce").astype("Float64")
    return delta.abs() >= relied_db


def check_join(sites: pd.DataFrame, reliance: pd.DataFrame) -> None:
    """Refuse a reliance join that matches nothing. ``sites``: rows with model, task,
    site; ``reliance``: a reliance table (its ``site == "all"`` rows included).

    ``ValueError`` when no (model, task) of ``sites`` is in ``reliance`` (typically the
    same checkpoint under two names), or when one is but none of its sites is (the site
    names do not line up), saying what each side has. A (model, task) the reliance table
    lacks while others match stays NA (not measured), with a ``UserWarning``."""
    if sites.empty:
        return
    pair = ["model", "task"]
    mine = sites[[*pair, "site"]].astype(str).drop_duplicates()
    theirs = reliance[[*pair, "site"]].astype(str).drop_duplicates()
    mine_pairs = set(map(tuple, mine[pair].to_numpy()))
    their_pairs = set(map(tuple, theirs[pair].to_numpy()))
    if not mine_pairs & their_pairs:
        raise ValueError(
            f"the reliance table matches no site of the statistics: statistics of "
            f"{sorted(mine_pairs)}, reliance of {sorted(their_pairs)}; run both on one "
            "checkpoint with the same --name (or the same --model / --preset)"
        )
    mine_sites = mine.groupby(pair)["site"].agg(set)
    their_sites = theirs.groupby(pair)["site"].agg(set)
    for key in sorted(mine_pairs & their_pairs):
        ours, rel = mine_sites[key], their_sites[key] - {"all"}
        if rel and not ours & rel:
            raise ValueError(
                f"the reliance table of {key} names sites {sorted(rel)[:3]} and the "
                f"statistics {sorted(ours)[:3]}: none matches (another model under this name?)"
            )
    if missing := sorted(mine_pairs - their_pairs):
        warnings.warn(
            f"no reliance rows for {[m for m, _ in missing]}: their reliance columns stay NA "
            "(not measured)",
            UserWarning,
            stacklevel=3,
        )


def decomposition(
    table: pd.DataFrame, reliance: pd.DataFrame | None = None, relied_db: float = RELIED_DB
) -> pd.DataFrame:
    """Per site and statistic, the shift split into content, context and aggregation.

    Args:
        table: a :func:`~tlc_probe.metrics.shift_table` (its pooled ``channel == "all"``
            rows are used) with some of the comparisons of :data:`LINKS`.
        reliance: optional reliance table with columns model, task, site, delta_psnr
            (one row per site; the ``site == "all"`` row is ignored), joined to every
            test set of the table (with a ``test_set`` column: to its own).
        relied_db: threshold of :data:`RELIED_DB`.

    Returns:
        One row per (model, task, test_set[, step], site, kind, depth, stat) with columns
        :data:`DECOMPOSITION_COLUMNS` (W1 in the units of the statistic, shares in
        [0, 1]) and, with ``reliance``, ``frozen_delta_psnr`` (dB) and ``relied``
        (nullable boolean): both NA for a site the reliance table lacks (not measured is
        not "not relied on"). Ordered like the shift table.

    Raises:
        ValueError: the reliance table has several rows for one (model, task, site), or
            matches none of the table's sites (:func:`check_join`).
    """
    stepped = "step" in table.columns
    keys = [*SITE_KEYS[:3], *(["step"] if stepped else []), *SITE_KEYS[3:]]
    pooled = table[table["channel"].astype(str) == "all"]
    if "test_set" not in pooled.columns:  # (tables made before test sets existed)
        pooled = pooled.assign(test_set="photos")
    pooled = pooled[pooled["comparison"].isin(list(LINKS.values()))]
    if stepped:
        pooled = pooled.assign(step=pooled["step"].fillna(-1))
    wide = pooled.pivot_table(index=keys, columns="comparison", values="w1", aggfunc="first")
    out = pd.DataFrame(index=wide.index)
    for column, comparison in LINKS.items():
        out[column] = wide[comparison] if comparison in wide.columns else np.nan
    parts = out[["content_w1", "context_w1", "aggregation_w1"]]
    out["chain_w1"] = parts.sum(axis=1, min_count=3)
    total = out["chain_w1"].where(out["chain_w1"] > 0)
    for name in ("content", "context", "aggregation"):
        out[f"{name}_share"] = out[f"{name}_w1"] / total
    out = out.reset_index().sort_values([*keys[:-4], "depth", "site", "stat"], kind="stable")
    if stepped:
        out["step"] = out["step"].astype("Int64").mask(out["step"] == -1)
    if reliance is not None:
        on = ["model", "task", *(["test_set"] if "test_set" in reliance else []), "site"]
        rel = reliance[reliance["site"].astype(str) != "all"]
        rel = rel[[*on, "delta_psnr"]].rename(columns={"delta_psnr": "frozen_delta_psnr"})
        # names as strings on both sides (a CSV reads a numeric run name as a number)
        rel = rel.astype(dict.fromkeys(on, str))
        out = out.astype(dict.fromkeys(on, str))
        if (dup := rel.duplicated(on, keep=False)).any():
            twice = sorted(set(map(tuple, rel.loc[dup, on].to_numpy())))
            raise ValueError(f"the reliance table has several rows for {twice[:5]}")
        check_join(out, reliance)
        out = out.merge(rel, on=on, how="left", validate="many_to_one")
        out["relied"] = relied_on(out["frozen_delta_psnr"], relied_db).array
    out["depth"] = out["depth"].astype("int32")
    return out.reset_index(drop=True)
