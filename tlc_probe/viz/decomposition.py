"""Where the shift comes from, site by site: the decomposition of
:func:`tlc_probe.metrics.decomposition` as stacked shares against depth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..metrics.shift import stat_mask
from .stats import _only, _rc, _tasks

#: colours of the three links: content grey, context orange, aggregation red (TLC's part)
LINK_COLOURS: dict[str, str] = {
    "content": "#8c8c8c",
    "context": "#ff7f0e",
    "aggregation": "#d62728",
}
LINK_LABELS: dict[str, str] = {
    "content": "content (tiles~train)",
    "context": "context (window~tiles)",
    "aggregation": "aggregation extent (whole~window)",
}


def decomposition_figure(
    decomposition: pd.DataFrame, model: str | None = None, stat: str = "mean"
) -> Figure:
    """Stacked shares of content, context and aggregation extent in the shift of every
    site of ``model`` (x: sites by execution depth), one panel per task.

    ``decomposition``: a :func:`tlc_probe.metrics.decomposition` table (rows of ``stat``
    are drawn; sites without all three links are left out). Above each bar, W1(whole, train)
    in the units of the statistic. With a ``relied`` column, sites the output does not rely
    on are drawn pale and hatched. ``model`` may be omitted when the table holds one.
    Returns a Figure about 7 in wide and 2.6 in per task.
    """
    d = decomposition[stat_mask(decomposition, stat)]
    d, model = _only(d, "model", model, "decomposition_figure")
    d = d.dropna(subset=["content_share", "context_share", "aggregation_share"])
    if d.empty:
        raise ValueError(
            f"decomposition_figure: no site of {model} has all three links for {stat!r} "
            "(collect the train, tiles, window and whole regimes)"
        )
    tasks = _tasks(d, None)
    with _rc():
        n_max = max(len(d[d["task"].astype(str) == t]) for t in tasks)
        fig = Figure(figsize=(max(7.0, 0.28 * n_max + 2), 2.6 * len(tasks)), layout="constrained")
        axes = fig.subplots(len(tasks), 1, squeeze=False)[:, 0]
        for ax, task in zip(axes, tasks, strict=True):
            t = d[d["task"].astype(str) == task].sort_values(["depth", "site"])
            x = np.arange(len(t))
            # not measured (NA) is drawn like relied on: only a measured 'no' is pale
            relied = (
                t["relied"].fillna(True).to_numpy(bool)
                if "relied" in t.columns
                else np.ones(len(t), bool)
            )
            bottom = np.zeros(len(t))
            for link, colour in LINK_COLOURS.items():
                share = t[f"{link}_share"].to_numpy(np.float64)
                for pale in (False, True):
                    m = relied != pale
                    if m.any():
                        ax.bar(
                            x[m],
                            share[m],
                            bottom=bottom[m],
                            color=colour,
                            alpha=0.35 if pale else 0.9,
                            hatch="///" if pale else None,
                            edgecolor="white",
                            linewidth=0.3,
                        )
                bottom += share
            for xi, w in zip(x, t["whole_w1"].to_numpy(np.float64), strict=True):
                if np.isfinite(w):
                    ax.text(xi, 1.01, f"{w:.2g}", ha="center", va="bottom", fontsize=5, rotation=90)
            ax.set_xticks(x, [f"{s} ({k})" for s, k in zip(t["site"], t["kind"], strict=True)])
            ax.tick_params(axis="x", labelrotation=90, labelsize=5)
            ax.set_ylim(0, 1.18)
            ax.set_ylabel(f"share of the shift of {stat}")
            ax.set_title(f"{model} · {task}: above each bar W1(whole, train)", loc="left")
        handles = [Patch(color=c, label=LINK_LABELS[k]) for k, c in LINK_COLOURS.items()]
        if "relied" in d.columns and not d["relied"].fillna(True).all():
            handles.append(
                Patch(facecolor="white", edgecolor="k", hatch="///", label="not relied on")
            )
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    return fig
