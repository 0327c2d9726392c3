"""The window tuning at a glance: the chosen window per site against depth, and each
site's shift to training before (uniform 1.5) and after (the chosen plan)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

GLOBAL = "global"


def _ratio(candidate: str) -> float:
    """'x1.25' -> 1.25; 'global' -> inf."""
    return np.inf if candidate == GLOBAL else float(candidate[1:])


def tune_figure(scores: pd.DataFrame, title: str = "") -> Figure:
    """Two panels from the ``scores`` table of
    :func:`~tlc_probe.jobs.tune.tune_windows` (site, kind, depth, candidate, w1_norm,
    chosen; candidates ``x<ratio>``, ``global`` and ``tuned``): the candidate each site
    chose (its row with ``chosen`` true) against depth, ``global`` drawn above the
    largest ratio; and W1 / std(train) per site with the uniform 1.5 and with the chosen
    plan. The number of sites is in the title. Returns the Figure."""
    tried = scores[scores["candidate"] != "tuned"]
    if tried.empty or "chosen" not in tried or not tried["chosen"].any():
        raise ValueError("tune_figure: no candidate scores with a chosen candidate to draw")
    best = tried[tried["chosen"].astype(bool)].sort_values("depth")
    ratios = sorted({_ratio(c) for c in tried["candidate"]})
    finite = [r for r in ratios if np.isfinite(r)]
    top = (max(finite) if finite else 1.0) * 1.5
    y = best["candidate"].map(_ratio).replace(np.inf, top)
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.axhline(1.5, color="0.6", lw=0.8, ls="--", label="uniform 1.5")
    ax1.scatter(best["depth"], y, s=16, color="tab:red", zorder=3, label="chosen")
    ticks = [*finite, *([top] if np.inf in ratios else [])]
    ax1.set_yscale("log", base=2)  # 1, 1.25, 1.5 apart as 2, 3, 4 are
    ax1.set_yticks(ticks, [f"{r:g}" for r in finite] + (["global"] if np.inf in ratios else []))
    ax1.minorticks_off()
    ax1.set_ylabel("window / training extent")
    ax1.legend(frameon=False, fontsize=7)
    before = scores[scores["candidate"] == "x1.5"].set_index("site")
    after = scores[scores["candidate"] == "tuned"].set_index("site")
    sites = best["site"]
    depth = best["depth"].to_numpy()
    ax2.plot(
        depth, before.reindex(sites)["w1_norm"], "o-", ms=3, color="tab:blue", label="uniform 1.5"
    )
    if not after.empty:
        ax2.plot(
            depth, after.reindex(sites)["w1_norm"], "s-", ms=3, color="tab:red", label="chosen plan"
        )
    ax2.set_xlabel("site depth (execution order)")
    ax2.set_ylabel("W1 / std(train)")
    ax2.legend(frameon=False, fontsize=7)
    fig.suptitle(f"{title + ': ' if title else ''}windows chosen per site (n = {len(best)} sites)")
    return fig
